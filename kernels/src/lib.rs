//! SIMD kernels for diffexp. This crate knows nothing about models: it fills vectors with standard
//! normals, takes dot products, and runs fused "linear combination + projections" passes over
//! d-length vectors.
//!
//! - [`NormalRng`] is a 16-lane xoshiro256++ stream that fills slices with N(0,1) variates
//!   (vectorised generator and branch-free Box–Muller; f32 is the fast path, f64 the accurate
//!   validation path). Its [`NormalRng::state`] checkpoints and restores the stream exactly.
//! - [`blas1`] has `dot`, `axpy`, `nrm2_sq`, `scale`.
//! - [`fused`] has the two passes an online SGD step is made of: draw a fresh (sample, noise) pair and
//!   project it on a few probe vectors ([`fused::draw_pair_and_project`]), then update a vector as a
//!   linear combination and project the result ([`fused::combine_and_project`]). Each is one loop
//!   over d: the normals are generated in registers and never re-read.
//! - [`reference`](mod@reference) has slow, obvious versions of the same operations, for tests.
//!
//! Vectors are `&[T]` with `T: `[`Real`] (`f32` by default, `f64` for validation); every summary
//! (dot product, norm) comes back as `f64`.
//!
//! # SIMD dispatch
//! Kernels run at the best of AVX-512 (x86-64-v4), AVX2 + FMA (x86-64-v3) and a portable scalar
//! fallback that the CPU supports ([`SimdLevel::detect`], checked at run time through `pulp`; a
//! [`NormalRng`] fixes its level when built, and [`NormalRng::with_simd_level`] overrides it).
//! The kernels are written once, over *logical* 512-bit registers (16×f32, 8×f64, 8×u64) that
//! AVX-512 holds in one register, AVX2 in two and the fallback in an array.
//!
//! # Determinism
//! For a given seed and sequence of calls, every kernel returns the same bits on every SIMD level:
//! the logical width and the order of every operation — including the summation order of dot
//! products — are fixed, and only exactly specified operations are used (IEEE-754 arithmetic with
//! fused multiply-adds and correctly rounded `sqrt`/`div`, integer and bit operations, no
//! approximate instructions, `log`/`sin`/`cos` as this crate's own polynomials). The element-wise
//! results of `axpy`, `scale` and the vectors written by the fused passes equal those of the
//! [`reference`](mod@reference) loops bit for bit; accumulations differ from them only by
//! summation order. Tests force each level and compare.
//!
//! ```
//! use diffexp_kernels::{NormalRng, blas1};
//! let mut rng = NormalRng::from_seed(7);
//! let mut z = vec![0.0f32; 1000];
//! rng.fill(&mut z);
//! let norm2 = blas1::nrm2_sq(&z);
//! assert!((norm2 / 1000.0 - 1.0).abs() < 0.2);
//! ```
//!
//! A fused step, checked against its definition:
//!
//! ```
//! use diffexp_kernels::{NormalRng, fused, reference};
//! let d = 1000;
//! let u: Vec<f32> = (0..d).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
//! let (mut x, mut xi) = (vec![0.0f32; d], vec![0.0f32; d]);
//! let mut rng = NormalRng::from_seed(1);
//! let mut rng_ref = rng.clone();
//! // x = z + 2·u, projections on u.
//! let got = fused::draw_pair_and_project(&mut rng, &mut x, &mut xi, &[(2.0, &u)], [&u]);
//! let (mut x_ref, mut xi_ref) = (vec![0.0f32; d], vec![0.0f32; d]);
//! let want = reference::draw_pair_and_project(&mut rng_ref, &mut x_ref, &mut xi_ref, &[(2.0, &u)], [&u]);
//! assert_eq!((x, xi), (x_ref, xi_ref));
//! assert_eq!(got.x_dot, want.x_dot);
//! assert!((got.xx - want.xx).abs() < 1e-6 * want.xx);
//! ```

mod aligned;
pub mod blas1;
mod elem;
pub mod fused;
mod normal;
mod real;
pub mod reference;
mod rng;
mod simd;

pub use aligned::AlignedVec;
pub use real::Real;
pub use rng::{BLOCK, LANES, NormalRng, STATE_WORDS};
pub use simd::SimdLevel;

/// The SIMD level the kernels dispatch to on this machine (for reports).
pub fn simd_level() -> String {
    format!("{:?}", SimdLevel::detect())
}
