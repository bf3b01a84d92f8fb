//! The JIT's f32 erf (one rational form, `Emitter::erf_f32`) against libm's f64 erf rounded to
//! f32, densely over all of f32: every 127th bit pattern of each sign, every multiple of 2⁻¹²
//! on [−10, 10], every f32 around the point where it saturates to ±1, a million random bit
//! patterns, and the special values. Errors are in ulp of the correctly rounded result.
//! `cargo test --release erf_f32:: -- --ignored` sweeps every one of the 2³² patterns.

use netc::codegen::CompileOptions;
use netc::drivers::jit::{self, Compiled};
use netc::ir::graph::{DType, Dim, Graph, InputKind, Op};
use netc::runtime::rng::Rng;

const CHUNK: usize = 1 << 20;

fn erf_kernel() -> Compiled {
    let mut g = Graph::new(DType::F32);
    let x = g.add_input("x", vec![Dim::Known(CHUNK)], InputKind::Data);
    let y = g.add(Op::Erf, &[x]).unwrap();
    g.outputs = vec![("y".into(), y)];
    jit::compile(&g, &CompileOptions::default()).unwrap()
}

/// Error of `got` in ulp of erf x rounded to f32 (the spacing at the smallest subnormal for
/// subnormal results); infinite where NaN-ness or the sign disagree.
fn ulps(x: f32, got: f32) -> f64 {
    let want = libm::erf(x as f64);
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if got.is_sign_negative() != want.is_sign_negative() {
        return f64::INFINITY; // erf is odd: −0 ↦ −0
    }
    let w32 = (want as f32).abs();
    let ulp = (f32::from_bits(w32.to_bits() + 1) - w32) as f64;
    (got as f64 - want).abs() / ulp
}

/// The largest error over `xs` and the argument where it occurs, run a chunk at a time.
fn worst(kernel: &mut Compiled, xs: impl Iterator<Item = f32>) -> (f64, f32, usize) {
    let (mut max, mut at, mut count) = (0.0, 0.0, 0);
    let mut out = vec![vec![0.0f32; CHUNK]];
    let mut input = Vec::with_capacity(CHUNK);
    let mut xs = xs.peekable();
    while xs.peek().is_some() {
        input.clear();
        input.extend(xs.by_ref().take(CHUNK));
        let n = input.len();
        input.resize(CHUNK, 0.0);
        kernel.run(std::slice::from_ref(&input), &mut Vec::<Vec<f32>>::new(), &mut out, &[]).unwrap();
        for (&x, &y) in input[..n].iter().zip(&out[0]) {
            let e = ulps(x, y);
            if e > max {
                (max, at) = (e, x);
            }
        }
        count += n;
    }
    (max, at, count)
}

/// Every `stride`-th bit pattern of both signs, NaNs and infinities included.
fn bit_patterns(stride: usize) -> impl Iterator<Item = f32> {
    (0..=u32::MAX >> 1).step_by(stride).flat_map(|b| [f32::from_bits(b), f32::from_bits(b | 1 << 31)]).chain([
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ])
}

#[test]
fn erf_f32_is_within_2_ulp_over_all_of_f32() {
    let mut kernel = erf_kernel();
    let mut rng = Rng::new(22);
    let grid = (-40960..=40960).map(|i| i as f32 / 4096.0);
    // from 3.80 to 3.84, where erf x reaches 1 − 2⁻²⁴ and the kernel switches to ±1
    let saturation = (3.80f32.to_bits()..=3.84f32.to_bits()).flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)]);
    let random = (0..1_000_000).map(|_| f32::from_bits(rng.next_u64() as u32));
    let tiny = [0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, f32::MIN_POSITIVE, 1e-30, 1e-8, -1e-8];
    let specials = [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN, 4.0, -4.0, 10.0];
    let xs = bit_patterns(127).chain(grid).chain(saturation).chain(random).chain(tiny).chain(specials);
    let (max, at, count) = worst(&mut kernel, xs);
    eprintln!("erf f32: max {max:.3} ulp at x = {at:e} ({count} arguments)");
    assert!(max <= 2.0, "erf f32 is {max} ulp off at x = {at:e}");
    // the special values exactly
    let mut out = vec![vec![0.0f32; CHUNK]];
    let mut input = vec![0.0f32; CHUNK];
    input[..6].copy_from_slice(&[0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-45]);
    kernel.run(std::slice::from_ref(&input), &mut Vec::<Vec<f32>>::new(), &mut out, &[]).unwrap();
    let y = &out[0];
    assert_eq!(y[0].to_bits(), 0.0f32.to_bits());
    assert_eq!(y[1].to_bits(), (-0.0f32).to_bits());
    assert_eq!((y[2], y[3]), (1.0, -1.0));
    assert!(y[4].is_nan());
    assert_eq!(y[5], 1e-45, "erf of the smallest subnormal rounds to it (2/√π · 2⁻¹⁴⁹)");
}

#[test]
#[ignore = "every f32: ~1 minute in release"]
fn erf_f32_exhaustively() {
    let mut kernel = erf_kernel();
    let (max, at, count) = worst(&mut kernel, bit_patterns(1));
    eprintln!("erf f32, every bit pattern: max {max:.3} ulp at x = {at:e} ({count} arguments)");
    assert!(max <= 2.0, "erf f32 is {max} ulp off at x = {at:e}");
}
