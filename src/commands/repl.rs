//! `netc repl`: an interactive prompt. Each line is checked and evaluated as part of a session
//! program: definitions (fn, layer, model, data, train) accumulate, `let`s accumulate in the
//! session's scope, and an expression is evaluated in an eval block made of them. Errors are
//! diagnostics pointing into the line typed and never end the session.
//!
//! The session logic (`Session::handle`) is independent of the terminal, so tests drive it
//! with piped scripts exactly as a user would.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::diag::{self, Diagnostic, SourceFile};
use crate::frontend::check;
use crate::frontend::checked::Checked;

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

pub struct Session {
    /// Accepted top-level definitions, as source text.
    items: String,
    /// Accepted `let` statements, in order.
    lets: Vec<String>,
    /// Where `:load`ed files live: data paths of train blocks are relative to it.
    base_dir: PathBuf,
    color: bool,
}

impl Session {
    pub fn new(color: bool) -> Session {
        Session { items: String::new(), lets: vec![], base_dir: PathBuf::from("."), color }
    }

    /// Names to complete: session definitions, built-ins, commands.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = COMMANDS.iter().map(|s| s.to_string()).collect();
        names.extend(crate::frontend::builtins::Builtin::ALL.iter().map(|b| b.name().to_string()));
        names.extend(["dense", "conv2d", "maxout", "labels"].map(String::from));
        for text in self.lets.iter().chain(std::iter::once(&self.items)) {
            for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if word.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') {
                    names.push(word.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// The eval block of the session's lets followed by `tail`, after the definitions; returns
    /// the source and the byte offset at which `tail` starts.
    fn program(&self, tail: &str) -> (String, usize) {
        let mut src = self.items.clone();
        src.push_str("\neval repl {\n");
        for l in &self.lets {
            src.push_str(l);
            src.push('\n');
        }
        let offset = src.len();
        src.push_str(tail);
        src.push_str("\n}\n");
        (src, offset)
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

    fn check(&self, src: &str) -> Result<Checked, Vec<Diagnostic>> {
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
        let mut candidate = self.items.clone();
        let offset = candidate.len() + 1;
        candidate.push('\n');
        candidate.push_str(text);
        candidate.push('\n');
        match self.check(&candidate) {
            Ok(_) => {
                self.items = candidate;
                Output::default()
            }
            Err(d) => Output { err: self.render(&d, &candidate, offset, text), ..Output::default() },
        }
    }

    fn define_let(&mut self, text: &str) -> Output {
        let (src, offset) = self.program(text);
        match self.check(&src) {
            Ok(c) => {
                self.lets.push(text.to_string());
                // Show the new name's shape, as a reminder of what it holds.
                let name = text.trim_start_matches("let").split('=').next().unwrap_or("").trim();
                let shape = c.evals.last().and_then(|e| {
                    e.graph
                        .nodes
                        .iter()
                        .rev()
                        .find(|n| n.name.as_deref() == Some(name))
                        .map(|n| e.graph.shape_str(&n.shape))
                });
                Output { out: shape.map(|s| format!("{name}: {s}\n")).unwrap_or_default(), ..Output::default() }
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
        let mut src = self.items.clone();
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
                let (src, offset) = self.program(&tail);
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
                let vars: Vec<String> = self
                    .lets
                    .iter()
                    .filter_map(|l| l.trim_start_matches("let").split('=').next().map(|n| n.trim().to_string()))
                    .collect();
                let tail = if vars.is_empty() {
                    rest.to_string()
                } else {
                    format!("grad sum({rest}) wrt {}", vars.join(", "))
                };
                let (src, offset) = self.program(&tail);
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
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                return Output { err: format!("error: cannot read {}: {e}\n", path.display()), ..Output::default() }
            }
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
            let span = match item {
                crate::frontend::ast::Item::Fn(f) | crate::frontend::ast::Item::Layer(f) => Some((f.span, false)),
                crate::frontend::ast::Item::Model(m) => Some((m.span, false)),
                crate::frontend::ast::Item::Data(d) | crate::frontend::ast::Item::Train(d) => Some((d.span, false)),
                crate::frontend::ast::Item::Eval(e) => Some((e.span, true)),
                crate::frontend::ast::Item::Error => None,
            };
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
        let summary = self.check(&self.items).map(|c| crate::commands::report::summary(&c)).unwrap_or_default();
        out.out.push_str(&format!("loaded {}\n{summary}", path.display()));
        out
    }

    fn train(&mut self) -> Output {
        let checked = match self.check(&self.items) {
            Ok(c) => c,
            Err(d) => return Output { err: self.render(&d, &self.items, usize::MAX, ""), ..Output::default() },
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

/// Are all brackets of `text` closed? (Otherwise the input continues on the next line.)
pub fn complete(text: &str) -> bool {
    let mut depth = 0i32;
    let mut in_string = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_string = !in_string,
            '\\' if in_string => {
                chars.next();
            }
            '#' if !in_string => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' if !in_string => depth += 1,
            ')' | ']' | '}' if !in_string => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
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
    if !pending.trim().is_empty() {
        let o = session.handle(&pending);
        out.write_all(o.out.as_bytes())?;
        err.write_all(o.err.as_bytes())?;
    }
    Ok(())
}
