//! diffexp: how simple diffusion denoisers learn the statistics of their data.
//!
//! Data moves one way: `config` → [`model`] (sampler) → [`net`] (denoiser) → `train` (trainer) →
//! `observe` (observer) → `store` → `study` → `report`.

pub mod cli;
pub mod config;
pub mod grid;
pub mod model;
pub mod observe;
pub mod report;
pub mod net;
pub mod rng;
pub mod store;
pub mod study;
pub mod train;

pub use diffexp_kernels as kernels;
