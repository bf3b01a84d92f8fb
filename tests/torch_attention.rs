//! The prelude's `multihead_attention` against PyTorch (issue #17: until now it was only
//! checked through `attention`): its output and the gradients of Σ output ⊙ v with respect to
//! every parameter and to x, against `torch.nn.MultiheadAttention` (unmasked and with a causal
//! mask) and against the same formula in torch where the input features differ from `dim`.
//! The reference values were computed once in float64 by
//! `tests/data/torch_attention/make_reference.py` and are read from `reference.safetensors`
//! beside it; torch is not run here. netc runs in float32 and float64, on the JIT (of the
//! optimised graph) and the interpreter.

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
    common::reference::tensors("torch_attention")
}

use common::reference::assert_tensor_close as assert_close;

/// `multihead_attention` of the reference case `case` (x [B, T, features], the mask as a
/// second input when the case has one), its output followed by the gradients of Σ out ⊙ v
/// with respect to every parameter and then x, in `dtype`.
fn gradient_graph(r: &HashMap<String, Tensor>, case: &str, dtype: DType) -> Graph {
    let x = &r[&format!("{case}/x")].shape;
    let dim = r[&format!("{case}/weights/Wo")].shape[0];
    let heads = r[&format!("{case}/heads")].data[0];
    let (b, t, features) = (x[0], x[1], x[2]);
    let (mask_input, mask_arg) = match r.contains_key(&format!("{case}/mask")) {
        true => (format!(", mask: [{t}, {t}]"), ", mask: mask"),
        false => (String::new(), ""),
    };
    let src = format!(
        "model m(x: [{b}, {t}, {features}]{mask_input}) -> out: [{b}, {t}, {dim}] {{\n  \
         let {case} = multihead_attention(x, heads: {heads}, dim: {dim}{mask_arg})\n  {case}\n}}\n"
    );
    let checked = check_source(&src).unwrap_or_else(|e| panic!("{src}\n{e:?}"));
    let mut g = checked.models[0].graph.clone();
    g.dtype = dtype;
    let out = g.outputs[0].1;
    let v = g.add_input("v", g.shape(out).clone(), InputKind::Variable);
    let weighted = g.add(Op::Mul, &[out, v]).unwrap();
    let loss = g.add(Op::Sum { axes: vec![0, 1, 2] }, &[weighted]).unwrap();
    let x = NodeId(g.nodes.iter().position(|n| n.op == Op::Input { index: 0 }).unwrap() as u32);
    let mut wrt = g.param_nodes().unwrap();
    wrt.push(x);
    let grads = autodiff::differentiate(&mut g, loss, &wrt).unwrap();
    g.outputs = std::iter::once(("out".to_string(), out)).chain(grads.iter().map(|&d| ("d".to_string(), d))).collect();
    g
}

fn check_case(case: &str) {
    let r = reference();
    for (dtype, rel) in [(DType::F32, 1e-4), (DType::F64, 1e-10)] {
        let g = gradient_graph(&r, case, dtype);
        let names: Vec<String> = g.params.iter().map(|p| p.name.clone()).collect();
        let want_names = ["Wq", "bq", "Wk", "Wv", "bv", "Wo", "bo"].map(|n| format!("{case}.{n}"));
        assert_eq!(names, want_names, "the prelude's parameters and their order");
        let params: Vec<Tensor> = names
            .iter()
            .map(|n| r[&format!("{case}/weights/{}", n.trim_start_matches(&format!("{case}.")))].clone())
            .collect();
        let mut inputs = vec![r[&format!("{case}/x")].clone()];
        if let Some(mask) = r.get(&format!("{case}/mask")) {
            inputs.push(mask.clone());
        }
        inputs.push(r[&format!("{case}/v")].clone());
        let mut optimized = g.clone();
        netc::ir::opt::optimize(&mut optimized, None).unwrap();
        let compiled = jit::compile(&optimized, &CompileOptions::default())
            .unwrap_or_else(|e| panic!("{e:?}"))
            .run_tensors(&inputs, &mut params.clone())
            .unwrap();
        let interpreted = interp::outputs(&g, &inputs, &params).unwrap();
        for (engine, results) in [("jit", &compiled), ("interpreter", &interpreted)] {
            let at = format!("{case}, {dtype}, {engine}");
            assert_close(&format!("output ({at})"), &results[0], &r[&format!("{case}/output")], rel);
            for (name, d) in names.iter().zip(&results[1..]) {
                let short = name.trim_start_matches(&format!("{case}."));
                assert_close(&format!("d{name} ({at})"), d, &r[&format!("{case}/grads/{short}")], rel);
            }
            assert_close(&format!("dx ({at})"), results.last().unwrap(), &r[&format!("{case}/dx")], rel);
        }
    }
}

#[test]
fn multihead_attention_matches_torch_multihead_attention() {
    check_case("mha");
}

#[test]
fn causally_masked_multihead_attention_matches_torch() {
    check_case("masked");
}

#[test]
fn multihead_attention_projecting_to_another_width_matches_the_formula_in_torch() {
    check_case("proj");
}
