//! The JIT engine of training runs: the optimised train step and loss graph compiled with
//! Cranelift (`jit`), called on the loop's f32 buffers with no allocation per step.

use crate::codegen::CompileOptions;
use crate::diag::Diagnostic;
use crate::drivers::jit::{self, Compiled};
use crate::ir::graph::{Graph, InputKind};
use crate::runtime::data::Batch;
use crate::training::{field_input, Counter, Engine, Evaluation, TrainGraphs};

/// One input of a compiled graph: a data field (by name, with its values per sample), the
/// learning rate or the random key.
enum Feed {
    Field { name: String, per_sample: usize },
    Lr,
    Key,
}

/// One compiled graph with the output buffers it writes.
struct Function {
    compiled: Compiled,
    feeds: Vec<Feed>,
    output_names: Vec<String>,
    /// Elements per batch row and fixed elements of each output: len = a·n + b.
    output_sizes: Vec<(usize, usize)>,
    outputs: Vec<Vec<f32>>,
    /// The scalar inputs of the next call: the learning rate and the random key.
    lr: Vec<f32>,
    key: Vec<f32>,
}

impl Function {
    fn new(mut g: Graph, keep_outputs: usize, opts: &CompileOptions) -> Result<Function, Diagnostic> {
        g.outputs.truncate(keep_outputs);
        crate::ir::opt::optimize(&mut g, None).map_err(|e| Diagnostic::new("E-codegen", e))?;
        if g.symbols.len() > 1 {
            return Err(Diagnostic::new("E-codegen", "training binds one symbolic dimension (the batch)"));
        }
        let output_sizes = g
            .outputs
            .iter()
            .map(|(_, id)| {
                let shape = g.shape(*id);
                let fixed: usize = shape.iter().filter_map(|d| d.known()).product();
                let per_row = shape.iter().any(|d| d.known().is_none());
                if per_row {
                    (fixed, 0)
                } else {
                    (0, fixed)
                }
            })
            .collect();
        let compiled = jit::compile(&g, opts)?;
        let feeds = g
            .inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::Data | InputKind::Label => {
                    Feed::Field { name: i.name.clone(), per_sample: i.shape.iter().filter_map(|d| d.known()).product() }
                }
                InputKind::RandomKey => Feed::Key,
                InputKind::Variable | InputKind::Gradient => Feed::Lr,
            })
            .collect();
        Ok(Function {
            compiled,
            feeds,
            output_names: g.outputs.iter().map(|o| o.0.clone()).collect(),
            outputs: vec![vec![]; g.outputs.len()],
            output_sizes,
            lr: vec![0.0],
            key: vec![0.0; crate::ir::ops::random::KEY_LEN],
        })
    }

    /// The graph's inputs for a batch: each field's first `n` samples, the learning rate, the
    /// random key.
    fn inputs<'a>(feeds: &[Feed], lr: &'a [f32], key: &'a [f32], batch: &'a Batch) -> Result<Vec<&'a [f32]>, String> {
        feeds
            .iter()
            .map(|f| match f {
                Feed::Field { name, per_sample } => field_input(batch, name, batch.n * per_sample),
                Feed::Lr => Ok(lr),
                Feed::Key => Ok(key),
            })
            .collect()
    }

    fn call(&mut self, batch: &Batch, params: &mut [Vec<f32>]) -> Result<(), String> {
        self.size_outputs(batch.n);
        let inputs = Function::inputs(&self.feeds, &self.lr, &self.key, batch)?;
        self.compiled.run(&inputs, params, &mut self.outputs, &[batch.n])
    }

    fn call_readonly(&mut self, batch: &Batch, params: &[Vec<f32>]) -> Result<(), String> {
        self.size_outputs(batch.n);
        let inputs = Function::inputs(&self.feeds, &self.lr, &self.key, batch)?;
        self.compiled.run_readonly(&inputs, params, &mut self.outputs, &[batch.n])
    }

    fn size_outputs(&mut self, n: usize) {
        for (buf, &(a, b)) in self.outputs.iter_mut().zip(&self.output_sizes) {
            buf.resize(a * n + b, 0.0);
        }
    }
}

pub struct Jit {
    step: Function,
    eval: Evaluator,
}

/// The compiled loss graph (model forward + loss): what `Engine::evaluate` runs.
pub struct Evaluator {
    eval: Function,
    model_params: usize,
}

impl Evaluator {
    /// Compile the loss graph of a model with `model_params` parameters.
    pub fn new(loss_graph: Graph, model_params: usize, opts: &CompileOptions) -> Result<Evaluator, Diagnostic> {
        let outputs = loss_graph.outputs.len();
        Ok(Evaluator { eval: Function::new(loss_graph, outputs, opts)?, model_params })
    }

    /// The loss and the model's outputs for a batch.
    pub fn evaluate(&mut self, batch: &Batch, params: &[Vec<f32>]) -> Result<Evaluation, String> {
        // The loss graph reads the model's parameters only (no updates): lend them as they are.
        self.eval.call_readonly(batch, &params[..self.model_params])?;
        let outputs = self.eval.output_names[1..].iter().cloned().zip(self.eval.outputs[1..].iter().cloned()).collect();
        Ok(Evaluation { loss: self.eval.outputs[0][0], outputs })
    }

    pub fn stats(&self) -> crate::drivers::jit::Stats {
        self.eval.compiled.stats()
    }
}

/// Compile the program's train step and loss graph with the default options (Cranelift's IR
/// verifier runs in debug builds, so in tests, and not in release builds).
pub fn jit_engine(program: TrainGraphs, _stats: bool) -> Result<Box<dyn Engine + Send>, Diagnostic> {
    jit_engine_with(program, &CompileOptions::default())
}

/// `jit_engine` with these options (e.g. `checked`).
pub fn jit_engine_with(program: TrainGraphs, opts: &CompileOptions) -> Result<Box<dyn Engine + Send>, Diagnostic> {
    let loss_output = program.step.loss_output;
    let mut step_graph = program.step.graph;
    // The step needs only the loss out; its updates write the parameters.
    let loss = step_graph.outputs[loss_output].clone();
    step_graph.outputs = vec![loss];
    let step = Function::new(step_graph, 1, opts)?;
    let eval = Evaluator::new(program.loss_graph, program.step.model_params, opts)?;
    Ok(Box::new(Jit { step, eval }))
}

impl Engine for Jit {
    fn step(&mut self, batch: &Batch, lr: f32, counter: Counter, params: &mut [Vec<f32>]) -> Result<f32, String> {
        self.step.lr[0] = lr;
        self.step.key.copy_from_slice(&counter.key_f32());
        self.step.call(batch, params)?;
        Ok(self.step.outputs[0][0])
    }

    fn evaluate(&mut self, batch: &Batch, params: &[Vec<f32>]) -> Result<Evaluation, String> {
        self.eval.evaluate(batch, params)
    }

    fn step_profile(&mut self) -> Vec<(String, f64)> {
        self.step.compiled.profile_summaries()
    }

    fn stats(&self) -> String {
        let s = self.step.compiled.stats();
        let e = self.eval.stats();
        format!(
            "train step: compiled in {:.1} ms, {} kernels, workspace {} bytes planned vs {} for every intermediate\n\
             evaluation: compiled in {:.1} ms, {} kernels",
            s.compile_ms, s.kernels, s.planned_bytes, s.naive_bytes, e.compile_ms, e.kernels
        )
    }
}
