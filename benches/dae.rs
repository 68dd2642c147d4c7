//! System B training throughput: online SGD steps per second of the DAE at d = 1000, r = 2 on the
//! trimodal target (SPEC §4.12 Fig. 1 workload), single thread, with the summary statistics recorded on
//! the log grid and every d/100 steps exactly as `diffexp dae train` does.
//!
//! `cargo bench --bench dae` prints one line per precision, and with `--json` a JSON object that
//! `benches/peer/dae_compare.sh` reads. Options: `--steps N` (default 100000), `--d D`.

use diffexp::dae::config::DaeConfig;
use diffexp::dae::target::Target;
use diffexp::dae::train::{NullSink, Trainer};
use diffexp::kernels::Real;

fn run<T: Real>(cfg: &DaeConfig, target: &Target) -> (f64, f64) {
    // Warm-up, then the timed run (training time ϑ = η·steps/d).
    let mut warm = cfg.clone();
    warm.theta_max = cfg.eta * 2000.0 / cfg.d as f64;
    Trainer::<T>::run(&warm, target, 0, &mut NullSink, &[]).unwrap();
    let out = Trainer::<T>::run(cfg, target, 0, &mut NullSink, &[]).unwrap();
    (out.steps as f64 / out.seconds, out.dae.b)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get =
        |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<f64>().ok());
    let json = args.iter().any(|a| a == "--json");
    let steps = get("--steps").unwrap_or(100_000.0);
    let mut cfg = DaeConfig::preset("trimodal").unwrap();
    cfg.d = get("--d").map(|v| v as usize).unwrap_or(1000);
    cfg.theta_max = cfg.eta * steps / cfg.d as f64;
    let target = Target::build(&cfg).unwrap();
    let (sps64, b64) = run::<f64>(&cfg, &target);
    let (sps32, b32) = run::<f32>(&cfg, &target);
    if json {
        println!(
            "{{\"d\": {}, \"r\": {}, \"steps\": {}, \"steps_per_second_f64\": {sps64:.1}, \"steps_per_second_f32\": {sps32:.1}, \"b_f64\": {b64}, \"b_f32\": {b32}}}",
            cfg.d, cfg.r, steps
        );
    } else {
        println!("dae online SGD, d = {}, r = {}, {} steps, 1 thread:", cfg.d, cfg.r, steps);
        println!("  f64: {sps64:.0} steps/s (final b = {b64:.5})");
        println!("  f32: {sps32:.0} steps/s (final b = {b32:.5})");
    }
}
