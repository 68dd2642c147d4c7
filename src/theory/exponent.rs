//! The diffusion information exponent (SPEC §2.9) and the report the engine prints before training.
//!
//! - [`diffusion_information_exponent`]: k*(e) = min{k ≥ 1 : ψ_k h_k(e) ≠ 0} up to k_max = 8, from the
//!   profile coefficients ψ_k ([`super::profile`]) and the data moments h_k(e) ([`super::projection`]).
//! - [`ConditionalExpansion`]: v once u is learned. At fixed α_u = ᾱ, writing q = s_v α_v and
//!   Ψ₁ = Ψ ∗ N(0, 1), the loss is exactly
//!   L(ᾱ, α_v) = C₀ + Σ_n qⁿ/n! D_n,  D_n = E[He_n(ν) Ψ₁⁽ⁿ⁾(pλ)] = E[He_n(ν) He_n(ζ) Ψ(pλ + ζ)],
//!   (the Hermite generating function applied to the Gaussian part √(1−q²)ζ of r), so
//!   ∂ⁿL/∂α_vⁿ|₀ = s_vⁿ D_n. The linear drive s_v D₁ = s_v E[Ψ′(pλ + ζ)ν] is SPEC §2.9's exact
//!   expression; [`conditional_drive_series`] is its Hermite series. The conditional exponent of v is
//!   the first n with D_n ≠ 0.
//! - [`exponent_report`]: one entry per configured direction, with the attraction sign, the table's
//!   expectation (from the structural zeros of ψ_k and h_k), and a warning where they disagree.

use super::drift::{drift_coefficient, gradient_noise_constant};
use super::hermite::{factorial, hermite_all};
use super::latents::{JointMoments, LatentQuadrature};
use super::population::{PopulationLoss, default_theta_v};
use super::profile::DenoiserProfile;
use super::projection::{ProjectedMoments, Spike};
use crate::model::{Coupling, McmParams};
use crate::net::Activation;
use serde::Serialize;
use std::fmt;

/// Largest order searched for k* (SPEC §2.9).
pub const K_MAX: usize = 8;
/// Relative tolerance below which a coefficient counts as zero.
pub const REL_TOL: f64 = 1e-10;
/// Truncation order of the conditional drive's Hermite series.
pub const DRIVE_SERIES_ORDER: usize = 12;
/// ᾱ at which the report evaluates "v once u is learned": the default recovery threshold θ_u = 0.5 of
/// SPEC §2.8 (u counts as learned once |α_u| ≥ θ_u). Which order first survives does not depend on
/// ᾱ ∈ (0, 1) (the parity rule is a symmetry), only the size of the drive does. The loss minimiser
/// along u, reported as well, often sits at α_u = 1, where only the first α_v-derivative at fixed α_u
/// is still a derivative along the sphere.
pub const CONDITIONAL_ALPHA_U: f64 = 0.5;

/// Indices k ≥ 1 whose value is zero relative to the largest normalised magnitude |x_j|/√j!.
fn nonzero_mask(values: &[f64]) -> Vec<bool> {
    let norm: Vec<f64> = values.iter().enumerate().map(|(k, x)| x.abs() / factorial(k).sqrt()).collect();
    let scale = norm.iter().skip(1).cloned().fold(0.0, f64::max);
    norm.iter().map(|&x| x > REL_TOL * scale && x > 0.0).collect()
}

/// k_data(e) = min{k ≥ 1 : h_k ≠ 0} (k ≤ h.len() − 1), `None` if none.
pub fn data_exponent(h: &[f64]) -> Option<u32> {
    let nz = nonzero_mask(h);
    (1..h.len()).find(|&k| nz[k]).map(|k| k as u32)
}

/// k* = min{k ≥ 1 : ψ_k h_k ≠ 0} up to min(len) − 1, with ψ_k and h_k each tested against the
/// relative tolerance [`REL_TOL`] on the scale |·|/√k!.
pub fn diffusion_information_exponent(psi: &[f64], h: &[f64]) -> Option<u32> {
    let n = psi.len().min(h.len());
    let (zp, zh) = (nonzero_mask(&psi[..n]), nonzero_mask(&h[..n]));
    (1..n).find(|&k| zp[k] && zh[k]).map(|k| k as u32)
}

/// For an even order k the overlap grows from a random start iff the coefficient of α^k is negative;
/// for an odd order there is always a drive (SPEC §2.9 "Attraction").
pub fn is_attractive(k: u32, coefficient: f64) -> bool {
    k % 2 == 1 || coefficient < 0.0
}

/// ψ_k vanishes for every (a, b) by the structure of σ (SPEC §2.9 "Structural facts").
pub fn psi_structurally_zero(act: Activation, k: usize) -> bool {
    match act {
        Activation::Tanh | Activation::Erf => k % 2 == 1,
        Activation::Linear => k % 2 == 1 || k >= 3,
        Activation::Relu => k % 2 == 0 && k >= 4,
        // Ψ is a polynomial of degree 2j; odd j makes it even.
        Activation::Hermite(j) => k > 2 * j as usize || (j % 2 == 1 && k % 2 == 1),
    }
}

/// h_k(e) vanishes for every strength by symmetry or normalisation (SPEC §2.9 "Data side").
fn h_structurally_zero(params: &McmParams, e: Spike, k: usize) -> bool {
    match e {
        Spike::M => false,
        Spike::U => k % 2 == 1,
        Spike::V => k <= 2 || (params.nu_law.is_symmetric() && k % 2 == 1),
    }
}

/// The table's expectation for k*(e): the first k at which neither ψ_k nor h_k is a structural zero.
pub fn expected_exponent(params: &McmParams, act: Activation, e: Spike) -> Option<u32> {
    (1..=K_MAX).find(|&k| !psi_structurally_zero(act, k) && !h_structurally_zero(params, e, k)).map(|k| k as u32)
}

/// The table's expectation for v once u is learned (SPEC §2.9 "Parity rule"): 1 if some ψ_k that is
/// not a structural zero meets a non-vanishing E[λ^{k−1}ν]; otherwise 4 for an odd σ whose Ψ is not
/// quadratic (the quartic term κ₄(ν) E Ψ₁⁗ survives), else none.
pub fn expected_conditional_exponent(params: &McmParams, act: Activation) -> Option<u32> {
    let coupling_moment_nonzero = |j: usize| match params.coupling {
        Coupling::Independent => false,
        Coupling::Sign => j % 2 == 1,
        Coupling::Even => j % 2 == 0 && j >= 2,
        Coupling::Odd => j % 2 == 1 && j >= 3,
    };
    if (1..=DRIVE_SERIES_ORDER).any(|k| !psi_structurally_zero(act, k) && coupling_moment_nonzero(k - 1)) {
        return Some(1);
    }
    let quadratic = matches!(act, Activation::Linear | Activation::Hermite(1));
    if act.is_odd() && !quadratic && params.nu_law.kappa4() != 0.0 { Some(4) } else { None }
}

/// Exact expansion of the loss in α_v at fixed α_u = ᾱ (α_m = 0), see the module doc.
#[derive(Clone, Debug, Serialize)]
pub struct ConditionalExpansion {
    /// ᾱ, the fixed overlap with u.
    pub alpha_u_bar: f64,
    /// D_n for n = 0..=n_max (D₀ = E Ψ(pλ + ζ)).
    pub d: Vec<f64>,
    /// ∂ⁿL/∂α_vⁿ at α_v = 0: s_vⁿ D_n.
    pub derivatives: Vec<f64>,
    /// Σ |w He_n(ν) I_n| over the latent rule: the scale against which D_n counts as zero.
    #[serde(skip)]
    d_abs: Vec<f64>,
}

impl ConditionalExpansion {
    /// Computes D_n for n ≤ n_max. The inner E_ζ[He_n(ζ)Ψ(y + ζ)] is collapsed to one Gaussian integral
    /// over h = a(y + ζ) + sη ~ N(ay, 1): given h, ζ ~ N(a u, s²) with u = h − ay, so
    /// E[He_n(ζ) | h] = aⁿ He_n(u) and E[ζ He_n(ζ) | h] = a^{n+1}He_{n+1}(u) + n a^{n−1}He_{n−1}(u), and the
    /// loss integrand is affine in r = y + ζ.
    pub fn new(params: &McmParams, act: Activation, a: f64, b: f64, alpha_u_bar: f64, n_max: usize) -> Self {
        let prof = DenoiserProfile::new(act, a, b);
        let latents = LatentQuadrature::for_params(params);
        let p = params.beta_u.sqrt() * alpha_u_bar;
        let sv = params.s_v();
        let mut d = vec![0.0; n_max + 1];
        let mut d_abs = vec![0.0; n_max + 1];
        let mut he_nu = vec![0.0; n_max + 1];
        let mut he_u = vec![0.0; n_max + 2];
        let mut inner = vec![0.0; n_max + 1];
        for node in &latents.nodes {
            let y = p * node.lambda;
            inner.iter_mut().for_each(|x| *x = 0.0);
            // One pass over the h-rule accumulates all orders n.
            let mut acc = |h: f64, w: f64| {
                let sg = act.value(h);
                // F(h, r) = α(h) + β(h) r with r = y + ζ.
                let alpha_h = b * sg * a * h + 0.5 * b * b * sg * sg;
                let beta_h = -b * sg;
                hermite_all(h - a * y, &mut he_u);
                for n in 0..=n_max {
                    let an = a.powi(n as i32);
                    let e_he = an * he_u[n];
                    let e_zhe = an * a * he_u[n + 1] + if n > 0 { n as f64 * an / a * he_u[n - 1] } else { 0.0 };
                    inner[n] += w * (alpha_h * e_he + beta_h * (y * e_he + e_zhe));
                }
            };
            prof.for_each_gaussian_node(a * y, 1.0, &mut acc);
            hermite_all(node.nu, &mut he_nu);
            for n in 0..=n_max {
                d[n] += node.weight * he_nu[n] * inner[n];
                d_abs[n] += (node.weight * he_nu[n] * inner[n]).abs();
            }
        }
        let derivatives = d.iter().enumerate().map(|(n, x)| sv.powi(n as i32) * x).collect();
        Self { alpha_u_bar, d, derivatives, d_abs }
    }

    /// The conditional exponent: the first n ≥ 1 with D_n ≠ 0. D_n counts as zero when it is below
    /// [`REL_TOL`] times the sum of the magnitudes it is made of: the zeros here are exact
    /// cancellations by symmetry (parity rule), and every D_n may vanish at once (ReLU with `odd`).
    pub fn exponent(&self) -> Option<u32> {
        (1..self.d.len()).find(|&n| self.d[n].abs() > REL_TOL * self.d_abs[n] && self.d[n] != 0.0).map(|n| n as u32)
    }
}

/// The exact linear drive of v at α_u = ᾱ, α_v = 0: ∂L/∂α_v = s_v E[Ψ′(√β_u ᾱ λ + ζ) ν] (SPEC §2.9).
pub fn conditional_drive_exact(params: &McmParams, act: Activation, a: f64, b: f64, alpha_u_bar: f64) -> f64 {
    let prof = DenoiserProfile::new(act, a, b);
    let p = params.beta_u.sqrt() * alpha_u_bar;
    params.s_v()
        * LatentQuadrature::for_params(params).expect(|l, nu| nu * prof.expected_psi_derivative_gaussian(p * l, 1.0))
}

/// Its Hermite series s_v Σ_{k=1}^{K} ψ_k/(k−1)! (√β_u ᾱ)^{k−1} E[λ^{k−1}ν], K = `order`.
pub fn conditional_drive_series(
    params: &McmParams,
    act: Activation,
    a: f64,
    b: f64,
    alpha_u_bar: f64,
    order: usize,
) -> f64 {
    let psi = super::profile::psi_coefficients(act, a, b, order);
    let jm = JointMoments::new(params, order);
    let p = params.beta_u.sqrt() * alpha_u_bar;
    params.s_v() * (1..=order).map(|k| psi[k] / factorial(k - 1) * p.powi(k as i32 - 1) * jm.get(k - 1, 1)).sum::<f64>()
}

/// The minimiser ᾱ ∈ [0, 1] of the population loss along u (α_m = α_v = 0): where a single direction
/// sits once u is learned. Golden-section search after a coarse scan.
pub fn learned_u_overlap(params: &McmParams, act: Activation, a: f64, b: f64) -> f64 {
    let pl = PopulationLoss::new(params, act, a, b);
    let f = |x: f64| pl.expected_psi([0.0, x, 0.0]);
    let n = 40;
    let (mut best_i, mut best) = (0, f(0.0));
    for i in 1..=n {
        let v = f(i as f64 / n as f64);
        if v < best {
            best = v;
            best_i = i;
        }
    }
    let (mut lo, mut hi) = (((best_i as f64 - 1.0) / n as f64).max(0.0), ((best_i as f64 + 1.0) / n as f64).min(1.0));
    let gr = (5f64.sqrt() - 1.0) / 2.0;
    while hi - lo > 1e-7 {
        let (x1, x2) = (hi - gr * (hi - lo), lo + gr * (hi - lo));
        if f(x1) < f(x2) { hi = x2 } else { lo = x1 }
    }
    0.5 * (lo + hi)
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct DirectionExponent {
    /// "m", "u", "v" or "v|u".
    pub direction: String,
    pub k_data: Option<u32>,
    pub k_star: Option<u32>,
    /// ψ_{k*} (not defined for "v|u").
    pub psi_k: Option<f64>,
    /// h_{k*}(e) (not defined for "v|u").
    pub h_k: Option<f64>,
    /// Coefficient of α^{k*} in L − C₀: ψ_k h_k / k!, or s_v^k D_k / k! for "v|u".
    pub c_k: Option<f64>,
    pub attractive: Option<bool>,
    /// The table's expectation for k* (`None`: no exponent expected).
    pub expected: Option<u32>,
    pub warning: Option<String>,
}

/// Everything `diffexp exponent` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ExponentReport {
    pub params: McmParams,
    pub activation: Activation,
    pub a: f64,
    pub b: f64,
    pub k_max: usize,
    /// ψ_0..ψ_{k_max}.
    pub psi: Vec<f64>,
    pub directions: Vec<DirectionExponent>,
    /// Minimiser of the population loss along u, α_u ∈ [0, 1] (coupled latents with β_u, β_v > 0).
    pub alpha_u_learned: Option<f64>,
    /// Expansion in α_v at α_u = [`CONDITIONAL_ALPHA_U`] (coupled latents with β_u, β_v > 0).
    pub conditional: Option<ConditionalExpansion>,
    /// Hermite series of the linear drive (truncated at k = 12), next to the exact value
    /// `conditional.derivatives[1]`.
    pub conditional_drive_series: Option<f64>,
    /// Default θ_v = min(0.5, ½|α_v*|) for coupled latents (SPEC §2.8).
    pub theta_v: Option<f64>,
    /// C = lim E‖g‖²/d at α = 0 (analytic), for the drift heuristic of §2.10.
    pub gradient_noise_c: f64,
    pub warnings: Vec<String>,
}

/// One report row; `psi_h` = (ψ_k*, h_k*) where defined, `c_k` the coefficient of α^{k*}.
fn row(
    direction: &str,
    k_data: Option<u32>,
    k_star: Option<u32>,
    psi_h: Option<(f64, f64)>,
    c_k: Option<f64>,
    expected: Option<u32>,
) -> DirectionExponent {
    let (psi_k, h_k) = (psi_h.map(|x| x.0), psi_h.map(|x| x.1));
    let attractive = k_star.zip(c_k).map(|(k, c)| is_attractive(k, c));
    let mut warning = Vec::new();
    if k_star != expected {
        warning.push(format!("k* = {} but the table expects {}", show(k_star), show(expected)));
    }
    if attractive == Some(false) {
        warning.push(format!(
            "not attractive: coefficient of α^{} is {:+.4e} > 0, the overlap decays",
            k_star.unwrap(),
            c_k.unwrap()
        ));
    }
    DirectionExponent {
        direction: direction.to_string(),
        k_data,
        k_star,
        psi_k,
        h_k,
        c_k,
        attractive,
        expected,
        warning: if warning.is_empty() { None } else { Some(warning.join("; ")) },
    }
}

fn show(k: Option<u32>) -> String {
    k.map_or("none".to_string(), |k| k.to_string())
}

/// The exponent report for the single-direction denoiser (i) at signal coefficient a, weight b.
/// Directions with β = 0 are omitted; "v|u" appears for coupled latents with β_u, β_v > 0.
pub fn exponent_report(params: &McmParams, act: Activation, a: f64, b: f64) -> ExponentReport {
    let psi = super::profile::psi_coefficients(act, a, b, K_MAX);
    let moments = ProjectedMoments::new(params, K_MAX);
    let mut directions = Vec::new();
    for e in [Spike::M, Spike::U, Spike::V] {
        if e.beta(params) <= 0.0 {
            continue;
        }
        let h = moments.direction_moments(e);
        let k_star = diffusion_information_exponent(&psi, &h);
        let psi_h = k_star.map(|k| (psi[k as usize], h[k as usize]));
        let c_k = psi_h.zip(k_star).map(|((p, hk), k)| drift_coefficient(p, hk, k));
        directions.push(row(&e.to_string(), data_exponent(&h), k_star, psi_h, c_k, expected_exponent(params, act, e)));
    }
    let mut warnings = Vec::new();
    let (mut conditional, mut series, mut theta_v, mut alpha_u_learned) = (None, None, None, None);
    if params.beta_u > 0.0 && params.beta_v > 0.0 && params.coupling != Coupling::Independent {
        let learned = learned_u_overlap(params, act, a, b);
        if learned < 0.05 {
            warnings.push(format!(
                "u is not learned at this noise level (the loss along u is minimal at α_u = {learned:.3})"
            ));
        }
        alpha_u_learned = Some(learned);
        let alpha_bar = CONDITIONAL_ALPHA_U;
        let exp = ConditionalExpansion::new(params, act, a, b, alpha_bar, K_MAX);
        let k_star = exp.exponent();
        let c_k = k_star.map(|k| exp.derivatives[k as usize] / factorial(k as usize));
        let r = row("v|u", None, k_star, None, c_k, expected_conditional_exponent(params, act));
        directions.push(r);
        series = Some(conditional_drive_series(params, act, a, b, alpha_bar, DRIVE_SERIES_ORDER));
        conditional = Some(exp);
        theta_v = default_theta_v(params, act, a, b);
        if let Some(t) = theta_v.filter(|&t| t < 0.025) {
            warnings.push(format!(
                "the population optimum over span(u, v) has |α_v*| = {:.4}: a single direction does not settle on v, \
                 and θ_v = min(0.5, ½|α_v*|) = {t:.4} is degenerate; set θ_v explicitly",
                2.0 * t
            ));
        }
    }
    for d in &directions {
        if let Some(w) = &d.warning {
            warnings.push(format!("{}: {w}", d.direction));
        }
    }
    ExponentReport {
        params: *params,
        activation: act,
        a,
        b,
        k_max: K_MAX,
        psi,
        directions,
        alpha_u_learned,
        conditional,
        conditional_drive_series: series,
        theta_v,
        gradient_noise_c: gradient_noise_constant(act, a, b),
        warnings,
    }
}

impl fmt::Display for ExponentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(
            f,
            "diffusion information exponent — σ = {}, a² = {:.4}, b = {}; β_m = {}, β_u = {}, β_v = {}, ν ~ {}, coupling = {}",
            self.activation,
            self.a * self.a,
            self.b,
            p.beta_m,
            p.beta_u,
            p.beta_v,
            p.nu_law,
            p.coupling
        )?;
        write!(f, "ψ_k (k = 1..{}):", self.k_max)?;
        for (k, x) in self.psi.iter().enumerate().skip(1) {
            write!(f, " ψ_{k} = {:+.4}", if x.abs() < 1e-12 { 0.0 } else { *x })?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<6} {:>6} {:>4} {:>11} {:>11} {:>11} {:>10} {:>8}",
            "dir", "k_data", "k*", "ψ_k*", "h_k*", "c_k*", "attractive", "expected"
        )?;
        let opt = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:+.4e}"));
        for d in &self.directions {
            writeln!(
                f,
                "{:<6} {:>6} {:>4} {:>11} {:>11} {:>11} {:>10} {:>8}",
                d.direction,
                d.k_data.map_or("—".to_string(), |k| k.to_string()),
                show(d.k_star),
                opt(d.psi_k),
                opt(d.h_k),
                opt(d.c_k),
                d.attractive.map_or("—", |a| if a { "yes" } else { "no" }),
                show(d.expected)
            )?;
        }
        if let Some(c) = &self.conditional {
            writeln!(
                f,
                "v|u at ᾱ = {:.4}: exact drive ∂L/∂α_v = {:+.6e}, Hermite series (k ≤ {DRIVE_SERIES_ORDER}) = {}",
                c.alpha_u_bar,
                c.derivatives[1],
                opt(self.conditional_drive_series)
            )?;
        }
        if let Some(l) = self.alpha_u_learned {
            writeln!(f, "loss minimiser along u: α_u = {l:.4}")?;
        }
        if let Some(t) = self.theta_v {
            writeln!(f, "default θ_v = {t:.4}")?;
        }
        writeln!(f, "C = lim E‖g‖²/d at α = 0: {:.6}", self.gradient_noise_c)?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NuLaw;
    use crate::theory::quadrature::GaussRule;

    fn mcm(beta_m: f64, law: NuLaw, coupling: Coupling) -> McmParams {
        McmParams { beta_m, beta_u: 3.0, beta_v: 6.0, nu_law: law, coupling }
    }

    const A_HALF: f64 = std::f64::consts::FRAC_1_SQRT_2;

    #[test]
    fn conditional_expansion_matches_brute_force_and_the_loss() {
        let gh = GaussRule::hermite(60);
        for (act, c) in
            [(Activation::Tanh, Coupling::Odd), (Activation::Relu, Coupling::Even), (Activation::Erf, Coupling::Sign)]
        {
            let p = mcm(0.0, NuLaw::Rademacher, c);
            let bar = 0.4;
            let exp = ConditionalExpansion::new(&p, act, 0.8, 1.0, bar, 8);
            // D_n = E[He_n(ν) He_n(ζ) Ψ(pλ + ζ)] by brute force.
            let prof = DenoiserProfile::new(act, 0.8, 1.0);
            let lq = LatentQuadrature::for_params(&p);
            let pp = p.beta_u.sqrt() * bar;
            let mut he = [0.0; 7];
            let mut hz = [0.0; 7];
            let mut brute = [0.0; 7];
            for node in &lq.nodes {
                hermite_all(node.nu, &mut he);
                for (z, wz) in gh.iter() {
                    hermite_all(z, &mut hz);
                    let psi = prof.psi(pp * node.lambda + z);
                    for n in 0..7 {
                        brute[n] += node.weight * wz * he[n] * hz[n] * psi;
                    }
                }
            }
            for n in 0..7 {
                assert!(
                    (exp.d[n] - brute[n]).abs() < 1e-10 * (1.0 + brute[n].abs()),
                    "{act}/{c} D_{n}: {} vs {}",
                    exp.d[n],
                    brute[n]
                );
            }
            // Σ_n D_n qⁿ/n! reproduces the population loss along α_v at fixed α_u = ᾱ.
            let pl = PopulationLoss::new(&p, act, 0.8, 1.0);
            for av in [0.1, 0.2] {
                let q = p.s_v() * av;
                let series: f64 = (0..=8).map(|n| exp.d[n] * q.powi(n as i32) / factorial(n)).sum();
                let direct = pl.expected_psi([0.0, bar, av]);
                assert!((series - direct).abs() < 1e-8, "{act}/{c} α_v={av}: {series} vs {direct}");
            }
        }
    }

    /// SPEC §7 item 25: the conditional drive equals its Hermite series (k ≤ 12); exactly 0 for tanh with
    /// the `even` coupling, nonzero with `sign` and `odd`.
    #[test]
    fn conditional_drive_exact_vs_series_and_parity_rule() {
        // At √β_u ᾱ ≈ 0.26 the series truncated at k = 12 is within ~1e-8 of the exact drive.
        let bar = 0.15;
        for (act, c, zero) in [
            (Activation::Tanh, Coupling::Sign, false),
            (Activation::Tanh, Coupling::Odd, false),
            (Activation::Tanh, Coupling::Even, true),
            (Activation::Relu, Coupling::Even, false),
            (Activation::Relu, Coupling::Odd, true),
            (Activation::Erf, Coupling::Odd, false),
        ] {
            let p = mcm(0.0, NuLaw::Rademacher, c);
            let exact = conditional_drive_exact(&p, act, A_HALF, 1.0, bar);
            let series = conditional_drive_series(&p, act, A_HALF, 1.0, bar, DRIVE_SERIES_ORDER);
            let via_expansion = ConditionalExpansion::new(&p, act, A_HALF, 1.0, bar, 2).derivatives[1];
            assert!((exact - via_expansion).abs() < 1e-13, "{act}/{c}: {exact} vs {via_expansion}");
            if zero {
                assert!(exact.abs() < 1e-14 && series.abs() < 1e-14, "{act}/{c}: drive {exact}, series {series}");
            } else {
                assert!(exact.abs() > 1e-4, "{act}/{c}: drive {exact} should be nonzero");
                assert!((exact - series).abs() < 1e-7 * exact.abs(), "{act}/{c}: exact {exact} vs series {series}");
            }
        }
        // Further out the truncation shows, and longer series converge to the exact value.
        let p = mcm(0.0, NuLaw::Rademacher, Coupling::Odd);
        let exact = conditional_drive_exact(&p, Activation::Tanh, A_HALF, 1.0, 0.3);
        let err = |k| (conditional_drive_series(&p, Activation::Tanh, A_HALF, 1.0, 0.3, k) - exact).abs();
        assert!(err(12) < err(8) && err(16) < 0.1 * err(12) && err(20) < 0.1 * err(16));
        // The leading terms named by the parity rule: ψ₂ m₁ (sign) and ψ₄ m₃/6 (odd) dominate.
        let psi = super::super::profile::psi_coefficients(Activation::Tanh, A_HALF, 1.0, 4);
        let p = mcm(0.0, NuLaw::Rademacher, Coupling::Sign);
        let pp = 3f64.sqrt() * 1e-3;
        let lead = p.s_v() * psi[2] * pp * Coupling::Sign.moments()[0];
        let exact = conditional_drive_exact(&p, Activation::Tanh, A_HALF, 1.0, 1e-3);
        assert!((exact - lead).abs() < 1e-5 * lead.abs(), "{exact} vs ψ₂ m₁ term {lead}");
    }

    fn row_of<'a>(r: &'a ExponentReport, dir: &str) -> &'a DirectionExponent {
        r.directions.iter().find(|d| d.direction == dir).unwrap_or_else(|| panic!("no row {dir}"))
    }

    type TableRow = (f64, NuLaw, Coupling, &'static str, Option<u32>, Option<u32>);

    /// SPEC §7 item 26: computed k* match the §2.9 table for tanh (a² = 0.5) and relu.
    #[test]
    fn exponents_match_the_table() {
        #[rustfmt::skip]
        // (β_m, ν law, coupling, direction, k* for tanh, k* for relu)
        let table: [TableRow; 7] = [
            (1.0, NuLaw::Rademacher, Coupling::Independent, "m", Some(2), Some(1)),
            (1.0, NuLaw::Rademacher, Coupling::Independent, "u", Some(2), Some(2)),
            (0.0, NuLaw::Rademacher, Coupling::Independent, "v", Some(4), None),
            (0.0, NuLaw::TwoPoint(0.3), Coupling::Independent, "v", Some(4), Some(3)),
            (0.0, NuLaw::Rademacher, Coupling::Sign, "v|u", Some(1), Some(1)),
            (0.0, NuLaw::Rademacher, Coupling::Odd, "v|u", Some(1), None),
            (0.0, NuLaw::Rademacher, Coupling::Even, "v|u", Some(4), Some(1)),
        ];
        for (beta_m, law, c, dir, k_tanh, k_relu) in table {
            let p = mcm(beta_m, law, c);
            for (act, expect) in [(Activation::Tanh, k_tanh), (Activation::Relu, k_relu)] {
                let rep = exponent_report(&p, act, A_HALF, 1.0);
                let r = row_of(&rep, dir);
                assert_eq!(r.k_star, expect, "{act} {law}/{c} {dir}: k*");
                assert_eq!(r.expected, expect, "{act} {law}/{c} {dir}: table expectation");
                assert!(r.warning.is_none(), "{act} {law}/{c} {dir}: unexpected warning {:?}", r.warning);
                if expect.is_some() {
                    assert_eq!(r.attractive, Some(true), "{act} {law}/{c} {dir}");
                }
            }
        }
        // k_data of the directions (SPEC §2.9 table).
        let rep =
            exponent_report(&mcm(1.0, NuLaw::TwoPoint(0.3), Coupling::Independent), Activation::Tanh, A_HALF, 1.0);
        let kd: Vec<_> = rep.directions.iter().map(|d| (d.direction.as_str(), d.k_data)).collect();
        assert_eq!(kd, vec![("m", Some(1)), ("u", Some(2)), ("v", Some(3))]);
    }

    #[test]
    fn attraction_warnings_follow_the_noise_level() {
        // tanh at a² = 0.9 violates both even conditions (SPEC §2.9 example).
        let p = mcm(0.0, NuLaw::Rademacher, Coupling::Independent);
        let rep = exponent_report(&p, Activation::Tanh, 0.9f64.sqrt(), 1.0);
        assert_eq!(row_of(&rep, "u").attractive, Some(false));
        assert_eq!(row_of(&rep, "v").attractive, Some(false));
        assert_eq!(rep.warnings.len(), 2, "{:?}", rep.warnings);
        // Laplace (κ₄ > 0) needs ψ₄ < 0: not attractive for tanh at a² = 0.5.
        let lap = McmParams { nu_law: NuLaw::Laplace, ..p };
        let rep = exponent_report(&lap, Activation::Tanh, A_HALF, 1.0);
        assert_eq!(row_of(&rep, "v").k_star, Some(4));
        assert_eq!(row_of(&rep, "v").attractive, Some(false));
        // β = 0 directions are omitted; v|u only for coupled latents.
        let names: Vec<_> = rep.directions.iter().map(|d| d.direction.clone()).collect();
        assert_eq!(names, vec!["u", "v"]);
        // c_k = ψ_k h_k / k!.
        let u = row_of(&rep, "u");
        assert!((u.c_k.unwrap() - u.psi_k.unwrap() * u.h_k.unwrap() / 2.0).abs() < 1e-15);
    }

    #[test]
    fn report_serialises_and_prints() {
        let p = mcm(0.5, NuLaw::Rademacher, Coupling::Sign);
        let rep = exponent_report(&p, Activation::Tanh, A_HALF, 1.0);
        let json = serde_json::to_string(&rep).unwrap();
        assert!(json.contains("\"direction\":\"v|u\"") && json.contains("\"k_star\":1"), "{json}");
        let text = rep.to_string();
        for needle in ["v|u", "k_data", "θ_v", "ψ_4 = +0.1715"] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        let theta = rep.theta_v.unwrap();
        assert!(theta > 0.0 && theta <= 0.5);
    }
}
