//! Parsing: the token stream of `lexer` -> `ast::SourceFile`, with every syntax error turned into a
//! diagnostic that lists the tokens that would have fit. The grammar is `grammar/netc.lalrpop`.

use lalrpop_util::{lalrpop_mod, ParseError};

use crate::diag::{Diagnostic, Span};
use crate::frontend::ast::{Expr, SourceFile};
use crate::frontend::lexer::{self, Token};

lalrpop_mod!(
    #[allow(clippy::all, unused_imports, unused_parens, dead_code)]
    grammar,
    "/netc.rs"
);

/// How deeply an expression may nest: operands of operators, arguments of calls (a `|>`
/// stage is a call), list items and indices each add a level. The checker elaborates an
/// expression recursively, so the limit bounds its stack: the command line runs on a
/// `STACK_BYTES` stack, ample for this depth with a debug build (tests/deep.rs measures it).
/// A 5000-layer pipeline is 5000 levels; a sum of more than 20,000 terms should be split
/// with `let`s.
pub const MAX_NESTING: usize = 20_000;

/// The stack the command line runs its work on (see `MAX_NESTING`). Reserved, not committed:
/// the operating system backs only the pages a deep input actually touches.
pub const STACK_BYTES: usize = 512 << 20;

/// A diagnostic for each expression of `exprs` nested deeper than `MAX_NESTING`.
fn nesting_errors<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Vec<Diagnostic> {
    exprs
        .into_iter()
        .filter_map(|e| {
            let (depth, deepest) = e.depth();
            (depth > MAX_NESTING).then(|| {
                Diagnostic::new(
                    "E-nesting",
                    format!("expression nested too deeply: {depth} levels, over the limit of {MAX_NESTING}"),
                )
                .label(deepest, format!("{depth} levels deep"))
                .note("each operator, call, `|>` stage, list and index adds a level")
                .help("split the expression with `let` (each `let` starts a new expression)")
            })
        })
        .collect()
}

/// Parse a whole `.net` file. Syntax errors inside a block are recovered from at the next
/// statement, so one run reports several of them.
pub fn parse(src: &str) -> Result<SourceFile, Vec<Diagnostic>> {
    let (tokens, mut diags) = lexer::lex(src);
    let mut recovered = Vec::new();
    let result = grammar::SourceFileParser::new().parse(&mut recovered, tokens);
    // A parse error at an `Error` token repeats a lexing error already in `diags`.
    let fresh = |e: &ParseError<usize, Token, Diagnostic>| {
        !matches!(e, ParseError::UnrecognizedToken { token: (_, Token::Error, _), .. })
    };
    for r in recovered {
        if fresh(&r.error) {
            diags.push(to_diagnostic(r.error, src));
        }
    }
    if let Ok(program) = &result {
        diags.extend(nesting_errors(crate::frontend::ast::root_exprs(program)));
    }
    match result {
        Ok(program) if diags.is_empty() => Ok(program),
        Ok(_) => Err(diags),
        Err(e) => {
            if fresh(&e) {
                let d = to_diagnostic(e, src);
                if !diags.contains(&d) {
                    diags.push(d);
                }
            }
            if diags.is_empty() {
                diags.push(Diagnostic::new("E-syntax", "the file does not parse"));
            }
            Err(diags)
        }
    }
}

/// Parse a single expression (for the REPL and tests).
pub fn parse_expr(src: &str) -> Result<crate::frontend::ast::Expr, Vec<Diagnostic>> {
    let (tokens, lex_errors) = lexer::lex(src);
    if !lex_errors.is_empty() {
        return Err(lex_errors);
    }
    let mut recovered = Vec::new();
    let e = grammar::ExprParser::new().parse(&mut recovered, tokens).map_err(|e| vec![to_diagnostic(e, src)])?;
    let errors = nesting_errors([&e]);
    if errors.is_empty() {
        Ok(e)
    } else {
        Err(errors)
    }
}

fn to_diagnostic(e: ParseError<usize, Token, Diagnostic>, src: &str) -> Diagnostic {
    match e {
        ParseError::User { error } => error,
        ParseError::InvalidToken { location } => {
            Diagnostic::new("E-syntax", "invalid token").label(Span::new(location, location + 1), "here")
        }
        ParseError::UnrecognizedEof { location, expected } => Diagnostic::new("E-syntax", "unexpected end of file")
            .label(Span::new(location, location), "the file ends here")
            .note(expected_list(&expected)),
        ParseError::UnrecognizedToken { token: (l, tok, r), expected } => {
            let (found, span) = if tok == Token::Newline {
                // Point at the end of the line rather than at the invisible newline.
                ("end of line".to_string(), Span::new(l, r.max(l + 1).min(src.len().max(l))))
            } else {
                (tok.describe(), Span::new(l, r))
            };
            let d = Diagnostic::new("E-syntax", format!("unexpected {found}"))
                .label(span, format!("did not expect {found} here"))
                .note(expected_list(&expected));
            match tok {
                Token::Greater | Token::Less | Token::GreaterEq | Token::LessEq | Token::EqEq | Token::NotEq => {
                    d.note("comparisons do not chain: write (a < b) * (b < c) for a < b < c")
                }
                Token::LeftArrow => {
                    d.note("`<-` updates a state tensor; for a comparison with a negative number write `x < -1`")
                }
                _ => d,
            }
        }
        ParseError::ExtraToken { token: (l, tok, r) } => {
            Diagnostic::new("E-syntax", format!("unexpected {}", tok.describe())).label(Span::new(l, r), "extra token")
        }
    }
}

/// "expected one of `)`, `,`, a name" from lalrpop's terminal names.
fn expected_list(expected: &[String]) -> String {
    let mut names: Vec<String> = expected
        .iter()
        .map(|t| match t.as_str() {
            "int" | "float" => "a number".to_string(),
            "ident" => "a name".to_string(),
            "string" => "a string".to_string(),
            "\"newline\"" => "end of line".to_string(),
            quoted => format!("`{}`", quoted.trim_matches('"')),
        })
        .collect();
    names.dedup();
    match names.len() {
        0 => "nothing more was expected here".to_string(),
        1 => format!("expected {}", names[0]),
        _ => format!("expected one of {}", names.join(", ")),
    }
}
