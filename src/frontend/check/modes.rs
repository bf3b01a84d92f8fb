//! Training and inference modes: `if training`, `state` and its updates (`<-`), and random
//! numbers, which exist only in training mode.
//!
//! A model is elaborated once per mode it is used in: its train step in training mode, its
//! forward pass for evaluation, prediction, eval blocks and `netc build` in inference mode.
//! In `if training { A } else { B }` the branch of the current mode goes into the graph; the
//! other is elaborated as well, in its own mode, so that its errors are reported and its
//! shape can be compared, and is then rolled back (the graph only grows, so rolling back is
//! truncating it to a `Mark`). Parameters and state cannot be declared inside such a branch:
//! both programs must have the same parameters, in the same order.

use std::collections::HashMap;

use super::*;
use crate::ir::graph::ParamKind;

/// The sizes of everything elaboration appends to, to roll back to.
pub(super) struct Mark {
    nodes: usize,
    inputs: usize,
    params: usize,
    symbols: usize,
    updates: usize,
    random_key: Option<NodeId>,
    streams: u32,
    /// Layer instances: their records and the counters that name them (`dense_2`), so a
    /// rolled-back branch leaves no record and takes no name.
    layers: usize,
    instance_counts: HashMap<String, usize>,
}

impl<'p> Checker<'p> {
    pub(super) fn mark(&self) -> Mark {
        Mark {
            nodes: self.g.nodes.len(),
            inputs: self.g.inputs.len(),
            params: self.g.params.len(),
            symbols: self.g.symbols.len(),
            updates: self.updates.len(),
            random_key: self.random_key,
            streams: self.streams,
            layers: self.layers.len(),
            instance_counts: self.instance_counts.clone(),
        }
    }

    /// Forget everything elaborated since `m` (diagnostics stay).
    pub(super) fn rollback(&mut self, m: Mark) {
        if self.g.params.len() > m.params {
            // (Only an error path declares parameters where they are rolled back.)
            self.params_by_name.retain(|_, id| id.index() < m.nodes);
        }
        self.g.nodes.truncate(m.nodes);
        self.g.inputs.truncate(m.inputs);
        self.g.params.truncate(m.params);
        self.g.symbols.truncate(m.symbols);
        self.updates.truncate(m.updates);
        self.random_key = m.random_key;
        self.streams = m.streams;
        self.layers.truncate(m.layers);
        self.instance_counts = m.instance_counts;
    }

    /// `name` is the built-in `training` (not a user's name that shadows it).
    pub(super) fn names_the_mode(&self, name: &str) -> bool {
        name == "training"
            && self.scopes.iter().all(|s| !s.contains_key(name))
            && !self.fn_names.contains_key(name)
            && !self.model_names.contains_key(name)
            && !self.params_by_name.contains_key(name)
    }

    /// `if cond { then } else { otherwise }`.
    pub(super) fn if_expr(&mut self, cond: &Expr, then: &[Stmt], otherwise: Option<&[Stmt]>, span: Span) -> Value {
        if let ExprKind::Name(n) = &cond.kind {
            if self.names_the_mode(n) {
                return self.if_training(then, otherwise, span);
            }
        }
        // Any other condition is a compile-time boolean: only the branch taken is elaborated
        // (the other may not even make sense for these arguments, e.g. `if bias { x + b }`).
        match self.expr(cond) {
            Value::Bool(true) => self.branch(then, span).0,
            Value::Bool(false) => otherwise.map_or(Value::Nothing, |b| self.branch(b, span).0),
            Value::Error => Value::Error,
            other => {
                let what = describe_value(&other);
                self.error(
                    "E-type",
                    cond.span,
                    "an `if` condition must be known at compile time",
                    format!("this is {what}; expected `training`, `true` or `false`"),
                )
            }
        }
    }

    /// `if training`: the branch of the current mode, after the other one was checked in its
    /// own mode and rolled back. Tensor results of the two branches must have the same shape.
    fn if_training(&mut self, then: &[Stmt], otherwise: Option<&[Stmt]>, span: Span) -> Value {
        self.mode_used = true;
        let now = self.training;
        let (taken, other) = if now { (Some(then), otherwise) } else { (otherwise, Some(then)) };
        self.mode_branches += 1;
        let mark = self.mark();
        self.training = !now;
        let other = other.map(|b| self.branch(b, span));
        let other = other.map(|(v, s)| (self.result_shape(&v), s));
        self.training = now;
        self.rollback(mark);
        let taken = taken.map(|b| self.branch(b, span));
        self.mode_branches -= 1;
        let Some((value, taken_span)) = taken else { return Value::Nothing };
        if let (Some(a), Some((Some(b), other_span))) = (self.result_shape(&value), other) {
            if a != b {
                let (a, b) = (self.g.shape_str(&a), self.g.shape_str(&b));
                let (train, infer) =
                    if now { ((&a, taken_span), (&b, other_span)) } else { ((&b, other_span), (&a, taken_span)) };
                return self.report_branches(train, infer);
            }
        }
        value
    }

    fn report_branches(&mut self, train: (&String, Span), infer: (&String, Span)) -> Value {
        self.report(
            Diagnostic::new(
                "E-shape",
                format!("the branches of `if training` differ in shape: {} and {}", train.0, infer.0),
            )
            .label(train.1, format!("in training mode this is {}", train.0))
            .label(infer.1, format!("in inference mode this is {}", infer.0))
            .note("a model computes the same shapes in both modes"),
        );
        Value::Error
    }

    /// The shape of a tensor result; `None` for numbers and other values (a number fits any
    /// shape by broadcasting).
    fn result_shape(&self, v: &Value) -> Option<Shape> {
        match v {
            Value::Tensor(id) => Some(self.g.shape(*id).clone()),
            _ => None,
        }
    }

    /// A branch's statements in a scope of their own: (its value, the span of its last
    /// expression, or of the whole `if` when it has none).
    fn branch(&mut self, body: &[Stmt], if_span: Span) -> (Value, Span) {
        for stmt in body {
            if let Stmt::Return(e) = stmt {
                self.error(
                    "E-syntax",
                    e.span,
                    "`return` inside an `if` branch",
                    "a branch's value is its last expression: write it without `return`",
                );
            }
        }
        self.scopes.push(HashMap::new());
        let result = self.run_block(body);
        self.scopes.pop();
        result.unwrap_or((Value::Nothing, if_span))
    }

    /// `name <- value`: the value `name` (a state tensor) takes after a train step. Checked in
    /// both modes; kept only in training mode.
    pub(super) fn update(&mut self, target: &Ident, value: &Expr, span: Span) {
        self.mode_used = true;
        let state = match self.lookup(&target.name) {
            Some(Value::Tensor(id)) => match self.g.node(id).op {
                Op::Param { index } if self.g.params[index].kind == ParamKind::State => Some((index, id)),
                _ => None,
            },
            Some(Value::Error) => return,
            None => {
                self.unknown_name(&target.name, target.span);
                return;
            }
            Some(_) => None,
        };
        let Some((index, state)) = state else {
            self.report(
                Diagnostic::new("E-type", format!("`{}` is not a state tensor", target.name))
                    .label(target.span, "cannot be updated with `<-`")
                    .note("`<-` gives the new value of a tensor declared with `state NAME: [shape]`; parameters change by their gradients"),
            );
            return;
        };
        let mark = self.mark();
        let v = self.expr(value);
        let Some(mut t) = self.tensor(v, value.span) else { return };
        let want = self.g.shape(state).clone();
        let got = self.g.shape(t).clone();
        if got != want {
            // A value that broadcasts to the state's shape (a number, a row) fills it.
            match crate::ir::ops::broadcast_shapes(&got, &want) {
                Ok(s) if s == want => match self.g.add(Op::Broadcast { shape: want.clone() }, &[t]) {
                    Ok(b) => t = b,
                    Err(_) => return,
                },
                _ => {
                    let (g_s, w_s) = (self.g.shape_str(&got), self.g.shape_str(&want));
                    self.report(
                        Diagnostic::new(
                            "E-shape",
                            format!("the new value of `{}` is {g_s}, the state is {w_s}", target.name),
                        )
                        .label(value.span, format!("this is {g_s}"))
                        .label(target.span, format!("`{}` is {w_s}", target.name)),
                    );
                    return;
                }
            }
        }
        if !self.training {
            // Inference never changes state: the update was checked, and is dropped.
            self.rollback(mark);
            return;
        }
        if let Some(&(_, _, first)) = self.updates.iter().find(|u| u.0 == index) {
            let name = self.g.params[index].name.clone();
            self.report(
                Diagnostic::new("E-duplicate", format!("state `{name}` is updated twice in one step"))
                    .label(span, "updated again here")
                    .label(first, "first updated here"),
            );
            return;
        }
        self.g.annotate(t, Some(&format!("new {}", self.g.params[index].name)), None);
        self.updates.push((index, t, span));
    }

    /// A tensor of uniform random numbers in [0, 1) of `shape`: a new stream of the run's
    /// generator. Training mode only.
    pub(super) fn random(&mut self, shape: Shape, what: &str, span: Span) -> Option<NodeId> {
        self.mode_used = true;
        if !self.training {
            self.report(
                Diagnostic::new("E-mode", format!("{what} draws random numbers, which exist only in training mode"))
                    .label(span, "drawn here, in inference mode")
                    .help("put it in the training branch of `if training { ... } else { ... }`"),
            );
            return None;
        }
        let key = match self.random_key {
            Some(k) => k,
            None => {
                let k =
                    self.g.add_input("rng", vec![Dim::Known(crate::ir::ops::random::KEY_LEN)], InputKind::RandomKey);
                self.random_key = Some(k);
                k
            }
        };
        let stream = self.streams;
        self.streams += 1;
        match self.node(Op::RandomUniform { stream, shape }, &[(key, span)], span) {
            Value::Tensor(id) => Some(id),
            _ => None,
        }
    }

    /// The state updates recorded so far, as a graph's `updates`.
    pub(super) fn graph_updates(&self) -> Vec<(usize, NodeId)> {
        self.updates.iter().map(|&(p, id, _)| (p, id)).collect()
    }
}
