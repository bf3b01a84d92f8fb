//! A model's forward pass compiled for inference and run over in-memory arrays in batches:
//! what `netc predict` runs on the files it reads, and the Python module on numpy arrays.

use crate::codegen::CompileOptions;
use crate::diag::Diagnostic;
use crate::drivers::jit::{self, Compiled};
use crate::frontend::checked::Model;
use crate::ir::graph::{Dim, Graph, InputKind};
use crate::ir::tensor::Tensor;

/// A model input or output as a caller sees it: its name, its shape per sample, whether its
/// first axis is the batch (`x: [B, 64]`) or it is one fixed tensor (`x: [4]`), and whether
/// it is declared `int` (`tokens: [B, 16] int`: whole numbers, carried as floats).
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub shape: Vec<usize>,
    pub batched: bool,
    pub integer: bool,
}

impl Port {
    /// Values per sample.
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The compiled forward graph of one model, with the outputs asked for.
pub struct Forward {
    graph: Graph,
    /// `None`: run with the reference interpreter.
    compiled: Option<Compiled>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

fn err(msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new("E-predict", msg)
}

impl Forward {
    /// Compile `model`'s forward graph computing `outputs` (every output when empty), in that
    /// order; with `interpreter` it runs on the reference interpreter instead of the JIT.
    pub fn new(model: &Model, outputs: &[String], interpreter: bool) -> Result<Forward, Diagnostic> {
        let mut g = model.graph.clone();
        if g.symbols.len() > 1 {
            return Err(err(format!(
                "model `{}` has several symbolic dimensions ({}); only the batch can be bound",
                model.name,
                g.symbols.join(", ")
            )));
        }
        let inputs = ports(model)?.0;
        if !outputs.is_empty() {
            let mut chosen = vec![];
            for name in outputs {
                let Some(o) = g.outputs.iter().find(|(n, _)| n == name) else {
                    let names: Vec<&str> = g.outputs.iter().map(|o| o.0.as_str()).collect();
                    return Err(err(format!(
                        "model `{}` has no output `{name}`; its outputs are: {}",
                        model.name,
                        names.join(", ")
                    )));
                };
                chosen.push(o.clone());
            }
            g.outputs = chosen;
        }
        let outputs =
            g.outputs.iter().map(|(name, id)| port(model, &g, name, g.shape(*id))).collect::<Result<_, _>>()?;
        crate::ir::opt::optimize(&mut g, None).map_err(err)?;
        let compiled = if interpreter { None } else { Some(jit::compile(&g, &CompileOptions::default())?) };
        Ok(Forward { graph: g, compiled, inputs, outputs })
    }

    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    /// Run `samples` samples through the model, `batch` at a time. `inputs[i]` holds every
    /// sample of input i (one tensor for an unbatched input), `results[j]` receives every
    /// sample of output j; `params` are the model's parameters in declaration order.
    /// `progress` is told how many samples are done after each batch.
    pub fn run(
        &mut self,
        inputs: &[&[f32]],
        samples: usize,
        batch: usize,
        params: &[Vec<f32>],
        results: &mut [&mut [f32]],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), String> {
        let rows = |p: &Port, n: usize| if p.batched { n * p.size() } else { p.size() };
        if inputs.len() != self.inputs.len() || results.len() != self.outputs.len() {
            return Err(format!(
                "{} inputs and {} outputs given; the model takes {} and gives {}",
                inputs.len(),
                results.len(),
                self.inputs.len(),
                self.outputs.len()
            ));
        }
        for (p, x) in self.inputs.iter().zip(inputs) {
            if x.len() != rows(p, samples) {
                return Err(format!(
                    "input `{}` holds {} values, {samples} samples need {}",
                    p.name,
                    x.len(),
                    rows(p, samples)
                ));
            }
        }
        for (p, y) in self.outputs.iter().zip(results.iter()) {
            if !p.batched && samples > 1 {
                return Err(format!("output `{}` has no batch axis: it cannot hold {samples} samples", p.name));
            }
            if y.len() != rows(p, samples) {
                return Err(format!(
                    "output `{}` has room for {} values, {samples} samples need {}",
                    p.name,
                    y.len(),
                    rows(p, samples)
                ));
            }
        }
        if samples == 0 && self.inputs.iter().chain(&self.outputs).all(|p| p.batched) {
            // Nothing to compute (a model with an unbatched input always has one sample).
            progress(0);
            return Ok(());
        }
        let batch = batch.clamp(1, samples.max(1));
        let mut start = 0;
        while start < samples.max(1) {
            let n = batch.min(samples.max(1) - start);
            let slice = |p: &Port, buf: &[f32]| -> std::ops::Range<usize> {
                if p.batched {
                    start * p.size()..(start + n) * p.size()
                } else {
                    0..buf.len()
                }
            };
            let xs: Vec<&[f32]> = self.inputs.iter().zip(inputs).map(|(p, x)| &x[slice(p, x)]).collect();
            let mut ys: Vec<&mut [f32]> = self
                .outputs
                .iter()
                .zip(results.iter_mut())
                .map(|(p, y)| {
                    let range = slice(p, y);
                    &mut y[range]
                })
                .collect();
            match self.compiled.as_mut() {
                Some(f) => f.run_readonly(&xs, params, &mut ys, &[n][..self.graph.symbols.len()])?,
                None => interpret(&self.graph, &xs, params, &mut ys, n)?,
            }
            start += n;
            progress(start);
        }
        Ok(())
    }
}

/// The inputs and outputs of `model`, per sample.
pub fn ports(model: &Model) -> Result<(Vec<Port>, Vec<Port>), Diagnostic> {
    let g = &model.graph;
    let mut inputs = vec![];
    for i in &g.inputs {
        if i.kind != InputKind::Data {
            return Err(err(format!("model `{}` has an input `{}` that is not data", model.name, i.name)));
        }
        inputs.push(Port { integer: i.integer, ..port(model, g, &i.name, &i.shape)? });
    }
    let outputs = g.outputs.iter().map(|(name, id)| port(model, g, name, g.shape(*id))).collect::<Result<_, _>>()?;
    Ok((inputs, outputs))
}

fn port(model: &Model, g: &Graph, name: &str, shape: &[Dim]) -> Result<Port, Diagnostic> {
    let batched = matches!(shape.first(), Some(Dim::Sym(_)));
    let rest: Option<Vec<usize>> = shape.iter().skip(usize::from(batched)).map(|d| d.known()).collect();
    let shape = rest.ok_or_else(|| {
        err(format!(
            "`{name}` of model `{}` is {}: only its first axis may be symbolic",
            model.name,
            g.shape_str(&shape.to_vec())
        ))
    })?;
    Ok(Port { name: name.to_string(), shape, batched, integer: false })
}

/// One batch on the reference interpreter (f64, rounded to f32 per op).
fn interpret(g: &Graph, xs: &[&[f32]], params: &[Vec<f32>], ys: &mut [&mut [f32]], n: usize) -> Result<(), String> {
    // The batch is the only symbolic dimension (`Forward::new` checked).
    let tensor = |shape: &[Dim], values: &[f32], batch: usize| {
        let shape = shape.iter().map(|d| d.known().unwrap_or(batch)).collect();
        Tensor::new(shape, values.iter().map(|&v| v as f64).collect())
    };
    let inputs: Vec<Tensor> = g.inputs.iter().zip(xs).map(|(info, x)| tensor(&info.shape, x, n)).collect();
    let ps: Vec<Tensor> = g.params.iter().zip(params).map(|(p, v)| tensor(&p.shape, v, 1)).collect();
    let values = crate::ir::interp::run(g, &inputs, &ps)?;
    for ((_, id), y) in g.outputs.iter().zip(ys.iter_mut()) {
        for (dst, &v) in y.iter_mut().zip(&values[id.index()].data) {
            *dst = v as f32;
        }
    }
    Ok(())
}
