//! `Map` and `Reduce` kernels: a fused chain of elementwise ops as one loop nest, the
//! innermost axis on vectors with a scalar tail, reductions accumulated in registers; and the
//! evaluation of a kernel expression (`Expr`) on vectors.

use std::collections::HashMap;
use std::rc::Rc;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::F32;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::Variable;

use super::{Emitter, Mode, Walk};

/// Elements per item of an outlined map with one loop axis: a multiple of every vector pair,
/// so a range of items is whole vectors (and ~1 µs of the cheapest map).
pub(super) const MAP_BLOCK: i64 = 4096;
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;

impl Emitter<'_> {
    /// The scalar value of a uniform expression (every load has zero strides).
    pub(super) fn uniform(&mut self, e: &Rc<Expr>) -> Value {
        let leaves = e.loads();
        let index: HashMap<Access, usize> = leaves.iter().cloned().enumerate().map(|(i, a)| (a, i)).collect();
        let vals: Vec<Value> = leaves
            .iter()
            .map(|a| {
                let p = self.addr(a);
                let s = self.load_scalar(p);
                self.b.ins().splat(self.vty, s)
            })
            .collect();
        let v = self.eval(e, &index, &vals, &mut HashMap::new());
        self.first(v)
    }

    /// The loop nest of `Map` (`reduce` None) and `Reduce`: outer axes as plain loops, the
    /// innermost axis vectorised with a scalar tail.
    ///
    /// Outlined (`Emitter::split`), a map computes items `lo..hi` only: rows of its outermost
    /// axis, or blocks of [`MAP_BLOCK`] elements when it has one axis (`map_items`).
    pub(super) fn map(&mut self, shape: &[Mono], expr: &Rc<Expr>, out: &Access, reduce: Option<ReduceOp>) {
        let leaves = expr.loads();
        let (dims, strides) = self.map_layout(shape, expr, out);
        let rank = dims.len();
        let dim_vals: Vec<Value> = dims.iter().map(|d| self.mono(d)).collect();
        let stride_vals: Vec<Vec<Value>> =
            strides.iter().map(|s| s[..rank - 1].iter().map(|m| self.mono_bytes(m)).collect()).collect();
        let mut bases: Vec<Value> = leaves.iter().map(|a| self.addr(a)).collect();
        bases.push(self.addr(out));
        let walks: Vec<Walk> = strides
            .iter()
            .map(|s| match s[rank - 1].as_known() {
                Some(0) => Walk::Splat,
                Some(1) => Walk::Contiguous,
                _ => Walk::Strided(self.mono_bytes(&s[rank - 1])),
            })
            .collect();
        let index: HashMap<Access, usize> = leaves.iter().cloned().enumerate().map(|(i, a)| (a, i)).collect();
        let mut n = dim_vals[rank - 1];
        let mut outer = None;
        if let Some((lo, hi)) = self.split.take() {
            if rank == 1 {
                // Elements lo·MAP_BLOCK .. min(hi·MAP_BLOCK, n): whole vectors, so each element
                // is computed as in the whole loop.
                let start = self.b.ins().imul_imm_s(lo, MAP_BLOCK);
                let end = self.b.ins().imul_imm_s(hi, MAP_BLOCK);
                let end = self.b.ins().smin(end, n);
                for (p, w) in bases.iter_mut().zip(&walks) {
                    let step = match *w {
                        Walk::Splat => continue,
                        Walk::Contiguous => self.int(self.es),
                        Walk::Strided(bytes) => bytes,
                    };
                    *p = self.offset(*p, start, step);
                }
                n = self.b.ins().isub(end, start);
            } else {
                outer = Some((lo, hi));
            }
        }
        self.nest(&dim_vals[..rank - 1], &stride_vals, bases, outer, &mut |e, ptrs| {
            e.inner_loop(expr, &index, ptrs, &walks, n, reduce);
        });
    }

    /// The loop axes of a map: `shape` with unit axes dropped and axes every access walks as
    /// one merged (`collapse`), and a short innermost axis swapped with the longest.
    fn map_layout(&self, shape: &[Mono], expr: &Rc<Expr>, out: &Access) -> (Vec<Mono>, Vec<Vec<Mono>>) {
        let mut all: Vec<Vec<Mono>> = expr.loads().iter().map(|a| a.strides.clone()).collect();
        all.push(out.strides.clone());
        let (mut dims, mut strides) = collapse(shape, &all);
        let rank = dims.len();
        // A short innermost axis (softmax's 3 classes) would run on the scalar tail alone:
        // vectorise along the longest axis instead, with strided loads where needed.
        if let Some(i) = self.wider_axis(&dims) {
            dims.swap(i, rank - 1);
            strides.iter_mut().for_each(|s| s.swap(i, rank - 1));
        }
        (dims, strides)
    }

    /// The items an outlined map is cut into and its work (elements × `Expr::cost`): rows of
    /// the outermost loop axis, or blocks of [`MAP_BLOCK`] elements when there is one axis.
    pub(super) fn map_items(&mut self, shape: &[Mono], expr: &Rc<Expr>, out: &Access) -> (Value, Value) {
        let (dims, _) = self.map_layout(shape, expr, out);
        let elements = self.mono(&Mono::product(&dims));
        let work = self.b.ins().imul_imm_s(elements, expr.cost());
        let items = if dims.len() == 1 {
            let up = self.b.ins().iadd_imm_s(elements, MAP_BLOCK - 1);
            self.b.ins().sdiv_imm_s(up, MAP_BLOCK)
        } else {
            self.mono(&dims[0])
        };
        (items, work)
    }

    /// If the innermost of `dims` is shorter than two vectors, the axis to vectorise instead:
    /// the longest one (a run-time size counts as long).
    fn wider_axis(&self, dims: &[Mono]) -> Option<usize> {
        let last = dims.len() - 1;
        let short = |d: &Mono| d.as_known().is_some_and(|n| n < 2 * self.lanes as i64);
        if dims.len() < 2 || !short(&dims[last]) {
            return None;
        }
        let length = |d: &Mono| d.as_known().unwrap_or(i64::MAX);
        let (i, d) = dims[..last].iter().enumerate().max_by_key(|(_, d)| length(d))?;
        (length(d) > length(&dims[last])).then_some(i)
    }

    /// Loops over the outer axes, advancing one row pointer per access; `inner` gets the rows.
    /// The first loop runs over `first` (lo, hi) if given, else over its whole axis.
    fn nest(
        &mut self,
        dims: &[Value],
        strides: &[Vec<Value>],
        ptrs: Vec<Value>,
        first: Option<(Value, Value)>,
        inner: &mut dyn FnMut(&mut Self, &[Value]),
    ) {
        match dims.split_first() {
            None => inner(self, &ptrs),
            Some((&n, rest)) => {
                let level = strides[0].len() - dims.len();
                let (lo, hi) = first.unwrap_or_else(|| (self.int(0), n));
                self.for_loop(lo, hi, 1, |e, i| {
                    let moved: Vec<Value> = ptrs.iter().zip(strides).map(|(&p, s)| e.offset(p, i, s[level])).collect();
                    e.nest(rest, strides, moved, None, inner);
                });
            }
        }
    }

    fn inner_loop(
        &mut self,
        expr: &Rc<Expr>,
        index: &HashMap<Access, usize>,
        ptrs: &[Value],
        walks: &[Walk],
        n: Value,
        reduce: Option<ReduceOp>,
    ) {
        let out = ptrs.len() - 1;
        // Loop-invariant loads, once per row.
        let mut hoisted: Vec<Option<Value>> = vec![None; ptrs.len()];
        for (a, w) in walks.iter().enumerate().take(out) {
            if let Walk::Splat = w {
                let s = self.load_scalar(ptrs[a]);
                hoisted[a] = Some(self.b.ins().splat(self.vty, s));
            }
        }
        let main = self.vector_part(n);
        let zero = self.int(0);
        // A reduction along the innermost axis keeps its partial result in registers.
        let along = reduce.filter(|_| matches!(walks[out], Walk::Splat));
        let (vacc, sacc) = match along {
            Some(op) => {
                let (v, s) = (self.b.declare_var(self.vty), self.b.declare_var(self.ty));
                let (iv, is) = (self.splat(Self::identity(op)), self.fconst(Self::identity(op)));
                self.b.def_var(v, iv);
                self.b.def_var(s, is);
                (Some(v), Some(s))
            }
            None => (None, None),
        };
        // Two vectors per iteration, then one, then the scalar tail: the same operations in
        // the same order as one vector at a time (reductions accumulate in sequence), with
        // half the loop overhead.
        let lanes = self.lanes as i64;
        let pairs = self.b.ins().band_imm_s(n, -2 * lanes);
        for (lo, hi, step, mode, unroll) in [
            (zero, pairs, 2 * lanes, Mode::Vector, 2),
            (pairs, main, lanes, Mode::Vector, 1),
            (main, n, 1, Mode::Tail, 1),
        ] {
            self.for_loop(lo, hi, step, |e, first| {
                for u in 0..unroll {
                    let i = if u == 0 { first } else { e.b.ins().iadd_imm_s(first, u * lanes) };
                    e.inner_step(expr, index, ptrs, walks, &hoisted, i, mode, reduce, along, (vacc, sacc));
                }
            });
        }
        if let (Some(op), Some(v), Some(s)) = (along, vacc, sacc) {
            let v = self.b.use_var(v);
            let s = self.b.use_var(s);
            let h = self.horizontal(op, v);
            let total = self.combine(op, h, s);
            let old = self.load_scalar(ptrs[out]);
            let new = self.combine(op, old, total);
            self.store_scalar(new, ptrs[out]);
        }
    }

    /// One index `i` of an inner loop: load the leaves, evaluate, store or accumulate.
    #[allow(clippy::too_many_arguments)]
    fn inner_step(
        &mut self,
        expr: &Rc<Expr>,
        index: &HashMap<Access, usize>,
        ptrs: &[Value],
        walks: &[Walk],
        hoisted: &[Option<Value>],
        i: Value,
        mode: Mode,
        reduce: Option<ReduceOp>,
        along: Option<ReduceOp>,
        (vacc, sacc): (Option<Variable>, Option<Variable>),
    ) {
        let out = ptrs.len() - 1;
        let vals: Vec<Value> =
            (0..out).map(|a| hoisted[a].unwrap_or_else(|| self.load_at(ptrs[a], walks[a], i, mode))).collect();
        let v = self.eval(expr, index, &vals, &mut HashMap::new());
        match (reduce, along) {
            (None, _) => self.store_at(v, ptrs[out], walks[out], i, mode),
            (Some(op), Some(_)) => match mode {
                Mode::Vector => {
                    let acc = self.b.use_var(vacc.expect("vector accumulator"));
                    let acc = self.combine(op, acc, v);
                    self.b.def_var(vacc.expect("vector accumulator"), acc);
                }
                Mode::Tail => {
                    let x = self.first(v);
                    let acc = self.b.use_var(sacc.expect("scalar accumulator"));
                    let acc = self.combine(op, acc, x);
                    self.b.def_var(sacc.expect("scalar accumulator"), acc);
                }
            },
            (Some(op), None) => {
                let old = self.load_at(ptrs[out], walks[out], i, mode);
                let new = self.combine(op, old, v);
                self.store_at(new, ptrs[out], walks[out], i, mode);
            }
        }
    }

    /// The vector value of `e` given the loaded leaves.
    fn eval(
        &mut self,
        e: &Rc<Expr>,
        index: &HashMap<Access, usize>,
        leaves: &[Value],
        memo: &mut HashMap<*const Expr, Value>,
    ) -> Value {
        if let Some(&v) = memo.get(&Rc::as_ptr(e)) {
            return v;
        }
        let v = match &**e {
            Expr::Load(a) => leaves[index[a]],
            Expr::Const(c) => self.splat(*c),
            Expr::Dim(s) => {
                let f = self.b.ins().fcvt_from_sint(self.ty, self.dims[*s as usize]);
                self.b.ins().splat(self.vty, f)
            }
            Expr::Unary(op, x) => {
                let x = self.eval(x, index, leaves, memo);
                self.unary(*op, x)
            }
            // 1 - [a >= b] (max's and min's gradient routing) is the complementary mask, the
            // same 1.0 or 0.0 bits from the compare and an and-not instead of a subtraction.
            Expr::Binary(Bin::Sub, one, ge)
                if **one == Expr::Const(1.0) && matches!(**ge, Expr::Binary(Bin::GreaterEq, ..)) =>
            {
                let Expr::Binary(_, a, b) = &**ge else { unreachable!("matched a comparison") };
                let a = self.eval(a, index, leaves, memo);
                let b = self.eval(b, index, leaves, memo);
                // 1.0 where not a >= b (NaN included): ones with the >= lanes cleared (an
                // and-not; aarch64 has no vector compare for unordered-or-less).
                let m = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, a, b);
                let m = self.as_float(m);
                let one = self.splat(1.0);
                self.b.ins().band_not(one, m)
            }
            Expr::Binary(Bin::Pow, a, b) if matches!(**b, Expr::Const(_)) => {
                let Expr::Const(p) = **b else { unreachable!("matched a constant") };
                let a = self.eval(a, index, leaves, memo);
                self.pow_const(a, p)
            }
            Expr::Binary(op, a, b) => {
                let a = self.eval(a, index, leaves, memo);
                let b = self.eval(b, index, leaves, memo);
                self.binary(*op, a, b)
            }
            // b where cond == 0, else a (a NaN cond is not == 0: a, as the interpreter).
            Expr::Select(c, a, b) => {
                let c = self.eval(c, index, leaves, memo);
                let a = self.eval(a, index, leaves, memo);
                let b = self.eval(b, index, leaves, memo);
                let zero = self.splat(0.0);
                self.select_cmp(FloatCC::Equal, c, zero, b, a)
            }
        };
        memo.insert(Rc::as_ptr(e), v);
        v
    }

    fn unary(&mut self, op: Un, x: Value) -> Value {
        match op {
            Un::Neg => self.b.ins().fneg(x),
            Un::Abs => self.b.ins().fabs(x),
            Un::Sqrt => self.b.ins().sqrt(x),
            Un::Sign => {
                // sign(x) = copysign(1, x), except 0 and NaN stay as they are.
                let sign_bit = self.splat(-0.0);
                let s = self.b.ins().band(x, sign_bit);
                let one = self.splat(1.0);
                let unit = self.b.ins().bor(s, one);
                let zero = self.splat(0.0);
                let below = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                let above = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                let nonzero = self.b.ins().bor(below, above);
                let nonzero = self.as_float(nonzero);
                self.b.ins().bitselect(nonzero, unit, x)
            }
            Un::Exp => self.exp(x),
            Un::ExpNonpositive => self.exp_nonpositive(x),
            Un::Log => self.log(x),
            Un::Tanh => self.tanh(x),
            Un::Sigmoid => self.sigmoid(x),
            Un::Expm1 => self.expm1(x),
            Un::Log1p => self.log1p(x),
            Un::Erf => self.erf(x),
        }
    }

    /// 1.0 where the comparison holds, else 0.0 (the compare's all-ones lanes and 1.0's bits).
    fn mask(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        let m = self.b.ins().fcmp(cc, a, b);
        let m = self.as_float(m);
        let one = self.splat(1.0);
        self.b.ins().band(m, one)
    }

    fn binary(&mut self, op: Bin, a: Value, b: Value) -> Value {
        match op {
            Bin::Add => self.b.ins().fadd(a, b),
            Bin::Sub => self.b.ins().fsub(a, b),
            Bin::Mul => self.b.ins().fmul(a, b),
            Bin::Div => self.b.ins().fdiv(a, b),
            Bin::Pow => {
                let name = if self.ty == F32 { "powf" } else { "pow" };
                self.per_lane(name, &[a, b])
            }
            Bin::Max => self.select_cmp(FloatCC::GreaterThanOrEqual, a, b, a, b),
            Bin::Min => self.select_cmp(FloatCC::GreaterThanOrEqual, b, a, a, b),
            Bin::GreaterEq => self.mask(FloatCC::GreaterThanOrEqual, a, b),
            Bin::Greater => self.mask(FloatCC::GreaterThan, a, b),
            Bin::Equal => self.mask(FloatCC::Equal, a, b),
        }
    }

    /// a^p for a constant p: multiplications for small whole powers (exact like pow for
    /// squares), sqrt for halves, libm otherwise.
    fn pow_const(&mut self, a: Value, p: f64) -> Value {
        if p == 0.5 {
            return self.b.ins().sqrt(a);
        }
        if p.fract() == 0.0 && p.abs() <= 4.0 {
            let n = p.abs() as u32;
            if n == 0 {
                return self.splat(1.0);
            }
            let mut r = a;
            for _ in 1..n {
                r = self.b.ins().fmul(r, a);
            }
            if p < 0.0 {
                let one = self.splat(1.0);
                r = self.b.ins().fdiv(one, r);
            }
            return r;
        }
        let pv = self.splat(p);
        let name = if self.ty == F32 { "powf" } else { "pow" };
        self.per_lane(name, &[a, pv])
    }
}

/// Drop unit axes and merge neighbouring axes that every access walks as one (stride of the
/// outer = stride of the inner × inner size). Returns dims and per-access strides; never
/// empty (a scalar becomes one axis of size 1).
fn collapse(shape: &[Mono], strides: &[Vec<Mono>]) -> (Vec<Mono>, Vec<Vec<Mono>>) {
    let keep: Vec<usize> = (0..shape.len()).filter(|&i| shape[i].as_known() != Some(1)).collect();
    let mut dims: Vec<Mono> = vec![];
    let mut out: Vec<Vec<Mono>> = vec![vec![]; strides.len()];
    for &i in &keep {
        let mergeable = !dims.is_empty()
            && strides.iter().zip(&out).all(|(s, o)| *o.last().expect("same length as dims") == s[i].mul(&shape[i]));
        if mergeable {
            let last = dims.len() - 1;
            dims[last] = dims[last].mul(&shape[i]);
            for (o, s) in out.iter_mut().zip(strides) {
                *o.last_mut().expect("same length as dims") = s[i].clone();
            }
        } else {
            dims.push(shape[i].clone());
            for (o, s) in out.iter_mut().zip(strides) {
                o.push(s[i].clone());
            }
        }
    }
    if dims.is_empty() {
        dims.push(Mono::one());
        for o in &mut out {
            o.push(Mono::zero());
        }
    }
    (dims, out)
}
