//! `netc build`: objects that a C compiler links with nothing but libm, checked against the JIT.
//!
//! `tests/c/harness.c` drives an object through its whole API (init, forward, backward, two
//! train steps); the same inputs and weights go through the JIT here, and the two must agree.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{netc, temp_dir, TempDir};
use netc::frontend::check;
use netc::frontend::checked::Checked;
use netc::ir::graph::{Graph, InputKind, NodeId, Op};
use netc::ir::tensor::Tensor;
use netc::runtime::rng::Rng;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `netc build SOURCE -o DIR/NAME.o ARGS`: the object's path (the header is next to it).
fn build(source: &Path, dir: &TempDir, name: &str, args: &[&str]) -> PathBuf {
    let object = dir.join(&format!("{name}.o"));
    let mut all = vec!["build", source.to_str().unwrap(), "-o", object.to_str().unwrap()];
    all.extend(args);
    let (code, _, err) = netc(&all);
    assert_eq!(code, 0, "netc build failed: {err}");
    assert!(object.exists() && object.with_extension("h").exists(), "{err}");
    object
}

/// `cc -O1 -Wall -Werror ... -lm`, panicking with the compiler's output on failure.
fn cc(dir: &TempDir, out: &str, args: &[&str]) -> PathBuf {
    let exe = dir.join(out);
    let status = Command::new("cc")
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(dir.as_os_str())
        .args(args)
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output()
        .expect("a C compiler (`cc`) is installed");
    assert!(status.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&status.stderr));
    exe
}

fn checked(source: &str) -> Checked {
    check::check_source(source).unwrap_or_else(|d| panic!("{d:?}"))
}

fn f32_tensor(t: Tensor) -> Tensor {
    Tensor::new(t.shape.clone(), t.data.iter().map(|&v| v as f32 as f64).collect())
}

/// Compares element-wise with a tolerance for the GEMMs' different summation orders.
fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(err <= 2e-4 * scale + 1e-6, "{what}[{i}]: object gives {g}, JIT {w} (scale {scale})");
    }
}

/// Reads consecutive slices of f32 out of the harness's output.
struct Reader(Vec<f32>, usize);

impl Reader {
    fn take(&mut self, n: usize) -> &[f32] {
        assert!(self.1 + n <= self.0.len(), "the harness wrote {} values, wanted more", self.0.len());
        self.1 += n;
        &self.0[self.1 - n..self.1]
    }
}

/// Builds `source`, runs the C harness on random inputs and checks every result against the
/// JIT; `lr` is the learning rate passed to the train steps.
fn object_equals_jit(source_path: &Path, source: &str, name: &str, batch: usize, lr: f32) {
    object_equals_jit_with(source_path, source, name, batch, lr, &[]);
}

/// `object_equals_jit` with extra `netc build` arguments.
fn object_equals_jit_with(source_path: &Path, source: &str, name: &str, batch: usize, lr: f32, args: &[&str]) {
    let dir = temp_dir("build", name);
    let object = build(source_path, &dir, name, args);
    let c = checked(source);
    let model = &c.models.iter().find(|m| m.name == name).unwrap().graph;
    let train = c.trains.iter().find(|t| t.model == name).unwrap();
    // A model that draws random numbers (dropout) takes the run's seed and the step.
    let random = train.graph.inputs.iter().any(|i| i.kind == InputKind::RandomKey);
    let seed = format!("-DSEED={}", train.seed);
    let mut flags = vec![
        format!("-DPREFIX={name}"),
        format!("-DUPPER={}", name.to_uppercase()),
        format!("-DHEADER=\"{name}.h\""),
        "-DT=float".to_string(),
    ];
    if random {
        flags.push(seed);
    }
    flags.push(root().join("tests/c/harness.c").to_str().unwrap().to_string());
    flags.push(object.to_str().unwrap().to_string());
    let exe = cc(&dir, "harness", &flags.iter().map(String::as_str).collect::<Vec<_>>());
    // The inputs of a training-mode graph for step `step`, by kind.
    let feed = |g: &Graph, x: &Tensor, labels: &Tensor, step: u64| -> Vec<Tensor> {
        g.inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::Data => x.clone(),
                InputKind::Label => labels.clone(),
                InputKind::RandomKey => netc::ir::ops::random::key(train.seed, step),
                InputKind::Variable | InputKind::Gradient => Tensor::new(vec![], vec![lr as f64]),
            })
            .collect()
    };
    let x_shape: Vec<usize> = model.inputs[0].shape.iter().map(|d| d.known().unwrap_or(batch)).collect();
    let classes = model.shape(model.outputs[0].1).last().unwrap().known().unwrap();
    let mut rng = Rng::new(7);
    // An integer input (token ids) gets ids inside the axis it indexes.
    let ids = model.index_use(0).bound().filter(|_| model.inputs[0].integer);
    let x_data = (0..x_shape.iter().product())
        .map(|_| match ids {
            Some(bound) => rng.below(bound as u64) as f64,
            None => rng.normal() as f32 as f64,
        })
        .collect();
    let x = Tensor::new(x_shape.clone(), x_data);
    let labels = Tensor::new(vec![batch], (0..batch).map(|_| (rng.below(classes as u64)) as f64).collect());

    let mut input = vec![];
    input.extend((batch as i64).to_le_bytes());
    input.extend(lr.to_le_bytes());
    input.extend(x.data.iter().flat_map(|&v| (v as f32).to_le_bytes()));
    input.extend(labels.data.iter().flat_map(|&v| (v as f32).to_le_bytes()));
    std::fs::write(dir.join("input.bin"), input).unwrap();
    let run = Command::new(&exe).arg(dir.join("input.bin")).arg(dir.join("output.bin")).output().unwrap();
    assert!(run.status.success(), "harness failed: {}", String::from_utf8_lossy(&run.stderr));
    let bytes = std::fs::read(dir.join("output.bin")).unwrap();
    let mut out = Reader(bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(), 0);

    // The embedded initial parameters are the file's seeded ones, exactly.
    let init: Vec<Tensor> = netc::runtime::params::init_params(model, train.seed).into_iter().map(f32_tensor).collect();
    for (p, t) in model.params.iter().zip(&init) {
        let got = out.take(t.numel());
        assert!(got.iter().zip(&t.data).all(|(&g, &w)| g as f64 == w), "initial {} differs", p.name);
    }

    // Forward.
    let mut params = init.clone();
    let scores = netc::drivers::jit::run_graph(model, std::slice::from_ref(&x), &mut params).unwrap();
    assert_close("scores", out.take(scores[0].numel()), &scores[0].data);

    // Backward: the loss and dloss/dparam, built independently of netc build.
    let mut g: Graph = train.graph.clone();
    let loss = g.outputs.iter().find(|(n, _)| n == "loss").unwrap().1;
    let wrt: Vec<NodeId> = (0..g.params.len())
        .map(|p| NodeId(g.nodes.iter().position(|n| n.op == Op::Param { index: p }).unwrap() as u32))
        .collect();
    let grads = netc::ir::autodiff::differentiate(&mut g, loss, &wrt).unwrap();
    g.outputs = std::iter::once(("loss".to_string(), loss)).chain(grads.iter().map(|&d| ("d".into(), d))).collect();
    let values = netc::drivers::jit::run_graph(&g, &feed(&g, &x, &labels, 0), &mut init.clone()).unwrap();
    assert_close("loss", out.take(1), &values[0].data);
    let grad_values: Vec<Vec<f32>> = values[1..].iter().map(|v| out.take(v.numel()).to_vec()).collect();
    for (p, (got, want)) in g.params.iter().zip(grad_values.iter().zip(&values[1..])) {
        assert_close(&format!("d{}", p.name), got, &want.data);
        // (State is not differentiated: the loss of a training-mode graph does not read it.)
        let trained = p.kind == netc::ir::graph::ParamKind::Trainable;
        assert!(!trained || want.data.iter().any(|&v| v != 0.0), "d{} is all zero: a weak test", p.name);
    }

    // Two train steps, optimizer state included.
    let step = netc::training::optim::build(train).unwrap();
    let mut sg = step.graph.clone();
    sg.outputs = vec![sg.outputs[step.loss_output].clone()];
    let mut state: Vec<Tensor> =
        netc::runtime::params::init_params(&sg, train.seed).into_iter().map(f32_tensor).collect();
    for s in 0..2 {
        let losses = netc::drivers::jit::run_graph(&sg, &feed(&sg, &x, &labels, s), &mut state).unwrap();
        assert_close(&format!("loss of step {s}"), out.take(1), &losses[0].data);
    }
    for (p, t) in model.params.iter().zip(&state) {
        assert_close(&format!("{} after two steps", p.name), out.take(t.numel()), &t.data);
    }
    assert_eq!(out.1, out.0.len(), "the harness wrote more than expected");
}

#[test]
fn a_dense_model_links_with_cc_and_matches_the_jit() {
    let path = root().join("examples/spiral.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "spiral_net", 7, 0.5);
}

#[test]
fn a_convolutional_model_with_momentum_matches_the_jit() {
    let path = root().join("examples/digits_cnn.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "digits_cnn", 5, 0.05);
}

#[test]
fn a_recurrent_model_compiles_its_loop_into_the_object() {
    let path = root().join("tests/data/loops/rnn_classifier.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "rnn_classifier", 6, 0.1);
}

#[test]
fn winograd_convolutions_in_the_object_match_the_jit() {
    // `--conv winograd`: both layers (3×3 from 3 channels, 5×5 from 5, odd sizes, channel
    // counts off the vector width) by the object's generated Winograd loops and its own GEMM;
    // the JIT (`ConvAlgorithm::Auto`) convolves these few channels directly: forward, every
    // gradient and two train steps agree.
    let source = "model wino(x: [B, 3, 9, 7]) -> scores: [B, 4] {
  x |> conv2d(filters: 5, kernel: 3, pad: 1) |> relu
    |> conv2d(filters: 6, kernel: 5, pad: 2) |> relu
    |> flatten |> dense(4)
}
data points { source: synthetic(samples: 16, classes: 4, seed: 0) }
train wino {
  loss: cross_entropy(scores, labels)
  optimizer: sgd(lr: 0.05)
  steps: 2
  batch: 5
  seed: 0
}
";
    let dir = temp_dir("build", "wino_source");
    let path = dir.join("wino.net");
    std::fs::write(&path, source).unwrap();
    object_equals_jit_with(&path, source, "wino", 5, 0.05, &["--conv", "winograd"]);
}

#[test]
fn batch_norm_state_and_dropout_masks_match_the_jit() {
    // The object's train step updates the running statistics in `params` and draws the JIT's
    // dropout masks for the same seed and step; its forward reads the statistics.
    let path = root().join("examples/digits_bn_cnn.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "digits_bn_cnn", 6, 0.05);
}

#[test]
fn a_model_of_every_structural_op_matches_the_jit() {
    // Gather, strided and reversed slices, batched products, concat, pad, split, squeeze.
    let path = root().join("tests/data/structure/mixer.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "mixer", 5, 0.1);
}

#[test]
fn smooth_activations_and_adamw_match_the_jit() {
    // elu (expm1), softplus (log1p), leaky_relu; AdamW's step count and decoupled decay.
    let path = root().join("examples/digits_smooth.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "digits_smooth", 5, 0.003);
}

#[test]
fn erf_gelu_where_and_clip_match_the_jit() {
    // erf's inline rational approximations in the object, comparisons as masks, where's select.
    let path = root().join("tests/data/activations/gates.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "gates", 5, 0.1);
}

#[test]
fn a_resnet_with_floored_strided_convolutions_matches_the_jit() {
    // 3×3 stride-2 pad-1 and 1×1 stride-2 convolutions of an even 8×8 input (the object's
    // generated convolution loop and pooling with the last row and column unread), residual
    // additions, batch norm, global average pooling.
    let path = root().join("examples/resnet_digits.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "resnet_digits", 5, 0.01);
}

#[test]
fn grouped_transposed_and_one_dimensional_convolutions_match_the_jit() {
    let path = root().join("tests/data/activations/convs.net");
    object_equals_jit(&path, &std::fs::read_to_string(&path).unwrap(), "convs", 5, 0.05);
}

#[test]
fn adam_state_and_the_learning_rate_schedule_match_netc_run() {
    let dir = temp_dir("build", "adam");
    let source = std::fs::read_to_string(root().join("examples/spiral.net")).unwrap().replace(
        "optimizer: sgd(lr: 1.0)",
        "optimizer: adam(lr: 0.01)\n  schedule: cosine(min_lr: 0.001)\n  warmup: 1500",
    );
    let path = dir.join("spiral_adam.net");
    std::fs::write(&path, &source).unwrap();
    object_equals_jit(&path, &source, "spiral_net", 4, 0.01);

    // The header's inline schedule gives what `netc run` passes at every step.
    let object = build(&path, &dir, "spiral_net", &[]);
    std::fs::write(
        dir.join("lr.c"),
        "#include <stdio.h>\n#include \"spiral_net.h\"\n\
         int main(void) { for (int s = 0; s < 10000; s += 997) printf(\"%.17g\\n\", spiral_net_learning_rate(s, 10000)); return 0; }\n",
    )
    .unwrap();
    let exe = cc(&dir, "lr", &[dir.join("lr.c").to_str().unwrap(), object.to_str().unwrap()]);
    let printed = String::from_utf8(Command::new(exe).output().unwrap().stdout).unwrap();
    let c = checked(&source);
    let want: Vec<f64> =
        (0..10000).step_by(997).map(|s| netc::training::optim::learning_rate(&c.trains[0], s, 10000)).collect();
    let got: Vec<f64> = printed.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-12 * w.abs(), "learning rate {g} vs {w}");
    }
}

#[test]
fn two_models_link_into_one_program_under_their_prefixes() {
    let dir = temp_dir("build", "two");
    let a = build(&root().join("examples/spiral.net"), &dir, "spiral_net", &[]);
    let b = build(&root().join("examples/spiral.net"), &dir, "other", &["--prefix", "other"]);
    let c = build(&root().join("examples/digits_mlp.net"), &dir, "digits_mlp", &[]);
    std::fs::write(
        dir.join("two.c"),
        r#"#include <stdio.h>
#include <stdlib.h>
#include "spiral_net.h"
#include "other.h"
#include "digits_mlp.h"
int main(void) {
    float *p[SPIRAL_NET_NUM_PARAMS], *q[OTHER_NUM_PARAMS], *r[DIGITS_MLP_NUM_PARAMS];
    for (int i = 0; i < SPIRAL_NET_NUM_PARAMS; i++) p[i] = malloc(4 * spiral_net_param_sizes[i]);
    for (int i = 0; i < OTHER_NUM_PARAMS; i++) q[i] = malloc(4 * other_param_sizes[i]);
    for (int i = 0; i < DIGITS_MLP_NUM_PARAMS; i++) r[i] = malloc(4 * digits_mlp_param_sizes[i]);
    spiral_net_init_params(p); other_init_params(q); digits_mlp_init_params(r);
    float x[2 * SPIRAL_NET_X_ROW] = {0.5f, -0.25f, 1.0f, 0.75f}, s1[2 * 3], s2[2 * 3];
    float d[DIGITS_MLP_X_ROW] = {0}, s3[DIGITS_MLP_SCORES_ROW];
    void *w1 = malloc(spiral_net_forward_workspace_size(2)), *w2 = malloc(other_forward_workspace_size(2));
    void *w3 = malloc(digits_mlp_forward_workspace_size(1));
    spiral_net_forward(2, x, (const float *const *)p, s1, w1);
    other_forward(2, x, (const float *const *)q, s2, w2);
    digits_mlp_forward(1, d, (const float *const *)r, s3, w3);
    for (int i = 0; i < 6; i++) if (s1[i] != s2[i]) { printf("differ at %d\n", i); return 1; }
    printf("%g %g\n", s1[0], s3[0]);
    return 0;
}
"#,
    )
    .unwrap();
    let files = [dir.join("two.c"), a, b, c];
    let args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let exe = cc(&dir, "two", &args);
    let run = Command::new(exe).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stdout));
}

#[test]
fn trained_weights_are_embedded_and_the_object_alone_is_the_model() {
    let dir = temp_dir("build", "weights");
    let weights = dir.join("spiral.safetensors");
    let (code, _, err) =
        netc(&["run", "examples/spiral.net", "--steps", "300", "--quiet", "--save", weights.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let object =
        build(&root().join("examples/spiral.net"), &dir, "spiral_net", &["--weights", weights.to_str().unwrap()]);
    std::fs::write(
        dir.join("dump.c"),
        r#"#include <stdio.h>
#include <stdlib.h>
#include "spiral_net.h"
int main(void) {
    float *p[SPIRAL_NET_NUM_PARAMS];
    for (int i = 0; i < SPIRAL_NET_NUM_PARAMS; i++) p[i] = malloc(sizeof(float) * spiral_net_param_sizes[i]);
    spiral_net_init_params(p);
    for (int i = 0; i < SPIRAL_NET_NUM_PARAMS; i++)
        if (fwrite(p[i], sizeof(float), spiral_net_param_sizes[i], stdout) != (size_t)spiral_net_param_sizes[i]) return 1;
    return 0;
}
"#,
    )
    .unwrap();
    let exe = cc(&dir, "dump", &[dir.join("dump.c").to_str().unwrap(), object.to_str().unwrap()]);
    let bytes = Command::new(exe).output().unwrap().stdout;
    let got: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let saved = netc::runtime::weights::load(&weights).unwrap();
    let want: Vec<f32> = ["W1", "b1", "W2", "b2"]
        .iter()
        .flat_map(|n| saved.iter().find(|w| w.name == *n).unwrap().data.clone())
        .collect();
    assert_eq!(got, want, "the object's parameters are the trained weights, bit for bit");
    let c = checked(&std::fs::read_to_string(root().join("examples/spiral.net")).unwrap());
    let init = netc::runtime::params::init_params(&c.models[0].graph, 0);
    assert_ne!(got[..200].iter().map(|&v| v as f64).collect::<Vec<_>>(), init[0].data, "not the initial values");
}

#[test]
fn aarch64_objects_are_aarch64() {
    let dir = temp_dir("build", "aarch64");
    for example in ["examples/spiral.net", "examples/digits_cnn.net"] {
        let object = build(&root().join(example), &dir, "model", &["--target", "aarch64-unknown-linux-gnu"]);
        let out = Command::new("file").arg(&object).output().expect("`file` is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ELF 64-bit LSB relocatable, ARM aarch64"), "{text}");
    }
}

#[test]
fn the_object_needs_nothing_but_libc_and_libm() {
    let dir = temp_dir("build", "undefined");
    let object = build(&root().join("examples/digits_cnn.net"), &dir, "digits_cnn", &[]);
    let out = Command::new("nm").args(["--undefined-only", "--format=just-symbols"]).arg(&object).output().unwrap();
    let undefined: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(|s| s.to_string()).collect();
    let libm = [
        "expf", "logf", "tanhf", "powf", "expm1f", "log1pf", "erff", "exp", "log", "tanh", "pow", "expm1", "log1p",
        "erf",
    ];
    let allowed: Vec<&str> = ["memcpy", "memset", "fmaf", "fma"].into_iter().chain(libm).collect();
    for s in &undefined {
        assert!(allowed.contains(&s.as_str()), "undefined symbol {s} in the object: {undefined:?}");
    }
    let out = Command::new("nm")
        .args(["--defined-only", "--extern-only", "--format=just-symbols"])
        .arg(&object)
        .output()
        .unwrap();
    let exported = String::from_utf8_lossy(&out.stdout);
    assert!(exported.lines().all(|s| s.starts_with("digits_cnn_")), "every exported symbol has the prefix: {exported}");
}

#[test]
fn bad_build_requests_are_diagnostics() {
    let dir = temp_dir("build", "bad");
    let o = dir.join("x.o");
    let o = o.to_str().unwrap();
    let huge = dir.join("huge.net");
    std::fs::write(&huge, "model m(x: [B, 4]) -> y: [B, 200000] {\n  param W: [4, 200000]\n  param V: [200000, 200000]\n  (x @ W) @ V\n}\n").unwrap();
    let huge = huge.to_str().unwrap();
    // `-o` makes a missing folder, but not one under a file.
    std::fs::write(dir.join("file"), "").unwrap();
    let under_a_file = dir.join("file/sub/x.o").to_str().unwrap().to_string();
    let cases: [(&[&str], &str); 9] = [
        (&["build", "examples/spiral.net", "-o", o, "--target", "mips-unknown-linux-gnu"], "cannot compile for"),
        // Not triples at all: Cranelift's own lookup would panic on them.
        (&["build", "examples/spiral.net", "-o", o, "--target", "garbage"], "is not a target triple"),
        (&["build", "examples/spiral.net", "-o", o, "--target", ""], "is not a target triple"),
        (&["build", "examples/spiral.net", "-o", o, "--target", "x86_64-foo-bar"], "is not a target triple"),
        // Parameters of 149 GiB: refused before anything is allocated.
        (&["build", huge, "-o", o], "over the memory limit"),
        (&["build", "examples/spiral.net", "-o", o, "--prefix", "9lives"], "not a C identifier"),
        (&["build", "examples/spiral.net", "-o", o, "--model", "spiral"], "no model named `spiral`"),
        (&["build", "examples/spiral.net", "-o", o, "--weights", "no/such.safetensors"], "no/such.safetensors"),
        (&["build", "examples/spiral.net", "-o", &under_a_file], "cannot create the folder"),
    ];
    for (args, want) in cases {
        let (code, _, err) = netc(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_rust_program_calls_the_object_through_extern_c() {
    let dir = temp_dir("build", "rust");
    let object = build(&root().join("examples/spiral.net"), &dir, "spiral_net", &[]);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(root().join("examples/ffi_rust/Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("NETC_OBJECT", &object)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let accuracy: f64 = stdout.rsplit("training accuracy ").next().unwrap().trim().parse().unwrap();
    assert!(accuracy > 0.9, "the spiral trained through the object reaches {accuracy}:\n{stdout}");
}

#[test]
fn the_c_example_of_the_readme_builds_and_trains() {
    let dir = temp_dir("build", "c_example");
    let weights = dir.join("spiral.safetensors");
    let (code, _, err) =
        netc(&["run", "examples/spiral.net", "--steps", "2000", "--quiet", "--save", weights.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let object =
        build(&root().join("examples/spiral.net"), &dir, "spiral_net", &["--weights", weights.to_str().unwrap()]);
    let main = root().join("examples/c_api/main.c");
    let exe = cc(&dir, "spiral", &[main.to_str().unwrap(), object.to_str().unwrap()]);
    let out = String::from_utf8(Command::new(exe).output().unwrap().stdout).unwrap();
    let accuracy = |line: &str| -> f64 { line.rsplit("accuracy ").next().unwrap().trim().parse().unwrap() };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // The example's spiral differs from the file's data set (its own noise), so the trained
    // weights score well but not perfectly on it; training on it goes further.
    assert!(accuracy(lines[0]) > 0.8, "the embedded trained weights classify the spiral: {out}");
    assert!(accuracy(lines[1]) > 0.9, "{out}");
}

/// Names that collide once made C identifiers (`W` and `w` upper-cased, `dense_1_W` beside
/// `dense_1.W`, inputs named like the header's own `lr`, `labels`, `loss`, `batch`, a C
/// keyword, a `math.h` macro) get distinct names: the header compiles under the strictest
/// flags, and each macro still indexes its own tensor.
#[test]
fn adversarial_names_give_a_header_that_compiles_and_does_not_lie() {
    let dir = temp_dir("build", "adversarial");
    let source = root().join("tests/fuzz_regressions/netc_build/seed-adversarial-names.net");
    let object = build(&source, &dir, "adv", &[]);
    let header = std::fs::read_to_string(object.with_extension("h")).unwrap();
    netc::fuzz::header_names_are_distinct(&header).unwrap_or_else(|e| panic!("{e}\n{header}"));
    let main = dir.join("main.c");
    std::fs::write(&main, "#include \"adv.h\"\nint main(void) { return M_PARAM_W + M_PARAM_W_2 - 1; }\n").unwrap();
    let status = Command::new("cc")
        .args(["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(dir.as_os_str())
        .arg(&main)
        .arg(&object)
        .arg("-o")
        .arg(dir.join("adv"))
        .arg("-lm")
        .output()
        .expect("a C compiler (`cc`) is installed");
    assert!(status.status.success(), "cc failed:\n{}\n{header}", String::from_utf8_lossy(&status.stderr));
    // Each macro's index is its tensor's position in the parameter table.
    let names: Vec<String> = checked(&std::fs::read_to_string(&source).unwrap()).models[0]
        .graph
        .params
        .iter()
        .map(|p| p.name.clone())
        .collect();
    for line in header.lines().filter(|l| l.contains("_PARAM_") && l.ends_with(" elements */")) {
        let Some((index, name)) = line.split_once(" /* ").and_then(|(head, tail)| {
            let index: usize = head.rsplit(' ').next()?.parse().ok()?;
            Some((index, tail.split(':').next()?.to_string()))
        }) else {
            continue;
        };
        assert_eq!(names[index], name, "{line}");
    }
    assert!(header.contains("M_PARAM_W 0 /* W:") && header.contains("M_PARAM_W_2 1 /* w:"), "{header}");
}
