//! The object-file driver behind `netc build`. Input: a checked program; output: a relocatable
//! object (cranelift-object, host or `--target` triple) and the C header that declares it.
//!
//! The object holds, under one symbol prefix:
//! - `P_forward`, `P_backward`, `P_train_step`: the model's graphs compiled by the same
//!   `codegen::define` as the JIT, behind small wrappers that take the batch size and one
//!   pointer per tensor (the five-pointer functions of `codegen` stay local);
//! - `P_*_workspace_size(batch)`: bytes of scratch memory each of them needs;
//! - `P_init_params` / `P_init_state`: the initial parameters (drawn from the file's seed, or
//!   `--weights`) embedded as data, and zeroed optimizer state;
//! - its own GEMM (`codegen::gemm`, local), so nothing but libc/libm is needed to link it.
//!
//! See docs/abi.md for the ABI as a user sees it; `header.rs` writes the C header.

mod header;

use std::path::Path;

use cranelift_codegen::ir::types::{F32, F64, I64};
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind, UserFuncName, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};

use crate::codegen::{self, CompileOptions};
use crate::diag::Diagnostic;
use crate::frontend::checked::{Checked, TrainDecl};
use crate::ir::graph::{DType, Graph, InputKind, Shape};
use header::header;

/// What `netc build` was asked for.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Which model (default: the one a train block trains, or the only one).
    pub model: Option<String>,
    /// Symbol prefix (default: the model's name).
    pub prefix: Option<String>,
    /// Trained weights to embed instead of the seeded initial values.
    pub weights: Option<std::path::PathBuf>,
    /// Target triple (default: the host, with the host CPU's features).
    pub target: Option<String>,
    /// The path of the source, named in the header.
    pub source_name: String,
    /// How convolutions are computed (`CompileOptions::conv`).
    pub conv: crate::codegen::ConvAlgorithm,
    /// Refuse a model whose parameters need more bytes than this (default: `limits::default_limit`).
    pub memory_limit: Option<u64>,
}

/// An object file and its header.
pub struct Built {
    pub prefix: String,
    pub object: Vec<u8>,
    pub header: String,
    /// The exported functions, for the command's summary.
    pub functions: Vec<String>,
}

fn error(message: impl Into<String>) -> Diagnostic {
    Diagnostic::new("E-build", message)
}

/// One argument of an exported wrapper, in C order.
#[derive(Clone, Debug)]
enum Arg {
    /// `int64_t batch`: the value of the graph's symbolic dimension.
    Batch,
    /// `const T *name`: graph input `index`.
    Input { index: usize, name: String },
    /// `T name`: a scalar graph input passed by value (the learning rate).
    Scalar { index: usize, name: String },
    /// `uint64_t seed, uint64_t step`: the `RandomKey` input `index`, split by the wrapper
    /// into the key's 16-bit pieces (`ir::ops::random::key`).
    RandomKey { index: usize },
    /// `T *const *name`: a table of `count` parameter pointers, graph params `first..`.
    Params { first: usize, count: usize, name: &'static str, writable: bool },
    /// `T *name`: graph output `index`.
    Output { index: usize, name: String },
    /// `T *const *name`: a table of `count` output pointers, graph outputs `first..`.
    Outputs { first: usize, count: usize, name: &'static str },
    /// `void *workspace`.
    Workspace,
}

/// A graph to export and the C signature of its wrapper.
struct Entry {
    /// `forward`, `backward` or `train_step`.
    what: &'static str,
    graph: Graph,
    args: Vec<Arg>,
    doc: String,
}

/// Everything the header describes besides the functions.
struct Model<'a> {
    name: &'a str,
    prefix: String,
    dtype: DType,
    forward: &'a Graph,
    /// Model parameters: name and shape.
    params: Vec<(String, Vec<usize>)>,
    /// Optimizer state tensors (after the parameters in the train step).
    state: Vec<(String, Vec<usize>)>,
    train: Option<&'a TrainDecl>,
    /// Where the embedded parameter values came from.
    origin: String,
}

/// Compile the chosen model of `checked` into an object file and header.
pub fn build(checked: &Checked, opts: &BuildOptions) -> Result<Built, Diagnostic> {
    let (model, train) = choose_model(checked, opts.model.as_deref())?;
    // The parameters' initial values are drawn and embedded: they must fit in memory (the
    // object holds them as data, so twice their size is needed while it is written).
    let limit = opts.memory_limit.unwrap_or_else(crate::ir::limits::default_limit);
    let (param_bytes, _) = crate::ir::limits::sizes(&model.graph, 1);
    if param_bytes.saturating_mul(2) > limit as u128 {
        return Err(Diagnostic::new(
            "E-memory",
            format!(
                "build {}: the parameters need {} (twice that while the object is written), over the memory limit of {}",
                model.name,
                crate::ir::limits::human(param_bytes),
                crate::ir::limits::human(limit as u128)
            ),
        )
        .help("make the model smaller, or raise the limit with --memory-limit"));
    }
    let prefix = opts.prefix.clone().unwrap_or_else(|| model.name.clone());
    if !is_c_identifier(&prefix) {
        return Err(error(format!("the symbol prefix `{prefix}` is not a C identifier"))
            .note("use --prefix with letters, digits and underscores, not starting with a digit"));
    }
    let shape_of = |s: &Shape| s.iter().map(|d| d.known().unwrap_or(1)).collect::<Vec<usize>>();
    let params: Vec<(String, Vec<usize>)> =
        model.graph.params.iter().map(|p| (p.name.clone(), shape_of(&p.shape))).collect();

    let mut entries = vec![forward_entry(&model.graph)?];
    let mut step_graph = None;
    if let Some(t) = train {
        entries.push(backward_entry(t)?);
        let step = crate::training::optim::build(t).map_err(error)?;
        for (i, p) in params.iter().enumerate() {
            if step.graph.params[i].name != p.0 {
                return Err(error("the train step's parameters are not the model's, in order"));
            }
        }
        entries.push(train_entry(step.graph.clone(), step.model_params)?);
        step_graph = Some(step.graph);
    }
    for e in &entries {
        if e.graph.symbols.len() > 1 {
            return Err(error(format!(
                "`{}` has {} run-time dimensions ({}); netc build supports one, the batch",
                model.name,
                e.graph.symbols.len(),
                e.graph.symbols.join(", ")
            )));
        }
    }
    let state: Vec<(String, Vec<usize>)> = step_graph
        .as_ref()
        .map(|g| g.params[params.len()..].iter().map(|p| (p.name.clone(), shape_of(&p.shape))).collect())
        .unwrap_or_default();

    // Initial values: the file's seed, as `netc run` draws them, or the trained weights.
    let seed = train.map_or(0, |t| t.seed);
    let mut initial: Vec<Vec<f64>> =
        crate::runtime::params::init_params(&model.graph, seed).into_iter().map(|t| t.data).collect();
    if let Some(path) = &opts.weights {
        let expected: Vec<(&str, &[usize])> = params.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        for (i, w) in crate::runtime::weights::load_for(path, &expected)?.into_iter().enumerate() {
            initial[i] = w.data.iter().map(|&v| v as f64).collect();
        }
    }

    let mut module = object_module(opts.target.as_deref(), &prefix)?;
    let dtype = model.graph.dtype;
    let gemm = codegen::gemm::define_gemm(&mut module, &format!("{prefix}_gemm"), Linkage::Local, dtype)?;
    // (`verify` does not apply here: `object_module` sets the ISA's verifier flag itself.)
    let copts = CompileOptions { conv: opts.conv, ..CompileOptions::default() };
    let mut functions = vec![];
    for e in &mut entries {
        crate::ir::opt::optimize(&mut e.graph, None).map_err(error)?;
        let raw_name = format!("{prefix}_{}_graph", e.what);
        let gemms = codegen::Gemms::only(gemm);
        let defined = codegen::define(&mut module, &e.graph, &raw_name, Linkage::Local, gemms, &copts)?;
        let name = format!("{prefix}_{}", e.what);
        define_wrapper(&mut module, &name, defined.func, &e.graph, &e.args)?;
        define_workspace_size(&mut module, &format!("{name}_workspace_size"), defined.workspace_size_func)?;
        functions.push(name);
    }
    define_init(&mut module, &format!("{prefix}_init_params"), dtype, Init::Values(&initial))?;
    functions.push(format!("{prefix}_init_params"));
    if !state.is_empty() {
        let sizes: Vec<usize> = state.iter().map(|(_, s)| s.iter().product()).collect();
        define_init(&mut module, &format!("{prefix}_init_state"), dtype, Init::Zeros(&sizes))?;
        functions.push(format!("{prefix}_init_state"));
    }
    let object = module.finish().emit().map_err(|e| error(format!("writing the object file: {e}")))?;
    let origin = match &opts.weights {
        Some(path) => format!("the weights of {}", path.display()),
        None => format!("initial values drawn as `netc run` draws them (seed {seed})"),
    };
    let info = Model { name: &model.name, prefix, dtype, forward: &model.graph, params, state, train, origin };
    // The path goes into a comment: keep it printable ASCII and unable to close the comment.
    let source: String = opts
        .source_name
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect::<String>()
        .replace("*/", "*?");
    let header = header(&info, &entries, &source);
    Ok(Built { prefix: info.prefix, object, header, functions })
}

/// The model a build compiles: the one named, else the one a train block trains, else the
/// only model of the file.
fn choose_model<'a>(
    checked: &'a Checked,
    name: Option<&str>,
) -> Result<(&'a crate::frontend::checked::Model, Option<&'a TrainDecl>), Diagnostic> {
    let names = || checked.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
    let model = match name {
        Some(n) => checked.models.iter().find(|m| m.name == n).ok_or_else(|| {
            let mut d = error(format!("no model named `{n}`"));
            if let Some(near) = crate::diag::nearest(n, checked.models.iter().map(|m| m.name.as_str())) {
                d = d.note(format!("did you mean `{near}`?"));
            }
            d.note(format!("the file's models: {}", names()))
        })?,
        None => match (checked.trains.first(), checked.models.as_slice()) {
            (Some(t), _) => checked.models.iter().find(|m| m.name == t.model).ok_or_else(|| error("no model"))?,
            (None, [only]) => only,
            (None, []) => return Err(error("the file defines no model to build")),
            (None, _) => {
                return Err(error("the file has several models; say which with --model")
                    .note(format!("the file's models: {}", names())))
            }
        },
    };
    let train = checked.trains.iter().find(|t| t.model == model.name);
    Ok((model, train))
}

fn is_c_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `fc1.W` -> `fc1_W`: a tensor name as part of a C identifier.
fn c_name(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn forward_entry(g: &Graph) -> Result<Entry, Diagnostic> {
    let mut args = vec![Arg::Batch];
    args.extend(g.inputs.iter().enumerate().map(|(index, i)| Arg::Input { index, name: c_name(&i.name) }));
    args.push(Arg::Params { first: 0, count: g.params.len(), name: "params", writable: false });
    args.extend(g.outputs.iter().enumerate().map(|(index, (n, _))| Arg::Output { index, name: c_name(n) }));
    args.push(Arg::Workspace);
    Ok(Entry { what: "forward", graph: g.clone(), args, doc: "Inference: the model's outputs for a batch.".into() })
}

/// The C arguments of a graph's inputs, in order: tensors by pointer, scalars (the learning
/// rate) by value, and last the seed and step of the random streams.
fn input_args(g: &Graph) -> Vec<Arg> {
    let mut args = vec![];
    let mut key = None;
    for (index, i) in g.inputs.iter().enumerate() {
        match i.kind {
            InputKind::RandomKey => key = Some(Arg::RandomKey { index }),
            InputKind::Variable if i.shape.is_empty() => args.push(Arg::Scalar { index, name: c_name(&i.name) }),
            InputKind::Data | InputKind::Label | InputKind::Variable | InputKind::Gradient => {
                args.push(Arg::Input { index, name: c_name(&i.name) })
            }
        }
    }
    args.extend(key);
    args
}

/// The train block's loss and its gradient with respect to every model parameter (training
/// mode; a state tensor's gradient is zero).
fn backward_entry(t: &TrainDecl) -> Result<Entry, Diagnostic> {
    let mut g = t.graph.clone();
    // The backward pass only reads the parameters: the running statistics move in train steps.
    g.updates.clear();
    let loss = g.outputs.iter().find(|(n, _)| n == "loss").map(|o| o.1).ok_or_else(|| error("no loss"))?;
    let params = g.param_nodes().map_err(error)?;
    let grads = crate::ir::autodiff::differentiate(&mut g, loss, &params).map_err(error)?;
    g.outputs = vec![("loss".into(), loss)];
    for (p, grad) in grads.into_iter().enumerate() {
        let name = format!("d_{}", g.params[p].name);
        g.outputs.push((name, grad));
    }
    let mut args = vec![Arg::Batch];
    args.extend(input_args(&g));
    args.push(Arg::Params { first: 0, count: g.params.len(), name: "params", writable: false });
    args.push(Arg::Output { index: 0, name: "loss".into() });
    args.push(Arg::Outputs { first: 1, count: g.params.len(), name: "grads" });
    args.push(Arg::Workspace);
    let doc = "The loss of a batch and its gradient with respect to every parameter (grads[i] has \
               the shape of params[i]); the parameters are not changed."
        .into();
    Ok(Entry { what: "backward", graph: g, args, doc })
}

/// The fused train step: forward, backward and the optimizer's in-place update.
fn train_entry(mut g: Graph, model_params: usize) -> Result<Entry, Diagnostic> {
    let loss = g.outputs.iter().find(|(n, _)| n == "loss").cloned().ok_or_else(|| error("no loss"))?;
    g.outputs = vec![loss];
    let mut args = vec![Arg::Batch];
    args.extend(input_args(&g));
    args.push(Arg::Params { first: 0, count: model_params, name: "params", writable: true });
    let state = g.params.len() - model_params;
    if state > 0 {
        args.push(Arg::Params { first: model_params, count: state, name: "state", writable: true });
    }
    args.push(Arg::Output { index: 0, name: "loss".into() });
    args.push(Arg::Workspace);
    let doc = "One training step on a batch: updates params (trainable ones by the optimizer, state by \
               its rule) and the optimizer state in place, and writes the batch's loss before the update."
        .into();
    Ok(Entry { what: "train_step", graph: g, args, doc })
}

/// An object module for `target` (default: the host and its CPU features), position
/// independent so the object links into executables and shared libraries alike.
fn object_module(target: Option<&str>, name: &str) -> Result<ObjectModule, Diagnostic> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).map_err(|e| error(format!("cranelift flag {k}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "true")?;
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    // The GEMM's frame (~8.5 KiB, its packed panel) is larger than a thread's guard page:
    // probe it inline, so a stack overflow faults instead of writing past the guard.
    set(&mut flags, "enable_probestack", "true")?;
    set(&mut flags, "probestack_strategy", "inline")?;
    let isa_builder = match target {
        None => cranelift_native::builder().map_err(|e| error(format!("unsupported host: {e}")))?,
        Some(text) => {
            let supported =
                "supported: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu (and other x86-64/AArch64 triples)";
            // Parsed here: Cranelift's `lookup_by_name` panics on a string that is not a triple.
            let triple = <target_lexicon::Triple as std::str::FromStr>::from_str(text)
                .map_err(|e| error(format!("`{text}` is not a target triple: {e}")).note(supported))?;
            if triple.binary_format == target_lexicon::BinaryFormat::Unknown {
                return Err(error(format!("cannot compile for `{text}`: no object file format is known for it"))
                    .note(supported));
            }
            cranelift_codegen::isa::lookup(triple)
                .map_err(|e| error(format!("cannot compile for `{text}`: {e}")).note(supported))?
        }
    };
    let isa = isa_builder.finish(settings::Flags::new(flags)).map_err(|e| error(format!("target: {e}")))?;
    let builder = ObjectBuilder::new(isa, name, default_libcall_names()).map_err(|e| error(e.to_string()))?;
    Ok(ObjectModule::new(builder))
}

fn float_type(dtype: DType) -> cranelift_codegen::ir::Type {
    match dtype {
        DType::F32 => F32,
        DType::F64 => F64,
    }
}

/// A stack table of `n` pointer-sized slots.
fn stack_table(b: &mut FunctionBuilder, n: usize) -> cranelift_codegen::ir::StackSlot {
    b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (8 * n.max(1)) as u32, 3))
}

/// Declare the exported function `name` and define its body: `body` gets the builder,
/// positioned in the sealed entry block, and the function's parameters; it must return.
fn define_exported(
    module: &mut ObjectModule,
    name: &str,
    sig: Signature,
    body: impl FnOnce(&mut ObjectModule, &mut FunctionBuilder, &[Value]),
) -> Result<(), Diagnostic> {
    let err = |e: cranelift_module::ModuleError| error(format!("code generation failed: {e}"));
    let func = module.declare_function(name, Linkage::Export, &sig).map_err(err)?;
    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, func.as_u32()), sig);
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    body(module, &mut b, &params);
    b.finalize(module.target_config());
    module.define_function(func, &mut ctx).map_err(err)
}

/// `name(args…)`: lay the arguments out as the five-pointer call of `codegen` and make it.
fn define_wrapper(
    module: &mut ObjectModule,
    name: &str,
    raw: FuncId,
    g: &Graph,
    args: &[Arg],
) -> Result<(), Diagnostic> {
    let ptr = module.target_config().pointer_type();
    let ty = float_type(g.dtype);
    let mut sig = module.make_signature();
    for a in args {
        match a {
            Arg::Batch => sig.params.push(AbiParam::new(I64)),
            Arg::Scalar { .. } => sig.params.push(AbiParam::new(ty)),
            Arg::RandomKey { .. } => sig.params.extend([AbiParam::new(I64), AbiParam::new(I64)]),
            _ => sig.params.push(AbiParam::new(ptr)),
        }
    }
    define_exported(module, name, sig, |module, b, values| {
        let flags = MemFlagsData::trusted();
        let (dims, inputs) = (stack_table(b, g.symbols.len()), stack_table(b, g.inputs.len()));
        let (params, outputs) = (stack_table(b, g.params.len()), stack_table(b, g.outputs.len()));
        let mut workspace = None;
        // The C arguments, in order: a random key takes two (seed, step).
        let mut values = values.iter().copied();
        for a in args {
            let v = values.next().expect("one value per argument");
            match *a {
                Arg::Batch => {
                    for s in 0..g.symbols.len() {
                        b.ins().stack_store(ptr, v, dims, (8 * s) as i32);
                    }
                }
                Arg::Input { index, .. } => {
                    b.ins().stack_store(ptr, v, inputs, (8 * index) as i32);
                }
                Arg::Scalar { index, .. } => {
                    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 8, 3));
                    b.ins().stack_store(ptr, v, slot, 0);
                    let addr = b.ins().stack_addr(ptr, slot, 0);
                    b.ins().stack_store(ptr, addr, inputs, (8 * index) as i32);
                }
                Arg::RandomKey { index } => {
                    // The key's pieces: seed, then step, each as four 16-bit values, low first.
                    let step = values.next().expect("a random key takes a seed and a step");
                    let es = g.dtype.size_bytes();
                    let len = crate::ir::ops::random::KEY_LEN;
                    let slot = b.create_sized_stack_slot(StackSlotData::new(
                        StackSlotKind::ExplicitSlot,
                        (len * es) as u32,
                        4,
                    ));
                    for (k, word) in [v, v, v, v, step, step, step, step].into_iter().enumerate() {
                        let shifted = b.ins().ushr_imm_u(word, 16 * (k % 4) as i64);
                        let piece = b.ins().band_imm_u(shifted, 0xffff);
                        let f = b.ins().fcvt_from_uint(ty, piece);
                        b.ins().stack_store(ptr, f, slot, (k * es) as i32);
                    }
                    let addr = b.ins().stack_addr(ptr, slot, 0);
                    b.ins().stack_store(ptr, addr, inputs, (8 * index) as i32);
                }
                Arg::Params { first, count, .. } => {
                    for i in 0..count {
                        let p = b.ins().load(ptr, flags, v, (8 * i) as i32);
                        b.ins().stack_store(ptr, p, params, (8 * (first + i)) as i32);
                    }
                }
                Arg::Output { index, .. } => {
                    b.ins().stack_store(ptr, v, outputs, (8 * index) as i32);
                }
                Arg::Outputs { first, count, .. } => {
                    for i in 0..count {
                        let p = b.ins().load(ptr, flags, v, (8 * i) as i32);
                        b.ins().stack_store(ptr, p, outputs, (8 * (first + i)) as i32);
                    }
                }
                Arg::Workspace => workspace = Some(v),
            }
        }
        let tables: Vec<Value> =
            [inputs, params, outputs, dims].iter().map(|&s| b.ins().stack_addr(ptr, s, 0)).collect();
        let callee = module.declare_func_in_func(raw, b.func);
        let ws = workspace.expect("every wrapper takes a workspace");
        b.ins().call(callee, &[tables[0], tables[1], tables[2], tables[3], ws]);
        b.ins().return_(&[]);
    })
}

/// `int64_t name(int64_t batch)`: the workspace bytes of a wrapper, from `codegen`'s
/// `NAME_workspace_size(dims)`.
fn define_workspace_size(module: &mut ObjectModule, name: &str, raw: FuncId) -> Result<(), Diagnostic> {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(I64));
    sig.returns.push(AbiParam::new(I64));
    define_exported(module, name, sig, |module, b, values| {
        let batch = values[0];
        // Every graph has at most one symbol, so a table of one entry serves them all.
        let dims = stack_table(b, 1);
        b.ins().stack_store(ptr, batch, dims, 0);
        let addr = b.ins().stack_addr(ptr, dims, 0);
        let callee = module.declare_func_in_func(raw, b.func);
        let call = b.ins().call(callee, &[addr]);
        let bytes = b.inst_results(call)[0];
        b.ins().return_(&[bytes]);
    })
}

/// What an init function writes into each of the caller's buffers.
enum Init<'a> {
    /// These values, embedded in the object as read-only data.
    Values(&'a [Vec<f64>]),
    /// Zeros, this many elements per buffer.
    Zeros(&'a [usize]),
}

/// `void name(T *const *tensors)`: fill each buffer of the caller's table.
fn define_init(module: &mut ObjectModule, name: &str, dtype: DType, init: Init) -> Result<(), Diagnostic> {
    let err = |e: cranelift_module::ModuleError| error(format!("code generation failed: {e}"));
    let ptr = module.target_config().pointer_type();
    let mut data = vec![];
    if let Init::Values(tensors) = init {
        for (i, values) in tensors.iter().enumerate() {
            let id = module.declare_data(&format!("{name}_{i}"), Linkage::Local, false, false).map_err(err)?;
            codegen::define_values(module, id, dtype, values).map_err(err)?;
            data.push((id, values.len()));
        }
    }
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr));
    define_exported(module, name, sig, |module, b, values| {
        let table = values[0];
        let config = module.target_config();
        let es = dtype.size_bytes() as i64;
        match init {
            Init::Values(_) => {
                for (i, &(id, len)) in data.iter().enumerate() {
                    let dst = b.ins().load(ptr, MemFlagsData::trusted(), table, (8 * i) as i32);
                    let gv = module.declare_data_in_func(id, b.func);
                    let src = b.ins().symbol_value(ptr, gv);
                    let size = b.ins().iconst(ptr, len as i64 * es);
                    b.call_memcpy(config, dst, src, size);
                }
            }
            Init::Zeros(sizes) => {
                for (i, &len) in sizes.iter().enumerate() {
                    let dst = b.ins().load(ptr, MemFlagsData::trusted(), table, (8 * i) as i32);
                    let zero = b.ins().iconst(cranelift_codegen::ir::types::I8, 0);
                    let size = b.ins().iconst(ptr, len as i64 * es);
                    b.call_memset(config, dst, zero, size);
                }
            }
        }
        b.ins().return_(&[]);
    })
}

/// Write `built` as `object` and its header next to it (`model.o` -> `model.h`, or `header`)
/// as one atomic group (`files::write_atomic_all`): never over one of `inputs` (the source,
/// the weights) or each other, and if either cannot be written, neither file is replaced.
pub fn write(built: &Built, object: &Path, header: &Path, inputs: &[&Path]) -> Result<(), Diagnostic> {
    use crate::runtime::files;
    files::write_atomic_all(&[(object, &built.object), (header, built.header.as_bytes())], inputs)
        .map_err(|(path, e)| error(format!("cannot write {}: {e}", path.display())))
}
