//! Inputs that used to give a silent wrong number or a confusing message (issue #23): labels
//! out of range on the JIT, a class count taken from the wrong one-hot, an empty test set,
//! an infinite literal, a byte-order mark, old Mac line ends, two data blocks, an unclosed
//! bracket at the end of REPL input, a NaN threshold.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{netc, temp_dir};

fn run_on(test: &str, source: &[u8], args: &[&str]) -> (i32, String, String) {
    let dir = temp_dir("bad_inputs", test);
    let path = dir.join("m.net");
    std::fs::write(&path, source).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.insert(1, path.to_str().unwrap());
    netc(&all)
}

#[test]
fn labels_out_of_range_are_refused_by_the_jit_as_by_the_interpreter() {
    for (labels, why) in [("[0, 3]", "3"), ("[0, -1]", "-1"), ("[0, 0.5]", "0.5")] {
        // A literal is checked where it is written.
        let src = format!("eval e {{\n  let s = [[1, 2, 3], [3, 2, 1]]\n  cross_entropy(s, {labels})\n}}\n");
        let (code, _, err) = run_on("literal", src.as_bytes(), &["run"]);
        assert_eq!(code, 1, "{labels}: {err}");
        assert!(err.contains(&format!("label {why} is not a class index")), "{labels}: {err}");
        // A variable too, for svm and one_hot alike.
        for f in ["cross_entropy(s, l)", "svm(s, l)", "sum(one_hot(l, 3))"] {
            let src = format!("eval e {{\n  let s = [[1, 2, 3], [3, 2, 1]]\n  let l = {labels}\n  {f}\n}}\n");
            for engine in ["jit", "interp"] {
                let (code, _, err) = run_on("variable", src.as_bytes(), &["run", "--engine", engine]);
                assert_eq!(code, 1, "{f} {labels} {engine}: {err}");
            }
        }
    }
}

#[test]
fn compiled_code_checks_its_label_buffers() {
    use netc::drivers::jit;
    let c = netc::frontend::check::check_source(
        "model m(x: [B, 3]) -> s: [B, 3] { x }\ntrain m { loss: cross_entropy(s, labels); steps: 1 }\n",
    )
    .unwrap();
    let t = &c.trains[0];
    let mut f = jit::compile(&t.graph, &Default::default()).unwrap();
    let x = vec![0f32; 6];
    let mut out: Vec<Vec<f32>> = vec![vec![0.0; 1], vec![0.0; 6]];
    for bad in [3.0, -1.0, 0.5, f32::NAN] {
        let labels = vec![0.0, bad];
        let r = f.run_readonly(&[x.as_slice(), labels.as_slice()], &[] as &[Vec<f32>], &mut out, &[2]);
        let e = r.expect_err("an invalid label is an error");
        assert!(e.contains("not a class index"), "{e}");
    }
    let labels = vec![0.0, 2.0];
    f.run_readonly(&[x.as_slice(), labels.as_slice()], &[] as &[Vec<f32>], &mut out, &[2]).unwrap();
    assert!((out[0][0] - 3f32.ln()).abs() < 1e-5, "{:?}", out[0]);
}

#[test]
fn the_class_count_comes_from_the_labels_one_hot() {
    // The model one-hot encodes something of its own with 10 classes; the loss has 3. Data
    // with labels up to 9 must be refused, not trained on with labels 3..9 ignored.
    let dir = temp_dir("bad_inputs", "classes");
    let mut csv = String::from("a,b,label\n");
    for i in 0..20 {
        csv.push_str(&format!("{},{},{}\n", i % 3, i % 5, i % 10));
    }
    std::fs::write(dir.join("d.csv"), csv).unwrap();
    std::fs::write(
        dir.join("m.net"),
        "model m(x: [B, 2]) -> s: [B, 3] {\n  let codes = sum(one_hot([1, 2], 10))\n  dense(x, 3) + codes\n}\n\
         data d { source: csv(\"d.csv\") }\ntrain m { loss: cross_entropy(s, labels); steps: 2; batch: 4 }\n",
    )
    .unwrap();
    let (code, _, err) = netc(&["run", dir.join("m.net").to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("out of range for 3 classes"), "{err}");
}

#[test]
fn a_split_keeping_every_sample_has_no_test_loss() {
    let src = "model m(x: [B, 2]) -> s: [B, 3] { x |> dense(3) }\n\
               data d { source: spiral(points: 10, classes: 3, seed: 0); split: 30 }\n\
               train m { loss: cross_entropy(s, labels); steps: 2 }\n";
    let (code, out, err) = run_on("split", src.as_bytes(), &["run", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(common::has_field(&out, "train_loss"), "{out}");
    assert!(!common::has_field(&out, "test_loss"), "no test set, so no test loss: {out}");
    let (code, _, err) = run_on("split0", src.replace("split: 30", "split: 0.01").as_bytes(), &["run", "--json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no samples to train on"), "{err}");
}

#[test]
fn literals_and_sizes_out_of_range() {
    let (code, _, err) = run_on("inf", b"eval e { 1e400 }\n", &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("number `1e400` is too large"), "{err}");
    let (code, _, err) = run_on("one_hot0", b"eval e {\n  let l = [0, 1]\n  one_hot(l, 0)\n}\n", &["run"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn byte_order_marks_and_carriage_returns() {
    let src = "model m(x: [B, 2]) -> s: [B, 3] {\n  x |> dense(3)\n}\neval e {\n  1 + 2\n}\n";
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend(src.as_bytes());
    let (code, out, err) = run_on("bom", &bom, &["run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('3'), "{out}");
    for ends in ["\r", "\r\n"] {
        let (code, out, err) = run_on("cr", src.replace('\n', ends).as_bytes(), &["run"]);
        assert_eq!(code, 0, "{ends:?}: {err}");
        assert!(out.contains('3'), "{out}");
    }
    // An error in a CR-only file names the right line.
    let bad = "eval e {\r  1 +\r  }\r";
    let (code, _, err) = run_on("cr_error", bad.as_bytes(), &["check"]);
    assert_eq!(code, 1);
    assert!(err.contains(":3:"), "{err}");
}

#[test]
fn two_data_blocks_without_a_choice_are_named() {
    let src = "model m(x: [B, 2]) -> s: [B, 3] { x |> dense(3) }\n\
               data first { source: spiral(points: 10, classes: 3, seed: 0) }\n\
               data second { source: spiral(points: 20, classes: 3, seed: 1) }\n\
               train m { loss: cross_entropy(s, labels); steps: 2 }\n";
    let (code, _, err) = run_on("two_data", src.as_bytes(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`first` and `second`"), "{err}");
    assert!(!err.contains("no data block to train on"), "{err}");
}

#[test]
fn an_unclosed_bracket_at_the_end_of_repl_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"1 + 1\n(((((\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the input ends inside `(`"), "{err}");
    assert!(!err.contains('}'), "no `}}` the user never typed: {err}");
}

#[test]
fn gradcheck_refuses_a_threshold_that_is_not_a_number() {
    for t in ["nan", "-1", "inf"] {
        let (code, _, err) = netc(&["gradcheck", "examples/gates.net", &format!("--threshold={t}")]);
        assert_eq!(code, 1, "{t}: {err}");
        assert!(err.contains("--threshold"), "{t}: {err}");
    }
}

#[test]
fn graph_names_itself_in_its_memory_error() {
    let src = "model m(x: [B, 2]) -> s: [B, 3] {\n  param W: [2, 3]\n  param H: [1048576, 1048576]\n  x @ W\n}\n\
               data d { source: spiral(points: 10, classes: 3, seed: 0) }\n\
               train m { loss: cross_entropy(s, labels) + sum(H); steps: 2 }\n";
    let (code, _, err) = run_on("graph_memory", src.as_bytes(), &["graph"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("graph:") && !err.contains("gradcheck"), "{err}");
}

#[test]
fn literal_labels_in_a_train_block_are_checked_where_written() {
    let src = "model m(x: [B, 2]) -> s: [B, 3] { x |> dense(3) }\n\
               data d { source: spiral(points: 10, classes: 3, seed: 0) }\n\
               train m { loss: cross_entropy(s, labels) + sum(one_hot([0, 9], 3)); steps: 2 }\n";
    let (code, _, err) = run_on("train_literal", src.as_bytes(), &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("label 9 is not a class index for 3 classes"), "{err}");
}

/// A one-hot of a value computed inside the graph cannot be checked before the call: its
/// compiled code gives a row starting with NaN for a value that is no class index (few and many
/// classes take different code), so the result is visibly wrong, never a silent number.
#[test]
fn compiled_one_hot_of_a_computed_value_out_of_range_is_nan() {
    for (classes, values) in [(3, "[0, 1, 0.25]"), (12, "[0, 5, 5.25, -1]")] {
        let src = format!("eval e {{\n  let l = {values}\n  one_hot(l * 2, {classes})\n}}\n");
        let (code, out, err) = run_on("computed", src.as_bytes(), &["run"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("[NaN, 0"), "{classes} classes: {out}");
        let (code, _, err) = run_on("computed", src.as_bytes(), &["run", "--engine", "interp"]);
        assert_eq!(code, 1, "{err}");
    }
}
