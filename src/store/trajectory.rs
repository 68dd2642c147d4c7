//! The arrays of one dimension (`OUT/d{d}/*.npy`), preallocated for every walker and record point
//! and written in place through memory maps, and [`WalkerSink`], the [`Observer`] that fills them.
//!
//! Publication protocol of a record: its values are stored in every array and flushed, then the
//! walker's entry of `count.npy` is raised with a single release store and flushed. A reader (or a
//! resumed run) trusts rows `< count` only, so a process killed at any instant leaves every file
//! readable and every published record whole. A walker is finished the same way through
//! `status.npy`, after its recovery times and step count are flushed.

use super::checkpoint;
use super::manifest::ArraySpec;
use super::npy::{ArrayView, MappedArray};
use crate::observe::{EvalLosses, Observer, Record};
use crate::train::{WalkerCheckpoint, WalkerOutcome};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `status.npy` values.
pub const STATUS_PENDING: i64 = 0;
pub const STATUS_FINISHED: i64 = 1;
pub const STATUS_DIVERGED: i64 = 2;
/// `recovery.npy` values besides n* in samples.
pub const RECOVERY_CENSORED: i64 = -1;
pub const RECOVERY_UNTRACKED: i64 = -2;

/// Columns of `overlaps.npy`.
pub const OVERLAP_COLUMNS: [&str; 3] = ["alpha_m", "alpha_u", "alpha_v"];
/// Columns of `eval.npy`.
pub const EVAL_COLUMNS: [&str; 6] = ["L_data", "L_surr", "gap", "L_data_se", "L_surr_se", "gap_se"];

fn spec(file: &str, dtype: &str, shape: &[&str], columns: &[&str], units: &str, description: &str) -> ArraySpec {
    ArraySpec {
        file: file.into(),
        dtype: dtype.into(),
        shape: shape.iter().map(|s| s.to_string()).collect(),
        columns: columns.iter().map(|s| s.to_string()).collect(),
        units: units.into(),
        description: description.into(),
    }
}

/// The arrays of every `d{d}/` directory, as the manifest documents them.
pub fn array_specs(eval: bool) -> Vec<ArraySpec> {
    let mut v = vec![
        spec(
            "grid.npy",
            "<i8",
            &["records"],
            &[],
            "steps",
            "record points: Grid(max_steps, grid_per_decade) (SPEC §1)",
        ),
        spec(
            "count.npy",
            "<i8",
            &["walkers"],
            &[],
            "records",
            "published records per walker: rows [0, count) of every per-record array are complete; later rows are NaN / -1",
        ),
        spec(
            "samples.npy",
            "<i8",
            &["walkers", "records"],
            &[],
            "samples",
            "samples seen at the record (steps × batch)",
        ),
        spec(
            "overlaps.npy",
            "<f8",
            &["walkers", "records", "3"],
            &OVERLAP_COLUMNS,
            "dimensionless",
            "signed overlaps ⟨w,e⟩/‖w‖ with the spikes m, u, v",
        ),
        spec("norm.npy", "<f8", &["walkers", "records"], &[], "dimensionless", "‖w‖ (1 for spherical weights)"),
        spec("skip.npy", "<f8", &["walkers", "records"], &[], "dimensionless", "skip / output coefficient b (or c)"),
        spec(
            "train_loss.npy",
            "<f8",
            &["walkers", "records"],
            &[],
            "loss per sample",
            "mean training loss since the previous record",
        ),
    ];
    if eval {
        v.push(spec(
            "eval.npy",
            "<f8",
            &["walkers", "records", "6"],
            &EVAL_COLUMNS,
            "loss per sample",
            "test losses on fresh data and Gaussian-surrogate samples with common noise, their gap L_surr − L_data, and standard errors",
        ));
    }
    v.extend([
        spec("status.npy", "<i8", &["walkers"], &[], "code", "0 = not finished, 1 = finished, 2 = diverged"),
        spec("steps.npy", "<i8", &["walkers"], &[], "steps", "steps taken by a finished walker"),
        spec(
            "recovery.npy",
            "<i8",
            &["walkers", "3"],
            &OVERLAP_COLUMNS,
            "samples",
            "n*_e: first sample count with |alpha_e| ≥ θ_e; -1 = censored at the budget, -2 = direction not tracked",
        ),
    ]);
    v
}

struct DimArrays {
    count: MappedArray<i64>,
    samples: MappedArray<i64>,
    overlaps: MappedArray<f64>,
    norm: MappedArray<f64>,
    skip: MappedArray<f64>,
    train_loss: MappedArray<f64>,
    eval: Option<MappedArray<f64>>,
    status: MappedArray<i64>,
    steps: MappedArray<i64>,
    recovery: MappedArray<i64>,
}

/// The arrays of one dimension, shared by the walkers running at it (each writes only its rows).
pub struct DimStore {
    pub d: usize,
    pub walkers: usize,
    pub records: usize,
    /// Sync every record and checkpoint to disk before publishing it (survives machine crashes,
    /// costs a disk round trip per record); without it, ordering holds against process kills.
    pub durable: bool,
    dir: PathBuf,
    arrays: Mutex<DimArrays>,
}

/// Shape of a dimension's arrays.
#[derive(Clone, Debug)]
pub struct DimShape {
    pub d: usize,
    pub walkers: usize,
    pub grid: Vec<u64>,
    pub eval: bool,
}

impl DimStore {
    /// Creates the arrays of `shape` in `dir` (every row unpublished).
    pub fn create(dir: &Path, shape: &DimShape, durable: bool) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (w, r) = (shape.walkers, shape.grid.len());
        let grid: Vec<i64> = shape.grid.iter().map(|&g| g as i64).collect();
        super::npy::write_array(&dir.join("grid.npy"), &[r], &grid)?;
        let arrays = DimArrays {
            count: MappedArray::create(&dir.join("count.npy"), &[w], 0)?,
            samples: MappedArray::create(&dir.join("samples.npy"), &[w, r], -1)?,
            overlaps: MappedArray::create(&dir.join("overlaps.npy"), &[w, r, 3], f64::NAN)?,
            norm: MappedArray::create(&dir.join("norm.npy"), &[w, r], f64::NAN)?,
            skip: MappedArray::create(&dir.join("skip.npy"), &[w, r], f64::NAN)?,
            train_loss: MappedArray::create(&dir.join("train_loss.npy"), &[w, r], f64::NAN)?,
            eval: if shape.eval {
                Some(MappedArray::create(&dir.join("eval.npy"), &[w, r, 6], f64::NAN)?)
            } else {
                None
            },
            status: MappedArray::create(&dir.join("status.npy"), &[w], STATUS_PENDING)?,
            steps: MappedArray::create(&dir.join("steps.npy"), &[w], 0)?,
            recovery: MappedArray::create(&dir.join("recovery.npy"), &[w, 3], RECOVERY_CENSORED)?,
        };
        Ok(Self { d: shape.d, walkers: w, records: r, durable, dir: dir.to_path_buf(), arrays: Mutex::new(arrays) })
    }

    /// Opens existing arrays read-write, checking every shape and dtype.
    pub fn open(dir: &Path, shape: &DimShape, durable: bool) -> io::Result<Self> {
        let (w, r) = (shape.walkers, shape.grid.len());
        let grid = ArrayView::<i64>::open(&dir.join("grid.npy"), Some(&[r]))?;
        if grid.data().iter().zip(&shape.grid).any(|(&a, &b)| a != b as i64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: record grid differs from the config's", dir.display()),
            ));
        }
        let arrays = DimArrays {
            count: MappedArray::open(&dir.join("count.npy"), Some(&[w]))?,
            samples: MappedArray::open(&dir.join("samples.npy"), Some(&[w, r]))?,
            overlaps: MappedArray::open(&dir.join("overlaps.npy"), Some(&[w, r, 3]))?,
            norm: MappedArray::open(&dir.join("norm.npy"), Some(&[w, r]))?,
            skip: MappedArray::open(&dir.join("skip.npy"), Some(&[w, r]))?,
            train_loss: MappedArray::open(&dir.join("train_loss.npy"), Some(&[w, r]))?,
            eval: if shape.eval { Some(MappedArray::open(&dir.join("eval.npy"), Some(&[w, r, 6]))?) } else { None },
            status: MappedArray::open(&dir.join("status.npy"), Some(&[w]))?,
            steps: MappedArray::open(&dir.join("steps.npy"), Some(&[w]))?,
            recovery: MappedArray::open(&dir.join("recovery.npy"), Some(&[w, 3]))?,
        };
        Ok(Self { d: shape.d, walkers: w, records: r, durable, dir: dir.to_path_buf(), arrays: Mutex::new(arrays) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DimArrays> {
        // A panic while holding the lock cannot leave a half-published record (publication is the
        // last store), so a poisoned lock is still safe to use.
        self.arrays.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where walker `walker`'s checkpoint lives.
    pub fn checkpoint_path(&self, walker: usize) -> PathBuf {
        self.dir.join("checkpoints").join(format!("w{walker:06}.ckpt"))
    }

    pub fn status(&self, walker: usize) -> i64 {
        self.lock().status.data()[walker]
    }

    pub fn count(&self, walker: usize) -> usize {
        self.lock().count.data()[walker].max(0) as usize
    }

    /// Unpublishes walker `walker`'s records from `count` on (a resumed walker rewrites them).
    pub fn set_count(&self, walker: usize, count: usize) -> io::Result<()> {
        let mut a = self.lock();
        a.count.publish(walker, count as i64);
        if self.durable {
            a.count.flush(walker..walker + 1)?;
        }
        Ok(())
    }

    /// Writes record number `index` of `walker` and publishes it.
    pub fn write_record(&self, walker: usize, index: usize, rec: &Record) -> io::Result<()> {
        if walker >= self.walkers || index >= self.records {
            return Err(io::Error::other(format!(
                "d = {}: record {index} of walker {walker} is outside the store ({} walkers × {} records)",
                self.d, self.walkers, self.records
            )));
        }
        let mut a = self.lock();
        let row = walker * self.records + index;
        a.samples.data_mut()[row] = rec.samples as i64;
        a.overlaps.data_mut()[3 * row..3 * row + 3].copy_from_slice(&rec.overlaps);
        a.norm.data_mut()[row] = rec.norm;
        a.skip.data_mut()[row] = rec.skip;
        a.train_loss.data_mut()[row] = rec.train_loss;
        if let Some(ev) = &mut a.eval {
            let e = rec.eval.unwrap_or(EvalLosses {
                data: f64::NAN,
                surrogate: f64::NAN,
                gap: f64::NAN,
                data_se: f64::NAN,
                surrogate_se: f64::NAN,
                gap_se: f64::NAN,
            });
            ev.data_mut()[6 * row..6 * row + 6].copy_from_slice(&[
                e.data,
                e.surrogate,
                e.gap,
                e.data_se,
                e.surrogate_se,
                e.gap_se,
            ]);
        }
        if self.durable {
            if let Some(ev) = &a.eval {
                ev.flush(6 * row..6 * row + 6)?;
            }
            a.samples.flush(row..row + 1)?;
            a.overlaps.flush(3 * row..3 * row + 3)?;
            a.norm.flush(row..row + 1)?;
            a.skip.flush(row..row + 1)?;
            a.train_loss.flush(row..row + 1)?;
        }
        a.count.publish(walker, index as i64 + 1);
        if self.durable {
            a.count.flush(walker..walker + 1)?;
        }
        Ok(())
    }

    /// Records how walker `walker` ended and marks it finished.
    pub fn finish(&self, walker: usize, outcome: &WalkerOutcome) -> io::Result<()> {
        let mut a = self.lock();
        for (i, (th, first)) in outcome.recovery.thresholds.iter().zip(&outcome.recovery.first).enumerate() {
            a.recovery.data_mut()[3 * walker + i] = match (th, first) {
                (None, _) => RECOVERY_UNTRACKED,
                (Some(_), Some(n)) => *n as i64,
                (Some(_), None) => RECOVERY_CENSORED,
            };
        }
        a.steps.data_mut()[walker] = outcome.steps as i64;
        if self.durable {
            a.recovery.flush(3 * walker..3 * walker + 3)?;
            a.steps.flush(walker..walker + 1)?;
        }
        a.status.publish(walker, if outcome.diverged.is_some() { STATUS_DIVERGED } else { STATUS_FINISHED });
        if self.durable {
            a.status.flush(walker..walker + 1)?;
        }
        Ok(())
    }

    /// Copies walker `walker`'s rows, outcome and publication state from another store of the same
    /// shape (merging shards).
    pub fn copy_walker_from(&self, src: &DimView, walker: usize) -> io::Result<()> {
        let mut a = self.lock();
        let (r, w) = (self.records, walker);
        let rows = w * r..(w + 1) * r;
        a.samples.data_mut()[rows.clone()].copy_from_slice(&src.samples.data()[rows.clone()]);
        a.overlaps.data_mut()[3 * rows.start..3 * rows.end]
            .copy_from_slice(&src.overlaps.data()[3 * rows.start..3 * rows.end]);
        a.norm.data_mut()[rows.clone()].copy_from_slice(&src.norm.data()[rows.clone()]);
        a.skip.data_mut()[rows.clone()].copy_from_slice(&src.skip.data()[rows.clone()]);
        a.train_loss.data_mut()[rows.clone()].copy_from_slice(&src.train_loss.data()[rows.clone()]);
        match (&mut a.eval, &src.eval) {
            (Some(dst), Some(s)) => {
                dst.data_mut()[6 * rows.start..6 * rows.end].copy_from_slice(&s.data()[6 * rows.start..6 * rows.end])
            }
            (None, None) => {}
            _ => {
                return Err(io::Error::other("stores disagree on whether test losses were recorded"));
            }
        }
        a.recovery.data_mut()[3 * w..3 * w + 3].copy_from_slice(&src.recovery.data()[3 * w..3 * w + 3]);
        a.steps.data_mut()[w] = src.steps.data()[w];
        a.count.data_mut()[w] = src.count.data()[w];
        a.status.data_mut()[w] = src.status.data()[w];
        Ok(())
    }

    /// Flushes every array to disk (at the end of a run or merge, whatever `durable` says).
    pub fn flush_all(&self) -> io::Result<()> {
        let a = self.lock();
        let w = self.walkers;
        let r = self.records;
        a.samples.flush(0..w * r)?;
        a.overlaps.flush(0..3 * w * r)?;
        a.norm.flush(0..w * r)?;
        a.skip.flush(0..w * r)?;
        a.train_loss.flush(0..w * r)?;
        if let Some(e) = &a.eval {
            e.flush(0..6 * w * r)?;
        }
        a.recovery.flush(0..3 * w)?;
        a.steps.flush(0..w)?;
        a.count.flush(0..w)?;
        a.status.flush(0..w)
    }
}

/// Read-only arrays of one dimension (merging, reporting, loading results).
pub struct DimView {
    pub d: usize,
    pub walkers: usize,
    pub records: usize,
    pub grid: ArrayView<i64>,
    pub count: ArrayView<i64>,
    pub samples: ArrayView<i64>,
    pub overlaps: ArrayView<f64>,
    pub norm: ArrayView<f64>,
    pub skip: ArrayView<f64>,
    pub train_loss: ArrayView<f64>,
    pub eval: Option<ArrayView<f64>>,
    pub status: ArrayView<i64>,
    pub steps: ArrayView<i64>,
    pub recovery: ArrayView<i64>,
}

impl DimView {
    /// Opens the arrays of one dimension, checking shapes, dtypes and that counts are in range.
    pub fn open(dir: &Path, d: usize, walkers: usize, records: usize, eval: bool) -> io::Result<Self> {
        let (w, r) = (walkers, records);
        let v = Self {
            d,
            walkers,
            records,
            grid: ArrayView::open(&dir.join("grid.npy"), Some(&[r]))?,
            count: ArrayView::open(&dir.join("count.npy"), Some(&[w]))?,
            samples: ArrayView::open(&dir.join("samples.npy"), Some(&[w, r]))?,
            overlaps: ArrayView::open(&dir.join("overlaps.npy"), Some(&[w, r, 3]))?,
            norm: ArrayView::open(&dir.join("norm.npy"), Some(&[w, r]))?,
            skip: ArrayView::open(&dir.join("skip.npy"), Some(&[w, r]))?,
            train_loss: ArrayView::open(&dir.join("train_loss.npy"), Some(&[w, r]))?,
            eval: if eval { Some(ArrayView::open(&dir.join("eval.npy"), Some(&[w, r, 6]))?) } else { None },
            status: ArrayView::open(&dir.join("status.npy"), Some(&[w]))?,
            steps: ArrayView::open(&dir.join("steps.npy"), Some(&[w]))?,
            recovery: ArrayView::open(&dir.join("recovery.npy"), Some(&[w, 3]))?,
        };
        if let Some(c) = v.count.data().iter().find(|&&c| c < 0 || c as usize > r) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: count {c} outside 0..={r}", dir.join("count.npy").display()),
            ));
        }
        if let Some(s) = v.status.data().iter().find(|&&s| !(STATUS_PENDING..=STATUS_DIVERGED).contains(&s)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: unknown status {s}", dir.join("status.npy").display()),
            ));
        }
        Ok(v)
    }

    /// The published records of `walker` (`batch` samples per step).
    pub fn records_of(&self, walker: usize, batch: u64) -> Vec<Record> {
        let n = self.count.data()[walker] as usize;
        (0..n)
            .map(|k| {
                let row = walker * self.records + k;
                let o = &self.overlaps.data()[3 * row..3 * row + 3];
                let samples = self.samples.data()[row] as u64;
                Record {
                    step: samples / batch.max(1),
                    samples,
                    overlaps: [o[0], o[1], o[2]],
                    norm: self.norm.data()[row],
                    skip: self.skip.data()[row],
                    train_loss: self.train_loss.data()[row],
                    eval: self.eval.as_ref().map(|e| {
                        let e = &e.data()[6 * row..6 * row + 6];
                        EvalLosses {
                            data: e[0],
                            surrogate: e[1],
                            gap: e[2],
                            data_se: e[3],
                            surrogate_se: e[4],
                            gap_se: e[5],
                        }
                    }),
                }
            })
            .collect()
    }
}

/// The [`Observer`] of one walker: writes each record into its [`DimStore`] rows and its
/// checkpoints next to them. The trainer does not know it writes files. I/O errors are kept and
/// reported by [`WalkerSink::finish`] (an observer cannot fail a step).
pub struct WalkerSink<'a> {
    store: &'a DimStore,
    walker: usize,
    next: usize,
    last_step: u64,
    progress: &'a (dyn Fn(u64) + Sync),
    error: Option<io::Error>,
}

impl<'a> WalkerSink<'a> {
    /// A sink for `walker` whose next record has number `next` and which has taken `step` steps.
    pub fn new(store: &'a DimStore, walker: usize, next: usize, step: u64, progress: &'a (dyn Fn(u64) + Sync)) -> Self {
        Self { store, walker, next, last_step: step, progress, error: None }
    }

    /// The first I/O error met, if any.
    pub fn finish(self) -> io::Result<()> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Observer for WalkerSink<'_> {
    fn on_record(&mut self, record: &Record) {
        if self.error.is_none() {
            if let Err(e) = self.store.write_record(self.walker, self.next, record) {
                self.error = Some(e);
            }
        }
        self.next += 1;
        (self.progress)(record.step.saturating_sub(self.last_step));
        self.last_step = record.step;
    }

    fn wants_checkpoints(&self) -> bool {
        self.error.is_none()
    }

    fn on_checkpoint(&mut self, c: &WalkerCheckpoint) {
        if let Err(e) =
            checkpoint::save(&self.store.checkpoint_path(self.walker), self.store.d, self.walker, c, self.store.durable)
        {
            self.error = Some(e);
        }
    }
}
