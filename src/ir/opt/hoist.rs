//! hoist: a product that a loop adds up one step at a time, `acc ← acc + op(p_t) @ op(q_t)`,
//! becomes one product after the loop, over the stacks of p and q: the sum over t is one
//! more contracted axis, `Σ_t op(p_t) @ op(q_t) = op(P) @ op(Q)` with t beside the inner axes.
//!
//! The backward loop of a recurrent net accumulates its recurrent weight's gradient this way
//! (`dW_hh ← dW_hh + h_tᵀ dz_t`, see `autodiff::loops`): an LSTM over 64 steps at batch 32
//! does 64 products with k = 32, each reading and writing the whole accumulator, where one
//! product with k = 64 · 32 does the same sum. The stacks usually exist already (h_t is
//! stored for the backward pass, dz_t stacked as the input's gradient); otherwise the loop
//! gets them as extra per-step outputs, O(T · state) like every stored step. The sum is taken
//! in another order, so the result rounds differently from the loop's.

use std::collections::HashMap;
use std::sync::Arc;

use super::{rebuild, Rewrite};
use crate::ir::graph::{Graph, LoopSpec, Node, NodeId, Op, Slicing};
use crate::ir::ops;

/// Hoist every loop's accumulated products (see the module docs).
pub fn products(g: &mut Graph) -> bool {
    let mut plans: HashMap<*const LoopSpec, Option<Arc<Plan>>> = HashMap::new();
    for node in &g.nodes {
        if let Op::Loop { spec, .. } = &node.op {
            plans.entry(Arc::as_ptr(spec)).or_insert_with(|| plan(spec).map(Arc::new));
        }
    }
    if plans.values().all(Option::is_none) {
        return false;
    }
    // The new results of each loop (by spec and operands), made once for all its siblings.
    let mut made: HashMap<(*const LoopSpec, Vec<NodeId>), HashMap<usize, NodeId>> = HashMap::new();
    rebuild(g, |out, _, node| {
        let Op::Loop { spec, output } = &node.op else { return Rewrite::Keep };
        let Some(plan) = plans.get(&Arc::as_ptr(spec)).cloned().flatten() else { return Rewrite::Keep };
        let operands: Vec<NodeId> = plan.operands.iter().map(|&k| node.inputs[k]).collect();
        let made = made.entry((Arc::as_ptr(spec), node.inputs.clone())).or_default();
        let mut result = |out: &mut Graph, k: usize| -> Option<NodeId> {
            if let Some(&id) = made.get(&k) {
                return Some(id);
            }
            let id = out.add(Op::Loop { spec: plan.spec.clone(), output: k }, &operands).ok()?;
            made.insert(k, id);
            Some(id)
        };
        let replacement = match plan.results[*output] {
            Some(k) => result(out, k),
            None => {
                let sum = &plan.sums[output];
                let mut stack = |out: &mut Graph, s: Stack| match s {
                    Stack::Operand(k) => Some(node.inputs[k]),
                    Stack::Result(k) => result(out, k),
                };
                (|| {
                    let (a, b) = (stack(out, sum.a)?, stack(out, sum.b)?);
                    let product = out.add(sum.op.clone(), &[a, b]).ok()?;
                    // The loop's initial accumulator, then every step's term.
                    out.add(Op::Add, &[node.inputs[*output], product]).ok()
                })()
            }
        };
        // Every shape was checked when the plan was made; a failure here is a bug.
        Rewrite::Replace(replacement.expect("a hoisted loop's shapes fit"))
    })
}

/// How one loop spec changes.
struct Plan {
    /// The spec without the hoisted carries, with the stacks they need.
    spec: Arc<LoopSpec>,
    /// The old operands the new loop takes, in order (all but the hoisted carries' initials).
    operands: Vec<usize>,
    /// Each old result's number in the new loop; `None` for a hoisted carry.
    results: Vec<Option<usize>>,
    /// The product that replaces each hoisted carry's final value (by old carry number).
    sums: HashMap<usize, Sum>,
}

/// A hoisted carry's final value: its initial value plus `op(a, b)`.
struct Sum {
    op: Op,
    a: Stack,
    b: Stack,
}

/// Where the stack of a product's operand comes from.
#[derive(Clone, Copy)]
enum Stack {
    /// The loop's operand `k`: the operand is a per-step input, already stacked as needed.
    Operand(usize),
    /// The new loop's result `k`.
    Result(usize),
}

/// A carry `acc` whose new value is `acc + m`, where m = `MatMul { batch: 0, .. }(p, q)` of
/// values that change from step to step, and nothing else reads acc, acc + m or m.
struct Candidate {
    carry: usize,
    dropped: [NodeId; 3],
    op: Op,
    /// The product's operands and the axis each is stacked along.
    p: (NodeId, usize),
    q: (NodeId, usize),
}

fn plan(spec: &LoopSpec) -> Option<Plan> {
    let body = &spec.body;
    let (nc, ns) = (spec.carries, spec.sliced.len());
    let mut readers = vec![0usize; body.nodes.len()];
    for x in body.nodes.iter().flat_map(|n| &n.inputs).chain(body.outputs.iter().map(|o| &o.1)) {
        readers[x.index()] += 1;
    }
    // Whether a node's value can differ between steps: it depends on a carry or a slice.
    let mut varying = vec![false; body.nodes.len()];
    for (i, node) in body.nodes.iter().enumerate() {
        varying[i] = match node.op {
            Op::Input { index } => index < nc + ns,
            _ => node.inputs.iter().any(|x| varying[x.index()]),
        };
    }
    let input_node =
        |index: usize| body.nodes.iter().position(|n| n.op == (Op::Input { index })).map(|i| NodeId(i as u32));
    let candidates: Vec<Candidate> = (0..nc)
        .filter_map(|carry| {
            let acc = input_node(carry)?;
            let new = body.outputs[carry].1;
            let Op::Add = body.node(new).op else { return None };
            let m = match body.node(new).inputs[..] {
                [x, m] if x == acc => m,
                [m, x] if x == acc => m,
                _ => return None,
            };
            let Op::MatMul { transpose_a, transpose_b, batch: 0, contract } = body.node(m).op else { return None };
            let [p, q] = body.node(m).inputs[..] else { return None };
            let alone = readers[acc.index()] == 1 && readers[new.index()] == 1 && readers[m.index()] == 1;
            if !alone || body.shape(m) != body.shape(new) || !varying[p.index()] || !varying[q.index()] {
                return None;
            }
            // Step t goes beside the inner axes: after a's rows (or first, when a is
            // transposed: [inner.., rows..]), first in b (or after its cols).
            let p_axis = if transpose_a { 0 } else { body.shape(p).len() - contract };
            let q_axis = if transpose_b { body.shape(q).len() - contract } else { 0 };
            let op = Op::MatMul { transpose_a, transpose_b, batch: 0, contract: contract + 1 };
            // The hoisted product must give the accumulator's shape (checked here, so that the
            // rewrite cannot fail half-way).
            let stacked =
                |x: NodeId, axis: usize| ops::stacked_shape(body.shape(x), Slicing::along(axis), spec.count).ok();
            let (ps, qs) = (stacked(p, p_axis)?, stacked(q, q_axis)?);
            if ops::infer_shape(&op, &[&ps, &qs], body).ok().as_ref() != Some(body.shape(m)) {
                return None;
            }
            Some(Candidate { carry, dropped: [acc, new, m], op, p: (p, p_axis), q: (q, q_axis) })
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let hoisted = |j: usize| candidates.iter().any(|c| c.carry == j);
    let kept: Vec<usize> = (0..nc).filter(|&j| !hoisted(j)).collect();
    let removed = nc - kept.len();

    // The new body: the same nodes but the dropped ones, inputs renumbered.
    let mut new = Graph { nodes: vec![], inputs: vec![], outputs: vec![], ..body.clone() };
    let new_index = |index: usize| match index < nc {
        true => kept.iter().position(|&j| j == index),
        false => Some(index - removed),
    };
    new.inputs = (0..body.inputs.len()).filter(|&i| i >= nc || !hoisted(i)).map(|i| body.inputs[i].clone()).collect();
    let dropped: Vec<NodeId> = candidates.iter().flat_map(|c| c.dropped).collect();
    let mut moved = vec![NodeId(u32::MAX); body.nodes.len()];
    for (i, node) in body.nodes.iter().enumerate() {
        if dropped.contains(&NodeId(i as u32)) {
            continue;
        }
        let op = match node.op {
            Op::Input { index } => Op::Input { index: new_index(index)? },
            _ => node.op.clone(),
        };
        let inputs = node.inputs.iter().map(|x| moved[x.index()]).collect();
        moved[i] = new.push(Node { op, inputs, ..node.clone() });
    }
    let results: Vec<Option<usize>> = (0..body.outputs.len())
        .map(|k| if k < nc { new_index(k).filter(|_| !hoisted(k)) } else { Some(k - removed) })
        .collect();
    new.outputs = (0..body.outputs.len())
        .filter(|&k| k >= nc || !hoisted(k))
        .map(|k| (body.outputs[k].0.clone(), moved[body.outputs[k].1.index()]))
        .collect();
    let mut stacked = spec.stacked.clone();

    // The stack of each product operand: the per-step input itself, a stacked output the loop
    // has, or a new one.
    let mut stack = |new: &mut Graph, (node, axis): (NodeId, usize)| -> Stack {
        let along = Slicing::along(axis);
        if let Op::Input { index } = body.node(node).op {
            if index >= nc && index < nc + ns && spec.sliced[index - nc] == along {
                return Stack::Operand(index);
            }
        }
        let have =
            (0..stacked.len()).find(|&k| stacked[k] == along && new.outputs[kept.len() + k].1 == moved[node.index()]);
        Stack::Result(
            kept.len()
                + have.unwrap_or_else(|| {
                    let name = body.node(node).name.clone().unwrap_or_else(|| node.to_string());
                    new.outputs.push((format!("{name} of each step"), moved[node.index()]));
                    stacked.push(along);
                    stacked.len() - 1
                }),
        )
    };
    let mut sums = HashMap::new();
    for c in &candidates {
        let (a, b) = (stack(&mut new, c.p), stack(&mut new, c.q));
        sums.insert(c.carry, Sum { op: c.op.clone(), a, b });
    }
    let operands = (0..body.inputs.len()).filter(|&i| i >= nc || !hoisted(i)).collect();
    let spec = LoopSpec::new(new, spec.count, spec.reverse, kept.len(), spec.sliced.clone(), stacked).ok()?;
    Some(Plan { spec: Arc::new(spec), operands, results, sums })
}
