//! `Gather` kernels: rows chosen by a tensor of indices (`E[tokens]`), and the scatter-add
//! that is their gradient. The indices are whole numbers carried as floats; each is read
//! once, converted, and clamped into its axis, so no index reaches outside the tensor. One
//! that was not a whole number in range is reported through `Env::index_error` when the
//! code has it (the JIT: the run then fails with the index), and only clamped when not (an
//! object file, whose caller must pass valid indices).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F64, I64};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::{Emitter, Mode, Walk};
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;

impl Emitter<'_> {
    /// out[o, j, :] = x[o, idx[j], :], or with `scatter` out[o, idx[j], :] += x[o, j, :] for j
    /// in order (deterministic: one thread, a fixed order).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gather(
        &mut self,
        scatter: bool,
        outer: &Mono,
        n: &Mono,
        count: &Mono,
        inner: &Mono,
        x: &Access,
        idx: &Access,
        out: &Access,
    ) {
        let (outer_v, n_v, count_v, inner_v) = (self.mono(outer), self.mono(n), self.mono(count), self.mono(inner));
        let (px, pi, pout) = (self.addr(x), self.addr(idx), self.addr(out));
        let row = self.mono_bytes(inner);
        // The indexed tensor is [outer, n, inner]; the dense one [outer, count, inner].
        let (table, dense) = if scatter { (pout, px) } else { (px, pout) };
        let table_block = self.mono_bytes(&n.mul(inner));
        let dense_block = self.mono_bytes(&count.mul(inner));
        self.for_n(count_v, |e, j| {
            let at = e.elem(pi, j);
            let value = e.load_scalar(at);
            let i = e.index(value, n_v);
            let table_row = e.offset(table, i, row);
            let dense_row = e.offset(dense, j, row);
            e.for_n(outer_v, |e, o| {
                let t = e.offset(table_row, o, table_block);
                let d = e.offset(dense_row, o, dense_block);
                if scatter {
                    e.copy_row(d, t, inner_v, true);
                } else {
                    e.copy_row(t, d, inner_v, false);
                }
            });
        });
    }

    /// The row an index value stands for: the value converted to an integer and clamped to
    /// 0..n. A value that is not a whole number in 0..n is reported first, when the code can.
    fn index(&mut self, value: Value, n: Value) -> Value {
        let i = self.b.ins().fcvt_to_sint_sat(I64, value);
        let back = self.b.ins().fcvt_from_sint(self.ty, i);
        let whole = self.b.ins().fcmp(FloatCC::Equal, back, value);
        let low = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, i, 0);
        let high = self.b.ins().icmp(IntCC::SignedLessThan, i, n);
        let ok = self.b.ins().band(whole, low);
        let ok = self.b.ins().band(ok, high);
        if let Some(report) = self.env.index_error {
            let kernel = self.int(self.kernel_index);
            let wide = if self.ty == F64 { value } else { self.b.ins().fpromote(F64, value) };
            let (cold, cont) = (self.b.create_block(), self.b.create_block());
            self.b.set_cold_block(cold);
            self.b.ins().brif(ok, cont, &[], cold, &[]);
            self.b.switch_to_block(cold);
            self.b.seal_block(cold);
            self.b.ins().call(report, &[kernel, wide, n]);
            self.b.ins().jump(cont, &[]);
            self.b.switch_to_block(cont);
            self.b.seal_block(cont);
        }
        let zero = self.int(0);
        let last = self.b.ins().iadd_imm_s(n, -1);
        let i = self.b.ins().smax(i, zero);
        self.b.ins().smin(i, last)
    }

    /// dst[0..len] = src[0..len], or with `accumulate` dst[0..len] += src[0..len] (into the
    /// scatter-add's output, which starts as zeros).
    fn copy_row(&mut self, src: Value, dst: Value, len: Value, accumulate: bool) {
        let main = self.vector_part(len);
        let zero = self.int(0);
        for (lo, hi, step, mode) in [(zero, main, self.lanes as i64, Mode::Vector), (main, len, 1, Mode::Tail)] {
            self.for_loop(lo, hi, step, |e, k| {
                let v = e.load_at(src, Walk::Contiguous, k, mode);
                let v = if accumulate {
                    let old = e.load_at(dst, Walk::Contiguous, k, mode);
                    e.b.ins().fadd(old, v)
                } else {
                    v
                };
                e.store_at(v, dst, Walk::Contiguous, k, mode);
            });
        }
    }
}
