//! Evaluation helpers for the reference meanings: plain loops over row-major data.

use crate::ir::graph::Shape;
use crate::ir::tensor::Tensor;

use super::shape::ShapeError;

// ---- evaluation helpers: plain loops over row-major data ------------------------------------

pub(super) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides: the flat distance between neighbours along each axis.
pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Call `f` with every multi-index of `shape`, in row-major order (the order of the data).
pub(super) fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0; shape.len()];
    loop {
        f(&idx);
        // Advance like an odometer: the last axis fastest.
        let mut a = shape.len();
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// (elements before `axis`, its size, elements after it): element (o, j, k) is at (o*n + j)*inner + k.
pub(super) fn split_axis(shape: &[usize], axis: usize) -> Result<(usize, usize, usize), String> {
    if axis >= shape.len() {
        return Err(format!("axis {axis} of a tensor of shape {shape:?}"));
    }
    Ok((numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..])))
}

/// Numpy broadcasting of two concrete shapes.
pub(super) fn broadcast_dims(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("cannot broadcast {a:?} with {b:?}")),
        })
        .collect()
}

/// For every element of `to`, the flat index of the element of `from` it reads when `from` is
/// broadcast to `to` (stretched axes read index 0).
pub(super) fn broadcast_map(from: &[usize], to: &[usize]) -> Vec<usize> {
    if from == to {
        return (0..numel(to)).collect();
    }
    let lead = to.len() - from.len();
    // Stride 0 along prepended and stretched axes: every position reads the same element.
    let from_strides = strides(from);
    let stride: Vec<usize> =
        (0..to.len()).map(|a| if a < lead || from[a - lead] == 1 { 0 } else { from_strides[a - lead] }).collect();
    let mut map = Vec::with_capacity(numel(to));
    for_each_index(to, |idx| map.push(idx.iter().zip(&stride).map(|(i, s)| i * s).sum()));
    map
}

pub(super) fn map(x: &Tensor, f: impl Fn(f64) -> f64) -> Tensor {
    Tensor::new(x.shape.clone(), x.data.iter().map(|&v| f(v)).collect())
}

/// Apply `f` elementwise to `a` and `b` broadcast together.
pub(super) fn zip(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<Tensor, String> {
    let shape = broadcast_dims(&a.shape, &b.shape)?;
    let (ia, ib) = (broadcast_map(&a.shape, &shape), broadcast_map(&b.shape, &shape));
    let data = ia.iter().zip(&ib).map(|(&i, &j)| f(a.data[i], b.data[j])).collect();
    Ok(Tensor::new(shape, data))
}

/// Index of the first largest value (later equal values do not win); None when empty.
pub(super) fn first_max(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (j, v) in values.enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((j, v));
        }
    }
    best.map(|(j, _)| j)
}

/// Offset (a, b) of the first maximum, row-major, of the size×size window of x[n, c] at (top, left).
pub(super) fn window_argmax(x: &Tensor, n: usize, c: usize, top: usize, left: usize, size: usize) -> (usize, usize) {
    let values = (0..size * size).map(|t| x.data[at4(&x.shape, n, c, top + t / size, left + t % size)]);
    let t = first_max(values).expect("windows are not empty");
    (t / size, t % size)
}

pub(super) fn dims4(t: &Tensor) -> Result<[usize; 4], String> {
    <[usize; 4]>::try_from(t.shape.as_slice()).map_err(|_| format!("expected a 4-D tensor, got shape {:?}", t.shape))
}

pub(super) fn known4(shape: &Shape, axis: usize) -> Result<usize, String> {
    shape.get(axis).and_then(|d| d.known()).ok_or_else(|| format!("axis {axis} must be a known size"))
}

pub(super) fn at4(shape: &[usize], a: usize, b: usize, c: usize, d: usize) -> usize {
    ((a * shape[1] + b) * shape[2] + c) * shape[3] + d
}

/// Every index of a 4-D grid, row-major.
pub(super) fn grid4(dims: [usize; 4]) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let [a, b, c, d] = dims;
    (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).flat_map(move |k| (0..d).map(move |l| (i, j, k, l)))))
}

/// One tap of a convolution that lands inside the (unpadded) input: output element
/// (n, f, i, j) reads input element (n, c, r, q) through filter element (f, c, a, b),
/// where r = i*stride + a - pad and q = j*stride + b - pad.
pub(super) struct Tap {
    pub(super) n: usize,
    pub(super) f: usize,
    pub(super) i: usize,
    pub(super) j: usize,
    pub(super) c: usize,
    pub(super) a: usize,
    pub(super) b: usize,
    pub(super) r: usize,
    pub(super) q: usize,
}

/// Call `f` on every in-bounds tap of a convolution with output dims `out` = [N, F, OH, OW],
/// filter dims [C, KH, KW] and input height and width `hw`; taps into the zero padding are
/// skipped.
pub(super) fn for_each_tap(
    out: [usize; 4],
    filter: [usize; 3],
    hw: [usize; 2],
    stride: usize,
    pad: usize,
    mut f: impl FnMut(&Tap),
) {
    let [batch, filters, oh, ow] = out;
    let [channels, kh, kw] = filter;
    let [h, w] = hw;
    // The input row/column a tap reads, if it is inside the unpadded input.
    let inside = |o: usize, k: usize, size: usize| (o * stride + k).checked_sub(pad).filter(|&r| r < size);
    for n in 0..batch {
        for f_ in 0..filters {
            for i in 0..oh {
                for j in 0..ow {
                    for c in 0..channels {
                        for a in 0..kh {
                            let Some(r) = inside(i, a, h) else { continue };
                            for b in 0..kw {
                                let Some(q) = inside(j, b, w) else { continue };
                                f(&Tap { n, f: f_, i, j, c, a, b, r, q });
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn invalid(e: ShapeError) -> String {
    match e {
        ShapeError::Invalid(s) => s,
        other => format!("{other:?}"),
    }
}
