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

/// argmax(x, axis) = Σ_j j·[j is the first maximum along `axis`]: the index as a number of
/// the graph's type (as class indices are), with zero gradient (`ArgMaxMask` has none). The
/// axis must have a known size.
pub fn argmax(g: &mut Graph, x: NodeId, axis: usize) -> R {
    let shape = g.shape(x).clone();
    let Dim::Known(n) = shape[axis] else {
        return Err(ShapeError::Invalid("argmax needs an axis of a size known at compile time".into()));
    };
    let mask = add(g, Op::ArgMaxMask { axis }, &[x])?;
    // 0, 1, ..., n − 1 along `axis`, broadcast over the axes after it.
    let positions: Shape =
        std::iter::once(Dim::Known(n)).chain((axis + 1..shape.len()).map(|_| Dim::Known(1))).collect();
    let values: Vec<f64> = (0..n).map(|j| j as f64).collect();
    let index = g.push(crate::ir::graph::Node {
        op: Op::Literal { values: values.into() },
        inputs: vec![],
        shape: positions,
        name: None,
        span: None,
    });
    let weighted = add(g, Op::Mul, &[mask, index])?;
    add(g, Op::Sum { axes: vec![axis] }, &[weighted])
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

/// gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)) (torch's `approximate="none"`).
pub fn gelu(g: &mut Graph, x: NodeId) -> R {
    let r = g.constant(std::f64::consts::FRAC_1_SQRT_2);
    let scaled = add(g, Op::Mul, &[x, r])?;
    let e = add(g, Op::Erf, &[scaled])?;
    half_x_one_plus(g, x, e)
}

/// gelu(x) ≈ ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (torch's `approximate="tanh"`).
pub fn gelu_tanh(g: &mut Graph, x: NodeId) -> R {
    let x2 = add(g, Op::Mul, &[x, x])?;
    let x3 = add(g, Op::Mul, &[x2, x])?;
    let k = g.constant(0.044715);
    let cubic = add(g, Op::Mul, &[k, x3])?;
    let inner = add(g, Op::Add, &[x, cubic])?;
    let c = g.constant((2.0 / std::f64::consts::PI).sqrt());
    let arg = add(g, Op::Mul, &[c, inner])?;
    let t = add(g, Op::Tanh, &[arg])?;
    half_x_one_plus(g, x, t)
}

/// ½x(1 + s)
fn half_x_one_plus(g: &mut Graph, x: NodeId, s: NodeId) -> R {
    let (one, half) = (g.constant(1.0), g.constant(0.5));
    let one_plus = add(g, Op::Add, &[one, s])?;
    let half_x = add(g, Op::Mul, &[half, x])?;
    add(g, Op::Mul, &[half_x, one_plus])
}

/// silu(x) = x·sigmoid(x).
pub fn silu(g: &mut Graph, x: NodeId) -> R {
    let s = add(g, Op::Sigmoid, &[x])?;
    add(g, Op::Mul, &[x, s])
}

/// var(x) over axes = Σ(x − mean)² / (n − correction) (torch.var; correction 1 is the unbiased
/// estimate, 0 the population variance of numpy's default).
pub fn var(g: &mut Graph, x: NodeId, axes: &[usize], correction: usize, keepdims: bool) -> R {
    let shape = g.shape(x).clone();
    let mu = mean(g, x, axes, true)?;
    let centered = add(g, Op::Sub, &[x, mu])?;
    let squared = add(g, Op::Mul, &[centered, centered])?;
    let s = sum(g, squared, axes, keepdims)?;
    let n = count(g, &shape, axes);
    let c = g.constant(correction as f64);
    let dof = add(g, Op::Sub, &[n, c])?;
    add(g, Op::Div, &[s, dof])
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

/// a @ b with numpy's `matmul` semantics: a vector acts as a row on the left and a column on
/// the right (its axis then dropped); operands of 3 or more axes are stacks of matrices whose
/// leading (batch) axes broadcast: `[B, H, T, D] @ [B, H, D, S]` is B·H products. A stack
/// times a matrix (`[B, T, D] @ [D, E]`, a dense layer on a sequence) is one product whose
/// rows are all of B·T, and so is its weight gradient (`MatMul` groups the axes).
pub fn matmul(g: &mut Graph, a: NodeId, b: NodeId) -> R {
    let (sa, sb) = (g.shape(a).clone(), g.shape(b).clone());
    let (ra, rb) = (sa.len(), sb.len());
    if ra == 0 || rb == 0 {
        return Err(ShapeError::Invalid("@ multiplies vectors and matrices, not scalars (use * for those)".into()));
    }
    // The contracted axes: a's last, b's second-to-last (a vector's only one).
    let kb = if rb == 1 { 0 } else { rb - 2 };
    if sa[ra - 1] != sb[kb] {
        return Err(ShapeError::Mismatch { lhs_axis: ra - 1, rhs_axis: kb, what: "matmul" });
    }
    // The batch axes (all but the last two of an operand of 3 or more), aligned from the right.
    let (ba, bb) = (ra.saturating_sub(2), rb.saturating_sub(2));
    let batch = ba.max(bb);
    let mut out_batch = Vec::with_capacity(batch);
    for i in 0..batch {
        let (x, y) = ((i + ba).checked_sub(batch), (i + bb).checked_sub(batch));
        let d = match (x.map(|x| sa[x]), y.map(|y| sb[y])) {
            (Some(p), Some(q)) if p == q || q == Dim::Known(1) => p,
            (Some(Dim::Known(1)), Some(q)) | (None, Some(q)) => q,
            (Some(p), None) => p,
            (Some(_), Some(_)) => {
                return Err(ShapeError::Mismatch {
                    lhs_axis: x.expect("both"),
                    rhs_axis: y.expect("both"),
                    what: "matmul batch",
                })
            }
            (None, None) => unreachable!("i < the longer batch"),
        };
        out_batch.push(d);
    }
    let mut out = out_batch.clone();
    if ra >= 2 {
        out.push(sa[ra - 2]);
    }
    if rb >= 2 {
        out.push(sb[rb - 1]);
    }
    let one = Dim::Known(1);
    let plain = Op::matmul(false, false);
    let product = if bb == 0 || sb[..bb].iter().all(|&d| d == one) {
        // b is one matrix (or vector): every row of a, over all of a's batch, against it.
        let b2 = if rb > 2 { add(g, Op::Reshape { shape: sb[bb..].to_vec() }, &[b])? } else { b };
        add(g, plain, &[a, b2])?
    } else {
        // Both stacks, the shorter one with unit axes in front so the batch axes line up.
        let lift = |g: &mut Graph, x: NodeId, s: &Shape, own: usize| -> R {
            let mut shape = vec![one; batch - own];
            shape.extend(s.iter().copied());
            if shape.len() == s.len() {
                Ok(x)
            } else {
                add(g, Op::Reshape { shape }, &[x])
            }
        };
        let (a2, b2) = (lift(g, a, &sa, ba)?, lift(g, b, &sb, bb)?);
        add(g, Op::MatMul { transpose_a: false, transpose_b: false, batch, contract: 1 }, &[a2, b2])?
    };
    if g.shape(product) == &out {
        Ok(product)
    } else {
        add(g, Op::Reshape { shape: out }, &[product])
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

/// One item of `x[...]`, for one axis of x (`...` is already expanded into `All`s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Index {
    /// `i`: element i (negative counts from the end); the axis is dropped.
    At(i64),
    /// `start:stop:step` with numpy's rules: missing bounds mean the whole axis in the
    /// direction of `step`, negative ones count from the end, and out-of-range ones are
    /// clamped to the axis.
    Range { start: Option<i64>, stop: Option<i64>, step: i64 },
    /// A tensor of whole numbers: numpy `take` along the axis, whose place its axes take.
    Take(NodeId),
}

/// The elements `start:stop:step` select from an axis of `n`, by numpy's rules
/// (`slice.indices`): (first element, count), or why none (step 0, or an empty selection,
/// which netc's sizes cannot express).
pub fn slice_range(n: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> Result<(i64, usize), String> {
    let n = n as i64;
    if step == 0 {
        return Err("has step 0".into());
    }
    // Negative bounds count from the end; then clamp into the axis (one before its start,
    // for a backwards slice, stands for "through element 0").
    let (low, high) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let adjust = |b: i64| if b < 0 { (b + n).max(low) } else { b.min(high) };
    let first = start.map_or(if step > 0 { 0 } else { n - 1 }, adjust);
    let end = stop.map_or(if step > 0 { n } else { -1 }, adjust);
    let span = if step > 0 { end - first } else { first - end };
    let count = if span <= 0 { 0 } else { (span - 1) / step.abs() + 1 };
    if count == 0 {
        return Err(format!("selects no element of an axis of size {n} (a tensor cannot be empty)"));
    }
    Ok((first, count as usize))
}

/// x[items]: each item indexes the next axis of x (fewer items leave the last axes whole).
/// Slices are views (`Slice`, and `Reverse` for a negative step); an integer drops its
/// axis; a tensor of indices gathers along its axis.
pub fn index(g: &mut Graph, x: NodeId, items: &[Index]) -> R {
    let shape = g.shape(x).clone();
    let takes = items.iter().filter(|i| matches!(i, Index::Take(_))).count();
    if items.len() > shape.len() {
        return Err(ShapeError::Invalid(format!(
            "{} indices for a tensor with {} axes {}",
            items.len(),
            shape.len(),
            g.shape_str(&shape)
        )));
    }
    if takes > 1 {
        return Err(ShapeError::Invalid(
            "index with one tensor of indices at a time (numpy would pair several up element by element)".into(),
        ));
    }
    if takes == 1 {
        // numpy moves the axes of a tensor index to the front when integers sit apart from
        // it (x[:, idx, :, 0]); netc keeps them in place, so it refuses what would differ.
        let advanced: Vec<usize> =
            items.iter().enumerate().filter(|(_, i)| !matches!(i, Index::Range { .. })).map(|(k, _)| k).collect();
        if advanced.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err(ShapeError::Invalid(
                "integers and a tensor index separated by a slice: numpy would move the indexed axes to the front; index in two steps".into(),
            ));
        }
    }
    let mut cur = x;
    let mut axis = 0;
    for (k, item) in items.iter().enumerate() {
        let d = shape[k];
        let size = |what: &str| {
            d.known().ok_or_else(|| {
                ShapeError::Invalid(format!("cannot {what} the symbolic dimension {} (axis {k})", g.dim_name(d)))
            })
        };
        match *item {
            Index::At(i) => {
                let n = size("index")?;
                let j = if i < 0 { i + n as i64 } else { i };
                if j < 0 || j as usize >= n {
                    return Err(ShapeError::Invalid(format!("index {i} is out of range for axis {k} of size {n}")));
                }
                let one = add(g, Op::Slice { axis, start: j as usize, len: 1, step: 1 }, &[cur])?;
                let mut kept = g.shape(one).clone();
                kept.remove(axis);
                cur = add(g, Op::Reshape { shape: kept }, &[one])?;
            }
            Index::Range { start: None, stop: None, step: 1 } => axis += 1,
            Index::Range { start, stop, step } => {
                let n = size("slice")?;
                let (first, len) = slice_range(n, start, stop, step).map_err(|e| {
                    let text = |b: Option<i64>| b.map_or(String::new(), |b| b.to_string());
                    let step = if step == 1 { String::new() } else { format!(":{step}") };
                    ShapeError::Invalid(format!("the slice {}:{}{step} of axis {k} {e}", text(start), text(stop)))
                })?;
                let stride = step.unsigned_abs() as usize;
                if (first, len, stride) == (0, n, 1) {
                    axis += 1;
                    continue;
                }
                // Backwards: reverse the axis, then the same elements run forwards from
                // position n - 1 - first.
                let (source, start) = if step < 0 {
                    (add(g, Op::Reverse { axis }, &[cur])?, n - 1 - first as usize)
                } else {
                    (cur, first as usize)
                };
                cur = add(g, Op::Slice { axis, start, len, step: stride }, &[source])?;
                axis += 1;
            }
            Index::Take(idx) => {
                let rank = g.shape(idx).len();
                cur = add(g, Op::Gather { axis }, &[cur, idx])?;
                axis += rank;
            }
        }
    }
    Ok(cur)
}
