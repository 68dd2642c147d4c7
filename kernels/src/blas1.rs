//! Level-1 kernels. Accumulations return `f64`.

use crate::Real;

/// ⟨a, b⟩.
#[track_caller]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    // Reference implementation: 8 independent f64 partial sums.
    let mut acc = [0.0f64; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            let i = c * 8 + l;
            acc[l] += a[i].to_f64() * b[i].to_f64();
        }
    }
    let mut tail = 0.0;
    for i in chunks * 8..a.len() {
        tail += a[i].to_f64() * b[i].to_f64();
    }
    acc.iter().sum::<f64>() + tail
}

/// ‖a‖².
pub fn nrm2_sq<T: Real>(a: &[T]) -> f64 {
    dot(a, a)
}

/// y ← y + alpha·x.
#[track_caller]
pub fn axpy<T: Real>(alpha: f64, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    let a = T::from_f64(alpha);
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi.mul_add(a, *yi);
    }
}

/// x ← alpha·x.
pub fn scale<T: Real>(alpha: f64, x: &mut [T]) {
    let a = T::from_f64(alpha);
    for xi in x.iter_mut() {
        *xi *= a;
    }
}
