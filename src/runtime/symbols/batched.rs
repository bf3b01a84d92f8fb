//! The batched GEMM symbols of the JIT: the products of one batched matmul
//! (`[B, H, T, D] @ [B, H, D, S]`) in one call, the products divided among the worker pool.
//!
//! ```c
//! void netc_gemm_batched_f32(void (*gemm)(/* netc_gemm_f32's parameters */),   /* or NULL */
//!                            int64_t count, int64_t sa, int64_t sb, int64_t sc,
//!                            /* then netc_gemm_f32's 14 parameters, for product 0 */);
//! ```
//! (`netc_gemm_batched_f64` the same with double) computes `count` products C_e = alpha·A_e·B_e
//! + beta·C_e, where A_e starts `e·sa` elements after `a` (B_e after `b` by `e·sb`, C_e after
//! `c` by `e·sc`; a stride of 0 repeats an operand, as broadcasting does). Each product runs
//! `gemm` when it is given (the JIT passes its generated GEMM for small products, which packs
//! nothing) and the product is tiny or the CPU has neither AVX2 nor AVX-512
//! (`stream::library_beats_generated`), else the faster library for its shape
//! single-threaded ([`Library::for_product`]: the same library for every product of a call,
//! whatever the thread count).
//!
//! Why: the products of attention-shaped matmuls (64×64·64 each, B·H of them) are far below
//! the size at which one GEMM pays for splitting over threads, so a loop of GEMM calls used
//! one core. Here each thread takes a range of whole products. When there are fewer products
//! than threads and each is large, they run one after the other, each split by [`super::gemm`]
//! instead.
//!
//! Products that [`stream`]'s kernels take whole skip both (`stream::whole_layout`): with
//! AVX2, `Tiles` for an A of up to 2¹⁶ elements and C's rows contiguous (attention's
//! products at 0.55–0.85× `matrixmultiply`'s time); with AVX-512, up to 64 rows (128 when
//! B's and C's rows are contiguous) whose B or C layout allows it.
//!
//! Determinism: each product is one single-threaded call (or one split GEMM, whose results
//! are those of one thread, see `super`), whichever thread runs it: the same bits on any
//! number of threads. A product for which the `gemm` crate is chosen is never split (its
//! results depend on the cut), so it is the same call on any number of threads too.

use super::{gemm, gemm_symbol, stream, threads, Float, Gemm, GemmArgs, GemmFn, Library, Matrix, Pool, Split};

/// Symbol of the f32 batched GEMM.
pub const BATCHED_F32: &str = "netc_gemm_batched_f32";
/// Symbol of the f64 batched GEMM.
pub const BATCHED_F64: &str = "netc_gemm_batched_f64";

gemm_symbol! {
    /// `count` products in f32, see the module documentation.
    ///
    /// # Safety
    /// For every e < `count`, the arguments with `a`, `b` and `c` advanced by `e·sa`, `e·sb` and
    /// `e·sc` elements satisfy the contract of [`super::netc_gemm_f32`]; the C matrices of
    /// different products share no element; `gemm`, when not null, is a function with the
    /// contract of `netc_gemm_f32` that may run on any thread.
    pub unsafe extern "C" fn netc_gemm_batched_f32(
        gemm: Option<GemmFn<f32>>,
        count: i64,
        sa: i64,
        sb: i64,
        sc: i64;
        args: Gemm<f32>
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { batched(None, Split::DEFAULT, gemm, count, [sa, sb, sc], args) }
    }
}

gemm_symbol! {
    /// `count` products in f64, as [`netc_gemm_batched_f32`].
    ///
    /// # Safety
    /// As for [`netc_gemm_batched_f32`].
    pub unsafe extern "C" fn netc_gemm_batched_f64(
        gemm: Option<GemmFn<f64>>,
        count: i64,
        sa: i64,
        sb: i64,
        sc: i64;
        args: Gemm<f64>
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { batched(None, Split::DEFAULT, gemm, count, [sa, sb, sc], args) }
    }
}

/// [`netc_gemm_batched_f32`] on a given pool and split (tests: the bits must not depend on
/// the thread count; benchmarks).
///
/// # Safety
/// As for [`netc_gemm_batched_f32`], with the products' arguments in `args`.
pub unsafe fn batched_f32_on(
    pool: &Pool,
    split: Split,
    gemm: Option<GemmFn<f32>>,
    count: i64,
    strides: [i64; 3],
    args: Gemm<f32>,
) {
    // SAFETY: forwarded.
    unsafe { batched(Some(pool), split, gemm, count, strides, args) }
}

/// The arguments of every product, shared with the pool's threads.
#[derive(Clone, Copy)]
struct Products<T> {
    first: Gemm<T>,
    strides: [i64; 3],
    gemm: Option<GemmFn<T>>,
    /// The library of the products that `gemm` does not take.
    lib: Library,
    /// The kernel of `stream` that takes every product instead, if one applies.
    streamed: Option<stream::Layout>,
}

// SAFETY: the threads only read the A and B matrices, and each writes the C matrices of its
// own products, which share no element (the caller's contract).
unsafe impl<T: Sync> Sync for Products<T> {}

impl<T: Float> Products<T> {
    /// The arguments of product `e`.
    fn element(&self, e: usize) -> Gemm<T> {
        let g = self.first;
        let at = |stride: i64| (e as isize).wrapping_mul(stride as isize);
        GemmArgs {
            a: Matrix { ptr: g.a.ptr.wrapping_offset(at(self.strides[0])), ..g.a },
            b: Matrix { ptr: g.b.ptr.wrapping_offset(at(self.strides[1])), ..g.b },
            c: Matrix { ptr: g.c.ptr.wrapping_offset(at(self.strides[2])), ..g.c },
            ..g
        }
    }

    /// Product `e` on the calling thread.
    ///
    /// # Safety
    /// As for [`netc_gemm_batched_f32`] (in `T`), and e < count.
    unsafe fn run_one(&self, e: usize) {
        let g = self.element(e);
        if let Some(kernel) = self.streamed {
            // SAFETY: as below; `streamed` is `whole_layout` of the first product, and every
            // product has its strides.
            let all = if kernel.cuts_rows() { 0..g.m as usize } else { 0..g.n as usize };
            return unsafe { stream::gemm(kernel, g, all) };
        }
        match self.gemm {
            // SAFETY: the caller's contract for the given GEMM.
            Some(f) => unsafe {
                f(
                    g.m, g.k, g.n, g.alpha, g.a.ptr, g.a.rs, g.a.cs, g.b.ptr, g.b.rs, g.b.cs, g.beta, g.c.ptr, g.c.rs,
                    g.c.cs,
                )
            },
            // SAFETY: as above; m, k, n are not negative (checked by `batched`).
            None => unsafe { T::gemm1(self.lib, g) },
        }
    }
}

/// The batched symbols' body.
///
/// # Safety
/// As for [`netc_gemm_batched_f32`] (in `T`), with the products' arguments in `args`.
unsafe fn batched<T: Float>(
    pool: Option<&Pool>,
    split: Split,
    per: Option<GemmFn<T>>,
    count: i64,
    strides: [i64; 3],
    args: Gemm<T>,
) {
    if count <= 0 || args.m <= 0 || args.n <= 0 {
        return;
    }
    let args = GemmArgs { k: args.k.max(0), ..args };
    let b_transposed = args.b.rs.unsigned_abs() < args.b.cs.unsigned_abs();
    let lib = Library::for_product(args.m as usize, args.k as usize, args.n as usize, b_transposed);
    let streamed = stream::whole_layout(&args);
    let per = per.filter(|_| !stream::library_beats_generated(&args));
    let products = Products { first: args, strides, gemm: per, lib, streamed };
    let count = count as usize;
    let macs = (args.m as u128) * (args.n as u128) * (args.k as u128);
    let threads = pool.map_or_else(threads::count, Pool::threads);
    let splittable = per.is_none() && lib == Library::MatrixMultiply && streamed.is_none();
    if threads >= 2 && count < threads && macs >= split.min_macs as u128 && splittable {
        // Few large products: one after the other, each divided among the threads (only
        // matrixmultiply's products: its results do not depend on the cut).
        for e in 0..count {
            // SAFETY: product e satisfies the GEMM's contract (the caller's).
            unsafe { gemm(pool, split, products.element(e)) };
        }
        return;
    }
    let total = macs * count as u128;
    if threads < 2 || total < split.min_macs as u128 {
        for e in 0..count {
            // SAFETY: e < count.
            unsafe { products.run_one(e) };
        }
        return;
    }
    let pool = pool.unwrap_or_else(|| Pool::global());
    let wake = total >= split.wake_macs as u128;
    if !wake && pool.awake() == 0 {
        // Too little work to wait for a wake-up: run here, and wake the workers for the next.
        pool.wake();
        for e in 0..count {
            // SAFETY: e < count.
            unsafe { products.run_one(e) };
        }
        return;
    }
    // Contiguous ranges of products, as many as threads × blocks per thread (at most count).
    let blocks = count.min(threads.saturating_mul(split.blocks_per_thread.max(1)));
    let per_block = count.div_ceil(blocks);
    let blocks = count.div_ceil(per_block);
    let body = |i: usize| {
        for e in i * per_block..((i + 1) * per_block).min(count) {
            // SAFETY: e < count; each block writes only its own products' C.
            unsafe { products.run_one(e) };
        }
    };
    if wake {
        pool.run(blocks, &body);
    } else {
        pool.run_awake(blocks, &body);
    }
}
