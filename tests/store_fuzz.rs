//! Fuzzing of the input parsers with proptest: the NPY header parser, the TOML config loader and
//! the manifest loader return errors, never panic, on 10,000+ random and mutated inputs each.

use diffexp::config::Config;
use diffexp::store::manifest::Manifest;
use diffexp::store::npy;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};

const CASES: u32 = 10_000;

/// Random edits of `base`: byte flips, insertions, deletions and a truncation.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = base.len();
    (proptest::collection::vec((0..n.max(1), any::<u8>(), 0u8..3), 0..8), 0..=n).prop_map(move |(edits, cut)| {
        let mut b = base.clone();
        for (pos, byte, kind) in edits {
            let pos = pos.min(b.len());
            match kind {
                0 if pos < b.len() => b[pos] = byte,
                1 => b.insert(pos, byte),
                _ if pos < b.len() => {
                    b.remove(pos);
                }
                _ => {}
            }
        }
        if cut < b.len() && cut % 3 == 0 {
            b.truncate(cut);
        }
        b
    })
}

fn runner() -> TestRunner {
    TestRunner::new(PtConfig { cases: CASES, failure_persistence: None, ..PtConfig::default() })
}

#[test]
fn npy_header_parser_never_panics() {
    let mut valid = npy::header("<f8", &[64, 129, 3]);
    valid.extend_from_slice(&[0u8; 16]);
    let strategy = prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), mutated(valid)];
    runner()
        .run(&strategy, |bytes| {
            if let Ok(h) = npy::parse_header(&bytes) {
                prop_assert!(h.data_offset <= bytes.len());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn config_loader_never_panics() {
    let base = include_str!("../data/configs/staircase.toml").as_bytes().to_vec();
    let strategy = prop_oneof![
        proptest::collection::vec(any::<char>(), 0..120).prop_map(|c| c.into_iter().collect::<String>().into_bytes()),
        mutated(base)
    ];
    runner()
        .run(&strategy, |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(c) = Config::from_toml(&text) {
                prop_assert!(c.validate().is_ok());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn manifest_loader_never_panics() {
    let cfg = Config::from_toml("[study]\ndims = [16, 32]\n").unwrap();
    let m = diffexp::store::run::new_manifest(&cfg, &cfg.study.dims, "study", None);
    let base = serde_json::to_vec_pretty(&m).unwrap();
    assert!(Manifest::from_json(&base).is_ok());
    runner()
        .run(&mutated(base), |bytes| {
            let _ = Manifest::from_json(&bytes);
            Ok(())
        })
        .unwrap();
}
