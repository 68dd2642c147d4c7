//! The reduced K-unit walker (SPEC §3.4): the Markov chain of (A = Fᵀ[W V], R, c) with
//! [W V] − FA = E_⊥R, R upper triangular with a nonnegative diagonal.
//!
//! # One step in coordinates
//! With K' stacked columns (K tied, 2K untied) and 2B fresh vectors per step, the working basis is
//! (F, E_⊥, e₁…e_{2B}) of dimension n = p + K' + 2B. The weights are [A; R; 0], every fresh vector
//! has F- and E_⊥-coordinates ~ N(0,1) and remainder coordinates from a Bartlett factor with
//! D = d − p − K'. The gradient is [`TwoLayer::gradient_into`] — the full engine's own code —
//! applied to these n-dimensional coordinate vectors. Its 1/√d scalings are taken care of by
//! running it on the rescaled weights W' = κW with κ = √(n/d): then W'ᵀx_t/√n = Wᵀx_t/√d and
//! W'σ/√n = Wσ/√d, so the forward pass, the loss and ∂_c are unchanged and ∇_W = κ∇_{W'}.
//! After the update, the F-rows are the new A and the R-factor of a thin QR of the other rows
//! (signs fixed so that its diagonal is ≥ 0) is the new R.

use super::frame::{P, SpikeFrame};
use super::single::nu_given_lambda;
use super::streams::WalkerStreams;
use super::wishart::{Bartlett, Variates};
use crate::model::{GaussianSurrogate, McmParams, MixedCumulantModel};
use crate::net::Activation;
use crate::net::two_layer::{TwoLayer, TwoLayerGradient, TwoLayerScratch, Tying};
use crate::observe::EvalLosses;
use crate::rng::ScalarRng;
use crate::train::single::EvalAccumulator;
use crate::train::{Learner, LearnerState};

/// How a reduced two-layer walker is built.
#[derive(Clone, Debug)]
pub struct ReducedTwoLayerSetup {
    pub activation: Activation,
    pub tying: Tying,
    pub units: usize,
    pub c0: f64,
    pub params: McmParams,
    pub frame: SpikeFrame,
    pub d: u64,
    pub a_values: Vec<f64>,
    /// Per-step rate for a unit-norm direction η; the weights use η_W = d·η (SPEC §2.5).
    pub eta: f64,
    pub spherical: bool,
    pub batch: usize,
    pub init_seed: u64,
    pub data_seed: u64,
    pub latent_seed: u64,
    pub eval_seed: u64,
}

/// The chain's state. Column j of the stacked weights [W V] is F·a_j + E_⊥·r_j.
#[derive(Clone, Debug, PartialEq)]
pub struct TwoLayerState {
    /// K' = stacked columns.
    pub cols: usize,
    /// p×K' column-major.
    pub a: Vec<f64>,
    /// K'×K' column-major, upper triangular, nonnegative diagonal.
    pub r: Vec<f64>,
    pub c: f64,
}

impl TwoLayerState {
    /// Gram matrix of the complement parts, RᵀR (K'×K', column-major).
    pub fn complement_gram(&self) -> Vec<f64> {
        let k = self.cols;
        let mut g = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                g[j * k + i] = (0..k).map(|l| self.r[i * k + l] * self.r[j * k + l]).sum();
            }
        }
        g
    }

    /// ‖column j‖².
    pub fn col_norm2(&self, j: usize) -> f64 {
        let k = self.cols;
        self.a[j * P..(j + 1) * P].iter().map(|x| x * x).sum::<f64>()
            + self.r[j * k..(j + 1) * k].iter().map(|x| x * x).sum::<f64>()
    }
}

/// One step's fresh draws in coordinates; vectors ordered z₁, ξ₁, z₂, ξ₂, ….
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwoLayerDraws {
    pub latents: Vec<(f64, f64)>,
    pub levels: Vec<usize>,
    /// F-coordinates per vector.
    pub span: Vec<[f64; P]>,
    /// E_⊥-coordinates, K' per vector (row-major 2B×K').
    pub perp: Vec<f64>,
    /// Bartlett factor of the remainders, 2B×2B row-major lower triangular.
    pub rem: Vec<f64>,
}

/// Buffers of one step (no allocation in the step loop).
#[derive(Clone, Debug)]
pub struct TwoLayerWork {
    n: usize,
    net: TwoLayer<f64>,
    x: Vec<f64>,
    xt: Vec<f64>,
    scratch: TwoLayerScratch<f64>,
    grad: TwoLayerGradient<f64>,
    /// Unscaled working weights [A; R; 0], n×K' column-major.
    wu: Vec<f64>,
}

/// The fixed part of the update rule.
#[derive(Clone, Debug)]
pub struct TwoLayerRule {
    pub activation: Activation,
    pub tying: Tying,
    pub units: usize,
    pub spherical: bool,
    pub eta_w: f64,
    pub d: f64,
    pub frame: SpikeFrame,
    pub beta_m: f64,
    pub sqrt_beta_u: f64,
    pub s_v: f64,
    pub c_s: f64,
    pub levels: Vec<(f64, f64)>,
    pub batch: usize,
}

impl TwoLayerRule {
    pub fn new(s: &ReducedTwoLayerSetup) -> Self {
        let p = &s.params;
        Self {
            activation: s.activation,
            tying: s.tying,
            units: s.units,
            spherical: s.spherical,
            eta_w: s.eta * s.d as f64,
            d: s.d as f64,
            frame: s.frame,
            beta_m: p.beta_m,
            sqrt_beta_u: p.beta_u.sqrt(),
            s_v: p.s_v(),
            c_s: p.c_s(),
            levels: s.a_values.iter().map(|&a| (a, (1.0 - a * a).sqrt())).collect(),
            batch: s.batch,
        }
    }

    /// K': stacked columns.
    pub fn cols(&self) -> usize {
        match self.tying {
            Tying::Tied => self.units,
            Tying::Untied => 2 * self.units,
        }
    }

    pub fn vectors_per_step(&self) -> usize {
        2 * self.batch
    }

    /// Working dimension p + K' + 2B.
    pub fn work_dim(&self) -> usize {
        P + self.cols() + self.vectors_per_step()
    }

    pub fn workspace(&self) -> TwoLayerWork {
        workspace(self.activation, self.tying, self.units, self.cols(), self.work_dim(), self.batch)
    }

    #[inline(always)]
    fn clean_span(&self, z: &[f64; P], lambda: f64, nu: f64) -> [f64; P] {
        let [m, u, v] = &self.frame.spikes;
        let vz = v[0] * z[0] + v[1] * z[1] + v[2] * z[2];
        let cv = self.s_v * nu - self.c_s * vz;
        let cu = self.sqrt_beta_u * lambda;
        std::array::from_fn(|i| z[i] + self.beta_m * m[i] + cu * u[i] + cv * v[i])
    }

    /// One step; returns the batch-mean training loss.
    pub fn step(&self, st: &mut TwoLayerState, dr: &TwoLayerDraws, ws: &mut TwoLayerWork) -> f64 {
        let (kc, nv, n, b) = (self.cols(), self.vectors_per_step(), ws.n, self.batch);
        debug_assert_eq!(n, self.work_dim());
        // Coordinates of the batch: column j of x and x_t.
        for j in 0..b {
            let (kz, kx) = (2 * j, 2 * j + 1);
            let (a, s) = self.levels[dr.levels[j]];
            let (lambda, nu) = dr.latents[j];
            let xf = self.clean_span(&dr.span[kz], lambda, nu);
            let xc = &mut ws.x[j * n..(j + 1) * n];
            let tc = &mut ws.xt[j * n..(j + 1) * n];
            for i in 0..P {
                xc[i] = xf[i];
                tc[i] = a * xf[i] + s * dr.span[kx][i];
            }
            for i in 0..kc {
                let (zi, xii) = (dr.perp[kz * kc + i], dr.perp[kx * kc + i]);
                xc[P + i] = zi;
                tc[P + i] = a * zi + s * xii;
            }
            for l in 0..nv {
                let (zi, xii) = (dr.rem[kz * nv + l], dr.rem[kx * nv + l]);
                xc[P + kc + l] = zi;
                tc[P + kc + l] = a * zi + s * xii;
            }
        }
        fill_work_weights(st, &mut ws.wu, n);
        let kappa = (n as f64 / self.d).sqrt();
        load_scaled(&mut ws.net, &ws.wu, n, self.units, self.tying, kappa);
        ws.net.c = st.c;
        ws.net.gradient_into(&ws.x, &ws.xt, &mut ws.scratch, &mut ws.grad);
        let eta = self.eta_w;
        let k = self.units;
        // ∇_W = κ ∇_{W'}.
        for col in 0..k {
            let w = &mut ws.wu[col * n..(col + 1) * n];
            let g = &mut ws.grad.grad_w[col * n..(col + 1) * n];
            g.iter_mut().for_each(|x| *x *= kappa);
            if self.spherical {
                let proj = dot(w, g) / dot(w, w);
                g.iter_mut().zip(w.iter()).for_each(|(gi, wi)| *gi -= proj * wi);
                w.iter_mut().zip(g.iter()).for_each(|(wi, gi)| *wi -= eta * gi);
                let sc = self.d.sqrt() / dot(w, w).sqrt();
                w.iter_mut().for_each(|x| *x *= sc);
            } else {
                w.iter_mut().zip(g.iter()).for_each(|(wi, gi)| *wi -= eta * gi);
            }
        }
        if self.tying == Tying::Untied {
            for col in 0..k {
                let v = &mut ws.wu[(k + col) * n..(k + col + 1) * n];
                let g = &ws.grad.grad_v[col * n..(col + 1) * n];
                v.iter_mut().zip(g).for_each(|(vi, gi)| *vi -= eta * kappa * gi);
            }
        }
        st.c -= eta / (self.d * self.d) * ws.grad.grad_c;
        take_state(st, &mut ws.wu, n);
        ws.grad.loss
    }
}

fn workspace(activation: Activation, tying: Tying, units: usize, kc: usize, n: usize, b: usize) -> TwoLayerWork {
    let net = TwoLayer {
        d: n,
        k: units,
        activation,
        tying,
        w: vec![0.0; n * units],
        v: if tying == Tying::Untied { vec![0.0; n * units] } else { Vec::new() },
        c: 0.0,
    };
    TwoLayerWork {
        n,
        grad: net.zero_gradient(),
        net,
        x: vec![0.0; n * b],
        xt: vec![0.0; n * b],
        scratch: TwoLayerScratch::new(n, units, b),
        wu: vec![0.0; n * kc],
    }
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// [A; R; 0] into the n×K' working matrix.
fn fill_work_weights(st: &TwoLayerState, wu: &mut [f64], n: usize) {
    let kc = st.cols;
    for j in 0..kc {
        let col = &mut wu[j * n..(j + 1) * n];
        col.iter_mut().for_each(|x| *x = 0.0);
        col[..P].copy_from_slice(&st.a[j * P..(j + 1) * P]);
        col[P..P + kc].copy_from_slice(&st.r[j * kc..(j + 1) * kc]);
    }
}

/// W' = κW (and V' = κV) into the coordinate network.
fn load_scaled(net: &mut TwoLayer<f64>, wu: &[f64], n: usize, k: usize, tying: Tying, kappa: f64) {
    for (o, &x) in net.w.iter_mut().zip(&wu[..n * k]) {
        *o = kappa * x;
    }
    if tying == Tying::Untied {
        for (o, &x) in net.v.iter_mut().zip(&wu[n * k..2 * n * k]) {
            *o = kappa * x;
        }
    }
}

/// New A = F-rows of the working matrix; new R = R-factor of the other rows (Householder QR, signs
/// fixed so that diag R ≥ 0). Overwrites `wu`.
fn take_state(st: &mut TwoLayerState, wu: &mut [f64], n: usize) {
    let kc = st.cols;
    for j in 0..kc {
        st.a[j * P..(j + 1) * P].copy_from_slice(&wu[j * n..j * n + P]);
    }
    let rows = n - P;
    // In-place Householder on rows P..n of each column.
    for j in 0..kc.min(rows) {
        let norm = (j..rows).map(|i| wu[j * n + P + i].powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let x0 = wu[j * n + P + j];
        let alpha = if x0 > 0.0 { -norm } else { norm };
        // v = x − αe_j (stored in place of column j's tail), H = I − 2vvᵀ/vᵀv.
        wu[j * n + P + j] = x0 - alpha;
        let vv = (j..rows).map(|i| wu[j * n + P + i].powi(2)).sum::<f64>();
        for c in j + 1..kc {
            let s = (j..rows).map(|i| wu[j * n + P + i] * wu[c * n + P + i]).sum::<f64>();
            let f = 2.0 * s / vv;
            for i in j..rows {
                wu[c * n + P + i] -= f * wu[j * n + P + i];
            }
        }
        wu[j * n + P + j] = alpha;
    }
    for j in 0..kc {
        for i in 0..kc {
            st.r[j * kc + i] = if i <= j && i < rows { wu[j * n + P + i] } else { 0.0 };
        }
    }
    // Row i of R belongs to the i-th basis vector of E_⊥; flipping that vector's sign flips the row.
    for i in 0..kc {
        if st.r[i * kc + i] < 0.0 {
            for j in i..kc {
                st.r[j * kc + i] = -st.r[j * kc + i];
            }
        }
    }
}

/// One walker of the reduced two-layer engine.
pub struct ReducedTwoLayerLearner {
    pub rule: TwoLayerRule,
    pub state: TwoLayerState,
    params: McmParams,
    d: u64,
    bartlett: Bartlett,
    streams: WalkerStreams,
    draws: TwoLayerDraws,
    work: TwoLayerWork,
    coord_model: MixedCumulantModel<f64>,
    coord_surrogate: GaussianSurrogate<f64>,
    eval_seed: u64,
    evals_done: u64,
}

impl ReducedTwoLayerLearner {
    /// Smallest d: D = d − p − K' ≥ 2B.
    pub fn min_dim(cols: usize, vectors_per_step: usize) -> u64 {
        (P + cols + vectors_per_step) as u64
    }

    #[track_caller]
    pub fn new(setup: ReducedTwoLayerSetup) -> Self {
        let rule = TwoLayerRule::new(&setup);
        let (kc, nv, d) = (rule.cols(), rule.vectors_per_step(), setup.d);
        assert!(d >= Self::min_dim(kc, nv), "reduced engine: d = {d} < p + K' + 2B = {}", Self::min_dim(kc, nv));
        let state = initial_state(&rule, d, setup.c0, &mut ScalarRng::from_seed(setup.init_seed));
        let coord_model = setup.frame.coordinate_model(setup.params);
        let coord_surrogate = coord_model.surrogate();
        Self {
            state,
            params: setup.params,
            d,
            bartlett: Bartlett::new(nv, d - (P + kc) as u64),
            streams: WalkerStreams::new(setup.data_seed, setup.latent_seed),
            draws: TwoLayerDraws {
                latents: vec![(0.0, 0.0); setup.batch],
                levels: vec![0; setup.batch],
                span: vec![[0.0; P]; nv],
                perp: vec![0.0; nv * kc],
                rem: vec![0.0; nv * nv],
            },
            work: rule.workspace(),
            coord_model,
            coord_surrogate,
            eval_seed: setup.eval_seed,
            evals_done: 0,
            rule,
        }
    }

    /// Order: per batch sample λ, ν and the level; per vector its F- and E_⊥-coordinates; then the
    /// Bartlett factor.
    fn draw(&mut self) {
        let nl = self.rule.levels.len() as u64;
        for j in 0..self.rule.batch {
            let lambda = if super::single::lambda_matters(&self.params) { self.streams.normal() } else { 0.0 };
            let nu = nu_given_lambda(&self.params, lambda, &mut self.streams.scalar);
            self.draws.latents[j] = (lambda, nu);
            self.draws.levels[j] = if nl == 1 { 0 } else { self.streams.scalar.below(nl) as usize };
        }
        for s in self.draws.span.iter_mut() {
            *s = self.streams.normals::<P>();
        }
        for x in self.draws.perp.iter_mut() {
            *x = self.streams.normal();
        }
        self.bartlett.sample_into(&mut self.streams, &mut self.draws.rem);
    }
}

/// W and V with iid N(0,1) entries: A iid N(0,1), R the Bartlett factor of K' Gaussian vectors in
/// the (d − p)-dimensional complement; spherical: W's columns rescaled to norm √d.
pub fn initial_state<V: Variates>(rule: &TwoLayerRule, d: u64, c0: f64, rng: &mut V) -> TwoLayerState {
    let kc = rule.cols();
    let mut st = TwoLayerState { cols: kc, a: vec![0.0; P * kc], r: vec![0.0; kc * kc], c: c0 };
    for x in st.a.iter_mut() {
        *x = rng.normal();
    }
    Bartlett::new(kc, d - P as u64).sample_upper_col_major(rng, &mut st.r);
    if rule.spherical {
        for j in 0..rule.units {
            let sc = (d as f64).sqrt() / st.col_norm2(j).sqrt();
            st.a[j * P..(j + 1) * P].iter_mut().for_each(|x| *x *= sc);
            st.r[j * kc..(j + 1) * kc].iter_mut().for_each(|x| *x *= sc);
        }
    }
    st
}

impl Learner for ReducedTwoLayerLearner {
    fn step(&mut self) -> f64 {
        self.draw();
        self.rule.step(&mut self.state, &self.draws, &mut self.work)
    }

    fn overlaps(&self) -> [f64; 3] {
        let mut best = [0.0f64; 3];
        for j in 0..self.rule.units {
            let a: [f64; P] = std::array::from_fn(|i| self.state.a[j * P + i]);
            let o = self.rule.frame.overlaps(&a, self.state.col_norm2(j).sqrt());
            for i in 0..3 {
                if o[i].abs() > best[i].abs() {
                    best[i] = o[i];
                }
            }
        }
        best
    }

    fn norm(&self) -> f64 {
        (0..self.rule.units).map(|j| self.state.col_norm2(j).sqrt()).sum::<f64>()
            / (self.rule.units as f64 * self.rule.d.sqrt())
    }

    fn skip(&self) -> f64 {
        self.state.c
    }

    fn is_finite(&self) -> bool {
        self.state.c.is_finite() && self.state.a.iter().chain(&self.state.r).all(|x| x.is_finite())
    }

    fn state(&self) -> LearnerState {
        let (normals, unread) = self.streams.save();
        let mut w = self.state.a.clone();
        w.extend_from_slice(&self.state.r);
        LearnerState {
            weights: vec![w, unread],
            scalars: vec![self.state.c],
            normals,
            latent: self.streams.scalar.clone(),
            evals_done: self.evals_done,
        }
    }

    fn restore(&mut self, st: &LearnerState) -> Result<(), String> {
        let kc = self.state.cols;
        if st.weights.len() != 2 || st.weights[0].len() != P * kc + kc * kc || st.scalars.len() != 1 {
            return Err("checkpoint is not a reduced two-layer walker's".into());
        }
        self.state.a.copy_from_slice(&st.weights[0][..P * kc]);
        self.state.r.copy_from_slice(&st.weights[0][P * kc..]);
        self.state.c = st.scalars[0];
        self.streams.restore(&st.normals, &st.weights[1], &st.latent)?;
        self.evals_done = st.evals_done;
        Ok(())
    }

    /// Monte Carlo test losses with the full engine's law (clean and surrogate samples sharing z and
    /// ξ), in the coordinates (F, E_⊥, e₁, e₂) with a 2×2 Bartlett factor for the remainders.
    fn evaluate(&mut self, n_eval: usize) -> EvalLosses {
        let seed = crate::rng::mix64(self.eval_seed ^ crate::rng::mix64(self.evals_done));
        self.evals_done += 1;
        let mut rng = ScalarRng::from_seed(seed);
        let kc = self.state.cols;
        let n = P + kc + 2;
        let rule = &self.rule;
        let mut ws = workspace(rule.activation, rule.tying, rule.units, kc, n, 1);
        fill_work_weights(&self.state, &mut ws.wu, n);
        load_scaled(&mut ws.net, &ws.wu, n, rule.units, rule.tying, (n as f64 / rule.d).sqrt());
        ws.net.c = self.state.c;
        let bart = Bartlett::new(2, self.d - (P + kc) as u64);
        let mut rem = [0.0; 4];
        let (mut x, mut xg, mut xi, mut xt) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut acc = EvalAccumulator::default();
        for _ in 0..n_eval {
            let sh = self.coord_model.draw_shift(&mut rng);
            let z: [f64; P] = std::array::from_fn(|_| rng.normal());
            let (mut xf, mut xgf) = (z, z);
            self.coord_model.apply_shift(&sh, &mut xf);
            self.coord_surrogate.apply_to_bulk(&mut xgf);
            x[..P].copy_from_slice(&xf);
            xg[..P].copy_from_slice(&xgf);
            for i in 0..kc {
                let t = rng.normal();
                x[P + i] = t;
                xg[P + i] = t;
            }
            for v in xi.iter_mut().take(P + kc) {
                *v = rng.normal();
            }
            bart.sample_into(&mut rng, &mut rem);
            (x[P + kc], x[P + kc + 1]) = (rem[0], 0.0);
            (xg[P + kc], xg[P + kc + 1]) = (rem[0], 0.0);
            (xi[P + kc], xi[P + kc + 1]) = (rem[2], rem[3]);
            let mut loss_of = |clean: &[f64]| {
                let mut total = 0.0;
                for &(a, s) in &rule.levels {
                    for i in 0..n {
                        xt[i] = a * clean[i] + s * xi[i];
                    }
                    total += ws.net.loss(clean, &xt, &mut ws.scratch);
                }
                total / rule.levels.len() as f64
            };
            let ld = loss_of(&x);
            let ls = loss_of(&xg);
            acc.push(ld, ls);
        }
        acc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coupling, NuLaw};

    fn setup(tying: Tying, spherical: bool, batch: usize) -> ReducedTwoLayerSetup {
        ReducedTwoLayerSetup {
            activation: Activation::Tanh,
            tying,
            units: 2,
            c0: 0.7,
            params: McmParams {
                beta_m: 0.0,
                beta_u: 3.0,
                beta_v: 6.0,
                nu_law: NuLaw::Rademacher,
                coupling: Coupling::Odd,
            },
            frame: SpikeFrame::orthonormal(),
            d: 64,
            a_values: vec![0.5],
            eta: 0.2 / 64.0,
            spherical,
            batch,
            init_seed: 1,
            data_seed: 2,
            latent_seed: 3,
            eval_seed: 4,
        }
    }

    #[test]
    fn checkpoint_restore_continues_identically() {
        for (tying, sph, b) in [(Tying::Tied, false, 1), (Tying::Tied, true, 2), (Tying::Untied, false, 1)] {
            let mut a = ReducedTwoLayerLearner::new(setup(tying, sph, b));
            for _ in 0..300 {
                a.step();
            }
            let st = a.state();
            let mut c = ReducedTwoLayerLearner::new(setup(tying, sph, b));
            c.restore(&st).unwrap();
            for _ in 0..300 {
                assert_eq!(a.step().to_bits(), c.step().to_bits());
            }
            assert_eq!(a.state(), c.state());
            assert_eq!(a.evaluate(8), c.evaluate(8));
        }
    }

    /// Spherical columns keep norm √d; R stays upper triangular with a nonnegative diagonal.
    #[test]
    fn state_invariants() {
        let mut l = ReducedTwoLayerLearner::new(setup(Tying::Tied, true, 2));
        for _ in 0..500 {
            l.step();
            for j in 0..2 {
                assert!((l.state.col_norm2(j) / 64.0 - 1.0).abs() < 1e-12);
            }
            let k = l.state.cols;
            for j in 0..k {
                assert!(l.state.r[j * k + j] >= 0.0);
                for i in j + 1..k {
                    assert_eq!(l.state.r[j * k + i], 0.0);
                }
            }
        }
    }
}
