//! Loops in the IR: `LoopSpec`, the body graph and shape of one `Op::Loop`, and `Slicing`, how
//! its per-step inputs are cut from and its per-step outputs stacked into outer tensors.

use std::fmt;

use super::{Graph, NodeId};

/// How a per-step input is cut from its outer tensor, or a per-step output placed in the
/// stacked result of a loop.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Slicing {
    /// The outer axis the steps walk along.
    pub axis: usize,
    /// `None`: one element per step, the axis removed from the step's shape (`x[t]`).
    /// `Some(k)`: `k` consecutive elements `t·k .. t·k + k` per step, the axis kept (the
    /// chunks of a checkpointed loop).
    pub chunk: Option<usize>,
}

impl Slicing {
    pub fn along(axis: usize) -> Slicing {
        Slicing { axis, chunk: None }
    }

    /// Elements of the outer axis one step covers.
    pub fn width(self) -> usize {
        self.chunk.unwrap_or(1)
    }
}

/// A loop over a static number of steps with loop-carried values (JAX's `lax.scan`, Futhark's
/// `loop`): the body is an ordinary graph, checked once and compiled once. Its inputs are, in
/// order:
///
/// - `carries` carried values: the first step gets the loop's initial values, every later one
///   what the step before returned;
/// - one per-step input per `sliced` entry: the step's slice of an outer tensor (`x[t]`);
/// - the loop invariants: outer tensors that every step reads whole (weights).
///
/// Its outputs are the new carries (of the carries' shapes), then one per-step output per
/// `stacked` entry, stacked along an axis of the loop's result. Step `s` has the index
/// `t = s`, or `t = count − 1 − s` when `reverse`; the slices it reads and the place its
/// outputs go are those of index `t`, so a reversed loop's stack is in index order too.
///
/// The body shares the outer graph's symbols (the same `SymId`s: a body shape `[B, 64]` means
/// the outer batch) and computes in the outer graph's dtype (`body.dtype` is not read). It has
/// no `params`: everything it reads from outside comes in as an input. The shape rule is
/// `ops::loop_shape`, the meaning `interp`, the gradient `autodiff::loops`.
#[derive(Clone)]
pub struct LoopSpec {
    pub body: Graph,
    /// Number of steps, at least 1.
    pub count: usize,
    pub reverse: bool,
    /// The first `carries` body inputs and outputs are carried.
    pub carries: usize,
    /// Per-step inputs, after the carries.
    pub sliced: Vec<Slicing>,
    /// Per-step outputs, after the new carries.
    pub stacked: Vec<Slicing>,
}

/// Specs compare by identity: the siblings of one loop share one `Rc` (two loops with equal
/// bodies are still two loops).
impl PartialEq for LoopSpec {
    fn eq(&self, other: &LoopSpec) -> bool {
        std::ptr::eq(self, other)
    }
}

/// Identity too: `opt::cse` keys nodes by their debug text, which must not print the body.
impl fmt::Debug for LoopSpec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "LoopSpec@{:p}", self as *const LoopSpec)
    }
}

impl LoopSpec {
    /// A spec whose parts fit together (its shapes are checked against the operands by
    /// `ops::loop_shape`).
    pub fn new(
        body: Graph,
        count: usize,
        reverse: bool,
        carries: usize,
        sliced: Vec<Slicing>,
        stacked: Vec<Slicing>,
    ) -> Result<LoopSpec, String> {
        if count == 0 {
            return Err("a loop needs at least one step".into());
        }
        if carries + sliced.len() > body.inputs.len() {
            return Err(format!(
                "the loop body has {} inputs, fewer than its {carries} carries and {} per-step inputs",
                body.inputs.len(),
                sliced.len()
            ));
        }
        if body.outputs.len() != carries + stacked.len() {
            return Err(format!(
                "the loop body has {} outputs, not its {carries} carries and {} per-step outputs",
                body.outputs.len(),
                stacked.len()
            ));
        }
        if !body.params.is_empty() {
            return Err("a loop body reads parameters as inputs; it has none of its own".into());
        }
        Ok(LoopSpec { body, count, reverse, carries, sliced, stacked })
    }

    /// Number of loop-invariant body inputs (after the carries and the per-step inputs).
    pub fn invariants(&self) -> usize {
        self.body.inputs.len() - self.carries - self.sliced.len()
    }

    /// Number of results: final carries, then stacked outputs.
    pub fn outputs(&self) -> usize {
        self.body.outputs.len()
    }

    /// The index `t` of step `s`.
    pub fn index(&self, step: usize) -> usize {
        if self.reverse {
            self.count - 1 - step
        } else {
            step
        }
    }

    /// The body node of output `k`.
    pub fn output_node(&self, k: usize) -> NodeId {
        self.body.outputs[k].1
    }

    /// `7 steps reversed, 2 carries, 1 sliced, 3 invariant, 1 stacked`.
    pub fn summary(&self) -> String {
        format!(
            "{} steps{}, {} carries, {} sliced, {} invariant, {} stacked",
            self.count,
            if self.reverse { " reversed" } else { "" },
            self.carries,
            self.sliced.len(),
            self.invariants(),
            self.stacked.len()
        )
    }
}
