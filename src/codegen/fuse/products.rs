//! Matrix products: a (batched) `MatMul` node as one `Gemm` kernel over strided views of its
//! operands, or, with a short inner dimension, as an elementwise sum that fuses with its
//! consumers.
//!
//! Each operand is first seen in a canonical axis order (a transpose only permutes strides):
//! A as [batch.., rows.., inner..] and B as [batch.., inner.., cols..]. A group of axes is one
//! GEMM dimension when memory walks it as one axis (each axis's stride is the next one's times
//! its size); an operand whose group does not is copied to contiguous memory first. The GEMM's
//! m, k, n are the groups' sizes, so `[B, T, D] @ [D, E]` is one GEMM with m = B·T and the
//! weight gradient Σ_b X_bᵀ G_b one with k = B·T; batch axes become `BatchAxis` entries.

use std::rc::Rc;

use super::Fuser;
use crate::codegen::kernel::*;
use crate::ir::graph::{Dim, NodeId};

/// Products whose inner dimension is at most this (known) size are elementwise expressions.
const SHORT_K: i64 = 4;

/// An operand of a product in its canonical axis order: `dims` and the strides of `access`.
struct View {
    access: Access,
    dims: Vec<Mono>,
}

impl View {
    /// The single stride of the axes `range` (a GEMM dimension), if memory walks them as one
    /// axis. Unit axes do not matter; a group of none (a vector's missing side) has stride 0.
    fn group(&self, range: std::ops::Range<usize>) -> Option<Mono> {
        let mut stride: Option<Mono> = None;
        for i in range.filter(|&i| self.dims[i].as_known() != Some(1)) {
            let s = &self.access.strides[i];
            if let Some(outer) = &stride {
                if *outer != s.mul(&self.dims[i]) {
                    return None;
                }
            }
            stride = Some(s.clone());
        }
        Some(stride.unwrap_or_else(Mono::zero))
    }
}

impl Fuser<'_> {
    /// The kernels of `MatMul { transpose_a, transpose_b, batch, contract }` node `id`.
    pub(super) fn matmul(&mut self, id: NodeId, (ta, tb): (bool, bool), batch: usize, contract: usize) -> Rc<Expr> {
        let node = self.g.node(id);
        let shape = node.shape.clone();
        let (ra, rb) = (self.g.shape(node.inputs[0]).len(), self.g.shape(node.inputs[1]).len());
        let (rows, cols) = (ra - batch - contract, rb - batch - contract);
        // Canonical orders: A [batch, rows, inner], B [batch, inner, cols].
        let perm_a: Vec<usize> = if ta {
            (0..batch).chain(batch + contract..ra).chain(batch..batch + contract).collect()
        } else {
            (0..ra).collect()
        };
        let perm_b: Vec<usize> = if tb {
            (0..batch).chain(rb - contract..rb).chain(batch..rb - contract).collect()
        } else {
            (0..rb).collect()
        };
        let mut a = self.view(node.inputs[0], &perm_a);
        let mut b = self.view(node.inputs[1], &perm_b);
        let (a_rows, a_inner) = (batch..batch + rows, batch + rows..ra);
        let (b_inner, b_cols) = (batch..batch + contract, batch + contract..rb);
        if a.group(a_rows.clone()).is_none() || a.group(a_inner.clone()).is_none() {
            a = self.copy(a);
        }
        if b.group(b_inner.clone()).is_none() || b.group(b_cols.clone()).is_none() {
            b = self.copy(b);
        }
        let size = |v: &View, r: std::ops::Range<usize>| Mono::product(&v.dims[r]);
        let (m, k, n) = (size(&a, a_rows.clone()), size(&a, a_inner.clone()), size(&b, b_cols.clone()));
        if let Some(kk) = k.as_known().filter(|&k| (1..=SHORT_K).contains(&k)) {
            return self.short_product(kk, (a, a_inner.start), (b, b_inner.start), (batch, rows, cols), &shape);
        }
        let group = |v: &View, r| v.group(r).expect("checked or copied above");
        let a2 = Access { strides: vec![group(&a, a_rows), group(&a, a_inner)], ..a.access.clone() };
        let b2 = Access { strides: vec![group(&b, b_inner), group(&b, b_cols)], ..b.access.clone() };
        let out = monos(&shape);
        let c_full = Access::contiguous(self.temp(&out), &out);
        let c2 = Access { strides: vec![n.clone(), Mono::one()], ..c_full.clone() };
        let axes: Vec<BatchAxis> = (0..batch)
            .map(|i| {
                // An operand of size 1 along a batch axis the result stretches repeats itself.
                let along = |v: &View| if v.dims[i] == out[i] { v.access.strides[i].clone() } else { Mono::zero() };
                BatchAxis { len: out[i].clone(), a: along(&a), b: along(&b), c: c_full.strides[i].clone() }
            })
            .collect();
        let b2 = if axes.is_empty() { self.columns_for_inline(&m, &n, &k, &a2, b2) } else { b2 };
        let (alpha, beta) = (Rc::new(Expr::Const(1.0)), Rc::new(Expr::Const(0.0)));
        self.prog.kernels.push(Kernel::Gemm { m, n, k, a: a2, b: b2, c: c2, alpha, beta, batch: axes });
        Rc::new(Expr::Load(c_full))
    }

    /// Operand `id` in memory, its axes in the order `perm`.
    fn view(&mut self, id: NodeId, perm: &[usize]) -> View {
        let shape = self.g.shape(id).clone();
        let access = self.mem(&self.val(id), &shape);
        let dims = monos(&shape);
        View {
            access: Access { strides: perm.iter().map(|&p| access.strides[p].clone()).collect(), ..access },
            dims: perm.iter().map(|&p| dims[p].clone()).collect(),
        }
    }

    /// The view copied to contiguous memory in its own (canonical) axis order.
    fn copy(&mut self, v: View) -> View {
        let out = Access::contiguous(self.temp(&v.dims), &v.dims);
        let expr = Rc::new(Expr::Load(v.access));
        self.prog.kernels.push(Kernel::Map { shape: v.dims.clone(), expr, out: out.clone() });
        View { access: out, dims: v.dims }
    }

    /// A narrow product that emit would write inline as dot products if B's columns were
    /// contiguous along k: B copied so (k·n elements); otherwise B as it is.
    fn columns_for_inline(&mut self, m: &Mono, n: &Mono, k: &Mono, a: &Access, b: Access) -> Access {
        let columns = |base| Access { base, offset: Poly::zero(), strides: vec![Mono::one(), k.clone()] };
        let needs_columns = inline_form(m, n, a, &b).is_none() && inline_form(m, n, a, &columns(b.base)).is_some();
        if !(is_narrow(n) && !is_narrow(m) && needs_columns) {
            return b;
        }
        let shape_b = [k.clone(), n.clone()];
        let columns = columns(self.temp(&shape_b));
        let expr = Rc::new(Expr::Load(b));
        self.prog.kernels.push(Kernel::Map { shape: shape_b.to_vec(), expr, out: columns.clone() });
        columns
    }

    /// A product with a short inner dimension k (known, at most `SHORT_K`) as the expression
    /// Σ_p A[.., i, p]·B[.., p, j] over the result's index space [batch.., rows.., cols..]: no
    /// GEMM call, and the sum fuses with what consumes it, as in `relu(x @ W1 + b1)` of a 2-D
    /// input, one loop over [B, 100] instead of a GEMM writing memory and a pass reading it.
    /// The sum runs over p in order. The loop vectorises along the last axis, so a B whose
    /// columns are not contiguous (a transposed weight) is first copied (k·n elements).
    /// `a` and `b` are canonical views with the index of their first inner axis.
    fn short_product(
        &mut self,
        k: i64,
        (a, a_inner): (View, usize),
        (b, b_inner): (View, usize),
        (batch, rows, cols): (usize, usize, usize),
        shape: &[Dim],
    ) -> Rc<Expr> {
        let b = match b.access.strides.last() {
            Some(s) if cols > 0 && s.as_known() != Some(1) => self.copy(b),
            _ => b,
        };
        let out = monos(&shape.to_vec());
        let inner_a = a.group(a_inner..a_inner + a.dims.len() - a_inner).expect("checked or copied");
        let inner_b = b.group(b_inner..b_inner + b.dims.len() - b_inner - cols).expect("checked or copied");
        // Strides of each operand over the result's axes: its own along its batch axes (0
        // where it is broadcast) and its own group, 0 along the other operand's group.
        let batch_strides = |v: &View| -> Vec<Mono> {
            (0..batch).map(|i| if v.dims[i] == out[i] { v.access.strides[i].clone() } else { Mono::zero() }).collect()
        };
        let mut sa = batch_strides(&a);
        sa.extend(a.access.strides[batch..batch + rows].iter().cloned());
        sa.extend(std::iter::repeat_n(Mono::zero(), cols));
        let mut sb = batch_strides(&b);
        sb.extend(std::iter::repeat_n(Mono::zero(), rows));
        sb.extend(b.access.strides[b.dims.len() - cols..].iter().cloned());
        let term = |p: i64| {
            let at = |v: &View, inner: &Mono, strides: &[Mono]| Access {
                base: v.access.base,
                offset: v.access.offset.add(&Poly::from_mono(inner.scale(p))),
                strides: strides.to_vec(),
            };
            let (x, y) = (at(&a, &inner_a, &sa), at(&b, &inner_b, &sb));
            Rc::new(Expr::Binary(Bin::Mul, Rc::new(Expr::Load(x)), Rc::new(Expr::Load(y))))
        };
        (1..k).fold(term(0), |sum, p| Rc::new(Expr::Binary(Bin::Add, sum, term(p))))
    }
}
