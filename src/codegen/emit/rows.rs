//! Row kernels: `LogSoftmax`, `ArgMaxMask` and `OneHot`, each row of a tensor along one axis
//! at a time (short rows a vector of rows at a time).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::{Emitter, Mode, Walk};
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;

impl Emitter<'_> {
    /// Calls `body(row_start, element_stride_bytes, contiguous)` for each of the outer×inner
    /// rows of length n (element j of a row is at `row_start + j * stride`).
    fn rows(
        &mut self,
        outer: &Mono,
        n: &Mono,
        inner: &Mono,
        x: &Access,
        out: &Access,
        body: &mut dyn FnMut(&mut Self, Value, Value, Value, Value),
    ) {
        let (o, nv, k) = (self.mono(outer), self.mono(n), self.mono(inner));
        let (px, pout) = (self.addr(x), self.addr(out));
        let stride = self.mono_bytes(inner);
        let block = self.mono_bytes(&n.mul(inner));
        let es = self.int(self.es);
        // Outlined (`Emitter::split`): outer indices lo..hi only.
        let (lo, hi) = self.take_range(o);
        self.for_loop(lo, hi, 1, |e, oi| {
            let (rx, rout) = (e.offset(px, oi, block), e.offset(pout, oi, block));
            e.for_n(k, |e, ki| {
                let (sx, sout) = (e.offset(rx, ki, es), e.offset(rout, ki, es));
                body(e, sx, sout, stride, nv);
            });
        });
    }

    /// Fold `f(x[j])` over one row: vector lanes when contiguous (stride = one element).
    fn row_fold(
        &mut self,
        row: Value,
        stride: Value,
        n: Value,
        contiguous: bool,
        op: ReduceOp,
        f: &dyn Fn(&mut Self, Value) -> Value,
    ) -> Value {
        let acc_s = self.b.declare_var(self.ty);
        let init = self.fconst(Self::identity(op));
        self.b.def_var(acc_s, init);
        let zero = self.int(0);
        let start = if contiguous {
            // ACCUMULATORS vectors at a time, each into its own accumulator: one accumulator
            // made every row a chain of dependent maxima or sums (a softmax row of 64 is 16).
            let accs: [_; ACCUMULATORS] = std::array::from_fn(|_| self.b.declare_var(self.vty));
            let initv = self.splat(Self::identity(op));
            for acc in accs {
                self.b.def_var(acc, initv);
            }
            let lanes = self.lanes as i64;
            let wide = self.b.ins().band_imm_s(n, -(lanes * ACCUMULATORS as i64));
            self.for_loop(zero, wide, lanes * ACCUMULATORS as i64, |e, j| {
                for (i, &acc_v) in accs.iter().enumerate() {
                    let at = e.b.ins().iadd_imm_s(j, lanes * i as i64);
                    let p = e.elem(row, at);
                    let v = e.load_vector(p);
                    let v = f(e, v);
                    let acc = e.b.use_var(acc_v);
                    let acc = e.combine(op, acc, v);
                    e.b.def_var(acc_v, acc);
                }
            });
            let main = self.vector_part(n);
            self.for_loop(wide, main, lanes, |e, j| {
                let p = e.elem(row, j);
                let v = e.load_vector(p);
                let v = f(e, v);
                let acc = e.b.use_var(accs[0]);
                let acc = e.combine(op, acc, v);
                e.b.def_var(accs[0], acc);
            });
            let [a0, a1, a2, a3] = accs.map(|acc| self.b.use_var(acc));
            let (low, high) = (self.combine(op, a0, a1), self.combine(op, a2, a3));
            let v = self.combine(op, low, high);
            let h = self.horizontal(op, v);
            self.b.def_var(acc_s, h);
            main
        } else {
            zero
        };
        self.for_loop(start, n, 1, |e, j| {
            let p = e.offset(row, j, stride);
            let s = e.load_scalar(p);
            let v = e.lane0(s);
            let v = f(e, v);
            let x = e.first(v);
            let acc = e.b.use_var(acc_s);
            let acc = e.combine(op, acc, x);
            e.b.def_var(acc_s, acc);
        });
        self.b.use_var(acc_s)
    }

    /// out[j] = f(x[j]) over one row.
    fn row_map(
        &mut self,
        row: Value,
        dst: Value,
        stride: Value,
        n: Value,
        contiguous: bool,
        f: &dyn Fn(&mut Self, Value) -> Value,
    ) {
        let zero = self.int(0);
        let start = if contiguous {
            let main = self.vector_part(n);
            self.for_loop(zero, main, self.lanes as i64, |e, j| {
                let (p, q) = (e.elem(row, j), e.elem(dst, j));
                let v = e.load_vector(p);
                let v = f(e, v);
                e.store_vector(v, q);
            });
            main
        } else {
            zero
        };
        self.for_loop(start, n, 1, |e, j| {
            let (p, q) = (e.offset(row, j, stride), e.offset(dst, j, stride));
            let s = e.load_scalar(p);
            let v = e.lane0(s);
            let v = f(e, v);
            let x = e.first(v);
            e.store_scalar(x, q);
        });
    }

    /// y = (x - max) - log Σ e^(x - max), in the interpreter's order of operations.
    pub(super) fn log_softmax(&mut self, outer: &Mono, n: &Mono, inner: &Mono, x: &Access, out: &Access) {
        if let (Some(n), Some(1)) = (n.as_known(), inner.as_known()) {
            if (1..=SHORT_ROW).contains(&n) {
                return self.log_softmax_short_rows(outer, n, x, out);
            }
        }
        let contiguous = inner.as_known() == Some(1);
        self.rows(outer, n, inner, x, out, &mut |e, row, dst, stride, nv| {
            let m = e.row_fold(row, stride, nv, contiguous, ReduceOp::Max, &|_, v| v);
            let mv = e.b.ins().splat(e.vty, m);
            let sum = e.row_fold(row, stride, nv, contiguous, ReduceOp::Sum, &|e, v| {
                let d = e.b.ins().fsub(v, mv);
                e.exp_nonpositive(d)
            });
            let sv = e.b.ins().splat(e.vty, sum);
            let lse = e.log(sv);
            e.row_map(row, dst, stride, nv, contiguous, &|e, v| {
                let d = e.b.ins().fsub(v, mv);
                e.b.ins().fsub(d, lse)
            });
        });
    }

    /// Log-softmax of rows of `n` ≤ `SHORT_ROW` contiguous values (a few classes): the lanes
    /// hold different rows and the row's values are unrolled, so each row costs a share of
    /// one vector exp per value and of one log, not a scalar loop each.
    fn log_softmax_short_rows(&mut self, outer: &Mono, n: i64, x: &Access, out: &Access) {
        let rows = self.mono(outer);
        // Outlined (`Emitter::split`): rows first..last only (a row's lanes compute the same
        // bits in the vector loop as in the tail).
        let (first, last) = self.take_range(rows);
        let (px, pout) = (self.addr(x), self.addr(out));
        let row_bytes = self.int(n * self.es);
        let walk = Walk::Strided(row_bytes);
        let count = self.b.ins().isub(last, first);
        let whole = self.vector_part(count);
        let main = self.b.ins().iadd(first, whole);
        for mode in [Mode::Vector, Mode::Tail] {
            let (lo, hi, step) = match mode {
                Mode::Vector => (first, main, self.lanes as i64),
                Mode::Tail => (main, last, 1),
            };
            self.for_loop(lo, hi, step, |e, i| {
                let xs: Vec<Value> = (0..n)
                    .map(|c| {
                        let column = e.elem_const(px, c);
                        e.load_at(column, walk, i, mode)
                    })
                    .collect();
                let max = xs[1..].iter().fold(xs[0], |m, &v| e.combine(ReduceOp::Max, m, v));
                let mut sum = e.splat(0.0);
                for &v in &xs {
                    let d = e.b.ins().fsub(v, max);
                    let t = e.exp_nonpositive(d);
                    sum = e.b.ins().fadd(sum, t);
                }
                let lse = e.log(sum);
                for (c, &v) in xs.iter().enumerate() {
                    let d = e.b.ins().fsub(v, max);
                    let r = e.b.ins().fsub(d, lse);
                    let column = e.elem_const(pout, c as i64);
                    e.store_at(r, column, walk, i, mode);
                }
            });
        }
    }

    /// 1.0 at the first maximum of each row (a strictly greater value replaces it).
    pub(super) fn argmax_mask(&mut self, outer: &Mono, n: &Mono, inner: &Mono, x: &Access, out: &Access) {
        self.rows(outer, n, inner, x, out, &mut |e, row, dst, stride, nv| {
            let best = e.b.declare_var(e.ty);
            let at = e.b.declare_var(I64);
            let first = e.load_scalar(row);
            e.b.def_var(best, first);
            let zero = e.int(0);
            e.b.def_var(at, zero);
            let one = e.int(1);
            e.for_loop(one, nv, 1, |e, j| {
                let p = e.offset(row, j, stride);
                let v = e.load_scalar(p);
                let (b0, a0) = (e.b.use_var(best), e.b.use_var(at));
                let gt = e.b.ins().fcmp(FloatCC::GreaterThan, v, b0);
                let na = e.b.ins().select(gt, j, a0);
                let nb = e.pick(FloatCC::GreaterThan, v, b0, v, b0);
                e.b.def_var(best, nb);
                e.b.def_var(at, na);
            });
            let at = e.b.use_var(at);
            e.for_n(nv, |e, j| {
                let hit = e.b.ins().icmp(IntCC::Equal, j, at);
                let v = e.flag(hit);
                let q = e.offset(dst, j, stride);
                e.store_scalar(v, q);
            });
        });
    }

    /// out[i, c] = (x[i] == c) for c < classes.
    pub(super) fn one_hot(&mut self, count: &Mono, classes: usize, x: &Access, out: &Access) {
        if classes <= SHORT_ROW as usize {
            return self.one_hot_short_rows(count, classes, x, out);
        }
        let n = self.mono(count);
        let (px, pout) = (self.addr(x), self.addr(out));
        let row_bytes = self.int(classes as i64 * self.es);
        let k = self.int(classes as i64);
        self.for_n(n, |e, i| {
            let p = e.elem(px, i);
            let label = e.load_scalar(p);
            let row = e.offset(pout, i, row_bytes);
            e.for_n(k, |e, c| {
                let cf = e.b.ins().fcvt_from_sint(e.ty, c);
                let hit = e.b.ins().fcmp(FloatCC::Equal, label, cf);
                let v = e.flag(hit);
                let q = e.elem(row, c);
                e.store_scalar(v, q);
            });
            // A label that is no class index (out of range, fractional, NaN) matched no column:
            // its row starts with NaN instead of being all zeros, so that whatever it feeds (a
            // loss) is NaN rather than silently 0. (The interpreter refuses such a label.)
            let whole = e.b.ins().floor(label);
            let whole = e.b.ins().fcmp(FloatCC::Equal, label, whole);
            let zero = e.fconst(0.0);
            let above = e.b.ins().fcmp(FloatCC::GreaterThanOrEqual, label, zero);
            let top = e.fconst(classes as f64);
            let below = e.b.ins().fcmp(FloatCC::LessThan, label, top);
            let valid = e.b.ins().band(whole, above);
            let valid = e.b.ins().band(valid, below);
            let first = e.load_scalar(row);
            let nan = e.fconst(f64::NAN);
            let first = e.b.ins().select(valid, first, nan);
            e.store_scalar(first, row);
        });
    }

    /// One-hot rows of a few classes, a vector of labels at a time: per class one compare of
    /// the labels with it, stored down that class's column.
    fn one_hot_short_rows(&mut self, count: &Mono, classes: usize, x: &Access, out: &Access) {
        let n = self.mono(count);
        let (px, pout) = (self.addr(x), self.addr(out));
        let walk = Walk::Strided(self.int(classes as i64 * self.es));
        let main = self.vector_part(n);
        let zero = self.int(0);
        for mode in [Mode::Vector, Mode::Tail] {
            let (lo, hi, step) = match mode {
                Mode::Vector => (zero, main, self.lanes as i64),
                Mode::Tail => (main, n, 1),
            };
            self.for_loop(lo, hi, step, |e, i| {
                let labels = e.load_at(px, Walk::Contiguous, i, mode);
                let hits: Vec<Value> = (0..classes)
                    .map(|c| {
                        let class = e.splat(c as f64);
                        let hit = e.b.ins().fcmp(FloatCC::Equal, labels, class);
                        e.as_float(hit)
                    })
                    .collect();
                // A label that matches no class (out of range, fractional, NaN) gets NaN in its
                // first column instead of a row of zeros (see `one_hot`).
                let any = hits[1..].iter().fold(hits[0], |a, &h| e.b.ins().bor(a, h));
                let nan = e.splat(f64::NAN);
                let missed = e.b.ins().band_not(nan, any);
                for (c, &hit) in hits.iter().enumerate() {
                    let one = e.splat(1.0);
                    let v = e.b.ins().band(hit, one);
                    let v = if c == 0 { e.b.ins().bor(v, missed) } else { v };
                    let column = e.elem_const(pout, c as i64);
                    e.store_at(v, column, walk, i, mode);
                }
            });
        }
    }
}

/// Vector accumulators of a contiguous row's fold (`row_fold`).
const ACCUMULATORS: usize = 4;

/// Rows of at most this many values (known) are log-softmaxed a vector of rows at a time.
const SHORT_ROW: i64 = 8;
