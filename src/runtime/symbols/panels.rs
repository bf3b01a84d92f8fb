//! The JIT's products by a packed B: a product inside a loop whose B is the same at every
//! step (an LSTM's recurrent weight, forward h · w_hh and backward dz · w_hhᵀ) has B copied
//! into panels once, before the loop (`codegen::panels`), and each step multiplies by the
//! panels.
//!
//! ```c
//! void netc_pack_panels_f32(int64_t k, int64_t n, const float* b, int64_t rsb, int64_t csb,
//!                           int64_t width, float* panels);
//! void netc_gemm_panels_f32(const float* panels, int64_t width,
//!                           /* then netc_gemm_f32's 14 parameters, B still in place */);
//! ```
//! (`_f64` the same with double). Panel q holds B's columns q·width .. (q + 1)·width as k rows
//! of `width` elements, one after the other, zero past n: ⌈n / width⌉ · k · width elements.
//!
//! Why: `matrixmultiply` packs all of B for every product, and [`stream`]'s `Rows` reads a
//! wide B's rows in pieces (a tile's 64 bytes of each row, 4 KiB apart: a new page every row,
//! which the prefetchers do not follow). In W11's train step the two recurrent products took
//! 36–39 ms of 75 at 56–62 GFLOP/s; the panels are read as one sequential stream.
//!
//! The panel product is `Rows` on each panel, a tile `width` wide over all of k: every
//! element of C is computed by the same operations in any block of panels, so the product is
//! cut among threads at panel edges and gives the bits of one thread. With more than
//! [`MAX_ROWS`] rows, a CPU without AVX2, a `width` that is not this CPU's or C's columns
//! not contiguous, it is the GEMM symbol's product with B in place (which `matrixmultiply`
//! packs anyway).

use std::ops::Range;

use super::stream::{self, Isa, Layout, Streamed};
use super::{gemm, gemm_symbol, stream_plan, threads, Float, Gemm, Matrix, Plan, Pool, Shared, Split};

/// Symbol of the f32 packing.
pub const PACK_F32: &str = "netc_pack_panels_f32";
/// Symbol of the f64 packing.
pub const PACK_F64: &str = "netc_pack_panels_f64";
/// Symbol of the f32 product by panels.
pub const PANELS_F32: &str = "netc_gemm_panels_f32";
/// Symbol of the f64 product by panels.
pub const PANELS_F64: &str = "netc_gemm_panels_f64";

/// Most rows of A that the panels take (more go to the GEMM symbol). The forward LSTM step
/// of W11, 32 × 256 · 256 × 1024, is the product this is for.
pub const MAX_ROWS: i64 = 64;

/// Columns per panel for `T` on this CPU (`Rows`' tile width), if its kernels run here.
pub fn width<T: Streamed>() -> Option<usize> {
    Isa::detected().map(T::rows_width)
}

/// Copies B (k × n, element [p, j] at `b + p·rsb + j·csb`) into `panels`, see the module
/// documentation.
///
/// # Safety
/// k, n ≥ 0 and width ≥ 1; every B[p, j] (p < k, j < n) is valid for reads; `panels` is valid
/// for writes of ⌈n / width⌉ · k · width elements, none of them an element of B.
unsafe fn pack<T: Float>(k: i64, n: i64, b: *const T, rsb: i64, csb: i64, width: i64, panels: *mut T) {
    let (k, n, width) = (k.max(0) as usize, n.max(0) as usize, width.max(1) as usize);
    let at = |p: usize, j: usize| b.wrapping_offset(p as isize * rsb as isize + j as isize * csb as isize);
    // Along B's shorter stride innermost: the rows of a row-major B, the columns of a
    // transposed one.
    let along_rows = csb.unsigned_abs() <= rsb.unsigned_abs();
    for q in 0..n.div_ceil(width) {
        // SAFETY: panel q, inside the ⌈n / width⌉ · k · width elements.
        let panel = unsafe { std::slice::from_raw_parts_mut(panels.add(q * k * width), k * width) };
        let columns = q * width..(q * width + width).min(n);
        if along_rows {
            for (p, row) in panel.chunks_exact_mut(width).enumerate() {
                for (out, j) in row.iter_mut().zip(columns.clone()) {
                    // SAFETY: B[p, j] with p < k and j < n.
                    *out = unsafe { *at(p, j) };
                }
                row[columns.len()..].fill(T::ZERO);
            }
        } else {
            panel.fill(T::ZERO);
            for (jj, j) in columns.enumerate() {
                for p in 0..k {
                    // SAFETY: as above.
                    panel[p * width + jj] = unsafe { *at(p, j) };
                }
            }
        }
    }
}

/// C = alpha·A·B + beta·C with B also in `panels` (see the module documentation), on `pool`
/// (default: the global pool) as `split` allows.
///
/// # Safety
/// As for `netc_gemm_f32` (in `T`), and `panels` holds B packed by [`pack`] with `width`.
unsafe fn product<T: Float>(pool: Option<&Pool>, split: Split, panels: *const T, width: i64, args: Gemm<T>) {
    let isa = Isa::detected().filter(|&isa| width > 0 && width as usize == T::rows_width(isa));
    let (m, k, n) = (args.m, args.k, args.n);
    let Some(isa) = isa.filter(|_| (1..=MAX_ROWS).contains(&m) && k >= 1 && n >= 1 && args.c.cs == 1) else {
        // SAFETY: forwarded (B is in place too).
        return unsafe { gemm(pool, split, args) };
    };
    let (m, k, n, width) = (m as usize, k as usize, n as usize, width as usize);
    let panels = Panels(panels);
    // Columns `block` (starting at a panel's edge) by `Rows`, one panel at a time.
    let columns = |g: Gemm<T>, block: Range<usize>| {
        for j in block.clone().step_by(width) {
            // `Rows` finds column j's row p at `b + p·rs + j`: panel j / width's row p.
            let b = Matrix::new(panels.get().wrapping_add(j * k).wrapping_sub(j), width as i64, 1);
            // SAFETY: the panel holds B's columns j..; the rest is the caller's contract.
            unsafe { stream::gemm_on(isa, Layout::Rows, Gemm { b, ..g }, j..(j + width).min(block.end)) }
        }
    };
    let threads = pool.map_or_else(threads::count, Pool::threads);
    let Plan::Cols { cols, .. } = stream_plan(split, threads, false, m, k, n, args.c.rs as isize, 1) else {
        return columns(args, 0..n);
    };
    let cols = cols.div_ceil(width) * width;
    let blocks = n.div_ceil(cols);
    let pool = pool.unwrap_or_else(|| Pool::global());
    let wake = (m * k * n) as u128 >= split.wake_macs as u128;
    if !wake && pool.awake() == 0 {
        // As the GEMM symbol: too small to wait for a wake-up.
        pool.wake();
        return columns(args, 0..n);
    }
    let shared = Shared(args);
    // Disjoint column blocks of C (`stream_plan` checked that its elements are distinct).
    let job = |i: usize| columns(shared.get(), i * cols..((i + 1) * cols).min(n));
    if wake {
        pool.run(blocks, &job);
    } else {
        pool.run_awake(blocks, &job);
    }
}

/// The panels' address, shared with the pool's threads (which only read them).
#[derive(Clone, Copy)]
struct Panels<T>(*const T);

// SAFETY: the panels are only read during the product.
unsafe impl<T> Sync for Panels<T> {}

impl<T> Panels<T> {
    fn get(&self) -> *const T {
        self.0
    }
}

/// [`netc_gemm_panels_f32`] on a given pool and split (tests: the same bits on any thread
/// count).
///
/// # Safety
/// As for [`netc_gemm_panels_f32`].
pub unsafe fn panels_f32_on(pool: &Pool, split: Split, panels: *const f32, width: i64, args: Gemm<f32>) {
    // SAFETY: forwarded.
    unsafe { product(Some(pool), split, panels, width, args) }
}

/// [`netc_gemm_panels_f64`] on a given pool and split.
///
/// # Safety
/// As for [`netc_gemm_panels_f64`].
pub unsafe fn panels_f64_on(pool: &Pool, split: Split, panels: *const f64, width: i64, args: Gemm<f64>) {
    // SAFETY: forwarded.
    unsafe { product(Some(pool), split, panels, width, args) }
}

/// Packs B for `netc_gemm_panels_f32`, see the module documentation.
///
/// # Safety
/// As for [`pack`].
pub unsafe extern "C" fn netc_pack_panels_f32(
    k: i64,
    n: i64,
    b: *const f32,
    rsb: i64,
    csb: i64,
    width: i64,
    panels: *mut f32,
) {
    // SAFETY: forwarded.
    unsafe { pack(k, n, b, rsb, csb, width, panels) }
}

/// Packs B for `netc_gemm_panels_f64`, see the module documentation.
///
/// # Safety
/// As for [`pack`].
pub unsafe extern "C" fn netc_pack_panels_f64(
    k: i64,
    n: i64,
    b: *const f64,
    rsb: i64,
    csb: i64,
    width: i64,
    panels: *mut f64,
) {
    // SAFETY: forwarded.
    unsafe { pack(k, n, b, rsb, csb, width, panels) }
}

gemm_symbol! {
    /// C = alpha·A·B + beta·C in f32 with B also packed in `panels`, see the module
    /// documentation.
    ///
    /// # Safety
    /// As for [`super::netc_gemm_f32`], and `panels` holds B packed by
    /// [`netc_pack_panels_f32`] with `width`.
    pub unsafe extern "C" fn netc_gemm_panels_f32(panels: *const f32, width: i64; args: Gemm<f32>) {
        // SAFETY: forwarded.
        unsafe { product(None, Split::DEFAULT, panels, width, args) }
    }
}

gemm_symbol! {
    /// [`netc_gemm_panels_f32`] in f64.
    ///
    /// # Safety
    /// As for [`netc_gemm_panels_f32`], in f64.
    pub unsafe extern "C" fn netc_gemm_panels_f64(panels: *const f64, width: i64; args: Gemm<f64>) {
        // SAFETY: forwarded.
        unsafe { product(None, Split::DEFAULT, panels, width, args) }
    }
}
