//! Elementwise ops of one and two operands: meaning and VJP side by side.

use crate::ir::graph::{NodeId, Op};

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

/// y = a^b                     da = g*b*a^(b-1), db = g*ln(a)*y
/// (the driver drops db's nodes unless b needs a gradient, so ln of a negative base is never
/// built for the common x^2)
pub(super) fn pow_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    let (a, b) = (x[0], x[1]);
    let one = cx.constant(1.0);
    let b_minus_1 = cx.sub(b, one)?;
    let a_pow = cx.op(Op::Pow, &[a, b_minus_1])?;
    let slope = cx.mul(b, a_pow)?;
    let da = cx.mul(g, slope)?;
    let ln_a = cx.op(Op::Log, &[a])?;
    let gy = cx.mul(g, y)?;
    let db = cx.mul(gy, ln_a)?;
    Ok(vec![Some(da), Some(db)])
}

/// y = max(a, b)               da = g*[a >= b], db = g*(1 - [a >= b]): the max gate routes;
/// ties go to the left operand, so relu(x) = max(0, x) has relu'(0) = 0
pub(super) fn max_left(a: f64, b: f64) -> f64 {
    if a >= b {
        a
    } else {
        b
    }
}

pub(super) fn max_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    // [a >= b] = [a >= max(a, b)] for every a, b (NaN included): the mask reads the output,
    // which the forward pass keeps anyway, so relu's pre-activation need not be kept.
    let left = cx.op(Op::GreaterEq, &[x[0], y])?;
    route(cx, g, left)
}

/// The gradient `g` sent to the left operand where `left` is 1 and to the right one where it
/// is 0: g·m and g·(1 - m), exactly g or 0 for finite g (routed, never split). Each product
/// reads g once, so g fuses into it rather than being written to memory for two readers.
pub(super) fn route(cx: &mut Vjp, g: NodeId, left: NodeId) -> Grads {
    let one = cx.constant(1.0);
    let right = cx.sub(one, left)?;
    Ok(vec![Some(cx.mul(g, left)?), Some(cx.mul(g, right)?)])
}

/// y = min(a, b)               da = g*[b >= a], db = g*(1 - [b >= a]); ties go to the left operand
pub(super) fn min_left(a: f64, b: f64) -> f64 {
    if b >= a {
        a
    } else {
        b
    }
}

pub(super) fn min_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    // [b >= a] = [min(a, b) >= a] for every a, b (NaN included), as for max.
    let left = cx.op(Op::GreaterEq, &[y, x[0]])?;
    route(cx, g, left)
}
