//! Generic line charts with plotters, written as PNG and SVG from one description: lines (solid or
//! dashed, optional markers), shaded quantile bands, logarithmic or linear axes, a legend. Text is
//! rendered with DejaVu Sans embedded in the binary (no system fonts needed; licence in
//! `fonts/LICENSE-DejaVu.txt`).
//!
//! Shared by every figure diffexp draws; nothing here knows about studies.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Registers the embedded font as plotters' "sans-serif" (once per process).
pub fn register_font() {
    REGISTER.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            // Cannot happen with the embedded file; charts would then fail with a clear error.
            eprintln!("warning: embedded font could not be loaded");
        }
    });
}

/// Colour `i` of a qualitative palette (colour-blind-safe first entries, Okabe–Ito).
pub fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(120, 120, 120),
        RGBColor(0, 0, 0),
    ];
    C[i % C.len()]
}

/// How a line is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineKind {
    Solid,
    Dashed,
    /// Markers only.
    Points,
    /// Solid line with markers.
    SolidPoints,
}

/// One line of a chart, with an optional shaded band.
#[derive(Clone, Debug)]
pub struct Line {
    /// Legend entry (empty: none).
    pub label: String,
    pub color: RGBColor,
    pub kind: LineKind,
    pub points: Vec<(f64, f64)>,
    /// (x, low, high) of a band drawn under the line.
    pub band: Vec<(f64, f64, f64)>,
}

impl Line {
    pub fn new(label: impl Into<String>, color: RGBColor, kind: LineKind, points: Vec<(f64, f64)>) -> Self {
        Self { label: label.into(), color, kind, points, band: Vec::new() }
    }
}

/// An axis: label, scale, and optional fixed range (else fitted to the data).
#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub log: bool,
    pub range: Option<(f64, f64)>,
    /// Tick positions on a log axis (default: see [`log_ticks`]).
    pub ticks: Option<Vec<f64>>,
}

impl Axis {
    pub fn linear(label: impl Into<String>) -> Self {
        Self { label: label.into(), log: false, range: None, ticks: None }
    }
    pub fn log(label: impl Into<String>) -> Self {
        Self { label: label.into(), log: true, range: None, ticks: None }
    }
    pub fn with_ticks(mut self, ticks: Vec<f64>) -> Self {
        self.ticks = Some(ticks);
        self
    }
    pub fn with_range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }
}

/// A chart: title, axes, lines.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub lines: Vec<Line>,
}

fn usable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

/// The data range of an axis, padded (multiplicatively on a log axis).
fn fit_range(values: impl Iterator<Item = f64>, axis: &Axis) -> (f64, f64) {
    if let Some(r) = axis.range {
        return r;
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|&v| usable(v, axis.log)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if axis.log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if axis.log {
        let (l, h) = (lo.log10(), hi.log10());
        let pad = ((h - l) * 0.05).max(0.05);
        (10f64.powf(l - pad), 10f64.powf(h + pad))
    } else {
        let pad = ((hi - lo) * 0.05).max(if hi == lo { 0.5 } else { 0.0 });
        (lo - pad, hi + pad)
    }
}

/// Writes `chart` as `stem.png` and `stem.svg` at `size` pixels; returns both paths.
pub fn save(chart: &Chart, stem: &Path, size: (u32, u32)) -> Result<Vec<PathBuf>> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw_any(&root, chart)?;
        root.present().map_err(|e| anyhow!("writing {}: {e:?}", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw_any(&root, chart)?;
        root.present().map_err(|e| anyhow!("writing {}: {e:?}", svg.display()))?;
    }
    Ok(vec![png, svg])
}

/// Draws `chart` on any plotters drawing area (a whole image or a panel of one).
pub fn draw_any<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<()> {
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let xs = chart.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0).chain(l.band.iter().map(|b| b.0)));
    let ys =
        chart.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1).chain(l.band.iter().flat_map(|b| [b.1, b.2])));
    let (x0, x1) = fit_range(xs, &chart.x);
    let (y0, y1) = fit_range(ys, &chart.y);
    let (kx, ky) = (log_ticks(x0, x1, chart.x.ticks.as_deref()), log_ticks(y0, y1, chart.y.ticks.as_deref()));
    match (chart.x.log, chart.y.log) {
        (true, true) => {
            draw_in(root, chart, (x0..x1).log_scale().with_key_points(kx), (y0..y1).log_scale().with_key_points(ky))
        }
        (true, false) => draw_in(root, chart, (x0..x1).log_scale().with_key_points(kx), y0..y1),
        (false, true) => draw_in(root, chart, x0..x1, (y0..y1).log_scale().with_key_points(ky)),
        (false, false) => draw_in(root, chart, x0..x1, y0..y1),
    }
}

/// Tick positions of a log axis on [lo, hi]: the given ones inside the range, else powers of ten,
/// refined to 1-2-5 and then 1…9 steps while fewer than three fall inside.
pub fn log_ticks(lo: f64, hi: f64, given: Option<&[f64]>) -> Vec<f64> {
    if let Some(g) = given {
        return g.iter().copied().filter(|&v| v >= lo && v <= hi).collect();
    }
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return vec![];
    }
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mut out = Vec::new();
    for mantissas in [&[1.0][..], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]] {
        out = (k0..=k1)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|&v| v >= lo && v <= hi)
            .collect();
        if out.len() >= 3 {
            break;
        }
    }
    out
}

fn draw_in<DB, X, Y>(root: &DrawingArea<DB, Shift>, chart: &Chart, x: X, y: Y) -> Result<()>
where
    DB: DrawingBackend,
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    let fmt = |v: &f64| {
        let a = v.abs();
        if a == 0.0 {
            "0".to_string()
        } else if !(1e-3..1e5).contains(&a) {
            format!("{v:.0e}")
        } else if a >= 100.0 {
            format!("{v:.0}")
        } else {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    c.configure_mesh()
        .x_desc(&chart.x.label)
        .y_desc(&chart.y.label)
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    let (xl, yl) = (chart.x.log, chart.y.log);
    for line in &chart.lines {
        let band: Vec<_> = line
            .band
            .iter()
            .copied()
            .filter(|&(x, lo, hi)| usable(x, xl) && usable(lo, yl) && usable(hi, yl))
            .collect();
        if band.len() >= 2 {
            let mut poly: Vec<(f64, f64)> = band.iter().map(|&(x, _, hi)| (x, hi)).collect();
            poly.extend(band.iter().rev().map(|&(x, lo, _)| (x, lo)));
            c.draw_series(std::iter::once(Polygon::new(poly, line.color.mix(0.18).filled()))).map_err(e)?;
        }
        let pts: Vec<(f64, f64)> =
            line.points.iter().copied().filter(|&(x, y)| usable(x, xl) && usable(y, yl)).collect();
        let style = ShapeStyle::from(&line.color).stroke_width(2);
        let color = line.color;
        let anno = match line.kind {
            LineKind::Solid | LineKind::SolidPoints => {
                Some(c.draw_series(LineSeries::new(pts.clone(), style)).map_err(e)?)
            }
            LineKind::Dashed => Some(c.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style)).map_err(e)?),
            LineKind::Points => None,
        };
        let anno = if matches!(line.kind, LineKind::Points | LineKind::SolidPoints) {
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(e)?
        } else {
            anno.expect("line drawn")
        };
        if !line.label.is_empty() {
            let kind = line.kind;
            anno.label(&line.label).legend(move |(x, y)| -> DynElement<'static, DB, (i32, i32)> {
                match kind {
                    LineKind::Points => Circle::new((x + 10, y), 4, color.filled()).into_dyn(),
                    _ => {
                        PathElement::new(vec![(x, y), (x + 20, y)], ShapeStyle::from(&color).stroke_width(2)).into_dyn()
                    }
                }
            });
        }
    }
    if chart.lines.iter().any(|l| !l.label.is_empty()) {
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_with_log_axes_and_bands() {
        let dir = std::env::temp_dir().join(format!("diffexp-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pts: Vec<(f64, f64)> = (1..50).map(|i| (i as f64 * 10.0, 1.0 - 1.0 / i as f64)).collect();
        let mut l = Line::new("median", color(0), LineKind::Solid, pts.clone());
        l.band = pts.iter().map(|&(x, y)| (x, y * 0.9, (y * 1.1).min(1.0))).collect();
        let chart = Chart {
            title: "test α".into(),
            x: Axis::log("samples"),
            y: Axis::linear("|α|").with_range(0.0, 1.0),
            lines: vec![
                l,
                Line::new("ref", color(1), LineKind::Dashed, vec![(10.0, 0.5), (500.0, 0.5)]),
                Line::new("", color(2), LineKind::Points, vec![(20.0, 0.3)]),
            ],
        };
        let files = save(&chart, &dir.join("c"), (640, 400)).unwrap();
        let png = std::fs::read(&files[0]).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("median"), "{}", &svg[..200.min(svg.len())]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
