//! The GEMM's worker pool (`netc::runtime::threads`) and the split GEMM (`symbols::gemm_f32_on`):
//!
//! - a GEMM cut into row or column blocks on 2 or 3 threads gives bitwise the result of one
//!   `matrixmultiply` call, over shapes around the block and micro-kernel edges, k across the
//!   packing block (256), row-major, column-major, padded and negative strides, transposes,
//!   alpha/beta values, beta = 0 over NaN; padding in C stays untouched and the result is
//!   close to a naive reference;
//! - the GEMM symbols (global pool) agree with one call, also from many threads at once, and
//!   many callers share one pool concurrently;
//! - the pool runs every chunk exactly once, workers take part (also after parking, and after
//!   `Pool::wake` in jobs that do not wake them), a panicking chunk is re-raised to the caller
//!   and leaves the pool usable.
//!
//! `bench_split` (ignored) prints the time of one call against the split on 2 threads for
//! the shapes of the issue #8 workloads:
//! `cargo test --release threads:: -- --ignored --nocapture`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use netc::runtime::rng::Rng;
use netc::runtime::symbols::{self, plan, Gemm, GemmArgs, GemmFn, Matrix, Plan, Split};
use netc::runtime::threads::Pool;
use proptest::prelude::*;

/// Pools shared by the tests (which run concurrently, so callers also meet a busy pool).
fn pool(threads: usize) -> &'static Pool {
    static POOLS: OnceLock<[Pool; 3]> = OnceLock::new();
    &POOLS.get_or_init(|| [Pool::new(1), Pool::new(2), Pool::new(3)])[threads - 1]
}

/// Split every GEMM whose shape allows it.
const ALWAYS: Split = Split { min_macs: 0, wake_macs: 0, blocks_per_thread: 1 };
/// Split finer than the threads: several blocks per thread.
const FINE: Split = Split { min_macs: 0, wake_macs: 0, blocks_per_thread: 3 };

/// `symbols::gemm_*_on`: a GEMM's arguments on a pool and a split.
type GemmOn<T> = unsafe fn(&Pool, Split, Gemm<T>);

trait Float: Copy + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn bits(self) -> u64;
    const EPS: f64;
    /// `symbols::gemm_*_on`: on a given pool and split.
    const GEMM_ON: GemmOn<Self>;
    /// The exported symbol (global pool, default split).
    const SYMBOL: GemmFn<Self>;
    /// `symbols::netc_pack_panels_*`.
    const PACK: PackFn<Self>;
    /// `symbols::panels_*_on`.
    const PANELS_ON: PanelsOn<Self>;
    /// Columns per panel on this CPU (`symbols::panel_width`).
    fn width() -> Option<usize>;
}

/// `symbols::netc_pack_panels_*`: k, n, B and its strides, the width, the panels.
type PackFn<T> = unsafe extern "C" fn(i64, i64, *const T, i64, i64, i64, *mut T);
/// `symbols::panels_*_on`: the product by panels on a given pool and split.
type PanelsOn<T> = unsafe fn(&Pool, Split, *const T, i64, Gemm<T>);

impl Float for f32 {
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    const EPS: f64 = f32::EPSILON as f64;
    const GEMM_ON: GemmOn<f32> = symbols::gemm_f32_on;
    const SYMBOL: GemmFn<f32> = symbols::netc_gemm_f32;
    const PACK: PackFn<f32> = symbols::netc_pack_panels_f32;
    const PANELS_ON: PanelsOn<f32> = symbols::panels_f32_on;
    fn width() -> Option<usize> {
        symbols::panel_width::<f32>()
    }
}

impl Float for f64 {
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn bits(self) -> u64 {
        self.to_bits()
    }
    const EPS: f64 = f64::EPSILON;
    const GEMM_ON: GemmOn<f64> = symbols::gemm_f64_on;
    const SYMBOL: GemmFn<f64> = symbols::netc_gemm_f64;
    const PACK: PackFn<f64> = symbols::netc_pack_panels_f64;
    const PANELS_ON: PanelsOn<f64> = symbols::panels_f64_on;
    fn width() -> Option<usize> {
        symbols::panel_width::<f64>()
    }
}

/// How an r × c matrix sits in its buffer.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Row stride c + pad, column stride 1.
    RowMajor(usize),
    /// Row stride 1, column stride r + pad (the transpose of a row-major matrix).
    ColMajor(usize),
    /// Row-major with the rows in reverse order (negative row stride).
    RowsReversed(usize),
}

const LAYOUTS: [Layout; 5] =
    [Layout::RowMajor(0), Layout::ColMajor(0), Layout::RowMajor(5), Layout::ColMajor(3), Layout::RowsReversed(2)];

/// Guard elements before and after every matrix.
const GUARD: usize = 7;

/// A matrix in a buffer with guards and padding: (i, j) is at `off + i·rs + j·cs`.
#[derive(Clone, Debug)]
struct Mat<T> {
    buf: Vec<T>,
    off: usize,
    rs: isize,
    cs: isize,
    rows: usize,
    cols: usize,
}

impl<T: Float> Mat<T> {
    /// Elements from `value(i, j)`, everything else (guards, padding) `fill`.
    fn new(rows: usize, cols: usize, layout: Layout, fill: T, mut value: impl FnMut(usize, usize) -> T) -> Mat<T> {
        let (len, off, rs, cs) = match layout {
            Layout::RowMajor(p) => (rows * (cols + p), 0, (cols + p) as isize, 1),
            Layout::ColMajor(p) => (cols * (rows + p), 0, 1, (rows + p) as isize),
            Layout::RowsReversed(p) => {
                (rows * (cols + p), rows.saturating_sub(1) * (cols + p), -((cols + p) as isize), 1)
            }
        };
        let mut m = Mat { buf: vec![fill; len + 2 * GUARD], off: off + GUARD, rs, cs, rows, cols };
        for i in 0..rows {
            for j in 0..cols {
                let at = m.index(i, j);
                m.buf[at] = value(i, j);
            }
        }
        m
    }

    fn index(&self, i: usize, j: usize) -> usize {
        (self.off as isize + i as isize * self.rs + j as isize * self.cs) as usize
    }

    fn get(&self, i: usize, j: usize) -> T {
        self.buf[self.index(i, j)]
    }

    fn ptr(&self) -> *const T {
        self.buf.as_ptr().wrapping_add(self.off)
    }

    fn ptr_mut(&mut self) -> *mut T {
        self.buf.as_mut_ptr().wrapping_add(self.off)
    }
}

/// One GEMM case: C = alpha·A·B + beta·C with A m×k, B k×n.
#[derive(Clone, Debug)]
struct Case<T> {
    a: Mat<T>,
    b: Mat<T>,
    c: Mat<T>,
    alpha: T,
    beta: T,
}

/// Sentinel in C's guards and padding: must come back untouched.
const SENTINEL: f64 = 12345.5;

impl<T: Float> Case<T> {
    #[allow(clippy::too_many_arguments)]
    fn new(m: usize, k: usize, n: usize, la: Layout, lb: Layout, lc: Layout, alpha: f64, beta: f64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut rand = move |_: usize, _: usize| T::from_f64(rng.uniform_in(-1.0, 1.0));
        let nan = T::from_f64(f64::NAN);
        let a = Mat::new(m, k, la, nan, &mut rand);
        let b = Mat::new(k, n, lb, nan, &mut rand);
        // beta = 0: C holds NaN, which must not reach the result.
        let c = if beta == 0.0 {
            Mat::new(m, n, lc, T::from_f64(SENTINEL), |_, _| nan)
        } else {
            Mat::new(m, n, lc, T::from_f64(SENTINEL), &mut rand)
        };
        Case { a, b, c, alpha: T::from_f64(alpha), beta: T::from_f64(beta) }
    }

    fn dims(&self) -> (usize, usize, usize) {
        (self.a.rows, self.a.cols, self.b.cols)
    }

    /// C after the GEMM run by `f` (one of the entry points, same arguments).
    fn run_with(
        &self,
        f: impl FnOnce(i64, i64, i64, T, *const T, i64, i64, *const T, i64, i64, T, *mut T, i64, i64),
    ) -> Mat<T> {
        let (m, k, n) = self.dims();
        let mut c = self.c.clone();
        let (a, b) = (&self.a, &self.b);
        let (rsc, csc) = (c.rs as i64, c.cs as i64);
        f(
            m as i64,
            k as i64,
            n as i64,
            self.alpha,
            a.ptr(),
            a.rs as i64,
            a.cs as i64,
            b.ptr(),
            b.rs as i64,
            b.cs as i64,
            self.beta,
            c.ptr_mut(),
            rsc,
            csc,
        );
        c
    }

    fn run(&self, pool: &Pool, split: Split) -> Mat<T> {
        self.run_with(|m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc| unsafe {
            let (a, b, c) = (Matrix::new(a, rsa, csa), Matrix::new(b, rsb, csb), Matrix::new(c, rsc, csc));
            (T::GEMM_ON)(pool, split, GemmArgs { m, k, n, alpha, a, b, beta, c })
        })
    }

    fn run_symbol(&self) -> Mat<T> {
        self.run_with(|m, k, n, al, a, rsa, csa, b, rsb, csb, be, c, rsc, csc| unsafe {
            (T::SYMBOL)(m, k, n, al, a, rsa, csa, b, rsb, csb, be, c, rsc, csc)
        })
    }

    /// `got` is C = alpha·A·B + beta·C up to rounding, by a naive f64 product, and C's
    /// guards and padding are untouched.
    fn check_close(&self, got: &Mat<T>) {
        let (m, k, n) = self.dims();
        let mut expect = self.c.buf.clone();
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut mag) = (0.0, 0.0);
                for p in 0..k {
                    let t = self.a.get(i, p).to_f64() * self.b.get(p, j).to_f64();
                    s += t;
                    mag += t.abs();
                }
                let alpha = self.alpha.to_f64();
                let beta = self.beta.to_f64();
                let c0 = if beta == 0.0 { 0.0 } else { beta * self.c.get(i, j).to_f64() };
                let want = alpha * s + c0;
                let g = got.get(i, j).to_f64();
                let tol = 4.0 * (k as f64 + 2.0) * T::EPS * (alpha.abs() * mag + c0.abs() + 1e-30);
                assert!((g - want).abs() <= tol, "C[{i},{j}] = {g}, expected {want} (±{tol}), case {m}×{k}×{n}");
                expect[self.c.index(i, j)] = got.get(i, j);
            }
        }
        assert_eq!(bits(&expect), bits(&got.buf), "C's guards or padding changed, case {m}×{k}×{n}");
    }
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.bits()).collect()
}

/// Whole buffers (guards and padding included) equal bit for bit.
fn assert_same<T: Float>(got: &Mat<T>, want: &Mat<T>, what: &str) {
    if bits(&got.buf) != bits(&want.buf) {
        let at = got.buf.iter().zip(&want.buf).position(|(g, w)| g.bits() != w.bits()).unwrap();
        panic!("{what}: element {at} of the buffer is {:?}, one call gives {:?}", got.buf[at], want.buf[at]);
    }
}

/// The case split on 2 and 3 threads (coarse and fine blocks) equals one call, bit for bit,
/// and one call is right.
fn check_split<T: Float>(case: &Case<T>) {
    let one = case.run(pool(1), Split::NEVER);
    case.check_close(&one);
    for threads in [2, 3] {
        for split in [ALWAYS, FINE] {
            let got = case.run(pool(threads), split);
            assert_same(&got, &one, &format!("{:?} on {threads} threads, {split:?}", case.dims()));
        }
    }
    assert_same(&case.run_symbol(), &one, "the GEMM symbol");
}

/// Shapes around the alignment (16) and split (2 blocks of 16) edges, k across KC = 256.
const SHAPES: [(usize, usize, usize); 22] = [
    (1, 1, 1),
    (32, 8, 1),
    (1, 8, 32),
    (31, 5, 31),
    (32, 5, 32),
    (33, 9, 17),
    (17, 9, 33),
    (47, 1, 64),
    (64, 3, 47),
    (100, 0, 90),
    (128, 784, 40),
    (40, 300, 130),
    (129, 257, 33),
    (33, 257, 129),
    (200, 64, 200),
    (256, 128, 10),
    (10, 128, 256),
    (128, 10, 256),
    (300, 17, 70),
    (70, 17, 300),
    (48, 513, 48),
    (190, 31, 191),
];

fn sweep<T: Float>() {
    let mut rng = Rng::new(7);
    for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
        if m >= 32 || n >= 32 {
            let p = plan(ALWAYS, 2, m, k, n, n as isize, 1);
            assert_ne!(p, Plan::Whole, "{m}×{k}×{n} should split");
        }
        // Every layout of C with a varying A and B layout and alpha/beta.
        for (l, &lc) in LAYOUTS.iter().enumerate() {
            let la = LAYOUTS[rng.below(5) as usize];
            let lb = LAYOUTS[rng.below(5) as usize];
            let alpha = [1.0, -0.75, 0.0][(s + l) % 3];
            let beta = [0.0, 1.0, 0.5, 0.0, -2.0][(s * 3 + l) % 5];
            check_split(&Case::<T>::new(m, k, n, la, lb, lc, alpha, beta, rng.next_u64()));
        }
    }
}

/// The kernels of `symbols::stream`, for every ISA this CPU runs (AVX-512 and AVX2 on an
/// AVX-512 machine): each right against the f64 product (C's guards and padding kept, beta =
/// 0 over NaN), and cut into blocks anywhere (column blocks, row blocks for `Outer`'s short k)
/// the bits of one call; through the symbol on 2 and 3 threads for the ISA it uses. Tiles and
/// k-blocks cut at their edges (k = 1, 16, 17, 32, 513; n past a tile; m past a group of
/// rows; C's rows reversed); each ISA's choice of kernel by shape ([`stream::Limits`]).
fn streamed_sweep<T: Float + symbols::stream::Streamed>() {
    use symbols::stream::{self, Isa, Layout as Kernel};
    let isas = Isa::available();
    if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2") {
        assert!(isas.contains(&Isa::Avx2), "an x86-64 CPU with AVX2 and FMA streams");
    }
    let mut seen = HashSet::new();
    let mut seed = 11;
    // Runs `kernel` of `isa` on the case, in column blocks (row blocks for `Outer`) cut at `cuts`.
    fn blocks<T: Float + stream::Streamed>(case: &Case<T>, isa: Isa, kernel: Kernel, cuts: &[usize]) -> Mat<T> {
        case.run_with(|m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc| {
            let (a, b, c) = (Matrix::new(a, rsa, csa), Matrix::new(b, rsb, csb), Matrix::new(c, rsc, csc));
            let args = GemmArgs { m, k, n, alpha, a, b, beta, c };
            for pair in cuts.windows(2) {
                // SAFETY: the case's matrices, a block of C's columns (rows for `Outer` and `Tiles`); an
                // ISA the CPU runs.
                unsafe { stream::gemm_on(isa, kernel, args, pair[0]..pair[1]) };
            }
        })
    }
    let gemm_args = |case: &Case<T>, m: usize, k: usize, n: usize| {
        let (a, b, c) = (&case.a, &case.b, &case.c);
        GemmArgs {
            m: m as i64,
            k: k as i64,
            n: n as i64,
            alpha: case.alpha,
            a: Matrix::new(a.ptr(), a.rs as i64, a.cs as i64),
            b: Matrix::new(b.ptr(), b.rs as i64, b.cs as i64),
            beta: case.beta,
            c: Matrix::new(c.ptr() as *mut T, c.rs as i64, c.cs as i64),
        }
    };
    // (m, k, n, B, C, AVX-512's kernel, AVX2's kernel)
    for (m, k, n, lb, lc, avx512, avx2) in [
        (8, 600, 100, Layout::RowMajor(0), Layout::RowMajor(0), Some(Kernel::Rows), Some(Kernel::Rows)),
        (8, 600, 100, Layout::ColMajor(0), Layout::RowMajor(0), Some(Kernel::Columns), Some(Kernel::Columns)),
        (32, 17, 70, Layout::RowMajor(0), Layout::RowMajor(5), Some(Kernel::Rows), None),
        (9, 16, 1000, Layout::RowMajor(5), Layout::RowMajor(0), Some(Kernel::Rows), Some(Kernel::Rows)),
        (1, 513, 40, Layout::ColMajor(0), Layout::ColMajor(0), Some(Kernel::Columns), Some(Kernel::Columns)),
        (5, 1000, 33, Layout::ColMajor(3), Layout::RowsReversed(2), Some(Kernel::Columns), Some(Kernel::Columns)),
        (31, 700, 47, Layout::ColMajor(0), Layout::RowMajor(5), Some(Kernel::Columns), Some(Kernel::Columns)),
        (17, 333, 95, Layout::RowMajor(0), Layout::RowMajor(0), Some(Kernel::Rows), None),
        (3, 20, 2100, Layout::RowMajor(0), Layout::RowMajor(1), Some(Kernel::Rows), Some(Kernel::Rows)),
        (16, 45, 37, Layout::RowMajor(0), Layout::RowMajor(0), Some(Kernel::Rows), Some(Kernel::Rows)),
        (20, 300, 50, Layout::ColMajor(0), Layout::RowMajor(0), None, Some(Kernel::Columns)),
        (32, 259, 13, Layout::ColMajor(2), Layout::RowsReversed(1), None, Some(Kernel::Columns)),
        (33, 700, 47, Layout::ColMajor(0), Layout::RowMajor(0), None, None),
        // Many rows and 64 ≤ k ≤ 512: AVX2's `Tiles`, in blocks of 128 rows (a B over 32 KiB
        // copied, a transposed one turned); a shorter k or fewer than 32 columns keep the
        // library.
        (200, 64, 200, Layout::RowMajor(0), Layout::RowMajor(0), None, Some(Kernel::Tiles)),
        (257, 300, 40, Layout::ColMajor(0), Layout::RowsReversed(2), None, Some(Kernel::Tiles)),
        (140, 512, 33, Layout::RowMajor(0), Layout::RowMajor(3), None, Some(Kernel::Tiles)),
        (100, 63, 64, Layout::RowMajor(0), Layout::RowMajor(0), None, None),
        (100, 64, 31, Layout::RowMajor(0), Layout::RowMajor(0), None, None),
        (100, 513, 64, Layout::RowMajor(0), Layout::RowMajor(0), None, None),
    ] {
        for (alpha, beta) in [(1.0, 0.0), (-0.75, 1.0), (0.5, -2.0)] {
            seed += 1;
            let case = Case::<T>::new(m, k, n, Layout::RowMajor(0), lb, lc, alpha, beta, seed);
            let args = gemm_args(&case, m, k, n);
            assert_eq!(stream::layout_for(Isa::Avx512, &args), avx512, "AVX-512, {m}×{k}×{n}, B {lb:?}, C {lc:?}");
            assert_eq!(stream::layout_for(Isa::Avx2, &args), avx2, "AVX2, {m}×{k}×{n}, B {lb:?}, C {lc:?}");
            for &isa in &isas {
                let want = if isa == Isa::Avx512 { avx512 } else { avx2 };
                let Some(kernel) = want else { continue };
                seen.insert((isa, kernel));
                // Blocks of columns, or of rows for the kernels that cut rows.
                let len = if kernel.cuts_rows() { m } else { n };
                let whole = blocks(&case, isa, kernel, &[0, len]);
                case.check_close(&whole);
                let cuts = [0, 1, len / 3, len / 3 + 17, len].map(|cut| cut.min(len));
                assert_same(&blocks(&case, isa, kernel, &cuts), &whole, &format!("{isa:?} {m}×{k}×{n} in blocks"));
            }
            assert_eq!(stream::layout(&args), Isa::detected().and_then(|isa| stream::layout_for(isa, &args)));
            check_split(&case);
        }
    }
    for &isa in &isas {
        assert!(seen.contains(&(isa, Kernel::Rows)) && seen.contains(&(isa, Kernel::Columns)), "{isa:?}: {seen:?}");
    }
    // `Outer` (a short k) is chosen only for a C of 2²⁴ elements or more, too large for a
    // test's many copies: the choice is checked on its shape, the kernel called directly on
    // small ones, whole and in uneven row blocks (the same bits).
    let dangling = Matrix::new(std::ptr::NonNull::<T>::dangling().as_ptr() as *const T, 4096, 1);
    let big = GemmArgs {
        m: 9216,
        k: 8,
        n: 4096,
        alpha: T::from_f64(1.0),
        a: Matrix::new(dangling.ptr, 8, 1),
        b: dangling,
        beta: T::from_f64(1.0),
        c: Matrix::new(dangling.ptr as *mut T, 4096, 1),
    };
    assert_eq!(stream::layout_for(Isa::Avx512, &big), Some(Kernel::Outer));
    assert_eq!(stream::layout_for(Isa::Avx2, &big), None, "AVX2's Outer loses to matrixmultiply");
    assert_eq!(stream::layout_for(Isa::Avx512, &GemmArgs { m: 2048, ..big }), None, "a C that fits the caches better");
    for &isa in &isas {
        for (m, k, n, lb, lc) in [
            (100, 8, 300, Layout::RowMajor(0), Layout::RowMajor(0)),
            (47, 16, 33, Layout::RowMajor(5), Layout::RowsReversed(2)),
            (333, 1, 17, Layout::RowMajor(0), Layout::RowMajor(3)),
        ] {
            for (alpha, beta) in [(1.0, 0.0), (-0.75, 1.0)] {
                seed += 1;
                let case = Case::<T>::new(m, k, n, Layout::ColMajor(1), lb, lc, alpha, beta, seed);
                let whole = blocks(&case, isa, Kernel::Outer, &[0, m]);
                case.check_close(&whole);
                let cuts = [0, 5, 6, m / 2, m];
                assert_same(
                    &blocks(&case, isa, Kernel::Outer, &cuts),
                    &whole,
                    &format!("{isa:?} {m}×{k}×{n} in row blocks"),
                );
            }
        }
    }
    // The batched symbols leave the generated GEMM for the library from 2¹⁵ multiply-adds on,
    // on a CPU with AVX2 or AVX-512.
    let shape = |m, k, n| GemmArgs { m, k, n, ..big };
    assert_eq!(stream::library_beats_generated(&shape(64, 32, 64)), !isas.is_empty(), "attention's scores");
    assert!(!stream::library_beats_generated(&shape(16, 16, 16)), "16 × 16 · 16 × 16");
    assert!(!stream::library_beats_generated(&shape(0, 1 << 40, 1 << 40)), "no rows");
    // Whole products (the batched symbols'): with AVX-512 up to 64 rows (128 for `Rows`), and
    // a small column-major B (up to 1024 elements) copied into rows; with AVX2 `Tiles` for C's
    // columns contiguous and A of up to 2¹⁶ elements. Right against the f64 product, C's
    // guards and padding kept.
    // (m, k, n, A, B, C, AVX-512's kernel, AVX2's kernel)
    #[rustfmt::skip]
    let whole_products = [
        (64, 16, 64, Layout::ColMajor(2), Layout::ColMajor(0), Layout::RowMajor(0), Some(Kernel::Copied), Some(Kernel::Tiles)),
        (64, 32, 64, Layout::ColMajor(2), Layout::ColMajor(0), Layout::RowMajor(0), None, Some(Kernel::Tiles)),
        (64, 64, 32, Layout::ColMajor(2), Layout::RowMajor(0), Layout::RowMajor(0), Some(Kernel::Rows), Some(Kernel::Tiles)),
        (33, 7, 45, Layout::ColMajor(2), Layout::ColMajor(3), Layout::RowsReversed(2), Some(Kernel::Copied), Some(Kernel::Tiles)),
        (50, 17, 1, Layout::ColMajor(2), Layout::RowMajor(0), Layout::RowMajor(5), Some(Kernel::Rows), Some(Kernel::Tiles)),
        (50, 17, 1, Layout::ColMajor(2), Layout::ColMajor(0), Layout::RowMajor(5), Some(Kernel::Copied), Some(Kernel::Tiles)),
        (128, 128, 32, Layout::ColMajor(2), Layout::RowMajor(0), Layout::RowMajor(0), Some(Kernel::Rows), Some(Kernel::Tiles)),
        (101, 9, 37, Layout::ColMajor(2), Layout::RowMajor(3), Layout::RowMajor(1), Some(Kernel::Rows), Some(Kernel::Tiles)),
        (101, 9, 37, Layout::ColMajor(2), Layout::ColMajor(0), Layout::RowMajor(1), None, Some(Kernel::Tiles)),
        (129, 9, 37, Layout::ColMajor(2), Layout::RowMajor(0), Layout::RowMajor(0), None, Some(Kernel::Tiles)),
        (16, 9, 37, Layout::ColMajor(2), Layout::RowMajor(0), Layout::RowMajor(0), Some(Kernel::Rows), Some(Kernel::Tiles)),
        (30, 300, 20, Layout::RowMajor(0), Layout::ColMajor(0), Layout::RowMajor(0), None, Some(Kernel::Tiles)),
        (40, 300, 20, Layout::RowMajor(0), Layout::ColMajor(0), Layout::RowMajor(0), None, Some(Kernel::Tiles)),
        // Not `Tiles`: C's columns apart, and an A of more than 2¹⁶ elements.
        (20, 10, 20, Layout::RowMajor(0), Layout::RowMajor(0), Layout::ColMajor(0), None, None),
        (300, 300, 5, Layout::ColMajor(2), Layout::RowMajor(0), Layout::RowMajor(0), None, None),
    ];
    for (m, k, n, la, lb, lc, avx512, avx2) in whole_products {
        for (alpha, beta) in [(1.0, 0.0), (-0.75, 1.0)] {
            seed += 1;
            let case = Case::<T>::new(m, k, n, la, lb, lc, alpha, beta, seed);
            let args = gemm_args(&case, m, k, n);
            assert_eq!(
                stream::whole_layout_for(Isa::Avx512, &args),
                avx512,
                "AVX-512, {m}×{k}×{n}, B {lb:?}, C {lc:?}"
            );
            assert_eq!(stream::whole_layout_for(Isa::Avx2, &args), avx2, "AVX2, {m}×{k}×{n}, B {lb:?}, C {lc:?}");
            for &isa in &isas {
                let want = if isa == Isa::Avx512 { avx512 } else { avx2 };
                if let Some(kernel) = want {
                    let len = if kernel.cuts_rows() { m } else { n };
                    case.check_close(&blocks(&case, isa, kernel, &[0, len]));
                }
            }
        }
    }
}

/// `stream`'s `Tiles` (AVX2), what the batched symbols run attention's products with:
/// right against the f64 product (C's guards and padding kept, beta = 0 over NaN) for every
/// layout of A and B (B in place, copied by rows, by 8 × 8 or 4 × 4 transposes and element
/// by element; a B over 32 KiB copied although its rows are contiguous) and of C, rows past
/// a tile of 6 (1 to 5 left), columns past a panel, k past a transposed block; and cut into
/// row blocks anywhere (tiles of rows cut short), the bits of one call.
fn tiles_sweep<T: Float + symbols::stream::Streamed>() {
    use symbols::stream::{self, Isa, Layout as Kernel};
    if !Isa::available().contains(&Isa::Avx2) {
        return;
    }
    let mut seed = 500;
    let c_layouts = [Layout::RowMajor(0), Layout::RowMajor(3), Layout::RowsReversed(1)];
    let shapes = [
        (1, 1, 1),
        (7, 8, 16),
        (6, 17, 33),
        (13, 16, 9),
        (64, 64, 64),
        (11, 300, 40),
        (32, 5, 100),
        (5, 64, 8),
        (150, 16, 40),
    ];
    for (s, &(m, k, n)) in shapes.iter().enumerate() {
        for (l, (&la, &lb)) in LAYOUTS.iter().zip(LAYOUTS.iter().cycle().skip(s)).enumerate() {
            seed += 1;
            let lc = c_layouts[(s + l) % 3];
            let (alpha, beta) = [(1.0, 0.0), (-0.75, 1.0), (0.3, -0.7)][(s + 2 * l) % 3];
            let case = Case::<T>::new(m, k, n, la, lb, lc, alpha, beta, seed);
            let run = |cuts: &[usize]| {
                case.run_with(|m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc| {
                    let (a, b, c) = (Matrix::new(a, rsa, csa), Matrix::new(b, rsb, csb), Matrix::new(c, rsc, csc));
                    let args = GemmArgs { m, k, n, alpha, a, b, beta, c };
                    assert_eq!(stream::whole_layout_for(Isa::Avx2, &args), Some(Kernel::Tiles), "{m}×{k}×{n}");
                    for pair in cuts.windows(2) {
                        // SAFETY: the case's matrices, a block of C's rows; the CPU has AVX2.
                        unsafe { stream::gemm_on(Isa::Avx2, Kernel::Tiles, args, pair[0]..pair[1]) };
                    }
                })
            };
            let whole = run(&[0, m]);
            case.check_close(&whole);
            let mut cuts = [0, 1, m / 3, m / 3 + 17, m].map(|cut| cut.min(m)).to_vec();
            cuts.sort();
            cuts.dedup();
            assert_same(&run(&cuts), &whole, &format!("{m}×{k}×{n}, A {la:?}, B {lb:?}, C {lc:?} in blocks"));
        }
    }
}

#[test]
fn tiled_products_are_right_and_the_same_in_any_blocks_f32() {
    tiles_sweep::<f32>();
}

#[test]
fn tiled_products_are_right_and_the_same_in_any_blocks_f64() {
    tiles_sweep::<f64>();
}

#[test]
fn streamed_products_split_equal_one_call_f32() {
    streamed_sweep::<f32>();
}

#[test]
fn streamed_products_split_equal_one_call_f64() {
    streamed_sweep::<f64>();
}

/// Products by a packed B (`symbols::panels`, what a loop's products by an unchanging weight
/// run): right against the f64 product (C's guards and padding kept, beta = 0 over NaN) and,
/// cut among 2 and 3 threads at panel edges, the bits of one thread; B in any layout (the
/// packing's two orders), n past a panel, m past a group of rows. More than
/// `MAX_PANEL_ROWS` rows, C's columns not contiguous, or a width that is not this CPU's: the
/// GEMM with B in place, bit for bit.
fn panels_sweep<T: Float>() {
    let Some(width) = T::width() else { return };
    let mut rng = Rng::new(11);
    let shapes = [(1, 1, 1), (5, 70, 70), (6, 16, 17), (32, 256, 300), (13, 33, 48), (64, 9, 100), (65, 20, 40)];
    for (s, &(m, k, n)) in shapes.iter().enumerate() {
        for (l, &lb) in LAYOUTS.iter().enumerate() {
            let lc = [Layout::RowMajor(0), Layout::RowMajor(5), Layout::RowsReversed(2), Layout::ColMajor(0)][l % 4];
            let la = LAYOUTS[rng.below(5) as usize];
            let (alpha, beta) = ([1.0, -0.75][(s + l) % 2], [0.0, 1.0, 0.5][(s + l) % 3]);
            let case = Case::<T>::new(m, k, n, la, lb, lc, alpha, beta, rng.next_u64());
            let by_panels = |w: usize, pool: &Pool, split: Split| {
                let mut panels = vec![T::from_f64(f64::NAN); n.div_ceil(w) * k * w];
                let b = &case.b;
                // SAFETY: B's elements and the panels' ⌈n / w⌉ · k · w.
                unsafe {
                    (T::PACK)(k as i64, n as i64, b.ptr(), b.rs as i64, b.cs as i64, w as i64, panels.as_mut_ptr())
                };
                case.run_with(|m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc| unsafe {
                    let (a, b, c) = (Matrix::new(a, rsa, csa), Matrix::new(b, rsb, csb), Matrix::new(c, rsc, csc));
                    (T::PANELS_ON)(pool, split, panels.as_ptr(), w as i64, GemmArgs { m, k, n, alpha, a, b, beta, c })
                })
            };
            let what = format!("{m}×{k}×{n}, B {lb:?}, C {lc:?}");
            let one = by_panels(width, pool(1), Split::NEVER);
            case.check_close(&one);
            for threads in [2, 3] {
                for split in [ALWAYS, FINE] {
                    assert_same(&by_panels(width, pool(threads), split), &one, &format!("{what} on {threads} threads"));
                }
            }
            let in_place = case.run(pool(1), Split::NEVER);
            let panels_pay =
                m <= symbols::MAX_PANEL_ROWS as usize && matches!(lc, Layout::RowMajor(_) | Layout::RowsReversed(_));
            if !panels_pay {
                assert_same(&one, &in_place, &format!("{what}: B in place"));
            }
            assert_same(&by_panels(width + 1, pool(2), ALWAYS), &in_place, &format!("{what}, another width"));
        }
    }
}

#[test]
fn products_by_panels_split_equal_one_call_f32() {
    panels_sweep::<f32>();
}

#[test]
fn products_by_panels_split_equal_one_call_f64() {
    panels_sweep::<f64>();
}

#[test]
fn split_equals_one_call_f32() {
    sweep::<f32>();
}

#[test]
fn split_equals_one_call_f64() {
    sweep::<f64>();
}

/// Every combination of layouts and alpha/beta on one shape that splits along rows and one
/// that splits along columns.
#[test]
fn all_layouts_and_scalars() {
    let mut seed = 100;
    for (m, k, n) in [(96, 70, 40), (40, 70, 96)] {
        for la in LAYOUTS {
            for lb in LAYOUTS {
                for lc in LAYOUTS {
                    for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25), (0.0, 0.0), (0.0, 3.0)] {
                        seed += 1;
                        check_split(&Case::<f32>::new(m, k, n, la, lb, lc, alpha, beta, seed));
                    }
                }
            }
        }
    }
}

/// Empty shapes leave C alone.
#[test]
fn empty_shapes() {
    for (m, k, n) in [(0, 5, 40), (40, 5, 0), (0, 0, 0)] {
        let case = Case::<f32>::new(m, k, n, LAYOUTS[0], LAYOUTS[0], LAYOUTS[0], 1.0, 0.0, 1);
        let got = case.run(pool(2), ALWAYS);
        assert_same(&got, &case.c, "an empty GEMM");
    }
}

proptest! {
    #![proptest_config(crate::common::proptest_cases(64))]
    #[test]
    fn random_shapes(m in 1usize..160, k in 0usize..300, n in 1usize..160, la in 0usize..5, lb in 0usize..5,
                     lc in 0usize..5, ab in 0usize..4, seed in any::<u64>()) {
        let (alpha, beta) = [(1.0, 0.0), (-1.5, 1.0), (0.5, -0.5), (1.0, 1.0)][ab];
        check_split(&Case::<f32>::new(m, k, n, LAYOUTS[la], LAYOUTS[lb], LAYOUTS[lc], alpha, beta, seed));
    }
}

/// Blocks and their alignment: which side is cut, no split below the threshold, on one thread,
/// or when C's elements alias.
#[test]
fn plans() {
    let d = Split::DEFAULT;
    // Row-major C: blocks of rows (contiguous), unless B is more than 2× larger than A.
    assert_eq!(plan(d, 2, 128, 784, 256, 256, 1), Plan::Rows { rows: 64, blocks: 2 });
    assert_eq!(plan(d, 2, 784, 128, 256, 256, 1), Plan::Rows { rows: 400, blocks: 2 });
    assert_eq!(plan(d, 2, 128, 10, 256, 256, 1), Plan::Rows { rows: 64, blocks: 2 });
    assert_eq!(plan(d, 2, 96, 363, 3025, 3025, 1), Plan::Cols { cols: 1520, blocks: 2 });
    assert_eq!(plan(d, 2, 32, 144, 256, 256, 1), Plan::Cols { cols: 128, blocks: 2 });
    assert_eq!(plan(d, 2, 16, 27, 1024, 1024, 1), Plan::Cols { cols: 512, blocks: 2 });
    assert_eq!(plan(d, 2, 8, 9216, 4096, 4096, 1), Plan::Cols { cols: 2048, blocks: 2 });
    assert_eq!(plan(d, 3, 100, 1000, 100, 100, 1), Plan::Rows { rows: 48, blocks: 3 });
    assert_eq!(
        plan(Split { blocks_per_thread: 4, ..d }, 2, 1000, 1000, 16, 16, 1),
        Plan::Rows { rows: 128, blocks: 8 }
    );
    // Column-major C: blocks of columns, unless A is more than 2× larger than B.
    assert_eq!(plan(d, 2, 256, 784, 128, 1, 256), Plan::Cols { cols: 64, blocks: 2 });
    assert_eq!(plan(d, 2, 1024, 27, 16, 1, 1024), Plan::Rows { rows: 512, blocks: 2 });
    // Too small, one thread, too narrow to cut.
    assert_eq!(plan(d, 2, 32, 32, 32, 32, 1), Plan::Whole);
    assert_eq!(plan(d, 1, 1024, 1024, 1024, 1024, 1), Plan::Whole);
    assert_eq!(plan(d, 2, 16, 100_000, 16, 16, 1), Plan::Whole);
    // A side of 17 to 31 is cut into 16 and the rest when the other side is shorter.
    assert_eq!(plan(d, 2, 16, 1024, 27, 27, 1), Plan::Cols { cols: 16, blocks: 2 });
    assert_eq!(plan(d, 2, 20, 1000, 40, 40, 1), Plan::Cols { cols: 32, blocks: 2 });
    assert_eq!(plan(d, 2, 31, 1000, 31, 31, 1), Plan::Rows { rows: 16, blocks: 2 });
    // Rows of C on top of each other, or rows overlapping: never split.
    assert_eq!(plan(ALWAYS, 2, 64, 64, 64, 0, 1), Plan::Whole);
    assert_eq!(plan(ALWAYS, 2, 64, 64, 64, 32, 1), Plan::Whole);
    assert_eq!(plan(ALWAYS, 2, 64, 64, 64, 1, 63), Plan::Whole);
    assert_eq!(plan(ALWAYS, 2, 64, 64, 64, 1, 64), Plan::Cols { cols: 32, blocks: 2 });
    assert_eq!(plan(ALWAYS, 2, 64, 64, 1, 1, 0), Plan::Rows { rows: 32, blocks: 2 });
}

/// Many threads call the GEMM at once, on a shared pool and through the symbols (global
/// pool): every result equals one call's.
#[test]
fn concurrent_callers() {
    let mut rng = Rng::new(3);
    let cases: Vec<Case<f32>> = [(128, 300, 256), (300, 128, 64), (64, 257, 300), (256, 64, 256)]
        .iter()
        .map(|&(m, k, n)| {
            let (la, lb, lc) = (LAYOUTS[rng.below(5) as usize], LAYOUTS[rng.below(5) as usize], LAYOUTS[0]);
            Case::new(m, k, n, la, lb, lc, 1.0, [0.0, 1.0][rng.below(2) as usize], rng.next_u64())
        })
        .collect();
    let want: Vec<Mat<f32>> = cases.iter().map(|c| c.run(pool(1), Split::NEVER)).collect();
    let shared = Pool::new(2);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (cases, want, shared) = (&cases, &want, &shared);
            s.spawn(move || {
                for r in 0..40 {
                    let i = (t + r) % cases.len();
                    let got = match (t + r) % 3 {
                        0 => cases[i].run(shared, ALWAYS),
                        1 => cases[i].run(shared, FINE),
                        _ => cases[i].run_symbol(),
                    };
                    assert_same(&got, &want[i], &format!("caller {t}, round {r}"));
                }
            });
        }
    });
}

/// Each chunk runs exactly once per job, with many jobs and several callers.
#[test]
fn chunks_run_once() {
    let pool = Pool::new(3);
    std::thread::scope(|s| {
        for t in 0..4 {
            let pool = &pool;
            s.spawn(move || {
                for job in 0..500 {
                    let chunks = 1 + (job + t) % 9;
                    let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                    pool.run(chunks, &|i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "job {job} of caller {t}");
                }
            });
        }
    });
    pool.run(0, &|_| panic!("no chunk to run"));
}

/// Threads that ran a chunk of `run(2 chunks of 2 ms)`, over rounds until a worker took part
/// (at most 200 rounds: a loaded machine may keep the worker off a core for a while).
fn participants(before_each: impl Fn(), run: impl Fn(&(dyn Fn(usize) + Sync))) -> usize {
    let ids = Mutex::new(HashSet::new());
    for _ in 0..200 {
        before_each();
        run(&|_| {
            ids.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(Duration::from_millis(2));
        });
        if ids.lock().unwrap().len() > 1 {
            break;
        }
    }
    ids.into_inner().unwrap().len()
}

/// Workers run chunks (the caller does not do everything itself), also after they have
/// parked.
#[test]
fn workers_take_part() {
    let pool = Pool::new(2);
    assert_eq!(pool.threads(), 2);
    assert_eq!(participants(|| {}, |f| pool.run(2, f)), 2, "back to back");
    let pause = || std::thread::sleep(Duration::from_millis(5));
    assert_eq!(participants(pause, |f| pool.run(2, f)), 2, "after a pause");
    assert_eq!(Pool::new(1).threads(), 1);
}

/// `wake` wakes a parked worker without work; it then helps with `run_awake` jobs, which do
/// not wake it themselves.
#[test]
fn woken_workers_help() {
    let pool = Pool::new(2);
    let parked = || {
        let t = Instant::now();
        while pool.awake() > 0 && t.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let woken = || {
        parked();
        pool.wake();
    };
    assert_eq!(participants(woken, |f| pool.run_awake(2, f)), 2);
}

/// A panic in a chunk (on the caller or on a worker) reaches the caller after all chunks
/// have finished; the pool keeps working.
#[test]
fn panics_reach_the_caller() {
    let pool = Pool::new(2);
    for _ in 0..10 {
        let finished = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(4, &|i| {
                std::thread::sleep(Duration::from_millis(1));
                if i == 1 {
                    panic!("chunk 1");
                }
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(r.is_err());
        assert_eq!(finished.load(Ordering::Relaxed), 3);
        let hits = AtomicUsize::new(0);
        pool.run(5, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 5);
    }
}

/// Median seconds per call of `f`.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(20) {
        f();
        calls += 1;
    }
    let reps = (calls / 2).max(1);
    let mut samples: Vec<f64> = (0..9)
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

/// Busy the calling thread for `d` (the generated code between two GEMMs).
fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// µs per GEMM, one call against the split on 2 threads, for the workloads' shapes: back to
/// back (the worker spinning), with the caller rewriting A and B before each GEMM (as im2col
/// or the layer before does: the worker's half of the inputs starts in the caller's cache;
/// the time of the rewrite alone is subtracted), and with the caller busy for 1 ms between
/// GEMMs (the worker parked). Matrices are row-major, 64-byte aligned like the JIT's
/// workspace.
#[test]
#[ignore]
fn bench_split() {
    let p2 = Pool::new(2);
    let splits = [("1 thread", pool(1), Split::NEVER), ("2 blocks", &p2, ALWAYS), ("default", &p2, Split::DEFAULT)];
    let shapes = [
        // W2 (784-256-256-10, batch 128)
        (128, 784, 256),
        (784, 128, 256),
        (128, 256, 256),
        (256, 128, 256),
        (128, 256, 10),
        (256, 128, 10),
        (128, 10, 256),
        // W3 (per image)
        (16, 27, 1024),
        (32, 144, 256),
        (32, 256, 144),
        (144, 32, 256),
        // the threshold
        (32, 32, 64),
        (64, 64, 64),
        (64, 64, 128),
        (128, 128, 128),
        (128, 128, 256),
        (256, 256, 256),
        // W7
        (96, 363, 3025),
        (8, 9216, 4096),
        (9216, 8, 4096),
        (1024, 1024, 1024),
    ];
    let aligned = |mut mat: Mat<f32>| {
        mat.buf.reserve(32);
        while !(mat.ptr() as usize).is_multiple_of(64) {
            mat.buf.insert(0, 0.0);
            mat.off += 1;
        }
        mat
    };
    for mode in ["back to back", "inputs rewritten before each GEMM", "caller busy 1 ms between GEMMs"] {
        println!("\n{mode}: µs per GEMM");
        println!("{:>18}{}", "m×k×n", splits.iter().map(|s| format!("{:>10}", s.0)).collect::<String>());
        for &(m, k, n) in &shapes {
            let case = Case::<f32>::new(m, k, n, LAYOUTS[0], LAYOUTS[0], LAYOUTS[0], 1.0, 0.0, 1);
            let (mut a, mut b, mut c) = (aligned(case.a), aligned(case.b), aligned(case.c));
            let before = |a: &mut Mat<f32>, b: &mut Mat<f32>| match mode.chars().next() {
                Some('i') => {
                    for x in a.buf.iter_mut().chain(b.buf.iter_mut()) {
                        *x = -*x;
                    }
                }
                Some('c') => busy(Duration::from_millis(1)),
                _ => {}
            };
            let overhead = time(|| before(&mut a, &mut b));
            let mut row = format!("{:>18}", format!("{m}×{k}×{n}"));
            for &(_, pool, split) in &splits {
                let s = time(|| {
                    before(&mut a, &mut b);
                    unsafe {
                        symbols::gemm_f32_on(
                            pool,
                            split,
                            GemmArgs {
                                m: m as i64,
                                k: k as i64,
                                n: n as i64,
                                alpha: 1.0,
                                a: Matrix::new(a.ptr(), a.rs as i64, a.cs as i64),
                                b: Matrix::new(b.ptr(), b.rs as i64, b.cs as i64),
                                beta: 0.0,
                                c: Matrix::new(c.ptr_mut(), c.rs as i64, c.cs as i64),
                            },
                        )
                    }
                });
                row += &format!("{:>10.1}", (s - overhead) * 1e6);
            }
            println!("{row}");
        }
    }
}

/// The convolution symbol divides images among threads: every op gives the same bits on 1,
/// 2 and 3 threads (the filter gradient is summed in fixed ranges of images, whatever the
/// thread count), for batches that split unevenly.
#[test]
fn convolutions_are_the_same_on_any_thread_count() {
    // c, h, w, f, kh, kw, oh, ow, stride, pad
    let geometries: [[i64; 10]; 3] =
        [[3, 12, 12, 8, 3, 3, 12, 12, 1, 1], [2, 9, 9, 4, 5, 5, 4, 4, 2, 1], [4, 6, 6, 5, 1, 1, 6, 6, 1, 0]];
    for geom in geometries {
        let [c, h, w, f, kh, kw, oh, ow, _, _] = geom.map(|v| v as usize);
        for batch in [1usize, 2, 5, 8] {
            let image = c * h * w;
            let grad = f * oh * ow;
            let filter = f * c * kh * kw;
            let mut rng = Rng::new(batch as u64);
            let mut random = |n: usize| (0..n).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect::<Vec<f32>>();
            let (x, wt, g) = (random(batch * image), random(filter), random(batch * grad));
            // (op, a, b, output length)
            let ops: [(i64, &[f32], &[f32], usize); 3] =
                [(0, &x, &wt, batch * grad), (1, &g, &wt, batch * image), (2, &x, &g, filter)];
            for (op, a, b, len) in ops {
                let run = |threads: usize| {
                    let mut out = vec![f32::NAN; len];
                    // SAFETY: a, b and out hold the tensors of this geometry and batch.
                    unsafe {
                        symbols::conv_f32_on(
                            pool(threads),
                            op,
                            &geom,
                            batch as i64,
                            a.as_ptr(),
                            b.as_ptr(),
                            out.as_mut_ptr(),
                        )
                    };
                    out
                };
                let one = run(1);
                assert!(one.iter().all(|v| v.is_finite()), "op {op} {geom:?} batch {batch}: not every output written");
                for threads in [2, 3] {
                    let got = run(threads);
                    let same = one.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "op {op} {geom:?} batch {batch}: {threads} threads differ from 1");
                }
            }
        }
    }
}
