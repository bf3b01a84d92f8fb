//! Shape rules: the shape of each op applied to operands of given shapes, or why it cannot
//! be applied (`ShapeError`, which the checker turns into a diagnostic on the operands).
//! `Graph::add` appends a node through them.

use crate::ir::graph::{Dim, Graph, Node, NodeId, Op, Shape};
use crate::ir::limits::MAX_ELEMENTS;

use super::describe;

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

/// Output size of a sliding window: ⌊(n - f + 2p) / s⌋ + 1, PyTorch's floor rule (the last
/// (n − f + 2p) mod s rows or columns are read by no window; `netc check` notes it). The
/// window must fit the padded input. `what` names the axis ("height", "width") for the message.
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
        Neg
        | Exp
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
        | Clip { .. } => {
            arity(1)?;
            Ok(shapes[0].clone())
        }
        Add | Sub | Mul | Div | Pow | Max | Min | GreaterEq | Greater | Equal => {
            arity(2)?;
            broadcast_shapes(shapes[0], shapes[1])
        }
        // The values first (a mismatch there names both), then the condition against them.
        Where => {
            arity(3)?;
            let words = |first: &Shape, second: &Shape| {
                ShapeError::Invalid(format!("cannot broadcast {} with {}", g.shape_str(first), g.shape_str(second)))
            };
            let values = broadcast_shapes(shapes[1], shapes[2]).map_err(|_| words(shapes[1], shapes[2]))?;
            broadcast_shapes(shapes[0], &values).map_err(|_| words(shapes[0], &values))
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
        Slice { axis, start, len, step } => {
            arity(1)?;
            check_axis(*axis, shapes[0].len())?;
            let n = known(shapes[0][*axis], "a sliced dimension")?;
            if *step == 0 || *len == 0 {
                return Err(ShapeError::Invalid("a slice takes at least one element, a step of at least 1".into()));
            }
            let last = (*len - 1).checked_mul(*step).and_then(|d| d.checked_add(*start));
            if last.is_none_or(|last| last >= n) {
                return Err(ShapeError::Invalid(format!(
                    "elements {start}, {}, … ({len} of them, step {step}) are out of range for a dimension of size {n}",
                    start + step
                )));
            }
            let mut out = shapes[0].clone();
            out[*axis] = Dim::Known(*len);
            Ok(out)
        }
        Pad { axis, before, after, step } => {
            arity(1)?;
            check_axis(*axis, shapes[0].len())?;
            let n = known(shapes[0][*axis], "a padded dimension")?;
            let size = (n.max(1) - 1)
                .checked_mul((*step).max(1))
                .and_then(|d| d.checked_add(1 + before))
                .and_then(|d| d.checked_add(*after))
                .filter(|_| *step >= 1)
                .ok_or_else(|| {
                    ShapeError::Invalid(format!("padding {before}, {after} with step {step} is not a size"))
                })?;
            let mut out = shapes[0].clone();
            out[*axis] = Dim::Known(size);
            Ok(out)
        }
        Reverse { axis } => {
            arity(1)?;
            check_axis(*axis, shapes[0].len())?;
            Ok(shapes[0].clone())
        }
        Concat { axis } => {
            if shapes.is_empty() {
                return Err(ShapeError::Invalid("concat takes at least one tensor".into()));
            }
            let first = shapes[0];
            check_axis(*axis, first.len())?;
            for (k, s) in shapes.iter().enumerate() {
                if s.len() != first.len() {
                    return Err(ShapeError::Invalid(format!(
                        "tensor {} has {} axes, tensor 1 has {}: concat joins tensors of equal rank",
                        k + 1,
                        s.len(),
                        first.len()
                    )));
                }
                if let Some(a) = (0..first.len()).find(|&a| a != *axis && s[a] != first[a]) {
                    if k == 1 {
                        return Err(ShapeError::Mismatch { lhs_axis: a, rhs_axis: a, what: "concat" });
                    }
                    return Err(ShapeError::Invalid(format!(
                        "tensor {} is {} and tensor 1 is {}: they differ on axis {a}, not only on the joined axis {axis}",
                        k + 1,
                        g.shape_str(s),
                        g.shape_str(first)
                    )));
                }
            }
            let mut total = 0usize;
            for s in shapes {
                let n = s[*axis].known().ok_or_else(|| {
                    ShapeError::Invalid(format!("cannot join along the symbolic dimension {}", g.dim_name(s[*axis])))
                })?;
                total =
                    total.checked_add(n).ok_or_else(|| ShapeError::Invalid("the joined axis is too long".into()))?;
            }
            let mut out = first.clone();
            out[*axis] = Dim::Known(total);
            Ok(out)
        }
        Gather { axis } => {
            arity(2)?;
            check_axis(*axis, shapes[0].len())?;
            let mut out = shapes[0][..*axis].to_vec();
            out.extend(shapes[1].iter().copied());
            out.extend(shapes[0][axis + 1..].iter().copied());
            Ok(out)
        }
        ScatterAdd { axis, size } => {
            // (g, idx): g must be what gather along `axis` with idx produces.
            arity(2)?;
            let (gs, is) = (shapes[0], shapes[1]);
            if gs.len() < axis + is.len() || gs[*axis..axis + is.len()] != is[..] {
                return Err(ShapeError::Invalid(format!(
                    "scatter_add: the gradient {} does not hold the indices' shape {} at axis {axis}",
                    g.shape_str(gs),
                    g.shape_str(is)
                )));
            }
            if *size == 0 {
                return Err(ShapeError::Invalid("scatter_add into an empty axis".into()));
            }
            let mut out = gs[..*axis].to_vec();
            out.push(Dim::Known(*size));
            out.extend(gs[axis + is.len()..].iter().copied());
            Ok(out)
        }
        Sum { axes } | ReduceMax { axes } => {
            arity(1)?;
            for &a in axes {
                check_axis(a, shapes[0].len())?;
            }
            Ok(shapes[0].iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect())
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
        MatMul { transpose_a, transpose_b, batch, contract } => {
            arity(2)?;
            let (a, b) = (shapes[0], shapes[1]);
            let groups = batch + contract;
            for (k, s) in [a, b].iter().enumerate() {
                if s.len() < groups {
                    return Err(ShapeError::Invalid(format!(
                        "operand {} of a product over {batch} batch and {contract} inner axes has only {} axes",
                        k + 1,
                        s.len()
                    )));
                }
            }
            // Where each group starts in each operand.
            let (rows_a, inner_a) = if *transpose_a { (groups, *batch) } else { (*batch, a.len() - contract) };
            let (inner_b, cols_b) = if *transpose_b { (b.len() - contract, *batch) } else { (*batch, groups) };
            let mut out = Vec::with_capacity(a.len() + b.len() - batch - 2 * contract);
            for i in 0..*batch {
                out.push(match (a[i], b[i]) {
                    (x, y) if x == y => x,
                    (Dim::Known(1), y) => y,
                    (x, Dim::Known(1)) => x,
                    _ => return Err(ShapeError::Mismatch { lhs_axis: i, rhs_axis: i, what: "matmul batch" }),
                });
            }
            for c in 0..*contract {
                if a[inner_a + c] != b[inner_b + c] {
                    return Err(ShapeError::Mismatch { lhs_axis: inner_a + c, rhs_axis: inner_b + c, what: "matmul" });
                }
            }
            out.extend_from_slice(&a[rows_a..rows_a + a.len() - groups]);
            out.extend_from_slice(&b[cols_b..cols_b + b.len() - groups]);
            Ok(out)
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
        Loop { spec, output } => super::control::loop_shape(spec, *output, shapes, g),
        RandomUniform { shape, .. } => {
            // The operand is the key: the seed and step as 16-bit pieces.
            arity(1)?;
            if shapes[0] != &vec![Dim::Known(super::random::KEY_LEN)] {
                return Err(ShapeError::Invalid(format!(
                    "random_uniform: the key must be [{}], not {}",
                    super::random::KEY_LEN,
                    g.shape_str(shapes[0])
                )));
            }
            Ok(shape.clone())
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

impl Graph {
    /// Append a node whose shape is computed by the op's shape rule.
    pub fn add(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId, ShapeError> {
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| self.shape(i)).collect();
        let shape = infer_shape(&op, &shapes, self)?;
        let elements = shape.iter().filter_map(|d| d.known()).try_fold(1usize, |acc, n| acc.checked_mul(n));
        if elements.is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(ShapeError::Invalid(format!(
                "the result, {}, would have more than 2^48 elements",
                self.shape_str(&shape)
            )));
        }
        Ok(self.push(Node { op, inputs: inputs.to_vec(), shape, name: None, span: None }))
    }
}
