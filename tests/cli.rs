//! The command line: bad input is rejected with the field, the value and the allowed range (exit
//! code 2, nothing written); `run --json` and `study --json` print one JSON object with the documented
//! keys.

use std::process::Command;

fn diffexp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffexp"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("diffexp-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn bad_config_names_field_and_range_and_writes_nothing() {
    let dir = tmp("bad");
    let cases = [
        ("[experiment]\nd = 1\n", "experiment.d", "d ≥ 2"),
        ("[model]\nbeta_v = -2.0\n", "model.beta_v", "≥ 0"),
        ("[observe]\nthreshold = 0.0\n", "observe.threshold", "0 < θ < 1"),
        ("[noise]\nsignal_fraction = 1.2\n", "noise.signal_fraction", "a² + s² = 1"),
        ("[denoiser]\nkind = \"tied\"\nunits = 0\n", "denoiser.units", "K ≥ 1"),
        ("[model]\ncoupling = \"diagonal\"\n", "coupling", "independent, sign, even, odd"),
        ("[train]\nbatch = 0\n", "train.batch", "B ≥ 1"),
    ];
    for (i, (text, field, allowed)) in cases.iter().enumerate() {
        let cfg = dir.join(format!("c{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let out_dir = dir.join(format!("out{i}"));
        for sub in ["run", "study"] {
            let mut cmd = diffexp();
            cmd.arg(sub).arg(&cfg);
            if sub == "study" {
                cmd.arg("--out").arg(&out_dir);
            }
            let o = cmd.output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{sub} {text}: {err}");
            assert!(err.contains(field) && err.contains(allowed), "{sub} {text}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(o.stdout.is_empty());
            assert!(!out_dir.exists(), "no partial output on bad input");
        }
    }
    let o = diffexp().args(["run", "/nonexistent/config.toml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn run_json_has_documented_keys() {
    let dir = tmp("run");
    let cfg = dir.join("run.toml");
    std::fs::write(
        &cfg,
        "[experiment]\nd = 64\n[model]\nbeta_u = 3.0\nbeta_v = 0.0\n[train]\nwalkers = 3\nmax_samples = 2000\n[observe]\nn_eval = 16\n",
    )
    .unwrap();
    let o = diffexp().args(["run", cfg.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["steps", "walkers", "d", "wall_seconds", "steps_per_second", "final_overlaps"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["d"], 64);
    assert_eq!(v["walkers"], 3);
    assert_eq!(v["steps"], 2000);
    assert_eq!(v["final_overlaps"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn study_json_has_exponents() {
    let dir = tmp("study");
    let cfg = dir.join("s.toml");
    std::fs::write(
        &cfg,
        "[experiment]\nname = \"cli_study\"\n[model]\nbeta_u = 3.0\nbeta_v = 0.0\n[train]\nwalkers = 8\nstop_when_recovered = true\n\
         [observe]\neval = false\n[study]\ndims = [32, 64]\nbootstrap = 50\nmin_success = 0.5\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o =
        diffexp().args(["study", cfg.to_str().unwrap(), "--json", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &v["exponents"][0];
    assert_eq!(e["direction"], "u");
    for key in ["slope", "ci_low", "ci_high", "success_fraction", "medians", "log_corrected_slope"] {
        assert!(e.get(key).is_some(), "missing {key}: {e}");
    }
    assert!(out.join("summary.json").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_json_reports_every_figure_and_rejects_bad_input() {
    // d = 64 runs the two-pass step, d = 16384 the merged pass (from MERGED_MIN_DIM = 512 on).
    let o = diffexp().args(["bench", "--secs", "0.02", "--dims", "64,16384", "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let num = |x: &serde_json::Value, key: &str| {
        let t = x[key].as_f64().unwrap_or_else(|| panic!("`{key}` missing in {x}"));
        assert!(t.is_finite() && t > 0.0, "`{key}` = {t}");
        t
    };
    for key in ["ns_per_normal_f32", "ns_per_normal_f64", "thread_speedup", "k8_b64_ratio"] {
        num(&v, key);
    }
    if cfg!(target_arch = "x86_64") {
        let ghz = num(&v, "core_ghz");
        assert!((0.3..10.0).contains(&ghz), "core clock {ghz} GHz");
    }
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for (s, (d, merged)) in steps.iter().zip([(64, false), (16384, true)]) {
        assert_eq!(s["d"], d);
        let (step, normals) = (num(s, "ns_per_step"), num(s, "ns_per_2d_normals"));
        assert!((num(s, "ratio_to_normals") - step / normals).abs() < 1e-9 * step / normals);
        let p = &s["passes"];
        assert_eq!(p["merged"], merged, "d = {d}");
        let run = if merged { num(p, "ns_merged_pass") } else { num(p, "ns_draw_pass") + num(p, "ns_update_pass") };
        num(p, "ns_draw_gram_only");
        let rest = p["ns_rest"].as_f64().unwrap();
        assert!((rest - (step - run)).abs() < 1e-6 * step, "rest {rest} vs {step} − {run}");
    }
    // One workload alone (for a profiler): each timed against its 2d normals.
    for (only, dims) in [("draw", [64, 100]), ("merged", [64, 100]), ("step", [100, 16384])] {
        let args = ["bench", "--only", only, "--secs", "0.01", "--json", "--dims"];
        let o = diffexp().args(args).arg(format!("{},{}", dims[0], dims[1])).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let t = v["timings"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        for (t, d) in t.iter().zip(dims) {
            assert_eq!((t["workload"].as_str(), t["d"].as_u64()), (Some(only), Some(d as u64)));
            let (call, normals) = (num(t, "ns_per_call"), num(t, "ns_per_2d_normals"));
            assert!((num(t, "ratio_to_normals") - call / normals).abs() < 1e-9 * call / normals);
        }
    }
    let o = diffexp().args(["bench", "--only", "fill"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--only") && err.contains("normals, gram-only, draw"), "{err}");
    for (args, field, allowed) in [(["--dims", "2"], "--dims", "d ≥ 3"), (["--secs", "0"], "--secs", "> 0")] {
        let o = diffexp().arg("bench").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(field) && err.contains(allowed) && !err.contains("panicked"), "{err}");
        assert!(o.stdout.is_empty());
    }
}
