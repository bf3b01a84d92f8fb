//! `Pool` kernels: max and average pooling over N·C planes and their gradients, each window
//! unrolled.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::InstBuilder;

use super::Emitter;
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;

impl Emitter<'_> {
    /// Windows are unrolled (size² taps at constant offsets); planes, rows and columns loop.
    pub(super) fn pool(
        &mut self,
        op: PoolOp,
        planes: &Mono,
        g: &PoolGeom,
        x: &Access,
        grad: Option<&Access>,
        out: &Access,
    ) {
        let np = self.mono(planes);
        // Outlined (`Emitter::split`): planes lo..hi only.
        let (lo, hi) = self.take_range(np);
        let (px, pout) = (self.addr(x), self.addr(out));
        let pg = grad.map(|a| self.addr(a));
        let (big, small) = ((g.h * g.w) as i64, (g.oh * g.ow) as i64);
        let (big_b, small_b) = (self.int(big * self.es), self.int(small * self.es));
        // The [N, C, H, W] side: x for Max/MaxGrad/Avg, the output for AvgGrad and MaxGrad.
        if matches!(op, PoolOp::MaxGrad | PoolOp::AvgGrad) {
            let from = self.offset(pout, lo, big_b);
            let count = self.b.ins().isub(hi, lo);
            let len = self.b.ins().imul_imm_s(count, big);
            self.fill(from, len, 0.0);
        }
        let area = (g.size * g.size) as f64;
        let taps: Vec<i64> = (0..g.size).flat_map(|a| (0..g.size).map(move |b| (a * g.w + b) as i64)).collect();
        let (oh, ow) = (self.int(g.oh as i64), self.int(g.ow as i64));
        self.for_loop(lo, hi, 1, |e, plane| {
            let (xb, ob) = (e.offset(px, plane, big_b), e.offset(pout, plane, small_b));
            let ob_big = e.offset(pout, plane, big_b);
            let x_small = e.offset(px, plane, small_b);
            let gb = pg.map(|p| e.offset(p, plane, small_b));
            e.for_n(oh, |e, i| {
                e.for_n(ow, |e, j| {
                    // Window origin (i·s, j·s) on the big side, and pooled index i·OW + j.
                    let row = e.b.ins().imul_imm_s(i, (g.stride * g.w) as i64);
                    let col = e.b.ins().imul_imm_s(j, g.stride as i64);
                    let origin = e.b.ins().iadd(row, col);
                    let small_at = e.b.ins().imul_imm_s(i, g.ow as i64);
                    let small_at = e.b.ins().iadd(small_at, j);
                    match op {
                        PoolOp::Max | PoolOp::Avg => {
                            let w0 = e.elem(xb, origin);
                            let mut acc = e.load_scalar(w0);
                            for &t in &taps[1..] {
                                let p = e.elem_const(w0, t);
                                let v = e.load_scalar(p);
                                acc = if op == PoolOp::Max {
                                    e.pick(FloatCC::GreaterThan, v, acc, v, acc)
                                } else {
                                    e.b.ins().fadd(acc, v)
                                };
                            }
                            if op == PoolOp::Avg {
                                let a = e.fconst(area);
                                acc = e.b.ins().fdiv(acc, a);
                            }
                            let q = e.elem(ob, small_at);
                            e.store_scalar(acc, q);
                        }
                        PoolOp::MaxGrad => {
                            // Route g to the first maximum of the window of x.
                            let w0 = e.elem(xb, origin);
                            let mut best = e.load_scalar(w0);
                            let mut at = e.int(0);
                            for &t in &taps[1..] {
                                let p = e.elem_const(w0, t);
                                let v = e.load_scalar(p);
                                let gt = e.b.ins().fcmp(FloatCC::GreaterThan, v, best);
                                let tv = e.int(t);
                                at = e.b.ins().select(gt, tv, at);
                                best = e.pick(FloatCC::GreaterThan, v, best, v, best);
                            }
                            let gp = e.elem(gb.expect("maxpool2d_grad has a gradient"), small_at);
                            let gv = e.load_scalar(gp);
                            let target = e.b.ins().iadd(origin, at);
                            let d = e.elem(ob_big, target);
                            let old = e.load_scalar(d);
                            let new = e.b.ins().fadd(old, gv);
                            e.store_scalar(new, d);
                        }
                        PoolOp::AvgGrad => {
                            // Here x is the pooled gradient and the output the big side.
                            let gp = e.elem(x_small, small_at);
                            let gv = e.load_scalar(gp);
                            let a = e.fconst(area);
                            let share = e.b.ins().fdiv(gv, a);
                            let w0 = e.elem(ob_big, origin);
                            for &t in &taps {
                                let p = e.elem_const(w0, t);
                                let old = e.load_scalar(p);
                                let new = e.b.ins().fadd(old, share);
                                e.store_scalar(new, p);
                            }
                        }
                    }
                });
            });
        });
    }
}
