//! Training-loop benchmark pieces shared by `svlm bench train` and `scripts/bench_train_torch.py`: a tiny Idefics3
//! config, deterministic data (chat-messages JSONL + PNGs whose words are token ids, `w17`), and the encoding rule
//! both sides implement, so they tokenize identically without sharing a tokenizer. Each image is one tile of
//! `IMAGE_SIZE` pixels expanded to `<fake><global-img><image>*IMAGE_SEQ_LEN<fake>` as Idefics3 does for an unsplit
//! image.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

use crate::batch::{EncodedSample, IGNORE_INDEX, SampleEncoder};
use crate::data::{ContentPart, Sample};

pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const FAKE: u32 = 3;
pub const GLOBAL: u32 = 4;
pub const USER: u32 = 5;
pub const ASSISTANT: u32 = 6;
pub const VOCAB: u32 = 512;
pub const IMAGE_TOKEN: u32 = VOCAB - 1;
pub const IMAGE_SIZE: usize = 64;
pub const PATCH: usize = 8;
pub const SCALE: usize = 2;
pub const IMAGE_SEQ_LEN: usize = (IMAGE_SIZE / PATCH) * (IMAGE_SIZE / PATCH) / (SCALE * SCALE);

pub fn model_config() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["Idefics3ForConditionalGeneration"],
        "model_type": "idefics3",
        "image_token_id": IMAGE_TOKEN,
        "scale_factor": SCALE,
        "tie_word_embeddings": false,
        "vision_config": {
            "model_type": "idefics3_vision", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": PATCH, "num_channels": 3,
            "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"
        },
        "text_config": {
            "model_type": "llama", "vocab_size": VOCAB, "hidden_size": 128, "intermediate_size": 256,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 512, "rope_theta": 10000.0, "tie_word_embeddings": false,
            "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD, "hidden_act": "silu"
        }
    })
}

/// Deterministic bench data: `samples` rows, user text 4..40 words, answers 2..24 words, one 64x64 image each.
pub fn write_data(dir: &Path, samples: usize) -> std::io::Result<PathBuf> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let word = |rng: &mut rand_chacha::ChaCha8Rng| format!("w{}", rng.random_range(8..VOCAB - 1));
    let mut lines = String::new();
    for i in 0..samples {
        let name = format!("images/{i}.png");
        let base = [rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()];
        let img = image::RgbImage::from_fn(IMAGE_SIZE as u32, IMAGE_SIZE as u32, |x, y| {
            image::Rgb([
                base[0].wrapping_add(x as u8),
                base[1].wrapping_add(y as u8),
                base[2],
            ])
        });
        img.save(dir.join(&name)).map_err(std::io::Error::other)?;
        let user: Vec<String> = (0..rng.random_range(4..40))
            .map(|_| word(&mut rng))
            .collect();
        let answer: Vec<String> = (0..rng.random_range(2..24))
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
pub struct WordEncoder;

impl SampleEncoder for WordEncoder {
    fn encode(&self, sample: &Sample, max_seq_len: usize) -> Result<EncodedSample, String> {
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
                    ContentPart::Text(t) => {
                        for w in t.split_whitespace() {
                            let id: u32 = w
                                .strip_prefix('w')
                                .and_then(|n| n.parse().ok())
                                .filter(|&n| n < VOCAB)
                                .ok_or_else(|| format!("word `{w}` is not w<id>"))?;
                            ids.push(id);
                            labels.push(if assistant {
                                i64::from(id)
                            } else {
                                IGNORE_INDEX
                            });
                        }
                    }
                    ContentPart::Image => {
                        let image = sample
                            .images
                            .get(image_index)
                            .ok_or("image marker without image")?
                            .load()?;
                        image_index += 1;
                        for c in 0..3 {
                            for p in image.pixels() {
                                pixels.push((f32::from(p.0[c]) / 255.0 - 0.5) / 0.5);
                            }
                        }
                        let block = [FAKE, GLOBAL]
                            .into_iter()
                            .chain(std::iter::repeat_n(IMAGE_TOKEN, IMAGE_SEQ_LEN))
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
            return Err(format!("{} tokens > max_seq_len {max_seq_len}", ids.len()));
        }
        Ok(EncodedSample {
            source: sample.source,
            origin: sample.origin.clone(),
            input_ids: ids,
            labels,
            pixel_values: pixels,
            tiles: image_index,
            tile_shape: [3, IMAGE_SIZE, IMAGE_SIZE],
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
