//! `diffexp dae`: train / theory / generate / collapse / figures for a System B config. Every command
//! is a pure function of the config and its master seed; outputs go to `--out DIR/<name>/` as `.npy`
//! arrays plus a JSON manifest holding the full config, and `--json` prints a summary on stdout.

use super::collapse;
use super::config::{DaeConfig, Precision};
use super::generate::{
    Axis, ProjectedTheory, SamplerSchedule, generate_batch, kde_1d, kde_2d, theory_density_1d, theory_density_2d,
    transported_samples,
};
use super::hellinger::{axis_for, hellinger, law_on_axis};
use super::net::Dae;
use super::ode::{self, OdeTrajectory, b_closed_form};
use super::target::Target;
use super::train::{MemorySink, StatsRecord, Trainer, stats_of};
use crate::store::npy;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Arguments of `diffexp dae`.
#[derive(clap::Args, Debug, Clone)]
pub struct DaeArgs {
    #[command(subcommand)]
    pub command: DaeCommand,
}

/// The System B commands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum DaeCommand {
    /// Online SGD at full dimension; writes the summary statistics M, 𝒬, Q, b, G on the log grid and
    /// every d/100 steps (stats_*.npy), w(0) and the final w.
    Train(Common),
    /// Integrates the summary-statistic ODEs from the simulation's w(0) (ode_*.npy, with b's closed form).
    Theory(Common),
    /// Trains to each ϑ of `generate.thetas`, generates with the sampler, and writes projected densities
    /// (theory, simulation KDE, target), generated images and Hellinger distances.
    Generate(Common),
    /// The retraining loop of SPEC §4.11 over `collapse.generations` generations.
    Collapse(Common),
    /// Runs what the config's `figure` needs and draws it as PNG.
    Figures(Common),
}

/// Options shared by every command.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// A TOML config (see data/configs/dae_*.toml), or `preset:NAME` with NAME in trimodal, bimodal,
    /// mnist7, mnist7_collapse.
    pub config: String,
    /// Output directory; files go to OUT/<config name>/.
    #[arg(long, default_value = "out/dae")]
    pub out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Override the master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the dimension d.
    #[arg(long)]
    pub d: Option<usize>,
    /// Override the training time ϑ_max.
    #[arg(long)]
    pub theta_max: Option<f64>,
}

impl Common {
    /// The validated config with overrides applied.
    pub fn load(&self) -> Result<DaeConfig> {
        let mut cfg = match self.config.strip_prefix("preset:") {
            Some(p) => DaeConfig::preset(p)?,
            None => DaeConfig::from_path(Path::new(&self.config))?,
        };
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        if let Some(d) = self.d {
            cfg.d = d;
        }
        if let Some(t) = self.theta_max {
            cfg.theta_max = t;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn dir(&self, cfg: &DaeConfig) -> Result<PathBuf> {
        let dir = self.out.join(&cfg.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }
}

/// Entry point of `diffexp dae`.
pub fn run(args: DaeArgs) -> Result<()> {
    let (common, summary) = match &args.command {
        DaeCommand::Train(c) => (c, cmd_train(c)?),
        DaeCommand::Theory(c) => (c, cmd_theory(c)?),
        DaeCommand::Generate(c) => (c, cmd_generate(c)?),
        DaeCommand::Collapse(c) => (c, cmd_collapse(c)?),
        DaeCommand::Figures(c) => (c, super::figures::cmd_figures(c)?),
    };
    if common.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if let Some(msg) = summary.get("message").and_then(|m| m.as_str()) {
        println!("{msg}");
    }
    Ok(())
}

fn write(dir: &Path, name: &str, shape: &[usize], data: &[f64]) -> Result<()> {
    npy::write_f64(&dir.join(name), shape, data).with_context(|| format!("writing {name}"))
}

fn manifest(dir: &Path, name: &str, cfg: &DaeConfig, extra: Value) -> Result<()> {
    let v = json!({ "master_seed": cfg.seed, "config": cfg, "result": extra });
    std::fs::write(dir.join(name), serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

/// Writes a list of stats records as `{prefix}_*.npy`.
pub fn write_records(dir: &Path, prefix: &str, recs: &[StatsRecord], k: usize, r: usize, ke: usize) -> Result<()> {
    let n = recs.len();
    let cat = |f: &dyn Fn(&StatsRecord) -> Vec<f64>| recs.iter().flat_map(f).collect::<Vec<f64>>();
    write(dir, &format!("{prefix}_theta.npy"), &[n], &cat(&|x| vec![x.theta]))?;
    write(dir, &format!("{prefix}_step.npy"), &[n], &cat(&|x| vec![x.step as f64]))?;
    write(dir, &format!("{prefix}_M.npy"), &[n, k, r], &cat(&|x| x.m.clone()))?;
    write(dir, &format!("{prefix}_Qcal.npy"), &[n, r, r], &cat(&|x| x.q_cal.clone()))?;
    write(dir, &format!("{prefix}_Q.npy"), &[n, r, r], &cat(&|x| x.q.clone()))?;
    write(dir, &format!("{prefix}_b.npy"), &[n], &cat(&|x| vec![x.b]))?;
    write(dir, &format!("{prefix}_G.npy"), &[n, ke, r], &cat(&|x| x.g.clone()))?;
    write(dir, &format!("{prefix}_loss.npy"), &[n], &cat(&|x| vec![x.loss]))?;
    Ok(())
}

/// Trains at the config's precision; returns the DAE in f64, the sink and steps/s.
pub fn train(cfg: &DaeConfig, target: &Target, snapshots: &[f64]) -> Result<(Dae<f64>, MemorySink, f64)> {
    let mut sink = MemorySink::default();
    let (dae, steps, secs) = match cfg.precision {
        Precision::F64 => {
            let o = Trainer::<f64>::run(cfg, target, 0, &mut sink, snapshots)?;
            (o.dae, o.steps, o.seconds)
        }
        Precision::F32 => {
            let o = Trainer::<f32>::run(cfg, target, 0, &mut sink, snapshots)?;
            let w = o.dae.w.iter().map(|&v| v as f64).collect();
            (Dae::new(o.dae.d, o.dae.r, w, o.dae.b, o.dae.act), o.steps, o.seconds)
        }
    };
    Ok((dae, sink, steps as f64 / secs.max(1e-9)))
}

fn cmd_train(c: &Common) -> Result<Value> {
    let cfg = c.load()?;
    let dir = c.dir(&cfg)?;
    let target = Target::build(&cfg)?;
    let (w0, _) = target.initial_weights(&cfg);
    let (dae, sink, sps) = train(&cfg, &target, &[])?;
    let (k, r, ke) = (target.clusters().0.len(), cfg.r, target.plane.len());
    write_records(&dir, "stats", &sink.records, k, r, ke)?;
    write(&dir, "w0.npy", &[r, cfg.d], &w0)?;
    write(&dir, "w_final.npy", &[r, cfg.d], &dae.w)?;
    let last = sink.records.last().unwrap();
    let summary = json!({
        "command": "train", "name": cfg.name, "d": cfg.d, "r": r, "steps": last.step, "theta": last.theta,
        "steps_per_second": sps, "b": last.b, "M": last.m, "Qcal": last.q_cal, "Q": last.q,
        "b_closed_form": b_closed_form(&cfg.times, target.theta_bar(), cfg.init.b0, last.theta),
        "out": dir.display().to_string(),
        "message": format!("trained {} steps (ϑ = {:.3}) at {:.0} steps/s; b = {:.5}; wrote {}", last.step, last.theta, sps, last.b, dir.display()),
    });
    manifest(&dir, "manifest_train.json", &cfg, summary.clone())?;
    Ok(summary)
}

/// Writes an ODE trajectory as `ode_*.npy`.
pub fn write_ode(dir: &Path, tr: &OdeTrajectory, cfg: &DaeConfig, theta_bar: f64) -> Result<()> {
    let n = tr.theta.len();
    let (k, r, ke) = (tr.k, tr.r, tr.k_e);
    write(dir, "ode_theta.npy", &[n], &tr.theta)?;
    write(dir, "ode_M.npy", &[n, k, r], &tr.m.concat())?;
    write(dir, "ode_Qcal.npy", &[n, r, r], &tr.q_cal.concat())?;
    write(dir, "ode_Q.npy", &[n, r, r], &tr.q.concat())?;
    write(dir, "ode_b.npy", &[n], &tr.b)?;
    write(dir, "ode_G.npy", &[n, ke, r], &tr.g.concat())?;
    let bc: Vec<f64> = tr.theta.iter().map(|&t| b_closed_form(&cfg.times, theta_bar, cfg.init.b0, t)).collect();
    write(dir, "ode_b_closed.npy", &[n], &bc)?;
    Ok(())
}

fn cmd_theory(c: &Common) -> Result<Value> {
    let cfg = c.load()?;
    let dir = c.dir(&cfg)?;
    let target = Target::build(&cfg)?;
    let t0 = std::time::Instant::now();
    let tr = ode::theory(&cfg, &target, cfg.theta_max)?;
    let secs = t0.elapsed().as_secs_f64();
    write_ode(&dir, &tr, &cfg, target.theta_bar())?;
    let n = tr.theta.len() - 1;
    let summary = json!({
        "command": "theory", "name": cfg.name, "theta": tr.theta[n], "M": tr.m[n], "Qcal": tr.q_cal[n], "Q": tr.q[n],
        "b": tr.b[n], "b_closed_form": b_closed_form(&cfg.times, target.theta_bar(), cfg.init.b0, tr.theta[n]),
        "seconds": secs, "out": dir.display().to_string(),
        "message": format!("integrated the ODE to ϑ = {:.3} in {:.2} s; wrote {}", tr.theta[n], secs, dir.display()),
    });
    manifest(&dir, "manifest_theory.json", &cfg, summary.clone())?;
    Ok(summary)
}

/// The density window of the plane: ±extent standard deviations of the target's projection.
pub fn plane_axes(cfg: &DaeConfig, target: &Target) -> (Axis, Axis) {
    let law = target.plane_law(&target.plane);
    let mut half = [0.0f64; 2];
    for (_, m, cv) in &law.components {
        for a in 0..2 {
            half[a] = half[a].max(m[a].abs() + cfg.generate.extent * cv[a * 2 + a].sqrt());
        }
    }
    let n = cfg.generate.grid;
    (Axis { lo: -half[0], hi: half[0], n }, Axis { lo: -half[1], hi: half[1], n })
}

/// Everything `generate` computes at one ϑ.
pub struct GenerationAtTheta {
    pub theta: f64,
    pub theory_density: Vec<f64>,
    pub sim_density: Vec<f64>,
    pub images: Vec<f64>,
    pub proj: Vec<f64>,
    /// Theory (from the *simulated* 𝒬, G, b) and sample covariance of the projected samples.
    pub cov_theory: Vec<f64>,
    pub cov_samples: Vec<f64>,
}

/// Results of the generation pipeline.
pub struct GenerationRun {
    pub axes: (Axis, Axis),
    pub target_density: Vec<f64>,
    pub per_theta: Vec<GenerationAtTheta>,
    /// (ϑ, H theory, H samples).
    pub hellinger: Vec<(f64, f64, f64)>,
    pub ode: OdeTrajectory,
    pub sink: MemorySink,
}

fn sample_cov(proj: &[f64]) -> Vec<f64> {
    let n = proj.len() / 2;
    let nf = n as f64;
    let m = [proj.iter().step_by(2).sum::<f64>() / nf, proj.iter().skip(1).step_by(2).sum::<f64>() / nf];
    let mut c = vec![0.0; 4];
    for i in 0..n {
        for a in 0..2 {
            for b in 0..2 {
                c[a * 2 + b] += (proj[2 * i + a] - m[a]) * (proj[2 * i + b] - m[b]) / (nf - 1.0);
            }
        }
    }
    c
}

/// Trains with snapshots at every requested ϑ, integrates the ODE, and generates at each ϑ.
pub fn generation_pipeline(cfg: &DaeConfig, target: &Target) -> Result<GenerationRun> {
    let g = &cfg.generate;
    let mut h_thetas = if g.hellinger_thetas.is_empty() { g.thetas.clone() } else { g.hellinger_thetas.clone() };
    h_thetas.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut all: Vec<f64> = g.thetas.iter().chain(&h_thetas).copied().collect();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    all.dedup();
    let tmax = all.iter().copied().fold(0.0, f64::max).max(1e-9);
    let (_, sink, _) = train(cfg, target, &all)?;
    let ode = ode::theory(cfg, target, tmax)?;
    let sched = SamplerSchedule::of(cfg);
    let (ax, ay) = plane_axes(cfg, target);
    let law = target.plane_law(&target.plane);
    let mut target_density = vec![0.0; ax.n * ay.n];
    for iy in 0..ay.n {
        for ix in 0..ax.n {
            target_density[iy * ax.n + ix] = law.density(&[ax.at(ix), ay.at(iy)]);
        }
    }
    let r = cfg.r;
    let hdir = std::slice::from_ref(&target.hellinger_dir);
    let haxis = axis_for(&target.plane_law(hdir));
    let rho_line = match cfg.hellinger.target {
        super::config::HellingerTarget::Rho => law_on_axis(&target.plane_law(hdir), haxis),
        super::config::HellingerTarget::XTend => {
            let (a, b) = DaeConfig::alpha_beta(g.t_end);
            law_on_axis(&target.plane_law_at(hdir, a, b), haxis)
        }
    };
    let snap = |th: f64| sink.snapshots.iter().find(|s| (s.0 - th).abs() < 1e-12).unwrap();
    let mut per_theta = Vec::new();
    let mut hell = Vec::new();
    for &th in &all {
        let (_, w, b) = snap(th);
        let dae = Dae::new(cfg.d, r, w.clone(), *b, cfg.activation);
        let gen_hell = h_thetas.contains(&th);
        let gen_dens = g.thetas.contains(&th);
        let mut plane = target.plane.clone();
        plane.push(target.hellinger_dir.clone());
        let gsamp = generate_batch(cfg, &dae, 0, g.n_gen, &plane, if gen_dens { g.n_images } else { 0 }, None);
        let (qc_o, b_o, g_o) = match g.theory_stats {
            super::config::TheoryStats::Ode => {
                let (_, qc, _, b, gg) = ode.at(th);
                (qc, b, gg)
            }
            super::config::TheoryStats::Simulation => {
                let qc = dae.q_cal();
                let rec = stats_of(&dae, target, &qc);
                (qc, dae.b, rec.g)
            }
        };
        // Transport samples: the Evaluation stream, named by ϑ's bits so every ϑ has its own.
        let seed = super::target::stream_seed(cfg, th.to_bits(), crate::rng::StreamKind::Evaluation);
        if gen_hell {
            // G of the Hellinger direction from the ODE: the first plane row (the direction is E's first axis).
            let g_line: Vec<f64> = g_o[..r].to_vec();
            let p_th = theory_density_1d(&g_line, &qc_o, b_o, r, cfg.activation, &sched, haxis, g.n_z, seed);
            let ys: Vec<f64> = (0..g.n_gen).map(|i| gsamp.proj[i * 3 + 2]).collect();
            let p_sim = kde_1d(&ys, haxis);
            let conv = cfg.hellinger.convention;
            hell.push((
                th,
                hellinger(&p_th, &rho_line, haxis.step(), conv),
                hellinger(&p_sim, &rho_line, haxis.step(), conv),
            ));
        }
        if gen_dens {
            let proj: Vec<f64> = (0..g.n_gen).flat_map(|i| [gsamp.proj[i * 3], gsamp.proj[i * 3 + 1]]).collect();
            let theory_density = theory_density_2d(&g_o, &qc_o, b_o, r, cfg.activation, &sched, ax, ay, g.n_z, seed);
            let sim_density = kde_2d(&proj, ax, ay);
            // The projected-density formula on the simulated statistics (SPEC §4.13 3).
            let q_sim = dae.q_cal();
            let rec = stats_of(&dae, target, &q_sim);
            let pt = ProjectedTheory::new(&rec.g, &q_sim, dae.b, r, &sched);
            let z = transported_samples(&q_sim, dae.b, r, cfg.activation, &sched, g.n_z, seed ^ 1);
            let (_, cov_theory) = pt.moments(&z);
            per_theta.push(GenerationAtTheta {
                theta: th,
                theory_density,
                sim_density,
                images: gsamp.images,
                cov_samples: sample_cov(&proj),
                proj,
                cov_theory,
            });
        }
    }
    Ok(GenerationRun { axes: (ax, ay), target_density, per_theta, hellinger: hell, ode, sink })
}

fn cmd_generate(c: &Common) -> Result<Value> {
    let cfg = c.load()?;
    let dir = c.dir(&cfg)?;
    let target = Target::build(&cfg)?;
    let run = generation_pipeline(&cfg, &target)?;
    write_generation(&dir, &cfg, &target, &run)?;
    let per: Vec<Value> = run
        .per_theta
        .iter()
        .map(|p| json!({"theta": p.theta, "cov_theory": p.cov_theory, "cov_samples": p.cov_samples}))
        .collect();
    let summary = json!({
        "command": "generate", "name": cfg.name, "per_theta": per,
        "hellinger": run.hellinger.iter().map(|h| json!({"theta": h.0, "theory": h.1, "samples": h.2})).collect::<Vec<_>>(),
        "out": dir.display().to_string(),
        "message": format!("generated at ϑ ∈ {:?}; Hellinger (ϑ, theory, samples): {:?}; wrote {}", cfg.generate.thetas,
            run.hellinger.iter().map(|h| (h.0, (h.1 * 1e4).round() / 1e4, (h.2 * 1e4).round() / 1e4)).collect::<Vec<_>>(), dir.display()),
    });
    manifest(&dir, "manifest_generate.json", &cfg, summary.clone())?;
    Ok(summary)
}

/// Writes the generation pipeline's arrays.
pub fn write_generation(dir: &Path, cfg: &DaeConfig, target: &Target, run: &GenerationRun) -> Result<()> {
    let (ax, ay) = run.axes;
    write(dir, "density_axes.npy", &[2, 2], &[ax.lo, ax.hi, ay.lo, ay.hi])?;
    write(dir, "density_target.npy", &[ay.n, ax.n], &run.target_density)?;
    for p in &run.per_theta {
        let tag = format!("{:.2}", p.theta);
        write(dir, &format!("density_theory_theta{tag}.npy"), &[ay.n, ax.n], &p.theory_density)?;
        write(dir, &format!("density_sim_theta{tag}.npy"), &[ay.n, ax.n], &p.sim_density)?;
        write(dir, &format!("gen_proj_theta{tag}.npy"), &[p.proj.len() / 2, 2], &p.proj)?;
        if !p.images.is_empty() {
            write(dir, &format!("gen_images_theta{tag}.npy"), &[p.images.len() / cfg.d, cfg.d], &p.images)?;
        }
    }
    let h: Vec<f64> = run.hellinger.iter().flat_map(|h| [h.0, h.1, h.2]).collect();
    write(dir, "hellinger.npy", &[run.hellinger.len(), 3], &h)?;
    let (k, ke) = (target.clusters().0.len(), target.plane.len());
    write_records(dir, "stats", &run.sink.records, k, cfg.r, ke)?;
    write_ode(dir, &run.ode, cfg, target.theta_bar())?;
    Ok(())
}

fn cmd_collapse(c: &Common) -> Result<Value> {
    let cfg = c.load()?;
    let dir = c.dir(&cfg)?;
    let target = Target::build(&cfg)?;
    let reps = collapse::run(&cfg, &target)?;
    let (ax, ay) = plane_axes(&cfg, &target);
    write_collapse(&dir, &cfg, &target, &reps, ax, ay)?;
    let gens: Vec<Value> = reps
        .iter()
        .map(|g| {
            json!({"generation": g.generation, "hellinger_pc1_pc2": g.hellinger_pc, "spectrum_top": &g.spectrum[..g.spectrum.len().min(6)],
                "orthogonal_variance": g.orth_var, "v_theory": g.v_theory, "b": g.dae.b})
        })
        .collect();
    let msg = reps
        .iter()
        .map(|g| {
            format!(
                "gen {}: H(PC1,PC2) = ({:.4}, {:.4}), var⊥ = {:.4} (v = {:.4})",
                g.generation, g.hellinger_pc[0], g.hellinger_pc[1], g.orth_var, g.v_theory
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let summary = json!({"command": "collapse", "name": cfg.name, "generations": gens, "out": dir.display().to_string(), "message": msg});
    manifest(&dir, "manifest_collapse.json", &cfg, summary.clone())?;
    Ok(summary)
}

/// Writes the collapse loop's arrays (densities on the target's top-2 PCs).
pub fn write_collapse(
    dir: &Path,
    cfg: &DaeConfig,
    target: &Target,
    reps: &[collapse::GenerationReport],
    ax: Axis,
    ay: Axis,
) -> Result<()> {
    let law = target.plane_law(&target.principal_components(2));
    let mut td = vec![0.0; ax.n * ay.n];
    for iy in 0..ay.n {
        for ix in 0..ax.n {
            td[iy * ax.n + ix] = law.density(&[ax.at(ix), ay.at(iy)]);
        }
    }
    write(dir, "collapse_axes.npy", &[2, 2], &[ax.lo, ax.hi, ay.lo, ay.hi])?;
    write(dir, "collapse_density_target.npy", &[ay.n, ax.n], &td)?;
    for g in reps {
        let n = g.samples.n;
        write(dir, &format!("collapse_gen{}_proj.npy", g.generation), &[n, 2], &g.samples.proj)?;
        write(
            dir,
            &format!("collapse_gen{}_density.npy", g.generation),
            &[ay.n, ax.n],
            &kde_2d(&g.samples.proj, ax, ay),
        )?;
        write(dir, &format!("collapse_gen{}_spectrum.npy", g.generation), &[g.spectrum.len()], &g.spectrum)?;
        write(dir, &format!("collapse_gen{}_w.npy", g.generation), &[cfg.r, cfg.d], &g.dae.w)?;
        write(dir, &format!("collapse_gen{}_hellinger.npy", g.generation), &[2], &g.hellinger_pc)?;
    }
    Ok(())
}
