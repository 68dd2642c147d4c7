//! The IDX format of MNIST-style files (SPEC §6.4): a big-endian u32 magic `0x0000_08NN` (u8 data, NN
//! dimensions), one big-endian u32 per dimension, then the row-major u8 data.

use anyhow::{Result, bail};
use std::path::Path;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Number of items (the first dimension).
    pub fn len(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements per item (product of the other dimensions).
    pub fn item_size(&self) -> usize {
        self.dims.iter().skip(1).product()
    }

    /// The `i`-th item's bytes.
    pub fn item(&self, i: usize) -> &[u8] {
        let s = self.item_size();
        &self.data[i * s..(i + 1) * s]
    }
}

/// Parses IDX bytes; only the u8 element type (0x08) is accepted.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray> {
    if bytes.len() < 4 {
        bail!("IDX: file shorter than its 4-byte magic");
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!("IDX: magic must start with two zero bytes, got {:02x}{:02x}", bytes[0], bytes[1]);
    }
    if bytes[2] != 0x08 {
        bail!("IDX: element type 0x{:02x} unsupported (only 0x08 = u8)", bytes[2]);
    }
    let nd = bytes[3] as usize;
    if nd == 0 {
        bail!("IDX: zero dimensions");
    }
    let header = 4 + 4 * nd;
    if bytes.len() < header {
        bail!("IDX: truncated header ({} dimensions need {header} bytes)", nd);
    }
    let dims: Vec<usize> =
        (0..nd).map(|k| u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().unwrap()) as usize).collect();
    let n = dims.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    let Some(n) = n else { bail!("IDX: dimensions {dims:?} overflow") };
    if bytes.len() - header != n {
        bail!("IDX: dimensions {dims:?} need {n} data bytes, file has {}", bytes.len() - header);
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Reads an IDX file.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read IDX file {}: {e}", path.display()))?;
    parse_idx(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_images_and_labels_and_rejects_bad_files() {
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        img.extend(0u8..12);
        let a = parse_idx(&img).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.item(1), &[6, 7, 8, 9, 10, 11]);
        let lab = [0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4];
        assert_eq!(parse_idx(&lab).unwrap().data, vec![5, 0, 4]);
        assert!(parse_idx(&lab[..10]).unwrap_err().to_string().contains("data bytes"));
        assert!(parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).unwrap_err().to_string().contains("unsupported"));
        assert!(parse_idx(&[1, 0, 8, 1]).is_err());
    }
}
