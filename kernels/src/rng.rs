//! Multi-lane normal generator.

use crate::Real;
use crate::elem::{Elem, as_slice_mut, chunks_mut, same_mut};
use crate::normal::Xoshiro;
use crate::simd::{Kernel, Lanes, SimdLevel, dispatch};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Number of independent xoshiro256++ lanes. Fixed (not the SIMD width) so that every SIMD level
/// produces the same numbers.
pub const LANES: usize = 16;

/// Normals per block: one Box–Muller pair per lane.
pub const BLOCK: usize = 2 * LANES;

/// Length of [`NormalRng::state`]: four xoshiro256 words per lane.
pub const STATE_WORDS: usize = 4 * LANES;

/// A stream of standard normal variates, seeded from one `u64`.
///
/// Lane `l` is the `l`-th `jump()` of a xoshiro256++ generator seeded by
/// `Xoshiro256PlusPlus::seed_from_u64(seed)`. Each step of all lanes gives one block of
/// [`BLOCK`] = 2·`LANES` normals: lane `l`'s 64-bit output `o` is one Box–Muller pair, with
/// radius √(−2 ln u), u = ((o >> 32) + ½)·2⁻³², and an angle built from the low 32 bits, and the
/// pair lands at positions `p` and `p + 16` of the block, `p = 2l` (l < 8) or `2(l − 8) + 1`.
///
/// A `fill` whose length is not a multiple of the block discards the rest of its last block, so
/// a stream is a pure function of (seed, the lengths of the calls made on it): `fill(&mut
/// x[..32])` then `fill(&mut x[32..])` equals `fill(&mut x)`, but two fills of 16 do not equal one
/// of 32 (the second starts a new block).
///
/// `fill::<f32>` is the fast path; `fill::<f64>` is accurate to a few ulp (the validation mode).
/// Both use the same bits, so f32 gives the f64 numbers rounded: within a few f32 ulp wherever
/// the pair's radius exceeds 0.1, and within 2.5e-4 in absolute terms below (there the f32
/// uniform near 1 is too coarse; this touches |z| ≲ 0.03, a mass of ~5e-4). Both give the same
/// bits on every [`SimdLevel`].
#[derive(Clone, Debug)]
pub struct NormalRng {
    /// Word-major xoshiro256 states: `s[w][lane]`.
    s: [[u64; LANES]; 4],
    level: SimdLevel,
}

impl NormalRng {
    /// The stream of `seed`, run at the best [`SimdLevel`] of this CPU.
    pub fn from_seed(seed: u64) -> Self {
        let mut g = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut lanes = [[0u64; 4]; LANES];
        for lane in &mut lanes {
            *lane = bytemuck::cast::<[u8; 32], [u64; 4]>(g.state()).map(u64::from_le);
            g.jump();
        }
        let s = core::array::from_fn(|w| core::array::from_fn(|l| lanes[l][w]));
        Self { s, level: SimdLevel::detect() }
    }

    /// The full generator state, lane by lane: `state[4·l + w]` is word `w` of lane `l`'s
    /// xoshiro256 state. [`NormalRng::from_state`] restores it exactly.
    pub fn state(&self) -> Vec<u64> {
        (0..LANES).flat_map(|l| (0..4).map(move |w| self.s[w][l])).collect()
    }

    /// The generator whose [`NormalRng::state`] is `state`.
    ///
    /// Fails unless `state` has [`STATE_WORDS`] words and no lane's state is all zero (the one
    /// state xoshiro never leaves or reaches).
    pub fn from_state(state: &[u64]) -> Result<Self, String> {
        if state.len() != STATE_WORDS {
            return Err(format!("NormalRng state must have {STATE_WORDS} words, got {}", state.len()));
        }
        let mut s = [[0u64; LANES]; 4];
        for (l, words) in state.chunks_exact(4).enumerate() {
            if words.iter().all(|&w| w == 0) {
                return Err(format!("NormalRng state: lane {l} is all zero, which xoshiro256 never reaches"));
            }
            for w in 0..4 {
                s[w][l] = words[w];
            }
        }
        Ok(Self { s, level: SimdLevel::detect() })
    }

    /// The same stream, computed at `level` (the numbers do not change; this is for tests and
    /// benchmarks).
    ///
    /// # Panics
    /// If the CPU does not support `level`.
    pub fn with_simd_level(mut self, level: SimdLevel) -> Self {
        assert!(level.is_available(), "SIMD level {level:?} is not available on this CPU");
        self.level = level;
        self
    }

    /// The level `fill` and the fused kernels run at (detected at construction).
    pub fn simd_level(&self) -> SimdLevel {
        self.level
    }

    /// Fills `out` with iid N(0,1), consuming ⌈len/[`BLOCK`]⌉ blocks of the stream.
    pub fn fill<T: Real>(&mut self, out: &mut [T]) {
        let level = self.level;
        if let Some(out) = same_mut::<T, f32>(out) {
            dispatch(level, Fill { s: &mut self.s, out });
        } else if let Some(out) = same_mut::<T, f64>(out) {
            dispatch(level, Fill { s: &mut self.s, out });
        } else {
            // A `Real` other than f32/f64: draw in f64 and convert.
            let mut buf = [0.0f64; BLOCK];
            for block in out.chunks_mut(BLOCK) {
                self.fill(&mut buf[..]);
                for (o, &b) in block.iter_mut().zip(&buf) {
                    *o = T::from_f64(b);
                }
            }
        }
    }

    pub(crate) fn words_mut(&mut self) -> &mut [[u64; LANES]; 4] {
        &mut self.s
    }
}

struct Fill<'a, E> {
    s: &'a mut [[u64; LANES]; 4],
    out: &'a mut [E],
}

impl<E: Elem> Kernel for Fill<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run<K: Lanes>(self, k: K) {
        let mut g = Xoshiro::load(k, self.s);
        let (whole, tail) = chunks_mut::<E>(self.out);
        for block in whole.chunks_exact_mut(E::PER_BLOCK) {
            let z = E::block(k, &mut g);
            for (c, &v) in block.iter_mut().zip(&z) {
                E::store(k, c, v);
            }
        }
        // The last, partial block (whole registers, then elements): draw it whole, keep its head.
        let done = whole.len() % E::PER_BLOCK;
        if done != 0 || !tail.is_empty() {
            let z = if done != 0 {
                // `whole` ended inside a block that the loop above did not see.
                let start = whole.len() - done;
                let z = E::block(k, &mut g);
                for (c, &v) in whole[start..].iter_mut().zip(&z) {
                    E::store(k, c, v);
                }
                z
            } else {
                E::block(k, &mut g)
            };
            if !tail.is_empty() {
                let mut c = bytemuck::Zeroable::zeroed();
                E::store(k, &mut c, z[done]);
                tail.copy_from_slice(&as_slice_mut::<E>(&mut c)[..tail.len()]);
            }
        }
        g.store(k, self.s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    const SEEDS: [u64; 3] = [0, 7, 0xdead_beef_cafe_f00d];

    /// Position in the block of lane `l`'s pair (first member; the second is 16 further).
    fn position(l: usize) -> usize {
        if l < 8 { 2 * l } else { 2 * (l - 8) + 1 }
    }

    /// The transform of the module docs, with std's ln/sin/cos in f64.
    fn box_muller_ref(o: u64) -> (f64, f64) {
        let (k, y) = (o >> 32, o as u32);
        let u = (k as f64 + 0.5) / 4294967296.0;
        let r = (-2.0 * u.ln()).sqrt();
        let t = 4.0 * (y & 0x3fff_ffff) as f64 + 2.0 - 2147483648.0;
        let phi = t * core::f64::consts::PI / 8589934592.0;
        let (mut a, b) = (r * phi.cos(), r * phi.sin());
        if y >> 31 != 0 {
            a = -a;
        }
        if (y >> 30) & 1 != 0 { (b, a) } else { (a, b) }
    }

    fn scalar_lanes(seed: u64) -> Vec<Xoshiro256PlusPlus> {
        let mut g = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..LANES)
            .map(|_| {
                let l = g.clone();
                g.jump();
                l
            })
            .collect()
    }

    fn levels() -> Vec<SimdLevel> {
        SimdLevel::available()
    }

    #[test]
    fn state_is_lanes_of_jumps_and_advances_one_step_per_block() {
        for seed in SEEDS {
            let mut lanes = scalar_lanes(seed);
            for level in levels() {
                let mut rng = NormalRng::from_seed(seed).with_simd_level(level);
                let mut lanes = lanes.clone();
                for len in [0usize, 1, 32, 33, 100] {
                    let state = rng.state();
                    for (l, g) in lanes.iter().enumerate() {
                        let bytes = g.state();
                        for w in 0..4 {
                            assert_eq!(
                                state[4 * l + w],
                                u64::from_le_bytes(bytes[8 * w..8 * w + 8].try_into().unwrap())
                            );
                        }
                    }
                    rng.fill(&mut vec![0.0f32; len]);
                    for g in &mut lanes {
                        for _ in 0..len.div_ceil(BLOCK) {
                            g.next_u64();
                        }
                    }
                }
            }
            lanes.clear();
        }
    }

    #[test]
    fn f64_matches_the_transform_with_std_functions() {
        for seed in SEEDS {
            let mut lanes = scalar_lanes(seed);
            let mut rng = NormalRng::from_seed(seed);
            let blocks = 2000;
            let mut z = vec![0.0f64; blocks * BLOCK];
            rng.fill(&mut z);
            let mut worst = 0.0f64;
            for b in 0..blocks {
                for (l, g) in lanes.iter_mut().enumerate() {
                    let (a, c) = box_muller_ref(g.next_u64());
                    let p = b * BLOCK + position(l);
                    // Error of r·cos(φ) relative to r (ln near u = 1 is the ill-conditioned part).
                    let r = a.hypot(c);
                    worst = worst.max((z[p] - a).abs() / r.max(1e-300)).max((z[p + 16] - c).abs() / r.max(1e-300));
                }
            }
            assert!(worst < 1e-14, "f64 normals differ from the reference transform by {worst:e} (relative to r)");
        }
    }

    #[test]
    fn f32_is_the_f64_stream_rounded() {
        for seed in SEEDS {
            let n = 200_000;
            let mut z32 = vec![0.0f32; n];
            let mut z64 = vec![0.0f64; n];
            NormalRng::from_seed(seed).fill(&mut z32);
            NormalRng::from_seed(seed).fill(&mut z64);
            // Where r > 0.1: a few ulp (polynomials and roundings). Below, the f32 uniform near
            // 1 is rounded to 2⁻²⁵, so r² is off by up to ~6e-8 and r by up to √6e-8 ≈ 2.5e-4.
            let (mut worst_ulps, mut worst_abs) = (0.0f64, 0.0f64);
            for (i, (&a, &b)) in z32.iter().zip(&z64).enumerate() {
                let partner = if i % BLOCK < 16 { i + 16 } else { i - 16 };
                let err = (a as f64 - b).abs();
                if b.hypot(z64[partner]) > 0.1 {
                    worst_ulps = worst_ulps.max(err / (f32::EPSILON as f64 * b.abs().max(1.0)));
                }
                worst_abs = worst_abs.max(err);
            }
            assert!(worst_ulps < 4.0, "f32 and f64 streams differ by {worst_ulps} f32 ulps where r > 0.1");
            assert!(worst_abs < 2.5e-4, "f32 and f64 streams differ by {worst_abs:e}");
        }
    }

    #[test]
    fn identical_bits_on_every_simd_level() {
        for seed in SEEDS {
            let lengths = [1usize, 15, 16, 17, 31, 32, 33, 100, 1000, 4097];
            let run32 = |level| {
                let mut rng = NormalRng::from_seed(seed).with_simd_level(level);
                lengths.map(|n| {
                    let mut z = vec![0.0f32; n];
                    rng.fill(&mut z);
                    z.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                })
            };
            let run64 = |level| {
                let mut rng = NormalRng::from_seed(seed).with_simd_level(level);
                lengths.map(|n| {
                    let mut z = vec![0.0f64; n];
                    rng.fill(&mut z);
                    z.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                })
            };
            let levels = levels();
            for &level in &levels[1..] {
                assert!(run32(levels[0]) == run32(level), "f32: {:?} and {level:?} differ", levels[0]);
                assert!(run64(levels[0]) == run64(level), "f64: {:?} and {level:?} differ", levels[0]);
            }
        }
    }

    #[test]
    fn chunkings_on_block_boundaries_give_the_same_stream() {
        let mut whole = vec![0.0f32; 10 * BLOCK];
        NormalRng::from_seed(3).fill(&mut whole);
        for cuts in [vec![BLOCK], vec![3 * BLOCK, 4 * BLOCK], vec![BLOCK, 2 * BLOCK, 9 * BLOCK]] {
            let mut rng = NormalRng::from_seed(3);
            let mut parts = vec![0.0f32; 10 * BLOCK];
            let mut start = 0;
            for &c in cuts.iter().chain([10 * BLOCK].iter()) {
                rng.fill(&mut parts[start..c]);
                start = c;
            }
            assert_eq!(whole, parts, "cuts {cuts:?}");
        }
        // A partial fill consumes its whole last block: a fill of 10 then 40 gives block 0's head
        // and then blocks 1 and 2.
        let mut rng = NormalRng::from_seed(3);
        let (mut a, mut b) = (vec![0.0f32; 10], vec![0.0f32; 40]);
        rng.fill(&mut a);
        rng.fill(&mut b);
        assert_eq!(a[..], whole[..10]);
        assert_eq!(b[..], whole[BLOCK..BLOCK + 40]);
        // f64 likewise.
        let mut whole = vec![0.0f64; 4 * BLOCK];
        NormalRng::from_seed(3).fill(&mut whole);
        let mut rng = NormalRng::from_seed(3);
        let (mut a, mut b) = (vec![0.0f64; 45], vec![0.0f64; 64]);
        rng.fill(&mut a);
        rng.fill(&mut b);
        assert_eq!(a[..], whole[..45]);
        assert_eq!(b[..], whole[2 * BLOCK..]);
    }

    #[test]
    fn restored_state_continues_the_stream() {
        let mut rng = NormalRng::from_seed(11);
        rng.fill(&mut vec![0.0f32; 777]);
        let saved = rng.state();
        assert_eq!(saved.len(), STATE_WORDS);
        let mut restored = NormalRng::from_state(&saved).unwrap();
        let (mut a, mut b) = (vec![0.0f32; 5000], vec![0.0f32; 5000]);
        rng.fill(&mut a);
        restored.fill(&mut b);
        assert_eq!(a, b);
        assert_eq!(rng.state(), restored.state());

        assert!(NormalRng::from_state(&saved[1..]).is_err());
        let mut zero_lane = saved.clone();
        zero_lane[8..12].fill(0);
        assert!(NormalRng::from_state(&zero_lane).unwrap_err().contains("lane 2"));
    }

    /// Moments, tail and serial correlations of `n` normals from `fill::<T>` in chunks of 2²⁰.
    /// Every tolerance is 5 standard errors of the estimator at this n.
    fn check_distribution<T: Real>(seed: u64, n: usize, tail_at: f64) {
        let mut rng = NormalRng::from_seed(seed);
        let mut buf = vec![T::default(); 1 << 20];
        let (mut s1, mut s2, mut s4, mut tail) = (0.0, 0.0, 0.0, 0usize);
        // Lags 1 (neighbours from different lanes), 16 (the two members of a pair) and 32
        // (the same lane one step later), of z and of z².
        let lags = [1usize, 16, 32];
        let (mut c, mut c2) = ([0.0; 3], [0.0; 3]);
        let mut m = 0usize;
        while m < n {
            rng.fill(&mut buf);
            let z: Vec<f64> = buf.iter().map(|v| v.to_f64()).collect();
            for (i, &v) in z.iter().enumerate() {
                let v2 = v * v;
                s1 += v;
                s2 += v2;
                s4 += v2 * v2;
                tail += (v.abs() > tail_at) as usize;
                for (j, &lag) in lags.iter().enumerate() {
                    if i + lag < z.len() {
                        c[j] += v * z[i + lag];
                        c2[j] += (v2 - 1.0) * (z[i + lag] * z[i + lag] - 1.0);
                    }
                }
            }
            m += buf.len();
        }
        let nf = m as f64;
        let mean = s1 / nf;
        assert!(mean.abs() < 5.0 / nf.sqrt(), "mean {mean}");
        // Var(z²) = 2, Var(z⁴) = E z⁸ − 9 = 96.
        let var = s2 / nf;
        assert!((var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(), "variance {var}");
        let m4 = s4 / nf;
        assert!((m4 - 3.0).abs() < 5.0 * (96.0 / nf).sqrt(), "E z^4 = {m4}");
        // Tail count is Binomial(n, p), p = 2(1 − Φ(t)) = erfc(t/√2).
        let p = libm::erfc(tail_at / core::f64::consts::SQRT_2);
        let expected = nf * p;
        assert!(
            (tail as f64 - expected).abs() < 5.0 * (nf * p * (1.0 - p)).sqrt(),
            "{tail} beyond {tail_at}σ, expected {expected:.1}"
        );
        // Products of independent N(0,1) have variance 1; of centred squares, 4.
        for (j, &lag) in lags.iter().enumerate() {
            let r = c[j] / nf;
            assert!(r.abs() < 5.0 / nf.sqrt(), "lag {lag}: correlation {r}");
            let r2 = c2[j] / nf;
            assert!(r2.abs() < 5.0 * 2.0 / nf.sqrt(), "lag {lag}: covariance of squares {r2}");
        }
    }

    #[test]
    fn f32_normals_have_normal_moments_tails_and_no_serial_correlation() {
        // 2⁻⁵σ-tail: p(|z| > 5) = 5.7e-7, ~60 expected in 10⁸.
        check_distribution::<f32>(2024, 100 << 20, 5.0);
    }

    #[test]
    fn f64_normals_have_normal_moments_tails_and_no_serial_correlation() {
        check_distribution::<f64>(99, 16 << 20, 4.0);
    }

    /// Kolmogorov–Smirnov statistic of `n` draws against Φ.
    fn ks<T: Real>(seed: u64, n: usize) -> f64 {
        let mut z = vec![T::default(); n];
        NormalRng::from_seed(seed).fill(&mut z);
        let mut z: Vec<f64> = z.iter().map(|v| v.to_f64()).collect();
        z.sort_by(f64::total_cmp);
        let phi = |x: f64| 0.5 * libm::erfc(-x / core::f64::consts::SQRT_2);
        z.iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = phi(x);
                (f - i as f64 / n as f64).max((i + 1) as f64 / n as f64 - f)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn kolmogorov_smirnov_against_phi() {
        // √n·D ~ Kolmogorov; P(√n·D > 1.95) ≈ 0.001.
        let n = 1 << 20;
        for seed in SEEDS {
            let d32 = ks::<f32>(seed, n);
            let d64 = ks::<f64>(seed, n);
            assert!(d32 * (n as f64).sqrt() < 1.95, "f32 seed {seed}: √n·D = {}", d32 * (n as f64).sqrt());
            assert!(d64 * (n as f64).sqrt() < 1.95, "f64 seed {seed}: √n·D = {}", d64 * (n as f64).sqrt());
        }
    }
}
