//! Checking: `ast::Program` -> a `Checked` program (one graph per model, train block and eval
//! block) or every diagnostic found.
//!
//! Names are resolved and shapes inferred by elaborating the program: each call of a user
//! function or layer is expanded at its call site with the shapes of its arguments, so one
//! `dense` serves any input width, and every built-in is lowered (`lower.rs`) into graph
//! primitives whose shape rules (`ops.rs`) are the single source of truth. An error poisons
//! only the value it concerns, so independent errors in one file are all reported.

use std::collections::HashMap;

use crate::diag::{nearest, Diagnostic, Span};
use crate::frontend::ast::*;
use crate::frontend::lower::{self, Signature};
use crate::ir::graph::{DType, Dim, Graph, Init, InputKind, NodeId, Op, Shape};
use crate::ir::limits::MAX_ELEMENTS;
use crate::ir::ops::ShapeError;
use crate::ir::tensor::Tensor;

/// The prelude's layers (dense, conv2d, maxout), written in the language.
pub const PRELUDE: &str = include_str!("../prelude.net");

/// A model: its forward graph (inputs, parameters, named outputs).
#[derive(Clone, Debug)]
pub struct Model {
    pub name: String,
    pub graph: Graph,
    pub span: Span,
}

/// Where a data set comes from (paths are relative to the `.net` file).
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Spiral { points: usize, classes: usize, seed: u64 },
    Synthetic { samples: usize, classes: usize, seed: u64 },
    Csv { path: String, label: String, scale: f64 },
    Npy { features: String, labels: String, scale: f64 },
    Idx { images: String, labels: String, scale: f64 },
}

/// How the samples of the source are split into training and test sets.
#[derive(Clone, Debug, PartialEq)]
pub enum Split {
    /// The first `n` samples train, the rest test.
    Count(usize),
    /// The first fraction trains, the rest tests.
    Fraction(f64),
}

#[derive(Clone, Debug)]
pub struct DataDecl {
    pub name: String,
    pub source: Source,
    /// A separate test set, when the file names one.
    pub test: Option<Source>,
    /// Used instead of `source` (and `test`) when their files do not exist, e.g. a synthetic
    /// stand-in for MNIST until its files are downloaded.
    pub otherwise: Option<Source>,
    pub split: Option<Split>,
    pub shuffle: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd { lr: f64 },
    Momentum { lr: f64, momentum: f64, nesterov: bool },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    Step { every: usize, gamma: f64 },
    Cosine { min_lr: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Length {
    Steps(usize),
    Epochs(usize),
}

/// A train block: the model's forward graph extended with the loss.
#[derive(Clone, Debug)]
pub struct TrainDecl {
    pub model: String,
    /// Index into `Checked::data`.
    pub data: Option<usize>,
    /// Model inputs, then `labels`; outputs: `loss`, then the model's outputs.
    pub graph: Graph,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub weight_decay: f64,
    pub length: Length,
    pub batch: Option<usize>,
    pub drop_last: bool,
    pub seed: u64,
    pub metrics: Vec<String>,
    pub span: Span,
}

/// `grad f wrt x, y` in an eval block.
#[derive(Clone, Debug)]
pub struct GradRequest {
    pub of_name: String,
    pub of: NodeId,
    pub wrt: Vec<(String, NodeId)>,
    pub span: Span,
}

/// An eval block: values of its `let x = literal` variables, what to show, what to differentiate.
#[derive(Clone, Debug)]
pub struct EvalDecl {
    pub name: Option<String>,
    pub graph: Graph,
    /// Values of `graph.inputs`, in order.
    pub values: Vec<Tensor>,
    /// Bare expressions to print: (source text, node).
    pub shows: Vec<(String, NodeId)>,
    pub grads: Vec<GradRequest>,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub models: Vec<Model>,
    pub data: Vec<DataDecl>,
    pub trains: Vec<TrainDecl>,
    pub evals: Vec<EvalDecl>,
}

/// Parse and check a source file (the prelude is added in front of it).
pub fn check_source(src: &str) -> Result<Checked, Vec<Diagnostic>> {
    let program = crate::frontend::parser::parse(src)?;
    check(&program, src)
}

/// Check a parsed program.
pub fn check(program: &Program, src: &str) -> Result<Checked, Vec<Diagnostic>> {
    if program.items.is_empty() {
        return Err(vec![Diagnostic::new("E-empty", "the file defines nothing")
            .note("a .net file holds models, data, train and eval blocks; see docs/language.md")]);
    }
    let prelude = crate::frontend::parser::parse(PRELUDE).expect("the prelude parses");
    let mut c = Checker::new(src);
    c.register(&prelude, true);
    c.register(program, false);
    let out = c.run(program);
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
    /// A call of a settings function (optimizer, schedule, data source) with bound arguments.
    Call(&'static str, Vec<Option<Value>>),
    /// Poison: an error has been reported for this value.
    Error,
}

#[derive(Clone, Copy, Debug)]
enum Callee {
    Builtin(&'static Signature),
    /// A user function or layer, by name in `Checker::fns`.
    User(usize),
    Model(usize),
}

struct FnInfo<'p> {
    def: &'p FnDef,
    is_layer: bool,
    in_prelude: bool,
}

/// Arguments after binding: one slot per parameter, with the span of what was given.
struct Bound {
    values: Vec<Option<(Value, Span)>>,
    rest: Vec<(Value, Span)>,
}

struct Checker<'p> {
    src: &'p str,
    diags: Vec<Diagnostic>,
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
    allow_params: bool,
    /// Inside prelude code, errors are reported at the user's call.
    span_override: Option<Span>,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl<'p> Checker<'p> {
    fn new(src: &'p str) -> Checker<'p> {
        Checker {
            src,
            diags: vec![],
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
            allow_params: false,
            span_override: None,
            depth: 0,
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

    // ---- items ----

    /// Record the names of all top-level definitions, reporting duplicates.
    fn register(&mut self, program: &'p Program, in_prelude: bool) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        for item in &program.items {
            let (name, is_fn_like) = match item {
                Item::Fn(f) => (Some(&f.name), true),
                Item::Layer(f) => (Some(&f.name), true),
                Item::Model(m) => (Some(&m.name), false),
                Item::Data(d) => (d.name.as_ref(), false),
                _ => (None, false),
            };
            let Some(name) = name else { continue };
            if let Some(first) = seen.get(&name.name) {
                let d = Diagnostic::new("E-duplicate", format!("`{}` is defined twice", name.name))
                    .label(name.span, "defined again here")
                    .label(*first, "first defined here")
                    .help("rename one of them");
                self.report(d);
                continue;
            }
            seen.insert(name.name.clone(), name.span);
            if lower::builtin(&name.name).is_some() && !in_prelude && is_fn_like {
                // A user definition may replace a built-in; that is allowed but worth no error.
            }
            match item {
                Item::Fn(f) | Item::Layer(f) => {
                    let idx = self.fns.len();
                    self.fns.push(FnInfo { def: f, is_layer: matches!(item, Item::Layer(_)), in_prelude });
                    self.fn_names.insert(f.name.name.clone(), idx);
                }
                Item::Model(m) => {
                    self.model_names.insert(m.name.name.clone(), self.models.len());
                    self.models.push(m);
                }
                Item::Data(d) => {
                    let n = self.data_names.len();
                    self.data_names.insert(d.name.as_ref().map(|n| n.name.clone()).unwrap_or_default(), n);
                }
                _ => {}
            }
        }
    }

    fn run(&mut self, program: &'p Program) -> Checked {
        let mut out = Checked::default();
        for item in &program.items {
            match item {
                Item::Model(m) => {
                    if let Some(model) = self.check_model(m) {
                        out.models.push(model);
                    }
                }
                Item::Data(d) => {
                    if let Some(data) = self.check_data(d) {
                        out.data.push(data);
                    }
                }
                _ => {}
            }
        }
        for item in &program.items {
            match item {
                Item::Train(t) => {
                    if let Some(train) = self.check_train(t, &out) {
                        out.trains.push(train);
                    }
                }
                Item::Eval(e) => {
                    if let Some(eval) = self.check_eval(e) {
                        out.evals.push(eval);
                    }
                }
                Item::Fn(f) | Item::Layer(f) => self.check_unused_fn(f),
                _ => {}
            }
        }
        out
    }

    /// Functions are checked where they are called (with their arguments' shapes); here only
    /// what holds for every call: distinct parameter names.
    fn check_unused_fn(&mut self, f: &FnDef) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for p in &f.params {
            if let Some(first) = seen.insert(&p.name.name, p.name.span) {
                self.report(
                    Diagnostic::new("E-duplicate", format!("parameter `{}` is declared twice", p.name.name))
                        .label(p.name.span, "declared again here")
                        .label(first, "first declared here"),
                );
            }
        }
    }

    /// Start a fresh graph; returns the previous context to restore.
    fn begin(&mut self, dtype: DType) {
        self.g = Graph::new(dtype);
        self.scopes = vec![HashMap::new()];
        self.prefix.clear();
        self.instance_counts.clear();
        self.params_by_name.clear();
        self.pending_instance = None;
        self.allow_params = false;
        self.span_override = None;
        self.depth = 0;
    }

    fn shape_of_type(&mut self, ty: &TypeExpr, symbolic_ok: bool) -> Option<Shape> {
        let mut shape = vec![];
        let mut ok = true;
        for d in &ty.dims {
            match d {
                DimExpr::Known(n, span) => {
                    if *n <= 0 {
                        self.error(
                            "E-shape",
                            *span,
                            "a dimension must be at least 1",
                            format!("{n} is not a valid size"),
                        );
                        ok = false;
                    } else if *n > (1 << 40) {
                        self.error("E-shape", *span, "dimension too large", format!("{n} elements along one axis"));
                        ok = false;
                    } else {
                        shape.push(Dim::Known(*n as usize));
                    }
                }
                DimExpr::Named(id) => match self.lookup(&id.name) {
                    Some(Value::Num(n)) if n >= 1.0 && n.fract() == 0.0 => shape.push(Dim::Known(n as usize)),
                    Some(Value::Dim(d)) if symbolic_ok => shape.push(d),
                    Some(Value::Dim(d)) => {
                        let name = self.g.dim_name(d);
                        self.error(
                            "E-shape",
                            id.span,
                            "parameters need sizes known at compile time",
                            format!("`{}` is the symbolic dimension {name}", id.name),
                        );
                        ok = false;
                    }
                    Some(Value::Error) => ok = false,
                    Some(_) => {
                        self.error(
                            "E-type",
                            id.span,
                            format!("`{}` is not a size", id.name),
                            "expected a whole number",
                        );
                        ok = false;
                    }
                    None if symbolic_ok => shape.push(Dim::Sym(self.g.symbol(&id.name))),
                    None => {
                        self.unknown_name(&id.name, id.span);
                        ok = false;
                    }
                },
            }
        }
        // Sizes multiply: [2^32, 2^32, 2^32] has no representable element count.
        let elements = shape.iter().filter_map(|d| d.known()).try_fold(1usize, |acc, n| acc.checked_mul(n));
        if ok && elements.is_none_or(|n| n > MAX_ELEMENTS) {
            let dims: Vec<String> = shape.iter().map(|d| self.g.dim_name(*d)).collect();
            self.error(
                "E-shape",
                ty.span,
                "tensor too large",
                format!("[{}] has more than 2^48 elements", dims.join(", ")),
            );
            ok = false;
        }
        ok.then_some(shape)
    }

    fn check_model(&mut self, m: &'p ModelDef) -> Option<Model> {
        self.begin(DType::F32);
        let outputs = self.expand_model(m, None, m.span)?;
        for (name, id) in outputs {
            self.g.outputs.push((name, id));
        }
        if self.g.params.is_empty() && self.diags.is_empty() {
            // A model without parameters is legal (and useful in eval blocks).
        }
        Some(Model { name: m.name.name.clone(), graph: std::mem::take(&mut self.g), span: m.span })
    }

    /// Expand a model's body into the current graph. With `args`, the inputs are those values
    /// (a call of the model); without, they become graph inputs. Returns the named outputs.
    fn expand_model(
        &mut self,
        m: &'p ModelDef,
        args: Option<Vec<(Value, Span)>>,
        site: Span,
    ) -> Option<Vec<(String, NodeId)>> {
        let mut scope = HashMap::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut ok = true;
        // When the model is called, its symbolic dimensions take the arguments' sizes.
        let mut bindings: HashMap<Dim, Dim> = HashMap::new();
        for (i, input) in m.inputs.iter().enumerate() {
            if let Some(first) = seen.insert(&input.name.name, input.name.span) {
                self.report(
                    Diagnostic::new("E-duplicate", format!("input `{}` is declared twice", input.name.name))
                        .label(input.name.span, "declared again here")
                        .label(first, "first declared here"),
                );
                ok = false;
                continue;
            }
            let Some(shape) = self.shape_of_type(&input.ty, true) else {
                ok = false;
                continue;
            };
            let value = match &args {
                None => Value::Tensor(self.g.add_input(&input.name.name, shape, InputKind::Data)),
                Some(args) => {
                    let (v, span) = args[i].clone();
                    match self.tensor(v, span) {
                        Some(t) => {
                            if !self.unify(self.g.shape(t).clone(), &shape, &mut bindings) {
                                let (got, want) = (self.g.shape_str(self.g.shape(t)), self.g.shape_str(&shape));
                                self.report(
                                    Diagnostic::new(
                                        "E-shape",
                                        format!("model `{}` takes {want}, got {got}", m.name.name),
                                    )
                                    .label(span, format!("this is {got}"))
                                    .label(input.ty.span, format!("input `{}` is declared {want}", input.name.name)),
                                );
                                ok = false;
                            }
                            Value::Tensor(t)
                        }
                        None => {
                            ok = false;
                            Value::Error
                        }
                    }
                }
            };
            scope.insert(input.name.name.clone(), value);
        }
        if !ok {
            return None;
        }
        let saved_scopes = std::mem::replace(&mut self.scopes, vec![scope]);
        let saved_allow = std::mem::replace(&mut self.allow_params, true);
        let result = self.run_block(&m.body);
        let final_scope = self.scopes.pop().unwrap_or_default();
        self.scopes = saved_scopes;
        self.allow_params = saved_allow;

        let mut outputs = vec![];
        for (i, out) in m.outputs.iter().enumerate() {
            let value = match final_scope.get(&out.name.name) {
                Some(v) => Some((v.clone(), out.name.span)),
                None if i == m.outputs.len() - 1 => result.clone(),
                None => None,
            };
            let Some((value, vspan)) = value else {
                self.report(
                    Diagnostic::new(
                        "E-output",
                        format!("model `{}` never defines its output `{}`", m.name.name, out.name.name),
                    )
                    .label(out.name.span, "declared here")
                    .help(format!("bind it with `let {} = ...` or end the body with its expression", out.name.name)),
                );
                return None;
            };
            let t = self.tensor(value, vspan)?;
            let declared: Shape =
                self.shape_of_type(&out.ty, true)?.into_iter().map(|d| *bindings.get(&d).unwrap_or(&d)).collect();
            let got = self.g.shape(t).clone();
            if got != declared {
                let (g_s, d_s) = (self.g.shape_str(&got), self.g.shape_str(&declared));
                self.report(
                    Diagnostic::new(
                        "E-shape",
                        format!("output `{}` is {g_s}, but the model declares {d_s}", out.name.name),
                    )
                    .label(vspan, format!("this is {g_s}"))
                    .label(out.ty.span, format!("declared {d_s}")),
                );
                return None;
            }
            self.g.annotate(t, Some(&out.name.name), None);
            outputs.push((out.name.name.clone(), t));
        }
        let _ = site;
        Some(outputs)
    }

    /// Does `got` fit `declared`, binding the declared symbols to the sizes they meet?
    fn unify(&self, got: Shape, declared: &Shape, bindings: &mut HashMap<Dim, Dim>) -> bool {
        got.len() == declared.len()
            && got.iter().zip(declared).all(|(&g, &d)| match d {
                Dim::Known(_) => g == d,
                Dim::Sym(_) => *bindings.entry(d).or_insert(g) == g,
            })
    }

    fn check_data(&mut self, d: &'p Settings) -> Option<DataDecl> {
        self.begin(DType::F32);
        let settings = self.settings(d, &["source", "test", "otherwise", "split", "shuffle"])?;
        let name = d.name.as_ref().map(|n| n.name.clone()).unwrap_or_default();
        let Some((source, sspan)) = settings.get("source").cloned() else {
            self.report(
                Diagnostic::new("E-setting", "a data block needs a `source`")
                    .label(d.keyword_span, "this data block")
                    .help(
                    "e.g. `source: spiral(points: 100, classes: 3)` or `source: csv(\"file.csv\", label: \"label\")`",
                ),
            );
            return None;
        };
        let source = self.source(source, sspan)?;
        let test = match settings.get("test").cloned() {
            Some((v, s)) => Some(self.source(v, s)?),
            None => None,
        };
        let otherwise = match settings.get("otherwise").cloned() {
            Some((v, s)) => Some(self.source(v, s)?),
            None => None,
        };
        let split = match settings.get("split").cloned() {
            None => None,
            Some((Value::Num(n), _)) if n >= 1.0 && n.fract() == 0.0 => Some(Split::Count(n as usize)),
            Some((Value::Num(f), _)) if f > 0.0 && f < 1.0 => Some(Split::Fraction(f)),
            Some((_, s)) => {
                self.error(
                    "E-setting",
                    s,
                    "`split` is a count of training samples or a fraction",
                    "expected e.g. 1500 or 0.8",
                );
                return None;
            }
        };
        let shuffle = match settings.get("shuffle").cloned() {
            None => true,
            Some((v, s)) => self.boolean(v, s)?,
        };
        Some(DataDecl { name, source, test, otherwise, split, shuffle, span: d.span })
    }

    fn source(&mut self, v: Value, span: Span) -> Option<Source> {
        let Value::Call(name, args) = v else {
            self.error(
                "E-setting",
                span,
                "expected a data source",
                "spiral(...), synthetic(...), csv(...), npy(...) or idx(...)",
            );
            return None;
        };
        let num = |c: &mut Self, i: usize, default: Option<f64>| -> Option<f64> {
            match args.get(i).cloned().flatten() {
                Some(Value::Num(n)) => Some(n),
                None => default,
                Some(_) => {
                    c.error("E-type", span, format!("argument {} of {name} must be a number", i + 1), "here");
                    None
                }
            }
        };
        let string = |c: &mut Self, i: usize, default: Option<&str>| -> Option<String> {
            match args.get(i).cloned().flatten() {
                Some(Value::Str(s)) => Some(s),
                None => default.map(str::to_string),
                Some(_) => {
                    c.error("E-type", span, format!("argument {} of {name} must be a string", i + 1), "here");
                    None
                }
            }
        };
        let count = |c: &mut Self, i: usize, default: Option<f64>| -> Option<usize> {
            let n = num(c, i, default)?;
            if n >= 1.0 && n.fract() == 0.0 && n < 1e9 {
                Some(n as usize)
            } else {
                c.error(
                    "E-type",
                    span,
                    format!("argument {} of {name} must be a positive whole number", i + 1),
                    "here",
                );
                None
            }
        };
        Some(match name {
            "spiral" => Source::Spiral {
                points: count(self, 0, None)?,
                classes: count(self, 1, None)?,
                seed: num(self, 2, Some(0.0))? as u64,
            },
            "synthetic" => Source::Synthetic {
                samples: count(self, 0, None)?,
                classes: count(self, 1, None)?,
                seed: num(self, 2, Some(0.0))? as u64,
            },
            "csv" => Source::Csv {
                path: string(self, 0, None)?,
                label: string(self, 1, Some("label"))?,
                scale: num(self, 2, Some(1.0))?,
            },
            "npy" => Source::Npy {
                features: string(self, 0, None)?,
                labels: string(self, 1, None)?,
                scale: num(self, 2, Some(1.0))?,
            },
            "idx" => Source::Idx {
                images: string(self, 0, None)?,
                labels: string(self, 1, None)?,
                scale: num(self, 2, Some(1.0))?,
            },
            _ => {
                self.error(
                    "E-setting",
                    span,
                    format!("`{name}` is not a data source"),
                    "expected spiral, synthetic, csv, npy or idx",
                );
                return None;
            }
        })
    }

    fn boolean(&mut self, v: Value, span: Span) -> Option<bool> {
        match v {
            Value::Num(n) if n == 0.0 || n == 1.0 => Some(n == 1.0),
            _ => {
                self.error("E-type", span, "expected true or false", "here");
                None
            }
        }
    }

    /// Evaluate a settings block, checking keys against `allowed` and reporting duplicates.
    fn settings(&mut self, block: &Settings, allowed: &[&str]) -> Option<HashMap<String, (Value, Span)>> {
        let mut out = HashMap::new();
        let mut spans: HashMap<String, Span> = HashMap::new();
        let mut ok = true;
        for stmt in &block.body {
            match stmt {
                Stmt::Setting { key, value } => {
                    if !allowed.contains(&key.name.as_str()) {
                        let mut d = Diagnostic::new("E-setting", format!("unknown setting `{}`", key.name))
                            .label(key.span, "not a setting of this block")
                            .note(format!("the settings are: {}", allowed.join(", ")));
                        if let Some(s) = nearest(&key.name, allowed.iter().copied()) {
                            d = d.help(format!("did you mean `{s}`?"));
                        }
                        self.report(d);
                        ok = false;
                        continue;
                    }
                    if let Some(first) = spans.insert(key.name.clone(), key.span) {
                        self.report(
                            Diagnostic::new("E-duplicate", format!("setting `{}` is given twice", key.name))
                                .label(key.span, "given again here")
                                .label(first, "first given here"),
                        );
                        ok = false;
                        continue;
                    }
                    if matches!(key.name.as_str(), "loss" | "model" | "data") {
                        // The loss is an expression over the model, elaborated by the caller;
                        // `model` and `data` name items, which are not values.
                        out.insert(key.name.clone(), (Value::Error, value.span));
                        continue;
                    }
                    let v = self.expr(value);
                    if matches!(v, Value::Error) {
                        ok = false;
                    }
                    out.insert(key.name.clone(), (v, value.span));
                }
                Stmt::Error => ok = false,
                other => {
                    let span = stmt_span(other);
                    self.error("E-syntax", span, "expected `key: value`", "a settings block holds only settings");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn check_train(&mut self, t: &'p Settings, checked: &Checked) -> Option<TrainDecl> {
        self.begin(DType::F32);
        let allowed = [
            "model",
            "data",
            "loss",
            "optimizer",
            "schedule",
            "weight_decay",
            "steps",
            "epochs",
            "batch",
            "drop_last",
            "seed",
            "metrics",
        ];
        let settings = self.settings(t, &allowed)?;
        // Which model: `train NAME { }`, `model: NAME`, or the only one.
        let model_name = match (&t.name, settings.get("model")) {
            (Some(n), _) => Some((n.name.clone(), n.span)),
            (None, Some((_, s))) => Some((self.text(*s).trim().to_string(), *s)),
            (None, None) if self.models.len() == 1 => Some((self.models[0].name.name.clone(), t.keyword_span)),
            (None, None) => None,
        };
        let Some((model_name, mspan)) = model_name else {
            self.report(
                Diagnostic::new("E-setting", "which model does this block train?")
                    .label(t.keyword_span, "write `train MODEL { ... }`"),
            );
            return None;
        };
        let Some(&mi) = self.model_names.get(&model_name) else {
            self.unknown_name(&model_name, mspan);
            return None;
        };
        let m = self.models[mi];
        let data = match settings.get("data") {
            Some((_, s)) => {
                // `data: NAME` names a data block.
                let text = self.text(*s).trim().to_string();
                match checked.data.iter().position(|d| d.name == text) {
                    Some(i) => Some(i),
                    None => {
                        let names: Vec<&str> = checked.data.iter().map(|d| d.name.as_str()).collect();
                        let mut d = Diagnostic::new("E-name", format!("no data block is named `{text}`"))
                            .label(*s, "not a data block");
                        if let Some(n) = nearest(&text, names.iter().copied()) {
                            d = d.help(format!("did you mean `{n}`?"));
                        }
                        self.report(d);
                        return None;
                    }
                }
            }
            None if checked.data.len() == 1 => Some(0),
            None => None,
        };

        // The graph: the model's forward pass, then the loss over its outputs and the labels.
        let outputs = self.expand_model(m, None, t.span)?;
        let batch = self.g.inputs.first().and_then(|i| i.shape.first().copied()).unwrap_or(Dim::Known(1));
        let labels = self.g.add_input("labels", vec![batch], InputKind::Label);
        let mut scope = HashMap::new();
        for (i, node) in self.g.nodes.iter().enumerate() {
            if let Op::Input { index } = node.op {
                scope.insert(self.g.inputs[index].name.clone(), Value::Tensor(NodeId(i as u32)));
            }
        }
        let _ = labels;
        for (name, id) in &outputs {
            scope.insert(name.clone(), Value::Tensor(*id));
        }
        let loss_expr = t.body.iter().find_map(|s| match s {
            Stmt::Setting { key, value } if key.name == "loss" => Some(value),
            _ => None,
        });
        let Some(loss_expr) = loss_expr else {
            self.report(
                Diagnostic::new("E-setting", "a train block needs a `loss`")
                    .label(t.keyword_span, "this train block")
                    .help(format!(
                        "e.g. `loss: cross_entropy({}, labels)`",
                        outputs.first().map(|o| o.0.as_str()).unwrap_or("scores")
                    )),
            );
            return None;
        };
        self.scopes = vec![scope];
        let loss = self.expr(loss_expr);
        let loss = self.tensor(loss, loss_expr.span)?;
        if !self.g.shape(loss).is_empty() {
            let s = self.g.shape_str(self.g.shape(loss));
            self.error(
                "E-shape",
                loss_expr.span,
                "the loss must be a scalar",
                format!("this is {s}; reduce it with mean(...) or sum(...)"),
            );
            return None;
        }
        self.g.annotate(loss, Some("loss"), Some(loss_expr.span));
        self.g.outputs.push(("loss".into(), loss));
        self.g.outputs.extend(outputs);

        let num = |c: &mut Self, key: &str| -> Option<Option<(f64, Span)>> {
            match settings.get(key).cloned() {
                None => Some(None),
                Some((Value::Num(n), s)) => Some(Some((n, s))),
                Some((_, s)) => {
                    c.error("E-type", s, format!("`{key}` must be a number"), "here");
                    None
                }
            }
        };
        let whole = |c: &mut Self, key: &str| -> Option<Option<usize>> {
            match num(c, key)? {
                None => Some(None),
                Some((n, _)) if n >= 1.0 && n.fract() == 0.0 && n < 1e12 => Some(Some(n as usize)),
                Some((_, s)) => {
                    c.error("E-type", s, format!("`{key}` must be a positive whole number"), "here");
                    None
                }
            }
        };
        let length = match (whole(self, "steps")?, whole(self, "epochs")?) {
            (Some(_), Some(_)) => {
                self.error("E-setting", t.keyword_span, "give `steps` or `epochs`, not both", "this train block");
                return None;
            }
            (Some(s), None) => Length::Steps(s),
            (None, Some(e)) => Length::Epochs(e),
            (None, None) => Length::Epochs(1),
        };
        let batch = whole(self, "batch")?;
        let seed = num(self, "seed")?.map_or(0, |(n, _)| n as u64);
        let weight_decay = num(self, "weight_decay")?.map_or(0.0, |(n, _)| n);
        let drop_last = match settings.get("drop_last").cloned() {
            None => false,
            Some((v, s)) => self.boolean(v, s)?,
        };
        let optimizer = match settings.get("optimizer").cloned() {
            None => Optimizer::Sgd { lr: 0.01 },
            Some((v, s)) => self.optimizer(v, s)?,
        };
        let schedule = match settings.get("schedule").cloned() {
            None => Schedule::Constant,
            Some((Value::Call("step", args), s)) => {
                let every = match args[0].clone() {
                    Some(Value::Num(n)) if n >= 1.0 => n as usize,
                    _ => {
                        self.error("E-type", s, "step(every) needs a positive number of steps", "here");
                        return None;
                    }
                };
                let gamma = match args.get(1).cloned().flatten() {
                    Some(Value::Num(g)) => g,
                    _ => 0.1,
                };
                Schedule::Step { every, gamma }
            }
            Some((Value::Call("cosine", args), _)) => Schedule::Cosine {
                min_lr: match args.first().cloned().flatten() {
                    Some(Value::Num(m)) => m,
                    _ => 0.0,
                },
            },
            Some((_, s)) => {
                self.error("E-setting", s, "expected a schedule", "step(every: N, gamma: 0.1) or cosine()");
                return None;
            }
        };
        let metrics = match settings.get("metrics").cloned() {
            None => vec!["accuracy".to_string()],
            Some((Value::List(items), s)) => {
                let mut names = vec![];
                for item in items {
                    match item {
                        Value::Func(Callee::Builtin(sig)) if sig.name == "accuracy" => {
                            names.push("accuracy".to_string())
                        }
                        _ => {
                            self.error("E-setting", s, "unknown metric", "the metrics are: accuracy");
                            return None;
                        }
                    }
                }
                names
            }
            Some((_, s)) => {
                self.error("E-setting", s, "`metrics` is a list", "e.g. [accuracy]");
                return None;
            }
        };
        Some(TrainDecl {
            model: model_name,
            data,
            graph: std::mem::take(&mut self.g),
            optimizer,
            schedule,
            weight_decay,
            length,
            batch,
            drop_last,
            seed,
            metrics,
            span: t.span,
        })
    }

    fn optimizer(&mut self, v: Value, span: Span) -> Option<Optimizer> {
        let get = |args: &[Option<Value>], i: usize, default: f64| match args.get(i).cloned().flatten() {
            Some(Value::Num(n)) => n,
            _ => default,
        };
        match v {
            Value::Call("sgd", args) => Some(Optimizer::Sgd { lr: get(&args, 0, 0.01) }),
            Value::Call("momentum", args) => Some(Optimizer::Momentum {
                lr: get(&args, 0, 0.01),
                momentum: get(&args, 1, 0.9),
                nesterov: get(&args, 2, 0.0) == 1.0,
            }),
            Value::Call("adam", args) => Some(Optimizer::Adam {
                lr: get(&args, 0, 1e-3),
                beta1: get(&args, 1, 0.9),
                beta2: get(&args, 2, 0.999),
                eps: get(&args, 3, 1e-8),
            }),
            _ => {
                self.error(
                    "E-setting",
                    span,
                    "expected an optimizer",
                    "sgd(lr: ...), momentum(lr: ..., momentum: 0.9) or adam(lr: ...)",
                );
                None
            }
        }
    }

    fn check_eval(&mut self, e: &'p EvalDef) -> Option<EvalDecl> {
        // Eval blocks compute in f64: they show the lecture's numbers exactly.
        self.begin(DType::F64);
        self.allow_params = true;
        let mut values = vec![];
        let mut shows = vec![];
        let mut grads = vec![];
        let mut ok = true;
        for stmt in &e.body {
            match stmt {
                Stmt::Let { name, value } => {
                    let v = self.expr(value);
                    // A literal becomes a variable of the graph, so gradients can be taken wrt it.
                    let v = match literal_tensor(&v) {
                        Some(t) => {
                            let shape: Shape = t.shape.iter().map(|&n| Dim::Known(n)).collect();
                            let id = self.g.add_input(&name.name, shape, InputKind::Variable);
                            self.g.annotate(id, Some(&name.name), Some(name.span));
                            values.push(t);
                            Value::Tensor(id)
                        }
                        None => {
                            if let Value::Tensor(id) = v {
                                self.g.annotate(id, Some(&name.name), Some(value.span));
                            }
                            v
                        }
                    };
                    if matches!(v, Value::Error) {
                        ok = false;
                    }
                    self.bind(&name.name, v);
                }
                Stmt::Grad { of, wrt, span } => {
                    let v = self.expr(of);
                    let Some(f) = self.tensor(v, of.span) else {
                        ok = false;
                        continue;
                    };
                    if !self.g.shape(f).is_empty() {
                        let s = self.g.shape_str(self.g.shape(f));
                        self.error(
                            "E-shape",
                            of.span,
                            "grad needs a scalar",
                            format!("this is {s}; take sum(...) or mean(...) of it"),
                        );
                        ok = false;
                        continue;
                    }
                    let mut targets = vec![];
                    for w in wrt {
                        match self.lookup(&w.name) {
                            Some(Value::Tensor(id)) => targets.push((w.name.clone(), id)),
                            Some(Value::Error) => ok = false,
                            Some(_) => {
                                self.error(
                                    "E-type",
                                    w.span,
                                    format!("`{}` is not a tensor", w.name),
                                    "cannot take a gradient wrt this",
                                );
                                ok = false;
                            }
                            None => {
                                self.unknown_name(&w.name, w.span);
                                ok = false;
                            }
                        }
                    }
                    let of_name = match &of.kind {
                        ExprKind::Name(n) => n.clone(),
                        _ => self.text(of.span).to_string(),
                    };
                    grads.push(GradRequest { of_name, of: f, wrt: targets, span: *span });
                }
                Stmt::Expr(x) => {
                    let v = self.expr(x);
                    match self.tensor(v, x.span) {
                        Some(id) => shows.push((self.text(x.span).to_string(), id)),
                        None => ok = false,
                    }
                }
                Stmt::Error => ok = false,
                other => {
                    self.error(
                        "E-syntax",
                        stmt_span(other),
                        "not allowed in an eval block",
                        "use let, grad or an expression",
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        for (text, id) in &shows {
            self.g.outputs.push((text.clone(), *id));
        }
        Some(EvalDecl {
            name: e.name.as_ref().map(|n| n.name.clone()),
            graph: std::mem::take(&mut self.g),
            values,
            shows,
            grads,
            span: e.span,
        })
    }

    // ---- scopes ----

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
            "true" => return Some(Value::Num(1.0)),
            "false" => return Some(Value::Num(0.0)),
            "pi" => return Some(Value::Num(std::f64::consts::PI)),
            _ => {}
        }
        if let Some(sig) = lower::builtin(name) {
            return Some(match name {
                "zeros" => Value::Init(Init::Zeros),
                "xavier" => Value::Init(Init::Xavier),
                "he" => Value::Init(Init::He),
                _ => Value::Func(Callee::Builtin(sig)),
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
        let mut candidates: Vec<String> = self.scopes.iter().flat_map(|s| s.keys().cloned()).collect();
        candidates.extend(self.fn_names.keys().cloned());
        candidates.extend(self.model_names.keys().cloned());
        candidates.extend(self.params_by_name.keys().cloned());
        candidates.extend(lower::BUILTINS.iter().map(|s| s.name.to_string()));
        let mut d = Diagnostic::new("E-name", format!("unknown name `{name}`")).label(span, "not defined here");
        if let Some(s) = nearest(name, candidates.iter().map(String::as_str)) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        self.report(d);
        Value::Error
    }

    // ---- statements ----

    /// Run statements in the current scope; the result is the last bare expression or `return`.
    fn run_block(&mut self, body: &[Stmt]) -> Option<(Value, Span)> {
        let mut result = None;
        for stmt in body {
            match stmt {
                Stmt::Let { name, value } => {
                    if matches!(value.kind, ExprKind::Call { .. }) {
                        self.pending_instance = Some(name.name.clone());
                    }
                    let v = self.expr(value);
                    self.pending_instance = None;
                    if let Value::Tensor(id) = v {
                        if self.span_override.is_none() {
                            self.g.annotate(id, Some(&name.name), Some(value.span));
                        }
                    }
                    self.bind(&name.name, v);
                }
                Stmt::Param { name, ty, init, span } => self.param(name, ty, init.as_ref(), *span),
                Stmt::Return(e) => {
                    result = Some((self.expr(e), e.span));
                    break;
                }
                Stmt::Expr(e) => result = Some((self.expr(e), e.span)),
                Stmt::Grad { span, .. } => {
                    self.error("E-syntax", *span, "`grad` belongs in an eval block", "not allowed here");
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

    fn param(&mut self, name: &Ident, ty: &TypeExpr, init: Option<&Expr>, span: Span) {
        if !self.allow_params {
            self.error(
                "E-param",
                span,
                "parameters belong to layers and models",
                "a `fn` cannot own parameters; declare it with `layer` instead",
            );
            self.bind(&name.name, Value::Error);
            return;
        }
        let Some(shape) = self.shape_of_type(ty, false) else {
            self.bind(&name.name, Value::Error);
            return;
        };
        let init = match init {
            None if shape.len() >= 2 => Init::Xavier,
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
        if let Some(first) = self.params_by_name.get(&qualified).and_then(|&id| self.g.node(id).span) {
            self.report(
                Diagnostic::new("E-duplicate", format!("parameter `{qualified}` is declared twice"))
                    .label(name.span, "declared again here")
                    .label(first, "first declared here"),
            );
            return;
        }
        let id = self.g.add_param(&qualified, shape, init);
        self.g.annotate(id, None, Some(name.span));
        self.params_by_name.insert(qualified, id);
        self.bind(&name.name, Value::Tensor(id));
    }

    // ---- expressions ----

    fn expr(&mut self, e: &Expr) -> Value {
        match &e.kind {
            ExprKind::Int(n) => Value::Num(*n as f64),
            ExprKind::Float(x) => Value::Num(*x),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Name(n) => match self.lookup(n) {
                Some(v) => v,
                None => self.unknown_name(n, e.span),
            },
            ExprKind::List(items) => Value::List(items.iter().map(|i| self.expr(i)).collect()),
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
        }
    }

    /// Add a primitive node, turning a shape error into a diagnostic on the operands.
    fn node(&mut self, op: Op, operands: &[(NodeId, Span)], span: Span) -> Value {
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

    fn shape_error(&mut self, err: ShapeError, what: &str, operands: &[(NodeId, Span)], span: Span) -> Value {
        let shapes: Vec<Shape> = operands.iter().map(|o| self.g.shape(o.0).clone()).collect();
        let d = match &err {
            ShapeError::Mismatch { lhs_axis, rhs_axis, what } if operands.len() >= 2 => {
                let (a, b) = (&shapes[0], &shapes[1]);
                let (da, db) = (self.g.dim_name(a[*lhs_axis]), self.g.dim_name(b[*rhs_axis]));
                let headline = match *what {
                    "matmul" => format!("matmul inner dimensions differ: {da} vs {db}"),
                    "cannot broadcast" => {
                        format!("shapes {} and {} do not broadcast", self.g.shape_str(a), self.g.shape_str(b))
                    }
                    other => format!("{other}: {da} vs {db}"),
                };
                Diagnostic::new("E-shape", headline)
                    .label(operands[0].1, format!("this is {} (axis {lhs_axis} is {da})", self.g.shape_str(a)))
                    .label(operands[1].1, format!("this is {} (axis {rhs_axis} is {db})", self.g.shape_str(b)))
                    .note(match *what {
                        "matmul" => {
                            "for a @ b, the last dimension of a must equal the first dimension of b".to_string()
                        }
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
    fn tensor(&mut self, v: Value, span: Span) -> Option<NodeId> {
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
            Value::Error => None,
            other => {
                let what = describe_value(&other);
                self.error("E-type", span, format!("expected a tensor, found {what}"), format!("this is {what}"));
                None
            }
        }
    }

    fn binary(&mut self, op: BinOp, a: (Value, Span), b: (Value, Span), span: Span) -> Value {
        // Arithmetic on compile-time numbers stays compile-time (sizes such as units * 2).
        if let (Value::Num(x), Value::Num(y)) = (&a.0, &b.0) {
            if op != BinOp::MatMul {
                return Value::Num(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Pow => x.powf(*y),
                    BinOp::MatMul => unreachable!(),
                });
            }
        }
        if matches!(a.0, Value::Error) || matches!(b.0, Value::Error) {
            return Value::Error;
        }
        let (Some(ta), Some(tb)) = (self.tensor(a.0, a.1), self.tensor(b.0, b.1)) else {
            return Value::Error;
        };
        let operands = [(ta, a.1), (tb, b.1)];
        let prim = match op {
            BinOp::Add => Op::Add,
            BinOp::Sub => Op::Sub,
            BinOp::Mul => Op::Mul,
            BinOp::Div => Op::Div,
            BinOp::Pow => Op::Pow,
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

    fn index(&mut self, base: &Expr, indices: &[Expr], span: Span) -> Value {
        let b = self.expr(base);
        let mut idx = vec![];
        for i in indices {
            match self.expr(i) {
                Value::Num(n) if n.fract() == 0.0 => idx.push(n as i64),
                Value::Error => return Value::Error,
                _ => return self.error("E-type", i.span, "an index must be a whole number", "here"),
            }
        }
        match b {
            Value::List(items) => {
                if idx.len() != 1 {
                    return self.error("E-type", span, "a list takes one index", "here");
                }
                let n = items.len() as i64;
                let j = if idx[0] < 0 { idx[0] + n } else { idx[0] };
                if j < 0 || j >= n {
                    return self.error(
                        "E-shape",
                        indices[0].span,
                        format!("index {} is out of range for a list of {n}", idx[0]),
                        "out of range",
                    );
                }
                items[j as usize].clone()
            }
            Value::Error => Value::Error,
            v => {
                let Some(t) = self.tensor(v, base.span) else { return Value::Error };
                match lower::index(&mut self.g, t, &idx) {
                    Ok(id) => {
                        self.g.annotate(id, None, Some(span));
                        Value::Tensor(id)
                    }
                    Err(e) => self.shape_error(e, "indexing", &[(t, base.span)], span),
                }
            }
        }
    }

    fn field(&mut self, base: &Expr, field: &Ident, span: Span) -> Value {
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
            (Value::Tensor(_), other) => {
                let candidates: Vec<String> = self.params_by_name.keys().cloned().collect();
                let mut d = Diagnostic::new("E-name", format!("a tensor has no field `{other}`"))
                    .label(field.span, "unknown field")
                    .note("tensors have `.shape` and `.T`; a layer's parameters are `name.W` where `let name = layer(...)`");
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

    // ---- calls ----

    fn call(&mut self, callee: &Expr, args: &[Arg], span: Span) -> Value {
        let instance = self.pending_instance.take();
        let f = self.expr(callee);
        let callee_value = match f {
            Value::Func(c) => c,
            Value::Error => return Value::Error,
            other => {
                let what = describe_value(&other);
                return self.error(
                    "E-type",
                    callee.span,
                    format!("{what} cannot be called"),
                    format!("this is {what}"),
                );
            }
        };
        // Evaluate arguments in the caller's scope.
        let mut evaluated = vec![];
        for a in args {
            let v = self.expr(&a.value);
            evaluated.push((a.name.clone(), v, a.value.span));
        }
        if evaluated.iter().any(|(_, v, _)| matches!(v, Value::Error)) {
            return Value::Error;
        }
        match callee_value {
            Callee::Builtin(sig) => {
                let params: Vec<&str> = sig.params.to_vec();
                let Some(bound) =
                    self.bind_args(sig.name, &params, sig.required, sig.variadic, evaluated, span, callee.span)
                else {
                    return Value::Error;
                };
                self.builtin(sig, bound, span)
            }
            Callee::User(i) => {
                let info = &self.fns[i];
                let def = info.def;
                let (is_layer, in_prelude) = (info.is_layer, info.in_prelude);
                let params: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
                let required = def.params.iter().take_while(|p| p.default.is_none()).count();
                let Some(bound) =
                    self.bind_args(&def.name.name, &params, required, false, evaluated, span, callee.span)
                else {
                    return Value::Error;
                };
                self.call_user(def, is_layer, in_prelude, bound, instance, span)
            }
            Callee::Model(i) => {
                let m = self.models[i];
                let params: Vec<&str> = m.inputs.iter().map(|p| p.name.name.as_str()).collect();
                let Some(bound) =
                    self.bind_args(&m.name.name, &params, params.len(), false, evaluated, span, callee.span)
                else {
                    return Value::Error;
                };
                let args: Vec<(Value, Span)> = bound.values.into_iter().map(|v| v.expect("all required")).collect();
                if self.depth >= MAX_DEPTH {
                    return self.error("E-recursion", span, "calls nest too deeply", "recursion is not supported");
                }
                self.depth += 1;
                let saved_prefix = self.prefix.clone();
                if let Some(name) = instance {
                    self.prefix.push(name);
                }
                let outs = self.expand_model(m, Some(args), span);
                self.prefix = saved_prefix;
                self.depth -= 1;
                match outs {
                    Some(o) if o.len() == 1 => Value::Tensor(o[0].1),
                    Some(_) => self.error("E-type", span, "a model with several outputs cannot be called", "here"),
                    None => Value::Error,
                }
            }
        }
    }

    /// Match positional and named arguments to parameters.
    #[allow(clippy::too_many_arguments)]
    fn bind_args(
        &mut self,
        fname: &str,
        params: &[&str],
        required: usize,
        variadic: bool,
        args: Vec<(Option<Ident>, Value, Span)>,
        span: Span,
        callee_span: Span,
    ) -> Option<Bound> {
        let takes = || {
            let ps: Vec<String> = params
                .iter()
                .enumerate()
                .map(|(i, p)| if i < required { p.to_string() } else { format!("{p}?") })
                .collect();
            if variadic {
                format!("{fname}(tensors...)")
            } else {
                format!("{fname}({})", ps.join(", "))
            }
        };
        let mut bound = Bound { values: vec![None; params.len()], rest: vec![] };
        let mut positional = 0;
        for (name, value, vspan) in args {
            match name {
                None if variadic => bound.rest.push((value, vspan)),
                None => {
                    if positional >= params.len() {
                        self.report(
                            Diagnostic::new("E-arity", format!("`{fname}` takes at most {} arguments", params.len()))
                                .label(vspan, "this argument is one too many")
                                .label(callee_span, format!("`{fname}` is called here"))
                                .note(format!("it takes {}", takes())),
                        );
                        return None;
                    }
                    bound.values[positional] = Some((value, vspan));
                    positional += 1;
                }
                Some(n) => {
                    let Some(i) = params.iter().position(|p| *p == n.name) else {
                        let mut d = Diagnostic::new("E-arity", format!("`{fname}` has no parameter `{}`", n.name))
                            .label(n.span, "unknown named argument")
                            .note(format!("it takes {}", takes()));
                        if let Some(s) = nearest(&n.name, params.iter().copied()) {
                            d = d.help(format!("did you mean `{s}`?"));
                        }
                        self.report(d);
                        return None;
                    };
                    if bound.values[i].is_some() {
                        self.report(
                            Diagnostic::new("E-arity", format!("argument `{}` is given twice", n.name))
                                .label(n.span, "given again here")
                                .note(format!("`{fname}` takes {}", takes())),
                        );
                        return None;
                    }
                    bound.values[i] = Some((value, vspan));
                }
            }
        }
        let missing: Vec<&str> = (0..required).filter(|&i| bound.values[i].is_none()).map(|i| params[i]).collect();
        if !missing.is_empty() {
            let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
            self.report(
                Diagnostic::new("E-arity", format!("`{fname}` is missing {list}"))
                    .label(span, format!("missing {list}"))
                    .note(format!("it takes {}", takes())),
            );
            return None;
        }
        Some(bound)
    }

    fn call_user(
        &mut self,
        def: &'p FnDef,
        is_layer: bool,
        in_prelude: bool,
        bound: Bound,
        instance: Option<String>,
        span: Span,
    ) -> Value {
        if self.depth >= MAX_DEPTH {
            return self.error(
                "E-recursion",
                span,
                format!("calls of `{}` nest too deeply", def.name.name),
                "recursion is not supported",
            );
        }
        // Parameters: given values, else defaults evaluated in the function's own scope.
        let mut scope: HashMap<String, Value> = HashMap::new();
        let saved_scopes = std::mem::take(&mut self.scopes);
        let saved_override = self.span_override;
        if in_prelude && self.span_override.is_none() {
            self.span_override = Some(span);
        }
        self.scopes.push(HashMap::new());
        for (p, given) in def.params.iter().zip(bound.values) {
            let v = match given {
                Some((v, _)) => v,
                None => match &p.default {
                    Some(d) => self.expr(d),
                    None => Value::Error,
                },
            };
            self.bind(&p.name.name, v.clone());
            scope.insert(p.name.name.clone(), v);
        }
        self.scopes = vec![scope];
        let saved_prefix = self.prefix.clone();
        let saved_allow = self.allow_params;
        if is_layer {
            if !self.allow_params {
                self.scopes = saved_scopes;
                self.prefix = saved_prefix;
                self.span_override = saved_override;
                return self.error(
                    "E-param",
                    span,
                    format!(
                        "layer `{}` owns parameters and can only be used in a model or another layer",
                        def.name.name
                    ),
                    "called here",
                );
            }
            let key = format!("{}|{}", self.prefix.join("."), def.name.name);
            let name = instance.unwrap_or_else(|| {
                let n = self.instance_counts.entry(key).or_insert(0);
                *n += 1;
                format!("{}_{}", def.name.name, n)
            });
            self.prefix.push(name);
        } else {
            self.allow_params = false;
        }
        self.depth += 1;
        let result = self.run_block(&def.body);
        self.depth -= 1;
        self.scopes = saved_scopes;
        self.prefix = saved_prefix;
        self.allow_params = saved_allow;
        self.span_override = saved_override;
        match result {
            Some((v, _)) => v,
            None => self.error(
                "E-type",
                span,
                format!("`{}` returns nothing", def.name.name),
                "end its body with an expression",
            ),
        }
    }

    fn builtin(&mut self, sig: &'static Signature, b: Bound, span: Span) -> Value {
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
    fn l2(&mut self, b: Bound, span: Span) -> Value {
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
    fn reshape_target(&mut self, x: NodeId, v: Value, span: Span) -> Option<Shape> {
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

fn stmt_span(s: &Stmt) -> Span {
    match s {
        Stmt::Let { name, value } => name.span.to(value.span),
        Stmt::Param { span, .. } | Stmt::Grad { span, .. } => *span,
        Stmt::Return(e) | Stmt::Expr(e) => e.span,
        Stmt::Setting { key, value } => key.span.to(value.span),
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
        Value::Call(n, _) => format!("a `{n}` setting"),
        Value::Error => "an error".into(),
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
