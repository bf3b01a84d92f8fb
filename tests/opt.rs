//! The optimiser: one case per rewrite plus must-not-fire cases. Each checks the graph text
//! after optimising and that the optimised graph computes the same outputs (interpreter) as
//! the original.

use netc::ir::autodiff;
use netc::ir::graph::{DType, Dim, Graph, Init, InputKind, LoopSpec, Node, NodeId, Op, Shape, Slicing};
use netc::ir::interp;
use netc::ir::opt;
use netc::ir::tensor::Tensor;

fn dims(shape: &[usize]) -> Shape {
    shape.iter().map(|&n| Dim::Known(n)).collect()
}

fn add(g: &mut Graph, op: Op, inputs: &[NodeId]) -> NodeId {
    g.add(op, inputs).expect("valid op")
}

/// Deterministic, distinct, non-zero test values for every input and parameter of `g`, with
/// every symbol bound to 3.
fn sample_values(g: &Graph) -> (Vec<Tensor>, Vec<Tensor>) {
    let make = |k: usize, shape: &Shape| {
        let shape: Vec<usize> = shape.iter().map(|d| d.known().unwrap_or(3)).collect();
        let n = shape.iter().product();
        let data = (0..n).map(|i| 0.25 + ((i + 3 * k) as f64 * 0.618_033_988_75).fract() * 1.5).collect();
        Tensor::new(shape, data)
    };
    let inputs = g.inputs.iter().enumerate().map(|(k, i)| make(k, &i.shape)).collect();
    let params = g.params.iter().enumerate().map(|(k, p)| make(k + 10, &p.shape)).collect();
    (inputs, params)
}

/// Optimise a copy of `g`, check its text, and check it computes the same outputs.
fn assert_optimizes_to(g: &Graph, expected: &str) -> Graph {
    let mut o = g.clone();
    opt::optimize(&mut o, None).unwrap();
    assert_eq!(o.to_text(), expected, "\nbefore:\n{}\nafter:\n{}", g.to_text(), o.to_text());
    assert_same_outputs(g, &o);
    o
}

fn assert_same_outputs(before: &Graph, after: &Graph) {
    let (inputs, params) = sample_values(before);
    let want = interp::outputs(before, &inputs, &params).unwrap();
    let got = interp::outputs(after, &inputs, &params).unwrap();
    assert_eq!(want.len(), got.len());
    for (w, o) in want.iter().zip(&got) {
        assert_eq!(w.shape, o.shape);
        for (a, b) in w.data.iter().zip(&o.data) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()), "{a} != {b}\n{}", after.to_text());
        }
    }
}

/// A graph with input `x` of `shape`, and a function of it as output `y`.
fn unary(shape: &[usize], body: impl FnOnce(&mut Graph, NodeId) -> NodeId) -> Graph {
    let mut g = Graph::new(DType::F64);
    let x = g.add_input("x", dims(shape), InputKind::Data);
    let y = body(&mut g, x);
    g.outputs.push(("y".into(), y));
    g
}

/// Same with two inputs `x` and `z`.
fn binary(sx: &[usize], sz: &[usize], body: impl FnOnce(&mut Graph, NodeId, NodeId) -> NodeId) -> Graph {
    let mut g = Graph::new(DType::F64);
    let x = g.add_input("x", dims(sx), InputKind::Data);
    let z = g.add_input("z", dims(sz), InputKind::Data);
    let y = body(&mut g, x, z);
    g.outputs.push(("y".into(), y));
    g
}

const X: &str = "%0: [2, 3] = input x  # x\n";

// ---- simplify: arithmetic identities -------------------------------------------------------

#[test]
fn multiply_by_one() {
    // x * 1 == x;  1 * x == x
    let g = unary(&[2, 3], |g, x| {
        let one = g.constant(1.0);
        add(g, Op::Mul, &[x, one])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
    let g = unary(&[2, 3], |g, x| {
        let one = g.constant(1.0);
        let b = add(g, Op::Broadcast { shape: dims(&[2, 3]) }, &[one]);
        add(g, Op::Mul, &[b, x])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
}

#[test]
fn multiply_by_one_that_broadcasts_x_must_not_fire() {
    // x [3] * broadcast(1, [2, 3]) has shape [2, 3]: x alone would be the wrong shape.
    let g = unary(&[3], |g, x| {
        let one = g.constant(1.0);
        let b = add(g, Op::Broadcast { shape: dims(&[2, 3]) }, &[one]);
        add(g, Op::Mul, &[x, b])
    });
    assert_optimizes_to(
        &g,
        "%0: [3] = input x  # x\n%1: [] = const 1\n%2: [2, 3] = broadcast [2, 3](%1)\n%3: [2, 3] = mul(%0, %2)\noutput y = %3\n",
    );
}

#[test]
fn add_subtract_divide_power_identities() {
    // x + 0 == x;  0 + x == x;  x - 0 == x;  x / 1 == x;  x ^ 1 == x
    let cases: [(Op, f64, bool); 5] = [
        (Op::Add, 0.0, false),
        (Op::Add, 0.0, true),
        (Op::Sub, 0.0, false),
        (Op::Div, 1.0, false),
        (Op::Pow, 1.0, false),
    ];
    for (op, c, const_first) in cases {
        let g = unary(&[2, 3], |g, x| {
            let k = g.constant(c);
            add(g, op.clone(), &if const_first { [k, x] } else { [x, k] })
        });
        assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
    }
}

#[test]
fn zero_minus_x_is_negation() {
    // 0 - x == -x
    let g = unary(&[2, 3], |g, x| {
        let zero = g.constant(0.0);
        add(g, Op::Sub, &[zero, x])
    });
    assert_optimizes_to(&g, &format!("{X}%1: [2, 3] = neg(%0)\noutput y = %1\n"));
}

#[test]
fn double_negation() {
    // -(-x) == x
    let g = unary(&[2, 3], |g, x| {
        let n = add(g, Op::Neg, &[x]);
        add(g, Op::Neg, &[n])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
}

#[test]
fn adding_a_negation_is_subtraction() {
    // x + (-z) == x - z;  (-x) + z == z - x;  x - (-z) == x + z
    let g = binary(&[2, 3], &[3], |g, x, z| {
        let n = add(g, Op::Neg, &[z]);
        add(g, Op::Add, &[x, n])
    });
    assert_optimizes_to(
        &g,
        "%0: [2, 3] = input x  # x\n%1: [3] = input z  # z\n%2: [2, 3] = sub(%0, %1)\noutput y = %2\n",
    );
    let g = binary(&[2, 3], &[3], |g, x, z| {
        let n = add(g, Op::Neg, &[x]);
        add(g, Op::Add, &[n, z])
    });
    assert_optimizes_to(
        &g,
        "%0: [2, 3] = input x  # x\n%1: [3] = input z  # z\n%2: [2, 3] = sub(%1, %0)\noutput y = %2\n",
    );
    let g = binary(&[2, 3], &[3], |g, x, z| {
        let n = add(g, Op::Neg, &[z]);
        add(g, Op::Sub, &[x, n])
    });
    assert_optimizes_to(
        &g,
        "%0: [2, 3] = input x  # x\n%1: [3] = input z  # z\n%2: [2, 3] = add(%0, %1)\noutput y = %2\n",
    );
}

#[test]
fn multiply_a_mask_by_zero() {
    // m * 0 == 0 for a 0/1 mask m (finite whatever the inputs)
    let g = binary(&[2, 3], &[3], |g, x, z| {
        let m = add(g, Op::GreaterEq, &[x, z]);
        let zero = g.constant(0.0);
        add(g, Op::Mul, &[m, zero])
    });
    assert_optimizes_to(&g, "%0: [] = const 0\n%1: [2, 3] = broadcast [2, 3](%0)\noutput y = %1\n");
}

#[test]
fn multiply_an_input_by_zero_must_not_fire() {
    // x * 0 is NaN for x = inf or NaN, so it is not 0.
    let g = unary(&[2, 3], |g, x| {
        let zero = g.constant(0.0);
        add(g, Op::Mul, &[x, zero])
    });
    assert_optimizes_to(&g, &format!("{X}%1: [] = const 0\n%2: [2, 3] = mul(%0, %1)\noutput y = %2\n"));
}

// ---- simplify: layout identities -----------------------------------------------------------

#[test]
fn broadcast_and_reshape_to_the_same_shape() {
    // broadcast(x, shape of x) == x;  reshape(x, shape of x) == x
    let g = unary(&[2, 3], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 3]) }, &[x]);
        add(g, Op::Reshape { shape: dims(&[2, 3]) }, &[b])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
}

#[test]
fn reshape_of_a_broadcast_scalar() {
    // reshape(broadcast(c, [2, 3]), [6]) == broadcast(c, [6]): a fill has every shape
    let g = unary(&[], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 3]) }, &[x]);
        add(g, Op::Reshape { shape: dims(&[6]) }, &[b])
    });
    assert_optimizes_to(&g, "%0: [] = input x  # x\n%1: [6] = broadcast [6](%0)\noutput y = %1\n");
}

#[test]
fn reshape_of_reshape() {
    // reshape(reshape(x, s1), s2) == reshape(x, s2), and == x when s2 is x's shape
    let g = unary(&[2, 3], |g, x| {
        let r = add(g, Op::Reshape { shape: dims(&[6]) }, &[x]);
        add(g, Op::Reshape { shape: dims(&[3, 2]) }, &[r])
    });
    assert_optimizes_to(&g, &format!("{X}%1: [3, 2] = reshape [3, 2](%0)\noutput y = %1\n"));
    let g = unary(&[2, 3], |g, x| {
        let r = add(g, Op::Reshape { shape: dims(&[6]) }, &[x]);
        add(g, Op::Reshape { shape: dims(&[2, 3]) }, &[r])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
}

#[test]
fn elementwise_ops_broadcast_their_operands_themselves() {
    // x [2, 3] + broadcast(z [3], [2, 3]) == x + z
    let g = binary(&[2, 3], &[3], |g, x, z| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 3]) }, &[z]);
        add(g, Op::Add, &[x, b])
    });
    assert_optimizes_to(
        &g,
        "%0: [2, 3] = input x  # x\n%1: [3] = input z  # z\n%2: [2, 3] = add(%0, %1)\noutput y = %2\n",
    );
}

#[test]
fn a_broadcast_that_sets_the_result_shape_must_stay() {
    // broadcast(x [3], [2, 3]) * z [3]: without the broadcast the result would be [3].
    let g = binary(&[3], &[3], |g, x, z| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 3]) }, &[x]);
        add(g, Op::Mul, &[b, z])
    });
    assert_optimizes_to(
        &g,
        "%0: [3] = input x  # x\n%1: [3] = input z  # z\n%2: [2, 3] = broadcast [2, 3](%0)\n%3: [2, 3] = mul(%2, %1)\n\
         output y = %3\n",
    );
}

#[test]
fn broadcast_of_broadcast() {
    // broadcast(broadcast(x, s1), s2) == broadcast(x, s2)
    let g = unary(&[3], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 3]) }, &[x]);
        add(g, Op::Broadcast { shape: dims(&[4, 2, 3]) }, &[b])
    });
    assert_optimizes_to(&g, "%0: [3] = input x  # x\n%1: [4, 2, 3] = broadcast [4, 2, 3](%0)\noutput y = %1\n");
}

#[test]
fn transpose_of_transpose() {
    // transpose(transpose(x, p), q) == transpose(x, p∘q), and == x when that is the identity
    let g = unary(&[2, 3], |g, x| {
        let t = add(g, Op::Transpose { perm: vec![1, 0] }, &[x]);
        add(g, Op::Transpose { perm: vec![1, 0] }, &[t])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
    let g = unary(&[2, 3, 4], |g, x| {
        let t = add(g, Op::Transpose { perm: vec![1, 2, 0] }, &[x]);
        add(g, Op::Transpose { perm: vec![1, 0, 2] }, &[t])
    });
    assert_optimizes_to(&g, "%0: [2, 3, 4] = input x  # x\n%1: [4, 3, 2] = transpose [2, 1, 0](%0)\noutput y = %1\n");
}

#[test]
fn full_slices_and_empty_pads_and_sums() {
    // x[0..n] == x;  pad(x, 0, 0) == x;  sum(x, no axes) == x
    let g = unary(&[2, 3], |g, x| {
        let s = add(g, Op::Slice { axis: 1, start: 0, len: 3, step: 1 }, &[x]);
        let p = add(g, Op::Pad { axis: 0, before: 0, after: 0, step: 1 }, &[s]);
        add(g, Op::Sum { axes: vec![] }, &[p])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
}

#[test]
fn partial_slices_and_pads_must_not_fire() {
    let g = unary(&[2, 3], |g, x| {
        let s = add(g, Op::Slice { axis: 1, start: 1, len: 2, step: 1 }, &[x]);
        add(g, Op::Pad { axis: 0, before: 1, after: 0, step: 1 }, &[s])
    });
    assert_optimizes_to(
        &g,
        &format!("{X}%1: [2, 2] = slice axis=1 1..3(%0)\n%2: [3, 2] = pad axis=0 1,0(%1)\noutput y = %2\n"),
    );
}

#[test]
fn slices_of_a_concatenation_and_reversed_reversals() {
    // concat(a, b)[offset of b .. + len b] == b;  concat([x]) == x;  reverse(reverse(x)) == x
    let mut g = Graph::new(DType::F64);
    let a = g.add_input("a", dims(&[2, 3]), InputKind::Data);
    let b = g.add_input("b", dims(&[2, 2]), InputKind::Data);
    let c = add(&mut g, Op::Concat { axis: 1 }, &[a, b]);
    let back = add(&mut g, Op::Slice { axis: 1, start: 3, len: 2, step: 1 }, &[c]);
    let one = add(&mut g, Op::Concat { axis: 0 }, &[back]);
    let r = add(&mut g, Op::Reverse { axis: 0 }, &[one]);
    let rr = add(&mut g, Op::Reverse { axis: 0 }, &[r]);
    g.outputs.push(("y".into(), rr));
    assert_optimizes_to(&g, "%0: [2, 2] = input b  # b\noutput y = %0\n");
}

/// The ops of `g`'s nodes that are not leaves, by name (`add`, `pad`, `concat`, ...).
fn op_names(g: &Graph) -> Vec<String> {
    let names =
        g.nodes.iter().map(|n| format!("{:?}", n.op).split([' ', '{', '(']).next().unwrap_or("").to_lowercase());
    names.filter(|n| !["input", "const", "broadcast"].contains(&n.as_str())).collect()
}

/// x [1, 2, 3] placed at `start` of `size` along axis 0 (the gradient of a slice).
fn placed(g: &mut Graph, x: NodeId, start: usize, size: usize) -> NodeId {
    let len = g.shape(x)[0].known().unwrap();
    add(g, Op::Pad { axis: 0, before: start, after: size - start - len, step: 1 }, &[x])
}

#[test]
fn added_pads_that_do_not_overlap_are_a_concatenation() {
    // pad(a) + pad(b) + ... == concat([a, b, ...]) when the pieces tile the axis (an LSTM's
    // gate gradients, added in any order); with zeros left at the ends, a pad of the
    // concatenation; with zeros between pieces, a concatenation with zeros.
    let inputs = |g: &mut Graph, n: usize| -> Vec<NodeId> {
        (0..n).map(|k| g.add_input(&format!("x{k}"), dims(&[1, 2, 3]), InputKind::Data)).collect()
    };
    let mut g = Graph::new(DType::F64);
    let x = inputs(&mut g, 4);
    let p: Vec<NodeId> = (0..4).map(|k| placed(&mut g, x[k], k, 4)).collect();
    let s = add(&mut g, Op::Add, &[p[3], p[2]]);
    let s = add(&mut g, Op::Add, &[s, p[0]]);
    let s = add(&mut g, Op::Add, &[s, p[1]]);
    g.outputs.push(("y".into(), s));
    let mut o = g.clone();
    opt::optimize(&mut o, None).unwrap();
    assert_eq!(op_names(&o), ["concat"], "{}", o.to_text());
    assert_eq!(o.node(o.outputs[0].1).inputs, x, "in order along the axis:\n{}", o.to_text());
    assert_same_outputs(&g, &o);

    // Zeros at both ends: pad(concat([a, b])).
    let mut g = Graph::new(DType::F64);
    let x = inputs(&mut g, 2);
    let (a, b) = (placed(&mut g, x[0], 2, 5), placed(&mut g, x[1], 1, 5));
    let s = add(&mut g, Op::Add, &[a, b]);
    g.outputs.push(("y".into(), s));
    let o = assert_optimizes_to(
        &g,
        "%0: [1, 2, 3] = input x0  # x0\n%1: [1, 2, 3] = input x1  # x1\n\
         %2: [2, 2, 3] = concat axis=0(%1, %0)\n%3: [5, 2, 3] = pad axis=0 1,2(%2)\noutput y = %3\n",
    );
    assert_eq!(op_names(&o), ["concat", "pad"]);

    // Zeros between: concat([a, 0, b]).
    let mut g = Graph::new(DType::F64);
    let x = inputs(&mut g, 2);
    let (a, b) = (placed(&mut g, x[0], 0, 3), placed(&mut g, x[1], 2, 3));
    let s = add(&mut g, Op::Add, &[b, a]);
    g.outputs.push(("y".into(), s));
    let mut o = g.clone();
    opt::optimize(&mut o, None).unwrap();
    assert_eq!(op_names(&o), ["concat"], "{}", o.to_text());
    assert_same_outputs(&g, &o);
}

#[test]
fn added_pads_that_overlap_or_lie_along_other_axes_or_are_read_again_must_not_fire() {
    let mut g = Graph::new(DType::F64);
    let x = g.add_input("x", dims(&[2, 2, 3]), InputKind::Data);
    let z = g.add_input("z", dims(&[2, 2, 3]), InputKind::Data);
    // Overlapping: [0, 2) and [1, 3).
    let (a, b) = (placed(&mut g, x, 0, 3), placed(&mut g, z, 1, 3));
    let overlap = add(&mut g, Op::Add, &[a, b]);
    // Along different axes: x [2, 2, 3] padded to [3, 2, 3] and z' [3, 1, 3] padded to [3, 2, 3].
    let c = placed(&mut g, x, 1, 3);
    let w = g.add_input("w", dims(&[3, 1, 3]), InputKind::Data);
    let d = add(&mut g, Op::Pad { axis: 1, before: 1, after: 0, step: 1 }, &[w]);
    let across = add(&mut g, Op::Add, &[c, d]);
    // A pad that something else reads too.
    let e = placed(&mut g, z, 0, 4);
    let f = placed(&mut g, x, 2, 4);
    let shared = add(&mut g, Op::Add, &[e, f]);
    let again = add(&mut g, Op::Exp, &[e]);
    g.outputs = vec![("o".into(), overlap), ("a".into(), across), ("s".into(), shared), ("e".into(), again)];
    let mut o = g.clone();
    opt::optimize(&mut o, None).unwrap();
    assert_eq!(op_names(&o).iter().filter(|n| *n == "concat").count(), 0, "{}", o.to_text());
    assert_eq!(op_names(&o).iter().filter(|n| *n == "add").count(), 3, "{}", o.to_text());
    assert_same_outputs(&g, &o);
}

#[test]
fn slices_across_operands_and_other_reversals_must_not_fire() {
    // A slice straddling two operands, a strided one, and reversals of different axes stay.
    let mut g = Graph::new(DType::F64);
    let a = g.add_input("a", dims(&[2, 3]), InputKind::Data);
    let b = g.add_input("b", dims(&[2, 2]), InputKind::Data);
    let c = add(&mut g, Op::Concat { axis: 1 }, &[a, b]);
    let straddle = add(&mut g, Op::Slice { axis: 1, start: 2, len: 2, step: 1 }, &[c]);
    let strided = add(&mut g, Op::Slice { axis: 1, start: 3, len: 1, step: 2 }, &[c]);
    let r0 = add(&mut g, Op::Reverse { axis: 0 }, &[straddle]);
    let r1 = add(&mut g, Op::Reverse { axis: 1 }, &[r0]);
    g.outputs.push(("y".into(), r1));
    g.outputs.push(("z".into(), strided));
    assert_optimizes_to(
        &g,
        "%0: [2, 3] = input a  # a\n%1: [2, 2] = input b  # b\n%2: [2, 5] = concat axis=1(%0, %1)\n\
         %3: [2, 2] = slice axis=1 2..4(%2)\n%4: [2, 1] = slice axis=1 3..4:2(%2)\n\
         %5: [2, 2] = reverse axis=0(%3)\n%6: [2, 2] = reverse axis=1(%5)\noutput y = %6\noutput z = %4\n",
    );
}

#[test]
fn a_transposed_product_is_the_product_of_the_swapped_operands() {
    // transpose(a @ b) == bᵀ @ aᵀ, with batch axes (and a broadcast one) kept in place
    let mut g = Graph::new(DType::F64);
    let a = g.add_input("a", dims(&[2, 1, 4, 3]), InputKind::Data);
    let b = g.add_input("b", dims(&[1, 3, 5, 3]), InputKind::Data);
    let p = add(&mut g, Op::MatMul { transpose_a: false, transpose_b: true, batch: 2, contract: 1 }, &[a, b]);
    let t = add(&mut g, Op::Transpose { perm: vec![0, 1, 3, 2] }, &[p]);
    g.outputs.push(("y".into(), t));
    assert_optimizes_to(
        &g,
        "%0: [2, 1, 4, 3] = input a  # a\n%1: [1, 3, 5, 3] = input b  # b\n\
         %2: [2, 3, 5, 4] = matmul bT batch=2(%1, %0)\noutput y = %2\n",
    );
}

#[test]
fn a_transposed_product_with_other_readers_or_other_axes_must_not_fire() {
    // The product is also an output (swapping would compute it twice); a transpose that
    // moves a batch axis is not the product's transpose.
    let mut g = Graph::new(DType::F64);
    let a = g.add_input("a", dims(&[2, 4, 3]), InputKind::Data);
    let b = g.add_input("b", dims(&[2, 3, 5]), InputKind::Data);
    let p = add(&mut g, Op::MatMul { transpose_a: false, transpose_b: false, batch: 1, contract: 1 }, &[a, b]);
    let t = add(&mut g, Op::Transpose { perm: vec![0, 2, 1] }, &[p]);
    g.outputs.push(("y".into(), t));
    g.outputs.push(("p".into(), p));
    let q = add(&mut g, Op::MatMul { transpose_a: false, transpose_b: false, batch: 1, contract: 1 }, &[a, b]);
    let moved = add(&mut g, Op::Transpose { perm: vec![1, 0, 2] }, &[q]);
    g.outputs.push(("z".into(), moved));
    assert_optimizes_to(
        &g,
        "%0: [2, 4, 3] = input a  # a\n%1: [2, 3, 5] = input b  # b\n\
         %2: [2, 4, 5] = matmul batch=1(%0, %1)\n%3: [2, 5, 4] = transpose [0, 2, 1](%2)\n\
         %4: [4, 2, 5] = transpose [1, 0, 2](%2)\noutput y = %3\noutput p = %2\noutput z = %4\n",
    );
}

// ---- simplify: sum of a broadcast ------------------------------------------------------------

#[test]
fn sum_of_a_broadcast_is_a_multiply() {
    // Σ_i broadcast(x, [4, 3])[i] == x * 4
    let g = unary(&[3], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[4, 3]) }, &[x]);
        add(g, Op::Sum { axes: vec![0] }, &[b])
    });
    assert_optimizes_to(&g, "%0: [3] = input x  # x\n%1: [] = const 4\n%2: [3] = mul(%0, %1)\noutput y = %2\n");
}

#[test]
fn sum_of_a_broadcast_over_a_symbolic_batch() {
    // Σ_b broadcast(x, [B, 3])[b] == x * B, with B's run-time size
    let mut g = Graph::new(DType::F64);
    let b = g.symbol("B");
    let x = g.add_input("x", dims(&[3]), InputKind::Data);
    let batch = g.add_input("batch", vec![Dim::Sym(b)], InputKind::Data); // binds B
    let bx = add(&mut g, Op::Broadcast { shape: vec![Dim::Sym(b), Dim::Known(3)] }, &[x]);
    let s = add(&mut g, Op::Sum { axes: vec![0] }, &[bx]);
    g.outputs.push(("y".into(), s));
    g.outputs.push(("batch".into(), batch));
    assert_optimizes_to(
        &g,
        "%0: [3] = input x  # x\n%1: [B] = input batch  # batch\n%2: [] = dim B\n%3: [3] = mul(%0, %2)\n\
         output y = %3\noutput batch = %1\n",
    );
}

#[test]
fn sum_of_a_broadcast_over_stretched_and_real_axes() {
    // Σ_ij broadcast(x [2, 1], [2, 5])_ij == (Σ_i x_i0) * 5
    let g = unary(&[2, 1], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 5]) }, &[x]);
        add(g, Op::Sum { axes: vec![0, 1] }, &[b])
    });
    assert_optimizes_to(
        &g,
        "%0: [2, 1] = input x  # x\n%1: [] = sum axes=[0, 1](%0)\n%2: [] = const 5\n%3: [] = mul(%1, %2)\noutput y = %3\n",
    );
}

#[test]
fn sum_over_some_stretched_axes_of_a_broadcast() {
    // Σ_j broadcast(x [1, 1], [4, 5])_ij == broadcast(reshape(x, [1]) * 5, [4])
    let g = unary(&[1, 1], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[4, 5]) }, &[x]);
        add(g, Op::Sum { axes: vec![1] }, &[b])
    });
    assert_optimizes_to(
        &g,
        "%0: [1, 1] = input x  # x\n%1: [1] = reshape [1](%0)\n%2: [] = const 5\n%3: [1] = mul(%1, %2)\n\
         %4: [4] = broadcast [4](%3)\noutput y = %4\n",
    );
    // Σ_j broadcast(x [3], [2, 4, 3])_ijk over the prepended axis 1: x * 4, broadcast to [2, 3]
    let g = unary(&[3], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 4, 3]) }, &[x]);
        add(g, Op::Sum { axes: vec![1] }, &[b])
    });
    assert_optimizes_to(
        &g,
        "%0: [3] = input x  # x\n%1: [] = const 4\n%2: [3] = mul(%0, %1)\n%3: [2, 3] = broadcast [2, 3](%2)\n\
         output y = %3\n",
    );
}

#[test]
fn broadcast_of_a_reshape_that_adds_leading_units() {
    // broadcast(reshape(x, [1, 1, 3]), [2, 4, 3]) == broadcast(x, [2, 4, 3])
    let g = unary(&[3], |g, x| {
        let r = add(g, Op::Reshape { shape: dims(&[1, 1, 3]) }, &[x]);
        add(g, Op::Broadcast { shape: dims(&[2, 4, 3]) }, &[r])
    });
    assert_optimizes_to(&g, "%0: [3] = input x  # x\n%1: [2, 4, 3] = broadcast [2, 4, 3](%0)\noutput y = %1\n");
    // A reshape that moves elements between axes must stay: [2, 3] -> [3, 2].
    let g = unary(&[2, 3], |g, x| {
        let r = add(g, Op::Reshape { shape: dims(&[3, 2]) }, &[x]);
        add(g, Op::Broadcast { shape: dims(&[4, 3, 2]) }, &[r])
    });
    assert_optimizes_to(
        &g,
        &format!("{X}%1: [3, 2] = reshape [3, 2](%0)\n%2: [4, 3, 2] = broadcast [4, 3, 2](%1)\noutput y = %2\n"),
    );
}

#[test]
fn sum_of_a_broadcast_over_unstretched_axes_only_must_not_fire() {
    // Σ_i broadcast(x [2, 1], [2, 5])_ij sums real values of x: no shortcut.
    let g = unary(&[2, 1], |g, x| {
        let b = add(g, Op::Broadcast { shape: dims(&[2, 5]) }, &[x]);
        add(g, Op::Sum { axes: vec![0] }, &[b])
    });
    assert_optimizes_to(
        &g,
        "%0: [2, 1] = input x  # x\n%1: [2, 5] = broadcast [2, 5](%0)\n%2: [5] = sum axes=[0](%1)\noutput y = %2\n",
    );
}

// ---- fold ----------------------------------------------------------------------------------

#[test]
fn fold_constant_arithmetic() {
    // (2 * 3) + exp(0) == 7, and [1, 2] * 2 == [2, 4]
    let g = unary(&[2], |g, x| {
        let (two, three, zero) = (g.constant(2.0), g.constant(3.0), g.constant(0.0));
        let six = add(g, Op::Mul, &[two, three]);
        let one = add(g, Op::Exp, &[zero]);
        let seven = add(g, Op::Add, &[six, one]);
        let lit = g.push(Node {
            op: Op::Literal { values: [1.0, 2.0].into() },
            inputs: vec![],
            shape: dims(&[2]),
            name: None,
            span: None,
        });
        let doubled = add(g, Op::Mul, &[lit, two]);
        let k = add(g, Op::Mul, &[x, doubled]);
        add(g, Op::Add, &[k, seven])
    });
    assert_optimizes_to(
        &g,
        "%0: [2] = input x  # x\n%1: [] = const 7\n%2: [2] = literal [2.0, 4.0]\n%3: [2] = mul(%0, %2)\n\
         %4: [2] = add(%3, %1)\noutput y = %4\n",
    );
}

#[test]
fn fold_must_not_grow_constants_or_touch_symbols() {
    // broadcast(0, [100, 100]) stays a broadcast (not a 10,000-element literal); B * 2 is not
    // known until run time.
    let mut g = Graph::new(DType::F64);
    let b = g.symbol("B");
    let x = g.add_input("x", vec![Dim::Sym(b)], InputKind::Data);
    let zero = g.constant(0.0);
    let big = add(&mut g, Op::Broadcast { shape: dims(&[100, 100]) }, &[zero]);
    let n =
        g.push(Node { op: Op::DimSize { dim: Dim::Sym(b) }, inputs: vec![], shape: vec![], name: None, span: None });
    let two = g.constant(2.0);
    let n2 = add(&mut g, Op::Mul, &[n, two]);
    let y = add(&mut g, Op::Mul, &[x, n2]);
    g.outputs = vec![("big".into(), big), ("y".into(), y)];
    assert_optimizes_to(
        &g,
        "%0: [B] = input x  # x\n%1: [] = const 0\n%2: [100, 100] = broadcast [100, 100](%1)\n%3: [] = dim B\n\
         %4: [] = const 2\n%5: [] = mul(%3, %4)\n%6: [B] = mul(%0, %5)\noutput big = %2\noutput y = %6\n",
    );
}

#[test]
fn fold_rounds_like_f32() {
    // In an f32 graph, 1/3 folds to the f32 nearest 1/3, as the interpreter computes it.
    let mut g = Graph::new(DType::F32);
    let (one, three) = (g.constant(1.0), g.constant(3.0));
    let third = add(&mut g, Op::Div, &[one, three]);
    g.outputs.push(("y".into(), third));
    let o = assert_optimizes_to(&g, &format!("%0: [] = const {}\noutput y = %0\n", (1.0f64 / 3.0) as f32 as f64));
    assert_eq!(o.nodes[0].op, Op::Const { value: (1.0f64 / 3.0) as f32 as f64 });
}

// ---- cse and dce ---------------------------------------------------------------------------

#[test]
fn cse_merges_equal_nodes() {
    // exp(x) + exp(x) computes exp(x) once
    let g = unary(&[2, 3], |g, x| {
        let a = add(g, Op::Exp, &[x]);
        let b = add(g, Op::Exp, &[x]);
        add(g, Op::Add, &[a, b])
    });
    assert_optimizes_to(&g, &format!("{X}%1: [2, 3] = exp(%0)\n%2: [2, 3] = add(%1, %1)\noutput y = %2\n"));
}

#[test]
fn cse_must_not_merge_different_operands_or_constants() {
    let g = binary(&[2, 3], &[2, 3], |g, x, z| {
        let a = add(g, Op::Exp, &[x]);
        let b = add(g, Op::Exp, &[z]);
        let (two, three) = (g.constant(2.0), g.constant(3.0));
        let a2 = add(g, Op::Pow, &[a, two]);
        let b3 = add(g, Op::Pow, &[b, three]);
        add(g, Op::Add, &[a2, b3])
    });
    assert_optimizes_to(
        &g,
        "%0: [2, 3] = input x  # x\n%1: [2, 3] = input z  # z\n%2: [2, 3] = exp(%0)\n%3: [2, 3] = exp(%1)\n\
         %4: [] = const 2\n%5: [] = const 3\n%6: [2, 3] = pow(%2, %4)\n%7: [2, 3] = pow(%3, %5)\n\
         %8: [2, 3] = add(%6, %7)\noutput y = %8\n",
    );
}

#[test]
fn dce_removes_unused_nodes_but_keeps_input_numbering() {
    // `z` is unused: its node goes, but inputs[1] stays so runtimes still bind by index.
    let mut g = Graph::new(DType::F64);
    let z = g.add_input("z", dims(&[2]), InputKind::Data);
    let x = g.add_input("x", dims(&[2]), InputKind::Data);
    let w = g.add_param("w", dims(&[2]), Init::Zeros);
    let _unused = add(&mut g, Op::Exp, &[z]);
    let y = add(&mut g, Op::Mul, &[x, w]);
    let step = add(&mut g, Op::Neg, &[w]);
    g.outputs.push(("y".into(), y));
    g.updates.push((0, step)); // an update keeps its node alive
    let o = assert_optimizes_to(
        &g,
        "%0: [2] = input x  # x\n%1: [2] = param w  # w\n%2: [2] = mul(%0, %1)\n%3: [2] = neg(%1)\noutput y = %2\n",
    );
    assert_eq!(o.inputs.len(), 2);
    assert_eq!(o.nodes[0].op, Op::Input { index: 1 });
    assert_eq!(o.updates, vec![(0, NodeId(3))]);
}

#[test]
fn dce_leaves_a_graph_without_outputs_alone() {
    let mut g = Graph::new(DType::F64);
    let x = g.add_input("x", dims(&[2]), InputKind::Data);
    add(&mut g, Op::Exp, &[x]);
    assert!(!opt::run_pass(&mut g, "dce").unwrap());
    assert_eq!(g.nodes.len(), 2);
}

// ---- the pipeline --------------------------------------------------------------------------

#[test]
fn optimizing_a_backward_graph_keeps_its_values() {
    // A two-layer net's gradients: the optimiser removes the unit multiplies, zero adds and
    // duplicate constants autodiff leaves, without changing any gradient.
    let mut g = Graph::new(DType::F64);
    let x = g.add_input("x", dims(&[4, 3]), InputKind::Data);
    let w1 = g.add_param("W1", dims(&[3, 5]), Init::Zeros);
    let b1 = g.add_param("b1", dims(&[5]), Init::Zeros);
    let w2 = g.add_param("W2", dims(&[5, 2]), Init::Zeros);
    let mm = Op::matmul(false, false);
    let h = add(&mut g, mm.clone(), &[x, w1]);
    let h = add(&mut g, Op::Add, &[h, b1]);
    let zero = g.constant(0.0);
    let h = add(&mut g, Op::Max, &[zero, h]);
    let s = add(&mut g, mm, &[h, w2]);
    let lp = add(&mut g, Op::LogSoftmax { axis: 1 }, &[s]);
    let total = add(&mut g, Op::Sum { axes: vec![0, 1] }, &[lp]);
    let four = g.constant(4.0);
    let loss = add(&mut g, Op::Div, &[total, four]);
    let grads = autodiff::differentiate(&mut g, loss, &[w1, b1, w2]).unwrap();
    g.outputs = vec![("loss".into(), loss)];
    for (name, d) in ["d_W1", "d_b1", "d_W2"].iter().zip(grads) {
        g.outputs.push((name.to_string(), d));
    }
    let mut o = g.clone();
    opt::optimize(&mut o, None).unwrap();
    assert_same_outputs(&g, &o);
    assert!(o.nodes.len() < g.nodes.len(), "{}", o.to_text());
    // Idempotent: a second run finds nothing to do.
    let text = o.to_text();
    opt::optimize(&mut o, None).unwrap();
    assert_eq!(o.to_text(), text);
}

#[test]
fn print_after_a_pass() {
    let g = unary(&[2, 3], |g, x| {
        let one = g.constant(1.0);
        let m = add(g, Op::Mul, &[x, one]);
        add(g, Op::Exp, &[m])
    });
    let mut o = g.clone();
    let text = opt::optimize(&mut o, Some("simplify")).unwrap();
    assert_eq!(text, format!("// after simplify, round 1\n{X}%1: [] = const 1\n%2: [2, 3] = exp(%0)\noutput y = %2\n"));
    let text = opt::optimize(&mut o, Some("fold")).unwrap();
    assert_eq!(text, format!("// after fold, round 1 (no change)\n{X}%1: [2, 3] = exp(%0)\noutput y = %1\n"));
    let err = opt::optimize(&mut o, Some("inline")).unwrap_err();
    assert!(err.contains("unknown pass `inline`") && err.contains("fold, simplify, cse, dce"), "{err}");
}

// ---- where with a constant condition ---------------------------------------------------------

#[test]
fn where_of_a_constant_condition_is_the_chosen_operand() {
    // where(1, x, z) == x;  where(0, x, z) == z   (attention's default mask 1)
    let g = binary(&[2, 3], &[2, 3], |g, x, z| {
        let one = g.constant(1.0);
        add(g, Op::Where, &[one, x, z])
    });
    assert_optimizes_to(&g, &format!("{X}output y = %0\n"));
    let g = binary(&[2, 3], &[2, 3], |g, x, z| {
        let zero = g.constant(0.0);
        add(g, Op::Where, &[zero, x, z])
    });
    assert_optimizes_to(&g, "%0: [2, 3] = input z  # z\noutput y = %0\n");
}

#[test]
fn where_of_a_constant_condition_that_broadcasts_must_not_fire() {
    // where(1, x [3], z [2, 3]) has shape [2, 3]: x alone would be the wrong shape; and a
    // condition that is not constant decides nothing at compile time.
    let g = binary(&[3], &[2, 3], |g, x, z| {
        let one = g.constant(1.0);
        add(g, Op::Where, &[one, x, z])
    });
    assert_optimizes_to(
        &g,
        "%0: [3] = input x  # x\n%1: [2, 3] = input z  # z\n%2: [] = const 1\n%3: [2, 3] = where(%2, %0, %1)\noutput y = %3\n",
    );
    let g = binary(&[2, 3], &[2, 3], |g, x, z| add(g, Op::Where, &[x, x, z]));
    assert_optimizes_to(&g, &format!("{X}%1: [2, 3] = input z  # z\n%2: [2, 3] = where(%0, %0, %1)\noutput y = %2\n"));
}

// ---- hoist: products a loop adds up --------------------------------------------------------

/// A loop over x [5, 2, 4] with carries h [2, 4] (h' = tanh(h @ W + x_t)) and acc [4, 4]
/// (acc' = acc + `product`(x_t, h', ...)), stacking h' along axis 1; outputs the final acc
/// and the stack, `reverse` or not. `product` builds the term from the body's x_t and h'.
fn accumulating_loop(reverse: bool, product: impl Fn(&mut Graph, NodeId, NodeId) -> NodeId) -> Graph {
    let mut body = Graph::new(DType::F64);
    let h = body.add_input("h", dims(&[2, 4]), InputKind::Variable);
    let acc = body.add_input("acc", dims(&[4, 4]), InputKind::Variable);
    let x = body.add_input("x_t", dims(&[2, 4]), InputKind::Variable);
    let w = body.add_input("W", dims(&[4, 4]), InputKind::Variable);
    let hw = add(&mut body, Op::matmul(false, false), &[h, w]);
    let s = add(&mut body, Op::Add, &[hw, x]);
    let h2 = add(&mut body, Op::Tanh, &[s]);
    let term = product(&mut body, x, h2);
    let acc2 = add(&mut body, Op::Add, &[acc, term]);
    body.outputs = vec![("h".into(), h2), ("acc".into(), acc2), ("hs".into(), h2)];
    let spec = LoopSpec::new(body, 5, reverse, 2, vec![Slicing::along(0)], vec![Slicing::along(1)]).unwrap();
    let spec = std::sync::Arc::new(spec);
    let mut g = Graph::new(DType::F64);
    let h0 = g.add_input("h0", dims(&[2, 4]), InputKind::Data);
    let acc0 = g.add_input("acc0", dims(&[4, 4]), InputKind::Data);
    let xs = g.add_input("x", dims(&[5, 2, 4]), InputKind::Data);
    let w = g.add_input("W", dims(&[4, 4]), InputKind::Data);
    let operands = [h0, acc0, xs, w];
    let total = add(&mut g, Op::Loop { spec: spec.clone(), output: 1 }, &operands);
    let stack = add(&mut g, Op::Loop { spec, output: 2 }, &operands);
    g.outputs = vec![("acc".into(), total), ("hs".into(), stack)];
    g
}

/// The carries of every loop of `g`, and the products outside loops (contracted axes each).
fn loops_and_products(g: &Graph) -> (Vec<usize>, Vec<usize>) {
    let carries = g.nodes.iter().filter_map(|n| match &n.op {
        Op::Loop { spec, .. } => Some(spec.carries),
        _ => None,
    });
    let mut carries: Vec<usize> = carries.collect();
    carries.dedup();
    let products = g.nodes.iter().filter_map(|n| match n.op {
        Op::MatMul { contract, .. } => Some(contract),
        _ => None,
    });
    (carries, products.collect())
}

#[test]
fn a_product_a_loop_adds_up_is_one_product_after_it() {
    // acc + Σ_t op(p_t) @ op(q_t) for each transposition of p and q, with p the per-step
    // slice itself (ta: x_t is [inner, rows], stacked already by x) or a transpose of it (a new
    // stack along axis 1), q the new h (a new stack along axis 0, or 1 when transposed).
    let t = |g: &mut Graph, v: NodeId| add(g, Op::Transpose { perm: vec![1, 0] }, &[v]);
    for reverse in [false, true] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let g = accumulating_loop(reverse, |g, x, h| {
                let p = if ta { x } else { t(g, x) };
                let q = if tb { t(g, h) } else { h };
                add(g, Op::matmul(ta, tb), &[p, q])
            });
            let mut o = g.clone();
            opt::optimize(&mut o, None).unwrap();
            assert_eq!(loops_and_products(&o), (vec![1], vec![2]), "ta {ta}, tb {tb}:\n{}", o.to_text());
            assert_same_outputs(&g, &o);
        }
    }
}

#[test]
fn a_product_a_loop_reads_or_that_reads_no_step_must_not_be_hoisted() {
    let unchanged = |g: &Graph| {
        let mut o = g.clone();
        opt::optimize(&mut o, None).unwrap();
        assert_eq!(loops_and_products(&o).0, vec![2], "{}", o.to_text());
        assert_same_outputs(g, &o);
    };
    // The term reads the running sum.
    unchanged(&accumulating_loop(false, |g, x, h| {
        let acc = NodeId(1);
        let p = add(g, Op::Mul, &[x, h]);
        let read = add(g, Op::matmul(false, false), &[p, acc]);
        add(g, Op::matmul(true, false), &[x, read])
    }));
    // The same product every step (of an invariant): nothing to stack.
    unchanged(&accumulating_loop(false, |g, _, _| {
        let w = NodeId(3);
        add(g, Op::matmul(false, false), &[w, w])
    }));
    // The term is not a product.
    unchanged(&accumulating_loop(false, |g, x, h| {
        let p = add(g, Op::matmul(true, false), &[x, h]);
        add(g, Op::Tanh, &[p])
    }));
}
