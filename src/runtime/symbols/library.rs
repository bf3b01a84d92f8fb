//! The two single-threaded GEMM libraries under the GEMM and convolution symbols, and which
//! of them multiplies a given shape.
//!
//! - `matrixmultiply` (0.3): packs both operands; chooses AVX-512, AVX2+FMA or SSE kernels at
//!   run time.
//! - `gemm-f32` / `gemm-f64` (0.19, the `gemm` crate's real-valued kernels, with its `x86-v4`
//!   feature): chooses AVX-512, AVX2+FMA or scalar kernels at run time by CPU detection, and
//!   skips packing where it does not pay.
//!
//! Neither is faster everywhere (`cargo bench --bench kernels`, "GEMM libraries"; the figures
//! are in `Library::for_product`). The choice is a function of the product's shape alone, and
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

    /// The faster library for an (m × k)·(k × n) product whose B is stored row-major, or
    /// transposed (`b_transposed`: column-major, as the filter gradient's columnsᵀ).
    ///
    /// Measured on the 2-core Zen 4 VM (AVX-512; f32, one thread, least CPU time of 9 calls
    /// in two runs, `cargo bench --bench kernels -- --libraries`): matrixmultiply 0.3 runs
    /// AVX-512 kernels here (100–150 GFLOP/s on these shapes) and is faster on almost every
    /// product — 1.1–2× on the Winograd products and the dense layers, 3–6× on short or thin
    /// ones (K = 27 or 32, N = 16). The gemm crate wins (1.13–1.28×) only on products with B
    /// transposed over a long inner dimension: the per-image filter gradients of convolutions
    /// with many output pixels (AlexNet's conv1 and conv2, k = 3025 and 729; the CIFAR CNN's
    /// conv1, k = 1024); with k = 169 (AlexNet's conv3–5) or a dense layer's k = 256 it loses.
    pub fn for_product(_m: usize, k: usize, _n: usize, b_transposed: bool) -> Library {
        if b_transposed && k >= 512 {
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

/// Defines `$name(lib, g)`: C = alpha·A·B + beta·C in `$t` by `lib`, on this thread, through
/// `$matrixmultiply` or the function that `$gemm_crate` returns (a macro, not a generic
/// function: both crates have one entry point per element type).
macro_rules! gemm_by_library {
    ($(#[$doc:meta])* $name:ident, $t:ty, $matrixmultiply:path, $gemm_crate:path) => {
        $(#[$doc])*
        pub unsafe fn $name(lib: Library, g: Gemm<$t>) {
            let (m, k, n) = (g.m as usize, g.k as usize, g.n as usize);
            let (a, b, c) = (g.a, g.b, g.c);
            match lib {
                // SAFETY: forwarded.
                Library::MatrixMultiply => unsafe {
                    $matrixmultiply(
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
                // SAFETY: forwarded. The crate computes dst = α·dst + β·lhs·rhs, reading dst only
                // when asked: its α is our beta and its β our alpha.
                Library::GemmCrate => unsafe {
                    $gemm_crate()(
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
    };
}

gemm_by_library!(
    /// C = alpha·A·B + beta·C in f32 by `lib`, on this thread.
    ///
    /// # Safety
    /// As for `netc_gemm_f32`, and none of m, k, n is negative.
    sgemm,
    f32,
    matrixmultiply::sgemm,
    gemm_f32::gemm::f32::get_gemm_fn
);

gemm_by_library!(
    /// C = alpha·A·B + beta·C in f64 by `lib`, on this thread.
    ///
    /// # Safety
    /// As for `netc_gemm_f64`, and none of m, k, n is negative.
    dgemm,
    f64,
    matrixmultiply::dgemm,
    gemm_f64::gemm::f64::get_gemm_fn
);
