//! Built-in functions: each one's arguments checked and lowered into graph primitives, in one
//! exhaustive match over `Builtin` (its signature is in `frontend/builtins.rs`).

use super::*;

impl<'p> Checker<'p> {
    /// The value of a built-in call. Tensor built-ins become graph nodes; initialisers become
    /// `Value::Init`; optimizers, schedules and data sources stay `Value::Setting` for the
    /// settings block that reads them (`settings.rs`).
    pub(super) fn builtin(&mut self, a: Args) -> Value {
        use Builtin::*;
        let span = a.span;
        let name = a.builtin.name();
        match a.builtin {
            Exp => self.unary(&a, Op::Exp),
            Log => self.unary(&a, Op::Log),
            Sqrt => self.unary(&a, Op::Sqrt),
            Abs => self.unary(&a, Op::Abs),
            Sigmoid => self.unary(&a, Op::Sigmoid),
            Tanh => self.unary(&a, Op::Tanh),
            Relu => self.unary(&a, Op::Relu),
            LeakyRelu => {
                let Some(alpha) = self.num_arg(&a, "alpha", Some(0.01), Range::Finite) else { return Value::Error };
                self.unary(&a, Op::LeakyRelu { alpha })
            }
            Elu => {
                let Some(alpha) = self.num_arg(&a, "alpha", Some(1.0), Range::Finite) else { return Value::Error };
                self.unary(&a, Op::Elu { alpha })
            }
            Softplus => self.unary(&a, Op::Softplus),
            Erf => self.unary(&a, Op::Erf),
            Gelu => {
                let Some(form) = self.str_arg(&a, "approximate", Some("none")) else { return Value::Error };
                match form.as_str() {
                    "none" => self.lower1(&a, lower::gelu),
                    "tanh" => self.lower1(&a, lower::gelu_tanh),
                    _ => {
                        let s = a.get("approximate").map_or(span, |v| v.1);
                        self.report(
                            Diagnostic::new("E-type", "`approximate` of gelu must be \"none\" or \"tanh\"")
                                .label(s, format!("this is \"{form}\""))
                                .note("as torch.nn.functional.gelu: \"none\" is exact (erf), \"tanh\" the tanh form"),
                        );
                        Value::Error
                    }
                }
            }
            Silu => self.lower1(&a, lower::silu),
            Clip => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let (Some(lo), Some(hi)) = (
                    self.num_arg(&a, "lo", Some(f64::NEG_INFINITY), Range::Finite),
                    self.num_arg(&a, "hi", Some(f64::INFINITY), Range::Finite),
                ) else {
                    return Value::Error;
                };
                if !a.given("lo") && !a.given("hi") {
                    return self.error("E-arity", span, "clip needs `lo` or `hi` (or both)", "here");
                }
                self.node(Op::Clip { lo, hi }, &[x], span)
            }
            Where => {
                let (Some(c), Some(x), Some(y)) =
                    (self.tensor_arg(&a, "condition"), self.tensor_arg(&a, "x"), self.tensor_arg(&a, "y"))
                else {
                    return Value::Error;
                };
                // The two values first, so a mismatch names both; then the condition.
                if let Err(e) = crate::ir::ops::broadcast_shapes(self.g.shape(x.0), self.g.shape(y.0)) {
                    return self.shape_error(e, "where", &[x, y], span);
                }
                self.node(Op::Where, &[c, x, y], span)
            }
            Max | Min => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                if a.given("y") {
                    // Two tensors: the elementwise gate.
                    let Some(y) = self.tensor_arg(&a, "y") else { return Value::Error };
                    let op = if a.builtin == Max { Op::Max } else { Op::Min };
                    return self.node(op, &[x, y], span);
                }
                let rank = self.g.shape(x.0).len();
                let Some(axes) = self.axes_arg(&a, "axis", rank, (0..rank).collect()) else { return Value::Error };
                let Some(keep) = self.bool_arg(&a, "keepdims", false) else { return Value::Error };
                let r = if a.builtin == Max {
                    lower::reduce_max(&mut self.g, x.0, &axes, keep)
                } else {
                    lower::reduce_min(&mut self.g, x.0, &axes, keep)
                };
                self.lowered(r, &[x], name, span)
            }
            Sum | Mean => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let rank = self.g.shape(x.0).len();
                let Some(axes) = self.axes_arg(&a, "axis", rank, (0..rank).collect()) else { return Value::Error };
                let Some(keep) = self.bool_arg(&a, "keepdims", false) else { return Value::Error };
                let r = if a.builtin == Sum {
                    lower::sum(&mut self.g, x.0, &axes, keep)
                } else {
                    lower::mean(&mut self.g, x.0, &axes, keep)
                };
                self.lowered(r, &[x], name, span)
            }
            Var => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let rank = self.g.shape(x.0).len();
                let Some(axes) = self.axes_arg(&a, "axis", rank, (0..rank).collect()) else { return Value::Error };
                let Some(keep) = self.bool_arg(&a, "keepdims", false) else { return Value::Error };
                let Some(correction) = self.whole_arg(&a, "correction", Some(1), 0) else { return Value::Error };
                let shape = self.g.shape(x.0).clone();
                let known: Option<usize> = axes.iter().map(|&k| shape[k].known()).product();
                if let Some(n) = known.filter(|&n| n <= correction) {
                    let at = a.get("correction").map_or(span, |v| v.1);
                    return self.error(
                        "E-shape",
                        at,
                        format!(
                            "var of {n} value(s) with correction {correction} divides by {}",
                            n as i64 - correction as i64
                        ),
                        "the correction must be smaller than the number of values",
                    );
                }
                let r = lower::var(&mut self.g, x.0, &axes, correction, keep);
                self.lowered(r, &[x], name, span)
            }
            Transpose => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let rank = self.g.shape(x.0).len();
                let Some(perm) = self.axes_arg(&a, "perm", rank, (0..rank).rev().collect()) else {
                    return Value::Error;
                };
                self.node(Op::Transpose { perm }, &[x], span)
            }
            Reshape => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let Some((sv, sspan)) = a.get("shape").cloned() else { return Value::Error };
                let Some(shape) = self.reshape_target(x.0, sv, sspan) else { return Value::Error };
                self.node(Op::Reshape { shape }, &[x], span)
            }
            Flatten => self.lower1(&a, lower::flatten),
            Concat => self.concat(&a),
            Split => self.split(&a, false),
            Chunk => self.split(&a, true),
            Take => self.take(&a),
            Expand | BroadcastTo => self.expand(&a),
            Squeeze => self.squeeze(&a, false),
            Unsqueeze => self.squeeze(&a, true),
            Pad => self.pad(&a),
            Einsum => self.einsum(&a),
            Softmax | LogSoftmax => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let rank = self.g.shape(x.0).len();
                if rank == 0 {
                    return self.error("E-shape", x.1, format!("{name} needs at least one axis"), "this is a scalar");
                }
                let Some(axes) = self.axes_arg(&a, "axis", rank, vec![rank - 1]) else { return Value::Error };
                let [axis] = axes[..] else {
                    return self.error("E-shape", span, format!("{name} takes one axis"), "here");
                };
                let r = if a.builtin == Softmax {
                    lower::softmax(&mut self.g, x.0, axis)
                } else {
                    self.g.add(Op::LogSoftmax { axis }, &[x.0])
                };
                self.lowered(r, &[x], name, span)
            }
            OneHot => {
                let Some(x) = self.tensor_arg(&a, "labels") else { return Value::Error };
                let Some(classes) = self.whole_arg(&a, "classes", None, 1) else { return Value::Error };
                self.node(Op::OneHot { classes }, &[x], span)
            }
            Argmax => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let rank = self.g.shape(x.0).len();
                if rank == 0 {
                    return self.error("E-shape", x.1, "argmax needs at least one axis", "this is a scalar");
                }
                let Some(axes) = self.axes_arg(&a, "axis", rank, vec![rank - 1]) else { return Value::Error };
                let [axis] = axes[..] else {
                    return self.error("E-shape", span, "argmax takes one axis", "here");
                };
                let r = lower::argmax(&mut self.g, x.0, axis);
                self.lowered(r, &[x], name, span)
            }
            Decode => {
                // The value is the ids themselves; the eval block prints them as text. Only a
                // shown expression of an eval block is printed, so only there is it allowed
                // (`check_eval` checks that the call is the whole statement).
                let Some(ids) = self.tensor_arg(&a, "ids") else { return Value::Error };
                let Some(alphabet) = self.str_arg(&a, "alphabet", None) else { return Value::Error };
                if !self.in_eval {
                    return self.error(
                        "E-decode",
                        span,
                        "decode prints an eval block's value as text",
                        "use it as a shown expression of an eval block",
                    );
                }
                if alphabet.is_empty() {
                    return self.error(
                        "E-decode",
                        span,
                        "the alphabet of decode is empty",
                        "give one character per id",
                    );
                }
                self.decodes.push((span, alphabet));
                Value::Tensor(ids.0)
            }
            CrossEntropy | Svm => {
                let (Some(s), Some(y)) = (self.tensor_arg(&a, "scores"), self.tensor_arg(&a, "labels")) else {
                    return Value::Error;
                };
                let r = if a.builtin == CrossEntropy {
                    lower::cross_entropy(&mut self.g, s.0, y.0)
                } else {
                    let Some(m) = self.num_arg(&a, "margin", Some(1.0), Range::Finite) else { return Value::Error };
                    lower::svm(&mut self.g, s.0, y.0, m)
                };
                self.lowered(r, &[s, y], name, span)
            }
            Mse => {
                let (Some(p), Some(t)) = (self.tensor_arg(&a, "prediction"), self.tensor_arg(&a, "target")) else {
                    return Value::Error;
                };
                let r = lower::mse(&mut self.g, p.0, t.0);
                self.lowered(r, &[p, t], name, span)
            }
            L2 => self.l2(&a),
            Conv => {
                let (Some(x), Some(w)) = (self.tensor_arg(&a, "x"), self.tensor_arg(&a, "w")) else {
                    return Value::Error;
                };
                let (Some(stride), Some(pad), Some(groups)) = (
                    self.whole_arg(&a, "stride", Some(1), 1),
                    self.whole_arg(&a, "pad", Some(0), 0),
                    self.whole_arg(&a, "groups", Some(1), 1),
                ) else {
                    return Value::Error;
                };
                if groups > 1 {
                    return self.grouped_conv(&a, x, w, stride, pad, groups);
                }
                let r = self.node(Op::Conv2d { stride, pad }, &[x, w], span);
                let kernel = self.g.shape(w.0).get(2..4).map(|k| (k[0].known(), k[1].known()));
                if let (Value::Tensor(_), Some((Some(kh), Some(kw)))) = (&r, kernel) {
                    self.note_floor("conv", x.0, (kh, kw), stride, pad, span);
                }
                r
            }
            Maxpool2d | Avgpool2d => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let Some(size) = self.whole_arg(&a, "size", Some(2), 1) else { return Value::Error };
                let Some(stride) = self.whole_arg(&a, "stride", Some(size), 1) else { return Value::Error };
                if a.builtin == Maxpool2d {
                    let r = self.node(Op::MaxPool2d { size, stride }, &[x], span);
                    if let Value::Tensor(_) = r {
                        self.note_floor(name, x.0, (size, size), stride, 0, span);
                    }
                    return r;
                }
                // Padding as torch's avg_pool2d (count_include_pad = True): the zeros count in
                // every average, so it is exactly an average of the zero-padded input.
                let Some(pad) = self.whole_arg(&a, "pad", Some(0), 0) else { return Value::Error };
                if pad > size / 2 {
                    let at = a.get("pad").map_or(span, |v| v.1);
                    return self.error(
                        "E-shape",
                        at,
                        format!("avgpool2d's pad {pad} is more than half the window {size}"),
                        "a window would average nothing but padding (torch refuses it too)",
                    );
                }
                if self.g.shape(x.0).len() != 4 {
                    let s = self.g.shape_str(self.g.shape(x.0));
                    return self.error("E-shape", x.1, "avgpool2d takes [N, C, H, W]", format!("this is {s}"));
                }
                let mut padded = x.0;
                if pad > 0 {
                    for axis in [2, 3] {
                        match self.g.add(Op::Pad { axis, before: pad, after: pad, step: 1 }, &[padded]) {
                            Ok(id) => padded = id,
                            Err(e) => return self.shape_error(e, name, &[x], span),
                        }
                    }
                }
                let r = self.node(Op::AvgPool2d { size, stride }, &[(padded, x.1)], span);
                if let Value::Tensor(_) = r {
                    self.note_floor(name, x.0, (size, size), stride, pad, span);
                }
                r
            }
            Conv1d => self.conv1d(&a),
            ConvTranspose2d => self.conv_transpose2d(&a),
            Upsample2d => self.upsample2d(&a),
            GlobalAvgpool => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let rank = self.g.shape(x.0).len();
                if rank < 3 {
                    let s = self.g.shape_str(self.g.shape(x.0));
                    return self.error(
                        "E-shape",
                        x.1,
                        "global_avgpool takes [N, C, H, W] (or [N, C, ...])",
                        format!("this is {s}"),
                    );
                }
                let Some(keep) = self.bool_arg(&a, "keepdims", false) else { return Value::Error };
                let axes: Vec<usize> = (2..rank).collect();
                let r = lower::mean(&mut self.g, x.0, &axes, keep);
                self.lowered(r, &[x], name, span)
            }
            RandLike => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let shape = self.g.shape(x.0).clone();
                self.random(shape, "rand_like", span).map_or(Value::Error, Value::Tensor)
            }
            Dropout => {
                let Some(x) = self.tensor_arg(&a, "x") else { return Value::Error };
                let Some(p) = self.num_arg(&a, "p", Some(0.5), Range::Probability) else { return Value::Error };
                // Inverted dropout: the expected value is x in training, so inference is x.
                self.mode_used = true;
                if !self.training || p == 0.0 {
                    return Value::Tensor(x.0);
                }
                let shape = self.g.shape(x.0).clone();
                let Some(u) = self.random(shape, "dropout", span) else { return Value::Error };
                let r = lower::dropout(&mut self.g, x.0, u, p);
                self.lowered(r, &[x], name, span)
            }
            Accuracy => self.error(
                "E-type",
                span,
                "accuracy is a metric, not a differentiable function",
                "use it as `metrics: [accuracy]` in a train block",
            ),
            // `zeros` names the initialiser; `zeros([B, H])` is a tensor (torch.zeros).
            Zeros if a.given("shape") => {
                let Some((v, vspan)) = a.get("shape").cloned() else { return Value::Error };
                let Some(shape) = self.size_list(v, vspan) else { return Value::Error };
                let zero = self.g.constant(0.0);
                if shape.is_empty() {
                    return Value::Tensor(zero);
                }
                self.node(Op::Broadcast { shape }, &[(zero, span)], span)
            }
            Zeros => Value::Init(Init::Zeros),
            Xavier => Value::Init(Init::Xavier),
            He => Value::Init(Init::He),
            Constant => match self.num_arg(&a, "value", None, Range::Finite) {
                Some(c) => Value::Init(Init::Constant(c)),
                None => Value::Error,
            },
            Normal => match self.num_arg(&a, "std", Some(1.0), Range::NonNegative) {
                Some(std) => Value::Init(Init::Normal { std }),
                None => Value::Error,
            },
            Uniform => {
                let (Some(low), Some(high)) = (
                    self.num_arg(&a, "low", Some(-1.0), Range::Finite),
                    self.num_arg(&a, "high", Some(f64::NAN), Range::Finite),
                ) else {
                    return Value::Error;
                };
                // One argument a: [-a, a).
                let (low, high) = if a.given("high") { (low, high) } else { (-low.abs(), low.abs()) };
                if low > high {
                    return self.error(
                        "E-type",
                        span,
                        "uniform needs low <= high",
                        format!("[{low}, {high}) is empty"),
                    );
                }
                Value::Init(Init::Uniform { low, high })
            }
            Sgd | Momentum | Adam | AdamW | Step | Cosine | Spiral | Synthetic | Csv | Npy | Idx => {
                Value::Setting(Box::new(a))
            }
        }
    }

    /// PyTorch's floor rule made visible: when the windows of a convolution or pooling of
    /// `x` [N, C, H, W] (window kh×kw, `stride`, `pad`) leave the last rows or columns of the
    /// padded input unread, a note at the call (the user's call, for a prelude layer).
    pub(super) fn note_floor(
        &mut self,
        what: &str,
        x: NodeId,
        (kh, kw): (usize, usize),
        stride: usize,
        pad: usize,
        span: Span,
    ) {
        let shape = self.g.shape(x);
        let (Some(h), Some(w)) = (shape.get(2).and_then(|d| d.known()), shape.get(3).and_then(|d| d.known())) else {
            return;
        };
        let dropped = |n: usize, k: usize| (n + 2 * pad).checked_sub(k).map_or(0, |r| r % stride);
        let (rows, cols) = (dropped(h, kh), dropped(w, kw));
        if rows == 0 && cols == 0 {
            return;
        }
        let out = |n: usize, k: usize| (n + 2 * pad - k) / stride + 1;
        let axis =
            |n: usize, k: usize, o: usize, what: &str| format!("{what}: ⌊({n} − {k} + 2·{pad})/{stride}⌋ + 1 = {o}");
        let mut parts = vec![];
        if rows > 0 {
            parts.push(format!("the last {rows} row(s)"));
        }
        if cols > 0 {
            parts.push(format!("the last {cols} column(s)"));
        }
        let at = self.span_override.unwrap_or(span);
        let d = Diagnostic::new(
            "N-floor",
            format!("{what} reads no window over {} of its {h}×{w} input (padded by {pad})", parts.join(" and ")),
        )
        .label(at, format!("{}; {}", axis(h, kh, out(h, kh), "height"), axis(w, kw, out(w, kw), "width")))
        .note("the output size is rounded down, as in PyTorch: (N − F + 2P)/S + 1 need not be whole");
        if !self.notes.contains(&d) {
            self.notes.push(d);
        }
    }

    /// An elementwise primitive of the call's one tensor.
    fn unary(&mut self, a: &Args, op: Op) -> Value {
        let Some(x) = self.tensor_arg(a, "x") else { return Value::Error };
        self.node(op, &[x], a.span)
    }

    /// A composite of the call's one tensor, built by `lower`.
    fn lower1(&mut self, a: &Args, f: impl FnOnce(&mut Graph, NodeId) -> Result<NodeId, ShapeError>) -> Value {
        let Some(x) = self.tensor_arg(a, "x") else { return Value::Error };
        let r = f(&mut self.g, x.0);
        self.lowered(r, &[x], a.builtin.name(), a.span)
    }

    /// The node `lower` built, or its shape error as a diagnostic on the operands.
    pub(super) fn lowered(
        &mut self,
        r: Result<NodeId, ShapeError>,
        operands: &[(NodeId, Span)],
        name: &str,
        span: Span,
    ) -> Value {
        match r {
            Ok(id) => {
                self.g.annotate(id, None, Some(span));
                Value::Tensor(id)
            }
            Err(e) => self.shape_error(e, name, operands, span),
        }
    }

    /// l2(a, b, ...) = 0.5·Σ‖p‖²; with no arguments, over every weight (`ParamRole::Weight`:
    /// every parameter that is not a bias, whatever its rank).
    fn l2(&mut self, a: &Args) -> Value {
        let span = a.span;
        let mut ids = vec![];
        for (v, s) in a.bound.rest.clone() {
            match self.tensor(v, s) {
                Some(id) => ids.push(id),
                None => return Value::Error,
            }
        }
        if ids.is_empty() {
            // Every weight: the parameters that are not biases.
            ids = (0..self.g.nodes.len())
                .map(|i| NodeId(i as u32))
                .filter(|&id| match self.g.node(id).op {
                    Op::Param { index } => {
                        let p = &self.g.params[index];
                        p.kind == crate::ir::graph::ParamKind::Trainable && p.role == ParamRole::Weight
                    }
                    _ => false,
                })
                .collect();
        }
        let r = lower::l2(&mut self.g, &ids);
        match r {
            Ok(id) => {
                self.g.annotate(id, None, Some(span));
                Value::Tensor(id)
            }
            Err(e) => self.shape_error(e, "l2", &[], span),
        }
    }

    /// The target shape of reshape: a list of sizes, symbols (from x.shape) and at most one -1.
    /// A shape written as a list of sizes: whole numbers and symbolic dimensions (`[B, 64]`).
    pub(super) fn size_list(&mut self, v: Value, span: Span) -> Option<Shape> {
        let Value::List(items) = v else {
            self.error("E-type", span, "a shape is a list of sizes", "e.g. [B, 64]");
            return None;
        };
        let mut shape = vec![];
        for it in items {
            match it {
                Value::Num(n) if n >= 1.0 && n.fract() == 0.0 && n < MAX_ELEMENTS as f64 => {
                    shape.push(Dim::Known(n as usize))
                }
                Value::Dim(d) => shape.push(d),
                Value::Error => return None,
                _ => {
                    self.error("E-type", span, "sizes are positive whole numbers or symbolic dimensions", "here");
                    return None;
                }
            }
        }
        Some(shape)
    }

    pub(super) fn reshape_target(&mut self, x: NodeId, v: Value, span: Span) -> Option<Shape> {
        let Value::List(items) = v else {
            self.error("E-type", span, "reshape takes a list of sizes", "e.g. [B, 8, 8]");
            return None;
        };
        let src = self.g.shape(x).clone();
        let mut shape = vec![];
        let mut infer = None;
        for (i, it) in items.iter().enumerate() {
            match it {
                Value::Num(n) if *n == -1.0 && infer.is_none() => {
                    infer = Some(i);
                    shape.push(Dim::Known(1));
                }
                Value::Num(n) if *n >= 1.0 && n.fract() == 0.0 => shape.push(Dim::Known(*n as usize)),
                Value::Dim(d) => shape.push(*d),
                // Already reported.
                Value::Error => return None,
                _ => {
                    self.error("E-type", span, "reshape sizes are positive whole numbers (one may be -1)", "here");
                    return None;
                }
            }
        }
        if let Some(i) = infer {
            // The inferred size is what x has beyond the other sizes: its known element count
            // over theirs, times the symbols of x they do not name (`[-1, 6]` of [B, 2, 3]
            // is [B, 6]). It must be one size: a number, or a symbol alone.
            let known = |s: &Shape| s.iter().filter_map(|d| d.known()).product::<usize>();
            let mut symbols: Vec<Dim> = src.iter().copied().filter(|d| d.known().is_none()).collect();
            let mut missing = vec![];
            for d in shape.iter().filter(|d| d.known().is_none()) {
                match symbols.iter().position(|s| s == d) {
                    Some(k) => {
                        symbols.remove(k);
                    }
                    None => missing.push(*d),
                }
            }
            let (a, b) = (known(&src), known(&shape));
            let rest = if b != 0 && a % b == 0 { Some(a / b) } else { None };
            let inferred = match (rest, symbols.as_slice(), missing.is_empty()) {
                (Some(n), [], true) => Dim::Known(n),
                (Some(1), [sym], true) => *sym,
                _ => {
                    let why = if !missing.is_empty() {
                        format!("{} is not a size of the input", self.g.dim_name(missing[0]))
                    } else if rest.is_none() {
                        "the sizes do not divide".to_string()
                    } else {
                        let mut parts: Vec<String> = symbols.iter().map(|&d| self.g.dim_name(d)).collect();
                        if rest != Some(1) {
                            parts.push(rest.unwrap_or(1).to_string());
                        }
                        format!("-1 would be {}, not one size", parts.join("·"))
                    };
                    self.error(
                        "E-shape",
                        span,
                        format!("cannot reshape {} into this shape", self.g.shape_str(&src)),
                        why,
                    );
                    return None;
                }
            };
            shape[i] = inferred;
        }
        Some(shape)
    }
}
