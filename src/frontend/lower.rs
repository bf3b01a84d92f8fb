//! Lowering of the language's composite built-ins into graph primitives (softmax, the losses,
//! reductions, ...), so the IR keeps few primitives. A function whose derivative a composite
//! would get wrong at a kink of one of its pieces (relu, softplus, elu, leaky_relu) is an op
//! of its own instead. Input: checked operand nodes;
//! output: new nodes in the graph. `check/builtins.rs` decides which function serves which
//! built-in.

use crate::ir::graph::{Dim, Graph, NodeId, Op, Shape};
use crate::ir::ops::ShapeError;

type R = Result<NodeId, ShapeError>;

fn add(g: &mut Graph, op: Op, inputs: &[NodeId]) -> R {
    g.add(op, inputs)
}

/// dropout(x, p) with u uniform in [0, 1) of x's shape: x·[u >= p]/(1 - p), each element kept
/// with probability 1 - p and scaled so that the expected value is x (zeros when p = 1).
pub fn dropout(g: &mut Graph, x: NodeId, u: NodeId, p: f64) -> R {
    let threshold = g.constant(p);
    let keep = add(g, Op::GreaterEq, &[u, threshold])?;
    let scale = g.constant(if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 });
    let mask = add(g, Op::Mul, &[keep, scale])?;
    add(g, Op::Mul, &[x, mask])
}

/// Normalise a possibly negative axis against a rank.
pub fn axis(axis: i64, rank: usize) -> Result<usize, ShapeError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank.max(1) {
        return Err(ShapeError::Invalid(format!("axis {axis} is out of range for a tensor with {rank} axes")));
    }
    Ok(a as usize)
}

/// Re-insert reduced axes as size 1 (keepdims), so the result broadcasts against the input.
pub fn keep_dims(g: &mut Graph, reduced: NodeId, input_shape: &Shape, axes: &[usize]) -> R {
    let shape: Shape =
        input_shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { Dim::Known(1) } else { d }).collect();
    add(g, Op::Reshape { shape }, &[reduced])
}

/// The number of elements along `axes` as a scalar node (a constant unless a dim is symbolic).
pub fn count(g: &mut Graph, shape: &Shape, axes: &[usize]) -> NodeId {
    let mut known = 1.0;
    let mut syms = vec![];
    for &a in axes {
        match shape[a] {
            Dim::Known(n) => known *= n as f64,
            d @ Dim::Sym(_) => syms.push(d),
        }
    }
    let mut n = g.constant(known);
    for d in syms {
        let s = g.push(crate::ir::graph::Node {
            op: Op::DimSize { dim: d },
            inputs: vec![],
            shape: vec![],
            name: None,
            span: None,
        });
        n = g.add(Op::Mul, &[n, s]).expect("scalars multiply");
    }
    n
}

pub fn sum(g: &mut Graph, x: NodeId, axes: &[usize], keepdims: bool) -> R {
    let shape = g.shape(x).clone();
    let s = add(g, Op::Sum { axes: axes.to_vec() }, &[x])?;
    if keepdims {
        keep_dims(g, s, &shape, axes)
    } else {
        Ok(s)
    }
}

pub fn mean(g: &mut Graph, x: NodeId, axes: &[usize], keepdims: bool) -> R {
    let shape = g.shape(x).clone();
    let s = sum(g, x, axes, keepdims)?;
    let n = count(g, &shape, axes);
    add(g, Op::Div, &[s, n])
}

/// Max over axes; a tie splits the gradient evenly among the maxima (see `Op::ReduceMax`).
pub fn reduce_max(g: &mut Graph, x: NodeId, axes: &[usize], keepdims: bool) -> R {
    let shape = g.shape(x).clone();
    let m = add(g, Op::ReduceMax { axes: axes.to_vec() }, &[x])?;
    if keepdims {
        keep_dims(g, m, &shape, axes)
    } else {
        Ok(m)
    }
}

/// min(x) over axes = -max(-x).
pub fn reduce_min(g: &mut Graph, x: NodeId, axes: &[usize], keepdims: bool) -> R {
    let nx = add(g, Op::Neg, &[x])?;
    let m = reduce_max(g, nx, axes, keepdims)?;
    add(g, Op::Neg, &[m])
}

/// softmax(x) = exp(log_softmax(x)).
pub fn softmax(g: &mut Graph, x: NodeId, axis: usize) -> R {
    let l = add(g, Op::LogSoftmax { axis }, &[x])?;
    add(g, Op::Exp, &[l])
}

/// Scores `[..., C]` and integer labels `[...]` (one class index per position: `[B]` for a
/// classifier, `[B, T]` for a sequence tagger): the class count C.
fn check_labels(g: &Graph, scores: NodeId, labels: NodeId) -> Result<usize, ShapeError> {
    let s = g.shape(scores);
    let l = g.shape(labels);
    if s.len() < 2 {
        return Err(ShapeError::Invalid(format!(
            "scores must be [batch, classes] (or [batch, ..., classes]), not {}",
            g.shape_str(s)
        )));
    }
    let positions = &s[..s.len() - 1];
    if l.as_slice() != positions {
        return Err(ShapeError::Invalid(format!(
            "labels must be {} (one class index per row of scores {}), not {}",
            g.shape_str(&positions.to_vec()),
            g.shape_str(s),
            g.shape_str(l)
        )));
    }
    s[s.len() - 1].known().ok_or_else(|| ShapeError::Invalid("the number of classes must be known".into()))
}

/// cross_entropy(s, y) = mean over positions p of -log_softmax(s_p)[y_p]
///                     = -mean(sum(one_hot(y) * log_softmax(s), last axis)).
/// PyTorch's `CrossEntropyLoss` (mean reduction) with the classes last instead of at axis 1.
pub fn cross_entropy(g: &mut Graph, scores: NodeId, labels: NodeId) -> R {
    let classes = check_labels(g, scores, labels)?;
    let last = g.shape(scores).len() - 1;
    let logp = add(g, Op::LogSoftmax { axis: last }, &[scores])?;
    let onehot = add(g, Op::OneHot { classes }, &[labels])?;
    let picked = add(g, Op::Mul, &[onehot, logp])?;
    let per_position = add(g, Op::Sum { axes: vec![last] }, &[picked])?;
    let all: Vec<usize> = (0..last).collect();
    let m = mean(g, per_position, &all, false)?;
    add(g, Op::Neg, &[m])
}

/// svm(s, y) = mean over positions p of sum_{j != y_p} max(0, s_pj - s_py_p + margin).
pub fn svm(g: &mut Graph, scores: NodeId, labels: NodeId, margin: f64) -> R {
    let classes = check_labels(g, scores, labels)?;
    let last = g.shape(scores).len() - 1;
    let onehot = add(g, Op::OneHot { classes }, &[labels])?;
    let picked = add(g, Op::Mul, &[onehot, scores])?;
    let correct = sum(g, picked, &[last], true)?;
    let diff = add(g, Op::Sub, &[scores, correct])?;
    let m = g.constant(margin);
    let shifted = add(g, Op::Add, &[diff, m])?;
    // relu'(0) = 0: a score exactly at the margin contributes no gradient (as in PyTorch).
    let hinge = add(g, Op::Relu, &[shifted])?;
    // The correct class would contribute max(0, margin) = margin: mask it out.
    let one = g.constant(1.0);
    let others = add(g, Op::Sub, &[one, onehot])?;
    let masked = add(g, Op::Mul, &[hinge, others])?;
    let per_position = add(g, Op::Sum { axes: vec![last] }, &[masked])?;
    let all: Vec<usize> = (0..last).collect();
    mean(g, per_position, &all, false)
}

/// mse(p, t) = mean((p - t)^2) over all elements.
pub fn mse(g: &mut Graph, p: NodeId, t: NodeId) -> R {
    let d = add(g, Op::Sub, &[p, t])?;
    let sq = add(g, Op::Mul, &[d, d])?;
    let axes: Vec<usize> = (0..g.shape(sq).len()).collect();
    mean(g, sq, &axes, false)
}

/// l2(a, b, ...) = 0.5 * (sum(a^2) + sum(b^2) + ...).
pub fn l2(g: &mut Graph, tensors: &[NodeId]) -> R {
    let mut total = g.constant(0.0);
    for &t in tensors {
        let sq = add(g, Op::Mul, &[t, t])?;
        let axes: Vec<usize> = (0..g.shape(sq).len()).collect();
        let s = add(g, Op::Sum { axes }, &[sq])?;
        total = add(g, Op::Add, &[total, s])?;
    }
    let half = g.constant(0.5);
    add(g, Op::Mul, &[half, total])
}

/// a @ b for 1-D and 2-D operands: vectors act as a row (left) or a column (right).
pub fn matmul(g: &mut Graph, a: NodeId, b: NodeId) -> R {
    let (ra, rb) = (g.shape(a).len(), g.shape(b).len());
    let mm = Op::MatMul { transpose_a: false, transpose_b: false };
    match (ra, rb) {
        (2, 2) => add(g, mm, &[a, b]),
        (1, 1) => {
            let p = add(g, Op::Mul, &[a, b])?;
            if g.shape(a) != g.shape(b) {
                return Err(ShapeError::Mismatch { lhs_axis: 0, rhs_axis: 0, what: "dot product" });
            }
            add(g, Op::Sum { axes: vec![0] }, &[p])
        }
        (2, 1) => {
            let col = vec![g.shape(b)[0], Dim::Known(1)];
            let bc = add(g, Op::Reshape { shape: col }, &[b])?;
            let m = add(g, mm, &[a, bc]).map_err(|e| remap_vector(e, 1))?;
            let out = vec![g.shape(m)[0]];
            add(g, Op::Reshape { shape: out }, &[m])
        }
        (1, 2) => {
            let row = vec![Dim::Known(1), g.shape(a)[0]];
            let ar = add(g, Op::Reshape { shape: row }, &[a])?;
            let m = add(g, mm, &[ar, b]).map_err(|e| remap_vector(e, 0))?;
            let out = vec![g.shape(m)[1]];
            add(g, Op::Reshape { shape: out }, &[m])
        }
        _ => Err(ShapeError::Invalid(format!(
            "matmul takes vectors and matrices; operands have {ra} and {rb} axes (reshape or flatten first)"
        ))),
    }
}

/// A mismatch found on the reshaped vector operand refers to its only axis.
fn remap_vector(e: ShapeError, vector_operand: usize) -> ShapeError {
    match e {
        ShapeError::Mismatch { lhs_axis, rhs_axis, what } => ShapeError::Mismatch {
            lhs_axis: if vector_operand == 0 { 0 } else { lhs_axis },
            rhs_axis: if vector_operand == 1 { 0 } else { rhs_axis },
            what,
        },
        other => other,
    }
}

/// flatten([N, d1, d2, ...]) = [N, d1*d2*...]
pub fn flatten(g: &mut Graph, x: NodeId) -> R {
    let shape = g.shape(x).clone();
    if shape.is_empty() {
        return Err(ShapeError::Invalid("cannot flatten a scalar".into()));
    }
    let mut rest = 1usize;
    for d in &shape[1..] {
        let n =
            d.known().ok_or_else(|| ShapeError::Invalid("flatten: only the first dimension may be symbolic".into()))?;
        rest = rest.checked_mul(n).ok_or_else(|| ShapeError::Invalid("flatten: the element count overflows".into()))?;
    }
    add(g, Op::Reshape { shape: vec![shape[0], Dim::Known(rest)] }, &[x])
}

/// x[i, j, ...]: slice each indexed axis to one element and drop it.
pub fn index(g: &mut Graph, x: NodeId, indices: &[i64]) -> R {
    let shape = g.shape(x).clone();
    if indices.len() > shape.len() {
        return Err(ShapeError::Invalid(format!(
            "{} indices for a tensor with {} axes {}",
            indices.len(),
            shape.len(),
            g.shape_str(&shape)
        )));
    }
    let mut cur = x;
    for (axis, &i) in indices.iter().enumerate() {
        let n = shape[axis].known().ok_or_else(|| {
            ShapeError::Invalid(format!("cannot index the symbolic dimension {}", g.dim_name(shape[axis])))
        })?;
        let j = if i < 0 { i + n as i64 } else { i };
        if j < 0 || j as usize >= n {
            return Err(ShapeError::Invalid(format!("index {i} is out of range for axis {axis} of size {n}")));
        }
        cur = add(g, Op::Slice { axis, start: j as usize, len: 1 }, &[cur])?;
    }
    let out: Shape = shape[indices.len()..].to_vec();
    add(g, Op::Reshape { shape: out }, &[cur])
}
