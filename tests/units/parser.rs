//! Moved from `src/frontend/parser.rs`'s unit tests.

use netc::frontend::ast::Expr;

use netc::frontend::ast::*;
use netc::frontend::parser::*;

fn expr(src: &str) -> Expr {
    parse_expr(src).unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

/// The expression tree as an s-expression, without spans.
fn sexp(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Float(x) => format!("{x:?}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Name(n) => n.clone(),
        ExprKind::List(v) => format!("[{}]", v.iter().map(sexp).collect::<Vec<_>>().join(" ")),
        ExprKind::Neg(a) => format!("(neg {})", sexp(a)),
        ExprKind::Binary(op, a, b) => format!("({} {} {})", op.symbol(), sexp(a), sexp(b)),
        ExprKind::Call { callee, args } => {
            let args: Vec<String> = args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{}:{}", n.name, sexp(&a.value)),
                    None => sexp(&a.value),
                })
                .collect();
            format!("({} {})", sexp(callee), args.join(" "))
        }
        ExprKind::Index { base, indices } => {
            let part = |e: &Option<Expr>| e.as_ref().map_or(String::new(), sexp);
            let items: Vec<String> = indices
                .iter()
                .map(|i| match i {
                    IndexItem::At(e) => sexp(e),
                    IndexItem::Slice { start, stop, step: None, .. } => format!("{}:{}", part(start), part(stop)),
                    IndexItem::Slice { start, stop, step, .. } => {
                        format!("{}:{}:{}", part(start), part(stop), part(step))
                    }
                    IndexItem::Ellipsis(_) => "...".into(),
                })
                .collect();
            format!("(index {} {})", sexp(base), items.join(" "))
        }
        ExprKind::Field { base, field } => format!("(. {} {})", sexp(base), field.name),
        ExprKind::Grad { of, wrt } => format!("(grad {} wrt:{})", sexp(of), sexp(wrt)),
        ExprKind::If { cond, then, otherwise } => {
            let block = |b: &[Stmt]| {
                let parts: Vec<String> = b
                    .iter()
                    .map(|s| match s {
                        Stmt::Expr(e) => sexp(e),
                        Stmt::Update { target, value, .. } => format!("(<- {} {})", target.name, sexp(value)),
                        Stmt::Let { name, value } => format!("(let {} {})", name.name, sexp(value)),
                        other => format!("{other:?}"),
                    })
                    .collect();
                format!("{{{}}}", parts.join(" "))
            };
            match otherwise {
                Some(o) => format!("(if {} {} {})", sexp(cond), block(then), block(o)),
                None => format!("(if {} {})", sexp(cond), block(then)),
            }
        }
    }
}

#[test]
fn if_expressions_state_and_updates() {
    assert_eq!(sexp(&expr("if training { x * 2 } else { x }")), "(if training {(* x 2)} {x})");
    assert_eq!(sexp(&expr("1 + if a { b } else if c { d } else { e }")), "(+ 1 (if a {b} {(if c {d} {e})}))");
    // Branches hold statements, one per line, even inside a call's parentheses; `else` may
    // start the next line.
    let e = expr("f(if training {\n  let y = x * 2\n  m <- y\n  y\n}\nelse { x })");
    assert_eq!(sexp(&e), "(f (if training {(let y (* x 2)) (<- m y) y} {x}))");
    let program = parse("layer l(x) {\n  state s: [3] = zeros\n  s <- s + 1\n  x\n}\n").unwrap();
    let Item::Layer(f) = &program.items[0] else { panic!() };
    assert!(matches!(f.body[0], Stmt::State { .. }));
    assert!(matches!(&f.body[1], Stmt::Update { target, .. } if target.name == "s"));
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(sexp(&expr("a + b * c")), "(+ a (* b c))");
    assert_eq!(sexp(&expr("a - b - c")), "(- (- a b) c)");
    assert_eq!(sexp(&expr("x @ W + b")), "(+ (@ x W) b)");
    assert_eq!(sexp(&expr("-x ** 2")), "(neg (** x 2))");
    assert_eq!(sexp(&expr("a ** b ** c")), "(** a (** b c))");
    assert_eq!(sexp(&expr("2 ** -1")), "(** 2 (neg 1))");
    assert_eq!(sexp(&expr("(a + b) * c")), "(* (+ a b) c)");
}

#[test]
fn calls_indexing_fields_and_pipes() {
    assert_eq!(sexp(&expr("conv2d(x, filters: 16, kernel: 3)")), "(conv2d x filters:16 kernel:3)");
    assert_eq!(sexp(&expr("w[0] * x[1, 2]")), "(* (index w 0) (index x 1 2))");
    assert_eq!(sexp(&expr("x.shape[-1]")), "(index (. x shape) (neg 1))");
    assert_eq!(sexp(&expr("x[:, 1:3]")), "(index x : 1:3)");
    assert_eq!(sexp(&expr("x[::2, -1:]")), "(index x ::2 (neg 1):)");
    assert_eq!(sexp(&expr("x[..., a:b:-1]")), "(index x ... a:b:(neg 1))");
    assert_eq!(sexp(&expr("E[tokens][0]")), "(index (index E tokens) 0)");
    assert_eq!(sexp(&expr("x |> dense(10) |> relu")), "(relu (dense x 10))");
    assert_eq!(sexp(&expr("[[1, 2], [3, 4.5]]")), "[[1 2] [3 4.5]]");
}

#[test]
fn items_and_statements() {
    let src = r#"
# a comment
fn f(x, y = 2) = x * y
layer dense(x, units, init = xavier) {
  param W: [x.shape, units] = init
  x @ W
}
model net(x: [B, 2]) -> scores: [B, 3] {
  let h = x
|> dense(100)
|> relu
  h |> dense(3)
}
data points { source: spiral(points: 100, classes: 3, seed: 0) }
train net {
  loss: cross_entropy(scores, labels); steps: 100
}
eval gates {
  let x = -2
  grad x * 2 wrt x
}
"#;
    // `param W: [x.shape, ...]` is not a valid dimension: the parser must say so.
    let err = parse(src).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].message.contains("unexpected `.`"), "{:?}", err[0]);

    let ok = src.replace("[x.shape, units]", "[K, units]");
    let program = parse(&ok).unwrap();
    let kinds: Vec<&str> = program
        .items
        .iter()
        .map(|i| match i {
            Item::Fn(_) => "fn",
            Item::Layer(_) => "layer",
            Item::Model(_) => "model",
            Item::Data(_) => "data",
            Item::Train(_) => "train",
            Item::Eval(_) => "eval",
            Item::Error => "error",
        })
        .collect();
    assert_eq!(kinds, ["fn", "layer", "model", "data", "train", "eval"]);
    let Item::Train(t) = &program.items[4] else { unreachable!() };
    assert_eq!(t.body.len(), 2, "`;` separates statements");
    let Item::Model(m) = &program.items[2] else { unreachable!() };
    assert_eq!(m.body.len(), 2, "a pipeline may continue on lines starting with |>");
}

#[test]
fn syntax_errors_list_expected_tokens_and_recover() {
    let err = parse("model m(x: [B, 2]) -> [B, 2] {\n  let a = x * * 2\n  let b = ]\n  a\n}\n").unwrap_err();
    assert!(err.len() >= 2, "recovers and reports more than one: {err:?}");
    assert!(err[0].notes[0].starts_with("expected one of"), "{:?}", err[0]);
    assert!(parse("fn f(x) = ").is_err());
    assert!(parse("").unwrap().items.is_empty());
}
