//! kill -9 + `--resume` gives the bytes of an uninterrupted run. The real binary is started,
//! killed with SIGKILL at several moments, checked to be a readable store whose published records
//! all equal the uninterrupted run's, resumed, and finally compared file by file.

use diffexp::observe::Record;
use diffexp::store::run::load_store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[experiment]
name = "kill_test"
seed = 5
d = 192
[model]
beta_m = 2.0
beta_u = 3.0
beta_v = 6.0
[train]
walkers = 3
max_samples = 14000
[observe]
eval = true
n_eval = 128
[study]
dims = [128, 192]
bootstrap = 40
min_success = 0.5
"#;

fn diffexp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffexp"))
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("diffexp-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn same_bits(a: &Record, b: &Record) -> bool {
    let f = |r: &Record| {
        let mut v = vec![r.samples, r.norm.to_bits(), r.skip.to_bits(), r.train_loss.to_bits()];
        v.extend(r.overlaps.iter().map(|x| x.to_bits()));
        if let Some(e) = r.eval {
            v.extend([e.data, e.surrogate, e.gap, e.data_se, e.surrogate_se, e.gap_se].iter().map(|x| x.to_bits()));
        }
        v
    };
    f(a) == f(b)
}

/// Runs `args` into `out` uninterrupted (reference) and with kills; returns how many kills hit an
/// unfinished store with some walker part-way through.
fn kill_and_resume(name: &str, args: &[&str]) -> usize {
    let dir = tmp(name);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let base = |out: &Path| {
        let mut c = diffexp();
        c.args(args).arg(&cfg).args(["--threads", "1", "--quiet", "--out"]).arg(out);
        c
    };
    let reference = dir.join("reference");
    let t0 = Instant::now();
    let o = base(&reference).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let full = t0.elapsed();
    let (_, ref_results) = load_store(&reference, true).unwrap();

    let out = dir.join("interrupted");
    let mut mid_walker_kills = 0;
    for (k, frac) in [0.2, 0.3, 0.3, 0.3].iter().enumerate() {
        let mut child = base(&out).arg("--resume").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(full.mul_f64(*frac) + Duration::from_millis(20 * k as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !out.join("manifest.json").exists() {
            continue;
        }
        // Whatever the moment of the kill, the store opens and every published record is exact.
        let (m, _) = diffexp::store::manifest::Manifest::load(&out).map(|m| (m, ())).unwrap();
        let walkers = m.walkers;
        for (i, e) in m.dims.iter().enumerate() {
            let v =
                diffexp::store::trajectory::DimView::open(&out.join(&e.dir), e.d, walkers, e.records, true).unwrap();
            for w in 0..walkers {
                let recs = v.records_of(w, 1);
                let reference = &ref_results[i * walkers + w].records;
                assert!(recs.len() <= reference.len());
                for (a, b) in recs.iter().zip(reference) {
                    assert!(same_bits(a, b), "kill {k}: d = {}, walker {w}: published record differs", e.d);
                }
                if v.status.data()[w] == 0 && !recs.is_empty() {
                    mid_walker_kills += 1;
                }
            }
        }
    }
    let o = base(&out).arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (tree(&reference), tree(&out));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{name}: {k} differs after kill -9 and resume");
    }
    std::fs::remove_dir_all(&dir).ok();
    mid_walker_kills
}

#[test]
fn study_killed_and_resumed_is_identical() {
    let hits = kill_and_resume("study", &["study"]);
    eprintln!("{hits} walker states were caught part-way by a kill");
    assert!(hits >= 1, "no kill landed in the middle of a walker; lengthen the run");
}

#[test]
fn run_killed_and_resumed_is_identical() {
    kill_and_resume("run", &["run"]);
}

/// In-process: resuming a walker from each of its checkpoints (a fresh learner restored from it)
/// reproduces the remaining records and the outcome bit for bit, for the single-direction and the
/// two-layer learners, with and without early stopping and test losses.
#[test]
fn resume_from_every_checkpoint_is_exact() {
    use diffexp::config::Config;
    use diffexp::observe::Observer;
    use diffexp::train::WalkerCheckpoint;

    #[derive(Default)]
    struct Collect {
        records: Vec<Record>,
        checkpoints: Vec<WalkerCheckpoint>,
    }
    impl Observer for Collect {
        fn on_record(&mut self, r: &Record) {
            self.records.push(*r);
        }
        fn wants_checkpoints(&self) -> bool {
            true
        }
        fn on_checkpoint(&mut self, c: &WalkerCheckpoint) {
            self.checkpoints.push(c.clone());
        }
    }
    let configs = [
        "[model]\nbeta_m = 2.0\n[train]\nmax_samples = 3000\n[observe]\nn_eval = 8\n",
        "[model]\nbeta_u = 3.0\nbeta_v = 0.0\n[train]\nmax_samples = 5000\nstop_when_recovered = true\n[observe]\neval = false\n",
        "[experiment]\nprecision = \"f64\"\n[denoiser]\nkind = \"tied\"\nunits = 2\n[train]\nmax_samples = 2000\nbatch = 2\n[observe]\nn_eval = 8\n",
    ];
    for text in configs {
        let cfg = Config::from_toml(text).unwrap();
        let d = 48;
        let run = |ckpt: Option<WalkerCheckpoint>| {
            let mut c = Collect::default();
            let out = match cfg.experiment.precision {
                diffexp::config::Precision::F32 => {
                    diffexp::study::run_job_from::<f32, _>(&cfg, d, 1, None, ckpt, &mut c)
                }
                diffexp::config::Precision::F64 => {
                    diffexp::study::run_job_from::<f64, _>(&cfg, d, 1, None, ckpt, &mut c)
                }
            }
            .unwrap();
            (out, c)
        };
        let (full_out, full) = run(None);
        assert_eq!(full.records.len(), full.checkpoints.len());
        for (k, c) in full.checkpoints.iter().enumerate() {
            let (out, part) = run(Some(c.clone()));
            assert_eq!(out, full_out, "{text}: outcome after resuming at record {k}");
            assert_eq!(part.records.len(), full.records.len() - k - 1);
            for (a, b) in part.records.iter().zip(&full.records[k + 1..]) {
                assert!(same_bits(a, b), "{text}: record after resuming at {k} differs");
            }
            assert!(part.checkpoints.iter().zip(&full.checkpoints[k + 1..]).all(|(a, b)| a == b));
        }
    }
}
