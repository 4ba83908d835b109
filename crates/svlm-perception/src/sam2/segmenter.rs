//! Loading a `Sam2Model` folder and segmenting the objects of boxes: one mask per box, the multimask candidate
//! with the highest predicted IoU, upscaled to the photo and thresholded as `post_process_masks`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Int, Tensor, TensorData};
use image::RgbImage;
use svlm_model::WeightDType;
use svlm_model::io::{CheckpointTensor, read_checkpoint_dir};
use svlm_processor::Rgb8;

use super::config::Sam2Config;
use super::model::{Sam2MaskPrediction, Sam2Model};
use super::preprocess::{Sam2ImageProcessor, Sam2Inputs};
use crate::sam::BoxMask;
use crate::sam::model::rename_in_two_way_transformer;
use crate::sam::segmenter::{best_candidates, read_f32};

/// Checkpoint prefixes of the video-memory modules (`Sam2PreTrainedModel._keys_to_ignore_on_load_unexpected`) and
/// of the mask-prompt embedding: stored by `Sam2VideoModel` checkpoints and `save_pretrained`, not part of the
/// box-prompted image model.
const LEFT_OUT: [&str; 8] = [
    "memory_",
    "mask_downsample",
    "object_pointer_proj",
    "temporal_positional_encoding_projection_layer",
    "no_memory_positional_encoding",
    "no_object_pointer",
    "occlusion_spatial_embedding_parameter",
    "prompt_encoder.mask_embed.",
];

/// SAM 2's name of the two-way transformer's attention output -> the shared module's.
const TWO_WAY_NAMES: [(&str, &str); 1] = [(".o_proj.", ".out_proj.")];

/// The module path of a checkpoint key (`None`: not loaded).
pub fn module_path(key: &str) -> Option<String> {
    (!LEFT_OUT.iter().any(|p| key.starts_with(p)))
        .then(|| rename_in_two_way_transformer(key, &TWO_WAY_NAMES))
}

/// The checkpoint key of a module path (the inverse of [`module_path`]'s renaming).
fn checkpoint_name(path: &str) -> String {
    let back = TWO_WAY_NAMES.map(|(key, path)| (path, key));
    rename_in_two_way_transformer(path, &back)
}

/// The two copies of the random-Fourier matrix: the original SAM 2 has one (`pe_layer`), which transformers stores
/// twice; a checkpoint holding only one of them gives it to both.
const FOURIER: [&str; 2] = [
    "shared_image_embedding.positional_embedding",
    "prompt_encoder.shared_embedding.positional_embedding",
];

/// Loads checkpoint tensors into `model`, failing with every missing, unexpected and wrong-shaped tensor listed.
pub fn apply_checkpoint(
    model: &mut Sam2Model,
    tensors: &BTreeMap<String, CheckpointTensor>,
    dtype: WeightDType,
    source: &str,
) -> Result<()> {
    let [a, b] = FOURIER;
    let tied;
    let tensors = match (tensors.get(a), tensors.get(b)) {
        (Some(t), None) | (None, Some(t)) => {
            let mut all = tensors.clone();
            let missing = if all.contains_key(a) { b } else { a };
            all.insert(missing.to_string(), t.clone());
            tied = all;
            &tied
        }
        _ => tensors,
    };
    svlm_model::io::apply_named_checkpoint(
        model,
        tensors,
        dtype,
        source,
        "SAM 2 model",
        module_path,
        checkpoint_name,
    )
}

/// A SAM 2 model with its image processor, ready to segment.
pub struct Sam2 {
    pub model: Sam2Model,
    pub config: Sam2Config,
    pub processor: Sam2ImageProcessor,
    pub device: Device,
    /// The folder it was loaded from.
    pub dir: PathBuf,
}

impl Sam2 {
    /// Loads an HF folder: `config.json`, `model.safetensors` (or a sharded index) and
    /// `preprocessor_config.json`. Weights are cast to the device's float precision.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = Sam2Config::from_dir(dir)?;
        let processor = Sam2ImageProcessor::from_dir(dir)?;
        let side = config.image_size();
        if processor.do_resize && processor.size != (side, side) {
            bail!(
                "{}: the processor resizes to {}x{}, the image encoder takes {side}x{side}",
                dir.display(),
                processor.size.1,
                processor.size.0,
            );
        }
        let mut model = Sam2Model::new(&config, device)
            .with_context(|| format!("building the model of {}", dir.display()))?;
        let tensors = read_checkpoint_dir(dir)?;
        apply_checkpoint(
            &mut model,
            &tensors,
            WeightDType::of_device(device),
            &dir.display().to_string(),
        )?;
        Ok(Self {
            model,
            config,
            processor,
            device: device.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// Loads a local folder or an HF hub id (downloaded into the HF cache; `HF_HUB_OFFLINE=1` uses the cache
    /// only).
    pub fn from_pretrained(spec: &str, revision: Option<&str>, device: &Device) -> Result<Self> {
        let dir = svlm_model::hub::resolve_model(spec, revision)?;
        Self::load(&dir, device)
    }

    /// Preprocessed images -> `[B, 3, S, S]`.
    pub fn pixel_batch(&self, inputs: &[Sam2Inputs]) -> Result<Tensor<4>> {
        if inputs.is_empty() {
            bail!("empty batch");
        }
        let side = self.config.image_size();
        if inputs
            .iter()
            .any(|i| (i.pixels.height, i.pixels.width) != (side, side))
        {
            bail!("the image encoder takes {side}x{side} inputs (resizing switched off?)");
        }
        let data: Vec<f32> = inputs
            .iter()
            .flat_map(|i| i.pixels.data.iter().copied())
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(data, [inputs.len(), 3, side, side]),
            &self.device,
        ))
    }

    /// The model's prediction for boxes in photo pixels (`boxes[i]` belong to `inputs[i]`), multimask or single.
    pub fn predict(
        &self,
        inputs: &[Sam2Inputs],
        boxes: &[Vec<[f64; 4]>],
        multimask: bool,
    ) -> Result<Sam2MaskPrediction> {
        if inputs.len() != boxes.len() {
            bail!("{} images, {} box lists", inputs.len(), boxes.len());
        }
        let embeddings = self.model.image_embeddings(self.pixel_batch(inputs)?);
        let mut flat = Vec::new();
        let mut image_of = Vec::new();
        for (i, (input, list)) in inputs.iter().zip(boxes).enumerate() {
            for b in list {
                if !b.iter().all(|v| v.is_finite()) || b[2] < b[0] || b[3] < b[1] {
                    bail!("box {b:?} of image {i} is not [x0, y0, x1, y1] with x0 <= x1, y0 <= y1");
                }
                flat.extend(
                    self.processor
                        .box_to_input(*b, input.original_size)
                        .map(|v| v as f32),
                );
                image_of.push(i);
            }
        }
        let boxes =
            Tensor::<2>::from_data(TensorData::new(flat, [image_of.len(), 4]), &self.device);
        Ok(self
            .model
            .predict_masks(&embeddings, boxes, &image_of, multimask))
    }

    /// One mask per box for several photos (one encoder pass for all of them, one decoder pass for every
    /// box): `boxes[i]` are `[x0, y0, x1, y1]` in pixels of `images[i]`.
    pub fn segment_batch(
        &self,
        images: &[RgbImage],
        boxes: &[Vec<[f64; 4]>],
    ) -> Result<Vec<Vec<BoxMask>>> {
        let inputs: Vec<Sam2Inputs> = images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                self.processor
                    .preprocess(&Rgb8::from_image(image))
                    .with_context(|| format!("preprocessing image {i}"))
            })
            .collect::<Result<_>>()?;
        let total: usize = boxes.iter().map(Vec::len).sum();
        if total == 0 {
            return Ok(vec![Vec::new(); images.len()]);
        }
        let prediction = self.predict(&inputs, boxes, true)?;
        let [p, k, h, w] = prediction.masks.dims();
        let scores = read_f32(prediction.iou_scores, "IoU scores")?;
        let best = best_candidates(&scores, k);
        let flat_index: Vec<i64> = best
            .iter()
            .enumerate()
            .map(|(i, &b)| (i * k + b) as i64)
            .collect();
        let chosen = prediction.masks.reshape([p * k, h, w]).select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(flat_index, [p]), &self.device),
        );
        let mut out = Vec::with_capacity(images.len());
        let mut start = 0;
        for (input, list) in inputs.iter().zip(boxes) {
            let n = list.len();
            if n == 0 {
                out.push(Vec::new());
                continue;
            }
            let logits = self.processor.upscale_masks(
                chosen
                    .clone()
                    .slice([start..start + n, 0..h, 0..w])
                    .reshape([n, 1, h, w]),
                input.original_size,
            );
            let values = read_f32(logits, "masks")?;
            let (oh, ow) = input.original_size;
            let masks = values
                .chunks_exact(oh * ow)
                .enumerate()
                .map(|(j, m)| BoxMask {
                    mask: m
                        .iter()
                        .map(|&v| v > self.processor.mask_threshold)
                        .collect(),
                    width: ow,
                    height: oh,
                    candidate: best[start + j],
                    predicted_iou: scores[(start + j) * k + best[start + j]],
                })
                .collect();
            out.push(masks);
            start += n;
        }
        Ok(out)
    }

    /// [`Self::segment_batch`] for one photo.
    pub fn segment(&self, image: &RgbImage, boxes: &[[f64; 4]]) -> Result<Vec<BoxMask>> {
        let mut out = self.segment_batch(std::slice::from_ref(image), &[boxes.to_vec()])?;
        out.pop().context("no masks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_way_attention_output_maps_to_the_shared_module_and_back() {
        let key = "mask_decoder.transformer.layers.0.self_attn.o_proj.weight";
        let path = "mask_decoder.transformer.layers.0.self_attn.out_proj.weight";
        assert_eq!(module_path(key).as_deref(), Some(path));
        assert_eq!(checkpoint_name(path), key);
    }

    #[test]
    fn video_and_mask_prompt_tensors_are_left_out() {
        for key in [
            "memory_attention.layers.0.self_attn.q_proj.weight",
            "mask_downsample.weight",
            "no_object_pointer",
            "prompt_encoder.mask_embed.conv1.weight",
        ] {
            assert_eq!(module_path(key), None, "{key}");
        }
        assert_eq!(
            module_path("no_memory_embedding").as_deref(),
            Some("no_memory_embedding")
        );
    }
}
