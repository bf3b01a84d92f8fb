//! Lexing: source text -> a stream of `(start, Token, end)` triples for the lalrpop parser.
//!
//! Newlines end statements, as in Python or Go, so `.net` files need no semicolons. The lexer
//! decides which newlines are terminators: none inside `(...)` or `[...]` (but those inside a
//! `{ ... }` block there count again), none after a token that cannot end a statement (an
//! operator, a comma, `{`), none before a line that starts with `|>` (so a pipeline can run over
//! several lines) or with `else`, and never two in a row.

use logos::Logos;

use crate::diag::{Diagnostic, Span};

#[derive(Logos, Clone, Debug, PartialEq)]
// A byte-order mark (U+FEFF, which some editors put at the start of a file) is blank space.
#[logos(skip r"[ \t\f\u{feff}]+")]
#[logos(skip(r"#[^\r\n]*", allow_greedy = true))]
pub enum Token {
    // ---- keywords ----
    #[token("fn")]
    Fn,
    #[token("layer")]
    Layer,
    #[token("model")]
    Model,
    #[token("data")]
    Data,
    #[token("train")]
    Train,
    #[token("eval")]
    Eval,
    #[token("let")]
    Let,
    #[token("param")]
    Param,
    #[token("return")]
    Return,
    #[token("grad")]
    Grad,
    #[token("wrt")]
    Wrt,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("carry")]
    Carry,
    #[token("yield")]
    Yield,
    #[token("state")]
    State,
    #[token("if")]
    If,
    #[token("else")]
    Else,

    // ---- punctuation and operators ----
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token("=")]
    Assign,
    #[token("->")]
    Arrow,
    /// The update of a state tensor: `mean <- 0.9 * mean + 0.1 * m`.
    #[token("<-")]
    LeftArrow,
    #[token("|>")]
    Pipe,
    #[token(">")]
    Greater,
    #[token("<")]
    Less,
    #[token(">=")]
    GreaterEq,
    #[token("<=")]
    LessEq,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("**")]
    #[token("^")]
    Power,
    #[token(".")]
    Dot,
    /// `...` in an index: the axes not otherwise indexed.
    #[token("...")]
    Ellipsis,
    /// An explicit statement separator; a newline usually does this job.
    #[token(";")]
    Semi,
    /// A line end: `\n`, `\r\n`, or a lone `\r` (old Mac files).
    #[regex(r"\r\n|\n|\r")]
    Newline,

    // ---- literals and names ----
    #[regex(r"[0-9]+", |lex| lex.slice().parse::<i64>().ok())]
    Int(i64),
    #[regex(r"[0-9]+\.[0-9]*([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+([eE][+-]?[0-9]+)?", |lex| lex.slice().parse::<f64>().ok().filter(|x| x.is_finite()))]
    Float(f64),
    #[regex(r#""([^"\\\r\n]|\\.)*""#, |lex| unescape(lex.slice()))]
    Str(String),
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    /// Text that is not a token; already reported, and the parser recovers after it.
    Error,
}

fn unescape(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Token {
    /// How the token is shown in "expected one of ..." lists.
    pub fn describe(&self) -> String {
        match self {
            Token::Int(n) => format!("number `{n}`"),
            Token::Float(x) => format!("number `{x}`"),
            Token::Str(s) => format!("string \"{s}\""),
            Token::Ident(s) => format!("name `{s}`"),
            Token::Newline => "end of line".into(),
            other => format!("`{}`", other.text()),
        }
    }

    fn text(&self) -> &'static str {
        match self {
            Token::Fn => "fn",
            Token::Layer => "layer",
            Token::Model => "model",
            Token::Data => "data",
            Token::Train => "train",
            Token::Eval => "eval",
            Token::Let => "let",
            Token::Param => "param",
            Token::Return => "return",
            Token::Grad => "grad",
            Token::Wrt => "wrt",
            Token::For => "for",
            Token::In => "in",
            Token::Carry => "carry",
            Token::Yield => "yield",
            Token::State => "state",
            Token::If => "if",
            Token::Else => "else",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::Comma => ",",
            Token::Colon => ":",
            Token::Assign => "=",
            Token::Arrow => "->",
            Token::LeftArrow => "<-",
            Token::Pipe => "|>",
            Token::Greater => ">",
            Token::Less => "<",
            Token::GreaterEq => ">=",
            Token::LessEq => "<=",
            Token::EqEq => "==",
            Token::NotEq => "!=",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::At => "@",
            Token::Power => "**",
            Token::Dot => ".",
            Token::Ellipsis => "...",
            Token::Semi => ";",
            Token::Newline => "\\n",
            Token::Int(_) | Token::Float(_) | Token::Str(_) | Token::Ident(_) | Token::Error => "",
        }
    }

    /// True if a statement cannot end with this token, so a newline after it continues the line.
    fn continues_line(&self) -> bool {
        matches!(
            self,
            Token::LBrace
                | Token::Comma
                | Token::Colon
                | Token::Assign
                | Token::Arrow
                | Token::LeftArrow
                | Token::Pipe
                | Token::Greater
                | Token::Less
                | Token::GreaterEq
                | Token::LessEq
                | Token::EqEq
                | Token::NotEq
                | Token::Plus
                | Token::Minus
                | Token::Star
                | Token::Slash
                | Token::At
                | Token::Power
                | Token::Dot
                | Token::Semi
                | Token::Wrt
                | Token::For
                | Token::In
                | Token::Carry
                | Token::Yield
        )
    }
}

/// What the parser consumes: `Ok((start, token, end))`.
pub type Spanned = Result<(usize, Token, usize), Diagnostic>;

/// Lex `src` completely. Text that is not a token (an unknown character, an unterminated
/// string, a number too large) becomes an `Error` token plus a diagnostic, so the parser can
/// recover and report later errors too.
pub fn lex(src: &str) -> (Vec<Spanned>, Vec<Diagnostic>) {
    let mut errors = vec![];
    let raw: Vec<Spanned> = Token::lexer(src)
        .spanned()
        .map(|(tok, range)| match tok {
            Ok(t) => Ok((range.start, t, range.end)),
            Err(()) => {
                errors.push(lex_error(src, Span::new(range.start, range.end)));
                Ok((range.start, Token::Error, range.end))
            }
        })
        .collect();
    (insert_terminators(raw), errors)
}

fn lex_error(src: &str, span: Span) -> Diagnostic {
    let text = src.get(span.start..span.end).unwrap_or("");
    let (message, label) = if text.starts_with('"') {
        ("unterminated string".to_string(), "this string has no closing `\"` on its line".to_string())
    } else if text.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.') && text.contains(['.', 'e', 'E']) {
        (format!("number `{text}` is too large"), "beyond the largest 64-bit float, about 1.8e308".to_string())
    } else if text.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        (format!("number `{text}` is too large"), "does not fit in 64 bits".to_string())
    } else {
        (format!("unexpected character `{}`", text.escape_debug()), "not part of the language".to_string())
    };
    Diagnostic::new("E-lex", message)
        .label(span, label)
        .note("tokens are names, numbers, \"strings\", and ( ) [ ] { } , : = -> <- |> > < >= <= == != + - * / @ ** . ... ; #comments")
}

/// Keep only the newlines that end statements (see the module comment); `;` counts as one.
fn insert_terminators(raw: Vec<Spanned>) -> Vec<Spanned> {
    // The token after each position that is not a newline (`None` at the end, `Some(None)` at
    // a lexing error), found in one backward pass so that runs of blank lines cost nothing.
    let mut next_after: Vec<Option<Option<Token>>> = vec![None; raw.len() + 1];
    for i in (0..raw.len()).rev() {
        next_after[i] = match &raw[i] {
            Ok((_, Token::Newline, _)) => next_after[i + 1].clone(),
            Ok((_, t, _)) => Some(Some(t.clone())),
            Err(_) => Some(None),
        };
    }
    let mut out: Vec<Spanned> = Vec::with_capacity(raw.len());
    // The open brackets, innermost last: newlines end statements only when it is a `{` (or
    // none is open), so an `if` block inside a call's parentheses has its lines.
    let mut open: Vec<Token> = vec![];
    for (i, item) in raw.into_iter().enumerate() {
        let Ok((s, tok, e)) = item else {
            out.push(item);
            continue;
        };
        match tok {
            Token::LParen | Token::LBracket | Token::LBrace => open.push(tok.clone()),
            Token::RParen | Token::RBracket | Token::RBrace => {
                open.pop();
            }
            _ => {}
        }
        let in_brackets = matches!(open.last(), Some(Token::LParen | Token::LBracket));
        if matches!(tok, Token::Newline | Token::Semi) {
            let prev = out.last().and_then(|t| t.as_ref().ok()).map(|(_, t, _)| t);
            let next = &next_after[i + 1];
            let drop = in_brackets
                || prev.is_none_or(|p| p.continues_line() || *p == Token::Newline)
                || matches!(next, None | Some(Some(Token::Pipe | Token::RBrace | Token::Else)));
            if !drop {
                out.push(Ok((s, Token::Newline, e)));
            }
            continue;
        }
        out.push(Ok((s, tok, e)));
    }
    out
}
