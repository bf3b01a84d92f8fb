//! Train blocks: which model and data block, the loss over the model's outputs and the data's
//! fields, the optimizer and its schedule, the metrics, frozen parameters, gradient clipping
//! and warmup. The metrics a train block reports are checked in `metrics.rs`.
//!
//! Data fields bind to model inputs by name; every other field the loss names becomes an input
//! of the train graph (kind `Label`) of shape `[B, ...its per-sample shape]`.

use std::collections::HashMap;

use super::*;

/// What the checker knows of a data field when it checks a train block.
#[derive(Clone, Debug)]
pub(super) struct FieldInfo {
    pub(super) name: String,
    pub(super) ty: FieldType,
    /// The per-sample shape, when declared or given by a model input.
    pub(super) shape: Option<Vec<usize>>,
    /// Where the field is declared (none for a source's implicit fields).
    pub(super) span: Option<Span>,
}

/// `*` matches any run of characters (dots included); everything else matches itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && p[i] != '*' && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

impl<'p> Checker<'p> {
    pub(super) fn check_train(&mut self, t: &'p Settings, checked: &Checked) -> Option<TrainDecl> {
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
            "freeze",
            "clip_norm",
            "warmup",
        ];
        let settings = self.settings(t, &allowed, &["loss", "model", "data", "metrics", "freeze"])?;
        let raw = |key: &str| {
            t.body.iter().find_map(|s| match s {
                Stmt::Setting { key: k, value } if k.name == key => Some(value),
                _ => None,
            })
        };
        // Which model, and the block's name: `train NAME { model: M }` trains M and is called
        // NAME; `train M { }` trains M; `train NAME { }` in a file of one model trains it.
        let model_setting = settings.get("model").map(|(_, s)| (self.text(*s).trim().to_string(), *s));
        let only_model = (self.models.len() == 1).then(|| self.models[0].name.name.clone());
        let (name, model) = match (&t.name, model_setting) {
            (Some(n), Some(m)) => (n.name.clone(), Some(m)),
            (Some(n), None) if !self.model_names.contains_key(&n.name) && only_model.is_some() => {
                (n.name.clone(), only_model.map(|m| (m, n.span)))
            }
            (Some(n), None) => (n.name.clone(), Some((n.name.clone(), n.span))),
            (None, Some(m)) => (m.0.clone(), Some(m)),
            (None, None) => (only_model.clone().unwrap_or_default(), only_model.map(|m| (m, t.keyword_span))),
        };
        let Some((model_name, mspan)) = model else {
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
            None if checked.data.len() > 1 => {
                let names: Vec<String> = checked
                    .data
                    .iter()
                    .map(|d| if d.name.is_empty() { "an unnamed one".into() } else { format!("`{}`", d.name) })
                    .collect();
                self.report(
                    Diagnostic::new(
                        "E-setting",
                        format!(
                            "the file has {} data blocks, {}: which one does this train block use?",
                            names.len(),
                            names.join(" and ")
                        ),
                    )
                    .label(t.keyword_span, "this train block has no `data` setting")
                    .help("name the data blocks (`data NAME { ... }`) and add `data: NAME` to the train block"),
                );
                return None;
            }
            None => None,
        };

        // The train step's graph in training mode (left in `self.g` for the metrics and
        // `freeze`); evaluation's in inference mode, the same graph when nothing in the
        // program asks for the mode.
        let (outputs, fields) = self.loss_graph(checked, data, t, m, true)?;
        let eval_graph = if self.mode_used {
            let graph = std::mem::take(&mut self.g);
            let inference = self.loss_graph(checked, data, t, m, false);
            let eval_graph = std::mem::replace(&mut self.g, graph);
            inference?;
            let graph = std::mem::take(&mut self.g);
            let same = self.same_parameters(&graph, &eval_graph, &m.name.name, m.name.span);
            self.g = graph;
            same?;
            Some(eval_graph)
        } else {
            None
        };

        let num = |c: &mut Self, key: &str, range: Range| -> Option<Option<f64>> {
            match settings.get(key).cloned() {
                None => Some(None),
                Some((Value::Num(n), _)) if range.holds(n) => Some(Some(n)),
                Some((Value::Error, _)) => None,
                Some((other, s)) => {
                    let what = describe_value(&other);
                    c.error("E-type", s, format!("`{key}` must be {}", range.expected()), format!("this is {what}"));
                    None
                }
            }
        };
        let whole = |c: &mut Self, key: &str, min: f64| -> Option<Option<usize>> {
            match settings.get(key).cloned() {
                None => Some(None),
                Some((Value::Num(n), _)) if n >= min && n.fract() == 0.0 && n < 1e15 => Some(Some(n as usize)),
                Some((Value::Error, _)) => None,
                Some((other, s)) => {
                    let what = describe_value(&other);
                    c.error("E-type", s, format!("`{key}` must be a whole number >= {min}"), format!("this is {what}"));
                    None
                }
            }
        };
        // Every setting is read before any `?`, so each wrong one is reported.
        let (steps, epochs) = (whole(self, "steps", 1.0), whole(self, "epochs", 1.0));
        let batch = whole(self, "batch", 1.0);
        let seed = whole(self, "seed", 0.0);
        let warmup = whole(self, "warmup", 0.0);
        let weight_decay = num(self, "weight_decay", Range::NonNegative);
        let clip_norm = num(self, "clip_norm", Range::Positive);
        let drop_last = match settings.get("drop_last").cloned() {
            None => Some(false),
            Some((v, s)) => self.boolean(v, s),
        };
        let optimizer = match settings.get("optimizer").cloned() {
            None => Some(Optimizer::Sgd { lr: 0.01 }),
            Some((v, s)) => self.optimizer(v, s),
        };
        let schedule = match settings.get("schedule").cloned() {
            None => Some(Schedule::Constant),
            Some((v, s)) => self.schedule(v, s),
        };
        let metrics = self.metrics(raw("metrics"), &outputs, &fields);
        let frozen = match raw("freeze") {
            None => Some(vec![]),
            Some(e) => self.frozen(e),
        };
        let length = match (steps?, epochs?) {
            (Some(_), Some(_)) => {
                self.error("E-setting", t.keyword_span, "give `steps` or `epochs`, not both", "this train block");
                return None;
            }
            (Some(s), None) => Length::Steps(s),
            (None, Some(e)) => Length::Epochs(e),
            (None, None) => Length::Epochs(1),
        };
        let (batch, seed, weight_decay) = (batch?, seed?.unwrap_or(0) as u64, weight_decay?.unwrap_or(0.0));
        let (drop_last, optimizer, schedule) = (drop_last?, optimizer?, schedule?);
        let (metrics, frozen, clip_norm, warmup) = (metrics?, frozen?, clip_norm?, warmup?.unwrap_or(0));
        // Literal labels in the loss (`one_hot([0, 9], 3)`) are checked where they are written.
        if !self.check_known_labels(&[]) {
            return None;
        }
        Some(TrainDecl {
            name,
            model: model_name,
            data,
            eval_graph: eval_graph.unwrap_or_else(|| self.g.clone()),
            graph: std::mem::take(&mut self.g),
            optimizer,
            schedule,
            weight_decay,
            length,
            batch,
            drop_last,
            seed,
            metrics,
            frozen,
            clip_norm,
            warmup,
            span: t.span,
        })
    }

    /// The graph of a train block in one mode, left in `self.g`: the model's forward pass,
    /// then the loss over its outputs and the data's fields; in training mode with the state
    /// updates (`<-`). Returns the model's outputs and the fields.
    fn loss_graph(
        &mut self,
        checked: &Checked,
        data: Option<usize>,
        t: &'p Settings,
        m: &'p ModelDef,
        training: bool,
    ) -> Option<(Vec<(String, NodeId)>, Vec<FieldInfo>)> {
        self.begin(DType::F32);
        self.training = training;
        let outputs = self.expand_model(m, None, t.span)?;
        let batch = self.g.inputs.first().and_then(|i| i.shape.first().copied()).unwrap_or(Dim::Known(1));
        let fields = self.fields_of(checked, data, t, m)?;
        let mut scope = HashMap::new();
        for (i, node) in self.g.nodes.iter().enumerate() {
            match node.op {
                Op::Input { index } if self.g.inputs[index].kind != InputKind::RandomKey => {
                    scope.insert(self.g.inputs[index].name.clone(), Value::Tensor(NodeId(i as u32)));
                }
                _ => {}
            }
        }
        for (out, _) in &outputs {
            if let Some(f) = fields.iter().find(|f| &f.name == out && !scope.contains_key(out)) {
                let mut d = Diagnostic::new(
                    "E-duplicate",
                    format!("`{out}` is both a data field and an output of model `{}`", m.name.name),
                )
                .label(t.keyword_span, "the loss could not tell them apart");
                if let Some(s) = f.span {
                    d = d.label(s, "the field");
                }
                self.report(d.help("rename the field or the output"));
                return None;
            }
        }
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
        // Each field the loss reads (and no model input already is) becomes a graph input.
        let mut used = vec![];
        names_in(loss_expr, &mut used);
        for f in &fields {
            if scope.contains_key(&f.name) || !used.contains(&f.name) {
                continue;
            }
            let per_sample = match (&f.shape, f.ty) {
                (Some(s), _) => s.clone(),
                (None, FieldType::Int) => vec![],
                (None, FieldType::Float) => {
                    let mut d = Diagnostic::new(
                        "E-shape",
                        format!("the loss reads field `{}`, whose per-sample shape is not declared", f.name),
                    )
                    .label(loss_expr.span, "used here");
                    if let Some(s) = f.span {
                        d = d.label(s, "declared here");
                    }
                    self.report(d.help(format!(
                        "give its shape, e.g. `{}: npy(\"{}.npy\", float, [1])` for one value per sample",
                        f.name, f.name
                    )));
                    return None;
                }
            };
            let mut shape = vec![batch];
            shape.extend(per_sample.iter().map(|&d| Dim::Known(d)));
            let id = self.g.add_input(&f.name, shape, InputKind::Label);
            // An int field holds whole numbers: the loss may index with it (`take(p, labels)`).
            if let Some(info) = self.g.inputs.last_mut() {
                info.integer = f.ty == FieldType::Int;
            }
            scope.insert(f.name.clone(), Value::Tensor(id));
        }
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
        self.g.outputs.extend(outputs.iter().cloned());
        self.g.updates = self.graph_updates();
        Some((outputs, fields))
    }

    /// The fields a train block's data gives, checked against the model's inputs (already in
    /// the graph): named fields bind to the inputs of the same name; a `source` gives the one
    /// model input and `labels`. Without a data block, `labels` is there for the loss.
    fn fields_of(
        &mut self,
        checked: &Checked,
        data: Option<usize>,
        t: &Settings,
        m: &ModelDef,
    ) -> Option<Vec<FieldInfo>> {
        // (name, per-sample shape, declared int) of each model input.
        let inputs: Vec<(String, Vec<Option<usize>>, bool)> = self
            .g
            .inputs
            .iter()
            .filter(|i| i.kind == InputKind::Data)
            .map(|i| (i.name.clone(), i.shape.iter().skip(1).map(|d| d.known()).collect(), i.integer))
            .collect();
        let ty_of = |integer: bool| if integer { FieldType::Int } else { FieldType::Float };
        let labels = FieldInfo { name: "labels".into(), ty: FieldType::Int, shape: Some(vec![]), span: None };
        let Some(d) = data.map(|i| &checked.data[i]) else {
            let mut fields: Vec<FieldInfo> = inputs
                .iter()
                .map(|(n, s, integer)| FieldInfo {
                    name: n.clone(),
                    ty: ty_of(*integer),
                    shape: s.iter().copied().collect(),
                    span: None,
                })
                .collect();
            fields.push(labels);
            return Some(fields);
        };
        if d.fields.is_empty() {
            // A source feeds the model's one input.
            if inputs.len() != 1 {
                let names: Vec<&str> = inputs.iter().map(|i| i.0.as_str()).collect();
                self.report(
                    Diagnostic::new(
                        "E-setting",
                        format!(
                            "data `{}` has a `source`, which feeds one model input, but the model has {}",
                            d.name,
                            inputs.len()
                        ),
                    )
                    .label(t.keyword_span, "this train block")
                    .label(Span::new(d.span.start, d.span.start + "data".len()), "the data block")
                    .note(format!("the model's inputs are: {}", names.join(", ")))
                    .help("declare one field per model input, e.g. `x: npy(\"x.npy\")`"),
                );
                return None;
            }
            let (name, shape, integer) = &inputs[0];
            let x = FieldInfo {
                name: name.clone(),
                ty: ty_of(*integer),
                shape: shape.iter().copied().collect(),
                span: None,
            };
            return Some(vec![x, labels]);
        }
        let mut ok = true;
        for (input, shape, integer) in &inputs {
            match d.fields.iter().find(|f| &f.name == input) {
                None => {
                    let names: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
                    let declared_at =
                        m.inputs.iter().find(|i| &i.name.name == input).map_or(t.keyword_span, |i| i.name.span);
                    let mut diag = Diagnostic::new(
                        "E-setting",
                        format!("model input `{input}` has no field in data `{}`", d.name),
                    )
                    .label(declared_at, "this input")
                    .label(t.keyword_span, "trained here")
                    .label(Span::new(d.span.start, d.span.start + "data".len()), "the data block")
                    .note(format!("fields bind to model inputs by name; the fields are: {}", names.join(", ")));
                    if let Some(n) = nearest(input, names.iter().copied()) {
                        diag = diag.help(format!("did you mean to call the field `{n}` `{input}`?"));
                    }
                    self.report(diag);
                    ok = false;
                }
                Some(f) => {
                    let declared: Option<Vec<usize>> = shape.iter().copied().collect();
                    if let (Some(fs), Some(ms)) = (&f.shape, &declared) {
                        if fs != ms {
                            let (fs_s, ms_s) = (dims("B", fs), dims("B", ms));
                            let declared_at =
                                m.inputs.iter().find(|i| &i.name.name == input).map_or(t.keyword_span, |i| i.ty.span);
                            self.report(
                                Diagnostic::new(
                                    "E-shape",
                                    format!("field `{input}` is declared {fs_s}, but the model input is {ms_s}"),
                                )
                                .label(f.span, format!("declared {fs_s}"))
                                .label(declared_at, format!("the model's input `{input}` is {ms_s}")),
                            );
                            ok = false;
                        }
                    }
                    // An int input takes int ids: a field declared float cannot feed it.
                    if *integer && f.ty == Some(FieldType::Float) {
                        let declared_at =
                            m.inputs.iter().find(|i| &i.name.name == input).map_or(t.keyword_span, |i| i.name.span);
                        self.report(
                            Diagnostic::new(
                                "E-type",
                                format!("field `{input}` is declared float, but the model input is int"),
                            )
                            .label(f.span, "declared float")
                            .label(declared_at, format!("the model's input `{input}` is declared int"))
                            .help("declare the field `int`, or leave its type out: it then takes the input's"),
                        );
                        ok = false;
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        Some(
            d.fields
                .iter()
                .map(|f| {
                    let input = inputs.iter().find(|i| i.0 == f.name);
                    let from_input = input.and_then(|i| i.1.iter().copied().collect());
                    FieldInfo {
                        name: f.name.clone(),
                        ty: f.ty_for(input.is_some_and(|i| i.2)),
                        shape: f.shape.clone().or(from_input),
                        span: Some(f.span),
                    }
                })
                .collect(),
        )
    }

    /// `freeze: [body, W1, "conv*"]`: parameters by instance (`body` freezes `body.W` and
    /// `body.b`), by full name (`body.W`), or by a pattern where `*` matches anything.
    fn frozen(&mut self, e: &Expr) -> Option<Vec<usize>> {
        let items: Vec<&Expr> = match &e.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![e],
        };
        let names: Vec<String> = self.g.params.iter().map(|p| p.name.clone()).collect();
        // Marks, not a search of a list: `"*"` matches every one of 20,000 parameters.
        let mut frozen = vec![false; names.len()];
        let mut ok = true;
        for item in items {
            let (pattern, is_glob) = match &item.kind {
                ExprKind::Str(s) => (s.clone(), true),
                ExprKind::Name(_) | ExprKind::Field { .. } => (self.text(item.span).trim().to_string(), false),
                _ => {
                    self.error(
                        "E-setting",
                        item.span,
                        "`freeze` lists layer instances, parameters or patterns",
                        "e.g. freeze: [body, fc1.W, \"conv*\"]",
                    );
                    ok = false;
                    continue;
                }
            };
            let matched: Vec<usize> = names
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    if is_glob {
                        glob(&pattern, n)
                    } else {
                        *n == &pattern || n.starts_with(&format!("{pattern}."))
                    }
                })
                .map(|(i, _)| i)
                .collect();
            if matched.is_empty() {
                let mut instances: Vec<String> =
                    names.iter().filter_map(|n| n.rsplit_once('.').map(|p| p.0.to_string())).collect();
                instances.dedup();
                let candidates: Vec<&str> = names.iter().chain(&instances).map(String::as_str).collect();
                let mut d = Diagnostic::new("E-name", format!("`{pattern}` matches no parameter of the model"))
                    .label(item.span, "freezes nothing")
                    .note(format!("the parameters are: {}", names.join(", ")));
                if let Some(n) = nearest(&pattern, candidates.iter().copied()) {
                    d = d.help(format!("did you mean `{n}`?"));
                }
                self.report(d);
                ok = false;
            }
            for i in matched {
                frozen[i] = true;
            }
        }
        ok.then(|| (0..names.len()).filter(|&i| frozen[i]).collect())
    }
}

/// `[B, 1, 8]` from a batch name and per-sample sizes.
pub(super) fn dims(batch: &str, per: &[usize]) -> String {
    let mut parts = vec![batch.to_string()];
    parts.extend(per.iter().map(|d| d.to_string()));
    format!("[{}]", parts.join(", "))
}
