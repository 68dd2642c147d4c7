//! Exact population loss of the single-direction denoiser (i) (SPEC §2.7):
//!
//! L(w) = C₀ + E Ψ(r),  C₀ = ½[s⁴ E‖x‖² + a² s² d],  r = ⟨w, x⟩ = A + √(1−q²) ζ′,
//!
//! with A = β_m α_m + pλ + qν (SPEC §2.2). The Gaussian surrogate replaces r by r_G ~ N(E r, Var r).
//!
//! **Evaluation.** Given the latents, (r, h) with h = a r + s ζ is a Gaussian pair, and the integrand
//! F(h, r) = bσ(h)(ah − r) + ½b²σ(h)² is affine in r. So the two Gaussian integrals over (ζ′, ζ)
//! collapse exactly into one over h ~ N(aA, τ²), τ² = a²(1−q²) + s², with r replaced by its
//! conditional mean E[r | h, A] = A + (a(1−q²)/τ²)(h − aA). The production path
//! ([`PopulationLoss::expected_psi`]) therefore integrates over (λ split at the coupling's jumps, ν's
//! support or rule, h); the literal nested rule over (λ, ν, ζ′, ζ) of SPEC §2.7 is kept as
//! [`PopulationLoss::expected_psi_nested`], the slow reference the tests compare against.

use super::latents::{LatentAccuracy, LatentQuadrature};
use super::profile::DenoiserProfile;
use super::projection::ProjectedMoments;
use crate::model::McmParams;
use crate::net::Activation;

/// The exact population loss L(w) of denoiser (i) as a function of the overlaps (α_m, α_u, α_v).
#[derive(Clone, Debug)]
pub struct PopulationLoss {
    pub params: McmParams,
    profile: DenoiserProfile,
    latents: LatentQuadrature,
    e_lambda_nu: f64,
}

/// Gauss–Hermite nodes on the h-axis of the collapsed integral: h has variance τ² ≤ 1, and tanh's
/// poles at ±iπ/2 need ~150 nodes for 1e-15 at τ = 1 (96 nodes leave ~1e-11).
const H_NODES: usize = super::profile::PROFILE_NODES;

impl PopulationLoss {
    pub fn new(params: &McmParams, act: Activation, a: f64, b: f64) -> Self {
        Self::with_accuracy(params, act, a, b, LatentAccuracy::FINE, H_NODES)
    }

    /// A cheaper rule (~1e-8) for searches over the overlaps.
    pub fn coarse(params: &McmParams, act: Activation, a: f64, b: f64) -> Self {
        Self::with_accuracy(params, act, a, b, LatentAccuracy::COARSE, 40)
    }

    pub fn with_accuracy(
        params: &McmParams,
        act: Activation,
        a: f64,
        b: f64,
        acc: LatentAccuracy,
        h_nodes: usize,
    ) -> Self {
        let latents = LatentQuadrature::with_accuracy(params.nu_law, params.coupling, acc);
        let e_lambda_nu = latents.expect(|l, nu| l * nu);
        Self { params: *params, profile: DenoiserProfile::with_nodes(act, a, b, h_nodes), latents, e_lambda_nu }
    }

    pub fn profile(&self) -> &DenoiserProfile {
        &self.profile
    }

    /// C₀ = ½[s⁴ E‖x‖² + a² s² d] with E‖x‖² = d + β_u + β_m² (orthonormal spikes).
    pub fn c0(&self, d: usize) -> f64 {
        let (a, s) = (self.profile.a, self.profile.s);
        let p = &self.params;
        let ex2 = d as f64 + p.beta_u + p.beta_m * p.beta_m;
        0.5 * (s.powi(4) * ex2 + a * a * s * s * d as f64)
    }

    /// E Ψ(⟨w, x⟩) for a unit w with overlaps (α_m, α_u, α_v).
    #[track_caller]
    pub fn expected_psi(&self, alphas: [f64; 3]) -> f64 {
        let (mu, p, q) = ProjectedMoments::coefficients(&self.params, alphas);
        let c2 = 1.0 - q * q;
        self.latents.expect(|l, nu| self.profile.expected_psi_gaussian(mu + p * l + q * nu, c2))
    }

    /// E Ψ(r_G) with r_G ~ N(E r, Var r): E r = β_m α_m, Var r = 1 + p² + 2pq E[λν].
    #[track_caller]
    pub fn expected_psi_surrogate(&self, alphas: [f64; 3]) -> f64 {
        let (mu, p, q) = ProjectedMoments::coefficients(&self.params, alphas);
        self.profile.expected_psi_gaussian(mu, 1.0 + p * p + 2.0 * p * q * self.e_lambda_nu)
    }

    /// L(w) = C₀ + E Ψ(r).
    pub fn loss(&self, alphas: [f64; 3], d: usize) -> f64 {
        self.c0(d) + self.expected_psi(alphas)
    }

    /// L_surr(w) = C₀ + E Ψ(r_G) (the surrogate has the same E‖x‖²).
    pub fn surrogate_loss(&self, alphas: [f64; 3], d: usize) -> f64 {
        self.c0(d) + self.expected_psi_surrogate(alphas)
    }

    /// The literal nested rule of SPEC §2.7: latents × Gauss–Hermite on ζ′ (n nodes) × Ψ's own
    /// quadrature on ζ. Slow; a reference for [`Self::expected_psi`].
    pub fn expected_psi_nested(&self, alphas: [f64; 3], n: usize) -> f64 {
        let (mu, p, q) = ProjectedMoments::coefficients(&self.params, alphas);
        let c = (1.0 - q * q).sqrt();
        let gh = super::quadrature::GaussRule::hermite(n);
        self.latents.expect(|l, nu| {
            let m = mu + p * l + q * nu;
            gh.integrate(|z| self.profile.psi(m + c * z))
        })
    }
}

/// L(w) = C₀ + E Ψ(⟨w, x⟩) for a unit w with overlaps `alphas` = (α_m, α_u, α_v), orthonormal spikes.
pub fn population_loss(params: &McmParams, act: Activation, a: f64, b: f64, alphas: [f64; 3], d: usize) -> f64 {
    PopulationLoss::new(params, act, a, b).loss(alphas, d)
}

/// The same loss on the Gaussian surrogate N(E x, Cov x).
pub fn surrogate_loss(params: &McmParams, act: Activation, a: f64, b: f64, alphas: [f64; 3], d: usize) -> f64 {
    PopulationLoss::new(params, act, a, b).surrogate_loss(alphas, d)
}

/// The minimiser (α_u*, α_v*) of the population loss over the disc α_u² + α_v² ≤ 1 (α_m = 0): a polar
/// grid on the coarse rule, then compass search, then a last compass pass on the fine rule.
pub fn optimal_uv_overlaps(params: &McmParams, act: Activation, a: f64, b: f64) -> (f64, f64) {
    let coarse = PopulationLoss::coarse(params, act, a, b);
    let f = |u: f64, v: f64| coarse.expected_psi([0.0, u, v]);
    let mut best = (0.0, 0.0, f(0.0, 0.0));
    for ir in 1..=10 {
        let rad = ir as f64 / 10.0;
        let n_ang = 8 * ir;
        for ia in 0..n_ang {
            let th = std::f64::consts::TAU * ia as f64 / n_ang as f64;
            let (u, v) = (rad * th.cos(), rad * th.sin());
            let val = f(u, v);
            if val < best.2 {
                best = (u, v, val);
            }
        }
    }
    let best = compass_search(&f, best, 0.05, 1e-5);
    let fine = PopulationLoss::new(params, act, a, b);
    let g = |u: f64, v: f64| fine.expected_psi([0.0, u, v]);
    let start = (best.0, best.1, g(best.0, best.1));
    let best = compass_search(&g, start, 1e-3, 1e-6);
    (best.0, best.1)
}

/// Compass search on the unit disc (points outside are projected onto the circle).
/// The eight compass directions (unit length).
const DIRECTIONS: [(f64, f64); 8] = {
    use std::f64::consts::FRAC_1_SQRT_2 as H;
    [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (H, H), (-H, H), (H, -H), (-H, -H)]
};

fn compass_search(f: &dyn Fn(f64, f64) -> f64, start: (f64, f64, f64), step0: f64, tol: f64) -> (f64, f64, f64) {
    let project = |u: f64, v: f64| {
        let r = (u * u + v * v).sqrt();
        if r > 1.0 { (u / r, v / r) } else { (u, v) }
    };
    let mut best = start;
    let mut step = step0;
    while step > tol {
        let mut moved = false;
        for (du, dv) in DIRECTIONS {
            let (u, v) = project(best.0 + step * du, best.1 + step * dv);
            let val = f(u, v);
            if val < best.2 - 1e-15 {
                best = (u, v, val);
                moved = true;
            }
        }
        if !moved {
            step *= 0.5;
        }
    }
    best
}

/// Default recovery threshold for v (SPEC §2.8): θ_v = min(0.5, ½|α_v*|) for coupled latents;
/// `None` for an independent latent (then θ_v = 0.5).
pub fn default_theta_v(params: &McmParams, act: Activation, a: f64, b: f64) -> Option<f64> {
    if params.coupling == crate::model::Coupling::Independent {
        return None;
    }
    let (_, av) = optimal_uv_overlaps(params, act, a, b);
    Some(0.5f64.min(0.5 * av.abs()))
}

/// The loss of an affine denoiser D(x_t) = A x_t + c₀ on data with mean μ and covariance Σ
/// (SPEC §2.7 "Affine invariance"):
/// L = ½‖(aA − I)μ + c₀‖² + ½ tr[(aA − I)Σ(aA − I)ᵀ] + ½ s² tr(AAᵀ).
#[track_caller]
pub fn affine_loss(mean: &[f64], cov: &[Vec<f64>], amat: &[Vec<f64>], c0: &[f64], a: f64) -> f64 {
    let d = mean.len();
    assert!(
        cov.len() == d
            && cov.iter().all(|r| r.len() == d)
            && amat.len() == d
            && amat.iter().all(|r| r.len() == d)
            && c0.len() == d,
        "affine_loss: mean, c₀ must have length d and Σ, A must be d×d (d = {d})"
    );
    let s2 = 1.0 - a * a;
    // M = aA − I.
    let m: Vec<Vec<f64>> =
        (0..d).map(|i| (0..d).map(|j| a * amat[i][j] - if i == j { 1.0 } else { 0.0 }).collect()).collect();
    let mean_term: f64 = (0..d).map(|i| (0..d).map(|j| m[i][j] * mean[j]).sum::<f64>() + c0[i]).map(|x| x * x).sum();
    let mut cov_term = 0.0;
    for i in 0..d {
        for j in 0..d {
            for k in 0..d {
                cov_term += m[i][j] * cov[j][k] * m[i][k];
            }
        }
    }
    let noise_term: f64 = amat.iter().flat_map(|r| r.iter()).map(|x| x * x).sum::<f64>() * s2;
    0.5 * (mean_term + cov_term + noise_term)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coupling, MixedCumulantModel, NuLaw, SpikeLayout, Spikes};
    use crate::rng::ScalarRng;
    use crate::theory::profile::psi_coefficients;
    use crate::theory::projection::projected_hermite_moments;
    use crate::theory::projection::tests::unit_w;
    use diffexp_kernels::NormalRng;

    fn params(law: NuLaw, c: Coupling) -> McmParams {
        McmParams { beta_m: 1.2, beta_u: 3.0, beta_v: 6.0, nu_law: law, coupling: c }
    }

    #[test]
    fn collapsed_integral_equals_nested_quadrature() {
        let cases = [
            (Activation::Tanh, NuLaw::Rademacher, Coupling::Sign, [0.2, 0.5, 0.4]),
            (Activation::Relu, NuLaw::Rademacher, Coupling::Odd, [0.1, -0.3, 0.8]),
            (Activation::Erf, NuLaw::Uniform, Coupling::Even, [0.0, 0.6, 0.6]),
            (Activation::Tanh, NuLaw::Laplace, Coupling::Independent, [0.3, 0.3, 0.3]),
        ];
        for (act, law, c, alphas) in cases {
            let pl = PopulationLoss::with_accuracy(&params(law, c), act, 0.8, 1.0, LatentAccuracy::COARSE, 96);
            let fast = pl.expected_psi(alphas);
            let nested = pl.expected_psi_nested(alphas, 60);
            assert!((fast - nested).abs() < 1e-11, "{act} {law}/{c}: {fast} vs nested {nested}");
        }
    }

    #[test]
    fn coarse_rule_is_accurate_enough_for_searches() {
        for c in [Coupling::Sign, Coupling::Odd] {
            let p = params(NuLaw::Rademacher, c);
            let fine = PopulationLoss::new(&p, Activation::Tanh, 0.72, 1.0);
            let coarse = PopulationLoss::coarse(&p, Activation::Tanh, 0.72, 1.0);
            for alphas in [[0.0, 0.6, 0.7], [0.0, -0.9, 0.1]] {
                assert!((fine.expected_psi(alphas) - coarse.expected_psi(alphas)).abs() < 1e-7);
            }
        }
    }

    /// L(w) = C₀ + Σ_k ψ_k/k! E He_k(⟨w, x⟩) (SPEC §2.9), truncated at k = 16 where the tail is tiny.
    #[test]
    fn loss_equals_its_hermite_expansion() {
        for (act, c) in
            [(Activation::Tanh, Coupling::Odd), (Activation::Relu, Coupling::Sign), (Activation::Erf, Coupling::Even)]
        {
            let p = params(NuLaw::Rademacher, c);
            let alphas = [0.1, 0.3, 0.3];
            let psi = psi_coefficients(act, 0.72, 1.0, 16);
            let he = projected_hermite_moments(&p, alphas, 16);
            let series: f64 = (0..=16).map(|k| psi[k] / crate::theory::hermite::factorial(k) * he[k]).sum();
            let direct = PopulationLoss::new(&p, act, 0.72, 1.0).expected_psi(alphas);
            assert!((series - direct).abs() < 1e-8, "{act}/{c}: series {series} vs {direct}");
        }
    }

    /// SPEC §7 item 20: the MC mean of ½‖D_w(x_t) − x‖² (f64 sampler, D_w(x_t) = a x_t + b w σ(⟨w, x_t⟩))
    /// equals C₀ + E Ψ(r) within 5 SE.
    #[test]
    fn population_loss_matches_monte_carlo() {
        let cases = [
            (Activation::Tanh, NuLaw::Rademacher, Coupling::Sign, [0.2, 0.5, 0.4], 0.72f64, 1.0),
            (Activation::Relu, NuLaw::Rademacher, Coupling::Odd, [0.1, -0.3, 0.8], 0.6, 1.0),
            (Activation::Erf, NuLaw::Uniform, Coupling::Even, [0.0, 0.6, 0.6], 0.85, 0.7),
            (Activation::Tanh, NuLaw::Laplace, Coupling::Independent, [-0.3, 0.3, 0.6], 0.5, 1.5),
        ];
        let d = 8;
        let n = 200_000;
        for (case, (act, law, c, alphas, a, b)) in cases.into_iter().enumerate() {
            let p = params(law, c);
            let s = (1.0 - a * a).sqrt();
            let pl = PopulationLoss::new(&p, act, a, b);
            let mut srng = ScalarRng::from_seed(500 + case as u64);
            let spikes = Spikes::<f64>::draw(d, SpikeLayout::Orthonormal, &mut srng);
            let w = unit_w(&spikes, alphas, &mut srng);
            let model = MixedCumulantModel::new(p, spikes);
            let mut latent = ScalarRng::from_seed(600 + case as u64);
            let mut normals = NormalRng::from_seed(700 + case as u64);
            let (mut x, mut xi, mut xt) = (vec![0.0f64; d], vec![0.0f64; d], vec![0.0f64; d]);
            // Raw loss ℓ, and ℓ minus its σ-free part ½‖−s²x + asξ‖² (whose mean is C₀) for a sharp check
            // of E Ψ.
            let (mut s1, mut s2, mut t1, mut t2) = (0.0, 0.0, 0.0, 0.0);
            for _ in 0..n {
                model.sample_into(&mut latent, &mut normals, &mut x);
                normals.fill(&mut xi);
                for i in 0..d {
                    xt[i] = a * x[i] + s * xi[i];
                }
                let h: f64 = w.iter().zip(&xt).map(|(u, v)| u * v).sum();
                let sg = act.value(h);
                let (mut loss, mut base) = (0.0, 0.0);
                for i in 0..d {
                    let e = a * xt[i] + b * w[i] * sg - x[i];
                    loss += 0.5 * e * e;
                    let e0 = a * xt[i] - x[i];
                    base += 0.5 * e0 * e0;
                }
                s1 += loss;
                s2 += loss * loss;
                t1 += loss - base;
                t2 += (loss - base) * (loss - base);
            }
            let nf = n as f64;
            let (m, se) = (s1 / nf, ((s2 / nf - (s1 / nf).powi(2)) / nf).sqrt());
            let (mt, set) = (t1 / nf, ((t2 / nf - (t1 / nf).powi(2)) / nf).sqrt());
            let exact = pl.loss(alphas, d);
            let epsi = pl.expected_psi(alphas);
            assert!((m - exact).abs() < 5.0 * se, "{act} {law}/{c}: MC loss {m} ± {se} vs {exact}");
            assert!((mt - epsi).abs() < 5.0 * set, "{act} {law}/{c}: MC E Ψ {mt} ± {set} vs {epsi}");
            // C₀ of SPEC §7 item 20.
            let c0 = 0.5 * (s.powi(4) * (d as f64 + 3.0 + 1.44) + a * a * s * s * d as f64);
            assert!((pl.c0(d) - c0).abs() < 1e-12);
        }
    }

    /// A linear σ makes Ψ quadratic, so the loss sees only E r and E r²: data and surrogate agree
    /// exactly, for every coupling (the quadratic case of affine invariance).
    #[test]
    fn linear_denoiser_cannot_tell_data_from_surrogate() {
        for c in [Coupling::Sign, Coupling::Even, Coupling::Odd, Coupling::Independent] {
            let p = params(NuLaw::Laplace, c);
            let pl = PopulationLoss::new(&p, Activation::Linear, 0.6, 1.3);
            for alphas in [[0.3, 0.5, 0.6], [0.0, -0.8, 0.5]] {
                let (data, surr) = (pl.expected_psi(alphas), pl.expected_psi_surrogate(alphas));
                assert!((data - surr).abs() < 1e-12, "{c} {alphas:?}: {data} vs {surr}");
            }
        }
    }

    /// The surrogate loss against MC on the O(d) surrogate sampler (SPEC §2.3), coupled latent so that
    /// c_uv ≠ 0 enters Var r.
    #[test]
    fn surrogate_loss_matches_monte_carlo_on_the_surrogate_sampler() {
        let (d, n, a, b) = (8, 200_000, 0.7f64, 1.0);
        let s = (1.0 - a * a).sqrt();
        let p = params(NuLaw::Rademacher, Coupling::Sign);
        let alphas = [0.2, 0.6, 0.5];
        let pl = PopulationLoss::new(&p, Activation::Tanh, a, b);
        let mut srng = ScalarRng::from_seed(77);
        let spikes = Spikes::<f64>::draw(d, SpikeLayout::Orthonormal, &mut srng);
        let w = unit_w(&spikes, alphas, &mut srng);
        let sur = MixedCumulantModel::new(p, spikes).surrogate();
        let mut normals = NormalRng::from_seed(78);
        let (mut x, mut xi) = (vec![0.0f64; d], vec![0.0f64; d]);
        let (mut t1, mut t2) = (0.0, 0.0);
        for _ in 0..n {
            sur.sample_into(&mut normals, &mut x);
            normals.fill(&mut xi);
            let r: f64 = w.iter().zip(&x).map(|(u, v)| u * v).sum();
            let h: f64 = w.iter().zip(x.iter().zip(&xi)).map(|(u, (x, z))| u * (a * x + s * z)).sum();
            // ℓ − ½‖−s²x + asξ‖² = bσ(h)(ah − r) + ½b²σ(h)².
            let sg = Activation::Tanh.value(h);
            let v = b * sg * (a * h - r) + 0.5 * b * b * sg * sg;
            t1 += v;
            t2 += v * v;
        }
        let (m, se) = (t1 / n as f64, ((t2 / n as f64 - (t1 / n as f64).powi(2)) / n as f64).sqrt());
        let exact = pl.expected_psi_surrogate(alphas);
        assert!((m - exact).abs() < 5.0 * se, "MC {m} ± {se} vs {exact}");
        // …and the data loss differs from it by many SE here (the test has power).
        assert!((pl.expected_psi(alphas) - exact).abs() > 10.0 * se);
    }

    /// SPEC §7 item 21: for an independent Rademacher latent at α_u = 0,
    /// L_surr − L_data = ψ₄/12 s_v⁴ α_v⁴ + O(α_v⁶).
    #[test]
    fn surrogate_gap_is_quartic_in_alpha_v() {
        let p = McmParams {
            beta_m: 0.0,
            beta_u: 3.0,
            beta_v: 6.0,
            nu_law: NuLaw::Rademacher,
            coupling: Coupling::Independent,
        };
        for (act, a) in
            [(Activation::Tanh, 0.5f64.sqrt()), (Activation::Erf, 0.5f64.sqrt()), (Activation::Tanh, 0.9f64.sqrt())]
        {
            let pl = PopulationLoss::new(&p, act, a, 1.0);
            let psi4 = psi_coefficients(act, a, 1.0, 4)[4];
            let sv4 = p.s_v().powi(4);
            let g =
                |av: f64| (pl.surrogate_loss([0.0, 0.0, av], 100) - pl.loss([0.0, 0.0, av], 100)) / (sv4 * av.powi(4));
            // g(α) = ψ₄/12 + c α² + …: Richardson-extrapolate α → 0.
            let (g1, g2) = (g(0.1), g(0.05));
            let g0 = (4.0 * g2 - g1) / 3.0;
            assert!((g0 - psi4 / 12.0).abs() < 1e-5 * psi4.abs(), "{act} a={a}: {g0} vs ψ₄/12 = {}", psi4 / 12.0);
            // The raw ratio already agrees at small α, with the O(α²) correction visible.
            assert!((g2 - psi4 / 12.0).abs() < 2e-2 * psi4.abs());
            // The sign of the gap follows ψ₄ (positive ⇔ the denoiser exploits the negative κ₄).
            assert_eq!(g(0.3).signum(), psi4.signum());
        }
    }

    /// SPEC §7 item 19 (closed-form part): the affine loss depends on the data only through (μ, Σ), and
    /// the surrogate sampler reproduces (μ, Σ) of the MCM exactly; MC checks the closed form itself.
    #[test]
    fn affine_loss_is_equal_on_mcm_and_surrogate_moments() {
        let d = 6;
        for c in [Coupling::Sign, Coupling::Even, Coupling::Independent] {
            let p = params(NuLaw::Rademacher, c);
            let mut rng = ScalarRng::from_seed(40);
            let model = MixedCumulantModel::new(p, Spikes::<f64>::draw(d, SpikeLayout::Orthonormal, &mut rng));
            let mean = model.mean();
            let cov = model.covariance_dense();
            // Recover the surrogate's exact affine map x_G = μ_G + M z from d draws with known z.
            let sur = model.surrogate();
            let mut zs = Vec::new();
            let mut xs = Vec::new();
            for k in 0..=d {
                let mut z = vec![0.0f64; d];
                let mut x = vec![0.0f64; d];
                NormalRng::from_seed(900 + k as u64).fill(&mut z);
                sur.sample_into(&mut NormalRng::from_seed(900 + k as u64), &mut x);
                zs.push(z);
                xs.push(x);
            }
            // Differences eliminate μ_G: X_k − X_0 = M (Z_k − Z_0), solve for M column by column.
            let dz: Vec<Vec<f64>> = (1..=d).map(|k| (0..d).map(|i| zs[k][i] - zs[0][i]).collect()).collect();
            let dx: Vec<Vec<f64>> = (1..=d).map(|k| (0..d).map(|i| xs[k][i] - xs[0][i]).collect()).collect();
            // M Dz = Dx with the draws as columns of Dz, Dx: M = Dx Dz⁻¹.
            let dz_cols: Vec<Vec<f64>> = (0..d).map(|i| (0..d).map(|k| dz[k][i]).collect()).collect();
            let dz_inv = invert(&dz_cols);
            let m = |i: usize, j: usize| (0..d).map(|k| dx[k][i] * dz_inv[k][j]).sum::<f64>();
            let cov_g: Vec<Vec<f64>> =
                (0..d).map(|i| (0..d).map(|j| (0..d).map(|k| m(i, k) * m(j, k)).sum()).collect()).collect();
            let mean_g: Vec<f64> = (0..d).map(|i| xs[0][i] - (0..d).map(|k| m(i, k) * zs[0][k]).sum::<f64>()).collect();
            let mut arng = ScalarRng::from_seed(41);
            for _ in 0..3 {
                let amat: Vec<Vec<f64>> = (0..d).map(|_| (0..d).map(|_| 0.4 * arng.normal()).collect()).collect();
                let c0: Vec<f64> = (0..d).map(|_| arng.normal()).collect();
                let l_data = affine_loss(&mean, &cov, &amat, &c0, 0.8);
                let l_surr = affine_loss(&mean_g, &cov_g, &amat, &c0, 0.8);
                assert!((l_data - l_surr).abs() < 1e-10 * l_data, "{c}: {l_data} vs {l_surr}");
            }
            // MC of the affine loss on MCM samples agrees with the closed form.
            let amat: Vec<Vec<f64>> = (0..d).map(|_| (0..d).map(|_| 0.4 * arng.normal()).collect()).collect();
            let c0: Vec<f64> = (0..d).map(|_| arng.normal()).collect();
            let exact = affine_loss(&mean, &cov, &amat, &c0, 0.8);
            let (mut latent, mut normals) = (ScalarRng::from_seed(42), NormalRng::from_seed(43));
            let (mut x, mut xi) = (vec![0.0f64; d], vec![0.0f64; d]);
            let n = 100_000;
            let (mut s1, mut s2) = (0.0, 0.0);
            for _ in 0..n {
                model.sample_into(&mut latent, &mut normals, &mut x);
                normals.fill(&mut xi);
                let xt: Vec<f64> = (0..d).map(|i| 0.8 * x[i] + 0.6 * xi[i]).collect();
                let l: f64 = (0..d)
                    .map(|i| (amat[i].iter().zip(&xt).map(|(u, v)| u * v).sum::<f64>() + c0[i] - x[i]).powi(2))
                    .sum::<f64>()
                    * 0.5;
                s1 += l;
                s2 += l * l;
            }
            let (mm, se) = (s1 / n as f64, ((s2 / n as f64 - (s1 / n as f64).powi(2)) / n as f64).sqrt());
            assert!((mm - exact).abs() < 5.0 * se, "{c}: MC {mm} ± {se} vs {exact}");
        }
    }

    /// Gauss–Jordan inverse with partial pivoting (small dense test matrices).
    fn invert(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let n = a.len();
        let mut m: Vec<Vec<f64>> = a
            .iter()
            .enumerate()
            .map(|(i, r)| r.iter().copied().chain((0..n).map(|j| (i == j) as u8 as f64)).collect())
            .collect();
        for col in 0..n {
            let piv = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs())).unwrap();
            m.swap(col, piv);
            let p = m[col][col];
            m[col].iter_mut().for_each(|x| *x /= p);
            for r in 0..n {
                if r != col {
                    let f = m[r][col];
                    let pivot_row = m[col].clone();
                    m[r].iter_mut().zip(&pivot_row).for_each(|(x, y)| *x -= f * y);
                }
            }
        }
        m.into_iter().map(|r| r[n..].to_vec()).collect()
    }

    #[test]
    fn optimal_overlaps_and_theta_v() {
        let p =
            McmParams { beta_m: 0.0, beta_u: 3.0, beta_v: 6.0, nu_law: NuLaw::Rademacher, coupling: Coupling::Sign };
        let (u, v) = optimal_uv_overlaps(&p, Activation::Tanh, 0.5f64.sqrt(), 1.0);
        let pl = PopulationLoss::new(&p, Activation::Tanh, 0.5f64.sqrt(), 1.0);
        let best = pl.expected_psi([0.0, u, v]);
        // No point of a fine polar grid does better (up to the search tolerance).
        for ir in 0..=20 {
            let r = ir as f64 / 20.0;
            for ia in 0..48 {
                let th = std::f64::consts::TAU * ia as f64 / 48.0;
                assert!(
                    pl.expected_psi([0.0, r * th.cos(), r * th.sin()]) >= best - 1e-9,
                    "({u}, {v}) is not the minimum"
                );
            }
        }
        let theta = default_theta_v(&p, Activation::Tanh, 0.5f64.sqrt(), 1.0).unwrap();
        assert!((theta - 0.5f64.min(0.5 * v.abs())).abs() < 1e-15);
        let indep = McmParams { coupling: Coupling::Independent, ..p };
        assert_eq!(default_theta_v(&indep, Activation::Tanh, 0.5f64.sqrt(), 1.0), None);
    }
}
