//! A Llama GGUF's hyper-parameters (`llama.*` metadata) and the HF `config.json` / `generation_config.json`
//! they make.

use serde_json::{Map, Value};

use crate::llama::{LlamaConfig, RopeParameters};

use super::reader::GgufFile;
use super::{GgufError, Result};

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
    pub rope_scaling: Option<RopeParameters>,
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
                Some(RopeParameters::linear(factor))
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

    pub(super) fn special_token_id(&self, name: &str) -> Result<Option<u64>> {
        self.optional_u64(&format!("tokenizer.ggml.{name}_token_id"))
    }

    /// The HF `config.json` (LlamaConfig) of a Llama GGUF.
    pub fn hf_config(&self) -> Result<LlamaConfig> {
        let p = self.llama_params()?;
        let token = |name: &str| -> Result<Option<Value>> {
            Ok(self.special_token_id(name)?.map(Value::from))
        };
        // The keys transformers writes that the model does not read.
        let mut extra = Map::new();
        extra.insert("architectures".into(), vec!["LlamaForCausalLM"].into());
        extra.insert("attention_dropout".into(), 0.0.into());
        extra.insert("pretraining_tp".into(), 1.into());
        extra.insert("use_cache".into(), true.into());
        extra.insert("torch_dtype".into(), "float32".into());
        if let Some(name) = self.optional_str("general.name")? {
            extra.insert("_name_or_path".into(), name.into());
        }
        Ok(LlamaConfig {
            model_type: "llama".into(),
            vocab_size: p.vocab_size,
            hidden_size: p.hidden_size,
            intermediate_size: p.intermediate_size,
            num_hidden_layers: p.num_hidden_layers,
            num_attention_heads: p.num_attention_heads,
            num_key_value_heads: Some(p.num_key_value_heads),
            head_dim: Some(p.head_dim),
            rms_norm_eps: p.rms_norm_eps,
            rope_theta: Some(p.rope_theta),
            rope_scaling: p.rope_scaling.as_ref().map(RopeParameters::to_value),
            rope_parameters: None,
            max_position_embeddings: p.max_position_embeddings,
            tie_word_embeddings: p.tie_word_embeddings,
            attention_bias: self.tensor("blk.0.attn_q.bias").is_some(),
            mlp_bias: self.tensor("blk.0.ffn_up.bias").is_some(),
            hidden_act: "silu".into(),
            initializer_range: 0.02,
            bos_token_id: token("bos")?,
            eos_token_id: token("eos")?,
            pad_token_id: token("padding")?,
            extra,
        })
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
                config.insert(key.to_string(), id.into());
            }
        }
        Ok(Value::Object(config))
    }
}
