//! The structure built-ins, checked and lowered: joining (`concat`), splitting (`split`,
//! `chunk`), indexing by a tensor (`take`), broadcasting (`expand`, `broadcast_to`), unit axes
//! (`squeeze`, `unsqueeze`) and padding (`pad`). `einsum` is in `einsum.rs`.

use super::*;

impl<'p> Checker<'p> {
    /// One axis of a tensor of `rank` axes (negative counts from the end), `default` when not
    /// given.
    fn axis_arg(&mut self, a: &Args, name: &str, rank: usize, default: usize) -> Option<usize> {
        let axes = self.axes_arg(a, name, rank, vec![default])?;
        match axes[..] {
            [axis] => Some(axis),
            _ => {
                let span = a.get(name).map_or(a.span, |g| g.1);
                self.error("E-type", span, format!("`{name}` of {} is one axis", a.builtin.name()), "a list");
                None
            }
        }
    }

    /// The known size of axis `axis` of `x`, or a diagnostic saying what cannot be done to a
    /// symbolic one.
    fn known_axis(&mut self, x: (NodeId, Span), axis: usize, what: &str) -> Option<usize> {
        let d = self.g.shape(x.0)[axis];
        if let Some(n) = d.known() {
            return Some(n);
        }
        let name = self.g.dim_name(d);
        self.error(
            "E-shape",
            x.1,
            format!("cannot {what} the symbolic dimension {name}"),
            format!("axis {axis} is {name}"),
        );
        None
    }

    /// `concat([a, b, …], axis: 0)`.
    pub(super) fn concat(&mut self, a: &Args) -> Value {
        let Some((v, s)) = a.get("tensors").cloned() else { return Value::Error };
        let items = match v {
            Value::List(items) if !items.is_empty() => items,
            Value::Error => return Value::Error,
            other => {
                self.wrong_arg(a, "tensors", &other, s, "a list of tensors, e.g. [a, b]");
                return Value::Error;
            }
        };
        let mut parts = vec![];
        for item in items {
            match self.tensor(item, s) {
                Some(id) => parts.push((id, s)),
                None => return Value::Error,
            }
        }
        let rank = self.g.shape(parts[0].0).len();
        if rank == 0 {
            return self.error("E-shape", s, "concat joins tensors with at least one axis", "the first is a scalar");
        }
        let Some(axis) = self.axis_arg(a, "axis", rank, 0) else { return Value::Error };
        self.node(Op::Concat { axis }, &parts, a.span)
    }

    /// `split(x, sizes, axis: 0)` (`sizes` a list, or one size for every piece but a shorter
    /// last), and with `chunks`, `chunk(x, n, axis: 0)`: n pieces of ⌈size / n⌉ (fewer when
    /// that covers the axis sooner, as torch.chunk). A list of slices (views).
    pub(super) fn split(&mut self, a: &Args, chunks: bool) -> Value {
        let Some(x) = self.tensor_arg(a, "x") else { return Value::Error };
        let rank = self.g.shape(x.0).len();
        if rank == 0 {
            return self.error("E-shape", x.1, format!("cannot {} a scalar", a.builtin.name()), "this is a scalar");
        }
        let Some(axis) = self.axis_arg(a, "axis", rank, 0) else { return Value::Error };
        let Some(n) = self.known_axis(x, axis, a.builtin.name()) else { return Value::Error };
        let pieces_of = |each: usize| -> Vec<usize> { (0..n).step_by(each).map(|start| each.min(n - start)).collect() };
        let sizes = if chunks {
            let Some(count) = self.whole_arg(a, "chunks", None, 1) else { return Value::Error };
            pieces_of(n.div_ceil(count))
        } else {
            let Some((v, s)) = a.get("sizes").cloned() else { return Value::Error };
            let whole = |v: &Value| match v {
                Value::Num(k) if k.fract() == 0.0 && *k >= 1.0 && *k < 1e15 => Some(*k as usize),
                _ => None,
            };
            match &v {
                Value::List(items) => {
                    let Some(sizes) = items.iter().map(whole).collect::<Option<Vec<usize>>>() else {
                        self.wrong_arg(a, "sizes", &v, s, "a size or a list of sizes (whole numbers >= 1)");
                        return Value::Error;
                    };
                    let total = sizes.iter().try_fold(0usize, |acc, &k| acc.checked_add(k));
                    if total != Some(n) {
                        let total = total.map_or("more than 2^64".to_string(), |t| t.to_string());
                        return self.error(
                            "E-shape",
                            s,
                            format!("the sizes add up to {total}, but axis {axis} has {n} elements"),
                            "these sizes",
                        );
                    }
                    sizes
                }
                Value::Error => return Value::Error,
                other => match whole(other) {
                    Some(each) => pieces_of(each),
                    None => {
                        self.wrong_arg(a, "sizes", other, s, "a size or a list of sizes (whole numbers >= 1)");
                        return Value::Error;
                    }
                },
            }
        };
        let mut pieces = vec![];
        let mut start = 0;
        for len in sizes {
            match self.node(Op::Slice { axis, start, len, step: 1 }, &[x], a.span) {
                Value::Tensor(id) => pieces.push(Value::Tensor(id)),
                _ => return Value::Error,
            }
            start += len;
        }
        Value::List(pieces)
    }

    /// `take(x, indices, axis: k)`: numpy.take; without `axis`, of the flattened x.
    pub(super) fn take(&mut self, a: &Args) -> Value {
        let (Some(x), Some(idx)) = (self.tensor_arg(a, "x"), self.tensor_arg(a, "indices")) else {
            return Value::Error;
        };
        if !self.is_integer(idx.0) {
            return self.not_an_index(idx.0, idx.1);
        }
        let shape = self.g.shape(x.0).clone();
        if a.given("axis") {
            if shape.is_empty() {
                return self.error("E-shape", x.1, "take along an axis of a scalar", "this is a scalar");
            }
            let Some(axis) = self.axis_arg(a, "axis", shape.len(), 0) else { return Value::Error };
            return self.node(Op::Gather { axis }, &[x, idx], a.span);
        }
        let Some(numel) = shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(d.known()?)) else {
            return self.error(
                "E-shape",
                x.1,
                "take without `axis` flattens x, whose size is not known",
                format!("this is {}; give `axis:`", self.g.shape_str(&shape)),
            );
        };
        let flat = match self.node(Op::Reshape { shape: vec![Dim::Known(numel)] }, &[x], a.span) {
            Value::Tensor(id) => id,
            other => return other,
        };
        self.node(Op::Gather { axis: 0 }, &[(flat, x.1), idx], a.span)
    }

    /// `expand(x, shape)` (torch: -1 keeps x's size there) and `broadcast_to(x, shape)`.
    pub(super) fn expand(&mut self, a: &Args) -> Value {
        let Some(x) = self.tensor_arg(a, "x") else { return Value::Error };
        let Some((v, s)) = a.get("shape").cloned() else { return Value::Error };
        let Value::List(items) = v else {
            self.wrong_arg(a, "shape", &v, s, "a list of sizes, e.g. [B, 4, 8]");
            return Value::Error;
        };
        let from = self.g.shape(x.0).clone();
        let lead = items.len().checked_sub(from.len());
        let mut shape = vec![];
        for (i, item) in items.iter().enumerate() {
            let d = match item {
                Value::Num(n) if n.fract() == 0.0 && *n >= 1.0 && *n < 1e15 => Dim::Known(*n as usize),
                Value::Num(n) if *n == -1.0 && a.builtin == Builtin::Expand => {
                    match lead.and_then(|l| i.checked_sub(l)) {
                        Some(j) => from[j],
                        None => return self.error("E-shape", s, "-1 keeps a size, but this axis is new", "here"),
                    }
                }
                Value::Dim(d) => *d,
                _ => {
                    let expected =
                        if a.builtin == Builtin::Expand { "sizes, symbols or -1" } else { "sizes or symbols" };
                    self.wrong_arg(a, "shape", item, s, expected);
                    return Value::Error;
                }
            };
            shape.push(d);
        }
        self.node(Op::Broadcast { shape }, &[x], a.span)
    }

    /// `squeeze(x)` without its unit axes (or without the given ones, which must be units);
    /// `unsqueeze(x, axis)` with a unit axis inserted at `axis` (of the result).
    pub(super) fn squeeze(&mut self, a: &Args, insert: bool) -> Value {
        let Some(x) = self.tensor_arg(a, "x") else { return Value::Error };
        let mut shape = self.g.shape(x.0).clone();
        let one = Dim::Known(1);
        if insert {
            let Some(axis) = self.axis_arg(a, "axis", shape.len() + 1, 0) else { return Value::Error };
            shape.insert(axis, one);
        } else {
            let all: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] == one).collect();
            let Some(axes) = self.axes_arg(a, "axis", shape.len(), all) else { return Value::Error };
            if let Some(&bad) = axes.iter().find(|&&i| shape[i] != one) {
                let d = self.g.dim_name(shape[bad]);
                let span = a.get("axis").map_or(a.span, |g| g.1);
                return self.error(
                    "E-shape",
                    span,
                    format!("axis {bad} has size {d}, not 1"),
                    "squeeze removes unit axes",
                );
            }
            shape = shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
        }
        self.node(Op::Reshape { shape }, &[x], a.span)
    }

    /// `pad(x, widths)` with zeros, numpy's widths: `n` on both sides of every axis,
    /// `[before, after]` on every axis, or `[[before, after], …]` one pair per axis.
    pub(super) fn pad(&mut self, a: &Args) -> Value {
        let Some(x) = self.tensor_arg(a, "x") else { return Value::Error };
        let Some((v, s)) = a.get("widths").cloned() else { return Value::Error };
        let rank = self.g.shape(x.0).len();
        let whole = |v: &Value| match v {
            Value::Num(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 1e12 => Some(*n as usize),
            _ => None,
        };
        let pair = |v: &Value| match v {
            Value::List(p) if p.len() == 2 => Some((whole(&p[0])?, whole(&p[1])?)),
            _ => None,
        };
        let widths: Option<Vec<(usize, usize)>> = match &v {
            Value::Error => return Value::Error,
            Value::Num(_) => whole(&v).map(|n| vec![(n, n); rank]),
            Value::List(items) if items.iter().all(|i| matches!(i, Value::Num(_))) => pair(&v).map(|p| vec![p; rank]),
            Value::List(items) if items.len() == rank => items.iter().map(pair).collect(),
            Value::List(items) => {
                return self.error(
                    "E-shape",
                    s,
                    format!("{} pairs of widths for a tensor with {rank} axes", items.len()),
                    "one [before, after] per axis",
                )
            }
            _ => None,
        };
        let Some(widths) = widths else {
            self.wrong_arg(a, "widths", &v, s, "n, [before, after] or [[before, after], …] (whole numbers >= 0)");
            return Value::Error;
        };
        let mut cur = x.0;
        for (axis, &(before, after)) in widths.iter().enumerate() {
            if before == 0 && after == 0 {
                continue;
            }
            match self.node(Op::Pad { axis, before, after, step: 1 }, &[(cur, x.1)], a.span) {
                Value::Tensor(id) => cur = id,
                other => return other,
            }
        }
        Value::Tensor(cur)
    }
}
