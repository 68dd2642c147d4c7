//! Small dense symmetric algebra for the r×r summary statistics (r ≤ 16): Jacobi eigendecomposition,
//! pseudo-inverse and square root. Matrices are row-major `Vec<f64>` of side n. The d×d work (the MNIST
//! covariance) goes through faer instead.

/// C = A B for row-major A (n×k) and B (k×m).
pub fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * m];
    for i in 0..n {
        for l in 0..k {
            let ail = a[i * k + l];
            if ail == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += ail * b[l * m + j];
            }
        }
    }
    c
}

/// Aᵀ for row-major A (n×m).
pub fn transpose(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            t[j * n + i] = a[i * m + j];
        }
    }
    t
}

/// Eigendecomposition of a symmetric n×n matrix by cyclic Jacobi: returns (eigenvalues, eigenvectors
/// as the columns of a row-major n×n matrix).
pub fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "sym_eigen: matrix is not n×n");
    let mut m = a.to_vec();
    // Symmetrise: the inputs are symmetric up to rounding.
    for i in 0..n {
        for j in 0..i {
            let s = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = s;
            m[j * n + i] = s;
        }
    }
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut off = 0.0;
        let mut diag = 0.0;
        for i in 0..n {
            diag += m[i * n + i] * m[i * n + i];
            for j in 0..i {
                off += m[i * n + j] * m[i * n + j];
            }
        }
        if off <= 1e-30 * diag.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let app = m[p * n + p];
                let aqq = m[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let mkp = m[k * n + p];
                    let mkq = m[k * n + q];
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let mpk = m[p * n + k];
                    let mqk = m[q * n + k];
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

/// f(A) = V f(Λ) Vᵀ for symmetric A.
pub fn sym_apply(a: &[f64], n: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (ev, v) = sym_eigen(a, n);
    let scale = ev.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
    let mut out = vec![0.0; n * n];
    for k in 0..n {
        let fk = f(ev[k], scale);
        if fk == 0.0 {
            continue;
        }
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] += v[i * n + k] * fk * v[j * n + k];
            }
        }
    }
    out
}

/// Moore–Penrose pseudo-inverse of a symmetric matrix; eigenvalues below 1e-12·max|λ| count as zero.
pub fn pinv_sym(a: &[f64], n: usize) -> Vec<f64> {
    sym_apply(a, n, |l, scale| if l.abs() > 1e-12 * scale.max(1e-300) { 1.0 / l } else { 0.0 })
}

/// Symmetric square root of a PSD matrix (negative eigenvalues clipped to 0).
pub fn sqrt_psd(a: &[f64], n: usize) -> Vec<f64> {
    sym_apply(a, n, |l, _| l.max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_pinv_sqrt_on_small_matrices() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, -0.2, 0.5, -0.2, 2.0];
        let (ev, v) = sym_eigen(&a, 3);
        // A V = V Λ
        let av = matmul(&a, &v, 3, 3, 3);
        for i in 0..3 {
            for k in 0..3 {
                assert!((av[i * 3 + k] - v[i * 3 + k] * ev[k]).abs() < 1e-12);
            }
        }
        let p = pinv_sym(&a, 3);
        let id = matmul(&a, &p, 3, 3, 3);
        for i in 0..3 {
            for j in 0..3 {
                assert!((id[i * 3 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        let s = sqrt_psd(&a, 3);
        let ss = matmul(&s, &s, 3, 3, 3);
        for i in 0..9 {
            assert!((ss[i] - a[i]).abs() < 1e-12);
        }
        // Rank-deficient: pinv of diag(2, 0) is diag(1/2, 0).
        let p = pinv_sym(&[2.0, 0.0, 0.0, 0.0], 2);
        assert_eq!(p, vec![0.5, 0.0, 0.0, 0.0]);
    }
}
