//! The prelude's `lstm`, `gru` and `rnn` against PyTorch's `nn.LSTM`, `nn.GRU` and `nn.RNN`
//! (float32), from the same weights: an LSTM classifier's three SGD steps (each loss and every
//! parameter after them), and GRU/RNN outputs and gradients. The reference values were
//! computed once by `tests/data/torch_rnn/make_reference.py` and are read from
//! `reference.safetensors` beside it; torch is not run here.

use crate::common;

use std::collections::HashMap;

use netc::codegen::CompileOptions;
use netc::drivers::jit;
use netc::frontend::check::check_source;
use netc::ir::autodiff;
use netc::ir::graph::{DType, Graph, InputKind, NodeId, Op};
use netc::ir::interp;
use netc::ir::tensor::Tensor;

fn reference() -> HashMap<String, Tensor> {
    common::reference::tensors("torch_rnn")
}

/// To 1e-4 relative (see `assert_tensor_close`).
fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    common::reference::assert_tensor_close(what, got, want, 1e-4)
}

const LSTM_CLASSIFIER: &str = "model clf(x: [B, 7, 5]) -> scores: [B, 3] {
  let enc = lstm(x, 8)
  let steps = transpose(enc, perm: [1, 0, 2])
  let head = dense(steps[-1] + mean(enc, axis: 1), 3)
  head
}
data d { source: synthetic(samples: 4, classes: 3, seed: 0) }
train clf {
  loss: cross_entropy(scores, labels)
  optimizer: sgd(lr: 0.5)
}
";

#[test]
fn three_lstm_training_steps_match_torch() {
    let r = reference();
    let checked = check_source(LSTM_CLASSIFIER).unwrap_or_else(|e| panic!("{e:?}"));
    let step = netc::training::optim::build(&checked.trains[0]).unwrap();
    let g = &step.graph;
    let params: Vec<Tensor> = g.params.iter().map(|p| r[&format!("lstm/init/{}", p.name)].clone()).collect();
    assert_eq!(params.len(), step.model_params, "SGD keeps no state");
    let inputs = [r["lstm/x"].clone(), r["lstm/labels"].clone(), Tensor::scalar(0.5)];
    let loss_of = |outputs: &[Tensor]| outputs[step.loss_output].data[0];

    // Compiled, in f32.
    let mut c = jit::compile(g, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e:?}"));
    let mut p = params.clone();
    let mut losses = vec![];
    for _ in 0..3 {
        losses.push(loss_of(&c.run_tensors(&inputs, &mut p).unwrap()));
    }
    assert_close("losses", &Tensor::new(vec![3], losses), &r["lstm/losses"]);
    for (info, value) in g.params.iter().zip(&p) {
        assert_close(&format!("{} after three steps", info.name), value, &r[&format!("lstm/final/{}", info.name)]);
    }

    // The interpreter (f32 rounding of every value) agrees too.
    let mut p = params;
    for k in 0..3 {
        let values = interp::run(g, &inputs, &p).unwrap();
        let loss = values[g.outputs[step.loss_output].1.index()].data[0];
        let want = r["lstm/losses"].data[k];
        assert!((loss - want).abs() <= 1e-4 * want.abs(), "interpreter step {k}: {loss} vs {want}");
        for &(i, id) in &g.updates {
            p[i] = values[id.index()].clone();
        }
    }
}

/// `kind(x, 6)` on torch's weights: the output sequence, and the gradients of Σ output ⊙ v
/// with respect to every parameter and to x, on both engines.
fn check_layer(kind: &str) {
    let r = reference();
    let src = format!("model m(x: [B, 7, 5]) -> out: [B, 7, 6] {{\n  let {kind} = {kind}(x, 6)\n  {kind}\n}}\n");
    let checked = check_source(&src).unwrap_or_else(|e| panic!("{e:?}"));
    let mut g: Graph = checked.models[0].graph.clone();
    let out = g.outputs[0].1;
    let v = g.add_input("v", g.shape(out).clone(), InputKind::Variable);
    let weighted = g.add(Op::Mul, &[out, v]).unwrap();
    let loss = g.add(Op::Sum { axes: vec![0, 1, 2] }, &[weighted]).unwrap();
    let x = NodeId(g.nodes.iter().position(|n| n.op == Op::Input { index: 0 }).unwrap() as u32);
    let mut wrt = g.param_nodes().unwrap();
    wrt.push(x);
    let grads = autodiff::differentiate(&mut g, loss, &wrt).unwrap();
    g.outputs = std::iter::once(("out".to_string(), out)).chain(grads.iter().map(|&d| ("d".to_string(), d))).collect();
    let params: Vec<Tensor> = g.params.iter().map(|p| r[&format!("{kind}/weights/{}", p.name)].clone()).collect();
    let inputs = [r[&format!("{kind}/x")].clone(), r[&format!("{kind}/v")].clone()];
    let compiled =
        jit::compile(&g, &CompileOptions::default()).unwrap().run_tensors(&inputs, &mut params.clone()).unwrap();
    let interpreted = interp::outputs(&g, &inputs, &params).unwrap();
    for (engine, results) in [("jit", &compiled), ("interpreter", &interpreted)] {
        assert_close(&format!("{kind} output ({engine})"), &results[0], &r[&format!("{kind}/output")]);
        for (info, d) in g.params.iter().zip(&results[1..]) {
            assert_close(&format!("d{} ({engine})", info.name), d, &r[&format!("{kind}/grads/{}", info.name)]);
        }
        assert_close(&format!("{kind} dx ({engine})"), results.last().unwrap(), &r[&format!("{kind}/dx")]);
    }
    assert_eq!(g.dtype, DType::F32);
}

#[test]
fn gru_outputs_and_gradients_match_torch() {
    check_layer("gru");
}

#[test]
fn rnn_outputs_and_gradients_match_torch() {
    check_layer("rnn");
}
