//! Bounds-checked mode (`CompileOptions::checked`): the declarations it needs in the module,
//! and the guards it emits before every load, store and GEMM or convolution call.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{AbiParam, FuncRef, Function, GlobalValue, InstBuilder, Value};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, ModuleError};

use super::Emitter;
use crate::codegen::builder::LoopBuilder;
use crate::codegen::kernel::*;
use crate::diag::Diagnostic;
use crate::ir::graph::Graph;
use crate::runtime::symbols;

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
    /// Elements of each buffer the kernels access (shared by every part of a program).
    pub extents: std::rc::Rc<HashMap<Base, Mono>>,
    /// `symbols::BOUNDS`.
    pub violation: FuncRef,
    /// 64 writable bytes that refused accesses read and write.
    pub sink: GlobalValue,
}

/// The module-level declarations of checked mode (see `Checks`).
pub struct CheckDecls {
    extents: std::rc::Rc<HashMap<Base, Mono>>,
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
    sig.params.extend([AbiParam::new(I64); 4]);
    let violation = module.declare_function(symbols::BOUNDS, Linkage::Import, &sig).map_err(err)?;
    let sink = module.declare_anonymous_data(true, false).map_err(err)?;
    let mut desc = DataDescription::new();
    desc.define_zeroinit(64);
    desc.set_align(64);
    module.define_data(sink, &desc).map_err(err)?;
    Ok(CheckDecls { extents: std::rc::Rc::new(extents), violation, sink })
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
pub(super) struct Buf {
    pub(super) code: i64,
    pub(super) start: Value,
    pub(super) bytes: Value,
}

impl Emitter<'_> {
    /// The address at which to access `bytes` bytes at `p`: `p` itself, or in checked mode,
    /// when the access does not lie inside p's buffer, the sink (after reporting it).
    pub(super) fn guard(&mut self, p: Value, bytes: i64) -> Value {
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
    pub(super) fn matrix_ok(
        &mut self,
        p: Value,
        rows: Value,
        cols: Value,
        rs: Value,
        cs: Value,
        active: Value,
    ) -> Value {
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
}
