//! The mixed cumulant model (SPEC §2.1–2.3):
//! x = β_m m + √β_u λ u + S(√β_v ν v + z), S = I − c_S v vᵀ, applied in O(d) and never formed.

use super::latent::{Coupling, NuLaw, draw_latents};
use crate::rng::ScalarRng;
use diffexp_kernels::{AlignedVec, NormalRng, Real, blas1};
use serde::{Deserialize, Serialize};

/// Strengths and latent law of the model; all scalar quantities of SPEC §2.1–2.2 derive from these.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct McmParams {
    pub beta_m: f64,
    pub beta_u: f64,
    pub beta_v: f64,
    pub nu_law: NuLaw,
    pub coupling: Coupling,
}

impl McmParams {
    /// c_S = 1 − 1/√(1+β_v), written as β_v/(1+β_v+√(1+β_v)) to avoid cancellation at small β_v.
    pub fn c_s(&self) -> f64 {
        let b = self.beta_v;
        b / (1.0 + b + (1.0 + b).sqrt())
    }

    /// s_v = √(β_v/(1+β_v)), the weight of ν in ⟨v, x⟩.
    pub fn s_v(&self) -> f64 {
        (self.beta_v / (1.0 + self.beta_v)).sqrt()
    }

    /// E[λν] = E|ν₀|·m₁.
    pub fn e_lambda_nu(&self) -> f64 {
        self.nu_law.mean_abs() * self.coupling.moments()[0]
    }

    /// E[λ^k ν] = E|ν₀|·m_k for k = 1, 2, 3.
    pub fn e_lambda_k_nu(&self, k: usize) -> f64 {
        assert!((1..=3).contains(&k));
        self.nu_law.mean_abs() * self.coupling.moments()[k - 1]
    }

    /// c_uv = √β_u s_v E[λν], the u–v entry of Cov x.
    pub fn c_uv(&self) -> f64 {
        self.beta_u.sqrt() * self.s_v() * self.e_lambda_nu()
    }
}

/// How the three spikes are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpikeLayout {
    /// QR of a d×3 Gaussian matrix.
    #[default]
    Orthonormal,
    /// Independent uniform unit vectors (overlaps O(d^{-1/2})).
    Random,
}

/// The spikes m, u, v (unit norm) with their Gram matrix. Each starts on a cache line, as the
/// walkers' vectors do, so the fused passes' full-register loads never straddle two lines.
#[derive(Clone, Debug)]
pub struct Spikes<T: Real> {
    pub m: AlignedVec<T>,
    pub u: AlignedVec<T>,
    pub v: AlignedVec<T>,
    /// Gram matrix of (m, u, v) as stored (in `T`), accumulated in f64.
    pub gram: [[f64; 3]; 3],
}

impl<T: Real> Spikes<T> {
    /// Draws the spikes from `rng` (the walker-independent `Spikes` stream).
    pub fn draw(d: usize, layout: SpikeLayout, rng: &mut ScalarRng) -> Self {
        assert!(d >= 3 || layout == SpikeLayout::Random, "orthonormal spikes need d ≥ 3");
        let mut cols: Vec<Vec<f64>> = (0..3).map(|_| (0..d).map(|_| rng.normal()).collect()).collect();
        match layout {
            SpikeLayout::Orthonormal => {
                // Modified Gram–Schmidt, twice: the Q factor of a thin QR.
                for _pass in 0..2 {
                    for j in 0..3 {
                        for i in 0..j {
                            let (ci, cj) = split_two(&mut cols, i, j);
                            let r: f64 = ci.iter().zip(cj.iter()).map(|(a, b)| a * b).sum();
                            for (b, a) in cj.iter_mut().zip(ci.iter()) {
                                *b -= r * a;
                            }
                        }
                        normalise(&mut cols[j]);
                    }
                }
            }
            SpikeLayout::Random => cols.iter_mut().for_each(|c| normalise(c)),
        }
        let to_t = |c: &Vec<f64>| c.iter().map(|&x| T::from_f64(x)).collect::<AlignedVec<T>>();
        let (m, u, v) = (to_t(&cols[0]), to_t(&cols[1]), to_t(&cols[2]));
        let gram = gram3(&m, &u, &v);
        Spikes { m, u, v, gram }
    }

    /// The spikes as (name, vector) in the order m, u, v.
    pub fn named(&self) -> [(&'static str, &[T]); 3] {
        [("m", &self.m), ("u", &self.u), ("v", &self.v)]
    }

    pub fn dim(&self) -> usize {
        self.m.len()
    }
}

fn gram3<T: Real>(m: &[T], u: &[T], v: &[T]) -> [[f64; 3]; 3] {
    let s = [m, u, v];
    let mut g = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            g[i][j] = blas1::dot(s[i], s[j]);
        }
    }
    g
}

fn split_two(cols: &mut [Vec<f64>], i: usize, j: usize) -> (&Vec<f64>, &mut Vec<f64>) {
    assert!(i < j);
    let (lo, hi) = cols.split_at_mut(j);
    (&lo[i], &mut hi[0])
}

fn normalise(c: &mut [f64]) {
    let n = c.iter().map(|x| x * x).sum::<f64>().sqrt();
    c.iter_mut().for_each(|x| *x /= n);
}

/// The three scalar coefficients of one clean sample beyond its bulk z:
/// x = z + c_m m + c_u u + c_v v − c_S⟨v, z⟩ v.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleShift {
    pub lambda: f64,
    pub nu: f64,
    pub c_m: f64,
    pub c_u: f64,
    pub c_v: f64,
}

/// A sampler of the mixed cumulant model in dimension d (SPEC §2.1).
#[derive(Clone, Debug)]
pub struct MixedCumulantModel<T: Real> {
    pub params: McmParams,
    pub spikes: Spikes<T>,
    /// c_S, cached.
    pub c_s: f64,
    /// s_v, cached.
    pub s_v: f64,
}

impl<T: Real> MixedCumulantModel<T> {
    pub fn new(params: McmParams, spikes: Spikes<T>) -> Self {
        Self { c_s: params.c_s(), s_v: params.s_v(), params, spikes }
    }

    pub fn dim(&self) -> usize {
        self.spikes.dim()
    }

    /// Draws the latents of one sample and returns its shift coefficients.
    #[inline]
    pub fn draw_shift(&self, latent: &mut ScalarRng) -> SampleShift {
        let p = &self.params;
        let (lambda, nu) = draw_latents(p.nu_law, p.coupling, latent);
        SampleShift { lambda, nu, c_m: p.beta_m, c_u: p.beta_u.sqrt() * lambda, c_v: self.s_v * nu }
    }

    /// Writes one sample into `x` (bulk normals from `normals`, latents from `latent`).
    /// This is the reference O(d) form: one dot product and three axpys.
    #[track_caller]
    pub fn sample_into(&self, latent: &mut ScalarRng, normals: &mut NormalRng, x: &mut [T]) -> SampleShift {
        assert_eq!(x.len(), self.dim(), "sample_into: x must have length d");
        let sh = self.draw_shift(latent);
        normals.fill(x);
        self.apply_shift(&sh, x);
        sh
    }

    /// Turns bulk normals z (in `x`) into the sample with shift `sh`.
    pub fn apply_shift(&self, sh: &SampleShift, x: &mut [T]) {
        let s = &self.spikes;
        let vz = blas1::dot(&s.v, x);
        blas1::axpy(sh.c_m, &s.m, x);
        blas1::axpy(sh.c_u, &s.u, x);
        blas1::axpy(sh.c_v - self.c_s * vz, &s.v, x);
    }

    /// One model sample into `x` and one surrogate sample into `xg` built from the same bulk normals z
    /// (common random numbers: their loss difference then has no O(d) bulk fluctuation).
    pub fn sample_with_surrogate(
        &self,
        surrogate: &GaussianSurrogate<T>,
        latent: &mut ScalarRng,
        normals: &mut NormalRng,
        x: &mut [T],
        xg: &mut [T],
    ) {
        let sh = self.draw_shift(latent);
        normals.fill(x);
        xg.copy_from_slice(x);
        self.apply_shift(&sh, x);
        surrogate.apply_to_bulk(xg);
    }

    /// E x = β_m m.
    pub fn mean(&self) -> Vec<f64> {
        self.spikes.m.iter().map(|&x| self.params.beta_m * x.to_f64()).collect()
    }

    /// Cov x = I + β_u uuᵀ + c_uv(uvᵀ + vuᵀ), dense (for tests at small d).
    pub fn covariance_dense(&self) -> Vec<Vec<f64>> {
        let d = self.dim();
        let (u, v) = (&self.spikes.u, &self.spikes.v);
        let (bu, cuv) = (self.params.beta_u, self.params.c_uv());
        (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        let (ui, uj, vi, vj) = (u[i].to_f64(), u[j].to_f64(), v[i].to_f64(), v[j].to_f64());
                        (i == j) as u8 as f64 + bu * ui * uj + cuv * (ui * vj + vi * uj)
                    })
                    .collect()
            })
            .collect()
    }

    /// E‖x‖² = d + β_u + β_m² + 2 c_uv ⟨u, v⟩ (using the stored spikes' Gram matrix).
    pub fn mean_sq_norm(&self) -> f64 {
        let p = &self.params;
        let g = &self.spikes.gram;
        self.dim() as f64 + p.beta_u * g[1][1] + p.beta_m * p.beta_m * g[0][0] + 2.0 * p.c_uv() * g[1][2]
    }

    /// The Gaussian surrogate N(E x, Cov x) of this model (SPEC §2.3).
    pub fn surrogate(&self) -> GaussianSurrogate<T> {
        GaussianSurrogate::new(self)
    }
}

/// O(d) sampler of N(E x, Cov x) for the mixed cumulant model (SPEC §2.3).
#[derive(Clone, Debug)]
pub struct GaussianSurrogate<T: Real> {
    beta_m: f64,
    m: AlignedVec<T>,
    /// Orthonormal basis (e₁, e₂) of span(u, v).
    e: [AlignedVec<T>; 2],
    /// L₂ − I (lower triangular), applied to g = E₂ᵀ z.
    l_minus_i: [[f64; 2]; 2],
}

impl<T: Real> GaussianSurrogate<T> {
    fn new(model: &MixedCumulantModel<T>) -> Self {
        let s = &model.spikes;
        let p = &model.params;
        // Gram–Schmidt on (u, v) in f64.
        let u: Vec<f64> = s.u.iter().map(|x| x.to_f64()).collect();
        let v: Vec<f64> = s.v.iter().map(|x| x.to_f64()).collect();
        let nu = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        let e1: Vec<f64> = u.iter().map(|x| x / nu).collect();
        let r = e1.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
        let mut e2: Vec<f64> = v.iter().zip(&e1).map(|(b, a)| b - r * a).collect();
        let n2 = e2.iter().map(|x| x * x).sum::<f64>().sqrt();
        e2.iter_mut().for_each(|x| *x /= n2);
        // C₂ = E₂ᵀ Cov E₂ with Cov = I + β_u uuᵀ + c_uv(uvᵀ + vuᵀ).
        let dotf = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let eu = [dotf(&e1, &u), dotf(&e2, &u)];
        let ev = [dotf(&e1, &v), dotf(&e2, &v)];
        let cuv = p.c_uv();
        let mut c = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                c[i][j] = (i == j) as u8 as f64 + p.beta_u * eu[i] * eu[j] + cuv * (eu[i] * ev[j] + ev[i] * eu[j]);
            }
        }
        let l00 = c[0][0].sqrt();
        let l10 = c[1][0] / l00;
        let l11 = (c[1][1] - l10 * l10).sqrt();
        let to_t = |c: &Vec<f64>| c.iter().map(|&x| T::from_f64(x)).collect::<AlignedVec<T>>();
        Self {
            beta_m: p.beta_m,
            m: s.m.clone(),
            e: [to_t(&e1), to_t(&e2)],
            l_minus_i: [[l00 - 1.0, 0.0], [l10, l11 - 1.0]],
        }
    }

    /// Writes one surrogate sample into `x`: x_G = β_m m + z + E₂(L₂g − g), g = E₂ᵀz.
    pub fn sample_into(&self, normals: &mut NormalRng, x: &mut [T]) {
        normals.fill(x);
        self.apply_to_bulk(x);
    }

    /// Turns bulk normals z (in `x`) into the surrogate sample built from them.
    pub fn apply_to_bulk(&self, x: &mut [T]) {
        let g = [blas1::dot(&self.e[0], x), blas1::dot(&self.e[1], x)];
        let l = &self.l_minus_i;
        let c0 = l[0][0] * g[0];
        let c1 = l[1][0] * g[0] + l[1][1] * g[1];
        blas1::axpy(self.beta_m, &self.m, x);
        blas1::axpy(c0, &self.e[0], x);
        blas1::axpy(c1, &self.e[1], x);
    }

    /// det C₂ = 1 + β_u − c_uv² for orthonormal spikes (> 0 always).
    pub fn det_c2(&self) -> f64 {
        let l00 = self.l_minus_i[0][0] + 1.0;
        let l11 = self.l_minus_i[1][1] + 1.0;
        (l00 * l11).powi(2)
    }
}
