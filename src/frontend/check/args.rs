//! Typed arguments: a built-in call's arguments read by parameter name and type. Tensor
//! built-ins, initialisers, optimizers, schedules and data sources all read theirs here, so a
//! wrong type or an out-of-range value is one kind of diagnostic, at the argument. (Unknown
//! and repeated arguments are refused earlier, when they are bound: `calls.rs`.)

use super::*;

/// A call's arguments bound to the callee's parameters: one slot per parameter with the span
/// of what was given, plus the positional tensors of a variadic built-in.
#[derive(Clone, Debug)]
pub(super) struct Bound {
    pub values: Vec<Option<(Value, Span)>>,
    pub rest: Vec<(Value, Span)>,
}

/// A built-in's bound arguments and the span of the call.
#[derive(Clone, Debug)]
pub(super) struct Args {
    pub builtin: Builtin,
    pub bound: Bound,
    pub span: Span,
}

/// What a number argument must be.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Range {
    /// Any finite number.
    Finite,
    /// Finite and > 0 (learning rates, standard deviations, eps).
    Positive,
    /// Finite and >= 0.
    NonNegative,
    /// In [0, 1) (momentum, Adam's betas).
    Fraction,
    /// In [0, 1] (dropout's probability).
    Probability,
}

impl Range {
    pub fn holds(self, x: f64) -> bool {
        x.is_finite()
            && match self {
                Range::Finite => true,
                Range::Positive => x > 0.0,
                Range::NonNegative => x >= 0.0,
                Range::Fraction => (0.0..1.0).contains(&x),
                Range::Probability => (0.0..=1.0).contains(&x),
            }
    }

    pub fn expected(self) -> &'static str {
        match self {
            Range::Finite => "a number",
            Range::Positive => "a positive number",
            Range::NonNegative => "a number >= 0",
            Range::Fraction => "a number in [0, 1)",
            Range::Probability => "a probability, in [0, 1]",
        }
    }
}

impl Args {
    /// The argument given for parameter `name`, if any.
    pub fn get(&self, name: &str) -> Option<&(Value, Span)> {
        let sig = self.builtin.signature();
        let i = sig.params.iter().position(|p| *p == name);
        debug_assert!(i.is_some(), "`{name}` is not a parameter of {}", sig.name);
        self.bound.values.get(i?)?.as_ref()
    }

    pub fn given(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'p> Checker<'p> {
    /// Report that argument `name` of the call is not what the parameter takes.
    pub(super) fn wrong_arg(&mut self, a: &Args, name: &str, value: &Value, span: Span, expected: &str) {
        let what = describe_value(value);
        self.report(
            Diagnostic::new("E-type", format!("`{name}` of {} must be {expected}", a.builtin.name()))
                .label(span, format!("this is {what}"))
                .note(format!("{} takes {}", a.builtin.name(), a.builtin.signature().describe())),
        );
    }

    /// The argument when given (None after a diagnostic), else `default`; a missing argument
    /// without a default is a diagnostic at the call.
    fn read<T>(
        &mut self,
        a: &Args,
        name: &str,
        default: Option<T>,
        convert: impl FnOnce(&Value) -> Option<T>,
        expected: &str,
    ) -> Option<T> {
        match a.get(name).cloned() {
            None => {
                if default.is_none() {
                    self.error("E-arity", a.span, format!("{} needs `{name}`", a.builtin.name()), "here");
                }
                default
            }
            Some((Value::Error, _)) => None,
            Some((v, s)) => {
                let out = convert(&v);
                if out.is_none() {
                    self.wrong_arg(a, name, &v, s, expected);
                }
                out
            }
        }
    }

    /// A number in `range`.
    pub(super) fn num_arg(&mut self, a: &Args, name: &str, default: Option<f64>, range: Range) -> Option<f64> {
        let convert = |v: &Value| match v {
            Value::Num(n) if range.holds(*n) => Some(*n),
            _ => None,
        };
        self.read(a, name, default, convert, range.expected())
    }

    /// A whole number >= `min`.
    pub(super) fn whole_arg(&mut self, a: &Args, name: &str, default: Option<usize>, min: usize) -> Option<usize> {
        let convert = |v: &Value| match v {
            Value::Num(n) if n.fract() == 0.0 && *n >= min as f64 && *n < 1e15 => Some(*n as usize),
            _ => None,
        };
        let expected = if min == 0 { "a whole number".to_string() } else { format!("a whole number >= {min}") };
        self.read(a, name, default, convert, &expected)
    }

    pub(super) fn str_arg(&mut self, a: &Args, name: &str, default: Option<&str>) -> Option<String> {
        let convert = |v: &Value| match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        };
        self.read(a, name, default.map(str::to_string), convert, "a string")
    }

    pub(super) fn bool_arg(&mut self, a: &Args, name: &str, default: bool) -> Option<bool> {
        let convert = |v: &Value| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        };
        self.read(a, name, Some(default), convert, "true or false")
    }

    /// A tensor (numbers and arrays of numbers become constants).
    pub(super) fn tensor_arg(&mut self, a: &Args, name: &str) -> Option<(NodeId, Span)> {
        match a.get(name).cloned() {
            Some((v, s)) => self.tensor(v, s).map(|id| (id, s)),
            None => {
                self.error("E-arity", a.span, format!("{} needs `{name}`", a.builtin.name()), "here");
                None
            }
        }
    }

    /// Axes of a tensor of `rank` axes: one (`axis: 1`, negative counts from the end) or a
    /// list; `default` when not given.
    pub(super) fn axes_arg(&mut self, a: &Args, name: &str, rank: usize, default: Vec<usize>) -> Option<Vec<usize>> {
        let Some((v, s)) = a.get(name).cloned() else { return Some(default) };
        let items = match v {
            Value::Error => return None,
            Value::List(items) => items,
            one => vec![one],
        };
        let mut out = vec![];
        for it in items {
            match it {
                Value::Num(n) if n.fract() == 0.0 && n.abs() < 1e9 => match lower::axis(n as i64, rank) {
                    Ok(axis) => out.push(axis),
                    Err(e) => {
                        self.error("E-shape", s, e.message(&self.g, &[]), "this axis");
                        return None;
                    }
                },
                other => {
                    self.wrong_arg(a, name, &other, s, "a whole number or a list of them");
                    return None;
                }
            }
        }
        Some(out)
    }
}
