//! The REPL's cache of `let` values (see the module comment of `repl`): which values may be
//! written back as literals, and how.
//!
//! A value is cached only when the literal cannot change what any later line computes:
//! - it is exact: eval blocks compute in f64, and the literal is the shortest text that reads
//!   back as the same f64 (Rust's `{:?}`, which round-trips), so `x - cached_x` is 0;
//! - it is a function of the session's literals alone: a value that depends on a parameter
//!   (`let h = dense(x, 2)`) or a random stream is drawn afresh by each program, in an order
//!   that depends on what else the program holds, so freezing one draw would make a later
//!   line disagree with `:grad` or with a line that computes it again;
//! - it keeps its type: a literal of whole numbers is an integer tensor (it may index), a
//!   literal with a fraction a float one. The checker says which the let's value is
//!   (`EvalDecl::integer_shows`): an integer value is written as its literal (`let n = 7.0`,
//!   a counter `let n = n + 1` is cut like any chain), a float value that happens to be whole
//!   (`[1.5] * 2`) as its literal divided by 1 (`let w = [3.0] / 1`), exact and a float, as
//!   a division is (`check::is_integer`).

use crate::ir::graph::{Graph, NodeId, Op};
use crate::ir::tensor::Tensor;

/// How many lets of unknown value a line may need before their values are computed and
/// cached: each line then checks at most this many lets' expressions (besides lets that
/// cannot be cached).
pub const CACHE_AFTER: usize = 32;

/// The largest value written back as a literal; a larger one stays an expression.
pub const MAX_CACHED_ELEMENTS: usize = 4096;

/// `t` as an expression of the language that computes it exactly and has its type: `integer`
/// (the checker took the value for integers) gives its literal (`2.0`, `[1.0, -2.0]`,
/// `[[...], [...]]`), each element the shortest text that reads back as the same f64; a float
/// value gives its literal too if an element has a fraction, else the literal divided by 1
/// (see the module comment). None for a value no literal can write (a non-finite element, an
/// empty axis) or one larger than `MAX_CACHED_ELEMENTS`.
pub fn literal(t: &Tensor, integer: bool) -> Option<String> {
    fn go(out: &mut String, data: &[f64], shape: &[usize]) {
        match shape.split_first() {
            None => out.push_str(&format!("{:?}", data[0])),
            Some((&n, rest)) => {
                let step = data.len() / n;
                out.push('[');
                for (i, chunk) in data.chunks(step).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    go(out, chunk, rest);
                }
                out.push(']');
            }
        }
    }
    let exact = t.data.len() == t.shape.iter().product::<usize>() && t.data.iter().all(|x| x.is_finite());
    if t.shape.contains(&0) || !exact || t.data.len() > MAX_CACHED_ELEMENTS {
        return None;
    }
    let whole = t.data.iter().all(|x| x.fract() == 0.0);
    let mut out = String::new();
    if integer || !whole {
        go(&mut out, &t.data, &t.shape);
    } else if t.shape.is_empty() {
        // A number divided by a number is a number again (whole, so an integer): a scalar
        // float is the sum of a one-element tensor, divided by 1.
        out.push_str(&format!("sum([{:?}]) / 1", t.data[0]));
    } else {
        go(&mut out, &t.data, &t.shape);
        out.push_str(" / 1");
    }
    Some(out)
}

/// Per node of `g`: does its value depend on something drawn when the program runs (a
/// parameter's initial value, a random stream)? Nodes come after their operands.
pub fn drawn_at_run_time(g: &Graph) -> Vec<bool> {
    let mut drawn = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        let own = matches!(node.op, Op::Param { .. } | Op::RandomUniform { .. });
        drawn[i] = own || node.inputs.iter().any(|x: &NodeId| drawn[x.index()]);
    }
    drawn
}
