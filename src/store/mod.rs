//! Storage of results: NPY arrays that numpy opens directly, plus JSON manifests.

pub mod npy;
