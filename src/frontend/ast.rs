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

/// `name: [dims]`, optionally with an element type: `tokens: [B, T] int`.
#[derive(Clone, Debug, PartialEq)]
pub struct Typed {
    pub name: Ident,
    pub ty: TypeExpr,
    /// `int` or `float` after the shape (float when absent).
    pub elem: Option<Ident>,
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
    /// `let [a, b, c] = value`: the elements of a list (e.g. what `split` returns).
    LetList { names: Vec<Ident>, value: Expr, span: Span },
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
    /// `for t in range(T) carry (h, c) { ... }`: a loop over a static number of steps.
    For(ForLoop),
    /// `yield hs = h` (`, axis: 1`) in a loop body: one value per step, stacked into `hs`.
    Yield { name: Ident, value: Expr, options: Vec<Arg>, span: Span },
    /// A bare expression: the result when it ends a block.
    Expr(Expr),
    /// A statement that did not parse (already reported).
    Error,
}

/// `for var in range { body }` with the values the body carries from step to step.
#[derive(Clone, Debug, PartialEq)]
pub struct ForLoop {
    pub var: Ident,
    /// `range(T)`, `range(a, b)`, `reversed(range(T))`, with options such as `checkpoint: k`.
    pub range: Expr,
    /// Names bound before the loop that each step reads and may rebind (`let h = ...`).
    pub carries: Vec<Ident>,
    pub body: Vec<Stmt>,
    pub span: Span,
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
    /// `w[0]`, `x[1, 2]`, `x[:, 1:3]`, `x[..., -1]`, `E[tokens]`
    Index {
        base: Box<Expr>,
        indices: Vec<IndexItem>,
    },
    /// `x.shape`, `fc1.W`
    Field {
        base: Box<Expr>,
        field: Ident,
    },
    /// `grad(f, wrt: x)`: the gradient of the scalar `f` with respect to `x`, as a value.
    Grad {
        of: Box<Expr>,
        wrt: Box<Expr>,
    },
    /// `if cond { ... } else { ... }`: the condition is known at compile time (`training`,
    /// a layer's boolean argument); each branch is a block whose last expression is its value.
    If {
        cond: Box<Expr>,
        then: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
    },
}

/// One item between the brackets of `x[...]`.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    /// `i` (a whole number) or a tensor of indices.
    At(Expr),
    /// `start:stop` or `start:stop:step`, each part optional (`:` is the whole axis).
    Slice { start: Option<Expr>, stop: Option<Expr>, step: Option<Expr>, span: Span },
    /// `...`: as many `:` as the other items leave axes.
    Ellipsis(Span),
}

impl IndexItem {
    pub fn span(&self) -> Span {
        match self {
            IndexItem::At(e) => e.span,
            IndexItem::Slice { span, .. } | IndexItem::Ellipsis(span) => *span,
        }
    }

    /// The expressions written in the item: an index, or a slice's bounds.
    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            IndexItem::At(e) => vec![e],
            IndexItem::Slice { start, stop, step, .. } => [start, stop, step].into_iter().flatten().collect(),
            IndexItem::Ellipsis(_) => vec![],
        }
    }

    fn exprs_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            IndexItem::At(e) => vec![e],
            IndexItem::Slice { start, stop, step, .. } => [start, stop, step].into_iter().flatten().collect(),
            IndexItem::Ellipsis(_) => vec![],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    /// Comparisons: 0/1 masks of tensors, true/false of compile-time numbers.
    Greater,
    Less,
    GreaterEq,
    LessEq,
    Equal,
    NotEqual,
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
            BinOp::Greater => ">",
            BinOp::Less => "<",
            BinOp::GreaterEq => ">=",
            BinOp::LessEq => "<=",
            BinOp::Equal => "==",
            BinOp::NotEqual => "!=",
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

    /// The same expression covering `span` (a parenthesised expression).
    pub fn with_span(mut self, span: Span) -> Expr {
        self.span = span;
        self
    }

    /// `lhs |> rhs`: a call gets `lhs` as its first argument; a bare function is called on it.
    pub fn pipe(lhs: Expr, mut rhs: Expr, span: Span) -> Expr {
        match std::mem::replace(&mut rhs.kind, ExprKind::Int(0)) {
            ExprKind::Call { callee, mut args } => {
                args.insert(0, Arg { name: None, value: lhs });
                Expr::new(ExprKind::Call { callee, args }, span)
            }
            kind => {
                rhs.kind = kind;
                Expr::new(ExprKind::Call { callee: Box::new(rhs), args: vec![Arg { name: None, value: lhs }] }, span)
            }
        }
    }

    /// No subexpressions.
    fn is_leaf(&self) -> bool {
        matches!(self.kind, ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Name(_))
    }

    /// The direct subexpressions, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Name(_) => vec![],
            ExprKind::List(items) => items.iter().collect(),
            ExprKind::Neg(a) | ExprKind::Field { base: a, .. } => vec![a],
            ExprKind::Binary(_, a, b) => vec![a, b],
            ExprKind::Call { callee, args } => {
                std::iter::once(&**callee).chain(args.iter().map(|a| &a.value)).collect()
            }
            ExprKind::Index { base, indices } => {
                std::iter::once(&**base).chain(indices.iter().flat_map(IndexItem::exprs)).collect()
            }
            ExprKind::If { cond, then, otherwise } => {
                let mut out = vec![&**cond];
                stmt_exprs(then, &mut out);
                stmt_exprs(otherwise.iter().flatten(), &mut out);
                out
            }
            ExprKind::Grad { of, wrt } => vec![of, wrt],
        }
    }

    /// How deeply the expression nests (a leaf is 1): found with an explicit stack, since
    /// the expression may be too deep for a recursive walk. Returns the depth and the span
    /// of a deepest leaf.
    pub fn depth(&self) -> (usize, Span) {
        let mut deepest = (1, self.span);
        let mut stack = vec![(self, 1)];
        while let Some((e, d)) = stack.pop() {
            if d > deepest.0 {
                deepest = (d, e.span);
            }
            stack.extend(e.children().into_iter().map(|c| (c, d + 1)));
        }
        deepest
    }

    /// Move the non-leaf children of `self` onto `out`, leaving leaves in their place.
    fn detach_children(&mut self, out: &mut Vec<Expr>) {
        let leaf = || Expr::new(ExprKind::Int(0), Span::default());
        let mut take = |e: &mut Expr| {
            if !e.is_leaf() {
                out.push(std::mem::replace(e, leaf()));
            }
        };
        match &mut self.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Name(_) => {}
            ExprKind::List(items) => items.iter_mut().for_each(take),
            ExprKind::Neg(a) | ExprKind::Field { base: a, .. } => take(a),
            ExprKind::Binary(_, a, b) => {
                take(a);
                take(b);
            }
            ExprKind::Call { callee, args } => {
                take(callee);
                args.iter_mut().for_each(|a| take(&mut a.value));
            }
            ExprKind::Index { base, indices } => {
                take(base);
                indices.iter_mut().flat_map(IndexItem::exprs_mut).for_each(take);
            }
            ExprKind::If { cond, then, otherwise } => {
                take(cond);
                let mut exprs = vec![];
                stmt_exprs_mut(then.iter_mut().chain(otherwise.iter_mut().flatten()), &mut exprs);
                exprs.into_iter().for_each(take);
            }
            ExprKind::Grad { of, wrt } => {
                take(of);
                take(wrt);
            }
        }
    }
}

/// `stmt_exprs` for taking the expressions apart.
fn stmt_exprs_mut<'a>(body: impl IntoIterator<Item = &'a mut Stmt>, out: &mut Vec<&'a mut Expr>) {
    for s in body {
        match s {
            Stmt::Let { value: e, .. }
            | Stmt::LetList { value: e, .. }
            | Stmt::Update { value: e, .. }
            | Stmt::Return(e)
            | Stmt::Expr(e)
            | Stmt::Setting { value: e, .. }
            | Stmt::Grad { of: e, .. } => out.push(e),
            Stmt::Param { init, .. } | Stmt::State { init, .. } => out.extend(init.iter_mut()),
            Stmt::For(l) => {
                out.push(&mut l.range);
                stmt_exprs_mut(&mut l.body, out);
            }
            Stmt::Yield { value, options, .. } => {
                out.push(value);
                out.extend(options.iter_mut().map(|a| &mut a.value));
            }
            Stmt::Error => {}
        }
    }
}

/// The expressions written directly in the statements `body` (not inside other expressions),
/// in source order, appended to `out`.
fn stmt_exprs<'a>(body: impl IntoIterator<Item = &'a Stmt>, out: &mut Vec<&'a Expr>) {
    for s in body {
        match s {
            Stmt::Let { value: e, .. }
            | Stmt::LetList { value: e, .. }
            | Stmt::Update { value: e, .. }
            | Stmt::Return(e)
            | Stmt::Expr(e)
            | Stmt::Setting { value: e, .. }
            | Stmt::Grad { of: e, .. } => out.push(e),
            Stmt::Param { init, .. } | Stmt::State { init, .. } => out.extend(init.iter()),
            Stmt::For(l) => {
                out.push(&l.range);
                stmt_exprs(&l.body, out);
            }
            Stmt::Yield { value, options, .. } => {
                out.push(value);
                out.extend(options.iter().map(|a| &a.value));
            }
            Stmt::Error => {}
        }
    }
}

/// Dropping an expression takes it apart with an explicit stack: the default, recursive drop
/// would overflow the thread's stack on a chain of a hundred thousand `+` (the parser builds
/// such trees before their depth is checked).
impl Drop for Expr {
    fn drop(&mut self) {
        if self.is_leaf() {
            return;
        }
        let mut stack = vec![];
        self.detach_children(&mut stack);
        while let Some(mut e) = stack.pop() {
            e.detach_children(&mut stack);
            // `e` now has only leaves below it: its own drop does not go deeper.
        }
    }
}

/// Every expression written in `file`, in source order (the roots of the expression trees).
pub fn root_exprs(file: &SourceFile) -> Vec<&Expr> {
    let stmts = stmt_exprs;
    let mut out = vec![];
    for item in &file.items {
        match item {
            Item::Fn(f) | Item::Layer(f) => {
                out.extend(f.params.iter().filter_map(|p| p.default.as_ref()));
                stmts(&f.body, &mut out);
            }
            Item::Model(m) => stmts(&m.body, &mut out),
            Item::Data(s) | Item::Train(s) => stmts(&s.body, &mut out),
            Item::Eval(e) => stmts(&e.body, &mut out),
            Item::Error => {}
        }
    }
    out
}

/// The free names of an expression: the names it reads from the scope around it (a train
/// block's loss reads the model's outputs and the data's fields).
pub fn names_in(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Name(n) => out.push(n.clone()),
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) => {}
        ExprKind::List(items) => items.iter().for_each(|i| names_in(i, out)),
        ExprKind::Neg(x) => names_in(x, out),
        ExprKind::Binary(_, a, b) => {
            names_in(a, out);
            names_in(b, out);
        }
        ExprKind::Call { callee, args } => {
            names_in(callee, out);
            args.iter().for_each(|a| names_in(&a.value, out));
        }
        ExprKind::Index { base, indices } => {
            names_in(base, out);
            for item in indices {
                match item {
                    IndexItem::At(e) => names_in(e, out),
                    IndexItem::Slice { start, stop, step, .. } => {
                        [start, stop, step].into_iter().flatten().for_each(|e| names_in(e, out))
                    }
                    IndexItem::Ellipsis(_) => {}
                }
            }
        }
        ExprKind::Field { base, .. } => names_in(base, out),
        ExprKind::Grad { of, wrt } => {
            names_in(of, out);
            names_in(wrt, out);
        }
        ExprKind::If { cond, then, otherwise } => {
            names_in(cond, out);
            names_in_stmts(then.iter().chain(otherwise.iter().flatten()), out);
        }
    }
}

/// The free names of the expressions written in statements (a branch's, a loop body's).
fn names_in_stmts<'a>(stmts: impl IntoIterator<Item = &'a Stmt>, out: &mut Vec<String>) {
    for stmt in stmts {
        match stmt {
            Stmt::Let { value: e, .. }
            | Stmt::LetList { value: e, .. }
            | Stmt::Update { value: e, .. }
            | Stmt::Setting { value: e, .. } => names_in(e, out),
            Stmt::Grad { of: e, .. } | Stmt::Return(e) | Stmt::Expr(e) => names_in(e, out),
            Stmt::For(l) => {
                names_in(&l.range, out);
                out.extend(l.carries.iter().map(|c| c.name.clone()));
                names_in_stmts(&l.body, out);
            }
            Stmt::Yield { value, options, .. } => {
                names_in(value, out);
                options.iter().for_each(|a| names_in(&a.value, out));
            }
            Stmt::Param { .. } | Stmt::State { .. } | Stmt::Error => {}
        }
    }
}
