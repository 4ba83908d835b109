//! svlm-model's VLMs in the trainer: [`TrainableModel`] for [`svlm_model::Vlm`], the processor-backed
//! [`ProcessorEncoder`] (the model's chat template + image preprocessing, loss on assistant tokens), and
//! [`build_model`], which makes the model a run config names.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::{Device, Int, Tensor, TensorData};
use svlm_model::{ModelConfig, Packing, Vlm, VlmBatch, WeightDType};
use svlm_processor::Processor;
use svlm_processor::chat::{ChatMessage, ContentPart};

use crate::batch::{EncodedSample, HostBatch, IGNORE_INDEX, SampleEncoder};
use crate::config::RunConfig;
use crate::data::{Sample, SamplePart};
use crate::model::{Part, TrainableModel};

/// Checkpoint files of an svlm-model VLM: an HF folder without the tokenizer.
pub const HF_CONFIG_FILE: &str = "config.json";
pub const HF_WEIGHTS_FILE: &str = "model.safetensors";

impl TrainableModel for Vlm {
    fn logits(&self, batch: &HostBatch, device: &Device) -> anyhow::Result<Tensor<3>> {
        let batch = vlm_batch(self, batch, device);
        self.try_forward(&batch)
    }

    fn logits_at(
        &self,
        batch: &HostBatch,
        positions: &[i64],
        device: &Device,
    ) -> anyhow::Result<Tensor<2>> {
        let hidden = self.last_hidden_state(&vlm_batch(self, batch, device))?;
        let picked = crate::model::rows_at(hidden, positions, device);
        let logits = self.lm_logits(picked.unsqueeze_dim(0));
        let [_, n, v] = logits.dims();
        Ok(logits.reshape([n, v]))
    }

    fn supports_packing(&self) -> bool {
        true
    }

    fn part_of(&self, path: &str) -> Part {
        svlm_model::part_of(path)
    }

    fn save_weights(&self, dir: &Path) -> anyhow::Result<()> {
        let config = self.config().to_json().context("model config")?;
        let text = serde_json::to_string_pretty(&config)?;
        crate::checkpoint::write_atomic(&dir.join(HF_CONFIG_FILE), text.as_bytes())?;
        // f32 whatever the training precision, so a resume continues from the exact weights.
        svlm_model::save_safetensors(self, &dir.join(HF_WEIGHTS_FILE), WeightDType::F32)
    }

    fn load_weights(mut self, dir: &Path) -> anyhow::Result<Self> {
        svlm_model::load_safetensors(&mut self, &dir.join(HF_WEIGHTS_FILE))?;
        Ok(self)
    }
}

/// Encodes samples with an HF processor folder: the model's chat template, image-token expansion and image
/// preprocessing, with labels on the assistant turns (their text and the template's end-of-turn tokens).
pub struct ProcessorEncoder {
    pub processor: Processor,
    pad_id: u32,
    image_token_id: Option<u32>,
}

impl ProcessorEncoder {
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let processor = Processor::from_dir(dir)
            .map_err(|e| anyhow::anyhow!("processor in {}: {e}", dir.display()))?;
        Ok(Self::new(processor))
    }

    pub fn new(processor: Processor) -> Self {
        let tokenizer = &processor.tokenizer;
        let pad_id = tokenizer
            .pad_token_id()
            .or(tokenizer.eos_token_id())
            .unwrap_or(0);
        let image_token_id = tokenizer.token_to_id(processor.style.image_token());
        Self {
            processor,
            pad_id,
            image_token_id,
        }
    }

    fn messages(sample: &Sample) -> Vec<ChatMessage> {
        sample
            .messages
            .iter()
            .map(|m| {
                let content = m
                    .content
                    .iter()
                    .map(|p| match p {
                        SamplePart::Text(t) => ContentPart::Text { text: t.clone() },
                        SamplePart::Image => ContentPart::Image,
                    })
                    .collect();
                ChatMessage::new(m.role.clone(), content)
            })
            .collect()
    }
}

/// Position of `needle` in `haystack` at or after `from`.
fn find_tokens(haystack: &[u32], needle: &[u32], from: usize) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| haystack[i..i + needle.len()] == *needle)
}

impl SampleEncoder for ProcessorEncoder {
    fn encode(&self, sample: &Sample, max_seq_len: usize) -> anyhow::Result<EncodedSample> {
        let messages = Self::messages(sample);
        let images = sample
            .images
            .iter()
            .map(|i| {
                svlm_processor::decode_image(&i.bytes().map_err(anyhow::Error::msg)?)
                    .map_err(|e| anyhow::anyhow!("image: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let full = self
            .processor
            .apply_chat_template(&messages, false)
            .map_err(|e| anyhow::anyhow!("chat template: {e}"))?;
        let processed = self
            .processor
            .process_with(&full, &images, true)
            .map_err(|e| anyhow::anyhow!("processor: {e}"))?;
        let ids = processed.input_ids;
        let mut labels = vec![IGNORE_INDEX; ids.len()];
        // Each assistant turn is the text between the prompt with a generation prompt and the prompt with the turn.
        let mut search_from = 0usize;
        for i in 0..messages.len() {
            if messages[i].role != "assistant" {
                continue;
            }
            let before = self
                .processor
                .apply_chat_template(&messages[..i], true)
                .map_err(|e| anyhow::anyhow!("chat template: {e}"))?;
            let through = self
                .processor
                .apply_chat_template(&messages[..=i], false)
                .map_err(|e| anyhow::anyhow!("chat template: {e}"))?;
            let span = through.strip_prefix(before.as_str()).ok_or_else(|| {
                anyhow::anyhow!("the chat template is not prefix-stable at turn {i}: cannot tell which tokens are the answer")
            })?;
            let tokens = self
                .processor
                .tokenizer
                .encode(span, false)
                .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
            let start = find_tokens(&ids, &tokens, search_from).ok_or_else(|| {
                anyhow::anyhow!("assistant turn {i} does not tokenize the same inside the prompt")
            })?;
            for k in start..start + tokens.len() {
                labels[k] = i64::from(ids[k]);
            }
            search_from = start + tokens.len();
        }
        let truncated = ids.len().saturating_sub(max_seq_len);
        if truncated > 0
            && let Some(image) = self.image_token_id
            && ids[max_seq_len..].contains(&image)
        {
            return Err(anyhow::anyhow!(
                "{} tokens with image tokens past max_seq_len {max_seq_len}",
                ids.len()
            ));
        }
        let mut ids = ids;
        ids.truncate(max_seq_len);
        labels.truncate(max_seq_len);
        let [tiles, c, h, w] = processed.pixel_shape;
        Ok(EncodedSample {
            source: sample.source,
            origin: sample.origin.clone(),
            input_ids: ids,
            labels,
            pixel_values: processed.pixel_values,
            tiles,
            tile_shape: [c, h, w],
            image_grid_thw: processed.image_grid_thw,
            truncated,
        })
    }

    fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// Train the model a run config names in `run_dir`: its devices (`train.device`, a comma-separated list trains
/// data-parallel; `train.precision = "bf16"` configures every GPU device's float dtype), its model
/// ([`build_model`]) and its processor's encoder ([`ProcessorEncoder`]). `resume` continues from the newest
/// checkpoint; claim the folder first ([`crate::checkpoint::claim_run_dir`]).
pub fn train_config(
    config: &RunConfig,
    run_dir: &Path,
    resume: bool,
) -> anyhow::Result<crate::TrainOutcome> {
    let bf16 = config.train.precision == crate::config::Precision::Bf16;
    let mut devices = Vec::new();
    for name in config.train.devices() {
        let mut device = svlm_model::resolve_device(&name)?;
        if bf16 && !name.eq_ignore_ascii_case("cpu") {
            device
                .configure(burn::tensor::FloatDType::BF16)
                .map_err(|e| anyhow::anyhow!("bf16 on {name}: {e:?}"))?;
        }
        devices.push(device.autodiff());
    }
    let device = devices.remove(0);
    let (model, processor_dir) = build_model(config, &device)?;
    let encoder = ProcessorEncoder::from_dir(&processor_dir)?;
    let options = crate::TrainOptions {
        resume,
        halt_after: None,
        replicas: devices,
    };
    Ok(crate::train(
        config, run_dir, model, &encoder, &device, &options,
    )?)
}

/// The model and its processor folder, as a run config says: pretrained (hub id or folder) or from scratch
/// (`model.config`, seeded by `seed`). `device` must be an autodiff device.
pub fn build_model(config: &RunConfig, device: &Device) -> anyhow::Result<(Vlm, PathBuf)> {
    match (&config.model.pretrained, &config.model.config) {
        (Some(spec), _) => {
            // A folder, a .gguf file (converted once into the svlm cache) or a hub repo id (HF cache;
            // HF_HUB_OFFLINE=1 resolves from the cache only).
            let dir = svlm_model::hub::resolve_model(spec, None)
                .map_err(|e| anyhow::anyhow!("model.pretrained: {e:#}"))?;
            let loaded = svlm_model::load_pretrained(&dir, device)?;
            let tokenizer_dir = config.model.tokenizer.clone().unwrap_or(dir);
            Ok((loaded.model, tokenizer_dir))
        }
        (None, Some(path)) => {
            let model_config = ModelConfig::from_file(path)?;
            device.seed(config.seed);
            let mut model = Vlm::from_config(&model_config, device)?;
            if config.model.vision_position_std > 0.0 {
                model.reinit_vision_positions(config.model.vision_position_std);
            }
            let tokenizer_dir = config
                .model
                .tokenizer
                .clone()
                .or_else(|| path.parent().map(Path::to_path_buf))
                .ok_or_else(|| {
                    anyhow::anyhow!("model.tokenizer: no folder for {}", path.display())
                })?;
            Ok((model, tokenizer_dir))
        }
        (None, None) => anyhow::bail!("model: set `model.pretrained` or `model.config`"),
    }
}

/// A trainer batch as svlm-model's input tensors on `device`. A packed batch's tiles are already in the order of
/// its rows' samples, which is the order [`Vlm::embed`] fills image tokens in.
fn vlm_batch(model: &Vlm, batch: &HostBatch, device: &Device) -> VlmBatch {
    let (b, t) = (batch.batch, batch.seq_len);
    let ids: Vec<i64> = batch.input_ids.iter().map(|&i| i64::from(i)).collect();
    let mask: Vec<i64> = batch.attention_mask.iter().map(|&m| i64::from(m)).collect();
    let input_ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), device);
    let attention_mask = Tensor::<2, Int>::from_data(TensorData::new(mask, [b, t]), device);
    // The Qwen2-VL family: each tile is one flattened patch; the real ones, in row order, are the batch's images.
    let image_patches = match model {
        Vlm::Qwen2Vl(_) if batch.max_tiles > 0 => {
            let dim: usize = batch.tile_shape.iter().product();
            let mut patches = Vec::new();
            for (slot, &real) in batch.tile_mask.iter().enumerate() {
                if real {
                    patches.extend_from_slice(&batch.pixel_values[slot * dim..(slot + 1) * dim]);
                }
            }
            let n = patches.len() / dim;
            Some(svlm_model::ImagePatches {
                pixel_values: Tensor::<2>::from_data(TensorData::new(patches, [n, dim]), device),
                grid_thw: batch.image_grid_thw.clone(),
            })
        }
        _ => None,
    };
    let (pixel_values, pixel_attention_mask) = if batch.max_tiles > 0 && image_patches.is_none() {
        let [c, h, w] = batch.tile_shape;
        let n = batch.max_tiles;
        let pixels = Tensor::<5>::from_data(
            TensorData::new(batch.pixel_values.clone(), [b, n, c, h, w]),
            device,
        );
        let pixel_mask = match model {
            Vlm::Idefics3(_) => {
                let mut m = Vec::with_capacity(b * n * h * w);
                for &real in &batch.tile_mask {
                    m.extend(std::iter::repeat_n(i64::from(real), h * w));
                }
                Some(Tensor::<4, Int>::from_data(
                    TensorData::new(m, [b, n, h, w]),
                    device,
                ))
            }
            _ => None,
        };
        (Some(pixels), pixel_mask)
    } else {
        (None, None)
    };
    let packing = batch.packed.then(|| {
        let int = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
            Tensor::<2, Int>::from_data(TensorData::new(v, [b, t]), device)
        };
        Packing {
            segment_ids: int(&batch.segment_ids),
            position_ids: int(&batch.position_ids),
        }
    });
    VlmBatch {
        input_ids,
        attention_mask,
        labels: None,
        pixel_values,
        pixel_attention_mask,
        image_patches,
        packing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_search_finds_the_answer_span() {
        assert_eq!(find_tokens(&[1, 2, 3, 2, 3, 4], &[2, 3, 4], 0), Some(3));
        assert_eq!(find_tokens(&[1, 2, 3], &[2, 3], 2), None);
        assert_eq!(find_tokens(&[1, 2], &[], 0), None);
    }
}
