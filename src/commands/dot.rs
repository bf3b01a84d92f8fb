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

/// Indexing `w[i, j]` lowers to one-element slices along axes 0, 1, … and a reshape that drops
/// those axes. For such a reshape: the indexed value and the indices, and the slice nodes to
/// hide (each read by the next one only), so the picture shows one `w[i, j]` node.
fn index_chain(g: &Graph, id: usize, readers: &[usize]) -> Option<(NodeId, Vec<usize>, Vec<usize>)> {
    let node = &g.nodes[id];
    let Op::Reshape { .. } = node.op else { return None };
    let mut slices = vec![];
    let mut indices = vec![];
    let mut cur = node.inputs[0];
    while let Op::Slice { axis, start, len: 1, step: 1 } = g.node(cur).op {
        if readers[cur.index()] != 1 {
            return None;
        }
        slices.push(cur.index());
        indices.push((axis, start));
        cur = g.node(cur).inputs[0];
    }
    indices.reverse();
    let in_order = indices.iter().enumerate().all(|(k, &(axis, _))| axis == k);
    let base_rank = g.shape(cur).len();
    if slices.is_empty() || !in_order || node.shape.len() + indices.len() != base_rank {
        return None;
    }
    Some((cur, indices.into_iter().map(|(_, i)| i).collect(), slices))
}

/// DOT text for `g`; nodes from `backward_start` on are drawn as the backward graph.
pub fn to_dot(g: &Graph, backward_start: usize, values: Option<&EdgeValues>) -> String {
    let mut readers = vec![0usize; g.nodes.len()];
    for node in &g.nodes {
        for input in &node.inputs {
            readers[input.index()] += 1;
        }
    }
    let mut hidden = vec![false; g.nodes.len()];
    let mut indexed: HashMap<usize, (NodeId, String)> = HashMap::new();
    for i in 0..g.nodes.len().min(backward_start) {
        if let Some((base, indices, slices)) = index_chain(g, i, &readers) {
            let name = g.node(base).name.clone().unwrap_or_else(|| base.to_string());
            let list: Vec<String> = indices.iter().map(|i| i.to_string()).collect();
            indexed.insert(i, (base, format!("{name}[{}]", list.join(", "))));
            for s in slices {
                hidden[s] = true;
            }
        }
    }
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
            if hidden[i] {
                continue;
            }
            let node = &g.nodes[i];
            let (label, shape) = match &node.op {
                _ if indexed.contains_key(&i) => (indexed[&i].1.clone(), "ellipse"),
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
        if hidden[i] {
            continue;
        }
        let inputs = match indexed.get(&i) {
            Some((base, _)) => vec![*base],
            None => node.inputs.clone(),
        };
        for &input in &inputs {
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
