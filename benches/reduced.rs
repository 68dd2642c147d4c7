//! Criterion benchmarks of the reduced engine (SPEC §3).
//!
//! Run: `cargo bench --bench reduced` (add `-- --quick` for a fast pass). Element throughput is in
//! walker-steps: the single-direction step with three spikes, alone and in 8 SIMD lanes, at d = 10³
//! and d = 10⁹ side by side (the cost must not depend on d), next to the time to read the step's 12
//! normals from the walker's buffered `NormalRng` stream (the generator's share of a step).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use diffexp::reduced::schedule::run_lane_steps;
use diffexp::reduced::single::{ReducedSingleLearner, ReducedSingleSetup, SingleShared, SingleWalker};
use diffexp::reduced::streams::WalkerStreams;
use diffexp::reduced::wishart::Variates;
use diffexp::train::Learner;
use std::hint::black_box;
use std::time::Duration;

fn reduced(c: &mut Criterion) {
    let mut g = c.benchmark_group("reduced_single_step");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    for d in [1_000u64, 1_000_000_000] {
        g.throughput(Throughput::Elements(1000));
        let mut l = ReducedSingleLearner::new(ReducedSingleSetup::speed_reference(d));
        g.bench_with_input(BenchmarkId::new("one_walker", d), &d, |b, _| {
            b.iter(|| {
                for _ in 0..1000 {
                    black_box(l.step());
                }
            })
        });
        g.throughput(Throughput::Elements(8000));
        let shared = SingleShared::new(&ReducedSingleSetup::speed_reference(d));
        let mut walkers: [SingleWalker; 8] =
            std::array::from_fn(|i| SingleWalker::new(d, 1.0, 10 + i as u64, 20 + i as u64, 30 + i as u64, 0));
        g.bench_with_input(BenchmarkId::new("lanes8", d), &d, |b, _| {
            b.iter(|| run_lane_steps::<8>(&shared, &mut walkers, 1000))
        });
    }
    g.throughput(Throughput::Elements(1000));
    let mut s = WalkerStreams::new(5, 6);
    g.bench_function("normals_of_1000_steps", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for _ in 0..12_000 {
                acc += s.normal();
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, reduced);
criterion_main!(benches);
