//! Statements and expressions: blocks, `param`, operators, indexing and fields, turned into
//! graph nodes whose shape errors become diagnostics on the operands.

use super::*;
use crate::ir::graph::ParamKind;

impl<'p> Checker<'p> {
    // ---- statements ----

    /// Run statements in the current scope; the result is the last bare expression or `return`.
    pub(super) fn run_block(&mut self, body: &[Stmt]) -> Option<(Value, Span)> {
        let mut result = None;
        for stmt in body {
            match stmt {
                Stmt::Let { name, value } => self.let_stmt(name, value),
                Stmt::LetList { names, value, span } => {
                    let v = self.expr(value);
                    self.let_list(names, v, value.span, *span);
                }
                Stmt::Param { name, ty, init, span } => {
                    self.param(name, ty, init.as_ref(), *span, ParamKind::Trainable)
                }
                Stmt::State { name, ty, init, span } => self.param(name, ty, init.as_ref(), *span, ParamKind::State),
                Stmt::Update { target, value, span } => self.update(target, value, *span),
                Stmt::Return(e) => {
                    result = Some((self.expr(e), e.span));
                    break;
                }
                Stmt::Expr(e) => result = Some((self.expr(e), e.span)),
                Stmt::For(f) => self.for_loop(f),
                Stmt::Yield { span, .. } => {
                    self.error("E-syntax", *span, "`yield` belongs in the body of a `for` loop", "not allowed here");
                }
                Stmt::Grad { span, .. } => {
                    self.error(
                        "E-syntax",
                        *span,
                        "the `grad f wrt x` statement belongs in an eval block",
                        "write `grad(f, wrt: x)` for a gradient as a value",
                    );
                }
                Stmt::Setting { key, .. } => {
                    self.error(
                        "E-syntax",
                        key.span,
                        "a `key: value` setting belongs in a data or train block",
                        "not allowed here",
                    );
                }
                Stmt::Error => {}
            }
        }
        result
    }

    /// `let name = value`: bind the value (a layer call names its instance after `name`).
    pub(super) fn let_stmt(&mut self, name: &Ident, value: &Expr) {
        // The first layer (or model) the value calls is the instance `name`: in
        // `let body = x |> dense(64) |> relu` that is the dense, so appending a
        // layer never renames the parameters before it.
        self.pending_instance = Some(name.name.clone());
        let v = self.expr(value);
        self.pending_instance = None;
        if let Value::Tensor(id) = v {
            if self.span_override.is_none() {
                self.g.annotate(id, Some(&name.name), Some(value.span));
            }
        }
        self.bind(&name.name, v);
    }

    /// `let [a, b, c] = value`: bind each name to an element of the list `value` (counts must
    /// agree); every name is poisoned after an error.
    pub(super) fn let_list(&mut self, names: &[Ident], v: Value, value_span: Span, span: Span) {
        let items = match v {
            Value::List(items) if items.len() == names.len() => Some(items),
            Value::List(items) => {
                self.error(
                    "E-type",
                    span,
                    format!("{} names for a list of {}", names.len(), items.len()),
                    format!("the list has {} elements", items.len()),
                );
                None
            }
            Value::Error => None,
            other => {
                let what = describe_value(&other);
                self.error(
                    "E-type",
                    value_span,
                    format!("`let [...] =` takes a list, found {what}"),
                    "this is not a list",
                );
                None
            }
        };
        match items {
            Some(items) => {
                for (name, item) in names.iter().zip(items) {
                    if let Value::Tensor(id) = item {
                        if self.span_override.is_none() {
                            self.g.annotate(id, Some(&name.name), Some(name.span));
                        }
                    }
                    self.bind(&name.name, item);
                }
            }
            None => names.iter().for_each(|n| self.bind(&n.name, Value::Error)),
        }
    }

    /// `param` (trainable) or `state` (updated by `<-`) declarations.
    pub(super) fn param(&mut self, name: &Ident, ty: &TypeExpr, init: Option<&Expr>, span: Span, kind: ParamKind) {
        let what = match kind {
            ParamKind::Trainable => "parameters",
            ParamKind::State => "state tensors",
        };
        if !self.allow_params {
            self.error(
                "E-param",
                span,
                format!("{what} belong to layers and models"),
                "a `fn` cannot own parameters or state; declare it with `layer` instead",
            );
            self.bind(&name.name, Value::Error);
            return;
        }
        if self.mode_branches > 0 {
            self.report(
                Diagnostic::new("E-param", format!("{what} cannot be declared inside `if training`"))
                    .label(span, "declared in one mode only")
                    .note("training and inference run the same parameters and state: declare it before the `if`"),
            );
            self.bind(&name.name, Value::Error);
            return;
        }
        let Some(shape) = self.shape_of_type(ty, false) else {
            self.bind(&name.name, Value::Error);
            return;
        };
        let init = match init {
            None if shape.len() >= 2 && kind == ParamKind::Trainable => Init::Xavier,
            None => Init::Zeros,
            Some(e) => match self.expr(e) {
                Value::Init(i) => i,
                Value::Num(n) => Init::Constant(n),
                Value::Error => return,
                _ => {
                    self.error(
                        "E-type",
                        e.span,
                        "expected an initialiser",
                        "zeros, normal(std), uniform(a, b), xavier, he or a number",
                    );
                    return;
                }
            },
        };
        let mut path = self.prefix.clone();
        path.push(name.name.clone());
        let qualified = path.join(".");
        if let Some(&id) =
            self.params_by_name.get(&qualified).filter(|&&id| self.share_params && *self.g.shape(id) == shape)
        {
            // Another call of the same model in an eval block: the same parameter.
            self.bind(&name.name, Value::Tensor(id));
            return;
        }
        if let Some(first) = self.params_by_name.get(&qualified).and_then(|&id| self.g.node(id).span) {
            self.report(
                Diagnostic::new("E-duplicate", format!("parameter `{qualified}` is declared twice"))
                    .label(name.span, "declared again here")
                    .label(first, "first declared here"),
            );
            return;
        }
        let id = match kind {
            ParamKind::Trainable => self.g.add_param(&qualified, shape, init),
            ParamKind::State => self.g.add_state(&qualified, shape, init),
        };
        self.g.annotate(id, None, Some(name.span));
        self.params_by_name.insert(qualified, id);
        self.bind(&name.name, Value::Tensor(id));
    }

    // ---- expressions ----

    pub(super) fn expr(&mut self, e: &Expr) -> Value {
        if !self.charge(1, e.span) {
            return Value::Error;
        }
        match &e.kind {
            ExprKind::Int(n) => Value::Num(*n as f64),
            ExprKind::Float(x) => Value::Num(*x),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Name(n) => {
                if self.names_the_mode(n) {
                    self.mode_used = true;
                }
                // A list in scope is copied: paid for by its size before the copy is made.
                let size = self.scopes.iter().rev().find_map(|s| s.get(n)).map_or(1, value_size);
                if size > 1 && !self.charge(size, e.span) {
                    return Value::Error;
                }
                match self.lookup(n) {
                    Some(v) => v,
                    None => self.unknown_name(n, e.span),
                }
            }
            ExprKind::List(items) => {
                let items: Vec<Value> = items.iter().map(|i| self.expr(i)).collect();
                if items.iter().any(|v| matches!(v, Value::Error)) {
                    return Value::Error;
                }
                let list = Value::List(items);
                if list_depth(&list) > MAX_LIST_DEPTH {
                    return self.error(
                        "E-type",
                        e.span,
                        format!("lists nest more than {MAX_LIST_DEPTH} deep"),
                        "a tensor literal of this rank is not supported",
                    );
                }
                list
            }
            ExprKind::Neg(x) => {
                let v = self.expr(x);
                match v {
                    Value::Num(n) => Value::Num(-n),
                    Value::Error => Value::Error,
                    v => match self.tensor(v, x.span) {
                        Some(t) => self.node(Op::Neg, &[(t, x.span)], e.span),
                        None => Value::Error,
                    },
                }
            }
            ExprKind::Binary(op, a, b) => {
                let va = self.expr(a);
                let vb = self.expr(b);
                self.binary(*op, (va, a.span), (vb, b.span), e.span)
            }
            ExprKind::Call { callee, args } => self.call(callee, args, e.span),
            ExprKind::Index { base, indices } => self.index(base, indices, e.span),
            ExprKind::Field { base, field } => self.field(base, field, e.span),
            ExprKind::Grad { of, wrt } => self.grad_expr(of, wrt, e.span),
            ExprKind::If { cond, then, otherwise } => self.if_expr(cond, then, otherwise.as_deref(), e.span),
        }
    }

    /// Add a primitive node, turning a shape error into a diagnostic on the operands.
    pub(super) fn node(&mut self, op: Op, operands: &[(NodeId, Span)], span: Span) -> Value {
        let ids: Vec<NodeId> = operands.iter().map(|o| o.0).collect();
        match self.g.add(op.clone(), &ids) {
            Ok(id) => {
                self.g.annotate(id, None, Some(span));
                Value::Tensor(id)
            }
            Err(err) => {
                let what = crate::ir::ops::describe(&op, &self.g);
                self.shape_error(err, &what, operands, span)
            }
        }
    }

    pub(super) fn shape_error(
        &mut self,
        err: ShapeError,
        what: &str,
        operands: &[(NodeId, Span)],
        span: Span,
    ) -> Value {
        let shapes: Vec<Shape> = operands.iter().map(|o| self.g.shape(o.0).clone()).collect();
        let d = match &err {
            ShapeError::Mismatch { lhs_axis, rhs_axis, what } if operands.len() >= 2 => {
                let (a, b) = (&shapes[0], &shapes[1]);
                let (da, db) = (self.g.dim_name(a[*lhs_axis]), self.g.dim_name(b[*rhs_axis]));
                let headline = match *what {
                    "matmul" => format!("matmul inner dimensions differ: {da} vs {db}"),
                    "matmul batch" => format!("matmul batch axes do not broadcast: {da} vs {db}"),
                    "concat" => format!("concat: the tensors differ on axis {lhs_axis}: {da} vs {db}"),
                    "cannot broadcast" => {
                        format!("shapes {} and {} do not broadcast", self.g.shape_str(a), self.g.shape_str(b))
                    }
                    other => format!("{other}: {da} vs {db}"),
                };
                Diagnostic::new("E-shape", headline)
                    .label(operands[0].1, format!("this is {} (axis {lhs_axis} is {da})", self.g.shape_str(a)))
                    .label(operands[1].1, format!("this is {} (axis {rhs_axis} is {db})", self.g.shape_str(b)))
                    .note(match *what {
                        "matmul" => "for a @ b, the last axis of a must equal the second-to-last axis of b \
                                     (the only axis of a vector)"
                            .to_string(),
                        "concat" => "concat joins tensors that agree on every axis but the joined one".to_string(),
                        "matmul batch" => "the batch axes of a @ b (all but the last two) broadcast like numpy: \
                                           aligned from the right, equal or 1"
                            .to_string(),
                        _ => "numpy broadcasting: aligned from the right, dimensions must be equal or 1".to_string(),
                    })
            }
            _ => {
                let refs: Vec<&Shape> = shapes.iter().collect();
                let mut d = Diagnostic::new("E-shape", format!("{what}: {}", err.message(&self.g, &refs)));
                let operand_labels: Vec<(Span, String)> = operands
                    .iter()
                    .enumerate()
                    .map(|(i, (_, s))| (*s, format!("input {} is {}", i + 1, self.g.shape_str(&shapes[i]))))
                    .collect();
                if operand_labels.iter().all(|(s, _)| *s == span) || self.span_override.is_some() {
                    let texts: Vec<String> = operand_labels.into_iter().map(|(_, t)| t).collect();
                    d = d.label(
                        span,
                        if texts.is_empty() { "in this expression".to_string() } else { texts.join("; ") },
                    );
                } else {
                    d = d.label(span, "in this expression");
                    for (s, t) in operand_labels {
                        if s != span {
                            d = d.label(s, t);
                        }
                    }
                }
                d
            }
        };
        self.report(d);
        Value::Error
    }

    /// A tensor node for a value (numbers become constants; lists become literals).
    pub(super) fn tensor(&mut self, v: Value, span: Span) -> Option<NodeId> {
        match v {
            Value::Tensor(id) => Some(id),
            Value::Num(n) => Some(self.g.constant(n)),
            Value::Dim(d) => Some(self.g.push(crate::ir::graph::Node {
                op: Op::DimSize { dim: d },
                inputs: vec![],
                shape: vec![],
                name: None,
                span: Some(span),
            })),
            Value::List(_) => match literal_tensor(&v) {
                Some(t) => {
                    let shape = t.shape.iter().map(|&n| Dim::Known(n)).collect();
                    Some(self.g.push(crate::ir::graph::Node {
                        op: Op::Literal { values: t.data.into() },
                        inputs: vec![],
                        shape,
                        name: None,
                        span: Some(span),
                    }))
                }
                None => {
                    self.error("E-type", span, "not a rectangular array of numbers", "expected e.g. [[1, 2], [3, 4]]");
                    None
                }
            },
            Value::Step(frame) => self.step_index(frame, span),
            Value::Error => None,
            other => {
                let what = describe_value(&other);
                self.error("E-type", span, format!("expected a tensor, found {what}"), format!("this is {what}"));
                None
            }
        }
    }

    pub(super) fn binary(&mut self, op: BinOp, a: (Value, Span), b: (Value, Span), span: Span) -> Value {
        // Arithmetic on compile-time numbers stays compile-time (sizes such as units * 2).
        if let (Value::Num(x), Value::Num(y)) = (&a.0, &b.0) {
            // A comparison of numbers is a compile-time truth value (`if heads > 1 { … }`).
            let truth = |b: bool| Value::Bool(b);
            match op {
                BinOp::Add => return Value::Num(x + y),
                BinOp::Sub => return Value::Num(x - y),
                BinOp::Mul => return Value::Num(x * y),
                BinOp::Div => return Value::Num(x / y),
                BinOp::Pow => return Value::Num(x.powf(*y)),
                BinOp::Greater => return truth(x > y),
                BinOp::Less => return truth(x < y),
                BinOp::GreaterEq => return truth(x >= y),
                BinOp::LessEq => return truth(x <= y),
                BinOp::Equal => return truth(x == y),
                BinOp::NotEqual => return truth(x != y),
                BinOp::MatMul => {}
            }
        }
        if matches!(a.0, Value::Error) || matches!(b.0, Value::Error) {
            return Value::Error;
        }
        let (Some(ta), Some(tb)) = (self.tensor(a.0, a.1), self.tensor(b.0, b.1)) else {
            return Value::Error;
        };
        let operands = [(ta, a.1), (tb, b.1)];
        let swapped = [(tb, b.1), (ta, a.1)];
        let prim = match op {
            BinOp::Add => Op::Add,
            BinOp::Sub => Op::Sub,
            BinOp::Mul => Op::Mul,
            BinOp::Div => Op::Div,
            BinOp::Pow => Op::Pow,
            // 0/1 masks; a < b is b > a, a <= b is b >= a, a != b is 1 − (a == b) (so NaN != NaN
            // is 1, as in numpy and torch, and every other comparison with NaN is 0).
            BinOp::Greater => Op::Greater,
            BinOp::GreaterEq => Op::GreaterEq,
            BinOp::Equal => Op::Equal,
            BinOp::Less => return self.node(Op::Greater, &swapped, span),
            BinOp::LessEq => return self.node(Op::GreaterEq, &swapped, span),
            BinOp::NotEqual => {
                let Value::Tensor(eq) = self.node(Op::Equal, &operands, span) else { return Value::Error };
                let one = self.g.constant(1.0);
                return self.node(Op::Sub, &[(one, span), (eq, span)], span);
            }
            BinOp::MatMul => {
                return match lower::matmul(&mut self.g, ta, tb) {
                    Ok(id) => {
                        self.g.annotate(id, None, Some(span));
                        Value::Tensor(id)
                    }
                    Err(e) => self.shape_error(e, "matmul", &operands, span),
                };
            }
        };
        self.node(prim, &operands, span)
    }

    /// `base[items]`: an element or a slice of a list (`x.shape[-1]`, `x.shape[1:]`), or a
    /// tensor indexed, sliced and gathered axis by axis (`lower::index`).
    pub(super) fn index(&mut self, base: &Expr, items: &[IndexItem], span: Span) -> Value {
        let b = self.expr(base);
        if let Value::List(list) = b {
            return self.index_list(list, items, span);
        }
        let Some(x) = self.tensor(b, base.span) else { return Value::Error };
        let rank = self.g.shape(x).len();
        let ellipses: Vec<Span> =
            items.iter().filter(|i| matches!(i, IndexItem::Ellipsis(_))).map(|i| i.span()).collect();
        if ellipses.len() > 1 {
            return self.error("E-type", ellipses[1], "an index has at most one `...`", "a second `...`");
        }
        let mut out = vec![];
        // A loop variable among the items (`x[t]`, `x[:, t]`): its position in `out`, its
        // loop, its span.
        let mut step: Option<(usize, usize, Span)> = None;
        for item in items {
            match item {
                IndexItem::At(e) => match self.expr(e) {
                    Value::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => out.push(lower::Index::At(n as i64)),
                    Value::Step(frame) if step.is_none() => step = Some((out.len(), frame, e.span)),
                    Value::Step(_) => {
                        return self.error("E-type", e.span, "a tensor takes one loop index", "a second one")
                    }
                    Value::Error => return Value::Error,
                    Value::Num(n) => {
                        return self.error("E-type", e.span, "an index must be a whole number", format!("{n} is not"))
                    }
                    v @ (Value::Tensor(_) | Value::List(_)) => {
                        let Some(idx) = self.tensor(v, e.span) else { return Value::Error };
                        if !self.is_integer(idx) {
                            return self.not_an_index(idx, e.span);
                        }
                        out.push(lower::Index::Take(idx));
                    }
                    other => {
                        let what = describe_value(&other);
                        return self.error("E-type", e.span, format!("{what} cannot index a tensor"), "here");
                    }
                },
                IndexItem::Slice { start, stop, step, .. } => {
                    let mut bound = |b: &Option<Expr>| -> Result<Option<i64>, ()> {
                        let Some(e) = b else { return Ok(None) };
                        match self.expr(e) {
                            Value::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => Ok(Some(n as i64)),
                            Value::Error => Err(()),
                            other => {
                                let what = describe_value(&other);
                                self.error(
                                    "E-type",
                                    e.span,
                                    "slice bounds are whole numbers known when the file is checked",
                                    format!("this is {what}"),
                                );
                                Err(())
                            }
                        }
                    };
                    let (Ok(start), Ok(stop), Ok(step)) = (bound(start), bound(stop), bound(step)) else {
                        return Value::Error;
                    };
                    out.push(lower::Index::Range { start, stop, step: step.unwrap_or(1) });
                }
                IndexItem::Ellipsis(_) => {
                    let whole = lower::Index::Range { start: None, stop: None, step: 1 };
                    out.extend(std::iter::repeat_n(whole, (rank + 1).saturating_sub(items.len())));
                }
            }
        }
        let result = match step {
            None => lower::index(&mut self.g, x, &out),
            Some((at, frame, step_span)) => {
                let text = format!("{}[{}]", self.text(base.span), self.text(step_span));
                match self.step_index_items(x, &out, at, frame, &text, base.span, step_span) {
                    Some(r) => r,
                    None => return Value::Error,
                }
            }
        };
        match result {
            Ok(id) => {
                self.g.annotate(id, None, Some(span));
                Value::Tensor(id)
            }
            Err(e) => self.shape_error(e, "indexing", &[(x, base.span)], span),
        }
    }

    /// `x[items]` where item `at` is the variable of the loop `frames[frame]`: the items before
    /// it index the whole tensor (`lower::index` leaves the later axes whole), the loop variable
    /// then takes the step's slice along the next axis left (a per-step input of the loop, not a
    /// copy), and the items after it index that slice. `None` when reported.
    #[allow(clippy::too_many_arguments)]
    fn step_index_items(
        &mut self,
        x: NodeId,
        items: &[lower::Index],
        at: usize,
        frame: usize,
        text: &str,
        base_span: Span,
        step_span: Span,
    ) -> Option<Result<NodeId, ShapeError>> {
        let (before, after) = items.split_at(at);
        let mut cur = x;
        if !before.is_empty() {
            cur = match lower::index(&mut self.g, cur, before) {
                Ok(id) => id,
                Err(e) => return Some(Err(e)),
            };
        }
        // The axis of `cur` the loop walks: an integer drops its axis, a slice keeps it, a
        // tensor of indices puts its own axes there.
        let axis = before
            .iter()
            .map(|i| match i {
                lower::Index::At(_) => 0,
                lower::Index::Range { .. } => 1,
                lower::Index::Take(idx) => self.g.shape(*idx).len(),
            })
            .sum();
        cur = self.step_slice(frame, cur, axis, text, base_span, step_span)?;
        if after.is_empty() {
            return Some(Ok(cur));
        }
        let whole = lower::Index::Range { start: None, stop: None, step: 1 };
        let rest: Vec<lower::Index> = std::iter::repeat_n(whole, axis).chain(after.iter().cloned()).collect();
        Some(lower::index(&mut self.g, cur, &rest))
    }

    /// The diagnostic for a tensor of floats used as indices.
    pub(super) fn not_an_index(&mut self, idx: NodeId, span: Span) -> Value {
        let shape = self.g.shape_str(self.g.shape(idx));
        self.report(
            Diagnostic::new("E-type", "indices must be whole numbers, and this tensor holds floats")
                .label(span, format!("this is a float tensor {shape}"))
                .help("declare the model input that holds indices as integer: `tokens: [B, T] int`")
                .note("integer tensors are inputs declared `int`, literals of whole numbers, and what indexing and reshaping make of them"),
        );
        Value::Error
    }

    /// An element (`shape[-1]`) or a slice (`shape[1:]`) of a list.
    fn index_list(&mut self, items: Vec<Value>, index: &[IndexItem], span: Span) -> Value {
        let [item] = index else { return self.error("E-type", span, "a list takes one index", "here") };
        let n = items.len() as i64;
        let whole = |v: Value| match v {
            Value::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => Some(x as i64),
            _ => None,
        };
        match item {
            IndexItem::At(e) => {
                let v = self.expr(e);
                if matches!(v, Value::Error) {
                    return Value::Error;
                }
                let Some(i) = whole(v) else {
                    return self.error("E-type", e.span, "an index must be a whole number", "here");
                };
                let j = if i < 0 { i + n } else { i };
                if j < 0 || j >= n {
                    return self.error(
                        "E-shape",
                        e.span,
                        format!("index {i} is out of range for a list of {n}"),
                        "out of range",
                    );
                }
                self.copy(&items[j as usize], e.span)
            }
            IndexItem::Slice { start, stop, step, span: s } => {
                let mut part = |b: &Option<Expr>| b.as_ref().map(|e| (self.expr(e), e.span));
                let parts = [part(start), part(stop), part(step)];
                let mut bounds = [None; 3];
                for (k, p) in parts.into_iter().enumerate() {
                    if let Some((v, vs)) = p {
                        match whole(v) {
                            Some(b) => bounds[k] = Some(b),
                            None => return self.error("E-type", vs, "slice bounds are whole numbers", "here"),
                        }
                    }
                }
                match lower::slice_range(items.len(), bounds[0], bounds[1], bounds[2].unwrap_or(1)) {
                    Ok((first, count)) => {
                        let step = bounds[2].unwrap_or(1);
                        Value::List((0..count as i64).map(|i| items[(first + i * step) as usize].clone()).collect())
                    }
                    Err(e) => self.error("E-shape", *s, format!("this slice of a list of {n} {e}"), "here"),
                }
            }
            IndexItem::Ellipsis(s) => self.error("E-type", *s, "`...` indexes tensors, not lists", "here"),
        }
    }

    pub(super) fn field(&mut self, base: &Expr, field: &Ident, span: Span) -> Value {
        // `fc1.W` names the parameter W of the layer instance fc1.
        if let ExprKind::Name(n) = &base.kind {
            let q = format!("{n}.{}", field.name);
            if let Some(id) = self.params_by_name.get(&q) {
                return Value::Tensor(*id);
            }
        }
        let b = self.expr(base);
        match (b, field.name.as_str()) {
            (Value::Error, _) => Value::Error,
            (Value::Tensor(t), "shape") => Value::List(
                self.g
                    .shape(t)
                    .iter()
                    .map(|&d| match d {
                        Dim::Known(n) => Value::Num(n as f64),
                        d => Value::Dim(d),
                    })
                    .collect(),
            ),
            (Value::Tensor(t), "T") => {
                if self.g.shape(t).len() != 2 {
                    let s = self.g.shape_str(self.g.shape(t));
                    return self.error("E-shape", span, ".T transposes a matrix", format!("this is {s}"));
                }
                self.node(Op::Transpose { perm: vec![1, 0] }, &[(t, base.span)], span)
            }
            // torch's `.mT`: the last two axes swapped, the leading (batch) axes kept.
            (Value::Tensor(t), "mT") => {
                let rank = self.g.shape(t).len();
                if rank < 2 {
                    let s = self.g.shape_str(self.g.shape(t));
                    return self.error("E-shape", span, ".mT swaps the last two axes", format!("this is {s}"));
                }
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(rank - 2, rank - 1);
                self.node(Op::Transpose { perm }, &[(t, base.span)], span)
            }
            (Value::Tensor(_), other) => {
                let mut candidates: Vec<String> = self.params_by_name.keys().cloned().collect();
                candidates.sort(); // ties do not depend on hash order
                let mut d = Diagnostic::new("E-name", format!("a tensor has no field `{other}`"))
                    .label(field.span, "unknown field")
                    .note("tensors have `.shape`, `.T` and `.mT`; a layer's parameters are `name.W` where `let name = layer(...)`");
                let q = format!("{}.{other}", self.text(base.span));
                if let Some(s) = nearest(&q, candidates.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                self.report(d);
                Value::Error
            }
            (other, _) => {
                let what = describe_value(&other);
                self.error("E-type", base.span, format!("{what} has no fields"), format!("this is {what}"))
            }
        }
    }

    /// `grad(f, wrt: x)`: the gradient of the scalar `f` with respect to `x` (or a list of
    /// gradients for `wrt: [x, y]`), appended to the graph by `autodiff` like any value, so
    /// it can enter a loss and be differentiated again.
    pub(super) fn grad_expr(&mut self, of: &Expr, wrt: &Expr, span: Span) -> Value {
        let f = self.expr(of);
        let w = self.expr(wrt);
        let Some(f) = self.tensor(f, of.span) else { return Value::Error };
        if !self.g.shape(f).is_empty() {
            let s = self.g.shape_str(self.g.shape(f));
            return self.error(
                "E-shape",
                of.span,
                "grad needs a scalar",
                format!("this is {s}; take sum(...) or mean(...) of it"),
            );
        }
        let (targets, listed) = match w {
            Value::Tensor(id) => (vec![id], false),
            Value::List(items) => {
                let mut ids = vec![];
                for item in items {
                    match item {
                        Value::Tensor(id) => ids.push(id),
                        Value::Error => return Value::Error,
                        other => {
                            let what = describe_value(&other);
                            return self.error(
                                "E-type",
                                wrt.span,
                                format!("cannot take a gradient with respect to {what}"),
                                "a list of tensors is expected",
                            );
                        }
                    }
                }
                (ids, true)
            }
            Value::Error => return Value::Error,
            other => {
                let what = describe_value(&other);
                return self.error(
                    "E-type",
                    wrt.span,
                    format!("cannot take a gradient with respect to {what}"),
                    "`wrt` names a tensor that the value is computed from",
                );
            }
        };
        match crate::ir::autodiff::differentiate(&mut self.g, f, &targets) {
            Ok(grads) => {
                for &d in &grads {
                    self.g.annotate(d, None, Some(span));
                }
                if listed {
                    Value::List(grads.into_iter().map(Value::Tensor).collect())
                } else {
                    Value::Tensor(grads[0])
                }
            }
            Err(e) => self.error("E-grad", span, format!("cannot differentiate: {e}"), "here"),
        }
    }
}
