//! Evaluation: the mean loss and the train block's metrics over a whole data set, and what a
//! finished run reports.
//!
//! accuracy = correct positions / counted positions, where a position's prediction is the
//! first largest score along the output's last axis (per sample for `[B, C]` scores, per
//! position for `[B, T, C]`); mse = mean (o − t)², mae = mean |o − t| over every value. A mask
//! field counts only the positions (values) where it is nonzero.

use crate::diag::Diagnostic;
use crate::frontend::checked::{Metric, MetricKind, TrainDecl};
use crate::runtime::collective::{Collective, Local};
use crate::runtime::data::{Batch, Dataset};
use crate::training::Engine;

/// The loss and the metrics over one data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub loss: f64,
    /// `(label, value)`: the label is the metric's name (`accuracy`), with its output and
    /// target when the block has two metrics of that kind (`accuracy(logits, tags)`).
    pub metrics: Vec<(String, f64)>,
}

impl Scores {
    pub fn get(&self, label: &str) -> Option<f64> {
        self.metrics.iter().find(|(l, _)| l == label).map(|m| m.1)
    }
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Report {
    /// The train block's name.
    pub name: String,
    pub model: String,
    pub steps: usize,
    pub seconds: f64,
    pub final_loss: f64,
    pub train: Scores,
    pub test: Option<Scores>,
    pub samples_per_second: f64,
    /// The loss of every step run (not those skipped by a resume).
    pub losses: Vec<f32>,
    /// Steps per epoch, for the per-epoch loss history.
    pub steps_per_epoch: usize,
    /// True if Ctrl-C (or `Progress::after_step`) stopped the run early.
    pub interrupted: bool,
}

impl Report {
    pub fn train_accuracy(&self) -> Option<f64> {
        self.train.get("accuracy")
    }

    /// The mean loss of each window of `every` steps (the last window may be shorter).
    pub fn loss_history(&self, every: usize) -> Vec<f64> {
        self.losses.chunks(every.max(1)).map(|c| c.iter().map(|&l| l as f64).sum::<f64>() / c.len() as f64).collect()
    }

    /// The mean training loss of each full epoch run.
    pub fn epoch_losses(&self) -> Vec<f64> {
        if self.steps_per_epoch == 0 || self.losses.len() < self.steps_per_epoch {
            return vec![];
        }
        self.losses
            .chunks_exact(self.steps_per_epoch)
            .map(|c| c.iter().map(|&l| l as f64).sum::<f64>() / c.len() as f64)
            .collect()
    }
}

/// Each metric's label: its kind's name, or `kind(output, target)` when two metrics share a
/// kind.
pub fn labels(metrics: &[Metric]) -> Vec<String> {
    metrics
        .iter()
        .map(|m| {
            if metrics.iter().filter(|o| o.kind == m.kind).count() > 1 {
                match &m.mask {
                    Some(mask) => format!("{}({}, {}, {})", m.kind.name(), m.output, m.target, mask),
                    None => format!("{}({}, {})", m.kind.name(), m.output, m.target),
                }
            } else {
                m.kind.name().to_string()
            }
        })
        .collect()
}

/// Running sums of one metric.
#[derive(Clone, Copy, Default)]
pub struct Tally {
    sum: f64,
    count: f64,
}

impl Tally {
    /// Add one batch of `n` samples: `out` is the output, `target` the field, `mask` the mask.
    pub fn add(&mut self, kind: MetricKind, out: &[f32], target: &[f32], mask: Option<&[f32]>) {
        let counted = |i: usize| mask.is_none_or(|m| m[i] != 0.0);
        match kind {
            MetricKind::Accuracy => {
                let positions = target.len();
                if positions == 0 || !out.len().is_multiple_of(positions) {
                    return;
                }
                let classes = out.len() / positions;
                for (p, &t) in target.iter().enumerate() {
                    if !counted(p) {
                        continue;
                    }
                    let row = &out[p * classes..(p + 1) * classes];
                    let best = row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b });
                    self.sum += (best as f32 == t) as u8 as f64;
                    self.count += 1.0;
                }
            }
            MetricKind::Mse | MetricKind::Mae => {
                for (i, (&o, &t)) in out.iter().zip(target).enumerate() {
                    if !counted(i) {
                        continue;
                    }
                    let d = (o - t) as f64;
                    self.sum += if kind == MetricKind::Mse { d * d } else { d.abs() };
                    self.count += 1.0;
                }
            }
        }
    }

    pub fn value(&self) -> f64 {
        if self.count == 0.0 {
            f64::NAN
        } else {
            self.sum / self.count
        }
    }
}

/// Mean loss and the metrics of `t` over a whole data set, in batches.
pub fn evaluate(
    engine: &mut dyn Engine,
    t: &TrainDecl,
    d: &Dataset,
    params: &[Vec<f32>],
    batch: Option<usize>,
) -> Result<Scores, Diagnostic> {
    evaluate_on(engine, t, d, params, batch, &Local)
}

/// `evaluate` on the ranks of `group`: rank r of p evaluates the samples [r·m/p, (r+1)·m/p)
/// of the m in `d`, and the ranks sum their loss·count and each metric's sum and count, so
/// every rank gets the scores of the whole set (the same as one process's up to the order of
/// the sums).
pub fn evaluate_on(
    engine: &mut dyn Engine,
    t: &TrainDecl,
    d: &Dataset,
    params: &[Vec<f32>],
    batch: Option<usize>,
    group: &dyn Collective,
) -> Result<Scores, Diagnostic> {
    let (rank, ranks) = (group.rank(), group.size());
    let share: Vec<usize> = (rank * d.len() / ranks..(rank + 1) * d.len() / ranks).collect();
    let batch_size = batch.unwrap_or(d.len()).min(d.len()).max(1);
    let mut buffers = Batch::for_data(d, batch_size);
    // [loss·count, count, then each metric's sum and count]
    let mut sums = vec![0f64; 2 + 2 * t.metrics.len()];
    let mut tallies = vec![Tally::default(); t.metrics.len()];
    for indices in share.chunks(batch_size) {
        buffers.fill(d, indices);
        let n = buffers.n;
        let eval = match engine.evaluate(&buffers, params) {
            Ok(e) => e,
            // The other ranks wait for this one's sums: end the job.
            Err(e) if ranks > 1 => group.abort(&format!("error[E-run]: {e}")),
            Err(e) => return Err(Diagnostic::new("E-run", e)),
        };
        sums[0] += eval.loss as f64 * n as f64;
        sums[1] += n as f64;
        for (m, tally) in t.metrics.iter().zip(&mut tallies) {
            let (Some(out), Some(field)) = (eval.output(&m.output), d.field(&m.target)) else { continue };
            let target = &buffers.field(&m.target).unwrap_or_default()[..n * field.size()];
            let mask = m.mask.as_deref().and_then(|name| {
                let size = d.field(name)?.size();
                Some(&buffers.field(name)?[..n * size])
            });
            tally.add(m.kind, out, target, mask);
        }
    }
    for (k, tally) in tallies.iter().enumerate() {
        sums[2 + 2 * k] = tally.sum;
        sums[3 + 2 * k] = tally.count;
    }
    group.sum_f64(&mut sums);
    let labels = labels(&t.metrics);
    let totals = (0..t.metrics.len()).map(|k| Tally { sum: sums[2 + 2 * k], count: sums[3 + 2 * k] });
    Ok(Scores {
        loss: sums[0] / sums[1].max(1.0),
        metrics: labels.into_iter().zip(totals).map(|(l, tally)| (l, tally.value())).collect(),
    })
}
