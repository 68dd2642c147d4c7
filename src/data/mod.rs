//! Real data sets fetched offline (SPEC §6.4): an IDX reader ([`idx::read_idx`]), sha256 checks
//! ([`checksum`]) and the [`mnist::Mnist`] loader over the cache filled by `data/fetch_data.sh`.
//! Nothing here downloads: a missing file is an error that names the fetch script.

pub mod checksum;
pub mod idx;
pub mod mnist;

use std::path::PathBuf;

/// The data cache: `$DIFFEXP_DATA` if set, else `data/cache` under the crate root.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DIFFEXP_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join("cache"),
    }
}
