//! Running a study (or a single-d run) into a store: create or resume, run this shard's pending
//! jobs in parallel with a [`WalkerSink`] each, then finalise (summary, `state = complete`).
//!
//! Every file of a finished store is a function of the configuration and the binary only: no
//! timestamps, thread counts or shard layouts enter it, so an interrupted-and-resumed run, a run on
//! any number of threads and a merge of any number of shards give the same bytes.

use super::checkpoint;
use super::manifest::{DimEntry, FORMAT, GIT_REVISION, MANIFEST, Manifest, Shard, StoreState, VERSION, dim_dir_name};
use super::trajectory::{
    self, DimShape, DimStore, DimView, RECOVERY_CENSORED, RECOVERY_UNTRACKED, STATUS_DIVERGED, STATUS_PENDING,
    WalkerSink,
};
use crate::config::{Config, Engine, Precision};
use crate::model::{GaussianSurrogate, MixedCumulantModel};
use crate::observe::RecoveryTracker;
use crate::study::{self, EngineReal, StudySummary, WalkerResult};
use crate::train::{WalkerOutcome, divergence_message};
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// The summary file of a finished, unsharded store.
pub const SUMMARY: &str = "summary.json";

/// Where and how a store is run.
#[derive(Clone, Debug)]
pub struct StoreOptions<'a> {
    pub out: &'a Path,
    /// "study" or "run" (recorded in the manifest).
    pub command: &'a str,
    pub shard: Option<Shard>,
    /// Continue a store already in `out` instead of refusing to touch it.
    pub resume: bool,
    /// Sync each record and checkpoint to disk before publishing it (see [`DimStore::durable`]).
    pub durable: bool,
}

/// What [`run_store`] did.
#[derive(Debug)]
pub struct StoreOutcome {
    pub manifest: Manifest,
    /// Finished walkers of this store (this shard's, for a shard), in job order, without records.
    pub results: Vec<WalkerResult>,
    /// The study summary (unsharded stores only).
    pub summary: Option<StudySummary>,
    /// Jobs run now, and jobs found finished on disk.
    pub ran: usize,
    pub already_done: usize,
}

/// The configuration as stored: `experiment.threads` set to 0, since results do not depend on it.
pub fn stored_config(cfg: &Config) -> Config {
    let mut c = cfg.clone();
    c.experiment.threads = 0;
    c
}

/// The manifest of a new store of `cfg` over `dims`.
pub fn new_manifest(cfg: &Config, dims: &[usize], command: &str, shard: Option<Shard>) -> Manifest {
    let cfg = stored_config(cfg);
    Manifest {
        format: FORMAT.into(),
        version: VERSION,
        command: command.into(),
        git_revision: GIT_REVISION.into(),
        experiment: cfg.experiment.name.clone(),
        seed: cfg.experiment.seed,
        walkers: cfg.train.walkers,
        batch: cfg.train.batch,
        shard: shard.filter(|s| s.count > 1),
        state: StoreState::Running,
        publication: "a record (row k of walker w) is valid iff k < count[w] in d{d}/count.npy; a walker is finished iff status[w] != 0 in d{d}/status.npy".into(),
        dims: dims
            .iter()
            .map(|&d| {
                let max_steps = cfg.train.max_steps(d);
                DimEntry {
                    d,
                    dir: dim_dir_name(d),
                    records: crate::grid::log_grid(max_steps, cfg.observe.grid_per_decade).len(),
                    max_steps,
                    max_samples: cfg.train.max_samples(d),
                    step_eta: cfg.train.step_eta(d),
                }
            })
            .collect(),
        arrays: trajectory::array_specs(cfg.observe.eval),
        config: cfg,
    }
}

/// The dimension shapes a manifest describes.
pub fn dim_shapes(m: &Manifest) -> Vec<DimShape> {
    m.dims
        .iter()
        .map(|e| DimShape {
            d: e.d,
            walkers: m.walkers,
            grid: crate::grid::log_grid(e.max_steps, m.config.observe.grid_per_decade),
            eval: m.config.observe.eval,
        })
        .collect()
}

/// Names the first field in which two manifests of the same run would differ.
fn mismatch(old: &Manifest, new: &Manifest) -> Option<String> {
    if old.git_revision != new.git_revision {
        return Some(format!(
            "it was written by revision {} and this binary is {}; resuming would mix results of two builds",
            old.git_revision, new.git_revision
        ));
    }
    if old.command != new.command {
        return Some(format!("it holds a `{}`, not a `{}`", old.command, new.command));
    }
    if old.shard != new.shard {
        let f = |s: Option<Shard>| s.map(|s| format!("{}/{}", s.index, s.count)).unwrap_or_else(|| "none".into());
        return Some(format!("it is shard {}, not shard {}", f(old.shard), f(new.shard)));
    }
    if old.config != new.config {
        return Some("its configuration differs (seed, walkers or another field)".into());
    }
    if old.dims != new.dims {
        return Some("its dimensions differ".into());
    }
    None
}

/// Creates the store in `out`, or opens it for `--resume`.
fn open_or_create(cfg: &Config, dims: &[usize], opts: &StoreOptions) -> Result<(Manifest, Vec<DimStore>)> {
    let fresh = new_manifest(cfg, dims, opts.command, opts.shard);
    let out = opts.out;
    if out.join(MANIFEST).exists() {
        if !opts.resume {
            bail!(
                "{} already holds a diffexp store; pass --resume to continue it, or choose another --out",
                out.display()
            );
        }
        let old = Manifest::load(out)?;
        if let Some(why) = mismatch(&old, &fresh) {
            bail!("cannot resume {}: {why}", out.display());
        }
        let stores = dim_shapes(&old)
            .iter()
            .zip(&old.dims)
            .map(|(s, e)| DimStore::open(&out.join(&e.dir), s, opts.durable))
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("reopening the store in {}", out.display()))?;
        return Ok((old, stores));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating output directory {}", out.display()))?;
    let stores = dim_shapes(&fresh)
        .iter()
        .zip(&fresh.dims)
        .map(|(s, e)| DimStore::create(&out.join(&e.dir), s, opts.durable))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("creating the store in {}", out.display()))?;
    // The manifest comes last: a directory with a manifest always has all its arrays.
    fresh.save(out)?;
    Ok((fresh, stores))
}

/// All (d index, walker) jobs in canonical order (d-major): job j belongs to shard j mod N.
pub fn jobs(n_dims: usize, walkers: usize) -> Vec<(usize, usize)> {
    (0..n_dims).flat_map(|i| (0..walkers).map(move |w| (i, w))).collect()
}

/// Runs (or resumes) a store: every pending job of the shard, then the summary. `on_total` is told
/// the number of steps left; `advance` is called as steps complete (for a progress bar).
pub fn run_store(
    cfg: &Config,
    dims: &[usize],
    opts: &StoreOptions,
    on_total: &dyn Fn(u64),
    advance: &(dyn Fn(u64) + Sync),
) -> Result<StoreOutcome> {
    let (manifest, stores) = open_or_create(cfg, dims, opts)?;
    let shard = manifest.shard;
    let mine: Vec<(usize, usize)> = jobs(stores.len(), manifest.walkers)
        .into_iter()
        .enumerate()
        .filter(|(j, _)| shard.is_none_or(|s| s.owns(*j)))
        .map(|(_, x)| x)
        .collect();
    let pending: Vec<(usize, usize)> =
        mine.iter().copied().filter(|&(i, w)| stores[i].status(w) == STATUS_PENDING).collect();
    let grids = dim_shapes(&manifest);
    let total: u64 = pending
        .iter()
        .map(|&(i, w)| {
            let k = stores[i].count(w);
            manifest.dims[i].max_steps - if k > 0 { grids[i].grid[k - 1] } else { 0 }
        })
        .sum();
    on_total(total);
    let cfg = &manifest.config;
    match cfg.experiment.precision {
        Precision::F32 => run_pending::<f32>(cfg, &stores, &pending, advance)?,
        Precision::F64 => run_pending::<f64>(cfg, &stores, &pending, advance)?,
    }
    finalize(opts.out, manifest, &stores, pending.len(), mine.len() - pending.len())
}

/// The data model and its surrogate shared by the walkers of one dimension.
type SharedModel<T> = (Arc<MixedCumulantModel<T>>, Arc<GaussianSurrogate<T>>);
type Shared<T> = Option<SharedModel<T>>;

fn run_pending<T: EngineReal>(
    cfg: &Config,
    stores: &[DimStore],
    pending: &[(usize, usize)],
    advance: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    // Models are built only for the dimensions that still have work.
    let shared: Vec<Shared<T>> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let needed = pending.iter().any(|&(j, _)| j == i);
            (needed && cfg.experiment.engine == Engine::Full && !cfg.model.resample_spikes_per_walker)
                .then(|| study::build_model::<T>(cfg, s.d, 0))
        })
        .collect();
    let errors: Vec<anyhow::Error> = pending
        .par_iter()
        .filter_map(|&(i, w)| run_one::<T>(cfg, &stores[i], shared[i].as_ref(), w, advance).err())
        .collect();
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    Ok(())
}

fn run_one<T: EngineReal>(
    cfg: &Config,
    store: &DimStore,
    shared: Option<&SharedModel<T>>,
    w: usize,
    advance: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let d = store.d;
    let what = || format!("d = {d}, walker {w}");
    let path = store.checkpoint_path(w);
    let ckpt = match checkpoint::load(&path, d, w) {
        Ok(c) => c,
        // Only a machine crash without --fsync can leave a damaged checkpoint; the walker is then
        // rerun from the start, which rewrites the same records.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            eprintln!("warning: {}: {e}; restarting this walker from the start", what());
            None
        }
        Err(e) => return Err(e).with_context(what),
    };
    let (next, step) = ckpt.as_ref().map(|c| (c.records, c.step)).unwrap_or((0, 0));
    // Records past the checkpoint (published just before a kill) are rewritten, identically.
    store.set_count(w, next).with_context(what)?;
    let mut sink = WalkerSink::new(store, w, next, step, advance);
    let outcome = study::run_job_from::<T, _>(cfg, d, w as u64, shared, ckpt, &mut sink)
        .map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
    sink.finish().with_context(what)?;
    let max_steps = cfg.train.max_steps(d);
    advance(max_steps.saturating_sub(outcome.steps));
    store.finish(w, &outcome).with_context(what)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(what),
        _ => Ok(()),
    }
}

/// The summary file's contents (no wall time, so that it is reproducible byte for byte).
pub fn summary_value(cfg: &Config, summary: &StudySummary) -> serde_json::Value {
    serde_json::json!({"command": "study", "config": stored_config(cfg), "summary": summary, "exponents": summary.exponents})
}

/// Writes the summary (unsharded stores), removes checkpoint directories and marks the manifest
/// complete — in that order, so a kill in between is finished by `--resume`.
pub(super) fn finalize(
    out: &Path,
    mut manifest: Manifest,
    stores: &[DimStore],
    ran: usize,
    already_done: usize,
) -> Result<StoreOutcome> {
    let results = results_from(&manifest, out, false)?;
    let expected: usize = jobs(stores.len(), manifest.walkers)
        .iter()
        .enumerate()
        .filter(|(j, _)| manifest.shard.is_none_or(|s| s.owns(*j)))
        .count();
    if results.len() != expected {
        bail!("{}: {} of {expected} jobs are finished", out.display(), results.len());
    }
    let summary = if manifest.shard.is_none() {
        let dims: Vec<usize> = manifest.dims.iter().map(|e| e.d).collect();
        let s = study::summarise(&manifest.config, &dims, &results);
        let mut text = serde_json::to_string_pretty(&summary_value(&manifest.config, &s))?;
        text.push('\n');
        super::manifest::write_atomic(&out.join(SUMMARY), text.as_bytes())?;
        Some(s)
    } else {
        None
    };
    for s in stores {
        s.flush_all()?;
        let dir = s.dir().join("checkpoints");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    if manifest.state != StoreState::Complete {
        manifest.state = StoreState::Complete;
        manifest.save(out)?;
    }
    Ok(StoreOutcome { manifest, results, summary, ran, already_done })
}

/// The finished walkers of a store, in job order; with `records`, their published records too.
pub fn results_from(m: &Manifest, dir: &Path, records: bool) -> Result<Vec<WalkerResult>> {
    let th = study::thresholds(&m.config);
    let mut out = Vec::new();
    for e in &m.dims {
        let v = DimView::open(&dir.join(&e.dir), e.d, m.walkers, e.records, m.config.observe.eval)?;
        for w in 0..m.walkers {
            let status = v.status.data()[w];
            if status == STATUS_PENDING {
                continue;
            }
            let steps = v.steps.data()[w] as u64;
            let rec = &v.recovery.data()[3 * w..3 * w + 3];
            let mut first = [None; 3];
            for i in 0..3 {
                first[i] = match rec[i] {
                    RECOVERY_CENSORED | RECOVERY_UNTRACKED => None,
                    n if n >= 0 => Some(n as u64),
                    n => bail!(
                        "{}: recovery value {n} is not a sample count, -1 or -2",
                        dir.join(&e.dir).join("recovery.npy").display()
                    ),
                };
            }
            out.push(WalkerResult {
                d: e.d,
                walker: w as u64,
                outcome: WalkerOutcome {
                    steps,
                    recovery: RecoveryTracker { thresholds: th, first },
                    diverged: (status == STATUS_DIVERGED).then(|| divergence_message(steps)),
                },
                records: if records { v.records_of(w, m.batch as u64) } else { Vec::new() },
            });
        }
    }
    Ok(out)
}

/// Opens a store for reading: its manifest and every walker's results (with records if asked).
pub fn load_store(dir: &Path, records: bool) -> Result<(Manifest, Vec<WalkerResult>)> {
    let m = Manifest::load(dir)?;
    let r = results_from(&m, dir, records)?;
    Ok((m, r))
}
