//! What a PyTorch user expects of netc beyond single ops: `l2()` and weight decay by a
//! parameter's role, models called from eval blocks (on the JIT, with `--load`), a model's
//! symbolic sizes as names in its body, and `netc gradcheck` catching a wrong derivative at
//! a point where the function is smooth although its pieces have kinks.

use crate::common;
use common::*;

use netc::ir::graph::{Op, ParamRole};

/// Write `src` as `name` in `dir` and return its path as a string.
fn write(dir: &TempDir, name: &str, src: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, src).unwrap();
    path.to_str().unwrap().to_string()
}

fn load(path: &str) -> Vec<netc::runtime::weights::Weight> {
    netc::runtime::weights::load(std::path::Path::new(path)).unwrap()
}

fn tensor<'a>(ws: &'a [netc::runtime::weights::Weight], name: &str) -> &'a [f32] {
    &ws.iter().find(|w| w.name == name).unwrap_or_else(|| panic!("no {name}")).data
}

/// conv2d, then dense: weights W, biases b (conv2d's of shape [F, 1, 1]).
const CONV_NET: &str = "model net(x: [B, 1, 4, 4]) -> scores: [B, 3] {
  x |> conv2d(filters: 2, kernel: 3, pad: 1, init: constant(1), bias: constant(0.5))
    |> flatten
    |> dense(3, init: constant(1), bias: constant(0.5))
}
data d { source: synthetic(samples: 8, classes: 3, seed: 1) }
";

#[test]
fn roles_come_from_use_not_rank() {
    let c = netc::frontend::check::check_source(&format!(
        "{CONV_NET}train net {{\n  loss: cross_entropy(scores, labels)\n  steps: 1\n}}\n"
    ))
    .unwrap();
    let params = &c.trains[0].graph.params;
    let role = |n: &str| params.iter().find(|p| p.name == n).unwrap().role;
    assert_eq!(role("conv2d_1.W"), ParamRole::Weight);
    assert_eq!(role("conv2d_1.b"), ParamRole::Bias, "a [F, 1, 1] bias has three axes and is a bias");
    assert_eq!(role("dense_1.W"), ParamRole::Weight);
    assert_eq!(role("dense_1.b"), ParamRole::Bias);
    // A vector that multiplies is a weight; a matrix that is only added is a bias.
    let c = netc::frontend::check::check_source(
        "model m(x: [B, 3]) -> [B, 3] {\n  param scale: [3] = constant(2)\n  param shift: [1, 3] = zeros\n  x * scale + shift\n}\n",
    )
    .unwrap();
    let roles: Vec<ParamRole> = c.models[0].graph.params.iter().map(|p| p.role).collect();
    assert_eq!(roles, [ParamRole::Weight, ParamRole::Bias]);
}

#[test]
fn l2_and_weight_decay_leave_biases_alone() {
    let dir = temp_dir("conventions", "decay");
    // One SGD step at lr 0.5 on 0.5·Σw² (l2()), or on a zero loss with weight_decay 1: every
    // weight halves (1 -> 0.5), every bias (0.5) stays, conv2d's [F, 1, 1] bias included.
    for (what, settings) in [
        ("l2()", "loss: l2()\n  optimizer: sgd(lr: 0.5)"),
        ("weight_decay", "loss: 0 * mean(scores)\n  optimizer: sgd(lr: 0.5)\n  weight_decay: 1"),
        ("adamw", "loss: 0 * mean(scores)\n  optimizer: adamw(lr: 0.5, weight_decay: 1)"),
    ] {
        let file = write(&dir, "net.net", &format!("{CONV_NET}train net {{\n  {settings}\n  steps: 1\n}}\n"));
        let out = dir.join("out.safetensors");
        let (code, _, err) = netc(&["run", &file, "--save", out.to_str().unwrap(), "--quiet"]);
        assert_eq!(code, 0, "{what}: {err}");
        let ws = load(out.to_str().unwrap());
        for w in ["conv2d_1.W", "dense_1.W"] {
            assert!(tensor(&ws, w).iter().all(|&v| v == 0.5), "{what}: {w} = {:?}", tensor(&ws, w));
        }
        for b in ["conv2d_1.b", "dense_1.b"] {
            assert!(tensor(&ws, b).iter().all(|&v| v == 0.5), "{what}: {b} = {:?}", tensor(&ws, b));
        }
    }
}

const TINY: &str = "model tiny(x: [B, 2]) -> scores: [B, 3] { x |> dense(3) }
eval call {
  let x = [[1, 2], [3, 4]]
  let y = tiny(x)
  let twice = tiny(x) - y
  y
  twice
}
";

#[test]
fn an_eval_block_calls_a_model_on_both_engines() {
    let dir = temp_dir("conventions", "call");
    let file = write(&dir, "tiny.net", TINY);
    let (code, jit, err) = netc(&["run", &file]);
    assert_eq!(code, 0, "{err}");
    let (code, interp, err) = netc(&["run", &file, "--engine", "interp"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(jit, interp);
    // One model, one set of parameters: both calls give the same scores.
    assert!(jit.contains("twice = [[0, 0, 0],"), "{jit}");
    let c = netc::frontend::check::check_source(TINY).unwrap();
    let names: Vec<&str> = c.evals[0].graph.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["tiny.dense_1.W", "tiny.dense_1.b"]);
    assert!(c.evals[0].graph.symbols.is_empty(), "B is bound to the argument's 2: {:?}", c.evals[0].graph.symbols);
}

#[test]
fn the_repl_calls_a_model() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script = "model m(x: [B, 2]) -> [B, 1] { x |> dense(1, init: constant(1)) }\nm([[1, 2], [3, 4]])\n";
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.contains("[[3],\n [7]]"), "{stdout}");
}

#[test]
fn eval_blocks_read_called_models_parameters_from_load() {
    let dir = temp_dir("conventions", "load");
    let file = write(&dir, "tiny.net", TINY);
    let weights = dir.join("w.safetensors");
    let w: Vec<f32> = vec![1.0, 0.0, -1.0, 0.5, 2.0, 0.25];
    let b: Vec<f32> = vec![0.5, -0.5, 1.0];
    netc::runtime::weights::save(&weights, &[("dense_1.W", &[2, 3], &w), ("dense_1.b", &[3], &b)]).unwrap();
    let (code, out, err) = netc(&["run", &file, "--load", weights.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // [1, 2] @ W + b = [1 + 1 + 0.5, 0 + 4 - 0.5, -1 + 0.5 + 1], [3, 4] @ W + b = [5.5, 7.5, -1]
    assert!(out.contains("y = [[2.5, 3.5, 0.5],\n       [5.5, 7.5, -1]]"), "{out}");
    let (_, unloaded, _) = netc(&["run", &file]);
    assert_ne!(out, unloaded);
    // A file without the model's tensors is an error that names the missing one.
    netc::runtime::weights::save(&weights, &[("other.W", &[2, 3], &w)]).unwrap();
    let (code, _, err) = netc(&["run", &file, "--load", weights.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no tensor named `dense_1.W`"), "{err}");
}

#[test]
fn symbolic_sizes_of_the_signature_are_names_in_the_body() {
    let c = netc::frontend::check::check_source(
        "model m(x: [B, 64]) -> [B, 2] {
  let y = reshape(x, [B, 8, 8])
  let z = reshape(y, [-1, 64])
  reshape(z, [B, 2, 32]) |> reshape([-1, 2, 32]) |> sum(axis: 2)
}
model n(x: [B, 2, 3]) -> [B, 6] { reshape(x, [-1, 6]) }
eval e {
  let a = [[[1, 2, 3], [4, 5, 6]]]
  n(a)
}
",
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    let g = &c.models[0].graph;
    let reshapes: Vec<String> =
        g.nodes.iter().filter(|n| matches!(n.op, Op::Reshape { .. })).map(|n| g.shape_str(&n.shape)).collect();
    assert_eq!(reshapes, ["[B, 8, 8]", "[B, 64]", "[B, 2, 32]", "[B, 2, 32]"]);
    let out = netc::commands::eval::evaluate(&c.evals[0], 0).unwrap();
    assert_eq!(out.shows[0].1.shape, [1, 6]);
    // -1 must be one size: B·2 is not.
    let e =
        netc::frontend::check::check_source("model m(x: [B, 2, 3]) -> [B, 2] { reshape(x, [-1, 3]) }\n").unwrap_err();
    assert!(e[0].labels.iter().any(|l| l.1.contains("-1 would be B·2")), "{e:#?}");
}

/// softplus written from a relu, ln(1 + e^−|x|) + relu(x): its true derivative at 0 is ½, but
/// relu'(0) = 0 and |x|'(0) = 0 make the analytic one 0 there. The relu and the |x| switch
/// branches at 0 while the sum is smooth: gradcheck must compare there, and fail.
const PLANTED: &str = "eval planted {
  let z = [0, 0, 1.5, -0.5]
  let f = sum(relu(z) + log(1 + exp(-abs(z))))
  grad f wrt z
}
";

#[test]
fn gradcheck_fails_on_a_wrong_derivative_at_a_smooth_point_of_kinked_pieces() {
    let dir = temp_dir("conventions", "gradcheck");
    let planted = write(&dir, "planted.net", PLANTED);
    let (code, out, err) = netc(&["gradcheck", &planted]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("analytic 0e0, numeric 5"), "{out}");
    // The built-in softplus has the true derivative: the same check passes, nothing skipped.
    let fixed = write(&dir, "fixed.net", &PLANTED.replace("relu(z) + log(1 + exp(-abs(z)))", "softplus(z)"));
    let (code, out, err) = netc(&["gradcheck", &fixed]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(" ok ") && !out.contains("skipped"), "{out}");
}

#[test]
fn gradcheck_reports_real_kinks_and_fails_when_nothing_was_compared() {
    let dir = temp_dir("conventions", "kinks");
    // relu at 0 is a real kink (slopes 0 and 1): skipped, said why, the rest compared.
    let some = write(
        &dir,
        "some.net",
        "eval k {\n  let z = [0, 1, -2]\n  let f = sum(relu(z) * [1, 2, 3])\n  grad f wrt z\n}\n",
    );
    let (code, out, err) = netc(&["gradcheck", &some]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("1 at a kink skipped"), "{out}");
    assert!(out.contains("skipped element 0: relu"), "{out}");
    assert!(out.contains("slopes are 0.000000 left, 1.000000 right"), "{out}");
    // Every element at a kink: nothing was checked, which is not a pass.
    let all = write(&dir, "all.net", "eval k {\n  let z = [0, 0]\n  let f = sum(relu(z))\n  grad f wrt z\n}\n");
    let (code, out, _) = netc(&["gradcheck", &all]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT CHECKED") && out.contains("nothing was compared"), "{out}");
}
