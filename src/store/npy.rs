//! NPY files (format version 1.0, little-endian, C order): what `numpy.load` reads directly.

use diffexp_kernels::Real;
use std::io::{self, Read, Write};
use std::path::Path;

/// The NPY header for `shape` and dtype descriptor `descr`, padded so the data starts at a multiple
/// of 64 bytes (which also keeps memory-mapped data aligned).
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
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
    let n = h
        .shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| bad("NPY shape overflows"))?;
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
