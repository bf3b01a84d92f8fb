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

    // Pack each group of same-symbol sizes: by greedy first fit, largest first, or (a group
    // too large for that) by a scan in kernel order that reuses freed blocks.
    let mut groups: BTreeMap<Vec<u32>, Vec<usize>> = BTreeMap::new();
    for t in 0..n {
        if root[t] == t && first[t] != usize::MAX {
            groups.entry(temps[t].syms.clone()).or_default().push(t);
        }
    }
    let mut local = vec![0i64; n];
    let mut size = Poly::zero();
    let mut group_base = vec![Poly::zero(); n];
    for (syms, ts) in groups {
        let k = |t: usize| round_up(temps[t].k.max(0));
        let total = if ts.len() <= GREEDY_LIMIT {
            greedy_by_size(ts.clone(), &first, &last, &k, &mut local)
        } else {
            scan_in_order(ts.clone(), &first, &last, &k, &mut local)
        };
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

/// Groups of at most this many temporaries are packed by `greedy_by_size`, larger ones by
/// `scan_in_order`. The greedy packing compares each temporary with every placed one alive at
/// the same time, which is quadratic when thousands are alive at once (the activations a
/// 10,000-layer model keeps for its backward pass); the scan is O(n log n).
const GREEDY_LIMIT: usize = 2048;

/// Greedy first fit, largest first: each temporary goes at the lowest offset where it
/// overlaps (in memory) no placed temporary whose live range overlaps its own. Returns the
/// group's size.
fn greedy_by_size(
    mut ts: Vec<usize>,
    first: &[usize],
    last: &[usize],
    k: &dyn Fn(usize) -> i64,
    local: &mut [i64],
) -> i64 {
    ts.sort_by_key(|&t| (-k(t), first[t]));
    let mut placed: Vec<usize> = vec![];
    let mut total = 0i64;
    for &t in &ts {
        let mut overlapping: Vec<(i64, i64)> = placed
            .iter()
            .filter(|&&u| first[u] <= last[t] && first[t] <= last[u])
            .map(|&u| (local[u], local[u] + k(u)))
            .collect();
        // The lowest gap that fits: sweep the live ranges by start.
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
    total
}

/// A scan in kernel order, as an allocator would run: at each temporary's first kernel it
/// takes the smallest free block that holds it (best fit, splitting off the rest), or else
/// space at the end; after its last kernel its block is freed and merged with free
/// neighbours. O(n log n). Returns the group's size.
pub fn scan_in_order(
    mut ts: Vec<usize>,
    first: &[usize],
    last: &[usize],
    k: &dyn Fn(usize) -> i64,
    local: &mut [i64],
) -> i64 {
    use std::collections::BTreeSet;
    ts.sort_by_key(|&t| (first[t], t));
    // Free blocks by offset (offset -> length) and by (length, offset) for best fit.
    let mut by_offset: BTreeMap<i64, i64> = BTreeMap::new();
    let mut by_length: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut end = 0i64;
    // Blocks to free, by the kernel after which they die: (last kernel, offset, length).
    let mut dying: BTreeSet<(usize, i64, i64)> = BTreeSet::new();
    for &t in &ts {
        // Free every block whose temporary's last kernel came before this one's first.
        while let Some(&(l, off, len)) = dying.first().filter(|d| d.0 < first[t]) {
            dying.remove(&(l, off, len));
            let (mut off, mut len) = (off, len);
            if let Some((&p_off, &p_len)) = by_offset.range(..off).next_back().filter(|(&o, &l)| o + l == off) {
                by_offset.remove(&p_off);
                by_length.remove(&(p_len, p_off));
                off = p_off;
                len += p_len;
            }
            if let Some(&n_len) = by_offset.get(&(off + len)) {
                by_offset.remove(&(off + len));
                by_length.remove(&(n_len, off + len));
                len += n_len;
            }
            if off + len == end {
                end = off; // the free block at the end gives its space back
            } else {
                by_offset.insert(off, len);
                by_length.insert((len, off));
            }
        }
        let need = k(t);
        let at = match by_length.range((need, i64::MIN)..).next().copied() {
            Some((len, off)) => {
                by_length.remove(&(len, off));
                by_offset.remove(&off);
                if len > need {
                    by_offset.insert(off + need, len - need);
                    by_length.insert((len - need, off + need));
                }
                off
            }
            None => {
                end += need;
                end - need
            }
        };
        local[t] = at;
        dying.insert((last[t], at, need));
    }
    // The high-water mark: the largest end ever reached.
    ts.iter().map(|&t| local[t] + k(t)).max().unwrap_or(0)
}

/// `k` elements rounded up to a multiple of [`ALIGN`], the alignment of every offset.
pub fn round_up(k: i64) -> i64 {
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
