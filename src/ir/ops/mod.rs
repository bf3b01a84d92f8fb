//! Per op, side by side: shape rule, meaning (evaluation) and vector-Jacobian product.
//!
//! Input: an `Op` and its operands; output: the result's shape, its value (for the reference
//! interpreter), or the IR nodes of its gradient (for `autodiff`).

use crate::diag::Span;
use crate::ir::graph::{Dim, Graph, NodeId, Op, Shape};
use crate::ir::tensor::Tensor;

/// Why an op cannot take operands of the given shapes. The checker turns these into
/// diagnostics that label the operands in the user's source.
#[derive(Clone, PartialEq, Debug)]
pub enum ShapeError {
    /// Dimension `lhs_axis` of operand 0 must equal (or broadcast with) dimension `rhs_axis`
    /// of operand 1, and does not.
    Mismatch { lhs_axis: usize, rhs_axis: usize, what: &'static str },
    /// Operand `operand` has the wrong number of axes.
    Rank { operand: usize, expected: &'static str, got: usize },
    /// Anything else, said in words.
    Invalid(String),
}

impl ShapeError {
    pub fn message(&self, g: &Graph, shapes: &[&Shape]) -> String {
        match self {
            ShapeError::Mismatch { lhs_axis, rhs_axis, what } => format!(
                "{what}: dimension {} of {} does not match dimension {} of {}",
                g.dim_name(shapes[0][*lhs_axis]),
                g.shape_str(shapes[0]),
                g.dim_name(shapes[1][*rhs_axis]),
                g.shape_str(shapes[1]),
            ),
            ShapeError::Rank { operand, expected, got } => {
                format!("operand {} must have {expected} axes, has {got}", operand + 1)
            }
            ShapeError::Invalid(s) => s.clone(),
        }
    }
}

fn rank(shapes: &[&Shape], operand: usize, expected: usize, name: &'static str) -> Result<(), ShapeError> {
    let got = shapes[operand].len();
    if got == expected {
        Ok(())
    } else {
        Err(ShapeError::Rank { operand, expected: name, got })
    }
}

/// Numpy broadcasting of two shapes: align from the right; equal dims or a 1 stretch.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Result<Shape, ShapeError> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let da = if i + a.len() >= n { Some(a[i + a.len() - n]) } else { None };
        let db = if i + b.len() >= n { Some(b[i + b.len() - n]) } else { None };
        out.push(match (da, db) {
            (Some(x), None) | (None, Some(x)) => x,
            (Some(x), Some(y)) if x == y => x,
            (Some(Dim::Known(1)), Some(y)) => y,
            (Some(x), Some(Dim::Known(1))) => x,
            (Some(_), Some(_)) => {
                return Err(ShapeError::Mismatch {
                    lhs_axis: i + a.len() - n,
                    rhs_axis: i + b.len() - n,
                    what: "cannot broadcast",
                })
            }
            (None, None) => unreachable!("i < max(len a, len b)"),
        });
    }
    Ok(out)
}

fn known(d: Dim, what: &str) -> Result<usize, ShapeError> {
    d.known().ok_or_else(|| ShapeError::Invalid(format!("{what} must be a known number, not a symbol")))
}

/// Output size of a sliding window: (n - f + 2p) / s + 1, which must be whole.
/// `what` names the axis ("height", "width") for the message.
pub fn window_out(n: usize, f: usize, pad: usize, stride: usize, what: &str) -> Result<usize, ShapeError> {
    let span = n + 2 * pad;
    if stride == 0 {
        return Err(ShapeError::Invalid("stride must be at least 1".into()));
    }
    if f == 0 || f > span {
        return Err(ShapeError::Invalid(format!(
            "the {f}-wide window does not fit the input {what} {n} with padding {pad}: N - F + 2P = {n} - {f} + 2·{pad} < 0"
        )));
    }
    if !(span - f).is_multiple_of(stride) {
        return Err(ShapeError::Invalid(format!(
            "output {what} (N - F + 2P)/S + 1 = ({n} - {f} + 2·{pad})/{stride} + 1 = {}/{stride} + 1 is not a whole number",
            span - f
        )));
    }
    Ok((span - f) / stride + 1)
}

/// The shape of `op` applied to operands of `shapes`, or why it cannot be applied.
pub fn infer_shape(op: &Op, shapes: &[&Shape], g: &Graph) -> Result<Shape, ShapeError> {
    use Op::*;
    let arity = |n: usize| -> Result<(), ShapeError> {
        if shapes.len() == n {
            Ok(())
        } else {
            Err(ShapeError::Invalid(format!("{} takes {n} operands, got {}", describe(op, g), shapes.len())))
        }
    };
    let check_axis = |axis: usize, r: usize| -> Result<(), ShapeError> {
        if axis < r {
            Ok(())
        } else {
            Err(ShapeError::Invalid(format!("axis {axis} is out of range for a tensor with {r} axes")))
        }
    };
    match op {
        Input { index } => {
            arity(0)?;
            Ok(g.inputs.get(*index).ok_or_else(|| ShapeError::Invalid("no such input".into()))?.shape.clone())
        }
        Param { index } => {
            arity(0)?;
            Ok(g.params.get(*index).ok_or_else(|| ShapeError::Invalid("no such parameter".into()))?.shape.clone())
        }
        Const { .. } | DimSize { .. } => {
            arity(0)?;
            Ok(vec![])
        }
        Literal { .. } => Err(ShapeError::Invalid("a literal's shape is given when it is pushed".into())),
        Neg | Exp | Log | Sqrt | Abs | Sign | Tanh | Sigmoid => {
            arity(1)?;
            Ok(shapes[0].clone())
        }
        Add | Sub | Mul | Div | Pow | Max | Min | GreaterEq => {
            arity(2)?;
            broadcast_shapes(shapes[0], shapes[1])
        }
        Broadcast { shape } => {
            arity(1)?;
            let out = broadcast_shapes(shapes[0], shape)?;
            if &out != shape {
                return Err(ShapeError::Invalid(format!(
                    "cannot broadcast {} to {}",
                    g.shape_str(shapes[0]),
                    g.shape_str(shape)
                )));
            }
            Ok(out)
        }
        Reshape { shape } => {
            arity(1)?;
            // Equal element counts: compare the known parts and the symbols separately.
            let split = |s: &Shape| {
                let mut syms: Vec<Dim> = s.iter().copied().filter(|d| d.known().is_none()).collect();
                syms.sort_by_key(|d| format!("{d:?}"));
                let prod: Option<usize> = s.iter().filter_map(|d| d.known()).try_fold(1usize, |a, n| a.checked_mul(n));
                (syms, prod)
            };
            if split(shapes[0]) != split(shape) {
                return Err(ShapeError::Invalid(format!(
                    "cannot reshape {} into {}: the element counts differ",
                    g.shape_str(shapes[0]),
                    g.shape_str(shape)
                )));
            }
            Ok(shape.clone())
        }
        Transpose { perm } => {
            arity(1)?;
            let mut seen = perm.clone();
            seen.sort_unstable();
            if seen != (0..shapes[0].len()).collect::<Vec<_>>() {
                return Err(ShapeError::Invalid(format!(
                    "{perm:?} is not a permutation of the {} axes",
                    shapes[0].len()
                )));
            }
            Ok(perm.iter().map(|&p| shapes[0][p]).collect())
        }
        Slice { axis, start, len } => {
            arity(1)?;
            check_axis(*axis, shapes[0].len())?;
            let n = known(shapes[0][*axis], "a sliced dimension")?;
            if start + len > n {
                return Err(ShapeError::Invalid(format!(
                    "index {} is out of range for dimension of size {n}",
                    start + len - 1
                )));
            }
            let mut out = shapes[0].clone();
            out[*axis] = Dim::Known(*len);
            Ok(out)
        }
        Pad { axis, before, after } => {
            arity(1)?;
            check_axis(*axis, shapes[0].len())?;
            let n = known(shapes[0][*axis], "a padded dimension")?;
            let mut out = shapes[0].clone();
            out[*axis] = Dim::Known(n + before + after);
            Ok(out)
        }
        Sum { axes } => {
            arity(1)?;
            for &a in axes {
                check_axis(a, shapes[0].len())?;
            }
            Ok(shapes[0].iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect())
        }
        ReduceMax { axis } => {
            arity(1)?;
            check_axis(*axis, shapes[0].len())?;
            let mut out = shapes[0].clone();
            out.remove(*axis);
            Ok(out)
        }
        ArgMaxMask { axis } | LogSoftmax { axis } => {
            arity(1)?;
            check_axis(*axis, shapes[0].len())?;
            Ok(shapes[0].clone())
        }
        OneHot { classes } => {
            arity(1)?;
            let mut out = shapes[0].clone();
            out.push(Dim::Known(*classes));
            Ok(out)
        }
        MatMul { transpose_a, transpose_b } => {
            arity(2)?;
            rank(shapes, 0, 2, "2")?;
            rank(shapes, 1, 2, "2")?;
            let (m, ka) = if *transpose_a { (1, 0) } else { (0, 1) };
            let (kb, n) = if *transpose_b { (1, 0) } else { (0, 1) };
            if shapes[0][ka] != shapes[1][kb] {
                return Err(ShapeError::Mismatch { lhs_axis: ka, rhs_axis: kb, what: "matmul" });
            }
            Ok(vec![shapes[0][m], shapes[1][n]])
        }
        Conv2d { stride, pad } => {
            arity(2)?;
            rank(shapes, 0, 4, "4 ([N, C, H, W])")?;
            rank(shapes, 1, 4, "4 ([F, C, KH, KW])")?;
            if shapes[0][1] != shapes[1][1] {
                return Err(ShapeError::Mismatch { lhs_axis: 1, rhs_axis: 1, what: "conv2d channels" });
            }
            let oh = window_out(
                known(shapes[0][2], "height")?,
                known(shapes[1][2], "kernel height")?,
                *pad,
                *stride,
                "height",
            )?;
            let ow = window_out(
                known(shapes[0][3], "width")?,
                known(shapes[1][3], "kernel width")?,
                *pad,
                *stride,
                "width",
            )?;
            Ok(vec![shapes[0][0], shapes[1][0], Dim::Known(oh), Dim::Known(ow)])
        }
        Conv2dInputGrad { stride, pad, height, width } => {
            // (g [N,F,OH,OW], w [F,C,KH,KW]): g must be what conv2d of an [N,C,height,width]
            // input with w produces.
            arity(2)?;
            rank(shapes, 0, 4, "4 ([N, F, OH, OW])")?;
            rank(shapes, 1, 4, "4 ([F, C, KH, KW])")?;
            if shapes[0][1] != shapes[1][0] {
                return Err(ShapeError::Mismatch { lhs_axis: 1, rhs_axis: 0, what: "conv2d_input_grad filters" });
            }
            let (kh, kw) = (known(shapes[1][2], "kernel height")?, known(shapes[1][3], "kernel width")?);
            window_matches(shapes[0][2], window_out(*height, kh, *pad, *stride, "height")?, "height")?;
            window_matches(shapes[0][3], window_out(*width, kw, *pad, *stride, "width")?, "width")?;
            Ok(vec![shapes[0][0], shapes[1][1], Dim::Known(*height), Dim::Known(*width)])
        }
        Conv2dFilterGrad { stride, pad, kernel_h, kernel_w } => {
            // (x [N,C,H,W], g [N,F,OH,OW]): g must be what conv2d of x with [F,C,kh,kw] produces.
            arity(2)?;
            rank(shapes, 0, 4, "4 ([N, C, H, W])")?;
            rank(shapes, 1, 4, "4 ([N, F, OH, OW])")?;
            if shapes[0][0] != shapes[1][0] {
                return Err(ShapeError::Mismatch { lhs_axis: 0, rhs_axis: 0, what: "conv2d_filter_grad batch" });
            }
            let (h, w) = (known(shapes[0][2], "height")?, known(shapes[0][3], "width")?);
            window_matches(shapes[1][2], window_out(h, *kernel_h, *pad, *stride, "height")?, "height")?;
            window_matches(shapes[1][3], window_out(w, *kernel_w, *pad, *stride, "width")?, "width")?;
            Ok(vec![shapes[1][1], shapes[0][1], Dim::Known(*kernel_h), Dim::Known(*kernel_w)])
        }
        MaxPool2d { size, stride } | AvgPool2d { size, stride } => {
            arity(1)?;
            rank(shapes, 0, 4, "4 ([N, C, H, W])")?;
            let oh = window_out(known(shapes[0][2], "height")?, *size, 0, *stride, "height")?;
            let ow = window_out(known(shapes[0][3], "width")?, *size, 0, *stride, "width")?;
            Ok(vec![shapes[0][0], shapes[0][1], Dim::Known(oh), Dim::Known(ow)])
        }
        MaxPool2dGrad { size, stride } => {
            // (x [N,C,H,W], g): g must have the shape of maxpool2d(x).
            arity(2)?;
            let pooled = infer_shape(&MaxPool2d { size: *size, stride: *stride }, &shapes[..1], g)?;
            if &pooled != shapes[1] {
                return Err(ShapeError::Invalid(format!(
                    "maxpool2d_grad: the gradient {} does not have the pooled shape {}",
                    g.shape_str(shapes[1]),
                    g.shape_str(&pooled)
                )));
            }
            Ok(shapes[0].clone())
        }
        AvgPool2dGrad { size, stride, height, width } => {
            // g [N,C,OH,OW] must be what avgpool2d of an [N,C,height,width] input produces.
            arity(1)?;
            rank(shapes, 0, 4, "4 ([N, C, OH, OW])")?;
            window_matches(shapes[0][2], window_out(*height, *size, 0, *stride, "height")?, "height")?;
            window_matches(shapes[0][3], window_out(*width, *size, 0, *stride, "width")?, "width")?;
            Ok(vec![shapes[0][0], shapes[0][1], Dim::Known(*height), Dim::Known(*width)])
        }
    }
}

/// A gradient op's operand must have the output size of the window it reverses.
fn window_matches(got: Dim, expected: usize, what: &str) -> Result<(), ShapeError> {
    if got == Dim::Known(expected) {
        Ok(())
    } else {
        Err(ShapeError::Invalid(format!("the gradient's {what} must be {expected}, the forward op's output {what}")))
    }
}

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
        Add => "add".into(),
        Sub => "sub".into(),
        Mul => "mul".into(),
        Div => "div".into(),
        Pow => "pow".into(),
        Max => "max".into(),
        Min => "min".into(),
        GreaterEq => "greater_eq".into(),
        Broadcast { shape } => format!("broadcast {}", g.shape_str(shape)),
        Reshape { shape } => format!("reshape {}", g.shape_str(shape)),
        Transpose { perm } => format!("transpose {perm:?}"),
        Slice { axis, start, len } => format!("slice axis={axis} {start}..{}", start + len),
        Pad { axis, before, after } => format!("pad axis={axis} {before},{after}"),
        Sum { axes } => format!("sum axes={axes:?}"),
        ReduceMax { axis } => format!("reduce_max axis={axis}"),
        ArgMaxMask { axis } => format!("argmax_mask axis={axis}"),
        OneHot { classes } => format!("one_hot {classes}"),
        MatMul { transpose_a, transpose_b } => {
            format!("matmul{}{}", if *transpose_a { " aT" } else { "" }, if *transpose_b { " bT" } else { "" })
        }
        LogSoftmax { axis } => format!("log_softmax axis={axis}"),
        Conv2d { stride, pad } => format!("conv2d stride={stride} pad={pad}"),
        Conv2dInputGrad { stride, pad, .. } => format!("conv2d_input_grad stride={stride} pad={pad}"),
        Conv2dFilterGrad { stride, pad, .. } => format!("conv2d_filter_grad stride={stride} pad={pad}"),
        MaxPool2d { size, stride } => format!("maxpool2d size={size} stride={stride}"),
        MaxPool2dGrad { size, stride } => format!("maxpool2d_grad size={size} stride={stride}"),
        AvgPool2d { size, stride } => format!("avgpool2d size={size} stride={stride}"),
        AvgPool2dGrad { size, stride, .. } => format!("avgpool2d_grad size={size} stride={stride}"),
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
        Add => zip(x[0], x[1], |a, b| a + b),
        Sub => zip(x[0], x[1], |a, b| a - b),
        Mul => zip(x[0], x[1], |a, b| a * b),
        Div => zip(x[0], x[1], |a, b| a / b),
        Pow => zip(x[0], x[1], f64::powf),
        Max => zip(x[0], x[1], max_left),
        Min => zip(x[0], x[1], min_left),
        GreaterEq => zip(x[0], x[1], |a, b| if a >= b { 1.0 } else { 0.0 }),
        Broadcast { .. } => broadcast_eval(x[0], shape),
        Reshape { .. } => reshape_eval(x[0], shape),
        Transpose { perm } => transpose_eval(x[0], perm),
        Slice { axis, start, len } => slice_eval(x[0], *axis, *start, *len),
        Pad { axis, before, after } => pad_eval(x[0], *axis, *before, *after),
        Sum { axes } => sum_eval(x[0], axes),
        ReduceMax { axis } => reduce_max_eval(x[0], *axis),
        ArgMaxMask { axis } => argmax_mask_eval(x[0], *axis),
        OneHot { classes } => one_hot_eval(x[0], *classes),
        MatMul { transpose_a, transpose_b } => matmul_eval(x[0], x[1], *transpose_a, *transpose_b),
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
        Add => add_vjp(g),
        Sub => sub_vjp(cx, g),
        Mul => mul_vjp(cx, g, x),
        Div => div_vjp(cx, g, x, y),
        Pow => pow_vjp(cx, g, x, y),
        Max => max_vjp(cx, g, x, y),
        Min => min_vjp(cx, g, x, y),
        // Piecewise constant: zero gradient almost everywhere, none at the steps.
        Sign => Ok(vec![None]),
        GreaterEq => Ok(vec![None, None]),
        ArgMaxMask { .. } => Ok(vec![None]),
        OneHot { .. } => Ok(vec![None]),
        Broadcast { .. } => broadcast_vjp(cx, g, x),
        Reshape { .. } => reshape_vjp(cx, g, x),
        Transpose { perm } => transpose_vjp(cx, g, perm),
        Slice { axis, start, len } => slice_vjp(cx, g, x, *axis, *start, *len),
        Pad { axis, before, .. } => pad_vjp(cx, g, x, *axis, *before),
        Sum { axes } => sum_vjp(cx, g, x, axes),
        ReduceMax { axis } => reduce_max_vjp(cx, g, x, *axis),
        MatMul { transpose_a, transpose_b } => matmul_vjp(cx, g, x, *transpose_a, *transpose_b),
        LogSoftmax { axis } => log_softmax_vjp(cx, g, y, *axis),
        Conv2d { stride, pad } => conv2d_vjp(cx, g, x, *stride, *pad),
        Conv2dInputGrad { stride, pad, .. } => conv2d_input_grad_vjp(cx, g, x, *stride, *pad),
        Conv2dFilterGrad { stride, pad, .. } => conv2d_filter_grad_vjp(cx, g, x, *stride, *pad),
        MaxPool2d { size, stride } => maxpool2d_vjp(cx, g, x, *size, *stride),
        MaxPool2dGrad { size, stride } => maxpool2d_grad_vjp(cx, g, x, *size, *stride),
        AvgPool2d { size, stride } => avgpool2d_vjp(cx, g, x, *size, *stride),
        AvgPool2dGrad { size, stride, .. } => avgpool2d_grad_vjp(cx, g, *size, *stride),
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
        self.op(Op::MatMul { transpose_a, transpose_b }, &[a, b])
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

// ---- elementwise, one operand (eval is the scalar function in `eval`) -----------------------

/// y = -x                      dx = -g
fn neg_vjp(cx: &mut Vjp, g: NodeId) -> Grads {
    Ok(vec![Some(cx.neg(g)?)])
}

/// y = e^x                     dx = g*y, from the output
fn exp_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    Ok(vec![Some(cx.mul(g, y)?)])
}

/// y = ln x                    dx = g/x
fn log_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    Ok(vec![Some(cx.div(g, x[0])?)])
}

/// y = sqrt x                  dx = g/(2y), from the output
fn sqrt_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    let two = cx.constant(2.0);
    let two_y = cx.mul(two, y)?;
    Ok(vec![Some(cx.div(g, two_y)?)])
}

/// y = |x|                     dx = g*sign(x)   (0 at x = 0)
fn abs_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let s = cx.op(Op::Sign, &[x[0]])?;
    Ok(vec![Some(cx.mul(g, s)?)])
}

/// y = sign x                  no gradient (zero almost everywhere)
fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v // keeps 0 and NaN
    }
}

/// y = tanh x                  dx = g*(1 - y²), from the output
fn tanh_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    let one = cx.constant(1.0);
    let y2 = cx.mul(y, y)?;
    let slope = cx.sub(one, y2)?;
    Ok(vec![Some(cx.mul(g, slope)?)])
}

/// y = 1/(1 + e^-x)            dx = g*y*(1 - y), from the output
fn sigmoid(v: f64) -> f64 {
    // Two forms so that e^(-v) never overflows.
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

fn sigmoid_vjp(cx: &mut Vjp, g: NodeId, y: NodeId) -> Grads {
    let one = cx.constant(1.0);
    let one_minus_y = cx.sub(one, y)?;
    let gy = cx.mul(g, y)?;
    Ok(vec![Some(cx.mul(gy, one_minus_y)?)])
}

// ---- elementwise, two operands (numpy broadcasting; the driver un-broadcasts) -------------

/// y = a + b                   da = g, db = g: the add gate distributes
fn add_vjp(g: NodeId) -> Grads {
    Ok(vec![Some(g), Some(g)])
}

/// y = a - b                   da = g, db = -g
fn sub_vjp(cx: &mut Vjp, g: NodeId) -> Grads {
    Ok(vec![Some(g), Some(cx.neg(g)?)])
}

/// y = a * b                   da = g*b, db = g*a: the mul gate switches its inputs
fn mul_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    Ok(vec![Some(cx.mul(g, x[1])?), Some(cx.mul(g, x[0])?)])
}

/// y = a / b                   da = g/b, db = -g*a/b² = -(g*y)/b
fn div_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    let da = cx.div(g, x[1])?;
    let gy = cx.mul(g, y)?;
    let gy_b = cx.div(gy, x[1])?;
    Ok(vec![Some(da), Some(cx.neg(gy_b)?)])
}

/// y = a^b                     da = g*b*a^(b-1), db = g*ln(a)*y
/// (the driver drops db's nodes unless b needs a gradient, so ln of a negative base is never
/// built for the common x^2)
fn pow_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    let (a, b) = (x[0], x[1]);
    let one = cx.constant(1.0);
    let b_minus_1 = cx.sub(b, one)?;
    let a_pow = cx.op(Op::Pow, &[a, b_minus_1])?;
    let slope = cx.mul(b, a_pow)?;
    let da = cx.mul(g, slope)?;
    let ln_a = cx.op(Op::Log, &[a])?;
    let gy = cx.mul(g, y)?;
    let db = cx.mul(gy, ln_a)?;
    Ok(vec![Some(da), Some(db)])
}

/// y = max(a, b)               da = g*[a >= b], db = g*(1 - [a >= b]): the max gate routes;
/// ties go to the left operand, so relu(x) = max(0, x) has relu'(0) = 0
fn max_left(a: f64, b: f64) -> f64 {
    if a >= b {
        a
    } else {
        b
    }
}

fn max_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    // [a >= b] = [a >= max(a, b)] for every a, b (NaN included): the mask reads the output,
    // which the forward pass keeps anyway, so relu's pre-activation need not be kept.
    let left = cx.op(Op::GreaterEq, &[x[0], y])?;
    route(cx, g, left)
}

/// The gradient `g` sent to the left operand where `left` is 1 and to the right one where it
/// is 0: g·m and g·(1 - m), exactly g or 0 for finite g (routed, never split). Each product
/// reads g once, so g fuses into it rather than being written to memory for two readers.
fn route(cx: &mut Vjp, g: NodeId, left: NodeId) -> Grads {
    let one = cx.constant(1.0);
    let right = cx.sub(one, left)?;
    Ok(vec![Some(cx.mul(g, left)?), Some(cx.mul(g, right)?)])
}

/// y = min(a, b)               da = g*[b >= a], db = g*(1 - [b >= a]); ties go to the left operand
fn min_left(a: f64, b: f64) -> f64 {
    if b >= a {
        a
    } else {
        b
    }
}

fn min_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], y: NodeId) -> Grads {
    // [b >= a] = [min(a, b) >= a] for every a, b (NaN included), as for max.
    let left = cx.op(Op::GreaterEq, &[y, x[0]])?;
    route(cx, g, left)
}

// ---- layout ---------------------------------------------------------------------------------

/// y = broadcast(x, shape)     dx = sum of g over the prepended and stretched axes
fn broadcast_eval(x: &Tensor, shape: &[usize]) -> Result<Tensor, String> {
    let target = broadcast_dims(&x.shape, shape)?;
    if target != shape {
        return Err(format!("cannot broadcast {:?} to {shape:?}", x.shape));
    }
    let data = broadcast_map(&x.shape, shape).into_iter().map(|i| x.data[i]).collect();
    Ok(Tensor::new(shape.to_vec(), data))
}

fn broadcast_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let shape = cx.shape(x[0]);
    Ok(vec![Some(cx.sum_to(g, &shape)?)])
}

/// y = reshape(x, shape)       dx = reshape(g, shape of x)
fn reshape_eval(x: &Tensor, shape: &[usize]) -> Result<Tensor, String> {
    if numel(shape) != x.numel() {
        return Err(format!("cannot reshape {:?} into {shape:?}", x.shape));
    }
    Ok(Tensor::new(shape.to_vec(), x.data.clone()))
}

fn reshape_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId]) -> Grads {
    let shape = cx.shape(x[0]);
    Ok(vec![Some(cx.reshape(g, shape)?)])
}

/// y = transpose(x, perm), y axis i = x axis perm[i]      dx = transpose(g, perm⁻¹)
fn transpose_eval(x: &Tensor, perm: &[usize]) -> Result<Tensor, String> {
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if sorted != (0..x.shape.len()).collect::<Vec<_>>() {
        return Err(format!("permutation {perm:?} of a tensor of shape {:?}", x.shape));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let xs = strides(&x.shape);
    let mut data = Vec::with_capacity(x.numel());
    for_each_index(&shape, |out| data.push(x.data[out.iter().zip(perm).map(|(&o, &p)| o * xs[p]).sum::<usize>()]));
    Ok(Tensor::new(shape, data))
}

fn transpose_vjp(cx: &mut Vjp, g: NodeId, perm: &[usize]) -> Grads {
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Ok(vec![Some(cx.op(Op::Transpose { perm: inverse }, &[g])?)])
}

/// y = x[.., start..start+len, ..] along axis             dx = pad(g) with zeros back to x's size
fn slice_eval(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    if start + len > n {
        return Err(format!("slice {start}..{} of an axis of size {n}", start + len));
    }
    let mut data = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let row = o * n * inner;
        data.extend_from_slice(&x.data[row + start * inner..row + (start + len) * inner]);
    }
    let mut shape = x.shape.clone();
    shape[axis] = len;
    Ok(Tensor::new(shape, data))
}

fn slice_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize, start: usize, len: usize) -> Grads {
    let n = cx.shape(x[0])[axis].known().ok_or("slice of a symbolic dimension")?;
    Ok(vec![Some(cx.op(Op::Pad { axis, before: start, after: n - start - len }, &[g])?)])
}

/// y = zeros(before) ++ x ++ zeros(after) along axis      dx = g[before..before+n]
fn pad_eval(x: &Tensor, axis: usize, before: usize, after: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = Vec::with_capacity(outer * (before + n + after) * inner);
    for o in 0..outer {
        data.extend(std::iter::repeat_n(0.0, before * inner));
        data.extend_from_slice(&x.data[o * n * inner..(o + 1) * n * inner]);
        data.extend(std::iter::repeat_n(0.0, after * inner));
    }
    let mut shape = x.shape.clone();
    shape[axis] = before + n + after;
    Ok(Tensor::new(shape, data))
}

fn pad_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize, before: usize) -> Grads {
    let len = cx.shape(x[0])[axis].known().ok_or("padding of a symbolic dimension")?;
    Ok(vec![Some(cx.op(Op::Slice { axis, start: before, len }, &[g])?)])
}

// ---- reductions -----------------------------------------------------------------------------

/// y = sum of x over axes      dx = broadcast(g with the axes back as 1s, shape of x)
fn sum_eval(x: &Tensor, axes: &[usize]) -> Result<Tensor, String> {
    if let Some(a) = axes.iter().find(|&&a| a >= x.shape.len()) {
        return Err(format!("axis {a} of a tensor of shape {:?}", x.shape));
    }
    let kept: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
    let shape: Vec<usize> = kept.iter().map(|&a| x.shape[a]).collect();
    let out_strides = strides(&shape);
    let mut data = vec![0.0; numel(&shape)];
    let mut i = 0;
    for_each_index(&x.shape, |idx| {
        data[kept.iter().zip(&out_strides).map(|(&a, &s)| idx[a] * s).sum::<usize>()] += x.data[i];
        i += 1;
    });
    Ok(Tensor::new(shape, data))
}

fn sum_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axes: &[usize]) -> Grads {
    let shape = cx.shape(x[0]);
    if axes.is_empty() {
        return Ok(vec![Some(g)]);
    }
    let kept = shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { Dim::Known(1) } else { d }).collect();
    let g_kept = cx.reshape(g, kept)?;
    Ok(vec![Some(cx.broadcast(g_kept, shape)?)])
}

/// y = max of x along axis     dx = g at the first maximum of each row, 0 elsewhere:
/// dx = argmax_mask(x) * g (g with the axis back as a 1, broadcast by the multiply)
fn reduce_max_eval(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for k in 0..inner {
            let row = (0..n).map(|j| x.data[(o * n + j) * inner + k]);
            data.push(row.fold(f64::NEG_INFINITY, max_left));
        }
    }
    let mut shape = x.shape.clone();
    shape.remove(axis);
    Ok(Tensor::new(shape, data))
}

fn reduce_max_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], axis: usize) -> Grads {
    let mask = cx.op(Op::ArgMaxMask { axis }, &[x[0]])?;
    let mut kept = cx.shape(x[0]);
    kept[axis] = Dim::Known(1);
    let g_kept = cx.reshape(g, kept)?;
    Ok(vec![Some(cx.mul(mask, g_kept)?)])
}

/// y = 1 at the first maximum along axis, else 0          no gradient
fn argmax_mask_eval(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = vec![0.0; x.numel()];
    for o in 0..outer {
        for k in 0..inner {
            let at = |j: usize| (o * n + j) * inner + k;
            if let Some(best) = first_max((0..n).map(|j| x.data[at(j)])) {
                data[at(best)] = 1.0;
            }
        }
    }
    Ok(Tensor::new(x.shape.clone(), data))
}

/// y[.., c] = 1 if x[..] == c  no gradient; class indices must be whole numbers in range
fn one_hot_eval(x: &Tensor, classes: usize) -> Result<Tensor, String> {
    let mut data = vec![0.0; x.numel() * classes];
    for (i, &c) in x.data.iter().enumerate() {
        if c.fract() != 0.0 || c < 0.0 || c >= classes as f64 {
            return Err(format!("class index {c} is not a whole number in 0..{classes}"));
        }
        data[i * classes + c as usize] = 1.0;
    }
    let mut shape = x.shape.clone();
    shape.push(classes);
    Ok(Tensor::new(shape, data))
}

// ---- linear algebra and neural-network kernels --------------------------------------------

/// y = op(a) @ op(b), op = transpose or not
///   y = A B:     dA = G Bᵀ,  dB = Aᵀ G        y = Aᵀ B:   dA = B Gᵀ,  dB = A G
///   y = A Bᵀ:    dA = G B,   dB = Gᵀ A        y = Aᵀ Bᵀ:  dA = Bᵀ Gᵀ, dB = Gᵀ Aᵀ
/// Each gradient is one matmul with transpose flags: no transpose is materialised.
fn matmul_eval(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor, String> {
    if a.shape.len() != 2 || b.shape.len() != 2 {
        return Err(format!("matmul of shapes {:?} and {:?}", a.shape, b.shape));
    }
    let (m, k) = if ta { (a.shape[1], a.shape[0]) } else { (a.shape[0], a.shape[1]) };
    let (k2, n) = if tb { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
    if k != k2 {
        return Err(format!("matmul inner dimensions {k} and {k2} differ"));
    }
    let a_at = |i: usize, p: usize| if ta { a.data[p * m + i] } else { a.data[i * k + p] };
    let b_at = |p: usize, j: usize| if tb { b.data[j * k + p] } else { b.data[p * n + j] };
    let mut data = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            data[i * n + j] = (0..k).map(|p| a_at(i, p) * b_at(p, j)).sum();
        }
    }
    Ok(Tensor::new(vec![m, n], data))
}

fn matmul_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], ta: bool, tb: bool) -> Grads {
    let (a, b) = (x[0], x[1]);
    let (da, db) = match (ta, tb) {
        (false, false) => (cx.matmul(g, b, false, true)?, cx.matmul(a, g, true, false)?),
        (true, false) => (cx.matmul(b, g, false, true)?, cx.matmul(a, g, false, false)?),
        (false, true) => (cx.matmul(g, b, false, false)?, cx.matmul(g, a, true, false)?),
        (true, true) => (cx.matmul(b, g, true, true)?, cx.matmul(g, a, true, true)?),
    };
    Ok(vec![Some(da), Some(db)])
}

/// y = x - max(x) - ln(sum(e^(x - max(x)))) along axis    dx = g - e^y * sum(g) along axis
fn log_softmax_eval(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    let (outer, n, inner) = split_axis(&x.shape, axis)?;
    let mut data = vec![0.0; x.numel()];
    for o in 0..outer {
        for k in 0..inner {
            let at = |j: usize| (o * n + j) * inner + k;
            let m = (0..n).map(|j| x.data[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let log_sum = (0..n).map(|j| (x.data[at(j)] - m).exp()).sum::<f64>().ln();
            for j in 0..n {
                data[at(j)] = x.data[at(j)] - m - log_sum;
            }
        }
    }
    Ok(Tensor::new(x.shape.clone(), data))
}

fn log_softmax_vjp(cx: &mut Vjp, g: NodeId, y: NodeId, axis: usize) -> Grads {
    let softmax = cx.op(Op::Exp, &[y])?;
    let g_sum = cx.sum_keepdims(g, &[axis])?;
    let spread = cx.mul(softmax, g_sum)?;
    Ok(vec![Some(cx.sub(g, spread)?)])
}

/// y[n,f,i,j] = Σ_c,a,b x[n,c, i*s+a-p, j*s+b-p] * w[f,c,a,b]   (zero outside x)
///   dx = conv2d_input_grad(g, w),  dw = conv2d_filter_grad(x, g)
fn conv2d_eval(x: &Tensor, w: &Tensor, stride: usize, pad: usize) -> Result<Tensor, String> {
    let [n, c, h, wd] = dims4(x)?;
    let [f, c2, kh, kw] = dims4(w)?;
    if c != c2 {
        return Err(format!("conv2d of {c} channels with filters of {c2}"));
    }
    let oh = window_out(h, kh, pad, stride, "height").map_err(invalid)?;
    let ow = window_out(wd, kw, pad, stride, "width").map_err(invalid)?;
    let mut y = Tensor::zeros(vec![n, f, oh, ow]);
    for_each_tap([n, f, oh, ow], [c, kh, kw], [h, wd], stride, pad, |t| {
        y.data[at4(&y.shape, t.n, t.f, t.i, t.j)] +=
            x.data[at4(&x.shape, t.n, t.c, t.r, t.q)] * w.data[at4(&w.shape, t.f, t.c, t.a, t.b)];
    });
    Ok(y)
}

fn conv2d_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], stride: usize, pad: usize) -> Grads {
    let (xs, ws) = (cx.shape(x[0]), cx.shape(x[1]));
    let (height, width) = (known4(&xs, 2)?, known4(&xs, 3)?);
    let (kernel_h, kernel_w) = (known4(&ws, 2)?, known4(&ws, 3)?);
    let dx = cx.op(Op::Conv2dInputGrad { stride, pad, height, width }, &[g, x[1]])?;
    let dw = cx.op(Op::Conv2dFilterGrad { stride, pad, kernel_h, kernel_w }, &[x[0], g])?;
    Ok(vec![Some(dx), Some(dw)])
}

/// y = conv2d_input_grad(g, w): dx[n,c,r,q] = Σ g[n,f,i,j] * w[f,c,a,b] over taps hitting (r,q)
///   Bilinear, the adjoint of conv2d in x: <u, y> = <conv2d(u, w), g> = <w, filter_grad(u, g)>,
///   so with upstream u:  dg = conv2d(u, w),  dw = conv2d_filter_grad(u, g)
fn conv2d_input_grad_eval(
    g: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
    height: usize,
    width: usize,
) -> Result<Tensor, String> {
    let [n, f, oh, ow] = dims4(g)?;
    let [f2, c, kh, kw] = dims4(w)?;
    if f != f2
        || oh != window_out(height, kh, pad, stride, "height").map_err(invalid)?
        || ow != window_out(width, kw, pad, stride, "width").map_err(invalid)?
    {
        return Err(format!("conv2d_input_grad of {:?} with filters {:?}", g.shape, w.shape));
    }
    let mut dx = Tensor::zeros(vec![n, c, height, width]);
    for_each_tap([n, f, oh, ow], [c, kh, kw], [height, width], stride, pad, |t| {
        dx.data[at4(&dx.shape, t.n, t.c, t.r, t.q)] +=
            g.data[at4(&g.shape, t.n, t.f, t.i, t.j)] * w.data[at4(&w.shape, t.f, t.c, t.a, t.b)];
    });
    Ok(dx)
}

fn conv2d_input_grad_vjp(cx: &mut Vjp, u: NodeId, x: &[NodeId], stride: usize, pad: usize) -> Grads {
    let ws = cx.shape(x[1]);
    let (kernel_h, kernel_w) = (known4(&ws, 2)?, known4(&ws, 3)?);
    let dg = cx.op(Op::Conv2d { stride, pad }, &[u, x[1]])?;
    let dw = cx.op(Op::Conv2dFilterGrad { stride, pad, kernel_h, kernel_w }, &[u, x[0]])?;
    Ok(vec![Some(dg), Some(dw)])
}

/// y = conv2d_filter_grad(x, g): dw[f,c,a,b] = Σ_n,i,j x[n,c, i*s+a-p, j*s+b-p] * g[n,f,i,j]
///   Bilinear, the adjoint of conv2d in w: <u, y> = <conv2d(x, u), g> = <input_grad(g, u), x>,
///   so with upstream u:  dx = conv2d_input_grad(g, u),  dg = conv2d(x, u)
fn conv2d_filter_grad_eval(
    x: &Tensor,
    g: &Tensor,
    stride: usize,
    pad: usize,
    kernel_h: usize,
    kernel_w: usize,
) -> Result<Tensor, String> {
    let [n, c, h, wd] = dims4(x)?;
    let [n2, f, oh, ow] = dims4(g)?;
    if n != n2
        || oh != window_out(h, kernel_h, pad, stride, "height").map_err(invalid)?
        || ow != window_out(wd, kernel_w, pad, stride, "width").map_err(invalid)?
    {
        return Err(format!("conv2d_filter_grad of {:?} with gradient {:?}", x.shape, g.shape));
    }
    let mut dw = Tensor::zeros(vec![f, c, kernel_h, kernel_w]);
    for_each_tap([n, f, oh, ow], [c, kernel_h, kernel_w], [h, wd], stride, pad, |t| {
        dw.data[at4(&dw.shape, t.f, t.c, t.a, t.b)] +=
            x.data[at4(&x.shape, t.n, t.c, t.r, t.q)] * g.data[at4(&g.shape, t.n, t.f, t.i, t.j)];
    });
    Ok(dw)
}

fn conv2d_filter_grad_vjp(cx: &mut Vjp, u: NodeId, x: &[NodeId], stride: usize, pad: usize) -> Grads {
    let xs = cx.shape(x[0]);
    let (height, width) = (known4(&xs, 2)?, known4(&xs, 3)?);
    let dx = cx.op(Op::Conv2dInputGrad { stride, pad, height, width }, &[x[1], u])?;
    let dg = cx.op(Op::Conv2d { stride, pad }, &[x[0], u])?;
    Ok(vec![Some(dx), Some(dg)])
}

/// y[n,c,i,j] = max over the size×size window at (i*s, j*s)      dx = maxpool2d_grad(x, g):
/// g routed to the FIRST maximum of each window in row-major order (ties: top-most, then
/// left-most), the same convention as ReduceMax and ArgMaxMask
fn maxpool2d_eval(x: &Tensor, size: usize, stride: usize) -> Result<Tensor, String> {
    let [n, c, h, w] = dims4(x)?;
    let oh = window_out(h, size, 0, stride, "height").map_err(invalid)?;
    let ow = window_out(w, size, 0, stride, "width").map_err(invalid)?;
    let mut y = Tensor::zeros(vec![n, c, oh, ow]);
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let (a, b) = window_argmax(x, ni, ci, i * stride, j * stride, size);
        y.data[at4(&y.shape, ni, ci, i, j)] = x.data[at4(&x.shape, ni, ci, i * stride + a, j * stride + b)];
    }
    Ok(y)
}

fn maxpool2d_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], size: usize, stride: usize) -> Grads {
    Ok(vec![Some(cx.op(Op::MaxPool2dGrad { size, stride }, &[x[0], g])?)])
}

/// y = maxpool2d_grad(x, g): g[n,c,i,j] added at the first maximum of window (i,j) of x
///   dx: none (piecewise constant in x).  dg (linear in g): with upstream u, gather u at each
///   window's first maximum. Built from existing ops for non-overlapping windows (stride =
///   size, the default): dg = size² * avgpool2d(maxpool2d_grad(x, 1) * u), where the
///   inner term is the 0/1 mask of first maxima. Overlapping windows are not supported.
fn maxpool2d_grad_eval(x: &Tensor, g: &Tensor, size: usize, stride: usize) -> Result<Tensor, String> {
    let [n, c, h, w] = dims4(x)?;
    let [gn, gc, oh, ow] = dims4(g)?;
    let expected = [
        n,
        c,
        window_out(h, size, 0, stride, "height").map_err(invalid)?,
        window_out(w, size, 0, stride, "width").map_err(invalid)?,
    ];
    if [gn, gc, oh, ow] != expected {
        return Err(format!("maxpool2d_grad of {:?} with gradient {:?}", x.shape, g.shape));
    }
    let mut dx = Tensor::zeros(x.shape.clone());
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let (a, b) = window_argmax(x, ni, ci, i * stride, j * stride, size);
        dx.data[at4(&x.shape, ni, ci, i * stride + a, j * stride + b)] += g.data[at4(&g.shape, ni, ci, i, j)];
    }
    Ok(dx)
}

fn maxpool2d_grad_vjp(cx: &mut Vjp, u: NodeId, x: &[NodeId], size: usize, stride: usize) -> Grads {
    if stride != size {
        return Err(format!(
            "second derivative through maxpool2d with overlapping windows (size {size}, stride {stride}) is not supported"
        ));
    }
    let pooled_shape = cx.shape(x[1]);
    let ones = cx.fill(1.0, pooled_shape)?;
    let first_max = cx.op(Op::MaxPool2dGrad { size, stride }, &[x[0], ones])?;
    let picked = cx.mul(first_max, u)?;
    let mean = cx.op(Op::AvgPool2d { size, stride }, &[picked])?;
    let area = cx.constant((size * size) as f64);
    Ok(vec![None, Some(cx.mul(area, mean)?)])
}

/// y[n,c,i,j] = mean over the size×size window at (i*s, j*s)     dx = avgpool2d_grad(g)
fn avgpool2d_eval(x: &Tensor, size: usize, stride: usize) -> Result<Tensor, String> {
    let [n, c, h, w] = dims4(x)?;
    let oh = window_out(h, size, 0, stride, "height").map_err(invalid)?;
    let ow = window_out(w, size, 0, stride, "width").map_err(invalid)?;
    let area = (size * size) as f64;
    let mut y = Tensor::zeros(vec![n, c, oh, ow]);
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let mut total = 0.0;
        for a in 0..size {
            for b in 0..size {
                total += x.data[at4(&x.shape, ni, ci, i * stride + a, j * stride + b)];
            }
        }
        y.data[at4(&y.shape, ni, ci, i, j)] = total / area;
    }
    Ok(y)
}

fn avgpool2d_vjp(cx: &mut Vjp, g: NodeId, x: &[NodeId], size: usize, stride: usize) -> Grads {
    let xs = cx.shape(x[0]);
    let (height, width) = (known4(&xs, 2)?, known4(&xs, 3)?);
    Ok(vec![Some(cx.op(Op::AvgPool2dGrad { size, stride, height, width }, &[g])?)])
}

/// y = avgpool2d_grad(g): g[n,c,i,j]/size² spread over window (i,j)
///   Linear, the adjoint of avgpool2d: with upstream u, dg = avgpool2d(u)
fn avgpool2d_grad_eval(g: &Tensor, size: usize, stride: usize, height: usize, width: usize) -> Result<Tensor, String> {
    let [n, c, oh, ow] = dims4(g)?;
    if oh != window_out(height, size, 0, stride, "height").map_err(invalid)?
        || ow != window_out(width, size, 0, stride, "width").map_err(invalid)?
    {
        return Err(format!("avgpool2d_grad of {:?} into {height}×{width}", g.shape));
    }
    let area = (size * size) as f64;
    let mut dx = Tensor::zeros(vec![n, c, height, width]);
    for (ni, ci, i, j) in grid4([n, c, oh, ow]) {
        let share = g.data[at4(&g.shape, ni, ci, i, j)] / area;
        for a in 0..size {
            for b in 0..size {
                dx.data[at4(&dx.shape, ni, ci, i * stride + a, j * stride + b)] += share;
            }
        }
    }
    Ok(dx)
}

fn avgpool2d_grad_vjp(cx: &mut Vjp, u: NodeId, size: usize, stride: usize) -> Grads {
    Ok(vec![Some(cx.op(Op::AvgPool2d { size, stride }, &[u])?)])
}

// ---- evaluation helpers: plain loops over row-major data ------------------------------------

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides: the flat distance between neighbours along each axis.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Call `f` with every multi-index of `shape`, in row-major order (the order of the data).
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0; shape.len()];
    loop {
        f(&idx);
        // Advance like an odometer: the last axis fastest.
        let mut a = shape.len();
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// (elements before `axis`, its size, elements after it): element (o, j, k) is at (o*n + j)*inner + k.
fn split_axis(shape: &[usize], axis: usize) -> Result<(usize, usize, usize), String> {
    if axis >= shape.len() {
        return Err(format!("axis {axis} of a tensor of shape {shape:?}"));
    }
    Ok((numel(&shape[..axis]), shape[axis], numel(&shape[axis + 1..])))
}

/// Numpy broadcasting of two concrete shapes.
fn broadcast_dims(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("cannot broadcast {a:?} with {b:?}")),
        })
        .collect()
}

/// For every element of `to`, the flat index of the element of `from` it reads when `from` is
/// broadcast to `to` (stretched axes read index 0).
fn broadcast_map(from: &[usize], to: &[usize]) -> Vec<usize> {
    if from == to {
        return (0..numel(to)).collect();
    }
    let lead = to.len() - from.len();
    // Stride 0 along prepended and stretched axes: every position reads the same element.
    let from_strides = strides(from);
    let stride: Vec<usize> =
        (0..to.len()).map(|a| if a < lead || from[a - lead] == 1 { 0 } else { from_strides[a - lead] }).collect();
    let mut map = Vec::with_capacity(numel(to));
    for_each_index(to, |idx| map.push(idx.iter().zip(&stride).map(|(i, s)| i * s).sum()));
    map
}

fn map(x: &Tensor, f: impl Fn(f64) -> f64) -> Tensor {
    Tensor::new(x.shape.clone(), x.data.iter().map(|&v| f(v)).collect())
}

/// Apply `f` elementwise to `a` and `b` broadcast together.
fn zip(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<Tensor, String> {
    let shape = broadcast_dims(&a.shape, &b.shape)?;
    let (ia, ib) = (broadcast_map(&a.shape, &shape), broadcast_map(&b.shape, &shape));
    let data = ia.iter().zip(&ib).map(|(&i, &j)| f(a.data[i], b.data[j])).collect();
    Ok(Tensor::new(shape, data))
}

/// Index of the first largest value (later equal values do not win); None when empty.
fn first_max(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (j, v) in values.enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((j, v));
        }
    }
    best.map(|(j, _)| j)
}

/// Offset (a, b) of the first maximum, row-major, of the size×size window of x[n, c] at (top, left).
fn window_argmax(x: &Tensor, n: usize, c: usize, top: usize, left: usize, size: usize) -> (usize, usize) {
    let values = (0..size * size).map(|t| x.data[at4(&x.shape, n, c, top + t / size, left + t % size)]);
    let t = first_max(values).expect("windows are not empty");
    (t / size, t % size)
}

fn dims4(t: &Tensor) -> Result<[usize; 4], String> {
    <[usize; 4]>::try_from(t.shape.as_slice()).map_err(|_| format!("expected a 4-D tensor, got shape {:?}", t.shape))
}

fn known4(shape: &Shape, axis: usize) -> Result<usize, String> {
    shape.get(axis).and_then(|d| d.known()).ok_or_else(|| format!("axis {axis} must be a known size"))
}

fn at4(shape: &[usize], a: usize, b: usize, c: usize, d: usize) -> usize {
    ((a * shape[1] + b) * shape[2] + c) * shape[3] + d
}

/// Every index of a 4-D grid, row-major.
fn grid4(dims: [usize; 4]) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let [a, b, c, d] = dims;
    (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).flat_map(move |k| (0..d).map(move |l| (i, j, k, l)))))
}

/// One tap of a convolution that lands inside the (unpadded) input: output element
/// (n, f, i, j) reads input element (n, c, r, q) through filter element (f, c, a, b),
/// where r = i*stride + a - pad and q = j*stride + b - pad.
struct Tap {
    n: usize,
    f: usize,
    i: usize,
    j: usize,
    c: usize,
    a: usize,
    b: usize,
    r: usize,
    q: usize,
}

/// Call `f` on every in-bounds tap of a convolution with output dims `out` = [N, F, OH, OW],
/// filter dims [C, KH, KW] and input height and width `hw`; taps into the zero padding are
/// skipped.
fn for_each_tap(
    out: [usize; 4],
    filter: [usize; 3],
    hw: [usize; 2],
    stride: usize,
    pad: usize,
    mut f: impl FnMut(&Tap),
) {
    let [batch, filters, oh, ow] = out;
    let [channels, kh, kw] = filter;
    let [h, w] = hw;
    // The input row/column a tap reads, if it is inside the unpadded input.
    let inside = |o: usize, k: usize, size: usize| (o * stride + k).checked_sub(pad).filter(|&r| r < size);
    for n in 0..batch {
        for f_ in 0..filters {
            for i in 0..oh {
                for j in 0..ow {
                    for c in 0..channels {
                        for a in 0..kh {
                            let Some(r) = inside(i, a, h) else { continue };
                            for b in 0..kw {
                                let Some(q) = inside(j, b, w) else { continue };
                                f(&Tap { n, f: f_, i, j, c, a, b, r, q });
                            }
                        }
                    }
                }
            }
        }
    }
}

fn invalid(e: ShapeError) -> String {
    match e {
        ShapeError::Invalid(s) => s,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: Op, x: &[&Tensor], shape: &[usize]) -> Tensor {
        eval(&op, x, shape, &Env { inputs: &[], params: &[], symbols: &[] }).unwrap()
    }

    fn t(shape: &[usize], data: &[f64]) -> Tensor {
        Tensor::new(shape.to_vec(), data.to_vec())
    }

    fn seq(shape: &[usize], k: f64) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(shape.to_vec(), (0..n).map(|i| ((i as f64 + k) * 0.618_034).fract() - 0.5).collect())
    }

    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        a.data.iter().zip(&b.data).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn matmul_transpose_flags() {
        let (a, b) = (t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), t(&[2, 2], &[5.0, 6.0, 7.0, 8.0]));
        let mm = |ta, tb| ev(Op::MatMul { transpose_a: ta, transpose_b: tb }, &[&a, &b], &[2, 2]).data;
        assert_eq!(mm(false, false), [19.0, 22.0, 43.0, 50.0]);
        assert_eq!(mm(true, false), [26.0, 30.0, 38.0, 44.0]);
        assert_eq!(mm(false, true), [17.0, 23.0, 39.0, 53.0]);
        assert_eq!(mm(true, true), [23.0, 31.0, 34.0, 46.0]);
    }

    #[test]
    fn conv2d_by_hand() {
        // w = [[1, 0], [0, -1]]: y[i, j] = x[i, j] - x[i+1, j+1] = -4 on x = 1..9
        let x = t(&[1, 1, 3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        let w = t(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, -1.0]);
        assert_eq!(ev(Op::Conv2d { stride: 1, pad: 0 }, &[&x, &w], &[1, 1, 2, 2]).data, [-4.0; 4]);
        // pad 1: y[0, 0] = 0*1 + x[0, 0]*(-1) = -1; y[3, 3] = x[2, 2]*1 = 9
        let y = ev(Op::Conv2d { stride: 1, pad: 1 }, &[&x, &w], &[1, 1, 4, 4]);
        assert_eq!((y.data[0], y.data[15]), (-1.0, 9.0));
    }

    #[test]
    fn conv2d_gradient_ops_are_adjoints() {
        // <conv2d(x, w), g> = <x, input_grad(g, w)> = <w, filter_grad(x, g)>
        for (stride, pad, h) in [(1, 0, 4), (1, 1, 4), (2, 1, 5), (2, 0, 5)] {
            let (x, w) = (seq(&[2, 2, h, h], 0.0), seq(&[3, 2, 3, 3], 7.0));
            let oh = (h + 2 * pad - 3) / stride + 1;
            let y = ev(Op::Conv2d { stride, pad }, &[&x, &w], &[2, 3, oh, oh]);
            let g = seq(&y.shape, 3.0);
            let dx = ev(Op::Conv2dInputGrad { stride, pad, height: h, width: h }, &[&g, &w], &[2, 2, h, h]);
            let dw = ev(Op::Conv2dFilterGrad { stride, pad, kernel_h: 3, kernel_w: 3 }, &[&x, &g], &[3, 2, 3, 3]);
            assert!((dot(&y, &g) - dot(&x, &dx)).abs() < 1e-12);
            assert!((dot(&y, &g) - dot(&w, &dw)).abs() < 1e-12);
        }
    }

    #[test]
    fn pooling_by_hand_and_adjoint() {
        let x = t(&[1, 1, 2, 4], &[1.0, 7.0, 3.0, 3.0, 5.0, 7.0, 3.0, 3.0]);
        assert_eq!(ev(Op::MaxPool2d { size: 2, stride: 2 }, &[&x], &[1, 1, 1, 2]).data, [7.0, 3.0]);
        assert_eq!(ev(Op::AvgPool2d { size: 2, stride: 2 }, &[&x], &[1, 1, 1, 2]).data, [5.0, 3.0]);
        // ties: the first maximum in row-major order takes the gradient
        let g = t(&[1, 1, 1, 2], &[1.0, 2.0]);
        let dx = ev(Op::MaxPool2dGrad { size: 2, stride: 2 }, &[&x, &g], &[1, 1, 2, 4]);
        assert_eq!(dx.data, [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // <avgpool(x), g> = <x, avgpool_grad(g)>, overlapping windows too
        let x = seq(&[2, 1, 5, 5], 1.0);
        let y = ev(Op::AvgPool2d { size: 3, stride: 1 }, &[&x], &[2, 1, 3, 3]);
        let g = seq(&y.shape, 4.0);
        let dx = ev(Op::AvgPool2dGrad { size: 3, stride: 1, height: 5, width: 5 }, &[&g], &[2, 1, 5, 5]);
        assert!((dot(&y, &g) - dot(&x, &dx)).abs() < 1e-12);
    }

    #[test]
    fn reductions_and_layout_by_hand() {
        let x = t(&[2, 3], &[1.0, 5.0, 3.0, 4.0, 2.0, 6.0]);
        assert_eq!(ev(Op::Sum { axes: vec![0] }, &[&x], &[3]).data, [5.0, 7.0, 9.0]);
        assert_eq!(ev(Op::Sum { axes: vec![0, 1] }, &[&x], &[]).data, [21.0]);
        assert_eq!(ev(Op::ReduceMax { axis: 1 }, &[&x], &[2]).data, [5.0, 6.0]);
        assert_eq!(ev(Op::ArgMaxMask { axis: 0 }, &[&x], &[2, 3]).data, [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(ev(Op::Transpose { perm: vec![1, 0] }, &[&x], &[3, 2]).data, [1.0, 4.0, 5.0, 2.0, 3.0, 6.0]);
        assert_eq!(ev(Op::Slice { axis: 1, start: 1, len: 2 }, &[&x], &[2, 2]).data, [5.0, 3.0, 2.0, 6.0]);
        let p = ev(Op::Pad { axis: 0, before: 1, after: 0 }, &[&x], &[3, 3]).data;
        assert_eq!(p, [0.0, 0.0, 0.0, 1.0, 5.0, 3.0, 4.0, 2.0, 6.0]);
        let b = ev(Op::Broadcast { shape: vec![] }, &[&t(&[2, 1], &[1.0, 2.0])], &[2, 2]).data;
        assert_eq!(b, [1.0, 1.0, 2.0, 2.0]);
        let one_hot = ev(Op::OneHot { classes: 3 }, &[&t(&[2], &[2.0, 0.0])], &[2, 3]).data;
        assert_eq!(one_hot, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        let ls = ev(Op::LogSoftmax { axis: 0 }, &[&t(&[2], &[0.0, 3f64.ln()])], &[2]).data;
        assert!((ls[0] + 4f64.ln()).abs() < 1e-15 && (ls[1] - (3f64.ln() - 4f64.ln())).abs() < 1e-15);
        // a huge score does not overflow
        let ls = ev(Op::LogSoftmax { axis: 0 }, &[&t(&[2], &[1000.0, 0.0])], &[2]).data;
        assert!(ls[0].abs() < 1e-15 && (ls[1] + 1000.0).abs() < 1e-12);
    }

    #[test]
    fn elementwise_conventions() {
        let a = t(&[3], &[1.0, 2.0, 3.0]);
        let b = t(&[3], &[1.0, 0.0, 4.0]);
        assert_eq!(ev(Op::Max, &[&a, &b], &[3]).data, [1.0, 2.0, 4.0]);
        assert_eq!(ev(Op::Min, &[&a, &b], &[3]).data, [1.0, 0.0, 3.0]);
        assert_eq!(ev(Op::GreaterEq, &[&a, &b], &[3]).data, [1.0, 1.0, 0.0]);
        assert_eq!(ev(Op::Sign, &[&t(&[3], &[-2.0, 0.0, 0.5])], &[3]).data, [-1.0, 0.0, 1.0]);
        let s = ev(Op::Sigmoid, &[&t(&[2], &[-800.0, 800.0])], &[2]).data;
        assert_eq!(s, [0.0, 1.0]);
    }

    #[test]
    fn gradient_ops_check_their_operands() {
        let mut g = Graph::new(crate::ir::graph::DType::F64);
        let k = |v: &[usize]| v.iter().map(|&n| Dim::Known(n)).collect::<Shape>();
        let grad = g.add_param("g", k(&[1, 2, 3, 3]), crate::ir::graph::Init::Zeros);
        let w = g.add_param("w", k(&[2, 1, 3, 3]), crate::ir::graph::Init::Zeros);
        // a 5×5 input with a 3×3 kernel gives 3×3: fine; a 6×6 input would give 4×4
        assert!(g.add(Op::Conv2dInputGrad { stride: 1, pad: 0, height: 5, width: 5 }, &[grad, w]).is_ok());
        assert!(g.add(Op::Conv2dInputGrad { stride: 1, pad: 0, height: 6, width: 6 }, &[grad, w]).is_err());
        let x = g.add_param("x", k(&[1, 1, 4, 4]), crate::ir::graph::Init::Zeros);
        let pooled = g.add_param("p", k(&[1, 1, 2, 2]), crate::ir::graph::Init::Zeros);
        assert!(g.add(Op::MaxPool2dGrad { size: 2, stride: 2 }, &[x, pooled]).is_ok());
        assert!(g.add(Op::MaxPool2dGrad { size: 2, stride: 1 }, &[x, pooled]).is_err());
    }
}
