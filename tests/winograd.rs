//! Winograd convolution (`runtime::winograd`, `ConvAlgorithm`) held to direct convolution: a
//! layer's forward and both gradients, JIT-compiled (the transform symbols, and the generated
//! loops that object files carry) against the reference interpreter in f32 and f64 on edges,
//! padding and odd sizes; AlexNet-sized layers in f32 against f64 direct convolution; which
//! layers take it; a Winograd-trained CNN against a directly trained one.

use netc::codegen::{CompileOptions, ConvAlgorithm};
use netc::drivers::jit;
use netc::ir::graph::{DType, Dim, Graph, InputKind, Op, Shape};
use netc::ir::tensor::Tensor;
use netc::runtime::rng::Rng;

use crate::common;

fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

/// One layer's three convolutions in one graph: y = conv2d(x, w), dx = conv2d_input_grad(g, w),
/// dw = conv2d_filter_grad(x, g); inputs x [n,c,h,w], w [f,c,r,r], g [n,f,oh,ow].
fn layer(dtype: DType, [n, c, h, w, f, r, pad]: [usize; 7]) -> Graph {
    let (oh, ow) = (h + 2 * pad + 1 - r, w + 2 * pad + 1 - r);
    let mut g = Graph::new(dtype);
    let x = g.add_input("x", known(&[n, c, h, w]), InputKind::Data);
    let wt = g.add_input("w", known(&[f, c, r, r]), InputKind::Data);
    let up = g.add_input("g", known(&[n, f, oh, ow]), InputKind::Data);
    let y = g.add(Op::Conv2d { stride: 1, pad }, &[x, wt]).unwrap();
    let dx = g.add(Op::Conv2dInputGrad { stride: 1, pad, height: h, width: w }, &[up, wt]).unwrap();
    let dw = g.add(Op::Conv2dFilterGrad { stride: 1, pad, kernel_h: r, kernel_w: r }, &[x, up]).unwrap();
    g.outputs = vec![("y".into(), y), ("dx".into(), dx), ("dw".into(), dw)];
    g
}

/// x and g uniform in [-1, 1), w He-scaled (as a trained layer's), rounded to `dtype`.
fn layer_inputs(g: &Graph, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    g.inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> = i.shape.iter().map(|d| d.known().unwrap()).collect();
            let fan_in: usize = shape[1..].iter().product();
            let scale = if i.name == "w" { (6.0 / fan_in as f64).sqrt() } else { 1.0 };
            let data = (0..shape.iter().product()).map(|_| rng.uniform_in(-scale, scale));
            let data = data.map(|v| if g.dtype == DType::F32 { v as f32 as f64 } else { v }).collect();
            Tensor::new(shape, data)
        })
        .collect()
}

/// max |got − want| / max |want| of each output.
fn errors(got: &[Tensor], want: &[Tensor]) -> Vec<f64> {
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            assert_eq!(g.shape, w.shape);
            let scale = w.data.iter().fold(0f64, |m, v| m.max(v.abs()));
            let err = g.data.iter().zip(&w.data).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(scale > 0.0 && err.is_finite(), "a weak case, or NaN: {err} / {scale}");
            err / scale
        })
        .collect()
}

fn run(g: &Graph, inputs: &[Tensor], opts: &CompileOptions) -> (Vec<Tensor>, Vec<String>) {
    let mut c = jit::compile(g, opts).unwrap_or_else(|e| panic!("compile: {e:?}"));
    let out = c.run_tensors(inputs, &mut []).unwrap();
    (out, c.kernel_summaries().to_vec())
}

fn winograd_kernels(summaries: &[String]) -> usize {
    summaries.iter().filter(|s| s.starts_with("winograd")).count()
}

/// The two implementations of the transforms: the JIT's symbols (library GEMM) and the
/// generated loops of object files (with the generated GEMM), each also bounds-checked.
fn paths(conv: ConvAlgorithm) -> [(&'static str, CompileOptions); 3] {
    let base = CompileOptions { conv, ..CompileOptions::default() };
    [
        ("symbols", base.clone()),
        ("generated", CompileOptions { generated_gemm: true, ..base.clone() }),
        ("generated, checked", CompileOptions { generated_gemm: true, checked: true, ..base }),
    ]
}

#[test]
fn small_layers_match_the_interpreter_in_f32_and_f64() {
    // [n, c, h, w, f, r, pad]: odd and even sizes, outputs that are not multiples of the tile,
    // one-pixel outputs, channel counts below, at and above the vector and lane widths (4, 16),
    // padding 0 to r − 1, a padding wider than the filter's reach.
    let geometries: [[usize; 7]; 10] = [
        [1, 1, 3, 3, 1, 3, 0],
        [2, 3, 7, 5, 4, 3, 1],
        [1, 5, 6, 6, 3, 3, 2],
        [3, 17, 5, 9, 18, 3, 1],
        [1, 2, 4, 4, 2, 3, 3],
        [2, 4, 9, 7, 5, 5, 2],
        [1, 3, 5, 5, 2, 5, 0],
        [1, 16, 8, 11, 16, 5, 1],
        [2, 1, 2, 6, 3, 3, 1],
        [1, 6, 13, 13, 7, 3, 1],
    ];
    let mut worst = [0f64; 2];
    for (gi, &geom) in geometries.iter().enumerate() {
        for (di, dtype) in [DType::F32, DType::F64].into_iter().enumerate() {
            let g = layer(dtype, geom);
            let inputs = layer_inputs(&g, 10 + gi as u64);
            let want = netc::ir::interp::outputs(&g, &inputs, &[]).unwrap();
            for m in [2, 4] {
                for (path, opts) in paths(ConvAlgorithm::Winograd(Some(m))) {
                    let what = format!("{geom:?} {dtype} F({m}, {}) {path}", geom[5]);
                    let (got, kernels) = run(&g, &inputs, &opts);
                    // Three transforms of operands, three back: none shared twice.
                    assert_eq!(winograd_kernels(&kernels), 6, "{what}: {kernels:?}");
                    let errs = errors(&got, &want);
                    let tol = if dtype == DType::F32 { 2e-5 } else { 1e-13 };
                    for (name, e) in ["y", "dx", "dw"].iter().zip(&errs) {
                        assert!(*e <= tol, "{what}: {name} relative error {e:.2e} > {tol:.0e}");
                        worst[di] = worst[di].max(*e);
                    }
                }
            }
        }
    }
    eprintln!("worst max-relative error vs the interpreter: f32 {:.2e}, f64 {:.2e}", worst[0], worst[1]);
}

#[test]
fn alexnet_sized_layers_agree_with_direct_convolution_to_1e_3() {
    // AlexNet's stride-1 layers at batch 2: conv2 (5×5, pad 2), conv3, conv4, conv5 (3×3, pad 1).
    // The reference is the f64 direct convolution (im2col + GEMM, itself held to the
    // interpreter by tests/jit.rs) of the same f32-rounded inputs.
    let layers: [(&str, [usize; 7]); 4] = [
        ("conv2", [2, 96, 27, 27, 256, 5, 2]),
        ("conv3", [2, 256, 13, 13, 384, 3, 1]),
        ("conv4", [2, 384, 13, 13, 384, 3, 1]),
        ("conv5", [2, 384, 13, 13, 256, 3, 1]),
    ];
    let direct = CompileOptions { conv: ConvAlgorithm::Direct, ..CompileOptions::default() };
    for (name, geom) in layers {
        let g32 = layer(DType::F32, geom);
        let inputs = layer_inputs(&g32, 3);
        let (want, _) = run(&layer(DType::F64, geom), &inputs, &direct);
        let (direct32, _) = run(&g32, &inputs, &direct);
        let mut line = format!("{name}: direct f32 {:.1e}", errors(&direct32, &want).into_iter().fold(0.0, f64::max));
        for m in [2, 4] {
            let opts = CompileOptions { conv: ConvAlgorithm::Winograd(Some(m)), ..CompileOptions::default() };
            let (got, kernels) = run(&g32, &inputs, &opts);
            assert_eq!(winograd_kernels(&kernels), 6, "{name}: {kernels:?}");
            let errs = errors(&got, &want);
            for (out, e) in ["y", "dx", "dw"].iter().zip(&errs) {
                assert!(*e <= 1e-3, "{name} F({m}, {}) {out}: relative error {e:.2e}", geom[5]);
            }
            line +=
                &format!(", F({m}x{m}, {r}x{r}) y {:.1e} dx {:.1e} dw {:.1e}", errs[0], errs[1], errs[2], r = geom[5]);
        }
        eprintln!("{line}");
    }
}

#[test]
fn winograd_is_chosen_where_it_applies() {
    let kernels = |geom: [usize; 7], stride: usize, conv: ConvAlgorithm| {
        let [n, c, h, w, f, r, pad] = geom;
        let mut g = Graph::new(DType::F32);
        let x = g.add_input("x", known(&[n, c, h, w]), InputKind::Data);
        let wt = g.add_input("w", known(&[f, c, r, r]), InputKind::Data);
        let y = g.add(Op::Conv2d { stride, pad }, &[x, wt]).unwrap();
        g.outputs = vec![("y".into(), y)];
        let c = jit::compile(&g, &CompileOptions { conv, ..CompileOptions::default() }).unwrap();
        c.kernel_summaries().to_vec()
    };
    let uses = |k: Vec<String>| winograd_kernels(&k) > 0;
    // Auto: stride 1, 3×3 or 5×5, at least 16 channels in and out.
    assert!(uses(kernels([2, 16, 8, 8, 16, 3, 1], 1, ConvAlgorithm::Auto)));
    assert!(uses(kernels([2, 32, 9, 9, 16, 5, 2], 1, ConvAlgorithm::Auto)));
    assert!(!uses(kernels([2, 3, 8, 8, 16, 3, 1], 1, ConvAlgorithm::Auto)), "3 input channels");
    assert!(!uses(kernels([2, 16, 8, 8, 8, 3, 1], 1, ConvAlgorithm::Auto)), "8 filters");
    assert!(!uses(kernels([2, 16, 9, 9, 16, 3, 1], 2, ConvAlgorithm::Auto)), "stride 2");
    assert!(!uses(kernels([2, 16, 9, 9, 16, 7, 3], 1, ConvAlgorithm::Auto)), "7×7: no algorithm");
    assert!(!uses(kernels([2, 16, 8, 8, 16, 1, 0], 1, ConvAlgorithm::Auto)), "1×1");
    assert!(!uses(kernels([2, 16, 8, 8, 16, 3, 1], 1, ConvAlgorithm::Direct)));
    // Forced: every stride-1 3×3 and 5×5 layer, whatever its channels.
    assert!(uses(kernels([2, 3, 8, 8, 16, 3, 1], 1, ConvAlgorithm::Winograd(None))));
    assert!(!uses(kernels([2, 3, 9, 9, 16, 3, 1], 2, ConvAlgorithm::Winograd(None))));
    // The summary names the tile: F(4×4, 3×3) for 13×13 outputs, F(2×2, 3×3) for 2×2.
    let k = kernels([1, 16, 13, 13, 16, 3, 1], 1, ConvAlgorithm::Auto);
    assert!(k.iter().any(|s| s.contains("F(4x4, 3x3)")), "{k:?}");
    let k = kernels([1, 16, 2, 2, 16, 3, 1], 1, ConvAlgorithm::Auto);
    assert!(k.iter().any(|s| s.contains("F(2x2, 3x3)")), "{k:?}");
}

#[test]
fn a_train_step_transforms_each_operand_once() {
    // cifar_cnn's second convolution (16 → 32 channels) takes Winograd under Auto: its filter
    // and input transforms serve the forward and the gradients, the upstream gradient's serves
    // both gradients: 3 shared transforms + 3 back (the first layer, 3 channels, stays direct
    // and needs no input gradient).
    let src = std::fs::read_to_string("examples/cifar_cnn.net").unwrap();
    let checked = netc::frontend::check::check_source(&src).unwrap();
    let step = netc::training::optim::build(&checked.trains[0]).unwrap();
    let mut g = step.graph;
    netc::ir::opt::optimize(&mut g, None).unwrap();
    let c = jit::compile(&g, &CompileOptions::default()).unwrap();
    let k = c.kernel_summaries();
    let count = |what: &str| k.iter().filter(|s| s.starts_with(&format!("winograd {what} "))).count();
    for what in ["Filter", "Input", "Output", "OutputAdjoint", "InputAdjoint", "FilterAdjoint"] {
        assert_eq!(count(what), 1, "{what}: {k:?}");
    }
    let forced = CompileOptions { conv: ConvAlgorithm::Winograd(None), ..CompileOptions::default() };
    let k = jit::compile(&g, &forced).unwrap().kernel_summaries().to_vec();
    // Both layers now; the first has no input gradient (x is data): 5 transforms, 6 for the second.
    assert_eq!(winograd_kernels(&k), 11, "{k:?}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    use netc::runtime::symbols::winograd_f32_on;
    use netc::runtime::threads::Pool;
    use netc::runtime::winograd::{Geometry, Tile, Transform};
    let g = Geometry { c: 35, h: 13, w: 11, f: 21, oh: 13, ow: 11, pad: 1, tile: Tile { m: 4, r: 3 } };
    let n = 3;
    let (one, two) = (Pool::new(1), Pool::new(2));
    let mut rng = Rng::new(9);
    for op in Transform::ALL {
        let (src_len, dst_len) = g.sizes(op, n);
        let src: Vec<f32> = (0..src_len).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect();
        let run = |pool: &Pool| {
            let mut dst = vec![f32::NAN; dst_len];
            // SAFETY: buffers of the sizes the geometry gives.
            unsafe { winograd_f32_on(pool, op.code(), &g.to_array(), n as i64, src.as_ptr(), dst.as_mut_ptr()) };
            dst
        };
        let (a, b) = (run(&one), run(&two));
        assert!(a.iter().all(|v| v.is_finite()), "{op:?} left elements unwritten");
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{op:?}"
        );
    }
}

#[test]
fn a_winograd_trained_cifar_cnn_reaches_the_same_loss() {
    // examples/cifar_cnn.net for 400 SGD steps at lr 0.05 (long enough to fit its synthetic
    // set: the loss falls from 5.4 to ~0.04), both convolutions by Winograd vs both direct,
    // the two runs side by side. The trajectories part a little where training is chaotic
    // (different rounding); the loss over the whole training set at the end must agree.
    let run = |conv: &'static str| {
        std::thread::spawn(move || {
            let args = ["run", "examples/cifar_cnn.net", "--json", "--steps", "400", "--lr", "0.05", "--conv", conv];
            let (code, out, err) = common::netc(&args);
            assert_eq!(code, 0, "{err}");
            let number = |k: &str| common::field(&out, k).parse::<f64>().unwrap();
            (number("train_loss"), number("train_accuracy"))
        })
    };
    let (direct, winograd) = (run("direct"), run("winograd"));
    let (direct, winograd) = (direct.join().unwrap(), winograd.join().unwrap());
    eprintln!(
        "cifar_cnn, 400 steps: train loss direct {:.5} (accuracy {}), winograd {:.5} ({})",
        direct.0, direct.1, winograd.0, winograd.1
    );
    assert!(direct.0 < 0.2, "the run learns: {direct:?}");
    assert!((direct.0 - winograd.0).abs() <= 0.02 * direct.0, "{direct:?} vs {winograd:?}");
    assert!((direct.1 - winograd.1).abs() <= 0.01, "{direct:?} vs {winograd:?}");
}
