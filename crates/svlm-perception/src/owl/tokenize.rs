//! Text queries -> token ids as `Owlv2Processor` / `OwlViTProcessor` make them: the CLIP tokenizer of the model
//! folder (`tokenizer.json`, with `<|startoftext|>` / `<|endoftext|>` added by its post-processor), padded at the
//! end to `max_length` (`model_max_length` of `tokenizer_config.json`, 16 for every OWL checkpoint) with the pad
//! token (`!`, id 0, in the OWL checkpoints). A query longer than that is an error (transformers would pass it on
//! and fail in the position embeddings).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tokenizers::Tokenizer;

use super::model::TextQueries;

pub struct OwlTokenizer {
    tokenizer: Tokenizer,
    pub max_length: usize,
    pub pad_id: u32,
}

fn token_content(v: &Value) -> Option<&str> {
    v.as_str()
        .or_else(|| v.get("content").and_then(Value::as_str))
}

impl OwlTokenizer {
    /// Reads `tokenizer.json` and, when present, `tokenizer_config.json` (`pad_token`, `model_max_length`);
    /// `max_positions` (the text model's) bounds the length.
    pub fn from_dir(dir: &Path, max_positions: usize) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", config_path.display()))?
        } else {
            Value::Null
        };
        let pad_id = match config.get("pad_token").and_then(token_content) {
            Some(token) => tokenizer.token_to_id(token).with_context(|| {
                format!(
                    "{}: pad_token `{token}` is not in the vocabulary of {}",
                    config_path.display(),
                    path.display()
                )
            })?,
            None => match tokenizer.get_padding() {
                Some(p) => p.pad_id,
                None => bail!(
                    "{}: no pad_token (and {} configures no padding): cannot pad queries",
                    config_path.display(),
                    path.display()
                ),
            },
        };
        // `model_max_length` is a huge placeholder when a tokenizer has no limit.
        let max_length = config
            .get("model_max_length")
            .and_then(Value::as_f64)
            .filter(|&m| m >= 1.0 && m <= max_positions as f64)
            .map(|m| m as usize)
            .unwrap_or(max_positions);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(Self {
            tokenizer,
            max_length,
            pad_id,
        })
    }

    /// Token ids of one query with the special tokens, unpadded.
    pub fn tokens(&self, query: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(query, true)
            .map_err(|e| anyhow!("tokenizing {query:?}: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The queries padded to `max_length`, with their attention mask.
    pub fn encode(&self, queries: &[&str]) -> Result<TextQueries> {
        if queries.is_empty() {
            bail!("no text queries");
        }
        let n = self.max_length;
        let mut ids = Vec::with_capacity(queries.len() * n);
        let mut mask = Vec::with_capacity(queries.len() * n);
        for query in queries {
            let tokens = self.tokens(query)?;
            if tokens.len() > n {
                bail!(
                    "query {query:?} is {} tokens long; OWL text queries hold at most {n} (with start and end tokens)",
                    tokens.len()
                );
            }
            ids.extend(tokens.iter().map(|&t| i64::from(t)));
            mask.extend(std::iter::repeat_n(1, tokens.len()));
            ids.extend(std::iter::repeat_n(
                i64::from(self.pad_id),
                n - tokens.len(),
            ));
            mask.extend(std::iter::repeat_n(0, n - tokens.len()));
        }
        TextQueries::new(ids, mask, queries.len())
    }
}
