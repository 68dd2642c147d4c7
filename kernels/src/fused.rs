//! Fused passes: each reads and writes every d-length vector once.

use crate::{NormalRng, Real};

/// What [`draw_pair_and_project`] measured: projections of the fresh pair on the probes and the
/// pair's 2×2 Gram matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairProjections<const P: usize> {
    /// ⟨probe_p, x⟩.
    pub x_dot: [f64; P],
    /// ⟨probe_p, ξ⟩.
    pub xi_dot: [f64; P],
    /// ‖x‖².
    pub xx: f64,
    /// ‖ξ‖².
    pub xixi: f64,
    /// ⟨x, ξ⟩.
    pub xxi: f64,
}

/// Draws z, ξ ~ N(0, I_d) from `rng`, writes x = z + Σ_j c_j·e_j for `shift = [(c_j, e_j)]` into `x`
/// and ξ into `xi`, and returns the projections of x and ξ on each probe plus their Gram matrix.
///
/// The normals are drawn as `rng.fill(x)` then `rng.fill(xi)`, so the result equals that sequence of
/// calls followed by the shifts, bit for bit up to the order of the accumulations.
#[track_caller]
pub fn draw_pair_and_project<T: Real, const P: usize>(
    rng: &mut NormalRng,
    x: &mut [T],
    xi: &mut [T],
    shift: &[(f64, &[T])],
    probes: [&[T]; P],
) -> PairProjections<P> {
    let d = x.len();
    assert!(
        xi.len() == d && shift.iter().all(|s| s.1.len() == d) && probes.iter().all(|p| p.len() == d),
        "draw_pair_and_project: every vector must have length d = {d}"
    );
    rng.fill(x);
    rng.fill(xi);
    for &(c, e) in shift {
        crate::blas1::axpy(c, e, x);
    }
    let mut out = PairProjections { x_dot: [0.0; P], xi_dot: [0.0; P], xx: 0.0, xixi: 0.0, xxi: 0.0 };
    for p in 0..P {
        out.x_dot[p] = crate::blas1::dot(probes[p], x);
        out.xi_dot[p] = crate::blas1::dot(probes[p], xi);
    }
    out.xx = crate::blas1::dot(x, x);
    out.xixi = crate::blas1::dot(xi, xi);
    out.xxi = crate::blas1::dot(x, xi);
    out
}

/// w ← alpha·w + Σ_j c_j·t_j for `terms = [(c_j, t_j)]`; returns (⟨w, probe_p⟩, ‖w‖²) of the new w.
#[track_caller]
pub fn combine_and_project<T: Real, const P: usize>(
    w: &mut [T],
    alpha: f64,
    terms: &[(f64, &[T])],
    probes: [&[T]; P],
) -> ([f64; P], f64) {
    let d = w.len();
    assert!(
        terms.iter().all(|t| t.1.len() == d) && probes.iter().all(|p| p.len() == d),
        "combine_and_project: every vector must have length d = {d}"
    );
    crate::blas1::scale(alpha, w);
    for &(c, t) in terms {
        crate::blas1::axpy(c, t, w);
    }
    let mut dots = [0.0; P];
    for p in 0..P {
        dots[p] = crate::blas1::dot(probes[p], w);
    }
    (dots, crate::blas1::dot(w, w))
}
