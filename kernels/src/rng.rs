//! Multi-lane normal generator.

use crate::Real;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Number of independent xoshiro256++ lanes. Fixed (not the SIMD width) so that every SIMD level
/// produces the same numbers.
pub const LANES: usize = 16;

/// A stream of standard normal variates, seeded from one `u64`.
///
/// Lane `l` is the `l`-th `jump()` of a xoshiro256++ generator seeded from `seed`. Normals come in
/// blocks of `2·LANES` (one Box–Muller pair per lane); a `fill` whose length is not a multiple of the
/// block discards the rest of its last block, so a stream is a pure function of (seed, the lengths
/// of the calls made on it).
#[derive(Clone, Debug)]
pub struct NormalRng {
    lanes: Vec<Xoshiro256PlusPlus>,
}

impl NormalRng {
    pub fn from_seed(seed: u64) -> Self {
        let mut g = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut lanes = Vec::with_capacity(LANES);
        for _ in 0..LANES {
            lanes.push(g.clone());
            g.jump();
        }
        Self { lanes }
    }

    /// The complete state (4 words per lane), for checkpoints.
    pub fn state(&self) -> Vec<u64> {
        self.lanes
            .iter()
            .flat_map(|l| {
                let v = serde_words(l);
                v.into_iter()
            })
            .collect()
    }

    /// Restores a stream saved by [`NormalRng::state`]; it continues exactly where it stopped.
    pub fn from_state(state: &[u64]) -> Result<Self, String> {
        if state.len() != 4 * LANES {
            return Err(format!("NormalRng state must have {} words, got {}", 4 * LANES, state.len()));
        }
        if state.chunks(4).any(|c| c.iter().all(|&w| w == 0)) {
            return Err("NormalRng state has an all-zero lane".into());
        }
        let lanes = state
            .chunks(4)
            .map(|c| {
                let mut seed = [0u8; 32];
                for (i, w) in c.iter().enumerate() {
                    seed[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
                }
                Xoshiro256PlusPlus::from_seed(seed)
            })
            .collect();
        Ok(Self { lanes })
    }

    /// Fills `out` with iid N(0,1).
    pub fn fill<T: Real>(&mut self, out: &mut [T]) {
        let mut blocks = out.chunks_mut(2 * LANES);
        for block in &mut blocks {
            let mut tmp = [0.0f64; 2 * LANES];
            for (l, lane) in self.lanes.iter_mut().enumerate() {
                let (a, b) = box_muller(lane.next_u64());
                tmp[l] = a;
                tmp[LANES + l] = b;
            }
            for (o, t) in block.iter_mut().zip(tmp) {
                *o = T::from_f64(t);
            }
        }
    }
}

/// The four state words of a lane. `from_seed` of xoshiro256++ takes the state words little-endian,
/// so cloning and reading 4 outputs' worth of state is avoided by reading it back the same way.
fn serde_words(l: &Xoshiro256PlusPlus) -> [u64; 4] {
    // Recover the state by stepping a clone backwards is impossible; instead keep a shadow: the
    // reference generator is rebuilt from its words via `from_seed`, so read them with Debug.
    let dbg = format!("{l:?}");
    let nums: Vec<u64> = dbg
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    [nums[nums.len() - 4], nums[nums.len() - 3], nums[nums.len() - 2], nums[nums.len() - 1]]
}

/// Box–Muller from one 64-bit word: 32 bits for the radius, 32 for the angle.
fn box_muller(bits: u64) -> (f64, f64) {
    let u1 = ((bits >> 32) as f64 + 0.5) * (1.0 / 4294967296.0);
    let u2 = ((bits & 0xffff_ffff) as f64) * (1.0 / 4294967296.0);
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (core::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}
