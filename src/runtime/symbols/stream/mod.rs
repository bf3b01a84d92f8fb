//! GEMM kernels that read B in place instead of packing it, for the products where packing
//! is the cost: few rows of A (the dense layers of a small batch: AlexNet's fc6 at batch 8 is
//! 8 × 9216 · 9216 × 4096; an LSTM step, 32 × 256 · 256 × 1024; attention's 64-row products),
//! and a short k (a dense layer's weight gradient at a small batch, 9216 × 8 · 8 × 4096).
//!
//! Why: `matrixmultiply` packs all of B for every product, although each element of B meets
//! only m rows of A. For fc6 that copy is the whole cost: B (151 MB) crosses memory three
//! times and the product runs at 13 GFLOP/s. Here B is read where it lies, tile by tile, and
//! each tile meets every row of A while it is in cache.
//!
//! Five kernels, compiled for AVX-512 and for AVX2 with FMA ([`Isa`], chosen at run time;
//! without either the symbols keep the libraries; where each one pays differs, see
//! [`Limits`]):
//! - [`Layout::Rows`] (B[p, j..] contiguous, C's rows contiguous): a tile of C of 8 rows × 32
//!   columns (f32 with AVX-512; 6 × 16 with AVX2) in 2 vector accumulators per row; per p one
//!   vector pair of B's row p times the rows' broadcast elements of A's column p. The k axis
//!   is cut into blocks of [`KB`] rows that sweep every tile, so that B is read as a few
//!   sequential streams.
//! - [`Layout::Columns`] (B[p.., j] contiguous, as in `x @ transpose(w)`, and A's rows
//!   contiguous, a long k): a tile of 4 rows × 4 columns of dot products (3 × 3 with AVX2),
//!   each a vector accumulator over p, reduced at the end.
//! - [`Layout::Copied`] (a small column-major B, products run whole): B gathered into rows,
//!   then `Rows`.
//! - [`Layout::Outer`] (m > 32, k ≤ 16, C of 2²⁴ elements or more): C streamed row after
//!   row, once, with B in cache.
//! - [`Layout::Tiles`] (AVX2 only; small products run whole, or many rows with 64 ≤ k ≤
//!   512; C's rows contiguous): B in panels of a tile's width, in place or copied, each panel
//!   times a block of A's rows in register tiles over all of k (`tiles.rs`). Unlike the
//!   others it copies B: each panel meets many tiles of rows, so a copy pays for itself.
//!
//! Determinism: every element of C is computed by the same sequence of operations whichever
//! tile or block it falls in (lanes are independent; the edges of a tile re-read a row or
//! column inside the matrix, or load masked lanes as zero, and store only what is theirs).
//! So the GEMM symbols may cut such a product into column blocks (row blocks for `Outer`) at
//! any place and get the bits of one thread.

use std::ops::Range;

use super::{Gemm, GemmArgs};

#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
mod tiles;

/// Rows of B per block of the k axis in [`Layout::Rows`].
const KB: usize = 16;

/// Most tiles of [`Layout::Rows`] that one sweep of a k-block covers (wider blocks of columns
/// are taken in parts): the accumulators kept between k-blocks stay within 256 KiB.
const CHUNK: usize = 64;

/// Tiles of [`Layout::Rows`] (32 f32 columns) up to which k is not blocked.
const FEW_TILES: usize = 2;

/// Which kernel streams a product's B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// B's rows and C's rows are contiguous.
    Rows,
    /// B's columns and A's rows are contiguous.
    Columns,
    /// B's columns are contiguous and it is small: copied into rows, then [`Layout::Rows`]
    /// (products run whole on one thread only, see [`whole_layout`]).
    Copied,
    /// Many rows, a short k (≤ [`MAX_OUTER_K`]) and a large C (≥ [`MIN_OUTER_C`] elements),
    /// B's and C's rows contiguous: the weight gradient of a dense layer at a small batch
    /// (9216 × 8 · 8 × 4096), where C is the cost. C is streamed row after row, once; B stays
    /// in cache. Its blocks are blocks of rows.
    Outer,
    /// With AVX2: a small product run whole ([`whole_layout`]), or one of many rows with
    /// k in [`TILES_K`]. B in panels of a tile's width, each panel times a block of A's rows
    /// in register tiles over all of k (`tiles.rs`).
    Tiles,
}

impl Layout {
    /// What a block of the kernel is a range of: rows of C for [`Layout::Outer`] and
    /// [`Layout::Tiles`] (whose blocks then read disjoint parts of A), columns of C for the
    /// others.
    pub fn cuts_rows(self) -> bool {
        match self {
            Layout::Outer | Layout::Tiles => true,
            Layout::Rows | Layout::Columns | Layout::Copied => false,
        }
    }
}

/// Longest k for [`Layout::Outer`]. Measured on one thread with beta = 1: 9216 × 8 · 8 × 4096
/// (AlexNet's fc6 weight gradient, C 151 MB) 38 ms against `matrixmultiply`'s 54, and the
/// AlexNet train step 428 → 407 ms; at k = 32 it loses on 256 × 32 · 32 × 1024 (an LSTM step's
/// weight gradient, 66 against 78 GFLOP/s).
pub const MAX_OUTER_K: i64 = 16;

/// Fewest elements of C for [`Layout::Outer`]: it gains only where C is far larger than the
/// caches. One thread, `cargo bench --bench kernels -- --stream` (beta = 0): 2.5× on
/// 9216 × 8 · 8 × 4096, 0.95× on 4096 × 8 · 8 × 4096, 0.90× on 256 × 16 · 16 × 1024; in the
/// AlexNet step (beta = 1, C is the weight) also taking 4096 × 8 · 8 × 4096 is ~4 ms faster.
pub const MIN_OUTER_C: u128 = 1 << 24;

/// Where the kernels of one [`Isa`] beat the libraries, measured with
/// `cargo bench --bench kernels -- --stream` (one thread, hot caches) and in the workloads'
/// train steps (`netc bench --profile`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most rows of A for [`Layout::Rows`] in the GEMM symbols.
    pub rows: i64,
    /// Most rows of A for [`Layout::Columns`] in the GEMM symbols.
    pub columns: i64,
    /// Shortest k for [`Layout::Columns`]: its dot products end in a reduction across lanes,
    /// which shorter ones do not pay for.
    pub min_dot: i64,
    /// Whether [`Layout::Outer`] runs here at all.
    pub outer: bool,
    /// Most rows of A for [`Layout::Rows`] in a product run whole (the batched symbols').
    pub whole_rows: i64,
    /// Most rows of A for [`Layout::Columns`] and [`Layout::Copied`] run whole.
    pub whole: i64,
    /// Whether a small column-major B is copied into rows for [`Layout::Rows`].
    pub copied: bool,
    /// Whether products run whole take [`Layout::Tiles`] (up to [`MAX_TILES_A`] elements of
    /// A, C's columns contiguous).
    pub tiles: bool,
}

impl Isa {
    pub fn limits(self) -> Limits {
        match self {
            // On the 2-core Zen 4 VM: up to 32 rows these kernels beat `matrixmultiply` on the
            // dense layers' and recurrent steps' shapes, from 64 packing pays for itself;
            // `Columns` at k = 256 (32 × 256 · 256 × 1024) ran at 0.90× its speed, at k = 1000
            // (8 × 1000 · 1000 × 4096) at 2.9×. Whole products: see `MAX_ROWS_WHOLE_ROWS`,
            // `MAX_ROWS_WHOLE`.
            Isa::Avx512 => Limits {
                rows: 32,
                columns: 32,
                min_dot: 512,
                outer: true,
                whole_rows: MAX_ROWS_WHOLE_ROWS,
                whole: MAX_ROWS_WHOLE,
                copied: true,
                // Not measured on an AVX-512 machine: its measured choices stay.
                tiles: false,
            },
            // On a 2-core AMD EPYC VM with AVX2 (no AVX-512), against `matrixmultiply`:
            // `Rows` 1.3–2× on 8-row products (AlexNet's dense layers), 1.05–1.2× at 16 rows,
            // 0.78–0.93× at 32 and 0.45–1.03× on attention's 64 × 64 · 64 × 32; `Columns`
            // 1.34× on 32 × 1024 · 1024 × 1024 with B transposed, 1.06–1.15× at k = 256
            // (an LSTM step, 32 × 256 · 256 × 1024), 1.07× at 64 rows; `Outer` 0.76–0.93×.
            // Whole products: `Tiles` (see `MAX_TILES_A`).
            Isa::Avx2 => Limits {
                rows: 16,
                columns: 32,
                min_dot: 256,
                outer: false,
                whole_rows: 16,
                whole: 32,
                copied: false,
                tiles: true,
            },
        }
    }
}

/// The kernel for `g` on this CPU, if there is one: [`layout_for`] its [`Isa::detected`].
pub fn layout<T: Copy>(g: &Gemm<T>) -> Option<Layout> {
    Isa::detected().and_then(|isa| layout_for(isa, g))
}

/// The kernel of `isa` for `g`, if there is one: few rows (see [`Limits`]) and a layout of B
/// above, or [`Layout::Outer`]'s shape; k ≥ 1.
pub fn layout_for<T: Copy>(isa: Isa, g: &Gemm<T>) -> Option<Layout> {
    if g.m < 1 || g.k < 1 || g.n < 1 {
        return None;
    }
    let limits = isa.limits();
    if g.m > limits.rows.max(limits.columns) {
        let big = (g.m as u128) * (g.n as u128) >= MIN_OUTER_C;
        let outer = limits.outer && g.k <= MAX_OUTER_K && big && g.b.cs == 1 && g.c.cs == 1;
        let tiles = limits.tiles && TILES_K.contains(&g.k) && g.n >= MIN_TILES_N && g.c.cs == 1;
        return if outer { Some(Layout::Outer) } else { tiles.then_some(Layout::Tiles) };
    }
    if g.b.cs == 1 && g.c.cs == 1 {
        (g.m <= limits.rows).then_some(Layout::Rows)
    } else if g.b.rs == 1 && g.a.cs == 1 && g.k >= limits.min_dot && g.m <= limits.columns {
        Some(Layout::Columns)
    } else {
        None
    }
}

/// Most rows of A for a product that runs whole on one thread (one of the batched symbols'
/// products) with AVX-512. On attention's products these kernels replace the generated 128-bit GEMM that
/// the batched symbols gave them (~30 → 53–100 GFLOP/s in W10's step); against
/// `matrixmultiply` with hot caches (`cargo bench --bench kernels -- --stream`) they are 1.42×
/// on 64 × 64 · 64 × 32 and 0.84× on 64 × 32 · 32 × 64 (the copy of B).
pub const MAX_ROWS_WHOLE: i64 = 64;

/// Most rows of A for [`Layout::Rows`] run whole: 128 × 128 · 128 × 32 (attention's p·v at
/// T = 128, `cargo bench --bench batched`) took 0.83 ms per 64 products with
/// `matrixmultiply` and 0.56–0.61 ms with `Rows`, its backward the same either way; `Copied`
/// at 128 rows made that backward 15% slower, so it keeps [`MAX_ROWS_WHOLE`]. AlexNet's
/// Winograd products of 128 rows gain too (36 of 128 × 384 · 384 × 384: 16.0 → 14.2 ms per
/// W7 step); at 512 rows its 392- and 384-row products lost 5–40%.
pub const MAX_ROWS_WHOLE_ROWS: i64 = 128;

/// Most elements of a B that [`Layout::Copied`] copies (4 KiB of f32). In W10's train step
/// (one thread, `--profile`) `matrixmultiply` took its attention products with B transposed,
/// 64 × 32 · 32 × 64, in 7% less time than copying B for `Rows`, and in
/// `cargo bench --bench batched` 64 × 64 · 64 × 64 (1.60 against 1.78 ms per 256); at
/// 16 × 16 · 16 × 16 the copy wins (backward of 512 products 0.23 against 0.26–0.28 ms).
const MAX_COPIED: i64 = 1024;

/// Fewest multiply-adds of a product for which the batched symbols use `matrixmultiply` (or
/// a kernel here) rather than the generated GEMM the JIT passes for small products (128-bit
/// vectors): on the Zen 4 VM ~30 GFLOP/s on attention's 64 × 32 · 32 × 64, against ~85 for
/// `matrixmultiply`; on the AVX2 VM W10's six attention products took 7.7 ms per train step
/// in the generated GEMM and 5.0 ms in `matrixmultiply` (one thread, `--profile`).
pub const MIN_LIBRARY_MACS: i64 = 1 << 15;

/// Whether a batched symbol's product `g` runs faster in a library than in the generated
/// GEMM (see [`MIN_LIBRARY_MACS`]): on a CPU with AVX2 or AVX-512.
pub fn library_beats_generated<T: Copy>(g: &Gemm<T>) -> bool {
    Isa::detected().is_some() && g.m.saturating_mul(g.k).saturating_mul(g.n) >= MIN_LIBRARY_MACS
}

/// The kernel for `g` when it runs whole on one thread, on this CPU: [`whole_layout_for`]
/// its [`Isa::detected`].
pub fn whole_layout<T: Copy>(g: &Gemm<T>) -> Option<Layout> {
    Isa::detected().and_then(|isa| whole_layout_for(isa, g))
}

/// The kernel of `isa` for `g` when it runs whole on one thread (nothing cuts it, so any
/// kernel gives the same bits on any thread count): [`layout_for`]'s, with up to
/// [`Limits::whole_rows`] rows for [`Layout::Rows`] and [`Limits::whole`] for the others, or
/// [`Layout::Copied`] for a small column-major B.
pub fn whole_layout_for<T: Copy>(isa: Isa, g: &Gemm<T>) -> Option<Layout> {
    let limits = isa.limits();
    let a_len = g.m.checked_mul(g.k);
    if limits.tiles && g.m >= 1 && g.k >= 1 && g.n >= 1 && g.c.cs == 1 && a_len.is_some_and(|len| len <= MAX_TILES_A) {
        return Some(Layout::Tiles);
    }
    if !(1..=limits.whole_rows.max(limits.whole)).contains(&g.m) || g.k < 1 || g.n < 1 {
        return None;
    }
    // Small, and every gather offset (up to 15 columns) fits in i32.
    let small = limits.copied
        && g.k.checked_mul(g.n).is_some_and(|len| len <= MAX_COPIED)
        && g.b.cs.checked_mul(16).is_some_and(|far| i32::try_from(far).is_ok());
    // `layout_for` the same product with one row (so never `Outer`).
    let kernel = match layout_for(isa, &GemmArgs { m: 1, ..*g }) {
        Some(kernel) => kernel,
        None if g.b.rs == 1 && g.c.cs == 1 && small => Layout::Copied,
        None => return None,
    };
    let most = if kernel == Layout::Rows { limits.whole_rows } else { limits.whole };
    (g.m <= most).then_some(kernel)
}

/// Most elements of A for [`Layout::Tiles`]: each panel of B sweeps all of A, which should
/// stay in L2 (256 KiB of f32). On the AVX2 machine (one thread, 2¹⁵–2¹⁶ multiply-adds per
/// product and up, against `matrixmultiply`): 64 × 64 · 64 × 64 with B transposed (attention's
/// scores) 0.54×, its two gradients 0.6–0.85×; 128 × 128 · 128 × 32 0.66×; 128 × 256 ·
/// 256 × 256 0.88–0.98×; 512 products of 16 × 16 · 16 × 16 0.35× (`bench/RESULTS.md`).
pub const MAX_TILES_A: i64 = 1 << 16;

/// The k of the GEMM symbol's products with many rows that [`Layout::Tiles`] takes (with
/// [`Limits::tiles`]): a panel of B (k × 16 f32) fits in L1 at k ≤ 512. One thread, against
/// `matrixmultiply` (prototype, `bench/RESULTS.md`): 0.90–0.95× on 8192 × 256 · 256 × 256 with
/// B either way and on W10's dense layers (2048 × 128 · 128 × 512, 2048 × 512 · 512 × 128,
/// 2048 × 128 · 128 × 384). Shorter k were not measured.
pub const TILES_K: std::ops::RangeInclusive<i64> = 64..=512;

/// Fewest columns for the GEMM symbol's [`Layout::Tiles`]: a narrower C fills part of a panel.
pub const MIN_TILES_N: i64 = 32;

/// The vector instructions a kernel here is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// 512-bit vectors and mask registers (`avx512f`).
    Avx512,
    /// 256-bit vectors with FMA (`avx2`, `fma`): masks are vectors, and there are 16
    /// registers, so the tiles are smaller.
    Avx2,
}

impl Isa {
    /// The widest that this CPU runs, if any: the one the symbols use.
    pub fn detected() -> Option<Isa> {
        Isa::available().first().copied()
    }

    /// Every one this CPU runs, widest first (tests run each).
    #[cfg(target_arch = "x86_64")]
    pub fn available() -> Vec<Isa> {
        let mut isas = vec![];
        if std::is_x86_feature_detected!("avx512f") {
            isas.push(Isa::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            isas.push(Isa::Avx2);
        }
        isas
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn available() -> Vec<Isa> {
        vec![]
    }
}

/// f32 and f64 for [`gemm`].
pub trait Streamed: Copy {
    /// Columns `block` of C = alpha·A·B + beta·C by `layout`'s kernel (rows `block` for
    /// [`Layout::Outer`]).
    ///
    /// # Safety
    /// As for [`gemm`].
    unsafe fn stream(isa: Isa, layout: Layout, g: Gemm<Self>, block: Range<usize>);

    /// Columns of a tile of [`Layout::Rows`] on `isa`: two vectors.
    fn rows_width(isa: Isa) -> usize;
}

/// Columns `block` of C = alpha·A·B + beta·C (rows `block` for [`Layout::Outer`]), with B
/// read in place (see the module documentation).
///
/// # Safety
/// As for `netc_gemm_f32` (in `T`), `Some(layout)` is `layout(&g)` or `whole_layout(&g)`,
/// and `block` inside 0..n (0..m for [`Layout::Outer`]).
pub unsafe fn gemm<T: Streamed>(layout: Layout, g: Gemm<T>, block: Range<usize>) {
    let isa = Isa::detected().expect("`layout` streams nothing without AVX2 or AVX-512");
    // SAFETY: forwarded.
    unsafe { T::stream(isa, layout, g, block) }
}

/// [`gemm`] by the kernels for `isa` (tests and benchmarks run each ISA the CPU has).
///
/// # Safety
/// As for [`gemm`], and `isa` is in [`Isa::available`].
pub unsafe fn gemm_on<T: Streamed>(isa: Isa, layout: Layout, g: Gemm<T>, block: Range<usize>) {
    // SAFETY: forwarded.
    unsafe { T::stream(isa, layout, g, block) }
}

/// Defines the two kernels for one element type, in module `$module`, and implements
/// [`Streamed`] for `$t` with them (a macro, not generic code: every intrinsic is named per
/// element type).
#[cfg(target_arch = "x86_64")]
macro_rules! stream_kernels {
    (
        $module:ident, $t:ty, $feature:literal, lanes: $lanes:literal, $vector:ty, $mask:ty,
        tiles: [$mr:literal, $nv:literal, $or:literal, $cr:literal, $cc:literal],
        $setzero:path, $set1:path, $lanes_mask:path, $loadu:path, $maskz_loadu:path, $mask_storeu:path,
        $fmadd:path, $mul:path, $reduce_add:path, $gather:path
    ) => {
        mod $module {
            #[allow(unused_imports)]
            use std::arch::x86_64::*;
            use std::ops::Range;

            use super::{Gemm, FEW_TILES, KB};

            /// Lanes of a vector.
            const LANES: usize = $lanes;
            /// Vectors across a tile of [`rows`] (its width is `NV · LANES` columns).
            const NV: usize = $nv;
            /// Columns of a tile of [`rows`].
            pub const WIDTH: usize = NV * LANES;
            /// Rows of A per group in [`rows`]: MR × NV accumulators, NV vectors of B and a
            /// broadcast fit in the registers.
            const MR: usize = $mr;

            /// The mask of the first `n` lanes.
            #[target_feature(enable = $feature)]
            fn lanes(n: usize) -> $mask {
                $lanes_mask(n)
            }

            /// `p` advanced by `i` steps of `stride` elements.
            fn at(p: *const $t, i: usize, stride: i64) -> *const $t {
                p.wrapping_offset(i as isize * stride as isize)
            }

            /// acc[r] += A[a[r], p] · B[p, 0..NV·LANES] for p in `ps`, B's row p at `b + p·brs`,
            /// one FMA per p in order (the same bits however `ps` is cut into blocks). `FULL`:
            /// every lane of B is loaded, without masks (on AVX2 they would take registers
            /// from the accumulators, and `vmaskmov` is slower than a load).
            ///
            /// # Safety
            /// A[a[r], p] and the lanes of B's rows p that `masks` keep (all if `FULL`) are
            /// valid for reads.
            #[target_feature(enable = $feature)]
            unsafe fn block<const R: usize, const FULL: bool>(
                acc: &mut [[$vector; NV]; R],
                a: [*const $t; R],
                acs: i64,
                b: *const $t,
                brs: i64,
                ps: Range<usize>,
                masks: [$mask; NV],
            ) {
                let mut sum = *acc;
                for p in ps {
                    let row = at(b, p, brs);
                    let mut bv = [$setzero(); NV];
                    for v in 0..NV {
                        let at = row.wrapping_add(v * LANES);
                        // SAFETY: the caller's.
                        bv[v] = unsafe { if FULL { $loadu(at) } else { $maskz_loadu(masks[v], at) } };
                    }
                    for r in 0..R {
                        // SAFETY: the caller's.
                        let x = $set1(unsafe { *at(a[r], p, acs) });
                        for v in 0..NV {
                            sum[r][v] = $fmadd(x, bv[v], sum[r][v]);
                        }
                    }
                }
                *acc = sum;
            }

            /// [`block`] for the first `rows` (≤ MR) rows of a group: a group cut short by m
            /// (32 rows are 5 groups of 6 and one of 2 with AVX2) multiplies only its own rows.
            /// Each row's lanes get the same operations either way.
            ///
            /// # Safety
            /// As for [`block`], for the first `rows` rows.
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn group_block<const FULL: bool>(
                rows: usize,
                acc: &mut [[$vector; NV]; MR],
                a: [*const $t; MR],
                acs: i64,
                b: *const $t,
                brs: i64,
                ps: Range<usize>,
                masks: [$mask; NV],
            ) {
                /// `block` over the first R rows of the group, through accumulators of R rows.
                macro_rules! first {
                    ($r:literal) => {{
                        let mut part = [[$setzero(); NV]; $r];
                        let mut rows_a = [a[0]; $r];
                        for r in 0..$r {
                            part[r] = acc[r];
                            rows_a[r] = a[r];
                        }
                        // SAFETY: the caller's, for these rows.
                        unsafe { block::<$r, FULL>(&mut part, rows_a, acs, b, brs, ps, masks) };
                        acc[..$r].copy_from_slice(&part);
                    }};
                }
                match rows {
                    1 if MR > 1 => first!(1),
                    2 if MR > 2 => first!(2),
                    3 if MR > 3 => first!(3),
                    4 if MR > 4 => first!(4),
                    5 if MR > 5 => first!(5),
                    6 if MR > 6 => first!(6),
                    7 if MR > 7 => first!(7),
                    // SAFETY: the caller's.
                    _ => unsafe { block::<MR, FULL>(acc, a, acs, b, brs, ps, masks) },
                }
            }

            thread_local! {
                /// The accumulators of [`rows`] between blocks of k, one set per tile and
                /// group of rows (kept per thread, to allocate once).
                static SAVED: std::cell::RefCell<Vec<[[$vector; NV]; MR]>> = const { std::cell::RefCell::new(Vec::new()) };
            }

            /// [`super::Layout::Rows`]: columns `cols` of C, in tiles of MR × NV·LANES.
            ///
            /// The k axis is taken in blocks of KB rows, and each block sweeps every tile of
            /// `cols`: B is then read as KB sequential streams (along its rows), which the
            /// hardware prefetches, and a KB-row piece of a tile stays in L1 while the groups
            /// of rows of A pass over it. The accumulators wait in `SAVED` between blocks (a
            /// store and a load: exact).
            ///
            /// # Safety
            /// As for `super::gemm`, with B's and C's column stride 1 and m ≤ `MAX_ROWS_WHOLE`.
            #[target_feature(enable = $feature)]
            pub unsafe fn rows(g: Gemm<$t>, cols: Range<usize>) {
                // At most CHUNK tiles at a time, which bounds `SAVED` (256 KiB for 32 rows).
                let chunk = super::CHUNK * NV * LANES;
                if cols.end - cols.start > chunk {
                    for start in cols.clone().step_by(chunk) {
                        // SAFETY: a part of `cols`.
                        unsafe { rows(g, start..(start + chunk).min(cols.end)) };
                    }
                    return;
                }
                let (m, k) = (g.m as usize, g.k as usize);
                let groups = m.div_ceil(MR);
                let width = NV * LANES;
                let tiles = (cols.end - cols.start).div_ceil(width);
                // The lane masks of tile t's vectors: all set but in the last tile.
                let mask = |t: usize, v: usize| lanes((cols.end - cols.start).saturating_sub(t * width + v * LANES));
                // Taken out of the thread-local for the call (a closure would not inherit this
                // function's target features).
                let mut saved = SAVED.take();
                {
                    saved.clear();
                    saved.resize(tiles * groups, [[$setzero(); NV]; MR]);
                    // Few tiles (a small product): B is in L1 anyway, so one block of k saves
                    // the accumulators' trips through `saved`.
                    let kb = if tiles <= FEW_TILES { k } else { KB };
                    for p0 in (0..k).step_by(kb) {
                        let p1 = (p0 + kb).min(k);
                        for t in 0..tiles {
                            let j = cols.start + t * width;
                            for group in 0..groups {
                                // Rows past m re-read row m - 1 (in bounds) and are not stored.
                                let mut a = [g.a.ptr; MR];
                                for r in 0..MR {
                                    a[r] = at(g.a.ptr, (group * MR + r).min(m - 1), g.a.rs);
                                }
                                let slot = &mut saved[t * groups + group];
                                let b = at(g.b.ptr, 0, g.b.rs).wrapping_add(j);
                                let masks = std::array::from_fn(|v| mask(t, v));
                                // SAFETY: A[row, p] with row < m and p < k; the lanes of B's
                                // rows p that the masks keep are columns in `cols`.
                                unsafe {
                                    let rows = (m - group * MR).min(MR);
                                    if t + 1 < tiles || cols.end - j == width {
                                        group_block::<true>(rows, slot, a, g.a.cs, b, g.b.rs, p0..p1, masks)
                                    } else {
                                        group_block::<false>(rows, slot, a, g.a.cs, b, g.b.rs, p0..p1, masks)
                                    }
                                }
                            }
                        }
                    }
                    let (alpha, beta) = ($set1(g.alpha), $set1(g.beta));
                    for t in 0..tiles {
                        let j = cols.start + t * width;
                        for i in 0..m {
                            let c = at(g.c.ptr, i, g.c.rs).wrapping_add(j) as *mut $t;
                            for v in 0..NV {
                                let ab = $mul(alpha, saved[t * groups + i / MR][i % MR][v]);
                                let (c, mask) = (c.wrapping_add(v * LANES), mask(t, v));
                                // SAFETY: the masked lanes of C's row i are columns of `cols`;
                                // C is read only when beta is not 0.
                                unsafe {
                                    let out = if g.beta == 0.0 { ab } else { $fmadd(beta, $maskz_loadu(mask, c), ab) };
                                    $mask_storeu(c, mask, out);
                                }
                            }
                        }
                    }
                }
                SAVED.set(saved);
            }

            thread_local! {
                /// B's copy in rows for [`copied`] (kept per thread, to allocate once).
                static COPY: std::cell::RefCell<Vec<$t>> = const { std::cell::RefCell::new(Vec::new()) };
            }

            /// [`super::Layout::Copied`]: columns `cols` of C by [`rows`], after copying those
            /// columns of B into rows (the same values, so the same bits as `rows` on a
            /// row-major B).
            ///
            /// # Safety
            /// As for `super::gemm`, with C's column stride 1 and m ≤ `MAX_ROWS_WHOLE`.
            #[target_feature(enable = $feature)]
            pub unsafe fn copied(g: Gemm<$t>, cols: Range<usize>) {
                let (k, width) = (g.k as usize, cols.end - cols.start);
                let mut copy = COPY.take();
                copy.clear();
                copy.resize(k * width, 0.0);
                // Row p of the copy, LANES columns at a time, each a gather of B's elements
                // [p, j + l] at offsets l·cs (`whole_layout` checked that they fit in i32).
                for (p, row) in copy.chunks_exact_mut(width).enumerate() {
                    let from = at(g.b.ptr, p, g.b.rs);
                    for jj in (0..width).step_by(LANES) {
                        let mask = lanes(width - jj);
                        // SAFETY: the masked lanes are B[p, j] with j in `cols`, and row[jj..]
                        // of the copy.
                        unsafe {
                            let v = $gather(mask, at(from, cols.start + jj, g.b.cs), g.b.cs as i32);
                            $mask_storeu(row.as_mut_ptr().add(jj), mask, v);
                        }
                    }
                }
                // Column j of the copy's rows is at `j - cols.start`, as `rows` indexes them.
                let b = super::super::Matrix::new(copy.as_ptr().wrapping_sub(cols.start), width as i64, 1);
                // SAFETY: the copy holds B's columns `cols` row by row; the rest as the caller's.
                unsafe { rows(Gemm { b, ..g }, cols) };
                COPY.set(copy);
            }

            /// Rows of a tile of [`outer`].
            const OR: usize = $or;

            /// [`super::Layout::Outer`]: rows `rows` of C, in tiles of OR × NV·LANES over all
            /// of k, C's rows one after the other.
            ///
            /// # Safety
            /// As for `super::gemm`, with B's and C's column stride 1.
            #[target_feature(enable = $feature)]
            pub unsafe fn outer(g: Gemm<$t>, rows: Range<usize>) {
                let (k, n) = (g.k as usize, g.n as usize);
                let (alpha, beta) = ($set1(g.alpha), $set1(g.beta));
                for i in rows.clone().step_by(OR) {
                    // Rows past the block re-read its last one (in bounds), not stored.
                    let mut a = [g.a.ptr; OR];
                    for r in 0..OR {
                        a[r] = at(g.a.ptr, (i + r).min(rows.end - 1), g.a.rs);
                    }
                    for j in (0..n).step_by(NV * LANES) {
                        let mut mask = [lanes(0); NV];
                        for v in 0..NV {
                            mask[v] = lanes((n - j).saturating_sub(v * LANES));
                        }
                        let mut acc = [[$setzero(); NV]; OR];
                        let b = g.b.ptr.wrapping_add(j);
                        // SAFETY: A[row, p] with row in `rows` and p < k; the masked lanes are
                        // B[p, j..] below n.
                        unsafe {
                            if n - j >= NV * LANES {
                                block::<OR, true>(&mut acc, a, g.a.cs, b, g.b.rs, 0..k, mask)
                            } else {
                                block::<OR, false>(&mut acc, a, g.a.cs, b, g.b.rs, 0..k, mask)
                            }
                        }
                        for r in 0..OR.min(rows.end - i) {
                            let c = at(g.c.ptr, i + r, g.c.rs).wrapping_add(j) as *mut $t;
                            for v in 0..NV {
                                let ab = $mul(alpha, acc[r][v]);
                                let (c, mask) = (c.wrapping_add(v * LANES), mask[v]);
                                // SAFETY: the masked lanes of C's row i + r, below n; C is read
                                // only when beta is not 0.
                                unsafe {
                                    let out = if g.beta == 0.0 { ab } else { $fmadd(beta, $maskz_loadu(mask, c), ab) };
                                    $mask_storeu(c, mask, out);
                                }
                            }
                        }
                    }
                }
            }

            /// Rows of a tile of [`columns`].
            const CR: usize = $cr;
            /// Columns of a tile of [`columns`].
            const CC: usize = $cc;

            /// [`super::Layout::Columns`]: columns `cols` of C, in tiles of CR × CC dot
            /// products.
            ///
            /// # Safety
            /// As for `super::gemm`, with B's row stride and A's column stride 1.
            #[target_feature(enable = $feature)]
            pub unsafe fn columns(g: Gemm<$t>, cols: Range<usize>) {
                let (m, k) = (g.m as usize, g.k as usize);
                for j in (cols.start..cols.end).step_by(CC) {
                    // Columns past the block re-read its last one (in bounds), not stored.
                    let b: [*const $t; CC] = std::array::from_fn(|c| at(g.b.ptr, (j + c).min(cols.end - 1), g.b.cs));
                    for i in (0..m).step_by(CR) {
                        let a: [*const $t; CR] = std::array::from_fn(|r| at(g.a.ptr, (i + r).min(m - 1), g.a.rs));
                        let mut acc = [[$setzero(); CC]; CR];
                        // Whole vectors, then the lanes below k of the last one (masks would
                        // take registers on AVX2).
                        let whole = k - k % LANES;
                        for p in (0..whole).step_by(LANES) {
                            let mut bv = [$setzero(); CC];
                            for c in 0..CC {
                                // SAFETY: elements p..p + LANES ≤ k of a column of B.
                                bv[c] = unsafe { $loadu(b[c].wrapping_add(p)) };
                            }
                            for r in 0..CR {
                                // SAFETY: as above, of a row of A.
                                let av = unsafe { $loadu(a[r].wrapping_add(p)) };
                                for c in 0..CC {
                                    acc[r][c] = $fmadd(av, bv[c], acc[r][c]);
                                }
                            }
                        }
                        if whole < k {
                            let mask = lanes(k - whole);
                            let mut bv = [$setzero(); CC];
                            for c in 0..CC {
                                // SAFETY: the masked lanes are elements whole.. < k of a column of B.
                                bv[c] = unsafe { $maskz_loadu(mask, b[c].wrapping_add(whole)) };
                            }
                            for r in 0..CR {
                                // SAFETY: as above, of a row of A.
                                let av = unsafe { $maskz_loadu(mask, a[r].wrapping_add(whole)) };
                                for c in 0..CC {
                                    acc[r][c] = $fmadd(av, bv[c], acc[r][c]);
                                }
                            }
                        }
                        for r in 0..CR.min(m - i) {
                            for c in 0..CC.min(cols.end - j) {
                                let dot = $reduce_add(acc[r][c]);
                                let out = at(g.c.ptr, i + r, g.c.rs).wrapping_offset((j + c) as isize * g.c.cs as isize)
                                    as *mut $t;
                                // SAFETY: C[i + r, j + c] with i + r < m and j + c in `cols`.
                                unsafe {
                                    *out = if g.beta == 0.0 { g.alpha * dot } else { g.alpha * dot + g.beta * *out };
                                }
                            }
                        }
                    }
                }
            }
        }

    };
}

/// Implements [`Streamed`] for `$t` with the kernels of modules `$avx512` and `$avx2`.
#[cfg(target_arch = "x86_64")]
macro_rules! streamed {
    ($t:ty, $avx512:ident, $avx2:ident, $tiles:ident) => {
        impl Streamed for $t {
            unsafe fn stream(isa: Isa, layout: Layout, g: Gemm<$t>, block: Range<usize>) {
                // SAFETY: forwarded; the caller checked that the CPU runs `isa`.
                unsafe {
                    match (isa, layout) {
                        (Isa::Avx512, Layout::Rows) => $avx512::rows(g, block),
                        (Isa::Avx512, Layout::Columns) => $avx512::columns(g, block),
                        (Isa::Avx512, Layout::Copied) => $avx512::copied(g, block),
                        (Isa::Avx512, Layout::Outer) => $avx512::outer(g, block),
                        (Isa::Avx2, Layout::Rows) => $avx2::rows(g, block),
                        (Isa::Avx2, Layout::Columns) => $avx2::columns(g, block),
                        (Isa::Avx2, Layout::Copied) => $avx2::copied(g, block),
                        (Isa::Avx2, Layout::Outer) => $avx2::outer(g, block),
                        // AVX2 and FMA only: every CPU with AVX-512 has them.
                        (_, Layout::Tiles) => tiles::$tiles::product(g, block),
                    }
                }
            }

            fn rows_width(isa: Isa) -> usize {
                match isa {
                    Isa::Avx512 => $avx512::WIDTH,
                    Isa::Avx2 => $avx2::WIDTH,
                }
            }
        }
    };
}

// Tiles: AVX-512 has 32 registers (8 × 2 accumulators in `rows`, 4 × 4 in `columns`);
// AVX2 has 16 (6 × 2, and 3 × 3).
#[cfg(target_arch = "x86_64")]
stream_kernels!(
    f32_avx512, f32, "avx512f", lanes: 16, __m512, __mmask16, tiles: [8, 2, 4, 4, 4],
    _mm512_setzero_ps, _mm512_set1_ps, super::lanes::mask16, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps,
    _mm512_fmadd_ps, _mm512_mul_ps, _mm512_reduce_add_ps, super::lanes::gather_f32
);

#[cfg(target_arch = "x86_64")]
stream_kernels!(
    f64_avx512, f64, "avx512f", lanes: 8, __m512d, __mmask8, tiles: [8, 2, 4, 4, 4],
    _mm512_setzero_pd, _mm512_set1_pd, super::lanes::mask8, _mm512_loadu_pd, _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd,
    _mm512_fmadd_pd, _mm512_mul_pd, _mm512_reduce_add_pd, super::lanes::gather_f64
);

#[cfg(target_arch = "x86_64")]
stream_kernels!(
    f32_avx2, f32, "avx2,fma", lanes: 8, __m256, __m256i, tiles: [6, 2, 4, 3, 3],
    _mm256_setzero_ps, _mm256_set1_ps, super::lanes::avx2::lanes_ps, _mm256_loadu_ps, super::lanes::avx2::load_ps, super::lanes::avx2::store_ps,
    _mm256_fmadd_ps, _mm256_mul_ps, super::lanes::avx2::reduce_add_ps, super::lanes::avx2::gather_ps
);

#[cfg(target_arch = "x86_64")]
stream_kernels!(
    f64_avx2, f64, "avx2,fma", lanes: 4, __m256d, __m256i, tiles: [6, 2, 4, 3, 3],
    _mm256_setzero_pd, _mm256_set1_pd, super::lanes::avx2::lanes_pd, _mm256_loadu_pd, super::lanes::avx2::load_pd, super::lanes::avx2::store_pd,
    _mm256_fmadd_pd, _mm256_mul_pd, super::lanes::avx2::reduce_add_pd, super::lanes::avx2::gather_pd
);

#[cfg(target_arch = "x86_64")]
streamed!(f32, f32_avx512, f32_avx2, f32_avx2);

#[cfg(target_arch = "x86_64")]
streamed!(f64, f64_avx512, f64_avx2, f64_avx2);

#[cfg(not(target_arch = "x86_64"))]
impl<T: Copy> Streamed for T {
    unsafe fn stream(_: Isa, _: Layout, _: Gemm<T>, _: Range<usize>) {
        unreachable!("`layout` streams nothing without AVX2 or AVX-512")
    }

    fn rows_width(_: Isa) -> usize {
        unreachable!("no `Isa` is detected without AVX2 or AVX-512")
    }
}
