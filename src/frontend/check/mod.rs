//! Checking: `ast::SourceFile` -> a `Checked` program (one graph per model, train block and eval
//! block) or every diagnostic found.
//!
//! Names are resolved and shapes inferred by elaborating the program: each call of a user
//! function or layer is expanded at its call site with the shapes of its arguments, so one
//! `dense` serves any input width, and every built-in is lowered (`lower.rs`) into graph
//! primitives whose shape rules (`ops.rs`) are the single source of truth. An error poisons
//! only the value it concerns, so independent errors in one file are all reported.
//!
//! Elaboration happens in a mode (`Checker::training`): the train step is the program in
//! training mode, evaluation and inference the same program in inference mode. `if training`
//! takes its branch by the mode; the other branch is elaborated too, in the other mode, for
//! its diagnostics and to compare shapes, and then rolled back (`modes.rs`). A program that
//! never asks for the mode is elaborated once and serves both.

use std::collections::HashMap;

use crate::diag::{nearest, Diagnostic, Span};
use crate::frontend::ast::*;
use crate::frontend::builtins::{Builtin, Kind};
use crate::frontend::checked::*;
use crate::frontend::lower;
use crate::ir::graph::{DType, Dim, Graph, Init, InputKind, NodeId, Op, ParamRole, Shape};
use crate::ir::limits::MAX_ELEMENTS;
use crate::ir::ops::ShapeError;
use crate::ir::tensor::Tensor;
use args::{Args, Bound, Range};

/// The prelude's layers (dense, conv2d, maxout, rnn, lstm, gru), written in the language.
pub const PRELUDE: &str = include_str!("../prelude.net");

mod args;
mod builtins;
mod calls;
mod einsum;
mod exprs;
mod items;
mod loops;
mod metrics;
mod modes;
mod settings;
mod structure;
mod train;
mod windows;

pub use train::glob as freeze_pattern_matches;

/// Parse and check a source file (the prelude is added in front of it).
pub fn check_source(src: &str) -> Result<Checked, Vec<Diagnostic>> {
    let program = crate::frontend::parser::parse(src)?;
    check(&program, src)
}

/// Check a parsed program.
pub fn check(program: &SourceFile, src: &str) -> Result<Checked, Vec<Diagnostic>> {
    if program.items.is_empty() {
        return Err(vec![Diagnostic::new("E-empty", "the file defines nothing")
            .note("a .net file holds models, data, train and eval blocks; see docs/language.md")]);
    }
    let prelude = crate::frontend::parser::parse(PRELUDE).expect("the prelude parses");
    let mut c = Checker::new(src);
    c.register(&prelude, true);
    c.register(program, false);
    let mut out = c.run(program);
    out.notes = std::mem::take(&mut c.notes);
    if c.diags.is_empty() {
        Ok(out)
    } else {
        Err(c.diags)
    }
}

/// A value during elaboration.
#[derive(Clone, Debug)]
enum Value {
    Tensor(NodeId),
    /// A number known at compile time (sizes, hyper-parameters, literals).
    Num(f64),
    Str(String),
    List(Vec<Value>),
    /// A symbolic dimension, e.g. from `x.shape[0]` when it is the batch.
    Dim(Dim),
    Func(Callee),
    Init(Init),
    Bool(bool),
    /// `float` or `int`: the element type of a data field.
    ElemType(FieldType),
    /// A call of a settings function (optimizer, schedule, data source) with its arguments,
    /// read by the settings block that holds it.
    Setting(Box<Args>),
    /// The variable of the loop `frames[k]` (`t` in `for t in range(T)`): an index in
    /// `x[t]`, or the step's index as a scalar tensor in arithmetic.
    Step(usize),
    /// What a block without a final expression gives (an `if` whose branch only updates).
    Nothing,
    /// Poison: an error has been reported for this value.
    Error,
}

#[derive(Clone, Copy, Debug)]
enum Callee {
    Builtin(Builtin),
    /// A user function or layer, by name in `Checker::fns`.
    User(usize),
    Model(usize),
}

struct FnInfo<'p> {
    def: &'p FnDef,
    is_layer: bool,
    in_prelude: bool,
}

struct Checker<'p> {
    src: &'p str,
    diags: Vec<Diagnostic>,
    /// Remarks that do not stop the check (`N-` codes; `netc check` prints them).
    notes: Vec<Diagnostic>,
    fns: Vec<FnInfo<'p>>,
    fn_names: HashMap<String, usize>,
    models: Vec<&'p ModelDef>,
    model_names: HashMap<String, usize>,
    data_names: HashMap<String, usize>,
    // ---- the graph being built and its context ----
    g: Graph,
    scopes: Vec<HashMap<String, Value>>,
    /// Qualified-name prefix of the layer instance being expanded.
    prefix: Vec<String>,
    /// How many instances of each layer each prefix has created (for `dense_1`, `dense_2`).
    instance_counts: HashMap<String, usize>,
    /// The name the next layer call gets (from `let name = layer(...)`).
    pending_instance: Option<String>,
    params_by_name: HashMap<String, NodeId>,
    /// The layer and model instances called so far in the current graph.
    layers: Vec<Layer>,
    allow_params: bool,
    /// Checking an eval block: a model it calls keeps one set of parameters, named
    /// `MODEL.NAME`, whichever call declares them first (see `Callee::Model` in `calls.rs`).
    in_eval: bool,
    /// Expanding such a model call: a parameter declared again is the one declared before.
    share_params: bool,
    /// Inside prelude code, errors are reported at the user's call.
    span_override: Option<Span>,
    depth: usize,
    /// The loops whose bodies are being elaborated, innermost last (`loops.rs`).
    frames: Vec<loops::LoopFrame>,
    /// The frame of each loop placeholder created so far, by key (`loops::PLACEHOLDER`).
    placeholder_frames: Vec<usize>,
    /// `decode(ids, alphabet)` calls met in the current eval statement: (call span, alphabet).
    decodes: Vec<(Span, String)>,
    /// Which stack of scopes `scopes` is: a call swaps in the callee's own stack
    /// (`swap_scopes`), and a loop frame only speaks for names of the stack it began in.
    scope_stack: usize,
    /// The last id given to a stack of scopes.
    scope_stacks: usize,
    /// Units of elaboration work done so far (see `ELABORATION_BUDGET`).
    work: u64,
    /// The budget of this check: `ELABORATION_BUDGET` plus `BUDGET_PER_BYTE` per source byte.
    budget: u64,
    /// Set once the budget is spent: every expression is then poisoned, so the check ends.
    exhausted: bool,
    // ---- the mode (see `modes.rs`) ----
    /// Elaborating the train step (true) or inference (false).
    training: bool,
    /// Whether the elaboration so far asked for the mode (`training`, `<-`, randomness).
    mode_used: bool,
    /// Depth of `if training` branches: parameters and state cannot be declared there.
    mode_branches: usize,
    /// State updates (`<-`) of training mode: (parameter index, new value, statement).
    updates: Vec<(usize, NodeId, Span)>,
    /// The graph's `RandomKey` input, once a random node needs it.
    random_key: Option<NodeId>,
    /// The stream of the next random node.
    streams: u32,
    /// Per graph input: its value is known to hold whole numbers (an eval variable bound to
    /// a literal of whole numbers; inputs declared `int` say so in `InputInfo::integer`).
    whole_inputs: Vec<bool>,
}

const MAX_DEPTH: usize = 64;

/// Units of elaboration work a check may do (plus `BUDGET_PER_BYTE` for each byte of the
/// source). A unit is one expression elaborated, or one value of a list created or copied.
/// Elaboration expands every call at its call site, so a few lines can ask for exponential
/// work (`fn f(x) = f([x, x])`, or `f1` calling `f0` twice, `f2` calling `f1` twice, ...):
/// the budget turns that into a diagnostic after a few seconds at most, instead of a check
/// that eats memory without end. Real programs stay far below: a 10,000-layer MLP needs
/// 0.5 million units, AlexNet 505 (docs/robustness.md).
pub const ELABORATION_BUDGET: u64 = 10_000_000;

/// Extra budget per byte of source, so that a large literal written out in full is accepted.
pub const BUDGET_PER_BYTE: u64 = 4;

/// How deeply list values may nest: `[[[1]]]` is 3. Tensors of higher rank are not useful,
/// and the checker copies lists recursively.
pub const MAX_LIST_DEPTH: usize = 32;

impl<'p> Checker<'p> {
    fn new(src: &'p str) -> Checker<'p> {
        Checker {
            src,
            diags: vec![],
            notes: vec![],
            fns: vec![],
            fn_names: HashMap::new(),
            models: vec![],
            model_names: HashMap::new(),
            data_names: HashMap::new(),
            g: Graph::new(DType::F32),
            scopes: vec![],
            prefix: vec![],
            instance_counts: HashMap::new(),
            pending_instance: None,
            params_by_name: HashMap::new(),
            layers: vec![],
            allow_params: false,
            in_eval: false,
            share_params: false,
            span_override: None,
            depth: 0,
            frames: vec![],
            placeholder_frames: vec![],
            decodes: vec![],
            scope_stack: 0,
            scope_stacks: 0,
            training: false,
            mode_used: false,
            mode_branches: 0,
            updates: vec![],
            random_key: None,
            streams: 0,
            work: 0,
            budget: ELABORATION_BUDGET.saturating_add(BUDGET_PER_BYTE.saturating_mul(src.len() as u64)),
            exhausted: false,
            whole_inputs: vec![],
        }
    }

    // ---- the elaboration budget ----

    /// Spend `units` of work at `span`; false (after one diagnostic) once the budget is spent.
    fn charge(&mut self, units: u64, span: Span) -> bool {
        if self.exhausted {
            return false;
        }
        self.work = self.work.saturating_add(units);
        if self.work <= self.budget {
            return true;
        }
        self.exhausted = true;
        let budget = self.budget;
        self.report(
            Diagnostic::new(
                "E-budget",
                format!(
                    "elaborating the program takes more than {budget} steps, the limit \
                     ({ELABORATION_BUDGET} plus {BUDGET_PER_BYTE} per byte of source)"
                ),
            )
            .label(span, "the work ran out here")
            .note("every call of a function or layer is expanded where it is called: calls that call others several times, or lists that double at each step, grow exponentially")
            .help("look for a function that calls itself or its callers more than once per call"),
        );
        false
    }

    /// A copy of `v`, paid for by its size; `Value::Error` once the budget is spent.
    fn copy(&mut self, v: &Value, span: Span) -> Value {
        if self.charge(value_size(v), span) {
            v.clone()
        } else {
            Value::Error
        }
    }

    // ---- diagnostics ----

    fn report(&mut self, mut d: Diagnostic) {
        if let Some(site) = self.span_override {
            // Prelude source is not the user's: put every label on the user's call.
            let texts: Vec<String> = d.labels.drain(..).map(|(_, t)| t).collect();
            d.labels = vec![(site, texts.join("; "))];
            d.notes.push("the error is inside a prelude layer called here".into());
        }
        if !self.diags.contains(&d) {
            self.diags.push(d);
        }
    }

    fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>, label: impl Into<String>) -> Value {
        self.report(Diagnostic::new(code, message).label(span, label));
        Value::Error
    }

    fn text(&self, span: Span) -> &str {
        if self.span_override.is_some() {
            return "";
        }
        self.src.get(span.start..span.end).unwrap_or("")
    }

    // ---- scopes ----

    /// Make `scopes` the current stack of scopes (a function's, a model's): returns the
    /// caller's, for `restore_scopes`.
    fn swap_scopes(&mut self, scopes: Vec<HashMap<String, Value>>) -> (Vec<HashMap<String, Value>>, usize) {
        self.scope_stacks += 1;
        let saved = (std::mem::replace(&mut self.scopes, scopes), self.scope_stack);
        self.scope_stack = self.scope_stacks;
        saved
    }

    fn restore_scopes(&mut self, saved: (Vec<HashMap<String, Value>>, usize)) {
        (self.scopes, self.scope_stack) = saved;
    }

    fn lookup(&self, name: &str) -> Option<Value> {
        for scope in self.scopes.iter().rev() {
            if let Some(v) = scope.get(name) {
                return Some(v.clone());
            }
        }
        if let Some(&i) = self.fn_names.get(name) {
            return Some(Value::Func(Callee::User(i)));
        }
        if let Some(&i) = self.model_names.get(name) {
            return Some(Value::Func(Callee::Model(i)));
        }
        if let Some(id) = self.params_by_name.get(name) {
            return Some(Value::Tensor(*id));
        }
        match name {
            "true" => return Some(Value::Bool(true)),
            "false" => return Some(Value::Bool(false)),
            "pi" => return Some(Value::Num(std::f64::consts::PI)),
            "training" => return Some(Value::Bool(self.training)),
            "float" => return Some(Value::ElemType(FieldType::Float)),
            "int" => return Some(Value::ElemType(FieldType::Int)),
            _ => {}
        }
        if let Some(b) = Builtin::from_name(name) {
            // The initialisers without arguments are values as they are: `= he`.
            return Some(match b {
                Builtin::Zeros => Value::Init(Init::Zeros),
                Builtin::Xavier => Value::Init(Init::Xavier),
                Builtin::He => Value::Init(Init::He),
                _ => Value::Func(Callee::Builtin(b)),
            });
        }
        None
    }

    fn bind(&mut self, name: &str, v: Value) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name.to_string(), v);
        }
    }

    fn unknown_name(&mut self, name: &str, span: Span) -> Value {
        // Innermost scope first; each map's names sorted, so that ties between equally near
        // names (`nearest` takes the earlier) do not depend on hash order.
        let sorted = |keys: Vec<&String>| {
            let mut keys: Vec<String> = keys.into_iter().cloned().collect();
            keys.sort();
            keys
        };
        let mut candidates: Vec<String> = self.scopes.iter().rev().flat_map(|s| sorted(s.keys().collect())).collect();
        candidates.extend(sorted(self.fn_names.keys().collect()));
        candidates.extend(sorted(self.model_names.keys().collect()));
        candidates.extend(sorted(self.params_by_name.keys().collect()));
        candidates.extend(Builtin::ALL.iter().map(|b| b.name().to_string()));
        candidates.push("training".into());
        let mut d = Diagnostic::new("E-name", format!("unknown name `{name}`")).label(span, "not defined here");
        if let Some(s) = nearest(name, candidates.iter().map(String::as_str)) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        self.report(d);
        Value::Error
    }
}

impl Checker<'_> {
    /// Whether node `id` holds whole numbers by construction, so it may index: an input
    /// declared `int` (or an eval variable bound to whole numbers), a whole constant or
    /// literal, a size, a mask, and what layout, indexing, sums, differences, products,
    /// negation, |x|, max and min make of such values.
    pub(super) fn is_integer(&self, id: NodeId) -> bool {
        self.integer_nodes(&[id])[0]
    }

    /// `is_integer` of each of `ids`, deciding each node of the graph at most once over all of
    /// them (an eval block's shown values share their operands: one walk stays linear).
    pub(super) fn integer_nodes(&self, ids: &[NodeId]) -> Vec<bool> {
        let mut known: HashMap<NodeId, bool> = HashMap::new();
        ids.iter().map(|&id| self.integer_node(id, &mut known)).collect()
    }

    fn integer_node(&self, id: NodeId, known: &mut HashMap<NodeId, bool>) -> bool {
        use Op::*;
        // Iterative (a long chain must not overflow the stack), each node decided once.
        if let Some(&whole) = known.get(&id) {
            return whole;
        }
        let mut stack = vec![id];
        while let Some(&top) = stack.last() {
            let node = self.g.node(top);
            let pending: Vec<NodeId> = node.inputs.iter().copied().filter(|x| !known.contains_key(x)).collect();
            let operands_whole = || node.inputs.iter().all(|x| known[x]);
            let whole = match &node.op {
                // A loop's step slice holds what its source holds; a carry: not known.
                Input { index } if *index >= loops::PLACEHOLDER => {
                    match self.sliced_source(*index - loops::PLACEHOLDER) {
                        Some(x) => {
                            if !known.contains_key(&x) {
                                stack.push(x);
                                continue;
                            }
                            known[&x]
                        }
                        None => false,
                    }
                }
                Input { index } => {
                    self.g.inputs[*index].integer || self.whole_inputs.get(*index).copied().unwrap_or(false)
                }
                Const { value } => value.fract() == 0.0,
                Literal { values } => values.iter().all(|v| v.fract() == 0.0),
                DimSize { .. } | GreaterEq | Greater | Equal | OneHot { .. } | ArgMaxMask { .. } | Sign => true,
                Param { .. } | RandomUniform { .. } | Loop { .. } => false,
                Exp | Log | Sqrt | Tanh | Sigmoid | Div | Pow | LogSoftmax { .. } | MatMul { .. } => false,
                LeakyRelu { .. } | Elu { .. } | Softplus | Erf => false,
                // Whole between whole (or missing, infinite) bounds.
                Clip { lo, hi } if ![lo, hi].iter().all(|b| b.is_infinite() || b.fract() == 0.0) => false,
                // The condition only chooses: the values come from operands 1 and 2.
                Where => {
                    let values = &node.inputs[1..];
                    let pending: Vec<NodeId> = values.iter().copied().filter(|x| !known.contains_key(x)).collect();
                    if !pending.is_empty() {
                        stack.extend(pending);
                        continue;
                    }
                    values.iter().all(|x| known[x])
                }
                Conv2d { .. } | Conv2dInputGrad { .. } | Conv2dFilterGrad { .. } => false,
                MaxPool2d { .. } | MaxPool2dGrad { .. } | AvgPool2d { .. } | AvgPool2dGrad { .. } => false,
                // The values come from operand 0 (the indices of a gather do not matter).
                Gather { .. } | ScatterAdd { .. } => {
                    let x = node.inputs[0];
                    if !known.contains_key(&x) {
                        stack.push(x);
                        continue;
                    }
                    known[&x]
                }
                Neg
                | Relu
                | Abs
                | Add
                | Sub
                | Mul
                | Max
                | Min
                | ReduceMax { .. }
                | Sum { .. }
                | Broadcast { .. }
                | Reshape { .. }
                | Transpose { .. }
                | Slice { .. }
                | Pad { .. }
                | Reverse { .. }
                | Concat { .. }
                | Clip { .. } => {
                    if !pending.is_empty() {
                        stack.extend(pending);
                        continue;
                    }
                    operands_whole()
                }
            };
            known.insert(top, whole);
            stack.pop();
        }
        known[&id]
    }
}

fn stmt_span(s: &Stmt) -> Span {
    match s {
        Stmt::Let { name, value } => name.span.to(value.span),
        Stmt::LetList { span, .. } => *span,
        Stmt::Param { span, .. } | Stmt::State { span, .. } | Stmt::Update { span, .. } | Stmt::Grad { span, .. } => {
            *span
        }
        Stmt::Return(e) | Stmt::Expr(e) => e.span,
        Stmt::Setting { key, value } => key.span.to(value.span),
        Stmt::For(f) => f.span,
        Stmt::Yield { span, .. } => *span,
        Stmt::Error => Span::default(),
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::Tensor(_) => "a tensor".into(),
        Value::Num(n) => format!("the number {n}"),
        Value::Str(s) => format!("the string \"{s}\""),
        Value::List(_) => "a list".into(),
        Value::Dim(_) => "a symbolic dimension".into(),
        Value::Func(_) => "a function".into(),
        Value::Init(_) => "an initialiser".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::ElemType(t) => format!("the type `{}`", t.name()),
        Value::Setting(a) => format!("a `{}` setting", a.builtin.name()),
        Value::Step(_) => "the loop variable".into(),
        Value::Nothing => "nothing (a block without a final expression)".into(),
        Value::Error => "an error".into(),
    }
}

/// Values in `v`, counting every list and element (what a copy of it costs).
fn value_size(v: &Value) -> u64 {
    match v {
        Value::List(items) => 1 + items.iter().map(value_size).sum::<u64>(),
        _ => 1,
    }
}

/// How deeply `v` nests lists (a number is 0).
fn list_depth(v: &Value) -> usize {
    match v {
        Value::List(items) => 1 + items.iter().map(list_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A number or a rectangular nested list of numbers, as a tensor.
fn literal_tensor(v: &Value) -> Option<Tensor> {
    match v {
        Value::Num(n) => Some(Tensor::scalar(*n)),
        Value::List(items) if !items.is_empty() => {
            let parts: Option<Vec<Tensor>> = items.iter().map(literal_tensor).collect();
            let parts = parts?;
            let inner = parts[0].shape.clone();
            if parts.iter().any(|p| p.shape != inner) {
                return None;
            }
            let mut shape = vec![parts.len()];
            shape.extend(inner);
            Some(Tensor { shape, data: parts.into_iter().flat_map(|p| p.data).collect() })
        }
        _ => None,
    }
}
