//! The two single-threaded GEMM libraries under the GEMM and convolution symbols, and which
//! of them multiplies a given shape.
//!
//! - `matrixmultiply` (0.3): 256-bit AVX2/FMA kernels, packs both operands.
//! - `gemm-f32` / `gemm-f64` (0.19, the `gemm` crate's real-valued kernels, with its `x86-v4`
//!   feature): chooses AVX-512, AVX2+FMA or scalar kernels at run time by CPU detection, and
//!   skips packing where it does not pay.
//!
//! Neither is faster everywhere (`cargo bench --bench kernels`, "GEMM libraries"; the figures
//! are in `Library::for_shape`). The choice is a function of the product's shape alone, and
//! it is made only for products that run whole on one thread (the convolution symbol's
//! per-image products, the batched symbol's products): the `gemm` crate rounds an element
//! differently depending on the block it computes it in, so a product that the GEMM symbol
//! cuts among threads stays with `matrixmultiply`, whose results do not depend on the cut.

use super::Gemm;

/// A single-threaded GEMM implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Library {
    MatrixMultiply,
    /// The `gemm` crate (AVX-512 where the CPU has it).
    GemmCrate,
}

impl Library {
    /// Both, for benchmarks and tests.
    pub const ALL: [Library; 2] = [Library::MatrixMultiply, Library::GemmCrate];

    /// The faster library for an (m × k)·(k × n) product. Measured on the 2-core Zen 4 VM
    /// (AVX-512, one thread, f32, best of 5; `cargo bench --bench kernels`):
    /// `matrixmultiply` keeps the products with at most 16 rows or columns of C (the dense
    /// layers at batch 8: memory-bound, its packed 8×16 kernel streams the weights faster)
    /// and the deep square-ish ones where both are at the core's peak; `gemm` takes the
    /// products with a short inner dimension or a thin side (im2col of a first layer, K = 27:
    /// 2.3×; per-image convolutions of a small CNN and the Winograd products: 1.1–1.8×).
    pub fn for_shape(m: usize, k: usize, n: usize) -> Library {
        if m.min(n) <= 16 || k == 0 {
            Library::MatrixMultiply
        } else if k <= 512 || m.min(n) <= 256 {
            Library::GemmCrate
        } else {
            Library::MatrixMultiply
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Library::MatrixMultiply => "matrixmultiply",
            Library::GemmCrate => "gemm",
        }
    }
}

/// C = alpha·A·B + beta·C in f32 by `lib`, on this thread.
///
/// # Safety
/// As for `netc_gemm_f32`, and none of m, k, n is negative.
pub unsafe fn sgemm(lib: Library, g: Gemm<f32>) {
    let (m, k, n) = (g.m as usize, g.k as usize, g.n as usize);
    let (a, b, c) = (g.a, g.b, g.c);
    match lib {
        // SAFETY: forwarded.
        Library::MatrixMultiply => unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                g.alpha,
                a.ptr,
                a.rs as isize,
                a.cs as isize,
                b.ptr,
                b.rs as isize,
                b.cs as isize,
                g.beta,
                c.ptr,
                c.rs as isize,
                c.cs as isize,
            )
        },
        // SAFETY: forwarded. The crate computes dst = α·dst + β·lhs·rhs, reading dst only when
        // asked: its α is our beta and its β our alpha.
        Library::GemmCrate => unsafe {
            gemm_f32::gemm::f32::get_gemm_fn()(
                m,
                n,
                k,
                c.ptr,
                c.cs as isize,
                c.rs as isize,
                g.beta != 0.0,
                a.ptr,
                a.cs as isize,
                a.rs as isize,
                b.ptr,
                b.cs as isize,
                b.rs as isize,
                g.beta,
                g.alpha,
                false,
                false,
                false,
                gemm_common::Parallelism::None,
            )
        },
    }
}

/// C = alpha·A·B + beta·C in f64 by `lib`, on this thread.
///
/// # Safety
/// As for `netc_gemm_f64`, and none of m, k, n is negative.
pub unsafe fn dgemm(lib: Library, g: Gemm<f64>) {
    let (m, k, n) = (g.m as usize, g.k as usize, g.n as usize);
    let (a, b, c) = (g.a, g.b, g.c);
    match lib {
        // SAFETY: forwarded.
        Library::MatrixMultiply => unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                g.alpha,
                a.ptr,
                a.rs as isize,
                a.cs as isize,
                b.ptr,
                b.rs as isize,
                b.cs as isize,
                g.beta,
                c.ptr,
                c.rs as isize,
                c.cs as isize,
            )
        },
        // SAFETY: forwarded, as in `sgemm`.
        Library::GemmCrate => unsafe {
            gemm_f64::gemm::f64::get_gemm_fn()(
                m,
                n,
                k,
                c.ptr,
                c.cs as isize,
                c.rs as isize,
                g.beta != 0.0,
                a.ptr,
                a.cs as isize,
                a.rs as isize,
                b.ptr,
                b.cs as isize,
                b.rs as isize,
                g.beta,
                g.alpha,
                false,
                false,
                false,
                gemm_common::Parallelism::None,
            )
        },
    }
}
