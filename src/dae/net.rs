//! The DAE of SPEC §4.2: f_{w,b}(x) = b x + w σ(wᵀx/√d)/√d, tied weights w ∈ ℝ^{d×r}, trainable skip b.
//! It answers `forward`, `loss` and `gradient` the slow obvious way (allocating, f64); the fused
//! no-allocation step lives in [`super::train`] and is checked against these.

use crate::net::Activation;
use diffexp_kernels::{Real, blas1};

/// A DAE. `w` is column-major: column γ is `w[γ d..(γ+1) d]`.
#[derive(Clone, Debug)]
pub struct Dae<T: Real> {
    pub d: usize,
    pub r: usize,
    pub w: Vec<T>,
    pub b: f64,
    pub act: Activation,
}

/// Gradient of the per-sample objective (SPEC §4.3).
#[derive(Clone, Debug)]
pub struct DaeGradient {
    /// ∇_w, column-major d×r.
    pub w: Vec<f64>,
    /// ∂_b.
    pub b: f64,
}

impl<T: Real> Dae<T> {
    #[track_caller]
    pub fn new(d: usize, r: usize, w: Vec<T>, b: f64, act: Activation) -> Self {
        assert!(w.len() == d * r, "Dae::new: w has {} entries but d·r = {}·{} = {}", w.len(), d, r, d * r);
        Self { d, r, w, b, act }
    }

    /// Column γ of w.
    #[inline]
    pub fn col(&self, g: usize) -> &[T] {
        &self.w[g * self.d..(g + 1) * self.d]
    }

    /// The pre-activations h = wᵀx/√d.
    pub fn preactivations(&self, x: &[T]) -> Vec<f64> {
        let s = 1.0 / (self.d as f64).sqrt();
        (0..self.r).map(|g| s * blas1::dot(self.col(g), x)).collect()
    }

    /// f(x).
    pub fn forward(&self, x: &[T]) -> Vec<f64> {
        let d = self.d;
        let h = self.preactivations(x);
        let s = 1.0 / (d as f64).sqrt();
        let mut out: Vec<f64> = x.iter().map(|&v| self.b * v.to_f64()).collect();
        for (g, &hg) in h.iter().enumerate() {
            let c = s * self.act.value(hg);
            for (o, &wi) in out.iter_mut().zip(self.col(g)) {
                *o += c * wi.to_f64();
            }
        }
        out
    }

    /// 𝒬 = wᵀw/d (row-major r×r).
    pub fn q_cal(&self) -> Vec<f64> {
        let r = self.r;
        let mut q = vec![0.0; r * r];
        for a in 0..r {
            for c in 0..=a {
                let v = blas1::dot(self.col(a), self.col(c)) / self.d as f64;
                q[a * r + c] = v;
                q[c * r + a] = v;
            }
        }
        q
    }

    /// Per-sample objective Σ_{t∈𝒢} ½‖f(x_t) − x₁‖² + λ/(2d)‖w‖²_F for x_t = α_t x₀ + β_t x₁.
    pub fn loss(&self, x1: &[f64], x0: &[f64], times: &[f64], lambda: f64) -> f64 {
        let mut l = 0.0;
        for &t in times {
            let (a, bt) = (1.0 - t, t);
            let xt: Vec<T> = x0.iter().zip(x1).map(|(&u, &v)| T::from_f64(a * u + bt * v)).collect();
            let f = self.forward(&xt);
            l += 0.5 * f.iter().zip(x1).map(|(fi, xi)| (fi - xi) * (fi - xi)).sum::<f64>();
        }
        let wn: f64 = self.w.iter().map(|v| v.to_f64() * v.to_f64()).sum();
        l + lambda / (2.0 * self.d as f64) * wn
    }

    /// The analytic gradient of [`Dae::loss`] (SPEC §4.3), summed over t ∈ 𝒢.
    pub fn gradient(&self, x1: &[f64], x0: &[f64], times: &[f64], lambda: f64) -> DaeGradient {
        let (d, r) = (self.d, self.r);
        let s = 1.0 / (d as f64).sqrt();
        let mut gw: Vec<f64> = self.w.iter().map(|&v| lambda / d as f64 * v.to_f64()).collect();
        let mut gb = 0.0;
        for &t in times {
            let (a, bt) = (1.0 - t, t);
            let xt: Vec<f64> = x0.iter().zip(x1).map(|(&u, &v)| a * u + bt * v).collect();
            let xt_t: Vec<T> = xt.iter().map(|&v| T::from_f64(v)).collect();
            let h = self.preactivations(&xt_t);
            let f = self.forward(&xt_t);
            let e: Vec<f64> = f.iter().zip(x1).map(|(fi, xi)| fi - xi).collect();
            for g in 0..r {
                let (sg, dsg) = self.act.value_and_derivative(h[g]);
                let eps_g = s * self.col(g).iter().zip(&e).map(|(wi, ei)| wi.to_f64() * ei).sum::<f64>();
                let chi = dsg * eps_g;
                for i in 0..d {
                    gw[g * d + i] += s * (e[i] * sg + xt[i] * chi);
                }
            }
            gb += e.iter().zip(&xt).map(|(ei, xi)| ei * xi).sum::<f64>();
        }
        DaeGradient { w: gw, b: gb }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::ScalarRng;

    /// SPEC §7 item 37 (first half): ∇_w and ∂_b against central finite differences.
    #[test]
    fn gradient_matches_central_differences() {
        for (d, r, times, act) in [
            (7, 2, vec![0.5], Activation::Tanh),
            (9, 3, vec![0.3, 0.7], Activation::Tanh),
            (6, 1, vec![0.5], Activation::Erf),
        ] {
            let mut rng = ScalarRng::from_seed(11 + d as u64);
            let w: Vec<f64> = (0..d * r).map(|_| rng.normal()).collect();
            let x1: Vec<f64> = (0..d).map(|_| rng.normal() + 0.5).collect();
            let x0: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let lambda = 0.7;
            let net = Dae::new(d, r, w.clone(), 0.4, act);
            let g = net.gradient(&x1, &x0, &times, lambda);
            let hstep = 1e-5;
            for k in 0..d * r {
                let mut wp = w.clone();
                wp[k] += hstep;
                let mut wm = w.clone();
                wm[k] -= hstep;
                let lp = Dae::new(d, r, wp, 0.4, act).loss(&x1, &x0, &times, lambda);
                let lm = Dae::new(d, r, wm, 0.4, act).loss(&x1, &x0, &times, lambda);
                let fd = (lp - lm) / (2.0 * hstep);
                assert!((fd - g.w[k]).abs() < 1e-6 * (1.0 + fd.abs()), "w[{k}]: fd {fd} an {}", g.w[k]);
            }
            let lp = Dae::new(d, r, w.clone(), 0.4 + hstep, act).loss(&x1, &x0, &times, lambda);
            let lm = Dae::new(d, r, w.clone(), 0.4 - hstep, act).loss(&x1, &x0, &times, lambda);
            let fd = (lp - lm) / (2.0 * hstep);
            assert!((fd - g.b).abs() < 1e-6 * (1.0 + fd.abs()), "b: fd {fd} an {}", g.b);
        }
    }
}

/// tanh through one `exp` (glibc's `tanh` goes through `expm1` and costs several times more; the
/// quadrature and the Z transport evaluate σ 10⁷–10⁸ times). Series below |x| = 1e-3 keeps the relative
/// error ≤ 1e-13 everywhere.
#[inline]
pub fn tanh_fast(x: f64) -> f64 {
    let a = x.abs();
    if a < 1e-3 {
        let x2 = x * x;
        return x * (1.0 - x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0)));
    }
    if a > 20.0 {
        return x.signum();
    }
    let t = exp_neg(-2.0 * a);
    x.signum() * (1.0 - t) / (1.0 + t)
}

/// e^x for x ∈ [−40, 0], in plain Rust: Cody–Waite reduction x = k ln2 + r, |r| ≤ ln2/2, and the
/// degree-13 Taylor polynomial of e^r (truncation error < 2e-17 relative). Calling libm's `exp` from
/// this baseline-x86-64 code measured ~160 ns per call in the quadrature loop (an SSE/AVX transition
/// stall on its first VEX instruction) against ~10 ns in isolation, so the hot loops avoid it.
#[inline]
fn exp_neg(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // 2^k for k ∈ [−58, 0] through the exponent bits.
    p * f64::from_bits(((1023 + k as i64) as u64) << 52)
}

/// σ(h) with the fast tanh.
#[inline]
pub fn sigma(act: Activation, h: f64) -> f64 {
    match act {
        Activation::Tanh => tanh_fast(h),
        _ => act.value(h),
    }
}

/// (σ(h), σ'(h)) with the fast tanh.
#[inline]
pub fn sigma_and_derivative(act: Activation, h: f64) -> (f64, f64) {
    match act {
        Activation::Tanh => {
            let t = tanh_fast(h);
            (t, 1.0 - t * t)
        }
        _ => act.value_and_derivative(h),
    }
}

#[cfg(test)]
mod fast_tests {
    #[test]
    fn tanh_fast_matches_libm() {
        let mut x = -25.0;
        while x < 25.0 {
            let (a, b) = (super::tanh_fast(x), x.tanh());
            assert!((a - b).abs() <= 1e-13 * b.abs().max(1e-300) + 1e-16, "x={x}: {a} vs {b}");
            x += 0.000_731;
        }
        for x in [1e-12, -3e-7, 9.9e-4, 1.0001e-3] {
            assert!((super::tanh_fast(x) - x.tanh()).abs() <= 1e-13 * x.abs());
        }
    }
}
