//! Memory plan. Input: the kernels of one function and the sizes of their temporaries;
//! output: an offset in the workspace for every temporary, and the workspace size.
//!
//! Temporaries whose live ranges (first to last kernel touching them) do not overlap share
//! memory. Sizes are monomials in the run-time symbols (`64·B` elements), so temporaries are
//! grouped by their symbols and each group is packed with constant coefficients; the groups
//! are laid end to end. The workspace size is then a polynomial, exact for every batch size.
//! An elementwise kernel whose input dies where its output is born writes in place.

use std::collections::BTreeMap;

use crate::codegen::kernel::{Base, Kernel, Mono, Poly};

/// Offsets are multiples of this many elements (64 bytes for f32): aligned vector loads and
/// no false sharing between buffers.
const ALIGN: i64 = 16;

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Offset (in elements) of every temporary in the workspace; None if never used.
    pub offsets: Vec<Option<Poly>>,
    /// Workspace size in elements.
    pub size: Poly,
    /// Sum of the sizes of the temporaries, each taken separately (elements).
    pub unshared: Poly,
    /// How many kernels write their result over an input in place.
    pub in_place: usize,
}

impl Plan {
    /// The workspace size in bytes for the given symbol values.
    pub fn bytes(&self, dims: &[usize], elem: usize) -> usize {
        self.size.eval(dims).max(0) as usize * elem
    }
}

/// Place the temporaries of `kernels` (`temps[t]` elements each).
pub fn plan(kernels: &[Kernel], temps: &[Mono]) -> Plan {
    let n = temps.len();
    // Live range of every temporary, in kernel indices.
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    let touch = |t: usize, k: usize, first: &mut Vec<usize>, last: &mut Vec<usize>| {
        first[t] = first[t].min(k);
        last[t] = last[t].max(k);
    };
    for (k, kernel) in kernels.iter().enumerate() {
        for a in kernel.reads().iter().chain(&kernel.writes()) {
            if let Base::Temp(t) = a.base {
                touch(t, k, &mut first, &mut last);
            }
        }
    }

    // In place: out = f(x) where x dies here and is read at exactly the index written.
    let mut root: Vec<usize> = (0..n).collect();
    let mut in_place = 0;
    for (k, kernel) in kernels.iter().enumerate() {
        let Kernel::Map { expr, out, .. } = kernel else { continue };
        let Base::Temp(y) = out.base else { continue };
        if first[y] != k {
            continue;
        }
        let loads = expr.loads();
        let candidate = loads.iter().find_map(|a| match a.base {
            Base::Temp(x) if x != y && last[x] == k && temps[x] == temps[y] => Some(x),
            _ => None,
        });
        let Some(x) = candidate else { continue };
        let same_index = loads
            .iter()
            .filter(|a| a.base == Base::Temp(x))
            .all(|a| a.offset == out.offset && a.strides == out.strides);
        if same_index && out.offset.is_zero() {
            let rx = find(&mut root, x);
            root[y] = rx;
            last[rx] = last[rx].max(last[y]);
            first[rx] = first[rx].min(first[y]);
            in_place += 1;
        }
    }
    // Fold member ranges into their roots (a chain of in-place kernels shares one buffer).
    for t in 0..n {
        let r = find(&mut root, t);
        if first[t] != usize::MAX {
            first[r] = first[r].min(first[t]);
            last[r] = last[r].max(last[t]);
        }
    }

    // Pack each group of same-symbol sizes by greedy first fit, largest first.
    let mut groups: BTreeMap<Vec<u32>, Vec<usize>> = BTreeMap::new();
    for t in 0..n {
        if root[t] == t && first[t] != usize::MAX {
            groups.entry(temps[t].syms.clone()).or_default().push(t);
        }
    }
    let mut local = vec![0i64; n];
    let mut size = Poly::zero();
    let mut group_base = vec![Poly::zero(); n];
    for (syms, mut ts) in groups {
        let k = |t: usize| round_up(temps[t].k.max(0));
        ts.sort_by_key(|&t| (-k(t), first[t]));
        let mut placed: Vec<usize> = vec![];
        let mut total = 0i64;
        for &t in &ts {
            let mut overlapping: Vec<(i64, i64)> = placed
                .iter()
                .filter(|&&u| first[u] <= last[t] && first[t] <= last[u])
                .map(|&u| (local[u], local[u] + k(u)))
                .collect();
            // The lowest gap that fits: sweep the live ranges by start (O(m log m), so plans
            // of thousand-layer graphs stay fast).
            overlapping.sort_unstable();
            let mut at = 0;
            for &(start, end) in &overlapping {
                if at + k(t) <= start {
                    break;
                }
                at = at.max(end);
            }
            local[t] = at;
            total = total.max(at + k(t));
            placed.push(t);
        }
        for &t in &ts {
            group_base[t] = size.clone();
        }
        size.add_mono(&Mono { k: total, syms });
    }

    let mut offsets = vec![None; n];
    for t in 0..n {
        if first[t] == usize::MAX {
            continue;
        }
        let r = find(&mut root, t);
        let unit = Mono { k: local[r], syms: temps[r].syms.clone() };
        offsets[t] = Some(group_base[r].add(&Poly::from_mono(unit)));
    }
    let mut unshared = Poly::zero();
    for (t, m) in temps.iter().enumerate() {
        if first[t] != usize::MAX {
            unshared.add_mono(m);
        }
    }
    Plan { offsets, size, unshared, in_place }
}

fn round_up(k: i64) -> i64 {
    (k + ALIGN - 1) / ALIGN * ALIGN
}

fn find(root: &mut [usize], t: usize) -> usize {
    let mut r = t;
    while root[r] != r {
        r = root[r];
    }
    root[t] = r;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::kernel::{Access, Expr, Un};
    use std::rc::Rc;

    fn map(from: Base, to: Base, n: i64) -> Kernel {
        let shape = vec![Mono::known(n)];
        let x = Rc::new(Expr::Load(Access::contiguous(from, &shape)));
        Kernel::Map {
            shape: shape.clone(),
            expr: Rc::new(Expr::Unary(Un::Exp, x)),
            out: Access::contiguous(to, &shape),
        }
    }

    #[test]
    fn a_chain_reuses_memory() {
        // in -> t0 -> t1 -> t2 -> out: each temporary dies as the next is born.
        let temps = vec![Mono::known(100), Mono::known(100), Mono::known(100)];
        let ks = vec![
            map(Base::Input(0), Base::Temp(0), 100),
            map(Base::Temp(0), Base::Temp(1), 100),
            map(Base::Temp(1), Base::Temp(2), 100),
            map(Base::Temp(2), Base::Output(0), 100),
        ];
        let p = plan(&ks, &temps);
        assert_eq!(p.in_place, 2);
        assert_eq!(p.size.eval(&[]), 112);
        assert_eq!(p.unshared.eval(&[]), 300);
    }

    #[test]
    fn overlapping_lives_do_not_share() {
        let shape = vec![Mono::known(10)];
        let x = |t| Rc::new(Expr::Load(Access::contiguous(Base::Temp(t), &shape)));
        let both = Rc::new(Expr::Binary(crate::codegen::kernel::Bin::Add, x(0), x(1)));
        let ks = vec![
            map(Base::Input(0), Base::Temp(0), 10),
            map(Base::Input(0), Base::Temp(1), 10),
            Kernel::Map { shape: shape.clone(), expr: both, out: Access::contiguous(Base::Output(0), &shape) },
        ];
        let p = plan(&ks, &[Mono::known(10), Mono::known(10)]);
        assert_ne!(p.offsets[0], p.offsets[1]);
        assert_eq!(p.size.eval(&[]), 32);
    }
}
