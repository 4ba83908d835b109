//! GGUF (llama.cpp) weight files: a reader over a memory map, bit-exact dequantization of the
//! F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensor types, and conversion of a Llama GGUF into a plain HF folder
//! (`config.json`, f32 `model.safetensors` with HF names, tokenizer files) so that one load path
//! serves both formats. One file per concern: [`reader`](GgufFile) (header, metadata, tensor infos), `quant`
//! (ggml types, dequantization), `names` (tensor names, Q/K permutation), `config` and `tokenizer` (HF config
//! and tokenizer files from the metadata), `convert` (the HF folder).
//!
//! Layout facts the code relies on (GGUF v2/v3, little-endian):
//! header = magic `GGUF`, version u32, tensor count u64, metadata count u64; then the metadata
//! key/values, then the tensor infos (name, n_dims u32, ne[n_dims] u64, ggml type u32, offset u64),
//! then padding to `general.alignment` (default 32) where the tensor data starts. `ne[0]` is the
//! fastest-varying dimension, so the HF (row-major) shape is `ne` reversed and the bytes need no
//! transposition.

use std::path::PathBuf;

mod config;
mod convert;
mod names;
mod quant;
mod reader;
mod tokenizer;

pub use config::GgufLlamaParams;
pub use convert::gguf_to_hf_folder;
pub use names::{
    PermuteError, gguf_tensor_name, hf_tensor_name, permute_qk_rows, unpermute_qk_rows,
};
pub use quant::{DequantizeLengthError, GgmlType, QuantKind, dequantize};
pub use reader::{DenseTensor, GgufFile, GgufTensorInfo, GgufValue};

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
