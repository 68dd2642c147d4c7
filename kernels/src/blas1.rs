//! Level-1 kernels. Accumulations return `f64`.
//!
//! `axpy` and `scale` are element-wise and give exactly `y[i].mul_add(alpha, …)` / `x[i]·alpha`,
//! like the obvious loops. `dot` sums in a fixed order that does not depend on the SIMD level:
//! f64 in four 8-lane accumulators; f32 in four 16-lane f32 accumulators flushed into f64 lanes
//! every 4 products (see the `elem` module): at d = 1e5 the error stays below 1e-9·Σ|a_i·b_i|,
//! so the relative error is ≲ 1e-7 unless ⟨a, b⟩ itself cancels to below 1e-3·Σ|a_i·b_i|.

use crate::Real;
use crate::elem::{Elem, FLUSH_DOT, chunks, chunks_mut, padded, same, same_mut};
use crate::simd::{Kernel, Lanes, SimdLevel, dispatch};

/// ⟨a, b⟩.
#[track_caller]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    dot_at(SimdLevel::detect(), a, b)
}

pub(crate) fn dot_at<T: Real>(level: SimdLevel, a: &[T], b: &[T]) -> f64 {
    if let (Some(a), Some(b)) = (same::<T, f32>(a), same::<T, f32>(b)) {
        dispatch(level, Dot { a, b })
    } else if let (Some(a), Some(b)) = (same::<T, f64>(a), same::<T, f64>(b)) {
        dispatch(level, Dot { a, b })
    } else {
        crate::reference::dot(a, b)
    }
}

/// ‖a‖².
pub fn nrm2_sq<T: Real>(a: &[T]) -> f64 {
    dot(a, a)
}

/// y ← y + alpha·x.
#[track_caller]
pub fn axpy<T: Real>(alpha: f64, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    axpy_at(SimdLevel::detect(), alpha, x, y)
}

pub(crate) fn axpy_at<T: Real>(level: SimdLevel, alpha: f64, x: &[T], y: &mut [T]) {
    if let Some(x) = same::<T, f32>(x) {
        let y = same_mut::<T, f32>(y).expect("same type");
        dispatch(level, Axpy { alpha: alpha as f32, x, y })
    } else if let Some(x) = same::<T, f64>(x) {
        let y = same_mut::<T, f64>(y).expect("same type");
        dispatch(level, Axpy { alpha, x, y })
    } else {
        crate::reference::axpy(alpha, x, y)
    }
}

/// x ← alpha·x.
pub fn scale<T: Real>(alpha: f64, x: &mut [T]) {
    scale_at(SimdLevel::detect(), alpha, x)
}

pub(crate) fn scale_at<T: Real>(level: SimdLevel, alpha: f64, x: &mut [T]) {
    if let Some(x) = same_mut::<T, f32>(x) {
        dispatch(level, Scale { alpha: alpha as f32, x })
    } else if let Some(x) = same_mut::<T, f64>(x) {
        dispatch(level, Scale { alpha, x })
    } else {
        crate::reference::scale(alpha, x)
    }
}

/// Aᵀ B for A = `probes` (d×P) and B = `vectors` (d×N), both column-major: `out[p + P·i]` =
/// ⟨probe p, vector i⟩ (P×N, column-major).
///
/// One pass over d serves two vectors and up to four probes (eight running sums in registers), so
/// each vector is read about P/4 times and each probe ⌈N/2⌉ times, where separate `dot`s read every
/// vector P times. The sums are taken in a fixed order (per pair, f32 partial sums of 32 products
/// per lane, then f64), the same on every SIMD level, but not `dot`'s order. Inputs starting on a
/// cache line ([`crate::AlignedVec`]) run about twice as fast once they leave L1.
#[track_caller]
pub fn inner_products<T: Real>(probes: &[T], vectors: &[T], d: usize, out: &mut [f64]) {
    inner_products_at(SimdLevel::detect(), probes, vectors, d, out)
}

#[track_caller]
pub(crate) fn inner_products_at<T: Real>(level: SimdLevel, probes: &[T], vectors: &[T], d: usize, out: &mut [f64]) {
    let (np, nv) = (probes.len().checked_div(d).unwrap_or(0), vectors.len().checked_div(d).unwrap_or(0));
    assert!(
        np * d == probes.len() && nv * d == vectors.len() && out.len() == np * nv,
        "inner_products: probes and vectors must be d×P and d×N (d = {d}) and out P×N"
    );
    // Tiles of 2 vectors × 4 probes (then 2, then 1 for the probes left over); an odd last vector is
    // paired with itself and the copy dropped.
    for i0 in (0..nv).step_by(2) {
        let vs = [i0, (i0 + 1).min(nv - 1)].map(|i| &vectors[i * d..(i + 1) * d]);
        let mut p0 = 0;
        while p0 < np {
            let width = match np - p0 {
                1 => 1,
                2 | 3 => 2,
                _ => 4,
            };
            let mut tile = [[0.0; 4]; 2];
            match width {
                1 => probe_tile::<T, 1>(level, vs, probes, p0, d, &mut tile),
                2 => probe_tile::<T, 2>(level, vs, probes, p0, d, &mut tile),
                _ => probe_tile::<T, 4>(level, vs, probes, p0, d, &mut tile),
            }
            for (i, row) in tile.iter().enumerate().take(nv - i0) {
                for (p, &x) in row.iter().enumerate().take(width) {
                    out[p0 + p + np * (i0 + i)] = x;
                }
            }
            p0 += width;
        }
    }
}

/// One tile of [`inner_products`]: the two vectors `vs` against probes `p0..p0 + P`, into
/// `tile[vector][probe]`.
fn probe_tile<T: Real, const P: usize>(
    level: SimdLevel,
    vs: [&[T]; 2],
    probes: &[T],
    p0: usize,
    d: usize,
    tile: &mut [[f64; 4]; 2],
) {
    let ps: [&[T]; P] = core::array::from_fn(|q| &probes[(p0 + q) * d..(p0 + q + 1) * d]);
    let sums = if let (Some(vs), Some(ps)) = (same_all::<T, f32, 2>(vs), same_all::<T, f32, P>(ps)) {
        dispatch(level, DotTile { vs, ps })
    } else if let (Some(vs), Some(ps)) = (same_all::<T, f64, 2>(vs), same_all::<T, f64, P>(ps)) {
        dispatch(level, DotTile { vs, ps })
    } else {
        core::array::from_fn(|i| core::array::from_fn(|p| crate::reference::dot(ps[p], vs[i])))
    };
    for i in 0..2 {
        tile[i][..P].copy_from_slice(&sums[i]);
    }
}

/// `xs` as slices of `E` if `T` is `E`.
fn same_all<T: Real, E: Elem, const N: usize>(xs: [&[T]; N]) -> Option<[&[E]; N]> {
    let first = same::<T, E>(xs[0])?;
    let mut out = [first; N];
    for (o, x) in out.iter_mut().zip(xs) {
        *o = same::<T, E>(x)?;
    }
    Some(out)
}

/// The 2·P sums of one [`inner_products`] tile: `[vector][probe]`.
struct DotTile<'a, E, const P: usize> {
    vs: [&'a [E]; 2],
    ps: [&'a [E]; P],
}

impl<E: Elem, const P: usize> Kernel for DotTile<'_, E, P> {
    type Output = [[f64; P]; 2];
    #[inline(always)]
    fn run<K: Lanes>(self, k: K) -> [[f64; P]; 2] {
        let (v0, tail0) = chunks(self.vs[0]);
        let v1 = chunks(self.vs[1]).0;
        let mut ps: [&[E::Chunk]; P] = [&[]; P];
        for (c, p) in ps.iter_mut().zip(self.ps) {
            *c = chunks(p).0;
        }
        let mut acc = [[E::acc_zero(k); P]; 2];
        for i in 0..v0.len() {
            let x = [E::load(k, &v0[i]), E::load(k, &v1[i])];
            for q in 0..P {
                let pv = E::load(k, &ps[q][i]);
                acc[0][q] = E::acc_fma(k, acc[0][q], pv, x[0]);
                acc[1][q] = E::acc_fma(k, acc[1][q], pv, x[1]);
            }
            if (i + 1) % crate::elem::FLUSH_TILE == 0 {
                // Loops, not `map`: a closure is not inlined into the target-feature context.
                for row in &mut acc {
                    for a in row {
                        *a = E::acc_flush(k, *a);
                    }
                }
            }
        }
        if !tail0.is_empty() {
            let from = v0.len() * E::W;
            let x = [E::load(k, &padded(tail0)), E::load(k, &padded(&self.vs[1][from..]))];
            #[allow(clippy::needless_range_loop)] // q indexes the probes and both rows of sums
            for q in 0..P {
                let pv = E::load(k, &padded(&self.ps[q][from..]));
                acc[0][q] = E::acc_fma(k, acc[0][q], pv, x[0]);
                acc[1][q] = E::acc_fma(k, acc[1][q], pv, x[1]);
            }
        }
        let mut out = [[0.0; P]; 2];
        for (o, a) in out.iter_mut().zip(&acc) {
            for (x, &y) in o.iter_mut().zip(a) {
                *x = E::acc_sum(k, y);
            }
        }
        out
    }
}

struct Dot<'a, E> {
    a: &'a [E],
    b: &'a [E],
}

impl<E: Elem> Kernel for Dot<'_, E> {
    type Output = f64;
    #[inline(always)]
    fn run<K: Lanes>(self, k: K) -> f64 {
        let (a, a_tail) = chunks(self.a);
        let (b, b_tail) = chunks(self.b);
        let mut acc = [E::acc_zero(k); 4];
        // Four independent accumulators hide the fma latency; each gets one product per group.
        let mut groups_a = a.chunks_exact(4);
        let mut groups_b = b.chunks_exact(4);
        for (g, (ga, gb)) in (&mut groups_a).zip(&mut groups_b).enumerate() {
            for j in 0..4 {
                acc[j] = E::acc_fma(k, acc[j], E::load(k, &ga[j]), E::load(k, &gb[j]));
            }
            if (g + 1) % FLUSH_DOT == 0 {
                for a in &mut acc {
                    *a = E::acc_flush(k, *a);
                }
            }
        }
        for (j, (ca, cb)) in groups_a.remainder().iter().zip(groups_b.remainder()).enumerate() {
            acc[j] = E::acc_fma(k, acc[j], E::load(k, ca), E::load(k, cb));
        }
        if !a_tail.is_empty() {
            let j = a.len() % 4;
            acc[j] = E::acc_fma(k, acc[j], E::load(k, &padded(a_tail)), E::load(k, &padded(b_tail)));
        }
        (E::acc_sum(k, acc[0]) + E::acc_sum(k, acc[1])) + (E::acc_sum(k, acc[2]) + E::acc_sum(k, acc[3]))
    }
}

struct Axpy<'a, E> {
    alpha: E,
    x: &'a [E],
    y: &'a mut [E],
}

impl<E: Elem> Kernel for Axpy<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run<K: Lanes>(self, k: K) {
        let (x, x_tail) = chunks(self.x);
        let (y, y_tail) = chunks_mut(self.y);
        let a = E::splat(k, self.alpha);
        for (cy, cx) in y.iter_mut().zip(x) {
            E::store(k, cy, E::fma(k, E::load(k, cx), a, E::load(k, cy)));
        }
        for (ty, &tx) in y_tail.iter_mut().zip(x_tail) {
            *ty = tx.mul_add(self.alpha, *ty);
        }
    }
}

struct Scale<'a, E> {
    alpha: E,
    x: &'a mut [E],
}

impl<E: Elem> Kernel for Scale<'_, E> {
    type Output = ();
    #[inline(always)]
    fn run<K: Lanes>(self, k: K) {
        let (x, x_tail) = chunks_mut(self.x);
        let a = E::splat(k, self.alpha);
        for c in x.iter_mut() {
            E::store(k, c, E::vmul(k, E::load(k, c), a));
        }
        for t in x_tail {
            *t *= self.alpha;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NormalRng, reference};

    const SIZES: [usize; 14] = [0, 1, 7, 15, 16, 17, 63, 64, 65, 100, 1000, 1023, 4097, 100_000];

    fn normals<T: Real>(seed: u64, n: usize) -> Vec<T> {
        let mut v = vec![T::default(); n];
        NormalRng::from_seed(seed).fill(&mut v);
        v
    }

    /// Σ|a_i·b_i|: the scale a summation error is measured against.
    fn abs_dot<T: Real>(a: &[T], b: &[T]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x.to_f64() * y.to_f64()).abs()).sum()
    }

    #[test]
    fn dot_matches_the_f64_reference() {
        for n in SIZES {
            let (a, b) = (normals::<f32>(1, n), normals::<f32>(2, n));
            // A shifted copy: all products positive, no cancellation.
            let c: Vec<f32> = a.iter().map(|x| x + 4.0).collect();
            for level in SimdLevel::available() {
                for (x, y) in [(&a, &b), (&a, &a), (&c, &c)] {
                    let (got, want) = (dot_at(level, x, y), reference::dot(x, y));
                    // Sums of ≤ 16 f32 products per lane before widening: a few f32 ulps of the
                    // partial sums, far below 1e-6 of Σ|a_i b_i|.
                    assert!((got - want).abs() <= 1e-6 * abs_dot(x, y), "f32 n={n} {level:?}: {got} vs {want}");
                }
            }
            let (a, b) = (normals::<f64>(1, n), normals::<f64>(2, n));
            for level in SimdLevel::available() {
                let (got, want) = (dot_at(level, &a, &b), reference::dot(&a, &b));
                assert!((got - want).abs() <= 1e-14 * abs_dot(&a, &b), "f64 n={n} {level:?}: {got} vs {want}");
            }
        }
    }

    /// `inner_products` is every (probe, vector) inner product, in the documented layout, for
    /// tile-sized and ragged counts, within the reference's rounding, with the same bits on every level.
    #[test]
    fn inner_products_on_every_level() {
        fn check<T: Real>(tol: f64) {
            for d in [1usize, 17, 100, 4097] {
                let pool = normals::<T>(40, 14 * d);
                for (nv, np) in [(1, 1), (2, 4), (3, 5), (5, 8), (4, 9), (0, 3), (2, 0)] {
                    let (vs, ps) = (&pool[..nv * d], &pool[nv * d..(nv + np) * d]);
                    let runs: Vec<Vec<f64>> = SimdLevel::available()
                        .into_iter()
                        .map(|level| {
                            let mut out = vec![f64::NAN; nv * np];
                            inner_products_at(level, ps, vs, d, &mut out);
                            out
                        })
                        .collect();
                    for i in 0..nv {
                        for p in 0..np {
                            let (v, q) = (&vs[i * d..(i + 1) * d], &ps[p * d..(p + 1) * d]);
                            let (got, want) = (runs[0][p + np * i], reference::dot(q, v));
                            assert!(
                                (got - want).abs() <= tol * abs_dot(q, v),
                                "d={d} {nv}×{np} ({p},{i}): {got} vs {want}"
                            );
                        }
                    }
                    assert!(runs.iter().all(|r| r.iter().zip(&runs[0]).all(|(a, b)| a.to_bits() == b.to_bits())));
                }
            }
        }
        // f32: partial sums of ≤ 32 products per lane, so ≤ 32 roundings of 2⁻²⁴ each.
        check::<f32>(2e-6);
        check::<f64>(1e-14);
    }

    #[test]
    fn f32_dot_is_accurate_at_d_1e5() {
        let d = 100_000;
        let (mut worst_rel, mut worst_scaled) = (0.0f64, 0.0f64);
        for seed in 0..20 {
            let (a, b) = (normals::<f32>(2 * seed, d), normals::<f32>(2 * seed + 1, d));
            for (x, y) in [(&a, &b), (&a, &a)] {
                let (got, want) = (dot(x, y), reference::dot(x, y));
                worst_scaled = worst_scaled.max((got - want).abs() / abs_dot(x, y));
                // ⟨a, b⟩ of independent normals is √d·N(0,1) ≈ 316·N(0,1); a relative error is
                // only meaningful where it does not cancel far below that scale.
                if want.abs() > 1e-3 * abs_dot(x, y) {
                    worst_rel = worst_rel.max((got - want).abs() / want.abs());
                }
            }
        }
        assert!(worst_rel < 1e-6, "worst relative error {worst_rel:e}");
        assert!(worst_scaled < 1e-9, "worst error / Σ|a_i b_i| = {worst_scaled:e}");
    }

    #[test]
    fn axpy_and_scale_are_the_reference_loops_bit_for_bit() {
        for n in SIZES {
            for level in SimdLevel::available() {
                let (x, y) = (normals::<f32>(3, n), normals::<f32>(4, n));
                let (mut got, mut want) = (y.clone(), y.clone());
                axpy_at(level, -0.37, &x, &mut got);
                reference::axpy(-0.37, &x, &mut want);
                assert_eq!(got, want, "axpy f32 n={n} {level:?}");
                scale_at(level, 1.7, &mut got);
                reference::scale(1.7, &mut want);
                assert_eq!(got, want, "scale f32 n={n} {level:?}");

                let (x, y) = (normals::<f64>(3, n), normals::<f64>(4, n));
                let (mut got, mut want) = (y.clone(), y.clone());
                axpy_at(level, -0.37, &x, &mut got);
                reference::axpy(-0.37, &x, &mut want);
                assert_eq!(got, want, "axpy f64 n={n} {level:?}");
                scale_at(level, 1.7, &mut got);
                reference::scale(1.7, &mut want);
                assert_eq!(got, want, "scale f64 n={n} {level:?}");
            }
        }
    }

    #[test]
    fn dot_has_the_same_bits_on_every_simd_level() {
        let levels = SimdLevel::available();
        for n in SIZES {
            let (a, b) = (normals::<f32>(5, n), normals::<f32>(6, n));
            let (c, e) = (normals::<f64>(5, n), normals::<f64>(6, n));
            for &level in &levels[1..] {
                assert_eq!(dot_at(levels[0], &a, &b).to_bits(), dot_at(level, &a, &b).to_bits(), "f32 n={n}");
                assert_eq!(dot_at(levels[0], &c, &e).to_bits(), dot_at(level, &c, &e).to_bits(), "f64 n={n}");
            }
        }
    }
}
