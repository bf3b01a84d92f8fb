//! The C-ABI kernel entry points that generated code calls: one GEMM symbol per dtype, one
//! convolution symbol, one batched GEMM symbol and one Winograd-transform symbol per dtype
//! (JIT only, [`conv`], [`batched`], [`winograd`]), the runner of outlined elementwise, pool
//! and softmax kernels on the worker pool (JIT only, [`PARALLEL`]), the callback of
//! out-of-range gather indices (JIT only, [`INDEX`]), and the profiling and bounds-violation
//! callbacks of `CompileOptions::profile` / `checked`.
//! Input: matrix sizes, pointers and element strides; output: C written in place.
//!
//! Generated code only ever calls these names, so the implementation can be swapped: the JIT
//! binds them to the Rust functions below (the `matrixmultiply` or the `gemm` crate, whichever
//! is faster for the shape ([`library`]), single-threaded, driven by netc's worker pool, see
//! below); an object file can link a `no_std` build of such a crate, or a Cranelift-generated
//! GEMM.
//!
//! ```c
//! void netc_gemm_f32(int64_t m, int64_t k, int64_t n, float alpha,
//!                    const float* a, int64_t rsa, int64_t csa,   /* op(A): m × k */
//!                    const float* b, int64_t rsb, int64_t csb,   /* op(B): k × n */
//!                    float beta, float* c, int64_t rsc, int64_t csc);   /* C: m × n */
//! ```
//! computes C = alpha·A·B + beta·C, strides in elements (a transpose is a swap of strides);
//! C is not read when beta is 0. `netc_gemm_f64` is the same with double. The parameters are
//! declared once, as [`GemmArgs`], for these functions and for the code generator.
//!
//! Threads: a GEMM of at least [`Split::DEFAULT`]`.min_macs` multiply-adds is cut into
//! blocks of rows of C (M) or of columns (N) — see [`plan`] for which — and the blocks run on
//! [`threads::Pool::global`] ([`threads::count`] threads: `MATMUL_NUM_THREADS`, else the
//! physical cores), each as one single-threaded `matrixmultiply` call on its sub-matrices
//! (the crate's own threading is off: it splits only its M-block loop and lost time on the
//! train steps' shapes). Block edges are multiples of 16 (every `matrixmultiply`
//! micro-kernel's MR and NR divide it), so each element of C is computed by the same
//! micro-kernel call, with the same summation order, as without the split: results are
//! bitwise those of one thread (`tests/threads.rs`). K is never split. Each block writes its
//! own rows or columns of C; C's layout is checked to have no two elements at one address
//! before it is split.
//!
//! A product with few rows (m ≤ 32) and a unit stride in B, or with a short k (≤ 16) and a C
//! far larger than the caches, is not given to a library: [`stream`]'s kernels compute it,
//! reading B in place instead of packing it (the dense layers of a small batch: forward,
//! input gradient, weight gradient; a recurrent step). With AVX2, a product of many rows with
//! 64 ≤ k ≤ 512 goes to its `Tiles` kernel (B in panels, A read in place). Each element of C
//! is computed the same way in any block of columns (of rows, for the short k), so such a
//! product is cut into blocks of any width.
//!
//! The convolution symbols run each per-image product whole on one thread, and the batched
//! symbols each product of a batch (but for few large ones, which they split), so they can
//! take the faster library for the shape ([`Library::for_product`]): the `gemm` crate, whose
//! results depend on how a product is cut, is used only where nothing is cut.

use crate::runtime::threads::{self, Pool};

mod batched;
mod conv;
mod library;
mod panels;
mod parallel;
pub mod stream;
mod winograd;
pub use batched::{batched_f32_on, netc_gemm_batched_f32, netc_gemm_batched_f64, BATCHED_F32, BATCHED_F64};
pub use conv::{conv_f32_on, netc_conv_f32, netc_conv_f64, CONV_F32, CONV_F64};
pub use library::{dgemm as dgemm_with, sgemm as sgemm_with, Library};
pub use panels::{
    netc_gemm_panels_f32, netc_gemm_panels_f64, netc_pack_panels_f32, netc_pack_panels_f64, panels_f32_on,
    panels_f64_on, width as panel_width, MAX_ROWS as MAX_PANEL_ROWS, PACK_F32, PACK_F64, PANELS_F32, PANELS_F64,
};
pub use parallel::{netc_parallel, on_pool, parallel_on, ranges, RangeFn, MIN_WORK, PARALLEL, WAKE_WORK};
pub use winograd::{netc_winograd_f32, netc_winograd_f64, winograd_f32_on, WINOGRAD_F32, WINOGRAD_F64};

/// Symbol of the f32 GEMM.
pub const GEMM_F32: &str = "netc_gemm_f32";
/// Symbol of the f64 GEMM.
pub const GEMM_F64: &str = "netc_gemm_f64";

/// One matrix operand of a GEMM: where element [0, 0] is, and the row and column strides in
/// elements (a transpose is a swap of strides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matrix<P, I> {
    pub ptr: P,
    /// Row stride.
    pub rs: I,
    /// Column stride.
    pub cs: I,
}

impl<P, I> Matrix<P, I> {
    pub fn new(ptr: P, rs: I, cs: I) -> Matrix<P, I> {
        Matrix { ptr, rs, cs }
    }
}

/// The arguments of a GEMM, C = alpha·A·B + beta·C with A m×k, B k×n and C m×n: the one
/// declaration of the GEMM symbols' 14 parameters, whose C order is that of `to_array`:
/// `m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc`.
///
/// Generic (I: sizes and strides, F: alpha and beta, A: the pointers to A and B, C: the
/// pointer to C) so that both sides of the call share it: the Rust symbols take a [`Gemm<T>`];
/// code generation builds the Cranelift signature and the call's arguments from it
/// (`codegen::abi`), and the generated GEMM reads its parameters with `from_array`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmArgs<I, F, A, C> {
    pub m: I,
    pub k: I,
    pub n: I,
    pub alpha: F,
    pub a: Matrix<A, I>,
    pub b: Matrix<A, I>,
    pub beta: F,
    pub c: Matrix<C, I>,
}

/// A GEMM's arguments as the symbols take them (i64 sizes and strides in elements).
pub type Gemm<T> = GemmArgs<i64, T, *const T, *mut T>;

/// The Rust type of the GEMM symbols ([`netc_gemm_f32`], [`netc_gemm_f64`]): [`GemmArgs`] in
/// C order.
pub type GemmFn<T> =
    unsafe extern "C" fn(i64, i64, i64, T, *const T, i64, i64, *const T, i64, i64, T, *mut T, i64, i64);

impl<V: Copy> GemmArgs<V, V, V, V> {
    /// Every size and stride `int`, both scalars `float`, every pointer `ptr` (e.g. the
    /// types of a signature's parameters).
    pub fn of_kinds(int: V, float: V, ptr: V) -> Self {
        let matrix = Matrix::new(ptr, int, int);
        GemmArgs { m: int, k: int, n: int, alpha: float, a: matrix, b: matrix, beta: float, c: matrix }
    }

    /// The arguments in the symbols' parameter order.
    pub fn to_array(self) -> [V; 14] {
        let GemmArgs { m, k, n, alpha, a, b, beta, c } = self;
        [m, k, n, alpha, a.ptr, a.rs, a.cs, b.ptr, b.rs, b.cs, beta, c.ptr, c.rs, c.cs]
    }

    /// The arguments from the parameters in the symbols' order (the inverse of `to_array`).
    pub fn from_array([m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc]: [V; 14]) -> Self {
        let (a, b, c) = (Matrix::new(a, rsa, csa), Matrix::new(b, rsb, csb), Matrix::new(c, rsc, csc));
        GemmArgs { m, k, n, alpha, a, b, beta, c }
    }
}

/// Declares a C-ABI symbol that takes the GEMM symbols' 14 parameters ([`GemmArgs`] in C
/// order, elements `$t`), after any leading parameters of its own, and hands them to its body
/// as one `$args: Gemm<$t>`: the one place where the 14 are spelled out in Rust.
///
/// `pub unsafe extern "C" fn name(first: T1, …; args: Gemm<f32>) { body }`, or
/// `fn name(args: Gemm<f32>)` without leading parameters.
macro_rules! gemm_symbol {
    ($(#[$attr:meta])* pub unsafe extern "C" fn $name:ident($args:ident: Gemm<$t:ty>) $body:block) => {
        gemm_symbol!($(#[$attr])* pub unsafe extern "C" fn $name(; $args: Gemm<$t>) $body);
    };
    (
        $(#[$attr:meta])*
        pub unsafe extern "C" fn $name:ident($($first:ident: $first_ty:ty),*; $args:ident: Gemm<$t:ty>) $body:block
    ) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            $($first: $first_ty,)*
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
            use $crate::runtime::symbols::{GemmArgs, Matrix};
            let (a, b, c) = (Matrix::new(a, rsa, csa), Matrix::new(b, rsb, csb), Matrix::new(c, rsc, csc));
            let $args: $crate::runtime::symbols::Gemm<$t> = GemmArgs { m, k, n, alpha, a, b, beta, c };
            $body
        }
    };
}
use gemm_symbol;

gemm_symbol! {
    /// C = alpha·A·B + beta·C in f32, see the module documentation.
    ///
    /// # Safety
    /// Offsets below are in elements (strides may be negative or zero). When m > 0 and n > 0
    /// (otherwise nothing is accessed):
    /// - if k > 0, every A[i, p] at `a + i·rsa + p·csa` (i < m, p < k) and B[p, j] at
    ///   `b + p·rsb + j·csb` (p < k, j < n) is valid for reads: inside one allocation, aligned,
    ///   initialised, and not written by anyone during the call;
    /// - every C[i, j] at `c + i·rsc + j·csc` (i < m, j < n) is valid for writes, and for reads
    ///   unless beta is 0 (C may then be uninitialised), and no two of them share an address;
    /// - no element of C is an element of A or B, and nothing else reads or writes C during the
    ///   call (which may run blocks of it on the worker pool's threads, and returns when they are
    ///   done).
    pub unsafe extern "C" fn netc_gemm_f32(args: Gemm<f32>) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { gemm(None, Split::DEFAULT, args) }
    }
}

gemm_symbol! {
    /// C = alpha·A·B + beta·C in f64, see the module documentation.
    ///
    /// # Safety
    /// As for [`netc_gemm_f32`].
    pub unsafe extern "C" fn netc_gemm_f64(args: Gemm<f64>) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { gemm(None, Split::DEFAULT, args) }
    }
}

/// When and how finely a GEMM is divided among a pool's threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Smallest m·n·k that is split; smaller GEMMs run on the calling thread alone.
    pub min_macs: u64,
    /// Smallest m·n·k that waits for parked workers to wake; smaller GEMMs are split only among
    /// the workers that are awake (spinning after an earlier job), else run on the caller
    /// alone while the workers wake up for the next one.
    pub wake_macs: u64,
    /// Blocks per pool thread (more evens out a thread that starts late or loses its core,
    /// at the cost of re-packing the unsplit operand once more per block).
    pub blocks_per_thread: usize,
}

impl Split {
    /// What the GEMM symbols use. Measured on a 2-core Zen 4 VM (`bench_split` in
    /// tests/threads.rs): with the worker spinning, 64³ (2^18 multiply-adds) is the first
    /// cube that gains (6.9 → 4-5 µs; 32×32×64 does not); waiting for a parked worker costs
    /// ~10-20 µs, which 128×256×256 (2^23) pays back (170 → 120 µs) and 128³ (2^21) does not.
    pub const DEFAULT: Split = Split { min_macs: 1 << 18, wake_macs: 1 << 22, blocks_per_thread: 1 };
    /// Never split.
    pub const NEVER: Split = Split { min_macs: u64::MAX, wake_macs: u64::MAX, blocks_per_thread: 1 };
}

/// Block edges are multiples of this: every `matrixmultiply` kernel's MR and NR divide it.
const ALIGN: usize = 16;

/// Which dimension of C is cut, the block length (a multiple of [`ALIGN`]) and block count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// One call.
    Whole,
    /// Blocks of `rows` rows of C (and of A).
    Rows { rows: usize, blocks: usize },
    /// Blocks of `cols` columns of C (and of B).
    Cols { cols: usize, blocks: usize },
}

/// How `split` divides an m×k by k×n product with C strides `rsc`, `csc` among `threads`.
pub fn plan(split: Split, threads: usize, m: usize, k: usize, n: usize, rsc: isize, csc: isize) -> Plan {
    let macs = (m as u128) * (n as u128) * (k as u128);
    if threads < 2 || macs < split.min_macs as u128 || !distinct(m, n, rsc, csc) {
        return Plan::Whole;
    }
    let target = threads.saturating_mul(split.blocks_per_thread.max(1));
    // (length, block length, block count) of cutting a dimension of `len` into `target` blocks.
    let cut = |len: usize| {
        let step = len.div_ceil(target).div_ceil(ALIGN) * ALIGN;
        (step, len.div_ceil(step))
    };
    // Each block re-packs the operand that is not cut: B (k × n) for rows, A (m × k) for
    // columns. Cut the side that re-packs the smaller one, but prefer blocks that are
    // contiguous in C (rows of a row-major C: one stream per thread, no cache line shared at
    // block edges) unless the other operand is more than 2× larger. A side of 2 × 16 or more
    // goes before one that gives a block of 16 and a shorter one.
    let prefer_cols = if rsc.unsigned_abs() >= csc.unsigned_abs() { 2 * m < n } else { m <= 2 * n };
    for min in [2 * ALIGN, ALIGN + 1] {
        let (rows_ok, cols_ok) = (m >= min, n >= min);
        if cols_ok && (prefer_cols || !rows_ok) {
            let (cols, blocks) = cut(n);
            return Plan::Cols { cols, blocks };
        }
        if rows_ok {
            let (rows, blocks) = cut(m);
            return Plan::Rows { rows, blocks };
        }
    }
    Plan::Whole
}

/// Whether the m×n matrix with strides `rs`, `cs` has a distinct address for every element
/// (a sufficient test: the larger stride steps over a whole run of the smaller), so that
/// blocks of it can be written concurrently.
fn distinct(m: usize, n: usize, rs: isize, cs: isize) -> bool {
    let (rs, cs) = (rs.unsigned_abs(), cs.unsigned_abs());
    match (m, n) {
        (_, 1) => m == 1 || rs != 0,
        (1, _) => cs != 0,
        _ => {
            let ((small, len), big) = if rs <= cs { ((rs, m), cs) } else { ((cs, n), rs) };
            small != 0 && (small as u128) * (len as u128) <= big as u128
        }
    }
}

/// f32 and f64 for [`gemm`], the convolutions and the Winograd transforms.
trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + PartialEq
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + conv::Columns
    + winograd::Planes
    + stream::Streamed
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    /// C = alpha·A·B + beta·C by `lib`, single-threaded.
    ///
    /// # Safety
    /// As for [`netc_gemm_f32`] (in `Self`), and none of m, k, n is negative (they become
    /// `usize`).
    unsafe fn gemm1(lib: Library, g: Gemm<Self>);
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    /// # Safety
    /// As for [`Float::gemm1`].
    unsafe fn gemm1(lib: Library, g: Gemm<f32>) {
        // SAFETY: forwarded.
        unsafe { library::sgemm(lib, g) }
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn from_f64(v: f64) -> f64 {
        v
    }
    /// # Safety
    /// As for [`Float::gemm1`].
    unsafe fn gemm1(lib: Library, g: Gemm<f64>) {
        // SAFETY: forwarded.
        unsafe { library::dgemm(lib, g) }
    }
}

/// A GEMM's arguments shared with the pool's threads (read through `get`, a method, so that
/// closures capture this `Sync` wrapper, not its pointer fields).
#[derive(Clone, Copy)]
struct Shared<T>(Gemm<T>);

// SAFETY: the threads only read A and B, and each writes its own block of C (`plan` checks
// that C's elements are distinct before splitting).
unsafe impl<T: Sync> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    fn get(&self) -> Gemm<T> {
        self.0
    }
}

/// `p` advanced by `i` strides (rows or columns) of `stride` elements.
fn skip<T>(p: *const T, i: usize, stride: i64) -> *const T {
    p.wrapping_offset(i as isize * stride as isize)
}

/// The GEMM symbols' body: `pool` (default: the global pool, started only when a GEMM is
/// big enough to split) and `split` choose the [`plan`].
///
/// # Safety
/// As for [`netc_gemm_f32`] (in `T`), with the arguments in `args`.
unsafe fn gemm<T: Float>(pool: Option<&Pool>, split: Split, args: Gemm<T>) {
    if args.m <= 0 || args.n <= 0 {
        return;
    }
    let args = GemmArgs { k: args.k.max(0), ..args };
    let (m, k, n) = (args.m as usize, args.k as usize, args.n as usize);
    // matrixmultiply for every product this may split: the `gemm` crate's result for an
    // element depends on the shape of the block it is computed in (its edge kernels round
    // differently), so a split product would differ from the whole one in the last bit.
    let lib = Library::MatrixMultiply;
    let threads = pool.map_or_else(threads::count, Pool::threads);
    // A product that `stream` takes is cut only into blocks of columns (of rows for
    // `Outer`), at any place: its results do not depend on the cut.
    let streamed = stream::layout(&args);
    let (rsc, csc) = (args.c.rs as isize, args.c.cs as isize);
    let plan = match streamed {
        Some(kernel) => stream_plan(split, threads, kernel.cuts_rows(), m, k, n, rsc, csc),
        None => plan(split, threads, m, k, n, rsc, csc),
    };
    // SAFETY (both): forwarded from the caller's contract; `block` is inside 0..n (0..m for
    // a kernel that cuts rows).
    let whole = |g: Gemm<T>, block: std::ops::Range<usize>| match streamed {
        Some(layout) => unsafe { stream::gemm(layout, g, block) },
        None => unsafe { T::gemm1(lib, g) },
    };
    let all = if streamed.is_some_and(stream::Layout::cuts_rows) { 0..m } else { 0..n };
    if plan == Plan::Whole {
        return whole(args, all);
    }
    let pool = pool.unwrap_or_else(|| Pool::global());
    let macs = (m as u128) * (n as u128) * (k as u128);
    let wake = macs >= split.wake_macs as u128;
    if !wake && pool.awake() == 0 {
        // Too small to wait for a wake-up: run it here, and wake the workers for the GEMMs
        // that usually follow.
        pool.wake();
        return whole(args, all);
    }
    let run = |blocks, f: &(dyn Fn(usize) + Sync)| if wake { pool.run(blocks, f) } else { pool.run_awake(blocks, f) };
    let shared = Shared(args);
    match plan {
        Plan::Rows { rows, blocks } if streamed.is_some() => run(blocks, &|i| {
            // Disjoint row blocks of C, as below.
            whole(shared.get(), i * rows..((i + 1) * rows).min(m))
        }),
        Plan::Rows { rows, blocks } => run(blocks, &|i| {
            let g = shared.get();
            let r0 = i * rows;
            let a = Matrix { ptr: skip(g.a.ptr, r0, g.a.rs), ..g.a };
            let c = Matrix { ptr: skip(g.c.ptr, r0, g.c.rs) as *mut T, ..g.c };
            // SAFETY: rows r0.. of A and C, a sub-matrix of each; the blocks of C are disjoint
            // (`plan` checked that C's elements are distinct). Never streamed.
            unsafe { T::gemm1(lib, GemmArgs { m: rows.min(m - r0) as i64, a, c, ..g }) }
        }),
        Plan::Cols { cols, blocks } if streamed.is_some() => run(blocks, &|j| {
            // Disjoint column blocks of C, as below.
            whole(shared.get(), j * cols..((j + 1) * cols).min(n))
        }),
        Plan::Cols { cols, blocks } => run(blocks, &|j| {
            let g = shared.get();
            let c0 = j * cols;
            let b = Matrix { ptr: skip(g.b.ptr, c0, g.b.cs), ..g.b };
            let c = Matrix { ptr: skip(g.c.ptr, c0, g.c.cs) as *mut T, ..g.c };
            // SAFETY: columns c0.. of B and C, as above.
            unsafe { T::gemm1(lib, GemmArgs { n: cols.min(n - c0) as i64, b, c, ..g }) }
        }),
        Plan::Whole => unreachable!(),
    }
}

/// How a streamed product ([`stream`]) is divided: into blocks of columns of C (of rows when
/// `rows`), at least [`ALIGN`] wide, when [`plan`] would split a product of its size at all.
#[allow(clippy::too_many_arguments)]
pub fn stream_plan(
    split: Split,
    threads: usize,
    rows: bool,
    m: usize,
    k: usize,
    n: usize,
    rsc: isize,
    csc: isize,
) -> Plan {
    let macs = (m as u128) * (n as u128) * (k as u128);
    let len = if rows { m } else { n };
    if threads < 2 || macs < split.min_macs as u128 || len < 2 * ALIGN || !distinct(m, n, rsc, csc) {
        return Plan::Whole;
    }
    let target = threads.saturating_mul(split.blocks_per_thread.max(1));
    let step = len.div_ceil(target).div_ceil(ALIGN) * ALIGN;
    let blocks = len.div_ceil(step);
    if rows {
        Plan::Rows { rows: step, blocks }
    } else {
        Plan::Cols { cols: step, blocks }
    }
}

/// [`netc_gemm_f32`] on a given pool and split (tests and benchmarks; the symbol uses
/// [`Pool::global`] and [`Split::DEFAULT`]).
///
/// # Safety
/// As for [`netc_gemm_f32`], with the arguments in `args`.
pub unsafe fn gemm_f32_on(pool: &Pool, split: Split, args: Gemm<f32>) {
    // SAFETY: forwarded.
    unsafe { gemm(Some(pool), split, args) }
}

/// [`netc_gemm_f64`] on a given pool and split, as [`gemm_f32_on`].
///
/// # Safety
/// As for [`netc_gemm_f64`], with the arguments in `args`.
pub unsafe fn gemm_f64_on(pool: &Pool, split: Split, args: Gemm<f64>) {
    // SAFETY: forwarded.
    unsafe { gemm(Some(pool), split, args) }
}

/// Symbol called after every kernel when compiled with `CompileOptions::profile`.
pub const PROFILE: &str = "netc_profile";

thread_local! {
    /// Time of the previous tick and seconds spent in each kernel so far, on this thread.
    static PROFILE_STATE: std::cell::RefCell<(std::time::Instant, Vec<f64>)> =
        std::cell::RefCell::new((std::time::Instant::now(), vec![]));
}

/// `kernel` has just finished (-1: the function starts): charge it the time since the last tick.
pub extern "C" fn netc_profile(kernel: i64) {
    PROFILE_STATE.with(|p| {
        let mut p = p.borrow_mut();
        let now = std::time::Instant::now();
        if let Ok(k) = usize::try_from(kernel) {
            if p.1.len() <= k {
                p.1.resize(k + 1, 0.0);
            }
            p.1[k] += (now - p.0).as_secs_f64();
        }
        p.0 = now;
    });
}

/// Seconds per kernel accumulated on this thread since the last call, and reset.
pub fn take_profile() -> Vec<f64> {
    PROFILE_STATE.with(|p| std::mem::take(&mut p.borrow_mut().1))
}

/// Symbol that bounds-checked code (`CompileOptions::checked`) calls instead of accessing
/// memory outside a buffer:
///
/// ```c
/// void netc_bounds_violation(int64_t kernel, int64_t buffer, int64_t offset, int64_t len);
/// ```
/// `buffer` is `codegen::kernel::Base::code`, `offset` the offending element offset from the
/// buffer's start and `len` its length in elements. The access itself is not performed.
pub const BOUNDS: &str = "netc_bounds_violation";

/// An access outside its buffer that checked code refused (see [`BOUNDS`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Violation {
    /// Index of the kernel in execution order.
    pub kernel: i64,
    /// `Base::code` of the buffer.
    pub buffer: i64,
    /// Offending element offset from the buffer's start (may be negative).
    pub offset: i64,
    /// The buffer's length in elements.
    pub len: i64,
    /// Violations reported on this thread since the last `take_violation`, this one included.
    pub count: u64,
}

thread_local! {
    /// The first violation reported on this thread since the last `take_violation`.
    static VIOLATION: std::cell::Cell<Option<Violation>> = const { std::cell::Cell::new(None) };
}

/// Record a refused access: the first one is kept, later ones are counted.
pub extern "C" fn netc_bounds_violation(kernel: i64, buffer: i64, offset: i64, len: i64) {
    let v = match VIOLATION.get() {
        Some(first) => Violation { count: first.count.saturating_add(1), ..first },
        None => Violation { kernel, buffer, offset, len, count: 1 },
    };
    VIOLATION.set(Some(v));
}

/// The first violation recorded on this thread since the last call, and reset.
pub fn take_violation() -> Option<Violation> {
    VIOLATION.take()
}

/// Symbol that generated code (the JIT's) calls when an index of a gather is not a whole
/// number inside its axis (the gather then uses the clamped index):
///
/// ```c
/// void netc_index_out_of_range(int64_t kernel, double index, int64_t size);
/// ```
pub const INDEX: &str = "netc_index_out_of_range";

/// An index that a gather found outside its axis (see [`INDEX`]).
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct IndexError {
    /// Index of the kernel in execution order.
    pub kernel: i64,
    /// The offending index value.
    pub index: f64,
    /// The size of the indexed axis.
    pub size: i64,
}

thread_local! {
    /// The first index error reported on this thread since the last `take_index_error`.
    static INDEX_ERROR: std::cell::Cell<Option<IndexError>> = const { std::cell::Cell::new(None) };
}

/// Record an out-of-range index: the first one is kept.
pub extern "C" fn netc_index_out_of_range(kernel: i64, index: f64, size: i64) {
    if INDEX_ERROR.get().is_none() {
        INDEX_ERROR.set(Some(IndexError { kernel, index, size }));
    }
}

/// The first index error recorded on this thread since the last call, and reset.
pub fn take_index_error() -> Option<IndexError> {
    INDEX_ERROR.take()
}

/// The symbols the JIT binds, with their addresses.
pub fn symbols() -> [(&'static str, *const u8); 16] {
    [
        (PACK_F32, netc_pack_panels_f32 as *const u8),
        (PACK_F64, netc_pack_panels_f64 as *const u8),
        (PANELS_F32, netc_gemm_panels_f32 as *const u8),
        (PANELS_F64, netc_gemm_panels_f64 as *const u8),
        (PARALLEL, netc_parallel as *const u8),
        (BATCHED_F32, netc_gemm_batched_f32 as *const u8),
        (BATCHED_F64, netc_gemm_batched_f64 as *const u8),
        (INDEX, netc_index_out_of_range as *const u8),
        (CONV_F32, netc_conv_f32 as *const u8),
        (CONV_F64, netc_conv_f64 as *const u8),
        (WINOGRAD_F32, netc_winograd_f32 as *const u8),
        (WINOGRAD_F64, netc_winograd_f64 as *const u8),
        (GEMM_F32, netc_gemm_f32 as GemmFn<f32> as *const u8),
        (GEMM_F64, netc_gemm_f64 as GemmFn<f64> as *const u8),
        (PROFILE, netc_profile as *const u8),
        (BOUNDS, netc_bounds_violation as *const u8),
    ]
}
