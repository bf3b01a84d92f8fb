//! Slicing, indexing by tensors, concat/split/pad and batched products against an outside
//! reference: `tests/data/structure/reference.txt`, values computed by numpy (gradients by
//! numpy too, checked against PyTorch autograd where torch can express the case), written
//! once by `make_reference.py` beside it. Each case is an eval block run on the interpreter
//! and on the JIT: its value, and the gradient of L = Σ value ⊙ w with respect to each float
//! input, for a fixed w from the file.

use netc::commands::eval::{evaluate_with, Exec};

/// One case of the reference file.
struct Case {
    name: String,
    expr: String,
    /// (name, holds integers, shape, values)
    inputs: Vec<(String, bool, Vec<usize>, Vec<f64>)>,
    value: (Vec<usize>, Vec<f64>),
    weights: Vec<f64>,
    grads: Vec<(String, Vec<f64>)>,
}

/// `DIMS : VALUES` of a line's rest.
fn shaped(rest: &str) -> (Vec<usize>, Vec<f64>) {
    let (dims, values) = rest.split_once(':').expect("`dims : values`");
    let dims = dims.split_whitespace().map(|d| d.parse().unwrap()).collect();
    (dims, values.split_whitespace().map(|v| v.parse().unwrap()).collect())
}

fn read_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/structure/reference.txt"))
        .expect("the reference file is checked in");
    let mut cases = vec![];
    let mut current: Option<Case> = None;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        let c = current.as_mut();
        match key {
            "case" => {
                current = Some(Case {
                    name: rest.into(),
                    expr: String::new(),
                    inputs: vec![],
                    value: (vec![], vec![]),
                    weights: vec![],
                    grads: vec![],
                })
            }
            "expr" => c.unwrap().expr = rest.into(),
            "input" => {
                let mut words = rest.splitn(3, ' ');
                let (name, kind, dims) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
                let (shape, data) = shaped(dims);
                c.unwrap().inputs.push((name.into(), kind == "int", shape, data));
            }
            "value" => c.unwrap().value = shaped(rest),
            "weights" => c.unwrap().weights = shaped(rest).1,
            "grad" => {
                let (name, values) = rest.split_once(' ').unwrap();
                c.unwrap().grads.push((name.into(), shaped(values).1));
            }
            "end" => cases.push(current.take().unwrap()),
            other => panic!("unknown line `{other}` in the reference file"),
        }
    }
    cases
}

/// A nested list literal of `data` with `shape` (`{:?}` prints every f64 exactly).
fn literal(shape: &[usize], data: &[f64]) -> String {
    match shape.split_first() {
        None => format!("{:?}", data[0]),
        Some((&n, rest)) => {
            let step = data.len() / n.max(1);
            let parts: Vec<String> = (0..n).map(|i| literal(rest, &data[i * step..(i + 1) * step])).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

/// The eval block of a case: its inputs, the value, and grad of Σ value ⊙ w wrt the floats.
fn source(c: &Case) -> String {
    let mut s = String::from("eval reference {\n");
    for (name, _, shape, data) in &c.inputs {
        s.push_str(&format!("  let {name} = {}\n", literal(shape, data)));
    }
    s.push_str(&format!("  let w_ = {}\n", literal(&c.value.0, &c.weights)));
    s.push_str(&format!("  let value = {}\n  value\n", c.expr));
    let floats: Vec<&str> = c.inputs.iter().filter(|i| !i.1).map(|i| i.0.as_str()).collect();
    s.push_str(&format!("  let l_ = sum(value * w_)\n  grad l_ wrt {}\n}}\n", floats.join(", ")));
    s
}

fn assert_equal(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // Inputs are multiples of 1/8 and the sums short: every result is exact.
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{what}[{i}]: netc {g}, numpy {w}");
    }
}

#[test]
fn slicing_gather_concat_and_batched_products_match_numpy() {
    let cases = read_cases();
    assert!(cases.len() >= 25, "the reference file lost its cases");
    for c in &cases {
        let src = source(c);
        let checked = netc::frontend::check::check_source(&src).unwrap_or_else(|d| panic!("{}: {d:?}\n{src}", c.name));
        for exec in [Exec::Interp, Exec::Jit] {
            let what = format!("{} ({}) on {exec:?}", c.name, c.expr);
            let out = evaluate_with(&checked.evals[0], 0, exec).unwrap_or_else(|e| panic!("{what}: {e}"));
            let value = &out.shows[0].1;
            assert_eq!(value.shape, c.value.0, "{what}: shape");
            assert_equal(&what, &value.data, &c.value.1);
            let (_, _, grads) = &out.grads[0];
            assert_eq!(grads.len(), c.grads.len(), "{what}: one gradient per float input");
            for ((name, got), (want_name, want)) in grads.iter().zip(&c.grads) {
                assert_eq!(name, want_name);
                assert_equal(&format!("{what}: d/d{name}"), &got.data, want);
            }
        }
    }
}
