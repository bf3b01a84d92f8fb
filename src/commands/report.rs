//! Human-readable summaries of checked programs (`netc check`).

use crate::frontend::checked::{Checked, Length, Source};
use crate::ir::graph::Graph;

/// Number of values in the parameters of a graph (symbolic dims never occur in parameters).
/// Elements of a parameter's (fully known) shape.
pub fn elements(shape: &crate::ir::graph::Shape) -> usize {
    shape.iter().map(|d| d.known().unwrap_or(1)).product()
}

pub fn param_count(g: &Graph) -> usize {
    // Shapes are checked to at most 2^48 elements each, so this cannot overflow in practice;
    // saturate anyway rather than trust every caller.
    g.params
        .iter()
        .map(|p| p.shape.iter().map(|d| d.known().unwrap_or(0)).fold(1usize, |a, n| a.saturating_mul(n)))
        .fold(0usize, |a, n| a.saturating_add(n))
}

pub fn summary(c: &Checked) -> String {
    let mut out = String::new();
    for m in &c.models {
        let g = &m.graph;
        out.push_str(&format!("model {}\n", m.name));
        for i in &g.inputs {
            let elem = if i.integer { " int" } else { "" };
            out.push_str(&format!("  input  {}: {}{elem}\n", i.name, g.shape_str(&i.shape)));
        }
        for (name, id) in &g.outputs {
            out.push_str(&format!("  output {}: {}\n", name, g.shape_str(g.shape(*id))));
        }
        let state = g.params.iter().filter(|p| p.kind == crate::ir::graph::ParamKind::State).count();
        let of_state = if state > 0 { format!(" ({state} of them state)") } else { String::new() };
        out.push_str(&format!("  parameters: {} tensors{of_state}, {} values\n", g.params.len(), param_count(g)));
        for p in &g.params {
            // State (running statistics) is saved with the parameters but not trained.
            let state = if p.kind == crate::ir::graph::ParamKind::State { "  (state)" } else { "" };
            out.push_str(&format!("    {} {}{state}\n", p.name, g.shape_str(&p.shape)));
        }
    }
    for d in &c.data {
        let Some(source) = &d.source else {
            let fields: Vec<String> = d
                .fields
                .iter()
                .map(|f| {
                    let shape = f.shape.as_ref().map(|s| format!(" {s:?}")).unwrap_or_default();
                    // An undeclared type is the type of the model input the field feeds.
                    let declared = format!("{}{shape}", f.ty.map_or("", |t| t.name()));
                    match declared.trim() {
                        "" => format!("{} ({})", f.name, f.file.path()),
                        d => format!("{} ({d}, {})", f.name, f.file.path()),
                    }
                })
                .collect();
            out.push_str(&format!("data {}: {}\n", d.name, fields.join(", ")));
            continue;
        };
        let src = match source {
            Source::Spiral { points, classes, .. } => {
                format!("spiral, {} points in {classes} classes", points * classes)
            }
            Source::Synthetic { samples, classes, .. } => format!("synthetic, {samples} samples in {classes} classes"),
            Source::Csv { path, label, .. } => format!("csv {path} (label column `{label}`)"),
            Source::Npy { features, labels, .. } => format!("npy {features}, {labels}"),
            Source::Idx { images, labels, .. } => format!("idx {images}, {labels}"),
        };
        out.push_str(&format!("data {}: {src}\n", d.name));
    }
    for t in &c.trains {
        let len = match t.length {
            Length::Steps(s) => format!("{s} steps"),
            Length::Epochs(e) => format!("{e} epochs"),
        };
        let name = if t.name == t.model { String::new() } else { format!(" ({})", t.name) };
        out.push_str(&format!("train {}{name}: {:?}, {len}\n", t.model, t.optimizer));
    }
    for e in &c.evals {
        out.push_str(&format!(
            "eval {}: {} values, {} gradient requests\n",
            e.name.as_deref().unwrap_or("(unnamed)"),
            e.shows.len(),
            e.grads.len()
        ));
    }
    out
}
