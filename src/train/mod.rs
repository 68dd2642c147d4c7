//! Trainers: online SGD with a fresh sample and fresh noise every step.
//!
//! A [`Learner`] owns one walker's weights, buffers and random streams and knows how to take one
//! step; [`run_walker`] drives any learner over its step budget, checks recovery after every step and
//! hands records to an [`Observer`] on the log grid.

pub mod single;
pub mod two_layer;

use crate::observe::{EvalLosses, Observer, Record, RecoveryTracker};
use crate::rng::ScalarRng;
use serde::{Deserialize, Serialize};

/// Everything a walker needs to continue bit-identically: weights (as f64, exact for f32 too),
/// optimiser scalars and random-stream states. Plain data, so it can be written to disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnerState {
    /// Weight vectors/matrices, flattened.
    pub weights: Vec<Vec<f64>>,
    /// Learner-specific scalars (skip coefficient, lazy-normalisation scale, overlaps, …).
    pub scalars: Vec<f64>,
    /// `diffexp_kernels::NormalRng` state.
    pub normals: Vec<u64>,
    pub latent: ScalarRng,
    /// Evaluations done so far (the evaluation stream of record k is derived from k).
    pub evals_done: u64,
}

/// One walker of some denoiser on some data model.
pub trait Learner {
    /// One optimiser step on a fresh mini-batch; returns the step's mean training loss.
    fn step(&mut self) -> f64;
    /// Signed overlaps with (m, u, v) (K units: the unit with the largest |overlap| per spike).
    fn overlaps(&self) -> [f64; 3];
    fn norm(&self) -> f64;
    fn skip(&self) -> f64;
    fn is_finite(&self) -> bool;
    /// Test losses on `n_eval` fresh data and surrogate samples with common noise.
    fn evaluate(&mut self, n_eval: usize) -> EvalLosses;
    /// The resumable state.
    fn state(&self) -> LearnerState;
    /// Restores a state saved by [`Learner::state`] on a learner built from the same config.
    fn restore(&mut self, state: &LearnerState) -> Result<(), String>;
}

/// Converts a weight vector to f64 for a [`LearnerState`].
pub fn weights_to_f64<T: diffexp_kernels::Real>(w: &[T]) -> Vec<f64> {
    w.iter().map(|x| x.to_f64()).collect()
}

/// Copies saved f64 weights back, checking the length.
pub fn weights_from_f64<T: diffexp_kernels::Real>(dst: &mut [T], src: &[f64], what: &str) -> Result<(), String> {
    if dst.len() != src.len() {
        return Err(format!("checkpoint {what} has {} entries, expected {}", src.len(), dst.len()));
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = T::from_f64(s);
    }
    Ok(())
}

/// How [`run_walker`] runs.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// Record points (steps), sorted; the last is the step budget.
    pub grid: Vec<u64>,
    /// Samples per step.
    pub batch: u64,
    /// Evaluate test losses at record points with this many samples (None: no evaluation).
    pub n_eval: Option<usize>,
    /// Stop once every tracked direction has recovered.
    pub stop_when_recovered: bool,
}

/// How a walker ended.
#[derive(Clone, Debug, PartialEq)]
pub struct WalkerOutcome {
    pub steps: u64,
    pub recovery: RecoveryTracker,
    /// Set when the weights stopped being finite.
    pub diverged: Option<String>,
}

/// Runs `learner` to the end of `plan.grid`, checking recovery after every step.
pub fn run_walker<L: Learner, O: Observer>(
    learner: &mut L,
    plan: &RunPlan,
    mut recovery: RecoveryTracker,
    observer: &mut O,
) -> WalkerOutcome {
    let mut step = 0u64;
    recovery.check(&learner.overlaps(), 0);
    let mut loss_sum = 0.0;
    let mut loss_n = 0u64;
    for &point in &plan.grid {
        while step < point {
            loss_sum += learner.step();
            loss_n += 1;
            step += 1;
            recovery.check(&learner.overlaps(), step * plan.batch);
            if plan.stop_when_recovered && recovery.all_recovered() {
                break;
            }
        }
        if !learner.is_finite() {
            return WalkerOutcome {
                steps: step,
                recovery,
                diverged: Some(format!("weights became non-finite by step {step}; lower train.delta")),
            };
        }
        let rec = Record {
            step,
            samples: step * plan.batch,
            overlaps: learner.overlaps(),
            norm: learner.norm(),
            skip: learner.skip(),
            train_loss: if loss_n > 0 { loss_sum / loss_n as f64 } else { f64::NAN },
            eval: plan.n_eval.map(|n| learner.evaluate(n)),
        };
        observer.on_record(&rec);
        loss_sum = 0.0;
        loss_n = 0;
        if plan.stop_when_recovered && recovery.all_recovered() {
            break;
        }
    }
    WalkerOutcome { steps: step, recovery, diverged: None }
}
