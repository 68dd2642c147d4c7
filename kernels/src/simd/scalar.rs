//! [`Lanes`] in portable Rust on arrays: the fallback for CPUs without AVX2 + FMA (and for other
//! architectures). Written lane by lane with the exact operations the SIMD levels use; `mul_add`
//! is a true fused multiply-add (a library call when the target has no FMA instruction).

use super::Lanes;
use pulp::Scalar;

/// u32 view of 8×u64: lane `2i` is the low half of u64 lane `i`, lane `2i + 1` the high half —
/// the layout of a SIMD register on a little-endian machine, written out so that it holds on
/// any endianness.
#[inline(always)]
fn to_u32(a: [u64; 8]) -> [u32; 16] {
    core::array::from_fn(|j| (a[j / 2] >> (32 * (j % 2))) as u32)
}

#[inline(always)]
fn from_u32(a: [u32; 16]) -> [u64; 8] {
    core::array::from_fn(|i| a[2 * i] as u64 | (a[2 * i + 1] as u64) << 32)
}

#[inline(always)]
fn map<T: Copy, R, const N: usize>(a: [T; N], f: impl Fn(T) -> R) -> [R; N] {
    a.map(f)
}

#[inline(always)]
fn zip<T: Copy, R, const N: usize>(a: [T; N], b: [T; N], f: impl Fn(T, T) -> R) -> [R; N] {
    core::array::from_fn(|i| f(a[i], b[i]))
}

#[inline(always)]
fn zip3<T: Copy, R, const N: usize>(a: [T; N], b: [T; N], c: [T; N], f: impl Fn(T, T, T) -> R) -> [R; N] {
    core::array::from_fn(|i| f(a[i], b[i], c[i]))
}

impl Lanes for Scalar {
    type U = [u64; 8];
    type F = [f32; 16];
    type D = [f64; 8];

    #[inline(always)]
    fn and(self, a: [u64; 8], b: [u64; 8]) -> [u64; 8] {
        zip(a, b, |a, b| a & b)
    }
    #[inline(always)]
    fn or(self, a: [u64; 8], b: [u64; 8]) -> [u64; 8] {
        zip(a, b, |a, b| a | b)
    }
    #[inline(always)]
    fn xor(self, a: [u64; 8], b: [u64; 8]) -> [u64; 8] {
        zip(a, b, |a, b| a ^ b)
    }

    #[inline(always)]
    fn xor3(self, a: [u64; 8], b: [u64; 8], c: [u64; 8]) -> [u64; 8] {
        zip3(a, b, c, |a, b, c| a ^ b ^ c)
    }
    #[inline(always)]
    fn xor_and(self, a: [u64; 8], b: [u64; 8], c: [u64; 8]) -> [u64; 8] {
        zip3(a, b, c, |a, b, c| a ^ (b & c))
    }

    #[inline(always)]
    fn u64_splat(self, x: u64) -> [u64; 8] {
        [x; 8]
    }
    #[inline(always)]
    fn u64_load(self, x: &[u64; 8]) -> [u64; 8] {
        *x
    }
    #[inline(always)]
    fn u64_store(self, x: &mut [u64; 8], v: [u64; 8]) {
        *x = v;
    }
    #[inline(always)]
    fn u64_add(self, a: [u64; 8], b: [u64; 8]) -> [u64; 8] {
        zip(a, b, u64::wrapping_add)
    }
    #[inline(always)]
    fn u64_shl<const N: u32>(self, a: [u64; 8]) -> [u64; 8] {
        map(a, |a| a << N)
    }
    #[inline(always)]
    fn u64_shr<const N: u32>(self, a: [u64; 8]) -> [u64; 8] {
        map(a, |a| a >> N)
    }
    #[inline(always)]
    fn u64_rotl<const N: u32>(self, a: [u64; 8]) -> [u64; 8] {
        map(a, |a| a.rotate_left(N))
    }

    #[inline(always)]
    fn u32_splat(self, x: u32) -> [u64; 8] {
        from_u32([x; 16])
    }
    #[inline(always)]
    fn u32_add(self, a: [u64; 8], b: [u64; 8]) -> [u64; 8] {
        from_u32(zip(to_u32(a), to_u32(b), u32::wrapping_add))
    }
    #[inline(always)]
    fn u32_shl<const N: u32>(self, a: [u64; 8]) -> [u64; 8] {
        from_u32(map(to_u32(a), |a| a << N))
    }
    #[inline(always)]
    fn u32_shr<const N: u32>(self, a: [u64; 8]) -> [u64; 8] {
        from_u32(map(to_u32(a), |a| a >> N))
    }

    #[inline(always)]
    fn f32_splat(self, x: f32) -> [f32; 16] {
        [x; 16]
    }
    #[inline(always)]
    fn f32_load(self, x: &[f32; 16]) -> [f32; 16] {
        *x
    }
    #[inline(always)]
    fn f32_store(self, x: &mut [f32; 16], v: [f32; 16]) {
        *x = v;
    }
    #[inline(always)]
    fn f32_add(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        zip(a, b, |a, b| a + b)
    }
    #[inline(always)]
    fn f32_sub(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        zip(a, b, |a, b| a - b)
    }
    #[inline(always)]
    fn f32_mul(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        zip(a, b, |a, b| a * b)
    }
    #[inline(always)]
    fn f32_fma(self, a: [f32; 16], b: [f32; 16], c: [f32; 16]) -> [f32; 16] {
        zip3(a, b, c, f32::mul_add)
    }
    #[inline(always)]
    fn f32_sqrt(self, a: [f32; 16]) -> [f32; 16] {
        map(a, f32::sqrt)
    }
    #[inline(always)]
    fn f32_from_bits(self, a: [u64; 8]) -> [f32; 16] {
        map(to_u32(a), f32::from_bits)
    }
    #[inline(always)]
    fn f32_to_bits(self, a: [f32; 16]) -> [u64; 8] {
        from_u32(map(a, f32::to_bits))
    }
    #[inline(always)]
    fn f32_from_u32(self, a: [u64; 8]) -> [f32; 16] {
        map(to_u32(a), |a| a as f32)
    }
    #[inline(always)]
    fn f32_from_i32(self, a: [u64; 8]) -> [f32; 16] {
        map(to_u32(a), |a| a as i32 as f32)
    }
    #[inline(always)]
    fn f32_select_bit<const B: u32>(self, mask: [u64; 8], a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        let m = to_u32(mask);
        core::array::from_fn(|i| if (m[i] >> B) & 1 != 0 { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn f32_exponent(self, a: [f32; 16]) -> [f32; 16] {
        map(a, |a| (((a.to_bits() >> 23) & 0xff) as i32 - 127) as f32)
    }
    #[inline(always)]
    fn f32_lo_to_f64(self, a: [f32; 16]) -> [f64; 8] {
        core::array::from_fn(|i| a[i] as f64)
    }
    #[inline(always)]
    fn f32_hi_to_f64(self, a: [f32; 16]) -> [f64; 8] {
        core::array::from_fn(|i| a[8 + i] as f64)
    }

    #[inline(always)]
    fn f64_splat(self, x: f64) -> [f64; 8] {
        [x; 8]
    }
    #[inline(always)]
    fn f64_load(self, x: &[f64; 8]) -> [f64; 8] {
        *x
    }
    #[inline(always)]
    fn f64_store(self, x: &mut [f64; 8], v: [f64; 8]) {
        *x = v;
    }
    #[inline(always)]
    fn f64_add(self, a: [f64; 8], b: [f64; 8]) -> [f64; 8] {
        zip(a, b, |a, b| a + b)
    }
    #[inline(always)]
    fn f64_sub(self, a: [f64; 8], b: [f64; 8]) -> [f64; 8] {
        zip(a, b, |a, b| a - b)
    }
    #[inline(always)]
    fn f64_mul(self, a: [f64; 8], b: [f64; 8]) -> [f64; 8] {
        zip(a, b, |a, b| a * b)
    }
    #[inline(always)]
    fn f64_div(self, a: [f64; 8], b: [f64; 8]) -> [f64; 8] {
        zip(a, b, |a, b| a / b)
    }
    #[inline(always)]
    fn f64_fma(self, a: [f64; 8], b: [f64; 8], c: [f64; 8]) -> [f64; 8] {
        zip3(a, b, c, f64::mul_add)
    }
    #[inline(always)]
    fn f64_sqrt(self, a: [f64; 8]) -> [f64; 8] {
        map(a, f64::sqrt)
    }
    #[inline(always)]
    fn f64_from_bits(self, a: [u64; 8]) -> [f64; 8] {
        map(a, f64::from_bits)
    }
    #[inline(always)]
    fn f64_to_bits(self, a: [f64; 8]) -> [u64; 8] {
        map(a, f64::to_bits)
    }
    #[inline(always)]
    fn f64_select_bit<const B: u32>(self, mask: [u64; 8], a: [f64; 8], b: [f64; 8]) -> [f64; 8] {
        core::array::from_fn(|i| if (mask[i] >> B) & 1 != 0 { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn f64_exponent(self, a: [f64; 8]) -> [f64; 8] {
        map(a, |a| (((a.to_bits() >> 52) & 0x7ff) as i64 - 1023) as f64)
    }
    #[inline(always)]
    fn f64_interleave(self, a: [f64; 8], b: [f64; 8]) -> ([f64; 8], [f64; 8]) {
        let pick = |j: usize| if j % 2 == 0 { a[j / 2] } else { b[j / 2] };
        (core::array::from_fn(pick), core::array::from_fn(|j| pick(8 + j)))
    }
}
