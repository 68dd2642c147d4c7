//! System B of the SPEC (§4): the solvable two-layer denoising autoencoder of Cui, Pehlevan and Lu
//! (arXiv:2501.03937), simulated at full dimension and integrated through its summary-statistic ODEs.
//!
//! Data moves one way:
//! [`config::DaeConfig`] → [`target::Target`] (the data law ρ) → [`net::Dae`] (f(x) = b x + w σ(wᵀx/√d)/√d)
//! → [`train::Trainer`] (online SGD, §4.3) → [`train::StatsSink`] (summary statistics M, 𝒬, Q, b, G on
//! the log grid, §4.4) → `.npy` files. The theory side runs [`ode`] (§4.5–4.7) from the simulation's
//! own w(0); [`generate`] drives the probability-flow ODE / SDE with a trained DAE and transports the
//! low-dimensional Z = wᵀX/√d (§4.8); [`hellinger`] compares 1-D marginals (§4.9); [`collapse`] retrains
//! on generated data (§4.11); [`figures`] draws the paper's figures; [`cli`] is `diffexp dae`.
//!
//! ```
//! use diffexp::dae::{config::DaeConfig, target::Target, train::{Trainer, MemorySink}};
//! let mut cfg = DaeConfig::preset("trimodal").unwrap();
//! cfg.d = 200;
//! cfg.theta_max = 0.5;
//! let target = Target::build(&cfg).unwrap();
//! let mut sink = MemorySink::default();
//! let dae = Trainer::<f64>::run(&cfg, &target, 0, &mut sink, &[]).unwrap().dae;
//! assert_eq!(dae.r, 2);
//! assert!(sink.records.last().unwrap().b > 0.0);
//! ```

pub mod cli;
pub mod collapse;
pub mod config;
pub mod figures;
pub mod generate;
pub mod hellinger;
pub mod linalg;
pub mod net;
pub mod ode;
pub mod quadrature;
pub mod target;
pub mod train;

/// System id of System B in every random stream name (SPEC §1 "Seeds").
pub const SYSTEM_ID: u64 = 2;
