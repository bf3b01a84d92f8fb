//! Per op, side by side: shape rule, meaning (evaluation) and vector-Jacobian product.
//!
//! Input: an `Op` and its operands; output: the result's shape, its value (for the reference
//! interpreter), or the IR nodes of its gradient (for `autodiff`).
//!
//! `shape` holds every shape rule (`infer_shape`); the meanings and VJPs are grouped by family
//! (`elementwise`, `layout`, `gather`, `reduce`, `nn`, `random`) over the loops of `loops`; `eval`, `vjp` and
//! `describe` below are the three exhaustive matches that send each op to its rules.

mod control;
mod elementwise;
mod gather;
mod layout;
mod loops;
mod nn;
pub mod random;
mod reduce;
mod shape;
use crate::diag::Span;
use crate::ir::graph::{Dim, Graph, LoopSpec, NodeId, Op, Shape};
use crate::ir::tensor::Tensor;

pub use control::{loop_shape, stacked_shape, step_shape};
use elementwise::*;
use gather::*;
use layout::*;
use loops::{map, numel, zip};
use nn::*;
use random::*;
use reduce::*;
pub use shape::{broadcast_shapes, infer_shape, window_out, ShapeError};

/// The op's name with its attributes, as the text form and the DOT pictures print it.
pub fn describe(op: &Op, g: &Graph) -> String {
    use Op::*;
    match op {
        Input { index } => format!("input {}", g.inputs.get(*index).map_or("?", |i| i.name.as_str())),
        Param { index } => format!("param {}", g.params.get(*index).map_or("?", |p| p.name.as_str())),
        Const { value } => format!("const {value}"),
        Literal { values } => format!("literal {:?}", &values[..values.len().min(8)]),
        DimSize { dim } => format!("dim {}", g.dim_name(*dim)),
        Neg => "neg".into(),
        Exp => "exp".into(),
        Log => "log".into(),
        Sqrt => "sqrt".into(),
        Abs => "abs".into(),
        Sign => "sign".into(),
        Tanh => "tanh".into(),
        Sigmoid => "sigmoid".into(),
        Relu => "relu".into(),
        LeakyRelu { alpha } => format!("leaky_relu alpha={alpha}"),
        Elu { alpha } => format!("elu alpha={alpha}"),
        Softplus => "softplus".into(),
        Erf => "erf".into(),
        Clip { lo, hi } => format!("clip lo={lo} hi={hi}"),
        Add => "add".into(),
        Sub => "sub".into(),
        Mul => "mul".into(),
        Div => "div".into(),
        Pow => "pow".into(),
        Max => "max".into(),
        Min => "min".into(),
        GreaterEq => "greater_eq".into(),
        Greater => "greater".into(),
        Equal => "equal".into(),
        Where => "where".into(),
        Broadcast { shape } => format!("broadcast {}", g.shape_str(shape)),
        Reshape { shape } => format!("reshape {}", g.shape_str(shape)),
        Transpose { perm } => format!("transpose {perm:?}"),
        Slice { axis, start, len, step: 1 } => format!("slice axis={axis} {start}..{}", start + len),
        Slice { axis, start, len, step } => {
            format!("slice axis={axis} {start}..{}:{step}", start + (*len).max(1).saturating_sub(1) * step + 1)
        }
        Pad { axis, before, after, step: 1 } => format!("pad axis={axis} {before},{after}"),
        Pad { axis, before, after, step } => format!("pad axis={axis} {before},{after} step={step}"),
        Reverse { axis } => format!("reverse axis={axis}"),
        Concat { axis } => format!("concat axis={axis}"),
        Gather { axis } => format!("gather axis={axis}"),
        ScatterAdd { axis, size } => format!("scatter_add axis={axis} size={size}"),
        Sum { axes } => format!("sum axes={axes:?}"),
        ReduceMax { axes } => format!("reduce_max axes={axes:?}"),
        ArgMaxMask { axis } => format!("argmax_mask axis={axis}"),
        OneHot { classes } => format!("one_hot {classes}"),
        MatMul { transpose_a, transpose_b, batch, contract } => format!(
            "matmul{}{}{}{}",
            if *transpose_a { " aT" } else { "" },
            if *transpose_b { " bT" } else { "" },
            if *batch > 0 { format!(" batch={batch}") } else { String::new() },
            if *contract != 1 { format!(" contract={contract}") } else { String::new() },
        ),
        LogSoftmax { axis } => format!("log_softmax axis={axis}"),
        Conv2d { stride, pad } => format!("conv2d stride={stride} pad={pad}"),
        Conv2dInputGrad { stride, pad, .. } => format!("conv2d_input_grad stride={stride} pad={pad}"),
        Conv2dFilterGrad { stride, pad, .. } => format!("conv2d_filter_grad stride={stride} pad={pad}"),
        MaxPool2d { size, stride } => format!("maxpool2d size={size} stride={stride}"),
        MaxPool2dGrad { size, stride } => format!("maxpool2d_grad size={size} stride={stride}"),
        AvgPool2d { size, stride } => format!("avgpool2d size={size} stride={stride}"),
        AvgPool2dGrad { size, stride, .. } => format!("avgpool2d_grad size={size} stride={stride}"),
        Loop { spec, output } => format!("loop@{:x} out {output} ({})", loop_id(spec), spec.summary()),
        RandomUniform { stream, shape } => format!("random_uniform stream={stream} {}", g.shape_str(shape)),
    }
}

/// A short stable name for a loop spec within one run (its address), for the text form.
pub fn loop_id(spec: &std::sync::Arc<LoopSpec>) -> usize {
    (std::sync::Arc::as_ptr(spec) as usize >> 4) & 0xffff
}

impl Graph {
    /// The readable text form: one line per node, `%id: shape = op(args)  # name`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let args: Vec<String> = node.inputs.iter().map(|a| a.to_string()).collect();
            let mut line = format!("%{i}: {} = {}", self.shape_str(&node.shape), describe(&node.op, self));
            if !args.is_empty() {
                line.push_str(&format!("({})", args.join(", ")));
            }
            if let Some(name) = &node.name {
                line.push_str(&format!("  # {name}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
        for (name, id) in &self.outputs {
            out.push_str(&format!("output {name} = {id}\n"));
        }
        // Each loop's body once, indented under its name.
        let mut shown: Vec<*const LoopSpec> = vec![];
        for node in &self.nodes {
            let Op::Loop { spec, .. } = &node.op else { continue };
            if shown.contains(&std::sync::Arc::as_ptr(spec)) {
                continue;
            }
            shown.push(std::sync::Arc::as_ptr(spec));
            out.push_str(&format!("loop@{:x} body ({}):\n", loop_id(spec), spec.summary()));
            for line in spec.body.to_text().lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }
}

// =============================================================================================
// Meaning and gradient, op by op.
//
// `eval` and `vjp` are each one `match` over `Op` with no `_` arm: a new op does not compile
// until it says what it computes and how its gradient flows. The arms call the small per-op
// functions below, forward beside backward, each pair under a one-line statement of the math
// (g = dL/dy is the upstream gradient, x the operands, y the op's own output).
// =============================================================================================

/// What evaluating a leaf needs besides its operands: the bound inputs and parameters and the
/// run-time size of every symbolic dimension (indexed by `SymId`; `None` if unbound).
pub struct Env<'a> {
    pub inputs: &'a [Tensor],
    pub params: &'a [Tensor],
    pub symbols: &'a [Option<usize>],
}

/// The value of `op` applied to `x`, in f64. `shape` is the node's shape with its symbols bound;
/// leaves that carry no data of their own (literals) take it from there.
pub fn eval(op: &Op, x: &[&Tensor], shape: &[usize], env: &Env) -> Result<Tensor, String> {
    use Op::*;
    match op {
        Input { index } => input_eval(env.inputs, *index, "input"),
        Param { index } => input_eval(env.params, *index, "parameter"),
        Const { value } => Ok(Tensor::scalar(*value)),
        Literal { values } => literal_eval(values, shape),
        DimSize { dim } => dim_size_eval(*dim, env),
        Neg => Ok(map(x[0], |v| -v)),
        Exp => Ok(map(x[0], f64::exp)),
        Log => Ok(map(x[0], f64::ln)),
        Sqrt => Ok(map(x[0], f64::sqrt)),
        Abs => Ok(map(x[0], f64::abs)),
        Sign => Ok(map(x[0], sign)),
        Tanh => Ok(map(x[0], f64::tanh)),
        Sigmoid => Ok(map(x[0], sigmoid)),
        Relu => Ok(map(x[0], relu)),
        LeakyRelu { alpha } => Ok(map(x[0], |v| leaky_relu(v, *alpha))),
        Elu { alpha } => Ok(map(x[0], |v| elu(v, *alpha))),
        Softplus => Ok(map(x[0], softplus)),
        Erf => Ok(map(x[0], erf)),
        Clip { lo, hi } => Ok(map(x[0], |v| clip(v, *lo, *hi))),
        Add => zip(x[0], x[1], |a, b| a + b),
        Sub => zip(x[0], x[1], |a, b| a - b),
        Mul => zip(x[0], x[1], |a, b| a * b),
        Div => zip(x[0], x[1], |a, b| a / b),
        Pow => zip(x[0], x[1], f64::powf),
        Max => zip(x[0], x[1], max_left),
        Min => zip(x[0], x[1], min_left),
        GreaterEq => zip(x[0], x[1], |a, b| if a >= b { 1.0 } else { 0.0 }),
        Greater => zip(x[0], x[1], greater),
        Equal => zip(x[0], x[1], equal),
        Where => where_eval(x, shape),
        Broadcast { .. } => broadcast_eval(x[0], shape),
        Reshape { .. } => reshape_eval(x[0], shape),
        Transpose { perm } => transpose_eval(x[0], perm),
        Slice { axis, start, len, step } => slice_eval(x[0], *axis, *start, *len, *step),
        Pad { axis, before, after, step } => pad_eval(x[0], *axis, *before, *after, *step),
        Reverse { axis } => reverse_eval(x[0], *axis),
        Concat { axis } => concat_eval(x, *axis),
        Gather { axis } => gather_eval(x[0], x[1], *axis),
        ScatterAdd { axis, size } => scatter_add_eval(x[0], x[1], *axis, *size),
        Sum { axes } => sum_eval(x[0], axes),
        ReduceMax { axes } => reduce_max_eval(x[0], axes),
        ArgMaxMask { axis } => argmax_mask_eval(x[0], *axis),
        OneHot { classes } => one_hot_eval(x[0], *classes),
        MatMul { transpose_a, transpose_b, batch, contract } => {
            matmul_eval(x[0], x[1], *transpose_a, *transpose_b, *batch, *contract)
        }
        LogSoftmax { axis } => log_softmax_eval(x[0], *axis),
        Conv2d { stride, pad } => conv2d_eval(x[0], x[1], *stride, *pad),
        Conv2dInputGrad { stride, pad, height, width } => {
            conv2d_input_grad_eval(x[0], x[1], *stride, *pad, *height, *width)
        }
        Conv2dFilterGrad { stride, pad, kernel_h, kernel_w } => {
            conv2d_filter_grad_eval(x[0], x[1], *stride, *pad, *kernel_h, *kernel_w)
        }
        MaxPool2d { size, stride } => maxpool2d_eval(x[0], *size, *stride),
        MaxPool2dGrad { size, stride } => maxpool2d_grad_eval(x[0], x[1], *size, *stride),
        AvgPool2d { size, stride } => avgpool2d_eval(x[0], *size, *stride),
        AvgPool2dGrad { size, stride, height, width } => avgpool2d_grad_eval(x[0], *size, *stride, *height, *width),
        // The body is a graph: `interp` runs it step by step.
        Loop { .. } => Err("a loop is evaluated by the interpreter, which runs its body".into()),
        RandomUniform { stream, .. } => random_uniform_eval(x[0], *stream, shape),
    }
}

/// One gradient per operand; `None` where no gradient flows (or the operand is not wanted).
pub type Grads = Result<Vec<Option<NodeId>>, String>;

/// The vector-Jacobian product of `op`: given `g` = dL/dy for `y = op(x)`, IR nodes computing
/// dL/dx for each operand. Rules only append nodes (so the backward graph can be printed,
/// optimised, differentiated again and compiled) and never build a Jacobian. A gradient of a
/// broadcasting op may have the output's shape: the driver (`autodiff`) sums it back to the
/// operand's shape and adds up the gradients of values used more than once.
pub fn vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId, op: &Op) -> Grads {
    use Op::*;
    match op {
        Input { .. } | Param { .. } | Const { .. } | Literal { .. } | DimSize { .. } => Ok(vec![]),
        Neg => neg_vjp(cx, g),
        Exp => exp_vjp(cx, g, y),
        Log => log_vjp(cx, g, x),
        Sqrt => sqrt_vjp(cx, g, y),
        Abs => abs_vjp(cx, g, x),
        Tanh => tanh_vjp(cx, g, y),
        Sigmoid => sigmoid_vjp(cx, g, y),
        Relu => relu_vjp(cx, g, y),
        LeakyRelu { alpha } => leaky_relu_vjp(cx, g, x, *alpha),
        Elu { alpha } => elu_vjp(cx, g, x, *alpha),
        Softplus => softplus_vjp(cx, g, x),
        Erf => erf_vjp(cx, g, x),
        Clip { lo, hi } => clip_vjp(cx, g, x, *lo, *hi),
        Where => where_vjp(cx, g, x),
        Add => add_vjp(g),
        Sub => sub_vjp(cx, g),
        Mul => mul_vjp(cx, g, x),
        Div => div_vjp(cx, g, x, y),
        Pow => pow_vjp(cx, g, x, y),
        Max => max_vjp(cx, g, x),
        Min => min_vjp(cx, g, x),
        // Piecewise constant: zero gradient almost everywhere, none at the steps.
        Sign => Ok(vec![None]),
        GreaterEq | Greater | Equal => Ok(vec![None, None]),
        ArgMaxMask { .. } => Ok(vec![None]),
        OneHot { .. } => Ok(vec![None]),
        Broadcast { .. } => broadcast_vjp(cx, g, x),
        Reshape { .. } => reshape_vjp(cx, g, x),
        Transpose { perm } => transpose_vjp(cx, g, perm),
        Slice { axis, start, len, step } => slice_vjp(cx, g, x, *axis, *start, *len, *step),
        Pad { axis, before, step, .. } => pad_vjp(cx, g, x, *axis, *before, *step),
        Reverse { axis } => reverse_vjp(cx, g, *axis),
        Concat { axis } => concat_vjp(cx, g, x, *axis),
        Gather { axis } => gather_vjp(cx, g, x, *axis),
        ScatterAdd { axis, .. } => scatter_add_vjp(cx, g, x, *axis),
        Sum { axes } => sum_vjp(cx, g, x, axes),
        ReduceMax { axes } => reduce_max_vjp(cx, g, x, y, axes),
        MatMul { transpose_a, transpose_b, batch, contract } => {
            matmul_vjp(cx, g, x, *transpose_a, *transpose_b, *batch, *contract)
        }
        LogSoftmax { axis } => log_softmax_vjp(cx, g, y, *axis),
        Conv2d { stride, pad } => conv2d_vjp(cx, g, x, *stride, *pad),
        Conv2dInputGrad { stride, pad, .. } => conv2d_input_grad_vjp(cx, g, x, *stride, *pad),
        Conv2dFilterGrad { stride, pad, .. } => conv2d_filter_grad_vjp(cx, g, x, *stride, *pad),
        MaxPool2d { size, stride } => maxpool2d_vjp(cx, g, x, *size, *stride),
        MaxPool2dGrad { size, stride } => maxpool2d_grad_vjp(cx, g, x, *size, *stride),
        AvgPool2d { size, stride } => avgpool2d_vjp(cx, g, x, *size, *stride),
        AvgPool2dGrad { size, stride, .. } => avgpool2d_grad_vjp(cx, g, *size, *stride),
        // All results of a loop are differentiated together, by a backward loop.
        Loop { .. } => Err("a loop's gradient is built by autodiff::loops".into()),
        RandomUniform { .. } => random_uniform_vjp(x),
    }
}

/// Builds the nodes of one VJP rule: each method appends one node to the graph, carrying the
/// source span of the forward node being differentiated.
pub struct Vjp<'a> {
    pub graph: &'a mut Graph,
    pub span: Option<Span>,
}

impl Vjp<'_> {
    /// Append `op(inputs)`; a shape error here is a bug in a rule, reported with the op's name.
    pub fn op(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId, String> {
        match self.graph.add(op.clone(), inputs) {
            Ok(id) => {
                self.graph.nodes[id.index()].span = self.span;
                Ok(id)
            }
            Err(e) => {
                let shapes: Vec<&Shape> = inputs.iter().map(|&i| self.graph.shape(i)).collect();
                Err(format!("{}: {}", describe(&op, self.graph), e.message(self.graph, &shapes)))
            }
        }
    }

    pub fn shape(&self, id: NodeId) -> Shape {
        self.graph.shape(id).clone()
    }

    pub fn constant(&mut self, value: f64) -> NodeId {
        let id = self.graph.constant(value);
        self.graph.nodes[id.index()].span = self.span;
        id
    }

    pub fn neg(&mut self, a: NodeId) -> Result<NodeId, String> {
        self.op(Op::Neg, &[a])
    }
    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, String> {
        self.op(Op::Add, &[a, b])
    }
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, String> {
        self.op(Op::Sub, &[a, b])
    }
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, String> {
        self.op(Op::Mul, &[a, b])
    }
    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, String> {
        self.op(Op::Div, &[a, b])
    }
    pub fn reshape(&mut self, a: NodeId, shape: Shape) -> Result<NodeId, String> {
        self.op(Op::Reshape { shape }, &[a])
    }
    pub fn broadcast(&mut self, a: NodeId, shape: Shape) -> Result<NodeId, String> {
        self.op(Op::Broadcast { shape }, &[a])
    }
    pub fn matmul(&mut self, a: NodeId, b: NodeId, transpose_a: bool, transpose_b: bool) -> Result<NodeId, String> {
        self.op(Op::matmul(transpose_a, transpose_b), &[a, b])
    }

    /// `value` broadcast to `shape` (a constant when `shape` is a scalar).
    pub fn fill(&mut self, value: f64, shape: Shape) -> Result<NodeId, String> {
        let c = self.constant(value);
        if shape.is_empty() {
            Ok(c)
        } else {
            self.broadcast(c, shape)
        }
    }

    /// Sum `a` over `axes`, keeping them as unit axes so the result broadcasts against `a`.
    pub fn sum_keepdims(&mut self, a: NodeId, axes: &[usize]) -> Result<NodeId, String> {
        let shape = self.shape(a);
        let s = self.op(Op::Sum { axes: axes.to_vec() }, &[a])?;
        let kept = shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { Dim::Known(1) } else { d }).collect();
        self.reshape(s, kept)
    }

    /// Un-broadcast: sum a gradient of a broadcast result back to the operand's `shape`, over
    /// the axes broadcasting prepended or stretched from 1. Unchanged when the shapes agree.
    pub fn sum_to(&mut self, grad: NodeId, shape: &Shape) -> Result<NodeId, String> {
        let from = self.shape(grad);
        if &from == shape {
            return Ok(grad);
        }
        if from.len() < shape.len() {
            return Err(format!(
                "cannot sum a gradient of shape {} to {}",
                self.graph.shape_str(&from),
                self.graph.shape_str(shape)
            ));
        }
        let lead = from.len() - shape.len();
        let axes: Vec<usize> = (0..from.len())
            .filter(|&i| i < lead || (shape[i - lead] == Dim::Known(1) && from[i] != Dim::Known(1)))
            .collect();
        let summed = if axes.is_empty() { grad } else { self.op(Op::Sum { axes }, &[grad])? };
        if self.graph.shape(summed) == shape {
            Ok(summed)
        } else {
            self.reshape(summed, shape.clone())
        }
    }
}

// ---- leaves: no operands, so no gradient rule -------------------------------------------------

fn input_eval(tensors: &[Tensor], index: usize, what: &str) -> Result<Tensor, String> {
    tensors.get(index).cloned().ok_or_else(|| format!("no value bound for {what} {index}"))
}

fn literal_eval(values: &[f64], shape: &[usize]) -> Result<Tensor, String> {
    if values.len() != numel(shape) {
        return Err(format!("a literal of {} values cannot have shape {shape:?}", values.len()));
    }
    Ok(Tensor::new(shape.to_vec(), values.to_vec()))
}

fn dim_size_eval(dim: Dim, env: &Env) -> Result<Tensor, String> {
    let n = match dim {
        Dim::Known(n) => n,
        Dim::Sym(s) => env.symbols.get(s.0 as usize).copied().flatten().ok_or("the size of an unbound symbol")?,
    };
    Ok(Tensor::scalar(n as f64))
}
