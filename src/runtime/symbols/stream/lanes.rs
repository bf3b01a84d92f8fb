//! The vector primitives the kernels of [`super`] need beyond plain intrinsics: AVX-512 lane
//! masks and gathers, and AVX2's stand-ins for AVX-512's masked instructions.

/// The mask of the first `n` of 16 lanes.
pub(super) fn mask16(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        ((1u32 << n) - 1) as u16
    }
}

/// The mask of the first `n` of 8 lanes.
pub(super) fn mask8(n: usize) -> u8 {
    mask16(n.min(8)) as u8
}

/// AVX2's stand-ins for what AVX-512 has as instructions: lane masks (vectors of all-ones
/// lanes), masked loads and stores (`vmaskmov`, which does not touch masked-off lanes),
/// reductions and masked gathers.
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    /// The mask of the first `n` of 8 f32 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub fn lanes_ps(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// The mask of the first `n` of 4 f64 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub fn lanes_pd(n: usize) -> __m256i {
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(n.min(4) as i64), _mm256_setr_epi64x(0, 1, 2, 3))
    }

    /// The lanes of `mask` from `p`, the others zero.
    ///
    /// # Safety
    /// The masked lanes are valid for reads.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn load_ps(mask: __m256i, p: *const f32) -> __m256 {
        // SAFETY: the caller's.
        unsafe { _mm256_maskload_ps(p, mask) }
    }

    /// As [`load_ps`].
    ///
    /// # Safety
    /// As for [`load_ps`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn load_pd(mask: __m256i, p: *const f64) -> __m256d {
        // SAFETY: the caller's.
        unsafe { _mm256_maskload_pd(p, mask) }
    }

    /// The lanes of `mask` of `v` to `p`.
    ///
    /// # Safety
    /// The masked lanes are valid for writes.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn store_ps(p: *mut f32, mask: __m256i, v: __m256) {
        // SAFETY: the caller's.
        unsafe { _mm256_maskstore_ps(p, mask, v) }
    }

    /// As [`store_ps`].
    ///
    /// # Safety
    /// As for [`store_ps`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn store_pd(p: *mut f64, mask: __m256i, v: __m256d) {
        // SAFETY: the caller's.
        unsafe { _mm256_maskstore_pd(p, mask, v) }
    }

    /// The sum of the lanes (halves, then quarters, then pairs: a fixed order).
    #[target_feature(enable = "avx2,fma")]
    pub fn reduce_add_ps(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }

    /// The sum of the lanes (halves, then pairs).
    #[target_feature(enable = "avx2,fma")]
    pub fn reduce_add_pd(v: __m256d) -> f64 {
        let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
        _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
    }

    /// The lanes of `mask` of `base[l·stride]` (l < 8), the others zero.
    ///
    /// # Safety
    /// Every masked element is valid for reads, and 7·stride fits in i32.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather_ps(mask: __m256i, base: *const f32, stride: i32) -> __m256 {
        let index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
        // SAFETY: the caller's.
        unsafe { _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), base, index, _mm256_castsi256_ps(mask)) }
    }

    /// The lanes of `mask` of `base[l·stride]` (l < 4), the others zero.
    ///
    /// # Safety
    /// As for [`gather_ps`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather_pd(mask: __m256i, base: *const f64, stride: i32) -> __m256d {
        let index = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(stride));
        // SAFETY: the caller's.
        unsafe { _mm256_mask_i32gather_pd::<8>(_mm256_setzero_pd(), base, index, _mm256_castsi256_pd(mask)) }
    }
}

/// The lanes of `mask` of `base[l·stride]` (l < 16), the others zero.
///
/// # Safety
/// Every masked element is valid for reads, and 15·stride fits in i32.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gather_f32(
    mask: std::arch::x86_64::__mmask16,
    base: *const f32,
    stride: i32,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let index = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(stride),
    );
    // SAFETY: the caller's.
    unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, index, base) }
}

/// The lanes of `mask` of `base[l·stride]` (l < 8), the others zero.
///
/// # Safety
/// As for [`gather_f32`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gather_f64(
    mask: std::arch::x86_64::__mmask8,
    base: *const f64,
    stride: i32,
) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
    // SAFETY: the caller's.
    unsafe { _mm512_mask_i32gather_pd::<8>(_mm512_setzero_pd(), mask, index, base) }
}
