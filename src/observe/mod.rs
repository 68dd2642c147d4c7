//! Observers: what the trainer reports at record points, and the per-step recovery check.
//!
//! The trainer calls [`Observer::on_record`] at every point of the log grid and does not know
//! whether the observer keeps the record in memory ([`Trajectory`]), writes it to disk, or
//! summarises it.

use serde::{Deserialize, Serialize};

/// Test losses on fresh model samples and on fresh Gaussian-surrogate samples with common noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalLosses {
    pub data: f64,
    pub surrogate: f64,
    /// L_surr − L_data.
    pub gap: f64,
    pub data_se: f64,
    pub surrogate_se: f64,
    pub gap_se: f64,
}

/// The state of one walker at one record point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub step: u64,
    pub samples: u64,
    /// Signed overlaps with (m, u, v); for K units, the unit with the largest |overlap| per spike.
    pub overlaps: [f64; 3],
    /// ‖w‖ (1 for spherical weights; mean column norm / √d for K units).
    pub norm: f64,
    /// Skip / output coefficient b (single direction) or c (K units).
    pub skip: f64,
    /// Mean training loss since the previous record point.
    pub train_loss: f64,
    pub eval: Option<EvalLosses>,
}

/// Receives records from a training run.
pub trait Observer {
    fn on_record(&mut self, record: &Record);
    /// True if this observer persists walkers: the trainer then builds a checkpoint after every
    /// record (which costs a copy of the weights) and hands it to [`Observer::on_checkpoint`].
    fn wants_checkpoints(&self) -> bool {
        false
    }
    /// A resumable snapshot taken right after the record just reported.
    fn on_checkpoint(&mut self, _checkpoint: &crate::train::WalkerCheckpoint) {}
}

/// Keeps every record in memory.
#[derive(Clone, Debug, Default)]
pub struct Trajectory {
    pub records: Vec<Record>,
}

impl Observer for Trajectory {
    fn on_record(&mut self, record: &Record) {
        self.records.push(*record);
    }
}

/// Ignores records (studies that only need recovery times).
pub struct Discard;
impl Observer for Discard {
    fn on_record(&mut self, _: &Record) {}
}

/// First sample count at which |α_e| ≥ θ_e, checked after every step (SPEC §2.8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryTracker {
    /// θ per direction (m, u, v); `None` = not tracked.
    pub thresholds: [Option<f64>; 3],
    /// n*_e in samples, once recovered.
    pub first: [Option<u64>; 3],
}

impl RecoveryTracker {
    pub fn new(thresholds: [Option<f64>; 3]) -> Self {
        Self { thresholds, first: [None; 3] }
    }

    /// Updates with the overlaps after a step that brought the sample count to `samples`.
    #[inline]
    pub fn check(&mut self, overlaps: &[f64; 3], samples: u64) {
        for ((th, first), o) in self.thresholds.iter().zip(&mut self.first).zip(overlaps) {
            if let (Some(th), None) = (th, &first) {
                if o.abs() >= *th {
                    *first = Some(samples);
                }
            }
        }
    }

    /// True once every tracked direction has recovered.
    pub fn all_recovered(&self) -> bool {
        (0..3).all(|i| self.thresholds[i].is_none() || self.first[i].is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_first_crossing_of_abs_overlap() {
        let mut t = RecoveryTracker::new([None, Some(0.5), Some(0.3)]);
        t.check(&[0.9, 0.1, -0.2], 1);
        t.check(&[0.9, -0.6, -0.31], 2);
        t.check(&[0.9, 0.1, 0.0], 3);
        assert_eq!(t.first, [None, Some(2), Some(2)]);
        assert!(t.all_recovered());
    }
}
