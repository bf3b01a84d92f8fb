//! The Cranelift-generated GEMM (`codegen::gemm`), JIT-compiled on the host, against a naive
//! f64 reference: many shapes (tiles, vector tails, k across the packed-panel boundary),
//! every stride layout of A, B and C, alpha/beta edge values, beta = 0 over NaN, empty
//! shapes; with and without FMA; a proptest over random shapes and strides. C has guard
//! elements and holes (padding between rows) that must come back untouched; the holes of A
//! and B hold NaN so that a stray read shows up in C, and their buffers end at their last
//! element, so heap-bounds tools see any read past them:
//! `valgrind --error-exitcode=1 --smc-check=all-non-file target/debug/deps/gemm-HASH
//! --test-threads=1 shapes_sweep random_shapes empty_shapes` passes clean (about a minute).
//! Object files for x86-64 and aarch64 must build without libm calls. `bench_gemm` (ignored)
//! prints GFLOP/s against the library GEMM:
//! `cargo test --release gemm:: -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use netc::codegen::gemm::define_gemm;
use netc::ir::graph::DType;
use netc::runtime::rng::Rng;
use proptest::prelude::*;

type Gemm<T> = unsafe extern "C" fn(i64, i64, i64, T, *const T, i64, i64, *const T, i64, i64, T, *mut T, i64, i64);

trait Float: Copy + PartialEq + std::fmt::Debug + 'static {
    /// Unit roundoff.
    const EPS: f64;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn pick(j: &Jit) -> Gemm<Self>;
}

impl Float for f32 {
    const EPS: f64 = f32::EPSILON as f64 / 2.0;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn pick(j: &Jit) -> Gemm<f32> {
        j.f32
    }
}

impl Float for f64 {
    const EPS: f64 = f64::EPSILON / 2.0;
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn pick(j: &Jit) -> Gemm<f64> {
        j.f64
    }
}

/// Both GEMMs in one JIT module (kept alive as long as the pointers are used).
struct Jit {
    _module: JITModule,
    f32: Gemm<f32>,
    f64: Gemm<f64>,
    fma: bool,
}

/// The host ISA as `jit.rs` builds it (`JITModule` needs `is_pic = false`); `fma: false`
/// switches FMA off (x86-64) to test the `fmul` + `fadd` path.
fn host_isa(fma: bool) -> Arc<dyn TargetIsa> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").unwrap();
    flags.set("enable_verifier", "true").unwrap();
    flags.set("is_pic", "false").unwrap();
    flags.set("use_colocated_libcalls", "false").unwrap();
    let mut isa = cranelift_native::builder().unwrap();
    if !fma {
        isa.set("has_fma", "false").unwrap();
    }
    isa.finish(settings::Flags::new(flags)).unwrap()
}

fn jit(fma: bool) -> Jit {
    let mut module = JITModule::new(JITBuilder::with_isa(host_isa(fma), default_libcall_names()));
    let has_fma = module.isa().has_native_fma();
    let f = define_gemm(&mut module, "gemm_f32", Linkage::Export, DType::F32).unwrap();
    let d = define_gemm(&mut module, "gemm_f64", Linkage::Export, DType::F64).unwrap();
    module.finalize_definitions().unwrap();
    // SAFETY: `define_gemm` defines functions of exactly this C signature.
    let (f32, f64) = unsafe {
        (
            std::mem::transmute::<*const u8, Gemm<f32>>(module.get_finalized_function(f)),
            std::mem::transmute::<*const u8, Gemm<f64>>(module.get_finalized_function(d)),
        )
    };
    Jit { _module: module, f32, f64, fma: has_fma }
}

// ---- matrices in strided buffers ----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// rs = cols, cs = 1.
    Row,
    /// Transposed: rs = 1, cs = rows.
    Col,
    /// Row-major with 3 elements of padding per row.
    RowPad,
    /// Column-major with 5 elements of padding per column.
    ColPad,
    /// No unit stride at all: cs = 2, rs = 2·cols + 1.
    Strided,
}

const LAYOUTS: [Layout; 5] = [Layout::Row, Layout::Col, Layout::RowPad, Layout::ColPad, Layout::Strided];

/// Elements before and after C, and the value of C's guards and holes. A and B have no guards:
/// their buffers end exactly at their last element, so a tool that checks heap bounds
/// (valgrind, see `bounds_checked_by_valgrind`) catches any stray read.
const GUARD: usize = 9;
const SENTINEL: f64 = 777.0;

#[derive(Clone, Copy, Debug)]
struct Mat {
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    /// Elements of the buffer before and after the matrix.
    guard: usize,
}

impl Mat {
    fn new(rows: usize, cols: usize, layout: Layout) -> Mat {
        let (rs, cs) = match layout {
            Layout::Row => (cols, 1),
            Layout::Col => (1, rows),
            Layout::RowPad => (cols + 3, 1),
            Layout::ColPad => (1, rows + 5),
            Layout::Strided => (2 * cols + 1, 2),
        };
        // Strides must stay positive for an empty dimension too.
        Mat { rows, cols, rs: rs.max(1), cs: cs.max(1), guard: GUARD }
    }

    fn with_strides(rows: usize, cols: usize, rs: usize, cs: usize) -> Mat {
        Mat { rows, cols, rs, cs, guard: GUARD }
    }

    fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }

    /// Buffer index of element (i, j).
    fn at(&self, i: usize, j: usize) -> usize {
        self.guard + i * self.rs + j * self.cs
    }

    /// A buffer with guards; elements from `value`, everything else `hole`.
    fn buffer<T: Float>(&self, hole: f64, mut value: impl FnMut(usize, usize) -> f64) -> Vec<T> {
        let mut buf = vec![T::from_f64(hole); self.span() + 2 * self.guard];
        for i in 0..self.rows {
            for j in 0..self.cols {
                buf[self.at(i, j)] = T::from_f64(value(i, j));
            }
        }
        buf
    }
}

#[derive(Clone, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: Mat,
    alpha: f64,
    beta: f64,
    seed: u64,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn new(m: usize, k: usize, n: usize, la: Layout, lb: Layout, lc: Layout, alpha: f64, beta: f64) -> Case {
        let seed = (m * 1_000_003 + k * 1009 + n) as u64;
        Case { m, k, n, a: Mat::new(m, k, la), b: Mat::new(k, n, lb), c: Mat::new(m, n, lc), alpha, beta, seed }
    }
}

/// Run the case through `gemm` and compare with the f64 reference; every element of C within
/// (k + 2)·2·eps of the size of its terms, every guard and hole of C untouched.
fn check<T: Float>(gemm: Gemm<T>, case: &Case) -> Result<(), String> {
    let Case { m, k, n, a, b, c, alpha, beta, seed } = case.clone();
    let (a, b) = (Mat { guard: 0, ..a }, Mat { guard: 0, ..b });
    let mut rng = Rng::new(seed);
    let mut rand = |_: usize, _: usize| T::from_f64(rng.uniform_in(-1.0, 1.0)).to_f64();
    let abuf: Vec<T> = a.buffer(f64::NAN, &mut rand);
    let bbuf: Vec<T> = b.buffer(f64::NAN, &mut rand);
    // beta = 0: C holds NaN, which must not leak into the result.
    let cbuf0: Vec<T> = if beta == 0.0 { c.buffer(SENTINEL, |_, _| f64::NAN) } else { c.buffer(SENTINEL, &mut rand) };
    let mut cbuf = cbuf0.clone();
    let (alpha_t, beta_t) = (T::from_f64(alpha), T::from_f64(beta));
    // SAFETY: the buffers hold the described matrices (plus guards); C does not overlap A, B.
    unsafe {
        gemm(
            m as i64,
            k as i64,
            n as i64,
            alpha_t,
            abuf.as_ptr().add(a.guard),
            a.rs as i64,
            a.cs as i64,
            bbuf.as_ptr().add(b.guard),
            b.rs as i64,
            b.cs as i64,
            beta_t,
            cbuf.as_mut_ptr().add(c.guard),
            c.rs as i64,
            c.cs as i64,
        )
    };
    let mut inside = vec![false; cbuf.len()];
    for i in 0..m {
        for j in 0..n {
            inside[c.at(i, j)] = true;
            let (mut dot, mut size) = (0.0, 0.0);
            for p in 0..k {
                let t = abuf[a.at(i, p)].to_f64() * bbuf[b.at(p, j)].to_f64();
                dot += t;
                size += t.abs();
            }
            let old = cbuf0[c.at(i, j)].to_f64();
            let scaled_old = if beta == 0.0 { 0.0 } else { beta * old };
            let want = alpha * dot + scaled_old;
            let tol = (k as f64 + 2.0) * 2.0 * T::EPS * (alpha.abs() * size + scaled_old.abs()) + 1e-300;
            let got = cbuf[c.at(i, j)].to_f64();
            // Written so that a NaN fails.
            let close = (got - want).abs() <= tol;
            if !close {
                return Err(format!("{case:?}: C[{i},{j}] = {got}, want {want} (tolerance {tol:e})"));
            }
        }
    }
    for (idx, (&got, &was)) in cbuf.iter().zip(&cbuf0).enumerate() {
        if !inside[idx] && got.to_f64().to_bits() != was.to_f64().to_bits() {
            return Err(format!("{case:?}: element {idx} of C's buffer outside the matrix changed to {got:?}"));
        }
    }
    Ok(())
}

fn check_both(j: &Jit, case: &Case) {
    check(f32::pick(j), case).unwrap_or_else(|e| panic!("f32 (fma {}): {e}", j.fma));
    check(f64::pick(j), case).unwrap_or_else(|e| panic!("f64 (fma {}): {e}", j.fma));
}

const SIZES: [usize; 13] = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64, 257];
const SCALARS: [f64; 4] = [1.0, 0.0, -0.5, 2.0];

/// Every (m, k, n) from `SIZES`, each with a layout triple and alpha/beta pair chosen by its
/// index, so every combination occurs across the sweep.
fn sweep(fma: bool) {
    let j = jit(fma);
    let mut idx = 0usize;
    for &m in &SIZES {
        for &k in &SIZES {
            for &n in &SIZES {
                let la = LAYOUTS[idx % 5];
                let lb = LAYOUTS[(idx / 5) % 5];
                let lc = LAYOUTS[(idx / 25) % 5];
                let alpha = SCALARS[idx % 4];
                let beta = SCALARS[(idx / 4 + idx / 16) % 4];
                check_both(&j, &Case::new(m, k, n, la, lb, lc, alpha, beta));
                idx += 1;
            }
        }
    }
}

#[test]
fn shapes_sweep() {
    sweep(true);
}

/// The `fmul` + `fadd` path (hosts without FMA; Cranelift would otherwise call libm's fma).
#[test]
#[cfg(target_arch = "x86_64")]
fn shapes_sweep_without_fma() {
    assert!(!jit(false).fma, "has_fma = false must make the ISA report no native FMA");
    sweep(false);
}

/// All 125 layout triples × all 16 alpha/beta pairs, on shapes that hit full tiles, tails
/// in every dimension, and k across one and two panel boundaries (KC = 256).
/// `unsafe extern "C" fn $name`, a `Gemm<$t>`, whose body gets its 14 arguments as one
/// `symbols::Gemm<$t>` named `$g`.
macro_rules! gemm_fn {
    ($(#[$doc:meta])* $name:ident: $t:ty, |$g:ident| $body:block) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        unsafe extern "C" fn $name(
            m: i64,
            k: i64,
            n: i64,
            alpha: $t,
            a: *const $t,
            rsa: i64,
            csa: i64,
            b: *const $t,
            rsb: i64,
            csb: i64,
            beta: $t,
            c: *mut $t,
            rsc: i64,
            csc: i64,
        ) {
            use netc::runtime::symbols::{GemmArgs, Matrix};
            let (a, b, c) = (Matrix::new(a, rsa, csa), Matrix::new(b, rsb, csb), Matrix::new(c, rsc, csc));
            let $g: netc::runtime::symbols::Gemm<$t> = GemmArgs { m, k, n, alpha, a, b, beta, c };
            $body
        }
    };
}

/// The two libraries under the GEMM symbols (`symbols::Library`), as `Gemm` functions.
macro_rules! library_gemm {
    ($name:ident, $t:ty, $with:ident, $lib:expr) => {
        gemm_fn!($name: $t, |g| {
            // SAFETY: forwarded from `check`, which passes valid matrices.
            unsafe { netc::runtime::symbols::$with($lib, g) }
        });
    };
}
library_gemm!(mm_f32, f32, sgemm_with, netc::runtime::symbols::Library::MatrixMultiply);
library_gemm!(mm_f64, f64, dgemm_with, netc::runtime::symbols::Library::MatrixMultiply);
library_gemm!(crate_f32, f32, sgemm_with, netc::runtime::symbols::Library::GemmCrate);
library_gemm!(crate_f64, f64, dgemm_with, netc::runtime::symbols::Library::GemmCrate);

#[test]
fn both_gemm_libraries_match_the_reference_within_rounding() {
    // Whichever library `Library::for_product` picks, C is the same product to within the
    // rounding bound of `check` (both against the f64 reference, so within twice it of each
    // other): every layout, alpha/beta edge values, beta = 0 over NaN, the guards of C intact.
    let sizes = [1, 2, 3, 5, 8, 16, 17, 33, 64, 100];
    let mut idx = 0usize;
    for &m in &sizes {
        for &k in &sizes {
            for &n in &sizes {
                let (la, lb, lc) = (LAYOUTS[idx % 5], LAYOUTS[(idx / 5) % 5], LAYOUTS[(idx / 25) % 5]);
                let (alpha, beta) = (SCALARS[idx % 4], SCALARS[(idx / 4 + idx / 16) % 4]);
                let case = Case::new(m, k, n, la, lb, lc, alpha, beta);
                for (name, f32_fn, f64_fn) in
                    [("matrixmultiply", mm_f32 as Gemm<f32>, mm_f64 as Gemm<f64>), ("gemm", crate_f32, crate_f64)]
                {
                    check(f32_fn, &case).unwrap_or_else(|e| panic!("{name} f32: {e}"));
                    check(f64_fn, &case).unwrap_or_else(|e| panic!("{name} f64: {e}"));
                }
                idx += 1;
            }
        }
    }
    // k = 0 (C = beta·C) and the shapes the workloads choose the gemm crate for.
    for (m, k, n) in [(40, 0, 40), (512, 16, 32), (128, 384, 96), (16, 27, 1024)] {
        let case = Case::new(m, k, n, Layout::Row, Layout::Col, Layout::Row, -0.5, 2.0);
        for f in [crate_f32 as Gemm<f32>, mm_f32] {
            check(f, &case).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn layouts_and_scalars() {
    let j = jit(true);
    for (m, k, n) in [(4, 8, 8), (5, 257, 9), (9, 3, 17), (13, 600, 11)] {
        for la in LAYOUTS {
            for lb in LAYOUTS {
                for lc in LAYOUTS {
                    for alpha in SCALARS {
                        for beta in SCALARS {
                            check_both(&j, &Case::new(m, k, n, la, lb, lc, alpha, beta));
                        }
                    }
                }
            }
        }
    }
}

/// A large product with every layout of A and B: the vector write-back over many tiles.
#[test]
fn large_product() {
    let j = jit(true);
    for la in LAYOUTS {
        for lb in LAYOUTS {
            check_both(&j, &Case::new(67, 300, 70, la, lb, Layout::Row, 1.0, 0.5));
        }
    }
}

/// m = 0 or n = 0 (or negative) touches nothing, not even the pointers; k = 0 is C = beta·C
/// without reading A or B, and with beta = 0 writes zeros over NaN.
#[test]
fn empty_shapes() {
    let j = jit(true);
    let g = j.f32;
    let null = std::ptr::null::<f32>();
    // SAFETY: with m <= 0 or n <= 0 the GEMM returns before touching memory.
    unsafe {
        g(0, 5, 5, 1.0, null, 5, 1, null, 5, 1, 1.0, null as *mut f32, 5, 1);
        g(5, 5, 0, 1.0, null, 5, 1, null, 5, 1, 0.0, null as *mut f32, 5, 1);
        g(-3, 5, 5, 1.0, null, 5, 1, null, 5, 1, 1.0, null as *mut f32, 5, 1);
        g(3, 5, -1, 1.0, null, 5, 1, null, 5, 1, 1.0, null as *mut f32, 5, 1);
    }
    for k in [0, -4] {
        for beta in [0.0f32, -0.5, 1.0, 2.0] {
            let (m, n) = (5usize, 11usize);
            let fill = if beta == 0.0 { f32::NAN } else { 3.0 };
            let mut c = vec![fill; m * n];
            // SAFETY: A and B are not read when k <= 0; C is a valid 5 × 11 matrix.
            unsafe {
                g(m as i64, k, n as i64, f32::INFINITY, null, 1, 1, null, 1, 1, beta, c.as_mut_ptr(), n as i64, 1)
            };
            let want = if beta == 0.0 { 0.0 } else { 3.0 * beta };
            assert!(c.iter().all(|&x| x == want), "k = {k}, beta = {beta}: {c:?}");
        }
    }
    // k = 0 through the checked path as well (guards, holes, every layout of C).
    for lc in LAYOUTS {
        for beta in SCALARS {
            check_both(&j, &Case::new(7, 0, 9, Layout::Row, Layout::Row, lc, 2.0, beta));
        }
    }
}

/// The f64 GEMM on a product where f32 would lose digits.
#[test]
fn f64_keeps_precision() {
    let j = jit(true);
    let (m, k, n) = (3usize, 3usize, 9usize);
    let a = vec![1.0 + 1e-12; m * k];
    let b = vec![1.0; k * n];
    let mut c = vec![0.0f64; m * n];
    // SAFETY: valid row-major matrices.
    unsafe {
        (j.f64)(m as i64, k as i64, n as i64, 1.0, a.as_ptr(), 3, 1, b.as_ptr(), 9, 1, 0.0, c.as_mut_ptr(), 9, 1)
    };
    for &x in &c {
        assert!((x - 3.0 * (1.0 + 1e-12)).abs() < 1e-15, "{x}");
    }
}

/// Shapes of the compiler's own GEMM calls (batch × out × in, C row-major), A plain and transposed.
#[test]
fn model_shapes() {
    let j = jit(true);
    for (m, n, k) in [(64, 256, 10), (32, 10, 64), (10, 784, 3)] {
        for lb in [Layout::Row, Layout::Col] {
            check_both(&j, &Case::new(m, k, n, Layout::Row, lb, Layout::Row, 1.0, 0.0));
            check_both(&j, &Case::new(m, k, n, Layout::Col, lb, Layout::Row, -0.5, 1.0));
        }
    }
}

// ---- the checker itself ------------------------------------------------------------------

use netc::runtime::symbols::{netc_gemm_f32 as library, GemmArgs};

/// `f` on the arguments `g`.
///
/// # Safety
/// `g` satisfies `f`'s contract.
unsafe fn call<T>(f: Gemm<T>, g: netc::runtime::symbols::Gemm<T>) {
    let GemmArgs { m, k, n, alpha, a, b, beta, c } = g;
    // SAFETY: the caller's.
    unsafe { f(m, k, n, alpha, a.ptr, a.rs, a.cs, b.ptr, b.rs, b.cs, beta, c.ptr, c.rs, c.cs) }
}

gemm_fn!(
    /// The library GEMM on all but the last column.
    misses_a_column: f32,
    |g| {
        // SAFETY: the caller's contract, on fewer columns.
        unsafe { call(library, GemmArgs { n: g.n - 1, ..g }) }
    }
);

gemm_fn!(
    /// The library GEMM that reads C even when beta is 0.
    reads_c: f32,
    |g| {
        // SAFETY: the caller's contract (C is initialised, only NaN).
        unsafe { call(library, GemmArgs { beta: if g.beta == 0.0 { 1e-30 } else { g.beta }, ..g }) }
    }
);

gemm_fn!(
    /// The library GEMM, then a store just past the last row.
    writes_past_c: f32,
    |g| {
        // SAFETY: `check` gives C guard elements after its last one.
        unsafe {
            call(library, g);
            *g.c.ptr.offset(((g.m - 1) * g.c.rs + (g.n - 1) * g.c.cs + 1) as isize) = 0.0;
        }
    }
);

/// `check` accepts the library GEMM and rejects each of these faults.
#[test]
fn checker_catches_faults() {
    let case = |beta| Case::new(6, 5, 7, Layout::RowPad, Layout::Col, Layout::Row, 2.0, beta);
    check::<f32>(library, &case(0.5)).unwrap();
    check::<f32>(library, &case(0.0)).unwrap();
    assert!(check::<f32>(misses_a_column, &case(0.5)).is_err());
    assert!(check::<f32>(reads_c, &case(0.0)).is_err());
    assert!(check::<f32>(writes_past_c, &case(0.5)).is_err());
}

// ---- random shapes and strides ------------------------------------------------------------

fn mat_strategy() -> impl Strategy<Value = (bool, usize, usize)> {
    // (row-major?, padding of the leading stride, extra factor of the unit stride - 1)
    (any::<bool>(), 0usize..4, 0usize..3)
}

fn random_mat(rows: usize, cols: usize, (row_major, pad, spread): (bool, usize, usize)) -> Mat {
    let unit = 1 + spread;
    if row_major {
        Mat::with_strides(rows, cols, (cols * unit + pad).max(1), unit)
    } else {
        Mat::with_strides(rows, cols, unit, (rows * unit + pad).max(1))
    }
}

proptest! {
    #![proptest_config(crate::common::proptest_cases(200))]

    #[test]
    fn random_shapes_and_strides(
        m in 0usize..40,
        k in prop_oneof![0usize..40, 250usize..270, 500usize..530],
        n in 0usize..40,
        sa in mat_strategy(),
        sb in mat_strategy(),
        sc in mat_strategy(),
        alpha in prop_oneof![Just(1.0), Just(0.0), Just(-0.5), -3.0f64..3.0],
        beta in prop_oneof![Just(1.0), Just(0.0), Just(-0.5), -3.0f64..3.0],
        seed in any::<u64>(),
        f64_too in any::<bool>(),
    ) {
        thread_local! { static JIT: Jit = jit(true); }
        let case = Case {
            m, k, n,
            a: random_mat(m, k, sa),
            b: random_mat(k, n, sb),
            c: random_mat(m, n, sc),
            alpha, beta, seed,
        };
        JIT.with(|j| -> Result<(), TestCaseError> {
            check(j.f32, &case).map_err(TestCaseError::fail)?;
            if f64_too {
                check(j.f64, &case).map_err(TestCaseError::fail)?;
            }
            Ok(())
        })?;
    }
}

// ---- other targets ------------------------------------------------------------------------

/// Both GEMMs into an object file for `triple` (is_pic, as `netc build` does); returns the
/// object's bytes.
fn object_for(triple: &str, flags_extra: &[(&str, &str)]) -> Vec<u8> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").unwrap();
    flags.set("is_pic", "true").unwrap();
    flags.set("enable_verifier", "true").unwrap();
    let mut isa = cranelift_codegen::isa::lookup_by_name(triple).unwrap_or_else(|e| panic!("{triple}: {e}"));
    for (k, v) in flags_extra {
        isa.set(k, v).unwrap();
    }
    let isa = isa.finish(settings::Flags::new(flags)).unwrap();
    let mut module = ObjectModule::new(ObjectBuilder::new(isa, "gemm", default_libcall_names()).unwrap());
    define_gemm(&mut module, "netc_gemm_f32", Linkage::Export, DType::F32).unwrap();
    define_gemm(&mut module, "netc_gemm_f64", Linkage::Export, DType::F64).unwrap();
    module.finish().emit().unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// aarch64 (needs cranelift-codegen's `arm64` feature): both dtypes compile (NEON, native
/// FMA) and reference no libm `fma`.
#[test]
fn compiles_for_aarch64() {
    let obj = object_for("aarch64-unknown-linux-gnu", &[]);
    assert!(contains(&obj, b"netc_gemm_f32") && contains(&obj, b"netc_gemm_f64"));
    assert!(!contains(&obj, b"fmaf") && !contains(&obj, b"\0fma\0"), "the object calls libm's fma");
}

/// x86-64 at the baseline (SSE2 only, no FMA): mul + add, no libm call.
#[test]
fn compiles_for_baseline_x86_64() {
    let obj = object_for("x86_64-unknown-linux-gnu", &[]);
    assert!(contains(&obj, b"netc_gemm_f32") && contains(&obj, b"netc_gemm_f64"));
    assert!(!contains(&obj, b"fmaf") && !contains(&obj, b"\0fma\0"), "the object calls libm's fma");
    let obj = object_for("x86_64-unknown-linux-gnu", &[("has_avx", "true"), ("has_fma", "true")]);
    assert!(!contains(&obj, b"fmaf") && !contains(&obj, b"\0fma\0"));
}

// ---- throughput (by hand) -----------------------------------------------------------------

/// GFLOP/s of the generated GEMM and of the library GEMM (`symbols::netc_gemm_f32`,
/// matrixmultiply, split over the GEMM thread pool), f32, row-major, beta = 0. Run with
/// `cargo test --release gemm:: -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_gemm() {
    // Compile time: one module with one function, declare + define + finalize, verifier off.
    let mut times = vec![];
    for _ in 0..20 {
        let start = Instant::now();
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").unwrap();
        flags.set("enable_verifier", "false").unwrap();
        flags.set("is_pic", "false").unwrap();
        let isa = cranelift_native::builder().unwrap().finish(settings::Flags::new(flags)).unwrap();
        let isa_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let start = Instant::now();
        let id = define_gemm(&mut module, "g", Linkage::Export, DType::F32).unwrap();
        module.finalize_definitions().unwrap();
        let _ = module.get_finalized_function(id);
        times.push((start.elapsed().as_secs_f64() * 1e3, isa_ms));
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("compile (define + finalize, f32): median {:.2} ms, min {:.2} ms", times[10].0, times[0].0);

    let j = jit(true);
    for (m, n, k) in [(512usize, 512usize, 512usize), (128, 256, 784), (64, 256, 10)] {
        let mut rng = Rng::new(1);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect();
        let mut c = vec![0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        let mut run = |g: Gemm<f32>| -> f64 {
            // SAFETY: valid row-major matrices; C does not overlap A or B.
            let call = |c: &mut [f32]| unsafe {
                g(
                    m as i64,
                    k as i64,
                    n as i64,
                    1.0,
                    a.as_ptr(),
                    k as i64,
                    1,
                    b.as_ptr(),
                    n as i64,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as i64,
                    1,
                )
            };
            call(&mut c);
            // Enough calls for ~50 ms, median of 7 rounds.
            let reps = ((5e7 / flops) as usize).max(1) * 10;
            let mut rates = vec![];
            for _ in 0..7 {
                let start = Instant::now();
                for _ in 0..reps {
                    call(&mut c);
                }
                rates.push(flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9);
            }
            rates.sort_by(f64::total_cmp);
            rates[3]
        };
        let ours = run(j.f32);
        let lib = run(netc::runtime::symbols::netc_gemm_f32);
        println!("{m}×{n}×{k} (M×N×K): generated {ours:.1} GFLOP/s, library {lib:.1} GFLOP/s");
    }
    // f64 at 512³, for reference (half the lanes: expect about half the rate).
    let n = 512usize;
    let a: Vec<f64> = (0..n * n).map(|i| (i % 7) as f64 - 3.0).collect();
    let mut c = vec![0f64; n * n];
    let flops = 2.0 * (n * n * n) as f64;
    let mut best = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        // SAFETY: valid row-major 512 × 512 matrices; C does not overlap A.
        unsafe {
            (j.f64)(
                n as i64,
                n as i64,
                n as i64,
                1.0,
                a.as_ptr(),
                n as i64,
                1,
                a.as_ptr(),
                n as i64,
                1,
                0.0,
                c.as_mut_ptr(),
                n as i64,
                1,
            )
        };
        best = best.max(flops / start.elapsed().as_secs_f64() / 1e9);
    }
    println!("512×512×512 f64: generated {best:.1} GFLOP/s (best of 5)");
}

/// Whole train steps (dense, convolution forward and backward, SGD/momentum/Adam updates
/// folded into GEMM alpha/beta) on the JIT with the generated GEMM, against the interpreter.
#[test]
fn train_steps_on_the_generated_gemm_match_the_interpreter() {
    use netc::codegen::CompileOptions;
    use netc::ir::graph::InputKind;
    use netc::ir::tensor::Tensor;
    let cases = [
        ("examples/spiral.net", "sgd(lr: 1.0)"),
        ("examples/digits_mlp.net", "momentum(lr: 0.05, momentum: 0.9)"),
        ("examples/digits_cnn.net", "adam(lr: 0.001)"),
        ("examples/cifar_cnn.net", "sgd(lr: 0.01)"),
    ];
    for (path, optimizer) in cases {
        let mut src = std::fs::read_to_string(path).unwrap();
        let start = src.find("optimizer:").unwrap();
        let end = start + src[start..].find('\n').unwrap();
        src.replace_range(start..end, &format!("optimizer: {optimizer}"));
        let checked = netc::frontend::check::check_source(&src).unwrap();
        let mut g = netc::training::optim::build(&checked.trains[0]).unwrap().graph;
        netc::ir::opt::optimize(&mut g, None).unwrap();
        let mut rng = Rng::new(3);
        let n = 5;
        let inputs: Vec<Tensor> = g
            .inputs
            .iter()
            .map(|i| {
                let shape: Vec<usize> = i.shape.iter().map(|d| d.known().unwrap_or(n)).collect();
                let len: usize = shape.iter().product();
                let data: Vec<f64> = match i.kind {
                    InputKind::Label => (0..len).map(|_| rng.below(3) as f64).collect(),
                    _ if shape.is_empty() => vec![0.1],
                    _ => (0..len).map(|_| rng.uniform_in(-1.0, 1.0) as f32 as f64).collect(),
                };
                Tensor::new(shape, data)
            })
            .collect();
        let params: Vec<Tensor> = netc::runtime::params::init_params(&g, 1)
            .into_iter()
            .map(|t| Tensor::new(t.shape.clone(), t.data.iter().map(|&v| v as f32 as f64).collect()))
            .collect();
        let values = netc::ir::interp::run(&g, &inputs, &params).unwrap();
        let mut want = params.clone();
        for &(p, id) in &g.updates {
            want[p] = values[id.index()].clone();
        }
        // The generated GEMM for every product, then the library's for every product (the
        // default splits them by size).
        for opts in [
            CompileOptions { generated_gemm: true, ..CompileOptions::default() },
            CompileOptions { small_gemm: 0, ..CompileOptions::default() },
        ] {
            let mut compiled = netc::drivers::jit::compile(&g, &opts).unwrap();
            let mut got = params.clone();
            let outputs = compiled.run_tensors(&inputs, &mut got).unwrap();
            let close = |what: &str, a: &Tensor, b: &Tensor| {
                let scale = b.data.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
                for (i, (&x, &y)) in a.data.iter().zip(&b.data).enumerate() {
                    assert!((x - y).abs() <= 1e-4 * scale, "{path} {what}[{i}]: generated GEMM {x}, interpreter {y}");
                }
            };
            for ((name, id), out) in g.outputs.iter().zip(&outputs) {
                close(name, out, &values[id.index()]);
            }
            for (p, (a, b)) in g.params.iter().zip(got.iter().zip(&want)) {
                close(&p.name, a, b);
            }
        }
    }
}
