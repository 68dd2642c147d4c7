//! Real MNIST (SPEC §6.4, §7 items 48 and 54 for MNIST). These tests skip, with a message, when
//! `data/cache/mnist` lacks the files: run `bash data/fetch_data.sh` first (CI does).

/// Wrapped in `dae` so that `cargo test -p diffexp dae` selects these tests.
mod dae {

    use diffexp::dae::config::MnistScaling;
    use diffexp::dae::target::mnist_moments;
    use diffexp::data::checksum::sha256_file;
    use diffexp::data::mnist::{MNIST_FILES, Mnist};
    use faer::{Mat, Side};

    fn mnist_or_skip() -> Option<Mnist> {
        let dir = Mnist::default_dir();
        if !Mnist::available(&dir) {
            eprintln!("SKIPPED: MNIST not found in {}; run `bash data/fetch_data.sh`", dir.display());
            return None;
        }
        Some(Mnist::load(&dir, false).unwrap())
    }

    /// SPEC §7 item 54 (MNIST part): sha256 of the four files, shapes, first labels, class counts and mean
    /// pixels.
    #[test]
    fn mnist_idx_files_match_spec_sanity_values() {
        let Some(m) = mnist_or_skip() else { return };
        let dir = Mnist::default_dir();
        for (f, _, sha) in MNIST_FILES {
            assert_eq!(sha256_file(&dir.join(f)).unwrap(), sha, "{f}");
        }
        assert_eq!(m.train_images.dims, vec![60000, 28, 28]);
        assert_eq!(m.test_images.dims, vec![10000, 28, 28]);
        assert_eq!(&m.train_labels.data[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        assert_eq!(&m.test_labels.data[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
        assert_eq!(Mnist::class_counts(&m.train_labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
        assert_eq!(Mnist::class_counts(&m.test_labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
        let mean = |a: &[u8]| a.iter().map(|&p| p as f64).sum::<f64>() / a.len() as f64 / 255.0;
        assert!((mean(&m.train_images.data) - 0.1307).abs() < 1e-4);
        assert!((mean(&m.test_images.data) - 0.1325).abs() < 1e-4);
    }

    /// SPEC §7 item 48: 6,265 training sevens; Σ₇ symmetric PSD (smallest eigenvalue ≥ −1e-10); after
    /// rescaling tr Σ₇ = 784.
    #[test]
    fn mnist_sevens_covariance_is_psd_with_trace_d() {
        let Some(m) = mnist_or_skip() else { return };
        let (n, _) = m.train_digit(7, 1.0 / 255.0);
        assert_eq!(n, 6265);
        let (_, cov) = mnist_moments(&m, 7, MnistScaling::TraceD);
        let d = 784;
        let tr: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        assert!((tr - 784.0).abs() < 1e-9, "trace {tr}");
        for i in 0..d {
            for j in 0..i {
                assert_eq!(cov[i * d + j], cov[j * d + i]);
            }
        }
        let a = Mat::<f64>::from_fn(d, d, |i, j| cov[i * d + j]);
        let ev = a.self_adjoint_eigenvalues(Side::Lower).unwrap();
        assert!(ev[0] >= -1e-10, "smallest eigenvalue {}", ev[0]);
        let (_, raw) = mnist_moments(&m, 7, MnistScaling::Raw01);
        let tr_raw: f64 = (0..d).map(|i| raw[i * d + i]).sum();
        assert!(tr_raw > 1.0 && tr_raw < 200.0, "raw [0,1] trace {tr_raw}");
    }
}
