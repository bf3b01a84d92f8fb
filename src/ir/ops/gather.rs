//! Indexing by a tensor of whole numbers (numpy `take`) and its adjoint, the scatter-add:
//! meaning and VJP side by side.

use crate::ir::graph::{NodeId, Op};
use crate::ir::tensor::Tensor;

use super::loops::*;
use super::{Grads, Vjp};

/// The index a value of an index tensor stands for, if it is a whole number in 0..n.
fn index_of(v: f64, axis: usize, n: usize) -> Result<usize, String> {
    if v.fract() == 0.0 && v >= 0.0 && v < n as f64 {
        Ok(v as usize)
    } else {
        Err(format!("index {v} is out of range for axis {axis} of size {n} (indices are whole numbers 0..{n})"))
    }
}

/// y[a.., j.., b..] = x[a.., idx[j..], b..] along axis
///   dx = scatter_add(g, idx): each g row added where it was read from (repeated indices sum)
///   no gradient for idx (whole numbers)
pub(super) fn gather_eval(x: &Tensor, idx: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let rows: Vec<usize> = idx.data.iter().map(|&v| index_of(v, axis, n)).collect::<Result<_, _>>()?;
    let mut data = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for &r in &rows {
            let from = (o * n + r) * inner;
            data.extend_from_slice(&x.data[from..from + inner]);
        }
    }
    let mut shape = x.shape[..axis].to_vec();
    shape.extend(&idx.shape);
    shape.extend(&x.shape[axis + 1..]);
    Ok(Tensor::new(shape, data))
}

pub(super) fn gather_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize) -> Grads {
    let size = cx.shape(x[0])[axis].known().ok_or("the gradient of a gather along a symbolic dimension")?;
    Ok(vec![Some(cx.op(Op::ScatterAdd { axis, size }, &[g, x[1]])?), None])
}

/// y = zeros with `size` along axis; y[a.., idx[j..], b..] += g[a.., j.., b..] in the order of j
///   Linear in g, the adjoint of gather: with upstream u, dg = gather(u, idx); no gradient for idx
pub(super) fn scatter_add_eval(g: &Tensor, idx: &Tensor, axis: usize, size: usize) -> Result<Tensor, String> {
    let count = idx.numel();
    if g.shape.len() < axis + idx.shape.len() || g.shape[axis..axis + idx.shape.len()] != idx.shape[..] {
        return Err(format!("scatter_add of {:?} by indices {:?} at axis {axis}", g.shape, idx.shape));
    }
    let outer = numel(&g.shape[..axis]);
    let inner = numel(&g.shape[axis + idx.shape.len()..]);
    let rows: Vec<usize> = idx.data.iter().map(|&v| index_of(v, axis, size)).collect::<Result<_, _>>()?;
    let mut data = vec![0.0; outer * size * inner];
    for o in 0..outer {
        for (j, &r) in rows.iter().enumerate() {
            let (to, from) = ((o * size + r) * inner, (o * count + j) * inner);
            for k in 0..inner {
                data[to + k] += g.data[from + k];
            }
        }
    }
    let mut shape = g.shape[..axis].to_vec();
    shape.push(size);
    shape.extend(&g.shape[axis + idx.shape.len()..]);
    Ok(Tensor::new(shape, data))
}

pub(super) fn scatter_add_vjp(cx: &mut Vjp, u: NodeId, x: &[NodeId], axis: usize) -> Grads {
    Ok(vec![Some(cx.op(Op::Gather { axis }, &[u, x[1]])?), None])
}
