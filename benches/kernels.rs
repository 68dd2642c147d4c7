//! Throughput of the `diffexp-kernels` kernels at d ∈ {1e3, 1e4, 1e5}.
//!
//! Run (from the workspace root; each group takes a few seconds):
//!
//! ```text
//! cargo bench --bench kernels -j 2                 # everything
//! cargo bench --bench kernels -j 2 -- normal_fill  # one group (a regex on the benchmark id)
//! ```
//!
//! Throughput is in elements (one element = one coordinate of d), so criterion's `elem/s` is
//! d-coordinates per second: for `normal_fill` that is normals per second; for `dot` and `axpy`
//! multiply by the bytes touched per element (2·size_of::<T>() for `dot`, 3· for `axpy`) for
//! bandwidth; for the fused passes invert it for ns per coordinate (`inner_products_8x129`: per
//! coordinate of all 129 columns). The detected SIMD level is
//! printed first; `normal_fill_levels` compares all levels this CPU has.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use diffexp_kernels::{AlignedVec, NormalRng, Real, SimdLevel, blas1, fused};
use std::hint::black_box;
use std::time::Duration;

const DIMS: [usize; 3] = [1_000, 10_000, 100_000];

fn configured<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    g
}

fn normals<T: Real>(seed: u64, d: usize) -> Vec<T> {
    let mut v = vec![T::default(); d];
    NormalRng::from_seed(seed).fill(&mut v);
    v
}

/// A unit vector, as the probes and shifts of the engine are.
fn unit<T: Real>(seed: u64, d: usize) -> Vec<T> {
    let v: Vec<T> = normals(seed, d);
    let n = blas1::nrm2_sq(&v).sqrt();
    v.iter().map(|x| T::from_f64(x.to_f64() / n)).collect()
}

fn normal_fill(c: &mut Criterion) {
    eprintln!("diffexp-kernels: detected SIMD level {}", SimdLevel::detect().name());
    let mut g = configured(c, "normal_fill");
    for d in DIMS {
        g.throughput(Throughput::Elements(d as u64));
        let mut rng = NormalRng::from_seed(1);
        let mut z32 = vec![0.0f32; d];
        g.bench_with_input(BenchmarkId::new("f32", d), &d, |b, _| b.iter(|| rng.fill(black_box(&mut z32[..]))));
        let mut z64 = vec![0.0f64; d];
        g.bench_with_input(BenchmarkId::new("f64", d), &d, |b, _| b.iter(|| rng.fill(black_box(&mut z64[..]))));
    }
    g.finish();

    let mut g = configured(c, "normal_fill_levels");
    let d = 10_000;
    g.throughput(Throughput::Elements(d as u64));
    for level in SimdLevel::available() {
        let mut rng = NormalRng::from_seed(1).with_simd_level(level);
        let mut z32 = vec![0.0f32; d];
        g.bench_function(BenchmarkId::new("f32", level.name()), |b| b.iter(|| rng.fill(black_box(&mut z32[..]))));
    }
    g.finish();
}

fn dot_axpy(c: &mut Criterion) {
    let mut g = configured(c, "dot");
    for d in DIMS {
        g.throughput(Throughput::Elements(d as u64));
        let (a, b): (Vec<f32>, Vec<f32>) = (normals(1, d), normals(2, d));
        g.bench_with_input(BenchmarkId::new("f32", d), &d, |bch, _| {
            bch.iter(|| blas1::dot(black_box(&a), black_box(&b)))
        });
        let (a, b): (Vec<f64>, Vec<f64>) = (normals(1, d), normals(2, d));
        g.bench_with_input(BenchmarkId::new("f64", d), &d, |bch, _| {
            bch.iter(|| blas1::dot(black_box(&a), black_box(&b)))
        });
    }
    g.finish();

    let mut g = configured(c, "axpy");
    for d in DIMS {
        g.throughput(Throughput::Elements(d as u64));
        let (x, mut y): (Vec<f32>, Vec<f32>) = (normals(1, d), normals(2, d));
        g.bench_with_input(BenchmarkId::new("f32", d), &d, |bch, _| {
            bch.iter(|| blas1::axpy(1e-9, black_box(&x), black_box(&mut y)))
        });
        let (x, mut y): (Vec<f64>, Vec<f64>) = (normals(1, d), normals(2, d));
        g.bench_with_input(BenchmarkId::new("f64", d), &d, |bch, _| {
            bch.iter(|| blas1::axpy(1e-9, black_box(&x), black_box(&mut y)))
        });
    }
    g.finish();
}

/// The shapes of an online SGD step on the mixed cumulant model: two shift vectors (a sample's
/// u- and v-parts), three probes (m, u, v) in the draw pass; two update terms and three probes in
/// the combine pass; both in the merged pass.
fn fused_passes<T: Real>(c: &mut Criterion, name: &str) {
    let mut g = configured(c, &format!("draw_pair_and_project/{name}"));
    for d in DIMS {
        g.throughput(Throughput::Elements(d as u64));
        let (m, u, v): (Vec<T>, Vec<T>, Vec<T>) = (unit(1, d), unit(2, d), unit(3, d));
        let (mut x, mut xi) = (vec![T::default(); d], vec![T::default(); d]);
        let mut rng = NormalRng::from_seed(4);
        g.bench_with_input(BenchmarkId::from_parameter(d), &d, |bch, _| {
            bch.iter(|| fused::draw_pair_and_project(&mut rng, &mut x, &mut xi, &[(0.7, &u), (-0.3, &v)], [&m, &u, &v]))
        });
    }
    g.finish();

    let mut g = configured(c, &format!("combine_and_project/{name}"));
    for d in DIMS {
        g.throughput(Throughput::Elements(d as u64));
        let (m, u, v): (Vec<T>, Vec<T>, Vec<T>) = (unit(1, d), unit(2, d), unit(3, d));
        let (x, xi): (Vec<T>, Vec<T>) = (normals(5, d), normals(6, d));
        let mut w: Vec<T> = unit(7, d);
        g.bench_with_input(BenchmarkId::from_parameter(d), &d, |bch, _| {
            bch.iter(|| fused::combine_and_project(&mut w, 1.0, &[(1e-6, &x), (-1e-6, &xi)], [&m, &u, &v]))
        });
    }
    g.finish();

    // The K-unit step's projections: 8 units against 2·64 + 1 batch columns, on cache lines.
    let mut g = configured(c, &format!("inner_products_8x129/{name}"));
    for d in DIMS {
        g.throughput(Throughput::Elements(d as u64));
        let (mut w, mut cols) = (AlignedVec::<T>::zeros(8 * d), AlignedVec::<T>::zeros(129 * d));
        w.as_mut_slice().copy_from_slice(&normals(5, 8 * d));
        cols.as_mut_slice().copy_from_slice(&normals(6, 129 * d));
        let mut out = vec![0.0; 8 * 129];
        g.bench_with_input(BenchmarkId::from_parameter(d), &d, |bch, _| {
            bch.iter(|| blas1::inner_products(w.as_slice(), cols.as_slice(), d, black_box(&mut out)))
        });
    }
    g.finish();

    // The one-pass step of large d: the previous update (pair + v), then the next pair.
    let mut g = configured(c, &format!("update_and_draw/{name}"));
    for d in DIMS {
        g.throughput(Throughput::Elements(d as u64));
        let (m, u, v): (Vec<T>, Vec<T>, Vec<T>) = (unit(1, d), unit(2, d), unit(3, d));
        let (mut x, mut xi): (Vec<T>, Vec<T>) = (normals(5, d), normals(6, d));
        let mut w: Vec<T> = unit(7, d);
        let mut rng = NormalRng::from_seed(4);
        g.bench_with_input(BenchmarkId::from_parameter(d), &d, |bch, _| {
            bch.iter(|| {
                fused::update_and_draw(
                    &mut rng,
                    &mut w,
                    1.0,
                    (1e-6, -1e-6),
                    &[(1e-7, &v)],
                    &mut x,
                    &mut xi,
                    &[(0.7, &u), (-0.3, &v)],
                    [&m, &u, &v],
                    false, // as the step runs it between refreshes of the w sums
                )
            })
        });
    }
    g.finish();
}

fn fused_f32(c: &mut Criterion) {
    fused_passes::<f32>(c, "f32");
}

fn fused_f64(c: &mut Criterion) {
    fused_passes::<f64>(c, "f64");
}

criterion_group!(benches, normal_fill, dot_axpy, fused_f32, fused_f64);
criterion_main!(benches);
