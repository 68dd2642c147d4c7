//! Slow, obvious implementations of the kernels, element type generic: the yardstick the tests
//! compare the SIMD kernels against, and the path for a [`Real`] other than f32/f64.
//!
//! Element-wise results (`axpy`, `scale`, the vectors written by the fused passes) must match the
//! fast kernels bit for bit; accumulations match up to summation order.

use crate::{NormalRng, Real};

/// ⟨a, b⟩ with f64 products and a sequential f64 sum.
#[track_caller]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    a.iter().zip(b).map(|(x, y)| x.to_f64() * y.to_f64()).sum()
}

/// y ← y + alpha·x, as `x[i].mul_add(alpha, y[i])` in `T`.
#[track_caller]
pub fn axpy<T: Real>(alpha: f64, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    let a = T::from_f64(alpha);
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi.mul_add(a, *yi);
    }
}

/// x ← alpha·x in `T`.
pub fn scale<T: Real>(alpha: f64, x: &mut [T]) {
    let a = T::from_f64(alpha);
    for xi in x.iter_mut() {
        *xi *= a;
    }
}

/// [`crate::fused::draw_pair_and_project`] as its documented sequence of calls.
#[track_caller]
pub fn draw_pair_and_project<T: Real, const P: usize>(
    rng: &mut NormalRng,
    x: &mut [T],
    xi: &mut [T],
    shift: &[(f64, &[T])],
    probes: [&[T]; P],
) -> crate::fused::PairProjections<P> {
    // The blocks alternate between x and ξ (32 normals each).
    let block = crate::rng::BLOCK;
    for lo in (0..x.len()).step_by(block) {
        let hi = (lo + block).min(x.len());
        rng.fill(&mut x[lo..hi]);
        rng.fill(&mut xi[lo..hi]);
    }
    for &(c, e) in shift {
        axpy(c, e, x);
    }
    crate::fused::PairProjections {
        x_dot: probes.map(|p| dot(p, x)),
        xi_dot: probes.map(|p| dot(p, xi)),
        xx: dot(x, x),
        xixi: dot(xi, xi),
        xxi: dot(x, xi),
    }
}

/// [`crate::fused::combine_and_project`] as scale, axpys, dots.
#[track_caller]
pub fn combine_and_project<T: Real, const P: usize>(
    w: &mut [T],
    alpha: f64,
    terms: &[(f64, &[T])],
    probes: [&[T]; P],
) -> ([f64; P], f64) {
    scale(alpha, w);
    for &(c, t) in terms {
        axpy(c, t, w);
    }
    (probes.map(|p| dot(p, w)), dot(w, w))
}

/// [`crate::fused::update_and_draw`] as its documented sequence of calls.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn update_and_draw<T: Real, const P: usize>(
    rng: &mut NormalRng,
    w: &mut [T],
    alpha: f64,
    pair_coef: (f64, f64),
    terms: &[(f64, &[T])],
    x: &mut [T],
    xi: &mut [T],
    shift: &[(f64, &[T])],
    probes: [&[T]; P],
    measure_w: bool,
) -> crate::fused::UpdateDrawProjections<P> {
    let mut all: Vec<(f64, &[T])> = vec![(pair_coef.0, &*x), (pair_coef.1, &*xi)];
    all.extend_from_slice(terms);
    let (w_dot, ww) = combine_and_project(w, alpha, &all, probes);
    let pair = draw_pair_and_project(rng, x, xi, shift, probes);
    let w_sums = measure_w.then_some(crate::fused::WeightSums { w_dot, ww });
    crate::fused::UpdateDrawProjections { w: w_sums, wx: dot(w, x), wxi: dot(w, xi), pair }
}
