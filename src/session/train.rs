//! A session's train block at work: training (`fit`), scoring (`evaluate`) and the loss's
//! gradients, on the file's data block or on arrays from memory — through the same loop,
//! engine and checks as `netc run`.

use crate::codegen::CompileOptions;
use crate::diag::Diagnostic;
use crate::drivers::jit::{self, Compiled};
use crate::frontend::checked::TrainDecl;
use crate::ir::graph::InputKind;
use crate::runtime::data::{Batch, Dataset};
use crate::training::data::{dataset_from_arrays, ArrayField};
use crate::training::{self, Counter, Data, Overrides, Progress, Report, Scores};

use super::{Session, TensorKind};

/// The data a train block is run on.
pub enum Fields {
    /// The file's data block, loaded as `netc run` loads it.
    DataBlock,
    /// Arrays by field name (every field the train graph reads).
    Arrays(Vec<ArrayField>),
}

fn err(msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new("E-run", msg)
}

/// Counts the steps a run makes, whatever ends it, and passes everything on.
struct Counting<'a> {
    inner: &'a mut dyn Progress,
    steps: usize,
}

impl Progress for Counting<'_> {
    fn start(&mut self, total: usize) {
        self.inner.start(total)
    }
    fn update(&mut self, step: usize, loss: f32, samples_per_second: f64) {
        self.inner.update(step, loss, samples_per_second)
    }
    fn finish(&mut self) {
        self.inner.finish()
    }
    fn after_step(&mut self, step: usize, loss: f32) -> bool {
        self.steps += 1;
        self.inner.after_step(step, loss)
    }
}

/// One input of the gradient graph.
enum Feed {
    /// A data field, with its values per sample.
    Field { name: String, per_sample: usize },
    /// The random key of dropout and the like (training mode).
    Key,
}

/// The loss and its gradient with respect to every trained parameter, compiled for one mode.
pub(super) struct Gradients {
    training: bool,
    compiled: Compiled,
    feeds: Vec<Feed>,
    /// The loss, then one gradient per parameter.
    outputs: Vec<Vec<f32>>,
}

impl Session {
    /// The seed of the next `fit`'s data order and random numbers: the session's for the
    /// first (so it draws what `netc run` draws), then moved on by the steps already run.
    fn next_seed(&self) -> u64 {
        self.seed.wrapping_add((self.steps as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn train_block(&self) -> Result<&TrainDecl, Diagnostic> {
        self.train_decl().ok_or_else(|| {
            err(format!(
                "model `{}` has no train block in the file: there is no loss to train or score",
                self.model().name
            ))
        })
    }

    /// The train block's data: its data block's, or the arrays (checked against the graph).
    fn data(&mut self, t: &TrainDecl, fields: Fields, what: &str) -> Result<Data, Diagnostic> {
        let decl = t.data.map(|i| &self.checked.data[i]);
        match fields {
            Fields::Arrays(arrays) => Ok(Data {
                train: dataset_from_arrays(t, arrays, what)?,
                test: None,
                shuffle: decl.is_none_or(|d| d.shuffle),
            }),
            Fields::DataBlock => {
                let d =
                    decl.ok_or_else(|| err(format!("train {} has no data block: give the data as arrays", t.name)))?;
                let notes = &mut self.notes;
                let mut note = |missing: &std::path::Path| {
                    notes.push(format!(
                        "{} not found; data `{}` uses its `otherwise` source",
                        missing.display(),
                        d.name
                    ))
                };
                training::load_data(t, d, &self.base, &mut note)
            }
        }
    }

    fn ensure_engine(&mut self) -> Result<(), Diagnostic> {
        if self.engine.is_none() {
            let program = match self.program.take() {
                Some(p) => p,
                None => training::TrainGraphs::new(self.train_block()?).map_err(err)?,
            };
            self.engine = Some(training::jit_engine::jit_engine_with(program, &CompileOptions::default())?);
        }
        Ok(())
    }

    /// Train from the current parameters and optimizer state, with the train block's settings
    /// under `overrides`. Their seed orders the data; by default it is the session's, so a
    /// first `fit` draws the batches `netc run` draws, and later ones draw other orders (the
    /// seed moved on by the steps already run). The schedule and warmup run over this call's
    /// steps. `progress` may stop the run after any step; the parameters are then those of
    /// the last step.
    pub fn fit(
        &mut self,
        fields: Fields,
        overrides: &Overrides,
        progress: &mut dyn Progress,
    ) -> Result<Report, Diagnostic> {
        let mut t = self.train_block()?.clone();
        if overrides.batch == Some(0) {
            return Err(Diagnostic::new("E-usage", "batch must be at least 1"));
        }
        Overrides { seed: overrides.seed.or(Some(self.next_seed())), ..overrides.clone() }.apply(&mut t);
        let data = self.data(&t, fields, "fit")?;
        let batch = t.batch.unwrap_or(data.train.len()).max(1);
        crate::ir::limits::check(&t.graph, batch, crate::ir::limits::default_limit(), &format!("train {}", t.name))?;
        self.ensure_engine()?;
        let engine = self.engine.as_mut().expect("built above");
        let mut counting = Counting { inner: progress, steps: 0 };
        let report = training::train(&t, &data, engine.as_mut(), &mut self.values, &mut counting, 0, None);
        self.steps += counting.steps;
        report
    }

    /// The train block's loss and metrics with the current parameters: on the data block's
    /// training and test sets, or on the arrays (then there is no test set).
    pub fn evaluate(&mut self, fields: Fields) -> Result<(Scores, Option<Scores>), Diagnostic> {
        let t = self.train_block()?.clone();
        let data = self.data(&t, fields, "evaluate")?;
        self.ensure_engine()?;
        let engine = self.engine.as_mut().expect("built above");
        let train = training::evaluate(engine.as_mut(), &t, &data.train, &self.values, t.batch)?;
        let test = match &data.test {
            Some(d) => Some(training::evaluate(engine.as_mut(), &t, d, &self.values, t.batch)?),
            None => None,
        };
        Ok((train, test))
    }

    /// The train block's loss on these arrays (all of them as one batch) and its gradient with
    /// respect to each model parameter (`TensorKind::Param`), in the order of `tensors()`.
    /// `training`: as a train step sees the loss (batch statistics, dropout drawing the random
    /// numbers the next step would); otherwise in inference mode. State is left unchanged.
    pub fn loss_and_grads(
        &mut self,
        arrays: Vec<ArrayField>,
        training: bool,
    ) -> Result<(f32, Vec<Vec<f32>>), Diagnostic> {
        let t = self.train_block()?.clone();
        let data = dataset_from_arrays(&t, arrays, "loss_and_grads")?;
        let n = data.len();
        if n == 0 {
            return Err(crate::runtime::data::error("loss_and_grads: the arrays hold no samples"));
        }
        crate::ir::limits::check(&t.graph, n, crate::ir::limits::default_limit(), &format!("train {}", t.name))?;
        if self.gradients.as_ref().is_none_or(|g| g.training != training) {
            self.gradients = Some(self.compile_gradients(&t, training)?);
        }
        // A run's step i draws from (its seed, i): the next `fit` starts at step 0.
        let key = Counter { seed: self.next_seed(), step: 0 }.key_f32();
        let grads = self.gradients.as_mut().expect("compiled above");
        let batch = whole_batch(&data);
        let inputs = grads
            .feeds
            .iter()
            .map(|f| match f {
                Feed::Field { name, per_sample } => training::field_input(&batch, name, n * per_sample),
                Feed::Key => Ok(&key[..]),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let params = &self.values[..self.model_tensors];
        grads.compiled.run_readonly(&inputs, params, &mut grads.outputs, &[n]).map_err(err)?;
        Ok((grads.outputs[0][0], grads.outputs[1..].to_vec()))
    }

    /// The loss graph of `mode` with the backward pass appended: outputs `loss` and `d_NAME`
    /// for every parameter the model trains or freezes (frozen ones have gradients too; only
    /// `fit` leaves them alone), and no state updates.
    fn compile_gradients(&self, t: &TrainDecl, training: bool) -> Result<Gradients, Diagnostic> {
        let mut g = if training { t.graph.clone() } else { t.eval_graph.clone() };
        g.updates.clear();
        let loss = g.outputs.iter().find(|(n, _)| n == "loss").ok_or_else(|| err("the train graph has no loss"))?.1;
        let params: Vec<usize> =
            (0..self.model_tensors).filter(|&i| self.tensors[i].kind == TensorKind::Param).collect();
        let nodes = g.param_nodes().map_err(err)?;
        let wrt: Vec<_> = params.iter().map(|&p| nodes[p]).collect();
        let grads = crate::ir::autodiff::differentiate(&mut g, loss, &wrt).map_err(err)?;
        g.outputs = std::iter::once(("loss".to_string(), loss))
            .chain(params.iter().zip(grads).map(|(&p, id)| (format!("d_{}", self.tensors[p].name), id)))
            .collect();
        crate::ir::opt::optimize(&mut g, None).map_err(err)?;
        let compiled = jit::compile(&g, &CompileOptions::default())?;
        let feeds = g
            .inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::Data | InputKind::Label => Ok(Feed::Field {
                    name: i.name.clone(),
                    per_sample: i.shape.iter().filter_map(|d| d.known()).product(),
                }),
                InputKind::RandomKey => Ok(Feed::Key),
                InputKind::Variable | InputKind::Gradient => {
                    Err(err(format!("the loss graph has an unexpected input `{}`", i.name)))
                }
            })
            .collect::<Result<_, _>>()?;
        let outputs = std::iter::once(vec![0.0])
            .chain(params.iter().map(|&p| vec![0.0; self.tensors[p].shape.iter().product()]))
            .collect();
        Ok(Gradients { training, compiled, feeds, outputs })
    }
}

/// Every sample of `data` as one batch.
fn whole_batch(data: &Dataset) -> Batch {
    let mut batch = Batch::for_data(data, data.len());
    let all: Vec<usize> = (0..data.len()).collect();
    batch.fill(data, &all);
    batch
}
