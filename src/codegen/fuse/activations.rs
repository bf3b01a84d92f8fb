//! Activations as kernel expressions, one per op that `fuse` folds into an elementwise kernel.
//! NaN in gives NaN out, as in the interpreter.

use std::rc::Rc;

use crate::codegen::kernel::{Bin, Expr, Un};

fn constant(v: f64) -> Rc<Expr> {
    Rc::new(Expr::Const(v))
}

fn bin(op: Bin, a: Rc<Expr>, b: Rc<Expr>) -> Rc<Expr> {
    Rc::new(Expr::Binary(op, a, b))
}

/// relu x = max(0, x) (`Bin::Max` keeps a NaN in its second operand).
pub fn relu_expr(x: Rc<Expr>) -> Rc<Expr> {
    bin(Bin::Max, constant(0.0), x)
}

/// leaky_relu x = max(x, αx) for α <= 1, min(x, αx) for α > 1: x above 0, αx below.
pub fn leaky_relu_expr(x: Rc<Expr>, alpha: f64) -> Rc<Expr> {
    let ax = bin(Bin::Mul, constant(alpha), x.clone());
    bin(if alpha <= 1.0 { Bin::Max } else { Bin::Min }, x, ax)
}

/// elu x = max(0, x) + α·expm1(min(x, 0)): x + 0 above 0, 0 + α(e^x − 1) below, with
/// expm1 keeping full accuracy near 0.
pub fn elu_expr(x: Rc<Expr>, alpha: f64) -> Rc<Expr> {
    let below = bin(Bin::Min, x.clone(), constant(0.0));
    let e = Rc::new(Expr::Unary(Un::Expm1, below));
    bin(Bin::Add, relu_expr(x), bin(Bin::Mul, constant(alpha), e))
}

/// softplus x = max(0, x) + log1p(e^−|x|), which neither overflows nor rounds e^x away.
pub fn softplus_expr(x: Rc<Expr>) -> Rc<Expr> {
    let minus_abs = Rc::new(Expr::Unary(Un::Neg, Rc::new(Expr::Unary(Un::Abs, x.clone()))));
    let e = Rc::new(Expr::Unary(Un::ExpNonpositive, minus_abs));
    bin(Bin::Add, relu_expr(x), Rc::new(Expr::Unary(Un::Log1p, e)))
}

/// clip x = min(hi, max(lo, x)): `Bin::Max` and `Bin::Min` keep a NaN in their second operand,
/// and lo > hi gives hi, as torch.clamp. An infinite bound is left out.
pub fn clip_expr(x: Rc<Expr>, lo: f64, hi: f64) -> Rc<Expr> {
    let above = if lo == f64::NEG_INFINITY { x } else { bin(Bin::Max, constant(lo), x) };
    if hi == f64::INFINITY {
        above
    } else {
        bin(Bin::Min, constant(hi), above)
    }
}
