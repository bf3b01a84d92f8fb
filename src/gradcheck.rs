//! Gradient checking: the analytic gradient (`autodiff` + `interp`) against central finite
//! differences of the forward graph. Input: a graph, a value, leaves and their tensors;
//! output: per leaf, the largest relative error. Everything runs in f64.

use crate::autodiff;
use crate::graph::{DType, Graph, NodeId, Op};
use crate::interp;
use crate::tensor::Tensor;

/// How well the analytic gradient of one `wrt` leaf matches the numeric one.
#[derive(Clone, Debug)]
pub struct GradReport {
    /// The leaf's name (`W1`, `x`).
    pub name: String,
    /// The largest relative error over the elements (see [`relative_errors`]).
    pub max_rel_error: f64,
    /// The largest |analytic - numeric| over the elements.
    pub max_abs_error: f64,
    /// Flat index of the element with the largest relative error.
    pub worst: usize,
    pub analytic: Tensor,
    pub numeric: Tensor,
}

/// Check d`of`/d`wrt` by central differences with step `eps` (1e-6 suits f64).
///
/// Each `wrt` must be an `Input` or `Param` leaf. The graph is converted to f64 first. A
/// non-scalar `of` is checked through the scalar L = Σ of ⊙ v for a fixed pseudo-random v
/// (the vector-Jacobian product that `autodiff` computes with v as its upstream gradient), so
/// gradients that happen to sum to zero cannot hide errors.
pub fn check(
    g: &Graph,
    of: NodeId,
    wrt: &[NodeId],
    inputs: &[Tensor],
    params: &[Tensor],
    eps: f64,
) -> Result<Vec<GradReport>, String> {
    let mut forward = g.clone();
    forward.dtype = DType::F64;
    let leaves = wrt.iter().map(|&w| leaf_of(&forward, w)).collect::<Result<Vec<_>, _>>()?;

    // The upstream gradient v: ones for a scalar, else fixed pseudo-random values in [-1, 1).
    let of_value = interp::value(&forward, of, inputs, params)?;
    let v = if of_value.shape.is_empty() {
        Tensor::scalar(1.0)
    } else {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let data = (0..of_value.numel()).map(|_| pseudo_random(&mut state)).collect();
        Tensor::new(of_value.shape.clone(), data)
    };

    // Analytic: the backward graph, fed v when it asks for an upstream gradient.
    let mut backward = forward.clone();
    let b = autodiff::backward(&mut backward, of, wrt)?;
    let mut bw_inputs = inputs.to_vec();
    if matches!(backward.node(b.seed).op, Op::Input { .. }) {
        bw_inputs.push(v.clone());
    }
    let values = interp::run(&backward, &bw_inputs, params)?;

    // Numeric: (L(x + eps) - L(x - eps)) / 2eps, one element at a time.
    let loss = |inputs: &[Tensor], params: &[Tensor]| -> Result<f64, String> {
        let y = interp::value(&forward, of, inputs, params)?;
        Ok(y.data.iter().zip(&v.data).map(|(a, b)| a * b).sum())
    };
    let mut reports = Vec::with_capacity(wrt.len());
    for (k, &(is_param, index)) in leaves.iter().enumerate() {
        let analytic = values[b.grads[k].index()].clone();
        let (mut xs, mut ps) = (inputs.to_vec(), params.to_vec());
        let base = if is_param { &params[index] } else { &inputs[index] };
        let mut numeric = Tensor::zeros(base.shape.clone());
        let mut largest_loss: f64 = 0.0;
        for j in 0..base.numel() {
            let mut at = |delta: f64| -> Result<f64, String> {
                let t = if is_param { &mut ps[index] } else { &mut xs[index] };
                t.data[j] = base.data[j] + delta;
                let l = loss(&xs, &ps);
                let t = if is_param { &mut ps[index] } else { &mut xs[index] };
                t.data[j] = base.data[j];
                l
            };
            let (plus, minus) = (at(eps)?, at(-eps)?);
            largest_loss = largest_loss.max(plus.abs()).max(minus.abs());
            numeric.data[j] = (plus - minus) / (2.0 * eps);
        }
        let rel = relative_errors(&analytic.data, &numeric.data, noise_floor(largest_loss, eps));
        let (worst, max_rel_error) =
            rel.iter().copied().enumerate().fold(
                (0, 0.0),
                |best, (j, e)| {
                    if e > best.1 || e.is_nan() {
                        (j, e)
                    } else {
                        best
                    }
                },
            );
        let max_abs_error = analytic.data.iter().zip(&numeric.data).map(|(a, n)| (a - n).abs()).fold(0.0, f64::max);
        let name = forward.node(wrt[k]).name.clone().unwrap_or_else(|| wrt[k].to_string());
        reports.push(GradReport { name, max_rel_error, max_abs_error, worst, analytic, numeric });
    }
    Ok(reports)
}

/// Per element, |a - n| / max(|a| + |n|, 1e-3·scale, floor), where scale is the largest
/// |a| + |n| of the tensor and `floor` the finite-difference noise level ([`noise_floor`]).
///
/// Relative, so large and small gradients are judged alike (as in CS231n's gradient checks).
/// The floors make elements much smaller than the tensor's largest (or than the noise) count
/// absolutely: a difference quotient carries a rounding error of about ε·|L|/eps, which would
/// otherwise make a correct but tiny element (or a true 0 computed as a rounding residue) look
/// 100% wrong. An error of 1e-6 on such an element still means |a - n| <= 1e-9·scale.
/// Exact agreement (including both 0) gives 0; a NaN on either side gives NaN.
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

/// The rounding noise of a central difference of L: each loss carries a relative error of a
/// few hundred ulps after many operations, amplified by 1/(2 eps).
pub fn noise_floor(largest_loss: f64, eps: f64) -> f64 {
    1e3 * f64::EPSILON * (1.0 + largest_loss) / eps
}

/// (is a parameter, index) of an `Input` or `Param` leaf.
fn leaf_of(g: &Graph, id: NodeId) -> Result<(bool, usize), String> {
    match g.nodes.get(id.index()).map(|n| &n.op) {
        Some(Op::Param { index }) => Ok((true, *index)),
        Some(Op::Input { index }) => Ok((false, *index)),
        Some(op) => Err(format!(
            "gradcheck: {id} ({}) is not an input or parameter, so it cannot be perturbed",
            crate::ops::describe(op, g)
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
