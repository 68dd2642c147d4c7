//! diffexp: how simple diffusion denoisers learn the statistics of their data, from easy
//! (pair-wise correlations) to hard (higher-order cumulants).
//!
//! Data moves one way through the crate:
//!
//! 1. [`config`] — a TOML [`config::Config`], validated field by field;
//! 2. [`model`] — the sampler, e.g. [`model::MixedCumulantModel`] (spikes in the mean, the
//!    covariance and the fourth cumulant) with its Gaussian surrogate;
//! 3. [`net`] — the denoiser: [`net::SingleDirection`] or the K-unit [`net::TwoLayer`];
//! 4. [`train`] — a [`train::Learner`] takes online SGD steps with fresh samples and noise;
//!    [`train::run_walker`] drives it over the log grid and checks recovery after every step;
//! 5. [`observe`] — an [`observe::Observer`] receives the records (in memory, on disk, …);
//! 6. [`store`] — NPY files numpy opens directly;
//! 7. [`study`] — walkers × dimensions → recovery times → fitted exponents with bootstrap CIs;
//!    [`theory`] gives the exact population loss, the Hermite profile ψ_k and the diffusion
//!    information exponent k* that the measured exponents are compared with;
//! 8. [`cli`] — the `diffexp` command that prints and writes the report.
//!
//! The d-length work (normal generation, dot products, the fused step passes) lives in the
//! [`kernels`] crate, which knows nothing about models.
//!
//! ```
//! use diffexp::config::Config;
//! use diffexp::study;
//!
//! // The covariance spike alone, two small dimensions, a few walkers.
//! let cfg = Config::from_toml(r#"
//!     [model]
//!     beta_u = 3.0
//!     beta_v = 0.0
//!     [train]
//!     walkers = 4
//!     stop_when_recovered = true
//!     [observe]
//!     eval = false
//!     [study]
//!     dims = [32, 64]
//!     bootstrap = 100
//!     min_success = 0.5
//! "#).unwrap();
//! let results = study::run_jobs(&cfg, &cfg.study.dims, false, &|_| {});
//! let summary = study::summarise(&cfg, &cfg.study.dims, &results);
//! assert_eq!(summary.exponents[0].direction, "u");
//! assert!(summary.exponents[0].success_fraction.iter().all(|&f| f > 0.5));
//! ```

pub mod bench;
pub mod cli;
pub mod config;
pub mod dae;
pub mod data;
pub mod grid;
pub mod model;
pub mod net;
pub mod observe;
pub mod reduced;
pub mod report;
pub mod rng;
pub mod store;
pub mod study;
pub mod theory;
pub mod train;

pub use diffexp_kernels as kernels;
