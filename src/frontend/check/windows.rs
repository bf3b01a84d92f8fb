//! The convolutions beyond `conv`: grouped (`conv(…, groups:)`), one-dimensional (`conv1d`),
//! transposed (`conv_transpose2d`), and nearest-neighbour upsampling (`upsample2d`), each
//! lowered onto the 2-D convolution ops, slices, pads, reshapes and broadcasts, so their
//! gradients (and second derivatives) are those of the primitives.

use super::*;

impl<'p> Checker<'p> {
    /// The known sizes of a tensor of `rank` axes (all but axis 0, the batch), or a diagnostic.
    fn window_sizes(&mut self, t: (NodeId, Span), rank: usize, what: &str, layout: &str) -> Option<Vec<usize>> {
        let shape = self.g.shape(t.0).clone();
        if shape.len() != rank {
            let s = self.g.shape_str(&shape);
            self.error("E-shape", t.1, format!("{what} takes {layout}"), format!("this is {s}"));
            return None;
        }
        let mut sizes = vec![0];
        for (i, d) in shape.iter().enumerate().skip(1) {
            match d.known() {
                Some(n) => sizes.push(n),
                None => {
                    let s = self.g.shape_str(&shape);
                    self.error(
                        "E-shape",
                        t.1,
                        format!("{what} needs a known size on axis {i}"),
                        format!("this is {s}"),
                    );
                    return None;
                }
            }
        }
        Some(sizes)
    }

    /// conv(x, w, groups: g) with x [N, C, H, W], w [F, C/g, KH, KW]: the channels split into g
    /// groups, group i of x convolved with filters i·F/g .. (i+1)·F/g, joined (torch's
    /// `groups`; depthwise when g = C). Lowered to g convolutions of slices and a concat.
    pub(super) fn grouped_conv(
        &mut self,
        a: &Args,
        x: (NodeId, Span),
        w: (NodeId, Span),
        stride: usize,
        pad: usize,
        groups: usize,
    ) -> Value {
        let span = a.span;
        let (Some(xs), Some(ws)) = (
            self.window_sizes(x, 4, "conv", "[N, C, H, W]"),
            self.window_sizes(w, 4, "conv", "filters [F, C / groups, KH, KW]"),
        ) else {
            return Value::Error;
        };
        let f = self.g.shape(w.0)[0].known().unwrap_or(0);
        let (c, per_group) = (xs[1], ws[1]);
        if c % groups != 0 || f % groups != 0 || per_group * groups != c {
            let at = a.get("groups").map_or(span, |v| v.1);
            return self.error(
                "E-shape",
                at,
                format!("conv with {groups} groups needs channels and filters divisible by {groups}"),
                format!("x has {c} channels, w has {f} filters of {per_group} channels: w must be [F, {}, KH, KW] with F a multiple of {groups}", c / groups.max(1)),
            );
        }
        let mut parts = vec![];
        for i in 0..groups {
            let xi = self.g.add(Op::Slice { axis: 1, start: i * per_group, len: per_group, step: 1 }, &[x.0]);
            let wi = self.g.add(Op::Slice { axis: 0, start: i * (f / groups), len: f / groups, step: 1 }, &[w.0]);
            let (Ok(xi), Ok(wi)) = (xi, wi) else { return self.error("E-shape", span, "conv groups", "here") };
            match self.node(Op::Conv2d { stride, pad }, &[(xi, x.1), (wi, w.1)], span) {
                Value::Tensor(y) => parts.push(y),
                _ => return Value::Error,
            }
        }
        self.note_floor("conv", x.0, (ws[2], ws[3]), stride, pad, span);
        let r = self.g.add(Op::Concat { axis: 1 }, &parts);
        self.lowered(r, &[x, w], "conv", span)
    }

    /// conv1d(x [N, C, L], w [F, C, K], stride, pad) -> [N, F, ⌊(L − K + 2P)/S⌋ + 1]: the 2-D
    /// convolution of x as [N, C, 1, L] (padded along L only) with w as [F, C, 1, K].
    pub(super) fn conv1d(&mut self, a: &Args) -> Value {
        let span = a.span;
        let (Some(x), Some(w)) = (self.tensor_arg(a, "x"), self.tensor_arg(a, "w")) else { return Value::Error };
        let (Some(stride), Some(pad)) = (self.whole_arg(a, "stride", Some(1), 1), self.whole_arg(a, "pad", Some(0), 0))
        else {
            return Value::Error;
        };
        let (Some(xs), Some(ws)) =
            (self.window_sizes(x, 3, "conv1d", "[N, C, L]"), self.window_sizes(w, 3, "conv1d", "filters [F, C, K]"))
        else {
            return Value::Error;
        };
        let (n, f) = (self.g.shape(x.0)[0], self.g.shape(w.0)[0]);
        let k = Dim::Known;
        let x4 = self.g.add(Op::Reshape { shape: vec![n, k(xs[1]), k(1), k(xs[2])] }, &[x.0]);
        let w4 = self.g.add(Op::Reshape { shape: vec![f, k(ws[1]), k(1), k(ws[2])] }, &[w.0]);
        let (Ok(mut x4), Ok(w4)) = (x4, w4) else { return self.error("E-shape", span, "conv1d", "here") };
        if pad > 0 {
            match self.g.add(Op::Pad { axis: 3, before: pad, after: pad, step: 1 }, &[x4]) {
                Ok(p) => x4 = p,
                Err(e) => return self.shape_error(e, "conv1d", &[x], span),
            }
        }
        let Value::Tensor(y) = self.node(Op::Conv2d { stride, pad: 0 }, &[(x4, x.1), (w4, w.1)], span) else {
            return Value::Error;
        };
        let (length, k) = (xs[2], ws[2]);
        let dropped = (length + 2 * pad).saturating_sub(k) % stride;
        if dropped > 0 && length + 2 * pad >= k {
            let at = self.span_override.unwrap_or(span);
            let d = Diagnostic::new(
                "N-floor",
                format!("conv1d reads no window over the last {dropped} position(s) of its length-{length} input (padded by {pad})"),
            )
            .label(at, format!("length: ⌊({length} − {k} + 2·{pad})/{stride}⌋ + 1 = {}", (length + 2 * pad - k) / stride + 1))
            .note("the output size is rounded down, as in PyTorch: (N − F + 2P)/S + 1 need not be whole");
            if !self.notes.contains(&d) {
                self.notes.push(d);
            }
        }
        let ys = self.g.shape(y).clone();
        let r = self.g.add(Op::Reshape { shape: vec![ys[0], ys[1], ys[3]] }, &[y]);
        self.lowered(r, &[x, w], "conv1d", span)
    }

    /// conv_transpose2d(x [N, C, H, W], w [C, F, KH, KW], stride, pad) -> [N, F, H', W'] with
    /// H' = (H − 1)·S − 2P + KH: the adjoint of conv(·, w, stride, pad), i.e. its input
    /// gradient (torch's `conv_transpose2d` with output_padding 0, groups 1, dilation 1).
    pub(super) fn conv_transpose2d(&mut self, a: &Args) -> Value {
        let span = a.span;
        let (Some(x), Some(w)) = (self.tensor_arg(a, "x"), self.tensor_arg(a, "w")) else { return Value::Error };
        let (Some(stride), Some(pad)) = (self.whole_arg(a, "stride", Some(1), 1), self.whole_arg(a, "pad", Some(0), 0))
        else {
            return Value::Error;
        };
        let (Some(xs), Some(ws)) = (
            self.window_sizes(x, 4, "conv_transpose2d", "[N, C, H, W]"),
            self.window_sizes(w, 4, "conv_transpose2d", "weights [C, F, KH, KW]"),
        ) else {
            return Value::Error;
        };
        let size = |n: usize, k: usize| ((n - 1) * stride + k).checked_sub(2 * pad).filter(|&s| s > 0);
        let (Some(height), Some(width)) = (size(xs[2], ws[2]), size(xs[3], ws[3])) else {
            let at = a.get("pad").map_or(span, |v| v.1);
            return self.error(
                "E-shape",
                at,
                format!("conv_transpose2d's output would be empty: (H − 1)·S − 2P + K ≤ 0 with pad {pad}"),
                "too much padding for this input and kernel",
            );
        };
        self.node(Op::Conv2dInputGrad { stride, pad, height, width }, &[x, w], span)
    }

    /// upsample2d(x [N, C, H, W], scale: s) -> [N, C, H·s, W·s], each value repeated in an
    /// s×s block (torch's `interpolate(mode="nearest")` with a whole scale): a broadcast of x
    /// as [N, C, H, 1, W, 1] to [N, C, H, s, W, s]; its gradient sums each block.
    pub(super) fn upsample2d(&mut self, a: &Args) -> Value {
        let span = a.span;
        let Some(x) = self.tensor_arg(a, "x") else { return Value::Error };
        let Some(s) = self.whole_arg(a, "scale", Some(2), 1) else { return Value::Error };
        let Some(xs) = self.window_sizes(x, 4, "upsample2d", "[N, C, H, W]") else { return Value::Error };
        let n = self.g.shape(x.0)[0];
        let k = Dim::Known;
        let (c, h, w) = (k(xs[1]), xs[2], xs[3]);
        let r = self
            .g
            .add(Op::Reshape { shape: vec![n, c, k(h), k(1), k(w), k(1)] }, &[x.0])
            .and_then(|t| self.g.add(Op::Broadcast { shape: vec![n, c, k(h), k(s), k(w), k(s)] }, &[t]))
            .and_then(|t| self.g.add(Op::Reshape { shape: vec![n, c, k(h * s), k(w * s)] }, &[t]));
        self.lowered(r, &[x], "upsample2d", span)
    }
}
