//! Each op's meaning by hand, and the adjoint identities of the gradient ops.

use netc::ir::graph::{Dim, Graph, Op, Shape};
use netc::ir::ops::*;
use netc::ir::tensor::Tensor;

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
    let mm = |ta, tb| ev(Op::matmul(ta, tb), &[&a, &b], &[2, 2]).data;
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
    assert_eq!(ev(Op::ReduceMax { axes: vec![1] }, &[&x], &[2]).data, [5.0, 6.0]);
    assert_eq!(ev(Op::ReduceMax { axes: vec![0, 1] }, &[&x], &[]).data, [6.0]);
    assert_eq!(ev(Op::ArgMaxMask { axis: 0 }, &[&x], &[2, 3]).data, [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(ev(Op::Transpose { perm: vec![1, 0] }, &[&x], &[3, 2]).data, [1.0, 4.0, 5.0, 2.0, 3.0, 6.0]);
    assert_eq!(ev(Op::Slice { axis: 1, start: 1, len: 2, step: 1 }, &[&x], &[2, 2]).data, [5.0, 3.0, 2.0, 6.0]);
    let p = ev(Op::Pad { axis: 0, before: 1, after: 0, step: 1 }, &[&x], &[3, 3]).data;
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
fn structure_by_hand() {
    let x = t(&[2, 5], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    // x[:, 1::2] and its adjoint: g's elements 2 apart from 1, zeros elsewhere
    assert_eq!(ev(Op::Slice { axis: 1, start: 1, len: 2, step: 2 }, &[&x], &[2, 2]).data, [1.0, 3.0, 6.0, 8.0]);
    let g = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let p = ev(Op::Pad { axis: 1, before: 1, after: 1, step: 2 }, &[&g], &[2, 5]).data;
    assert_eq!(p, [0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 4.0, 0.0]);
    assert_eq!(ev(Op::Reverse { axis: 0 }, &[&x], &[2, 5]).data[..5], [5.0, 6.0, 7.0, 8.0, 9.0]);
    let c = ev(Op::Concat { axis: 1 }, &[&g, &t(&[2, 1], &[9.0, 8.0])], &[2, 3]).data;
    assert_eq!(c, [1.0, 2.0, 9.0, 3.0, 4.0, 8.0]);
    // E[idx] with a repeated index, and the scatter-add that sums the repeats
    let idx = t(&[3], &[4.0, 0.0, 4.0]);
    assert_eq!(ev(Op::Gather { axis: 1 }, &[&x, &idx], &[2, 3]).data, [4.0, 0.0, 4.0, 9.0, 5.0, 9.0]);
    let rows = t(&[3, 1], &[1.0, 10.0, 100.0]);
    let s = ev(Op::ScatterAdd { axis: 0, size: 5 }, &[&rows, &idx], &[5, 1]).data;
    assert_eq!(s, [10.0, 0.0, 0.0, 0.0, 101.0]);
    let bad = t(&[1], &[5.0]);
    let env = Env { inputs: &[], params: &[], symbols: &[] };
    assert!(eval(&Op::Gather { axis: 1 }, &[&x, &bad], &[2, 1], &env).unwrap_err().contains("out of range"));
    assert!(eval(&Op::Gather { axis: 1 }, &[&x, &t(&[1], &[0.5])], &[2, 1], &env).is_err());
}

#[test]
fn structure_gradient_ops_are_adjoints() {
    // <slice(x), g> = <x, pad(g)>, <gather(x, i), g> = <x, scatter_add(g, i)>, for strided and
    // repeated cases
    let x = seq(&[3, 7, 2], 0.0);
    for (start, len, step) in [(0, 7, 1), (1, 3, 2), (6, 1, 3), (0, 3, 3)] {
        let y = ev(Op::Slice { axis: 1, start, len, step }, &[&x], &[3, len, 2]);
        let g = seq(&y.shape, 2.0);
        let after = 7 - (start + (len - 1) * step + 1);
        let dx = ev(Op::Pad { axis: 1, before: start, after, step }, &[&g], &[3, 7, 2]);
        assert!((dot(&y, &g) - dot(&x, &dx)).abs() < 1e-12);
    }
    let idx = t(&[2, 2], &[6.0, 0.0, 6.0, 6.0]);
    let y = ev(Op::Gather { axis: 1 }, &[&x, &idx], &[3, 2, 2, 2]);
    let g = seq(&y.shape, 5.0);
    let dx = ev(Op::ScatterAdd { axis: 1, size: 7 }, &[&g, &idx], &[3, 7, 2]);
    assert!((dot(&y, &g) - dot(&x, &dx)).abs() < 1e-12);
}

#[test]
fn batched_matmul_by_hand() {
    // two 1×2 · 2×1 products; b's batch of 1 broadcast: [[1, 2]]·[[5], [6]] = 17, [[3, 4]]·… = 39
    let (a, b) = (t(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]), t(&[1, 2, 1], &[5.0, 6.0]));
    let op = Op::MatMul { transpose_a: false, transpose_b: false, batch: 1, contract: 1 };
    assert_eq!(ev(op, &[&a, &b], &[2, 1, 1]).data, [17.0, 39.0]);
    // rows of two axes, contracted over two axes: [2, 3]·[3] per row pair, and a vector result
    let op = Op::MatMul { transpose_a: false, transpose_b: false, batch: 0, contract: 2 };
    let a = t(&[1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = t(&[2, 2], &[1.0, 0.0, 0.0, 1.0]);
    assert_eq!(ev(op, &[&a, &b], &[1]).data, [5.0]);
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
    let mut g = Graph::new(netc::ir::graph::DType::F64);
    let k = |v: &[usize]| v.iter().map(|&n| Dim::Known(n)).collect::<Shape>();
    let grad = g.add_param("g", k(&[1, 2, 3, 3]), netc::ir::graph::Init::Zeros);
    let w = g.add_param("w", k(&[2, 1, 3, 3]), netc::ir::graph::Init::Zeros);
    // a 5×5 input with a 3×3 kernel gives 3×3: fine; a 6×6 input would give 4×4
    assert!(g.add(Op::Conv2dInputGrad { stride: 1, pad: 0, height: 5, width: 5 }, &[grad, w]).is_ok());
    assert!(g.add(Op::Conv2dInputGrad { stride: 1, pad: 0, height: 6, width: 6 }, &[grad, w]).is_err());
    let x = g.add_param("x", k(&[1, 1, 4, 4]), netc::ir::graph::Init::Zeros);
    let pooled = g.add_param("p", k(&[1, 1, 2, 2]), netc::ir::graph::Init::Zeros);
    assert!(g.add(Op::MaxPool2dGrad { size: 2, stride: 2 }, &[x, pooled]).is_ok());
    assert!(g.add(Op::MaxPool2dGrad { size: 2, stride: 1 }, &[x, pooled]).is_err());
}
