//! `Gemm` kernels: C = alpha·A·B + beta·C, as loops written inline when a side of C is
//! narrow, otherwise as a call of the GEMM symbol (or of the generated small-product GEMM).

use std::rc::Rc;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{FuncRef, InstBuilder, Value};
use cranelift_frontend::Variable;

use super::{Emitter, Mode, Walk};
use crate::codegen::abi::{GemmArgs, GemmValues, Matrix};
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;

impl Emitter<'_> {
    /// C = alpha·A·B + beta·C for every element of `batch`: inline loops when the product is
    /// narrow (`inline_form`), otherwise a call of the GEMM per element, or in the JIT one call
    /// of the batched GEMM symbol per run of the innermost batch axis (which divides the
    /// elements among threads).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn product(
        &mut self,
        m: &Mono,
        n: &Mono,
        k: &Mono,
        (a, b, c): (&Access, &Access, &Access),
        alpha: &Rc<Expr>,
        beta: &Rc<Expr>,
        batch: &[BatchAxis],
    ) {
        let batch = BatchAxis::collapse(batch);
        let ptrs = [self.addr(a), self.addr(b), self.addr(c)];
        if let Some(form) = inline_form(m, n, a, b) {
            let scale = Scale {
                alpha: (**alpha != Expr::Const(1.0)).then(|| self.uniform(alpha)),
                beta: (**beta != Expr::Const(0.0)).then(|| self.uniform(beta)),
            };
            self.batch_loops(&batch, ptrs, &mut |e, p| e.narrow_gemm(m, n, k, (a, b, c), form, p, &scale));
            return;
        }
        let (mv, nv, kv) = (self.mono(m), self.mono(n), self.mono(k));
        let stride = |e: &mut Self, x: &Access| [e.mono(&x.strides[0]), e.mono(&x.strides[1])];
        let (sa, sb, sc) = (stride(self, a), stride(self, b), stride(self, c));
        let (alpha, beta) = (self.uniform(alpha), self.uniform(beta));
        let args = |[pa, pb, pc]: [Value; 3]| GemmArgs {
            m: mv,
            k: kv,
            n: nv,
            alpha,
            a: matrix(pa, sa),
            b: matrix(pb, sb),
            beta,
            c: matrix(pc, sc),
        };
        match (self.env.batched_gemm, batch.split_last()) {
            (Some(symbol), Some((last, outer))) if self.sink.is_none() => {
                let count = self.mono(&last.len);
                let strides = [self.mono(&last.a), self.mono(&last.b), self.mono(&last.c)];
                self.batch_loops(outer, ptrs, &mut |e, p| e.call_batched(symbol, count, strides, &args(p)));
            }
            // Checked mode checks each element's call, so it keeps the loop; each call is the
            // batched symbol's with one product, which picks the kernel that the unchecked
            // code's call picks for it (the same bits).
            (Some(symbol), Some(_)) => {
                let (one, zero) = (self.int(1), self.int(0));
                self.batch_loops(&batch, ptrs, &mut |e, p| {
                    e.gemm_call(args(p), &mut |e, args| e.call_batched(symbol, one, [zero; 3], args))
                })
            }
            _ => self.batch_loops(&batch, ptrs, &mut |e, p| e.gemm_call(args(p), &mut Self::call_gemm)),
        }
    }

    /// `Kernel::Pack`: one call of the packing symbol. Without it (object files, checked
    /// mode) nothing: `PanelGemm` then multiplies by B in place.
    pub(super) fn pack(&mut self, k: &Mono, n: &Mono, width: usize, b: &Access, out: &Access) {
        let Some(symbols) = self.env.panels.filter(|_| self.sink.is_none()) else { return };
        let (kv, nv) = (self.mono(k), self.mono(n));
        let (rs, cs) = (self.mono(&b.strides[0]), self.mono(&b.strides[1]));
        let (from, to) = (self.addr(b), self.addr(out));
        let width = self.int(width as i64);
        self.b.ins().call(symbols.pack, &[kv, nv, from, rs, cs, width, to]);
    }

    /// `Kernel::PanelGemm`: one call of the product by panels, or without its symbol the
    /// plain product.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn panel_product(
        &mut self,
        m: &Mono,
        n: &Mono,
        k: &Mono,
        (a, b, c): (&Access, &Access, &Access),
        (panels, width): (&Access, usize),
        alpha: &Rc<Expr>,
        beta: &Rc<Expr>,
    ) {
        let Some(symbols) = self.env.panels.filter(|_| self.sink.is_none()) else {
            return self.product(m, n, k, (a, b, c), alpha, beta, &[]);
        };
        let (mv, nv, kv) = (self.mono(m), self.mono(n), self.mono(k));
        let operand = |e: &mut Self, x: &Access| {
            let ptr = e.addr(x);
            matrix(ptr, [e.mono(&x.strides[0]), e.mono(&x.strides[1])])
        };
        let (a, b, c) = (operand(self, a), operand(self, b), operand(self, c));
        let (alpha, beta) = (self.uniform(alpha), self.uniform(beta));
        let args = GemmArgs { m: mv, k: kv, n: nv, alpha, a, b, beta, c };
        let mut values = vec![self.addr(panels), self.int(width as i64)];
        values.extend(args.to_array());
        self.b.ins().call(symbols.gemm, &values);
    }

    /// `body` with the pointers of A, B and C of every element of `axes` (loops, outermost
    /// axis first; just once when there are none).
    fn batch_loops(&mut self, axes: &[BatchAxis], ptrs: [Value; 3], body: &mut dyn FnMut(&mut Self, [Value; 3])) {
        let Some((axis, rest)) = axes.split_first() else { return body(self, ptrs) };
        let len = self.mono(&axis.len);
        let strides = [self.mono_bytes(&axis.a), self.mono_bytes(&axis.b), self.mono_bytes(&axis.c)];
        self.for_n(len, |e, i| {
            let moved = [0, 1, 2].map(|x| e.offset(ptrs[x], i, strides[x]));
            e.batch_loops(rest, moved, body);
        });
    }

    /// One call of the batched GEMM symbol: `count` products, element e of each operand
    /// `strides[·]·e` elements after the pointers of `args`. Products smaller than the
    /// small-GEMM threshold run the generated GEMM (its address is passed), larger ones the
    /// library's single-threaded one (a null pointer).
    fn call_batched(&mut self, symbol: FuncRef, count: Value, strides: [Value; 3], args: &GemmValues) {
        let per_element = match self.env.small_gemm {
            Some((small, threshold)) => {
                let mk = self.b.ins().imul(args.m, args.k);
                let mkn = self.b.ins().imul(mk, args.n);
                let is_small = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, mkn, threshold);
                let address = self.b.ins().func_addr(I64, small);
                let null = self.int(0);
                self.b.ins().select(is_small, address, null)
            }
            None => self.int(0),
        };
        let mut values = vec![per_element, count, strides[0], strides[1], strides[2]];
        values.extend(args.to_array());
        self.b.ins().call(symbol, &values);
    }

    /// C = alpha·A·B + beta·C inline, for a product `inline_form` takes (`form`), with A, B
    /// and C at `ptrs`: a narrow side of C (n or m at most `NARROW`, known) and A contiguous
    /// along a long axis: the spiral's h·W2 (n = 3), hᵀ·dscores and xᵀ·dh (m = 2) are a few
    /// percent of a GEMM call's time, which pads the narrow side to its 8-wide tile and packs
    /// panels. Orientation: with m narrow, Cᵀ = Bᵀ·Aᵀ makes n narrow. Then
    /// - A contiguous along m: a vector of rows of A at a time, times B[p, j] splat, into
    ///   one accumulator per column j (`gemm_columns`);
    /// - A contiguous along k and B along k (fuse copies a strided B): dot products of rows
    ///   of A with the n columns of B, vectorised along k (`gemm_dots`).
    ///
    /// Each iteration does several rows (three vectors of them, or two rows of dot products),
    /// so each load of B serves several times.
    #[allow(clippy::too_many_arguments)]
    fn narrow_gemm(
        &mut self,
        m: &Mono,
        n: &Mono,
        k: &Mono,
        (a, b, c): (&Access, &Access, &Access),
        (transposed, along_rows): (bool, bool),
        [pa, pb, pc]: [Value; 3],
        scale: &Scale,
    ) {
        let t = |x: &Access| Access { strides: vec![x.strides[1].clone(), x.strides[0].clone()], ..x.clone() };
        let (m, n, a, b, c, pa, pb) =
            if transposed { (n, m, t(b), t(a), t(c), pb, pa) } else { (m, n, a.clone(), b.clone(), c.clone(), pa, pb) };
        let unit = |s: &Mono| s.as_known() == Some(1);
        let cols = n.as_known().expect("narrow sides are known") as usize;
        let (rows, depth) = (self.mono(m), self.mono(k));
        let bytes = |e: &mut Self, x: &Access, axis: usize| e.mono_bytes(&x.strides[axis]);
        let (a_rs, a_cs, b_rs, b_cs, c_rs, c_cs) = (
            bytes(self, &a, 0),
            bytes(self, &a, 1),
            bytes(self, &b, 0),
            bytes(self, &b, 1),
            bytes(self, &c, 0),
            bytes(self, &c, 1),
        );
        // Column j of C (and of B) starts j strides in.
        let c_cols: Vec<Value> = (0..cols).map(|j| self.step_by(pc, c_cs, j as i64)).collect();
        let c_walk = if unit(&c.strides[0]) { Walk::Contiguous } else { Walk::Strided(c_rs) };
        let b_cols: Vec<Value> = (0..cols).map(|j| self.step_by(pb, b_cs, j as i64)).collect();
        if along_rows {
            self.gemm_columns(rows, depth, (pa, a_cs), (&b_cols, b_rs), (&c_cols, c_walk), scale);
        } else {
            self.gemm_dots(rows, depth, (pa, a_rs), &b_cols, (&c_cols, c_rs), scale);
        }
    }

    /// `p + j·stride` (bytes) for a constant j.
    fn step_by(&mut self, p: Value, stride_bytes: Value, j: i64) -> Value {
        if j == 0 {
            return p;
        }
        let d = self.b.ins().imul_imm_s(stride_bytes, j);
        self.plus(p, d)
    }

    /// alpha·ab + beta·old, skipping what alpha = 1 and beta = 0 make unnecessary (C is not
    /// read when beta is 0: it may hold anything).
    fn scaled(&mut self, scale: &Scale, ab: Value, old: impl FnOnce(&mut Self) -> Value) -> Value {
        let vector = self.b.func.dfg.value_type(ab).is_vector();
        let widen = |e: &mut Self, s: Value| if vector { e.b.ins().splat(e.vty, s) } else { s };
        let r = match scale.alpha {
            Some(al) => {
                let al = widen(self, al);
                self.b.ins().fmul(ab, al)
            }
            None => ab,
        };
        match scale.beta {
            Some(be) => {
                let be = widen(self, be);
                let old = old(self);
                let bc = self.b.ins().fmul(old, be);
                self.b.ins().fadd(r, bc)
            }
            None => r,
        }
    }

    /// The row blocks of a loop over `rows`: (first, end, rows per step, mode, vectors per
    /// step) for `wide` vectors at a time, then one, then (vectorised) the scalar tail.
    fn row_blocks(&mut self, rows: Value, vectorised: bool, wide: i64) -> Vec<(Value, Value, i64, Mode, usize)> {
        let lanes = if vectorised { self.lanes as i64 } else { 1 };
        let zero = self.int(0);
        let blocks = self.b.ins().sdiv_imm_s(rows, wide * lanes);
        let many = self.b.ins().imul_imm_s(blocks, wide * lanes);
        let one = self.b.ins().band_imm_s(rows, -lanes);
        let mode = if vectorised { Mode::Vector } else { Mode::Tail };
        let mut blocks = vec![(zero, many, wide * lanes, mode, wide as usize), (many, one, lanes, mode, 1)];
        if vectorised {
            blocks.push((one, rows, 1, Mode::Tail, 1));
        }
        blocks
    }

    /// C[i, j] over vectors of rows i: Σ_p A[i, p]·B[p, j] with A contiguous along i.
    fn gemm_columns(
        &mut self,
        rows: Value,
        depth: Value,
        (pa, a_cs): (Value, Value),
        (b_cols, b_rs): (&[Value], Value),
        (c_cols, c_walk): (&[Value], Walk),
        scale: &Scale,
    ) {
        let cols = b_cols.len();
        for (lo, hi, step, mode, r) in self.row_blocks(rows, true, 3) {
            self.for_loop(lo, hi, step, |e, i| {
                let zero = e.splat(0.0);
                let accs: Vec<Variable> = (0..r * cols).map(|_| e.b.declare_var(e.vty)).collect();
                accs.iter().for_each(|&v| e.b.def_var(v, zero));
                let firsts: Vec<Value> =
                    (0..r).map(|v| e.b.ins().iadd_imm_s(i, (v * e.lanes as usize) as i64)).collect();
                e.for_n(depth, |e, p| {
                    let column = e.offset(pa, p, a_cs);
                    let xs: Vec<Value> = firsts.iter().map(|&f| e.load_at(column, Walk::Contiguous, f, mode)).collect();
                    for (j, &bj) in b_cols.iter().enumerate() {
                        let q = e.offset(bj, p, b_rs);
                        let s = e.load_scalar(q);
                        let s = e.b.ins().splat(e.vty, s);
                        for (v, &x) in xs.iter().enumerate() {
                            let acc = e.b.use_var(accs[v * cols + j]);
                            let acc = e.add_mul(acc, x, s);
                            e.b.def_var(accs[v * cols + j], acc);
                        }
                    }
                });
                for (j, &cj) in c_cols.iter().enumerate() {
                    for (v, &f) in firsts.iter().enumerate() {
                        let ab = e.b.use_var(accs[v * cols + j]);
                        let out = e.scaled(scale, ab, |e| e.load_at(cj, c_walk, f, mode));
                        e.store_at(out, cj, c_walk, f, mode);
                    }
                }
            });
        }
    }

    /// C[i, j] row by row: dot products of A's row i with B's column j, both contiguous
    /// along p, vectorised along p.
    fn gemm_dots(
        &mut self,
        rows: Value,
        depth: Value,
        (pa, a_rs): (Value, Value),
        b_cols: &[Value],
        (c_cols, c_rs): (&[Value], Value),
        scale: &Scale,
    ) {
        let cols = b_cols.len();
        let main = self.vector_part(depth);
        let zero_i = self.int(0);
        for (lo, hi, step, _, r) in self.row_blocks(rows, false, 2) {
            self.for_loop(lo, hi, step, |e, i| {
                let zero = e.splat(0.0);
                let accs: Vec<Variable> = (0..r * cols).map(|_| e.b.declare_var(e.vty)).collect();
                accs.iter().for_each(|&v| e.b.def_var(v, zero));
                let a_rows: Vec<Value> = (0..r)
                    .map(|v| {
                        let row = e.b.ins().iadd_imm_s(i, v as i64);
                        e.offset(pa, row, a_rs)
                    })
                    .collect();
                for (plo, phi, pstep, mode) in
                    [(zero_i, main, e.lanes as i64, Mode::Vector), (main, depth, 1, Mode::Tail)]
                {
                    e.for_loop(plo, phi, pstep, |e, p| {
                        let xs: Vec<Value> =
                            a_rows.iter().map(|&ar| e.load_at(ar, Walk::Contiguous, p, mode)).collect();
                        for (j, &bj) in b_cols.iter().enumerate() {
                            let y = e.load_at(bj, Walk::Contiguous, p, mode);
                            for (v, &x) in xs.iter().enumerate() {
                                let acc = e.b.use_var(accs[v * cols + j]);
                                let acc = e.add_mul(acc, x, y);
                                e.b.def_var(accs[v * cols + j], acc);
                            }
                        }
                    });
                }
                for (j, &cj) in c_cols.iter().enumerate() {
                    for v in 0..r {
                        let acc = e.b.use_var(accs[v * cols + j]);
                        let ab = e.horizontal(ReduceOp::Sum, acc);
                        let row = e.b.ins().iadd_imm_s(i, v as i64);
                        let q = e.offset(cj, row, c_rs);
                        let out = e.scaled(scale, ab, |e| e.load_scalar(q));
                        e.store_scalar(out, q);
                    }
                }
            });
        }
    }

    /// C = A·B (+ C when `beta` is 1) through the GEMM symbol; strides in elements.
    pub(super) fn gemm(
        &mut self,
        [m, k, n]: [Value; 3],
        (pa, sa): (Value, [Value; 2]),
        (pb, sb): (Value, [Value; 2]),
        (pc, sc): (Value, [Value; 2]),
        beta: f64,
    ) {
        let alpha = self.fconst(1.0);
        let beta = self.fconst(beta);
        let (a, b, c) = (matrix(pa, sa), matrix(pb, sb), matrix(pc, sc));
        self.gemm_call(GemmArgs { m, k, n, alpha, a, b, beta, c }, &mut Self::call_gemm);
    }

    /// C = alpha·A·B + beta·C by `call` (a GEMM symbol's call); checked, only when every
    /// matrix it touches lies inside its buffer.
    fn gemm_call(&mut self, args: GemmValues, call: &mut dyn FnMut(&mut Self, &GemmValues)) {
        if self.sink.is_none() {
            call(self, &args);
            return;
        }
        // Checked: the GEMM touches A and B when m, n, k > 0 and C when m, n > 0; it is
        // called only when every matrix it touches lies inside its buffer.
        let GemmArgs { m, k, n, a, b, c, .. } = args;
        let pos = |e: &mut Self, v: Value| e.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, v, 0);
        let (mp, kp, np) = (pos(self, m), pos(self, k), pos(self, n));
        let writes = self.b.ins().band(mp, np);
        let reads = self.b.ins().band(writes, kp);
        let ok_a = self.matrix_ok(a.ptr, m, k, a.rs, a.cs, reads);
        let ok_b = self.matrix_ok(b.ptr, k, n, b.rs, b.cs, reads);
        let ok_c = self.matrix_ok(c.ptr, m, n, c.rs, c.cs, writes);
        let ok = self.b.ins().band(ok_a, ok_b);
        let ok = self.b.ins().band(ok, ok_c);
        let (call_block, done) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(ok, call_block, &[], done, &[]);
        self.b.switch_to_block(call_block);
        self.b.seal_block(call_block);
        call(self, &args);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
        self.b.seal_block(done);
    }

    /// Call the GEMM, or the small-product one when m·k·n is below its threshold.
    fn call_gemm(&mut self, args: &GemmValues) {
        let values = args.to_array();
        let Some((small, threshold)) = self.env.small_gemm else {
            self.b.ins().call(self.env.gemm, &values);
            return;
        };
        let mk = self.b.ins().imul(args.m, args.k);
        let mkn = self.b.ins().imul(mk, args.n);
        let is_small = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, mkn, threshold);
        let (small_block, large_block, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(is_small, small_block, &[], large_block, &[]);
        for (block, f) in [(small_block, small), (large_block, self.env.gemm)] {
            self.b.switch_to_block(block);
            self.b.seal_block(block);
            self.b.ins().call(f, &values);
            self.b.ins().jump(done, &[]);
        }
        self.b.switch_to_block(done);
        self.b.seal_block(done);
    }
}

/// alpha and beta of an inline product; None where they are 1 and 0.
struct Scale {
    alpha: Option<Value>,
    beta: Option<Value>,
}

/// A GEMM operand from its pointer and [row, column] strides.
fn matrix(ptr: Value, [rs, cs]: [Value; 2]) -> Matrix<Value, Value> {
    Matrix::new(ptr, rs, cs)
}
