//! Exact chi-square variates and Bartlett factors (SPEC §3.2–3.3).
//!
//! The reduced engine never approximates a chi-square by a normal: at d = 10⁹ the remainder norm
//! R² ~ χ²_{d−4} has a relative spread of only 4·10⁻⁵, but the dynamics of small overlaps is driven by
//! exactly such fluctuations of the renormalisation, and a normal approximation would change the law
//! at small d. Chi-squares are drawn as 2·Gamma(k/2) with the Marsaglia–Tsang rejection sampler
//! (exact for shape ≥ 1; χ²₁ is N²).

/// A source of the two primitive variates every sampler here consumes.
pub trait Variates {
    /// Standard normal.
    fn normal(&mut self) -> f64;
    /// Uniform on the open interval (0, 1).
    fn uniform_open(&mut self) -> f64;
}

impl Variates for crate::rng::ScalarRng {
    #[inline]
    fn normal(&mut self) -> f64 {
        crate::rng::ScalarRng::normal(self)
    }
    #[inline]
    fn uniform_open(&mut self) -> f64 {
        crate::rng::ScalarRng::uniform_open(self)
    }
}

/// χ²_k with its Marsaglia–Tsang constants precomputed (the degrees of freedom of a walker's
/// chi-squares are fixed, so the square root and division are paid once).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChiSquare {
    /// Degrees of freedom k ≥ 1.
    pub dof: f64,
    /// Marsaglia–Tsang d = k/2 − 1/3.
    mt_d: f64,
    /// Marsaglia–Tsang c = 1/√(9d).
    mt_c: f64,
}

impl ChiSquare {
    #[track_caller]
    pub fn new(dof: u64) -> Self {
        assert!(dof >= 1, "chi-square needs at least one degree of freedom");
        let k = dof as f64;
        let mt_d = 0.5 * k - 1.0 / 3.0;
        Self { dof: k, mt_d, mt_c: 1.0 / (9.0 * mt_d).sqrt() }
    }

    /// One variate.
    #[inline]
    pub fn sample<V: Variates>(&self, v: &mut V) -> f64 {
        if self.dof == 1.0 {
            let g = v.normal();
            return g * g;
        }
        2.0 * self.gamma_attempts(v)
    }

    /// Marsaglia & Tsang (2000), "A simple method for generating gamma variables": for shape
    /// α ≥ 1, d = α − 1/3, c = 1/√(9d), draw x ~ N(0,1), t = 1 + c x and accept d·t³ when
    /// ln u < x²/2 + d(1 − t³ + ln t³), the exact density ratio. Two squeezes decide without a
    /// logarithm: [`ChiSquare::accepts_without_log`], which leaves about 3/(108 d) of the attempts
    /// at large d, and theirs, u < 1 − 0.0331 x⁴, which leaves about 10 %.
    #[inline]
    fn gamma_attempts<V: Variates>(&self, v: &mut V) -> f64 {
        loop {
            let x = v.normal();
            let t = 1.0 + self.mt_c * x;
            if t <= 0.0 {
                continue;
            }
            let t3 = t * t * t;
            let u = v.uniform_open();
            let x2 = x * x;
            // The tight squeeze first: it decides almost every attempt at the engine's large k, so
            // the branch is predictable (the classic one fails ≈ 10 % of the time, at random).
            if self.accepts_without_log(t, x2, u) || u < 1.0 - 0.0331 * x2 * x2 || self.log_test(t3, x2, u) {
                return self.mt_d * t3;
            }
        }
    }

    /// The exact acceptance test as computed, ln u < x²/2 + d(1 − t³ + ln t³).
    #[inline]
    fn log_test(&self, t3: f64, x2: f64, u: f64) -> bool {
        u.ln() < 0.5 * x2 + self.mt_d * (1.0 - t3 + t3.ln())
    }

    /// A sufficient condition for [`ChiSquare::log_test`], so the variates are those of the test
    /// alone, bit for bit. With e = t − 1 (exact in floating point) and |e| ≤ ½, the Taylor bound
    /// ln(1 + e) ≥ e − e²/2 + e³/3 − e⁴/4 − 0.4|e|⁵ gives
    /// x²/2 + d(1 − t³ + 3 ln t) ≥ x²/2 − d(4.5e² + 0.75e⁴ + 1.2|e|⁵) =: L (the x² terms cancel to
    /// leading order, since 9dc² = 1), and ln u ≤ u − 1; so u − 1 < L means the exact test accepts.
    /// The margin covers the rounding of both sides of the computed test, whose largest error is
    /// that of d(1 − t³ + ln t³), a few ulp of 1 times d.
    #[inline]
    fn accepts_without_log(&self, t: f64, x2: f64, u: f64) -> bool {
        let e = t - 1.0;
        let ae = e.abs();
        if ae > 0.5 {
            return false;
        }
        let e2 = e * e;
        let bound = 0.5 * x2 - self.mt_d * (4.5 * e2 + e2 * e2 * (0.75 + 1.2 * ae));
        let margin = 1e-12 + 1e-14 * self.mt_d;
        u - 1.0 < bound - margin
    }
}

/// The Bartlett factor of n fresh standard Gaussian vectors projected on a D-dimensional subspace
/// (SPEC §3.3): a lower-triangular n×n matrix L with L_jj² ~ χ²_{D−j} (0-based j) and L_jl ~ N(0,1)
/// for l < j, all independent. Row j is the j-th vector's coordinates in the orthonormal basis that
/// Gram–Schmidt builds from the vectors themselves, so L Lᵀ is their Gram matrix ~ Wishart_n(D, I).
#[derive(Clone, Debug, PartialEq)]
pub struct Bartlett {
    pub n: usize,
    diag: Vec<ChiSquare>,
}

impl Bartlett {
    /// Needs D ≥ n so that every diagonal entry has at least one degree of freedom.
    #[track_caller]
    pub fn new(n: usize, dim: u64) -> Self {
        assert!(dim >= n as u64, "Bartlett factor of {n} vectors needs a subspace of dimension ≥ {n}, got {dim}");
        Self { n, diag: (0..n).map(|j| ChiSquare::new(dim - j as u64)).collect() }
    }

    /// Fills `l` (n×n row-major; the strict upper triangle is set to 0). Row by row: the
    /// off-diagonal normals of row j, then its diagonal chi-square.
    #[track_caller]
    pub fn sample_into<V: Variates>(&self, v: &mut V, l: &mut [f64]) {
        let n = self.n;
        assert_eq!(l.len(), n * n, "Bartlett factor buffer must be n×n = {n}×{n}");
        for j in 0..n {
            for c in 0..j {
                l[j * n + c] = v.normal();
            }
            l[j * n + j] = self.diag[j].sample(v).sqrt();
            for c in j + 1..n {
                l[j * n + c] = 0.0;
            }
        }
    }

    /// Upper-triangular variant for column sets (the initial weights' complement part R in
    /// W − FA = E_⊥R, SPEC §3.4): R_jj² ~ χ²_{D−j}, R_ij ~ N(0,1) for i < j; column-major n×n.
    pub fn sample_upper_col_major<V: Variates>(&self, v: &mut V, r: &mut [f64]) {
        // Column j of R is row j of L: the same law.
        self.sample_into(v, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::ScalarRng;

    /// Mean k and variance 2k of χ²_k, for small and huge k (5σ of the MC error).
    #[test]
    fn chi_square_moments() {
        let mut rng = ScalarRng::from_seed(17);
        for k in [1u64, 2, 3, 7, 60, 1_000_000_000] {
            let chi = ChiSquare::new(k);
            let n = 200_000;
            let (mut s1, mut s2) = (0.0, 0.0);
            let kf = k as f64;
            for _ in 0..n {
                let x = (chi.sample(&mut rng) - kf) / (2.0 * kf).sqrt();
                s1 += x;
                s2 += x * x;
            }
            let nf = n as f64;
            let (m, v) = (s1 / nf, s2 / nf - (s1 / nf).powi(2));
            // Standardised: mean 0, variance 1; SE of the variance √((μ₄ − 1)/n) with μ₄ = 3 + 12/k.
            assert!(m.abs() < 5.0 / nf.sqrt(), "k = {k}: standardised mean {m}");
            let se_v = ((2.0 + 12.0 / kf) / nf).sqrt();
            assert!((v - 1.0).abs() < 5.0 * se_v, "k = {k}: standardised variance {v}");
        }
    }

    /// The log-free squeeze never accepts where the computed exact test rejects, so the variates
    /// are bit for bit those of the plain Marsaglia–Tsang loop; and it leaves the logarithm to a
    /// small fraction of the attempts the classic squeeze leaves.
    #[test]
    fn log_free_squeeze_implies_the_exact_test() {
        let mut rng = ScalarRng::from_seed(23);
        for k in [2u64, 3, 5, 12, 64, 509, 1_000_000_000] {
            let chi = ChiSquare::new(k);
            let (mut left_by_classic, mut left_by_both) = (0u64, 0u64);
            for i in 0..400_000 {
                let x = rng.normal() * if i % 4 == 0 { 3.0 } else { 1.0 };
                let t = 1.0 + chi.mt_c * x;
                if t <= 0.0 {
                    continue;
                }
                let (t3, x2) = (t * t * t, x * x);
                // Half the uniforms straddle the computed boundary exp(RHS), where a wrong bound
                // would show.
                let rhs = 0.5 * x2 + chi.mt_d * (1.0 - t3 + t3.ln());
                let u = if i % 2 == 0 {
                    rng.uniform_open()
                } else {
                    (rhs.exp() * (1.0 + 1e-9 * (rng.uniform_open() - 0.5))).min(1.0 - f64::EPSILON)
                };
                let fast = chi.accepts_without_log(t, x2, u);
                assert!(!fast || chi.log_test(t3, x2, u), "k = {k}: x = {x}, u = {u} accepted without the test");
                if i % 4 == 2 && u >= 1.0 - 0.0331 * x2 * x2 {
                    left_by_classic += 1;
                    left_by_both += u64::from(!fast);
                }
            }
            // At small k the Taylor bound is loose (c x is often near ½).
            if k >= 64 {
                assert!(
                    left_by_both * 5 < left_by_classic,
                    "k = {k}: {left_by_both} of {left_by_classic} still need ln"
                );
            }
            eprintln!("k = {k}: {left_by_both} of {left_by_classic} attempts still need ln");
        }
        // The variates equal those of the loop with the exact test alone.
        for k in [2u64, 7, 100, 4093] {
            let chi = ChiSquare::new(k);
            let (mut a, mut b) = (ScalarRng::from_seed(k), ScalarRng::from_seed(k));
            for _ in 0..100_000 {
                let plain = loop {
                    let x = b.normal();
                    let t = 1.0 + chi.mt_c * x;
                    if t <= 0.0 {
                        continue;
                    }
                    let t3 = t * t * t;
                    let u = b.uniform_open();
                    let x2 = x * x;
                    if u < 1.0 - 0.0331 * x2 * x2 || chi.log_test(t3, x2, u) {
                        break chi.mt_d * t3;
                    }
                };
                assert_eq!(chi.gamma_attempts(&mut a).to_bits(), plain.to_bits(), "k = {k}");
            }
        }
    }

    /// Skewness 2√(2/k) distinguishes the exact law from a normal approximation at moderate k.
    #[test]
    fn chi_square_skewness_is_exact() {
        let mut rng = ScalarRng::from_seed(5);
        let k = 8u64;
        let chi = ChiSquare::new(k);
        let n = 400_000;
        let kf = k as f64;
        let mut s3 = 0.0;
        for _ in 0..n {
            let x = (chi.sample(&mut rng) - kf) / (2.0 * kf).sqrt();
            s3 += x * x * x;
        }
        let skew = s3 / n as f64;
        // Var of x³ for χ²₈ standardised is ≈ 15 + O(1/k) terms; use 40 as a safe bound.
        assert!((skew - 2.0 * (2.0 / kf).sqrt()).abs() < 5.0 * (40.0 / n as f64).sqrt(), "skewness {skew}");
    }
}

#[cfg(test)]
mod bartlett_tests {
    use super::*;
    use crate::rng::ScalarRng;

    /// SPEC §7 item 35: for 2B = 6 vectors and D = 20, the Gram matrix L Lᵀ of the Bartlett factor
    /// has mean D·I and the Wishart variances Var(W_ii) = 2D, Var(W_ij) = D (MC at 5σ of its own
    /// standard error).
    #[test]
    fn bartlett_gram_is_wishart() {
        let (n, dim) = (6usize, 20u64);
        let bart = Bartlett::new(n, dim);
        let mut rng = ScalarRng::from_seed(35);
        let reps = 200_000;
        let mut l = vec![0.0; n * n];
        let mut s1 = vec![0.0; n * n];
        let mut s2 = vec![0.0; n * n];
        let mut s4 = vec![0.0; n * n];
        for _ in 0..reps {
            bart.sample_into(&mut rng, &mut l);
            for i in 0..n {
                for j in 0..n {
                    let w: f64 = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
                    s1[i * n + j] += w;
                    s2[i * n + j] += w * w;
                    s4[i * n + j] += w.powi(4);
                }
            }
        }
        let r = reps as f64;
        let df = dim as f64;
        for i in 0..n {
            for j in 0..n {
                let k = i * n + j;
                let mean = s1[k] / r;
                let var = s2[k] / r - mean * mean;
                let (m_exp, v_exp) = if i == j { (df, 2.0 * df) } else { (0.0, df) };
                let se_mean = (var / r).sqrt();
                assert!((mean - m_exp).abs() < 5.0 * se_mean, "E W[{i}{j}] = {mean}, expected {m_exp}");
                // SE of the sample variance from the (raw) fourth moment: Var(W²) = E W⁴ − (E W²)².
                let se_var = ((s4[k] / r - (s2[k] / r).powi(2)) / r).sqrt();
                assert!((var - v_exp).abs() < 5.0 * se_var, "Var W[{i}{j}] = {var}, expected {v_exp} ± {se_var}");
            }
        }
    }
}
