//! Exponent measurement with the reduced engine, one d at a time with a checkpoint per d.
//!
//! ```text
//! cargo run --release --example reduced_study -- CONFIG --out DIR [--dims 16,32,…] [--threads N] [--walkers N] [--ref-power P]
//! ```
//!
//! For every d of the study it runs all walkers (`study::run_jobs`, the reduced engine's lane
//! scheduler) and writes `DIR/walkers_d<d>.json` (per-walker recovery times and step counts); a d
//! whose file exists is not run again, so an interrupted study resumes where it stopped. Then it
//! writes, over every d done so far:
//!
//! - `DIR/summary.json`: the config, the git commit, `study::summarise` (median n*, success
//!   fractions, OLS slope with its 2000-replicate bootstrap CI, log-corrected slope, ratios
//!   n̂*/d³ …), the local slopes between consecutive d and the slopes of the fits restricted to
//!   d ≥ d₀ (both with bootstrap CIs) — the pre-asymptotic curvature — and the timings;
//! - `DIR/table.md`: the same as Markdown tables;
//! - `DIR/figure.svg`: n̂*(d) on log–log axes with its CIs and the fit, and n̂*/d^γ₀ against d.

use diffexp::config::Config;
use diffexp::observe::RecoveryTracker;
use diffexp::rng::{ScalarRng, StreamKind};
use diffexp::study::fit::{ScalingFit, fit_scaling};
use diffexp::study::recovery::RecoverySample;
use diffexp::study::{self, DIRECTION_NAMES, WalkerResult};
use diffexp::train::WalkerOutcome;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
        eprintln!("d = {d}: running {} walkers (budget {} samples each)", cfg.train.walkers, cfg.train.max_samples(d));
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let results = pool.install(|| study::run_jobs(&cfg, &[d], false, &|_| {}));
        let f = DimFile {
            d,
            git_commit: commit.clone(),
            wall_seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - c0,
            total_steps: results.iter().map(|r| r.outcome.steps).sum(),
            walkers: results
                .iter()
                .map(|r| WalkerRow {
                    walker: r.walker,
                    steps: r.outcome.steps,
                    first: r.outcome.recovery.first,
                    diverged: r.outcome.diverged.clone(),
                })
                .collect(),
        };
        eprintln!(
            "  {:.1} s wall, {:.1} s CPU, {:.3e} walker-steps, {:.3e} steps per CPU second",
            f.wall_seconds,
            f.cpu_seconds,
            f.total_steps as f64,
            f.total_steps as f64 / f.cpu_seconds
        );
        std::fs::write(&path, serde_json::to_string(&f)?)?;
        done.push(f);
        write_report(&cfg, &done, &args.out, args.ref_power)?;
    }
    write_report(&cfg, &done, &args.out, args.ref_power)?;
    Ok(())
}

fn results_of(cfg: &Config, files: &[DimFile]) -> Vec<WalkerResult> {
    let th = study::thresholds(cfg);
    files
        .iter()
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
