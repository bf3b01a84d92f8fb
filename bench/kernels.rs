//! `cargo bench --bench kernels`: the code generator's speed, each figure beside its reference
//! measured in the same run.
//!
//! - GEMM GFLOP/s: a JIT-compiled `MatMul` graph (generated function -> GEMM symbol) and the
//!   symbol alone (split across netc's GEMM threads), beside one single-threaded
//!   `matrixmultiply` call, on the shapes.
//! - GEMM threads: the symbol's split on the worker pool against one call, on the shapes of
//!   the W2, W3 and W7 train steps.
//! - Convolution GFLOP/s (im2col + GEMM per image, forward and both gradients).
//! - Transcendentals: inline vector polynomials vs libm calls, ns per element.
//! - A fused elementwise chain in GB/s, compile time and step time of CNN train steps.
//!
//! Threads: the GEMM symbols split large products across `netc::runtime::threads::count()` threads
//! (MATMUL_NUM_THREADS, read once; default: the physical cores); run with
//! MATMUL_NUM_THREADS=1 for single-thread figures.

use std::hint::black_box;
use std::time::Instant;

use netc::codegen::{CompileOptions, MathMode};
use netc::drivers::jit::{self, Element};
use netc::ir::graph::{DType, Dim, Graph, InputKind, Op, Shape};
use netc::runtime::rng::Rng;

fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

/// Median seconds per call of `f`, over enough calls to fill ~0.3 s per sample.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed().as_secs_f64() < 0.05 || calls < 2 {
        f();
        calls += 1;
    }
    let per = start.elapsed().as_secs_f64() / calls as f64;
    let reps = ((0.3 / per) as usize).clamp(1, 10_000);
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn random<T: Element>(n: usize, seed: u64) -> Vec<T> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| T::from_f64(rng.uniform_in(-1.0, 1.0))).collect()
}

fn gemm_row<T: Element>(m: usize, n: usize, k: usize) {
    let flops = 2.0 * (m * n * k) as f64;
    let mut g = Graph::new(T::DTYPE);
    let a = g.add_input("a", known(&[m, k]), InputKind::Data);
    let b = g.add_input("b", known(&[k, n]), InputKind::Data);
    let c = g.add(Op::matmul(false, false), &[a, b]).unwrap();
    g.outputs = vec![("c".into(), c)];
    let mut f = jit::compile(&g, &CompileOptions::default()).unwrap();
    let (xa, xb) = (random::<T>(m * k, 1), random::<T>(k * n, 2));
    let mut out = vec![vec![T::default(); m * n]];
    let jit_s = time(|| f.run(&[&xa[..], &xb[..]], &mut Vec::<Vec<T>>::new(), &mut out, &[]).unwrap());

    let mut cbuf = vec![T::default(); m * n];
    let (pa, pb, pc) = (xa.as_ptr(), xb.as_ptr(), cbuf.as_mut_ptr());
    let (mi, ki, ni) = (m as i64, k as i64, n as i64);
    let sym_s = time(|| unsafe {
        match T::DTYPE {
            DType::F32 => netc::runtime::symbols::netc_gemm_f32(
                mi, ki, ni, 1.0, pa as _, ki, 1, pb as _, ni, 1, 0.0, pc as _, ni, 1,
            ),
            DType::F64 => netc::runtime::symbols::netc_gemm_f64(
                mi, ki, ni, 1.0, pa as _, ki, 1, pb as _, ni, 1, 0.0, pc as _, ni, 1,
            ),
        }
    });
    let crate_s = time(|| unsafe {
        let (k_, n_) = (k as isize, n as isize);
        match T::DTYPE {
            DType::F32 => matrixmultiply::sgemm(m, k, n, 1.0, pa as _, k_, 1, pb as _, n_, 1, 0.0, pc as _, n_, 1),
            DType::F64 => matrixmultiply::dgemm(m, k, n, 1.0, pa as _, k_, 1, pb as _, n_, 1, 0.0, pc as _, n_, 1),
        }
    });
    black_box(&cbuf);
    let gf = |s: f64| flops / s / 1e9;
    println!(
        "  {:>5}×{:<4}×{:<4} {:>4}   {:>8.1}   {:>8.1}   {:>8.1}",
        m,
        n,
        k,
        T::DTYPE,
        gf(jit_s),
        gf(sym_s),
        gf(crate_s)
    );
}

fn conv_row(n: usize, c: usize, hw: usize, f: usize, k: usize) {
    let pad = k / 2;
    let flops = 2.0 * (n * f * hw * hw * c * k * k) as f64;
    let mut rows = vec![];
    for (name, op, shapes) in [
        ("conv2d", Op::Conv2d { stride: 1, pad }, vec![vec![n, c, hw, hw], vec![f, c, k, k]]),
        (
            "input grad",
            Op::Conv2dInputGrad { stride: 1, pad, height: hw, width: hw },
            vec![vec![n, f, hw, hw], vec![f, c, k, k]],
        ),
        (
            "filter grad",
            Op::Conv2dFilterGrad { stride: 1, pad, kernel_h: k, kernel_w: k },
            vec![vec![n, c, hw, hw], vec![n, f, hw, hw]],
        ),
    ] {
        let mut g = Graph::new(DType::F32);
        let ids: Vec<_> =
            shapes.iter().enumerate().map(|(i, s)| g.add_input(&format!("x{i}"), known(s), InputKind::Data)).collect();
        let y = g.add(op, &ids).unwrap();
        let out_len: usize = g.shape(y).iter().map(|d| d.known().unwrap()).product();
        g.outputs = vec![("y".into(), y)];
        let mut fc = jit::compile(&g, &CompileOptions::default()).unwrap();
        let xs: Vec<Vec<f32>> = shapes.iter().enumerate().map(|(i, s)| random(s.iter().product(), i as u64)).collect();
        let mut out = vec![vec![0.0f32; out_len]];
        let s = time(|| fc.run(&xs, &mut Vec::<Vec<f32>>::new(), &mut out, &[]).unwrap());
        rows.push(format!("{name} {:.1}", flops / s / 1e9));
    }
    // The same work as one GEMM of the batched im2col shape, straight to the crate.
    let (m, nn, kk) = (n * hw * hw, f, c * k * k);
    let (a, b) = (random::<f32>(m * kk, 1), random::<f32>(kk * nn, 2));
    let mut cbuf = vec![0.0f32; m * nn];
    let s = time(|| unsafe {
        matrixmultiply::sgemm(
            m,
            kk,
            nn,
            1.0,
            a.as_ptr(),
            kk as isize,
            1,
            b.as_ptr(),
            nn as isize,
            1,
            0.0,
            cbuf.as_mut_ptr(),
            nn as isize,
            1,
        )
    });
    println!(
        "  N={n} C={c} {hw}×{hw} F={f} K={k}: {}   | matrixmultiply {m}×{nn}×{kk}: {:.1}",
        rows.join("  "),
        flops / s / 1e9
    );
}

fn math_row<T: Element>(op: Op) {
    // 16K elements: in cache, so the figure is the arithmetic, not memory bandwidth.
    let n = 1 << 14;
    let mut per = vec![];
    for mode in [MathMode::Inline, MathMode::Libm] {
        let mut g = Graph::new(T::DTYPE);
        let x = g.add_input("x", known(&[n]), InputKind::Data);
        let y = g.add(op.clone(), &[x]).unwrap();
        g.outputs = vec![("y".into(), y)];
        let mut f = jit::compile(&g, &CompileOptions { math: mode, ..CompileOptions::default() }).unwrap();
        let xs: Vec<T> = random::<T>(n, 3).into_iter().map(|v| T::from_f64(v.to_f64() * 5.0 + 5.5)).collect();
        let mut out = vec![vec![T::default(); n]];
        per.push(time(|| f.run(&[&xs[..]], &mut Vec::<Vec<T>>::new(), &mut out, &[]).unwrap()) / n as f64 * 1e9);
    }
    println!(
        "  {:<8} {:>4}   inline {:>6.2} ns   libm {:>6.2} ns   ({:.1}×)",
        format!("{op:?}"),
        T::DTYPE,
        per[0],
        per[1],
        per[1] / per[0]
    );
}

/// relu(x @ W + b) at [B, N]: the epilogue (+ b, relu) is one fused pass after the GEMM.
fn fused_row() {
    let (bsz, k, n) = (256, 784, 256);
    let mut g = Graph::new(DType::F32);
    let x = g.add_input("x", known(&[bsz, k]), InputKind::Data);
    let w = g.add_input("w", known(&[k, n]), InputKind::Data);
    let b = g.add_input("b", known(&[n]), InputKind::Data);
    let xw = g.add(Op::matmul(false, false), &[x, w]).unwrap();
    let z = g.add(Op::Add, &[xw, b]).unwrap();
    let zero = g.constant(0.0);
    let y = g.add(Op::Max, &[zero, z]).unwrap();
    g.outputs = vec![("y".into(), y)];
    let mut f = jit::compile(&g, &CompileOptions::default()).unwrap();
    let xs = [random::<f32>(bsz * k, 1), random(k * n, 2), random(n, 3)];
    let mut out = vec![vec![0.0f32; bsz * n]];
    let s = time(|| f.run(&xs, &mut Vec::<Vec<f32>>::new(), &mut out, &[]).unwrap());
    println!(
        "  relu(x @ W + b), {bsz}×{n}×{k}: {:.1} GFLOP/s including the fused epilogue ({} kernels)",
        2.0 * (bsz * n * k) as f64 / s / 1e9,
        f.stats().kernels
    );
    // An elementwise chain alone: y = tanh(a * b + c) over 1M elements, bytes moved / time.
    let len = 1 << 20;
    let mut g = Graph::new(DType::F32);
    let ins: Vec<_> = (0..3).map(|i| g.add_input(&format!("x{i}"), known(&[len]), InputKind::Data)).collect();
    let ab = g.add(Op::Mul, &[ins[0], ins[1]]).unwrap();
    let abc = g.add(Op::Add, &[ab, ins[2]]).unwrap();
    let y = g.add(Op::Tanh, &[abc]).unwrap();
    g.outputs = vec![("y".into(), y)];
    let mut f = jit::compile(&g, &CompileOptions::default()).unwrap();
    let xs = [random::<f32>(len, 1), random(len, 2), random(len, 3)];
    let mut out = vec![vec![0.0f32; len]];
    let s = time(|| f.run(&xs, &mut Vec::<Vec<f32>>::new(), &mut out, &[]).unwrap());
    println!(
        "  tanh(a * b + c), 1M f32: {:.2} ns/element, {:.1} GB/s, {} kernel",
        s / len as f64 * 1e9,
        16.0 * len as f64 / s / 1e9,
        f.stats().kernels
    );
}

fn train_step_rows() {
    for (path, batch) in [("examples/digits_cnn.net", 32), ("examples/cifar_cnn.net", 32), ("examples/mlp.net", 128)] {
        let src = std::fs::read_to_string(path).unwrap();
        let checked = netc::frontend::check::check_source(&src).unwrap();
        let step = netc::training::optim::build(&checked.trains[0]).unwrap();
        let mut g = step.graph;
        netc::ir::opt::optimize(&mut g, None).unwrap();
        let opts = CompileOptions { verify: false, ..CompileOptions::default() };
        let mut ms: Vec<f64> = (0..7).map(|_| jit::compile(&g, &opts).unwrap().stats().compile_ms).collect();
        ms.sort_by(f64::total_cmp);
        let mut f = jit::compile(&g, &opts).unwrap();
        let mut rng = Rng::new(1);
        let inputs: Vec<Vec<f32>> = g
            .inputs
            .iter()
            .map(|i| {
                let len: usize = i.shape.iter().map(|d| d.known().unwrap_or(batch)).product();
                match i.kind {
                    InputKind::Label => (0..len).map(|_| rng.below(10) as f32).collect(),
                    _ if i.shape.is_empty() => vec![0.01],
                    _ => (0..len).map(|_| rng.uniform_in(0.0, 1.0) as f32).collect(),
                }
            })
            .collect();
        let mut params = netc::training::initial_params(&g, 1);
        let mut outs: Vec<Vec<f32>> = g
            .outputs
            .iter()
            .map(|(_, id)| vec![0.0; g.shape(*id).iter().map(|d| d.known().unwrap_or(batch)).product()])
            .collect();
        let s = time(|| f.run(&inputs, &mut params, &mut outs, &[batch]).unwrap());
        let st = f.stats();
        // Where the time goes, by kernel kind (a separately compiled, profiled copy).
        let mut prof = jit::compile(&g, &CompileOptions { profile: true, ..opts.clone() }).unwrap();
        let reps = 20;
        for _ in 0..reps {
            prof.run(&inputs, &mut params, &mut outs, &[batch]).unwrap();
        }
        let mut kinds: Vec<(&str, f64)> = vec![];
        for (name, ms) in prof.profile() {
            match kinds.iter_mut().find(|k| k.0 == name) {
                Some(k) => k.1 += ms / reps as f64,
                None => kinds.push((name, ms / reps as f64)),
            }
        }
        kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
        let kinds: Vec<String> = kinds.iter().take(5).map(|(n, ms)| format!("{n} {ms:.2}")).collect();
        println!(
            "  {path} B={batch}: compile {:.1} ms (median of 7; {} kernels, {} CLIF insts), step {:.3} ms, \
             workspace {:.2} MB planned vs {:.2} MB for every intermediate",
            ms[3],
            st.kernels,
            st.clif_insts,
            s * 1e3,
            st.planned_bytes as f64 / 1e6,
            st.naive_bytes as f64 / 1e6
        );
        println!("      ms per step by kernel kind: {}", kinds.join(", "));
    }
}

/// The GEMM symbol (split on the global pool) against one single-threaded call, row-major f32
/// operands as the JIT lays them out; for the workloads' GEMM shapes.
fn threads_rows() {
    use netc::runtime::symbols::{gemm_f32_on, plan, GemmArgs, Matrix, Split};
    let one = netc::runtime::threads::Pool::new(1);
    // (M, K, N, what): op(A) is M×K, transposed where the train step reads it transposed.
    for (m, k, n, ta, tb, what) in [
        (128, 784, 256, false, false, "W2 layer 1 forward"),
        (784, 128, 256, true, false, "W2 layer 1 weight gradient"),
        (128, 256, 256, false, true, "W2 layer 2 input gradient"),
        (128, 256, 10, false, false, "W2 output layer"),
        (32, 144, 256, false, false, "W3 conv 2 forward, one image"),
        (144, 32, 256, true, false, "W3 conv 2 input gradient, one image"),
        (256, 2400, 729, false, false, "W7 conv 2 forward, one image"),
        (8, 9216, 4096, false, false, "W7 dense 1 forward"),
        (8, 4096, 9216, false, true, "W7 dense 1 input gradient"),
        (9216, 8, 4096, true, false, "W7 dense 1 weight gradient"),
    ] {
        let (a, b) = (random::<f32>(m * k, 1), random::<f32>(k * n, 2));
        let mut c = vec![0.0f32; m * n];
        let (rsa, csa) = if ta { (1, m as i64) } else { (k as i64, 1) };
        let (rsb, csb) = if tb { (1, k as i64) } else { (n as i64, 1) };
        let (mi, ki, ni) = (m as i64, k as i64, n as i64);
        let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let split = time(|| unsafe {
            netc::runtime::symbols::netc_gemm_f32(mi, ki, ni, 1.0, pa, rsa, csa, pb, rsb, csb, 0.0, pc, ni, 1)
        });
        let single = time(|| unsafe {
            let (a, b, c) = (Matrix::new(pa, rsa, csa), Matrix::new(pb, rsb, csb), Matrix::new(pc, ni, 1));
            gemm_f32_on(&one, Split::NEVER, GemmArgs { m: mi, k: ki, n: ni, alpha: 1.0, a, b, beta: 0.0, c })
        });
        black_box(&c);
        let how = plan(Split::DEFAULT, netc::runtime::threads::count(), m, k, n, n as isize, 1);
        println!(
            "  {m:>5}×{k:<5}×{n:<5} {what:<36} {:>8.1} µs {:>8.1} µs   ×{:.2}   {how:?}",
            single * 1e6,
            split * 1e6,
            single / split
        );
    }
}

/// The two GEMM libraries (`runtime::symbols::Library`) single-threaded on the workloads'
/// product shapes, in the layouts the train steps use, with the one `Library::for_product` picks
/// (least CPU time of several calls).
fn library_rows() {
    use netc::runtime::symbols::{sgemm_with, GemmArgs, Library, Matrix};
    // (M, K, N, A transposed, B transposed, what)
    for (m, k, n, ta, tb, what) in [
        (128, 784, 256, false, false, "W2 layer 1 forward"),
        (784, 128, 256, true, false, "W2 layer 1 weight gradient"),
        (128, 256, 256, false, true, "W2 layer 2 input gradient"),
        (16, 27, 1024, false, false, "W3 conv 1 forward, one image"),
        (16, 1024, 27, false, true, "W3 conv 1 filter gradient, one image"),
        (32, 144, 256, false, false, "W3 conv 2 forward, one image"),
        (144, 32, 256, true, false, "W3 conv 2 input gradient, one image"),
        (32, 256, 144, false, true, "W3 conv 2 filter gradient, one image"),
        (512, 16, 32, false, false, "W3 conv 2 Winograd F(4,3) forward"),
        (512, 32, 16, false, true, "W3 conv 2 Winograd input gradient"),
        (16, 512, 32, true, false, "W3 conv 2 Winograd filter gradient"),
        (96, 363, 3025, false, false, "W7 conv 1 forward, one image"),
        (96, 3025, 363, false, true, "W7 conv 1 filter gradient, one image"),
        (256, 2400, 729, false, false, "W7 conv 2 forward, one image"),
        (2400, 256, 729, true, false, "W7 conv 2 input gradient, one image"),
        (256, 729, 2400, false, true, "W7 conv 2 filter gradient, one image"),
        (384, 2304, 169, false, false, "W7 conv 3 forward, one image"),
        (2304, 384, 169, true, false, "W7 conv 3 input gradient, one image"),
        (384, 169, 2304, false, true, "W7 conv 3 filter gradient, one image"),
        (384, 3456, 169, false, false, "W7 conv 4 forward, one image"),
        (3456, 384, 169, true, false, "W7 conv 4 input gradient, one image"),
        (384, 169, 3456, false, true, "W7 conv 4 filter gradient, one image"),
        (392, 96, 256, false, false, "W7 conv 2 Winograd F(4,5) forward"),
        (392, 256, 96, false, true, "W7 conv 2 Winograd input gradient"),
        (96, 392, 256, true, false, "W7 conv 2 Winograd filter gradient"),
        (128, 256, 384, false, false, "W7 conv 3 Winograd F(4,3) forward"),
        (128, 384, 256, false, true, "W7 conv 3 Winograd input gradient"),
        (256, 128, 384, true, false, "W7 conv 3 Winograd filter gradient"),
        (128, 384, 384, false, false, "W7 conv 4 Winograd forward"),
        (128, 384, 384, false, true, "W7 conv 4 Winograd input gradient"),
        (384, 128, 384, true, false, "W7 conv 4 Winograd filter gradient"),
        (8, 9216, 4096, false, false, "W7 dense 1 forward"),
        (8, 4096, 9216, false, true, "W7 dense 1 input gradient"),
        (9216, 8, 4096, true, false, "W7 dense 1 weight gradient"),
        (8, 4096, 4096, false, false, "W7 dense 2 forward"),
        (64, 32, 64, false, true, "W10 attention scores, q kᵀ, one head"),
        (64, 64, 32, false, false, "W10 attention values, p v, one head"),
        (64, 64, 32, true, false, "W10 attention value gradient, pᵀ dy"),
        (64, 32, 64, false, true, "W10 attention probability gradient"),
        (32, 256, 1024, false, true, "W11 step forward, h W_hhᵀ"),
        (32, 1024, 256, false, false, "W11 step backward, dz W_hh"),
        (2048, 128, 1024, false, true, "W11 input products, x W_ihᵀ"),
        (1024, 2048, 256, true, false, "W11 dW_hh after the loop"),
        (512, 512, 512, false, false, "square"),
    ] {
        let (a, b) = (random::<f32>(m * k, 1), random::<f32>(k * n, 2));
        let (rsa, csa) = if ta { (1, m as i64) } else { (k as i64, 1) };
        let (rsb, csb) = if tb { (1, k as i64) } else { (n as i64, 1) };
        let (mi, ki, ni) = (m as i64, k as i64, n as i64);
        let mut results = vec![];
        let mut secs = vec![];
        for lib in Library::ALL {
            let mut c = vec![0.0f32; m * n];
            let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
            let (ma, mb, mc) = (Matrix::new(pa, rsa, csa), Matrix::new(pb, rsb, csb), Matrix::new(pc, ni, 1));
            let args = GemmArgs { m: mi, k: ki, n: ni, alpha: 1.0, a: ma, b: mb, beta: 0.0, c: mc };
            secs.push(min_time(9, || unsafe { sgemm_with(lib, args) }));
            black_box(&c);
            results.push(c);
        }
        let chosen = format!("{:<14} ", Library::for_product(m, k, n, tb).name());
        print_pair((m, k, n), &format!("{what:<40}"), &secs, &results, &chosen);
    }
}

/// The largest difference between two results, relative to the largest element of the first.
/// One row of a two-way GEMM comparison: the (m, k, n) product's GFLOP/s by each side, the
/// speed-up of the second, `extra`, and how far apart the two results are.
fn print_pair((m, k, n): (usize, usize, usize), what: &str, secs: &[f64], results: &[Vec<f32>], extra: &str) {
    let diff = relative_difference(&results[0], &results[1]);
    let gf = |s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
    println!(
        "  {m:>5}×{k:<5}×{n:<5} {what} {:>7.1} {:>7.1}   ×{:.2}  {extra}rel. diff {diff:.1e}",
        gf(secs[0]),
        gf(secs[1]),
        secs[0] / secs[1],
    );
}

fn relative_difference(x: &[f32], y: &[f32]) -> f32 {
    let scale = x.iter().fold(0f32, |acc, v| acc.max(v.abs())).max(f32::MIN_POSITIVE);
    x.iter().zip(y).fold(0f32, |acc, (x, y)| acc.max((x - y).abs())) / scale
}

/// The kernels of `runtime::symbols::stream` single-threaded: B read in place against
/// `matrixmultiply`, which packs it, on the shapes of small-batch dense layers (forward, input
/// and weight gradients), recurrent steps and attention; `Tiles` (AVX2) on attention's
/// products and on products of many rows with a moderate k (least CPU time of several calls).
fn stream_rows() {
    use netc::runtime::symbols::{sgemm_with, stream, GemmArgs, Library, Matrix};
    // (M, K, N, B transposed, what, `Tiles` rather than the kernel for B's layout)
    for (m, k, n, tb, what, tiles) in [
        (8, 9216, 4096, false, "W7 dense 1 forward", false),
        (8, 4096, 9216, true, "W7 dense 1 input gradient", false),
        (8, 4096, 4096, false, "W7 dense 2 forward", false),
        (8, 4096, 4096, true, "W7 dense 2 input gradient", false),
        (8, 4096, 1000, false, "W7 dense 3 forward", false),
        (8, 1000, 4096, true, "W7 dense 3 input gradient", false),
        (32, 256, 1024, true, "W11 step forward (h · W_hhᵀ)", false),
        (32, 1024, 256, false, "W11 step input gradient (dz · W_hh)", false),
        (16, 1024, 1024, false, "16 rows", false),
        (32, 1024, 1024, false, "32 rows", false),
        (64, 1024, 1024, false, "64 rows", false),
        (64, 32, 64, true, "W10 attention scores (q · kᵀ), one head", false),
        (64, 64, 32, false, "W10 attention output (p · v), one head", false),
        (9216, 8, 4096, false, "W7 dense 1 weight gradient (Outer)", false),
        (4096, 8, 4096, false, "W7 dense 2 weight gradient (Outer)", false),
        (256, 16, 1024, false, "k = 16 (Outer)", false),
        (32, 1024, 1024, true, "32 rows, B transposed", false),
        (64, 1024, 1024, true, "64 rows, B transposed", false),
        (32, 256, 1024, false, "W11 step forward, h · w_hh stored", false),
        (32, 1024, 256, true, "W11 step input gradient, dz · w_hhᵀ", false),
        (64, 64, 64, true, "attention scores q · kᵀ (Tiles)", true),
        (64, 64, 64, false, "attention scores' gradient dS · k (Tiles)", true),
        (128, 128, 32, false, "attention values p · v, T = 128 (Tiles)", true),
        (128, 32, 128, true, "attention values' gradient dO · vᵀ (Tiles)", true),
        (16, 16, 16, false, "many small (Tiles)", true),
        (8192, 256, 256, false, "dense on a sequence (Tiles)", true),
        (8192, 256, 256, true, "its input gradient (Tiles)", true),
        (2048, 128, 512, false, "W10 dense up (Tiles)", true),
        (2048, 512, 128, false, "W10 dense down (Tiles)", true),
        (2048, 128, 1024, false, "W11 input projection (Tiles)", true),
    ] {
        let (a, b) = (random::<f32>(m * k, 1), random::<f32>(k * n, 2));
        let (rsb, csb) = if tb { (1, k as i64) } else { (n as i64, 1) };
        let (mi, ki, ni) = (m as i64, k as i64, n as i64);
        let (ma, mb) = (Matrix::new(a.as_ptr(), ki, 1), Matrix::new(b.as_ptr(), rsb, csb));
        let shape = GemmArgs {
            m: mi,
            k: ki,
            n: ni,
            alpha: 1.0,
            a: ma,
            b: mb,
            beta: 0.0,
            c: Matrix::new(std::ptr::null_mut::<f32>(), ni, 1),
        };
        let Some(isa) = stream::Isa::detected() else {
            println!("  no streaming kernels on this CPU (neither AVX2 nor AVX-512)");
            return;
        };
        // The kernel for B's layout whatever the limits (to measure where they should be),
        // and whether the limits take it.
        let kernel = if tiles {
            stream::Layout::Tiles
        } else if k <= 16 && m > 32 {
            stream::Layout::Outer
        } else if tb {
            stream::Layout::Columns
        } else {
            stream::Layout::Rows
        };
        let chosen = stream::layout(&shape).or(stream::whole_layout(&shape)) == Some(kernel);
        let chosen = format!("{:<10}", if chosen { "stream" } else { "library" });
        let mut results = vec![];
        let mut secs = vec![];
        for streamed in [false, true] {
            let mut c = vec![0.0f32; m * n];
            let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
            let (ma, mb, mc) = (Matrix::new(pa, ki, 1), Matrix::new(pb, rsb, csb), Matrix::new(pc, ni, 1));
            let args = GemmArgs { m: mi, k: ki, n: ni, alpha: 1.0, a: ma, b: mb, beta: 0.0, c: mc };
            let block = if kernel.cuts_rows() { 0..m } else { 0..n };
            secs.push(min_time(5, || unsafe {
                if streamed {
                    stream::gemm_on(isa, kernel, args, block.clone())
                } else {
                    sgemm_with(Library::MatrixMultiply, args)
                }
            }));
            black_box(&c);
            results.push(c);
        }
        print_pair((m, k, n), &format!("{what:<36}"), &secs, &results, &chosen);
    }
}

/// CPU seconds this thread has run (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`): unlike wall
/// time, not inflated while other processes hold the core.
fn thread_cpu_seconds() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, t: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: a valid out-pointer; Linux's clock id.
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// The least CPU time of `reps` calls of `f` (seconds), which runs on this thread (a pool of
/// one): on a shared machine the CPU time of a call is what it costs, its wall time is not.
fn min_time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = thread_cpu_seconds();
            f();
            thread_cpu_seconds() - t
        })
        .fold(f64::INFINITY, f64::min)
}

/// One AlexNet layer (batch 8) by Winograd on one thread: each transform symbol, the α²
/// products with each GEMM library, against the im2col convolution symbol; least CPU time of
/// several calls.
fn winograd_rows() {
    use netc::runtime::symbols::{conv_f32_on, sgemm_with, winograd_f32_on, GemmArgs, Library, Matrix};
    use netc::runtime::winograd::{Geometry, Tile, Transform};
    let one = netc::runtime::threads::Pool::new(1);
    let n = 8usize;
    for (name, c, hw, f, r, pad, m) in [
        ("conv2", 96, 27, 256, 5, 2, 4),
        ("conv3", 256, 13, 384, 3, 1, 4),
        ("conv4", 384, 13, 384, 3, 1, 4),
        ("conv4", 384, 13, 384, 3, 1, 2),
    ] {
        let g = Geometry { c, h: hw, w: hw, f, oh: hw, ow: hw, pad, tile: Tile { m, r } };
        let mut line = format!("  {name} F({m},{r})  transforms µs (hot / cold):");
        let mut total = 0.0;
        for op in Transform::ALL {
            // NETC_BENCH_ONLY=conv4:4:Filter times one transform only (for a profiler).
            if let Ok(only) = std::env::var("NETC_BENCH_ONLY") {
                if only != format!("{name}:{m}:{op:?}") {
                    continue;
                }
            }
            let (src_len, dst_len) = g.sizes(op, n);
            let src = random::<f32>(src_len, 3);
            let mut dst = vec![0f32; dst_len];
            let call = |dst: &mut [f32]| unsafe {
                winograd_f32_on(&one, op.code(), &g.to_array(), n as i64, src.as_ptr(), dst.as_mut_ptr())
            };
            let s = min_time(15, || call(&mut dst));
            // Cold: after 64 MB of other writes, as in a train step, where a transform reads
            // what a product wrote (7–26 MB) and the layers before left the caches full.
            let mut cold = f64::INFINITY;
            let mut other = vec![0f32; 16 << 20];
            for rep in 0..5 {
                other.fill(rep as f32);
                black_box(&other);
                let t0 = Instant::now();
                call(&mut dst);
                cold = cold.min(t0.elapsed().as_secs_f64());
            }
            line += &format!(" {op:?} {:.0} / {:.0}", s * 1e6, cold * 1e6);
            total += s;
        }
        println!("{line}  (all six {:.1} ms)", total * 1e3);
        let a2 = g.tile.alpha().pow(2);
        let nt = n * g.tiles();
        // (what, m, k, n, A transposed): the forward, input-gradient and filter-gradient products.
        for (what, pm, pk, pn, ta, tb) in [
            ("forward", nt, c, f, false, false),
            ("input grad", nt, f, c, false, true),
            ("filter grad", c, nt, f, true, false),
        ] {
            let (a, b) = (random::<f32>(pm * pk, 1), random::<f32>(pk * pn, 2));
            let mut out = vec![0f32; pm * pn];
            let (rsa, csa) = if ta { (1, pm as i64) } else { (pk as i64, 1) };
            let (rsb, csb) = if tb { (1, pk as i64) } else { (pn as i64, 1) };
            let mut row = format!("    {a2} products {pm}×{pk}×{pn} {what:<12}");
            for lib in Library::ALL {
                let s = min_time(5, || unsafe {
                    for _ in 0..a2 {
                        let args = GemmArgs {
                            m: pm as i64,
                            k: pk as i64,
                            n: pn as i64,
                            alpha: 1.0,
                            a: Matrix::new(a.as_ptr(), rsa, csa),
                            b: Matrix::new(b.as_ptr(), rsb, csb),
                            beta: 0.0,
                            c: Matrix::new(out.as_mut_ptr(), pn as i64, 1),
                        };
                        sgemm_with(lib, args);
                    }
                });
                let gf = 2.0 * (a2 * pm * pk * pn) as f64 / s / 1e9;
                row += &format!("  {} {:.1} ms ({gf:.0} GFLOP/s)", lib.name(), s * 1e3);
            }
            println!("{row}   chosen: {}", Library::for_product(pm, pk, pn, tb).name());
        }
        let geom = [c, hw, hw, f, r, r, hw, hw, 1, pad].map(|v| v as i64);
        let mut row = "    im2col convolution symbol:".to_string();
        for (op, what, (la, lb, lo)) in [
            (0, "forward", (n * c * hw * hw, f * c * r * r, n * f * hw * hw)),
            (1, "input grad", (n * f * hw * hw, f * c * r * r, n * c * hw * hw)),
            (2, "filter grad", (n * c * hw * hw, n * f * hw * hw, f * c * r * r)),
        ] {
            let (a, b) = (random::<f32>(la, 4), random::<f32>(lb, 5));
            let mut out = vec![0f32; lo];
            let s = min_time(5, || unsafe {
                conv_f32_on(&one, op, &geom, n as i64, a.as_ptr(), b.as_ptr(), out.as_mut_ptr())
            });
            row += &format!("  {what} {:.1} ms", s * 1e3);
        }
        println!("{row}");
    }
}

fn main() {
    let threads = std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    println!(
        "GEMM threads: {} (MATMUL_NUM_THREADS {threads}); available parallelism: {:?}",
        netc::runtime::threads::count(),
        std::thread::available_parallelism()
    );
    if std::env::args().any(|a| a == "--winograd") {
        println!("\nWinograd, one thread, AlexNet layers at batch 8 (fastest of several runs)");
        winograd_rows();
        return;
    }
    if std::env::args().any(|a| a == "--stream") {
        println!("\nStreamed B, one thread, GFLOP/s (M×K×N)          matrixmultiply  stream  speed-up  chosen");
        stream_rows();
        return;
    }
    if std::env::args().any(|a| a == "--libraries") {
        println!("\nGEMM libraries, one thread, GFLOP/s (M×K×N)          matrixmultiply   gemm  mm/gemm  chosen");
        library_rows();
        return;
    }
    println!("\nGEMM libraries, one thread, GFLOP/s (M×K×N)          matrixmultiply   gemm  mm/gemm  chosen");
    library_rows();
    println!("\nGEMM threads: one call vs the symbol's split (M×K×N)       1 call      symbol");
    threads_rows();
    println!("\nGEMM GFLOP/s (M×N×K)         JIT graph   symbol    matrixmultiply");
    for (m, n, k) in [(512, 512, 512), (128, 256, 784), (32768, 16, 27), (8192, 32, 144)] {
        gemm_row::<f32>(m, n, k);
    }
    gemm_row::<f64>(512, 512, 512);
    gemm_row::<f64>(128, 256, 784);
    println!("\nConvolution GFLOP/s through the JIT (im2col + one GEMM per image)");
    conv_row(32, 3, 32, 16, 3);
    conv_row(32, 16, 16, 32, 3);
    println!("\nTranscendentals, 16K elements (in cache), ns per element");
    for op in [Op::Exp, Op::Log, Op::Tanh, Op::Sigmoid] {
        math_row::<f32>(op.clone());
        math_row::<f64>(op);
    }
    println!("\nFusion");
    fused_row();
    println!("\nTrain steps (f32)");
    train_step_rows();
}
