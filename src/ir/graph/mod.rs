//! The IR: a computational graph of tensor ops in SSA form (input: nodes added by `lower` and
//! `autodiff`; output: the DAG that `opt`, `interp` and `codegen` consume), plus its text form.
//!
//! Every node has a static shape whose dimensions are numbers or named symbols (the batch `B`)
//! bound at run time. Nodes are appended in topological order: a node's inputs always have
//! smaller ids, so a forward walk over `nodes` is a valid evaluation order.

use std::fmt;
use std::sync::Arc;

use crate::diag::Span;

mod loops;
pub use loops::{LoopSpec, Slicing};

/// Index of a node in `Graph::nodes`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// Index of a symbolic dimension in `Graph::symbols` (e.g. the batch `B`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SymId(pub u32);

/// One dimension of a shape: known at compile time, or a symbol bound at run time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Dim {
    Known(usize),
    Sym(SymId),
}

impl Dim {
    pub fn known(self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(n),
            Dim::Sym(_) => None,
        }
    }
}

/// A static shape; `[]` is a scalar.
pub type Shape = Vec<Dim>;

/// Element type of every tensor in a graph.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum DType {
    #[default]
    F32,
    F64,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// Every tensor operation of the IR. `ops.rs` gives each variant its shape rule, its meaning
/// (evaluation) and its vector-Jacobian product, side by side.
///
/// Binary elementwise ops broadcast their operands numpy-style. Integer data (labels, class
/// indices) is carried as whole numbers in float tensors.
#[derive(Clone, PartialEq, Debug)]
pub enum Op {
    // ---- leaves ----
    /// `Graph::inputs[index]`: data, labels, an eval variable, or an upstream gradient.
    Input {
        index: usize,
    },
    /// `Graph::params[index]`: a trainable parameter.
    Param {
        index: usize,
    },
    /// A scalar constant (shape `[]`).
    Const {
        value: f64,
    },
    /// A literal tensor, row-major, with the node's (fully known) shape.
    Literal {
        values: Arc<[f64]>,
    },
    /// The run-time value of a dimension as a scalar (e.g. `B` in a mean over the batch).
    DimSize {
        dim: Dim,
    },

    // ---- elementwise, one operand ----
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    /// -1, 0 or 1.
    Sign,
    Tanh,
    Sigmoid,
    /// max(0, x) with relu'(0) = 0 (PyTorch's convention; a kink at 0).
    Relu,
    /// x if x > 0 else alpha·x; the slope at 0 is alpha (PyTorch; a kink at 0 unless alpha = 1).
    LeakyRelu {
        alpha: f64,
    },
    /// x if x > 0 else alpha·(e^x − 1); the slope at 0 is alpha (PyTorch), so elu is smooth
    /// there exactly when alpha = 1.
    Elu {
        alpha: f64,
    },
    /// ln(1 + e^x) = max(x, 0) + ln(1 + e^−|x|): smooth everywhere, softplus' = sigmoid.
    Softplus,
    /// The error function erf x = (2/√π)∫₀ˣ e^(−t²) dt (gelu's Φ(x) = ½(1 + erf(x/√2))).
    Erf,
    /// min(max(x, lo), hi) as `torch.clamp` (hi wins when lo > hi; NaN stays NaN); a missing
    /// bound is ∓∞. The slope is 1 strictly between the bounds, 0 at them and outside
    /// (torch.clamp's rule with number bounds).
    Clip {
        lo: f64,
        hi: f64,
    },

    // ---- elementwise, two operands, numpy broadcasting ----
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// At a tie each operand gets half the gradient (PyTorch's `maximum`), so max(a, b) and
    /// max(b, a) agree.
    Max,
    /// At a tie each operand gets half the gradient, as for `Max`.
    Min,
    /// 1.0 where a >= b, else 0.0 (no gradient): the switch of the max and min gates.
    GreaterEq,
    /// 1.0 where a > b, else 0.0 (no gradient; `a < b` is `b > a`).
    Greater,
    /// 1.0 where a == b, else 0.0 (no gradient; `a != b` is `1 − (a == b)`).
    Equal,

    // ---- elementwise, three operands, numpy broadcasting ----
    /// (cond, a, b) -> a where cond ≠ 0 (NaN counts as ≠ 0), else b: numpy/torch `where` on a
    /// 0/1 mask. The gradient goes to the operand chosen (the switch gate); none to cond.
    Where,

    // ---- layout ----
    /// Broadcast to `shape` by numpy rules (prepend unit axes, stretch size-1 axes).
    Broadcast {
        shape: Shape,
    },
    /// Same elements in row-major order, new shape.
    Reshape {
        shape: Shape,
    },
    /// Output axis i is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// `len` elements along `axis`, `step` apart from `start`: y[i] = x[start + i·step]
    /// (`step` >= 1; a view, no copy).
    Slice {
        axis: usize,
        start: usize,
        len: usize,
        step: usize,
    },
    /// Zeros along `axis` with the operand's elements `step` apart: `before` zeros, x[0],
    /// `step - 1` zeros, x[1], ..., x[n-1], `after` zeros (XLA's edge and interior padding).
    /// The adjoint of `Slice`.
    Pad {
        axis: usize,
        before: usize,
        after: usize,
        step: usize,
    },
    /// The elements along `axis` in reverse order: y[i] = x[n - 1 - i] (a view).
    Reverse {
        axis: usize,
    },
    /// The operands joined along `axis` (equal on every other axis).
    Concat {
        axis: usize,
    },
    /// numpy `take`: (x, idx) -> y with y[a.., j.., b..] = x[a.., idx[j..], b..] along `axis`;
    /// shape x.shape[..axis] ++ idx.shape ++ x.shape[axis+1..]. `idx` holds whole numbers in
    /// 0..x.shape[axis] (no gradient flows to it).
    Gather {
        axis: usize,
    },
    /// The adjoint of `Gather`: (g, idx) -> zeros with x.shape[axis] = `size`, and
    /// g[a.., j.., b..] added at [a.., idx[j..], b..], in the order of j (repeated indices
    /// sum, in the same order on any thread count).
    ScatterAdd {
        axis: usize,
        size: usize,
    },

    // ---- reductions (the reduced axes are removed) ----
    Sum {
        axes: Vec<usize>,
    },
    /// Maximum over `axes`; the gradient is split evenly among tied maxima (PyTorch's `amax`).
    ReduceMax {
        axes: Vec<usize>,
    },
    /// 1.0 at the first maximum along `axis`, 0.0 elsewhere; same shape as its input.
    ArgMaxMask {
        axis: usize,
    },
    /// Class indices `[..]` to one-hot rows `[.., classes]` (no gradient).
    OneHot {
        classes: usize,
    },

    // ---- linear algebra and neural-network kernels ----
    /// Batched matrix product op(a) @ op(b), numpy `matmul` generalised to groups of axes.
    /// Each operand is `batch` axes, then two groups: a is [batch.., rows.., inner..] (with
    /// `transpose_a`: [batch.., inner.., rows..]), b is [batch.., inner.., cols..] (with
    /// `transpose_b`: [batch.., cols.., inner..]); `inner` has `contract` axes, summed over,
    /// equal in both; rows and cols take the remaining axes (any number, none for a vector).
    /// The batch axes broadcast (equal or 1). The result is [batch.., rows.., cols..]: per
    /// batch element one GEMM whose m, k, n are the products of the groups' sizes. The plain
    /// 2-D product is `batch: 0, contract: 1`.
    MatMul {
        transpose_a: bool,
        transpose_b: bool,
        batch: usize,
        contract: usize,
    },
    /// log(softmax(x)) along `axis`, computed stably.
    LogSoftmax {
        axis: usize,
    },
    /// x [N, C, H, W] * w [F, C, KH, KW] -> [N, F, OH, OW], zero padding `pad` on each side.
    Conv2d {
        stride: usize,
        pad: usize,
    },
    /// Gradient of `Conv2d` wrt its input: (g [N,F,OH,OW], w [F,C,KH,KW]) -> [N, C, height, width].
    Conv2dInputGrad {
        stride: usize,
        pad: usize,
        height: usize,
        width: usize,
    },
    /// Gradient of `Conv2d` wrt its filters: (x [N,C,H,W], g [N,F,OH,OW]) -> [F, C, kernel_h, kernel_w].
    Conv2dFilterGrad {
        stride: usize,
        pad: usize,
        kernel_h: usize,
        kernel_w: usize,
    },
    /// Max over `size`×`size` windows of [N, C, H, W], no padding.
    MaxPool2d {
        size: usize,
        stride: usize,
    },
    /// Gradient of `MaxPool2d`: (x, g) -> g routed to the first maximum of each window.
    MaxPool2dGrad {
        size: usize,
        stride: usize,
    },
    /// Mean over `size`×`size` windows of [N, C, H, W], no padding.
    AvgPool2d {
        size: usize,
        stride: usize,
    },
    /// Gradient of `AvgPool2d`: g spread evenly over each window -> [N, C, height, width].
    AvgPool2dGrad {
        size: usize,
        stride: usize,
        height: usize,
        width: usize,
    },

    // ---- randomness ----
    /// Uniform numbers in [0, 1) of `shape`, from the counter-based generator of
    /// `ops::random` (Threefry-2x32): element i is a function of the key operand (the run's
    /// seed and step, an input of kind `RandomKey`), of `stream` and of i only, so the same
    /// key gives the same bits in every engine and on any number of threads. Distinct
    /// random nodes of a graph have distinct streams. No gradient.
    RandomUniform {
        stream: u32,
        shape: Shape,
    },

    // ---- control ----
    /// Result `output` of a loop over a static number of steps (see `LoopSpec`): its
    /// operands are the body's inputs (initial carries, tensors sliced per step, loop
    /// invariants); results `0..carries` are the final carries, the rest the stacked per-step
    /// outputs. A loop with several results is several nodes, one per result used, with the
    /// same `Arc` and the same operands ("siblings"); they compute together (`Arc` equality
    /// is by pointer).
    Loop {
        spec: Arc<LoopSpec>,
        output: usize,
    },
}

impl Op {
    /// The 2-D product op(a) @ op(b): `MatMul` with no batch axes and one contracted axis.
    pub fn matmul(transpose_a: bool, transpose_b: bool) -> Op {
        Op::MatMul { transpose_a, transpose_b, batch: 0, contract: 1 }
    }

    /// Whether the op computes each element from the same element of its operands (a map).
    pub fn is_elementwise(&self) -> bool {
        use Op::*;
        matches!(
            self,
            Neg | Exp
                | Log
                | Sqrt
                | Abs
                | Sign
                | Tanh
                | Sigmoid
                | Relu
                | LeakyRelu { .. }
                | Elu { .. }
                | Softplus
                | Erf
                | Clip { .. }
                | Add
                | Sub
                | Mul
                | Div
                | Pow
                | Max
                | Min
                | GreaterEq
                | Greater
                | Equal
                | Where
        )
    }
}

/// What an input leaf stands for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InputKind {
    /// A model input (a batch of data).
    Data,
    /// Class labels or regression targets.
    Label,
    /// A named value of an eval block.
    Variable,
    /// The upstream gradient fed to a backward function.
    Gradient,
    /// The key of the random streams (`ops::random::key`): the seed and the step counter of
    /// a training run, as `RANDOM_KEY_LEN` 16-bit pieces (exact in f32 and f64).
    RandomKey,
}

#[derive(Clone, Debug)]
pub struct InputInfo {
    pub name: String,
    pub shape: Shape,
    pub kind: InputKind,
    /// Declared integer (`tokens: [B, T] int`): its values are whole numbers, carried in the
    /// graph's float type (exact below 2^24 in f32). Nothing is differentiated with respect
    /// to it, and it may index (`E[tokens]`).
    pub integer: bool,
}

/// How an input's values are used as indices (`Graph::index_use`): each is the smallest
/// such size, `None` when no op of that kind reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexUse {
    /// Class labels of a `OneHot` of this many classes (`cross_entropy`, `one_hot`).
    pub classes: Option<usize>,
    /// Row ids of a `Gather` or `ScatterAdd` along an axis of this size (`E[tokens]`).
    pub rows: Option<usize>,
}

impl IndexUse {
    /// The values must lie in 0..this (the tighter of the two), if anything reads them as indices.
    pub fn bound(&self) -> Option<usize> {
        match (self.classes, self.rows) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// How a parameter's initial values are drawn (from the seeded PRNG of `runtime`).
#[derive(Clone, PartialEq, Debug)]
pub enum Init {
    Zeros,
    /// Constant fill.
    Constant(f64),
    /// Gaussian with mean 0.
    Normal {
        std: f64,
    },
    /// Uniform in [low, high).
    Uniform {
        low: f64,
        high: f64,
    },
    /// Glorot: uniform with limit sqrt(6 / (fan_in + fan_out)).
    Xavier,
    /// Kaiming: Gaussian with std sqrt(2 / fan_in).
    He,
}

/// What a parameter is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParamKind {
    /// Trained: the train step differentiates the loss with respect to it and the optimizer
    /// updates it.
    Trainable,
    /// State (`state` in the language, e.g. batch norm's running statistics; also an
    /// optimizer's velocities and moments): never differentiated, changed only by the
    /// updates (`Graph::updates`) that a program gives it.
    State,
}

#[derive(Clone, Debug)]
pub struct ParamInfo {
    /// Qualified name, e.g. `fc1.W`; the tensor name in saved weights.
    pub name: String,
    pub shape: Shape,
    pub init: Init,
    pub kind: ParamKind,
    /// Weight or bias: what `l2()` and weight decay regularise (weights only).
    pub role: ParamRole,
}

/// What a parameter does in its model, whatever its rank: a bias is only ever added (`x @ W +
/// b`, and conv2d's `[F, 1, 1]` bias of `conv(x, W) + b`); everything else is a weight.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ParamRole {
    #[default]
    Weight,
    Bias,
}

impl Graph {
    /// The roles of the parameters `params` from their uses so far: `Bias` for one that is
    /// used and every use of which (through reshapes, broadcasts and transposes of it, and
    /// inside loop bodies it enters as a loop-invariant operand) is a term of a sum or a
    /// difference; otherwise `Weight`. One pass over the graph for all of them (a model of
    /// 10,000 layers has 20,000 parameters: a pass per parameter was quadratic).
    pub fn infer_roles(&self, params: std::ops::Range<usize>) -> Vec<ParamRole> {
        let leaf = |op: &Op| match op {
            Op::Param { index } if params.contains(index) => Some(index - params.start),
            _ => None,
        };
        self.addend_only(&leaf, params.len())
            .into_iter()
            .map(|only| if only == Some(true) { ParamRole::Bias } else { ParamRole::Weight })
            .collect()
    }

    /// For each of `leaves` leaves (`leaf_of` numbers them), whether it is only ever a term of
    /// a sum or a difference (through views of it); `None` if nothing reads it.
    fn addend_only(&self, leaf_of: &dyn Fn(&Op) -> Option<usize>, leaves: usize) -> Vec<Option<bool>> {
        // Per node: the leaf it is, or a view of.
        let mut view: Vec<Option<usize>> = vec![None; self.nodes.len()];
        // Per leaf: None (unread), Some(true) (read only as an addend so far), Some(false).
        let mut only: Vec<Option<bool>> = vec![None; leaves];
        let read = |only: &mut Vec<Option<bool>>, leaf: usize, as_addend: bool| {
            only[leaf] = Some(only[leaf].unwrap_or(true) && as_addend);
        };
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(leaf) = leaf_of(&node.op) {
                view[i] = Some(leaf);
                continue;
            }
            let viewed = |k: usize| view[node.inputs[k].index()];
            match &node.op {
                Op::Reshape { .. } | Op::Broadcast { .. } | Op::Transpose { .. } if node.inputs.len() == 1 => {
                    view[i] = viewed(0);
                }
                Op::Add | Op::Sub => {
                    for k in 0..node.inputs.len() {
                        if let Some(leaf) = viewed(k) {
                            read(&mut only, leaf, true);
                        }
                    }
                }
                // A loop-invariant operand is body input k in every step: look at its uses there.
                Op::Loop { spec, .. } => {
                    let invariants = spec.carries + spec.sliced.len();
                    for k in 0..node.inputs.len() {
                        let Some(leaf) = viewed(k) else { continue };
                        if k < invariants {
                            read(&mut only, leaf, false);
                            continue;
                        }
                        let body_input = |op: &Op| matches!(op, Op::Input { index } if *index == k).then_some(0);
                        if let Some(as_addend) = spec.body.addend_only(&body_input, 1)[0] {
                            read(&mut only, leaf, as_addend);
                        }
                    }
                }
                _ => {
                    for k in 0..node.inputs.len() {
                        if let Some(leaf) = viewed(k) {
                            read(&mut only, leaf, false);
                        }
                    }
                }
            }
        }
        only
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    /// The source-level name of this value, if it had one (`let h = ...`), for printing.
    pub name: Option<String>,
    /// Where in the user's source this value comes from.
    pub span: Option<Span>,
}

/// A computational graph: leaves described by `inputs`/`params`, results named by `outputs`.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub dtype: DType,
    pub nodes: Vec<Node>,
    /// Names of the symbolic dimensions, indexed by `SymId`.
    pub symbols: Vec<String>,
    pub inputs: Vec<InputInfo>,
    pub params: Vec<ParamInfo>,
    pub outputs: Vec<(String, NodeId)>,
    /// In-place parameter updates of a train step: after a call, `params[i]` holds the value
    /// of the node. Each update is applied once nothing else reads the old value.
    pub updates: Vec<(usize, NodeId)>,
}

impl Graph {
    pub fn new(dtype: DType) -> Graph {
        Graph { dtype, ..Graph::default() }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.index()].shape
    }

    /// The symbol named `name`, created on first use.
    pub fn symbol(&mut self, name: &str) -> SymId {
        match self.symbols.iter().position(|s| s == name) {
            Some(i) => SymId(i as u32),
            None => {
                self.symbols.push(name.to_string());
                SymId(self.symbols.len() as u32 - 1)
            }
        }
    }

    /// Append a node as it is (its shape already known). Inputs must precede it.
    pub fn push(&mut self, node: Node) -> NodeId {
        debug_assert!(node.inputs.iter().all(|i| i.index() < self.nodes.len()));
        self.nodes.push(node);
        NodeId(self.nodes.len() as u32 - 1)
    }

    pub fn add_input(&mut self, name: &str, shape: Shape, kind: InputKind) -> NodeId {
        self.inputs.push(InputInfo { name: name.to_string(), shape: shape.clone(), kind, integer: false });
        let index = self.inputs.len() - 1;
        self.push(Node { op: Op::Input { index }, inputs: vec![], shape, name: Some(name.to_string()), span: None })
    }

    /// A trainable parameter.
    pub fn add_param(&mut self, name: &str, shape: Shape, init: Init) -> NodeId {
        self.add_param_of(name, shape, init, ParamKind::Trainable)
    }

    /// A state tensor (not differentiated; see `ParamKind::State`).
    pub fn add_state(&mut self, name: &str, shape: Shape, init: Init) -> NodeId {
        self.add_param_of(name, shape, init, ParamKind::State)
    }

    fn add_param_of(&mut self, name: &str, shape: Shape, init: Init, kind: ParamKind) -> NodeId {
        self.params.push(ParamInfo {
            name: name.to_string(),
            shape: shape.clone(),
            init,
            kind,
            role: ParamRole::Weight,
        });
        let index = self.params.len() - 1;
        self.push(Node { op: Op::Param { index }, inputs: vec![], shape, name: Some(name.to_string()), span: None })
    }

    /// The node of every trainable parameter with its index in `params` (what the train
    /// step differentiates with respect to).
    pub fn trainable_nodes(&self) -> Result<Vec<(usize, NodeId)>, String> {
        let nodes = self.param_nodes()?;
        Ok(nodes.into_iter().enumerate().filter(|(p, _)| self.params[*p].kind == ParamKind::Trainable).collect())
    }

    /// The node of every parameter, in parameter order (what gradients are taken with
    /// respect to).
    pub fn param_nodes(&self) -> Result<Vec<NodeId>, String> {
        let mut nodes = vec![None; self.params.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Param { index } = &node.op {
                if let Some(slot) = nodes.get_mut(*index) {
                    slot.get_or_insert(NodeId(i as u32));
                }
            }
        }
        nodes
            .into_iter()
            .enumerate()
            .map(|(p, n)| n.ok_or_else(|| format!("parameter `{}` has no node", self.params[p].name)))
            .collect()
    }

    pub fn constant(&mut self, value: f64) -> NodeId {
        self.push(Node { op: Op::Const { value }, inputs: vec![], shape: vec![], name: None, span: None })
    }

    /// Give a node a display name and source span (keeps an existing name).
    pub fn annotate(&mut self, id: NodeId, name: Option<&str>, span: Option<Span>) {
        let node = &mut self.nodes[id.index()];
        if node.name.is_none() {
            node.name = name.map(str::to_string);
        }
        if node.span.is_none() {
            node.span = span;
        }
    }

    /// Number of elements of a shape, with symbols bound by `bind` (None if a symbol is unbound).
    pub fn numel(&self, shape: &Shape, bind: &dyn Fn(SymId) -> Option<usize>) -> Option<usize> {
        shape.iter().try_fold(1usize, |acc, d| {
            let n = match *d {
                Dim::Known(n) => n,
                Dim::Sym(s) => bind(s)?,
            };
            acc.checked_mul(n)
        })
    }

    /// Every node that is a result of the same loop as `id` (the same spec and operands), in
    /// id order; empty if `id` is not a loop.
    pub fn loop_siblings(&self, id: NodeId) -> Vec<NodeId> {
        let node = self.node(id);
        let Op::Loop { spec, .. } = &node.op else { return vec![] };
        (0..self.nodes.len() as u32)
            .map(NodeId)
            .filter(|&n| {
                let other = self.node(n);
                matches!(&other.op, Op::Loop { spec: s, .. } if Arc::ptr_eq(s, spec)) && other.inputs == node.inputs
            })
            .collect()
    }

    /// What the values of input `input` index, following them unchanged through layout ops:
    /// the class count of each `OneHot` that encodes them and the axis of each `Gather` (or
    /// `ScatterAdd`) they choose rows of. An integer input's values must lie below both.
    pub fn index_use(&self, input: usize) -> IndexUse {
        use Op::*;
        // carries[i]: node i holds (some of) the input's values unchanged.
        let mut carries = vec![false; self.nodes.len()];
        let mut used = IndexUse::default();
        let tighten = |slot: &mut Option<usize>, n: Option<usize>| {
            if let Some(n) = n {
                *slot = Some(slot.map_or(n, |b| b.min(n)));
            }
        };
        for (i, node) in self.nodes.iter().enumerate() {
            let from = |k: usize| node.inputs.get(k).is_some_and(|x| carries[x.index()]);
            carries[i] = match &node.op {
                Input { index } => *index == input,
                Broadcast { .. } | Reshape { .. } | Transpose { .. } | Slice { .. } | Reverse { .. } => from(0),
                Concat { .. } => node.inputs.iter().any(|x| carries[x.index()]),
                Gather { axis } => {
                    if from(1) {
                        tighten(&mut used.rows, self.shape(node.inputs[0]).get(*axis).and_then(|d| d.known()));
                    }
                    from(0)
                }
                ScatterAdd { size, .. } => {
                    if from(1) {
                        tighten(&mut used.rows, Some(*size));
                    }
                    false
                }
                OneHot { classes } => {
                    if from(0) {
                        tighten(&mut used.classes, Some(*classes));
                    }
                    false
                }
                Param { .. } | Const { .. } | Literal { .. } | DimSize { .. } | Pad { .. } => false,
                RandomUniform { .. } => false,
                // The body reads the input's values as its own input k (whole, or a step's
                // slice of them): what it indexes with them counts.
                Loop { spec, .. } => {
                    for k in (0..node.inputs.len()).filter(|&k| from(k)) {
                        let inner = spec.body.index_use(k);
                        tighten(&mut used.rows, inner.rows);
                        tighten(&mut used.classes, inner.classes);
                    }
                    false
                }
                Neg | Exp | Log | Sqrt | Abs | Sign | Tanh | Sigmoid => false,
                Relu | LeakyRelu { .. } | Elu { .. } | Softplus | Erf | Clip { .. } => false,
                Add | Sub | Mul | Div | Pow | Max | Min | GreaterEq | Greater | Equal | Where => false,
                Sum { .. } | ReduceMax { .. } | ArgMaxMask { .. } | MatMul { .. } | LogSoftmax { .. } => false,
                Conv2d { .. } | Conv2dInputGrad { .. } | Conv2dFilterGrad { .. } => false,
                MaxPool2d { .. } | MaxPool2dGrad { .. } | AvgPool2d { .. } | AvgPool2dGrad { .. } => false,
            };
        }
        used
    }

    pub fn dim_name(&self, d: Dim) -> String {
        match d {
            Dim::Known(n) => n.to_string(),
            Dim::Sym(s) => self.symbols.get(s.0 as usize).cloned().unwrap_or_else(|| format!("?{}", s.0)),
        }
    }

    pub fn shape_str(&self, shape: &Shape) -> String {
        let dims: Vec<String> = shape.iter().map(|&d| self.dim_name(d)).collect();
        format!("[{}]", dims.join(", "))
    }
}
