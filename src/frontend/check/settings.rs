//! Settings blocks: `data` and `train`, their keys, and the typed arguments of data sources,
//! optimizers and schedules.

use std::collections::HashMap;

use super::*;

impl<'p> Checker<'p> {
    pub(super) fn check_data(&mut self, d: &'p Settings) -> Option<DataDecl> {
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

    /// The setting's value as a call of a built-in of `kind` (an optimizer, a schedule, a data
    /// source), or a diagnostic naming what fits.
    fn setting_call(&mut self, v: Value, span: Span, kind: Kind, what: &str) -> Option<Args> {
        match v {
            Value::Setting(a) if a.builtin.signature().kind == kind => Some(*a),
            Value::Error => None,
            other => {
                let choices: Vec<String> = Builtin::ALL
                    .iter()
                    .filter(|b| b.signature().kind == kind)
                    .map(|b| b.signature().describe())
                    .collect();
                let found = describe_value(&other);
                self.report(
                    Diagnostic::new("E-setting", format!("expected {what}"))
                        .label(span, format!("this is {found}"))
                        .note(format!("the choices are: {}", choices.join(", "))),
                );
                None
            }
        }
    }

    pub(super) fn source(&mut self, v: Value, span: Span) -> Option<Source> {
        let a = self.setting_call(v, span, Kind::DataSource, "a data source")?;
        let seed = |c: &mut Self, a: &Args| c.whole_arg(a, "seed", Some(0), 0).map(|s| s as u64);
        let scale = |c: &mut Self, a: &Args| c.num_arg(a, "scale", Some(1.0), Range::Positive);
        // Every argument is read before any `?`, so each wrong one is reported.
        Some(match a.builtin {
            Builtin::Spiral => {
                let (points, classes) = (self.whole_arg(&a, "points", None, 1), self.whole_arg(&a, "classes", None, 1));
                let seed = seed(self, &a);
                Source::Spiral { points: points?, classes: classes?, seed: seed? }
            }
            Builtin::Synthetic => {
                let (samples, classes) =
                    (self.whole_arg(&a, "samples", None, 1), self.whole_arg(&a, "classes", None, 1));
                let seed = seed(self, &a);
                Source::Synthetic { samples: samples?, classes: classes?, seed: seed? }
            }
            Builtin::Csv => {
                let (path, label) = (self.str_arg(&a, "path", None), self.str_arg(&a, "label", Some("label")));
                let scale = scale(self, &a);
                Source::Csv { path: path?, label: label?, scale: scale? }
            }
            Builtin::Npy => {
                let (features, labels) = (self.str_arg(&a, "features", None), self.str_arg(&a, "labels", None));
                let scale = scale(self, &a);
                Source::Npy { features: features?, labels: labels?, scale: scale? }
            }
            Builtin::Idx => {
                let (images, labels) = (self.str_arg(&a, "images", None), self.str_arg(&a, "labels", None));
                let scale = scale(self, &a);
                Source::Idx { images: images?, labels: labels?, scale: scale? }
            }
            other => unreachable!("setting_call returned {other:?} for a data source"),
        })
    }

    pub(super) fn optimizer(&mut self, v: Value, span: Span) -> Option<Optimizer> {
        let a = self.setting_call(v, span, Kind::Optimizer, "an optimizer")?;
        let lr = |c: &mut Self, a: &Args, default: f64| c.num_arg(a, "lr", Some(default), Range::Positive);
        Some(match a.builtin {
            Builtin::Sgd => Optimizer::Sgd { lr: lr(self, &a, 0.01)? },
            Builtin::Momentum => {
                let lr = lr(self, &a, 0.01);
                let momentum = self.num_arg(&a, "momentum", Some(0.9), Range::Fraction);
                let nesterov = self.bool_arg(&a, "nesterov", false);
                Optimizer::Momentum { lr: lr?, momentum: momentum?, nesterov: nesterov? }
            }
            Builtin::Adam => {
                let lr = lr(self, &a, 1e-3);
                let beta1 = self.num_arg(&a, "beta1", Some(0.9), Range::Fraction);
                let beta2 = self.num_arg(&a, "beta2", Some(0.999), Range::Fraction);
                let eps = self.num_arg(&a, "eps", Some(1e-8), Range::Positive);
                Optimizer::Adam { lr: lr?, beta1: beta1?, beta2: beta2?, eps: eps? }
            }
            other => unreachable!("setting_call returned {other:?} for an optimizer"),
        })
    }

    pub(super) fn schedule(&mut self, v: Value, span: Span) -> Option<Schedule> {
        let a = self.setting_call(v, span, Kind::Schedule, "a learning-rate schedule")?;
        Some(match a.builtin {
            Builtin::Step => {
                let every = self.whole_arg(&a, "every", None, 1);
                let gamma = self.num_arg(&a, "gamma", Some(0.1), Range::Positive);
                Schedule::Step { every: every?, gamma: gamma? }
            }
            Builtin::Cosine => Schedule::Cosine { min_lr: self.num_arg(&a, "min_lr", Some(0.0), Range::NonNegative)? },
            other => unreachable!("setting_call returned {other:?} for a schedule"),
        })
    }

    /// `true` or `false`.
    pub(super) fn boolean(&mut self, v: Value, span: Span) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(b),
            Value::Error => None,
            other => {
                let what = describe_value(&other);
                self.error("E-type", span, "expected true or false", format!("this is {what}"));
                None
            }
        }
    }

    /// Evaluate a settings block, checking keys against `allowed` and reporting duplicates.
    pub(super) fn settings(&mut self, block: &Settings, allowed: &[&str]) -> Option<HashMap<String, (Value, Span)>> {
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

        // The train step's graph in training mode; evaluation's in inference mode (the same
        // graph when nothing in the program asks for the mode).
        let graph = self.loss_graph(m, t, true)?;
        let eval_graph = if self.mode_used {
            let eval_graph = self.loss_graph(m, t, false)?;
            self.same_parameters(&graph, &eval_graph, &m.name.name, m.name.span)?;
            eval_graph
        } else {
            graph.clone()
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
        let weight_decay = num(self, "weight_decay", Range::NonNegative);
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
        let metrics = match settings.get("metrics").cloned() {
            None => vec!["accuracy".to_string()],
            Some((Value::List(items), s)) => {
                let mut names = vec![];
                for item in items {
                    match item {
                        Value::Func(Callee::Builtin(b)) if b.signature().kind == Kind::Metric => {
                            names.push(b.name().to_string())
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
            graph,
            eval_graph,
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

    /// The model's forward pass in one mode, then the loss over its outputs and the labels;
    /// in training mode with the state updates.
    fn loss_graph(&mut self, m: &'p ModelDef, t: &'p Settings, training: bool) -> Option<Graph> {
        self.begin(DType::F32);
        self.training = training;
        let outputs = self.expand_model(m, None, t.span)?;
        let batch = self.g.inputs.first().and_then(|i| i.shape.first().copied()).unwrap_or(Dim::Known(1));
        let labels = self.g.add_input("labels", vec![batch], InputKind::Label);
        let mut scope = HashMap::new();
        for (i, node) in self.g.nodes.iter().enumerate() {
            match node.op {
                Op::Input { index } if self.g.inputs[index].kind != InputKind::RandomKey => {
                    scope.insert(self.g.inputs[index].name.clone(), Value::Tensor(NodeId(i as u32)));
                }
                _ => {}
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

        self.g.updates = self.graph_updates();
        Some(std::mem::take(&mut self.g))
    }
}
