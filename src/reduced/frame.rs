//! The spike span 𝓕 = span(m, u, v) in coordinates (SPEC §3.1).
//!
//! F is an orthonormal basis of 𝓕 built by Gram–Schmidt on (m, u, v) in that order, so the spikes'
//! coordinates in F form a fixed upper-triangular p×3 matrix (the identity for orthonormal spikes).
//! Everything the reduced engine knows about the spikes is this matrix.

use crate::model::{McmParams, MixedCumulantModel, SpikeLayout, Spikes};
use crate::reduced::wishart::{ChiSquare, Variates};
use diffexp_kernels::AlignedVec;

/// Dimension p of the spike span (always the three spikes m, u, v; the overlaps with all three are
/// reported whatever their strengths, as in the full engine).
pub const P: usize = 3;

/// Coordinates of the unit spikes in F.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpikeFrame {
    /// `spikes[e]` = F-coordinates of spike e ∈ (m, u, v).
    pub spikes: [[f64; P]; 3],
}

impl SpikeFrame {
    /// Orthonormal spikes: F = (m, u, v).
    pub fn orthonormal() -> Self {
        Self { spikes: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] }
    }

    /// The law of the spikes of a full-d run with the given layout. Orthonormal spikes (QR of a
    /// Gaussian d×3 matrix) are the identity in F. Random spikes are three independent Gaussian
    /// vectors normalised; Gram–Schmidt of the Gaussian vectors gives an upper-triangular R with
    /// R_jj² ~ χ²_{d−j} and R_ij ~ N(0,1) (Bartlett), and the unit spikes are R's normalised columns.
    pub fn draw<V: Variates>(d: u64, layout: SpikeLayout, rng: &mut V) -> Self {
        match layout {
            SpikeLayout::Orthonormal => Self::orthonormal(),
            SpikeLayout::Random => {
                let mut r = [[0.0; P]; 3];
                for (j, col) in r.iter_mut().enumerate() {
                    for x in col.iter_mut().take(j) {
                        *x = rng.normal();
                    }
                    col[j] = ChiSquare::new(d - j as u64).sample(rng).sqrt();
                }
                for col in r.iter_mut() {
                    let n = col.iter().map(|x| x * x).sum::<f64>().sqrt();
                    col.iter_mut().for_each(|x| *x /= n);
                }
                Self { spikes: r }
            }
        }
    }

    /// F (as P vectors of length d) and the frame of explicit spike vectors: modified Gram–Schmidt
    /// on (m, u, v). For tests and for projecting a full-d run onto the reduced coordinates.
    pub fn from_vectors(m: &[f64], u: &[f64], v: &[f64]) -> (Self, [Vec<f64>; P]) {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut basis: [Vec<f64>; P] = [m.to_vec(), u.to_vec(), v.to_vec()];
        for j in 0..P {
            for _pass in 0..2 {
                for i in 0..j {
                    let r = dot(&basis[i], &basis[j]);
                    let bi = basis[i].clone();
                    basis[j].iter_mut().zip(&bi).for_each(|(x, y)| *x -= r * y);
                }
            }
            let n = dot(&basis[j], &basis[j]).sqrt();
            basis[j].iter_mut().for_each(|x| *x /= n);
        }
        let mut spikes = [[0.0; P]; 3];
        for (e, s) in [m, u, v].into_iter().enumerate() {
            for i in 0..P {
                spikes[e][i] = dot(&basis[i], s);
            }
        }
        (Self { spikes }, basis)
    }

    /// Signed overlaps ⟨w, e⟩/‖w‖ of a vector with F-coordinates `alpha` and norm `norm`.
    #[inline]
    pub fn overlaps(&self, alpha: &[f64; P], norm: f64) -> [f64; 3] {
        let inv = 1.0 / norm;
        let e = &self.spikes;
        std::array::from_fn(|k| (e[k][0] * alpha[0] + e[k][1] * alpha[1] + e[k][2] * alpha[2]) * inv)
    }

    /// The mixed cumulant model written in F-coordinates: a p-dimensional `MixedCumulantModel`
    /// whose spikes are the coordinate vectors. Its `apply_shift` and its surrogate act on
    /// F-coordinates exactly as the d-dimensional model acts on vectors (every correction lives in
    /// 𝓕), so the reduced engine samples the spike-span part with the model's own code.
    pub fn coordinate_model(&self, params: McmParams) -> MixedCumulantModel<f64> {
        let [m, u, v] = self.spikes;
        let gram = self.spikes.map(|a| self.spikes.map(|b| (0..P).map(|k| a[k] * b[k]).sum()));
        MixedCumulantModel::new(
            params,
            Spikes {
                m: AlignedVec::from_slice(&m),
                u: AlignedVec::from_slice(&u),
                v: AlignedVec::from_slice(&v),
                gram,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::ScalarRng;

    /// The frame of explicit random spikes has the Gram matrix of the spikes and is upper triangular.
    #[test]
    fn frame_of_vectors_preserves_gram() {
        let d = 50;
        let sp = Spikes::<f64>::draw(d, SpikeLayout::Random, &mut ScalarRng::from_seed(4));
        let (f, basis) = SpikeFrame::from_vectors(&sp.m, &sp.u, &sp.v);
        for i in 0..3 {
            for j in 0..3 {
                let g: f64 = (0..P).map(|k| f.spikes[i][k] * f.spikes[j][k]).sum();
                assert!((g - sp.gram[i][j]).abs() < 1e-13);
                let bij: f64 = basis[i].iter().zip(&basis[j]).map(|(a, b)| a * b).sum();
                assert!((bij - (i == j) as u8 as f64).abs() < 1e-14);
            }
        }
        assert!(f.spikes[0][1].abs() < 1e-14 && f.spikes[0][2].abs() < 1e-14 && f.spikes[1][2].abs() < 1e-14);
    }

    /// Random-spike frames have the law of the full sampler's Gram matrix: E⟨m,u⟩² = 1/d.
    #[test]
    fn random_frame_overlap_law() {
        let d = 40u64;
        let mut rng = ScalarRng::from_seed(8);
        let n = 100_000;
        let mut s = 0.0;
        let mut s2 = 0.0;
        for _ in 0..n {
            let f = SpikeFrame::draw(d, SpikeLayout::Random, &mut rng);
            let g: f64 = (0..P).map(|k| f.spikes[0][k] * f.spikes[2][k]).sum();
            s += g * g;
            s2 += g.powi(4);
        }
        let nf = n as f64;
        let mean = s / nf;
        let se = ((s2 / nf - mean * mean) / nf).sqrt();
        assert!((mean - 1.0 / d as f64).abs() < 5.0 * se, "E⟨m,v⟩² = {mean}");
    }
}
