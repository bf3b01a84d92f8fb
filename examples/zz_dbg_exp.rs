use netc::codegen::{CompileOptions, MathMode};
use netc::graph::{DType, Dim, Graph, InputKind, Op};
use std::time::Instant;
fn bench<T: netc::jit::Element>(op: Op, n: usize, mode: MathMode) -> f64 {
    let mut g = Graph::new(T::DTYPE);
    let x = g.add_input("x", vec![Dim::Known(n)], InputKind::Data);
    let y = g.add(op, &[x]).unwrap();
    g.outputs = vec![("y".into(), y)];
    let mut c = netc::jit::compile(&g, &CompileOptions { math: mode, verify: false, ..Default::default() }).unwrap();
    let xs: Vec<T> = (0..n).map(|i| T::from_f64((i % 100) as f64 * 0.1 - 5.0)).collect();
    let mut out = vec![vec![T::default(); n]];
    let reps = (50_000_000 / n).max(1);
    let t = Instant::now();
    for _ in 0..reps {
        c.run(&[&xs[..]], &mut Vec::<Vec<T>>::new(), &mut out, &[]).unwrap();
    }
    t.elapsed().as_secs_f64() / (reps * n) as f64 * 1e9
}
fn main() {
    for n in [4096, 1 << 20] {
        for op in [Op::Neg, Op::Exp, Op::Tanh] {
            println!(
                "n={n} {op:?} f32 inline {:.3} ns  libm {:.3}  | f64 inline {:.3} libm {:.3}",
                bench::<f32>(op.clone(), n, MathMode::Inline),
                bench::<f32>(op.clone(), n, MathMode::Libm),
                bench::<f64>(op.clone(), n, MathMode::Inline),
                bench::<f64>(op.clone(), n, MathMode::Libm)
            );
        }
    }
}
