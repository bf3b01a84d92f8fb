//! `netc summary FILE` (and `netc check --summary`): a per-layer table of each model, like
//! torchinfo's or Keras' `summary()` — every layer instance with its output shape, parameter
//! count and forward FLOPs per sample — and the totals: parameters (trainable, frozen by the
//! train block, and state such as batch norm's running statistics), forward FLOPs (of the
//! inference-mode graph), and the memory of one train step at the file's batch.
//!
//! FLOPs follow `netc bench`'s convention: matmuls and convolutions only, 2·M·N·K per matmul
//! and a convolution as its im2col GEMM.

use crate::codegen::{fuse, memplan};
use crate::frontend::checked::{Checked, Layer, Model, TrainDecl};
use crate::ir::graph::{Dim, Graph, ParamKind};
use crate::ir::limits::human;

/// Values of a shape with the batch bound to 1 (per sample).
fn numel(shape: &[Dim]) -> usize {
    shape.iter().map(|d| d.known().unwrap_or(1)).product()
}

/// Forward FLOPs of the matmuls and convolutions among `nodes`, per sample.
fn flops(g: &Graph, nodes: std::ops::Range<usize>) -> f64 {
    nodes.map(|i| crate::commands::bench::node_flops(g, i, 1)).sum()
}

/// `1,234,567`.
pub fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// FLOPs as `1.2 M` style text.
fn scaled(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2} G", x / 1e9),
        x if x >= 1e6 => format!("{:.2} M", x / 1e6),
        x if x >= 1e3 => format!("{:.1} k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// The parameters of a model: total values, how many of them are state (running statistics,
/// never trained: Keras' "non-trainable"), and how many trainable ones a train block freezes.
pub struct Counts {
    pub tensors: usize,
    pub values: usize,
    pub state: usize,
    pub frozen: usize,
}

pub fn counts(m: &Model, train: Option<&TrainDecl>) -> Counts {
    let g = &m.graph;
    let values = crate::commands::report::param_count(g);
    let is_state = |p: &crate::ir::graph::ParamInfo| p.kind == ParamKind::State;
    let state = g.params.iter().filter(|p| is_state(p)).map(|p| numel(&p.shape)).sum();
    let frozen = train.map_or(0, |t| {
        t.frozen.iter().map(|&i| &t.graph.params[i]).filter(|p| !is_state(p)).map(|p| numel(&p.shape)).sum()
    });
    Counts { tensors: g.params.len(), values, state, frozen }
}

/// Bytes of one train step at `batch`: parameters, optimizer state, the batch's data, the
/// outputs and the memory plan's workspace. `None` if the step cannot be built.
fn step_memory(t: &TrainDecl, batch: usize) -> Option<(usize, usize, usize, usize)> {
    let step = crate::training::optim::build(t).ok()?;
    let mut g = step.graph;
    let loss = g.outputs[step.loss_output].clone();
    g.outputs = vec![loss];
    crate::ir::opt::optimize(&mut g, None).ok()?;
    let es = g.dtype.size_bytes();
    let bytes = |shape: &[Dim]| shape.iter().map(|d| d.known().unwrap_or(batch)).product::<usize>() * es;
    let model: usize = g.params[..step.model_params].iter().map(|p| bytes(&p.shape)).sum();
    let state: usize = g.params[step.model_params..].iter().map(|p| bytes(&p.shape)).sum();
    let data: usize = g.inputs.iter().map(|i| bytes(&i.shape)).sum();
    let prog = fuse::schedule(&g).ok()?;
    let plan = memplan::plan(&prog.kernels, &prog.temps);
    let dims: Vec<usize> = g.symbols.iter().map(|_| batch).collect();
    Some((model, state, data, plan.bytes(&dims, es)))
}

/// The summary of every model of the program (or only `model`).
pub fn summary(c: &Checked, model: Option<&str>, batch: Option<usize>) -> Result<String, String> {
    let models: Vec<&Model> = c.models.iter().filter(|m| model.is_none_or(|n| m.name == n)).collect();
    if models.is_empty() {
        return Err(match model {
            Some(n) => format!("no model is named `{n}`"),
            None => "the file has no model".into(),
        });
    }
    let mut out = String::new();
    for m in models {
        let train = c.trains.iter().find(|t| t.model == m.name);
        out.push_str(&model_summary(m, train, batch));
    }
    Ok(out)
}

fn model_summary(m: &Model, train: Option<&TrainDecl>, batch: Option<usize>) -> String {
    let g = &m.graph;
    let inputs: Vec<String> = g
        .inputs
        .iter()
        .map(|i| format!("{}: {}{}", i.name, g.shape_str(&i.shape), if i.integer { " int" } else { "" }))
        .collect();
    let mut out = format!("model {}({})\n", m.name, inputs.join(", "));
    let mut rows: Vec<[String; 5]> = vec![];
    let frozen_params: std::collections::HashSet<usize> =
        train.map(|t| t.frozen.iter().copied().collect()).unwrap_or_default();
    let mut covered = vec![false; g.params.len()];
    for l in &m.layers {
        let params: usize = l.params.clone().map(|p| numel(&g.params[p].shape)).sum();
        for p in l.params.clone() {
            covered[p] = true;
        }
        let all_frozen = !l.params.is_empty() && l.params.clone().all(|p| frozen_params.contains(&p));
        let shape = l.output.map_or("-".to_string(), |o| g.shape_str(g.shape(o)));
        let indent = "  ".repeat(l.depth);
        rows.push([
            format!("{indent}{}", l.name),
            l.kind.clone() + if all_frozen { " (frozen)" } else { "" },
            shape,
            if l.depth == 0 { grouped(params) } else { format!("({})", grouped(params)) },
            scaled(layer_flops(g, l)),
        ]);
    }
    // Parameters declared in the model's own body.
    let own: Vec<usize> = (0..g.params.len()).filter(|&p| !covered[p]).collect();
    if !own.is_empty() {
        let names: Vec<&str> = own.iter().map(|&p| g.params[p].name.as_str()).collect();
        let values: usize = own.iter().map(|&p| numel(&g.params[p].shape)).sum();
        rows.push([format!("({})", names.join(", ")), "param".into(), "-".into(), grouped(values), "-".into()]);
    }
    for (name, id) in &g.outputs {
        rows.push([format!("-> {name}"), "output".into(), g.shape_str(g.shape(*id)), String::new(), String::new()]);
    }
    let header = ["layer", "kind", "output shape", "params", "FLOPs/sample"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "  {:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        )
    };
    out.push_str(&line(header));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    let counts = counts(m, train);
    let total_flops: f64 = (0..g.nodes.len()).map(|i| crate::commands::bench::node_flops(g, i, 1)).sum();
    let state = if counts.state > 0 { format!(", state {}", grouped(counts.state)) } else { String::new() };
    out.push_str(&format!(
        "  parameters: {} in {} tensors ({}); trainable {}, frozen {}{state}\n",
        grouped(counts.values),
        counts.tensors,
        human((counts.values * g.dtype.size_bytes()) as u128),
        grouped(counts.values - counts.frozen - counts.state),
        grouped(counts.frozen)
    ));
    out.push_str(&format!("  forward FLOPs per sample: {}\n", scaled(total_flops)));
    if let Some(t) = train {
        let b = batch.or(t.batch);
        match (b, b.and_then(|b| step_memory(t, b))) {
            (Some(b), Some((model, state, data, workspace))) => out.push_str(&format!(
                "  train step at batch {b}: {} (parameters {}, optimizer state {}, batch data {}, workspace {})\n",
                human((model + state + data + workspace) as u128),
                human(model as u128),
                human(state as u128),
                human(data as u128),
                human(workspace as u128)
            )),
            (None, _) => out.push_str("  train step: the batch is the whole data set (give --batch for its memory)\n"),
            (Some(_), None) => {}
        }
    }
    out
}

fn layer_flops(g: &Graph, l: &Layer) -> f64 {
    flops(g, l.nodes.clone())
}
