//! Small-d exponent checks of System A (SPEC §2.11), fast enough for the default test run. Each
//! assertion is on a bootstrap confidence interval or a success fraction, never on a fixed number.

use diffexp::config::Config;
use diffexp::study;

fn run_study(toml: &str) -> (Config, study::StudySummary, Vec<study::WalkerResult>) {
    let mut cfg = Config::from_toml(toml).unwrap();
    study::resolve_theory_defaults(&mut cfg);
    let dims = cfg.study.dims.clone();
    let results = study::run_jobs(&cfg, &dims, true, &|_| {});
    let s = study::summarise(&cfg, &dims, &results);
    (cfg, s, results)
}

/// Covariance spike: n*_u ∝ d log d. The log-corrected slope's CI contains 1 and the raw slope lies
/// in [1, 1.3] (SPEC §2.11 item 1).
#[test]
fn covariance_spike_is_quasi_linear() {
    let (_, s, _) = run_study(
        r#"
[experiment]
name = "test_cov"
seed = 11
[model]
beta_u = 3.0
beta_v = 0.0
[train]
walkers = 64
stop_when_recovered = true
budget = { coef = 20.0, pow = 1.0, log = 1.0 }
[observe]
eval = false
[study]
dims = [64, 128, 256, 512]
bootstrap = 1000
"#,
    );
    let e = &s.exponents[0];
    assert_eq!(e.direction, "u");
    assert!(e.success_fraction.iter().all(|&f| f >= 0.95), "{:?}", e.success_fraction);
    let (lo, hi) = (e.log_corrected_ci_low.unwrap(), e.log_corrected_ci_high.unwrap());
    assert!(lo <= 1.0 && 1.0 <= hi, "log-corrected slope {:?} CI [{lo}, {hi}]", e.log_corrected_slope);
    let slope = e.slope.unwrap();
    assert!((1.0..=1.3).contains(&slope), "raw slope {slope}");
}

/// Independent latents: u is recovered within an O(d log d) budget, v is not — its overlap stays at
/// the O(d^{-1/2}) scale of a random direction (SPEC §2.11 item 3, the staircase plateau).
#[test]
fn independent_cumulant_spike_is_not_learned_in_d_log_d() {
    let (cfg, s, results) = run_study(
        r#"
[experiment]
name = "test_indep"
seed = 12
[model]
beta_u = 3.0
beta_v = 6.0
coupling = "independent"
[train]
walkers = 32
budget = { coef = 20.0, pow = 1.0, log = 1.0 }
[observe]
eval = false
directions = ["u", "v"]
[study]
dims = [128, 256]
bootstrap = 200
min_success = 0.5
"#,
    );
    let (u, v) = (&s.exponents[0], &s.exponents[1]);
    assert!(u.success_fraction.iter().all(|&f| f >= 0.95), "u: {:?}", u.success_fraction);
    assert!(v.success_fraction.iter().all(|&f| f == 0.0), "v: {:?}", v.success_fraction);
    // At the end of the budget |α_v| is still of the order of a random overlap: for a uniform unit
    // vector √d·α_v ≈ N(0,1), whose |·| has median 0.67; the median over walkers must stay below 3.
    for &d in &cfg.study.dims {
        let mut scaled: Vec<f64> = results
            .iter()
            .filter(|r| r.d == d)
            .map(|r| r.records.last().unwrap().overlaps[2].abs() * (d as f64).sqrt())
            .collect();
        scaled.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = scaled[scaled.len() / 2];
        assert!(med < 3.0, "d = {d}: median √d|α_v| = {med}");
    }
}

/// `sign`-coupled latents: v is recovered right after u, at (quasi-)linear sample complexity — no d³
/// plateau (SPEC §2.11 item 4). Raw slope of n*_v below 1.3 with its CI's upper end below 1.6.
#[test]
fn sign_coupled_cumulant_spike_follows_u() {
    let (_, s, _) = run_study(
        r#"
[experiment]
name = "test_sign"
seed = 13
[model]
beta_u = 3.0
beta_v = 6.0
coupling = "sign"
[train]
walkers = 64
stop_when_recovered = true
budget = { coef = 20.0, pow = 1.0, log = 1.0 }
[observe]
eval = false
directions = ["u", "v"]
[study]
dims = [64, 128, 256, 512]
bootstrap = 1000
"#,
    );
    let (u, v) = (&s.exponents[0], &s.exponents[1]);
    // θ_v = min(0.5, ½|α_v*|) from the population optimum (≈ 0.208 for tanh at a² = 0.5).
    assert!((0.15..0.3).contains(&v.threshold), "θ_v = {}", v.threshold);
    assert!(v.success_fraction.iter().all(|&f| f >= 0.9), "v: {:?}", v.success_fraction);
    let slope = v.slope.unwrap();
    assert!(slope < 1.3 && v.ci_high.unwrap() < 1.6, "v slope {slope} CI [{:?}, {:?}]", v.ci_low, v.ci_high);
    // "Right after u": the median n*_v is within a small factor of n*_u at every d.
    for i in 0..s.dims.len() {
        let (nu, nv) = (u.medians[i].unwrap(), v.medians[i].unwrap());
        assert!(nv >= nu * 0.5 && nv <= 4.0 * nu, "d = {}: n*_u = {nu}, n*_v = {nv}", s.dims[i]);
    }
}
