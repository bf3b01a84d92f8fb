//! Convolutions by Winograd's algorithm (`runtime::winograd`): a layer's forward and both
//! gradients become transforms of their operands, α² batched products in the transformed
//! domain and a transform back; each layer's filter, input and upstream-gradient transforms
//! are computed once and shared by the three.

use std::rc::Rc;

use super::Fuser;
use crate::codegen::kernel::*;
use crate::ir::graph::NodeId;

impl Fuser<'_> {
    /// A stride-1 convolution or gradient by Winograd's algorithm (`runtime::winograd`): the
    /// transforms of its operands (shared with the other convolutions of the same layer), α²
    /// products in the transformed domain, and the transform back.
    pub(super) fn winograd(&mut self, op: ConvOp, geom: ConvGeom, tile: Tile, batch: Mono, id: NodeId) -> Rc<Expr> {
        let node = self.g.node(id);
        let (i0, i1) = (node.inputs[0], node.inputs[1]);
        let ConvGeom { c, h, w, f, oh, ow, pad, .. } = geom;
        let wg = WinogradGeom { c, h, w, f, oh, ow, pad, tile };
        let count = tile.alpha().pow(2);
        let nt = batch.scale(wg.tiles() as i64);
        let (cm, fm) = (Mono::known(c as i64), Mono::known(f as i64));
        // Matrix 0 of the α² `rows` × `cols` matrices of a [rows, α², cols] buffer
        // (`runtime::winograd`'s layouts), or (`transposed`) of a [cols, α², rows] one, and the
        // step from one matrix to the next.
        let batched = |a: &Access, rows: &Mono, cols: &Mono, transposed: bool| {
            let (strides, step) = if transposed {
                (vec![Mono::one(), rows.scale(count as i64)], rows.clone())
            } else {
                (vec![cols.scale(count as i64), Mono::one()], cols.clone())
            };
            (Access { strides, ..a.clone() }, step)
        };
        let (product, back) = match op {
            // M_ξ (NT × F) = V_ξ (NT × C) · U_ξ (C × F), then Aᵀ M A
            ConvOp::Forward => {
                let u = self.transformed(Transform::Filter, i1, wg, &batch);
                let v = self.transformed(Transform::Input, i0, wg, &batch);
                let out = self.batch_temp(count, &nt, &fm);
                let a = batched(&v, &nt, &cm, false);
                let b = batched(&u, &cm, &fm, false);
                let c = batched(&out, &nt, &fm, false);
                ((nt.clone(), cm.clone(), fm.clone(), a, b, c), (Transform::Output, out))
            }
            // Mx_ξ (NT × C) = Ũ_ξ (NT × F) · U_ξᵀ (F × C), then B Mx Bᵀ added up
            ConvOp::InputGrad => {
                let u = self.transformed(Transform::Filter, i1, wg, &batch);
                let gu = self.transformed(Transform::OutputAdjoint, i0, wg, &batch);
                let out = self.batch_temp(count, &nt, &cm);
                let a = batched(&gu, &nt, &fm, false);
                let b = batched(&u, &fm, &cm, true);
                let c = batched(&out, &nt, &cm, false);
                ((nt.clone(), fm.clone(), cm.clone(), a, b, c), (Transform::InputAdjoint, out))
            }
            // Mw_ξ (C × F) = V_ξᵀ (C × NT) · Ũ_ξ (NT × F), then Gᵀ Mw G
            ConvOp::FilterGrad => {
                let v = self.transformed(Transform::Input, i0, wg, &batch);
                let gu = self.transformed(Transform::OutputAdjoint, i1, wg, &batch);
                let out = self.batch_temp(count, &cm, &fm);
                let a = batched(&v, &cm, &nt, true);
                let b = batched(&gu, &nt, &fm, false);
                let c = batched(&out, &cm, &fm, false);
                ((cm.clone(), nt.clone(), fm.clone(), a, b, c), (Transform::FilterAdjoint, out))
            }
        };
        let (m, k, n, (a, sa), (b, sb), (c, sc)) = product;
        let batch_axis = BatchAxis { len: Mono::known(count as i64), a: sa, b: sb, c: sc };
        let (alpha, beta) = (Rc::new(Expr::Const(1.0)), Rc::new(Expr::Const(0.0)));
        self.prog.kernels.push(Kernel::Gemm { m, n, k, a, b, c, alpha, beta, batch: vec![batch_axis] });
        let (back, src) = back;
        self.produce(&node.shape, |dst| Kernel::Winograd { op: back, batch, geom: wg, src, dst })
    }

    /// `count` contiguous `rows` × `cols` matrices in a new temporary.
    fn batch_temp(&mut self, count: usize, rows: &Mono, cols: &Mono) -> Access {
        let len = [rows.mul(cols).scale(count as i64)];
        Access::contiguous(self.temp(&len), &len)
    }

    /// The Winograd transform `op` of node `x` (a filter, an input or an upstream gradient),
    /// computed once per layer.
    fn transformed(&mut self, op: Transform, x: NodeId, g: WinogradGeom, batch: &Mono) -> Access {
        if let Some(a) = self.transformed.get(&(op, x, g)) {
            return a.clone();
        }
        let src = self.contiguous(&self.val(x), self.g.shape(x));
        // Every transform's result is of a fixed size (the filter's) or a size per image.
        let (per_image, fixed) = (g.sizes(op, 1).1 - g.sizes(op, 0).1, g.sizes(op, 0).1);
        let len = [if fixed == 0 { batch.scale(per_image as i64) } else { Mono::known(fixed as i64) }];
        let dst = Access::contiguous(self.temp(&len), &len);
        self.prog.kernels.push(Kernel::Winograd { op, batch: batch.clone(), geom: g, src, dst: dst.clone() });
        self.transformed.insert((op, x, g), dst.clone());
        dst
    }
}
