//! Matrix products, log-softmax, convolution and pooling: meaning and VJP side by side.

use crate::ir::graph::{NodeId, Op};
use crate::ir::tensor::Tensor;

use super::loops::*;
use super::shape::window_out;
use super::{Grads, Vjp};

// ---- linear algebra and neural-network kernels --------------------------------------------

/// y = op(a) @ op(b) per batch element, op = transpose or not; the batch axes broadcast
///   y = A B:     dA = G Bᵀ,  dB = Aᵀ G        y = Aᵀ B:   dA = B Gᵀ,  dB = A G
///   y = A Bᵀ:    dA = G B,   dB = Gᵀ A        y = Aᵀ Bᵀ:  dA = Bᵀ Gᵀ, dB = Gᵀ Aᵀ
/// Each gradient is one batched matmul with transpose flags (no transpose is materialised);
/// it contracts G's cols group (dA) or rows group (dB). Over a batch axis an operand was
/// broadcast along, `autodiff` sums the gradient back.
pub(super) fn matmul_eval(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
    batch: usize,
    contract: usize,
) -> Result<Tensor, String> {
    let groups = batch + contract;
    if a.shape.len() < groups || b.shape.len() < groups {
        return Err(format!("matmul of shapes {:?} and {:?} over {batch} batch axes", a.shape, b.shape));
    }
    let (ra, rb) = (a.shape.len(), b.shape.len());
    let (rows, inner_a) = if ta {
        (&a.shape[groups..], &a.shape[batch..groups])
    } else {
        (&a.shape[batch..ra - contract], &a.shape[ra - contract..])
    };
    let (inner_b, cols) = if tb {
        (&b.shape[rb - contract..], &b.shape[batch..rb - contract])
    } else {
        (&b.shape[batch..groups], &b.shape[groups..])
    };
    if inner_a != inner_b {
        return Err(format!("matmul inner dimensions {inner_a:?} and {inner_b:?} differ"));
    }
    let (m, k, n) = (numel(rows), numel(inner_a), numel(cols));
    let out_batch = broadcast_dims(&a.shape[..batch], &b.shape[..batch])?;
    let (from_a, from_b) = (broadcast_map(&a.shape[..batch], &out_batch), broadcast_map(&b.shape[..batch], &out_batch));
    let mut data = vec![0.0; from_a.len() * m * n];
    for (e, (&ea, &eb)) in from_a.iter().zip(&from_b).enumerate() {
        let (a0, b0, c0) = (ea * m * k, eb * k * n, e * m * n);
        let a_at = |i: usize, p: usize| if ta { a.data[a0 + p * m + i] } else { a.data[a0 + i * k + p] };
        let b_at = |p: usize, j: usize| if tb { b.data[b0 + j * k + p] } else { b.data[b0 + p * n + j] };
        for i in 0..m {
            for j in 0..n {
                data[c0 + i * n + j] = (0..k).map(|p| a_at(i, p) * b_at(p, j)).sum();
            }
        }
    }
    let mut shape = out_batch;
    shape.extend_from_slice(rows);
    shape.extend_from_slice(cols);
    Ok(Tensor::new(shape, data))
}

pub(super) fn matmul_vjp(
    cx: &mut Vjp,
    g: NodeId,
    x: &[NodeId],
    ta: bool,
    tb: bool,
    batch: usize,
    contract: usize,
) -> Grads {
    let (a, b) = (x[0], x[1]);
    // The sizes of the rows group (of a) and the cols group (of b).
    let rows = cx.shape(a).len() - batch - contract;
    let cols = cx.shape(b).len() - batch - contract;
    let mut mm = |l: NodeId, r: NodeId, tl: bool, tr: bool, over: usize| {
        cx.op(Op::MatMul { transpose_a: tl, transpose_b: tr, batch, contract: over }, &[l, r])
    };
    let (da, db) = match (ta, tb) {
        (false, false) => (mm(g, b, false, true, cols)?, mm(a, g, true, false, rows)?),
        (true, false) => (mm(b, g, false, true, cols)?, mm(a, g, false, false, rows)?),
        (false, true) => (mm(g, b, false, false, cols)?, mm(g, a, true, false, rows)?),
        (true, true) => (mm(b, g, true, true, cols)?, mm(g, a, true, true, rows)?),
    };
    Ok(vec![Some(da), Some(db)])
}

/// y = x - max(x) - ln(sum(e^(x - max(x)))) along axis    dx = g - e^y * sum(g) along axis
pub(super) fn log_softmax_eval(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = vec![0.0; x.numel()];
    for o in 0..outer {
        for k in 0..inner {
            let at = |j: usize| (o * n + j) * inner + k;
            let m = (0..n).map(|j| x.data[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let log_sum = (0..n).map(|j| (x.data[at(j)] - m).exp()).sum::<f64>().ln();
            for j in 0..n {
                data[at(j)] = x.data[at(j)] - m - log_sum;
            }
        }
    }
    Ok(Tensor::new(x.shape.clone(), data))
}

pub(super) fn log_softmax_vjp(cx: &mut Vjp, g: NodeId, y: NodeId, axis: usize) -> Grads {
    let softmax = cx.op(Op::Exp, &[y])?;
    let g_sum = cx.sum_keepdims(g, &[axis])?;
    let spread = cx.mul(softmax, g_sum)?;
    Ok(vec![Some(cx.sub(g, spread)?)])
}

/// y[n,f,i,j] = Σ_c,a,b x[n,c, i*s+a-p, j*s+b-p] * w[f,c,a,b]   (zero outside x)
///   dx = conv2d_input_grad(g, w),  dw = conv2d_filter_grad(x, g)
pub(super) fn conv2d_eval(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> Result<Tensor, String> {
    let [n, c, h, wd] = dims4(x)?;
    let [f, c2, kh, kw] = dims4(w)?;
    if c != c2 {
        return Err(format!("conv2d of {c} channels with filters of {c2}"));
    }
    let oh = window_out(h, kh, pad, stride, "height").map_err(invalid)?;
    let ow = window_out(wd, kw, pad, stride, "width").map_err(invalid)?;
    let mut y = Tensor::zeros(vec![n, f, oh, ow]);
    for_each_tap([n, f, oh, ow], [c, kh, kw], [h, wd], stride, pad, |t| {
        y.data[at4(&y.shape, t.n, t.f, t.i, t.j)] +=
            x.data[at4(&x.shape, t.n, t.c, t.r, t.q)] * w.data[at4(&w.shape, t.f, t.c, t.a, t.b)];
    });
    Ok(y)
}

pub(super) fn conv2d_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], stride: usize, pad: usize) -> Grads {
    let (xs, ws) = (cx.shape(x[0]), cx.shape(x[1]));
    let (height, width) = (known4(&xs, 2)?, known4(&xs, 3)?);
    let (kernel_h, kernel_w) = (known4(&ws, 2)?, known4(&ws, 3)?);
    let dx = cx.op(Op::Conv2dInputGrad { stride, pad, height, width }, &[g, x[1]])?;
    let dw = cx.op(Op::Conv2dFilterGrad { stride, pad, kernel_h, kernel_w }, &[x[0], g])?;
    Ok(vec![Some(dx), Some(dw)])
}

/// y = conv2d_input_grad(g, w): dx[n,c,r,q] = Σ g[n,f,i,j] * w[f,c,a,b] over taps hitting (r,q)
///   Bilinear, the adjoint of conv2d in x: <u, y> = <conv2d(u, w), g> = <w, filter_grad(u, g)>,
///   so with upstream u:  dg = conv2d(u, w),  dw = conv2d_filter_grad(u, g)
pub(super) fn conv2d_input_grad_eval(
    g: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
    height: usize,
    width: usize,
) -> Result<Tensor, String> {
    let [n, f, oh, ow] = dims4(g)?;
    let [f2, c, kh, kw] = dims4(w)?;
    if f != f2
        || oh != window_out(height, kh, pad, stride, "height").map_err(invalid)?
        || ow != window_out(width, kw, pad, stride, "width").map_err(invalid)?
    {
        return Err(format!("conv2d_input_grad of {:?} with filters {:?}", g.shape, w.shape));
    }
    let mut dx = Tensor::zeros(vec![n, c, height, width]);
    for_each_tap([n, f, oh, ow], [c, kh, kw], [height, width], stride, pad, |t| {
        dx.data[at4(&dx.shape, t.n, t.c, t.r, t.q)] +=
            g.data[at4(&g.shape, t.n, t.f, t.i, t.j)] * w.data[at4(&w.shape, t.f, t.c, t.a, t.b)];
    });
    Ok(dx)
}

pub(super) fn conv2d_input_grad_vjp(cx: &mut Vjp, u: NodeId, x: &[NodeId], stride: usize, pad: usize) -> Grads {
    let ws = cx.shape(x[1]);
    let (kernel_h, kernel_w) = (known4(&ws, 2)?, known4(&ws, 3)?);
    let dg = cx.op(Op::Conv2d { stride, pad }, &[u, x[1]])?;
    let dw = cx.op(Op::Conv2dFilterGrad { stride, pad, kernel_h, kernel_w }, &[u, x[0]])?;
    Ok(vec![Some(dg), Some(dw)])
}

/// y = conv2d_filter_grad(x, g): dw[f,c,a,b] = Σ_n,i,j x[n,c, i*s+a-p, j*s+b-p] * g[n,f,i,j]
///   Bilinear, the adjoint of conv2d in w: <u, y> = <conv2d(x, u), g> = <input_grad(g, u), x>,
///   so with upstream u:  dx = conv2d_input_grad(g, u),  dg = conv2d(x, u)
pub(super) fn conv2d_filter_grad_eval(
    x: &Tensor,
    g: &Tensor,
    stride: usize,
    pad: usize,
    kernel_h: usize,
    kernel_w: usize,
) -> Result<Tensor, String> {
    let [n, c, h, wd] = dims4(x)?;
    let [n2, f, oh, ow] = dims4(g)?;
    if n != n2
        || oh != window_out(h, kernel_h, pad, stride, "height").map_err(invalid)?
        || ow != window_out(wd, kernel_w, pad, stride, "width").map_err(invalid)?
    {
        return Err(format!("conv2d_filter_grad of {:?} with gradient {:?}", x.shape, g.shape));
    }
    let mut dw = Tensor::zeros(vec![f, c, kernel_h, kernel_w]);
    for_each_tap([n, f, oh, ow], [c, kernel_h, kernel_w], [h, wd], stride, pad, |t| {
        dw.data[at4(&dw.shape, t.f, t.c, t.a, t.b)] +=
            x.data[at4(&x.shape, t.n, t.c, t.r, t.q)] * g.data[at4(&g.shape, t.n, t.f, t.i, t.j)];
    });
    Ok(dw)
}

pub(super) fn conv2d_filter_grad_vjp(cx: &mut Vjp, u: NodeId, x: &[NodeId], stride: usize, pad: usize) -> Grads {
    let xs = cx.shape(x[0]);
    let (height, width) = (known4(&xs, 2)?, known4(&xs, 3)?);
    let dx = cx.op(Op::Conv2dInputGrad { stride, pad, height, width }, &[x[1], u])?;
    let dg = cx.op(Op::Conv2d { stride, pad }, &[x[0], u])?;
    Ok(vec![Some(dx), Some(dg)])
}

/// y[n,c,i,j] = max over the size×size window at (i*s, j*s)      dx = maxpool2d_grad(x, g):
/// g routed to the FIRST maximum of each window in row-major order (ties: top-most, then
/// left-most), the same convention as ReduceMax and ArgMaxMask
pub(super) fn maxpool2d_eval(x: &Tensor, size: usize, stride: usize) -> Result<Tensor, String> {
    let [n, c, h, w] = dims4(x)?;
    let oh = window_out(h, size, 0, stride, "height").map_err(invalid)?;
    let ow = window_out(w, size, 0, stride, "width").map_err(invalid)?;
    let mut y = Tensor::zeros(vec![n, c, oh, ow]);
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let (a, b) = window_argmax(x, ni, ci, i * stride, j * stride, size);
        y.data[at4(&y.shape, ni, ci, i, j)] = x.data[at4(&x.shape, ni, ci, i * stride + a, j * stride + b)];
    }
    Ok(y)
}

pub(super) fn maxpool2d_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], size: usize, stride: usize) -> Grads {
    Ok(vec![Some(cx.op(Op::MaxPool2dGrad { size, stride }, &[x[0], g])?)])
}

/// y = maxpool2d_grad(x, g): g[n,c,i,j] added at the first maximum of window (i,j) of x
///   dx: none (piecewise constant in x).  dg (linear in g): with upstream u, gather u at each
///   window's first maximum. Built from existing ops for non-overlapping windows (stride =
///   size, the default): dg = size² * avgpool2d(maxpool2d_grad(x, 1) * u), where the
///   inner term is the 0/1 mask of first maxima. Overlapping windows are not supported.
pub(super) fn maxpool2d_grad_eval(x: &Tensor, g: &Tensor, size: usize, stride: usize) -> Result<Tensor, String> {
    let [n, c, h, w] = dims4(x)?;
    let [gn, gc, oh, ow] = dims4(g)?;
    let expected = [
        n,
        c,
        window_out(h, size, 0, stride, "height").map_err(invalid)?,
        window_out(w, size, 0, stride, "width").map_err(invalid)?,
    ];
    if [gn, gc, oh, ow] != expected {
        return Err(format!("maxpool2d_grad of {:?} with gradient {:?}", x.shape, g.shape));
    }
    let mut dx = Tensor::zeros(x.shape.clone());
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let (a, b) = window_argmax(x, ni, ci, i * stride, j * stride, size);
        dx.data[at4(&x.shape, ni, ci, i * stride + a, j * stride + b)] += g.data[at4(&g.shape, ni, ci, i, j)];
    }
    Ok(dx)
}

pub(super) fn maxpool2d_grad_vjp(cx: &mut Vjp, u: NodeId, x: &[NodeId], size: usize, stride: usize) -> Grads {
    if stride != size {
        return Err(format!(
            "second derivative through maxpool2d with overlapping windows (size {size}, stride {stride}) is not supported"
        ));
    }
    let pooled_shape = cx.shape(x[1]);
    let ones = cx.fill(1.0, pooled_shape)?;
    let first_max = cx.op(Op::MaxPool2dGrad { size, stride }, &[x[0], ones])?;
    let picked = cx.mul(first_max, u)?;
    let mean = cx.op(Op::AvgPool2d { size, stride }, &[picked])?;
    let area = cx.constant((size * size) as f64);
    Ok(vec![None, Some(cx.mul(area, mean)?)])
}

/// y[n,c,i,j] = mean over the size×size window at (i*s, j*s)     dx = avgpool2d_grad(g)
pub(super) fn avgpool2d_eval(x: &Tensor, size: usize, stride: usize) -> Result<Tensor, String> {
    let [n, c, h, w] = dims4(x)?;
    let oh = window_out(h, size, 0, stride, "height").map_err(invalid)?;
    let ow = window_out(w, size, 0, stride, "width").map_err(invalid)?;
    let area = (size * size) as f64;
    let mut y = Tensor::zeros(vec![n, c, oh, ow]);
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let mut total = 0.0;
        for a in 0..size {
            for b in 0..size {
                total += x.data[at4(&x.shape, ni, ci, i * stride + a, j * stride + b)];
            }
        }
        y.data[at4(&y.shape, ni, ci, i, j)] = total / area;
    }
    Ok(y)
}

pub(super) fn avgpool2d_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], size: usize, stride: usize) -> Grads {
    let xs = cx.shape(x[0]);
    let (height, width) = (known4(&xs, 2)?, known4(&xs, 3)?);
    Ok(vec![Some(cx.op(Op::AvgPool2dGrad { size, stride, height, width }, &[g])?)])
}

/// y = avgpool2d_grad(g): g[n,c,i,j]/size² spread over window (i,j)
///   Linear, the adjoint of avgpool2d: with upstream u, dg = avgpool2d(u)
pub(super) fn avgpool2d_grad_eval(
    g: &Tensor,
    size: usize,
    stride: usize,
    height: usize,
    width: usize,
) -> Result<Tensor, String> {
    let [n, c, oh, ow] = dims4(g)?;
    if oh != window_out(height, size, 0, stride, "height").map_err(invalid)?
        || ow != window_out(width, size, 0, stride, "width").map_err(invalid)?
    {
        return Err(format!("avgpool2d_grad of {:?} into {height}×{width}", g.shape));
    }
    let area = (size * size) as f64;
    let mut dx = Tensor::zeros(vec![n, c, height, width]);
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let share = g.data[at4(&g.shape, ni, ci, i, j)] / area;
        for a in 0..size {
            for b in 0..size {
                dx.data[at4(&dx.shape, ni, ci, i * stride + a, j * stride + b)] += share;
            }
        }
    }
    Ok(dx)
}

pub(super) fn avgpool2d_grad_vjp(cx: &mut Vjp, u: NodeId, size: usize, stride: usize) -> Grads {
    Ok(vec![Some(cx.op(Op::AvgPool2d { size, stride }, &[u])?)])
}
