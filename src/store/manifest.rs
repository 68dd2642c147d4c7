//! The store manifest (`OUT/manifest.json`): what produced the arrays (configuration, seed, git
//! revision, shard), what each array holds (shape, column names, units) and whether the run is
//! complete. It is written atomically and only after the arrays it describes exist, so a directory
//! with a manifest is always a readable store.

use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// `format` of every manifest this crate writes.
pub const FORMAT: &str = "diffexp-store";
/// Layout version; bumped whenever a file's meaning changes.
pub const VERSION: u32 = 1;
/// The manifest's file name inside a store directory.
pub const MANIFEST: &str = "manifest.json";
/// Manifests larger than this are refused unread (a real one is a few kB).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// The git revision this binary was built from.
pub const GIT_REVISION: &str = env!("DIFFEXP_GIT_REVISION");

/// A run state a manifest can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreState {
    /// Jobs may be unfinished; continue with `--resume`.
    Running,
    /// Every job of this store (of this shard, for a shard) has finished.
    Complete,
}

/// Which jobs a store runs: job j (in the order d-major, then walker) belongs to shard j mod count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses "i/N" with 0 ≤ i < N.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("shard `{s}`: expected i/N, e.g. 0/4"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("shard `{s}`: i is not a non-negative integer"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("shard `{s}`: N is not a positive integer"))?;
        if count == 0 || index >= count {
            return Err(format!("shard `{s}`: need 0 ≤ i < N"));
        }
        Ok(Self { index, count })
    }

    /// Does job number `job` belong to this shard?
    pub fn owns(&self, job: usize) -> bool {
        job % self.count == self.index
    }
}

/// One array file in every `d{d}/` directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArraySpec {
    pub file: String,
    /// numpy dtype descriptor.
    pub dtype: String,
    /// Axis names; "walkers" and "records" are sized per d (see `dims`), numbers are fixed.
    pub shape: Vec<String>,
    /// Names of the last axis' entries, when it is a column axis.
    pub columns: Vec<String>,
    pub units: String,
    pub description: String,
}

/// One dimension of the study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimEntry {
    pub d: usize,
    /// Directory relative to the store.
    pub dir: String,
    /// Record points on the log grid (the "records" axis).
    pub records: usize,
    pub max_steps: u64,
    pub max_samples: u64,
    /// Per-step learning rate η (already scaled for the batch).
    pub step_eta: f64,
}

/// The manifest of a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// "study" or "run".
    pub command: String,
    pub git_revision: String,
    pub experiment: String,
    pub seed: u64,
    /// Walkers per d.
    pub walkers: usize,
    /// Samples per step.
    pub batch: usize,
    pub shard: Option<Shard>,
    pub state: StoreState,
    /// How a record becomes visible (see the module docs of `diffexp::store`).
    pub publication: String,
    pub dims: Vec<DimEntry>,
    pub arrays: Vec<ArraySpec>,
    /// The full configuration (`experiment.threads` stored as 0: results do not depend on it).
    pub config: Config,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {msg}", path.display()))
}

/// Writes `bytes` to `path` atomically and durably: temporary file, sync, rename, sync directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, true)
}

/// Replaces `path` by `bytes` through a temporary file and a rename, so that readers (and a
/// process killed at any moment) see the old or the new contents, never a mix. With `durable`,
/// also syncs the file and its directory so that this holds across a machine crash.
pub fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if !durable {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        // Makes the rename itself durable; not every filesystem allows syncing a directory.
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Manifest {
    /// Saves to `dir/manifest.json` atomically.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        text.push('\n');
        write_atomic(&dir.join(MANIFEST), text.as_bytes())
    }

    /// Loads and checks `dir/manifest.json`: a diffexp store of this layout version whose
    /// configuration is valid and whose per-d entries match it.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let path = dir.join(MANIFEST);
        let len =
            std::fs::metadata(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?.len();
        if len > MAX_MANIFEST_BYTES {
            return Err(bad(&path, format!("{len} bytes is too large for a diffexp manifest")));
        }
        let bytes = std::fs::read(&path)?;
        Self::from_json(&bytes).map_err(|e| bad(&path, e))
    }

    /// Parses and checks manifest text (see [`Manifest::load`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a diffexp store manifest (invalid or truncated JSON: {e})"))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(format!("foreign manifest: format \"{other}\", expected \"{FORMAT}\""));
            }
            None => {
                return Err(format!("foreign manifest: no \"format\": \"{FORMAT}\" field"));
            }
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == VERSION as u64 => {}
            v => {
                return Err(format!("store layout version {v:?}; this build reads version {VERSION}"));
            }
        }
        let m: Manifest = serde_json::from_value(value).map_err(|e| format!("malformed diffexp manifest: {e}"))?;
        m.config.validate().map_err(|e| format!("manifest holds an {e}"))?;
        m.check_consistent()?;
        Ok(m)
    }

    /// The per-d entries agree with the configuration, and the shard is well formed.
    fn check_consistent(&self) -> Result<(), String> {
        if self.walkers != self.config.train.walkers || self.batch != self.config.train.batch {
            return Err("manifest walkers/batch disagree with its config".into());
        }
        if let Some(s) = self.shard {
            if s.count == 0 || s.index >= s.count {
                return Err(format!("manifest shard {}/{} is not 0 ≤ i < N", s.index, s.count));
            }
        }
        if self.dims.is_empty() {
            return Err("manifest lists no dimensions".into());
        }
        for e in &self.dims {
            let steps = self.config.train.max_steps(e.d);
            let records = crate::grid::log_grid(steps, self.config.observe.grid_per_decade).len();
            if e.max_steps != steps || e.records != records || e.dir != dim_dir_name(e.d) {
                return Err(format!("manifest entry for d = {} disagrees with its config", e.d));
            }
        }
        Ok(())
    }

    /// The directory of dimension entry `e`.
    pub fn dim_path(&self, store: &Path, e: &DimEntry) -> PathBuf {
        store.join(&e.dir)
    }
}

/// `d{d}`: the directory of dimension d inside a store.
pub fn dim_dir_name(d: usize) -> String {
    format!("d{d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!(Shard::parse("2/5").unwrap(), Shard { index: 2, count: 5 });
        for bad in ["5/5", "1", "a/2", "0/0", "-1/3", "1/x"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let s = Shard { index: 1, count: 3 };
        assert_eq!((0..9).filter(|&j| s.owns(j)).collect::<Vec<_>>(), vec![1, 4, 7]);
    }

    #[test]
    fn foreign_and_truncated_manifests_are_refused() {
        assert!(Manifest::from_json(b"{\"format\": \"zarr\"}").unwrap_err().contains("foreign"));
        assert!(Manifest::from_json(b"[1, 2]").unwrap_err().contains("foreign"));
        assert!(Manifest::from_json(b"{\"format\": \"diffexp-store\", \"ver").unwrap_err().contains("truncated"));
        assert!(
            Manifest::from_json(b"{\"format\": \"diffexp-store\", \"version\": 99}").unwrap_err().contains("version")
        );
        assert!(
            Manifest::from_json(b"{\"format\": \"diffexp-store\", \"version\": 1}").unwrap_err().contains("malformed")
        );
    }
}
