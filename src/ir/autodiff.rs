//! Symbolic reverse-mode differentiation. Input: a graph, a value `of` and the leaves `wrt`;
//! output: the same graph with the backward nodes appended, computing dof/dwrt.
//!
//! The walk visits nodes in reverse topological order (decreasing ids). A node's gradient is
//! complete when it is reached, because every consumer has a larger id. Each op's rule in
//! `ops::vjp` gives local gradient × upstream gradient; this driver sums the gradients of
//! values used more than once and un-broadcasts gradients of broadcast operands. Everything is
//! IR: the backward graph can be printed, optimised, compiled, or differentiated again.

use crate::ir::graph::{Graph, InputKind, NodeId, Op};
use crate::ir::ops::{self, Vjp};

/// What `backward` appended to the graph.
#[derive(Clone, Debug)]
pub struct Backward {
    /// One gradient node per `wrt`, in order, each with its `wrt` node's shape.
    pub grads: Vec<NodeId>,
    /// Id of the first appended node: the nodes before it are the forward graph.
    pub start: usize,
    /// The upstream gradient dL/dof: `Const 1` for a scalar `of`, otherwise a new input of
    /// kind `InputKind::Gradient` (the caller supplies it, as for a vector-Jacobian product).
    pub seed: NodeId,
}

/// Append the backward graph of `of` with respect to `wrt`; returns one gradient node per
/// `wrt` (a broadcast zero when `of` does not depend on it). See [`backward`].
pub fn differentiate(g: &mut Graph, of: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, String> {
    Ok(backward(g, of, wrt)?.grads)
}

/// Like [`differentiate`], also saying where the backward part starts and what seeds it.
pub fn backward(g: &mut Graph, of: NodeId, wrt: &[NodeId]) -> Result<Backward, String> {
    let n = g.nodes.len();
    if let Some(bad) = std::iter::once(&of).chain(wrt).find(|id| id.index() >= n) {
        return Err(format!("differentiate: {bad} is not a node of the graph"));
    }
    for &w in wrt {
        if let Op::Input { index } = g.node(w).op {
            if g.inputs.get(index).is_some_and(|i| i.integer) {
                return Err(format!(
                    "differentiate: `{}` is an integer input, which has no gradient",
                    g.inputs[index].name
                ));
            }
        }
    }
    let start = n;
    let needed = on_a_path(g, of, wrt);

    let of_shape = g.shape(of).clone();
    let seed = if of_shape.is_empty() {
        g.constant(1.0)
    } else {
        let name = unique_input_name(g, &format!("d_{}", g.node(of).name.as_deref().unwrap_or("out")));
        g.add_input(&name, of_shape, InputKind::Gradient)
    };

    // grads[i]: the sum so far of the gradients flowing into forward node i.
    let mut grads: Vec<Option<NodeId>> = vec![None; n];
    if needed[of.index()] {
        grads[of.index()] = Some(seed);
    }
    for i in (0..=of.index()).rev() {
        let Some(gi) = grads[i] else { continue };
        name_gradient(g, NodeId(i as u32), gi, start);
        let node = g.nodes[i].clone();
        let wanted: Vec<bool> = node.inputs.iter().map(|x| needed[x.index()]).collect();
        if !wanted.iter().any(|&w| w) {
            continue;
        }

        // Local gradient × upstream gradient, by the op's rule; drop what is not wanted.
        let mark = g.nodes.len();
        let mut cx = Vjp { graph: g, span: node.span };
        let mut local = ops::vjp(&mut cx, gi, &node.inputs, NodeId(i as u32), &node.op)
            .map_err(|e| format!("differentiating %{i} ({}): {e}", ops::describe(&node.op, g)))?;
        if local.len() != node.inputs.len() {
            return Err(format!("the rule for {} gave {} gradients", ops::describe(&node.op, g), local.len()));
        }
        for (d, &w) in local.iter_mut().zip(&wanted) {
            if !w {
                *d = None;
            }
        }
        drop_unused_tail(g, mark, &mut local);

        // Un-broadcast to the operand's shape, and sum over the operand's uses.
        for (&x, d) in node.inputs.iter().zip(local) {
            let Some(d) = d else { continue };
            let x_shape = g.shape(x).clone();
            let mut cx = Vjp { graph: g, span: node.span };
            let d = cx.sum_to(d, &x_shape)?;
            if g.shape(d) != &x_shape {
                return Err(format!(
                    "the rule for {} gave a gradient of shape {} for an operand of shape {}",
                    ops::describe(&node.op, g),
                    g.shape_str(g.shape(d)),
                    g.shape_str(&x_shape)
                ));
            }
            grads[x.index()] = Some(match grads[x.index()] {
                None => d,
                Some(sum) => Vjp { graph: g, span: node.span }.add(sum, d)?,
            });
        }
    }

    // Leaves that `of` does not depend on get an explicit zero gradient.
    let mut out = Vec::with_capacity(wrt.len());
    for &w in wrt {
        let d = match grads[w.index()] {
            Some(d) => d,
            None => {
                let shape = g.shape(w).clone();
                Vjp { graph: g, span: None }.fill(0.0, shape)?
            }
        };
        name_gradient(g, w, d, start);
        out.push(d);
    }
    Ok(Backward { grads: out, start, seed })
}

/// Which nodes lie on a path from some `wrt` to `of`: only they need gradients.
fn on_a_path(g: &Graph, of: NodeId, wrt: &[NodeId]) -> Vec<bool> {
    let n = g.nodes.len();
    // Forward: depends on a wrt node.
    let mut from_wrt = vec![false; n];
    for &w in wrt {
        from_wrt[w.index()] = true;
    }
    for i in 0..n {
        if g.nodes[i].inputs.iter().any(|x| from_wrt[x.index()]) {
            from_wrt[i] = true;
        }
    }
    // Backward: `of` depends on it.
    let mut to_of = vec![false; n];
    to_of[of.index()] = true;
    for i in (0..=of.index()).rev() {
        if to_of[i] {
            for x in &g.nodes[i].inputs {
                to_of[x.index()] = true;
            }
        }
    }
    (0..n).map(|i| from_wrt[i] && to_of[i]).collect()
}

/// A rule builds every operand's gradient; remove the nodes it appended (from `mark` on) that
/// no kept gradient uses, renumbering the rest, so unwanted gradients (e.g. of a constant)
/// never show up in the backward graph.
fn drop_unused_tail(g: &mut Graph, mark: usize, kept: &mut [Option<NodeId>]) {
    let tail = g.nodes.len() - mark;
    let mut live = vec![false; tail];
    for id in kept.iter().flatten() {
        if id.index() >= mark {
            live[id.index() - mark] = true;
        }
    }
    for k in (0..tail).rev() {
        if live[k] {
            for x in &g.nodes[mark + k].inputs {
                if x.index() >= mark {
                    live[x.index() - mark] = true;
                }
            }
        }
    }
    if live.iter().all(|&l| l) {
        return;
    }
    let appended: Vec<_> = g.nodes.drain(mark..).collect();
    let mut renumber = vec![None; tail];
    let remap = |renumber: &[Option<NodeId>], x: NodeId| {
        if x.index() >= mark {
            renumber[x.index() - mark].expect("live nodes only use live nodes")
        } else {
            x
        }
    };
    for (k, mut node) in appended.into_iter().enumerate() {
        if live[k] {
            node.inputs = node.inputs.iter().map(|&x| remap(&renumber, x)).collect();
            renumber[k] = Some(g.push(node));
        }
    }
    for id in kept.iter_mut().flatten() {
        *id = remap(&renumber, *id);
    }
}

/// Name the gradient of a named forward value `d_<name>`, if the gradient is a backward node
/// that has no name yet (a gradient shared by several values keeps the first name).
fn name_gradient(g: &mut Graph, forward: NodeId, grad: NodeId, start: usize) {
    if grad.index() < start {
        return;
    }
    if let Some(name) = g.node(forward).name.clone() {
        let span = g.node(forward).span;
        g.annotate(grad, Some(&format!("d_{name}")), span);
    }
}

/// `base`, or `base2`, `base3`, ... if an input of that name exists (differentiating twice).
fn unique_input_name(g: &Graph, base: &str) -> String {
    let taken = |name: &str| g.inputs.iter().any(|i| i.name == name);
    if !taken(base) {
        return base.to_string();
    }
    (2..).map(|k| format!("{base}{k}")).find(|n| !taken(n)).expect("some suffix is free")
}
