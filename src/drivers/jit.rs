//! The JIT driver. Input: a graph; output: `Compiled`, a native function in memory with its
//! workspace, callable on slices (`run`, no allocation per call) or on `Tensor`s.
//!
//! A thin layer over `codegen::define`: it only builds the host ISA, binds the GEMM symbols
//! of `kernels` into the `JITModule`, finalises, and checks buffer sizes before each call.

use std::alloc::Layout;
use std::time::Instant;

use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage};

use crate::codegen::kernel::{monos, Base, Mono, Poly};
use crate::codegen::memplan::Plan;
use crate::codegen::{self, CompileOptions};
use crate::diag::Diagnostic;
use crate::ir::graph::{DType, Dim, Graph, Op, Shape};
use crate::ir::tensor::Tensor;
use crate::runtime::symbols;

/// A float type a graph can be compiled for.
pub trait Element: Copy + Default + 'static {
    const DTYPE: DType;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// How `Compiled::run`'s error for an access that bounds-checked code refused begins.
pub const BOUNDS_FAILED: &str = "bounds check failed";

/// How `Compiled::run`'s error for a gather index outside its axis begins.
pub const INDEX_FAILED: &str = "index out of range";

/// The generated function's C ABI (see `codegen`): inputs, params, outputs, dims, workspace.
type Entry = unsafe extern "C" fn(*const *const u8, *const *mut u8, *const *mut u8, *const i64, *mut u8);

/// What compiling cost and how much memory the plan saves, for `netc run --stats`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Wall time of fusion, planning, Cranelift and finalisation.
    pub compile_ms: f64,
    /// Workspace bytes for the given dims (all temporaries, placed by liveness).
    pub planned_bytes: usize,
    /// Bytes of every intermediate node taken separately (a buffer per node, no fusion).
    pub naive_bytes: usize,
    /// Bytes of the temporaries that remain after fusion, without sharing.
    pub unshared_bytes: usize,
    pub kernels: usize,
    pub in_place: usize,
    pub clif_insts: usize,
    /// Functions the program was split into.
    pub parts: usize,
    /// Kernels run on the worker pool, over ranges of their items (`symbols::PARALLEL`).
    pub outlined: usize,
}

/// A compiled graph: keeps the JIT memory alive and owns the workspace.
pub struct Compiled {
    module: Option<JITModule>,
    entry: Entry,
    dtype: DType,
    symbols: Vec<String>,
    inputs: Vec<(String, Shape)>,
    params: Vec<(String, Shape)>,
    outputs: Vec<(String, Shape)>,
    plan: Plan,
    naive: Poly,
    kernel_names: Vec<&'static str>,
    kernel_summaries: Vec<String>,
    clif_insts: usize,
    parts: usize,
    outlined: usize,
    /// The graph updates parameters in place.
    updates: bool,
    compile_ms: f64,
    workspace: Workspace,
    /// Pointer tables and dims of the call, reused (no allocation per call).
    ptrs: Tables,
    dims: Vec<i64>,
    last_dims: Vec<usize>,
    /// Inputs read as class indices by a one-hot encoding (a loss's labels): (input, classes).
    /// Their values are checked before every call, as the interpreter checks them: the
    /// generated one-hot code would turn a label out of range into a row of zeros, a loss of
    /// 0 for that sample, and go on silently.
    class_inputs: Vec<(usize, usize)>,
}

/// (input, classes) for every input of `g` that a one-hot encoding reads directly; the
/// smallest class count when several read the same input.
fn class_inputs(g: &Graph) -> Vec<(usize, usize)> {
    let mut found: Vec<(usize, usize)> = vec![];
    for node in &g.nodes {
        let Op::OneHot { classes } = node.op else { continue };
        let Some(Op::Input { index }) = node.inputs.first().map(|x| &g.node(*x).op) else { continue };
        match found.iter_mut().find(|(i, _)| i == index) {
            Some((_, c)) => *c = (*c).min(classes),
            None => found.push((*index, classes)),
        }
    }
    found
}

/// Compile `g` (forward, backward or train step alike) to native code.
pub fn compile(g: &Graph, opts: &CompileOptions) -> Result<Compiled, Diagnostic> {
    let start = Instant::now();
    let fail = |what: &str, e: String| Diagnostic::new("E-codegen", format!("{what}: {e}"));
    let mut flags = settings::builder();
    let set =
        |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(|e| fail("cranelift flag", e.to_string()));
    set(&mut flags, "opt_level", if opts.optimize { "speed" } else { "none" })?;
    set(&mut flags, "enable_verifier", if opts.verify { "true" } else { "false" })?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    let isa_builder = cranelift_native::builder().map_err(|e| fail("unsupported host", e.to_string()))?;
    let isa = isa_builder.finish(settings::Flags::new(flags)).map_err(|e| fail("target", e.to_string()))?;
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, ptr) in symbols::symbols() {
        builder.symbol(name, ptr);
    }
    let mut module = JITModule::new(builder);
    // The generated GEMM costs a millisecond or two to compile: only for programs that call
    // a GEMM (not when every product is short or narrow, written inline).
    let mut prog = codegen::fuse::schedule(g, opts.conv)?;
    // Products by a B that a loop does not change read it from panels packed before the loop
    // (not in checked mode, whose GEMM calls are checked against B in place).
    let width = match g.dtype {
        DType::F32 => symbols::panel_width::<f32>(),
        DType::F64 => symbols::panel_width::<f64>(),
    };
    let panels = match width.filter(|_| !opts.generated_gemm && !opts.checked) {
        Some(width) if codegen::panels::hoist(&mut prog, width) > 0 => {
            Some(codegen::import_panels(&mut module, g.dtype)?)
        }
        _ => None,
    };
    let multiplies = prog.calls_gemm();
    let mut generated = || codegen::gemm::define_gemm(&mut module, "netc_generated_gemm", Linkage::Local, g.dtype);
    let mut gemms = if opts.generated_gemm {
        codegen::Gemms::only(generated()?)
    } else {
        let small = if multiplies && opts.small_gemm > 0 { Some((generated()?, opts.small_gemm)) } else { None };
        let conv = Some(codegen::import_conv(&mut module, g.dtype)?);
        let winograd = Some(codegen::import_winograd(&mut module, g.dtype)?);
        let batched = Some(codegen::import_batched_gemm(&mut module, g.dtype)?);
        let parallel = Some(codegen::import_parallel(&mut module)?);
        codegen::Gemms {
            small,
            conv,
            winograd,
            batched,
            parallel,
            panels,
            ..codegen::Gemms::only(codegen::import_gemm(&mut module, g.dtype)?)
        }
    };
    // Out-of-range gather indices make the run fail (`Compiled::run`), with the index.
    gemms.index_error = Some(codegen::import_index_error(&mut module)?);
    let defined = codegen::define_scheduled(&mut module, g, prog, "netc_graph", Linkage::Export, gemms, opts)?;
    module.finalize_definitions().map_err(|e| fail("finalising", e.to_string()))?;
    let code = module.get_finalized_function(defined.func);
    // SAFETY: see `entry_from`.
    let entry = unsafe { entry_from(code) };
    let named = |v: &mut dyn Iterator<Item = (String, Shape)>| v.collect::<Vec<_>>();
    let ptrs =
        [Vec::with_capacity(g.inputs.len()), Vec::with_capacity(g.params.len()), Vec::with_capacity(g.outputs.len())];
    Ok(Compiled {
        module: Some(module),
        entry,
        dtype: g.dtype,
        symbols: g.symbols.clone(),
        inputs: named(&mut g.inputs.iter().map(|i| (i.name.clone(), i.shape.clone()))),
        params: named(&mut g.params.iter().map(|p| (p.name.clone(), p.shape.clone()))),
        outputs: named(&mut g.outputs.iter().map(|(n, id)| (n.clone(), g.shape(*id).clone()))),
        plan: defined.plan,
        naive: defined.naive,
        kernel_names: defined.kernel_names,
        kernel_summaries: defined.kernel_summaries,
        clif_insts: defined.clif_insts,
        parts: defined.parts,
        outlined: defined.outlined,
        updates: !g.updates.is_empty(),
        compile_ms: start.elapsed().as_secs_f64() * 1e3,
        workspace: Workspace::default(),
        ptrs: Tables(ptrs),
        dims: Vec::with_capacity(g.symbols.len()),
        last_dims: vec![1; g.symbols.len()],
        class_inputs: class_inputs(g),
    })
}

/// The typed entry point of finalised code.
///
/// # Safety
/// `code` must be the address of a function that `codegen::define` generated, finalised in a
/// `JITModule` that is still alive: its signature is then exactly `Entry` (five pointers, C
/// calling convention, no result).
unsafe fn entry_from(code: *const u8) -> Entry {
    // SAFETY: guaranteed by the caller.
    unsafe { std::mem::transmute::<*const u8, Entry>(code) }
}

impl Compiled {
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Call the function. `dims` gives every symbolic dimension (by `SymId`); every buffer
    /// must hold exactly its shape's number of elements. Params are updated in place when the
    /// graph has updates. Allocates only when the workspace must grow (a larger batch).
    pub fn run<T: Element, I: AsRef<[T]>, P: AsMut<[T]>, O: AsMut<[T]>>(
        &mut self,
        inputs: &[I],
        params: &mut [P],
        outputs: &mut [O],
        dims: &[usize],
    ) -> Result<(), String> {
        let mut params = params.iter_mut().map(|p| {
            let p = p.as_mut();
            (p.as_mut_ptr(), p.len())
        });
        self.call(inputs, &mut params, outputs, dims)
    }

    /// `run` for a function without updates (inference, a loss): the parameters are only
    /// read, so they are lent as they are, never copied.
    pub fn run_readonly<T: Element, I: AsRef<[T]>, P: AsRef<[T]>, O: AsMut<[T]>>(
        &mut self,
        inputs: &[I],
        params: &[P],
        outputs: &mut [O],
        dims: &[usize],
    ) -> Result<(), String> {
        if self.updates {
            return Err("the function updates its parameters: call `run` with writable ones".into());
        }
        // The generated code does not write parameters of a graph without updates.
        let mut params = params.iter().map(|p| (p.as_ref().as_ptr() as *mut T, p.as_ref().len()));
        self.call(inputs, &mut params, outputs, dims)
    }

    fn call<T: Element, I: AsRef<[T]>, O: AsMut<[T]>>(
        &mut self,
        inputs: &[I],
        params: &mut dyn Iterator<Item = (*mut T, usize)>,
        outputs: &mut [O],
        dims: &[usize],
    ) -> Result<(), String> {
        if T::DTYPE != self.dtype {
            return Err(format!("the function computes in {}, buffers of {} were given", self.dtype, T::DTYPE));
        }
        if dims.len() != self.symbols.len() {
            return Err(format!("{} symbol values given, the function has {}", dims.len(), self.symbols.len()));
        }
        let check =
            |what: &str, want: &[(String, Shape)], got: &mut dyn Iterator<Item = usize>| -> Result<(), String> {
                let got: Vec<usize> = got.collect();
                if got.len() != want.len() {
                    return Err(format!("{} {what} given, the function takes {}", got.len(), want.len()));
                }
                for ((name, shape), n) in want.iter().zip(got) {
                    let need = Mono::product(&monos(shape)).eval(dims);
                    if need < 0 || n != need as usize {
                        return Err(format!("{what} `{name}` has {n} elements, its shape needs {need}"));
                    }
                }
                Ok(())
            };
        let pp = &mut self.ptrs.0[1];
        pp.clear();
        let mut param_lens = params.map(|(ptr, len)| {
            pp.push(ptr as *mut u8);
            len
        });
        check("parameters", &self.params, &mut param_lens)?;
        check("inputs", &self.inputs, &mut inputs.iter().map(|x| x.as_ref().len()))?;
        check("outputs", &self.outputs, &mut outputs.iter_mut().map(|x| x.as_mut().len()))?;
        for &(i, classes) in &self.class_inputs {
            let bad = inputs[i].as_ref().iter().map(|v| v.to_f64()).enumerate().find(|(_, c)| {
                !(c.fract() == 0.0 && *c >= 0.0 && *c < classes as f64) // NaN fails every comparison
            });
            if let Some((at, c)) = bad {
                return Err(format!(
                    "input `{}` holds {c} at element {at}, which is not a class index (a whole number in 0..{classes})",
                    self.inputs[i].0
                ));
            }
        }
        self.workspace.reserve(self.plan.bytes(dims, self.dtype.size_bytes()))?;

        let [pi, pp, po] = &mut self.ptrs.0;
        pi.clear();
        pi.extend(inputs.iter().map(|x| x.as_ref().as_ptr() as *mut u8));
        po.clear();
        po.extend(outputs.iter_mut().map(|x| x.as_mut().as_mut_ptr() as *mut u8));
        self.dims.clear();
        self.dims.extend(dims.iter().map(|&d| d as i64));
        self.last_dims.clear();
        self.last_dims.extend_from_slice(dims);
        // A violation left over from a call that did not return here must not be blamed on this one.
        symbols::take_violation();
        symbols::take_index_error();
        // SAFETY: every buffer has been checked to hold its shape's elements for these dims,
        // the workspace holds the planned bytes, and the borrows keep the buffers alive and
        // unaliased for the duration of the call (params are `&mut`, or only read: `run_readonly`).
        unsafe {
            (self.entry)(
                pi.as_ptr() as *const *const u8,
                pp.as_ptr(),
                po.as_ptr(),
                self.dims.as_ptr(),
                self.workspace.ptr,
            )
        };
        // Bounds-checked code (`CompileOptions::checked`) reports a refused access here, and a
        // gather an index outside its axis (which it clamped).
        if let Some(v) = symbols::take_violation() {
            return Err(self.describe_violation(&v));
        }
        match symbols::take_index_error() {
            Some(e) => Err(self.describe_index_error(&e)),
            None => Ok(()),
        }
    }

    /// `index 12 is out of range ...`: which kernel met which index.
    fn describe_index_error(&self, e: &symbols::IndexError) -> String {
        let kind = usize::try_from(e.kernel).ok().and_then(|k| self.kernel_names.get(k)).copied().unwrap_or("?");
        format!(
            "{INDEX_FAILED}: index {} is out of range for an axis of size {} (indices are whole numbers 0..{}; \
             kernel {} ({kind}) used the nearest row instead)",
            crate::ir::tensor::format_number(e.index),
            e.size,
            e.size,
            e.kernel
        )
    }

    /// `bounds check failed: kernel 7 (map) ...`: which kernel accessed which buffer where.
    fn describe_violation(&self, v: &symbols::Violation) -> String {
        let kind = usize::try_from(v.kernel).ok().and_then(|k| self.kernel_names.get(k)).copied().unwrap_or("?");
        let named = |what: &str, list: &[(String, Shape)], i: usize| match list.get(i) {
            Some((name, _)) => format!("{what} {i} `{name}`"),
            None => format!("{what} {i}"),
        };
        let buffer = match Base::from_code(v.buffer) {
            Some(Base::Input(i)) => named("input", &self.inputs, i),
            Some(Base::Param(i)) => named("parameter", &self.params, i),
            Some(Base::Output(i)) => named("output", &self.outputs, i),
            Some(Base::Temp(t)) => format!("workspace temporary {t}"),
            Some(Base::Data(d)) => format!("literal data {d}"),
            None => format!("buffer #{}", v.buffer),
        };
        let more = match v.count {
            0 | 1 => String::new(),
            n => format!(" ({} more refused accesses)", n - 1),
        };
        format!(
            "{BOUNDS_FAILED}: kernel {} ({kind}) accessed {buffer} at element offset {}, \
             outside its length of {} elements; the access was not performed{more}",
            v.kernel, v.offset, v.len
        )
    }

    /// Run on tensors (symbols bound from their shapes); returns the outputs and updates
    /// `params` in place. Converts to and from the graph's dtype, so it allocates.
    pub fn run_tensors(&mut self, inputs: &[Tensor], params: &mut [Tensor]) -> Result<Vec<Tensor>, String> {
        match self.dtype {
            DType::F32 => self.run_tensors_as::<f32>(inputs, params),
            DType::F64 => self.run_tensors_as::<f64>(inputs, params),
        }
    }

    fn run_tensors_as<T: Element>(&mut self, inputs: &[Tensor], params: &mut [Tensor]) -> Result<Vec<Tensor>, String> {
        let dims = self.bind(inputs, params)?;
        let xs: Vec<Vec<T>> = inputs.iter().map(|t| t.data.iter().map(|&v| T::from_f64(v)).collect()).collect();
        let mut ps: Vec<Vec<T>> = params.iter().map(|t| t.data.iter().map(|&v| T::from_f64(v)).collect()).collect();
        let shapes: Vec<Vec<usize>> =
            self.outputs.iter().map(|(_, s)| s.iter().map(|&d| Mono::dim(d).eval(&dims) as usize).collect()).collect();
        let mut outs: Vec<Vec<T>> = shapes.iter().map(|s| vec![T::default(); s.iter().product()]).collect();
        self.run(&xs, &mut ps, &mut outs, &dims)?;
        for (t, p) in params.iter_mut().zip(ps) {
            t.data = p.into_iter().map(T::to_f64).collect();
        }
        Ok(shapes.into_iter().zip(outs).map(|(s, o)| Tensor::new(s, o.into_iter().map(T::to_f64).collect())).collect())
    }

    /// Symbol values read off the tensors' shapes.
    fn bind(&self, inputs: &[Tensor], params: &[Tensor]) -> Result<Vec<usize>, String> {
        if inputs.len() != self.inputs.len() || params.len() != self.params.len() {
            return Err(format!(
                "the function takes {} inputs and {} parameters, {} and {} were given",
                self.inputs.len(),
                self.params.len(),
                inputs.len(),
                params.len()
            ));
        }
        let mut bound: Vec<Option<usize>> = vec![None; self.symbols.len()];
        for ((name, shape), t) in self.inputs.iter().chain(&self.params).zip(inputs.iter().chain(params.iter())) {
            if shape.len() != t.shape.len() {
                return Err(format!("`{name}` has {} axes, its shape needs {}", t.shape.len(), shape.len()));
            }
            for (&d, &n) in shape.iter().zip(&t.shape) {
                match d {
                    Dim::Known(k) if k != n => return Err(format!("`{name}` has size {n} where its shape needs {k}")),
                    Dim::Known(_) => {}
                    Dim::Sym(s) => match bound[s.0 as usize] {
                        Some(m) if m != n => {
                            let sym = &self.symbols[s.0 as usize];
                            return Err(format!("`{name}` has {sym} = {n}, an earlier tensor had {sym} = {m}"));
                        }
                        _ => bound[s.0 as usize] = Some(n),
                    },
                }
            }
        }
        bound
            .into_iter()
            .enumerate()
            .map(|(i, b)| b.ok_or_else(|| format!("no input binds the size of `{}`", self.symbols[i])))
            .collect()
    }

    /// Statistics with the dims of the last call (every symbol 1 before the first).
    pub fn stats(&self) -> Stats {
        self.stats_for(&self.last_dims)
    }

    pub fn stats_for(&self, dims: &[usize]) -> Stats {
        let es = self.dtype.size_bytes();
        Stats {
            compile_ms: self.compile_ms,
            planned_bytes: self.plan.bytes(dims, es),
            naive_bytes: self.naive.eval(dims).max(0) as usize * es,
            unshared_bytes: self.plan.unshared.eval(dims).max(0) as usize * es,
            kernels: self.kernel_names.len(),
            in_place: self.plan.in_place,
            clif_insts: self.clif_insts,
            parts: self.parts,
            outlined: self.outlined,
        }
    }
}

impl Compiled {
    /// Milliseconds spent in each kernel (in execution order, with its kind: `gemm`, `conv`,
    /// `map`, ...) by the calls made on this thread since the last `profile`; empty unless
    /// compiled with `CompileOptions::profile`.
    pub fn profile(&self) -> Vec<(&'static str, f64)> {
        let secs = symbols::take_profile();
        self.kernel_names.iter().enumerate().map(|(k, &n)| (n, secs.get(k).copied().unwrap_or(0.0) * 1e3)).collect()
    }
}

impl Compiled {
    /// What each kernel computes, one line each in execution order (`Kernel::summary`).
    pub fn kernel_summaries(&self) -> &[String] {
        &self.kernel_summaries
    }

    /// `profile` with each kernel's summary (`Kernel::summary`) instead of its kind.
    pub fn profile_summaries(&self) -> Vec<(String, f64)> {
        let secs = symbols::take_profile();
        self.kernel_summaries
            .iter()
            .enumerate()
            .map(|(k, s)| (s.clone(), secs.get(k).copied().unwrap_or(0.0) * 1e3))
            .collect()
    }
}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `entry` points into this module and is not called after drop.
            unsafe { m.free_memory() };
        }
    }
}

/// Compile `g` and run it once on tensors: the convenience for tests and the REPL.
pub fn run_graph(g: &Graph, inputs: &[Tensor], params: &mut [Tensor]) -> Result<Vec<Tensor>, String> {
    let mut c = compile(g, &CompileOptions::default()).map_err(|d| d.message)?;
    c.run_tensors(inputs, params)
}

/// The pointer tables of the ABI (inputs, params, outputs), rewritten before every call.
struct Tables([Vec<*mut u8>; 3]);

// SAFETY: the pointers are only dereferenced during `run`, which borrows their buffers.
unsafe impl Send for Tables {}

/// 64-byte aligned scratch memory that only grows.
struct Workspace {
    ptr: *mut u8,
    bytes: usize,
}

impl Default for Workspace {
    fn default() -> Workspace {
        Workspace { ptr: std::ptr::without_provenance_mut(64), bytes: 0 }
    }
}

impl Workspace {
    fn layout(bytes: usize) -> Result<Layout, String> {
        Layout::from_size_align(bytes, 64).map_err(|e| format!("workspace of {bytes} bytes: {e}"))
    }

    fn reserve(&mut self, bytes: usize) -> Result<(), String> {
        if bytes <= self.bytes {
            return Ok(());
        }
        let layout = Workspace::layout(bytes)?;
        // SAFETY: `layout` has a non-zero size (bytes > self.bytes >= 0).
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return Err(format!("cannot allocate a workspace of {bytes} bytes"));
        }
        self.free();
        self.ptr = ptr;
        self.bytes = bytes;
        Ok(())
    }

    fn free(&mut self) {
        if self.bytes > 0 {
            // SAFETY: allocated in `reserve` with this layout.
            unsafe { std::alloc::dealloc(self.ptr, Workspace::layout(self.bytes).expect("valid before")) };
            self.bytes = 0;
        }
    }
}

// SAFETY: the workspace is an owned allocation, like a `Vec<u8>`.
unsafe impl Send for Workspace {}

impl Drop for Workspace {
    fn drop(&mut self) {
        self.free();
    }
}
