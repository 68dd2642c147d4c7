//! [`Lanes`] on AVX2 + FMA: two ymm registers per logical vector, `[lanes 0..n/2, lanes n/2..n]`.

use super::Lanes;
use core::arch::x86_64::{__m128i, __m256, __m256d, __m256i};
use pulp::x86::V3;

/// Applies a 256-bit operation to both halves.
/// (A macro rather than a closure: a closure would be a separate function without the target
/// features, and the intrinsics could fail to inline into it.)
macro_rules! halves {
    ($s:ident.$t:ident.$f:ident, $a:ident) => {
        [$s.$t.$f($a[0]), $s.$t.$f($a[1])]
    };
    ($s:ident.$t:ident.$f:ident, $a:ident, $b:ident) => {
        [$s.$t.$f($a[0], $b[0]), $s.$t.$f($a[1], $b[1])]
    };
    ($s:ident.$t:ident.$f:ident, $a:ident, $b:ident, $c:ident) => {
        [$s.$t.$f($a[0], $b[0], $c[0]), $s.$t.$f($a[1], $b[1], $c[1])]
    };
}

/// Helpers of the AVX2 implementation.
trait V3Ext {
    fn count(self, n: u32) -> __m128i;
    fn interleave_half(self, a: __m256d, b: __m256d) -> [__m256d; 2];
}

impl V3Ext for V3 {
    /// A shift count in the low lane of an xmm register; a constant folds into an immediate.
    #[inline(always)]
    fn count(self, n: u32) -> __m128i {
        self.sse2._mm_set1_epi64x(n as i64)
    }
    #[inline(always)]
    fn interleave_half(self, a: __m256d, b: __m256d) -> [__m256d; 2] {
        let l = self.avx._mm256_unpacklo_pd(a, b);
        let h = self.avx._mm256_unpackhi_pd(a, b);
        [self.avx._mm256_permute2f128_pd::<0x20>(l, h), self.avx._mm256_permute2f128_pd::<0x31>(l, h)]
    }
}

impl Lanes for V3 {
    type U = [__m256i; 2];
    type F = [__m256; 2];
    type D = [__m256d; 2];

    #[inline(always)]
    fn and(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self.avx2._mm256_and_si256, a, b)
    }
    #[inline(always)]
    fn or(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self.avx2._mm256_or_si256, a, b)
    }
    #[inline(always)]
    fn xor(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self.avx2._mm256_xor_si256, a, b)
    }

    #[inline(always)]
    fn xor3(self, a: Self::U, b: Self::U, c: Self::U) -> Self::U {
        self.xor(self.xor(a, b), c)
    }
    #[inline(always)]
    fn xor_and(self, a: Self::U, b: Self::U, c: Self::U) -> Self::U {
        self.xor(a, self.and(b, c))
    }

    #[inline(always)]
    fn u64_splat(self, x: u64) -> Self::U {
        let v = self.avx._mm256_set1_epi64x(x as i64);
        [v, v]
    }
    #[inline(always)]
    fn u64_load(self, x: &[u64; 8]) -> Self::U {
        // SAFETY: `x` is 64 readable bytes; unaligned loads.
        unsafe {
            let p = x.as_ptr().cast::<__m256i>();
            [self.avx._mm256_loadu_si256(p), self.avx._mm256_loadu_si256(p.add(1))]
        }
    }
    #[inline(always)]
    fn u64_store(self, x: &mut [u64; 8], v: Self::U) {
        // SAFETY: `x` is 64 writable bytes; unaligned stores.
        unsafe {
            let p = x.as_mut_ptr().cast::<__m256i>();
            self.avx._mm256_storeu_si256(p, v[0]);
            self.avx._mm256_storeu_si256(p.add(1), v[1]);
        }
    }
    #[inline(always)]
    fn u64_add(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self.avx2._mm256_add_epi64, a, b)
    }
    #[inline(always)]
    fn u64_shl<const N: u32>(self, a: Self::U) -> Self::U {
        let c = self.count(N);
        [self.avx2._mm256_sll_epi64(a[0], c), self.avx2._mm256_sll_epi64(a[1], c)]
    }
    #[inline(always)]
    fn u64_shr<const N: u32>(self, a: Self::U) -> Self::U {
        let c = self.count(N);
        [self.avx2._mm256_srl_epi64(a[0], c), self.avx2._mm256_srl_epi64(a[1], c)]
    }
    #[inline(always)]
    fn u64_rotl<const N: u32>(self, a: Self::U) -> Self::U {
        let l = self.u64_shl::<N>(a);
        let r = [
            self.avx2._mm256_srl_epi64(a[0], self.count(64 - N)),
            self.avx2._mm256_srl_epi64(a[1], self.count(64 - N)),
        ];
        self.or(l, r)
    }

    #[inline(always)]
    fn u32_splat(self, x: u32) -> Self::U {
        let v = self.avx._mm256_set1_epi32(x as i32);
        [v, v]
    }
    #[inline(always)]
    fn u32_add(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self.avx2._mm256_add_epi32, a, b)
    }
    #[inline(always)]
    fn u32_shl<const N: u32>(self, a: Self::U) -> Self::U {
        let c = self.count(N);
        [self.avx2._mm256_sll_epi32(a[0], c), self.avx2._mm256_sll_epi32(a[1], c)]
    }
    #[inline(always)]
    fn u32_shr<const N: u32>(self, a: Self::U) -> Self::U {
        let c = self.count(N);
        [self.avx2._mm256_srl_epi32(a[0], c), self.avx2._mm256_srl_epi32(a[1], c)]
    }

    #[inline(always)]
    fn f32_splat(self, x: f32) -> Self::F {
        let v = self.avx._mm256_set1_ps(x);
        [v, v]
    }
    #[inline(always)]
    fn f32_load(self, x: &[f32; 16]) -> Self::F {
        // SAFETY: `x` is 16 readable f32.
        unsafe { [self.avx._mm256_loadu_ps(x.as_ptr()), self.avx._mm256_loadu_ps(x.as_ptr().add(8))] }
    }
    #[inline(always)]
    fn f32_store(self, x: &mut [f32; 16], v: Self::F) {
        // SAFETY: `x` is 16 writable f32.
        unsafe {
            self.avx._mm256_storeu_ps(x.as_mut_ptr(), v[0]);
            self.avx._mm256_storeu_ps(x.as_mut_ptr().add(8), v[1]);
        }
    }
    #[inline(always)]
    fn f32_add(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(self.avx._mm256_add_ps, a, b)
    }
    #[inline(always)]
    fn f32_sub(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(self.avx._mm256_sub_ps, a, b)
    }
    #[inline(always)]
    fn f32_mul(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(self.avx._mm256_mul_ps, a, b)
    }
    #[inline(always)]
    fn f32_fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F {
        halves!(self.fma._mm256_fmadd_ps, a, b, c)
    }
    #[inline(always)]
    fn f32_sqrt(self, a: Self::F) -> Self::F {
        halves!(self.avx._mm256_sqrt_ps, a)
    }
    #[inline(always)]
    fn f32_from_bits(self, a: Self::U) -> Self::F {
        halves!(self.avx._mm256_castsi256_ps, a)
    }
    #[inline(always)]
    fn f32_to_bits(self, a: Self::F) -> Self::U {
        halves!(self.avx._mm256_castps_si256, a)
    }
    #[inline(always)]
    fn f32_from_u32(self, a: Self::U) -> Self::F {
        // AVX2 has no unsigned conversion: hi·2¹⁶ + lo is exact inside the fma, so its single
        // rounding gives the correctly rounded value, as `vcvtudq2ps` does.
        let hi = self.f32_from_i32(self.u32_shr::<16>(a));
        let lo = self.f32_from_i32(self.and(a, self.u32_splat(0xffff)));
        self.f32_fma(hi, self.f32_splat(65536.0), lo)
    }
    #[inline(always)]
    fn f32_from_i32(self, a: Self::U) -> Self::F {
        halves!(self.avx._mm256_cvtepi32_ps, a)
    }
    #[inline(always)]
    fn f32_select_bit<const B: u32>(self, mask: Self::U, a: Self::F, b: Self::F) -> Self::F {
        // `blendv` reads the sign bit: move bit B there.
        let c = self.count(31 - B);
        let m = self.f32_from_bits([self.avx2._mm256_sll_epi32(mask[0], c), self.avx2._mm256_sll_epi32(mask[1], c)]);
        halves!(self.avx._mm256_blendv_ps, b, a, m)
    }
    #[inline(always)]
    fn f32_exponent(self, a: Self::F) -> Self::F {
        let biased = self.and(self.u32_shr::<23>(self.f32_to_bits(a)), self.u32_splat(0xff));
        self.f32_from_i32(self.u32_add(biased, self.u32_splat(-127_i32 as u32)))
    }
    #[inline(always)]
    fn f32_lo_to_f64(self, a: Self::F) -> Self::D {
        let h = a[0];
        [
            self.avx._mm256_cvtps_pd(self.avx._mm256_castps256_ps128(h)),
            self.avx._mm256_cvtps_pd(self.avx._mm256_extractf128_ps::<1>(h)),
        ]
    }
    #[inline(always)]
    fn f32_hi_to_f64(self, a: Self::F) -> Self::D {
        let h = a[1];
        [
            self.avx._mm256_cvtps_pd(self.avx._mm256_castps256_ps128(h)),
            self.avx._mm256_cvtps_pd(self.avx._mm256_extractf128_ps::<1>(h)),
        ]
    }

    #[inline(always)]
    fn f64_splat(self, x: f64) -> Self::D {
        let v = self.avx._mm256_set1_pd(x);
        [v, v]
    }
    #[inline(always)]
    fn f64_load(self, x: &[f64; 8]) -> Self::D {
        // SAFETY: `x` is 8 readable f64.
        unsafe { [self.avx._mm256_loadu_pd(x.as_ptr()), self.avx._mm256_loadu_pd(x.as_ptr().add(4))] }
    }
    #[inline(always)]
    fn f64_store(self, x: &mut [f64; 8], v: Self::D) {
        // SAFETY: `x` is 8 writable f64.
        unsafe {
            self.avx._mm256_storeu_pd(x.as_mut_ptr(), v[0]);
            self.avx._mm256_storeu_pd(x.as_mut_ptr().add(4), v[1]);
        }
    }
    #[inline(always)]
    fn f64_add(self, a: Self::D, b: Self::D) -> Self::D {
        halves!(self.avx._mm256_add_pd, a, b)
    }
    #[inline(always)]
    fn f64_sub(self, a: Self::D, b: Self::D) -> Self::D {
        halves!(self.avx._mm256_sub_pd, a, b)
    }
    #[inline(always)]
    fn f64_mul(self, a: Self::D, b: Self::D) -> Self::D {
        halves!(self.avx._mm256_mul_pd, a, b)
    }
    #[inline(always)]
    fn f64_div(self, a: Self::D, b: Self::D) -> Self::D {
        halves!(self.avx._mm256_div_pd, a, b)
    }
    #[inline(always)]
    fn f64_fma(self, a: Self::D, b: Self::D, c: Self::D) -> Self::D {
        halves!(self.fma._mm256_fmadd_pd, a, b, c)
    }
    #[inline(always)]
    fn f64_sqrt(self, a: Self::D) -> Self::D {
        halves!(self.avx._mm256_sqrt_pd, a)
    }
    #[inline(always)]
    fn f64_from_bits(self, a: Self::U) -> Self::D {
        halves!(self.avx._mm256_castsi256_pd, a)
    }
    #[inline(always)]
    fn f64_to_bits(self, a: Self::D) -> Self::U {
        halves!(self.avx._mm256_castpd_si256, a)
    }
    #[inline(always)]
    fn f64_select_bit<const B: u32>(self, mask: Self::U, a: Self::D, b: Self::D) -> Self::D {
        let c = self.count(63 - B);
        let m = self.f64_from_bits([self.avx2._mm256_sll_epi64(mask[0], c), self.avx2._mm256_sll_epi64(mask[1], c)]);
        halves!(self.avx._mm256_blendv_pd, b, a, m)
    }
    #[inline(always)]
    fn f64_exponent(self, a: Self::D) -> Self::D {
        // 2⁵² + biased exponent, as bits, minus 2⁵² + 1023: exact.
        let biased = self.and(self.u64_shr::<52>(self.f64_to_bits(a)), self.u64_splat(0x7ff));
        let magic = self.f64_from_bits(self.or(biased, self.u64_splat(0x4330_0000_0000_0000)));
        self.f64_sub(magic, self.f64_splat(4_503_599_627_370_496.0 + 1023.0))
    }
    #[inline(always)]
    fn f64_interleave(self, a: Self::D, b: Self::D) -> (Self::D, Self::D) {
        // Per half: unpack gives [a0,b0,a2,b2] and [a1,b1,a3,b3]; the 128-bit permutes reorder.
        (self.interleave_half(a[0], b[0]), self.interleave_half(a[1], b[1]))
    }
}
