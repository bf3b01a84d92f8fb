//! The JIT engine of training runs: the optimised train step and loss graph compiled with
//! Cranelift (`jit`), called on the loop's f32 buffers with no allocation per step.

use crate::codegen::CompileOptions;
use crate::diag::Diagnostic;
use crate::drivers::jit::{self, Compiled};
use crate::ir::graph::{Graph, InputKind};
use crate::training::{Counter, Engine, TrainGraphs};

/// One compiled graph with the output buffers it writes.
struct Function {
    compiled: Compiled,
    graph_inputs: Vec<InputKind>,
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
        Ok(Function {
            compiled,
            graph_inputs: g.inputs.iter().map(|i| i.kind).collect(),
            outputs: vec![vec![]; g.outputs.len()],
            output_sizes,
            lr: vec![0.0],
            key: vec![0.0; crate::ir::ops::random::KEY_LEN],
        })
    }

    fn call(&mut self, x: &[f32], y: &[f32], n: usize, x_row: usize, params: &mut [Vec<f32>]) -> Result<(), String> {
        self.size_outputs(n);
        let inputs = batch_inputs(&self.graph_inputs, &self.lr, &self.key, x, y, n, x_row);
        self.compiled.run(&inputs, params, &mut self.outputs, &[n])
    }

    fn call_readonly(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        x_row: usize,
        params: &[Vec<f32>],
    ) -> Result<(), String> {
        self.size_outputs(n);
        let inputs = batch_inputs(&self.graph_inputs, &self.lr, &self.key, x, y, n, x_row);
        self.compiled.run_readonly(&inputs, params, &mut self.outputs, &[n])
    }

    fn size_outputs(&mut self, n: usize) {
        for (buf, &(a, b)) in self.outputs.iter_mut().zip(&self.output_sizes) {
            buf.resize(a * n + b, 0.0);
        }
    }
}

/// A graph's inputs for a batch of `n`: data `x`, labels `y`, the learning rate, the key.
fn batch_inputs<'a>(
    kinds: &[InputKind],
    lr: &'a [f32],
    key: &'a [f32],
    x: &'a [f32],
    y: &'a [f32],
    n: usize,
    x_row: usize,
) -> Vec<&'a [f32]> {
    kinds
        .iter()
        .map(|k| match k {
            InputKind::Data => &x[..n * x_row],
            InputKind::Label => &y[..n],
            InputKind::RandomKey => key,
            InputKind::Variable | InputKind::Gradient => lr,
        })
        .collect()
}

pub struct Jit {
    step: Function,
    eval: Function,
    model_params: usize,
    x_row: usize,
}

/// Compile the program's train step and loss graph with the default options (Cranelift's IR
/// verifier runs in debug builds, so in tests, and not in release builds).
pub fn jit_engine(program: TrainGraphs, _stats: bool) -> Result<Box<dyn Engine>, Diagnostic> {
    jit_engine_with(program, &CompileOptions::default())
}

/// `jit_engine` with these options (e.g. `checked`).
pub fn jit_engine_with(program: TrainGraphs, opts: &CompileOptions) -> Result<Box<dyn Engine>, Diagnostic> {
    let x_row = program
        .step
        .graph
        .inputs
        .iter()
        .find(|i| i.kind == InputKind::Data)
        .map(|i| i.shape[1..].iter().filter_map(|d| d.known()).product())
        .unwrap_or(0);
    let loss_output = program.step.loss_output;
    let mut step_graph = program.step.graph;
    // The step needs only the loss out; its updates write the parameters.
    let loss = step_graph.outputs[loss_output].clone();
    step_graph.outputs = vec![loss];
    let step = Function::new(step_graph, 1, opts)?;
    // Evaluation: the loss and the model's first output (the scores).
    let eval = Function::new(program.loss_graph, 2, opts)?;
    Ok(Box::new(Jit { step, eval, model_params: program.step.model_params, x_row }))
}

impl Engine for Jit {
    fn step(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        lr: f32,
        counter: Counter,
        params: &mut [Vec<f32>],
    ) -> Result<f32, String> {
        self.step.lr[0] = lr;
        self.step.key.copy_from_slice(&counter.key_f32());
        self.step.call(x, y, n, self.x_row, params)?;
        Ok(self.step.outputs[0][0])
    }

    fn evaluate(&mut self, x: &[f32], y: &[f32], n: usize, params: &[Vec<f32>]) -> Result<(f32, Vec<f32>), String> {
        // The loss graph reads the model's parameters only (no updates): lend them as they are.
        self.eval.call_readonly(x, y, n, self.x_row, &params[..self.model_params])?;
        let scores = self.eval.outputs.get(1).cloned().unwrap_or_default();
        Ok((self.eval.outputs[0][0], scores))
    }

    fn step_profile(&mut self) -> Vec<(String, f64)> {
        self.step.compiled.profile_summaries()
    }

    fn stats(&self) -> String {
        let s = self.step.compiled.stats();
        let e = self.eval.compiled.stats();
        format!(
            "train step: compiled in {:.1} ms, {} kernels, workspace {} bytes planned vs {} for every intermediate\n\
             evaluation: compiled in {:.1} ms, {} kernels",
            s.compile_ms, s.kernels, s.planned_bytes, s.naive_bytes, e.compile_ms, e.kernels
        )
    }
}
