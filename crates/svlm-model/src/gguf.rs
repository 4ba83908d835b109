//! GGUF (llama.cpp) weight files: a reader over a memory map, bit-exact dequantization of the
//! F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensor types, and conversion of a Llama GGUF into a plain HF folder
//! (`config.json`, f32 `model.safetensors` with HF names, tokenizer files) so that one load path
//! serves both formats.
//!
//! Layout facts the code relies on (GGUF v2/v3, little-endian):
//! header = magic `GGUF`, version u32, tensor count u64, metadata count u64; then the metadata
//! key/values, then the tensor infos (name, n_dims u32, ne[n_dims] u64, ggml type u32, offset u64),
//! then padding to `general.alignment` (default 32) where the tensor data starts. `ne[0]` is the
//! fastest-varying dimension, so the HF (row-major) shape is `ne` reversed and the bytes need no
//! transposition.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde_json::{Map, Value, json};

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// Nested arrays deeper than this are not produced by any known writer; the bound stops a crafted
/// file from recursing the reader into a stack overflow.
const MAX_ARRAY_DEPTH: usize = 8;

/// Everything that can go wrong reading or converting a GGUF file. Each variant names the file,
/// and the tensor or key where there is one.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: truncated GGUF file: {what} needs bytes {start}..{end} but the file has {len} bytes",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        what: String,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("{}: not a GGUF file (magic bytes {found:?}, expected \"GGUF\")", path.display())]
    BadMagic { path: PathBuf, found: [u8; 4] },
    #[error("{}: unsupported GGUF version {version} (supported: 2 and 3, little-endian){hint}", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        version: u32,
        hint: &'static str,
    },
    #[error(
        "{}: tensor '{tensor}' has quantization type {type_name}, which is not supported \
         (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)",
        path.display()
    )]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        type_name: String,
    },
    #[error(
        "{}: tensor '{tensor}' data lies at bytes {start}..{end}, outside the file ({len} bytes)",
        path.display()
    )]
    OutOfBounds {
        path: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("{}: missing metadata key '{key}'", path.display())]
    MissingMetadata { path: PathBuf, key: String },
    #[error("{}: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("{}: writing {}: {detail}", path.display(), target.display())]
    Write {
        path: PathBuf,
        target: PathBuf,
        detail: String,
    },
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// A ggml tensor type id as stored in the file, with the block layout of every type ggml knows
/// (so a file with types this crate cannot dequantize still opens and is bounds-checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// (id, name, elements per block, bytes per block), from ggml's type traits.
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const Q4_0: Self = Self(2);
    pub const Q4_1: Self = Self(3);
    pub const Q8_0: Self = Self(8);
    pub const BF16: Self = Self(30);

    fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        GGML_TYPES.iter().find(|entry| entry.0 == self.0)
    }

    /// ggml's name for the type, or `type#N` for an id ggml does not define.
    pub fn name(self) -> String {
        match self.entry() {
            Some(entry) => entry.1.to_string(),
            None => format!("type#{}", self.0),
        }
    }

    /// `(elements per block, bytes per block)`, `None` for an unknown id.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        self.entry().map(|entry| (entry.2, entry.3))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The tensor types this crate dequantizes to f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantKind {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
}

impl QuantKind {
    pub fn from_ggml(ggml_type: GgmlType) -> Option<Self> {
        match ggml_type {
            GgmlType::F32 => Some(Self::F32),
            GgmlType::F16 => Some(Self::F16),
            GgmlType::BF16 => Some(Self::BF16),
            GgmlType::Q8_0 => Some(Self::Q8_0),
            GgmlType::Q4_0 => Some(Self::Q4_0),
            GgmlType::Q4_1 => Some(Self::Q4_1),
            _ => None,
        }
    }

    pub fn ggml_type(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::BF16 => GgmlType::BF16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
        }
    }

    /// `(elements per block, bytes per block)`.
    pub fn block_layout(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q8_0 => (32, 34),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
        }
    }

    /// Bytes holding `n_elements` values, `None` when `n_elements` is not a whole number of blocks.
    pub fn byte_len(self, n_elements: usize) -> Option<usize> {
        let (block, bytes) = self.block_layout();
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(bytes)
    }
}

/// The byte length of `data` does not hold exactly `out.len()` values of the given type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} data of {got} bytes cannot hold {elements} values (expected {expected:?} bytes)")]
pub struct DequantizeLengthError {
    pub kind: QuantKind,
    pub elements: usize,
    pub got: usize,
    pub expected: Option<usize>,
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Dequantizes `data` (the raw bytes of one ggml tensor or row) into `out`, bit-identical to ggml's
/// `dequantize_row_*` reference code: f16/bf16 widen exactly, `Q8_0` is `q * d`, `Q4_0` is
/// `(nibble - 8) * d`, `Q4_1` is `nibble * d + m`, all in f32 with the low nibbles filling the
/// first half of each 32-value block and the high nibbles the second half.
pub fn dequantize(
    kind: QuantKind,
    data: &[u8],
    out: &mut [f32],
) -> Result<(), DequantizeLengthError> {
    let expected = kind.byte_len(out.len());
    if expected != Some(data.len()) {
        return Err(DequantizeLengthError {
            kind,
            elements: out.len(),
            got: data.len(),
            expected,
        });
    }
    dequantize_exact(kind, data, out);
    Ok(())
}

/// The loops behind [`dequantize`]; callers have checked that the lengths match (the zips then
/// cover every value exactly once).
fn dequantize_exact(kind: QuantKind, data: &[u8], out: &mut [f32]) {
    match kind {
        QuantKind::F32 => {
            for (value, bytes) in out.iter_mut().zip(data.chunks_exact(4)) {
                *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
        QuantKind::F16 => {
            for (value, bytes) in out.iter_mut().zip(data.chunks_exact(2)) {
                *value = f16_at(bytes, 0);
            }
        }
        QuantKind::BF16 => {
            for (value, bytes) in out.iter_mut().zip(data.chunks_exact(2)) {
                *value = half::bf16::from_bits(u16::from_le_bytes([bytes[0], bytes[1]])).to_f32();
            }
        }
        QuantKind::Q8_0 => {
            for (values, block) in out.chunks_exact_mut(32).zip(data.chunks_exact(34)) {
                let d = f16_at(block, 0);
                for (value, &q) in values.iter_mut().zip(&block[2..34]) {
                    *value = f32::from(q as i8) * d;
                }
            }
        }
        QuantKind::Q4_0 => {
            for (values, block) in out.chunks_exact_mut(32).zip(data.chunks_exact(18)) {
                let d = f16_at(block, 0);
                let (low, high) = values.split_at_mut(16);
                for (j, &q) in block[2..18].iter().enumerate() {
                    low[j] = f32::from(i16::from(q & 0x0F) - 8) * d;
                    high[j] = f32::from(i16::from(q >> 4) - 8) * d;
                }
            }
        }
        QuantKind::Q4_1 => {
            for (values, block) in out.chunks_exact_mut(32).zip(data.chunks_exact(20)) {
                let d = f16_at(block, 0);
                let m = f16_at(block, 2);
                let (low, high) = values.split_at_mut(16);
                for (j, &q) in block[4..20].iter().enumerate() {
                    low[j] = f32::from(q & 0x0F) * d + m;
                    high[j] = f32::from(q >> 4) * d + m;
                }
            }
        }
    }
}

/// A metadata value. Integer and float widths are kept as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// Any non-negative integer value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(u64::from(v)),
            Self::U16(v) => Some(u64::from(v)),
            Self::U32(v) => Some(u64::from(v)),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(i64::from(v)),
            Self::I16(v) => Some(i64::from(v)),
            Self::I32(v) => Some(i64::from(v)),
            Self::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// A float, or an integer read as a float. An f32 is widened through its shortest decimal
    /// form (1e-5f32 -> 1e-5), which is the value the writer meant (HF configs hold decimals).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => format!("{v}").parse::<f64>().ok(),
            Self::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F32(_) => "f32",
            Self::F64(_) => "f64",
            Self::Bool(_) => "bool",
            Self::String(_) => "string",
            Self::Array(_) => "array",
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the fastest-varying dimension.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Byte length of the data.
    pub n_bytes: u64,
}

impl GgufTensorInfo {
    /// The HF / PyTorch (row-major) shape: `dims` reversed.
    pub fn hf_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A dequantized tensor in HF layout: row-major `data` of `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// An open GGUF file: parsed header over a memory map of the whole file.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let len = self.bytes.len() as u64;
        let start = self.pos as u64;
        let end = start.saturating_add(n);
        if end > len {
            return Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                start,
                end,
                len,
            });
        }
        // `end <= len`, which fits in usize.
        let end = end as usize;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let slice = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.u64(what)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::Invalid {
            path: self.path.to_path_buf(),
            detail: format!("{} is not valid UTF-8", what()),
        })
    }

    fn invalid(&self, detail: String) -> GgufError {
        GgufError::Invalid {
            path: self.path.to_path_buf(),
            detail,
        }
    }

    fn value(
        &mut self,
        value_type: u32,
        what: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<GgufValue> {
        Ok(match value_type {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(what)?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                other => return Err(self.invalid(format!("{} has bool byte {other}", what()))),
            },
            8 => GgufValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.invalid(format!(
                        "{} nests arrays deeper than {MAX_ARRAY_DEPTH}",
                        what()
                    )));
                }
                let element_type = self.u32(what)?;
                let count = self.u64(what)?;
                let min_size = match element_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => {
                        return Err(self.invalid(format!(
                            "{} has unknown array element type {other}",
                            what()
                        )));
                    }
                };
                // Checked before allocating, so a corrupt count cannot request terabytes.
                if count.saturating_mul(min_size) > self.remaining() {
                    let start = self.pos as u64;
                    return Err(GgufError::Truncated {
                        path: self.path.to_path_buf(),
                        what: format!("{} ({count} array elements)", what()),
                        start,
                        end: start.saturating_add(count.saturating_mul(min_size)),
                        len: self.bytes.len() as u64,
                    });
                }
                let mut values = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    values.push(self.value(element_type, what, depth + 1)?);
                }
                GgufValue::Array(values)
            }
            10 => GgufValue::U64(u64::from_le_bytes(self.array(what)?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => return Err(self.invalid(format!("{} has unknown value type {other}", what()))),
        })
    }
}

impl GgufFile {
    /// Opens and parses `path`, checking that every tensor's data lies inside the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| GgufError::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: the map is read-only; a file truncated by another process while mapped would
        // fault, as with every memory-mapped weight loader (safetensors, llama.cpp).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|source| GgufError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(path, mmap)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<Self> {
        let mut cursor = Cursor {
            bytes: &mmap,
            pos: 0,
            path: &path,
        };
        let magic: [u8; 4] = cursor.array(&|| "the magic bytes".to_string())?;
        if &magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic { path, found: magic });
        }
        let version = cursor.u32(&|| "the version".to_string())?;
        if version != 2 && version != 3 {
            let hint = if version & 0xFFFF == 0 && version != 0 {
                " (this looks like a big-endian GGUF)"
            } else if version == 1 {
                " (GGUF v1 is obsolete; reconvert the model with a current llama.cpp)"
            } else {
                ""
            };
            return Err(GgufError::UnsupportedVersion {
                path,
                version,
                hint,
            });
        }
        let tensor_count = cursor.u64(&|| "the tensor count".to_string())?;
        let metadata_count = cursor.u64(&|| "the metadata count".to_string())?;

        let mut metadata = BTreeMap::new();
        for index in 0..metadata_count {
            let key = cursor.string(&|| format!("metadata key #{index}"))?;
            let what = || format!("metadata value '{key}'");
            let value_type = cursor.u32(&what)?;
            let value = cursor.value(value_type, &what, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(cursor.invalid(format!("duplicate metadata key '{key}'")));
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(GgufValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(other) => {
                return Err(cursor.invalid(format!(
                    "general.alignment must be a power-of-two u32, found {other:?}"
                )));
            }
        };

        // Each tensor info takes at least 8 + 4 + 4 + 8 bytes; checked before allocating.
        if tensor_count.saturating_mul(24) > cursor.remaining() {
            let start = cursor.pos as u64;
            return Err(GgufError::Truncated {
                path: path.clone(),
                what: format!("{tensor_count} tensor infos"),
                start,
                end: start.saturating_add(tensor_count.saturating_mul(24)),
                len: mmap.len() as u64,
            });
        }
        let mut tensors = Vec::with_capacity(tensor_count as usize);
        let mut tensor_index = HashMap::new();
        for index in 0..tensor_count {
            let name = cursor.string(&|| format!("tensor info #{index} name"))?;
            let what = || format!("tensor info '{name}'");
            let n_dims = cursor.u32(&what)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(cursor.invalid(format!(
                    "tensor '{name}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(cursor.u64(&what)?);
            }
            let ggml_type = GgmlType(cursor.u32(&what)?);
            let offset = cursor.u64(&what)?;
            let Some((block, block_bytes)) = ggml_type.block_layout() else {
                return Err(cursor.invalid(format!(
                    "tensor '{name}' has unknown ggml type id {}",
                    ggml_type.0
                )));
            };
            if dims[0] % block != 0 {
                return Err(cursor.invalid(format!(
                    "tensor '{name}': first dimension {} is not a multiple of the {ggml_type} block size {block}",
                    dims[0]
                )));
            }
            let n_elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            let n_bytes = n_elements.and_then(|n| (n / block).checked_mul(block_bytes));
            let Some(n_bytes) = n_bytes else {
                return Err(
                    cursor.invalid(format!("tensor '{name}': dimensions {dims:?} overflow"))
                );
            };
            if offset % alignment != 0 {
                return Err(cursor.invalid(format!(
                    "tensor '{name}': data offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(cursor.invalid(format!("duplicate tensor name '{name}'")));
            }
            tensors.push(GgufTensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                n_bytes,
            });
        }

        let data_offset = (cursor.pos as u64).div_ceil(alignment) * alignment;
        let file_len = mmap.len() as u64;
        for info in &tensors {
            let start = data_offset.saturating_add(info.offset);
            let end = start.saturating_add(info.n_bytes);
            if end > file_len {
                return Err(GgufError::OutOfBounds {
                    path,
                    tensor: info.name.clone(),
                    start,
                    end,
                    len: file_len,
                });
            }
        }

        Ok(Self {
            path,
            mmap,
            version,
            alignment,
            data_offset,
            metadata,
            tensors,
            tensor_index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw (still quantized) bytes of a tensor; bounds were checked when the file was opened.
    pub fn tensor_bytes(&self, info: &GgufTensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.mmap[start..start + info.n_bytes as usize]
    }

    fn lookup(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor(name).ok_or_else(|| GgufError::Invalid {
            path: self.path.clone(),
            detail: format!("no tensor named '{name}'"),
        })
    }

    fn quant_kind(&self, info: &GgufTensorInfo) -> Result<QuantKind> {
        QuantKind::from_ggml(info.ggml_type).ok_or_else(|| GgufError::UnsupportedType {
            path: self.path.clone(),
            tensor: info.name.clone(),
            type_name: info.ggml_type.name(),
        })
    }

    /// Dequantizes one tensor to f32 in HF layout (shape = `dims` reversed).
    pub fn dequantize(&self, name: &str) -> Result<DenseTensor> {
        let info = self.lookup(name)?;
        let kind = self.quant_kind(info)?;
        let mut data = vec![0f32; info.n_elements() as usize];
        dequantize(kind, self.tensor_bytes(info), &mut data).map_err(|e| GgufError::Invalid {
            path: self.path.clone(),
            detail: format!("tensor '{name}': {e}"),
        })?;
        Ok(DenseTensor {
            shape: info.hf_shape(),
            data,
        })
    }

    fn required(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| GgufError::MissingMetadata {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    fn wrong_type(&self, key: &str, expected: &str) -> GgufError {
        let found = self.get(key).map_or("nothing", GgufValue::type_name);
        GgufError::Invalid {
            path: self.path.clone(),
            detail: format!("metadata '{key}' should be {expected}, found {found}"),
        }
    }

    fn required_u64(&self, key: &str) -> Result<u64> {
        self.required(key)?
            .as_u64()
            .ok_or_else(|| self.wrong_type(key, "an unsigned integer"))
    }

    fn optional_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "an unsigned integer")),
        }
    }

    fn optional_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a number")),
        }
    }

    fn optional_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a bool")),
        }
    }

    fn optional_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a string")),
        }
    }

    fn string_array(&self, key: &str) -> Result<Vec<&str>> {
        let values = self
            .required(key)?
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "an array of strings"))?;
        values
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.wrong_type(key, "an array of strings"))
            })
            .collect()
    }

    fn invalid(&self, detail: String) -> GgufError {
        GgufError::Invalid {
            path: self.path.clone(),
            detail,
        }
    }
}

/// The per-layer llama.cpp tensor names and their HF Llama counterparts (one table for both
/// directions).
const LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

const GLOBAL_NAMES: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The HF Llama name of a llama.cpp tensor name (`blk.3.attn_q.weight` ->
/// `model.layers.3.self_attn.q_proj.weight`), `None` for a name outside the Llama table.
pub fn hf_tensor_name(gguf_name: &str) -> Option<String> {
    if let Some((_, hf)) = GLOBAL_NAMES.iter().find(|(g, _)| *g == gguf_name) {
        return Some((*hf).to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let (_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == stem)?;
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// The llama.cpp name of an HF Llama tensor name (inverse of [`hf_tensor_name`]).
pub fn gguf_tensor_name(hf_name: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL_NAMES.iter().find(|(_, h)| *h == hf_name) {
        return Some((*g).to_string());
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let (g, _) = LAYER_NAMES.iter().find(|(_, h)| *h == stem)?;
    Some(format!("blk.{layer}.{g}.{suffix}"))
}

/// Row index in llama.cpp's order of the HF row `row` of a Q or K projection with `n_head` heads
/// of `rows / n_head` rows each. convert_hf_to_gguf.py's `permute` views each head's rows as
/// (2, head_dim/2) — the two rotary halves — and swaps them to (head_dim/2, 2), interleaving the
/// halves for ggml's RoPE.
fn gguf_row_of_hf_row(row: usize, head_dim: usize) -> usize {
    let half = head_dim / 2;
    let (head, within) = (row / head_dim, row % head_dim);
    let (s, i) = (within / half, within % half);
    head * head_dim + i * 2 + s
}

fn check_permutable(rows: usize, n_head: usize) -> std::result::Result<usize, String> {
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return Err(format!(
            "{rows} rows cannot be split into {n_head} heads of an even size"
        ));
    }
    Ok(rows / n_head)
}

fn reorder_rows(
    data: &[f32],
    rows: usize,
    n_head: usize,
    to_hf: bool,
) -> std::result::Result<Vec<f32>, String> {
    let head_dim = check_permutable(rows, n_head)?;
    if rows == 0 || !data.len().is_multiple_of(rows) {
        return Err(format!("{} values do not form {rows} rows", data.len()));
    }
    let cols = data.len() / rows;
    let mut out = vec![0f32; data.len()];
    for hf_row in 0..rows {
        let gguf_row = gguf_row_of_hf_row(hf_row, head_dim);
        let (src, dst) = if to_hf {
            (gguf_row, hf_row)
        } else {
            (hf_row, gguf_row)
        };
        out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
    }
    Ok(out)
}

/// Undoes llama.cpp's Q/K row permutation: `data` holds `rows` rows in GGUF order (a weight
/// `[rows, cols]` or a bias `[rows]`), the result holds them in HF order. `n_head` is the number of
/// attention heads for Q and of KV heads for K.
pub fn unpermute_qk_rows(
    data: &[f32],
    rows: usize,
    n_head: usize,
) -> std::result::Result<Vec<f32>, String> {
    reorder_rows(data, rows, n_head, true)
}

/// llama.cpp's Q/K row permutation (HF order -> GGUF order), the inverse of [`unpermute_qk_rows`].
pub fn permute_qk_rows(
    data: &[f32],
    rows: usize,
    n_head: usize,
) -> std::result::Result<Vec<f32>, String> {
    reorder_rows(data, rows, n_head, false)
}

/// The Llama hyper-parameters read from `llama.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufLlamaParams {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub rope_scaling: Option<Value>,
}

impl GgufFile {
    /// Reads the Llama hyper-parameters; errors on a non-Llama architecture or missing keys.
    pub fn llama_params(&self) -> Result<GgufLlamaParams> {
        let arch = self.optional_str("general.architecture")?.ok_or_else(|| {
            GgufError::MissingMetadata {
                path: self.path.clone(),
                key: "general.architecture".into(),
            }
        })?;
        if arch != "llama" {
            return Err(self.invalid(format!(
                "architecture '{arch}' is not supported (only 'llama' GGUF files convert to HF Llama)"
            )));
        }
        let hidden_size = self.required_u64("llama.embedding_length")? as usize;
        let num_attention_heads = self.required_u64("llama.attention.head_count")? as usize;
        let num_key_value_heads = self
            .optional_u64("llama.attention.head_count_kv")?
            .map_or(num_attention_heads, |v| v as usize);
        if num_attention_heads == 0
            || num_key_value_heads == 0
            || !num_attention_heads.is_multiple_of(num_key_value_heads)
        {
            return Err(self.invalid(format!(
                "{num_attention_heads} attention heads cannot share {num_key_value_heads} KV heads"
            )));
        }
        let head_dim = match self.optional_u64("llama.attention.key_length")? {
            Some(v) => v as usize,
            None => {
                if !hidden_size.is_multiple_of(num_attention_heads) {
                    return Err(self.invalid(format!(
                        "hidden size {hidden_size} is not divisible by {num_attention_heads} heads"
                    )));
                }
                hidden_size / num_attention_heads
            }
        };
        if let Some(rot) = self.optional_u64("llama.rope.dimension_count")?
            && rot as usize != head_dim
        {
            return Err(self.invalid(format!(
                "llama.rope.dimension_count {rot} differs from the head size {head_dim} (partial rotary \
                 embeddings are not supported)"
            )));
        }
        let embedding = self
            .tensor("token_embd.weight")
            .ok_or_else(|| self.invalid("no tensor 'token_embd.weight'".to_string()))?;
        let embedding_shape = embedding.hf_shape();
        let vocab_size = match self.optional_u64("llama.vocab_size")? {
            Some(v) => v as usize,
            None => embedding_shape[0],
        };
        let rope_scaling = match self.optional_str("llama.rope.scaling.type")? {
            None | Some("none") => None,
            Some("linear") => {
                let factor = self
                    .optional_f64("llama.rope.scaling.factor")?
                    .ok_or_else(|| GgufError::MissingMetadata {
                        path: self.path.clone(),
                        key: "llama.rope.scaling.factor".into(),
                    })?;
                Some(json!({"rope_type": "linear", "type": "linear", "factor": factor}))
            }
            Some(other) => {
                return Err(self.invalid(format!("rope scaling type '{other}' is not supported")));
            }
        };
        if self.tensor("rope_freqs.weight").is_some() {
            return Err(self.invalid(
                "tensor 'rope_freqs.weight' (Llama 3 rope scaling factors) is not supported: the HF \
                 rope_scaling parameters cannot be recovered from it"
                    .to_string(),
            ));
        }
        Ok(GgufLlamaParams {
            hidden_size,
            intermediate_size: self.required_u64("llama.feed_forward_length")? as usize,
            num_hidden_layers: self.required_u64("llama.block_count")? as usize,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: self
                .optional_f64("llama.attention.layer_norm_rms_epsilon")?
                .ok_or_else(|| GgufError::MissingMetadata {
                    path: self.path.clone(),
                    key: "llama.attention.layer_norm_rms_epsilon".into(),
                })?,
            rope_theta: self
                .optional_f64("llama.rope.freq_base")?
                .unwrap_or(10_000.0),
            vocab_size,
            max_position_embeddings: self
                .optional_u64("llama.context_length")?
                .map_or(2048, |v| v as usize),
            tie_word_embeddings: self.tensor("output.weight").is_none(),
            rope_scaling,
        })
    }

    fn special_token_id(&self, name: &str) -> Result<Option<u64>> {
        self.optional_u64(&format!("tokenizer.ggml.{name}_token_id"))
    }

    /// The HF `config.json` (LlamaConfig) of a Llama GGUF.
    pub fn hf_config(&self) -> Result<Value> {
        let p = self.llama_params()?;
        let mut config = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": p.hidden_size,
            "intermediate_size": p.intermediate_size,
            "num_hidden_layers": p.num_hidden_layers,
            "num_attention_heads": p.num_attention_heads,
            "num_key_value_heads": p.num_key_value_heads,
            "head_dim": p.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": p.rms_norm_eps,
            "rope_theta": p.rope_theta,
            "rope_scaling": p.rope_scaling,
            "vocab_size": p.vocab_size,
            "max_position_embeddings": p.max_position_embeddings,
            "tie_word_embeddings": p.tie_word_embeddings,
            "attention_bias": self.tensor("blk.0.attn_q.bias").is_some(),
            "attention_dropout": 0.0,
            "mlp_bias": self.tensor("blk.0.ffn_up.bias").is_some(),
            "initializer_range": 0.02,
            "pretraining_tp": 1,
            "use_cache": true,
            "torch_dtype": "float32",
        });
        for (name, key) in [
            ("bos", "bos_token_id"),
            ("eos", "eos_token_id"),
            ("padding", "pad_token_id"),
        ] {
            if let Some(id) = self.special_token_id(name)? {
                config[key] = json!(id);
            }
        }
        if let Some(name) = self.optional_str("general.name")? {
            config["_name_or_path"] = json!(name);
        }
        Ok(config)
    }

    fn token_strings(&self) -> Result<Vec<&str>> {
        self.string_array("tokenizer.ggml.tokens")
    }

    /// The HF `tokenizer.json` of a GGUF with a byte-level BPE (`tokenizer.ggml.model = "gpt2"`)
    /// vocabulary: the pre-tokenizer follows `tokenizer.ggml.pre` as llama.cpp does, control tokens
    /// become special added tokens, user-defined ones plain added tokens.
    pub fn hf_tokenizer(&self) -> Result<Value> {
        let model = self.optional_str("tokenizer.ggml.model")?.unwrap_or("");
        if model != "gpt2" {
            return Err(self.invalid(format!(
                "tokenizer.ggml.model '{model}' is not supported (only 'gpt2', byte-level BPE)"
            )));
        }
        let tokens = self.token_strings()?;
        let token_types: Vec<i64> = match self.get("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(value) => {
                let values = value
                    .as_array()
                    .ok_or_else(|| self.wrong_type("tokenizer.ggml.token_type", "an array"))?;
                values
                    .iter()
                    .map(|v| {
                        v.as_i64().ok_or_else(|| {
                            self.wrong_type("tokenizer.ggml.token_type", "an array of integers")
                        })
                    })
                    .collect::<Result<_>>()?
            }
        };
        if token_types.len() != tokens.len() {
            return Err(self.invalid(format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                token_types.len(),
                tokens.len()
            )));
        }
        let merges: Vec<Value> = match self.get("tokenizer.ggml.merges") {
            None => Vec::new(),
            Some(_) => self
                .string_array("tokenizer.ggml.merges")?
                .iter()
                .enumerate()
                .map(|(i, merge)| {
                    // llama.cpp splits at the first space after the first character, so a left
                    // token that itself starts with a space stays whole.
                    let first_len = merge.chars().next().map_or(0, char::len_utf8);
                    match merge[first_len..].find(' ') {
                        Some(at) => Ok(json!([
                            &merge[..first_len + at],
                            &merge[first_len + at + 1..]
                        ])),
                        None => Err(self
                            .invalid(format!("tokenizer.ggml.merges[{i}] '{merge}' has no space"))),
                    }
                })
                .collect::<Result<_>>()?,
        };

        let mut vocab = Map::new();
        let mut duplicates = 0usize;
        for (id, token) in tokens.iter().enumerate() {
            if vocab.insert((*token).to_string(), json!(id)).is_some() {
                duplicates += 1;
            }
        }
        if duplicates > 0 {
            tracing::warn!(
                "{}: {duplicates} duplicate token strings in tokenizer.ggml.tokens; the last id wins in the BPE vocabulary",
                self.path.display()
            );
        }
        let added_tokens: Vec<Value> = tokens
            .iter()
            .zip(&token_types)
            .enumerate()
            .filter(|(_, (_, ty))| **ty == 3 || **ty == 4)
            .map(|(id, (token, ty))| {
                json!({
                    "id": id,
                    "content": token,
                    "single_word": false,
                    "lstrip": false,
                    "rstrip": false,
                    "normalized": false,
                    "special": *ty == 3,
                })
            })
            .collect();

        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        let pre = self
            .optional_str("tokenizer.ggml.pre")?
            .unwrap_or("default");
        let pre_tokenizer = match pre {
            "default" | "gpt-2" | "gpt2" => byte_level(true),
            "smollm" | "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" => json!({
                "type": "Sequence",
                "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)],
            }),
            "llama-bpe" | "llama3" | "smaug-bpe" => json!({
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": LLAMA3_PRE_REGEX}, "behavior": "Isolated", "invert": false},
                    byte_level(false),
                ],
            }),
            "qwen2" => json!({
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": QWEN2_PRE_REGEX}, "behavior": "Isolated", "invert": false},
                    byte_level(false),
                ],
            }),
            other => {
                return Err(self.invalid(format!(
                    "tokenizer.ggml.pre '{other}' is not supported (known: default, gpt-2, smollm, starcoder, \
                     refact, codeshell, exaone, minerva-7b, llama-bpe, smaug-bpe, qwen2)"
                )));
            }
        };

        let bos = self.special_token_id("bos")?;
        let eos = self.special_token_id("eos")?;
        let add_bos = self
            .optional_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(false);
        let add_eos = self
            .optional_bool("tokenizer.ggml.add_eos_token")?
            .unwrap_or(false);
        let post_processor = if add_bos || add_eos {
            let mut special_tokens = Map::new();
            let mut special_text = |id: Option<u64>, which: &str| -> Result<String> {
                let id = id.ok_or_else(|| GgufError::MissingMetadata {
                    path: self.path.clone(),
                    key: format!("tokenizer.ggml.{which}_token_id"),
                })?;
                let token = tokens.get(id as usize).ok_or_else(|| {
                    self.invalid(format!(
                        "{which} token id {id} is outside the {}-token vocabulary",
                        tokens.len()
                    ))
                })?;
                special_tokens.insert(
                    (*token).to_string(),
                    json!({"id": token, "ids": [id], "tokens": [token]}),
                );
                Ok((*token).to_string())
            };
            let bos_text = if add_bos {
                Some(special_text(bos, "bos")?)
            } else {
                None
            };
            let eos_text = if add_eos {
                Some(special_text(eos, "eos")?)
            } else {
                None
            };
            let template = |sequence: &str, type_id: u32| {
                let mut pieces = Vec::new();
                if let Some(text) = &bos_text {
                    pieces.push(json!({"SpecialToken": {"id": text, "type_id": type_id}}));
                }
                pieces.push(json!({"Sequence": {"id": sequence, "type_id": type_id}}));
                if let Some(text) = &eos_text {
                    pieces.push(json!({"SpecialToken": {"id": text, "type_id": type_id}}));
                }
                pieces
            };
            let single = template("A", 0);
            let pair: Vec<Value> = template("A", 0)
                .into_iter()
                .chain(template("B", 1))
                .collect();
            json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special_tokens})
        } else {
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
        };

        Ok(json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_tokens,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": merges,
            },
        }))
    }

    fn token_text(&self, tokens: &[&str], which: &str) -> Result<Option<String>> {
        match self.special_token_id(which)? {
            None => Ok(None),
            Some(id) => tokens
                .get(id as usize)
                .map(|t| Some((*t).to_string()))
                .ok_or_else(|| {
                    self.invalid(format!(
                        "{which} token id {id} is outside the {}-token vocabulary",
                        tokens.len()
                    ))
                }),
        }
    }

    /// The HF `tokenizer_config.json`: special tokens by text, the chat template, the
    /// `add_bos_token` flag.
    pub fn hf_tokenizer_config(&self) -> Result<Value> {
        let tokens = self.token_strings()?;
        let mut config = json!({
            "tokenizer_class": "GPT2Tokenizer",
            "add_bos_token": self.optional_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
            "add_eos_token": self.optional_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
            "add_prefix_space": false,
            "clean_up_tokenization_spaces": false,
            "model_max_length": self.optional_u64("llama.context_length")?.unwrap_or(2048),
        });
        for (which, key) in [
            ("bos", "bos_token"),
            ("eos", "eos_token"),
            ("unknown", "unk_token"),
            ("padding", "pad_token"),
        ] {
            if let Some(text) = self.token_text(&tokens, which)? {
                config[key] = json!(text);
            }
        }
        if let Some(template) = self.optional_str("tokenizer.chat_template")? {
            config["chat_template"] = json!(template);
        }
        Ok(config)
    }

    /// The HF `generation_config.json`: the special token ids.
    pub fn hf_generation_config(&self) -> Result<Value> {
        let mut config = Map::new();
        for (which, key) in [
            ("bos", "bos_token_id"),
            ("eos", "eos_token_id"),
            ("padding", "pad_token_id"),
        ] {
            if let Some(id) = self.special_token_id(which)? {
                config.insert(key.to_string(), json!(id));
            }
        }
        Ok(Value::Object(config))
    }
}

const LLAMA3_PRE_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_PRE_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// One output tensor of the conversion, dequantized lazily while the safetensors file is written
/// so that at most one tensor is held in f32 at a time.
struct ConvertedTensor<'a> {
    file: &'a GgufFile,
    info: &'a GgufTensorInfo,
    kind: QuantKind,
    shape: Vec<usize>,
    /// `Some(n_head)` for Q/K tensors whose rows llama.cpp permuted.
    unpermute_heads: Option<usize>,
}

impl safetensors::View for ConvertedTensor<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let n = self.info.n_elements() as usize;
        let mut values = vec![0f32; n];
        // Type and byte length were validated in `plan_tensors` / `GgufFile::parse`.
        dequantize_exact(self.kind, self.file.tensor_bytes(self.info), &mut values);
        if let Some(n_head) = self.unpermute_heads {
            // Row count and head split were validated in `plan_tensors`.
            if let Ok(reordered) = unpermute_qk_rows(&values, self.shape[0], n_head) {
                values = reordered;
            }
        }
        let mut bytes = Vec::with_capacity(n * 4);
        for value in values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        Cow::Owned(bytes)
    }

    fn data_len(&self) -> usize {
        self.info.n_elements() as usize * 4
    }
}

/// Maps, type-checks and shape-checks every tensor before anything is written.
fn plan_tensors<'a>(
    file: &'a GgufFile,
    params: &GgufLlamaParams,
) -> Result<Vec<(String, ConvertedTensor<'a>)>> {
    let mut planned = Vec::with_capacity(file.tensors().len());
    let mut unknown = Vec::new();
    for info in file.tensors() {
        let Some(hf_name) = hf_tensor_name(&info.name) else {
            unknown.push(info.name.clone());
            continue;
        };
        let kind = file.quant_kind(info)?;
        let shape = info.hf_shape();
        let unpermute_heads = if info.name.contains(".attn_q.") {
            Some(params.num_attention_heads)
        } else if info.name.contains(".attn_k.") {
            Some(params.num_key_value_heads)
        } else {
            None
        };
        if let Some(n_head) = unpermute_heads {
            let expected_rows = n_head * params.head_dim;
            if shape[0] != expected_rows {
                return Err(file.invalid(format!(
                    "tensor '{}' has {} rows, expected {n_head} heads x {} = {expected_rows}",
                    info.name, shape[0], params.head_dim
                )));
            }
            check_permutable(shape[0], n_head)
                .map_err(|e| file.invalid(format!("tensor '{}': {e}", info.name)))?;
        }
        planned.push((
            hf_name,
            ConvertedTensor {
                file,
                info,
                kind,
                shape,
                unpermute_heads,
            },
        ));
    }
    if !unknown.is_empty() {
        return Err(file.invalid(format!(
            "tensors without an HF Llama name (not converted, so the conversion stops): {}",
            unknown.join(", ")
        )));
    }
    let expected = params.num_hidden_layers * 9 + 2 + usize::from(!params.tie_word_embeddings);
    let biases = planned
        .iter()
        .filter(|(name, _)| name.ends_with(".bias"))
        .count();
    if planned.len() - biases != expected {
        let names: Vec<&str> = planned.iter().map(|(name, _)| name.as_str()).collect();
        let missing: Vec<String> = expected_llama_names(params)
            .into_iter()
            .filter(|name| !names.contains(&name.as_str()))
            .collect();
        return Err(file.invalid(format!(
            "{} weight tensors for a {}-layer Llama (expected {expected}); missing: [{}]",
            planned.len() - biases,
            params.num_hidden_layers,
            missing.join(", ")
        )));
    }
    Ok(planned)
}

fn expected_llama_names(params: &GgufLlamaParams) -> Vec<String> {
    let mut names = vec![
        "model.embed_tokens.weight".to_string(),
        "model.norm.weight".to_string(),
    ];
    if !params.tie_word_embeddings {
        names.push("lm_head.weight".to_string());
    }
    for layer in 0..params.num_hidden_layers {
        for (_, hf) in LAYER_NAMES {
            names.push(format!("model.layers.{layer}.{hf}.weight"));
        }
    }
    names
}

fn write_json(gguf: &Path, dir: &Path, name: &str, value: &Value) -> Result<()> {
    let target = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| GgufError::Write {
        path: gguf.to_path_buf(),
        target: target.clone(),
        detail: e.to_string(),
    })?;
    std::fs::write(&target, text + "\n").map_err(|e| GgufError::Write {
        path: gguf.to_path_buf(),
        target,
        detail: e.to_string(),
    })
}

/// Converts a Llama GGUF into an HF folder at `out_dir`: `config.json`, `model.safetensors` (f32,
/// HF names, llama.cpp's Q/K permutation undone, `lm_head` left out when the GGUF ties it),
/// `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`. Everything is written into
/// a temporary folder beside `out_dir` and renamed into place, so `out_dir` is either absent or
/// complete. `out_dir` must not exist or be an empty folder.
pub fn gguf_to_hf_folder(gguf: &Path, out_dir: &Path) -> Result<()> {
    let file = GgufFile::open(gguf)?;
    let write_err = |target: &Path, detail: String| GgufError::Write {
        path: gguf.to_path_buf(),
        target: target.to_path_buf(),
        detail,
    };
    if out_dir.exists() {
        let empty = std::fs::read_dir(out_dir)
            .map_err(|e| write_err(out_dir, e.to_string()))?
            .next()
            .is_none();
        if !empty {
            return Err(write_err(
                out_dir,
                "the output folder exists and is not empty".into(),
            ));
        }
    }

    let params = file.llama_params()?;
    let config = file.hf_config()?;
    let tokenizer = file.hf_tokenizer()?;
    let tokenizer_config = file.hf_tokenizer_config()?;
    let generation_config = file.hf_generation_config()?;
    let planned = plan_tensors(&file, &params)?;

    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| write_err(&parent, e.to_string()))?;
    let staging = svlm_io::temp_dir_in(&parent, ".gguf-convert-")
        .map_err(|e| write_err(&parent, e.to_string()))?;

    write_json(gguf, staging.path(), "config.json", &config)?;
    write_json(gguf, staging.path(), "tokenizer.json", &tokenizer)?;
    write_json(
        gguf,
        staging.path(),
        "tokenizer_config.json",
        &tokenizer_config,
    )?;
    write_json(
        gguf,
        staging.path(),
        "generation_config.json",
        &generation_config,
    )?;
    let weights = staging.path().join("model.safetensors");
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("source".to_string(), format!("gguf:{}", gguf.display())),
    ]);
    safetensors::serialize_to_file(planned, Some(metadata), &weights)
        .map_err(|e| write_err(&weights, e.to_string()))?;

    if out_dir.exists() {
        // Checked empty above; `rename` onto an empty directory is not portable.
        std::fs::remove_dir(out_dir).map_err(|e| write_err(out_dir, e.to_string()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, out_dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        write_err(out_dir, e.to_string())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            (
                "blk.0.attn_q.weight",
                "model.layers.0.self_attn.q_proj.weight",
            ),
            (
                "blk.12.attn_k.bias",
                "model.layers.12.self_attn.k_proj.bias",
            ),
            (
                "blk.3.attn_output.weight",
                "model.layers.3.self_attn.o_proj.weight",
            ),
            (
                "blk.29.ffn_down.weight",
                "model.layers.29.mlp.down_proj.weight",
            ),
            (
                "blk.1.ffn_norm.weight",
                "model.layers.1.post_attention_layernorm.weight",
            ),
            (
                "blk.1.attn_norm.weight",
                "model.layers.1.input_layernorm.weight",
            ),
        ];
        for (gguf, hf) in pairs {
            assert_eq!(hf_tensor_name(gguf).as_deref(), Some(hf), "{gguf}");
            assert_eq!(gguf_tensor_name(hf).as_deref(), Some(gguf), "{hf}");
        }
        for bad in [
            "blk.x.attn_q.weight",
            "blk.0.attn_qq.weight",
            "rope_freqs.weight",
            "blk.0.attn_q.scale",
        ] {
            assert_eq!(hf_tensor_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn permutation_interleaves_rotary_halves() {
        // One head of 4 rows: HF rows [a0 a1 | b0 b1] become llama.cpp rows [a0 b0 a1 b1].
        let hf: Vec<f32> = vec![0., 1., 2., 3.];
        assert_eq!(permute_qk_rows(&hf, 4, 1).unwrap(), vec![0., 2., 1., 3.]);
        assert_eq!(unpermute_qk_rows(&[0., 2., 1., 3.], 4, 1).unwrap(), hf);
        assert!(
            permute_qk_rows(&[0.; 6], 6, 2).is_err(),
            "odd head size must be rejected"
        );
    }

    #[test]
    fn q4_1_low_nibbles_fill_the_first_half() {
        let mut block = vec![0u8; 20];
        block[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
        block[4] = 0x3A; // low 10, high 3
        let mut out = vec![0f32; 32];
        dequantize(QuantKind::Q4_1, &block, &mut out).unwrap();
        assert_eq!(out[0], 10.0 * 0.5 - 1.0);
        assert_eq!(out[16], 3.0 * 0.5 - 1.0);
        assert_eq!(out[1], -1.0);
        assert!(dequantize(QuantKind::Q4_1, &block[..19], &mut out).is_err());
    }
}
