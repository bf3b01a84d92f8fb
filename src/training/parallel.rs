//! The data-parallel engine: every rank holds all the parameters and runs the train step on
//! its shard of each global batch, as Horovod and PyTorch DDP do.
//!
//! A step is two compiled functions with one reduction between them (`optim::SplitStep`):
//!
//! 1. `gradients` on the shard's n_r samples writes the shard's loss and ∇(n_r·loss) of every
//!    trained parameter into one contiguous buffer, and updates the model's state (batch
//!    norm's running statistics) from the shard; the buffer is laid out as
//!    `[n_r·loss | ∇ of parameter 0 | ∇ of parameter 1 | … | n_r·state … | n_r | stop]`;
//! 2. `Collective::sum_f32` sums the buffer over the ranks in a fixed order, so every rank
//!    holds the same bits: Σ n_r·loss_r, Σ ∇(n_r·loss_r), Σ n_r·state_r, b = Σ n_r and the
//!    stop votes;
//! 3. `update` on every rank applies clipping, weight decay and the optimizer to the mean
//!    gradient Σ ∇(n_r·loss_r) / b (the 1/b is an input of the update), and the state becomes
//!    the mean Σ n_r·state_r / b, so every rank's parameters, state and optimizer state stay
//!    identical.
//!
//! Weighting each shard by n_r keeps a last, smaller batch exact even when it does not split
//! evenly. A rank whose function fails while the others wait in the reduction ends the job
//! (`Collective::abort`), so a failure never leaves ranks waiting.
//!
//! Batch norm normalises by each rank's own shard (PyTorch DDP's default, not SyncBatchNorm),
//! and its running statistics are averaged over the ranks after every step: the running mean
//! is then exactly one process's, the running variance the mean of the shards' variances.
//! Random numbers (dropout) of step s on rank r of p use the key of step s·p + r: every shard
//! gets its own masks, the same in every run on p ranks (and one rank's are one process's).

use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::codegen::CompileOptions;
use crate::diag::Diagnostic;
use crate::drivers::jit::{self, Compiled};
use crate::frontend::checked::TrainDecl;
use crate::ir::graph::{Graph, InputKind};
use crate::runtime::collective::Collective;
use crate::runtime::data::Batch;
use crate::training::jit_engine::Evaluator;
use crate::training::{field_input, optim, Counter, Engine, Evaluation, INTERRUPTED};

/// Set by Ctrl-C in a data-parallel run. The ranks vote on it in each step's reduction and
/// all stop after the same step (`INTERRUPTED`), since each rank may see the signal at a
/// different moment.
pub static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Where an input of the gradients function comes from.
enum Feed {
    Field { name: String, per_sample: usize },
    ShardSamples,
    Key,
}

/// Where an input of the update function comes from.
enum UpdateFeed {
    /// The summed gradient of the parameter whose range in the buffer this is.
    Gradient(Range<usize>),
    Scale,
    Lr,
}

/// Seconds spent in each part of the steps so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepClock {
    pub steps: usize,
    pub gradients: f64,
    pub reduce: f64,
    pub update: f64,
}

pub struct DataParallel {
    gradients: Compiled,
    feeds: Vec<Feed>,
    update: Compiled,
    update_feeds: Vec<UpdateFeed>,
    eval: Evaluator,
    /// `[n_r·loss | gradients… | n_r·state… | n_r | stop]`, the one buffer the ranks sum.
    buffer: Vec<f32>,
    /// Each output of `gradients` (the loss, then each gradient) as a range of `buffer`.
    outputs: Vec<Range<usize>>,
    /// The model's state tensors the gradients function updates, with their range of `buffer`.
    state: Vec<(usize, Range<usize>)>,
    model_params: usize,
    group: Rc<dyn Collective>,
    /// The scalar inputs: n_r, 1/b, the learning rate, the random key.
    samples: [f32; 1],
    key: [f32; crate::ir::ops::random::KEY_LEN],
    scale: [f32; 1],
    lr: [f32; 1],
    clock: StepClock,
}

fn codegen(e: String) -> Diagnostic {
    Diagnostic::new("E-codegen", e)
}

/// Optimise and compile a graph of the split step.
fn compile(mut g: Graph, opts: &CompileOptions) -> Result<(Graph, Compiled), Diagnostic> {
    crate::ir::opt::optimize(&mut g, None).map_err(codegen)?;
    if g.symbols.len() > 1 {
        return Err(codegen("training binds one symbolic dimension (the batch)".into()));
    }
    let compiled = jit::compile(&g, opts)?;
    Ok((g, compiled))
}

impl DataParallel {
    /// Compile `t`'s split train step and its loss graph for the ranks of `group`.
    pub fn new(t: &TrainDecl, group: Rc<dyn Collective>, opts: &CompileOptions) -> Result<DataParallel, Diagnostic> {
        let split = optim::build_split(t).map_err(codegen)?;
        let model_params = split.model_params;
        let sizes: Vec<usize> =
            split.gradients.outputs.iter().map(|&(_, id)| known_size(&split.gradients, id)).collect();
        let names: Vec<String> = split.gradients.outputs.iter().map(|(n, _)| n.clone()).collect();
        let mut outputs = Vec::with_capacity(sizes.len());
        let mut at = 0;
        for &len in &sizes {
            outputs.push(at..at + len);
            at += len;
        }
        let mut updated: Vec<usize> = split.gradients.updates.iter().map(|&(p, _)| p).collect();
        updated.sort_unstable();
        updated.dedup();
        let mut state = Vec::with_capacity(updated.len());
        for p in updated {
            let len: usize = split.gradients.params[p].shape.iter().map(|d| d.known().unwrap_or(1)).product();
            state.push((p, at..at + len));
            at += len;
        }
        let buffer = vec![0.0; at + 2];

        let (g, gradients) = compile(split.gradients, opts)?;
        let feeds = g
            .inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::Data | InputKind::Label => Ok(Feed::Field {
                    name: i.name.clone(),
                    per_sample: i.shape.iter().filter_map(|d| d.known()).product(),
                }),
                InputKind::Variable if i.name == "shard samples" => Ok(Feed::ShardSamples),
                InputKind::RandomKey => Ok(Feed::Key),
                _ => Err(codegen(format!("the gradients function has an unexpected input `{}`", i.name))),
            })
            .collect::<Result<_, _>>()?;
        let (u, update) = compile(split.update, opts)?;
        let update_feeds = u
            .inputs
            .iter()
            .map(|i| match (i.kind, i.name.as_str()) {
                (InputKind::Gradient, name) => names
                    .iter()
                    .position(|n| n == name)
                    .map(|k| UpdateFeed::Gradient(outputs[k].clone()))
                    .ok_or_else(|| codegen(format!("the update reads `{name}`, which no gradient is"))),
                (InputKind::Variable, "grad scale") => Ok(UpdateFeed::Scale),
                (InputKind::Variable, "lr") => Ok(UpdateFeed::Lr),
                _ => Err(codegen(format!("the update function has an unexpected input `{}`", i.name))),
            })
            .collect::<Result<_, _>>()?;
        let eval = Evaluator::new(t.eval_graph.clone(), model_params, opts)?;
        Ok(DataParallel {
            gradients,
            feeds,
            update,
            update_feeds,
            eval,
            buffer,
            outputs,
            state,
            model_params,
            group,
            samples: [0.0],
            key: [0.0; crate::ir::ops::random::KEY_LEN],
            scale: [0.0],
            lr: [0.0],
            clock: StepClock::default(),
        })
    }

    /// The reduced buffer's length in floats (what each step sums across the ranks).
    pub fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    pub fn clock(&self) -> StepClock {
        self.clock
    }

    /// A failure on this rank: the others wait in the reduction, so end the job; on one
    /// process, return it.
    fn fail(&self, e: String) -> Result<f32, String> {
        if self.group.size() > 1 {
            self.group.abort(&format!("error[E-run]: {e}"));
        }
        Err(e)
    }

    /// Forward and backward of this rank's shard into the buffer (zeros for an empty shard).
    fn shard_gradients(&mut self, batch: &Batch, params: &mut [Vec<f32>]) -> Result<(), String> {
        let n = batch.n;
        let tail = self.buffer.len() - 2;
        if n == 0 {
            self.buffer[..tail].fill(0.0);
        } else {
            self.samples[0] = n as f32;
            let inputs: Vec<&[f32]> = self
                .feeds
                .iter()
                .map(|f| match f {
                    Feed::Field { name, per_sample } => field_input(batch, name, n * per_sample),
                    Feed::ShardSamples => Ok(&self.samples[..]),
                    Feed::Key => Ok(&self.key[..]),
                })
                .collect::<Result<_, _>>()?;
            let mut outputs: Vec<&mut [f32]> = Vec::with_capacity(self.outputs.len());
            let mut rest = &mut self.buffer[..tail];
            for r in &self.outputs {
                let (head, tail) = rest.split_at_mut(r.len());
                outputs.push(head);
                rest = tail;
            }
            self.gradients.run(&inputs, &mut params[..self.model_params], &mut outputs, &[n])?;
            self.buffer[0] *= n as f32;
            for (p, r) in &self.state {
                for (slot, &v) in self.buffer[r.clone()].iter_mut().zip(&params[*p]) {
                    *slot = v * n as f32;
                }
            }
        }
        self.buffer[tail] = n as f32;
        self.buffer[tail + 1] = STOP_REQUESTED.load(Ordering::SeqCst) as u8 as f32;
        Ok(())
    }
}

/// The random key of rank `rank` of `ranks` at `counter`'s step s: the key of step s·ranks +
/// rank, so no two (step, rank) pairs of a run share their numbers, and one rank draws what one
/// process does.
pub fn shard_counter(counter: Counter, rank: usize, ranks: usize) -> Counter {
    Counter { seed: counter.seed, step: counter.step * ranks as u64 + rank as u64 }
}

/// The number of elements of a node whose shape is fully known (a parameter's gradient).
fn known_size(g: &Graph, id: crate::ir::graph::NodeId) -> usize {
    g.shape(id).iter().map(|d| d.known().unwrap_or(1)).product()
}

impl Engine for DataParallel {
    /// One step on this rank's shard (`batch`, possibly empty); returns the whole batch's loss.
    fn step(&mut self, batch: &Batch, lr: f32, counter: Counter, params: &mut [Vec<f32>]) -> Result<f32, String> {
        let started = Instant::now();
        self.key = shard_counter(counter, self.group.rank(), self.group.size()).key_f32();
        if let Err(e) = self.shard_gradients(batch, params) {
            return self.fail(e);
        }
        let computed = Instant::now();
        self.group.sum_f32(&mut self.buffer);
        let reduced = Instant::now();
        let tail = self.buffer.len() - 2;
        let total = self.buffer[tail];
        if self.buffer[tail + 1] > 0.0 {
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
        if total == 0.0 {
            return self.fail("a step of no samples".into());
        }
        for (p, r) in &self.state {
            for (v, &sum) in params[*p].iter_mut().zip(&self.buffer[r.clone()]) {
                *v = sum / total;
            }
        }
        self.scale[0] = 1.0 / total;
        self.lr[0] = lr;
        let buffer = &self.buffer;
        let inputs: Vec<&[f32]> = self
            .update_feeds
            .iter()
            .map(|f| match f {
                UpdateFeed::Gradient(r) => &buffer[r.clone()],
                UpdateFeed::Scale => &self.scale[..],
                UpdateFeed::Lr => &self.lr[..],
            })
            .collect();
        let no_outputs: &mut [Vec<f32>] = &mut [];
        if let Err(e) = self.update.run(&inputs, params, no_outputs, &[]) {
            return self.fail(e);
        }
        let done = Instant::now();
        self.clock.steps += 1;
        self.clock.gradients += (computed - started).as_secs_f64();
        self.clock.reduce += (reduced - computed).as_secs_f64();
        self.clock.update += (done - reduced).as_secs_f64();
        Ok(self.buffer[0] / total)
    }

    fn evaluate(&mut self, batch: &Batch, params: &[Vec<f32>]) -> Result<Evaluation, String> {
        self.eval.evaluate(batch, params)
    }

    fn stats(&self) -> String {
        let (g, u) = (self.gradients.stats(), self.update.stats());
        let mut s = format!(
            "data parallel on {} ranks: gradients compiled in {:.1} ms ({} kernels), update in {:.1} ms ({} kernels); \
             each step sums {} floats ({:.2} MB)",
            self.group.size(),
            g.compile_ms,
            g.kernels,
            u.compile_ms,
            u.kernels,
            self.buffer.len(),
            self.buffer.len() as f64 * 4.0 / 1e6
        );
        let c = self.clock;
        if c.steps > 0 {
            let ms = |t: f64| 1e3 * t / c.steps as f64;
            s.push_str(&format!(
                "\nper step ({} steps): gradients {:.3} ms, sum across ranks {:.3} ms, update {:.3} ms",
                c.steps,
                ms(c.gradients),
                ms(c.reduce),
                ms(c.update)
            ));
        }
        s
    }
}
