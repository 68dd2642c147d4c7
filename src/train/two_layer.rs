//! Online SGD for the K-unit two-layer denoisers (SPEC §2.5 (ii), (iii)): learning rate η_W = d·η on
//! W (and V), η_W/d² on c; optionally spherical (every column kept at norm √d).

use super::single::EvalAccumulator;
use super::{Learner, LearnerState, weights_from_f64, weights_to_f64};
use crate::model::{GaussianSurrogate, MixedCumulantModel};
use crate::net::two_layer::{TwoLayer, TwoLayerGradient, TwoLayerReal, TwoLayerScratch, Tying};
use crate::observe::EvalLosses;
use crate::rng::ScalarRng;
use diffexp_kernels::{NormalRng, blas1, fused};
use std::sync::Arc;

/// One walker of a two-layer denoiser.
pub struct TwoLayerLearner<T: TwoLayerReal> {
    model: Arc<MixedCumulantModel<T>>,
    surrogate: Arc<GaussianSurrogate<T>>,
    pub net: TwoLayer<T>,
    a_values: Vec<f64>,
    /// η_W (per step, batch scaling included).
    eta_w: f64,
    spherical: bool,
    batch: usize,
    /// d×B clean samples while drawing, then the residuals c x_t − x the gradient starts from.
    x: Vec<T>,
    xt: Vec<T>,
    scratch: TwoLayerScratch<T>,
    grad: TwoLayerGradient<T>,
    normals: NormalRng,
    latent: ScalarRng,
    eval_seed: u64,
    evals_done: u64,
}

/// How a two-layer walker is built.
pub struct TwoLayerSetup {
    pub net: crate::net::Activation,
    pub tying: Tying,
    pub units: usize,
    pub c0: f64,
    pub a_values: Vec<f64>,
    /// Per-step rate for a unit-norm direction, η; the weights use η_W = d·η (SPEC §2.5 step-size map).
    pub eta: f64,
    pub spherical: bool,
    pub batch: usize,
    pub init_seed: u64,
    pub data_seed: u64,
    pub latent_seed: u64,
    pub eval_seed: u64,
}

impl<T: TwoLayerReal> TwoLayerLearner<T> {
    pub fn new(model: Arc<MixedCumulantModel<T>>, surrogate: Arc<GaussianSurrogate<T>>, st: TwoLayerSetup) -> Self {
        let d = model.dim();
        let k = st.units;
        let mut init = NormalRng::from_seed(st.init_seed);
        let mut w = vec![T::default(); d * k];
        init.fill(&mut w);
        let mut v = Vec::new();
        if st.tying == Tying::Untied {
            v = vec![T::default(); d * k];
            init.fill(&mut v);
        }
        let net = TwoLayer { d, k, activation: st.net, tying: st.tying, w, v, c: st.c0 };
        let mut me = Self {
            grad: net.zero_gradient(),
            net,
            a_values: st.a_values,
            eta_w: st.eta * d as f64,
            spherical: st.spherical,
            batch: st.batch,
            x: vec![T::default(); d * st.batch],
            xt: vec![T::default(); d * st.batch],
            scratch: TwoLayerScratch::new(d, k, st.batch),
            normals: NormalRng::from_seed(st.data_seed),
            latent: ScalarRng::from_seed(st.latent_seed),
            eval_seed: st.eval_seed,
            evals_done: 0,
            model,
            surrogate,
        };
        if me.spherical {
            me.normalise_columns();
        }
        me
    }

    fn normalise_columns(&mut self) {
        let d = self.net.d;
        let sd = (d as f64).sqrt();
        for col in self.net.w.chunks_mut(d) {
            let n = blas1::nrm2_sq(col).sqrt();
            blas1::scale(sd / n, col);
        }
    }

    /// Draws the batch: per sample one fused pass for the shifted bulk x' = z + Σ c e and the noise ξ
    /// (with ⟨v, x'⟩), then one pass ([`fused::mix_pair`]) for x_t and the residual c x_t − x, the
    /// whitening x = x' − κv folded into both — two passes over one sample, the second in cache.
    fn draw_batch(&mut self) {
        let d = self.net.d;
        let model = Arc::clone(&self.model);
        let sp = &model.spikes;
        let (c_s, gvv, gvm, gvu) = (model.c_s, sp.gram[2][2], sp.gram[2][0], sp.gram[2][1]);
        for j in 0..self.batch {
            let a = super::single::draw_level(&self.a_values, &mut self.latent);
            let s = (1.0 - a * a).sqrt();
            let (x, xt) = (&mut self.x[j * d..(j + 1) * d], &mut self.xt[j * d..(j + 1) * d]);
            let sh = model.draw_shift(&mut self.latent);
            let p = fused::draw_pair_and_project(
                &mut self.normals,
                x,
                xt,
                &[(sh.c_m, &sp.m), (sh.c_u, &sp.u), (sh.c_v, &sp.v)],
                [&sp.v],
            );
            // κ = c_S⟨v, z⟩, as in the single-direction step; the clean sample is x = x' − κv.
            let kappa = c_s * (p.x_dot[0] - sh.c_m * gvm - sh.c_u * gvu - sh.c_v * gvv);
            // x_t = sξ + a x' − aκ v, then the residual c x_t − x = c x_t − x' + κ v in x's buffer
            // (only the residual is needed from here on): one pass, x never formed.
            fused::mix_pair(x, xt, &sp.v, [s, a, -a * kappa], [-1.0, self.net.c, kappa]);
        }
    }
}

impl<T: TwoLayerReal> Learner for TwoLayerLearner<T> {
    fn step(&mut self) -> f64 {
        self.draw_batch();
        self.net.gradient_from_residual(&mut self.x, &self.xt, &mut self.scratch, &mut self.grad);
        let d = self.net.d;
        let eta = self.eta_w;
        if self.spherical {
            let sd = (d as f64).sqrt();
            for (w, g) in self.net.w.chunks_mut(d).zip(self.grad.grad_w.chunks_mut(d)) {
                // Tangent projection, step, back to norm √d.
                let proj = blas1::dot(w, g) / blas1::nrm2_sq(w);
                blas1::axpy(-proj, w, g);
                blas1::axpy(-eta, g, w);
                let n = blas1::nrm2_sq(w).sqrt();
                blas1::scale(sd / n, w);
            }
        } else {
            blas1::axpy(-eta, &self.grad.grad_w, &mut self.net.w);
        }
        if self.net.tying == Tying::Untied {
            blas1::axpy(-eta, &self.grad.grad_v, &mut self.net.v);
        }
        self.net.c -= eta / (d as f64 * d as f64) * self.grad.grad_c;
        self.grad.loss
    }

    fn overlaps(&self) -> [f64; 3] {
        let d = self.net.d;
        let sp = &self.model.spikes;
        let mut best = [0.0f64; 3];
        for col in self.net.w.chunks(d) {
            let n = blas1::nrm2_sq(col).sqrt();
            for (i, e) in [&sp.m, &sp.u, &sp.v].into_iter().enumerate() {
                let o = blas1::dot(col, e) / n;
                if o.abs() > best[i].abs() {
                    best[i] = o;
                }
            }
        }
        best
    }

    fn norm(&self) -> f64 {
        let d = self.net.d;
        self.net.w.chunks(d).map(|c| blas1::nrm2_sq(c).sqrt()).sum::<f64>() / (self.net.k as f64 * (d as f64).sqrt())
    }

    fn skip(&self) -> f64 {
        self.net.c
    }

    fn is_finite(&self) -> bool {
        self.net.c.is_finite() && self.net.w.iter().chain(&self.net.v).all(|x| x.to_f64().is_finite())
    }

    fn state(&self) -> LearnerState {
        LearnerState {
            weights: vec![weights_to_f64(&self.net.w), weights_to_f64(&self.net.v)],
            scalars: vec![self.net.c],
            normals: self.normals.state(),
            latent: self.latent.clone(),
            evals_done: self.evals_done,
        }
    }

    fn restore(&mut self, st: &LearnerState) -> Result<(), String> {
        if st.weights.len() != 2 || st.scalars.len() != 1 {
            return Err("checkpoint is not a two-layer walker's".into());
        }
        weights_from_f64(&mut self.net.w, &st.weights[0], "W")?;
        weights_from_f64(&mut self.net.v, &st.weights[1], "V")?;
        self.net.c = st.scalars[0];
        self.normals = NormalRng::from_state(&st.normals)?;
        self.latent = st.latent.clone();
        self.evals_done = st.evals_done;
        Ok(())
    }

    fn evaluate(&mut self, n_eval: usize) -> EvalLosses {
        let d = self.net.d;
        let seed = crate::rng::mix64(self.eval_seed ^ crate::rng::mix64(self.evals_done));
        self.evals_done += 1;
        let mut latent = ScalarRng::from_seed(seed);
        let mut normals = NormalRng::from_seed(crate::rng::mix64(seed));
        let mut sc = TwoLayerScratch::new(d, self.net.k, 1);
        let (mut x, mut xg, mut xi, mut xt) =
            (vec![T::default(); d], vec![T::default(); d], vec![T::default(); d], vec![T::default(); d]);
        let mut acc = EvalAccumulator::default();
        for _ in 0..n_eval {
            // Common random numbers: data and surrogate share their bulk z and the noise ξ.
            self.model.sample_with_surrogate(&self.surrogate, &mut latent, &mut normals, &mut x, &mut xg);
            normals.fill(&mut xi);
            let loss_of = |clean: &[T], xt: &mut [T], sc: &mut TwoLayerScratch<T>| {
                let mut total = 0.0;
                for &a in &self.a_values {
                    let s = (1.0 - a * a).sqrt();
                    for i in 0..d {
                        xt[i] = T::from_f64(a) * clean[i] + T::from_f64(s) * xi[i];
                    }
                    total += self.net.loss(clean, xt, sc);
                }
                total / self.a_values.len() as f64
            };
            let ld = loss_of(&x, &mut xt, &mut sc);
            let ls = loss_of(&xg, &mut xt, &mut sc);
            acc.push(ld, ls);
        }
        acc.finish()
    }
}
