//! Fusion and scheduling. Input: a graph; output: the kernels that compute its outputs and
//! updates, in execution order, with their temporaries (`KernelProgram`).
//!
//! Every live node gets a *value*: an `Expr` evaluated at an index of the node's shape.
//! Leaves and views are loads (a view only changes strides and offset: no copy); elementwise
//! ops build trees over their operands' values, so chains of them fuse into the loop of
//! whatever consumes them. A value is *materialised* (a `Map` kernel writes it to memory, and
//! the value becomes a load of that memory) when it has several consumers, is an output or
//! an update, is broadcast (which would recompute it), or feeds an op that needs memory
//! (matmul, convolution, pooling, ...). Reductions fuse with the expression they reduce.
//! A stride-1 convolution that `ConvAlgorithm` gives to Winograd becomes transforms, α²
//! products and a transform back, the transforms of a layer's filter, input and upstream
//! gradient computed once for the forward and both gradients.

use std::collections::HashMap;
use std::rc::Rc;

use super::kernel::*;
use crate::diag::Diagnostic;
use crate::ir::graph::{DType, Dim, Graph, LoopSpec, NodeId, Op, Shape, Slicing};
use crate::ir::ops::{self, Env};
use crate::ir::tensor::Tensor;
use activations::*;

mod activations;
mod finish;
mod loops;
mod products;
mod structure;
mod winograd;

/// Build the kernels for `g`'s outputs and updates, convolutions by `conv`.
pub fn schedule(g: &Graph, conv: ConvAlgorithm) -> Result<KernelProgram, Diagnostic> {
    validate(g).map_err(|e| Diagnostic::new("E-codegen", format!("malformed graph: {e}")))?;
    let roots: Vec<NodeId> = g.outputs.iter().map(|o| o.1).chain(g.updates.iter().map(|u| u.1)).collect();
    let prog = KernelProgram { symbol_base: g.symbols.len() as u32, ..KernelProgram::default() };
    let mut f = Fuser::new(g, &roots, g.dtype, None, prog, conv);
    f.translate_live()?;
    f.finish().map_err(|e| Diagnostic::new("E-codegen", e))?;
    Ok(f.prog)
}

/// The deepest expression tree a kernel computes (a bound, counted in graph nodes: a node
/// adds at most a level or two, as in `short_product`'s sums).
pub const MAX_FUSED_DEPTH: usize = 64;

struct Fuser<'g> {
    g: &'g Graph,
    /// The dtype of the code (a loop body's own `dtype` is not read: it is its outer graph's).
    dtype: DType,
    prog: KernelProgram,
    vals: Vec<Option<Rc<Expr>>>,
    /// A bound on the depth of each node's value (1 for a load or a constant).
    depths: Vec<usize>,
    /// Distinct live consumers of each node, plus its entries among the roots.
    uses: Vec<usize>,
    /// Whether each node is no root and every live consumer is elementwise over its shape
    /// (so it fuses into their loops; see `recompute`).
    elementwise_readers: Vec<bool>,
    /// Reachable (backwards) from a root: an output or update, or a loop body's result.
    live: Vec<bool>,
    /// In a loop body: the value of each body input (`Op::Input { index }`).
    inputs: Option<Vec<Rc<Expr>>>,
    /// The results of every loop emitted so far, by (spec, operands), so that its siblings
    /// load them.
    loops: HashMap<(usize, Vec<NodeId>), Vec<Rc<Expr>>>,
    conv: ConvAlgorithm,
    /// The Winograd transforms computed so far, by (transform, node transformed, geometry):
    /// the forward's filter and input transforms serve the gradients too, and the transformed
    /// upstream gradient serves both (`runtime::winograd`).
    transformed: HashMap<(Transform, NodeId, WinogradGeom), Access>,
}

impl<'g> Fuser<'g> {
    /// A fuser of the nodes of `g` that `roots` need, appending to `prog`.
    fn new(
        g: &'g Graph,
        roots: &[NodeId],
        dtype: DType,
        inputs: Option<Vec<Rc<Expr>>>,
        prog: KernelProgram,
        conv: ConvAlgorithm,
    ) -> Fuser<'g> {
        let n = g.nodes.len();
        let mut live = vec![false; n];
        for id in roots {
            live[id.index()] = true;
        }
        for i in (0..n).rev() {
            if live[i] {
                for x in &g.nodes[i].inputs {
                    live[x.index()] = true;
                }
            }
        }
        let mut uses = vec![0; n];
        for (node, _) in g.nodes.iter().zip(&live).filter(|(_, &l)| l) {
            let mut seen: Vec<NodeId> = node.inputs.clone();
            seen.sort_unstable();
            seen.dedup();
            for x in seen {
                uses[x.index()] += 1;
            }
        }
        for id in roots {
            uses[id.index()] += 1;
        }
        // Whether every reader is elementwise over the same shape (and the node no root).
        let mut elementwise_readers = vec![true; n];
        for (node, _) in g.nodes.iter().zip(&live).filter(|(_, &l)| l) {
            if !node.op.is_elementwise() || node.inputs.iter().any(|x| g.shape(*x) != &node.shape) {
                for x in &node.inputs {
                    elementwise_readers[x.index()] = false;
                }
            }
        }
        for id in roots {
            elementwise_readers[id.index()] = false;
        }
        Fuser {
            g,
            dtype,
            prog,
            vals: vec![None; n],
            depths: vec![1; n],
            uses,
            elementwise_readers,
            live,
            inputs,
            loops: HashMap::new(),
            conv,
            transformed: HashMap::new(),
        }
    }

    /// The value of every live node, in order.
    fn translate_live(&mut self) -> Result<(), Diagnostic> {
        let g = self.g;
        for i in 0..g.nodes.len() {
            if !self.live[i] {
                continue;
            }
            let node = &g.nodes[i];
            let v = self.translate(NodeId(i as u32)).map_err(|e| {
                let msg = format!("cannot compile %{i} ({}): {e}", ops::describe(&node.op, g));
                let d = Diagnostic::new("E-codegen", msg);
                match node.span {
                    Some(span) => d.label(span, "in this expression"),
                    None => d,
                }
            })?;
            // A computed value read by several kernels is written once rather than recomputed.
            // (An output or update with no other use is computed straight into its buffer.) So is
            // one whose expression tree has grown `MAX_FUSED_DEPTH` deep: a chain of a hundred
            // thousand additions becomes loops of at most that many operations each, and every
            // walk over a kernel's expression (here, in memplan and emit) stays shallow.
            let deep = node.inputs.iter().map(|x| self.depths[x.index()]).max().unwrap_or(0) + 1 >= MAX_FUSED_DEPTH;
            let computed = v.has_loads() && v.as_load().is_none();
            let shared = self.uses[i] != 1 && !(self.elementwise_readers[i] && recompute(&v));
            let v = if computed && (shared || deep) { self.materialize(&v, &node.shape) } else { v };
            self.depths[i] = if v.as_load().is_some() || !v.has_loads() {
                1
            } else {
                node.inputs.iter().map(|x| self.depths[x.index()]).max().unwrap_or(0) + 1
            };
            if !matches!(node.op, Op::Input { .. } | Op::Param { .. } | Op::Const { .. } | Op::Literal { .. }) {
                self.prog.naive.add_mono(&Mono::product(&monos(&node.shape)));
            }
            self.vals[i] = Some(v);
        }
        Ok(())
    }

    fn val(&self, id: NodeId) -> Rc<Expr> {
        self.vals[id.index()].clone().expect("operands precede their consumers")
    }

    fn temp(&mut self, shape: &[Mono]) -> Base {
        self.prog.temps.push(Mono::product(shape));
        Base::Temp(self.prog.temps.len() - 1)
    }

    /// Write `v` (an expression over `shape`) to a new temporary; the result loads it.
    fn materialize(&mut self, v: &Rc<Expr>, shape: &Shape) -> Rc<Expr> {
        let shape = monos(shape);
        let base = self.temp(&shape);
        let out = Access::contiguous(base, &shape);
        self.prog.kernels.push(Kernel::Map { shape, expr: v.clone(), out: out.clone() });
        Rc::new(Expr::Load(out))
    }

    /// `v` in memory (any strides): a load, or materialised.
    fn mem(&mut self, v: &Rc<Expr>, shape: &Shape) -> Access {
        match v.as_load() {
            Some(a) => a.clone(),
            None => self.materialize(v, shape).as_load().cloned().expect("materialised"),
        }
    }

    /// `v` in contiguous row-major memory, as the custom kernels read it.
    fn contiguous(&mut self, v: &Rc<Expr>, shape: &Shape) -> Access {
        match v.as_load() {
            Some(a) if a.is_contiguous(&monos(shape)) => a.clone(),
            _ => self.materialize(v, shape).as_load().cloned().expect("materialised"),
        }
    }

    /// A new temporary of `shape` written by `kernel(out)`; returns the load of it.
    fn produce(&mut self, shape: &Shape, kernel: impl FnOnce(Access) -> Kernel) -> Rc<Expr> {
        let m = monos(shape);
        let base = self.temp(&m);
        let out = Access::contiguous(base, &m);
        self.prog.kernels.push(kernel(out.clone()));
        Rc::new(Expr::Load(out))
    }

    /// Fold an elementwise op over constants at compile time, with the interpreter's meaning.
    fn fold(&self, op: &Op, args: &[&Rc<Expr>]) -> Option<f64> {
        let xs: Vec<Tensor> = args
            .iter()
            .map(|e| match ***e {
                Expr::Const(c) => Some(Tensor::scalar(c)),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let refs: Vec<&Tensor> = xs.iter().collect();
        let env = Env { inputs: &[], params: &[], symbols: &[] };
        let v = ops::eval(op, &refs, &[], &env).ok()?.data[0];
        Some(if self.dtype == DType::F32 { v as f32 as f64 } else { v })
    }

    /// `build(x)`, or a constant when `x` is one.
    fn folded(&self, op: &Op, x: Rc<Expr>, build: impl FnOnce(Rc<Expr>) -> Rc<Expr>) -> Rc<Expr> {
        match self.fold(op, &[&x]) {
            Some(c) => Rc::new(Expr::Const(c)),
            None => build(x),
        }
    }

    fn unary(&self, op: &Op, un: Un, x: Rc<Expr>) -> Rc<Expr> {
        match self.fold(op, &[&x]) {
            Some(c) => Rc::new(Expr::Const(c)),
            None => Rc::new(Expr::Unary(un, x)),
        }
    }

    fn binary(&mut self, id: NodeId, bin: Bin) -> Result<Rc<Expr>, String> {
        let node = self.g.node(id);
        let (a, b) = (node.inputs[0], node.inputs[1]);
        let va = self.broadcast(self.val(a), self.g.shape(a), &node.shape)?;
        let vb = self.broadcast(self.val(b), self.g.shape(b), &node.shape)?;
        Ok(match self.fold(&node.op, &[&va, &vb]) {
            Some(c) => Rc::new(Expr::Const(c)),
            None => Rc::new(Expr::Binary(bin, va, vb)),
        })
    }

    /// where(cond, a, b): the three operands broadcast to the node's shape, one select.
    fn select(&mut self, id: NodeId) -> Result<Rc<Expr>, String> {
        let node = self.g.node(id);
        let mut v = vec![];
        for &x in &node.inputs {
            v.push(self.broadcast(self.val(x), self.g.shape(x), &node.shape)?);
        }
        Ok(match self.fold(&node.op, &[&v[0], &v[1], &v[2]]) {
            Some(c) => Rc::new(Expr::Const(c)),
            None => Rc::new(Expr::Select(v[0].clone(), v[1].clone(), v[2].clone())),
        })
    }

    /// `v` over `from` seen as a value over `to` by numpy broadcasting: new leading axes and
    /// stretched unit axes get stride 0. A computed value is materialised first if it would
    /// be recomputed for every copy.
    fn broadcast(&mut self, v: Rc<Expr>, from: &Shape, to: &Shape) -> Result<Rc<Expr>, String> {
        if from == to || !v.has_loads() {
            return Ok(v);
        }
        if to.len() < from.len() {
            return Err(format!("cannot broadcast {} to {}", self.g.shape_str(from), self.g.shape_str(to)));
        }
        let lead = to.len() - from.len();
        let mut stretches = lead > 0 && to[..lead].iter().any(|&d| d != Dim::Known(1));
        for (i, &d) in from.iter().enumerate() {
            if d != to[lead + i] {
                if d != Dim::Known(1) {
                    return Err(format!("cannot broadcast {} to {}", self.g.shape_str(from), self.g.shape_str(to)));
                }
                stretches = true;
            }
        }
        let v = if stretches && v.as_load().is_none() { self.materialize(&v, from) } else { v };
        Ok(map_loads(&v, &mut |a| {
            let mut strides = vec![Mono::zero(); lead];
            for (i, s) in a.strides.iter().enumerate() {
                strides.push(if from[i] == to[lead + i] { s.clone() } else { Mono::zero() });
            }
            Access { strides, ..a.clone() }
        }))
    }

    /// The value of node `id`: the one `match` over `Op` of the code generator.
    fn translate(&mut self, id: NodeId) -> Result<Rc<Expr>, String> {
        let g = self.g;
        let node = g.node(id);
        let shape = &node.shape;
        let x = |i: usize| node.inputs[i];
        let in_shape = |i: usize| g.shape(node.inputs[i]);
        Ok(match &node.op {
            Op::Input { index } => match &self.inputs {
                Some(values) => values.get(*index).cloned().ok_or("a loop body input out of range")?,
                None => self.leaf(Base::Input(*index), shape),
            },
            Op::Param { index } if self.inputs.is_some() => return Err(format!("a loop body reads parameter {index}")),
            Op::Param { index } => self.leaf(Base::Param(*index), shape),
            Op::Const { value } => Rc::new(Expr::Const(*value)),
            Op::Literal { values } => {
                let m = monos(shape);
                if Mono::product(&m).as_known() != Some(values.len() as i64) {
                    return Err(format!("a literal of {} values does not fill its shape", values.len()));
                }
                if shape.is_empty() {
                    Rc::new(Expr::Const(values[0]))
                } else {
                    self.prog.data.push(values.clone());
                    Rc::new(Expr::Load(Access::contiguous(Base::Data(self.prog.data.len() - 1), &m)))
                }
            }
            Op::DimSize { dim } => match dim {
                Dim::Known(n) => Rc::new(Expr::Const(*n as f64)),
                Dim::Sym(s) => Rc::new(Expr::Dim(s.0)),
            },
            Op::Neg => self.unary(&node.op, Un::Neg, self.val(x(0))),
            Op::Exp => {
                let v = self.val(x(0));
                let log_softmax = matches!(g.node(x(0)).op, Op::LogSoftmax { .. });
                let un = if log_softmax || never_positive(&v) { Un::ExpNonpositive } else { Un::Exp };
                self.unary(&node.op, un, v)
            }
            Op::Log => self.unary(&node.op, Un::Log, self.val(x(0))),
            Op::Sqrt => self.unary(&node.op, Un::Sqrt, self.val(x(0))),
            Op::Abs => self.unary(&node.op, Un::Abs, self.val(x(0))),
            Op::Sign => self.unary(&node.op, Un::Sign, self.val(x(0))),
            Op::Tanh => self.unary(&node.op, Un::Tanh, self.val(x(0))),
            Op::Sigmoid => self.unary(&node.op, Un::Sigmoid, self.val(x(0))),
            // The activations' values from the kernel IR's primitives (their derivatives are
            // ops of their own, built by their VJPs).
            Op::Relu => self.folded(&node.op, self.val(x(0)), relu_expr),
            Op::LeakyRelu { alpha } => self.folded(&node.op, self.val(x(0)), |x| leaky_relu_expr(x, *alpha)),
            Op::Elu { alpha } => self.folded(&node.op, self.val(x(0)), |x| elu_expr(x, *alpha)),
            Op::Softplus => self.folded(&node.op, self.val(x(0)), softplus_expr),
            Op::Erf => self.unary(&node.op, Un::Erf, self.val(x(0))),
            Op::Clip { lo, hi } => self.folded(&node.op, self.val(x(0)), |x| clip_expr(x, *lo, *hi)),
            Op::Add => self.binary(id, Bin::Add)?,
            Op::Sub => self.binary(id, Bin::Sub)?,
            Op::Mul => self.binary(id, Bin::Mul)?,
            Op::Div => self.binary(id, Bin::Div)?,
            Op::Pow => self.binary(id, Bin::Pow)?,
            Op::Max => self.binary(id, Bin::Max)?,
            Op::Min => self.binary(id, Bin::Min)?,
            Op::GreaterEq => self.binary(id, Bin::GreaterEq)?,
            Op::Greater => self.binary(id, Bin::Greater)?,
            Op::Equal => self.binary(id, Bin::Equal)?,
            Op::Where => self.select(id)?,
            Op::Broadcast { shape: to } => self.broadcast(self.val(x(0)), in_shape(0), to)?,
            Op::Reshape { shape: to } => self.reshape(self.val(x(0)), in_shape(0), to),
            Op::Transpose { perm } => map_loads(&self.val(x(0)), &mut |a| Access {
                strides: perm.iter().map(|&p| a.strides[p].clone()).collect(),
                ..a.clone()
            }),
            Op::Slice { axis, start, step, .. } => map_loads(&self.val(x(0)), &mut |a| {
                let mut strides = a.strides.clone();
                strides[*axis] = a.strides[*axis].scale(*step as i64);
                let offset = a.offset.add(&Poly::from_mono(a.strides[*axis].scale(*start as i64)));
                Access { offset, strides, ..a.clone() }
            }),
            Op::Pad { axis, before, step, .. } => self.pad(self.val(x(0)), in_shape(0), shape, (*axis, *before, *step)),
            // Element i is element n - 1 - i: start at the last, walk backwards.
            Op::Reverse { axis } => map_loads(&self.val(x(0)), &mut |a| {
                let mut strides = a.strides.clone();
                strides[*axis] = a.strides[*axis].scale(-1);
                let last = Mono::dim(shape[*axis]).mul(&a.strides[*axis]);
                let offset = a.offset.add(&Poly::from_mono(last)).add(&Poly::from_mono(strides[*axis].clone()));
                Access { offset, strides, ..a.clone() }
            }),
            Op::Concat { axis } => self.concat(&node.inputs, shape, *axis)?,
            Op::Gather { axis } => self.gather(id, *axis, None),
            Op::ScatterAdd { axis, size } => self.gather(id, *axis, Some(*size)),
            Op::Sum { axes } => self.reduce(self.val(x(0)), in_shape(0), axes, ReduceOp::Sum),
            Op::ReduceMax { axes } => self.reduce(self.val(x(0)), in_shape(0), axes, ReduceOp::Max),
            Op::ArgMaxMask { axis } => {
                let (outer, n, inner) = split_axis(in_shape(0), *axis);
                let xa = self.contiguous(&self.val(x(0)), in_shape(0));
                self.produce(shape, |out| Kernel::ArgMaxMask { outer, n, inner, x: xa, out })
            }
            Op::OneHot { classes } => {
                let count = Mono::product(&monos(in_shape(0)));
                let xa = self.contiguous(&self.val(x(0)), in_shape(0));
                self.produce(shape, |out| Kernel::OneHot { count, classes: *classes, x: xa, out })
            }
            Op::MatMul { transpose_a, transpose_b, batch, contract } => {
                self.matmul(id, (*transpose_a, *transpose_b), *batch, *contract)
            }
            Op::LogSoftmax { axis } => {
                let (outer, n, inner) = split_axis(in_shape(0), *axis);
                let xa = self.contiguous(&self.val(x(0)), in_shape(0));
                self.produce(shape, |out| Kernel::LogSoftmax { outer, n, inner, x: xa, out })
            }
            Op::Conv2d { stride, pad } => {
                let (xs, ws) = (in_shape(0), in_shape(1));
                let geom = conv_geom(xs, ws, shape, *stride, *pad)?;
                self.conv(ConvOp::Forward, geom, Mono::dim(xs[0]), id)?
            }
            Op::Conv2dInputGrad { stride, pad, .. } => {
                let (gs, ws) = (in_shape(0), in_shape(1));
                let geom = conv_geom(shape, ws, gs, *stride, *pad)?;
                self.conv(ConvOp::InputGrad, geom, Mono::dim(gs[0]), id)?
            }
            Op::Conv2dFilterGrad { stride, pad, .. } => {
                let (xs, gs) = (in_shape(0), in_shape(1));
                let geom = conv_geom(xs, shape, gs, *stride, *pad)?;
                self.conv(ConvOp::FilterGrad, geom, Mono::dim(xs[0]), id)?
            }
            Op::MaxPool2d { size, stride } => self.pool(PoolOp::Max, id, in_shape(0), shape, *size, *stride)?,
            Op::MaxPool2dGrad { size, stride } => {
                self.pool(PoolOp::MaxGrad, id, in_shape(0), in_shape(1), *size, *stride)?
            }
            Op::AvgPool2d { size, stride } => self.pool(PoolOp::Avg, id, in_shape(0), shape, *size, *stride)?,
            Op::AvgPool2dGrad { size, stride, .. } => {
                self.pool(PoolOp::AvgGrad, id, shape, in_shape(0), *size, *stride)?
            }
            Op::Loop { spec, output } => self.loop_result(id, spec, *output)?,
            Op::RandomUniform { stream, .. } => {
                let key = self.contiguous(&self.val(x(0)), in_shape(0));
                let count = Mono::product(&monos(shape));
                self.produce(shape, |out| Kernel::Random { count, stream: *stream, key, out })
            }
        })
    }

    fn leaf(&self, base: Base, shape: &Shape) -> Rc<Expr> {
        Rc::new(Expr::Load(Access::contiguous(base, &monos(shape))))
    }

    /// Same elements, new shape: free when every load of `v` is row-major (the flat index is
    /// unchanged); otherwise `v` is materialised first.
    fn reshape(&mut self, v: Rc<Expr>, from: &Shape, to: &Shape) -> Rc<Expr> {
        let (mf, mt) = (monos(from), monos(to));
        let v = if v.loads().iter().all(|a| a.is_contiguous(&mf)) { v } else { self.materialize(&v, from) };
        let strides = row_major(&mt);
        map_loads(&v, &mut |a| Access { strides: strides.clone(), ..a.clone() })
    }

    /// Reduce `v` over `axes` of `from` into a new temporary: the loop runs over the input's
    /// index space and the output has stride 0 along the reduced axes.
    fn reduce(&mut self, v: Rc<Expr>, from: &Shape, axes: &[usize], op: ReduceOp) -> Rc<Expr> {
        if axes.is_empty() {
            return v;
        }
        let kept: Shape = from.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
        let mk = monos(&kept);
        let base = self.temp(&mk);
        let whole = Access::contiguous(base, &mk);
        let identity = match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f64::NEG_INFINITY,
        };
        self.prog.kernels.push(Kernel::Fill { out: whole.clone(), len: Mono::product(&mk), value: identity });
        let mut kept_strides = whole.strides.iter();
        let strides = (0..from.len())
            .map(|i| if axes.contains(&i) { Mono::zero() } else { kept_strides.next().expect("kept axis").clone() })
            .collect();
        let out = Access { strides, ..whole.clone() };
        self.prog.kernels.push(Kernel::Reduce { shape: monos(from), expr: v, out, op });
        Rc::new(Expr::Load(whole))
    }

    fn conv(&mut self, op: ConvOp, geom: ConvGeom, batch: Mono, id: NodeId) -> Result<Rc<Expr>, String> {
        if let Some(tile) = self.conv.winograd(&geom) {
            return Ok(self.winograd(op, geom, tile, batch, id));
        }
        let node = self.g.node(id);
        let (i0, i1) = (node.inputs[0], node.inputs[1]);
        let a = self.contiguous(&self.val(i0), self.g.shape(i0));
        let b = self.contiguous(&self.val(i1), self.g.shape(i1));
        let col = if geom.is_pointwise() {
            None
        } else {
            let m = [Mono::known((geom.patch() * geom.pixels()) as i64)];
            Some(Access::contiguous(self.temp(&m), &m))
        };
        Ok(self.produce(&node.shape, |out| Kernel::Conv { op, batch, geom, a, b, out, col }))
    }

    /// `big` is the [N, C, H, W] side and `small` the pooled [N, C, OH, OW] side.
    fn pool(
        &mut self,
        op: PoolOp,
        id: NodeId,
        big: &Shape,
        small: &Shape,
        size: usize,
        stride: usize,
    ) -> Result<Rc<Expr>, String> {
        let node = self.g.node(id);
        let k = |s: &Shape, i: usize| s.get(i).and_then(|d| d.known()).ok_or("pooled axes must have known sizes");
        let geom = PoolGeom { h: k(big, 2)?, w: k(big, 3)?, oh: k(small, 2)?, ow: k(small, 3)?, size, stride };
        if big.len() != 4 || small.len() != 4 || stride == 0 {
            return Err("pooling takes [N, C, H, W] tensors".into());
        }
        let planes = Mono::dim(big[0]).mul(&Mono::dim(big[1]));
        let x0 = self.contiguous(&self.val(node.inputs[0]), self.g.shape(node.inputs[0]));
        let g = match node.inputs.get(1) {
            Some(&i1) => Some(self.contiguous(&self.val(i1), self.g.shape(i1))),
            None => None,
        };
        Ok(self.produce(&node.shape, |out| Kernel::Pool { op, planes, geom, x: x0, g, out }))
    }
}

/// The generated code trusts shapes and indices (it has no bounds checks), so a graph built
/// by hand with inconsistent ones is rejected here rather than compiled into out-of-bounds
/// accesses: operands precede their nodes, every shape is what the op's shape rule gives,
/// every symbol, input, parameter, output and update refers to something that exists.
fn validate(g: &Graph) -> Result<(), String> {
    let n = g.nodes.len();
    let sym_ok = |d: &Dim| match d {
        Dim::Sym(s) => (s.0 as usize) < g.symbols.len(),
        Dim::Known(_) => true,
    };
    for (i, node) in g.nodes.iter().enumerate() {
        if node.inputs.iter().any(|x| x.index() >= i) {
            return Err(format!("%{i} reads a node that does not precede it"));
        }
        if !node.shape.iter().all(sym_ok) {
            return Err(format!("%{i} has a shape with an unknown symbol"));
        }
        if let Op::Loop { spec, .. } = &node.op {
            validate(&spec.body).map_err(|e| format!("%{i}: in the loop body: {e}"))?;
        }
        match &node.op {
            Op::Literal { .. } => {}
            Op::DimSize { dim } if !sym_ok(dim) => return Err(format!("%{i} is the size of an unknown symbol")),
            op => {
                let shapes: Vec<&Shape> = node.inputs.iter().map(|&x| g.shape(x)).collect();
                let want = ops::infer_shape(op, &shapes, g).map_err(|e| format!("%{i}: {}", e.message(g, &shapes)))?;
                if want != node.shape {
                    return Err(format!(
                        "%{i} has shape {}, its op gives {}",
                        g.shape_str(&node.shape),
                        g.shape_str(&want)
                    ));
                }
            }
        }
    }
    if let Some((name, _)) = g.outputs.iter().find(|(_, id)| id.index() >= n) {
        return Err(format!("output `{name}` is not a node"));
    }
    for &(p, id) in &g.updates {
        if id.index() >= n || p >= g.params.len() || g.shape(id) != &g.params[p].shape {
            return Err(format!("the update of parameter {p} does not match it"));
        }
    }
    Ok(())
}

/// (elements before `axis`, its size, elements after it).
fn split_axis(shape: &Shape, axis: usize) -> (Mono, Mono, Mono) {
    let m = monos(shape);
    (Mono::product(&m[..axis]), m[axis].clone(), Mono::product(&m[axis + 1..]))
}

/// Geometry from x [N,C,H,W], w [F,C,KH,KW] and y [N,F,OH,OW].
fn conv_geom(x: &Shape, w: &Shape, y: &Shape, stride: usize, pad: usize) -> Result<ConvGeom, String> {
    if x.len() != 4 || w.len() != 4 || y.len() != 4 {
        return Err("convolution takes [N, C, H, W] tensors".into());
    }
    let k = |d: Dim| d.known().ok_or("convolution sizes other than the batch must be known");
    let geom = ConvGeom {
        c: k(x[1])?,
        h: k(x[2])?,
        w: k(x[3])?,
        f: k(w[0])?,
        kh: k(w[2])?,
        kw: k(w[3])?,
        oh: k(y[2])?,
        ow: k(y[3])?,
        stride,
        pad,
    };
    let fits = |n: usize, f: usize, o: usize| stride > 0 && n + 2 * pad >= f && (n + 2 * pad - f) / stride + 1 == o;
    if k(w[1])? != geom.c || k(y[1])? != geom.f || !fits(geom.h, geom.kh, geom.oh) || !fits(geom.w, geom.kw, geom.ow) {
        return Err("inconsistent convolution shapes".into());
    }
    Ok(geom)
}

/// Whether a value read by several maps is cheaper to compute again in each than to write and
/// read back: one addition, subtraction or multiplication of one load by a constant (GELU's
/// x/√2 and x/2, which its backward reads too: each was a 4 MB pass in W10's step).
fn recompute(v: &Expr) -> bool {
    let constant = |e: &Expr| !e.has_loads();
    match v {
        Expr::Binary(Bin::Add | Bin::Sub | Bin::Mul, a, b) => {
            (a.as_load().is_some() && constant(b)) || (constant(a) && b.as_load().is_some())
        }
        Expr::Unary(Un::Neg, a) => a.as_load().is_some(),
        _ => false,
    }
}

/// Whether `e` is −(a·a) or −|a|, at most 0 (or NaN) whatever a is: its exp needs no overflow
/// handling (`Un::ExpNonpositive`; a Gaussian's e^(−x²/2), GELU's backward). The two factors
/// must be one value (the same node): comparing trees could take time exponential in their
/// depth where they share subtrees (repeated squaring).
fn never_positive(e: &Expr) -> bool {
    match e {
        Expr::Unary(Un::Neg, x) => match &**x {
            Expr::Binary(Bin::Mul, a, b) => Rc::ptr_eq(a, b),
            Expr::Unary(Un::Abs, _) => true,
            _ => false,
        },
        _ => false,
    }
}
