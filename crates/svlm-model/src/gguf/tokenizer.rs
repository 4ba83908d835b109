//! A GGUF's byte-level BPE vocabulary as HF `tokenizer.json` and `tokenizer_config.json`.

use serde_json::{Map, Value, json};

use super::reader::GgufFile;
use super::{GgufError, Result};

impl GgufFile {
    pub(super) fn token_strings(&self) -> Result<Vec<&str>> {
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

    pub(super) fn token_text(&self, tokens: &[&str], which: &str) -> Result<Option<String>> {
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
}

const LLAMA3_PRE_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_PRE_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
