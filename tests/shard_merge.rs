//! Sharding: `study --shard i/N` for N ∈ {1, 3} on 1 and 2 threads, merged with `diffexp merge`,
//! gives a store byte-identical to an unsharded run; bad shard sets are refused. Also runs the SLURM
//! array script's task body locally (with the variables SLURM would set) and its merge step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"
[experiment]
name = "shard_test"
seed = 7
[model]
beta_m = 2.0
beta_u = 3.0
beta_v = 0.0
[train]
walkers = 5
stop_when_recovered = false
max_samples = 1500
[observe]
eval = true
n_eval = 16
[study]
dims = [24, 32, 40]
bootstrap = 40
min_success = 0.5
"#;

fn diffexp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffexp"))
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("diffexp-shard-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every file under `dir` (relative path → bytes), skipping the `report/` folder.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && p.file_name().is_some_and(|n| n == "report") {
                // Figures are derived views of the arrays compared here.
                continue;
            }
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

fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>(), "{} vs {}", a.display(), b.display());
    for (k, v) in &ta {
        assert!(v == &tb[k], "{k} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn shards_and_threads_merge_to_identical_bytes() {
    let dir = tmp("grid");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let reference = dir.join("reference");
    run(diffexp().args(["study", cfg.to_str().unwrap(), "--quiet", "--threads", "2", "--out"]).arg(&reference));
    assert!(reference.join("summary.json").exists());
    for n in [1usize, 3] {
        for threads in [1usize, 2] {
            let base = dir.join(format!("n{n}-t{threads}"));
            let shards: Vec<PathBuf> = (0..n).map(|i| base.join(format!("shard{i}"))).collect();
            for (i, s) in shards.iter().enumerate() {
                run(diffexp()
                    .args(["study", cfg.to_str().unwrap(), "--quiet", "--threads", &threads.to_string()])
                    .args(["--shard", &format!("{i}/{n}"), "--out"])
                    .arg(s));
            }
            let merged = base.join("merged");
            run(diffexp().arg("merge").args(&shards).arg("--out").arg(&merged));
            assert_same_tree(&reference, &merged);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn merge_refuses_incomplete_or_foreign_shard_sets() {
    let dir = tmp("refuse");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let shard = |i: usize, n: usize, seed: &str| {
        let p = dir.join(format!("s{i}of{n}-{seed}"));
        run(diffexp()
            .args(["study", cfg.to_str().unwrap(), "--quiet", "--seed", seed, "--shard", &format!("{i}/{n}"), "--out"])
            .arg(&p));
        p
    };
    let (a, b, c) = (shard(0, 3, "7"), shard(1, 3, "7"), shard(2, 3, "7"));
    let other = shard(2, 3, "8");
    let two = shard(1, 2, "7");
    let cases: Vec<(Vec<&PathBuf>, &str)> = vec![
        (vec![&a, &b], "missing"),
        (vec![&a, &b, &b], "twice"),
        (vec![&a, &b, &other], "same study"),
        (vec![&a, &b, &two], "different number"),
    ];
    for (k, (dirs, msg)) in cases.iter().enumerate() {
        let out = dir.join(format!("m{k}"));
        let o = diffexp().arg("merge").args(dirs).arg("--out").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(msg), "case {k}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // An unfinished shard: mark it running again.
    let m = c.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap().replace("\"complete\"", "\"running\"");
    std::fs::write(&m, text).unwrap();
    let o = diffexp().arg("merge").args([&a, &b, &c]).arg("--out").arg(dir.join("m9")).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("not complete"));
    // A rerun into an existing store without --resume is refused; with --resume it is a no-op.
    let o = diffexp()
        .args(["study", cfg.to_str().unwrap(), "--quiet", "--shard", "0/3", "--out"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    let before = tree(&a);
    run(diffexp().args(["study", cfg.to_str().unwrap(), "--quiet", "--resume", "--shard", "0/3", "--out"]).arg(&a));
    assert!(before == tree(&a));
    // Resuming with another seed is refused.
    let o = diffexp()
        .args(["study", cfg.to_str().unwrap(), "--quiet", "--resume", "--seed", "9", "--shard", "0/3", "--out"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("configuration differs"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The array script's body and the merge script, run locally with the variables SLURM sets: the
/// merged store equals an unsharded run. (A real single-node SLURM: `tests/slurm_array.rs`.)
#[test]
fn slurm_scripts_shard_and_merge_without_slurm() {
    let dir = tmp("slurm-local");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let reference = dir.join("reference");
    run(diffexp().args(["study", cfg.to_str().unwrap(), "--quiet", "--out"]).arg(&reference));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/slurm");
    let out = dir.join("study");
    for i in 0..3 {
        run(Command::new("bash")
            .arg(root.join("study-array.sbatch"))
            .env("CONFIG", &cfg)
            .env("OUT", &out)
            .env("DIFFEXP", env!("CARGO_BIN_EXE_diffexp"))
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_CPUS_PER_TASK", "1"));
    }
    run(Command::new("bash")
        .arg(root.join("merge.sbatch"))
        .env("OUT", &out)
        .env("SHARDS", "3")
        .env("DIFFEXP", env!("CARGO_BIN_EXE_diffexp")));
    let merged = out.join("merged");
    assert!(merged.join("report/scaling.png").exists());
    std::fs::remove_dir_all(merged.join("report")).unwrap();
    assert_same_tree(&reference, &merged);
    std::fs::remove_dir_all(&dir).ok();
}
