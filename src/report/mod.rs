//! Reports of a finished store (`diffexp report DIR`): figures as PNG and SVG, and `report.md`
//! with the fitted exponents.
//!
//! - `overlap_{m,u,v}`: median |α_e| over walkers with its 25–75 % band against samples (log axis),
//!   one colour per d, and the recovery threshold θ_e.
//! - `scaling`: n̂*_q against d (log–log) per direction, the fitted slope, and reference lines ∝ d,
//!   d log d and d³ through the smallest fitted d.
//! - `loss` (when test losses were recorded): L_data/d and L_surr/d against samples, and the gap
//!   ΔL = L_surr − L_data with its band.

pub mod plot;

use crate::observe::Record;
use crate::store::manifest::Manifest;
use crate::store::run::load_store;
use crate::study::{self, DIRECTION_NAMES, StudySummary, WalkerResult};
use anyhow::{Result, bail};
use plot::{Axis, Chart, Line, LineKind, color};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Figure size in pixels.
const SIZE: (u32, u32) = (900, 600);

/// Quantile `q` of `v` (linear interpolation; NaNs ignored). None if empty.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = q * (s.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    Some(if i + 1 < s.len() { s[i] * (1.0 - f) + s[i + 1] * f } else { s[i] })
}

/// Per record point k: (samples at k, [25 %, 50 %, 75 %] of `value` over walkers). A walker that
/// stopped early (recovered, with `stop_when_recovered`) keeps its last value, so the band is not
/// biased towards the walkers still running.
fn bands(results: &[&WalkerResult], grid_samples: &[u64], value: impl Fn(&Record) -> f64) -> Vec<(f64, [f64; 3])> {
    let mut out = Vec::new();
    for (k, &n) in grid_samples.iter().enumerate() {
        let vals: Vec<f64> = results
            .iter()
            .filter_map(|r| {
                let rec =
                    r.records.get(k).or_else(|| if r.outcome.diverged.is_none() { r.records.last() } else { None })?;
                Some(value(rec))
            })
            .collect();
        if let (Some(a), Some(b), Some(c)) = (quantile(&vals, 0.25), quantile(&vals, 0.5), quantile(&vals, 0.75)) {
            out.push((n as f64, [a, b, c]));
        }
    }
    out
}

fn band_line(label: String, color: plotters::style::RGBColor, kind: LineKind, b: &[(f64, [f64; 3])]) -> Line {
    let mut l = Line::new(label, color, kind, b.iter().map(|&(x, q)| (x, q[1])).collect());
    l.band = b.iter().map(|&(x, q)| (x, q[0], q[2])).collect();
    l
}

/// Writes every figure and `report.md` for the store in `dir` into `out`; returns the files.
pub fn write_report(dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let (m, results) = load_store(dir, true)?;
    if m.state != crate::store::manifest::StoreState::Complete {
        bail!("{} is not complete; finish it with --resume (or merge its shards) first", dir.display());
    }
    std::fs::create_dir_all(out)?;
    let cfg = &m.config;
    let dims: Vec<usize> = m.dims.iter().map(|e| e.d).collect();
    let summary = study::summarise(cfg, &dims, &results);
    let th = study::thresholds(cfg);
    let mut files = Vec::new();
    let per_d: Vec<Vec<&WalkerResult>> = dims.iter().map(|&d| results.iter().filter(|r| r.d == d).collect()).collect();
    let grids: Vec<Vec<u64>> = m
        .dims
        .iter()
        .map(|e| {
            crate::grid::log_grid(e.max_steps, cfg.observe.grid_per_decade).iter().map(|s| s * m.batch as u64).collect()
        })
        .collect();

    for dir_i in cfg.directions() {
        let name = DIRECTION_NAMES[dir_i];
        let mut lines = Vec::new();
        for (i, &d) in dims.iter().enumerate() {
            let b = bands(&per_d[i], &grids[i], |r| r.overlaps[dir_i].abs());
            lines.push(band_line(format!("d = {d}"), color(i), LineKind::Solid, &b));
        }
        if let Some(t) = th[dir_i] {
            let xmax = grids.iter().filter_map(|g| g.last()).max().copied().unwrap_or(10) as f64;
            lines.push(Line::new(format!("θ_{name} = {t}"), color(6), LineKind::Dashed, vec![(1.0, t), (xmax, t)]));
        }
        let chart = Chart {
            title: format!("overlap with {name}: median and 25–75 % of {} walkers", m.walkers),
            x: Axis::log("samples n"),
            y: Axis::linear(format!("|α_{name}|")).with_range(0.0, 1.0),
            lines,
        };
        files.extend(plot::save(&chart, &out.join(format!("overlap_{name}")), SIZE)?);
    }

    files.extend(plot::save(&scaling_chart(&summary), &out.join("scaling"), SIZE)?);

    if cfg.observe.eval {
        files.extend(loss_figure(&out.join("loss"), &dims, &per_d, &grids)?);
    }
    let md = out.join("report.md");
    std::fs::write(&md, markdown(&m, &summary, &files, out))?;
    files.push(md);
    Ok(files)
}

/// n̂* against d per direction with the fit and the reference scalings.
fn scaling_chart(s: &StudySummary) -> Chart {
    let mut lines = Vec::new();
    let mut anchor: Option<(f64, f64)> = None;
    let (dmin, dmax) = (*s.dims.first().unwrap_or(&2) as f64, *s.dims.last().unwrap_or(&4) as f64);
    for (i, e) in s.exponents.iter().enumerate() {
        let pts: Vec<(f64, f64)> =
            e.dims.iter().zip(&e.medians).filter_map(|(&d, m)| m.map(|m| (d as f64, m))).collect();
        lines.push(Line::new(
            format!("n̂*_{} (q = {})", e.direction, s.quantile),
            color(i),
            LineKind::Points,
            pts.clone(),
        ));
        if let (Some(fit), Some(slope)) = (&e.fit, e.slope) {
            let used: Vec<(f64, f64)> =
                pts.iter().copied().filter(|(d, _)| fit.dims_used.contains(&(*d as usize))).collect();
            if used.len() >= 2 {
                let (x, y): (Vec<f64>, Vec<f64>) = used.iter().map(|&(d, n)| (d.ln(), n.ln())).unzip();
                let (b, a) = study::fit::ols(&x, &y);
                let f = |d: f64| (a + b * d.ln()).exp();
                let ci = match (e.ci_low, e.ci_high) {
                    (Some(l), Some(h)) => format!(" [{l:.2}, {h:.2}]"),
                    _ => String::new(),
                };
                lines.push(Line::new(
                    format!("fit {}: slope {slope:.2}{ci}", e.direction),
                    color(i),
                    LineKind::Solid,
                    vec![(used[0].0, f(used[0].0)), (used[used.len() - 1].0, f(used[used.len() - 1].0))],
                ));
                anchor = anchor.or(Some(used[0]));
            }
        }
    }
    if let Some((d0, n0)) = anchor.or_else(|| lines.iter().find_map(|l| l.points.first().copied())) {
        type Scaling = fn(f64) -> f64;
        let refs: [(&str, Scaling); 3] = [("∝ d", |d| d), ("∝ d log d", |d| d * d.ln()), ("∝ d³", |d| d * d * d)];
        for (k, (label, g)) in refs.iter().enumerate() {
            let pts: Vec<(f64, f64)> =
                (0..=20).map(|j| dmin * (dmax / dmin).powf(j as f64 / 20.0)).map(|d| (d, n0 * g(d) / g(d0))).collect();
            let mut l = Line::new(*label, color(5 + k), LineKind::Dashed, pts);
            l.band.clear();
            lines.push(l);
        }
    }
    Chart {
        title: "sample complexity n̂* against d".into(),
        x: Axis::log("d").with_ticks(s.dims.iter().map(|&d| d as f64).collect()),
        y: Axis::log("samples to recovery n̂*"),
        lines,
    }
}

/// Losses per dimension (left) and the surrogate gap (right), one image with two panels.
fn loss_figure(stem: &Path, dims: &[usize], per_d: &[Vec<&WalkerResult>], grids: &[Vec<u64>]) -> Result<Vec<PathBuf>> {
    let mut left = Vec::new();
    let mut right = Vec::new();
    for (i, &d) in dims.iter().enumerate() {
        let df = d as f64;
        let data = bands(&per_d[i], &grids[i], |r| r.eval.map_or(f64::NAN, |e| e.data / df));
        let surr = bands(&per_d[i], &grids[i], |r| r.eval.map_or(f64::NAN, |e| e.surrogate / df));
        let gap = bands(&per_d[i], &grids[i], |r| r.eval.map_or(f64::NAN, |e| e.gap));
        let mut l = band_line(format!("L_data/d, d = {d}"), color(i), LineKind::Solid, &data);
        l.band.clear();
        left.push(l);
        let mut l = band_line(format!("L_surr/d, d = {d}"), color(i), LineKind::Dashed, &surr);
        l.band.clear();
        left.push(l);
        right.push(band_line(format!("d = {d}"), color(i), LineKind::Solid, &gap));
    }
    let charts = [
        Chart {
            title: "test loss on data (solid) and surrogate (dashed)".into(),
            x: Axis::log("samples n"),
            y: Axis::linear("loss per dimension"),
            lines: left,
        },
        Chart {
            title: "surrogate gap ΔL = L_surr − L_data".into(),
            x: Axis::log("samples n"),
            y: Axis::linear("ΔL (median, 25–75 %)"),
            lines: right,
        },
    ];
    plot::register_font();
    let size = (2 * SIZE.0, SIZE.1);
    let (png, svg) = (stem.with_extension("png"), stem.with_extension("svg"));
    {
        use plotters::prelude::*;
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        let panels = root.split_evenly((1, 2));
        for (p, c) in panels.iter().zip(&charts) {
            plot::draw_any(p, c)?;
        }
        root.present().map_err(|e| anyhow::anyhow!("writing {}: {e:?}", png.display()))?;
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        let panels = root.split_evenly((1, 2));
        for (p, c) in panels.iter().zip(&charts) {
            plot::draw_any(p, c)?;
        }
        root.present().map_err(|e| anyhow::anyhow!("writing {}: {e:?}", svg.display()))?;
    }
    Ok(vec![png, svg])
}

fn opt(v: Option<f64>, p: usize) -> String {
    v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "—".into())
}

/// The Markdown summary: provenance, the exponents table, the per-d table, the figures.
fn markdown(m: &Manifest, s: &StudySummary, files: &[PathBuf], out: &Path) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# diffexp report: `{}`\n", m.experiment);
    let _ = writeln!(
        t,
        "seed {}, {} walkers per d, d ∈ {:?}, batch {}, git revision `{}`.\n",
        m.seed, m.walkers, s.dims, m.batch, m.git_revision
    );
    let _ = writeln!(t, "## Fitted exponents\n");
    let _ = writeln!(
        t,
        "n̂* is the {}-quantile of the samples to |α_e| ≥ θ_e; slopes are OLS of log n̂* on log d over the d with success fraction ≥ {}, with 95 % bootstrap intervals ({} replicates).\n",
        s.quantile, m.config.study.min_success, m.config.study.bootstrap
    );
    let _ = writeln!(t, "| direction | θ | slope | 95 % CI | log-corrected slope | 95 % CI |");
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for e in &s.exponents {
        let _ = writeln!(
            t,
            "| {} | {} | {} | [{}, {}] | {} | [{}, {}] |",
            e.direction,
            e.threshold,
            opt(e.slope, 3),
            opt(e.ci_low, 3),
            opt(e.ci_high, 3),
            opt(e.log_corrected_slope, 3),
            opt(e.log_corrected_ci_low, 3),
            opt(e.log_corrected_ci_high, 3)
        );
    }
    let _ = writeln!(
        t,
        "\nReference: slope 1 for n* ∝ d, log-corrected slope 1 for n* ∝ d log d, slope 3 for n* ∝ d³ (SPEC §2.10).\n"
    );
    let _ = writeln!(t, "## Per dimension\n");
    let _ = writeln!(t, "| direction | d | budget | f_d | n̂* | n̂*/(d ln d) |");
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for e in &s.exponents {
        for (i, &d) in e.dims.iter().enumerate() {
            let df = d as f64;
            let _ = writeln!(
                t,
                "| {} | {d} | {} | {:.3} | {} | {} |",
                e.direction,
                s.budgets[i],
                e.success_fraction[i],
                e.medians[i].map(|v| format!("{v:.0}")).unwrap_or_else(|| format!("> {}", s.budgets[i])),
                opt(e.medians[i].map(|v| v / (df * df.ln())), 3)
            );
        }
    }
    if !s.diverged.is_empty() {
        let _ = writeln!(t, "\n{} walkers diverged.", s.diverged.len());
    }
    let _ = writeln!(t, "\n## Figures\n");
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        let rel = f.strip_prefix(out).unwrap_or(f);
        let _ = writeln!(t, "![{}]({})\n", rel.display(), rel.display());
    }
    t
}
