//! Code emission. Input: the kernels of one function (`KernelProgram`) and the memory plan;
//! output: the body of the Cranelift function (loops, vector arithmetic, calls of the GEMM
//! symbol).
//!
//! Loops are real loops (IR size grows with the number of kernels, not with tensor sizes).
//! Elementwise work runs on 128-bit vectors (f32x4 / f64x2); the scalar tail of a loop
//! evaluates the same vector code on a vector whose lane 0 holds the element, so every
//! operation has one implementation.
//!
//! In bounds-checked mode (`Env::checks`, see `Checks`) every pointer derived from an access
//! remembers its buffer, and every load, store and GEMM call is checked against it first;
//! without it the emitted code is exactly the same as if the mode did not exist.
//!
//! The `Emitter` is one type whose methods are spread over a file per kernel kind:
//! - `mod.rs` (this file): the emitter's core: symbol values, addresses, loops, float
//!   constants, loads and stores (checked when the mode is on), lane helpers, `fill`, and
//!   `kernel`, the one `match` that sends each kernel to its file;
//! - `map.rs`: `Map` and `Reduce`, fused elementwise loops and the evaluation of their
//!   expressions;
//! - `products.rs`: `Gemm`, narrow products as inline loops, others as calls of the GEMM;
//! - `conv.rs`: `Conv`, im2col / col2im and a GEMM per image, or one call of the
//!   convolution symbol;
//! - `winograd.rs`: `Winograd`, the tile transforms as loops, or one call of the transform
//!   symbol;
//! - `rows.rs`: `LogSoftmax`, `ArgMaxMask`, `OneHot`, row by row;
//! - `pool.rs`: `Pool`, max and average pooling and their gradients;
//! - `loops.rs`: `Loop`, the body's kernels in a counted loop over the step index;
//! - `random.rs`: `Random`, the Threefry-2x32 streams on i32x4 lanes;
//! - `gather.rs`: `Gather`, rows chosen by indices and the scatter-add of their gradient;
//! - `checks.rs`: bounds-checked mode, its declarations and the guards of every access.
//!
//! The vectorised exp/log/tanh/sigmoid are `Emitter` methods too, in `codegen::math`.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32, I32X4, I64, I64X2};
use cranelift_codegen::ir::{
    Endianness, FuncRef, GlobalValue, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value,
};
use cranelift_frontend::FunctionBuilder;

use super::builder::LoopBuilder;
use super::kernel::*;
use crate::ir::graph::DType;

mod checks;
mod conv;
mod gather;
mod loops;
mod map;
mod pool;
mod products;
mod random;
mod rows;
mod winograd;

use checks::Buf;
pub use checks::{declare_checks, testing, CheckDecls, Checks};

/// Run-time values the body needs that are fixed for the whole call.
pub struct Env {
    /// The five parameters of the ABI: inputs, params, outputs, dims, workspace.
    pub args: [Value; 5],
    /// Workspace offset (in elements) of every temporary (shared by every part of a program).
    pub offsets: std::rc::Rc<[Option<Poly>]>,
    /// Address of each literal data object this function uses, by `Base::Data` index:
    /// declared in the function as its kernels need them (`codegen::define_scheduled`), so a
    /// program of many parts does not declare every object in every part.
    pub data: HashMap<usize, GlobalValue>,
    /// The GEMM kernel symbol for this dtype.
    pub gemm: FuncRef,
    /// A GEMM for products of fewer than this many multiply-adds (m·k·n), when it pays to
    /// skip the library's packing: the generated one (`codegen::gemm`).
    pub small_gemm: Option<(FuncRef, i64)>,
    /// libm functions by name (`exp`, `log`, `tanh`, `pow`, or the `f` forms for f32).
    pub libm: HashMap<&'static str, FuncRef>,
    /// Compute exp/log/tanh/sigmoid by calling libm (one call per lane) instead of inline
    /// polynomials.
    pub libm_math: bool,
    /// Bounds-checked mode (`CompileOptions::checked`): check every access.
    pub checks: Option<Checks>,
    /// The target multiplies and adds in one instruction: the inline products use `fma`.
    pub fma: bool,
    /// The convolution symbol (JIT): each `Kernel::Conv` is one call of it (`symbols::conv`).
    pub conv: Option<FuncRef>,
    /// The Winograd transform symbol (JIT): each `Kernel::Winograd` is one call of it
    /// (`symbols::winograd`).
    pub winograd: Option<FuncRef>,
    /// The batched GEMM symbol (JIT): a batched product's innermost batch axis is one call of
    /// it (`symbols::batched`), which divides the products among threads.
    pub batched_gemm: Option<FuncRef>,
    /// The index-error callback (JIT, `symbols::INDEX`): a gather reports an index that is not
    /// a whole number in its axis through it (and clamps it either way).
    pub index_error: Option<FuncRef>,
    /// The packing and panel-product symbols (JIT, `symbols::panels`) of `Kernel::Pack` and
    /// `Kernel::PanelGemm`.
    pub panels: Option<PanelSymbols>,
}

/// The two symbols of products by a packed B (`symbols::PACK_F32`, `symbols::PANELS_F32`).
#[derive(Clone, Copy)]
pub struct PanelSymbols {
    pub pack: FuncRef,
    pub gemm: FuncRef,
}

/// Writes kernels into one Cranelift function, at the builder's current block.
pub struct Emitter<'f> {
    pub b: FunctionBuilder<'f>,
    pub env: Env,
    /// Scalar float type, its 128-bit vector, the integer vector of the same shape.
    pub ty: Type,
    pub vty: Type,
    pub ity: Type,
    pub ivty: Type,
    pub lanes: u8,
    /// Element size in bytes and its log2.
    pub es: i64,
    pub shift: i64,
    dims: Vec<Value>,
    /// Checked mode: the sink's address, the buffer of every pointer derived from an access,
    /// and the index of the kernel being emitted.
    sink: Option<Value>,
    bufs: HashMap<Value, Buf>,
    /// Id (`kernel::preorder`: loop bodies counted after their loop) of the last kernel
    /// emitted; set before the first kernel of a part to one less than that kernel's id.
    pub kernel_index: i64,
    /// The profiling symbol, when profiling: loop bodies tick it after each of their kernels.
    pub profile: Option<FuncRef>,
    /// In an outlined kernel (`codegen::define_scheduled`): the range of items (`lo`, `hi`)
    /// to compute, taken by the kernel's outermost loop (`take_range`).
    pub split: Option<(Value, Value)>,
    /// Kernels of loop bodies that run on the worker pool, by id (ids are unique in a
    /// program), each with the function it was outlined into (`codegen::define_outlined`),
    /// and the runner (`symbols::PARALLEL`; none in object files and checked mode).
    pub outlined_in_loops: HashMap<i64, FuncRef>,
    pub runner: Option<FuncRef>,
}

/// Whether `k` may be emitted into a function of a range of its items and run on the worker
/// pool (`Emitter::call_outlined`): maps whose every element is written once (no axis the
/// output does not walk) and read only where it is written, pools and log-softmaxes, when
/// they are large enough to share (`symbols::MIN_WORK` on each of two threads) — or, for a
/// size with run-time symbols, when a batch of 16 makes it so: an outlined kernel costs a
/// function to compile (a 1,000-layer MLP of width 64 compiled 30% slower with every layer's
/// map outlined), and the run time decides the rest.
pub fn outlines(k: &Kernel) -> bool {
    let enough = 2 * crate::runtime::symbols::MIN_WORK;
    let worth = |work: Mono| match work.as_known() {
        Some(n) => n >= enough,
        None => work.k * 16 >= enough,
    };
    match k {
        Kernel::Map { shape, expr, out } => {
            let written_once = shape.iter().zip(&out.strides).all(|(d, s)| d.as_known() == Some(1) || !s.is_zero());
            let read_in_place =
                expr.loads().iter().all(|a| a.base != out.base || (a.offset == out.offset && a.strides == out.strides));
            written_once && read_in_place && worth(Mono::product(shape).scale(expr.cost()))
        }
        Kernel::Pool { planes, geom, .. } => worth(planes.scale((geom.h * geom.w) as i64)),
        Kernel::LogSoftmax { outer, n, inner, .. } => worth(outer.mul(n).mul(inner).scale(4)),
        _ => false,
    }
}

/// How a load inside the innermost loop walks memory.
#[derive(Clone, Copy)]
enum Walk {
    /// Stride 0: loaded once before the loop and splat.
    Splat,
    /// Stride 1: vector loads.
    Contiguous,
    /// Any other stride (bytes): one scalar load per lane.
    Strided(Value),
}

/// Which half of a vectorised loop is being emitted.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Vector,
    /// One element in lane 0.
    Tail,
}

fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl<'f> Emitter<'f> {
    pub fn new(mut b: FunctionBuilder<'f>, env: Env, dtype: DType, n_symbols: usize) -> Emitter<'f> {
        let (ty, vty, ity, ivty, lanes, es, shift) = match dtype {
            DType::F32 => (F32, F32X4, I32, I32X4, 4, 4, 2),
            DType::F64 => (F64, F64X2, I64, I64X2, 2, 8, 3),
        };
        // Symbol values are read once, in the entry block, so they dominate every kernel.
        let dims = (0..n_symbols)
            .map(|s| b.ins().load(I64, MemFlagsData::trusted().with_readonly(), env.args[3], (8 * s) as i32))
            .collect();
        let sink = env.checks.as_ref().map(|c| b.ins().symbol_value(I64, c.sink));
        Emitter {
            b,
            env,
            ty,
            vty,
            ity,
            ivty,
            lanes,
            es,
            shift,
            dims,
            sink,
            bufs: HashMap::new(),
            kernel_index: -1,
            profile: None,
            split: None,
            outlined_in_loops: HashMap::new(),
            runner: None,
        }
    }

    // ---- integers, addresses --------------------------------------------------------------------

    fn mono(&mut self, m: &Mono) -> Value {
        let mut v = None;
        for &s in &m.syms {
            let d = self.dims[s as usize];
            v = Some(match v {
                None => d,
                Some(acc) => self.b.ins().imul(acc, d),
            });
        }
        match v {
            None => self.int(m.k),
            Some(v) if m.k == 1 => v,
            Some(v) => {
                let k = self.int(m.k);
                self.b.ins().imul(v, k)
            }
        }
    }

    /// A monomial number of elements, in bytes.
    fn mono_bytes(&mut self, m: &Mono) -> Value {
        self.mono(&m.scale(self.es))
    }

    fn poly(&mut self, p: &Poly) -> Value {
        let mut acc = None;
        for m in &p.0 {
            let v = self.mono(m);
            acc = Some(match acc {
                None => v,
                Some(a) => self.b.ins().iadd(a, v),
            });
        }
        acc.unwrap_or_else(|| self.int(0))
    }

    fn base(&mut self, base: Base) -> Value {
        let table = |i: usize| (i * 8) as i32;
        let f = MemFlagsData::trusted();
        match base {
            Base::Input(i) => self.b.ins().load(I64, f, self.env.args[0], table(i)),
            Base::Param(i) => self.b.ins().load(I64, f, self.env.args[1], table(i)),
            Base::Output(i) => self.b.ins().load(I64, f, self.env.args[2], table(i)),
            Base::Temp(t) => {
                let off = self.env.offsets[t].clone().expect("a used temporary has a place");
                let off = self.poly(&off);
                let bytes = self.b.ins().ishl_imm_s(off, self.shift);
                self.b.ins().iadd(self.env.args[4], bytes)
            }
            Base::Data(d) => {
                let gv = *self.env.data.get(&d).expect("the data object is declared before its kernel");
                self.b.ins().symbol_value(I64, gv)
            }
        }
    }

    /// Address of element 0 of an access.
    fn addr(&mut self, a: &Access) -> Value {
        let base = self.base(a.base);
        if self.sink.is_some() {
            let extent = self.env.checks.as_ref().and_then(|c| c.extents.get(&a.base)).cloned();
            let extent = extent.expect("checked mode: every accessed buffer has an extent");
            let bytes = self.mono_bytes(&extent);
            self.bufs.insert(base, Buf { code: a.base.code(), start: base, bytes });
        }
        if a.offset.is_zero() {
            return base;
        }
        let off = self.poly(&a.offset);
        let bytes = self.b.ins().ishl_imm_s(off, self.shift);
        let p = self.b.ins().iadd(base, bytes);
        self.derived(base, p)
    }

    /// `p + i` elements.
    fn elem(&mut self, p: Value, i: Value) -> Value {
        let d = self.b.ins().ishl_imm_s(i, self.shift);
        let q = self.b.ins().iadd(p, d);
        self.derived(p, q)
    }

    fn elem_const(&mut self, p: Value, i: i64) -> Value {
        if i == 0 {
            p
        } else {
            let d = self.int(i * self.es);
            let q = self.b.ins().iadd(p, d);
            self.derived(p, q)
        }
    }

    /// `p + bytes`, for the lanes of a strided access.
    fn plus(&mut self, p: Value, bytes: Value) -> Value {
        let q = self.b.ins().iadd(p, bytes);
        self.derived(p, q)
    }

    // ---- loops ----------------------------------------------------------------------------------

    /// The largest multiple of the vector width not above `n`.
    fn vector_part(&mut self, n: Value) -> Value {
        self.b.ins().band_imm_s(n, -(self.lanes as i64))
    }

    // ---- floats ---------------------------------------------------------------------------------

    pub fn splat(&mut self, c: f64) -> Value {
        let s = self.fconst(c);
        self.b.ins().splat(self.vty, s)
    }

    /// An integer splat in the integer vector type of the float lanes.
    pub fn isplat(&mut self, c: i64) -> Value {
        let s = self.b.ins().iconst(self.ity, c);
        self.b.ins().splat(self.ivty, s)
    }

    fn load_scalar(&mut self, p: Value) -> Value {
        let p = self.guard(p, self.es);
        self.b.ins().load(self.ty, flags(), p, 0)
    }

    fn store_scalar(&mut self, v: Value, p: Value) {
        let p = self.guard(p, self.es);
        self.b.ins().store(flags(), v, p, 0);
    }

    fn load_vector(&mut self, p: Value) -> Value {
        let p = self.guard(p, 16);
        self.b.ins().load(self.vty, flags(), p, 0)
    }

    fn store_vector(&mut self, v: Value, p: Value) {
        let p = self.guard(p, 16);
        self.b.ins().store(flags(), v, p, 0);
    }

    /// A scalar in lane 0 of a vector (the other lanes are zero and ignored).
    fn lane0(&mut self, s: Value) -> Value {
        self.b.ins().scalar_to_vector(self.vty, s)
    }

    fn first(&mut self, v: Value) -> Value {
        self.b.ins().extractlane(v, 0)
    }

    /// Reinterpret the bits of a vector as the float vector (e.g. an fcmp mask).
    pub fn as_float(&mut self, v: Value) -> Value {
        let f = MemFlagsData::new().with_endianness(Endianness::Little);
        self.b.ins().bitcast(self.vty, f, v)
    }

    pub fn as_int(&mut self, v: Value) -> Value {
        let f = MemFlagsData::new().with_endianness(Endianness::Little);
        self.b.ins().bitcast(self.ivty, f, v)
    }

    /// Lanewise `cond(a, b) ? x : y` on float vectors.
    pub fn select_cmp(&mut self, cc: FloatCC, a: Value, b: Value, x: Value, y: Value) -> Value {
        let m = self.b.ins().fcmp(cc, a, b);
        let m = self.as_float(m);
        self.b.ins().bitselect(m, x, y)
    }

    fn combine(&mut self, op: ReduceOp, acc: Value, v: Value) -> Value {
        match op {
            ReduceOp::Sum => self.b.ins().fadd(acc, v),
            // max_left(acc, v): the first maximum wins ties; either way the value is the same.
            ReduceOp::Max => self.pick(FloatCC::GreaterThanOrEqual, acc, v, acc, v),
        }
    }

    /// `cc(a, b) ? x : y` on floats or float vectors, without branches. (On x64 a scalar
    /// float `select` becomes a conditional jump, which mispredicts on data like a max pool
    /// window; in lane 0 of a vector it is a blend.)
    fn pick(&mut self, cc: FloatCC, a: Value, b: Value, x: Value, y: Value) -> Value {
        if self.b.func.dfg.value_type(x).is_vector() {
            return self.select_cmp(cc, a, b, x, y);
        }
        let (a, b, x, y) = (self.lane0(a), self.lane0(b), self.lane0(x), self.lane0(y));
        let r = self.select_cmp(cc, a, b, x, y);
        self.first(r)
    }

    /// 1.0 or 0.0 from a comparison result, without branches.
    fn flag(&mut self, cond: Value) -> Value {
        let int = if self.ty == F32 { I32 } else { I64 };
        let one_bits = if self.ty == F32 { 1f32.to_bits() as i64 } else { 1f64.to_bits() as i64 };
        let (one, zero) = (self.b.ins().iconst(int, one_bits), self.b.ins().iconst(int, 0));
        let bits = self.b.ins().select(cond, one, zero);
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), bits)
    }

    fn identity(op: ReduceOp) -> f64 {
        match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f64::NEG_INFINITY,
        }
    }

    /// Fold the lanes of a vector, lane 0 first.
    fn horizontal(&mut self, op: ReduceOp, v: Value) -> Value {
        let mut acc = self.first(v);
        for l in 1..self.lanes {
            let x = self.b.ins().extractlane(v, l);
            acc = self.combine(op, acc, x);
        }
        acc
    }

    /// Call `name(args)` from libm on every lane (the fallback for `pow`, and the libm mode).
    pub fn per_lane(&mut self, name: &'static str, args: &[Value]) -> Value {
        let f = self.env.libm[name];
        let mut out = None;
        for l in 0..self.lanes {
            let xs: Vec<Value> = args.iter().map(|&a| self.b.ins().extractlane(a, l)).collect();
            let call = self.b.ins().call(f, &xs);
            let r = self.b.inst_results(call)[0];
            out = Some(match out {
                None => self.lane0(r),
                Some(v) => self.b.ins().insertlane(v, r, l),
            });
        }
        out.expect("at least one lane")
    }

    /// Fill `len` elements at `p` with `value`.
    fn fill(&mut self, p: Value, len: Value, value: f64) {
        let v = self.splat(value);
        let s = self.fconst(value);
        let main = self.vector_part(len);
        let zero = self.int(0);
        self.for_loop(zero, main, self.lanes as i64, |e, i| {
            let at = e.elem(p, i);
            e.store_vector(v, at);
        });
        self.for_loop(main, len, 1, |e, i| {
            let at = e.elem(p, i);
            e.store_scalar(s, at);
        });
    }

    // ---- an element or vector at an index of a row ----------------------------------------------

    /// Load the vector at index `i` of a row (or its lane 0 in the tail).
    fn load_at(&mut self, row: Value, walk: Walk, i: Value, mode: Mode) -> Value {
        match (walk, mode) {
            (Walk::Splat, _) => {
                let s = self.load_scalar(row);
                self.b.ins().splat(self.vty, s)
            }
            (Walk::Contiguous, Mode::Vector) => {
                let p = self.elem(row, i);
                self.load_vector(p)
            }
            (Walk::Contiguous, Mode::Tail) => {
                let p = self.elem(row, i);
                let s = self.load_scalar(p);
                self.lane0(s)
            }
            (Walk::Strided(sb), Mode::Tail) => {
                let p = self.offset(row, i, sb);
                let s = self.load_scalar(p);
                self.lane0(s)
            }
            (Walk::Strided(sb), Mode::Vector) => {
                let p = self.offset(row, i, sb);
                let s = self.load_scalar(p);
                let mut v = self.lane0(s);
                for l in 1..self.lanes {
                    let q = self.b.ins().imul_imm_s(sb, l as i64);
                    let q = self.plus(p, q);
                    let s = self.load_scalar(q);
                    v = self.b.ins().insertlane(v, s, l);
                }
                v
            }
        }
    }

    fn store_at(&mut self, v: Value, row: Value, walk: Walk, i: Value, mode: Mode) {
        match (walk, mode) {
            (Walk::Contiguous, Mode::Vector) => {
                let p = self.elem(row, i);
                self.store_vector(v, p);
            }
            (Walk::Contiguous, Mode::Tail) => {
                let p = self.elem(row, i);
                let s = self.first(v);
                self.store_scalar(s, p);
            }
            (Walk::Strided(sb), _) => {
                let p = self.offset(row, i, sb);
                let lanes = if mode == Mode::Tail { 1 } else { self.lanes };
                for l in 0..lanes {
                    let q = self.b.ins().imul_imm_s(sb, l as i64);
                    let q = self.plus(p, q);
                    let s = self.b.ins().extractlane(v, l);
                    self.store_scalar(s, q);
                }
            }
            // Every lane writes the same element: the last lane is the last index.
            (Walk::Splat, _) => {
                let l = if mode == Mode::Tail { 0 } else { self.lanes - 1 };
                let s = self.b.ins().extractlane(v, l);
                self.store_scalar(s, row);
            }
        }
    }

    // ---- kernels --------------------------------------------------------------------------------

    /// The range of an outlined kernel's outermost loop, once (`split`), else `0..n`.
    fn take_range(&mut self, n: Value) -> (Value, Value) {
        match self.split.take() {
            Some(range) => range,
            None => (self.int(0), n),
        }
    }

    /// Instead of `kernel(k)`: one call of `runner` (`symbols::PARALLEL`) that runs `outlined`,
    /// the function `k` was emitted into with a range (`split`), over k's items on the
    /// worker pool. `k` is one that `outlines` accepts. In a loop body the step indices are
    /// symbols too: the call then passes, for the dims, a copy of every symbol's value
    /// (the run-time sizes, then the loop symbols), which the outlined function reads.
    pub fn call_outlined(&mut self, k: &Kernel, outlined: FuncRef, runner: FuncRef, in_loop: bool) {
        self.kernel_index += 1;
        self.bufs.clear();
        let (items, work) = match k {
            Kernel::Map { shape, expr, out } => self.map_items(shape, expr, out),
            Kernel::Pool { planes, geom, .. } => {
                let items = self.mono(planes);
                (items, self.b.ins().imul_imm_s(items, (geom.h * geom.w) as i64))
            }
            // Each element costs an exp and two passes: count it as a few map elements.
            Kernel::LogSoftmax { outer, n, inner, .. } => {
                let items = self.mono(outer);
                (items, self.mono(&outer.mul(n).mul(inner).scale(4)))
            }
            _ => unreachable!("`outlines` accepts maps, pools and log-softmaxes"),
        };
        let f = self.b.ins().func_addr(I64, outlined);
        let [a0, a1, a2, mut a3, a4] = self.env.args;
        if in_loop {
            let size = 8 * self.dims.len() as u32;
            let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 3));
            a3 = self.b.ins().stack_addr(I64, slot, 0);
            for (i, d) in self.dims.clone().into_iter().enumerate() {
                self.b.ins().store(MemFlagsData::trusted(), d, a3, 8 * i as i32);
            }
        }
        self.b.ins().call(runner, &[f, a0, a1, a2, a3, a4, items, work]);
    }

    pub fn kernel(&mut self, k: &Kernel) {
        self.kernel_index += 1;
        self.bufs.clear();
        match k {
            Kernel::Map { shape, expr, out } => self.map(shape, expr, out, None),
            Kernel::Reduce { shape, expr, out, op } => self.map(shape, expr, out, Some(*op)),
            Kernel::Fill { out, len, value } => {
                let p = self.addr(out);
                let n = self.mono(len);
                self.fill(p, n, *value);
            }
            Kernel::Gemm { m, n, k, a, b, c, alpha, beta, batch } => {
                self.product(m, n, k, (a, b, c), alpha, beta, batch)
            }
            Kernel::Pack { k, n, width, b, out } => self.pack(k, n, *width, b, out),
            Kernel::PanelGemm { m, n, k, a, b, panels, width, c, alpha, beta } => {
                self.panel_product(m, n, k, (a, b, c), (panels, *width), alpha, beta)
            }
            Kernel::Conv { op, batch, geom, a, b, out, col } => self.conv(*op, batch, geom, a, b, out, col.as_ref()),
            Kernel::Winograd { op, batch, geom, src, dst } => self.winograd(*op, batch, geom, src, dst),
            Kernel::LogSoftmax { outer, n, inner, x, out } => self.log_softmax(outer, n, inner, x, out),
            Kernel::ArgMaxMask { outer, n, inner, x, out } => self.argmax_mask(outer, n, inner, x, out),
            Kernel::OneHot { count, classes, x, out } => self.one_hot(count, *classes, x, out),
            Kernel::Pool { op, planes, geom, x, g, out } => self.pool(*op, planes, geom, x, g.as_ref(), out),
            Kernel::Loop { count, index, reverse, body } => self.emit_loop(*count, *index, *reverse, body),
            Kernel::Random { count, stream, key, out } => self.random(count, *stream, key, out),
            Kernel::Gather { scatter, outer, n, count, inner, x, idx, out } => {
                self.gather(*scatter, outer, n, count, inner, x, idx, out)
            }
        }
    }
}

impl<'f> LoopBuilder<'f> for Emitter<'f> {
    fn fb(&mut self) -> &mut FunctionBuilder<'f> {
        &mut self.b
    }

    fn float_type(&self) -> Type {
        self.ty
    }

    fn has_fma(&self) -> bool {
        self.env.fma
    }

    /// Checked mode: `q` points into the buffer of `p`.
    fn derived(&mut self, p: Value, q: Value) -> Value {
        if self.sink.is_some() {
            if let Some(&buf) = self.bufs.get(&p) {
                self.bufs.insert(q, buf);
            }
        }
        q
    }
}
