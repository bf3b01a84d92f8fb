//! Diagnostics: the one error type every stage reports through, and the only place that
//! renders them (with ariadne, pointing into the user's source).

use std::fmt;

/// A byte range in one source file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// One problem found in the user's input: a code, a one-line message, labelled spans in the
/// source, and notes. Data-file errors carry no span; their message names the file and line.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Short stable identifier of the class of error, e.g. `E-shape`.
    pub code: &'static str,
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<(Span, String)>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), labels: vec![], notes: vec![], help: None }
    }

    pub fn label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.labels.push((span, text.into()));
        self
    }

    pub fn note(mut self, text: impl Into<String>) -> Diagnostic {
        self.notes.push(text.into());
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Diagnostic {
        self.help = Some(text.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// A source file as the diagnostics see it.
pub struct SourceFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// Whether diagnostics on stderr get colour: only on a terminal, and never when `NO_COLOR`
/// is set to anything but the empty string (no-color.org).
pub fn stderr_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Render diagnostics as text. `color` is for terminals; tests and pipes get plain text.
pub fn render(diags: &[Diagnostic], file: Option<&SourceFile>, color: bool) -> String {
    use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
    let mut out = Vec::new();
    for d in diags {
        match file {
            Some(file) if !d.labels.is_empty() => {
                let name = file.name.to_string();
                let clamp = |s: Span| {
                    let end = s.end.min(file.text.len());
                    (name.clone(), s.start.min(end)..end)
                };
                // `N-` codes are remarks about a program that is fine (ariadne's "Advice": its
                // custom kinds are coloured even without colour).
                let kind = if d.code.starts_with("N-") { ReportKind::Advice } else { ReportKind::Error };
                let mut report = Report::build(kind, clamp(d.labels[0].0))
                    .with_config(Config::default().with_color(color).with_index_type(IndexType::Byte))
                    .with_code(d.code)
                    .with_message(&d.message);
                for (i, (span, text)) in d.labels.iter().enumerate() {
                    let mut label = Label::new(clamp(*span)).with_message(text).with_order(i as i32);
                    if color {
                        label = label.with_color(if i == 0 { ariadne::Color::Red } else { ariadne::Color::Blue });
                    }
                    report = report.with_label(label);
                }
                for n in &d.notes {
                    report = report.with_note(n);
                }
                if let Some(h) = &d.help {
                    report = report.with_help(h);
                }
                let _ = report.finish().write((name.clone(), Source::from(file.text)), &mut out);
            }
            _ => {
                let kind = if d.code.starts_with("N-") { "note" } else { "error" };
                let mut text = format!("{kind}[{}]: {}\n", d.code, d.message);
                for (_, l) in &d.labels {
                    text.push_str(&format!("  = {l}\n"));
                }
                for n in &d.notes {
                    text.push_str(&format!("  = note: {n}\n"));
                }
                if let Some(h) = &d.help {
                    text.push_str(&format!("  = help: {h}\n"));
                }
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The 1-based line and column (counted in characters) of byte `offset` in `text`, as an
/// editor shows them; an offset past the end is the end.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The nearest of `candidates` to `name` by edit distance, if it is close enough to suggest.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip far ones without computing it.
        .filter(|c| c.len().abs_diff(len) <= limit * 4 && c.chars().count().abs_diff(len) <= limit)
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        // Ties go to a name of the same case as the asked one (`y` is nearer `x` than the
        // size `B`), then the shorter, then the first given (callers list the likelier first,
        // in a fixed order).
        .min_by_key(|&(d, c)| (d, !same_case(name, c), c.len()))
        .map(|(_, c)| c)
}

/// Whether two names start with letters of the same case.
fn same_case(a: &str, b: &str) -> bool {
    let upper = |s: &str| s.chars().next().is_some_and(char::is_uppercase);
    upper(a) == upper(b)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + (ca != cb) as usize).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
