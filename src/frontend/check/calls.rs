//! Calls: binding positional and named arguments, and expanding user functions, layers and
//! models at their call site.

use std::collections::HashMap;

use super::*;

impl<'p> Checker<'p> {
    // ---- calls ----

    pub(super) fn call(&mut self, callee: &Expr, args: &[Arg], span: Span) -> Value {
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
        // Evaluate arguments in the caller's scope. A layer called in an argument is called
        // before this one, so it takes a pending `let` name first.
        let mut evaluated = vec![];
        for a in args {
            let v = self.expr(&a.value);
            evaluated.push((a.name.clone(), v, a.value.span));
        }
        if evaluated.iter().any(|(_, v, _)| matches!(v, Value::Error)) {
            return Value::Error;
        }
        match callee_value {
            Callee::Builtin(builtin) => {
                let sig = builtin.signature();
                let Some(bound) =
                    self.bind_args(sig.name, sig.params, sig.required, sig.variadic, evaluated, span, callee.span)
                else {
                    return Value::Error;
                };
                self.builtin(Args { builtin, bound, span })
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
                let instance = if is_layer { self.pending_instance.take() } else { None };
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
                let instance = self.pending_instance.take();
                // Called from an eval block, the model is one function with one set of
                // parameters, `MODEL.NAME` (what `--load` fills from a file of the model's
                // weights); called from a model, it is a sub-network with parameters of its own.
                let shared = self.in_eval && self.prefix.is_empty() && !self.share_params;
                let saved_counts = if shared {
                    self.prefix.push(m.name.name.clone());
                    self.share_params = true;
                    Some(std::mem::take(&mut self.instance_counts))
                } else {
                    if let Some(name) = &instance {
                        self.prefix.push(name.clone());
                    }
                    None
                };
                let record = self.start_layer(instance.unwrap_or_else(|| m.name.name.clone()), &m.name.name);
                let outs = self.expand_model(m, Some(args), span);
                self.finish_layer(record, outs.as_ref().and_then(|o| o.first().map(|x| x.1)));
                if let Some(counts) = saved_counts {
                    self.instance_counts = counts;
                    self.share_params = false;
                }
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
    pub(super) fn bind_args(
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
                let fixed: Vec<&str> = params[..required].to_vec();
                format!("{fname}({})", fixed.into_iter().chain(["tensors..."]).collect::<Vec<_>>().join(", "))
            } else {
                format!("{fname}({})", ps.join(", "))
            }
        };
        let mut bound = Bound { values: vec![None; params.len()], rest: vec![] };
        let mut positional = 0;
        for (name, value, vspan) in args {
            match name {
                // A variadic built-in's required parameters come first (einsum's spec).
                None if variadic && positional >= required => bound.rest.push((value, vspan)),
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

    pub(super) fn call_user(
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
            let copy = self.copy(&v, span);
            self.bind(&p.name.name, copy);
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
        let record = is_layer.then(|| self.start_layer(self.prefix.join("."), &def.name.name));
        self.depth += 1;
        // The body's own `let`s name its layers; a name still pending for the caller's `let`
        // (this is a plain function) waits for the caller's next layer.
        let saved_pending = self.pending_instance.take();
        let result = self.run_block(&def.body);
        self.pending_instance = saved_pending;
        self.depth -= 1;
        if let Some(record) = record {
            let out = match &result {
                Some((Value::Tensor(id), _)) => Some(*id),
                _ => None,
            };
            self.finish_layer(record, out);
        }
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
}

impl Checker<'_> {
    /// Open the record of a layer instance called `name` (qualified) of kind `kind`; its
    /// nodes and parameters are those added until `finish_layer`.
    fn start_layer(&mut self, name: String, kind: &str) -> usize {
        let depth = self.layers.iter().filter(|l| l.nodes.end == usize::MAX).count();
        self.layers.push(Layer {
            name,
            kind: kind.to_string(),
            nodes: self.g.nodes.len()..usize::MAX,
            params: self.g.params.len()..usize::MAX,
            output: None,
            depth,
        });
        self.layers.len() - 1
    }

    fn finish_layer(&mut self, record: usize, output: Option<NodeId>) {
        let (nodes, params) = (self.g.nodes.len(), self.g.params.len());
        let l = &mut self.layers[record];
        l.nodes.end = nodes;
        l.params.end = params;
        l.output = output;
    }
}
