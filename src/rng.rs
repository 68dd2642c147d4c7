//! Random streams (SPEC §1 "Seeds"). Every stream is named by (system, experiment, d, walker, kind)
//! and its seed is a hash of that name with the master seed, so a walker's numbers never depend on
//! which thread or shard runs it.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// What a stream is used for. Distinct kinds of the same walker are independent streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamKind {
    Spikes = 1,
    Init = 2,
    Data = 3,
    DiffusionNoise = 4,
    Evaluation = 5,
    /// Scalar latents (λ, ν, coupling signs) and other per-step scalars.
    Latent = 6,
    /// Resampling in bootstrap confidence intervals.
    Bootstrap = 7,
}

/// The name of one random stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub system: u64,
    pub experiment: u64,
    pub d: u64,
    pub walker: u64,
    pub kind: StreamKind,
}

/// SplitMix64 finaliser: a bijective 64-bit mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a string, used to turn an experiment name into its id.
pub fn hash_name(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl StreamId {
    /// The 64-bit seed of this stream under `master`.
    pub fn seed(&self, master: u64) -> u64 {
        let mut h = mix64(master);
        for field in [self.system, self.experiment, self.d, self.walker, self.kind as u64] {
            h = mix64(h ^ field);
        }
        h
    }
}

/// A scalar stream: uniforms and normals one at a time (latents, signs, initial draws of small
/// vectors). d-length normal fills use `diffexp_kernels::NormalRng` instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalarRng {
    inner: Xoshiro256PlusPlus,
    /// Second variate of the last Box–Muller pair.
    spare: Option<f64>,
}

impl ScalarRng {
    pub fn from_seed(seed: u64) -> Self {
        Self { inner: Xoshiro256PlusPlus::seed_from_u64(seed), spare: None }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform on [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on (0, 1): never 0, for logarithms.
    #[inline]
    pub fn uniform_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A fair sign ±1.
    #[inline]
    pub fn sign(&mut self) -> f64 {
        if self.next_u64() >> 63 == 0 { 1.0 } else { -1.0 }
    }

    /// Standard normal (Box–Muller, both variates used).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * self.uniform_open().ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * self.uniform()).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// Integer uniform in 0..n.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift; the bias is < n / 2^64, negligible for bootstrap indices.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_fields_give_distinct_seeds() {
        let base = StreamId { system: 1, experiment: 2, d: 128, walker: 0, kind: StreamKind::Data };
        let mut seeds = std::collections::HashSet::new();
        seeds.insert(base.seed(42));
        seeds.insert(StreamId { walker: 1, ..base }.seed(42));
        seeds.insert(StreamId { d: 256, ..base }.seed(42));
        seeds.insert(StreamId { kind: StreamKind::Init, ..base }.seed(42));
        seeds.insert(base.seed(43));
        assert_eq!(seeds.len(), 5);
    }

    #[test]
    fn normal_moments_within_error_bars() {
        let mut r = ScalarRng::from_seed(3);
        let n = 200_000;
        let (mut m1, mut m2, mut m4) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            m1 += z;
            m2 += z * z;
            m4 += z.powi(4);
        }
        let nf = n as f64;
        // Standard errors: sd(z)=1, sd(z²)=√2, sd(z⁴)=√96; 5σ bands.
        assert!((m1 / nf).abs() < 5.0 / nf.sqrt());
        assert!((m2 / nf - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
        assert!((m4 / nf - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt());
    }
}
