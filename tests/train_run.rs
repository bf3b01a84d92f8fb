//! `netc run` training end to end: JSON report, loss plot, safetensors weights carrying the
//! model's parameter names, bit-identical results from a fixed seed, overrides, divergence.

use crate::common;
use common::*;
use std::process::Command;

#[test]
fn json_report_plot_and_weights() {
    let (plot, weights) = (tmp("loss.svg"), tmp("w.safetensors"));
    let (code, out, err) = netc(&[
        "run",
        "examples/spiral.net",
        "--steps",
        "30",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
        "--save",
        weights.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let json = out.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    assert_eq!(field(json, "steps"), "30");
    assert!(!has_field(json, "test_accuracy") && !has_field(json, "test_loss"), "spiral has no test split: {json}");
    for key in ["seconds", "final_loss", "train_accuracy", "samples_per_second"] {
        let v: f64 = field(json, key).parse().unwrap_or_else(|_| panic!("{key} is not a number: {json}"));
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));

    // The weights load with the safetensors crate and carry the model's parameter names.
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(names, ["W1", "W2", "b1", "b2"]);
    assert_eq!(st.tensor("W1").unwrap().shape(), [2, 100]);

    // --load starts from them: training 0 more steps keeps the same loss.
    let (code, out2, err) = netc(&[
        "run",
        "examples/spiral.net",
        "--steps",
        "1",
        "--lr",
        "0",
        "--json",
        "--load",
        weights.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        field(out2.trim(), "train_accuracy"),
        field(json, "train_accuracy"),
        "loaded weights give the trained accuracy"
    );
    std::fs::remove_file(plot).ok();
    std::fs::remove_file(weights).ok();
}

#[test]
fn a_fixed_seed_gives_bit_identical_weights() {
    let (a, b, c) = (tmp("a.safetensors"), tmp("b.safetensors"), tmp("c.safetensors"));
    for (path, seed) in [(&a, "3"), (&b, "3"), (&c, "4")] {
        let (code, _, err) = netc(&[
            "run",
            "examples/spiral.net",
            "--steps",
            "20",
            "--quiet",
            "--seed",
            seed,
            "--save",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let (ba, bb, bc) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), std::fs::read(&c).unwrap());
    assert_eq!(ba, bb, "same seed, different weights");
    assert_ne!(ba, bc, "a different seed should change the weights");
    for p in [a, b, c] {
        std::fs::remove_file(p).ok();
    }
}

#[test]
fn divergence_names_the_step_and_the_op() {
    let (code, out, err) = netc(&["run", "examples/spiral.net", "--steps", "50", "--lr", "1e30", "--quiet"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("non-finite at step"), "{err}");
    assert!(err.contains("first non-finite value is %"), "{err}");
}

#[test]
fn resume_continues_to_the_same_weights() {
    let (full, part, resumed) = (tmp("full.st"), tmp("part.st"), tmp("resumed.st"));
    let file = "examples/digits_mlp.net"; // momentum: the optimizer state must be resumed too
    let run = |extra: &[&str]| {
        let mut args = vec!["run", file, "--steps", "40", "--quiet"];
        args.extend_from_slice(extra);
        let (code, _, err) = netc(&args);
        assert_eq!(code, 0, "{err}");
    };
    run(&["--save", full.to_str().unwrap()]);
    run(&["--stop-after", "15", "--save", part.to_str().unwrap()]);
    run(&["--resume", part.to_str().unwrap(), "--save", resumed.to_str().unwrap()]);
    assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap(), "resumed run ended elsewhere");
    assert_ne!(std::fs::read(&full).unwrap(), std::fs::read(&part).unwrap());
    // Plain weights are not a checkpoint.
    let (code, _, err) = netc(&["run", file, "--steps", "2", "--resume", "tests/data/x_f32.npy"]);
    assert_eq!(code, 1, "{err}");
    for p in [full, part, resumed] {
        std::fs::remove_file(p).ok();
    }
}

#[test]
fn a_killed_save_leaves_the_previous_file_intact() {
    let path = tmp("killed.st");
    let (code, _, err) =
        netc(&["run", "examples/mlp.net", "--steps", "1", "--quiet", "--save", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let valid = |bytes: &[u8]| safetensors::SafeTensors::deserialize(bytes).is_ok();
    assert!(valid(&std::fs::read(&path).unwrap()));
    // Kill runs at different moments, some of them while saving ~1 MB of weights.
    for delay_ms in [5u64, 20, 40, 60, 80, 120, 160, 240] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(["run", "examples/mlp.net", "--steps", "3", "--quiet", "--save", path.to_str().unwrap()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        let bytes = std::fs::read(&path).unwrap();
        assert!(valid(&bytes), "after a kill at {delay_ms} ms the weights file is damaged");
    }
    std::fs::remove_file(&path).ok();
    // Leftover temporary files are the only trace of a killed save.
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(&format!("netc-{}-killed.st", std::process::id())) && name.ends_with(".tmp") {
            std::fs::remove_file(e.path()).ok();
        }
    }
}

/// MNIST-style IDX files of `n` 28x28 images (pixel = 10·label) and their labels.
fn write_idx(dir: &std::path::Path, stem: &str, n: usize) {
    let mut images = vec![0u8, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    let mut labels = vec![0u8, 0, 8, 1];
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    for i in 0..n {
        let label = (i % 10) as u8;
        images.extend(std::iter::repeat_n(label * 10, 784));
        labels.push(label);
    }
    std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), labels).unwrap();
}

#[test]
fn mlp_reads_mnist_idx_files_when_given_their_directory() {
    let dir = tmp("mnist-dir");
    std::fs::create_dir_all(dir.join("mnist")).unwrap();
    write_idx(&dir.join("mnist"), "train", 40);
    write_idx(&dir.join("mnist"), "t10k", 20);
    let (code, out, err) =
        netc(&["run", "examples/mlp.net", "--steps", "3", "--json", "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("otherwise"), "it fell back: {err}");
    assert_ne!(field(out.trim(), "test_accuracy"), "null", "the t10k files are the test set: {out}");
    // Without the files, the synthetic stand-in is used, and netc says so.
    let (code, _, err) = netc(&["run", "examples/mlp.net", "--steps", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not found; data `mnist` uses its `otherwise` source"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn ctrl_c_stops_after_the_current_step_and_saves() {
    let path = tmp("interrupted.st");
    let child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["run", "examples/spiral.net", "--steps", "100000000", "--json", "--save", path.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{json}");
    assert_eq!(field(json.trim(), "interrupted"), "true", "{json}");
    let steps: usize = field(json.trim(), "steps").parse().unwrap();
    assert!(steps > 0 && steps < 100000000);
    let bytes = std::fs::read(&path).unwrap();
    assert!(safetensors::SafeTensors::deserialize(&bytes).is_ok());
    std::fs::remove_file(path).ok();
}

/// A data block's `shuffle: false` keeps file order: with zero-initialised parameters the
/// seed then changes nothing (it only seeds initialisers and shuffling), while shuffled
/// minibatches differ from seed to seed. A full batch, unshuffled, is gathered once and
/// trains to the same weights as the same batch gathered every step would.
#[test]
fn shuffle_false_keeps_file_order() {
    let dir = temp_dir("train_run", "shuffle_false");
    let program = |shuffle: &str, batch: usize| {
        format!(
            "model m(x: [B, 2]) -> s: [B, 3] {{\n  param W: [2, 3] = zeros\n  param b: [3] = zeros\n  x @ W + b\n}}\n\
             data d {{\n  source: spiral(points: 40, classes: 3, seed: 1)\n  shuffle: {shuffle}\n}}\n\
             train m {{\n  loss: cross_entropy(s, labels)\n  optimizer: sgd(lr: 0.5)\n  steps: 12\n  batch: {batch}\n  seed: 0\n}}\n"
        )
    };
    let weights = |file: &str, seed: &str| {
        let out = dir.join(&format!("{file}-{seed}.safetensors"));
        let (code, _, err) = netc(&[
            "run",
            dir.join(file).to_str().unwrap(),
            "--quiet",
            "--seed",
            seed,
            "--save",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{file} seed {seed}: {err}");
        // The tensors, not the bytes: the checkpoint's metadata records the seed.
        netc::runtime::weights::load(&out).unwrap()
    };
    for (file, shuffle, batch) in
        [("ordered.net", "false", 30), ("shuffled.net", "true", 30), ("full.net", "false", 120)]
    {
        std::fs::write(dir.join(file), program(shuffle, batch)).unwrap();
    }
    assert_eq!(weights("ordered.net", "1"), weights("ordered.net", "2"), "unshuffled minibatches depend on the seed");
    assert_ne!(weights("shuffled.net", "1"), weights("shuffled.net", "2"), "shuffled minibatches ignore the seed");
    assert_eq!(weights("full.net", "1"), weights("full.net", "2"));
}
