//! From xoshiro256++ words to standard normals: the vectorised generator step and a branch-free
//! Box–Muller transform, in f32 (fast) and f64 (accurate).
//!
//! # One block
//! A step of the 16-lane generator yields one u64 `o_l` per lane `l`. Lanes 0..8 sit in one
//! logical register (`a`), lanes 8..16 in another (`b`). Each u64 is one Box–Muller pair: its
//! high 32 bits `k` set the radius, its low 32 bits `y` the angle. The pair of lane `l` lands at
//! positions `p` and `16 + p` of the 32-normal block, where `p = 2l` for `l < 8` and
//! `p = 2(l − 8) + 1` for `l ≥ 8` — the order in which the f32 code finds them after packing
//! `a` and `b` into 16 u32 lanes without any cross-lane shuffle.
//!
//! # The transform
//! * Radius `r = √(−2 ln u)` with `u = (k + ½)·2⁻³²` ∈ (0, 1): a 32-bit uniform, so the largest
//!   radius is √(2·ln 2³³) ≈ 6.77 and tails are right to ~10⁻¹¹ in probability.
//! * Angle: `φ` uniform on (−π/4, π/4) from the low 30 bits of `y` gives the point
//!   `(r cos φ, r sin φ)` in the right quarter-wedge; bit 31 of `y` negates its first coordinate
//!   (the left wedge, as φ is symmetric) and bit 30 swaps the two (the top and bottom wedges).
//!   The four cases cover the circle uniformly, and the polynomials only see |φ| ≤ π/4.
//! * `ln`, `sin`, `cos` are minimax polynomials (coefficients fitted by Remez exchange for this
//!   code), evaluated with fused multiply-adds in a fixed order; with the exactly rounded `sqrt`
//!   and `div`, every SIMD level produces the same bits.
//!
//! f32 and f64 use the same bits for the same outputs, so a f32 stream is the f64 stream rounded
//! to within a few ulp (apart from radii below ~10⁻³, where the f32 `u` loses relative precision).

use crate::simd::Lanes;

/// xoshiro256++ for 16 lanes: word `w` of lanes 0..8 in `a[w]`, of lanes 8..16 in `b[w]`.
pub(crate) struct Xoshiro<K: Lanes> {
    a: [K::U; 4],
    b: [K::U; 4],
}

impl<K: Lanes> Clone for Xoshiro<K> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: Lanes> Copy for Xoshiro<K> {}

impl<K: Lanes> Xoshiro<K> {
    /// From the word-major state `s[w][lane]`.
    #[inline(always)]
    pub(crate) fn load(k: K, s: &[[u64; 16]; 4]) -> Self {
        let mut a = [k.u64_splat(0); 4];
        let mut b = a;
        for w in 0..4 {
            let [lo, hi] = bytemuck::cast_ref::<_, [[u64; 8]; 2]>(&s[w]);
            a[w] = k.u64_load(lo);
            b[w] = k.u64_load(hi);
        }
        Self { a, b }
    }

    #[inline(always)]
    pub(crate) fn store(&self, k: K, s: &mut [[u64; 16]; 4]) {
        for (w, words) in s.iter_mut().enumerate() {
            let [a, b] = bytemuck::cast_mut::<_, [[u64; 8]; 2]>(words);
            k.u64_store(a, self.a[w]);
            k.u64_store(b, self.b[w]);
        }
    }

    /// One step of every lane: the outputs of lanes 0..8 and of lanes 8..16.
    #[inline(always)]
    pub(crate) fn next(&mut self, k: K) -> (K::U, K::U) {
        (step(k, &mut self.a), step(k, &mut self.b))
    }
}

/// xoshiro256++ (Blackman & Vigna): output `rotl(s0 + s3, 23) + s0`, then the linear update.
#[inline(always)]
fn step<K: Lanes>(k: K, s: &mut [K::U; 4]) -> K::U {
    let [s0, s1, s2, s3] = *s;
    let out = k.u64_add(k.u64_rotl::<23>(k.u64_add(s0, s3)), s0);
    // The reference's five in-place xors (s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t),
    // written on the old words so that three of them are one ternary op each on AVX-512.
    let t = k.u64_shl::<17>(s1);
    *s = [k.xor3(s0, s3, s1), k.xor3(s1, s2, s0), k.xor3(s2, s0, t), k.u64_rotl::<45>(k.xor(s3, s1))];
    out
}

/// The bits of √½ and 1.0: `bits(v) + (ONE − SQRT_HALF)` moves the exponent boundary to √½, so
/// the mantissa lands in [√½, √2) and ln(1 + f) is only needed for f ∈ [−0.293, 0.415).
const F32_SQRT_HALF: u32 = 0x3f35_04f3;
const F32_ONE: u32 = 0x3f80_0000;
const F64_SQRT_HALF: u64 = 0x3fe6_a09e_667f_3bcd;
const F64_ONE: u64 = 0x3ff0_0000_0000_0000;

/// −2·ln(1 + f)/f ≈ Σ c_j f^j on [√½ − 1, √2 − 1]; relative error 2.6e-8 (minimax, degree 8).
const LN_F32: [f32; 9] = [
    -2.0,
    0.999_999_6,
    -0.666_683_2,
    0.500_058_95,
    -0.399_167_93,
    0.330_873_64,
    -0.298_350_93,
    0.289_653_03,
    -0.179_199_28,
];
/// sin(φ)/φ ≈ 1 + Σ s_j φ^{2j} on |φ| ≤ π/4; error 3.6e-9.
const SIN_F32: [f32; 3] = [-0.166_666_55, 0.008_332_178, -0.000_195_172_67];
/// cos(φ) ≈ 1 + Σ c_j φ^{2j} on |φ| ≤ π/4; error 3.2e-8.
const COS_F32: [f32; 3] = [-0.499_998_96, 0.041_656_293, -0.001_359_779_4];

/// 2·atanh(t)/t ≈ 2 + Σ a_j t^{2j} on |t| ≤ (√2 − 1)/(√2 + 1); relative error 1.2e-18.
const ATANH_F64: [f64; 7] = [
    0.666_666_666_666_673_4,
    0.399_999_999_994_143_2,
    0.285_714_287_424_745_9,
    0.222_221_985_635_119_47,
    0.181_835_648_655_279_65,
    0.153_140_358_582_390_92,
    0.147_961_052_719_774_47,
];
/// sin(φ)/φ on |φ| ≤ π/4; error 3.4e-18.
const SIN_F64: [f64; 6] = [
    -0.166_666_666_666_666_32,
    0.008_333_333_333_322_418,
    -0.000_198_412_698_298_123_88,
    2.755_731_369_357_398_3e-06,
    -2.505_075_838_444_561_6e-08,
    1.589_681_179_788_687_5e-10,
];
/// cos(φ) on |φ| ≤ π/4; error 3.3e-20.
const COS_F64: [f64; 7] = [
    -0.5,
    0.041_666_666_666_666_49,
    -0.001_388_888_888_886_39,
    2.480_158_728_500_428e-05,
    -2.755_731_333_774_307_4e-07,
    2.087_560_843_306_268e-09,
    -1.135_450_951_925_790_6e-11,
];

/// ln 2 = LN2_HI + LN2_LO to ~2⁻¹⁰⁰: LN2_HI is ln 2 with its low 21 mantissa bits cleared, so
/// `e·LN2_HI` is exact for every exponent e that occurs.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = 1.9082149292705877e-10;

/// Horner's rule, highest coefficient last in `c`: c[0] + x·(c[1] + x·(…)).
#[inline(always)]
fn horner_f32<K: Lanes, const N: usize>(k: K, x: K::F, c: &[f32; N]) -> K::F {
    let mut p = k.f32_splat(c[N - 1]);
    for j in (0..N - 1).rev() {
        p = k.f32_fma(p, x, k.f32_splat(c[j]));
    }
    p
}

#[inline(always)]
fn horner_f64<K: Lanes, const N: usize>(k: K, x: K::D, c: &[f64; N]) -> K::D {
    let mut p = k.f64_splat(c[N - 1]);
    for j in (0..N - 1).rev() {
        p = k.f64_fma(p, x, k.f64_splat(c[j]));
    }
    p
}

/// 32 f32 normals from one generator step: `[positions 0..16, positions 16..32]`.
#[inline(always)]
pub(crate) fn block_f32<K: Lanes>(k: K, g: &mut Xoshiro<K>) -> [K::F; 2] {
    let (a, b) = g.next(k);
    // Pack the high words of a and b into 16 u32 lanes (radius), and the low words (angle).
    let high = k.u64_splat(0xffff_ffff_0000_0000);
    let kbits = k.or(k.u64_shr::<32>(a), k.and(b, high));
    let ybits = k.or(k.and(a, k.u64_shr::<32>(high)), k.u64_shl::<32>(b));

    // r² = −2 ln u, u = v·2⁻³², v = k + ½ ∈ [½, 2³²]; write v = 2^e'·2³²·(1 + f).
    let v = k.f32_add(k.f32_from_u32(kbits), k.f32_splat(0.5));
    let ix = k.u32_add(k.f32_to_bits(v), k.u32_splat(F32_ONE - F32_SQRT_HALF));
    // The exponent of ix is e' + 32; −2·ln2·e' = fma(e' + 32, A, −32·A) with A = −2·ln2 in f32,
    // exactly as a product e'·A would be rounded (−32·A is exact).
    const A: f32 = -2.0 * core::f32::consts::LN_2;
    let e_term = k.f32_fma(k.f32_exponent(k.f32_from_bits(ix)), k.f32_splat(A), k.f32_splat(-32.0 * A));
    let m = k.f32_from_bits(k.u32_add(k.and(ix, k.u32_splat(0x007f_ffff)), k.u32_splat(F32_SQRT_HALF)));
    let f = k.f32_sub(m, k.f32_splat(1.0));
    let r = k.f32_sqrt(k.f32_fma(horner_f32(k, f, &LN_F32), f, e_term));

    // φ = t·π/2³³ with t = 4·(y mod 2³⁰) + 2 − 2³¹, an even integer in (−2³¹, 2³¹).
    let t = k.f32_from_i32(k.xor(k.u32_shl::<2>(ybits), k.u32_splat(0x8000_0002)));
    let phi = k.f32_mul(t, k.f32_splat(core::f32::consts::PI / 8_589_934_592.0));
    let phi2 = k.f32_mul(phi, phi);
    let one = k.f32_splat(1.0);
    let sin_over_phi = k.f32_fma(horner_f32(k, phi2, &SIN_F32), phi2, one);
    let cos = k.f32_fma(horner_f32(k, phi2, &COS_F32), phi2, one);
    let rc = k.f32_mul(r, cos);
    let rs = k.f32_mul(k.f32_mul(r, phi), sin_over_phi);

    // Quarter turns: negate the cosine term on bit 31, swap on bit 30.
    let rc = k.f32_from_bits(k.xor_and(k.f32_to_bits(rc), ybits, k.u32_splat(0x8000_0000)));
    [k.f32_select_bit::<30>(ybits, rs, rc), k.f32_select_bit::<30>(ybits, rc, rs)]
}

/// 32 f64 normals from one generator step: positions `[0..8, 8..16, 16..24, 24..32]`.
#[inline(always)]
pub(crate) fn block_f64<K: Lanes>(k: K, g: &mut Xoshiro<K>) -> [K::D; 4] {
    let (a, b) = g.next(k);
    let (ca, sa) = pair_f64(k, a);
    let (cb, sb) = pair_f64(k, b);
    // Lane l of a goes to position 2l, lane l of b to 2l + 1 (see the module docs).
    let (c0, c1) = k.f64_interleave(ca, cb);
    let (s0, s1) = k.f64_interleave(sa, sb);
    [c0, c1, s0, s1]
}

/// The Box–Muller pair of each u64 lane of `o`, in f64.
#[inline(always)]
fn pair_f64<K: Lanes>(k: K, o: K::U) -> (K::D, K::D) {
    // 2⁵² + n for n < 2³² as bits; subtracting 2⁵² recovers n exactly.
    let magic = k.u64_splat(0x4330_0000_0000_0000);
    const TWO52: f64 = 4_503_599_627_370_496.0;

    // v = k + ½ exactly.
    let v = k.f64_sub(k.f64_from_bits(k.or(k.u64_shr::<32>(o), magic)), k.f64_splat(TWO52 - 0.5));
    let ix = k.u64_add(k.f64_to_bits(v), k.u64_splat(F64_ONE - F64_SQRT_HALF));
    let e = k.f64_sub(k.f64_exponent(k.f64_from_bits(ix)), k.f64_splat(32.0));
    let m = k.f64_from_bits(k.u64_add(k.and(ix, k.u64_splat(0x000f_ffff_ffff_ffff)), k.u64_splat(F64_SQRT_HALF)));
    let one = k.f64_splat(1.0);
    // ln m = 2 atanh(t), t = (m − 1)/(m + 1) ∈ [−0.172, 0.172].
    let t = k.f64_div(k.f64_sub(m, one), k.f64_add(m, one));
    let t2 = k.f64_mul(t, t);
    let ln_m = k.f64_mul(t, k.f64_fma(horner_f64(k, t2, &ATANH_F64), t2, k.f64_splat(2.0)));
    let ln_u = k.f64_fma(e, k.f64_splat(LN2_HI), k.f64_fma(e, k.f64_splat(LN2_LO), ln_m));
    let r = k.f64_sqrt(k.f64_mul(ln_u, k.f64_splat(-2.0)));

    // t = 4·(y mod 2³⁰) + 2 − 2³¹, exactly; φ = t·π/2³³.
    let y4 = k.or(k.and(k.u64_shl::<2>(o), k.u64_splat(0xffff_fffc)), k.u64_splat(2));
    let tphi = k.f64_sub(k.f64_from_bits(k.or(y4, magic)), k.f64_splat(TWO52 + 2_147_483_648.0));
    let phi = k.f64_mul(tphi, k.f64_splat(core::f64::consts::PI / 8_589_934_592.0));
    let phi2 = k.f64_mul(phi, phi);
    let sin_over_phi = k.f64_fma(horner_f64(k, phi2, &SIN_F64), phi2, one);
    let cos = k.f64_fma(horner_f64(k, phi2, &COS_F64), phi2, one);
    let rc = k.f64_mul(r, cos);
    let rs = k.f64_mul(k.f64_mul(r, phi), sin_over_phi);

    // Negate the cosine term on bit 31 of y (moved to the sign bit), swap on bit 30.
    let rc = k.f64_from_bits(k.xor_and(k.f64_to_bits(rc), k.u64_shl::<32>(o), k.u64_splat(0x8000_0000_0000_0000)));
    (k.f64_select_bit::<30>(o, rs, rc), k.f64_select_bit::<30>(o, rc, rs))
}
