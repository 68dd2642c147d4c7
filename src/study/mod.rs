//! Studies: a grid over d × walkers → recovery times → fitted exponents (SPEC §2.8).
//!
//! Every (d, walker) job derives its random streams from (master seed, experiment, d, walker), and
//! results are collected in job order, so a study gives the same numbers on any number of threads.

pub mod fit;
pub mod recovery;

use crate::config::{Config, DenoiserKind, Engine, LevelMode, Precision};
use crate::model::{GaussianSurrogate, MixedCumulantModel, Spikes};
use crate::net::SingleDirection;
use crate::observe::{Discard, Observer, Record, RecoveryTracker, Trajectory};
use crate::rng::{ScalarRng, StreamId, StreamKind, hash_name};
use crate::train::single::{SingleDirectionLearner, SingleDirectionSetup};
use crate::train::two_layer::{TwoLayerLearner, TwoLayerSetup};
use crate::train::{RunPlan, WalkerCheckpoint, WalkerOutcome, WalkerStart, run_walker_from};
use diffexp_kernels::Real;
use fit::{ScalingFit, fit_scaling};
use rayon::prelude::*;
use recovery::RecoverySample;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// System A's id in stream names.
pub const SYSTEM_A: u64 = 1;

/// Direction names in the order of the overlap arrays.
pub const DIRECTION_NAMES: [&str; 3] = ["m", "u", "v"];

/// The name of one of a job's random streams.
pub fn stream(cfg: &Config, d: usize, walker: u64, kind: StreamKind) -> u64 {
    StreamId { system: SYSTEM_A, experiment: hash_name(&cfg.experiment.name), d: d as u64, walker, kind }
        .seed(cfg.experiment.seed)
}

/// Fills in the defaults that come from theory, once per configuration: θ_v for a coupled latent
/// is min(0.5, ½|α_v*|) with α* the population optimum on the (α_u, α_v) disc (SPEC §2.8).
/// Returns warnings to show the user (e.g. when that optimum has α_v* = 0).
pub fn resolve_theory_defaults(cfg: &mut Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let tracks_v = cfg.directions().contains(&2);
    if tracks_v && cfg.observe.threshold_v.is_none() && cfg.model.coupling != crate::model::Coupling::Independent {
        let a = cfg.noise.a_values()[0];
        let dn = &cfg.denoiser;
        match crate::theory::default_theta_v(&cfg.model.params(), dn.activation, a, dn.b) {
            Some(th) if th > 1e-3 => cfg.observe.threshold_v = Some(th),
            _ => warnings.push(format!(
                "the population optimum of a single direction has α_v* = 0 for coupling = {} with σ = {};                  recovery of v keeps θ_v = {} (set observe.threshold_v to choose another)",
                cfg.model.coupling, dn.activation, cfg.observe.threshold
            )),
        }
    }
    warnings
}

/// Recovery thresholds θ per direction (`None` = not tracked).
pub fn thresholds(cfg: &Config) -> [Option<f64>; 3] {
    let mut th = [None; 3];
    for i in cfg.directions() {
        th[i] =
            Some(if i == 2 { cfg.observe.threshold_v.unwrap_or(cfg.observe.threshold) } else { cfg.observe.threshold });
    }
    th
}

/// What one walker produced.
#[derive(Clone, Debug)]
pub struct WalkerResult {
    pub d: usize,
    pub walker: u64,
    pub outcome: WalkerOutcome,
    /// Records on the log grid (empty when trajectories were not kept).
    pub records: Vec<Record>,
}

/// The shared data model at dimension d (spikes drawn from the walker-independent `Spikes` stream,
/// or per walker with `resample_spikes_per_walker`).
pub fn build_model<T: Real>(
    cfg: &Config,
    d: usize,
    walker: u64,
) -> (Arc<MixedCumulantModel<T>>, Arc<GaussianSurrogate<T>>) {
    let w = if cfg.model.resample_spikes_per_walker { walker } else { 0 };
    let mut rng = ScalarRng::from_seed(stream(cfg, d, w, StreamKind::Spikes));
    let spikes = Spikes::<T>::draw(d, cfg.model.spikes, &mut rng);
    let model = MixedCumulantModel::new(cfg.model.params(), spikes);
    let sur = model.surrogate();
    (Arc::new(model), Arc::new(sur))
}

/// The record grid and run plan at dimension d.
pub fn run_plan(cfg: &Config, d: usize) -> RunPlan {
    RunPlan {
        grid: crate::grid::log_grid(cfg.train.max_steps(d), cfg.observe.grid_per_decade),
        batch: cfg.train.batch as u64,
        n_eval: cfg.observe.eval.then_some(cfg.observe.n_eval),
        stop_when_recovered: cfg.train.stop_when_recovered,
    }
}

/// Element types the full engine runs on.
pub trait EngineReal: crate::net::two_layer::TwoLayerReal {}
impl EngineReal for f32 {}
impl EngineReal for f64 {}

/// Runs one walker of the full engine from the start and reports its records to `observer`.
pub fn run_full_walker<T: EngineReal, O: Observer>(
    cfg: &Config,
    d: usize,
    walker: u64,
    model: Arc<MixedCumulantModel<T>>,
    surrogate: Arc<GaussianSurrogate<T>>,
    observer: &mut O,
) -> WalkerOutcome {
    run_full_walker_from(cfg, d, walker, model, surrogate, None, observer).expect("a fresh start cannot mismatch")
}

/// [`run_full_walker`] from a checkpoint (`None`: from the start); fails if the checkpoint does
/// not fit this walker.
pub fn run_full_walker_from<T: EngineReal, O: Observer>(
    cfg: &Config,
    d: usize,
    walker: u64,
    model: Arc<MixedCumulantModel<T>>,
    surrogate: Arc<GaussianSurrogate<T>>,
    checkpoint: Option<WalkerCheckpoint>,
    observer: &mut O,
) -> Result<WalkerOutcome, String> {
    let plan = run_plan(cfg, d);
    let start = match checkpoint {
        Some(c) => WalkerStart::Resume(Box::new(c)),
        None => WalkerStart::Fresh(RecoveryTracker::new(thresholds(cfg))),
    };
    let seeds = |k| stream(cfg, d, walker, k);
    let a_values = cfg.noise.a_values();
    let dn = &cfg.denoiser;
    let eta = cfg.train.step_eta(d);
    match dn.kind {
        DenoiserKind::Single => {
            let setup = SingleDirectionSetup {
                net: SingleDirection { activation: dn.activation, b: dn.b },
                level_sum: cfg.noise.levels.is_some() && cfg.noise.level_mode == LevelMode::Sum,
                a_values,
                eta,
                eta_b: eta * dn.b_lr_ratio,
                train_b: dn.train_b,
                batch: cfg.train.batch,
                init_seed: seeds(StreamKind::Init),
                data_seed: seeds(StreamKind::Data),
                latent_seed: seeds(StreamKind::Latent),
                eval_seed: seeds(StreamKind::Evaluation),
            };
            let mut l = SingleDirectionLearner::new(model, surrogate, setup);
            run_walker_from(&mut l, &plan, start, observer)
        }
        DenoiserKind::Tied | DenoiserKind::Untied => {
            let setup = TwoLayerSetup {
                net: dn.activation,
                tying: dn.kind.tying().unwrap(),
                units: dn.units,
                c0: dn.c0.unwrap_or(a_values[0]),
                a_values,
                eta,
                spherical: dn.spherical,
                batch: cfg.train.batch,
                init_seed: seeds(StreamKind::Init),
                data_seed: seeds(StreamKind::Data),
                latent_seed: seeds(StreamKind::Latent),
                eval_seed: seeds(StreamKind::Evaluation),
            };
            let mut l = TwoLayerLearner::<T>::new(model, surrogate, setup);
            run_walker_from(&mut l, &plan, start, observer)
        }
    }
}

/// The data model at one d and its Gaussian surrogate, shared by that d's walkers.
pub type SharedModel<T> = (Arc<MixedCumulantModel<T>>, Arc<GaussianSurrogate<T>>);

/// Runs one (d, walker) job with the configured engine.
pub fn run_job<T: EngineReal>(
    cfg: &Config,
    d: usize,
    walker: u64,
    shared: Option<&SharedModel<T>>,
    keep: bool,
) -> WalkerResult {
    let mut traj = Trajectory::default();
    let outcome = match cfg.experiment.engine {
        Engine::Full => {
            let (m, s) = match shared {
                Some((m, s)) => (Arc::clone(m), Arc::clone(s)),
                None => build_model::<T>(cfg, d, walker),
            };
            if keep {
                run_full_walker(cfg, d, walker, m, s, &mut traj)
            } else {
                run_full_walker(cfg, d, walker, m, s, &mut Discard)
            }
        }
        Engine::Reduced => {
            if keep {
                crate::reduced::run_reduced_walker(cfg, d, walker, &mut traj)
            } else {
                crate::reduced::run_reduced_walker(cfg, d, walker, &mut Discard)
            }
        }
    };
    WalkerResult { d, walker, outcome, records: traj.records }
}

/// Runs one (d, walker) job with the configured engine from a checkpoint (`None`: from the start),
/// reporting records and checkpoints to `observer` (the trajectory store uses this).
pub fn run_job_from<T: EngineReal, O: Observer>(
    cfg: &Config,
    d: usize,
    walker: u64,
    shared: Option<&SharedModel<T>>,
    checkpoint: Option<WalkerCheckpoint>,
    observer: &mut O,
) -> Result<WalkerOutcome, String> {
    match cfg.experiment.engine {
        Engine::Full => {
            let (m, s) = match shared {
                Some((m, s)) => (Arc::clone(m), Arc::clone(s)),
                None => build_model::<T>(cfg, d, walker),
            };
            run_full_walker_from(cfg, d, walker, m, s, checkpoint, observer)
        }
        Engine::Reduced => crate::reduced::run_reduced_walker_from(cfg, d, walker, checkpoint, observer),
    }
}

/// Rejects configurations this build cannot run, with the field and the reason.
pub fn check_supported(cfg: &Config) -> Result<(), crate::config::ConfigError> {
    if cfg.experiment.engine == Engine::Reduced {
        crate::reduced::check_reducible(cfg)?;
    }
    if cfg.denoiser.kind != DenoiserKind::Single && cfg.noise.level_mode == LevelMode::Sum && cfg.noise.levels.is_some()
    {
        return Err(crate::config::ConfigError {
            field: "noise.level_mode".into(),
            value: "\"sum\"".into(),
            allowed: "\"sample\" for two-layer denoisers (\"sum\" is supported for kind = \"single\")".into(),
        });
    }
    Ok(())
}

/// Runs every walker at every d of `dims` (in parallel, results in job order).
pub fn run_jobs(
    cfg: &Config,
    dims: &[usize],
    keep_trajectories: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<WalkerResult> {
    if cfg.experiment.engine == Engine::Reduced {
        return crate::reduced::schedule::run_jobs(cfg, dims, keep_trajectories, progress);
    }
    match cfg.experiment.precision {
        Precision::F32 => run_jobs_t::<f32>(cfg, dims, keep_trajectories, progress),
        Precision::F64 => run_jobs_t::<f64>(cfg, dims, keep_trajectories, progress),
    }
}

fn run_jobs_t<T: EngineReal>(
    cfg: &Config,
    dims: &[usize],
    keep: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<WalkerResult> {
    let shared: Vec<Option<SharedModel<T>>> = dims
        .iter()
        .map(|&d| {
            (cfg.experiment.engine == Engine::Full && !cfg.model.resample_spikes_per_walker)
                .then(|| build_model::<T>(cfg, d, 0))
        })
        .collect();
    let jobs: Vec<(usize, u64)> =
        (0..dims.len()).flat_map(|i| (0..cfg.train.walkers as u64).map(move |w| (i, w))).collect();
    jobs.par_iter()
        .map(|&(i, w)| {
            let r = run_job::<T>(cfg, dims[i], w, shared[i].as_ref(), keep);
            progress(1);
            r
        })
        .collect()
}

/// Per-direction fit and per-d summaries of a study.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirectionExponent {
    pub direction: String,
    pub threshold: f64,
    /// Raw slope of log n̂* on log d, with its 95 % bootstrap interval.
    pub slope: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Slope of log(n̂*/log d) on log d, with its interval.
    pub log_corrected_slope: Option<f64>,
    pub log_corrected_ci_low: Option<f64>,
    pub log_corrected_ci_high: Option<f64>,
    /// f_d per d (same order as `dims`).
    pub success_fraction: Vec<f64>,
    /// n̂*_q per d (`None`: "> N_max").
    pub medians: Vec<Option<f64>>,
    pub dims: Vec<usize>,
    pub fit: Option<ScalingFit>,
}

/// The outcome of a study.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudySummary {
    pub dims: Vec<usize>,
    pub walkers: usize,
    /// Sample budget per d.
    pub budgets: Vec<u64>,
    pub quantile: f64,
    pub exponents: Vec<DirectionExponent>,
    /// Walkers that diverged, with their message.
    pub diverged: Vec<String>,
}

/// Recovery samples per direction and d, from job results.
pub fn recovery_samples(cfg: &Config, dims: &[usize], results: &[WalkerResult], dir: usize) -> Vec<RecoverySample> {
    dims.iter()
        .map(|&d| RecoverySample {
            d,
            times: results.iter().filter(|r| r.d == d).map(|r| r.outcome.recovery.first[dir]).collect(),
            budget: cfg.train.max_steps(d) * cfg.train.batch as u64,
        })
        .collect()
}

/// Summarises job results into per-direction exponents.
pub fn summarise(cfg: &Config, dims: &[usize], results: &[WalkerResult]) -> StudySummary {
    let th = thresholds(cfg);
    let q = cfg.study.quantile;
    let exponents = cfg
        .directions()
        .into_iter()
        .map(|dir| {
            let samples = recovery_samples(cfg, dims, results, dir);
            let mut rng = ScalarRng::from_seed(stream(cfg, 0, dir as u64, StreamKind::Bootstrap));
            let fit = fit_scaling(&samples, q, cfg.study.min_success, cfg.study.bootstrap, &mut rng);
            DirectionExponent {
                direction: DIRECTION_NAMES[dir].into(),
                threshold: th[dir].unwrap_or(f64::NAN),
                slope: fit.as_ref().map(|f| f.slope.value),
                ci_low: fit.as_ref().map(|f| f.slope.ci_low),
                ci_high: fit.as_ref().map(|f| f.slope.ci_high),
                log_corrected_slope: fit.as_ref().map(|f| f.log_corrected_slope.value),
                log_corrected_ci_low: fit.as_ref().map(|f| f.log_corrected_slope.ci_low),
                log_corrected_ci_high: fit.as_ref().map(|f| f.log_corrected_slope.ci_high),
                success_fraction: samples.iter().map(|s| s.success_fraction()).collect(),
                medians: samples.iter().map(|s| s.quantile(q)).collect(),
                dims: dims.to_vec(),
                fit,
            }
        })
        .collect();
    StudySummary {
        dims: dims.to_vec(),
        walkers: cfg.train.walkers,
        budgets: dims.iter().map(|&d| cfg.train.max_samples(d)).collect(),
        quantile: q,
        exponents,
        diverged: results
            .iter()
            .filter_map(|r| r.outcome.diverged.as_ref().map(|m| format!("d={} walker={}: {m}", r.d, r.walker)))
            .collect(),
    }
}
