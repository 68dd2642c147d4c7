//! The K-unit two-layer denoiser with skip connection (SPEC §2.5 (ii) tied, (iii) untied):
//! D(x_t) = c x_t + V σ(Wᵀx_t/√d)/√d, with V = W when tied.
//!
//! Batches are column-major matrices. [`TwoLayer::gradient_into`] is the textbook forward and
//! backward pass on explicit x and x_t (the reference, and the reduced engine's rule);
//! [`TwoLayer::gradient_split`] is the trainer's: the same gradient from a batch given by its parts,
//! with projections by `blas1::inner_products` and one product through faer. Products go through
//! faer (`Par::Seq`: a walker never spawns threads; parallelism is across walkers) or, in the
//! textbook pass for a few units with a small batch, through the kernels' dot and axpy
//! ([`ProductPath`]).

use super::Activation;
use diffexp_kernels::{AlignedVec, Real, blas1, fused};
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

/// A batch given by its parts, as the trainer draws it: sample j is x_j = u_j − κ_j v (u_j the
/// shifted bulk, v a fixed direction) with noisy input x_t,j = a_j x_j + s_j ξ_j.
///
/// Everything the loss and its gradient need from the d-length vectors is `[W V]ᵀ` times the
/// columns and the samples' own inner products (`SplitSample`), so
/// [`TwoLayer::gradient_split`] never forms x_t, the residual or the error as d×B matrices.
pub struct SplitBatch<'a, T> {
    /// d×(2B+1), column-major: u_1, ξ_1, u_2, ξ_2, …, u_B, ξ_B, v (a sample's two columns are
    /// adjacent, so they can be projected as soon as they are drawn: [`TwoLayer::project_split`]).
    pub cols: &'a [T],
    pub samples: &'a [SplitSample],
    /// ‖v‖².
    pub vv: f64,
}

/// One sample's coefficients and the inner products of its parts (u, ξ) with each other and with v.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SplitSample {
    pub a: f64,
    pub s: f64,
    pub kappa: f64,
    pub uu: f64,
    pub xixi: f64,
    pub uxi: f64,
    pub vu: f64,
    pub vxi: f64,
}

/// Scratch of [`TwoLayer::gradient_split`] for one shape; reused across steps so the step does
/// not allocate.
#[derive(Clone, Debug)]
pub struct SplitScratch<T: Real> {
    b: usize,
    /// Leading columns of the batch already projected for the current weights.
    projected: usize,
    /// W and (untied) V copied onto cache lines for the projections (a copy costs less than
    /// the split loads it saves; see [`AlignedVec`]).
    w_lines: AlignedVec<T>,
    v_lines: AlignedVec<T>,
    /// K×(2B+1): Wᵀ[u ξ v], and (untied) Vᵀ[u ξ v].
    w_cols: Vec<f64>,
    v_cols: Vec<f64>,
    /// K×K: RᵀR for the read-out R.
    gram: Vec<f64>,
    /// K×K: Σ_j σ_jσ_jᵀ, accumulated in f64 and rounded for the product.
    sig_sig: Vec<f64>,
    sig_sig_t: Vec<T>,
    /// K×(2B+1): the coefficients of the columns in ∇_W and (untied) ∇_V.
    mix_w: Vec<T>,
    mix_v: Vec<T>,
    /// Per unit: σ, σ', Rᵀe of the current sample, and the v column's coefficients.
    sig: Vec<f64>,
    dsig: Vec<f64>,
    rte: Vec<f64>,
    rho_w: Vec<f64>,
    rho_v: Vec<f64>,
}

impl<T: TwoLayerReal> SplitScratch<T> {
    pub fn new(d: usize, k: usize, b: usize, tying: Tying) -> Self {
        let n = 2 * b + 1;
        let untied = tying == Tying::Untied;
        Self {
            b,
            projected: 0,
            w_lines: AlignedVec::zeros(d * k),
            v_lines: AlignedVec::zeros(if untied { d * k } else { 0 }),
            w_cols: vec![0.0; k * n],
            v_cols: if untied { vec![0.0; k * n] } else { Vec::new() },
            gram: vec![0.0; k * k],
            sig_sig: vec![0.0; k * k],
            sig_sig_t: vec![T::default(); k * k],
            mix_w: vec![T::default(); k * n],
            mix_v: if untied { vec![T::default(); k * n] } else { Vec::new() },
            sig: vec![0.0; k],
            dsig: vec![0.0; k],
            rte: vec![0.0; k],
            rho_w: vec![0.0; k],
            rho_v: vec![0.0; k],
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
        let (d, k, b) = (self.d, self.k, scratch.b);
        assert!(x.len() == d * b && xt.len() == d * b, "gradient: x and x_t must be d×B = {d}×{b}");
        assert!(g.grad_w.len() == d * k, "gradient: grad_w must be d×K = {d}×{k}");
        // The residual r = c x_t − x, then the error e = r + Vσ/√d in its place.
        let mut e = std::mem::take(&mut scratch.e);
        e.clear();
        e.extend_from_slice(x);
        fused::combine_and_project::<T, 0>(&mut e, -1.0, &[(self.c, xt)], []);
        self.gradient_on(ProductPath::for_shape(k, b), &mut e, xt, scratch, g, 1.0 / (d as f64).sqrt());
        scratch.e = e;
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

    /// Projects the next columns of a [`SplitBatch`] on W (and V), `part` being columns
    /// `first..first + part.len()/d`: a trainer calls this per sample while its columns are still in
    /// cache, and [`Self::gradient_split`] projects whatever is left. Columns go in order from 0; the
    /// weights must not change until the gradient is taken.
    #[track_caller]
    pub fn project_split(&self, part: &[T], first: usize, scratch: &mut SplitScratch<T>) {
        let (d, k) = (self.d, self.k);
        let cols = part.len() / d;
        assert!(
            first == scratch.projected && cols * d == part.len() && first + cols <= 2 * scratch.b + 1,
            "project_split: columns {first}..{} do not follow the {} projected of a d×(2B+1) batch",
            first + cols,
            scratch.projected
        );
        let untied = self.tying == Tying::Untied;
        if first == 0 {
            scratch.w_lines.as_mut_slice().copy_from_slice(&self.w);
            if untied {
                scratch.v_lines.as_mut_slice().copy_from_slice(&self.v);
            }
        }
        let range = k * first..k * (first + cols);
        blas1::inner_products(scratch.w_lines.as_slice(), part, d, &mut scratch.w_cols[range.clone()]);
        if untied {
            blas1::inner_products(scratch.v_lines.as_slice(), part, d, &mut scratch.v_cols[range]);
        }
        scratch.projected = first + cols;
    }

    /// [`Self::gradient_into`] for a [`SplitBatch`], with the same loss and gradients up to rounding.
    ///
    /// Two products over the batch: the projections A = Wᵀ[u ξ v] (and Vᵀ[u ξ v] untied; those not
    /// yet made by [`Self::project_split`]), and
    /// ∇ = [u ξ v]·Mᵀ/(√d B) + R·S/(d B) with M the columns' coefficients and S = Σ σσᵀ. Every
    /// per-sample quantity (h, Rᵀe, the loss, ⟨e, x_t⟩) comes from A, RᵀR and `SplitSample` in
    /// f64: with r = c x_t − x = αu + βξ + γv, α = ca − 1, β = cs, γ = κ(1 − ca),
    /// e = r + Rσ/√d and x_t = au + sξ − aκv.
    #[track_caller]
    pub fn gradient_split(
        &self,
        batch: &SplitBatch<'_, T>,
        scratch: &mut SplitScratch<T>,
        g: &mut TwoLayerGradient<T>,
    ) {
        let (d, k, b) = (self.d, self.k, scratch.b);
        let n = 2 * b + 1;
        assert!(
            batch.cols.len() == d * n && batch.samples.len() == b,
            "gradient_split: the batch must be d×(2B+1) = {d}×{n} with B = {b} samples"
        );
        assert!(g.grad_w.len() == d * k, "gradient_split: grad_w must be d×K = {d}×{k}");
        let isd = 1.0 / (d as f64).sqrt();
        let untied = self.tying == Tying::Untied;
        let sc = scratch;
        if sc.projected < n {
            self.project_split(&batch.cols[sc.projected * d..], sc.projected, sc);
        }
        sc.projected = 0;
        let readout = if untied { sc.v_lines.as_slice() } else { sc.w_lines.as_slice() };
        blas1::inner_products(readout, readout, d, &mut sc.gram);
        let (c, vv) = (self.c, batch.vv);
        let (mut loss, mut grad_c) = (0.0, 0.0);
        sc.sig_sig.fill(0.0);
        sc.rho_w.fill(0.0);
        sc.rho_v.fill(0.0);
        for (j, sm) in batch.samples.iter().enumerate() {
            let (a, s, kappa) = (sm.a, sm.s, sm.kappa);
            let (alpha, beta, gamma) = (c * a - 1.0, c * s, kappa * (1.0 - c * a));
            // Mᵀy for y = p u + q ξ + t v, from the projected columns of M.
            let proj = |m: &[f64], row: usize, p: f64, q: f64, t: f64| {
                p * m[row + k * 2 * j] + q * m[row + k * (2 * j + 1)] + t * m[row + k * 2 * b]
            };
            let r_cols = if untied { &sc.v_cols } else { &sc.w_cols };
            for i in 0..k {
                let h = isd * proj(&sc.w_cols, i, a, s, -a * kappa);
                (sc.sig[i], sc.dsig[i]) = self.activation.value_and_derivative(h);
            }
            let (sig, dsig) = (&sc.sig, &sc.dsig);
            // ‖r‖², ⟨r, x_t⟩ and σ·Rᵀr, σ·Rᵀx_t, σᵀRᵀRσ.
            let rr = alpha * alpha * sm.uu
                + beta * beta * sm.xixi
                + gamma * gamma * vv
                + 2.0 * (alpha * beta * sm.uxi + alpha * gamma * sm.vu + beta * gamma * sm.vxi);
            let r_xt = alpha * a * sm.uu
                + (alpha * s + beta * a) * sm.uxi
                + beta * s * sm.xixi
                + (gamma * a - alpha * a * kappa) * sm.vu
                + (gamma * s - beta * a * kappa) * sm.vxi
                - gamma * a * kappa * vv;
            let (mut sig_rtr, mut sig_rtxt, mut sig_gram_sig) = (0.0, 0.0, 0.0);
            for i in 0..k {
                let rtr = proj(r_cols, i, alpha, beta, gamma);
                let gram_sig: f64 = (0..k).map(|l| sc.gram[i + k * l] * sig[l]).sum();
                sc.rte[i] = rtr + isd * gram_sig;
                sig_rtr += sig[i] * rtr;
                sig_rtxt += sig[i] * proj(r_cols, i, a, s, -a * kappa);
                sig_gram_sig += sig[i] * gram_sig;
            }
            loss += 0.5 * (rr + 2.0 * isd * sig_rtr + isd * isd * sig_gram_sig);
            grad_c += r_xt + isd * sig_rtxt;
            // Column coefficients of r σᵀ = (αu + βξ + γv)σᵀ and x_t χᵀ = (au + sξ − aκv)χᵀ, with
            // χ = σ' ⊙ Rᵀe/√d: tied ∇_W takes both, untied ∇_V the first and ∇_W the second.
            for i in 0..k {
                let chi = dsig[i] * isd * sc.rte[i];
                let r_sig = [alpha * sig[i], beta * sig[i], gamma * sig[i]];
                let xt_chi = [a * chi, s * chi, -a * kappa * chi];
                let w_coefs = if untied { xt_chi } else { [0, 1, 2].map(|t| r_sig[t] + xt_chi[t]) };
                sc.mix_w[i + k * 2 * j] = T::from_f64(w_coefs[0]);
                sc.mix_w[i + k * (2 * j + 1)] = T::from_f64(w_coefs[1]);
                sc.rho_w[i] += w_coefs[2];
                if untied {
                    sc.mix_v[i + k * 2 * j] = T::from_f64(r_sig[0]);
                    sc.mix_v[i + k * (2 * j + 1)] = T::from_f64(r_sig[1]);
                    sc.rho_v[i] += r_sig[2];
                }
                for l in 0..k {
                    sc.sig_sig[i + k * l] += sig[i] * sig[l];
                }
            }
        }
        let inv_b = 1.0 / b as f64;
        g.loss = loss * inv_b;
        g.grad_c = grad_c * inv_b;
        for i in 0..k {
            sc.mix_w[i + k * 2 * b] = T::from_f64(sc.rho_w[i]);
            if untied {
                sc.mix_v[i + k * 2 * b] = T::from_f64(sc.rho_v[i]);
            }
        }
        for (o, &x) in sc.sig_sig_t.iter_mut().zip(&sc.sig_sig) {
            *o = T::from_f64(x);
        }
        // faer at every shape: for this product alone (d×(2B+1) times (2B+1)×K, then W·S) the
        // kernels' axpy path was never faster. Measured at d = 10⁴, f32, faer time over axpy time:
        // K×B = 1×1 1.00, 2×2 0.52, 4×2 0.32, 4×4 0.26, 2×8 0.39, 8×4 0.24, 1×64 0.94, 8×64 0.24.
        let path = ProductPath::Faer;
        let scale = isd * inv_b;
        path.a_st(&mut g.grad_w, Accum::Replace, batch.cols, &sc.mix_w, d, k, n, scale);
        let (sig_grad, readout) = if untied {
            assert!(g.grad_v.len() == d * k, "gradient_split: grad_v must be d×K = {d}×{k}");
            path.a_st(&mut g.grad_v, Accum::Replace, batch.cols, &sc.mix_v, d, k, n, scale);
            (&mut g.grad_v, &self.v)
        } else {
            (&mut g.grad_w, &self.w)
        };
        path.add_a_s(sig_grad, readout, &sc.sig_sig_t, d, k, k, scale * isd);
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

    /// A random split batch (u, ξ, v, a, s, κ) of `T` and its explicit x = u − κv, x_t = a x + sξ in f64.
    #[allow(clippy::type_complexity)]
    fn split_case<T: TwoLayerReal>(
        rng: &mut ScalarRng,
        d: usize,
        b: usize,
    ) -> (Vec<T>, Vec<SplitSample>, f64, Vec<f64>, Vec<f64>) {
        let n = 2 * b + 1;
        let cols: Vec<T> = (0..d * n).map(|_| T::from_f64(rng.normal())).collect();
        let col = |j: usize| cols[j * d..(j + 1) * d].iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
        let dot = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).sum::<f64>();
        let v = col(2 * b);
        let (mut x, mut xt) = (vec![0.0; d * b], vec![0.0; d * b]);
        let samples = (0..b)
            .map(|j| {
                let a = 0.2 + 0.6 * rng.uniform();
                let (u, xi) = (col(2 * j), col(2 * j + 1));
                let kappa = 0.3 * rng.normal();
                for i in 0..d {
                    x[j * d + i] = u[i] - kappa * v[i];
                    xt[j * d + i] = a * x[j * d + i] + (1.0 - a * a).sqrt() * xi[i];
                }
                SplitSample {
                    a,
                    s: (1.0 - a * a).sqrt(),
                    kappa,
                    uu: dot(&u, &u),
                    xixi: dot(&xi, &xi),
                    uxi: dot(&u, &xi),
                    vu: dot(&v, &u),
                    vxi: dot(&v, &xi),
                }
            })
            .collect();
        (cols, samples, dot(&v, &v), x, xt)
    }

    fn random_net<T: TwoLayerReal>(
        rng: &mut ScalarRng,
        d: usize,
        k: usize,
        tying: Tying,
        act: Activation,
    ) -> TwoLayer<T> {
        let mut rand = |n: usize| (0..n).map(|_| T::from_f64(rng.normal())).collect::<Vec<T>>();
        let w = rand(d * k);
        let v = if tying == Tying::Untied { rand(d * k) } else { Vec::new() };
        TwoLayer { d, k, activation: act, tying, w, v, c: 0.45 }
    }

    /// The split gradient is the explicit one (f64, to rounding), tied and untied, for shapes on both
    /// sides of the explicit path's product crossover.
    #[test]
    fn gradient_split_equals_gradient_into() {
        let mut rng = ScalarRng::from_seed(23);
        for (d, k, b) in [(40, 1, 1), (37, 2, 2), (50, 3, 4), (64, 8, 3), (45, 4, 8)] {
            for tying in [Tying::Tied, Tying::Untied] {
                for act in [Activation::Tanh, Activation::Relu, Activation::Hermite(3)] {
                    let net = random_net::<f64>(&mut rng, d, k, tying, act);
                    let (cols, samples, vv, x, xt) = split_case::<f64>(&mut rng, d, b);
                    let (mut sc, mut want) = (TwoLayerScratch::new(d, k, b), net.zero_gradient());
                    net.gradient_into(&x, &xt, &mut sc, &mut want);
                    let (mut ss, mut got) = (SplitScratch::new(d, k, b, tying), net.zero_gradient());
                    // The first sample projected ahead, as the trainer does; the rest by gradient_split.
                    if b > 1 {
                        net.project_split(&cols[..2 * d], 0, &mut ss);
                    }
                    net.gradient_split(&SplitBatch { cols: &cols, samples: &samples, vv }, &mut ss, &mut got);
                    let what = format!("d={d} K={k} B={b} {tying:?} {act}");
                    let close = |p: &[f64], q: &[f64]| {
                        let scale = q.iter().map(|x| x.abs()).fold(1e-300, f64::max);
                        p.iter().zip(q).all(|(x, y)| (x - y).abs() < 1e-12 * scale)
                    };
                    assert!(close(&got.grad_w, &want.grad_w), "{what}: ∇_W differs");
                    assert!(close(&got.grad_v, &want.grad_v), "{what}: ∇_V differs");
                    assert!(
                        (got.loss - want.loss).abs() < 1e-12 * want.loss,
                        "{what}: loss {} vs {}",
                        got.loss,
                        want.loss
                    );
                    assert!(
                        (got.grad_c - want.grad_c).abs() < 1e-11 * (1.0 + want.grad_c.abs() + want.loss),
                        "{what}: ∂c {} vs {}",
                        got.grad_c,
                        want.grad_c
                    );
                }
            }
        }
    }

    /// In f32 the split gradient is as accurate as the explicit f32 path: both against f64 at d = 4000.
    #[test]
    fn gradient_split_f32_is_as_accurate_as_the_explicit_path() {
        let (d, k, b) = (4000, 8, 16);
        let mut rng = ScalarRng::from_seed(29);
        for tying in [Tying::Tied, Tying::Untied] {
            let net32 = random_net::<f32>(&mut rng, d, k, tying, Activation::Tanh);
            let to64 = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
            let net64 = TwoLayer {
                d,
                k,
                activation: Activation::Tanh,
                tying,
                w: to64(&net32.w),
                v: to64(&net32.v),
                c: net32.c,
            };
            let (cols, samples, vv, x, xt) = split_case::<f32>(&mut rng, d, b);
            let mut exact = net64.zero_gradient();
            net64.gradient_into(&x, &xt, &mut TwoLayerScratch::new(d, k, b), &mut exact);
            let (x32, xt32): (Vec<f32>, Vec<f32>) =
                (x.iter().map(|&v| v as f32).collect(), xt.iter().map(|&v| v as f32).collect());
            let mut explicit = net32.zero_gradient();
            net32.gradient_into(&x32, &xt32, &mut TwoLayerScratch::new(d, k, b), &mut explicit);
            let mut split = net32.zero_gradient();
            net32.gradient_split(
                &SplitBatch { cols: &cols, samples: &samples, vv },
                &mut SplitScratch::new(d, k, b, tying),
                &mut split,
            );
            let rel = |g: &[f32], e: &[f64]| {
                let num: f64 = g.iter().zip(e).map(|(&p, &q)| (p as f64 - q).powi(2)).sum();
                (num / e.iter().map(|q| q * q).sum::<f64>()).sqrt()
            };
            let (e_split, e_explicit) = (rel(&split.grad_w, &exact.grad_w), rel(&explicit.grad_w, &exact.grad_w));
            assert!(
                e_split < 1e-5 && e_split < 3.0 * e_explicit,
                "{tying:?}: ∇_W error {e_split:e}, explicit path {e_explicit:e}"
            );
            if tying == Tying::Untied {
                let e_split = rel(&split.grad_v, &exact.grad_v);
                assert!(
                    e_split < 3.0 * rel(&explicit.grad_v, &exact.grad_v) && e_split < 1e-5,
                    "∇_V error {e_split:e}"
                );
            }
            assert!((split.loss - exact.loss).abs() < 1e-6 * exact.loss, "loss {} vs {}", split.loss, exact.loss);
            assert!((split.grad_c - exact.grad_c).abs() < 1e-6 * exact.loss, "∂c {} vs {}", split.grad_c, exact.grad_c);
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
