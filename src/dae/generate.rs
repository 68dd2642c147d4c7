//! Generation with a trained DAE (SPEC §4.8): the probability-flow ODE (ε = 0) or SDE (ε > 0) in d
//! dimensions, the exact low-dimensional transport of Z = wᵀX/√d, the orthogonal variance v_t and the
//! projected density E ᵀX =ᵈ G𝒬⁺Z_t + √v_t ξ on a plotting plane or a line.
//!
//! For α_t = 1 − t, β_t = t: Γ_t = 1/(1 − t) + ε t/(1 − t)², Δ_t = −1/(1 − t) − ε/(1 − t)² + b Γ_t, and
//! the drift is Δ_t x + Γ_t w σ(wᵀx/√d)/√d.
// Index loops over r, r×r and the grid mirror the formulas of SPEC §4 term by term.
#![allow(clippy::needless_range_loop)]

use super::SYSTEM_ID;
use super::config::DaeConfig;
use super::linalg::{matmul, pinv_sym, sqrt_psd, transpose};
use super::net::Dae;
use crate::net::Activation;
use crate::rng::{ScalarRng, StreamId, StreamKind, hash_name};
use diffexp_kernels::{NormalRng, Real, blas1, fused};
use rayon::prelude::*;

/// The Euler grid of the sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerSchedule {
    pub t_end: f64,
    pub dt: f64,
    pub epsilon: f64,
}

impl SamplerSchedule {
    pub fn of(cfg: &DaeConfig) -> Self {
        SamplerSchedule { t_end: cfg.generate.t_end, dt: cfg.generate.dt, epsilon: cfg.generate.epsilon }
    }

    /// K = round(t_end/dt) steps at t_k = k dt.
    pub fn steps(&self) -> usize {
        (self.t_end / self.dt).round() as usize
    }

    /// (Δ_t, Γ_t) for skip strength b.
    #[inline]
    pub fn coefficients(&self, t: f64, b: f64) -> (f64, f64) {
        let a = 1.0 - t;
        let gamma = 1.0 / a + self.epsilon * t / (a * a);
        let delta = -1.0 / a - self.epsilon / (a * a) + b * gamma;
        (delta, gamma)
    }

    /// Per-direction variance of the component orthogonal to span(w) after the discrete sampler:
    /// v_{k+1} = (1 + Δ_k dt)² v_k + 2ε dt, v₀ = 1 (so ∏(1 + Δ_k dt)² when ε = 0).
    pub fn orthogonal_variance(&self, b: f64) -> f64 {
        let mut v = 1.0;
        for k in 0..self.steps() {
            let (delta, _) = self.coefficients(k as f64 * self.dt, b);
            v = (1.0 + delta * self.dt).powi(2) * v + 2.0 * self.epsilon * self.dt;
        }
        v
    }
}

/// v_t = (1 − t)^{2(1 − b)}: the continuous-time orthogonal variance for ε = 0.
pub fn orthogonal_variance_exact(t: f64, b: f64) -> f64 {
    (1.0 - t).powf(2.0 * (1.0 - b))
}

/// The sampler drift at (x, t): Δ_t x + Γ_t w σ(wᵀx/√d)/√d (allocating; for tests).
pub fn drift<T: Real>(dae: &Dae<T>, x: &[T], t: f64, sched: &SamplerSchedule) -> Vec<f64> {
    let (delta, gamma) = sched.coefficients(t, dae.b);
    let h = dae.preactivations(x);
    let s = 1.0 / (dae.d as f64).sqrt();
    let mut out: Vec<f64> = x.iter().map(|&v| delta * v.to_f64()).collect();
    for (g, &hg) in h.iter().enumerate() {
        let c = gamma * s * dae.act.value(hg);
        for (o, &w) in out.iter_mut().zip(dae.col(g)) {
            *o += c * w.to_f64();
        }
    }
    out
}

/// Runs the sampler on `x` (which holds X₀ on entry) from t = 0 to t_end in place. With ε > 0, `noise`
/// supplies the Brownian increments and a d-length scratch.
pub fn sample_in_place<T: Real>(
    dae: &Dae<T>,
    x: &mut [T],
    sched: &SamplerSchedule,
    noise: Option<(&mut NormalRng, &mut [T])>,
) {
    let (d, r) = (dae.d, dae.r);
    let isd = 1.0 / (d as f64).sqrt();
    let mut h = [0.0f64; 16];
    for g in 0..r {
        h[g] = isd * blas1::dot(dae.col(g), x);
    }
    let mut noise = noise;
    for k in 0..sched.steps() {
        let t = k as f64 * sched.dt;
        let (delta, gamma) = sched.coefficients(t, dae.b);
        let mut terms: [(f64, &[T]); 17] = [(0.0, &dae.w[..0]); 17];
        for g in 0..r {
            terms[g] = (sched.dt * gamma * isd * super::net::sigma(dae.act, h[g]), dae.col(g));
        }
        let mut nt = r;
        if let Some((rng, buf)) = noise.as_mut() {
            rng.fill(buf);
            terms[nt] = ((2.0 * sched.epsilon * sched.dt).sqrt(), &buf[..]);
            nt += 1;
        }
        let alpha = 1.0 + delta * sched.dt;
        // One fused pass: x ← (1 + Δdt)x + Σ terms, returning the next pre-activations.
        match r {
            1 => {
                let (p, _) = fused::combine_and_project::<T, 1>(x, alpha, &terms[..nt], [dae.col(0)]);
                h[0] = isd * p[0];
            }
            2 => {
                let (p, _) = fused::combine_and_project::<T, 2>(x, alpha, &terms[..nt], [dae.col(0), dae.col(1)]);
                h[0] = isd * p[0];
                h[1] = isd * p[1];
            }
            _ => {
                fused::combine_and_project::<T, 0>(x, alpha, &terms[..nt], []);
                for g in 0..r {
                    h[g] = isd * blas1::dot(dae.col(g), x);
                }
            }
        }
    }
}

/// The transport SDE of Z = wᵀX/√d (SPEC §4.8) on the sampler's grid, in place:
/// Z ← Z + dt(Δ Z + Γ 𝒬σ(Z)) + √(2ε dt) 𝒬^{1/2} B.
pub fn transport_in_place(
    z: &mut [f64],
    q_cal: &[f64],
    b: f64,
    act: Activation,
    sched: &SamplerSchedule,
    rng: Option<&mut ScalarRng>,
) {
    let r = z.len();
    let qh = if sched.epsilon > 0.0 { sqrt_psd(q_cal, r) } else { Vec::new() };
    let mut rng = rng;
    let mut sig = [0.0f64; 16];
    let mut xi = [0.0f64; 16];
    for k in 0..sched.steps() {
        let t = k as f64 * sched.dt;
        let (delta, gamma) = sched.coefficients(t, b);
        for g in 0..r {
            sig[g] = super::net::sigma(act, z[g]);
        }
        let zold: [f64; 16] = std::array::from_fn(|g| if g < r { z[g] } else { 0.0 });
        for g in 0..r {
            let mut qs = 0.0;
            for g2 in 0..r {
                qs += q_cal[g * r + g2] * sig[g2];
            }
            z[g] = zold[g] + sched.dt * (delta * zold[g] + gamma * qs);
        }
        if sched.epsilon > 0.0 {
            let rng = rng.as_mut().expect("transport with ε > 0 needs a random stream");
            for g in 0..r {
                xi[g] = rng.normal();
            }
            let s = (2.0 * sched.epsilon * sched.dt).sqrt();
            for g in 0..r {
                let mut v = 0.0;
                for g2 in 0..r {
                    v += qh[g * r + g2] * xi[g2];
                }
                z[g] += s * v;
            }
        }
    }
}

/// The stream of generation chunk `chunk` (common X₀ across ϑ: ϑ is not part of the name).
pub fn chunk_stream(cfg: &DaeConfig, generation: u64, chunk: u64) -> u64 {
    StreamId {
        system: SYSTEM_ID,
        experiment: hash_name(&cfg.name),
        d: cfg.d as u64,
        walker: (generation << 40) | (cfg.walker << 20) | chunk,
        kind: StreamKind::DiffusionNoise,
    }
    .seed(cfg.seed)
}

/// Generated samples: projections on the plane (n × k_E, row-major), the first `n_images` full samples,
/// and Z = wᵀX/√d of every sample (n × r).
#[derive(Clone, Debug)]
pub struct Generated {
    pub n: usize,
    pub proj: Vec<f64>,
    pub images: Vec<f64>,
    pub z: Vec<f64>,
    /// Variance of ⟨e, X⟩ along a fixed random unit e ⊥ span(w) (SPEC §4.13 3).
    pub orth_samples: Vec<f64>,
}

pub const CHUNK: usize = 256;

/// Per-chunk outputs: projections, images, Z, orthogonal projections.
type ChunkOut = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Draws `n` samples with the sampler, in parallel over fixed chunks of 256 (each its own stream, so
/// the result does not depend on the thread count).
pub fn generate_batch<T: Real>(
    cfg: &DaeConfig,
    dae: &Dae<T>,
    generation: u64,
    n: usize,
    plane: &[Vec<f64>],
    n_images: usize,
    orth_dir: Option<&[f64]>,
) -> Generated {
    let sched = SamplerSchedule::of(cfg);
    let (d, r) = (dae.d, dae.r);
    let ke = plane.len();
    let nchunks = n.div_ceil(CHUNK);
    let isd = 1.0 / (d as f64).sqrt();
    let parts: Vec<ChunkOut> = (0..nchunks)
        .into_par_iter()
        .map(|c| {
            let mut rng = NormalRng::from_seed(chunk_stream(cfg, generation, c as u64));
            let mut nrng = NormalRng::from_seed(chunk_stream(cfg, generation, c as u64) ^ 0x5eed_f5de);
            let m = CHUNK.min(n - c * CHUNK);
            let mut x = vec![T::default(); d];
            let mut buf = vec![T::default(); d];
            let (mut proj, mut imgs, mut zs, mut orth) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for i in 0..m {
                rng.fill(&mut x);
                let noise = if sched.epsilon > 0.0 { Some((&mut nrng, &mut buf[..])) } else { None };
                sample_in_place(dae, &mut x, &sched, noise);
                let xf: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
                for e in plane {
                    proj.push(blas1::dot(e, &xf));
                }
                for g in 0..r {
                    zs.push(isd * blas1::dot(dae.col(g), &x));
                }
                if let Some(e) = orth_dir {
                    orth.push(blas1::dot(e, &xf));
                }
                if c * CHUNK + i < n_images {
                    imgs.extend_from_slice(&xf);
                }
            }
            (proj, imgs, zs, orth)
        })
        .collect();
    let mut g =
        Generated { n, proj: Vec::with_capacity(n * ke), images: Vec::new(), z: Vec::new(), orth_samples: Vec::new() };
    for (p, im, z, o) in parts {
        g.proj.extend(p);
        g.images.extend(im);
        g.z.extend(z);
        g.orth_samples.extend(o);
    }
    g
}

/// A uniform grid over [lo, hi] with n points.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

impl Axis {
    pub fn step(&self) -> f64 {
        (self.hi - self.lo) / (self.n - 1) as f64
    }
    pub fn at(&self, i: usize) -> f64 {
        self.lo + i as f64 * self.step()
    }
}

/// The theory's projected law on k_E = 1 or 2 directions: Eᵀx =ᵈ G𝒬⁺Z_t + √v ξ,
/// ξ ~ N(0, I − G𝒬⁺Gᵀ) (SPEC §4.8).
pub struct ProjectedTheory {
    /// The mean map C = G𝒬⁺ (k_E × r).
    pub cmap: Vec<f64>,
    /// Covariance of the Gaussian part, v(I − G𝒬⁺Gᵀ) (k_E × k_E).
    pub cov: Vec<f64>,
    pub k_e: usize,
    pub r: usize,
    pub v: f64,
}

impl ProjectedTheory {
    /// From G (k_E×r), 𝒬 and b; v is the discrete sampler's orthogonal variance.
    pub fn new(g: &[f64], q_cal: &[f64], b: f64, r: usize, sched: &SamplerSchedule) -> Self {
        let k_e = g.len() / r;
        let qp = pinv_sym(q_cal, r);
        let cmap = matmul(g, &qp, k_e, r, r);
        let gqg = matmul(&cmap, &transpose(g, k_e, r), k_e, r, k_e);
        let v = sched.orthogonal_variance(b);
        let mut cov = vec![0.0; k_e * k_e];
        for i in 0..k_e {
            for j in 0..k_e {
                cov[i * k_e + j] = v * (if i == j { 1.0 } else { 0.0 } - gqg[i * k_e + j]);
            }
        }
        ProjectedTheory { cmap, cov, k_e, r, v }
    }

    /// Means C Z_t for transported samples Z (n × r).
    pub fn means(&self, z: &[f64]) -> Vec<f64> {
        let n = z.len() / self.r;
        let mut out = vec![0.0; n * self.k_e];
        for i in 0..n {
            for a in 0..self.k_e {
                let mut s = 0.0;
                for g in 0..self.r {
                    s += self.cmap[a * self.r + g] * z[i * self.r + g];
                }
                out[i * self.k_e + a] = s;
            }
        }
        out
    }

    /// Mean and covariance of the projected law from transported samples.
    pub fn moments(&self, z: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let k = self.k_e;
        let mu = self.means(z);
        let n = mu.len() / k;
        let mut mean = vec![0.0; k];
        for i in 0..n {
            for a in 0..k {
                mean[a] += mu[i * k + a] / n as f64;
            }
        }
        let mut cov = self.cov.clone();
        for i in 0..n {
            for a in 0..k {
                for c in 0..k {
                    cov[a * k + c] += (mu[i * k + a] - mean[a]) * (mu[i * k + c] - mean[c]) / n as f64;
                }
            }
        }
        (mean, cov)
    }
}

/// Transported samples Z_t from Z₀ ~ N(0, 𝒬): `n` samples (n × r), from `seed`.
pub fn transported_samples(
    q_cal: &[f64],
    b: f64,
    r: usize,
    act: Activation,
    sched: &SamplerSchedule,
    n: usize,
    seed: u64,
) -> Vec<f64> {
    let sq = sqrt_psd(q_cal, r);
    let nchunks = n.div_ceil(4096);
    let parts: Vec<Vec<f64>> = (0..nchunks)
        .into_par_iter()
        .map(|c| {
            let mut rng = ScalarRng::from_seed(crate::rng::mix64(seed ^ c as u64));
            let m = 4096.min(n - c * 4096);
            let mut out = Vec::with_capacity(m * r);
            let mut g = vec![0.0; r];
            let mut z = vec![0.0; r];
            for _ in 0..m {
                g.iter_mut().for_each(|v| *v = rng.normal());
                for a in 0..r {
                    z[a] = (0..r).map(|k| sq[a * r + k] * g[k]).sum();
                }
                transport_in_place(&mut z, q_cal, b, act, sched, Some(&mut rng));
                out.extend_from_slice(&z);
            }
            out
        })
        .collect();
    parts.concat()
}

/// Density on a 1-D grid of a mixture of N(mᵢ, s²) with equal weights over `means`, by linear binning
/// of the means on the grid and convolution with the Gaussian kernel (variance s² + floor).
pub fn binned_density_1d(means: &[f64], var: f64, axis: Axis) -> Vec<f64> {
    let h = axis.step();
    let n = axis.n;
    let mut bins = vec![0.0; n];
    let wt = 1.0 / means.len() as f64;
    for &m in means {
        let u = (m - axis.lo) / h;
        if u < 0.0 || u > (n - 1) as f64 {
            continue;
        }
        let i = (u.floor() as usize).min(n - 2);
        let f = u - i as f64;
        bins[i] += wt * (1.0 - f);
        bins[i + 1] += wt * f;
    }
    // A floor of h² keeps the kernel resolved on the grid.
    let s2 = var.max(0.0) + h * h;
    let half = ((8.0 * s2.sqrt()) / h).ceil() as usize;
    let kern: Vec<f64> =
        (0..=half).map(|j| (-0.5 * (j as f64 * h).powi(2) / s2).exp() / (std::f64::consts::TAU * s2).sqrt()).collect();
    let mut out = vec![0.0; n];
    for (i, &bi) in bins.iter().enumerate() {
        if bi == 0.0 {
            continue;
        }
        let lo = i.saturating_sub(half);
        let hi = (i + half).min(n - 1);
        for (j, o) in out.iter_mut().enumerate().take(hi + 1).skip(lo) {
            *o += bi * kern[i.abs_diff(j)];
        }
    }
    out
}

/// 2-D version on an (ax × ay) grid (row-major, x fastest), kernel covariance `cov` + h² floor.
pub fn binned_density_2d(means: &[f64], cov: &[f64], ax: Axis, ay: Axis) -> Vec<f64> {
    let (nx, ny) = (ax.n, ay.n);
    let (hx, hy) = (ax.step(), ay.step());
    let mut bins = vec![0.0; nx * ny];
    let n = means.len() / 2;
    let wt = 1.0 / n as f64;
    for i in 0..n {
        let ux = (means[2 * i] - ax.lo) / hx;
        let uy = (means[2 * i + 1] - ay.lo) / hy;
        if ux < 0.0 || uy < 0.0 || ux > (nx - 1) as f64 || uy > (ny - 1) as f64 {
            continue;
        }
        let ix = (ux.floor() as usize).min(nx - 2);
        let iy = (uy.floor() as usize).min(ny - 2);
        let (fx, fy) = (ux - ix as f64, uy - iy as f64);
        bins[iy * nx + ix] += wt * (1.0 - fx) * (1.0 - fy);
        bins[iy * nx + ix + 1] += wt * fx * (1.0 - fy);
        bins[(iy + 1) * nx + ix] += wt * (1.0 - fx) * fy;
        bins[(iy + 1) * nx + ix + 1] += wt * fx * fy;
    }
    let c = [cov[0] + hx * hx, cov[1], cov[2], cov[3] + hy * hy];
    let det = c[0] * c[3] - c[1] * c[2];
    let (i00, i01, i11) = (c[3] / det, -c[1] / det, c[0] / det);
    let norm = 1.0 / (std::f64::consts::TAU * det.sqrt());
    let kx = ((8.0 * c[0].sqrt()) / hx).ceil() as i64;
    let ky = ((8.0 * c[3].sqrt()) / hy).ceil() as i64;
    let mut kern = vec![0.0; ((2 * kx + 1) * (2 * ky + 1)) as usize];
    for dy in -ky..=ky {
        for dx in -kx..=kx {
            let (x, y) = (dx as f64 * hx, dy as f64 * hy);
            let q = i00 * x * x + 2.0 * i01 * x * y + i11 * y * y;
            kern[((dy + ky) * (2 * kx + 1) + dx + kx) as usize] = norm * (-0.5 * q).exp();
        }
    }
    let mut out = vec![0.0; nx * ny];
    for iy in 0..ny {
        for ix in 0..nx {
            let bv = bins[iy * nx + ix];
            if bv == 0.0 {
                continue;
            }
            let y0 = (iy as i64 - ky).max(0);
            let y1 = (iy as i64 + ky).min(ny as i64 - 1);
            let x0 = (ix as i64 - kx).max(0);
            let x1 = (ix as i64 + kx).min(nx as i64 - 1);
            for jy in y0..=y1 {
                let krow = ((jy - iy as i64 + ky) * (2 * kx + 1)) as usize;
                for jx in x0..=x1 {
                    out[jy as usize * nx + jx as usize] += bv * kern[krow + (jx - ix as i64 + kx) as usize];
                }
            }
        }
    }
    out
}

/// The theory's 1-D density along a single direction (G is 1×r) on `axis`. For r = 1 the map Z₀ ↦ Z_t
/// is monotone: the N(0, 𝒬) mass of each cell of a fine Z₀ grid is spread uniformly over its image and
/// convolved exactly with N(0, s²) (no sampling error); for r ≥ 2, `n_z` transported samples are binned.
#[allow(clippy::too_many_arguments)]
pub fn theory_density_1d(
    g: &[f64],
    q_cal: &[f64],
    b: f64,
    r: usize,
    act: Activation,
    sched: &SamplerSchedule,
    axis: Axis,
    n_z: usize,
    seed: u64,
) -> Vec<f64> {
    let pt = ProjectedTheory::new(g, q_cal, b, r, sched);
    let s2 = pt.cov[0].max(0.0);
    if r == 1 && sched.epsilon == 0.0 {
        let sq = q_cal[0].max(0.0).sqrt();
        let nc = 4000;
        let (ulo, uhi) = (-8.5, 8.5);
        let du = (uhi - ulo) / nc as f64;
        let mut img = Vec::with_capacity(nc + 1);
        for i in 0..=nc {
            let mut z = [sq * (ulo + i as f64 * du)];
            transport_in_place(&mut z, q_cal, b, act, sched, None);
            img.push(pt.cmap[0] * z[0]);
        }
        let phi = |u: f64| 0.5 * libm::erfc(-u / std::f64::consts::SQRT_2);
        let s = (s2 + 1e-12).sqrt();
        let h = axis.step();
        let mut out = vec![0.0; axis.n];
        for i in 0..nc {
            let mass = phi(ulo + (i + 1) as f64 * du) - phi(ulo + i as f64 * du);
            let (a, c) = if img[i] <= img[i + 1] { (img[i], img[i + 1]) } else { (img[i + 1], img[i]) };
            let lo = (((a - 8.0 * s - axis.lo) / h).floor().max(0.0)) as usize;
            let hi = (((c + 8.0 * s - axis.lo) / h).ceil().min((axis.n - 1) as f64)).max(0.0) as usize;
            let width = c - a;
            for (j, o) in out.iter_mut().enumerate().take(hi + 1).skip(lo) {
                let y = axis.at(j);
                let p = if width > 1e-9 * s.max(1e-300) {
                    (phi((y - a) / s) - phi((y - c) / s)) / width
                } else {
                    let zz = (y - 0.5 * (a + c)) / s;
                    (-0.5 * zz * zz).exp() / (std::f64::consts::TAU.sqrt() * s)
                };
                *o += mass * p;
            }
        }
        return out;
    }
    let z = transported_samples(q_cal, b, r, act, sched, n_z, seed);
    binned_density_1d(&pt.means(&z), s2, axis)
}

/// The theory's 2-D density on the plane (G is 2×r) over `n_z` transported samples.
#[allow(clippy::too_many_arguments)]
pub fn theory_density_2d(
    g: &[f64],
    q_cal: &[f64],
    b: f64,
    r: usize,
    act: Activation,
    sched: &SamplerSchedule,
    ax: Axis,
    ay: Axis,
    n_z: usize,
    seed: u64,
) -> Vec<f64> {
    let pt = ProjectedTheory::new(g, q_cal, b, r, sched);
    let z = transported_samples(q_cal, b, r, act, sched, n_z, seed);
    binned_density_2d(&pt.means(&z), &pt.cov, ax, ay)
}

/// Gaussian KDE (Silverman bandwidth 1.06 σ̂ n^{-1/5}) of 1-D samples on `axis`.
pub fn kde_1d(samples: &[f64], axis: Axis) -> Vec<f64> {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let sd = (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let bw = 1.06 * sd * n.powf(-0.2);
    binned_density_1d(samples, (bw * bw - axis.step().powi(2)).max(0.0), axis)
}

/// Gaussian KDE of 2-D samples (row-major n×2) with a diagonal Scott bandwidth.
pub fn kde_2d(samples: &[f64], ax: Axis, ay: Axis) -> Vec<f64> {
    let n = samples.len() / 2;
    let nf = n as f64;
    let (mut m0, mut m1) = (0.0, 0.0);
    for i in 0..n {
        m0 += samples[2 * i] / nf;
        m1 += samples[2 * i + 1] / nf;
    }
    let (mut v0, mut v1) = (0.0, 0.0);
    for i in 0..n {
        v0 += (samples[2 * i] - m0).powi(2) / (nf - 1.0);
        v1 += (samples[2 * i + 1] - m1).powi(2) / (nf - 1.0);
    }
    let f = nf.powf(-1.0 / 3.0);
    let cov = [(v0 * f * f - ax.step().powi(2)).max(0.0), 0.0, 0.0, (v1 * f * f - ay.step().powi(2)).max(0.0)];
    binned_density_2d(samples, &cov, ax, ay)
}
