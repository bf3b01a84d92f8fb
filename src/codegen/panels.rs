//! Packing hoisted out of loops. Input: a scheduled `KernelProgram` and the panel width of
//! this CPU (`symbols::panel_width`); output: the same program where a product inside a
//! loop whose B is the same at every step reads B from panels packed once before the loop
//! (`Kernel::Pack`, `Kernel::PanelGemm`). JIT only: the symbols are Rust
//! (`runtime::symbols::panels`); object files keep the plain products.
//!
//! Why: an LSTM multiplies by its recurrent weight at every step, forward (h · w_hh) and
//! backward (dz · w_hhᵀ); the GEMM symbol packed (or strided through) that weight 64 times
//! per W11 train step, where once is enough.
//!
//! A product qualifies when it is in a loop's body (not nested deeper: an inner loop's
//! products are packed before the inner loop, once per step of the outer one), has no batch
//! axes and no narrow side (those are inline loops), C's columns are contiguous, k and n are
//! known with k·n ≥ [`MIN_ELEMENTS`], m is not known to exceed `symbols::MAX_PANEL_ROWS`,
//! and B is invariant: nothing in the body writes B's buffer and B's place does not depend
//! on the loop's step index. Products in one loop by the same B share one packing.

use std::collections::{HashMap, HashSet};

use super::kernel::{inline_form, Access, Base, Kernel, KernelProgram, Mono};
use crate::runtime::symbols::MAX_PANEL_ROWS;

/// Fewest elements of B worth packing (16 KiB of f32).
pub const MIN_ELEMENTS: i64 = 4096;

/// Rewrites the products of `prog`'s loops that qualify (see the module documentation) to
/// read B from panels of `width` columns; returns how many.
pub fn hoist(prog: &mut KernelProgram, width: usize) -> usize {
    hoist_in(&mut prog.kernels, &mut prog.temps, width)
}

fn hoist_in(kernels: &mut Vec<Kernel>, temps: &mut Vec<Mono>, width: usize) -> usize {
    let mut count = 0;
    let mut out = Vec::with_capacity(kernels.len());
    for mut kernel in kernels.drain(..) {
        if let Kernel::Loop { count: steps, index, body, .. } = &mut kernel {
            count += hoist_in(body, temps, width);
            if *steps >= 2 {
                let written: HashSet<Base> = body.iter().flat_map(Kernel::writes).map(|a| a.base).collect();
                let mut packed: HashMap<Access, Access> = HashMap::new();
                for k in body.iter_mut() {
                    let Some((n, kk, b)) = candidate(k, *index, &written) else { continue };
                    let panels = packed.entry(b.clone()).or_insert_with(|| {
                        let w = width as i64;
                        let len = (n + w - 1) / w * w * kk;
                        temps.push(Mono::known(len));
                        let panels = Access::contiguous(Base::Temp(temps.len() - 1), &[Mono::known(len)]);
                        let (k, n) = (Mono::known(kk), Mono::known(n));
                        out.push(Kernel::Pack { k, n, width, b: b.clone(), out: panels.clone() });
                        panels
                    });
                    if let Kernel::Gemm { m, n, k: depth, a, b, c, alpha, beta, .. } = k {
                        let (m, n, depth, a, b, c) =
                            (m.clone(), n.clone(), depth.clone(), a.clone(), b.clone(), c.clone());
                        let (alpha, beta, panels) = (alpha.clone(), beta.clone(), panels.clone());
                        *k = Kernel::PanelGemm { m, n, k: depth, a, b, panels, width, c, alpha, beta };
                    }
                    count += 1;
                }
            }
        }
        out.push(kernel);
    }
    *kernels = out;
    count
}

/// n, k and B of `kernel` if it is a product that qualifies in a loop with step index
/// `index` whose body writes `written`.
fn candidate(kernel: &Kernel, index: u32, written: &HashSet<Base>) -> Option<(i64, i64, Access)> {
    let Kernel::Gemm { m, n: columns, k: depth, a, b, c, batch, .. } = kernel else { return None };
    let (n, k) = (columns.as_known()?, depth.as_known()?);
    let few_rows = m.as_known().is_none_or(|m| m <= MAX_PANEL_ROWS);
    let steps = |x: &Mono| x.syms.contains(&index);
    let invariant = !written.contains(&b.base) && !b.offset.0.iter().chain(&b.strides).any(steps);
    let contiguous_rows = c.strides.get(1).and_then(Mono::as_known) == Some(1);
    let qualifies = batch.is_empty()
        && inline_form(m, columns, a, b).is_none()
        && few_rows
        && n.checked_mul(k).is_some_and(|len| len >= MIN_ELEMENTS)
        && contiguous_rows
        && invariant;
    qualifies.then(|| (n, k, b.clone()))
}
