use core::fmt::Debug;
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// The element type of d-length vectors: `f32` (default) or `f64` (validation mode).
///
/// Scalars that summarise a whole vector (dot products, norms) are returned as `f64` whatever `Self`
/// is, so the model-level algebra always runs in double precision.
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + bytemuck::Pod
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + 'static
{
    /// Name used in file headers and manifests (`"f32"` or `"f64"`).
    const NAME: &'static str;
    /// NPY dtype descriptor (`"<f4"` or `"<f8"`).
    const NPY_DESCR: &'static str;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    const NPY_DESCR: &'static str = "<f4";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    const NPY_DESCR: &'static str = "<f8";
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
}
