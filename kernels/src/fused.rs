//! Fused passes: each reads and writes every d-length vector once.
//!
//! Both passes are single loops over d in registers: [`draw_pair_and_project`] generates the
//! normals, forms x, writes x and ξ and accumulates every projection and Gram entry as it goes;
//! [`combine_and_project`] updates w and accumulates its projections and norm. None allocates.
//! They are specialised for up to [`MAX_FUSED_TERMS`] shift/update vectors; longer lists take the
//! unfused path (same results, more passes).

use crate::elem::{Elem, FLUSH_FUSED, as_slice_mut, chunks, chunks_mut, padded, same, same_mut};
use crate::normal::Xoshiro;
use crate::rng::{BLOCK, LANES};
use crate::simd::{Kernel, Lanes, SimdLevel, dispatch};
use crate::{NormalRng, Real};

/// The largest number of `shift`/`terms` vectors the fused passes handle in their single loop.
pub const MAX_FUSED_TERMS: usize = 4;

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
/// The normals come in the generator's 32-normal blocks, alternating between the two vectors: block
/// 2i fills `x[32i..32i+32]` and block 2i + 1 fills `xi[32i..32i+32]` (a last partial block is drawn
/// whole and its head kept, as [`NormalRng::fill`] does). One generator then serves both vectors, with
/// no second state to hold in registers and no skip-ahead. The result equals `rng.fill` on those
/// 32-element pieces in that order followed by the shifts, bit for bit up to the order of the
/// accumulations (`reference::draw_pair_and_project` is that sequence). The shifts are applied in
/// order as `x ← e_j·c_j + x` with one rounding each, as [`crate::blas1::axpy`] does.
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
    if shift.len() > MAX_FUSED_TERMS {
        return crate::reference::draw_pair_and_project(rng, x, xi, shift, probes);
    }
    if let (Some(x), Some(xi)) = (same_mut::<T, f32>(x), same_mut::<T, f32>(xi)) {
        draw_pair_typed(rng, x, xi, shift, probes)
    } else if let (Some(x), Some(xi)) = (same_mut::<T, f64>(x), same_mut::<T, f64>(xi)) {
        draw_pair_typed(rng, x, xi, shift, probes)
    } else {
        crate::reference::draw_pair_and_project(rng, x, xi, shift, probes)
    }
}

/// [`draw_pair_and_project`] once `T` is known to be `E`: picks the kernel for `shift.len()`.
fn draw_pair_typed<E: Elem, T: Real, const P: usize>(
    rng: &mut NormalRng,
    x: &mut [E],
    xi: &mut [E],
    shift: &[(f64, &[T])],
    probes: [&[T]; P],
) -> PairProjections<P> {
    fn run<E: Elem, T: Real, const N: usize, const P: usize>(
        rng: &mut NormalRng,
        x: &mut [E],
        xi: &mut [E],
        shift: &[(f64, &[T])],
        probes: [&[E]; P],
    ) -> PairProjections<P> {
        let level = rng.simd_level();
        let shift = typed_terms::<T, E, N>(shift);
        dispatch(level, DrawPair::<E, N, P> { s: rng.words_mut(), x, xi, shift, probes })
    }
    let probes = probes.map(|p| same::<T, E>(p).expect("same type"));
    match shift.len() {
        0 => run::<E, T, 0, P>(rng, x, xi, shift, probes),
        1 => run::<E, T, 1, P>(rng, x, xi, shift, probes),
        2 => run::<E, T, 2, P>(rng, x, xi, shift, probes),
        3 => run::<E, T, 3, P>(rng, x, xi, shift, probes),
        _ => run::<E, T, MAX_FUSED_TERMS, P>(rng, x, xi, shift, probes),
    }
}

/// w ← alpha·w + Σ_j c_j·t_j for `terms = [(c_j, t_j)]`; returns (⟨w, probe_p⟩, ‖w‖²) of the new w.
///
/// The new w is exactly that of [`crate::blas1::scale`] followed by one [`crate::blas1::axpy`]
/// per term, in order.
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
    combine_and_project_at(SimdLevel::detect(), w, alpha, terms, probes)
}

pub(crate) fn combine_and_project_at<T: Real, const P: usize>(
    level: SimdLevel,
    w: &mut [T],
    alpha: f64,
    terms: &[(f64, &[T])],
    probes: [&[T]; P],
) -> ([f64; P], f64) {
    if terms.len() > MAX_FUSED_TERMS {
        return crate::reference::combine_and_project(w, alpha, terms, probes);
    }
    if let Some(w) = same_mut::<T, f32>(w) {
        combine_typed(level, w, alpha, terms, probes)
    } else if let Some(w) = same_mut::<T, f64>(w) {
        combine_typed(level, w, alpha, terms, probes)
    } else {
        crate::reference::combine_and_project(w, alpha, terms, probes)
    }
}

/// [`combine_and_project`] once `T` is known to be `E`: picks the kernel for `terms.len()`.
fn combine_typed<E: Elem, T: Real, const P: usize>(
    level: SimdLevel,
    w: &mut [E],
    alpha: f64,
    terms: &[(f64, &[T])],
    probes: [&[T]; P],
) -> ([f64; P], f64) {
    fn run<E: Elem, T: Real, const N: usize, const P: usize>(
        level: SimdLevel,
        w: &mut [E],
        alpha: E,
        terms: &[(f64, &[T])],
        probes: [&[E]; P],
    ) -> ([f64; P], f64) {
        let terms = typed_terms::<T, E, N>(terms);
        dispatch(level, Combine::<E, N, P> { w, alpha, terms, probes })
    }
    let probes = probes.map(|p| same::<T, E>(p).expect("same type"));
    let alpha = E::from_f64(alpha);
    match terms.len() {
        0 => run::<E, T, 0, P>(level, w, alpha, terms, probes),
        1 => run::<E, T, 1, P>(level, w, alpha, terms, probes),
        2 => run::<E, T, 2, P>(level, w, alpha, terms, probes),
        3 => run::<E, T, 3, P>(level, w, alpha, terms, probes),
        _ => run::<E, T, MAX_FUSED_TERMS, P>(level, w, alpha, terms, probes),
    }
}

/// The first `N` of `list` with coefficients in `E` (`N ≤ list.len()`).
fn typed_terms<'a, T: Real, E: Elem, const N: usize>(list: &[(f64, &'a [T])]) -> [(E, &'a [E]); N] {
    core::array::from_fn(|j| (E::from_f64(list[j].0), same::<T, E>(list[j].1).expect("same type")))
}

struct DrawPair<'a, E, const N: usize, const P: usize> {
    s: &'a mut [[u64; LANES]; 4],
    x: &'a mut [E],
    xi: &'a mut [E],
    shift: [(E, &'a [E]); N],
    probes: [&'a [E]; P],
}

/// Running sums of [`draw_pair_and_project`].
struct PairAcc<A, const P: usize> {
    x_dot: [A; P],
    xi_dot: [A; P],
    xx: A,
    xixi: A,
    xxi: A,
}

impl<E: Elem, const N: usize, const P: usize> Kernel for DrawPair<'_, E, N, P> {
    type Output = PairProjections<P>;

    #[inline(always)]
    fn run<K: Lanes>(self, k: K) -> PairProjections<P> {
        let Self { s, x, xi, shift, probes } = self;
        let d = x.len();
        let full_blocks = d / BLOCK;
        let base = full_blocks * BLOCK;

        // Blocks alternate: x's block i, then ξ's block i, from one generator.
        let mut stream = Xoshiro::load(k, s);

        // Whole blocks as chunks, and the rest (< BLOCK elements).
        let (x, x_rest) = x.split_at_mut(base);
        let (xi, xi_rest) = xi.split_at_mut(base);
        let xc = chunks_mut(x).0;
        let xic = chunks_mut(xi).0;
        let mut coef = [E::splat(k, E::default()); N];
        let mut shift_c: [&[E::Chunk]; N] = [&[]; N];
        for j in 0..N {
            coef[j] = E::splat(k, shift[j].0);
            shift_c[j] = chunks(&shift[j].1[..base]).0;
        }
        let mut probe_c: [&[E::Chunk]; P] = [&[]; P];
        for p in 0..P {
            probe_c[p] = chunks(&probes[p][..base]).0;
        }

        let zero = E::acc_zero(k);
        let mut acc = PairAcc { x_dot: [zero; P], xi_dot: [zero; P], xx: zero, xixi: zero, xxi: zero };
        let mut probe_v = [E::splat(k, E::default()); P];
        let mut ahead = Ahead::<E, K>::start(k, &mut stream, d.div_ceil(BLOCK));
        for b in 0..full_blocks {
            let (z, g) = ahead.take(k, &mut stream);
            for h in 0..E::PER_BLOCK {
                let i = b * E::PER_BLOCK + h;
                let mut xv = z[h];
                for j in 0..N {
                    xv = E::fma(k, E::load(k, &shift_c[j][i]), coef[j], xv);
                }
                E::store(k, &mut xc[i], xv);
                E::store(k, &mut xic[i], g[h]);
                for p in 0..P {
                    probe_v[p] = E::load(k, &probe_c[p][i]);
                }
                accumulate_pair::<E, K, P>(k, &mut acc, xv, g[h], &probe_v);
            }
            // Each f32 lane has received PER_BLOCK products per block.
            if (b + 1) % (FLUSH_FUSED / E::PER_BLOCK) == 0 {
                flush_pair::<E, K, P>(k, &mut acc);
            }
        }

        // The last, partial block: drawn whole, only its head kept (as `fill` does).
        let rest = d - base;
        if rest > 0 {
            let (z, g) = ahead.take(k, &mut stream);
            for h in 0..E::PER_BLOCK {
                let (lo, hi) = (h * E::W, ((h + 1) * E::W).min(rest));
                if lo >= hi {
                    break;
                }
                let mut xv = z[h];
                for j in 0..N {
                    xv = E::fma(k, E::load(k, &padded(&shift[j].1[base + lo..base + hi])), coef[j], xv);
                }
                let xv = store_head(k, xv, &mut x_rest[lo..hi]);
                let gv = store_head(k, g[h], &mut xi_rest[lo..hi]);
                for p in 0..P {
                    probe_v[p] = E::load(k, &padded(&probes[p][base + lo..base + hi]));
                }
                accumulate_pair::<E, K, P>(k, &mut acc, xv, gv, &probe_v);
            }
        }
        stream.store(k, s);

        let mut out = PairProjections { x_dot: [0.0; P], xi_dot: [0.0; P], xx: 0.0, xixi: 0.0, xxi: 0.0 };
        for p in 0..P {
            out.x_dot[p] = E::acc_sum(k, acc.x_dot[p]);
            out.xi_dot[p] = E::acc_sum(k, acc.xi_dot[p]);
        }
        out.xx = E::acc_sum(k, acc.xx);
        out.xixi = E::acc_sum(k, acc.xixi);
        out.xxi = E::acc_sum(k, acc.xxi);
        out
    }
}

/// One generator block of 32 normals in registers (as [`Elem::block`] returns it).
type Block<E, K> = [<E as Elem>::V<K>; 4];

/// The pair of normal blocks (x's, then ξ's) for the next 32 elements, drawn one step ahead of
/// their use: the transform is a long chain of dependent operations (generator, logarithm, square
/// root), and drawing block b + 1 before block b's update and sums lets the core overlap the two.
/// Measured on AVX-512 in one run: the merged pass at d = 10⁵ 152–153 → 138–139 µs, the draw pass
/// at d = 10³ 1.22 → 1.20 µs. The stream advances exactly as drawing each pair at its use would.
struct Ahead<E: Elem, K: Lanes> {
    z: Block<E, K>,
    g: Block<E, K>,
    /// Pairs still to be drawn.
    left: usize,
}

impl<E: Elem, K: Lanes> Ahead<E, K> {
    /// Draws the first of `pairs` pairs (none if `pairs` is 0).
    #[inline(always)]
    fn start(k: K, stream: &mut Xoshiro<K>, pairs: usize) -> Self {
        let zero = [E::splat(k, E::default()); 4];
        let mut ahead = Self { z: zero, g: zero, left: pairs };
        ahead.take(k, stream);
        ahead
    }

    /// Called after the work on register `h` of the current pair (which the caller copied out of
    /// `z` and `g` first): draws the next pair's x block after the first half of the registers and
    /// its ξ block after the second, if any pair is left. Drawing between the work on the current
    /// pair, rather than before all of it, gives the core independent work to overlap with each
    /// transform's chain. Measured on Zen 4 (rounds alternating the builds): the merged pass at
    /// d = 10⁵ 118–125 → 107–117 µs. The draw pass did not gain (d = 10³: 1118–1191 →
    /// 1184–1283 ns) and keeps [`Self::take`].
    #[inline(always)]
    fn draw_after(&mut self, k: K, stream: &mut Xoshiro<K>, h: usize) {
        if self.left == 0 {
            return;
        }
        if h == E::PER_BLOCK / 2 - 1 {
            self.z = E::block(k, stream);
        }
        if h == E::PER_BLOCK - 1 {
            self.g = E::block(k, stream);
            self.left -= 1;
        }
    }

    /// The pair drawn last, after drawing the next one if any is left.
    #[inline(always)]
    fn take(&mut self, k: K, stream: &mut Xoshiro<K>) -> (Block<E, K>, Block<E, K>) {
        let current = (self.z, self.g);
        if self.left > 0 {
            self.z = E::block(k, stream);
            self.g = E::block(k, stream);
            self.left -= 1;
        }
        current
    }
}

#[inline(always)]
fn accumulate_pair<E: Elem, K: Lanes, const P: usize>(
    k: K,
    acc: &mut PairAcc<E::Acc<K>, P>,
    x: E::V<K>,
    xi: E::V<K>,
    probe: &[E::V<K>; P],
) {
    for (p, &pv) in probe.iter().enumerate() {
        acc.x_dot[p] = E::acc_fma(k, acc.x_dot[p], pv, x);
        acc.xi_dot[p] = E::acc_fma(k, acc.xi_dot[p], pv, xi);
    }
    acc.xx = E::acc_fma(k, acc.xx, x, x);
    acc.xixi = E::acc_fma(k, acc.xixi, xi, xi);
    acc.xxi = E::acc_fma(k, acc.xxi, x, xi);
}

#[inline(always)]
fn flush_pair<E: Elem, K: Lanes, const P: usize>(k: K, acc: &mut PairAcc<E::Acc<K>, P>) {
    for p in 0..P {
        acc.x_dot[p] = E::acc_flush(k, acc.x_dot[p]);
        acc.xi_dot[p] = E::acc_flush(k, acc.xi_dot[p]);
    }
    acc.xx = E::acc_flush(k, acc.xx);
    acc.xixi = E::acc_flush(k, acc.xixi);
    acc.xxi = E::acc_flush(k, acc.xxi);
}

/// Writes the first `out.len()` (≤ W) lanes of `v` to `out`; returns `v` with the other lanes
/// zeroed.
#[inline(always)]
fn store_head<E: Elem, K: Lanes>(k: K, v: E::V<K>, out: &mut [E]) -> E::V<K> {
    let mut c = bytemuck::Zeroable::zeroed();
    E::store(k, &mut c, v);
    let lanes = as_slice_mut::<E>(&mut c);
    out.copy_from_slice(&lanes[..out.len()]);
    lanes[out.len()..].fill(E::default());
    E::load(k, &c)
}

/// What [`update_and_draw`] measured: the updated w's projections and norm, its products with the
/// fresh pair, and the pair's own projections and Gram matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateDrawProjections<const P: usize> {
    /// The updated w's projections and norm, if the call asked for them (`measure_w`).
    pub w: Option<WeightSums<P>>,
    /// ⟨w, x⟩ and ⟨w, ξ⟩ (updated w, fresh pair).
    pub wx: f64,
    pub wxi: f64,
    /// Projections of the fresh pair on the probes, and its Gram matrix.
    pub pair: PairProjections<P>,
}

/// What [`update_and_draw`] measures of the updated w on request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightSums<const P: usize> {
    /// ⟨probe_p, w⟩.
    pub w_dot: [f64; P],
    /// ‖w‖².
    pub ww: f64,
}

/// One step's only pass over d: applies the previous step's update to w, then draws the next pair.
///
/// With the previous pair still in `x` and `xi`, it sets
/// w ← alpha·w + c_x·x + c_ξ·ξ + Σ_j c_j·t_j for `pair_coef = (c_x, c_ξ)` and `terms = [(c_j, t_j)]`,
/// then overwrites x and ξ with a fresh pair exactly as [`draw_pair_and_project`] (same stream, same
/// shifts), and returns every inner product the caller needs. The new w equals that of
/// [`combine_and_project`] with terms `[(c_x, x), (c_ξ, ξ), terms…]`, bit for bit;
/// `reference::update_and_draw` is that sequence of calls.
///
/// Deferring each update into the next step's draw means w, x and ξ are each read and written once
/// per step instead of twice.
///
/// With `measure_w` false the pass skips the updated w's projections on the probes and its norm
/// (`w` is `None`): four of its fifteen sums, for a caller that can form them from the previous
/// step's inner products. Everything else, every vector included, has the same bits either way.
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
) -> UpdateDrawProjections<P> {
    let d = w.len();
    assert!(
        x.len() == d
            && xi.len() == d
            && terms.iter().all(|t| t.1.len() == d)
            && shift.iter().all(|s| s.1.len() == d)
            && probes.iter().all(|p| p.len() == d),
        "update_and_draw: every vector must have length d = {d}"
    );
    if terms.len() > 1 || shift.len() > MAX_FUSED_TERMS {
        return crate::reference::update_and_draw(rng, w, alpha, pair_coef, terms, x, xi, shift, probes, measure_w);
    }
    if let (Some(w), Some(x), Some(xi)) = (same_mut::<T, f32>(w), same_mut::<T, f32>(x), same_mut::<T, f32>(xi)) {
        update_draw_typed(rng, w, alpha, pair_coef, terms, x, xi, shift, probes, measure_w)
    } else if let (Some(w), Some(x), Some(xi)) = (same_mut::<T, f64>(w), same_mut::<T, f64>(x), same_mut::<T, f64>(xi))
    {
        update_draw_typed(rng, w, alpha, pair_coef, terms, x, xi, shift, probes, measure_w)
    } else {
        crate::reference::update_and_draw(rng, w, alpha, pair_coef, terms, x, xi, shift, probes, measure_w)
    }
}

/// [`update_and_draw`] once `T` is known to be `E`: picks the kernel for the term and shift counts
/// and for `measure_w`.
#[allow(clippy::too_many_arguments)]
fn update_draw_typed<E: Elem, T: Real, const P: usize>(
    rng: &mut NormalRng,
    w: &mut [E],
    alpha: f64,
    pair_coef: (f64, f64),
    terms: &[(f64, &[T])],
    x: &mut [E],
    xi: &mut [E],
    shift: &[(f64, &[T])],
    probes: [&[T]; P],
    measure_w: bool,
) -> UpdateDrawProjections<P> {
    #[allow(clippy::too_many_arguments)]
    fn run<E: Elem, T: Real, const U: usize, const N: usize, const P: usize, const MW: bool>(
        rng: &mut NormalRng,
        w: &mut [E],
        alpha: f64,
        pair_coef: (f64, f64),
        terms: &[(f64, &[T])],
        x: &mut [E],
        xi: &mut [E],
        shift: &[(f64, &[T])],
        probes: [&[E]; P],
    ) -> UpdateDrawProjections<P> {
        let level = rng.simd_level();
        let kernel = UpdateDraw::<E, U, N, P, MW> {
            s: rng.words_mut(),
            w,
            alpha: E::from_f64(alpha),
            cx: E::from_f64(pair_coef.0),
            cxi: E::from_f64(pair_coef.1),
            terms: typed_terms::<T, E, U>(terms),
            x,
            xi,
            shift: typed_terms::<T, E, N>(shift),
            probes,
        };
        dispatch(level, kernel)
    }
    let probes = probes.map(|p| same::<T, E>(p).expect("same type"));
    macro_rules! by_shift {
        ($u:literal, $mw:literal) => {
            match shift.len() {
                0 => run::<E, T, $u, 0, P, $mw>(rng, w, alpha, pair_coef, terms, x, xi, shift, probes),
                1 => run::<E, T, $u, 1, P, $mw>(rng, w, alpha, pair_coef, terms, x, xi, shift, probes),
                2 => run::<E, T, $u, 2, P, $mw>(rng, w, alpha, pair_coef, terms, x, xi, shift, probes),
                3 => run::<E, T, $u, 3, P, $mw>(rng, w, alpha, pair_coef, terms, x, xi, shift, probes),
                _ => run::<E, T, $u, MAX_FUSED_TERMS, P, $mw>(rng, w, alpha, pair_coef, terms, x, xi, shift, probes),
            }
        };
    }
    match (terms.is_empty(), measure_w) {
        (true, true) => by_shift!(0, true),
        (true, false) => by_shift!(0, false),
        (false, true) => by_shift!(1, true),
        (false, false) => by_shift!(1, false),
    }
}

struct UpdateDraw<'a, E, const U: usize, const N: usize, const P: usize, const MW: bool> {
    s: &'a mut [[u64; LANES]; 4],
    w: &'a mut [E],
    alpha: E,
    cx: E,
    cxi: E,
    terms: [(E, &'a [E]); U],
    x: &'a mut [E],
    xi: &'a mut [E],
    shift: [(E, &'a [E]); N],
    probes: [&'a [E]; P],
}

/// Running sums of [`update_and_draw`] beyond the pair's own.
struct WAcc<A, const P: usize> {
    w_dot: [A; P],
    ww: A,
    wx: A,
    wxi: A,
}

impl<E: Elem, const U: usize, const N: usize, const P: usize, const MW: bool> Kernel
    for UpdateDraw<'_, E, U, N, P, MW>
{
    type Output = UpdateDrawProjections<P>;

    #[inline(always)]
    fn run<K: Lanes>(self, k: K) -> UpdateDrawProjections<P> {
        let Self { s, w, alpha, cx, cxi, terms, x, xi, shift, probes } = self;
        let d = w.len();
        let full_blocks = d / BLOCK;
        let base = full_blocks * BLOCK;
        let mut stream = Xoshiro::load(k, s);

        let (a, cxv, cxiv) = (E::splat(k, alpha), E::splat(k, cx), E::splat(k, cxi));
        let mut tcoef = [E::splat(k, E::default()); U];
        for j in 0..U {
            tcoef[j] = E::splat(k, terms[j].0);
        }
        let mut scoef = [E::splat(k, E::default()); N];
        for j in 0..N {
            scoef[j] = E::splat(k, shift[j].0);
        }

        // One element-block: update w from the old pair, then write the fresh pair.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn element<E: Elem, K: Lanes, const U: usize, const N: usize, const P: usize, const MW: bool>(
            k: K,
            (a, cxv, cxiv): (E::V<K>, E::V<K>, E::V<K>),
            tv: [(E::V<K>, E::V<K>); U],
            sv: [(E::V<K>, E::V<K>); N],
            pv: &[E::V<K>; P],
            (wv, xold, xiold): (E::V<K>, E::V<K>, E::V<K>),
            (z, g): (E::V<K>, E::V<K>),
            pacc: &mut PairAcc<E::Acc<K>, P>,
            wacc: &mut WAcc<E::Acc<K>, P>,
        ) -> (E::V<K>, E::V<K>) {
            let mut wn = E::vmul(k, wv, a);
            wn = E::fma(k, xold, cxv, wn);
            wn = E::fma(k, xiold, cxiv, wn);
            for (t, c) in tv {
                wn = E::fma(k, t, c, wn);
            }
            let mut xv = z;
            for (e, c) in sv {
                xv = E::fma(k, e, c, xv);
            }
            if MW {
                for (acc, &probe) in wacc.w_dot.iter_mut().zip(pv) {
                    *acc = E::acc_fma(k, *acc, probe, wn);
                }
                wacc.ww = E::acc_fma(k, wacc.ww, wn, wn);
            }
            wacc.wx = E::acc_fma(k, wacc.wx, wn, xv);
            wacc.wxi = E::acc_fma(k, wacc.wxi, wn, g);
            accumulate_pair::<E, K, P>(k, pacc, xv, g, pv);
            (wn, xv)
        }

        let mut ahead = Ahead::<E, K>::start(k, &mut stream, d.div_ceil(BLOCK));
        let zero = E::acc_zero(k);
        let mut pacc = PairAcc { x_dot: [zero; P], xi_dot: [zero; P], xx: zero, xixi: zero, xxi: zero };
        let mut wacc = WAcc { w_dot: [zero; P], ww: zero, wx: zero, wxi: zero };
        {
            let wc = chunks_mut(&mut w[..base]).0;
            let xc = chunks_mut(&mut x[..base]).0;
            let xic = chunks_mut(&mut xi[..base]).0;
            let term_c: [&[E::Chunk]; U] = core::array::from_fn(|j| chunks(&terms[j].1[..base]).0);
            let shift_c: [&[E::Chunk]; N] = core::array::from_fn(|j| chunks(&shift[j].1[..base]).0);
            let probe_c: [&[E::Chunk]; P] = core::array::from_fn(|p| chunks(&probes[p][..base]).0);
            for b in 0..full_blocks {
                let (z, g) = (ahead.z, ahead.g);
                for h in 0..E::PER_BLOCK {
                    let i = b * E::PER_BLOCK + h;
                    let tv = core::array::from_fn(|j| (E::load(k, &term_c[j][i]), tcoef[j]));
                    let sv = core::array::from_fn(|j| (E::load(k, &shift_c[j][i]), scoef[j]));
                    let pv = core::array::from_fn(|p| E::load(k, &probe_c[p][i]));
                    let old = (E::load(k, &wc[i]), E::load(k, &xc[i]), E::load(k, &xic[i]));
                    let (wn, xv) = element::<E, K, U, N, P, MW>(
                        k,
                        (a, cxv, cxiv),
                        tv,
                        sv,
                        &pv,
                        old,
                        (z[h], g[h]),
                        &mut pacc,
                        &mut wacc,
                    );
                    E::store(k, &mut wc[i], wn);
                    E::store(k, &mut xc[i], xv);
                    E::store(k, &mut xic[i], g[h]);
                    ahead.draw_after(k, &mut stream, h);
                }
                if (b + 1) % (FLUSH_FUSED / E::PER_BLOCK) == 0 {
                    flush_pair::<E, K, P>(k, &mut pacc);
                    flush_w::<E, K, P, MW>(k, &mut wacc);
                }
            }
        }

        // The last, partial block: drawn whole, only its head kept; padded lanes are zero
        // everywhere, so they add nothing.
        let rest = d - base;
        if rest > 0 {
            let (z, g) = ahead.take(k, &mut stream);
            for h in 0..E::PER_BLOCK {
                let (lo, hi) = (base + h * E::W, (base + (h + 1) * E::W).min(d));
                if lo >= hi {
                    break;
                }
                let tv = core::array::from_fn(|j| (E::load(k, &padded(&terms[j].1[lo..hi])), tcoef[j]));
                let sv = core::array::from_fn(|j| (E::load(k, &padded(&shift[j].1[lo..hi])), scoef[j]));
                let pv = core::array::from_fn(|p| E::load(k, &padded(&probes[p][lo..hi])));
                let old = (
                    E::load(k, &padded(&w[lo..hi])),
                    E::load(k, &padded(&x[lo..hi])),
                    E::load(k, &padded(&xi[lo..hi])),
                );
                // Zero the fresh normals' padded lanes first, so that every product is zero there.
                let gz = store_head(k, g[h], &mut xi[lo..hi]);
                let zz = zero_tail::<E, K>(k, z[h], hi - lo);
                let (wn, xv) =
                    element::<E, K, U, N, P, MW>(k, (a, cxv, cxiv), tv, sv, &pv, old, (zz, gz), &mut pacc, &mut wacc);
                store_head(k, wn, &mut w[lo..hi]);
                store_head(k, xv, &mut x[lo..hi]);
            }
        }
        stream.store(k, s);

        let mut pair = PairProjections { x_dot: [0.0; P], xi_dot: [0.0; P], xx: 0.0, xixi: 0.0, xxi: 0.0 };
        for p in 0..P {
            pair.x_dot[p] = E::acc_sum(k, pacc.x_dot[p]);
            pair.xi_dot[p] = E::acc_sum(k, pacc.xi_dot[p]);
        }
        pair.xx = E::acc_sum(k, pacc.xx);
        pair.xixi = E::acc_sum(k, pacc.xixi);
        pair.xxi = E::acc_sum(k, pacc.xxi);
        let w_sums = if MW {
            let mut w_dot = [0.0; P];
            for (out, &acc) in w_dot.iter_mut().zip(&wacc.w_dot) {
                *out = E::acc_sum(k, acc);
            }
            Some(WeightSums { w_dot, ww: E::acc_sum(k, wacc.ww) })
        } else {
            None
        };
        UpdateDrawProjections { w: w_sums, wx: E::acc_sum(k, wacc.wx), wxi: E::acc_sum(k, wacc.wxi), pair }
    }
}

#[inline(always)]
fn flush_w<E: Elem, K: Lanes, const P: usize, const MW: bool>(k: K, acc: &mut WAcc<E::Acc<K>, P>) {
    if MW {
        for p in 0..P {
            acc.w_dot[p] = E::acc_flush(k, acc.w_dot[p]);
        }
        acc.ww = E::acc_flush(k, acc.ww);
    }
    acc.wx = E::acc_flush(k, acc.wx);
    acc.wxi = E::acc_flush(k, acc.wxi);
}

/// `v` with lanes `n..` zeroed.
#[inline(always)]
fn zero_tail<E: Elem, K: Lanes>(k: K, v: E::V<K>, n: usize) -> E::V<K> {
    let mut c = bytemuck::Zeroable::zeroed();
    E::store(k, &mut c, v);
    as_slice_mut::<E>(&mut c)[n..].fill(E::default());
    E::load(k, &c)
}

struct Combine<'a, E, const N: usize, const P: usize> {
    w: &'a mut [E],
    alpha: E,
    terms: [(E, &'a [E]); N],
    probes: [&'a [E]; P],
}

impl<E: Elem, const N: usize, const P: usize> Kernel for Combine<'_, E, N, P> {
    type Output = ([f64; P], f64);

    #[inline(always)]
    fn run<K: Lanes>(self, k: K) -> ([f64; P], f64) {
        let Self { w, alpha, terms, probes } = self;
        let (wc, w_tail) = chunks_mut(w);
        let n = wc.len();
        let a = E::splat(k, alpha);
        let mut coef = [E::splat(k, E::default()); N];
        let mut term_c: [&[E::Chunk]; N] = [&[]; N];
        for j in 0..N {
            coef[j] = E::splat(k, terms[j].0);
            term_c[j] = &chunks(terms[j].1).0[..n];
        }
        let mut probe_c: [&[E::Chunk]; P] = [&[]; P];
        for p in 0..P {
            probe_c[p] = &chunks(probes[p]).0[..n];
        }

        // Two sets of accumulators (even and odd chunks) so the fma latency is hidden when the
        // data is in L1.
        let zero = E::acc_zero(k);
        let mut dots = [[zero; P]; 2];
        let mut norm = [zero; 2];
        for pair in 0..n / 2 {
            for half in 0..2 {
                let i = 2 * pair + half;
                let mut wv = E::vmul(k, E::load(k, &wc[i]), a);
                for j in 0..N {
                    wv = E::fma(k, E::load(k, &term_c[j][i]), coef[j], wv);
                }
                E::store(k, &mut wc[i], wv);
                for p in 0..P {
                    dots[half][p] = E::acc_fma(k, dots[half][p], E::load(k, &probe_c[p][i]), wv);
                }
                norm[half] = E::acc_fma(k, norm[half], wv, wv);
            }
            if (pair + 1) % FLUSH_FUSED == 0 {
                for (dots, norm) in dots.iter_mut().zip(&mut norm) {
                    for d in dots.iter_mut() {
                        *d = E::acc_flush(k, *d);
                    }
                    *norm = E::acc_flush(k, *norm);
                }
            }
        }
        // A last odd chunk, then the partial one (zero-padded: padded lanes stay 0 and add 0).
        if n % 2 == 1 {
            let i = n - 1;
            let mut wv = E::vmul(k, E::load(k, &wc[i]), a);
            for j in 0..N {
                wv = E::fma(k, E::load(k, &term_c[j][i]), coef[j], wv);
            }
            E::store(k, &mut wc[i], wv);
            for p in 0..P {
                dots[0][p] = E::acc_fma(k, dots[0][p], E::load(k, &probe_c[p][i]), wv);
            }
            norm[0] = E::acc_fma(k, norm[0], wv, wv);
        }
        if !w_tail.is_empty() {
            let from = n * E::W;
            let mut wv = E::vmul(k, E::load(k, &padded(w_tail)), a);
            for j in 0..N {
                wv = E::fma(k, E::load(k, &padded(&terms[j].1[from..])), coef[j], wv);
            }
            let mut c = bytemuck::Zeroable::zeroed();
            E::store(k, &mut c, wv);
            w_tail.copy_from_slice(&as_slice_mut::<E>(&mut c)[..w_tail.len()]);
            for p in 0..P {
                dots[0][p] = E::acc_fma(k, dots[0][p], E::load(k, &padded(&probes[p][from..])), wv);
            }
            norm[0] = E::acc_fma(k, norm[0], wv, wv);
        }

        let mut out = [0.0; P];
        for p in 0..P {
            out[p] = E::acc_sum(k, dots[0][p]) + E::acc_sum(k, dots[1][p]);
        }
        (out, E::acc_sum(k, norm[0]) + E::acc_sum(k, norm[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    const LENGTHS: [usize; 10] = [0, 1, 15, 16, 31, 32, 33, 1000, 4097, 20_000];

    fn normals<T: Real>(seed: u64, n: usize) -> Vec<T> {
        let mut v = vec![T::default(); n];
        NormalRng::from_seed(seed).fill(&mut v);
        v
    }

    fn unit<T: Real>(seed: u64, n: usize) -> Vec<T> {
        let v: Vec<T> = normals(seed, n);
        let norm = crate::reference::dot(&v, &v).sqrt().max(1e-300);
        v.iter().map(|x| T::from_f64(x.to_f64() / norm)).collect()
    }

    fn abs_dot<T: Real>(a: &[T], b: &[T]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x.to_f64() * y.to_f64()).abs()).sum()
    }

    /// Tolerance of an accumulated dot product: 1e-6 (f32) or 1e-12 (f64) relative, or, where
    /// the sum cancels, the worst-case rounding bound (n + 2)·u·Σ|a_i b_i| of sums of n terms in
    /// precision u — f32 partial sums of n = FLUSH_FUSED products, f64 lane sums of n = d/8.
    #[track_caller]
    fn assert_dot<T: Real>(got: f64, want: f64, a: &[T], b: &[T], what: &str) {
        let (rel, bound) = if T::NAME == "f32" {
            (1e-6, (FLUSH_FUSED + 2) as f64 * f32::EPSILON as f64 / 2.0)
        } else {
            (1e-12, (a.len() / 8 + 2) as f64 * f64::EPSILON / 2.0)
        };
        let tol = (rel * want.abs()).max(bound * abs_dot(a, b));
        assert!((got - want).abs() <= tol, "{what}: {got} vs {want} (tolerance {tol:e})");
    }

    fn check_draw_pair<T: Real, const P: usize>(
        level: SimdLevel,
        d: usize,
        n_shift: usize,
    ) -> (Vec<T>, Vec<T>, PairProjections<P>) {
        let shift_v: Vec<Vec<T>> = (0..n_shift).map(|j| unit(100 + j as u64, d)).collect();
        let shift: Vec<(f64, &[T])> = shift_v.iter().enumerate().map(|(j, e)| (1.5 - 0.7 * j as f64, &e[..])).collect();
        let probe_v: Vec<Vec<T>> = (0..P).map(|p| unit(200 + p as u64, d)).collect();
        let probes: [&[T]; P] = core::array::from_fn(|p| &probe_v[p][..]);

        let mut rng = NormalRng::from_seed(d as u64 + 7).with_simd_level(level);
        rng.fill(&mut [T::default(); 40]); // start mid-stream
        let mut rng_ref = rng.clone();
        let (mut x, mut xi) = (vec![T::default(); d], vec![T::default(); d]);
        let got = draw_pair_and_project(&mut rng, &mut x, &mut xi, &shift, probes);
        let (mut x_ref, mut xi_ref) = (vec![T::default(); d], vec![T::default(); d]);
        let want = reference::draw_pair_and_project(&mut rng_ref, &mut x_ref, &mut xi_ref, &shift, probes);

        let what = format!("{} d={d} shifts={n_shift} P={P} {level:?}", T::NAME);
        assert!(x.iter().zip(&x_ref).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()), "x differs: {what}");
        assert!(xi.iter().zip(&xi_ref).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()), "ξ differs: {what}");
        assert_eq!(rng.state(), rng_ref.state(), "stream position: {what}");
        for (p, probe) in probes.iter().enumerate() {
            assert_dot(got.x_dot[p], want.x_dot[p], probe, &x, &format!("x_dot[{p}] {what}"));
            assert_dot(got.xi_dot[p], want.xi_dot[p], probe, &xi, &format!("xi_dot[{p}] {what}"));
        }
        assert_dot(got.xx, want.xx, &x, &x, &format!("xx {what}"));
        assert_dot(got.xixi, want.xixi, &xi, &xi, &format!("xixi {what}"));
        assert_dot(got.xxi, want.xxi, &x, &xi, &format!("xxi {what}"));
        (x, xi, got)
    }

    fn draw_pair_all<T: Real>() {
        let levels = SimdLevel::available();
        for d in LENGTHS {
            for n_shift in 0..=MAX_FUSED_TERMS + 1 {
                let first = check_draw_pair::<T, 3>(levels[0], d, n_shift);
                for &level in &levels[1..] {
                    let other = check_draw_pair::<T, 3>(level, d, n_shift);
                    assert!(first == other, "{} d={d} shifts={n_shift}: {:?} and {level:?} differ", T::NAME, levels[0]);
                }
            }
            check_draw_pair::<T, 0>(levels[0], d, 2);
            check_draw_pair::<T, 1>(levels[0], d, 1);
        }
    }

    #[test]
    fn draw_pair_and_project_f32_matches_its_definition_on_every_level() {
        draw_pair_all::<f32>();
    }

    #[test]
    fn draw_pair_and_project_f64_matches_its_definition_on_every_level() {
        draw_pair_all::<f64>();
    }

    fn check_combine<T: Real, const P: usize>(level: SimdLevel, d: usize, n_terms: usize) -> (Vec<T>, [f64; P], f64) {
        let term_v: Vec<Vec<T>> = (0..n_terms).map(|j| normals(300 + j as u64, d)).collect();
        let terms: Vec<(f64, &[T])> =
            term_v.iter().enumerate().map(|(j, t)| (0.01 * (j as f64 - 1.5), &t[..])).collect();
        let probe_v: Vec<Vec<T>> = (0..P).map(|p| unit(400 + p as u64, d)).collect();
        let probes: [&[T]; P] = core::array::from_fn(|p| &probe_v[p][..]);
        let w0: Vec<T> = unit(500, d);

        let mut w = w0.clone();
        let (dots, norm) = combine_and_project_at(level, &mut w, 0.9, &terms, probes);
        let mut w_ref = w0.clone();
        let (dots_ref, norm_ref) = reference::combine_and_project(&mut w_ref, 0.9, &terms, probes);

        let what = format!("{} d={d} terms={n_terms} P={P} {level:?}", T::NAME);
        assert!(w.iter().zip(&w_ref).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()), "w differs: {what}");
        for p in 0..P {
            assert_dot(dots[p], dots_ref[p], probes[p], &w, &format!("dot[{p}] {what}"));
        }
        assert_dot(norm, norm_ref, &w, &w, &format!("norm {what}"));
        (w, dots, norm)
    }

    fn combine_all<T: Real>() {
        let levels = SimdLevel::available();
        for d in LENGTHS {
            for n_terms in 0..=MAX_FUSED_TERMS + 1 {
                let first = check_combine::<T, 3>(levels[0], d, n_terms);
                for &level in &levels[1..] {
                    let other = check_combine::<T, 3>(level, d, n_terms);
                    assert!(first == other, "{} d={d} terms={n_terms}: {:?} and {level:?} differ", T::NAME, levels[0]);
                }
            }
            check_combine::<T, 0>(levels[0], d, 1);
        }
    }

    #[test]
    fn combine_and_project_f32_matches_its_definition_on_every_level() {
        combine_all::<f32>();
    }

    #[test]
    fn combine_and_project_f64_matches_its_definition_on_every_level() {
        combine_all::<f64>();
    }

    fn check_update_draw<T: Real, const P: usize>(
        level: SimdLevel,
        d: usize,
        n_terms: usize,
        n_shift: usize,
    ) -> (Vec<T>, Vec<T>, Vec<T>, UpdateDrawProjections<P>) {
        let term_v: Vec<Vec<T>> = (0..n_terms).map(|j| normals(600 + j as u64, d)).collect();
        let terms: Vec<(f64, &[T])> =
            term_v.iter().enumerate().map(|(j, t)| (0.02 - 0.01 * j as f64, &t[..])).collect();
        let shift_v: Vec<Vec<T>> = (0..n_shift).map(|j| unit(700 + j as u64, d)).collect();
        let shift: Vec<(f64, &[T])> = shift_v.iter().enumerate().map(|(j, e)| (1.5 - 0.7 * j as f64, &e[..])).collect();
        let probe_v: Vec<Vec<T>> = (0..P).map(|p| unit(800 + p as u64, d)).collect();
        let probes: [&[T]; P] = core::array::from_fn(|p| &probe_v[p][..]);
        // The previous pair in the buffers, a unit w, a generator mid-stream.
        let (x0, xi0, w0): (Vec<T>, Vec<T>, Vec<T>) = (normals(900, d), normals(901, d), unit(902, d));
        let mut rng = NormalRng::from_seed(d as u64 + 11).with_simd_level(level);
        rng.fill(&mut [T::default(); 40]);
        let mut rng_ref = rng.clone();

        // The same call without the w sums, which must change nothing else.
        let mut rng_nw = rng.clone();
        let (mut w_nw, mut x_nw, mut xi_nw) = (w0.clone(), x0.clone(), xi0.clone());
        let (alpha, pair_coef) = (0.97, (-0.03, 0.05));
        let got_nw = update_and_draw(
            &mut rng_nw,
            &mut w_nw,
            alpha,
            pair_coef,
            &terms,
            &mut x_nw,
            &mut xi_nw,
            &shift,
            probes,
            false,
        );
        let (mut w, mut x, mut xi) = (w0.clone(), x0.clone(), xi0.clone());
        let got = update_and_draw(&mut rng, &mut w, alpha, pair_coef, &terms, &mut x, &mut xi, &shift, probes, true);
        let (mut w_ref, mut x_ref, mut xi_ref) = (w0, x0, xi0);
        let want = reference::update_and_draw(
            &mut rng_ref,
            &mut w_ref,
            alpha,
            pair_coef,
            &terms,
            &mut x_ref,
            &mut xi_ref,
            &shift,
            probes,
            true,
        );

        let what = format!("{} d={d} terms={n_terms} shifts={n_shift} P={P} {level:?}", T::NAME);
        let same_bits = |a: &[T], b: &[T]| a.iter().zip(b).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits());
        assert!(same_bits(&w, &w_ref), "w differs: {what}");
        assert!(same_bits(&x, &x_ref), "x differs: {what}");
        assert!(same_bits(&xi, &xi_ref), "ξ differs: {what}");
        assert_eq!(rng.state(), rng_ref.state(), "stream position: {what}");
        assert!(same_bits(&w_nw, &w) && same_bits(&x_nw, &x) && same_bits(&xi_nw, &xi), "unmeasured w: {what}");
        assert_eq!(rng_nw.state(), rng.state(), "unmeasured w, stream position: {what}");
        assert_eq!(got_nw, UpdateDrawProjections { w: None, ..got }, "unmeasured w, sums: {what}");
        let (gw, ww) = (got.w.expect("measured"), want.w.expect("measured"));
        for (p, probe) in probes.iter().enumerate() {
            assert_dot(gw.w_dot[p], ww.w_dot[p], probe, &w, &format!("w_dot[{p}] {what}"));
            assert_dot(got.pair.x_dot[p], want.pair.x_dot[p], probe, &x, &format!("x_dot[{p}] {what}"));
            assert_dot(got.pair.xi_dot[p], want.pair.xi_dot[p], probe, &xi, &format!("xi_dot[{p}] {what}"));
        }
        assert_dot(gw.ww, ww.ww, &w, &w, &format!("ww {what}"));
        assert_dot(got.wx, want.wx, &w, &x, &format!("wx {what}"));
        assert_dot(got.wxi, want.wxi, &w, &xi, &format!("wxi {what}"));
        assert_dot(got.pair.xx, want.pair.xx, &x, &x, &format!("xx {what}"));
        assert_dot(got.pair.xixi, want.pair.xixi, &xi, &xi, &format!("xixi {what}"));
        assert_dot(got.pair.xxi, want.pair.xxi, &x, &xi, &format!("xxi {what}"));
        (w, x, xi, got)
    }

    fn update_draw_all<T: Real>() {
        let levels = SimdLevel::available();
        for d in LENGTHS {
            for n_terms in 0..=2 {
                for n_shift in [0, 1, 3, MAX_FUSED_TERMS + 1] {
                    let first = check_update_draw::<T, 3>(levels[0], d, n_terms, n_shift);
                    for &level in &levels[1..] {
                        let other = check_update_draw::<T, 3>(level, d, n_terms, n_shift);
                        assert!(first == other, "{} d={d}: {:?} and {level:?} differ", T::NAME, levels[0]);
                    }
                }
            }
            check_update_draw::<T, 0>(levels[0], d, 1, 2);
        }
    }

    /// The merged pass equals the combine pass followed by the draw pass, on every SIMD level.
    #[test]
    fn update_and_draw_f32_matches_its_definition_on_every_level() {
        update_draw_all::<f32>();
    }

    #[test]
    fn update_and_draw_f64_matches_its_definition_on_every_level() {
        update_draw_all::<f64>();
    }
}
