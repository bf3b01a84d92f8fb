//! Gradient checking: the analytic gradient (`autodiff` + `interp`) against central finite
//! differences of the forward graph. Input: a graph, a value, leaves and their tensors;
//! output: per leaf, the largest relative error. Everything runs in f64.

use crate::ir::autodiff;
use crate::ir::graph::{DType, Graph, NodeId, Op};
use crate::ir::interp;
use crate::ir::ops::{self, Env};
use crate::ir::tensor::Tensor;

/// An element left out of the comparison: moving it by ±eps moves `node` across a branch of
/// its op (a relu or max switches, an |x| changes sign, ...) *and* the one-sided difference
/// quotients of L disagree, so L itself has a kink there and no derivative to compare with.
/// (Where the pieces' kinks cancel, as in max(0, x) + ln(1 + e^−|x|) = softplus at 0, the
/// slopes agree and the element is compared.)
#[derive(Clone, Debug, PartialEq)]
pub struct Skip {
    /// Flat index of the element in its leaf.
    pub element: usize,
    /// The first node (in graph order) whose branch changed.
    pub node: NodeId,
    /// (L(x) − L(x − eps))/eps and (L(x + eps) − L(x))/eps.
    pub slopes: (f64, f64),
}

impl GradReport {
    /// Elements compared against central differences (checked and not skipped).
    pub fn compared(&self) -> usize {
        self.checked - self.skipped.len()
    }
}

/// One-sided slopes that differ by less than this (relative to the larger) count as equal:
/// L is smooth at the element even though an op in it switched branches. A real kink (relu:
/// slopes 0 and 1) differs by O(1); a smooth L differs by about eps·L'' (1e-6·L'').
pub const KINK_TOLERANCE: f64 = 1e-4;

/// Elements whose analytic and numeric values differ by at most this agree, whatever their
/// relative error: central differences with eps = 1e-6 carry a truncation error of about
/// eps²·L''' (1e-12), so an analytic 0 against a numeric 1e-12 is agreement, not a failure.
pub const ABS_FLOOR: f64 = 1e-9;

/// How well the analytic gradient of one `wrt` leaf matches the numeric one.
#[derive(Clone, Debug)]
pub struct GradReport {
    /// The leaf's name (`W1`, `x`).
    pub name: String,
    /// The largest relative error over the compared elements (checked, not skipped) whose
    /// analytic and numeric values differ by more than [`ABS_FLOOR`] (see [`relative_errors`]).
    pub max_rel_error: f64,
    /// The largest |analytic - numeric| over the same elements.
    pub max_abs_error: f64,
    /// Flat index of the element with the largest relative error.
    pub worst: usize,
    /// How many elements were checked (all, or a sample of a large tensor).
    pub checked: usize,
    /// Checked elements left out because L has a kink there (see [`check`]), with the reason.
    pub skipped: Vec<Skip>,
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
/// Kinks (CS231n): where a max, min, relu, |x| or max-pool is within eps of switching
/// branches, the two sides of the central difference may see different slopes, and then its
/// value is not a gradient at all (a relu input 4e-7 from 0 gives 0.7, neither slope). So every
/// branch decision is recorded at x, x + eps and x − eps; where a perturbation changes one,
/// the one-sided slopes of L decide: if they agree (within [`KINK_TOLERANCE`]) L is smooth
/// there and the element is compared as usual, otherwise it is reported in `skipped` with
/// the node that switched, and left out of the errors.
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
    check_with_magnitude(g, of, None, wrt, inputs, params, eps, max_elements)
}

/// `check_elements`, where the rounding error of `of` scales with the value of the scalar node
/// `magnitude` too (when `of` is a sum whose terms cancel, as `check_second`'s s is).
#[allow(clippy::too_many_arguments)]
fn check_with_magnitude(
    g: &Graph,
    of: NodeId,
    magnitude_of: Option<NodeId>,
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
    let (base_loss, _) = weighted_sum(of_value, &v);
    // The kinks that matter are those `of` is computed through (not a magnitude's |x|).
    let mut feeds_of = vec![false; forward.nodes.len()];
    feeds_of[of.index()] = true;
    for i in (0..forward.nodes.len()).rev() {
        if feeds_of[i] {
            forward.nodes[i].inputs.iter().for_each(|x| feeds_of[x.index()] = true);
        }
    }
    let base_branches: Vec<Option<Vec<u64>>> = (0..forward.nodes.len())
        .map(|i| if feeds_of[i] { branches(&forward, i, &base_values) } else { None })
        .collect();

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
        let mut skipped = vec![];
        let mut magnitude: f64 = 0.0;
        for &j in &sample {
            let mut loss = [0.0; 2];
            let mut switched = None;
            for (side, delta) in [eps, -eps].into_iter().enumerate() {
                let leaf = if is_param { &mut ps[index] } else { &mut xs[index] };
                leaf.data[j] = base.data[j] + delta;
                interp::rerun(&forward, &xs, &ps, &mut scratch, &dirty)?;
                // L = Σ of ⊙ v, and Σ|of ⊙ v|, the magnitude L's rounding error scales with.
                let (l, m) = weighted_sum(&scratch[of.index()], &v);
                loss[side] = l;
                magnitude = magnitude.max(m);
                if let Some(node) = magnitude_of {
                    magnitude = magnitude.max(scratch[node.index()].data[0].abs());
                }
                switched = switched.or_else(|| {
                    (0..forward.nodes.len()).find(|&i| {
                        dirty[i] && base_branches[i].is_some() && branches(&forward, i, &scratch) != base_branches[i]
                    })
                });
            }
            let leaf = if is_param { &mut ps[index] } else { &mut xs[index] };
            leaf.data[j] = base.data[j];
            numeric.data[j] = (loss[0] - loss[1]) / (2.0 * eps);
            if let Some(node) = switched {
                let slopes = ((base_loss - loss[1]) / eps, (loss[0] - base_loss) / eps);
                if !slopes_agree(slopes, magnitude, eps) {
                    skipped.push(Skip { element: j, node: NodeId(node as u32), slopes });
                }
            }
        }

        // Errors over the checked elements that are not skipped; 0 elsewhere.
        let compared: Vec<usize> =
            sample.iter().copied().filter(|&j| !skipped.iter().any(|s: &Skip| s.element == j)).collect();
        let a: Vec<f64> = compared.iter().map(|&j| analytic.data[j]).collect();
        let n: Vec<f64> = compared.iter().map(|&j| numeric.data[j]).collect();
        let (mut rel, mut abs) = (vec![0.0; base.numel()], vec![0.0; base.numel()]);
        for (c, e) in relative_errors(&a, &n, noise_floor(magnitude, eps)).into_iter().enumerate() {
            (rel[compared[c]], abs[compared[c]]) = (e, (a[c] - n[c]).abs());
        }
        let (_, max_abs_error) = largest(&abs);
        let (worst, max_rel_error) = largest(&rel);
        let name = forward.node(wrt[k]).name.clone().unwrap_or_else(|| wrt[k].to_string());
        let checked = sample.len();
        reports.push(GradReport { name, max_rel_error, max_abs_error, worst, checked, skipped, analytic, numeric });
    }
    Ok(reports)
}

/// Check second derivatives: the gradient of s = Σ_k ⟨v_k, d`of`/d`wrt_k`⟩ (fixed
/// pseudo-random v_k) with respect to each `wrt`, computed by differentiating the backward
/// graph, against central differences of s — that is, of the analytic first derivative.
/// (A non-scalar `of` is first weighted to a scalar, as in [`check`].) The result checks
/// v-weighted rows of the Hessian: every VJP rule's own VJP, and the driver's handling of
/// backward graphs as forward ones.
pub fn check_second(
    g: &Graph,
    of: NodeId,
    wrt: &[NodeId],
    inputs: &[Tensor],
    params: &[Tensor],
    eps: f64,
    max_elements: usize,
) -> Result<Vec<GradReport>, String> {
    let mut g2 = g.clone();
    g2.dtype = DType::F64;
    let symbols = interp::bind_symbols(&g2, inputs, params)?;
    let mut weights = Weights { inputs: inputs.to_vec(), symbols, state: 0x5851_f42d_4c95_7f2d };
    let of = weights.sum(&mut g2, of)?.0;
    let grads = autodiff::differentiate(&mut g2, of, wrt)?;
    // s, and Σ_k Σ |v_k ⊙ d_k|: s's terms cancel (a bias before batch normalisation has a
    // gradient of exactly 0, computed as a sum of terms that cancel), so its rounding error
    // scales with the size of its terms, not with s.
    let (mut s, mut size) = (None, None);
    let add = |g2: &mut Graph, acc: Option<NodeId>, term: NodeId| match acc {
        None => Ok(term),
        Some(acc) => g2.add(Op::Add, &[acc, term]).map_err(|e| e.message(g2, &[])),
    };
    for d in grads {
        let (term, abs_term) = weights.sum(&mut g2, d)?;
        s = Some(add(&mut g2, s, term)?);
        size = Some(add(&mut g2, size, abs_term)?);
    }
    let s = s.ok_or("no gradient to check")?;
    check_with_magnitude(&g2, s, size, wrt, &weights.inputs, params, eps, max_elements)
}

/// The fixed pseudo-random weights of `check_second`, each a new input of the graph.
struct Weights {
    /// The graph's input tensors, the weights appended.
    inputs: Vec<Tensor>,
    symbols: Vec<Option<usize>>,
    state: u64,
}

impl Weights {
    /// (Σ x ⊙ v, Σ |x ⊙ v|) for a new input v with values in [-1, 1) (`x` and |x| when it is
    /// a scalar).
    fn sum(&mut self, g: &mut Graph, x: NodeId) -> Result<(NodeId, NodeId), String> {
        let shape = g.shape(x).clone();
        if shape.is_empty() {
            let abs = g.add(Op::Abs, &[x]).map_err(|e| e.message(g, &[]))?;
            return Ok((x, abs));
        }
        let dims = interp::resolve(g, &shape, &self.symbols)?;
        let n: usize = dims.iter().product();
        let values: Vec<f64> = (0..n).map(|_| pseudo_random(&mut self.state)).collect();
        let v = g.add_input(&format!("v{}", self.inputs.len()), shape.clone(), crate::ir::graph::InputKind::Variable);
        self.inputs.push(Tensor::new(dims, values));
        let p = g.add(Op::Mul, &[x, v]).map_err(|e| e.message(g, &[]))?;
        let axes: Vec<usize> = (0..shape.len()).collect();
        let sum = g.add(Op::Sum { axes: axes.clone() }, &[p]).map_err(|e| e.message(g, &[]))?;
        let abs = g.add(Op::Abs, &[p]).map_err(|e| e.message(g, &[]))?;
        let abs = g.add(Op::Sum { axes }, &[abs]).map_err(|e| e.message(g, &[]))?;
        Ok((sum, abs))
    }
}

/// (Σ of ⊙ v, Σ |of ⊙ v|).
fn weighted_sum(of: &Tensor, v: &Tensor) -> (f64, f64) {
    let terms = of.data.iter().zip(&v.data).map(|(a, b)| a * b);
    terms.fold((0.0, 0.0), |(l, m), t| (l + t, m + t.abs()))
}

/// Whether one-sided slopes (left, right) agree: within [`KINK_TOLERANCE`] of the larger, or
/// within their rounding noise (each is a difference of two values of L, each rounded to
/// about ε·`magnitude`, divided by eps).
fn slopes_agree((left, right): (f64, f64), magnitude: f64, eps: f64) -> bool {
    let noise = 1e3 * f64::EPSILON * magnitude / eps;
    (left - right).abs() <= KINK_TOLERANCE * left.abs().max(right.abs()) + noise
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

/// The branch decisions of node `i` if its op has kinks, given all node values: which side
/// of 0 a relu's (leaky relu's, elu's) input is on, which operands of a max or min are the
/// largest or smallest (ties included), the sign under an |x|, which elements a reduced max
/// or each max-pool window picked. `None` for ops that are smooth wherever they are defined.
fn branches(g: &Graph, i: usize, values: &[Tensor]) -> Option<Vec<u64>> {
    let env = Env { inputs: &[], params: &[], symbols: &[] };
    let node = &g.nodes[i];
    let x = |k: usize| &values[node.inputs[k].index()];
    let ge = |a: &Tensor, b: &Tensor| ops::eval(&Op::GreaterEq, &[a, b], &[], &env);
    let zero = Tensor::scalar(0.0);
    let decision = match &node.op {
        Op::Relu => ge(&zero, x(0)),
        // Smooth at 0 when alpha = 1 (the identity; elu with slope 1 on both sides).
        Op::LeakyRelu { alpha } | Op::Elu { alpha } if *alpha == 1.0 => return None,
        Op::LeakyRelu { .. } | Op::Elu { .. } => ge(&zero, x(0)),
        Op::Max | Op::Min => ge(x(0), x(1)).and_then(|l| ge(x(1), x(0)).map(|r| concat(l, r))),
        Op::Abs => ops::eval(&Op::Sign, &[x(0)], &[], &env),
        // Kinks at both bounds: which side of each the element is on.
        Op::Clip { lo, hi } => {
            ge(x(0), &Tensor::scalar(*lo)).and_then(|l| ge(&Tensor::scalar(*hi), x(0)).map(|h| concat(l, h)))
        }
        // Switches between its operands where the condition changes; the condition is a mask
        // from a comparison (no gradient), so its own decision is its value.
        Op::Where => Ok(x(0).clone()),
        Op::ReduceMax { .. } => {
            // [x = max] per element: the maxima the gradient is split among.
            let kept: Vec<usize> =
                x(0).shape.iter().enumerate().map(|(a, &n)| if reduced(&node.op, a) { 1 } else { n }).collect();
            ops::eval(&Op::Reshape { shape: vec![] }, &[&values[i]], &kept, &env).and_then(|m| ge(x(0), &m))
        }
        Op::MaxPool2d { size, stride } | Op::MaxPool2dGrad { size, stride } => {
            // Where each window's gradient would go: the pattern of first maxima.
            let pooled = if let Op::MaxPool2d { .. } = node.op { &values[i] } else { x(1) };
            let ones = Tensor::new(pooled.shape.clone(), vec![1.0; pooled.numel()]);
            ops::eval(&Op::MaxPool2dGrad { size: *size, stride: *stride }, &[x(0), &ones], &[], &env)
        }
        // Their outputs are the decisions.
        Op::Sign | Op::GreaterEq | Op::Greater | Op::Equal | Op::ArgMaxMask { .. } => Ok(values[i].clone()),
        // Smooth where defined (or with no operands to perturb).
        Op::Input { .. } | Op::Param { .. } | Op::Const { .. } | Op::Literal { .. } | Op::DimSize { .. } => {
            return None
        }
        Op::Neg | Op::Exp | Op::Log | Op::Sqrt | Op::Tanh | Op::Sigmoid | Op::Softplus | Op::Erf => return None,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow => return None,
        Op::Broadcast { .. } | Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. } | Op::Pad { .. } => {
            return None
        }
        // Linear in the values; the indices are whole numbers, never perturbed.
        Op::Reverse { .. } | Op::Concat { .. } | Op::Gather { .. } | Op::ScatterAdd { .. } => return None,
        Op::Sum { .. } | Op::OneHot { .. } | Op::MatMul { .. } | Op::LogSoftmax { .. } => return None,
        Op::Conv2d { .. } | Op::Conv2dInputGrad { .. } | Op::Conv2dFilterGrad { .. } => return None,
        Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => return None,
        // The decisions inside a loop body are not recorded: checks through loops keep their
        // values away from kinks.
        Op::Loop { .. } => return None,
        // Its operand is the key, an input that central differences never perturb.
        Op::RandomUniform { .. } => return None,
    };
    // An evaluation error here would already have failed the forward pass: record nothing.
    Some(decision.map(|t| t.data.iter().map(|v| v.to_bits()).collect()).unwrap_or_default())
}

/// Whether `axis` is one that a `ReduceMax` reduces.
fn reduced(op: &Op, axis: usize) -> bool {
    matches!(op, Op::ReduceMax { axes } if axes.contains(&axis))
}

/// Two decision tensors as one.
fn concat(mut a: Tensor, b: Tensor) -> Tensor {
    a.data.extend(b.data);
    a.shape = vec![a.data.len()];
    a
}

/// Per element, |a - n| / max(|a| + |n|, 1e-3·scale, floor), where scale is the largest
/// |a| + |n| of the tensor and `floor` comes from the finite-difference noise ([`noise_floor`]);
/// 0 where |a - n| <= [`ABS_FLOOR`].
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
            if a == n || (a - n).abs() <= ABS_FLOOR {
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
