//! Gradient checking: the analytic gradient (`autodiff` + `interp`) against central finite
//! differences of the forward graph. Input: a graph, a value, leaves and their tensors;
//! output: per leaf, the largest relative error. Everything runs in f64.

use crate::ir::autodiff;
use crate::ir::graph::{DType, Graph, NodeId, Op};
use crate::ir::interp;
use crate::ir::ops::{self, Env};
use crate::ir::tensor::Tensor;

/// How well the analytic gradient of one `wrt` leaf matches the numeric one.
#[derive(Clone, Debug)]
pub struct GradReport {
    /// The leaf's name (`W1`, `x`).
    pub name: String,
    /// The largest relative error over the checked elements not at a kink (see
    /// [`relative_errors`]).
    pub max_rel_error: f64,
    /// The largest |analytic - numeric| over the same elements.
    pub max_abs_error: f64,
    /// Flat index of the element with the largest relative error.
    pub worst: usize,
    /// How many elements were checked (all, or a sample of a large tensor).
    pub checked: usize,
    /// Checked elements whose ±eps perturbation crossed a kink (see [`check`]): left out.
    pub kinks: usize,
    pub analytic: Tensor,
    /// The central differences; NaN at elements that were not checked.
    pub numeric: Tensor,
}

/// At most this many elements of each `wrt` tensor are checked by [`check`] (all of a smaller
/// tensor). Each costs two forward passes; as in CS231n, a few dimensions catch a wrong rule.
pub const MAX_CHECKED: usize = 32;

/// Check d`of`/d`wrt` by central differences with step `eps` (1e-5 to 1e-6 suits f64), on at
/// most [`MAX_CHECKED`] elements of each `wrt` tensor.
///
/// Each `wrt` must be an `Input` or `Param` leaf. The graph is converted to f64 first. A
/// non-scalar `of` is checked through the scalar L = Σ of ⊙ v for a fixed pseudo-random v
/// (the vector-Jacobian product that `autodiff` computes with v as its upstream gradient), so
/// gradients that happen to sum to zero cannot hide errors.
///
/// Kinks (CS231n): where a max, min, |x| or max-pool is within eps of switching branches, the
/// two sides of the central difference see different slopes and its value is not a gradient
/// at all (a relu input 4e-7 from 0 gives half the slope). So every branch decision is
/// recorded at x, x + eps and x - eps; an element whose perturbation changes one is counted
/// in `kinks` and left out of the errors instead of being reported as wrong.
pub fn check(
    g: &Graph,
    of: NodeId,
    wrt: &[NodeId],
    inputs: &[Tensor],
    params: &[Tensor],
    eps: f64,
) -> Result<Vec<GradReport>, String> {
    check_elements(g, of, wrt, inputs, params, eps, MAX_CHECKED)
}

/// [`check`] with at most `max_elements` checked per `wrt` tensor (`usize::MAX`: all).
pub fn check_elements(
    g: &Graph,
    of: NodeId,
    wrt: &[NodeId],
    inputs: &[Tensor],
    params: &[Tensor],
    eps: f64,
    max_elements: usize,
) -> Result<Vec<GradReport>, String> {
    let mut forward = g.clone();
    forward.dtype = DType::F64;
    let leaves = wrt.iter().map(|&w| leaf_of(&forward, w)).collect::<Result<Vec<_>, _>>()?;

    // The upstream gradient v: ones for a scalar, else fixed pseudo-random values in [-1, 1).
    let base_values = interp::run(&forward, inputs, params)?;
    let of_value = &base_values[of.index()];
    let v = if of_value.shape.is_empty() {
        Tensor::scalar(1.0)
    } else {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let data = (0..of_value.numel()).map(|_| pseudo_random(&mut state)).collect();
        Tensor::new(of_value.shape.clone(), data)
    };
    let base_branches: Vec<Option<Vec<u64>>> =
        (0..forward.nodes.len()).map(|i| branches(&forward, i, &base_values)).collect();

    // Analytic: the backward graph, fed v when it asks for an upstream gradient.
    let mut backward = forward.clone();
    let b = autodiff::backward(&mut backward, of, wrt)?;
    let mut bw_inputs = inputs.to_vec();
    if matches!(backward.node(b.seed).op, Op::Input { .. }) {
        bw_inputs.push(v.clone());
    }
    let analytic_values = interp::run(&backward, &bw_inputs, params)?;

    // Numeric: (L(x + eps) - L(x - eps)) / 2eps per checked element, recomputing only the
    // nodes downstream of the perturbed leaf.
    let mut reports = Vec::with_capacity(wrt.len());
    for (k, &(is_param, index)) in leaves.iter().enumerate() {
        let analytic = analytic_values[b.grads[k].index()].clone();
        let leaf_op = forward.node(wrt[k]).op.clone();
        let dirty = downstream(&forward, &leaf_op);
        let base = if is_param { &params[index] } else { &inputs[index] };
        let sample = sample_indices(base.numel(), max_elements, k as u64);

        let (mut xs, mut ps) = (inputs.to_vec(), params.to_vec());
        let mut scratch = base_values.clone();
        let mut numeric = Tensor::new(base.shape.clone(), vec![f64::NAN; base.numel()]);
        let mut at_kink = vec![false; base.numel()];
        let mut magnitude: f64 = 0.0;
        for &j in &sample {
            let mut loss = [0.0; 2];
            for (side, delta) in [eps, -eps].into_iter().enumerate() {
                let leaf = if is_param { &mut ps[index] } else { &mut xs[index] };
                leaf.data[j] = base.data[j] + delta;
                interp::rerun(&forward, &xs, &ps, &mut scratch, &dirty)?;
                // L = Σ of ⊙ v, and Σ|of ⊙ v|, the magnitude L's rounding error scales with.
                let terms = scratch[of.index()].data.iter().zip(&v.data).map(|(a, b)| a * b);
                let (l, m) = terms.fold((0.0, 0.0), |(l, m), t| (l + t, m + t.abs()));
                loss[side] = l;
                magnitude = magnitude.max(m);
                at_kink[j] |= (0..forward.nodes.len()).any(|i| {
                    dirty[i] && base_branches[i].is_some() && branches(&forward, i, &scratch) != base_branches[i]
                });
            }
            let leaf = if is_param { &mut ps[index] } else { &mut xs[index] };
            leaf.data[j] = base.data[j];
            numeric.data[j] = (loss[0] - loss[1]) / (2.0 * eps);
        }

        // Errors over the checked elements that are not at a kink; 0 elsewhere.
        let compared: Vec<usize> = sample.iter().copied().filter(|&j| !at_kink[j]).collect();
        let a: Vec<f64> = compared.iter().map(|&j| analytic.data[j]).collect();
        let n: Vec<f64> = compared.iter().map(|&j| numeric.data[j]).collect();
        let (mut rel, mut abs) = (vec![0.0; base.numel()], vec![0.0; base.numel()]);
        for (c, e) in relative_errors(&a, &n, noise_floor(magnitude, eps)).into_iter().enumerate() {
            (rel[compared[c]], abs[compared[c]]) = (e, (a[c] - n[c]).abs());
        }
        let (_, max_abs_error) = largest(&abs);
        let (worst, max_rel_error) = largest(&rel);
        let name = forward.node(wrt[k]).name.clone().unwrap_or_else(|| wrt[k].to_string());
        let kinks = sample.iter().filter(|&&j| at_kink[j]).count();
        let checked = sample.len();
        reports.push(GradReport { name, max_rel_error, max_abs_error, worst, checked, kinks, analytic, numeric });
    }
    Ok(reports)
}

/// Which nodes must be recomputed when the tensor of leaf `leaf_op` changes: its nodes and
/// everything that depends on them.
fn downstream(g: &Graph, leaf_op: &Op) -> Vec<bool> {
    let mut dirty = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        dirty[i] = node.op == *leaf_op || node.inputs.iter().any(|x| dirty[x.index()]);
    }
    dirty
}

/// All of 0..n when n <= max, else `max` distinct indices spread pseudo-randomly, sorted.
fn sample_indices(n: usize, max: usize, salt: u64) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < max {
        picked.insert(((pseudo_random(&mut state) + 1.0) / 2.0 * n as f64) as usize % n);
    }
    picked.into_iter().collect()
}

/// (index, value) of the largest error; a NaN counts as the largest (`f64::max` would hide it).
fn largest(errors: &[f64]) -> (usize, f64) {
    let mut best: (usize, f64) = (0, 0.0);
    for (j, &e) in errors.iter().enumerate() {
        if !best.1.is_nan() && (e.is_nan() || e > best.1) {
            best = (j, e);
        }
    }
    best
}

/// The branch decisions of node `i` if its op is not smooth, given all node values: which
/// operand a max or min took, the sign under an |x|, which element a max (or each max-pool
/// window) picked. `None` for smooth ops.
fn branches(g: &Graph, i: usize, values: &[Tensor]) -> Option<Vec<u64>> {
    let env = Env { inputs: &[], params: &[], symbols: &[] };
    let node = &g.nodes[i];
    let x = |k: usize| &values[node.inputs[k].index()];
    let decision = match &node.op {
        Op::Max => ops::eval(&Op::GreaterEq, &[x(0), x(1)], &[], &env),
        Op::Min => ops::eval(&Op::GreaterEq, &[x(1), x(0)], &[], &env),
        Op::Abs => ops::eval(&Op::Sign, &[x(0)], &[], &env),
        Op::ReduceMax { axis } => ops::eval(&Op::ArgMaxMask { axis: *axis }, &[x(0)], &[], &env),
        Op::MaxPool2d { size, stride } | Op::MaxPool2dGrad { size, stride } => {
            // Where each window's gradient would go: the pattern of first maxima.
            let pooled = if let Op::MaxPool2d { .. } = node.op { &values[i] } else { x(1) };
            let ones = Tensor::new(pooled.shape.clone(), vec![1.0; pooled.numel()]);
            ops::eval(&Op::MaxPool2dGrad { size: *size, stride: *stride }, &[x(0), &ones], &[], &env)
        }
        // Their outputs are the decisions.
        Op::Sign | Op::GreaterEq | Op::ArgMaxMask { .. } => Ok(values[i].clone()),
        // Smooth where defined (or with no operands to perturb).
        Op::Input { .. } | Op::Param { .. } | Op::Const { .. } | Op::Literal { .. } | Op::DimSize { .. } => {
            return None
        }
        Op::Neg | Op::Exp | Op::Log | Op::Sqrt | Op::Tanh | Op::Sigmoid => return None,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow => return None,
        Op::Broadcast { .. } | Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. } | Op::Pad { .. } => {
            return None
        }
        // Linear in the values; the indices are whole numbers, never perturbed.
        Op::Reverse { .. } | Op::Concat { .. } | Op::Gather { .. } | Op::ScatterAdd { .. } => return None,
        Op::Sum { .. } | Op::OneHot { .. } | Op::MatMul { .. } | Op::LogSoftmax { .. } => return None,
        Op::Conv2d { .. } | Op::Conv2dInputGrad { .. } | Op::Conv2dFilterGrad { .. } => return None,
        Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => return None,
    };
    // An evaluation error here would already have failed the forward pass: record nothing.
    Some(decision.map(|t| t.data.iter().map(|v| v.to_bits()).collect()).unwrap_or_default())
}

/// Per element, |a - n| / max(|a| + |n|, 1e-3·scale, floor), where scale is the largest
/// |a| + |n| of the tensor and `floor` comes from the finite-difference noise ([`noise_floor`]).
///
/// Relative, so large and small gradients are judged alike (as in CS231n's gradient checks).
/// The floors make elements much smaller than the tensor's largest, or too small for central
/// differences to resolve, count absolutely: otherwise a correct but tiny element (or a true 0
/// computed as a rounding residue) would look 100% wrong. Exact agreement (including both 0)
/// gives 0; a NaN on either side gives NaN.
pub fn relative_errors(analytic: &[f64], numeric: &[f64], floor: f64) -> Vec<f64> {
    let scale = analytic.iter().zip(numeric).map(|(a, n)| a.abs() + n.abs()).fold(0.0, f64::max);
    analytic
        .iter()
        .zip(numeric)
        .map(|(a, n)| {
            if a == n {
                return 0.0;
            }
            let denominator = (a.abs() + n.abs()).max(1e-3 * scale).max(floor);
            (a - n).abs() / denominator
        })
        .collect()
}

/// The size below which a numeric gradient cannot be checked relatively. L = Σ of ⊙ v is
/// computed with a rounding error of about ε·Σ|of ⊙ v| (`magnitude`), which the difference
/// quotient divides by 2 eps. Elements smaller than 10⁷ times that noise are compared
/// absolutely against this floor, so rounding noise alone reports below 1e-7 while a real
/// error stays visible (a 1% error in an element at the floor reports 1e-2).
pub fn noise_floor(magnitude: f64, eps: f64) -> f64 {
    1e7 * f64::EPSILON * magnitude / eps
}

/// (is a parameter, index) of an `Input` or `Param` leaf.
fn leaf_of(g: &Graph, id: NodeId) -> Result<(bool, usize), String> {
    match g.nodes.get(id.index()).map(|n| &n.op) {
        Some(Op::Param { index }) => Ok((true, *index)),
        Some(Op::Input { index }) => Ok((false, *index)),
        Some(op) => Err(format!(
            "gradcheck: {id} ({}) is not an input or parameter, so it cannot be perturbed",
            crate::ir::ops::describe(op, g)
        )),
        None => Err(format!("gradcheck: {id} is not a node of the graph")),
    }
}

/// xorshift64*: a fixed sequence in [-1, 1), enough to weight the outputs.
fn pseudo_random(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let bits = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
    bits as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}
