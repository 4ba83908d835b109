//! The GGUF reader: header, metadata and tensor infos parsed over a memory map, every tensor bounds-checked.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::quant::{GgmlType, QuantKind, dequantize};
use super::{GgufError, Result};

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// Nested arrays deeper than this are not produced by any known writer; the bound stops a crafted
/// file from recursing the reader into a stack overflow.
const MAX_ARRAY_DEPTH: usize = 8;

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

    pub(super) fn type_name(&self) -> &'static str {
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
    pub(super) path: PathBuf,
    pub(super) mmap: Mmap,
    pub(super) version: u32,
    pub(super) alignment: u64,
    pub(super) data_offset: u64,
    pub(super) metadata: BTreeMap<String, GgufValue>,
    pub(super) tensors: Vec<GgufTensorInfo>,
    pub(super) tensor_index: HashMap<String, usize>,
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

    pub(super) fn parse(path: PathBuf, mmap: Mmap) -> Result<Self> {
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

    pub(super) fn lookup(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor(name).ok_or_else(|| GgufError::Invalid {
            path: self.path.clone(),
            detail: format!("no tensor named '{name}'"),
        })
    }

    pub(super) fn quant_kind(&self, info: &GgufTensorInfo) -> Result<QuantKind> {
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

    pub(super) fn required(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| GgufError::MissingMetadata {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    pub(super) fn wrong_type(&self, key: &str, expected: &str) -> GgufError {
        let found = self.get(key).map_or("nothing", GgufValue::type_name);
        GgufError::Invalid {
            path: self.path.clone(),
            detail: format!("metadata '{key}' should be {expected}, found {found}"),
        }
    }

    pub(super) fn required_u64(&self, key: &str) -> Result<u64> {
        self.required(key)?
            .as_u64()
            .ok_or_else(|| self.wrong_type(key, "an unsigned integer"))
    }

    pub(super) fn optional_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "an unsigned integer")),
        }
    }

    pub(super) fn optional_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a number")),
        }
    }

    pub(super) fn optional_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a bool")),
        }
    }

    pub(super) fn optional_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a string")),
        }
    }

    pub(super) fn string_array(&self, key: &str) -> Result<Vec<&str>> {
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

    pub(super) fn invalid(&self, detail: String) -> GgufError {
        GgufError::Invalid {
            path: self.path.clone(),
            detail,
        }
    }
}
