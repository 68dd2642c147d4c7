//! Mode and model collapse (SPEC §4.11): train a fresh DAE on the target, generate, train a fresh DAE
//! on fresh samples of the generated law, and so on. Each training sample of generation g ≥ 2 is a fresh
//! sampler run of generation g − 1 from a fresh X₀.

use super::config::DaeConfig;
use super::generate::{Generated, SamplerSchedule, generate_batch, sample_in_place};
use super::hellinger::{axis_for, hellinger, law_on_axis};
use super::net::Dae;
use super::target::Target;
use super::train::{MemorySink, Trainer, X1Source};
use crate::rng::{ScalarRng, StreamKind};
use anyhow::Result;
use diffexp_kernels::{NormalRng, Real, blas1};
use faer::{Mat, Side};
use std::cell::RefCell;

/// The law of a trained DAE's sampler, as a training source.
pub struct GeneratedLaw {
    pub dae: Dae<f64>,
    pub sched: SamplerSchedule,
    buf: RefCell<Vec<f64>>,
}

impl GeneratedLaw {
    pub fn new(dae: Dae<f64>, sched: SamplerSchedule) -> Self {
        let d = dae.d;
        GeneratedLaw { dae, sched, buf: RefCell::new(vec![0.0; d]) }
    }
}

impl X1Source for GeneratedLaw {
    fn draw<T: Real>(&self, nrng: &mut NormalRng, _srng: &mut ScalarRng, x1: &mut [T], z: &mut [f64]) {
        nrng.fill(z);
        if self.sched.epsilon > 0.0 {
            let mut buf = self.buf.borrow_mut();
            sample_in_place(&self.dae, z, &self.sched, Some((nrng, &mut buf[..])));
        } else {
            sample_in_place(&self.dae, z, &self.sched, None);
        }
        for (o, &v) in x1.iter_mut().zip(z.iter()) {
            *o = T::from_f64(v);
        }
    }
}

/// What one generation produced.
pub struct GenerationReport {
    pub generation: usize,
    pub dae: Dae<f64>,
    pub sink: MemorySink,
    pub samples: Generated,
    /// Hellinger distances of the PC1 and PC2 marginals to ρ's (KDE of the samples).
    pub hellinger_pc: Vec<f64>,
    /// Leading eigenvalues of the generated samples' covariance.
    pub spectrum: Vec<f64>,
    /// Sample variance along a random unit direction ⊥ span(w) and the theory's v.
    pub orth_var: f64,
    pub v_theory: f64,
}

/// A unit vector orthogonal to span(w) and to `extra`, from `rng`.
pub fn orthogonal_direction(w: &[f64], d: usize, r: usize, extra: &[Vec<f64>], rng: &mut ScalarRng) -> Vec<f64> {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for v in (0..r).map(|g| w[g * d..(g + 1) * d].to_vec()).chain(extra.iter().cloned()) {
        let mut x = v;
        for b in &basis {
            let c = blas1::dot(&x, b);
            blas1::axpy(-c, b, &mut x);
        }
        let n = blas1::dot(&x, &x).sqrt();
        if n > 1e-12 {
            x.iter_mut().for_each(|a| *a /= n);
            basis.push(x);
        }
    }
    let mut e: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    for _ in 0..2 {
        for b in &basis {
            let c = blas1::dot(&e, b);
            blas1::axpy(-c, b, &mut e);
        }
    }
    let n = blas1::dot(&e, &e).sqrt();
    e.iter_mut().for_each(|a| *a /= n);
    e
}

/// Eigenvalues (descending) of the sample covariance of `n` d-dimensional rows.
pub fn sample_spectrum(x: &[f64], n: usize, d: usize, top: usize) -> Vec<f64> {
    let mut mean = vec![0.0; d];
    for i in 0..n {
        blas1::axpy(1.0 / n as f64, &x[i * d..(i + 1) * d], &mut mean);
    }
    let xc = Mat::<f64>::from_fn(n, d, |i, j| x[i * d + j] - mean[j]);
    let c = xc.transpose() * &xc;
    let c = Mat::<f64>::from_fn(d, d, |i, j| c[(i, j)] / (n as f64 - 1.0));
    let mut ev = c.self_adjoint_eigenvalues(Side::Lower).unwrap_or_default();
    ev.reverse();
    ev.truncate(top);
    ev
}

/// Runs `cfg.collapse.generations` generations, each trained for ϑ_g.
pub fn run(cfg: &DaeConfig, target: &Target) -> Result<Vec<GenerationReport>> {
    let mut gcfg = cfg.clone();
    gcfg.theta_max = cfg.collapse.theta_g;
    let sched = SamplerSchedule::of(cfg);
    let (d, r) = (cfg.d, cfg.r);
    let pcs = target.principal_components(2);
    let axis = axis_for(&target.plane_law(std::slice::from_ref(&pcs[0])));
    let rho_marg: Vec<Vec<f64>> =
        pcs.iter().map(|e| law_on_axis(&target.plane_law(std::slice::from_ref(e)), axis)).collect();
    let mut reports: Vec<GenerationReport> = Vec::new();
    for g in 1..=cfg.collapse.generations {
        let mut sink = MemorySink::default();
        let out = match reports.last() {
            None => Trainer::<f64>::new(&gcfg, target, g as u64).run_loop(&gcfg, target, target, &mut sink, &[])?,
            Some(prev) => {
                // The trainer takes its fused path from the source, so build it on the generated law.
                let law = GeneratedLaw::new(prev.dae.clone(), sched);
                let (w0, b0) = target.initial_weights(&gcfg);
                Trainer::<f64>::with_weights(&gcfg, &law, &w0, b0, g as u64).run_loop(
                    &gcfg,
                    target,
                    &law,
                    &mut sink,
                    &[],
                )?
            }
        };
        let dae = out.dae;
        let mut orth_rng =
            ScalarRng::from_seed(super::target::stream_seed(cfg, (g as u64) << 32, StreamKind::Evaluation));
        let e_orth = orthogonal_direction(&dae.w, d, r, &[], &mut orth_rng);
        let n = cfg.generate.n_gen;
        let samples = generate_batch(&gcfg, &dae, g as u64, n, &pcs, n, Some(&e_orth));
        let hellinger_pc = (0..2)
            .map(|k| {
                let xs: Vec<f64> = (0..n).map(|i| samples.proj[i * 2 + k]).collect();
                let p = super::generate::kde_1d(&xs, axis);
                hellinger(&p, &rho_marg[k], axis.step(), cfg.hellinger.convention)
            })
            .collect();
        let spectrum = sample_spectrum(&samples.images, n, d, 20);
        let m = samples.orth_samples.iter().sum::<f64>() / n as f64;
        let orth_var = samples.orth_samples.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        let v_theory = sched.orthogonal_variance(dae.b);
        reports.push(GenerationReport {
            generation: g,
            dae,
            sink,
            samples,
            hellinger_pc,
            spectrum,
            orth_var,
            v_theory,
        });
    }
    Ok(reports)
}
