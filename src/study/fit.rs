//! Scaling fits of n*(d) and their bootstrap confidence intervals (SPEC §2.8).

use super::recovery::{RecoverySample, survival_quantile};
use crate::rng::ScalarRng;
use serde::{Deserialize, Serialize};

/// Ordinary least squares slope and intercept of y on x.
pub fn ols(x: &[f64], y: &[f64]) -> (f64, f64) {
    assert_eq!(x.len(), y.len());
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let slope = sxy / sxx;
    (slope, my - slope * mx)
}

/// Two-regressor least squares y = γ x₁ + κ x₂ + c (log n* = γ log d + κ log log d + c).
pub fn ols2(x1: &[f64], x2: &[f64], y: &[f64]) -> Option<(f64, f64, f64)> {
    let n = y.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let m1 = x1.iter().sum::<f64>() / nf;
    let m2 = x2.iter().sum::<f64>() / nf;
    let my = y.iter().sum::<f64>() / nf;
    let (mut s11, mut s12, mut s22, mut s1y, mut s2y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let (a, b, c) = (x1[i] - m1, x2[i] - m2, y[i] - my);
        s11 += a * a;
        s12 += a * b;
        s22 += b * b;
        s1y += a * c;
        s2y += b * c;
    }
    let det = s11 * s22 - s12 * s12;
    if det.abs() < 1e-300 {
        return None;
    }
    let g = (s22 * s1y - s12 * s2y) / det;
    let k = (s11 * s2y - s12 * s1y) / det;
    Some((g, k, my - g * m1 - k * m2))
}

/// A point estimate with a 95 % bootstrap percentile interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The fitted exponents of one direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingFit {
    /// d values that entered the fit (f_d ≥ min_success and quantile defined).
    pub dims_used: Vec<usize>,
    /// Slope of log n̂* on log d.
    pub slope: Estimate,
    /// Slope of log(n̂*/log d) on log d (≈ 1 for k = 2).
    pub log_corrected_slope: Estimate,
    /// (γ, κ) of log n̂* = γ log d + κ log log d + c, point estimates (needs ≥ 3 d values).
    pub two_parameter: Option<(f64, f64)>,
    /// Bootstrap replicates in which some quantile was undefined (left out of the intervals).
    pub undefined_replicates: usize,
    pub replicates: usize,
    /// Per used d: n̂*/d, n̂*/(d log d), n̂*/(d log² d), n̂*/d³ with bootstrap intervals.
    pub ratios: Vec<RatioRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatioRow {
    pub d: usize,
    pub over_d: Estimate,
    pub over_d_log_d: Estimate,
    pub over_d_log2_d: Estimate,
    pub over_d3: Estimate,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn interval(value: f64, mut reps: Vec<f64>) -> Estimate {
    reps.retain(|x| x.is_finite());
    reps.sort_by(f64::total_cmp);
    Estimate { value, ci_low: percentile(&reps, 0.025), ci_high: percentile(&reps, 0.975) }
}

fn slopes(dims: &[usize], q: &[f64]) -> (f64, f64) {
    // A walker that starts above θ has n* = 0; on a log scale that is one sample.
    let q: Vec<f64> = q.iter().map(|v| v.max(1.0)).collect();
    let x: Vec<f64> = dims.iter().map(|&d| (d as f64).ln()).collect();
    let y: Vec<f64> = q.iter().map(|v| v.ln()).collect();
    let yc: Vec<f64> = q.iter().zip(dims).map(|(v, &d)| (v / (d as f64).ln()).ln()).collect();
    (ols(&x, &y).0, ols(&x, &yc).0)
}

/// Fits n̂*_q(d) ∝ d^γ over the d with f_d ≥ `min_success`, with a bootstrap over walkers
/// (resampled with replacement within each d). Returns `None` when fewer than two d qualify.
pub fn fit_scaling(
    samples: &[RecoverySample],
    q: f64,
    min_success: f64,
    replicates: usize,
    rng: &mut ScalarRng,
) -> Option<ScalingFit> {
    let used: Vec<(&RecoverySample, f64)> = samples
        .iter()
        .filter(|s| s.success_fraction() >= min_success)
        .filter_map(|s| s.quantile(q).map(|v| (s, v)))
        .collect();
    if used.len() < 2 {
        return None;
    }
    let dims: Vec<usize> = used.iter().map(|(s, _)| s.d).collect();
    let qs: Vec<f64> = used.iter().map(|(_, v)| *v).collect();
    let (slope, lc) = slopes(&dims, &qs);
    let lx: Vec<f64> = dims.iter().map(|&d| (d as f64).ln()).collect();
    let llx: Vec<f64> = lx.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = qs.iter().map(|v| v.max(1.0).ln()).collect();
    let two = ols2(&lx, &llx, &ly).map(|(g, k, _)| (g, k));
    let mut rep_slope = Vec::with_capacity(replicates);
    let mut rep_lc = Vec::with_capacity(replicates);
    let mut rep_q: Vec<Vec<f64>> = vec![Vec::with_capacity(replicates); dims.len()];
    let mut undefined = 0;
    let mut buf = Vec::new();
    for _ in 0..replicates {
        let mut qb = Vec::with_capacity(dims.len());
        for (s, _) in &used {
            buf.clear();
            let n = s.times.len() as u64;
            buf.extend((0..n).map(|_| s.times[rng.below(n) as usize]));
            match survival_quantile(&buf, q) {
                Some(v) => qb.push(v),
                None => break,
            }
        }
        if qb.len() < dims.len() {
            undefined += 1;
            continue;
        }
        let (a, b) = slopes(&dims, &qb);
        rep_slope.push(a);
        rep_lc.push(b);
        for (i, v) in qb.into_iter().enumerate() {
            rep_q[i].push(v);
        }
    }
    let ratios = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let df = d as f64;
            let l = df.ln();
            let row = |f: f64| interval(qs[i] / f, rep_q[i].iter().map(|v| v / f).collect());
            RatioRow {
                d,
                over_d: row(df),
                over_d_log_d: row(df * l),
                over_d_log2_d: row(df * l * l),
                over_d3: row(df.powi(3)),
            }
        })
        .collect();
    Some(ScalingFit {
        dims_used: dims,
        slope: interval(slope, rep_slope),
        log_corrected_slope: interval(lc, rep_lc),
        two_parameter: two,
        undefined_replicates: undefined,
        replicates,
        ratios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §7 item 32: for n* = C d log d exactly, the log-corrected slope is 1.
    #[test]
    fn log_corrected_slope_is_one_for_d_log_d() {
        let dims = [64usize, 128, 256, 512, 1024];
        let samples: Vec<RecoverySample> = dims
            .iter()
            .map(|&d| RecoverySample {
                d,
                times: vec![Some((7.0 * d as f64 * (d as f64).ln()).round() as u64); 5],
                budget: u64::MAX,
            })
            .collect();
        let fit = fit_scaling(&samples, 0.5, 0.75, 10, &mut ScalarRng::from_seed(1)).unwrap();
        assert!((fit.log_corrected_slope.value - 1.0).abs() < 1e-4, "{:?}", fit.log_corrected_slope);
        let exact: Vec<f64> = dims.iter().map(|&d| 7.0 * d as f64 * (d as f64).ln()).collect();
        let (_, lc) = slopes(&dims, &exact);
        assert!((lc - 1.0).abs() < 1e-10);
        assert!(fit.slope.value > 1.0);
        let (g, k) = fit.two_parameter.unwrap();
        assert!((g - 1.0).abs() < 1e-3 && (k - 1.0).abs() < 1e-2, "γ={g} κ={k}");
    }

    /// Walkers recovered at step 0 (n* = 0) must not break the fit or the bootstrap.
    #[test]
    fn zero_recovery_times_are_handled() {
        let samples: Vec<RecoverySample> = [16usize, 32, 64]
            .iter()
            .map(|&d| RecoverySample { d, times: vec![Some(0), Some(0), Some(0), Some(d as u64)], budget: 1000 })
            .collect();
        let fit = fit_scaling(&samples, 0.5, 0.75, 50, &mut ScalarRng::from_seed(3)).unwrap();
        assert!(fit.slope.value.is_finite() && fit.slope.ci_low.is_finite());
    }

    /// SPEC §7 item 31 (reduced to 200 repetitions and 400-replicate bootstraps for the default run; the full 1000 is an
    /// ignored test): the 95 % bootstrap CI covers the true γ in ≥ 90 % of repetitions.
    fn coverage(reps: usize, boot: usize) -> f64 {
        let dims = [16usize, 32, 64, 128, 256, 512];
        let gamma = 1.7;
        let mut rng = ScalarRng::from_seed(2024);
        let mut covered = 0;
        for _ in 0..reps {
            let samples: Vec<RecoverySample> = dims
                .iter()
                .map(|&d| RecoverySample {
                    d,
                    times: (0..64)
                        .map(|_| Some((3.0 * (d as f64).powf(gamma) * (0.5 * rng.normal()).exp()).round() as u64))
                        .collect(),
                    budget: u64::MAX,
                })
                .collect();
            let fit = fit_scaling(&samples, 0.5, 0.75, boot, &mut rng).unwrap();
            if fit.slope.ci_low <= gamma && gamma <= fit.slope.ci_high {
                covered += 1;
            }
        }
        covered as f64 / reps as f64
    }

    #[test]
    fn bootstrap_ci_covers_true_exponent() {
        let c = coverage(200, 400);
        // Nominal 0.95; with 200 repetitions the binomial SE at 0.95 is 0.015, so ≥ 0.90 is > 3 SE below.
        assert!(c >= 0.90, "coverage {c}");
    }

    #[test]
    #[ignore = "SPEC §7 item 31 at full size (1000 repetitions, 2000-replicate bootstraps); ~1 min"]
    fn bootstrap_ci_covers_true_exponent_full() {
        let c = coverage(1000, 2000);
        assert!(c >= 0.90, "coverage {c}");
    }
}
