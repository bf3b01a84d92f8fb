//! `netc bench FILE`: times a model's train block on synthetic inputs of the model's shape (no
//! data files are read). Input: a `.net` file with a train block; output: a table or one JSON
//! object with
//!
//! - `first_step_ms`: process start (an `Instant` taken first thing in `main`) to the end of
//!   the first train step — reading, checking, initialising parameters (`init_ms`), building
//!   the JIT engine (`engine_build_ms`) and one step;
//! - `compile_step_ms`, `compile_infer_ms`: `jit::compile` of the train step and of the
//!   inference (loss + scores) graph, prepared as the JIT engine prepares them;
//! - `step_ms_median`/`_min` over `--steps` steps after `--warmup`, and `infer_ms_median`/`_min`
//!   for `Engine::evaluate` on one batch; `step_cpu_ms_median`, the CPU time of the process's
//!   threads per step (Linux: /proc/self/task/*/schedstat), which other processes on a shared
//!   machine inflate far less than the wall time (at N threads, up to N × the wall time);
//! - GFLOP/s. Convention: only matmuls and convolutions count, 2·M·N·K per matmul and a conv as
//!   its im2col GEMM (2·N·OH·OW·F·C·KH·KW, the same for its two gradients), a loop its body's
//!   products times its trip count (the backward loop's body recomputes the step); a train step
//!   counts the products its optimised graph executes (`step_gflop`: the forward ones and the
//!   backward ones it needs, so no input gradient of the first layer, which is not computed);
//!   inference counts the forward (`forward_gflop`);
//! - `peak_rss_train_mib` (VmHWM of /proc/self/status) after the timed train steps, and
//!   `peak_rss_mib` at the end (after inference); `workspace_step_mib`/`_infer_mib`, the
//!   memory plans' workspace at this batch size; `clif_insts_step`, the Cranelift
//!   instructions of the compiled train step (what compile time grows with).
//!
//! `--compile-only` checks and compiles only (compile scaling, W8 of issue #8), and adds
//! `total_cpu_ms`, the CPU time to that point (/proc/self/stat). `--threads N`
//! sets MATMUL_NUM_THREADS, which the GEMM reads once, at its first call.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::codegen::CompileOptions;
use crate::diag::{self, Diagnostic, SourceFile};
use crate::ir::graph::{Dim, Graph, InputKind, NodeId, Op};
use crate::runtime::rng::Rng;
use crate::training;

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    pub file: PathBuf,
    /// Batch size (default: the train block's, else 32).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Timed train steps (and inference batches).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// GEMM threads (sets MATMUL_NUM_THREADS; default: its value, else the physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Check and compile only; report compile times.
    #[arg(long)]
    pub compile_only: bool,
    /// Start from these weights (safetensors, the model's parameter names) instead of the
    /// file's initialisers.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// The train block to time, when the file has several.
    #[arg(long, value_name = "NAME")]
    pub train: Option<String>,
    /// Compile with bounds checks (`netc run --checked`), to measure what they cost.
    #[arg(long)]
    pub checked: bool,
    /// Also time every kernel of the train step (a timer call after each; the step gets a
    /// little slower) and print where the step's time goes, kernel by kernel.
    #[arg(long)]
    pub profile: bool,
    /// How convolutions are computed: auto (Winograd for stride-1 3×3 and 5×5 layers of at
    /// least 16 channels in and out, im2col + GEMM for the rest), direct (im2col + GEMM
    /// everywhere), winograd (every stride-1 3×3 and 5×5 layer), winograd2 / winograd4 (with
    /// that output tile).
    #[arg(long, value_name = "ALGORITHM", default_value = "auto", value_parser = crate::codegen::ConvAlgorithm::parse)]
    pub conv: crate::codegen::ConvAlgorithm,
}

/// Run the benchmark and print its report; `started` is the process's start.
pub fn main(args: &BenchArgs, started: Instant) -> ExitCode {
    if let Some(t) = args.threads {
        // SAFETY (of the environment): no other thread runs yet; the GEMM reads it later.
        std::env::set_var("MATMUL_NUM_THREADS", t.to_string());
    }
    let src = match crate::runtime::files::read_text(&args.file, crate::runtime::files::MAX_SOURCE_BYTES) {
        Ok(s) => s,
        Err(msg) => return fail(&[Diagnostic::new("E-io", msg)], None),
    };
    let result = match crate::frontend::check::check_source(&src) {
        Ok(checked) => run(args, &checked, started),
        Err(diags) => Err(diags),
    };
    match result {
        Ok(fields) => {
            print!("{}", if args.json { json(&fields) } else { table(&fields) });
            ExitCode::SUCCESS
        }
        Err(diags) => {
            let name = args.file.display().to_string();
            fail(&diags, Some(&SourceFile { name: &name, text: &src }))
        }
    }
}

fn fail(diags: &[Diagnostic], src: Option<&SourceFile>) -> ExitCode {
    eprint!("{}", diag::render(diags, src, diag::stderr_color()));
    ExitCode::from(1)
}

/// A reported value: a number or a string.
enum Value {
    Num(f64),
    Text(String),
}

type Fields = Vec<(&'static str, Value)>;

fn err(msg: impl Into<String>) -> Vec<Diagnostic> {
    vec![Diagnostic::new("E-bench", msg)]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn run(args: &BenchArgs, c: &crate::frontend::checked::Checked, started: Instant) -> Result<Fields, Vec<Diagnostic>> {
    let check_ms = ms(started);
    let (t, _) = training::find(c, args.train.as_deref()).map_err(err)?;
    let batch = args.batch.or(t.batch).unwrap_or(32).max(1);
    let mut f: Fields = vec![
        ("model", Value::Text(t.model.clone())),
        ("file", Value::Text(args.file.display().to_string())),
        ("batch", Value::Num(batch as f64)),
        ("threads", Value::Num(threads() as f64)),
        ("nodes", Value::Num(t.graph.nodes.len() as f64)),
        ("check_ms", Value::Num(check_ms)),
    ];
    crate::ir::limits::check(&t.graph, batch, crate::ir::limits::default_limit(), &format!("train {}", t.model))
        .map_err(|d| vec![d])?;
    let program = training::TrainGraphs::new(t).map_err(err)?;

    let forward = forward_flops(&t.graph, batch);
    f.push(("forward_gflop", Value::Num(forward / 1e9)));
    let mut optimized = program.step.graph.clone();
    crate::ir::opt::optimize(&mut optimized, None).map_err(err)?;
    let step = executed_flops(&optimized, batch);
    f.push(("step_gflop", Value::Num(step / 1e9)));
    if args.compile_only {
        let c = compile_times(
            &program.step.graph,
            program.step.loss_output,
            &program.loss_graph,
            (args.checked, args.conv),
        )?;
        f.push(("compile_ms", Value::Num(c.step_ms + c.infer_ms)));
        f.extend(c.fields(batch));
        f.push(("total_ms", Value::Num(ms(started))));
        f.push(("total_cpu_ms", Value::Num(cpu_ms())));
        f.push(("peak_rss_mib", Value::Num(peak_rss_mib())));
        return Ok(f);
    }

    // Synthetic inputs: normal values, class indices and row ids in 0..what they index.
    let mut rng = Rng::new(1);
    let fields = t
        .graph
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.kind, InputKind::Data | InputKind::Label))
        .map(|(index, i)| {
            let len = batch * i.shape.iter().filter_map(|d| d.known()).product::<usize>();
            // Class indices and row ids below what they index; whole numbers for other ints.
            let bound = t.graph.index_use(index).bound().or(i.integer.then_some(2));
            let values = (0..len)
                .map(|_| match bound {
                    Some(k) => rng.below(k as u64) as f32,
                    None => rng.normal() as f32,
                })
                .collect();
            (i.name.clone(), values)
        })
        .collect();
    let data = crate::runtime::data::Batch { n: batch, fields };
    let lr = crate::training::optim::learning_rate(t, 0, 1) as f32;
    let (step_graph, loss_output, loss_graph) =
        (program.step.graph.clone(), program.step.loss_output, program.loss_graph.clone());
    let init = Instant::now();
    // Weights about to be loaded are not drawn: untouched zeroed buffers cost no memory.
    let mut params = match &args.load {
        Some(_) => {
            program.step.graph.params.iter().map(|p| vec![0.0; crate::commands::report::elements(&p.shape)]).collect()
        }
        None => training::initial_params(&program.step.graph, t.seed),
    };
    if let Some(path) = &args.load {
        load_weights(path, &program.step.graph, program.step.model_params, &mut params)?;
    }
    let init_ms = ms(init);

    let build = Instant::now();
    let opts = CompileOptions {
        verify: false,
        checked: args.checked,
        profile: args.profile,
        conv: args.conv,
        ..CompileOptions::default()
    };
    let mut engine = crate::training::jit_engine::jit_engine_with(program, &opts).map_err(|d| vec![d])?;
    let build_ms = ms(build);
    // Each step draws its own dropout masks, as in a run.
    let mut counter = crate::training::Counter { seed: t.seed, step: 0 };
    let first_loss = engine.step(&data, lr, counter, &mut params).map_err(err)?;
    f.push(("first_step_ms", Value::Num(ms(started))));
    f.push(("init_ms", Value::Num(init_ms)));
    f.push(("engine_build_ms", Value::Num(build_ms)));

    for _ in 0..args.warmup {
        counter.step += 1;
        engine.step(&data, lr, counter, &mut params).map_err(err)?;
    }
    engine.step_profile();
    let mut steps = Vec::with_capacity(args.steps);
    let mut cpu = Vec::with_capacity(args.steps);
    let mut last_loss = first_loss;
    for _ in 0..args.steps.max(1) {
        counter.step += 1;
        let (t0, c0) = (Instant::now(), process_cpu_ms());
        last_loss = engine.step(&data, lr, counter, &mut params).map_err(err)?;
        steps.push(ms(t0));
        if let (Some(c0), Some(c1)) = (c0, process_cpu_ms()) {
            cpu.push(c1 - c0);
        }
    }
    let profile = engine.step_profile();
    let rss_train = peak_rss_mib();
    engine.evaluate(&data, &params).map_err(err)?;
    let mut infers = Vec::with_capacity(args.steps);
    for _ in 0..args.steps.max(1) {
        let t0 = Instant::now();
        engine.evaluate(&data, &params).map_err(err)?;
        infers.push(ms(t0));
    }
    let rss_all = peak_rss_mib();
    drop(engine);

    // Compile times of each function alone (the engine compiled both above, untimed apart).
    let compiled = compile_times(&step_graph, loss_output, &loss_graph, (args.checked, args.conv))?;
    let (step_med, infer_med) = (median(&steps), median(&infers));
    f.extend([
        ("steps", Value::Num(steps.len() as f64)),
        ("warmup", Value::Num(args.warmup as f64)),
        ("step_ms_median", Value::Num(step_med)),
        ("step_ms_min", Value::Num(min(&steps))),
        ("step_cpu_ms_median", Value::Num(median(&cpu))),
        ("infer_ms_median", Value::Num(infer_med)),
        ("infer_ms_min", Value::Num(min(&infers))),
        ("step_gflops", Value::Num(step / (step_med * 1e6))),
        ("infer_gflops", Value::Num(forward / (infer_med * 1e6))),
        ("first_loss", Value::Num(first_loss as f64)),
        ("last_loss", Value::Num(last_loss as f64)),
        ("peak_rss_train_mib", Value::Num(rss_train)),
        ("peak_rss_mib", Value::Num(rss_all)),
    ]);
    f.extend(compiled.fields(batch));
    if args.profile {
        f.push(("profile", Value::Text(profile_table(&profile, steps.len()))));
    }
    Ok(f)
}

/// The train step's time per kernel (execution order), per step, with each one's share.
fn profile_table(profile: &[(String, f64)], steps: usize) -> String {
    let total: f64 = profile.iter().map(|(_, ms)| ms).sum();
    let mut out = format!("\n  {:>4}  {:>9}  {:>6}  kernel\n", "#", "us/step", "share");
    for (k, (summary, ms)) in profile.iter().enumerate() {
        let us = ms * 1e3 / steps.max(1) as f64;
        out += &format!("  {k:>4}  {us:>9.2}  {:>5.1}%  {summary}\n", 100.0 * ms / total.max(1e-12));
    }
    out + &format!("  {:>4}  {:>9.2}  100.0%  (all kernels)\n", "", total * 1e3 / steps.max(1) as f64)
}

/// Overwrite the model's parameters (the first `model_params`) with those of a weights file.
fn load_weights(path: &Path, g: &Graph, model_params: usize, params: &mut [Vec<f32>]) -> Result<(), Vec<Diagnostic>> {
    let weights = crate::runtime::weights::load_params(path, &g.params[..model_params]).map_err(|d| vec![d])?;
    for (i, w) in weights.into_iter().enumerate() {
        params[i] = w.data;
    }
    Ok(())
}

/// Milliseconds to compile the train step and the inference graph, each prepared as
/// `engine::jit_engine` prepares it (outputs trimmed, graph optimised).
fn compile_times(
    step: &Graph,
    loss_output: usize,
    loss_graph: &Graph,
    (checked, conv): (bool, crate::codegen::ConvAlgorithm),
) -> Result<Compile, Vec<Diagnostic>> {
    let compile = |mut g: Graph, outputs: Vec<(String, crate::ir::graph::NodeId)>| {
        let t0 = Instant::now();
        g.outputs = outputs;
        crate::ir::opt::optimize(&mut g, None).map_err(err)?;
        let opts = CompileOptions { verify: false, checked, conv, ..CompileOptions::default() };
        let compiled = crate::drivers::jit::compile(&g, &opts).map_err(|d| vec![d])?;
        Ok::<_, Vec<Diagnostic>>((ms(t0), compiled))
    };
    let (step_ms, step) = compile(step.clone(), vec![step.outputs[loss_output].clone()])?;
    let (infer_ms, infer) = compile(loss_graph.clone(), loss_graph.outputs.iter().take(2).cloned().collect())?;
    Ok(Compile { step_ms, infer_ms, step, infer })
}

/// Compile times and the compiled functions (for their memory plans).
struct Compile {
    step_ms: f64,
    infer_ms: f64,
    step: crate::drivers::jit::Compiled,
    infer: crate::drivers::jit::Compiled,
}

impl Compile {
    /// Times, and the planned workspace of each function at this batch size.
    fn fields(&self, batch: usize) -> Fields {
        let mib = |c: &crate::drivers::jit::Compiled| c.stats_for(&[batch]).planned_bytes as f64 / (1 << 20) as f64;
        vec![
            ("compile_step_ms", Value::Num(self.step_ms)),
            ("compile_infer_ms", Value::Num(self.infer_ms)),
            ("workspace_step_mib", Value::Num(mib(&self.step))),
            ("workspace_infer_mib", Value::Num(mib(&self.infer))),
            ("clif_insts_step", Value::Num(self.step.stats().clif_insts as f64)),
        ]
    }
}

/// Forward FLOPs of the matmuls and convolutions of `g` at this batch size (see the module doc).
pub fn forward_flops(g: &Graph, batch: usize) -> f64 {
    (0..g.nodes.len()).map(|i| node_flops(g, i, batch)).sum()
}

/// FLOPs of node `i` at this batch size (see `product_flops`). A loop's are charged to the
/// first of its results (its siblings share one run).
pub fn node_flops(g: &Graph, i: usize, batch: usize) -> f64 {
    if matches!(g.nodes[i].op, Op::Loop { .. }) && g.loop_siblings(NodeId(i as u32))[0].index() != i {
        return 0.0;
    }
    product_flops(g, &g.nodes[i], batch)
}

/// FLOPs of the matmuls and convolutions (and convolution gradients) that computing `g`'s
/// outputs and updates executes: nodes nothing live reads are not run, so not counted.
pub fn executed_flops(g: &Graph, batch: usize) -> f64 {
    let live = crate::ir::opt::live_nodes(g);
    // A loop runs once for all its results (same spec, same operands): count it once.
    let mut loops_counted: Vec<(*const crate::ir::graph::LoopSpec, &[NodeId])> = vec![];
    let mut total = 0.0;
    for (n, _) in g.nodes.iter().zip(&live).filter(|(_, &l)| l) {
        if let Op::Loop { spec, .. } = &n.op {
            let key = (std::sync::Arc::as_ptr(spec), n.inputs.as_slice());
            if loops_counted.contains(&key) {
                continue;
            }
            loops_counted.push(key);
        }
        total += product_flops(g, n, batch);
    }
    total
}

/// 2·M·N·K of a matmul (per batch element); 2·N·OH·OW·F·C·KH·KW of a convolution and of each of its gradients
/// (the same products, arranged differently); a loop's body's (what its outputs execute)
/// times its trip count; 0 for every other op.
fn product_flops(g: &Graph, n: &crate::ir::graph::Node, batch: usize) -> f64 {
    let dim = |d: &Dim| d.known().unwrap_or(batch) as f64;
    let size = |s: &crate::ir::graph::Shape| -> f64 { s.iter().map(dim).product() };
    match n.op {
        // Every output element sums over the contracted axes of a: [batch.., rows.., inner..],
        // or [batch.., inner.., rows..] transposed (broadcast batch axes included in the output).
        Op::MatMul { transpose_a, batch, contract, .. } => {
            let a = g.shape(n.inputs[0]);
            let inner = if transpose_a { &a[batch..batch + contract] } else { &a[a.len() - contract..] };
            2.0 * size(&n.shape) * size(&inner.to_vec())
        }
        // out [N, F, OH, OW] × w [F, C, KH, KW] / C·KH·KW per output
        Op::Conv2d { .. } => 2.0 * size(&n.shape) * size(&g.shape(n.inputs[1])[1..].to_vec()),
        // (g [N, F, OH, OW], w [F, C, KH, KW]): every g element meets C·KH·KW weights
        Op::Conv2dInputGrad { .. } => 2.0 * size(g.shape(n.inputs[0])) * size(&g.shape(n.inputs[1])[1..].to_vec()),
        // (x, g [N, F, OH, OW]) -> [F, C, KH, KW]: every g element meets C·KH·KW inputs
        Op::Conv2dFilterGrad { .. } => 2.0 * size(g.shape(n.inputs[1])) * size(&n.shape[1..].to_vec()),
        Op::Input { .. } | Op::Param { .. } | Op::Const { .. } | Op::Literal { .. } | Op::DimSize { .. } => 0.0,
        Op::Neg | Op::Exp | Op::Log | Op::Sqrt | Op::Abs | Op::Sign | Op::Tanh | Op::Sigmoid => 0.0,
        Op::Relu | Op::LeakyRelu { .. } | Op::Elu { .. } | Op::Softplus | Op::Erf | Op::Clip { .. } => 0.0,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Max | Op::Min | Op::GreaterEq => 0.0,
        Op::Greater | Op::Equal | Op::Where => 0.0,
        Op::Broadcast { .. } | Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. } | Op::Pad { .. } => 0.0,
        // Data movement (a scatter-add's additions are not products).
        Op::Reverse { .. } | Op::Concat { .. } | Op::Gather { .. } | Op::ScatterAdd { .. } => 0.0,
        Op::Sum { .. } | Op::ReduceMax { .. } | Op::ArgMaxMask { .. } | Op::OneHot { .. } | Op::LogSoftmax { .. } => {
            0.0
        }
        Op::MaxPool2d { .. } | Op::MaxPool2dGrad { .. } | Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => 0.0,
        Op::Loop { ref spec, .. } => spec.count as f64 * executed_flops(&spec.body, batch),
        Op::RandomUniform { .. } => 0.0,
    }
}

/// GEMM threads in effect: the pool's size (`MATMUL_NUM_THREADS`, else the physical cores).
fn threads() -> usize {
    crate::runtime::threads::count()
}

/// CPU time (user + system) this process has used so far, in ms (0 where /proc is missing):
/// on a loaded machine a better measure of compile work than the wall clock.
pub fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime and
    // stime are the 12th and 13th of them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<f64>().ok()).sum();
    ticks * 10.0
}

/// Peak resident memory of this process so far, in MiB (0 where /proc is missing).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU time of all of this process's threads so far (ms), from Linux's per-thread schedstat
/// (nanoseconds on the CPU); None elsewhere.
fn process_cpu_ms() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e6)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn json(f: &Fields) -> String {
    let mut o = serde_json::Map::new();
    for (k, v) in f {
        let v = match v {
            Value::Num(x) => {
                serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            Value::Text(s) => serde_json::Value::String(s.clone()),
        };
        o.insert(k.to_string(), v);
    }
    format!("{}\n", serde_json::Value::Object(o))
}

fn table(f: &Fields) -> String {
    let get = |k: &str| {
        f.iter().find(|(n, _)| *n == k).map(|(_, v)| match v {
            Value::Num(x) if x.fract() == 0.0 => format!("{x}"),
            Value::Num(x) => format!("{x:.2}"),
            Value::Text(s) => s.clone(),
        })
    };
    let mut out = format!(
        "bench {} ({}): batch {}, {} GEMM thread(s)\n",
        get("model").unwrap_or_default(),
        Path::new(&get("file").unwrap_or_default()).display(),
        get("batch").unwrap_or_default(),
        get("threads").unwrap_or_default()
    );
    let rows: [(&str, &str, &str); 20] = [
        ("check_ms", "check (from process start)", "ms"),
        ("first_step_ms", "first train step done", "ms after process start"),
        ("init_ms", "  of which parameter init", "ms (initialisers, then --load)"),
        ("engine_build_ms", "  of which JIT engine build", "ms (both functions)"),
        ("compile_step_ms", "compile train step", "ms"),
        ("compile_infer_ms", "compile inference", "ms"),
        ("compile_ms", "compile both", "ms"),
        ("total_ms", "process start to compiled", "ms"),
        ("total_cpu_ms", "  CPU time to compiled", "ms (user + system)"),
        ("step_ms_median", "train step median", "ms"),
        ("step_ms_min", "train step min", "ms"),
        ("step_cpu_ms_median", "train step CPU time", "ms (all threads, median)"),
        ("step_gflops", "train step", "GFLOP/s (the matmul/conv FLOPs it executes)"),
        ("infer_ms_median", "inference median", "ms per batch"),
        ("infer_gflops", "inference", "GFLOP/s"),
        ("last_loss", "loss after the timed steps", ""),
        ("peak_rss_train_mib", "peak RSS after training", "MiB"),
        ("peak_rss_mib", "peak RSS", "MiB"),
        ("workspace_step_mib", "train step workspace", "MiB (memory plan)"),
        ("workspace_infer_mib", "inference workspace", "MiB (memory plan)"),
    ];
    for (key, label, unit) in rows {
        if let Some(v) = get(key) {
            out.push_str(&format!("  {label:<28} {v:>10} {unit}\n"));
        }
    }
    if let Some(profile) = get("profile") {
        out.push_str(&format!("\ntrain step by kernel (--profile):{profile}"));
    }
    out
}
