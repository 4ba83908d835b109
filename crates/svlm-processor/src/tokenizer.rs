//! The HF tokenizer folder: `tokenizer.json` (the `tokenizers` pipeline, used as is, as transformers' fast
//! tokenizers do), `tokenizer_config.json` (special tokens, chat template, padding side) and
//! `special_tokens_map.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::error::{ProcessorError, Result};
use crate::files::{read_json_if_exists, write_atomic, write_json_atomic};

/// Where `collate` puts the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingSide {
    #[default]
    Right,
    Left,
}

/// The special tokens HF templates and processors refer to by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub unk: Option<String>,
    pub pad: Option<String>,
    pub sep: Option<String>,
    pub cls: Option<String>,
    pub mask: Option<String>,
    pub additional: Vec<String>,
    /// Named extra tokens (`extra_special_tokens` as a mapping in transformers 5, e.g. `image_token`).
    pub named: BTreeMap<String, String>,
}

impl SpecialTokens {
    fn slots(&mut self) -> [(&'static str, &mut Option<String>); 7] {
        [
            ("bos_token", &mut self.bos),
            ("eos_token", &mut self.eos),
            ("unk_token", &mut self.unk),
            ("pad_token", &mut self.pad),
            ("sep_token", &mut self.sep),
            ("cls_token", &mut self.cls),
            ("mask_token", &mut self.mask),
        ]
    }

    /// Reads the role keys of `tokenizer_config.json` / `special_tokens_map.json`; values are strings or
    /// serialized `AddedToken`s (`{"content": ...}`). Keys present in `value` override earlier ones.
    fn merge_from(&mut self, value: &Value) {
        for (key, slot) in self.slots() {
            if let Some(v) = value.get(key) {
                *slot = token_content(v);
            }
        }
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            match value.get(key) {
                Some(Value::Array(list)) => {
                    let tokens: Vec<String> = list.iter().filter_map(token_content).collect();
                    if !tokens.is_empty() {
                        self.additional = tokens;
                    }
                }
                Some(Value::Object(map)) => {
                    for (name, v) in map {
                        if let Some(t) = token_content(v) {
                            self.named.insert(name.clone(), t);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// `{"bos_token": "<s>", ...}` as HF passes `special_tokens_map` to chat templates.
    pub fn template_variables(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let mut this = self.clone();
        for (key, slot) in this.slots() {
            if let Some(t) = slot.take() {
                out.insert(key.to_string(), Value::String(t));
            }
        }
        if !self.additional.is_empty() {
            out.insert("additional_special_tokens".into(), json!(self.additional));
        }
        for (name, token) in &self.named {
            out.insert(name.clone(), json!(token));
        }
        out
    }
}

fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// A tokenizer as `AutoTokenizer.from_pretrained` loads it (fast tokenizer, `tokenizer.json` pipeline unchanged).
#[derive(Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    special: SpecialTokens,
    chat_template: Option<String>,
    padding_side: PaddingSide,
    clean_up_tokenization_spaces: bool,
    model_max_length: Option<usize>,
    /// `tokenizer_config.json` as read, kept so `save` writes back keys this type does not model.
    config: Value,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .field("padding_side", &self.padding_side)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` plus the optional `tokenizer_config.json` and `special_tokens_map.json`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join("tokenizer_config.json");
        let map = dir.join("special_tokens_map.json");
        Self::from_files(
            &dir.join("tokenizer.json"),
            config.is_file().then_some(config.as_path()),
            map.is_file().then_some(map.as_path()),
        )
    }

    pub fn from_files(
        tokenizer_json: &Path,
        tokenizer_config: Option<&Path>,
        special_tokens_map: Option<&Path>,
    ) -> Result<Self> {
        if !tokenizer_json.is_file() {
            return Err(ProcessorError::Tokenizer {
                path: tokenizer_json.to_path_buf(),
                message: "file not found".into(),
            });
        }
        let inner =
            HfTokenizer::from_file(tokenizer_json).map_err(|e| ProcessorError::Tokenizer {
                path: tokenizer_json.to_path_buf(),
                message: e.to_string(),
            })?;
        let config = match tokenizer_config {
            Some(p) => read_json_if_exists(p)?.unwrap_or(Value::Null),
            None => Value::Null,
        };
        let map = match special_tokens_map {
            Some(p) => read_json_if_exists(p)?,
            None => None,
        };
        Self::from_parts(
            inner,
            config,
            map,
            tokenizer_config.unwrap_or(tokenizer_json),
        )
    }

    fn from_parts(
        inner: HfTokenizer,
        config: Value,
        map: Option<Value>,
        config_path: &Path,
    ) -> Result<Self> {
        // transformers reads special_tokens_map.json first and lets tokenizer_config.json override it.
        let mut special = SpecialTokens::default();
        if let Some(map) = &map {
            special.merge_from(map);
        }
        special.merge_from(&config);
        let chat_template = match config.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(v) => Some(select_chat_template(v).ok_or_else(|| {
                ProcessorError::InvalidKey {
                    path: config_path.to_path_buf(),
                    key: "chat_template".into(),
                    message:
                        "expected a string or a list of {name, template} with a \"default\" entry"
                            .into(),
                }
            })?),
        };
        let padding_side = match config.get("padding_side").and_then(Value::as_str) {
            Some("left") => PaddingSide::Left,
            Some("right") | None => PaddingSide::Right,
            Some(other) => {
                return Err(ProcessorError::InvalidKey {
                    path: config_path.to_path_buf(),
                    key: "padding_side".into(),
                    message: format!("expected \"left\" or \"right\", got {other:?}"),
                });
            }
        };
        let clean_up_tokenization_spaces = config
            .get("clean_up_tokenization_spaces")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let model_max_length = config
            .get("model_max_length")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        Ok(Self {
            inner,
            special,
            chat_template,
            padding_side,
            clean_up_tokenization_spaces,
            model_max_length,
            config,
        })
    }

    /// Wraps an in-memory `tokenizers` pipeline with the given special tokens.
    pub fn from_tokenizer(
        inner: HfTokenizer,
        special: SpecialTokens,
        chat_template: Option<String>,
    ) -> Self {
        Self {
            inner,
            special,
            chat_template,
            padding_side: PaddingSide::Right,
            clean_up_tokenization_spaces: false,
            model_max_length: None,
            config: Value::Null,
        }
    }

    /// Token ids as `tokenizer(text, add_special_tokens=...)["input_ids"]` gives them.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| ProcessorError::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text as `tokenizer.decode(ids, skip_special_tokens=...)` gives it.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let text = self
            .inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ProcessorError::Encode(e.to_string()))?;
        Ok(if self.clean_up_tokenization_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens (`len(tokenizer)` in Python).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    fn id_of(&self, token: &Option<String>) -> Option<u32> {
        token.as_deref().and_then(|t| self.token_to_id(t))
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.id_of(&self.special.bos)
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.id_of(&self.special.eos)
    }

    pub fn pad_token_id(&self) -> Option<u32> {
        self.id_of(&self.special.pad)
    }

    pub fn unk_token_id(&self) -> Option<u32> {
        self.id_of(&self.special.unk)
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    pub fn set_chat_template(&mut self, template: Option<String>) {
        self.chat_template = template;
    }

    pub fn padding_side(&self) -> PaddingSide {
        self.padding_side
    }

    pub fn set_padding_side(&mut self, side: PaddingSide) {
        self.padding_side = side;
    }

    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Adds special tokens that are not in the vocabulary yet (as `tokenizer.add_special_tokens` does) and
    /// returns how many were new.
    pub fn add_special_tokens(&mut self, tokens: &[&str]) -> Result<usize> {
        let missing: Vec<AddedToken> = tokens
            .iter()
            .filter(|t| self.inner.token_to_id(t).is_none())
            .map(|t| AddedToken::from(*t, true).normalized(false))
            .collect();
        let added = self
            .inner
            .add_special_tokens(missing)
            .map_err(|e| ProcessorError::Encode(format!("cannot add special tokens: {e}")))?;
        for t in tokens {
            if !self.special.additional.iter().any(|a| a == t) {
                self.special.additional.push((*t).to_string());
            }
        }
        Ok(added)
    }

    /// The wrapped `tokenizers` pipeline.
    pub fn inner(&self) -> &HfTokenizer {
        &self.inner
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` (special tokens, chat template, padding side) and
    /// `special_tokens_map.json` into `dir`, each atomically, in the layout `AutoTokenizer.from_pretrained` reads.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| ProcessorError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let json_path = dir.join("tokenizer.json");
        let text = self
            .inner
            .to_string(true)
            .map_err(|e| ProcessorError::Tokenizer {
                path: json_path.clone(),
                message: e.to_string(),
            })?;
        write_atomic(&json_path, text.as_bytes())?;

        let mut config = match &self.config {
            Value::Object(o) => o.clone(),
            _ => serde_json::Map::new(),
        };
        config
            .entry("tokenizer_class")
            .or_insert_with(|| json!("PreTrainedTokenizerFast"));
        config.insert(
            "clean_up_tokenization_spaces".into(),
            json!(self.clean_up_tokenization_spaces),
        );
        config.insert(
            "padding_side".into(),
            json!(match self.padding_side {
                PaddingSide::Left => "left",
                PaddingSide::Right => "right",
            }),
        );
        if let Some(n) = self.model_max_length {
            config.insert("model_max_length".into(), json!(n));
        }
        let mut roles = self.special.clone();
        let mut role_map = serde_json::Map::new();
        for (key, slot) in roles.slots() {
            match slot.take() {
                Some(t) => {
                    config.insert(key.to_string(), json!(t));
                    role_map.insert(key.to_string(), json!(t));
                }
                None => {
                    config.remove(key);
                }
            }
        }
        config.remove("additional_special_tokens");
        if !self.special.named.is_empty() {
            config.insert("extra_special_tokens".into(), json!(self.special.named));
        } else if !self.special.additional.is_empty() {
            config.insert(
                "extra_special_tokens".into(),
                json!(self.special.additional),
            );
        }
        if !self.special.additional.is_empty() {
            role_map.insert(
                "additional_special_tokens".into(),
                json!(self.special.additional),
            );
        }
        match &self.chat_template {
            Some(t) => config.insert("chat_template".into(), json!(t)),
            None => config.remove("chat_template"),
        };
        write_json_atomic(&dir.join("tokenizer_config.json"), &Value::Object(config))?;
        write_json_atomic(
            &dir.join("special_tokens_map.json"),
            &Value::Object(role_map),
        )?;
        Ok(())
    }
}

/// `tokenizer_config.json` may hold one template or a list of named ones; the processor uses "default".
fn select_chat_template(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.iter().find_map(|item| {
            (item.get("name")?.as_str()? == "default")
                .then(|| item.get("template")?.as_str().map(str::to_string))
                .flatten()
        }),
        _ => None,
    }
}

/// transformers' `clean_up_tokenization`.
fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// Settings of `train_bpe_tokenizer`.
#[derive(Debug, Clone)]
pub struct BpeTrainingOptions {
    pub vocab_size: usize,
    pub min_frequency: u64,
    /// Added as special tokens first, in this order (ids 0, 1, ...).
    pub special_tokens: Vec<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub unk_token: Option<String>,
    pub chat_template: Option<String>,
}

impl BpeTrainingOptions {
    pub fn new(vocab_size: usize, special_tokens: Vec<String>) -> Self {
        Self {
            vocab_size,
            min_frequency: 2,
            special_tokens,
            bos_token: None,
            eos_token: None,
            pad_token: None,
            unk_token: None,
            chat_template: None,
        }
    }
}

/// Trains a byte-level BPE tokenizer (GPT-2 / SmolLM2 style: ByteLevel pre-tokenizer with its regex, no prefix
/// space, ByteLevel decoder) from scratch, for tiny models trained in this project.
pub fn train_bpe_tokenizer(
    texts: impl IntoIterator<Item = String>,
    options: &BpeTrainingOptions,
) -> Result<Tokenizer> {
    let mut tokenizer = HfTokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(false, false, true)));
    let specials: Vec<AddedToken> = options
        .special_tokens
        .iter()
        .map(|t| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(options.vocab_size)
        .min_frequency(options.min_frequency)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let texts: Vec<String> = texts.into_iter().collect();
    if texts.is_empty() {
        return Err(ProcessorError::Invalid(
            "cannot train a tokenizer on no text".into(),
        ));
    }
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| ProcessorError::Encode(format!("BPE training failed: {e}")))?;
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| ProcessorError::Encode(format!("cannot add special tokens: {e}")))?;
    let mut special = SpecialTokens {
        bos: options.bos_token.clone(),
        eos: options.eos_token.clone(),
        pad: options.pad_token.clone(),
        unk: options.unk_token.clone(),
        ..SpecialTokens::default()
    };
    for t in &options.special_tokens {
        let is_role = [&special.bos, &special.eos, &special.pad, &special.unk]
            .iter()
            .any(|r| r.as_deref() == Some(t.as_str()));
        if !is_role {
            special.additional.push(t.clone());
        }
    }
    for (name, role) in [
        ("bos_token", &special.bos),
        ("eos_token", &special.eos),
        ("pad_token", &special.pad),
        ("unk_token", &special.unk),
    ] {
        if let Some(t) = role
            && tokenizer.token_to_id(t).is_none()
        {
            return Err(ProcessorError::Invalid(format!(
                "{name} {t:?} is not among the special tokens {:?}",
                options.special_tokens
            )));
        }
    }
    Ok(Tokenizer::from_tokenizer(
        tokenizer,
        special,
        options.chat_template.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        (0..200)
            .map(|i| {
                format!(
                    "the red cube is {i} metres from the blue sphere; how far is the chair? {}",
                    i * 7
                )
            })
            .collect()
    }

    fn options() -> BpeTrainingOptions {
        let mut o = BpeTrainingOptions::new(
            400,
            vec![
                "<|endoftext|>".into(),
                "<|im_start|>".into(),
                "<|im_end|>".into(),
            ],
        );
        o.eos_token = Some("<|im_end|>".into());
        o.pad_token = Some("<|endoftext|>".into());
        o.chat_template = Some("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}".into());
        o
    }

    #[test]
    fn trained_tokenizer_round_trips_text_and_keeps_special_ids() {
        let tok = train_bpe_tokenizer(corpus(), &options()).unwrap();
        assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
        assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
        assert!(tok.vocab_size() <= 400 && tok.vocab_size() > 256);
        let text = "the blue cube is 3 metres away — über 🙂";
        let ids = tok.encode(text, true).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        let with_special = tok.encode("<|im_start|>user", false).unwrap();
        assert_eq!(with_special[0], 1);
        // Merges were learned: a frequent word is one token.
        assert_eq!(tok.encode(" metres", false).unwrap().len(), 1);
    }

    #[test]
    fn saved_tokenizer_loads_back_identically() {
        let tok = train_bpe_tokenizer(corpus(), &options()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        tok.save(dir.path()).unwrap();
        let back = Tokenizer::from_dir(dir.path()).unwrap();
        let text = "how far is the chair from the red cube?";
        assert_eq!(
            back.encode(text, true).unwrap(),
            tok.encode(text, true).unwrap()
        );
        assert_eq!(back.eos_token_id(), Some(2));
        assert_eq!(back.pad_token_id(), Some(0));
        assert_eq!(back.chat_template(), tok.chat_template());
    }

    #[test]
    fn role_token_must_be_special() {
        let mut o = options();
        o.bos_token = Some("<s>".into());
        let err = train_bpe_tokenizer(corpus(), &o).unwrap_err();
        assert!(err.to_string().contains("bos_token"), "{err}");
    }

    #[test]
    fn missing_tokenizer_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("tokenizer.json"), "{err}");
    }

    #[test]
    fn chat_template_list_picks_default() {
        let v =
            json!([{"name": "tool_use", "template": "a"}, {"name": "default", "template": "b"}]);
        assert_eq!(select_chat_template(&v).as_deref(), Some("b"));
        assert_eq!(select_chat_template(&json!(3)), None);
    }
}
