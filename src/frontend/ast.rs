//! The syntax tree produced by the parser; every node carries its `Span` in the source.

use crate::diag::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct SourceFile {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `fn name(params) = expr` or `fn name(params) { stmts }`
    Fn(FnDef),
    /// `layer name(params) { stmts }`: a function that owns parameters.
    Layer(FnDef),
    /// `model name(x: [B, 784]) -> out: [B, 10] { stmts }`
    Model(ModelDef),
    /// `data name { key: value ... }`
    Data(Settings),
    /// `train model { key: value ... }`
    Train(Settings),
    /// `eval name { let ...; grad f wrt x, y }`
    Eval(EvalDef),
    /// A part of the file that did not parse (already reported).
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FnDef {
    pub name: Ident,
    pub params: Vec<FnParam>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// A function or layer parameter: `units`, `x: [B, 784]`, `init = he`.
#[derive(Clone, Debug, PartialEq)]
pub struct FnParam {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelDef {
    pub name: Ident,
    pub inputs: Vec<Typed>,
    pub outputs: Vec<Typed>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// `name: [dims]`
#[derive(Clone, Debug, PartialEq)]
pub struct Typed {
    pub name: Ident,
    pub ty: TypeExpr,
}

/// A tensor shape written in the source: `[B, 784]`, `[]` for a scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub dims: Vec<DimExpr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DimExpr {
    Known(i64, Span),
    /// A named dimension such as the batch `B`, bound at run time.
    Named(Ident),
}

/// A block of `key: value` settings (`data` and `train`), with an optional name after the keyword.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub keyword_span: Span,
    pub name: Option<Ident>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalDef {
    pub name: Option<Ident>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `let name = value`
    Let { name: Ident, value: Expr },
    /// `param W: [784, 100] = he` — a trainable parameter with its initialiser.
    Param { name: Ident, ty: TypeExpr, init: Option<Expr>, span: Span },
    /// `state mean: [F] = zeros` — a tensor the train step updates by a rule (`<-`), not by
    /// gradients.
    State { name: Ident, ty: TypeExpr, init: Option<Expr>, span: Span },
    /// `mean <- 0.9 * mean + 0.1 * m` — the value a state tensor takes after a train step.
    Update { target: Ident, value: Expr, span: Span },
    /// `grad f wrt x, y`
    Grad { of: Expr, wrt: Vec<Ident>, span: Span },
    /// `return value`
    Return(Expr),
    /// `key: value` in a settings block.
    Setting { key: Ident, value: Expr },
    /// A bare expression: the result when it ends a block.
    Expr(Expr),
    /// A statement that did not parse (already reported).
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    /// `[a, b, c]`: an array literal, a list of settings, or a shape.
    List(Vec<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(a, b, name: c)`; `x |> f(a)` is parsed as `f(x, a)`.
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    /// `w[0]`, `x[1, 2]`
    Index {
        base: Box<Expr>,
        indices: Vec<Expr>,
    },
    /// `x.shape`, `fc1.W`
    Field {
        base: Box<Expr>,
        field: Ident,
    },
    /// `if cond { ... } else { ... }`: the condition is known at compile time (`training`,
    /// a layer's boolean argument); each branch is a block whose last expression is its value.
    If {
        cond: Box<Expr>,
        then: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "**",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    /// `lhs |> rhs`: a call gets `lhs` as its first argument; a bare function is called on it.
    pub fn pipe(lhs: Expr, rhs: Expr, span: Span) -> Expr {
        match rhs.kind {
            ExprKind::Call { callee, mut args } => {
                args.insert(0, Arg { name: None, value: lhs });
                Expr::new(ExprKind::Call { callee, args }, span)
            }
            _ => Expr::new(ExprKind::Call { callee: Box::new(rhs), args: vec![Arg { name: None, value: lhs }] }, span),
        }
    }
}
