//! NPY files (format version 1.0, or 2.0 for huge headers; little-endian, C order): what
//! `numpy.load` reads directly, including with `mmap_mode="r"`.
//!
//! Whole-file [`write`]/[`read`] for small arrays, and [`MappedArray`]/[`ArrayView`] for arrays that
//! are preallocated once and then written in place through a memory map, so that appending a record
//! costs the same memory whatever the trajectory length.

use diffexp_kernels::Real;
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// The NPY header for `shape` and dtype descriptor `descr`, padded so the data starts at a multiple
/// of 64 bytes (which also keeps memory-mapped data aligned). Format version 1.0 unless the header
/// does not fit its 16-bit length, then 2.0 (32-bit length), as numpy itself does.
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    let v1 = (10 + dict.len() + 1).div_ceil(64) * 64;
    let (prefix, total) =
        if v1 - 10 <= u16::MAX as usize { (10, v1) } else { (12, (12 + dict.len() + 1).div_ceil(64) * 64) };
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY");
    if prefix == 10 {
        h.extend_from_slice(&[1, 0]);
        h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    } else {
        h.extend_from_slice(&[2, 0]);
        h.extend_from_slice(&((total - 12) as u32).to_le_bytes());
    }
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// Writes `data` (row-major, `shape`) as an NPY file, atomically: a temporary file is renamed into
/// place only once it is complete.
pub fn write<T: Real>(path: &Path, shape: &[usize], data: &[T]) -> io::Result<()> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("npy write {}: shape {shape:?} has {n} elements but data has {}", path.display(), data.len()),
        ));
    }
    let tmp = path.with_extension("npy.tmp");
    {
        let mut f = io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&header(T::NPY_DESCR, shape))?;
        f.write_all(bytemuck::cast_slice(data))?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes any [`NpyElement`] array as an NPY file, atomically (temporary file, sync, rename).
pub fn write_array<E: NpyElement>(path: &Path, shape: &[usize], data: &[E]) -> io::Result<()> {
    let n = element_count(shape)?;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("npy write {}: shape {shape:?} has {n} elements but data has {}", path.display(), data.len()),
        ));
    }
    let tmp = path.with_extension("npy.tmp");
    {
        let mut f = io::BufWriter::new(File::create(&tmp)?);
        f.write_all(&header(E::DESCR, shape))?;
        f.write_all(bytemuck::cast_slice(data))?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes an f64 NPY file.
pub fn write_f64(path: &Path, shape: &[usize], data: &[f64]) -> io::Result<()> {
    write::<f64>(path, shape, data)
}

/// Parsed NPY header.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Byte offset of the data.
    pub data_offset: usize,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses an NPY header (versions 1.0, 2.0 and 3.0) from the start of `bytes`.
pub fn parse_header(bytes: &[u8]) -> io::Result<NpyHeader> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not an NPY file (missing \\x93NUMPY magic)"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated NPY header"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(format!("unsupported NPY version {v}"))),
    };
    let end = start.checked_add(len).ok_or_else(|| bad("NPY header length overflows"))?;
    if bytes.len() < end {
        return Err(bad(format!("truncated NPY header: needs {end} bytes, file has {}", bytes.len())));
    }
    let dict = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("NPY header is not UTF-8"))?;
    let field = |key: &str| -> io::Result<&str> {
        let k = format!("'{key}':");
        let i = dict.find(&k).ok_or_else(|| bad(format!("NPY header lacks '{key}'")))?;
        Ok(dict[i + k.len()..].trim_start())
    };
    let descr_rest = field("descr")?;
    let descr = descr_rest
        .strip_prefix('\'')
        .and_then(|r| r.split_once('\''))
        .map(|(d, _)| d.to_string())
        .ok_or_else(|| bad("NPY header 'descr' is not a string"))?;
    let fo = field("fortran_order")?;
    let fortran_order = if fo.starts_with("True") {
        true
    } else if fo.starts_with("False") {
        false
    } else {
        return Err(bad("NPY header 'fortran_order' is not True/False"));
    };
    let sh = field("shape")?;
    let sh = sh.strip_prefix('(').ok_or_else(|| bad("NPY header 'shape' is not a tuple"))?;
    let close = sh.find(')').ok_or_else(|| bad("NPY header 'shape' tuple is not closed"))?;
    let mut shape = Vec::new();
    for part in sh[..close].split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        shape.push(p.parse::<usize>().map_err(|_| bad(format!("NPY shape entry `{p}` is not an integer")))?);
    }
    Ok(NpyHeader { descr, fortran_order, shape, data_offset: end })
}

/// Reads a whole NPY file of element type `T`, checking dtype, order and length.
pub fn read<T: Real>(path: &Path) -> io::Result<(Vec<usize>, Vec<T>)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let h = parse_header(&bytes).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if h.descr != T::NPY_DESCR {
        return Err(bad(format!("{}: dtype {} but {} expected", path.display(), h.descr, T::NPY_DESCR)));
    }
    if h.fortran_order {
        return Err(bad(format!("{}: Fortran-ordered arrays are not supported", path.display())));
    }
    let n = h.shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).ok_or_else(|| bad("NPY shape overflows"))?;
    let need = n.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| bad("NPY size overflows"))?;
    let data = &bytes[h.data_offset..];
    if data.len() != need {
        return Err(bad(format!(
            "{}: shape {:?} needs {need} data bytes, file has {}",
            path.display(),
            h.shape,
            data.len()
        )));
    }
    let mut out = vec![T::default(); n];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(data);
    Ok((h.shape, out))
}

/// Element types the store writes: plain little-endian numbers with their numpy descriptor.
pub trait NpyElement: bytemuck::Pod + PartialEq + std::fmt::Debug + Send + Sync {
    const DESCR: &'static str;
}
impl NpyElement for f64 {
    const DESCR: &'static str = "<f8";
}
impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
}
impl NpyElement for i64 {
    const DESCR: &'static str = "<i8";
}
impl NpyElement for u64 {
    const DESCR: &'static str = "<u8";
}

/// Elements in `shape`, or an error if the product overflows.
fn element_count(shape: &[usize]) -> io::Result<usize> {
    shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).ok_or_else(|| bad("NPY shape overflows"))
}

/// Checks a parsed header against what the caller expects: dtype, C order, shape (if given) and
/// the file length (exactly header + data, so a truncated or padded file is refused before it is
/// mapped: touching a mapping past the end of its file would kill the process).
fn check_header<E: NpyElement>(
    path: &Path,
    h: &NpyHeader,
    file_len: u64,
    expect: Option<&[usize]>,
) -> io::Result<usize> {
    let at = |msg: String| bad(format!("{}: {msg}", path.display()));
    if h.descr != E::DESCR {
        return Err(at(format!("dtype {} but {} expected", h.descr, E::DESCR)));
    }
    if h.fortran_order {
        return Err(at("Fortran-ordered arrays are not supported".into()));
    }
    if let Some(s) = expect {
        if h.shape != s {
            return Err(at(format!("shape {:?} but {:?} expected", h.shape, s)));
        }
    }
    let n = element_count(&h.shape)?;
    let need = n
        .checked_mul(std::mem::size_of::<E>())
        .and_then(|b| b.checked_add(h.data_offset))
        .ok_or_else(|| at("NPY size overflows".into()))?;
    if file_len != need as u64 {
        return Err(at(format!(
            "shape {:?} needs {need} bytes (header {} + data), file has {file_len}: truncated or not written by diffexp",
            h.shape, h.data_offset
        )));
    }
    if h.data_offset % std::mem::align_of::<E>() != 0 {
        return Err(at(format!("data offset {} is not aligned for {}", h.data_offset, E::DESCR)));
    }
    Ok(n)
}

/// Reads at most the first 64 KiB + 12 bytes of a file: enough for any header we accept.
fn read_header_bytes(file: &mut File) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    file.take(65536 + 12).read_to_end(&mut head)?;
    Ok(head)
}

/// A fixed-shape NPY array opened read-write through a shared memory map. Stores go straight to
/// the page cache, so they survive the process being killed; [`MappedArray::flush`] also makes
/// them durable on disk.
pub struct MappedArray<E: NpyElement> {
    map: MmapMut,
    offset: usize,
    len: usize,
    shape: Vec<usize>,
    path: PathBuf,
    _e: PhantomData<E>,
}

impl<E: NpyElement> MappedArray<E> {
    /// Creates `path` holding `shape` elements all equal to `fill`, atomically (written to a
    /// temporary file in constant memory, synced, renamed), and maps it.
    pub fn create(path: &Path, shape: &[usize], fill: E) -> io::Result<Self> {
        let n = element_count(shape)?;
        let tmp = path.with_extension("npy.tmp");
        {
            let mut f = io::BufWriter::new(File::create(&tmp)?);
            f.write_all(&header(E::DESCR, shape))?;
            let chunk = vec![fill; n.clamp(1, 8192)];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                f.write_all(bytemuck::cast_slice(&chunk[..k]))?;
                left -= k;
            }
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Self::open(path, Some(shape))
    }

    /// Maps an existing array read-write, checking dtype, order, shape (if given) and length.
    pub fn open(path: &Path, expect: Option<&[usize]>) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let head = read_header_bytes(&mut file)?;
        let h = parse_header(&head).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        let len = check_header::<E>(path, &h, file.metadata()?.len(), expect)?;
        // SAFETY: the file's length was checked to cover header + data; diffexp is the only writer
        // of a store it is running, and nothing truncates the file while it is mapped.
        let map = unsafe { MmapOptions::new().map_mut(&file)? };
        Ok(Self { map, offset: h.data_offset, len, shape: h.shape, path: path.to_path_buf(), _e: PhantomData })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn data(&self) -> &[E] {
        bytemuck::cast_slice(&self.map[self.offset..self.offset + self.len * std::mem::size_of::<E>()])
    }

    pub fn data_mut(&mut self) -> &mut [E] {
        let end = self.offset + self.len * std::mem::size_of::<E>();
        bytemuck::cast_slice_mut(&mut self.map[self.offset..end])
    }

    /// Flushes elements `range` to disk (synchronously).
    pub fn flush(&self, range: std::ops::Range<usize>) -> io::Result<()> {
        let sz = std::mem::size_of::<E>();
        if range.is_empty() {
            return Ok(());
        }
        self.map.flush_range(self.offset + range.start * sz, (range.end - range.start) * sz)
    }
}

impl MappedArray<i64> {
    /// Stores `value` at `index` with release ordering: every store made before it (the data of a
    /// record) is visible to anyone who sees the new value, and the 8-byte aligned store itself is
    /// never torn. This is how a record is published.
    pub fn publish(&mut self, index: usize, value: i64) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        let slot: &mut i64 = &mut self.data_mut()[index];
        // SAFETY: `slot` is a valid, 8-byte aligned i64 (data offsets are multiples of 64 in a
        // page-aligned mapping) to which we hold the only mutable reference.
        let atomic = unsafe { std::sync::atomic::AtomicI64::from_ptr(slot as *mut i64) };
        atomic.store(value, std::sync::atomic::Ordering::Release);
    }
}

/// A read-only view of an NPY file through a memory map (shards being merged, a finished store
/// being reported on).
pub struct ArrayView<E: NpyElement> {
    map: Option<Mmap>,
    offset: usize,
    len: usize,
    shape: Vec<usize>,
    _e: PhantomData<E>,
}

impl<E: NpyElement> ArrayView<E> {
    /// Maps `path` read-only after checking dtype, order, shape (if given) and length.
    pub fn open(path: &Path, expect: Option<&[usize]>) -> io::Result<Self> {
        let mut file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let head = read_header_bytes(&mut file)?;
        let h = parse_header(&head).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        let len = check_header::<E>(path, &h, file.metadata()?.len(), expect)?;
        // An empty mapping is an error on some systems; zero-element arrays need none.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the length was checked above; stores are never truncated in place.
            Some(unsafe { MmapOptions::new().map(&file)? })
        };
        Ok(Self { map, offset: h.data_offset, len, shape: h.shape, _e: PhantomData })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[E] {
        match &self.map {
            Some(m) => bytemuck::cast_slice(&m[self.offset..self.offset + self.len * std::mem::size_of::<E>()]),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_follows_the_npy_spec() {
        let h = header("<f8", &[3, 4]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        assert_eq!(*h.last().unwrap(), b'\n');
        let p = parse_header(&h).unwrap();
        assert_eq!(p.shape, vec![3, 4]);
        assert_eq!(p.descr, "<f8");
        assert!(!p.fortran_order);
        assert_eq!(parse_header(&header("<f4", &[5])).unwrap().shape, vec![5]);
    }

    #[test]
    fn round_trip_and_rejections() {
        let dir = std::env::temp_dir().join(format!("diffexp-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        write::<f32>(&p, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let (s, d) = read::<f32>(&p).unwrap();
        assert_eq!(s, vec![2, 3]);
        assert_eq!(d, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(read::<f64>(&p).unwrap_err().to_string().contains("dtype"));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&p, &bytes).unwrap();
        assert!(read::<f32>(&p).unwrap_err().to_string().contains("data bytes"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
