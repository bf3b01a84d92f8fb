//! `grad(f, wrt: x)` as a value: second derivatives against their closed forms and against
//! central differences of the analytic first derivative, through elementwise functions, a
//! small MLP's input gradient and a loop; a gradient penalty trained on both engines.

use netc::commands::eval::{evaluate_with, Exec};
use netc::frontend::check::check_source;
use netc::ir::gradcheck;
use netc::ir::graph::NodeId;
use netc::ir::interp;
use netc::ir::tensor::Tensor;

use crate::cases;

/// Points where a formula's pieces switch (0, where softplus's max(x, 0) + ln(1 + e^−|x|)
/// turns; 20, PyTorch's softplus threshold) and far out on both sides.
const POINTS: [f64; 11] = [-25.0, -3.0, -0.7, -1e-3, 0.0, 0.4, 1.9, 20.0, 23.0, 37.0, 40.0];

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// (name, f'(x), f''(x)) in closed form.
fn closed_forms() -> Vec<(&'static str, fn(f64) -> f64, fn(f64) -> f64)> {
    vec![
        ("tanh", |x| 1.0 - x.tanh().powi(2), |x| -2.0 * x.tanh() * (1.0 - x.tanh().powi(2))),
        (
            "sigmoid",
            |x| sigmoid(x) * (1.0 - sigmoid(x)),
            |x| {
                let s = sigmoid(x);
                s * (1.0 - s) * (1.0 - 2.0 * s)
            },
        ),
        ("softplus", sigmoid, |x| sigmoid(x) * (1.0 - sigmoid(x))),
    ]
}

fn list(xs: &[f64]) -> String {
    format!("[{}]", xs.iter().map(|x| format!("{x:e}")).collect::<Vec<_>>().join(", "))
}

/// |a − b| ≤ 1e-12 + 1e-9·|b|.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
}

#[test]
fn second_derivatives_of_tanh_sigmoid_and_softplus_are_their_closed_forms() {
    for (f, d1_true, d2_true) in closed_forms() {
        let src = format!(
            "eval second {{
  let x = {}
  let d1 = grad(sum({f}(x)), wrt: x)
  let d2 = grad(sum(d1), wrt: x)
  d1
  d2
}}",
            list(&POINTS)
        );
        let checked = check_source(&src).unwrap_or_else(|e| panic!("{f}: {e:?}"));
        for exec in [Exec::Interp, Exec::Jit] {
            let out = evaluate_with(&checked.evals[0], 0, exec).unwrap();
            let (d1, d2) = (&out.shows[0].1, &out.shows[1].1);
            for (i, &x) in POINTS.iter().enumerate() {
                assert!(close(d1.data[i], d1_true(x)), "{f}'({x}) = {} ({exec:?}), not {}", d1.data[i], d1_true(x));
                assert!(close(d2.data[i], d2_true(x)), "{f}''({x}) = {} ({exec:?}), not {}", d2.data[i], d2_true(x));
            }
        }
    }
}

#[test]
fn second_derivatives_match_differences_of_the_analytic_first_derivative() {
    // d2[i] against (d1(x + ε) − d1(x − ε)) / 2ε, d1 evaluated by the interpreter from the
    // gradient graph itself: a wrong VJP of a VJP rule shows here even where the closed form
    // in the test above were mistyped.
    for (f, _, _) in closed_forms() {
        let src = format!(
            "eval second {{
  let x = {}
  let d1 = grad(sum({f}(x)), wrt: x)
  d1
  grad(sum(d1), wrt: x)
}}",
            list(&POINTS)
        );
        let checked = check_source(&src).unwrap();
        let e = &checked.evals[0];
        let (d1, d2) = (e.shows[0].1, e.shows[1].1);
        let at = |x: Vec<f64>| interp::value(&e.graph, d1, &[Tensor::new(vec![x.len()], x)], &[]).unwrap();
        let d2_values = interp::value(&e.graph, d2, &e.values, &[]).unwrap();
        let eps = 1e-6;
        for (i, &x) in POINTS.iter().enumerate() {
            let (mut up, mut down) = (POINTS.to_vec(), POINTS.to_vec());
            up[i] += eps;
            down[i] -= eps;
            let numeric = (at(up).data[i] - at(down).data[i]) / (2.0 * eps);
            let analytic = d2_values.data[i];
            assert!((numeric - analytic).abs() < 1e-8, "{f}''({x}): analytic {analytic}, differences {numeric}");
        }
        // And the general check on the same graph (every element, weighted rows).
        let x = e.graph.nodes.iter().position(|n| n.name.as_deref() == Some("x")).unwrap();
        let f_of = e.graph.nodes.iter().position(|n| matches!(n.op, netc::ir::graph::Op::Sum { .. })).unwrap();
        let reports = gradcheck::check_second(
            &e.graph,
            NodeId(f_of as u32),
            &[NodeId(x as u32)],
            &e.values,
            &[],
            1e-6,
            usize::MAX,
        )
        .unwrap();
        assert!(reports[0].max_rel_error < 1e-6, "{f}: {:e}", reports[0].max_rel_error);
    }
}

/// A two-layer MLP with tanh and softplus, and its input gradient.
const MLP: &str = "eval mlp {
  let x = [[0.3, -1.2, 0.8], [1.5, 0.1, -0.4]]
  let W1 = [[0.5, -0.3, 0.8, 0.1], [0.2, 0.7, -0.5, 0.4], [-0.6, 0.1, 0.3, 0.9]]
  let b1 = [0.1, -0.2, 0.0, 0.3]
  let W2 = [[0.4, -0.7], [0.3, 0.5], [-0.8, 0.2], [0.6, 0.1]]
  let h = tanh(x @ W1 + b1)
  let y = softplus(h @ W2)
  let f = sum(y * [[1, -2], [0.5, 3]])
  let dx = grad(f, wrt: x)
  let penalty = sum(dx * dx)
  grad penalty wrt x, W1, b1, W2
  grad f wrt x, W1, b1, W2
}";

#[test]
fn a_small_mlps_input_gradient_has_the_right_derivatives() {
    let checked = check_source(MLP).unwrap_or_else(|e| panic!("{e:?}"));
    let e = &checked.evals[0];
    // d penalty/dθ differentiates the input gradient: central differences of ‖∂f/∂x‖².
    let penalty = &e.grads[0];
    let wrt: Vec<NodeId> = penalty.wrt.iter().map(|w| w.1).collect();
    for r in gradcheck::check_elements(&e.graph, penalty.of, &wrt, &e.values, &[], 1e-6, usize::MAX).unwrap() {
        assert!(r.max_rel_error < 1e-7, "d penalty/d{}: {:e}", r.name, r.max_rel_error);
    }
    // Every second derivative of f (v-weighted Hessian rows, x and the weights mixed).
    let f = &e.grads[1];
    for r in gradcheck::check_second(&e.graph, f.of, &wrt, &e.values, &[], 1e-6, usize::MAX).unwrap() {
        assert!(r.max_rel_error < 1e-7, "second derivatives wrt {}: {:e}", r.name, r.max_rel_error);
    }
    // Compiled, the same numbers.
    let (jit, interp) = (evaluate_with(e, 0, Exec::Jit).unwrap(), evaluate_with(e, 0, Exec::Interp).unwrap());
    for (a, b) in jit.grads.iter().zip(&interp.grads) {
        for ((_, x), (_, y)) in a.2.iter().zip(&b.2) {
            assert!(x.data.iter().zip(&y.data).all(|(p, q)| close(*p, *q)), "{:?} vs {:?}", x.data, y.data);
        }
    }
}

#[test]
fn second_derivatives_flow_through_a_loop_and_its_backward_loop() {
    // The backward loop of a loop is a loop: differentiating it again gives the Hessian rows.
    let c = cases::op_case(&netc::ir::graph::Op::Loop { spec: cases::rnn_loop(4), output: 1 });
    let (g, _, loss, leaves) = cases::build(&c, netc::ir::graph::DType::F64);
    let values = cases::values(&c, 3);
    for r in gradcheck::check_second(&g, loss, &leaves, &[], &values, 1e-6, usize::MAX).unwrap() {
        assert!(r.max_rel_error < 1e-6, "second derivatives wrt {}: {:e}", r.name, r.max_rel_error);
    }
}

#[test]
fn a_gradient_penalty_trains_the_same_on_both_engines_and_changes_training() {
    let src = |weight: &str| {
        format!(
            "model critic(x: [B, 2]) -> score: [B, 1] {{
  x |> dense(8) |> tanh |> dense(1)
}}
data points {{ source: spiral(points: 30, classes: 2, seed: 1) }}
train critic {{
  loss: mse(score, labels) + {weight} * mean((sqrt(sum(grad(sum(score), wrt: x) ** 2, axis: 1) + 1e-6) - 1) ** 2)
  optimizer: adam(lr: 0.01)
  steps: 30
  batch: 20
  seed: 3
}}
"
        )
    };
    let dir = std::env::temp_dir().join(format!("netc-second-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |weight: &str, engine: &str| -> f64 {
        let file = dir.join(format!("gp{weight}.net"));
        std::fs::write(&file, src(weight)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(["run", file.to_str().unwrap(), "--json", "--quiet", "--engine", engine])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"));
        v["final_loss"].as_f64().unwrap_or_else(|| panic!("no final_loss in {s}"))
    };
    let (jit, interp) = (run("10", "jit"), run("10", "interp"));
    assert!((jit - interp).abs() <= 1e-4 * interp.abs(), "jit {jit}, interpreter {interp}");
    let without = run("0", "jit");
    assert!((jit - without).abs() > 1e-3, "the penalty changed nothing: {jit} vs {without}");
    std::fs::remove_dir_all(&dir).ok();
}
