//! Settings blocks: `data` and `train`, their keys, and the typed arguments of data sources,
//! optimizers and schedules.

use std::collections::HashMap;

use super::*;

impl<'p> Checker<'p> {
    pub(super) fn check_data(&mut self, d: &'p Settings) -> Option<DataDecl> {
        self.begin(DType::F32);
        const KNOWN: [&str; 5] = ["source", "test", "otherwise", "split", "shuffle"];
        // Every other key declares a field: `x: npy("x.npy")`.
        let mut allowed: Vec<&str> = KNOWN.to_vec();
        for stmt in &d.body {
            if let Stmt::Setting { key, .. } = stmt {
                if !allowed.contains(&key.name.as_str()) {
                    allowed.push(&key.name);
                }
            }
        }
        let settings = self.settings(d, &allowed, &[])?;
        let name = d.name.as_ref().map(|n| n.name.clone()).unwrap_or_default();
        let mut fields = vec![];
        let mut ok = true;
        for stmt in &d.body {
            let Stmt::Setting { key, .. } = stmt else { continue };
            if KNOWN.contains(&key.name.as_str()) {
                continue;
            }
            let Some((value, span)) = settings.get(&key.name).cloned() else { continue };
            match self.field_decl(key, value, span) {
                Some(f) => fields.push(f),
                None => ok = false,
            }
        }
        let source = match settings.get("source").cloned() {
            Some((v, s)) => Some(self.source(v, s)?),
            None => None,
        };
        let test = match settings.get("test").cloned() {
            Some((v, s)) => Some((self.source(v, s)?, s)),
            None => None,
        };
        let otherwise = match settings.get("otherwise").cloned() {
            Some((v, s)) => Some((self.source(v, s)?, s)),
            None => None,
        };
        if !ok {
            return None;
        }
        match (&source, fields.first()) {
            (None, None) => {
                self.report(
                    Diagnostic::new("E-setting", "a data block needs a `source` or fields")
                        .label(d.keyword_span, "this data block")
                        .help(
                            "e.g. `source: spiral(points: 100, classes: 3)`, or fields such as `x: npy(\"x.npy\")` and `y: npy(\"y.npy\", float, [1])`",
                        ),
                );
                return None;
            }
            (Some(_), Some(f)) => {
                let (sspan, fspan) = (settings["source"].1, f.span);
                self.report(
                    Diagnostic::new("E-setting", "a data block has a `source` or fields, not both")
                        .label(fspan, "a field")
                        .label(sspan, "the source")
                        .note("a source gives the fields `x` (the model's input) and `labels`"),
                );
                return None;
            }
            _ => {}
        }
        if !fields.is_empty() {
            for (key, what) in [(&test, "test"), (&otherwise, "otherwise")] {
                if let Some((_, span)) = key {
                    self.error(
                        "E-setting",
                        *span,
                        format!("`{what}` is for a `source`; fields name their own test files"),
                        "with fields, write e.g. `x: npy(\"x.npy\", test: \"x_test.npy\")`",
                    );
                    return None;
                }
            }
            // Either every field has a test file or none does.
            let with: Vec<&FieldDecl> = fields.iter().filter(|f| f.test.is_some()).collect();
            if let (Some(w), Some(wo)) = (with.first(), fields.iter().find(|f| f.test.is_none())) {
                self.report(
                    Diagnostic::new(
                        "E-setting",
                        format!("field `{}` has a test file, but `{}` has none", w.name, wo.name),
                    )
                    .label(wo.span, "no `test:` here")
                    .label(w.span, "a test file here")
                    .help("give every field its test file, or none (and use `split`)"),
                );
                return None;
            }
        }
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
        Some(DataDecl {
            name,
            fields,
            source,
            test: test.map(|t| t.0),
            otherwise: otherwise.map(|o| o.0),
            split,
            shuffle,
            span: d.span,
        })
    }

    /// A field of a data block: `name: npy(path, type?, shape?, scale?, test?)` or
    /// `name: csv(path, type?, columns?, shape?, scale?, test?)`.
    fn field_decl(&mut self, key: &Ident, v: Value, span: Span) -> Option<FieldDecl> {
        let known = ["source", "test", "otherwise", "split", "shuffle"];
        let is_file = matches!(&v, Value::Setting(a) if matches!(a.builtin, Builtin::Npy | Builtin::Csv));
        if !is_file {
            if matches!(v, Value::Error) {
                return None;
            }
            let found = describe_value(&v);
            let mut d = Diagnostic::new("E-setting", format!("field `{}` must read a file", key.name))
                .label(span, format!("this is {found}"))
                .note(format!(
                    "a data block's settings are {}; any other key declares a field: `{}: npy(\"file.npy\")` or `{}: csv(\"file.csv\", columns: \"a:d\")`",
                    known.join(", "),
                    key.name,
                    key.name
                ));
            if let Some(n) = nearest(&key.name, known.iter().copied()) {
                d = d.help(format!("did you mean the setting `{n}`?"));
            }
            self.report(d);
            return None;
        }
        let Value::Setting(a) = v else { return None };
        let path = self.str_arg(&a, "path", None);
        let ty = match a.get("type").cloned() {
            None => Some(None),
            Some((Value::ElemType(t), _)) => Some(Some(t)),
            Some((Value::Error, _)) => None,
            Some((Value::Str(_), s)) => {
                self.error(
                    "E-setting",
                    s,
                    "a field reads one file",
                    "for features and labels in two files, write `source: npy(\"x.npy\", \"y.npy\")`",
                );
                None
            }
            Some((other, s)) => {
                let what = describe_value(&other);
                self.error("E-type", s, "a field's type is `float` or `int`", format!("this is {what}"));
                None
            }
        };
        let legacy = if a.builtin == Builtin::Csv { "label" } else { "labels" };
        if let Some((_, s)) = a.get(legacy).cloned() {
            self.error(
                "E-setting",
                s,
                format!("`{legacy}` is for a `source`"),
                "a field reads its own columns: give the labels a field of their own",
            );
            return None;
        }
        let shape = self.sample_shape_arg(&a);
        let scale = self.num_arg(&a, "scale", Some(1.0), Range::Positive);
        let test = match a.get("test").cloned() {
            None => Some(None),
            Some(_) => self.str_arg(&a, "test", None).map(Some),
        };
        let columns = if a.builtin == Builtin::Csv { self.columns_arg(&a) } else { Some(Columns::Rest) };
        let (path, ty, shape, scale, test, columns) = (path?, ty?, shape?, scale?, test?, columns?);
        if ty == Some(FieldType::Int) && a.given("scale") {
            let s = a.get("scale").map(|x| x.1).unwrap_or(span);
            self.error("E-setting", s, "an int field is not scaled", "`scale` is for float fields");
            return None;
        }
        let file_of = |path: String| match a.builtin {
            Builtin::Npy => FieldFile::Npy { path },
            _ => FieldFile::Csv { path, columns: columns.clone() },
        };
        Some(FieldDecl {
            name: key.name.clone(),
            ty,
            shape,
            file: file_of(path),
            test: test.map(file_of),
            scale,
            span: key.span.to(span),
        })
    }

    /// `shape: [T, 4]`: a per-sample shape of whole numbers >= 1.
    fn sample_shape_arg(&mut self, a: &Args) -> Option<Option<Vec<usize>>> {
        let Some((v, s)) = a.get("shape").cloned() else { return Some(None) };
        let items = match v {
            Value::List(items) => items,
            Value::Error => return None,
            Value::Num(n) => vec![Value::Num(n)],
            other => {
                let what = describe_value(&other);
                self.error("E-type", s, "`shape` is a list of sizes", format!("this is {what}; e.g. [1] or [16, 4]"));
                return None;
            }
        };
        let mut dims = vec![];
        for it in items {
            match it {
                Value::Num(n) if n >= 1.0 && n.fract() == 0.0 && n < 1e12 => dims.push(n as usize),
                other => {
                    let what = describe_value(&other);
                    self.error("E-type", s, "a size in `shape` is a whole number >= 1", format!("this holds {what}"));
                    return None;
                }
            }
        }
        Some(Some(dims))
    }

    /// `columns: "label"`, `columns: ["a", "b"]` or `columns: "p0:p63"` (inclusive, in header
    /// order); every column no other field takes when not given.
    fn columns_arg(&mut self, a: &Args) -> Option<Columns> {
        let Some((v, s)) = a.get("columns").cloned() else { return Some(Columns::Rest) };
        let one = |text: &str| match text.split_once(':') {
            Some((first, last)) => Columns::Range(first.trim().to_string(), last.trim().to_string()),
            None => Columns::Names(vec![text.to_string()]),
        };
        match v {
            Value::Str(text) => Some(one(&text)),
            Value::List(items) if !items.is_empty() && items.iter().all(|i| matches!(i, Value::Str(_))) => {
                Some(Columns::Names(
                    items.into_iter().filter_map(|i| if let Value::Str(t) = i { Some(t) } else { None }).collect(),
                ))
            }
            Value::Error => None,
            other => {
                let what = describe_value(&other);
                self.error(
                    "E-type",
                    s,
                    "`columns` names CSV columns",
                    format!("this is {what}; e.g. \"label\", [\"a\", \"b\"] or \"p0:p63\""),
                );
                None
            }
        }
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
            Builtin::Csv | Builtin::Npy => {
                // A source reads features and labels; the field arguments do not apply.
                for arg in ["type", "shape", "test", "columns"] {
                    if arg == "columns" && a.builtin == Builtin::Npy {
                        continue;
                    }
                    if let Some((v, s)) = a.get(arg).cloned() {
                        if arg == "type" && matches!(v, Value::Str(_)) {
                            continue; // npy("x.npy", "y.npy"): the labels file, positionally
                        }
                        self.error(
                            "E-setting",
                            s,
                            format!("`{arg}` is for a field, not a `source`"),
                            "declare fields instead, e.g. `x: npy(\"x.npy\")`",
                        );
                        return None;
                    }
                }
                let path = self.str_arg(&a, "path", None);
                let scale = scale(self, &a);
                if a.builtin == Builtin::Csv {
                    let label = self.str_arg(&a, "label", Some("label"));
                    Source::Csv { path: path?, label: label?, scale: scale? }
                } else {
                    let labels = match (a.get("labels").cloned(), a.get("type").cloned()) {
                        (Some(_), _) => self.str_arg(&a, "labels", None),
                        (None, Some((Value::Str(s), _))) => Some(s),
                        _ => {
                            self.error(
                                "E-arity",
                                a.span,
                                "npy as a `source` reads features and labels",
                                "write npy(\"x.npy\", \"y.npy\")",
                            );
                            None
                        }
                    };
                    Source::Npy { features: path?, labels: labels?, scale: scale? }
                }
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
            Builtin::Adam | Builtin::AdamW => {
                let lr = lr(self, &a, 1e-3);
                let beta1 = self.num_arg(&a, "beta1", Some(0.9), Range::Fraction);
                let beta2 = self.num_arg(&a, "beta2", Some(0.999), Range::Fraction);
                let eps = self.num_arg(&a, "eps", Some(1e-8), Range::Positive);
                let decay = if a.builtin == Builtin::AdamW {
                    self.num_arg(&a, "weight_decay", Some(0.01), Range::NonNegative)
                } else {
                    Some(0.0)
                };
                Optimizer::Adam { lr: lr?, beta1: beta1?, beta2: beta2?, eps: eps?, decay: decay? }
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
    /// The keys in `raw` are not evaluated (their value is `Value::Error` with its span): the
    /// caller reads their expressions itself.
    pub(super) fn settings(
        &mut self,
        block: &Settings,
        allowed: &[&str],
        raw: &[&str],
    ) -> Option<HashMap<String, (Value, Span)>> {
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
                    if raw.contains(&key.name.as_str()) {
                        // The loss is an expression over the model, elaborated by the caller;
                        // `model` and `data` name items, and `metrics` and `freeze` name
                        // outputs, fields and parameters: none of them is a value.
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
}
