//! Throughput of the reduced single-direction step in CPU time (robust on a shared machine, where
//! wall-clock benchmarks measure the neighbours): one walker, and 1, 2, 4 and 8 SIMD lanes, at d = 10³ and
//! d = 10⁹, and the cost of the step's 12 normals alone.
//!
//! ```text
//! cargo run --release --example reduced_speed [-- SECONDS]
//! ```

use diffexp::reduced::schedule::run_lane_steps;
use diffexp::reduced::single::{ReducedSingleLearner, ReducedSingleSetup, SingleShared, SingleWalker};
use diffexp::reduced::streams::WalkerStreams;
use diffexp::reduced::wishart::Variates;
use diffexp::train::Learner;
use std::hint::black_box;

/// CPU seconds of this (single-threaded) process from /proc (10 ms resolution).
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// Repeats `chunk` (which does `n` steps) until `secs` CPU seconds passed; steps per CPU second.
fn rate(secs: f64, n: u64, mut chunk: impl FnMut()) -> f64 {
    chunk();
    let t0 = cpu();
    let mut done = 0u64;
    while cpu() - t0 < secs {
        chunk();
        done += n;
    }
    done as f64 / (cpu() - t0)
}

fn main() {
    let secs: f64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(3.0);
    let mut s = WalkerStreams::new(5, 6);
    let normals = rate(secs, 100_000, || {
        // Four sums, so the loop is not one chain of dependent adds.
        let mut acc = [0.0; 4];
        for _ in 0..300_000 {
            for a in &mut acc {
                *a += s.normal();
            }
        }
        black_box(acc);
    });
    println!("12 normals (one step's worth): {:.3e} per CPU second ({:.1} ns)", normals, 1e9 / normals);
    for d in [1_000u64, 1_000_000_000] {
        let mut l = ReducedSingleLearner::new(ReducedSingleSetup::speed_reference(d));
        let one = rate(secs, 100_000, || {
            for _ in 0..100_000 {
                black_box(l.step());
            }
        });
        let shared = SingleShared::new(&ReducedSingleSetup::speed_reference(d));
        // Walker-steps per CPU second with L walkers in lanes (the scheduler's group widths).
        fn lanes<const L: usize>(secs: f64, shared: &SingleShared, d: u64) -> f64 {
            let mut w: [SingleWalker; L] =
                std::array::from_fn(|i| SingleWalker::new(d, 1.0, 10 + i as u64, 20 + i as u64, 30 + i as u64, 0));
            rate(secs, 100_000, || run_lane_steps::<L>(shared, &mut w, 100_000 / L as u64))
        }
        let widths = [
            (1, lanes::<1>(secs, &shared, d)),
            (2, lanes::<2>(secs, &shared, d)),
            (4, lanes::<4>(secs, &shared, d)),
            (8, lanes::<8>(secs, &shared, d)),
        ];
        let in_lanes: Vec<String> = widths
            .iter()
            .map(|(l, r)| format!("{l} lane{} {r:.3e} ({:.1} ns)", if *l > 1 { "s" } else { "" }, 1e9 / r))
            .collect();
        println!(
            "d = {d:>10}: one walker {one:.3e} steps/CPU-s ({:.1} ns); in lanes: {}",
            1e9 / one,
            in_lanes.join(", ")
        );
    }
}
