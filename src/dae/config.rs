//! Configuration of a System B experiment (SPEC §4), read from TOML. Every unknown choice of the paper is
//! an option here with the SPEC's default; [`DaeConfig::validate`] names the field, the value and the
//! allowed range of anything out of bounds.

use crate::net::Activation;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One System B experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaeConfig {
    /// Experiment name; hashed into every random stream.
    pub name: String,
    /// Master seed.
    pub seed: u64,
    /// Replicate index (the walker field of the stream names).
    pub walker: u64,
    /// Ambient dimension (forced to 784 by the MNIST targets).
    pub d: usize,
    /// Hidden units r.
    pub r: usize,
    pub activation: Activation,
    /// Learning rate η.
    pub eta: f64,
    /// Weight decay λ (the regulariser λ/(2d)‖w‖²).
    pub lambda: f64,
    /// The time set 𝒢 of the loss (interpolant x_t = α_t x₀ + β_t x₁, α_t = 1 − t, β_t = t).
    pub times: Vec<f64>,
    /// One x₀ shared by all t ∈ 𝒢 of a sample (only `true` is implemented).
    pub share_noise_across_times: bool,
    /// Training time ϑ = ην/d at which training stops.
    pub theta_max: f64,
    /// Record the statistics every this many steps as well as on the log grid; 0 means d/100.
    pub record_every: usize,
    /// Element type of the d-length vectors: "f64" (default) or "f32".
    pub precision: Precision,
    pub init: InitConfig,
    pub target: TargetConfig,
    pub ode: OdeConfig,
    pub generate: GenerateConfig,
    pub hellinger: HellingerConfig,
    pub collapse: CollapseConfig,
    /// Which figure `dae figures` draws for this config.
    pub figure: FigureKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    F64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureKind {
    /// M, 𝒬, b vs ϑ, simulation solid and ODE dashed (paper Fig. 1 and 5).
    Stats,
    /// Projected densities at several ϑ and Hellinger vs ϑ (paper Fig. 2).
    Densities,
    /// Projected densities on the top-2 PCs and generated images (paper Fig. 3).
    Mnist,
    /// The generations of the collapse loop (paper Fig. 4).
    Collapse,
}

/// Initial weights (SPEC §4.3).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InitConfig {
    /// `centroids` (w_γ along μ_γ), `principal` (along the γ-th principal component), `random`
    /// (iid N(0, scale²) entries), or `auto` (centroids for mixtures, principal for Gaussians).
    pub kind: InitKind,
    /// c₀ = 0.1.
    pub scale: f64,
    /// Whether `scale` is the coefficient c₀ (w_γ = c₀√d μ_γ) or the norm ‖w_γ‖/√d.
    pub scale_mode: ScaleMode,
    /// b₀.
    pub b0: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitKind {
    Auto,
    Centroids,
    Principal,
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMode {
    Coefficient,
    Norm,
}

/// The data law ρ (SPEC §4.10).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    pub kind: TargetKind,
    /// Centroids in the basis below (each padded with zeros to the basis size); for `mixture`.
    pub centroids: Vec<Vec<f64>>,
    /// Cluster weights π_c (normalised); empty means equal weights.
    pub weights: Vec<f64>,
    /// Per-coordinate variance θ of every cluster (Σ = θ I).
    pub variance: f64,
    /// `coordinate` (centroid coordinates on e₁, e₂, …) or `random` (on a random orthonormal basis).
    pub basis: CentroidBasis,
    /// Centroid norm of the `bimodal` preset (‖μ‖, default 3).
    pub bimodal_norm: f64,
    /// `.npy` file of a d×d covariance, for `gaussian_npy`.
    pub covariance_npy: Option<String>,
    /// `.npy` file of a mean vector (optional), for `gaussian_npy`.
    pub mean_npy: Option<String>,
    /// MNIST digit of `mnist_gauss` (7 for `mnist7_gauss`).
    pub digit: u8,
    /// Use the digit's mean image as the mean (default: zero mean).
    pub use_mean: bool,
    /// Covariance scaling of the MNIST target.
    pub scaling: MnistScaling,
    /// Rescale a `gaussian_npy` covariance to trace d.
    pub normalise_trace: bool,
    /// Directory holding the MNIST IDX files; empty means `data/cache/mnist` (or $DIFFEXP_DATA/mnist).
    pub data_dir: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Mixture,
    Bimodal,
    Trimodal,
    Mnist7Gauss,
    GaussianNpy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CentroidBasis {
    Coordinate,
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MnistScaling {
    /// Pixels in [0, 1], covariance rescaled to trace d (default).
    TraceD,
    /// Pixels in [0, 1], no rescaling.
    Raw01,
    /// Raw 0–255 values, centred, divided by 400.
    CentredDiv400,
}

/// Theory (SPEC §4.5–4.7).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OdeConfig {
    /// `quadrature` (tensor Gauss–Hermite after conditioning on ω) or `monte_carlo`.
    pub expectation: Expectation,
    /// Gauss–Hermite nodes per dimension.
    pub nodes: usize,
    /// Monte Carlo samples of (y₁, y₀) per cluster per right-hand-side evaluation.
    pub n_mc: usize,
    /// RK4 step in ϑ.
    pub dtheta: f64,
    /// Leading principal components tracked as spikes (no noise term) in the block-spectral ODE.
    pub k_spikes: usize,
    /// Maximum number of log-width eigenvalue blocks of the remaining spectrum.
    pub n_blocks: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    Quadrature,
    MonteCarlo,
}

/// Generation (SPEC §4.8).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateConfig {
    /// Training times ϑ at which the DAE is snapshotted and used to generate.
    pub thetas: Vec<f64>,
    /// Stop time of the sampler.
    pub t_end: f64,
    pub dt: f64,
    /// Sampler noise ε (0: probability-flow ODE).
    pub epsilon: f64,
    /// Generated samples per ϑ.
    pub n_gen: usize,
    /// Transported Z samples for the theory density when r ≥ 2.
    pub n_z: usize,
    /// Plotting plane: `centroid_random` (μ̂₁ and a random unit vector ⊥ μ), `centroids` (Gram–Schmidt
    /// of μ₁, μ₂), `principal` (top-2 principal components).
    pub plane: PlaneKind,
    /// Grid points per axis of the density images.
    pub grid: usize,
    /// Half-width of the density images, in units of the projected standard deviation of the target.
    pub extent: f64,
    /// Generated d-dimensional samples kept as images (the first ones, common X₀ across ϑ).
    pub n_images: usize,
    /// Training times of the Hellinger-vs-ϑ curve (empty: `thetas`).
    pub hellinger_thetas: Vec<f64>,
    /// Where the theory density takes (𝒬, G, b) at ϑ: `ode` (default) or `simulation` (SPEC §4.8 allows both).
    pub theory_stats: TheoryStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TheoryStats {
    Ode,
    Simulation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaneKind {
    Auto,
    CentroidRandom,
    Centroids,
    Principal,
}

/// Hellinger distance (SPEC §4.9).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HellingerConfig {
    pub convention: HellingerConvention,
    pub target: HellingerTarget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HellingerConvention {
    Half,
    NoHalf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HellingerTarget {
    Rho,
    XTend,
}

/// Model collapse (SPEC §4.11).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollapseConfig {
    pub generations: usize,
    /// Training time of every generation.
    pub theta_g: f64,
}

impl Default for DaeConfig {
    fn default() -> Self {
        Self {
            name: "dae".into(),
            seed: 0,
            walker: 0,
            d: 1000,
            r: 2,
            activation: Activation::Tanh,
            eta: 0.2,
            lambda: 0.0,
            times: vec![0.5],
            share_noise_across_times: true,
            theta_max: 4.0,
            record_every: 0,
            precision: Precision::F64,
            init: InitConfig::default(),
            target: TargetConfig::default(),
            ode: OdeConfig::default(),
            generate: GenerateConfig::default(),
            hellinger: HellingerConfig::default(),
            collapse: CollapseConfig::default(),
            figure: FigureKind::Stats,
        }
    }
}

impl Default for InitConfig {
    fn default() -> Self {
        Self { kind: InitKind::Auto, scale: 0.1, scale_mode: ScaleMode::Coefficient, b0: 0.0 }
    }
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            kind: TargetKind::Trimodal,
            centroids: Vec::new(),
            weights: Vec::new(),
            variance: 1.0,
            basis: CentroidBasis::Coordinate,
            bimodal_norm: 3.0,
            covariance_npy: None,
            mean_npy: None,
            digit: 7,
            use_mean: false,
            scaling: MnistScaling::TraceD,
            normalise_trace: false,
            data_dir: String::new(),
        }
    }
}

impl Default for OdeConfig {
    fn default() -> Self {
        Self { expectation: Expectation::Quadrature, nodes: 41, n_mc: 2000, dtheta: 0.01, k_spikes: 10, n_blocks: 64 }
    }
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            thetas: vec![0.5, 1.0, 2.0, 4.0],
            t_end: 0.9,
            dt: 0.01,
            epsilon: 0.0,
            n_gen: 4000,
            n_z: 100_000,
            plane: PlaneKind::Auto,
            grid: 120,
            extent: 4.0,
            n_images: 8,
            hellinger_thetas: Vec::new(),
            theory_stats: TheoryStats::Ode,
        }
    }
}

impl Default for HellingerConfig {
    fn default() -> Self {
        Self { convention: HellingerConvention::Half, target: HellingerTarget::Rho }
    }
}

impl Default for CollapseConfig {
    fn default() -> Self {
        Self { generations: 2, theta_g: 2.8 }
    }
}

fn range_err<T: std::fmt::Debug>(field: &str, value: T, allowed: &str) -> anyhow::Error {
    anyhow::anyhow!("config field `{field}` = {value:?} is out of range; allowed: {allowed}")
}

impl DaeConfig {
    /// Reads and validates a TOML config.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: DaeConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The reference settings of SPEC §4.12 by name: `trimodal` (Fig. 1/5), `bimodal` (Fig. 2),
    /// `mnist7` (Fig. 3), `mnist7_collapse` (Fig. 4).
    pub fn preset(name: &str) -> Result<Self> {
        let mut c = DaeConfig { name: name.to_string(), ..Default::default() };
        match name {
            "trimodal" => {}
            "bimodal" => {
                c.r = 1;
                c.lambda = 1.5;
                c.target.kind = TargetKind::Bimodal;
                c.generate.t_end = 0.9;
                c.figure = FigureKind::Densities;
            }
            "mnist7" => {
                c.d = 784;
                c.lambda = 0.784;
                c.target.kind = TargetKind::Mnist7Gauss;
                c.generate.t_end = 0.98;
                c.figure = FigureKind::Mnist;
            }
            "mnist7_collapse" => {
                c.d = 784;
                c.lambda = 0.784;
                c.target.kind = TargetKind::Mnist7Gauss;
                c.generate.t_end = 0.98;
                c.theta_max = 2.8;
                c.figure = FigureKind::Collapse;
            }
            _ => bail!("unknown preset `{name}`; allowed: trimodal, bimodal, mnist7, mnist7_collapse"),
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every field; the error names the field, its value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(range_err("name", &self.name, "a non-empty string"));
        }
        if !(2..=1_000_000).contains(&self.d) {
            return Err(range_err("d", self.d, "2 ≤ d ≤ 1000000"));
        }
        if !(1..=16).contains(&self.r) {
            return Err(range_err("r", self.r, "1 ≤ r ≤ 16"));
        }
        if !(self.eta > 0.0 && self.eta <= 10.0) {
            return Err(range_err("eta", self.eta, "0 < eta ≤ 10"));
        }
        if !(self.lambda >= 0.0 && self.lambda <= 1e3) {
            return Err(range_err("lambda", self.lambda, "0 ≤ lambda ≤ 1000"));
        }
        if self.times.is_empty() || self.times.len() > 6 {
            return Err(range_err("times", &self.times, "1 to 6 times, each in (0, 1)"));
        }
        for &t in &self.times {
            if !(t > 0.0 && t < 1.0) {
                return Err(range_err("times", &self.times, "every t in (0, 1)"));
            }
        }
        if !self.share_noise_across_times {
            return Err(range_err(
                "share_noise_across_times",
                false,
                "true (independent noise per time is not implemented)",
            ));
        }
        if !(self.theta_max > 0.0 && self.theta_max <= 1e4) {
            return Err(range_err("theta_max", self.theta_max, "0 < theta_max ≤ 10000"));
        }
        if !(self.init.scale >= 0.0 && self.init.scale <= 100.0) {
            return Err(range_err("init.scale", self.init.scale, "0 ≤ init.scale ≤ 100"));
        }
        if !self.init.b0.is_finite() {
            return Err(range_err("init.b0", self.init.b0, "a finite number"));
        }
        let t = &self.target;
        if !(t.variance > 0.0 && t.variance.is_finite()) {
            return Err(range_err("target.variance", t.variance, "variance > 0"));
        }
        if t.kind == TargetKind::Mixture {
            if t.centroids.is_empty() {
                return Err(range_err(
                    "target.centroids",
                    &t.centroids,
                    "at least one centroid for kind = \"mixture\"",
                ));
            }
            let width = t.centroids.iter().map(|c| c.len()).max().unwrap_or(0);
            if width == 0 || width > self.d {
                return Err(range_err("target.centroids", &t.centroids, "centroids with 1..=d coordinates"));
            }
            if !t.weights.is_empty() && t.weights.len() != t.centroids.len() {
                return Err(range_err("target.weights", &t.weights, "empty or one weight per centroid"));
            }
        }
        if t.weights.iter().any(|&w| !(w > 0.0 && w.is_finite())) {
            return Err(range_err("target.weights", &t.weights, "positive finite weights"));
        }
        if !(t.bimodal_norm >= 0.0 && t.bimodal_norm <= 1e3) {
            return Err(range_err("target.bimodal_norm", t.bimodal_norm, "0 ≤ bimodal_norm ≤ 1000"));
        }
        if t.kind == TargetKind::GaussianNpy && t.covariance_npy.is_none() {
            return Err(range_err(
                "target.covariance_npy",
                "none",
                "a path to a d×d .npy file for kind = \"gaussian_npy\"",
            ));
        }
        if t.digit > 9 {
            return Err(range_err("target.digit", t.digit, "0..=9"));
        }
        let o = &self.ode;
        if !(2..=201).contains(&o.nodes) {
            return Err(range_err("ode.nodes", o.nodes, "2 ≤ nodes ≤ 201"));
        }
        if o.expectation == Expectation::Quadrature && o.nodes.pow(self.r.min(8) as u32) > 5_000_000 {
            return Err(range_err(
                "ode.nodes",
                o.nodes,
                "nodes^r ≤ 5e6 with quadrature (use expectation = \"monte_carlo\" for large r)",
            ));
        }
        if !(10..=100_000_000).contains(&o.n_mc) {
            return Err(range_err("ode.n_mc", o.n_mc, "10 ≤ n_mc ≤ 1e8"));
        }
        if !(o.dtheta > 0.0 && o.dtheta <= 0.1) {
            return Err(range_err("ode.dtheta", o.dtheta, "0 < dtheta ≤ 0.1"));
        }
        if o.k_spikes > 784 {
            return Err(range_err("ode.k_spikes", o.k_spikes, "0 ≤ k_spikes ≤ 784"));
        }
        if !(1..=1024).contains(&o.n_blocks) {
            return Err(range_err("ode.n_blocks", o.n_blocks, "1 ≤ n_blocks ≤ 1024"));
        }
        let g = &self.generate;
        if !(g.t_end > 0.0 && g.t_end <= 0.99) {
            return Err(range_err("generate.t_end", g.t_end, "0 < t_end ≤ 0.99"));
        }
        if !(g.dt > 0.0 && g.dt <= 0.1) {
            return Err(range_err("generate.dt", g.dt, "0 < dt ≤ 0.1"));
        }
        if !(g.epsilon >= 0.0 && g.epsilon <= 10.0) {
            return Err(range_err("generate.epsilon", g.epsilon, "0 ≤ epsilon ≤ 10"));
        }
        if !(1..=10_000_000).contains(&g.n_gen) {
            return Err(range_err("generate.n_gen", g.n_gen, "1 ≤ n_gen ≤ 1e7"));
        }
        if !(100..=100_000_000).contains(&g.n_z) {
            return Err(range_err("generate.n_z", g.n_z, "100 ≤ n_z ≤ 1e8"));
        }
        if g.thetas.iter().any(|&th| !(0.0..=1e4).contains(&th)) {
            return Err(range_err("generate.thetas", &g.thetas, "every ϑ in [0, 10000]"));
        }
        if !(16..=1000).contains(&g.grid) {
            return Err(range_err("generate.grid", g.grid, "16 ≤ grid ≤ 1000"));
        }
        if !(g.extent > 0.0 && g.extent <= 50.0) {
            return Err(range_err("generate.extent", g.extent, "0 < extent ≤ 50"));
        }
        if !(1..=100).contains(&self.collapse.generations) {
            return Err(range_err("collapse.generations", self.collapse.generations, "1 ≤ generations ≤ 100"));
        }
        if !(self.collapse.theta_g > 0.0 && self.collapse.theta_g <= 1e3) {
            return Err(range_err("collapse.theta_g", self.collapse.theta_g, "0 < theta_g ≤ 1000"));
        }
        Ok(())
    }

    /// Steps ν for a training time ϑ: ν = round(ϑ d / η).
    pub fn steps_for(&self, theta: f64) -> u64 {
        (theta * self.d as f64 / self.eta).round() as u64
    }

    /// Training time of `steps` steps.
    pub fn theta_of(&self, steps: u64) -> f64 {
        self.eta * steps as f64 / self.d as f64
    }

    /// Recording stride in steps (d/100 by default).
    pub fn record_stride(&self) -> u64 {
        if self.record_every > 0 { self.record_every as u64 } else { (self.d as u64 / 100).max(1) }
    }

    /// Interpolant coefficients (α_t, β_t) = (1 − t, t).
    pub fn alpha_beta(t: f64) -> (f64, f64) {
        (1.0 - t, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_errors_name_the_field() {
        for p in ["trimodal", "bimodal", "mnist7", "mnist7_collapse"] {
            DaeConfig::preset(p).unwrap();
        }
        let err = DaeConfig::from_toml("r = 0").unwrap_err().to_string();
        assert!(err.contains("`r`") && err.contains("0") && err.contains("1 ≤ r ≤ 16"), "{err}");
        let err = DaeConfig::from_toml("[generate]\nt_end = 0.995").unwrap_err().to_string();
        assert!(err.contains("generate.t_end") && err.contains("0.995"), "{err}");
        let err = DaeConfig::from_toml("bogus = 1").unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
