//! Differential tests of the code generator: every op, JIT-compiled, against the reference
//! interpreter on seeded random inputs, in f32 and f64, at sizes 1, 3, 7 and 33 (vector
//! tails and odd GEMM tiles); then backward graphs from `autodiff`, train steps with in-place
//! updates, the memory plan and compile time.

use netc::codegen::{CompileOptions, MathMode};
use netc::drivers::jit::{self, Element};
use netc::ir::graph::{DType, Dim, Graph, InputKind, NodeId, Op, Shape};
use netc::ir::tensor::Tensor;
use netc::runtime::rng::Rng;

use crate::cases;
use crate::common;

// ---- helpers ------------------------------------------------------------------------------

fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

fn random(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(|_| rng.uniform_in(lo, hi)).collect())
}

/// Values as the interpreter sees them for the graph's dtype.
fn rounded(t: Tensor, dtype: DType) -> Tensor {
    match dtype {
        DType::F32 => Tensor::new(t.shape.clone(), t.data.iter().map(|&v| v as f32 as f64).collect()),
        DType::F64 => t,
    }
}

/// |jit - interp| <= atol + rtol·|interp| elementwise, for every output.
fn assert_close(what: &str, got: &[Tensor], want: &[Tensor], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: number of outputs");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.shape, w.shape, "{what}: shape of output {k}");
        for (i, (&a, &b)) in g.data.iter().zip(&w.data).enumerate() {
            let ok = (a - b).abs() <= atol + rtol * b.abs() || (a.is_nan() && b.is_nan()) || a == b;
            assert!(ok, "{what}: output {k}[{i}] = {a}, interpreter says {b} (rtol {rtol}, atol {atol})");
        }
    }
}

/// Compile `g`, run it and the interpreter on the same tensors, compare outputs and updated
/// parameters. Then compile it bounds-checked (`CompileOptions::checked`): no check may
/// fire, and the results must be the same bits.
fn differential(what: &str, g: &Graph, inputs: &[Tensor], params: &[Tensor], rtol: f64, atol: f64) {
    differential_with(what, g, inputs, params, rtol, atol, &CompileOptions::default());
}

/// `differential` compiled with `opts` (and `opts` + checked).
fn differential_with(
    what: &str,
    g: &Graph,
    inputs: &[Tensor],
    params: &[Tensor],
    rtol: f64,
    atol: f64,
    opts: &CompileOptions,
) {
    let inputs: Vec<Tensor> = inputs.iter().map(|t| rounded(t.clone(), g.dtype)).collect();
    let params: Vec<Tensor> = params.iter().map(|t| rounded(t.clone(), g.dtype)).collect();
    let values = netc::ir::interp::run(g, &inputs, &params).unwrap_or_else(|e| panic!("{what}: interpreter: {e}"));
    let want: Vec<Tensor> = g.outputs.iter().map(|(_, id)| values[id.index()].clone()).collect();
    let mut want_params = params.clone();
    for &(p, id) in &g.updates {
        want_params[p] = values[id.index()].clone();
    }
    let mut c = jit::compile(g, opts).unwrap_or_else(|e| panic!("{what}: compile: {e:?}"));
    let mut got_params = params.clone();
    let got = c.run_tensors(&inputs, &mut got_params).unwrap_or_else(|e| panic!("{what}: run: {e}"));
    assert_close(what, &got, &want, rtol, atol);
    assert_close(&format!("{what} (updated params)"), &got_params, &want_params, rtol, atol);

    let opts = CompileOptions { checked: true, ..opts.clone() };
    let mut c = jit::compile(g, &opts).unwrap_or_else(|e| panic!("{what}: checked compile: {e:?}"));
    let mut checked_params = params.clone();
    let checked = c.run_tensors(&inputs, &mut checked_params).unwrap_or_else(|e| panic!("{what}: checked run: {e}"));
    let bits = |ts: &[Tensor]| ts.iter().map(|t| t.data.iter().map(|v| v.to_bits()).collect()).collect::<Vec<Vec<_>>>();
    assert_eq!(bits(&checked), bits(&got), "{what}: checked outputs differ");
    assert_eq!(bits(&checked_params), bits(&got_params), "{what}: checked updated params differ");
}

fn dtype_tol(dtype: DType, f32_tol: f64, f64_tol: f64) -> f64 {
    match dtype {
        DType::F32 => f32_tol,
        DType::F64 => f64_tol,
    }
}

/// A range of values, or a (relative, absolute) tolerance.
type Pair = (f64, f64);

const DTYPES: [DType; 2] = [DType::F32, DType::F64];
const SIZES: [usize; 4] = [1, 3, 7, 33];

// ---- a thin slice against hand-computed values -----------------------------------------------

#[test]
fn dense_relu_sum_by_hand() {
    // y = relu(x @ W + b); s = sum(y)
    // x = [[1, 2], [3, -4]], W = [[1, -1, 0], [2, 0, 1]], b = [0.5, 0, -10]
    // x@W = [[5, -1, 2], [-5, -3, -4]]; +b = [[5.5, -1, -8], [-4.5, -3, -14]]; relu -> [[5.5,0,0],[0,0,0]]
    let mut g = Graph::new(DType::F32);
    let x = g.add_input("x", known(&[2, 2]), InputKind::Data);
    let w = g.add_param("W", known(&[2, 3]), netc::ir::graph::Init::Zeros);
    let b = g.add_param("b", known(&[3]), netc::ir::graph::Init::Zeros);
    let xw = g.add(Op::matmul(false, false), &[x, w]).unwrap();
    let z = g.add(Op::Add, &[xw, b]).unwrap();
    let zero = g.constant(0.0);
    let y = g.add(Op::Max, &[zero, z]).unwrap();
    let s = g.add(Op::Sum { axes: vec![0, 1] }, &[y]).unwrap();
    g.outputs = vec![("y".into(), y), ("s".into(), s)];
    let mut c = jit::compile(&g, &CompileOptions::default()).unwrap();
    let xs = [vec![1.0f32, 2.0, 3.0, -4.0]];
    let mut ps = [vec![1.0f32, -1.0, 0.0, 2.0, 0.0, 1.0], vec![0.5, 0.0, -10.0]];
    let mut outs = [vec![0.0f32; 6], vec![0.0f32; 1]];
    c.run(&xs, &mut ps, &mut outs, &[]).unwrap();
    assert_eq!(outs[0], vec![5.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(outs[1], vec![5.5]);
    // matmul, then one fused loop for + b and relu, then the sum
    assert!(c.stats().kernels <= 4, "{:?}", c.stats());
}

// ---- every op, alone -------------------------------------------------------------------------

/// `op` applied to fresh inputs of `shapes` (drawn uniformly from `ranges`), the only output.
fn op_graph(dtype: DType, op: Op, shapes: &[Shape]) -> Graph {
    let mut g = Graph::new(dtype);
    let ids: Vec<NodeId> =
        shapes.iter().enumerate().map(|(i, s)| g.add_input(&format!("x{i}"), s.clone(), InputKind::Data)).collect();
    let y = g.add(op, &ids).unwrap_or_else(|e| panic!("{e:?}"));
    g.outputs = vec![("y".into(), y)];
    g
}

struct Case<'a> {
    op: Op,
    shapes: Vec<Vec<usize>>,
    ranges: &'a [(f64, f64)],
    /// (rtol, atol) for f32 and for f64.
    tol32: (f64, f64),
    tol64: (f64, f64),
}

fn run_case(c: &Case, seed: u64) {
    run_case_with(c, seed, &CompileOptions::default());
}

fn run_case_with(c: &Case, seed: u64, opts: &CompileOptions) {
    for dtype in DTYPES {
        let shapes: Vec<Shape> = c.shapes.iter().map(|s| known(s)).collect();
        let g = op_graph(dtype, c.op.clone(), &shapes);
        let mut rng = Rng::new(seed);
        let inputs: Vec<Tensor> =
            c.shapes.iter().enumerate().map(|(i, s)| random(&mut rng, s, c.ranges[i].0, c.ranges[i].1)).collect();
        let (rtol, atol) = if dtype == DType::F32 { c.tol32 } else { c.tol64 };
        let what = format!("{:?} {dtype} on {:?}", c.op, c.shapes);
        differential_with(&what, &g, &inputs, &[], rtol, atol, opts);
    }
}

/// Exact up to rounding: IEEE add, mul, div, sqrt round the same in both.
const EXACT32: (f64, f64) = (1.2e-7, 0.0);
const EXACT64: (f64, f64) = (2.3e-16, 0.0);

#[test]
fn unary_ops() {
    let cases: [(Op, Pair, Pair, Pair); 14] = [
        (Op::Neg, (-3.0, 3.0), EXACT32, EXACT64),
        (Op::Relu, (-3.0, 3.0), EXACT32, EXACT64),
        (Op::LeakyRelu { alpha: 0.1 }, (-3.0, 3.0), EXACT32, EXACT64),
        (Op::LeakyRelu { alpha: 3.0 }, (-3.0, 3.0), EXACT32, EXACT64),
        (Op::Elu { alpha: 0.5 }, (-20.0, 3.0), (4.8e-7, 0.0), (9e-16, 0.0)),
        (Op::Softplus, (-40.0, 40.0), (4.8e-7, 0.0), (9e-16, 0.0)),
        (Op::Softplus, (-1.0, 1.0), (4.8e-7, 0.0), (9e-16, 0.0)),
        (Op::Abs, (-3.0, 3.0), EXACT32, EXACT64),
        (Op::Sign, (-3.0, 3.0), EXACT32, EXACT64),
        (Op::Sqrt, (0.0, 50.0), EXACT32, EXACT64),
        (Op::Exp, (-20.0, 20.0), (4.8e-7, 0.0), (9e-16, 0.0)),
        (Op::Log, (1e-3, 1e3), (4.8e-7, 1e-7), (9e-16, 1e-16)),
        (Op::Tanh, (-6.0, 6.0), (4.8e-7, 1e-9), (9e-16, 1e-18)),
        (Op::Sigmoid, (-30.0, 30.0), (4.8e-7, 1e-12), (9e-16, 1e-20)),
    ];
    for (seed, (op, range, tol32, tol64)) in cases.into_iter().enumerate() {
        for n in SIZES {
            for shape in [vec![n], vec![2, n], vec![n, 3, 2]] {
                run_case(&Case { op: op.clone(), shapes: vec![shape], ranges: &[range], tol32, tol64 }, seed as u64);
            }
        }
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let ops: [(Op, Pair, Pair); 7] = [
        (Op::Add, (-3.0, 3.0), (-3.0, 3.0)),
        (Op::Sub, (-3.0, 3.0), (-3.0, 3.0)),
        (Op::Mul, (-3.0, 3.0), (-3.0, 3.0)),
        (Op::Div, (-3.0, 3.0), (0.5, 3.0)),
        (Op::Max, (-1.0, 1.0), (-1.0, 1.0)),
        (Op::Min, (-1.0, 1.0), (-1.0, 1.0)),
        (Op::GreaterEq, (-1.0, 1.0), (-1.0, 1.0)),
    ];
    for (seed, (op, ra, rb)) in ops.into_iter().enumerate() {
        for n in SIZES {
            let pairs = [
                (vec![n], vec![n]),
                (vec![3, n], vec![n]),
                (vec![n], vec![2, n]),
                (vec![n, 1], vec![1, n]),
                (vec![2, n, 3], vec![n, 1]),
                (vec![], vec![n, 2]),
            ];
            for (a, b) in pairs {
                let case =
                    Case { op: op.clone(), shapes: vec![a, b], ranges: &[ra, rb], tol32: EXACT32, tol64: EXACT64 };
                run_case(&case, seed as u64);
            }
        }
    }
}

#[test]
fn max_min_greater_eq_ties_route_left() {
    // At a tie the value is either operand (equal, but for the sign of a zero): the left one.
    for dtype in DTYPES {
        let xs = Tensor::new(vec![5], vec![-1.0, 0.0, -0.0, 2.0, 0.0]);
        let ys = Tensor::new(vec![5], vec![0.0, 0.0, 0.0, 0.0, -0.0]);
        for op in [Op::Max, Op::Min, Op::GreaterEq] {
            let g = op_graph(dtype, op.clone(), &[known(&[5]), known(&[5])]);
            differential(&format!("{op:?} ties"), &g, &[xs.clone(), ys.clone()], &[], 0.0, 0.0);
        }
    }
}

/// The max and min gates route the gradient by two comparisons, g·½([a ≥ b] + 1 − [b ≥ a]) and
/// g·½([b ≥ a] + 1 − [a ≥ b]) (halves at a tie): ties, signed zeros, infinities and NaNs route
/// exactly as in the interpreter, whose `1 − mask` is a complementary compare in the
/// generated code.
#[test]
fn max_and_min_gradients_route_like_the_interpreter() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    let a = vec![-1.0, 0.0, -0.0, 2.0, 0.0, inf, -inf, nan, 1.0, nan, 3.0];
    let b = vec![0.0, 0.0, 0.0, 0.0, -0.0, 1.0, -inf, 1.0, nan, nan, 3.0];
    let r = vec![1.5, -2.0, 0.5, 3.0, -1.0, 2.0, 0.25, 1.0, -1.0, 2.0, inf];
    let n = a.len();
    for dtype in DTYPES {
        for op in [Op::Max, Op::Min] {
            for wrt in [vec![0], vec![1], vec![0, 1]] {
                let mut g = Graph::new(dtype);
                let xs =
                    [g.add_input("a", known(&[n]), InputKind::Data), g.add_input("b", known(&[n]), InputKind::Data)];
                let y = g.add(op.clone(), &xs).unwrap();
                let rs = g.add_input("r", known(&[n]), InputKind::Data);
                let yr = g.add(Op::Mul, &[y, rs]).unwrap();
                let loss = g.add(Op::Sum { axes: vec![0] }, &[yr]).unwrap();
                let of: Vec<NodeId> = wrt.iter().map(|&i| xs[i]).collect();
                let grads = netc::ir::autodiff::differentiate(&mut g, loss, &of).unwrap();
                g.outputs = grads.iter().enumerate().map(|(i, &d)| (format!("d{i}"), d)).collect();
                let inputs =
                    [Tensor::new(vec![n], a.clone()), Tensor::new(vec![n], b.clone()), Tensor::new(vec![n], r.clone())];
                differential(&format!("{op:?} routing wrt {wrt:?}"), &g, &inputs, &[], 0.0, 0.0);
            }
        }
    }
}

#[test]
fn pow_constant_and_general_exponents() {
    for dtype in DTYPES {
        for p in [2.0, 3.0, -1.0, 0.5, 1.5, 0.0, -2.5] {
            for n in SIZES {
                let mut g = Graph::new(dtype);
                let x = g.add_input("x", known(&[n]), InputKind::Data);
                let e = g.constant(p);
                let y = g.add(Op::Pow, &[x, e]).unwrap();
                g.outputs = vec![("y".into(), y)];
                let xs = random(&mut Rng::new(n as u64), &[n], 0.1, 4.0);
                let tol = dtype_tol(dtype, 2.4e-7, 4.5e-16);
                differential(&format!("pow {p} {dtype}"), &g, &[xs], &[], tol, 0.0);
            }
        }
        for n in SIZES {
            let case = Case {
                op: Op::Pow,
                shapes: vec![vec![n], vec![n]],
                ranges: &[(0.1, 4.0), (-2.0, 2.0)],
                tol32: (2.4e-7, 0.0),
                tol64: (4.5e-16, 0.0),
            };
            run_case(&case, 7);
        }
    }
}

#[test]
fn layout_ops() {
    for n in SIZES {
        let r = &[(-5.0, 5.0)][..];
        let cases = [
            (Op::Broadcast { shape: known(&[3, n]) }, vec![n]),
            (Op::Broadcast { shape: known(&[4, 2, n]) }, vec![2, 1]),
            (Op::Reshape { shape: known(&[n, 6]) }, vec![2, 3, n]),
            (Op::Transpose { perm: vec![1, 0] }, vec![3, n]),
            (Op::Transpose { perm: vec![2, 0, 1] }, vec![2, n, 5]),
            (Op::Slice { axis: 1, start: 1, len: 2, step: 1 }, vec![n, 4]),
            (Op::Slice { axis: 0, start: n / 2, len: n - n / 2, step: 1 }, vec![n, 3]),
            (Op::Pad { axis: 1, before: 2, after: 1, step: 1 }, vec![n, 3]),
            (Op::Pad { axis: 0, before: 0, after: 3, step: 1 }, vec![n]),
        ];
        for (op, shape) in cases {
            run_case(&Case { op, shapes: vec![shape], ranges: r, tol32: EXACT32, tol64: EXACT64 }, n as u64);
        }
    }
}

/// Views of views: a reshape of a transpose must copy; a transpose of a broadcast must not.
#[test]
fn chained_views_and_fusion() {
    for dtype in DTYPES {
        for n in SIZES {
            let mut g = Graph::new(dtype);
            let x = g.add_input("x", known(&[3, n]), InputKind::Data);
            let b = g.add_input("b", known(&[n]), InputKind::Data);
            let t = g.add(Op::Transpose { perm: vec![1, 0] }, &[x]).unwrap(); // [n, 3]
            let r = g.add(Op::Reshape { shape: known(&[3 * n]) }, &[t]).unwrap();
            let e = g.add(Op::Exp, &[r]).unwrap();
            let bb = g.add(Op::Broadcast { shape: known(&[3, n]) }, &[b]).unwrap();
            let bt = g.add(Op::Transpose { perm: vec![1, 0] }, &[bb]).unwrap(); // [n, 3]
            let tb = g.add(Op::Mul, &[t, bt]).unwrap();
            let th = g.add(Op::Tanh, &[tb]).unwrap();
            let s = g.add(Op::Sum { axes: vec![0] }, &[th]).unwrap(); // [3]
            let lg = g.add(Op::Log, &[e]).unwrap();
            g.outputs = vec![("e".into(), e), ("s".into(), s), ("lg".into(), lg), ("t".into(), t)];
            let mut rng = Rng::new(3);
            let xs = [random(&mut rng, &[3, n], -2.0, 2.0), random(&mut rng, &[n], -2.0, 2.0)];
            let tol = dtype_tol(dtype, 2e-6, 4e-15);
            differential(&format!("views {dtype} {n}"), &g, &xs, &[], tol, tol);
        }
    }
}

#[test]
fn reductions() {
    for n in SIZES {
        let r = &[(-2.0, 2.0)][..];
        let sum = (1e-6, 1e-6 * n as f64);
        let sum64 = (1e-14, 1e-14 * n as f64);
        let cases = [
            (Op::Sum { axes: vec![0] }, vec![n, 5], sum, sum64),
            (Op::Sum { axes: vec![1] }, vec![5, n], sum, sum64),
            (Op::Sum { axes: vec![0, 1] }, vec![n, 3], sum, sum64),
            (Op::Sum { axes: vec![0, 2] }, vec![n, 3, 4], sum, sum64),
            (Op::Sum { axes: vec![1] }, vec![2, n, 3], sum, sum64),
            (Op::Sum { axes: vec![] }, vec![n], EXACT32, EXACT64),
            (Op::Sum { axes: vec![0] }, vec![n], sum, sum64),
            (Op::ReduceMax { axes: vec![0] }, vec![n, 4], EXACT32, EXACT64),
            (Op::ReduceMax { axes: vec![1] }, vec![3, n], EXACT32, EXACT64),
            (Op::ReduceMax { axes: vec![1] }, vec![2, n, 3], EXACT32, EXACT64),
            (Op::ReduceMax { axes: vec![0, 2] }, vec![2, n, 3], EXACT32, EXACT64),
            (Op::ArgMaxMask { axis: 1 }, vec![3, n], EXACT32, EXACT64),
            (Op::ArgMaxMask { axis: 0 }, vec![n, 3], EXACT32, EXACT64),
            (Op::LogSoftmax { axis: 1 }, vec![4, n], (1e-6, 1e-6), (2e-15, 2e-15)),
            (Op::LogSoftmax { axis: 0 }, vec![n, 3], (1e-6, 1e-6), (2e-15, 2e-15)),
            (Op::LogSoftmax { axis: 1 }, vec![2, n, 3], (1e-6, 1e-6), (2e-15, 2e-15)),
        ];
        for (op, shape, tol32, tol64) in cases {
            run_case(&Case { op, shapes: vec![shape], ranges: r, tol32, tol64 }, n as u64);
        }
    }
}

#[test]
fn argmax_mask_takes_the_first_of_equal_maxima() {
    for dtype in DTYPES {
        let g = op_graph(dtype, Op::ArgMaxMask { axis: 1 }, &[known(&[2, 5])]);
        let x = Tensor::new(vec![2, 5], vec![1.0, 3.0, 3.0, 0.0, 3.0, -1.0, -1.0, -1.0, -1.0, -1.0]);
        differential("argmax ties", &g, &[x], &[], 0.0, 0.0);
    }
}

#[test]
fn one_hot() {
    // Up to 8 classes a vector of labels at a time (and a scalar tail), more one label at a time.
    for dtype in DTYPES {
        for classes in [1, 3, 8, 10] {
            for n in SIZES {
                let g = op_graph(dtype, Op::OneHot { classes }, &[known(&[n])]);
                let labels = Tensor::new(vec![n], (0..n).map(|i| ((i * 7) % classes) as f64).collect());
                differential(&format!("one_hot {classes}"), &g, &[labels], &[], 0.0, 0.0);
            }
        }
    }
}

#[test]
fn matmul_all_transposes() {
    matmuls_in_every_layout(&[(1, 1, 1), (3, 7, 33), (33, 3, 7), (7, 33, 3), (33, 33, 33), (1, 33, 7)]);
}

/// Each (m, k, n) product with A and B each plain or transposed, against the interpreter.
fn matmuls_in_every_layout(shapes: &[(usize, usize, usize)]) {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for &(m, k, n) in shapes {
            let a = if ta { vec![k, m] } else { vec![m, k] };
            let b = if tb { vec![n, k] } else { vec![k, n] };
            let case = Case {
                op: Op::matmul(ta, tb),
                shapes: vec![a, b],
                ranges: &[(-1.0, 1.0), (-1.0, 1.0)],
                tol32: (1e-6, 1e-6 * k as f64),
                tol64: (1e-14, 1e-14 * k as f64),
            };
            run_case(&case, (m * 100 + k * 10 + n) as u64);
        }
    }
}

/// Products with a short inner dimension (k ≤ 4: fused expressions) and with a narrow side
/// (m or n ≤ 4: inline loops, `emit::narrow_gemm`), in every layout, with row counts that
/// leave every tail of the two-vector, one-vector and scalar loops, and inner dimensions
/// that leave a scalar tail of the vectorised dot products.
#[test]
fn short_and_narrow_products_in_every_layout() {
    let shapes = [
        (1, 3, 1),
        (8, 1, 8),
        (16, 4, 5),
        (5, 2, 16),
        (1, 5, 1),
        (2, 9, 3),
        (4, 17, 1),
        (3, 6, 9),
        (9, 6, 3),
        (17, 9, 4),
        (4, 5, 33),
        (33, 5, 4),
        (19, 13, 2),
        (2, 13, 19),
    ];
    matmuls_in_every_layout(&shapes);
}

/// Rows of up to 8 classes are log-softmaxed a vector of rows at a time: every row count
/// that leaves a scalar tail, and values far from zero (the max must be taken out first).
#[test]
fn log_softmax_of_short_rows() {
    for n in 1..=9 {
        for rows in [1, 5, 9, 33] {
            let case = Case {
                op: Op::LogSoftmax { axis: 1 },
                shapes: vec![vec![rows, n]],
                ranges: &[(-60.0, 60.0)],
                tol32: (1e-6, 1e-5),
                tol64: (2e-15, 2e-14),
            };
            run_case(&case, (rows * 10 + n) as u64);
        }
    }
}

#[test]
fn convolutions_forward_and_both_gradients() {
    // (N, C, H, W, F, K, stride, pad)
    let shapes = [
        (1, 1, 3, 3, 1, 1, 1, 0),
        (2, 3, 7, 7, 4, 3, 1, 1),
        (3, 2, 7, 5, 3, 3, 2, 1),
        (1, 3, 8, 8, 5, 1, 1, 0),
        (2, 2, 9, 9, 3, 5, 2, 2),
        (2, 1, 5, 5, 2, 4, 1, 3),
        (1, 4, 6, 6, 2, 2, 2, 0),
        (5, 2, 6, 6, 3, 3, 1, 1),
        (7, 3, 5, 5, 2, 1, 2, 0),
    ];
    for (i, &(n, c, h, w, f, k, s, p)) in shapes.iter().enumerate() {
        let oh = (h + 2 * p - k) / s + 1;
        let ow = (w + 2 * p - k) / s + 1;
        let r = &[(-1.0, 1.0), (-1.0, 1.0)][..];
        let taps = (c * k * k) as f64;
        let tol32 = (1e-5, 1e-6 * taps.max((n * oh * ow) as f64));
        let tol64 = (1e-13, 1e-14 * taps.max((n * oh * ow) as f64));
        let cases = [
            (Op::Conv2d { stride: s, pad: p }, vec![vec![n, c, h, w], vec![f, c, k, k]]),
            (
                Op::Conv2dInputGrad { stride: s, pad: p, height: h, width: w },
                vec![vec![n, f, oh, ow], vec![f, c, k, k]],
            ),
            (
                Op::Conv2dFilterGrad { stride: s, pad: p, kernel_h: k, kernel_w: k },
                vec![vec![n, c, h, w], vec![n, f, oh, ow]],
            ),
        ];
        // Per-image products this small run the generated loop; with small_gemm 0 they call
        // the library convolution (`symbols::conv`), as larger ones do by default.
        let library = CompileOptions { small_gemm: 0, ..CompileOptions::default() };
        for (op, shapes) in cases {
            let case = Case { op, shapes, ranges: r, tol32, tol64 };
            run_case(&case, i as u64);
            run_case_with(&case, i as u64, &library);
        }
    }
}

#[test]
fn pooling_forward_and_gradients() {
    for &(n, c, h, w, size, stride) in &[(1, 1, 2, 2, 2, 2), (2, 3, 8, 6, 2, 2), (1, 2, 7, 7, 3, 2), (2, 1, 9, 9, 3, 3)]
    {
        let oh = (h - size) / stride + 1;
        let ow = (w - size) / stride + 1;
        let r = &[(-1.0, 1.0), (-1.0, 1.0)][..];
        let cases = [
            (Op::MaxPool2d { size, stride }, vec![vec![n, c, h, w]]),
            (Op::AvgPool2d { size, stride }, vec![vec![n, c, h, w]]),
            (Op::MaxPool2dGrad { size, stride }, vec![vec![n, c, h, w], vec![n, c, oh, ow]]),
            (Op::AvgPool2dGrad { size, stride, height: h, width: w }, vec![vec![n, c, oh, ow]]),
        ];
        for (op, shapes) in cases {
            run_case(&Case { op, shapes, ranges: r, tol32: (1e-6, 1e-7), tol64: (1e-15, 1e-16) }, (h * w) as u64);
        }
    }
}

/// `g` compiled once and run on pools of 1, 2 and 3 threads: the first run agrees with the
/// interpreter within `tol`, and the others give its bits.
fn check_on_pools(what: &str, g: &Graph, inputs: &[Tensor], tol: f64) {
    use netc::runtime::symbols::on_pool;
    use netc::runtime::threads::Pool;
    static POOLS: std::sync::OnceLock<[Pool; 3]> = std::sync::OnceLock::new();
    let pools = POOLS.get_or_init(|| [Pool::new(1), Pool::new(2), Pool::new(3)]);
    let mut c = jit::compile(g, &CompileOptions::default()).unwrap();
    assert!(c.stats().outlined >= 1, "{what}: no kernel runs on the worker pool");
    let mut run = |threads: usize| on_pool(&pools[threads - 1], || c.run_tensors(inputs, &mut []).unwrap());
    let one = run(1);
    let want = netc::ir::interp::outputs(g, inputs, &[]).unwrap();
    assert_close(what, &one, &want, tol, tol);
    for threads in [2, 3] {
        let got = run(threads);
        for (a, b) in one.iter().zip(&got) {
            let same = a.data.iter().zip(&b.data).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{what}: {threads} threads differ from 1");
        }
    }
}

/// Maps, pools and log-softmaxes of more than `symbols::MIN_WORK` elements run on the worker
/// pool, over ranges of their items (`symbols::PARALLEL`): on 1, 2 and 3 threads they give
/// the same bits, and agree with the interpreter. The shapes cut unevenly: a one-axis map in
/// blocks with a partial last one, a broadcast map by its outer rows, a map vectorised along
/// its outer axis, pools and their gradients by planes, long and short log-softmax rows.
#[test]
fn outlined_kernels_are_the_same_on_any_thread_count() {
    type Build = Box<dyn Fn(&mut Graph, &[NodeId]) -> NodeId>;
    let unary = |op: Op| move |g: &mut Graph, x: &[NodeId]| g.add(op.clone(), x).unwrap();
    // (what, the graph's output from its inputs, input shapes)
    let cases: Vec<(&str, Build, Vec<Vec<usize>>)> = vec![
        (
            "one-axis map",
            Box::new(|g: &mut Graph, x: &[NodeId]| {
                let e = g.add(Op::Exp, &[x[0]]).unwrap();
                let r = g.add(Op::Relu, &[x[1]]).unwrap();
                g.add(Op::Mul, &[e, r]).unwrap()
            }),
            vec![vec![70_001], vec![70_001]],
        ),
        (
            "broadcast map",
            Box::new(|g: &mut Graph, x: &[NodeId]| {
                let s = g.add(Op::Add, &[x[0], x[1]]).unwrap();
                g.add(Op::Tanh, &[s]).unwrap()
            }),
            vec![vec![5, 7, 2003], vec![7, 1]],
        ),
        (
            "map along the outer axis",
            Box::new(|g: &mut Graph, x: &[NodeId]| g.add(Op::Max, x).unwrap()),
            vec![vec![30_001, 3], vec![3]],
        ),
        ("max pool", Box::new(unary(Op::MaxPool2d { size: 3, stride: 2 })), vec![vec![2, 37, 31, 29]]),
        ("average pool", Box::new(unary(Op::AvgPool2d { size: 3, stride: 2 })), vec![vec![2, 37, 31, 29]]),
        (
            "max pool gradient",
            Box::new(unary(Op::MaxPool2dGrad { size: 3, stride: 2 })),
            vec![vec![2, 37, 31, 29], vec![2, 37, 15, 14]],
        ),
        (
            "average pool gradient",
            Box::new(unary(Op::AvgPool2dGrad { size: 3, stride: 2, height: 31, width: 29 })),
            vec![vec![2, 37, 15, 14]],
        ),
        ("log-softmax rows", Box::new(unary(Op::LogSoftmax { axis: 1 })), vec![vec![301, 299]]),
        ("log-softmax short rows", Box::new(unary(Op::LogSoftmax { axis: 1 })), vec![vec![20_001, 5]]),
    ];
    for dtype in DTYPES {
        for (what, build, shapes) in &cases {
            let mut g = Graph::new(dtype);
            let ids: Vec<NodeId> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| g.add_input(&format!("x{i}"), known(s), InputKind::Data))
                .collect();
            let y = build(&mut g, &ids);
            g.outputs = vec![("y".into(), y)];
            let mut rng = Rng::new(what.len() as u64);
            let inputs: Vec<Tensor> = shapes.iter().map(|s| rounded(random(&mut rng, s, -2.0, 2.0), dtype)).collect();
            check_on_pools(&format!("{what} {dtype}"), &g, &inputs, dtype_tol(dtype, 1e-6, 1e-14));
        }
    }
}

/// The expensive maps of a loop's body (an LSTM cell's sigmoids and tanhs) run on the worker
/// pool once per step, and read the step index from the copy of the symbols each call passes
/// (`Emitter::call_outlined`): a loop, a reversed one and a loop nested in another give the
/// same bits on 1, 2 and 3 threads and agree with the interpreter. With a wrong step index
/// the body would read another step's slice of x and write another step's row of the output.
#[test]
fn loop_bodies_share_their_expensive_maps_with_the_pool() {
    use netc::ir::graph::{LoopSpec, Slicing};
    use std::sync::Arc;
    let row = [33, 300];
    // h' = sigmoid(h + x_t) · tanh(x_t − h), carried, and stacked on axis 0.
    let cell = |dtype: DType| {
        let mut body = Graph::new(dtype);
        let h = body.add_input("h", known(&row), InputKind::Variable);
        let x = body.add_input("x_t", known(&row), InputKind::Variable);
        let s = body.add(Op::Add, &[h, x]).unwrap();
        let s = body.add(Op::Sigmoid, &[s]).unwrap();
        let d = body.add(Op::Sub, &[x, h]).unwrap();
        let d = body.add(Op::Tanh, &[d]).unwrap();
        let h2 = body.add(Op::Mul, &[s, d]).unwrap();
        body.outputs = vec![("h".into(), h2), ("hs".into(), h2)];
        body
    };
    let spec = |body: Graph, steps: usize, reverse: bool| {
        Arc::new(LoopSpec::new(body, steps, reverse, 1, vec![Slicing::along(0)], vec![Slicing::along(0)]).unwrap())
    };
    for dtype in DTYPES {
        for (what, reverse, nested) in
            [("a loop", false, false), ("a reversed loop", true, false), ("nested loops", false, true)]
        {
            let (mut g, x_shape) = (Graph::new(dtype), if nested { vec![4, 3, 33, 300] } else { vec![5, 33, 300] });
            let h0 = g.add_input("h0", known(&row), InputKind::Data);
            let x = g.add_input("x", known(&x_shape), InputKind::Data);
            let outer = if nested {
                // The outer step runs the cell over its 3 slices of x and yields the last h.
                let mut body = Graph::new(dtype);
                let h = body.add_input("h", known(&row), InputKind::Variable);
                let xs = body.add_input("xs", known(&x_shape[1..]), InputKind::Variable);
                let inner = spec(cell(dtype), 3, true);
                let last = body.add(Op::Loop { spec: inner, output: 0 }, &[h, xs]).unwrap();
                body.outputs = vec![("h".into(), last), ("hs".into(), last)];
                spec(body, 4, reverse)
            } else {
                spec(cell(dtype), 5, reverse)
            };
            let last = g.add(Op::Loop { spec: outer.clone(), output: 0 }, &[h0, x]).unwrap();
            let all = g.add(Op::Loop { spec: outer, output: 1 }, &[h0, x]).unwrap();
            g.outputs = vec![("h".into(), last), ("hs".into(), all)];
            let mut rng = Rng::new(7);
            let inputs = [
                rounded(random(&mut rng, &row, -1.0, 1.0), dtype),
                rounded(random(&mut rng, &x_shape, -2.0, 2.0), dtype),
            ];
            check_on_pools(&format!("{what} {dtype}"), &g, &inputs, dtype_tol(dtype, 1e-5, 1e-13));
        }
    }
}

/// A product in a loop's body by a weight that the loop does not change reads it from panels
/// packed once before the loop (`codegen::panels`: a `pack` kernel, products "B in panels"):
/// h·W and h·Wᵀ (the packing's two orders), a reversed loop, 70 columns (past a panel) and a
/// symbolic batch of 3 rows (past a group of rows) or 70 (over `MAX_PANEL_ROWS`: B in place).
/// The results agree with the interpreter. A weight that changes in the loop, a carry or a
/// per-step slice, is not packed.
#[test]
fn loop_products_by_an_unchanging_weight_read_packed_panels() {
    use netc::ir::graph::{LoopSpec, Slicing};
    use std::sync::Arc;
    let (n, steps) = (70, 4);
    // Where the weight comes from: an invariant, a per-step slice of a stack, or a carry
    // halved at every step.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Weight {
        Invariant,
        Sliced,
        Carried,
    }
    for dtype in DTYPES {
        for (weight, transposed, reverse) in [
            (Weight::Invariant, false, false),
            (Weight::Invariant, true, true),
            (Weight::Sliced, false, false),
            (Weight::Carried, true, false),
        ] {
            let mut g = Graph::new(dtype);
            let batch = g.symbol("B");
            let rows = || vec![Dim::Sym(batch), Dim::Known(n)];
            let mut body = Graph::new(dtype);
            body.symbol("B");
            let h = body.add_input("h", rows(), InputKind::Variable);
            let w_carried =
                (weight == Weight::Carried).then(|| body.add_input("w", known(&[n, n]), InputKind::Variable));
            let x = body.add_input("x_t", rows(), InputKind::Variable);
            let w = w_carried.unwrap_or_else(|| body.add_input("w", known(&[n, n]), InputKind::Variable));
            let z = body.add(Op::matmul(false, transposed), &[h, w]).unwrap();
            let z = body.add(Op::Add, &[z, x]).unwrap();
            let h2 = body.add(Op::Tanh, &[z]).unwrap();
            let mut outputs = vec![("h".to_string(), h2)];
            if w_carried.is_some() {
                let half = body.constant(0.5);
                let w2 = body.add(Op::Mul, &[w, half]).unwrap();
                outputs.push(("w".into(), w2));
            }
            outputs.push(("hs".into(), h2));
            body.outputs = outputs;
            let (carries, mut sliced) =
                if w_carried.is_some() { (2, vec![Slicing::along(0)]) } else { (1, vec![Slicing::along(0)]) };
            if weight == Weight::Sliced {
                sliced.push(Slicing::along(0));
            }
            let spec = Arc::new(LoopSpec::new(body, steps, reverse, carries, sliced, vec![Slicing::along(0)]).unwrap());
            let h0 = g.add_input("h0", rows(), InputKind::Data);
            let x = g.add_input("x", vec![Dim::Known(steps), Dim::Sym(batch), Dim::Known(n)], InputKind::Data);
            let w_shape = if weight == Weight::Sliced { known(&[steps, n, n]) } else { known(&[n, n]) };
            let w = g.add_input("w", w_shape.clone(), InputKind::Data);
            let operands = match weight {
                Weight::Carried => vec![h0, w, x],
                Weight::Invariant | Weight::Sliced => vec![h0, x, w],
            };
            let last = g.add(Op::Loop { spec: spec.clone(), output: 0 }, &operands).unwrap();
            let all = g.add(Op::Loop { spec, output: carries }, &operands).unwrap();
            g.outputs = vec![("h".into(), last), ("hs".into(), all)];
            let what = format!("{weight:?} weight, transposed {transposed}, reversed {reverse}, {dtype}");
            let mut c = jit::compile(&g, &CompileOptions::default()).unwrap();
            let packs = c.kernel_summaries().iter().filter(|s| s.starts_with("pack")).count();
            let packed = c.kernel_summaries().iter().filter(|s| s.contains("B in panels")).count();
            let expect =
                usize::from(weight == Weight::Invariant && netc::runtime::symbols::panel_width::<f32>().is_some());
            assert_eq!((packs, packed), (expect, expect), "{what}: {:#?}", c.kernel_summaries());
            let w_dims: Vec<usize> = w_shape.iter().map(|d| d.known().unwrap()).collect();
            for b in [3, 70] {
                let mut rng = Rng::new(b as u64);
                let inputs = [
                    rounded(random(&mut rng, &[b, n], -1.0, 1.0), dtype),
                    rounded(random(&mut rng, &[steps, b, n], -1.0, 1.0), dtype),
                    rounded(random(&mut rng, &w_dims, -0.2, 0.2), dtype),
                ];
                let got = c.run_tensors(&inputs, &mut []).unwrap();
                let want = netc::ir::interp::outputs(&g, &inputs, &[]).unwrap();
                assert_close(
                    &format!("{what}, batch {b}"),
                    &got,
                    &want,
                    dtype_tol(dtype, 1e-5, 1e-12),
                    dtype_tol(dtype, 1e-5, 1e-12),
                );
            }
        }
    }
}

/// A kernel sized by a run-time symbol is outlined when a batch of 16 makes it large enough
/// to share, and not otherwise: each outlined kernel is a function more to compile (a deep
/// narrow MLP would pay for every layer), and a small one runs faster inline.
#[test]
fn symbolic_kernels_are_outlined_only_when_they_can_be_large() {
    for (width, outlined) in [(64, false), (4096, true)] {
        let mut g = Graph::new(DType::F32);
        let b = g.symbol("B");
        let x = g.add_input("x", vec![Dim::Sym(b), Dim::Known(width)], InputKind::Data);
        let y = g.add(Op::Relu, &[x]).unwrap();
        g.outputs = vec![("y".into(), y)];
        let mut c = jit::compile(&g, &CompileOptions::default()).unwrap();
        assert_eq!(c.stats().outlined > 0, outlined, "relu of [B, {width}]");
        // Either way the kernel computes every row, at a batch small or large.
        for n in [1, 33] {
            let xs = rounded(random(&mut Rng::new(n as u64), &[n, width], -1.0, 1.0), DType::F32);
            let want = netc::ir::interp::outputs(&g, std::slice::from_ref(&xs), &[]).unwrap();
            let got = c.run_tensors(&[xs], &mut []).unwrap();
            assert_close(&format!("relu of [{n}, {width}]"), &got, &want, 0.0, 0.0);
        }
    }
}

#[test]
fn leaves_constants_literals_and_symbolic_batch() {
    for dtype in DTYPES {
        let mut g = Graph::new(dtype);
        let b = g.symbol("B");
        let x = g.add_input("x", vec![Dim::Sym(b), Dim::Known(3)], InputKind::Data);
        let lit = g.push(netc::ir::graph::Node {
            op: Op::Literal { values: vec![1.0, -2.0, 0.5].into() },
            inputs: vec![],
            shape: known(&[3]),
            name: None,
            span: None,
        });
        let xl = g.add(Op::Mul, &[x, lit]).unwrap();
        let s = g.add(Op::Sum { axes: vec![0, 1] }, &[xl]).unwrap();
        let bs = g.push(netc::ir::graph::Node {
            op: Op::DimSize { dim: Dim::Sym(b) },
            inputs: vec![],
            shape: vec![],
            name: None,
            span: None,
        });
        let mean = g.add(Op::Div, &[s, bs]).unwrap();
        let c = g.constant(2.0);
        let shifted = g.add(Op::Add, &[xl, c]).unwrap();
        g.outputs = vec![("mean".into(), mean), ("shifted".into(), shifted), ("lit".into(), lit), ("c".into(), c)];
        let mut compiled = jit::compile(&g, &CompileOptions::default()).unwrap();
        // The same function serves every batch size.
        for n in SIZES {
            let xs = random(&mut Rng::new(n as u64), &[n, 3], -1.0, 1.0);
            let xs = rounded(xs, dtype);
            let want = netc::ir::interp::outputs(&g, std::slice::from_ref(&xs), &[]).unwrap();
            let got = compiled.run_tensors(&[xs], &mut []).unwrap();
            assert_close(&format!("leaves {dtype} B={n}"), &got, &want, 1e-6, 1e-6);
        }
        assert_eq!(compiled.stats().kernels, compiled.stats_for(&[1]).kernels);
    }
}

// ---- the transcendentals, densely -------------------------------------------------------------

/// Largest error in units of the last place of the correctly rounded result.
fn max_ulps<T: Element>(got: &[T], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            let (g, w) = (g.to_f64(), w);
            if g == w || (g.is_nan() && w.is_nan()) {
                return 0.0;
            }
            let ulp = match T::DTYPE {
                DType::F32 => {
                    let w32 = w as f32;
                    ((f32::from_bits(w32.abs().to_bits() + 1) - w32.abs()) as f64)
                        .max(f32::MIN_POSITIVE as f64 * 1.2e-7)
                }
                DType::F64 => (f64::from_bits(w.abs().to_bits() + 1) - w.abs()).max(f64::MIN_POSITIVE * 2.3e-16),
            };
            (g - w).abs() / ulp
        })
        .fold(0.0, f64::max)
}

fn sweep<T: Element>(op: Op, lo: f64, hi: f64, n: usize, mode: MathMode) -> f64 {
    let mut g = Graph::new(T::DTYPE);
    let x = g.add_input("x", known(&[n]), InputKind::Data);
    let y = g.add(op.clone(), &[x]).unwrap();
    g.outputs = vec![("y".into(), y)];
    let xs: Vec<T> = (0..n).map(|i| T::from_f64(lo + (hi - lo) * i as f64 / (n - 1) as f64)).collect();
    let mut c = jit::compile(&g, &CompileOptions { math: mode, ..CompileOptions::default() }).unwrap();
    let mut out = vec![vec![T::default(); n]];
    c.run(std::slice::from_ref(&xs), &mut Vec::<Vec<T>>::new(), &mut out, &[]).unwrap();
    let env = netc::ir::ops::Env { inputs: &[], params: &[], symbols: &[] };
    let input = Tensor::new(vec![n], xs.iter().map(|v| v.to_f64()).collect());
    let want = netc::ir::ops::eval(&op, &[&input], &[n], &env).unwrap();
    max_ulps(&out[0], &want.data)
}

#[test]
fn transcendentals_are_accurate_to_a_few_ulp() {
    let ranges = [
        (Op::Exp, -87.0, 88.0),
        (Op::Exp, -1.0, 1.0),
        (Op::Log, 1e-30, 1e30),
        (Op::Log, 0.5, 2.0),
        (Op::Tanh, -10.0, 10.0),
        (Op::Tanh, -0.7, 0.7),
        (Op::Sigmoid, -80.0, 30.0),
        // expm1 under elu (x <= 0) and log1p under softplus
        (Op::Elu { alpha: 1.0 }, -30.0, 1.0),
        (Op::Elu { alpha: 1.0 }, -0.7, 0.7),
        (Op::Elu { alpha: 1.0 }, -1e-6, 1e-6),
        (Op::Softplus, -80.0, 80.0),
        (Op::Softplus, -1.0, 1.0),
        // erf over every region of fdlibm's (|x| < 0.84375, < 1.25, < 1/0.35, < 6, beyond),
        // and near 0, where it is ~ (2/√π)·x
        (Op::Erf, -7.0, 7.0),
        (Op::Erf, -1.3, 1.3),
        (Op::Erf, 1.2, 3.0),
        (Op::Erf, -1e-3, 1e-3),
    ];
    let mut bad = vec![];
    for (op, lo, hi) in ranges {
        let e32 = sweep::<f32>(op.clone(), lo, hi, 100_003, MathMode::Inline);
        let e64 = sweep::<f64>(op.clone(), lo, hi, 100_003, MathMode::Inline);
        eprintln!("{op:?} on [{lo}, {hi}]: {e32:.2} ulp (f32), {e64:.2} ulp (f64)");
        if e32 > 4.0 || e64 > 4.0 {
            bad.push(format!("{op:?} on [{lo}, {hi}]: {e32} ulp (f32), {e64} ulp (f64)"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn transcendentals_special_values() {
    for dtype in DTYPES {
        let vals =
            vec![0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -1.0, 1e-40, 1e-310, 200.0, -200.0, 1000.0];
        let n = vals.len();
        let activations = [Op::Relu, Op::LeakyRelu { alpha: 0.1 }, Op::Elu { alpha: 0.5 }, Op::Softplus];
        let clip = [Op::Erf, Op::Clip { lo: -1.0, hi: 2.0 }, Op::Clip { lo: 3.0, hi: -3.0 }];
        for op in [Op::Exp, Op::Log, Op::Tanh, Op::Sigmoid].into_iter().chain(activations).chain(clip) {
            let g = op_graph(dtype, op.clone(), &[known(&[n])]);
            let x = Tensor::new(vec![n], vals.clone());
            let tol = dtype_tol(dtype, 4.8e-7, 9e-16);
            // Subnormal results may flush to zero: allow the smallest normal as absolute error.
            let atol = dtype_tol(dtype, 1.2e-38, 2.3e-308);
            differential(&format!("{op:?} specials {dtype}"), &g, &[x], &[], tol, atol);
        }
    }
}

#[test]
fn libm_mode_matches_too() {
    for dtype in DTYPES {
        // tanh, and expm1 and log1p under elu and softplus
        for op in [Op::Tanh, Op::Elu { alpha: 1.0 }, Op::Softplus] {
            let g = op_graph(dtype, op.clone(), &[known(&[7])]);
            let xs = random(&mut Rng::new(1), &[7], -3.0, 3.0);
            let xs = rounded(xs, dtype);
            let want = netc::ir::interp::outputs(&g, std::slice::from_ref(&xs), &[]).unwrap();
            let mut c =
                jit::compile(&g, &CompileOptions { math: MathMode::Libm, ..CompileOptions::default() }).unwrap();
            let got = c.run_tensors(&[xs], &mut []).unwrap();
            assert_close(&format!("libm {op:?}"), &got, &want, dtype_tol(dtype, 2.4e-7, 4.5e-16), 0.0);
        }
    }
}

// ---- backward graphs and train steps ----------------------------------------------------------

/// loss = sum(op(x..) * r) with a random weight r, then d loss / d every input.
fn backward_graph(dtype: DType, op: Op, shapes: &[Shape]) -> Graph {
    let mut g = Graph::new(dtype);
    let xs: Vec<NodeId> =
        shapes.iter().enumerate().map(|(i, s)| g.add_input(&format!("x{i}"), s.clone(), InputKind::Data)).collect();
    let y = g.add(op, &xs).unwrap();
    let r = g.add_input("r", g.shape(y).clone(), InputKind::Data);
    let yr = g.add(Op::Mul, &[y, r]).unwrap();
    let axes = (0..g.shape(yr).len()).collect();
    let loss = g.add(Op::Sum { axes }, &[yr]).unwrap();
    let grads = netc::ir::autodiff::differentiate(&mut g, loss, &xs).unwrap();
    g.outputs = vec![("loss".into(), loss)];
    g.outputs.extend(grads.iter().enumerate().map(|(i, &d)| (format!("d{i}"), d)));
    g
}

#[test]
fn backward_of_every_differentiable_op() {
    let n = 7;
    let cases: Vec<(Op, Vec<Vec<usize>>, Vec<Pair>)> = vec![
        (Op::Neg, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Exp, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Log, vec![vec![3, n]], vec![(0.5, 3.0)]),
        (Op::Sqrt, vec![vec![3, n]], vec![(0.5, 3.0)]),
        (Op::Abs, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Tanh, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Sigmoid, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Add, vec![vec![3, n], vec![n]], vec![(-2.0, 2.0), (-2.0, 2.0)]),
        (Op::Sub, vec![vec![n], vec![3, n]], vec![(-2.0, 2.0), (-2.0, 2.0)]),
        (Op::Mul, vec![vec![3, n], vec![3, 1]], vec![(-2.0, 2.0), (-2.0, 2.0)]),
        (Op::Div, vec![vec![3, n], vec![n]], vec![(-2.0, 2.0), (0.5, 2.0)]),
        (Op::Pow, vec![vec![3, n], vec![n]], vec![(0.5, 2.0), (-1.5, 1.5)]),
        (Op::Max, vec![vec![3, n], vec![3, n]], vec![(-2.0, 2.0), (-2.0, 2.0)]),
        (Op::Min, vec![vec![3, n], vec![n]], vec![(-2.0, 2.0), (-2.0, 2.0)]),
        (Op::Broadcast { shape: known(&[4, 3, n]) }, vec![vec![3, 1]], vec![(-2.0, 2.0)]),
        (Op::Reshape { shape: known(&[n, 3]) }, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Transpose { perm: vec![1, 0] }, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Slice { axis: 1, start: 2, len: 3, step: 1 }, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Pad { axis: 0, before: 1, after: 2, step: 1 }, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::Sum { axes: vec![1] }, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::ReduceMax { axes: vec![0] }, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::LogSoftmax { axis: 1 }, vec![vec![3, n]], vec![(-2.0, 2.0)]),
        (Op::matmul(false, true), vec![vec![3, n], vec![5, n]], vec![(-1.0, 1.0); 2]),
        (Op::matmul(true, false), vec![vec![n, 3], vec![n, 5]], vec![(-1.0, 1.0); 2]),
        (Op::Conv2d { stride: 1, pad: 1 }, vec![vec![2, 3, 6, 6], vec![4, 3, 3, 3]], vec![(-1.0, 1.0); 2]),
        (Op::Conv2d { stride: 2, pad: 0 }, vec![vec![2, 2, 7, 7], vec![3, 2, 3, 3]], vec![(-1.0, 1.0); 2]),
        (
            Op::Conv2dInputGrad { stride: 1, pad: 1, height: 5, width: 5 },
            vec![vec![2, 3, 5, 5], vec![3, 2, 3, 3]],
            vec![(-1.0, 1.0); 2],
        ),
        (Op::MaxPool2d { size: 2, stride: 2 }, vec![vec![2, 3, 6, 4]], vec![(-1.0, 1.0)]),
        (Op::AvgPool2d { size: 2, stride: 2 }, vec![vec![2, 3, 6, 4]], vec![(-1.0, 1.0)]),
    ];
    for dtype in DTYPES {
        for (i, (op, shapes, ranges)) in cases.iter().enumerate() {
            let g = backward_graph(dtype, op.clone(), &shapes.iter().map(|s| known(s)).collect::<Vec<_>>());
            let mut rng = Rng::new(i as u64);
            let mut inputs: Vec<Tensor> =
                shapes.iter().zip(ranges).map(|(s, r)| random(&mut rng, s, r.0, r.1)).collect();
            let ys = &g.inputs.last().unwrap().shape;
            let ys: Vec<usize> = ys.iter().map(|d| d.known().unwrap()).collect();
            inputs.push(random(&mut rng, &ys, -1.0, 1.0));
            let tol = dtype_tol(dtype, 2e-5, 1e-13);
            differential(&format!("backward of {op:?} {dtype}"), &g, &inputs, &[], tol, tol);
            // The same graph after the optimiser's passes.
            let mut o = g.clone();
            netc::ir::opt::optimize(&mut o, None).unwrap();
            differential(&format!("optimised backward of {op:?} {dtype}"), &o, &inputs, &[], tol, tol);
        }
    }
}

/// The train step of an example with its optimizer replaced by `optimizer` (if given).
fn train_step(path: &str, optimizer: Option<&str>) -> netc::training::optim::TrainStep {
    let mut src = std::fs::read_to_string(path).unwrap();
    if let Some(o) = optimizer {
        let start = src.find("optimizer:").unwrap();
        let end = start + src[start..].find('\n').unwrap();
        src.replace_range(start..end, &format!("optimizer: {o}"));
    }
    let checked = netc::frontend::check::check_source(&src).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    netc::training::optim::build(&checked.trains[0]).unwrap()
}

/// Random inputs for a train step at batch `n`: data in [-1, 1), labels in 0..3, lr 0.1.
fn step_inputs(g: &Graph, n: usize, rng: &mut Rng) -> Vec<Tensor> {
    g.inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> = i.shape.iter().map(|d| d.known().unwrap_or(n)).collect();
            match i.kind {
                InputKind::Label => {
                    let len = shape.iter().product();
                    Tensor::new(shape, (0..len).map(|_| rng.below(3) as f64).collect())
                }
                _ if shape.is_empty() => Tensor::scalar(0.1),
                _ => random(rng, &shape, -1.0, 1.0),
            }
        })
        .collect()
}

#[test]
fn train_steps_match_the_interpreter() {
    let cases = [
        ("examples/spiral.net", None),
        ("examples/digits_mlp.net", None),
        ("examples/digits_cnn.net", None),
        ("examples/digits_cnn.net", Some("adam(lr: 0.001)")),
        ("examples/cifar_cnn.net", None),
        ("examples/spiral.net", Some("momentum(lr: 0.5, momentum: 0.9, nesterov: true)")),
    ];
    for (path, optimizer) in cases {
        for dtype in DTYPES {
            for optimise in [false, true] {
                let step = train_step(path, optimizer);
                let mut g = step.graph;
                g.dtype = dtype;
                if optimise {
                    netc::ir::opt::optimize(&mut g, None).unwrap();
                }
                let mut rng = Rng::new(5);
                let inputs = step_inputs(&g, 5, &mut rng);
                let params = netc::runtime::params::init_params(&g, 1);
                let what = format!("{path} {optimizer:?} {dtype} optimised={optimise}");
                let tol = dtype_tol(dtype, 1e-4, 1e-11);
                differential(&what, &g, &inputs, &params, tol, tol);
            }
        }
    }
}

#[test]
fn updates_happen_in_place_and_memory_is_shared() {
    let step = train_step("examples/cifar_cnn.net", None);
    let mut g = step.graph;
    netc::ir::opt::optimize(&mut g, None).unwrap();
    let c = jit::compile(&g, &CompileOptions::default()).unwrap();
    let s = c.stats_for(&[32]);
    eprintln!("cifar_cnn train step, B = 32: {s:?}");
    // Every SGD update writes its parameter in place: no parameter-sized copies remain.
    assert!(s.planned_bytes * 2 < s.naive_bytes, "{s:?}");
    assert!(s.planned_bytes < s.unshared_bytes, "{s:?}");
}

#[test]
fn a_small_cnn_train_step_stays_small() {
    // Compile time is measured in bench/ (W4, W8), never asserted here: the machine is shared.
    // What a test can hold deterministically is the code's size, which compile time follows
    // (CRANELIFT-NOTES.md: ~2-3 ms per 1000 instructions): a change that blows it up fails.
    for path in ["examples/digits_cnn.net", "examples/cifar_cnn.net"] {
        let step = train_step(path, None);
        let mut g = step.graph;
        netc::ir::opt::optimize(&mut g, None).unwrap();
        let opts = CompileOptions { verify: false, ..CompileOptions::default() };
        let c = jit::compile(&g, &opts).unwrap();
        let stats = c.stats();
        eprintln!("{path}: {} CLIF instructions, {} kernels", stats.clif_insts, stats.kernels);
        assert!(stats.clif_insts < 6000, "{path}: {} CLIF instructions", stats.clif_insts);
    }
}

#[test]
fn unsupported_graphs_are_errors_not_panics() {
    // A parameter updated twice.
    let mut g = Graph::new(DType::F32);
    let w = g.add_param("w", known(&[3]), netc::ir::graph::Init::Zeros);
    let two = g.constant(2.0);
    let w2 = g.add(Op::Mul, &[w, two]).unwrap();
    g.updates = vec![(0, w2), (0, w)];
    assert!(jit::compile(&g, &CompileOptions::default()).is_err());
    // A node whose recorded shape disagrees with its op (the generated code has no bounds
    // checks, so this must be caught before code exists).
    let mut bad = Graph::new(DType::F32);
    let x = bad.add_input("x", known(&[3]), InputKind::Data);
    let e =
        bad.push(netc::ir::graph::Node { op: Op::Exp, inputs: vec![x], shape: known(&[30]), name: None, span: None });
    bad.outputs = vec![("e".into(), e)];
    let err = jit::compile(&bad, &CompileOptions::default()).err().expect("rejected");
    assert!(err.message.contains("malformed"), "{}", err.message);
    // Wrong buffer sizes and dtypes at call time.
    g.updates.clear();
    g.outputs = vec![("y".into(), w2)];
    let mut c = jit::compile(&g, &CompileOptions::default()).unwrap();
    let mut out = [vec![0.0f32; 2]];
    assert!(c.run(&Vec::<Vec<f32>>::new(), &mut [vec![0.0f32; 3]], &mut out, &[]).is_err());
    let mut out64 = [vec![0.0f64; 3]];
    assert!(c.run(&Vec::<Vec<f64>>::new(), &mut [vec![0.0f64; 3]], &mut out64, &[]).is_err());
}

#[test]
fn one_compiled_train_step_serves_every_batch_size() {
    let step = train_step("examples/digits_cnn.net", Some("adam(lr: 0.01)"));
    let mut g = step.graph;
    netc::ir::opt::optimize(&mut g, None).unwrap();
    let mut c = jit::compile(&g, &CompileOptions::default()).unwrap();
    for n in [1, 3, 7, 33, 0] {
        let mut rng = Rng::new(n as u64);
        let inputs: Vec<Tensor> = step_inputs(&g, n, &mut rng).into_iter().map(|t| rounded(t, g.dtype)).collect();
        let params: Vec<Tensor> =
            netc::runtime::params::init_params(&g, 2).into_iter().map(|t| rounded(t, g.dtype)).collect();
        let values = netc::ir::interp::run(&g, &inputs, &params).unwrap();
        let want: Vec<Tensor> = g.outputs.iter().map(|(_, id)| values[id.index()].clone()).collect();
        let mut want_params = params.clone();
        for &(p, id) in &g.updates {
            want_params[p] = values[id.index()].clone();
        }
        let mut got_params = params.clone();
        let got = c.run_tensors(&inputs, &mut got_params).unwrap();
        assert_close(&format!("digits_cnn adam B={n}"), &got, &want, 1e-4, 1e-5);
        assert_close(&format!("digits_cnn adam B={n} params"), &got_params, &want_params, 1e-4, 1e-5);
    }
}

#[test]
fn compiled_functions_can_move_to_another_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let g = op_graph(DType::F32, Op::Exp, &[known(&[3])]);
    let c = jit::compile(&g, &CompileOptions::default()).unwrap();
    assert_send(&c);
    let out = std::thread::spawn(move || {
        let mut c = c;
        c.run_tensors(&[Tensor::new(vec![3], vec![0.0, 1.0, 2.0])], &mut []).unwrap()
    })
    .join()
    .unwrap();
    assert!((out[0].data[2] - 2f64.exp()).abs() < 1e-5);
}

#[test]
fn updates_that_read_each_other_or_their_old_values() {
    for dtype in DTYPES {
        let mut g = Graph::new(dtype);
        let a = g.add_param("a", known(&[3, 3]), netc::ir::graph::Init::Zeros);
        let b = g.add_param("b", known(&[3, 3]), netc::ir::graph::Init::Zeros);
        let c = g.add_param("c", known(&[3, 3]), netc::ir::graph::Init::Zeros);
        let d = g.add_param("d", known(&[3, 3]), netc::ir::graph::Init::Zeros);
        let x = g.add_input("x", known(&[3, 3]), InputKind::Data);
        let two = g.constant(2.0);
        let a2 = g.add(Op::Mul, &[a, two]).unwrap();
        let ct = g.add(Op::Transpose { perm: vec![1, 0] }, &[c]).unwrap();
        let ctx = g.add(Op::Add, &[ct, x]).unwrap();
        let da = g.add(Op::Sub, &[d, a]).unwrap();
        // a <- b and b <- a (a swap), c <- cᵀ + x, d <- d - a (old a), x as is; outputs: the
        // old a, the new a twice, and the old c.
        g.updates = vec![(0, b), (1, a), (2, ctx), (3, da)];
        g.outputs = vec![("a".into(), a), ("a2".into(), a2), ("a2 again".into(), a2), ("c".into(), c)];
        let mut rng = Rng::new(9);
        let params: Vec<Tensor> = (0..4).map(|_| random(&mut rng, &[3, 3], -1.0, 1.0)).collect();
        let inputs = [random(&mut rng, &[3, 3], -1.0, 1.0)];
        differential(&format!("crossed updates {dtype}"), &g, &inputs, &params, 0.0, 0.0);
    }
}

// ---- random graphs -----------------------------------------------------------------------------

/// A random graph of elementwise, broadcast, view, reduction and matmul nodes over a few
/// inputs, with several outputs: exercises fusion through views, materialisation decisions
/// and in-place memory reuse together.
fn random_graph(dtype: DType, rng: &mut Rng) -> (Graph, Vec<Tensor>, Vec<Tensor>) {
    let mut g = Graph::new(dtype);
    // Leaves: inputs, and parameters (kept in the same list, told apart by `Graph::params`).
    let mut inputs = vec![];
    let mut params = vec![];
    let dims = [1, 2, 3, 5, 7];
    let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
    let new_input = |g: &mut Graph, inputs: &mut Vec<(bool, Tensor)>, rng: &mut Rng, shape: Vec<usize>| {
        let t = random(rng, &shape, -1.5, 1.5);
        if rng.below(3) == 0 {
            inputs.push((true, t));
            g.add_param(&format!("p{}", inputs.len()), known(&shape), netc::ir::graph::Init::Zeros)
        } else {
            inputs.push((false, t));
            g.add_input(&format!("x{}", inputs.len()), known(&shape), InputKind::Data)
        }
    };
    let mut nodes: Vec<NodeId> = vec![];
    for _ in 0..3 {
        let rank = 1 + pick(rng, 3);
        let shape: Vec<usize> = (0..rank).map(|_| dims[pick(rng, dims.len())]).collect();
        nodes.push(new_input(&mut g, &mut inputs, rng, shape));
    }
    let steps = 6 + pick(rng, 10);
    for _ in 0..steps {
        let x = nodes[nodes.len() - 1 - pick(rng, nodes.len().min(4))];
        let shape: Vec<usize> = g.shape(x).iter().map(|d| d.known().unwrap()).collect();
        let r = shape.len();
        let unaries = [Op::Neg, Op::Abs, Op::Tanh, Op::Sigmoid, Op::Sign];
        let op_kind = if r == 0 { [0, 1, 2, 9][pick(rng, 4)] } else { pick(rng, 11) };
        let id = match op_kind {
            0 => g.add(unaries[pick(rng, unaries.len())].clone(), &[x]),
            1 => {
                // exp of a bounded value
                let t = g.add(Op::Tanh, &[x]).unwrap();
                g.add(Op::Exp, &[t])
            }
            2 | 3 => {
                // A partner that broadcasts: same shape with some axes set to 1, maybe fewer axes.
                let drop = pick(rng, r);
                let partner: Vec<usize> =
                    shape[drop..].iter().map(|&d| if pick(rng, 3) == 0 { 1 } else { d }).collect();
                let y = if pick(rng, 2) == 0 {
                    new_input(&mut g, &mut inputs, rng, partner)
                } else {
                    match nodes.iter().find(|&&n| n != x && ops_broadcast(&g, n, &shape)) {
                        Some(&n) => n,
                        None => new_input(&mut g, &mut inputs, rng, partner),
                    }
                };
                let bins = [Op::Add, Op::Sub, Op::Mul, Op::Max, Op::Min, Op::GreaterEq];
                let op = bins[pick(rng, bins.len())].clone();
                if pick(rng, 2) == 0 {
                    g.add(op, &[x, y])
                } else {
                    g.add(op, &[y, x])
                }
            }
            4 if r >= 2 => {
                let mut perm: Vec<usize> = (0..r).collect();
                perm.swap(0, r - 1);
                if r == 3 && pick(rng, 2) == 0 {
                    perm = vec![1, 2, 0];
                }
                g.add(Op::Transpose { perm }, &[x])
            }
            5 => {
                let n: usize = shape.iter().product();
                let f = [1, 2, 3, 5, 7].into_iter().filter(|f| n.is_multiple_of(*f)).nth(pick(rng, 2)).unwrap_or(1);
                g.add(Op::Reshape { shape: known(&[f, n / f]) }, &[x])
            }
            6 => {
                let axis = pick(rng, r);
                let start = pick(rng, shape[axis]);
                let len = 1 + pick(rng, shape[axis] - start);
                g.add(Op::Slice { axis, start, len, step: 1 }, &[x])
            }
            7 => g.add(Op::Pad { axis: pick(rng, r), before: pick(rng, 2), after: pick(rng, 3), step: 1 }, &[x]),
            8 => {
                let axes: Vec<usize> = (0..r).filter(|_| pick(rng, 2) == 0).collect();
                if pick(rng, 3) == 0 {
                    g.add(Op::ReduceMax { axes }, &[x])
                } else {
                    g.add(Op::Sum { axes }, &[x])
                }
            }
            9 => {
                let mut to = vec![Dim::Known(dims[1 + pick(rng, 4)])];
                to.extend(shape.iter().map(|&d| Dim::Known(if d == 1 { 1 + pick(rng, 4) } else { d })));
                g.add(Op::Broadcast { shape: to }, &[x])
            }
            _ if r == 2 => {
                let (ta, tb) = (pick(rng, 2) == 1, pick(rng, 2) == 1);
                let k = if ta { shape[0] } else { shape[1] };
                let n = dims[pick(rng, dims.len())];
                let b = new_input(&mut g, &mut inputs, rng, if tb { vec![n, k] } else { vec![k, n] });
                g.add(Op::matmul(ta, tb), &[x, b])
            }
            _ => g.add(Op::Neg, &[x]),
        };
        nodes.push(id.unwrap_or_else(|e| panic!("random graph: {e:?}")));
    }
    let mut outs: Vec<NodeId> = nodes[nodes.len() - 2..].to_vec();
    outs.push(nodes[pick(rng, nodes.len())]);
    g.outputs = outs.into_iter().enumerate().map(|(i, id)| (format!("y{i}"), id)).collect();
    // Update most parameters with some node of their shape (maybe another param).
    let mut inputs_tail = vec![];
    for p in 0..g.params.len() {
        let shape = g.params[p].shape.clone();
        let same: Vec<NodeId> = (0..g.nodes.len() as u32).map(NodeId).filter(|&n| g.shape(n) == &shape).collect();
        let p_node = NodeId(g.nodes.iter().position(|n| n.op == Op::Param { index: p }).unwrap() as u32);
        let other = same[pick(rng, same.len())];
        match rng.below(4) {
            0 => g.updates.push((p, other)),
            // The optimizers' shapes: p - lr·x, and μ·p + x (which may fuse into a GEMM).
            1 => {
                let lr = g.add_input("lr", vec![], InputKind::Variable);
                inputs_tail.push(Tensor::scalar(0.1));
                let step = g.add(Op::Mul, &[lr, other]).unwrap();
                let new = g.add(Op::Sub, &[p_node, step]).unwrap();
                g.updates.push((p, new));
            }
            2 => {
                let mu = g.constant(0.9);
                let decayed = g.add(Op::Mul, &[mu, p_node]).unwrap();
                let new = g.add(Op::Add, &[decayed, other]).unwrap();
                g.updates.push((p, new));
            }
            _ => {}
        }
    }
    let mut xs = vec![];
    for (is_param, t) in inputs {
        if is_param {
            params.push(t)
        } else {
            xs.push(t)
        }
    }
    xs.extend(inputs_tail);
    (g, xs, params)
}

fn ops_broadcast(g: &Graph, n: NodeId, to: &[usize]) -> bool {
    netc::ir::ops::broadcast_shapes(g.shape(n), &known(to)).is_ok_and(|s| s == known(to))
}

#[test]
fn random_graphs_match_the_interpreter() {
    for seed in 0..300 {
        for dtype in DTYPES {
            let mut rng = Rng::new(seed);
            let (g, inputs, params) = random_graph(dtype, &mut rng);
            let tol = dtype_tol(dtype, 1e-5, 1e-12);
            let what = format!("random graph {seed} {dtype}:\n{}updates {:?}", g.to_text(), g.updates);
            differential(&what, &g, &inputs, &params, tol, tol);
        }
    }
}

#[test]
fn sgd_and_momentum_updates_fuse_into_the_gradient_gemm() {
    // mlp.net: W1 is 784×... With B = 1 every activation is tiny, so a workspace smaller than
    // W1 means no weight gradient was materialised: each GEMM wrote W -= lr·dW in place.
    for optimizer in [None, Some("momentum(lr: 0.05, momentum: 0.9)")] {
        let step = train_step("examples/mlp.net", optimizer);
        let mut g = step.graph;
        netc::ir::opt::optimize(&mut g, None).unwrap();
        let c = jit::compile(&g, &CompileOptions::default()).unwrap();
        let w1_bytes = 4 * g.params[0].shape.iter().map(|d| d.known().unwrap()).product::<usize>();
        let s = c.stats_for(&[1]);
        assert!(s.planned_bytes < w1_bytes / 4, "{optimizer:?}: {s:?}, W1 has {w1_bytes} bytes");
        // ... and the step still matches the interpreter.
        let mut rng = Rng::new(4);
        let inputs = step_inputs(&g, 3, &mut rng);
        let params = netc::runtime::params::init_params(&g, 1);
        differential(&format!("mlp {optimizer:?}"), &g, &inputs, &params, 1e-4, 1e-5);
    }
}

/// Updates shaped like the optimizers' (p - lr·M, μ·p + M) where M is a matmul, with other
/// readers of p and of M before, between and after: the GEMM may write p only when no one
/// needs the old p or M afterwards.
#[test]
fn random_gemm_updates_match_the_interpreter() {
    for seed in 0..400u64 {
        let mut rng = Rng::new(seed);
        let dtype = if seed % 2 == 0 { DType::F32 } else { DType::F64 };
        let (m, k, n) = (1 + rng.below(6) as usize, 1 + rng.below(6) as usize, 1 + rng.below(6) as usize);
        let mut g = Graph::new(dtype);
        let w = g.add_param("w", known(&[k, n]), netc::ir::graph::Init::Zeros);
        let x = g.add_input("x", known(&[m, k]), InputKind::Data);
        let e = g.add_input("e", known(&[m, n]), InputKind::Data);
        let lr = g.add_input("lr", vec![], InputKind::Variable);
        let mut outputs = vec![];
        let early = rng.below(2) == 0;
        if early {
            let h = g.add(Op::matmul(false, false), &[x, w]).unwrap();
            outputs.push(h);
        }
        // M = xᵀ e, [k, n]
        let dw = g.add(Op::matmul(true, false), &[x, e]).unwrap();
        if rng.below(3) == 0 {
            outputs.push(dw); // M has another reader: no fusion
        }
        if rng.below(3) == 0 {
            let w2 = g.add(Op::Mul, &[w, w]).unwrap(); // the old p read after the GEMM
            outputs.push(w2);
        }
        let new_w = match rng.below(3) {
            0 => {
                let step = g.add(Op::Mul, &[lr, dw]).unwrap();
                g.add(Op::Sub, &[w, step]).unwrap()
            }
            1 => {
                let mu = g.constant(0.9);
                let mw = g.add(Op::Mul, &[mu, w]).unwrap();
                g.add(Op::Add, &[mw, dw]).unwrap()
            }
            _ => {
                let step = g.add(Op::Mul, &[dw, lr]).unwrap();
                g.add(Op::Add, &[w, step]).unwrap()
            }
        };
        if rng.below(3) == 0 {
            outputs.push(new_w);
        }
        if rng.below(4) == 0 {
            outputs.push(w); // the old p as an output
        }
        if outputs.is_empty() || !early && rng.below(2) == 0 {
            let late = g.add(Op::matmul(false, false), &[x, w]).unwrap();
            outputs.push(late);
        }
        g.outputs = outputs.into_iter().enumerate().map(|(i, id)| (format!("y{i}"), id)).collect();
        g.updates = vec![(0, new_w)];
        let inputs = [random(&mut rng, &[m, k], -1.0, 1.0), random(&mut rng, &[m, n], -1.0, 1.0), Tensor::scalar(0.25)];
        let params = [random(&mut rng, &[k, n], -1.0, 1.0)];
        let tol = dtype_tol(dtype, 1e-5, 1e-12);
        differential(&format!("gemm update {seed}:\n{}", g.to_text()), &g, &inputs, &params, tol, tol);
    }
}

/// A deep MLP (the lecture's point that real graphs are huge) as `bench/gen_deep_mlp.py`
/// writes it: `layers` dense layers of width 16.
fn deep_mlp(layers: usize) -> Graph {
    let mut src = String::from("model deep(x: [B, 16]) -> scores: [B, 10] {\n  let h0 = x\n");
    for i in 1..layers {
        src += &format!("  let h{i} = relu(dense(h{}, 16, init: he))\n", i - 1);
    }
    src += &format!("  dense(h{}, 10)\n}}\n", layers - 1);
    src += "data d { source: synthetic(samples: 8, classes: 10, seed: 0) }\n";
    src += "train deep { loss: cross_entropy(scores, labels)\n optimizer: momentum(lr: 0.01, momentum: 0.9)\n steps: 1\n batch: 4 }\n";
    let checked = netc::frontend::check::check_source(&src).unwrap();
    let mut g = netc::training::optim::build(&checked.trains[0]).unwrap().graph;
    netc::ir::opt::optimize(&mut g, None).unwrap();
    g
}

#[test]
fn deep_programs_split_into_parts_and_grow_linearly() {
    let g = deep_mlp(60);
    let c = jit::compile(&g, &CompileOptions::default()).unwrap();
    let s = c.stats_for(&[4]);
    assert!(s.parts >= 3, "a 60-layer train step is split into several functions: {s:?}");
    let mut rng = Rng::new(4);
    let inputs: Vec<Tensor> = step_inputs(&g, 4, &mut rng).into_iter().map(|t| rounded(t, g.dtype)).collect();
    let params: Vec<Tensor> =
        netc::runtime::params::init_params(&g, 2).into_iter().map(|t| rounded(t, g.dtype)).collect();
    differential("deep MLP, 60 layers", &g, &inputs, &params, 1e-4, 1e-6);
    // Compile time follows the IR's size: it must grow linearly with the depth.
    let insts = |layers| jit::compile(&deep_mlp(layers), &CompileOptions::default()).unwrap().stats().clif_insts;
    let (a, b) = (insts(30), insts(60));
    assert!((b as f64) < 2.1 * a as f64, "30 layers: {a} instructions, 60 layers: {b}");
}

// ---- every op and every built-in (tests/cases: the compiler keeps the list complete) ------

#[test]
fn every_op_case_compiles_to_the_interpreters_values() {
    for c in cases::all_op_cases() {
        for dtype in DTYPES {
            let (mut g, y, loss, leaves) = cases::build(&c, dtype);
            let grads = netc::ir::autodiff::differentiate(&mut g, loss, &leaves).unwrap();
            g.outputs = vec![("y".into(), y), ("loss".into(), loss)];
            g.outputs.extend(grads.iter().enumerate().map(|(i, &d)| (format!("d{i}"), d)));
            let values: Vec<Tensor> = cases::values(&c, 1).into_iter().map(|t| rounded(t, dtype)).collect();
            let (inputs, params) = if matches!(c.op, Op::Input { .. }) { (values, vec![]) } else { (vec![], values) };
            let tol = dtype_tol(dtype, 2e-5, 1e-12);
            differential(&format!("{:?} {dtype}", c.op), &g, &inputs, &params, tol, tol);
        }
    }
}

#[test]
fn every_builtin_case_runs_compiled_as_interpreted() {
    use netc::commands::eval::{evaluate_with, Exec};
    use netc::frontend::builtins::Builtin;
    let dir = common::temp_dir("jit", "builtin-cases");
    cases::write_case_data(&dir.0);
    for &b in Builtin::ALL {
        let case = cases::builtin_case(b);
        match &case {
            cases::BuiltinCase::Expr(expr) | cases::BuiltinCase::TrainingExpr(expr) => {
                let training = matches!(case, cases::BuiltinCase::TrainingExpr(_));
                let src = cases::expr_source(expr, training);
                let checked = netc::frontend::check::check_source(&src).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
                let jit = evaluate_with(&checked.evals[0], 0, Exec::Jit).unwrap_or_else(|e| panic!("{expr}: {e}"));
                let interp = evaluate_with(&checked.evals[0], 0, Exec::Interp).unwrap();
                let flat = |o: &netc::commands::eval::EvalOutput| -> Vec<Tensor> {
                    o.grads
                        .iter()
                        .flat_map(|(_, f, ds)| std::iter::once(f.clone()).chain(ds.iter().map(|d| d.1.clone())))
                        .collect()
                };
                assert_close(expr, &flat(&jit), &flat(&interp), 1e-12, 1e-12);
            }
            cases::BuiltinCase::Show(expr, printed) => {
                let src = cases::show_source(expr);
                let checked = netc::frontend::check::check_source(&src).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
                let e = &checked.evals[0];
                let show = |exec| {
                    let out = evaluate_with(e, 0, exec).unwrap_or_else(|m| panic!("{expr}: {m}"));
                    netc::commands::eval::format_eval(e.name.as_deref(), &out)
                };
                let (jit, interp) = (show(Exec::Jit), show(Exec::Interp));
                assert_eq!(jit, interp, "{expr}");
                let words = jit.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(words.contains(&format!("{expr} = {printed}")), "{expr}: {jit}");
            }
            other => {
                // Initialisers, train settings and data sources: a small file that uses the
                // built-in trains four steps on both engines.
                let src = cases::run_source(other).unwrap();
                let file = dir.0.join(format!("{}.net", b.name()));
                std::fs::write(&file, &src).unwrap();
                let f = file.to_str().unwrap();
                for engine in ["jit", "interp"] {
                    let (code, out, err) = common::netc(&["run", f, "--json", "--quiet", "--engine", engine]);
                    assert_eq!(code, 0, "{}: {err}\n{src}", b.name());
                    let loss: f64 = common::field(&out, "final_loss").parse().unwrap();
                    assert!(loss.is_finite(), "{}: {out}", b.name());
                }
            }
        }
    }
}

/// `exp(-(x·x))` and `exp(-|x|)` take the exp for arguments that are never above 0
/// (`Emitter::exp_nonpositive`): the same bits as the general exp of the same argument
/// computed beforehand, in f32 and f64, over every 997th bit pattern of x, densely where e^(−x²)
/// is subnormal or flushes to 0, and at ±0, ±∞ and NaN.
#[test]
fn exp_of_a_negated_square_or_absolute_value_has_the_bits_of_exp() {
    fn check<T: netc::drivers::jit::Element + Copy + PartialEq + std::fmt::Debug>(
        dtype: DType,
        xs: &[T],
        neg_square: impl Fn(T) -> T,
        neg_abs: impl Fn(T) -> T,
        bits: impl Fn(T) -> u64,
    ) {
        let n = xs.len();
        for (what, inner, host) in [("−x·x", 0, &neg_square as &dyn Fn(T) -> T), ("−|x|", 1, &neg_abs)] {
            let mut special = Graph::new(dtype);
            let x = special.add_input("x", vec![Dim::Known(n)], InputKind::Data);
            let a =
                if inner == 0 { special.add(Op::Mul, &[x, x]).unwrap() } else { special.add(Op::Abs, &[x]).unwrap() };
            let a = special.add(Op::Neg, &[a]).unwrap();
            let y = special.add(Op::Exp, &[a]).unwrap();
            special.outputs = vec![("y".into(), y)];
            let mut general = Graph::new(dtype);
            let z = general.add_input("z", vec![Dim::Known(n)], InputKind::Data);
            let y = general.add(Op::Exp, &[z]).unwrap();
            general.outputs = vec![("y".into(), y)];
            let zs: Vec<T> = xs.iter().map(|&x| host(x)).collect();
            let mut got = vec![xs.to_vec()];
            let mut want = vec![xs.to_vec()];
            let opts = CompileOptions::default();
            let (mut special, mut general) =
                (jit::compile(&special, &opts).unwrap(), jit::compile(&general, &opts).unwrap());
            special.run(&[xs.to_vec()], &mut Vec::<Vec<T>>::new(), &mut got, &[]).unwrap();
            general.run(&[zs], &mut Vec::<Vec<T>>::new(), &mut want, &[]).unwrap();
            for ((x, g), w) in xs.iter().zip(&got[0]).zip(&want[0]) {
                let same = bits(*g) == bits(*w) || (g != g && w != w); // NaN payloads aside
                assert!(same, "{dtype} e^({what}) at x = {x:?}: {g:?} against exp's {w:?}");
            }
            // The shorter exp was taken: fewer instructions, though the argument costs two more.
            let insts = |c: &jit::Compiled| c.stats_for(&[]).clif_insts;
            assert!(
                insts(&special) < insts(&general),
                "{dtype} e^({what}): {} against {}",
                insts(&special),
                insts(&general)
            );
        }
    }
    let mut xs: Vec<f32> = (0..u32::MAX / 997).map(|i| f32::from_bits(i * 997)).collect();
    xs.extend((0..20_000).map(|i| 9.3 + i as f32 * 3e-6)); // x² around 87.3..87.6
    xs.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-30, 88.0]);
    let xs: Vec<f32> = xs.into_iter().map(|x| if x.is_nan() { f32::NAN } else { x }).collect();
    check(DType::F32, &xs, |x| -(x * x), |x| -x.abs(), |v| v.to_bits() as u64);
    let mut xs: Vec<f64> = (0..1u64 << 22).map(|i| f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
    xs.extend((0..20_000).map(|i| 26.6 + i as f64 * 1e-5)); // x² around 708..709
    xs.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-300, 745.0]);
    let xs: Vec<f64> = xs.into_iter().map(|x| if x.is_nan() { f64::NAN } else { x }).collect();
    check(DType::F64, &xs, |x| -(x * x), |x| -x.abs(), |v| v.to_bits());
}

/// The exp of a log-softmax (a softmax's probabilities) takes the exp for arguments that are
/// never above 0: the same bits as the general exp of the log-softmax computed beforehand,
/// on rows of very different spreads, in f32 and f64.
#[test]
fn exp_of_a_log_softmax_has_the_bits_of_exp() {
    fn check<T: Element + Copy + std::fmt::Debug>(dtype: DType, bits: impl Fn(T) -> u64) {
        let (rows, cols) = (257, 70);
        let mut rng = Rng::new(7);
        // Row r spreads its values over about ±10^(r mod 6 − 2): from near-uniform rows to
        // rows whose smallest probabilities are subnormal or flush to 0.
        let xs: Vec<T> = (0..rows * cols)
            .map(|i| T::from_f64(rng.uniform_in(-1.0, 1.0) * 10f64.powi((i / cols % 6) as i32 - 2)))
            .collect();
        let opts = CompileOptions::default();
        let graph = |exp_after: bool| {
            let mut g = Graph::new(dtype);
            let x = g.add_input("x", vec![Dim::Known(rows), Dim::Known(cols)], InputKind::Data);
            let mut y = g.add(Op::LogSoftmax { axis: 1 }, &[x]).unwrap();
            if exp_after {
                y = g.add(Op::Exp, &[y]).unwrap();
            }
            g.outputs = vec![("y".into(), y)];
            jit::compile(&g, &opts).unwrap()
        };
        let mut exp = Graph::new(dtype);
        let z = exp.add_input("z", vec![Dim::Known(rows * cols)], InputKind::Data);
        let y = exp.add(Op::Exp, &[z]).unwrap();
        exp.outputs = vec![("y".into(), y)];
        let mut general = jit::compile(&exp, &opts).unwrap();
        let run = |c: &mut jit::Compiled, input: &[T]| {
            let mut out = vec![input.to_vec()];
            c.run(&[input.to_vec()], &mut Vec::<Vec<T>>::new(), &mut out, &[]).unwrap();
            out.remove(0)
        };
        let log_p = run(&mut graph(false), &xs);
        let got = run(&mut graph(true), &xs);
        let want = run(&mut general, &log_p);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(bits(*g), bits(*w), "{dtype} row {} column {}: {g:?} against exp's {w:?}", i / cols, i % cols);
        }
        let zeros = got.iter().filter(|&&p| bits(p) == 0).count();
        assert!(zeros > 0, "{dtype}: some probabilities flush to 0");
    }
    check::<f32>(DType::F32, |v| v.to_bits() as u64);
    check::<f64>(DType::F64, |v| v.to_bits());
}

/// tanh x for |x| ≥ 0.625 is 1 − 2/(e^(2|x|) + 1) with x's sign, e by the general exp: its
/// capped exp (`Emitter::tanh`) gives the same bits as the formula evaluated here from the
/// JIT's exp of 2|x|, in f32 and f64, over every 997th bit pattern (random ones for f64)
/// and densely where the cap sits (2|x| near 80) and where 1 − 2/(e + 1) first reaches 1.
#[test]
fn tanh_has_the_bits_of_its_formula_with_the_general_exp() {
    fn check<T: Element + Copy + std::fmt::Debug + PartialOrd>(
        dtype: DType,
        xs: Vec<T>,
        twice_abs: impl Fn(T) -> T,
        formula: impl Fn(T, T) -> T,
        big: impl Fn(T) -> bool,
        bits: impl Fn(T) -> u64,
    ) {
        let n = xs.len();
        let compile = |op: Op| {
            let mut g = Graph::new(dtype);
            let x = g.add_input("x", vec![Dim::Known(n)], InputKind::Data);
            let y = g.add(op, &[x]).unwrap();
            g.outputs = vec![("y".into(), y)];
            jit::compile(&g, &CompileOptions::default()).unwrap()
        };
        let run = |op: Op, input: Vec<T>| {
            let mut out = vec![input.clone()];
            compile(op).run(&[input], &mut Vec::<Vec<T>>::new(), &mut out, &[]).unwrap();
            out.remove(0)
        };
        let tanh = run(Op::Tanh, xs.clone());
        let exps = run(Op::Exp, xs.iter().map(|&x| twice_abs(x)).collect());
        let mut checked = 0;
        for ((&x, &t), &e) in xs.iter().zip(&tanh).zip(&exps) {
            if big(x) {
                let want = formula(x, e);
                assert_eq!(bits(t), bits(want), "{dtype} tanh({x:?}) = {t:?}, the formula gives {want:?}");
                checked += 1;
            }
        }
        assert!(checked > n / 2, "{dtype}: {checked} of {n} checked");
    }
    let mut xs: Vec<f32> = (0..u32::MAX / 997).map(|i| f32::from_bits(i * 997)).collect();
    xs.extend((0..40_000).map(|i| 38.0 + i as f32 * 1e-4)); // 2|x| around the cap
    xs.extend((0..40_000).map(|i| 7.0 + i as f32 * 1e-4)); // where 1 − 2/(e + 1) reaches 1
    xs.extend([f32::INFINITY, f32::NEG_INFINITY, 44.0, 88.0, 1e30]);
    let formula = |x: f32, e: f32| (1.0 - 2.0 / (e + 1.0)).copysign(x);
    check(DType::F32, xs, |x| x.abs() + x.abs(), formula, |x: f32| x.abs() >= 0.625, |v| v.to_bits() as u64);
    let mut xs: Vec<f64> = (0..1u64 << 22).map(|i| f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
    xs.extend((0..40_000).map(|i| 38.0 + i as f64 * 1e-4));
    xs.extend((0..40_000).map(|i| 17.0 + i as f64 * 1e-4));
    xs.extend([f64::INFINITY, f64::NEG_INFINITY, 44.0, 400.0, 1e300]);
    let formula = |x: f64, e: f64| (1.0 - 2.0 / (e + 1.0)).copysign(x);
    check(DType::F64, xs, |x| x.abs() + x.abs(), formula, |x: f64| x.abs() >= 0.625, |v| v.to_bits());
}
