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

/// y = max of x along axis     dx = g at the first maximum of each row, 0 elsewhere:
/// dx = argmax_mask(x) * g (g with the axis back as a 1, broadcast by the multiply)
pub(super) fn reduce_max_eval(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for k in 0..inner {
            let row = (0..n).map(|j| x.data[(o * n + j) * inner + k]);
            data.push(row.fold(f64::NEG_INFINITY, max_left));
        }
    }
    let mut shape = x.shape.clone();
    shape.remove(axis);
    Ok(Tensor::new(shape, data))
}

pub(super) fn reduce_max_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize) -> Grads {
    let mask = cx.op(Op::ArgMaxMask { axis }, &[x[0]])?;
    let mut kept = cx.shape(x[0]);
    kept[axis] = Dim::Known(1);
    let g_kept = cx.reshape(g, kept)?;
    Ok(vec![Some(cx.mul(mask, g_kept)?)])
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
