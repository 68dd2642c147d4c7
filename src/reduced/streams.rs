//! A reduced walker's random numbers: normals from a [`NormalRng`] in blocks, uniforms and signs from
//! a [`ScalarRng`].
//!
//! A step needs about a dozen normals (spike-span and e₀ coordinates of the fresh vectors, the
//! Bartlett normals, the Marsaglia–Tsang proposals). Drawing them one at a time would pay the
//! generator's per-call cost every time; filling a block of [`BLOCK`] normals at once lets the
//! (SIMD) generator work at full width, and the step then only reads the buffer.

use super::wishart::Variates;
use crate::rng::ScalarRng;
use diffexp_kernels::NormalRng;

/// Normals drawn per refill: a multiple of the generator's 32-normal block, so nothing is discarded.
pub const BLOCK: usize = 512;

/// The streams of one reduced walker: buffered normals plus a scalar stream.
#[derive(Clone, Debug)]
pub struct WalkerStreams {
    normals: NormalRng,
    buf: Box<[f64; BLOCK]>,
    pos: usize,
    pub scalar: ScalarRng,
}

impl WalkerStreams {
    pub fn new(normal_seed: u64, scalar_seed: u64) -> Self {
        Self {
            normals: NormalRng::from_seed(normal_seed),
            buf: Box::new([0.0; BLOCK]),
            pos: BLOCK,
            scalar: ScalarRng::from_seed(scalar_seed),
        }
    }

    #[cold]
    fn refill(&mut self) {
        self.normals.fill(&mut self.buf[..]);
        self.pos = 0;
    }

    /// The next `N` normals.
    #[inline]
    pub fn normals<const N: usize>(&mut self) -> [f64; N] {
        if self.pos + N > BLOCK {
            // Keep the unread tail: stream order is the order of `fill`.
            let tail = BLOCK - self.pos;
            let mut out = [0.0; N];
            out[..tail].copy_from_slice(&self.buf[self.pos..]);
            self.refill();
            out[tail..].copy_from_slice(&self.buf[..N - tail]);
            self.pos = N - tail;
            return out;
        }
        let mut out = [0.0; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        out
    }

    /// Saved form: (generator state, unread buffered normals).
    pub fn save(&self) -> (Vec<u64>, Vec<f64>) {
        (self.normals.state(), self.buf[self.pos..].to_vec())
    }

    /// Restores a saved form.
    pub fn restore(&mut self, state: &[u64], unread: &[f64], scalar: &ScalarRng) -> Result<(), String> {
        if unread.len() > BLOCK {
            return Err(format!("checkpoint has {} buffered normals, at most {BLOCK} allowed", unread.len()));
        }
        self.normals = NormalRng::from_state(state)?;
        self.pos = BLOCK - unread.len();
        self.buf[self.pos..].copy_from_slice(unread);
        self.scalar = scalar.clone();
        Ok(())
    }
}

impl Variates for WalkerStreams {
    #[inline]
    fn normal(&mut self) -> f64 {
        if self.pos == BLOCK {
            self.refill();
        }
        let x = self.buf[self.pos];
        self.pos += 1;
        x
    }

    #[inline]
    fn uniform_open(&mut self) -> f64 {
        self.scalar.uniform_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading in chunks of any size gives the generator's own sequence, across refills.
    #[test]
    fn chunked_reads_follow_the_stream() {
        let mut reference = vec![0.0f64; 3 * BLOCK];
        NormalRng::from_seed(9).fill(&mut reference);
        let mut s = WalkerStreams::new(9, 1);
        let mut got = Vec::new();
        while got.len() + 7 <= reference.len() {
            got.extend_from_slice(&s.normals::<7>());
            got.push(s.normal());
        }
        assert_eq!(&reference[..got.len()], &got[..]);
    }

    #[test]
    fn save_restore_continues() {
        let mut a = WalkerStreams::new(3, 4);
        for _ in 0..700 {
            a.normal();
        }
        let (st, unread) = a.save();
        let mut b = WalkerStreams::new(0, 0);
        b.restore(&st, &unread, &a.scalar).unwrap();
        for _ in 0..1000 {
            assert_eq!(a.normal().to_bits(), b.normal().to_bits());
            assert_eq!(a.uniform_open().to_bits(), b.uniform_open().to_bits());
        }
    }
}
