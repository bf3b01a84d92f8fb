//! `netc predict`: the model's forward pass over new data, in batches, from NPY or CSV into NPY
//! or CSV. Its output equals the forward pass computed independently — the reference
//! interpreter in f64 here, and the object file of `netc build --weights` compiled with `cc` —
//! and every wrong input is a diagnostic with exit code 1.

use crate::common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use netc::ir::tensor::Tensor;
use netc::runtime::data::{npy_bytes, read_npy};
use netc::runtime::rng::Rng;

const SAMPLES: usize = 37;

/// Trained spiral weights and 37 random points, as NPY and as CSV.
struct Setup {
    dir: TempDir,
    weights: PathBuf,
    x: Vec<f32>,
}

fn setup(test: &str) -> Setup {
    let dir = temp_dir("predict", test);
    let weights = dir.join("w.safetensors");
    let (code, _, err) =
        netc(&["run", "examples/spiral.net", "--steps", "50", "--quiet", "--save", weights.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut rng = Rng::new(5);
    let x: Vec<f32> = (0..SAMPLES * 2).map(|_| rng.normal() as f32).collect();
    std::fs::write(dir.join("x.npy"), npy_bytes(&[SAMPLES, 2], &x)).unwrap();
    let mut csv = String::from("a,b\n");
    for p in x.chunks(2) {
        csv.push_str(&format!("{},{}\n", p[0], p[1]));
    }
    std::fs::write(dir.join("x.csv"), csv).unwrap();
    Setup { dir, weights, x }
}

/// The spiral net's scores for `x`, by the reference interpreter in f64.
fn reference(weights: &Path, x: &[f32]) -> Vec<f64> {
    let src = std::fs::read_to_string("examples/spiral.net").unwrap();
    let c = netc::frontend::check::check_source(&src).unwrap();
    let g = &c.models[0].graph;
    let loaded = netc::runtime::weights::load(weights).unwrap();
    let params: Vec<Tensor> = g
        .params
        .iter()
        .map(|p| {
            let w = loaded.iter().find(|w| w.name == p.name).unwrap();
            Tensor::new(w.shape.clone(), w.data.iter().map(|&v| v as f64).collect())
        })
        .collect();
    let input = Tensor::new(vec![x.len() / 2, 2], x.iter().map(|&v| v as f64).collect());
    let values = netc::ir::interp::run(g, &[input], &params).unwrap();
    values[g.outputs[0].1.index()].data.clone()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol * w.abs().max(1.0), "{what}[{i}]: {g} vs {w}");
    }
}

fn read_csv(path: &Path) -> (String, Vec<f32>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    (header, lines.flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>()).collect())
}

#[test]
fn predict_equals_the_forward_pass_for_npy_and_csv() {
    let s = setup("equals");
    let want = reference(&s.weights, &s.x);
    let w = s.weights.to_str().unwrap();
    for (input, output, batch) in [("x.npy", "o.npy", "8"), ("x.csv", "o.csv", "256"), ("x.npy", "o2.csv", "1")] {
        let out = s.dir.join(output);
        let input = s.dir.join(input);
        let (code, _, err) = netc(&[
            "predict",
            "examples/spiral.net",
            "--load",
            w,
            "--input",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--batch",
            batch,
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(&format!("wrote {} ([37, 3] of scores, 37 samples)", out.display())), "{err}");
        let got = if output.ends_with(".npy") {
            let a = read_npy(&out).unwrap();
            assert_eq!(a.shape, [SAMPLES, 3]);
            a.values
        } else {
            let (header, values) = read_csv(&out);
            assert_eq!(header, "scores_0,scores_1,scores_2");
            values
        };
        assert_close(&format!("{output} (batch {batch})"), &got, &want, 1e-5);
    }
    // The interpreter engine, and the CSV on stdout without -o.
    let (code, stdout, err) = netc(&[
        "predict",
        "examples/spiral.net",
        "--load",
        w,
        "--input",
        s.dir.join("x.npy").to_str().unwrap(),
        "--engine",
        "interp",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: Vec<f32> = stdout
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>())
        .collect();
    assert_close("interp", &got, &want, 1e-6);

    // --json summarises the run.
    let out = s.dir.join("j.npy");
    let (code, json, err) = netc(&[
        "predict",
        "examples/spiral.net",
        "--load",
        w,
        "--input",
        &format!("x={}", s.dir.join("x.npy").display()),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&json, "samples"), "37");
    assert_eq!(field(&json, "shape"), "[37,3]");
    assert_eq!(field(&json, "output"), "\"scores\"");
    // The timings bench/ reads (W12): the forward loop is part of the whole.
    let secs = |k: &str| field(&json, k).parse::<f64>().unwrap();
    assert!(secs("forward_seconds") > 0.0 && secs("forward_seconds") <= secs("seconds"), "{json}");
    assert!(secs("compile_ms") > 0.0 && secs("compile_ms") / 1e3 <= secs("seconds"), "{json}");
}

#[test]
fn predict_equals_the_object_files_forward() {
    let s = setup("object");
    let object = s.dir.join("spiral_net.o");
    let (code, _, err) = netc(&[
        "build",
        "examples/spiral.net",
        "--weights",
        s.weights.to_str().unwrap(),
        "-o",
        object.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let values: Vec<String> = s.x.iter().map(|v| format!("{v:e}f")).collect();
    let main = format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include "spiral_net.h"
static const float x[{n} * 2] = {{{values}}};
int main(void) {{
    float *p[SPIRAL_NET_NUM_PARAMS];
    for (int i = 0; i < SPIRAL_NET_NUM_PARAMS; i++) p[i] = malloc(4 * spiral_net_param_sizes[i]);
    spiral_net_init_params(p);
    float out[{n} * 3];
    void *w = malloc(spiral_net_forward_workspace_size({n}));
    spiral_net_forward({n}, x, (const float *const *)p, out, w);
    for (int i = 0; i < {n} * 3; i++) printf("%.9g\n", out[i]);
    return 0;
}}
"#,
        n = SAMPLES,
        values = values.join(", ")
    );
    std::fs::write(s.dir.join("main.c"), main).unwrap();
    let exe = s.dir.join("forward");
    let cc = Command::new("cc")
        .args(["-std=c11", "-O1", "-I", s.dir.to_str().unwrap(), s.dir.join("main.c").to_str().unwrap()])
        .arg(&object)
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output()
        .expect("a C compiler (`cc`) is installed");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let printed = String::from_utf8(Command::new(&exe).output().unwrap().stdout).unwrap();
    let from_object: Vec<f64> = printed.lines().map(|l| l.parse().unwrap()).collect();

    for input in ["x.npy", "x.csv"] {
        let out = s.dir.join(&format!("{input}.out.npy"));
        let (code, _, err) = netc(&[
            "predict",
            "examples/spiral.net",
            "--load",
            s.weights.to_str().unwrap(),
            "--input",
            s.dir.join(input).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert_close(&format!("{input} vs the object file"), &read_npy(&out).unwrap().values, &from_object, 1e-5);
    }
}

/// `netc predict ARGS` fails with exit code 1 and a message holding every part; nothing is
/// written.
#[track_caller]
fn fails(s: &Setup, args: &[&str], parts: &[&str]) {
    let out = s.dir.join("never.npy");
    let mut all = vec!["predict", "examples/spiral.net", "--load", s.weights.to_str().unwrap()];
    all.extend(args);
    if !args.contains(&"-o") {
        all.extend(["-o", out.to_str().unwrap()]);
    }
    let (code, _, err) = netc(&all);
    assert_eq!(code, 1, "{args:?}: {err}");
    assert!(err.starts_with("error[E-"), "not a diagnostic: {err}");
    for p in parts {
        assert!(err.contains(p), "{args:?}: the message lacks `{p}`:\n{err}");
    }
    assert!(!out.exists(), "{args:?}: an output was written");
}

#[test]
fn wrong_inputs_are_diagnostics() {
    let s = setup("errors");
    let d = |name: &str| s.dir.join(name).to_str().unwrap().to_string();
    std::fs::write(s.dir.join("wide.npy"), npy_bytes(&[4, 3], &[0.0; 12])).unwrap();
    fails(&s, &["--input", &d("wide.npy")], &["wide.npy: 3 values per sample", "model input `x` is [B, 2]"]);
    fails(
        &s,
        &["--input", &format!("y={}", d("x.npy"))],
        &["model `spiral_net` has no input `y`", "its inputs are: x"],
    );
    fails(&s, &["--input", &d("missing.npy")], &["missing.npy", "cannot read"]);
    fails(&s, &["--input", &d("x.npy"), "--input", &format!("x={}", d("x.csv"))], &["input `x` is given twice"]);
    std::fs::write(s.dir.join("x.txt"), "1,2\n").unwrap();
    fails(&s, &["--input", &d("x.txt")], &["the file must end in .npy or .csv"]);
    fails(
        &s,
        &["--input", &d("x.npy"), "-o", "/nonexistent-netc-dir/o.npy"],
        &["the folder /nonexistent-netc-dir does not exist"],
    );
    fails(&s, &["--input", &d("x.npy"), "--output-name", "probs"], &["has no output `probs`", "scores"]);
    let other = s.dir.join("other.safetensors");
    netc::runtime::weights::save(&other, &[("W9", &[1][..], &[0.0][..])]).unwrap();
    let (code, _, err) =
        netc(&["predict", "examples/spiral.net", "--load", other.to_str().unwrap(), "--input", &d("x.npy")]);
    assert_eq!(code, 1);
    assert!(err.contains("no tensor named `W1`"), "{err}");
    let (code, _, err) = netc(&["predict", "examples/spiral.net", "--input", &d("x.npy")]);
    assert_eq!(code, 1);
    assert!(err.contains("give the trained weights with --load"), "{err}");

    // A model of two inputs needs both, by name, with as many samples each.
    let two = s.dir.join("two.net");
    std::fs::write(&two, "model m(a: [B, 2], b: [B, 2]) -> [B, 2] { a * b }\n").unwrap();
    std::fs::write(s.dir.join("b5.npy"), npy_bytes(&[5, 2], &[1.0; 10])).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["predict", two.to_str().unwrap()];
        all.extend(args);
        netc(&all)
    };
    let (code, _, err) = run(&["--input", &d("x.npy")]);
    assert_eq!(code, 1);
    assert!(err.contains("has 2 inputs; name each one: --input NAME=FILE (a, b)"), "{err}");
    let (code, _, err) = run(&["--input", &format!("a={}", d("x.npy"))]);
    assert_eq!(code, 1);
    assert!(err.contains("needs input `b` ([B, 2])"), "{err}");
    let (code, _, err) = run(&["--input", &format!("a={}", d("x.npy")), "--input", &format!("b={}", d("b5.npy"))]);
    assert_eq!(code, 1);
    assert!(err.contains("5 samples for input `b`, but") && err.contains("has 37 for `a`"), "{err}");
    let (code, out, err) = run(&["--input", &format!("a={}", d("x.npy")), "--input", &format!("b={}", d("x.csv"))]);
    assert_eq!(code, 0, "{err}");
    let first: Vec<f32> = out.lines().nth(1).unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(first, [s.x[0] * s.x[0], s.x[1] * s.x[1]], "a * b of the same values");
}
