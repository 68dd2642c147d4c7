//! Exponent measurement with the reduced engine: every pending d in one lane run, with a checkpoint
//! per walker.
//!
//! ```text
//! cargo run --release --example reduced_study -- CONFIG --out DIR [--dims 16,32,…] [--threads N] [--walkers N]
//!     [--ref-power P] [--stop-after SECONDS] [--snapshot-every SECONDS]
//! ```
//!
//! It runs the walkers of every d without a `DIR/walkers_d<d>.json` in one run of the reduced
//! engine's lane scheduler (largest d first; lanes mix d when the rules allow, so no lane idles
//! while any walker waits), and writes that file (per-walker recovery times and step counts) for
//! each d once all its walkers finished. While a d runs, `DIR/partial_d<d>/` holds one file per
//! walker: its result once it finished, else a snapshot of its state, refreshed every
//! `--snapshot-every` seconds (default 600) and when `--stop-after` seconds of wall time have
//! passed. Rerunning the same command continues every walker from its snapshot with the numbers it
//! would have drawn anyway, so a study longer than one sitting (d ≥ 512) is run in several, and a
//! killed run loses at most one snapshot interval. A sitting's time is shared among its d by the
//! walker-steps each made. Then it writes, over every d done so far:
//!
//! - `DIR/summary.json`: the config, the git commit, `study::summarise` (median n*, success
//!   fractions, OLS slope with its 2000-replicate bootstrap CI, log-corrected slope, ratios
//!   n̂*/d³ …), the local slopes between consecutive d and the slopes of the fits restricted to
//!   d ≥ d₀ (both with bootstrap CIs) — the pre-asymptotic curvature — and the timings;
//! - `DIR/table.md`: the same as Markdown tables;
//! - `DIR/figure.svg`: n̂*(d) on log–log axes with its CIs and the fit, and n̂*/d^γ₀ against d.

use diffexp::config::Config;
use diffexp::observe::RecoveryTracker;
use diffexp::reduced::schedule::{self, LaneControl, WalkerSnapshot};
use diffexp::rng::{ScalarRng, StreamKind};
use diffexp::study::fit::{ScalingFit, fit_scaling};
use diffexp::study::recovery::RecoverySample;
use diffexp::study::{self, DIRECTION_NAMES, WalkerResult};
use diffexp::train::WalkerOutcome;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize)]
struct WalkerRow {
    walker: u64,
    steps: u64,
    /// Recovery sample counts per direction (m, u, v).
    first: [Option<u64>; 3],
    diverged: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DimFile {
    d: usize,
    /// Commit of the code that produced this d (results are bit-reproducible from it).
    git_commit: Option<String>,
    wall_seconds: f64,
    cpu_seconds: f64,
    total_steps: u64,
    walkers: Vec<WalkerRow>,
}

/// One walker's file in `partial_d<d>/`.
#[derive(Serialize, Deserialize)]
enum PartialWalker {
    Done(WalkerRow),
    Suspended(Box<WalkerSnapshot>),
}

/// `partial_d<d>/time.json`: the time spent on this d in earlier sittings.
#[derive(Serialize, Deserialize, Default)]
struct PartialTime {
    wall_seconds: f64,
    cpu_seconds: f64,
    sittings: u32,
}

/// Writes `value` as JSON to `path` through a temporary file and a rename, so the file is always
/// either the old or the new one.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn row_of(r: &WalkerResult) -> WalkerRow {
    WalkerRow {
        walker: r.walker,
        steps: r.outcome.steps,
        first: r.outcome.recovery.first,
        diverged: r.outcome.diverged.clone(),
    }
}

/// User + system CPU seconds of this process (Linux; NaN elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    let rest = &s[s.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime) are at 11 and 12 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

fn git_commit() -> Option<String> {
    let o = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

struct Args {
    config: PathBuf,
    out: PathBuf,
    dims: Option<Vec<usize>>,
    threads: usize,
    walkers: Option<usize>,
    /// Power p of the reference d^p in the figure's second panel (default: the rounded slope).
    ref_power: Option<f64>,
    stop_after: Option<f64>,
    snapshot_every: f64,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        config: PathBuf::new(),
        out: PathBuf::from("out/reduced_study"),
        dims: None,
        threads: 0,
        walkers: None,
        ref_power: None,
        stop_after: None,
        snapshot_every: 600.0,
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--out" => a.out = PathBuf::from(it.next().expect("--out DIR")),
            "--dims" => {
                a.dims = Some(
                    it.next().expect("--dims LIST").split(',').map(|t| t.trim().parse().expect("integer d")).collect(),
                )
            }
            "--threads" => a.threads = it.next().expect("--threads N").parse().expect("integer"),
            "--walkers" => a.walkers = Some(it.next().expect("--walkers N").parse().expect("integer")),
            "--ref-power" => a.ref_power = Some(it.next().expect("--ref-power P").parse().expect("number")),
            "--stop-after" => a.stop_after = Some(it.next().expect("--stop-after SECONDS").parse().expect("number")),
            "--snapshot-every" => {
                a.snapshot_every = it.next().expect("--snapshot-every SECONDS").parse().expect("number")
            }
            _ => a.config = PathBuf::from(x),
        }
    }
    assert!(
        !a.config.as_os_str().is_empty(),
        "usage: reduced_study CONFIG --out DIR [--dims …] [--threads N] [--walkers N]"
    );
    a
}

fn main() -> anyhow::Result<()> {
    // The commit of the code running now (taken once: the worktree may move on during a long run).
    let commit = git_commit();
    let args = parse_args();
    let mut cfg = Config::from_path(&args.config)?;
    if let Some(d) = &args.dims {
        cfg.study.dims = d.clone();
    }
    if let Some(w) = args.walkers {
        cfg.train.walkers = w;
    }
    cfg.validate()?;
    study::check_supported(&cfg)?;
    for w in study::resolve_theory_defaults(&mut cfg) {
        eprintln!("warning: {w}");
    }
    std::fs::create_dir_all(&args.out)?;
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if args.threads > 0 {
            b = b.num_threads(args.threads);
        }
        b.build()?
    };
    let mut done: Vec<DimFile> = Vec::new();
    let mut pending = Vec::new();
    for &d in &cfg.study.dims {
        let path = args.out.join(format!("walkers_d{d}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let f: DimFile = serde_json::from_str(&text)?;
            if f.walkers.len() == cfg.train.walkers {
                eprintln!("d = {d}: loaded {}", path.display());
                done.push(f);
                continue;
            }
        }
        pending.push(d);
    }
    let sitting = if pending.is_empty() {
        Sitting { finished: Vec::new(), suspended: Vec::new() }
    } else if schedule::lanes_apply(&cfg) {
        run_in_lanes(&cfg, &pending, &args, &pool, commit)?
    } else {
        run_one_d_at_a_time(&cfg, &pending, &pool, commit)
    };
    for f in sitting.finished {
        let d = f.d;
        eprintln!(
            "d = {d}: done, {:.3e} walker-steps, {:.1} s CPU ({:.3e} steps per CPU second)",
            f.total_steps as f64,
            f.cpu_seconds,
            f.total_steps as f64 / f.cpu_seconds
        );
        std::fs::write(args.out.join(format!("walkers_d{d}.json")), serde_json::to_string(&f)?)?;
        let partial = args.out.join(format!("partial_d{d}"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial)?;
        }
        let _ = std::fs::remove_file(args.out.join(format!("interim_d{d}.md")));
        done.push(f);
    }
    let order = |d: usize| cfg.study.dims.iter().position(|&x| x == d);
    done.sort_by_key(|f| order(f.d));
    for s in &sitting.suspended {
        // A d that has not finished: report what it says so far; the next run continues it.
        let interim = interim_report(&cfg, s.d, &s.rows, &s.dir, &s.time, &done)?;
        eprint!("{interim}");
        std::fs::write(args.out.join(format!("interim_d{}.md", s.d)), interim)?;
    }
    write_report(&cfg, &done, &args.out, args.ref_power)?;
    Ok(())
}

/// What one sitting did: the d it completed, and the d left suspended (rerun to continue).
struct Sitting {
    finished: Vec<DimFile>,
    suspended: Vec<SuspendedDim>,
}

struct SuspendedDim {
    d: usize,
    rows: Vec<Option<WalkerRow>>,
    dir: PathBuf,
    time: PartialTime,
}

/// Configs that do not run in lanes: one job per walker, no snapshots, each d in one go.
fn run_one_d_at_a_time(cfg: &Config, dims: &[usize], pool: &rayon::ThreadPool, commit: Option<String>) -> Sitting {
    let finished = dims
        .iter()
        .map(|&d| {
            eprintln!(
                "d = {d}: running {} walkers (budget {} samples each)",
                cfg.train.walkers,
                cfg.train.max_samples(d)
            );
            let (t0, c0) = (Instant::now(), cpu_seconds());
            let results = pool.install(|| study::run_jobs(cfg, &[d], false, &|_| {}));
            DimFile {
                d,
                git_commit: commit.clone(),
                wall_seconds: t0.elapsed().as_secs_f64(),
                cpu_seconds: cpu_seconds() - c0,
                total_steps: results.iter().map(|r| r.outcome.steps).sum(),
                walkers: results.iter().map(row_of).collect(),
            }
        })
        .collect();
    Sitting { finished, suspended: Vec::new() }
}

/// One d's walkers in a joint lane run: their files in `partial_d<d>/`, what earlier sittings did.
struct DimState {
    d: usize,
    dir: PathBuf,
    earlier: PartialTime,
    /// Walker-steps made in this sitting, from the latest result or snapshot of each walker.
    steps_now: Vec<AtomicU64>,
    /// Step of each walker when this sitting started.
    steps_before: Vec<u64>,
}

impl DimState {
    fn walker_path(&self, w: u64) -> PathBuf {
        self.dir.join(format!("w{w}.json"))
    }
}

/// Runs (or continues) every walker of every d in `dims` in one lane run, so that groups mix d
/// and no lane idles while another d still has walkers. Stops after `--stop-after` seconds.
fn run_in_lanes(
    cfg: &Config,
    dims: &[usize],
    args: &Args,
    pool: &rayon::ThreadPool,
    commit: Option<String>,
) -> anyhow::Result<Sitting> {
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let n = cfg.train.walkers as u64;
    let mut states = Vec::new();
    // Per d, each walker's result once it finished.
    let mut rows: Vec<Vec<Option<WalkerRow>>> = Vec::new();
    let mut resume = Vec::new();
    let mut to_run: Vec<(usize, u64)> = Vec::new();
    for &d in dims {
        let dir = args.out.join(format!("partial_d{d}"));
        std::fs::create_dir_all(&dir)?;
        let earlier: PartialTime = match std::fs::read(dir.join("time.json")) {
            Ok(b) => serde_json::from_slice(&b)?,
            Err(_) => PartialTime::default(),
        };
        let mut r: Vec<Option<WalkerRow>> = (0..n).map(|_| None).collect();
        let mut s = DimState {
            d,
            dir,
            earlier,
            steps_now: (0..n).map(|_| AtomicU64::new(0)).collect(),
            steps_before: vec![0; n as usize],
        };
        let mut resumed = 0;
        for w in 0..n {
            let Ok(bytes) = std::fs::read(s.walker_path(w)) else { continue };
            match serde_json::from_slice(&bytes)? {
                PartialWalker::Done(row) => r[w as usize] = Some(row),
                PartialWalker::Suspended(snap) => {
                    s.steps_before[w as usize] = snap.step;
                    s.steps_now[w as usize].store(snap.step, Ordering::Relaxed);
                    resume.push(*snap);
                    resumed += 1;
                }
            }
        }
        let open: Vec<u64> = (0..n).filter(|&w| r[w as usize].is_none()).collect();
        eprintln!(
            "d = {d}: {} walkers (budget {} samples each): {} finished earlier, {resumed} resume from snapshots (sitting {})",
            n,
            cfg.train.max_samples(d),
            n as usize - open.len(),
            s.earlier.sittings + 1
        );
        to_run.extend(open.iter().map(|&w| (d, w)));
        states.push(s);
        rows.push(r);
    }
    let state_of = |d: usize| states.iter().find(|s| s.d == d).expect("a pending d");
    // This sitting's time, shared among the d by the walker-steps each made in it.
    let times_now = || -> Vec<PartialTime> {
        let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        let made: Vec<u64> = states
            .iter()
            .map(|s| s.steps_now.iter().zip(&s.steps_before).map(|(a, &b)| a.load(Ordering::Relaxed) - b).sum())
            .collect();
        let total = made.iter().sum::<u64>().max(1) as f64;
        states
            .iter()
            .zip(&made)
            .map(|(s, &m)| PartialTime {
                wall_seconds: s.earlier.wall_seconds + wall * m as f64 / total,
                cpu_seconds: s.earlier.cpu_seconds + cpu * m as f64 / total,
                sittings: s.earlier.sittings + 1,
            })
            .collect()
    };
    let write_times = || -> anyhow::Result<Vec<PartialTime>> {
        let times = times_now();
        for (s, t) in states.iter().zip(&times) {
            write_atomic(&s.dir.join("time.json"), t)?;
        }
        Ok(times)
    };
    // A walker's snapshot and its result come from the same thread in that order, so a result
    // is never overwritten by a snapshot.
    let on_done = |r: &WalkerResult| {
        let s = state_of(r.d);
        s.steps_now[r.walker as usize].store(r.outcome.steps, Ordering::Relaxed);
        write_atomic(&s.walker_path(r.walker), &PartialWalker::Done(row_of(r))).expect("write a walker's result");
    };
    let on_snapshot = |snap: WalkerSnapshot| {
        let s = state_of(snap.d);
        s.steps_now[snap.walker as usize].store(snap.step, Ordering::Relaxed);
        write_atomic(&s.walker_path(snap.walker), &PartialWalker::Suspended(Box::new(snap)))
            .expect("write a walker snapshot");
    };
    let control = LaneControl::new(&on_done, &on_snapshot);
    let finished = AtomicBool::new(false);
    let results = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if args.stop_after.is_some_and(|s| t0.elapsed().as_secs_f64() >= s) {
                    control.stop.store(true, Ordering::Relaxed);
                    break;
                }
                if last.elapsed().as_secs_f64() >= args.snapshot_every {
                    last = Instant::now();
                    control.snapshot_epoch.fetch_add(1, Ordering::Relaxed);
                    write_times().expect("write time.json");
                }
            }
        });
        let r = pool.install(|| schedule::run_walkers(cfg, &to_run, resume, &control));
        finished.store(true, Ordering::Relaxed);
        r
    });
    for (&(d, w), r) in to_run.iter().zip(&results) {
        if let Some(r) = r {
            let i = states.iter().position(|s| s.d == d).expect("a pending d");
            rows[i][w as usize] = Some(row_of(r));
        }
    }
    let times = write_times()?;
    eprintln!(
        "sitting: {:.1} s wall, {:.1} s CPU (each d's share of it is counted by its walker-steps)",
        t0.elapsed().as_secs_f64(),
        cpu_seconds() - c0
    );
    let mut sitting = Sitting { finished: Vec::new(), suspended: Vec::new() };
    for ((s, rows), time) in states.iter().zip(rows).zip(times) {
        if rows.iter().any(|r| r.is_none()) {
            eprintln!(
                "d = {}: suspended with {} of {n} walkers finished; rerun the same command to continue",
                s.d,
                rows.iter().filter(|r| r.is_some()).count()
            );
            sitting.suspended.push(SuspendedDim { d: s.d, rows, dir: s.dir.clone(), time });
            continue;
        }
        let walkers: Vec<WalkerRow> = rows.into_iter().map(|r| r.expect("every walker finished")).collect();
        sitting.finished.push(DimFile {
            d: s.d,
            git_commit: commit.clone(),
            wall_seconds: time.wall_seconds,
            cpu_seconds: time.cpu_seconds,
            total_steps: walkers.iter().map(|w| w.steps).sum(),
            walkers,
        });
    }
    Ok(sitting)
}

/// What the walkers of a suspended d say so far: per direction the Kaplan–Meier median of the
/// recovery times, each walker that has not recovered censored at the samples it has seen (its
/// budget if finished, its current step if suspended, 0 if not started), with a bootstrap CI over
/// walkers. Not part of the fits, which wait for every walker to finish — except that once every
/// suspended walker's censoring point lies beyond the quantile, no outcome of theirs can change it,
/// and the report adds the slope over the finished d and this one.
fn interim_report(
    cfg: &Config,
    d: usize,
    rows: &[Option<WalkerRow>],
    dir: &Path,
    time: &PartialTime,
    done: &[DimFile],
) -> anyhow::Result<String> {
    let batch = cfg.train.batch as u64;
    let mut snapshots: Vec<Option<WalkerSnapshot>> = vec![None; rows.len()];
    for (w, snap) in snapshots.iter_mut().enumerate() {
        if rows[w].is_none() {
            if let Ok(b) = std::fs::read(dir.join(format!("w{w}.json"))) {
                if let PartialWalker::Suspended(s) = serde_json::from_slice(&b)? {
                    *snap = Some(*s);
                }
            }
        }
    }
    let (finished, running) = (rows.iter().flatten().count(), snapshots.iter().flatten().count());
    let d3 = (d as f64).powi(3);
    let mut md = format!(
        "# d = {d}: interim, after {} sittings ({:.0} s wall, {:.0} s CPU)\n\n{finished} of {} walkers finished, {running} suspended (censored at their current step), {} not started.\n\n",
        time.sittings,
        time.wall_seconds,
        time.cpu_seconds,
        rows.len(),
        rows.len() - finished - running
    );
    let mut determined = Vec::new();
    for dirn in cfg.directions() {
        let obs: Vec<(u64, bool)> = rows
            .iter()
            .zip(&snapshots)
            .map(|(r, s)| match (r, s) {
                (Some(r), _) => r.first[dirn].map_or((r.steps * batch, false), |t| (t, true)),
                (None, Some(s)) => s.first[dirn].map_or((s.step * batch, false), |t| (t, true)),
                (None, None) => (0, false),
            })
            .collect();
        let recovered = obs.iter().filter(|o| o.1).count();
        let median = study::recovery::km_quantile(&obs, cfg.study.quantile);
        let mut rng = ScalarRng::from_seed(study::stream(cfg, d, 0, StreamKind::Bootstrap));
        let mut reps: Vec<f64> = Vec::new();
        let total = cfg.study.bootstrap;
        for _ in 0..total {
            let re: Vec<(u64, bool)> = (0..obs.len()).map(|_| obs[rng.below(obs.len() as u64) as usize]).collect();
            if let Some(m) = study::recovery::km_quantile(&re, cfg.study.quantile) {
                reps.push(m);
            }
        }
        reps.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| reps[((p * (reps.len() - 1) as f64).round() as usize).min(reps.len() - 1)];
        md.push_str(&format!("Direction {}: {recovered} recovered. ", DIRECTION_NAMES[dirn]));
        match median {
            Some(m) if !reps.is_empty() => md.push_str(&format!(
                "Kaplan–Meier q = {} quantile n̂* = {m:.4e} samples (n̂*/d³ = {:.1}), bootstrap 95 % CI [{:.3e}, {:.3e}] ({} of {total} replicates undefined).\n\n",
                cfg.study.quantile,
                m / d3,
                pct(0.025),
                pct(0.975),
                total - reps.len()
            )),
            _ => md.push_str("The Kaplan–Meier quantile is not defined yet.\n\n"),
        }
        // Final once every walker still running (or not started) is censored beyond it: their
        // recovery times can only be larger.
        let open_beyond = |m: f64| rows.iter().zip(&obs).all(|(r, o)| r.is_some() || o.1 || o.0 as f64 > m);
        if median.is_some_and(open_beyond) {
            determined.push(dirn);
        }
    }
    if !determined.is_empty() && !done.is_empty() {
        // This d as it stands: suspended walkers count as not recovered (their recovery times
        // lie beyond the quantile, so the point estimates are final; the bootstrap intervals may
        // still move a little when they finish).
        let now = DimFile {
            d,
            git_commit: None,
            wall_seconds: time.wall_seconds,
            cpu_seconds: time.cpu_seconds,
            total_steps: 0,
            walkers: rows
                .iter()
                .zip(&snapshots)
                .enumerate()
                .map(|(w, (r, s))| match (r, s) {
                    (Some(r), _) => WalkerRow { walker: r.walker, steps: r.steps, first: r.first, diverged: None },
                    (None, s) => WalkerRow {
                        walker: w as u64,
                        steps: s.as_ref().map_or(0, |s| s.step),
                        first: s.as_ref().map_or([None; 3], |s| s.first),
                        diverged: None,
                    },
                })
                .collect(),
        };
        let files: Vec<&DimFile> = done.iter().chain(std::iter::once(&now)).collect();
        let dims: Vec<usize> = files.iter().map(|f| f.d).collect();
        let results = results_of(cfg, files.iter().copied());
        let summary = study::summarise(cfg, &dims, &results);
        for (k, dirn) in cfg.directions().into_iter().enumerate() {
            let e = &summary.exponents[k];
            // Only a fit this d enters (f_d ≥ min_success with the unfinished walkers counted
            // as not recovered).
            if !determined.contains(&dirn) || !e.fit.as_ref().is_some_and(|f| f.dims_used.contains(&d)) {
                continue;
            }
            if let (Some(sl), Some(lo), Some(hi)) = (e.slope, e.ci_low, e.ci_high) {
                md.push_str(&format!(
                    "Direction {}: the quantile at this d is final (every unfinished walker is censored beyond it). Slope of log n̂* on log d over d = {} … {d} with this d: **{sl:.3}** (95 % CI [{lo:.3}, {hi:.3}]; the CI counts the unfinished walkers as not recovered and may move a little when they finish)",
                    DIRECTION_NAMES[dirn],
                    dims[0],
                ));
                if let (Some(l), Some(llo), Some(lhi)) =
                    (e.log_corrected_slope, e.log_corrected_ci_low, e.log_corrected_ci_high)
                {
                    md.push_str(&format!("; log-corrected {l:.3} [{llo:.3}, {lhi:.3}]"));
                }
                md.push_str(".\n\n");
            }
        }
    }
    md.push_str("This d enters the fits once every walker has finished; rerun the same command to continue.\n");
    Ok(md)
}

fn results_of<'a>(cfg: &Config, files: impl IntoIterator<Item = &'a DimFile>) -> Vec<WalkerResult> {
    let th = study::thresholds(cfg);
    files
        .into_iter()
        .flat_map(|f| {
            f.walkers.iter().map(move |w| WalkerResult {
                d: f.d,
                walker: w.walker,
                outcome: WalkerOutcome {
                    steps: w.steps,
                    recovery: RecoveryTracker { thresholds: th, first: w.first },
                    diverged: w.diverged.clone(),
                },
                records: Vec::new(),
            })
        })
        .collect()
}

/// A slope with its bootstrap interval, restricted to some of the d.
#[derive(Serialize)]
struct PartialFit {
    dims: Vec<usize>,
    slope: f64,
    ci_low: f64,
    ci_high: f64,
}

fn partial_fit(samples: &[RecoverySample], cfg: &Config, seed_kind: u64) -> Option<PartialFit> {
    let mut rng = ScalarRng::from_seed(study::stream(cfg, 0, 1000 + seed_kind, StreamKind::Bootstrap));
    let f: ScalingFit = fit_scaling(samples, cfg.study.quantile, cfg.study.min_success, cfg.study.bootstrap, &mut rng)?;
    Some(PartialFit {
        dims: f.dims_used.clone(),
        slope: f.slope.value,
        ci_low: f.slope.ci_low,
        ci_high: f.slope.ci_high,
    })
}

fn write_report(cfg: &Config, files: &[DimFile], out: &Path, ref_power: Option<f64>) -> anyhow::Result<()> {
    let dims: Vec<usize> = files.iter().map(|f| f.d).collect();
    let results = results_of(cfg, files);
    let summary = study::summarise(cfg, &dims, &results);
    let mut per_direction = Vec::new();
    let mut md = String::new();
    md.push_str(&format!(
        "# `{}` — reduced engine\n\n{} walkers per d, quantile q = {}, fits over d with f_d ≥ {}, {} bootstrap replicates; commit {}.\n\n",
        cfg.experiment.name,
        cfg.train.walkers,
        cfg.study.quantile,
        cfg.study.min_success,
        cfg.study.bootstrap,
        git_commit().unwrap_or_else(|| "?".into())
    ));
    for (k, dir) in cfg.directions().into_iter().enumerate() {
        let samples = study::recovery_samples(cfg, &dims, &results, dir);
        let local: Vec<PartialFit> =
            (1..samples.len()).filter_map(|i| partial_fit(&samples[i - 1..=i], cfg, (k * 100 + i) as u64)).collect();
        let tails: Vec<PartialFit> = (0..samples.len().saturating_sub(2))
            .filter_map(|i| partial_fit(&samples[i..], cfg, (k * 100 + 50 + i) as u64))
            .collect();
        let e = &summary.exponents[k];
        md.push_str(&format!("## direction {} (θ = {})\n\n", DIRECTION_NAMES[dir], e.threshold));
        if let (Some(s), Some(lo), Some(hi)) = (e.slope, e.ci_low, e.ci_high) {
            md.push_str(&format!(
                "Slope of log n̂* on log d over all fitted d: **{s:.3}** (95 % CI [{lo:.3}, {hi:.3}]).\n"
            ));
        }
        if let (Some(s), Some(lo), Some(hi)) = (e.log_corrected_slope, e.log_corrected_ci_low, e.log_corrected_ci_high)
        {
            md.push_str(&format!("Slope of log(n̂*/log d): {s:.3} [{lo:.3}, {hi:.3}].\n"));
        }
        md.push_str("\n| d | budget | f_d | n̂* (samples) | 95 % CI | n̂*/d³ | walker-steps | CPU s |\n|---:|---:|---:|---:|---|---:|---:|---:|\n");
        for (i, f) in files.iter().enumerate() {
            let row = e.fit.as_ref().and_then(|fit| fit.ratios.iter().find(|r| r.d == f.d));
            let d3 = (f.d as f64).powi(3);
            md.push_str(&format!(
                "| {} | {} | {:.3} | {} | {} | {} | {:.3e} | {:.0} |\n",
                f.d,
                summary.budgets[i],
                e.success_fraction[i],
                e.medians[i].map(|m| format!("{m:.4e}")).unwrap_or_else(|| format!("> {}", summary.budgets[i])),
                row.map(|r| format!("[{:.3e}, {:.3e}]", r.over_d3.ci_low * d3, r.over_d3.ci_high * d3))
                    .unwrap_or_default(),
                e.medians[i].map(|m| format!("{:.2}", m / d3)).unwrap_or_default(),
                f.total_steps as f64,
                f.cpu_seconds
            ));
        }
        md.push_str(
            "\nLocal slopes between consecutive d (bootstrap 95 % CI):\n\n| d range | slope | CI |\n|---|---:|---|\n",
        );
        for p in &local {
            md.push_str(&format!(
                "| {}–{} | {:.3} | [{:.3}, {:.3}] |\n",
                p.dims[0], p.dims[1], p.slope, p.ci_low, p.ci_high
            ));
        }
        md.push_str("\nFits restricted to d ≥ d₀:\n\n| d₀ | slope | CI |\n|---:|---:|---|\n");
        for p in &tails {
            md.push_str(&format!("| {} | {:.3} | [{:.3}, {:.3}] |\n", p.dims[0], p.slope, p.ci_low, p.ci_high));
        }
        md.push('\n');
        std::fs::write(out.join(format!("figure_{}.svg", DIRECTION_NAMES[dir])), svg_figure(cfg, e, files, ref_power))?;
        per_direction.push(json!({"direction": DIRECTION_NAMES[dir], "local_slopes": local, "fits_from_d0": tails}));
    }
    let timing: Vec<_> = files
        .iter()
        .map(|f| json!({"d": f.d, "git_commit": f.git_commit, "wall_seconds": f.wall_seconds, "cpu_seconds": f.cpu_seconds, "walker_steps": f.total_steps}))
        .collect();
    let value = json!({
        "engine": "reduced",
        "git_commit": git_commit(),
        "config": cfg,
        "summary": summary,
        "curvature": per_direction,
        "timing": timing,
    });
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&value)?)?;
    std::fs::write(out.join("table.md"), md)?;
    Ok(())
}

/// Two panels: log–log n̂*(d) with CIs and the OLS fit; n̂*/d^γ₀ (γ₀ the integer nearest the slope)
/// against d, where pre-asymptotic curvature shows as a trend.
fn svg_figure(cfg: &Config, e: &study::DirectionExponent, files: &[DimFile], ref_power: Option<f64>) -> String {
    let pts: Vec<(f64, f64, f64, f64)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let m = e.medians[i]?;
            let d3 = (f.d as f64).powi(3);
            let (lo, hi) = e
                .fit
                .as_ref()
                .and_then(|fit| fit.ratios.iter().find(|r| r.d == f.d))
                .map(|r| (r.over_d3.ci_low * d3, r.over_d3.ci_high * d3))
                .unwrap_or((m, m));
            Some((f.d as f64, m, lo, hi))
        })
        .collect();
    let (w, h, pad) = (420.0, 320.0, 55.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        2.0 * w,
        h
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    if pts.is_empty() {
        s.push_str("</svg>\n");
        return s;
    }
    let gamma0 = ref_power.unwrap_or_else(|| e.slope.unwrap_or(3.0).round());
    for panel in 0..2 {
        let x0 = panel as f64 * w;
        let yv = |p: &(f64, f64, f64, f64), v: f64| if panel == 0 { v } else { v / p.0.powf(gamma0) };
        let lx: Vec<f64> = pts.iter().map(|p| p.0.log10()).collect();
        let ys: Vec<f64> = pts.iter().flat_map(|p| [yv(p, p.2).log10(), yv(p, p.3).log10()]).collect();
        let (xmin, xmax) =
            (lx.iter().cloned().fold(f64::MAX, f64::min) - 0.1, lx.iter().cloned().fold(f64::MIN, f64::max) + 0.1);
        let (ymin, ymax) =
            (ys.iter().cloned().fold(f64::MAX, f64::min) - 0.15, ys.iter().cloned().fold(f64::MIN, f64::max) + 0.15);
        let px = |x: f64| x0 + pad + (x - xmin) / (xmax - xmin) * (w - 1.5 * pad);
        let py = |y: f64| h - pad - (y - ymin) / (ymax - ymin) * (h - 1.6 * pad);
        s.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"black\"/>\n",
            px(xmin),
            py(ymax),
            px(xmax) - px(xmin),
            py(ymin) - py(ymax)
        ));
        // Decade ticks.
        for t in (xmin.ceil() as i32)..=(xmax.floor() as i32) {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">1e{t}</text>\n",
                px(t as f64),
                h - pad + 15.0
            ));
        }
        for f in &pts {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666\" font-size=\"9\">{}</text>\n",
                px(f.0.log10()),
                h - pad + 27.0,
                f.0
            ));
        }
        for t in (ymin.ceil() as i32)..=(ymax.floor() as i32) {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1e{t}</text>\n",
                px(xmin) - 4.0,
                py(t as f64) + 4.0
            ));
        }
        for p in &pts {
            let x = px(p.0.log10());
            s.push_str(&format!(
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1f5fa8\"/>\n<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f5fa8\"/>\n",
                py(yv(p, p.2).log10()),
                py(yv(p, p.3).log10()),
                py(yv(p, p.1).log10())
            ));
        }
        if panel == 0 {
            if let Some(fit) = &e.fit {
                // The OLS line through the fitted points: log n̂* = γ log d + c.
                let used: Vec<&(f64, f64, f64, f64)> =
                    pts.iter().filter(|p| fit.dims_used.contains(&(p.0 as usize))).collect();
                if !used.is_empty() {
                    let g = fit.slope.value;
                    let c = used.iter().map(|p| p.1.log10() - g * p.0.log10()).sum::<f64>() / used.len() as f64;
                    let (a, b) = (xmin + 0.05, xmax - 0.05);
                    s.push_str(&format!(
                        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c03\" stroke-dasharray=\"5,3\"/>\n",
                        px(a),
                        py(g * a + c),
                        px(b),
                        py(g * b + c)
                    ));
                    s.push_str(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c03\">slope {:.2} [{:.2}, {:.2}]</text>\n",
                        x0 + pad + 8.0,
                        py(ymax) + 16.0,
                        g,
                        fit.slope.ci_low,
                        fit.slope.ci_high
                    ));
                }
            }
        }
        let title = if panel == 0 {
            format!("median n* (samples) vs d — {}", cfg.experiment.name)
        } else {
            format!("n* / d^{gamma0} vs d")
        };
        s.push_str(&format!("<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{title}</text>\n", x0 + pad, 20.0));
    }
    s.push_str("</svg>\n");
    s
}
