//! Loops (`Op::Loop`) built as IR: values against a hand-unrolled graph, gradients against
//! central differences in f64 at T = 1, 2, 7 (carried state, shared weights, per-step inputs
//! and outputs), and the JIT against the interpreter in f32 and f64.

use crate::common;

use std::sync::Arc;

use netc::codegen::CompileOptions;
use netc::drivers::jit;
use netc::ir::gradcheck;
use netc::ir::graph::{DType, Dim, Graph, Init, InputKind, LoopSpec, NodeId, Op, ParamRole, Shape, Slicing};
use netc::ir::interp;
use netc::ir::tensor::Tensor;

fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&n| Dim::Known(n)).collect()
}

fn spread(shape: &[usize], seed: usize, lo: f64, hi: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|k| lo + (hi - lo) * (((k + 1) * 7 + seed * 13) as f64 * 0.618_033_988_749_895).fract());
    Tensor::new(shape.to_vec(), data.collect())
}

/// The Elman cell h' = tanh(h @ W + x_t @ U + b) over x [T, 2, 3]: carry h [2, 4], per-step
/// output h' stacked on axis 1 ([2, T, 4]), invariants W, U, b.
fn rnn_spec(t: usize, reverse: bool) -> Arc<LoopSpec> {
    let mut body = Graph::new(DType::F64);
    let h = body.add_input("h", known(&[2, 4]), InputKind::Variable);
    let x = body.add_input("x_t", known(&[2, 3]), InputKind::Variable);
    let w = body.add_input("W", known(&[4, 4]), InputKind::Variable);
    let u = body.add_input("U", known(&[3, 4]), InputKind::Variable);
    let b = body.add_input("b", known(&[4]), InputKind::Variable);
    let mm = |g: &mut Graph, a, b| g.add(Op::matmul(false, false), &[a, b]).unwrap();
    let hw = mm(&mut body, h, w);
    let xu = mm(&mut body, x, u);
    let s = body.add(Op::Add, &[hw, xu]).unwrap();
    let s = body.add(Op::Add, &[s, b]).unwrap();
    let h2 = body.add(Op::Tanh, &[s]).unwrap();
    body.outputs = vec![("h".into(), h2), ("hs".into(), h2)];
    Arc::new(LoopSpec::new(body, t, reverse, 1, vec![Slicing::along(0)], vec![Slicing::along(1)]).unwrap())
}

/// L = Σ a ⊙ h_T + Σ c ⊙ hs over the loop of `rnn_spec`; returns (graph, L, [h0, x, W, U, b]).
fn rnn_graph(t: usize, reverse: bool, dtype: DType) -> (Graph, NodeId, Vec<NodeId>) {
    let mut g = Graph::new(dtype);
    let h0 = g.add_param("h0", known(&[2, 4]), Init::Zeros);
    let x = g.add_param("x", known(&[t, 2, 3]), Init::Zeros);
    let w = g.add_param("W", known(&[4, 4]), Init::Zeros);
    let u = g.add_param("U", known(&[3, 4]), Init::Zeros);
    let b = g.add_param("b", known(&[4]), Init::Zeros);
    let spec = rnn_spec(t, reverse);
    let ops = [h0, x, w, u, b];
    let last = g.add(Op::Loop { spec: spec.clone(), output: 0 }, &ops).unwrap();
    let all = g.add(Op::Loop { spec, output: 1 }, &ops).unwrap();
    assert_eq!(g.shape(all), &known(&[2, t, 4]));
    let a = g.add_param("a", known(&[2, 4]), Init::Zeros);
    let c = g.add_param("c", known(&[2, t, 4]), Init::Zeros);
    let la = g.add(Op::Mul, &[last, a]).unwrap();
    let la = g.add(Op::Sum { axes: vec![0, 1] }, &[la]).unwrap();
    let lc = g.add(Op::Mul, &[all, c]).unwrap();
    let lc = g.add(Op::Sum { axes: vec![0, 1, 2] }, &[lc]).unwrap();
    let l = g.add(Op::Add, &[la, lc]).unwrap();
    g.outputs = vec![("L".into(), l)];
    (g, l, ops.to_vec())
}

fn rnn_params(t: usize) -> Vec<Tensor> {
    vec![
        spread(&[2, 4], 1, -0.5, 0.5),
        spread(&[t, 2, 3], 2, -1.0, 1.0),
        spread(&[4, 4], 3, -0.6, 0.6),
        spread(&[3, 4], 4, -0.6, 0.6),
        spread(&[4], 5, -0.3, 0.3),
        spread(&[2, 4], 6, -1.0, 1.0),
        spread(&[2, t, 4], 7, -1.0, 1.0),
    ]
}

/// The same recurrence unrolled by hand, step by step, in the interpreter's f64.
fn unrolled(t: usize, reverse: bool, p: &[Tensor]) -> f64 {
    let (h0, x, w, u, b, a, c) = (&p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &p[6]);
    let mut h = h0.data.clone();
    let mut total = 0.0;
    for s in 0..t {
        let ti = if reverse { t - 1 - s } else { s };
        let mut next = vec![0.0; 8];
        for r in 0..2 {
            for j in 0..4 {
                let mut acc = b.data[j];
                for k in 0..4 {
                    acc += h[r * 4 + k] * w.data[k * 4 + j];
                }
                for k in 0..3 {
                    acc += x.data[(ti * 2 + r) * 3 + k] * u.data[k * 4 + j];
                }
                next[r * 4 + j] = acc.tanh();
            }
        }
        for r in 0..2 {
            for j in 0..4 {
                total += next[r * 4 + j] * c.data[(r * t + ti) * 4 + j];
            }
        }
        h = next;
    }
    total + h.iter().zip(&a.data).map(|(h, a)| h * a).sum::<f64>()
}

#[test]
fn a_loop_computes_what_the_unrolled_recurrence_does() {
    for t in [1, 2, 7] {
        for reverse in [false, true] {
            let (g, l, _) = rnn_graph(t, reverse, DType::F64);
            let p = rnn_params(t);
            let got = interp::value(&g, l, &[], &p).unwrap().data[0];
            let want = unrolled(t, reverse, &p);
            assert!((got - want).abs() < 1e-12 * want.abs().max(1.0), "T={t} reverse={reverse}: {got} vs {want}");
        }
    }
}

#[test]
fn gradients_through_loops_match_central_differences() {
    for t in [1, 2, 7] {
        for reverse in [false, true] {
            let (g, l, wrt) = rnn_graph(t, reverse, DType::F64);
            let p = rnn_params(t);
            let reports = gradcheck::check_elements(&g, l, &wrt, &[], &p, 1e-6, usize::MAX).unwrap();
            for r in reports {
                assert!(r.max_rel_error < 1e-6, "T={t} reverse={reverse} d/d{}: {:e}", r.name, r.max_rel_error);
            }
        }
    }
}

#[test]
fn compiled_loops_and_their_gradients_match_the_interpreter() {
    for t in [1, 2, 7] {
        for dtype in [DType::F32, DType::F64] {
            let (mut g, l, wrt) = rnn_graph(t, t == 2, dtype);
            let grads = netc::ir::autodiff::differentiate(&mut g, l, &wrt).unwrap();
            for (k, d) in grads.iter().enumerate() {
                g.outputs.push((format!("d{k}"), *d));
            }
            let p: Vec<Tensor> = rnn_params(t)
                .into_iter()
                .map(|t| {
                    if dtype == DType::F32 {
                        Tensor::new(t.shape.clone(), t.data.iter().map(|&v| v as f32 as f64).collect())
                    } else {
                        t
                    }
                })
                .collect();
            let want = interp::outputs(&g, &[], &p).unwrap();
            for optimize in [false, true] {
                let mut g = g.clone();
                if optimize {
                    netc::ir::opt::optimize(&mut g, None).unwrap();
                }
                let mut c = jit::compile(&g, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e:?}"));
                let mut params = p.clone();
                let got = c.run_tensors(&[], &mut params).unwrap();
                let tol = if dtype == DType::F32 { 1e-4 } else { 1e-12 };
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(a.shape, b.shape);
                    for (x, y) in a.data.iter().zip(&b.data) {
                        assert!(
                            (x - y).abs() <= tol * (1.0 + y.abs()),
                            "T={t} {dtype} opt={optimize} output {k}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}

// ---- loops written in the language -------------------------------------------------------------

use netc::commands::eval::{evaluate_with, Exec};
use netc::frontend::check::check_source;

use common::varied_literal as literal;

/// Every `grad` request of every eval block in `src` against central differences (all
/// elements), and its values and gradients compiled against the interpreter.
fn check_evals(what: &str, src: &str) {
    let checked = check_source(src).unwrap_or_else(|d| panic!("{what}: {d:?}"));
    assert!(!checked.evals.is_empty());
    for e in &checked.evals {
        for req in &e.grads {
            let wrt: Vec<NodeId> = req.wrt.iter().map(|w| w.1).collect();
            let params = netc::runtime::params::init_params(&e.graph, 0);
            let reports = gradcheck::check_elements(&e.graph, req.of, &wrt, &e.values, &params, 1e-6, usize::MAX)
                .unwrap_or_else(|err| panic!("{what}: {err}"));
            for r in reports {
                assert!(r.skipped.is_empty(), "{what}: d/d{} sits on a kink", r.name);
                assert!(r.max_rel_error < 1e-6, "{what}: d/d{} relative error {:e}", r.name, r.max_rel_error);
            }
        }
        let jit = evaluate_with(e, 0, Exec::Jit).unwrap_or_else(|err| panic!("{what}: {err}"));
        let interp = evaluate_with(e, 0, Exec::Interp).unwrap();
        for (a, b) in jit.grads.iter().zip(&interp.grads) {
            let pairs = std::iter::once((&a.1, &b.1)).chain(a.2.iter().zip(&b.2).map(|(x, y)| (&x.1, &y.1)));
            for (x, y) in pairs {
                for (p, q) in x.data.iter().zip(&y.data) {
                    assert!((p - q).abs() <= 1e-12 * (1.0 + q.abs()), "{what}: jit {p} vs interpreter {q}");
                }
            }
        }
    }
}

#[test]
fn carried_state_shared_weights_and_per_step_outputs_are_differentiated() {
    for t in [1, 2, 7] {
        let src = format!(
            "eval rnn {{
  let x = {x}
  let h0 = {h0}
  let W = {w}
  let U = {u}
  let c = {c}
  let h = h0
  for t in range(shape_t) carry (h) {{
    let h = tanh(h @ W + x[t] @ U)
    yield hs = h
  }}
  let f = sum(h * h) + sum(hs * c)
  grad f wrt x, h0, W, U
}}",
            x = literal(&[t, 2, 3], 1),
            h0 = literal(&[2, 4], 2),
            w = literal(&[4, 4], 3),
            u = literal(&[3, 4], 4),
            c = literal(&[2, t, 4], 5),
        )
        .replace("shape_t", &t.to_string());
        check_evals(&format!("rnn T={t}"), &src);
    }
}

#[test]
fn two_carries_a_reversed_range_and_the_step_index_are_differentiated() {
    // An LSTM-like cell with two carries, run backwards over indices 1..6 of x, with the step
    // index t entering the arithmetic.
    let src = format!(
        "eval cell {{
  let x = {x}
  let W = {w}
  let U = {u}
  let h0 = [[0.1, -0.2, 0.3], [0.0, 0.2, -0.1]]
  let c0 = [[0.0, 0.1, 0.0], [0.2, 0.0, -0.3]]
  let h = h0
  let c = c0
  for t in reversed(range(1, 6)) carry (h, c) {{
    let gates = x[t] @ U + h @ W
    let i = sigmoid(gates)
    let c = c * sigmoid(gates + 1) + i * tanh(gates) * (1 + 0.1 * t)
    let h = tanh(c) * i
    yield cs = c, axis: 0
  }}
  let f = sum(h * c) + sum(cs * cs)
  grad f wrt x, W, U, h0, c0
}}",
        x = literal(&[7, 2, 4], 6),
        w = literal(&[3, 3], 7),
        u = literal(&[4, 3], 8),
    );
    check_evals("lstm-like", &src);
}

#[test]
fn nested_loops_are_differentiated() {
    // An outer loop over rows, an inner loop over columns carrying a running product.
    let src = format!(
        "eval nested {{
  let x = {x}
  let a = {a}
  let s = [0.5, -0.5]
  for i in range(3) carry (s) {{
    let p = s
    for j in range(4) carry (p) {{
      let p = tanh(p * x[i][j] + a)
    }}
    let s = s + p
    yield ps = p, axis: 0
  }}
  let f = sum(s * s) + sum(ps)
  grad f wrt x, a
}}",
        x = literal(&[3, 4, 2], 9),
        a = literal(&[2], 10),
    );
    check_evals("nested", &src);
}

#[test]
fn a_layer_in_the_body_has_one_set_of_parameters_shared_by_every_step() {
    let src = "model m(x: [B, 6, 3]) -> scores: [B, 2] {
  let xs = transpose(x, perm: [1, 0, 2])
  let h = tanh(xs[0] @ ones_3x5)
  for t in range(6) carry (h) {
    let z = dense(concat_free(h, xs[t]), 5)
    let h = tanh(z)
  }
  dense(h, 2)
}
fn concat_free(h, x) = h + x @ ones_3x5
data d { source: synthetic(samples: 20, classes: 2, seed: 4) }
train m {
  loss: cross_entropy(scores, labels)
  optimizer: sgd(lr: 0.1)
  steps: 3
  batch: 5
}
"
    .replace("ones_3x5", "[[1, 0.5, 0, -0.5, 1], [0, 1, 0.5, 0, -1], [0.5, 0, 1, 1, 0]]");
    let checked = check_source(&src).unwrap_or_else(|d| panic!("{d:?}"));
    let names: Vec<&str> = checked.models[0].graph.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["z.W", "z.b", "dense_1.W", "dense_1.b"], "one instance of each layer");
    for target in netc::commands::graph::targets(&checked, 3, "gradcheck").unwrap() {
        let wrt: Vec<NodeId> = target.wrt.iter().map(|w| w.1).collect();
        let reports = gradcheck::check(&target.graph, target.of, &wrt, &target.inputs, &target.params, 1e-6).unwrap();
        for r in reports {
            assert!(r.max_rel_error < 1e-6, "d/d{}: {:e}", r.name, r.max_rel_error);
        }
    }
    // Trained on both engines (f32): the same losses.
    let dir = std::env::temp_dir().join(format!("netc-loops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shared.net");
    std::fs::write(&file, &src).unwrap();
    let run = |engine: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(["run", file.to_str().unwrap(), "--json", "--quiet", "--engine", engine])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (jit, interp) = (run("jit"), run("interp"));
    let loss = |s: &str| -> f64 {
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"));
        v["final_loss"].as_f64().unwrap_or_else(|| panic!("no final_loss in {s}"))
    };
    assert!((loss(&jit) - loss(&interp)).abs() < 1e-5, "{jit}\n{interp}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_bias_used_only_inside_a_loop_body_is_a_bias() {
    // gru adds bias_ih_l0 and bias_hh_l0 inside its body; weight decay and l2() skip biases.
    for layer in ["rnn", "lstm", "gru"] {
        let src = format!("model m(x: [B, 4, 3]) -> y: [B, 4, 5] {{\n  {layer}(x, 5)\n}}\n");
        let checked = check_source(&src).unwrap_or_else(|d| panic!("{d:?}"));
        let g = &checked.models[0].graph;
        for p in &g.params {
            let want = if p.name.contains(".bias_") { ParamRole::Bias } else { ParamRole::Weight };
            assert_eq!(p.role, want, "{layer}: {}", p.name);
        }
    }
    // A parameter multiplied in the body is a weight, even if it is also added.
    let src = "model m(x: [B, 4, 3]) -> y: [B, 3] {
  param v: [3] = zeros
  let xs = transpose(x, perm: [1, 0, 2])
  let h = xs[0]
  for t in range(4) carry (h) {
    let h = h + v + xs[t] * v
  }
  h
}
";
    let checked = check_source(src).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(checked.models[0].graph.params[0].role, ParamRole::Weight);
}

#[test]
fn a_function_called_in_a_loop_body_may_have_loops_of_its_own() {
    // The function's names are its own: its `let h` before its loop is not a rebinding of
    // the outer loop's (an LSTM language model sampled step by step calls the model, whose
    // lstm loops, inside the sampling loop).
    let src = "layer cell(x) {
  let h = x * 2
  for s in range(3) carry (h) {
    let h = tanh(h) + x
  }
  h
}
model m(x: [B, 3, 2]) -> y: [B, 3, 4] {
  lstm(x, 4)
}
eval nested_in_calls {
  let x = [0.5, -1]
  let xs = [[[1, 2], [3, 4], [5, 6]]]
  let acc = 0
  for t in range(2) carry (acc) {
    let acc = acc * 0.5 + sum(cell(x) * x) + sum(m(xs * acc))
  }
  grad acc wrt x, xs
}
";
    check_evals("nested_in_calls", src);
    // A name of the caller's that a called function rebinds is still refused in the caller.
    let bad = "eval e {
  let h = 1
  let acc = 0
  for t in range(2) carry (acc) {
    let h = 2
    let acc = acc + h
  }
  acc
}
";
    let errors = check_source(bad).err().expect("h is rebound for one step only");
    assert!(errors.iter().any(|d| d.code == "E-loop" && d.message.contains("`h`")), "{errors:?}");
}

#[test]
fn a_loop_whose_only_carry_is_a_hoisted_sum_still_runs() {
    // acc ← acc + x_tᵀ tanh(x_t) over x [4, 2, 3], stacking tanh(x_t): `opt::hoist` takes the
    // only carry, leaving a loop of no carries (and the one stacked output); the optimised
    // graph computes the same in the interpreter and the JIT, f32 and f64.
    for dtype in [DType::F64, DType::F32] {
        let mut body = Graph::new(dtype);
        let acc = body.add_input("acc", known(&[3, 3]), InputKind::Variable);
        let x = body.add_input("x_t", known(&[2, 3]), InputKind::Variable);
        let h = body.add(Op::Tanh, &[x]).unwrap();
        let term = body.add(Op::matmul(true, false), &[x, h]).unwrap();
        let acc2 = body.add(Op::Add, &[acc, term]).unwrap();
        body.outputs = vec![("acc".into(), acc2), ("hs".into(), h)];
        let spec =
            Arc::new(LoopSpec::new(body, 4, false, 1, vec![Slicing::along(0)], vec![Slicing::along(0)]).unwrap());
        let mut g = Graph::new(dtype);
        let acc0 = g.add_input("acc0", known(&[3, 3]), InputKind::Data);
        let xs = g.add_input("x", known(&[4, 2, 3]), InputKind::Data);
        let total = g.add(Op::Loop { spec: spec.clone(), output: 0 }, &[acc0, xs]).unwrap();
        let stack = g.add(Op::Loop { spec, output: 1 }, &[acc0, xs]).unwrap();
        g.outputs = vec![("acc".into(), total), ("hs".into(), stack)];
        let inputs = vec![spread(&[3, 3], 1, -1.0, 1.0), spread(&[4, 2, 3], 2, -1.0, 1.0)];
        let want = interp::outputs(&g, &inputs, &[]).unwrap();
        let mut o = g.clone();
        netc::ir::opt::optimize(&mut o, None).unwrap();
        let carries: Vec<usize> = o
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Loop { spec, .. } => Some(spec.carries),
                _ => None,
            })
            .collect();
        assert_eq!(carries, [0], "{}", o.to_text());
        let interpreted = interp::outputs(&o, &inputs, &[]).unwrap();
        let compiled = jit::compile(&o, &CompileOptions::default()).unwrap().run_tensors(&inputs, &mut vec![]).unwrap();
        let tolerance = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        for got in [&interpreted, &compiled] {
            for (w, v) in want.iter().zip(got.iter()) {
                for (a, b) in w.data.iter().zip(&v.data) {
                    assert!((a - b).abs() <= tolerance * (1.0 + a.abs()), "{dtype}: {a} against {b}\n{}", o.to_text());
                }
            }
        }
    }
}

/// A carry rebound to the loop variable (`let c = t`) takes the step's index, compiled and
/// interpreted; of another shape it is the usual shape error. (Found by
/// `no_panic::mutilated_examples_never_panic`: the step index was made after the loop's frame
/// was gone, an index out of bounds.)
#[test]
fn a_carry_rebound_to_the_loop_variable_takes_the_step_index() {
    let src = "eval e {
  let c = 0
  let s = 0
  for t in range(2, 6) carry (c, s) {
    let s = s + t
    let c = t
  }
  c * 100 + s
}
";
    let checked = check_source(src).unwrap_or_else(|d| panic!("{d:?}"));
    for exec in [Exec::Jit, Exec::Interp] {
        let out = evaluate_with(&checked.evals[0], 0, exec).unwrap();
        assert_eq!(out.shows[0].1.data, vec![514.0], "c = 5, s = 2 + 3 + 4 + 5");
    }
    let bad = "eval e {
  let text = [[1, 2]]
  for t in range(3) carry (text) {
    let text = t
  }
  text
}
";
    let errors = check_source(bad).err().expect("a scalar for a [1, 2] carry");
    assert!(errors.iter().any(|d| d.code == "E-shape" && d.message.contains("`text` changes shape")), "{errors:?}");
}
