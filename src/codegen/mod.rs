//! Code generation. Input: an (optimised) graph; output: a native function defined in any
//! Cranelift `Module` (the JIT of `jit.rs`, or an object file), plus its memory plan.
//!
//! # The generated function's C ABI
//!
//! For a graph of dtype `T` (`float` or `double`), `define` emits two functions:
//!
//! ```c
//! void NAME(const T* const* inputs,   /* one pointer per graph input, row-major          */
//!           T* const*       params,   /* one per parameter; updated in place by `updates` */
//!           T* const*       outputs,  /* one per graph output, written                    */
//!           const int64_t*  dims,     /* the value of every symbolic dimension, by SymId  */
//!           void*           workspace /* NAME_workspace_size(dims) bytes, 64-byte aligned */);
//! int64_t NAME_workspace_size(const int64_t* dims);   /* bytes */
//! ```
//!
//! Buffers must not overlap each other or the workspace. The function allocates nothing and
//! calls only the GEMM symbol (`symbols::GEMM_F32` / `GEMM_F64`, C signature in
//! `kernels.rs`) and, for `pow` with a non-constant exponent or `MathMode::Libm`, libm.
//! The workspace size is a polynomial in the dims (see `memplan`), so callers can also
//! compute it without calling the function.
//!
//! # Pipeline
//!
//! `fuse` turns the graph into kernels: chains of elementwise, broadcast and view ops become
//! one loop with no intermediate buffers (`relu(x @ W + b)` is a GEMM call and one loop,
//! written in place over the GEMM's result); reductions run over their producer's expression; a
//! matmul with an inner dimension of at most 4 is itself an elementwise sum that fuses with its
//! consumers, one with a side of at most 4 (m or n: a few classes, a 2-D input's gradient) is a
//! loop nest written inline (`Emitter::narrow_gemm`), other matmuls call the GEMM symbol,
//! convolution is im2col / col2im and a GEMM per image (in the JIT, when the per-image product
//! is large enough for the library GEMM, one call of the convolution symbol for the batch,
//! which divides the images among threads: `symbols::conv`) or, for stride-1 3×3 and 5×5
//! filters (`ConvAlgorithm`), Winograd transforms around α² products (`runtime::winograd`;
//! the JIT calls `symbols::winograd` for the transforms), and an SGD or momentum update of a
//! GEMM result becomes that GEMM's alpha/beta, writing the parameter directly. Outputs and
//! in-place updates are written straight into the caller's buffers. `memplan` places the
//! remaining temporaries in the workspace by liveness, `emit` writes the Cranelift IR: loops
//! over f32x4 / f64x2 with a scalar tail, `math` the vectorised exp/log/tanh/sigmoid. In the
//! JIT, maps, pools and log-softmaxes too large for one thread (`emit::outlines`) are each
//! emitted into a function of a range of their items, which one call of `symbols::PARALLEL`
//! runs on the worker pool.
//! Elementwise arithmetic rounds exactly as the interpreter (no contraction of `a*b + c` into
//! an FMA). Only declaring and finalising functions differs between the JIT and the object-file
//! backend: both go through `define`.
//!
//! # Files
//!
//! - `fuse.rs`: graph -> kernels (`fuse::schedule`);
//! - `kernel.rs`: the kernel IR (`Kernel`, `Expr`, `Access`, `KernelProgram`), shared by all;
//! - `geometry.rs`: convolution and pool geometry and `ConvAlgorithm` (re-exported by `kernel`);
//! - `memplan.rs`: the temporaries' places in the workspace;
//! - `emit/`: kernels -> Cranelift IR, one file per kind of kernel (see `emit/mod.rs`);
//! - `math.rs`: the vectorised exp, log, tanh and sigmoid of `emit`;
//! - `gemm.rs`: a GEMM written in Cranelift IR (object files, small JIT products);
//! - `builder.rs`: the loop builder that `emit` and `gemm` share;
//! - `abi.rs`: the GEMM symbol's signature and arguments as Cranelift sees them;
//! - this file: the options and `define`, which declares the functions and runs the rest.

pub mod abi;
pub mod builder;
pub mod emit;
pub mod fuse;
pub mod gemm;
pub mod geometry;
pub mod kernel;
mod math;
pub mod memplan;
pub mod panels;

use std::collections::HashMap;

use cranelift_codegen::ir::types::{F32, F64, I64};
use cranelift_codegen::ir::{AbiParam, Function, InstBuilder, Signature, UserFuncName};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, ModuleError};

use crate::diag::Diagnostic;
use crate::ir::graph::{DType, Graph};
use crate::runtime::symbols;
pub use kernel::ConvAlgorithm;
use kernel::{KernelProgram, Poly};
use memplan::Plan;

/// How exp, log, tanh and sigmoid are computed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum MathMode {
    /// Vectorised polynomials inside the loops (fast; the default).
    #[default]
    Inline,
    /// A libm call per element (reference accuracy, slow: calls spill the vector registers).
    Libm,
}

#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Cranelift `opt_level = speed` (otherwise `none`).
    pub optimize: bool,
    /// Run Cranelift's IR verifier (slower compiles); on by default in debug builds.
    pub verify: bool,
    pub math: MathMode,
    /// Print the Cranelift IR and the machine code of the main function to stderr.
    pub dump_clif: bool,
    /// Call `symbols::PROFILE` after every kernel to time it (see `jit::Compiled::profile`).
    pub profile: bool,
    /// JIT only: multiply with the Cranelift-generated GEMM that object files carry (`gemm`)
    /// instead of the library one, so the tests can hold it to the interpreter.
    pub generated_gemm: bool,
    /// JIT only: products of fewer multiply-adds (m·k·n) than this call the generated GEMM,
    /// which packs less and calls nothing (for such products the library's packing and
    /// threading cost more than they save: digits CNN steps ~30% faster); 0 sends all to
    /// the library.
    pub small_gemm: i64,
    /// Bounds-checked mode (`netc run --checked`), for debugging: every load and store is
    /// checked against its buffer and every GEMM call against its matrices' extents; an
    /// access outside is not performed but reported through `symbols::BOUNDS` (see
    /// `emit::Checks`; the JIT binds it, an object file would import it). Slower; off by
    /// default, and the code is then unchanged.
    pub checked: bool,
    /// How convolutions are computed: Winograd or im2col + GEMM (`kernel::ConvAlgorithm`).
    pub conv: ConvAlgorithm,
}

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions {
            optimize: true,
            verify: cfg!(debug_assertions),
            math: MathMode::Inline,
            dump_clif: false,
            profile: false,
            generated_gemm: false,
            small_gemm: 1 << 18,
            checked: false,
            conv: ConvAlgorithm::Auto,
        }
    }
}

/// What `define` put in the module, and how it uses memory.
#[derive(Clone, Debug)]
pub struct Defined {
    pub func: FuncId,
    pub workspace_size_func: FuncId,
    pub plan: Plan,
    /// Elements of every intermediate value taken separately (one buffer per node).
    pub naive: Poly,
    pub kernels: usize,
    /// The kind of each kernel, in execution order (`map`, `gemm`, `conv`, ...), loop bodies
    /// after their loop (`kernel::preorder`).
    pub kernel_names: Vec<&'static str>,
    /// What each kernel computes, one line each (`Kernel::summary`), loop bodies indented.
    pub kernel_summaries: Vec<String>,
    /// Cranelift IR instructions of the program (compile time grows with this).
    pub clif_insts: usize,
    /// Functions the kernels were split into (see `PART_INSTS`).
    pub parts: usize,
    /// Kernels emitted into functions of a range of their items, run on the worker pool
    /// (`Gemms::parallel`).
    pub outlined: usize,
}

/// Declare the library GEMM of `dtype` (`symbols::GEMM_F32` / `GEMM_F64`) as an import.
pub fn import_gemm<M: Module>(module: &mut M, dtype: DType) -> Result<FuncId, Diagnostic> {
    let name = match dtype {
        DType::F32 => symbols::GEMM_F32,
        DType::F64 => symbols::GEMM_F64,
    };
    let sig = abi::gemm_signature(module, dtype);
    module.declare_function(name, Linkage::Import, &sig).map_err(module_error)
}

/// Declare the convolution symbol (`symbols::CONV_F32` / `CONV_F64`) in `module` (JIT only:
/// the whole batch of a convolution in one call, images divided among threads).
pub fn import_conv<M: Module>(module: &mut M, dtype: DType) -> Result<FuncId, Diagnostic> {
    let name = match dtype {
        DType::F32 => symbols::CONV_F32,
        DType::F64 => symbols::CONV_F64,
    };
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for t in [I64, ptr, I64, ptr, ptr, ptr] {
        sig.params.push(AbiParam::new(t));
    }
    module.declare_function(name, Linkage::Import, &sig).map_err(module_error)
}

/// Declare the Winograd transform symbol (`symbols::WINOGRAD_F32` / `WINOGRAD_F64`) in
/// `module` (JIT only: a transform of the whole batch in one call, divided among threads).
pub fn import_winograd<M: Module>(module: &mut M, dtype: DType) -> Result<FuncId, Diagnostic> {
    let name = match dtype {
        DType::F32 => symbols::WINOGRAD_F32,
        DType::F64 => symbols::WINOGRAD_F64,
    };
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for t in [I64, ptr, I64, ptr, ptr] {
        sig.params.push(AbiParam::new(t));
    }
    module.declare_function(name, Linkage::Import, &sig).map_err(module_error)
}

/// Declare the batched GEMM symbol (`symbols::BATCHED_F32` / `BATCHED_F64`) in `module` (JIT
/// only): a pointer to the per-product GEMM (or null), the count, the three element strides,
/// then the GEMM's own parameters (`symbols::batched`).
pub fn import_batched_gemm<M: Module>(module: &mut M, dtype: DType) -> Result<FuncId, Diagnostic> {
    let name = match dtype {
        DType::F32 => symbols::BATCHED_F32,
        DType::F64 => symbols::BATCHED_F64,
    };
    let ptr = module.target_config().pointer_type();
    let mut sig = abi::gemm_signature(module, dtype);
    let front = [AbiParam::new(ptr), AbiParam::new(I64), AbiParam::new(I64), AbiParam::new(I64), AbiParam::new(I64)];
    sig.params.splice(0..0, front);
    module.declare_function(name, Linkage::Import, &sig).map_err(module_error)
}

/// Declare the packing symbol and the product by panels (`symbols::PACK_F32`,
/// `symbols::PANELS_F32`, or the f64 ones) in `module` (JIT only): k, n, B and its strides, the
/// panel width and the panels; the panels and their width, then the GEMM's parameters.
pub fn import_panels<M: Module>(module: &mut M, dtype: DType) -> Result<(FuncId, FuncId), Diagnostic> {
    let (pack, product) = match dtype {
        DType::F32 => (symbols::PACK_F32, symbols::PANELS_F32),
        DType::F64 => (symbols::PACK_F64, symbols::PANELS_F64),
    };
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    for t in [I64, I64, ptr, I64, I64, I64, ptr] {
        sig.params.push(AbiParam::new(t));
    }
    let pack = module.declare_function(pack, Linkage::Import, &sig).map_err(module_error)?;
    let mut sig = abi::gemm_signature(module, dtype);
    sig.params.splice(0..0, [AbiParam::new(ptr), AbiParam::new(I64)]);
    let product = module.declare_function(product, Linkage::Import, &sig).map_err(module_error)?;
    Ok((pack, product))
}

/// Declare the index-error callback (`symbols::INDEX`, JIT only): kernel index, the offending
/// index value (as a double) and the size of the indexed axis.
pub fn import_index_error<M: Module>(module: &mut M) -> Result<FuncId, Diagnostic> {
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(I64), AbiParam::new(F64), AbiParam::new(I64)]);
    module.declare_function(symbols::INDEX, Linkage::Import, &sig).map_err(module_error)
}

/// Defines the data object `id` as `values` in `dtype`, 64-byte aligned (a program's constant
/// tensors, an object file's embedded weights).
pub fn define_values<M: Module>(module: &mut M, id: DataId, dtype: DType, values: &[f64]) -> Result<(), ModuleError> {
    let bytes: Vec<u8> = match dtype {
        DType::F32 => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        DType::F64 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    };
    let mut desc = DataDescription::new();
    desc.define(bytes.into_boxed_slice());
    desc.set_align(64);
    module.define_data(id, &desc)
}

fn module_error(e: ModuleError) -> Diagnostic {
    Diagnostic::new("E-codegen", format!("code generation failed: {e}"))
}

/// The GEMM functions a program calls, each of `abi::gemm_signature` (imported or defined in the
/// module).
#[derive(Clone, Copy, Debug)]
pub struct Gemms {
    pub gemm: FuncId,
    /// Called instead for products of fewer than this many multiply-adds.
    pub small: Option<(FuncId, i64)>,
    /// The convolution symbol (`import_conv`), called for each convolution kernel instead of
    /// the generated per-image loop.
    pub conv: Option<FuncId>,
    /// The Winograd transform symbol (`import_winograd`), called for each transform kernel
    /// instead of the generated loops.
    pub winograd: Option<FuncId>,
    /// The batched GEMM symbol (`import_batched_gemm`), called for the products of a batched
    /// matmul instead of a loop of GEMM calls.
    pub batched: Option<FuncId>,
    /// The index-error callback (`import_index_error`): gathers report out-of-range indices.
    pub index_error: Option<FuncId>,
    /// The packing and panel-product symbols (`import_panels`), called for `Kernel::Pack`
    /// and `Kernel::PanelGemm` (which `panels::hoist` makes).
    pub panels: Option<(FuncId, FuncId)>,
    /// The parallel-kernel symbol (`import_parallel`): maps, pools and log-softmaxes large
    /// enough (`emit::outlines`) are emitted into functions of a range of their items and run
    /// on the worker pool through it. Not in bounds-checked mode.
    pub parallel: Option<FuncId>,
}

impl Gemms {
    /// Just `gemm`, called for every product: what an object file uses.
    pub fn only(gemm: FuncId) -> Gemms {
        Gemms {
            gemm,
            small: None,
            conv: None,
            winograd: None,
            batched: None,
            index_error: None,
            parallel: None,
            panels: None,
        }
    }
}

/// Declare and define `name` (and `name_workspace_size`) computing `g` in `module`; matrix
/// products call `gemms`.
pub fn define<M: Module>(
    module: &mut M,
    g: &Graph,
    name: &str,
    linkage: Linkage,
    gemms: Gemms,
    opts: &CompileOptions,
) -> Result<Defined, Diagnostic> {
    define_scheduled(module, g, fuse::schedule(g, opts.conv)?, name, linkage, gemms, opts)
}

/// `define` of a program already scheduled by `fuse::schedule(g, opts.conv)` (whose kernels tell the
/// caller whether a GEMM will be called at all: `KernelProgram::calls_gemm`).
pub fn define_scheduled<M: Module>(
    module: &mut M,
    g: &Graph,
    prog: KernelProgram,
    name: &str,
    linkage: Linkage,
    gemms: Gemms,
    opts: &CompileOptions,
) -> Result<Defined, Diagnostic> {
    let plan = memplan::plan(&prog.kernels, &prog.temps);
    let err = module_error;
    let ptr = module.target_config().pointer_type();
    let ty = match g.dtype {
        DType::F32 => F32,
        DType::F64 => F64,
    };

    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(ptr); 5]);
    let func = module.declare_function(name, linkage, &sig).map_err(err)?;

    let mut libm = vec![];
    let names: [(&'static str, usize); 7] = match g.dtype {
        DType::F32 => [("expf", 1), ("logf", 1), ("tanhf", 1), ("powf", 2), ("expm1f", 1), ("log1pf", 1), ("erff", 1)],
        DType::F64 => [("exp", 1), ("log", 1), ("tanh", 1), ("pow", 2), ("expm1", 1), ("log1p", 1), ("erf", 1)],
    };
    for (fname, arity) in names {
        let mut s = module.make_signature();
        s.params.extend(std::iter::repeat_n(AbiParam::new(ty), arity));
        s.returns.push(AbiParam::new(ty));
        libm.push((fname, module.declare_function(fname, Linkage::Import, &s).map_err(err)?));
    }
    let profile = if opts.profile {
        let mut s = module.make_signature();
        s.params.push(AbiParam::new(I64));
        Some(module.declare_function(symbols::PROFILE, Linkage::Import, &s).map_err(err)?)
    } else {
        None
    };
    let checks = if opts.checked { Some(emit::declare_checks(module, g, &prog)?) } else { None };
    let mut data = vec![];
    for values in &prog.data {
        let id = module.declare_anonymous_data(false, false).map_err(err)?;
        define_values(module, id, g.dtype, values).map_err(err)?;
        data.push(id);
    }

    // The kernels go into parts, local functions of the same signature of at most
    // PART_INSTS instructions each, called in order by `name`: register allocation then
    // works on small functions (compile time linear in the graph, and base pointers and
    // constants are not spilled across the whole program).
    let mut fctx = FunctionBuilderContext::new();
    let mut outlined_fctx = FunctionBuilderContext::new();
    let shared = Shared {
        offsets: plan.offsets.clone().into(),
        gemms,
        libm,
        opts,
        data,
        dtype: g.dtype,
        symbols: g.symbols.len(),
        loop_symbols: prog.loop_symbols,
    };
    let mut parts = vec![];
    let mut clif_insts = 0;
    let mut outlined_kernels = 0;
    let mut next = 0;
    // The id of the last kernel emitted (ids count loop bodies: `kernel::preorder`).
    let mut last_id: i64 = -1;
    while next < prog.kernels.len() || parts.is_empty() {
        let part =
            module.declare_function(&format!("{name}_part{}", parts.len()), Linkage::Local, &sig).map_err(err)?;
        let mut ctx = module.make_context();
        ctx.func = Function::with_name_signature(UserFuncName::user(0, part.as_u32()), sig.clone());
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let args: [_; 5] = entry_block(&mut b).try_into().expect("five parameters");
            let env = shared.env_in(module, b.func, args, checks.as_ref());
            let profile = profile.map(|id| module.declare_func_in_func(id, b.func));
            let runner = gemms.parallel.filter(|_| checks.is_none()).map(|id| module.declare_func_in_func(id, b.func));
            let mut e = emit::Emitter::new(b, env, g.dtype, g.symbols.len());
            e.reserve_loop_symbols(prog.loop_symbols);
            e.kernel_index = last_id;
            e.profile = profile;
            e.runner = runner;
            while next < prog.kernels.len() {
                let id = e.kernel_index + 1;
                let k = &prog.kernels[next];
                match runner.filter(|_| emit::outlines(k)) {
                    // The kernel in a function of its own, over a range of its items, run on
                    // the worker pool (`symbols::PARALLEL`).
                    Some(runner) => {
                        let outlined = Outlined { name: &format!("{name}_kernel{id}"), kernel: k, id, in_loop: false };
                        let (f, insts) = define_outlined(module, &mut outlined_fctx, outlined, &shared)?;
                        clif_insts += insts;
                        let outlined = module.declare_func_in_func(f, &mut *e.b.func);
                        e.call_outlined(k, outlined, runner, false);
                        outlined_kernels += 1;
                    }
                    None => {
                        declare_data(module, &mut e, k, &shared.data);
                        // The kernels of a loop's body that are worth sharing run on the pool
                        // too, once per step (an LSTM cell's sigmoids and tanhs).
                        if runner.is_some() && matches!(k, kernel::Kernel::Loop { .. }) {
                            let inner = kernel::preorder(std::slice::from_ref(k));
                            for (offset, &(depth, inner)) in inner.iter().enumerate() {
                                if depth == 0 || !emit::outlines(inner) {
                                    continue;
                                }
                                let id = id + offset as i64;
                                let name = &format!("{name}_kernel{id}");
                                let outlined = Outlined { name, kernel: inner, id, in_loop: true };
                                let (f, insts) = define_outlined(module, &mut outlined_fctx, outlined, &shared)?;
                                clif_insts += insts;
                                e.outlined_in_loops.insert(id, module.declare_func_in_func(f, &mut *e.b.func));
                                outlined_kernels += 1;
                            }
                        }
                        e.kernel(k);
                    }
                }
                if let Some(f) = profile {
                    let i = e.b.ins().iconst(I64, id);
                    e.b.ins().call(f, &[i]);
                }
                next += 1;
                if e.b.func.dfg.num_insts() >= PART_INSTS {
                    break;
                }
            }
            last_id = e.kernel_index;
            e.b.ins().return_(&[]);
            let config = module.target_config();
            e.b.finalize(config);
        }
        clif_insts += ctx.func.dfg.num_insts();
        define_part(module, part, &mut ctx, opts.dump_clif)?;
        parts.push(part);
    }

    // NAME: call the parts in order (and start the profile clock).
    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, func.as_u32()), sig.clone());
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let args = entry_block(&mut b);
        if let Some(id) = profile {
            let f = module.declare_func_in_func(id, b.func);
            let start = b.ins().iconst(I64, -1);
            b.ins().call(f, &[start]);
        }
        for &part in &parts {
            let f = module.declare_func_in_func(part, b.func);
            b.ins().call(f, &args);
        }
        b.ins().return_(&[]);
        b.finalize(module.target_config());
    }
    define_body(module, func, &mut ctx)?;

    // NAME_workspace_size(dims) = planned elements × element size.
    let size_name = format!("{name}_workspace_size");
    let mut size_sig: Signature = module.make_signature();
    size_sig.params.push(AbiParam::new(ptr));
    size_sig.returns.push(AbiParam::new(I64));
    let size_func = module.declare_function(&size_name, linkage, &size_sig).map_err(err)?;
    let mut sctx = module.make_context();
    sctx.func = Function::with_name_signature(UserFuncName::user(0, size_func.as_u32()), size_sig);
    {
        let mut b = FunctionBuilder::new(&mut sctx.func, &mut fctx);
        let dims = entry_block(&mut b)[0];
        let mut total = b.ins().iconst(I64, 0);
        for m in &plan.size.0 {
            let mut term = b.ins().iconst(I64, m.k * g.dtype.size_bytes() as i64);
            for &s in &m.syms {
                let d = b.ins().load(I64, cranelift_codegen::ir::MemFlagsData::trusted(), dims, (8 * s) as i32);
                term = b.ins().imul(term, d);
            }
            total = b.ins().iadd(total, term);
        }
        b.ins().return_(&[total]);
        b.finalize(module.target_config());
    }
    define_body(module, size_func, &mut sctx)?;

    Ok(Defined {
        func,
        workspace_size_func: size_func,
        plan,
        naive: prog.naive,
        kernels: prog.kernels.len(),
        kernel_names: kernel::preorder(&prog.kernels).iter().map(|(_, k)| k.name()).collect(),
        kernel_summaries: kernel::preorder(&prog.kernels)
            .iter()
            .map(|(depth, k)| format!("{}{}", "  ".repeat(*depth), k.summary(&g.symbols)))
            .collect(),
        clif_insts,
        parts: parts.len(),
        outlined: outlined_kernels,
    })
}

/// What every function of one program shares: the temporaries' places, the functions and
/// data it may call or read, and the options.
struct Shared<'a> {
    offsets: std::rc::Rc<[Option<kernel::Poly>]>,
    gemms: Gemms,
    libm: Vec<(&'static str, FuncId)>,
    opts: &'a CompileOptions,
    data: Vec<DataId>,
    dtype: DType,
    /// The graph's run-time symbols, and the loop indices after them.
    symbols: usize,
    loop_symbols: u32,
}

impl Shared<'_> {
    /// The run-time values of `func`'s body (`emit::Env`): its five ABI pointers `args` and
    /// the functions and symbols it may call, declared in it.
    fn env_in<M: Module>(
        &self,
        module: &mut M,
        func: &mut Function,
        args: [cranelift_codegen::ir::Value; 5],
        checks: Option<&emit::CheckDecls>,
    ) -> emit::Env {
        let gemms = &self.gemms;
        emit::Env {
            args,
            offsets: self.offsets.clone(),
            data: HashMap::new(),
            gemm: module.declare_func_in_func(gemms.gemm, func),
            small_gemm: gemms.small.map(|(f, t)| (module.declare_func_in_func(f, func), t)),
            libm: self.libm.iter().map(|&(n, id)| (n, module.declare_func_in_func(id, func))).collect(),
            libm_math: self.opts.math == MathMode::Libm,
            checks: checks.map(|c| c.in_func(module, func)),
            fma: module.isa().has_native_fma(),
            conv: gemms.conv.map(|f| module.declare_func_in_func(f, func)),
            winograd: gemms.winograd.map(|f| module.declare_func_in_func(f, func)),
            batched_gemm: gemms.batched.map(|f| module.declare_func_in_func(f, func)),
            index_error: gemms.index_error.map(|f| module.declare_func_in_func(f, func)),
            panels: gemms.panels.map(|(pack, gemm)| emit::PanelSymbols {
                pack: module.declare_func_in_func(pack, func),
                gemm: module.declare_func_in_func(gemm, func),
            }),
        }
    }
}

/// A kernel to emit into a function of its own (`emit::outlines`): its name, the kernel and
/// its id (`kernel::preorder`).
struct Outlined<'a> {
    name: &'a str,
    kernel: &'a kernel::Kernel,
    id: i64,
    /// In a loop's body: the loop symbols' values come after the sizes in the dims argument
    /// (`Emitter::call_outlined`).
    in_loop: bool,
}

/// Defines `k.name(inputs, params, outputs, dims, workspace, lo, hi)`, the kernel over its
/// items lo..hi (`emit::Emitter::split`; `symbols::RangeFn`). Returns it and its instruction
/// count.
fn define_outlined<M: Module>(
    module: &mut M,
    fctx: &mut FunctionBuilderContext,
    k: Outlined,
    shared: &Shared,
) -> Result<(FuncId, usize), Diagnostic> {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(ptr); 5]);
    sig.params.extend([AbiParam::new(I64); 2]);
    let f = module.declare_function(k.name, Linkage::Local, &sig).map_err(module_error)?;
    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, f.as_u32()), sig);
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let params = entry_block(&mut b);
        let args: [_; 5] = params[..5].try_into().expect("five pointers");
        let env = shared.env_in(module, b.func, args, None);
        let symbols = if k.in_loop { shared.symbols + shared.loop_symbols as usize } else { shared.symbols };
        let mut e = emit::Emitter::new(b, env, shared.dtype, symbols);
        declare_data(module, &mut e, k.kernel, &shared.data);
        if !k.in_loop {
            e.reserve_loop_symbols(shared.loop_symbols);
        }
        e.kernel_index = k.id - 1;
        e.split = Some((params[5], params[6]));
        e.kernel(k.kernel);
        e.b.ins().return_(&[]);
        e.b.finalize(module.target_config());
    }
    let insts = ctx.func.dfg.num_insts();
    define_part(module, f, &mut ctx, shared.opts.dump_clif)?;
    Ok((f, insts))
}

/// Starts `b`'s function at its entry block (sealed); returns the function's parameters.
fn entry_block(b: &mut FunctionBuilder) -> Vec<cranelift_codegen::ir::Value> {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    b.block_params(entry).to_vec()
}

/// Declares in the emitter's function the literal data objects `k` reads that it lacks.
fn declare_data<M: Module>(module: &mut M, e: &mut emit::Emitter, k: &kernel::Kernel, data: &[DataId]) {
    for a in k.reads() {
        if let kernel::Base::Data(d) = a.base {
            if let std::collections::hash_map::Entry::Vacant(slot) = e.env.data.entry(d) {
                slot.insert(module.declare_data_in_func(data[d], &mut *e.b.func));
            }
        }
    }
}

/// Declare the parallel-kernel symbol (`symbols::PARALLEL`, JIT only): an outlined kernel's
/// address, the five pointers, the item count and the element count.
pub fn import_parallel<M: Module>(module: &mut M) -> Result<FuncId, Diagnostic> {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(ptr); 6]);
    sig.params.extend([AbiParam::new(I64); 2]);
    module.declare_function(symbols::PARALLEL, Linkage::Import, &sig).map_err(module_error)
}

/// Instructions after which a part of the program is closed and the next one begins (a
/// kernel is never split). Small enough for quick register allocation, large enough that the
/// calls between parts cost nothing.
const PART_INSTS: usize = 4000;

fn define_part<M: Module>(module: &mut M, func: FuncId, ctx: &mut Context, dump: bool) -> Result<(), Diagnostic> {
    if dump {
        eprintln!("{}", ctx.func.display());
        ctx.set_disasm(true);
    }
    define_body(module, func, ctx)?;
    if let Some(vcode) = ctx.compiled_code().and_then(|c| c.vcode.as_ref()).filter(|_| dump) {
        eprintln!("{vcode}");
    }
    Ok(())
}

fn define_body<M: Module>(module: &mut M, func: FuncId, ctx: &mut Context) -> Result<(), Diagnostic> {
    module.define_function(func, ctx).map_err(|e| {
        let msg = match e {
            ModuleError::Compilation(ce) => cranelift_codegen::print_errors::pretty_error(&ctx.func, ce),
            other => other.to_string(),
        };
        Diagnostic::new("E-codegen", format!("code generation failed: {msg}"))
    })
}
