//! Denoisers. Every denoiser answers `forward`, `loss` and `gradient` (SPEC §2.5).

pub mod activation;

pub use activation::Activation;
