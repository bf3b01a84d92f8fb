//! `cargo bench --bench batched`: batched matrix products (`@` with batch axes, issue #17),
//! JIT-compiled, in float32. For each shape: the forward product and the backward (both
//! operands' gradients, as autodiff builds them), milliseconds per call (the fastest sample). One JSON object
//! per line, read by `bench/batched.py`, which runs this at 1 and 2 threads beside PyTorch eager
//! (`bench/peer_torch_batched.py`, the same shapes and the same work).
//!
//! Threads: netc's GEMM pool has `MATMUL_NUM_THREADS` threads (read once; default the
//! physical cores).

use std::time::Instant;

use netc::codegen::CompileOptions;
use netc::drivers::jit;
use netc::ir::autodiff;
use netc::ir::graph::{DType, Dim, Graph, InputKind, Op};
use netc::runtime::rng::Rng;

/// (name, a's shape, b's shape, transpose b): the shapes `bench/peer_torch_batched.py` times.
pub const SHAPES: [(&str, &[usize], &[usize], bool); 4] = [
    ("attention scores q·kᵀ", &[32, 8, 64, 64], &[32, 8, 64, 64], true),
    ("attention values p·v", &[16, 4, 128, 128], &[16, 4, 128, 32], false),
    ("dense on a sequence", &[64, 128, 256], &[256, 256], false),
    ("many small", &[512, 16, 16], &[512, 16, 16], false),
];

/// Seconds per call: the fastest of 9 samples of enough calls to fill ~0.1 s each (on a
/// shared machine the fastest sample is the one least disturbed by other processes; the peer
/// measures the same way). With `BENCH_CLOCK=cpu`, CPU time of the process instead of wall
/// time (single-threaded runs on a busy machine: time spent waiting for the core is not
/// counted).
fn time(mut f: impl FnMut()) -> f64 {
    let cpu = std::env::var("BENCH_CLOCK").is_ok_and(|c| c == "cpu");
    let now = || if cpu { process_cpu_seconds() } else { WALL.with(|w| w.elapsed().as_secs_f64()) };
    f();
    let start = now();
    let mut calls = 0;
    while now() - start < 0.05 || calls < 2 {
        f();
        calls += 1;
    }
    let per = (now() - start) / calls as f64;
    let reps = ((0.1 / per) as usize).clamp(1, 10_000);
    let samples: Vec<f64> = (0..9)
        .map(|_| {
            let t = now();
            for _ in 0..reps {
                f();
            }
            (now() - t) / reps as f64
        })
        .collect();
    samples.into_iter().fold(f64::INFINITY, f64::min)
}

thread_local! {
    static WALL: Instant = Instant::now();
}

/// CPU time of this process (all threads), in seconds.
fn process_cpu_seconds() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec; the process clock always exists on Linux.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect()
}

fn main() {
    let threads = netc::runtime::threads::count();
    let opts = CompileOptions::default();
    for (name, sa, sb, tb) in SHAPES {
        let known = |s: &[usize]| s.iter().map(|&d| Dim::Known(d)).collect::<Vec<_>>();
        let mut g = Graph::new(DType::F32);
        let a = g.add_input("a", known(sa), InputKind::Data);
        let b = g.add_input("b", known(sb), InputKind::Data);
        // numpy matmul semantics, as the language's `@` lowers it (`[B, T, D] @ [D, E]` is one
        // product over B·T rows).
        let batch = if sb.len() == 2 { 0 } else { sa.len() - 2 };
        let contract = 1;
        let y = g.add(Op::MatMul { transpose_a: false, transpose_b: tb, batch, contract }, &[a, b]).unwrap();
        g.outputs = vec![("y".into(), y)];
        let mut forward = jit::compile(&g, &opts).unwrap();
        let ys: Vec<usize> = g.shape(y).iter().map(|d| d.known().unwrap()).collect();
        let (xa, xb) = (data(sa.iter().product(), 1), data(sb.iter().product(), 2));
        let mut out = vec![vec![0f32; ys.iter().product()]];
        let fwd = time(|| forward.run(&[&xa[..], &xb[..]], &mut Vec::<Vec<f32>>::new(), &mut out, &[]).unwrap());

        // Backward: da and db for an upstream gradient of y's shape.
        let mut gb = g.clone();
        let grads = autodiff::backward(&mut gb, y, &[a, b]).unwrap();
        gb.outputs = vec![("da".into(), grads.grads[0]), ("db".into(), grads.grads[1])];
        let mut backward = jit::compile(&gb, &opts).unwrap();
        let up = data(ys.iter().product(), 3);
        let mut outs = vec![vec![0f32; xa.len()], vec![0f32; xb.len()]];
        let bwd =
            time(|| backward.run(&[&xa[..], &xb[..], &up[..]], &mut Vec::<Vec<f32>>::new(), &mut outs, &[]).unwrap());
        let macs: usize = ys.iter().product::<usize>() * sa[sa.len() - 1];
        println!(
            "{{\"system\": \"netc\", \"shape\": \"{name}\", \"threads\": {threads}, \"forward_ms\": {:.4}, \"backward_ms\": {:.4}, \"gflops_forward\": {:.1}}}",
            fwd * 1e3,
            bwd * 1e3,
            2.0 * macs as f64 / fwd / 1e9
        );
    }
}
