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
//! See docs/abi.md for the ABI as a user sees it.

use std::fmt::Write as _;
use std::path::Path;

use cranelift_codegen::ir::types::{F32, F64, I64};
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind, UserFuncName, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{default_libcall_names, DataDescription, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};

use crate::codegen::{self, CompileOptions};
use crate::diag::Diagnostic;
use crate::frontend::checked::{Checked, Optimizer, Schedule, TrainDecl};
use crate::ir::graph::{DType, Dim, Graph, InputKind, Shape};

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
        let gemms = codegen::Gemms { gemm, small: None, conv: None, winograd: None, batch: None };
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
    let header = header(&info, &entries, &opts.source_name);
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

/// The train block's loss and its gradient with respect to every model parameter.
fn backward_entry(t: &TrainDecl) -> Result<Entry, Diagnostic> {
    let mut g = t.graph.clone();
    let loss = g.outputs.iter().find(|(n, _)| n == "loss").map(|o| o.1).ok_or_else(|| error("no loss"))?;
    let params = g.param_nodes().map_err(error)?;
    let grads = crate::ir::autodiff::differentiate(&mut g, loss, &params).map_err(error)?;
    g.outputs = vec![("loss".into(), loss)];
    for (p, grad) in grads.into_iter().enumerate() {
        let name = format!("d_{}", g.params[p].name);
        g.outputs.push((name, grad));
    }
    let mut args = vec![Arg::Batch];
    args.extend(g.inputs.iter().enumerate().map(|(index, i)| Arg::Input { index, name: c_name(&i.name) }));
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
    for (index, i) in g.inputs.iter().enumerate() {
        args.push(match i.kind {
            InputKind::Variable if i.shape.is_empty() => Arg::Scalar { index, name: c_name(&i.name) },
            _ => Arg::Input { index, name: c_name(&i.name) },
        });
    }
    args.push(Arg::Params { first: 0, count: model_params, name: "params", writable: true });
    let state = g.params.len() - model_params;
    if state > 0 {
        args.push(Arg::Params { first: model_params, count: state, name: "state", writable: true });
    }
    args.push(Arg::Output { index: 0, name: "loss".into() });
    args.push(Arg::Workspace);
    let doc = "One training step on a batch: updates params (and the optimizer state) in place and \
               writes the batch's loss before the update."
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
        Some(triple) => cranelift_codegen::isa::lookup_by_name(triple).map_err(|e| {
            error(format!("cannot compile for `{triple}`: {e}")).note(
                "supported: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu (and other x86-64/AArch64 triples)",
            )
        })?,
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
        sig.params.push(AbiParam::new(match a {
            Arg::Batch => I64,
            Arg::Scalar { .. } => ty,
            _ => ptr,
        }));
    }
    define_exported(module, name, sig, |module, b, values| {
        let flags = MemFlagsData::trusted();
        let (dims, inputs) = (stack_table(b, g.symbols.len()), stack_table(b, g.inputs.len()));
        let (params, outputs) = (stack_table(b, g.params.len()), stack_table(b, g.outputs.len()));
        let mut workspace = None;
        for (a, &v) in args.iter().zip(values) {
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
            let bytes: Vec<u8> = match dtype {
                DType::F32 => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
                DType::F64 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            };
            let mut desc = DataDescription::new();
            desc.define(bytes.into_boxed_slice());
            desc.set_align(64);
            module.define_data(id, &desc).map_err(err)?;
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

/// A shape as the source writes it: `[B, 2]`.
fn shape_text(g: &Graph, shape: &Shape) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Known(n) => n.to_string(),
            Dim::Sym(s) => g.symbols[s.0 as usize].clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// `#define P_NAME_ROW k` (elements per batch row) or `P_NAME_SIZE n` (no batch dimension).
fn size_macro(out: &mut String, upper: &str, name: &str, g: &Graph, shape: &Shape) {
    let known: usize = shape.iter().filter_map(|d| d.known()).product();
    let syms = shape.iter().filter(|d| d.known().is_none()).count();
    let id = c_name(name).to_uppercase();
    let text = shape_text(g, shape);
    match syms {
        0 => _ = writeln!(out, "#define {upper}_{id}_SIZE {known} /* {name}: {text} */"),
        1 => _ = writeln!(out, "#define {upper}_{id}_ROW {known} /* {name}: {text}, elements per batch row */"),
        _ => _ = writeln!(out, "/* {name}: {text} */"),
    }
}

/// A C parameter name that cannot collide with the wrappers' fixed ones.
fn c_param(name: &str) -> String {
    let n = c_name(name);
    if ["batch", "params", "state", "loss", "grads", "workspace"].contains(&n.as_str()) {
        format!("{n}_")
    } else {
        n
    }
}

fn header(m: &Model, entries: &[Entry], source: &str) -> String {
    let p = &m.prefix;
    let upper = p.to_uppercase();
    let t = match m.dtype {
        DType::F32 => "float",
        DType::F64 => "double",
    };
    let g = m.forward;
    let sig =
        |items: Vec<(String, String)>| items.iter().map(|(n, s)| format!("{n}: {s}")).collect::<Vec<_>>().join(", ");
    let ins = sig(g.inputs.iter().map(|i| (i.name.clone(), shape_text(g, &i.shape))).collect());
    let outs = sig(g.outputs.iter().map(|(n, id)| (n.clone(), shape_text(g, g.shape(*id)))).collect());
    let batch = g.symbols.first().map_or("B".to_string(), |s| s.clone());
    let mut h = String::new();
    let _ = write!(
        h,
        "/* {p}.h: the C API of the object file `netc build` compiled from {source}\n\
         \x20* (netc {version}). Generated: do not edit.\n\
         \x20*\n\
         \x20* model {name}({ins}) -> {outs}\n\
         \x20*\n\
         \x20* Tensors are dense row-major arrays of {t}; {batch} is the batch size, passed at run time.\n\
         \x20* The caller allocates every buffer (parameters, inputs, outputs, workspace); the\n\
         \x20* functions allocate nothing and keep no state, so calls with separate workspaces and\n\
         \x20* outputs may run on several threads at once. Buffers must not overlap. See docs/abi.md.\n\
         \x20*\n\
         \x20* Link: cc main.c {p}.o -lm\n\
         \x20*/\n\
         #ifndef {upper}_H\n#define {upper}_H\n\n#include <stdint.h>\n",
        version = env!("CARGO_PKG_VERSION"),
        name = m.name,
    );
    if m.train.is_some() {
        h.push_str("#include <math.h>\n");
    }
    h.push_str("\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");

    // Parameters.
    let n = m.params.len();
    let _ = writeln!(h, "/* Parameters: pass them as a table `{t} *params[{upper}_NUM_PARAMS]`, in this order. */");
    let _ = writeln!(h, "#define {upper}_NUM_PARAMS {n}");
    let total: usize = m.params.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    let _ = writeln!(h, "#define {upper}_PARAM_ELEMENTS {total} /* all parameters together */");
    for (i, (name, shape)) in m.params.iter().enumerate() {
        let size: usize = shape.iter().product();
        let _ = writeln!(
            h,
            "#define {upper}_PARAM_{} {i} /* {name}: {shape:?}, {size} elements */",
            c_name(name).to_uppercase()
        );
    }
    tensor_tables(&mut h, p, "param", &m.params, n);
    let _ = writeln!(
        h,
        "/* Write the initial parameters into params[0..{upper}_NUM_PARAMS): {}. */\n\
         void {p}_init_params({t} *const *params);\n",
        m.origin
    );

    // Optimizer state.
    if let Some(train) = m.train {
        let optimizer = match train.optimizer {
            Optimizer::Sgd { .. } => "sgd keeps no state",
            Optimizer::Momentum { .. } => "momentum: one velocity per parameter",
            Optimizer::Adam { .. } => "adam: the step count, then first and second moments per parameter",
        };
        let _ = writeln!(h, "/* Optimizer state of {p}_train_step ({optimizer}), a table like params. */");
        let _ = writeln!(h, "#define {upper}_NUM_STATE {}", m.state.len());
        if !m.state.is_empty() {
            tensor_tables(&mut h, p, "state", &m.state, m.state.len());
            let _ = writeln!(
                h,
                "/* Zero the optimizer state (before the first step). */\nvoid {p}_init_state({t} *const *state);"
            );
        }
        h.push('\n');
    }

    // Inputs and outputs of each function.
    let mut described = std::collections::HashSet::new();
    for e in entries {
        let eg = &e.graph;
        let _ = writeln!(h, "/* {p}_{}: {} */", e.what, e.doc);
        for a in &e.args {
            match a {
                Arg::Input { index, .. } => {
                    let i = &eg.inputs[*index];
                    if described.insert(i.name.clone()) {
                        size_macro(&mut h, &upper, &i.name, eg, &i.shape);
                    }
                }
                Arg::Output { index, .. } => {
                    let (name, id) = &eg.outputs[*index];
                    if described.insert(name.clone()) {
                        size_macro(&mut h, &upper, name, eg, eg.shape(*id));
                    }
                }
                _ => {}
            }
        }
        let params: Vec<String> = e
            .args
            .iter()
            .map(|a| match a {
                Arg::Batch => "int64_t batch".to_string(),
                Arg::Input { name, .. } => format!("const {t} *{}", c_param(name)),
                Arg::Scalar { name, .. } => format!("{t} {}", c_param(name)),
                Arg::Params { name, writable: true, .. } => format!("{t} *const *{name}"),
                Arg::Params { name, writable: false, .. } => format!("const {t} *const *{name}"),
                Arg::Output { name, .. } => format!("{t} *{}", c_param(name)),
                Arg::Outputs { name, .. } => format!("{t} *const *{name}"),
                Arg::Workspace => "void *workspace".to_string(),
            })
            .collect();
        let _ = writeln!(h, "void {p}_{}({});", e.what, params.join(", "));
        let _ = writeln!(
            h,
            "/* Bytes of workspace {p}_{} needs for this batch size (align it to 64 bytes). */\n\
             int64_t {p}_{}_workspace_size(int64_t batch);\n",
            e.what, e.what
        );
    }

    if let Some(train) = m.train {
        learning_rate(&mut h, p, &upper, train);
    }
    h.push_str("#ifdef __cplusplus\n}\n#endif\n\n");
    let _ = writeln!(h, "#endif /* {upper}_H */");
    h
}

/// `static const` tables of names, sizes and shapes of a list of tensors.
fn tensor_tables(h: &mut String, p: &str, kind: &str, tensors: &[(String, Vec<usize>)], n: usize) {
    if n == 0 {
        return;
    }
    let names: Vec<String> = tensors.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    let sizes: Vec<String> = tensors.iter().map(|(_, s)| s.iter().product::<usize>().to_string()).collect();
    let ranks: Vec<String> = tensors.iter().map(|(_, s)| s.len().to_string()).collect();
    let max_rank = tensors.iter().map(|(_, s)| s.len()).max().unwrap_or(0).max(1);
    let shapes: Vec<String> = tensors
        .iter()
        .map(|(_, s)| {
            let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
            format!("{{{}}}", if dims.is_empty() { "0".to_string() } else { dims.join(", ") })
        })
        .collect();
    let _ = writeln!(h, "static const char *const {p}_{kind}_names[{n}] = {{{}}};", names.join(", "));
    let _ = writeln!(h, "static const int64_t {p}_{kind}_sizes[{n}] = {{{}}};", sizes.join(", "));
    let _ = writeln!(h, "static const int {p}_{kind}_ranks[{n}] = {{{}}};", ranks.join(", "));
    let _ = writeln!(h, "static const int64_t {p}_{kind}_shapes[{n}][{max_rank}] = {{{}}};", shapes.join(", "));
}

/// The train block's settings and its learning rate schedule as an inline C function, so a C
/// training loop passes `lr` exactly as `netc run` does (Adam's bias correction is in the
/// step itself, from the step count in its state).
fn learning_rate(h: &mut String, p: &str, upper: &str, t: &TrainDecl) {
    let _ = writeln!(h, "/* The train block's settings. */");
    if let Some(batch) = t.batch {
        let _ = writeln!(h, "#define {upper}_BATCH {batch}");
    }
    let base = match t.optimizer {
        Optimizer::Sgd { lr } | Optimizer::Momentum { lr, .. } | Optimizer::Adam { lr, .. } => lr,
    };
    // The schedule runs over the steps after warmup: `s` of `n` (see training::optim).
    let scheduled = match t.schedule {
        Schedule::Constant => format!("{base:e}"),
        Schedule::Step { every, gamma } => {
            format!("{base:e} * pow({gamma:e}, (double)(s / {}))", every.max(1))
        }
        Schedule::Cosine { min_lr } => format!(
            "{min_lr:e} + 0.5 * ({base:e} - {min_lr:e}) * (1.0 + cos(3.14159265358979323846 * (double)s / (double)(n > 0 ? n : 1)))"
        ),
    };
    let warmup = t.warmup;
    let _ = writeln!(
        h,
        "/* The `lr` to pass to {p}_train_step at step `step` (0-based) of `total`: the file's\n\
         \x20* schedule{}. */\n\
         static inline double {p}_learning_rate(int64_t step, int64_t total) {{\n\
         \x20   const int64_t warmup = {warmup};\n\
         \x20   int64_t s = step < warmup ? 0 : step - warmup;\n\
         \x20   int64_t n = total > warmup ? total - warmup : 0;\n\
         \x20   double factor = step < warmup ? (double)(step + 1) / (double)warmup : 1.0;\n\
         \x20   (void)s; (void)n;\n\
         \x20   return ({scheduled}) * factor;\n\
         }}\n",
        if warmup > 0 { format!(" after {warmup} steps of linear warmup") } else { String::new() },
    );
}

/// Write `built` as `object` and its header next to it (`model.o` -> `model.h`, or `header`).
pub fn write(built: &Built, object: &Path, header: &Path) -> Result<(), Diagnostic> {
    let io = |path: &Path, e: std::io::Error| error(format!("cannot write {}: {e}", path.display()));
    std::fs::write(object, &built.object).map_err(|e| io(object, e))?;
    std::fs::write(header, &built.header).map_err(|e| io(header, e))
}
