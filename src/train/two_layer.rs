//! Online SGD for the K-unit two-layer denoisers (SPEC §2.5 (ii), (iii)): learning rate η_W = d·η on
//! W (and V), η_W/d² on c; optionally spherical (every column kept at norm √d).

use super::single::EvalAccumulator;
use super::{Learner, LearnerState, weights_from_f64, weights_to_f64};
use crate::model::{GaussianSurrogate, MixedCumulantModel};
use crate::net::two_layer::{
    SplitBatch, SplitSample, SplitScratch, TwoLayer, TwoLayerGradient, TwoLayerReal, TwoLayerScratch, Tying,
};
use crate::observe::EvalLosses;
use crate::rng::ScalarRng;
use diffexp_kernels::{AlignedVec, NormalRng, blas1, fused};
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
    /// d×(2B+1): each sample's shifted bulk x'_j and noise ξ_j side by side, then the spike v
    /// (constant): the sample is x_j = x'_j − κ_j v (SPEC §2.3 whitening), and x_t, the residual and
    /// the error are never formed ([`TwoLayer::gradient_split`]).
    cols: AlignedVec<T>,
    samples: Vec<SplitSample>,
    scratch: SplitScratch<T>,
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
            cols: AlignedVec::zeros(d * (2 * st.batch + 1)),
            samples: vec![SplitSample::default(); st.batch],
            scratch: SplitScratch::new(d, k, st.batch, st.tying),
            normals: NormalRng::from_seed(st.data_seed),
            latent: ScalarRng::from_seed(st.latent_seed),
            eval_seed: st.eval_seed,
            evals_done: 0,
            model,
            surrogate,
        };
        me.cols.as_mut_slice()[2 * st.batch * d..].copy_from_slice(&me.model.spikes.v);
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

    /// Draws the batch: per sample one fused pass for the shifted bulk x' = z + Σ c e and the noise ξ,
    /// with their inner products with each other and with v, then their projections on the units
    /// while both are still in cache.
    fn draw_batch(&mut self) {
        let d = self.net.d;
        let model = Arc::clone(&self.model);
        let sp = &model.spikes;
        let (c_s, gvv, gvm, gvu) = (model.c_s, sp.gram[2][2], sp.gram[2][0], sp.gram[2][1]);
        for j in 0..self.batch {
            let a = super::single::draw_level(&self.a_values, &mut self.latent);
            let sh = model.draw_shift(&mut self.latent);
            let pair = &mut self.cols.as_mut_slice()[2 * j * d..(2 * j + 2) * d];
            let (x, xi) = pair.split_at_mut(d);
            let p = fused::draw_pair_and_project(
                &mut self.normals,
                x,
                xi,
                &[(sh.c_m, &sp.m), (sh.c_u, &sp.u), (sh.c_v, &sp.v)],
                [&sp.v],
            );
            self.samples[j] = SplitSample {
                a,
                s: (1.0 - a * a).sqrt(),
                // κ = c_S⟨v, z⟩, as in the single-direction step.
                kappa: c_s * (p.x_dot[0] - sh.c_m * gvm - sh.c_u * gvu - sh.c_v * gvv),
                uu: p.xx,
                xixi: p.xixi,
                uxi: p.xxi,
                vu: p.x_dot[0],
                vxi: p.xi_dot[0],
            };
            self.net.project_split(&self.cols.as_slice()[2 * j * d..(2 * j + 2) * d], 2 * j, &mut self.scratch);
        }
    }
}

impl<T: TwoLayerReal> Learner for TwoLayerLearner<T> {
    fn step(&mut self) -> f64 {
        self.draw_batch();
        let batch = SplitBatch { cols: self.cols.as_slice(), samples: &self.samples, vv: self.model.spikes.gram[2][2] };
        self.net.gradient_split(&batch, &mut self.scratch, &mut self.grad);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Spikes;
    use crate::net::Activation;

    /// A drawn batch, spelled out as x = x' − κv and x_t = a x + sξ, gives through the explicit
    /// gradient what the learner's split gradient gives (its sums are the batch's own).
    #[test]
    fn drawn_batch_gives_the_explicit_gradient() {
        let d = 300;
        let params = crate::config::Config::default().model.params();
        let model =
            MixedCumulantModel::new(params, Spikes::<f64>::draw(d, Default::default(), &mut ScalarRng::from_seed(3)));
        let surrogate = Arc::new(model.surrogate());
        for (tying, b) in [(Tying::Tied, 3), (Tying::Untied, 5)] {
            let mut l = TwoLayerLearner::new(
                Arc::new(model.clone()),
                Arc::clone(&surrogate),
                TwoLayerSetup {
                    net: Activation::Tanh,
                    tying,
                    units: 3,
                    c0: 0.6,
                    a_values: vec![0.4, 0.8],
                    eta: 0.1 / d as f64,
                    spherical: false,
                    batch: b,
                    init_seed: 1,
                    data_seed: 2,
                    latent_seed: 3,
                    eval_seed: 4,
                },
            );
            l.draw_batch();
            let v = &model.spikes.v;
            let (mut x, mut xt) = (vec![0.0; d * b], vec![0.0; d * b]);
            for (j, sm) in l.samples.iter().enumerate() {
                assert!(l.a_values.contains(&sm.a) && (sm.s - (1.0 - sm.a * sm.a).sqrt()).abs() < 1e-15);
                for i in 0..d {
                    x[j * d + i] = l.cols.as_slice()[2 * j * d + i] - sm.kappa * v[i];
                    xt[j * d + i] = sm.a * x[j * d + i] + sm.s * l.cols.as_slice()[(2 * j + 1) * d + i];
                }
            }
            let mut want = l.net.zero_gradient();
            l.net.gradient_into(&x, &xt, &mut TwoLayerScratch::new(d, 3, b), &mut want);
            let batch = SplitBatch { cols: l.cols.as_slice(), samples: &l.samples, vv: model.spikes.gram[2][2] };
            l.net.gradient_split(&batch, &mut l.scratch, &mut l.grad);
            let scale = want.grad_w.iter().map(|g| g.abs()).fold(0.0, f64::max);
            for (p, q) in l.grad.grad_w.iter().zip(&want.grad_w) {
                assert!((p - q).abs() < 1e-12 * scale, "{tying:?}: ∇_W {p} vs {q}");
            }
            assert!((l.grad.loss - want.loss).abs() < 1e-12 * want.loss);
            assert!((l.grad.grad_c - want.grad_c).abs() < 1e-11 * want.loss);
        }
    }
}
