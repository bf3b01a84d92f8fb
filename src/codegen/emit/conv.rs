//! `Conv` kernels: a 2-D convolution and its two gradients by im2col / col2im and one GEMM
//! per image, or (JIT, large enough products) one call of the convolution symbol for the
//! whole batch.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I64, I8};
use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Value};

use super::Emitter;
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;

impl Emitter<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv(
        &mut self,
        op: ConvOp,
        batch: &Mono,
        g: &ConvGeom,
        a: &Access,
        b: &Access,
        out: &Access,
        col: Option<&Access>,
    ) {
        let n = self.mono(batch);
        let (pa, pb, pout) = (self.addr(a), self.addr(b), self.addr(out));
        // Per-image products too small for the library GEMM (those the generated GEMM takes,
        // digits_cnn's) keep the generated loop: the library's packing would cost more.
        let per_image = (g.f * g.patch() * g.pixels()) as i64;
        let library = self.env.conv.filter(|_| self.env.small_gemm.is_none_or(|(_, small)| per_image >= small));
        if let Some(conv) = library {
            // The geometry as 10 i64 on the stack, then one call for the whole batch.
            let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 80, 3));
            let sizes = [g.c, g.h, g.w, g.f, g.kh, g.kw, g.oh, g.ow, g.stride, g.pad];
            for (i, &v) in sizes.iter().enumerate() {
                let v = self.int(v as i64);
                self.b.ins().stack_store(I64, v, slot, (8 * i) as i32);
            }
            let geom = self.b.ins().stack_addr(I64, slot, 0);
            let code = self.int(match op {
                ConvOp::Forward => 0,
                ConvOp::InputGrad => 1,
                ConvOp::FilterGrad => 2,
            });
            if self.sink.is_none() {
                self.b.ins().call(conv, &[code, geom, n, pa, pb, pout]);
                return;
            }
            // Checked: called only when each tensor lies inside its buffer.
            let (image, grad, filter) = ((g.c * g.h * g.w) as i64, (g.f * g.pixels()) as i64, (g.f * g.patch()) as i64);
            let sizes = match op {
                ConvOp::Forward => [image, filter, grad],
                ConvOp::InputGrad => [grad, filter, image],
                ConvOp::FilterGrad => [image, grad, filter],
            };
            let batched = match op {
                ConvOp::Forward | ConvOp::InputGrad => [true, false, true],
                ConvOp::FilterGrad => [true, true, false],
            };
            let (zero, one) = (self.int(0), self.int(1));
            let active = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, n, 0);
            let mut ok = self.b.ins().iconst(I8, 1);
            for ((p, size), batched) in [pa, pb, pout].into_iter().zip(sizes).zip(batched) {
                let size = self.int(size);
                let len = if batched { self.b.ins().imul(size, n) } else { size };
                let inside = self.matrix_ok(p, one, len, zero, one, active);
                ok = self.b.ins().band(ok, inside);
            }
            let (call, done) = (self.b.create_block(), self.b.create_block());
            self.b.ins().brif(ok, call, &[], done, &[]);
            self.b.switch_to_block(call);
            self.b.seal_block(call);
            self.b.ins().call(conv, &[code, geom, n, pa, pb, pout]);
            self.b.ins().jump(done, &[]);
            self.b.switch_to_block(done);
            self.b.seal_block(done);
            return;
        }
        let pcol = col.map(|c| self.addr(c));
        let (chw, fpix) = ((g.c * g.h * g.w) as i64, (g.f * g.pixels()) as i64);
        let (f, patch, pix) = (self.int(g.f as i64), self.int(g.patch() as i64), self.int(g.pixels() as i64));
        let one = self.int(1);
        if op == ConvOp::FilterGrad {
            let len = self.int((g.f * g.patch()) as i64);
            self.fill(pout, len, 0.0);
        }
        // The padding entries of the columns are zero for every image: write them once.
        if let (Some(c), ConvOp::Forward | ConvOp::FilterGrad) = (pcol, op) {
            let len = self.int((g.patch() * g.pixels()) as i64);
            self.fill(c, len, 0.0);
        }
        let (image_bytes, grad_bytes) = (self.int(chw * self.es), self.int(fpix * self.es));
        self.for_n(n, |e, img| {
            match op {
                ConvOp::Forward => {
                    // y[img] (F × OH·OW) = w (F × C·KH·KW) · col (C·KH·KW × OH·OW)
                    let x = e.offset(pa, img, image_bytes);
                    let y = e.offset(pout, img, grad_bytes);
                    let cols = match pcol {
                        Some(c) => {
                            e.im2col(g, x, c, false);
                            c
                        }
                        None => x,
                    };
                    e.gemm([f, patch, pix], (pb, [patch, one]), (cols, [pix, one]), (y, [pix, one]), 0.0);
                }
                ConvOp::InputGrad => {
                    // col = wᵀ (C·KH·KW × F) · g[img] (F × OH·OW), scattered back into dx[img]
                    let gi = e.offset(pa, img, grad_bytes);
                    let dx = e.offset(pout, img, image_bytes);
                    match pcol {
                        Some(c) => {
                            e.gemm([patch, f, pix], (pb, [one, patch]), (gi, [pix, one]), (c, [pix, one]), 0.0);
                            let len = e.int(chw);
                            e.fill(dx, len, 0.0);
                            e.im2col(g, dx, c, true);
                        }
                        None => e.gemm([patch, f, pix], (pb, [one, patch]), (gi, [pix, one]), (dx, [pix, one]), 0.0),
                    }
                }
                ConvOp::FilterGrad => {
                    // dw (F × C·KH·KW) += g[img] (F × OH·OW) · colᵀ (OH·OW × C·KH·KW)
                    let x = e.offset(pa, img, image_bytes);
                    let gi = e.offset(pb, img, grad_bytes);
                    let cols = match pcol {
                        Some(c) => {
                            e.im2col(g, x, c, false);
                            c
                        }
                        None => x,
                    };
                    e.gemm([f, pix, patch], (gi, [pix, one]), (cols, [one, pix]), (pout, [patch, one]), 1.0);
                }
            }
        });
    }

    /// col[(c,a,b), (i,j)] = x[c, i·s+a-p, j·s+b-p] for one image, or with `scatter` the
    /// adjoint x[...] += col[...] (col2im; x must be zeroed first). Only taps inside the image
    /// are touched: the padding entries of `col` are the same for every image, so the caller
    /// zeroes them once. Each tap row copies one run of columns per output row, no branches.
    fn im2col(&mut self, g: &ConvGeom, x: Value, col: Value, scatter: bool) {
        let (s, p) = (g.stride as i64, g.pad as i64);
        let rows = self.int(g.patch() as i64);
        self.for_n(rows, |e, row| {
            let (khw, kw) = (e.int((g.kh * g.kw) as i64), e.int(g.kw as i64));
            let c = e.b.ins().udiv(row, khw);
            let rem = e.b.ins().urem(row, khw);
            let a = e.b.ins().udiv(rem, kw);
            let bb = e.b.ins().urem(rem, kw);
            let (i_lo, i_hi) = e.valid_range(a, g.h, g.oh, s, p);
            let (j_lo, j_hi) = e.valid_range(bb, g.w, g.ow, s, p);
            let run = e.b.ins().isub(j_hi, j_lo);
            // First valid tap: x[c, i_lo·s + a - p, j_lo·s + bb - p] and col[row, i_lo, j_lo].
            let r = e.b.ins().imul_imm_s(i_lo, s);
            let r = e.b.ins().iadd(r, a);
            let r = e.b.ins().iadd_imm_s(r, -p);
            let cr = e.b.ins().imul_imm_s(c, g.h as i64);
            let cr = e.b.ins().iadd(cr, r);
            let q = e.b.ins().imul_imm_s(cr, g.w as i64);
            let js = e.b.ins().imul_imm_s(j_lo, s);
            let q = e.b.ins().iadd(q, js);
            let q = e.b.ins().iadd(q, bb);
            let q = e.b.ins().iadd_imm_s(q, -p);
            let src0 = e.elem(x, q);
            let d = e.b.ins().imul_imm_s(row, g.pixels() as i64);
            let di = e.b.ins().imul_imm_s(i_lo, g.ow as i64);
            let d = e.b.ins().iadd(d, di);
            let d = e.b.ins().iadd(d, j_lo);
            let dst0 = e.elem(col, d);
            let count = e.b.ins().isub(i_hi, i_lo);
            let (src_step, dst_step) = (e.int(s * g.w as i64 * e.es), e.int(g.ow as i64 * e.es));
            e.for_n(count, |e, t| {
                let src = e.offset(src0, t, src_step);
                let dst = e.offset(dst0, t, dst_step);
                e.strided_run(dst, src, run, s, scatter);
            });
        });
    }

    /// The output positions o in [lo, hi) whose input position o·s + k - p lies in [0, n_in).
    fn valid_range(&mut self, k: Value, n_in: usize, n_out: usize, s: i64, p: i64) -> (Value, Value) {
        let zero = self.int(0);
        let pad = self.int(p);
        let lo_num = self.b.ins().isub(pad, k);
        let lo_up = self.b.ins().iadd_imm_s(lo_num, s - 1);
        let lo_div = self.b.ins().sdiv_imm_s(lo_up, s);
        let positive = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, lo_num, 0);
        let lo = self.b.ins().select(positive, lo_div, zero);
        let hi_num = self.b.ins().iadd_imm_s(lo_num, n_in as i64 - 1);
        let hi_div = self.b.ins().sdiv_imm_s(hi_num, s);
        let hi_div = self.b.ins().iadd_imm_s(hi_div, 1);
        let nonneg = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, hi_num, 0);
        let hi = self.b.ins().select(nonneg, hi_div, zero);
        let n = self.int(n_out as i64);
        let hi = self.b.ins().smin(hi, n);
        let hi = self.b.ins().smax(hi, lo);
        (lo, hi)
    }

    /// contiguous[j] = strided[j·s] for j < len, or with `scatter` strided[j·s] += contiguous[j].
    fn strided_run(&mut self, contiguous: Value, strided: Value, len: Value, s: i64, scatter: bool) {
        let zero = self.int(0);
        if s == 1 {
            let main = self.vector_part(len);
            self.for_loop(zero, main, self.lanes as i64, |e, j| {
                let (pc, ps) = (e.elem(contiguous, j), e.elem(strided, j));
                let v = e.load_vector(pc);
                if scatter {
                    let old = e.load_vector(ps);
                    let sum = e.b.ins().fadd(old, v);
                    e.store_vector(sum, ps);
                } else {
                    let w = e.load_vector(ps);
                    e.store_vector(w, pc);
                }
            });
            self.for_loop(main, len, 1, |e, j| e.scalar_step(contiguous, strided, j, j, scatter));
        } else {
            self.for_loop(zero, len, 1, |e, j| {
                let js = e.b.ins().imul_imm_s(j, s);
                e.scalar_step(contiguous, strided, j, js, scatter)
            });
        }
    }

    fn scalar_step(&mut self, contiguous: Value, strided: Value, j: Value, js: Value, scatter: bool) {
        let (pc, ps) = (self.elem(contiguous, j), self.elem(strided, js));
        if scatter {
            let v = self.load_scalar(pc);
            let old = self.load_scalar(ps);
            let sum = self.b.ins().fadd(old, v);
            self.store_scalar(sum, ps);
        } else {
            let w = self.load_scalar(ps);
            self.store_scalar(w, pc);
        }
    }
}
