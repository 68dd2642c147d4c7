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

/// How the products of a step run: faer's matmul, or the kernels' dot and axpy, one column pair at
/// a time. faer wins from moderate sizes on; for a few units and a small batch its fixed cost
/// dominates. Measured at d = 10⁴, f32, the step's five products (faer time / dot–axpy time): K×B =
/// 2×2: 3.35, 2×4: 1.94, 4×2: 1.85, 2×8: 1.45, 3×4: 1.35, 8×2: 1.13, 4×4: 1.06, but 1×B and K×1:
/// 0.83–1.0, 4×8: 0.75, 8×4: 0.58, 8×64: 0.29.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductPath {
    Faer,
    Kernels,
}

impl ProductPath {
    /// The faster path for K units and batch B (the crossover above).
    pub fn for_shape(k: usize, b: usize) -> Self {
        if k >= 2 && b >= 2 && k * b <= 16 { ProductPath::Kernels } else { ProductPath::Faer }
    }

    /// out (p×n) = alpha·Aᵀ B, A d×p, B d×n.
    #[allow(clippy::too_many_arguments)]
    fn at_b<T: TwoLayerReal>(self, out: &mut [T], a: &[T], b: &[T], d: usize, p: usize, n: usize, alpha: f64) {
        match self {
            ProductPath::Faer => matmul(
                mat_mut(out, p, n),
                Accum::Replace,
                mat(a, d, p).transpose(),
                mat(b, d, n),
                T::from_f64(alpha),
                Par::Seq,
            ),
            ProductPath::Kernels => {
                for j in 0..n {
                    for i in 0..p {
                        out[i + p * j] =
                            T::from_f64(alpha * blas1::dot(&a[i * d..(i + 1) * d], &b[j * d..(j + 1) * d]));
                    }
                }
            }
        }
    }

    /// out (d×n) += alpha·A S, A d×p, S p×n.
    #[allow(clippy::too_many_arguments)]
    fn add_a_s<T: TwoLayerReal>(self, out: &mut [T], a: &[T], s: &[T], d: usize, p: usize, n: usize, alpha: f64) {
        match self {
            ProductPath::Faer => {
                matmul(mat_mut(out, d, n), Accum::Add, mat(a, d, p), mat(s, p, n), T::from_f64(alpha), Par::Seq)
            }
            ProductPath::Kernels => {
                for j in 0..n {
                    for i in 0..p {
                        let c = alpha * s[i + p * j].to_f64();
                        blas1::axpy(c, &a[i * d..(i + 1) * d], &mut out[j * d..(j + 1) * d]);
                    }
                }
            }
        }
    }

    /// out (d×p) = (or += with `accum`) alpha·A Sᵀ, A d×n, S p×n.
    #[allow(clippy::too_many_arguments)]
    fn a_st<T: TwoLayerReal>(
        self,
        out: &mut [T],
        accum: Accum,
        a: &[T],
        s: &[T],
        d: usize,
        p: usize,
        n: usize,
        alpha: f64,
    ) {
        match self {
            ProductPath::Faer => {
                matmul(mat_mut(out, d, p), accum, mat(a, d, n), mat(s, p, n).transpose(), T::from_f64(alpha), Par::Seq)
            }
            ProductPath::Kernels => {
                if accum == Accum::Replace {
                    out.fill(T::default());
                }
                for i in 0..p {
                    for j in 0..n {
                        let c = alpha * s[i + p * j].to_f64();
                        blas1::axpy(c, &a[j * d..(j + 1) * d], &mut out[i * d..(i + 1) * d]);
                    }
                }
            }
        }
    }
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
        let isd = 1.0 / (d as f64).sqrt();
        let path = ProductPath::for_shape(k, b);
        path.at_b(&mut scratch.sig, &self.w, xt, d, k, b, isd);
        for s in scratch.sig.iter_mut() {
            *s = T::from_f64(self.activation.value(s.to_f64()));
        }
        let c = T::from_f64(self.c);
        for (o, &x) in out.iter_mut().zip(xt) {
            *o = c * x;
        }
        path.add_a_s(out, self.readout(), &scratch.sig, d, k, b, isd);
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
        self.gradient_on(ProductPath::for_shape(k, b), e, xt, scratch, g, isd);
    }

    fn gradient_on(
        &self,
        path: ProductPath,
        e: &mut [T],
        xt: &[T],
        scratch: &mut TwoLayerScratch<T>,
        g: &mut TwoLayerGradient<T>,
        isd: f64,
    ) {
        let (d, k, b) = (self.d, self.k, scratch.b);
        // h = Wᵀx_t/√d, then σ(h) and σ'(h).
        path.at_b(&mut scratch.sig, &self.w, xt, d, k, b, isd);
        for (s, sp) in scratch.sig.iter_mut().zip(scratch.sp.iter_mut()) {
            let (v, dv) = self.activation.value_and_derivative(s.to_f64());
            *s = T::from_f64(v);
            *sp = T::from_f64(dv);
        }
        // e = r + Vσ/√d.
        path.add_a_s(e, self.readout(), &scratch.sig, d, k, b, isd);
        // SIMD reductions: a scalar f64 loop here is a serial add chain and costs more than a product.
        let inv_b = 1.0 / b as f64;
        g.loss = 0.5 * blas1::nrm2_sq(&*e) * inv_b;
        g.grad_c = blas1::dot(&*e, xt) * inv_b;
        // χ = σ'(h) ⊙ (Rᵀe)·scale, R the read-out; tied scale 1/√d (ε), untied 1/d folded below.
        path.at_b(&mut scratch.chi, self.readout(), &*e, d, k, b, isd);
        for (ch, &sp) in scratch.chi.iter_mut().zip(&scratch.sp) {
            *ch *= sp;
        }
        let a = isd * inv_b;
        match self.tying {
            Tying::Tied => {
                path.a_st(&mut g.grad_w, Accum::Replace, &*e, &scratch.sig, d, k, b, a);
                path.a_st(&mut g.grad_w, Accum::Add, xt, &scratch.chi, d, k, b, a);
            }
            Tying::Untied => {
                assert!(g.grad_v.len() == d * k, "gradient: grad_v must be d×K = {d}×{k}");
                path.a_st(&mut g.grad_v, Accum::Replace, &*e, &scratch.sig, d, k, b, a);
                // ∇_W = x_t(σ' ⊙ Vᵀe)ᵀ/d = x_t χᵀ/√d since χ already carries one 1/√d.
                path.a_st(&mut g.grad_w, Accum::Replace, xt, &scratch.chi, d, k, b, a);
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

    /// The dot/axpy products and faer's give the same gradient, for every shape class of the crossover.
    #[test]
    fn product_paths_agree() {
        let mut rng = ScalarRng::from_seed(11);
        let rand = |rng: &mut ScalarRng, n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f64>>();
        for (d, k, b) in [(50, 1, 1), (50, 2, 2), (33, 3, 4), (40, 8, 1), (40, 4, 8)] {
            for tying in [Tying::Tied, Tying::Untied] {
                let net = TwoLayer {
                    d,
                    k,
                    activation: Activation::Tanh,
                    tying,
                    w: rand(&mut rng, d * k),
                    v: if tying == Tying::Untied { rand(&mut rng, d * k) } else { Vec::new() },
                    c: 0.4,
                };
                let (r, xt) = (rand(&mut rng, d * b), rand(&mut rng, d * b));
                let run = |path: ProductPath| {
                    let (mut e, mut sc, mut g) = (r.clone(), TwoLayerScratch::new(d, k, b), net.zero_gradient());
                    net.gradient_on(path, &mut e, &xt, &mut sc, &mut g, 1.0 / (d as f64).sqrt());
                    (e, g)
                };
                let ((e1, g1), (e2, g2)) = (run(ProductPath::Faer), run(ProductPath::Kernels));
                let close =
                    |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12 * (1.0 + x.abs()));
                assert!(close(&e1, &e2) && close(&g1.grad_w, &g2.grad_w) && close(&g1.grad_v, &g2.grad_v));
                assert!((g1.loss - g2.loss).abs() < 1e-12 * g1.loss && (g1.grad_c - g2.grad_c).abs() < 1e-10);
            }
        }
    }

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
