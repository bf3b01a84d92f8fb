//! Named data fields: regression and sequence targets, several model inputs, CSV columns by
//! name and range, per-field test files, metrics that fit the task, and a diagnostic naming the
//! file and the field for every kind of mismatch.

use crate::common;
use common::*;

use netc::runtime::data::npy_bytes;

/// Write `net` and its data files into a fresh directory: the .net file's path.
fn setup(dir: &TempDir, net: &str, files: &[(&str, Vec<u8>)]) -> String {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let path = dir.join("m.net");
    std::fs::write(&path, net).unwrap();
    path.to_str().unwrap().to_string()
}

fn npy(shape: &[usize], values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    npy_bytes(shape, &values.into_iter().collect::<Vec<_>>())
}

#[test]
fn the_regression_example_reports_only_regression_metrics_and_the_loss_history() {
    let (code, out, err) = netc(&["run", "examples/regression.net", "--steps", "300", "--json"]);
    assert_eq!(code, 0, "{err}");
    for key in ["train_loss", "train_mse", "train_mae", "test_loss", "test_mse", "test_mae"] {
        let v: f64 = field(&out, key).parse().unwrap_or_else(|_| panic!("{key}: {out}"));
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    assert!(!has_field(&out, "train_accuracy"), "accuracy does not apply to float targets: {out}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let history = json["loss_history"]["mean_loss"].as_array().unwrap();
    assert_eq!(history.len(), 300, "every step while there are at most 1000");
    assert_eq!(json["loss_history"]["every_steps"], 1);
    // 819 training samples in batches of 64: 13 batches per epoch, 23 full epochs in 300 steps.
    assert_eq!(json["loss_history"]["epoch_mean_loss"].as_array().unwrap().len(), 300 / 13);
    // The mse of the test set is the test loss (the loss is mse(pred, y)), up to rounding: the
    // loss is averaged per batch in f32, the metric over every value in f64.
    let (loss, mse): (f64, f64) = (field(&out, "test_loss").parse().unwrap(), field(&out, "test_mse").parse().unwrap());
    assert!((loss - mse).abs() <= 1e-6 * mse, "{loss} vs {mse}");

    let (code, out, _) = netc(&["run", "examples/regression.net", "--steps", "30"]);
    assert_eq!(code, 0);
    assert!(out.contains("loss      mse       mae") && !out.contains("accuracy"), "{out}");
}

#[test]
fn cross_entropy_over_positions_matches_pytorch() {
    // Scores [2, 3, 4] and targets [2, 3]: torch's cross_entropy (classes at axis 1).
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/data/cross_entropy_seq.json").unwrap()).unwrap();
    let src = "eval seq {
  let s = [[[0.3, -1.2, 0.8, 1.9], [-0.4, 1.1, 0.2, -0.9], [1.4, -0.7, 0.6, 0.1]],
           [[0.7, 0.2, -1.1, 0.4], [1.6, -0.5, 0.9, -1.3], [-0.8, 1.2, 0.35, 0.75]]]
  let y = [[3, 1, 0], [2, 0, 1]]
  let l = cross_entropy(s, y)
  grad l wrt s
}";
    let checked = netc::frontend::check::check_source(src).unwrap();
    for exec in [netc::commands::eval::Exec::Interp, netc::commands::eval::Exec::Jit] {
        let out = netc::commands::eval::evaluate_with(&checked.evals[0], 0, exec).unwrap();
        let (_, value, grads) = &out.grads[0];
        assert!((value.data[0] - reference["loss"].as_f64().unwrap()).abs() < 1e-12, "{}", value.data[0]);
        let want: Vec<f64> = reference["grad"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (g, w) in grads[0].1.data.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "gradient {g} vs torch {w}");
        }
    }
}

/// A tagger reading two model inputs and an integer target per position, from NPY and CSV.
fn tagger_net(source: &str) -> String {
    format!(
        "model tag(tokens: [B, 3], bias: [B, 1]) -> logits: [B, 3, 2] {{
  let h = one_hot(tokens, 4) |> flatten |> dense(8) |> tanh
  reshape(h |> dense(6), [tokens.shape[0], 3, 2]) + reshape(bias, [tokens.shape[0], 1, 1])
}}
data d {{
{source}
}}
train tag {{
  loss: cross_entropy(logits, tags)
  optimizer: adam(lr: 0.05)
  steps: 40
  batch: 4
}}
"
    )
}

#[test]
fn several_inputs_and_per_position_targets_train_from_npy_and_csv() {
    let dir = temp_dir("fields", "several_inputs");
    let n = 12;
    let tokens: Vec<f32> = (0..n * 3).map(|i| (i * 7 % 4) as f32).collect();
    let tags: Vec<f32> = tokens.iter().map(|&t| (t as usize % 2) as f32).collect();
    let mut csv = String::from("t0,t1,t2,bias,g0,g1,g2\n");
    for i in 0..n {
        let row: Vec<String> = tokens[i * 3..i * 3 + 3]
            .iter()
            .chain(&[0.5])
            .chain(&tags[i * 3..i * 3 + 3])
            .map(|v| v.to_string())
            .collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let files = [
        ("tokens.npy", npy(&[n, 3], tokens.clone())),
        ("bias.npy", npy(&[n, 1], vec![0.5; n])),
        ("tags.npy", npy(&[n, 3], tags.clone())),
        ("d.csv", csv.into_bytes()),
    ];
    let from_npy = "  tokens: npy(\"tokens.npy\", int)\n  bias: npy(\"bias.npy\")\n  tags: npy(\"tags.npy\", int, [3])";
    let from_csv = "  tokens: csv(\"d.csv\", int, columns: \"t0:t2\")\n  bias: csv(\"d.csv\", columns: \"bias\")\n  tags: csv(\"d.csv\", int, columns: [\"g0\", \"g1\", \"g2\"], shape: [3])";
    let mut results = vec![];
    for source in [from_npy, from_csv] {
        let net = setup(&dir, &tagger_net(source), &files);
        let (code, out, err) = netc(&["run", &net, "--json"]);
        assert_eq!(code, 0, "{source}: {err}");
        let acc: f64 = field(&out, "train_accuracy").parse().unwrap();
        assert!(acc >= 0.9, "{source}: per-position accuracy {acc}");
        results.push(field(&out, "train_loss"));
    }
    assert_eq!(results[0], results[1], "the same values from NPY and CSV train the same");

    // `netc gradcheck` checks the per-position cross-entropy against central differences.
    let net = setup(&dir, &tagger_net(from_npy), &files);
    let (code, out, err) = netc(&["gradcheck", &net]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn per_field_test_files_make_a_test_set() {
    let dir = temp_dir("fields", "test_files");
    let x: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
    let y: Vec<f32> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    let files = [
        ("x.npy", npy(&[16, 1], x.clone())),
        ("y.npy", npy(&[16, 1], y.clone())),
        ("xt.npy", npy(&[4, 1], x[..4].to_vec())),
        ("yt.npy", npy(&[4, 1], y[..4].to_vec())),
    ];
    let net = "model lin(x: [B, 1]) -> pred: [B, 1] { x |> dense(1) }
data d {
  x: npy(\"x.npy\", test: \"xt.npy\")
  y: npy(\"y.npy\", float, [1], test: \"yt.npy\")
}
train lin { loss: mse(pred, y); optimizer: sgd(lr: 0.5); steps: 300; batch: 16 }
";
    let net = setup(&dir, net, &files);
    let (code, out, err) = netc(&["run", &net, "--json"]);
    assert_eq!(code, 0, "{err}");
    let mse: f64 = field(&out, "test_mse").parse().unwrap();
    assert!(mse < 1e-3, "y = 2x + 1 is learnt: test mse {mse}");
}

/// `netc run` on `net` with `files` fails with exit code 1 and a message holding every part.
#[track_caller]
fn run_fails(test: &str, net: &str, files: &[(&str, Vec<u8>)], parts: &[&str]) {
    let dir = temp_dir("fields", test);
    let net = setup(&dir, net, files);
    let (code, _, err) = netc(&["run", &net]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for p in parts {
        assert!(err.contains(p), "the message lacks `{p}`:\n{err}");
    }
}

const REGRESSION: &str = "model r(x: [B, 4]) -> pred: [B, 1] { x |> dense(1) }
data d {
  x: npy(\"x.npy\")
  y: npy(\"y.npy\", float, [1])
}
train r { loss: mse(pred, y); steps: 2 }
";

#[test]
fn a_field_of_the_wrong_size_names_the_file_and_the_field() {
    let files = [("x.npy", npy(&[5, 3], vec![0.0; 15])), ("y.npy", npy(&[5, 1], vec![0.0; 5]))];
    run_fails("wrong_size", REGRESSION, &files, &["x.npy: field `x` has 3 values per sample", "input `x` is [B, 4]"]);
    let files = [("x.npy", npy(&[5, 4], vec![0.0; 20])), ("y.npy", npy(&[5, 2], vec![0.0; 10]))];
    run_fails("wrong_target", REGRESSION, &files, &["y.npy: field `y` has 2 values per sample", "[B, 1]"]);
    let files = [("x.npy", npy(&[5, 4], vec![0.0; 20])), ("y.npy", npy(&[4, 1], vec![0.0; 4]))];
    run_fails("wrong_count", REGRESSION, &files, &["field `y` has 4 samples, but field `x`", "has 5"]);
}

#[test]
fn integer_fields_hold_whole_numbers_and_classes_in_range() {
    let net = "model c(x: [B, 2]) -> s: [B, 3] { x |> dense(3) }
data d {
  x: npy(\"x.npy\")
  t: npy(\"t.npy\", int)
}
train c { loss: cross_entropy(s, t); steps: 2 }
";
    let x = ("x.npy", npy(&[3, 2], vec![0.0; 6]));
    run_fails(
        "not_whole",
        net,
        &[x.clone(), ("t.npy", npy(&[3], [0.0, 1.0, 0.5]))],
        &["t.npy: field `t` is int, but its value at item 2 is 0.5, not a whole number"],
    );
    run_fails(
        "out_of_range",
        net,
        &[x, ("t.npy", npy(&[3], [0.0, 7.0, 1.0]))],
        &["t.npy: label 7 at item 1 is out of range for 3 classes (field `t`)"],
    );
}

#[test]
fn csv_columns_are_checked_by_name() {
    let net = "model r(x: [B, 2]) -> pred: [B, 1] { x |> dense(1) }
data d {
  x: csv(\"d.csv\", columns: [\"a\", \"bb\"])
  y: csv(\"d.csv\", columns: \"y\", shape: [1])
}
train r { loss: mse(pred, y); steps: 2 }
";
    let csv = ("d.csv", b"a,b,y\n1,2,3\n4,5,6\n".to_vec());
    run_fails("csv_column", net, &[csv], &["d.csv:1: no column named `bb` for the field `x`", "did you mean `b`?"]);
}

/// `netc check` on `net` fails with exit code 1 and a message holding every part.
#[track_caller]
fn check_fails(test: &str, net: &str, parts: &[&str]) {
    let dir = temp_dir("fields", test);
    let net = setup(&dir, net, &[]);
    let (code, _, err) = netc(&["check", &net]);
    assert_eq!(code, 1, "{err}");
    for p in parts {
        assert!(err.contains(p), "the message lacks `{p}`:\n{err}");
    }
}

#[test]
fn fields_are_checked_against_the_model_before_anything_runs() {
    check_fails(
        "missing_input",
        "model m(x: [B, 2], mask: [B, 2]) -> s: [B, 2] { x * mask }
data d { x: npy(\"x.npy\") }
train m { loss: mean(s) }
",
        &["model input `mask` has no field in data `d`", "the fields are: x"],
    );
    check_fails(
        "declared_shape",
        "model m(x: [B, 2]) -> s: [B, 2] { x }
data d { x: npy(\"x.npy\", float, [3]) }
train m { loss: mean(s) }
",
        &["field `x` is declared [B, 3], but the model input is [B, 2]"],
    );
    check_fails(
        "undeclared_target",
        "model m(x: [B, 2]) -> s: [B, 1] { x |> dense(1) }
data d { x: npy(\"x.npy\"); y: npy(\"y.npy\") }
train m { loss: mse(s, y) }
",
        &["the loss reads field `y`, whose per-sample shape is not declared", "y: npy(\"y.npy\", float, [1])"],
    );
    check_fails(
        "metric_mismatch",
        "model m(x: [B, 2]) -> s: [B, 3] { x |> dense(3) }
data d { x: npy(\"x.npy\"); y: npy(\"y.npy\", float, [1]) }
train m { loss: mean(s); metrics: [accuracy(s, y)] }
",
        &["accuracy cannot compare these", "accuracy needs an integer target; `y` is float"],
    );
    check_fails(
        "source_and_fields",
        "model m(x: [B, 2]) -> s: [B, 3] { x |> dense(3) }
data d { source: spiral(points: 10, classes: 3); y: npy(\"y.npy\") }
",
        &["a data block has a `source` or fields, not both"],
    );
    check_fails(
        "typo_setting",
        "data d { source: spiral(points: 10, classes: 3); shufle: false }
",
        &["field `shufle` must read a file", "did you mean the setting `shuffle`?"],
    );
}

/// A model input declared `int` is fed by an int field: its type comes from the input when not
/// declared, a `float` declaration is refused, and every id is checked against the axis it
/// indexes (and the classes a one-hot of it has) before a step runs — in training and in
/// `netc predict`.
#[test]
fn an_int_input_takes_an_int_field_of_ids_in_range() {
    let net = |ty: &str| {
        format!(
            "model m(tokens: [B, 3] int) -> s: [B, 2] {{
  mean(embedding(tokens, 5, 4), axis: 1) + mean(one_hot(tokens, 6), axis: 1)[:, 0:4] |> dense(2)
}}
data d {{
  tokens: npy(\"t.npy\"{ty})
  y: npy(\"y.npy\", int)
}}
train m {{ loss: cross_entropy(s, y); steps: 3; batch: 2 }}
"
        )
    };
    let y = ("y.npy", npy(&[3], [0.0, 1.0, 1.0]));
    let ids = |v: [f32; 9]| ("t.npy", npy(&[3, 3], v));
    let good = ids([0.0, 1.0, 2.0, 4.0, 4.0, 3.0, 0.0, 0.0, 1.0]);
    for ty in ["", ", int"] {
        let dir = temp_dir("fields", &format!("int_input{}", ty.len()));
        let path = setup(&dir, &net(ty), &[good.clone(), y.clone()]);
        let weights = dir.join("w.safetensors");
        let (code, _, err) = netc(&["run", &path, "--save", weights.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        // predict reads ids with the same checks.
        std::fs::write(dir.join("p.npy"), npy(&[1, 3], [4.0, 0.0, 2.0])).unwrap();
        std::fs::write(dir.join("bad.npy"), npy(&[2, 3], [4.0, 0.0, 2.0, 1.0, 5.0, 0.0])).unwrap();
        let input = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let out = dir.join("out.npy");
        let predict = |f: &str| {
            let args = [
                "predict",
                &path,
                "--load",
                weights.to_str().unwrap(),
                "--input",
                &input(f),
                "-o",
                out.to_str().unwrap(),
            ];
            netc(&args)
        };
        let (code, _, err) = predict("p.npy");
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = predict("bad.npy");
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("bad.npy: value 5 at item 1 of field `tokens` is not a valid id"), "{err}");
        assert!(err.contains("0..4"), "{err}");
    }
    run_fails(
        "int_input_not_whole",
        &net(""),
        &[ids([0.0, 1.0, 2.0, 4.0, 1.5, 3.0, 0.0, 0.0, 1.0]), y.clone()],
        &["t.npy: field `tokens` is int, but its value at item 1 is 1.5", "model input `tokens` is declared int"],
    );
    run_fails(
        "int_input_out_of_range",
        &net(""),
        &[ids([0.0, 1.0, 2.0, 4.0, 4.0, 3.0, 0.0, 5.0, 1.0]), y.clone()],
        &["t.npy: value 5 at item 2 of field `tokens` is not a valid id: it indexes an axis of 5", "0..4"],
    );
    run_fails(
        "int_input_negative",
        &net(""),
        &[ids([0.0, -1.0, 2.0, 4.0, 4.0, 3.0, 0.0, 0.0, 1.0]), y],
        &["t.npy: ", "-1 at item 0", "0..4"],
    );
    check_fails(
        "int_input_float_field",
        &net(", float"),
        &["field `tokens` is declared float, but the model input is int"],
    );
}
