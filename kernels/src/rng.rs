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

/// Box–Muller from one 64-bit word: 32 bits for the radius, 32 for the angle.
fn box_muller(bits: u64) -> (f64, f64) {
    let u1 = ((bits >> 32) as f64 + 0.5) * (1.0 / 4294967296.0);
    let u2 = ((bits & 0xffff_ffff) as f64) * (1.0 / 4294967296.0);
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (core::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}
