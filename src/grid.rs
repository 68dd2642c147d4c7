//! The log grid of record points (SPEC §1): Grid(N, p) is the sorted set of distinct integers
//! ⌈10^{j/p} − 1e−9⌉ ≤ N, j = 0, 1, …, together with N itself.

/// Grid(N, p) as a sorted vector of step counts.
pub fn log_grid(n: u64, per_decade: u32) -> Vec<u64> {
    assert!(per_decade >= 1, "log grid needs at least one point per decade");
    let mut out = Vec::new();
    let mut j = 0u32;
    loop {
        let x = (10f64.powf(j as f64 / per_decade as f64) - 1e-9).ceil() as u64;
        if x > n {
            break;
        }
        if out.last() != Some(&x) {
            out.push(x);
        }
        j += 1;
    }
    if out.last() != Some(&n) && n > 0 {
        out.push(n);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn grid_1000_matches_spec_item_29() {
        let g = super::log_grid(1000, 10);
        assert_eq!(
            g,
            vec![
                1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26, 32, 40, 51, 64, 80, 100, 126, 159, 200, 252, 317, 399, 502,
                631, 795, 1000
            ]
        );
        assert_eq!(g.len(), 28);
    }

    #[test]
    fn grid_ends_at_n() {
        assert_eq!(*super::log_grid(12345, 10).last().unwrap(), 12345);
        assert_eq!(super::log_grid(1, 10), vec![1]);
    }
}
