//! Loops (`Op::Loop`): one `Kernel::Loop` whose body is the loop body's graph fused by a
//! fuser of its own, with the body's inputs bound to memory of the outer program.
//!
//! Per step `t` (the loop's symbol, `KernelProgram::symbol_base + k`):
//! - carries live in two buffers each: the body reads `cur` and writes the new value to
//!   `next`, and the body ends with the copy `cur ← next` (the body's kernels may read `cur`
//!   after the new value is computed, so it cannot be written in place) — except a carry
//!   that a GEMM can accumulate into (`finish::accumulate_carries_in_gemms`: a weight's
//!   gradient summed over the steps);
//! - a per-step input is an access of the whole outer tensor offset by `t` times its stride
//!   along the sliced axis (no copy);
//! - a per-step output is written at offset `t` times its stride along the stacked axis
//!   (stacked along axis 0, a value the body writes to memory anyway is written there
//!   directly, and read from there, rather than copied);
//! - invariants are read where they are (computed values are materialised once, before the
//!   loop, not per step, and so is a transposed view that the body's products would read
//!   across its rows).
//!
//! Code size and compile time do not depend on the number of steps. The body's temporaries
//! are touched by the loop kernel as a whole (`Kernel::reads`), so the memory plan keeps them
//! apart for the whole loop.

use super::*;
use std::sync::Arc;

impl Fuser<'_> {
    /// The value of result `output` of the loop of node `id`: the loop is emitted when its
    /// first sibling is reached, and every sibling loads its own result.
    pub(super) fn loop_result(&mut self, id: NodeId, spec: &Arc<LoopSpec>, output: usize) -> Result<Rc<Expr>, String> {
        let node = self.g.node(id);
        let key = (Arc::as_ptr(spec) as usize, node.inputs.clone());
        if !self.loops.contains_key(&key) {
            let results = self.emit_loop(id, spec)?;
            self.loops.insert(key.clone(), results);
        }
        self.loops[&key].get(output).cloned().ok_or_else(|| format!("the loop has no result {output}"))
    }

    fn emit_loop(&mut self, id: NodeId, spec: &LoopSpec) -> Result<Vec<Rc<Expr>>, String> {
        let g = self.g;
        let node = g.node(id);
        let body = &spec.body;
        let (nc, ns) = (spec.carries, spec.sliced.len());
        if node.inputs.len() != body.inputs.len() {
            return Err("the loop's operands do not match its body's inputs".into());
        }
        let index = self.prog.symbol_base + self.prog.loop_symbols;
        self.prog.loop_symbols += 1;
        let t = Mono { k: 1, syms: vec![index] };
        // The results some live sibling reads.
        let wanted: Vec<bool> = {
            let mut w = vec![false; spec.outputs()];
            for s in g.loop_siblings(id) {
                if let (true, Op::Loop { output, .. }) = (self.live[s.index()], &g.node(s).op) {
                    w[*output] = true;
                }
            }
            w
        };

        let mut inputs: Vec<Rc<Expr>> = Vec::with_capacity(body.inputs.len());
        let mut carries: Vec<(Access, Access, Vec<Mono>)> = vec![];
        for (j, &x) in node.inputs[..nc].iter().enumerate() {
            let m = monos(&body.inputs[j].shape);
            let cur = Access::contiguous(self.temp(&m), &m);
            let next = Access::contiguous(self.temp(&m), &m);
            let init = self.val(x);
            self.prog.kernels.push(Kernel::Map { shape: m.clone(), expr: init, out: cur.clone() });
            inputs.push(Rc::new(Expr::Load(cur.clone())));
            carries.push((cur, next, m));
        }
        for (k, &x) in node.inputs[nc..nc + ns].iter().enumerate() {
            let whole = self.mem(&self.val(x), g.shape(x));
            inputs.push(Rc::new(Expr::Load(step_access(&whole, spec.sliced[k], &t))));
        }
        for (i, &x) in node.inputs.iter().enumerate().skip(nc + ns) {
            // Constants and loads pass as they are; a computed value is computed once, and so
            // is a view that every step's product would read across its rows (see
            // `transposed_for_products`).
            let v = self.val(x);
            let shape = g.shape(x);
            let across =
                || v.as_load().is_some_and(|a| !a.is_contiguous(&monos(shape))) && transposed_for_products(body, i);
            let v = if v.has_loads() && (v.as_load().is_none() || across()) { self.materialize(&v, shape) } else { v };
            inputs.push(v);
        }
        let mut stacks: Vec<Option<Access>> = vec![];
        for (k, &s) in spec.stacked.iter().enumerate() {
            if !wanted[nc + k] {
                stacks.push(None);
                continue;
            }
            let shape = ops::stacked_shape(body.shape(spec.output_node(nc + k)), s, spec.count)
                .map_err(|e| e.message(g, &[]))?;
            let m = monos(&shape);
            stacks.push(Some(Access::contiguous(self.temp(&m), &m)));
        }

        // The body, fused on its own into kernels that go inside the loop.
        let roots: Vec<NodeId> =
            (0..spec.outputs()).filter(|&k| k < nc || wanted[k]).map(|k| spec.output_node(k)).collect();
        let outer_kernels = std::mem::take(&mut self.prog.kernels);
        let prog = std::mem::take(&mut self.prog);
        let first_body_temp = prog.temps.len();
        let mut f = Fuser::new(body, &roots, self.dtype, Some(inputs), prog, self.conv);
        f.translate_live().map_err(|d| format!("in the loop body: {}", d.message))?;
        // A per-step output stacked along axis 0 that the body wrote to a temporary of its own
        // is written to its place in the stack instead, and read from there: the step's slice
        // of such a stack is laid out as the temporary (contiguous, row-major), so every access
        // of the temporary moves as it is. That saves a copy per stored value per step (an
        // LSTM stores its 4 gate activations and tanh(c) for the backward pass).
        let mut in_place = vec![false; stacks.len()];
        for (k, stack) in stacks.iter().enumerate() {
            let (Some(stack), Slicing { axis: 0, chunk: None }) = (stack, spec.stacked[k]) else { continue };
            let out = spec.output_node(nc + k);
            let Some(temp) = f.val(out).as_load().cloned() else { continue };
            let Base::Temp(i) = temp.base else { continue };
            if i < first_body_temp || temp != Access::contiguous(temp.base, &monos(body.shape(out))) {
                continue;
            }
            let slot = step_access(stack, spec.stacked[k], &t);
            let relocate = |a: &Access| match a.base == temp.base {
                true => Access { base: slot.base, offset: slot.offset.add(&a.offset), strides: a.strides.clone() },
                false => a.clone(),
            };
            f.prog.kernels.iter_mut().for_each(|kernel| kernel.map_accesses(&relocate));
            f.vals.iter_mut().flatten().for_each(|v| *v = map_loads(v, &mut |a| relocate(a)));
            in_place[k] = true;
        }
        for (j, (_, next, m)) in carries.iter().enumerate() {
            let v = f.val(spec.output_node(j));
            f.prog.kernels.push(Kernel::Map { shape: m.clone(), expr: v, out: next.clone() });
        }
        for (k, stack) in stacks.iter().enumerate() {
            let Some(stack) = stack.as_ref().filter(|_| !in_place[k]) else { continue };
            let out = spec.output_node(nc + k);
            let v = f.val(out);
            let shape = monos(body.shape(out));
            let at = step_access(stack, spec.stacked[k], &t);
            f.prog.kernels.push(Kernel::Map { shape, expr: v, out: at });
        }
        for (cur, next, m) in &carries {
            f.prog.kernels.push(Kernel::Map {
                shape: m.clone(),
                expr: Rc::new(Expr::Load(next.clone())),
                out: cur.clone(),
            });
        }
        let pairs: Vec<(Access, Access)> = carries.iter().map(|(cur, next, _)| (cur.clone(), next.clone())).collect();
        finish::accumulate_carries_in_gemms(&mut f.prog.kernels, &pairs);
        self.prog = f.prog;
        let body_kernels = std::mem::replace(&mut self.prog.kernels, outer_kernels);
        self.prog.kernels.push(Kernel::Loop { count: spec.count, index, reverse: spec.reverse, body: body_kernels });

        let mut results: Vec<Rc<Expr>> = carries.into_iter().map(|(cur, _, _)| Rc::new(Expr::Load(cur))).collect();
        for stack in stacks {
            // A result nobody reads has no buffer; its sibling is never translated.
            results.push(match stack {
                Some(a) => Rc::new(Expr::Load(a)),
                None => Rc::new(Expr::Const(f64::NAN)),
            });
        }
        Ok(results)
    }
}

/// The part of `whole` (a tensor in memory) that step `t` reads or writes: offset by `t`
/// steps along the sliced axis, which a one-element step drops.
fn step_access(whole: &Access, s: Slicing, t: &Mono) -> Access {
    let step = whole.strides[s.axis].mul(t).scale(s.width() as i64);
    let mut strides = whole.strides.clone();
    if s.chunk.is_none() {
        strides.remove(s.axis);
    }
    Access { base: whole.base, offset: whole.offset.add(&Poly::from_mono(step)), strides }
}

/// Whether body input `index` is a matrix that the body reads only as the untransposed right
/// operand of products (`h @ w`). Passed as a view of a transpose (`w = transpose(W_hh)`), each
/// step's product would read it column by column, which no streaming GEMM kernel takes and
/// `matrixmultiply` packs again every step; copied once before the loop it is read row by row
/// (`runtime::symbols::stream`'s `Rows`): an LSTM's step forward at batch 32,
/// 32 × 256 · 256 × 1024, goes from ~82 to ~110 GFLOP/s. A body that reads it transposed
/// (`dz @ transpose(w)`, the backward loop) gets the untransposed weight itself from the view.
fn transposed_for_products(body: &Graph, index: usize) -> bool {
    let Some(at) = body.nodes.iter().position(|n| n.op == (Op::Input { index })) else { return false };
    let at = NodeId(at as u32);
    let mut readers = body.nodes.iter().filter(|n| n.inputs.contains(&at)).peekable();
    readers.peek().is_some()
        && !body.outputs.iter().any(|o| o.1 == at)
        && readers.all(|n| {
            matches!(n.op, Op::MatMul { transpose_b: false, batch: 0, contract: 1, .. })
                && n.inputs[1] == at
                && n.inputs[0] != at
        })
}
