//! Quadrature over the latent pair (λ, ν) of SPEC §2.1, and its joint moments E[λ^i ν^j].
//!
//! The pair is built exactly as the sampler draws it (`model::latent::draw_latents`): λ ~ N(0, 1);
//! with a coupling, ν = |ν₀|·ε(λ), ε a step function of λ; independent, ν = ν₀. So
//!
//! - the λ-axis uses the split [`GaussianLine`] rule, broken at the coupling's jumps (0, ±τ₂, ±τ₃),
//!   or a Gauss–Hermite rule when ε does not depend on λ;
//! - |ν₀| (coupled) or ν₀ (independent) uses the law's support (Rademacher, two-point) or a Gauss rule
//!   for the continuous laws: Gauss–Legendre for `uniform`, Gauss–Laguerre for `laplace`.
//!
//! Polynomial moments are then exact up to the quadrature's rounding (the continuous-ν rules are
//! exact for polynomials of the degrees used here), and smooth integrands converge exponentially.

use super::quadrature::{GaussRule, GaussianLine};
use crate::model::{Coupling, McmParams, NuLaw};

/// One node of the latent rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatentNode {
    pub lambda: f64,
    pub nu: f64,
    pub weight: f64,
}

/// Node counts of the latent rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatentAccuracy {
    /// Gauss–Hermite nodes on λ when the coupling is `independent`.
    pub lambda_gh: usize,
    /// Gauss–Legendre nodes per panel and panel width of the split λ rule (coupled latents).
    pub panel_nodes: usize,
    pub panel_width: f64,
    /// Gauss nodes for a continuous ν law (per sign).
    pub nu_nodes: usize,
}

impl LatentAccuracy {
    /// Accurate to ~1e-14 on the integrands of this module.
    pub const FINE: Self = Self { lambda_gh: 80, panel_nodes: 12, panel_width: 1.0, nu_nodes: 32 };
    /// For searches (θ_v optimisation): ~1e-8.
    pub const COARSE: Self = Self { lambda_gh: 40, panel_nodes: 8, panel_width: 2.0, nu_nodes: 12 };
}

/// A quadrature rule for E f(λ, ν).
#[derive(Clone, Debug)]
pub struct LatentQuadrature {
    pub nodes: Vec<LatentNode>,
}

impl LatentQuadrature {
    pub fn new(law: NuLaw, coupling: Coupling) -> Self {
        Self::with_accuracy(law, coupling, LatentAccuracy::FINE)
    }

    pub fn for_params(params: &McmParams) -> Self {
        Self::new(params.nu_law, params.coupling)
    }

    pub fn with_accuracy(law: NuLaw, coupling: Coupling, acc: LatentAccuracy) -> Self {
        let lambda_rule = match coupling {
            Coupling::Independent => GaussRule::hermite(acc.lambda_gh),
            c => GaussianLine::new(acc.panel_nodes, acc.panel_width, 16).rule(c.breakpoints()),
        };
        let mut nodes = Vec::new();
        match coupling {
            Coupling::Independent => {
                let nu_rule = nu_rule(law, acc.nu_nodes);
                for (l, wl) in lambda_rule.iter() {
                    for &(nu, wn) in &nu_rule {
                        nodes.push(LatentNode { lambda: l, nu, weight: wl * wn });
                    }
                }
            }
            c => {
                let abs_rule = abs_nu_rule(law, acc.nu_nodes);
                for (l, wl) in lambda_rule.iter() {
                    let eps = c.sign_of(l).expect("coupled latent has a sign function");
                    for &(a, wn) in &abs_rule {
                        nodes.push(LatentNode { lambda: l, nu: a * eps, weight: wl * wn });
                    }
                }
            }
        }
        Self { nodes }
    }

    /// Σ w f(λ, ν).
    #[inline]
    pub fn expect(&self, mut f: impl FnMut(f64, f64) -> f64) -> f64 {
        self.nodes.iter().map(|n| n.weight * f(n.lambda, n.nu)).sum()
    }
}

/// (value, weight) rule for ν₀ itself (independent latents).
fn nu_rule(law: NuLaw, n: usize) -> Vec<(f64, f64)> {
    if let Some(sup) = law.discrete_support() {
        return sup;
    }
    match law {
        NuLaw::Uniform => {
            let r = 3f64.sqrt();
            GaussRule::legendre_on(n, -r, r).iter().map(|(x, w)| (x, w / (2.0 * r))).collect()
        }
        // Symmetric: ± the |ν₀| rule with half weights.
        _ => abs_nu_rule(law, n).into_iter().flat_map(|(x, w)| [(-x, 0.5 * w), (x, 0.5 * w)]).collect(),
    }
}

/// (value, weight) rule for |ν₀| (coupled latents, ν = |ν₀| ε).
fn abs_nu_rule(law: NuLaw, n: usize) -> Vec<(f64, f64)> {
    match law {
        NuLaw::Rademacher => vec![(1.0, 1.0)],
        NuLaw::Uniform => {
            let r = 3f64.sqrt();
            GaussRule::legendre_on(n, 0.0, r).iter().map(|(x, w)| (x, w / r)).collect()
        }
        // |ν₀| = E/√2 with E ~ Exp(1).
        NuLaw::Laplace => {
            GaussRule::laguerre(n).iter().map(|(u, w)| (u * std::f64::consts::FRAC_1_SQRT_2, w)).collect()
        }
        NuLaw::TwoPoint(_) => law.discrete_support().unwrap().into_iter().map(|(x, p)| (x.abs(), p)).collect(),
    }
}

/// The table E[λ^i ν^j], 0 ≤ i, j ≤ `max_order`, by the latent rule.
#[derive(Clone, Debug)]
pub struct JointMoments {
    max_order: usize,
    table: Vec<f64>,
}

impl JointMoments {
    pub fn new(params: &McmParams, max_order: usize) -> Self {
        Self::from_quadrature(&LatentQuadrature::for_params(params), max_order)
    }

    pub fn from_quadrature(q: &LatentQuadrature, max_order: usize) -> Self {
        let m = max_order + 1;
        let mut table = vec![0.0; m * m];
        let mut lp = vec![0.0; m];
        let mut np = vec![0.0; m];
        for node in &q.nodes {
            lp[0] = 1.0;
            np[0] = 1.0;
            for k in 1..m {
                lp[k] = lp[k - 1] * node.lambda;
                np[k] = np[k - 1] * node.nu;
            }
            for i in 0..m {
                for j in 0..m {
                    table[i * m + j] += node.weight * lp[i] * np[j];
                }
            }
        }
        Self { max_order, table }
    }

    pub fn max_order(&self) -> usize {
        self.max_order
    }

    /// E[λ^i ν^j].
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(i <= self.max_order && j <= self.max_order, "joint moment ({i},{j}) beyond table");
        self.table[i * (self.max_order + 1) + j]
    }
}

/// E|ν₀|^j in closed form (used to cross-check the ν rules).
pub fn abs_moment(law: NuLaw, j: u32) -> f64 {
    match law {
        NuLaw::Rademacher => 1.0,
        // ∫₀^√3 x^j dx/√3 = 3^{j/2}/(j+1)
        NuLaw::Uniform => 3f64.powf(j as f64 / 2.0) / (j as f64 + 1.0),
        // j!/2^{j/2}
        NuLaw::Laplace => (1..=j).map(|k| k as f64).product::<f64>() / 2f64.powf(j as f64 / 2.0),
        NuLaw::TwoPoint(_) => law.discrete_support().unwrap().iter().map(|(x, p)| p * x.abs().powi(j as i32)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::latent::{TAU2, TAU3};

    const COUPLINGS: [Coupling; 4] = [Coupling::Independent, Coupling::Sign, Coupling::Even, Coupling::Odd];

    fn eps_moment(c: Coupling, k: i32) -> f64 {
        // E[λ^k ε] by the split rule, with ε from the coupling (Rademacher ν = ε).
        LatentQuadrature::new(NuLaw::Rademacher, c).expect(|l, nu| l.powi(k) * nu)
    }

    /// SPEC §7 item 8: coupling moments by quadrature split at the thresholds (1e-9).
    #[test]
    fn coupling_moments_by_split_quadrature() {
        let sqrt_2_pi = (2.0 / std::f64::consts::PI).sqrt();
        let checks = [
            (Coupling::Sign, 1, sqrt_2_pi, 0.797_884_6),
            (Coupling::Sign, 3, 2.0 * sqrt_2_pi, 1.595_769_1),
            (Coupling::Even, 2, 4.0 * TAU2 * super::super::quadrature::std_normal_pdf(TAU2), 0.857_348_2),
            (Coupling::Odd, 3, 4.0 * std::f64::consts::LN_2 / (2.0 * std::f64::consts::PI).sqrt(), 1.106_102_9),
        ];
        for (c, k, exact, printed) in checks {
            let q = eps_moment(c, k);
            assert!((q - exact).abs() < 1e-9 * exact, "{c} m{k}: {q} vs {exact}");
            assert!((q - printed).abs() < 1e-7, "{c} m{k}: {q} vs table {printed}");
            assert!((q - c.moments()[k as usize - 1]).abs() < 1e-9 * exact);
        }
        // Hermite version for sign: E[He₃(λ)ε] = m₃ − 3m₁ = −√(2/π).
        let he3 = LatentQuadrature::new(NuLaw::Rademacher, Coupling::Sign).expect(|l, nu| (l * l * l - 3.0 * l) * nu);
        assert!((he3 + sqrt_2_pi).abs() < 1e-9);
        // MC as a second check (5σ).
        let mut rng = crate::rng::ScalarRng::from_seed(81);
        let n = 200_000;
        for (c, k, exact, _) in checks {
            let (mut s, mut s2) = (0.0, 0.0);
            for _ in 0..n {
                let (l, nu) = crate::model::latent::draw_latents(NuLaw::Rademacher, c, &mut rng);
                let x = l.powi(k) * nu;
                s += x;
                s2 += x * x;
            }
            let mean = s / n as f64;
            let se = ((s2 / n as f64 - mean * mean) / n as f64).sqrt();
            assert!((mean - exact).abs() < 5.0 * se, "{c} m{k}: MC {mean} ± {se} vs {exact}");
        }
    }

    /// SPEC §7 item 9: vanishing moments, E ε = 0 and P(ε = 1) = ½ for all couplings (1e-9).
    #[test]
    fn coupling_vanishing_moments_and_fair_sign() {
        let zeros =
            [(Coupling::Even, 1), (Coupling::Even, 3), (Coupling::Odd, 1), (Coupling::Odd, 2), (Coupling::Sign, 2)];
        for (c, k) in zeros {
            assert!(eps_moment(c, k).abs() < 1e-9, "{c} m{k} = {}", eps_moment(c, k));
        }
        for c in COUPLINGS {
            let q = LatentQuadrature::new(NuLaw::Rademacher, c);
            assert!(q.expect(|_, nu| nu).abs() < 1e-9, "{c}: E ε");
            let p_plus = q.expect(|_, nu| if nu > 0.0 { 1.0 } else { 0.0 });
            assert!((p_plus - 0.5).abs() < 1e-9, "{c}: P(ε=1) = {p_plus}");
            assert!((q.expect(|_, _| 1.0) - 1.0).abs() < 1e-14);
        }
        // The odd coupling's m₁ vanishes only because φ(τ₃) = φ(0)/2: a shifted threshold breaks it.
        let shifted = GaussianLine::default()
            .integrate_split(&[-TAU3 - 0.01, 0.0, TAU3 + 0.01], |l| l * l.signum() * (l.abs() - TAU3 - 0.01).signum());
        assert!(shifted.abs() > 1e-4);
    }

    #[test]
    fn joint_moments_factorise_through_abs_moments() {
        // E[λ^i ν^j] = E[λ^i ε^j] E|ν₀|^j for coupled symmetric laws; E λ^i E ν₀^j when independent.
        for law in [NuLaw::Rademacher, NuLaw::Uniform, NuLaw::Laplace] {
            for c in COUPLINGS {
                let p = McmParams { beta_m: 0.0, beta_u: 1.0, beta_v: 1.0, nu_law: law, coupling: c };
                let jm = JointMoments::new(&p, 8);
                let eps = LatentQuadrature::new(NuLaw::Rademacher, c);
                for i in 0..=8 {
                    for j in 0..=8 {
                        let e_lambda_eps = eps.expect(|l, e| l.powi(i as i32) * e.powi(j as i32));
                        let sym = if c == Coupling::Independent && j % 2 == 1 { 0.0 } else { 1.0 };
                        let expect = sym * e_lambda_eps * abs_moment(law, j as u32);
                        let scale = 1.0
                            + expect.abs()
                            + super::super::hermite::gaussian_moment(2 * i).sqrt()
                                * abs_moment(law, 2 * j as u32).sqrt();
                        assert!(
                            (jm.get(i, j) - expect).abs() < 1e-12 * scale,
                            "{law} {c} ({i},{j}): {} vs {expect}",
                            jm.get(i, j)
                        );
                    }
                }
            }
        }
        // Two-point (independent only): E ν³ = κ₃.
        let p = McmParams {
            beta_m: 0.0,
            beta_u: 1.0,
            beta_v: 1.0,
            nu_law: NuLaw::TwoPoint(0.3),
            coupling: Coupling::Independent,
        };
        let jm = JointMoments::new(&p, 4);
        assert!((jm.get(0, 3) - NuLaw::TwoPoint(0.3).kappa3()).abs() < 1e-13);
        assert!((jm.get(2, 4) - (NuLaw::TwoPoint(0.3).kappa4() + 3.0)).abs() < 1e-12);
    }
}
