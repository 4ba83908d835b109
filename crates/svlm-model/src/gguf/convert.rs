//! A Llama GGUF as a plain HF folder: names mapped, Q/K rows unpermuted, tensors dequantized to f32 one at a
//! time while `model.safetensors` is written, config and tokenizer files beside it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::GgufLlamaParams;
use super::names::{LAYER_NAMES, check_permutable, hf_tensor_name, unpermute_qk_rows};
use super::quant::{QuantKind, dequantize_exact};
use super::reader::{GgufFile, GgufTensorInfo};
use super::{GgufError, Result};

/// One output tensor of the conversion, dequantized lazily while the safetensors file is written
/// so that at most one tensor is held in f32 at a time.
pub(super) struct ConvertedTensor<'a> {
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
pub(super) fn plan_tensors<'a>(
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

pub(super) fn expected_llama_names(params: &GgufLlamaParams) -> Vec<String> {
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

pub(super) fn write_json(gguf: &Path, dir: &Path, name: &str, value: &Value) -> Result<()> {
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

    let config = serde_json::to_value(&config).map_err(|e| write_err(out_dir, e.to_string()))?;
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
