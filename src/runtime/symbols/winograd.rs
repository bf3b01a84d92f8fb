//! The Winograd transform symbols of the JIT: one `Kernel::Winograd` (one of the six
//! transforms of `runtime::winograd`, over every tile of the batch) in one call, the work
//! divided among the worker pool.
//!
//! ```c
//! void netc_winograd_f32(int64_t op,           /* runtime::winograd::Transform::code */
//!                        const int64_t* geom,  /* c, h, w, f, oh, ow, pad, m, r */
//!                        int64_t batch, const float* src, float* dst);
//! ```
//! (`netc_winograd_f64` the same with double), the layouts of `runtime::winograd`. Object files
//! compute the same transforms with generated loops (`codegen::emit::winograd`).
//!
//! How: [`LANES`] channels (or filters) at a time, as arrays the compiler maps onto the widest
//! vectors the CPU has (AVX-512 or AVX2 chosen at run time, else SSE2). The input-side
//! transforms first copy one image's block of channels into a zero-padded, channel-interleaved
//! plane (so every tile is a plain window of it, the padding included), the output side the
//! reverse. Each X ↦ L X Lᵀ is two passes of L's nonzero coefficients.
//!
//! The transformed tensors the products read next (the filters U, the inputs V, the output
//! gradient Ũ: up to 26 MB for AlexNet at batch 8) are written with non-temporal stores
//! ([`Out::put_streaming`]), which skip reading each line from memory before it is
//! overwritten: those transforms took half to a third of the time in a W7 train step.
//!
//! The transforms that read a product's output (Output, InputAdjoint, FilterAdjoint) read one
//! 16-lane piece of each α²·F-long row at a time, which the hardware prefetchers do not
//! follow; the rows come from memory, so they copy each row block front to back first and
//! transform every block of lanes from the copy.
//!
//! Work items: a block of 16 channels or filters of one image (Input, OutputAdjoint), one
//! image (Output, InputAdjoint), one input channel (Filter) or a block of 16 (FilterAdjoint).
//! Every element of `dst` is written by one item, in a fixed order, so the results are the
//! same bits on any number of threads.

use std::cell::RefCell;

use super::Float;
use crate::runtime::threads::Pool;
use crate::runtime::winograd::{Geometry, Transform};

/// Symbol of the f32 transforms.
pub const WINOGRAD_F32: &str = "netc_winograd_f32";
/// Symbol of the f64 transforms.
pub const WINOGRAD_F64: &str = "netc_winograd_f64";

/// Channels transformed at once (one 512-bit vector of f32).
const LANES: usize = 16;
type Lanes<T> = [T; LANES];

/// The transforms of f32 data, see the module documentation.
///
/// # Safety
/// - `geom` points at 9 readable i64 forming a consistent `runtime::winograd::Geometry`
///   (`Geometry::from_array`; otherwise nothing happens) and `op` is a `Transform` code;
/// - `src` is valid for reads of `Geometry::sizes(op, batch).0` elements and `dst` for writes
///   of `.1`, they do not overlap, nothing writes `src` and nothing else accesses `dst` during
///   the call (whose work runs on the worker pool's threads; it returns when they are done).
pub unsafe extern "C" fn netc_winograd_f32(op: i64, geom: *const i64, batch: i64, src: *const f32, dst: *mut f32) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { transform(Pool::global(), op, geom, batch, src, dst) }
}

/// The transforms of f64 data, as [`netc_winograd_f32`].
///
/// # Safety
/// As for [`netc_winograd_f32`].
pub unsafe extern "C" fn netc_winograd_f64(op: i64, geom: *const i64, batch: i64, src: *const f64, dst: *mut f64) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { transform(Pool::global(), op, geom, batch, src, dst) }
}

/// [`netc_winograd_f32`] on a given pool (tests: results must not depend on the thread count).
///
/// # Safety
/// As for [`netc_winograd_f32`] (`geom` is then the array), the work running on `pool`'s
/// threads.
pub unsafe fn winograd_f32_on(pool: &Pool, op: i64, geom: &[i64; 9], batch: i64, src: *const f32, dst: *mut f32) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { transform(pool, op, geom.as_ptr(), batch, src, dst) }
}

/// The destination, written by the pool's threads at disjoint elements.
#[derive(Clone, Copy)]
struct Out<T>(*mut T);
// SAFETY: every element is written by exactly one work item (module documentation).
unsafe impl<T> Send for Out<T> {}
unsafe impl<T> Sync for Out<T> {}

impl<T: Copy> Out<T> {
    /// `dst[at .. at + values.len()] = values`.
    ///
    /// # Safety
    /// The range is inside the destination and no other thread writes it.
    #[inline(always)]
    unsafe fn put(&self, at: usize, values: &[T]) {
        // SAFETY: guaranteed by the caller. A whole vector is one (inlined) store, not a
        // call of memcpy.
        unsafe {
            match <&Lanes<T>>::try_from(values) {
                Ok(v) => std::ptr::write_unaligned(self.0.add(at) as *mut Lanes<T>, *v),
                Err(_) => std::ptr::copy_nonoverlapping(values.as_ptr(), self.0.add(at), values.len()),
            }
        }
    }
}

impl<T: Copy> Out<T> {
    /// [`Out::put`], but a whole f32 vector at a 64-byte boundary bypasses the caches
    /// (non-temporal stores): for a destination far larger than the caches, which would
    /// otherwise be read from memory before it is overwritten. The part must end with
    /// [`store_fence`] before other threads read the destination.
    ///
    /// # Safety
    /// As for [`Out::put`].
    #[inline(always)]
    unsafe fn put_streaming(&self, at: usize, values: &[T]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for `put`; SSE is part of x86-64, and the address is 16-byte aligned.
        unsafe {
            let p = self.0.add(at);
            if std::mem::size_of::<T>() == 4 && values.len() == LANES && (p as usize).is_multiple_of(64) {
                use std::arch::x86_64::{_mm_loadu_ps, _mm_stream_ps};
                let (p, v) = (p as *mut f32, values.as_ptr() as *const f32);
                for q in 0..LANES / 4 {
                    _mm_stream_ps(p.add(4 * q), _mm_loadu_ps(v.add(4 * q)));
                }
                return;
            }
        }
        // SAFETY: the caller's contract.
        unsafe { self.put(at, values) }
    }
}

/// Orders this thread's non-temporal stores ([`Out::put_streaming`]) before its later stores
/// (the pool's signal that a part is done).
#[inline(always)]
fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    }
}

/// `dst[..nb] = src[at .. at + nb]`. A whole vector is one load (written as one copy for
/// both cases, LLVM merged them into a call of memcpy per vector).
#[inline(always)]
fn get<T: Float>(dst: &mut Lanes<T>, src: &[T], at: usize, nb: usize) {
    let part = &src[at..at + nb];
    if let Ok(v) = <&Lanes<T>>::try_from(part) {
        // SAFETY: `v` is LANES readable elements.
        *dst = unsafe { std::ptr::read_unaligned(v) };
    } else {
        for (d, &v) in dst.iter_mut().zip(part) {
            *d = v;
        }
    }
}

/// A transform's matrix L (p×q, row-major) as constants of the code: one type per transform
/// and tile (`tile!`), so that the two passes of X ↦ L X Lᵀ unroll into multiply-adds by
/// constants, with no code for the zero coefficients.
trait Coeffs {
    const P: usize;
    const Q: usize;
    const L: &'static [f64];
}

/// The six matrices of one tile.
trait TileCoeffs {
    /// G (α×r): the filter transform.
    type G: Coeffs;
    /// Gᵀ (r×α): the filter adjoint.
    type Gt: Coeffs;
    /// Bᵀ (α×α): the input transform.
    type Bt: Coeffs;
    /// B (α×α): the input adjoint.
    type B: Coeffs;
    /// Aᵀ (m×α): the output transform.
    type At: Coeffs;
    /// A (α×m): the output adjoint.
    type A: Coeffs;
}

macro_rules! tile {
    ($module:ident, $m:literal, $r:literal, $at:ident, $g:ident, $bt:ident) => {
        mod $module {
            use super::{Coeffs, TileCoeffs};
            use crate::runtime::winograd::{transposed, $at, $bt, $g};
            const ALPHA: usize = $m + $r - 1;
            macro_rules! matrix {
                ($name:ident, $p:expr, $q:expr, $l:expr) => {
                    pub struct $name;
                    impl Coeffs for $name {
                        const P: usize = $p;
                        const Q: usize = $q;
                        const L: &'static [f64] = &$l;
                    }
                };
            }
            matrix!(G, ALPHA, $r, $g);
            matrix!(Gt, $r, ALPHA, transposed($g, ALPHA, $r));
            matrix!(Bt, ALPHA, ALPHA, $bt);
            matrix!(B, ALPHA, ALPHA, transposed($bt, ALPHA, ALPHA));
            matrix!(At, $m, ALPHA, $at);
            matrix!(A, ALPHA, $m, transposed($at, $m, ALPHA));
            pub struct Tile;
            impl TileCoeffs for Tile {
                type G = G;
                type Gt = Gt;
                type Bt = Bt;
                type B = B;
                type At = At;
                type A = A;
            }
        }
    };
}

tile!(f2x3, 2, 3, AT_2_3, G_2_3, BT_2_3);
tile!(f4x3, 4, 3, AT_4_3, G_4_3, BT_6);
tile!(f2x5, 2, 5, AT_2_5, G_2_5, BT_6);
tile!(f4x5, 4, 5, AT_4_5, G_4_5, BT_4_5);

/// Which instructions the work items were compiled for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }
}

/// Everything one work item needs.
struct Job<'a, T> {
    op: Transform,
    g: Geometry,
    src: &'a [T],
    dst: Out<T>,
}

// SAFETY: `src` is shared read-only; `dst` is written at disjoint elements by the items.
unsafe impl<T: Sync> Sync for Job<'_, T> {}

/// The symbols' body.
///
/// # Safety
/// As for [`netc_winograd_f32`] (in `T`), the work running on `pool`'s threads.
unsafe fn transform<T: Float>(pool: &Pool, op: i64, geom: *const i64, batch: i64, src: *const T, dst: *mut T) {
    // SAFETY: the caller passes 9 sizes.
    let sizes: [i64; 9] = std::array::from_fn(|i| unsafe { *geom.add(i) });
    let (Some(g), Some(op)) = (Geometry::from_array(sizes), Transform::from_code(op)) else { return };
    let n = batch.max(0) as usize;
    let (src_len, dst_len) = g.sizes(op, n);
    if dst_len == 0 {
        return;
    }
    // SAFETY: the caller guarantees `src_len` readable elements that nobody writes.
    let src = unsafe { std::slice::from_raw_parts(src, src_len) };
    let job = Job { op, g, src, dst: Out(dst) };
    let items = match op {
        Transform::Filter => g.c,
        Transform::FilterAdjoint => g.c.div_ceil(LANES),
        Transform::Input => n * g.c.div_ceil(LANES),
        Transform::OutputAdjoint => n * g.f.div_ceil(LANES),
        Transform::InputAdjoint | Transform::Output => n,
    };
    let parts = items.min(pool.threads().max(1) * 4).max(1);
    // f64 (tests, gradient checks) keeps the portable build: a third of the code.
    let isa = if std::mem::size_of::<T>() == 4 { Isa::detect() } else { Isa::Baseline };
    let run = |part: usize| {
        T::planes(|plane| {
            for item in part * items / parts..(part + 1) * items / parts {
                // SAFETY: `item` is one of the job's items; the items write disjoint elements.
                unsafe { run_item(isa, &job, item, plane) }
            }
        });
        store_fence();
    };
    pool.run(parts, &run);
}

/// One work item, compiled for the detected instruction set; `plane` is the thread's buffer.
///
/// # Safety
/// `item` is below the job's item count; no other thread runs the same item.
unsafe fn run_item<T: Float>(isa: Isa, job: &Job<'_, T>, item: usize, plane: &mut Vec<T>) {
    match isa {
        Isa::Baseline => item_body(job, item, plane),
        // SAFETY: the CPU has the features (`Isa::detect`); the rest is the caller's.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { item_avx2(job, item, plane) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { item_avx512(job, item, plane) },
    }
}

/// # Safety
/// The CPU has AVX2; otherwise as for `run_item`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn item_avx2<T: Float>(job: &Job<'_, T>, item: usize, plane: &mut Vec<T>) {
    item_body(job, item, plane)
}

/// # Safety
/// The CPU has AVX-512F; otherwise as for `run_item`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn item_avx512<T: Float>(job: &Job<'_, T>, item: usize, plane: &mut Vec<T>) {
    item_body(job, item, plane)
}

/// One work item (see the module documentation), inlined into each instruction-set variant.
/// (No closure may stand between the variant and the arithmetic: a closure's body is compiled
/// without its caller's target features unless it happens to be inlined.)
#[inline(always)]
fn item_body<T: Float>(job: &Job<'_, T>, item: usize, plane: &mut Vec<T>) {
    // `Geometry::from_array` admits only the tiles of `Tile::ALL`.
    match (job.g.tile.m, job.g.tile.r) {
        (2, 3) => item_tile::<T, f2x3::Tile>(job, item, plane),
        (4, 3) => item_tile::<T, f4x3::Tile>(job, item, plane),
        (2, 5) => item_tile::<T, f2x5::Tile>(job, item, plane),
        _ => item_tile::<T, f4x5::Tile>(job, item, plane),
    }
}

#[inline(always)]
fn item_tile<T: Float, K: TileCoeffs>(job: &Job<'_, T>, item: usize, plane: &mut Vec<T>) {
    let g = &job.g;
    let (c_blocks, f_blocks) = (g.c.div_ceil(LANES), g.f.div_ceil(LANES));
    match job.op {
        Transform::Filter => filter::<T, K::G>(job, item),
        Transform::FilterAdjoint => filter_adjoint::<T, K::Gt>(job, item, plane),
        Transform::Input => input::<T, K::Bt>(job, item / c_blocks, item % c_blocks * LANES, plane),
        Transform::InputAdjoint => input_adjoint::<T, K::B>(job, item, plane),
        Transform::Output => output::<T, K::At>(job, item, plane),
        Transform::OutputAdjoint => output_adjoint::<T, K::A>(job, item / f_blocks, item % f_blocks * LANES, plane),
    }
}

/// The intermediate M X of `sandwich`: column j in [j][..p]. Kept by the caller across calls
/// (every element used is written before it is read: zeroing 4 KiB per tile cost more than the
/// arithmetic).
type Columns<T> = [[Lanes<T>; 8]; 8];

/// M X Mᵀ (p×p) for X q×q, X[k][j] = `x(k, j)`, each result element (i, j) handed to `sink`.
/// Each pass keeps the p sums it is building in registers (independent, so their additions
/// overlap) and adds an input vector times the constant column of M into each; zero
/// coefficients have no code (and so 0·∞ never makes a NaN where the dense product would).
/// The only memory in between is the p×q intermediate, one stack buffer (two 4 KiB buffers
/// read and written in turn would alias in the store-to-load forwarding of x86 cores, whose
/// addresses compare modulo 4 KiB: measured 5–10× slower).
#[inline(always)]
fn sandwich<T: Float, M: Coeffs>(
    t: &mut Columns<T>,
    x: impl Fn(usize, usize) -> Lanes<T>,
    mut sink: impl FnMut(usize, usize, &Lanes<T>),
) {
    let (p, q) = (M::P, M::Q);
    // t = M X
    for (j, column) in t.iter_mut().enumerate().take(q) {
        for k in 0..q {
            let v = x(k, j);
            for (i, acc) in column.iter_mut().enumerate().take(p) {
                let c = M::L[i * q + k];
                if c != 0.0 {
                    let c = T::from_f64(c);
                    for z in 0..LANES {
                        acc[z] = if k == 0 { c * v[z] } else { acc[z] + c * v[z] };
                    }
                } else if k == 0 {
                    *acc = [T::ZERO; LANES];
                }
            }
        }
    }
    // t Mᵀ, a row i at a time
    for i in 0..p {
        let mut acc = [[T::ZERO; LANES]; 8];
        for (k, column) in t.iter().enumerate().take(q) {
            let v = column[i];
            for (j, acc) in acc.iter_mut().enumerate().take(p) {
                let c = M::L[j * q + k];
                if c != 0.0 {
                    let c = T::from_f64(c);
                    for z in 0..LANES {
                        acc[z] = acc[z] + c * v[z];
                    }
                }
            }
        }
        for (j, acc) in acc.iter().enumerate().take(p) {
            sink(i, j, acc);
        }
    }
}

/// `plane` as `len` zeroed lane vectors.
#[inline(always)]
fn zeroed<T: Float>(plane: &mut Vec<T>, len: usize) -> &mut [Lanes<T>] {
    plane.clear();
    plane.resize(len * LANES, T::ZERO);
    plane.as_chunks_mut::<LANES>().0
}

/// `nb` lanes from `src[at..]`, the others zero.
#[inline(always)]
fn lanes_at<T: Float>(src: &[T], at: usize, nb: usize) -> Lanes<T> {
    let mut v = [T::ZERO; LANES];
    get(&mut v, src, at, nb);
    v
}

/// Filter transform of input channel `c`: U[c][ξ][f] = (G w_fc Gᵀ)_ξ for every f.
#[inline(always)]
fn filter<T: Float, M: Coeffs>(job: &Job<'_, T>, c: usize) {
    let (g, a, r) = (&job.g, job.g.tile.alpha(), job.g.tile.r);
    let mut t: Columns<T> = [[[T::ZERO; LANES]; 8]; 8];
    let mut taps: [Lanes<T>; 25] = [[T::ZERO; LANES]; 25];
    for f0 in (0..g.f).step_by(LANES) {
        let nb = (g.f - f0).min(LANES);
        // Filter f0 + l's tap (k, j) in lane l of taps[k·r + j], gathered a filter's r² taps
        // (contiguous in w) at a time and before any is read as a vector: the lanes' stores
        // then reach the cache before their vector load, instead of stalling it.
        for l in 0..nb {
            let at = ((f0 + l) * g.c + c) * r * r;
            for (tap, &v) in taps.iter_mut().zip(&job.src[at..at + r * r]) {
                tap[l] = v;
            }
        }
        for tap in taps.iter_mut().take(r * r) {
            tap[nb..].fill(T::ZERO);
        }
        sandwich::<T, M>(
            &mut t,
            |k, j| taps[k * r + j],
            |i, j, v| {
                // SAFETY: U[c][ξ][f0 .. f0 + nb], written only by this item (channel c).
                unsafe { job.dst.put_streaming((c * a * a + i * a + j) * g.f + f0, &v[..nb]) };
            },
        );
    }
}

/// Filter adjoint of input channels c0..c0 + 16 (`group`): dw[f][c] = Gᵀ Mw[c][·][f] G for
/// every f.
///
/// Each channel's α²×F block is copied first, front to back, and the transform reads the
/// copy: read straight from the product's output, one 16-lane piece out of every F-long row
/// at a time, it ran 2–3× slower (the hardware prefetchers do not follow that pattern, and
/// the block comes from memory; `src` is up to 21 MB for AlexNet at batch 8). The group's
/// taps of a filter are one run of dw, written at the end from `scratch`.
#[inline(always)]
fn filter_adjoint<T: Float, M: Coeffs>(job: &Job<'_, T>, group: usize, scratch: &mut Vec<T>) {
    let (g, a, r) = (&job.g, job.g.tile.alpha(), job.g.tile.r);
    let (c0, r2, len) = (group * LANES, r * r, a * a * g.f);
    let nc = (g.c - c0).min(LANES);
    let mut t: Columns<T> = [[[T::ZERO; LANES]; 8]; 8];
    let mut taps: [Lanes<T>; 25] = [[T::ZERO; LANES]; 25];
    scratch.clear();
    scratch.resize(len + g.f * nc * r2, T::ZERO);
    let (copy, rows) = scratch.split_at_mut(len);
    for (ci, c) in (c0..c0 + nc).enumerate() {
        copy.copy_from_slice(&job.src[c * len..][..len]);
        for f0 in (0..g.f).step_by(LANES) {
            let nb = (g.f - f0).min(LANES);
            sandwich::<T, M>(&mut t, |k, j| lanes_at(copy, (k * a + j) * g.f + f0, nb), |i, j, v| taps[i * r + j] = *v);
            for (l, f) in (f0..f0 + nb).enumerate() {
                for (tap, d) in rows[(f * nc + ci) * r2..][..r2].iter_mut().enumerate() {
                    *d = taps[tap][l];
                }
            }
        }
    }
    for f in 0..g.f {
        // SAFETY: dw[f][c0 .. c0 + nc][..], written only by this item.
        unsafe { job.dst.put((f * g.c + c0) * r2, &rows[f * nc * r2..][..nc * r2]) };
    }
}

/// Input transform of channels c0.. of image `img`: V[nt][ξ][c] = (Bᵀ D B)_ξ of every tile.
#[inline(always)]
fn input<T: Float, M: Coeffs>(job: &Job<'_, T>, img: usize, c0: usize, plane: &mut Vec<T>) {
    let (g, a, m) = (&job.g, job.g.tile.alpha(), job.g.tile.m);
    let mut t: Columns<T> = [[[T::ZERO; LANES]; 8]; 8];
    let ((hp, wp), (th, tw)) = (g.padded_hw(), g.tiles_hw());
    let nb = (g.c - c0).min(LANES);
    let plane = zeroed(plane, hp * wp);
    for l in 0..nb {
        let x = &job.src[((img * g.c) + c0 + l) * g.h * g.w..][..g.h * g.w];
        for (y, row) in x.chunks_exact(g.w).enumerate() {
            let dst = &mut plane[(y + g.pad) * wp + g.pad..][..g.w];
            for (d, &v) in dst.iter_mut().zip(row) {
                d[l] = v;
            }
        }
    }
    let plane = &*plane;
    for ti in 0..th {
        for tj in 0..tw {
            let nt = img * g.tiles() + ti * tw + tj;
            sandwich::<T, M>(
                &mut t,
                |k, j| plane[(ti * m + k) * wp + tj * m + j],
                |i, j, v| {
                    // SAFETY: V[nt][ξ][c0 .. c0 + nb], written only by this item.
                    unsafe { job.dst.put_streaming((nt * a * a + i * a + j) * g.c + c0, &v[..nb]) };
                },
            );
        }
    }
}

/// Input adjoint of image `img`: dx = the sum over tiles of B Mx Bᵀ.
///
/// Tile by tile, every block of channels: each tile's α²×C block is copied first, front to
/// back, and read from the copy (see `filter_adjoint`: read in 16-lane pieces straight from
/// the product's output, the transform ran 2–3× slower). `scratch` holds the copy, then one
/// zero-padded plane per block of channels, where the tiles (which overlap) add up.
#[inline(always)]
fn input_adjoint<T: Float, M: Coeffs>(job: &Job<'_, T>, img: usize, scratch: &mut Vec<T>) {
    let (g, a, m) = (&job.g, job.g.tile.alpha(), job.g.tile.m);
    let mut t: Columns<T> = [[[T::ZERO; LANES]; 8]; 8];
    let ((hp, wp), (th, tw)) = (g.padded_hw(), g.tiles_hw());
    let (blocks, len) = (g.c.div_ceil(LANES), a * a * g.c);
    let scratch = zeroed(scratch, len.div_ceil(LANES) + blocks * hp * wp);
    let (copy, planes) = scratch.split_at_mut(len.div_ceil(LANES));
    let copy = &mut copy.as_flattened_mut()[..len];
    for ti in 0..th {
        for tj in 0..tw {
            let nt = img * g.tiles() + ti * tw + tj;
            copy.copy_from_slice(&job.src[nt * len..][..len]);
            for (block, plane) in planes.chunks_exact_mut(hp * wp).enumerate() {
                let (c0, nb) = (block * LANES, (g.c - block * LANES).min(LANES));
                sandwich::<T, M>(
                    &mut t,
                    |k, j| lanes_at(copy, (k * a + j) * g.c + c0, nb),
                    |i, j, v| {
                        let d = &mut plane[(ti * m + i) * wp + tj * m + j];
                        for z in 0..LANES {
                            d[z] = d[z] + v[z];
                        }
                    },
                );
            }
        }
    }
    let mut row = vec![T::ZERO; g.w];
    for (block, plane) in planes.chunks_exact(hp * wp).enumerate() {
        let (c0, nb) = (block * LANES, (g.c - block * LANES).min(LANES));
        for l in 0..nb {
            for y in 0..g.h {
                for (x, v) in row.iter_mut().enumerate() {
                    *v = plane[(y + g.pad) * wp + x + g.pad][l];
                }
                // SAFETY: dx[img][c0 + l][y][..], written only by this item.
                unsafe { job.dst.put((((img * g.c) + c0 + l) * g.h + y) * g.w, &row) };
            }
        }
    }
}

/// Output transform of image `img`: y = Aᵀ M A of every tile, cut at the edges.
///
/// Tile by tile, every block of filters, from a copy of the tile's α²×F block (as in
/// `input_adjoint`); `scratch` holds the copy, then one plane per block of filters.
#[inline(always)]
fn output<T: Float, M: Coeffs>(job: &Job<'_, T>, img: usize, scratch: &mut Vec<T>) {
    let (g, a, m) = (&job.g, job.g.tile.alpha(), job.g.tile.m);
    let mut t: Columns<T> = [[[T::ZERO; LANES]; 8]; 8];
    let (th, tw) = g.tiles_hw();
    let width = tw * m;
    let (blocks, len, size) = (g.f.div_ceil(LANES), a * a * g.f, th * m * width);
    let scratch = zeroed(scratch, len.div_ceil(LANES) + blocks * size);
    let (copy, planes) = scratch.split_at_mut(len.div_ceil(LANES));
    let copy = &mut copy.as_flattened_mut()[..len];
    for ti in 0..th {
        for tj in 0..tw {
            let nt = img * g.tiles() + ti * tw + tj;
            copy.copy_from_slice(&job.src[nt * len..][..len]);
            for (block, plane) in planes.chunks_exact_mut(size).enumerate() {
                let (f0, nb) = (block * LANES, (g.f - block * LANES).min(LANES));
                sandwich::<T, M>(
                    &mut t,
                    |k, j| lanes_at(copy, (k * a + j) * g.f + f0, nb),
                    |i, j, v| plane[(ti * m + i) * width + tj * m + j] = *v,
                );
            }
        }
    }
    let mut row = vec![T::ZERO; g.ow];
    for (block, plane) in planes.chunks_exact(size).enumerate() {
        let (f0, nb) = (block * LANES, (g.f - block * LANES).min(LANES));
        for l in 0..nb {
            for y in 0..g.oh {
                for (x, v) in row.iter_mut().enumerate() {
                    *v = plane[y * width + x][l];
                }
                // SAFETY: y[img][f0 + l][y][..], written only by this item.
                unsafe { job.dst.put((((img * g.f) + f0 + l) * g.oh + y) * g.ow, &row) };
            }
        }
    }
}

/// Output adjoint of filters f0.. of image `img`: Ũ[nt][ξ][f] = (A Gr Aᵀ)_ξ of every m×m tile
/// of the upstream gradient (zero past its edges).
#[inline(always)]
fn output_adjoint<T: Float, M: Coeffs>(job: &Job<'_, T>, img: usize, f0: usize, plane: &mut Vec<T>) {
    let (g, a, m) = (&job.g, job.g.tile.alpha(), job.g.tile.m);
    let mut t: Columns<T> = [[[T::ZERO; LANES]; 8]; 8];
    let (th, tw) = g.tiles_hw();
    let width = tw * m;
    let nb = (g.f - f0).min(LANES);
    let plane = zeroed(plane, th * m * width);
    for l in 0..nb {
        let gr = &job.src[((img * g.f) + f0 + l) * g.oh * g.ow..][..g.oh * g.ow];
        for (y, row) in gr.chunks_exact(g.ow).enumerate() {
            for (d, &v) in plane[y * width..][..g.ow].iter_mut().zip(row) {
                d[l] = v;
            }
        }
    }
    let plane = &*plane;
    for ti in 0..th {
        for tj in 0..tw {
            let nt = img * g.tiles() + ti * tw + tj;
            sandwich::<T, M>(
                &mut t,
                |k, j| plane[(ti * m + k) * width + tj * m + j],
                |i, j, v| {
                    // SAFETY: Ũ[nt][ξ][f0 .. f0 + nb], written only by this item.
                    unsafe { job.dst.put_streaming((nt * a * a + i * a + j) * g.f + f0, &v[..nb]) };
                },
            );
        }
    }
}

thread_local! {
    /// Each thread's plane buffer, kept between calls.
    static PLANES_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PLANES_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// The thread-local plane buffer of each element type.
pub(super) trait Planes: Sized {
    fn planes<R>(f: impl FnOnce(&mut Vec<Self>) -> R) -> R;
}

impl Planes for f32 {
    fn planes<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
        PLANES_F32.with(|p| f(&mut p.borrow_mut()))
    }
}

impl Planes for f64 {
    fn planes<R>(f: impl FnOnce(&mut Vec<f64>) -> R) -> R {
        PLANES_F64.with(|p| f(&mut p.borrow_mut()))
    }
}
