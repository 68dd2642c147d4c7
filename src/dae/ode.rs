//! Summary-statistic ODEs of the DAE in the d → ∞ limit (SPEC §4.5–4.7).
//!
//! - [`local_moments`] computes the Gaussian expectations over the local fields (y₁, y₀) of one cluster,
//!   by tensor Gauss–Hermite quadrature after conditioning on ω = α y₀ + β y₁ (§4.7) or by Monte Carlo.
//! - [`IsotropicOde`] integrates (M, 𝒬, b, probes G) for Σ = θ I with the raw form of the 𝒬 equation,
//!   𝒬' = −(A + Aᵀ) − 2λ𝒬 + ηB(θ̄) (§4.5).
//! - [`SpectralOde`] integrates the block-by-eigenvalue version (§4.6) for a shared anisotropic Σ, with
//!   leading components tracked as noise-free spikes.
//! - [`b_closed_form`] is b(ϑ) = b* + (b₀ − b*) e^{−(α² + β²θ̄)ϑ}.
//!
//! All matrices are row-major; r-vectors and r×r matrices are small `Vec<f64>`.
// Index loops over r, r×r and the grid mirror the formulas of SPEC §4 term by term.
#![allow(clippy::needless_range_loop)]

use super::SYSTEM_ID;
use super::config::{DaeConfig, Expectation};
use super::linalg::{matmul, pinv_sym, sqrt_psd, transpose};
use super::quadrature::GaussHermite;
use super::target::{Target, TargetLaw};
use crate::net::Activation;
use crate::rng::{ScalarRng, StreamId, StreamKind, hash_name};
use anyhow::{Result, bail};

/// Expectations over the local fields of one cluster (SPEC §4.5 shorthand; y₁ − M_c written ỹ₁).
#[derive(Clone, Debug, Default)]
pub struct LocalMoments {
    pub e_sig: Vec<f64>,
    pub e_chi: Vec<f64>,
    /// E[σσᵀ]
    pub sig_sig: Vec<f64>,
    /// E[χχᵀ]
    pub chi_chi: Vec<f64>,
    /// E[σχᵀ]
    pub sig_chi: Vec<f64>,
    /// E[y₀σᵀ]
    pub y0_sig: Vec<f64>,
    /// E[y₀χᵀ]
    pub y0_chi: Vec<f64>,
    /// E[ỹ₁σᵀ]
    pub y1_sig: Vec<f64>,
    /// E[ỹ₁χᵀ]
    pub y1_chi: Vec<f64>,
}

/// How expectations are computed.
pub enum Expector {
    Quadrature { pts: Vec<f64>, wts: Vec<f64> },
    MonteCarlo { n: usize, rng: ScalarRng },
}

impl Expector {
    pub fn new(cfg: &DaeConfig) -> Self {
        match cfg.ode.expectation {
            Expectation::Quadrature => {
                let (pts, wts) = GaussHermite::new(cfg.ode.nodes).tensor(cfg.r);
                Expector::Quadrature { pts, wts }
            }
            Expectation::MonteCarlo => {
                let id = StreamId {
                    system: SYSTEM_ID,
                    experiment: hash_name(&cfg.name),
                    d: cfg.d as u64,
                    walker: cfg.walker,
                    kind: StreamKind::Evaluation,
                };
                Expector::MonteCarlo { n: cfg.ode.n_mc, rng: ScalarRng::from_seed(id.seed(cfg.seed)) }
            }
        }
    }
}

/// The parameters the local fields depend on.
pub struct FieldParams<'a> {
    pub r: usize,
    pub act: Activation,
    pub alpha: f64,
    pub beta: f64,
    pub b: f64,
    /// M_c (r-vector).
    pub m_c: &'a [f64],
    /// 𝒬.
    pub q_cal: &'a [f64],
    /// Q.
    pub q: &'a [f64],
}

/// Expectations for one cluster: y₁ ~ N(M_c, Q), y₀ ~ N(0, 𝒬), ω = αy₀ + βy₁, σ = σ(ω),
/// ε = bω + 𝒬σ − y₁, χ = σ'⊙ε.
pub fn local_moments(p: &FieldParams, ex: &mut Expector) -> LocalMoments {
    match ex {
        Expector::Quadrature { pts, wts } => moments_quadrature(p, pts, wts),
        Expector::MonteCarlo { n, rng } => moments_mc(p, *n, rng),
    }
}

fn zeros(r: usize) -> LocalMoments {
    LocalMoments {
        e_sig: vec![0.0; r],
        e_chi: vec![0.0; r],
        sig_sig: vec![0.0; r * r],
        chi_chi: vec![0.0; r * r],
        sig_chi: vec![0.0; r * r],
        y0_sig: vec![0.0; r * r],
        y0_chi: vec![0.0; r * r],
        y1_sig: vec![0.0; r * r],
        y1_chi: vec![0.0; r * r],
    }
}

fn matvec(a: &[f64], x: &[f64], r: usize, out: &mut [f64]) {
    for i in 0..r {
        let mut s = 0.0;
        for j in 0..r {
            s += a[i * r + j] * x[j];
        }
        out[i] = s;
    }
}

/// §4.7: condition on ω = βM_c + Ω^{1/2} g, Ω = β²Q + α²𝒬, and integrate over g by tensor Gauss–Hermite.
fn moments_quadrature(p: &FieldParams, pts: &[f64], wts: &[f64]) -> LocalMoments {
    let r = p.r;
    let (al, be, b) = (p.alpha, p.beta, p.b);
    let omega: Vec<f64> = (0..r * r).map(|k| be * be * p.q[k] + al * al * p.q_cal[k]).collect();
    let s_half = sqrt_psd(&omega, r);
    let om_pinv = pinv_sym(&omega, r);
    // ȳ₁ = βQΩ⁺δ, ȳ₀ = α𝒬Ω⁺δ with δ = ω − βM_c.
    let k1: Vec<f64> = matmul(p.q, &om_pinv, r, r, r).iter().map(|v| v * be).collect();
    let k0: Vec<f64> = matmul(p.q_cal, &om_pinv, r, r, r).iter().map(|v| v * al).collect();
    // C₁₁ = Q − β²QΩ⁺Q, C₀₁ = −αβ𝒬Ω⁺Q.
    let qoq = matmul(&matmul(p.q, &om_pinv, r, r, r), p.q, r, r, r);
    let c11: Vec<f64> = (0..r * r).map(|k| p.q[k] - be * be * qoq[k]).collect();
    let c01: Vec<f64> =
        matmul(&matmul(p.q_cal, &om_pinv, r, r, r), p.q, r, r, r).iter().map(|v| -al * be * v).collect();
    let mut m = zeros(r);
    let mut e_dsig = vec![0.0; r];
    let mut delta = vec![0.0; r];
    let mut om = vec![0.0; r];
    let mut sig = vec![0.0; r];
    let mut dsig = vec![0.0; r];
    let mut y1b = vec![0.0; r];
    let mut y0b = vec![0.0; r];
    let mut qs = vec![0.0; r];
    let mut eb = vec![0.0; r];
    let mut chib = vec![0.0; r];
    for (n, &wt) in wts.iter().enumerate() {
        let g = &pts[n * r..(n + 1) * r];
        matvec(&s_half, g, r, &mut delta);
        for i in 0..r {
            om[i] = be * p.m_c[i] + delta[i];
            let (s, ds) = super::net::sigma_and_derivative(p.act, om[i]);
            sig[i] = s;
            dsig[i] = ds;
        }
        matvec(&k1, &delta, r, &mut y1b);
        matvec(&k0, &delta, r, &mut y0b);
        matvec(p.q_cal, &sig, r, &mut qs);
        for i in 0..r {
            eb[i] = b * om[i] + qs[i] - p.m_c[i] - y1b[i];
            chib[i] = dsig[i] * eb[i];
            m.e_sig[i] += wt * sig[i];
            m.e_chi[i] += wt * chib[i];
            e_dsig[i] += wt * dsig[i];
        }
        for i in 0..r {
            for j in 0..r {
                let k = i * r + j;
                m.sig_sig[k] += wt * sig[i] * sig[j];
                m.chi_chi[k] += wt * dsig[i] * dsig[j] * (eb[i] * eb[j] + c11[k]);
                m.sig_chi[k] += wt * sig[i] * chib[j];
                m.y0_sig[k] += wt * y0b[i] * sig[j];
                m.y0_chi[k] += wt * y0b[i] * chib[j];
                m.y1_sig[k] += wt * y1b[i] * sig[j];
                m.y1_chi[k] += wt * y1b[i] * chib[j];
            }
        }
    }
    for i in 0..r {
        for j in 0..r {
            m.y1_chi[i * r + j] -= c11[i * r + j] * e_dsig[j];
            m.y0_chi[i * r + j] -= c01[i * r + j] * e_dsig[j];
        }
    }
    m
}

/// Plain Monte Carlo over (y₁, y₀).
fn moments_mc(p: &FieldParams, n: usize, rng: &mut ScalarRng) -> LocalMoments {
    let r = p.r;
    let (al, be, b) = (p.alpha, p.beta, p.b);
    let sq = sqrt_psd(p.q, r);
    let sqc = sqrt_psd(p.q_cal, r);
    let mut m = zeros(r);
    let mut g1 = vec![0.0; r];
    let mut g0 = vec![0.0; r];
    let mut y1t = vec![0.0; r];
    let mut y0 = vec![0.0; r];
    let mut sig = vec![0.0; r];
    let mut chi = vec![0.0; r];
    let mut qs = vec![0.0; r];
    let wt = 1.0 / n as f64;
    for _ in 0..n {
        g1.iter_mut().for_each(|v| *v = rng.normal());
        g0.iter_mut().for_each(|v| *v = rng.normal());
        matvec(&sq, &g1, r, &mut y1t);
        matvec(&sqc, &g0, r, &mut y0);
        let mut dsig = [0.0f64; 16];
        let mut om = [0.0f64; 16];
        for i in 0..r {
            om[i] = al * y0[i] + be * (p.m_c[i] + y1t[i]);
            let (s, ds) = super::net::sigma_and_derivative(p.act, om[i]);
            sig[i] = s;
            dsig[i] = ds;
        }
        matvec(p.q_cal, &sig, r, &mut qs);
        for i in 0..r {
            let eps = b * om[i] + qs[i] - p.m_c[i] - y1t[i];
            chi[i] = dsig[i] * eps;
            m.e_sig[i] += wt * sig[i];
            m.e_chi[i] += wt * chi[i];
        }
        for i in 0..r {
            for j in 0..r {
                let k = i * r + j;
                m.sig_sig[k] += wt * sig[i] * sig[j];
                m.chi_chi[k] += wt * chi[i] * chi[j];
                m.sig_chi[k] += wt * sig[i] * chi[j];
                m.y0_sig[k] += wt * y0[i] * sig[j];
                m.y0_chi[k] += wt * y0[i] * chi[j];
                m.y1_sig[k] += wt * y1t[i] * sig[j];
                m.y1_chi[k] += wt * y1t[i] * chi[j];
            }
        }
    }
    m
}

/// b(ϑ) = b* + (b₀ − b*) e^{−(α² + β²θ̄)ϑ}, b* = βθ̄/(α² + β²θ̄), for one time t (SPEC §4.5); for several
/// times the rates and drives add up.
pub fn b_closed_form(times: &[f64], theta_bar: f64, b0: f64, theta: f64) -> f64 {
    let (mut rate, mut drive) = (0.0, 0.0);
    for &t in times {
        let (a, be) = DaeConfig::alpha_beta(t);
        rate += a * a + be * be * theta_bar;
        drive += be * theta_bar;
    }
    let bstar = drive / rate;
    bstar + (b0 - bstar) * (-rate * theta).exp()
}

fn b_rhs(times: &[f64], theta_bar: f64, b: f64) -> f64 {
    times
        .iter()
        .map(|&t| {
            let (a, be) = DaeConfig::alpha_beta(t);
            be * (1.0 - b * be) * theta_bar - b * a * a
        })
        .sum()
}

/// The quantities of SPEC §4.5 built from the cluster moments: v_c (K×r), H₀, H₁ (r×r) and the
/// moment sums needed for B(θ).
pub struct Blocks {
    pub v: Vec<f64>,
    pub h0: Vec<f64>,
    pub h1: Vec<f64>,
    /// Σ_c π_c E[σσᵀ], Σ_c π_c E[σχᵀ + χσᵀ], Σ_c π_c E[χχᵀ].
    pub ss: Vec<f64>,
    pub sx: Vec<f64>,
    pub xx: Vec<f64>,
    /// Raw-form A = Σ_c π_c E[εσᵀ + ωχᵀ].
    pub a_raw: Vec<f64>,
    pub alpha: f64,
    pub beta: f64,
}

/// Builds v_c, H₀, H₁ and the B(θ) sums from M (K×r), 𝒬, Q, b.
#[allow(clippy::too_many_arguments)]
pub fn blocks(
    r: usize,
    act: Activation,
    t: f64,
    weights: &[f64],
    m: &[f64],
    q_cal: &[f64],
    q: &[f64],
    b: f64,
    ex: &mut Expector,
) -> Blocks {
    let (al, be) = DaeConfig::alpha_beta(t);
    let kc = weights.len();
    let qc_p = pinv_sym(q_cal, r);
    let q_p = pinv_sym(q, r);
    let mut out = Blocks {
        v: vec![0.0; kc * r],
        h0: vec![0.0; r * r],
        h1: vec![0.0; r * r],
        ss: vec![0.0; r * r],
        sx: vec![0.0; r * r],
        xx: vec![0.0; r * r],
        a_raw: vec![0.0; r * r],
        alpha: al,
        beta: be,
    };
    for c in 0..kc {
        let mc = &m[c * r..(c + 1) * r];
        let lm = local_moments(&FieldParams { r, act, alpha: al, beta: be, b, m_c: mc, q_cal, q }, ex);
        let pc = weights[c];
        for g in 0..r {
            out.v[c * r + g] = (b * be - 1.0) * lm.e_sig[g] + be * lm.e_chi[g];
        }
        let t1 = matmul(&qc_p, &lm.y0_sig, r, r, r);
        let t2 = matmul(&qc_p, &lm.y0_chi, r, r, r);
        let t3 = matmul(&q_p, &lm.y1_sig, r, r, r);
        let t4 = matmul(&q_p, &lm.y1_chi, r, r, r);
        let qsig = matmul(q_cal, &lm.sig_sig, r, r, r);
        for k in 0..r * r {
            out.h0[k] += pc * (b * al * t1[k] + lm.sig_sig[k] + al * t2[k]);
            out.h1[k] += pc * ((b * be - 1.0) * t3[k] + be * t4[k]);
            out.ss[k] += pc * lm.sig_sig[k];
            out.xx[k] += pc * lm.chi_chi[k];
        }
        for i in 0..r {
            for j in 0..r {
                let k = i * r + j;
                out.sx[k] += pc * (lm.sig_chi[k] + lm.sig_chi[j * r + i]);
                // E[εσᵀ] = bE[ωσᵀ] + 𝒬E[σσᵀ] − E[y₁σᵀ];  E[ωχᵀ] = αE[y₀χᵀ] + βE[y₁χᵀ],
                // with E[y₁σᵀ] = M_c E[σ]ᵀ + E[ỹ₁σᵀ] and E[ωσᵀ] = αE[y₀σᵀ] + βE[y₁σᵀ].
                let y1s = mc[i] * lm.e_sig[j] + lm.y1_sig[k];
                let y1x = mc[i] * lm.e_chi[j] + lm.y1_chi[k];
                let oms = al * lm.y0_sig[k] + be * y1s;
                let es = b * oms + qsig[k] - y1s;
                let ox = al * lm.y0_chi[k] + be * y1x;
                out.a_raw[k] += pc * (es + ox);
            }
        }
    }
    out
}

impl Blocks {
    /// B(θ) = κ_ee E[σσᵀ] + κ_ex E[σχᵀ + χσᵀ] + κ_xx E[χχᵀ].
    pub fn noise(&self, theta: f64, b: f64) -> Vec<f64> {
        let (al, be) = (self.alpha, self.beta);
        let kee = (b * be - 1.0).powi(2) * theta + b * b * al * al;
        let kex = (b * be - 1.0) * be * theta + b * al * al;
        let kxx = be * be * theta + al * al;
        (0..self.ss.len()).map(|k| kee * self.ss[k] + kex * self.sx[k] + kxx * self.xx[k]).collect()
    }

    /// H(θ) = H₀ + θ H₁.
    pub fn h(&self, theta: f64) -> Vec<f64> {
        self.h0.iter().zip(&self.h1).map(|(a, c)| a + theta * c).collect()
    }
}

/// A trajectory of the theory: statistics at each recorded ϑ.
#[derive(Clone, Debug, Default)]
pub struct OdeTrajectory {
    pub k: usize,
    pub r: usize,
    pub k_e: usize,
    pub theta: Vec<f64>,
    pub m: Vec<Vec<f64>>,
    pub q_cal: Vec<Vec<f64>>,
    pub q: Vec<Vec<f64>>,
    pub b: Vec<f64>,
    pub g: Vec<Vec<f64>>,
}

impl OdeTrajectory {
    /// Linear interpolation of the record nearest below/above ϑ: (M, 𝒬, Q, b, G).
    pub fn at(&self, theta: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>, f64, Vec<f64>) {
        let n = self.theta.len();
        let i = self.theta.partition_point(|&t| t < theta).min(n - 1);
        if i == 0 || (self.theta[i] - theta).abs() < 1e-12 {
            return (self.m[i].clone(), self.q_cal[i].clone(), self.q[i].clone(), self.b[i], self.g[i].clone());
        }
        let (t0, t1) = (self.theta[i - 1], self.theta[i]);
        let u = (theta - t0) / (t1 - t0);
        let lerp = |a: &[f64], c: &[f64]| a.iter().zip(c).map(|(x, y)| x + u * (y - x)).collect::<Vec<f64>>();
        (
            lerp(&self.m[i - 1], &self.m[i]),
            lerp(&self.q_cal[i - 1], &self.q_cal[i]),
            lerp(&self.q[i - 1], &self.q[i]),
            self.b[i - 1] + u * (self.b[i] - self.b[i - 1]),
            lerp(&self.g[i - 1], &self.g[i]),
        )
    }
}

/// Isotropic ODE (Σ = θI): state (M, 𝒬, b, G) with probes G_e obeying the M equation with T → eᵀμ_c.
pub struct IsotropicOde {
    pub r: usize,
    pub k: usize,
    pub act: Activation,
    pub eta: f64,
    pub lambda: f64,
    pub time: f64,
    pub times: Vec<f64>,
    pub variance: f64,
    pub weights: Vec<f64>,
    /// T_{kc} = μ_kᵀμ_c (K×K).
    pub tmat: Vec<f64>,
    /// eᵀμ_c for the probes (k_E×K).
    pub te: Vec<f64>,
    pub k_e: usize,
}

/// Flat state: [M (K r), 𝒬 (r²), b, G (k_E r)].
impl IsotropicOde {
    pub fn new(cfg: &DaeConfig, target: &Target) -> Result<Self> {
        let TargetLaw::Mixture(mix) = &target.law else {
            bail!("the isotropic ODE needs a mixture target; use SpectralOde for a covariance target");
        };
        if cfg.times.len() != 1 {
            bail!(
                "config field `times` = {:?}: the ODE supports a single time (SPEC §4.5 leaves |𝒢| > 1 optional)",
                cfg.times
            );
        }
        let k = mix.centroids.len();
        let mut tmat = vec![0.0; k * k];
        for a in 0..k {
            for c in 0..k {
                tmat[a * k + c] = diffexp_kernels::blas1::dot(&mix.centroids[a], &mix.centroids[c]);
            }
        }
        let k_e = target.plane.len();
        let mut te = vec![0.0; k_e * k];
        for (j, e) in target.plane.iter().enumerate() {
            for c in 0..k {
                te[j * k + c] = diffexp_kernels::blas1::dot(e, &mix.centroids[c]);
            }
        }
        Ok(IsotropicOde {
            r: cfg.r,
            k,
            act: cfg.activation,
            eta: cfg.eta,
            lambda: cfg.lambda,
            time: cfg.times[0],
            times: cfg.times.clone(),
            variance: mix.variance,
            weights: mix.weights.clone(),
            tmat,
            te,
            k_e,
        })
    }

    pub fn state_len(&self) -> usize {
        self.k * self.r + self.r * self.r + 1 + self.k_e * self.r
    }

    /// The state from M, 𝒬, b, G.
    pub fn pack(&self, m: &[f64], q_cal: &[f64], b: f64, g: &[f64]) -> Vec<f64> {
        let mut s = Vec::with_capacity(self.state_len());
        s.extend_from_slice(m);
        s.extend_from_slice(q_cal);
        s.push(b);
        s.extend_from_slice(g);
        s
    }

    pub fn rhs(&self, s: &[f64], ex: &mut Expector) -> Vec<f64> {
        let (r, k) = (self.r, self.k);
        let m = &s[..k * r];
        let qc = &s[k * r..k * r + r * r];
        let b = s[k * r + r * r];
        let g = &s[k * r + r * r + 1..];
        let th = self.variance;
        let q: Vec<f64> = qc.iter().map(|v| v * th).collect();
        let bl = blocks(r, self.act, self.time, &self.weights, m, qc, &q, b, ex);
        let h = bl.h(th);
        let mut out = vec![0.0; s.len()];
        // M' = −Σ_c π_c T_{kc} v_c − M H − λM.
        let mh = matmul(m, &h, k, r, r);
        for a in 0..k {
            for gg in 0..r {
                let mut drive = 0.0;
                for c in 0..k {
                    drive += self.weights[c] * self.tmat[a * k + c] * bl.v[c * r + gg];
                }
                out[a * r + gg] = -drive - mh[a * r + gg] - self.lambda * m[a * r + gg];
            }
        }
        // 𝒬' = −(A + Aᵀ) − 2λ𝒬 + ηB(θ̄).
        let noise = bl.noise(th, b);
        for i in 0..r {
            for j in 0..r {
                out[k * r + i * r + j] = -(bl.a_raw[i * r + j] + bl.a_raw[j * r + i])
                    - 2.0 * self.lambda * qc[i * r + j]
                    + self.eta * noise[i * r + j];
            }
        }
        out[k * r + r * r] = b_rhs(&self.times, th, b);
        let gh = matmul(g, &h, self.k_e, r, r);
        let off = k * r + r * r + 1;
        for j in 0..self.k_e {
            for gg in 0..r {
                let mut drive = 0.0;
                for c in 0..k {
                    drive += self.weights[c] * self.te[j * k + c] * bl.v[c * r + gg];
                }
                out[off + j * r + gg] = -drive - gh[j * r + gg] - self.lambda * g[j * r + gg];
            }
        }
        out
    }

    fn unpack(&self, s: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>, f64, Vec<f64>) {
        let (r, k) = (self.r, self.k);
        let m = s[..k * r].to_vec();
        let qc = s[k * r..k * r + r * r].to_vec();
        let q = qc.iter().map(|v| v * self.variance).collect();
        (m, qc, q, s[k * r + r * r], s[k * r + r * r + 1..].to_vec())
    }

    /// RK4 from `s0` over [0, θ_max] with step dϑ, recording every step.
    pub fn integrate(&self, s0: Vec<f64>, theta_max: f64, dtheta: f64, ex: &mut Expector) -> OdeTrajectory {
        let mut tr = OdeTrajectory { k: self.k, r: self.r, k_e: self.k_e, ..Default::default() };
        let push = |tr: &mut OdeTrajectory, th: f64, s: &[f64]| {
            let (m, qc, q, b, g) = self.unpack(s);
            tr.theta.push(th);
            tr.m.push(m);
            tr.q_cal.push(qc);
            tr.q.push(q);
            tr.b.push(b);
            tr.g.push(g);
        };
        rk4(s0, theta_max, dtheta, |s| self.rhs(s, ex), |th, s| push(&mut tr, th, s));
        tr
    }
}

/// RK4 with a fixed step; `record(ϑ, state)` is called at ϑ = 0 and after every step.
pub fn rk4(
    mut s: Vec<f64>,
    theta_max: f64,
    dtheta: f64,
    mut f: impl FnMut(&[f64]) -> Vec<f64>,
    mut record: impl FnMut(f64, &[f64]),
) -> Vec<f64> {
    let n = (theta_max / dtheta).round().max(1.0) as usize;
    let h = theta_max / n as f64;
    record(0.0, &s);
    let mut tmp = vec![0.0; s.len()];
    for step in 0..n {
        let k1 = f(&s);
        for i in 0..s.len() {
            tmp[i] = s[i] + 0.5 * h * k1[i];
        }
        let k2 = f(&tmp);
        for i in 0..s.len() {
            tmp[i] = s[i] + 0.5 * h * k2[i];
        }
        let k3 = f(&tmp);
        for i in 0..s.len() {
            tmp[i] = s[i] + h * k3[i];
        }
        let k4 = f(&tmp);
        for i in 0..s.len() {
            s[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        record((step + 1) as f64 * h, &s);
    }
    s
}

/// Initial isotropic state from a simulation's w(0) (column-major d×r).
pub fn isotropic_initial_state(ode: &IsotropicOde, target: &Target, w0: &[f64], b0: f64) -> Vec<f64> {
    let d = target.d;
    let dae = super::net::Dae::<f64>::new(d, ode.r, w0.to_vec(), b0, ode.act);
    let qc = dae.q_cal();
    let rec = super::train::stats_of(&dae, target, &qc);
    ode.pack(&rec.m, &qc, b0, &rec.g)
}

/// One eigenvalue block of the spectral ODE.
#[derive(Clone, Debug)]
pub struct SpectralBlock {
    pub theta: f64,
    /// Fraction p_s of the coordinates.
    pub p: f64,
    /// T̄^{(s)} (K×K).
    pub tbar: Vec<f64>,
}

/// Block-by-eigenvalue ODE of SPEC §4.6. State: for every block M̄^{(s)} (K×r) and Q̄^{(s)} (r×r); for
/// every spike j its G_j (r); then b.
pub struct SpectralOde {
    pub r: usize,
    pub k: usize,
    pub act: Activation,
    pub eta: f64,
    pub lambda: f64,
    pub time: f64,
    pub times: Vec<f64>,
    pub weights: Vec<f64>,
    pub theta_bar: f64,
    pub blocks: Vec<SpectralBlock>,
    /// Spike eigenvalues θ_j and e_jᵀμ_c (K per spike).
    pub spike_theta: Vec<f64>,
    pub spike_mu: Vec<Vec<f64>>,
    /// Which spikes are the plotting-plane directions (G rows).
    pub plane_spikes: Vec<usize>,
}

/// How the eigen-coordinates are grouped: `assign[i]` = Spike(j) or Block(s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    Spike(usize),
    Block(usize),
}

impl SpectralOde {
    /// Builds the blocks from eigenvalues θ_i (non-increasing), centroids in the eigenbasis
    /// (`mu_eig[c][i]` = u_iᵀμ_c) and weights; the first `k_sp` components are spikes; the rest go into at
    /// most `n_blocks` log-width bins, with zero eigenvalues in their own block.
    #[allow(clippy::too_many_arguments)]
    pub fn from_spectrum(
        cfg: &DaeConfig,
        eigvals: &[f64],
        mu_eig: &[Vec<f64>],
        weights: &[f64],
        k_sp: usize,
        n_blocks: usize,
        plane_spikes: Vec<usize>,
    ) -> Result<(Self, Vec<Slot>)> {
        if cfg.times.len() != 1 {
            bail!("config field `times` = {:?}: the ODE supports a single time", cfg.times);
        }
        let d = eigvals.len();
        let k = weights.len();
        let k_sp = k_sp.min(d);
        let mut assign = vec![Slot::Block(0); d];
        let mut spike_theta = Vec::new();
        let mut spike_mu = Vec::new();
        for j in 0..k_sp {
            assign[j] = Slot::Spike(j);
            spike_theta.push(eigvals[j]);
            spike_mu.push((0..k).map(|c| mu_eig[c][j]).collect());
        }
        let rest: Vec<usize> = (k_sp..d).collect();
        let tmax = eigvals.iter().cloned().fold(0.0, f64::max);
        let zero_tol = 1e-12 * tmax.max(1e-300);
        let pos: Vec<usize> = rest.iter().copied().filter(|&i| eigvals[i] > zero_tol).collect();
        let zer: Vec<usize> = rest.iter().copied().filter(|&i| eigvals[i] <= zero_tol).collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        if !pos.is_empty() {
            let lmin = pos.iter().map(|&i| eigvals[i].ln()).fold(f64::INFINITY, f64::min);
            let lmax = pos.iter().map(|&i| eigvals[i].ln()).fold(f64::NEG_INFINITY, f64::max);
            let nb = n_blocks.max(1);
            let width = ((lmax - lmin) / nb as f64).max(1e-300);
            let mut bins: Vec<Vec<usize>> = vec![Vec::new(); nb];
            for &i in &pos {
                let bidx = (((eigvals[i].ln() - lmin) / width) as usize).min(nb - 1);
                bins[bidx].push(i);
            }
            groups.extend(bins.into_iter().filter(|b| !b.is_empty()));
        }
        if !zer.is_empty() {
            groups.push(zer);
        }
        let mut blocks = Vec::new();
        for (s, gidx) in groups.iter().enumerate() {
            let theta = gidx.iter().map(|&i| eigvals[i]).sum::<f64>() / gidx.len() as f64;
            let mut tbar = vec![0.0; k * k];
            for &i in gidx {
                assign[i] = Slot::Block(s);
                for a in 0..k {
                    for c in 0..k {
                        tbar[a * k + c] += mu_eig[a][i] * mu_eig[c][i];
                    }
                }
            }
            blocks.push(SpectralBlock { theta, p: gidx.len() as f64 / d as f64, tbar });
        }
        let theta_bar = eigvals.iter().sum::<f64>() / d as f64;
        Ok((
            SpectralOde {
                r: cfg.r,
                k,
                act: cfg.activation,
                eta: cfg.eta,
                lambda: cfg.lambda,
                time: cfg.times[0],
                times: cfg.times.clone(),
                weights: weights.to_vec(),
                theta_bar,
                blocks,
                spike_theta,
                spike_mu,
                plane_spikes,
            },
            assign,
        ))
    }

    /// Builds the spectral ODE of a covariance target (plane = its top principal components).
    pub fn for_target(cfg: &DaeConfig, target: &Target) -> Result<(Self, Vec<Slot>)> {
        let TargetLaw::Gaussian(g) = &target.law else { bail!("SpectralOde::for_target needs a covariance target") };
        let d = target.d;
        let mu_eig: Vec<Vec<f64>> =
            vec![(0..d).map(|i| diffexp_kernels::blas1::dot(&g.eigvecs[i * d..(i + 1) * d], &g.mean)).collect()];
        let k_sp = cfg.ode.k_spikes;
        // The plane must be spanned by tracked spikes (§4.6 closes only for eigen-directions).
        let mut plane_spikes = Vec::new();
        for e in &target.plane {
            let j = (0..k_sp.min(d))
                .find(|&j| diffexp_kernels::blas1::dot(&g.eigvecs[j * d..(j + 1) * d], e).abs() > 1.0 - 1e-9);
            match j {
                Some(j) => plane_spikes.push(j),
                None => bail!(
                    "config field `generate.plane`: the spectral ODE needs plotting directions among the first `ode.k_spikes` = {k_sp} principal components; use plane = \"principal\" with k_spikes ≥ 2"
                ),
            }
        }
        Self::from_spectrum(cfg, &g.eigvals, &mu_eig, &[1.0], k_sp, cfg.ode.n_blocks, plane_spikes)
    }

    pub fn state_len(&self) -> usize {
        self.blocks.len() * (self.k * self.r + self.r * self.r) + self.spike_theta.len() * self.r + 1
    }

    /// Initial state from w̃ = Uᵀw (eigen-coordinates, `w_eig[i*r + γ]`), centroids in the eigenbasis and b₀.
    pub fn initial_state(&self, assign: &[Slot], w_eig: &[f64], mu_eig: &[Vec<f64>], b0: f64) -> Vec<f64> {
        let (r, k) = (self.r, self.k);
        let d = assign.len();
        let sd = (d as f64).sqrt();
        let per = k * r + r * r;
        let mut s = vec![0.0; self.state_len()];
        let spike_off = self.blocks.len() * per;
        for i in 0..d {
            let wi = &w_eig[i * r..(i + 1) * r];
            match assign[i] {
                Slot::Spike(j) => {
                    for g in 0..r {
                        s[spike_off + j * r + g] = wi[g] / sd;
                    }
                }
                Slot::Block(bi) => {
                    let base = bi * per;
                    for c in 0..k {
                        for g in 0..r {
                            s[base + c * r + g] += mu_eig[c][i] * wi[g] / sd;
                        }
                    }
                    for a in 0..r {
                        for g in 0..r {
                            s[base + k * r + a * r + g] += wi[a] * wi[g] / d as f64;
                        }
                    }
                }
            }
        }
        let n = s.len();
        s[n - 1] = b0;
        s
    }

    /// (M, 𝒬, Q, b, G) of a state.
    pub fn totals(&self, s: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>, f64, Vec<f64>) {
        let (r, k) = (self.r, self.k);
        let per = k * r + r * r;
        let mut m = vec![0.0; k * r];
        let mut qc = vec![0.0; r * r];
        let mut q = vec![0.0; r * r];
        for (bi, bl) in self.blocks.iter().enumerate() {
            let base = bi * per;
            for x in 0..k * r {
                m[x] += s[base + x];
            }
            for x in 0..r * r {
                qc[x] += s[base + k * r + x];
                q[x] += bl.theta * s[base + k * r + x];
            }
        }
        let spike_off = self.blocks.len() * per;
        for (j, &th) in self.spike_theta.iter().enumerate() {
            let gj = &s[spike_off + j * r..spike_off + (j + 1) * r];
            for c in 0..k {
                for g in 0..r {
                    m[c * r + g] += self.spike_mu[j][c] * gj[g];
                }
            }
            for a in 0..r {
                for g in 0..r {
                    qc[a * r + g] += gj[a] * gj[g];
                    q[a * r + g] += th * gj[a] * gj[g];
                }
            }
        }
        let mut gm = Vec::new();
        for &j in &self.plane_spikes {
            gm.extend_from_slice(&s[spike_off + j * r..spike_off + (j + 1) * r]);
        }
        (m, qc, q, s[s.len() - 1], gm)
    }

    pub fn rhs(&self, s: &[f64], ex: &mut Expector) -> Vec<f64> {
        let (r, k) = (self.r, self.k);
        let per = k * r + r * r;
        let (m, qc, q, b, _) = self.totals(s);
        let bl = blocks(r, self.act, self.time, &self.weights, &m, &qc, &q, b, ex);
        let mut out = vec![0.0; s.len()];
        for (bi, blk) in self.blocks.iter().enumerate() {
            let base = bi * per;
            let ms = &s[base..base + k * r];
            let qs = &s[base + k * r..base + per];
            let h = bl.h(blk.theta);
            let mh = matmul(ms, &h, k, r, r);
            for a in 0..k {
                for g in 0..r {
                    let mut drive = 0.0;
                    for c in 0..k {
                        drive += self.weights[c] * blk.tbar[a * k + c] * bl.v[c * r + g];
                    }
                    out[base + a * r + g] = -drive - mh[a * r + g] - self.lambda * ms[a * r + g];
                }
            }
            let ht = transpose(&h, r, r);
            let htq = matmul(&ht, qs, r, r, r);
            let qh = matmul(qs, &h, r, r, r);
            let noise = bl.noise(blk.theta, b);
            for i in 0..r {
                for j in 0..r {
                    let mut vm = 0.0;
                    for c in 0..k {
                        vm += self.weights[c] * (bl.v[c * r + i] * ms[c * r + j] + ms[c * r + i] * bl.v[c * r + j]);
                    }
                    out[base + k * r + i * r + j] =
                        -vm - htq[i * r + j] - qh[i * r + j] - 2.0 * self.lambda * qs[i * r + j]
                            + self.eta * blk.p * noise[i * r + j];
                }
            }
        }
        let spike_off = self.blocks.len() * per;
        for (j, &th) in self.spike_theta.iter().enumerate() {
            let gj = &s[spike_off + j * r..spike_off + (j + 1) * r];
            let h = bl.h(th);
            for g in 0..r {
                let mut drive = 0.0;
                for c in 0..k {
                    drive += self.weights[c] * self.spike_mu[j][c] * bl.v[c * r + g];
                }
                // (Hᵀ G)_g = Σ_a H_{a g} G_a
                let mut htg = 0.0;
                for a in 0..r {
                    htg += h[a * r + g] * gj[a];
                }
                out[spike_off + j * r + g] = -drive - htg - self.lambda * gj[g];
            }
        }
        let n = s.len();
        out[n - 1] = b_rhs(&self.times, self.theta_bar, b);
        out
    }

    pub fn integrate(&self, s0: Vec<f64>, theta_max: f64, dtheta: f64, ex: &mut Expector) -> OdeTrajectory {
        let mut tr = OdeTrajectory { k: self.k, r: self.r, k_e: self.plane_spikes.len(), ..Default::default() };
        rk4(
            s0,
            theta_max,
            dtheta,
            |s| self.rhs(s, ex),
            |th, s| {
                let (m, qc, q, b, g) = self.totals(s);
                tr.theta.push(th);
                tr.m.push(m);
                tr.q_cal.push(qc);
                tr.q.push(q);
                tr.b.push(b);
                tr.g.push(g);
            },
        );
        tr
    }
}

/// The theory trajectory of `cfg` on `target`, started from the simulation's own w(0) (SPEC §4.3).
pub fn theory(cfg: &DaeConfig, target: &Target, theta_max: f64) -> Result<OdeTrajectory> {
    let (w0, b0) = target.initial_weights(cfg);
    theory_from(cfg, target, &w0, b0, theta_max)
}

/// The theory trajectory from explicit initial weights.
pub fn theory_from(cfg: &DaeConfig, target: &Target, w0: &[f64], b0: f64, theta_max: f64) -> Result<OdeTrajectory> {
    let mut ex = Expector::new(cfg);
    match &target.law {
        TargetLaw::Mixture(_) => {
            let ode = IsotropicOde::new(cfg, target)?;
            let s0 = isotropic_initial_state(&ode, target, w0, b0);
            Ok(ode.integrate(s0, theta_max, cfg.ode.dtheta, &mut ex))
        }
        TargetLaw::Gaussian(g) => {
            let (ode, assign) = SpectralOde::for_target(cfg, target)?;
            let (d, r) = (target.d, cfg.r);
            let mut w_eig = vec![0.0; d * r];
            for i in 0..d {
                let u = &g.eigvecs[i * d..(i + 1) * d];
                for gg in 0..r {
                    w_eig[i * r + gg] = diffexp_kernels::blas1::dot(u, &w0[gg * d..(gg + 1) * d]);
                }
            }
            let mu_eig: Vec<Vec<f64>> =
                vec![(0..d).map(|i| diffexp_kernels::blas1::dot(&g.eigvecs[i * d..(i + 1) * d], &g.mean)).collect()];
            let s0 = ode.initial_state(&assign, &w_eig, &mu_eig, b0);
            // Spiked problems are stiff: dϑ ≤ 0.005 (SPEC §4.6).
            Ok(ode.integrate(s0, theta_max, cfg.ode.dtheta.min(0.005), &mut ex))
        }
    }
}
