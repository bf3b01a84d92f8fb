//! Layout ops (broadcast, reshape, transpose, slice, pad): meaning and VJP side by side.

use crate::ir::graph::{NodeId, Op};
use crate::ir::tensor::Tensor;

use super::loops::*;
use super::{Grads, Vjp};

// ---- layout ---------------------------------------------------------------------------------

/// y = broadcast(x, shape)     dx = sum of g over the prepended and stretched axes
pub(super) fn broadcast_eval(x: &Tensor, shape: &[usize]) -> Result<Tensor, String> {
    let target = broadcast_dims(&x.shape, shape)?;
    if target != shape {
        return Err(format!("cannot broadcast {:?} to {shape:?}", x.shape));
    }
    let data = broadcast_map(&x.shape, shape).into_iter().map(|i| x.data[i]).collect();
    Ok(Tensor::new(shape.to_vec(), data))
}

pub(super) fn broadcast_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let shape = cx.shape(x[0]);
    Ok(vec![Some(cx.sum_to(g, &shape)?)])
}

/// y = reshape(x, shape)       dx = reshape(g, shape of x)
pub(super) fn reshape_eval(x: &Tensor, shape: &[usize]) -> Result<Tensor, String> {
    if numel(shape) != x.numel() {
        return Err(format!("cannot reshape {:?} into {shape:?}", x.shape));
    }
    Ok(Tensor::new(shape.to_vec(), x.data.clone()))
}

pub(super) fn reshape_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let shape = cx.shape(x[0]);
    Ok(vec![Some(cx.reshape(g, shape)?)])
}

/// y = transpose(x, perm), y axis i = x axis perm[i]      dx = transpose(g, perm⁻¹)
pub(super) fn transpose_eval(x: &Tensor, perm: &[usize]) -> Result<Tensor, String> {
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if sorted != (0..x.shape.len()).collect::<Vec<_>>() {
        return Err(format!("permutation {perm:?} of a tensor of shape {:?}", x.shape));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let xs = strides(&x.shape);
    let mut data = Vec::with_capacity(x.numel());
    for_each_index(&shape, |out| data.push(x.data[out.iter().zip(perm).map(|(&o, &p)| o * xs[p]).sum::<usize>()]));
    Ok(Tensor::new(shape, data))
}

pub(super) fn transpose_vjp(cx: &mut Vjp, g: NodeId, perm: &[usize]) -> Grads {
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Ok(vec![Some(cx.op(Op::Transpose { perm: inverse }, &[g])?)])
}

/// y = x[.., start..start+len, ..] along axis             dx = pad(g) with zeros back to x's size
pub(super) fn slice_eval(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    if start + len > n {
        return Err(format!("slice {start}..{} of an axis of size {n}", start + len));
    }
    let mut data = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let row = o * n * inner;
        data.extend_from_slice(&x.data[row + start * inner..row + (start + len) * inner]);
    }
    let mut shape = x.shape.clone();
    shape[axis] = len;
    Ok(Tensor::new(shape, data))
}

pub(super) fn slice_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize, start: usize, len: usize) -> Grads {
    let n = cx.shape(x[0])[axis].known().ok_or("slice of a symbolic dimension")?;
    Ok(vec![Some(cx.op(Op::Pad { axis, before: start, after: n - start - len }, &[g])?)])
}

/// y = zeros(before) ++ x ++ zeros(after) along axis      dx = g[before..before+n]
pub(super) fn pad_eval(x: &Tensor, axis: usize, before: usize, after: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = Vec::with_capacity(outer * (before + n + after) * inner);
    for o in 0..outer {
        data.extend(std::iter::repeat_n(0.0, before * inner));
        data.extend_from_slice(&x.data[o * n * inner..(o + 1) * n * inner]);
        data.extend(std::iter::repeat_n(0.0, after * inner));
    }
    let mut shape = x.shape.clone();
    shape[axis] = before + n + after;
    Ok(Tensor::new(shape, data))
}

pub(super) fn pad_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize, before: usize) -> Grads {
    let len = cx.shape(x[0])[axis].known().ok_or("padding of a symbolic dimension")?;
    Ok(vec![Some(cx.op(Op::Slice { axis, start: before, len }, &[g])?)])
}
