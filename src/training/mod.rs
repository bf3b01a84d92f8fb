//! Training: a train block, its model and its data -> trained parameters and metrics.
//!
//! The loop is independent of how a step is executed: an `Engine` runs the fused train step
//! (forward, backward and update in one call) and the evaluation of the loss graph. The
//! reference interpreter is one engine; the Cranelift JIT is the fast one. Data parallelism
//! (`parallel`) is an engine too: the loop only hands each rank its share of every batch and
//! sums the evaluation over the ranks (`train_on` with a `Collective`).

pub mod data;
pub mod jit_engine;
pub mod metrics;
pub mod optim;
pub mod parallel;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::diag::Diagnostic;
use crate::frontend::checked::{Checked, DataDecl, Length, TrainDecl};
use crate::ir::graph::{Graph, InputKind};
use crate::ir::tensor::Tensor;
use crate::runtime::collective::{Collective, Local};
use crate::runtime::data::{Batch, Batches};
use crate::runtime::rng::Rng;
pub use data::{load_data, model_signature, Data};
pub use metrics::{evaluate, evaluate_on, Report, Scores};
use optim::TrainStep;

/// Where a step's random numbers come from (`ir::ops::random`): the run's seed and the
/// step's index. Part of a checkpoint, so a resumed run draws what the uninterrupted one would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub seed: u64,
    pub step: u64,
}

impl Counter {
    /// The `RandomKey` input of this step as the f32 buffer engines pass.
    pub fn key_f32(self) -> [f32; crate::ir::ops::random::KEY_LEN] {
        let key = crate::ir::ops::random::key(self.seed, self.step);
        std::array::from_fn(|i| key.data[i] as f32)
    }
}

/// What `Engine::evaluate` gives for a batch: the loss and every model output, by name.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub loss: f32,
    pub outputs: Vec<(String, Vec<f32>)>,
}

impl Evaluation {
    pub fn output(&self, name: &str) -> Option<&[f32]> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// Executes the graphs of a training run on host f32 buffers. A batch holds the data fields
/// by name; each graph input of kind `Data` or `Label` reads the field of its name.
pub trait Engine {
    /// One fused train step (training mode) on the first `batch.n` samples of each field:
    /// returns the loss and updates `params` (model parameters and state, then optimizer
    /// state) in place. Random numbers (dropout) are those of `counter`.
    fn step(&mut self, batch: &Batch, lr: f32, counter: Counter, params: &mut [Vec<f32>]) -> Result<f32, String>;
    /// The loss and the model's outputs for a batch (inference mode, no update).
    fn evaluate(&mut self, batch: &Batch, params: &[Vec<f32>]) -> Result<Evaluation, String>;
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

/// The graphs an engine needs: the fused step (training mode) and the loss graph (model
/// forward + loss, inference mode).
pub struct TrainGraphs {
    pub step: TrainStep,
    /// Outputs: `loss`, then the model's outputs.
    pub loss_graph: Graph,
}

impl TrainGraphs {
    pub fn new(t: &TrainDecl) -> Result<TrainGraphs, String> {
        Ok(TrainGraphs { step: optim::build(t)?, loss_graph: t.eval_graph.clone() })
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

/// The buffer of the field feeding graph input `name`: its first `len` values.
pub fn field_input<'a>(batch: &'a Batch, name: &str, len: usize) -> Result<&'a [f32], String> {
    let buf = batch.field(name).ok_or_else(|| format!("the data has no field `{name}` for the graph's input"))?;
    buf.get(..len).ok_or_else(|| format!("field `{name}` holds {} values, the graph reads {len}", buf.len()))
}

/// Tensors for a graph's inputs: the batch's fields, the learning rate when asked and the
/// random key of `counter`.
fn feed(g: &Graph, batch: &Batch, lr: Option<f32>, counter: Counter) -> Result<Vec<Tensor>, String> {
    g.inputs
        .iter()
        .map(|info| {
            let shape: Vec<usize> = info.shape.iter().map(|d| d.known().unwrap_or(batch.n)).collect();
            let len: usize = shape.iter().product();
            let data: Vec<f64> = match info.kind {
                InputKind::Data | InputKind::Label => {
                    field_input(batch, &info.name, len)?.iter().map(|&v| v as f64).collect()
                }
                InputKind::Variable if info.name == "lr" => vec![lr.unwrap_or(0.0) as f64],
                InputKind::RandomKey => crate::ir::ops::random::key(counter.seed, counter.step).data,
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
    fn step(&mut self, batch: &Batch, lr: f32, counter: Counter, params: &mut [Vec<f32>]) -> Result<f32, String> {
        let g = &self.program.step.graph;
        let inputs = feed(g, batch, Some(lr), counter)?;
        let values = crate::ir::interp::run(g, &inputs, &to_tensors(g, params))?;
        let loss = values[g.outputs[self.program.step.loss_output].1.index()].data[0] as f32;
        for &(p, node) in &g.updates {
            for (dst, &src) in params[p].iter_mut().zip(&values[node.index()].data) {
                *dst = src as f32;
            }
        }
        Ok(loss)
    }

    fn evaluate(&mut self, batch: &Batch, params: &[Vec<f32>]) -> Result<Evaluation, String> {
        let g = &self.program.loss_graph;
        let inputs = feed(g, batch, None, Counter::default())?;
        let values = crate::ir::interp::run(g, &inputs, &to_tensors(g, &params[..g.params.len()]))?;
        let loss = values[g.outputs[0].1.index()].data[0] as f32;
        let outputs = g.outputs[1..]
            .iter()
            .map(|(name, id)| (name.clone(), values[id.index()].data.iter().map(|&v| v as f32).collect()))
            .collect();
        Ok(Evaluation { loss, outputs })
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

/// How a run shows progress, and who may stop it.
pub trait Progress {
    fn start(&mut self, total_steps: usize);
    fn update(&mut self, step: usize, loss: f32, samples_per_second: f64);
    fn finish(&mut self);
    /// Called after every step (`step` counts from 1) with its loss; `false` ends the run
    /// there, as Ctrl-C does (the Python module stops on a pending KeyboardInterrupt or its
    /// callback's answer).
    fn after_step(&mut self, _step: usize, _loss: f32) -> bool {
        true
    }
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
    train_on(t, data, engine, params, progress, resume_at, stop_after, &Local)
}

/// `train` on one rank of `group`: the engine steps on this rank's share of each batch (a
/// `parallel::DataParallel` engine sums the gradients across the ranks), and the final
/// evaluation sums every rank's share of each data set. Every rank returns the same report.
#[allow(clippy::too_many_arguments)]
pub fn train_on(
    t: &TrainDecl,
    data: &Data,
    engine: &mut dyn Engine,
    params: &mut [Vec<f32>],
    progress: &mut dyn Progress,
    resume_at: usize,
    stop_after: Option<usize>,
    group: &dyn Collective,
) -> Result<Report, Diagnostic> {
    let span = Span { resume_at, stop_before: stop_after };
    let run = run_steps(t, data, engine, params, progress, span, group)?;
    if let Some(step) = run.diverged_at {
        if group.size() > 1 {
            // The replay below is one process's; the ranks saw the same loss, so all stop here.
            return Err(Diagnostic::new("E-diverged", format!("the loss became non-finite at step {}", step + 1))
                .help("lower the learning rate (--lr), or check the data's scale")
                .note("run on one process to find the first op whose value went non-finite"));
        }
        return Err(divergence(t, data, step));
    }
    let steps = resume_at + run.losses.len();
    let train = evaluate_on(engine, t, &data.train, params, t.batch, group)?;
    let test = match &data.test {
        Some(d) => Some(evaluate_on(engine, t, d, params, t.batch, group)?),
        None => None,
    };
    Ok(Report {
        name: t.name.clone(),
        model: t.model.clone(),
        steps,
        seconds: run.seconds,
        final_loss: run.losses.last().copied().unwrap_or(f32::NAN) as f64,
        train,
        test,
        samples_per_second: run.samples as f64 / run.seconds.max(1e-9),
        losses: run.losses,
        steps_per_epoch: run.per_epoch,
        interrupted: run.stopped || INTERRUPTED.load(Ordering::SeqCst),
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

    /// Gather this rank's share of the next batch of every field (starting a new epoch when
    /// one ends); returns the whole batch's size. Every rank draws the same order.
    fn next(&mut self, batches: &mut Batches, batch: &mut Batch, group: &dyn Collective) -> usize {
        loop {
            self.start_epoch(batches);
            if let Some(b) = batches.next_share(batch, group.rank(), group.size()) {
                return b;
            }
            self.epoch_started = false;
        }
    }

    /// Move past the next batch without gathering it (the steps a resumed run skips).
    fn skip(&mut self, batches: &mut Batches) {
        loop {
            self.start_epoch(batches);
            if batches.next_indices().is_some() {
                return;
            }
            self.epoch_started = false;
        }
    }

    fn start_epoch(&mut self, batches: &mut Batches) {
        if !self.epoch_started {
            if self.shuffle {
                batches.shuffle(&mut self.rng);
            } else {
                batches.restart();
            }
            self.epoch_started = true;
        }
    }
}

/// The batch size a run uses on `train`: the block's, at most the data set.
fn batch_size(t: &TrainDecl, train: &crate::runtime::data::Dataset) -> usize {
    t.batch.unwrap_or(train.len()).min(train.len()).max(1)
}

/// Refuse a batch that does not split into `ranks` equal shares (data parallelism: each rank
/// computes the gradient of its share).
pub fn check_shards(t: &TrainDecl, train: &crate::runtime::data::Dataset, ranks: usize) -> Result<(), Diagnostic> {
    let batch = batch_size(t, train);
    if batch.is_multiple_of(ranks) {
        return Ok(());
    }
    let what = if t.batch.is_some_and(|b| b <= train.len()) { "the batch" } else { "the whole data set (the batch)" };
    Err(Diagnostic::new(
        "E-distributed",
        format!("{what} of {batch} samples does not split evenly over {ranks} processes"),
    )
    .help(format!(
        "choose a batch (--batch) that is a multiple of {ranks}, or run on a number of processes that divides {batch}"
    )))
}

/// The steps of the run in all (`steps`, or `epochs` × batches per epoch).
pub fn total_steps(t: &TrainDecl, per_epoch: usize) -> usize {
    match t.length {
        Length::Steps(s) => s,
        Length::Epochs(e) => e * per_epoch,
    }
}

/// What the step loop did.
struct Run {
    losses: Vec<f32>,
    /// The step whose loss was not finite, if any.
    diverged_at: Option<usize>,
    seconds: f64,
    samples: usize,
    per_epoch: usize,
    /// `Progress::after_step` ended the run early.
    stopped: bool,
}

/// The step loop.
fn run_steps(
    t: &TrainDecl,
    data: &Data,
    engine: &mut dyn Engine,
    params: &mut [Vec<f32>],
    progress: &mut dyn Progress,
    span: Span,
    group: &dyn Collective,
) -> Result<Run, Diagnostic> {
    let train = &data.train;
    let batch = batch_size(t, train);
    check_shards(t, train, group.size())?;
    let mut batches = train.batches(batch, t.drop_last)?;
    let per_epoch = batches.per_epoch();
    if per_epoch == 0 {
        return Err(Diagnostic::new("E-data", format!("{}: fewer samples than one batch of {batch}", train.source())));
    }
    let total = total_steps(t, per_epoch);
    let mut buffers = Batch::for_data(train, batch.div_ceil(group.size()));
    let mut order = DataOrder::new(t, data.shuffle);
    let mut losses = Vec::with_capacity(total.min(1 << 16));
    let mut samples = 0usize;
    progress.start(total);
    let started = Instant::now();
    // Unshuffled with one batch per epoch, every step sees the same batch: gather it once.
    let same_batch = !data.shuffle && per_epoch == 1;
    let finish = |progress: &mut dyn Progress,
                  losses: Vec<f32>,
                  diverged_at: Option<usize>,
                  samples: usize,
                  stopped: bool|
     -> Result<Run, Diagnostic> {
        progress.finish();
        Ok(Run { losses, diverged_at, seconds: started.elapsed().as_secs_f64(), samples, per_epoch, stopped })
    };
    // The size of the whole batch (of which `buffers` holds this rank's share).
    let mut global = 0;
    for step in 0..total {
        if span.stop_before == Some(step) || INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        if step < span.resume_at {
            // Done before the checkpoint: only the data order is replayed.
            if !same_batch {
                order.skip(&mut batches);
            }
            continue;
        }
        // (Otherwise the buffers still hold the batch.)
        if step == span.resume_at || !same_batch {
            global = order.next(&mut batches, &mut buffers, group);
        }
        let lr = optim::learning_rate(t, step, total) as f32;
        let counter = Counter { seed: t.seed, step: step as u64 };
        let loss = engine.step(&buffers, lr, counter, params).map_err(|e| Diagnostic::new("E-run", e))?;
        samples += global;
        losses.push(loss);
        if !loss.is_finite() {
            return finish(progress, losses, Some(step), samples, false);
        }
        if step % 16 == 0 || step + 1 == total {
            progress.update(step + 1, loss, samples as f64 / started.elapsed().as_secs_f64().max(1e-9));
        }
        if !progress.after_step(step + 1, loss) {
            return finish(progress, losses, None, samples, true);
        }
    }
    finish(progress, losses, None, samples, false)
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
    let span = Span { resume_at: 0, stop_before: Some(step) };
    if run_steps(t, data, &mut interp, &mut params, &mut Silent, span, &Local).is_err() {
        return base;
    }
    // Rebuild the batch of `step` by replaying the data order.
    let batch = batch_size(t, train);
    let Ok(mut batches) = train.batches(batch, t.drop_last) else { return base };
    let mut buffers = Batch::for_data(train, batch);
    let mut order = DataOrder::new(t, data.shuffle);
    for _ in 0..=step {
        order.next(&mut batches, &mut buffers, &Local);
    }
    let g = &interp.program.step.graph;
    let lr = optim::learning_rate(t, step, total_steps(t, batches.per_epoch())) as f32;
    let counter = Counter { seed: t.seed, step: step as u64 };
    let Ok(inputs) = feed(g, &buffers, Some(lr), counter) else { return base };
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

/// The train block to run and its data: the one named `name`, else the only one. A file
/// with several blocks and no name chosen is an error listing them.
pub fn find<'c>(c: &'c Checked, name: Option<&str>) -> Result<(&'c TrainDecl, Option<&'c DataDecl>), String> {
    let names = || c.trains.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    let t = match (name, c.trains.as_slice()) {
        (_, []) => return Err("the file has no train block".into()),
        (Some(n), trains) => trains.iter().find(|t| t.name == n).ok_or_else(|| {
            let hint = crate::diag::nearest(n, trains.iter().map(|t| t.name.as_str()))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            format!("no train block is named `{n}`{hint}; the file has: {}", names())
        })?,
        (None, [only]) => only,
        (None, _) => {
            return Err(format!(
                "the file has {} train blocks; choose one with --train NAME: {}",
                c.trains.len(),
                names()
            ))
        }
    };
    Ok((t, t.data.map(|i| &c.data[i])))
}
