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
//! and dx is the stack of dx_t. The body is `backward_seeded` applied to a copy of f. The
//! forward loop is given extra stacked outputs (memory O(T · state)): the carries entering
//! each step, c_t, and the step's *residuals*, the inner values of f that the VJP reads (an
//! LSTM's gate activations, which σ' and tanh' are computed from). The backward body reads the
//! residuals of its step instead of recomputing them, as PyTorch's autograd does; what it
//! still needs of f beyond them (views of its inputs, values computed by a nested loop) it
//! recomputes from c_t. A nested loop's results are never stored: a checkpointed loop
//! (`ir::checkpoint`, a loop of chunks whose body is a loop) thereby keeps only every k-th
//! carry and recomputes a chunk when the backward loop reaches it. The backward loop is an
//! ordinary loop, so it can be differentiated again (second derivatives through loops).

use std::collections::HashMap;
use std::sync::Arc;

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
                groups.entry((Arc::as_ptr(spec) as usize, node.inputs.clone())).or_default().push(NodeId(i as u32));
            }
        }
        Groups(groups)
    }

    /// The siblings of loop node `i` (itself included), in id order.
    pub(super) fn of(&self, g: &Graph, i: usize) -> Vec<NodeId> {
        let node = &g.nodes[i];
        let Op::Loop { spec, .. } = &node.op else { return vec![] };
        self.0.get(&(Arc::as_ptr(spec) as usize, node.inputs.clone())).cloned().unwrap_or_default()
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
    let copy_end = bb.nodes.len();
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
    // The residuals: read from the forward loop's stacks rather than recomputed.
    let residuals = residuals(&bb, &map, start, copy_end);
    let first_invariant_input = nc + wanted_w.len() + nc + ns + dys.len();
    let bb = read_residuals(bb, &map, &residuals, start, first_invariant_input);
    let mut sliced = vec![Slicing::along(0); nc];
    sliced.extend(spec.sliced.iter().copied());
    sliced.extend(dy.iter().map(|&(k, _)| spec.stacked[k]));
    sliced.extend(residuals.iter().map(|_| Slicing::along(0)));
    let stacked: Vec<Slicing> = wanted_x.iter().map(|&i| spec.sliced[i]).collect();
    let backward = LoopSpec::new(bb, spec.count, !spec.reverse, nc + wanted_w.len(), sliced, stacked)?;
    let backward = Arc::new(backward);

    // The forward loop stacks the carries entering each step and the residuals.
    let carry_inputs: Vec<NodeId> = (0..nc).map(|j| body_input(body, j)).collect();
    let carry_stacks = stacks(g, id, &carry_inputs)?;
    let residual_stacks = stacks(g, id, &residuals)?;

    // Operands: dc_T (or 0), 0 for each accumulator, the carry stacks, x, dy, the residual
    // stacks, w.
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
    operands.extend(&carry_stacks);
    operands.extend(&node.inputs[nc..nc + ns]);
    operands.extend(dy.iter().map(|&(_, d)| d));
    operands.extend(&residual_stacks);
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

/// The node of body input `j` (a body that never reads the input has none: one is added to a
/// copy when it must be stacked, see `stacks`); `NodeId(u32::MAX)` stands for that case.
fn body_input(body: &Graph, j: usize) -> NodeId {
    let at = body.nodes.iter().position(|n| n.op == (Op::Input { index: j }));
    at.map_or(NodeId(u32::MAX), |i| NodeId(i as u32))
}

/// For each of `values` (nodes of the loop's body; `NodeId(u32::MAX)` for an input the body
/// does not read, see `body_input`, in carry order), a node holding its value at each step,
/// stacked on axis 0 (`[T, …]`): a result of the loop itself. A loop that does not stack it
/// yet gets it as an extra result: its siblings take the extended spec (their own results
/// keep their numbers) and the new results are new sibling nodes.
fn stacks(g: &mut Graph, id: NodeId, values: &[NodeId]) -> Result<Vec<NodeId>, String> {
    let Op::Loop { spec, .. } = &g.node(id).op else { return Err("not a loop".into()) };
    let spec = spec.clone();
    let nc = spec.carries;
    let mut body = spec.body.clone();
    let mut stacked = spec.stacked.clone();
    let mut results = vec![];
    for (j, &value) in values.iter().enumerate() {
        let node = if value.0 == u32::MAX {
            // A carry the body never reads: its input node, added.
            let info = body.inputs[j].clone();
            body.push(Node {
                op: Op::Input { index: j },
                inputs: vec![],
                shape: info.shape.clone(),
                name: Some(info.name.clone()),
                span: None,
            })
        } else {
            value
        };
        let existing = (0..stacked.len()).find(|&k| stacked[k] == Slicing::along(0) && body.outputs[nc + k].1 == node);
        match existing {
            Some(k) => results.push(nc + k),
            None => {
                let name = match &body.node(node).op {
                    Op::Input { index } => format!("{} entering each step", body.inputs[*index].name),
                    _ => format!("{} of each step", body.node(node).name.clone().unwrap_or_else(|| node.to_string())),
                };
                body.outputs.push((name, node));
                stacked.push(Slicing::along(0));
                results.push(body.outputs.len() - 1);
            }
        }
    }
    let spec = if stacked.len() > spec.stacked.len() {
        let extended = Arc::new(LoopSpec { body, stacked, ..(*spec).clone() });
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

/// The residuals of a backward body `bb` whose nodes `start..copy_end` are the copy of the
/// forward body (`map`: forward body node → its copy): the forward body nodes whose values
/// the VJP part (the nodes after `copy_end`, and the outputs) reads, seen through views
/// (reshape, transpose, broadcast, slice: the view is recomputed, its source stored). Not
/// stored: the step's inputs (available anyway), constants, and results of nested loops
/// (recomputed: what keeps a checkpointed loop's memory low). In forward body order.
fn residuals(bb: &Graph, map: &[NodeId], start: usize, copy_end: usize) -> Vec<NodeId> {
    let mut read = vec![false; copy_end];
    let reads = bb.nodes[copy_end..].iter().flat_map(|n| n.inputs.iter()).chain(bb.outputs.iter().map(|o| &o.1));
    for &x in reads {
        if x.index() < copy_end {
            read[x.index()] = true;
        }
    }
    let mut stored = vec![false; copy_end];
    for i in (start..copy_end).filter(|&i| read[i]) {
        let mut at = i;
        while let Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Broadcast { .. }
        | Op::Slice { .. }
        | Op::Reverse { .. } = bb.nodes[at].op
        {
            at = bb.nodes[at].inputs[0].index();
        }
        let cheap =
            matches!(bb.nodes[at].op, Op::Const { .. } | Op::Literal { .. } | Op::DimSize { .. } | Op::Loop { .. });
        if at >= start && !cheap {
            stored[at] = true;
        }
    }
    // Back to forward body nodes (a body input maps below `start`, so never here).
    (0..map.len()).filter(|&k| map[k].index() >= start && stored[map[k].index()]).map(|k| NodeId(k as u32)).collect()
}

/// `bb` with each residual's copy replaced by a new per-step input, inserted before the
/// body's invariant inputs (the first is input `first_invariant`); the copies nothing else
/// reads are left for dead-code elimination.
fn read_residuals(bb: Graph, map: &[NodeId], residuals: &[NodeId], start: usize, first_invariant: usize) -> Graph {
    if residuals.is_empty() {
        return bb;
    }
    let mut out = Graph::new(bb.dtype);
    out.symbols = bb.symbols.clone();
    // The inputs, in order, with the residuals' before the invariants.
    let mut moved: Vec<NodeId> = vec![NodeId(u32::MAX); bb.nodes.len()];
    let input_node = |index: usize| bb.nodes[..start].iter().position(|n| n.op == (Op::Input { index }));
    for index in 0..=bb.inputs.len() {
        if index == first_invariant {
            for &r in residuals {
                let copy = map[r.index()];
                let name = bb.node(copy).name.clone().unwrap_or_else(|| r.to_string());
                let id = out.add_input(&format!("{name} (stored)"), bb.shape(copy).clone(), InputKind::Variable);
                moved[copy.index()] = id;
            }
        }
        let Some(info) = bb.inputs.get(index) else { break };
        let id = out.add_input(&info.name, info.shape.clone(), info.kind);
        if let Some(i) = input_node(index) {
            moved[i] = id;
        }
    }
    for (i, node) in bb.nodes.iter().enumerate().skip(start) {
        if moved[i].0 == u32::MAX {
            let inputs = node.inputs.iter().map(|x| moved[x.index()]).collect();
            moved[i] = out.push(Node { inputs, ..node.clone() });
        }
    }
    out.outputs = bb.outputs.iter().map(|(name, id)| (name.clone(), moved[id.index()])).collect();
    out
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
