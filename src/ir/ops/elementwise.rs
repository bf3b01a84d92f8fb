//! Elementwise ops of one and two operands: meaning and VJP side by side.

use crate::ir::graph::{NodeId, Op};
use crate::ir::tensor::Tensor;

use super::loops::{broadcast_dims, broadcast_map, numel};
use super::{Grads, Vjp};

// ---- elementwise, one operand (eval is the scalar function in `eval`) -----------------------

/// y = -x                      dx = -g
pub(super) fn neg_vjp(cx: &mut Vjp, g: NodeId) -> Grads {
    Ok(vec![Some(cx.neg(g)?)])
}

/// y = e^x                     dx = g*y, from the output
pub(super) fn exp_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    Ok(vec![Some(cx.mul(g, y)?)])
}

/// y = ln x                    dx = g/x
pub(super) fn log_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    Ok(vec![Some(cx.div(g, x[0])?)])
}

/// y = sqrt x                  dx = g/(2y), from the output
pub(super) fn sqrt_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    let two = cx.constant(2.0);
    let two_y = cx.mul(two, y)?;
    Ok(vec![Some(cx.div(g, two_y)?)])
}

/// y = |x|                     dx = g*sign(x)   (0 at x = 0)
pub(super) fn abs_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let s = cx.op(Op::Sign, &[x[0]])?;
    Ok(vec![Some(cx.mul(g, s)?)])
}

/// y = sign x                  no gradient (zero almost everywhere)
pub(super) fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v // keeps 0 and NaN
    }
}

/// y = tanh x                  dx = g*(1 - y²), from the output
pub(super) fn tanh_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    let one = cx.constant(1.0);
    let y2 = cx.mul(y, y)?;
    let slope = cx.sub(one, y2)?;
    Ok(vec![Some(cx.mul(g, slope)?)])
}

/// y = 1/(1 + e^-x)            dx = g*y*(1 - y), from the output
pub(super) fn sigmoid(v: f64) -> f64 {
    // Two forms so that e^(-v) never overflows.
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

pub(super) fn sigmoid_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    let one = cx.constant(1.0);
    let one_minus_y = cx.sub(one, y)?;
    let gy = cx.mul(g, y)?;
    Ok(vec![Some(cx.mul(gy, one_minus_y)?)])
}

// ---- activations with a kink or a smooth formula built from kinks ---------------------------
//
// Each is one op with its true derivative, not a composite of max/abs/min whose tie rules
// would decide the derivative at the kink (softplus'(0) = ½ is not a choice between pieces).

/// y = max(0, x)               dx = g·[y > 0] = g·(1 − [0 >= y]), from the output: relu'(0) = 0
pub(super) fn relu(v: f64) -> f64 {
    max_left(0.0, v)
}

pub(super) fn relu_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    let (zero, one) = (cx.constant(0.0), cx.constant(1.0));
    let off = cx.op(Op::GreaterEq, &[zero, y])?;
    let on = cx.sub(one, off)?;
    Ok(vec![Some(cx.mul(g, on)?)])
}

/// y = x if x > 0 else αx      dx = g·(x > 0 ? 1 : α) = g·(α + (1 − α)·[x > 0]): slope α at 0
pub(super) fn leaky_relu(v: f64, alpha: f64) -> f64 {
    if v > 0.0 {
        v
    } else {
        alpha * v
    }
}

pub(super) fn leaky_relu_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], alpha: f64) -> Grads {
    let (zero, one) = (cx.constant(0.0), cx.constant(1.0));
    let off = cx.op(Op::GreaterEq, &[zero, x[0]])?;
    let on = cx.sub(one, off)?;
    let (a, rest) = (cx.constant(alpha), cx.constant(1.0 - alpha));
    let scaled = cx.mul(rest, on)?;
    let slope = cx.add(a, scaled)?;
    Ok(vec![Some(cx.mul(g, slope)?)])
}

/// y = x if x > 0 else α(e^x − 1)     dx = g·(x > 0 ? 1 : α·e^x): slope α at 0 (PyTorch), and
/// e^x is taken of min(x, 0) so that it never overflows where it is not used
pub(super) fn elu(v: f64, alpha: f64) -> f64 {
    if v > 0.0 {
        v
    } else {
        alpha * v.exp_m1()
    }
}

pub(super) fn elu_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], alpha: f64) -> Grads {
    let (zero, one) = (cx.constant(0.0), cx.constant(1.0));
    let off = cx.op(Op::GreaterEq, &[zero, x[0]])?;
    let on = cx.sub(one, off)?;
    let below = cx.op(Op::Min, &[x[0], zero])?;
    let e = cx.op(Op::Exp, &[below])?;
    let a = cx.constant(alpha);
    let ae = cx.mul(a, e)?;
    // (1 − off) + off·α·e^x: either term is exact (no 1 + (αe^x − 1) cancellation).
    let negative_part = cx.mul(off, ae)?;
    let slope = cx.add(on, negative_part)?;
    Ok(vec![Some(cx.mul(g, slope)?)])
}

/// y = ln(1 + e^x) = max(x, 0) + ln(1 + e^−|x|)    dx = g·sigmoid(x)
/// (never overflows, and keeps full relative accuracy for very negative x: softplus(−40) is
/// e^−40 = 4.2e-18, where ln(1 + e^x) would round to 0)
pub(super) fn softplus(v: f64) -> f64 {
    relu(v) + (-v.abs()).exp().ln_1p()
}

pub(super) fn softplus_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let s = cx.op(Op::Sigmoid, &[x[0]])?;
    Ok(vec![Some(cx.mul(g, s)?)])
}

// ---- elementwise, two operands (numpy broadcasting; the driver un-broadcasts) -------------

/// y = a + b                   da = g, db = g: the add gate distributes
pub(super) fn add_vjp(g: NodeId) -> Grads {
    Ok(vec![Some(g), Some(g)])
}

/// y = a - b                   da = g, db = -g
pub(super) fn sub_vjp(cx: &mut Vjp, g: NodeId) -> Grads {
    Ok(vec![Some(g), Some(cx.neg(g)?)])
}

/// y = a * b                   da = g*b, db = g*a: the mul gate switches its inputs
pub(super) fn mul_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    Ok(vec![Some(cx.mul(g, x[1])?), Some(cx.mul(g, x[0])?)])
}

/// y = a / b                   da = g/b, db = -g*a/b² = -(g*y)/b
pub(super) fn div_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    let da = cx.div(g, x[1])?;
    let gy = cx.mul(g, y)?;
    let gy_b = cx.div(gy, x[1])?;
    Ok(vec![Some(da), Some(cx.neg(gy_b)?)])
}

/// y = a^b                     da = g·b·a^(b−1), db = g·y·ln a, with PyTorch's special cases:
/// da = 0 where b = 0 (d/da a^0 = 0, also at a = 0 where b·a^(b−1) is 0·∞), and db = 0 where
/// a = 0 and b >= 0 (y·ln a is 0·(−∞) there; the limit along b is 0). A negative base gives a
/// NaN db, as in PyTorch (ln a is not real). The driver drops db's nodes unless b needs a
/// gradient, so no log is built for the common x^2.
pub(super) fn pow_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    let (a, b) = (x[0], x[1]);
    let da = match cx.graph.node(b).op {
        // A constant exponent: its own rule, so the fast a^(b−1) of a constant power remains.
        Op::Const { value: 0.0 } => None,
        Op::Const { value } => {
            let b_minus_1 = cx.constant(value - 1.0);
            let a_pow = cx.op(Op::Pow, &[a, b_minus_1])?;
            let slope = cx.mul(b, a_pow)?;
            Some(cx.mul(g, slope)?)
        }
        // b·a^(b − 1 + [b = 0]): the exponent is 0 where b = 0, so the product is b·1 = 0.
        _ => {
            let one = cx.constant(1.0);
            let b_minus_1 = cx.sub(b, one)?;
            let b_is_0 = is_zero(cx, b)?;
            let exponent = cx.add(b_minus_1, b_is_0)?;
            let a_pow = cx.op(Op::Pow, &[a, exponent])?;
            let slope = cx.mul(b, a_pow)?;
            Some(cx.mul(g, slope)?)
        }
    };
    // y·ln(a + [a = 0]·[b >= 0]): ln 1 = 0 where the limit is 0, ln a elsewhere.
    let a_is_0 = is_zero(cx, a)?;
    let zero = cx.constant(0.0);
    let b_nonnegative = cx.op(Op::GreaterEq, &[b, zero])?;
    let shift = cx.mul(a_is_0, b_nonnegative)?;
    let safe_a = cx.add(a, shift)?;
    let ln_a = cx.op(Op::Log, &[safe_a])?;
    let gy = cx.mul(g, y)?;
    let db = cx.mul(gy, ln_a)?;
    Ok(vec![da, Some(db)])
}

/// [v = 0] as 1.0 or 0.0 (0 for NaN): [0 >= |v|].
fn is_zero(cx: &mut Vjp, v: NodeId) -> Result<NodeId, String> {
    let zero = cx.constant(0.0);
    let abs = cx.op(Op::Abs, &[v])?;
    cx.op(Op::GreaterEq, &[zero, abs])
}

/// y = max(a, b)               da = g·w, db = g·(1 − w), w = [a > b] + ½[a = b]:
/// the max gate routes, and a tie splits evenly (PyTorch's `maximum`), so max(a, b) and
/// max(b, a) have the same gradient. (relu has its own op with relu'(0) = 0.)
pub(super) fn max_left(a: f64, b: f64) -> f64 {
    if a >= b {
        a
    } else {
        b
    }
}

pub(super) fn max_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let a_wins = cx.op(Op::GreaterEq, &[x[0], x[1]])?;
    let b_wins = cx.op(Op::GreaterEq, &[x[1], x[0]])?;
    split(cx, g, a_wins, b_wins)
}

/// The gradient of a two-way choice: with l = [left >= right] and r = [right >= left] (both 1
/// at a tie), the left operand gets g·½(l + 1 − r) and the right one g·½(r + 1 − l): all of
/// g to the winner, half to each at a tie. Exactly g, g/2 or 0 for finite g.
fn split(cx: &mut Vjp, g: NodeId, left: NodeId, right: NodeId) -> Grads {
    let (one, half) = (cx.constant(1.0), cx.constant(0.5));
    let not_right = cx.sub(one, right)?;
    let not_left = cx.sub(one, left)?;
    let l = cx.add(left, not_right)?;
    let r = cx.add(right, not_left)?;
    let wl = cx.mul(half, l)?;
    let wr = cx.mul(half, r)?;
    Ok(vec![Some(cx.mul(g, wl)?), Some(cx.mul(g, wr)?)])
}

/// y = min(a, b)               da = g·w, db = g·(1 − w), w = [a < b] + ½[a = b], as for max
pub(super) fn min_left(a: f64, b: f64) -> f64 {
    if b >= a {
        a
    } else {
        b
    }
}

pub(super) fn min_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let a_wins = cx.op(Op::GreaterEq, &[x[1], x[0]])?;
    let b_wins = cx.op(Op::GreaterEq, &[x[0], x[1]])?;
    split(cx, g, a_wins, b_wins)
}

// ---- erf, clip, comparisons and where ------------------------------------------------------

/// y = erf x                   dx = g·(2/√π)·e^(−x²)   (smooth everywhere)
/// The value is fdlibm's (the `libm` crate), correct to within 1 ulp.
pub(super) fn erf(v: f64) -> f64 {
    libm::erf(v)
}

pub(super) fn erf_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let x2 = cx.mul(x[0], x[0])?;
    let minus_x2 = cx.neg(x2)?;
    let e = cx.op(Op::Exp, &[minus_x2])?;
    let scale = cx.constant(std::f64::consts::FRAC_2_SQRT_PI);
    let slope = cx.mul(scale, e)?;
    Ok(vec![Some(cx.mul(g, slope)?)])
}

/// y = min(max(x, lo), hi)     dx = g·[x > lo]·[hi > x]: torch.clamp's gradient (PyTorch 2.x,
/// number bounds), 1 strictly inside, 0 at either bound and outside. NaN stays NaN; lo > hi
/// gives hi and no gradient anywhere (as torch).
pub(super) fn clip(v: f64, lo: f64, hi: f64) -> f64 {
    // max_left(lo, v) keeps a NaN v (the comparison fails and v is returned), as does
    // min_left(hi, ·): hi >= NaN fails too.
    min_left(hi, max_left(lo, v))
}

pub(super) fn clip_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], lo: f64, hi: f64) -> Grads {
    let (lo, hi) = (cx.constant(lo), cx.constant(hi));
    let above_lo = cx.op(Op::Greater, &[x[0], lo])?;
    let below_hi = cx.op(Op::Greater, &[hi, x[0]])?;
    let inside = cx.mul(above_lo, below_hi)?;
    Ok(vec![Some(cx.mul(g, inside)?)])
}

/// y = [a > b], y = [a == b]   no gradient (zero almost everywhere, none at the step)
pub(super) fn greater(a: f64, b: f64) -> f64 {
    if a > b {
        1.0
    } else {
        0.0
    }
}

pub(super) fn equal(a: f64, b: f64) -> f64 {
    if a == b {
        1.0
    } else {
        0.0
    }
}

/// y = where(c, a, b) = c ≠ 0 ? a : b     da = where(c, g, 0), db = where(c, 0, g): the
/// gradient is routed, never multiplied by the mask, so an infinite or NaN gradient on one
/// side does not leak into the other; none flows to c.
pub(super) fn where_eval(x: &[&Tensor], shape: &[usize]) -> Result<Tensor, String> {
    let [c, a, b] = x else { return Err(format!("where takes 3 operands, not {}", x.len())) };
    let maps: Vec<Vec<usize>> = [c, a, b]
        .iter()
        .map(|t| {
            broadcast_dims(&t.shape, shape)
                .ok()
                .filter(|s| s == shape)
                .map(|_| broadcast_map(&t.shape, shape))
                .ok_or_else(|| format!("cannot broadcast {:?} to {shape:?}", t.shape))
        })
        .collect::<Result<_, _>>()?;
    let data = (0..numel(shape))
        .map(|i| if c.data[maps[0][i]] != 0.0 { a.data[maps[1][i]] } else { b.data[maps[2][i]] })
        .collect();
    Ok(Tensor::new(shape.to_vec(), data))
}

pub(super) fn where_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let zero = cx.constant(0.0);
    let da = cx.op(Op::Where, &[x[0], g, zero])?;
    let db = cx.op(Op::Where, &[x[0], zero, g])?;
    Ok(vec![None, Some(da), Some(db)])
}
