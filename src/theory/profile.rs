//! The denoiser profile of the single-direction denoiser (i) (SPEC §2.7, §2.9):
//!
//! Ψ(r) = E_ζ[b σ(h)(a h − r) + ½ b² σ(h)²],  h = a r + s ζ,
//! ψ_k(a, b, σ) = E_g[Ψ(g) He_k(g)],  so that  L(w) = C₀ + Σ_k ψ_k/k! E He_k(⟨w, x⟩).
//!
//! ψ_k depends on the architecture and noise level only, never on the data or on d. It is computed by
//! 2-D Gauss–Hermite quadrature over (g, ζ) with 200 nodes per axis. For a kinked σ (ReLU) the inner
//! ζ-integral is split at the kink h = 0 (composite Gauss–Legendre with Gaussian tails), which makes
//! it as accurate as the smooth case; Ψ itself is smooth (a Gaussian convolution), so the outer
//! Gauss–Hermite rule converges exponentially either way.

use super::hermite::hermite_all;
use super::quadrature::{GaussRule, GaussianLine};
use crate::net::Activation;

/// Ψ and its Hermite coefficients for one (σ, a, b).
#[derive(Clone, Debug)]
pub struct DenoiserProfile {
    pub act: Activation,
    /// Signal coefficient a of x_t = a x + s ξ; s = √(1 − a²).
    pub a: f64,
    pub s: f64,
    pub b: f64,
    gh: GaussRule,
    line: GaussianLine,
}

/// Gauss–Hermite nodes per axis for ψ_k (SPEC §2.9).
pub const PROFILE_NODES: usize = 200;

impl DenoiserProfile {
    #[track_caller]
    pub fn new(act: Activation, a: f64, b: f64) -> Self {
        Self::with_nodes(act, a, b, PROFILE_NODES)
    }

    /// With an n-node Gauss–Hermite rule for the smooth Gaussian expectations.
    #[track_caller]
    pub fn with_nodes(act: Activation, a: f64, b: f64, n: usize) -> Self {
        assert!(a > 0.0 && a <= 1.0, "signal coefficient a must lie in (0, 1] (got {a})");
        Self { act, a, s: (1.0 - a * a).max(0.0).sqrt(), b, gh: GaussRule::hermite(n), line: GaussianLine::default() }
    }

    /// Visits the nodes (h, w) of a rule for E f(h), h = μ + τ g, g ~ N(0, 1), with the g-axis split
    /// where h crosses a kink of σ.
    #[inline]
    pub fn for_each_gaussian_node(&self, mu: f64, tau: f64, mut visit: impl FnMut(f64, f64)) {
        if tau == 0.0 {
            visit(mu, 1.0);
        } else if self.act.is_nonsmooth() {
            // ReLU's kink at h = 0.
            self.line.for_each_split_node(&[-mu / tau], |g, w| visit(mu + tau * g, w));
        } else {
            for (g, w) in self.gh.iter() {
                visit(mu + tau * g, w);
            }
        }
    }

    /// E f(μ + τ g), g ~ N(0, 1), with the g-axis split where μ + τ g crosses a kink of σ.
    #[inline]
    pub fn gaussian_expect(&self, mu: f64, tau: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
        let mut acc = 0.0;
        self.for_each_gaussian_node(mu, tau, |h, w| acc += w * f(h));
        acc
    }

    /// The loss integrand F(h, r) = b σ(h)(a h − r) + ½ b² σ(h)².
    #[inline]
    pub fn integrand(&self, h: f64, r: f64) -> f64 {
        let sg = self.act.value(h);
        self.b * sg * (self.a * h - r) + 0.5 * self.b * self.b * sg * sg
    }

    /// Ψ(r).
    pub fn psi(&self, r: f64) -> f64 {
        self.gaussian_expect(self.a * r, self.s, |h| self.integrand(h, r))
    }

    /// Ψ'(r) = E_ζ[a ∂_h F + ∂_r F], differentiating under the integral (σ' is bounded).
    pub fn psi_derivative(&self, r: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        self.gaussian_expect(a * r, self.s, |h| {
            let (sg, dsg) = self.act.value_and_derivative(h);
            a * (b * dsg * (a * h - r) + a * b * sg + b * b * sg * dsg) - b * sg
        })
    }

    /// E_{r ~ N(m, v), ζ}[f(a r + s ζ, r)] for f affine in r, collapsed exactly to one integral:
    /// h = a r + sζ ~ N(am, τ²), τ² = a²v + s², and r enters only through
    /// E[r | h] = m + (a v/τ²)(h − am). Calls `f(h, E[r | h])`.
    #[inline]
    pub fn collapsed_expect(&self, mean_r: f64, var_r: f64, mut f: impl FnMut(f64, f64) -> f64) -> f64 {
        let a = self.a;
        let tau2 = a * a * var_r + self.s * self.s;
        let kappa = a * var_r / tau2;
        let mh = a * mean_r;
        self.gaussian_expect(mh, tau2.sqrt(), |h| f(h, mean_r + kappa * (h - mh)))
    }

    /// E_{r ~ N(m, v)} Ψ(r).
    #[inline]
    pub fn expected_psi_gaussian(&self, mean_r: f64, var_r: f64) -> f64 {
        self.collapsed_expect(mean_r, var_r, |h, r| self.integrand(h, r))
    }

    /// E_{r ~ N(m, v)} Ψ'(r) (the integrand of Ψ' is affine in r as well).
    #[inline]
    pub fn expected_psi_derivative_gaussian(&self, mean_r: f64, var_r: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        self.collapsed_expect(mean_r, var_r, |h, r| {
            let (sg, dsg) = self.act.value_and_derivative(h);
            a * (b * dsg * (a * h - r) + a * b * sg + b * b * sg * dsg) - b * sg
        })
    }

    /// [ψ₀, …, ψ_{k_max}] by 2-D quadrature over (g, ζ).
    pub fn coefficients(&self, k_max: usize) -> Vec<f64> {
        let mut psi = vec![0.0; k_max + 1];
        let mut he = vec![0.0; k_max + 1];
        for (g, w) in self.gh.iter() {
            let val = self.psi(g);
            hermite_all(g, &mut he);
            for k in 0..=k_max {
                psi[k] += w * val * he[k];
            }
        }
        psi
    }
}

/// [ψ₀, …, ψ_{k_max}] for σ at signal coefficient a and output weight b (SPEC §2.9).
pub fn psi_coefficients(act: Activation, a: f64, b: f64, k_max: usize) -> Vec<f64> {
    DenoiserProfile::new(act, a, b).coefficients(k_max)
}

/// The level-set version: the average of ψ_k over the levels a_j (SPEC §2.9).
#[track_caller]
pub fn psi_coefficients_levels(act: Activation, levels: &[f64], b: f64, k_max: usize) -> Vec<f64> {
    assert!(!levels.is_empty(), "a level set needs at least one level");
    let mut avg = vec![0.0; k_max + 1];
    for &a in levels {
        for (acc, p) in avg.iter_mut().zip(psi_coefficients(act, a, b, k_max)) {
            *acc += p / levels.len() as f64;
        }
    }
    avg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::quadrature::{std_normal_cdf, std_normal_pdf};

    /// Ψ for ReLU in closed form: with h ~ N(ar, s²), t = ar/s,
    /// E h₊ = ar Φ(t) + s φ(t), E h₊² = ((ar)² + s²) Φ(t) + ar s φ(t), Ψ = (ab + b²/2) E h₊² − b r E h₊.
    fn relu_psi_closed_form(a: f64, b: f64, r: f64) -> f64 {
        let s = (1.0 - a * a).sqrt();
        let mu = a * r;
        let t = mu / s;
        let e1 = mu * std_normal_cdf(t) + s * std_normal_pdf(t);
        let e2 = (mu * mu + s * s) * std_normal_cdf(t) + mu * s * std_normal_pdf(t);
        (a * b + 0.5 * b * b) * e2 - b * r * e1
    }

    #[test]
    fn relu_profile_matches_closed_form_and_derivative_matches_differences() {
        for a in [0.5, 0.72, 0.9] {
            let prof = DenoiserProfile::new(Activation::Relu, a, 1.3);
            for r in [-3.0, -0.4, 0.0, 0.25, 2.0] {
                let exact = relu_psi_closed_form(a, 1.3, r);
                assert!((prof.psi(r) - exact).abs() < 1e-13 * (1.0 + exact.abs()), "a={a} r={r}");
            }
        }
        for act in [Activation::Tanh, Activation::Erf, Activation::Relu, Activation::Hermite(3)] {
            let prof = DenoiserProfile::new(act, 0.8, 0.9);
            for r in [-1.7, 0.1, 0.9] {
                let e = 1e-5;
                let fd = (prof.psi(r + e) - prof.psi(r - e)) / (2.0 * e);
                assert!((fd - prof.psi_derivative(r)).abs() < 1e-8, "{act} r={r}: {fd} vs {}", prof.psi_derivative(r));
            }
        }
    }

    /// SPEC §7 item 22: linear σ has ψ₂ = ab(2a² + ab − 2) and ψ_{k≥3} = 0 (1e-10).
    #[test]
    fn linear_profile_is_quadratic() {
        for (a, b) in [(0.5f64.sqrt(), 1.0), (0.3, 1.0), (0.9, 0.5), (0.6, 2.0)] {
            let psi = psi_coefficients(Activation::Linear, a, b, 8);
            let psi2 = a * b * (2.0 * a * a + a * b - 2.0);
            assert!((psi[2] - psi2).abs() < 1e-10, "a={a} b={b}: {} vs {psi2}", psi[2]);
            for k in 3..=8 {
                assert!(psi[k].abs() < 1e-10, "a={a} b={b}: ψ_{k} = {}", psi[k]);
            }
        }
        // ψ₂ < 0 iff a < (√17 − 1)/4 for b = 1.
        let a0 = (17f64.sqrt() - 1.0) / 4.0;
        assert!(psi_coefficients(Activation::Linear, a0 - 1e-3, 1.0, 2)[2] < 0.0);
        assert!(psi_coefficients(Activation::Linear, a0 + 1e-3, 1.0, 2)[2] > 0.0);
    }

    /// SPEC §7 item 23: odd σ has ψ_odd = 0 (1e-12); ReLU has ψ₄ = ψ₆ = 0 (1e-8, composite rule).
    #[test]
    fn parity_zeros() {
        for act in [Activation::Tanh, Activation::Erf, Activation::Linear, Activation::Hermite(3)] {
            for a2 in [0.25, 0.5, 0.9] {
                let psi = psi_coefficients(act, f64::sqrt(a2), 1.0, 9);
                for k in (1..=9).step_by(2) {
                    assert!(psi[k].abs() < 1e-12, "{act} a²={a2}: ψ_{k} = {}", psi[k]);
                }
            }
        }
        for a2 in [0.25, 0.5, 0.75] {
            let psi = psi_coefficients(Activation::Relu, f64::sqrt(a2), 1.0, 8);
            for k in [4, 6, 8] {
                assert!(psi[k].abs() < 1e-8, "relu a²={a2}: ψ_{k} = {}", psi[k]);
            }
            // …while the odd ones do not vanish.
            assert!(psi[3].abs() > 1e-3 && psi[5].abs() > 1e-3);
        }
    }

    /// SPEC §7 item 24: the regression table of §2.9 (b = 1, 1e-3).
    #[test]
    fn regression_table() {
        #[rustfmt::skip]
        let table: [(Activation, f64, [f64; 6]); 7] = [
            (Activation::Tanh, 0.25, [0.0, -0.4088, 0.0, 0.1149, 0.0, -0.0789]),
            (Activation::Tanh, 0.50, [0.0, -0.3374, 0.0, 0.1715, 0.0, -0.2238]),
            (Activation::Tanh, 0.75, [0.0, -0.1259, 0.0, 0.0435, 0.0, -0.0298]),
            (Activation::Tanh, 0.90, [0.0, 0.0487, 0.0, -0.1533, 0.0, 0.4978]),
            (Activation::Erf, 0.50, [0.0, -0.3071, 0.0, 0.1229, 0.0, -0.1172]),
            (Activation::Linear, 0.50, [0.0, -0.2071, 0.0, 0.0, 0.0, 0.0]),
            (Activation::Relu, 0.50, [0.0826, -0.1036, -0.1582, 0.0, 0.1788, 0.0]),
        ];
        let mut failures = Vec::new();
        for (act, a2, expect) in table {
            let psi = psi_coefficients(act, a2.sqrt(), 1.0, 6);
            for k in 1..=6 {
                if (psi[k] - expect[k - 1]).abs() > 1e-3 {
                    failures.push(format!("{act} a²={a2} ψ_{k}: computed {:+.6}, table {:+.4}", psi[k], expect[k - 1]));
                }
            }
        }
        assert!(failures.is_empty(), "regression mismatches:\n{}", failures.join("\n"));
    }

    #[test]
    fn collapsed_gaussian_expectations_equal_nested_ones() {
        let gh = GaussRule::hermite(80);
        for act in [Activation::Tanh, Activation::Relu] {
            let prof = DenoiserProfile::new(act, 0.75, 1.2);
            for (m, v) in [(0.3, 1.0f64), (-1.1, 0.4), (0.0, 2.5)] {
                let nested = gh.integrate(|z| prof.psi(m + v.sqrt() * z));
                assert!((prof.expected_psi_gaussian(m, v) - nested).abs() < 1e-12, "{act} ({m},{v})");
                let nested_d = gh.integrate(|z| prof.psi_derivative(m + v.sqrt() * z));
                assert!((prof.expected_psi_derivative_gaussian(m, v) - nested_d).abs() < 1e-12, "{act} ({m},{v})");
            }
        }
    }

    #[test]
    fn level_average_is_the_mean_of_levels() {
        let l = psi_coefficients_levels(Activation::Tanh, &[0.5, 0.8], 1.0, 4);
        let p1 = psi_coefficients(Activation::Tanh, 0.5, 1.0, 4);
        let p2 = psi_coefficients(Activation::Tanh, 0.8, 1.0, 4);
        for k in 0..=4 {
            assert!((l[k] - 0.5 * (p1[k] + p2[k])).abs() < 1e-15);
        }
    }
}
