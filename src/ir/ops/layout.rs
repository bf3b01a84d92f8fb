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

/// y[i] = x[start + i·step] along axis        dx = pad(g) back to x's size: g's elements `step`
/// apart from `start`, zeros elsewhere (no Jacobian)
pub(super) fn slice_eval(x: &Tensor, axis: usize, start: usize, len: usize, step: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    if len == 0 || step == 0 || start + (len - 1) * step >= n {
        return Err(format!("slice of {len} elements from {start} step {step} of an axis of size {n}"));
    }
    let mut data = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        for i in 0..len {
            let row = (o * n + start + i * step) * inner;
            data.extend_from_slice(&x.data[row..row + inner]);
        }
    }
    let mut shape = x.shape.clone();
    shape[axis] = len;
    Ok(Tensor::new(shape, data))
}

pub(super) fn slice_vjp(
    cx: &mut Vjp,
    g: NodeId,
    x: &[NodeId],
    axis: usize,
    start: usize,
    len: usize,
    step: usize,
) -> Grads {
    let n = cx.shape(x[0])[axis].known().ok_or("slice of a symbolic dimension")?;
    let after = n - (start + (len - 1) * step + 1);
    Ok(vec![Some(cx.op(Op::Pad { axis, before: start, after, step }, &[g])?)])
}

/// y = `before` zeros, x[0], step-1 zeros, x[1], …, x[n-1], `after` zeros along axis
///   dx = g[before + i·step] (a slice)
pub(super) fn pad_eval(x: &Tensor, axis: usize, before: usize, after: usize, step: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    if step == 0 {
        return Err("padding with step 0".into());
    }
    let m = before + (n - 1) * step + 1 + after;
    let mut data = vec![0.0; outer * m * inner];
    for o in 0..outer {
        for i in 0..n {
            let to = (o * m + before + i * step) * inner;
            let from = (o * n + i) * inner;
            data[to..to + inner].copy_from_slice(&x.data[from..from + inner]);
        }
    }
    let mut shape = x.shape.clone();
    shape[axis] = m;
    Ok(Tensor::new(shape, data))
}

pub(super) fn pad_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize, before: usize, step: usize) -> Grads {
    let len = cx.shape(x[0])[axis].known().ok_or("padding of a symbolic dimension")?;
    Ok(vec![Some(cx.op(Op::Slice { axis, start: before, len, step }, &[g])?)])
}

/// y[i] = x[n - 1 - i] along axis              dx = reverse(g)
pub(super) fn reverse_eval(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = Vec::with_capacity(x.numel());
    for o in 0..outer {
        for i in (0..n).rev() {
            let row = (o * n + i) * inner;
            data.extend_from_slice(&x.data[row..row + inner]);
        }
    }
    Ok(Tensor::new(x.shape.clone(), data))
}

pub(super) fn reverse_vjp(cx: &mut Vjp, g: NodeId, axis: usize) -> Grads {
    Ok(vec![Some(cx.op(Op::Reverse { axis }, &[g])?)])
}

/// y = x₀ ++ x₁ ++ … along axis                dxₖ = g[offsetₖ .. offsetₖ + nₖ] (a slice each)
pub(super) fn concat_eval(xs: &[&Tensor], axis: usize) -> Result<Tensor, String> {
    let first = xs.first().ok_or("concat of no tensors")?;
    let mut parts = Vec::with_capacity(xs.len());
    for x in xs {
        let (outer, n, inner) = split_axis(&x.shape, axis)?;
        let same =
            x.shape.len() == first.shape.len() && (0..x.shape.len()).all(|a| a == axis || x.shape[a] == first.shape[a]);
        if !same {
            return Err(format!("concat of shapes {:?} and {:?} along axis {axis}", first.shape, x.shape));
        }
        parts.push((outer, n * inner, *x));
    }
    let total: usize = parts.iter().map(|p| p.2.shape[axis]).sum();
    let outer = parts[0].0;
    let mut data = Vec::with_capacity(parts.iter().map(|p| p.2.numel()).sum());
    for o in 0..outer {
        for (_, block, x) in &parts {
            data.extend_from_slice(&x.data[o * block..(o + 1) * block]);
        }
    }
    let mut shape = first.shape.clone();
    shape[axis] = total;
    Ok(Tensor::new(shape, data))
}

pub(super) fn concat_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize) -> Grads {
    let mut start = 0;
    let mut grads = Vec::with_capacity(x.len());
    for &xk in x {
        let len = cx.shape(xk)[axis].known().ok_or("concat along a symbolic dimension")?;
        grads.push(Some(cx.op(Op::Slice { axis, start, len, step: 1 }, &[g])?));
        start += len;
    }
    Ok(grads)
}
