//! One test case for every IR op and every built-in, kept complete by the compiler: `op_case`
//! and `builtin_case` are exhaustive matches with no `_` arm, so a new `Op` variant or
//! `Builtin` does not compile until it has a case here. The gradcheck suite
//! (`tests/gradcheck.rs`) and the JIT-vs-interpreter suite (`tests/jit.rs`) run every case.
#![allow(dead_code)]

use netc::frontend::builtins::Builtin;
use netc::ir::graph::{DType, Dim, Graph, Init, NodeId, Op, Shape};
use netc::ir::tensor::Tensor;

/// An op applied to parameters `p0, p1, …` of the given shapes, with values drawn from
/// `range` (distinct and away from kinks unless the range holds one).
pub struct OpCase {
    pub op: Op,
    pub shapes: Vec<Vec<usize>>,
    pub range: (f64, f64),
    /// Central differences apply: false for piecewise-constant ops (no gradient flows) and
    /// for class indices (operands that must stay whole numbers).
    pub differentiable: bool,
    /// An operand of indices (its position and its whole-number values): a literal in the
    /// graph, not a parameter, so it is neither perturbed nor differentiated.
    pub indices: Option<(usize, Vec<f64>)>,
}

fn case(op: Op, shapes: &[&[usize]], range: (f64, f64)) -> OpCase {
    OpCase { op, shapes: shapes.iter().map(|s| s.to_vec()).collect(), range, differentiable: true, indices: None }
}

/// A case whose operand `at` holds the indices `values` (repeats included).
fn indexed(op: Op, shapes: &[&[usize]], at: usize, values: &[f64]) -> OpCase {
    OpCase { indices: Some((at, values.to_vec())), ..case(op, shapes, (-2.0, 2.0)) }
}

fn flat(op: Op, shapes: &[&[usize]], range: (f64, f64)) -> OpCase {
    OpCase { differentiable: false, ..case(op, shapes, range) }
}

fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&n| Dim::Known(n)).collect()
}

/// The case of `op`'s variant (its attributes are ignored). Add an arm for a new op: the
/// suites then check its gradient against central differences and its compiled code against
/// the interpreter.
pub fn op_case(op: &Op) -> OpCase {
    use Op::*;
    let any = (-2.0, 2.0);
    let positive = (0.2, 3.0);
    match op {
        // Leaves: built by `build` around a product with a parameter, so gradients flow.
        Input { .. } => case(Input { index: 0 }, &[&[2, 3]], any),
        Param { .. } => case(Param { index: 0 }, &[&[2, 3]], any),
        Const { .. } => case(Const { value: 2.5 }, &[&[2, 3]], any),
        Literal { .. } => case(Literal { values: vec![1.0, -2.0, 0.5, 3.0, -1.0, 0.25].into() }, &[&[2, 3]], any),
        DimSize { .. } => case(DimSize { dim: Dim::Known(7) }, &[&[2, 3]], any),
        Neg => case(Neg, &[&[2, 3]], any),
        Exp => case(Exp, &[&[2, 3]], any),
        Log => case(Log, &[&[2, 3]], positive),
        Sqrt => case(Sqrt, &[&[2, 3]], positive),
        Abs => case(Abs, &[&[2, 3]], (0.1, 2.0)),
        Sign => flat(Sign, &[&[2, 3]], any),
        Tanh => case(Tanh, &[&[2, 3]], any),
        Sigmoid => case(Sigmoid, &[&[2, 3]], any),
        Relu => case(Relu, &[&[2, 3]], any),
        LeakyRelu { .. } => case(LeakyRelu { alpha: 0.2 }, &[&[2, 3]], any),
        Elu { .. } => case(Elu { alpha: 0.5 }, &[&[2, 3]], any),
        Softplus => case(Softplus, &[&[2, 3]], (-3.0, 3.0)),
        // Every region of fdlibm's erf: |x| below 0.84375, below 1.25, and above.
        Erf => case(Erf, &[&[3, 5]], (-4.0, 4.0)),
        // Values on both sides of both bounds (gradcheck skips one that a step of ε moves across).
        Clip { .. } => case(Clip { lo: -0.5, hi: 1.0 }, &[&[3, 4]], any),
        Add => case(Add, &[&[2, 3], &[3]], any),
        Sub => case(Sub, &[&[2, 1], &[1, 3]], any),
        Mul => case(Mul, &[&[2, 3], &[2, 1]], any),
        Div => case(Div, &[&[2, 3], &[3]], positive),
        Pow => case(Pow, &[&[2, 3], &[3]], positive),
        Max => case(Max, &[&[2, 3], &[2, 3]], any),
        Min => case(Min, &[&[2, 3], &[3]], any),
        GreaterEq => flat(GreaterEq, &[&[2, 3], &[3]], any),
        Greater => flat(Greater, &[&[2, 3], &[3]], any),
        Equal => flat(Equal, &[&[2, 3], &[2, 1]], any),
        // A fixed mask as the condition, broadcast over rows; the second value broadcast too.
        Where => indexed(Where, &[&[3], &[2, 3], &[2, 1]], 0, &[1.0, 0.0, 1.0]),
        Broadcast { .. } => case(Broadcast { shape: known(&[4, 2, 3]) }, &[&[2, 1]], any),
        Reshape { .. } => case(Reshape { shape: known(&[3, 2]) }, &[&[2, 3]], any),
        Transpose { .. } => case(Transpose { perm: vec![2, 0, 1] }, &[&[2, 3, 4]], any),
        Slice { .. } => case(Slice { axis: 1, start: 1, len: 2, step: 2 }, &[&[2, 5]], any),
        Pad { .. } => case(Pad { axis: 0, before: 1, after: 2, step: 2 }, &[&[2, 3]], any),
        Reverse { .. } => case(Reverse { axis: 1 }, &[&[2, 3]], any),
        Concat { .. } => case(Concat { axis: 1 }, &[&[2, 3], &[2, 2], &[2, 1]], any),
        Gather { .. } => indexed(Gather { axis: 1 }, &[&[2, 4], &[3]], 1, &[3.0, 0.0, 3.0]),
        ScatterAdd { .. } => indexed(ScatterAdd { axis: 0, size: 4 }, &[&[5, 2], &[5]], 1, &[1.0, 3.0, 1.0, 0.0, 1.0]),
        Sum { .. } => case(Sum { axes: vec![0, 2] }, &[&[2, 3, 4]], any),
        ReduceMax { .. } => case(ReduceMax { axes: vec![0, 2] }, &[&[3, 2, 4]], any),
        ArgMaxMask { .. } => flat(ArgMaxMask { axis: 1 }, &[&[3, 4]], any),
        OneHot { .. } => flat(OneHot { classes: 4 }, &[&[5]], (0.0, 4.0)),
        // Batched, the batch of b broadcast, a transposed, k = 5 (a GEMM, not an inline sum).
        MatMul { .. } => case(
            MatMul { transpose_a: true, transpose_b: false, batch: 1, contract: 1 },
            &[&[3, 5, 2], &[1, 5, 4]],
            any,
        ),
        LogSoftmax { .. } => case(LogSoftmax { axis: 1 }, &[&[3, 5]], any),
        // Even sizes with stride 2 (PyTorch's floor rule: the last row and column are read by
        // no window, and get a zero gradient).
        Conv2d { .. } => case(Conv2d { stride: 2, pad: 1 }, &[&[2, 2, 6, 6], &[3, 2, 3, 3]], any),
        Conv2dInputGrad { .. } => {
            case(Conv2dInputGrad { stride: 2, pad: 1, height: 6, width: 6 }, &[&[2, 3, 3, 3], &[3, 2, 3, 3]], any)
        }
        Conv2dFilterGrad { .. } => {
            case(Conv2dFilterGrad { stride: 2, pad: 1, kernel_h: 3, kernel_w: 3 }, &[&[2, 2, 6, 6], &[2, 3, 3, 3]], any)
        }
        MaxPool2d { .. } => case(MaxPool2d { size: 2, stride: 2 }, &[&[2, 2, 5, 5]], any),
        MaxPool2dGrad { .. } => case(MaxPool2dGrad { size: 2, stride: 2 }, &[&[2, 2, 5, 5], &[2, 2, 2, 2]], any),
        AvgPool2d { .. } => case(AvgPool2d { size: 3, stride: 2 }, &[&[2, 2, 6, 6]], any),
        AvgPool2dGrad { .. } => case(AvgPool2dGrad { size: 3, stride: 2, height: 6, width: 6 }, &[&[2, 2, 2, 2]], any),
        // The stacked outputs of an Elman RNN over 3 steps: carry h0 [2, 4], per-step x
        // [3, 2, 3] along axis 0, invariants W, U, b (see `rnn_loop`).
        Loop { .. } => {
            case(Loop { spec: rnn_loop(3), output: 1 }, &[&[2, 4], &[3, 2, 3], &[4, 4], &[3, 4], &[4]], (-0.8, 0.8))
        }
        // The operand is a key of eight 16-bit pieces; 21 elements run the vector loop and its tail.
        RandomUniform { .. } => flat(RandomUniform { stream: 3, shape: known(&[3, 7]) }, &[&[8]], (0.0, 65536.0)),
    }
}

/// h' = tanh(h @ W + x_t @ U + b) over `steps` steps: carry h [2, 4], per-step x_t [2, 3]
/// sliced along axis 0, invariants W [4, 4], U [3, 4], b [4]; results: the final h, and
/// every step's h' stacked on axis 1 ([2, steps, 4]).
pub fn rnn_loop(steps: usize) -> std::sync::Arc<netc::ir::graph::LoopSpec> {
    use netc::ir::graph::{InputKind, LoopSpec, Slicing};
    let mut body = Graph::new(DType::F64);
    let h = body.add_input("h", known(&[2, 4]), InputKind::Variable);
    let x = body.add_input("x_t", known(&[2, 3]), InputKind::Variable);
    let w = body.add_input("W", known(&[4, 4]), InputKind::Variable);
    let u = body.add_input("U", known(&[3, 4]), InputKind::Variable);
    let b = body.add_input("b", known(&[4]), InputKind::Variable);
    use Op::*;
    let product = Op::matmul(false, false);
    let hw = body.add(product.clone(), &[h, w]).unwrap();
    let xu = body.add(product, &[x, u]).unwrap();
    let sum = body.add(Add, &[hw, xu]).unwrap();
    let sum = body.add(Add, &[sum, b]).unwrap();
    let next = body.add(Tanh, &[sum]).unwrap();
    body.outputs = vec![("h".into(), next), ("hs".into(), next)];
    let spec = LoopSpec::new(body, steps, false, 1, vec![Slicing::along(0)], vec![Slicing::along(1)]);
    std::sync::Arc::new(spec.unwrap())
}

/// One case per op variant: `op_case` of each variant listed here. The list is checked
/// against the match by `every_op_has_its_own_case` (a case must hold its own variant), and
/// each suite asserts it saw every variant of the list.
pub fn all_op_cases() -> Vec<OpCase> {
    use Op::*;
    let z = Dim::Known(1);
    let ops = [
        Input { index: 0 },
        Param { index: 0 },
        Const { value: 0.0 },
        Literal { values: vec![].into() },
        DimSize { dim: z },
        Neg,
        Exp,
        Log,
        Sqrt,
        Abs,
        Sign,
        Tanh,
        Sigmoid,
        Relu,
        LeakyRelu { alpha: 0.0 },
        Elu { alpha: 0.0 },
        Softplus,
        Erf,
        Clip { lo: 0.0, hi: 0.0 },
        Add,
        Sub,
        Mul,
        Div,
        Pow,
        Max,
        Min,
        GreaterEq,
        Greater,
        Equal,
        Where,
        Broadcast { shape: vec![] },
        Reshape { shape: vec![] },
        Transpose { perm: vec![] },
        Slice { axis: 0, start: 0, len: 0, step: 1 },
        Pad { axis: 0, before: 0, after: 0, step: 1 },
        Reverse { axis: 0 },
        Concat { axis: 0 },
        Gather { axis: 0 },
        ScatterAdd { axis: 0, size: 0 },
        Sum { axes: vec![] },
        ReduceMax { axes: vec![] },
        ArgMaxMask { axis: 0 },
        OneHot { classes: 0 },
        Op::matmul(false, false),
        LogSoftmax { axis: 0 },
        Conv2d { stride: 0, pad: 0 },
        Conv2dInputGrad { stride: 0, pad: 0, height: 0, width: 0 },
        Conv2dFilterGrad { stride: 0, pad: 0, kernel_h: 0, kernel_w: 0 },
        MaxPool2d { size: 0, stride: 0 },
        MaxPool2dGrad { size: 0, stride: 0 },
        AvgPool2d { size: 0, stride: 0 },
        AvgPool2dGrad { size: 0, stride: 0, height: 0, width: 0 },
        Loop { spec: rnn_loop(1), output: 0 },
        RandomUniform { stream: 0, shape: vec![] },
    ];
    ops.iter().map(op_case).collect()
}

/// The case's graph in `dtype`: parameters `p0, …` of its shapes (an `Input` case has an
/// input instead), the op, and L = Σ op(…) ⊙ w for a fixed w of varied values, so a gradient
/// that sums to zero cannot hide an error. Returns (graph, the op's node, L, the leaves).
pub fn build(c: &OpCase, dtype: DType) -> (Graph, NodeId, NodeId, Vec<NodeId>) {
    let mut g = Graph::new(dtype);
    let mut leaves: Vec<NodeId> = vec![];
    let y = match &c.op {
        Op::Input { .. } => {
            let x = g.add_input("x", known(&c.shapes[0]), netc::ir::graph::InputKind::Variable);
            leaves.push(x);
            x
        }
        Op::Param { .. } => {
            let p = g.add_param("p0", known(&c.shapes[0]), Init::Zeros);
            leaves.push(p);
            p
        }
        Op::Const { .. } | Op::Literal { .. } | Op::DimSize { .. } => {
            // leaf * p0: the leaf's value reaches L, and p0's gradient is that value.
            let p = g.add_param("p0", known(&c.shapes[0]), Init::Zeros);
            leaves.push(p);
            let shape = if matches!(c.op, Op::Literal { .. }) { known(&c.shapes[0]) } else { vec![] };
            let leaf =
                g.push(netc::ir::graph::Node { op: c.op.clone(), inputs: vec![], shape, name: None, span: None });
            g.add(Op::Mul, &[leaf, p]).unwrap()
        }
        op => {
            let mut operands = vec![];
            for (i, s) in c.shapes.iter().enumerate() {
                match &c.indices {
                    Some((at, values)) if *at == i => operands.push(g.push(netc::ir::graph::Node {
                        op: Op::Literal { values: values.clone().into() },
                        inputs: vec![],
                        shape: known(s),
                        name: None,
                        span: None,
                    })),
                    _ => {
                        let p = g.add_param(&format!("p{}", leaves.len()), known(s), Init::Zeros);
                        leaves.push(p);
                        operands.push(p);
                    }
                }
            }
            g.add(op.clone(), &operands).unwrap_or_else(|e| panic!("{op:?} on {:?}: {e:?}", c.shapes))
        }
    };
    let shape: Vec<usize> = g.shape(y).iter().map(|d| d.known().unwrap()).collect();
    let n: usize = shape.iter().product();
    let w_values: Vec<f64> = (0..n).map(|k| 0.5 + ((k as f64 + 1.0) * 0.754_877_666).fract()).collect();
    let w = g.push(netc::ir::graph::Node {
        op: Op::Literal { values: w_values.into() },
        inputs: vec![],
        shape: known(&shape),
        name: None,
        span: None,
    });
    let weighted = g.add(Op::Mul, &[y, w]).unwrap();
    let all: Vec<usize> = (0..shape.len()).collect();
    let loss = g.add(Op::Sum { axes: all }, &[weighted]).unwrap();
    (g, y, loss, leaves)
}

/// Distinct values spread over the case's range (whole numbers for class indices and random keys).
pub fn values(c: &OpCase, seed: usize) -> Vec<Tensor> {
    let (lo, hi) = c.range;
    c.shapes
        .iter()
        .enumerate()
        .filter(|(i, _)| c.indices.as_ref().is_none_or(|(at, _)| at != i))
        .map(|(i, s)| {
            let n: usize = s.iter().product();
            let data = (0..n)
                .map(|k| {
                    let u = (((k + 1) * 7 + (i + seed) * 13) as f64 * 0.618_033_988_749_895).fract();
                    let v = lo + (hi - lo) * u;
                    if matches!(c.op, Op::OneHot { .. } | Op::RandomUniform { .. }) {
                        v.floor()
                    } else {
                        v
                    }
                })
                .collect();
            Tensor::new(s.clone(), data)
        })
        .collect()
}

/// How a built-in is exercised.
pub enum BuiltinCase {
    /// An expression over the eval variables `x` ([2, 3]), `y` ([2, 3]), `labels` ([2]),
    /// `img` ([1, 2, 4, 4]) and `w` ([3, 2, 3, 3]): differentiated with respect to them.
    Expr(&'static str),
    /// An `Expr` evaluated in training mode (`training: true`; random numbers of seed 0,
    /// step 0).
    TrainingExpr(&'static str),
    /// A parameter initialiser: `param W: [4, 6] = INIT`.
    Init(&'static str),
    /// A train setting: `KEY: VALUE` in a train block of a small model.
    Train(&'static str, &'static str),
    /// A data source: `source: VALUE` of a data block (files under tests/data).
    Data(&'static str),
    /// An expression an eval block shows (printed, not differentiated), over the variables
    /// of `Expr` and `ids` ([2, 4] token ids), with the text it prints (whitespace runs as
    /// one space).
    Show(&'static str, &'static str),
}

/// The case of each built-in. Add an arm for a new built-in.
pub fn builtin_case(b: Builtin) -> BuiltinCase {
    use Builtin::*;
    use BuiltinCase::*;
    match b {
        Exp => Expr("exp(x)"),
        Log => Expr("log(y)"),
        Sqrt => Expr("sqrt(y)"),
        Abs => Expr("abs(x)"),
        Sigmoid => Expr("sigmoid(x)"),
        Tanh => Expr("tanh(x)"),
        Relu => Expr("relu(x)"),
        LeakyRelu => Expr("leaky_relu(x, alpha: 0.1)"),
        Elu => Expr("elu(x, alpha: 0.5)"),
        Softplus => Expr("softplus(x)"),
        Erf => Expr("erf(x) * y"),
        Gelu => Expr("gelu(x) + gelu(y, approximate: \"tanh\") * x"),
        Silu => Expr("silu(x) * y"),
        Clip => Expr("clip(x, -1, 1) + clip(y, hi: 1) * x + clip(x, lo: 0.5)"),
        // With every comparison: the masks have no gradient, where routes it.
        Where => Expr(
            "where(x > 0.5, x * y, -y) + where(x != y, x, 0) * (x < y) + (x >= 0) * (y <= 1) * where(x == x, y, x)",
        ),
        Var => Expr("var(x, axis: 1, keepdims: true) * y + var(x, correction: 0)"),
        Max => Expr("max(x, y) + max(x, axis: 1, keepdims: true)"),
        Min => Expr("min(x, y) + min(x, axis: 0)"),
        Sum => Expr("sum(x, axis: 1, keepdims: true) * x"),
        Mean => Expr("mean(x, axis: [0, 1]) * x"),
        Transpose => Expr("transpose(x) @ y"),
        Reshape => Expr("reshape(x, [3, -1]) @ y"),
        Flatten => Expr("flatten(img)"),
        Concat => Expr("concat([x, y * 2, x[:, :1]], axis: 1)"),
        Split => Expr("split(x, [1, 2], axis: 1)[1] * y[:, 1:]"),
        Chunk => Expr("chunk(y, 2, axis: 1)[0] + x[:, ::2]"),
        Take => Expr("take(x, labels, axis: 1) * take(y, [[5, 0], [5, 1]])"),
        Expand => Expr("expand(x[:1], [2, -1]) * y"),
        BroadcastTo => Expr("broadcast_to(sum(x, axis: 0), [2, 3]) * y"),
        Squeeze => Expr("squeeze(x[:, 1:2], axis: 1) * y[:, 0]"),
        Unsqueeze => Expr("unsqueeze(x[0], 0) * y"),
        Pad => Expr("pad(x, [[1, 0], [0, 2]])[1:, :3] * y"),
        Einsum => Expr("einsum(\"ij,kj->ik\", x, y) * sum(einsum(\"ij->ji\", y))"),
        Softmax => Expr("softmax(x)"),
        LogSoftmax => Expr("log_softmax(x, axis: 0)"),
        OneHot => Expr("one_hot(labels, 3) * x"),
        Decode => Show("decode(ids, \"ab c\")", "\"abc \" \"c?ba\""),
        Argmax => Expr("x * reshape(argmax(x), [2, 1]) + transpose(one_hot(argmax(x, axis: 0), 2)) * y"),
        CrossEntropy => Expr("cross_entropy(x, labels)"),
        Svm => Expr("svm(x, labels, margin: 0.5)"),
        Mse => Expr("mse(x, y)"),
        L2 => Expr("l2(x, y)"),
        Conv => Expr("conv(img, w, stride: 1, pad: 1) + sum(conv(img, w[:2, :1], pad: 1, groups: 2))"),
        Conv1d => Expr("conv1d(img[:, :, 0], w[:, :, 0], stride: 2, pad: 1)"),
        ConvTranspose2d => Expr("conv_transpose2d(img[:, :, :3, :3], w[:2], stride: 2, pad: 1)"),
        Upsample2d => Expr("upsample2d(img) * 2 + upsample2d(img[:, :, :2, :2], scale: 4)"),
        Maxpool2d => Expr("maxpool2d(img, size: 2)"),
        Avgpool2d => {
            Expr("avgpool2d(img, size: 2, stride: 1)[:, :, :2, :2] + avgpool2d(img, size: 3, stride: 2, pad: 1)")
        }
        GlobalAvgpool => Expr("global_avgpool(img) + global_avgpool(img, keepdims: true)[:, :, 0, 0]"),
        RandLike => TrainingExpr("x * rand_like(x) + y * rand_like(y)"),
        Dropout => TrainingExpr("dropout(x, p: 0.4) * y + dropout(y)"),
        Accuracy => Train("metrics", "[accuracy]"),
        Zeros => Init("zeros"),
        Constant => Init("constant(0.5)"),
        Normal => Init("normal(0.1)"),
        Uniform => Init("uniform(-0.5, 0.5)"),
        Xavier => Init("xavier"),
        He => Init("he"),
        Sgd => Train("optimizer", "sgd(lr: 0.1)"),
        Momentum => Train("optimizer", "momentum(lr: 0.1, momentum: 0.8, nesterov: true)"),
        Adam => Train("optimizer", "adam(lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6)"),
        AdamW => Train("optimizer", "adamw(lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1)"),
        Step => Train("schedule", "step(every: 2, gamma: 0.5)"),
        Cosine => Train("schedule", "cosine(min_lr: 0.001)"),
        Spiral => Data("spiral(points: 20, classes: 3, seed: 1)"),
        Synthetic => Data("synthetic(samples: 30, classes: 3, seed: 1)"),
        Csv => Data("csv(\"cases/iris3.csv\", label: \"label\")"),
        Npy => Data("npy(\"cases/x2.npy\", \"cases/y3.npy\")"),
        Idx => Data("idx(\"cases/x2.idx\", \"cases/y3.idx\", scale: 1 / 255)"),
    }
}

/// The eval block of an `Expr` case (or, with `training`, of a `TrainingExpr` case): the
/// variables, and the gradient of Σ expr ⊙ v.
pub fn expr_source(expr: &str, training: bool) -> String {
    format!(
        "eval case {{
  training: {training}
  let x = [[-1.3, 0.4, 2.1], [0.7, -0.2, 1.6]]
  let y = [[0.9, 1.7, 0.3], [2.2, 0.6, 1.1]]
  let labels = [2, 0]
  let img = [[[[0.3, -1.2, 0.8, 1.9], [-0.4, 1.1, 0.2, -0.9], [1.4, -0.7, 0.6, 0.1], [-1.5, 0.5, 1.3, -0.3]],
              [[0.7, 0.2, -1.1, 0.4], [1.6, -0.5, 0.9, -1.3], [-0.8, 1.2, 0.35, 0.75], [0.15, -1.7, 1.05, -0.6]]]]
  let w = [[[[0.2, -0.3, 0.5], [0.1, 0.4, -0.2], [-0.6, 0.3, 0.7]], [[0.3, 0.1, -0.4], [0.8, -0.5, 0.2], [0.6, -0.1, 0.3]]],
           [[[-0.2, 0.5, 0.1], [0.7, -0.3, 0.4], [0.2, 0.6, -0.5]], [[0.4, -0.6, 0.2], [-0.1, 0.3, 0.9], [0.5, 0.2, -0.7]]],
           [[[0.6, 0.2, -0.3], [-0.4, 0.1, 0.5], [0.3, -0.2, 0.8]], [[-0.5, 0.4, 0.1], [0.2, 0.7, -0.3], [0.9, -0.4, 0.6]]]]
  let value = {expr}
  let v = sum(value * value) * 0.5 + sum(value)
  grad v wrt x, y, img, w
}}
"
    )
}

/// An eval block that shows `expr` over the variables of `expr_source` and `ids`.
pub fn show_source(expr: &str) -> String {
    let with_ids = expr_source("x", false).replace("  let value = x\n", "  let ids = [[0, 1, 3, 2], [3, 7, 1, 0]]\n");
    let head = &with_ids[..with_ids.find("  let v = ").unwrap()];
    format!("{head}  {expr}\n}}\n")
}

/// A small classifier trained by a file with `settings` in its train block and `source` as
/// its data (a 2-feature, 3-class problem).
pub fn train_source(init: &str, settings: &[(&str, &str)], source: &str) -> String {
    let lines: Vec<String> = settings.iter().map(|(k, v)| format!("  {k}: {v}")).collect();
    format!(
        "model m(x: [B, 2]) -> scores: [B, 3] {{
  param W: [2, 3] = {init}
  param b: [3] = zeros
  x @ W + b
}}
data d {{ source: {source} }}
train m {{
  loss: cross_entropy(scores, labels)
  steps: 4
  batch: 8
{}
}}
",
        lines.join("\n")
    )
}

/// Writes the data files of the `Data` cases into `dir`: 30 samples of 2 features and 3
/// classes as CSV, NPY and IDX.
pub fn write_case_data(dir: &std::path::Path) {
    let n = 30;
    let x = |i: usize, j: usize| ((i * 7 + j * 3) % 11) as f32 / 11.0 + if j == 0 { (i % 3) as f32 } else { 0.0 };
    let label = |i: usize| i % 3;
    std::fs::create_dir_all(dir.join("cases")).unwrap();
    let mut csv = String::from("a,b,label\n");
    for i in 0..n {
        csv.push_str(&format!("{},{},{}\n", x(i, 0), x(i, 1), label(i)));
    }
    std::fs::write(dir.join("cases/iris3.csv"), csv).unwrap();
    let npy = |descr: &str, shape: &str, data: Vec<u8>| {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.bytes());
        out.extend(data);
        out
    };
    let xs: Vec<u8> = (0..n).flat_map(|i| [x(i, 0), x(i, 1)]).flat_map(f32::to_le_bytes).collect();
    let ys: Vec<u8> = (0..n).flat_map(|i| (label(i) as i64).to_le_bytes()).collect();
    std::fs::write(dir.join("cases/x2.npy"), npy("<f4", "30, 2", xs)).unwrap();
    std::fs::write(dir.join("cases/y3.npy"), npy("<i8", "30,", ys)).unwrap();
    let mut images = vec![0, 0, 8, 3];
    for d in [n as u32, 1, 2] {
        images.extend(d.to_be_bytes());
    }
    images.extend((0..n).flat_map(|i| [(x(i, 0) * 80.0) as u8, (x(i, 1) * 80.0) as u8]));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    labels.extend((0..n).map(|i| label(i) as u8));
    std::fs::write(dir.join("cases/x2.idx"), images).unwrap();
    std::fs::write(dir.join("cases/y3.idx"), labels).unwrap();
}

/// The `.net` source that runs a non-`Expr` built-in case (an `Expr` case: None).
pub fn run_source(c: &BuiltinCase) -> Option<String> {
    let spiral = "spiral(points: 20, classes: 3, seed: 1)";
    match c {
        BuiltinCase::Expr(_) | BuiltinCase::Show(..) | BuiltinCase::TrainingExpr(_) => None,
        BuiltinCase::Init(init) => Some(train_source(init, &[], spiral)),
        BuiltinCase::Train(key, value) => Some(train_source("xavier", &[(key, value)], spiral)),
        BuiltinCase::Data(source) => Some(train_source("xavier", &[], source)),
    }
}
