//! diffexp: how simple diffusion denoisers learn the statistics of their data.
//!
//! Data moves one way: `config` → [`model`] (sampler) → [`net`] (denoiser) → `train` (trainer) →
//! `observe` (observer) → `store` → `study` → `report`.

pub mod dae;
pub mod data;
pub mod model;
pub mod net;
pub mod rng;
pub mod store;

pub use diffexp_kernels as kernels;
