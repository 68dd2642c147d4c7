//! `diffexp bench`: the engine's speed figures from one run, each stated against a baseline
//! measured in the same run (these machines are noisy, so ratios travel better than seconds).

use crate::config::Config;
use crate::model::{GaussianSurrogate, McmParams, MixedCumulantModel, Spikes};
use crate::net::two_layer::Tying;
use crate::net::{Activation, SingleDirection};
use crate::rng::ScalarRng;
use crate::train::Learner;
use crate::train::single::{MERGED_MIN_DIM, SingleDirectionLearner, SingleDirectionSetup};
use crate::train::two_layer::{TwoLayerLearner, TwoLayerSetup};
use diffexp_kernels::{AlignedVec, NormalRng, fused};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use serde::Serialize;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

/// Per-d timing of the single-direction pSGD step.
#[derive(Clone, Debug, Serialize)]
pub struct StepTiming {
    pub d: usize,
    pub ns_per_step: f64,
    /// Time to draw the step's 2d normals with the same generator.
    pub ns_per_2d_normals: f64,
    /// ns_per_step / ns_per_2d_normals.
    pub ratio_to_normals: f64,
    /// Where the step's time goes: its passes timed alone, at the same d.
    pub passes: PassTimings,
}

/// The fused passes of the single-direction step, each timed alone (ns per call), and the rest of
/// the step (its scalar work: latent draw, activation, coefficients, kernel entry and exit).
#[derive(Clone, Debug, Serialize)]
pub struct PassTimings {
    /// The step runs the merged pass (d ≥ `train::single::MERGED_MIN_DIM`) instead of draw + update.
    pub merged: bool,
    /// The generator writing x and ξ with only their three Gram sums: no shifts, no probes.
    pub ns_draw_gram_only: f64,
    /// The step's draw pass: normals, three shifts, seven running sums, x and ξ written.
    pub ns_draw_pass: f64,
    /// The step's update pass: w ← αw + three terms, four running sums.
    pub ns_update_pass: f64,
    /// The merged pass (update, then draw, in one loop).
    pub ns_merged_pass: f64,
    /// ns_per_step minus the passes the step runs.
    pub ns_rest: f64,
}

/// The bench report.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub simd: String,
    /// See [`core_ghz`].
    pub core_ghz: Option<f64>,
    pub ns_per_normal_f32: f64,
    pub ns_per_normal_f64: f64,
    pub steps: Vec<StepTiming>,
    /// Multi-walker walker-steps/s at `threads_d` with 1 and 2 threads.
    pub threads_d: usize,
    pub steps_per_second_1_thread: f64,
    pub steps_per_second_2_threads: f64,
    pub thread_speedup: f64,
    /// K = 8 tied denoiser, B = 64, d = 1e4: step time vs the five matrix products of the textbook step
    /// (forward and backward through d×B matrices) run alone in faer.
    pub k8_b64_ns_per_step: f64,
    pub k8_b64_faer_matmul_ns: f64,
    pub k8_b64_ratio: f64,
}

/// Repeats `f` until `min_secs` have passed; returns seconds per call.
fn time_per_call(min_secs: f64, mut f: impl FnMut()) -> f64 {
    f();
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let el = t.elapsed().as_secs_f64();
        if el >= min_secs {
            return el / n as f64;
        }
        n = (n * 2).max((n as f64 * min_secs / el.max(1e-9)) as u64 + 1);
    }
}

fn model(d: usize) -> (Arc<MixedCumulantModel<f32>>, Arc<GaussianSurrogate<f32>>) {
    let cfg = Config::default();
    let params: McmParams = cfg.model.params();
    let m = MixedCumulantModel::new(params, Spikes::<f32>::draw(d, Default::default(), &mut ScalarRng::from_seed(1)));
    let s = m.surrogate();
    (Arc::new(m), Arc::new(s))
}

fn single_learner(d: usize, walker: u64) -> SingleDirectionLearner<f32> {
    let (m, s) = model(d);
    SingleDirectionLearner::new(
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
            init_seed: 10 + walker,
            data_seed: 1000 + walker,
            latent_seed: 2000 + walker,
            eval_seed: 0,
        },
    )
}

/// The single-direction step's fused passes on their own buffers: the bench model's spikes and the
/// step's argument lists (the coefficients only need to keep w finite).
struct PassBench {
    model: Arc<MixedCumulantModel<f32>>,
    rng: NormalRng,
    w: AlignedVec<f32>,
    x: AlignedVec<f32>,
    xi: AlignedVec<f32>,
}

impl PassBench {
    fn new(d: usize) -> Self {
        let mut rng = NormalRng::from_seed(4);
        let mut w = AlignedVec::<f32>::zeros(d);
        rng.fill(&mut w);
        let mut p = Self { model: model(d).0, rng, w, x: AlignedVec::zeros(d), xi: AlignedVec::zeros(d) };
        // x and ξ hold a pair, as when the step runs its update.
        p.draw();
        p
    }

    /// The generator writing x and ξ with only their three Gram sums: no shifts, no probes.
    fn gram_only(&mut self) {
        black_box(fused::draw_pair_and_project::<f32, 0>(&mut self.rng, &mut self.x, &mut self.xi, &[], []));
    }

    fn draw(&mut self) {
        let sp = &self.model.spikes;
        let shift = [(0.1, &sp.m[..]), (0.2, &sp.u[..]), (0.3, &sp.v[..])];
        black_box(fused::draw_pair_and_project(
            &mut self.rng,
            &mut self.x,
            &mut self.xi,
            &shift,
            [&self.w[..], &sp.v[..]],
        ));
    }

    fn update(&mut self) {
        let sp = &self.model.spikes;
        let terms = [(1e-6, &self.x[..]), (1e-6, &self.xi[..]), (1e-6, &sp.v[..])];
        black_box(fused::combine_and_project(&mut self.w, 1.0, &terms, [&sp.m[..], &sp.u[..], &sp.v[..]]));
    }

    fn merged(&mut self) {
        let sp = &self.model.spikes;
        let shift = [(0.1, &sp.m[..]), (0.2, &sp.u[..]), (0.3, &sp.v[..])];
        let probes = [&sp.m[..], &sp.u[..], &sp.v[..]];
        let (rng, w, x, xi) = (&mut self.rng, &mut self.w, &mut self.x, &mut self.xi);
        // Without the w sums, as the step runs it between refreshes (`train::single::W_REFRESH_STEPS`).
        black_box(fused::update_and_draw(rng, w, 1.0, (1e-6, 1e-6), &[(1e-6, &sp.v)], x, xi, &shift, probes, false));
    }
}

/// Times the single-direction step's passes alone.
fn pass_timings(d: usize, secs: f64, ns_step: f64) -> PassTimings {
    let ns = |pass: fn(&mut PassBench)| time_pass(d, secs, pass) * 1e9;
    let ns_draw_gram_only = ns(PassBench::gram_only);
    let ns_draw_pass = ns(PassBench::draw);
    let ns_update_pass = ns(PassBench::update);
    let ns_merged_pass = ns(PassBench::merged);
    let merged = d >= MERGED_MIN_DIM;
    let ns_rest = ns_step - if merged { ns_merged_pass } else { ns_draw_pass + ns_update_pass };
    PassTimings { merged, ns_draw_gram_only, ns_draw_pass, ns_update_pass, ns_merged_pass, ns_rest }
}

/// One workload of `diffexp bench --only`: run by itself, so that a profiler attached to the process
/// sees that loop and nothing else (`benches/port_budget.sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// The whole single-direction step.
    Step,
    /// The step's 2d normals (`NormalRng::fill`), the baseline of every ratio.
    Normals,
    /// The generator writing x and ξ with only their three Gram sums.
    GramOnly,
    /// The draw pass.
    Draw,
    /// The update pass.
    Update,
    /// The merged pass.
    Merged,
}

/// One workload timed alone at one d, against the step's 2d normals timed right after it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadTiming {
    pub workload: Workload,
    pub d: usize,
    pub ns_per_call: f64,
    pub ns_per_2d_normals: f64,
    /// ns_per_call / ns_per_2d_normals.
    pub ratio_to_normals: f64,
}

/// What `diffexp bench --only` reports.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    pub simd: String,
    /// See [`core_ghz`].
    pub core_ghz: Option<f64>,
    pub timings: Vec<WorkloadTiming>,
}

impl std::fmt::Display for WorkloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIMD level: {}", self.simd)?;
        if let Some(g) = self.core_ghz {
            write!(f, ", core clock {g:.2} GHz")?;
        }
        for t in &self.timings {
            let name = clap::ValueEnum::to_possible_value(&t.workload).map(|v| v.get_name().to_string());
            write!(
                f,
                "\n{} at d = {}: {:.0} ns per call, {:.0} ns per 2d normals, ratio {:.3}",
                name.unwrap_or_default(),
                t.d,
                t.ns_per_call,
                t.ns_per_2d_normals,
                t.ratio_to_normals
            )?;
        }
        Ok(())
    }
}

/// Seconds per single-direction step of a fresh walker at d.
fn time_step(d: usize, secs: f64) -> f64 {
    let mut l = single_learner(d, 0);
    time_per_call(secs, || {
        black_box(l.step());
    })
}

/// Seconds per call of one pass on fresh [`PassBench`] buffers of length d.
fn time_pass(d: usize, secs: f64, pass: fn(&mut PassBench)) -> f64 {
    let mut p = PassBench::new(d);
    time_per_call(secs, || pass(&mut p))
}

/// Runs `workload` alone for `secs` at each d, then its 2d normals for `secs`/4 (for the ratio).
pub fn run_workload(workload: Workload, dims: &[usize], secs: f64) -> WorkloadReport {
    let timings = dims
        .iter()
        .map(|&d| {
            let mut two = AlignedVec::<f32>::zeros(2 * d);
            let mut rng = NormalRng::from_seed(3);
            let ns_per_call = match workload {
                Workload::Step => time_step(d, secs),
                Workload::Normals => time_per_call(secs, || rng.fill(black_box(&mut two))),
                Workload::GramOnly => time_pass(d, secs, PassBench::gram_only),
                Workload::Draw => time_pass(d, secs, PassBench::draw),
                Workload::Update => time_pass(d, secs, PassBench::update),
                Workload::Merged => time_pass(d, secs, PassBench::merged),
            } * 1e9;
            // A shorter baseline, so that a profiler's hottest loop is the workload's.
            let ns_per_2d_normals = time_per_call(secs / 4.0, || rng.fill(black_box(&mut two))) * 1e9;
            WorkloadTiming {
                workload,
                d,
                ns_per_call,
                ns_per_2d_normals,
                ratio_to_normals: ns_per_call / ns_per_2d_normals,
            }
        })
        .collect();
    WorkloadReport { simd: diffexp_kernels::simd_level(), core_ghz: core_ghz(), timings }
}

/// The core clock in GHz, from a chain of dependent 64-bit multiplies (3 cycles each on every
/// x86-64 core of the last decade); `None` off x86-64. It converts the times above into cycles.
pub fn core_ghz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        const N: u64 = 1 << 22;
        let chain = || {
            let t = Instant::now();
            let mut x = 3u64;
            for _ in 0..N / 8 {
                // SAFETY: register-only arithmetic; the asm block touches nothing else.
                unsafe {
                    std::arch::asm!(
                        "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}",
                        "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}",
                        x = inout(reg) x,
                        options(nomem, nostack),
                    );
                }
            }
            black_box(x);
            t.elapsed().as_secs_f64()
        };
        let best = (0..5).map(|_| chain()).fold(f64::INFINITY, f64::min);
        Some(3.0 * N as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Runs every measurement; `secs` is the minimum time per measurement.
pub fn run(dims: &[usize], secs: f64) -> BenchReport {
    let mut rng = NormalRng::from_seed(3);
    // Every buffer starts on a cache line, as the walkers' vectors do.
    let mut buf32 = AlignedVec::<f32>::zeros(1 << 16);
    let mut buf64 = AlignedVec::<f64>::zeros(1 << 16);
    let ns_per_normal_f32 = time_per_call(secs, || rng.fill(black_box(&mut buf32))) * 1e9 / buf32.len() as f64;
    let ns_per_normal_f64 = time_per_call(secs, || rng.fill(black_box(&mut buf64))) * 1e9 / buf64.len() as f64;
    let steps = dims
        .iter()
        .map(|&d| {
            let ns_step = time_step(d, secs) * 1e9;
            let mut two = AlignedVec::<f32>::zeros(2 * d);
            let ns_norm = time_per_call(secs, || rng.fill(black_box(&mut two))) * 1e9;
            let passes = pass_timings(d, secs, ns_step);
            StepTiming {
                d,
                ns_per_step: ns_step,
                ns_per_2d_normals: ns_norm,
                ratio_to_normals: ns_step / ns_norm,
                passes,
            }
        })
        .collect();
    // Threads: 4 walkers at d = 1e4, a fixed number of steps each, in pools of 1 and 2 threads.
    let threads_d = 10_000;
    let walkers = 4;
    let steps_each = ((secs * 2e5) as u64).max(2000);
    let sps = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut ls: Vec<_> = (0..walkers).map(|w| single_learner(threads_d, w)).collect();
        let t = Instant::now();
        pool.install(|| {
            use rayon::prelude::*;
            ls.par_iter_mut().for_each(|l| {
                for _ in 0..steps_each {
                    black_box(l.step());
                }
            })
        });
        (walkers * steps_each) as f64 / t.elapsed().as_secs_f64()
    };
    let s1 = sps(1);
    let s2 = sps(2);
    // K = 8 tied, B = 64, d = 1e4.
    let (d, k, b) = (10_000usize, 8usize, 64usize);
    let (m, s) = model(d);
    let mut tl = TwoLayerLearner::<f32>::new(
        m,
        s,
        TwoLayerSetup {
            net: Activation::Tanh,
            tying: Tying::Tied,
            units: k,
            c0: 0.7,
            a_values: vec![0.5f64.sqrt()],
            eta: 0.01 / d as f64,
            spherical: false,
            batch: b,
            init_seed: 1,
            data_seed: 2,
            latent_seed: 3,
            eval_seed: 4,
        },
    );
    let k8 = time_per_call(secs, || {
        black_box(tl.step());
    }) * 1e9;
    // The textbook step's products alone: WᵀX_t (K×B), W·Σ (d×B), WᵀE (K×B), E·Σᵀ and X_t·χᵀ (d×K).
    // The engine's step needs fewer (`TwoLayer::gradient_split`); this is the work it replaces.
    let w = Mat::<f32>::from_fn(d, k, |i, j| ((i * 7 + j) % 13) as f32 * 0.01);
    let x = Mat::<f32>::from_fn(d, b, |i, j| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut kb = Mat::<f32>::zeros(k, b);
    let mut db = Mat::<f32>::zeros(d, b);
    let mut dk = Mat::<f32>::zeros(d, k);
    let mm = time_per_call(secs, || {
        matmul(kb.as_mut(), Accum::Replace, w.transpose(), x.as_ref(), 1.0, Par::Seq);
        matmul(db.as_mut(), Accum::Replace, w.as_ref(), kb.as_ref(), 1.0, Par::Seq);
        matmul(kb.as_mut(), Accum::Replace, w.transpose(), db.as_ref(), 1.0, Par::Seq);
        matmul(dk.as_mut(), Accum::Replace, db.as_ref(), kb.transpose(), 1.0, Par::Seq);
        matmul(dk.as_mut(), Accum::Add, x.as_ref(), kb.transpose(), 1.0, Par::Seq);
        black_box(&dk);
    }) * 1e9;
    BenchReport {
        simd: diffexp_kernels::simd_level(),
        core_ghz: core_ghz(),
        ns_per_normal_f32,
        ns_per_normal_f64,
        steps,
        threads_d,
        steps_per_second_1_thread: s1,
        steps_per_second_2_threads: s2,
        thread_speedup: s2 / s1,
        k8_b64_ns_per_step: k8,
        k8_b64_faer_matmul_ns: mm,
        k8_b64_ratio: k8 / mm,
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "SIMD level: {}", self.simd)?;
        if let Some(g) = self.core_ghz {
            writeln!(f, "core clock: {g:.2} GHz (chain of dependent multiplies)")?;
        }
        writeln!(f, "normals: {:.3} ns each (f32), {:.3} ns (f64)", self.ns_per_normal_f32, self.ns_per_normal_f64)?;
        writeln!(f, "single-direction pSGD step (3 spikes, fresh d-dim sample and noise), f32:")?;
        writeln!(f, "{:>9}  {:>12}  {:>16}  {:>10}", "d", "ns/step", "ns/(2d normals)", "ratio")?;
        for s in &self.steps {
            writeln!(
                f,
                "{:>9}  {:>12.0}  {:>16.0}  {:>10.3}",
                s.d, s.ns_per_step, s.ns_per_2d_normals, s.ratio_to_normals
            )?;
        }
        writeln!(f, "where the step's time goes, each pass timed alone, in units of the step's 2d normals:")?;
        writeln!(
            f,
            "{:>9}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>7}",
            "d", "gram-only", "draw", "update", "merged", "rest", "step"
        )?;
        for s in &self.steps {
            let (p, n) = (&s.passes, s.ns_per_2d_normals);
            // The passes the step does not run are in brackets.
            let cell = |t: f64, runs: bool| if runs { format!("{:.2}", t / n) } else { format!("({:.2})", t / n) };
            writeln!(
                f,
                "{:>9}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10.2}  {:>7.2}",
                s.d,
                format!("({:.2})", p.ns_draw_gram_only / n),
                cell(p.ns_draw_pass, !p.merged),
                cell(p.ns_update_pass, !p.merged),
                cell(p.ns_merged_pass, p.merged),
                p.ns_rest / n,
                s.ratio_to_normals
            )?;
        }
        writeln!(
            f,
            "4 walkers at d = {}: {:.0} steps/s on 1 thread, {:.0} on 2 threads (speed-up {:.2}×)",
            self.threads_d, self.steps_per_second_1_thread, self.steps_per_second_2_threads, self.thread_speedup
        )?;
        write!(
            f,
            "K = 8 tied, B = 64, d = 1e4: {:.0} µs/step vs {:.0} µs for the textbook step's five products in faer (ratio {:.2})",
            self.k8_b64_ns_per_step / 1e3,
            self.k8_b64_faer_matmul_ns / 1e3,
            self.k8_b64_ratio
        )
    }
}
