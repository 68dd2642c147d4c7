//! Per-d summaries of recovery times with censoring (SPEC §2.8).

use serde::{Deserialize, Serialize};

/// Recovery times of the walkers at one d, censored at `budget` (samples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoverySample {
    pub d: usize,
    /// n* per walker; `None` = not recovered by `budget`.
    pub times: Vec<Option<u64>>,
    pub budget: u64,
}

impl RecoverySample {
    /// f_d, the fraction of walkers that recovered.
    pub fn success_fraction(&self) -> f64 {
        self.times.iter().filter(|t| t.is_some()).count() as f64 / self.times.len() as f64
    }

    /// Survival-aware q-quantile (see [`survival_quantile`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        survival_quantile(&self.times, q)
    }
}

/// The q-quantile of recovery times with common censoring: the Kaplan–Meier quantile
/// inf{t : F̂(t) > q}, which is the (⌊qn⌋+1)-th order statistic after setting censored values to +∞.
/// It is defined iff more than a fraction q of the walkers recovered (for the median: f_d > ½).
pub fn survival_quantile(times: &[Option<u64>], q: f64) -> Option<f64> {
    let n = times.len();
    if n == 0 {
        return None;
    }
    let k = (q * n as f64).floor() as usize; // 0-based index of the (⌊qn⌋+1)-th value
    if k >= n {
        return None;
    }
    let mut done: Vec<u64> = times.iter().flatten().copied().collect();
    if done.len() <= k {
        return None;
    }
    done.sort_unstable();
    Some(done[k] as f64)
}

/// Kaplan–Meier estimate of F(t) = P(n* ≤ t) at the distinct event times (for tests and reports).
pub fn kaplan_meier(times: &[Option<u64>]) -> Vec<(u64, f64)> {
    let mut events: Vec<u64> = times.iter().flatten().copied().collect();
    events.sort_unstable();
    let n = times.len() as f64;
    let mut at_risk = n;
    let mut surv = 1.0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let t = events[i];
        let mut deaths = 0.0;
        while i < events.len() && events[i] == t {
            deaths += 1.0;
            i += 1;
        }
        surv *= 1.0 - deaths / at_risk;
        at_risk -= deaths;
        out.push((t, 1.0 - surv));
    }
    out
}

/// The q-quantile of recovery times when each walker is censored at its own time: `obs` holds
/// (time, recovered) per walker — the recovery time, or the time up to which it was watched
/// without recovering. The Kaplan–Meier estimate F̂(t) = 1 − Π_{t_i ≤ t} (1 − deaths_i/at-risk_i),
/// where a walker censored at c is at risk for t ≤ c (a censoring tied with a recovery counts
/// after it); the quantile is inf{t : F̂(t) > q}, `None` while F̂ has not passed q. With one
/// common censoring time it equals [`survival_quantile`].
pub fn km_quantile(obs: &[(u64, bool)], q: f64) -> Option<f64> {
    let mut sorted = obs.to_vec();
    // At a tie, recoveries first: the censored walker was still at risk.
    sorted.sort_unstable_by_key(|&(t, rec)| (t, !rec));
    let mut at_risk = sorted.len() as f64;
    let mut surv = 1.0;
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        let (mut deaths, mut gone) = (0.0, 0.0);
        while i < sorted.len() && sorted[i].0 == t {
            if sorted[i].1 {
                deaths += 1.0;
            }
            gone += 1.0;
            i += 1;
        }
        if deaths > 0.0 {
            surv *= 1.0 - deaths / at_risk;
            if 1.0 - surv > q + 1e-12 {
                return Some(t as f64);
            }
        }
        at_risk -= gone;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::ScalarRng;

    /// SPEC §7 item 30: the median equals the Kaplan–Meier median, and is undefined iff f_d ≤ ½.
    #[test]
    fn quantile_matches_kaplan_meier_and_censoring_rule() {
        let mut rng = ScalarRng::from_seed(1);
        for n in [7usize, 10, 64] {
            for censor_frac in [0.0, 0.2, 0.45, 0.5, 0.55, 0.8] {
                let times: Vec<Option<u64>> = (0..n)
                    .map(|_| if rng.uniform() < censor_frac { None } else { Some(1 + rng.below(1000)) })
                    .collect();
                let f = times.iter().filter(|t| t.is_some()).count() as f64 / n as f64;
                let med = survival_quantile(&times, 0.5);
                assert_eq!(med.is_some(), f > 0.5, "n={n} f={f}");
                if let Some(m) = med {
                    let km = kaplan_meier(&times);
                    let km_med = km.iter().find(|(_, fhat)| *fhat > 0.5 + 1e-12).map(|(t, _)| *t as f64);
                    assert_eq!(Some(m), km_med, "n={n}");
                }
            }
        }
        // km_quantile agrees with the common-censoring rule when every censoring is at the budget.
        for n in [7usize, 10, 64] {
            for censor_frac in [0.0, 0.3, 0.5, 0.7] {
                let times: Vec<Option<u64>> = (0..n)
                    .map(|_| if rng.uniform() < censor_frac { None } else { Some(1 + rng.below(1000)) })
                    .collect();
                let obs: Vec<(u64, bool)> = times.iter().map(|t| t.map_or((1000, false), |t| (t, true))).collect();
                assert_eq!(km_quantile(&obs, 0.5), survival_quantile(&times, 0.5), "n={n}");
            }
        }
        // Exactly half recovered: undefined.
        let half = [Some(1), Some(2), None, None];
        assert_eq!(survival_quantile(&half, 0.5), None);
        assert_eq!(survival_quantile(&[Some(5), Some(1), Some(3)], 0.5), Some(3.0));
    }

    /// Heterogeneous censoring by hand: times 2, 4 (censored at 3 and 5 in between), 6, 8. At 2:
    /// F̂ = 1/6; at 4 (at risk 4): S = 5/6·3/4 = 0.625; at 6 (at risk 2): S = 0.3125, F̂ = 0.6875.
    #[test]
    fn km_quantile_with_individual_censoring() {
        let obs = [(2, true), (3, false), (4, true), (5, false), (6, true), (8, true)];
        assert_eq!(km_quantile(&obs, 0.5), Some(6.0));
        assert_eq!(km_quantile(&obs, 0.3), Some(4.0));
        assert_eq!(km_quantile(&obs, 0.1), Some(2.0));
        // Still censored beyond the median: undefined.
        assert_eq!(km_quantile(&[(2, true), (3, false), (3, false), (9, false)], 0.5), None);
    }
}
