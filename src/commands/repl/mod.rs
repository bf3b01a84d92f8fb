//! `netc repl`: an interactive prompt. Each line is checked and evaluated as part of a session
//! program: definitions (fn, layer, model, data, train) accumulate, `let`s accumulate in the
//! session's scope, and an expression is evaluated in an eval block made of them. Errors are
//! diagnostics pointing into the line typed and never end the session.
//!
//! Each line is checked with only what it uses: the definitions and `let`s its names refer to,
//! and theirs in turn (data and train blocks always, since a train block may pick the only
//! data block). A session of thousands of independent lines then costs each line the same,
//! instead of a re-check of the whole session per line.
//!
//! A chain of `let`s (`let w = w - 0.1 * g`, again and again) would still make each line pay
//! for the whole chain. So once a line needs more than `CACHE_AFTER` lets whose values are not
//! known, their values are computed (one evaluation for all of them) and each is written as
//! its literal from then on (`let w = [0.25, -1.5]`): the chain is cut there, and a session
//! costs each line a bounded amount whatever its shape. The literal is the value's exact f64
//! text, so what a later line computes does not change; values that depend on parameters
//! stay expressions (`cache` says why). `:grad` and `:graph` still see each let's own
//! expression, as they differentiate through them.
//!
//! The session logic (`Session::handle`) is independent of the terminal, so tests drive it
//! with piped scripts exactly as a user would.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::diag::{self, Diagnostic, SourceFile};
use crate::frontend::ast::Item;
use crate::frontend::check;
use crate::frontend::checked::Checked;

pub mod cache;
use cache::CACHE_AFTER;
const HELP: &str = "\
netc repl — every line is checked, compiled and run.
  let x = [1, 2, 3]          define a value (a literal is a variable you can differentiate)
  fn f(x) = x * 2            define functions, layers, models, data and train blocks
  x @ W + b                  evaluate an expression and print it with its shape
  :grad EXPR wrt x, y        the gradient of a scalar expression
  :graph EXPR                the forward and backward graph as text
  :type EXPR                 the shape of an expression, without running it
  :load FILE.net             bring in a file's definitions (and run its eval blocks)
  :train                     run the train block of the session
  :help                      this text
  :quit                      leave (or Ctrl-D)
Blocks may span lines: the prompt continues while brackets are open.";

const COMMANDS: &[&str] = &[":grad", ":graph", ":type", ":load", ":train", ":help", ":quit"];

/// What one input produced: text for stdout and diagnostics for stderr.
#[derive(Default, Debug)]
pub struct Output {
    pub out: String,
    pub err: String,
    pub quit: bool,
}

/// An accepted top-level definition or `let`: its text, the name it defines (`[a, b]` for a
/// `let` binding a list's elements) and the names its text uses.
struct Entry {
    text: String,
    name: String,
    uses: Vec<String>,
    /// A data or train block: part of every program (see the module comment).
    always: bool,
    /// A `let` whose value is known: `let NAME = LITERAL` (see the module comment).
    value: Option<String>,
    /// False once a `let`'s value could not be cached (`cache` says which can): it is not
    /// tried again.
    cacheable: bool,
}

/// The names (identifiers) `text` mentions.
fn names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = crate::frontend::lexer::lex(text)
        .0
        .into_iter()
        .filter_map(|t| match t {
            Ok((_, crate::frontend::lexer::Token::Ident(n), _)) => Some(n),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

pub struct Session {
    /// Accepted top-level definitions, one per item, in order.
    items: Vec<Entry>,
    /// The definition of each item name.
    item_names: HashMap<String, usize>,
    /// Accepted `let` statements, in order.
    lets: Vec<Entry>,
    /// The `let`s binding each name, in order (a name may be bound again).
    let_names: HashMap<String, Vec<usize>>,
    /// Every name defined so far, for completion.
    known: BTreeSet<String>,
    /// Where `:load`ed files live: data paths of train blocks are relative to it.
    base_dir: PathBuf,
    color: bool,
}

impl Session {
    pub fn new(color: bool) -> Session {
        Session {
            items: vec![],
            item_names: HashMap::new(),
            lets: vec![],
            let_names: HashMap::new(),
            known: BTreeSet::new(),
            base_dir: PathBuf::from("."),
            color,
        }
    }

    /// Names to complete: session definitions, built-ins, commands.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = COMMANDS.iter().map(|s| s.to_string()).collect();
        names.extend(crate::frontend::builtins::Builtin::ALL.iter().map(|b| b.name().to_string()));
        names.extend(["dense", "conv2d", "maxout", "labels"].map(String::from));
        names.extend(self.known.iter().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// The items and lets that `uses` needs, transitively, in session order: a name is the
    /// latest `let` binding it before the user (or before the end, for `uses` itself), else
    /// the item of that name.
    /// With `cached`, a let of known value is taken as its literal and what it uses is not
    /// needed for it.
    fn needed(&self, uses: &[String], cached: bool) -> (Vec<usize>, Vec<usize>) {
        let (mut items, mut lets) = (vec![false; self.items.len()], vec![false; self.lets.len()]);
        // (name, the let index it must precede)
        let mut work: Vec<(String, usize)> = uses.iter().map(|n| (n.clone(), self.lets.len())).collect();
        while let Some((name, before)) = work.pop() {
            let bound = self.let_names.get(&name).and_then(|v| v.iter().rev().find(|&&i| i < before).copied());
            if let Some(i) = bound {
                if !lets[i] {
                    lets[i] = true;
                    if !(cached && self.lets[i].value.is_some()) {
                        work.extend(self.lets[i].uses.iter().map(|n| (n.clone(), i)));
                    }
                }
            } else if let Some(&i) = self.item_names.get(&name) {
                if !items[i] {
                    items[i] = true;
                    work.extend(self.items[i].uses.iter().map(|n| (n.clone(), self.lets.len())));
                }
            }
        }
        for (i, e) in self.items.iter().enumerate() {
            if e.always && !items[i] {
                items[i] = true;
                for n in &e.uses {
                    if let Some(&j) = self.item_names.get(n) {
                        items[j] = true; // a train block's model
                    }
                }
            }
        }
        // A train block's model may use further items: one more pass settles them.
        let mut work: Vec<String> =
            items.iter().enumerate().filter(|(_, &b)| b).flat_map(|(i, _)| self.items[i].uses.clone()).collect();
        while let Some(name) = work.pop() {
            if let Some(&i) = self.item_names.get(&name) {
                if !items[i] {
                    items[i] = true;
                    work.extend(self.items[i].uses.iter().cloned());
                }
            }
        }
        let pick = |v: Vec<bool>| v.into_iter().enumerate().filter(|(_, b)| *b).map(|(i, _)| i).collect();
        (pick(items), pick(lets))
    }

    /// The definitions `uses` needs, as source text.
    fn items_for(&self, items: &[usize]) -> String {
        let mut src = String::new();
        for &i in items {
            src.push_str(&self.items[i].text);
            src.push('\n');
        }
        src
    }

    /// The eval block of the lets `tail` needs followed by `tail`, after the definitions it
    /// needs; returns the source and the byte offset at which `tail` starts. Lets of known
    /// value are written as their literals, and when more than `CACHE_AFTER` needed lets are
    /// not yet known, their values are computed first.
    pub fn program(&mut self, tail: &str) -> (String, usize) {
        let uses = names_in(tail);
        let (items, lets) = self.needed(&uses, true);
        let unknown: Vec<usize> =
            lets.iter().copied().filter(|&i| self.lets[i].value.is_none() && self.lets[i].cacheable).collect();
        if unknown.len() <= CACHE_AFTER {
            return self.eval_source(&items, &lets, tail, true);
        }
        self.cache_values(&items, &lets, &unknown);
        let (items, lets) = self.needed(&uses, true);
        self.eval_source(&items, &lets, tail, true)
    }

    /// `program` with every let as its own expression (for differentiating through them).
    pub fn program_uncached(&self, tail: &str) -> (String, usize) {
        let (items, lets) = self.needed(&names_in(tail), false);
        self.eval_source(&items, &lets, tail, false)
    }

    /// The items, then an eval block of the lets (as literals where known, with `cached`) and
    /// `tail`; the source and the offset of `tail` in it.
    fn eval_source(&self, items: &[usize], lets: &[usize], tail: &str, cached: bool) -> (String, usize) {
        let mut src = self.items_for(items);
        src.push_str("\neval repl {\n");
        for &i in lets {
            let l = &self.lets[i];
            src.push_str(if cached { l.value.as_deref().unwrap_or(&l.text) } else { &l.text });
            src.push('\n');
        }
        let offset = src.len();
        src.push_str(tail);
        src.push_str("\n}\n");
        (src, offset)
    }

    /// Compute the values of the lets `unknown` (a subset of `lets`, which `items` define the
    /// names for) in one evaluation, each shown right after its `let`, and keep each as a
    /// literal; a value that cannot be one, or an evaluation that fails, marks them not
    /// cacheable.
    fn cache_values(&mut self, items: &[usize], lets: &[usize], unknown: &[usize]) {
        let mut src = self.items_for(items);
        src.push_str("\neval repl {\n");
        for &i in lets {
            let l = &self.lets[i];
            src.push_str(l.value.as_deref().unwrap_or(&l.text));
            src.push('\n');
            if unknown.contains(&i) {
                src.push_str(&l.name);
                src.push('\n');
            }
        }
        src.push_str("}\n");
        // Each unknown let's value, if it may be cached (see `cache`), from the one evaluation.
        let values: Vec<Option<String>> = self
            .check(&src)
            .ok()
            .and_then(|c| {
                let e = c.evals.last()?;
                let names: Vec<&str> = unknown.iter().map(|&i| self.lets[i].name.as_str()).collect();
                // A let's text holding a shown expression of its own (`let p = 1; p`) would shift
                // the shows: then nothing is cached.
                if e.shows.iter().map(|(text, _)| text.as_str()).ne(names.iter().copied()) {
                    return None;
                }
                let drawn = cache::drawn_at_run_time(&e.graph);
                let out = crate::commands::eval::evaluate(e, 0).ok()?;
                Some(
                    out.shows
                        .iter()
                        .zip(e.shows.iter().zip(&e.integer_shows))
                        .map(
                            |((_, t), ((_, id), &integer))| {
                                if drawn[id.index()] {
                                    None
                                } else {
                                    cache::literal(t, integer)
                                }
                            },
                        )
                        .collect(),
                )
            })
            .unwrap_or_else(|| vec![None; unknown.len()]);
        for (&i, value) in unknown.iter().zip(values) {
            let l = &mut self.lets[i];
            l.cacheable = value.is_some();
            l.value = value.map(|v| format!("let {} = {v}", l.name));
        }
    }

    /// Every definition of the session, as source text (for `:train` and `:load`'s summary).
    fn all_items(&self) -> String {
        self.items_for(&(0..self.items.len()).collect::<Vec<_>>())
    }

    /// Render diagnostics against what the user typed: spans inside `typed` (which starts at
    /// `offset` in `src`) are shifted into it; anything else is shown against the whole source.
    fn render(&self, diags: &[Diagnostic], src: &str, offset: usize, typed: &str) -> String {
        let inside =
            |d: &Diagnostic| d.labels.iter().all(|(s, _)| s.start >= offset && s.end <= offset + typed.len() + 1);
        let mut out = String::new();
        for d in diags {
            if inside(d) && !d.labels.is_empty() {
                let mut shifted = d.clone();
                for (s, _) in &mut shifted.labels {
                    s.start -= offset;
                    s.end = (s.end - offset).min(typed.len());
                }
                out.push_str(&diag::render(&[shifted], Some(&SourceFile { name: "<repl>", text: typed }), self.color));
            } else {
                out.push_str(&diag::render(
                    std::slice::from_ref(d),
                    Some(&SourceFile { name: "<session>", text: src }),
                    self.color,
                ));
            }
        }
        out
    }

    pub fn check(&self, src: &str) -> Result<Checked, Vec<Diagnostic>> {
        check::check_source(src)
    }

    /// Handle one complete input (possibly several lines).
    pub fn handle(&mut self, input: &str) -> Output {
        let line = input.trim();
        if line.is_empty() || line.starts_with('#') {
            return Output::default();
        }
        if let Some(cmd) = line.strip_prefix(':') {
            return self.command(cmd.trim());
        }
        let first = line.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("");
        match first {
            "fn" | "layer" | "model" | "data" | "train" => self.define(line),
            "eval" => self.run_eval_block(line),
            "let" => self.define_let(line),
            _ => self.evaluate(line),
        }
    }

    fn define(&mut self, text: &str) -> Output {
        // The definitions the new ones use, and any they would define again (so that the
        // check reports the duplicate with both places).
        let program = match crate::frontend::parser::parse(text) {
            Ok(p) => p,
            Err(d) => return Output { err: self.render(&d, text, 0, text), ..Output::default() },
        };
        let mut uses = names_in(text);
        uses.extend(program.items.iter().filter_map(item_name).filter(|n| self.item_names.contains_key(n)));
        let (items, _) = self.needed(&uses, false);
        let mut candidate = self.items_for(&items);
        let offset = candidate.len() + 1;
        candidate.push('\n');
        candidate.push_str(text);
        candidate.push('\n');
        match self.check(&candidate) {
            Ok(_) => {
                for item in &program.items {
                    let Some(span) = item_span(item) else { continue };
                    let item_text = text[span.start..span.end].to_string();
                    let name = item_name(item).unwrap_or_default();
                    let always = matches!(item, Item::Data(_) | Item::Train(_));
                    if !name.is_empty() {
                        self.item_names.insert(name.clone(), self.items.len());
                        self.known.insert(name.clone());
                    }
                    self.items.push(Entry {
                        uses: names_in(&item_text),
                        text: item_text,
                        name,
                        always,
                        value: None,
                        cacheable: false,
                    });
                }
                Output::default()
            }
            Err(d) => Output { err: self.render(&d, &candidate, offset, text), ..Output::default() },
        }
    }

    fn define_let(&mut self, text: &str) -> Output {
        let (src, offset) = self.program(text);
        match self.check(&src) {
            Ok(c) => {
                // `let NAME = ...`, or `let [A, B] = ...` binding a list's elements.
                let bound = text.trim_start().trim_start_matches("let").split('=').next().unwrap_or("").trim();
                let list = bound.starts_with('[');
                let names: Vec<String> =
                    bound.trim_matches(|c| c == '[' || c == ']').split(',').map(|n| n.trim().to_string()).collect();
                // Show each new name's shape, as a reminder of what it holds.
                let mut out = String::new();
                for name in &names {
                    let shape = c.evals.last().and_then(|e| {
                        e.graph
                            .nodes
                            .iter()
                            .rev()
                            .find(|n| n.name.as_deref() == Some(name.as_str()))
                            .map(|n| e.graph.shape_str(&n.shape))
                    });
                    if let Some(s) = shape {
                        out.push_str(&format!("{name}: {s}\n"));
                    }
                    self.let_names.entry(name.clone()).or_default().push(self.lets.len());
                    self.known.insert(name.clone());
                }
                let value = text.split_once('=').map_or("", |(_, v)| v);
                self.lets.push(Entry {
                    text: text.to_string(),
                    uses: names_in(value),
                    name: bound.to_string(),
                    always: false,
                    value: None,
                    // A list binding has no one value to write back.
                    cacheable: !list,
                });
                Output { out, ..Output::default() }
            }
            Err(d) => Output { err: self.render(&d, &src, offset, text), ..Output::default() },
        }
    }

    fn evaluate(&mut self, expr: &str) -> Output {
        let (src, offset) = self.program(expr);
        let checked = match self.check(&src) {
            Ok(c) => c,
            Err(d) => return Output { err: self.render(&d, &src, offset, expr), ..Output::default() },
        };
        let Some(e) = checked.evals.last() else { return Output::default() };
        match crate::commands::eval::evaluate(e, 0) {
            Ok(out) => {
                let mut s = String::new();
                for (_, t) in &out.shows {
                    s.push_str(&format!("{t}\n"));
                    if !t.shape.is_empty() {
                        s.push_str(&format!("  shape {:?}\n", t.shape));
                    }
                }
                Output { out: s, ..Output::default() }
            }
            Err(msg) => Output { err: format!("error: {msg}\n"), ..Output::default() },
        }
    }

    fn run_eval_block(&mut self, text: &str) -> Output {
        let (items, _) = self.needed(&names_in(text), false);
        let mut src = self.items_for(&items);
        let offset = src.len() + 1;
        src.push('\n');
        src.push_str(text);
        src.push('\n');
        let checked = match self.check(&src) {
            Ok(c) => c,
            Err(d) => return Output { err: self.render(&d, &src, offset, text), ..Output::default() },
        };
        let mut out = String::new();
        for e in &checked.evals {
            match crate::commands::eval::evaluate(e, 0) {
                Ok(o) => out.push_str(&crate::commands::eval::format_eval(e.name.as_deref(), &o)),
                Err(msg) => return Output { err: format!("error: {msg}\n"), ..Output::default() },
            }
        }
        Output { out, ..Output::default() }
    }

    fn command(&mut self, cmd: &str) -> Output {
        let (name, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
        let rest = rest.trim();
        match name {
            "q" | "quit" | "exit" => Output { quit: true, ..Output::default() },
            "h" | "help" => Output { out: format!("{HELP}\n"), ..Output::default() },
            "grad" => {
                let Some((expr, wrt)) = rest.rsplit_once(" wrt ") else {
                    return Output { err: "usage: :grad EXPR wrt NAME[, NAME...]\n".into(), ..Output::default() };
                };
                let tail = format!("grad {expr} wrt {wrt}");
                let (src, offset) = self.program_uncached(&tail);
                let checked = match self.check(&src) {
                    Ok(c) => c,
                    Err(d) => return Output { err: self.render(&d, &src, offset, &tail), ..Output::default() },
                };
                let Some(e) = checked.evals.last() else { return Output::default() };
                match crate::commands::eval::evaluate(e, 0) {
                    Ok(o) => {
                        let text = crate::commands::eval::format_eval(None, &o);
                        Output {
                            out: text.lines().skip(1).map(|l| format!("{}\n", l.trim_start())).collect(),
                            ..Output::default()
                        }
                    }
                    Err(msg) => Output { err: format!("error: {msg}\n"), ..Output::default() },
                }
            }
            "type" | "t" => {
                let (src, offset) = self.program(rest);
                match self.check(&src) {
                    Ok(c) => {
                        let shape = c
                            .evals
                            .last()
                            .and_then(|e| e.shows.last().map(|(_, id)| e.graph.shape_str(e.graph.shape(*id))));
                        Output {
                            out: format!("{rest} : {}\n", shape.unwrap_or_else(|| "(no value)".into())),
                            ..Output::default()
                        }
                    }
                    Err(d) => Output { err: self.render(&d, &src, offset, rest), ..Output::default() },
                }
            }
            "graph" => {
                // Differentiate sum(EXPR) wrt every variable of the session.
                let mut vars: Vec<String> = self.let_names.keys().cloned().collect();
                vars.sort();
                vars.dedup();
                let tail = if vars.is_empty() {
                    rest.to_string()
                } else {
                    format!("grad sum({rest}) wrt {}", vars.join(", "))
                };
                let (src, offset) = self.program_uncached(&tail);
                let checked = match self.check(&src) {
                    Ok(c) => c,
                    Err(d) => return Output { err: self.render(&d, &src, offset, &tail), ..Output::default() },
                };
                match crate::commands::graph::picture(&checked, None, false, false, None, None) {
                    Ok(p) => Output { out: p.text, ..Output::default() },
                    Err(msg) => Output { err: format!("error: {msg}\n"), ..Output::default() },
                }
            }
            "load" => self.load(Path::new(rest)),
            "train" => self.train(),
            other => {
                let mut msg = format!("unknown command `:{other}`");
                if let Some(s) = diag::nearest(&format!(":{other}"), COMMANDS.iter().copied()) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                Output { err: format!("{msg} (:help lists the commands)\n"), ..Output::default() }
            }
        }
    }

    fn load(&mut self, path: &Path) -> Output {
        let text = match crate::runtime::files::read_text(path, crate::runtime::files::MAX_SOURCE_BYTES) {
            Ok(t) => t,
            Err(msg) => return Output { err: format!("error: {msg}\n"), ..Output::default() },
        };
        let program = match crate::frontend::parser::parse(&text) {
            Ok(p) => p,
            Err(d) => {
                let name = path.display().to_string();
                return Output {
                    err: diag::render(&d, Some(&SourceFile { name: &name, text: &text }), self.color),
                    ..Output::default()
                };
            }
        };
        // Definitions join the session; eval blocks run now.
        let mut defs = String::new();
        let mut evals = String::new();
        for item in &program.items {
            let span = item_span(item).map(|s| (s, matches!(item, Item::Eval(_))));
            if let Some((s, is_eval)) = span {
                let target = if is_eval { &mut evals } else { &mut defs };
                target.push_str(&text[s.start..s.end]);
                target.push('\n');
            }
        }
        let mut out = if defs.is_empty() { Output::default() } else { self.define(&defs) };
        if !out.err.is_empty() {
            return out;
        }
        self.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        if !evals.is_empty() {
            let r = self.run_eval_block(&evals);
            out.out.push_str(&r.out);
            out.err.push_str(&r.err);
        }
        let summary = self.check(&self.all_items()).map(|c| crate::commands::report::summary(&c)).unwrap_or_default();
        out.out.push_str(&format!("loaded {}\n{summary}", path.display()));
        out
    }

    fn train(&mut self) -> Output {
        let all = self.all_items();
        let checked = match self.check(&all) {
            Ok(c) => c,
            Err(d) => return Output { err: self.render(&d, &all, usize::MAX, ""), ..Output::default() },
        };
        if checked.trains.is_empty() {
            return Output {
                err: "error: the session has no train block (:load a file with one)\n".into(),
                ..Output::default()
            };
        }
        let opts = crate::commands::train::RunOptions {
            train: None,
            overrides: Default::default(),
            quiet: false,
            json: false,
            plot: None,
            save: None,
            load: None,
            init_from: None,
            resume: None,
            stop_after: None,
            data_dir: None,
            stats: false,
            engine: crate::commands::train::EngineKind::Jit,
            memory_limit: crate::ir::limits::default_limit(),
            checked: false,
            conv: Default::default(),
        };
        match crate::commands::train::train_report(&checked, &self.base_dir.join("repl.net"), &opts) {
            Ok(text) => Output { out: text, ..Output::default() },
            Err(d) => Output { err: diag::render(&[d], None, self.color), ..Output::default() },
        }
    }
}

/// The name a top-level item defines (a data block may have none; train blocks and eval
/// blocks define none).
fn item_name(item: &Item) -> Option<String> {
    match item {
        Item::Fn(f) | Item::Layer(f) => Some(f.name.name.clone()),
        Item::Model(m) => Some(m.name.name.clone()),
        Item::Data(d) => d.name.as_ref().map(|n| n.name.clone()),
        Item::Train(_) | Item::Eval(_) | Item::Error => None,
    }
}

/// Where an item is written.
fn item_span(item: &Item) -> Option<crate::diag::Span> {
    match item {
        Item::Fn(f) | Item::Layer(f) => Some(f.span),
        Item::Model(m) => Some(m.span),
        Item::Data(d) | Item::Train(d) => Some(d.span),
        Item::Eval(e) => Some(e.span),
        Item::Error => None,
    }
}

/// Are all brackets of `text` closed? (Otherwise the input continues on the next line.)
pub fn complete(text: &str) -> bool {
    unclosed(text).is_none()
}

/// The innermost bracket of `text` still open at its end (byte offset and character), if any.
pub fn unclosed(text: &str) -> Option<(usize, char)> {
    let mut open: Vec<(usize, char)> = vec![];
    let mut in_string = false;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => in_string = !in_string,
            '\\' if in_string => {
                chars.next();
            }
            '#' if !in_string => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' if !in_string => open.push((at, c)),
            ')' | ']' | '}' if !in_string => {
                // A closer without its opener is the parser's to report: it ends nothing here.
                open.pop();
            }
            _ => {}
        }
    }
    open.last().copied()
}

/// The diagnostic for input that ends (end of file) inside an open bracket.
fn unclosed_at_end(text: &str, color: bool) -> String {
    let Some((at, c)) = unclosed(text) else { return String::new() };
    let open = text.chars().filter(|c| matches!(c, '(' | '[' | '{')).count();
    let close = text.chars().filter(|c| matches!(c, ')' | ']' | '}')).count();
    let d = Diagnostic::new("E-syntax", format!("the input ends inside `{c}`"))
        .label(crate::diag::Span::new(at, at + c.len_utf8()), "this bracket is never closed")
        .note(format!("{} bracket(s) are still open at the end of the input", open.saturating_sub(close).max(1)));
    diag::render(&[d], Some(&SourceFile { name: "<repl>", text }), color)
}

/// rustyline glue: completion of names, continuation while brackets are open.
struct ReplHelper {
    names: Vec<String>,
}

impl rustyline::completion::Completer for ReplHelper {
    type Candidate = String;
    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        let start = line[..pos].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((start, vec![]));
        }
        Ok((start, self.names.iter().filter(|n| n.starts_with(word)).cloned().collect()))
    }
}

impl rustyline::hint::Hinter for ReplHelper {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}

impl rustyline::validate::Validator for ReplHelper {
    fn validate(
        &self,
        ctx: &mut rustyline::validate::ValidationContext,
    ) -> rustyline::Result<rustyline::validate::ValidationResult> {
        Ok(if complete(ctx.input()) {
            rustyline::validate::ValidationResult::Valid(None)
        } else {
            rustyline::validate::ValidationResult::Incomplete
        })
    }
}

impl rustyline::Helper for ReplHelper {}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".netc_history"))
}

/// Run the REPL on the terminal, or on piped standard input (no prompts, no line editing).
pub fn main() -> std::io::Result<()> {
    if !std::io::stdin().is_terminal() {
        return run_script(std::io::stdin().lock(), &mut std::io::stdout(), &mut std::io::stderr());
    }
    let mut session = Session::new(crate::diag::stderr_color());
    let config = rustyline::Config::builder().auto_add_history(true).build();
    let mut editor: rustyline::Editor<ReplHelper, rustyline::history::DefaultHistory> =
        rustyline::Editor::with_config(config).map_err(std::io::Error::other)?;
    editor.set_helper(Some(ReplHelper { names: session.names() }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("netc repl — :help for commands, :quit to leave");
    loop {
        match editor.readline("netc> ") {
            Ok(line) => {
                let out = session.handle(&line);
                print!("{}", out.out);
                eprint!("{}", out.err);
                if out.quit {
                    break;
                }
                if let Some(h) = editor.helper_mut() {
                    h.names = session.names();
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// Run a script: each complete input (brackets balanced) is handled in turn; errors are
/// reported and the script goes on.
pub fn run_script(input: impl BufRead, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
    let mut session = Session::new(false);
    let mut pending = String::new();
    for line in input.lines() {
        let line = line?;
        pending.push_str(&line);
        pending.push('\n');
        if !complete(&pending) {
            continue;
        }
        let o = session.handle(&pending);
        pending.clear();
        out.write_all(o.out.as_bytes())?;
        err.write_all(o.err.as_bytes())?;
        if o.quit {
            return Ok(());
        }
    }
    // Input that ends inside a bracket is incomplete: say so, rather than handing the parser a
    // block closed by a `}` the user never typed.
    if !pending.trim().is_empty() {
        err.write_all(unclosed_at_end(&pending, false).as_bytes())?;
    }
    Ok(())
}
