//! The gradient of a loop (`Op::Loop`), the driver's one multi-result case: a backward loop
//! over the same steps in the opposite order.
//!
//! Forward: c_{t+1}, y_t = f(c_t, x_t, w) for t = 0 … T−1 (carries c, per-step inputs x,
//! invariants w). Given the upstream gradients of the final carries (dc_T) and of the stacked
//! per-step outputs (dy_t), the backward loop runs t = T−1 … 0 with
//!
//! ```text
//! carries    dc (starts at dc_T, or 0), dw_acc (starts at dw so far, or 0)
//! per step   c_t, x_t, dy_t  →  dx_t (stacked like x)
//! body       (dc_t, dx_t, dw_t) = VJP of f at (c_t, x_t, w) with seeds (dc, dy_t)
//!            dc ← dc_t;  dw_acc ← dw_acc + dw_t
//! ```
//!
//! after which d(c_0) = dc, dw = dw_acc (the sum over steps of a weight shared by every step,
//! added onto the gradient w had from later uses, in step order)
//! and dx is the stack of dx_t. The body is `backward_seeded` applied to a copy of f: it
//! recomputes the step from c_t rather than storing its inner values. The c_t themselves are
//! kept: the forward loop is given an extra stacked output per carry, the carries entering
//! each step (memory O(T · state)). The backward loop is an ordinary loop, so it can be
//! differentiated again (second derivatives through loops).

use std::collections::HashMap;
use std::rc::Rc;

use super::backward_seeded;
use crate::ir::graph::{Graph, InputKind, LoopSpec, Node, NodeId, Op, Slicing};
use crate::ir::ops::Vjp;

/// The siblings of every loop among the first `n` nodes of a graph, by (spec, operands).
pub(super) struct Groups(HashMap<(usize, Vec<NodeId>), Vec<NodeId>>);

impl Groups {
    pub(super) fn new(g: &Graph, n: usize) -> Groups {
        let mut groups: HashMap<(usize, Vec<NodeId>), Vec<NodeId>> = HashMap::new();
        for (i, node) in g.nodes[..n].iter().enumerate() {
            if let Op::Loop { spec, .. } = &node.op {
                groups.entry((Rc::as_ptr(spec) as usize, node.inputs.clone())).or_default().push(NodeId(i as u32));
            }
        }
        Groups(groups)
    }

    /// The siblings of loop node `i` (itself included), in id order.
    pub(super) fn of(&self, g: &Graph, i: usize) -> Vec<NodeId> {
        let node = &g.nodes[i];
        let Op::Loop { spec, .. } = &node.op else { return vec![] };
        self.0.get(&(Rc::as_ptr(spec) as usize, node.inputs.clone())).cloned().unwrap_or_default()
    }
}

/// The number of results of the loop of node `i`.
pub(super) fn outputs(g: &Graph, i: usize) -> usize {
    match &g.nodes[i].op {
        Op::Loop { spec, .. } => spec.outputs(),
        _ => 0,
    }
}

/// The index of the loop of node `i`'s first invariant operand.
pub(super) fn first_invariant(g: &Graph, i: usize) -> usize {
    match &g.nodes[i].op {
        Op::Loop { spec, .. } => spec.carries + spec.sliced.len(),
        _ => 0,
    }
}

/// The gradient of every operand of the loop of node `id` (`None` where not `wanted`), given
/// the upstream gradient of each of its results (`None`: zero). `running[k]`, for an
/// invariant operand k, is its gradient so far (`None`: zero): the backward loop accumulates
/// onto it, so the result for k includes it.
pub(super) fn vjp(
    g: &mut Graph,
    id: NodeId,
    upstream: &[Option<NodeId>],
    wanted: &[bool],
    running: &[Option<NodeId>],
) -> Result<Vec<Option<NodeId>>, String> {
    let stacks = carry_stacks(g, id)?;
    let node = g.node(id).clone();
    let Op::Loop { spec, .. } = &node.op else { return Err("not a loop".into()) };
    let spec = spec.clone();
    let body = &spec.body;
    let (nc, ns, ni) = (spec.carries, spec.sliced.len(), spec.invariants());
    let dy: Vec<(usize, NodeId)> =
        (0..spec.stacked.len()).filter_map(|k| upstream.get(nc + k).copied().flatten().map(|d| (k, d))).collect();
    let wanted_x: Vec<usize> = (0..ns).filter(|&i| wanted[nc + i]).collect();
    let wanted_w: Vec<usize> = (0..ni).filter(|&i| wanted[nc + ns + i]).collect();

    // The backward body's inputs: carries (dc, dw_acc), per step (c_t, x_t, dy_t), invariants.
    let mut bb = Graph::new(g.dtype);
    bb.symbols = g.symbols.clone();
    let info = |k: usize| (body.inputs[k].name.clone(), body.inputs[k].shape.clone());
    let input = |bb: &mut Graph, (name, shape): (String, crate::ir::graph::Shape)| {
        bb.add_input(&name, shape, InputKind::Variable)
    };
    let dc: Vec<NodeId> = (0..nc).map(|j| input(&mut bb, (format!("d_{}", info(j).0), info(j).1))).collect();
    let acc: Vec<NodeId> =
        wanted_w.iter().map(|&i| input(&mut bb, (format!("d_{}", info(nc + ns + i).0), info(nc + ns + i).1))).collect();
    let c: Vec<NodeId> = (0..nc).map(|j| input(&mut bb, info(j))).collect();
    let x: Vec<NodeId> = (0..ns).map(|i| input(&mut bb, info(nc + i))).collect();
    let dys: Vec<NodeId> = dy
        .iter()
        .map(|&(k, _)| {
            let (name, out) = &body.outputs[nc + k];
            input(&mut bb, (format!("d_{name}"), body.shape(*out).clone()))
        })
        .collect();
    let w: Vec<NodeId> = (0..ni).map(|i| input(&mut bb, info(nc + ns + i))).collect();
    let start = bb.nodes.len();

    // The step recomputed from c_t (a copy of the forward body), and its VJP.
    let body_inputs: Vec<NodeId> = c.iter().chain(&x).chain(&w).copied().collect();
    let map = copy_into(&mut bb, body, &body_inputs)?;
    let at = |k: usize| map[spec.output_node(k).index()];
    let mut seeds: Vec<(NodeId, NodeId)> = (0..nc).map(|j| (at(j), dc[j])).collect();
    seeds.extend(dy.iter().zip(&dys).map(|(&(k, _), &d)| (at(nc + k), d)));
    let wrt: Vec<NodeId> =
        c.iter().copied().chain(wanted_x.iter().map(|&i| x[i])).chain(wanted_w.iter().map(|&i| w[i])).collect();
    // The accumulators start the weights' gradients: dw_acc + dw_t, terms in walk order.
    let initial: Vec<(NodeId, NodeId)> = wanted_w.iter().zip(&acc).map(|(&i, &a)| (w[i], a)).collect();
    let grads = backward_seeded(&mut bb, &seeds, &wrt, start, &initial)?;

    // Outputs: new carries (dc_t, dw_acc + dw_t), then dx_t per step.
    for (input, &d) in body.inputs.iter().zip(&grads).take(nc) {
        bb.outputs.push((format!("d_{}", input.name), d));
    }
    for (a, &i) in wanted_w.iter().enumerate() {
        bb.outputs.push((format!("d_{}", body.inputs[nc + ns + i].name), grads[nc + wanted_x.len() + a]));
    }
    for (a, &i) in wanted_x.iter().enumerate() {
        bb.outputs.push((format!("d_{}", body.inputs[nc + i].name), grads[nc + a]));
    }
    let mut sliced = vec![Slicing::along(0); nc];
    sliced.extend(spec.sliced.iter().copied());
    sliced.extend(dy.iter().map(|&(k, _)| spec.stacked[k]));
    let stacked: Vec<Slicing> = wanted_x.iter().map(|&i| spec.sliced[i]).collect();
    let backward = LoopSpec::new(bb, spec.count, !spec.reverse, nc + wanted_w.len(), sliced, stacked)?;
    let backward = Rc::new(backward);

    // Operands: dc_T (or 0), 0 for each accumulator, the carry stacks, x, dy, w.
    let mut cx = Vjp { graph: g, span: node.span };
    let mut operands = vec![];
    for (j, up) in upstream.iter().enumerate().take(nc) {
        operands.push(match up {
            Some(d) => *d,
            None => cx.fill(0.0, body.inputs[j].shape.clone())?,
        });
    }
    for &i in &wanted_w {
        operands.push(match running.get(nc + ns + i).copied().flatten() {
            Some(sum) => sum,
            None => cx.fill(0.0, body.inputs[nc + ns + i].shape.clone())?,
        });
    }
    operands.extend(&stacks);
    operands.extend(&node.inputs[nc..nc + ns]);
    operands.extend(dy.iter().map(|&(_, d)| d));
    operands.extend(&node.inputs[nc + ns..]);

    let mut result = |k: usize| cx.op(Op::Loop { spec: backward.clone(), output: k }, &operands);
    let mut out = vec![None; node.inputs.len()];
    for (j, slot) in out.iter_mut().enumerate().take(nc) {
        if wanted[j] {
            *slot = Some(result(j)?);
        }
    }
    for (a, &i) in wanted_w.iter().enumerate() {
        out[nc + ns + i] = Some(result(nc + a)?);
    }
    for (a, &i) in wanted_x.iter().enumerate() {
        out[nc + i] = Some(result(nc + wanted_w.len() + a)?);
    }
    Ok(out)
}

/// For each carry of the loop of node `id`, a node holding the carry's value entering each
/// step, stacked on axis 0 (`[T, …]`): a result of the loop itself. A loop that does not
/// stack them yet gets them as extra results: its siblings take the extended spec (their own
/// results keep their numbers) and the new results are new sibling nodes.
fn carry_stacks(g: &mut Graph, id: NodeId) -> Result<Vec<NodeId>, String> {
    let Op::Loop { spec, .. } = &g.node(id).op else { return Err("not a loop".into()) };
    let spec = spec.clone();
    let nc = spec.carries;
    let mut body = spec.body.clone();
    let mut stacked = spec.stacked.clone();
    let mut results = vec![];
    for j in 0..nc {
        let input = body.nodes.iter().position(|n| n.op == (Op::Input { index: j })).map(|i| NodeId(i as u32));
        let existing = input.and_then(|input| {
            (0..stacked.len()).find(|&k| stacked[k] == Slicing::along(0) && body.outputs[nc + k].1 == input)
        });
        match existing {
            Some(k) => results.push(nc + k),
            None => {
                let info = body.inputs[j].clone();
                let input = match input {
                    Some(input) => input,
                    None => body.push(Node {
                        op: Op::Input { index: j },
                        inputs: vec![],
                        shape: info.shape.clone(),
                        name: Some(info.name.clone()),
                        span: None,
                    }),
                };
                body.outputs.push((format!("{} entering each step", info.name), input));
                stacked.push(Slicing::along(0));
                results.push(body.outputs.len() - 1);
            }
        }
    }
    let spec = if stacked.len() > spec.stacked.len() {
        let extended = Rc::new(LoopSpec { body, stacked, ..(*spec).clone() });
        for s in g.loop_siblings(id) {
            if let Op::Loop { output, .. } = g.nodes[s.index()].op {
                g.nodes[s.index()].op = Op::Loop { spec: extended.clone(), output };
            }
        }
        extended
    } else {
        spec
    };
    let siblings = g.loop_siblings(id);
    let inputs = g.node(id).inputs.clone();
    let span = g.node(id).span;
    results
        .into_iter()
        .map(|k| {
            let existing =
                siblings.iter().copied().find(|&s| matches!(g.node(s).op, Op::Loop { output, .. } if output == k));
            match existing {
                Some(s) => Ok(s),
                None => Vjp { graph: g, span }.op(Op::Loop { spec: spec.clone(), output: k }, &inputs),
            }
        })
        .collect()
}

/// Append the nodes of `body` to `g`, its inputs replaced by `inputs`; returns the node of
/// `g` that each node of `body` became.
fn copy_into(g: &mut Graph, body: &Graph, inputs: &[NodeId]) -> Result<Vec<NodeId>, String> {
    let mut map: Vec<NodeId> = Vec::with_capacity(body.nodes.len());
    for node in &body.nodes {
        let id = match node.op {
            Op::Input { index } => *inputs.get(index).ok_or("a loop body input out of range")?,
            Op::Param { .. } => return Err("a loop body has no parameters".into()),
            _ => g.push(Node { inputs: node.inputs.iter().map(|x| map[x.index()]).collect(), ..node.clone() }),
        };
        map.push(id);
    }
    Ok(map)
}
