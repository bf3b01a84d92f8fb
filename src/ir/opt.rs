//! Graph optimisation. Input: a graph (forward, or forward + backward); output: an equivalent
//! graph with fewer or cheaper nodes.
//!
//! Each pass is a small `fn(&mut Graph) -> bool` (did it change anything) in one `PASSES` list,
//! run in order until nothing changes. Passes may renumber nodes (`outputs` and `updates` are
//! remapped; names and spans travel with their nodes) but never touch the `inputs` and
//! `params` lists: runtimes bind tensors to them by index.

mod hoist;

use std::collections::HashMap;
use std::sync::Arc;

use crate::ir::graph::{DType, Dim, Graph, LoopSpec, Node, NodeId, Op, Shape};
use crate::ir::ops::{self, Env};
use crate::ir::tensor::Tensor;

/// A pass rewrites the graph in place and says whether it changed anything.
pub type Pass = fn(&mut Graph) -> bool;

/// Every pass, in the order `optimize` runs them.
pub const PASSES: &[(&str, Pass)] = &[
    ("fold", fold),
    ("simplify", simplify),
    ("cse", cse),
    ("dce", dce),
    ("hoist", hoist::products),
    ("loops", loop_bodies),
];

/// `optimize` stops after this many rounds even if some pass still reports changes.
const MAX_ROUNDS: usize = 16;

/// Run `PASSES` to a fixed point. With `print_after: Some(pass)`, returns the graph text after
/// each run of that pass that changed the graph (or after its first run, if none did), each
/// headed by a `// after PASS, round N` line; otherwise an empty string.
pub fn optimize(g: &mut Graph, print_after: Option<&str>) -> Result<String, String> {
    if let Some(name) = print_after {
        pass_named(name)?;
    }
    let mut text = String::new();
    let mut unchanged_first_run = None;
    for round in 1..=MAX_ROUNDS {
        let mut changed = false;
        for &(name, pass) in PASSES {
            let did = pass(g);
            changed |= did;
            if print_after == Some(name) {
                if did {
                    text.push_str(&format!("// after {name}, round {round}\n{}", g.to_text()));
                } else if round == 1 {
                    unchanged_first_run = Some(format!("// after {name}, round 1 (no change)\n{}", g.to_text()));
                }
            }
        }
        if !changed {
            break;
        }
    }
    if text.is_empty() {
        text = unchanged_first_run.unwrap_or_default();
    }
    Ok(text)
}

/// Run one pass by name; returns whether it changed the graph.
pub fn run_pass(g: &mut Graph, name: &str) -> Result<bool, String> {
    Ok(pass_named(name)?(g))
}

fn pass_named(name: &str) -> Result<Pass, String> {
    PASSES.iter().find(|(n, _)| *n == name).map(|&(_, p)| p).ok_or_else(|| {
        let names: Vec<&str> = PASSES.iter().map(|(n, _)| *n).collect();
        format!("unknown pass `{name}`; the passes are {}", names.join(", "))
    })
}

// ---- fold: constant folding -----------------------------------------------------------------

/// Evaluate nodes whose operands are all constants (`Const`, `Literal`), replacing them with a
/// `Const` (scalars) or a `Literal`. Not folded: results with symbolic dims, results larger
/// than their largest operand (a broadcast scalar is the compact form of a filled tensor, and
/// `simplify` recognises it), and nodes whose evaluation fails (the error is left for run
/// time, where it can be reported).
pub fn fold(g: &mut Graph) -> bool {
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let node = &g.nodes[i];
        if is_leaf(&node.op) || !node.inputs.iter().all(|&x| is_constant(&g.node(x).op)) {
            continue;
        }
        // A loop's body is optimised by the `loops` pass (`ops::eval` cannot run it).
        if let Op::Loop { .. } = node.op {
            continue;
        }
        let Some(shape) = node.shape.iter().map(|d| d.known()).collect::<Option<Vec<usize>>>() else { continue };
        let largest_operand = node.inputs.iter().map(|&x| constant_len(&g.node(x).op)).max().unwrap_or(1);
        if shape.iter().product::<usize>() > largest_operand {
            continue;
        }
        let operands: Vec<Tensor> = node.inputs.iter().map(|&x| constant_value(g, x)).collect();
        let refs: Vec<&Tensor> = operands.iter().collect();
        let env = Env { inputs: &[], params: &[], symbols: &[] };
        let Ok(mut value) = ops::eval(&node.op, &refs, &shape, &env) else { continue };
        if g.dtype == DType::F32 {
            // Round like the interpreter does, so folding never changes a result.
            value.data.iter_mut().for_each(|v| *v = *v as f32 as f64);
        }
        let node = &mut g.nodes[i];
        node.op = if shape.is_empty() {
            Op::Const { value: value.data[0] }
        } else {
            Op::Literal { values: value.data.into() }
        };
        node.inputs.clear();
        changed = true;
    }
    changed
}

fn is_leaf(op: &Op) -> bool {
    use Op::*;
    match op {
        Input { .. } | Param { .. } | Const { .. } | Literal { .. } | DimSize { .. } => true,
        Neg | Exp | Log | Sqrt | Abs | Sign | Tanh | Sigmoid => false,
        Relu | LeakyRelu { .. } | Elu { .. } | Softplus | Erf | Clip { .. } => false,
        Add | Sub | Mul | Div | Pow | Max | Min | GreaterEq | Greater | Equal | Where => false,
        Broadcast { .. } | Reshape { .. } | Transpose { .. } | Slice { .. } | Pad { .. } | Reverse { .. } => false,
        Concat { .. } | Gather { .. } | ScatterAdd { .. } => false,
        Sum { .. } | ReduceMax { .. } | ArgMaxMask { .. } | OneHot { .. } => false,
        MatMul { .. } | LogSoftmax { .. } | Conv2d { .. } | Conv2dInputGrad { .. } | Conv2dFilterGrad { .. } => false,
        MaxPool2d { .. } | MaxPool2dGrad { .. } | AvgPool2d { .. } | AvgPool2dGrad { .. } => false,
        Loop { .. } => false,
        RandomUniform { .. } => false,
    }
}

fn is_constant(op: &Op) -> bool {
    matches!(op, Op::Const { .. } | Op::Literal { .. })
}

fn constant_len(op: &Op) -> usize {
    if let Op::Literal { values } = op {
        values.len()
    } else {
        1
    }
}

/// The value of a `Const` or `Literal` node.
fn constant_value(g: &Graph, id: NodeId) -> Tensor {
    let shape: Vec<usize> = g.shape(id).iter().map(|d| d.known().expect("constants have known shapes")).collect();
    if let Op::Literal { values } = &g.node(id).op {
        Tensor::new(shape, values.to_vec())
    } else if let Op::Const { value } = g.node(id).op {
        Tensor::scalar(value)
    } else {
        unreachable!("only constants are folded")
    }
}

// ---- simplify: algebraic identities ------------------------------------------------------

/// Replace nodes by simpler equivalents (see `simplify_node` for the identities). They hold
/// for infinities and NaN too; the only differences are the sign of a zero result (IEEE has
/// -0 + 0 = +0, where `x + 0 == x` keeps -0) and the rounding of sum-of-broadcast.
pub fn simplify(g: &mut Graph) -> bool {
    // Whether each node is read by one node only (and is no output or update): a rewrite that
    // recomputes an operand differently is a saving only then.
    let mut readers = vec![0usize; g.nodes.len()];
    for n in &g.nodes {
        n.inputs.iter().for_each(|x| readers[x.index()] += 1);
    }
    for id in g.outputs.iter().map(|o| o.1).chain(g.updates.iter().map(|u| u.1)) {
        readers[id.index()] += 1;
    }
    let operands: Vec<Vec<NodeId>> = g.nodes.iter().map(|n| n.inputs.clone()).collect();
    rebuild(g, |g, i, node| {
        let sole = |k: usize| readers[operands[i][k].index()] == 1;
        simplify_node(g, node, &sole).map_or(Rewrite::Keep, Rewrite::Replace)
    })
}

/// One node's rewrite, given its operands in the rebuilt graph `g` and whether operand k has
/// no other reader (`sole(k)`): an existing node that equals it, or a replacement appended to
/// `g`; `None` keeps the node.
fn simplify_node(g: &mut Graph, node: &Node, sole: &dyn Fn(usize) -> bool) -> Option<NodeId> {
    use Op::*;
    let x = &node.inputs;
    let shape = &node.shape;
    // The result may stand in for the node only if broadcasting did not change its shape.
    let same_shape = |g: &Graph, a: NodeId| g.shape(a) == shape;
    // op(broadcast(a), b) == op(a, b) for elementwise ops, when a and b broadcast to the same
    // result anyway: the op broadcasts by itself, without materialising the operand
    if matches!(node.op, Add | Sub | Mul | Div | Pow | Max | Min | GreaterEq | Greater | Equal | Where) {
        for k in 0..x.len() {
            if let Broadcast { .. } = g.node(x[k]).op {
                let mut operands = x.clone();
                operands[k] = g.node(x[k]).inputs[0];
                let shapes = (g.shape(operands[0]), g.shape(operands[1]));
                if ops::broadcast_shapes(shapes.0, shapes.1).as_ref() == Ok(shape) {
                    return g.add(node.op.clone(), &operands).ok();
                }
            }
        }
    }
    match &node.op {
        Mul => {
            // x * 1 == x
            if is_scalar_const(g, x[1], 1.0) && same_shape(g, x[0]) {
                return Some(x[0]);
            }
            // 1 * x == x
            if is_scalar_const(g, x[0], 1.0) && same_shape(g, x[1]) {
                return Some(x[1]);
            }
            // x * 0 == 0, only for x finite by construction (0 * inf and 0 * NaN are NaN)
            for (a, b) in [(x[0], x[1]), (x[1], x[0])] {
                if is_scalar_const(g, b, 0.0) && finite_by_construction(g, a) {
                    return Some(fill(g, 0.0, shape));
                }
            }
            None
        }
        Add => {
            // x + 0 == x
            if is_scalar_const(g, x[1], 0.0) && same_shape(g, x[0]) {
                return Some(x[0]);
            }
            // 0 + x == x
            if is_scalar_const(g, x[0], 0.0) && same_shape(g, x[1]) {
                return Some(x[1]);
            }
            // x + (-y) == x - y
            if let Neg = g.node(x[1]).op {
                let y = g.node(x[1]).inputs[0];
                return g.add(Sub, &[x[0], y]).ok();
            }
            // (-x) + y == y - x
            if let Neg = g.node(x[0]).op {
                let a = g.node(x[0]).inputs[0];
                return g.add(Sub, &[x[1], a]).ok();
            }
            // pad(a) + pad(b) == concat([a, b]) (zeros in the gaps) when their ranges along
            // the axis do not overlap: the gradient of a tensor cut into slices (an LSTM's four
            // gates), a join instead of a zeroed tensor per slice added up
            if sole(0) && sole(1) && same_shape(g, x[0]) && same_shape(g, x[1]) {
                if let Some(joined) = join_disjoint_pieces(g, x[0], x[1]) {
                    return Some(joined);
                }
            }
            None
        }
        Sub => {
            // x - 0 == x
            if is_scalar_const(g, x[1], 0.0) && same_shape(g, x[0]) {
                return Some(x[0]);
            }
            // 0 - x == -x
            if is_scalar_const(g, x[0], 0.0) && same_shape(g, x[1]) {
                return g.add(Neg, &[x[1]]).ok();
            }
            // x - (-y) == x + y
            if let Neg = g.node(x[1]).op {
                let y = g.node(x[1]).inputs[0];
                return g.add(Add, &[x[0], y]).ok();
            }
            None
        }
        Div => {
            // x / 1 == x
            (is_scalar_const(g, x[1], 1.0) && same_shape(g, x[0])).then_some(x[0])
        }
        Pow => {
            // x ^ 1 == x
            (is_scalar_const(g, x[1], 1.0) && same_shape(g, x[0])).then_some(x[0])
        }
        Neg => {
            // -(-x) == x
            (g.node(x[0]).op == Neg).then(|| g.node(x[0]).inputs[0])
        }
        Broadcast { .. } => {
            // broadcast(x, shape of x) == x
            if same_shape(g, x[0]) {
                return Some(x[0]);
            }
            // broadcast(broadcast(x, s1), s2) == broadcast(x, s2)
            // broadcast(reshape(x, [1, .., 1] ++ shape of x), s) == broadcast(x, s): broadcasting
            // prepends the unit axes itself
            let operand = g.node(x[0]);
            let inner = operand.inputs.first().copied();
            let fuses = if let Reshape { shape: s1 } = &operand.op {
                only_prepends_units(s1, g.shape(inner?))
            } else {
                matches!(operand.op, Broadcast { .. })
            };
            if fuses {
                g.add(node.op.clone(), &[inner?]).ok()
            } else {
                None
            }
        }
        Reshape { .. } => {
            // reshape(x, shape of x) == x
            if same_shape(g, x[0]) {
                return Some(x[0]);
            }
            // reshape(reshape(x, s1), s2) == reshape(x, s2)
            // reshape(broadcast(c, s1), s2) == broadcast(c, s2) for a scalar c: a fill
            let operand = g.node(x[0]);
            let inner = operand.inputs.first().copied();
            if let Reshape { .. } = operand.op {
                let inner = inner?;
                Some(if g.shape(inner) == shape { inner } else { g.add(node.op.clone(), &[inner]).ok()? })
            } else if matches!(operand.op, Broadcast { .. }) && g.shape(inner?).is_empty() {
                g.add(Broadcast { shape: shape.clone() }, &[inner?]).ok()
            } else {
                None
            }
        }
        Transpose { perm } => {
            // transpose(x, identity) == x
            if is_identity(perm) {
                return Some(x[0]);
            }
            // transpose(a @ b) == bᵀ @ aᵀ when the transpose swaps the product's row and column
            // axes (keeping the batch axes): the GEMM then writes the result in the wanted
            // layout instead of a copy after it (dk = (qᵀ g)ᵀ of attention's backward).
            if sole(0) {
                if let Some(swapped) = swapped_product(g, x[0], perm) {
                    return Some(swapped);
                }
            }
            // transpose(transpose(x, p), q) == transpose(x, i -> p[q[i]])
            let Transpose { perm: inner_perm } = &g.node(x[0]).op else { return None };
            let inner = g.node(x[0]).inputs[0];
            let composed: Vec<usize> = perm.iter().map(|&q| inner_perm[q]).collect();
            if is_identity(&composed) {
                Some(inner)
            } else {
                g.add(Transpose { perm: composed }, &[inner]).ok()
            }
        }
        Slice { axis, start, len, step } => {
            // x[0..n] along an axis of size n == x
            if same_shape(g, x[0]) {
                return Some(x[0]);
            }
            // concat(a, b, …)[offset of b .. offset of b + len b] == b
            let operand = g.node(x[0]);
            let Concat { axis: joined } = operand.op else { return None };
            if joined != *axis || *step != 1 {
                return None;
            }
            let mut offset = 0;
            for &part in &operand.inputs {
                let n = g.shape(part)[*axis].known()?;
                if offset == *start && n == *len {
                    return Some(part);
                }
                offset += n;
            }
            None
        }
        Pad { .. } => {
            // pad(x, 0, 0) == x (a step only spreads more than one element)
            same_shape(g, x[0]).then_some(x[0])
        }
        Reverse { axis } => {
            // reverse(reverse(x)) == x
            match g.node(x[0]).op {
                Reverse { axis: inner } if inner == *axis => Some(g.node(x[0]).inputs[0]),
                _ => None,
            }
        }
        Concat { .. } => {
            // concat([x]) == x
            (x.len() == 1).then_some(x[0])
        }
        Gather { .. } | ScatterAdd { .. } => None,
        Sum { axes } => {
            // sum over no axes == x
            if axes.is_empty() {
                return Some(x[0]);
            }
            sum_of_broadcast(g, node, axes)
        }
        Input { .. } | Param { .. } | Const { .. } | Literal { .. } | DimSize { .. } => None,
        Exp | Log | Sqrt | Abs | Sign | Tanh | Sigmoid => None,
        Relu | LeakyRelu { .. } | Elu { .. } | Softplus | Erf | Clip { .. } => None,
        Max | Min | GreaterEq | Greater | Equal => None,
        // where(c, a, b) == a for a constant c ≠ 0 (== b for c = 0), when broadcasting by the
        // condition did not change the chosen operand's shape (attention's default mask 1)
        Where => match g.node(x[0]).op {
            Const { value } => {
                let chosen = if value != 0.0 { x[1] } else { x[2] };
                same_shape(g, chosen).then_some(chosen)
            }
            _ => None,
        },
        ReduceMax { .. } | ArgMaxMask { .. } | OneHot { .. } | MatMul { .. } | LogSoftmax { .. } => None,
        Conv2d { .. } | Conv2dInputGrad { .. } | Conv2dFilterGrad { .. } => None,
        MaxPool2d { .. } | MaxPool2dGrad { .. } | AvgPool2d { .. } | AvgPool2dGrad { .. } => None,
        Loop { .. } => None,
        RandomUniform { .. } => None,
    }
}

/// `perm` of the product `id` = [batch.., rows.., cols..] that is [batch.., cols.., rows..]
/// as the product of the swapped operands, each transposed the other way.
fn swapped_product(g: &mut Graph, id: NodeId, perm: &[usize]) -> Option<NodeId> {
    let Op::MatMul { transpose_a, transpose_b, batch, contract } = g.node(id).op else { return None };
    let [a, b] = g.node(id).inputs[..] else { return None };
    let rows = g.shape(a).len() - batch - contract;
    let cols = g.shape(b).len() - batch - contract;
    let swap: Vec<usize> = (0..batch).chain(batch + rows..batch + rows + cols).chain(batch..batch + rows).collect();
    if rows == 0 || cols == 0 || perm != swap.as_slice() {
        return None;
    }
    let op = Op::MatMul { transpose_a: !transpose_b, transpose_b: !transpose_a, batch, contract };
    g.add(op, &[b, a]).ok()
}

/// sum(broadcast(x, s), A) == broadcast(sum(x, A) * n, s without A), where n is the product of
/// the summed axes that the broadcast created or stretched: summing over such an axis adds up
/// n copies. Fires when at least one summed axis is stretched; the outer broadcast remains
/// only for stretched axes that are not summed. (Not bit-identical in general: n*v rounds
/// once where v+v+...+v rounds n times.)
fn sum_of_broadcast(g: &mut Graph, node: &Node, axes: &[usize]) -> Option<NodeId> {
    let b = node.inputs[0];
    let Op::Broadcast { shape: to } = &g.node(b).op else { return None };
    let to = to.clone();
    let x = g.node(b).inputs[0];
    let from = g.shape(x).clone();
    let lead = to.len() - from.len();
    // Axis a of the broadcast is axis a - lead of x, or was prepended (a < lead).
    let stretched = |a: usize| a < lead || (from[a - lead] == Dim::Known(1) && to[a] != Dim::Known(1));
    let copies: Vec<usize> = axes.iter().copied().filter(|&a| stretched(a)).collect();
    if copies.is_empty() {
        return None;
    }
    // Σ over the summed axes of x itself; its stretched axes have size 1 (just a reshape).
    let own: Vec<usize> = axes.iter().filter(|&&a| a >= lead).map(|&a| a - lead).collect();
    let base = if own.is_empty() {
        x
    } else if own.iter().all(|&a| stretched(a + lead)) {
        let kept = from.iter().enumerate().filter(|(a, _)| !own.contains(a)).map(|(_, &d)| d).collect();
        g.add(Op::Reshape { shape: kept }, &[x]).ok()?
    } else {
        g.add(Op::Sum { axes: own }, &[x]).ok()?
    };
    let count = count_of(g, copies.iter().map(|&a| to[a]));
    let scaled = g.add(Op::Mul, &[base, count]).ok()?;
    // Axes that stay stretched are broadcast again (on the smaller, already scaled tensor).
    if g.shape(scaled) == &node.shape {
        Some(scaled)
    } else {
        g.add(Op::Broadcast { shape: node.shape.clone() }, &[scaled]).ok()
    }
}

/// The pieces of `id` along an axis, if it is zero but for them: a `Pad` (of one operand, or
/// of a `Concat` along the same axis) or a `Concat` with zero-filled parts, as (axis, its
/// size, [(start, operand)] in order).
fn pieces(g: &Graph, id: NodeId) -> Option<(usize, usize, Vec<(usize, NodeId)>)> {
    let node = g.node(id);
    let size = |axis: usize| node.shape.get(axis).and_then(|d| d.known());
    let parts = |g: &Graph, concat: NodeId, start: usize| -> Option<Vec<(usize, NodeId)>> {
        let mut at = start;
        let mut out = vec![];
        for &part in &g.node(concat).inputs {
            let Op::Concat { axis } = g.node(concat).op else { return None };
            if !is_scalar_const(g, part, 0.0) {
                out.push((at, part));
            }
            at += g.shape(part)[axis].known()?;
        }
        Some(out)
    };
    match node.op {
        Op::Pad { axis, before, step: 1, .. } => {
            let x = node.inputs[0];
            let pieces = match g.node(x).op {
                Op::Concat { axis: inner } if inner == axis => parts(g, x, before)?,
                _ => vec![(before, x)],
            };
            Some((axis, size(axis)?, pieces))
        }
        Op::Concat { axis } => Some((axis, size(axis)?, parts(g, id, 0)?)),
        _ => None,
    }
}

/// `a + b` as one `Concat` (or a `Pad` of one, when zeros are left only at the ends) of the
/// pieces of both, if they are pieces along the same axis that do not overlap.
fn join_disjoint_pieces(g: &mut Graph, a: NodeId, b: NodeId) -> Option<NodeId> {
    let (axis, size, mut all) = pieces(g, a)?;
    let (axis_b, size_b, more) = pieces(g, b)?;
    if (axis_b, size_b) != (axis, size) {
        return None;
    }
    all.extend(more);
    if all.is_empty() {
        return None;
    }
    all.sort_by_key(|&(start, _)| start);
    let len = |g: &Graph, x: NodeId| g.shape(x)[axis].known();
    let mut end = 0;
    for &(start, x) in &all {
        if start < end {
            return None; // overlapping
        }
        end = start + len(g, x)?;
    }
    let shape = g.node(a).shape.clone();
    let first = all[0].0;
    let internal_gap = all.windows(2).any(|w| w[0].0 + g.shape(w[0].1)[axis].known().unwrap_or(0) < w[1].0);
    let zeros = |g: &mut Graph, n: usize| {
        let mut gap = shape.clone();
        gap[axis] = Dim::Known(n);
        fill(g, 0.0, &gap)
    };
    if internal_gap {
        let mut parts = vec![];
        let mut at = 0;
        for &(start, x) in &all {
            if start > at {
                parts.push(zeros(g, start - at));
            }
            parts.push(x);
            at = start + len(g, x)?;
        }
        if at < size {
            parts.push(zeros(g, size - at));
        }
        return g.add(Op::Concat { axis }, &parts).ok();
    }
    let parts: Vec<NodeId> = all.iter().map(|&(_, x)| x).collect();
    let joined = g.add(Op::Concat { axis }, &parts).ok()?;
    if first == 0 && end == size {
        return Some(joined);
    }
    g.add(Op::Pad { axis, before: first, after: size - end, step: 1 }, &[joined]).ok()
}

/// The product of `dims` as a scalar node: a constant times the run-time size of each symbol.
fn count_of(g: &mut Graph, dims: impl Iterator<Item = Dim>) -> NodeId {
    let mut known = 1usize;
    let mut symbols = vec![];
    for d in dims {
        match d {
            Dim::Known(n) => known *= n,
            Dim::Sym(_) => symbols.push(d),
        }
    }
    let mut count = g.constant(known as f64);
    for dim in symbols {
        let size = g.push(Node { op: Op::DimSize { dim }, inputs: vec![], shape: vec![], name: None, span: None });
        count = g.add(Op::Mul, &[count, size]).expect("scalars multiply");
    }
    count
}

/// `Const value`, or a broadcast of one (a scalar constant; literals are left to `fold`).
fn is_scalar_const(g: &Graph, mut id: NodeId, value: f64) -> bool {
    // A loop, not recursion: a chain of broadcasts may be as long as the program.
    while let Op::Broadcast { .. } = g.node(id).op {
        id = g.node(id).inputs[0];
    }
    g.node(id).op == Op::Const { value }
}

/// Values that cannot be infinite or NaN whatever the inputs: masks, signs, sizes, finite
/// constants, and layout changes or negations of those.
fn finite_by_construction(g: &Graph, id: NodeId) -> bool {
    // A walk with an explicit stack, not recursion: a chain of layout changes and negations
    // (or of concats) may be as long as the program, a hundred thousand `relu`s.
    let mut stack = vec![id];
    while let Some(id) = stack.pop() {
        let node = g.node(id);
        let finite = match &node.op {
            Op::GreaterEq | Op::Greater | Op::Equal | Op::Sign | Op::OneHot { .. } | Op::ArgMaxMask { .. } => true,
            Op::DimSize { .. } | Op::Erf => true,
            // Clipped to finite bounds on both sides (NaN passes through, but only from a NaN x).
            Op::Clip { lo, hi } if lo.is_finite() && hi.is_finite() => true,
            Op::Clip { .. } => {
                stack.push(node.inputs[0]);
                true
            }
            Op::Where => {
                stack.extend(node.inputs[1..].iter().copied());
                true
            }
            Op::RandomUniform { .. } => true,
            Op::Const { value } => value.is_finite(),
            Op::Literal { values } => values.iter().all(|v| v.is_finite()),
            // The values of a gather come from operand 0 (its indices only pick them).
            Op::Broadcast { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::Reverse { .. }
            | Op::Gather { .. }
            | Op::Neg
            | Op::Abs
            | Op::Relu => {
                stack.push(node.inputs[0]);
                true
            }
            Op::Concat { .. } => {
                stack.extend(node.inputs.iter().copied());
                true
            }
            // Anything that can overflow, or passes on an input or parameter (which may be inf).
            Op::Input { .. } | Op::Param { .. } => false,
            Op::Exp | Op::Log | Op::Sqrt | Op::Tanh | Op::Sigmoid => false,
            // alpha·x and softplus(x) ≈ x can overflow in f32 for a finite x.
            Op::LeakyRelu { .. } | Op::Elu { .. } | Op::Softplus => false,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Max | Op::Min => false,
            // Sums can overflow.
            Op::ScatterAdd { .. } => false,
            Op::Sum { .. } | Op::ReduceMax { .. } | Op::MatMul { .. } | Op::LogSoftmax { .. } => false,
            Op::Conv2d { .. } | Op::Conv2dInputGrad { .. } | Op::Conv2dFilterGrad { .. } => false,
            Op::MaxPool2d { .. } | Op::MaxPool2dGrad { .. } | Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => false,
            // A loop's body may compute anything.
            Op::Loop { .. } => false,
        };
        if !finite {
            return false;
        }
    }
    true
}

/// Whether `to` is `from` with unit axes in front.
fn only_prepends_units(to: &Shape, from: &Shape) -> bool {
    to.len() >= from.len() && to.ends_with(from) && to[..to.len() - from.len()].iter().all(|&d| d == Dim::Known(1))
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

/// `value` with `shape`: a constant, broadcast unless `shape` is a scalar.
fn fill(g: &mut Graph, value: f64, shape: &Shape) -> NodeId {
    let c = g.constant(value);
    if shape.is_empty() {
        c
    } else {
        g.add(Op::Broadcast { shape: shape.clone() }, &[c]).expect("a scalar broadcasts to any shape")
    }
}

// ---- cse: common-subexpression elimination ---------------------------------------------------

/// Merge nodes with the same op, operands and shape into the first of them.
pub fn cse(g: &mut Graph) -> bool {
    let mut seen: HashMap<String, NodeId> = HashMap::new();
    rebuild(g, |out, _, node| {
        // Ops hold f64s, so they are not `Hash`; their debug text is an exact key.
        let key = format!("{:?} {:?} {:?}", node.op, node.inputs, node.shape);
        match seen.get(&key) {
            Some(&first) => Rewrite::Replace(first),
            None => {
                seen.insert(key, NodeId(out.nodes.len() as u32)); // where `rebuild` will put it
                Rewrite::Keep
            }
        }
    })
}

// ---- dce: dead-code elimination ----------------------------------------------------------

/// Remove nodes that no output or parameter update uses. A graph with neither is left alone
/// (there is nothing to keep it for, and emptying it is never what a caller wants).
pub fn dce(g: &mut Graph) -> bool {
    if g.outputs.is_empty() && g.updates.is_empty() {
        return false;
    }
    let live = live_nodes(g);
    rebuild(g, |_, i, _| if live[i] { Rewrite::Keep } else { Rewrite::Drop })
}

/// Whether each node is read, directly or through others, by an output or an update (the
/// nodes that computing them runs).
pub fn live_nodes(g: &Graph) -> Vec<bool> {
    let mut live = vec![false; g.nodes.len()];
    for id in g.outputs.iter().map(|o| o.1).chain(g.updates.iter().map(|u| u.1)) {
        live[id.index()] = true;
    }
    // Inputs come before the nodes that read them.
    for i in (0..g.nodes.len()).rev() {
        if live[i] {
            for x in &g.nodes[i].inputs {
                live[x.index()] = true;
            }
        }
    }
    live
}

// ---- loops: the passes inside loop bodies ----------------------------------------------------

/// Run every pass on the body of each loop (to a fixed point, so nested loops too), giving the
/// loop's siblings the optimised spec together. A body keeps its inputs and outputs: only its
/// inner nodes change.
pub fn loop_bodies(g: &mut Graph) -> bool {
    let mut done: HashMap<*const LoopSpec, Option<Arc<LoopSpec>>> = HashMap::new();
    let mut changed = false;
    for i in 0..g.nodes.len() {
        let Op::Loop { spec, output } = &g.nodes[i].op else { continue };
        let output = *output;
        let new = done
            .entry(Arc::as_ptr(spec))
            .or_insert_with(|| {
                let mut body = spec.body.clone();
                let mut any = false;
                for _ in 0..MAX_ROUNDS {
                    let round = PASSES.iter().fold(false, |acc, &(_, pass)| pass(&mut body) | acc);
                    any |= round;
                    if !round {
                        break;
                    }
                }
                any.then(|| Arc::new(LoopSpec { body, ..(**spec).clone() }))
            })
            .clone();
        if let Some(spec) = new {
            g.nodes[i].op = Op::Loop { spec, output };
            changed = true;
        }
    }
    changed
}

// ---- the rebuild every pass shares ----------------------------------------------------------

/// What `rebuild` does with one node.
enum Rewrite {
    /// Copy it.
    Keep,
    /// Use this node of the new graph instead: an earlier one, or a replacement just appended
    /// (which inherits the node's name and span).
    Replace(NodeId),
    /// Leave it out: nothing kept uses it.
    Drop,
}

/// Rebuild the node list front to back into a fresh list, deciding per node (given its old id,
/// and its operands already renumbered) with `rewrite`, which may append nodes to `g`. Outputs and updates are
/// remapped; returns whether any node was replaced or dropped.
fn rebuild(g: &mut Graph, mut rewrite: impl FnMut(&mut Graph, usize, &Node) -> Rewrite) -> bool {
    let old = std::mem::take(&mut g.nodes);
    let mut remap: Vec<Option<NodeId>> = Vec::with_capacity(old.len());
    let new_id = |remap: &[Option<NodeId>], x: NodeId| remap[x.index()].expect("dropped nodes are unused");
    let mut changed = false;
    for (old_id, mut node) in old.into_iter().enumerate() {
        // A node using a dropped node is dead too (only `dce` drops): drop it without asking.
        let Some(inputs) = node.inputs.iter().map(|x| remap[x.index()]).collect::<Option<Vec<_>>>() else {
            remap.push(None);
            continue;
        };
        node.inputs = inputs;
        let before = g.nodes.len();
        remap.push(match rewrite(g, old_id, &node) {
            Rewrite::Keep => Some(g.push(node)),
            Rewrite::Replace(id) => {
                if id.index() >= before {
                    g.annotate(id, node.name.as_deref(), node.span);
                }
                changed = true;
                Some(id)
            }
            Rewrite::Drop => {
                changed = true;
                None
            }
        });
    }
    for (_, id) in &mut g.outputs {
        *id = new_id(&remap, *id);
    }
    for (_, id) in &mut g.updates {
        *id = new_id(&remap, *id);
    }
    changed
}
