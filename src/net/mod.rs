//! Denoisers. Every denoiser answers `forward`, `loss` and `gradient` (SPEC §2.5).
//!
//! - [`SingleDirection`]: D_w(x_t) = a x_t + b w σ(⟨w, x_t⟩), trained by projected SGD on the sphere.
//! - [`TwoLayer`]: the K-unit denoiser with skip, tied (ii) or untied (iii).

pub mod activation;
pub mod single;
pub mod two_layer;

pub use activation::Activation;
pub use single::SingleDirection;
pub use two_layer::TwoLayer;
