//! The drift heuristic of SPEC §2.10: budgets and step sizes from c_k = ψ_k h_k / k!.
//!
//! Near α = 0 the population loss along a direction is φ(α) ≈ c_k α^k, and one step of online
//! spherical SGD moves the overlap by
//! α_{n+1} ≈ α_n + η k|c_k| α_n^{k−1} − ½ η² C d α_n + noise of size η,
//! with C = lim_{d→∞} E‖g‖²/d at α = 0 (the renormalisation shrinkage).

use super::hermite::factorial;
use super::profile::DenoiserProfile;
use crate::model::{McmParams, MixedCumulantModel, SpikeLayout, Spikes};
use crate::net::Activation;
use crate::rng::ScalarRng;
use diffexp_kernels::NormalRng;

/// c_k = ψ_k h_k / k!.
pub fn drift_coefficient(psi_k: f64, h_k: f64, k: u32) -> f64 {
    psi_k * h_k / factorial(k as usize)
}

/// Samples to escape from α₀ ~ d^{−1/2} up to θ with η = δ/d (SPEC §2.10):
/// k = 1: d θ/(δ|c₁|); k = 2: d log(θ√d)/(2δ|c₂|); k ≥ 3: d^{k/2}/(δ k(k−2)|c_k|).
#[track_caller]
pub fn escape_time(k: u32, c_k: f64, delta: f64, d: f64, theta: f64) -> f64 {
    assert!(k >= 1 && delta > 0.0 && d > 1.0, "escape_time: need k ≥ 1, δ > 0, d > 1");
    let c = c_k.abs();
    match k {
        1 => d * theta / (delta * c),
        2 => d * (theta * d.sqrt()).ln() / (2.0 * delta * c),
        _ => d.powf(k as f64 / 2.0) / (delta * (k * (k - 2)) as f64 * c),
    }
}

/// The largest δ (η = δ/d) for which the drift beats the shrinkage at α₀ = d^{−1/2}:
/// δ ≪ 2k|c_k| d^{−(k−2)/2} / C.
pub fn escape_delta_bound(k: u32, c_k: f64, d: f64, big_c: f64) -> f64 {
    2.0 * k as f64 * c_k.abs() * d.powf(-(k as f64 - 2.0) / 2.0) / big_c
}

/// C = lim E‖g‖²/d at α = 0, **analytically**. For w orthogonal to every spike, as d → ∞:
/// ‖e‖²/d → s², ‖x_t‖²/d → 1, ⟨e, x_t⟩/d → −a s² + a s² = 0 and ⟨w, ∇⟩ = O(1), so
/// C = b² E[s² σ(h)² + σ′(h)² π²],  π = a h + b σ(h) − r,  h = a r + s ζ,  (r, ζ) iid N(0, 1).
/// The data never enter: at α = 0 the projection r is exactly N(0, 1).
pub fn gradient_noise_constant(act: Activation, a: f64, b: f64) -> f64 {
    let prof = DenoiserProfile::new(act, a, b);
    let s = prof.s;
    let gh = super::quadrature::GaussRule::hermite(super::profile::PROFILE_NODES);
    gh.integrate(|r| {
        prof.gaussian_expect(a * r, s, |h| {
            let (sg, dsg) = act.value_and_derivative(h);
            let pi = a * h + b * sg - r;
            b * b * (s * s * sg * sg + dsg * dsg * pi * pi)
        })
    })
}

/// Monte Carlo estimate (mean, standard error) of E‖g‖²/d at finite d for a unit w orthogonal to the
/// spikes, with the f64 sampler: g = ∇ − ⟨w, ∇⟩w, ∇ = bσ(h)e + bσ′(h)π x_t (SPEC §2.5–2.6).
pub fn gradient_noise_constant_mc(
    params: &McmParams,
    act: Activation,
    a: f64,
    b: f64,
    d: usize,
    n: usize,
    seed: u64,
) -> (f64, f64) {
    let s = (1.0 - a * a).sqrt();
    let mut rng = ScalarRng::from_seed(seed);
    let spikes = Spikes::<f64>::draw(d, SpikeLayout::Orthonormal, &mut rng);
    // w: a Gaussian vector with its spike components removed, normalised.
    let mut w: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    for e in [&spikes.m, &spikes.u, &spikes.v] {
        let c: f64 = w.iter().zip(e.iter()).map(|(x, y)| x * y).sum();
        w.iter_mut().zip(e.iter()).for_each(|(x, y)| *x -= c * y);
    }
    let nw = w.iter().map(|x| x * x).sum::<f64>().sqrt();
    w.iter_mut().for_each(|x| *x /= nw);
    let model = MixedCumulantModel::new(*params, spikes);
    let mut latent = ScalarRng::from_seed(seed ^ 0x9e37_79b9);
    let mut normals = NormalRng::from_seed(seed ^ 0x7f4a_7c15);
    let (mut x, mut xi, mut xt, mut e, mut grad) =
        (vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let (mut s1, mut s2) = (0.0, 0.0);
    for _ in 0..n {
        model.sample_into(&mut latent, &mut normals, &mut x);
        normals.fill(&mut xi);
        for i in 0..d {
            xt[i] = a * x[i] + s * xi[i];
        }
        let h: f64 = w.iter().zip(&xt).map(|(p, q)| p * q).sum();
        let (sg, dsg) = act.value_and_derivative(h);
        for i in 0..d {
            e[i] = a * xt[i] + b * sg * w[i] - x[i];
        }
        let pi: f64 = w.iter().zip(&e).map(|(p, q)| p * q).sum();
        for i in 0..d {
            grad[i] = b * sg * e[i] + b * dsg * pi * xt[i];
        }
        let wg: f64 = w.iter().zip(&grad).map(|(p, q)| p * q).sum();
        let g2 = grad.iter().map(|g| g * g).sum::<f64>() - wg * wg;
        let v = g2 / d as f64;
        s1 += v;
        s2 += v * v;
    }
    let nf = n as f64;
    let mean = s1 / nf;
    (mean, ((s2 / nf - mean * mean) / nf).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coupling, NuLaw};

    #[test]
    fn gradient_noise_constant_matches_monte_carlo() {
        let p =
            McmParams { beta_m: 0.5, beta_u: 3.0, beta_v: 6.0, nu_law: NuLaw::Rademacher, coupling: Coupling::Sign };
        for (act, a, b) in [(Activation::Tanh, 0.5f64.sqrt(), 1.0), (Activation::Relu, 0.8, 0.7)] {
            let exact = gradient_noise_constant(act, a, b);
            let d = 1000;
            let (mc, se) = gradient_noise_constant_mc(&p, act, a, b, d, 4000, 11);
            // O(1/d) finite-size bias allowed on top of 5 SE.
            assert!((mc - exact).abs() < 5.0 * se + 10.0 / d as f64, "{act}: MC {mc} ± {se} vs limit {exact}");
        }
        // Linear σ, b = 1: closed form b²E[s²h² + π²] with π = (a + 1)h − r:
        // E h² = 1, E hr = a ⇒ C = s² + (a+1)² − 2a(a+1) + 1.
        let a: f64 = 0.6;
        let s2 = 1.0 - a * a;
        let lin = s2 + (a + 1.0).powi(2) - 2.0 * a * (a + 1.0) + 1.0;
        assert!((gradient_noise_constant(Activation::Linear, a, 1.0) - lin).abs() < 1e-12);
    }

    /// The escape-time formulas against the deterministic drift recursion α ← α + η k|c|α^{k−1} from
    /// α₀ = d^{−1/2} (k = 1 starts from 0): they agree to the order of the formulas' approximations.
    #[test]
    fn escape_times_match_the_drift_recursion() {
        let (delta, theta) = (0.2, 0.5);
        for (k, c, d) in [(1u32, 0.3, 400.0), (2, -0.25, 400.0), (3, 0.4, 400.0), (4, 0.1, 100.0)] {
            let eta = delta / d;
            let mut alpha: f64 = if k == 1 { 0.0 } else { 1.0 / f64::sqrt(d) };
            let mut n = 0u64;
            // k ≥ 3 escapes to infinity in finite time; stop when α reaches 1 (the rest is negligible).
            let stop = if k >= 3 { 1.0 } else { theta };
            while alpha < stop {
                alpha += eta * k as f64 * f64::abs(c) * alpha.powi(k as i32 - 1);
                n += 1;
            }
            let t = escape_time(k, c, delta, d, theta);
            let rel = (n as f64 - t).abs() / t;
            assert!(rel < 0.05, "k={k}: recursion {n} vs formula {t}");
        }
        assert!((drift_coefficient(0.1715, -1.0, 4) + 0.1715 / 24.0).abs() < 1e-15);
        assert!((escape_delta_bound(2, 0.5, 100.0, 2.0) - 1.0).abs() < 1e-15);
    }
}
