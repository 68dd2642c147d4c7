//! A vector whose first element sits on a cache line, so that full-register loads of it (and of
//! its columns, when the column length is a multiple of 16 f32 / 8 f64) never straddle two lines.
//! Measured on `blas1::inner_products` at d = 10⁴ (f32, L2-resident): 0.32 ns per element and
//! tile with the allocator's 16-byte alignment, 0.15 ns with 64-byte alignment.

use crate::Real;

/// Cache line size in bytes.
const LINE: usize = 64;

/// A fixed-length buffer of `T` starting on a 64-byte boundary; it dereferences to `[T]`.
#[derive(Clone, Debug)]
pub struct AlignedVec<T> {
    buf: Vec<T>,
    offset: usize,
    len: usize,
}

impl<T: Real> AlignedVec<T> {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let per_line = LINE / size_of::<T>();
        let buf = vec![T::default(); len + per_line];
        // The buffer never grows, so the offset found now stays valid.
        let misalign = (buf.as_ptr() as usize % LINE) / size_of::<T>();
        let offset = (per_line - misalign) % per_line;
        Self { buf, offset, len }
    }

    /// A copy of `x`.
    pub fn from_slice(x: &[T]) -> Self {
        let mut a = Self::zeros(x.len());
        a.as_mut_slice().copy_from_slice(x);
        a
    }

    pub fn as_slice(&self) -> &[T] {
        &self.buf[self.offset..self.offset + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.buf[self.offset..self.offset + self.len]
    }
}

impl<T: Real> core::ops::Deref for AlignedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Real> core::ops::DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Real> FromIterator<T> for AlignedVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::from_slice(&iter.into_iter().collect::<Vec<T>>())
    }
}

impl<'a, T: Real> IntoIterator for &'a AlignedVec<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_has_the_length_asked_for() {
        for len in [0usize, 1, 17, 1000, 100_003] {
            let mut a = AlignedVec::<f32>::zeros(len);
            let mut b = AlignedVec::<f64>::zeros(len);
            assert_eq!((a.as_slice().len(), b.as_slice().len()), (len, len));
            assert_eq!(a.as_mut_slice().as_ptr() as usize % LINE, 0);
            assert_eq!(b.as_mut_slice().as_ptr() as usize % LINE, 0);
            assert!(a.as_slice().iter().all(|&x| x == 0.0));
            let c = AlignedVec::from_slice(&(0..len).map(|i| i as f32).collect::<Vec<_>>());
            assert_eq!(c.as_ptr() as usize % LINE, 0);
            assert!(c.iter().enumerate().all(|(i, &x)| x == i as f32));
        }
    }
}
