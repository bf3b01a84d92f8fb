//! Differential tests of the code generator: every op, JIT-compiled, against the reference
//! interpreter on seeded random inputs, in f32 and f64, at sizes 1, 3, 7 and 33 (vector
//! tails and odd GEMM tiles); then backward graphs from `autodiff`, train steps with in-place
//! updates, the memory plan and compile time.

use netc::codegen::{CompileOptions, MathMode};
use netc::graph::{DType, Dim, Graph, InputKind, NodeId, Op, Shape};
use netc::jit::{self, Element};
use netc::rng::Rng;
use netc::tensor::Tensor;

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
/// parameters.
fn differential(what: &str, g: &Graph, inputs: &[Tensor], params: &[Tensor], rtol: f64, atol: f64) {
    let inputs: Vec<Tensor> = inputs.iter().map(|t| rounded(t.clone(), g.dtype)).collect();
    let params: Vec<Tensor> = params.iter().map(|t| rounded(t.clone(), g.dtype)).collect();
    let values = netc::interp::run(g, &inputs, &params).unwrap_or_else(|e| panic!("{what}: interpreter: {e}"));
    let want: Vec<Tensor> = g.outputs.iter().map(|(_, id)| values[id.index()].clone()).collect();
    let mut want_params = params.clone();
    for &(p, id) in &g.updates {
        want_params[p] = values[id.index()].clone();
    }
    let mut c = jit::compile(g, &CompileOptions::default()).unwrap_or_else(|e| panic!("{what}: compile: {e:?}"));
    let mut got_params = params.clone();
    let got = c.run_tensors(&inputs, &mut got_params).unwrap_or_else(|e| panic!("{what}: run: {e}"));
    assert_close(what, &got, &want, rtol, atol);
    assert_close(&format!("{what} (updated params)"), &got_params, &want_params, rtol, atol);
}

fn dtype_tol(dtype: DType, f32_tol: f64, f64_tol: f64) -> f64 {
    match dtype {
        DType::F32 => f32_tol,
        DType::F64 => f64_tol,
    }
}

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
    let w = g.add_param("W", known(&[2, 3]), netc::graph::Init::Zeros);
    let b = g.add_param("b", known(&[3]), netc::graph::Init::Zeros);
    let xw = g.add(Op::MatMul { transpose_a: false, transpose_b: false }, &[x, w]).unwrap();
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
