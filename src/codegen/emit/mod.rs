//! Code emission. Input: the kernels of one function and the memory plan; output: the body
//! of the Cranelift function (loops, vector arithmetic, calls of the GEMM symbol).
//!
//! Loops are real loops (IR size grows with the number of kernels, not with tensor sizes).
//! Elementwise work runs on 128-bit vectors (f32x4 / f64x2); the scalar tail of a loop
//! evaluates the same vector code on a vector whose lane 0 holds the element, so every
//! operation has one implementation.
//!
//! In bounds-checked mode (`Env::checks`, see `Checks`) every pointer derived from an access
//! remembers its buffer, and every load, store and GEMM call is checked against it first;
//! without it the emitted code is exactly the same as if the mode did not exist.

use std::collections::HashMap;
use std::rc::Rc;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32, I32X4, I64, I64X2, I8};
use cranelift_codegen::ir::{
    Endianness, FuncRef, Function, GlobalValue, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, ModuleError};

use super::kernel::*;
use crate::diag::Diagnostic;
use crate::ir::graph::{DType, Graph};
use crate::runtime::symbols;

/// Run-time values the body needs that are fixed for the whole call.
pub struct Env {
    /// The five parameters of the ABI: inputs, params, outputs, dims, workspace.
    pub args: [Value; 5],
    /// Workspace offset (in elements) of every temporary.
    pub offsets: Vec<Option<Poly>>,
    /// Address of every literal data object.
    pub data: Vec<GlobalValue>,
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
}

/// What bounds-checked code needs: every buffer's extent, the host callback that records a
/// violation, and a scratch "sink" that a refused access goes to instead.
///
/// Every load and store is checked against the buffer its pointer was derived from (an
/// input, parameter, output, workspace temporary or literal) — a vector access from its
/// first to its last lane — and every GEMM call against the extents of A, B and C from m,
/// k, n and the strides. An access outside its buffer is not performed: the host is called
/// (`symbols::BOUNDS`, with the kernel index, `Base::code` of the buffer, the offending
/// element offset and the buffer's length) and the access goes to the sink; a GEMM call is
/// skipped. The function then runs to its end and the caller reports the first violation.
pub struct Checks {
    /// Elements of each buffer the kernels access.
    pub extents: HashMap<Base, Mono>,
    /// `symbols::BOUNDS`.
    pub violation: FuncRef,
    /// 64 writable bytes that refused accesses read and write.
    pub sink: GlobalValue,
}

/// The module-level declarations of checked mode (see `Checks`).
pub struct CheckDecls {
    extents: HashMap<Base, Mono>,
    violation: FuncId,
    sink: DataId,
}

/// Declare the bounds-violation callback and the sink in `module`, and compute the extent
/// of every buffer `prog` accesses: inputs, parameters and outputs from the graph's shapes,
/// temporaries from `prog.temps` (each its own extent, not the workspace), literals from
/// their values.
pub fn declare_checks<M: Module>(module: &mut M, g: &Graph, prog: &KernelProgram) -> Result<CheckDecls, Diagnostic> {
    let err = |e: ModuleError| Diagnostic::new("E-codegen", format!("code generation failed: {e}"));
    let mut extents = HashMap::new();
    for (i, x) in g.inputs.iter().enumerate() {
        extents.insert(Base::Input(i), Mono::product(&monos(&x.shape)));
    }
    for (i, p) in g.params.iter().enumerate() {
        extents.insert(Base::Param(i), Mono::product(&monos(&p.shape)));
    }
    for (i, (_, id)) in g.outputs.iter().enumerate() {
        extents.insert(Base::Output(i), Mono::product(&monos(g.shape(*id))));
    }
    for (t, m) in prog.temps.iter().enumerate() {
        extents.insert(Base::Temp(t), m.clone());
    }
    for (d, values) in prog.data.iter().enumerate() {
        extents.insert(Base::Data(d), Mono::known(values.len() as i64));
    }
    if let Some((base, by)) = testing::take() {
        if let Some(m) = extents.get_mut(&base) {
            *m = Mono { k: m.k - by, syms: m.syms.clone() };
        }
    }
    let mut sig = module.make_signature();
    sig.params.extend([cranelift_codegen::ir::AbiParam::new(I64); 4]);
    let violation = module.declare_function(symbols::BOUNDS, Linkage::Import, &sig).map_err(err)?;
    let sink = module.declare_anonymous_data(true, false).map_err(err)?;
    let mut desc = DataDescription::new();
    desc.define_zeroinit(64);
    desc.set_align(64);
    module.define_data(sink, &desc).map_err(err)?;
    Ok(CheckDecls { extents, violation, sink })
}

impl CheckDecls {
    /// The references of `func` to the declarations.
    pub fn in_func<M: Module>(&self, module: &mut M, func: &mut Function) -> Checks {
        Checks {
            extents: self.extents.clone(),
            violation: module.declare_func_in_func(self.violation, func),
            sink: module.declare_data_in_func(self.sink, func),
        }
    }
}

/// A hook for tests: make checked mode fire without a broken code generator.
#[doc(hidden)]
pub mod testing {
    use super::Base;
    use std::cell::Cell;

    thread_local! {
        pub(super) static SHRINK: Cell<Option<(Base, i64)>> = const { Cell::new(None) };
    }

    /// The next checked compile on this thread declares `base` `by` elements shorter than it
    /// is (times its symbols), so that correct code overruns it: as if the generated code,
    /// not the buffer, were wrong.
    pub fn shrink_next_extent(base: Base, by: i64) {
        SHRINK.set(Some((base, by)));
    }

    /// The shrink of this compile: the thread's (`shrink_next_extent`), else that of the
    /// environment variable `NETC_CHECKED_SHRINK=KIND:INDEX:BY` (KIND one of input, param,
    /// output, temp, data), so that the command line's `--checked` can be made to fire too.
    pub(super) fn take() -> Option<(Base, i64)> {
        SHRINK.take().or_else(|| {
            let v = std::env::var("NETC_CHECKED_SHRINK").ok()?;
            let mut it = v.split(':');
            let (kind, i, by) = (it.next()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
            let base = match kind {
                "input" => Base::Input(i),
                "param" => Base::Param(i),
                "output" => Base::Output(i),
                "temp" => Base::Temp(i),
                "data" => Base::Data(i),
                _ => return None,
            };
            Some((base, by))
        })
    }
}

/// Checked mode: the buffer a pointer points into (its start and length in bytes).
#[derive(Clone, Copy)]
struct Buf {
    code: i64,
    start: Value,
    bytes: Value,
}

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
    /// Index (in the whole program) of the last kernel emitted; set before the first kernel
    /// of a part to one less than that kernel's index.
    pub kernel_index: i64,
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
        Emitter { b, env, ty, vty, ity, ivty, lanes, es, shift, dims, sink, bufs: HashMap::new(), kernel_index: -1 }
    }

    // ---- integers, addresses, loops ------------------------------------------------------------

    fn int(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

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
            Base::Data(d) => self.b.ins().symbol_value(I64, self.env.data[d]),
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

    /// Checked mode: `q` points into the buffer of `p`.
    fn derived(&mut self, p: Value, q: Value) -> Value {
        if self.sink.is_some() {
            if let Some(&buf) = self.bufs.get(&p) {
                self.bufs.insert(q, buf);
            }
        }
        q
    }

    /// `p + i * stride_bytes`.
    fn offset(&mut self, p: Value, i: Value, stride_bytes: Value) -> Value {
        let d = self.b.ins().imul(i, stride_bytes);
        let q = self.b.ins().iadd(p, d);
        self.derived(p, q)
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

    // ---- bounds checks (checked mode) ------------------------------------------------------

    /// The address at which to access `bytes` bytes at `p`: `p` itself, or in checked mode,
    /// when the access does not lie inside p's buffer, the sink (after reporting it).
    fn guard(&mut self, p: Value, bytes: i64) -> Value {
        let Some(sink) = self.sink else { return p };
        let buf = *self.bufs.get(&p).expect("checked mode: every accessed pointer is derived from an access");
        let off = self.b.ins().isub(p, buf.start);
        let last = self.b.ins().iadd_imm_s(off, bytes - self.es);
        // Unsigned: an address below the start is a huge offset.
        let first_in = self.b.ins().icmp(IntCC::UnsignedLessThan, off, buf.bytes);
        let last_in = self.b.ins().icmp(IntCC::UnsignedLessThan, last, buf.bytes);
        let ok = self.b.ins().band(first_in, last_in);
        self.report_unless(ok, buf, |e| {
            let bad = e.b.ins().select(first_in, last, off);
            e.b.ins().sshr_imm_s(bad, e.shift)
        });
        self.b.ins().select(ok, p, sink)
    }

    /// Unless `ok`, call the host's violation callback with the element offset `offset()`.
    fn report_unless(&mut self, ok: Value, buf: Buf, offset: impl FnOnce(&mut Self) -> Value) {
        let Some(checks) = &self.env.checks else { return };
        let violation = checks.violation;
        let cold = self.b.create_block();
        let cont = self.b.create_block();
        self.b.set_cold_block(cold);
        self.b.ins().brif(ok, cont, &[], cold, &[]);
        self.b.switch_to_block(cold);
        self.b.seal_block(cold);
        let at = offset(self);
        let len = self.b.ins().sshr_imm_s(buf.bytes, self.shift);
        let (k, code) = (self.int(self.kernel_index), self.int(buf.code));
        self.b.ins().call(violation, &[k, code, at, len]);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    /// Checked mode: whether the `rows` × `cols` matrix at `p` with element strides `rs`, `cs`
    /// lies inside p's buffer (or is not touched: `active` is false), reporting it if not.
    fn matrix_ok(&mut self, p: Value, rows: Value, cols: Value, rs: Value, cs: Value, active: Value) -> Value {
        let buf = *self.bufs.get(&p).expect("checked mode: every GEMM operand is derived from an access");
        let zero = self.int(0);
        let (r1, c1) = (self.b.ins().iadd_imm_s(rows, -1), self.b.ins().iadd_imm_s(cols, -1));
        let (x, y) = (self.b.ins().imul(r1, rs), self.b.ins().imul(c1, cs));
        let (xl, yl) = (self.b.ins().smin(x, zero), self.b.ins().smin(y, zero));
        let (xh, yh) = (self.b.ins().smax(x, zero), self.b.ins().smax(y, zero));
        let (lo, hi) = (self.b.ins().iadd(xl, yl), self.b.ins().iadd(xh, yh));
        let off = self.b.ins().isub(p, buf.start);
        let off = self.b.ins().sshr_imm_s(off, self.shift);
        let (lo, hi) = (self.b.ins().iadd(off, lo), self.b.ins().iadd(off, hi));
        let len = self.b.ins().sshr_imm_s(buf.bytes, self.shift);
        let lo_in = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, lo, 0);
        let hi_in = self.b.ins().icmp(IntCC::SignedLessThan, hi, len);
        let inside = self.b.ins().band(lo_in, hi_in);
        let idle = self.b.ins().bxor_imm_s(active, 1);
        let ok = self.b.ins().bor(inside, idle);
        self.report_unless(ok, buf, |e| e.b.ins().select(lo_in, hi, lo));
        ok
    }

    /// `for i in (lo..hi).step_by(step) { body(i) }`, as a rotated loop: one guard, then one
    /// compare and branch per iteration.
    fn for_loop(&mut self, lo: Value, hi: Value, step: i64, body: impl FnOnce(&mut Self, Value)) {
        let var = self.b.declare_var(I64);
        self.b.def_var(var, lo);
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        let enter = self.b.ins().icmp(IntCC::SignedLessThan, lo, hi);
        self.b.ins().brif(enter, body_block, &[], exit, &[]);
        self.b.switch_to_block(body_block);
        let i = self.b.use_var(var);
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(var, next);
        let again = self.b.ins().icmp(IntCC::SignedLessThan, next, hi);
        self.b.ins().brif(again, body_block, &[], exit, &[]);
        self.b.seal_block(body_block);
        self.b.seal_block(exit);
        self.b.switch_to_block(exit);
    }

    fn for_n(&mut self, n: Value, body: impl FnOnce(&mut Self, Value)) {
        let zero = self.int(0);
        self.for_loop(zero, n, 1, body)
    }

    /// The largest multiple of the vector width not above `n`.
    fn vector_part(&mut self, n: Value) -> Value {
        self.b.ins().band_imm_s(n, -(self.lanes as i64))
    }

    // ---- floats ----------------------------------------------------------------------------

    pub fn fconst(&mut self, c: f64) -> Value {
        if self.ty == F32 {
            self.b.ins().f32const(c as f32)
        } else {
            self.b.ins().f64const(c)
        }
    }

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

    // ---- kernels ---------------------------------------------------------------------------

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
            Kernel::Gemm { m, n, k, a, b, c, alpha, beta } if self.narrow_gemm(m, n, k, a, b, c, alpha, beta) => {}
            Kernel::Gemm { m, n, k, a, b, c, alpha, beta } => {
                let (mv, nv, kv) = (self.mono(m), self.mono(n), self.mono(k));
                let (pa, pb, pc) = (self.addr(a), self.addr(b), self.addr(c));
                let sa = [self.mono(&a.strides[0]), self.mono(&a.strides[1])];
                let sb = [self.mono(&b.strides[0]), self.mono(&b.strides[1])];
                let sc = [self.mono(&c.strides[0]), self.mono(&c.strides[1])];
                let (alpha, beta) = (self.uniform(alpha), self.uniform(beta));
                self.gemm_call([mv, kv, nv], alpha, (pa, sa), (pb, sb), beta, (pc, sc));
            }
            Kernel::Conv { op, batch, geom, a, b, out, col } => self.conv(*op, batch, geom, a, b, out, col.as_ref()),
            Kernel::LogSoftmax { outer, n, inner, x, out } => self.log_softmax(outer, n, inner, x, out),
            Kernel::ArgMaxMask { outer, n, inner, x, out } => self.argmax_mask(outer, n, inner, x, out),
            Kernel::OneHot { count, classes, x, out } => self.one_hot(count, *classes, x, out),
            Kernel::Pool { op, planes, geom, x, g, out } => self.pool(*op, planes, geom, x, g.as_ref(), out),
        }
    }

    /// C = alpha·A·B + beta·C inline, when one side of C is narrow (n or m at most
    /// `NARROW`, known) and A runs contiguously along a long axis: the spiral's h·W2 (n = 3),
    /// hᵀ·dscores and xᵀ·dh (m = 2) are a few percent of a GEMM call's time, which pads the
    /// narrow side to its 8-wide tile and packs panels. Returns false (emits nothing) for
    /// other products. Orientation: with m narrow, Cᵀ = Bᵀ·Aᵀ makes n narrow. Then
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
        a: &Access,
        b: &Access,
        c: &Access,
        alpha: &Rc<Expr>,
        beta: &Rc<Expr>,
    ) -> bool {
        let Some((transposed, along_rows)) = inline_form(m, n, a, b) else { return false };
        let t = |x: &Access| Access { strides: vec![x.strides[1].clone(), x.strides[0].clone()], ..x.clone() };
        let (m, n, a, b, c) =
            if transposed { (n, m, t(b), t(a), t(c)) } else { (m, n, a.clone(), b.clone(), c.clone()) };
        let unit = |s: &Mono| s.as_known() == Some(1);
        let cols = n.as_known().expect("narrow sides are known") as usize;
        let (rows, depth) = (self.mono(m), self.mono(k));
        let (pa, pb, pc) = (self.addr(&a), self.addr(&b), self.addr(&c));
        let scale = Scale {
            alpha: (**alpha != Expr::Const(1.0)).then(|| self.uniform(alpha)),
            beta: (**beta != Expr::Const(0.0)).then(|| self.uniform(beta)),
        };
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
        if along_rows {
            let b_cols: Vec<Value> = (0..cols).map(|j| self.step_by(pb, b_cs, j as i64)).collect();
            self.gemm_columns(rows, depth, (pa, a_cs), (&b_cols, b_rs), (&c_cols, c_walk), &scale);
        } else {
            let b_cols: Vec<Value> = (0..cols).map(|j| self.step_by(pb, b_cs, j as i64)).collect();
            self.gemm_dots(rows, depth, (pa, a_rs), &b_cols, (&c_cols, c_rs), &scale);
        }
        true
    }

    /// `p + j·stride` (bytes) for a constant j.
    fn step_by(&mut self, p: Value, stride_bytes: Value, j: i64) -> Value {
        if j == 0 {
            return p;
        }
        let d = self.b.ins().imul_imm_s(stride_bytes, j);
        self.plus(p, d)
    }

    /// a·b + acc, in one instruction where the target has FMA.
    fn mul_add(&mut self, a: Value, b: Value, acc: Value) -> Value {
        if self.env.fma {
            self.b.ins().fma(a, b, acc)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(acc, p)
        }
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
                            let acc = e.mul_add(x, s, acc);
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
                                let acc = e.mul_add(x, y, acc);
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
    fn gemm(
        &mut self,
        mkn: [Value; 3],
        a: (Value, [Value; 2]),
        b: (Value, [Value; 2]),
        c: (Value, [Value; 2]),
        beta: f64,
    ) {
        let alpha = self.fconst(1.0);
        let beta = self.fconst(beta);
        self.gemm_call(mkn, alpha, a, b, beta, c);
    }

    /// C = alpha·A·B + beta·C.
    fn gemm_call(
        &mut self,
        mkn: [Value; 3],
        alpha: Value,
        a: (Value, [Value; 2]),
        b: (Value, [Value; 2]),
        beta: Value,
        c: (Value, [Value; 2]),
    ) {
        let args = [mkn[0], mkn[1], mkn[2], alpha, a.0, a.1[0], a.1[1], b.0, b.1[0], b.1[1], beta, c.0, c.1[0], c.1[1]];
        if self.sink.is_none() {
            self.call_gemm(&args);
            return;
        }
        // Checked: the GEMM touches A and B when m, n, k > 0 and C when m, n > 0; it is
        // called only when every matrix it touches lies inside its buffer.
        let [m, k, n] = mkn;
        let pos = |e: &mut Self, v: Value| e.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, v, 0);
        let (mp, kp, np) = (pos(self, m), pos(self, k), pos(self, n));
        let writes = self.b.ins().band(mp, np);
        let reads = self.b.ins().band(writes, kp);
        let ok_a = self.matrix_ok(a.0, m, k, a.1[0], a.1[1], reads);
        let ok_b = self.matrix_ok(b.0, k, n, b.1[0], b.1[1], reads);
        let ok_c = self.matrix_ok(c.0, m, n, c.1[0], c.1[1], writes);
        let ok = self.b.ins().band(ok_a, ok_b);
        let ok = self.b.ins().band(ok, ok_c);
        let (call, done) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(ok, call, &[], done, &[]);
        self.b.switch_to_block(call);
        self.b.seal_block(call);
        self.call_gemm(&args);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
        self.b.seal_block(done);
    }

    /// Call the GEMM, or the small-product one when m·k·n is below its threshold.
    fn call_gemm(&mut self, args: &[Value; 14]) {
        let Some((small, threshold)) = self.env.small_gemm else {
            self.b.ins().call(self.env.gemm, args);
            return;
        };
        let mk = self.b.ins().imul(args[0], args[1]);
        let mkn = self.b.ins().imul(mk, args[2]);
        let is_small = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, mkn, threshold);
        let (small_block, large_block, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(is_small, small_block, &[], large_block, &[]);
        for (block, f) in [(small_block, small), (large_block, self.env.gemm)] {
            self.b.switch_to_block(block);
            self.b.seal_block(block);
            self.b.ins().call(f, args);
            self.b.ins().jump(done, &[]);
        }
        self.b.switch_to_block(done);
        self.b.seal_block(done);
    }

    /// The scalar value of a uniform expression (every load has zero strides).
    fn uniform(&mut self, e: &Rc<Expr>) -> Value {
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
    fn map(&mut self, shape: &[Mono], expr: &Rc<Expr>, out: &Access, reduce: Option<ReduceOp>) {
        let leaves = expr.loads();
        let mut all: Vec<Vec<Mono>> = leaves.iter().map(|a| a.strides.clone()).collect();
        all.push(out.strides.clone());
        let (mut dims, mut strides) = collapse(shape, &all);
        let rank = dims.len();
        // A short innermost axis (softmax's 3 classes) would run on the scalar tail alone:
        // vectorise along the longest axis instead, with strided loads where needed.
        if let Some(i) = self.wider_axis(&dims) {
            dims.swap(i, rank - 1);
            strides.iter_mut().for_each(|s| s.swap(i, rank - 1));
        }
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
        let n = dim_vals[rank - 1];
        self.nest(&dim_vals[..rank - 1], &stride_vals, bases, &mut |e, ptrs| {
            e.inner_loop(expr, &index, ptrs, &walks, n, reduce);
        });
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
    fn nest(
        &mut self,
        dims: &[Value],
        strides: &[Vec<Value>],
        ptrs: Vec<Value>,
        inner: &mut dyn FnMut(&mut Self, &[Value]),
    ) {
        match dims.split_first() {
            None => inner(self, &ptrs),
            Some((&n, rest)) => {
                let level = strides[0].len() - dims.len();
                self.for_n(n, |e, i| {
                    let moved: Vec<Value> = ptrs.iter().zip(strides).map(|(&p, s)| e.offset(p, i, s[level])).collect();
                    e.nest(rest, strides, moved, inner);
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
            Un::Log => self.log(x),
            Un::Tanh => self.tanh(x),
            Un::Sigmoid => self.sigmoid(x),
        }
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
            Bin::GreaterEq => {
                let m = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, a, b);
                let m = self.as_float(m);
                let one = self.splat(1.0);
                self.b.ins().band(m, one)
            }
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

    // ---- convolution -----------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn conv(
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

    // ---- rows: log_softmax, argmax_mask, one_hot --------------------------------------------

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
        self.for_n(o, |e, oi| {
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
            let acc_v = self.b.declare_var(self.vty);
            let initv = self.splat(Self::identity(op));
            self.b.def_var(acc_v, initv);
            let main = self.vector_part(n);
            self.for_loop(zero, main, self.lanes as i64, |e, j| {
                let p = e.elem(row, j);
                let v = e.load_vector(p);
                let v = f(e, v);
                let acc = e.b.use_var(acc_v);
                let acc = e.combine(op, acc, v);
                e.b.def_var(acc_v, acc);
            });
            let v = self.b.use_var(acc_v);
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
    fn log_softmax(&mut self, outer: &Mono, n: &Mono, inner: &Mono, x: &Access, out: &Access) {
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
                e.exp(d)
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
        let (px, pout) = (self.addr(x), self.addr(out));
        let row_bytes = self.int(n * self.es);
        let walk = Walk::Strided(row_bytes);
        let main = self.vector_part(rows);
        let zero = self.int(0);
        for mode in [Mode::Vector, Mode::Tail] {
            let (lo, hi, step) = match mode {
                Mode::Vector => (zero, main, self.lanes as i64),
                Mode::Tail => (main, rows, 1),
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
                    let t = e.exp(d);
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
    fn argmax_mask(&mut self, outer: &Mono, n: &Mono, inner: &Mono, x: &Access, out: &Access) {
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
    fn one_hot(&mut self, count: &Mono, classes: usize, x: &Access, out: &Access) {
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
                for c in 0..classes {
                    let class = e.splat(c as f64);
                    let hit = e.b.ins().fcmp(FloatCC::Equal, labels, class);
                    let hit = e.as_float(hit);
                    let one = e.splat(1.0);
                    let v = e.b.ins().band(hit, one);
                    let column = e.elem_const(pout, c as i64);
                    e.store_at(v, column, walk, i, mode);
                }
            });
        }
    }

    // ---- pooling -------------------------------------------------------------------------------

    /// Windows are unrolled (size² taps at constant offsets); planes, rows and columns loop.
    fn pool(&mut self, op: PoolOp, planes: &Mono, g: &PoolGeom, x: &Access, grad: Option<&Access>, out: &Access) {
        let np = self.mono(planes);
        let (px, pout) = (self.addr(x), self.addr(out));
        let pg = grad.map(|a| self.addr(a));
        let (big, small) = ((g.h * g.w) as i64, (g.oh * g.ow) as i64);
        // The [N, C, H, W] side: x for Max/MaxGrad/Avg, the output for AvgGrad and MaxGrad.
        if matches!(op, PoolOp::MaxGrad | PoolOp::AvgGrad) {
            let len = self.b.ins().imul_imm_s(np, big);
            self.fill(pout, len, 0.0);
        }
        let area = (g.size * g.size) as f64;
        let taps: Vec<i64> = (0..g.size).flat_map(|a| (0..g.size).map(move |b| (a * g.w + b) as i64)).collect();
        let (big_b, small_b) = (self.int(big * self.es), self.int(small * self.es));
        let (oh, ow) = (self.int(g.oh as i64), self.int(g.ow as i64));
        self.for_n(np, |e, plane| {
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

/// alpha and beta of an inline product; None where they are 1 and 0.
struct Scale {
    alpha: Option<Value>,
    beta: Option<Value>,
}

/// Rows of at most this many values (known) are log-softmaxed a vector of rows at a time.
const SHORT_ROW: i64 = 8;

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
