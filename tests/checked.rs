//! Bounds-checked mode (`netc run --checked`, `CompileOptions::checked`): every example gives
//! the same results with the checks as without them, and the checks fire — an access
//! outside a buffer is refused (not performed, no crash) and reported with its kernel,
//! buffer, element offset and the buffer's length. To make correct code overrun a buffer,
//! the tests declare the buffer shorter than it is (`emit::testing::shrink_next_extent`, or
//! `NETC_CHECKED_SHRINK` for the command line). The per-op differential tests of
//! tests/jit.rs also run every graph checked (`differential` there).

use crate::common;
use common::*;

use std::collections::BTreeSet;
use std::process::Command;

use netc::codegen::emit::testing::shrink_next_extent;
use netc::codegen::kernel::Base;
use netc::codegen::CompileOptions;
use netc::drivers::jit;
use netc::ir::graph::{DType, Dim, Graph, InputKind, Op, Shape};
use netc::ir::tensor::Tensor;
use netc::runtime::rng::Rng;

fn checked() -> CompileOptions {
    CompileOptions { checked: true, ..CompileOptions::default() }
}

fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

// ---- the examples, checked and not --------------------------------------------------------------

/// What `netc run --json` prints, without the run's timings: the eval blocks' text and the
/// JSON fields other than `seconds` and `samples_per_second`.
fn results(out: &str) -> String {
    out.lines()
        .map(|line| {
            if !line.starts_with('{') {
                return line.to_string();
            }
            // The report without its timings.
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("samples_per_second");
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_example_gives_the_same_results_checked() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    files.sort();
    let (mut evals, mut trains) = (0, 0);
    for path in &files {
        let file = path.to_str().unwrap();
        // A few steps at an odd batch (vector tails, a partial last batch); AlexNet, at about
        // 1.5 GFLOP per image and step, trains one step of two images (8 s in a debug build).
        let (steps, batch) = if file.ends_with("alexnet.net") { ("1", "2") } else { ("3", "5") };
        // Training flags on a file that trains nothing are refused, so only trainers get them.
        let trainer =
            !netc::frontend::check::check_source(&std::fs::read_to_string(path).unwrap()).unwrap().trains.is_empty();
        let args: Vec<&str> =
            if trainer { vec!["run", file, "--json", "--steps", steps, "--batch", batch] } else { vec!["run", file] };
        let (code, plain, err) = netc(&args);
        assert_eq!(code, 0, "{file}: {err}");
        let (code, with_checks, err) = netc(&[&args[..], &["--checked"]].concat());
        assert_eq!(code, 0, "{file} --checked: {err}");
        assert_eq!(results(&with_checks), results(&plain), "{file}: results differ with --checked");
        evals += plain.matches("eval ").count();
        trains += plain.lines().filter(|l| l.starts_with('{')).count();
    }
    assert!(files.len() >= 8, "examples are missing: {files:?}");
    assert!(evals >= 3 && trains >= 6, "{evals} eval blocks and {trains} training runs compared");
}

// ---- the checks fire ------------------------------------------------------------------------------

/// y = relu(x) on 9 elements (two f32x4 vectors and a tail of one).
fn relu9() -> Graph {
    let mut g = Graph::new(DType::F32);
    let x = g.add_input("x", known(&[9]), InputKind::Data);
    let zero = g.constant(0.0);
    let y = g.add(Op::Max, &[x, zero]).unwrap();
    g.outputs = vec![("y".into(), y)];
    g
}

const SENTINEL: f32 = 12345.0;

#[test]
fn a_refused_store_is_not_performed() {
    let xs = [(0..9).map(|i| i as f32 - 4.0).collect::<Vec<f32>>()];
    let relu: Vec<f32> = xs[0].iter().map(|&v| v.max(0.0)).collect();

    // Declared one element short: the scalar tail's store of element 8 is refused.
    shrink_next_extent(Base::Output(0), 1);
    let mut c = jit::compile(&relu9(), &checked()).unwrap();
    let mut outs = [vec![SENTINEL; 9]];
    let err = c.run(&xs, &mut [] as &mut [Vec<f32>], &mut outs, &[]).unwrap_err();
    assert_eq!(
        err,
        "bounds check failed: kernel 0 (map) accessed output 0 `y` at element offset 8, outside its length of 8 \
         elements; the access was not performed"
    );
    assert_eq!(outs[0][..8], relu[..8]);
    assert_eq!(outs[0][8], SENTINEL, "the refused store was performed");

    // Two short: the vector store of elements 4..8 reaches past the end with its last lane;
    // none of its lanes is written (nor the tail).
    shrink_next_extent(Base::Output(0), 2);
    let mut c = jit::compile(&relu9(), &checked()).unwrap();
    let mut outs = [vec![SENTINEL; 9]];
    let err = c.run(&xs, &mut [] as &mut [Vec<f32>], &mut outs, &[]).unwrap_err();
    assert!(err.contains("kernel 0 (map) accessed output 0 `y` at element offset 7, outside its length of 7"), "{err}");
    assert!(err.ends_with("(1 more refused accesses)"), "{err}");
    assert_eq!(outs[0][..4], relu[..4]);
    assert!(outs[0][4..].iter().all(|&v| v == SENTINEL), "a refused vector store was performed: {:?}", outs[0]);

    // The same function compiled unchecked, and the checked one is not left failing: the
    // record of a violation is per call.
    let mut c = jit::compile(&relu9(), &CompileOptions::default()).unwrap();
    c.run(&xs, &mut [] as &mut [Vec<f32>], &mut outs, &[]).unwrap();
    assert_eq!(outs[0], relu);
}

#[test]
fn a_gemm_outside_its_matrices_is_not_called() {
    // y = x @ W with x: [B, 5], W: [5, 6], B = 6 (no side narrow and an inner dimension long
    // enough for a GEMM call); W declared one element short.
    for dtype in [DType::F32, DType::F64] {
        let mut g = Graph::new(dtype);
        let b = g.symbol("B");
        let x = g.add_input("x", vec![Dim::Sym(b), Dim::Known(5)], InputKind::Data);
        let w = g.add_param("W", known(&[5, 6]), netc::ir::graph::Init::Zeros);
        let y = g.add(Op::matmul(false, false), &[x, w]).unwrap();
        g.outputs = vec![("y".into(), y)];
        shrink_next_extent(Base::Param(0), 1);
        let mut c = jit::compile(&g, &checked()).unwrap();
        let mut outs = [vec![SENTINEL as f64; 36]];
        let err = c.run(&[vec![1.0f64; 30]], &mut [vec![1.0f64; 30]], &mut outs, &[6]);
        let err = match dtype {
            DType::F64 => err.unwrap_err(),
            DType::F32 => {
                // (f64 buffers for an f32 function are refused before the call.)
                assert!(err.is_err());
                let mut outs = [vec![SENTINEL; 36]];
                let err = c.run(&[vec![1.0f32; 30]], &mut [vec![1.0f32; 30]], &mut outs, &[6]).unwrap_err();
                assert!(outs[0].iter().all(|&v| v == SENTINEL), "the GEMM was called");
                err
            }
        };
        assert!(
            err.starts_with(
                "bounds check failed: kernel 0 (gemm) accessed parameter 0 `W` at element offset 29, outside its \
                 length of 29 elements"
            ),
            "{dtype}: {err}"
        );
        if dtype == DType::F64 {
            assert!(outs[0].iter().all(|&v| v == SENTINEL as f64), "the GEMM was called");
        }
    }
}

#[test]
fn reads_outside_inputs_and_literals_are_refused() {
    // The leaves test of tests/jit.rs: x · literal, summed, over a symbolic batch.
    let mut g = Graph::new(DType::F32);
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
    g.outputs = vec![("s".into(), s)];
    let xs = Tensor::new(vec![5, 3], (0..15).map(|i| i as f64).collect());

    let want = jit::compile(&g, &checked()).unwrap().run_tensors(std::slice::from_ref(&xs), &mut []).unwrap();
    let plain =
        jit::compile(&g, &CompileOptions::default()).unwrap().run_tensors(std::slice::from_ref(&xs), &mut []).unwrap();
    assert_eq!(want, plain);

    // [B, 3] declared [B, 2]: B = 5 gives a length of 10. (The loop runs along B, the longer
    // axis, column by column: x[4, 0] is the first element refused.)
    shrink_next_extent(Base::Input(0), 1);
    let err = jit::compile(&g, &checked()).unwrap().run_tensors(std::slice::from_ref(&xs), &mut []).unwrap_err();
    assert!(
        err.contains("kernel 1 (reduce) accessed input 0 `x` at element offset 12, outside its length of 10"),
        "{err}"
    );

    shrink_next_extent(Base::Data(0), 1);
    let err = jit::compile(&g, &checked()).unwrap().run_tensors(&[xs], &mut []).unwrap_err();
    assert!(err.contains("(reduce) accessed literal data 0 at element offset 2, outside its length of 2"), "{err}");
}

/// The digits CNN's train step (conv, pool, GEMMs, log-softmax, one-hot, reductions, SGD
/// with momentum) in `dtype`, with inputs at batch 5.
fn cnn_step(dtype: DType) -> (Graph, Vec<Tensor>, Vec<Tensor>) {
    let src = std::fs::read_to_string("examples/digits_cnn.net").unwrap();
    let checked = netc::frontend::check::check_source(&src).unwrap();
    let mut g = netc::training::optim::build(&checked.trains[0]).unwrap().graph;
    g.dtype = dtype;
    netc::ir::opt::optimize(&mut g, None).unwrap();
    let mut rng = Rng::new(3);
    let inputs = g
        .inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> = i.shape.iter().map(|d| d.known().unwrap_or(5)).collect();
            let n = shape.iter().product();
            let data = match i.kind {
                InputKind::Label => (0..n).map(|_| rng.below(10) as f64).collect(),
                _ if shape.is_empty() => vec![0.1],
                _ => (0..n).map(|_| rng.uniform_in(-1.0, 1.0)).collect(),
            };
            Tensor::new(shape, data)
        })
        .collect();
    let params = netc::runtime::params::init_params(&g, 1);
    (g, inputs, params)
}

#[test]
fn every_buffer_of_a_cnn_train_step_is_checked() {
    for dtype in [DType::F32, DType::F64] {
        let (g, inputs, params) = cnn_step(dtype);
        let run = |opts: &CompileOptions| {
            let mut ps = params.clone();
            let out = jit::compile(&g, opts).unwrap().run_tensors(&inputs, &mut ps);
            out.map(|o| (o, ps))
        };
        // Checked and unchecked compute the same bits.
        assert_eq!(run(&checked()).unwrap(), run(&CompileOptions::default()).unwrap(), "{dtype}");

        // Every buffer the kernels touch, declared one element (per batch row) short, is
        // overrun — and the report names that buffer; nothing crashes.
        let prog = netc::codegen::fuse::schedule(&g, netc::codegen::ConvAlgorithm::default()).unwrap();
        let plan = netc::codegen::memplan::plan(&prog.kernels, &prog.temps);
        let mut buffers: Vec<(Base, String)> = vec![];
        for (i, x) in g.inputs.iter().enumerate() {
            buffers.push((Base::Input(i), format!("input {i} `{}`", x.name)));
        }
        for (i, p) in g.params.iter().enumerate() {
            buffers.push((Base::Param(i), format!("parameter {i} `{}`", p.name)));
        }
        for (i, (name, _)) in g.outputs.iter().enumerate() {
            buffers.push((Base::Output(i), format!("output {i} `{name}`")));
        }
        for t in (0..prog.temps.len()).filter(|&t| plan.offsets[t].is_some()) {
            buffers.push((Base::Temp(t), format!("workspace temporary {t}")));
        }
        let mut kinds = BTreeSet::new();
        for (base, name) in &buffers {
            shrink_next_extent(*base, 1);
            let err = run(&checked()).expect_err(&format!("{dtype}: {name} declared short, yet no check fired"));
            let (head, tail) = err.split_once(" accessed ").unwrap_or_else(|| panic!("{err}"));
            assert!(head.starts_with("bounds check failed: kernel "), "{err}");
            assert!(tail.starts_with(&format!("{name} at element offset ")), "{name}: {err}");
            assert!(tail.contains("outside its length of "), "{err}");
            kinds.insert(head.split(['(', ')']).nth(1).unwrap().to_string());
        }
        // (A reduction's reads come after its operand's writer, which fires first; its
        // checks show in `reads_outside_inputs_and_literals_are_refused`.)
        for kind in ["conv", "gemm", "map", "fill", "pool", "log_softmax", "one_hot"] {
            assert!(kinds.contains(kind), "{dtype}: no check fired in a {kind} kernel: {kinds:?}");
        }
    }
}

// ---- the command line --------------------------------------------------------------------------

#[test]
fn netc_run_checked_reports_a_refused_access_and_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["run", "examples/digits_cnn.net", "--checked", "--steps", "2"])
        .env("NETC_CHECKED_SHRINK", "param:0:1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let diagnostic = err.lines().find(|l| l.starts_with("error")).unwrap_or_else(|| panic!("no diagnostic: {err}"));
    assert!(
        diagnostic.starts_with(
            "error[E-bounds]: bounds check failed: kernel 0 (conv) accessed parameter 0 `conv2d_1.W` at element \
             offset 71, outside its length of 71 elements; the access was not performed"
        ),
        "{err}"
    );
    assert!(err.contains("netc bug"), "{err}");

    // Without --checked the variable does nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["run", "examples/digits_cnn.net", "--steps", "2", "--quiet"])
        .env("NETC_CHECKED_SHRINK", "param:0:1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn netc_run_help_shows_checked() {
    let (code, out, _) = netc(&["run", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--checked"), "{out}");
}
