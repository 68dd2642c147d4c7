//! Criterion benchmarks of whole training steps.
//!
//! Run: `cargo bench --bench step` (add `-- --quick` for a fast pass). Reports element throughput
//! (d elements per step) for the single-direction pSGD step at d ∈ {1e3, 1e4, 1e5}, next to the time to
//! draw the step's 2d normals (its floor), and the K = 8 tied denoiser with B = 64 at d = 1e4.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use diffexp::config::Config;
use diffexp::kernels::NormalRng;
use diffexp::model::{MixedCumulantModel, Spikes};
use diffexp::net::two_layer::Tying;
use diffexp::net::{Activation, SingleDirection};
use diffexp::rng::ScalarRng;
use diffexp::train::Learner;
use diffexp::train::single::{SingleDirectionLearner, SingleDirectionSetup};
use diffexp::train::two_layer::{TwoLayerLearner, TwoLayerSetup};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn model(d: usize) -> Arc<MixedCumulantModel<f32>> {
    let p = Config::default().model.params();
    Arc::new(MixedCumulantModel::new(p, Spikes::<f32>::draw(d, Default::default(), &mut ScalarRng::from_seed(1))))
}

fn single_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_direction_step");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    for d in [1_000usize, 10_000, 100_000] {
        g.throughput(Throughput::Elements(d as u64));
        let m = model(d);
        let s = Arc::new(m.surrogate());
        let mut l = SingleDirectionLearner::new(
            m,
            s,
            SingleDirectionSetup {
                net: SingleDirection { activation: Activation::Tanh, b: 1.0 },
                a_values: vec![0.5f64.sqrt()],
                level_sum: false,
                eta: 0.2 / d as f64,
                eta_b: 0.0,
                train_b: false,
                batch: 1,
                init_seed: 1,
                data_seed: 2,
                latent_seed: 3,
                eval_seed: 4,
            },
        );
        g.bench_with_input(BenchmarkId::new("step", d), &d, |b, _| b.iter(|| black_box(l.step())));
        let mut rng = NormalRng::from_seed(5);
        let mut buf = vec![0.0f32; 2 * d];
        g.bench_with_input(BenchmarkId::new("two_d_normals", d), &d, |b, _| b.iter(|| rng.fill(black_box(&mut buf))));
    }
    g.finish();
}

fn tied_k8_b64(c: &mut Criterion) {
    let mut g = c.benchmark_group("tied_k8_b64");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    let d = 10_000;
    let m = model(d);
    let s = Arc::new(m.surrogate());
    let mut l = TwoLayerLearner::<f32>::new(
        m,
        s,
        TwoLayerSetup {
            net: Activation::Tanh,
            tying: Tying::Tied,
            units: 8,
            c0: 0.7,
            a_values: vec![0.5f64.sqrt()],
            eta: 0.01 / d as f64,
            spherical: false,
            batch: 64,
            init_seed: 1,
            data_seed: 2,
            latent_seed: 3,
            eval_seed: 4,
        },
    );
    g.throughput(Throughput::Elements((d * 64) as u64));
    g.bench_function("step_d1e4", |b| b.iter(|| black_box(l.step())));
    g.finish();
}

criterion_group!(benches, single_step, tied_k8_b64);
criterion_main!(benches);
