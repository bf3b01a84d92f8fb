//! Reductions (sum, max, the argmax mask) and one-hot: meaning and VJP side by side.

use crate::ir::graph::{Dim, NodeId, Op};
use crate::ir::tensor::Tensor;

use super::elementwise::max_left;
use super::loops::*;
use super::{Grads, Vjp};

// ---- reductions -----------------------------------------------------------------------------

/// y = sum of x over axes      dx = broadcast(g with the axes back as 1s, shape of x)
pub(super) fn sum_eval(x: &Tensor, axes: &[usize]) -> Result<Tensor, String> {
    if let Some(a) = axes.iter().find(|&&a| a >= x.shape.len()) {
        return Err(format!("axis {a} of a tensor of shape {:?}", x.shape));
    }
    let kept: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
    let shape: Vec<usize> = kept.iter().map(|&a| x.shape[a]).collect();
    let out_strides = strides(&shape);
    let mut data = vec![0.0; numel(&shape)];
    let mut i = 0;
    for_each_index(&x.shape, |idx| {
        data[kept.iter().zip(&out_strides).map(|(&a, &s)| idx[a] * s).sum::<usize>()] += x.data[i];
        i += 1;
    });
    Ok(Tensor::new(shape, data))
}

pub(super) fn sum_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axes: &[usize]) -> Grads {
    let shape = cx.shape(x[0]);
    if axes.is_empty() {
        return Ok(vec![Some(g)]);
    }
    let kept = shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { Dim::Known(1) } else { d }).collect();
    let g_kept = cx.reshape(g, kept)?;
    Ok(vec![Some(cx.broadcast(g_kept, shape)?)])
}

/// y = max of x over axes     dx = g·[x = y]/n, n = how many elements of x equal y in its
/// group: a tie splits the gradient evenly among the tied maxima (PyTorch's `amax`), so the
/// result does not depend on the order of the elements or of the axes
pub(super) fn reduce_max_eval(x: &Tensor, axes: &[usize]) -> Result<Tensor, String> {
    if let Some(a) = axes.iter().find(|&&a| a >= x.shape.len()) {
        return Err(format!("axis {a} of a tensor of shape {:?}", x.shape));
    }
    let kept: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
    let shape: Vec<usize> = kept.iter().map(|&a| x.shape[a]).collect();
    let out_strides = strides(&shape);
    let mut data = vec![f64::NEG_INFINITY; numel(&shape)];
    let mut i = 0;
    for_each_index(&x.shape, |idx| {
        let at = kept.iter().zip(&out_strides).map(|(&a, &s)| idx[a] * s).sum::<usize>();
        data[at] = max_left(data[at], x.data[i]);
        i += 1;
    });
    Ok(Tensor::new(shape, data))
}

pub(super) fn reduce_max_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId, axes: &[usize]) -> Grads {
    let kept: Vec<Dim> =
        cx.shape(x[0]).iter().enumerate().map(|(i, &d)| if axes.contains(&i) { Dim::Known(1) } else { d }).collect();
    let y_kept = cx.reshape(y, kept.clone())?;
    // [x >= max] is [x = max]: 1 at every maximum.
    let at_max = cx.op(Op::GreaterEq, &[x[0], y_kept])?;
    let ties = cx.sum_keepdims(at_max, axes)?;
    let g_kept = cx.reshape(g, kept)?;
    let share = cx.div(g_kept, ties)?;
    Ok(vec![Some(cx.mul(at_max, share)?)])
}

/// y = 1 at the first maximum along axis, else 0          no gradient
pub(super) fn argmax_mask_eval(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = vec![0.0; x.numel()];
    for o in 0..outer {
        for k in 0..inner {
            let at = |j: usize| (o * n + j) * inner + k;
            if let Some(best) = first_max((0..n).map(|j| x.data[at(j)])) {
                data[at(best)] = 1.0;
            }
        }
    }
    Ok(Tensor::new(x.shape.clone(), data))
}

/// y[.., c] = 1 if x[..] == c  no gradient; class indices must be whole numbers in range
pub(super) fn one_hot_eval(x: &Tensor, classes: usize) -> Result<Tensor, String> {
    let mut data = vec![0.0; x.numel() * classes];
    for (i, &c) in x.data.iter().enumerate() {
        if c.fract() != 0.0 || c < 0.0 || c >= classes as f64 {
            return Err(format!("class index {c} is not a whole number in 0..{classes}"));
        }
        data[i * classes + c as usize] = 1.0;
    }
    let mut shape = x.shape.clone();
    shape.push(classes);
    Ok(Tensor::new(shape, data))
}
