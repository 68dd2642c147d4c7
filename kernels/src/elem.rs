//! The two element types as seen by the kernels: register type, chunk of one register's worth of
//! elements, normal blocks, and accumulators that return `f64`.
//!
//! # Accumulation
//! f64 accumulates in f64 lanes. f32 accumulates products with f32 fused multiply-adds (the
//! product is exact inside the fma), but only a few of them per lane ([`FLUSH_DOT`],
//! [`FLUSH_FUSED`], [`FLUSH_TILE`]): then the f32 partial sums are widened, added into f64 lanes and
//! restarted. The rounding error is that of short f32 sums — for `dot`, measured ≤ 1e-9·Σ|a_i·b_i|
//! at d = 1e5, below the error the f32 rounding of the inputs themselves implies — at the cost of an
//! f32 kernel.
//! (Widening every product to f64 is exact but measured 1.5× slower for `dot`.) The final
//! reduction of the lanes is a fixed tree, so the result is the same on every SIMD level.

use crate::Real;
use crate::normal::{Xoshiro, block_f32, block_f64};
use crate::simd::Lanes;
use bytemuck::{Pod, Zeroable};

/// Products per f32 accumulator lane between two flushes into f64, in `dot` (which is bound by
/// loads, so flushing often costs nothing measurable).
pub(crate) const FLUSH_DOT: usize = 4;
/// The same in the fused passes. Each flush of their 7–15 accumulators costs about five vector
/// operations per accumulator: going from 8 to 32 took the merged pass from 5.82 to 5.42 vector
/// µops per element (`benches/port_budget.sh`), and measured in one run, the merged pass at
/// d = 10⁵ 138–139 → 126–129 µs and the draw pass at d = 10³ 1.20 → 1.13 µs. Partial sums of 32
/// products keep the error below 2·10⁻⁶·Σ|a_i·b_i|, as in [`FLUSH_TILE`].
pub(crate) const FLUSH_FUSED: usize = 32;
/// The same in `blas1::inner_products`, whose loop is one fma per sum and where a flush of its
/// eight sums every 8 products cost as much as the products (measured: 0.26 → 0.20 ns per element
/// and tile at d = 10³). Partial sums of 32 products keep the error below 2·10⁻⁶·Σ|a_i·b_i|.
pub(crate) const FLUSH_TILE: usize = 32;

pub(crate) trait Elem: Real {
    /// Elements per logical register: 16 (f32) or 8 (f64).
    const W: usize;
    /// Registers per block of 32 normals.
    const PER_BLOCK: usize;
    /// `[Self; W]`.
    type Chunk: Pod + Zeroable;
    type V<K: Lanes>: Copy;
    type Acc<K: Lanes>: Copy;

    fn splat<K: Lanes>(k: K, x: Self) -> Self::V<K>;
    fn load<K: Lanes>(k: K, c: &Self::Chunk) -> Self::V<K>;
    fn store<K: Lanes>(k: K, c: &mut Self::Chunk, v: Self::V<K>);
    fn vmul<K: Lanes>(k: K, a: Self::V<K>, b: Self::V<K>) -> Self::V<K>;
    /// a·b + c, one rounding.
    fn fma<K: Lanes>(k: K, a: Self::V<K>, b: Self::V<K>, c: Self::V<K>) -> Self::V<K>;
    /// The next 32 normals of `g` as registers `0..PER_BLOCK` (the rest are unspecified).
    fn block<K: Lanes>(k: K, g: &mut Xoshiro<K>) -> [Self::V<K>; 4];

    fn acc_zero<K: Lanes>(k: K) -> Self::Acc<K>;
    /// acc + a·b.
    fn acc_fma<K: Lanes>(k: K, acc: Self::Acc<K>, a: Self::V<K>, b: Self::V<K>) -> Self::Acc<K>;
    /// Moves the low-precision partial sums into the f64 lanes (no-op for f64).
    fn acc_flush<K: Lanes>(k: K, acc: Self::Acc<K>) -> Self::Acc<K>;
    /// The total, summed over lanes in a fixed order.
    fn acc_sum<K: Lanes>(k: K, acc: Self::Acc<K>) -> f64;
}

/// Sum of 8 lanes as a fixed balanced tree.
#[inline(always)]
fn sum8<K: Lanes>(k: K, v: K::D) -> f64 {
    let mut a = [0.0; 8];
    k.f64_store(&mut a, v);
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

impl Elem for f32 {
    const W: usize = 16;
    const PER_BLOCK: usize = 2;
    type Chunk = [f32; 16];
    type V<K: Lanes> = K::F;
    /// (f32 partial sums, f64 running sums).
    type Acc<K: Lanes> = (K::F, K::D);

    #[inline(always)]
    fn splat<K: Lanes>(k: K, x: f32) -> K::F {
        k.f32_splat(x)
    }
    #[inline(always)]
    fn load<K: Lanes>(k: K, c: &[f32; 16]) -> K::F {
        k.f32_load(c)
    }
    #[inline(always)]
    fn store<K: Lanes>(k: K, c: &mut [f32; 16], v: K::F) {
        k.f32_store(c, v)
    }
    #[inline(always)]
    fn vmul<K: Lanes>(k: K, a: K::F, b: K::F) -> K::F {
        k.f32_mul(a, b)
    }
    #[inline(always)]
    fn fma<K: Lanes>(k: K, a: K::F, b: K::F, c: K::F) -> K::F {
        k.f32_fma(a, b, c)
    }
    #[inline(always)]
    fn block<K: Lanes>(k: K, g: &mut Xoshiro<K>) -> [K::F; 4] {
        let [c, s] = block_f32(k, g);
        [c, s, c, s]
    }
    #[inline(always)]
    fn acc_zero<K: Lanes>(k: K) -> (K::F, K::D) {
        (k.f32_splat(0.0), k.f64_splat(0.0))
    }
    #[inline(always)]
    fn acc_fma<K: Lanes>(k: K, acc: (K::F, K::D), a: K::F, b: K::F) -> (K::F, K::D) {
        (k.f32_fma(a, b, acc.0), acc.1)
    }
    #[inline(always)]
    fn acc_flush<K: Lanes>(k: K, acc: (K::F, K::D)) -> (K::F, K::D) {
        let d = k.f64_add(k.f64_add(acc.1, k.f32_lo_to_f64(acc.0)), k.f32_hi_to_f64(acc.0));
        (k.f32_splat(0.0), d)
    }
    #[inline(always)]
    fn acc_sum<K: Lanes>(k: K, acc: (K::F, K::D)) -> f64 {
        sum8(k, Self::acc_flush(k, acc).1)
    }
}

impl Elem for f64 {
    const W: usize = 8;
    const PER_BLOCK: usize = 4;
    type Chunk = [f64; 8];
    type V<K: Lanes> = K::D;
    type Acc<K: Lanes> = K::D;

    #[inline(always)]
    fn splat<K: Lanes>(k: K, x: f64) -> K::D {
        k.f64_splat(x)
    }
    #[inline(always)]
    fn load<K: Lanes>(k: K, c: &[f64; 8]) -> K::D {
        k.f64_load(c)
    }
    #[inline(always)]
    fn store<K: Lanes>(k: K, c: &mut [f64; 8], v: K::D) {
        k.f64_store(c, v)
    }
    #[inline(always)]
    fn vmul<K: Lanes>(k: K, a: K::D, b: K::D) -> K::D {
        k.f64_mul(a, b)
    }
    #[inline(always)]
    fn fma<K: Lanes>(k: K, a: K::D, b: K::D, c: K::D) -> K::D {
        k.f64_fma(a, b, c)
    }
    #[inline(always)]
    fn block<K: Lanes>(k: K, g: &mut Xoshiro<K>) -> [K::D; 4] {
        block_f64(k, g)
    }
    #[inline(always)]
    fn acc_zero<K: Lanes>(k: K) -> K::D {
        k.f64_splat(0.0)
    }
    #[inline(always)]
    fn acc_fma<K: Lanes>(k: K, acc: K::D, a: K::D, b: K::D) -> K::D {
        k.f64_fma(a, b, acc)
    }
    #[inline(always)]
    fn acc_flush<K: Lanes>(_: K, acc: K::D) -> K::D {
        acc
    }
    #[inline(always)]
    fn acc_sum<K: Lanes>(k: K, acc: K::D) -> f64 {
        sum8(k, acc)
    }
}

/// `x` split into whole chunks and the remainder.
#[inline(always)]
pub(crate) fn chunks<E: Elem>(x: &[E]) -> (&[E::Chunk], &[E]) {
    let (c, t) = x.split_at(x.len() / E::W * E::W);
    (bytemuck::cast_slice(c), t)
}

#[inline(always)]
pub(crate) fn chunks_mut<E: Elem>(x: &mut [E]) -> (&mut [E::Chunk], &mut [E]) {
    let (c, t) = x.split_at_mut(x.len() / E::W * E::W);
    (bytemuck::cast_slice_mut(c), t)
}

/// A chunk holding `x` (at most `W` elements) followed by zeros.
#[inline(always)]
pub(crate) fn padded<E: Elem>(x: &[E]) -> E::Chunk {
    let mut c = E::Chunk::zeroed();
    as_slice_mut::<E>(&mut c)[..x.len()].copy_from_slice(x);
    c
}

#[inline(always)]
pub(crate) fn as_slice_mut<E: Elem>(c: &mut E::Chunk) -> &mut [E] {
    bytemuck::cast_slice_mut(core::slice::from_mut(c))
}

/// `x` as a slice of `E` if `T` is `E` (a no-op cast), else `None`.
#[inline(always)]
pub(crate) fn same<T: Real, E: Elem>(x: &[T]) -> Option<&[E]> {
    (core::any::TypeId::of::<T>() == core::any::TypeId::of::<E>()).then(|| bytemuck::cast_slice(x))
}

#[inline(always)]
pub(crate) fn same_mut<T: Real, E: Elem>(x: &mut [T]) -> Option<&mut [E]> {
    if core::any::TypeId::of::<T>() == core::any::TypeId::of::<E>() { Some(bytemuck::cast_slice_mut(x)) } else { None }
}
