//! Minimal, strict reader/writer for NumPy `.npy` files (little-endian f64/f32, C order).
//!
//! Written here rather than taken from candle so every malformed file gets an error that
//! names the file and what was expected.

use crate::error::{Error, Result};
use crate::io::write_atomic;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element type of a stored array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
}

/// A dense row-major array read from `.npy`, values widened to f64.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    pub dtype: Dtype,
}

/// Reads a `.npy` file holding f64 or f32 values.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes).map_err(|msg| Error::file(path, msg))
}

/// Decodes the bytes of a `.npy` file, or says what is wrong with them. Nothing is allocated
/// for the values before the header's shape is checked against the data actually present.
pub fn decode(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (missing the \\x93NUMPY magic)".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start + header_len;
    if bytes.len() < end {
        return Err("truncated .npy header".into());
    }
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let dtype = match descr.trim().trim_matches(|c| c == '\'' || c == '"') {
        "<f8" => Dtype::F64,
        "<f4" => Dtype::F32,
        other => {
            return Err(format!(
                "dtype {other} is not supported (expected float64 '<f8' or float32 '<f4')"
            ))
        }
    };
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")?;
    if fortran.trim() != "False" {
        return Err("Fortran-ordered arrays are not supported (save with C order)".into());
    }
    let shape_text = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let shape = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape {shape_text}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let width = if dtype == Dtype::F64 { 8 } else { 4 };
    let body = &bytes[end..];
    let needed = shape
        .iter()
        .try_fold(width, |n: usize, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} is too large to address"))?;
    if body.len() != needed {
        return Err(format!(
            "shape {shape:?} needs {needed} bytes of data, file has {}",
            body.len()
        ));
    }
    let data = match dtype {
        Dtype::F64 => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F32 => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
    };
    Ok(NpyArray { shape, data, dtype })
}

/// The text after `'key':` up to the next top-level comma (shape tuples kept whole).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}':");
    let at = header.find(&pat)? + pat.len();
    let rest = &header[at..];
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Reads finite rows `[N ≥ 1, dim]` from a `.npy` file (`what` names them in errors).
pub fn read_rows(path: &Path, dim: usize, what: &str) -> Result<crate::Batch> {
    let a = read(path)?;
    if a.shape.len() != 2 || a.shape[1] != dim {
        return Err(Error::file(
            path,
            format!("expected {what} of shape [N, {dim}], got {:?}", a.shape),
        ));
    }
    if a.shape[0] == 0 {
        return Err(Error::file(path, "expected at least one sample, got N = 0"));
    }
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::file(
            path,
            format!("value at flat index {i} is not finite"),
        ));
    }
    crate::Batch::new(a.shape[0], dim, a.data)
}

/// Encodes `data` with `shape` as `.npy` bytes in the given dtype.
pub fn encode(shape: &[usize], data: &[f64], dtype: Dtype) -> Vec<u8> {
    let descr = match dtype {
        Dtype::F64 => "<f8",
        Dtype::F32 => "<f4",
    };
    let shape_text = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so that magic + version + length + header + '\n' is a multiple of 64 bytes.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(header.len() + 10 + data.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        match dtype {
            Dtype::F64 => out.extend_from_slice(&v.to_le_bytes()),
            Dtype::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
        }
    }
    out
}

/// Writes an array atomically (temporary file, then rename).
pub fn write(path: &Path, shape: &[usize], data: &[f64], dtype: Dtype) -> Result<()> {
    write_atomic(path, &encode(shape, data, dtype))
}

/// Writes an array and its JSON sidecar (`path` with extension `.json`), each atomically;
/// if the sidecar cannot be written, the array is removed again, so a run leaves both or
/// neither. Returns the sidecar's path.
pub fn write_with_sidecar(
    path: &Path,
    shape: &[usize],
    data: &[f64],
    dtype: Dtype,
    sidecar: &serde_json::Value,
) -> Result<std::path::PathBuf> {
    let side = path.with_extension("json");
    let text = serde_json::to_string_pretty(sidecar).expect("sidecars serialise");
    write(path, shape, data, dtype)?;
    if let Err(e) = write_atomic(&side, text.as_bytes()) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_round_trips_both_dtypes() {
        let data = vec![1.5, -2.25, 3.0e-7, 4.0, 5.0, 6.0];
        let a = decode(&encode(&[2, 3], &data, Dtype::F64)).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, data);
        let b = decode(&encode(&[6], &data, Dtype::F32)).unwrap();
        assert_eq!(b.shape, vec![6]);
        assert_eq!(b.data[2], 3.0e-7f32 as f64);
        assert_eq!(encode(&[2, 3], &data, Dtype::F64).len() % 16, 0);
    }

    #[test]
    fn rejects_non_npy_and_wrong_dtype_and_truncation() {
        assert!(decode(b"{\"not\": \"npy\"}")
            .unwrap_err()
            .contains("not a .npy"));
        let mut bytes = encode(&[2], &[1.0, 2.0], Dtype::F64);
        let at = bytes.windows(3).position(|w| w == b"<f8").unwrap();
        bytes[at + 1] = b'i';
        assert!(decode(&bytes).unwrap_err().contains("<i8"));
        let good = encode(&[2], &[1.0, 2.0], Dtype::F64);
        assert!(decode(&good[..good.len() - 3])
            .unwrap_err()
            .contains("bytes"));
    }
}
