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
use super::streams::WalkerStreams;
use super::wishart::{Bartlett, ChiSquare, Variates};
use crate::model::{GaussianSurrogate, McmParams, MixedCumulantModel};
use crate::net::SingleDirection;
use crate::observe::EvalLosses;
use crate::rng::ScalarRng;
use crate::train::single::{EvalAccumulator, PairGram, PairTerms, single_direction_terms};
use crate::train::{Learner, LearnerState};

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

/// The chain's state: w = Fα + ρ e₀ (unit norm) and the readout b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SingleState {
    pub alpha: [f64; P],
    pub rho: f64,
    pub b: f64,
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
#[derive(Clone, Debug)]
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
            levels: setup
                .a_values
                .iter()
                .map(|&a| (a, (1.0 - a * a).sqrt()))
                .collect(),
            level_sum: setup.level_sum,
            eta: setup.eta,
            eta_b: setup.eta_b,
            train_b: setup.train_b,
            batch: setup.batch,
        }
    }

    /// Noise vectors per clean sample.
    pub fn noises_per_sample(&self) -> usize {
        if self.level_sum { self.levels.len() } else { 1 }
    }

    /// Fresh Gaussian vectors per step, n = B·(1 + noises per sample).
    pub fn vectors_per_step(&self) -> usize {
        self.batch * (1 + self.noises_per_sample())
    }

    /// F-coordinates of the clean sample with bulk coordinates `z` and latents (λ, ν):
    /// x_F = z + β_m m + √β_u λ u + (s_v ν − c_S⟨v, z⟩) v (SPEC §2.1's O(d) form, in 𝓕).
    #[inline(always)]
    pub fn clean_span(&self, z: &[f64; P], lambda: f64, nu: f64) -> [f64; P] {
        let [m, u, v] = &self.frame.spikes;
        let vz = v[0] * z[0] + v[1] * z[1] + v[2] * z[2];
        let cv = self.s_v * nu - self.c_s * vz;
        let cu = self.sqrt_beta_u * lambda;
        std::array::from_fn(|i| z[i] + self.beta_m * m[i] + cu * u[i] + cv * v[i])
    }

    /// One step on `st` with the coordinates `dr`; returns the step's training loss. `scratch` holds
    /// the n gradient coefficients.
    pub fn step(&self, st: &mut SingleState, dr: &SingleDraws, scratch: &mut Vec<f64>) -> f64 {
        if self.vectors_per_step() == 2 {
            self.step_pair(st, dr)
        } else {
            self.step_general(st, dr, scratch)
        }
    }

    /// [`SingleRule::step`] for any number of vectors (the batch-1 case has a shortcut, tested
    /// against this).
    pub fn step_general(
        &self,
        st: &mut SingleState,
        dr: &SingleDraws,
        scratch: &mut Vec<f64>,
    ) -> f64 {
        let n = self.vectors_per_step();
        let nxi = self.noises_per_sample();
        debug_assert!(dr.span.len() == n && dr.e0.len() == n && dr.rem.len() == n * n);
        scratch.clear();
        scratch.resize(n, 0.0);
        let coef = &mut scratch[..];
        let net = SingleDirection {
            activation: self.net.activation,
            b: st.b,
        };
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
                    xxi: dot(&xf, xif)
                        + x0 * xi0
                        + lz.iter().zip(lxi).map(|(p, q)| p * q).sum::<f64>(),
                };
                let t: PairTerms = single_direction_terms(&net, a, s, &g);
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
        self.finish(st, alpha, rho, gb);
        loss
    }

    /// [`SingleRule::step`] for n = 2 (batch 1, one noise): the remainder factor is
    /// [[R₁, 0], [c₁₂, R₂]].
    #[inline]
    fn step_pair(&self, st: &mut SingleState, dr: &SingleDraws) -> f64 {
        let (lambda, nu) = dr.latents[0];
        let (a, s) = self.levels[if self.level_sum { 0 } else { dr.levels[0] }];
        let xf = self.clean_span(&dr.span[0], lambda, nu);
        let (x0, xi0, xif) = (dr.e0[0], dr.e0[1], &dr.span[1]);
        let (r1, c12, r2) = (dr.rem[0], dr.rem[2], dr.rem[3]);
        self.pair_update(st, a, s, &xf, x0, xif, xi0, r1, c12, r2)
    }

    /// The batch-1 update from explicit coordinates (shared by the buffered and the streaming path).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn pair_update(
        &self,
        st: &mut SingleState,
        a: f64,
        s: f64,
        xf: &[f64; P],
        x0: f64,
        xif: &[f64; P],
        xi0: f64,
        r1: f64,
        c12: f64,
        r2: f64,
    ) -> f64 {
        let dot = |p: &[f64; P], q: &[f64; P]| p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
        let al = &st.alpha;
        let g = PairGram {
            wx: dot(al, xf) + st.rho * x0,
            wxi: dot(al, xif) + st.rho * xi0,
            xx: dot(xf, xf) + x0 * x0 + r1 * r1,
            xixi: dot(xif, xif) + xi0 * xi0 + c12 * c12 + r2 * r2,
            xxi: dot(xf, xif) + x0 * xi0 + r1 * c12,
        };
        let net = SingleDirection {
            activation: self.net.activation,
            b: st.b,
        };
        let t = single_direction_terms(&net, a, s, &g);
        let eta = self.eta;
        let keep = 1.0 - eta * (t.coef_w - t.w_dot_grad);
        let (cx, cxi) = (eta * t.coef_x, eta * t.coef_xi);
        let alpha: [f64; P] = std::array::from_fn(|i| keep * al[i] - cx * xf[i] - cxi * xif[i]);
        let e0 = keep * st.rho - cx * x0 - cxi * xi0;
        // Remainder of the new w: −η(coef_x·(R₁, 0) + coef_ξ·(c₁₂, R₂)).
        let (e1, e2) = (cx * r1 + cxi * c12, cxi * r2);
        let rho = (e0 * e0 + e1 * e1 + e2 * e2).sqrt();
        self.finish(st, alpha, rho, t.grad_b);
        t.loss
    }

    #[inline(always)]
    fn finish(&self, st: &mut SingleState, alpha: [f64; P], rho: f64, grad_b: f64) {
        let inv = 1.0
            / (alpha[0] * alpha[0] + alpha[1] * alpha[1] + alpha[2] * alpha[2] + rho * rho).sqrt();
        st.alpha = alpha.map(|x| x * inv);
        st.rho = rho * inv;
        if self.train_b {
            st.b -= self.eta_b * grad_b;
        }
    }
}

/// The initial state of a walker: w₀ uniform on S^{d−1}, i.e. α = g/√(‖g‖² + R²), ρ = R/√(‖g‖² + R²)
/// with g ~ N(0, I_p) and R² ~ χ²_{d−p} (SPEC §3.2).
pub fn initial_state<V: Variates>(d: u64, b: f64, rng: &mut V) -> SingleState {
    let g: [f64; P] = std::array::from_fn(|_| rng.normal());
    let r2 = ChiSquare::new(d - P as u64).sample(rng);
    let inv = 1.0 / (g.iter().map(|x| x * x).sum::<f64>() + r2).sqrt();
    SingleState {
        alpha: g.map(|x| x * inv),
        rho: r2.sqrt() * inv,
        b,
    }
}

/// Draws (λ, ν) as `model::latent::draw_latents` does — λ ~ N(0,1), ν = |ν₀|ε with ε from the
/// coupling, or ν = ν₀ when independent — but with λ taken from the walker's buffered normals.
#[inline(always)]
pub fn draw_latents_from(params: &McmParams, lambda: f64, scalar: &mut ScalarRng) -> f64 {
    let nu0 = params.nu_law.sample(scalar);
    match params.coupling.sign_of(lambda) {
        None => nu0,
        Some(eps) => nu0.abs() * eps,
    }
}

/// One walker of the reduced single-direction engine.
pub struct ReducedSingleLearner {
    pub rule: SingleRule,
    pub state: SingleState,
    params: McmParams,
    d: u64,
    bartlett: Bartlett,
    /// χ²_D and χ²_{D−1} for the batch-1 fast path.
    chi_d: ChiSquare,
    chi_d1: ChiSquare,
    streams: WalkerStreams,
    draws: SingleDraws,
    scratch: Vec<f64>,
    /// The model in F-coordinates and its surrogate (for test losses).
    coord_model: MixedCumulantModel<f64>,
    coord_surrogate: GaussianSurrogate<f64>,
    eval_seed: u64,
    evals_done: u64,
}

impl ReducedSingleLearner {
    /// Smallest d for `n` fresh vectors per step: D = d − p − 1 ≥ n.
    pub fn min_dim(vectors_per_step: usize) -> u64 {
        (P + 1 + vectors_per_step) as u64
    }

    #[track_caller]
    pub fn new(setup: ReducedSingleSetup) -> Self {
        let rule = SingleRule::new(&setup);
        let n = rule.vectors_per_step();
        let d = setup.d;
        assert!(
            d >= Self::min_dim(n),
            "reduced engine: d = {d} < p + 1 + n = {} (SPEC §3.3 needs D ≥ 2B)",
            Self::min_dim(n)
        );
        let big_d = d - P as u64 - 1;
        let mut init = ScalarRng::from_seed(setup.init_seed);
        let state = initial_state(d, setup.net.b, &mut init);
        let coord_model = setup.frame.coordinate_model(setup.params);
        let coord_surrogate = coord_model.surrogate();
        let nb = setup.batch;
        Self {
            state,
            params: setup.params,
            d,
            bartlett: Bartlett::new(n, big_d),
            chi_d: ChiSquare::new(big_d),
            chi_d1: ChiSquare::new(big_d - 1),
            streams: WalkerStreams::new(setup.data_seed, setup.latent_seed),
            draws: SingleDraws {
                latents: vec![(0.0, 0.0); nb],
                levels: vec![0; nb],
                span: vec![[0.0; P]; n],
                e0: vec![0.0; n],
                rem: vec![0.0; n * n],
            },
            scratch: Vec::with_capacity(n),
            coord_model,
            coord_surrogate,
            eval_seed: setup.eval_seed,
            evals_done: 0,
            rule,
        }
    }

    pub fn dim(&self) -> u64 {
        self.d
    }

    #[inline(always)]
    fn draw_level(&mut self) -> usize {
        let nl = self.rule.levels.len();
        if nl == 1 || self.rule.level_sum {
            0
        } else {
            self.streams.scalar.below(nl as u64) as usize
        }
    }

    /// Fills `self.draws` from the walker's streams. Order: per batch sample λ (normal), ν and the
    /// level (scalar stream); per vector its F- and e₀-coordinates (4 normals); then the Bartlett
    /// factor row by row.
    fn draw(&mut self) {
        for j in 0..self.rule.batch {
            let lambda = self.streams.normal();
            let nu = draw_latents_from(&self.params, lambda, &mut self.streams.scalar);
            self.draws.latents[j] = (lambda, nu);
            self.draws.levels[j] = self.draw_level();
        }
        for k in 0..self.draws.span.len() {
            let c = self.streams.normals::<4>();
            self.draws.span[k] = [c[0], c[1], c[2]];
            self.draws.e0[k] = c[3];
        }
        self.bartlett
            .sample_into(&mut self.streams, &mut self.draws.rem);
    }

    /// The batch-1, one-noise step straight from the streams (same draws, same order, same
    /// arithmetic as `draw` + `SingleRule::step`, without the intermediate buffers).
    #[inline(always)]
    fn step_fast(&mut self) -> f64 {
        let lambda = self.streams.normal();
        let nu = draw_latents_from(&self.params, lambda, &mut self.streams.scalar);
        let level = self.draw_level();
        let c = self.streams.normals::<8>();
        let z = [c[0], c[1], c[2]];
        let x0 = c[3];
        let xif = [c[4], c[5], c[6]];
        let xi0 = c[7];
        let r1 = self.chi_d.sample(&mut self.streams).sqrt();
        let c12 = self.streams.normal();
        let r2 = self.chi_d1.sample(&mut self.streams).sqrt();
        let (a, s) = self.rule.levels[level];
        let xf = self.rule.clean_span(&z, lambda, nu);
        self.rule
            .pair_update(&mut self.state, a, s, &xf, x0, &xif, xi0, r1, c12, r2)
    }
}

impl Learner for ReducedSingleLearner {
    #[inline]
    fn step(&mut self) -> f64 {
        if self.rule.vectors_per_step() == 2 {
            return self.step_fast();
        }
        self.draw();
        self.rule
            .step(&mut self.state, &self.draws, &mut self.scratch)
    }

    #[inline]
    fn overlaps(&self) -> [f64; 3] {
        self.rule.frame.overlaps(&self.state.alpha, 1.0)
    }

    fn norm(&self) -> f64 {
        1.0
    }

    fn skip(&self) -> f64 {
        self.state.b
    }

    fn is_finite(&self) -> bool {
        self.state.alpha.iter().all(|x| x.is_finite())
            && self.state.rho.is_finite()
            && self.state.b.is_finite()
    }

    fn state(&self) -> LearnerState {
        let (normals, unread) = self.streams.save();
        let s = &self.state;
        LearnerState {
            weights: vec![vec![s.alpha[0], s.alpha[1], s.alpha[2], s.rho], unread],
            scalars: vec![s.b],
            normals,
            latent: self.streams.scalar.clone(),
            evals_done: self.evals_done,
        }
    }

    fn restore(&mut self, st: &LearnerState) -> Result<(), String> {
        if st.weights.len() != 2 || st.weights[0].len() != P + 1 || st.scalars.len() != 1 {
            return Err("checkpoint is not a reduced single-direction walker's".into());
        }
        let w = &st.weights[0];
        self.state = SingleState {
            alpha: [w[0], w[1], w[2]],
            rho: w[3],
            b: st.scalars[0],
        };
        self.streams
            .restore(&st.normals, &st.weights[1], &st.latent)?;
        self.evals_done = st.evals_done;
        Ok(())
    }

    /// Monte Carlo test losses with the law of the full engine's: per sample a clean x and a
    /// surrogate x_G that share their bulk z and the noise ξ (common random numbers), drawn in the
    /// coordinates (F, e₀, e₁, e₂) — the spike-span parts by the model's own sampler in
    /// F-coordinates, the remainders as a 2×2 Bartlett factor with D = d − p − 1.
    fn evaluate(&mut self, n_eval: usize) -> EvalLosses {
        let seed = crate::rng::mix64(self.eval_seed ^ crate::rng::mix64(self.evals_done));
        self.evals_done += 1;
        let mut rng = ScalarRng::from_seed(seed);
        let bart = Bartlett::new(2, self.d - P as u64 - 1);
        let mut rem = [0.0; 4];
        let st = self.state;
        let net = SingleDirection {
            activation: self.rule.net.activation,
            b: st.b,
        };
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
                    .map(|&(a, s)| single_direction_terms(&net, a, s, &g).loss)
                    .sum::<f64>()
                    / self.rule.levels.len() as f64
            };
            acc.push(pair_loss(&x), pair_loss(&xg));
        }
        acc.finish()
    }
}
