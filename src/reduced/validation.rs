//! Statistics for validating the reduced engine against the full one (SPEC §3.5): two-sample and
//! one-sample Kolmogorov–Smirnov tests, Holm's correction, a two-proportion test, and the regularised
//! incomplete beta function for the initial-state law (SPEC §7 item 34).

/// Kolmogorov's survival function Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}.
pub fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut s = 0.0;
    for k in 1..=100 {
        let kf = k as f64;
        let t = (-2.0 * kf * kf * lambda * lambda).exp();
        s += if k % 2 == 1 { t } else { -t };
        if t < 1e-17 {
            break;
        }
    }
    (2.0 * s).clamp(0.0, 1.0)
}

/// Two-sample KS statistic sup|F₁ − F₂| (ties handled: both ECDFs advance past a repeated value
/// before the difference is taken).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut x = a.to_vec();
    let mut y = b.to_vec();
    x.sort_by(|p, q| p.partial_cmp(q).unwrap());
    y.sort_by(|p, q| p.partial_cmp(q).unwrap());
    let (n, m) = (x.len() as f64, y.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut dmax: f64 = 0.0;
    while i < x.len() && j < y.len() {
        let t = x[i].min(y[j]);
        while i < x.len() && x[i] <= t {
            i += 1;
        }
        while j < y.len() && y[j] <= t {
            j += 1;
        }
        dmax = dmax.max((i as f64 / n - j as f64 / m).abs());
    }
    dmax
}

/// Two-sample KS test: (statistic, asymptotic p-value with Stephens' small-sample correction).
/// With ties the test is conservative.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> (f64, f64) {
    let dstat = ks_statistic(a, b);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let en = (n * m / (n + m)).sqrt();
    (dstat, kolmogorov_q((en + 0.12 + 0.11 / en) * dstat))
}

/// One-sample KS test against a continuous CDF: (statistic, p-value).
pub fn ks_one_sample(a: &[f64], cdf: impl Fn(f64) -> f64) -> (f64, f64) {
    let mut x = a.to_vec();
    x.sort_by(|p, q| p.partial_cmp(q).unwrap());
    let n = x.len() as f64;
    let mut dmax: f64 = 0.0;
    for (i, &xi) in x.iter().enumerate() {
        let f = cdf(xi);
        dmax = dmax.max((i as f64 + 1.0) / n - f).max(f - i as f64 / n);
    }
    let en = n.sqrt();
    (dmax, kolmogorov_q((en + 0.12 + 0.11 / en) * dmax))
}

/// Holm's step-down adjusted p-values (same order as the input).
pub fn holm_adjust(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&i, &j| p[i].partial_cmp(&p[j]).unwrap());
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in idx.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Two-proportion z-test p-value for k₁/n₁ vs k₂/n₂ (pooled variance; 1 when both are 0 or 1).
pub fn two_proportion_p(k1: usize, n1: usize, k2: usize, n2: usize) -> f64 {
    let (p1, p2) = (k1 as f64 / n1 as f64, k2 as f64 / n2 as f64);
    let pool = (k1 + k2) as f64 / (n1 + n2) as f64;
    let se = (pool * (1.0 - pool) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let z = ((p1 - p2) / se).abs();
    libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Regularised incomplete beta I_x(a, b), by the continued fraction of the incomplete beta
/// function (modified Lentz evaluation), using I_x(a,b) = 1 − I_{1−x}(b,a) where it converges faster.
pub fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    let tiny = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..500 {
        let mf = m as f64;
        // Even step: m(b − m)x / ((a + 2m − 1)(a + 2m)).
        let num = mf * (b - mf) * x / ((a + 2.0 * mf - 1.0) * (a + 2.0 * mf));
        d = 1.0 + num * d;
        d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < tiny {
            c = tiny;
        }
        h *= d * c;
        // Odd step: −(a + m)(a + b + m)x / ((a + 2m)(a + 2m + 1)).
        let num = -(a + mf) * (a + b + mf) * x / ((a + 2.0 * mf) * (a + 2.0 * mf + 1.0));
        d = 1.0 + num * d;
        d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < tiny {
            c = tiny;
        }
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// Mean, variance and their standard errors of a sample (variance SE from the fourth central moment).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MomentSummary {
    pub n: f64,
    pub mean: f64,
    pub var: f64,
    pub mean_se: f64,
    pub var_se: f64,
}

impl MomentSummary {
    pub fn of(x: &[f64]) -> Self {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let (mut m2, mut m4) = (0.0, 0.0);
        for &v in x {
            let c = v - mean;
            m2 += c * c;
            m4 += c * c * c * c;
        }
        let (m2, m4) = (m2 / n, m4 / n);
        Self {
            n,
            mean,
            var: m2 * n / (n - 1.0),
            mean_se: (m2 / n).sqrt(),
            var_se: ((m4 - m2 * m2).max(0.0) / n).sqrt(),
        }
    }

    /// |Δmean| and |Δvar| in units of their combined standard errors.
    pub fn z_scores(&self, other: &Self) -> (f64, f64) {
        let zm = (self.mean - other.mean).abs() / (self.mean_se.powi(2) + other.mean_se.powi(2)).sqrt();
        let zv = (self.var - other.var).abs() / (self.var_se.powi(2) + other.var_se.powi(2)).sqrt();
        (zm, zv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::ScalarRng;

    #[test]
    fn incomplete_beta_known_values() {
        // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 − (1 − x)^b; I_½(a, a) = ½.
        for &x in &[0.01, 0.3, 0.77] {
            assert!((incomplete_beta(x, 1.0, 1.0) - x).abs() < 1e-13);
            assert!((incomplete_beta(x, 2.5, 1.0) - x.powf(2.5)).abs() < 1e-13);
            assert!((incomplete_beta(x, 1.0, 7.0) - (1.0 - (1.0 - x).powi(7))).abs() < 1e-13);
        }
        assert!((incomplete_beta(0.5, 3.7, 3.7) - 0.5).abs() < 1e-13);
        // Beta(3/2, 1): ∫₀ˣ (3/2)t^{1/2} = x^{3/2}.
        assert!((incomplete_beta(0.2, 1.5, 1.0) - 0.2f64.powf(1.5)).abs() < 1e-13);
    }

    #[test]
    fn ks_detects_shift_and_accepts_same_law() {
        let mut r = ScalarRng::from_seed(1);
        let a: Vec<f64> = (0..500).map(|_| r.normal()).collect();
        let b: Vec<f64> = (0..500).map(|_| r.normal()).collect();
        let c: Vec<f64> = (0..500).map(|_| r.normal() + 0.5).collect();
        assert!(ks_two_sample(&a, &b).1 > 0.01);
        assert!(ks_two_sample(&a, &c).1 < 1e-4);
        let phi = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
        assert!(ks_one_sample(&a, phi).1 > 0.01);
        assert!(ks_one_sample(&c, phi).1 < 1e-4);
    }

    #[test]
    fn holm_is_step_down() {
        let adj = holm_adjust(&[0.01, 0.04, 0.03, 0.5]);
        assert_eq!(adj, vec![0.04, 0.09, 0.09, 0.5]);
    }
}
