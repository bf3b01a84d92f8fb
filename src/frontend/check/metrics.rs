//! The metrics of a train block (`metrics: [accuracy, mse(pred, y), ...]`): which model output
//! each compares with which data field, and whether the two fit.

use super::train::{dims, FieldInfo};
use super::*;

impl<'p> Checker<'p> {
    /// `metrics: [accuracy, mse(pred, y), accuracy(logits, tags, mask)]`, or what fits when
    /// not given: the first field that is not a model input paired with the first output it
    /// fits (integer targets: accuracy; float targets: mse).
    pub(super) fn metrics(
        &mut self,
        e: Option<&Expr>,
        outputs: &[(String, NodeId)],
        fields: &[FieldInfo],
    ) -> Option<Vec<Metric>> {
        let inputs: Vec<String> =
            self.g.inputs.iter().filter(|i| i.kind == InputKind::Data).map(|i| i.name.clone()).collect();
        let targets: Vec<&FieldInfo> = fields.iter().filter(|f| !inputs.contains(&f.name)).collect();
        let first_fit = |c: &Self, kind: MetricKind| {
            targets.iter().find_map(|f| {
                outputs.iter().find(|(o, _)| c.metric_fits(kind, o, outputs, f).is_ok()).map(|(o, _)| Metric {
                    kind,
                    output: o.clone(),
                    target: f.name.clone(),
                    mask: None,
                })
            })
        };
        let Some(e) = e else {
            let found = first_fit(self, MetricKind::Accuracy).or_else(|| first_fit(self, MetricKind::Mse));
            return Some(found.into_iter().collect());
        };
        let ExprKind::List(items) = &e.kind else {
            self.error("E-setting", e.span, "`metrics` is a list", "e.g. [accuracy] or [mse(pred, y)]");
            return None;
        };
        let kind_of = |name: &str| match name {
            "accuracy" => Some(MetricKind::Accuracy),
            "mse" => Some(MetricKind::Mse),
            "mae" => Some(MetricKind::Mae),
            _ => None,
        };
        let mut out = vec![];
        for item in items {
            let (callee, args) = match &item.kind {
                ExprKind::Name(n) => (n.as_str(), None),
                ExprKind::Call { callee, args } => match &callee.kind {
                    ExprKind::Name(n) => (n.as_str(), Some(args)),
                    _ => ("", None),
                },
                _ => ("", None),
            };
            let Some(kind) = kind_of(callee) else {
                let mut d = Diagnostic::new("E-setting", "unknown metric")
                    .label(item.span, "not a metric")
                    .note("the metrics are: accuracy, mse, mae; each may name its output and target, e.g. accuracy(scores, labels)");
                if let Some(n) = nearest(callee, ["accuracy", "mse", "mae"]) {
                    d = d.help(format!("did you mean `{n}`?"));
                }
                self.report(d);
                return None;
            };
            let metric = match args {
                None => match first_fit(self, kind) {
                    Some(m) => m,
                    None => {
                        let want = match kind {
                            MetricKind::Accuracy => {
                                "an integer field and an output of scores [B, ..., classes] over it"
                            }
                            _ => "a float field and an output of its shape",
                        };
                        self.error(
                            "E-setting",
                            item.span,
                            format!("no output and data field fit `{}`", kind.name()),
                            format!("{} needs {want}", kind.name()),
                        );
                        return None;
                    }
                },
                Some(args) => {
                    let names: Vec<Option<&str>> = args
                        .iter()
                        .map(|a| match (&a.name, &a.value.kind) {
                            (None, ExprKind::Name(n)) => Some(n.as_str()),
                            _ => None,
                        })
                        .collect();
                    let (output, target, mask) = match names[..] {
                        [Some(o), Some(t)] => (o, t, None),
                        [Some(o), Some(t), Some(m)] => (o, t, Some(m)),
                        _ => {
                            self.error(
                                "E-setting",
                                item.span,
                                format!("{} takes an output, a data field and optionally a mask field", kind.name()),
                                format!("e.g. {}(scores, labels)", kind.name()),
                            );
                            return None;
                        }
                    };
                    if !outputs.iter().any(|(o, _)| o == output) {
                        let names: Vec<&str> = outputs.iter().map(|o| o.0.as_str()).collect();
                        self.error(
                            "E-name",
                            args[0].value.span,
                            format!("`{output}` is not an output of the model"),
                            format!("the outputs are: {}", names.join(", ")),
                        );
                        return None;
                    }
                    let field_names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                    for (i, n) in [Some(target), mask].into_iter().enumerate() {
                        if let Some(n) = n.filter(|n| !field_names.contains(n)) {
                            self.error(
                                "E-name",
                                args[i + 1].value.span,
                                format!("`{n}` is not a data field"),
                                format!("the fields are: {}", field_names.join(", ")),
                            );
                            return None;
                        }
                    }
                    let f = fields.iter().find(|f| f.name == target)?;
                    if let Err(why) = self.metric_fits(kind, output, outputs, f) {
                        self.error("E-shape", item.span, format!("{} cannot compare these", kind.name()), why);
                        return None;
                    }
                    if let Some(mask) = mask {
                        let mf = fields.iter().find(|f| f.name == mask)?;
                        let target_shape = f.shape.clone().unwrap_or_default();
                        if mf.shape.as_ref().is_some_and(|s| s != &target_shape) {
                            self.error(
                                "E-shape",
                                args[2].value.span,
                                "the mask must have the target's shape",
                                format!("`{target}` is {}", dims("B", &target_shape)),
                            );
                            return None;
                        }
                    }
                    Metric {
                        kind,
                        output: output.to_string(),
                        target: target.to_string(),
                        mask: mask.map(str::to_string),
                    }
                }
            };
            out.push(metric);
        }
        Some(out)
    }

    /// Can `kind` compare the model output `output` with the field `f`? The error says why not.
    fn metric_fits(
        &self,
        kind: MetricKind,
        output: &str,
        outputs: &[(String, NodeId)],
        f: &FieldInfo,
    ) -> Result<(), String> {
        let Some(&(_, id)) = outputs.iter().find(|(o, _)| o == output) else {
            return Err(format!("`{output}` is not an output"));
        };
        let shape = self.g.shape(id);
        let batch = self.g.inputs.first().and_then(|i| i.shape.first().copied());
        if shape.first().copied() != batch || batch.is_none() {
            return Err(format!("`{output}` is {}, with no batch axis first", self.g.shape_str(shape)));
        }
        let Some(per): Option<Vec<usize>> = shape[1..].iter().map(|d| d.known()).collect() else {
            return Err(format!("`{output}` has a symbolic size past the batch"));
        };
        let out_s = dims("B", &per);
        match kind {
            MetricKind::Accuracy => {
                if f.ty != FieldType::Int {
                    return Err(format!("accuracy needs an integer target; `{}` is float", f.name));
                }
                let Some((_, positions)) = per.split_last().filter(|(&classes, _)| classes >= 2) else {
                    return Err(format!(
                        "`{output}` is {out_s}: accuracy needs scores [B, ..., classes] of 2 classes or more"
                    ));
                };
                let target = f.shape.clone().unwrap_or_default();
                if target != positions {
                    return Err(format!(
                        "`{output}` is {out_s}, so the target must be {}, but `{}` is {}",
                        dims("B", positions),
                        f.name,
                        dims("B", &target)
                    ));
                }
            }
            MetricKind::Mse | MetricKind::Mae => {
                if f.ty != FieldType::Float {
                    return Err(format!("{} needs a float target; `{}` is int", kind.name(), f.name));
                }
                if let Some(s) = &f.shape {
                    if s.iter().product::<usize>() != per.iter().product::<usize>() {
                        return Err(format!("`{output}` is {out_s}, but `{}` is {}", f.name, dims("B", s)));
                    }
                }
            }
        }
        Ok(())
    }
}
