//! The `diffexp` command line.

mod progress;

use crate::config::{Config, ConfigError};
use crate::store::manifest::Shard;
use crate::store::run::{StoreOptions, run_store, summary_value};
use crate::study::{self, DIRECTION_NAMES, StudySummary, WalkerResult};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The built-in default study (README's main job).
pub const DEFAULT_STUDY: &str = include_str!("../../data/configs/default_study.toml");

#[derive(Parser, Debug)]
#[command(name = "diffexp", version, about = "How diffusion denoisers learn data statistics, from easy to hard")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train walkers at one d; print a summary and the median overlap trajectory.
    Run(RunArgs),
    /// Grid over d × walkers → recovery times → fitted exponents. Without CONFIG, runs the built-in
    /// default study (covariance spike, d = 128…2048, 64 walkers).
    Study(StudyArgs),
    /// The diffusion information exponent k* of every configured direction (SPEC §2.9).
    Exponent(ExponentArgs),
    /// Speed figures: ns per normal, ns per step at each d and its ratio to the step's 2d normals,
    /// steps/s on 1 and 2 threads, the K = 8 / B = 64 step against faer's matmul time.
    Bench(BenchArgs),
    /// Combine the complete shards of a study (`study --shard i/N`) into one store, byte-identical
    /// to an unsharded run, and print its exponents.
    Merge(MergeArgs),
    /// Figures (PNG and SVG) and a Markdown summary of a finished store.
    Report(ReportArgs),
    /// System B, the solvable two-layer denoising autoencoder: train / theory / generate / collapse /
    /// figures (see README "System B").
    Dae(crate::dae::cli::DaeArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Dimensions of the step timings (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub dims: Vec<usize>,
    /// Minimum seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    pub secs: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Run only this workload at each d, for `--secs`, and time it against its 2d normals: for a
    /// profiler attached to the process (`benches/port_budget.sh`).
    #[arg(long, value_enum)]
    pub only: Option<crate::bench::Workload>,
}

#[derive(Args, Debug)]
pub struct CommonArgs {
    /// TOML config (see README "Config reference"); omitted: the built-in default.
    pub config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: config `experiment.threads`, 0 = all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Override `experiment.seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override `train.walkers`.
    #[arg(long)]
    pub walkers: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Override `experiment.d`.
    #[arg(long)]
    pub d: Option<usize>,
    /// Write the trajectories to this store directory (NPY arrays + manifest.json), checkpointing
    /// every walker so that `--resume` can continue an interrupted run.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the store in `--out` (or start it if there is none).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Sync every record and checkpoint to disk before publishing it, so that the store also
    /// survives a machine crash (not only a killed process); costs a disk round trip per record.
    #[arg(long, requires = "out")]
    pub fsync: bool,
}

#[derive(Args, Debug)]
pub struct StudyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output directory (default: out/<experiment.name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override `study.dims` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub dims: Option<Vec<usize>>,
    /// Run only shard i of N (0 ≤ i < N): job j of the (d, walker) jobs, d-major, belongs to shard
    /// j mod N. Default --out: out/<experiment.name>/shard-i-of-N. Combine with `diffexp merge`.
    #[arg(long, value_parser = Shard::parse, value_name = "i/N")]
    pub shard: Option<Shard>,
    /// Continue the store in --out from what is on disk (finished walkers are kept, unfinished ones
    /// restart from their last checkpoint); starts it if there is none.
    #[arg(long)]
    pub resume: bool,
    /// Sync every record and checkpoint to disk before publishing it, so that the store also
    /// survives a machine crash (not only a killed process); costs a disk round trip per record.
    #[arg(long)]
    pub fsync: bool,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard directories, one per shard (any order).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Directory of the merged store (must not hold one yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A finished store (`diffexp study --out DIR` or `diffexp merge --out DIR`).
    pub dir: PathBuf,
    /// Where the figures and report.md go (default: DIR/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not list the files written.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ExponentArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Exit code for bad input (config errors).
pub const EXIT_BAD_INPUT: i32 = 2;

fn load_config(c: &CommonArgs) -> Result<Config, ConfigError> {
    let mut cfg = match &c.config {
        Some(p) => Config::from_path(p)?,
        None => Config::from_toml(DEFAULT_STUDY)?,
    };
    if let Some(t) = c.threads {
        cfg.experiment.threads = t;
    }
    if let Some(s) = c.seed {
        cfg.experiment.seed = s;
    }
    if let Some(w) = c.walkers {
        cfg.train.walkers = w;
    }
    cfg.validate()?;
    study::check_supported(&cfg)?;
    for w in study::resolve_theory_defaults(&mut cfg) {
        if !c.json {
            eprintln!("warning: {w}");
        }
    }
    Ok(cfg)
}

/// The theory reports (one per noise level) for a config's single-direction denoiser.
fn exponent_reports(cfg: &Config) -> Vec<(f64, crate::theory::ExponentReport)> {
    let p = cfg.model.params();
    cfg.noise
        .a_values()
        .into_iter()
        .map(|a| (a, crate::theory::exponent_report(&p, cfg.denoiser.activation, a, cfg.denoiser.b)))
        .collect()
}

/// SPEC §2.9: print k* of every configured direction before training, with any warning.
fn print_exponents_before_training(cfg: &Config) {
    for (a, r) in exponent_reports(cfg) {
        eprintln!(
            "diffusion information exponents at a² = {:.3} (σ = {}, b = {}):",
            a * a,
            cfg.denoiser.activation,
            cfg.denoiser.b
        );
        for d in &r.directions {
            eprintln!(
                "  {:>4}: k_data = {}, k* = {}{}{}",
                d.direction,
                d.k_data.map(|k| k.to_string()).unwrap_or_else(|| "∞".into()),
                d.k_star.map(|k| k.to_string()).unwrap_or_else(|| "none".into()),
                if d.attractive == Some(false) { " (not attractive from a random start)" } else { "" },
                d.warning.as_ref().map(|w| format!(" — warning: {w}")).unwrap_or_default()
            );
        }
    }
    if cfg.denoiser.kind != crate::config::DenoiserKind::Single {
        eprintln!(
            "  (k* is computed for the single-direction denoiser of the same σ; the configured denoiser is {:?})",
            cfg.denoiser.kind
        );
    }
}

fn thread_pool(n: usize) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if n > 0 {
        b = b.num_threads(n);
    }
    Ok(b.build()?)
}

/// Runs the CLI; returns the process exit code.
pub fn main_with(cli: Cli) -> i32 {
    let res = match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Study(a) => cmd_study(a),
        Command::Exponent(a) => cmd_exponent(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Merge(a) => cmd_merge(a),
        Command::Report(a) => cmd_report(a),
        Command::Dae(a) => crate::dae::cli::run(a),
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                eprintln!("error: {ce}");
                EXIT_BAD_INPUT
            } else if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
            {
                // A truncated, foreign or malformed store file.
                eprintln!("error: {e:#}");
                EXIT_BAD_INPUT
            } else {
                eprintln!("error: {e:#}");
                1
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn cmd_run(a: RunArgs) -> Result<()> {
    let mut cfg = load_config(&a.common)?;
    if let Some(d) = a.d {
        cfg.experiment.d = d;
    }
    cfg.validate()?;
    if !a.common.json && !a.common.quiet {
        print_exponents_before_training(&cfg);
    }
    let d = cfg.experiment.d;
    let pool = thread_pool(cfg.experiment.threads)?;
    let t0 = Instant::now();
    let bar = progress::StepProgress::new(a.common.quiet || a.common.json);
    let results: Vec<WalkerResult> = match &a.out {
        Some(out) => {
            let opts = StoreOptions { out, command: "run", shard: None, resume: a.resume, durable: a.fsync };
            pool.install(|| run_store(&cfg, &[d], &opts, &|n| bar.set_total(n), &|n| bar.advance(n)))?;
            crate::store::run::load_store(out, true)?.1
        }
        None => {
            let per_walker = cfg.train.max_steps(d);
            bar.set_total(per_walker * cfg.train.walkers as u64);
            pool.install(|| study::run_jobs(&cfg, &[d], true, &|n| bar.advance(n as u64 * per_walker)))
        }
    };
    bar.finish();
    let wall = t0.elapsed().as_secs_f64();
    let steps: u64 = results.iter().map(|r| r.outcome.steps).sum();
    let dirs = cfg.directions();
    let final_overlaps: Vec<[f64; 3]> =
        results.iter().map(|r| r.records.last().map(|x| x.overlaps).unwrap_or([f64::NAN; 3])).collect();
    let rec_samples = study::recovery_samples(&cfg, &[d], &results, 0);
    let _ = rec_samples;
    let recovery: Vec<serde_json::Value> = dirs
        .iter()
        .map(|&i| {
            let s = &study::recovery_samples(&cfg, &[d], &results, i)[0];
            json!({"direction": DIRECTION_NAMES[i], "success_fraction": s.success_fraction(), "median_samples": s.quantile(0.5), "times": s.times})
        })
        .collect();
    if a.common.json {
        let out = json!({
            "command": "run",
            "d": d,
            "walkers": cfg.train.walkers,
            "steps": steps / cfg.train.walkers as u64,
            "samples_per_walker": steps / cfg.train.walkers as u64 * cfg.train.batch as u64,
            "wall_seconds": wall,
            "steps_per_second": steps as f64 / wall,
            "final_overlaps": final_overlaps.iter().map(|o| json!({"m": o[0], "u": o[1], "v": o[2]})).collect::<Vec<_>>(),
            "median_abs_final_overlaps": {
                "m": median(final_overlaps.iter().map(|o| o[0].abs()).collect()),
                "u": median(final_overlaps.iter().map(|o| o[1].abs()).collect()),
                "v": median(final_overlaps.iter().map(|o| o[2].abs()).collect()),
            },
            "recovery": recovery,
            "diverged": results.iter().filter_map(|r| r.outcome.diverged.clone()).collect::<Vec<_>>(),
            "config": cfg,
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "diffexp run: d = {d}, {} walkers × {} steps (B = {}), {:.2} s, {:.3e} walker-steps/s",
        cfg.train.walkers,
        steps / cfg.train.walkers as u64,
        cfg.train.batch,
        wall,
        steps as f64 / wall
    );
    println!();
    println!("median |overlap| over walkers at record points:");
    print!("{:>12}", "samples");
    for &i in &dirs {
        print!("  {:>8}", format!("|α_{}|", DIRECTION_NAMES[i]));
    }
    if cfg.observe.eval {
        print!("  {:>10}  {:>10}", "L_data", "ΔL");
    }
    println!();
    let nrec = results.iter().map(|r| r.records.len()).min().unwrap_or(0);
    for k in 0..nrec {
        print!("{:>12}", results[0].records[k].samples);
        for &i in &dirs {
            print!("  {:>8.4}", median(results.iter().map(|r| r.records[k].overlaps[i].abs()).collect()));
        }
        if cfg.observe.eval {
            let ev: Vec<_> = results.iter().filter_map(|r| r.records[k].eval).collect();
            print!(
                "  {:>10.3}  {:>10.4}",
                median(ev.iter().map(|e| e.data).collect()),
                median(ev.iter().map(|e| e.gap).collect())
            );
        }
        println!();
    }
    println!();
    for r in &recovery {
        println!(
            "recovery of {}: success fraction {:.3}, median n* = {}",
            r["direction"].as_str().unwrap_or("?"),
            r["success_fraction"].as_f64().unwrap_or(f64::NAN),
            r["median_samples"].as_f64().map(|v| format!("{v:.0} samples")).unwrap_or_else(|| "> budget".into())
        );
    }
    for r in &results {
        if let Some(m) = &r.outcome.diverged {
            println!("walker {} diverged: {m}", r.walker);
        }
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}")).unwrap_or_else(|| "—".into())
}

/// Prints the exponents table of a study.
pub fn print_study(s: &StudySummary) {
    println!("fitted exponents (n̂* = {}-quantile of samples to |α| ≥ θ; 95 % bootstrap CIs)", s.quantile);
    println!("{:>9}  {:>22}  {:>26}", "direction", "slope  [CI]", "log-corrected  [CI]");
    for e in &s.exponents {
        println!(
            "{:>9}  {:>6} [{}, {}]  {:>10} [{}, {}]",
            e.direction,
            fmt_opt(e.slope, 3),
            fmt_opt(e.ci_low, 3),
            fmt_opt(e.ci_high, 3),
            fmt_opt(e.log_corrected_slope, 3),
            fmt_opt(e.log_corrected_ci_low, 3),
            fmt_opt(e.log_corrected_ci_high, 3)
        );
    }
    println!();
    for e in &s.exponents {
        println!("direction {} (θ = {}):", e.direction, e.threshold);
        println!("{:>8}  {:>12}  {:>8}  {:>12}  {:>10}", "d", "budget", "f_d", "n̂*", "n̂*/(d ln d)");
        for (i, &d) in e.dims.iter().enumerate() {
            let df = d as f64;
            println!(
                "{:>8}  {:>12}  {:>8.3}  {:>12}  {:>10}",
                d,
                s.budgets[i],
                e.success_fraction[i],
                e.medians[i].map(|m| format!("{m:.0}")).unwrap_or_else(|| format!("> {}", s.budgets[i])),
                fmt_opt(e.medians[i].map(|m| m / (df * df.ln())), 3)
            );
        }
    }
    for m in &s.diverged {
        println!("diverged: {m}");
    }
}

fn cmd_study(a: StudyArgs) -> Result<()> {
    let mut cfg = load_config(&a.common)?;
    if let Some(d) = a.dims {
        cfg.study.dims = d;
        cfg.validate()?;
    }
    let dims = cfg.study.dims.clone();
    let out = a.out.clone().unwrap_or_else(|| {
        let base = Path::new("out").join(&cfg.experiment.name);
        match a.shard {
            Some(s) => base.join(format!("shard-{}-of-{}", s.index, s.count)),
            None => base,
        }
    });
    let pool = thread_pool(cfg.experiment.threads)?;
    let quiet = a.common.quiet || a.common.json;
    let t0 = Instant::now();
    if !quiet {
        print_exponents_before_training(&cfg);
        let shard = a.shard.map(|s| format!(", shard {}/{}", s.index, s.count)).unwrap_or_default();
        eprintln!(
            "diffexp study `{}`: d ∈ {:?}, {} walkers per d{shard} → {}",
            cfg.experiment.name,
            dims,
            cfg.train.walkers,
            out.display()
        );
    }
    let bar = progress::StepProgress::new(quiet);
    let opts = StoreOptions { out: &out, command: "study", shard: a.shard, resume: a.resume, durable: a.fsync };
    let done = pool.install(|| run_store(&cfg, &dims, &opts, &|n| bar.set_total(n), &|n| bar.advance(n)))?;
    bar.finish();
    let wall = t0.elapsed().as_secs_f64();
    let Some(summary) = done.summary else {
        let s = a.shard.expect("only shards lack a summary");
        if a.common.json {
            let v = json!({"command": "study", "shard": {"index": s.index, "count": s.count}, "out": out, "jobs_run": done.ran, "jobs_already_done": done.already_done, "wall_seconds": wall});
            println!("{}", serde_json::to_string(&v)?);
        } else {
            println!(
                "shard {}/{}: {} jobs finished ({} now, {} found done) in {wall:.1} s; results in {}",
                s.index,
                s.count,
                done.ran + done.already_done,
                done.ran,
                done.already_done,
                out.display()
            );
            println!("when every shard is complete: diffexp merge SHARD_DIR... --out DIR");
        }
        return Ok(());
    };
    let mut value = summary_value(&cfg, &summary);
    value["wall_seconds"] = json!(wall);
    // A finished study also draws its figures (the same as `diffexp report OUT`).
    let figures = crate::report::write_report(&out, &out.join("report"))?;
    value["figures"] = json!(figures);
    if a.common.json {
        println!("{}", serde_json::to_string(&value)?);
    } else {
        print_study(&summary);
        println!("\nwall time {wall:.1} s; results in {}, figures in {}", out.display(), out.join("report").display());
    }
    Ok(())
}

fn cmd_merge(a: MergeArgs) -> Result<()> {
    let done = crate::store::merge::merge(&a.dirs, &a.out)?;
    let summary = done.summary.expect("a merged store is unsharded");
    // Like an unsharded study, a merged one comes with its figures.
    crate::report::write_report(&a.out, &a.out.join("report"))?;
    if a.json {
        println!("{}", serde_json::to_string(&summary_value(&done.manifest.config, &summary))?);
    } else {
        print_study(&summary);
        println!("\nmerged {} shards into {}", a.dirs.len(), a.out.display());
    }
    Ok(())
}

fn cmd_report(a: ReportArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(|| a.dir.join("report"));
    let files = crate::report::write_report(&a.dir, &out)?;
    if !a.quiet {
        for f in files {
            println!("{}", f.display());
        }
    }
    Ok(())
}

fn cmd_exponent(a: ExponentArgs) -> Result<()> {
    let cfg = load_config(&a.common)?;
    let reports = exponent_reports(&cfg);
    if a.common.json {
        let levels: Vec<_> =
            reports.iter().map(|(lvl, r)| json!({"a": lvl, "signal_fraction": lvl * lvl, "report": r})).collect();
        let orders: Vec<_> = reports[0].1.directions.iter().map(|d| json!({"direction": d.direction, "k_data": d.k_data, "k_star": d.k_star, "attractive": d.attractive})).collect();
        println!(
            "{}",
            serde_json::to_string(&json!({"command": "exponent", "orders": orders, "levels": levels, "config": cfg}))?
        );
    } else {
        for (lvl, r) in &reports {
            println!("noise level a² = {:.4}", lvl * lvl);
            println!("{r}");
        }
    }
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.dims.iter().any(|&d| d < 3) {
        return Err(ConfigError {
            field: "--dims".into(),
            value: format!("{:?}", a.dims),
            allowed: "every d ≥ 3".into(),
        }
        .into());
    }
    if !(a.secs > 0.0 && a.secs.is_finite()) {
        return Err(ConfigError { field: "--secs".into(), value: a.secs.to_string(), allowed: "> 0".into() }.into());
    }
    if let Some(workload) = a.only {
        let r = crate::bench::run_workload(workload, &a.dims, a.secs);
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("{r}");
        }
        return Ok(());
    }
    let r = crate::bench::run(&a.dims, a.secs);
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}
