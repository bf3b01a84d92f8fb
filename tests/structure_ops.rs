//! The structural ops: their gradients against central differences in f64 (slices at the
//! edges, repeated gather indices, broadcast batch axes, second derivatives), and their
//! compiled code against the reference interpreter at sizes 1, 3, 7 and 33 in f32 and f64:
//! strided slices, reversals and their padding adjoint, concatenation, gather and scatter-add,
//! batched products (the batched GEMM symbol, the loop of GEMM calls an object file makes,
//! inline narrow products and fused short ones). Every graph is also compiled bounds-checked
//! (no check may fire, same bits) and with the object file's GEMM.

use netc::codegen::CompileOptions;
use netc::drivers::jit;
use netc::ir::autodiff;
use netc::ir::gradcheck;
use netc::ir::graph::{DType, Dim, Graph, Init, InputKind, NodeId, Op, Shape};
use netc::ir::tensor::Tensor;
use netc::runtime::rng::Rng;

const DTYPES: [DType; 2] = [DType::F32, DType::F64];
const SIZES: [usize; 4] = [1, 3, 7, 33];

fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

fn random(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(|_| rng.uniform_in(-2.0, 2.0)).collect())
}

fn rounded(t: &Tensor, dtype: DType) -> Tensor {
    match dtype {
        DType::F32 => Tensor::new(t.shape.clone(), t.data.iter().map(|&v| v as f32 as f64).collect()),
        DType::F64 => t.clone(),
    }
}

/// Run `g` on the interpreter and compiled (plain, bounds-checked, and with the object file's
/// generated GEMM instead of the library's and the batched symbol): outputs must agree within
/// `rtol` (exactly, for 0), and the checked run must give the plain run's bits.
fn differential(what: &str, g: &Graph, inputs: &[Tensor], rtol: f64) {
    let inputs: Vec<Tensor> = inputs.iter().map(|t| rounded(t, g.dtype)).collect();
    let want = netc::ir::interp::outputs(g, &inputs, &[]).unwrap_or_else(|e| panic!("{what}: interpreter: {e}"));
    let mut plain = None;
    for (mode, opts) in [
        ("plain", CompileOptions::default()),
        ("checked", CompileOptions { checked: true, ..CompileOptions::default() }),
        ("generated gemm", CompileOptions { generated_gemm: true, ..CompileOptions::default() }),
    ] {
        let mut c = jit::compile(g, &opts).unwrap_or_else(|e| panic!("{what} ({mode}): compile: {e:?}"));
        let got = c.run_tensors(&inputs, &mut []).unwrap_or_else(|e| panic!("{what} ({mode}): run: {e}"));
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.shape, b.shape, "{what} ({mode}): shape of output {k}");
            for (i, (&x, &y)) in a.data.iter().zip(&b.data).enumerate() {
                let ok = (x - y).abs() <= rtol * (1.0 + y.abs());
                assert!(ok, "{what} ({mode}): output {k}[{i}] = {x}, interpreter {y}");
            }
        }
        let bits: Vec<Vec<u64>> = got.iter().map(|t| t.data.iter().map(|v| v.to_bits()).collect()).collect();
        match mode {
            "plain" => plain = Some(bits),
            "checked" => assert_eq!(Some(bits), plain, "{what}: checked code gives other bits"),
            _ => {}
        }
    }
}

/// `build(g, inputs)` returns the outputs; inputs are fresh data inputs of the given shapes.
fn graph(dtype: DType, shapes: &[Vec<usize>], build: impl Fn(&mut Graph, &[NodeId]) -> Vec<NodeId>) -> Graph {
    let mut g = Graph::new(dtype);
    let xs: Vec<NodeId> =
        shapes.iter().enumerate().map(|(i, s)| g.add_input(&format!("x{i}"), known(s), InputKind::Data)).collect();
    let outs = build(&mut g, &xs);
    g.outputs = outs.into_iter().enumerate().map(|(i, y)| (format!("y{i}"), y)).collect();
    g
}

fn add(g: &mut Graph, op: Op, inputs: &[NodeId]) -> NodeId {
    g.add(op.clone(), inputs).unwrap_or_else(|e| panic!("{op:?}: {e:?}"))
}

// ---- gradients against central differences (f64) -------------------------------------------

/// `build` over parameters of `shapes` (values spread over [-1, 1)); the gradient of
/// Σ y ⊙ v (v fixed) wrt every parameter must match central differences at every element,
/// and so must the gradient of that gradient (Σ of it ⊙ fixed weights) when `second`.
fn check_grads(what: &str, shapes: &[&[usize]], second: bool, build: impl Fn(&mut Graph, &[NodeId]) -> NodeId) {
    let mut g = Graph::new(DType::F64);
    let ps: Vec<NodeId> =
        shapes.iter().enumerate().map(|(i, s)| g.add_param(&format!("p{i}"), known(s), Init::Zeros)).collect();
    let y = build(&mut g, &ps);
    let values: Vec<Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n: usize = s.iter().product();
            let data = (0..n).map(|k| (((k + 1) * 7 + i * 13) as f64 * 0.618_033_988_749_895).fract() * 2.0 - 1.0);
            Tensor::new(s.to_vec(), data.collect())
        })
        .collect();
    let report = |g: &Graph, of: NodeId, label: &str| {
        let reports = gradcheck::check_elements(g, of, &ps, &[], &values, 1e-6, usize::MAX)
            .unwrap_or_else(|e| panic!("{what} ({label}): {e}"));
        for r in reports {
            assert!(r.max_rel_error < 1e-6, "{what} ({label}): d/d{} relative error {:e}", r.name, r.max_rel_error);
        }
    };
    report(&g, y, "gradient");
    if second {
        // L2 = Σ_k Σ (dL/dp_k ⊙ u_k): its gradient goes through every VJP rule's own VJP.
        let mut g2 = g.clone();
        let shape = g2.shape(y).clone();
        let n: usize = shape.iter().map(|d| d.known().unwrap()).product();
        let v = literal(&mut g2, &shape, (0..n).map(|k| 0.5 + (k as f64 * 0.37).fract()).collect());
        let weighted = g2.add(Op::Mul, &[y, v]).unwrap();
        let all = (0..shape.len()).collect();
        let l = g2.add(Op::Sum { axes: all }, &[weighted]).unwrap();
        let grads = autodiff::differentiate(&mut g2, l, &ps).unwrap();
        let mut total = g2.constant(0.0);
        for (k, &d) in grads.iter().enumerate() {
            let shape = g2.shape(d).clone();
            let n: usize = shape.iter().map(|d| d.known().unwrap()).product();
            let u = literal(&mut g2, &shape, (0..n).map(|i| ((i + 3 * k) as f64 * 0.71).sin()).collect());
            let du = g2.add(Op::Mul, &[d, u]).unwrap();
            let all = (0..shape.len()).collect();
            let s = g2.add(Op::Sum { axes: all }, &[du]).unwrap();
            total = g2.add(Op::Add, &[total, s]).unwrap();
        }
        report(&g2, total, "second derivative");
    }
}

fn literal(g: &mut Graph, shape: &Shape, values: Vec<f64>) -> NodeId {
    g.push(netc::ir::graph::Node {
        op: Op::Literal { values: values.into() },
        inputs: vec![],
        shape: shape.clone(),
        name: None,
        span: None,
    })
}

fn ids(g: &mut Graph, values: &[f64]) -> NodeId {
    literal(g, &known(&[values.len()]), values.to_vec())
}

#[test]
fn gradients_of_slices_at_the_edges_reversals_and_padding() {
    let x: &[usize] = &[3, 5, 4];
    for axis in 0..3 {
        let n = x[axis];
        let slices = [
            (0, 1, 1),                   // the first element
            (n - 1, 1, 1),               // the last
            (n - 1, 1, n + 2),           // a step past the end: one element
            (0, n.div_ceil(2), 2),       // every other, from the first
            (1, (n - 1).div_ceil(2), 2), // every other, to the last when n is even
        ];
        for (start, len, step) in slices {
            let op = Op::Slice { axis, start, len, step };
            check_grads(&format!("{op:?}"), &[x], true, |g, p| g.add(op.clone(), p).unwrap());
        }
        // x[::-1] and x[n-1::-2]: a reversal, then a slice
        check_grads(&format!("reverse axis {axis}"), &[x], true, |g, p| {
            let r = g.add(Op::Reverse { axis }, p).unwrap();
            g.add(Op::Slice { axis, start: 0, len: n.div_ceil(2), step: 2 }, &[r]).unwrap()
        });
        let op = Op::Pad { axis, before: 2, after: 1, step: 3 };
        check_grads(&format!("{op:?}"), &[x], true, |g, p| g.add(op.clone(), p).unwrap());
    }
}

#[test]
fn gradients_of_concat_and_gathers_with_repeated_indices() {
    check_grads("concat", &[&[2, 3], &[2, 1], &[2, 4]], true, |g, p| g.add(Op::Concat { axis: 1 }, p).unwrap());
    check_grads("concat axis 0", &[&[1, 3], &[4, 3]], true, |g, p| g.add(Op::Concat { axis: 0 }, p).unwrap());
    // Rows 0 and 4 picked three and two times: their gradients are sums.
    check_grads("gather rows", &[&[5, 3]], true, |g, p| {
        let i = ids(g, &[0.0, 4.0, 0.0, 2.0, 0.0, 4.0]);
        g.add(Op::Gather { axis: 0 }, &[p[0], i]).unwrap()
    });
    check_grads("gather middle axis", &[&[2, 4, 3]], true, |g, p| {
        let i = ids(g, &[3.0, 3.0, 1.0]);
        g.add(Op::Gather { axis: 1 }, &[p[0], i]).unwrap()
    });
    check_grads("scatter_add", &[&[6, 2]], true, |g, p| {
        let i = ids(g, &[1.0, 1.0, 0.0, 3.0, 1.0, 0.0]);
        g.add(Op::ScatterAdd { axis: 0, size: 4 }, &[p[0], i]).unwrap()
    });
}

#[test]
fn gradients_of_batched_products_with_broadcast_batch_axes() {
    let cases: [(bool, bool, usize, usize, &[usize], &[usize]); 7] = [
        (false, false, 2, 1, &[2, 1, 3, 4], &[1, 3, 4, 2]),
        (true, false, 1, 1, &[3, 4, 2], &[1, 4, 5]),
        (false, true, 1, 1, &[1, 2, 4], &[3, 5, 4]),
        (true, true, 2, 1, &[2, 3, 4, 2], &[2, 1, 5, 4]),
        (false, false, 0, 2, &[2, 3, 2, 2], &[2, 2, 3]),
        (false, false, 1, 1, &[2, 4], &[2, 4, 3]),
        (true, false, 0, 2, &[3, 2, 4], &[3, 2, 5]),
    ];
    for (ta, tb, batch, contract, a, b) in cases {
        let op = Op::MatMul { transpose_a: ta, transpose_b: tb, batch, contract };
        check_grads(&format!("{op:?} {a:?} {b:?}"), &[a, b], true, |g, p| g.add(op.clone(), p).unwrap());
    }
}

// ---- compiled code against the interpreter ----------------------------------------------------

#[test]
fn strided_slices_reversals_and_padding() {
    for dtype in DTYPES {
        for n in SIZES {
            let mut rng = Rng::new(n as u64);
            let g = graph(dtype, &[vec![3, n, 4]], |g, x| {
                let last = add(g, Op::Slice { axis: 1, start: n - 1, len: 1, step: 3 }, &[x[0]]);
                let every_other = add(g, Op::Slice { axis: 1, start: 0, len: n.div_ceil(2), step: 2 }, &[x[0]]);
                let odd = add(g, Op::Slice { axis: 2, start: 1, len: 2, step: 2 }, &[x[0]]);
                let rev = add(g, Op::Reverse { axis: 1 }, &[x[0]]);
                let rev_slice = add(g, Op::Slice { axis: 1, start: 0, len: n.div_ceil(3), step: 3 }, &[rev]);
                // A slice of a computed value slices its loads; a reversal of one too.
                let e = add(g, Op::Exp, &[x[0]]);
                let e_rev = add(g, Op::Reverse { axis: 2 }, &[e]);
                let e_slice = add(g, Op::Slice { axis: 2, start: 2, len: 2, step: 1 }, &[e_rev]);
                let padded = add(g, Op::Pad { axis: 1, before: 2, after: 1, step: 3 }, &[every_other]);
                let pad_last = add(g, Op::Pad { axis: 2, before: 0, after: 0, step: 4 }, &[odd]);
                vec![last, every_other, odd, rev, rev_slice, e_slice, padded, pad_last]
            });
            let x = random(&mut rng, &[3, n, 4]);
            let tol = if dtype == DType::F32 { 5e-7 } else { 1e-15 };
            differential(&format!("slices {dtype} n={n}"), &g, &[x], tol);
        }
    }
}

#[test]
fn concatenation_of_leaves_views_and_expressions() {
    for dtype in DTYPES {
        for n in SIZES {
            let mut rng = Rng::new(10 + n as u64);
            let g = graph(dtype, &[vec![n, 3], vec![n, 2], vec![3]], |g, x| {
                let t = add(g, Op::Tanh, &[x[1]]);
                let b = add(g, Op::Broadcast { shape: known(&[n, 3]) }, &[x[2]]);
                let rows = add(g, Op::Concat { axis: 1 }, &[x[0], t, b, x[0]]);
                let tr = add(g, Op::Transpose { perm: vec![1, 0] }, &[x[0]]);
                let cols = add(g, Op::Concat { axis: 0 }, &[tr, tr]);
                // Slices of a concatenation (the gradient's shape) and one operand.
                let back = add(g, Op::Slice { axis: 1, start: 3, len: 2, step: 1 }, &[rows]);
                vec![rows, cols, back]
            });
            let xs = [random(&mut rng, &[n, 3]), random(&mut rng, &[n, 2]), random(&mut rng, &[3])];
            let tol = if dtype == DType::F32 { 5e-7 } else { 1e-15 };
            differential(&format!("concat {dtype} n={n}"), &g, &xs, tol);
        }
    }
}

/// Whole-number indices in 0..bound, the first repeated at the end.
fn indices(rng: &mut Rng, count: usize, bound: usize) -> Tensor {
    let mut v: Vec<f64> = (0..count).map(|_| rng.below(bound as u64) as f64).collect();
    if count > 1 {
        v[count - 1] = v[0];
    }
    Tensor::new(vec![count], v)
}

#[test]
fn gather_and_scatter_add() {
    for dtype in DTYPES {
        for n in SIZES {
            let mut rng = Rng::new(20 + n as u64);
            // An embedding table [V, n], rows picked by ids [n]; a gather along axis 1; the
            // scatter-add of gradients with repeated ids.
            let vocab = 5;
            let g = graph(dtype, &[vec![vocab, n], vec![n], vec![2, n, 3], vec![n, n]], |g, x| {
                let rows = add(g, Op::Gather { axis: 0 }, &[x[0], x[1]]);
                let ids2 = add(g, Op::Reshape { shape: known(&[n, 1]) }, &[x[1]]);
                let mid = add(g, Op::Gather { axis: 1 }, &[x[2], ids2]);
                let scattered = add(g, Op::ScatterAdd { axis: 0, size: vocab }, &[x[3], x[1]]);
                vec![rows, mid, scattered]
            });
            let ids = indices(&mut rng, n, vocab.min(n).max(1));
            let xs = [random(&mut rng, &[vocab, n]), ids, random(&mut rng, &[2, n, 3]), random(&mut rng, &[n, n])];
            let tol = if dtype == DType::F32 { 5e-7 } else { 1e-15 };
            differential(&format!("gather {dtype} n={n}"), &g, &xs, tol);
        }
    }
}

#[test]
fn out_of_range_indices_are_errors_and_never_read_outside() {
    let g = graph(DType::F32, &[vec![4, 3], vec![2]], |g, x| vec![add(g, Op::Gather { axis: 0 }, &[x[0], x[1]])]);
    let table = Tensor::new(vec![4, 3], (0..12).map(|v| v as f64).collect());
    for bad in [4.0, -1.0, 1.5, f64::NAN, 1e30] {
        let ids = Tensor::new(vec![2], vec![0.0, bad]);
        let interp = netc::ir::interp::outputs(&g, &[table.clone(), ids.clone()], &[]);
        assert!(interp.unwrap_err().contains("out of range"), "interpreter, index {bad}");
        for checked in [false, true] {
            let mut c = jit::compile(&g, &CompileOptions { checked, ..CompileOptions::default() }).unwrap();
            let err = c.run_tensors(&[table.clone(), ids.clone()], &mut []).unwrap_err();
            assert!(err.starts_with(jit::INDEX_FAILED) && err.contains("size 4"), "index {bad}: {err}");
        }
    }
    // A valid call after a failed one succeeds (the error is not left behind).
    let mut c = jit::compile(&g, &CompileOptions::default()).unwrap();
    assert!(c.run_tensors(&[table.clone(), Tensor::new(vec![2], vec![0.0, 9.0])], &mut []).is_err());
    let out = c.run_tensors(&[table, Tensor::new(vec![2], vec![3.0, 0.0])], &mut []).unwrap();
    assert_eq!(out[0].data, [9.0, 10.0, 11.0, 0.0, 1.0, 2.0]);
}

/// A batched product `MatMul { ta, tb, batch, contract }` of operands with these shapes.
struct Product {
    ta: bool,
    tb: bool,
    batch: usize,
    contract: usize,
    a: Vec<usize>,
    b: Vec<usize>,
}

fn product(ta: bool, tb: bool, batch: usize, contract: usize, a: &[usize], b: &[usize]) -> Product {
    Product { ta, tb, batch, contract, a: a.to_vec(), b: b.to_vec() }
}

#[test]
fn batched_products_in_every_layout_and_size() {
    for n in SIZES {
        let cases = [
            // [B, m, k] @ [B, k, n], every transpose; batches broadcast either way
            product(false, false, 1, 1, &[3, n, 5], &[3, 5, 4]),
            product(true, false, 1, 1, &[3, 5, n], &[3, 5, 4]),
            product(false, true, 1, 1, &[3, n, 5], &[3, 4, 5]),
            product(true, true, 1, 1, &[2, 5, n], &[2, n, 5]),
            product(false, false, 2, 1, &[2, 1, n, 6], &[1, 3, 6, n]),
            // attention-shaped: [B, H, T, D] @ [B, H, D, T] (a GEMM per (b, h))
            product(false, true, 2, 1, &[2, 3, n, 8], &[2, 3, n, 8]),
            // groups of several axes: rows [2, n], inner [3, 2], cols [n]
            product(false, false, 0, 2, &[2, n, 3, 2], &[3, 2, n]),
            // the weight gradient of [B, T, D] @ [D, E]: contract over B and T
            product(true, false, 0, 2, &[4, n, 6], &[4, n, 5]),
            // narrow (inline) and short (fused sum) products per batch element
            product(false, false, 1, 1, &[n, 2, 9], &[n, 9, 3]),
            product(false, false, 1, 1, &[3, n, 3], &[1, 3, n]),
            // a vector on either side
            product(false, false, 1, 1, &[4, 6], &[4, 6, n]),
            product(false, false, 0, 1, &[3, n, 6], &[6]),
        ];
        for p in cases {
            for dtype in DTYPES {
                let mut rng = Rng::new(30 + n as u64);
                let op = Op::MatMul { transpose_a: p.ta, transpose_b: p.tb, batch: p.batch, contract: p.contract };
                let g = graph(dtype, &[p.a.clone(), p.b.clone()], |g, x| vec![add(g, op.clone(), x)]);
                let xs = [random(&mut rng, &p.a), random(&mut rng, &p.b)];
                let tol = if dtype == DType::F32 { 2e-6 } else { 1e-13 };
                differential(&format!("{op:?} {:?} x {:?} {dtype}", p.a, p.b), &g, &xs, tol);
            }
        }
    }
}

#[test]
fn batched_products_large_enough_for_the_threads() {
    // The batched symbol divides the products among threads: 16 of 48×64·64×40 each run the
    // generated GEMM (below the small-product threshold), 4 of 96×96·96×96 the library's; the
    // second operand is broadcast over a batch axis (stride 0) in the last case.
    let cases: [(&[usize], &[usize]); 3] =
        [(&[16, 48, 64], &[16, 40, 64]), (&[4, 96, 96], &[4, 96, 96]), (&[2, 3, 96, 96], &[1, 3, 96, 96])];
    for (a, b) in cases {
        for dtype in DTYPES {
            let mut rng = Rng::new(3);
            let op = Op::MatMul { transpose_a: false, transpose_b: true, batch: a.len() - 2, contract: 1 };
            let g = graph(dtype, &[a.to_vec(), b.to_vec()], |g, x| vec![add(g, op.clone(), x)]);
            let xs = [random(&mut rng, a), random(&mut rng, b)];
            let tol = if dtype == DType::F32 { 2e-5 } else { 1e-13 };
            differential(&format!("{a:?} x {b:?} {dtype}"), &g, &xs, tol);
        }
    }
}

#[test]
fn the_batched_gemm_gives_the_same_bits_on_any_thread_count() {
    use netc::runtime::symbols::{batched_f32_on, GemmArgs, Matrix, Split};
    use netc::runtime::threads::Pool;
    let (count, m, k, n) = (12usize, 40usize, 56usize, 36usize);
    let mut rng = Rng::new(9);
    let a: Vec<f32> = (0..count * m * k).map(|_| rng.normal() as f32).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect(); // shared: stride 0
    let run = |threads: usize, split: Split| {
        let mut c = vec![0f32; count * m * n];
        let args = GemmArgs {
            m: m as i64,
            k: k as i64,
            n: n as i64,
            alpha: 1.0,
            a: Matrix::new(a.as_ptr(), k as i64, 1),
            b: Matrix::new(b.as_ptr(), n as i64, 1),
            beta: 0.0,
            c: Matrix::new(c.as_mut_ptr(), n as i64, 1),
        };
        let pool = Pool::new(threads);
        // SAFETY: each product's A, B and C lie inside the vectors, the C's are disjoint.
        unsafe { batched_f32_on(&pool, split, None, count as i64, [(m * k) as i64, 0, (m * n) as i64], args) };
        c
    };
    let one = run(1, Split::DEFAULT);
    let split_everything = Split { min_macs: 0, wake_macs: 0, blocks_per_thread: 3 };
    for threads in [2, 3] {
        assert_eq!(run(threads, split_everything), one, "{threads} threads");
    }
    // And the products are right: product 5, element (7, 11).
    let want: f64 = (0..k).map(|p| a[5 * m * k + 7 * k + p] as f64 * b[p * n + 11] as f64).sum();
    assert!((one[5 * m * n + 7 * n + 11] as f64 - want).abs() < 1e-4);
}

/// The kernel names of `g`'s program, in order.
fn kernel_names(g: &Graph) -> Vec<&'static str> {
    netc::codegen::fuse::schedule(g, Default::default()).unwrap().kernels.iter().map(|k| k.name()).collect()
}

#[test]
fn transposed_operands_of_batched_products_are_not_copied() {
    // Every transpose flag: one batched GEMM over strided views, no copy of an operand first.
    let [b, h, t, d] = [4usize, 3, 7, 5];
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = if ta { vec![b, h, d, t] } else { vec![b, h, t, d] };
        let bs = if tb { vec![b, h, t, d] } else { vec![b, h, d, t] };
        let op = Op::MatMul { transpose_a: ta, transpose_b: tb, batch: 2, contract: 1 };
        let g = graph(DType::F32, &[a, bs], |g, x| vec![add(g, op.clone(), x)]);
        assert_eq!(kernel_names(&g), ["gemm"], "{op:?}");
    }
    // q @ kᵀ as attention writes it (a transpose node of the last two axes), and its
    // gradients for an upstream gradient u: dq = u @ k and dk = (qᵀ u)ᵀ, which the optimiser
    // turns into uᵀ q so that the GEMM writes dk in k's layout. Two GEMMs, nothing else.
    let swap = Op::Transpose { perm: vec![0, 1, 3, 2] };
    let mut g = graph(DType::F32, &[vec![b, h, t, d], vec![b, h, t, d], vec![b, h, t, t]], |g, x| {
        let kt = add(g, swap.clone(), &[x[1]]);
        vec![add(g, Op::MatMul { transpose_a: false, transpose_b: false, batch: 2, contract: 1 }, &[x[0], kt])]
    });
    assert_eq!(kernel_names(&g), ["gemm"], "forward");
    let inputs: Vec<NodeId> =
        (0..g.nodes.len() as u32).map(NodeId).filter(|&id| matches!(g.node(id).op, Op::Input { .. })).collect();
    let y = g.outputs[0].1;
    let weighted = add(&mut g, Op::Mul, &[y, inputs[2]]);
    let l = add(&mut g, Op::Sum { axes: (0..4).collect() }, &[weighted]);
    let grads = autodiff::differentiate(&mut g, l, &inputs[..2]).unwrap();
    g.outputs = vec![("dq".into(), grads[0]), ("dk".into(), grads[1])];
    let unoptimised = g.clone();
    netc::ir::opt::optimize(&mut g, None).unwrap();
    // (The seed's product 1 · u is a map over [b, h, t, t]; a copy of an operand or of a
    // result would be a map over [b, h, t, d] or [b, h, d, t].)
    let kernels: Vec<String> =
        netc::codegen::fuse::schedule(&g, Default::default()).unwrap().kernels.iter().map(|k| k.summary(&[])).collect();
    assert_eq!(kernels.iter().filter(|k| k.starts_with("gemm")).count(), 2, "{kernels:?}\n{}", g.to_text());
    assert!(kernels.iter().all(|k| k.starts_with("gemm") || k == "map [4, 3, 7, 7]"), "{kernels:?}\n{}", g.to_text());
    // The rewritten product computes the same gradients.
    let mut rng = Rng::new(4);
    let xs: Vec<Tensor> = [[b, h, t, d], [b, h, t, d], [b, h, t, t]].iter().map(|s| random(&mut rng, s)).collect();
    let want = netc::ir::interp::outputs(&unoptimised, &xs, &[]).unwrap();
    let got = netc::ir::interp::outputs(&g, &xs, &[]).unwrap();
    assert_eq!(got, want);
}
