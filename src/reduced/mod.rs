//! The exact dimension-reduced engine (SPEC §3): System A's online SGD simulated in the coordinates
//! of the weights in span{spikes, current weights}, at a cost independent of d.
//!
//! The bulk noise z and the diffusion noise ξ are isotropic Gaussian and fresh at every step, and
//! the whitening S acts inside the spike span 𝓕. So the law of the weights' coordinates in
//! 𝓕 ⊕ span(weights) is a Markov chain: projections of fresh Gaussian vectors onto an orthonormal
//! basis are iid N(0,1), and what is left over enters only through the Gram matrix of the
//! remainders, a Wishart matrix with d − p − K' degrees of freedom, drawn as a Bartlett factor with
//! exact chi-squares ([`wishart`]). The update rule itself is the full engine's:
//! [`crate::train::single::single_direction_terms`] for the single direction ([`single`]) and
//! [`crate::net::TwoLayer::gradient_into`] for K units ([`two_layer`]), applied to coordinate vectors.
//!
//! Data flow: [`frame::SpikeFrame`] (spikes in F) → [`streams::WalkerStreams`] (normals, uniforms)
//! → [`single::SingleRule`] / [`two_layer::TwoLayerRule`] (one step on the state) → the
//! [`crate::train::Learner`] implementations [`ReducedSingleLearner`] and [`ReducedTwoLayerLearner`],
//! driven by [`crate::train::run_walker`] like the full engine's learners.
//!
//! Precision: always f64 (`experiment.precision` only selects the full engine's vector type).
//! Test losses: Monte Carlo in the low-dimensional coordinates, with exactly the law of the full
//! engine's estimator (clean and surrogate samples sharing z and ξ), see
//! [`ReducedSingleLearner`]'s `evaluate`.

pub mod frame;
pub mod lanes;
pub mod schedule;
pub mod single;
pub mod streams;
pub mod two_layer;
pub mod validation;
pub mod wishart;

pub use single::{ReducedSingleLearner, ReducedSingleSetup};
pub use two_layer::{ReducedTwoLayerLearner, ReducedTwoLayerSetup};

use crate::config::{Config, ConfigError, DenoiserKind, LevelMode};
use crate::net::SingleDirection;
use crate::observe::{Observer, RecoveryTracker};
use crate::rng::{ScalarRng, StreamKind};
use crate::study::{run_plan, stream, thresholds};
use crate::train::WalkerOutcome;
use frame::{P, SpikeFrame};

/// Fresh Gaussian vectors per step and stacked weight columns K' of a config.
fn vectors_and_cols(cfg: &Config) -> (usize, usize) {
    let b = cfg.train.batch;
    match cfg.denoiser.kind {
        DenoiserKind::Single => {
            let per = if cfg.noise.level_mode == LevelMode::Sum { cfg.noise.a_values().len() } else { 1 };
            (b * (1 + per), 1)
        }
        DenoiserKind::Tied => (2 * b, cfg.denoiser.units),
        DenoiserKind::Untied => (2 * b, 2 * cfg.denoiser.units),
    }
}

/// The smallest d the reduced engine can run a config at: the remainders of the n fresh vectors of
/// a step live in a space of dimension D = d − p − K', and their Bartlett factor needs D ≥ n.
pub fn min_dim(cfg: &Config) -> usize {
    let (n, kc) = vectors_and_cols(cfg);
    P + kc + n
}

/// Checks that a config can run on the reduced engine; the error names the field, the value and the
/// reason.
pub fn check_reducible(cfg: &Config) -> Result<(), ConfigError> {
    let need = min_dim(cfg);
    let (n, kc) = vectors_and_cols(cfg);
    let why = |d: usize| {
        format!(
            "d ≥ {need} with engine = \"reduced\": the {n} fresh Gaussian vectors of a step need a complement of dimension d − p − K' = {} − {P} − {kc} ≥ {n} for their Bartlett factor (SPEC §3.3); use engine = \"full\" below that",
            d
        )
    };
    if cfg.experiment.d < need {
        return Err(ConfigError {
            field: "experiment.d".into(),
            value: cfg.experiment.d.to_string(),
            allowed: why(cfg.experiment.d),
        });
    }
    if let Some(&d) = cfg.study.dims.iter().find(|&&d| d < need) {
        return Err(ConfigError { field: "study.dims".into(), value: d.to_string(), allowed: why(d) });
    }
    if cfg.denoiser.kind != DenoiserKind::Single && cfg.noise.levels.is_some() && cfg.noise.level_mode == LevelMode::Sum
    {
        return Err(ConfigError {
            field: "noise.level_mode".into(),
            value: "\"sum\"".into(),
            allowed: "\"sample\" for two-layer denoisers (as in the full engine)".into(),
        });
    }
    Ok(())
}

/// The spike frame of walker `walker` at dimension d: drawn from the walker-independent `Spikes`
/// stream, or per walker with `resample_spikes_per_walker` (as the full engine's spikes).
pub fn spike_frame(cfg: &Config, d: usize, walker: u64) -> SpikeFrame {
    let w = if cfg.model.resample_spikes_per_walker { walker } else { 0 };
    let mut rng = ScalarRng::from_seed(stream(cfg, d, w, StreamKind::Spikes));
    SpikeFrame::draw(d as u64, cfg.model.spikes, &mut rng)
}

/// A reduced walker of any denoiser family.
#[allow(clippy::large_enum_variant)] // one per running walker, moved once: boxing buys nothing
pub enum ReducedLearner {
    Single(ReducedSingleLearner),
    TwoLayer(ReducedTwoLayerLearner),
}

/// The single-direction setup of job (d, walker), with the same stream names as the full engine.
pub fn single_setup(cfg: &Config, d: usize, walker: u64) -> ReducedSingleSetup {
    let seeds = |k| stream(cfg, d, walker, k);
    let dn = &cfg.denoiser;
    let eta = cfg.train.step_eta(d);
    ReducedSingleSetup {
        net: SingleDirection { activation: dn.activation, b: dn.b },
        params: cfg.model.params(),
        frame: spike_frame(cfg, d, walker),
        d: d as u64,
        level_sum: cfg.noise.levels.is_some() && cfg.noise.level_mode == LevelMode::Sum,
        a_values: cfg.noise.a_values(),
        eta,
        eta_b: eta * dn.b_lr_ratio,
        train_b: dn.train_b,
        batch: cfg.train.batch,
        init_seed: seeds(StreamKind::Init),
        data_seed: seeds(StreamKind::Data),
        latent_seed: seeds(StreamKind::Latent),
        eval_seed: seeds(StreamKind::Evaluation),
    }
}

/// Builds the reduced learner of job (d, walker), with the same stream names as the full engine.
pub fn build_learner(cfg: &Config, d: usize, walker: u64) -> ReducedLearner {
    let seeds = |k| stream(cfg, d, walker, k);
    let a_values = cfg.noise.a_values();
    let dn = &cfg.denoiser;
    match dn.kind {
        DenoiserKind::Single => ReducedLearner::Single(ReducedSingleLearner::new(single_setup(cfg, d, walker))),
        DenoiserKind::Tied | DenoiserKind::Untied => {
            ReducedLearner::TwoLayer(ReducedTwoLayerLearner::new(ReducedTwoLayerSetup {
                activation: dn.activation,
                tying: dn.kind.tying().unwrap(),
                units: dn.units,
                c0: dn.c0.unwrap_or(a_values[0]),
                params: cfg.model.params(),
                frame: spike_frame(cfg, d, walker),
                d: d as u64,
                a_values,
                eta: cfg.train.step_eta(d),
                spherical: dn.spherical,
                batch: cfg.train.batch,
                init_seed: seeds(StreamKind::Init),
                data_seed: seeds(StreamKind::Data),
                latent_seed: seeds(StreamKind::Latent),
                eval_seed: seeds(StreamKind::Evaluation),
            }))
        }
    }
}

/// Runs one walker of the reduced engine and reports its records to `observer` (the reduced
/// counterpart of `study::run_full_walker`).
pub fn run_reduced_walker<O: Observer>(cfg: &Config, d: usize, walker: u64, observer: &mut O) -> WalkerOutcome {
    run_reduced_walker_from(cfg, d, walker, None, observer).expect("a fresh start cannot mismatch")
}

/// Runs one walker of the reduced engine from a checkpoint (`None`: from the start); the store and
/// `--resume` use this.
pub fn run_reduced_walker_from<O: Observer>(
    cfg: &Config,
    d: usize,
    walker: u64,
    checkpoint: Option<crate::train::WalkerCheckpoint>,
    observer: &mut O,
) -> Result<WalkerOutcome, String> {
    let plan = run_plan(cfg, d);
    let start = match checkpoint {
        Some(c) => crate::train::WalkerStart::Resume(Box::new(c)),
        None => crate::train::WalkerStart::Fresh(RecoveryTracker::new(thresholds(cfg))),
    };
    match build_learner(cfg, d, walker) {
        ReducedLearner::Single(mut l) => crate::train::run_walker_from(&mut l, &plan, start, observer),
        ReducedLearner::TwoLayer(mut l) => crate::train::run_walker_from(&mut l, &plan, start, observer),
    }
}
