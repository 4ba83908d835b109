//! A small reader/writer for NumPy `.npy` files holding 2-D float arrays (depth maps in metres).

use std::io::Write;
use std::path::Path;

use crate::error::FrameError;

const MAGIC: &[u8] = b"\x93NUMPY";

/// A 2-D array read from an `.npy` file, converted to f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Reads a `<f4`/`<f8`/`>f4`/`>f8` array of shape `(h, w)` or `(h, w, 1)` (C or Fortran order).
pub fn read_npy(path: &Path) -> Result<NpyArray, FrameError> {
    let bytes = std::fs::read(path).map_err(|e| FrameError::io(path, e))?;
    parse_npy(&bytes).map_err(|reason| {
        FrameError::invalid(path, format!("not a readable .npy depth array: {reason}"))
    })
}

/// Why bytes are not a readable 2-D float `.npy` array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    #[error("missing the \\x93NUMPY magic")]
    Magic,
    #[error("truncated header")]
    TruncatedHeader,
    #[error("unsupported format version {0}")]
    Version(u8),
    #[error("header is not text")]
    HeaderText,
    #[error("header has no '{0}'")]
    MissingKey(&'static str),
    #[error("bad shape entry {0:?}")]
    ShapeEntry(String),
    #[error("shape {0:?} is not (height, width)")]
    Shape(Vec<usize>),
    #[error("dtype {0:?} is not float32/float64")]
    Dtype(String),
    #[error("shape overflows")]
    Overflow,
    #[error("shape {height}x{width} holds no pixels")]
    Empty { height: usize, width: usize },
    #[error("data holds {held} bytes, shape {height}x{width} needs {needed}")]
    ShortData {
        held: usize,
        height: usize,
        width: usize,
        needed: usize,
    },
}

pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(NpyError::Magic);
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(NpyError::TruncatedHeader);
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(NpyError::Version(v)),
    };
    let header_end = header_start + header_len;
    let header = bytes
        .get(header_start..header_end)
        .ok_or(NpyError::TruncatedHeader)?;
    let header = std::str::from_utf8(header).map_err(|_| NpyError::HeaderText)?;
    let descr = dict_value(header, "descr").ok_or(NpyError::MissingKey("descr"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order")
        .ok_or(NpyError::MissingKey("fortran_order"))?
        .trim()
        .starts_with("True");
    let shape_text = dict_value(header, "shape").ok_or(NpyError::MissingKey("shape"))?;
    let shape: Vec<usize> = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| NpyError::ShapeEntry(s.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let (height, width) = match shape.as_slice() {
        [h, w] | [h, w, 1] => (*h, *w),
        other => return Err(NpyError::Shape(other.to_vec())),
    };
    if height == 0 || width == 0 {
        return Err(NpyError::Empty { height, width });
    }
    let (size, big_endian) = match descr {
        "<f4" | "=f4" => (4, false),
        ">f4" => (4, true),
        "<f8" | "=f8" => (8, false),
        ">f8" => (8, true),
        other => return Err(NpyError::Dtype(other.to_string())),
    };
    let count = height.checked_mul(width).ok_or(NpyError::Overflow)?;
    let needed = count.checked_mul(size).ok_or(NpyError::Overflow)?;
    let body = &bytes[header_end..];
    if body.len() < needed {
        return Err(NpyError::ShortData {
            held: body.len(),
            height,
            width,
            needed,
        });
    }
    let values: Vec<f32> = body[..needed]
        .chunks_exact(size)
        .map(|c| match (size, big_endian) {
            (4, false) => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            (4, true) => f32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            (_, false) => {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }
            (_, true) => {
                f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }
        })
        .collect();
    let data = if fortran {
        // Column-major on disk: element (r, c) is at c * height + r.
        let mut row_major = vec![0.0f32; count];
        for c in 0..width {
            for r in 0..height {
                row_major[r * width + c] = values[c * height + r];
            }
        }
        row_major
    } else {
        values
    };
    Ok(NpyArray {
        height,
        width,
        data,
    })
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pattern_single = format!("'{key}'");
    let pattern_double = format!("\"{key}\"");
    let start = header
        .find(&pattern_single)
        .map(|i| i + pattern_single.len())
        .or_else(|| {
            header
                .find(&pattern_double)
                .map(|i| i + pattern_double.len())
        })?;
    let rest = header[start..].trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

/// `.npy` bytes (format 1.0, little-endian f32, C order) of a `height x width` array.
pub fn encode_npy_f32(height: usize, width: usize, data: &[f32]) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({height}, {width}), }}");
    // Pad so that the data starts on a 64-byte boundary, header ends with a newline.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes an f32 `.npy` atomically (temp file in the same directory, then rename).
pub fn write_npy_f32(
    path: &Path,
    height: usize,
    width: usize,
    data: &[f32],
) -> Result<(), FrameError> {
    let bytes = encode_npy_f32(height, width, data);
    crate::io::write_atomic(path, |file| file.write_all(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header_alignment() {
        let data = [1.0f32, 2.5, f32::NAN, -3.0, 0.0, 7.25];
        let bytes = encode_npy_f32(2, 3, &data);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let array = parse_npy(&bytes).unwrap();
        assert_eq!((array.height, array.width), (2, 3));
        assert_eq!(array.data[..2], data[..2]);
        assert!(array.data[2].is_nan());
        assert_eq!(array.data[3..], data[3..]);
    }

    #[test]
    fn reads_float64_fortran_order() {
        // (2, 3) array [[0, 1, 2], [3, 4, 5]] stored column-major as f8.
        let header = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [0.0f64, 3.0, 1.0, 4.0, 2.0, 5.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let array = parse_npy(&bytes).unwrap();
        assert_eq!(array.data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn rejects_bad_inputs() {
        assert!(parse_npy(b"not numpy at all").is_err());
        let mut bytes = encode_npy_f32(2, 2, &[1.0; 4]);
        bytes.truncate(bytes.len() - 3);
        assert!(parse_npy(&bytes).unwrap_err().to_string().contains("needs"));
        let header = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1), }";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 4]);
        assert!(parse_npy(&bytes).unwrap_err().to_string().contains("dtype"));
    }

    /// A shape whose element count fits in usize but whose byte count does not (found by the `npy` fuzz target:
    /// the product wrapped, the length check passed and fewer values than the shape names were read).
    #[test]
    fn rejects_a_shape_whose_byte_count_overflows() {
        for (descr, rows) in [("<f4", 1usize << 62), ("<f8", 1usize << 61)] {
            let header =
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, 1), }}");
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[1, 0]);
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&[0; 64]);
            let err = parse_npy(&bytes).unwrap_err();
            assert!(matches!(err, NpyError::Overflow), "{descr}: {err}");
        }
    }

    /// A zero-sized dimension beside a huge one (found by the `npy` fuzz target: a column-major header with shape
    /// `(0, 2999999999999)` looped over the empty columns for minutes).
    #[test]
    fn rejects_an_empty_shape_at_once() {
        for order in ["True", "False"] {
            let header = format!(
                "{{'descr': '<f4', 'fortran_order': {order}, 'shape': (0, 2999999999999), }}"
            );
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[1, 0]);
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            let started = std::time::Instant::now();
            let err = parse_npy(&bytes).unwrap_err();
            assert!(matches!(err, NpyError::Empty { .. }), "{order}: {err}");
            assert!(started.elapsed().as_secs_f64() < 1.0);
        }
    }
}
