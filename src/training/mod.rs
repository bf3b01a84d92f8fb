//! Training: a train block, its model and its data -> trained parameters and metrics.
//!
//! The loop is independent of how a step is executed: an `Engine` runs the fused train step
//! (forward, backward and update in one call) and the evaluation of the loss graph. The
//! reference interpreter is one engine; the Cranelift JIT is the fast one.

pub mod jit_engine;
pub mod optim;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::diag::Diagnostic;
use crate::frontend::checked::{Checked, DataDecl, Length, Source, Split, TrainDecl};
use crate::ir::graph::{Graph, InputKind};
use crate::ir::tensor::Tensor;
use crate::runtime::data::{self, Dataset, LoadOptions, ModelShape};
use crate::runtime::rng::Rng;
use optim::TrainStep;

/// Executes the graphs of a training run on host f32 buffers.
pub trait Engine {
    /// One fused train step on the first `n` samples of `x` and `y`: returns the loss and
    /// updates `params` (model parameters, then optimizer state) in place.
    fn step(&mut self, x: &[f32], y: &[f32], n: usize, lr: f32, params: &mut [Vec<f32>]) -> Result<f32, String>;
    /// The loss and the model's first output for a batch (no update).
    fn evaluate(&mut self, x: &[f32], y: &[f32], n: usize, params: &[Vec<f32>]) -> Result<(f32, Vec<f32>), String>;
    /// A line of engine statistics for `--stats` (compile times, memory plan).
    fn stats(&self) -> String {
        String::new()
    }
    /// Milliseconds spent in each kernel of the train step since the last call, with what the
    /// kernel computes; empty unless the engine was compiled with `CompileOptions::profile`.
    fn step_profile(&mut self) -> Vec<(String, f64)> {
        vec![]
    }
}

/// The graphs an engine needs: the fused step and the loss graph (model forward + loss).
pub struct TrainGraphs {
    pub step: TrainStep,
    /// Outputs: `loss`, then the model's outputs.
    pub loss_graph: Graph,
}

impl TrainGraphs {
    pub fn new(t: &TrainDecl) -> Result<TrainGraphs, String> {
        Ok(TrainGraphs { step: optim::build(t)?, loss_graph: t.graph.clone() })
    }
}

/// The reference engine: runs the graphs with `interp` in f64 (rounded to f32 per op).
pub struct Interpreter {
    program: TrainGraphs,
}

impl Interpreter {
    pub fn new(program: TrainGraphs) -> Interpreter {
        Interpreter { program }
    }
}

/// Tensors for a graph's inputs: data `x`, labels `y`, and the learning rate when asked.
fn feed(g: &Graph, x: &[f32], y: &[f32], n: usize, lr: Option<f32>) -> Result<Vec<Tensor>, String> {
    g.inputs
        .iter()
        .map(|info| {
            let shape: Vec<usize> = info.shape.iter().map(|d| d.known().unwrap_or(n)).collect();
            let len: usize = shape.iter().product();
            let data: Vec<f64> = match info.kind {
                InputKind::Data => x[..len].iter().map(|&v| v as f64).collect(),
                InputKind::Label => y[..len].iter().map(|&v| v as f64).collect(),
                InputKind::Variable if info.name == "lr" => vec![lr.unwrap_or(0.0) as f64],
                _ => return Err(format!("the train graph has an unexpected input `{}`", info.name)),
            };
            Ok(Tensor::new(shape, data))
        })
        .collect()
}

fn to_tensors(g: &Graph, params: &[Vec<f32>]) -> Vec<Tensor> {
    g.params
        .iter()
        .zip(params)
        .map(|(p, v)| {
            Tensor::new(p.shape.iter().map(|d| d.known().unwrap_or(1)).collect(), v.iter().map(|&x| x as f64).collect())
        })
        .collect()
}

impl Engine for Interpreter {
    fn step(&mut self, x: &[f32], y: &[f32], n: usize, lr: f32, params: &mut [Vec<f32>]) -> Result<f32, String> {
        let g = &self.program.step.graph;
        let inputs = feed(g, x, y, n, Some(lr))?;
        let values = crate::ir::interp::run(g, &inputs, &to_tensors(g, params))?;
        let loss = values[g.outputs[self.program.step.loss_output].1.index()].data[0] as f32;
        for &(p, node) in &g.updates {
            for (dst, &src) in params[p].iter_mut().zip(&values[node.index()].data) {
                *dst = src as f32;
            }
        }
        Ok(loss)
    }

    fn evaluate(&mut self, x: &[f32], y: &[f32], n: usize, params: &[Vec<f32>]) -> Result<(f32, Vec<f32>), String> {
        let g = &self.program.loss_graph;
        let inputs = feed(g, x, y, n, None)?;
        let values = crate::ir::interp::run(g, &inputs, &to_tensors(g, &params[..g.params.len()]))?;
        let loss = values[g.outputs[0].1.index()].data[0] as f32;
        let scores =
            g.outputs.get(1).map(|o| values[o.1.index()].data.iter().map(|&v| v as f32).collect()).unwrap_or_default();
        Ok((loss, scores))
    }
}

/// Settings of a run given on the command line; each overrides the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub steps: Option<usize>,
    pub epochs: Option<usize>,
    pub batch: Option<usize>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
}

impl Overrides {
    pub fn apply(&self, t: &mut TrainDecl) {
        use crate::frontend::checked::Optimizer;
        if let Some(s) = self.steps {
            t.length = Length::Steps(s);
        }
        if let Some(e) = self.epochs {
            t.length = Length::Epochs(e);
        }
        if let Some(b) = self.batch {
            t.batch = Some(b);
        }
        if let Some(s) = self.seed {
            t.seed = s;
        }
        if let Some(new) = self.lr {
            match &mut t.optimizer {
                Optimizer::Sgd { lr } | Optimizer::Momentum { lr, .. } | Optimizer::Adam { lr, .. } => *lr = new,
            }
        }
    }
}

/// The training and test sets of a data block, checked against the model.
pub struct Data {
    pub train: Dataset,
    pub test: Option<Dataset>,
    /// Shuffle the training samples each epoch (the data block's `shuffle`, default true).
    pub shuffle: bool,
}

/// For a model input declared `int`: every feature of the training and test sets is a
/// whole number, inside the axis it indexes (`Dataset::check_integers`).
pub fn check_integer_input(g: &Graph, data: &Data) -> Result<(), Diagnostic> {
    for (index, info) in g.inputs.iter().enumerate() {
        if info.kind != InputKind::Data || !info.integer {
            continue;
        }
        let bound = g.index_bound(index);
        for set in std::iter::once(&data.train).chain(&data.test) {
            set.check_integers(&info.name, bound)?;
        }
    }
    Ok(())
}

/// Per-sample shape of the model's (single) data input, and its class count.
pub fn model_signature(g: &Graph) -> Result<(String, Vec<usize>, Option<usize>), String> {
    let data_inputs: Vec<_> = g.inputs.iter().filter(|i| i.kind == InputKind::Data).collect();
    let [x] = data_inputs.as_slice() else {
        return Err(format!("training feeds one input from the data, but the model has {}", data_inputs.len()));
    };
    let sample: Option<Vec<usize>> = x.shape[1..].iter().map(|d| d.known()).collect();
    let sample = sample.ok_or("only the first (batch) dimension of the model input may be symbolic")?;
    let classes = g.nodes.iter().find_map(|n| match n.op {
        crate::ir::graph::Op::OneHot { classes } => Some(classes),
        _ => None,
    });
    Ok((x.name.clone(), sample, classes))
}

fn load_source(s: &Source, base: &Path, sample: &[usize], classes: Option<usize>) -> Result<Dataset, Diagnostic> {
    let path = |p: &str| -> PathBuf { base.join(p) };
    let opts = |label: &str, scale: f64| LoadOptions {
        label_column: label.to_string(),
        scale: scale as f32,
        sample_shape: Some(sample.to_vec()),
        classes,
        ..LoadOptions::default()
    };
    match s {
        Source::Spiral { points, classes, seed } => data::spiral(*points, *classes, *seed),
        Source::Synthetic { samples, classes, seed } => data::synthetic(*samples, sample, *classes, *seed),
        Source::Csv { path: p, label, scale } => data::load_csv(&path(p), &opts(label, *scale)),
        Source::Npy { features, labels, scale } => {
            data::load_npy(&path(features), &path(labels), &opts("label", *scale))
        }
        Source::Idx { images, labels, scale } => data::load_idx(&path(images), &path(labels), &opts("label", *scale)),
    }
}

/// The files a source reads (none for generators).
fn source_files(s: &Source) -> Vec<&str> {
    match s {
        Source::Spiral { .. } | Source::Synthetic { .. } => vec![],
        Source::Csv { path, .. } => vec![path],
        Source::Npy { features, labels, .. } => vec![features, labels],
        Source::Idx { images, labels, .. } => vec![images, labels],
    }
}

/// Load and split a data block for a model with this input and class count. Paths are
/// relative to `base`. When the block's files are missing and it names an `otherwise`
/// source, that source is used instead (and `on_fallback` is told which file was missing).
pub fn load_data(
    d: &DataDecl,
    base: &Path,
    input: &str,
    sample: &[usize],
    classes: Option<usize>,
    on_fallback: &mut dyn FnMut(&Path),
) -> Result<Data, Diagnostic> {
    if let Some(fallback) = &d.otherwise {
        let files = source_files(&d.source).into_iter().chain(d.test.iter().flat_map(source_files));
        if let Some(missing) = files.map(|f| base.join(f)).find(|p| !p.exists()) {
            on_fallback(&missing);
            let d = DataDecl { source: fallback.clone(), test: None, otherwise: None, ..d.clone() };
            return load_data(&d, base, input, sample, classes, on_fallback);
        }
    }
    let shape = ModelShape { input, sample_shape: sample, label: Some(("labels", &[])), classes };
    let mut all = load_source(&d.source, base, sample, classes)?;
    all.validate(&shape)?;
    all.reshape(sample)?;
    let (train, mut test) = match &d.split {
        None => (all, None),
        Some(Split::Count(n)) => {
            let (a, b) = all.split_at(*n)?;
            (a, Some(b))
        }
        Some(Split::Fraction(f)) => {
            let (a, b) = all.split_fraction(*f)?;
            (a, Some(b))
        }
    };
    if let Some(t) = &d.test {
        let mut extra = load_source(t, base, sample, classes)?;
        extra.validate(&shape)?;
        extra.reshape(sample)?;
        test = Some(extra);
    }
    Ok(Data { train, test, shuffle: d.shuffle })
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Report {
    pub steps: usize,
    pub seconds: f64,
    pub final_loss: f64,
    pub train_loss: f64,
    pub train_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub samples_per_second: f64,
    /// The loss of every step.
    pub losses: Vec<f32>,
    /// True if Ctrl-C stopped the run early.
    pub interrupted: bool,
}

/// How a run shows progress.
pub trait Progress {
    fn start(&mut self, total_steps: usize);
    fn update(&mut self, step: usize, loss: f32, samples_per_second: f64);
    fn finish(&mut self);
}

/// No progress output (pipes, `--quiet`, tests).
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: usize) {}
    fn update(&mut self, _: usize, _: f32, _: f64) {}
    fn finish(&mut self) {}
}

/// Set by Ctrl-C: the loop stops after the current step.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Train `params` in place. On a non-finite loss the error names the step and the first op
/// whose value went non-finite (found by replaying the run up to that step with the
/// interpreter: runs are deterministic, so the replay meets the same values).
///
/// `resume_at` skips the first steps (their batches are still drawn, so the data order is the
/// uninterrupted run's); `stop_after` ends the run after that many steps in all.
pub fn train(
    t: &TrainDecl,
    data: &Data,
    engine: &mut dyn Engine,
    params: &mut [Vec<f32>],
    progress: &mut dyn Progress,
    resume_at: usize,
    stop_after: Option<usize>,
) -> Result<Report, Diagnostic> {
    let span = Span { resume_at, stop_before: stop_after };
    let (losses, stopped, seconds, samples) = run_steps(t, data, engine, params, progress, span)?;
    if let Some(step) = stopped {
        return Err(divergence(t, data, step));
    }
    let steps = resume_at + losses.len();
    let (train_loss, train_accuracy) = evaluate(engine, &data.train, params, t.batch)?;
    let test = match &data.test {
        Some(d) => Some(evaluate(engine, d, params, t.batch)?),
        None => None,
    };
    Ok(Report {
        steps,
        seconds,
        final_loss: losses.last().copied().unwrap_or(f32::NAN) as f64,
        train_loss,
        train_accuracy,
        test_loss: test.map(|t| t.0),
        test_accuracy: test.and_then(|t| t.1),
        samples_per_second: samples as f64 / seconds.max(1e-9),
        losses,
        interrupted: INTERRUPTED.load(Ordering::SeqCst),
    })
}

/// Which steps of the run to execute: from `resume_at` up to (not including) `stop_before`.
#[derive(Clone, Copy, Default)]
struct Span {
    resume_at: usize,
    stop_before: Option<usize>,
}

/// The order in which a run draws its batches: epochs of the data set, each shuffled (or in
/// file order with `shuffle: false`). The step loop and the divergence replay share it, so
/// a replay sees the same batches.
struct DataOrder {
    /// Shuffling has its own stream, so it does not disturb parameter initialisation.
    rng: Rng,
    shuffle: bool,
    epoch_started: bool,
}

impl DataOrder {
    fn new(t: &TrainDecl, shuffle: bool) -> DataOrder {
        DataOrder { rng: Rng::new(t.seed ^ 0x5eed_da7a), shuffle, epoch_started: false }
    }

    /// Gather the next batch into x and y (starting a new epoch when one ends): its size.
    fn next(&mut self, batches: &mut data::Batches, x: &mut [f32], y: &mut [f32]) -> usize {
        loop {
            if !self.epoch_started {
                if self.shuffle {
                    batches.shuffle(&mut self.rng);
                } else {
                    batches.restart();
                }
                self.epoch_started = true;
            }
            match batches.next_into(x, y) {
                Some(n) => return n,
                None => self.epoch_started = false,
            }
        }
    }
}

/// The step loop. Returns the losses, the step whose loss was not finite (if any), the time
/// spent and the number of samples seen.
fn run_steps(
    t: &TrainDecl,
    data: &Data,
    engine: &mut dyn Engine,
    params: &mut [Vec<f32>],
    progress: &mut dyn Progress,
    span: Span,
) -> Result<(Vec<f32>, Option<usize>, f64, usize), Diagnostic> {
    let train = &data.train;
    let batch = t.batch.unwrap_or(train.len()).min(train.len()).max(1);
    let mut batches = train.batches(batch, t.drop_last)?;
    let per_epoch = batches.per_epoch();
    if per_epoch == 0 {
        return Err(Diagnostic::new("E-data", format!("{}: fewer samples than one batch of {batch}", train.source())));
    }
    let total = match t.length {
        Length::Steps(s) => s,
        Length::Epochs(e) => e * per_epoch,
    };
    let mut x = vec![0f32; batches.x_len()];
    let mut y = vec![0f32; batches.y_len()];
    let mut order = DataOrder::new(t, data.shuffle);
    let mut losses = Vec::with_capacity(total.min(1 << 16));
    let mut samples = 0usize;
    progress.start(total);
    let started = Instant::now();
    // Unshuffled with one batch per epoch, every step sees the same batch: gather it once.
    let same_batch = !data.shuffle && per_epoch == 1;
    let mut n = 0;
    for step in 0..total {
        if span.stop_before == Some(step) || INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        // (Otherwise x, y and n still hold the batch.)
        if step == 0 || !same_batch {
            n = order.next(&mut batches, &mut x, &mut y);
        }
        if step < span.resume_at {
            continue; // done before the checkpoint; only the data order is replayed
        }
        let lr = optim::learning_rate(t, step, total) as f32;
        let loss = engine.step(&x, &y, n, lr, params).map_err(|e| Diagnostic::new("E-run", e))?;
        samples += n;
        losses.push(loss);
        if !loss.is_finite() {
            progress.finish();
            return Ok((losses, Some(step), started.elapsed().as_secs_f64(), samples));
        }
        if step % 16 == 0 || step + 1 == total {
            progress.update(step + 1, loss, samples as f64 / started.elapsed().as_secs_f64().max(1e-9));
        }
    }
    progress.finish();
    Ok((losses, None, started.elapsed().as_secs_f64(), samples))
}

/// Mean loss and accuracy of the model over a whole data set, in batches.
pub fn evaluate(
    engine: &mut dyn Engine,
    d: &Dataset,
    params: &[Vec<f32>],
    batch: Option<usize>,
) -> Result<(f64, Option<f64>), Diagnostic> {
    let batch = batch.unwrap_or(d.len()).min(d.len()).max(1);
    let mut batches = d.batches(batch, false)?;
    let mut x = vec![0f32; batches.x_len()];
    let mut y = vec![0f32; batches.y_len()];
    let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
    let mut has_scores = true;
    while let Some(n) = batches.next_into(&mut x, &mut y) {
        let (loss, scores) = engine.evaluate(&x, &y, n, params).map_err(|e| Diagnostic::new("E-run", e))?;
        loss_sum += loss as f64 * n as f64;
        seen += n;
        if scores.len() % n != 0 || scores.is_empty() {
            has_scores = false;
            continue;
        }
        let classes = scores.len() / n;
        for i in 0..n {
            let row = &scores[i * classes..(i + 1) * classes];
            let best = row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b });
            if best as f32 == y[i] {
                correct += 1;
            }
        }
    }
    let accuracy = (has_scores && seen > 0).then(|| correct as f64 / seen as f64);
    Ok((loss_sum / seen.max(1) as f64, accuracy))
}

/// Explain a non-finite loss at `step`: replay the run to just before it with the
/// interpreter, then evaluate that step's graph and name the first non-finite node.
fn divergence(t: &TrainDecl, data: &Data, step: usize) -> Diagnostic {
    let train = &data.train;
    let base = Diagnostic::new("E-diverged", format!("the loss became non-finite at step {}", step + 1))
        .help("lower the learning rate (--lr), or check the data's scale");
    let Ok(program) = TrainGraphs::new(t) else { return base };
    let mut params = initial_params(&program.step.graph, t.seed);
    let mut interp = Interpreter::new(program);
    if run_steps(t, data, &mut interp, &mut params, &mut Silent, Span { resume_at: 0, stop_before: Some(step) })
        .is_err()
    {
        return base;
    }
    // Rebuild the batch of `step` by replaying the data order.
    let batch = t.batch.unwrap_or(train.len()).min(train.len()).max(1);
    let Ok(mut batches) = train.batches(batch, t.drop_last) else { return base };
    let mut x = vec![0f32; batches.x_len()];
    let mut y = vec![0f32; batches.y_len()];
    let mut order = DataOrder::new(t, data.shuffle);
    let mut n = 0;
    for _ in 0..=step {
        n = order.next(&mut batches, &mut x, &mut y);
    }
    let g = &interp.program.step.graph;
    let total = match t.length {
        Length::Steps(s) => s,
        Length::Epochs(e) => e * batches.per_epoch(),
    };
    let lr = optim::learning_rate(t, step, total) as f32;
    let Ok(inputs) = feed(g, &x, &y, n, Some(lr)) else { return base };
    let Ok(values) = crate::ir::interp::run(g, &inputs, &to_tensors(g, &params)) else { return base };
    match values.iter().position(|v| v.data.iter().any(|x| !x.is_finite())) {
        Some(i) => {
            let node = &g.nodes[i];
            let what = crate::ir::ops::describe(&node.op, g);
            let name = node.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            base.note(format!(
                "the first non-finite value is %{i} = {what}{name}, of shape {}",
                g.shape_str(&node.shape)
            ))
        }
        None => base,
    }
}

/// Initial parameters (model, then optimizer state) as f32 buffers.
pub fn initial_params(g: &Graph, seed: u64) -> Vec<Vec<f32>> {
    crate::runtime::params::init_params_f32(g, seed)
}

/// Find the train block and its data in a checked program.
pub fn find(c: &Checked) -> Option<(&TrainDecl, Option<&DataDecl>)> {
    let t = c.trains.first()?;
    Some((t, t.data.map(|i| &c.data[i])))
}
