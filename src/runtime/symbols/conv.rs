//! The convolution symbols of the JIT: a whole `Kernel::Conv` (every image of the batch) in
//! one call, with the images divided among the worker pool.
//!
//! ```c
//! void netc_conv_f32(int64_t op,           /* 0 forward (x, w -> y), 1 input gradient
//!                                             (g, w -> dx), 2 filter gradient (x, g -> dw) */
//!                    const int64_t* geom,  /* c, h, w, f, kh, kw, oh, ow, stride, pad */
//!                    int64_t batch, const float* a, const float* b, float* out);
//! ```
//! (`netc_conv_f64` the same with double), tensors contiguous: x, dx [N, C, H, W], w, dw
//! [F, C, KH, KW], y, g [N, F, OH, OW].
//!
//! Why: the per-image products of a small CNN (CIFAR-shaped: 16×27·27×1024) are too small to
//! split one GEMM over two threads profitably, so the generated per-image loop used one
//! core. Here each thread takes whole images: im2col into its own columns (kept per thread,
//! one image's worth, so they stay in L2), then a single-threaded GEMM. Object files keep the
//! generated loop (`emit::conv`), which computes the same per-image products.
//!
//! Determinism: an image's forward and input-gradient results do not depend on which thread
//! computes them. The filter gradient sums over images; it is summed in [`FILTER_PARTS`]
//! fixed ranges of images (each in image order), then the ranges in order, whatever the
//! thread count, so results are the same bits on any number of threads.

use std::cell::RefCell;

use super::{Float, GemmArgs, Library, Matrix};
use crate::runtime::threads::Pool;

/// Symbol of the f32 convolution.
pub const CONV_F32: &str = "netc_conv_f32";
/// Symbol of the f64 convolution.
pub const CONV_F64: &str = "netc_conv_f64";

/// Ranges of images whose filter gradients are summed separately (in parallel), then added:
/// one extra F·C·KH·KW buffer (AlexNet's conv3: 3.4 MiB).
const FILTER_PARTS: usize = 2;

/// Sizes of one convolution (all but the batch).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Geom {
    c: usize,
    h: usize,
    w: usize,
    f: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    pad: usize,
}

impl Geom {
    fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn pixels(&self) -> usize {
        self.oh * self.ow
    }
    fn image(&self) -> usize {
        self.c * self.h * self.w
    }
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
}

/// The convolution in f32, see the module documentation.
///
/// # Safety
/// - `geom` points at 10 readable i64, the sizes c, h, w, f, kh, kw, oh, ow, stride, pad of a
///   consistent convolution: stride > 0, h + 2·pad ≥ kh, w + 2·pad ≥ kw,
///   oh = (h + 2·pad − kh) / stride + 1 and ow = (w + 2·pad − kw) / stride + 1;
/// - the tensors are contiguous, x and dx of `batch`·C·H·W elements, y and g of
///   `batch`·F·OH·OW, w and dw of F·C·KH·KW: for `op` 0 `a` is x, `b` w and `out` y; for 1
///   `a` is g, `b` w and `out` dx; for any other `op` `a` is x, `b` g and `out` dw;
/// - `a` and `b` are valid for reads of their elements (aligned, initialised, not written by
///   anyone during the call), `out` is valid for writes of its elements and overlaps
///   neither, and nothing else reads or writes `out` during the call (whose images run on the
///   worker pool's threads; it returns when they are done).
pub unsafe extern "C" fn netc_conv_f32(
    op: i64,
    geom: *const i64,
    batch: i64,
    a: *const f32,
    b: *const f32,
    out: *mut f32,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { conv(Pool::global(), op, geom, batch, a, b, out) }
}

/// [`netc_conv_f32`] on a given pool (tests: results must not depend on the thread count).
///
/// # Safety
/// As for [`netc_conv_f32`] (`geom` is then the array's sizes), the images running on
/// `pool`'s threads.
pub unsafe fn conv_f32_on(
    pool: &Pool,
    op: i64,
    geom: &[i64; 10],
    batch: i64,
    a: *const f32,
    b: *const f32,
    out: *mut f32,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { conv(pool, op, geom.as_ptr(), batch, a, b, out) }
}

/// The convolution in f64, as [`netc_conv_f32`].
///
/// # Safety
/// As for [`netc_conv_f32`].
pub unsafe extern "C" fn netc_conv_f64(
    op: i64,
    geom: *const i64,
    batch: i64,
    a: *const f64,
    b: *const f64,
    out: *mut f64,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { conv(Pool::global(), op, geom, batch, a, b, out) }
}

/// Pointers shared with the pool's threads (each writes only its own images or buffers).
#[derive(Clone, Copy)]
struct Shared<T>(*const T, *const T, *mut T);
// SAFETY: the threads write disjoint parts of `out` (images, or their own partial sums).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointers (a method, so that closures capture the `Sync` wrapper, not its fields).
    fn get(&self) -> (*const T, *const T, *mut T) {
        (self.0, self.1, self.2)
    }
}

/// The convolution symbols' body, the images divided among `pool`'s threads.
///
/// # Safety
/// As for [`netc_conv_f32`] (in `T`), the images running on `pool`'s threads.
unsafe fn conv<T: Float>(pool: &Pool, op: i64, geom: *const i64, batch: i64, a: *const T, b: *const T, out: *mut T) {
    // SAFETY: the caller passes 10 sizes.
    let s: [usize; 10] = std::array::from_fn(|i| unsafe { *geom.add(i) }.max(0) as usize);
    let g =
        Geom { c: s[0], h: s[1], w: s[2], f: s[3], kh: s[4], kw: s[5], oh: s[6], ow: s[7], stride: s[8], pad: s[9] };
    let n = batch.max(0) as usize;
    if n == 0 || g.stride == 0 {
        if op == 2 {
            // SAFETY: out holds F·C·KH·KW elements.
            unsafe { std::slice::from_raw_parts_mut(out, g.f * g.patch()) }.fill(T::ZERO);
        }
        return;
    }
    let ptrs = Shared(a, b, out);
    let chunks = |parts: usize| parts.min(n);
    // Images [lo, hi) of part `i` of `parts`.
    let range = move |i: usize, parts: usize| (i * n / parts, (i + 1) * n / parts);
    match op {
        0 | 1 => {
            let parts = chunks(pool.threads().max(1) * 2);
            let job = move |i: usize| {
                let (a, b, out) = ptrs.get();
                let (lo, hi) = range(i, parts);
                // The input gradient writes whole columns (padding included).
                let keeps_padding = op == 0;
                with_columns::<T>(&g, keeps_padding, |col, mut padded| {
                    for img in lo..hi {
                        // SAFETY: image `img` of each tensor is inside it (contract).
                        unsafe {
                            if op == 0 {
                                forward(&g, a.add(img * g.image()), b, out.add(img * g.f * g.pixels()), col, padded);
                                padded = true;
                            } else {
                                input_grad(&g, a.add(img * g.f * g.pixels()), b, out.add(img * g.image()), col)
                            }
                        }
                    }
                });
            };
            pool.run(parts, &job);
        }
        _ => {
            let parts = chunks(FILTER_PARTS);
            let len = g.f * g.patch();
            let mut extra = vec![T::ZERO; len * (parts - 1)];
            let extra_ptr = Shared(std::ptr::null(), std::ptr::null(), extra.as_mut_ptr());
            let job = move |i: usize| {
                let (a, b, out) = ptrs.get();
                // SAFETY: part i > 0 sums into its own slice of `extra`.
                let dw = if i == 0 { out } else { unsafe { extra_ptr.get().2.add((i - 1) * len) } };
                let (lo, hi) = range(i, parts);
                with_columns::<T>(&g, true, |col, mut padded| {
                    for img in lo..hi {
                        let first = img == lo;
                        // SAFETY: as above; `dw` is this part's own F·C·KH·KW buffer.
                        unsafe {
                            filter_grad(
                                &g,
                                a.add(img * g.image()),
                                b.add(img * g.f * g.pixels()),
                                dw,
                                col,
                                first,
                                padded,
                            )
                        }
                        padded = true;
                    }
                });
            };
            pool.run(parts, &job);
            // SAFETY: out holds F·C·KH·KW elements.
            let dw = unsafe { std::slice::from_raw_parts_mut(out, len) };
            for part in extra.chunks(len) {
                dw.iter_mut().zip(part).for_each(|(d, &p)| *d = *d + p);
            }
        }
    }
}

/// y (F × OH·OW) = w (F × C·KH·KW) · columns of one image.
///
/// # Safety
/// `g` is consistent (as for [`netc_conv_f32`]); `x` is valid for reads of one image
/// (C·H·W elements) and `w` of F·C·KH·KW (aligned, initialised, not written during the call);
/// `y` is valid for writes of F·OH·OW elements, overlaps neither, and nothing else accesses
/// it during the call; `col` has at least C·KH·KW·OH·OW elements unless `g` is pointwise.
unsafe fn forward<T: Float>(g: &Geom, x: *const T, w: *const T, y: *mut T, col: &mut [T], padded: bool) {
    let (f, q, p) = (g.f as i64, g.patch() as i64, g.pixels() as i64);
    let cols = if g.pointwise() {
        x
    } else {
        // SAFETY: x is one image.
        unsafe { im2col(g, x, col, padded) };
        col.as_ptr()
    };
    let (w, cols, y) = (Matrix::new(w, q, 1), Matrix::new(cols, p, 1), Matrix::new(y, p, 1));
    // SAFETY: shapes as in the contract.
    unsafe {
        T::gemm1(lib(f, q, p, false), GemmArgs { m: f, k: q, n: p, alpha: T::ONE, a: w, b: cols, beta: T::ZERO, c: y })
    }
}

/// dx of one image: columns = wᵀ (C·KH·KW × F) · g (F × OH·OW), scattered back (col2im).
///
/// # Safety
/// `g` is consistent (as for [`netc_conv_f32`]); `grad` is valid for reads of F·OH·OW
/// elements and `w` of F·C·KH·KW (aligned, initialised, not written during the call); `dx`
/// is valid for writes of one image (C·H·W elements), overlaps neither, and nothing else
/// accesses it during the call; `col` has at least C·KH·KW·OH·OW elements unless `g` is
/// pointwise.
unsafe fn input_grad<T: Float>(g: &Geom, grad: *const T, w: *const T, dx: *mut T, col: &mut [T]) {
    let (f, q, p) = (g.f as i64, g.patch() as i64, g.pixels() as i64);
    // wᵀ (C·KH·KW × F) · g (F × OH·OW) into `out`
    let product = |out| GemmArgs {
        m: q,
        k: f,
        n: p,
        alpha: T::ONE,
        a: Matrix::new(w, 1, q),
        b: Matrix::new(grad, p, 1),
        beta: T::ZERO,
        c: Matrix::new(out, p, 1),
    };
    if g.pointwise() {
        // SAFETY: shapes as in the contract.
        unsafe { T::gemm1(lib(q, f, p, false), product(dx)) };
        return;
    }
    // SAFETY: as above; col holds C·KH·KW × OH·OW.
    unsafe { T::gemm1(lib(q, f, p, false), product(col.as_mut_ptr())) };
    // SAFETY: dx is one image.
    let dx = unsafe { std::slice::from_raw_parts_mut(dx, g.image()) };
    dx.fill(T::ZERO);
    col2im(g, col, dx);
}

/// dw (F × C·KH·KW) (=, or += unless `first`) g (F × OH·OW) · columnsᵀ of one image.
///
/// # Safety
/// `g` is consistent (as for [`netc_conv_f32`]); `x` is valid for reads of one image
/// (C·H·W elements) and `grad` of F·OH·OW (aligned, initialised, not written during the
/// call); `dw` is valid for writes of F·C·KH·KW elements, and for reads unless `first`,
/// overlaps neither, and nothing else accesses it during the call; `col` has at least
/// C·KH·KW·OH·OW elements unless `g` is pointwise.
#[allow(clippy::too_many_arguments)]
unsafe fn filter_grad<T: Float>(
    g: &Geom,
    x: *const T,
    grad: *const T,
    dw: *mut T,
    col: &mut [T],
    first: bool,
    padded: bool,
) {
    let (f, q, p) = (g.f as i64, g.patch() as i64, g.pixels() as i64);
    let cols = if g.pointwise() {
        x
    } else {
        // SAFETY: x is one image.
        unsafe { im2col(g, x, col, padded) };
        col.as_ptr()
    };
    let beta = if first { T::ZERO } else { T::ONE };
    let (grad, cols, dw) = (Matrix::new(grad, p, 1), Matrix::new(cols, 1, p), Matrix::new(dw, q, 1));
    // SAFETY: shapes as in the contract.
    unsafe { T::gemm1(lib(f, p, q, true), GemmArgs { m: f, k: p, n: q, alpha: T::ONE, a: grad, b: cols, beta, c: dw }) }
}

/// The library of an m×k by k×n product (i64 sizes, as the GEMM arguments take them), B
/// transposed or not.
fn lib(m: i64, k: i64, n: i64, b_transposed: bool) -> Library {
    Library::for_product(m as usize, k as usize, n as usize, b_transposed)
}

/// The output columns j in [lo, hi) whose input column j·s + b − pad lies in [0, w).
fn valid_columns(g: &Geom, b: usize) -> (usize, usize) {
    let s = g.stride;
    let lo = if g.pad > b { (g.pad - b).div_ceil(s) } else { 0 };
    let hi = if g.w + g.pad > b { ((g.w - 1 + g.pad - b) / s + 1).min(g.ow) } else { 0 };
    (lo.min(hi), hi)
}

/// The tap rows of one image: row (c, a, b) holds x[c, i·s + a − p, j·s + b − p] at column
/// (i, j), zero where that falls in the padding. Each output row is one run of a row of x.
/// `padded`: the padding entries are zero already (written for this geometry before).
///
/// # Safety
/// `x` is valid for reads of one image, C·H·W elements (aligned, initialised, not written
/// during the call).
unsafe fn im2col<T: Float>(g: &Geom, x: *const T, col: &mut [T], padded: bool) {
    // SAFETY: x is one image of C·H·W.
    let x = unsafe { std::slice::from_raw_parts(x, g.image()) };
    let (p, s) = (g.pixels(), g.stride);
    for (row, out) in col.chunks_exact_mut(p).enumerate() {
        let (c, a, b) = (row / (g.kh * g.kw), row / g.kw % g.kh, row % g.kw);
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        let (lo, hi) = valid_columns(g, b);
        for i in 0..g.oh {
            let dst = &mut out[i * g.ow..(i + 1) * g.ow];
            let Some(r) = (i * s + a).checked_sub(g.pad).filter(|&r| r < g.h) else {
                if !padded {
                    dst.fill(T::ZERO);
                }
                continue;
            };
            if !padded {
                dst[..lo].fill(T::ZERO);
                dst[hi..].fill(T::ZERO);
            }
            if lo < hi {
                let first = r * g.w + lo * s + b - g.pad;
                if s == 1 {
                    copy_run(&mut dst[lo..hi], &plane[first..first + hi - lo]);
                } else {
                    for (d, &v) in dst[lo..hi].iter_mut().zip(plane[first..].iter().step_by(s)) {
                        *d = v;
                    }
                }
            }
        }
    }
}

/// `dst = src` for a short run (a row of an image): in blocks of 8 moved inline, where
/// `copy_from_slice` would call memmove once per run of 16–32 values.
fn copy_run<T: Float>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let block: [T; 8] = s.try_into().expect("blocks of 8");
        d.copy_from_slice(&block);
    }
    for (d, &v) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = v;
    }
}

/// The adjoint of [`im2col`]: every column entry added back to the pixel it came from.
fn col2im<T: Float>(g: &Geom, col: &[T], dx: &mut [T]) {
    let (p, s) = (g.pixels(), g.stride);
    for (row, src) in col.chunks_exact(p).enumerate() {
        let (c, a, b) = (row / (g.kh * g.kw), row / g.kw % g.kh, row % g.kw);
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        let (lo, hi) = valid_columns(g, b);
        if lo >= hi {
            continue;
        }
        for i in 0..g.oh {
            let Some(r) = (i * s + a).checked_sub(g.pad).filter(|&r| r < g.h) else { continue };
            let first = r * g.w + lo * s + b - g.pad;
            let run = &src[i * g.ow + lo..i * g.ow + hi];
            if s == 1 {
                for (d, &v) in plane[first..first + run.len()].iter_mut().zip(run) {
                    *d = *d + v;
                }
            } else {
                for (d, &v) in plane[first..].iter_mut().step_by(s).zip(run) {
                    *d = *d + v;
                }
            }
        }
    }
}

thread_local! {
    /// Each thread's columns, kept between calls (one image's worth: no allocation, and no
    /// page faults, per call), with the geometry whose padding entries they hold as zeros.
    static COLUMNS_F32: RefCell<(Vec<f32>, Option<Geom>)> = const { RefCell::new((Vec::new(), None)) };
    static COLUMNS_F64: RefCell<(Vec<f64>, Option<Geom>)> = const { RefCell::new((Vec::new(), None)) };
}

/// Run `f` on this thread's columns for `g`, telling it whether their padding entries are
/// zero already (the last user was a forward or filter gradient of the same geometry).
/// `keeps_padding`: whether `f` leaves them zero.
fn with_columns<T: Float>(g: &Geom, keeps_padding: bool, f: impl FnOnce(&mut [T], bool)) {
    let len = g.patch() * g.pixels();
    T::columns(|(v, zeroed_for)| {
        if v.len() < len {
            v.resize(len, T::ZERO);
        }
        let padded = *zeroed_for == Some(*g);
        *zeroed_for = None;
        f(&mut v[..len], padded);
        if keeps_padding {
            *zeroed_for = Some(*g);
        }
    })
}

/// The thread-local columns of each element type.
pub(super) trait Columns: Sized {
    fn columns(f: impl FnOnce(&mut (Vec<Self>, Option<Geom>)));
}

impl Columns for f32 {
    fn columns(f: impl FnOnce(&mut (Vec<f32>, Option<Geom>))) {
        COLUMNS_F32.with(|c| f(&mut c.borrow_mut()))
    }
}

impl Columns for f64 {
    fn columns(f: impl FnOnce(&mut (Vec<f64>, Option<Geom>))) {
        COLUMNS_F64.with(|c| f(&mut c.borrow_mut()))
    }
}
