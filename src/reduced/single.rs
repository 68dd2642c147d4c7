//! The reduced single-direction walker (SPEC §3.2–3.3): the Markov chain of (α = Fᵀw, ρ = ‖w − FFᵀw‖, b).
//!
//! # One step in coordinates
//! Let e₀ = (w − FFᵀw)/ρ. A step draws n fresh standard Gaussian vectors (per batch sample its bulk
//! z and one noise ξ, or one ξ per level under `level_mode = "sum"`). Each vector has
//! F-coordinates ~ N(0, I_p), an e₀-coordinate ~ N(0, 1), and a remainder in the complement of
//! 𝓕 ⊕ span(e₀), of dimension D = d − p − 1. The remainders of all n vectors together are, in an
//! orthonormal basis e₁…e_n that Gram–Schmidt builds from them, the rows of a Bartlett factor
//! (lower triangular, L_jj² ~ χ²_{D−j}, L_jl ~ N(0,1)). So in the basis (F, e₀, e₁…e_n) of dimension
//! p + 1 + n every vector of the step has explicit coordinates:
//!
//! ```text
//!   w  = (α,      ρ,   0 … 0)
//!   z_k = (z_F,   z₀,  L_k·)          x = z + β_m m + √β_u λ u + (s_v ν − c_S⟨v,z⟩) v   (only F changes)
//!   ξ_k = (ξ_F,   ξ₀,  L_k·)
//! ```
//!
//! Every inner product of the step ([`PairGram`]) is then a sum over p + 1 + n terms, the update
//! rule is [`single_direction_terms`] — the same function the full engine calls — and the new w is
//! the same linear combination, written in coordinates. Its F-part is the new α; the norm of the
//! rest is the new ρ. Nothing depends on d except the chi-squares' degrees of freedom.

use super::frame::{P, SpikeFrame};
use super::lanes::{LaneMath, ReducedSigma, build};
use super::streams::WalkerStreams;
use super::wishart::{Bartlett, ChiSquare, Variates};
use crate::model::{GaussianSurrogate, McmParams, MixedCumulantModel};
use crate::net::SingleDirection;
use crate::observe::EvalLosses;
use crate::rng::ScalarRng;
use crate::train::single::{EvalAccumulator, PairGram, single_direction_terms_with};
use crate::train::{Learner, LearnerState};
use std::sync::Arc;

/// How a reduced single-direction walker is built.
#[derive(Clone, Debug)]
pub struct ReducedSingleSetup {
    pub net: SingleDirection,
    pub params: McmParams,
    pub frame: SpikeFrame,
    /// Ambient dimension d (only chi-square degrees of freedom depend on it).
    pub d: u64,
    pub a_values: Vec<f64>,
    pub level_sum: bool,
    /// Per-step rate (batch scaling included).
    pub eta: f64,
    pub eta_b: f64,
    pub train_b: bool,
    pub batch: usize,
    pub init_seed: u64,
    pub data_seed: u64,
    pub latent_seed: u64,
    pub eval_seed: u64,
}

impl ReducedSingleSetup {
    /// The setting of the reduced engine's speed figures (`benches/reduced.rs`,
    /// `examples/reduced_speed.rs`): tanh, all three spikes active (mean, covariance, and cumulant
    /// spike with a `sign`-coupled latent), one noise level, η = 0.2/d, batch 1.
    pub fn speed_reference(d: u64) -> Self {
        Self {
            net: SingleDirection { activation: crate::net::Activation::Tanh, b: 1.0 },
            params: McmParams {
                beta_m: 1.0,
                beta_u: 3.0,
                beta_v: 6.0,
                nu_law: crate::model::NuLaw::Rademacher,
                coupling: crate::model::Coupling::Sign,
            },
            frame: SpikeFrame::orthonormal(),
            d,
            a_values: vec![0.5f64.sqrt()],
            level_sum: false,
            eta: 0.2 / d as f64,
            eta_b: 0.0,
            train_b: false,
            batch: 1,
            init_seed: 1,
            data_seed: 2,
            latent_seed: 3,
            eval_seed: 4,
        }
    }
}

/// The chain's state: w = Fα + ρ e₀ (unit norm) and the readout b. `S` is `f64`, or
/// [`Lanes`](super::lanes::Lanes) for several walkers at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SingleState<S = f64> {
    pub alpha: [S; P],
    pub rho: S,
    pub b: S,
}

/// The coordinates of a batch-1 step in the basis (F, e₀, e₁, e₂): the clean sample
/// x = (x_F, x₀, R₁, 0) and the noise ξ = (ξ_F, ξ₀, c₁₂, R₂).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairCoords<S = f64> {
    pub xf: [S; P],
    pub x0: S,
    pub xif: [S; P],
    pub xi0: S,
    pub r1: S,
    pub c12: S,
    pub r2: S,
}

/// The raw draws of one batch-1 step of one walker, in stream order (see [`draw_pair`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairDraw {
    pub lambda: f64,
    pub nu: f64,
    pub level: usize,
    pub z: [f64; P],
    pub z0: f64,
    pub xi: [f64; P],
    pub xi0: f64,
    pub r1: f64,
    pub c12: f64,
    pub r2: f64,
}

/// One step's fresh draws in coordinates. Vectors are ordered per batch sample: z_j, then its
/// noise vector(s) ξ_{j,0…}.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SingleDraws {
    /// (λ, ν) per batch sample.
    pub latents: Vec<(f64, f64)>,
    /// Per batch sample: index into the level set of its noise (level_mode = "sample"); unused
    /// under "sum".
    pub levels: Vec<usize>,
    /// F-coordinates of each fresh vector (the bulk z for clean samples).
    pub span: Vec<[f64; P]>,
    /// e₀-coordinate of each fresh vector.
    pub e0: Vec<f64>,
    /// Bartlett factor of the remainders, n×n row-major lower triangular.
    pub rem: Vec<f64>,
}

/// The fixed part of the update rule: everything but the state and the draws.
#[derive(Clone, Debug, PartialEq)]
pub struct SingleRule {
    pub net: SingleDirection,
    pub frame: SpikeFrame,
    pub beta_m: f64,
    pub sqrt_beta_u: f64,
    pub s_v: f64,
    pub c_s: f64,
    /// (a, s) per level.
    pub levels: Vec<(f64, f64)>,
    pub level_sum: bool,
    pub eta: f64,
    pub eta_b: f64,
    pub train_b: bool,
    pub batch: usize,
}

impl SingleRule {
    pub fn new(setup: &ReducedSingleSetup) -> Self {
        let p = &setup.params;
        Self {
            net: setup.net,
            frame: setup.frame,
            beta_m: p.beta_m,
            sqrt_beta_u: p.beta_u.sqrt(),
            s_v: p.s_v(),
            c_s: p.c_s(),
            levels: setup.a_values.iter().map(|&a| (a, (1.0 - a * a).sqrt())).collect(),
            level_sum: setup.level_sum,
            eta: setup.eta,
            eta_b: setup.eta_b,
            train_b: setup.train_b,
            batch: setup.batch,
        }
    }

    /// True when `other` is this rule with other step sizes (η, η_b): then one lane step can run
    /// walkers of both, each lane with its own step sizes ([`SingleRule::pair_update_with`]).
    pub fn differs_only_in_step_sizes(&self, other: &Self) -> bool {
        *self == Self { eta: self.eta, eta_b: self.eta_b, ..other.clone() }
    }

    /// Noise vectors per clean sample.
    pub fn noises_per_sample(&self) -> usize {
        if self.level_sum { self.levels.len() } else { 1 }
    }

    /// Fresh Gaussian vectors per step, n = B·(1 + noises per sample).
    pub fn vectors_per_step(&self) -> usize {
        self.batch * (1 + self.noises_per_sample())
    }

    /// True when a step is one (x, ξ) pair — the case [`draw_pair`] and the lanes handle.
    pub fn is_pair(&self) -> bool {
        self.vectors_per_step() == 2
    }

    /// F-coordinates of the clean sample with bulk coordinates `z` and latents (λ, ν):
    /// x_F = z + β_m m + √β_u λ u + (s_v ν − c_S⟨v, z⟩) v (SPEC §2.1's O(d) form, inside 𝓕).
    #[inline(always)]
    pub fn clean_span<S: LaneMath>(&self, z: &[S; P], lambda: S, nu: S) -> [S; P] {
        let sp = &self.frame.spikes;
        let zero = S::splat(0.0);
        let [m, u, v]: [[S; P]; 3] = build([zero; P], |e| build(zero, |i| S::splat(sp[e][i])));
        let vz = v[0] * z[0] + v[1] * z[1] + v[2] * z[2];
        let cv = S::splat(self.s_v) * nu - S::splat(self.c_s) * vz;
        let cu = S::splat(self.sqrt_beta_u) * lambda;
        let bm = S::splat(self.beta_m);
        build(zero, |i| z[i] + bm * m[i] + cu * u[i] + cv * v[i])
    }

    /// One step on `st` with the coordinates `dr`; returns the step's training loss. `scratch`
    /// holds the n gradient coefficients.
    pub fn step(&self, st: &mut SingleState, dr: &SingleDraws, scratch: &mut Vec<f64>) -> f64 {
        if self.is_pair() {
            let (lambda, nu) = dr.latents[0];
            let (a, s) = self.levels[if self.level_sum { 0 } else { dr.levels[0] }];
            let c = PairCoords {
                xf: self.clean_span(&dr.span[0], lambda, nu),
                x0: dr.e0[0],
                xif: dr.span[1],
                xi0: dr.e0[1],
                r1: dr.rem[0],
                c12: dr.rem[2],
                r2: dr.rem[3],
            };
            self.pair_update(st, a, s, &c)
        } else {
            self.step_general(st, dr, scratch)
        }
    }

    /// [`SingleRule::step`] for any number of vectors (the batch-1 case has a shortcut,
    /// [`SingleRule::pair_update`], tested against this).
    pub fn step_general(&self, st: &mut SingleState, dr: &SingleDraws, scratch: &mut Vec<f64>) -> f64 {
        let n = self.vectors_per_step();
        let nxi = self.noises_per_sample();
        debug_assert!(dr.span.len() == n && dr.e0.len() == n && dr.rem.len() == n * n);
        scratch.clear();
        scratch.resize(n, 0.0);
        let coef = &mut scratch[..];
        let act = self.net.activation;
        let weight = 1.0 / self.batch as f64;
        let dot = |a: &[f64; P], b: &[f64; P]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let row = |k: usize| &dr.rem[k * n..k * n + k + 1];
        let (mut cw, mut loss, mut gb) = (0.0, 0.0, 0.0);
        let mut new_alpha = [0.0; P];
        let mut new_e0 = 0.0;
        for j in 0..self.batch {
            let kz = j * (1 + nxi);
            let (lambda, nu) = dr.latents[j];
            let xf = self.clean_span(&dr.span[kz], lambda, nu);
            let x0 = dr.e0[kz];
            let lz = row(kz);
            let wx = dot(&st.alpha, &xf) + st.rho * x0;
            let xx = dot(&xf, &xf) + x0 * x0 + lz.iter().map(|t| t * t).sum::<f64>();
            let mut cx = 0.0;
            for l in 0..nxi {
                let k = kz + 1 + l;
                let (a, s) = self.levels[if self.level_sum { l } else { dr.levels[j] }];
                let (xif, xi0, lxi) = (&dr.span[k], dr.e0[k], row(k));
                let g = PairGram {
                    wx,
                    wxi: dot(&st.alpha, xif) + st.rho * xi0,
                    xx,
                    xixi: dot(xif, xif) + xi0 * xi0 + lxi.iter().map(|t| t * t).sum::<f64>(),
                    xxi: dot(&xf, xif) + x0 * xi0 + lz.iter().zip(lxi).map(|(p, q)| p * q).sum::<f64>(),
                };
                let t = single_direction_terms_with(st.b, a, s, &g, &ReducedSigma(act));
                loss += weight * t.loss;
                gb += weight * t.grad_b;
                cw += weight * (t.coef_w - t.w_dot_grad);
                cx += weight * t.coef_x;
                coef[k] = weight * t.coef_xi;
                for i in 0..P {
                    new_alpha[i] += coef[k] * xif[i];
                }
                new_e0 += coef[k] * xi0;
            }
            coef[kz] = cx;
            for i in 0..P {
                new_alpha[i] += cx * xf[i];
            }
            new_e0 += cx * x0;
        }
        // w − ηg with g = ∇ − ⟨w,∇⟩w: a multiple of w minus η·Σ coef_k·vector_k.
        let eta = self.eta;
        let keep = 1.0 - eta * cw;
        let alpha: [f64; P] = std::array::from_fn(|i| keep * st.alpha[i] - eta * new_alpha[i]);
        let e0 = keep * st.rho - eta * new_e0;
        let mut rem2 = 0.0;
        for l in 0..n {
            let r: f64 = (l..n).map(|k| coef[k] * dr.rem[k * n + l]).sum();
            rem2 += r * r;
        }
        let rho = (e0 * e0 + eta * eta * rem2).sqrt();
        self.finish(st, alpha, rho, self.eta_b * gb);
        loss
    }

    /// The batch-1 update (n = 2 vectors, remainder factor [[R₁, 0], [c₁₂, R₂]]), written once for
    /// one walker (`S = f64`) and for SIMD lanes of walkers.
    #[inline(always)]
    pub fn pair_update<S: LaneMath>(&self, st: &mut SingleState<S>, a: S, s: S, c: &PairCoords<S>) -> S {
        self.pair_update_with(st, a, s, c, S::splat(self.eta), S::splat(self.eta_b))
    }

    /// [`SingleRule::pair_update`] with the step sizes (η, η_b) given per lane, so that lanes can
    /// hold walkers of different d (whose rules differ only in them).
    #[inline(always)]
    pub fn pair_update_with<S: LaneMath>(
        &self,
        st: &mut SingleState<S>,
        a: S,
        s: S,
        c: &PairCoords<S>,
        eta: S,
        eta_b: S,
    ) -> S {
        let dot = |p: &[S; P], q: &[S; P]| p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
        let al = &st.alpha;
        let g = PairGram {
            wx: dot(al, &c.xf) + st.rho * c.x0,
            wxi: dot(al, &c.xif) + st.rho * c.xi0,
            xx: dot(&c.xf, &c.xf) + c.x0 * c.x0 + c.r1 * c.r1,
            xixi: dot(&c.xif, &c.xif) + c.xi0 * c.xi0 + c.c12 * c.c12 + c.r2 * c.r2,
            xxi: dot(&c.xf, &c.xif) + c.x0 * c.xi0 + c.r1 * c.c12,
        };
        let act = self.net.activation;
        let t = single_direction_terms_with(st.b, a, s, &g, &ReducedSigma(act));
        let keep = S::splat(1.0) - eta * (t.coef_w - t.w_dot_grad);
        let (cx, cxi) = (eta * t.coef_x, eta * t.coef_xi);
        let alpha: [S; P] = build(eta, |i| keep * al[i] - cx * c.xf[i] - cxi * c.xif[i]);
        let e0 = keep * st.rho - cx * c.x0 - cxi * c.xi0;
        // Remainder of the new w: −η(coef_x·(R₁, 0) + coef_ξ·(c₁₂, R₂)).
        let (e1, e2) = (cx * c.r1 + cxi * c.c12, cxi * c.r2);
        let rho = (e0 * e0 + e1 * e1 + e2 * e2).sqrt();
        self.finish(st, alpha, rho, eta_b * t.grad_b);
        t.loss
    }

    /// Renormalises (α, ρ) and moves b by `step_b` (η_b times its gradient).
    #[inline(always)]
    fn finish<S: LaneMath>(&self, st: &mut SingleState<S>, alpha: [S; P], rho: S, step_b: S) {
        let inv = S::splat(1.0) / (alpha[0] * alpha[0] + alpha[1] * alpha[1] + alpha[2] * alpha[2] + rho * rho).sqrt();
        st.alpha = build(inv, |i| alpha[i] * inv);
        st.rho = rho * inv;
        if self.train_b {
            st.b = st.b - step_b;
        }
    }
}

/// The initial state of a walker: w₀ uniform on S^{d−1}, i.e. α = g/√(‖g‖² + R²),
/// ρ = R/√(‖g‖² + R²) with g ~ N(0, I_p) and R² ~ χ²_{d−p} (SPEC §3.2).
pub fn initial_state<V: Variates>(d: u64, b: f64, rng: &mut V) -> SingleState {
    let g: [f64; P] = std::array::from_fn(|_| rng.normal());
    let r2 = ChiSquare::new(d - P as u64).sample(rng);
    let inv = 1.0 / (g.iter().map(|x| x * x).sum::<f64>() + r2).sqrt();
    SingleState { alpha: g.map(|x| x * inv), rho: r2.sqrt() * inv, b }
}

/// λ enters a sample through √β_u λ u and through the coupling of ν; with neither it is not drawn.
pub fn lambda_matters(params: &McmParams) -> bool {
    params.beta_u != 0.0 || params.coupling != crate::model::Coupling::Independent
}

/// ν given λ, as `model::latent::draw_latents` draws it — ν = |ν₀|ε with ε from the coupling, or
/// ν = ν₀ when independent — with λ taken from the walker's buffered normals.
#[inline(always)]
pub fn nu_given_lambda(params: &McmParams, lambda: f64, scalar: &mut ScalarRng) -> f64 {
    let nu0 = params.nu_law.sample(scalar);
    match params.coupling.sign_of(lambda) {
        None => nu0,
        Some(eps) => nu0.abs() * eps,
    }
}

/// How the noise's remainder is drawn in a batch-1 step. Only [`RemainderLaw::Exact`] is the
/// reduction of the full engine; the other two are the deliberately wrong engines of the power
/// check (SPEC §3.5(4)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemainderLaw {
    /// ξ's remainder is c₁₂e₁ + R₂e₂ with c₁₂ ~ N(0,1), R₂² ~ χ²_{D−1} (two-vector Bartlett).
    #[default]
    Exact,
    /// (a) ξ's remainder orthogonal to z's: c₁₂ = 0, R₂² ~ χ²_D.
    XiOrthogonalToZ,
    /// (b) ξ without a fresh component: c₁₂ = R₂ = 0.
    XiNoFresh,
}

/// What all walkers of one (config, d) share: the rule, the chi-square laws and the model in
/// F-coordinates.
#[derive(Clone, Debug)]
pub struct SingleShared {
    /// Always `Exact` except in the power check.
    pub remainder_law: RemainderLaw,
    /// False when λ cannot matter (β_u = 0 and ν independent of λ); then it is not drawn.
    needs_lambda: bool,
    pub rule: SingleRule,
    pub params: McmParams,
    pub d: u64,
    bartlett: Bartlett,
    /// χ²_D and χ²_{D−1}, D = d − p − 1 (the batch-1 remainder factor).
    chi_d: ChiSquare,
    chi_d1: ChiSquare,
    coord_model: MixedCumulantModel<f64>,
    coord_surrogate: GaussianSurrogate<f64>,
}

impl SingleShared {
    /// Smallest d for `n` fresh vectors per step: D = d − p − 1 ≥ n.
    pub fn min_dim(vectors_per_step: usize) -> u64 {
        (P + 1 + vectors_per_step) as u64
    }

    #[track_caller]
    pub fn new(setup: &ReducedSingleSetup) -> Self {
        let rule = SingleRule::new(setup);
        let n = rule.vectors_per_step();
        let d = setup.d;
        assert!(
            d >= Self::min_dim(n),
            "reduced engine: d = {d} < p + 1 + n = {} (SPEC §3.3 needs D ≥ 2B)",
            Self::min_dim(n)
        );
        let big_d = d - P as u64 - 1;
        let coord_model = setup.frame.coordinate_model(setup.params);
        Self {
            remainder_law: RemainderLaw::Exact,
            needs_lambda: lambda_matters(&setup.params),
            params: setup.params,
            d,
            bartlett: Bartlett::new(n, big_d),
            chi_d: ChiSquare::new(big_d),
            chi_d1: ChiSquare::new(big_d - 1),
            coord_surrogate: coord_model.surrogate(),
            coord_model,
            rule,
        }
    }

    /// The level index of a sample (drawn only when there is a choice).
    #[inline(always)]
    fn draw_level(&self, scalar: &mut ScalarRng) -> usize {
        let nl = self.rule.levels.len();
        if nl == 1 || self.rule.level_sum { 0 } else { scalar.below(nl as u64) as usize }
    }

    /// Draws one batch-1 step. Stream order: λ (normal; skipped when it cannot matter), ν and the level (scalar stream), z's
    /// F- and e₀-coordinates, ξ's (8 normals), then the Bartlett factor: R₁² ~ χ²_D, c₁₂, R₂² ~ χ²_{D−1}.
    #[inline(always)]
    pub fn draw_pair(&self, w: &mut WalkerStreams) -> PairDraw {
        let lambda = if self.needs_lambda { w.normal() } else { 0.0 };
        let nu = nu_given_lambda(&self.params, lambda, &mut w.scalar);
        let level = self.draw_level(&mut w.scalar);
        let c = w.normals::<8>();
        let r1 = self.chi_d.sample(w).sqrt();
        let (c12, r2) = match self.remainder_law {
            RemainderLaw::Exact => (w.normal(), self.chi_d1.sample(w).sqrt()),
            RemainderLaw::XiOrthogonalToZ => (0.0, self.chi_d.sample(w).sqrt()),
            RemainderLaw::XiNoFresh => (0.0, 0.0),
        };
        PairDraw { lambda, nu, level, z: [c[0], c[1], c[2]], z0: c[3], xi: [c[4], c[5], c[6]], xi0: c[7], r1, c12, r2 }
    }

    /// Draws a general step into `dr`, in the order of [`SingleShared::draw_pair`] generalised: per
    /// batch sample λ, ν, level; per vector its F- and e₀-coordinates; the Bartlett factor row by row.
    pub fn draw_general(&self, w: &mut WalkerStreams, dr: &mut SingleDraws) {
        for j in 0..self.rule.batch {
            let lambda = if self.needs_lambda { w.normal() } else { 0.0 };
            let nu = nu_given_lambda(&self.params, lambda, &mut w.scalar);
            dr.latents[j] = (lambda, nu);
            dr.levels[j] = self.draw_level(&mut w.scalar);
        }
        for k in 0..dr.span.len() {
            let c = w.normals::<4>();
            dr.span[k] = [c[0], c[1], c[2]];
            dr.e0[k] = c[3];
        }
        self.bartlett.sample_into(w, &mut dr.rem);
    }

    /// Buffers for [`SingleShared::draw_general`].
    pub fn draws_buffer(&self) -> SingleDraws {
        let (n, nb) = (self.rule.vectors_per_step(), self.rule.batch);
        SingleDraws {
            latents: vec![(0.0, 0.0); nb],
            levels: vec![0; nb],
            span: vec![[0.0; P]; n],
            e0: vec![0.0; n],
            rem: vec![0.0; n * n],
        }
    }

    /// The (a, s) of a pair draw and its coordinates.
    #[inline(always)]
    pub fn pair_coords(&self, p: &PairDraw) -> ((f64, f64), PairCoords) {
        (
            self.rule.levels[p.level],
            PairCoords {
                xf: self.rule.clean_span(&p.z, p.lambda, p.nu),
                x0: p.z0,
                xif: p.xi,
                xi0: p.xi0,
                r1: p.r1,
                c12: p.c12,
                r2: p.r2,
            },
        )
    }

    /// Monte Carlo test losses with the law of the full engine's estimator: per sample a clean x and
    /// a surrogate x_G that share their bulk z and the noise ξ (common random numbers), drawn in the
    /// coordinates (F, e₀, e₁, e₂) — the spike-span parts by the model's own sampler in
    /// F-coordinates, the remainders as a 2×2 Bartlett factor with D = d − p − 1 — and the loss from
    /// [`single_direction_terms_with`] averaged over the noise levels.
    pub fn evaluate(&self, st: &SingleState, seed: u64, n_eval: usize) -> EvalLosses {
        let mut rng = ScalarRng::from_seed(seed);
        let bart = Bartlett::new(2, self.d - P as u64 - 1);
        let mut rem = [0.0; 4];
        let act = self.rule.net.activation;
        let dot = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).sum::<f64>();
        let mut acc = EvalAccumulator::default();
        for _ in 0..n_eval {
            let sh = self.coord_model.draw_shift(&mut rng);
            let z: [f64; P] = std::array::from_fn(|_| rng.normal());
            let (mut x, mut xg) = (z, z);
            self.coord_model.apply_shift(&sh, &mut x);
            self.coord_surrogate.apply_to_bulk(&mut xg);
            let z0 = rng.normal();
            let xi: [f64; P] = std::array::from_fn(|_| rng.normal());
            let xi0 = rng.normal();
            bart.sample_into(&mut rng, &mut rem);
            let (r1, c12, r2) = (rem[0], rem[2], rem[3]);
            let wxi = dot(&st.alpha, &xi) + st.rho * xi0;
            let xixi = dot(&xi, &xi) + xi0 * xi0 + c12 * c12 + r2 * r2;
            let pair_loss = |v: &[f64; P]| {
                let g = PairGram {
                    wx: dot(&st.alpha, v) + st.rho * z0,
                    wxi,
                    xx: dot(v, v) + z0 * z0 + r1 * r1,
                    xixi,
                    xxi: dot(v, &xi) + z0 * xi0 + r1 * c12,
                };
                self.rule
                    .levels
                    .iter()
                    .map(|&(a, s)| single_direction_terms_with(st.b, a, s, &g, &ReducedSigma(act)).loss)
                    .sum::<f64>()
                    / self.rule.levels.len() as f64
            };
            acc.push(pair_loss(&x), pair_loss(&xg));
        }
        acc.finish()
    }
}

/// What is one walker's own: its state, streams and evaluation counter.
#[derive(Clone, Debug)]
pub struct SingleWalker {
    pub state: SingleState,
    pub streams: WalkerStreams,
    pub eval_seed: u64,
    pub evals_done: u64,
}

impl SingleWalker {
    pub fn new(d: u64, b0: f64, init_seed: u64, data_seed: u64, latent_seed: u64, eval_seed: u64) -> Self {
        let state = initial_state(d, b0, &mut ScalarRng::from_seed(init_seed));
        Self { state, streams: WalkerStreams::new(data_seed, latent_seed), eval_seed, evals_done: 0 }
    }

    /// Test losses with the evaluation stream of record `evals_done` (as the full engine).
    pub fn evaluate(&mut self, shared: &SingleShared, n_eval: usize) -> EvalLosses {
        let seed = crate::rng::mix64(self.eval_seed ^ crate::rng::mix64(self.evals_done));
        self.evals_done += 1;
        shared.evaluate(&self.state, seed, n_eval)
    }

    pub fn is_finite(&self) -> bool {
        self.state.alpha.iter().all(|x| x.is_finite()) && self.state.rho.is_finite() && self.state.b.is_finite()
    }

    /// A step with one (x, ξ) pair: [`SingleShared::draw_pair`] then [`SingleRule::pair_update`].
    #[inline(always)]
    pub fn step_pair(&mut self, shared: &SingleShared) -> f64 {
        let p = shared.draw_pair(&mut self.streams);
        let ((a, s), c) = shared.pair_coords(&p);
        shared.rule.pair_update(&mut self.state, a, s, &c)
    }
}

/// One walker of the reduced single-direction engine.
pub struct ReducedSingleLearner {
    pub shared: Arc<SingleShared>,
    pub walker: SingleWalker,
    draws: SingleDraws,
    scratch: Vec<f64>,
}

impl ReducedSingleLearner {
    #[track_caller]
    pub fn new(setup: ReducedSingleSetup) -> Self {
        let shared = Arc::new(SingleShared::new(&setup));
        let walker = SingleWalker::new(
            setup.d,
            setup.net.b,
            setup.init_seed,
            setup.data_seed,
            setup.latent_seed,
            setup.eval_seed,
        );
        Self::from_parts(shared, walker)
    }

    pub fn from_parts(shared: Arc<SingleShared>, walker: SingleWalker) -> Self {
        Self { draws: shared.draws_buffer(), scratch: Vec::new(), shared, walker }
    }

    /// The chain's state (α, ρ, b).
    pub fn chain_state(&self) -> &SingleState {
        &self.walker.state
    }
}

impl Learner for ReducedSingleLearner {
    #[inline]
    fn step(&mut self) -> f64 {
        if self.shared.rule.is_pair() {
            return self.walker.step_pair(&self.shared);
        }
        self.shared.draw_general(&mut self.walker.streams, &mut self.draws);
        self.shared.rule.step_general(&mut self.walker.state, &self.draws, &mut self.scratch)
    }

    #[inline]
    fn overlaps(&self) -> [f64; 3] {
        self.shared.rule.frame.overlaps(&self.walker.state.alpha, 1.0)
    }

    fn norm(&self) -> f64 {
        1.0
    }

    fn skip(&self) -> f64 {
        self.walker.state.b
    }

    fn is_finite(&self) -> bool {
        self.walker.is_finite()
    }

    fn state(&self) -> LearnerState {
        let (normals, unread) = self.walker.streams.save();
        let s = &self.walker.state;
        LearnerState {
            weights: vec![vec![s.alpha[0], s.alpha[1], s.alpha[2], s.rho], unread],
            scalars: vec![s.b],
            normals,
            latent: self.walker.streams.scalar.clone(),
            evals_done: self.walker.evals_done,
        }
    }

    fn restore(&mut self, st: &LearnerState) -> Result<(), String> {
        if st.weights.len() != 2 || st.weights[0].len() != P + 1 || st.scalars.len() != 1 {
            return Err("checkpoint is not a reduced single-direction walker's".into());
        }
        let w = &st.weights[0];
        self.walker.state = SingleState { alpha: [w[0], w[1], w[2]], rho: w[3], b: st.scalars[0] };
        self.walker.streams.restore(&st.normals, &st.weights[1], &st.latent)?;
        self.walker.evals_done = st.evals_done;
        Ok(())
    }

    /// See [`SingleShared::evaluate`].
    fn evaluate(&mut self, n_eval: usize) -> EvalLosses {
        self.walker.evaluate(&self.shared, n_eval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coupling, NuLaw};
    use crate::net::Activation;

    fn setup(batch: usize, levels: Vec<f64>, level_sum: bool) -> ReducedSingleSetup {
        ReducedSingleSetup {
            net: SingleDirection { activation: Activation::Tanh, b: 0.9 },
            params: McmParams {
                beta_m: 0.4,
                beta_u: 3.0,
                beta_v: 6.0,
                nu_law: NuLaw::Rademacher,
                coupling: Coupling::Sign,
            },
            frame: SpikeFrame::orthonormal(),
            d: 50,
            a_values: levels,
            level_sum,
            eta: 0.01,
            eta_b: 0.005,
            train_b: true,
            batch,
            init_seed: 1,
            data_seed: 2,
            latent_seed: 3,
            eval_seed: 4,
        }
    }

    /// The batch-1 shortcut equals the general n-vector update on the same draws.
    #[test]
    fn pair_update_equals_general_update() {
        let shared = SingleShared::new(&setup(1, vec![0.5], false));
        let mut w = WalkerStreams::new(5, 6);
        let mut dr = shared.draws_buffer();
        let mut st1 = initial_state(50, 0.9, &mut w);
        let mut st2 = st1;
        let mut scratch = Vec::new();
        for _ in 0..2000 {
            shared.draw_general(&mut w, &mut dr);
            let l1 = shared.rule.step(&mut st1, &dr, &mut scratch);
            let l2 = shared.rule.step_general(&mut st2, &dr, &mut scratch);
            assert!((l1 - l2).abs() < 1e-12 * l1.abs());
        }
        for i in 0..P {
            assert!((st1.alpha[i] - st2.alpha[i]).abs() < 1e-13);
        }
        assert!((st1.rho - st2.rho).abs() < 1e-13 && (st1.b - st2.b).abs() < 1e-13);
    }

    /// The streaming batch-1 draw consumes the streams exactly as the general draw does.
    #[test]
    fn draw_pair_follows_general_draw_order() {
        let shared = SingleShared::new(&setup(1, vec![0.3, 0.7], false));
        let (mut w1, mut w2) = (WalkerStreams::new(8, 9), WalkerStreams::new(8, 9));
        let mut dr = shared.draws_buffer();
        for _ in 0..1000 {
            let p = shared.draw_pair(&mut w1);
            shared.draw_general(&mut w2, &mut dr);
            assert_eq!((p.lambda, p.nu, p.level), (dr.latents[0].0, dr.latents[0].1, dr.levels[0]));
            assert_eq!(
                [p.z[0], p.z[1], p.z[2], p.z0, p.xi[0], p.xi[1], p.xi[2], p.xi0],
                [
                    dr.span[0][0],
                    dr.span[0][1],
                    dr.span[0][2],
                    dr.e0[0],
                    dr.span[1][0],
                    dr.span[1][1],
                    dr.span[1][2],
                    dr.e0[1]
                ]
            );
            assert_eq!([p.r1, p.c12, p.r2], [dr.rem[0], dr.rem[2], dr.rem[3]]);
        }
    }

    /// A restored walker continues bit-identically, for the batch-1 and the general path.
    #[test]
    fn checkpoint_restore_continues_identically() {
        for (batch, levels, sum) in [(1, vec![0.5], false), (3, vec![0.4, 0.6], true)] {
            let mut a = ReducedSingleLearner::new(setup(batch, levels.clone(), sum));
            for _ in 0..777 {
                a.step();
            }
            let st = Learner::state(&a);
            let mut b = ReducedSingleLearner::new(setup(batch, levels, sum));
            Learner::restore(&mut b, &st).unwrap();
            for _ in 0..1000 {
                assert_eq!(a.step().to_bits(), b.step().to_bits());
            }
            assert_eq!(Learner::state(&a), Learner::state(&b));
            assert_eq!(a.evaluate(16), b.evaluate(16));
        }
    }

    /// The coordinate model's sampler gives x_F = clean_span(z): the engine's inlined spike-span
    /// sampling is the model's.
    #[test]
    fn clean_span_is_the_models_sampler() {
        let s = setup(1, vec![0.5], false);
        let shared = SingleShared::new(&s);
        let model = s.frame.coordinate_model(s.params);
        let mut rng = ScalarRng::from_seed(3);
        for _ in 0..100 {
            let sh = model.draw_shift(&mut rng);
            let z: [f64; P] = std::array::from_fn(|_| rng.normal());
            let mut x = z;
            model.apply_shift(&sh, &mut x);
            let y = shared.rule.clean_span(&z, sh.lambda, sh.nu);
            for i in 0..P {
                assert!((x[i] - y[i]).abs() < 1e-14);
            }
        }
    }
}
