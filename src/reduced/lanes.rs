//! Several reduced walkers stepped side by side, one walker per SIMD lane.
//!
//! A reduced single-direction step is a few dozen flops on a handful of scalars, chained through a
//! tanh, a square root and a division: one walker alone is bound by that chain's latency. Running L
//! walkers in lanes of [`Lanes<L>`] breaks the chain into L independent ones and lets the arithmetic
//! use full SIMD width, while each lane still reads only its own walker's streams.
//!
//! **Lane-invariance.** The update is written once, generically over [`LaneMath`] (`f64` or
//! `Lanes<L>`), using only IEEE operations (+, −, ×, ÷, √, no fused multiply-add) and a tanh built
//! from them ([`tanh`]), so a walker's trajectory has the same bits whether it runs alone
//! (`f64`), in any lane of any width, or migrates between widths. The scheduler in
//! [`crate::reduced::schedule`] relies on this to keep lanes busy.

use crate::net::Activation;
use crate::train::single::StepScalar;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// L walkers' values of one scalar.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
pub struct Lanes<const L: usize>(pub [f64; L]);

macro_rules! lane_op {
    ($tr:ident, $f:ident, $op_assign:tt) => {
        impl<const L: usize> $tr for Lanes<L> {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                let mut r = self.0;
                for (x, y) in r.iter_mut().zip(o.0) {
                    *x $op_assign y;
                }
                Lanes(r)
            }
        }
    };
}
lane_op!(Add, add, +=);
lane_op!(Sub, sub, -=);
lane_op!(Mul, mul, *=);
lane_op!(Div, div, /=);

impl<const L: usize> Neg for Lanes<L> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        let mut r = self.0;
        for x in &mut r {
            *x = -*x;
        }
        Lanes(r)
    }
}

impl<const L: usize> StepScalar for Lanes<L> {
    #[inline(always)]
    fn splat(x: f64) -> Self {
        Lanes([x; L])
    }
}

/// `[f(0), …, f(N − 1)]` by a plain loop. The hot paths use this instead of `std::array::from_fn`,
/// whose generic machinery LLVM does not always inline: an out-of-line copy costs a call per
/// element and runs without the caller's `#[target_feature]`s (it was 8 % of the study's time).
#[inline(always)]
pub fn build<T: Copy, const N: usize>(fill: T, mut f: impl FnMut(usize) -> T) -> [T; N] {
    let mut out = [fill; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(i);
    }
    out
}

/// What the reduced single-direction update needs beyond [`StepScalar`].
pub trait LaneMath: StepScalar + Div<Output = Self> {
    fn sqrt(self) -> Self;
    /// Applies a scalar function lane by lane.
    fn map(self, f: impl Fn(f64) -> f64) -> Self;
    /// Applies a scalar function with two outputs lane by lane.
    fn map2(self, f: impl Fn(f64) -> (f64, f64)) -> (Self, Self);
}

impl LaneMath for f64 {
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn map(self, f: impl Fn(f64) -> f64) -> Self {
        f(self)
    }
    #[inline(always)]
    fn map2(self, f: impl Fn(f64) -> (f64, f64)) -> (Self, Self) {
        f(self)
    }
}

impl<const L: usize> LaneMath for Lanes<L> {
    #[inline(always)]
    fn sqrt(self) -> Self {
        self.map(f64::sqrt)
    }
    #[inline(always)]
    fn map(self, f: impl Fn(f64) -> f64) -> Self {
        // An indexed loop rather than `array::map`, which LLVM does not always inline (and then
        // cannot vectorise the tanh across lanes).
        let mut out = [0.0; L];
        for (o, &x) in out.iter_mut().zip(&self.0) {
            *o = f(x);
        }
        Lanes(out)
    }
    #[inline(always)]
    fn map2(self, f: impl Fn(f64) -> (f64, f64)) -> (Self, Self) {
        let mut a = [0.0; L];
        let mut b = [0.0; L];
        for i in 0..L {
            (a[i], b[i]) = f(self.0[i]);
        }
        (Lanes(a), Lanes(b))
    }
}

/// 1/k! for k = 2…13: the Taylor coefficients of e^r − 1 − r.
const INV_FACT: [f64; 12] = [
    0.5,
    0.16666666666666666,
    0.041666666666666664,
    0.008333333333333333,
    0.001388888888888889,
    0.0001984126984126984,
    2.48015873015873e-05,
    2.7557319223985893e-06,
    2.755731922398589e-07,
    2.505210838544172e-08,
    2.08767569878681e-09,
    1.6059043836821613e-10,
];

/// tanh from IEEE operations only, branch-free (so it vectorises and gives the same bits in every
/// lane): tanh|x| = E/(E + 2) with E = e^{2|x|} − 1. E is computed without cancellation for small
/// |x| by reducing y = 2|x| = k ln 2 + r, |r| ≤ ln2/2 (Cody–Waite split of ln 2, k by the
/// 1.5·2⁵² rounding trick), e^r − 1 by its Taylor series to r¹³ (remainder < 2·10⁻¹⁷ relative),
/// and E = 2^k(e^r − 1) + (2^k − 1), both terms exact up to one rounding. y is capped at 80, where
/// E/(E + 2) already rounds to 1. Accurate to a few ulp (tested against `f64::tanh`).
#[inline(always)]
pub fn tanh(x: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8; // 0x3FE62E42FEE00000: k·LN2_HI is exact for |k| < 2¹¹
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5·2⁵²
    let ax = f64::from_bits(x.to_bits() & !(1u64 << 63));
    let y = (ax + ax).min(80.0);
    let kr = y * INV_LN2 + ROUND;
    let k = kr - ROUND;
    let r = (y - k * LN2_HI) - k * LN2_LO;
    let mut p = INV_FACT[11];
    for c in INV_FACT[..11].iter().rev() {
        p = p * r + c;
    }
    let em1 = r + r * r * p;
    // k ∈ [0, 116]: 2^k from the integer in kr's low mantissa bits.
    let ki = kr.to_bits().wrapping_sub(ROUND.to_bits());
    let two_k = f64::from_bits((ki.wrapping_add(1023)) << 52);
    let e = two_k * em1 + (two_k - 1.0);
    let t = e / (e + 2.0);
    f64::from_bits(t.to_bits() | (x.to_bits() & (1u64 << 63)))
}

/// The reduced engine's σ: `tanh` by [`tanh`], the rest by [`Activation`] lane by lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReducedSigma(pub Activation);

impl<S: LaneMath> crate::train::single::Sigma<S> for ReducedSigma {
    #[inline(always)]
    fn value_and_derivative(&self, h: S) -> (S, S) {
        activation(self.0, h)
    }
}

/// σ(h) and σ'(h) for the reduced engine: `tanh` by [`tanh`] (lane-invariant and vectorisable),
/// every other activation by [`Activation::value_and_derivative`], lane by lane.
#[inline(always)]
pub fn activation<S: LaneMath>(act: Activation, h: S) -> (S, S) {
    match act {
        Activation::Tanh => {
            let t = h.map(tanh);
            (t, S::splat(1.0) - t * t)
        }
        _ => h.map2(|x| act.value_and_derivative(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            return 0;
        }
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    /// Within 4 ulp of libm's tanh over 10⁶ points spanning 10⁻³⁰⁰…40 and both signs; exact at 0,
    /// ±∞ saturates to ±1.
    #[test]
    fn tanh_matches_libm() {
        let mut worst = 0;
        let mut rng = crate::rng::ScalarRng::from_seed(3);
        for i in 0..1_000_000 {
            let x = if i % 2 == 0 {
                (rng.uniform() * 2.0 - 1.0) * 3.0
            } else {
                10f64.powf(rng.uniform() * 301.6 - 300.0) * rng.sign()
            };
            let (t, r) = (tanh(x), x.tanh());
            let u = ulps(t, r);
            assert!(u <= 4, "tanh({x:e}) = {t:e}, libm {r:e} ({u} ulp)");
            worst = worst.max(u);
        }
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(-0.0).is_sign_negative());
        assert_eq!(tanh(f64::INFINITY), 1.0);
        assert_eq!(tanh(-1e300), -1.0);
        eprintln!("tanh: worst {worst} ulp");
    }

    #[test]
    fn lanes_give_scalar_bits() {
        let xs = [0.3, -2.0, 1e-9, 7.5, -0.0, 0.61, 19.0, -40.0];
        let l = Lanes(xs);
        let (t, d) = activation(Activation::Tanh, l);
        for (i, &x) in xs.iter().enumerate() {
            let (ts, ds) = activation(Activation::Tanh, x);
            assert_eq!(t.0[i].to_bits(), ts.to_bits());
            assert_eq!(d.0[i].to_bits(), ds.to_bits());
        }
    }
}
