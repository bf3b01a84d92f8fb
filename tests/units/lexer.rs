//! Moved from `src/frontend/lexer.rs`'s unit tests.

use netc::diag::Span;

use netc::frontend::lexer::*;

fn tokens(src: &str) -> Vec<Token> {
    lex(src).0.into_iter().map(|t| t.unwrap().1).collect()
}

#[test]
fn numbers_names_and_operators() {
    use Token::*;
    assert_eq!(
        tokens("x @ W1 + 0.5 ** 2 |> relu"),
        vec![Ident("x".into()), At, Ident("W1".into()), Plus, Float(0.5), Power, Int(2), Pipe, Ident("relu".into())]
    );
    assert_eq!(tokens("1e-3 2.5E2 .5"), vec![Float(1e-3), Float(250.0), Float(0.5)]);
    assert_eq!(tokens("x ^ 2"), vec![Ident("x".into()), Power, Int(2)]);
}

#[test]
fn keywords_strings_and_comments() {
    use Token::*;
    assert_eq!(
        tokens("let fn model \"a\\\"b\" # comment\nparam"),
        vec![Let, Fn, Model, Str("a\"b".into()), Newline, Param]
    );
}

#[test]
fn newlines_end_statements_only_where_they_can() {
    use Token::*;
    // Inside brackets, after an operator, before a `|>` line, and repeated: dropped.
    let t = tokens("let a = f(1,\n 2)\n\n\nlet b = a +\n 1\n  |> g\n}");
    assert_eq!(
        t,
        vec![
            Let,
            Ident("a".into()),
            Assign,
            Ident("f".into()),
            LParen,
            Int(1),
            Comma,
            Int(2),
            RParen,
            Newline,
            Let,
            Ident("b".into()),
            Assign,
            Ident("a".into()),
            Plus,
            Int(1),
            Pipe,
            Ident("g".into()),
            RBrace
        ]
    );
}

#[test]
fn bad_characters_are_errors_with_spans() {
    let (toks, errs) = lex("let a = 3 $ 4");
    assert!(toks.iter().any(|t| matches!(t, Ok((_, Token::Error, _)))));
    let err = errs.into_iter().next().unwrap();
    assert_eq!(err.code, "E-lex");
    assert_eq!(err.labels[0].0, Span::new(10, 11));
}
