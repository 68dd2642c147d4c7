//! Figures of System B (SPEC §4.12), drawn with plotters into PNG: summary statistics vs ϑ (simulation
//! solid, ODE dashed), projected densities (simulation filled, theory contours, target contours in a
//! third colour), Hellinger vs ϑ, generated images, and the generations of the collapse loop.
//!
//! Text uses DejaVu Sans embedded from Debian's fonts-dejavu-core (Bitstream Vera licence, which permits
//! redistribution and embedding; see figures/DejaVuSans.LICENSE), so no system font is needed.

use super::cli::{
    Common, generation_pipeline, plane_axes, train, write_collapse, write_generation, write_ode, write_records,
};
use super::collapse;
use super::config::{DaeConfig, FigureKind};
use super::generate::{Axis, kde_2d};
use super::ode;
use super::target::Target;
use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("figures/DejaVuSans.ttf");
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

const SIM: RGBColor = RGBColor(31, 119, 180);
const THEORY: RGBColor = RGBColor(214, 39, 40);
const TARGET: RGBColor = RGBColor(44, 160, 44);
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// `dae figures`: runs what `cfg.figure` needs, writes its arrays and PNG(s).
pub fn cmd_figures(c: &Common) -> Result<Value> {
    register_font();
    let cfg = c.load()?;
    let dir = c.out.join(&cfg.name);
    std::fs::create_dir_all(&dir)?;
    let target = Target::build(&cfg)?;
    let files = match cfg.figure {
        FigureKind::Stats => figure_stats(&cfg, &target, &dir)?,
        FigureKind::Densities | FigureKind::Mnist => figure_densities(&cfg, &target, &dir)?,
        FigureKind::Collapse => figure_collapse(&cfg, &target, &dir)?,
    };
    Ok(
        json!({"command": "figures", "name": cfg.name, "files": files, "message": format!("wrote {}", files.join(", "))}),
    )
}

fn figure_stats(cfg: &DaeConfig, target: &Target, dir: &Path) -> Result<Vec<String>> {
    let (_, sink, _) = train(cfg, target, &[])?;
    let tr = ode::theory(cfg, target, cfg.theta_max)?;
    let (k, r, ke) = (target.clusters().0.len(), cfg.r, target.plane.len());
    write_records(dir, "stats", &sink.records, k, r, ke)?;
    write_ode(dir, &tr, cfg, target.theta_bar())?;
    let path = dir.join(format!("{}_stats.png", cfg.name));
    let root = BitMapBackend::new(&path, (1500, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 3));
    let recs = &sink.records;
    // (label, sim series, ode series)
    type Series = Vec<(String, Vec<(f64, f64)>, Vec<(f64, f64)>)>;
    let mut m_series: Series = Vec::new();
    for kk in 0..k {
        for g in 0..r {
            m_series.push((
                format!("M{}{}", kk + 1, g + 1),
                recs.iter().map(|x| (x.theta, x.m[kk * r + g])).collect(),
                tr.theta.iter().zip(&tr.m).map(|(&t, m)| (t, m[kk * r + g])).collect(),
            ));
        }
    }
    let mut q_series: Series = Vec::new();
    for a in 0..r {
        for g in a..r {
            q_series.push((
                format!("Qc{}{}", a + 1, g + 1),
                recs.iter().map(|x| (x.theta, x.q_cal[a * r + g])).collect(),
                tr.theta.iter().zip(&tr.q_cal).map(|(&t, q)| (t, q[a * r + g])).collect(),
            ));
        }
    }
    let b_series: Series = vec![(
        "b".into(),
        recs.iter().map(|x| (x.theta, x.b)).collect(),
        tr.theta.iter().zip(&tr.b).map(|(&t, &b)| (t, b)).collect(),
    )];
    for (area, (title, series)) in panels.iter().zip([("M", m_series), ("Qc = wᵀw/d", q_series), ("b", b_series)]) {
        line_panel(
            area,
            &format!("{title}: simulation (solid) vs ODE (dashed), d = {}", cfg.d),
            &series,
            cfg.theta_max,
        )?;
    }
    root.present().map_err(err)?;
    Ok(vec![path.display().to_string()])
}

#[allow(clippy::type_complexity)]
fn line_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    series: &[(String, Vec<(f64, f64)>, Vec<(f64, f64)>)],
    xmax: f64,
) -> Result<()> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, a, b) in series {
        for &(_, y) in a.iter().chain(b) {
            lo = lo.min(y);
            hi = hi.max(y);
        }
    }
    let pad = 0.05 * (hi - lo).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart.configure_mesh().x_desc("ϑ = ην/d").label_style(("sans-serif", 12)).draw().map_err(err)?;
    for (i, (name, sim, th)) in series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(sim.iter().copied(), col.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        chart.draw_series(DashedLineSeries::new(th.iter().copied(), 6, 4, BLACK.stroke_width(1))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Contour segments of a grid (row-major, x fastest) at `level`, by marching squares.
pub fn contour_segments(z: &[f64], ax: Axis, ay: Axis, level: f64) -> Vec<[(f64, f64); 2]> {
    let mut out = Vec::new();
    let (nx, ny) = (ax.n, ay.n);
    let interp = |x0: f64, y0: f64, v0: f64, x1: f64, y1: f64, v1: f64| {
        let t = if (v1 - v0).abs() < 1e-300 { 0.5 } else { (level - v0) / (v1 - v0) };
        (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
    };
    for j in 0..ny - 1 {
        for i in 0..nx - 1 {
            let (x0, x1, y0, y1) = (ax.at(i), ax.at(i + 1), ay.at(j), ay.at(j + 1));
            let v = [z[j * nx + i], z[j * nx + i + 1], z[(j + 1) * nx + i + 1], z[(j + 1) * nx + i]];
            let p = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)];
            let mut pts = Vec::new();
            for e in 0..4 {
                let (a, b) = (e, (e + 1) % 4);
                if (v[a] >= level) != (v[b] >= level) {
                    pts.push(interp(p[a].0, p[a].1, v[a], p[b].0, p[b].1, v[b]));
                }
            }
            if pts.len() == 2 {
                out.push([pts[0], pts[1]]);
            } else if pts.len() == 4 {
                out.push([pts[0], pts[1]]);
                out.push([pts[2], pts[3]]);
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn density_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    ax: Axis,
    ay: Axis,
    filled: Option<&[f64]>,
    theory: Option<&[f64]>,
    target: Option<&[f64]>,
    labels: (&str, &str),
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 14))
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(36)
        .build_cartesian_2d(ax.lo..ax.hi, ay.lo..ay.hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(labels.0)
        .y_desc(labels.1)
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    if let Some(f) = filled {
        let fmax = f.iter().cloned().fold(0.0, f64::max).max(1e-300);
        let (hx, hy) = (ax.step(), ay.step());
        let mut rects = Vec::new();
        for j in 0..ay.n {
            for i in 0..ax.n {
                let v = (f[j * ax.n + i] / fmax).clamp(0.0, 1.0);
                if v < 0.01 {
                    continue;
                }
                // White → blue ramp.
                let c = RGBColor((255.0 - v * 224.0) as u8, (255.0 - v * 136.0) as u8, (255.0 - v * 75.0) as u8);
                let (x, y) = (ax.at(i), ay.at(j));
                rects.push(Rectangle::new([(x - hx / 2.0, y - hy / 2.0), (x + hx / 2.0, y + hy / 2.0)], c.filled()));
            }
        }
        chart.draw_series(rects).map_err(err)?;
    }
    for (grid, col) in [(theory, THEORY), (target, TARGET)] {
        if let Some(z) = grid {
            let zmax = z.iter().cloned().fold(0.0, f64::max);
            for frac in [0.1, 0.3, 0.5, 0.7, 0.9] {
                let segs = contour_segments(z, ax, ay, frac * zmax);
                chart
                    .draw_series(segs.into_iter().map(|s| PathElement::new(vec![s[0], s[1]], col.stroke_width(1))))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

fn figure_densities(cfg: &DaeConfig, target: &Target, dir: &Path) -> Result<Vec<String>> {
    let run = generation_pipeline(cfg, target)?;
    write_generation(dir, cfg, target, &run)?;
    let (ax, ay) = run.axes;
    let mut files = Vec::new();
    let npan = run.per_theta.len();
    let with_h = !run.hellinger.is_empty();
    let cols = npan + usize::from(with_h);
    let path = dir.join(format!("{}_densities.png", cfg.name));
    let root = BitMapBackend::new(&path, (340 * cols as u32, 380)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(40);
    top.draw(&Text::new(
        format!(
            "{}: generated density (blue, filled), theory (red contours), target (green contours); d = {}, t_end = {}",
            cfg.name, cfg.d, cfg.generate.t_end
        ),
        (10, 12),
        ("sans-serif", 15),
    ))
    .map_err(err)?;
    let panels = body.split_evenly((1, cols));
    let labels = if matches!(cfg.figure, FigureKind::Mnist) { ("PC1", "PC2") } else { ("e₁ (centroid)", "e₂") };
    for (p, area) in run.per_theta.iter().zip(panels.iter()) {
        density_panel(
            area,
            &format!("ϑ = {}", p.theta),
            ax,
            ay,
            Some(&p.sim_density),
            Some(&p.theory_density),
            Some(&run.target_density),
            labels,
        )?;
    }
    if with_h {
        let area = &panels[npan];
        let hmax = run.hellinger.iter().map(|h| h.1.max(h.2)).fold(0.0, f64::max) * 1.1 + 1e-3;
        let tmax = run.hellinger.iter().map(|h| h.0).fold(0.0, f64::max).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .caption(
                if matches!(cfg.figure, FigureKind::Mnist) {
                    "Hellinger on PC1"
                } else {
                    "Hellinger on the centroid line"
                },
                ("sans-serif", 14),
            )
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..tmax * 1.05, 0.0..hmax)
            .map_err(err)?;
        chart.configure_mesh().x_desc("ϑ").label_style(("sans-serif", 11)).draw().map_err(err)?;
        chart
            .draw_series(LineSeries::new(run.hellinger.iter().map(|h| (h.0, h.1)), THEORY.stroke_width(2)))
            .map_err(err)?
            .label("theory")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], THEORY.stroke_width(2)));
        chart
            .draw_series(run.hellinger.iter().map(|h| Circle::new((h.0, h.2), 4, SIM.filled())))
            .map_err(err)?
            .label("samples (KDE)")
            .legend(|(x, y)| Circle::new((x + 9, y), 4, SIM.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .label_font(("sans-serif", 12))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    files.push(path.display().to_string());
    // Generated images from one common X₀ across ϑ (MNIST).
    if matches!(cfg.figure, FigureKind::Mnist) && cfg.d == 784 {
        let nimg = run.per_theta.first().map(|p| p.images.len() / 784).unwrap_or(0);
        if nimg > 0 {
            let path = dir.join(format!("{}_images.png", cfg.name));
            let cell = 3u32;
            let (w, h) = (nimg as u32 * 29 * cell + 80, npan as u32 * 29 * cell + 10);
            let root = BitMapBackend::new(&path, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            for (row, p) in run.per_theta.iter().enumerate() {
                let y0 = row as i32 * 29 * cell as i32 + 5;
                root.draw(&Text::new(format!("ϑ={}", p.theta), (4, y0 + 36), ("sans-serif", 13))).map_err(err)?;
                for im in 0..nimg {
                    let img = &p.images[im * 784..(im + 1) * 784];
                    let (lo, hi) =
                        img.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                    let x0 = 80 + im as i32 * 29 * cell as i32;
                    for py in 0..28 {
                        for px in 0..28 {
                            let v = ((img[py * 28 + px] - lo) / (hi - lo).max(1e-12) * 255.0) as u8;
                            let c = RGBColor(v, v, v);
                            let (xx, yy) = (x0 + (px as i32) * cell as i32, y0 + (py as i32) * cell as i32);
                            root.draw(&Rectangle::new([(xx, yy), (xx + cell as i32, yy + cell as i32)], c.filled()))
                                .map_err(err)?;
                        }
                    }
                }
            }
            root.present().map_err(err)?;
            files.push(path.display().to_string());
        }
    }
    Ok(files)
}

fn figure_collapse(cfg: &DaeConfig, target: &Target, dir: &Path) -> Result<Vec<String>> {
    let reps = collapse::run(cfg, target)?;
    let (ax, ay) = plane_axes(cfg, target);
    write_collapse(dir, cfg, target, &reps, ax, ay)?;
    let law = target.plane_law(&target.principal_components(2));
    let mut td = vec![0.0; ax.n * ay.n];
    for iy in 0..ay.n {
        for ix in 0..ax.n {
            td[iy * ax.n + ix] = law.density(&[ax.at(ix), ay.at(iy)]);
        }
    }
    let path = dir.join(format!("{}_collapse.png", cfg.name));
    let cols = reps.len() + 1;
    let root = BitMapBackend::new(&path, (360 * cols as u32, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(40);
    top.draw(&Text::new(
        format!(
            "{}: ρ and generations ρ̂⁽ᵍ⁾ (filled KDE) on the target's top-2 PCs; target contours green; ϑ_g = {}",
            cfg.name, cfg.collapse.theta_g
        ),
        (10, 12),
        ("sans-serif", 15),
    ))
    .map_err(err)?;
    let panels = body.split_evenly((1, cols));
    // ρ itself from samples of the target law projected (exact density, filled).
    density_panel(&panels[0], "ρ (target)", ax, ay, Some(&td), None, Some(&td), ("PC1", "PC2"))?;
    for (g, area) in reps.iter().zip(panels.iter().skip(1)) {
        let dens = kde_2d(&g.samples.proj, ax, ay);
        density_panel(
            area,
            &format!(
                "generation {}: H(PC1) = {:.3}, H(PC2) = {:.3}",
                g.generation, g.hellinger_pc[0], g.hellinger_pc[1]
            ),
            ax,
            ay,
            Some(&dens),
            None,
            Some(&td),
            ("PC1", "PC2"),
        )?;
    }
    root.present().map_err(err)?;
    Ok(vec![path.display().to_string()])
}
