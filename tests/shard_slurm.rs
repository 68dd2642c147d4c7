//! A study as a real SLURM job array on a throw-away single-node cluster (munged, slurmctld and
//! slurmd from Debian's slurm-wlm and munge packages, started and stopped by this test through
//! `data/slurm/local-cluster.sh`): `submit.sh` queues 3 shard tasks and the merge job; the merged
//! store must equal an unsharded run byte for byte. Skips (with a message) when SLURM or munge is
//! not installed or the test is not running as root: `apt-get install slurm-wlm munge`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[experiment]
name = "slurm_test"
seed = 11
[model]
beta_u = 3.0
beta_v = 0.0
[train]
walkers = 4
max_samples = 2000
[observe]
n_eval = 16
[study]
dims = [24, 32, 40]
bootstrap = 40
min_success = 0.5
"#;

fn have(prog: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {prog}")]).output().is_ok_and(|o| o.status.success())
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "report") {
                    walk(root, &p, out);
                }
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Stops the cluster's daemons (by their PID files) however the test ends.
struct Cluster(PathBuf);
impl Drop for Cluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/slurm/local-cluster.sh");
        let _ = Command::new("bash").arg(script).arg("stop").arg(&self.0).status();
    }
}

#[test]
fn study_as_a_slurm_job_array_merges_to_identical_bytes() {
    let root_user =
        Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&str> =
        ["munged", "slurmctld", "slurmd", "sbatch", "squeue"].into_iter().filter(|p| !have(p)).collect();
    if !missing.is_empty() || !root_user || !Path::new("/etc/munge/munge.key").exists() {
        eprintln!(
            "SKIPPED real-SLURM test: needs root, /etc/munge/munge.key and {missing:?} (apt-get install slurm-wlm munge)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("diffexp-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/slurm");
    let cluster_dir = dir.join("cluster");
    let port = 20000 + (std::process::id() % 20000) as u16 / 2 * 2;
    let o = Command::new("bash")
        .arg(scripts.join("local-cluster.sh"))
        .arg("start")
        .arg(&cluster_dir)
        .env("SLURM_TEST_PORT", port.to_string())
        .output()
        .unwrap();
    let _guard = Cluster(cluster_dir.clone());
    assert!(o.status.success(), "cluster did not start: {}", String::from_utf8_lossy(&o.stderr));
    let conf = cluster_dir.join("slurm.conf");

    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = dir.join("study");
    let o = Command::new("bash")
        .arg(scripts.join("submit.sh"))
        .arg(&cfg)
        .arg(&out)
        .arg("3")
        .arg("--cpus-per-task=1")
        .env("SLURM_CONF", &conf)
        .env("DIFFEXP", env!("CARGO_BIN_EXE_diffexp"))
        .output()
        .unwrap();
    assert!(o.status.success(), "submit failed: {}", String::from_utf8_lossy(&o.stderr));
    let t0 = Instant::now();
    loop {
        let q = Command::new("squeue").arg("-h").env("SLURM_CONF", &conf).output().unwrap();
        if q.status.success() && q.stdout.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "jobs still queued after 180 s: {}",
            String::from_utf8_lossy(&q.stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let merged = out.join("merged");
    assert!(merged.join("report/scaling.png").exists(), "merge job produced no report; logs in {}", out.display());
    let reference = dir.join("reference");
    let o = Command::new(env!("CARGO_BIN_EXE_diffexp"))
        .args(["study", cfg.to_str().unwrap(), "--quiet", "--out"])
        .arg(&reference)
        .output()
        .unwrap();
    assert!(o.status.success());
    let (a, b) = (tree(&reference), tree(&merged));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between the SLURM-merged store and an unsharded run");
    }
    drop(_guard);
    std::fs::remove_dir_all(&dir).ok();
}
