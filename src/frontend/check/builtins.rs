//! Built-in functions: each one's arguments checked and lowered into graph primitives.

use super::*;

impl<'p> Checker<'p> {
    pub(super) fn builtin(&mut self, sig: &'static Signature, b: Bound, span: Span) -> Value {
        let name = sig.name;
        // Settings functions return their bound arguments for the caller to interpret.
        if matches!(
            name,
            "sgd" | "momentum" | "adam" | "step" | "cosine" | "spiral" | "synthetic" | "csv" | "npy" | "idx"
        ) {
            return Value::Call(name, b.values.into_iter().map(|v| v.map(|(v, _)| v)).collect());
        }
        let arg = |i: usize| b.values.get(i).cloned().flatten();
        let num = |c: &mut Self, i: usize, default: f64| -> Option<f64> {
            match arg(i) {
                None => Some(default),
                Some((Value::Num(n), _)) => Some(n),
                Some((Value::Error, _)) => None,
                Some((_, s)) => {
                    c.error(
                        "E-type",
                        s,
                        format!("`{}` of {name} must be a number", sig.params[i]),
                        "expected a number",
                    );
                    None
                }
            }
        };
        let whole = |c: &mut Self, i: usize, default: Option<usize>| -> Option<usize> {
            match arg(i) {
                None => default,
                Some((Value::Num(n), _)) if n >= 0.0 && n.fract() == 0.0 && n < 1e12 => Some(n as usize),
                Some((Value::Error, _)) => None,
                Some((_, s)) => {
                    c.error(
                        "E-type",
                        s,
                        format!("`{}` of {name} must be a whole number", sig.params[i]),
                        "expected a whole number",
                    );
                    None
                }
            }
        };
        // Initialisers.
        match name {
            "normal" => return num(self, 0, 1.0).map_or(Value::Error, |std| Value::Init(Init::Normal { std })),
            "uniform" => {
                let (Some(a), Some(h)) = (num(self, 0, -1.0), num(self, 1, f64::NAN)) else { return Value::Error };
                let (low, high) = if h.is_nan() {
                    if arg(0).is_some() {
                        (-a.abs(), a.abs())
                    } else {
                        (-1.0, 1.0)
                    }
                } else {
                    (a, h)
                };
                return Value::Init(Init::Uniform { low, high });
            }
            "constant" => return num(self, 0, 0.0).map_or(Value::Error, |c| Value::Init(Init::Constant(c))),
            "zeros" => return Value::Init(Init::Zeros),
            "xavier" => return Value::Init(Init::Xavier),
            "he" => return Value::Init(Init::He),
            "accuracy" => {
                return self.error(
                    "E-type",
                    span,
                    "accuracy is a metric, not a differentiable function",
                    "use it as `metrics: [accuracy]` in a train block",
                )
            }
            _ => {}
        }
        // Everything else takes tensors.
        let t = |c: &mut Self, i: usize| -> Option<(NodeId, Span)> {
            let (v, s) = arg(i)?;
            c.tensor(v, s).map(|id| (id, s))
        };
        let lowered = |c: &mut Self, r: Result<NodeId, ShapeError>, operands: &[(NodeId, Span)]| -> Value {
            match r {
                Ok(id) => {
                    c.g.annotate(id, None, Some(span));
                    Value::Tensor(id)
                }
                Err(e) => c.shape_error(e, name, operands, span),
            }
        };
        let axes_arg = |c: &mut Self, i: usize, rank: usize| -> Option<Vec<usize>> {
            match arg(i) {
                None => Some((0..rank).collect()),
                Some((Value::Num(n), s)) if n.fract() == 0.0 => match lower::axis(n as i64, rank) {
                    Ok(a) => Some(vec![a]),
                    Err(e) => {
                        c.error("E-shape", s, e.message(&c.g, &[]), "this axis");
                        None
                    }
                },
                Some((Value::List(items), s)) => {
                    let mut out = vec![];
                    for it in items {
                        match it {
                            Value::Num(n) if n.fract() == 0.0 => match lower::axis(n as i64, rank) {
                                Ok(a) => out.push(a),
                                Err(e) => {
                                    c.error("E-shape", s, e.message(&c.g, &[]), "this axis");
                                    return None;
                                }
                            },
                            _ => {
                                c.error("E-type", s, "axes are whole numbers", "here");
                                return None;
                            }
                        }
                    }
                    Some(out)
                }
                Some((_, s)) => {
                    c.error("E-type", s, "an axis is a whole number", "here");
                    None
                }
            }
        };
        if name == "l2" {
            return self.l2(b, span);
        }
        let Some(x) = t(self, 0) else {
            return Value::Error;
        };
        let g = &mut self.g;
        match name {
            "exp" => self.node(Op::Exp, &[x], span),
            "log" => self.node(Op::Log, &[x], span),
            "sqrt" => self.node(Op::Sqrt, &[x], span),
            "abs" => self.node(Op::Abs, &[x], span),
            "sigmoid" => self.node(Op::Sigmoid, &[x], span),
            "tanh" => self.node(Op::Tanh, &[x], span),
            "relu" => {
                let r = lower::relu(g, x.0);
                lowered(self, r, &[x])
            }
            "leaky_relu" => {
                let Some(a) = num(self, 1, 0.01) else { return Value::Error };
                let r = lower::leaky_relu(&mut self.g, x.0, a);
                lowered(self, r, &[x])
            }
            "elu" => {
                let Some(a) = num(self, 1, 1.0) else { return Value::Error };
                let r = lower::elu(&mut self.g, x.0, a);
                lowered(self, r, &[x])
            }
            "softplus" => {
                let r = lower::softplus(g, x.0);
                lowered(self, r, &[x])
            }
            "max" | "min" => {
                if arg(1).is_some() {
                    // Two tensors: the elementwise gate.
                    let Some(y) = t(self, 1) else { return Value::Error };
                    let op = if name == "max" { Op::Max } else { Op::Min };
                    return self.node(op, &[x, y], span);
                }
                let rank = self.g.shape(x.0).len();
                let Some(axes) = axes_arg(self, 2, rank) else { return Value::Error };
                let keep = match arg(3) {
                    Some((v, s)) => match self.boolean(v, s) {
                        Some(k) => k,
                        None => return Value::Error,
                    },
                    None => false,
                };
                let r = if name == "max" {
                    lower::reduce_max(&mut self.g, x.0, &axes, keep)
                } else {
                    lower::reduce_min(&mut self.g, x.0, &axes, keep)
                };
                lowered(self, r, &[x])
            }
            "sum" | "mean" => {
                let rank = self.g.shape(x.0).len();
                let Some(axes) = axes_arg(self, 1, rank) else { return Value::Error };
                let keep = match arg(2) {
                    Some((v, s)) => match self.boolean(v, s) {
                        Some(k) => k,
                        None => return Value::Error,
                    },
                    None => false,
                };
                let r = if name == "sum" {
                    lower::sum(&mut self.g, x.0, &axes, keep)
                } else {
                    lower::mean(&mut self.g, x.0, &axes, keep)
                };
                lowered(self, r, &[x])
            }
            "transpose" => {
                let rank = self.g.shape(x.0).len();
                let perm = match arg(1) {
                    None => (0..rank).rev().collect(),
                    Some(_) => match axes_arg(self, 1, rank) {
                        Some(p) => p,
                        None => return Value::Error,
                    },
                };
                self.node(Op::Transpose { perm }, &[x], span)
            }
            "reshape" => {
                let Some((sv, sspan)) = arg(1) else { return Value::Error };
                let Some(shape) = self.reshape_target(x.0, sv, sspan) else { return Value::Error };
                self.node(Op::Reshape { shape }, &[x], span)
            }
            "flatten" => {
                let r = lower::flatten(g, x.0);
                lowered(self, r, &[x])
            }
            "softmax" | "log_softmax" => {
                let rank = self.g.shape(x.0).len();
                let Some(axes) = axes_arg(self, 1, rank) else { return Value::Error };
                let axis = if arg(1).is_none() { rank.saturating_sub(1) } else { axes[0] };
                if rank == 0 {
                    return self.error("E-shape", x.1, format!("{name} needs at least one axis"), "this is a scalar");
                }
                let r = if name == "softmax" {
                    lower::softmax(&mut self.g, x.0, axis)
                } else {
                    self.g.add(Op::LogSoftmax { axis }, &[x.0])
                };
                lowered(self, r, &[x])
            }
            "one_hot" => {
                let Some(classes) = whole(self, 1, None) else { return Value::Error };
                self.node(Op::OneHot { classes }, &[x], span)
            }
            "cross_entropy" | "svm" | "mse" => {
                let Some(y) = t(self, 1) else { return Value::Error };
                let r = match name {
                    "cross_entropy" => lower::cross_entropy(&mut self.g, x.0, y.0),
                    "svm" => {
                        let Some(m) = num(self, 2, 1.0) else { return Value::Error };
                        lower::svm(&mut self.g, x.0, y.0, m)
                    }
                    _ => lower::mse(&mut self.g, x.0, y.0),
                };
                lowered(self, r, &[x, y])
            }
            "conv" => {
                let Some(w) = t(self, 1) else { return Value::Error };
                let (Some(stride), Some(pad)) = (whole(self, 2, Some(1)), whole(self, 3, Some(0))) else {
                    return Value::Error;
                };
                if stride == 0 {
                    return self.error("E-shape", arg(2).map_or(span, |a| a.1), "stride must be at least 1", "here");
                }
                self.node(Op::Conv2d { stride, pad }, &[x, w], span)
            }
            "maxpool2d" | "avgpool2d" => {
                let Some(size) = whole(self, 1, Some(2)) else { return Value::Error };
                let Some(stride) = whole(self, 2, Some(size)) else { return Value::Error };
                if size == 0 || stride == 0 {
                    return self.error("E-shape", span, "pool size and stride must be at least 1", "here");
                }
                let op =
                    if name == "maxpool2d" { Op::MaxPool2d { size, stride } } else { Op::AvgPool2d { size, stride } };
                self.node(op, &[x], span)
            }
            other => self.error("E-internal", span, format!("built-in `{other}` has no lowering"), "here"),
        }
    }

    /// l2(a, b, ...) = 0.5·Σ‖p‖²; with no arguments, over every weight matrix and filter.
    pub(super) fn l2(&mut self, b: Bound, span: Span) -> Value {
        let mut ids = vec![];
        for (v, s) in b.rest.clone() {
            match self.tensor(v, s) {
                Some(id) => ids.push(id),
                None => return Value::Error,
            }
        }
        if ids.is_empty() {
            // All weight matrices and filters (parameters with two or more axes).
            ids = (0..self.g.nodes.len())
                .map(|i| NodeId(i as u32))
                .filter(|&id| matches!(self.g.node(id).op, Op::Param { .. }) && self.g.shape(id).len() >= 2)
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
                _ => {
                    self.error("E-type", span, "reshape sizes are positive whole numbers (one may be -1)", "here");
                    return None;
                }
            }
        }
        if let Some(i) = infer {
            // The inferred size is the known element count of x over that of the rest.
            let known = |s: &Shape| s.iter().filter_map(|d| d.known()).product::<usize>();
            let (a, b) = (known(&src), known(&shape));
            if b == 0 || a % b != 0 {
                self.error(
                    "E-shape",
                    span,
                    format!("cannot reshape {} into this shape", self.g.shape_str(&src)),
                    "the sizes do not divide",
                );
                return None;
            }
            shape[i] = Dim::Known(a / b);
        }
        Some(shape)
    }
}
