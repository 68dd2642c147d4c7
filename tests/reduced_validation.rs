//! Validation of the dimension-reduced engine against the full-d engine (SPEC §3.5, §7 items 33–36).
//!
//! Default run (fast): the pathwise identity (item 33), the initial-state law (item 34), the Bartlett
//! moments (item 35), one-step moments, a small distributional agreement check and the power check
//! (item 36). The full-size distributional suite is `#[ignore]`d:
//!
//! ```text
//! cargo test --release --test reduced_validation -- --ignored --nocapture
//! ```

use diffexp::model::{Coupling, McmParams, MixedCumulantModel, NuLaw, SpikeLayout, Spikes};
use diffexp::net::two_layer::{TwoLayer, TwoLayerScratch, Tying};
use diffexp::net::{Activation, SingleDirection};
use diffexp::reduced::frame::{P, SpikeFrame};
use diffexp::reduced::single::{ReducedSingleSetup, SingleDraws, SingleRule, SingleState};
use diffexp::reduced::two_layer::{
    ReducedTwoLayerSetup, TwoLayerDraws, TwoLayerRule, TwoLayerState,
};
use diffexp::rng::ScalarRng;
use diffexp_kernels::NormalRng;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn params(coupling: Coupling) -> McmParams {
    McmParams {
        beta_m: 0.7,
        beta_u: 3.0,
        beta_v: 6.0,
        nu_law: NuLaw::Rademacher,
        coupling,
    }
}

/// Orthonormalises `vecs` against `basis` (already orthonormal) and against each other, in order:
/// returns the coordinates of each vector in `basis` and the lower-triangular Gram–Schmidt factor of
/// the remainders (row-major), i.e. what the reduced engine draws (SPEC §3.5(1)'s hook).
fn project(basis: &[Vec<f64>], vecs: &[Vec<f64>]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let n = vecs.len();
    let mut coords = Vec::with_capacity(n);
    let mut rems: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut l = vec![0.0; n * n];
    let mut q: Vec<Vec<f64>> = Vec::new();
    for (k, g) in vecs.iter().enumerate() {
        let c: Vec<f64> = basis.iter().map(|e| dot(e, g)).collect();
        let mut r = g.clone();
        for (e, &ci) in basis.iter().zip(&c) {
            r.iter_mut().zip(e).for_each(|(x, y)| *x -= ci * y);
        }
        // Re-orthogonalise against the basis once more (rounding).
        for e in basis {
            let t = dot(e, &r);
            r.iter_mut().zip(e).for_each(|(x, y)| *x -= t * y);
        }
        let mut rr = r.clone();
        for (li, qi) in q.iter().enumerate() {
            let t = dot(qi, &rr);
            l[k * n + li] = t;
            rr.iter_mut().zip(qi).for_each(|(x, y)| *x -= t * y);
        }
        for (li, qi) in q.iter().enumerate() {
            let t = dot(qi, &rr);
            l[k * n + li] += t;
            rr.iter_mut().zip(qi).for_each(|(x, y)| *x -= t * y);
        }
        let nr = dot(&rr, &rr).sqrt();
        l[k * n + k] = nr;
        q.push(rr.iter().map(|x| x / nr).collect());
        coords.push(c);
        rems.push(r);
    }
    (coords, l)
}

struct Case {
    coupling: Coupling,
    batch: usize,
    layout: SpikeLayout,
    levels: Vec<f64>,
    level_sum: bool,
    train_b: bool,
    act: Activation,
}

/// SPEC §3.5(1) / §7 item 33 for K = 1 (spherical single direction): a full-d f64 reference loop
/// (model sampler, `SingleDirection::gradient`, tangent projection, renormalisation) whose draws are
/// projected every step onto (F, e₀) and handed to the reduced update. After 10⁴ steps the reduced
/// (α, ρ, b) equals (Fᵀw, ‖w − FFᵀw‖, b) of the full run to relative 1e−12.
fn pathwise_single(case: &Case, steps: usize) -> f64 {
    let d = 24usize;
    let mut srng = ScalarRng::from_seed(100 + case.batch as u64);
    let spikes = Spikes::<f64>::draw(d, case.layout, &mut srng);
    let model = MixedCumulantModel::new(params(case.coupling), spikes);
    let (frame, fbasis) =
        SpikeFrame::from_vectors(&model.spikes.m, &model.spikes.u, &model.spikes.v);
    let a_values: Vec<f64> = case.levels.iter().map(|x| x.sqrt()).collect();
    let eta = 0.3 / d as f64;
    let setup = ReducedSingleSetup {
        net: SingleDirection {
            activation: case.act,
            b: 1.0,
        },
        params: model.params,
        frame,
        d: d as u64,
        a_values: a_values.clone(),
        level_sum: case.level_sum,
        eta,
        eta_b: 0.5 * eta,
        train_b: case.train_b,
        batch: case.batch,
        init_seed: 0,
        data_seed: 0,
        latent_seed: 0,
        eval_seed: 0,
    };
    let rule = SingleRule::new(&setup);
    let nxi = rule.noises_per_sample();
    let nvec = rule.vectors_per_step();
    let mut normals = NormalRng::from_seed(7);
    let mut latent = ScalarRng::from_seed(8);
    let mut w = vec![0.0f64; d];
    normals.fill(&mut w);
    let nw = dot(&w, &w).sqrt();
    w.iter_mut().for_each(|x| *x /= nw);
    let mut b = 1.0;
    let alpha0: Vec<f64> = fbasis.iter().map(|e| dot(e, &w)).collect();
    let rem0: Vec<f64> = (0..d)
        .map(|i| w[i] - (0..P).map(|k| alpha0[k] * fbasis[k][i]).sum::<f64>())
        .collect();
    let mut st = SingleState {
        alpha: [alpha0[0], alpha0[1], alpha0[2]],
        rho: dot(&rem0, &rem0).sqrt(),
        b: 1.0,
    };
    let mut scratch = Vec::new();
    let mut worst: f64 = 0.0;
    for _ in 0..steps {
        // The full step's draws.
        let mut vecs = Vec::with_capacity(nvec);
        let mut latents = Vec::new();
        let mut levels = Vec::new();
        for _ in 0..case.batch {
            let sh = model.draw_shift(&mut latent);
            latents.push((sh.lambda, sh.nu, sh));
            levels.push(if case.level_sum || a_values.len() == 1 {
                0
            } else {
                latent.below(a_values.len() as u64) as usize
            });
            let mut z = vec![0.0f64; d];
            normals.fill(&mut z);
            vecs.push(z);
            for _ in 0..nxi {
                let mut xi = vec![0.0f64; d];
                normals.fill(&mut xi);
                vecs.push(xi);
            }
        }
        // Hook: coordinates in (F, e₀, remainder Gram–Schmidt basis).
        let alpha: Vec<f64> = fbasis.iter().map(|e| dot(e, &w)).collect();
        let mut rem: Vec<f64> = w.clone();
        for k in 0..P {
            rem.iter_mut()
                .zip(&fbasis[k])
                .for_each(|(x, y)| *x -= alpha[k] * y);
        }
        let rho = dot(&rem, &rem).sqrt();
        let e0: Vec<f64> = rem.iter().map(|x| x / rho).collect();
        let mut basis: Vec<Vec<f64>> = fbasis.to_vec();
        basis.push(e0);
        let (coords, l) = project(&basis, &vecs);
        let draws = SingleDraws {
            latents: latents.iter().map(|t| (t.0, t.1)).collect(),
            levels: levels.clone(),
            span: coords.iter().map(|c| [c[0], c[1], c[2]]).collect(),
            e0: coords.iter().map(|c| c[3]).collect(),
            rem: l,
        };
        // Full step (reference gradients).
        let mut grad = vec![0.0; d];
        let mut gb = 0.0;
        let net = SingleDirection {
            activation: case.act,
            b,
        };
        for j in 0..case.batch {
            let kz = j * (1 + nxi);
            let mut x = vecs[kz].clone();
            model.apply_shift(&latents[j].2, &mut x);
            for l in 0..nxi {
                let a = a_values[if case.level_sum { l } else { levels[j] }];
                let s = (1.0 - a * a).sqrt();
                let xt: Vec<f64> = x
                    .iter()
                    .zip(&vecs[kz + 1 + l])
                    .map(|(p, q)| a * p + s * q)
                    .collect();
                let g = net.gradient(&w, &x, &xt, a);
                grad.iter_mut()
                    .zip(&g.grad_w)
                    .for_each(|(p, q)| *p += q / case.batch as f64);
                gb += g.grad_b / case.batch as f64;
            }
        }
        let wg = dot(&w, &grad);
        let mut wn: Vec<f64> = (0..d).map(|i| w[i] - eta * (grad[i] - wg * w[i])).collect();
        let n = dot(&wn, &wn).sqrt();
        wn.iter_mut().for_each(|x| *x /= n);
        w = wn;
        if case.train_b {
            b -= 0.5 * eta * gb;
        }
        // Reduced step on the projected draws.
        rule.step(&mut st, &draws, &mut scratch);
        let af: Vec<f64> = fbasis.iter().map(|e| dot(e, &w)).collect();
        let rf = (1.0 - dot(&af, &af)).max(0.0).sqrt();
        let err =
            (0..P).map(|k| (af[k] - st.alpha[k]).powi(2)).sum::<f64>() + (rf - st.rho).powi(2);
        worst = worst
            .max(err.sqrt())
            .max((b - st.b).abs() / b.abs().max(1.0));
    }
    worst
}

#[test]
fn pathwise_identity_single_direction() {
    let mut cases = Vec::new();
    for coupling in [
        Coupling::Independent,
        Coupling::Sign,
        Coupling::Even,
        Coupling::Odd,
    ] {
        for batch in [1, 4] {
            cases.push(Case {
                coupling,
                batch,
                layout: SpikeLayout::Orthonormal,
                levels: vec![0.5],
                level_sum: false,
                train_b: false,
                act: Activation::Tanh,
            });
        }
    }
    // Non-orthogonal spikes, trainable b, level sets (sampled and summed), other activations.
    cases.push(Case {
        coupling: Coupling::Sign,
        batch: 1,
        layout: SpikeLayout::Random,
        levels: vec![0.5],
        level_sum: false,
        train_b: true,
        act: Activation::Erf,
    });
    cases.push(Case {
        coupling: Coupling::Odd,
        batch: 4,
        layout: SpikeLayout::Random,
        levels: vec![0.3, 0.6],
        level_sum: false,
        train_b: true,
        act: Activation::Relu,
    });
    cases.push(Case {
        coupling: Coupling::Even,
        batch: 2,
        layout: SpikeLayout::Orthonormal,
        levels: vec![0.3, 0.6, 0.8],
        level_sum: true,
        train_b: true,
        act: Activation::Tanh,
    });
    for c in &cases {
        let err = pathwise_single(c, 10_000);
        eprintln!(
            "pathwise K=1 coupling {} B={} {:?}: max error {err:.2e}",
            c.coupling, c.batch, c.layout
        );
        assert!(
            err < 1e-12,
            "coupling {} B = {} {:?} levels {:?} sum {}: max error {err:e}",
            c.coupling,
            c.batch,
            c.layout,
            c.levels,
            c.level_sum
        );
    }
}

/// Modified Gram–Schmidt (twice) of the columns of `c` (d×k column-major): E (orthonormal columns,
/// a column of zeros where a column is dependent) and upper-triangular R with R ≥ 0 on the diagonal.
fn thin_qr(c: &[f64], d: usize, k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut e: Vec<Vec<f64>> = Vec::new();
    let mut r = vec![0.0; k * k];
    for j in 0..k {
        let mut v = c[j * d..(j + 1) * d].to_vec();
        for _pass in 0..2 {
            for (i, ei) in e.iter().enumerate() {
                let t = dot(ei, &v);
                r[j * k + i] += t;
                v.iter_mut().zip(ei).for_each(|(x, y)| *x -= t * y);
            }
        }
        let n = dot(&v, &v).sqrt();
        r[j * k + j] = n;
        e.push(v.iter().map(|x| x / n).collect());
    }
    (e, r)
}

struct TwoCase {
    coupling: Coupling,
    batch: usize,
    units: usize,
    tying: Tying,
    spherical: bool,
    levels: Vec<f64>,
}

/// SPEC §3.5(1) / §7 item 33 for K units: the full-d f64 loop (model sampler,
/// `TwoLayer::gradient_into`, the learner's update) projected every step onto (F, E_⊥) with
/// [W V] − FA = E_⊥R; the reduced (A, RᵀR, c) must equal the full (FᵀW, CᵀC, c) to relative 1e−12.
fn pathwise_two_layer(case: &TwoCase, steps: usize) -> f64 {
    let d = 24usize;
    let spikes = Spikes::<f64>::draw(d, SpikeLayout::Orthonormal, &mut ScalarRng::from_seed(31));
    let model = MixedCumulantModel::new(params(case.coupling), spikes);
    let (frame, fbasis) =
        SpikeFrame::from_vectors(&model.spikes.m, &model.spikes.u, &model.spikes.v);
    let a_values: Vec<f64> = case.levels.iter().map(|x| x.sqrt()).collect();
    let eta = 0.2 / d as f64;
    let setup = ReducedTwoLayerSetup {
        activation: Activation::Tanh,
        tying: case.tying,
        units: case.units,
        c0: a_values[0],
        params: model.params,
        frame,
        d: d as u64,
        a_values: a_values.clone(),
        eta,
        spherical: case.spherical,
        batch: case.batch,
        init_seed: 0,
        data_seed: 0,
        latent_seed: 0,
        eval_seed: 0,
    };
    let rule = TwoLayerRule::new(&setup);
    let mut ws = rule.workspace();
    let (k, kc, b) = (case.units, rule.cols(), case.batch);
    let mut normals = NormalRng::from_seed(17);
    let mut latent = ScalarRng::from_seed(18);
    let mut net = TwoLayer::<f64> {
        d,
        k,
        activation: Activation::Tanh,
        tying: case.tying,
        w: vec![0.0; d * k],
        v: if case.tying == Tying::Untied {
            vec![0.0; d * k]
        } else {
            Vec::new()
        },
        c: a_values[0],
    };
    normals.fill(&mut net.w);
    if case.tying == Tying::Untied {
        normals.fill(&mut net.v);
    }
    let eta_w = eta * d as f64;
    let sd = (d as f64).sqrt();
    if case.spherical {
        for col in net.w.chunks_mut(d) {
            let n = dot(col, col).sqrt();
            col.iter_mut().for_each(|x| *x *= sd / n);
        }
    }
    let stacked = |net: &TwoLayer<f64>| {
        let mut s = net.w.clone();
        s.extend_from_slice(&net.v);
        s
    };
    // A = Fᵀ[W V], C = [W V] − FA, and its QR.
    let split = |s: &[f64]| {
        let mut a = vec![0.0; P * kc];
        let mut c = s.to_vec();
        for j in 0..kc {
            for i in 0..P {
                let t = dot(&fbasis[i], &s[j * d..(j + 1) * d]);
                a[j * P + i] = t;
            }
            for i in 0..P {
                let t = a[j * P + i];
                c[j * d..(j + 1) * d]
                    .iter_mut()
                    .zip(&fbasis[i])
                    .for_each(|(x, y)| *x -= t * y);
            }
        }
        let (e, r) = thin_qr(&c, d, kc);
        (a, r, e)
    };
    let (a0, r0, _) = split(&stacked(&net));
    let mut st = TwoLayerState {
        cols: kc,
        a: a0,
        r: r0,
        c: net.c,
    };
    let mut scratch = TwoLayerScratch::new(d, k, b);
    let mut grad = net.zero_gradient();
    let mut worst: f64 = 0.0;
    for _ in 0..steps {
        let (_, _, e_perp) = split(&stacked(&net));
        let mut basis: Vec<Vec<f64>> = fbasis.to_vec();
        basis.extend(e_perp);
        let mut vecs = Vec::new();
        let mut shifts = Vec::new();
        let mut levels = Vec::new();
        let (mut x, mut xt) = (vec![0.0; d * b], vec![0.0; d * b]);
        for j in 0..b {
            let sh = model.draw_shift(&mut latent);
            let lev = if a_values.len() == 1 {
                0
            } else {
                latent.below(a_values.len() as u64) as usize
            };
            let (a, s) = (a_values[lev], (1.0 - a_values[lev].powi(2)).sqrt());
            let mut z = vec![0.0; d];
            normals.fill(&mut z);
            let mut xi = vec![0.0; d];
            normals.fill(&mut xi);
            let mut xs = z.clone();
            model.apply_shift(&sh, &mut xs);
            for i in 0..d {
                x[j * d + i] = xs[i];
                xt[j * d + i] = a * xs[i] + s * xi[i];
            }
            vecs.push(z);
            vecs.push(xi);
            shifts.push((sh.lambda, sh.nu));
            levels.push(lev);
        }
        let (coords, l) = project(&basis, &vecs);
        let draws = TwoLayerDraws {
            latents: shifts,
            levels,
            span: coords.iter().map(|c| [c[0], c[1], c[2]]).collect(),
            perp: coords.iter().flat_map(|c| c[P..].to_vec()).collect(),
            rem: l,
        };
        // Full step, as `TwoLayerLearner::step`.
        net.gradient_into(&x, &xt, &mut scratch, &mut grad);
        for (w, g) in net.w.chunks_mut(d).zip(grad.grad_w.chunks_mut(d)) {
            if case.spherical {
                let proj = dot(w, g) / dot(w, w);
                g.iter_mut()
                    .zip(w.iter())
                    .for_each(|(gi, wi)| *gi -= proj * wi);
                w.iter_mut()
                    .zip(g.iter())
                    .for_each(|(wi, gi)| *wi -= eta_w * gi);
                let n = dot(w, w).sqrt();
                w.iter_mut().for_each(|x| *x *= sd / n);
            } else {
                w.iter_mut()
                    .zip(g.iter())
                    .for_each(|(wi, gi)| *wi -= eta_w * gi);
            }
        }
        if case.tying == Tying::Untied {
            net.v
                .iter_mut()
                .zip(&grad.grad_v)
                .for_each(|(vi, gi)| *vi -= eta_w * gi);
        }
        net.c -= eta_w / (d * d) as f64 * grad.grad_c;
        rule.step(&mut st, &draws, &mut ws);
        let (af, rf, _) = split(&stacked(&net));
        let full = TwoLayerState {
            cols: kc,
            a: af,
            r: rf,
            c: net.c,
        };
        let scale = (d as f64).sqrt();
        let ea =
            st.a.iter()
                .zip(&full.a)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max)
                / scale;
        let eg = st
            .complement_gram()
            .iter()
            .zip(&full.complement_gram())
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
            / d as f64;
        worst = worst.max(ea).max(eg).max((st.c - full.c).abs());
    }
    worst
}

#[test]
fn pathwise_identity_two_layer() {
    let mut cases = Vec::new();
    for coupling in [
        Coupling::Independent,
        Coupling::Sign,
        Coupling::Even,
        Coupling::Odd,
    ] {
        for batch in [1, 4] {
            cases.push(TwoCase {
                coupling,
                batch,
                units: 2,
                tying: Tying::Tied,
                spherical: false,
                levels: vec![0.5],
            });
        }
    }
    cases.push(TwoCase {
        coupling: Coupling::Sign,
        batch: 1,
        units: 1,
        tying: Tying::Tied,
        spherical: true,
        levels: vec![0.5],
    });
    cases.push(TwoCase {
        coupling: Coupling::Odd,
        batch: 2,
        units: 2,
        tying: Tying::Untied,
        spherical: false,
        levels: vec![0.3, 0.7],
    });
    for c in &cases {
        let err = pathwise_two_layer(c, 10_000);
        eprintln!(
            "pathwise K={} {:?} spherical={} coupling {} B={}: max error {err:.2e}",
            c.units, c.tying, c.spherical, c.coupling, c.batch
        );
        assert!(
            err < 1e-12,
            "K = {} {:?} coupling {} B = {}: max error {err:e}",
            c.units,
            c.tying,
            c.coupling,
            c.batch
        );
    }
}
