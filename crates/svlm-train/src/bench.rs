//! Training-loop benchmark pieces shared by `svlm bench train` and `scripts/bench_train_torch.py`: Idefics3 configs
//! of two sizes ([`BenchShape`]), deterministic data (chat-messages JSONL + PNGs whose words are token ids, `w17`),
//! and the encoding rule both sides implement, so they tokenize identically without sharing a tokenizer. Each image
//! is one tile of the shape's image size expanded to `<fake><global-img><image>*image_seq_len<fake>` as Idefics3
//! does for an unsplit image.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use svlm_model::idefics3::Idefics3Config;
use svlm_model::llama::LlamaConfig;
use svlm_model::vision::VisionConfig;

use crate::batch::{EncodedSample, IGNORE_INDEX, SampleEncoder};
use crate::data::{Sample, SamplePart};

pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const FAKE: u32 = 3;
pub const GLOBAL: u32 = 4;
pub const USER: u32 = 5;
pub const ASSISTANT: u32 = 6;
/// The model and data dimensions of one benchmark: a config for `Idefics3ForConditionalGeneration` and the lengths
/// of the generated samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchShape {
    pub name: &'static str,
    pub vocab: u32,
    pub image_size: usize,
    pub patch: usize,
    pub scale: usize,
    pub vision_hidden: usize,
    pub vision_intermediate: usize,
    pub vision_layers: usize,
    pub vision_heads: usize,
    pub text_hidden: usize,
    pub text_intermediate: usize,
    pub text_layers: usize,
    pub text_heads: usize,
    pub text_kv_heads: usize,
    pub rope_theta: f64,
    pub max_positions: usize,
    /// Words of the user's text and of the answer, as half-open ranges.
    pub user_words: (usize, usize),
    pub answer_words: (usize, usize),
}

impl BenchShape {
    /// A tiny Idefics3 (SigLIP 2 x 64, Llama 2 x 128, 64-px images): per-op overhead dominates, as in the quickstart.
    pub const TINY: Self = Self {
        name: "tiny",
        vocab: 512,
        image_size: 64,
        patch: 8,
        scale: 2,
        vision_hidden: 64,
        vision_intermediate: 128,
        vision_layers: 2,
        vision_heads: 4,
        text_hidden: 128,
        text_intermediate: 256,
        text_layers: 2,
        text_heads: 4,
        text_kv_heads: 2,
        rope_theta: 10000.0,
        max_positions: 512,
        user_words: (4, 40),
        answer_words: (2, 24),
    };

    /// `HuggingFaceTB/SmolVLM-256M-Instruct`'s dimensions (SigLIP-B/16 at 512 px, 12 layers; SmolLM2-135M's
    /// decoder, 30 layers, vocabulary 49280; pixel shuffle 4 -> 64 tokens per image) with samples of about 200
    /// tokens: the size users fine-tune.
    pub const SMOLVLM_256M: Self = Self {
        name: "smolvlm-256m",
        vocab: 49280,
        image_size: 512,
        patch: 16,
        scale: 4,
        vision_hidden: 768,
        vision_intermediate: 3072,
        vision_layers: 12,
        vision_heads: 12,
        text_hidden: 576,
        text_intermediate: 1536,
        text_layers: 30,
        text_heads: 9,
        text_kv_heads: 3,
        rope_theta: 100000.0,
        max_positions: 8192,
        user_words: (8, 48),
        answer_words: (40, 160),
    };

    pub fn by_name(name: &str) -> Option<Self> {
        [Self::TINY, Self::SMOLVLM_256M]
            .into_iter()
            .find(|s| s.name == name)
    }

    /// Image tokens per image: one unsplit tile after the pixel shuffle.
    pub const fn image_seq_len(&self) -> usize {
        (self.image_size / self.patch) * (self.image_size / self.patch) / (self.scale * self.scale)
    }

    /// The last id of the vocabulary stands for an image token.
    pub const fn image_token(&self) -> u32 {
        self.vocab - 1
    }

    /// The HF `config.json` of the model (random weights are initialised from it on both sides).
    pub fn model_config(&self) -> serde_json::Value {
        let text_config = LlamaConfig {
            model_type: "llama".into(),
            vocab_size: self.vocab as usize,
            hidden_size: self.text_hidden,
            intermediate_size: self.text_intermediate,
            num_hidden_layers: self.text_layers,
            num_attention_heads: self.text_heads,
            num_key_value_heads: Some(self.text_kv_heads),
            head_dim: Some(self.text_hidden / self.text_heads),
            rms_norm_eps: 1e-5,
            rope_theta: Some(self.rope_theta),
            rope_scaling: None,
            rope_parameters: None,
            max_position_embeddings: self.max_positions,
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            hidden_act: "silu".into(),
            initializer_range: 0.02,
            bos_token_id: Some(BOS.into()),
            eos_token_id: Some(EOS.into()),
            pad_token_id: Some(PAD.into()),
            extra: Default::default(),
        };
        let vision_config = VisionConfig::idefics3(
            self.vision_hidden,
            self.vision_intermediate,
            self.vision_layers,
            self.vision_heads,
            self.image_size,
            self.patch,
        );
        let mut extra = serde_json::Map::new();
        extra.insert(
            "architectures".into(),
            vec!["Idefics3ForConditionalGeneration"].into(),
        );
        extra.insert("model_type".into(), "idefics3".into());
        let config = Idefics3Config {
            image_token_id: self.image_token(),
            scale_factor: self.scale,
            text_config,
            vision_config,
            tie_word_embeddings: false,
            extra,
        };
        // Plain fields and maps: serializing cannot fail.
        serde_json::to_value(&config).unwrap_or_default()
    }
}

/// The tiny shape's vocabulary, image token and image geometry (what tests that build samples by hand use).
pub const VOCAB: u32 = BenchShape::TINY.vocab;
pub const IMAGE_TOKEN: u32 = BenchShape::TINY.image_token();
pub const IMAGE_SIZE: usize = BenchShape::TINY.image_size;
pub const IMAGE_SEQ_LEN: usize = BenchShape::TINY.image_seq_len();

/// The tiny shape's model config.
pub fn model_config() -> serde_json::Value {
    BenchShape::TINY.model_config()
}

/// Deterministic bench data: `samples` rows of the shape's user and answer lengths, one image of its size each.
pub fn write_data(dir: &Path, samples: usize, shape: &BenchShape) -> std::io::Result<PathBuf> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let vocab = shape.vocab;
    let size = shape.image_size as u32;
    let word = |rng: &mut rand_chacha::ChaCha8Rng| format!("w{}", rng.random_range(8..vocab - 1));
    let mut lines = String::new();
    for i in 0..samples {
        let name = format!("images/{i}.png");
        let base = [rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()];
        let img = image::RgbImage::from_fn(size, size, |x, y| {
            image::Rgb([
                base[0].wrapping_add(x as u8),
                base[1].wrapping_add(y as u8),
                base[2],
            ])
        });
        img.save(dir.join(&name)).map_err(std::io::Error::other)?;
        let user: Vec<String> = (0..rng.random_range(shape.user_words.0..shape.user_words.1))
            .map(|_| word(&mut rng))
            .collect();
        let answer: Vec<String> = (0..rng.random_range(shape.answer_words.0..shape.answer_words.1))
            .map(|_| word(&mut rng))
            .collect();
        let row = serde_json::json!({
            "messages": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user.join(" ")}]},
                {"role": "assistant", "content": answer.join(" ")}
            ],
            "images": [name]
        });
        lines.push_str(&format!("{row}\n"));
    }
    let path = dir.join("bench.jsonl");
    std::fs::write(&path, lines)?;
    Ok(path)
}

/// The encoding rule both sides implement: `<bos>`, per message a role token, words as ids, images as one
/// Idefics3 tile block, `<eos>` after each message; labels on the assistant's words and its `<eos>`.
pub struct WordEncoder(pub BenchShape);

impl WordEncoder {
    /// The encoder of the tiny shape.
    pub const TINY: Self = Self(BenchShape::TINY);
}

impl SampleEncoder for WordEncoder {
    fn encode(&self, sample: &Sample, max_seq_len: usize) -> anyhow::Result<EncodedSample> {
        let mut ids = vec![BOS];
        let mut labels = vec![IGNORE_INDEX];
        let mut pixels = Vec::new();
        let mut image_index = 0;
        for m in &sample.messages {
            let assistant = m.role == "assistant";
            ids.push(if assistant { ASSISTANT } else { USER });
            labels.push(IGNORE_INDEX);
            for part in &m.content {
                match part {
                    SamplePart::Text(t) => {
                        for w in t.split_whitespace() {
                            let id: u32 = w
                                .strip_prefix('w')
                                .and_then(|n| n.parse().ok())
                                .filter(|&n| n < self.0.vocab)
                                .ok_or_else(|| anyhow::anyhow!("word `{w}` is not w<id>"))?;
                            ids.push(id);
                            labels.push(if assistant {
                                i64::from(id)
                            } else {
                                IGNORE_INDEX
                            });
                        }
                    }
                    SamplePart::Image => {
                        let image = sample
                            .images
                            .get(image_index)
                            .ok_or_else(|| anyhow::anyhow!("image marker without image"))?
                            .load()
                            .map_err(anyhow::Error::msg)?;
                        image_index += 1;
                        for c in 0..3 {
                            for p in image.pixels() {
                                pixels.push((f32::from(p.0[c]) / 255.0 - 0.5) / 0.5);
                            }
                        }
                        let block = [FAKE, GLOBAL]
                            .into_iter()
                            .chain(std::iter::repeat_n(
                                self.0.image_token(),
                                self.0.image_seq_len(),
                            ))
                            .chain([FAKE]);
                        for id in block {
                            ids.push(id);
                            labels.push(IGNORE_INDEX);
                        }
                    }
                }
            }
            ids.push(EOS);
            labels.push(if assistant {
                i64::from(EOS)
            } else {
                IGNORE_INDEX
            });
        }
        if ids.len() > max_seq_len {
            anyhow::bail!("{} tokens > max_seq_len {max_seq_len}", ids.len());
        }
        Ok(EncodedSample {
            source: sample.source,
            origin: sample.origin.clone(),
            input_ids: ids,
            labels,
            pixel_values: pixels,
            tiles: image_index,
            tile_shape: [3, self.0.image_size, self.0.image_size],
            image_grid_thw: Vec::new(),
            truncated: 0,
        })
    }

    fn pad_id(&self) -> u32 {
        PAD
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchResult {
    pub samples_per_s: f64,
    pub tokens_per_s: f64,
    pub pad_fraction: f64,
    pub peak_rss_mb: f64,
    pub final_loss: f64,
}
