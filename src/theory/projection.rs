//! The data side: Hermite moments of the projection r = ⟨w, x⟩ of an MCM sample (SPEC §2.2, §2.9).
//!
//! For orthonormal spikes and a unit w with overlaps (α_m, α_u, α_v),
//! r = A + √(1−q²) ζ with A = β_m α_m + pλ + qν, p = √β_u α_u, q = s_v α_v, and
//! E He_k(r) = Σ_j k!/(j! 2^j (k−2j)!) (−q²)^j E[A^{k−2j}]   (exact),
//! where E[A^n] expands multinomially into the joint latent moments E[λ^i ν^j] of [`JointMoments`].

use super::hermite::{factorial, hermite_pair_coefficient};
use super::latents::{JointMoments, abs_moment};
use crate::model::McmParams;
use serde::Serialize;
use std::fmt;

/// A spike direction of System A.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spike {
    M,
    U,
    V,
}

impl Spike {
    /// The overlaps (α_m, α_u, α_v) of w = e.
    pub fn alphas(self) -> [f64; 3] {
        match self {
            Spike::M => [1.0, 0.0, 0.0],
            Spike::U => [0.0, 1.0, 0.0],
            Spike::V => [0.0, 0.0, 1.0],
        }
    }

    /// The strength β_e of this spike.
    pub fn beta(self, params: &McmParams) -> f64 {
        match self {
            Spike::M => params.beta_m,
            Spike::U => params.beta_u,
            Spike::V => params.beta_v,
        }
    }
}

impl fmt::Display for Spike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Spike::M => "m",
            Spike::U => "u",
            Spike::V => "v",
        })
    }
}

/// Projected Hermite moments E He_k(⟨w, x⟩) for one parameter set, up to order `k_max`.
#[derive(Clone, Debug)]
pub struct ProjectedMoments {
    params: McmParams,
    moments: JointMoments,
    k_max: usize,
}

impl ProjectedMoments {
    pub fn new(params: &McmParams, k_max: usize) -> Self {
        Self { params: *params, moments: JointMoments::new(params, k_max), k_max }
    }

    pub fn joint(&self) -> &JointMoments {
        &self.moments
    }

    /// (μ, p, q) of r = μ + pλ + qν + √(1−q²)ζ for overlaps (α_m, α_u, α_v).
    #[track_caller]
    pub fn coefficients(params: &McmParams, alphas: [f64; 3]) -> (f64, f64, f64) {
        let norm2: f64 = alphas.iter().map(|a| a * a).sum();
        assert!(norm2 <= 1.0 + 1e-12, "overlaps of a unit w must satisfy α_m² + α_u² + α_v² ≤ 1 (got {norm2})");
        (params.beta_m * alphas[0], params.beta_u.sqrt() * alphas[1], params.s_v() * alphas[2])
    }

    /// E[A^n], A = μ + pλ + qν, by the multinomial expansion.
    pub fn moment_of_a(&self, mu: f64, p: f64, q: f64, n: usize) -> f64 {
        let mut acc = 0.0;
        for a in 0..=n {
            for b in 0..=(n - a) {
                let c = n - a - b;
                let coef = factorial(n) / (factorial(a) * factorial(b) * factorial(c));
                acc += coef * mu.powi(a as i32) * p.powi(b as i32) * q.powi(c as i32) * self.moments.get(b, c);
            }
        }
        acc
    }

    /// [E He_0(r), …, E He_{k_max}(r)] for the general formula of SPEC §2.2.
    pub fn hermite_moments(&self, alphas: [f64; 3]) -> Vec<f64> {
        let (mu, p, q) = Self::coefficients(&self.params, alphas);
        let ea: Vec<f64> = (0..=self.k_max).map(|n| self.moment_of_a(mu, p, q, n)).collect();
        (0..=self.k_max)
            .map(|k| {
                (0..=k / 2).map(|j| hermite_pair_coefficient(k, j) * (-q * q).powi(j as i32) * ea[k - 2 * j]).sum()
            })
            .collect()
    }

    /// h_k(e) = E He_k(⟨e, x⟩), k = 0..=k_max (SPEC §2.9 "Data side").
    pub fn direction_moments(&self, e: Spike) -> Vec<f64> {
        self.hermite_moments(e.alphas())
    }
}

/// E He_k(⟨w, x⟩) for k = 0..=k_max (SPEC §2.2, exact).
pub fn projected_hermite_moments(params: &McmParams, alphas: [f64; 3], k_max: usize) -> Vec<f64> {
    ProjectedMoments::new(params, k_max).hermite_moments(alphas)
}

/// h_k(e) = E He_k(⟨e, x⟩) for k = 0..=k_max.
pub fn direction_hermite_moments(params: &McmParams, e: Spike, k_max: usize) -> Vec<f64> {
    ProjectedMoments::new(params, k_max).direction_moments(e)
}

/// The explicit forms of SPEC §2.2 for α_m = 0, k = 0..=4, written for any symmetric ν law through
/// the coupling moments m_k and E|ν₀|^j (for Rademacher, E|ν₀|^j = 1 and κ₄ = −2):
/// E He₂ = p² + 2pq E|ν₀| m₁,  E He₃ = 3p²q E|ν₀| m₂ + q³κ₃,
/// E He₄ = 3p⁴ + 4p³q E|ν₀| m₃ + 4pq³ m₁ (E|ν₀|³ − 3E|ν₀|) + q⁴κ₄.
#[track_caller]
pub fn projected_hermite_moments_explicit(params: &McmParams, alphas: [f64; 3]) -> [f64; 5] {
    assert!(alphas[0] == 0.0, "the explicit forms of SPEC §2.2 are for α_m = 0");
    let (_, p, q) = ProjectedMoments::coefficients(params, alphas);
    let law = params.nu_law;
    let [m1, m2, m3] = params.coupling.moments();
    let (e1, e3) = (abs_moment(law, 1), abs_moment(law, 3));
    [
        1.0,
        0.0,
        p * p + 2.0 * p * q * e1 * m1,
        3.0 * p * p * q * e1 * m2 + q.powi(3) * law.kappa3(),
        3.0 * p.powi(4)
            + 4.0 * p.powi(3) * q * e1 * m3
            + 4.0 * p * q.powi(3) * m1 * (e3 - 3.0 * e1)
            + q.powi(4) * law.kappa4(),
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Coupling, MixedCumulantModel, NuLaw, SpikeLayout, Spikes};
    use crate::net::activation::hermite;
    use crate::rng::ScalarRng;
    use crate::theory::hermite::hermite_all;
    use crate::theory::latents::LatentQuadrature;
    use crate::theory::quadrature::GaussRule;
    use diffexp_kernels::NormalRng;

    const COUPLINGS: [Coupling; 4] = [Coupling::Independent, Coupling::Sign, Coupling::Even, Coupling::Odd];

    fn params(law: NuLaw, c: Coupling) -> McmParams {
        McmParams { beta_m: 1.5, beta_u: 3.0, beta_v: 6.0, nu_law: law, coupling: c }
    }

    /// A unit w = α_m m + α_u u + α_v v + ρ e⊥ with e⊥ orthogonal to the spikes.
    pub(crate) fn unit_w(spikes: &Spikes<f64>, alphas: [f64; 3], rng: &mut ScalarRng) -> Vec<f64> {
        let d = spikes.dim();
        let mut e: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        for s in [&spikes.m, &spikes.u, &spikes.v] {
            let c: f64 = e.iter().zip(s.iter()).map(|(a, b)| a * b).sum();
            e.iter_mut().zip(s.iter()).for_each(|(a, b)| *a -= c * b);
        }
        let n = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        let rho = (1.0 - alphas.iter().map(|a| a * a).sum::<f64>()).sqrt();
        (0..d)
            .map(|i| alphas[0] * spikes.m[i] + alphas[1] * spikes.u[i] + alphas[2] * spikes.v[i] + rho * e[i] / n)
            .collect()
    }

    /// SPEC §7 item 12: the general formula matches MC (f64 sampler, d = 6) for k = 1..4, all
    /// couplings, at (α_m, α_u, α_v) = (0.2, 0.5, 0.4); 5σ from the sample variance.
    #[test]
    fn general_formula_matches_monte_carlo() {
        let cases = COUPLINGS.iter().map(|&c| (NuLaw::Rademacher, c)).chain([
            (NuLaw::Uniform, Coupling::Sign),
            (NuLaw::Laplace, Coupling::Odd),
            (NuLaw::TwoPoint(0.3), Coupling::Independent),
        ]);
        let alphas = [0.2, 0.5, 0.4];
        let n = 200_000;
        for (case, (law, c)) in cases.enumerate() {
            let p = params(law, c);
            let exact = projected_hermite_moments(&p, alphas, 4);
            let mut srng = ScalarRng::from_seed(1000 + case as u64);
            let spikes = Spikes::<f64>::draw(6, SpikeLayout::Orthonormal, &mut srng);
            let w = unit_w(&spikes, alphas, &mut srng);
            let model = MixedCumulantModel::new(p, spikes);
            let mut latent = ScalarRng::from_seed(2000 + case as u64);
            let mut normals = NormalRng::from_seed(3000 + case as u64);
            let mut x = vec![0.0f64; 6];
            let (mut s, mut s2) = ([0.0; 5], [0.0; 5]);
            let mut h = [0.0; 5];
            for _ in 0..n {
                model.sample_into(&mut latent, &mut normals, &mut x);
                let r: f64 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
                hermite_all(r, &mut h);
                for k in 1..5 {
                    s[k] += h[k];
                    s2[k] += h[k] * h[k];
                }
            }
            for k in 1..5 {
                let mean = s[k] / n as f64;
                let se = ((s2[k] / n as f64 - mean * mean) / n as f64).sqrt();
                assert!((mean - exact[k]).abs() < 5.0 * se, "{law}/{c} k={k}: MC {mean} ± {se} vs {}", exact[k]);
            }
        }
    }

    /// SPEC §7 item 13: explicit k ≤ 4 forms equal the general formula (1e-12).
    #[test]
    fn explicit_forms_equal_general_formula() {
        for law in [NuLaw::Rademacher, NuLaw::Uniform, NuLaw::Laplace] {
            for c in COUPLINGS {
                let p = params(law, c);
                let pm = ProjectedMoments::new(&p, 4);
                for alphas in [[0.0, 0.5, 0.4], [0.0, -0.7, 0.6], [0.0, 0.3, -0.9], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
                    let general = pm.hermite_moments(alphas);
                    let explicit = projected_hermite_moments_explicit(&p, alphas);
                    for k in 0..5 {
                        let scale = 1.0 + general[k].abs();
                        assert!(
                            (general[k] - explicit[k]).abs() < 1e-12 * scale,
                            "{law}/{c} {alphas:?} k={k}: {} vs {}",
                            general[k],
                            explicit[k]
                        );
                    }
                }
            }
        }
        // Spec's Rademacher forms, written with m_k directly.
        let p = params(NuLaw::Rademacher, Coupling::Sign);
        let (_, pp, q) = ProjectedMoments::coefficients(&p, [0.0, 0.5, 0.4]);
        let [m1, m2, m3] = Coupling::Sign.moments();
        let g = projected_hermite_moments(&p, [0.0, 0.5, 0.4], 4);
        assert!((g[2] - (pp * pp + 2.0 * pp * q * m1)).abs() < 1e-12);
        assert!((g[3] - 3.0 * pp * pp * q * m2).abs() < 1e-12);
        let he4 = 3.0 * pp.powi(4) + 4.0 * pp.powi(3) * q * m3 - 8.0 * pp * q.powi(3) * m1 - 2.0 * q.powi(4);
        assert!((g[4] - he4).abs() < 1e-12 * he4.abs());
        // With a mean spike: E He₁ = β_m α_m, E He₂ gains β_m² α_m².
        let g = projected_hermite_moments(&p, [0.3, 0.5, 0.4], 2);
        assert!((g[1] - 1.5 * 0.3).abs() < 1e-13);
        assert!((g[2] - (pp * pp + 2.0 * pp * q * m1 + (1.5f64 * 0.3).powi(2))).abs() < 1e-12);
    }

    #[test]
    fn direction_moments_follow_spec_table() {
        let p = McmParams {
            beta_m: 0.7,
            beta_u: 3.0,
            beta_v: 6.0,
            nu_law: NuLaw::TwoPoint(0.3),
            coupling: Coupling::Independent,
        };
        let pm = ProjectedMoments::new(&p, 8);
        let hm = pm.direction_moments(Spike::M);
        let hu = pm.direction_moments(Spike::U);
        let hv = pm.direction_moments(Spike::V);
        let sv = p.s_v();
        for k in 1..=8 {
            assert!((hm[k] - 0.7f64.powi(k as i32)).abs() < 1e-12, "h_{k}(m)");
        }
        assert!(hu[1].abs() < 1e-13 && hu[3].abs() < 1e-12);
        assert!((hu[2] - 3.0).abs() < 1e-12 && (hu[4] - 27.0).abs() < 1e-11);
        assert!(hv[1].abs() < 1e-13 && hv[2].abs() < 1e-13);
        assert!((hv[3] - sv.powi(3) * NuLaw::TwoPoint(0.3).kappa3()).abs() < 1e-12);
        assert!((hv[4] - sv.powi(4) * NuLaw::TwoPoint(0.3).kappa4()).abs() < 1e-12);
    }

    /// A law of r, given as a visitor over (value, weight) nodes.
    type LawVisitor<'a> = &'a dyn Fn(&mut dyn FnMut(f64, f64));

    /// SPEC §7 item 14: Mehler damping E He_k(ar + sζ) = a^k E He_k(r), k = 1..6, for r Rademacher,
    /// exponential-centred and MCM-projected (quadrature 1e-10; MC as a second check).
    #[test]
    fn mehler_damping() {
        let gh = GaussRule::hermite(60);
        let lag = GaussRule::laguerre(40);
        let mut h = [0.0; 7];
        let damped = |laws: LawVisitor<'_>, a: f64| -> [f64; 7] {
            let s = (1.0 - a * a).sqrt();
            let mut out = [0.0; 7];
            let mut hh = [0.0; 7];
            laws(&mut |r, wr| {
                for (z, wz) in gh.iter() {
                    hermite_all(a * r + s * z, &mut hh);
                    for k in 0..7 {
                        out[k] += wr * wz * hh[k];
                    }
                }
            });
            out
        };
        let rademacher = |f: &mut dyn FnMut(f64, f64)| {
            f(-1.0, 0.5);
            f(1.0, 0.5);
        };
        let exponential = |f: &mut dyn FnMut(f64, f64)| {
            for (u, w) in lag.iter() {
                f(u - 1.0, w);
            }
        };
        // MCM-projected: r = A + √(1−q²)ζ' at (0.2, 0.5, 0.4), odd coupling.
        let p = params(NuLaw::Rademacher, Coupling::Odd);
        let alphas = [0.2, 0.5, 0.4];
        let (mu, pp, q) = ProjectedMoments::coefficients(&p, alphas);
        let lq = LatentQuadrature::for_params(&p);
        let mcm = |f: &mut dyn FnMut(f64, f64)| {
            for node in &lq.nodes {
                for (z, wz) in gh.iter() {
                    f(mu + pp * node.lambda + q * node.nu + (1.0 - q * q).sqrt() * z, node.weight * wz);
                }
            }
        };
        let law_moments = |laws: LawVisitor<'_>| -> [f64; 7] {
            let mut out = [0.0; 7];
            laws(&mut |r, w| {
                for k in 0..7 {
                    out[k] += w * hermite(k as u32, r);
                }
            });
            out
        };
        let general = projected_hermite_moments(&p, alphas, 6);
        let mcm_direct = law_moments(&mcm);
        for k in 0..7 {
            assert!((mcm_direct[k] - general[k]).abs() < 1e-10 * (1.0 + general[k].abs()), "k={k}");
        }
        for (name, law) in [
            ("rademacher", &rademacher as &dyn Fn(&mut dyn FnMut(f64, f64))),
            ("exponential", &exponential),
            ("mcm", &mcm),
        ] {
            let base = law_moments(law);
            for a in [0.3, 0.72, 0.95] {
                let d = damped(law, a);
                for k in 1..7 {
                    let expect = a.powi(k as i32) * base[k];
                    assert!(
                        (d[k] - expect).abs() < 1e-10 * (1.0 + base[k].abs()),
                        "{name} a={a} k={k}: {} vs {expect}",
                        d[k]
                    );
                }
            }
        }
        // MC second check on the exponential law, k = 3 at a = 0.72.
        let mut rng = ScalarRng::from_seed(17);
        let (a, s) = (0.72f64, (1.0 - 0.72f64 * 0.72).sqrt());
        let n = 400_000;
        let (mut m, mut m2) = (0.0, 0.0);
        for _ in 0..n {
            let r = -rng.uniform_open().ln() - 1.0;
            hermite_all(a * r + s * rng.normal(), &mut h);
            m += h[3];
            m2 += h[3] * h[3];
        }
        let mean = m / n as f64;
        let se = ((m2 / n as f64 - mean * mean) / n as f64).sqrt();
        // E He₃ of the centred exponential is its third cumulant, 2.
        assert!((mean - a.powi(3) * 2.0).abs() < 5.0 * se, "MC {mean} ± {se}");
    }
}
