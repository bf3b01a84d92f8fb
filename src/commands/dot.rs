//! Graphviz pictures of a graph: forward nodes in one cluster, backward nodes in another, and
//! with values the lecture's picture — each forward edge labelled with the value it carries
//! (green) and the gradient of the output with respect to it (red).

use std::collections::HashMap;
use std::fmt::Write;

use crate::ir::graph::{Graph, NodeId, Op};
use crate::ir::tensor::{format_number, Tensor};

/// What to write on the edges: node values, and gradients of the forward nodes.
pub struct EdgeValues<'a> {
    pub values: &'a [Tensor],
    pub grads: HashMap<NodeId, &'a Tensor>,
}

/// A short label for a value: the number for a scalar, else shape and L2 norm.
pub fn summarize(t: &Tensor) -> String {
    if t.numel() == 1 {
        format_number(t.data[0])
    } else {
        let norm = t.data.iter().map(|x| x * x).sum::<f64>().sqrt();
        format!("{:?} ‖·‖={}", t.shape, format_number(norm))
    }
}

fn gate_label(g: &Graph, op: &Op) -> String {
    match op {
        Op::Add => "+".into(),
        Op::Sub => "−".into(),
        Op::Mul => "*".into(),
        Op::Div => "/".into(),
        Op::Max => "max".into(),
        Op::Min => "min".into(),
        Op::Neg => "−x".into(),
        Op::Pow => "^".into(),
        Op::MatMul { transpose_a: false, transpose_b: false, .. } => "@".into(),
        other => crate::ir::ops::describe(other, g),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// DOT text for `g`; nodes from `backward_start` on are drawn as the backward graph.
pub fn to_dot(g: &Graph, backward_start: usize, values: Option<&EdgeValues>) -> String {
    let mut out = String::from("digraph netc {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
    let clusters = [
        ("forward", 0..backward_start.min(g.nodes.len())),
        ("backward", backward_start.min(g.nodes.len())..g.nodes.len()),
    ];
    for (name, range) in clusters {
        if range.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  subgraph cluster_{name} {{\n    label=\"{name}\"; color=\"#999999\";");
        for i in range {
            let node = &g.nodes[i];
            let (label, shape) = match &node.op {
                Op::Input { .. } | Op::Param { .. } => (node.name.clone().unwrap_or_default(), "box"),
                Op::Const { value } => (format_number(*value), "plaintext"),
                op => {
                    let gate = gate_label(g, op);
                    match &node.name {
                        Some(n) => (format!("{gate}\n{n}"), "ellipse"),
                        None => (gate, "ellipse"),
                    }
                }
            };
            let _ = writeln!(out, "    n{i} [label=\"{}\", shape={shape}];", escape(&label).replace('\n', "\\n"));
        }
        out.push_str("  }\n");
    }
    for (i, node) in g.nodes.iter().enumerate() {
        for &input in &node.inputs {
            let forward_edge = i < backward_start;
            let label = match values {
                Some(v) if forward_edge => {
                    let val = v.values.get(input.index()).map(summarize).unwrap_or_default();
                    let grad = v.grads.get(&input).map(|t| summarize(t)).unwrap_or_default();
                    format!(
                        " [label=<<font color=\"darkgreen\">{}</font><br/><font color=\"red\">{}</font>>]",
                        escape(&val),
                        escape(&grad)
                    )
                }
                _ => String::new(),
            };
            let _ = writeln!(out, "  n{} -> n{i}{label};", input.index());
        }
    }
    for (name, id) in &g.outputs {
        let label = match values {
            Some(v) => format!(
                " [label=<<font color=\"darkgreen\">{}</font><br/><font color=\"red\">{}</font>>]",
                escape(&v.values.get(id.index()).map(summarize).unwrap_or_default()),
                escape(&v.grads.get(id).map(|t| summarize(t)).unwrap_or_default())
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  out_{i} [label=\"{}\", shape=plaintext];\n  n{i} -> out_{i}{label};",
            escape(name),
            i = id.index()
        );
    }
    out.push_str("}\n");
    out
}
