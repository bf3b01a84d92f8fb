//! Loops: `for t in range(T) carry (h, c) { ... }` elaborated into one `Op::Loop`.
//!
//! The body is elaborated once, into the graph being built, with each carried name bound to
//! a *placeholder* (an `Input` node whose index is `PLACEHOLDER + key`, pushed with its shape)
//! and every `x[t]` to a placeholder for the step's slice of `x`. Shapes are therefore checked
//! once, for every step. Afterwards the nodes added since the loop began are split: those
//! that depend on one of the loop's placeholders form the body graph; the others (a layer's
//! parameters, a transposed weight) stay in the outer graph and reach the body as loop
//! invariants, so a layer called in the body has one set of parameters shared by every step.
//!
//! Nested loops work the same way from the inside out; placeholders are found by their key,
//! not their node id, because an inner loop's split renumbers the nodes after its start.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::ir::graph::{LoopSpec, Node, ParamKind, Slicing};

/// Placeholder `k` is the node `Op::Input { index: PLACEHOLDER + k }`. It never reaches a
/// checked graph: the loop's split turns it into an input of the body.
pub(super) const PLACEHOLDER: usize = 1 << 40;

/// A loop whose body is being elaborated.
pub(super) struct LoopFrame {
    count: usize,
    /// The index of the first step (`range(start, stop)`).
    start: usize,
    reverse: bool,
    checkpoint: Option<usize>,
    /// Number of nodes when the body began: the nodes from here on are the body's or new
    /// invariants.
    mark: usize,
    /// `self.scopes[scope]` is the body's scope, in the stack of scopes `scope_stack`
    /// (a function called in the body has a stack of its own).
    scope: usize,
    scope_stack: usize,
    /// Carried names and their placeholder keys (`None` for a carry whose initial value is
    /// an error).
    carries: Vec<(String, Option<usize>)>,
    /// Per-step inputs: (the outer tensor, placeholder key, placeholder node, the axis the
    /// steps walk along).
    sliced: Vec<(NodeId, usize, NodeId, Slicing)>,
    /// The step index as a scalar tensor (`t` in arithmetic), once asked for.
    index_value: Option<NodeId>,
    /// `yield name = value`: (name, value, stacking, span).
    yields: Vec<(Ident, NodeId, Slicing)>,
    /// The span of the last rebinding of each carried name.
    rebound: HashMap<String, Span>,
}

/// What `range(...)` says.
struct Range {
    count: usize,
    start: usize,
    reverse: bool,
    /// `checkpoint: k`: differentiate in chunks of k steps (`ir::checkpoint`).
    checkpoint: Option<usize>,
}

/// What `Checker::rollback` restores of the loops being elaborated: a rolled-back branch
/// (`if training`) may have sliced tensors for a loop around it (`x[t]`) or asked for its
/// index, and those placeholders are gone with the branch's nodes.
pub(super) struct LoopMark {
    placeholders: usize,
    /// Per open loop: its per-step inputs, its index value, its yields.
    frames: Vec<(usize, Option<NodeId>, usize)>,
}

impl<'p> Checker<'p> {
    pub(super) fn loop_mark(&self) -> LoopMark {
        LoopMark {
            placeholders: self.placeholder_frames.len(),
            frames: self.frames.iter().map(|f| (f.sliced.len(), f.index_value, f.yields.len())).collect(),
        }
    }

    pub(super) fn loop_rollback(&mut self, m: LoopMark) {
        self.placeholder_frames.truncate(m.placeholders);
        for (f, (sliced, index_value, yields)) in self.frames.iter_mut().zip(m.frames) {
            f.sliced.truncate(sliced);
            f.index_value = index_value;
            f.yields.truncate(yields);
        }
    }

    /// The outer tensor that loop placeholder `key` is a step's slice of (`None` for a carry).
    pub(super) fn sliced_source(&self, key: usize) -> Option<NodeId> {
        self.frames.iter().flat_map(|f| &f.sliced).find(|s| s.1 == key).map(|s| s.0)
    }

    /// A `for` statement: elaborate the body and bind the carried names to their final values
    /// and each `yield` name to its stack.
    pub(super) fn for_loop(&mut self, f: &ForLoop) {
        let errors_before = self.diags.len();
        let range = self.loop_range(&f.range);
        let mut inits: Vec<(&Ident, Option<NodeId>)> = vec![];
        for c in &f.carries {
            if let Some((first, _)) = inits.iter().find(|(d, _)| d.name == c.name) {
                self.report(
                    Diagnostic::new("E-duplicate", format!("`{}` is carried twice", c.name))
                        .label(c.span, "again here")
                        .label(first.span, "first here"),
                );
                continue;
            }
            let init = match self.lookup(&c.name) {
                Some(Value::Error) => None,
                Some(v @ (Value::Tensor(_) | Value::Num(_))) => self.tensor(v, c.span),
                Some(other) => {
                    let what = describe_value(&other);
                    self.error(
                        "E-type",
                        c.span,
                        format!("`{}` is {what}; a loop carries tensors", c.name),
                        format!("this is {what}"),
                    );
                    None
                }
                None => {
                    self.unknown_name(&c.name, c.span);
                    None
                }
            };
            inits.push((c, init));
        }

        // The body, with carried names bound to placeholders.
        let frame = self.frames.len();
        self.frames.push(LoopFrame {
            count: range.as_ref().map_or(1, |r| r.count),
            start: range.as_ref().map_or(0, |r| r.start),
            reverse: range.as_ref().is_some_and(|r| r.reverse),
            checkpoint: range.as_ref().and_then(|r| r.checkpoint),
            mark: self.g.nodes.len(),
            scope: self.scopes.len(),
            scope_stack: self.scope_stack,
            carries: vec![],
            sliced: vec![],
            index_value: None,
            yields: vec![],
            rebound: HashMap::new(),
        });
        self.scopes.push(HashMap::new());
        for (c, init) in &inits {
            // A carry whose initial value failed is still carried (as poison), so that its
            // rebinding in the body is not reported again.
            let (key, v) = match init {
                Some(id) => {
                    let shape = self.g.shape(*id).clone();
                    let (key, node) = self.placeholder(shape, &c.name, c.span);
                    (Some(key), Value::Tensor(node))
                }
                None => (None, Value::Error),
            };
            self.frames[frame].carries.push((c.name.clone(), key));
            self.bind(&c.name, v);
        }
        self.bind(&f.var.name, Value::Step(frame));
        self.loop_body(&f.body);
        // A carry rebound to a loop variable (`let c = t`) takes the step's index: made a
        // tensor here, while the loop's frame still exists.
        for (c, _) in &inits {
            if let Some(&Value::Step(step)) = self.scopes.last().and_then(|scope| scope.get(&c.name)) {
                let at = self.frames[frame].rebound.get(&c.name).copied().unwrap_or(c.span);
                let v = self.step_index(step, at).map_or(Value::Error, Value::Tensor);
                self.bind(&c.name, v);
            }
        }
        let scope = self.scopes.pop().unwrap_or_default();
        let frame = self.frames.pop().expect("the loop's frame");

        // The new value of each carry must keep its shape.
        let mut news = vec![];
        for (c, init) in &inits {
            let (Some(init), Some(v)) = (init, scope.get(&c.name)) else { continue };
            let Some(new) = self.tensor(v.clone(), c.span) else { continue };
            let (before, after) = (self.g.shape(*init).clone(), self.g.shape(new).clone());
            if before != after {
                let at = frame.rebound.get(&c.name).copied().unwrap_or(c.span);
                let (b, a) = (self.g.shape_str(&before), self.g.shape_str(&after));
                self.report(
                    Diagnostic::new("E-shape", format!("the carried value `{}` changes shape in the loop", c.name))
                        .label(at, format!("this is {a}"))
                        .label(c.span, format!("carried as {b}"))
                        .note("a carried value keeps its shape from step to step"),
                );
            }
            news.push(new);
        }
        let failed = self.diags.len() > errors_before || range.is_none() || news.len() != inits.len();
        if failed {
            // Already reported: poison what the loop would have bound.
            for c in &f.carries {
                self.bind(&c.name, Value::Error);
            }
            for (name, _, _) in &frame.yields {
                self.bind(&name.name, Value::Error);
            }
            return;
        }
        let frame_yields: Vec<Ident> = frame.yields.iter().map(|y| y.0.clone()).collect();
        match self.build_loop(frame, &inits.iter().map(|i| i.1.expect("checked")).collect::<Vec<_>>(), &news) {
            Ok((results, names)) => {
                let spans = f.carries.iter().map(|c| c.span).chain(frame_yields.iter().map(|y| y.span));
                for (name, span) in names.iter().zip(spans) {
                    self.check_rebinding(name, span);
                }
                for (name, id) in names.iter().zip(results) {
                    self.g.annotate(id, Some(name), Some(f.span));
                    self.bind(name, Value::Tensor(id));
                }
            }
            Err(e) => {
                self.error("E-loop", f.span, format!("this loop cannot be built: {e}"), "in this loop");
            }
        }
    }

    /// The statements of a loop body: `let` (rebinding a carried name sets its next value),
    /// `param`, nested `for`, and `yield`.
    fn loop_body(&mut self, body: &[Stmt]) {
        for stmt in body {
            match stmt {
                Stmt::Let { name, value } => {
                    self.check_rebinding(&name.name, name.span);
                    self.let_stmt(name, value);
                    let frame = self.frames.last_mut().expect("in a loop");
                    if frame.carries.iter().any(|(c, _)| *c == name.name) {
                        frame.rebound.insert(name.name.clone(), value.span);
                    }
                }
                Stmt::LetList { names, value, span } => {
                    for name in names {
                        self.check_rebinding(&name.name, name.span);
                    }
                    let v = self.expr(value);
                    self.let_list(names, v, value.span, *span);
                    let frame = self.frames.last_mut().expect("in a loop");
                    for name in names.iter().filter(|n| frame.carries.iter().any(|(c, _)| *c == n.name)) {
                        frame.rebound.insert(name.name.clone(), name.span);
                    }
                }
                Stmt::Param { name, ty, init, span } => {
                    self.param(name, ty, init.as_ref(), *span, ParamKind::Trainable)
                }
                Stmt::State { name, ty, init, span } => self.param(name, ty, init.as_ref(), *span, ParamKind::State),
                Stmt::Update { span, .. } => {
                    self.error(
                        "E-loop",
                        *span,
                        "a state update (`<-`) cannot be inside a loop body",
                        "its new value would change from step to step: yield the steps' values and update after the loop",
                    );
                }
                Stmt::For(f) => self.for_loop(f),
                Stmt::Yield { name, value, options, span } => self.yield_stmt(name, value, options, *span),
                Stmt::Expr(e) | Stmt::Return(e) => {
                    self.error(
                        "E-syntax",
                        e.span,
                        "a loop body has no result",
                        "bind the step's values with `let` (a carried name) or `yield`",
                    );
                }
                Stmt::Grad { span, .. } => {
                    self.error("E-syntax", *span, "`grad ... wrt` belongs in an eval block", "not in a loop");
                }
                Stmt::Setting { key, .. } => {
                    self.error("E-syntax", key.span, "a `key: value` setting belongs in a data or train block", "here");
                }
                Stmt::Error => {}
            }
        }
    }

    /// In a loop body, binding a name that was bound before the loop and is not carried
    /// would change it for this step only, which is never what was meant: an error.
    fn check_rebinding(&mut self, name: &str, span: Span) {
        let Some(frame) = self.frames.last() else { return };
        // In a function called from the body, names are the function's own.
        if frame.scope_stack != self.scope_stack || frame.scope > self.scopes.len() {
            return;
        }
        let carried = frame.carries.iter().any(|(c, _)| c == name);
        let outer = self.scopes[..frame.scope].iter().any(|s| s.contains_key(name));
        if outer && !carried {
            self.report(
                Diagnostic::new("E-loop", format!("`{name}` is bound before the loop but not carried"))
                    .label(span, "rebound here, for this step only")
                    .help(format!("to pass it from step to step, add it to the loop's `carry ({name})`"))
                    .note("or give the step's value another name"),
            );
        }
    }

    /// `yield name = value` (`, axis: k`): the step's value, stacked over the steps along axis
    /// k of `name` (1 by default, so a per-step [B, H] gives [B, T, H]; 0 for a scalar).
    fn yield_stmt(&mut self, name: &Ident, value: &Expr, options: &[Arg], span: Span) {
        let v = self.expr(value);
        let Some(id) = self.tensor(v, value.span) else { return };
        let rank = self.g.shape(id).len();
        let mut axis = if rank == 0 { 0 } else { 1 };
        for opt in options {
            let key = opt.name.as_ref().map_or("", |n| n.name.as_str());
            if key != "axis" {
                self.error("E-arity", opt.value.span, "`yield` takes one option, `axis: k`", "unknown option");
                return;
            }
            match self.expr(&opt.value) {
                Value::Num(n) if n.fract() == 0.0 && n >= 0.0 && n as usize <= rank => axis = n as usize,
                Value::Num(n) if n.fract() == 0.0 && n < 0.0 && (-n) as usize <= rank + 1 => {
                    axis = (rank as f64 + 1.0 + n) as usize
                }
                Value::Error => return,
                _ => {
                    self.error(
                        "E-type",
                        opt.value.span,
                        format!("the stacking axis must be a whole number from 0 to {rank}"),
                        format!("the yielded value has {rank} axes"),
                    );
                    return;
                }
            }
        }
        let frame = self.frames.last_mut().expect("in a loop");
        if let Some((first, _, _)) = frame.yields.iter().find(|(n, _, _)| n.name == name.name) {
            let first = first.span;
            self.report(
                Diagnostic::new("E-duplicate", format!("`{}` is yielded twice", name.name))
                    .label(name.span, "again here")
                    .label(first, "first here"),
            );
            return;
        }
        if frame.carries.iter().any(|(c, _)| *c == name.name) {
            self.error(
                "E-duplicate",
                name.span,
                format!("`{}` is carried; its stack needs another name", name.name),
                "e.g. `yield hs = h`",
            );
            return;
        }
        frame.yields.push((name.clone(), id, Slicing::along(axis)));
        let _ = span;
    }

    /// `range(T)`, `range(start, stop)`, `reversed(...)` of one of them.
    fn loop_range(&mut self, e: &Expr) -> Option<Range> {
        let form = "a loop runs over `range(T)`, `range(start, stop)` or `reversed(range(T))`";
        let ExprKind::Call { callee, args } = &e.kind else {
            return self.refuse("E-loop", e.span, form, "not a range");
        };
        let ExprKind::Name(name) = &callee.kind else {
            return self.refuse("E-loop", e.span, form, "not a range");
        };
        match name.as_str() {
            "reversed" => {
                let [Arg { name: None, value }] = &args[..] else {
                    return self.refuse("E-loop", e.span, form, "`reversed` takes one range");
                };
                let inner = self.loop_range(value)?;
                Some(Range { reverse: !inner.reverse, ..inner })
            }
            "range" => {
                let mut bounds = vec![];
                let mut reverse = false;
                let mut checkpoint = None;
                for a in args {
                    let v = self.expr(&a.value);
                    match a.name.as_ref().map(|n| n.name.as_str()) {
                        None => bounds.push(self.step_bound(v, a.value.span)?),
                        Some("checkpoint") => match v {
                            Value::Num(n) if n >= 1.0 && n.fract() == 0.0 => checkpoint = Some(n as usize),
                            Value::Error => return None,
                            other => {
                                let what = describe_value(&other);
                                return self.refuse(
                                    "E-type",
                                    a.value.span,
                                    "`checkpoint` is a whole number of steps, at least 1",
                                    format!("this is {what}"),
                                );
                            }
                        },
                        Some("reverse") => match v {
                            Value::Bool(b) => reverse = b,
                            Value::Error => return None,
                            other => {
                                let what = describe_value(&other);
                                return self.refuse(
                                    "E-type",
                                    a.value.span,
                                    "`reverse` is true or false",
                                    format!("this is {what}"),
                                );
                            }
                        },
                        Some(_) => {
                            let span = a.name.as_ref().map_or(a.value.span, |n| n.span);
                            return self.refuse(
                                "E-arity",
                                span,
                                "`range` takes one or two numbers, `reverse: true` or `false`, and `checkpoint: k`",
                                "unknown option",
                            );
                        }
                    }
                }
                let (start, stop) = match bounds[..] {
                    [stop] => (0, stop),
                    [start, stop] => (start, stop),
                    _ => return self.refuse("E-arity", e.span, "`range` takes one or two numbers", "here"),
                };
                if stop <= start {
                    let written =
                        if bounds.len() == 1 { format!("range({stop})") } else { format!("range({start}, {stop})") };
                    return self.refuse(
                        "E-loop",
                        e.span,
                        "a loop needs at least one step",
                        format!("{written} is empty"),
                    );
                }
                Some(Range { count: stop - start, start, reverse, checkpoint })
            }
            _ => self.refuse("E-loop", e.span, form, "not a range"),
        }
    }

    /// A bound of a range: a whole number known at compile time.
    fn step_bound(&mut self, v: Value, span: Span) -> Option<usize> {
        match v {
            Value::Num(n) if n.fract() == 0.0 && n >= 0.0 && n < (1u64 << 40) as f64 => Some(n as usize),
            Value::Dim(d) => {
                let name = self.g.dim_name(d);
                self.error(
                    "E-loop",
                    span,
                    "the number of steps must be known at compile time",
                    format!("this is the symbolic dimension {name}, bound at run time"),
                );
                None
            }
            Value::Error => None,
            other => {
                let what = describe_value(&other);
                self.error("E-type", span, "a range bound must be a whole number", format!("this is {what}"));
                None
            }
        }
    }

    /// A new placeholder of `shape` in the innermost loop: (key, node).
    fn placeholder(&mut self, shape: Shape, name: &str, span: Span) -> (usize, NodeId) {
        let key = self.placeholder_frames.len();
        self.placeholder_frames.push(self.frames.len() - 1);
        let node = Node {
            op: Op::Input { index: PLACEHOLDER + key },
            inputs: vec![],
            shape,
            name: Some(name.into()),
            span: Some(span),
        };
        (key, self.g.push(node))
    }

    /// The step's slice of `source` along `axis`, for the loop `frames[frame]` (`x[t]`,
    /// `x[:, t]`): a placeholder that the loop feeds with the slice at each step.
    pub(super) fn step_slice(
        &mut self,
        frame: usize,
        source: NodeId,
        axis: usize,
        text: &str,
        span: Span,
        index_span: Span,
    ) -> Option<NodeId> {
        if self.depends_on_loops(source, frame) {
            self.error(
                "E-loop",
                span,
                "`[t]` slices tensors computed before the loop",
                "this value changes from step to step",
            );
            return None;
        }
        let shape = self.g.shape(source).clone();
        let (count, start) = (self.frames[frame].count, self.frames[frame].start);
        let Some(&n) = shape.get(axis) else {
            let s = self.g.shape_str(&shape);
            return self.refuse("E-shape", span, format!("a loop index for axis {axis} of {s}"), "too many indices");
        };
        let Some(n) = n.known() else {
            let name = self.g.dim_name(n);
            return self.refuse(
                "E-shape",
                span,
                "the loop slices an axis of unknown size",
                format!("axis {axis} is {name}"),
            );
        };
        if n < start + count {
            self.report(
                Diagnostic::new(
                    "E-shape",
                    format!("the loop reads index {} of an axis of {n} elements", start + count - 1),
                )
                .label(span, format!("this is {}", self.g.shape_str(&shape)))
                .label(index_span, format!("runs from {start} to {}", start + count - 1)),
            );
            return None;
        }
        let source = if start == 0 && n == count {
            source
        } else {
            self.g.add(Op::Slice { axis, start, len: count, step: 1 }, &[source]).ok()?
        };
        let along = Slicing::along(axis);
        if let Some(&(_, _, node, _)) = self.frames[frame].sliced.iter().find(|s| s.0 == source && s.3 == along) {
            return Some(node);
        }
        let mut step_shape: Shape = shape.clone();
        step_shape.remove(axis);
        let (key, node) = self.placeholder_in(frame, step_shape, text, index_span);
        self.frames[frame].sliced.push((source, key, node, along));
        Some(node)
    }

    /// A placeholder of the loop `frames[frame]` (which may enclose the innermost one).
    fn placeholder_in(&mut self, frame: usize, shape: Shape, name: &str, span: Span) -> (usize, NodeId) {
        let key = self.placeholder_frames.len();
        self.placeholder_frames.push(frame);
        let node = Node {
            op: Op::Input { index: PLACEHOLDER + key },
            inputs: vec![],
            shape,
            name: Some(name.into()),
            span: Some(span),
        };
        (key, self.g.push(node))
    }

    /// The loop variable of `frames[frame]` as a scalar tensor: the step's slice of the
    /// indices `[start, start + T)`.
    pub(super) fn step_index(&mut self, frame: usize, span: Span) -> Option<NodeId> {
        if let Some(id) = self.frames[frame].index_value {
            return Some(id);
        }
        let (count, start) = (self.frames[frame].count, self.frames[frame].start);
        let values: Vec<f64> = (start..start + count).map(|i| i as f64).collect();
        let indices = self.g.push(Node {
            op: Op::Literal { values: values.into() },
            inputs: vec![],
            shape: vec![Dim::Known(count)],
            name: None,
            span: Some(span),
        });
        let (key, node) = self.placeholder_in(frame, vec![], "t", span);
        self.frames[frame].sliced.push((indices, key, node, Slicing::along(0)));
        self.frames[frame].index_value = Some(node);
        Some(node)
    }

    /// Whether `id` depends on a placeholder of `frames[frame]` or of a loop inside it.
    fn depends_on_loops(&self, id: NodeId, frame: usize) -> bool {
        let mark = self.frames[frame].mark;
        let mut seen = vec![false; self.g.nodes.len().saturating_sub(mark)];
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            if n.index() < mark || std::mem::replace(&mut seen[n.index() - mark], true) {
                continue;
            }
            let node = self.g.node(n);
            if let Op::Input { index } = node.op {
                if index >= PLACEHOLDER && self.placeholder_frames[index - PLACEHOLDER] >= frame {
                    return true;
                }
            }
            stack.extend(&node.inputs);
        }
        false
    }

    /// Split the nodes added since the loop began into its body and new invariants, and add
    /// the loop: one node per carry (its final value) and per yield (its stack). Returns
    /// those nodes and their names.
    fn build_loop(
        &mut self,
        frame: LoopFrame,
        inits: &[NodeId],
        news: &[NodeId],
    ) -> Result<(Vec<NodeId>, Vec<String>), String> {
        let mark = frame.mark;
        let tail: Vec<Node> = self.g.nodes.split_off(mark);
        let role = |node: &Node| -> Option<usize> {
            match node.op {
                Op::Input { index } if index >= PLACEHOLDER => Some(index - PLACEHOLDER),
                _ => None,
            }
        };
        // Body inputs: carries, per-step inputs, then invariants as they are met.
        let mut body = Graph::new(self.g.dtype);
        body.symbols = self.g.symbols.clone();
        let mut key_input: HashMap<usize, NodeId> = HashMap::new();
        for ((name, key), &init) in frame.carries.iter().zip(inits) {
            let shape = self.g.shape(init).clone();
            let key = key.ok_or("a carry without an initial value")?;
            key_input.insert(key, body.add_input(name, shape, InputKind::Variable));
        }
        for &(_, key, node, _) in &frame.sliced {
            let info = &tail[node.index() - mark];
            let name = info.name.clone().unwrap_or_else(|| "x[t]".into());
            key_input.insert(key, body.add_input(&name, info.shape.clone(), InputKind::Variable));
        }
        let mut invariants: Vec<NodeId> = vec![];
        let mut invariant_input: HashMap<NodeId, NodeId> = HashMap::new();
        let mut as_invariant = |body: &mut Graph, outer: NodeId, g: &Graph| -> NodeId {
            *invariant_input.entry(outer).or_insert_with(|| {
                invariants.push(outer);
                let name = g.node(outer).name.clone().unwrap_or_else(|| format!("{outer}"));
                body.add_input(&name, g.shape(outer).clone(), InputKind::Variable)
            })
        };

        // Each node: the body's if it depends on this loop's placeholders, else the outer graph's.
        let mut in_body: Vec<Option<NodeId>> = vec![None; tail.len()];
        let mut outer: Vec<Option<NodeId>> = vec![None; tail.len()];
        for (k, node) in tail.into_iter().enumerate() {
            if let Some(key) = role(&node).filter(|key| key_input.contains_key(key)) {
                in_body[k] = Some(key_input[&key]);
                continue;
            }
            let depends = node.inputs.iter().any(|x| x.index() >= mark && in_body[x.index() - mark].is_some());
            if depends {
                let mut inputs = vec![];
                for &x in &node.inputs {
                    inputs.push(match x.index().checked_sub(mark) {
                        Some(j) if in_body[j].is_some() => in_body[j].expect("checked"),
                        Some(j) => as_invariant(&mut body, outer[j].expect("earlier"), &self.g),
                        None => as_invariant(&mut body, x, &self.g),
                    });
                }
                in_body[k] = Some(body.push(Node { inputs, ..node }));
            } else {
                let inputs = node.inputs.iter().map(|&x| moved(x, mark, &outer)).collect();
                outer[k] = Some(self.g.push(Node { inputs, ..node }));
            }
        }
        // The body's outputs: new carries, then the yields.
        let mut value_of = |body: &mut Graph, g: &Graph, id: NodeId| -> NodeId {
            match id.index().checked_sub(mark) {
                Some(j) => in_body[j].unwrap_or_else(|| as_invariant(body, outer[j].expect("outer"), g)),
                None => as_invariant(body, id, g),
            }
        };
        let mut names = vec![];
        for ((name, _), &new) in frame.carries.iter().zip(news) {
            let id = value_of(&mut body, &self.g, new);
            body.outputs.push((name.clone(), id));
            names.push(name.clone());
        }
        for (name, id, _) in &frame.yields {
            let id = value_of(&mut body, &self.g, *id);
            body.outputs.push((name.name.clone(), id));
            names.push(name.name.clone());
        }

        // A state update computed in the body would change from step to step (a `<-` in a
        // layer called in the body, e.g. batchnorm's running statistics).
        if let Some(&(index, _, _)) =
            self.updates.iter().find(|u| u.1.index() >= mark && in_body[u.1.index() - mark].is_some())
        {
            return Err(format!(
                "state `{}` is updated in the loop's body, where its new value would change from step to step; update it after the loop",
                self.g.params[index].name
            ));
        }

        // Ids after the mark moved: fix what refers to them.
        let remap = |id: NodeId| moved(id, mark, &outer);
        for id in self.params_by_name.values_mut() {
            *id = remap(*id);
        }
        for u in &mut self.updates {
            u.1 = remap(u.1);
        }
        self.random_key = self.random_key.map(remap);
        // Layers called in the body: their nodes are the loop's now (counted by its record).
        for l in &mut self.layers {
            if l.nodes.start >= mark && l.nodes.end != usize::MAX {
                l.nodes = mark..mark;
            }
            l.output = l.output.and_then(|o| match o.index().checked_sub(mark) {
                Some(j) => outer[j],
                None => Some(o),
            });
        }
        for f in &mut self.frames {
            for s in &mut f.sliced {
                s.0 = remap(s.0);
                s.2 = remap(s.2);
            }
            f.index_value = f.index_value.map(remap);
        }

        let sliced = frame.sliced.iter().map(|s| s.3).collect();
        let stacked = frame.yields.iter().map(|y| y.2).collect();
        let spec = LoopSpec::new(body, frame.count, frame.reverse, frame.carries.len(), sliced, stacked)?;
        let spec = Arc::new(spec);
        let mut operands: Vec<NodeId> = inits.to_vec();
        operands.extend(frame.sliced.iter().map(|s| remap(s.0)));
        operands.extend(invariants);
        // Chunked when checkpointed (every count of steps above 1 gives the same values).
        let results =
            crate::ir::checkpoint::checkpoint(&mut self.g, &spec, &operands, frame.checkpoint.unwrap_or(usize::MAX))?;
        Ok((results, names))
    }

    /// Report an error; `None` for the caller to return.
    fn refuse<T>(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Option<T> {
        self.error(code, span, message, label);
        None
    }
}

/// Where outer node `x` (an id from before the split) is now.
fn moved(x: NodeId, mark: usize, outer: &[Option<NodeId>]) -> NodeId {
    match x.index().checked_sub(mark) {
        Some(j) => outer.get(j).copied().flatten().unwrap_or(x),
        None => x,
    }
}
