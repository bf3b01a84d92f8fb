//! The REPL's cache of `let` values (see the module comment of `repl`): which values may be
//! written back as literals, and how.
//!
//! A value is cached only when the literal cannot change what any later line computes:
//! - it is exact: eval blocks compute in f64, and the literal is the shortest text that reads
//!   back as the same f64 (Rust's `{:?}`, which round-trips), so `x - cached_x` is 0;
//! - it is a function of the session's literals alone: a value that depends on a parameter
//!   (`let h = dense(x, 2)`) or a random stream is drawn afresh by each program, in an order
//!   that depends on what else the program holds, so freezing one draw would make a later
//!   line disagree with `:grad` or with a line that computes it again.

use crate::ir::graph::{Graph, NodeId, Op};
use crate::ir::tensor::Tensor;

/// How many lets of unknown value a line may need before their values are computed and
/// cached: each line then checks at most this many lets' expressions (besides lets that
/// cannot be cached).
pub const CACHE_AFTER: usize = 32;

/// The largest value written back as a literal; a larger one stays an expression.
pub const MAX_CACHED_ELEMENTS: usize = 4096;

/// `t` as a literal of the language (`2.5`, `[1.0, -2.0]`, `[[...], [...]]`), exactly: each
/// element the shortest text that reads back as the same f64. None for a value no literal can
/// write (a non-finite element, an empty axis) or one larger than `MAX_CACHED_ELEMENTS`.
pub fn literal(t: &Tensor) -> Option<String> {
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
    let mut out = String::new();
    go(&mut out, &t.data, &t.shape);
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
