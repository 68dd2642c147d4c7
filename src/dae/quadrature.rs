//! Gauss–Hermite rules for the standard normal measure (probabilists' weight e^{-x²/2}/√(2π), weights
//! summing to 1), by Golub–Welsch: the nodes are the eigenvalues of the Jacobi matrix with off-diagonal
//! √k, the weights the squared first components of its eigenvectors.

use faer::{Mat, Side};

/// An n-point rule: (nodes, weights).
#[derive(Clone, Debug)]
pub struct GaussHermite {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

impl GaussHermite {
    pub fn new(n: usize) -> Self {
        assert!(n >= 1, "GaussHermite: n ≥ 1");
        let j = Mat::<f64>::from_fn(n, n, |a, b| if a == b + 1 || b == a + 1 { (a.max(b) as f64).sqrt() } else { 0.0 });
        let evd = j.self_adjoint_eigen(Side::Lower).expect("Golub–Welsch eigendecomposition");
        let s = evd.S().column_vector();
        let u = evd.U();
        let mut nodes = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(n);
        for k in 0..n {
            nodes.push(s[k]);
            weights.push(u[(0, k)] * u[(0, k)]);
        }
        // Symmetrise (the exact rule is symmetric) to remove rounding asymmetry.
        for k in 0..n / 2 {
            let (a, b) = (k, n - 1 - k);
            let x = 0.5 * (nodes[b] - nodes[a]);
            nodes[a] = -x;
            nodes[b] = x;
            let w = 0.5 * (weights[a] + weights[b]);
            weights[a] = w;
            weights[b] = w;
        }
        if n % 2 == 1 {
            nodes[n / 2] = 0.0;
        }
        let tot: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= tot);
        GaussHermite { nodes, weights }
    }

    /// The tensor-product rule in `dim` dimensions: (points row-major n^dim × dim, weights).
    pub fn tensor(&self, dim: usize) -> (Vec<f64>, Vec<f64>) {
        let n = self.nodes.len();
        let total = n.pow(dim as u32);
        let mut pts = vec![0.0; total * dim];
        let mut wts = vec![1.0; total];
        for idx in 0..total {
            let mut rem = idx;
            for k in 0..dim {
                let i = rem % n;
                rem /= n;
                pts[idx * dim + k] = self.nodes[i];
                wts[idx] *= self.weights[i];
            }
        }
        (pts, wts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_hermite_integrates_normal_moments() {
        let gh = GaussHermite::new(41);
        let m = |k: i32| gh.nodes.iter().zip(&gh.weights).map(|(x, w)| w * x.powi(k)).sum::<f64>();
        assert!((m(0) - 1.0).abs() < 1e-13);
        assert!(m(1).abs() < 1e-13);
        assert!((m(2) - 1.0).abs() < 1e-12);
        assert!((m(4) - 3.0).abs() < 1e-11);
        assert!((m(8) - 105.0).abs() < 1e-8);
        // E tanh(g)² = 0.394294490397848… (150-node reference); tanh's poles at ±iπ/2 limit the 41-node
        // rule to ~1e-6 here, while polynomial moments are exact.
        let e2 = |gh: &GaussHermite| gh.nodes.iter().zip(&gh.weights).map(|(x, w)| w * x.tanh().powi(2)).sum::<f64>();
        assert!((e2(&gh) - 0.394_294_490_397_848).abs() < 1e-6, "{}", e2(&gh));
        assert!((e2(&GaussHermite::new(151)) - 0.394_294_490_397_848).abs() < 1e-11);
    }
}
