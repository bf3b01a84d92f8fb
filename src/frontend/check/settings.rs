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

    pub(super) fn source(&mut self, v: Value, span: Span) -> Option<Source> {
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

    pub(super) fn boolean(&mut self, v: Value, span: Span) -> Option<bool> {
        match v {
            Value::Num(n) if n == 0.0 || n == 1.0 => Some(n == 1.0),
            _ => {
                self.error("E-type", span, "expected true or false", "here");
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

    pub(super) fn optimizer(&mut self, v: Value, span: Span) -> Option<Optimizer> {
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
}
