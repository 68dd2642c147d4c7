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

/// Where a walker resumes: everything [`run_walker_from`] needs besides the learner's own state,
/// taken at a record point (after the record was handed to the observer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalkerCheckpoint {
    /// Steps taken so far.
    pub step: u64,
    /// Records already handed to the observer (the next record is `plan.grid[records]`).
    pub records: usize,
    /// Running train-loss accumulator since the last record (sum, count).
    pub loss_sum: f64,
    pub loss_n: u64,
    pub recovery: RecoveryTracker,
    pub learner: LearnerState,
}

/// How [`run_walker_from`] starts.
#[derive(Clone, Debug)]
pub enum WalkerStart {
    /// From the learner as built, with this (empty) recovery tracker.
    Fresh(RecoveryTracker),
    /// From a checkpoint: the learner is restored first.
    Resume(Box<WalkerCheckpoint>),
}

/// What a walker whose weights stopped being finite by `step` reports.
pub fn divergence_message(step: u64) -> String {
    format!("weights became non-finite by step {step}; lower train.delta")
}

/// Runs `learner` to the end of `plan.grid`, checking recovery after every step.
pub fn run_walker<L: Learner, O: Observer>(
    learner: &mut L,
    plan: &RunPlan,
    recovery: RecoveryTracker,
    observer: &mut O,
) -> WalkerOutcome {
    run_walker_from(learner, plan, WalkerStart::Fresh(recovery), observer).expect("a fresh start cannot fail")
}

/// [`run_walker`] from a fresh start or a checkpoint. When the observer asks for checkpoints
/// ([`Observer::wants_checkpoints`]) it gets one after every record of a finite walker; resuming
/// from any of them gives bit-for-bit the records and outcome of the uninterrupted run. Fails only
/// if the checkpoint does not fit the learner or the plan.
pub fn run_walker_from<L: Learner, O: Observer>(
    learner: &mut L,
    plan: &RunPlan,
    start: WalkerStart,
    observer: &mut O,
) -> Result<WalkerOutcome, String> {
    let (mut step, first_record, mut recovery, mut loss_sum, mut loss_n) = match start {
        WalkerStart::Fresh(mut recovery) => {
            recovery.check(&learner.overlaps(), 0);
            (0u64, 0usize, recovery, 0.0, 0u64)
        }
        WalkerStart::Resume(c) => {
            if c.records > plan.grid.len() || (c.records > 0 && c.step > plan.grid[c.records - 1]) {
                return Err(format!(
                    "checkpoint at step {} after {} records does not fit a plan of {} record points",
                    c.step,
                    c.records,
                    plan.grid.len()
                ));
            }
            learner.restore(&c.learner)?;
            let c = *c;
            (c.step, c.records, c.recovery, c.loss_sum, c.loss_n)
        }
    };
    if first_record > 0 && plan.stop_when_recovered && recovery.all_recovered() {
        return Ok(WalkerOutcome { steps: step, recovery, diverged: None });
    }
    for (index, &point) in plan.grid.iter().enumerate().skip(first_record) {
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
            return Ok(WalkerOutcome { steps: step, recovery, diverged: Some(divergence_message(step)) });
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
        if observer.wants_checkpoints() {
            observer.on_checkpoint(&WalkerCheckpoint {
                step,
                records: index + 1,
                loss_sum,
                loss_n,
                recovery: recovery.clone(),
                learner: learner.state(),
            });
        }
        if plan.stop_when_recovered && recovery.all_recovered() {
            break;
        }
    }
    Ok(WalkerOutcome { steps: step, recovery, diverged: None })
}
