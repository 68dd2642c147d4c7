//! The K-unit two-layer denoiser with skip connection (SPEC §2.5 (ii) tied, (iii) untied):
//! D(x_t) = c x_t + V σ(Wᵀx_t/√d)/√d, with V = W when tied.
//!
//! Batches are d×B column-major matrices and every product goes through faer (`Par::Seq`: a walker
//! never spawns threads; parallelism is across walkers).

use super::Activation;
use diffexp_kernels::{Real, blas1, fused};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use serde::{Deserialize, Serialize};

/// Element types the two-layer denoiser runs on.
pub trait TwoLayerReal: Real + faer::traits::ComplexField {}
impl TwoLayerReal for f32 {}
impl TwoLayerReal for f64 {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tying {
    /// V = W (SPEC §2.5 (ii); System B's DAE).
    Tied,
    /// Separate read-in W and read-out V (SPEC §2.5 (iii)).
    Untied,
}

/// Parameters of the two-layer denoiser. `w` and `v` are d×K column-major (column k is unit k).
#[derive(Clone, Debug)]
pub struct TwoLayer<T: TwoLayerReal> {
    pub d: usize,
    pub k: usize,
    pub activation: Activation,
    pub tying: Tying,
    pub w: Vec<T>,
    /// Empty when tied.
    pub v: Vec<T>,
    pub c: f64,
}

/// Gradients of the batch-mean loss.
#[derive(Clone, Debug)]
pub struct TwoLayerGradient<T> {
    pub loss: f64,
    pub grad_w: Vec<T>,
    /// Empty when tied.
    pub grad_v: Vec<T>,
    pub grad_c: f64,
}

/// Scratch of one batch size; reused across steps so the step loop does not allocate.
#[derive(Clone, Debug)]
pub struct TwoLayerScratch<T> {
    b: usize,
    /// K×B pre-activations h, then σ(h).
    sig: Vec<T>,
    /// K×B σ'(h) ⊙ ε (tied) or σ'(h) ⊙ Vᵀe/… (untied).
    chi: Vec<T>,
    /// d×B error e = D(x_t) − x.
    e: Vec<T>,
    /// K×B σ'(h).
    sp: Vec<T>,
}

impl<T: TwoLayerReal> TwoLayerScratch<T> {
    pub fn new(d: usize, k: usize, b: usize) -> Self {
        Self {
            b,
            sig: vec![T::default(); k * b],
            chi: vec![T::default(); k * b],
            e: vec![T::default(); d * b],
            sp: vec![T::default(); k * b],
        }
    }
}

fn mat<T: TwoLayerReal>(s: &[T], r: usize, c: usize) -> MatRef<'_, T> {
    MatRef::from_column_major_slice(s, r, c)
}
fn mat_mut<T: TwoLayerReal>(s: &mut [T], r: usize, c: usize) -> MatMut<'_, T> {
    MatMut::from_column_major_slice_mut(s, r, c)
}

impl<T: TwoLayerReal> TwoLayer<T> {
    /// The read-out matrix (W when tied).
    pub fn readout(&self) -> &[T] {
        match self.tying {
            Tying::Tied => &self.w,
            Tying::Untied => &self.v,
        }
    }

    /// D(x_t) for a d×B batch, into `out` (d×B).
    #[track_caller]
    pub fn forward(&self, xt: &[T], out: &mut [T], scratch: &mut TwoLayerScratch<T>) {
        let (d, k, b) = (self.d, self.k, scratch.b);
        assert!(xt.len() == d * b && out.len() == d * b, "forward: x_t and out must be d×B = {d}×{b}");
        let isd = T::from_f64(1.0 / (d as f64).sqrt());
        matmul(
            mat_mut(&mut scratch.sig, k, b),
            Accum::Replace,
            mat(&self.w, d, k).transpose(),
            mat(xt, d, b),
            isd,
            Par::Seq,
        );
        for s in scratch.sig.iter_mut() {
            *s = T::from_f64(self.activation.value(s.to_f64()));
        }
        let c = T::from_f64(self.c);
        for (o, &x) in out.iter_mut().zip(xt) {
            *o = c * x;
        }
        matmul(mat_mut(out, d, b), Accum::Add, mat(self.readout(), d, k), mat(&scratch.sig, k, b), isd, Par::Seq);
    }

    /// Batch-mean loss ½‖D(x_t) − x‖² and its gradients (SPEC §2.5):
    /// tied ∇_W = [e σ(h)ᵀ + x_t(σ'(h) ⊙ ε)ᵀ]/√d with ε = Wᵀe/√d; untied ∇_V = e σ(h)ᵀ/√d,
    /// ∇_W = x_t(σ'(h) ⊙ Vᵀe)ᵀ/d; ∂_c = eᵀx_t.
    #[track_caller]
    pub fn gradient_into(&self, x: &[T], xt: &[T], scratch: &mut TwoLayerScratch<T>, g: &mut TwoLayerGradient<T>) {
        assert!(x.len() == self.d * scratch.b, "gradient: x must be d×B = {}×{}", self.d, scratch.b);
        let mut e = std::mem::take(&mut scratch.e);
        e.clear();
        e.extend_from_slice(x);
        fused::combine_and_project::<T, 0>(&mut e, -1.0, &[(self.c, xt)], []);
        self.gradient_from_residual(&mut e, xt, scratch, g);
        scratch.e = e;
    }

    /// [`Self::gradient_into`] given the residual r = c x_t − x in `e` (overwritten by the error
    /// e = D(x_t) − x): the trainer forms r while each sample is still in cache and never keeps x.
    #[track_caller]
    pub fn gradient_from_residual(
        &self,
        e: &mut [T],
        xt: &[T],
        scratch: &mut TwoLayerScratch<T>,
        g: &mut TwoLayerGradient<T>,
    ) {
        let (d, k, b) = (self.d, self.k, scratch.b);
        assert!(e.len() == d * b && xt.len() == d * b, "gradient: r and x_t must be d×B = {d}×{b}");
        assert!(g.grad_w.len() == d * k, "gradient: grad_w must be d×K = {d}×{k}");
        let isd = 1.0 / (d as f64).sqrt();
        // h = Wᵀx_t/√d, then σ(h) and σ'(h).
        matmul(
            mat_mut(&mut scratch.sig, k, b),
            Accum::Replace,
            mat(&self.w, d, k).transpose(),
            mat(xt, d, b),
            T::from_f64(isd),
            Par::Seq,
        );
        for (s, sp) in scratch.sig.iter_mut().zip(scratch.sp.iter_mut()) {
            let (v, dv) = self.activation.value_and_derivative(s.to_f64());
            *s = T::from_f64(v);
            *sp = T::from_f64(dv);
        }
        // e = r + Vσ/√d.
        matmul(
            mat_mut(e, d, b),
            Accum::Add,
            mat(self.readout(), d, k),
            mat(&scratch.sig, k, b),
            T::from_f64(isd),
            Par::Seq,
        );
        // SIMD reductions: a scalar f64 loop here is a serial add chain and costs more than a product.
        let inv_b = 1.0 / b as f64;
        g.loss = 0.5 * blas1::nrm2_sq(&*e) * inv_b;
        g.grad_c = blas1::dot(&*e, xt) * inv_b;
        // χ = σ'(h) ⊙ (Rᵀe)·scale, R the read-out; tied scale 1/√d (ε), untied 1/d folded below.
        matmul(
            mat_mut(&mut scratch.chi, k, b),
            Accum::Replace,
            mat(self.readout(), d, k).transpose(),
            mat(&*e, d, b),
            T::from_f64(isd),
            Par::Seq,
        );
        for (ch, &sp) in scratch.chi.iter_mut().zip(&scratch.sp) {
            *ch = *ch * sp;
        }
        let a = T::from_f64(isd * inv_b);
        match self.tying {
            Tying::Tied => {
                matmul(
                    mat_mut(&mut g.grad_w, d, k),
                    Accum::Replace,
                    mat(&*e, d, b),
                    mat(&scratch.sig, k, b).transpose(),
                    a,
                    Par::Seq,
                );
                matmul(
                    mat_mut(&mut g.grad_w, d, k),
                    Accum::Add,
                    mat(xt, d, b),
                    mat(&scratch.chi, k, b).transpose(),
                    a,
                    Par::Seq,
                );
            }
            Tying::Untied => {
                assert!(g.grad_v.len() == d * k, "gradient: grad_v must be d×K = {d}×{k}");
                matmul(
                    mat_mut(&mut g.grad_v, d, k),
                    Accum::Replace,
                    mat(&*e, d, b),
                    mat(&scratch.sig, k, b).transpose(),
                    a,
                    Par::Seq,
                );
                // ∇_W = x_t(σ' ⊙ Vᵀe)ᵀ/d = x_t χᵀ/√d since χ already carries one 1/√d.
                matmul(
                    mat_mut(&mut g.grad_w, d, k),
                    Accum::Replace,
                    mat(xt, d, b),
                    mat(&scratch.chi, k, b).transpose(),
                    a,
                    Par::Seq,
                );
            }
        }
    }

    /// A zeroed gradient of the right shapes.
    pub fn zero_gradient(&self) -> TwoLayerGradient<T> {
        TwoLayerGradient {
            loss: 0.0,
            grad_w: vec![T::default(); self.d * self.k],
            grad_v: match self.tying {
                Tying::Tied => Vec::new(),
                Tying::Untied => vec![T::default(); self.d * self.k],
            },
            grad_c: 0.0,
        }
    }

    /// Batch-mean loss.
    pub fn loss(&self, x: &[T], xt: &[T], scratch: &mut TwoLayerScratch<T>) -> f64 {
        let mut out = vec![T::default(); x.len()];
        self.forward(xt, &mut out, scratch);
        let b = scratch.b as f64;
        out.iter().zip(x).map(|(&o, &xi)| 0.5 * (o - xi).to_f64().powi(2)).sum::<f64>() / b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::ScalarRng;

    /// SPEC §7 item 17 for denoisers (ii) and (iii): central finite differences in W, V and c.
    #[test]
    fn gradients_match_finite_differences() {
        let (d, k, b) = (9, 3, 2);
        let mut rng = ScalarRng::from_seed(5);
        for tying in [Tying::Tied, Tying::Untied] {
            for act in [Activation::Tanh, Activation::Erf, Activation::Relu, Activation::Linear, Activation::Hermite(3)]
            {
                let rand = |rng: &mut ScalarRng, n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f64>>();
                let net = TwoLayer {
                    d,
                    k,
                    activation: act,
                    tying,
                    w: rand(&mut rng, d * k),
                    v: if tying == Tying::Untied { rand(&mut rng, d * k) } else { Vec::new() },
                    c: 0.6,
                };
                let x = rand(&mut rng, d * b);
                let xt: Vec<f64> = x.iter().map(|&xi| 0.7 * xi + 0.7 * rng.normal()).collect();
                let mut sc = TwoLayerScratch::new(d, k, b);
                let mut g = net.zero_gradient();
                net.gradient_into(&x, &xt, &mut sc, &mut g);
                assert!((g.loss - net.loss(&x, &xt, &mut sc)).abs() < 1e-12);
                let eps = 1e-6;
                let check = |fd: f64, an: f64, what: &str| {
                    assert!((fd - an).abs() <= 1e-6 * (1.0 + fd.abs()), "{tying:?} {act} {what}: fd {fd} vs {an}");
                };
                for i in 0..d * k {
                    let (mut p, mut m) = (net.clone(), net.clone());
                    p.w[i] += eps;
                    m.w[i] -= eps;
                    check((p.loss(&x, &xt, &mut sc) - m.loss(&x, &xt, &mut sc)) / (2.0 * eps), g.grad_w[i], "W");
                    if tying == Tying::Untied {
                        let (mut p, mut m) = (net.clone(), net.clone());
                        p.v[i] += eps;
                        m.v[i] -= eps;
                        check((p.loss(&x, &xt, &mut sc) - m.loss(&x, &xt, &mut sc)) / (2.0 * eps), g.grad_v[i], "V");
                    }
                }
                let (mut p, mut m) = (net.clone(), net.clone());
                p.c += eps;
                m.c -= eps;
                check((p.loss(&x, &xt, &mut sc) - m.loss(&x, &xt, &mut sc)) / (2.0 * eps), g.grad_c, "c");
            }
        }
    }
}
