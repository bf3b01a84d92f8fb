//! Helpers of the suites that hold netc to PyTorch references checked in under
//! `tests/data/DIR/`: as `reference.json` (`activations_reference.rs`, `torch_reference.rs`):
//! the reference's numbers, eval blocks on both engines, and comparisons; as
//! `reference.safetensors` of f64 tensors (`torch_rnn.rs`, `torch_attention.rs`).

use std::collections::HashMap;

use netc::commands::eval::{evaluate_with, EvalOutput, Exec};
use netc::ir::tensor::Tensor;
use serde_json::Value;

/// `tests/data/{dir}/reference.safetensors`: its f64 tensors by name.
pub fn tensors(dir: &str) -> HashMap<String, Tensor> {
    let path = format!("{}/tests/data/{dir}/reference.safetensors", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.iter()
        .map(|(name, view)| {
            let data: Vec<f64> =
                view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
            (name.to_string(), Tensor::new(view.shape().to_vec(), data))
        })
        .collect()
}

/// |got − want| ≤ rel·max(|want|, 1e-2·max|want|) elementwise: relative, with elements far
/// below the tensor's scale compared against 1% of it.
pub fn assert_tensor_close(what: &str, got: &Tensor, want: &Tensor, rel: f64) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let scale = want.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        let tol = rel * b.abs().max(1e-2 * scale);
        assert!((a - b).abs() <= tol, "{what}[{i}]: netc {a}, torch {b}");
    }
}

/// `tests/data/{dir}/reference.json`.
pub fn load(dir: &str) -> Value {
    let path = format!("{}/tests/data/{dir}/reference.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A number of the reference: JSON numbers, or "inf", "-inf", "nan".
pub fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => match s.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => panic!("not a number: {other}"),
        },
        v => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

/// The numbers of a list, nested lists flattened.
pub fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().flat_map(nums_or_num).collect()
}

fn nums_or_num(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(_) => nums(v),
        v => vec![num(v)],
    }
}

/// Relative error allowed in float64: a few ulp. The JIT's inline exp, log, tanh, expm1 and
/// log1p are within 4 ulp and its erf within 1 ulp of libm's; torch's (glibc's) are within 1
/// ulp of the true value; derivatives compose two or three such functions.
pub const F64_REL: f64 = 4e-15;

/// `got` agrees with `want` within `rel·|want| + abs` (or 1e-300), the same infinity, or both
/// NaN.
pub fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= rel * want.abs() + abs + 1e-300
}

/// Every element `close` within `rel`.
pub fn assert_all_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_all_close_abs(what, got, want, rel, &vec![0.0; got.len()]);
}

/// Every element `close`; `abs[i]` is the absolute error allowed at element i.
pub fn assert_all_close_abs(what: &str, got: &[f64], want: &[f64], rel: f64, abs: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    let bad: Vec<String> = (0..got.len())
        .filter(|&i| !close(got[i], want[i], rel, abs[i]))
        .map(|i| format!("[{i}] netc {:e}, torch {:e}", got[i], want[i]))
        .collect();
    assert!(bad.is_empty(), "{what}: {} of {} differ:\n  {}", bad.len(), got.len(), bad.join("\n  "));
}

/// A number as netc source (`1e-300`, `-7e2`; the language has no literal for inf or NaN).
pub fn lit(v: f64) -> String {
    assert!(v.is_finite());
    format!("{v:e}")
}

/// `[a, b, …]`.
pub fn list(vs: &[f64]) -> String {
    format!("[{}]", vs.iter().map(|&v| lit(v)).collect::<Vec<_>>().join(", "))
}

/// The eval block `src` (one block) on the JIT and on the interpreter.
pub fn eval_both(src: &str) -> Vec<(Exec, EvalOutput)> {
    let checked = netc::frontend::check::check_source(src).unwrap_or_else(|d| panic!("{src}\n{d:#?}"));
    [Exec::Jit, Exec::Interp]
        .into_iter()
        .map(|exec| {
            (exec, evaluate_with(&checked.evals[0], 0, exec).unwrap_or_else(|e| panic!("{exec:?}: {e}\n{src}")))
        })
        .collect()
}

/// The gradient of `grad f wrt ...` for its variable `name`.
pub fn grad<'a>(out: &'a EvalOutput, name: &str) -> &'a [f64] {
    let (_, _, per_var) = &out.grads[0];
    &per_var.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no gradient wrt {name}")).1.data
}

/// The values of the block's `i`th shown expression.
pub fn shown(out: &EvalOutput, i: usize) -> &[f64] {
    &out.shows[i].1.data
}
