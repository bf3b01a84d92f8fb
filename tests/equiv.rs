//! Every example runs the same on the JIT as on the reference interpreter: one fused train
//! step (loss and every updated parameter and optimizer state) on a random batch, and every
//! eval block's values and gradients.

use netc::commands::eval::Exec;
use netc::training::{Counter, Engine, Interpreter, TrainGraphs};

fn examples() -> Vec<(String, netc::frontend::checked::Checked)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "net") {
            let src = std::fs::read_to_string(&p).unwrap();
            out.push((p.display().to_string(), netc::frontend::check::check_source(&src).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn assert_close(what: &str, a: &[f32], b: &[f32], rel: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let scale = a.iter().map(|x| x.abs()).fold(0f32, f32::max).max(1e-3);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= rel * scale, "{what}[{i}]: jit {x} vs interpreter {y} (scale {scale})");
    }
}

#[test]
fn train_steps_agree_with_the_interpreter() {
    for (file, checked) in examples() {
        for t in &checked.trains {
            // The interpreter is too slow for AlexNet-sized models (W7 is benchmarked instead).
            if netc::commands::report::param_count(&t.graph) > 1_000_000 {
                continue;
            }
            // Two optimizer steps from the same start, so momentum state is exercised too.
            let mut t = t.clone();
            t.optimizer = match t.optimizer {
                netc::frontend::checked::Optimizer::Sgd { lr } => {
                    netc::frontend::checked::Optimizer::Momentum { lr, momentum: 0.9, nesterov: true }
                }
                other => other,
            };
            let batch = 3;
            // A batch of every field the train graph reads, by name.
            let inputs = netc::commands::graph::random_inputs(&t.graph, batch, 7);
            let fields = t
                .graph
                .inputs
                .iter()
                .zip(&inputs)
                .map(|(info, v)| (info.name.clone(), v.data.iter().map(|&x| x as f32).collect()))
                .collect();
            let data = netc::runtime::data::Batch { n: batch, fields };
            let mut jit = netc::training::jit_engine::jit_engine(TrainGraphs::new(&t).unwrap(), false).unwrap();
            let mut interp = Interpreter::new(TrainGraphs::new(&t).unwrap());
            let start = netc::training::initial_params(&TrainGraphs::new(&t).unwrap().step.graph, 1);
            let (mut pj, mut pi) = (start.clone(), start);
            for step in 0..2 {
                // Dropout draws the same masks in both engines.
                let counter = Counter { seed: 3, step };
                let lj = jit.step(&data, 0.05, counter, &mut pj).unwrap();
                let li = interp.step(&data, 0.05, counter, &mut pi).unwrap();
                assert_close(&format!("{file} loss at step {step}"), &[lj], &[li], 1e-4);
            }
            for (k, (a, b)) in pj.iter().zip(&pi).enumerate() {
                assert_close(&format!("{file} parameter {k}"), a, b, 1e-4);
            }
            let ej = jit.evaluate(&data, &pj).unwrap();
            let ei = interp.evaluate(&data, &pi).unwrap();
            assert_close(&format!("{file} evaluation loss"), &[ej.loss], &[ei.loss], 1e-4);
            assert_eq!(ej.outputs.len(), ei.outputs.len());
            for ((name, a), (_, b)) in ej.outputs.iter().zip(&ei.outputs) {
                assert_close(&format!("{file} output {name}"), a, b, 1e-4);
            }
        }
    }
}

#[test]
fn eval_blocks_agree_with_the_interpreter() {
    let mut n = 0;
    for (file, checked) in examples() {
        for e in &checked.evals {
            let a = netc::commands::eval::evaluate_with(e, 0, Exec::Jit).unwrap();
            let b = netc::commands::eval::evaluate_with(e, 0, Exec::Interp).unwrap();
            for ((fa, va, ga), (_, vb, gb)) in a.grads.iter().zip(&b.grads) {
                assert!((va.data[0] - vb.data[0]).abs() < 1e-12, "{file}: {fa}");
                for ((x, ta), (_, tb)) in ga.iter().zip(gb) {
                    for (p, q) in ta.data.iter().zip(&tb.data) {
                        assert!((p - q).abs() < 1e-12, "{file}: d{fa}/d{x}: {p} vs {q}");
                    }
                }
                n += 1;
            }
        }
    }
    assert!(n >= 3);
}
