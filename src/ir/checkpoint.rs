//! Gradient checkpointing of a loop (`range(T, checkpoint: k)`): the same steps, as a loop
//! over ⌊T/k⌋ chunks whose body is a loop over the k steps of a chunk, plus a loop over the
//! T mod k steps left over. Input: a loop's spec and operands; output: one node per result,
//! with the values of the flat loop.
//!
//! Nothing else is needed: reverse-mode differentiation of the chunked loop keeps only the
//! carries entering each chunk (every k-th carry), and the backward loop's body, which
//! recomputes a chunk from its carry, is the inner loop together with its own backward loop
//! (which keeps the chunk's k carries). Memory goes from O(T) carries to O(T/k + k) for
//! about one extra forward pass; k ≈ √T minimises it. The gradients are those of the flat
//! loop bit for bit: every step computes the same, and shared weights accumulate in the same
//! order (see `autodiff::backward_seeded`). After optimisation, when k divides T, too:
//! `opt::hoist` turns a weight's per-step products into one product over the stacked steps,
//! in the inner loop and then in the outer one, which is the flat loop's product. The T mod k
//! steps left over are a product of their own, added to it, so then the last bits can differ.

use std::sync::Arc;

use crate::ir::graph::{Dim, Graph, InputKind, LoopSpec, NodeId, Op, Slicing};
use crate::ir::ops::ShapeError;

fn add(g: &mut Graph, op: Op, inputs: &[NodeId]) -> Result<NodeId, String> {
    g.add(op, inputs).map_err(|e: ShapeError| {
        let shapes: Vec<_> = inputs.iter().map(|&i| g.shape(i)).collect();
        e.message(g, &shapes)
    })
}

/// The results of `spec` applied to `operands` (final carries, then stacks), computed in
/// chunks of `k` steps. A `k` of at least the step count gives the flat loop.
pub fn checkpoint(g: &mut Graph, spec: &Arc<LoopSpec>, operands: &[NodeId], k: usize) -> Result<Vec<NodeId>, String> {
    let (count, nc, ns) = (spec.count, spec.carries, spec.sliced.len());
    if k == 0 {
        return Err("checkpoint every 0 steps".into());
    }
    if k >= count {
        return apply(g, spec, operands);
    }
    let (chunks, rest) = (count / k, count % k);

    // The outer loop: per step, a chunk of k steps of every per-step input; its body runs
    // the flat body k times over the chunk.
    let inner = Arc::new(LoopSpec { count: k, ..(**spec).clone() });
    let mut body = Graph::new(g.dtype);
    body.symbols = g.symbols.clone();
    let mut inputs = vec![];
    for (i, info) in spec.body.inputs.iter().enumerate() {
        let shape = match i.checked_sub(nc).and_then(|s| spec.sliced.get(s)) {
            // The chunk: the sliced axis keeps k steps' elements.
            Some(s) => {
                let mut shape = g.shape(operands[i]).clone();
                shape[s.axis] = Dim::Known(k * s.width());
                shape
            }
            None => info.shape.clone(),
        };
        inputs.push(body.add_input(&info.name, shape, InputKind::Variable));
    }
    for (j, (name, _)) in spec.body.outputs.iter().enumerate() {
        let id = add(&mut body, Op::Loop { spec: inner.clone(), output: j }, &inputs)?;
        body.outputs.push((name.clone(), id));
    }
    let chunked = |s: Slicing| Slicing { axis: s.axis, chunk: Some(k * s.width()) };
    let outer = LoopSpec::new(
        body,
        chunks,
        spec.reverse,
        nc,
        spec.sliced.iter().map(|&s| chunked(s)).collect(),
        spec.stacked.iter().map(|&s| chunked(s)).collect(),
    )?;
    let outer = Arc::new(outer);
    if rest == 0 {
        return apply(g, &outer, operands);
    }

    // The steps left over, a flat loop over the last indices: after the chunks, or before
    // them when the loop runs backwards (it starts at the last index).
    let tail = Arc::new(LoopSpec { count: rest, ..(**spec).clone() });
    let part = |g: &mut Graph, carries: &[NodeId], from: usize, steps: usize| -> Result<Vec<NodeId>, String> {
        let mut ops = carries.to_vec();
        for (s, &x) in spec.sliced.iter().zip(&operands[nc..nc + ns]) {
            let w = s.width();
            ops.push(add(g, Op::Slice { axis: s.axis, start: from * w, len: steps * w, step: 1 }, &[x])?);
        }
        ops.extend(&operands[nc + ns..]);
        Ok(ops)
    };
    let main_steps = chunks * k;
    let (main, last) = if spec.reverse {
        let ops = part(g, &operands[..nc], main_steps, rest)?;
        let last = apply(g, &tail, &ops)?;
        let ops = part(g, &last[..nc], 0, main_steps)?;
        (apply(g, &outer, &ops)?, last)
    } else {
        let ops = part(g, &operands[..nc], 0, main_steps)?;
        let main = apply(g, &outer, &ops)?;
        let ops = part(g, &main[..nc], main_steps, rest)?;
        let last = apply(g, &tail, &ops)?;
        (main, last)
    };
    // Final carries from the part that ran last; stacks joined along their axes.
    let mut results: Vec<NodeId> = if spec.reverse { main[..nc].to_vec() } else { last[..nc].to_vec() };
    for (m, s) in spec.stacked.iter().enumerate() {
        let w = s.width();
        let front = add(g, Op::Pad { axis: s.axis, before: 0, after: rest * w, step: 1 }, &[main[nc + m]])?;
        let back = add(g, Op::Pad { axis: s.axis, before: main_steps * w, after: 0, step: 1 }, &[last[nc + m]])?;
        results.push(add(g, Op::Add, &[front, back])?);
    }
    Ok(results)
}

/// One node per result of `spec` applied to `operands`.
fn apply(g: &mut Graph, spec: &Arc<LoopSpec>, operands: &[NodeId]) -> Result<Vec<NodeId>, String> {
    (0..spec.outputs()).map(|j| add(g, Op::Loop { spec: spec.clone(), output: j }, operands)).collect()
}
