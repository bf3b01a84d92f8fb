//! The kernel IR between the graph and Cranelift. Input: nothing (types only); `fuse` builds
//! it from a `Graph`, `memplan` places its temporaries, `emit` turns it into loops.
//!
//! A kernel is one loop nest (or one call of the GEMM symbol inside a loop) over strided
//! memory. Sizes, strides and offsets are monomials `k · Π dims[s]` in the run-time symbols
//! (the batch `B`), so one compiled function serves every batch size.

use std::collections::HashMap;
use std::rc::Rc;

pub use super::geometry::*;
use crate::ir::graph::{Dim, Shape};
pub use crate::runtime::winograd::{Geometry as WinogradGeom, Tile, Transform};

/// `k · Π dims[s]`: a size, stride or offset known up to the run-time symbols. Normalised:
/// `syms` sorted, and empty when `k == 0`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Mono {
    pub k: i64,
    pub syms: Vec<u32>,
}

impl Mono {
    pub fn known(k: i64) -> Mono {
        Mono { k, syms: vec![] }
    }

    pub fn zero() -> Mono {
        Mono::known(0)
    }

    pub fn one() -> Mono {
        Mono::known(1)
    }

    pub fn dim(d: Dim) -> Mono {
        match d {
            Dim::Known(n) => Mono::known(n as i64),
            Dim::Sym(s) => Mono { k: 1, syms: vec![s.0] },
        }
    }

    pub fn mul(&self, o: &Mono) -> Mono {
        let k = self.k * o.k;
        if k == 0 {
            return Mono::zero();
        }
        let mut syms: Vec<u32> = self.syms.iter().chain(&o.syms).copied().collect();
        syms.sort_unstable();
        Mono { k, syms }
    }

    pub fn scale(&self, c: i64) -> Mono {
        self.mul(&Mono::known(c))
    }

    pub fn as_known(&self) -> Option<i64> {
        self.syms.is_empty().then_some(self.k)
    }

    pub fn is_zero(&self) -> bool {
        self.k == 0
    }

    pub fn eval(&self, dims: &[usize]) -> i64 {
        self.syms.iter().fold(self.k, |acc, &s| acc * dims[s as usize] as i64)
    }

    /// The number of elements of a shape.
    pub fn product(shape: &[Mono]) -> Mono {
        shape.iter().fold(Mono::one(), |acc, d| acc.mul(d))
    }
}

/// A sum of monomials with like terms combined (offsets into buffers, the workspace size).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Poly(pub Vec<Mono>);

impl Poly {
    pub fn zero() -> Poly {
        Poly(vec![])
    }

    pub fn from_mono(m: Mono) -> Poly {
        let mut p = Poly::zero();
        p.add_mono(&m);
        p
    }

    pub fn add_mono(&mut self, m: &Mono) {
        if m.is_zero() {
            return;
        }
        match self.0.iter().position(|t| t.syms == m.syms) {
            Some(i) => {
                self.0[i].k += m.k;
                if self.0[i].k == 0 {
                    self.0.remove(i);
                }
            }
            None => {
                self.0.push(m.clone());
                self.0.sort_by(|a, b| a.syms.cmp(&b.syms));
            }
        }
    }

    pub fn add(&self, o: &Poly) -> Poly {
        let mut p = self.clone();
        for m in &o.0 {
            p.add_mono(m);
        }
        p
    }

    pub fn eval(&self, dims: &[usize]) -> i64 {
        self.0.iter().map(|m| m.eval(dims)).sum()
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
}

/// A product whose m or n is at most this (known) size has a narrow side: fuse arranges its
/// operands, emit writes its loops inline instead of calling a GEMM (`Emitter::narrow_gemm`).
pub const NARROW: i64 = 4;

pub fn is_narrow(d: &Mono) -> bool {
    d.as_known().is_some_and(|d| (1..=NARROW).contains(&d))
}

/// Whether emit writes a product inline (`Emitter::narrow_gemm`) rather than calling a GEMM,
/// and how: (transposed to make n the narrow side, vectorised along A's rows). Fuse asks it
/// too, to copy a B whose columns would otherwise be strided.
pub fn inline_form(m: &Mono, n: &Mono, a: &Access, b: &Access) -> Option<(bool, bool)> {
    let unit = |s: &Mono| s.as_known() == Some(1);
    let (transposed, a0, a1, b0) = if is_narrow(n) {
        (false, &a.strides[0], &a.strides[1], &b.strides[0])
    } else if is_narrow(m) {
        // Aᵀ' = B (strides swapped), B' = Aᵀ.
        (true, &b.strides[1], &b.strides[0], &a.strides[1])
    } else {
        return None;
    };
    let along_rows = unit(a0);
    (along_rows || unit(a1) && unit(b0)).then_some((transposed, along_rows))
}

/// `m` written with symbol names: `300`, `B`, `4·B`.
pub fn mono_str(m: &Mono, symbols: &[String]) -> String {
    let names: Vec<String> =
        m.syms.iter().map(|&s| symbols.get(s as usize).cloned().unwrap_or_else(|| format!("s{s}"))).collect();
    match (m.k, names.is_empty()) {
        (k, true) => k.to_string(),
        (1, false) => names.join("·"),
        (k, false) => format!("{k}·{}", names.join("·")),
    }
}

pub fn monos(shape: &Shape) -> Vec<Mono> {
    shape.iter().map(|&d| Mono::dim(d)).collect()
}

/// Row-major strides (in elements) of a shape.
pub fn row_major(shape: &[Mono]) -> Vec<Mono> {
    let mut s = vec![Mono::one(); shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].mul(&shape[i + 1]);
    }
    s
}

/// Where a tensor's elements live. `Temp`s are placed in the workspace by `memplan`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Base {
    Input(usize),
    Param(usize),
    Output(usize),
    Temp(usize),
    /// A literal tensor, emitted as a data object of the module.
    Data(usize),
}

impl Base {
    /// The base as one number (kind · 2³² + index), as generated code reports it to the host
    /// in checked mode (`symbols::BOUNDS`).
    pub fn code(self) -> i64 {
        let (kind, i) = match self {
            Base::Input(i) => (0, i),
            Base::Param(i) => (1, i),
            Base::Output(i) => (2, i),
            Base::Temp(i) => (3, i),
            Base::Data(i) => (4, i),
        };
        (kind << 32) | i as i64
    }

    /// The inverse of `code`.
    pub fn from_code(code: i64) -> Option<Base> {
        let i = (code & 0xffff_ffff) as usize;
        Some(match code >> 32 {
            0 => Base::Input(i),
            1 => Base::Param(i),
            2 => Base::Output(i),
            3 => Base::Temp(i),
            4 => Base::Data(i),
            _ => return None,
        })
    }
}

/// A strided view of memory: element `idx` is at `base + offset + Σ idx[i] * strides[i]`
/// (in elements). The shape comes from the kernel or value that holds the access.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Access {
    pub base: Base,
    pub offset: Poly,
    pub strides: Vec<Mono>,
}

impl Access {
    /// The whole of `base`, row-major with `shape`.
    pub fn contiguous(base: Base, shape: &[Mono]) -> Access {
        Access { base, offset: Poly::zero(), strides: row_major(shape) }
    }

    /// Row-major for `shape` (strides of unit axes do not matter).
    pub fn is_contiguous(&self, shape: &[Mono]) -> bool {
        let rm = row_major(shape);
        shape.iter().zip(&self.strides).zip(&rm).all(|((d, s), r)| d.as_known() == Some(1) || s == r)
    }
}

/// Elementwise operations with one operand.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Un {
    Neg,
    Exp,
    /// e^x for an x its producer keeps at or below 0 (−a·a, −|a|, a log-softmax): the exp
    /// without overflow handling, with `Exp`'s bits (`Emitter::exp_nonpositive`).
    ExpNonpositive,
    Log,
    Sqrt,
    Abs,
    Sign,
    Tanh,
    Sigmoid,
    /// e^x − 1, accurate near 0.
    Expm1,
    /// ln(1 + x), accurate near 0.
    Log1p,
    /// The error function.
    Erf,
}

/// Elementwise operations with two operands (already broadcast to the same index space).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// a >= b ? a : b (ties to the left operand).
    Max,
    /// b >= a ? a : b (ties to the left operand).
    Min,
    GreaterEq,
    Greater,
    Equal,
}

/// The value of a tensor at one index of an iteration space: a tree of elementwise
/// operations over strided loads. Shared subtrees (`Rc`) are evaluated once per index.
#[derive(Debug, PartialEq)]
pub enum Expr {
    Load(Access),
    Const(f64),
    /// The run-time value of a symbol, as a number.
    Dim(u32),
    Unary(Un, Rc<Expr>),
    Binary(Bin, Rc<Expr>, Rc<Expr>),
    /// cond ≠ 0 ? a : b (a NaN cond picks a), as (cond, a, b).
    Select(Rc<Expr>, Rc<Expr>, Rc<Expr>),
}

impl Expr {
    /// The same value at every index: constants, dims and loads with all strides zero.
    pub fn is_uniform(&self) -> bool {
        match self {
            Expr::Load(a) => a.strides.iter().all(Mono::is_zero),
            Expr::Const(_) | Expr::Dim(_) => true,
            Expr::Unary(_, a) => a.is_uniform(),
            Expr::Binary(_, a, b) => a.is_uniform() && b.is_uniform(),
            Expr::Select(c, a, b) => c.is_uniform() && a.is_uniform() && b.is_uniform(),
        }
    }

    pub fn has_loads(&self) -> bool {
        match self {
            Expr::Load(_) => true,
            Expr::Const(_) | Expr::Dim(_) => false,
            Expr::Unary(_, a) => a.has_loads(),
            Expr::Binary(_, a, b) => a.has_loads() || b.has_loads(),
            Expr::Select(c, a, b) => c.has_loads() || a.has_loads() || b.has_loads(),
        }
    }

    /// What one element costs, in elements of the cheapest map (a load, an add and a store):
    /// 1, plus 16 for each transcendental function, 32 for `erf` and `pow`, 4 for each
    /// division or square root, each shared subtree once. It decides whether a map is worth
    /// splitting across threads (`emit::outlines`, `Emitter::call_outlined`): an LSTM cell's
    /// sigmoid over 32 × 256 elements takes about as long as an addition over 140 000.
    pub fn cost(&self) -> i64 {
        fn walk(e: &Expr, seen: &mut Vec<*const Expr>) -> i64 {
            if seen.contains(&(e as *const Expr)) {
                return 0;
            }
            seen.push(e);
            match e {
                Expr::Load(_) | Expr::Const(_) | Expr::Dim(_) => 0,
                Expr::Unary(op, a) => {
                    let own = match op {
                        Un::Neg | Un::Abs | Un::Sign => 0,
                        Un::Sqrt => 4,
                        Un::Exp | Un::ExpNonpositive | Un::Log | Un::Tanh | Un::Sigmoid | Un::Expm1 | Un::Log1p => 16,
                        Un::Erf => 32,
                    };
                    own + walk(a, seen)
                }
                Expr::Binary(op, a, b) => {
                    let own = match op {
                        Bin::Div => 4,
                        Bin::Pow => 32,
                        Bin::Add
                        | Bin::Sub
                        | Bin::Mul
                        | Bin::Max
                        | Bin::Min
                        | Bin::GreaterEq
                        | Bin::Greater
                        | Bin::Equal => 0,
                    };
                    own + walk(a, seen) + walk(b, seen)
                }
                Expr::Select(c, a, b) => walk(c, seen) + walk(a, seen) + walk(b, seen),
            }
        }
        1 + walk(self, &mut Vec::new())
    }

    pub fn as_load(&self) -> Option<&Access> {
        match self {
            Expr::Load(a) => Some(a),
            _ => None,
        }
    }

    /// Every load, each distinct access once, in first-seen order.
    pub fn loads(&self) -> Vec<Access> {
        fn walk(e: &Expr, out: &mut Vec<Access>) {
            match e {
                Expr::Load(a) => {
                    if !out.contains(a) {
                        out.push(a.clone())
                    }
                }
                Expr::Const(_) | Expr::Dim(_) => {}
                Expr::Unary(_, a) => walk(a, out),
                Expr::Binary(_, a, b) => {
                    walk(a, out);
                    walk(b, out)
                }
                Expr::Select(c, a, b) => {
                    walk(c, out);
                    walk(a, out);
                    walk(b, out)
                }
            }
        }
        let mut out = vec![];
        walk(self, &mut out);
        out
    }
}

/// Rebuild `e` with every load's access replaced by `f(access)`, keeping shared subtrees shared.
pub fn map_loads(e: &Rc<Expr>, f: &mut dyn FnMut(&Access) -> Access) -> Rc<Expr> {
    fn go(e: &Rc<Expr>, f: &mut dyn FnMut(&Access) -> Access, memo: &mut HashMap<*const Expr, Rc<Expr>>) -> Rc<Expr> {
        if let Some(done) = memo.get(&Rc::as_ptr(e)) {
            return done.clone();
        }
        let new = match &**e {
            Expr::Load(a) => Rc::new(Expr::Load(f(a))),
            Expr::Const(_) | Expr::Dim(_) => e.clone(),
            Expr::Unary(op, a) => Rc::new(Expr::Unary(*op, go(a, f, memo))),
            Expr::Binary(op, a, b) => {
                let a = go(a, f, memo);
                Rc::new(Expr::Binary(*op, a, go(b, f, memo)))
            }
            Expr::Select(c, a, b) => {
                let c = go(c, f, memo);
                let a = go(a, f, memo);
                Rc::new(Expr::Select(c, a, go(b, f, memo)))
            }
        };
        memo.insert(Rc::as_ptr(e), new.clone());
        new
    }
    go(e, f, &mut HashMap::new())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReduceOp {
    Sum,
    Max,
}

/// One batch axis of a batched product: `len` GEMMs, the operands `a`, `b` and the result `c`
/// each this many elements further on (0: an operand broadcast over the axis).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BatchAxis {
    pub len: Mono,
    pub a: Mono,
    pub b: Mono,
    pub c: Mono,
}

impl BatchAxis {
    /// The same products over fewer axes: unit axes dropped, neighbours that every operand
    /// walks as one merged (outer stride = inner stride × inner length).
    pub fn collapse(axes: &[BatchAxis]) -> Vec<BatchAxis> {
        let mut out: Vec<BatchAxis> = vec![];
        for ax in axes.iter().filter(|ax| ax.len.as_known() != Some(1)) {
            if let Some(last) = out.last_mut() {
                let step = |outer: &Mono, inner: &Mono| *outer == inner.mul(&ax.len);
                if step(&last.a, &ax.a) && step(&last.b, &ax.b) && step(&last.c, &ax.c) {
                    *last = BatchAxis { len: last.len.mul(&ax.len), ..ax.clone() };
                    continue;
                }
            }
            out.push(ax.clone());
        }
        out
    }
}

/// One loop nest. Accesses of the custom kernels (all but `Map`, `Reduce`, `Gemm`) are
/// contiguous: only their base and offset matter.
#[derive(Debug)]
pub enum Kernel {
    /// out[i] = expr(i) for every index i of `shape`: a fused chain of elementwise ops.
    Map { shape: Vec<Mono>, expr: Rc<Expr>, out: Access },
    /// out[i] = out[i] ⊕ expr(i) over `shape`; `out` has stride 0 on the reduced axes and was
    /// filled with the identity of ⊕ by a `Fill` before.
    Reduce { shape: Vec<Mono>, expr: Rc<Expr>, out: Access, op: ReduceOp },
    /// out[0 .. len] = value
    Fill { out: Access, len: Mono, value: f64 },
    /// C (m×n) = alpha·A (m×k)·B (k×n) + beta·C, each with [row, column] strides, through the
    /// GEMM symbol; with `batch` axes, one such product per batch element (outermost axis
    /// first), the accesses giving element 0. `alpha` and `beta` are scalar expressions
    /// (loads with zero strides): 1 and 0 for a plain matmul, -lr and 1 for an SGD update
    /// fused into the gradient's GEMM.
    Gemm {
        m: Mono,
        n: Mono,
        k: Mono,
        a: Access,
        b: Access,
        c: Access,
        alpha: Rc<Expr>,
        beta: Rc<Expr>,
        batch: Vec<BatchAxis>,
    },
    /// B (k × n, at `b`'s strides) copied into panels of `width` columns for `PanelGemm`
    /// (`symbols::PACK_F32`): panel q holds columns q·width.. as k rows of `width`, zero past n.
    /// JIT only: `panels::hoist` puts it before a loop whose products multiply by that B.
    Pack { k: Mono, n: Mono, width: usize, b: Access, out: Access },
    /// A `Gemm` without batch axes whose B is also in `panels` (packed by a `Pack` before the
    /// loop this kernel is in): the product by panels (`symbols::PANELS_F32`, which falls back
    /// to B in place where the panels do not pay).
    PanelGemm {
        m: Mono,
        n: Mono,
        k: Mono,
        a: Access,
        b: Access,
        panels: Access,
        width: usize,
        c: Access,
        alpha: Rc<Expr>,
        beta: Rc<Expr>,
    },
    /// Convolution by im2col/col2im and one GEMM per image; `col` is scratch (None when pointwise).
    Conv { op: ConvOp, batch: Mono, geom: ConvGeom, a: Access, b: Access, out: Access, col: Option<Access> },
    /// One Winograd transform of every tile of the batch (`runtime::winograd::Transform`),
    /// contiguous `src` to contiguous `dst` in the layouts documented there.
    Winograd { op: Transform, batch: Mono, geom: WinogradGeom, src: Access, dst: Access },
    /// Rows of length `n` at stride `inner`: out = x - max - log Σ e^(x - max).
    LogSoftmax { outer: Mono, n: Mono, inner: Mono, x: Access, out: Access },
    /// 1.0 at the first maximum of each row, else 0.0.
    ArgMaxMask { outer: Mono, n: Mono, inner: Mono, x: Access, out: Access },
    /// out[i, c] = x[i] == c.
    OneHot { count: Mono, classes: usize, x: Access, out: Access },
    /// Rows of `inner` elements chosen by the `count` whole numbers of `idx` (each clamped
    /// to 0..n), for each of `outer` blocks: out[o, j, :] = x[o, idx[j], :] (x [outer, n,
    /// inner], out [outer, count, inner]); with `scatter`, the adjoint: out[o, idx[j], :] +=
    /// x[o, j, :] in the order of j (x [outer, count, inner], out [outer, n, inner], filled
    /// with zeros before). All contiguous.
    Gather { scatter: bool, outer: Mono, n: Mono, count: Mono, inner: Mono, x: Access, idx: Access, out: Access },
    /// Pooling over `planes` = N·C images; `g` is the upstream gradient of `MaxGrad`. For
    /// `AvgGrad`, whose only operand is the gradient, `x` is that gradient.
    Pool { op: PoolOp, planes: Mono, geom: PoolGeom, x: Access, g: Option<Access>, out: Access },
    /// `body` run `count` times. While it runs, the symbol `index` (numbered after the graph's
    /// own, `KernelProgram::symbol_base`) is the step's index, `s` or `count − 1 − s` when
    /// `reverse`: the body's accesses of per-step slices and stacked outputs are offset by
    /// it. The body ends with the copies that pass each new carry on to the next step.
    Loop { count: usize, index: u32, reverse: bool, body: Vec<Kernel> },
    /// out[i] = element i of random stream `stream` (`ir::ops::random`) for i < count, under
    /// the key whose eight 16-bit pieces `key` holds.
    Random { count: Mono, stream: u32, key: Access, out: Access },
}

impl Kernel {
    /// Every access the kernel reads.
    pub fn reads(&self) -> Vec<Access> {
        match self {
            Kernel::Map { expr, .. } => expr.loads(),
            Kernel::Reduce { expr, out, .. } => {
                let mut r = expr.loads();
                r.push(out.clone());
                r
            }
            Kernel::Fill { .. } => vec![],
            Kernel::Pack { b, .. } => vec![b.clone()],
            Kernel::Gemm { a, b, c, alpha, beta, .. } | Kernel::PanelGemm { a, b, c, alpha, beta, .. } => {
                let mut r = vec![a.clone(), b.clone()];
                if let Kernel::PanelGemm { panels, .. } = self {
                    r.push(panels.clone());
                }
                r.extend(alpha.loads());
                r.extend(beta.loads());
                if **beta != Expr::Const(0.0) {
                    r.push(c.clone());
                }
                r
            }
            Kernel::Conv { a, b, col, .. } => [Some(a), Some(b), col.as_ref()].into_iter().flatten().cloned().collect(),
            Kernel::Winograd { src, .. } => vec![src.clone()],
            Kernel::LogSoftmax { x, .. } | Kernel::ArgMaxMask { x, .. } | Kernel::OneHot { x, .. } => vec![x.clone()],
            Kernel::Pool { x, g, .. } => [Some(x), g.as_ref()].into_iter().flatten().cloned().collect(),
            Kernel::Loop { body, .. } => body.iter().flat_map(Kernel::reads).collect(),
            Kernel::Random { key, .. } => vec![key.clone()],
            Kernel::Gather { scatter, x, idx, out, .. } => {
                let mut r = vec![x.clone(), idx.clone()];
                if *scatter {
                    r.push(out.clone());
                }
                r
            }
        }
    }

    /// Every access the kernel writes.
    pub fn writes(&self) -> Vec<Access> {
        match self {
            Kernel::Map { out, .. } | Kernel::Reduce { out, .. } | Kernel::Fill { out, .. } => vec![out.clone()],
            Kernel::Gemm { c, .. } | Kernel::PanelGemm { c, .. } => vec![c.clone()],
            Kernel::Pack { out, .. } => vec![out.clone()],
            Kernel::Conv { out, col, .. } => [Some(out), col.as_ref()].into_iter().flatten().cloned().collect(),
            Kernel::Winograd { dst, .. } => vec![dst.clone()],
            Kernel::LogSoftmax { out, .. }
            | Kernel::ArgMaxMask { out, .. }
            | Kernel::OneHot { out, .. }
            | Kernel::Pool { out, .. }
            | Kernel::Random { out, .. } => vec![out.clone()],
            Kernel::Gather { out, .. } => vec![out.clone()],
            Kernel::Loop { body, .. } => body.iter().flat_map(Kernel::writes).collect(),
        }
    }

    /// Replace the base of every access (reads and writes) by `f(base)`.
    pub fn rebase(&mut self, f: &dyn Fn(Base) -> Base) {
        self.map_accesses(&|a| Access { base: f(a.base), ..a.clone() });
    }

    /// Replace every access (reads and writes) `a` by `f(a)`.
    pub fn map_accesses(&mut self, f: &dyn Fn(&Access) -> Access) {
        let fix = |a: &mut Access| *a = f(a);
        let fix_expr = |e: &mut Rc<Expr>| *e = map_loads(e, &mut |a| f(a));
        match self {
            Kernel::Map { expr, out, .. } | Kernel::Reduce { expr, out, .. } => {
                fix_expr(expr);
                fix(out);
            }
            Kernel::Fill { out, .. } => fix(out),
            Kernel::Gemm { a, b, c, alpha, beta, .. } => {
                fix(a);
                fix(b);
                fix(c);
                fix_expr(alpha);
                fix_expr(beta);
            }
            Kernel::PanelGemm { a, b, panels, c, alpha, beta, .. } => {
                fix(a);
                fix(b);
                fix(panels);
                fix(c);
                fix_expr(alpha);
                fix_expr(beta);
            }
            Kernel::Pack { b, out, .. } => {
                fix(b);
                fix(out);
            }
            Kernel::Conv { a, b, out, col, .. } => {
                fix(a);
                fix(b);
                fix(out);
                col.iter_mut().for_each(fix);
            }
            Kernel::Winograd { src, dst, .. } => {
                fix(src);
                fix(dst);
            }
            Kernel::LogSoftmax { x, out, .. } | Kernel::ArgMaxMask { x, out, .. } | Kernel::OneHot { x, out, .. } => {
                fix(x);
                fix(out);
            }
            Kernel::Pool { x, g, out, .. } => {
                fix(x);
                g.iter_mut().for_each(fix);
                fix(out);
            }
            Kernel::Loop { body, .. } => body.iter_mut().for_each(|k| k.map_accesses(f)),
            Kernel::Random { key, out, .. } => {
                fix(key);
                fix(out);
            }
            Kernel::Gather { x, idx, out, .. } => {
                fix(x);
                fix(idx);
                fix(out);
            }
        }
    }

    /// One line saying what the kernel computes and over what sizes (`netc bench --profile`),
    /// with the graph's symbol names: `map [B, 100]`, `gemm 300x3 . 3x100` (m×k · k×n).
    pub fn summary(&self, symbols: &[String]) -> String {
        let m = |m: &Mono| mono_str(m, symbols);
        let shape = |s: &[Mono]| format!("[{}]", s.iter().map(m).collect::<Vec<_>>().join(", "));
        match self {
            Kernel::Map { shape: s, .. } => format!("map {}", shape(s)),
            Kernel::Reduce { shape: s, out, .. } => {
                let kept: Vec<Mono> =
                    s.iter().zip(&out.strides).filter(|(_, st)| !st.is_zero()).map(|(d, _)| d.clone()).collect();
                format!("reduce {} -> {}", shape(s), shape(&kept))
            }
            Kernel::Fill { len, .. } => format!("fill {}", m(len)),
            Kernel::Gemm { m: gm, n, k, batch, .. } if batch.is_empty() => {
                format!("gemm {}x{} . {}x{}", m(gm), m(k), m(k), m(n))
            }
            Kernel::PanelGemm { m: gm, n, k, width, .. } => {
                format!("gemm {}x{} . {}x{} (B in panels of {width})", m(gm), m(k), m(k), m(n))
            }
            Kernel::Pack { k, n, width, .. } => format!("pack {}x{} in panels of {width}", m(k), m(n)),
            Kernel::Gemm { m: gm, n, k, batch, .. } => {
                let count = batch.iter().fold(Mono::one(), |acc, ax| acc.mul(&ax.len));
                format!("gemm {} x {}x{} . {}x{}", m(&count), m(gm), m(k), m(k), m(n))
            }
            Kernel::Conv { op, batch, geom: g, .. } => format!(
                "conv {op:?} {} x [{}, {}, {}] * [{}, {}, {}, {}] stride {} pad {}",
                m(batch),
                g.c,
                g.h,
                g.w,
                g.f,
                g.c,
                g.kh,
                g.kw,
                g.stride,
                g.pad
            ),
            Kernel::Winograd { op, batch, geom: g, .. } => format!(
                "winograd {op:?} F({m}x{m}, {r}x{r}) {} x [{}, {}, {}] * [{}, {}, {r}, {r}] pad {}",
                m(batch),
                g.c,
                g.h,
                g.w,
                g.f,
                g.c,
                g.pad,
                m = g.tile.m,
                r = g.tile.r
            ),
            Kernel::LogSoftmax { outer, n, inner, .. } | Kernel::ArgMaxMask { outer, n, inner, .. } => {
                format!("{} {} rows of {} (inner {})", self.name(), m(outer), m(n), m(inner))
            }
            Kernel::OneHot { count, classes, .. } => format!("one_hot {} x {classes}", m(count)),
            Kernel::Pool { op, planes, geom: g, .. } => {
                format!("pool {op:?} {} planes {}x{} -> {}x{}", m(planes), g.h, g.w, g.oh, g.ow)
            }
            Kernel::Loop { count, reverse, body, .. } => {
                let inner: Vec<&str> = body.iter().map(Kernel::name).collect();
                format!("loop {count}{} x [{}]", if *reverse { " reversed" } else { "" }, inner.join(", "))
            }
            Kernel::Random { count, stream, .. } => format!("random stream {stream} x {}", m(count)),
            Kernel::Gather { scatter, outer, n, count, inner, .. } => format!(
                "{} {} x {} rows of {} ({} indices)",
                if *scatter { "scatter_add" } else { "gather" },
                m(outer),
                m(n),
                m(inner),
                m(count)
            ),
        }
    }

    /// A short name for statistics and CLIF comments.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Map { .. } => "map",
            Kernel::Reduce { .. } => "reduce",
            Kernel::Fill { .. } => "fill",
            Kernel::Gemm { .. } | Kernel::PanelGemm { .. } => "gemm",
            Kernel::Pack { .. } => "pack",
            Kernel::Conv { .. } => "conv",
            Kernel::Winograd { .. } => "winograd",
            Kernel::LogSoftmax { .. } => "log_softmax",
            Kernel::ArgMaxMask { .. } => "argmax_mask",
            Kernel::OneHot { .. } => "one_hot",
            Kernel::Pool { .. } => "pool",
            Kernel::Loop { .. } => "loop",
            Kernel::Random { .. } => "random",
            Kernel::Gather { scatter: false, .. } => "gather",
            Kernel::Gather { scatter: true, .. } => "scatter_add",
        }
    }
}

/// Every kernel with its depth (0 at the top, 1 in a loop body, ...), in pre-order: a loop,
/// then its body. A kernel's position here is its id in profiles and bounds reports.
pub fn preorder(kernels: &[Kernel]) -> Vec<(usize, &Kernel)> {
    fn walk<'k>(kernels: &'k [Kernel], depth: usize, out: &mut Vec<(usize, &'k Kernel)>) {
        for k in kernels {
            out.push((depth, k));
            if let Kernel::Loop { body, .. } = k {
                walk(body, depth + 1, out);
            }
        }
    }
    let mut out = vec![];
    walk(kernels, 0, &mut out);
    out
}

/// The kernels of one function, in execution order, and the buffers they need: what `fuse`
/// makes of a graph, `memplan` places and `emit` turns into Cranelift IR.
#[derive(Debug, Default)]
pub struct KernelProgram {
    pub kernels: Vec<Kernel>,
    /// Element count of each `Base::Temp`.
    pub temps: Vec<Mono>,
    /// Values of each `Base::Data` (literal tensors).
    pub data: Vec<std::sync::Arc<[f64]>>,
    /// Elements of every computed node taken separately: what a buffer per node would need.
    pub naive: Poly,
    /// The first symbol number after the graph's own: loop `k`'s step index is symbol
    /// `symbol_base + k` (`Kernel::Loop::index`).
    pub symbol_base: u32,
    /// How many loops (at any depth) the kernels hold.
    pub loop_symbols: u32,
}

impl KernelProgram {
    /// Whether the kernels call a GEMM symbol (a convolution, or a product not written inline).
    pub fn calls_gemm(&self) -> bool {
        fn calls(k: &Kernel) -> bool {
            match k {
                Kernel::Conv { .. } => true,
                Kernel::Gemm { m, n, a, b, .. } => inline_form(m, n, a, b).is_none(),
                Kernel::PanelGemm { .. } => true,
                Kernel::Loop { body, .. } => body.iter().any(calls),
                _ => false,
            }
        }
        self.kernels.iter().any(calls)
    }
}
