//! Loading a `SamModel` folder and segmenting the objects of boxes: one mask per box, the multimask candidate
//! with the highest predicted IoU, upscaled to the photo and thresholded as `post_process_masks`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Int, Tensor, TensorData};
use image::RgbImage;
use svlm_model::WeightDType;
use svlm_model::io::{CheckpointTensor, read_checkpoint_dir};
use svlm_processor::Rgb8;

use super::config::SamConfig;
use super::model::{MaskPrediction, SamModel, rename_in_two_way_transformer};
use super::preprocess::{SamImageProcessor, SamInputs};

/// SAM's names of the two-way transformer's MLP layers -> the shared module's.
const TWO_WAY_NAMES: [(&str, &str); 2] = [
    (".mlp.lin1.", ".mlp.proj_in."),
    (".mlp.lin2.", ".mlp.proj_out."),
];

const TIED_POSITIONAL: &str = "prompt_encoder.shared_embedding.positional_embedding";
const SHARED_POSITIONAL: &str = "shared_image_embedding.positional_embedding";

/// The module path of a checkpoint key (`None`: not loaded). The prompt encoder's copy of the shared positional
/// embedding is tied to `shared_image_embedding` (used when only the tied copy is stored); the mask-prompt
/// embedding (`prompt_encoder.mask_embed.*`) is not part of the box-prompted model.
pub fn module_path(key: &str, has_shared: bool) -> Option<String> {
    if key.starts_with("prompt_encoder.mask_embed.") {
        return None;
    }
    if key == TIED_POSITIONAL {
        return (!has_shared).then(|| SHARED_POSITIONAL.to_string());
    }
    Some(rename_in_two_way_transformer(key, &TWO_WAY_NAMES))
}

/// The checkpoint key of a module path (the inverse of [`module_path`]'s renaming).
fn checkpoint_name(path: &str) -> String {
    let back = TWO_WAY_NAMES.map(|(key, path)| (path, key));
    rename_in_two_way_transformer(path, &back)
}

/// Loads checkpoint tensors into `model`, failing with every missing, unexpected and wrong-shaped tensor listed.
pub fn apply_checkpoint(
    model: &mut SamModel,
    tensors: &BTreeMap<String, CheckpointTensor>,
    dtype: WeightDType,
    source: &str,
) -> Result<()> {
    let has_shared = tensors.contains_key(SHARED_POSITIONAL);
    svlm_model::io::apply_named_checkpoint(
        model,
        tensors,
        dtype,
        source,
        "SAM model",
        |key| module_path(key, has_shared),
        checkpoint_name,
    )
}

/// The mask of one box at the photo's size.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxMask {
    /// Row-major `height x width`, true inside the object.
    pub mask: Vec<bool>,
    pub width: usize,
    pub height: usize,
    /// Which multimask candidate was chosen (0..3) and its predicted IoU.
    pub candidate: usize,
    pub predicted_iou: f32,
}

impl BoxMask {
    pub fn area(&self) -> usize {
        self.mask.iter().filter(|&&m| m).count()
    }
}

/// A SAM model with its image processor, ready to segment.
pub struct Sam {
    pub model: SamModel,
    pub config: SamConfig,
    pub processor: SamImageProcessor,
    pub device: Device,
    /// The folder it was loaded from.
    pub dir: PathBuf,
}

impl Sam {
    /// Loads an HF folder: `config.json`, `model.safetensors` (or a sharded index) and
    /// `preprocessor_config.json`. Weights are cast to the device's float precision.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = SamConfig::from_dir(dir)?;
        let processor = SamImageProcessor::from_dir(dir)?;
        let v = &config.vision_config;
        if processor.do_pad && processor.pad_size != (v.image_size, v.image_size) {
            bail!(
                "{}: the processor pads to {}x{}, the image encoder takes {}x{}",
                dir.display(),
                processor.pad_size.1,
                processor.pad_size.0,
                v.image_size,
                v.image_size
            );
        }
        let mut model = SamModel::new(&config, device)
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

    /// Loads a local folder or an HF hub id (e.g. `facebook/sam-vit-base`, downloaded into the HF cache;
    /// `HF_HUB_OFFLINE=1` uses the cache only).
    pub fn from_pretrained(spec: &str, revision: Option<&str>, device: &Device) -> Result<Self> {
        let dir = svlm_model::hub::resolve_model(spec, revision)?;
        Self::load(&dir, device)
    }

    /// Preprocessed images -> `[B, 3, S, S]`.
    pub fn pixel_batch(&self, inputs: &[SamInputs]) -> Result<Tensor<4>> {
        let Some(first) = inputs.first() else {
            bail!("empty batch");
        };
        let (h, w) = (first.pixels.height, first.pixels.width);
        let side = self.config.vision_config.image_size;
        if inputs
            .iter()
            .any(|i| (i.pixels.height, i.pixels.width) != (side, side))
        {
            bail!("the image encoder takes {side}x{side} inputs (padding switched off?)");
        }
        let data: Vec<f32> = inputs
            .iter()
            .flat_map(|i| i.pixels.data.iter().copied())
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(data, [inputs.len(), 3, h, w]),
            &self.device,
        ))
    }

    /// The model's multimask prediction for boxes in photo pixels: `boxes[i]` belong to `inputs[i]`.
    pub fn predict(&self, inputs: &[SamInputs], boxes: &[Vec<[f64; 4]>]) -> Result<MaskPrediction> {
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
        Ok(self.model.predict_masks(embeddings, boxes, &image_of, true))
    }

    /// One mask per box for several photos (one encoder pass for all of them, one decoder pass for every
    /// box): `boxes[i]` are `[x0, y0, x1, y1]` in pixels of `images[i]`.
    pub fn segment_batch(
        &self,
        images: &[RgbImage],
        boxes: &[Vec<[f64; 4]>],
    ) -> Result<Vec<Vec<BoxMask>>> {
        let inputs: Vec<SamInputs> = images
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
        let prediction = self.predict(&inputs, boxes)?;
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
                input,
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

/// For rows of `k` candidate scores, the index of each row's first highest score (`argmax`).
pub(crate) fn best_candidates(scores: &[f32], k: usize) -> Vec<usize> {
    scores
        .chunks_exact(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (j, &s)| {
                        if s > acc.1 { (j, s) } else { acc }
                    },
                )
                .0
        })
        .collect()
}

pub(crate) fn read_f32<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the {what}: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_and_mask_prompt_tensors_are_mapped_or_left_out() {
        assert_eq!(
            module_path("prompt_encoder.mask_embed.conv1.weight", true),
            None
        );
        assert_eq!(module_path(TIED_POSITIONAL, true), None);
        assert_eq!(
            module_path(TIED_POSITIONAL, false).as_deref(),
            Some(SHARED_POSITIONAL)
        );
        assert_eq!(
            module_path("vision_encoder.pos_embed", true).as_deref(),
            Some("vision_encoder.pos_embed")
        );
    }

    /// The two-way transformer's MLP layers are `lin1`/`lin2` in SAM's checkpoints and `proj_in`/`proj_out` in the
    /// module it shares with SAM 2; the vision encoder's `lin1`/`lin2` keep their names.
    #[test]
    fn two_way_mlp_names_map_both_ways_and_only_in_the_transformer() {
        let key = "mask_decoder.transformer.layers.1.mlp.lin2.bias";
        let path = "mask_decoder.transformer.layers.1.mlp.proj_out.bias";
        assert_eq!(module_path(key, true).as_deref(), Some(path));
        assert_eq!(checkpoint_name(path), key);
        let vision = "vision_encoder.layers.0.mlp.lin1.weight";
        assert_eq!(module_path(vision, true).as_deref(), Some(vision));
        assert_eq!(checkpoint_name(vision), vision);
    }
}
