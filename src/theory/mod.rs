//! The exact, computable theory of System A (SPEC §2.2, §2.7, §2.9, §2.10).

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
