//! Logical 512-bit vectors over three instruction sets, and run-time dispatch between them.
//!
//! Every kernel of this crate is written once, generically over [`Lanes`], whose registers are
//! *logical* 512-bit vectors: [`Lanes::U`] holds 8×u64 (equivalently 16×u32, lane `2i` being the
//! low half of u64 lane `i`), [`Lanes::F`] 16×f32 and [`Lanes::D`] 8×f64. AVX-512 keeps one in a
//! zmm register, AVX2 in two ymm registers, the scalar fallback in an array.
//!
//! Determinism: the logical width is the same on every level, and every operation is exactly
//! specified — wrapping integer arithmetic, shifts and bitwise logic; IEEE-754 add, sub, mul, div,
//! sqrt and *fused* multiply-add with round-to-nearest-even; integer→float conversions with
//! round-to-nearest-even; selects and permutes. A kernel therefore computes the same bits on
//! every level, including its accumulation order. (No approximate instructions such as `rsqrt`,
//! and no reductions whose order depends on the register width.)

mod scalar;
#[cfg(target_arch = "x86_64")]
mod v3;
#[cfg(target_arch = "x86_64")]
mod v4;

/// The instruction set a kernel runs on. Results do not depend on it (see the crate docs); it is
/// exposed for reporting and for tests that compare levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimdLevel {
    /// x86-64-v4: AVX-512 F/BW/CD/DQ/VL (`pulp::x86::V4`).
    Avx512,
    /// x86-64-v3: AVX2 + FMA (`pulp::x86::V3`).
    Avx2,
    /// Portable code on arrays (`pulp::Scalar`); the compiler may still vectorise it for the
    /// baseline target.
    Scalar,
}

impl SimdLevel {
    /// The best level this CPU supports (detected once, then cached by `pulp`).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if pulp::x86::V4::is_available() {
                return Self::Avx512;
            }
            if pulp::x86::V3::is_available() {
                return Self::Avx2;
            }
        }
        Self::Scalar
    }

    /// Whether this CPU can run kernels at this level.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => pulp::x86::V4::is_available(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => pulp::x86::V3::is_available(),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx512 | Self::Avx2 => false,
            Self::Scalar => true,
        }
    }

    /// Every level this CPU can run, best first.
    pub fn available() -> Vec<Self> {
        [Self::Avx512, Self::Avx2, Self::Scalar].into_iter().filter(|l| l.is_available()).collect()
    }

    /// Short name for logs and benchmark reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2+fma",
            Self::Scalar => "scalar",
        }
    }
}

/// The operations kernels are written in. See the module docs for the lane layout and the
/// exactness every implementation must honour.
///
/// Every method of every implementation is `#[inline(always)]`, and so must be every generic
/// function that calls them: they only get the level's instructions once inlined into the
/// `#[target_feature]` function that [`dispatch`] enters.
pub(crate) trait Lanes: Copy + 'static {
    /// 8×u64, also read as 16×u32.
    type U: Copy;
    /// 16×f32.
    type F: Copy;
    /// 8×f64.
    type D: Copy;

    // Bitwise, lane-width agnostic.
    fn and(self, a: Self::U, b: Self::U) -> Self::U;
    fn or(self, a: Self::U, b: Self::U) -> Self::U;
    fn xor(self, a: Self::U, b: Self::U) -> Self::U;
    /// a ^ b ^ c.
    fn xor3(self, a: Self::U, b: Self::U, c: Self::U) -> Self::U;
    /// a ^ (b & c).
    fn xor_and(self, a: Self::U, b: Self::U, c: Self::U) -> Self::U;

    // u64 lanes.
    fn u64_splat(self, x: u64) -> Self::U;
    fn u64_load(self, x: &[u64; 8]) -> Self::U;
    fn u64_store(self, x: &mut [u64; 8], v: Self::U);
    fn u64_add(self, a: Self::U, b: Self::U) -> Self::U;
    fn u64_shl<const N: u32>(self, a: Self::U) -> Self::U;
    fn u64_shr<const N: u32>(self, a: Self::U) -> Self::U;
    fn u64_rotl<const N: u32>(self, a: Self::U) -> Self::U;

    // u32 lanes.
    fn u32_splat(self, x: u32) -> Self::U;
    fn u32_add(self, a: Self::U, b: Self::U) -> Self::U;
    fn u32_shl<const N: u32>(self, a: Self::U) -> Self::U;
    fn u32_shr<const N: u32>(self, a: Self::U) -> Self::U;

    // f32 lanes.
    fn f32_splat(self, x: f32) -> Self::F;
    fn f32_load(self, x: &[f32; 16]) -> Self::F;
    fn f32_store(self, x: &mut [f32; 16], v: Self::F);
    fn f32_add(self, a: Self::F, b: Self::F) -> Self::F;
    fn f32_sub(self, a: Self::F, b: Self::F) -> Self::F;
    fn f32_mul(self, a: Self::F, b: Self::F) -> Self::F;
    /// a·b + c with one rounding.
    fn f32_fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    fn f32_sqrt(self, a: Self::F) -> Self::F;
    fn f32_from_bits(self, a: Self::U) -> Self::F;
    fn f32_to_bits(self, a: Self::F) -> Self::U;
    /// u32 lane → nearest f32 (ties to even).
    fn f32_from_u32(self, a: Self::U) -> Self::F;
    /// i32 lane → nearest f32 (ties to even).
    fn f32_from_i32(self, a: Self::U) -> Self::F;
    /// Lane i: `a` if bit `B` of u32 lane i of `mask` is set, else `b`.
    fn f32_select_bit<const B: u32>(self, mask: Self::U, a: Self::F, b: Self::F) -> Self::F;
    /// ⌊log₂|a|⌋ as a float, for normal nonzero `a` (AVX-512 `getexp`).
    fn f32_exponent(self, a: Self::F) -> Self::F;
    /// Lanes 0..8 widened to f64 (exact).
    fn f32_lo_to_f64(self, a: Self::F) -> Self::D;
    /// Lanes 8..16 widened to f64 (exact).
    fn f32_hi_to_f64(self, a: Self::F) -> Self::D;

    // f64 lanes.
    fn f64_splat(self, x: f64) -> Self::D;
    fn f64_load(self, x: &[f64; 8]) -> Self::D;
    fn f64_store(self, x: &mut [f64; 8], v: Self::D);
    fn f64_add(self, a: Self::D, b: Self::D) -> Self::D;
    fn f64_sub(self, a: Self::D, b: Self::D) -> Self::D;
    fn f64_mul(self, a: Self::D, b: Self::D) -> Self::D;
    fn f64_div(self, a: Self::D, b: Self::D) -> Self::D;
    /// a·b + c with one rounding.
    fn f64_fma(self, a: Self::D, b: Self::D, c: Self::D) -> Self::D;
    fn f64_sqrt(self, a: Self::D) -> Self::D;
    fn f64_from_bits(self, a: Self::U) -> Self::D;
    fn f64_to_bits(self, a: Self::D) -> Self::U;
    /// Lane i: `a` if bit `B` of u64 lane i of `mask` is set, else `b`.
    fn f64_select_bit<const B: u32>(self, mask: Self::U, a: Self::D, b: Self::D) -> Self::D;
    /// ⌊log₂|a|⌋ as a float, for normal nonzero `a`.
    fn f64_exponent(self, a: Self::D) -> Self::D;
    /// `([a0,b0,a1,b1,a2,b2,a3,b3], [a4,b4,a5,b5,a6,b6,a7,b7])`.
    fn f64_interleave(self, a: Self::D, b: Self::D) -> (Self::D, Self::D);
}

/// A kernel body, generic over the level. `run` must be `#[inline(always)]`.
pub(crate) trait Kernel {
    type Output;
    fn run<K: Lanes>(self, k: K) -> Self::Output;
}

#[cfg(target_arch = "x86_64")]
struct Entered<K, Op>(K, Op);

#[cfg(target_arch = "x86_64")]
impl<K: Lanes, Op: Kernel> pulp::NullaryFnOnce for Entered<K, Op> {
    type Output = Op::Output;
    #[inline(always)]
    fn call(self) -> Op::Output {
        self.1.run(self.0)
    }
}

/// Runs `op` at `level`, inside a function compiled for that level's target features.
///
/// # Panics
/// If this CPU does not support `level`.
#[inline]
pub(crate) fn dispatch<Op: Kernel>(level: SimdLevel, op: Op) -> Op::Output {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            let v4 = pulp::x86::V4::try_new().expect("SimdLevel::Avx512 is not available on this CPU");
            v4.vectorize(Entered(v4, op))
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => {
            let v3 = pulp::x86::V3::try_new().expect("SimdLevel::Avx2 is not available on this CPU");
            v3.vectorize(Entered(v3, op))
        }
        #[cfg(not(target_arch = "x86_64"))]
        SimdLevel::Avx512 | SimdLevel::Avx2 => {
            panic!("SimdLevel::{level:?} is not available on this CPU")
        }
        SimdLevel::Scalar => op.run(pulp::Scalar),
    }
}
