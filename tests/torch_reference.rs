//! netc against PyTorch, not against itself: values and first derivatives of every
//! elementwise built-in at special points (0, ±tiny, ±large, the kinks), pow's special cases,
//! ties of max/min and of reduced maxima, the losses, and three float32 steps of Adam and
//! AdamW. The references were computed once by `tests/data/torch/make_reference.py` (PyTorch,
//! float64; float32 for the optimizers) and are checked in as `reference.json` beside it.
//!
//! Eval blocks run in float64 on both engines (the JIT, whose transcendentals are inline
//! polynomials, and the interpreter); training runs `netc run` in float32.

use crate::common;

use common::reference::{self, assert_all_close, close, eval_both, grad, list, lit, num, nums, shown, F64_REL};
use serde_json::Value;

/// Rows of numbers as a matrix literal.
fn matrix(rows: &Value) -> String {
    let rows: Vec<String> = rows.as_array().unwrap().iter().map(|r| list(&nums(r))).collect();
    format!("[{}]", rows.join(", "))
}

#[test]
fn elementwise_built_ins_at_special_points() {
    let r = reference::load("torch");
    let table = r["elementwise"].as_array().unwrap();
    assert_eq!(table.len(), 13, "every elementwise built-in and the alphas that matter");
    for entry in table {
        let expr = entry["expr"].as_str().unwrap();
        let x = nums(&entry["x"]);
        let src =
            format!("eval t {{\n  let x = {}\n  let y = {expr}\n  let f = sum(y)\n  y\n  grad f wrt x\n}}\n", list(&x));
        for (exec, out) in eval_both(&src) {
            let what = format!("{expr} ({exec:?}) at {x:?}");
            assert_all_close(&format!("{what}: value"), shown(&out, 0), &nums(&entry["y"]), F64_REL);
            assert_all_close(&format!("{what}: derivative"), grad(&out, "x"), &nums(&entry["dy"]), F64_REL);
        }
    }
}

#[test]
fn softplus_is_accurate_far_below_zero() {
    // ln(1 + e^x) rounds 1 + e^-40 to 1 and gives 0; the true value is e^-40 = 4.2e-18.
    let src = "eval t {\n  let x = [-40, -30, -745]\n  softplus(x)\n}\n";
    for (exec, out) in eval_both(src) {
        let y = shown(&out, 0);
        assert!(close(y[0], 4.248354255291589e-18, F64_REL, 0.0), "{exec:?}: {y:?}");
        assert!(close(y[1], 9.357622968839737e-14, F64_REL, 0.0), "{exec:?}: {y:?}");
        assert!(y[2] >= 0.0 && y[2] < 1e-300, "{exec:?}: {y:?}");
    }
}

#[test]
fn pow_special_cases() {
    let r = reference::load("torch");
    let p = &r["pow"]["general"];
    let (a, b) = (nums(&p["a"]), nums(&p["b"]));
    let src = format!(
        "eval t {{\n  let a = {}\n  let b = {}\n  let y = a ** b\n  let f = sum(y)\n  y\n  grad f wrt a, b\n}}\n",
        list(&a),
        list(&b)
    );
    for (exec, out) in eval_both(&src) {
        let what = format!("a ** b ({exec:?}) at a = {a:?}, b = {b:?}");
        assert_all_close(&format!("{what}: value"), shown(&out, 0), &nums(&p["y"]), F64_REL);
        assert_all_close(&format!("{what}: d/da"), grad(&out, "a"), &nums(&p["da"]), F64_REL);
        assert_all_close(&format!("{what}: d/db"), grad(&out, "b"), &nums(&p["db"]), F64_REL);
    }
    // A constant exponent has its own rule (x ** 2 is x·x): d/dx x^0 = 0 also at x = 0.
    for case in r["pow"]["constant"].as_array().unwrap() {
        let (c, x) = (num(&case["c"]), nums(&case["x"]));
        let src = format!(
            "eval t {{\n  let x = {}\n  let y = x ** {}\n  let f = sum(y)\n  y\n  grad f wrt x\n}}\n",
            list(&x),
            lit(c)
        );
        for (exec, out) in eval_both(&src) {
            let what = format!("x ** {c} ({exec:?}) at {x:?}");
            assert_all_close(&format!("{what}: value"), shown(&out, 0), &nums(&case["y"]), F64_REL);
            assert_all_close(&format!("{what}: d/dx"), grad(&out, "x"), &nums(&case["dx"]), F64_REL);
        }
    }
}

#[test]
fn max_and_min_of_two_split_ties_and_agree_in_both_orders() {
    let r = reference::load("torch");
    let t = &r["ties"];
    let (a, b, w) = (list(&nums(&t["a"])), list(&nums(&t["b"])), list(&nums(&t["w"])));
    for f in ["max", "min"] {
        for (first, second) in [("a", "b"), ("b", "a")] {
            let src = format!(
                "eval t {{\n  let a = {a}\n  let b = {b}\n  let w = {w}\n  let f = sum({f}({first}, {second}) * w)\n  grad f wrt a, b\n}}\n"
            );
            for (exec, out) in eval_both(&src) {
                let what = format!("{f}({first}, {second}) ({exec:?})");
                assert_all_close(&format!("{what}: d/da"), grad(&out, "a"), &nums(&t[f]["da"]), 0.0);
                assert_all_close(&format!("{what}: d/db"), grad(&out, "b"), &nums(&t[f]["db"]), 0.0);
            }
        }
    }
}

#[test]
fn reduced_max_and_min_split_ties_among_the_maxima() {
    let r = reference::load("torch");
    let t = &r["ties"];
    let m = matrix(&t["m"]);
    for (f, torch) in [("max", "amax"), ("min", "amin")] {
        for (axis, key) in [("axis: 1", "1"), ("axis: 0", "0"), ("axis: [0, 1]", "01")] {
            let want = &t[format!("{torch}{key}")];
            let n = nums(&want["y"]).len();
            let weights: Vec<f64> = (1..=n).map(|i| i as f64).collect();
            let src = format!(
                "eval t {{\n  let m = {m}\n  let y = {f}(m, {axis})\n  let f = sum(y * {})\n  y\n  grad f wrt m\n}}\n",
                list(&weights)
            );
            for (exec, out) in eval_both(&src) {
                let what = format!("{f}(m, {axis}) ({exec:?})");
                assert_all_close(&format!("{what}: value"), shown(&out, 0), &nums(&want["y"]), 0.0);
                assert_all_close(&format!("{what}: d/dm"), grad(&out, "m"), &nums(&want["dx"]), 0.0);
            }
        }
    }
}

#[test]
fn losses_average_as_documented() {
    let r = reference::load("torch");
    let l = &r["losses"];
    let (s, t) = (matrix(&l["scores"]), matrix(&l["targets"]));
    let labels = list(&nums(&l["labels"]));
    let run = |expr: &str| {
        let src = format!(
            "eval t {{\n  let s = {s}\n  let t = {t}\n  let labels = {labels}\n  let f = {expr}\n  grad f wrt s, t\n}}\n"
        );
        eval_both(&src)
    };
    // cross_entropy: the mean over the batch of -log softmax(s)[label]
    for (exec, out) in run("cross_entropy(s, labels)") {
        let what = format!("cross_entropy ({exec:?})");
        assert!(close(out.grads[0].1.data[0], num(&l["cross_entropy"]["value"]), 1e-14, 0.0), "{what}");
        assert_all_close(&what, grad(&out, "s"), &nums(&l["cross_entropy"]["ds"]), 1e-14);
    }
    // mse: the mean over all elements (torch's mse_loss), not over the batch only
    for (exec, out) in run("mse(s, t)") {
        let what = format!("mse ({exec:?})");
        assert!(close(out.grads[0].1.data[0], num(&l["mse"]["value"]), 1e-14, 0.0), "{what}");
        assert_all_close(&what, grad(&out, "s"), &nums(&l["mse"]["ds"]), 1e-14);
        assert_all_close(&what, grad(&out, "t"), &nums(&l["mse"]["dt"]), 1e-14);
    }
    // svm: CS231n's sum over j != y, mean over the batch = classes × multi_margin_loss; a score
    // exactly at the margin contributes no gradient (relu'(0) = 0, as in PyTorch)
    for key in ["svm_margin_1.0", "svm_margin_0.5"] {
        let margin = num(&l[key]["margin"]);
        for (exec, out) in run(&format!("svm(s, labels, margin: {})", lit(margin))) {
            let what = format!("svm margin {margin} ({exec:?})");
            assert!(close(out.grads[0].1.data[0], num(&l[key]["value"]), 1e-14, 0.0), "{what}");
            assert_all_close(&what, grad(&out, "s"), &nums(&l[key]["ds"]), 1e-14);
        }
    }
}

/// Three float32 steps of each optimizer configuration of the reference, through `netc run`
/// (`--load` the initial weights, `--save` the result), against torch.optim.Adam / AdamW.
#[test]
fn adam_and_adamw_match_torch_over_three_steps() {
    let r = reference::load("torch");
    let o = &r["optimizers"];
    let dir = common::temp_dir("torch_reference", "adam");
    let x: Vec<Vec<f64>> = o["x"].as_array().unwrap().iter().map(nums).collect();
    let labels = nums(&o["labels"]);
    let mut csv = String::from("a,b,label\n");
    for (row, y) in x.iter().zip(&labels) {
        csv.push_str(&format!("{},{},{}\n", row[0], row[1], y));
    }
    std::fs::write(dir.join("d.csv"), csv).unwrap();
    let w0: Vec<f32> = nums(&o["W"]).iter().map(|&v| v as f32).collect();
    let b0: Vec<f32> = nums(&o["b"]).iter().map(|&v| v as f32).collect();
    let init = dir.join("init.safetensors");
    netc::runtime::weights::save(&init, &[("W", &[2, 3], &w0), ("b", &[3], &b0)]).unwrap();
    let runs = o["runs"].as_array().unwrap();
    for run in runs {
        let name = run["name"].as_str().unwrap();
        let src = format!(
            "model m(x: [B, 2]) -> scores: [B, 3] {{\n  param W: [2, 3] = zeros\n  param b: [3] = zeros\n  x @ W + b\n}}\n\
             data d {{\n  source: csv(\"d.csv\", label: \"label\")\n  shuffle: false\n}}\n\
             train m {{\n  loss: cross_entropy(scores, labels)\n  optimizer: {}\n  weight_decay: {}\n  steps: 3\n  batch: 6\n}}\n",
            run["optimizer"].as_str().unwrap(),
            num(&run["weight_decay"])
        );
        let file = dir.join(&format!("{name}.net"));
        std::fs::write(&file, src).unwrap();
        let out = dir.join(&format!("{name}.safetensors"));
        let (f, i, o) = (file.to_str().unwrap(), init.to_str().unwrap(), out.to_str().unwrap());
        let (code, _, err) = common::netc(&["run", f, "--load", i, "--save", o, "--quiet"]);
        assert_eq!(code, 0, "{name}: {err}");
        let weights = netc::runtime::weights::load(&out).unwrap();
        for p in ["W", "b"] {
            let got: Vec<f64> = weights.iter().find(|w| w.name == p).unwrap().data.iter().map(|&v| v as f64).collect();
            // The parameters moved (by ~3·lr), and agree with torch to 1e-5 of their value.
            let start = if p == "W" { &w0 } else { &b0 };
            assert!(
                got.iter().zip(start.iter()).any(|(g, s)| (g - *s as f64).abs() > 1e-3),
                "{name}: {p} did not move"
            );
            assert_all_close(&format!("{name}: {p} after 3 steps"), &got, &nums(&run[p]), 1e-5);
        }
    }
    assert!(runs.iter().any(|r| r["name"] == "adam_eps1e-2") && runs.iter().any(|r| r["name"] == "adamw"));
}
