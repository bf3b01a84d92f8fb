//! Moved from `src/ir/interp.rs`'s unit tests.

use netc::ir::graph::{DType, Dim, Graph, NodeId, Op};
use netc::ir::tensor::Tensor;

use netc::ir::graph::InputKind;
use netc::ir::interp::*;

fn graph(dtype: DType) -> (Graph, NodeId, NodeId) {
    let mut g = Graph::new(dtype);
    let b = g.symbol("B");
    let x = g.add_input("x", vec![Dim::Sym(b), Dim::Known(2)], InputKind::Data);
    let y = g.add_input("y", vec![Dim::Sym(b)], InputKind::Label);
    let three = g.constant(3.0);
    let third = g.add(Op::Div, &[x, three]).unwrap();
    g.outputs.push(("third".into(), third));
    (g, x, y)
}

#[test]
fn binds_symbols_and_rounds_f32() {
    let (g, _, _) = graph(DType::F32);
    let out = outputs(&g, &[Tensor::new(vec![1, 2], vec![1.0, 2.0]), Tensor::zeros(vec![1])], &[]).unwrap();
    assert_eq!(out[0].data, [(1.0f64 / 3.0) as f32 as f64, (2.0f64 / 3.0) as f32 as f64]);
    let (g, _, _) = graph(DType::F64);
    let out = outputs(&g, &[Tensor::new(vec![1, 2], vec![1.0, 2.0]), Tensor::zeros(vec![1])], &[]).unwrap();
    assert_eq!(out[0].data, [1.0 / 3.0, 2.0 / 3.0]);
}

#[test]
fn reports_bad_inputs() {
    let (g, _, _) = graph(DType::F32);
    let err = run(&g, &[Tensor::zeros(vec![2, 2])], &[]).unwrap_err();
    assert!(err.contains("takes 2 inputs, 1 were given"), "{err}");
    let err = run(&g, &[Tensor::zeros(vec![2, 3]), Tensor::zeros(vec![2])], &[]).unwrap_err();
    assert!(err.contains("`x` must have shape [B, 2]"), "{err}");
    let err = run(&g, &[Tensor::zeros(vec![2, 2]), Tensor::zeros(vec![3])], &[]).unwrap_err();
    assert!(err.contains("`y` has B = 3, but an earlier tensor had B = 2"), "{err}");
    let bad = Tensor { shape: vec![2, 2], data: vec![0.0] };
    assert!(run(&g, &[bad, Tensor::zeros(vec![2])], &[]).unwrap_err().contains("do not fill"));
}

#[test]
fn reports_unbound_symbols_and_bad_labels() {
    let mut g = Graph::new(DType::F64);
    let s = g.symbol("S");
    let c = g.constant(0.0);
    g.add(Op::Broadcast { shape: vec![Dim::Sym(s)] }, &[c]).unwrap();
    assert!(run(&g, &[], &[]).unwrap_err().contains("the size of S is not bound"));
    let mut g = Graph::new(DType::F64);
    let y = g.add_input("y", vec![Dim::Known(2)], InputKind::Label);
    g.add(Op::OneHot { classes: 3 }, &[y]).unwrap();
    let err = run(&g, &[Tensor::new(vec![2], vec![1.0, 3.0])], &[]).unwrap_err();
    assert!(err.contains("one_hot 3") && err.contains("class index 3"), "{err}");
}
