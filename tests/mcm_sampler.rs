//! SPEC §7 items 1–7, 11, 16 and 28: the mixed cumulant sampler, its whitening, its moments and its
//! Gaussian surrogate. Monte-Carlo checks use 5 standard errors estimated from the same sample.

use diffexp::kernels::NormalRng;
use diffexp::model::{Coupling, McmParams, MixedCumulantModel, NuLaw, SpikeLayout, Spikes};
use diffexp::rng::ScalarRng;

fn model(d: usize, params: McmParams, layout: SpikeLayout, seed: u64) -> MixedCumulantModel<f64> {
    MixedCumulantModel::new(params, Spikes::draw(d, layout, &mut ScalarRng::from_seed(seed)))
}

fn params(beta_v: f64, law: NuLaw, coupling: Coupling) -> McmParams {
    McmParams { beta_m: 0.7, beta_u: 2.0, beta_v, nu_law: law, coupling }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Dense S = I − c_S vvᵀ at small d.
fn dense_s(v: &[f64], c_s: f64) -> Vec<Vec<f64>> {
    let d = v.len();
    (0..d).map(|i| (0..d).map(|j| (i == j) as u8 as f64 - c_s * v[i] * v[j]).collect()).collect()
}

fn matvec(a: &[Vec<f64>], x: &[f64]) -> Vec<f64> {
    a.iter().map(|r| dot(r, x)).collect()
}

#[test]
fn whitening_identities() {
    // Item 1.
    for bv in [0.5, 1.0, 3.0, 5.0, 10.0] {
        let p = params(bv, NuLaw::Rademacher, Coupling::Independent);
        assert!((p.c_s() - (1.0 - 1.0 / (1.0f64 + bv).sqrt())).abs() < 1e-14);
    }
    let d = 8;
    let m = model(d, params(3.0, NuLaw::Rademacher, Coupling::Independent), SpikeLayout::Orthonormal, 1);
    let (v, c_s) = (&m.spikes.v, m.c_s);
    let s = dense_s(v, c_s);
    // Item 2: Sv = v/√(1+β_v); Sy = y for y ⊥ v, using the O(d) form y − c_S⟨v,y⟩v.
    let apply = |y: &[f64]| -> Vec<f64> {
        let c = c_s * dot(v, y);
        y.iter().zip(v).map(|(a, b)| a - c * b).collect()
    };
    let sv = apply(v);
    for i in 0..d {
        assert!((sv[i] - v[i] / 2.0).abs() < 1e-14);
    }
    let mut rng = ScalarRng::from_seed(2);
    let mut y: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let c = dot(&y, v);
    y.iter_mut().zip(v).for_each(|(a, b)| *a -= c * b);
    let sy = apply(&y);
    for i in 0..d {
        assert!((sy[i] - y[i]).abs() < 1e-14);
    }
    // Item 3: S² = (I + β_v vvᵀ)⁻¹, i.e. S²(I + β_v vvᵀ) = I.
    for i in 0..d {
        for j in 0..d {
            let s2: f64 = (0..d).map(|k| s[i][k] * s[k][j]).sum();
            let mut prod = 0.0;
            for k in 0..d {
                let s2ik: f64 = (0..d).map(|l| s[i][l] * s[l][k]).sum();
                prod += s2ik * ((k == j) as u8 as f64 + 3.0 * v[k] * v[j]);
            }
            let _ = s2;
            assert!((prod - (i == j) as u8 as f64).abs() < 1e-13, "({i},{j}): {prod}");
        }
    }
}

#[test]
fn o_d_sampler_equals_dense_formula() {
    // Item 4: on identical draws, x = β_m m + √β_u λ u + S(√β_v ν v + z) with a dense S.
    let d = 8;
    for coupling in [Coupling::Independent, Coupling::Sign, Coupling::Even, Coupling::Odd] {
        let m = model(d, params(3.0, NuLaw::Rademacher, coupling), SpikeLayout::Random, 3);
        let s = dense_s(&m.spikes.v, m.c_s);
        let (mut lat, mut nor) = (ScalarRng::from_seed(4), NormalRng::from_seed(5));
        let (mut lat2, mut nor2) = (lat.clone(), nor.clone());
        for _ in 0..20 {
            let mut x = vec![0.0; d];
            let sh = m.sample_into(&mut lat, &mut nor, &mut x);
            let sh2 = m.draw_shift(&mut lat2);
            assert_eq!(sh, sh2);
            let mut z = vec![0.0; d];
            nor2.fill(&mut z);
            let inner: Vec<f64> = (0..d).map(|i| 3f64.sqrt() * sh.nu * m.spikes.v[i] + z[i]).collect();
            let sz = matvec(&s, &inner);
            for i in 0..d {
                let want = 0.7 * m.spikes.m[i] + 2f64.sqrt() * sh.lambda * m.spikes.u[i] + sz[i];
                assert!((x[i] - want).abs() < 1e-13, "{coupling}: {} vs {want}", x[i]);
            }
        }
    }
}

/// Monte-Carlo mean and covariance of the projections of x on a set of unit test directions,
/// compared with Eμ and Cov from the closed forms, at 5 standard errors each.
fn check_moments(
    sample: &mut dyn FnMut(&mut [f64]),
    mean: &[f64],
    cov: &[Vec<f64>],
    dirs: &[Vec<f64>],
    n: usize,
    what: &str,
) {
    let k = dirs.len();
    let d = mean.len();
    let mut x = vec![0.0; d];
    let mut s1 = vec![0.0; k];
    let mut s2 = vec![vec![0.0; k]; k];
    let mut s4 = vec![vec![0.0; k]; k];
    let mut mu_p = vec![0.0; k];
    for a in 0..k {
        mu_p[a] = dot(&dirs[a], mean);
    }
    let mut p = vec![0.0; k];
    for _ in 0..n {
        sample(&mut x);
        for a in 0..k {
            p[a] = dot(&dirs[a], &x);
            s1[a] += p[a];
        }
        for a in 0..k {
            for b in 0..k {
                let c = (p[a] - mu_p[a]) * (p[b] - mu_p[b]);
                s2[a][b] += c;
                s4[a][b] += c * c;
            }
        }
    }
    let nf = n as f64;
    for a in 0..k {
        let want_var: f64 = (0..d).map(|i| dirs[a][i] * matvec(cov, &dirs[a])[i]).sum();
        let m = s1[a] / nf;
        let se = (want_var / nf).sqrt();
        assert!((m - mu_p[a]).abs() < 5.0 * se, "{what}: mean along dir {a}: {m} vs {}", mu_p[a]);
        for b in 0..k {
            let want: f64 = dot(&dirs[a], &matvec(cov, &dirs[b]));
            let c = s2[a][b] / nf;
            let se = ((s4[a][b] / nf - c * c) / nf).sqrt();
            assert!((c - want).abs() < 5.0 * se + 1e-12, "{what}: cov({a},{b}) = {c} vs {want} (se {se})");
        }
    }
}

fn test_dirs(m: &MixedCumulantModel<f64>, rng: &mut ScalarRng) -> Vec<Vec<f64>> {
    let d = m.dim();
    let mut dirs = vec![m.spikes.m.to_vec(), m.spikes.u.to_vec(), m.spikes.v.to_vec()];
    for _ in 0..2 {
        let mut r: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let n = dot(&r, &r).sqrt();
        r.iter_mut().for_each(|x| *x /= n);
        dirs.push(r);
    }
    // A mixed direction that sees the u–v cross term.
    dirs.push(m.spikes.u.iter().zip(&m.spikes.v).map(|(a, b)| (a + b) / 2f64.sqrt()).collect());
    dirs
}

#[test]
fn mean_and_covariance_match_closed_form() {
    // Items 5 and 16 (projected on the spikes, random directions and u+v; 2·10⁵ samples each).
    let d = 40;
    let n = 200_000;
    let mut rng = ScalarRng::from_seed(6);
    for layout in [SpikeLayout::Orthonormal, SpikeLayout::Random] {
        for coupling in [Coupling::Independent, Coupling::Sign, Coupling::Even, Coupling::Odd] {
            let m = model(d, params(4.0, NuLaw::Rademacher, coupling), layout, 7);
            let (mean, cov) = (m.mean(), m.covariance_dense());
            let dirs = test_dirs(&m, &mut rng);
            let (mut lat, mut nor) = (ScalarRng::from_seed(8), NormalRng::from_seed(9));
            check_moments(
                &mut |x| {
                    m.sample_into(&mut lat, &mut nor, x);
                },
                &mean,
                &cov,
                &dirs,
                n,
                &format!("{layout:?} {coupling} data"),
            );
            let sur = m.surrogate();
            let mut nor = NormalRng::from_seed(10);
            check_moments(
                &mut |x| sur.sample_into(&mut nor, x),
                &mean,
                &cov,
                &dirs,
                n,
                &format!("{layout:?} {coupling} surrogate"),
            );
            if layout == SpikeLayout::Orthonormal {
                let p = m.params;
                let det = 1.0 + p.beta_u - p.c_uv() * p.c_uv();
                assert!(det > 0.0 && (sur.det_c2() - det).abs() < 1e-12, "det C₂ {} vs {det}", sur.det_c2());
            }
        }
    }
}

/// Sample mean of y⁴ − 3 and y³ along v, with standard errors.
fn cumulants_along_v(m: &MixedCumulantModel<f64>, n: usize) -> ([f64; 3], [f64; 3]) {
    let d = m.dim();
    let (mut lat, mut nor) = (ScalarRng::from_seed(20), NormalRng::from_seed(21));
    let mut x = vec![0.0; d];
    let (mut s2, mut s3, mut s4, mut s33, mut s44, mut s22) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for _ in 0..n {
        m.sample_into(&mut lat, &mut nor, &mut x);
        let y = dot(&m.spikes.v, &x);
        let (y2, y3, y4) = (y * y, y * y * y, y * y * y * y);
        s2 += y2;
        s22 += y2 * y2;
        s3 += y3;
        s33 += y3 * y3;
        s4 += y4;
        s44 += y4 * y4;
    }
    let nf = n as f64;
    let se = |s: f64, ss: f64| ((ss / nf - (s / nf).powi(2)) / nf).sqrt();
    ([s2 / nf, s3 / nf, s4 / nf - 3.0], [se(s2, s22), se(s3, s33), se(s4, s44)])
}

#[test]
fn cumulants_along_v_match_latent_law() {
    // Items 6 and 7: Var⟨v,x⟩ = 1, κ₃ = s_v³κ₃(ν), κ₄ = s_v⁴κ₄(ν) (β_m = β_u = 0 so ⟨v,x⟩ is the
    // v-projection alone; with β_u > 0 and orthonormal spikes it is the same, tested for Rademacher).
    let d = 10;
    let n = 400_000;
    let bv: f64 = 3.0;
    let sv: f64 = (bv / (1.0 + bv)).sqrt();
    for (law, coupling) in [
        (NuLaw::Rademacher, Coupling::Independent),
        (NuLaw::Rademacher, Coupling::Sign),
        (NuLaw::Rademacher, Coupling::Even),
        (NuLaw::Rademacher, Coupling::Odd),
        (NuLaw::Uniform, Coupling::Independent),
        (NuLaw::Laplace, Coupling::Independent),
        (NuLaw::TwoPoint(0.3), Coupling::Independent),
    ] {
        let p = McmParams { beta_m: 0.0, beta_u: 2.0, beta_v: bv, nu_law: law, coupling };
        let m = model(d, p, SpikeLayout::Orthonormal, 22);
        let (est, se) = cumulants_along_v(&m, n);
        assert!((est[0] - 1.0).abs() < 5.0 * se[0], "{law} {coupling}: Var {} ± {}", est[0], se[0]);
        let k3 = sv.powi(3) * law.kappa3();
        assert!((est[1] - k3).abs() < 5.0 * se[1], "{law} {coupling}: κ₃ {} vs {k3} ± {}", est[1], se[1]);
        let k4 = sv.powi(4) * law.kappa4();
        assert!((est[2] - k4).abs() < 5.0 * se[2], "{law} {coupling}: κ₄ {} vs {k4} ± {}", est[2], se[2]);
        if law == NuLaw::Rademacher {
            assert!((k4 - (-2.0 * bv * bv / ((1.0 + bv) * (1.0 + bv)))).abs() < 1e-14);
        }
    }
}

/// Two-sample Kolmogorov–Smirnov statistic.
fn ks(mut a: Vec<f64>, mut b: Vec<f64>) -> f64 {
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    b.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let (mut i, mut j, mut dmax) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        // Step past every copy of the next value in both samples (ties matter for discrete laws).
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        dmax = dmax.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    dmax
}

#[test]
fn coupling_leaves_marginal_of_nu_unchanged() {
    // Item 11: two-sample KS at level 0.001 (critical value 1.95·√(2/n)).
    let n = 50_000;
    for law in [NuLaw::Uniform, NuLaw::Laplace, NuLaw::Rademacher] {
        let draw = |c: Coupling, seed: u64| {
            let mut r = ScalarRng::from_seed(seed);
            (0..n).map(|_| diffexp::model::latent::draw_latents(law, c, &mut r).1).collect::<Vec<f64>>()
        };
        let base = draw(Coupling::Independent, 30);
        for c in [Coupling::Sign, Coupling::Even, Coupling::Odd] {
            let dstat = ks(base.clone(), draw(c, 31));
            assert!(dstat < 1.95 * (2.0 / n as f64).sqrt(), "{law} {c}: KS D = {dstat}");
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    // Item 28: identical configuration and seed give bit-identical trajectories with 1 and 8 threads.
    let cfg = diffexp::config::Config::from_toml(
        "[model]\nbeta_u = 3.0\nbeta_v = 6.0\ncoupling = \"sign\"\n[train]\nwalkers = 6\nmax_samples = 3000\nbatch = 2\n\
         [observe]\nn_eval = 8\n[study]\ndims = [40, 64]\n",
    )
    .unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| diffexp::study::run_jobs(&cfg, &cfg.study.dims, true, &|_| {}))
    };
    let (a, b) = (run(1), run(8));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.d, x.walker), (y.d, y.walker));
        assert_eq!(x.outcome, y.outcome);
        assert_eq!(x.records.len(), y.records.len());
        for (r, s) in x.records.iter().zip(&y.records) {
            assert_eq!(format!("{r:?}"), format!("{s:?}"));
            assert!(r.overlaps.iter().zip(&s.overlaps).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }
}
