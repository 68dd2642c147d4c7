//! Online SGD of the DAE (SPEC §4.3) with the summary statistics of §4.4 recorded on the log grid and
//! every d/100 steps.
//!
//! One step costs a handful of passes over d and allocates nothing. With pᵧ = w_γᵀx₁, p⁰_γ = w_γᵀx₀ and
//! the Gram entries of (x₁, x₀) from the draw pass, every scalar of the step follows in O(r²):
//! h = (α p⁰ + β p)/√d, ε = wᵀe/√d = b h + 𝒬σ − p/√d, ∂_b = eᵀx_t = b‖x_t‖² + σ·h − x₁ᵀx_t. The update
//! is then a linear combination per column,
//!   w_γ ← (1 − ηλ/d) w_γ − (η/d) Σ_t σ_{tγ} (W σ_t) − (η/√d) (c⁰_γ x₀ + c¹_γ x₁),
//! with c⁰_γ = Σ_t α_t (b σ_{tγ} + χ_{tγ}) and c¹_γ = Σ_t ((bβ_t − 1) σ_{tγ} + β_t χ_{tγ}); 𝒬 = wᵀw/d is
//! updated algebraically from the same scalars and recomputed exactly at every record point.
// Index loops over r, r×r and the grid mirror the formulas of SPEC §4 term by term.
#![allow(clippy::needless_range_loop)]

use super::SYSTEM_ID;
use super::config::DaeConfig;
use super::net::Dae;
use super::target::{GaussianMixture, Target, TargetLaw};
use crate::rng::{ScalarRng, StreamId, StreamKind, hash_name};
use anyhow::Result;
use diffexp_kernels::{NormalRng, Real, blas1, fused};

/// Max |𝒢| (the fused update takes |𝒢| + 2 terms).
pub const MAX_TIMES: usize = 6;

/// The SPEC §1 log grid Grid(N, p): distinct ⌈10^{j/p} − 1e-9⌉ ≤ N, plus N.
pub fn log_grid(n: u64, p: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut j = 0u32;
    loop {
        let v = (10f64.powf(j as f64 / p as f64) - 1e-9).ceil() as u64;
        if v > n {
            break;
        }
        if out.last() != Some(&v) {
            out.push(v);
        }
        j += 1;
    }
    if out.last() != Some(&n) && n > 0 {
        out.push(n);
    }
    out
}

/// Summary statistics at one record point (SPEC §4.4); matrices row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsRecord {
    pub step: u64,
    pub theta: f64,
    /// M (K×r), M_{kγ} = μ_kᵀw_γ/√d.
    pub m: Vec<f64>,
    /// 𝒬 = wᵀw/d (r×r).
    pub q_cal: Vec<f64>,
    /// Q = wᵀΣw/d (r×r).
    pub q: Vec<f64>,
    pub b: f64,
    /// G = Eᵀw/√d (k_E×r).
    pub g: Vec<f64>,
    /// Mean of ½‖f(x_t) − x₁‖²/d (summed over 𝒢) since the previous record.
    pub loss: f64,
}

/// Where the trainer reports; it does not know whether records are kept, written or checked.
pub trait StatsSink {
    fn record(&mut self, rec: &StatsRecord);
    /// A copy of w at a requested training time.
    fn snapshot(&mut self, _theta: f64, _w: &[f64], _b: f64) {}
}

/// Keeps everything in memory.
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    pub records: Vec<StatsRecord>,
    /// (ϑ, w column-major, b).
    pub snapshots: Vec<(f64, Vec<f64>, f64)>,
}

impl StatsSink for MemorySink {
    fn record(&mut self, rec: &StatsRecord) {
        self.records.push(rec.clone());
    }
    fn snapshot(&mut self, theta: f64, w: &[f64], b: f64) {
        self.snapshots.push((theta, w.to_vec(), b));
    }
}

/// A sink that drops everything (benchmarks).
pub struct NullSink;
impl StatsSink for NullSink {
    fn record(&mut self, _rec: &StatsRecord) {}
}

/// Where training samples x₁ come from: the target, or a previous generation's sampler (§4.11).
pub trait X1Source {
    /// Draws x₁ into `x1` (normals from `nrng`, scalars from `srng`, `z` a d-length scratch).
    fn draw<T: Real>(&self, nrng: &mut NormalRng, srng: &mut ScalarRng, x1: &mut [T], z: &mut [f64]);
    /// The isotropic unit-variance mixture, when the fused draw-and-project pass applies.
    fn unit_mixture(&self) -> Option<&GaussianMixture> {
        None
    }
}

impl X1Source for Target {
    #[inline]
    fn draw<T: Real>(&self, nrng: &mut NormalRng, srng: &mut ScalarRng, x1: &mut [T], z: &mut [f64]) {
        self.sample_x1_into(nrng, srng, x1, z);
    }
    fn unit_mixture(&self) -> Option<&GaussianMixture> {
        match &self.law {
            TargetLaw::Mixture(m) if m.variance == 1.0 => Some(m),
            _ => None,
        }
    }
}

/// Result of a training run.
pub struct TrainOutput<T: Real> {
    pub dae: Dae<T>,
    pub steps: u64,
    pub seconds: f64,
}

/// The online-SGD state: the DAE, its maintained 𝒬, the random streams and every buffer.
pub struct Trainer<T: Real> {
    pub dae: Dae<T>,
    eta: f64,
    lambda: f64,
    /// (α_t, β_t) for t ∈ 𝒢.
    ab: Vec<(f64, f64)>,
    /// 𝒬 maintained algebraically (row-major r×r).
    q_cal: Vec<f64>,
    x1: Vec<T>,
    x0: Vec<T>,
    /// W σ_t for each t (|𝒢| d-vectors).
    gbuf: Vec<T>,
    z: Vec<f64>,
    /// Centroids in T (fused mixture path).
    centroids_t: Vec<Vec<T>>,
    mix_weights: Vec<f64>,
    nrng: NormalRng,
    srng: ScalarRng,
    pub step: u64,
    loss_acc: f64,
    loss_n: u64,
    // O(r²) scratch.
    p1: Vec<f64>,
    p0: Vec<f64>,
    sig: Vec<f64>,
    c0: Vec<f64>,
    c1: Vec<f64>,
    amat: Vec<f64>,
    tmp: Vec<f64>,
}

/// The data streams of one walker/generation.
pub fn data_streams(cfg: &DaeConfig, generation: u64) -> (NormalRng, ScalarRng) {
    let base = StreamId {
        system: SYSTEM_ID,
        experiment: hash_name(&cfg.name),
        d: cfg.d as u64,
        walker: (generation << 32) | cfg.walker,
        kind: StreamKind::Data,
    };
    let lat = StreamId { kind: StreamKind::Latent, ..base };
    (NormalRng::from_seed(base.seed(cfg.seed)), ScalarRng::from_seed(lat.seed(cfg.seed)))
}

impl<T: Real> Trainer<T> {
    /// A trainer from explicit initial weights (column-major d×r, f64).
    pub fn with_weights<S: X1Source>(cfg: &DaeConfig, source: &S, w0: &[f64], b0: f64, generation: u64) -> Self {
        let (d, r) = (cfg.d, cfg.r);
        assert!(w0.len() == d * r, "Trainer: w0 has {} entries, d·r = {}", w0.len(), d * r);
        assert!(cfg.times.len() <= MAX_TIMES);
        let w: Vec<T> = w0.iter().map(|&v| T::from_f64(v)).collect();
        let dae = Dae::new(d, r, w, b0, cfg.activation);
        let q_cal = exact_q_cal(&dae);
        let (nrng, srng) = data_streams(cfg, generation);
        let (centroids_t, mix_weights) = match source.unit_mixture() {
            Some(m) => {
                (m.centroids.iter().map(|c| c.iter().map(|&v| T::from_f64(v)).collect()).collect(), m.weights.clone())
            }
            None => (Vec::new(), Vec::new()),
        };
        let nt = cfg.times.len();
        Trainer {
            dae,
            eta: cfg.eta,
            lambda: cfg.lambda,
            ab: cfg.times.iter().map(|&t| DaeConfig::alpha_beta(t)).collect(),
            q_cal,
            x1: vec![T::default(); d],
            x0: vec![T::default(); d],
            gbuf: vec![T::default(); nt * d],
            z: vec![0.0; d],
            centroids_t,
            mix_weights,
            nrng,
            srng,
            step: 0,
            loss_acc: 0.0,
            loss_n: 0,
            p1: vec![0.0; r],
            p0: vec![0.0; r],
            sig: vec![0.0; nt * r],
            c0: vec![0.0; r],
            c1: vec![0.0; r],
            amat: vec![0.0; r * r],
            tmp: vec![0.0; 4 * r * r],
        }
    }

    /// A trainer with the initial weights of SPEC §4.3.
    pub fn new(cfg: &DaeConfig, target: &Target, generation: u64) -> Self {
        let (w0, b0) = target.initial_weights(cfg);
        Self::with_weights(cfg, target, &w0, b0, generation)
    }

    /// The maintained 𝒬.
    pub fn q_cal(&self) -> &[f64] {
        &self.q_cal
    }

    /// Draws (x₁, x₀) and the scalars pᵧ, p⁰ᵧ, ‖x₁‖², ‖x₀‖², x₁ᵀx₀. A unit-variance mixture takes
    /// the fused pass (x₁'s and x₀'s normals in alternating 32-normal blocks); any other source draws
    /// x₁ then x₀ — the same law, a different use of the stream.
    #[inline]
    fn draw<S: X1Source>(&mut self, source: &S) -> (f64, f64, f64) {
        let (d, r) = (self.dae.d, self.dae.r);
        if !self.centroids_t.is_empty() && r <= 4 {
            let c = super::target::pick_cluster(&self.mix_weights, &mut self.srng);
            let mu = &self.centroids_t[c];
            let w = &self.dae.w;
            let (x1, x0, nrng) = (&mut self.x1, &mut self.x0, &mut self.nrng);
            return match r {
                1 => fused_draw::<T, 1>(nrng, x1, x0, mu, w, d, &mut self.p1, &mut self.p0),
                2 => fused_draw::<T, 2>(nrng, x1, x0, mu, w, d, &mut self.p1, &mut self.p0),
                3 => fused_draw::<T, 3>(nrng, x1, x0, mu, w, d, &mut self.p1, &mut self.p0),
                _ => fused_draw::<T, 4>(nrng, x1, x0, mu, w, d, &mut self.p1, &mut self.p0),
            };
        }
        source.draw(&mut self.nrng, &mut self.srng, &mut self.x1, &mut self.z);
        self.nrng.fill(&mut self.x0);
        for g in 0..r {
            let wg = &self.dae.w[g * d..(g + 1) * d];
            self.p1[g] = blas1::dot(wg, &self.x1);
            self.p0[g] = blas1::dot(wg, &self.x0);
        }
        (blas1::dot(&self.x1, &self.x1), blas1::dot(&self.x0, &self.x0), blas1::dot(&self.x1, &self.x0))
    }

    /// One online SGD step on a fresh pair (x₁, x₀) (SPEC §4.3).
    pub fn step<S: X1Source>(&mut self, source: &S) {
        let (d, r) = (self.dae.d, self.dae.r);
        let nt = self.ab.len();
        let (n11, n00, n01) = self.draw(source);
        let df = d as f64;
        let isd = 1.0 / df.sqrt();
        let b = self.dae.b;
        let act = self.dae.act;
        self.c0.iter_mut().for_each(|v| *v = 0.0);
        self.c1.iter_mut().for_each(|v| *v = 0.0);
        let mut db = 0.0;
        let mut loss = 0.0;
        for (t, &(al, be)) in self.ab.iter().enumerate() {
            let sig = &mut self.sig[t * r..(t + 1) * r];
            let mut sig_h = 0.0;
            let mut dsig = [0.0f64; 16];
            let mut hv = [0.0f64; 16];
            for g in 0..r {
                let h = (al * self.p0[g] + be * self.p1[g]) * isd;
                let (s, ds) = super::net::sigma_and_derivative(act, h);
                sig[g] = s;
                dsig[g] = ds;
                hv[g] = h;
                sig_h += s * h;
            }
            // ε = b h + 𝒬σ − p/√d ; χ = σ'⊙ε
            let mut sqs = 0.0;
            let mut sig_e_lin = 0.0;
            for g in 0..r {
                let mut qs = 0.0;
                for g2 in 0..r {
                    qs += self.q_cal[g * r + g2] * sig[g2];
                }
                sqs += sig[g] * qs;
                let eps = b * hv[g] + qs - self.p1[g] * isd;
                let chi = dsig[g] * eps;
                self.c0[g] += al * (b * sig[g] + chi);
                self.c1[g] += (b * be - 1.0) * sig[g] + be * chi;
                sig_e_lin += sig[g] * (b * al * self.p0[g] + (b * be - 1.0) * self.p1[g]) * isd;
            }
            let xtxt = al * al * n00 + 2.0 * al * be * n01 + be * be * n11;
            let x1xt = al * n01 + be * n11;
            db += b * xtxt + sig_h - x1xt;
            // ½‖e‖², e = bα x₀ + (bβ − 1) x₁ + Wσ/√d.
            let ca = b * al;
            let cb = b * be - 1.0;
            loss += 0.5 * (ca * ca * n00 + 2.0 * ca * cb * n01 + cb * cb * n11 + 2.0 * sig_e_lin + sqs);
        }
        self.loss_acc += loss / df;
        self.loss_n += 1;
        // g_t = W σ_t, before any column changes.
        for t in 0..nt {
            let gt = &mut self.gbuf[t * d..(t + 1) * d];
            let sig = &self.sig[t * r..(t + 1) * r];
            let w0 = &self.dae.w[..d];
            for (o, &wv) in gt.iter_mut().zip(w0) {
                *o = wv * T::from_f64(sig[0]);
            }
            for g in 1..r {
                blas1::axpy(sig[g], &self.dae.w[g * d..(g + 1) * d], gt);
            }
        }
        let eta = self.eta;
        let decay = 1.0 - eta * self.lambda / df;
        let a0s = -eta * isd;
        for g in 0..r {
            let mut terms: [(f64, &[T]); MAX_TIMES + 2] = [(0.0, &self.x0[..]); MAX_TIMES + 2];
            for t in 0..nt {
                terms[t] = (-eta / df * self.sig[t * r + g], &self.gbuf[t * d..(t + 1) * d]);
            }
            terms[nt] = (a0s * self.c0[g], &self.x0[..]);
            terms[nt + 1] = (a0s * self.c1[g], &self.x1[..]);
            let col = &mut self.dae.w[g * d..(g + 1) * d];
            fused::combine_and_project::<T, 0>(col, decay, &terms[..nt + 2], []);
        }
        // 𝒬' = Aᵀ𝒬A + (u⁰a⁰ᵀ + a⁰u⁰ᵀ + u¹a¹ᵀ + a¹u¹ᵀ + n₀₀a⁰a⁰ᵀ + n₀₁(a⁰a¹ᵀ + a¹a⁰ᵀ) + n₁₁a¹a¹ᵀ)/d,
        // A = (1 − ηλ/d)I − (η/d)Σ_t σ_tσ_tᵀ, a⁰ = −(η/√d)c⁰, a¹ = −(η/√d)c¹, u = Aᵀp.
        for i in 0..r {
            for j in 0..r {
                let mut s = 0.0;
                for t in 0..nt {
                    s += self.sig[t * r + i] * self.sig[t * r + j];
                }
                self.amat[i * r + j] = if i == j { decay } else { 0.0 } - eta / df * s;
            }
        }
        let (qa, rest) = self.tmp.split_at_mut(r * r);
        let (aqa, rest) = rest.split_at_mut(r * r);
        let (u0, rest) = rest.split_at_mut(r);
        let (u1, _) = rest.split_at_mut(r);
        for i in 0..r {
            for j in 0..r {
                let mut s = 0.0;
                for k in 0..r {
                    s += self.q_cal[i * r + k] * self.amat[k * r + j];
                }
                qa[i * r + j] = s;
            }
        }
        for i in 0..r {
            for j in 0..r {
                let mut s = 0.0;
                for k in 0..r {
                    s += self.amat[k * r + i] * qa[k * r + j];
                }
                aqa[i * r + j] = s;
            }
            let (mut s0, mut s1) = (0.0, 0.0);
            for k in 0..r {
                s0 += self.amat[k * r + i] * self.p0[k];
                s1 += self.amat[k * r + i] * self.p1[k];
            }
            u0[i] = s0;
            u1[i] = s1;
        }
        for i in 0..r {
            let (a0i, a1i) = (a0s * self.c0[i], a0s * self.c1[i]);
            for j in 0..r {
                let (a0j, a1j) = (a0s * self.c0[j], a0s * self.c1[j]);
                let extra = u0[i] * a0j
                    + a0i * u0[j]
                    + u1[i] * a1j
                    + a1i * u1[j]
                    + n00 * a0i * a0j
                    + n01 * (a0i * a1j + a1i * a0j)
                    + n11 * a1i * a1j;
                self.q_cal[i * r + j] = aqa[i * r + j] + extra / df;
            }
        }
        self.dae.b = b - eta / (df * df) * db;
        self.step += 1;
    }

    /// The statistics of the current w (𝒬 recomputed exactly and resynchronised).
    pub fn record(&mut self, target: &Target, cfg: &DaeConfig) -> StatsRecord {
        self.q_cal = exact_q_cal(&self.dae);
        let loss = if self.loss_n > 0 { self.loss_acc / self.loss_n as f64 } else { f64::NAN };
        self.loss_acc = 0.0;
        self.loss_n = 0;
        let mut rec = stats_of(&self.dae, target, &self.q_cal);
        rec.step = self.step;
        rec.theta = cfg.theta_of(self.step);
        rec.loss = loss;
        rec
    }

    /// Trains from the initial weights of `target` up to `cfg.theta_max` (or the largest snapshot ϑ),
    /// reporting to `sink` on the record grid and at `snapshot_thetas`.
    pub fn run<S: StatsSink>(
        cfg: &DaeConfig,
        target: &Target,
        generation: u64,
        sink: &mut S,
        snapshot_thetas: &[f64],
    ) -> Result<TrainOutput<T>> {
        let tr = Self::new(cfg, target, generation);
        tr.run_loop(cfg, target, target, sink, snapshot_thetas)
    }

    /// The training loop on samples from `source`; statistics are measured against `target`.
    pub fn run_loop<S: StatsSink, X: X1Source>(
        mut self,
        cfg: &DaeConfig,
        target: &Target,
        source: &X,
        sink: &mut S,
        snapshot_thetas: &[f64],
    ) -> Result<TrainOutput<T>> {
        let theta_end = snapshot_thetas.iter().copied().fold(cfg.theta_max, f64::max);
        let n = cfg.steps_for(theta_end);
        let stride = cfg.record_stride();
        let mut points = log_grid(n, 10);
        points.extend((0..=n).step_by(stride as usize));
        points.push(0);
        points.sort_unstable();
        points.dedup();
        let mut snaps: Vec<(u64, f64)> = snapshot_thetas.iter().map(|&th| (cfg.steps_for(th), th)).collect();
        snaps.sort_by_key(|s| s.0);
        let mut next_snap = 0;
        let start = std::time::Instant::now();
        let mut pi = 0;
        loop {
            while next_snap < snaps.len() && snaps[next_snap].0 == self.step {
                let w: Vec<f64> = self.dae.w.iter().map(|v| v.to_f64()).collect();
                sink.snapshot(snaps[next_snap].1, &w, self.dae.b);
                next_snap += 1;
            }
            if pi < points.len() && points[pi] == self.step {
                let rec = self.record(target, cfg);
                sink.record(&rec);
                pi += 1;
            }
            if self.step >= n {
                break;
            }
            let until = points.get(pi).copied().unwrap_or(n).min(snaps.get(next_snap).map(|s| s.0).unwrap_or(n));
            while self.step < until {
                self.step(source);
            }
            if !self.dae.b.is_finite() || !self.q_cal.iter().all(|v| v.is_finite()) {
                anyhow::bail!(
                    "training diverged at step {} (ϑ = {:.3}); lower `eta`",
                    self.step,
                    cfg.theta_of(self.step)
                );
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok(TrainOutput { steps: self.step, dae: self.dae, seconds })
    }
}

#[inline]
#[allow(clippy::too_many_arguments)]
fn fused_draw<T: Real, const P: usize>(
    nrng: &mut NormalRng,
    x1: &mut [T],
    x0: &mut [T],
    mu: &[T],
    w: &[T],
    d: usize,
    p1: &mut [f64],
    p0: &mut [f64],
) -> (f64, f64, f64) {
    let probes: [&[T]; P] = std::array::from_fn(|g| &w[g * d..(g + 1) * d]);
    let pp = fused::draw_pair_and_project(nrng, x1, x0, &[(1.0, mu)], probes);
    p1[..P].copy_from_slice(&pp.x_dot);
    p0[..P].copy_from_slice(&pp.xi_dot);
    (pp.xx, pp.xixi, pp.xxi)
}

/// 𝒬 = wᵀw/d computed from w.
pub fn exact_q_cal<T: Real>(dae: &Dae<T>) -> Vec<f64> {
    dae.q_cal()
}

/// M, 𝒬, Q, b, G of a DAE against `target` (𝒬 given).
pub fn stats_of<T: Real>(dae: &Dae<T>, target: &Target, q_cal: &[f64]) -> StatsRecord {
    let (d, r) = (dae.d, dae.r);
    let isd = 1.0 / (d as f64).sqrt();
    let w64: Vec<f64> = dae.w.iter().map(|v| v.to_f64()).collect();
    let col = |g: usize| &w64[g * d..(g + 1) * d];
    let (cs, _) = target.clusters();
    let mut m = vec![0.0; cs.len() * r];
    for (k, c) in cs.iter().enumerate() {
        for g in 0..r {
            m[k * r + g] = isd * blas1::dot(c, col(g));
        }
    }
    let q = if target.is_isotropic() {
        let th = target.theta_bar();
        q_cal.iter().map(|v| v * th).collect()
    } else {
        let sw: Vec<Vec<f64>> = (0..r).map(|g| target.cov_apply(col(g))).collect();
        let mut q = vec![0.0; r * r];
        for a in 0..r {
            for c in 0..r {
                q[a * r + c] = blas1::dot(col(a), &sw[c]) / d as f64;
            }
        }
        q
    };
    let mut gm = vec![0.0; target.plane.len() * r];
    for (k, e) in target.plane.iter().enumerate() {
        for g in 0..r {
            gm[k * r + g] = isd * blas1::dot(e, col(g));
        }
    }
    StatsRecord { step: 0, theta: 0.0, m, q_cal: q_cal.to_vec(), q, b: dae.b, g: gm, loss: f64::NAN }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_grid_matches_spec_item_29() {
        assert_eq!(
            log_grid(1000, 10),
            vec![
                1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26, 32, 40, 51, 64, 80, 100, 126, 159, 200, 252, 317, 399, 502,
                631, 795, 1000
            ]
        );
    }
}
