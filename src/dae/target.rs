//! Data laws ρ of System B (SPEC §4.10): isotropic Gaussian mixtures (`bimodal`, `trimodal`, any
//! `mixture`) and Gaussians with a full covariance (`mnist7_gauss` from real MNIST, `gaussian_npy`).
//! Every target answers the same calls: `sample_x1_into`, `clusters` (centroids and weights), `theta_bar`,
//! `marginal` (the 1-D law along a unit vector), `plane_law` (the law projected on a plane) and
//! `principal_components`.
// Index loops over r, r×r and the grid mirror the formulas of SPEC §4 term by term.
#![allow(clippy::needless_range_loop)]

use super::SYSTEM_ID;
use super::config::{CentroidBasis, DaeConfig, InitKind, MnistScaling, PlaneKind, ScaleMode, TargetKind};
use crate::data::mnist::Mnist;
use crate::rng::{ScalarRng, StreamId, StreamKind, hash_name};
use anyhow::{Result, bail};
use diffexp_kernels::{NormalRng, Real, blas1};
use faer::{Mat, Side};
use std::path::PathBuf;

/// ρ = Σ_c π_c N(μ_c, θ I).
#[derive(Clone, Debug)]
pub struct GaussianMixture {
    pub centroids: Vec<Vec<f64>>,
    pub weights: Vec<f64>,
    /// Per-coordinate variance θ.
    pub variance: f64,
}

/// ρ = N(m, Σ) with Σ = U Θ Uᵀ.
#[derive(Clone, Debug)]
pub struct CovGaussian {
    pub mean: Vec<f64>,
    /// Eigenvalues θ_k in non-increasing order (negative ones clipped to 0).
    pub eigvals: Vec<f64>,
    /// Eigenvectors: `eigvecs[k*d..(k+1)*d]` is u_k.
    pub eigvecs: Vec<f64>,
    /// Row-major d×d factor L = U Θ^{1/2}, so x = m + L z.
    pub sqrt_cov: Vec<f64>,
    /// Row-major Σ = L Lᵀ (after clipping), so Σv is d dot products.
    pub cov: Vec<f64>,
}

#[derive(Clone, Debug)]
pub enum TargetLaw {
    Mixture(GaussianMixture),
    Gaussian(CovGaussian),
}

/// A data law together with its plotting plane 𝓔 (orthonormal E, k_E = 2 columns).
#[derive(Clone, Debug)]
pub struct Target {
    pub d: usize,
    pub kind: TargetKind,
    pub law: TargetLaw,
    /// Orthonormal basis vectors of the plotting plane.
    pub plane: Vec<Vec<f64>>,
    /// The unit direction of the Hellinger distance (μ̂₁ for mixtures, PC1 for Gaussians).
    pub hellinger_dir: Vec<f64>,
}

/// A 1-D (or k-D) Gaussian mixture: (weight, mean vector, covariance row-major).
#[derive(Clone, Debug)]
pub struct ProjectedLaw {
    pub k: usize,
    pub components: Vec<(f64, Vec<f64>, Vec<f64>)>,
}

impl ProjectedLaw {
    /// Density at `y` (k-vector).
    pub fn density(&self, y: &[f64]) -> f64 {
        self.components.iter().map(|(w, m, c)| w * gauss_density(y, m, c, self.k)).sum()
    }
}

/// N(y; m, C) for k ≤ 2 (closed forms; C must be positive definite).
pub fn gauss_density(y: &[f64], m: &[f64], c: &[f64], k: usize) -> f64 {
    match k {
        1 => {
            let v = c[0];
            let z = y[0] - m[0];
            (-0.5 * z * z / v).exp() / (std::f64::consts::TAU * v).sqrt()
        }
        2 => {
            let (a, b, dd) = (c[0], c[1], c[3]);
            let det = a * dd - b * b;
            let (z0, z1) = (y[0] - m[0], y[1] - m[1]);
            let q = (dd * z0 * z0 - 2.0 * b * z0 * z1 + a * z1 * z1) / det;
            (-0.5 * q).exp() / (std::f64::consts::TAU * det.sqrt())
        }
        _ => panic!("gauss_density: only k = 1, 2"),
    }
}

fn stream(cfg: &DaeConfig, kind: StreamKind) -> ScalarRng {
    let id = StreamId { system: SYSTEM_ID, experiment: hash_name(&cfg.name), d: cfg.d as u64, walker: 0, kind };
    ScalarRng::from_seed(id.seed(cfg.seed))
}

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn dotf(a: &[f64], b: &[f64]) -> f64 {
    blas1::dot(a, b)
}

/// Gram–Schmidt of `v` against the orthonormal `basis`; None if it is (numerically) in their span.
fn orthonormalise(v: &[f64], basis: &[Vec<f64>]) -> Option<Vec<f64>> {
    let mut x = v.to_vec();
    for _ in 0..2 {
        for b in basis {
            let c = dotf(&x, b);
            blas1::axpy(-c, b, &mut x);
        }
    }
    let n = dotf(&x, &x).sqrt();
    let n0 = dotf(v, v).sqrt();
    if n <= 1e-10 * n0.max(1e-300) { None } else { Some(x.iter().map(|a| a / n).collect()) }
}

fn random_unit_orthogonal(d: usize, basis: &[Vec<f64>], rng: &mut ScalarRng) -> Vec<f64> {
    loop {
        let g: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        if let Some(u) = orthonormalise(&g, basis) {
            return u;
        }
    }
}

impl Target {
    /// Builds the target of `cfg` (reads MNIST or `.npy` files when asked to).
    pub fn build(cfg: &DaeConfig) -> Result<Self> {
        let d = cfg.d;
        let tc = &cfg.target;
        let mut spikes_rng = stream(cfg, StreamKind::Spikes);
        let law = match tc.kind {
            TargetKind::Mixture | TargetKind::Bimodal | TargetKind::Trimodal => {
                let coords: Vec<Vec<f64>> = match tc.kind {
                    TargetKind::Bimodal => vec![vec![tc.bimodal_norm], vec![-tc.bimodal_norm]],
                    TargetKind::Trimodal => vec![vec![3.0, 0.0], vec![0.0, -3.0], vec![-3.0, 0.0]],
                    _ => tc.centroids.clone(),
                };
                let width = coords.iter().map(|c| c.len()).max().unwrap_or(1);
                if width > d {
                    bail!("config field `target.centroids` has {width} coordinates but d = {d}; allowed: at most d");
                }
                let basis: Vec<Vec<f64>> = match tc.basis {
                    CentroidBasis::Coordinate => (0..width)
                        .map(|k| {
                            let mut e = vec![0.0; d];
                            e[k] = 1.0;
                            e
                        })
                        .collect(),
                    CentroidBasis::Random => {
                        let mut b: Vec<Vec<f64>> = Vec::new();
                        for _ in 0..width {
                            let u = random_unit_orthogonal(d, &b, &mut spikes_rng);
                            b.push(u);
                        }
                        b
                    }
                };
                let centroids: Vec<Vec<f64>> = coords
                    .iter()
                    .map(|c| {
                        let mut mu = vec![0.0; d];
                        for (k, &ck) in c.iter().enumerate() {
                            blas1::axpy(ck, &basis[k], &mut mu);
                        }
                        mu
                    })
                    .collect();
                let k = centroids.len();
                let mut weights = if tc.weights.is_empty() { vec![1.0; k] } else { tc.weights.clone() };
                let s: f64 = weights.iter().sum();
                weights.iter_mut().for_each(|w| *w /= s);
                TargetLaw::Mixture(GaussianMixture { centroids, weights, variance: tc.variance })
            }
            TargetKind::Mnist7Gauss => {
                if d != 784 {
                    bail!("config field `d` = {d} is out of range for target.kind = \"mnist7_gauss\"; allowed: 784");
                }
                let dir = if tc.data_dir.is_empty() { Mnist::default_dir() } else { PathBuf::from(&tc.data_dir) };
                let mnist = Mnist::load(&dir, false)?;
                let (mean, cov) = mnist_moments(&mnist, tc.digit, tc.scaling);
                let mean = if tc.use_mean { mean } else { vec![0.0; d] };
                TargetLaw::Gaussian(CovGaussian::from_covariance(mean, &cov, d)?)
            }
            TargetKind::GaussianNpy => {
                let path = tc.covariance_npy.as_ref().unwrap();
                let (shape, mut cov) = crate::store::npy::read::<f64>(std::path::Path::new(path))
                    .map_err(|e| anyhow::anyhow!("target.covariance_npy: {e}"))?;
                if shape != [d, d] {
                    bail!("config field `target.covariance_npy` has shape {shape:?}; allowed: [{d}, {d}] (d × d)");
                }
                if tc.normalise_trace {
                    let tr: f64 = (0..d).map(|i| cov[i * d + i]).sum();
                    cov.iter_mut().for_each(|c| *c *= d as f64 / tr);
                }
                let mean = match &tc.mean_npy {
                    Some(p) => {
                        let (s, m) = crate::store::npy::read::<f64>(std::path::Path::new(p))
                            .map_err(|e| anyhow::anyhow!("target.mean_npy: {e}"))?;
                        if s != [d] {
                            bail!("config field `target.mean_npy` has shape {s:?}; allowed: [{d}]");
                        }
                        m
                    }
                    None => vec![0.0; d],
                };
                TargetLaw::Gaussian(CovGaussian::from_covariance(mean, &cov, d)?)
            }
        };
        let mut t = Target { d, kind: tc.kind, law, plane: Vec::new(), hellinger_dir: Vec::new() };
        let plane_kind = match cfg.generate.plane {
            PlaneKind::Auto => match (&t.law, tc.kind) {
                (_, TargetKind::Bimodal) => PlaneKind::CentroidRandom,
                (TargetLaw::Mixture(m), _) if m.centroids.len() >= 2 => PlaneKind::Centroids,
                (TargetLaw::Mixture(_), _) => PlaneKind::CentroidRandom,
                (TargetLaw::Gaussian(_), _) => PlaneKind::Principal,
            },
            p => p,
        };
        t.plane = match plane_kind {
            PlaneKind::Principal => t.principal_components(2),
            PlaneKind::Centroids | PlaneKind::CentroidRandom | PlaneKind::Auto => {
                let (cs, _) = t.clusters();
                let mut basis: Vec<Vec<f64>> = Vec::new();
                if let Some(first) = cs.iter().find(|c| dotf(c, c) > 0.0) {
                    basis.push(unit(first));
                }
                if plane_kind == PlaneKind::Centroids {
                    for c in &cs {
                        if basis.len() == 2 {
                            break;
                        }
                        if let Some(u) = orthonormalise(c, &basis) {
                            basis.push(u);
                        }
                    }
                }
                while basis.len() < 2 {
                    let u = random_unit_orthogonal(d, &basis, &mut spikes_rng);
                    basis.push(u);
                }
                basis
            }
        };
        t.hellinger_dir = t.plane[0].clone();
        Ok(t)
    }

    /// A target from an explicit law; the plane is its top-2 principal components (Gaussians) or
    /// (μ̂₁, the next centroid direction or e₂) for mixtures.
    pub fn from_law(d: usize, kind: TargetKind, law: TargetLaw) -> Self {
        let mut t = Target { d, kind, law, plane: Vec::new(), hellinger_dir: Vec::new() };
        t.plane = t.principal_components(2);
        t.hellinger_dir = t.plane[0].clone();
        t
    }

    /// Centroids and weights; a Gaussian is one cluster centred at its mean.
    pub fn clusters(&self) -> (Vec<Vec<f64>>, Vec<f64>) {
        match &self.law {
            TargetLaw::Mixture(m) => (m.centroids.clone(), m.weights.clone()),
            TargetLaw::Gaussian(g) => (vec![g.mean.clone()], vec![1.0]),
        }
    }

    /// θ̄ = tr Σ / d.
    pub fn theta_bar(&self) -> f64 {
        match &self.law {
            TargetLaw::Mixture(m) => m.variance,
            TargetLaw::Gaussian(g) => g.eigvals.iter().sum::<f64>() / self.d as f64,
        }
    }

    /// True when Σ = θ I (the isotropic ODE applies).
    pub fn is_isotropic(&self) -> bool {
        matches!(self.law, TargetLaw::Mixture(_))
    }

    /// Σ v.
    pub fn cov_apply(&self, v: &[f64]) -> Vec<f64> {
        match &self.law {
            TargetLaw::Mixture(m) => v.iter().map(|x| x * m.variance).collect(),
            TargetLaw::Gaussian(g) => {
                let d = self.d;
                (0..d).map(|i| dotf(&g.cov[i * d..(i + 1) * d], v)).collect()
            }
        }
    }

    /// Draws x₁ ~ ρ into `x1`; `z` is a d-length scratch. Returns the cluster index.
    #[inline]
    pub fn sample_x1_into<T: Real>(
        &self,
        nrng: &mut NormalRng,
        srng: &mut ScalarRng,
        x1: &mut [T],
        z: &mut [f64],
    ) -> usize {
        match &self.law {
            TargetLaw::Mixture(m) => {
                let c = pick_cluster(&m.weights, srng);
                nrng.fill(x1);
                if m.variance != 1.0 {
                    blas1::scale(m.variance.sqrt(), x1);
                }
                for (xi, &mi) in x1.iter_mut().zip(&m.centroids[c]) {
                    *xi += T::from_f64(mi);
                }
                c
            }
            TargetLaw::Gaussian(g) => {
                g.sample_into(nrng, x1, z);
                0
            }
        }
    }

    /// The law of Eᵀx₁ for orthonormal rows `e` (k = e.len() ≤ 2): a Gaussian mixture.
    pub fn plane_law(&self, e: &[Vec<f64>]) -> ProjectedLaw {
        let k = e.len();
        let (cs, ws) = self.clusters();
        let sig_e: Vec<Vec<f64>> = e.iter().map(|v| self.cov_apply(v)).collect();
        let mut cov = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                cov[i * k + j] = dotf(&e[i], &sig_e[j]);
            }
        }
        let components =
            cs.iter().zip(&ws).map(|(c, &w)| (w, e.iter().map(|v| dotf(v, c)).collect(), cov.clone())).collect();
        ProjectedLaw { k, components }
    }

    /// The law of x_t = α x₀ + β x₁ projected on `e`.
    pub fn plane_law_at(&self, e: &[Vec<f64>], alpha: f64, beta: f64) -> ProjectedLaw {
        let mut p = self.plane_law(e);
        let k = p.k;
        for (_, m, c) in p.components.iter_mut() {
            m.iter_mut().for_each(|x| *x *= beta);
            for i in 0..k {
                for j in 0..k {
                    c[i * k + j] = beta * beta * c[i * k + j] + if i == j { alpha * alpha } else { 0.0 };
                }
            }
        }
        p
    }

    /// The top-`k` principal directions of ρ's covariance.
    pub fn principal_components(&self, k: usize) -> Vec<Vec<f64>> {
        let d = self.d;
        match &self.law {
            TargetLaw::Gaussian(g) => (0..k.min(d)).map(|j| g.eigvecs[j * d..(j + 1) * d].to_vec()).collect(),
            TargetLaw::Mixture(m) => {
                // Cov = θI + Σ π_c (μ_c − μ̄)(μ_c − μ̄)ᵀ: its top directions lie in the span of the centred
                // centroids; diagonalise the between-cluster part in an orthonormal basis of that span.
                let mbar: Vec<f64> =
                    (0..d).map(|i| m.centroids.iter().zip(&m.weights).map(|(c, w)| w * c[i]).sum()).collect();
                let centred: Vec<Vec<f64>> =
                    m.centroids.iter().map(|c| c.iter().zip(&mbar).map(|(a, b)| a - b).collect()).collect();
                let mut basis: Vec<Vec<f64>> = Vec::new();
                for c in &centred {
                    if let Some(u) = orthonormalise(c, &basis) {
                        basis.push(u);
                    }
                }
                let n = basis.len();
                let mut out = Vec::new();
                if n > 0 {
                    let mut b = vec![0.0; n * n];
                    for (c, &w) in centred.iter().zip(&m.weights) {
                        let p: Vec<f64> = basis.iter().map(|u| dotf(u, c)).collect();
                        for i in 0..n {
                            for j in 0..n {
                                b[i * n + j] += w * p[i] * p[j];
                            }
                        }
                    }
                    let (ev, v) = super::linalg::sym_eigen(&b, n);
                    let mut order: Vec<usize> = (0..n).collect();
                    order.sort_by(|&a, &bb| ev[bb].partial_cmp(&ev[a]).unwrap());
                    for &j in order.iter().take(k) {
                        let mut u = vec![0.0; d];
                        for i in 0..n {
                            blas1::axpy(v[i * n + j], &basis[i], &mut u);
                        }
                        out.push(unit(&u));
                    }
                }
                for axis in 0..d {
                    if out.len() >= k {
                        break;
                    }
                    let mut e = vec![0.0; d];
                    e[axis] = 1.0;
                    if let Some(u) = orthonormalise(&e, &out) {
                        out.push(u);
                    }
                }
                out
            }
        }
    }

    /// The initial weights w(0) (column-major d×r) and b₀ of SPEC §4.3.
    pub fn initial_weights(&self, cfg: &DaeConfig) -> (Vec<f64>, f64) {
        let (d, r) = (self.d, cfg.r);
        let sd = (d as f64).sqrt();
        let c0 = cfg.init.scale;
        let (kind, mode) = match (cfg.init.kind, self.kind, &self.law) {
            (InitKind::Auto, TargetKind::Bimodal, _) => (InitKind::Centroids, ScaleMode::Norm),
            (InitKind::Auto, _, TargetLaw::Mixture(_)) => (InitKind::Centroids, cfg.init.scale_mode),
            (InitKind::Auto, _, TargetLaw::Gaussian(_)) => (InitKind::Principal, ScaleMode::Norm),
            (k, _, _) => (k, cfg.init.scale_mode),
        };
        let mut w = vec![0.0; d * r];
        match kind {
            InitKind::Random => {
                let mut rng = init_stream(cfg);
                w.iter_mut().for_each(|x| *x = c0 * rng.normal());
            }
            InitKind::Centroids | InitKind::Principal | InitKind::Auto => {
                let dirs: Vec<Vec<f64>> = if kind == InitKind::Principal {
                    self.principal_components(r)
                } else {
                    let (cs, _) = self.clusters();
                    cs.into_iter().filter(|c| dotf(c, c) > 0.0).collect()
                };
                for (g, u) in dirs.iter().take(r).enumerate() {
                    let norm = dotf(u, u).sqrt();
                    let coef = match mode {
                        ScaleMode::Coefficient => c0 * sd,
                        ScaleMode::Norm => c0 * sd / norm,
                    };
                    for i in 0..d {
                        w[g * d + i] = coef * u[i];
                    }
                }
            }
        }
        (w, cfg.init.b0)
    }
}

/// The Init stream of a walker (used by the random initialisation).
pub fn init_stream(cfg: &DaeConfig) -> ScalarRng {
    ScalarRng::from_seed(stream_seed(cfg, cfg.walker, StreamKind::Init))
}

/// The seed of stream (System B, experiment, d, `walker`, `kind`) under the config's master seed.
pub fn stream_seed(cfg: &DaeConfig, walker: u64, kind: StreamKind) -> u64 {
    StreamId { system: SYSTEM_ID, experiment: hash_name(&cfg.name), d: cfg.d as u64, walker, kind }.seed(cfg.seed)
}

/// Cluster index c with probability π_c (one uniform from the Latent stream).
#[inline]
pub fn pick_cluster(weights: &[f64], srng: &mut ScalarRng) -> usize {
    if weights.len() == 1 {
        return 0;
    }
    let u = srng.uniform();
    let mut acc = 0.0;
    for (c, &w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return c;
        }
    }
    weights.len() - 1
}

impl CovGaussian {
    /// Eigendecomposition of a d×d covariance (row-major) with faer; negative eigenvalues are clipped.
    pub fn from_covariance(mean: Vec<f64>, cov: &[f64], d: usize) -> Result<Self> {
        let a = Mat::<f64>::from_fn(d, d, |i, j| 0.5 * (cov[i * d + j] + cov[j * d + i]));
        let evd = a.self_adjoint_eigen(Side::Lower).map_err(|e| anyhow::anyhow!("eigendecomposition failed: {e:?}"))?;
        let s = evd.S().column_vector();
        let u = evd.U();
        // faer sorts ascending; store descending.
        let mut eigvals = vec![0.0; d];
        let mut eigvecs = vec![0.0; d * d];
        for k in 0..d {
            let src = d - 1 - k;
            eigvals[k] = s[src].max(0.0);
            // Fix the sign so the largest-magnitude entry is positive (reproducible directions).
            let col: Vec<f64> = (0..d).map(|i| u[(i, src)]).collect();
            let imax = (0..d).max_by(|&a, &b| col[a].abs().partial_cmp(&col[b].abs()).unwrap()).unwrap();
            let sg = if col[imax] < 0.0 { -1.0 } else { 1.0 };
            for i in 0..d {
                eigvecs[k * d + i] = sg * col[i];
            }
        }
        let mut sqrt_cov = vec![0.0; d * d];
        for k in 0..d {
            let s = eigvals[k].sqrt();
            for i in 0..d {
                sqrt_cov[i * d + k] = eigvecs[k * d + i] * s;
            }
        }
        // Σ = Σ_k θ_k u_k u_kᵀ (clipped), kept for Σv as d dot products.
        let mut cov = vec![0.0; d * d];
        for k in 0..d {
            if eigvals[k] == 0.0 {
                continue;
            }
            let u = &eigvecs[k * d..(k + 1) * d];
            for i in 0..d {
                let c = eigvals[k] * u[i];
                for j in 0..d {
                    cov[i * d + j] += c * u[j];
                }
            }
        }
        Ok(CovGaussian { mean, eigvals, eigvecs, sqrt_cov, cov })
    }

    /// x = m + L z with z ~ N(0, I) drawn into the scratch `z`.
    #[inline]
    pub fn sample_into<T: Real>(&self, nrng: &mut NormalRng, x: &mut [T], z: &mut [f64]) {
        let d = x.len();
        nrng.fill(z);
        for i in 0..d {
            x[i] = T::from_f64(self.mean[i] + blas1::dot(&self.sqrt_cov[i * d..(i + 1) * d], z));
        }
    }
}

/// Mean and unbiased covariance (row-major) of one MNIST training digit under `scaling`.
pub fn mnist_moments(mnist: &Mnist, digit: u8, scaling: MnistScaling) -> (Vec<f64>, Vec<f64>) {
    let scale = match scaling {
        MnistScaling::TraceD | MnistScaling::Raw01 => 1.0 / 255.0,
        MnistScaling::CentredDiv400 => 1.0 / 400.0,
    };
    let (n, x) = mnist.train_digit(digit, scale);
    let d = 784;
    let mut mean = vec![0.0; d];
    for i in 0..n {
        blas1::axpy(1.0 / n as f64, &x[i * d..(i + 1) * d], &mut mean);
    }
    let xc = Mat::<f64>::from_fn(n, d, |i, j| x[i * d + j] - mean[j]);
    let g = xc.transpose() * &xc;
    let mut cov = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            cov[i * d + j] = g[(i, j)] / (n as f64 - 1.0);
        }
    }
    if scaling == MnistScaling::TraceD {
        let tr: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        let s = d as f64 / tr;
        cov.iter_mut().for_each(|c| *c *= s);
        mean.iter_mut().for_each(|m| *m *= s.sqrt());
    }
    (mean, cov)
}
