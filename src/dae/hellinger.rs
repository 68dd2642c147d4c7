//! Hellinger distance between 1-D densities on a uniform grid (SPEC §4.9):
//! H(p, q) = (1 − ∫√(pq) dy)^{1/2} (`half`), or √2 times that (`no_half`).

use super::config::HellingerConvention;
use super::generate::Axis;
use super::target::ProjectedLaw;

/// The SPEC's grid: y ∈ [−12, 12], dy = 0.005.
pub fn default_axis() -> Axis {
    Axis { lo: -12.0, hi: 12.0, n: 4801 }
}

/// The SPEC grid widened, keeping dy = 0.005, when the target's 1-D law reaches beyond ±12 (the MNIST
/// covariance has a leading variance of O(10)): half-width max(12, max_c |m_c| + 8 sd).
pub fn axis_for(law: &ProjectedLaw) -> Axis {
    let half = law.components.iter().map(|(_, m, c)| m[0].abs() + 8.0 * c[0].sqrt()).fold(12.0f64, f64::max);
    let n = (2.0 * half / 0.005).round() as usize + 1;
    Axis { lo: -half, hi: half, n }
}

/// H(p, q) for densities sampled on the same uniform grid of step `dy` (trapezoid rule).
pub fn hellinger(p: &[f64], q: &[f64], dy: f64, convention: HellingerConvention) -> f64 {
    assert_eq!(p.len(), q.len(), "hellinger: densities on different grids");
    let n = p.len();
    let mut bc = 0.0;
    for i in 0..n {
        let w = if i == 0 || i == n - 1 { 0.5 } else { 1.0 };
        bc += w * (p[i].max(0.0) * q[i].max(0.0)).sqrt();
    }
    let h2 = (1.0 - bc * dy).max(0.0);
    match convention {
        HellingerConvention::Half => h2.sqrt(),
        HellingerConvention::NoHalf => (2.0 * h2).sqrt(),
    }
}

/// A 1-D projected law evaluated on `axis`.
pub fn law_on_axis(law: &ProjectedLaw, axis: Axis) -> Vec<f64> {
    assert_eq!(law.k, 1, "law_on_axis: 1-D law expected");
    (0..axis.n).map(|i| law.density(&[axis.at(i)])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §7 item 47.
    #[test]
    fn hellinger_of_shifted_normals() {
        let ax = default_axis();
        let dy = ax.step();
        let phi = |y: f64, m: f64| (-0.5 * (y - m) * (y - m)).exp() / std::f64::consts::TAU.sqrt();
        let p: Vec<f64> = (0..ax.n).map(|i| phi(ax.at(i), 0.0)).collect();
        assert!(hellinger(&p, &p, dy, HellingerConvention::Half) < 1e-7);
        for delta in [0.3, 1.0, 2.5] {
            let q: Vec<f64> = (0..ax.n).map(|i| phi(ax.at(i), delta)).collect();
            let h = hellinger(&p, &q, dy, HellingerConvention::Half);
            let exact = 1.0 - (-delta * delta / 8.0f64).exp();
            assert!((h * h - exact).abs() < 1e-8, "δ={delta}: {} vs {exact}", h * h);
            let h2 = hellinger(&p, &q, dy, HellingerConvention::NoHalf);
            assert!((h2 - std::f64::consts::SQRT_2 * h).abs() < 1e-12);
        }
    }
}
