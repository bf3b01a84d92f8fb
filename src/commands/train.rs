//! What `netc run` does with a train block: load the data, build and compile the train step,
//! train with a progress bar, report, plot and save. (Argument parsing is in main.rs.)

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::diag::Diagnostic;
use crate::frontend::checked::Checked;
use crate::runtime::collective::{self, agree, Collective, Local};
use crate::training::{self, Engine, Overrides, Progress, Report};

/// Which engine executes a training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineKind {
    /// Cranelift-compiled native code.
    #[default]
    Jit,
    /// The reference interpreter (f64, rounded to f32 per op; slow).
    Interp,
}

pub struct RunOptions {
    /// The train block to run (`--train NAME`); needed when the file has several.
    pub train: Option<String>,
    pub overrides: Overrides,
    pub quiet: bool,
    pub json: bool,
    pub plot: Option<PathBuf>,
    pub save: Option<PathBuf>,
    pub load: Option<PathBuf>,
    /// Start from the tensors of this file whose names and shapes match the model's; the
    /// rest keep their initial values.
    pub init_from: Option<PathBuf>,
    /// Continue from a checkpoint written by `--save`: parameters, optimizer state and step.
    pub resume: Option<PathBuf>,
    /// Stop after this many steps in all (the rest of the run can be resumed).
    pub stop_after: Option<usize>,
    /// Resolve data paths against this directory instead of the .net file's.
    pub data_dir: Option<PathBuf>,
    pub stats: bool,
    pub engine: EngineKind,
    /// Refuse models whose parameters or activations need more bytes than this.
    pub memory_limit: u64,
    /// Compile with bounds checks (`CompileOptions::checked`; JIT engine only).
    pub checked: bool,
}

/// A progress bar on stderr (indicatif), only when stderr is a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, total: usize) {
        if let Some(old) = &self.0 {
            old.finish_and_clear();
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len}  {msg}  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        self.0 = Some(bar);
    }
    fn update(&mut self, step: usize, loss: f32, samples_per_second: f64) {
        if let Some(b) = &self.0 {
            b.set_position(step as u64);
            b.set_message(format!("loss {loss:.4}  {samples_per_second:.0} samples/s"));
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

fn err(msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new("E-run", msg)
}

pub fn train_command(c: &Checked, file: &Path, opts: &RunOptions) -> Result<(), Diagnostic> {
    let text = train_report(c, file, opts)?;
    print!("{text}");
    Ok(())
}

/// Refuse an output path before any work is done (a run should not train for an hour and
/// then fail to save): what `runtime::files::check_output_path` refuses (no file name, a
/// directory, a device, a link, a FIFO), and a path whose folder does not exist. The inputs
/// it must not name are checked once they are known.
pub fn check_output_path(path: &Path, flag: &str) -> Result<(), Diagnostic> {
    let io = |why: String| Diagnostic::new("E-io", format!("{flag} {}: {why}", path.display()));
    crate::runtime::files::check_output_path(path, &[]).map_err(|e| io(e.to_string()))?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(io(format!("the folder {} does not exist", parent.display())));
    }
    Ok(())
}

/// Train the program's train block and return what `netc run` prints.
pub fn train_report(c: &Checked, file: &Path, opts: &RunOptions) -> Result<String, Diagnostic> {
    train_report_on(c, file, opts, None)
}

/// What a rank holds once it is ready to train.
struct Ready {
    data: training::Data,
    params: Vec<Vec<f32>>,
    resume_at: usize,
    /// The run's seed: the file's, or the checkpoint's when resuming.
    seed: u64,
    init_report: Option<InitReport>,
    engine: Box<dyn Engine>,
    data_fingerprint: u64,
    /// The name and shape of every tensor of `params`: the model's parameters, then the
    /// optimizer's state (what a checkpoint stores, in this order).
    names: Vec<(String, Vec<usize>)>,
}

/// `train_report` on one process (`group` None), or on one rank of a data-parallel run
/// (`commands::distributed`): every rank of `group` calls it, and gets the same error if any
/// (a failure of some ranks reaches all through `collective::agree`). Rank 0 alone loads
/// starting weights (and sends them to the others), prints, plots and saves; the other ranks
/// return an empty text.
pub fn train_report_on(
    c: &Checked,
    file: &Path,
    opts: &RunOptions,
    group: Option<Rc<dyn Collective>>,
) -> Result<String, Diagnostic> {
    if opts.overrides.batch == Some(0) {
        return Err(err("--batch must be at least 1"));
    }
    if opts.load.is_some() && opts.resume.is_some() {
        return Err(err("--load and --resume both give the starting weights; use one")
            .help("--resume continues a checkpoint (weights, optimizer state, step); --load starts from weights"));
    }
    if opts.init_from.is_some() && (opts.load.is_some() || opts.resume.is_some()) {
        return Err(err("--init-from starts from matching tensors; it cannot be combined with --load or --resume"));
    }
    if group.is_some() && opts.engine != EngineKind::Jit {
        return Err(Diagnostic::new("E-distributed", "data-parallel training runs on the JIT engine (--engine jit)"));
    }
    let one = Local;
    let ranks: &dyn Collective = group.as_deref().unwrap_or(&one);
    let leader = ranks.rank() == 0;
    let (t, d) = training::find(c, opts.train.as_deref()).map_err(err)?;
    let mut t = t.clone();
    opts.overrides.apply(&mut t);
    let d = d.ok_or_else(|| err(format!("train {}: no data block to train on (add `data: NAME`)", t.name)))?;
    let base = match &opts.data_dir {
        Some(dir) => dir.as_path(),
        None => file.parent().unwrap_or(Path::new(".")),
    };
    let quiet = opts.quiet || opts.json || !leader;
    // Outputs never replace an input (the source, the data, the weights loaded) or a device,
    // a link or a FIFO: checked now, before the data is loaded and the model trained.
    // (`--save` may name the `--resume` checkpoint: advancing it in place is what it is for.)
    let data_files = training::data::input_files(d, base);
    let mut inputs: Vec<&Path> = vec![file];
    inputs.extend(opts.load.as_deref());
    inputs.extend(opts.init_from.as_deref());
    inputs.extend(data_files.iter().map(PathBuf::as_path));
    let save_inputs = inputs.clone();
    inputs.extend(opts.resume.as_deref());
    let outputs_checked = if leader { check_outputs(opts, &inputs, &save_inputs) } else { Ok(()) };

    let ready = outputs_checked.and_then(|()| prepare(&t, d, base, opts, quiet, group.clone()));
    let Ready { data, mut params, mut resume_at, mut seed, init_report, mut engine, data_fingerprint, names } =
        agree(ranks, ready)?;
    if let Some(group) = &group {
        collective::same_everywhere(&**group, &format!("the data of `{}`", d.name), data_fingerprint)?;
        // Every rank starts from rank 0's parameters (the weights it loaded, or its draw), at
        // its step, with its seed.
        for p in params.iter_mut() {
            group.broadcast_f32(p);
        }
        resume_at = collective::broadcast_u64(&**group, resume_at as u64) as usize;
        seed = collective::broadcast_u64(&**group, seed);
    }
    t.seed = seed;
    if opts.stats && !quiet {
        eprintln!("{}", engine.stats());
    }

    let _ = ctrlc::set_handler(|| match group_running() {
        true => training::parallel::STOP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst),
        false => training::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst),
    });
    DATA_PARALLEL.store(group.is_some(), std::sync::atomic::Ordering::SeqCst);
    let show_bar = !quiet && std::io::stderr().is_terminal();
    let mut bar = Bar(None);
    let mut silent = training::Silent;
    let progress: &mut dyn Progress = if show_bar { &mut bar } else { &mut silent };
    let report =
        training::train_on(&t, &data, engine.as_mut(), &mut params, progress, resume_at, opts.stop_after, ranks)
            .map_err(bounds_diagnostic)?;
    if group.is_some() && opts.stats && !quiet {
        eprintln!("{}", engine.stats());
    }
    if !leader {
        return Ok(String::new());
    }

    let model_params = t.graph.params.len();
    if let Some(path) = &opts.plot {
        plot_losses(path, &report.losses, &inputs)?;
        if !quiet {
            eprintln!("wrote the loss curve ({} steps) to {}", report.losses.len(), path.display());
        }
    }
    if let Some(path) = &opts.save {
        // A weights file that is also a checkpoint for --resume.
        let checkpoint = Checkpoint { step: report.steps, seed: Some(t.seed) };
        crate::runtime::weights::save_checkpoint(path, &names, &params, checkpoint, &save_inputs)?;
        if !quiet {
            let model_state = t.graph.params.iter().filter(|p| p.kind == crate::ir::graph::ParamKind::State).count();
            let optimizer = names.len() - model_params;
            let mut extra = String::new();
            if model_state > 0 {
                extra += &format!(" ({model_state} of them state)");
            }
            if optimizer > 0 {
                extra += &format!(" and {optimizer} optimizer state tensors");
            }
            eprintln!("wrote {} ({model_params} parameter tensors{extra}, step {})", path.display(), report.steps);
        }
    }
    Ok(if opts.json {
        format!("{}\n", json(&report, &t, init_report.as_ref()))
    } else if !opts.quiet {
        table(&report)
    } else {
        String::new()
    })
}

/// Whether the running training is data-parallel (where Ctrl-C is a vote of the ranks).
static DATA_PARALLEL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn group_running() -> bool {
    DATA_PARALLEL.load(std::sync::atomic::Ordering::SeqCst)
}

/// Refuse `--save` and `--plot` paths that are folders, in missing folders, or that would
/// replace an input (`inputs` for the plot, `save_inputs` for the checkpoint, which may
/// replace the `--resume` file it continues).
fn check_outputs(opts: &RunOptions, inputs: &[&Path], save_inputs: &[&Path]) -> Result<(), Diagnostic> {
    for (path, flag) in [(&opts.save, "--save"), (&opts.plot, "--plot")] {
        if let Some(p) = path {
            check_output_path(p, flag)?;
        }
    }
    let refuse = |(path, e): (PathBuf, crate::runtime::files::WriteError)| {
        Diagnostic::new("E-io", format!("cannot write {}: {e}", path.display()))
    };
    let outputs: Vec<&Path> = opts.plot.iter().chain(&opts.save).map(PathBuf::as_path).collect();
    crate::runtime::files::check_output_paths(&outputs, save_inputs).map_err(refuse)?;
    if let Some(plot) = &opts.plot {
        crate::runtime::files::check_output_paths(&[plot], inputs).map_err(refuse)?;
    }
    Ok(())
}

/// Everything a rank does before the first step that may fail on it alone: load the data,
/// draw or load the starting weights (rank 0 reads the weights files), compile.
fn prepare(
    t: &crate::frontend::checked::TrainDecl,
    d: &crate::frontend::checked::DataDecl,
    base: &Path,
    opts: &RunOptions,
    quiet: bool,
    group: Option<Rc<dyn Collective>>,
) -> Result<Ready, Diagnostic> {
    let (rank, ranks) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
    let mut note = |missing: &Path| {
        if !quiet {
            eprintln!("note: {} not found; data `{}` uses its `otherwise` source", missing.display(), d.name);
        }
    };
    let data = training::load_data(t, d, base, &mut note)?;
    let data_fingerprint = if group.is_some() { fingerprint(&data) } else { 0 };
    training::check_shards(t, &data.train, ranks)?;

    // Each rank holds its share of a batch.
    let batch = t.batch.unwrap_or(data.train.len()).max(1).div_ceil(ranks);
    crate::ir::limits::check(&t.graph, batch, opts.memory_limit, &format!("train {}", t.name))?;
    let program = training::TrainGraphs::new(t).map_err(err)?;
    let model_params = program.step.model_params;
    let names: Vec<(String, Vec<usize>)> = program
        .step
        .graph
        .params
        .iter()
        .map(|p| (p.name.clone(), p.shape.iter().map(|d| d.known().unwrap_or(1)).collect()))
        .collect();
    // Weights about to be loaded, or sent by rank 0, are not drawn (AlexNet's take seconds):
    // zeros hold their place.
    let mut params = if opts.resume.is_some() || opts.load.is_some() || rank != 0 {
        names.iter().map(|(_, s)| vec![0.0; s.iter().product()]).collect()
    } else {
        training::initial_params(&program.step.graph, t.seed)
    };
    let mut resume_at = 0;
    let mut seed = t.seed;
    let mut init_report = None;
    if rank != 0 {
        // Rank 0 reads the weights files and sends their values.
    } else if let Some(path) = &opts.resume {
        let expected: Vec<(&str, &[usize])> = names.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        for (i, w) in crate::runtime::weights::load_for(path, &expected)?.into_iter().enumerate() {
            params[i] = w.data;
        }
        let checkpoint = crate::runtime::weights::read_checkpoint(path)?.ok_or_else(|| {
            err(format!("{}: not a checkpoint (no step count); use --load for plain weights", path.display()))
        })?;
        resume_at = checkpoint.step;
        // The random streams (dropout) and the data order continue from the checkpoint's seed.
        if let Some(saved) = checkpoint.seed {
            if opts.overrides.seed.is_some_and(|s| s != saved) {
                return Err(err(format!(
                    "{} was written by a run with seed {saved}; resuming it with --seed {} would change its \
                     data order and random numbers",
                    path.display(),
                    t.seed
                )));
            }
            seed = saved;
        }
    } else if let Some(path) = &opts.load {
        let expected: Vec<(&str, &[usize])> =
            names[..model_params].iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        for (i, w) in crate::runtime::weights::load_for(path, &expected)?.into_iter().enumerate() {
            params[i] = w.data;
        }
    } else if let Some(path) = &opts.init_from {
        let r = init_from(path, &names[..model_params], &mut params)?;
        if !quiet {
            eprint!("{}", r.describe(path));
        }
        init_report = Some(r);
    }
    let options = crate::codegen::CompileOptions { checked: opts.checked, ..Default::default() };
    let engine: Box<dyn Engine> = match (group, opts.engine) {
        (Some(group), _) => Box::new(training::parallel::DataParallel::new(t, group, &options)?),
        (None, EngineKind::Interp) => Box::new(training::Interpreter::new(program)),
        (None, EngineKind::Jit) => crate::training::jit_engine::jit_engine_with(program, &options)?,
    };
    Ok(Ready { data, params, resume_at, seed, init_report, engine, data_fingerprint, names })
}

/// A fingerprint of the training and test sets: their fields' names, types, shapes and values.
fn fingerprint(data: &training::Data) -> u64 {
    let mut f = collective::Fingerprint::default();
    for set in std::iter::once(&data.train).chain(&data.test) {
        for field in set.fields() {
            // Int fields hold their whole numbers as f32 values, as float fields do.
            let integer = field.ty() == crate::runtime::data::FieldType::Int;
            f.str(field.name()).word(integer as u32).floats(field.values());
            for &d in field.shape() {
                f.word(d as u32);
            }
        }
    }
    f.word(data.shuffle as u32);
    f.value()
}

pub use crate::runtime::weights::Checkpoint;

/// What `--init-from` did: which of the file's tensors it loaded, which it skipped (with the
/// reason), and which model parameters kept their initial values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitReport {
    pub loaded: Vec<String>,
    pub skipped: Vec<(String, String)>,
    pub initialised: Vec<String>,
}

impl InitReport {
    pub fn describe(&self, path: &Path) -> String {
        let mut s = format!("--init-from {}:\n", path.display());
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        s.push_str(&format!("  loaded ({}): {}\n", self.loaded.len(), list(&self.loaded)));
        let skipped: Vec<String> = self.skipped.iter().map(|(n, why)| format!("{n} ({why})")).collect();
        s.push_str(&format!("  skipped ({}): {}\n", skipped.len(), list(&skipped)));
        s.push_str(&format!("  left at init ({}): {}\n", self.initialised.len(), list(&self.initialised)));
        s
    }
}

/// Copy every tensor of `path` whose name and shape match a model parameter into `params`.
pub fn init_from(
    path: &Path,
    names: &[(String, Vec<usize>)],
    params: &mut [Vec<f32>],
) -> Result<InitReport, Diagnostic> {
    let weights = crate::runtime::weights::load(path)?;
    let mut r = InitReport::default();
    // Positions by name: linear in the tensors of a 10,000-layer model, not quadratic.
    let index: std::collections::HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
    for w in &weights {
        match index.get(w.name.as_str()).copied() {
            None => r.skipped.push((w.name.clone(), "not a parameter of the model".into())),
            Some(i) if names[i].1 != w.shape => r
                .skipped
                .push((w.name.clone(), format!("shape {:?} in the file, {:?} in the model", w.shape, names[i].1))),
            Some(i) => {
                params[i].copy_from_slice(&w.data);
                r.loaded.push(w.name.clone());
            }
        }
    }
    let loaded: std::collections::HashSet<&String> = r.loaded.iter().collect();
    r.initialised = names.iter().filter(|(n, _)| !loaded.contains(n)).map(|(n, _)| n.clone()).collect();
    Ok(r)
}

/// A refused out-of-bounds access of checked mode (`jit::Compiled::run`'s "bounds check
/// failed: ..." error) as an `E-bounds` diagnostic; other diagnostics unchanged.
pub fn bounds_diagnostic(d: Diagnostic) -> Diagnostic {
    if !d.message.starts_with(crate::drivers::jit::BOUNDS_FAILED) {
        return d;
    }
    Diagnostic { code: "E-bounds", ..d }
        .help("this is a netc bug: its generated code went outside a buffer; please report it with the .net file")
}

fn fmt_metric(label: &str, v: Option<f64>) -> String {
    match v {
        Some(v) if label.starts_with("accuracy") => format!("{:.2}%", 100.0 * v),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

/// The final table: loss and each metric of the block, for the training set and (when there
/// is one) the test set.
pub fn table(r: &Report) -> String {
    let name = if r.name == r.model { r.model.clone() } else { format!("{} ({})", r.model, r.name) };
    let mut s = format!(
        "trained {name}: {} steps in {:.2} s ({:.0} samples/s){}\n",
        r.steps,
        r.seconds,
        r.samples_per_second,
        if r.interrupted { ", interrupted" } else { "" }
    );
    let labels: Vec<&str> = r.train.metrics.iter().map(|(l, _)| l.as_str()).collect();
    let widths: Vec<usize> = labels.iter().map(|l| l.len().max(9)).collect();
    s.push_str(&format!("        {:<9}", "loss"));
    for (l, w) in labels.iter().zip(&widths) {
        s.push_str(&format!(" {l:<w$}"));
    }
    s = s.trim_end().to_string() + "\n";
    let mut row = |set: &str, scores: &training::Scores| {
        let mut line = format!("{set:<7} {:<9}", fmt_metric("loss", Some(scores.loss)));
        for (l, w) in labels.iter().zip(&widths) {
            line.push_str(&format!(" {:<w$}", fmt_metric(l, scores.get(l))));
        }
        s.push_str(line.trim_end());
        s.push('\n');
    };
    row("train", &r.train);
    if let Some(test) = &r.test {
        row("test", test);
    }
    s
}

/// A JSON number, or null when not finite (JSON has no NaN).
fn number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The run as one JSON object: the settings that ran, `train_loss` and `train_METRIC` for each
/// metric (and `test_…` with a test set), the loss history (the mean of every `every_steps`
/// steps, at most 1000 points, and of every full epoch) and what `--init-from` loaded.
pub fn json(r: &Report, t: &crate::frontend::checked::TrainDecl, init: Option<&InitReport>) -> String {
    use serde_json::{json, Map, Value};
    let mut o = Map::new();
    o.insert("train".into(), json!(r.name));
    o.insert("model".into(), json!(r.model));
    o.insert("steps".into(), json!(r.steps));
    o.insert("seconds".into(), number(r.seconds));
    o.insert("samples_per_second".into(), number(r.samples_per_second));
    o.insert("final_loss".into(), number(r.final_loss));
    o.insert("interrupted".into(), json!(r.interrupted));
    let labels: Vec<&String> = r.train.metrics.iter().map(|(l, _)| l).collect();
    o.insert("metrics".into(), json!(labels));
    for (set, scores) in [("train", Some(&r.train)), ("test", r.test.as_ref())] {
        let Some(scores) = scores else { continue };
        o.insert(format!("{set}_loss"), number(scores.loss));
        for (label, v) in &scores.metrics {
            o.insert(format!("{set}_{label}"), number(*v));
        }
    }
    let every = r.losses.len().div_ceil(1000).max(1);
    let history: Vec<Value> = r.loss_history(every).into_iter().map(number).collect();
    let epochs: Vec<Value> = r.epoch_losses().into_iter().map(number).collect();
    o.insert("loss_history".into(), json!({ "every_steps": every, "mean_loss": history, "epoch_mean_loss": epochs }));
    if !t.frozen.is_empty() {
        let frozen: Vec<&str> = t.frozen.iter().map(|&i| t.graph.params[i].name.as_str()).collect();
        o.insert("frozen".into(), json!(frozen));
    }
    if let Some(init) = init {
        let skipped: Vec<Value> = init.skipped.iter().map(|(n, why)| json!({ "name": n, "reason": why })).collect();
        o.insert(
            "init_from".into(),
            json!({ "loaded": init.loaded, "skipped": skipped, "left_at_init": init.initialised }),
        );
    }
    Value::Object(o).to_string()
}

/// The loss curve as an SVG line chart, written atomically (never over one of `inputs`).
pub fn plot_losses(path: &Path, losses: &[f32], inputs: &[&Path]) -> Result<(), Diagnostic> {
    use plotters::prelude::*;
    let io = |e: String| Diagnostic::new("E-io", format!("{}: cannot draw the plot: {e}", path.display()));
    let finite: Vec<(f32, f32)> =
        losses.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as f32 + 1.0, l)).collect();
    let max = finite.iter().map(|p| p.1).fold(f32::MIN, f32::max).max(1e-6);
    let min = finite.iter().map(|p| p.1).fold(f32::MAX, f32::min).min(max);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| io(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("training loss", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1f32..(losses.len().max(2) as f32), min..max)
        .map_err(|e| io(e.to_string()))?;
    chart.configure_mesh().x_desc("step").y_desc("loss").draw().map_err(|e| io(e.to_string()))?;
    chart.draw_series(LineSeries::new(finite, &BLUE)).map_err(|e| io(e.to_string()))?;
    root.present().map_err(|e| io(e.to_string()))?;
    drop(chart);
    drop(root);
    crate::runtime::files::write_atomic(path, svg.as_bytes(), inputs)
        .map_err(|e| Diagnostic::new("E-io", format!("cannot write {}: {e}", path.display())))
}
