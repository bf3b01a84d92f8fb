//! Checkpointed loops (`range(T, checkpoint: k)`): the same values and the same gradients,
//! bit for bit, as the flat loop, for chunk sizes that divide T and that do not, forwards
//! and reversed, interpreted and compiled (optimised and compiled: bit for bit when k divides
//! T, to rounding when steps are left over, see `ir::checkpoint`); and the backward pass
//! keeps every k-th carry instead of every one.

use netc::codegen::CompileOptions;
use netc::drivers::jit;
use netc::frontend::check::check_source;
use netc::ir::autodiff;
use netc::ir::graph::{DType, Graph, NodeId, Op};
use netc::ir::interp;
use netc::ir::tensor::Tensor;

const T: usize = 10;

/// An LSTM-like recurrence with two carries, per-step inputs and outputs, and shared weights.
fn source(range: &str) -> String {
    format!(
        "model m(x: [B, {T}, 3]) -> out: [B, 4] {{
  param W: [4, 8] = normal(0.5)
  param U: [3, 8] = normal(0.5)
  param b: [8] = normal(0.1)
  let steps = transpose(x, perm: [1, 0, 2])
  let h = zeros([x.shape[0], 4])
  let c = zeros([x.shape[0], 4])
  for t in {range} carry (h, c) {{
    let z = transpose(reshape(h @ W + steps[t] @ U + b, [x.shape[0], 2, 4]), perm: [1, 0, 2])
    let c = sigmoid(z[0]) * c + tanh(z[1]) * 0.5
    let h = tanh(c) * sigmoid(z[1])
    yield hs = h
  }}
  h + mean(hs, axis: 1)
}}
"
    )
}

/// The model's output and the gradients of Σ out ⊙ v with respect to every parameter and x.
fn gradient_graph(range: &str, dtype: DType) -> Graph {
    let checked = check_source(&source(range)).unwrap_or_else(|e| panic!("{range}: {e:?}"));
    let mut g = checked.models[0].graph.clone();
    g.dtype = dtype;
    let out = g.outputs[0].1;
    let v = g.add_input("v", g.shape(out).clone(), netc::ir::graph::InputKind::Variable);
    let p = g.add(Op::Mul, &[out, v]).unwrap();
    let l = g.add(Op::Sum { axes: vec![0, 1] }, &[p]).unwrap();
    let mut wrt = g.param_nodes().unwrap();
    wrt.push(NodeId(g.nodes.iter().position(|n| n.op == Op::Input { index: 0 }).unwrap() as u32));
    let grads = autodiff::differentiate(&mut g, l, &wrt).unwrap();
    g.outputs = std::iter::once(("out".into(), out)).chain(grads.iter().map(|&d| ("d".into(), d))).collect();
    g
}

fn values(dtype: DType) -> (Vec<Tensor>, Vec<Tensor>) {
    let spread = |shape: &[usize], seed: usize| {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|k| ((k * 7 + seed * 13 + 1) as f64 * 0.618_033_988_749_895).fract() * 1.6 - 0.8);
        let data: Vec<f64> = data.map(|v| if dtype == DType::F32 { v as f32 as f64 } else { v }).collect();
        Tensor::new(shape.to_vec(), data)
    };
    (vec![spread(&[3, T, 3], 1), spread(&[3, 4], 2)], vec![spread(&[4, 8], 3), spread(&[3, 8], 4), spread(&[8], 5)])
}

fn bits(ts: &[Tensor]) -> Vec<Vec<u64>> {
    ts.iter().map(|t| t.data.iter().map(|v| v.to_bits()).collect()).collect()
}

#[test]
fn checkpointed_loops_give_the_flat_loops_values_and_gradients_bit_for_bit() {
    for reverse in [false, true] {
        let flat_range = if reverse { format!("reversed(range({T}))") } else { format!("range({T})") };
        let range = |k: usize| format!("range({T}, reverse: {reverse}, checkpoint: {k})");
        for dtype in [DType::F64, DType::F32] {
            let (inputs, params) = values(dtype);
            let flat = gradient_graph(&flat_range, dtype);
            let want = interp::outputs(&flat, &inputs, &params).unwrap();
            let mut flat = flat.clone();
            netc::ir::opt::optimize(&mut flat, None).unwrap();
            let want_jit = jit::compile(&flat, &CompileOptions::default())
                .unwrap()
                .run_tensors(&inputs, &mut params.clone())
                .unwrap();
            // Chunks that divide 10, that leave 1 or 3 steps over, of one step, of all steps.
            for k in [1, 2, 3, 4, 5, 7, 9, 10, 12] {
                let g = gradient_graph(&range(k), dtype);
                let got = interp::outputs(&g, &inputs, &params).unwrap();
                assert_eq!(bits(&got), bits(&want), "interpreter, reverse={reverse}, {dtype}, checkpoint {k}");
                let mut optimized = g.clone();
                netc::ir::opt::optimize(&mut optimized, None).unwrap();
                let got = jit::compile(&optimized, &CompileOptions::default())
                    .unwrap()
                    .run_tensors(&inputs, &mut params.clone())
                    .unwrap();
                let what = format!("jit, reverse={reverse}, {dtype}, checkpoint {k}");
                if T % k == 0 || k > T {
                    assert_eq!(bits(&got), bits(&want_jit), "{what}");
                } else {
                    let tolerance = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
                    for (got, want) in got.iter().zip(&want_jit) {
                        for (a, b) in got.data.iter().zip(&want.data) {
                            assert!((a - b).abs() <= tolerance * (1.0 + b.abs()), "{what}: {a} against {b}");
                        }
                    }
                }
            }
        }
    }
}

/// The largest number of steps any loop of `g` stacks for its backward pass (the first axis
/// of its stacks of carries and of residuals, the inner values its VJP reads).
fn longest_carry_stack(g: &Graph) -> usize {
    fn walk(g: &Graph, best: &mut usize) {
        for node in &g.nodes {
            if let Op::Loop { spec, output } = &node.op {
                if *output >= spec.carries
                    && (spec.body.outputs[*output].0.ends_with("entering each step")
                        || spec.body.outputs[*output].0.ends_with("of each step"))
                {
                    *best = (*best).max(node.shape[0].known().unwrap_or(0));
                }
                walk(&spec.body, best);
            }
        }
    }
    let mut best = 0;
    walk(g, &mut best);
    best
}

#[test]
fn the_backward_pass_keeps_every_kth_carry() {
    let flat = gradient_graph(&format!("range({T})"), DType::F64);
    assert_eq!(longest_carry_stack(&flat), T, "the flat loop keeps every carry");
    // Chunks of 3: 3 carries entering the chunks (and 1 for the step left over), 3 inside a chunk.
    let chunked = gradient_graph(&format!("range({T}, checkpoint: 3)"), DType::F64);
    assert_eq!(longest_carry_stack(&chunked), 3);
    let chunked = gradient_graph(&format!("range({T}, checkpoint: 5)"), DType::F64);
    assert_eq!(longest_carry_stack(&chunked), 5);
}

/// The matrix products in the bodies of the loops of `g` that run backwards (`reverse`), after
/// optimisation (dead-code elimination inside bodies).
fn products_in_backward_loops(g: &Graph) -> usize {
    let mut g = g.clone();
    netc::ir::opt::optimize(&mut g, None).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut count = 0;
    for node in &g.nodes {
        if let Op::Loop { spec, .. } = &node.op {
            if spec.reverse && seen.insert(std::sync::Arc::as_ptr(spec)) {
                count += spec.body.nodes.iter().filter(|n| matches!(n.op, Op::MatMul { .. })).count();
            }
        }
    }
    count
}

#[test]
fn the_backward_loop_reads_the_stored_step_values_instead_of_recomputing_them() {
    // The forward body has 2 products (h @ W, steps[t] @ U). Its VJP has 4: dh = dz Wᵀ,
    // dsteps = dz Uᵀ, dW += hᵀ dz, dU += steps[t]ᵀ dz, the last two hoisted out of the loop
    // (`opt::hoist`). Recomputing z would add the 2 forward ones.
    let flat = gradient_graph(&format!("range({T})"), DType::F64);
    assert_eq!(products_in_backward_loops(&flat), 2);
}
