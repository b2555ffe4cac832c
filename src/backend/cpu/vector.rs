//! f32 vector operations per instruction set, shared by our CPU kernels (skinny.rs: dense
//! decode; quant.rs: fused dequantize-dot, which adds its block access on top). A kernel is
//! written once over `F32s` and instantiated inside a `#[target_feature]` function per
//! instruction set, so the operations inline as that set's instructions. Written by hand:
//! the portable SIMD crates either need nightly (`std::simd`) or hide which instruction
//! set a function is compiled for, which the run-time dispatch here depends on.

/// # Safety
/// Every operation may use its instruction set's intrinsics: call them only from code
/// compiled for that set (inside its `#[target_feature]` function) on a CPU that has it,
/// and `load` only where `LANES` floats can be read.
#[allow(clippy::missing_safety_doc)]
pub trait F32s {
    type V: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(v: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` bf16 values from `p` widened to f32 (a 16-bit shift, exact).
    unsafe fn load_bf16(p: *const u16) -> Self::V;
    /// `LANES` f16 values from `p` widened to f32 (F16C on x86, exact).
    unsafe fn load_f16(p: *const u16) -> Self::V;
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn hsum(v: Self::V) -> f32;
}

/// Portable code: plain multiply-add, never a libm `fmaf` call.
pub struct Scalar;
impl F32s for Scalar {
    type V = f32;
    const LANES: usize = 1;
    unsafe fn zero() -> f32 {
        0.0
    }
    unsafe fn splat(v: f32) -> f32 {
        v
    }
    unsafe fn load(p: *const f32) -> f32 {
        *p
    }
    unsafe fn load_bf16(p: *const u16) -> f32 {
        f32::from_bits((*p as u32) << 16)
    }
    unsafe fn load_f16(p: *const u16) -> f32 {
        half::f16::from_bits(*p).to_f32()
    }
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    unsafe fn hsum(v: f32) -> f32 {
        v
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{f16_at, Avx2, Avx512};

/// How far ahead of the bytes being read the decode kernels prefetch W into L2. The
/// hardware prefetcher alone left the dense decode loop well short of the memory's read
/// rate on a 2-core Xeon VM: the dot products and the loads took turns instead of
/// overlapping. 4.6-37 KB ahead all gave the same gain in a standalone probe (M = 4,
/// 4x49152x576 f32: 6.7 -> 4.7 ms); the middle is taken.
pub const PREFETCH_AHEAD: usize = 16 << 10;

/// Asks for the lines of the `bytes` bytes `PREFETCH_AHEAD` past `p` to be brought into
/// L2, but none at or past `end` (the end of what this job reads: on small weights that
/// sit in cache, lines wasted past it would cost more than the prefetch gains). A hint
/// only, hence raw address arithmetic; no-op off x86-64.
#[inline(always)]
pub fn prefetch_ahead(p: *const u8, bytes: usize, end: *const u8) {
    let from = p as usize + PREFETCH_AHEAD;
    let bytes = bytes.min((end as usize).saturating_sub(from));
    #[cfg(target_arch = "x86_64")]
    for line in (0..bytes).step_by(64) {
        // SAFETY: PREFETCHT1 (SSE, part of x86-64) reads nothing architecturally and
        // cannot fault, whatever the address.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>((from + line) as *const i8) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (from, bytes);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::F32s;
    use std::arch::x86_64::*;

    /// The f16 at `p` (unaligned) as f32, for block scales.
    ///
    /// # Safety
    /// Two bytes must be readable at `p`; call only from code compiled with F16C on a CPU
    /// that has it.
    #[inline(always)]
    pub unsafe fn f16_at(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u16).read_unaligned() as i32)))
    }

    pub struct Avx512;
    impl F32s for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m512 {
            _mm512_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn load_bf16(p: *const u16) -> __m512 {
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i))))
        }
        #[inline(always)]
        unsafe fn load_f16(p: *const u16) -> __m512 {
            _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn hsum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
    }

    pub struct Avx2;
    impl F32s for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m256 {
            _mm256_set1_ps(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn load_bf16(p: *const u16) -> __m256 {
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i))))
        }
        #[inline(always)]
        unsafe fn load_f16(p: *const u16) -> __m256 {
            _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            let hi = _mm256_extractf128_ps(v, 1);
            let s = _mm_add_ps(_mm256_castps256_ps128(v), hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }
    }
}
