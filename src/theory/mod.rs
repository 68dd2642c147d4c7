//! The exact, computable theory of System A (SPEC §2.2, §2.7, §2.9, §2.10).
//!
//! Everything here is deterministic quadrature; nothing depends on d except the constant C₀ of the
//! loss. Data move one way:
//!
//! - [`quadrature`]: Gauss rules (Hermite up to 400 nodes, Legendre, Laguerre) and [`GaussianLine`],
//!   the split rule for ∫ f φ with discontinuities (coupling thresholds, the ReLU kink).
//! - [`latents`]: a rule for E f(λ, ν) built exactly as the sampler draws (λ, ν), and the joint
//!   moments E[λ^i ν^j].
//! - [`projection`] — the data side: E He_k(⟨w, x⟩) for any overlaps (α_m, α_u, α_v), and
//!   h_k(e) for e ∈ {m, u, v}.
//! - [`profile`] — the architecture side: the denoiser profile Ψ and its Hermite coefficients
//!   ψ_k(a, b, σ).
//! - [`population`]: the exact population loss L(w) = C₀ + E Ψ(⟨w, x⟩) of denoiser (i), its Gaussian
//!   surrogate, the closed-form affine loss, and the population optimum over span(u, v) (θ_v).
//! - [`exponent`]: the diffusion information exponent k*(e) = min{k : ψ_k h_k(e) ≠ 0}, the
//!   attraction signs, the exact expansion in α_v once u is learned, and the [`ExponentReport`]
//!   printed before training.
//! - [`drift`]: the drift heuristic of §2.10 (c_k, escape times, the shrinkage constant C).
//!
//! ```
//! use diffexp::model::{Coupling, McmParams, NuLaw};
//! use diffexp::net::Activation;
//! use diffexp::theory::{exponent_report, psi_coefficients};
//!
//! let a = 0.5f64.sqrt(); // signal fraction a² = 0.5
//! let psi = psi_coefficients(Activation::Tanh, a, 1.0, 4);
//! assert!((psi[2] + 0.3374).abs() < 1e-3 && psi[3].abs() < 1e-12);
//!
//! let params = McmParams {
//!     beta_m: 0.0,
//!     beta_u: 3.0,
//!     beta_v: 6.0,
//!     nu_law: NuLaw::Rademacher,
//!     coupling: Coupling::Independent,
//! };
//! let report = exponent_report(&params, Activation::Tanh, a, 1.0);
//! let k: Vec<_> = report.directions.iter().map(|d| (d.direction.as_str(), d.k_star)).collect();
//! assert_eq!(k, [("u", Some(2)), ("v", Some(4))]);
//! println!("{report}");
//! ```

// Loops over Hermite orders k index several arrays at once, as the formulas do.
#![allow(clippy::needless_range_loop)]

pub mod drift;
pub mod exponent;
pub mod hermite;
pub mod latents;
pub mod population;
pub mod profile;
pub mod projection;
pub mod quadrature;

pub use drift::{
    drift_coefficient, escape_delta_bound, escape_time, gradient_noise_constant, gradient_noise_constant_mc,
};
pub use exponent::{
    ConditionalExpansion, DirectionExponent, ExponentReport, conditional_drive_exact, conditional_drive_series,
    data_exponent, diffusion_information_exponent, exponent_report,
};
pub use population::{
    PopulationLoss, affine_loss, default_theta_v, optimal_uv_overlaps, population_loss, surrogate_loss,
};
pub use profile::{DenoiserProfile, psi_coefficients, psi_coefficients_levels};
pub use projection::{
    ProjectedMoments, Spike, direction_hermite_moments, projected_hermite_moments, projected_hermite_moments_explicit,
};
pub use quadrature::{GaussRule, GaussianLine};
