//! The structural ops that write memory: padding, concatenation, and the gather and
//! scatter-add of indexing by a tensor. (Slices, reversals, transposes and broadcasts are
//! views: `translate` only changes their loads' strides and offsets.)

use std::rc::Rc;

use super::{split_axis, Fuser};
use crate::codegen::kernel::*;
use crate::ir::graph::{NodeId, Shape};

impl Fuser<'_> {
    /// Zeros, then the operand written into the padded axis, its elements `step` apart from
    /// `before`.
    pub(super) fn pad(
        &mut self,
        v: Rc<Expr>,
        from: &Shape,
        to: &Shape,
        (axis, before, step): (usize, usize, usize),
    ) -> Rc<Expr> {
        let whole = self.zeros(to);
        let mut inner = whole.clone();
        inner.offset = Poly::from_mono(whole.strides[axis].scale(before as i64));
        inner.strides[axis] = whole.strides[axis].scale(step as i64);
        self.prog.kernels.push(Kernel::Map { shape: monos(from), expr: v, out: inner });
        Rc::new(Expr::Load(whole))
    }

    /// A new temporary of `shape` filled with zeros (a `Fill` kernel).
    fn zeros(&mut self, shape: &Shape) -> Access {
        let m = monos(shape);
        let whole = Access::contiguous(self.temp(&m), &m);
        self.prog.kernels.push(Kernel::Fill { out: whole.clone(), len: Mono::product(&m), value: 0.0 });
        whole
    }

    /// One `Map` per operand, each writing its values (fused with whatever computes them)
    /// into its range of the joined axis.
    pub(super) fn concat(&mut self, parts: &[NodeId], to: &Shape, axis: usize) -> Result<Rc<Expr>, String> {
        let m = monos(to);
        let whole = Access::contiguous(self.temp(&m), &m);
        let mut start = 0;
        for &part in parts {
            let from = self.g.shape(part);
            let offset = Poly::from_mono(whole.strides[axis].scale(start));
            let out = Access { offset, ..whole.clone() };
            self.prog.kernels.push(Kernel::Map { shape: monos(from), expr: self.val(part), out });
            start += from[axis].known().ok_or("concatenation along a symbolic dimension")? as i64;
        }
        Ok(Rc::new(Expr::Load(whole)))
    }

    /// `Gather` (x, idx) with x [outer, n, inner] and idx of `count` elements, or with
    /// `scatter_into: Some(n)` the `ScatterAdd` (g, idx) with g [outer, count, inner], into a
    /// zeroed [outer, n, inner].
    pub(super) fn gather(&mut self, id: NodeId, axis: usize, scatter_into: Option<usize>) -> Rc<Expr> {
        let node = self.g.node(id);
        let (x, idx) = (node.inputs[0], node.inputs[1]);
        let (xs, is) = (self.g.shape(x), self.g.shape(idx));
        let count = Mono::product(&monos(is));
        let (outer, n, inner) = match scatter_into {
            None => split_axis(xs, axis),
            Some(size) => {
                let m = monos(xs);
                (Mono::product(&m[..axis]), Mono::known(size as i64), Mono::product(&m[axis + is.len()..]))
            }
        };
        let xa = self.contiguous(&self.val(x), xs);
        let ia = self.contiguous(&self.val(idx), is);
        let shape = node.shape.clone();
        let out = match scatter_into {
            None => Access::contiguous(self.temp(&monos(&shape)), &monos(&shape)),
            Some(_) => self.zeros(&shape),
        };
        let scatter = scatter_into.is_some();
        self.prog.kernels.push(Kernel::Gather { scatter, outer, n, count, inner, x: xa, idx: ia, out: out.clone() });
        Rc::new(Expr::Load(out))
    }
}
