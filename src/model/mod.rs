//! Data models (samplers). System A's [`MixedCumulantModel`] lives here; each model answers
//! `sample_into`, `mean`, `covariance_dense` and `surrogate`.

pub mod latent;
pub mod mixed_cumulant;

pub use latent::{Coupling, NuLaw};
pub use mixed_cumulant::{GaussianSurrogate, McmParams, MixedCumulantModel, SampleShift, SpikeLayout, Spikes};
