//! SIMD kernels for diffexp. This crate knows nothing about models: it fills vectors with standard
//! normals, takes dot products, and runs fused "linear combination + projections" passes over
//! d-length vectors.
//!
//! - [`NormalRng`] is a multi-lane xoshiro256++ stream that fills slices with N(0,1) variates. The
//!   output for a given seed and call sequence is the same on every SIMD level.
//! - [`blas1`] has `dot`, `axpy`, `nrm2_sq`, `scale`.
//! - [`fused`] has the two passes an online SGD step is made of: draw a fresh (sample, noise) pair and
//!   project it on a few probe vectors ([`fused::draw_pair_and_project`]), then update a vector as a
//!   linear combination and project the result ([`fused::combine_and_project`]).
//! - [`reference`] has slow, obvious versions of the same operations, for tests.
//!
//! ```
//! use diffexp_kernels::{NormalRng, blas1};
//! let mut rng = NormalRng::from_seed(7);
//! let mut z = vec![0.0f32; 1000];
//! rng.fill(&mut z);
//! let norm2 = blas1::nrm2_sq(&z);
//! assert!((norm2 / 1000.0 - 1.0).abs() < 0.2);
//! ```

pub mod blas1;
mod elem;
pub mod fused;
mod normal;
mod real;
pub mod reference;
mod rng;
mod simd;

pub use real::Real;
pub use rng::{BLOCK, LANES, NormalRng, STATE_WORDS};
pub use simd::SimdLevel;
