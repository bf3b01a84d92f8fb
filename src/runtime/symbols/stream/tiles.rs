//! [`super::Layout::Tiles`]: small products run whole (the batched symbols' attention
//! products) and the GEMM symbol's products with many rows and a moderate k, with AVX2 and
//! FMA. B is taken in panels of 16 columns (8 in f64): in place
//! when its rows are contiguous and all of it fits in L1, else copied into a panel of k
//! contiguous rows (a column-major B by 8 × 8 transposes in registers). Each panel meets
//! every row of A, 6 rows at a time, in 12 accumulators over all of k: per p two vector loads
//! of the panel and six broadcasts of A's column p straight from memory (a broadcast from a
//! register would take the shuffle port that Zen shares with one FMA pipe).
//!
//! Why: on the 2-core AMD EPYC (Zen 3, AVX2) `matrixmultiply` packs both operands of each of
//! attention's 64 × 64 · 64 × 64 products and ran them at 45–50 GFLOP/s, PyTorch at 61–65;
//! this kernel at 75–83 (256 of them, one thread, in a prototype of this file).
//!
//! Determinism: every element of C is one chain of FMAs over p in order, then alpha·sum
//! (+ beta·C), the same in a whole tile, a tile cut short by m or n, and from a copied or an
//! in-place panel: a product cut into row blocks anywhere gives the bits of one call (the GEMM
//! symbol cuts it so among threads: each reads its own rows of A).

/// Most elements of B read in place (its rows contiguous): beyond L1 (32 KiB), rows a power
/// of two apart fall into few cache sets, so a panel is copied instead.
const IN_PLACE_BYTES: usize = 32 << 10;

/// Rows of A that sweep the panels together: a block of A (up to 128 × 512 f32, 256 KiB)
/// stays in L2 while every panel meets it. One thread, against `matrixmultiply`, blocks of
/// 96 and 192 rows: 0.90–0.95× on 8192 × 256 · 256 × 256 and W10's dense layers.
const ROW_BLOCK: usize = 128;

/// Most elements of B copied at once into panels (4 MiB of f32), when several blocks of rows
/// would otherwise copy each panel again: in W11's input projection (2048 × 128 · 128 × 1024)
/// the copies per block were ~6% of the product.
const MOST_PACKED: usize = 1 << 20;

/// Defines the kernel for one element type in module `$module`.
#[cfg(target_arch = "x86_64")]
macro_rules! tile_kernels {
    (
        $module:ident, $t:ty, lanes: $lanes:literal, $vector:ty,
        $setzero:path, $set1:path, $broadcast:path, $loadu:path, $storeu:path, $fmadd:path, $mul:path,
        $transpose:path
    ) => {
        pub mod $module {
            #[allow(unused_imports)]
            use std::arch::x86_64::*;
            use std::ops::Range;

            use super::super::Gemm;

            /// Lanes of a vector.
            const LANES: usize = $lanes;
            /// Columns of a panel and of a tile: two vectors.
            pub const WIDTH: usize = 2 * LANES;
            /// Rows of a tile: 6 × 2 accumulators, two vectors of B and a broadcast fit in
            /// AVX2's 16 registers.
            const MR: usize = 6;

            /// `p` advanced by `i` steps of `stride` elements.
            fn at(p: *const $t, i: usize, stride: i64) -> *const $t {
                p.wrapping_offset(i as isize * stride as isize)
            }

            /// C[0..R, 0..w] = alpha · A[0..R, 0..k] · panel + beta · C, where A[r, p] is at
            /// `a + r·ars + p·acs`, the panel's row p at `b + p·bs` (WIDTH elements, read
            /// whole), C[r, j] at `c + r·crs + j`. C is read only when beta is not 0.
            ///
            /// # Safety
            /// Those elements of A, the panel's k rows and C's R rows of w ≤ WIDTH columns
            /// are valid (C for writes).
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile<const R: usize>(
                k: usize,
                (a, ars, acs): (*const $t, i64, i64),
                (b, bs): (*const $t, i64),
                (c, crs): (*mut $t, i64),
                w: usize,
                alpha: $t,
                beta: $t,
            ) {
                let mut acc = [[$setzero(); 2]; R];
                let (mut ap, mut bp) = (a, b);
                for _ in 0..k {
                    // SAFETY: the panel's row p and A's column p (the caller's).
                    unsafe {
                        let b0 = $loadu(bp);
                        let b1 = $loadu(bp.wrapping_add(LANES));
                        for r in 0..R {
                            let x = $broadcast(&*at(ap, r, ars));
                            acc[r][0] = $fmadd(x, b0, acc[r][0]);
                            acc[r][1] = $fmadd(x, b1, acc[r][1]);
                        }
                    }
                    bp = at(bp, 1, bs);
                    ap = at(ap, 1, acs);
                }
                let (alpha_v, beta_v) = ($set1(alpha), $set1(beta));
                for r in 0..R {
                    let row = at(c, r, crs) as *mut $t;
                    let out = [$mul(alpha_v, acc[r][0]), $mul(alpha_v, acc[r][1])];
                    // SAFETY: C's row r, columns below w (the caller's).
                    unsafe {
                        if w == WIDTH {
                            for v in 0..2 {
                                let at = row.add(v * LANES);
                                let out = if beta == 0.0 { out[v] } else { $fmadd(beta_v, $loadu(at), out[v]) };
                                $storeu(at, out);
                            }
                        } else {
                            // The same operations lane by lane: alpha·sum rounded, then one FMA.
                            let mut lanes = [0.0; WIDTH];
                            $storeu(lanes.as_mut_ptr(), out[0]);
                            $storeu(lanes.as_mut_ptr().add(LANES), out[1]);
                            for (j, &scaled) in lanes[..w].iter().enumerate() {
                                let at = row.add(j);
                                *at = if beta == 0.0 { scaled } else { beta.mul_add(*at, scaled) };
                            }
                        }
                    }
                }
            }

            /// Rows `rows` of A times one panel: tiles of MR rows, then one of the rest.
            ///
            /// # Safety
            /// As for [`tile`], for those rows of A and C.
            #[target_feature(enable = "avx2,fma")]
            unsafe fn panel_product(g: &Gemm<$t>, rows: Range<usize>, panel: (*const $t, i64), j: usize, w: usize) {
                let (m, k) = (rows.end, g.k as usize);
                let at_row = |i: usize| {
                    let a = (at(g.a.ptr, i, g.a.rs), g.a.rs, g.a.cs);
                    let c = (at(g.c.ptr, i, g.c.rs).wrapping_add(j) as *mut $t, g.c.rs);
                    (a, c)
                };
                let mut i = rows.start;
                while i + MR <= m {
                    let (a, c) = at_row(i);
                    // SAFETY: rows i..i + MR < m (the caller's).
                    unsafe { tile::<MR>(k, a, panel, c, w, g.alpha, g.beta) };
                    i += MR;
                }
                let (a, c) = at_row(i);
                // SAFETY: rows i..m (the caller's).
                unsafe {
                    match m - i {
                        0 => {}
                        1 => tile::<1>(k, a, panel, c, w, g.alpha, g.beta),
                        2 => tile::<2>(k, a, panel, c, w, g.alpha, g.beta),
                        3 => tile::<3>(k, a, panel, c, w, g.alpha, g.beta),
                        4 => tile::<4>(k, a, panel, c, w, g.alpha, g.beta),
                        _ => tile::<5>(k, a, panel, c, w, g.alpha, g.beta),
                    }
                }
            }

            /// Copies B's columns j..j + w (w ≤ WIDTH) into `panel` (k rows of WIDTH, zero
            /// past w).
            ///
            /// # Safety
            /// B's k rows of those columns are valid for reads.
            #[target_feature(enable = "avx2,fma")]
            unsafe fn pack(g: &Gemm<$t>, j: usize, w: usize, panel: &mut [$t]) {
                let k = g.k as usize;
                let b = |p: usize, jj: usize| at(at(g.b.ptr, p, g.b.rs), j + jj, g.b.cs);
                if g.b.cs == 1 && w == WIDTH {
                    for (p, row) in panel.chunks_exact_mut(WIDTH).enumerate() {
                        // SAFETY: B's row p, columns j..j + WIDTH.
                        unsafe { std::ptr::copy_nonoverlapping(b(p, 0), row.as_mut_ptr(), WIDTH) };
                    }
                    return;
                }
                let mut p0 = 0;
                if g.b.rs == 1 && w == WIDTH {
                    // Columns contiguous: LANES × LANES blocks turned in registers.
                    while p0 + LANES <= k {
                        for half in 0..2 {
                            let to = panel[p0 * WIDTH + half * LANES..].as_mut_ptr();
                            // SAFETY: B[p0.., j + half·LANES..], LANES of each, and the
                            // panel's rows p0..p0 + LANES.
                            unsafe { $transpose(b(p0, half * LANES), g.b.cs, to, WIDTH) };
                        }
                        p0 += LANES;
                    }
                }
                for (p, row) in panel.chunks_exact_mut(WIDTH).enumerate().skip(p0) {
                    for (jj, out) in row.iter_mut().enumerate() {
                        // SAFETY: B[p, j + jj] with jj < w.
                        *out = if jj < w { unsafe { *b(p, jj) } } else { 0.0 };
                    }
                }
            }

            thread_local! {
                /// Copied panels (kept per thread, to allocate once).
                static PANEL: std::cell::RefCell<Vec<$t>> = const { std::cell::RefCell::new(Vec::new()) };
            }

            /// Rows `block` of C = alpha·A·B + beta·C, a panel at a time.
            ///
            /// # Safety
            /// As for `super::super::gemm`, with C's column stride 1, on a CPU with AVX2 and FMA.
            #[target_feature(enable = "avx2,fma")]
            pub unsafe fn product(g: Gemm<$t>, block: Range<usize>) {
                let cols = 0..g.n.max(0) as usize;
                let k = g.k.max(0) as usize;
                let g = Gemm { k: k as i64, ..g };
                let bytes = (k as u128) * (g.b.rs.unsigned_abs() as u128) * (std::mem::size_of::<$t>() as u128);
                let in_place = g.b.cs == 1 && bytes <= super::IN_PLACE_BYTES as u128;
                let panels = (cols.end - cols.start).div_ceil(WIDTH);
                // Several blocks of rows: every panel copied once, up front, if they are not
                // too many; else each again for each block.
                let copies = panels.saturating_mul(k).saturating_mul(WIDTH);
                let once = block.len() > super::ROW_BLOCK && k > 0 && copies <= super::MOST_PACKED;
                // Every element of a panel is written by `pack` before it is read: the buffer
                // only grows.
                let mut buffer = PANEL.take();
                let len = if once { panels } else { 1 } * k * WIDTH;
                if buffer.len() < len {
                    buffer.resize(len, 0.0);
                }
                if once {
                    for (q, panel) in buffer[..len].chunks_exact_mut(k * WIDTH).enumerate() {
                        let j = cols.start + q * WIDTH;
                        // SAFETY: B's columns j.. in `cols` (the caller's).
                        unsafe { pack(&g, j, (cols.end - j).min(WIDTH), panel) };
                    }
                }
                for i in block.clone().step_by(super::ROW_BLOCK) {
                    let rows = i..(i + super::ROW_BLOCK).min(block.end);
                    for (q, j) in cols.clone().step_by(WIDTH).enumerate() {
                        let w = (cols.end - j).min(WIDTH);
                        // SAFETY: B's columns j..j + w below n, and those columns of C's rows
                        // in `block` (the caller's).
                        unsafe {
                            if in_place && w == WIDTH {
                                panel_product(&g, rows.clone(), (g.b.ptr.wrapping_add(j), g.b.rs), j, w);
                            } else if once {
                                let panel = buffer.as_ptr().add(q * k * WIDTH);
                                panel_product(&g, rows.clone(), (panel, WIDTH as i64), j, w);
                            } else {
                                pack(&g, j, w, &mut buffer[..k * WIDTH]);
                                panel_product(&g, rows.clone(), (buffer.as_ptr(), WIDTH as i64), j, w);
                            }
                        }
                    }
                }
                PANEL.set(buffer);
            }
        }
    };
}

/// The transpose of the 8 × 8 block of f32 at `from` (rows `ld` apart) to `to` (rows `to_ld`
/// apart).
///
/// # Safety
/// Both blocks are valid (`to` for writes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_ps(from: *const f32, ld: i64, to: *mut f32, to_ld: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's.
    let r: [__m256; 8] =
        std::array::from_fn(|i| unsafe { _mm256_loadu_ps(from.wrapping_offset(i as isize * ld as isize)) });
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let s = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    let out = [
        _mm256_permute2f128_ps::<0x20>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x20>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x20>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x20>(s[3], s[7]),
        _mm256_permute2f128_ps::<0x31>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x31>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x31>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x31>(s[3], s[7]),
    ];
    for (i, v) in out.into_iter().enumerate() {
        // SAFETY: the caller's.
        unsafe { _mm256_storeu_ps(to.add(i * to_ld), v) };
    }
}

/// The transpose of the 4 × 4 block of f64 at `from` (rows `ld` apart) to `to` (rows `to_ld`
/// apart).
///
/// # Safety
/// Both blocks are valid (`to` for writes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_pd(from: *const f64, ld: i64, to: *mut f64, to_ld: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's.
    let r: [__m256d; 4] =
        std::array::from_fn(|i| unsafe { _mm256_loadu_pd(from.wrapping_offset(i as isize * ld as isize)) });
    let t = [
        _mm256_unpacklo_pd(r[0], r[1]),
        _mm256_unpackhi_pd(r[0], r[1]),
        _mm256_unpacklo_pd(r[2], r[3]),
        _mm256_unpackhi_pd(r[2], r[3]),
    ];
    let out = [
        _mm256_permute2f128_pd::<0x20>(t[0], t[2]),
        _mm256_permute2f128_pd::<0x20>(t[1], t[3]),
        _mm256_permute2f128_pd::<0x31>(t[0], t[2]),
        _mm256_permute2f128_pd::<0x31>(t[1], t[3]),
    ];
    for (i, v) in out.into_iter().enumerate() {
        // SAFETY: the caller's.
        unsafe { _mm256_storeu_pd(to.add(i * to_ld), v) };
    }
}

#[cfg(target_arch = "x86_64")]
tile_kernels!(
    f32_avx2, f32, lanes: 8, __m256,
    _mm256_setzero_ps, _mm256_set1_ps, _mm256_broadcast_ss, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
    _mm256_mul_ps, super::transpose_ps
);

#[cfg(target_arch = "x86_64")]
tile_kernels!(
    f64_avx2, f64, lanes: 4, __m256d,
    _mm256_setzero_pd, _mm256_set1_pd, _mm256_broadcast_sd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd,
    _mm256_mul_pd, super::transpose_pd
);
