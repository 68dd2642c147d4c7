//! Gauss quadrature rules for the exact theory.
//!
//! - [`GaussRule::hermite`]: probabilists' Gauss–Hermite, E_{g~N(0,1)} f(g) ≈ Σ wᵢ f(xᵢ), Σ wᵢ = 1.
//! - [`GaussRule::legendre`], [`GaussRule::legendre_on`]: Gauss–Legendre on [−1, 1] or [lo, hi].
//! - [`GaussRule::laguerre`]: Gauss–Laguerre for ∫₀^∞ f(u) e^{−u} du (Laplace latents, Gaussian tails).
//! - [`GaussianLine`]: ∫ f(x) φ(x) dx over the real line or a sub-interval, split at given breakpoints:
//!   composite Gauss–Legendre on [−8, 8] and a Gaussian tail rule beyond ±8. This is the rule for the
//!   discontinuous couplings of SPEC §2.1 and for kinked activations (ReLU).
//!
//! All rules come from the three-term recurrence of their orthogonal polynomials (Golub–Welsch): the
//! nodes are the eigenvalues of the Jacobi matrix, each isolated by Sturm-sequence bisection (backward
//! stable, no eigenvector iteration to lose accuracy) and then converged by a safeguarded Newton
//! iteration on the orthonormal polynomial p_n; the weights are the Christoffel numbers 1/Σₖ pₖ(xᵢ)², which have *relative* accuracy
//! even for the tiny weights at the edge of a 400-node Hermite rule (the recurrence is rescaled on the
//! fly, so nothing overflows).

/// A quadrature rule: nodes and weights with Σ wᵢ f(xᵢ) ≈ ∫ f dμ.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussRule {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

/// Recurrence of the monic orthogonal polynomials πₖ₊₁ = (x − αₖ)πₖ − βₖπₖ₋₁, with μ₀ = ∫ dμ.
struct Recurrence<'a> {
    alpha: &'a dyn Fn(usize) -> f64,
    beta: &'a dyn Fn(usize) -> f64,
    mu0: f64,
    symmetric: bool,
}

impl GaussRule {
    /// n-node probabilists' Gauss–Hermite rule: exact for E p(g), g ~ N(0,1), deg p ≤ 2n − 1.
    /// Weights sum to 1. Accurate for n up to several hundred (tested at 400).
    pub fn hermite(n: usize) -> Self {
        Self::from_recurrence(n, Recurrence { alpha: &|_| 0.0, beta: &|k| k as f64, mu0: 1.0, symmetric: true })
    }

    /// n-node Gauss–Legendre rule on [−1, 1] (weights sum to 2).
    pub fn legendre(n: usize) -> Self {
        Self::from_recurrence(
            n,
            Recurrence {
                alpha: &|_| 0.0,
                beta: &|k| {
                    let k = k as f64;
                    k * k / (4.0 * k * k - 1.0)
                },
                mu0: 2.0,
                symmetric: true,
            },
        )
    }

    /// n-node Gauss–Legendre rule on [lo, hi] (weights sum to hi − lo).
    pub fn legendre_on(n: usize, lo: f64, hi: f64) -> Self {
        let base = Self::legendre(n);
        let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
        Self {
            nodes: base.nodes.iter().map(|&t| mid + half * t).collect(),
            weights: base.weights.iter().map(|&w| half * w).collect(),
        }
    }

    /// Composite Gauss–Legendre on [lo, hi]: `panels` equal panels of `n` nodes each.
    pub fn composite_legendre(n: usize, panels: usize, lo: f64, hi: f64) -> Self {
        assert!(panels >= 1 && hi >= lo, "composite_legendre: need panels ≥ 1 and hi ≥ lo");
        let base = Self::legendre(n);
        let width = (hi - lo) / panels as f64;
        let mut rule = Self { nodes: Vec::with_capacity(n * panels), weights: Vec::with_capacity(n * panels) };
        for j in 0..panels {
            let a = lo + width * j as f64;
            let b = if j + 1 == panels { hi } else { lo + width * (j + 1) as f64 };
            let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
            for (&t, &w) in base.nodes.iter().zip(&base.weights) {
                rule.nodes.push(mid + half * t);
                rule.weights.push(half * w);
            }
        }
        rule
    }

    /// n-node Gauss–Laguerre rule for ∫₀^∞ f(u) e^{−u} du (weights sum to 1).
    pub fn laguerre(n: usize) -> Self {
        Self::from_recurrence(
            n,
            Recurrence { alpha: &|k| (2 * k + 1) as f64, beta: &|k| (k * k) as f64, mu0: 1.0, symmetric: false },
        )
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Σ wᵢ f(xᵢ).
    pub fn integrate(&self, mut f: impl FnMut(f64) -> f64) -> f64 {
        self.nodes.iter().zip(&self.weights).map(|(&x, &w)| w * f(x)).sum()
    }

    /// Iterator over (node, weight).
    pub fn iter(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.nodes.iter().copied().zip(self.weights.iter().copied())
    }

    fn from_recurrence(n: usize, rec: Recurrence<'_>) -> Self {
        assert!(n >= 1, "a Gauss rule needs at least one node");
        let alpha: Vec<f64> = (0..n).map(|k| (rec.alpha)(k)).collect();
        // beta[k] couples rows k−1 and k (beta[0] unused).
        let beta: Vec<f64> = (0..n).map(|k| if k == 0 { 0.0 } else { (rec.beta)(k) }).collect();
        let mut nodes = jacobi_eigenvalues(&alpha, &beta);
        let mut weights: Vec<f64> = nodes.iter().map(|&x| christoffel(x, &alpha, &beta, rec.mu0)).collect();
        if rec.symmetric {
            // The measure is symmetric: enforce xᵢ = −x_{n−1−i} and equal mirrored weights exactly, so
            // that odd integrands vanish to rounding and parity arguments hold in floating point.
            for i in 0..n / 2 {
                let j = n - 1 - i;
                let x = 0.5 * (nodes[j] - nodes[i]);
                let w = 0.5 * (weights[i] + weights[j]);
                nodes[i] = -x;
                nodes[j] = x;
                weights[i] = w;
                weights[j] = w;
            }
            if n % 2 == 1 {
                nodes[n / 2] = 0.0;
            }
        }
        let total: f64 = weights.iter().sum();
        let scale = rec.mu0 / total;
        weights.iter_mut().for_each(|w| *w *= scale);
        Self { nodes, weights }
    }
}

/// Number of eigenvalues of the symmetric tridiagonal (alpha, √beta) strictly below x (Sturm count
/// via the LDLᵀ pivots of T − xI).
fn sturm_count(x: f64, alpha: &[f64], beta: &[f64]) -> usize {
    let mut count = 0;
    let mut d = 1.0;
    for k in 0..alpha.len() {
        let off = if k == 0 { 0.0 } else { beta[k] / d };
        d = alpha[k] - x - off;
        if d == 0.0 {
            d = -f64::EPSILON * (x.abs() + 1.0);
        }
        if d < 0.0 {
            count += 1;
        }
    }
    count
}

/// All eigenvalues of the Jacobi matrix, ascending: Sturm-count bisection until each eigenvalue is
/// isolated in [lo, hi] (count(lo) = k, count(hi) = k + 1), then a safeguarded Newton iteration on
/// p_n, whose zeros are exactly these eigenvalues and which changes sign once in the bracket.
fn jacobi_eigenvalues(alpha: &[f64], beta: &[f64]) -> Vec<f64> {
    let n = alpha.len();
    let sqrt_beta: Vec<f64> = beta.iter().map(|b| b.sqrt()).collect();
    // Gershgorin bounds.
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for k in 0..n {
        let r = if k > 0 { sqrt_beta[k] } else { 0.0 } + if k + 1 < n { sqrt_beta[k + 1] } else { 0.0 };
        lo = lo.min(alpha[k] - r);
        hi = hi.max(alpha[k] + r);
    }
    let (lo, hi) = (lo - 1e-12 * (1.0 + lo.abs()), hi + 1e-12 * (1.0 + hi.abs()));
    let mut out = Vec::with_capacity(n);
    // count(a) = k on entry for eigenvalue k: the previous bracket's upper end.
    let mut a_next = lo;
    for k in 0..n {
        let (mut a, mut b, mut cb) = (a_next, hi, n);
        let mut ca = k;
        while !(ca == k && cb == k + 1) {
            let mid = 0.5 * (a + b);
            if mid <= a || mid >= b {
                break;
            }
            let c = sturm_count(mid, alpha, beta);
            if c > k {
                b = mid;
                cb = c;
            } else {
                a = mid;
                ca = c;
            }
        }
        a_next = b;
        out.push(safeguarded_newton(a, b, alpha, &sqrt_beta));
    }
    out
}

/// The single zero of p_n in [a, b] by Newton steps, falling back to bisection on the sign of p_n
/// whenever a step leaves the bracket.
fn safeguarded_newton(mut a: f64, mut b: f64, alpha: &[f64], sqrt_beta: &[f64]) -> f64 {
    let sign_a = orthonormal_tail(a, alpha, sqrt_beta).0.signum();
    let mut x = 0.5 * (a + b);
    for _ in 0..200 {
        let (p, dp) = orthonormal_tail(x, alpha, sqrt_beta);
        if p == 0.0 {
            return x;
        }
        if p.signum() == sign_a {
            a = x;
        } else {
            b = x;
        }
        let newton = x - p / dp;
        let next = if newton > a && newton < b && dp.is_finite() && dp != 0.0 { newton } else { 0.5 * (a + b) };
        if (next - x).abs() <= 2.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE) || b - a <= f64::EPSILON * x.abs() {
            return next;
        }
        x = next;
    }
    x
}

/// Orthonormal polynomial p_n and its derivative at x, rescaled by a common positive factor
/// (only their ratio and sign are used).
fn orthonormal_tail(x: f64, alpha: &[f64], sqrt_beta: &[f64]) -> (f64, f64) {
    let n = alpha.len();
    let (mut p_prev, mut p) = (0.0, 1.0);
    let (mut dp_prev, mut dp) = (0.0, 0.0);
    for k in 0..n {
        // The last divisor only rescales p_n and p_n' together; 1 is as good as √β_n.
        let sb_next = if k + 1 < n { sqrt_beta[k + 1] } else { 1.0 };
        let sb = if k == 0 { 0.0 } else { sqrt_beta[k] };
        let p_next = ((x - alpha[k]) * p - sb * p_prev) / sb_next;
        let dp_next = (p + (x - alpha[k]) * dp - sb * dp_prev) / sb_next;
        p_prev = p;
        p = p_next;
        dp_prev = dp;
        dp = dp_next;
        let m = p.abs().max(dp.abs());
        if m > 1e150 {
            let s = 1.0 / m;
            p *= s;
            p_prev *= s;
            dp *= s;
            dp_prev *= s;
        }
    }
    (p, dp)
}

/// Christoffel number 1/Σ_{k<n} pₖ(x)² with orthonormal pₖ (p₀ = 1/√μ₀), computed with rescaling.
fn christoffel(x: f64, alpha: &[f64], beta: &[f64], mu0: f64) -> f64 {
    let n = alpha.len();
    let (mut p_prev, mut p) = (0.0, 1.0 / mu0.sqrt());
    let mut sum = p * p;
    // True values are stored values × e^{log_scale}.
    let mut log_scale = 0.0;
    for k in 0..n - 1 {
        let sb = if k == 0 { 0.0 } else { beta[k].sqrt() };
        let p_next = ((x - alpha[k]) * p - sb * p_prev) / beta[k + 1].sqrt();
        p_prev = p;
        p = p_next;
        sum += p * p;
        if p.abs() > 1e100 {
            let s = 1e-100;
            p *= s;
            p_prev *= s;
            sum *= s * s;
            log_scale += 100.0 * std::f64::consts::LN_10;
        }
    }
    (-2.0 * log_scale).exp() / sum
}

/// ∫ f(x) φ(x) dx over the real line (or an interval), split at breakpoints: composite Gauss–Legendre
/// on [−`cut`, `cut`] (cut = 8) with panels no wider than `panel_width`, and a Gaussian tail rule
/// beyond ±cut:
/// ∫_c^∞ f φ = φ(c)/c ∫₀^∞ f(c + u/c) e^{−u²/(2c²)} e^{−u} du, by Gauss–Laguerre.
#[derive(Clone, Debug)]
pub struct GaussianLine {
    panel: GaussRule,
    tail: GaussRule,
    panel_width: f64,
    cut: f64,
}

impl Default for GaussianLine {
    /// 12-node panels of width ≤ 1 on [−8, 8] and 16-node tails: relative accuracy ~1e-15 for
    /// integrands analytic in a strip of half-width ≳ 1 around each piece.
    fn default() -> Self {
        Self::new(12, 1.0, 16)
    }
}

impl GaussianLine {
    pub const CUT: f64 = 8.0;

    pub fn new(panel_nodes: usize, panel_width: f64, tail_nodes: usize) -> Self {
        assert!(panel_width > 0.0);
        Self {
            panel: GaussRule::legendre(panel_nodes),
            tail: GaussRule::laguerre(tail_nodes),
            panel_width,
            cut: Self::CUT,
        }
    }

    /// Calls `visit(x, w)` for every node of a rule for ∫_lo^hi f(x) φ(x) dx (lo may be −∞, hi +∞);
    /// the weights include φ.
    pub fn for_each_node(&self, lo: f64, hi: f64, mut visit: impl FnMut(f64, f64)) {
        if hi <= lo {
            return;
        }
        let c = self.cut;
        if lo == f64::NEG_INFINITY && hi < -c {
            self.tail_nodes(-hi, -1.0, &mut visit);
            return;
        }
        if hi == f64::INFINITY && lo > c {
            self.tail_nodes(lo, 1.0, &mut visit);
            return;
        }
        let clo = if lo.is_infinite() { -c } else { lo };
        let chi = if hi.is_infinite() { c } else { hi };
        if lo == f64::NEG_INFINITY {
            self.tail_nodes(c, -1.0, &mut visit);
        }
        if chi > clo {
            let panels = ((chi - clo) / self.panel_width).ceil().max(1.0) as usize;
            let width = (chi - clo) / panels as f64;
            for j in 0..panels {
                // Mirror-symmetric panel edges when [clo, chi] is symmetric, so parity survives rounding.
                let a = clo + width * j as f64;
                let b = if j + 1 == panels { chi } else { clo + width * (j + 1) as f64 };
                let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
                for (&t, &w) in self.panel.nodes.iter().zip(&self.panel.weights) {
                    let x = mid + half * t;
                    visit(x, half * w * std_normal_pdf(x));
                }
            }
        }
        if hi == f64::INFINITY {
            self.tail_nodes(c, 1.0, &mut visit);
        }
    }

    /// Nodes of ∫_c^∞ (sign = +1) or ∫_{−∞}^{−c} (sign = −1) of f φ, for c > 0.
    fn tail_nodes(&self, c: f64, sign: f64, visit: &mut impl FnMut(f64, f64)) {
        debug_assert!(c > 0.0);
        let scale = std_normal_pdf(c) / c;
        for (&u, &w) in self.tail.nodes.iter().zip(&self.tail.weights) {
            let y = u / c;
            visit(sign * (c + y), scale * w * (-0.5 * y * y).exp());
        }
    }

    /// ∫_lo^hi f(x) φ(x) dx.
    pub fn integrate(&self, lo: f64, hi: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
        let mut acc = 0.0;
        self.for_each_node(lo, hi, |x, w| acc += w * f(x));
        acc
    }

    /// ∫_ℝ f(x) φ(x) dx with the line split at `breakpoints` (any order; duplicates allowed).
    pub fn integrate_split(&self, breakpoints: &[f64], mut f: impl FnMut(f64) -> f64) -> f64 {
        let mut acc = 0.0;
        self.for_each_split_node(breakpoints, |x, w| acc += w * f(x));
        acc
    }

    /// Visits the nodes of the split rule of [`Self::integrate_split`].
    pub fn for_each_split_node(&self, breakpoints: &[f64], mut visit: impl FnMut(f64, f64)) {
        // A few breakpoints at most: sort on the stack (this runs inside integrand loops).
        let mut buf = [0.0f64; 8];
        let mut heap = Vec::new();
        let bps: &mut [f64] = if breakpoints.len() <= buf.len() {
            let mut n = 0;
            for &x in breakpoints.iter().filter(|x| x.is_finite()) {
                buf[n] = x;
                n += 1;
            }
            &mut buf[..n]
        } else {
            heap.extend(breakpoints.iter().copied().filter(|x| x.is_finite()));
            &mut heap[..]
        };
        bps.sort_by(f64::total_cmp);
        let mut lo = f64::NEG_INFINITY;
        for &b in bps.iter() {
            if b == lo {
                continue;
            }
            self.for_each_node(lo, b, &mut visit);
            lo = b;
        }
        self.for_each_node(lo, f64::INFINITY, &mut visit);
    }

    /// The split rule as an explicit [`GaussRule`] (weights include φ).
    pub fn rule(&self, breakpoints: &[f64]) -> GaussRule {
        let mut rule = GaussRule { nodes: Vec::new(), weights: Vec::new() };
        self.for_each_split_node(breakpoints, |x, w| {
            rule.nodes.push(x);
            rule.weights.push(w);
        });
        rule
    }
}

/// φ(x) = e^{−x²/2}/√(2π).
#[inline]
pub fn std_normal_pdf(x: f64) -> f64 {
    const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// Φ(x), via erfc for accuracy in both tails.
#[inline]
pub fn std_normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double_factorial_odd(k: u32) -> f64 {
        // (2k − 1)!! = E g^{2k}
        (1..=k).map(|j| (2 * j - 1) as f64).product()
    }

    #[test]
    fn hermite_rules_integrate_gaussian_moments_and_entire_functions() {
        for n in [20, 60, 200, 400] {
            let r = GaussRule::hermite(n);
            assert_eq!(r.len(), n);
            assert!((r.weights.iter().sum::<f64>() - 1.0).abs() < 1e-14);
            assert!(r.nodes.windows(2).all(|w| w[0] < w[1]), "nodes must be strictly increasing (n={n})");
            assert!(r.weights.iter().all(|&w| w >= 0.0));
            // Exact for degree ≤ 2n − 1.
            for k in 1..=(n.min(40) as u32 / 2) {
                let m = r.integrate(|x| x.powi(2 * k as i32));
                let e = double_factorial_odd(k);
                assert!((m - e).abs() < 1e-11 * e, "n={n} E g^{}: {m} vs {e}", 2 * k);
            }
            // E cos(g) = e^{−1/2}, E e^{g/2} = e^{1/8}
            assert!((r.integrate(f64::cos) - (-0.5f64).exp()).abs() < 1e-13, "n={n}");
            assert!((r.integrate(|x| (0.5 * x).exp()) - (0.125f64).exp()).abs() < 1e-13, "n={n}");
        }
    }

    #[test]
    fn hermite_400_nodes_are_roots_with_sane_tail_weights() {
        // Cross-check against the Airy asymptotics of the largest zero of the physicists' H_n,
        // √(2n+1) − 1.85576 (2n+1)^{−1/6}; probabilists' nodes are √2 times those.
        let n = 400;
        let r = GaussRule::hermite(n);
        let xmax = *r.nodes.last().unwrap();
        let m = (2 * n + 1) as f64;
        let airy = std::f64::consts::SQRT_2 * (m.sqrt() - 1.855_757 * m.powf(-1.0 / 6.0));
        assert!((xmax - airy).abs() < 1e-2, "{xmax} vs {airy}");
        // Every node is a root: the normalised He_n is tiny relative to its neighbours' scale.
        for &x in r.nodes.iter().step_by(37) {
            let (p, dp) = orthonormal_tail(x, &vec![0.0; n], &(0..n).map(|k| (k as f64).sqrt()).collect::<Vec<_>>());
            assert!((p / dp).abs() < 1e-13 * (1.0 + x.abs()), "x={x}: Newton step {}", p / dp);
        }
        // E 1{g > 3} = 1 − Φ(3) is *not* polynomial; n=400 must still be within the GH error for a
        // step function (∼ n^{−1/2}), which guards against garbage weights in the tails.
        let tail: f64 = r.iter().filter(|&(x, _)| x > 3.0).map(|(_, w)| w).sum();
        assert!((tail - (1.0 - std_normal_cdf(3.0))).abs() < 2e-3);
    }

    #[test]
    fn legendre_and_laguerre_are_exact_on_polynomials() {
        for n in [5, 12, 50, 400] {
            let r = GaussRule::legendre(n);
            assert!((r.weights.iter().sum::<f64>() - 2.0).abs() < 1e-13);
            for k in 0..(2 * n.min(30)) as i32 {
                let exact = if k % 2 == 1 { 0.0 } else { 2.0 / (k as f64 + 1.0) };
                assert!((r.integrate(|x| x.powi(k)) - exact).abs() < 1e-13, "n={n} k={k}");
            }
            if n >= 12 {
                assert!((r.integrate(f64::exp) - (1f64.exp() - (-1f64).exp())).abs() < 1e-13, "n={n}");
            }
        }
        let r = GaussRule::laguerre(20);
        let mut fact = 1.0;
        for k in 0..30 {
            if k > 0 {
                fact *= k as f64;
            }
            let m = r.integrate(|u| u.powi(k));
            assert!((m - fact).abs() < 1e-11 * fact, "k={k}: {m} vs {fact}");
        }
        let c = GaussRule::composite_legendre(8, 7, -1.0, 2.5);
        assert!((c.integrate(|x| x * x) - (2.5f64.powi(3) + 1.0) / 3.0).abs() < 1e-13);
    }

    #[test]
    fn gaussian_line_handles_splits_tails_and_half_lines() {
        let line = GaussianLine::default();
        // Total mass and moments with arbitrary breakpoints.
        for bps in [&[][..], &[0.0][..], &[-1.1774, 0.0, 1.1774][..], &[-9.0, 0.3, 9.5][..]] {
            assert!((line.integrate_split(bps, |_| 1.0) - 1.0).abs() < 1e-15, "{bps:?}");
            let m12 = line.integrate_split(bps, |x| x.powi(12));
            assert!((m12 - 10395.0).abs() < 1e-11 * 10395.0, "{bps:?}: {m12}");
        }
        // Half lines: ∫_t^∞ φ = 1 − Φ(t), ∫_t^∞ x²φ = tφ(t) + 1 − Φ(t), including t beyond the cut.
        for t in [-3.0, 0.0, 0.674_489_750_196_081_7, 2.0, 8.0, 9.3] {
            let p = line.integrate(t, f64::INFINITY, |_| 1.0);
            let e = std_normal_cdf(-t);
            assert!((p - e).abs() < 1e-13 * e.max(1e-300) + 1e-300, "t={t}: {p} vs {e}");
            let p2 = line.integrate(t, f64::INFINITY, |x| x * x);
            let e2 = t * std_normal_pdf(t) + std_normal_cdf(-t);
            assert!((p2 - e2).abs() < 1e-12 * e2, "t={t}: {p2} vs {e2}");
            let q = line.integrate(f64::NEG_INFINITY, -t, |_| 1.0);
            assert!((q - e).abs() < 1e-13 * e.max(1e-300) + 1e-300);
        }
        // The split rule is mirror symmetric for symmetric breakpoints.
        let r = line.rule(&[-0.5, 0.0, 0.5]);
        let odd: f64 = r.iter().map(|(x, w)| w * x.powi(5)).sum();
        assert!(odd.abs() < 1e-15);
    }
}
