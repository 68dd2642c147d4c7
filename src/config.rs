//! Experiment configuration for System A (TOML). Every field has a default; `validate` checks every
//! range and names the field, the value and what is allowed.

use crate::model::{Coupling, McmParams, NuLaw, SpikeLayout};
use crate::net::Activation;
use crate::net::two_layer::Tying;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A configuration error: which field, what value, what is allowed.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub field: String,
    pub value: String,
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config: `{}` = {} (allowed: {})", self.field, self.value, self.allowed)
    }
}
impl std::error::Error for ConfigError {}

fn err(field: &str, value: impl fmt::Display, allowed: &str) -> ConfigError {
    ConfigError { field: field.into(), value: value.to_string(), allowed: allowed.into() }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub experiment: ExperimentConfig,
    pub model: ModelConfig,
    pub noise: NoiseConfig,
    pub denoiser: DenoiserConfig,
    pub train: TrainConfig,
    pub observe: ObserveConfig,
    pub study: StudyConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 d-length vectors with f64 accumulations (default).
    #[default]
    F32,
    /// f64 everywhere, for validating the f32 mode.
    F64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Simulate the d-dimensional vectors.
    #[default]
    Full,
    /// Exact dimension-free simulation of the low-dimensional Markov chain (SPEC §3).
    Reduced,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Names the experiment; part of every random stream's identity.
    pub name: String,
    /// Master seed.
    pub seed: u64,
    pub precision: Precision,
    pub engine: Engine,
    /// Dimension for `diffexp run` (a study uses `study.dims`).
    pub d: usize,
    /// Worker threads (0 = all cores). Results do not depend on it.
    pub threads: usize,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self { name: "default".into(), seed: 1, precision: Precision::F32, engine: Engine::Full, d: 1000, threads: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub beta_m: f64,
    pub beta_u: f64,
    pub beta_v: f64,
    pub nu_law: NuLaw,
    pub coupling: Coupling,
    pub spikes: SpikeLayout,
    /// Draw fresh spikes for every walker instead of sharing them.
    pub resample_spikes_per_walker: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            beta_m: 0.0,
            beta_u: 3.0,
            beta_v: 6.0,
            nu_law: NuLaw::Rademacher,
            coupling: Coupling::Independent,
            spikes: SpikeLayout::Orthonormal,
            resample_spikes_per_walker: false,
        }
    }
}

impl ModelConfig {
    pub fn params(&self) -> McmParams {
        McmParams {
            beta_m: self.beta_m,
            beta_u: self.beta_u,
            beta_v: self.beta_v,
            nu_law: self.nu_law,
            coupling: self.coupling,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LevelMode {
    /// One level drawn uniformly per sample.
    #[default]
    Sample,
    /// Loss summed over all levels for every clean sample, independent noise per level.
    Sum,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    /// a² of x_t = a x + s ξ (0 < a² < 1). Ignored when `levels` or `ou_time` is given.
    pub signal_fraction: f64,
    /// Ornstein–Uhlenbeck time t > 0: a = e^{−t}.
    pub ou_time: Option<f64>,
    /// A set of levels, as values of a².
    pub levels: Option<Vec<f64>>,
    pub level_mode: LevelMode,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self { signal_fraction: 0.5, ou_time: None, levels: None, level_mode: LevelMode::Sample }
    }
}

impl NoiseConfig {
    /// The noise levels as values of a (not a²).
    pub fn a_values(&self) -> Vec<f64> {
        if let Some(l) = &self.levels {
            l.iter().map(|x| x.sqrt()).collect()
        } else if let Some(t) = self.ou_time {
            vec![(-t).exp()]
        } else {
            vec![self.signal_fraction.sqrt()]
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DenoiserKind {
    /// D_w(x_t) = a x_t + b w σ(⟨w, x_t⟩), ‖w‖ = 1 (SPEC §2.5 (i)).
    #[default]
    Single,
    /// K units, tied, with skip (SPEC §2.5 (ii)).
    Tied,
    /// K units, untied, with skip (SPEC §2.5 (iii)).
    Untied,
}

impl DenoiserKind {
    pub fn tying(self) -> Option<Tying> {
        match self {
            DenoiserKind::Single => None,
            DenoiserKind::Tied => Some(Tying::Tied),
            DenoiserKind::Untied => Some(Tying::Untied),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenoiserConfig {
    pub kind: DenoiserKind,
    pub activation: Activation,
    /// b of the single-direction denoiser (initial value when trainable).
    pub b: f64,
    pub train_b: bool,
    /// Learning rate of b relative to η (η_b = ratio·η).
    pub b_lr_ratio: f64,
    /// K for the two-layer denoisers.
    pub units: usize,
    /// Two-layer (tied) only: keep every column at norm √d with tangent-projected gradients.
    pub spherical: bool,
    /// Two-layer: initial skip coefficient c (default: the noise level's a).
    pub c0: Option<f64>,
}

impl Default for DenoiserConfig {
    fn default() -> Self {
        Self {
            kind: DenoiserKind::Single,
            activation: Activation::Tanh,
            b: 1.0,
            train_b: false,
            b_lr_ratio: 1.0,
            units: 2,
            spherical: false,
            c0: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// η = δ/d.
    #[default]
    Linear,
    /// η = δ/(d log d).
    Log,
    /// η = δ/d².
    Quadratic,
    /// η = δ/(d² log d).
    QuadraticLog,
    /// η = δ d^{−p} (log d)^{−q}.
    Power,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchLrScaling {
    /// Per-step rate B times the per-sample schedule.
    #[default]
    Linear,
    None,
}

/// A sample budget N_max(d) = coef · d^pow · (log d)^log, in samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    pub coef: f64,
    pub pow: f64,
    pub log: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Self { coef: 30.0, pow: 1.0, log: 1.0 }
    }
}

impl Budget {
    pub fn samples(&self, d: usize) -> u64 {
        let df = d as f64;
        (self.coef * df.powf(self.pow) * df.ln().powf(self.log)).ceil().max(1.0) as u64
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub schedule: ScheduleKind,
    /// δ; `None` picks the SPEC default (0.2 for linear/log, 0.5 for the quadratic schedules).
    pub delta: Option<f64>,
    /// Exponents of the `power` schedule.
    pub power_p: f64,
    pub power_q: f64,
    /// Mini-batch size B.
    pub batch: usize,
    pub batch_lr_scaling: BatchLrScaling,
    /// Sample budget per walker; `max_samples` overrides `budget`.
    pub budget: Budget,
    pub max_samples: Option<u64>,
    /// Walkers per d.
    pub walkers: usize,
    /// Stop a walker once every tracked direction has recovered (its trajectory then ends there).
    pub stop_when_recovered: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            schedule: ScheduleKind::Linear,
            delta: None,
            power_p: 1.0,
            power_q: 0.0,
            batch: 1,
            batch_lr_scaling: BatchLrScaling::Linear,
            budget: Budget::default(),
            max_samples: None,
            walkers: 64,
            stop_when_recovered: false,
        }
    }
}

impl TrainConfig {
    pub fn delta(&self) -> f64 {
        self.delta.unwrap_or(match self.schedule {
            ScheduleKind::Linear | ScheduleKind::Log | ScheduleKind::Power => 0.2,
            ScheduleKind::Quadratic | ScheduleKind::QuadraticLog => 0.5,
        })
    }

    /// Per-sample step size η(d) of the schedule (SPEC §2.6).
    pub fn eta(&self, d: usize) -> f64 {
        let df = d as f64;
        let delta = self.delta();
        match self.schedule {
            ScheduleKind::Linear => delta / df,
            ScheduleKind::Log => delta / (df * df.ln()),
            ScheduleKind::Quadratic => delta / (df * df),
            ScheduleKind::QuadraticLog => delta / (df * df * df.ln()),
            ScheduleKind::Power => delta * df.powf(-self.power_p) * df.ln().powf(-self.power_q),
        }
    }

    /// Per-step rate: η times B under linear batch scaling.
    pub fn step_eta(&self, d: usize) -> f64 {
        match self.batch_lr_scaling {
            BatchLrScaling::Linear => self.eta(d) * self.batch as f64,
            BatchLrScaling::None => self.eta(d),
        }
    }

    /// Sample budget at dimension d.
    pub fn max_samples(&self, d: usize) -> u64 {
        self.max_samples.unwrap_or_else(|| self.budget.samples(d))
    }

    /// Step budget at dimension d (samples / B, rounded up).
    pub fn max_steps(&self, d: usize) -> u64 {
        self.max_samples(d).div_ceil(self.batch as u64)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObserveConfig {
    /// Test losses on fresh model and surrogate samples at every record point.
    pub eval: bool,
    pub n_eval: usize,
    /// Record points per decade of the log grid.
    pub grid_per_decade: u32,
    /// Recovery threshold θ on |α_e| (all directions unless overridden).
    pub threshold: f64,
    /// Threshold for v; default min(0.5, ½|α_v*|) for coupled latents (SPEC §2.8), else `threshold`.
    pub threshold_v: Option<f64>,
    /// Directions whose recovery is tracked; default: those with β > 0.
    pub directions: Option<Vec<String>>,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        Self { eval: true, n_eval: 1024, grid_per_decade: 10, threshold: 0.5, threshold_v: None, directions: None }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudyConfig {
    pub dims: Vec<usize>,
    /// Quantile q of n* (default the median).
    pub quantile: f64,
    /// Smallest success fraction f_d for a d to enter the fit.
    pub min_success: f64,
    /// Bootstrap replicates.
    pub bootstrap: usize,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self { dims: vec![128, 256, 512, 1024, 2048], quantile: 0.5, min_success: 0.75, bootstrap: 2000 }
    }
}

/// The directions a config can track, in the order m, u, v.
pub const DIRECTIONS: [&str; 3] = ["m", "u", "v"];

impl Config {
    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            ConfigError { field: "(toml)".into(), value: msg, allowed: "see the config reference in README.md".into() }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a TOML file.
    pub fn from_path(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("(file)", path.display(), &format!("a readable TOML file ({e})")))?;
        Self::from_toml(&text)
    }

    /// The tracked directions (indices into m, u, v).
    pub fn directions(&self) -> Vec<usize> {
        match &self.observe.directions {
            Some(list) => list.iter().filter_map(|n| DIRECTIONS.iter().position(|d| d == n)).collect(),
            None => {
                let m = &self.model;
                [m.beta_m, m.beta_u, m.beta_v].iter().enumerate().filter(|(_, b)| **b > 0.0).map(|(i, _)| i).collect()
            }
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.experiment;
        if e.d < 2 {
            return Err(err("experiment.d", e.d, "d ≥ 2"));
        }
        if e.engine == Engine::Reduced && e.d < 8 {
            return Err(err("experiment.d", e.d, "d ≥ 8 for the reduced engine"));
        }
        let m = &self.model;
        for (name, v) in [("model.beta_m", m.beta_m), ("model.beta_u", m.beta_u), ("model.beta_v", m.beta_v)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(err(name, v, "a finite number ≥ 0"));
            }
        }
        if let NuLaw::TwoPoint(r) = m.nu_law {
            if m.coupling != Coupling::Independent {
                return Err(err(
                    "model.coupling",
                    m.coupling,
                    &format!("only `independent` with nu_law = two_point({r})"),
                ));
            }
        }
        let n = &self.noise;
        if let Some(levels) = &n.levels {
            if levels.is_empty() {
                return Err(err("noise.levels", "[]", "a non-empty list of a² values in (0, 1)"));
            }
            for &l in levels {
                if !(l > 0.0 && l < 1.0) {
                    return Err(err("noise.levels", l, "a² values with 0 < a² < 1; s² = 1 − a² so that a² + s² = 1"));
                }
            }
        } else if let Some(t) = n.ou_time {
            if !(t > 0.0 && t.is_finite()) {
                return Err(err("noise.ou_time", t, "t > 0 (a = e^{−t}, a² + s² = 1)"));
            }
        } else if !(n.signal_fraction > 0.0 && n.signal_fraction < 1.0) {
            return Err(err("noise.signal_fraction", n.signal_fraction, "0 < a² < 1; s² = 1 − a² so that a² + s² = 1"));
        }
        let dn = &self.denoiser;
        if !dn.b.is_finite() {
            return Err(err("denoiser.b", dn.b, "a finite number"));
        }
        if !(dn.b_lr_ratio >= 0.0 && dn.b_lr_ratio.is_finite()) {
            return Err(err("denoiser.b_lr_ratio", dn.b_lr_ratio, "a finite number ≥ 0"));
        }
        if dn.kind != DenoiserKind::Single && dn.units < 1 {
            return Err(err("denoiser.units", dn.units, "K ≥ 1"));
        }
        if dn.spherical && dn.kind != DenoiserKind::Tied {
            return Err(err("denoiser.spherical", dn.spherical, "true only with kind = \"tied\""));
        }
        let t = &self.train;
        if let Some(delta) = t.delta {
            if !(delta > 0.0 && delta.is_finite()) {
                return Err(err("train.delta", delta, "δ > 0"));
            }
        }
        if t.batch < 1 {
            return Err(err("train.batch", t.batch, "B ≥ 1"));
        }
        if t.walkers < 1 {
            return Err(err("train.walkers", t.walkers, "≥ 1"));
        }
        if let Some(ms) = t.max_samples {
            if ms < 1 {
                return Err(err("train.max_samples", ms, "≥ 1"));
            }
        }
        if !(t.budget.coef > 0.0 && t.budget.coef.is_finite()) {
            return Err(err("train.budget.coef", t.budget.coef, "> 0"));
        }
        let o = &self.observe;
        if !(o.threshold > 0.0 && o.threshold < 1.0) {
            return Err(err("observe.threshold", o.threshold, "0 < θ < 1"));
        }
        if let Some(tv) = o.threshold_v {
            if !(tv > 0.0 && tv < 1.0) {
                return Err(err("observe.threshold_v", tv, "0 < θ < 1"));
            }
        }
        if o.eval && o.n_eval < 2 {
            return Err(err("observe.n_eval", o.n_eval, "≥ 2 when eval = true"));
        }
        if o.grid_per_decade < 1 {
            return Err(err("observe.grid_per_decade", o.grid_per_decade, "≥ 1"));
        }
        if let Some(list) = &o.directions {
            for dname in list {
                if !DIRECTIONS.contains(&dname.as_str()) {
                    return Err(err("observe.directions", format!("\"{dname}\""), "a list of \"m\", \"u\", \"v\""));
                }
            }
        }
        if self.directions().is_empty() {
            return Err(err("observe.directions", "[]", "at least one direction with β > 0 (set model.beta_* > 0)"));
        }
        let s = &self.study;
        if s.dims.is_empty() {
            return Err(err("study.dims", "[]", "a non-empty list of d ≥ 2"));
        }
        for &d in &s.dims {
            if d < 2 || (e.engine == Engine::Reduced && d < 8) {
                return Err(err("study.dims", d, "every d ≥ 2 (≥ 8 for the reduced engine)"));
            }
        }
        if !(s.quantile > 0.0 && s.quantile < 1.0) {
            return Err(err("study.quantile", s.quantile, "0 < q < 1"));
        }
        if !(s.min_success > 0.0 && s.min_success <= 1.0) {
            return Err(err("study.min_success", s.min_success, "0 < f ≤ 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn errors_name_field_value_and_range() {
        let cases = [
            ("[experiment]\nd = 1", "experiment.d", "d ≥ 2"),
            ("[model]\nbeta_u = -1.0", "model.beta_u", "≥ 0"),
            ("[observe]\nthreshold = 1.5", "observe.threshold", "0 < θ < 1"),
            ("[noise]\nsignal_fraction = 1.0", "noise.signal_fraction", "a² + s² = 1"),
            ("[denoiser]\nkind = \"tied\"\nunits = 0", "denoiser.units", "K ≥ 1"),
            ("[model]\nnu_law = \"two_point(0.3)\"\ncoupling = \"sign\"", "model.coupling", "independent"),
        ];
        for (text, field, allowed) in cases {
            let e = Config::from_toml(text).unwrap_err();
            assert_eq!(e.field, field, "{text}");
            assert!(e.to_string().contains(allowed), "{e}");
        }
        let e = Config::from_toml("[denoiser]\nactivation = \"sigmoid\"").unwrap_err();
        assert!(e.to_string().contains("allowed: tanh"), "{e}");
        let e = Config::from_toml("[train]\nwalkrs = 3").unwrap_err();
        assert!(e.to_string().contains("walkrs"), "{e}");
    }

    #[test]
    fn schedules_follow_their_formulas() {
        // SPEC §7 item 27.
        let d = 1000usize;
        let df = d as f64;
        let mut t = TrainConfig { delta: Some(0.3), ..Default::default() };
        for (s, expect) in [
            (ScheduleKind::Linear, 0.3 / df),
            (ScheduleKind::Log, 0.3 / (df * df.ln())),
            (ScheduleKind::Quadratic, 0.3 / (df * df)),
            (ScheduleKind::QuadraticLog, 0.3 / (df * df * df.ln())),
        ] {
            t.schedule = s;
            assert!((t.eta(d) - expect).abs() <= 1e-15 * expect);
        }
        t.schedule = ScheduleKind::Power;
        t.power_p = 1.5;
        t.power_q = 2.0;
        assert!((t.eta(d) - 0.3 * df.powf(-1.5) / df.ln().powi(2)).abs() < 1e-18);
        t.batch = 4;
        t.max_samples = Some(100);
        assert_eq!(t.max_steps(d), 25);
        assert!((t.step_eta(d) - 4.0 * t.eta(d)).abs() < 1e-18);
        let q = TrainConfig { schedule: ScheduleKind::Quadratic, ..Default::default() };
        assert_eq!(q.delta(), 0.5);
    }
}
