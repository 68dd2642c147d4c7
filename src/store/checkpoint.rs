//! Walker checkpoint files (`d{d}/checkpoints/w{walker}.ckpt`): a [`WalkerCheckpoint`] that a
//! resumed run restores bit for bit.
//!
//! Layout (little-endian):
//! ```text
//! b"DXCKPT1\n"                 8 bytes magic
//! u64 json_len                 length of the JSON part
//! JSON                         {d, walker, step, records, loss_sum, loss_n, recovery, scalars,
//!                               normals, latent, evals_done, weight_lens} (floats as IEEE bit patterns)
//! f64 × Σ weight_lens          the weights, raw
//! u64 FNV-1a of all the above  a checksum
//! ```
//! Floats are stored as bit patterns so that every value (NaN included) round-trips exactly; the
//! weights are raw because they are the bulk (d or K·d values). The file is replaced atomically.

use super::manifest::write_replace;
use crate::observe::RecoveryTracker;
use crate::rng::ScalarRng;
use crate::train::{LearnerState, WalkerCheckpoint};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

const MAGIC: &[u8; 8] = b"DXCKPT1\n";
/// Checkpoints larger than this are refused unread (the largest real one is K·d·8 bytes).
const MAX_BYTES: u64 = 1 << 34;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    d: usize,
    walker: usize,
    step: u64,
    records: usize,
    loss_sum: u64,
    loss_n: u64,
    recovery: RecoveryTracker,
    scalars: Vec<u64>,
    normals: Vec<u64>,
    latent: ScalarRng,
    evals_done: u64,
    weight_lens: Vec<usize>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Encodes a checkpoint of walker `walker` at dimension `d`.
pub fn encode(d: usize, walker: usize, c: &WalkerCheckpoint) -> Vec<u8> {
    let head = Head {
        d,
        walker,
        step: c.step,
        records: c.records,
        loss_sum: c.loss_sum.to_bits(),
        loss_n: c.loss_n,
        recovery: c.recovery.clone(),
        scalars: c.learner.scalars.iter().map(|x| x.to_bits()).collect(),
        normals: c.learner.normals.clone(),
        latent: c.learner.latent.clone(),
        evals_done: c.learner.evals_done,
        weight_lens: c.learner.weights.iter().map(Vec::len).collect(),
    };
    let json = serde_json::to_vec(&head).expect("checkpoint head serialises");
    let nw: usize = head.weight_lens.iter().sum();
    let mut out = Vec::with_capacity(8 + 8 + json.len() + 8 * nw + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for w in &c.learner.weights {
        for x in w {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Decodes a checkpoint, checking magic, checksum, lengths and that it belongs to (d, walker).
pub fn decode(bytes: &[u8], d: usize, walker: usize) -> io::Result<WalkerCheckpoint> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err(bad("not a diffexp walker checkpoint"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    if fnv1a(body) != u64::from_le_bytes(tail.try_into().expect("8 bytes")) {
        return Err(bad("checkpoint checksum mismatch (corrupt file)"));
    }
    let json_len = usize::try_from(u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")))
        .map_err(|_| bad("checkpoint head too long"))?;
    let json_end =
        16usize.checked_add(json_len).filter(|&e| e <= body.len()).ok_or_else(|| bad("truncated checkpoint head"))?;
    let head: Head =
        serde_json::from_slice(&body[16..json_end]).map_err(|e| bad(format!("malformed checkpoint head: {e}")))?;
    if head.d != d || head.walker != walker {
        return Err(bad(format!(
            "checkpoint of d = {}, walker {} found where d = {d}, walker {walker} belongs",
            head.d, head.walker
        )));
    }
    let nw = head
        .weight_lens
        .iter()
        .try_fold(0usize, |a, &b| a.checked_add(b))
        .ok_or_else(|| bad("checkpoint weight lengths overflow"))?;
    let raw = &body[json_end..];
    if nw.checked_mul(8) != Some(raw.len()) {
        return Err(bad(format!("checkpoint holds {} weight bytes, its head declares {nw} weights", raw.len())));
    }
    let mut values = raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")));
    let weights = head.weight_lens.iter().map(|&n| values.by_ref().take(n).collect()).collect();
    Ok(WalkerCheckpoint {
        step: head.step,
        records: head.records,
        loss_sum: f64::from_bits(head.loss_sum),
        loss_n: head.loss_n,
        recovery: head.recovery,
        learner: LearnerState {
            weights,
            scalars: head.scalars.into_iter().map(f64::from_bits).collect(),
            normals: head.normals,
            latent: head.latent,
            evals_done: head.evals_done,
        },
    })
}

/// Saves a checkpoint atomically (temporary file, rename; synced if `durable`).
pub fn save(path: &Path, d: usize, walker: usize, c: &WalkerCheckpoint, durable: bool) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_replace(path, &encode(d, walker, c), durable)
}

/// Loads the checkpoint at `path`, or `None` if there is none.
pub fn load(path: &Path, d: usize, walker: usize) -> io::Result<Option<WalkerCheckpoint>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(m) if m.len() > MAX_BYTES => {
            return Err(bad(format!("{}: too large for a checkpoint", path.display())));
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(path)?;
    decode(&bytes, d, walker).map(Some).map_err(|e| bad(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WalkerCheckpoint {
        let mut latent = ScalarRng::from_seed(9);
        latent.normal();
        WalkerCheckpoint {
            step: 1234,
            records: 17,
            loss_sum: f64::NAN,
            loss_n: 3,
            recovery: RecoveryTracker { thresholds: [None, Some(0.5), Some(0.25)], first: [None, Some(77), None] },
            learner: LearnerState {
                weights: vec![vec![0.1, -2.5e-300, f64::MIN_POSITIVE], vec![], vec![1.0 / 3.0]],
                scalars: vec![1.0, -0.0, f64::INFINITY],
                normals: vec![1, 2, u64::MAX],
                latent,
                evals_done: 5,
            },
        }
    }

    #[test]
    fn round_trips_bit_for_bit_and_rejects_damage() {
        let c = sample();
        let bytes = encode(64, 3, &c);
        let back = decode(&bytes, 64, 3).unwrap();
        assert_eq!(encode(64, 3, &back), bytes);
        assert!(back.loss_sum.is_nan());
        assert_eq!(back.learner.weights, c.learner.weights);
        assert!(decode(&bytes, 64, 4).unwrap_err().to_string().contains("walker"));
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], 64, 3).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(decode(&flipped, 64, 3).unwrap_err().to_string().contains("checksum"));
    }
}
