//! The end of scheduling: the kernels that write outputs and parameter updates, then the
//! rewrites that make most temporaries the output or parameter buffer itself and fuse SGD and
//! momentum updates into the GEMM that computes their gradient.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use super::Fuser;
use crate::codegen::kernel::*;

impl Fuser<'_> {
    /// Outputs and updates: copy kernels, then retarget temporaries so that most of them
    /// write straight into the output or parameter buffer and the copy disappears.
    pub(super) fn finish(&mut self) -> Result<(), String> {
        let g = self.g;
        let mut updated = HashSet::new();
        for &(p, _) in &g.updates {
            if !updated.insert(p) {
                return Err(format!("parameter {p} is updated twice"));
            }
            if p >= g.params.len() {
                return Err(format!("update of parameter {p}, which does not exist"));
            }
        }
        for (k, (_, id)) in g.outputs.iter().enumerate() {
            let shape = monos(g.shape(*id));
            let v = self.val(*id);
            self.prog.kernels.push(Kernel::Map {
                shape: shape.clone(),
                expr: v,
                out: Access::contiguous(Base::Output(k), &shape),
            });
        }
        // An update computed in its own kernel reads the old value of the parameter it writes
        // at the same index only; reading another updated parameter (whose update kernel may
        // already have run) goes through a temporary computed before any update.
        let mut update_vals = vec![];
        for &(p, id) in &g.updates {
            let shape = monos(g.shape(id));
            let out = Access::contiguous(Base::Param(p), &shape);
            let v = self.val(id);
            let safe = v.loads().iter().all(|a| match a.base {
                Base::Param(j) if updated.contains(&j) => j == p && *a == out,
                _ => true,
            });
            let v = if safe { v } else { self.materialize(&v, g.shape(id)) };
            update_vals.push((p, shape, v, out));
        }
        for (_, shape, v, out) in update_vals {
            self.prog.kernels.push(Kernel::Map { shape, expr: v, out });
        }
        // After retargeting, an update materialised for several readers (momentum's velocity)
        // is a kernel writing its parameter too, and can fuse like a plain one.
        self.retarget_updates();
        self.fuse_updates_into_gemms();
        self.retarget_outputs();
        Ok(())
    }

    /// An update `p <- β·p ± α·M` whose M is a GEMM result read nowhere else becomes that
    /// GEMM writing p itself (C = p, alpha = ±α, beta = β): SGD and momentum steps of dense
    /// layers then need no gradient-sized temporary and no extra pass. Only when nothing
    /// reads the old p after the GEMM, and α, β are scalars already known at the GEMM.
    fn fuse_updates_into_gemms(&mut self) {
        let mut uses = Uses::new(&self.prog.kernels);
        for i in 0..self.prog.kernels.len() {
            let Some((gi, c, alpha, beta)) = self.gemm_update(i, &uses) else { continue };
            uses.forget(gi, &self.prog.kernels[gi]);
            if let Kernel::Gemm { c: gc, alpha: ga, beta: gb, .. } = &mut self.prog.kernels[gi] {
                *gc = c;
                *ga = alpha;
                *gb = beta;
            }
            uses.record(gi, &self.prog.kernels[gi]);
            uses.forget(i, &self.prog.kernels[i]);
            uses.removed[i] = true;
        }
        let mut i = 0;
        self.prog.kernels.retain(|_| {
            i += 1;
            !uses.removed[i - 1]
        });
    }

    /// If kernel `i` is an update that can fuse into a GEMM: (GEMM index, C, alpha, beta).
    fn gemm_update(&self, i: usize, uses: &Uses) -> Option<(usize, Access, Rc<Expr>, Rc<Expr>)> {
        let ks = &self.prog.kernels;
        if uses.removed[i] {
            return None;
        }
        let Kernel::Map { expr, out, .. } = &ks[i] else { return None };
        let Base::Param(_) = out.base else { return None };
        let (beta, alpha, m) = update_parts(expr, out)?;
        let Base::Temp(_) = m.base else { return None };
        let gi = uses.writers(m.base).next()?;
        let Kernel::Gemm { c, a, b, .. } = &ks[gi] else { return None };
        let writers: HashSet<usize> = uses.writers(m.base).chain(uses.writers(out.base)).collect();
        let readers_of_m = uses.readers(m.base).count();
        // M is the whole GEMM result, laid out like the parameter (`update_parts` checked M
        // against the parameter's strides).
        let shape_ok = *c == m;
        // Nothing between the GEMM and the update reads the old parameter (later readers want
        // the new value, which the GEMM now writes earlier); the GEMM's own operands are not
        // the parameter; α and β only read what exists at the GEMM.
        let old_read_later = gi >= i || uses.readers(out.base).any(|k| gi < k && k < i);
        let scalars_ready = alpha.loads().iter().chain(beta.loads().iter()).all(|a| match a.base {
            Base::Temp(_) => uses.writers(a.base).any(|k| k < gi),
            Base::Param(_) | Base::Output(_) => false,
            Base::Input(_) | Base::Data(_) => true,
        });
        (writers.len() == 2
            && readers_of_m == 1
            && shape_ok
            && !old_read_later
            && scalars_ready
            && a.base != out.base
            && b.base != out.base)
            .then(|| (gi, Access { base: out.base, ..c.clone() }, alpha, beta))
    }

    /// A copy `Param(p) <- Temp(t)` is dropped, and `t` becomes `Param(p)` itself, when every
    /// other read of the old parameter comes before `t` is first written (or is that first
    /// writer, reading it at the index it writes). Each candidate looks up only the kernels
    /// that touch `t` and `p` (`Uses`), so the pass is linear in the program, not quadratic.
    fn retarget_updates(&mut self) {
        let mut uses = Uses::new(&self.prog.kernels);
        for i in 0..self.prog.kernels.len() {
            if uses.removed[i] {
                continue;
            }
            let Some((t, p)) = copy_of(&self.prog.kernels[i], |b| matches!(b, Base::Param(_)), &self.prog.temps) else {
                continue;
            };
            let ks = &self.prog.kernels;
            let first = uses.writers(Base::Temp(t)).next().expect("a temporary is written before it is copied");
            let other_writer = uses.writers(p).any(|j| j != i);
            let ok = !other_writer
                && uses.readers(p).all(|j| {
                    if j == i || j < first {
                        return true;
                    }
                    // The first writer may read the parameter at the very index it writes; any
                    // later read would see what that writer left.
                    match &ks[j] {
                        Kernel::Map { expr, out, .. } if j == first && out.base == Base::Temp(t) => expr
                            .loads()
                            .iter()
                            .filter(|a| a.base == p)
                            .all(|a| a.offset == out.offset && a.strides == out.strides),
                        _ => false,
                    }
                });
            if ok {
                uses.forget(i, &self.prog.kernels[i]);
                uses.removed[i] = true;
                self.rename(&mut uses, Base::Temp(t), p);
            }
        }
        self.drop_removed(&uses);
    }

    /// Outputs are only written: a temporary copied to an output becomes the output.
    fn retarget_outputs(&mut self) {
        let mut uses = Uses::new(&self.prog.kernels);
        for i in 0..self.prog.kernels.len() {
            if uses.removed[i] {
                continue;
            }
            if let Some((t, o)) = copy_of(&self.prog.kernels[i], |b| matches!(b, Base::Output(_)), &self.prog.temps) {
                uses.forget(i, &self.prog.kernels[i]);
                uses.removed[i] = true;
                self.rename(&mut uses, Base::Temp(t), o);
            }
        }
        self.drop_removed(&uses);
    }

    /// Make every kernel that reads or writes `from` use `to` instead, keeping `uses` in step.
    fn rename(&mut self, uses: &mut Uses, from: Base, to: Base) {
        let mut touched: Vec<usize> = uses.readers(from).chain(uses.writers(from)).collect();
        touched.sort_unstable();
        touched.dedup();
        for k in touched {
            uses.forget(k, &self.prog.kernels[k]);
            self.prog.kernels[k].rebase(&|b| if b == from { to } else { b });
            uses.record(k, &self.prog.kernels[k]);
        }
    }

    /// Delete the kernels a pass marked removed.
    fn drop_removed(&mut self, uses: &Uses) {
        let mut i = 0;
        self.prog.kernels.retain(|_| {
            i += 1;
            !uses.removed[i - 1]
        });
    }
}

/// Which kernels read and which write each buffer, in kernel order, kept in step with a
/// pass's edits: the rewriting passes then look up a buffer's users instead of scanning every
/// kernel per candidate, and stay linear in the size of thousand-layer graphs.
struct Uses {
    readers: HashMap<Base, BTreeSet<usize>>,
    writers: HashMap<Base, BTreeSet<usize>>,
    /// Kernels the pass has deleted (dropped from `KernelProgram::kernels` at its end).
    removed: Vec<bool>,
}

impl Uses {
    fn new(kernels: &[Kernel]) -> Uses {
        let mut uses = Uses { readers: HashMap::new(), writers: HashMap::new(), removed: vec![false; kernels.len()] };
        for (k, kernel) in kernels.iter().enumerate() {
            uses.record(k, kernel);
        }
        uses
    }

    // Sets, not lists: a buffer every update reads (the learning rate) has thousands of users
    // in a deep model, and each edit must not cost a pass over them.
    fn record(&mut self, k: usize, kernel: &Kernel) {
        kernel.reads().iter().for_each(|a| _ = self.readers.entry(a.base).or_default().insert(k));
        kernel.writes().iter().for_each(|a| _ = self.writers.entry(a.base).or_default().insert(k));
    }

    fn forget(&mut self, k: usize, kernel: &Kernel) {
        let drop = |map: &mut HashMap<Base, BTreeSet<usize>>, base: Base| {
            if let Some(set) = map.get_mut(&base) {
                set.remove(&k);
            }
        };
        kernel.reads().iter().for_each(|a| drop(&mut self.readers, a.base));
        kernel.writes().iter().for_each(|a| drop(&mut self.writers, a.base));
    }

    /// The kernels reading `base`, in order.
    fn readers(&self, base: Base) -> impl Iterator<Item = usize> + '_ {
        self.readers.get(&base).into_iter().flatten().copied()
    }

    /// The kernels writing `base`, in order.
    fn writers(&self, base: Base) -> impl Iterator<Item = usize> + '_ {
        self.writers.get(&base).into_iter().flatten().copied()
    }
}

/// In a loop body whose carries live in `(cur, next)` buffer pairs (see `fuse::loops`): a carry
/// updated as `next ← β·cur ± α·M`, M being a GEMM's whole result read nowhere else, becomes
/// that GEMM accumulating into `cur` (C = cur, alpha·α, β), and the update and the copy
/// `cur ← next` go. A weight's gradient summed over the steps of a backward loop
/// (dW ← dW + h_tᵀ·dz_t) then costs the GEMM alone, not two more passes over its [in, out]
/// accumulator per step. Only when no body kernel after the GEMM reads `cur` (it would see
/// the new value early), the GEMM does not read `cur`, and α, β are constants.
pub(super) fn accumulate_carries_in_gemms(kernels: &mut Vec<Kernel>, carries: &[(Access, Access)]) {
    let mut uses = Uses::new(kernels);
    for (cur, next) in carries {
        let only = |mut it: Box<dyn Iterator<Item = usize> + '_>| match (it.next(), it.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        };
        let Some(copy) = only(Box::new(uses.writers(cur.base))) else { continue };
        let Some(update) = only(Box::new(uses.writers(next.base))) else { continue };
        let is_copy = matches!(&kernels[copy], Kernel::Map { expr, out, .. }
            if out == cur && expr.as_load() == Some(next));
        let Kernel::Map { expr, out, .. } = &kernels[update] else { continue };
        if !is_copy || out != next || only(Box::new(uses.readers(next.base))) != Some(copy) {
            continue;
        }
        let Some((beta, alpha, m)) = update_parts(expr, cur) else { continue };
        if beta.has_loads() || alpha.has_loads() || !matches!(m.base, Base::Temp(_)) {
            continue;
        }
        let Some(gemm) = only(Box::new(uses.writers(m.base))) else { continue };
        let Kernel::Gemm { a, b, c, alpha: gemm_alpha, .. } = &kernels[gemm] else { continue };
        let cur_read_after = uses.readers(cur.base).any(|k| k >= gemm && k != update);
        let ok = *c == m
            && gemm < update
            && only(Box::new(uses.readers(m.base))) == Some(update)
            && !cur_read_after
            && a.base != cur.base
            && b.base != cur.base
            && !gemm_alpha.has_loads();
        if !ok {
            continue;
        }
        let alpha = match &**gemm_alpha {
            Expr::Const(x) if *x == 1.0 => alpha,
            _ => Rc::new(Expr::Binary(Bin::Mul, gemm_alpha.clone(), alpha)),
        };
        for k in [gemm, update, copy] {
            uses.forget(k, &kernels[k]);
        }
        if let Kernel::Gemm { c, alpha: ga, beta: gb, .. } = &mut kernels[gemm] {
            *c = cur.clone();
            *ga = alpha;
            *gb = beta;
        }
        uses.record(gemm, &kernels[gemm]);
        uses.removed[update] = true;
        uses.removed[copy] = true;
    }
    let mut i = 0;
    kernels.retain(|_| {
        i += 1;
        !uses.removed[i - 1]
    });
}

/// If `k` copies the whole of a temporary, row-major, into a buffer `dest` accepts, (temp, dest).
fn copy_of(k: &Kernel, dest: impl Fn(Base) -> bool, temps: &[Mono]) -> Option<(usize, Base)> {
    let Kernel::Map { shape, expr, out } = k else { return None };
    let src = expr.as_load()?;
    let Base::Temp(t) = src.base else { return None };
    let whole = Access::contiguous(src.base, shape);
    let full = temps[t] == Mono::product(shape);
    (dest(out.base) && *src == whole && out.offset.is_zero() && out.strides == whole.strides && full)
        .then_some((t, out.base))
}

/// `expr` as β·P ± α·M, where P loads `out` at the index written (the old parameter), M is
/// another load at that index, and α, β are uniform: (β, ±α, M).
fn update_parts(expr: &Rc<Expr>, out: &Access) -> Option<(Rc<Expr>, Rc<Expr>, Access)> {
    let same_index = |a: &Access| a.offset == out.offset && a.strides == out.strides;
    let is_p = |e: &Expr| e.as_load().is_some_and(|a| a.base == out.base && same_index(a));
    // A term `s·X`, `X·s` or `X` with s uniform: (s, X).
    let scaled = |e: &Rc<Expr>| -> Option<(Rc<Expr>, Rc<Expr>)> {
        match &**e {
            Expr::Binary(Bin::Mul, s, x) if s.is_uniform() && !x.is_uniform() => Some((s.clone(), x.clone())),
            Expr::Binary(Bin::Mul, x, s) if s.is_uniform() && !x.is_uniform() => Some((s.clone(), x.clone())),
            _ if !e.is_uniform() => Some((Rc::new(Expr::Const(1.0)), e.clone())),
            _ => None,
        }
    };
    let Expr::Binary(op @ (Bin::Add | Bin::Sub), lhs, rhs) = &**expr else { return None };
    let (beta, p) = scaled(lhs)?;
    let (alpha, m) = scaled(rhs)?;
    let m = m.as_load().filter(|a| a.base != out.base && same_index(a))?.clone();
    if !is_p(&p) {
        return None;
    }
    let alpha = if *op == Bin::Sub { Rc::new(Expr::Unary(Un::Neg, alpha)) } else { alpha };
    Some((beta, alpha, m))
}
