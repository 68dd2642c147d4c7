//! Small exact helpers around probabilists' Hermite polynomials (SPEC §1): all of He₀..He_K at a point,
//! factorials, and the coefficients of He_k in the monomial basis.

/// Writes He₀(x), …, He_K(x) into `out` (length K + 1) by the recurrence He_{k+1} = x He_k − k He_{k−1}.
#[inline]
pub fn hermite_all(x: f64, out: &mut [f64]) {
    if out.is_empty() {
        return;
    }
    out[0] = 1.0;
    if out.len() > 1 {
        out[1] = x;
    }
    for k in 1..out.len().saturating_sub(1) {
        out[k + 1] = x * out[k] - k as f64 * out[k - 1];
    }
}

/// k! as f64 (exact up to 22!).
pub fn factorial(k: usize) -> f64 {
    (1..=k).map(|j| j as f64).product()
}

/// Binomial coefficient C(n, k) as f64.
pub fn binomial(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    let mut c = 1.0;
    for j in 0..k {
        c = c * (n - j) as f64 / (j + 1) as f64;
    }
    c.round()
}

/// The coefficient k!/(j! 2^j (k−2j)!) of (−1)^j x^{k−2j} in He_k(x); it also weights
/// (−q²)^j E[A^{k−2j}] in the projected moment formula of SPEC §2.2.
pub fn hermite_pair_coefficient(k: usize, j: usize) -> f64 {
    assert!(2 * j <= k);
    factorial(k) / (factorial(j) * 2f64.powi(j as i32) * factorial(k - 2 * j))
}

/// E g^n for g ~ N(0, 1): (n − 1)!! for even n, 0 for odd n.
pub fn gaussian_moment(n: usize) -> f64 {
    if n % 2 == 1 {
        return 0.0;
    }
    (1..n).step_by(2).map(|j| j as f64).product()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::activation::hermite;
    use crate::theory::quadrature::GaussRule;

    #[test]
    fn recurrence_and_monomial_coefficients_agree() {
        let mut h = [0.0; 13];
        for &x in &[-2.7, -0.3, 0.0, 1.1, 3.9] {
            hermite_all(x, &mut h);
            for k in 0..13 {
                let mono: f64 = (0..=k / 2)
                    .map(|j| hermite_pair_coefficient(k, j) * (-1f64).powi(j as i32) * x.powi((k - 2 * j) as i32))
                    .sum();
                assert!((h[k] - hermite(k as u32, x)).abs() <= 1e-12 * (1.0 + h[k].abs()));
                assert!((h[k] - mono).abs() <= 1e-11 * (1.0 + h[k].abs()), "k={k} x={x}");
            }
        }
        assert_eq!(binomial(12, 5), 792.0);
        assert_eq!(gaussian_moment(8), 105.0);
    }

    /// SPEC §7 item 15: E[He_j He_k] = k! δ_jk under the 200-node rule, j, k ≤ 12 (1e-10).
    #[test]
    fn hermite_orthogonality_under_200_node_rule() {
        let rule = GaussRule::hermite(200);
        let mut gram = [[0.0; 13]; 13];
        let mut h = [0.0; 13];
        for (x, w) in rule.iter() {
            hermite_all(x, &mut h);
            for j in 0..13 {
                for k in 0..13 {
                    gram[j][k] += w * h[j] * h[k];
                }
            }
        }
        for j in 0..13 {
            for k in 0..13 {
                let exact = if j == k { factorial(k) } else { 0.0 };
                let scale = (factorial(j) * factorial(k)).sqrt();
                assert!((gram[j][k] - exact).abs() < 1e-10 * scale, "j={j} k={k}: {}", gram[j][k]);
            }
        }
    }
}
