//! NPY files of the store: the header bytes follow the NPY format specification exactly, numpy
//! (when installed) opens every array of a real store with `mmap_mode="r"` and reads the values
//! Rust wrote, and truncated, foreign or wrong-dtype files are refused with a clear error.

use diffexp::config::Config;
use diffexp::store::npy::{self, ArrayView, MappedArray};
use diffexp::store::run::{StoreOptions, load_store, run_store};
use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("diffexp-npy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The layout of the NPY format specification (version 1.0): magic "\x93NUMPY", major 1, minor 0,
/// a little-endian u16 header length, an ASCII dict literal padded with spaces and ended by '\n'
/// so that the data starts at a multiple of 64 bytes.
#[test]
fn header_bytes_follow_the_npy_spec() {
    for (descr, shape, dict) in [
        ("<f8", vec![2usize, 3], "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"),
        ("<i8", vec![7], "{'descr': '<i8', 'fortran_order': False, 'shape': (7,), }"),
        ("<f8", vec![64, 129, 6], "{'descr': '<f8', 'fortran_order': False, 'shape': (64, 129, 6), }"),
        ("<f4", vec![], "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"),
    ] {
        let h = npy::header(descr, &shape);
        assert_eq!(&h[..6], b"\x93NUMPY");
        assert_eq!((h[6], h[7]), (1, 0));
        let len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(10 + len, h.len());
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[10..10 + dict.len()], dict.as_bytes());
        assert!(h[10 + dict.len()..h.len() - 1].iter().all(|&b| b == b' '));
        assert_eq!(h[h.len() - 1], b'\n');
        assert!(h[10..].is_ascii());
    }
    // A header too long for 16 bits switches to version 2.0 with a u32 length.
    let shape = vec![1usize; 23_000];
    let h = npy::header("<f8", &shape);
    assert_eq!((h[6], h[7]), (2, 0));
    assert_eq!(12 + u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize, h.len());
    assert_eq!(h.len() % 64, 0);
    assert_eq!(npy::parse_header(&h).unwrap().shape, shape);
}

#[test]
fn mapped_arrays_publish_and_refuse_bad_files() {
    let dir = tmp("mapped");
    let p = dir.join("a.npy");
    let mut a = MappedArray::<i64>::create(&p, &[4, 3], -1).unwrap();
    a.data_mut()[5] = 42;
    a.publish(0, 9);
    drop(a);
    let v = ArrayView::<i64>::open(&p, Some(&[4, 3])).unwrap();
    assert_eq!(v.data()[0], 9);
    assert_eq!(v.data()[5], 42);
    assert_eq!(v.data()[11], -1);
    let err = |r: std::io::Result<ArrayView<i64>>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(ArrayView::open(&p, Some(&[3, 4]))).contains("shape"));
    assert!(ArrayView::<f64>::open(&p, None).err().unwrap().to_string().contains("dtype"));
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 8]).unwrap();
    assert!(err(ArrayView::open(&p, None)).contains("truncated"));
    std::fs::write(&p, &bytes[..40]).unwrap();
    assert!(err(ArrayView::open(&p, None)).contains("truncated"));
    std::fs::write(&p, b"PK\x03\x04 this is a zip file, not NPY").unwrap();
    assert!(err(ArrayView::open(&p, None)).contains("not an NPY file"));
    std::fs::write(&p, []).unwrap();
    assert!(err(ArrayView::open(&p, None)).contains("not an NPY file"));
    std::fs::remove_dir_all(&dir).ok();
}

const STUDY: &str = r#"
[experiment]
name = "npy_test"
seed = 2
[model]
beta_u = 3.0
beta_v = 0.0
[train]
walkers = 3
max_samples = 800
[observe]
n_eval = 8
[study]
dims = [24, 32]
bootstrap = 20
min_success = 0.5
"#;

fn has_numpy() -> bool {
    Command::new("python3").args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn numpy_opens_every_array_of_a_store() {
    let dir = tmp("numpy");
    let cfg = Config::from_toml(STUDY).unwrap();
    let out = dir.join("store");
    let opts = StoreOptions { out: &out, command: "study", shard: None, resume: false, durable: false };
    run_store(&cfg, &cfg.study.dims, &opts, &|_| {}, &|_| {}).unwrap();
    let (m, results) = load_store(&out, true).unwrap();
    if !has_numpy() {
        eprintln!("SKIPPED numpy cross-check: python3 with numpy is not installed (CI installs it)");
        std::fs::remove_dir_all(&dir).ok();
        return;
    }
    // numpy reports dtype, shape and selected values of every array listed in the manifest.
    let script = r#"
import json, sys, numpy as np
root = sys.argv[1]
m = json.load(open(root + "/manifest.json"))
out = {}
for e in m["dims"]:
    for a in m["arrays"]:
        x = np.load(root + "/" + e["dir"] + "/" + a["file"], mmap_mode="r")
        assert isinstance(x, np.memmap), a["file"]
        out[e["dir"] + "/" + a["file"]] = [str(x.dtype), list(x.shape)]
    ov = np.load(root + "/" + e["dir"] + "/overlaps.npy", mmap_mode="r")
    c = np.load(root + "/" + e["dir"] + "/count.npy")
    out[e["dir"] + "/last_u"] = [float(ov[w, c[w] - 1, 1]).hex() for w in range(ov.shape[0])]
print(json.dumps(out))
"#;
    let o = Command::new("python3").args(["-c", script]).arg(&out).output().unwrap();
    assert!(o.status.success(), "numpy failed: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (i, e) in m.dims.iter().enumerate() {
        for a in &m.arrays {
            let got = &v[format!("{}/{}", e.dir, a.file)];
            let shape: Vec<usize> = a
                .shape
                .iter()
                .map(|s| match s.as_str() {
                    "walkers" => m.walkers,
                    "records" => e.records,
                    n => n.parse().unwrap(),
                })
                .collect();
            let dtype = match a.dtype.as_str() {
                "<f8" => "float64",
                "<i8" => "int64",
                d => panic!("unexpected dtype {d}"),
            };
            assert_eq!(got[0], dtype, "{}", a.file);
            assert_eq!(got[1], serde_json::json!(shape), "{}", a.file);
        }
        for w in 0..m.walkers {
            let rust = results[i * m.walkers + w].records.last().unwrap().overlaps[1];
            let py = v[format!("{}/last_u", e.dir)][w].as_str().unwrap().to_string();
            assert_eq!(py, hex(rust), "d = {}, walker {w}", e.d);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Python's float.hex() of `x` (exact bits, as numpy printed them).
fn hex(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0x0.0p+0".into() } else { "0x0.0p+0".into() };
    }
    let bits = x.to_bits();
    let sign = if bits >> 63 == 1 { "-" } else { "" };
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let mant = bits & ((1u64 << 52) - 1);
    let (lead, e) = if exp == 0 { (0, -1022) } else { (1, exp - 1023) };
    let mut m = format!("{mant:013x}");
    while m.len() > 1 && m.ends_with('0') {
        m.pop();
    }
    format!("{sign}0x{lead}.{m}p{}{e}", if e >= 0 { "+" } else { "" })
}

#[test]
fn damaged_stores_are_refused_with_clear_errors() {
    let dir = tmp("damaged");
    let cfg = Config::from_toml(STUDY).unwrap();
    let out = dir.join("store");
    let opts = StoreOptions { out: &out, command: "study", shard: None, resume: false, durable: false };
    run_store(&cfg, &cfg.study.dims, &opts, &|_| {}, &|_| {}).unwrap();
    let bin = env!("CARGO_BIN_EXE_diffexp");
    let report = |what: &str| {
        let o = Command::new(bin).args(["report", "--quiet"]).arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        err
    };
    let ov = out.join("d24/overlaps.npy");
    let good = std::fs::read(&ov).unwrap();
    std::fs::write(&ov, &good[..good.len() / 2]).unwrap();
    assert!(report("truncated").contains("truncated"));
    let mut f32s = npy::header("<f4", &[3, 15, 3]);
    f32s.resize(f32s.len() + 3 * 15 * 3 * 4, 0);
    std::fs::write(&ov, &f32s).unwrap();
    assert!(report("wrong dtype").contains("dtype <f4"));
    std::fs::write(&ov, good).unwrap();
    let man = out.join("manifest.json");
    let text = std::fs::read_to_string(&man).unwrap();
    std::fs::write(&man, &text[..text.len() / 2]).unwrap();
    assert!(report("truncated manifest").contains("truncated JSON"));
    std::fs::write(&man, "{\"format\": \"something-else\"}").unwrap();
    assert!(report("foreign manifest").contains("foreign"));
    std::fs::write(&man, text.replacen("\"walkers\": 3,", "\"walkers\": 4,", 1)).unwrap();
    assert!(report("inconsistent manifest").contains("disagree"));
    std::fs::remove_dir_all(&dir).ok();
}
