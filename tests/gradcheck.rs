//! Every op's gradient against central differences, on hand-built graphs.
//!
//! Each test states the math first. Values are kept away from kinks (max ties, |x| at 0,
//! maxpool ties) except in the tests that assert the convention at a kink, which compare the
//! analytic gradient with the expected one directly.

use netc::ir::autodiff;
use netc::ir::gradcheck;
use netc::ir::graph::{DType, Dim, Graph, Init, InputKind, NodeId, Op, Shape};
use netc::ir::interp;
use netc::ir::tensor::Tensor;
use proptest::prelude::*;

use crate::cases;

/// Largest accepted relative error (see `gradcheck::relative_errors`); a wrong rule gives O(1).
const TOL: f64 = 1e-5;
const EPS: f64 = 1e-6;

fn dims(shape: &[usize]) -> Shape {
    shape.iter().map(|&n| Dim::Known(n)).collect()
}

/// A graph whose leaves are parameters `p0, p1, ...` of the given shapes.
fn leaves(shapes: &[&[usize]]) -> (Graph, Vec<NodeId>) {
    let mut g = Graph::new(DType::F64);
    let ids = shapes.iter().enumerate().map(|(i, s)| g.add_param(&format!("p{i}"), dims(s), Init::Zeros)).collect();
    (g, ids)
}

/// Distinct values spread over [lo, hi): a golden-ratio sequence, so no two are close (no
/// max ties, nothing near a kink unless the range contains it).
fn spread(n: usize, seed: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|k| lo + (hi - lo) * (((k + 1) * 7 + seed * 13) as f64 * 0.618_033_988_749_895).fract()).collect()
}

fn tensor(shape: &[usize], values: Vec<f64>) -> Tensor {
    Tensor::new(shape.to_vec(), values)
}

/// Assert that d`of`/d(each wrt) matches central differences, at every element.
fn assert_grads(g: &Graph, of: NodeId, wrt: &[NodeId], inputs: &[Tensor], params: &[Tensor]) {
    let reports = gradcheck::check_elements(g, of, wrt, inputs, params, EPS, usize::MAX)
        .unwrap_or_else(|e| panic!("gradcheck: {e}"));
    for r in reports {
        assert!(
            r.max_rel_error < TOL,
            "d/d{}: relative error {:e} at element {}\n analytic {:?}\n numeric  {:?}\n{}",
            r.name,
            r.max_rel_error,
            r.worst,
            r.analytic.data,
            r.numeric.data,
            g.to_text()
        );
    }
}

/// Build `op` over parameters with these shapes and values, and check its gradient wrt all.
fn check_op(op: Op, shapes: &[&[usize]], values: Vec<Vec<f64>>) {
    let (mut g, xs) = leaves(shapes);
    let y = g.add(op, &xs).expect("valid op");
    let params: Vec<Tensor> = shapes.iter().zip(values).map(|(s, v)| tensor(s, v)).collect();
    assert_grads(&g, y, &xs, &[], &params);
}

/// Values for every shape, spread over [lo, hi).
fn spread_all(shapes: &[&[usize]], lo: f64, hi: f64) -> Vec<Vec<f64>> {
    shapes.iter().enumerate().map(|(i, s)| spread(s.iter().product(), i, lo, hi)).collect()
}

/// The analytic gradients of `of` (evaluated by the interpreter) for the given parameters.
fn analytic(g: &Graph, of: NodeId, wrt: &[NodeId], params: &[Tensor]) -> Vec<Vec<f64>> {
    let mut g = g.clone();
    let grads = autodiff::differentiate(&mut g, of, wrt).unwrap();
    let values = interp::run(&g, &[], params).unwrap();
    grads.iter().map(|d| values[d.index()].data.clone()).collect()
}

// ---- elementwise, one operand ---------------------------------------------------------------

#[test]
fn unary_ops() {
    let s: &[&[usize]] = &[&[2, 3]];
    // y = -x: dx = -g;  e^x: g*y;  tanh: g*(1-y²);  sigmoid: g*y*(1-y)
    for op in [Op::Neg, Op::Exp, Op::Tanh, Op::Sigmoid] {
        check_op(op, s, spread_all(s, -2.0, 2.0));
    }
    // ln x: g/x;  sqrt x: g/(2y)  (x > 0)
    for op in [Op::Log, Op::Sqrt] {
        check_op(op, s, spread_all(s, 0.2, 3.0));
    }
    // |x|: g*sign(x), away from 0
    check_op(Op::Abs, s, vec![vec![-2.0, -1.5, -0.3, 0.4, 1.1, 2.5]]);
}

#[test]
fn abs_at_zero_has_zero_gradient() {
    // d|x|/dx at 0 = sign(0) = 0 (a subgradient), like PyTorch.
    let (mut g, x) = leaves(&[&[3]]);
    let a = g.add(Op::Abs, &[x[0]]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0] }, &[a]).unwrap();
    let d = analytic(&g, l, &x, &[tensor(&[3], vec![-2.0, 0.0, 3.0])]);
    assert_eq!(d[0], vec![-1.0, 0.0, 1.0]);
}

// ---- elementwise, two operands, with broadcasting -------------------------------------------

/// Shape pairs that broadcast: equal, prepended axes, stretched 1s both ways, scalars.
const BROADCAST_PAIRS: &[(&[usize], &[usize])] = &[
    (&[2, 3], &[2, 3]),
    (&[2, 3], &[3]),
    (&[3], &[2, 3]),
    (&[2, 1], &[1, 3]),
    (&[4, 1, 3], &[2, 1]),
    (&[], &[2, 2]),
    (&[2, 2], &[]),
];

#[test]
fn binary_ops_broadcast() {
    for &(a, b) in BROADCAST_PAIRS {
        let shapes: &[&[usize]] = &[a, b];
        // a + b: (g, g);  a - b: (g, -g);  a * b: (g*b, g*a)  -- summed back to each shape
        for op in [Op::Add, Op::Sub, Op::Mul] {
            check_op(op, shapes, spread_all(shapes, -2.0, 2.0));
        }
        // a / b: (g/b, -g*y/b), b away from 0
        check_op(
            Op::Div,
            shapes,
            vec![spread(a.iter().product(), 0, -2.0, 2.0), spread(b.iter().product(), 1, 0.5, 2.0)],
        );
        // a^b: (g*b*a^(b-1), g*ln(a)*y), a > 0
        check_op(
            Op::Pow,
            shapes,
            vec![spread(a.iter().product(), 0, 0.5, 2.0), spread(b.iter().product(), 1, -1.5, 2.5)],
        );
        // max/min route g to the larger/smaller operand (distinct values: no ties)
        check_op(
            Op::Max,
            shapes,
            vec![spread(a.iter().product(), 0, -2.0, 2.0), spread(b.iter().product(), 1, -2.1, 1.9)],
        );
        check_op(
            Op::Min,
            shapes,
            vec![spread(a.iter().product(), 0, -2.0, 2.0), spread(b.iter().product(), 1, -2.1, 1.9)],
        );
    }
}

#[test]
fn pow_with_constant_exponent_builds_no_log() {
    // y = x^2: only da = g*2*x^(2-1) is built; db (with ln x, NaN for x < 0) is dropped.
    let (mut g, x) = leaves(&[&[3]]);
    let two = g.constant(2.0);
    let y = g.add(Op::Pow, &[x[0], two]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0] }, &[y]).unwrap();
    let forward = g.nodes.len();
    autodiff::differentiate(&mut g, l, &x).unwrap();
    assert!(g.nodes[forward..].iter().all(|n| n.op != Op::Log), "{}", g.to_text());
    let params = [tensor(&[3], vec![-1.5, 0.5, 2.0])];
    assert_eq!(analytic(&g, l, &x, &params)[0], vec![-3.0, 1.0, 4.0]);
}

#[test]
fn relu_at_zero_has_zero_gradient() {
    // relu'(0) = 0 (PyTorch's convention at the kink); the slope is 1 above 0.
    let (mut g, x) = leaves(&[&[4]]);
    let r = g.add(Op::Relu, &[x[0]]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0] }, &[r]).unwrap();
    let d = analytic(&g, l, &x, &[tensor(&[4], vec![-1.0, 0.0, 0.5, 2.0])]);
    assert_eq!(d[0], vec![0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn max_and_min_ties_split_evenly_so_both_orders_agree() {
    // At a == b each operand gets g/2 (PyTorch's maximum/minimum); elsewhere the winner gets g.
    for op in [Op::Max, Op::Min] {
        for swap in [false, true] {
            let (mut g, x) = leaves(&[&[3], &[3]]);
            let operands = if swap { [x[1], x[0]] } else { [x[0], x[1]] };
            let m = g.add(op.clone(), &operands).unwrap();
            let w = g.push_literal(&[3], &[1.0, 2.0, 3.0]);
            let p = g.add(Op::Mul, &[m, w]).unwrap();
            let l = g.add(Op::Sum { axes: vec![0] }, &[p]).unwrap();
            let params = [tensor(&[3], vec![1.0, 2.0, 3.0]), tensor(&[3], vec![1.0, 5.0, -3.0])];
            let d = analytic(&g, l, &x, &params);
            // a = [1, 2, 3], b = [1, 5, -3], weights [1, 2, 3]: a tie, then b larger, then a
            let (da, db) =
                if op == Op::Max { ([0.5, 0.0, 3.0], [0.5, 2.0, 0.0]) } else { ([0.5, 2.0, 0.0], [0.5, 0.0, 3.0]) };
            assert_eq!(d[0], da, "{op:?} swapped {swap}");
            assert_eq!(d[1], db, "{op:?} swapped {swap}");
        }
    }
}

#[test]
fn piecewise_constant_ops_pass_no_gradient() {
    // L = Σ greater_eq(a, b)*c + Σ sign(a)*c + Σ argmax_mask(a)*c + Σ one_hot(k)·w:
    // dL/da = dL/db = dL/dk = 0 (away from the steps), dL/dc = the masks.
    let (mut g, x) = leaves(&[&[2, 3], &[2, 3], &[2, 3], &[2], &[2, 3]]);
    let (a, b, c, k, w) = (x[0], x[1], x[2], x[3], x[4]);
    let ge = g.add(Op::GreaterEq, &[a, b]).unwrap();
    let sg = g.add(Op::Sign, &[a]).unwrap();
    let am = g.add(Op::ArgMaxMask { axis: 1 }, &[a]).unwrap();
    let oh = g.add(Op::OneHot { classes: 3 }, &[k]).unwrap();
    let mut total = g.constant(0.0);
    for (mask, weight) in [(ge, c), (sg, c), (am, c), (oh, w)] {
        let p = g.add(Op::Mul, &[mask, weight]).unwrap();
        let s = g.add(Op::Sum { axes: vec![0, 1] }, &[p]).unwrap();
        total = g.add(Op::Add, &[total, s]).unwrap();
    }
    let params = vec![
        tensor(&[2, 3], spread(6, 0, -2.0, 2.0)),
        tensor(&[2, 3], spread(6, 1, -2.1, 1.9)),
        tensor(&[2, 3], spread(6, 2, -1.0, 1.0)),
        tensor(&[2], vec![2.0, 0.0]),
        tensor(&[2, 3], spread(6, 3, -1.0, 1.0)),
    ];
    // (Class indices cannot be perturbed by eps: they must stay whole numbers.)
    let not_labels = [a, b, c, w];
    assert_grads(&g, total, &not_labels, &[], &params);
    let d = analytic(&g, total, &x, &params);
    assert!(d[0].iter().chain(&d[1]).chain(&d[3]).all(|&v| v == 0.0));
}

// ---- layout ---------------------------------------------------------------------------------

#[test]
fn layout_ops() {
    // broadcast: dx = g summed over the prepended and stretched axes
    for (from, to) in [(&[3][..], &[2, 3][..]), (&[2, 1], &[2, 3]), (&[], &[2, 2]), (&[1, 3], &[4, 2, 3])] {
        check_op(Op::Broadcast { shape: dims(to) }, &[from], spread_all(&[from], -1.0, 1.0));
    }
    // reshape: dx = reshape(g);  transpose: dx = transpose(g, perm⁻¹)
    check_op(Op::Reshape { shape: dims(&[3, 2]) }, &[&[2, 3]], spread_all(&[&[2, 3]], -1.0, 1.0));
    check_op(Op::Reshape { shape: dims(&[6]) }, &[&[2, 1, 3]], spread_all(&[&[2, 1, 3]], -1.0, 1.0));
    check_op(Op::Transpose { perm: vec![1, 0] }, &[&[2, 3]], spread_all(&[&[2, 3]], -1.0, 1.0));
    check_op(Op::Transpose { perm: vec![2, 0, 1] }, &[&[2, 3, 4]], spread_all(&[&[2, 3, 4]], -1.0, 1.0));
    // slice: dx = pad(g) back with zeros;  pad: dx = slice(g)
    for axis in 0..3 {
        check_op(Op::Slice { axis, start: 1, len: 2, step: 1 }, &[&[3, 4, 3]], spread_all(&[&[3, 4, 3]], -1.0, 1.0));
        check_op(Op::Pad { axis, before: 1, after: 2, step: 1 }, &[&[2, 3, 2]], spread_all(&[&[2, 3, 2]], -1.0, 1.0));
    }
}

// ---- reductions -----------------------------------------------------------------------------

#[test]
fn sums() {
    // sum over axes: dx = broadcast(g with unit axes back)
    let s: &[&[usize]] = &[&[2, 3, 4]];
    for axes in [vec![], vec![0], vec![1], vec![2], vec![0, 2], vec![0, 1, 2]] {
        check_op(Op::Sum { axes }, s, spread_all(s, -1.0, 1.0));
    }
}

#[test]
fn reduce_max_and_log_softmax() {
    let s: &[&[usize]] = &[&[3, 4]];
    for axis in 0..2 {
        // max along axis: dx = g at the (unique) maximum
        check_op(Op::ReduceMax { axes: vec![axis] }, s, spread_all(s, -2.0, 2.0));
        // log_softmax: dx = g - softmax * Σg
        check_op(Op::LogSoftmax { axis }, s, spread_all(s, -3.0, 3.0));
    }
}

#[test]
fn reduce_max_ties_split_evenly_among_the_maxima() {
    // PyTorch's amax: a tie of k maxima gives each g/k, also across several axes at once.
    let (mut g, x) = leaves(&[&[2, 3]]);
    let m = g.add(Op::ReduceMax { axes: vec![1] }, &[x[0]]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0] }, &[m]).unwrap();
    let d = analytic(&g, l, &x, &[tensor(&[2, 3], vec![3.0, 1.0, 3.0, 0.0, 5.0, 5.0])]);
    assert_eq!(d[0], vec![0.5, 0.0, 0.5, 0.0, 0.5, 0.5]);
    // max over both axes of [[1, 1], [1, 0]]: three maxima, a third each (not ¼, ¼, ½ as two
    // one-axis reductions in a row would give)
    let (mut g, x) = leaves(&[&[2, 2]]);
    let m = g.add(Op::ReduceMax { axes: vec![0, 1] }, &[x[0]]).unwrap();
    let d = analytic(&g, m, &x, &[tensor(&[2, 2], vec![1.0, 1.0, 1.0, 0.0])]);
    let third = 1.0 / 3.0;
    assert_eq!(d[0], vec![third, third, third, 0.0]);
}

// ---- matmul, conv, pooling ------------------------------------------------------------------

#[test]
fn matmul_all_transpose_flags() {
    // y = op(A) op(B) with op(A): 3×4, op(B): 4×2; each gradient is one matmul
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a: &[usize] = if ta { &[4, 3] } else { &[3, 4] };
        let b: &[usize] = if tb { &[2, 4] } else { &[4, 2] };
        check_op(Op::matmul(ta, tb), &[a, b], spread_all(&[a, b], -1.0, 1.0));
    }
}

#[test]
fn conv2d_strides_and_padding() {
    // y = conv2d(x, w): dx = conv2d_input_grad(g, w), dw = conv2d_filter_grad(x, g)
    for (stride, pad, h) in [(1, 0, 5), (1, 1, 4), (2, 0, 5), (2, 1, 5)] {
        let shapes: &[&[usize]] = &[&[2, 2, h, h], &[3, 2, 3, 3]];
        check_op(Op::Conv2d { stride, pad }, shapes, spread_all(shapes, -1.0, 1.0));
    }
}

#[test]
fn conv2d_gradient_ops_have_gradients() {
    // conv2d_input_grad(g, w) and conv2d_filter_grad(x, g) are bilinear: their VJPs are again
    // convolutions, so differentiation is closed.
    for (stride, pad, h) in [(1, 1, 4), (2, 0, 5), (2, 1, 5)] {
        let oh = (h + 2 * pad - 3) / stride + 1;
        let shapes: &[&[usize]] = &[&[2, 3, oh, oh], &[3, 2, 3, 3]];
        let op = Op::Conv2dInputGrad { stride, pad, height: h, width: h };
        check_op(op, shapes, spread_all(shapes, -1.0, 1.0));
        let shapes: &[&[usize]] = &[&[2, 2, h, h], &[2, 3, oh, oh]];
        let op = Op::Conv2dFilterGrad { stride, pad, kernel_h: 3, kernel_w: 3 };
        check_op(op, shapes, spread_all(shapes, -1.0, 1.0));
    }
}

#[test]
fn pooling() {
    // maxpool: g routed to each window's maximum;  avgpool: g/size² spread over the window
    for (size, stride, h) in [(2, 2, 4), (3, 1, 5), (2, 1, 3)] {
        let s: &[&[usize]] = &[&[2, 2, h, h]];
        check_op(Op::MaxPool2d { size, stride }, s, spread_all(s, -2.0, 2.0));
        check_op(Op::AvgPool2d { size, stride }, s, spread_all(s, -2.0, 2.0));
        // avgpool2d_grad is linear: its VJP is avgpool2d
        let oh = (h - size) / stride + 1;
        let s: &[&[usize]] = &[&[2, 2, oh, oh]];
        check_op(Op::AvgPool2dGrad { size, stride, height: h, width: h }, s, spread_all(s, -2.0, 2.0));
    }
}

#[test]
fn maxpool2d_grad_is_linear_in_its_gradient() {
    // maxpool2d_grad(x, g) gathers back: d/dg = u at each window's first maximum; d/dx = 0.
    let shapes: &[&[usize]] = &[&[2, 2, 4, 4], &[2, 2, 2, 2]];
    check_op(Op::MaxPool2dGrad { size: 2, stride: 2 }, shapes, spread_all(shapes, -2.0, 2.0));
    // Overlapping windows: a clear error rather than a wrong answer.
    let (mut g, x) = leaves(&[&[1, 1, 3, 3], &[1, 1, 2, 2]]);
    let y = g.add(Op::MaxPool2dGrad { size: 2, stride: 1 }, &x).unwrap();
    let l = g.add(Op::Sum { axes: vec![0, 1, 2, 3] }, &[y]).unwrap();
    let err = autodiff::differentiate(&mut g, l, &x[1..]).unwrap_err();
    assert!(err.contains("not supported"), "{err}");
}

#[test]
fn maxpool_ties_route_to_the_first_maximum_of_each_window() {
    // Windows scanned row-major: the top-left-most maximum takes the gradient.
    let (mut g, x) = leaves(&[&[1, 1, 2, 4]]);
    let p = g.add(Op::MaxPool2d { size: 2, stride: 2 }, &[x[0]]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0, 1, 2, 3] }, &[p]).unwrap();
    // window 1: all 7s -> top-left; window 2: 9 at top-right and bottom-left -> top-right
    let values = vec![7.0, 7.0, 1.0, 9.0, 7.0, 7.0, 9.0, 2.0];
    let d = analytic(&g, l, &x, &[tensor(&[1, 1, 2, 4], values)]);
    assert_eq!(d[0], vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn perturbations_across_a_kink_are_reported_not_failed() {
    // relu(x) at x = 3e-7 (and at 0): x ± eps straddles the kink, so the central difference
    // is (1.3e-6 - 0)/2e-6 = 0.65 (and 0.5), not a slope. gradcheck sees the max switch
    // branches and sets those elements aside.
    let (mut g, x) = leaves(&[&[4]]);
    let zero = g.constant(0.0);
    let r = g.add(Op::Max, &[zero, x[0]]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0] }, &[r]).unwrap();
    let params = [tensor(&[4], vec![3e-7, 0.0, -1.0, 2.0])];
    let report = &gradcheck::check(&g, l, &x, &[], &params, EPS).unwrap()[0];
    assert_eq!(report.skipped.iter().map(|s| s.element).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(report.skipped[0].node, r);
    assert!(report.max_rel_error < 1e-9, "{report:?}");
    let near = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
    assert!(near(&report.numeric.data, &[0.65, 0.5, 0.0, 1.0]), "{report:?}");
    // relu(x) = max(0, x): at the tie x = 0 max splits evenly
    assert_eq!(report.analytic.data, vec![1.0, 0.5, 0.0, 1.0]);
}

#[test]
fn large_tensors_are_checked_on_a_sample() {
    // 40×40 weights: `check` compares MAX_CHECKED elements, the rest are NaN in `numeric`.
    let (mut g, x) = leaves(&[&[40, 40]]);
    let t = g.add(Op::Tanh, &[x[0]]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0, 1] }, &[t]).unwrap();
    let params = [tensor(&[40, 40], spread(1600, 0, -2.0, 2.0))];
    let report = &gradcheck::check(&g, l, &x, &[], &params, EPS).unwrap()[0];
    assert_eq!(report.checked, gradcheck::MAX_CHECKED);
    assert_eq!(report.numeric.data.iter().filter(|v| !v.is_nan()).count(), gradcheck::MAX_CHECKED);
    assert!(report.max_rel_error < TOL, "{}", report.max_rel_error);
}

#[test]
fn relative_error_formula() {
    // |a - n| / max(|a| + |n|, 1e-3·scale, floor)
    let rel = gradcheck::relative_errors(&[1.0, 2.0, 1e-6, 0.0], &[1.0, 2.2, 2e-6, 0.0], 0.0);
    assert_eq!(rel[0], 0.0);
    assert!((rel[1] - 0.2 / 4.2).abs() < 1e-15);
    assert!((rel[2] - 1e-6 / (1e-3 * 4.2)).abs() < 1e-15, "tiny elements are compared against the scale");
    assert_eq!(rel[3], 0.0);
    // an analytic 0 against a numeric 1e-12 (truncation error) agrees: the absolute floor;
    // against 1e-6 it is wrong, relatively
    assert_eq!(gradcheck::relative_errors(&[0.0], &[1e-12], 0.0), [0.0]);
    assert_eq!(gradcheck::relative_errors(&[0.0], &[gradcheck::ABS_FLOOR * 1.5], 0.0), [1.0]);
    assert_eq!(gradcheck::relative_errors(&[0.0], &[1e-6], 0.0), [1.0]);
    assert!(gradcheck::relative_errors(&[f64::NAN], &[1.0], 0.0)[0].is_nan());
    // a floor above the values makes the comparison absolute
    assert!((gradcheck::relative_errors(&[1e-6], &[2e-6], 1.0)[0] - 1e-6).abs() < 1e-18);
}

// ---- the driver: sums over uses, unconnected leaves, symbolic dims, non-scalar outputs --------

#[test]
fn a_value_used_twice_gets_the_sum_of_its_gradients() {
    // L = Σ (x*x + x) w: dx = (2x + 1) w
    let (mut g, x) = leaves(&[&[3], &[3]]);
    let sq = g.add(Op::Mul, &[x[0], x[0]]).unwrap();
    let y = g.add(Op::Add, &[sq, x[0]]).unwrap();
    let p = g.add(Op::Mul, &[y, x[1]]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0] }, &[p]).unwrap();
    let params = [tensor(&[3], vec![1.0, -2.0, 0.5]), tensor(&[3], vec![1.0, 2.0, 3.0])];
    assert_eq!(analytic(&g, l, &x[..1], &params)[0], vec![3.0, -6.0, 6.0]);
    assert_grads(&g, l, &x, &[], &params);
}

#[test]
fn unconnected_leaves_get_zero_gradients_and_names() {
    let mut g = Graph::new(DType::F64);
    let x = g.add_param("x", dims(&[2]), Init::Zeros);
    let w = g.add_param("W", dims(&[2, 3]), Init::Zeros);
    let e = g.add(Op::Exp, &[x]).unwrap();
    g.annotate(e, Some("h"), None);
    let l = g.add(Op::Sum { axes: vec![0] }, &[e]).unwrap();
    let grads = autodiff::differentiate(&mut g, l, &[x, w]).unwrap();
    assert_eq!(g.node(grads[0]).name.as_deref(), Some("d_x"));
    assert_eq!(g.node(grads[1]).name.as_deref(), Some("d_W"));
    assert!(g.to_text().contains("# d_h"), "{}", g.to_text());
    let values = interp::run(&g, &[], &[tensor(&[2], vec![0.0, 1.0]), Tensor::zeros(vec![2, 3])]).unwrap();
    assert_eq!(values[grads[1].index()], Tensor::zeros(vec![2, 3]));
    assert_eq!(values[grads[0].index()].data, vec![1.0, 1f64.exp()]);
}

#[test]
fn symbolic_batch_mean() {
    // L = mean over the batch B of Σ_j tanh(x W)_bj: the count is a DimSize node.
    let mut g = Graph::new(DType::F64);
    let b = g.symbol("B");
    let x = g.add_input("x", vec![Dim::Sym(b), Dim::Known(3)], InputKind::Data);
    let w = g.add_param("W", dims(&[3, 2]), Init::Zeros);
    let h = g.add(Op::matmul(false, false), &[x, w]).unwrap();
    let t = g.add(Op::Tanh, &[h]).unwrap();
    let s = g.add(Op::Sum { axes: vec![0, 1] }, &[t]).unwrap();
    let n = g.push_dim_size(Dim::Sym(b));
    let l = g.add(Op::Div, &[s, n]).unwrap();
    for batch in [1, 4] {
        let inputs = [tensor(&[batch, 3], spread(batch * 3, 0, -1.0, 1.0))];
        assert_grads(&g, l, &[x, w], &inputs, &[tensor(&[3, 2], spread(6, 1, -1.0, 1.0))]);
    }
}

#[test]
fn non_scalar_output_is_seeded_by_a_gradient_input() {
    // y = x * w has shape [2, 3]: the backward graph takes dL/dy as an input `d_y`.
    let mut g = Graph::new(DType::F64);
    let x = g.add_param("x", dims(&[2, 3]), Init::Zeros);
    let w = g.add_param("w", dims(&[3]), Init::Zeros);
    let y = g.add(Op::Mul, &[x, w]).unwrap();
    g.annotate(y, Some("y"), None);
    let mut h = g.clone();
    let b = autodiff::backward(&mut h, y, &[x, w]).unwrap();
    assert_eq!(b.start, g.nodes.len());
    assert_eq!(h.inputs.last().map(|i| (i.name.as_str(), i.kind)), Some(("d_y", InputKind::Gradient)));
    assert!(matches!(h.node(b.seed).op, Op::Input { .. }));
    // gradcheck weights the output by a fixed random upstream gradient.
    assert_grads(
        &g,
        y,
        &[x, w],
        &[],
        &[tensor(&[2, 3], spread(6, 0, -1.0, 1.0)), tensor(&[3], spread(3, 1, -1.0, 1.0))],
    );
}

// ---- no Jacobian ----------------------------------------------------------------------------

#[test]
fn backward_of_a_two_layer_net_materialises_no_jacobian() {
    // scores = max(0, x W1 + b1) W2; every backward node is no bigger than a forward one
    // (a Jacobian of h wrt x would have |h|·|x| = 64·100 × 64·50 elements).
    let mut g = Graph::new(DType::F32);
    let x = g.add_input("x", dims(&[64, 100]), InputKind::Data);
    let w1 = g.add_param("W1", dims(&[100, 50]), Init::He);
    let b1 = g.add_param("b1", dims(&[50]), Init::Zeros);
    let w2 = g.add_param("W2", dims(&[50, 10]), Init::He);
    let mm = Op::matmul(false, false);
    let h = g.add(mm.clone(), &[x, w1]).unwrap();
    let h = g.add(Op::Add, &[h, b1]).unwrap();
    let zero = g.constant(0.0);
    let h = g.add(Op::Max, &[zero, h]).unwrap();
    let s = g.add(mm, &[h, w2]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0, 1] }, &[s]).unwrap();
    let start = g.nodes.len();
    autodiff::differentiate(&mut g, l, &[w1, b1, w2]).unwrap();
    let numel = |n: &netc::ir::graph::Node| n.shape.iter().map(|d| d.known().unwrap()).product::<usize>();
    let largest_forward = g.nodes[..start].iter().map(numel).max().unwrap();
    for (i, n) in g.nodes.iter().enumerate().skip(start) {
        assert!(numel(n) <= largest_forward, "%{i} has {} elements\n{}", numel(n), g.to_text());
    }
    // Two matmuls for W2 and h, one for W1 (x needs no gradient).
    let matmuls = g.nodes[start..].iter().filter(|n| matches!(n.op, Op::MatMul { .. })).count();
    assert_eq!(matmuls, 3, "{}", g.to_text());
}

// ---- second derivatives ---------------------------------------------------------------------

/// Differentiate scalar `l` wrt `wrt`, then check the gradient of each first derivative
/// (a non-scalar node, weighted by a random vector: a Hessian-vector product) by finite
/// differences of the first-derivative graph.
fn assert_second_derivatives(g: &Graph, l: NodeId, wrt: &[NodeId], params: &[Tensor]) {
    let mut g = g.clone();
    let first = autodiff::differentiate(&mut g, l, wrt).unwrap();
    for d in first {
        assert_grads(&g, d, wrt, &[], params);
    }
}

#[test]
fn second_derivatives_of_elementwise_ops() {
    // L = Σ f(x) * w for each f: d²L/dx² = f''(x) w, d²L/dxdw = f'(x)
    let cases: Vec<(Op, f64, f64)> = vec![
        (Op::Exp, -1.0, 1.0),
        (Op::Log, 0.5, 2.0),
        (Op::Sqrt, 0.5, 2.0),
        (Op::Tanh, -2.0, 2.0),
        (Op::Sigmoid, -2.0, 2.0),
        (Op::Neg, -1.0, 1.0),
        (Op::Abs, 0.5, 2.0),
    ];
    for (op, lo, hi) in cases {
        let (mut g, x) = leaves(&[&[2, 3], &[3]]);
        let y = g.add(op, &[x[0]]).unwrap();
        let p = g.add(Op::Mul, &[y, x[1]]).unwrap();
        let l = g.add(Op::Sum { axes: vec![0, 1] }, &[p]).unwrap();
        let params = [tensor(&[2, 3], spread(6, 0, lo, hi)), tensor(&[3], spread(3, 1, -1.0, 1.0))];
        assert_second_derivatives(&g, l, &x, &params);
    }
    // binary ops: L = Σ (a ∘ b)², for ∘ in *, /, pow, max
    for op in [Op::Mul, Op::Div, Op::Pow, Op::Max, Op::Sub, Op::Add] {
        let (mut g, x) = leaves(&[&[2, 3], &[3]]);
        let y = g.add(op, &[x[0], x[1]]).unwrap();
        let sq = g.add(Op::Mul, &[y, y]).unwrap();
        let l = g.add(Op::Sum { axes: vec![0, 1] }, &[sq]).unwrap();
        let params = [tensor(&[2, 3], spread(6, 0, 0.5, 2.0)), tensor(&[3], spread(3, 1, 0.6, 1.9))];
        assert_second_derivatives(&g, l, &x, &params);
    }
}

#[test]
fn second_derivatives_of_matmul_and_conv() {
    // L = Σ tanh(op(A) op(B)): the first derivatives are matmuls of tanh', differentiable again.
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a: &[usize] = if ta { &[4, 3] } else { &[3, 4] };
        let b: &[usize] = if tb { &[2, 4] } else { &[4, 2] };
        let (mut g, x) = leaves(&[a, b]);
        let y = g.add(Op::matmul(ta, tb), &x).unwrap();
        let t = g.add(Op::Tanh, &[y]).unwrap();
        let l = g.add(Op::Sum { axes: vec![0, 1] }, &[t]).unwrap();
        let params = [tensor(a, spread(12, 0, -1.0, 1.0)), tensor(b, spread(8, 1, -1.0, 1.0))];
        assert_second_derivatives(&g, l, &x, &params);
    }
    // L = Σ tanh(conv2d(x, w)), stride 2, pad 1
    let (mut g, x) = leaves(&[&[1, 2, 5, 5], &[2, 2, 3, 3]]);
    let y = g.add(Op::Conv2d { stride: 2, pad: 1 }, &x).unwrap();
    let t = g.add(Op::Tanh, &[y]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0, 1, 2, 3] }, &[t]).unwrap();
    let params = [tensor(&[1, 2, 5, 5], spread(50, 0, -1.0, 1.0)), tensor(&[2, 2, 3, 3], spread(36, 1, -0.5, 0.5))];
    assert_second_derivatives(&g, l, &x, &params);
}

#[test]
fn second_derivatives_of_log_softmax_and_pooling() {
    // cross-entropy-like L = -Σ onehot ⊙ log_softmax(x W), then through pooling.
    let (mut g, x) = leaves(&[&[2, 3], &[3, 4]]);
    let s = g.add(Op::matmul(false, false), &x).unwrap();
    let lp = g.add(Op::LogSoftmax { axis: 1 }, &[s]).unwrap();
    let w = g.push_literal(&[2, 4], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let p = g.add(Op::Mul, &[lp, w]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0, 1] }, &[p]).unwrap();
    let params = [tensor(&[2, 3], spread(6, 0, -1.0, 1.0)), tensor(&[3, 4], spread(12, 1, -1.0, 1.0))];
    assert_second_derivatives(&g, l, &x, &params);

    for pool in [Op::MaxPool2d { size: 2, stride: 2 }, Op::AvgPool2d { size: 2, stride: 1 }] {
        let (mut g, x) = leaves(&[&[1, 2, 4, 4]]);
        let t = g.add(Op::Tanh, &[x[0]]).unwrap();
        let p = g.add(pool, &[t]).unwrap();
        let sq = g.add(Op::Mul, &[p, p]).unwrap();
        let l = g.add(Op::Sum { axes: vec![0, 1, 2, 3] }, &[sq]).unwrap();
        assert_second_derivatives(&g, l, &x, &[tensor(&[1, 2, 4, 4], spread(32, 0, -2.0, 2.0))]);
    }
}

// ---- property tests over random shapes and values -------------------------------------------

/// A shape of rank 0..=3 with dims 1..=3, and a second shape that broadcasts with it (some
/// leading axes dropped, some dims replaced by 1), in random order.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (prop::collection::vec(1usize..=3, 0..=3), any::<u8>(), any::<bool>()).prop_map(|(full, bits, swap)| {
        let drop = (bits as usize % 3).min(full.len());
        let other: Vec<usize> =
            full.iter().enumerate().skip(drop).map(|(i, &d)| if bits >> (2 + i) & 1 == 1 { 1 } else { d }).collect();
        if swap {
            (other, full)
        } else {
            (full, other)
        }
    })
}

fn values(n: usize, lo: f64, hi: f64) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(lo..hi, n)
}

proptest! {
    #![proptest_config(crate::common::proptest_cases(16))]

    #[test]
    fn prop_binary_ops_broadcast(
        (a, b) in broadcast_pair(),
        signed in values(27, -2.0, 2.0),
        positive in values(27, 0.5, 2.0),
    ) {
        let (na, nb) = (a.iter().product::<usize>(), b.iter().product::<usize>());
        for op in [Op::Add, Op::Sub, Op::Mul] {
            check_op(op, &[&a, &b], vec![signed[..na].to_vec(), signed[27 - nb..].to_vec()]);
        }
        // b != 0 for division, a > 0 for a real power
        check_op(Op::Div, &[&a, &b], vec![signed[..na].to_vec(), positive[27 - nb..].to_vec()]);
        check_op(Op::Pow, &[&a, &b], vec![positive[..na].to_vec(), signed[27 - nb..].to_vec()]);
    }

    #[test]
    fn prop_max_min_away_from_ties(
        (a, b) in broadcast_pair(),
        va in values(27, -2.0, 2.0),
        vb in values(27, -2.0, 2.0),
    ) {
        let (na, nb) = (a.iter().product::<usize>(), b.iter().product::<usize>());
        let (va, vb) = (va[..na].to_vec(), vb[..nb].to_vec());
        // Central differences straddle a kink closer than eps: skip such draws.
        prop_assume!(va.iter().all(|x| vb.iter().all(|y| (x - y).abs() > 1e-3)));
        for op in [Op::Max, Op::Min] {
            check_op(op, &[&a, &b], vec![va.clone(), vb.clone()]);
        }
    }

    #[test]
    fn prop_reductions(
        shape in prop::collection::vec(1usize..=4, 1..=3),
        axis_bits in any::<u8>(),
        v in values(64, -3.0, 3.0),
    ) {
        let n: usize = shape.iter().product();
        let v = v[..n].to_vec();
        let axes: Vec<usize> = (0..shape.len()).filter(|a| axis_bits >> a & 1 == 1).collect();
        let axis = axis_bits as usize % shape.len();
        check_op(Op::Sum { axes }, &[&shape], vec![v.clone()]);
        check_op(Op::LogSoftmax { axis }, &[&shape], vec![v.clone()]);
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        prop_assume!(sorted.windows(2).all(|w| w[1] - w[0] > 1e-3));
        check_op(Op::ReduceMax { axes: vec![axis] }, &[&shape], vec![v.clone()]);
        let axes: Vec<usize> = (0..shape.len()).filter(|a| axis_bits >> a & 1 == 1).collect();
        check_op(Op::ReduceMax { axes }, &[&shape], vec![v]);
    }

    #[test]
    fn prop_matmul(m in 1usize..=4, k in 1usize..=4, n in 1usize..=4, ta: bool, tb: bool, v in values(32, -1.0, 1.0)) {
        let a = if ta { [k, m] } else { [m, k] };
        let b = if tb { [n, k] } else { [k, n] };
        check_op(Op::matmul(ta, tb), &[&a, &b], vec![v[..m * k].to_vec(), v[16..16 + k * n].to_vec()]);
    }

    #[test]
    fn prop_conv2d(
        stride in 1usize..=2, pad in 0usize..=1, k in 1usize..=3, c in 1usize..=2, f in 1usize..=2, out in 1usize..=3,
        v in values(2 * 2 * 49 + 2 * 2 * 9, -1.0, 1.0),
    ) {
        // the input size for which the windows tile exactly: h + 2*pad = (out - 1)*stride + k
        let padded = (out - 1) * stride + k;
        prop_assume!(padded > 2 * pad);
        let h = padded - 2 * pad;
        let xs = [2, c, h, h];
        let ws = [f, c, k, k];
        let (nx, nw) = (xs.iter().product::<usize>(), ws.iter().product::<usize>());
        check_op(Op::Conv2d { stride, pad }, &[&xs, &ws], vec![v[..nx].to_vec(), v[nx..nx + nw].to_vec()]);
    }

    #[test]
    fn prop_layout(
        shape in prop::collection::vec(1usize..=3, 1..=3),
        perm_seed in any::<u64>(),
        v in values(27, -1.0, 1.0),
    ) {
        let n: usize = shape.iter().product();
        let v = v[..n].to_vec();
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        perm.rotate_left(perm_seed as usize % shape.len());
        if perm_seed & 1 == 1 { perm.reverse(); }
        check_op(Op::Transpose { perm }, &[&shape], vec![v.clone()]);
        check_op(Op::Reshape { shape: dims(&[n]) }, &[&shape], vec![v.clone()]);
        let axis = perm_seed as usize % shape.len();
        check_op(Op::Pad { axis, before: 1, after: 0, step: 1 }, &[&shape], vec![v.clone()]);
        check_op(Op::Slice { axis, start: shape[axis] - 1, len: 1, step: 1 }, &[&shape], vec![v.clone()]);
        let mut bigger = vec![2];
        bigger.extend(&shape);
        check_op(Op::Broadcast { shape: dims(&bigger) }, &[&shape], vec![v]);
    }

    #[test]
    fn prop_pooling(size in 1usize..=3, stride in 1usize..=3, out in 1usize..=3, v in values(2 * 2 * 81, -2.0, 2.0)) {
        let h = (out - 1) * stride + size;
        let s = [2, 2, h, h];
        let v = v[..s.iter().product::<usize>()].to_vec();
        check_op(Op::AvgPool2d { size, stride }, &[&s], vec![v.clone()]);
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        prop_assume!(sorted.windows(2).all(|w| w[1] - w[0] > 1e-4));
        check_op(Op::MaxPool2d { size, stride }, &[&s], vec![v]);
    }
}

// ---- small graph-building helpers not in the public API ----------------------------------

trait Build {
    fn push_literal(&mut self, shape: &[usize], values: &[f64]) -> NodeId;
    fn push_dim_size(&mut self, dim: Dim) -> NodeId;
}

impl Build for Graph {
    fn push_literal(&mut self, shape: &[usize], values: &[f64]) -> NodeId {
        self.push(netc::ir::graph::Node {
            op: Op::Literal { values: values.into() },
            inputs: vec![],
            shape: dims(shape),
            name: None,
            span: None,
        })
    }

    fn push_dim_size(&mut self, dim: Dim) -> NodeId {
        self.push(netc::ir::graph::Node {
            op: Op::DimSize { dim },
            inputs: vec![],
            shape: vec![],
            name: None,
            span: None,
        })
    }
}

// ---- every op and every built-in (tests/cases: the compiler keeps the list complete) ------

#[test]
fn every_op_has_its_own_case() {
    // Each listed case holds the variant it was listed for, and no variant is listed twice.
    let cases = cases::all_op_cases();
    for (i, c) in cases.iter().enumerate() {
        let again = cases::op_case(&c.op);
        assert_eq!(std::mem::discriminant(&again.op), std::mem::discriminant(&c.op), "{:?}", c.op);
        for d in &cases[..i] {
            assert_ne!(std::mem::discriminant(&d.op), std::mem::discriminant(&c.op), "{:?} listed twice", c.op);
        }
    }
}

#[test]
fn every_op_gradient_matches_central_differences() {
    let mut checked = 0;
    for c in cases::all_op_cases() {
        let (g, y, loss, leaves) = cases::build(&c, DType::F64);
        let values = cases::values(&c, 0);
        // Leaves are parameters, except the input of the `Input` case.
        let (inputs, params) = if matches!(c.op, Op::Input { .. }) { (values, vec![]) } else { (vec![], values) };
        if !c.differentiable {
            // No gradient flows through a piecewise-constant op: d/dx of its value is zero.
            let mut g2 = g.clone();
            let grads = autodiff::differentiate(&mut g2, loss, &leaves).unwrap();
            let v = interp::run(&g2, &inputs, &params).unwrap();
            for d in grads {
                assert!(v[d.index()].data.iter().all(|&e| e == 0.0), "{:?} passed a gradient", c.op);
            }
            continue;
        }
        let reports = gradcheck::check_elements(&g, loss, &leaves, &inputs, &params, EPS, usize::MAX)
            .unwrap_or_else(|e| panic!("{:?}: {e}", c.op));
        for r in reports {
            assert!(r.skipped.is_empty(), "{:?}: the case's values sit on a kink: {:?}", c.op, r.skipped);
            assert!(r.max_rel_error < TOL, "{:?}: d/d{} relative error {:e}", c.op, r.name, r.max_rel_error);
        }
        let _ = y;
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} ops were gradient-checked");
}

#[test]
fn every_builtin_expression_gradient_matches_central_differences() {
    use netc::frontend::builtins::Builtin;
    for &b in Builtin::ALL {
        let (expr, training) = match cases::builtin_case(b) {
            cases::BuiltinCase::Expr(expr) => (expr, false),
            // Random numbers (dropout masks) are fixed by the eval block's key: the central
            // differences see the same mask at every perturbation.
            cases::BuiltinCase::TrainingExpr(expr) => (expr, true),
            _ => continue,
        };
        let src = cases::expr_source(expr, training);
        let checked = netc::frontend::check::check_source(&src).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
        let e = &checked.evals[0];
        let req = &e.grads[0];
        let wrt: Vec<NodeId> = req.wrt.iter().map(|w| w.1).collect();
        let reports = gradcheck::check_elements(&e.graph, req.of, &wrt, &e.values, &[], EPS, usize::MAX)
            .unwrap_or_else(|err| panic!("{expr}: {err}"));
        for r in reports {
            assert!(r.skipped.is_empty(), "{expr}: the case's values sit on a kink of d/d{}", r.name);
            assert!(r.max_rel_error < TOL, "{expr}: d/d{} relative error {:e}", r.name, r.max_rel_error);
        }
    }
}
