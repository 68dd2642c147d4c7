//! Online projected SGD for the single-direction denoiser (SPEC §2.6), in two fused passes over d.
//!
//! Every scalar of the step (pre-activation, error projection, loss, gradient coefficients) is a
//! function of a handful of inner products, computed once by [`single_direction_terms`]. The full
//! engine gets those inner products from the fused kernels; the reduced engine (SPEC §3) gets them
//! from its low-dimensional coordinates and calls the same function, so the two engines share one
//! update rule.
//!
//! The weight is stored lazily normalised: w = scale·w_raw with scale = 1/‖w_raw‖, so renormalising
//! costs nothing extra — ‖w_raw‖² comes out of the update pass.

use super::{Learner, LearnerState, weights_from_f64, weights_to_f64};
use crate::model::{GaussianSurrogate, MixedCumulantModel};
use crate::net::SingleDirection;
use crate::observe::EvalLosses;
use crate::rng::ScalarRng;
use diffexp_kernels::{AlignedVec, NormalRng, Real, blas1, fused};
use std::ops::{Add, Mul, Neg, Sub};
use std::sync::Arc;

/// Arithmetic the step's scalar algebra runs on: `f64`, or several walkers' values side by side
/// (the reduced engine's SIMD lanes, `reduced::lanes`). Only IEEE operations (no fused
/// multiply-add), so every lane gets the bits the `f64` instantiation would.
pub trait StepScalar: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Neg<Output = Self> {
    fn splat(x: f64) -> Self;
}

impl StepScalar for f64 {
    #[inline(always)]
    fn splat(x: f64) -> Self {
        x
    }
}

/// Inner products of one (clean sample x, noise ξ) pair with the unit weight w.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairGram<S = f64> {
    pub wx: S,
    pub wxi: S,
    pub xx: S,
    pub xixi: S,
    pub xxi: S,
}

/// What one pair contributes: ∇_w ℓ = coef_x·x + coef_xi·ξ + coef_w·w (SPEC §2.5 (i)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairTerms<S = f64> {
    pub h: S,
    pub loss: S,
    /// ∂_b ℓ = σ(h)π.
    pub grad_b: S,
    pub coef_x: S,
    pub coef_xi: S,
    pub coef_w: S,
    /// ⟨w, ∇_w ℓ⟩.
    pub w_dot_grad: S,
}

/// σ and σ' evaluated on a [`StepScalar`].
pub trait Sigma<S> {
    fn value_and_derivative(&self, h: S) -> (S, S);
}

impl Sigma<f64> for crate::net::Activation {
    #[inline(always)]
    fn value_and_derivative(&self, h: f64) -> (f64, f64) {
        crate::net::Activation::value_and_derivative(*self, h)
    }
}

/// The step's scalar algebra for a unit w and x_t = a x + s ξ:
/// h = ⟨w,x_t⟩, e = a x_t + bσ(h)w − x, π = ⟨w,e⟩, ∇ = bσ e + bσ'π x_t.
#[inline]
pub fn single_direction_terms(net: &SingleDirection, a: f64, s: f64, g: &PairGram) -> PairTerms {
    single_direction_terms_with(net.b, a, s, g, &net.activation)
}

/// [`single_direction_terms`] for any [`StepScalar`] and any implementation of σ (the one
/// definition of the update rule; the `f64` instantiation above is what both engines call per walker).
#[inline(always)]
pub fn single_direction_terms_with<S: StepScalar, A: Sigma<S>>(
    b: S,
    a: S,
    s: S,
    g: &PairGram<S>,
    act: &A,
) -> PairTerms<S> {
    let h = a * g.wx + s * g.wxi;
    let (sig, dsig) = act.value_and_derivative(h);
    let xtxt = a * a * g.xx + S::splat(2.0) * a * s * g.xxi + s * s * g.xixi;
    let x_xt = a * g.xx + s * g.xxi;
    let pi = a * h + b * sig - g.wx;
    // ∇ = c1 x_t + c2 w + c3 x
    let c1 = a * b * sig + b * dsig * pi;
    let c2 = b * b * sig * sig;
    let c3 = -b * sig;
    let loss = S::splat(0.5)
        * (a * a * xtxt + c2 + g.xx + S::splat(2.0) * a * b * sig * h
            - S::splat(2.0) * a * x_xt
            - S::splat(2.0) * b * sig * g.wx);
    PairTerms {
        h,
        loss,
        grad_b: sig * pi,
        coef_x: c1 * a + c3,
        coef_xi: c1 * s,
        coef_w: c2,
        w_dot_grad: c1 * h + c2 + c3 * g.wx,
    }
}

/// From this d on, a batch-1 single-level walker runs its step as one merged pass over d (update of the
/// previous step, then the fresh pair) instead of a draw pass and an update pass. The merged pass
/// reads and writes w, x and ξ once instead of twice; once it also draws each next pair between the
/// work on the current one (`fused`'s `Ahead::draw_after`), it is the faster step at every d
/// measured. On AMD Zen 4 (AVX-512, f32; `bench --only step`, two rounds alternating the builds),
/// ns per step, two passes vs merged: 814–818 vs 743–760 at d = 512, 1089–1119 vs 992–1077 at 768,
/// 1527–1637 vs 1372–1408 at 10³, 12044–12992 vs 10841–11188 at 10⁴. (Before that change, on Intel,
/// the two were within 3 % of each other below d = 16384, where the threshold then stood.)
pub const MERGED_MIN_DIM: usize = 512;

/// In merged mode, the pass measures the updated weight's norm and overlaps once every this many
/// steps; in between the step carries them forward from the pass's inner products
/// ([`fused::update_and_draw`] with `measure_w` false), which saves four of the pass's fifteen sums.
/// What the carried values miss is the f32 rounding of the stored weight, which each measurement
/// resets: at d = 10⁵ the carried ‖w‖² stayed within 0.3–7·10⁻⁸ relative of the stored weight's over
/// two periods, as close as right after a measuring pass.
pub const W_REFRESH_STEPS: u32 = 64;

/// The noise level of one sample: the only one, or one drawn uniformly from the latent stream.
pub(super) fn draw_level(a_values: &[f64], latent: &mut ScalarRng) -> f64 {
    if a_values.len() == 1 { a_values[0] } else { a_values[latent.below(a_values.len() as u64) as usize] }
}

/// w_raw ← alpha·w_raw + cx·x' + cxi·ξ + cv·v, with (x', ξ) the pair in the walker's buffers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PendingUpdate {
    alpha: f64,
    cx: f64,
    cxi: f64,
    cv: f64,
}

/// The raw weight's squared norm and projections on (m, u, v), formed without a pass over d.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CarriedSums {
    ww: f64,
    dots: [f64; 3],
}

/// Training state and buffers of one walker of the single-direction denoiser.
pub struct SingleDirectionLearner<T: Real> {
    model: Arc<MixedCumulantModel<T>>,
    surrogate: Arc<GaussianSurrogate<T>>,
    pub net: SingleDirection,
    /// Noise levels a; `level_sum` sums the loss over all of them, else one is drawn per sample.
    a_values: Vec<f64>,
    level_sum: bool,
    eta: f64,
    eta_b: f64,
    train_b: bool,
    batch: usize,
    /// The walker's d-length vectors start on cache lines (see [`AlignedVec`]).
    w_raw: AlignedVec<T>,
    scale: f64,
    /// Signed overlaps of the unit w with (m, u, v).
    overlaps: [f64; 3],
    /// Per batch sample: x' = z + c_m m + c_u u + c_v v (before the whitening correction).
    xs: Vec<AlignedVec<T>>,
    /// Per (batch sample, level): ξ.
    xis: Vec<AlignedVec<T>>,
    /// Per batch sample and per ξ: the update's coefficients (kept to avoid allocating per step).
    coef_x: Vec<f64>,
    coef_xi: Vec<f64>,
    /// One pass per step ([`fused::update_and_draw`]) instead of two; see [`MERGED_MIN_DIM`].
    merged: bool,
    /// Merged mode: the last step's update, not yet applied to `w_raw` (the next step's pass applies
    /// it while `xs[0]` and `xis[0]` still hold that step's pair). `scale` and `overlaps` already
    /// describe the updated weight.
    pending: Option<PendingUpdate>,
    /// Merged mode: ‖w‖² and ⟨w, (m, u, v)⟩ of the raw weight the next pass produces, carried
    /// forward from the last pass's inner products.
    carried: CarriedSums,
    /// Merged mode: passes since the last one that measured those sums. The pass after
    /// [`W_REFRESH_STEPS`] − 1 of them measures again, and so does a fresh walker's first.
    unmeasured: u32,
    normals: NormalRng,
    latent: ScalarRng,
    eval_seed: u64,
    evals_done: u64,
}

/// How a walker is built: everything but the shared model.
pub struct SingleDirectionSetup {
    pub net: SingleDirection,
    pub a_values: Vec<f64>,
    pub level_sum: bool,
    /// Per-step rate (already scaled for the batch).
    pub eta: f64,
    pub eta_b: f64,
    pub train_b: bool,
    pub batch: usize,
    pub init_seed: u64,
    pub data_seed: u64,
    pub latent_seed: u64,
    pub eval_seed: u64,
}

impl<T: Real> SingleDirectionLearner<T> {
    pub fn new(
        model: Arc<MixedCumulantModel<T>>,
        surrogate: Arc<GaussianSurrogate<T>>,
        setup: SingleDirectionSetup,
    ) -> Self {
        let d = model.dim();
        // w₀ uniform on S^{d−1}.
        let mut w_raw = AlignedVec::zeros(d);
        NormalRng::from_seed(setup.init_seed).fill(&mut w_raw);
        let levels = if setup.level_sum { setup.a_values.len() } else { 1 };
        let mut me = Self {
            net: setup.net,
            a_values: setup.a_values,
            level_sum: setup.level_sum,
            eta: setup.eta,
            eta_b: setup.eta_b,
            train_b: setup.train_b,
            batch: setup.batch,
            w_raw,
            scale: 1.0,
            overlaps: [0.0; 3],
            xs: (0..setup.batch).map(|_| AlignedVec::zeros(d)).collect(),
            xis: (0..setup.batch * levels).map(|_| AlignedVec::zeros(d)).collect(),
            coef_x: vec![0.0; setup.batch],
            coef_xi: vec![0.0; setup.batch * levels],
            merged: setup.batch == 1 && levels == 1 && d >= MERGED_MIN_DIM,
            pending: None,
            carried: CarriedSums::default(),
            unmeasured: W_REFRESH_STEPS - 1,
            normals: NormalRng::from_seed(setup.data_seed),
            latent: ScalarRng::from_seed(setup.latent_seed),
            eval_seed: setup.eval_seed,
            evals_done: 0,
            model,
            surrogate,
        };
        me.refresh_projections();
        me
    }

    /// Recomputes scale and overlaps from w_raw directly.
    fn refresh_projections(&mut self) {
        let s = &self.model.spikes;
        self.scale = 1.0 / blas1::nrm2_sq(&self.w_raw).sqrt();
        self.overlaps = [blas1::dot(&self.w_raw, &s.m), blas1::dot(&self.w_raw, &s.u), blas1::dot(&self.w_raw, &s.v)]
            .map(|x| x * self.scale);
    }

    /// The unit weight w (allocates; for inspection and tests).
    pub fn weight(&self) -> Vec<f64> {
        self.current_raw().iter().map(|&x| x.to_f64() * self.scale).collect()
    }

    /// The raw weight with any pending update applied — the bits the next pass will produce.
    fn current_raw(&self) -> std::borrow::Cow<'_, [T]> {
        match self.pending {
            None => std::borrow::Cow::Borrowed(&self.w_raw[..]),
            Some(u) => {
                let mut w = self.w_raw.to_vec();
                let terms = [(u.cx, &self.xs[0][..]), (u.cxi, &self.xis[0][..]), (u.cv, &self.model.spikes.v[..])];
                fused::combine_and_project::<T, 0>(&mut w, u.alpha, &terms, []);
                std::borrow::Cow::Owned(w)
            }
        }
    }

    /// The batch-1, single-level step as one pass over d (SPEC §2.6, the same update as the
    /// two-pass step): the pass applies the previous step's update and draws this step's pair; this
    /// step's update is kept pending, and the updated weight's overlaps and norm are formed from the
    /// pass's inner products. Every [`W_REFRESH_STEPS`] steps the pass measures them exactly.
    fn step_merged(&mut self) -> f64 {
        let model = &*self.model;
        let sp = &model.spikes;
        let (c_s, gvv, gvm, gvu) = (model.c_s, sp.gram[2][2], sp.gram[2][0], sp.gram[2][1]);
        let u = self.pending.take().unwrap_or(PendingUpdate { alpha: 1.0, cx: 0.0, cxi: 0.0, cv: 0.0 });
        let sh = model.draw_shift(&mut self.latent);
        let a = draw_level(&self.a_values, &mut self.latent);
        let r = fused::update_and_draw(
            &mut self.normals,
            &mut self.w_raw,
            u.alpha,
            (u.cx, u.cxi),
            &[(u.cv, &sp.v)],
            &mut self.xs[0],
            &mut self.xis[0],
            &[(sh.c_m, &sp.m), (sh.c_u, &sp.u), (sh.c_v, &sp.v)],
            [&sp.m, &sp.u, &sp.v],
            self.unmeasured + 1 >= W_REFRESH_STEPS,
        );
        // The current weight's norm and projections: measured by the pass, or carried forward.
        let now = match r.w {
            Some(m) => {
                self.unmeasured = 0;
                CarriedSums { ww: m.ww, dots: m.w_dot }
            }
            None => {
                self.unmeasured += 1;
                self.carried
            }
        };
        let scale = 1.0 / now.ww.sqrt();
        let wv = now.dots[2] * scale;
        let p = &r.pair;
        let vz = p.x_dot[2] - sh.c_m * gvm - sh.c_u * gvu - sh.c_v * gvv;
        let kappa = c_s * vz;
        let g = PairGram {
            wx: r.wx * scale - kappa * wv,
            wxi: r.wxi * scale,
            xx: p.xx - 2.0 * kappa * p.x_dot[2] + kappa * kappa * gvv,
            xixi: p.xixi,
            xxi: p.xxi - kappa * p.xi_dot[2],
        };
        let t = single_direction_terms(&self.net, a, (1.0 - a * a).sqrt(), &g);
        // w − η g with g = ∇ − ⟨w,∇⟩w, on x = x' − κv and w = scale·w_raw.
        let eta = self.eta;
        let next = PendingUpdate {
            alpha: scale * (1.0 - eta * (t.coef_w - t.w_dot_grad)),
            cx: -eta * t.coef_x,
            cxi: -eta * t.coef_xi,
            cv: eta * t.coef_x * kappa,
        };
        // Overlaps and norm of the updated raw weight from the pass's inner products.
        let (al, cx, cxi, cv) = (next.alpha, next.cx, next.cxi, next.cv);
        let dots: [f64; 3] =
            std::array::from_fn(|e| al * now.dots[e] + cx * p.x_dot[e] + cxi * p.xi_dot[e] + cv * sp.gram[2][e]);
        let n2 = al * al * now.ww
            + cx * cx * p.xx
            + cxi * cxi * p.xixi
            + cv * cv * gvv
            + 2.0
                * (al * cx * r.wx
                    + al * cxi * r.wxi
                    + al * cv * now.dots[2]
                    + cx * cxi * p.xxi
                    + cx * cv * p.x_dot[2]
                    + cxi * cv * p.xi_dot[2]);
        self.scale = 1.0 / n2.sqrt();
        self.overlaps = dots.map(|x| x * self.scale);
        self.carried = CarriedSums { ww: n2, dots };
        self.pending = Some(next);
        if self.train_b {
            self.net.b -= self.eta_b * t.grad_b;
        }
        t.loss
    }
}

impl<T: Real> Learner for SingleDirectionLearner<T> {
    fn step(&mut self) -> f64 {
        if self.merged {
            return self.step_merged();
        }
        // Borrowed field by field: the model is read while the walker's buffers are written.
        let model = &*self.model;
        let sp = &model.spikes;
        let (c_s, gvv, gvm, gvu) = (model.c_s, sp.gram[2][2], sp.gram[2][0], sp.gram[2][1]);
        let wv = self.overlaps[2];
        let weight = 1.0 / self.batch as f64;
        let nlev = if self.level_sum { self.a_values.len() } else { 1 };
        // Accumulated over the batch: coefficients on w and v, loss, ∂_b; per-vector coefficients in
        // buffers kept across steps (the step allocates nothing).
        let (mut cw, mut cv, mut loss, mut gb) = (0.0, 0.0, 0.0, 0.0);
        let (coef_x, coef_xi) = (&mut self.coef_x, &mut self.coef_xi);
        coef_x.fill(0.0);
        #[allow(clippy::needless_range_loop)] // j indexes the samples' buffers and coefficients alike
        for j in 0..self.batch {
            let sh = model.draw_shift(&mut self.latent);
            let a0 = if self.level_sum { self.a_values[0] } else { draw_level(&self.a_values, &mut self.latent) };
            let p = fused::draw_pair_and_project(
                &mut self.normals,
                &mut self.xs[j],
                &mut self.xis[j * nlev],
                &[(sh.c_m, &sp.m), (sh.c_u, &sp.u), (sh.c_v, &sp.v)],
                [&self.w_raw, &sp.v],
            );
            // Whitening: x = x' − κ v with κ = c_S⟨v, z⟩.
            let vz = p.x_dot[1] - sh.c_m * gvm - sh.c_u * gvu - sh.c_v * gvv;
            let kappa = c_s * vz;
            let wx = p.x_dot[0] * self.scale - kappa * wv;
            let xx = p.xx - 2.0 * kappa * p.x_dot[1] + kappa * kappa * gvv;
            let net = &self.net;
            let pair = |a: f64, wxi: f64, vxi: f64, xixi: f64, xpxi: f64| {
                let s = (1.0 - a * a).sqrt();
                let g = PairGram { wx, wxi, xx, xixi, xxi: xpxi - kappa * vxi };
                single_direction_terms(net, a, s, &g)
            };
            let mut add = |t: PairTerms, xi_slot: usize, cw: &mut f64, cv: &mut f64| {
                loss += weight * t.loss;
                gb += weight * t.grad_b;
                *cw += weight * (t.coef_w - t.w_dot_grad);
                coef_x[j] += weight * t.coef_x;
                *cv -= weight * t.coef_x * kappa;
                coef_xi[xi_slot] = weight * t.coef_xi;
            };
            let t = pair(a0, p.xi_dot[0] * self.scale, p.xi_dot[1], p.xixi, p.xxi);
            add(t, j * nlev, &mut cw, &mut cv);
            for l in 1..nlev {
                let slot = j * nlev + l;
                self.normals.fill(&mut self.xis[slot]);
                let xi = &self.xis[slot];
                let (wxi, vxi) = (blas1::dot(&self.w_raw, xi) * self.scale, blas1::dot(&sp.v, xi));
                let (xixi, xpxi) = (blas1::nrm2_sq(xi), blas1::dot(&self.xs[j], xi));
                let t = pair(self.a_values[l], wxi, vxi, xixi, xpxi);
                add(t, slot, &mut cw, &mut cv);
            }
        }
        // w − η g with g = ∇ − ⟨w,∇⟩w; in raw storage w = scale·w_raw. The update's terms are the
        // samples, the noises, then v; they are applied MAX_FUSED_TERMS at a time (the first call
        // scales, the others multiply by 1, exactly), which is bit for bit the single combination.
        let eta = self.eta;
        let n_terms = self.batch + self.xis.len() + 1;
        let term = |i: usize| -> (f64, &[T]) {
            if i < self.batch {
                (-eta * self.coef_x[i], &self.xs[i])
            } else if i < n_terms - 1 {
                (-eta * self.coef_xi[i - self.batch], &self.xis[i - self.batch])
            } else {
                (-eta * cv, &sp.v)
            }
        };
        let mut alpha = self.scale * (1.0 - eta * cw);
        let mut from = 0;
        let (dots, n2) = loop {
            let to = (from + fused::MAX_FUSED_TERMS).min(n_terms);
            // Filled by a loop: `array::from_fn` here compiled to an out-of-line call per entry,
            // each result read back through a stalled store-to-load forward (perf, d = 10³).
            let mut chunk: [(f64, &[T]); fused::MAX_FUSED_TERMS] = [(0.0, &sp.v[..]); fused::MAX_FUSED_TERMS];
            for (k, c) in chunk[..to - from].iter_mut().enumerate() {
                *c = term(from + k);
            }
            let chunk = &chunk[..to - from];
            if to == n_terms {
                break fused::combine_and_project(&mut self.w_raw, alpha, chunk, [&sp.m, &sp.u, &sp.v]);
            }
            fused::combine_and_project::<T, 0>(&mut self.w_raw, alpha, chunk, []);
            alpha = 1.0;
            from = to;
        };
        self.scale = 1.0 / n2.sqrt();
        self.overlaps = dots.map(|x| x * self.scale);
        if self.train_b {
            self.net.b -= self.eta_b * gb;
        }
        loss
    }

    fn overlaps(&self) -> [f64; 3] {
        self.overlaps
    }

    fn norm(&self) -> f64 {
        1.0
    }

    fn skip(&self) -> f64 {
        self.net.b
    }

    fn is_finite(&self) -> bool {
        self.scale.is_finite() && self.overlaps.iter().all(|x| x.is_finite()) && self.net.b.is_finite()
    }

    fn state(&self) -> LearnerState {
        let mut scalars = vec![self.net.b, self.scale];
        scalars.extend(self.overlaps);
        // Merged mode's carried sums and refresh count, so that a restored walker carries the same
        // values forward and measures at the same steps.
        scalars.push(self.carried.ww);
        scalars.extend(self.carried.dots);
        scalars.push(f64::from(self.unmeasured));
        // The pending update is applied to the saved weight: a restored walker starts with none, and
        // its next pass computes the same bits as the uninterrupted one's.
        LearnerState {
            weights: vec![weights_to_f64(&self.current_raw())],
            scalars,
            normals: self.normals.state(),
            latent: self.latent.clone(),
            evals_done: self.evals_done,
        }
    }

    fn restore(&mut self, st: &LearnerState) -> Result<(), String> {
        // Five scalars: a checkpoint written before the carried sums; its next pass measures them.
        if st.weights.len() != 1 || !matches!(st.scalars.len(), 5 | 10) {
            return Err("checkpoint is not a single-direction walker's".into());
        }
        weights_from_f64(&mut self.w_raw, &st.weights[0], "w")?;
        self.pending = None;
        self.net.b = st.scalars[0];
        self.scale = st.scalars[1];
        self.overlaps = [st.scalars[2], st.scalars[3], st.scalars[4]];
        (self.carried, self.unmeasured) = match st.scalars[5..] {
            [ww, m, u, v, n] if n >= 0.0 && n < f64::from(W_REFRESH_STEPS) && n.fract() == 0.0 => {
                (CarriedSums { ww, dots: [m, u, v] }, n as u32)
            }
            [] => (CarriedSums::default(), W_REFRESH_STEPS - 1),
            _ => {
                return Err(format!(
                    "checkpoint's count of passes since the last measured one must be an integer in 0..{W_REFRESH_STEPS}"
                ));
            }
        };
        self.normals = NormalRng::from_state(&st.normals)?;
        self.latent = st.latent.clone();
        self.evals_done = st.evals_done;
        Ok(())
    }

    fn evaluate(&mut self, n_eval: usize) -> EvalLosses {
        let d = self.model.dim();
        let seed = crate::rng::mix64(self.eval_seed ^ crate::rng::mix64(self.evals_done));
        self.evals_done += 1;
        let mut latent = ScalarRng::from_seed(seed);
        let mut normals = NormalRng::from_seed(crate::rng::mix64(seed));
        let (mut x, mut xg, mut xi) = (vec![T::default(); d], vec![T::default(); d], vec![T::default(); d]);
        let mut acc = EvalAccumulator::default();
        let wn = self.scale;
        let w_raw = self.current_raw();
        for _ in 0..n_eval {
            // Common random numbers: the data and surrogate samples share their bulk z and the noise ξ.
            self.model.sample_with_surrogate(&self.surrogate, &mut latent, &mut normals, &mut x, &mut xg);
            normals.fill(&mut xi);
            let (wxi, xixi) = (blas1::dot(&w_raw, &xi) * wn, blas1::nrm2_sq(&xi));
            let pair_loss = |v: &[T]| {
                let g = PairGram {
                    wx: blas1::dot(&w_raw, v) * wn,
                    wxi,
                    xx: blas1::nrm2_sq(v),
                    xixi,
                    xxi: blas1::dot(v, &xi),
                };
                // Average over the level set (one level: just that level).
                self.a_values
                    .iter()
                    .map(|&a| single_direction_terms(&self.net, a, (1.0 - a * a).sqrt(), &g).loss)
                    .sum::<f64>()
                    / self.a_values.len() as f64
            };
            let (ld, ls) = (pair_loss(&x), pair_loss(&xg));
            acc.push(ld, ls);
        }
        acc.finish()
    }
}

/// Running means and standard errors of (L_data, L_surr, ΔL) over paired evaluation samples.
#[derive(Default)]
pub struct EvalAccumulator {
    n: f64,
    sum: [f64; 3],
    sum_sq: [f64; 3],
}

impl EvalAccumulator {
    pub fn push(&mut self, data: f64, surr: f64) {
        let v = [data, surr, surr - data];
        self.n += 1.0;
        for ((s, sq), x) in self.sum.iter_mut().zip(&mut self.sum_sq).zip(v) {
            *s += x;
            *sq += x * x;
        }
    }

    pub fn finish(&self) -> EvalLosses {
        let n = self.n;
        let mean = self.sum.map(|s| s / n);
        let se: Vec<f64> =
            (0..3).map(|i| ((self.sum_sq[i] / n - mean[i] * mean[i]).max(0.0) / (n - 1.0).max(1.0)).sqrt()).collect();
        EvalLosses {
            data: mean[0],
            surrogate: mean[1],
            gap: mean[2],
            data_se: se[0],
            surrogate_se: se[1],
            gap_se: se[2],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coupling, McmParams, NuLaw, SpikeLayout, Spikes};
    use crate::net::Activation;

    fn setup(batch: usize, train_b: bool, act: Activation) -> SingleDirectionSetup {
        SingleDirectionSetup {
            net: SingleDirection { activation: act, b: 1.0 },
            a_values: vec![0.5f64.sqrt()],
            level_sum: false,
            eta: 0.05,
            eta_b: 0.05,
            train_b,
            batch,
            init_seed: 1,
            data_seed: 2,
            latent_seed: 3,
            eval_seed: 4,
        }
    }

    fn model<T: Real>(d: usize, coupling: Coupling) -> Arc<MixedCumulantModel<T>> {
        let params = McmParams { beta_m: 0.5, beta_u: 3.0, beta_v: 6.0, nu_law: NuLaw::Rademacher, coupling };
        Arc::new(MixedCumulantModel::new(
            params,
            Spikes::draw(d, SpikeLayout::Orthonormal, &mut ScalarRng::from_seed(9)),
        ))
    }

    /// The fused step equals the reference: sample with the model's O(d) sampler, apply
    /// `SingleDirection::gradient`, project on the tangent space, renormalise (SPEC §2.6).
    #[test]
    fn fused_step_matches_reference_update() {
        // d ≥ MERGED_MIN_DIM takes the one-pass step with its pending update.
        let big = MERGED_MIN_DIM + 3;
        for (d, batch, train_b, act, coupling) in [
            (37, 1, false, Activation::Tanh, Coupling::Independent),
            (37, 1, true, Activation::Relu, Coupling::Sign),
            (37, 3, true, Activation::Erf, Coupling::Odd),
            (big, 1, true, Activation::Tanh, Coupling::Sign),
            (big, 1, false, Activation::Erf, Coupling::Independent),
        ] {
            let m = model::<f64>(d, coupling);
            let sur = Arc::new(m.surrogate());
            let mut fast = SingleDirectionLearner::new(Arc::clone(&m), sur, setup(batch, train_b, act));
            // Reference: replay the same random streams.
            let st = setup(batch, train_b, act);
            let mut normals = NormalRng::from_seed(st.data_seed);
            let mut latent = ScalarRng::from_seed(st.latent_seed);
            let mut w = fast.weight();
            let mut b = 1.0;
            let a = st.a_values[0];
            let s = (1.0 - a * a).sqrt();
            for _ in 0..20 {
                let mut grad = vec![0.0; d];
                let mut gb = 0.0;
                let mut loss = 0.0;
                for _ in 0..batch {
                    let sh = m.draw_shift(&mut latent);
                    let (mut x, mut xi) = (vec![0.0f64; d], vec![0.0f64; d]);
                    // The fused pass's stream layout: x's and ξ's 32-normal blocks alternate.
                    diffexp_kernels::reference::draw_pair_and_project::<f64, 0>(&mut normals, &mut x, &mut xi, &[], []);
                    m.apply_shift(&sh, &mut x);
                    let xt: Vec<f64> = x.iter().zip(&xi).map(|(a_, b_)| a * a_ + s * b_).collect();
                    let net = SingleDirection { activation: act, b };
                    let g = net.gradient(&w, &x, &xt, a);
                    for (gi, &x) in grad.iter_mut().zip(&g.grad_w) {
                        *gi += x / batch as f64;
                    }
                    gb += g.grad_b / batch as f64;
                    loss += g.loss / batch as f64;
                }
                let wg: f64 = w.iter().zip(&grad).map(|(a_, b_)| a_ * b_).sum();
                let mut wn: Vec<f64> = (0..d).map(|i| w[i] - st.eta * (grad[i] - wg * w[i])).collect();
                let n = wn.iter().map(|x| x * x).sum::<f64>().sqrt();
                wn.iter_mut().for_each(|x| *x /= n);
                w = wn;
                if train_b {
                    b -= st.eta_b * gb;
                }
                let fast_loss = fast.step();
                assert!((fast_loss - loss).abs() < 1e-10 * (1.0 + loss.abs()), "loss {fast_loss} vs {loss}");
            }
            let fw = fast.weight();
            let err = fw.iter().zip(&w).map(|(a_, b_)| (a_ - b_).abs()).fold(0.0, f64::max);
            assert!(err < 1e-11, "batch {batch} {act}: max |Δw| = {err}");
            assert!((fast.net.b - b).abs() < 1e-11);
            // SPEC §7 item 18: ‖w‖ = 1 after every step.
            assert!((fw.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
            let ov = fast.overlaps();
            for (e, spike) in [&m.spikes.m, &m.spikes.u, &m.spikes.v].into_iter().enumerate() {
                let direct: f64 = fw.iter().zip(spike).map(|(a_, b_)| a_ * b_).sum();
                assert!((ov[e] - direct).abs() < 1e-12, "d={d}: overlap {e} {} vs {direct}", ov[e]);
            }
        }
    }

    /// An f32 walker in merged one-pass mode (d just above MERGED_MIN_DIM), its model and surrogate.
    #[allow(clippy::type_complexity)]
    fn merged_walker() -> (Arc<MixedCumulantModel<f32>>, Arc<GaussianSurrogate<f32>>, SingleDirectionLearner<f32>) {
        let m = model::<f32>(MERGED_MIN_DIM + 100, Coupling::Sign);
        let sur = Arc::new(m.surrogate());
        let a = SingleDirectionLearner::new(Arc::clone(&m), Arc::clone(&sur), setup(1, true, Activation::Tanh));
        assert!(a.merged);
        (m, sur, a)
    }

    /// A walker restored from a checkpoint taken with an update pending (merged one-pass mode)
    /// continues bit-identically, and its reported overlaps are those of its weight.
    #[test]
    fn merged_mode_checkpoint_restore_continues_identically() {
        let (m, sur, mut a) = merged_walker();
        for _ in 0..30 {
            a.step();
        }
        assert!(a.pending.is_some());
        assert!(a.unmeasured > 0, "the checkpoint falls between two measuring passes");
        let st = a.state();
        let mut b = SingleDirectionLearner::new(Arc::clone(&m), sur, setup(1, true, Activation::Tanh));
        b.restore(&st).unwrap();
        // Across two measuring passes (every W_REFRESH_STEPS steps).
        for _ in 0..2 * W_REFRESH_STEPS + 10 {
            assert_eq!(a.step().to_bits(), b.step().to_bits());
            assert_eq!(a.overlaps().map(f64::to_bits), b.overlaps().map(f64::to_bits));
        }
        assert_eq!(a.state(), b.state());
        // The overlaps formed from the pass's inner products are those of the stored f32 weight.
        let w = a.weight();
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        for (e, spike) in [&m.spikes.m, &m.spikes.u, &m.spikes.v].into_iter().enumerate() {
            let direct: f64 = w.iter().zip(spike).map(|(x, y)| x * y.to_f64()).sum::<f64>() / norm;
            assert!((a.overlaps()[e] - direct).abs() < 1e-6, "overlap {e}: {} vs {direct}", a.overlaps()[e]);
        }
        assert!((norm - 1.0).abs() < 1e-6);
    }

    /// Merged mode carries the weight's norm and overlaps forward between measuring passes; the
    /// carried values stay those of the stored f32 weight, and a pass measures them every
    /// W_REFRESH_STEPS steps.
    #[test]
    fn merged_mode_carried_sums_track_the_stored_weight() {
        let (m, _, mut a) = merged_walker();
        let mut measured_at = Vec::new();
        let mut worst: f64 = 0.0;
        for step in 1..=3 * W_REFRESH_STEPS as usize {
            a.step();
            if a.unmeasured == 0 {
                measured_at.push(step);
            }
            // The weight the next pass produces, against what the walker believes of it.
            let w: Vec<f64> = a.current_raw().iter().map(|x| x.to_f64()).collect();
            let n2: f64 = w.iter().map(|x| x * x).sum();
            worst = worst.max((n2 * a.scale * a.scale - 1.0).abs());
            for (e, spike) in [&m.spikes.m, &m.spikes.u, &m.spikes.v].into_iter().enumerate() {
                let direct = w.iter().zip(spike).map(|(x, y)| x * y.to_f64()).sum::<f64>() * a.scale;
                worst = worst.max((a.overlaps()[e] - direct).abs());
            }
        }
        let every = W_REFRESH_STEPS as usize;
        assert_eq!(measured_at, vec![1, 1 + every, 1 + 2 * every], "measuring passes");
        assert!(worst < 1e-6, "carried norm or overlap off by {worst:e}");
    }

    /// A checkpoint written before the carried sums existed (five scalars) restores, and the next
    /// pass measures; a refresh count out of range is refused.
    #[test]
    fn merged_mode_restores_checkpoints_without_carried_sums() {
        let (m, sur, mut a) = merged_walker();
        for _ in 0..20 {
            a.step();
        }
        let mut old = a.state();
        old.scalars.truncate(5);
        let mut b = SingleDirectionLearner::new(Arc::clone(&m), Arc::clone(&sur), setup(1, true, Activation::Tanh));
        b.restore(&old).unwrap();
        b.step();
        a.step();
        assert_eq!(b.unmeasured, 0, "the first pass after restoring measures");
        for _ in 0..30 {
            a.step();
            b.step();
        }
        for e in 0..3 {
            assert!((a.overlaps()[e] - b.overlaps()[e]).abs() < 1e-6, "overlap {e}");
        }
        for bad in [1.5, -1.0, f64::from(W_REFRESH_STEPS)] {
            let mut st = a.state();
            *st.scalars.last_mut().unwrap() = bad;
            assert!(b.restore(&st).is_err(), "refresh count {bad} accepted");
        }
    }

    /// A restored walker continues bit-identically.
    #[test]
    fn checkpoint_restore_continues_identically() {
        let m = model::<f32>(300, Coupling::Sign);
        let sur = Arc::new(m.surrogate());
        let mut a = SingleDirectionLearner::new(Arc::clone(&m), Arc::clone(&sur), setup(2, true, Activation::Tanh));
        for _ in 0..50 {
            a.step();
        }
        let st = a.state();
        let mut b = SingleDirectionLearner::new(Arc::clone(&m), sur, setup(2, true, Activation::Tanh));
        b.restore(&st).unwrap();
        for _ in 0..50 {
            assert_eq!(a.step().to_bits(), b.step().to_bits());
        }
        assert_eq!(a.state(), b.state());
    }

    /// The f32 engine tracks the f64 engine on the same streams, step by step, on both step paths:
    /// before each step the f64 walker takes the f32 walker's state, so the two differ afterwards
    /// by what f32 rounds in one step. That is bounded by a multiple of 2⁻²⁴ (f32's unit roundoff)
    /// times 1 + the step's size (of order 1 here: with this rate a step moves the unit weight by
    /// 0.5–1.2).
    ///
    /// Over many steps the two walkers drift apart as fast as the dynamics amplify differences:
    /// at d = 2000 with batch 2, and at d = 300, an f64 walker started from its weight rounded to
    /// f32 was 3·10⁻³ and 4·10⁻⁴ from the unrounded one after 200 steps, so a comparison after
    /// many steps would test the dynamics, not the arithmetic.
    #[test]
    fn f32_tracks_f64() {
        let eps = f64::from(f32::EPSILON) / 2.0;
        for (d, batch, merged) in [(2000, 1, true), (2000, 2, false), (300, 1, false)] {
            let m64 = model::<f64>(d, Coupling::Independent);
            let spikes32 = Spikes::<f32> {
                m: m64.spikes.m.iter().map(|&x| x as f32).collect(),
                u: m64.spikes.u.iter().map(|&x| x as f32).collect(),
                v: m64.spikes.v.iter().map(|&x| x as f32).collect(),
                gram: m64.spikes.gram,
            };
            let m32 = Arc::new(MixedCumulantModel::new(m64.params, spikes32));
            let st = || setup(batch, false, Activation::Tanh);
            let mut l64 = SingleDirectionLearner::new(Arc::clone(&m64), Arc::new(m64.surrogate()), st());
            let mut l32 = SingleDirectionLearner::new(Arc::clone(&m32), Arc::new(m32.surrogate()), st());
            assert_eq!((l32.merged, l64.merged), (merged, merged), "d = {d}, batch {batch}: step path");
            let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
            // Worst one-step differences: the weight's and overlaps' in units of eps · (1 + step
            // size), the loss's in units of eps · (1 + |loss|).
            let (mut worst_w, mut worst_overlap, mut worst_loss): (f64, f64, f64) = (0.0, 0.0, 0.0);
            // Across two measuring passes of the merged step.
            for _ in 0..2 * W_REFRESH_STEPS + 22 {
                l64.restore(&l32.state()).unwrap();
                let before = l64.weight();
                let (loss64, loss32) = (l64.step(), l32.step());
                worst_loss = worst_loss.max((loss64 - loss32).abs() / (eps * (1.0 + loss64.abs())));
                let (w64, w32) = (l64.weight(), l32.weight());
                let unit = eps * (1.0 + dist(&w64, &before));
                worst_w = worst_w.max(dist(&w64, &w32) / unit);
                let (a, b) = (l64.overlaps(), l32.overlaps());
                worst_overlap = (0..3).map(|i| (a[i] - b[i]).abs() / unit).fold(worst_overlap, f64::max);
            }
            // Measured: 4.9–17.2 for the weight, 0.23–0.43 for the overlaps, 0.5–1.0 for the loss.
            assert!(worst_loss < 4.0, "d = {d}, batch {batch}: one step moved the loss by {worst_loss:.1} units");
            assert!(worst_w < 50.0, "d = {d}, batch {batch}: one step moved w32 from w64 by {worst_w:.1} units");
            assert!(
                worst_overlap < 2.0,
                "d = {d}, batch {batch}: one step moved an overlap by {worst_overlap:.1} units"
            );
        }
    }
}
