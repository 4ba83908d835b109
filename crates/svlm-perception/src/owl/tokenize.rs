//! Text queries -> token ids as `Owlv2Processor` / `OwlViTProcessor` make them: the CLIP tokenizer of the model
//! folder (`tokenizer.json`, with `<|startoftext|>` / `<|endoftext|>` added by its post-processor; for folders that
//! ship only `vocab.json` + `merges.txt`, as the google/owl* hub repos may, the pipeline transformers 5's
//! `CLIPTokenizer` builds from them, see [`clip_tokenizer_json`]), padded at the
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
    /// Reads `tokenizer.json` (else `vocab.json` + `merges.txt` with `special_tokens_map.json`) and, when present,
    /// `tokenizer_config.json` (`pad_token`, `model_max_length`); `max_positions` (the text model's) bounds the
    /// length.
    pub fn from_dir(dir: &Path, max_positions: usize) -> Result<Self> {
        let config_path = dir.join("tokenizer_config.json");
        let config = read_json_if_present(&config_path)?;
        let mut path = dir.join("tokenizer.json");
        let mut tokenizer = if path.is_file() {
            Tokenizer::from_file(&path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?
        } else {
            let vocab_path = dir.join("vocab.json");
            let merges_path = dir.join("merges.txt");
            if !vocab_path.is_file() || !merges_path.is_file() {
                bail!(
                    "{}: no tokenizer.json, and no vocab.json + merges.txt to build the CLIP tokenizer from",
                    dir.display()
                );
            }
            let vocab = read_json_if_present(&vocab_path)?;
            let merges = std::fs::read_to_string(&merges_path)
                .with_context(|| format!("reading {}", merges_path.display()))?;
            let special_map = read_json_if_present(&dir.join("special_tokens_map.json"))?;
            let special = |key: &str, default: &str| -> String {
                config
                    .get(key)
                    .and_then(token_content)
                    .or_else(|| special_map.get(key).and_then(token_content))
                    .unwrap_or(default)
                    .to_string()
            };
            let json = clip_tokenizer_json(
                &vocab,
                &merges,
                &ClipSpecialTokens {
                    bos: special("bos_token", "<|startoftext|>"),
                    eos: special("eos_token", "<|endoftext|>"),
                    pad: special("pad_token", "<|endoftext|>"),
                    unk: special("unk_token", "<|endoftext|>"),
                },
            )
            .with_context(|| format!("building the CLIP tokenizer of {}", dir.display()))?;
            path = vocab_path;
            json.to_string()
                .parse::<Tokenizer>()
                .map_err(|e| anyhow!("{}: {e}", dir.display()))?
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

    /// A tokenizer from `tokenizer.json` text, padding with `pad_token` to `max_length`.
    pub fn from_json_str(text: &str, max_length: usize, pad_token: &str) -> Result<Self> {
        let tokenizer = text
            .parse::<Tokenizer>()
            .map_err(|e| anyhow!("parsing tokenizer.json text: {e}"))?;
        let pad_id = tokenizer
            .token_to_id(pad_token)
            .with_context(|| format!("pad token `{pad_token}` is not in the vocabulary"))?;
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

fn read_json_if_present(path: &Path) -> Result<Value> {
    if !path.is_file() {
        return Ok(Value::Null);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The special tokens of a CLIP tokenizer, by content.
pub struct ClipSpecialTokens {
    pub bos: String,
    pub eos: String,
    pub pad: String,
    pub unk: String,
}

/// The `tokenizer.json` that transformers 5's `CLIPTokenizer` builds from `vocab.json` and `merges.txt`: NFC,
/// whitespace runs to one space, lowercase; CLIP's split pattern then byte-level; BPE with the `</w>` word suffix;
/// `<|startoftext|>` ... `<|endoftext|>` around every text; the special tokens added (matched before
/// normalization).
pub fn clip_tokenizer_json(
    vocab: &Value,
    merges: &str,
    special: &ClipSpecialTokens,
) -> Result<Value> {
    let Some(map) = vocab.as_object() else {
        bail!("vocab.json is not an object of token -> id");
    };
    let id_of = |token: &str| -> Result<u64> {
        map.get(token)
            .and_then(Value::as_u64)
            .with_context(|| format!("special token `{token}` is not in vocab.json"))
    };
    let mut pairs = Vec::new();
    for (i, line) in merges.lines().enumerate() {
        if line.starts_with("#version") || line.trim().is_empty() {
            continue;
        }
        match line.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                pairs.push(serde_json::json!([a, b]))
            }
            _ => bail!("merges.txt line {}: `{line}` is not two symbols", i + 1),
        }
    }
    let mut added = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for token in [&special.pad, &special.bos, &special.eos, &special.unk] {
        if seen.insert(token.clone()) {
            added.push(serde_json::json!({
                "id": id_of(token)?, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true
            }));
        }
    }
    added.sort_by_key(|t| t["id"].as_u64());
    Ok(serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"}
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex":
                "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]},
        "post_processor": {"type": "RobertaProcessing",
            "sep": [special.eos, id_of(&special.eos)?], "cls": [special.bos, id_of(&special.bos)?],
            "trim_offsets": false, "add_prefix_space": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": special.unk, "continuing_subword_prefix": "",
            "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": pairs}
    }))
}
