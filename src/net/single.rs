//! The single-direction denoiser (i) of SPEC §2.5: D_w(x_t) = a x_t + b w σ(⟨w, x_t⟩).
//!
//! This is the slow, obvious reference (several passes, f64 accumulation). The training step in
//! `train::single` computes the same quantities from inner products in two fused passes and is tested
//! against this.

use super::Activation;
use diffexp_kernels::{Real, blas1};
use serde::{Deserialize, Serialize};

/// D_w(x_t) = a x_t + b w σ(⟨w, x_t⟩), ‖w‖ = 1; a is the noise level's signal coefficient.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SingleDirection {
    pub activation: Activation,
    pub b: f64,
}

/// Loss and gradients of one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct SingleGradient {
    pub loss: f64,
    /// ∇_w ℓ (not projected).
    pub grad_w: Vec<f64>,
    /// ∂_b ℓ.
    pub grad_b: f64,
}

impl SingleDirection {
    /// D_w(x_t) into `out`.
    #[track_caller]
    pub fn forward<T: Real>(&self, w: &[T], xt: &[T], a: f64, out: &mut [f64]) {
        assert!(w.len() == xt.len() && out.len() == w.len(), "forward: w, x_t, out must have length d");
        let h = blas1::dot(w, xt);
        let bs = self.b * self.activation.value(h);
        for i in 0..w.len() {
            out[i] = a * xt[i].to_f64() + bs * w[i].to_f64();
        }
    }

    /// ℓ = ½‖D_w(x_t) − x‖².
    pub fn loss<T: Real>(&self, w: &[T], x: &[T], xt: &[T], a: f64) -> f64 {
        let mut d = vec![0.0; w.len()];
        self.forward(w, xt, a, &mut d);
        0.5 * d.iter().zip(x).map(|(di, &xi)| (di - xi.to_f64()).powi(2)).sum::<f64>()
    }

    /// ∇_w ℓ = bσ(h) e + bσ'(h) π x_t and ∂_b ℓ = σ(h) π with e = D − x, π = ⟨w, e⟩ (SPEC §2.5).
    pub fn gradient<T: Real>(&self, w: &[T], x: &[T], xt: &[T], a: f64) -> SingleGradient {
        let d = w.len();
        let h = blas1::dot(w, xt);
        let (s, sp) = self.activation.value_and_derivative(h);
        let mut dn = vec![0.0; d];
        self.forward(w, xt, a, &mut dn);
        let e: Vec<f64> = dn.iter().zip(x).map(|(di, &xi)| di - xi.to_f64()).collect();
        let pi: f64 = w.iter().zip(&e).map(|(&wi, ei)| wi.to_f64() * ei).sum();
        let grad_w = (0..d).map(|i| self.b * s * e[i] + self.b * sp * pi * xt[i].to_f64()).collect();
        SingleGradient { loss: 0.5 * e.iter().map(|v| v * v).sum::<f64>(), grad_w, grad_b: s * pi }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::ScalarRng;

    /// SPEC §7 item 17 for denoiser (i): central finite differences of ℓ in w (unconstrained) and b.
    #[test]
    fn gradient_matches_finite_differences() {
        let d = 12;
        let mut rng = ScalarRng::from_seed(11);
        for act in [
            Activation::Tanh,
            Activation::Erf,
            Activation::Relu,
            Activation::Linear,
            Activation::Hermite(3),
            Activation::Hermite(4),
        ] {
            let mut w: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let n = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            w.iter_mut().for_each(|x| *x /= n);
            let x: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            let xt: Vec<f64> = x.iter().map(|&xi| 0.7 * xi + 0.714 * rng.normal()).collect();
            let net = SingleDirection { activation: act, b: 0.8 };
            let g = net.gradient(&w, &x, &xt, 0.7);
            let eps = 1e-6;
            for i in 0..d {
                let (mut wp, mut wm) = (w.clone(), w.clone());
                wp[i] += eps;
                wm[i] -= eps;
                let fd = (net.loss(&wp, &x, &xt, 0.7) - net.loss(&wm, &x, &xt, 0.7)) / (2.0 * eps);
                assert!(
                    (fd - g.grad_w[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
                    "{act} w[{i}]: fd {fd} vs {}",
                    g.grad_w[i]
                );
            }
            let (np, nm) = (SingleDirection { b: 0.8 + eps, ..net }, SingleDirection { b: 0.8 - eps, ..net });
            let fd = (np.loss(&w, &x, &xt, 0.7) - nm.loss(&w, &x, &xt, 0.7)) / (2.0 * eps);
            assert!((fd - g.grad_b).abs() <= 1e-6 * (1.0 + fd.abs()), "{act} b: fd {fd} vs {}", g.grad_b);
        }
    }
}
