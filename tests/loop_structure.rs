//! Loops together with tensor structure and modes: per-step slices along any axis
//! (`x[:, t]`, `x[1, t]`, `x[:, t, 1:]`), `if training` inside a loop body (the branch that is
//! checked and rolled back must not leave the loop a dangling per-step slice), integer token
//! ids sliced per step, and state updates refused inside a body.

use crate::common;

use netc::commands::eval::{evaluate_with, Exec};
use netc::frontend::check::check_source;
use netc::ir::gradcheck;
use netc::ir::graph::NodeId;
use netc::ir::interp;
use netc::ir::tensor::Tensor;

use common::varied_literal as literal;

#[test]
fn a_step_slice_along_any_axis_matches_slicing_a_transposed_copy_in_values_and_gradients() {
    let src = format!(
        "eval slices {{
  let x = {x}
  let W = {w}
  let U = {u}
  let V = {v}
  let xs = transpose(x, perm: [1, 0, 2])
  let h = zeros([2, 4])
  let g = zeros([2, 4])
  let k = zeros([4])
  for t in range(1, 5) carry (h, g, k) {{
    let h = tanh(h @ W + x[:, t] @ U)
    let g = tanh(g @ W + xs[t] @ U)
    let k = tanh(k + x[1, t] @ U + sum(x[:, t, 1:] @ V, axis: 0))
    yield hs = h
  }}
  h - g
  let f = sum(h * h) + sum(hs * hs) + sum(k * k)
  grad f wrt x, W, U, V
}}",
        x = literal(&[2, 5, 3], 1),
        w = literal(&[4, 4], 2),
        u = literal(&[3, 4], 3),
        v = literal(&[2, 4], 4)
    );
    let checked = check_source(&src).unwrap_or_else(|d| panic!("{d:?}"));
    let e = &checked.evals[0];
    for exec in [Exec::Interp, Exec::Jit] {
        let out = evaluate_with(e, 0, exec).unwrap();
        let (_, diff) = &out.shows[0];
        assert_eq!(diff.shape, vec![2, 4]);
        assert!(diff.data.iter().all(|d| d.abs() < 1e-12), "{exec:?}: x[:, t] and xs[t] differ: {:?}", diff.data);
    }
    let req = &e.grads[0];
    let wrt: Vec<NodeId> = req.wrt.iter().map(|w| w.1).collect();
    let reports = gradcheck::check_elements(&e.graph, req.of, &wrt, &e.values, &[], 1e-6, usize::MAX).unwrap();
    for r in reports {
        assert!(r.max_rel_error < 1e-6, "d/d{} relative error {:e}", r.name, r.max_rel_error);
    }
    let jit = evaluate_with(e, 0, Exec::Jit).unwrap();
    let interp = evaluate_with(e, 0, Exec::Interp).unwrap();
    for (a, b) in jit.grads[0].2.iter().zip(&interp.grads[0].2) {
        for (p, q) in a.1.data.iter().zip(&b.1.data) {
            assert!((p - q).abs() <= 1e-12 * (1.0 + q.abs()), "d/d{}: jit {p} vs interpreter {q}", a.0);
        }
    }
}

/// The output of the first model of `src` on `x`, by the interpreter, parameters of seed 0.
fn run_model(src: &str, x: &Tensor) -> Tensor {
    let checked = check_source(src).unwrap_or_else(|d| panic!("{d:?}"));
    let g = &checked.models[0].graph;
    let params = netc::runtime::params::init_params(g, 0);
    interp::outputs(g, std::slice::from_ref(x), &params).unwrap().remove(0)
}

#[test]
fn if_training_in_a_loop_body_slices_the_step_in_both_branches() {
    // Checking the model for inference checks the training branch (in training mode) first
    // and rolls it back; both branches slice x[:, t].
    let with_if = "model m(x: [B, 4, 3]) -> y: [B, 5] {
  param U: [3, 5] = normal(0.5)
  let h = zeros([x.shape[0], 5])
  for t in range(4) carry (h) {
    let z = if training { dropout(x[:, t], 0.5) @ U } else { x[:, t] @ U }
    let h = tanh(h + z + t)
  }
  h
}
";
    let plain = with_if.replace("if training { dropout(x[:, t], 0.5) @ U } else { x[:, t] @ U }", "x[:, t] @ U");
    let x = Tensor::new(vec![2, 4, 3], (0..24).map(|i| (i as f64 * 0.37).sin()).collect());
    let want = run_model(&plain, &x);
    let got = run_model(with_if, &x);
    assert_eq!(got.shape, vec![2, 5]);
    assert_eq!(got.data, want.data);
}

#[test]
fn token_ids_sliced_per_step_index_an_embedding() {
    let src = "model lm(tokens: [B, 6] int) -> hs: [B, 6, 4] {
  param E: [7, 4] = normal(1)
  let h = zeros([tokens.shape[0], 4])
  for t in range(6) carry (h) {
    let h = tanh(h + E[tokens[:, t]])
    yield hs = h
  }
  hs
}
";
    let checked = check_source(src).unwrap_or_else(|d| panic!("{d:?}"));
    let g = &checked.models[0].graph;
    // The data loader bounds the ids by what the loop body gathers with them.
    assert_eq!(g.index_use(0).rows, Some(7));
    let ids: Vec<f64> = (0..12).map(|i| ((i * 5) % 7) as f64).collect();
    let tokens = Tensor::new(vec![2, 6], ids.clone());
    let params = netc::runtime::params::init_params(g, 0);
    let hs = interp::outputs(g, std::slice::from_ref(&tokens), &params).unwrap().remove(0);
    // The recurrence by hand: h_t = tanh(h_{t-1} + E[id_t]) (the model computes in f32).
    let e = &params[0];
    for b in 0..2 {
        let mut h = [0.0; 4];
        for t in 0..6 {
            let id = ids[b * 6 + t] as usize;
            for j in 0..4 {
                h[j] = (h[j] + e.data[id * 4 + j]).tanh();
                let got = hs.data[(b * 6 + t) * 4 + j];
                assert!((got - h[j]).abs() < 1e-6, "sample {b} step {t}: {got} vs {}", h[j]);
            }
        }
    }
}

fn errors(src: &str) -> String {
    match check_source(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(d) => format!("{d:?}"),
    }
}

#[test]
fn state_updates_inside_a_loop_body_are_refused() {
    let direct = "model m(x: [B, 4, 3]) -> y: [B, 3] {
  state total: [3] = zeros
  let h = zeros([x.shape[0], 3])
  for t in range(4) carry (h) {
    let h = h + x[:, t]
    total <- total + sum(h, axis: 0)
  }
  h
}
";
    let e = errors(direct);
    assert!(e.contains("a state update (`<-`) cannot be inside a loop body"), "{e}");
    // batchnorm's running statistics, updated by a layer called in the body: its new value
    // would change from step to step.
    let called = "model m(x: [B, 4, 3]) -> y: [B, 3] {
  let h = zeros([x.shape[0], 3])
  for t in range(4) carry (h) {
    let h = batchnorm(h + x[:, t])
  }
  h
}
data d { source: synthetic(samples: 8, classes: 3, seed: 1) }
train m {
  loss: cross_entropy(y, labels)
  optimizer: sgd(lr: 0.1)
}
";
    let e = errors(called);
    assert!(e.contains("is updated in the loop's body"), "{e}");
}
