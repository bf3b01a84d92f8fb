//! Items: registering the file's definitions, models (their inputs, body and declared
//! outputs) and eval blocks.

use std::collections::HashMap;

use super::*;

impl<'p> Checker<'p> {
    // ---- items ----

    /// Record the names of all top-level definitions, reporting duplicates.
    pub(super) fn register(&mut self, program: &'p SourceFile, in_prelude: bool) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        for item in &program.items {
            let name = match item {
                Item::Fn(f) | Item::Layer(f) => Some(&f.name),
                Item::Model(m) => Some(&m.name),
                Item::Data(d) => d.name.as_ref(),
                _ => None,
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

    pub(super) fn run(&mut self, program: &'p SourceFile) -> Checked {
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
                        // `--train NAME` picks a block by name, so names must differ.
                        if let Some(first) = out.trains.iter().find(|o| o.name == train.name) {
                            let first_span = Span::new(first.span.start, first.span.start);
                            self.report(
                                Diagnostic::new("E-duplicate", format!("two train blocks are named `{}`", train.name))
                                    .label(t.keyword_span, "the second")
                                    .label(first_span, "the first")
                                    .help(format!(
                                        "name them: `train NAME {{ model: {} ... }}`, and pick one with `--train NAME`",
                                        train.model
                                    )),
                            );
                        }
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
    pub(super) fn check_unused_fn(&mut self, f: &FnDef) {
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

    /// Start a fresh graph, elaborated in inference mode unless the caller says otherwise.
    pub(super) fn begin(&mut self, dtype: DType) {
        self.g = Graph::new(dtype);
        self.scopes = vec![HashMap::new()];
        self.prefix.clear();
        self.instance_counts.clear();
        self.params_by_name.clear();
        self.layers.clear();
        self.pending_instance = None;
        self.allow_params = false;
        self.in_eval = false;
        self.share_params = false;
        self.span_override = None;
        self.depth = 0;
        self.frames.clear();
        self.training = false;
        self.mode_used = false;
        self.mode_branches = 0;
        self.updates.clear();
        self.random_key = None;
        self.streams = 0;
        self.whole_inputs.clear();
    }

    /// Whether `id` is an input declared `int`.
    fn is_integer_input(&self, id: NodeId) -> bool {
        matches!(self.g.node(id).op, Op::Input { index } if self.g.inputs[index].integer)
    }

    /// Whether a declared element type says integer: `int` (true), `float` or none (false);
    /// None after a diagnostic for anything else.
    fn element_type(&mut self, elem: Option<&Ident>) -> Option<bool> {
        match elem.map(|e| e.name.as_str()) {
            None | Some("float") => Some(false),
            Some("int") => Some(true),
            Some(other) => {
                let span = elem.expect("named").span;
                self.error("E-type", span, format!("unknown element type `{other}`"), "expected `int` or `float`");
                None
            }
        }
    }

    pub(super) fn shape_of_type(&mut self, ty: &TypeExpr, symbolic_ok: bool) -> Option<Shape> {
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

    /// A model's forward pass in inference mode. A model that asks for the mode is also
    /// elaborated in training mode, for the errors only that mode meets and to check that
    /// both modes declare the same parameters and state.
    /// (A model without parameters is legal, and useful in eval blocks.)
    pub(super) fn check_model(&mut self, m: &'p ModelDef) -> Option<Model> {
        let (graph, layers) = self.model_graph(m, false)?;
        if self.mode_used {
            let (training, _) = self.model_graph(m, true)?;
            self.same_parameters(&training, &graph, &m.name.name, m.name.span)?;
        }
        Some(Model { name: m.name.name.clone(), graph, layers, span: m.span })
    }

    /// The model's graph in one mode and its layer instances.
    fn model_graph(&mut self, m: &'p ModelDef, training: bool) -> Option<(Graph, Vec<Layer>)> {
        self.begin(DType::F32);
        self.training = training;
        let outputs = self.expand_model(m, None, m.span)?;
        self.g.outputs.extend(outputs);
        self.g.updates = self.graph_updates();
        Some((std::mem::take(&mut self.g), std::mem::take(&mut self.layers)))
    }

    /// The two modes of a program must have the same parameters and state, in one order:
    /// the train step writes what inference reads. (Declarations inside `if training` are
    /// refused where they are written; this catches the rest, e.g. a layer called under a
    /// condition derived from the mode.)
    pub(super) fn same_parameters(
        &mut self,
        training: &Graph,
        inference: &Graph,
        what: &str,
        span: Span,
    ) -> Option<()> {
        let describe = |g: &Graph| -> Vec<String> {
            g.params
                .iter()
                .map(|p| {
                    let state = if p.kind == crate::ir::graph::ParamKind::State { "state " } else { "" };
                    format!("{state}{}: {}", p.name, g.shape_str(&p.shape))
                })
                .collect()
        };
        let (a, b) = (describe(training), describe(inference));
        if a == b {
            return Some(());
        }
        let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        let said = |list: &[String]| list.get(first).cloned().unwrap_or_else(|| "nothing".into());
        self.report(
            Diagnostic::new(
                "E-param",
                format!("`{what}` declares different parameters in training and inference mode"),
            )
            .label(span, "this model")
            .note(format!(
                "parameter {} is `{}` in training mode and `{}` in inference mode",
                first + 1,
                said(&a),
                said(&b)
            ))
            .help("declare every parameter and state tensor whatever the mode, outside `if training`"),
        );
        None
    }

    /// Expand a model's body into the current graph. With `args`, the inputs are those values
    /// (a call of the model); without, they become graph inputs. Returns the named outputs.
    pub(super) fn expand_model(
        &mut self,
        m: &'p ModelDef,
        args: Option<Vec<(Value, Span)>>,
        site: Span,
    ) -> Option<Vec<(String, NodeId)>> {
        let symbols_before = self.g.symbols.len();
        let graph_before = (self.g.nodes.len(), self.g.inputs.len(), self.g.params.len());
        let mut scope = HashMap::new();
        // (name, symbol) of each symbolic size in the signature.
        let mut size_names: Vec<(String, Dim)> = vec![];
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
            let Some(integer) = self.element_type(input.elem.as_ref()) else {
                ok = false;
                continue;
            };
            for (d, &dim) in input.ty.dims.iter().zip(&shape) {
                if let (DimExpr::Named(id), Dim::Sym(_)) = (d, dim) {
                    size_names.push((id.name.clone(), dim));
                }
            }
            let value = match &args {
                None => {
                    let id = self.g.add_input(&input.name.name, shape, InputKind::Data);
                    if let Some(info) = self.g.inputs.last_mut() {
                        info.integer = integer;
                    }
                    Value::Tensor(id)
                }
                Some(args) => {
                    let (v, span) = args[i].clone();
                    match self.tensor(v, span) {
                        Some(t) if integer && !self.is_integer(t) => {
                            let shape = self.g.shape_str(self.g.shape(t));
                            self.report(
                                Diagnostic::new(
                                    "E-type",
                                    format!(
                                        "model `{}` takes integers for `{}`, and this tensor holds floats",
                                        m.name.name, input.name.name
                                    ),
                                )
                                .label(span, format!("this is a float tensor {shape}"))
                                .label(input.name.span, "declared `int` here"),
                            );
                            ok = false;
                            Value::Error
                        }
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
        // The signature's symbolic sizes are names in the body (`reshape(x, [B, 8, 8])`): the
        // symbol itself, or in a call the size of the argument that bound it.
        for (name, sym) in size_names {
            let dim = *bindings.get(&sym).unwrap_or(&sym);
            scope.entry(name).or_insert(Value::Dim(dim));
        }
        let saved_scopes = self.swap_scopes(vec![scope]);
        let saved_allow = std::mem::replace(&mut self.allow_params, true);
        let params_before = self.g.params.len();
        let saved_pending = self.pending_instance.take();
        let result = self.run_block(&m.body);
        self.pending_instance = saved_pending;
        // The model's own uses decide each new parameter's role (before a loss uses it).
        let roles = self.g.infer_roles(params_before..self.g.params.len());
        for (p, role) in (params_before..).zip(roles) {
            self.g.params[p].role = role;
        }
        let final_scope = self.scopes.pop().unwrap_or_default();
        self.restore_scopes(saved_scopes);
        self.allow_params = saved_allow;

        let mut outputs = vec![];
        for (i, out) in m.outputs.iter().enumerate() {
            if let Some(elem) = out.elem.as_ref().filter(|e| e.name != "float") {
                self.error(
                    "E-type",
                    elem.span,
                    "model outputs are float tensors",
                    "an input may be `int`, not an output",
                );
                return None;
            }
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
        if args.is_some() {
            self.drop_unused_symbols(symbols_before, graph_before);
        }
        Some(outputs)
    }

    /// Class indices known at compile time (a literal, or an eval block's `let` variable of
    /// `values`) that a one-hot encoding reads must be whole numbers in range, as when they
    /// come from a data file: reported here, at the source, rather than when the code runs.
    pub(super) fn check_known_labels(&mut self, values: &[Tensor]) -> bool {
        let mut ok = true;
        for i in 0..self.g.nodes.len() {
            let node = &self.g.nodes[i];
            let Op::OneHot { classes } = node.op else { continue };
            let Some(&x) = node.inputs.first() else { continue };
            let data: &[f64] = match &self.g.node(x).op {
                Op::Literal { values } => values,
                Op::Input { index } => match values.get(*index) {
                    Some(t) => &t.data,
                    None => continue,
                },
                _ => continue,
            };
            let bad = data.iter().find(|c| !(c.fract() == 0.0 && **c >= 0.0 && **c < classes as f64)).copied();
            let (Some(c), Some(span)) = (bad, node.span.or(self.g.node(x).span)) else { continue };
            self.error(
                "E-type",
                span,
                format!("label {c} is not a class index for {classes} classes"),
                format!("class indices are whole numbers in 0..{classes}"),
            );
            ok = false;
        }
        ok
    }

    /// Forget the symbols from `from` on if nothing uses them: a called model's signature
    /// names its sizes (`B`), but they are bound to its arguments' sizes, and an unbound
    /// symbol left in the caller's graph would ask for a size no input gives.
    ///
    /// Only what the call added (`since`: the node, input and parameter counts before it) can
    /// use them, so only that is searched: a model called ten thousand times costs ten
    /// thousand small searches, not ten thousand searches of the whole graph.
    fn drop_unused_symbols(&mut self, from: usize, since: (usize, usize, usize)) {
        if from == self.g.symbols.len() {
            return;
        }
        let used = |d: &Dim| matches!(d, Dim::Sym(s) if s.0 as usize >= from);
        let (nodes, inputs, params) = since;
        let g = &self.g;
        let in_use = g
            .nodes
            .get(nodes..)
            .unwrap_or_default()
            .iter()
            .any(|n| n.shape.iter().any(used) || matches!(&n.op, Op::DimSize { dim } if used(dim)))
            || g.inputs.get(inputs..).unwrap_or_default().iter().any(|i| i.shape.iter().any(used))
            || g.params.get(params..).unwrap_or_default().iter().any(|p| p.shape.iter().any(used));
        if !in_use {
            self.g.symbols.truncate(from);
        }
    }

    /// Does `got` fit `declared`, binding the declared symbols to the sizes they meet?
    pub(super) fn unify(&self, got: Shape, declared: &Shape, bindings: &mut HashMap<Dim, Dim>) -> bool {
        got.len() == declared.len()
            && got.iter().zip(declared).all(|(&g, &d)| match d {
                Dim::Known(_) => g == d,
                Dim::Sym(_) => *bindings.entry(d).or_insert(g) == g,
            })
    }

    pub(super) fn check_eval(&mut self, e: &'p EvalDef) -> Option<EvalDecl> {
        // Eval blocks compute in f64: they show the lecture's numbers exactly.
        self.begin(DType::F64);
        self.allow_params = true;
        self.in_eval = true;
        // `training: true` elaborates the block in training mode (batch statistics, random
        // numbers of seed 0 at step 0); the default is inference.
        for stmt in &e.body {
            if let Stmt::Setting { key, value } = stmt {
                if key.name != "training" {
                    self.error(
                        "E-setting",
                        key.span,
                        format!("unknown setting `{}`", key.name),
                        "eval blocks take `training: true` or `training: false`",
                    );
                    return None;
                }
                let v = self.expr(value);
                self.training = self.boolean(v, value.span)?;
            }
        }
        let mut values = vec![];
        let mut shows = vec![];
        let mut alphabets = vec![];
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
                            self.whole_inputs.resize(self.g.inputs.len(), false);
                            self.whole_inputs[self.g.inputs.len() - 1] = t.data.iter().all(|v| v.fract() == 0.0);
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
                Stmt::LetList { names, value, span } => {
                    let v = self.expr(value);
                    ok &= !matches!(v, Value::Error);
                    self.let_list(names, v, value.span, *span);
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
                            Some(Value::Tensor(id)) if self.is_integer_input(id) => {
                                self.error(
                                    "E-type",
                                    w.span,
                                    format!("`{}` is an integer input", w.name),
                                    "integers have no gradient",
                                );
                                ok = false;
                            }
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
                    self.decodes.clear();
                    let v = self.expr(x);
                    let decodes = std::mem::take(&mut self.decodes);
                    // decode(...) is printed only as the whole shown expression.
                    let alphabet = match &decodes[..] {
                        [] => None,
                        [(span, alphabet)] if *span == x.span => Some(alphabet.clone()),
                        [(span, _), ..] => {
                            self.error(
                                "E-decode",
                                *span,
                                "decode prints an eval block's value as text",
                                "write it alone as the shown expression: `decode(ids, alphabet)`",
                            );
                            ok = false;
                            None
                        }
                    };
                    match self.tensor(v, x.span) {
                        Some(id) => {
                            shows.push((self.text(x.span).to_string(), id));
                            alphabets.push(alphabet);
                        }
                        None => ok = false,
                    }
                }
                Stmt::For(f) => {
                    let before = self.diags.len();
                    self.for_loop(f);
                    ok &= self.diags.len() == before;
                }
                Stmt::Error => ok = false,
                Stmt::Setting { .. } => {}
                other => {
                    self.error(
                        "E-syntax",
                        stmt_span(other),
                        "not allowed in an eval block",
                        "use let, for, grad or an expression",
                    );
                    ok = false;
                }
            }
            // A decode anywhere but as a shown expression would print nothing.
            for (span, _) in std::mem::take(&mut self.decodes) {
                self.error(
                    "E-decode",
                    span,
                    "decode prints an eval block's value as text",
                    "write it alone as a shown expression: `decode(ids, alphabet)`",
                );
                ok = false;
            }
        }
        if !ok || !self.check_known_labels(&values) {
            return None;
        }
        for (text, id) in &shows {
            self.g.outputs.push((text.clone(), *id));
        }
        // The random key (seed 0, step 0) takes its place among the variables' values.
        let mut literals = values.into_iter();
        let values = self
            .g
            .inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::RandomKey => Some(crate::ir::ops::random::key(0, 0)),
                _ => literals.next(),
            })
            .collect::<Option<Vec<Tensor>>>()?;
        let integer_shows = self.integer_nodes(&shows.iter().map(|(_, id)| *id).collect::<Vec<_>>());
        Some(EvalDecl {
            name: e.name.as_ref().map(|n| n.name.clone()),
            graph: std::mem::take(&mut self.g),
            values,
            shows,
            integer_shows,
            alphabets,
            grads,
            span: e.span,
        })
    }
}
