//! [`Lanes`] on AVX-512: one zmm register per logical vector.

use super::Lanes;
use core::arch::x86_64::{__m512, __m512d, __m512i};
use pulp::x86::V4;

impl Lanes for V4 {
    type U = __m512i;
    type F = __m512;
    type D = __m512d;

    #[inline(always)]
    fn and(self, a: __m512i, b: __m512i) -> __m512i {
        self.avx512f._mm512_and_si512(a, b)
    }
    #[inline(always)]
    fn or(self, a: __m512i, b: __m512i) -> __m512i {
        self.avx512f._mm512_or_si512(a, b)
    }
    #[inline(always)]
    fn xor(self, a: __m512i, b: __m512i) -> __m512i {
        self.avx512f._mm512_xor_si512(a, b)
    }

    #[inline(always)]
    fn xor3(self, a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        self.avx512f._mm512_ternarylogic_epi64::<0x96>(a, b, c)
    }
    #[inline(always)]
    fn xor_and(self, a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        // Truth table of a ^ (b & c), indexed by (a << 2) | (b << 1) | c.
        self.avx512f._mm512_ternarylogic_epi64::<0x78>(a, b, c)
    }

    #[inline(always)]
    fn u64_splat(self, x: u64) -> __m512i {
        self.avx512f._mm512_set1_epi64(x as i64)
    }
    #[inline(always)]
    fn u64_load(self, x: &[u64; 8]) -> __m512i {
        // SAFETY: `x` is 64 readable bytes; the unaligned load has no alignment requirement.
        unsafe { self.avx512f._mm512_loadu_si512(x.as_ptr().cast()) }
    }
    #[inline(always)]
    fn u64_store(self, x: &mut [u64; 8], v: __m512i) {
        // SAFETY: `x` is 64 writable bytes; the unaligned store has no alignment requirement.
        unsafe { self.avx512f._mm512_storeu_si512(x.as_mut_ptr().cast(), v) }
    }
    #[inline(always)]
    fn u64_add(self, a: __m512i, b: __m512i) -> __m512i {
        self.avx512f._mm512_add_epi64(a, b)
    }
    #[inline(always)]
    fn u64_shl<const N: u32>(self, a: __m512i) -> __m512i {
        self.avx512f._mm512_slli_epi64::<N>(a)
    }
    #[inline(always)]
    fn u64_shr<const N: u32>(self, a: __m512i) -> __m512i {
        self.avx512f._mm512_srli_epi64::<N>(a)
    }
    #[inline(always)]
    fn u64_rotl<const N: u32>(self, a: __m512i) -> __m512i {
        // A constant count folds into `vprolq zmm, zmm, imm8`.
        self.avx512f._mm512_rolv_epi64(a, self.u64_splat(N as u64))
    }

    #[inline(always)]
    fn u32_splat(self, x: u32) -> __m512i {
        self.avx512f._mm512_set1_epi32(x as i32)
    }
    #[inline(always)]
    fn u32_add(self, a: __m512i, b: __m512i) -> __m512i {
        self.avx512f._mm512_add_epi32(a, b)
    }
    #[inline(always)]
    fn u32_shl<const N: u32>(self, a: __m512i) -> __m512i {
        self.avx512f._mm512_slli_epi32::<N>(a)
    }
    #[inline(always)]
    fn u32_shr<const N: u32>(self, a: __m512i) -> __m512i {
        self.avx512f._mm512_srli_epi32::<N>(a)
    }

    #[inline(always)]
    fn f32_splat(self, x: f32) -> __m512 {
        self.avx512f._mm512_set1_ps(x)
    }
    #[inline(always)]
    fn f32_load(self, x: &[f32; 16]) -> __m512 {
        // SAFETY: `x` is 16 readable f32.
        unsafe { self.avx512f._mm512_loadu_ps(x.as_ptr()) }
    }
    #[inline(always)]
    fn f32_store(self, x: &mut [f32; 16], v: __m512) {
        // SAFETY: `x` is 16 writable f32.
        unsafe { self.avx512f._mm512_storeu_ps(x.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn f32_add(self, a: __m512, b: __m512) -> __m512 {
        self.avx512f._mm512_add_ps(a, b)
    }
    #[inline(always)]
    fn f32_sub(self, a: __m512, b: __m512) -> __m512 {
        self.avx512f._mm512_sub_ps(a, b)
    }
    #[inline(always)]
    fn f32_mul(self, a: __m512, b: __m512) -> __m512 {
        self.avx512f._mm512_mul_ps(a, b)
    }
    #[inline(always)]
    fn f32_fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        self.avx512f._mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    fn f32_sqrt(self, a: __m512) -> __m512 {
        self.avx512f._mm512_sqrt_ps(a)
    }
    #[inline(always)]
    fn f32_from_bits(self, a: __m512i) -> __m512 {
        self.avx512f._mm512_castsi512_ps(a)
    }
    #[inline(always)]
    fn f32_to_bits(self, a: __m512) -> __m512i {
        self.avx512f._mm512_castps_si512(a)
    }
    #[inline(always)]
    fn f32_from_u32(self, a: __m512i) -> __m512 {
        self.avx512f._mm512_cvtepu32_ps(a)
    }
    #[inline(always)]
    fn f32_from_i32(self, a: __m512i) -> __m512 {
        self.avx512f._mm512_cvtepi32_ps(a)
    }
    #[inline(always)]
    fn f32_select_bit<const B: u32>(self, mask: __m512i, a: __m512, b: __m512) -> __m512 {
        let k = self.avx512f._mm512_test_epi32_mask(mask, self.u32_splat(1 << B));
        self.avx512f._mm512_mask_blend_ps(k, b, a)
    }
    #[inline(always)]
    fn f32_exponent(self, a: __m512) -> __m512 {
        self.avx512f._mm512_getexp_ps(a)
    }
    #[inline(always)]
    fn f32_lo_to_f64(self, a: __m512) -> __m512d {
        self.avx512f._mm512_cvtps_pd(self.avx512f._mm512_castps512_ps256(a))
    }
    #[inline(always)]
    fn f32_hi_to_f64(self, a: __m512) -> __m512d {
        self.avx512f._mm512_cvtps_pd(self.avx512dq._mm512_extractf32x8_ps::<1>(a))
    }

    #[inline(always)]
    fn f64_splat(self, x: f64) -> __m512d {
        self.avx512f._mm512_set1_pd(x)
    }
    #[inline(always)]
    fn f64_load(self, x: &[f64; 8]) -> __m512d {
        // SAFETY: `x` is 8 readable f64.
        unsafe { self.avx512f._mm512_loadu_pd(x.as_ptr()) }
    }
    #[inline(always)]
    fn f64_store(self, x: &mut [f64; 8], v: __m512d) {
        // SAFETY: `x` is 8 writable f64.
        unsafe { self.avx512f._mm512_storeu_pd(x.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn f64_add(self, a: __m512d, b: __m512d) -> __m512d {
        self.avx512f._mm512_add_pd(a, b)
    }
    #[inline(always)]
    fn f64_sub(self, a: __m512d, b: __m512d) -> __m512d {
        self.avx512f._mm512_sub_pd(a, b)
    }
    #[inline(always)]
    fn f64_mul(self, a: __m512d, b: __m512d) -> __m512d {
        self.avx512f._mm512_mul_pd(a, b)
    }
    #[inline(always)]
    fn f64_div(self, a: __m512d, b: __m512d) -> __m512d {
        self.avx512f._mm512_div_pd(a, b)
    }
    #[inline(always)]
    fn f64_fma(self, a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        self.avx512f._mm512_fmadd_pd(a, b, c)
    }
    #[inline(always)]
    fn f64_sqrt(self, a: __m512d) -> __m512d {
        self.avx512f._mm512_sqrt_pd(a)
    }
    #[inline(always)]
    fn f64_from_bits(self, a: __m512i) -> __m512d {
        self.avx512f._mm512_castsi512_pd(a)
    }
    #[inline(always)]
    fn f64_to_bits(self, a: __m512d) -> __m512i {
        self.avx512f._mm512_castpd_si512(a)
    }
    #[inline(always)]
    fn f64_select_bit<const B: u32>(self, mask: __m512i, a: __m512d, b: __m512d) -> __m512d {
        let k = self.avx512f._mm512_test_epi64_mask(mask, self.u64_splat(1 << B));
        self.avx512f._mm512_mask_blend_pd(k, b, a)
    }
    #[inline(always)]
    fn f64_exponent(self, a: __m512d) -> __m512d {
        self.avx512f._mm512_getexp_pd(a)
    }
    #[inline(always)]
    fn f64_interleave(self, a: __m512d, b: __m512d) -> (__m512d, __m512d) {
        // Index j < 8 picks a[j], j ≥ 8 picks b[j - 8].
        let lo = self.avx512f._mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
        let hi = self.avx512f._mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
        (self.avx512f._mm512_permutex2var_pd(a, lo, b), self.avx512f._mm512_permutex2var_pd(a, hi, b))
    }
}
