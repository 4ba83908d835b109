//! Test helpers: a tiny VLM with the three parts (vision tower, connector, language model), a byte-level encoder
//! with a chat template, and writers for small datasets with PNG images in a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use svlm_train::batch::{EncodedSample, HostBatch, IGNORE_INDEX, SampleEncoder};
use svlm_train::data::{Sample, SamplePart};
use svlm_train::model::{Part, TrainableModel};

pub const VOCAB: usize = 260;
const BOS: u32 = 256;
const USER: u32 = 257;
const ASSISTANT: u32 = 258;
const IMAGE: u32 = 259;
pub const TILE: [usize; 3] = [3, 4, 4];

#[derive(Module, Debug)]
pub struct TinyVlm {
    pub vision_model: Linear,
    pub connector: Linear,
    pub embed_tokens: Embedding,
    pub mlp: Linear,
    pub lm_head: Linear,
}

impl TinyVlm {
    /// Weights drawn from a ChaCha stream of `seed`, not Burn's global RNG: tests run in parallel threads, and a
    /// shared generator would make two "identical" inits differ.
    pub fn new(device: &Device, seed: u64) -> Self {
        let d = 16;
        let model = Self {
            vision_model: LinearConfig::new(TILE.iter().product(), d).init(device),
            connector: LinearConfig::new(d, d).init(device),
            embed_tokens: EmbeddingConfig::new(VOCAB, d).init(device),
            mlp: LinearConfig::new(d, d).init(device),
            lm_head: LinearConfig::new(d, VOCAB).init(device),
        };
        let mut mapper = SeededInit {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        };
        model.map(&mut mapper)
    }
}

struct SeededInit {
    rng: rand_chacha::ChaCha8Rng,
    device: Device,
}

impl ModuleMapper for SeededInit {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let rng = &mut self.rng;
        let device = self.device.clone();
        param.map(|t| {
            let shape = t.shape();
            let values: Vec<f32> = (0..shape.num_elements())
                .map(|_| rng.random_range(-0.3f32..0.3))
                .collect();
            Tensor::<D>::from_data(TensorData::new(values, shape), &device).require_grad()
        })
    }
}

impl TrainableModel for TinyVlm {
    fn logits(&self, batch: &HostBatch, device: &Device) -> anyhow::Result<Tensor<3>> {
        let (b, t) = (batch.batch, batch.seq_len);
        let ids: Vec<i64> = batch.input_ids.iter().map(|&i| i64::from(i)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), device);
        let mut h = self.embed_tokens.forward(ids);
        if batch.max_tiles > 0 {
            let n = batch.max_tiles;
            let tile: usize = batch.tile_shape.iter().product();
            let pixels = Tensor::<3>::from_data(
                TensorData::new(batch.pixel_values.clone(), [b, n, tile]),
                device,
            );
            let features = self.vision_model.forward(pixels); // [b, n, d]
            // Each token sees the sum of its own sample's tiles (in a packed row, not its neighbours').
            let mut own = vec![0.0f32; b * t * n];
            for span in &batch.spans {
                for pos in span.start..span.start + span.len {
                    let at = (span.row * t + pos) * n;
                    own[at + span.tile_start..at + span.tile_start + span.tiles].fill(1.0);
                }
            }
            let own = Tensor::<3>::from_data(TensorData::new(own, [b, t, n]), device);
            h = h + self.connector.forward(own.matmul(features)); // [b, t, d]
        }
        let h = gelu(self.mlp.forward(h.clone())) + h;
        Ok(self.lm_head.forward(h))
    }

    /// Tokens mix nothing across positions, and each one takes its own sample's tiles.
    fn supports_packing(&self) -> bool {
        true
    }

    fn part_of(&self, path: &str) -> Part {
        if path.starts_with("vision_model") {
            Part::Vision
        } else if path.starts_with("connector") {
            Part::Connector
        } else {
            Part::Language
        }
    }
}

/// Byte-level tokens; `<user>`/`<assistant>` markers; loss on the assistant's bytes and its end marker.
pub struct ByteEncoder;

impl SampleEncoder for ByteEncoder {
    fn encode(&self, sample: &Sample, max_seq_len: usize) -> anyhow::Result<EncodedSample> {
        let mut ids = vec![BOS];
        let mut labels = vec![IGNORE_INDEX];
        for m in &sample.messages {
            let assistant = m.role == "assistant";
            ids.push(if assistant { ASSISTANT } else { USER });
            labels.push(IGNORE_INDEX);
            for part in &m.content {
                match part {
                    SamplePart::Text(t) => {
                        for b in t.bytes() {
                            ids.push(u32::from(b));
                            labels.push(if assistant {
                                i64::from(b)
                            } else {
                                IGNORE_INDEX
                            });
                        }
                    }
                    SamplePart::Image => {
                        ids.push(IMAGE);
                        labels.push(IGNORE_INDEX);
                    }
                }
            }
            ids.push(BOS);
            labels.push(if assistant {
                i64::from(BOS)
            } else {
                IGNORE_INDEX
            });
        }
        let mut pixel_values = Vec::new();
        for image in &sample.images {
            let rgb = image.load().map_err(anyhow::Error::msg)?;
            let small = image::imageops::resize(&rgb, 4, 4, image::imageops::FilterType::Triangle);
            for c in 0..3 {
                for y in 0..4 {
                    for x in 0..4 {
                        pixel_values.push(f32::from(small.get_pixel(x, y).0[c]) / 255.0 - 0.5);
                    }
                }
            }
        }
        let truncated = ids.len().saturating_sub(max_seq_len);
        ids.truncate(max_seq_len);
        labels.truncate(max_seq_len);
        Ok(EncodedSample {
            source: sample.source,
            origin: sample.origin.clone(),
            input_ids: ids,
            labels,
            tiles: sample.images.len(),
            pixel_values,
            tile_shape: TILE,
            image_grid_thw: Vec::new(),
            truncated,
        })
    }

    fn pad_id(&self) -> u32 {
        0
    }
}

/// A tiny solid-colour PNG.
pub fn write_png(path: &Path, rgb: [u8; 3]) {
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb(rgb));
    img.save(path).expect("write png");
}

const COLORS: [(&str, [u8; 3]); 4] = [
    ("red", [220, 30, 30]),
    ("green", [30, 200, 40]),
    ("blue", [30, 40, 220]),
    ("yellow", [230, 220, 30]),
];

/// `n` LLaVA JSONL rows about the colour of a PNG, images under `dir/images`. Returns the JSONL path.
pub fn write_color_set(dir: &Path, name: &str, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join("images")).expect("mkdir");
    let mut lines = String::new();
    for i in 0..n {
        let (color, rgb) = COLORS[i % COLORS.len()];
        let image = format!("images/{name}_{i}.png");
        write_png(&dir.join(&image), rgb);
        let row = serde_json::json!({
            "id": format!("{name}-{i}"),
            "image": image,
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is the picture?"},
                {"from": "gpt", "value": format!("It is {color}.")}
            ]
        });
        lines.push_str(&format!("{row}\n"));
    }
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, lines).expect("write jsonl");
    path
}

/// `n` text-only chat rows (`messages`), answers of varying length.
pub fn write_text_set(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut lines = String::new();
    for i in 0..n {
        let answer = "ab".repeat(1 + i % 7);
        let row = serde_json::json!({"messages": [
            {"role": "user", "content": format!("Repeat ab {} times.", 1 + i % 7)},
            {"role": "assistant", "content": answer}
        ]});
        lines.push_str(&format!("{row}\n"));
    }
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, lines).expect("write jsonl");
    path
}

/// A run config over the given sources (name, path, weight).
pub fn config_text(sources: &[(&str, &Path, f64)], extra: &str) -> String {
    let mut text = format!(
        r#"seed = 5
[model]
config = "unused.json"
max_seq_len = 64
[train]
stage = "full"
steps = 6
batch_size = 4
[optim]
lr = 3e-3
warmup_steps = 2
[log]
progress = false
{extra}
"#
    );
    for (name, path, weight) in sources {
        text.push_str(&format!(
            "[[data.sources]]\nname = \"{name}\"\npath = \"{}\"\nweight = {weight}\nholdout = 4\n",
            path.display()
        ));
    }
    text
}
