//! Training and inference modes, state and randomness (issue 16): batch norm trains as
//! PyTorch's does, inference is per sample, dropout masks are reproducible and have the
//! stated keep rate, and a resumed run draws what the uninterrupted one would.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{netc, temp_dir};
use netc::frontend::checked::Checked;
use netc::ir::graph::{DType, Dim, Graph, InputKind, Op};
use netc::ir::ops::random;
use netc::ir::tensor::Tensor;
use netc::runtime::weights::{self, Weight};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn checked(path: &Path) -> Checked {
    let src = std::fs::read_to_string(path).unwrap();
    netc::frontend::check::check_source(&src).unwrap_or_else(|d| panic!("{}: {d:?}", path.display()))
}

/// `netc run FILE ARGS --quiet`, which must succeed.
fn run(file: &Path, args: &[&str]) {
    let mut all = vec!["run", file.to_str().unwrap(), "--quiet"];
    all.extend(args);
    let (code, _, err) = netc(&all);
    assert_eq!(code, 0, "netc {all:?}: {err}");
}

/// Each parameter of `g`, from `weights` by name.
fn params_of(g: &Graph, weights: &[Weight]) -> Vec<Tensor> {
    g.params
        .iter()
        .map(|p| {
            let w = weights.iter().find(|w| w.name == p.name).unwrap_or_else(|| panic!("no tensor {}", p.name));
            Tensor::new(w.shape.clone(), w.data.iter().map(|&v| v as f64).collect())
        })
        .collect()
}

/// |got - want| <= rel·max(|want|, 1% of the tensor's largest |want|): relative, except for
/// elements that cancelled to near zero, which are held to the tensor's scale.
fn assert_matches(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs().max(0.01 * scale);
        assert!((g - w).abs() <= tol, "{what}[{i}]: netc {g}, reference {w} (tolerance {tol:e})");
    }
}

// ---- batch norm against PyTorch ------------------------------------------------------------

#[test]
fn three_batch_norm_steps_match_pytorch() {
    // tests/data/batchnorm/make_reference.py: BatchNorm2d and BatchNorm1d in float32, three
    // momentum-SGD steps from init.safetensors; the parameters, the running statistics and
    // the eval-mode scores after them.
    let data = root().join("tests/data/batchnorm");
    let model = data.join("model.net");
    let reference = weights::load(&data.join("reference.safetensors")).unwrap();
    let dir = temp_dir("modes", "pytorch");
    let c = checked(&model);
    let x = netc::runtime::data::load_npy(
        &data.join("x.npy"),
        &data.join("y.npy"),
        &netc::runtime::data::LoadOptions::default(),
    )
    .unwrap();
    let x = Tensor::new(vec![24, 2, 6, 6], x.features().iter().map(|&v| v as f64).collect());
    for engine in ["jit", "interp"] {
        let out = dir.join(&format!("{engine}.safetensors"));
        let init = data.join("init.safetensors");
        run(&model, &["--load", init.to_str().unwrap(), "--save", out.to_str().unwrap(), "--engine", engine]);
        let trained = weights::load(&out).unwrap();
        let mut compared = 0;
        for want in reference.iter().filter(|w| w.name != "scores") {
            let got = trained.iter().find(|w| w.name == want.name).unwrap();
            assert_matches(&format!("{engine}: {}", want.name), &got.data, &want.data, 1e-4);
            compared += 1;
        }
        assert_eq!(compared, 14, "every weight, bias and running statistic");
        // Inference with the running statistics, as torch's eval mode.
        let g = &c.models[0].graph;
        let mut params = params_of(g, &trained);
        let scores = netc::drivers::jit::run_graph(g, std::slice::from_ref(&x), &mut params).unwrap();
        let got: Vec<f32> = scores[0].data.iter().map(|&v| v as f32).collect();
        let want = &reference.iter().find(|w| w.name == "scores").unwrap().data;
        assert_matches(&format!("{engine}: eval-mode scores"), &got, want, 1e-4);
    }
}

// ---- inference is per sample -------------------------------------------------------------------

/// The test set of the digits examples as one [N, ...] tensor of the model's input shape.
fn digits_test_set(c: &Checked, g: &Graph) -> Tensor {
    let data = netc::training::load_data(&c.trains[0], &c.data[0], &root().join("examples"), &mut |_| {}).unwrap();
    let test = data.test.unwrap();
    let mut shape = vec![test.len()];
    shape.extend(g.inputs[0].shape[1..].iter().map(|d| d.known().unwrap()));
    Tensor::new(shape, test.features().iter().map(|&v| v as f64).collect())
}

/// Row `i` of a [N, ...] tensor as a batch of one.
fn row(t: &Tensor, i: usize) -> Tensor {
    let n: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.clone();
    shape[0] = 1;
    Tensor::new(shape, t.data[i * n..(i + 1) * n].to_vec())
}

/// One sample alone scores what it scores in the whole set: `per_sample[i]` is sample i's.
fn assert_per_sample(what: &str, whole: &Tensor, per_sample: &[Vec<f64>]) {
    let classes = whole.shape[1];
    for (i, alone) in per_sample.iter().enumerate() {
        let together = &whole.data[i * classes..(i + 1) * classes];
        let scale = together.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (a, b) in alone.iter().zip(together) {
            assert!((a - b).abs() <= 1e-5 * scale, "{what}: sample {i} alone {alone:?}, in the batch {together:?}");
        }
    }
    // Not the failure this guards against (every input scored alike, as batch statistics of
    // one sample give): the scores differ from sample to sample, and mostly pick the label.
    assert!(per_sample.windows(2).any(|w| w[0] != w[1]), "{what}: every sample scores the same");
}

#[test]
fn inference_on_one_sample_equals_inference_on_the_whole_test_set() {
    let dir = temp_dir("modes", "per_sample");
    let file = root().join("examples/digits_bn_cnn.net");
    let weights_path = dir.join("trained.safetensors");
    run(&file, &["--steps", "60", "--save", weights_path.to_str().unwrap()]);
    let c = checked(&file);
    let g = &c.models[0].graph;
    assert!(g.params.iter().any(|p| p.name.ends_with(".mean")), "the model has running statistics");
    let trained = weights::load(&weights_path).unwrap();
    let params = params_of(g, &trained);
    let x = digits_test_set(&c, g);
    let n = x.shape[0];

    // JIT
    let mut jit = netc::drivers::jit::compile(g, &Default::default()).unwrap();
    let whole = jit.run_tensors(std::slice::from_ref(&x), &mut params.clone()).unwrap().remove(0);
    let alone: Vec<Vec<f64>> =
        (0..n).map(|i| jit.run_tensors(&[row(&x, i)], &mut params.clone()).unwrap().remove(0).data).collect();
    assert_per_sample("jit", &whole, &alone);

    // Interpreter
    let whole_interp = netc::ir::interp::outputs(g, std::slice::from_ref(&x), &params).unwrap().remove(0);
    let alone_interp: Vec<Vec<f64>> =
        (0..n).map(|i| netc::ir::interp::outputs(g, &[row(&x, i)], &params).unwrap().remove(0).data).collect();
    assert_per_sample("interpreter", &whole_interp, &alone_interp);
    for (a, b) in whole.data.iter().zip(&whole_interp.data) {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "jit {a} vs interpreter {b}");
    }

    // Object file, with the trained weights embedded: tests/c/per_sample.c.
    let object = dir.join("digits_bn_cnn.o");
    let (code, _, err) = netc(&[
        "build",
        file.to_str().unwrap(),
        "--weights",
        weights_path.to_str().unwrap(),
        "-o",
        object.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let exe = dir.join("per_sample");
    let cc = Command::new("cc")
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&dir.0)
        .args([
            "-DPREFIX=digits_bn_cnn",
            "-DUPPER=DIGITS_BN_CNN",
            "-DHEADER=\"digits_bn_cnn.h\"",
            root().join("tests/c/per_sample.c").to_str().unwrap(),
            object.to_str().unwrap(),
            "-o",
            exe.to_str().unwrap(),
            "-lm",
        ])
        .output()
        .expect("a C compiler (`cc`) is installed");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let mut input = (n as i64).to_le_bytes().to_vec();
    input.extend(x.data.iter().flat_map(|&v| (v as f32).to_le_bytes()));
    std::fs::write(dir.join("x.bin"), input).unwrap();
    let out = Command::new(&exe).arg(dir.join("x.bin")).arg(dir.join("scores.bin")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(dir.join("scores.bin")).unwrap();
    let values: Vec<f64> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect();
    let classes = whole.shape[1];
    assert_eq!(values.len(), 2 * n * classes, "the harness writes the batch's scores, then each sample's");
    let whole_object = Tensor::new(vec![n, classes], values[..n * classes].to_vec());
    let alone_object: Vec<Vec<f64>> = values[n * classes..].chunks(classes).map(|c| c.to_vec()).collect();
    assert_per_sample("object", &whole_object, &alone_object);
    for (a, b) in whole.data.iter().zip(&whole_object.data) {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "jit {a} vs object {b}");
    }
}

// ---- dropout and the random streams ----------------------------------------------------------

/// The training-mode graph of `model m(x: [B, 1000]) -> [B, 1000] { dropout(x, p) }`.
fn dropout_graph(p: f64) -> Graph {
    let src = format!(
        "model m(x: [B, 1000]) -> y: [B, 1000] {{ dropout(x, {p}) }}\ntrain m {{ loss: mean(y) + 0 * sum(labels) }}\n"
    );
    let c = netc::frontend::check::check_source(&src).unwrap();
    let inference = &c.models[0].graph;
    assert!(
        inference.nodes.iter().all(|n| !matches!(n.op, Op::RandomUniform { .. })),
        "inference draws no random numbers"
    );
    assert!(inference.inputs.iter().all(|i| i.kind != InputKind::RandomKey));
    let mut g = c.trains[0].graph.clone();
    g.outputs.retain(|(name, _)| name == "y");
    g
}

/// Dropout of ones: [1000, 1000] values, each 0 or 1/(1 - p).
fn drop_ones(g: &Graph, seed: u64, step: u64, interpreted: bool) -> Vec<f64> {
    let ones = Tensor::new(vec![1000, 1000], vec![1.0; 1_000_000]);
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|i| match i.kind {
            InputKind::Data => ones.clone(),
            InputKind::Label => Tensor::zeros(vec![1000]),
            InputKind::RandomKey => random::key(seed, step),
            other => panic!("unexpected input {other:?}"),
        })
        .collect();
    let out = if interpreted {
        netc::ir::interp::outputs(g, &inputs, &[]).unwrap()
    } else {
        netc::drivers::jit::run_graph(g, &inputs, &mut []).unwrap()
    };
    out.into_iter().next().unwrap().data
}

#[test]
fn dropout_keeps_one_minus_p_of_a_million_values() {
    for p in [0.1, 0.5, 0.8] {
        let g = dropout_graph(p);
        let y = drop_ones(&g, 11, 4, false);
        let scale = (1.0 / (1.0 - p)) as f32 as f64;
        assert!(y.iter().all(|&v| v == 0.0 || v == scale), "p = {p}: kept values are scaled by 1/(1 - p)");
        let keep = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
        assert!((keep - (1.0 - p)).abs() <= 0.005 * (1.0 - p), "p = {p}: kept {keep}, expected {}", 1.0 - p);
        // The mean is preserved in expectation (inverted dropout).
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "p = {p}: mean {mean}");
    }
}

#[test]
fn dropout_masks_are_reproducible_and_new_each_step() {
    let g = dropout_graph(0.5);
    let mask = drop_ones(&g, 3, 7, false);
    assert_eq!(mask, drop_ones(&g, 3, 7, false), "same seed and step, same mask");
    assert_eq!(mask, drop_ones(&g, 3, 7, true), "the interpreter draws the same bits");
    for (seed, step) in [(3, 8), (4, 7)] {
        let other = drop_ones(&g, seed, step, false);
        let same = mask.iter().zip(&other).filter(|(a, b)| a == b).count() as f64 / mask.len() as f64;
        assert!((same - 0.5).abs() < 0.01, "seed {seed} step {step}: {same} of the mask repeats");
    }
}

#[test]
fn random_streams_are_the_same_bits_compiled_and_interpreted() {
    // Sizes around the vector width (the i32x4 loop and its tail), in f32 and f64.
    for dtype in [DType::F32, DType::F64] {
        for n in [1, 3, 4, 7, 33, 1000] {
            let mut g = Graph::new(dtype);
            let key = g.add_input("rng", vec![Dim::Known(random::KEY_LEN)], InputKind::RandomKey);
            let a = g.add(Op::RandomUniform { stream: 0, shape: vec![Dim::Known(n)] }, &[key]).unwrap();
            let b = g.add(Op::RandomUniform { stream: 5, shape: vec![Dim::Known(2), Dim::Known(n)] }, &[key]).unwrap();
            g.outputs = vec![("a".into(), a), ("b".into(), b)];
            let inputs = [random::key(u64::MAX - 2, 1 << 40)];
            let jit = netc::drivers::jit::run_graph(&g, &inputs, &mut []).unwrap();
            let interp = netc::ir::interp::outputs(&g, &inputs, &[]).unwrap();
            assert_eq!(jit, interp, "{dtype} n = {n}");
            assert!(jit[1].data.iter().all(|u| (0.0..1.0).contains(u)));
        }
    }
}

#[test]
fn runs_with_dropout_are_the_same_on_any_thread_count_and_resume_the_same_stream() {
    let dir = temp_dir("modes", "threads_resume");
    let file = root().join("examples/digits_bn_cnn.net");
    let save = |name: &str, threads: &str, args: &[&str]| -> Vec<Weight> {
        let out = dir.join(name);
        let mut all = vec!["run", file.to_str().unwrap(), "--quiet", "--steps", "12", "--save", out.to_str().unwrap()];
        all.extend(args);
        let status = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(&all)
            .env("MATMUL_NUM_THREADS", threads)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        weights::load(&out).unwrap()
    };
    let one = save("one.safetensors", "1", &[]);
    assert_eq!(one, save("two.safetensors", "2", &[]), "1 and 2 threads train the same bits");
    assert_ne!(one, save("seeded.safetensors", "1", &["--seed", "5"]), "another seed, another run");
    // Stop after 5 of the 12 steps, resume: the same weights (and running statistics) as the
    // uninterrupted run, so the resumed steps drew the masks of steps 5..12.
    let half = dir.join("half.safetensors");
    save("half.safetensors", "1", &["--stop-after", "5"]);
    let resumed = save("resumed.safetensors", "1", &["--resume", half.to_str().unwrap()]);
    assert_eq!(one, resumed, "a resumed run continues the random streams");
}

// ---- gradients in training mode ------------------------------------------------------------------

#[test]
fn batch_norm_and_dropout_gradients_match_central_differences() {
    // The batch's mean and variance depend on every sample, and their gradients are the real
    // ones; the dropout mask is fixed by the random key (step 0 of the file's seed).
    let dir = temp_dir("modes", "gradcheck");
    let file = dir.join("bn.net");
    std::fs::write(
        &file,
        "model m(x: [B, 2, 4, 4]) -> scores: [B, 3] {
  let c = conv2d(x, filters: 3, kernel: 3, pad: 1) |> batchnorm |> relu
  let h = flatten(c) |> dense(6) |> batchnorm |> relu |> dropout(0.5)
  let l = layernorm(h)
  dense(l, 3)
}
train m { loss: cross_entropy(scores, labels) }
",
    )
    .unwrap();
    let (code, out, err) = netc(&["gradcheck", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for name in ["batchnorm_1.gamma", "batchnorm_2.beta", "l.gamma", "dense_1.W", "x"] {
        assert!(out.contains(name), "gradcheck checked {name}: {out}");
    }
    assert!(!out.contains(".mean") && !out.contains(".var"), "state is not differentiated: {out}");
}

#[test]
fn an_eval_block_can_run_in_training_mode() {
    // `training: true`: batch statistics (not the running ones) and dropout; the gradient of
    // a batch-normalised value with respect to its input is zero where the batch mean and
    // variance absorb the change: Σ_i d(sum of the normalised batch)/dx_i = 0.
    let src = "layer bn(x) { batchnorm(x) }
eval train_mode {
  training: true
  let x = [[1.0, -2.0], [0.5, 3.0], [2.0, 0.0]]
  let s = sum(bn(x))
  grad s wrt x
}
eval inference_mode {
  let x = [[1.0, -2.0], [0.5, 3.0], [2.0, 0.0]]
  let s = sum(bn(x))
  grad s wrt x
}";
    let c = netc::frontend::check::check_source(src).unwrap();
    let train = netc::commands::eval::evaluate_with(&c.evals[0], 0, netc::commands::eval::Exec::Jit).unwrap();
    let infer = netc::commands::eval::evaluate_with(&c.evals[1], 0, netc::commands::eval::Exec::Jit).unwrap();
    let (_, value, grads) = &train.grads[0];
    assert!(value.data[0].abs() < 1e-12, "the normalised batch sums to beta = 0: {value:?}");
    assert!(grads[0].1.data.iter().all(|g| g.abs() < 1e-9), "{:?}", grads[0].1);
    // Inference normalises with the initial running statistics (mean 0, var 1).
    let (_, value, grads) = &infer.grads[0];
    let expected = (1.0 - 2.0 + 0.5 + 3.0 + 2.0) / (1.0 + 1e-5f64).sqrt();
    assert!((value.data[0] - expected).abs() < 1e-9, "{value:?}");
    assert!(grads[0].1.data.iter().all(|g| (g - 1.0 / (1.0 + 1e-5f64).sqrt()).abs() < 1e-12));
}

// ---- state with the training controls, Adam and predict ------------------------------------------

/// A batch-norm and dropout MLP trained by AdamW with clipping, with a state tensor that no
/// `<-` moves, and a second block that fine-tunes with the batch norm frozen.
const CONTROLS: &str = "layer scaled(x) {
  let features = x.shape[-1]
  state s: [features] = constant(1)
  x * s
}
model m(x: [B, 2]) -> scores: [B, 3] {
  let h = dense(x, 16)
  let bn = batchnorm(h)
  let d = bn |> relu |> dropout(0.2)
  let k = scaled(d)
  dense(k, 3)
}
data points { source: spiral(points: 100, classes: 3, seed: 0) }
train fit {
  model: m
  loss: cross_entropy(scores, labels)
  optimizer: adamw(lr: 0.01, weight_decay: 0.5)
  clip_norm: 0.5
  steps: 12
  batch: 50
  seed: 3
}
train head {
  model: m
  loss: cross_entropy(scores, labels)
  optimizer: adam(lr: 0.01)
  freeze: [bn]
  steps: 5
  batch: 50
}
";

fn tensor<'a>(ws: &'a [Weight], name: &str) -> &'a Weight {
    ws.iter().find(|w| w.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
}

#[test]
fn state_is_never_trained_and_resumes_with_adam_and_the_random_stream() {
    let dir = temp_dir("modes", "controls");
    let file = dir.join("controls.net");
    std::fs::write(&file, CONTROLS).unwrap();
    let f = file.to_str().unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    run(&file, &["--train", "fit", "--save", &path("full.safetensors")]);
    let full = weights::load(&dir.join("full.safetensors")).unwrap();
    // Neither AdamW's decay nor clipping nor the optimizer touches state: `k.s` has no `<-`.
    assert_eq!(tensor(&full, "k.s").data, vec![1.0; 16], "a state tensor without an update keeps its value");
    assert!(
        full.iter().all(|w| !w.name.starts_with("k.s.") && !w.name.starts_with("bn.mean.")),
        "no optimizer state for state"
    );
    assert!(full.iter().any(|w| w.name == "adam.step"), "the checkpoint carries Adam's step count");
    assert_ne!(tensor(&full, "bn.mean").data, vec![0.0; 16], "the running mean moved");

    // Stopped after 5 steps and resumed: Adam's step count, its moments, the running
    // statistics and the dropout masks of steps 5..12 continue the uninterrupted run.
    run(&file, &["--train", "fit", "--stop-after", "5", "--save", &path("half.safetensors")]);
    run(&file, &["--train", "fit", "--resume", &path("half.safetensors"), "--save", &path("resumed.safetensors")]);
    assert_eq!(full, weights::load(&dir.join("resumed.safetensors")).unwrap(), "resume is bit for bit");
    // The checkpoint's seed drives the data order and the masks: another --seed is refused.
    let (code, _, err) = netc(&["run", f, "--train", "fit", "--resume", &path("half.safetensors"), "--seed", "4"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("was written by a run with seed 3; resuming it with --seed 4"), "{err}");

    // --init-from takes the state by name like any parameter.
    let (code, _, err) = netc(&["run", f, "--train", "head", "--init-from", &path("full.safetensors"), "--steps", "1"]);
    assert_eq!(code, 0, "{err}");
    let loaded = err.lines().find(|l| l.trim_start().starts_with("loaded")).unwrap_or_else(|| panic!("{err}"));
    for name in ["bn.mean", "bn.var", "k.s", "bn.gamma"] {
        assert!(loaded.contains(name), "--init-from loads {name}: {err}");
    }

    // `freeze: [bn]` keeps gamma, beta and the running statistics bit for bit; the rest trains.
    run(&file, &["--train", "head", "--load", &path("full.safetensors"), "--save", &path("head.safetensors")]);
    let head = weights::load(&dir.join("head.safetensors")).unwrap();
    for name in ["bn.gamma", "bn.beta", "bn.mean", "bn.var"] {
        assert_eq!(tensor(&head, name).data, tensor(&full, name).data, "{name} is frozen");
    }
    assert_ne!(tensor(&head, "h.W").data, tensor(&full, "h.W").data, "h.W trains");
}

#[test]
fn predict_runs_inference_mode_with_the_running_statistics() {
    let dir = temp_dir("modes", "predict");
    let file = root().join("examples/digits_bn_cnn.net");
    let w = dir.join("trained.safetensors");
    run(&file, &["--steps", "40", "--save", w.to_str().unwrap()]);
    let c = checked(&file);
    let g = &c.models[0].graph;
    let x = digits_test_set(&c, g);
    let n = x.shape[0];
    let values: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
    std::fs::write(dir.join("x.npy"), netc::runtime::data::npy_bytes(&x.shape, &values)).unwrap();
    // The model graph on the JIT, in one batch: what predict must give in batches of any size.
    let mut params = params_of(g, &weights::load(&w).unwrap());
    let want = netc::drivers::jit::run_graph(g, std::slice::from_ref(&x), &mut params).unwrap().remove(0);
    for batch in ["1", "7", "100000"] {
        let out = dir.join(&format!("scores_{batch}.npy"));
        let (code, _, err) = netc(&[
            "predict",
            file.to_str().unwrap(),
            "--load",
            w.to_str().unwrap(),
            "--input",
            dir.join("x.npy").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--batch",
            batch,
            "--quiet",
        ]);
        assert_eq!(code, 0, "{err}");
        let got = netc::runtime::data::read_npy(&out).unwrap();
        assert_eq!(got.shape, vec![n, 10]);
        let per_sample: Vec<Vec<f64>> = got.values.chunks(10).map(|r| r.iter().map(|&v| v as f64).collect()).collect();
        assert_per_sample(&format!("predict --batch {batch}"), &want, &per_sample);
    }
}

#[test]
fn dropout_is_the_identity_in_inference() {
    let src = "model m(x: [B, 5]) -> y: [B, 5] { dropout(x, 0.9) }";
    let c = netc::frontend::check::check_source(src).unwrap();
    let g = &c.models[0].graph;
    let x = Tensor::new(vec![2, 5], (0..10).map(|i| i as f64 - 4.5).collect());
    let y = netc::drivers::jit::run_graph(g, std::slice::from_ref(&x), &mut []).unwrap().remove(0);
    assert_eq!(y.data, x.data);
    assert_eq!(netc::ir::interp::outputs(g, std::slice::from_ref(&x), &[]).unwrap().remove(0).data, x.data);
}
