//! Loading an OWLv2 / OWL-ViT folder and detecting text-queried objects in photos.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use svlm_model::WeightDType;
use svlm_model::io::{CheckpointTensor, read_checkpoint_dir};
use svlm_processor::Rgb8;

use super::config::{OwlConfig, OwlVersion};
use super::model::{OwlForObjectDetection, OwlOutput, TextQueries};
use super::preprocess::OwlImageProcessor;
use super::tokenize::OwlTokenizer;
use crate::preprocess::PixelValues;

/// The module path of a checkpoint key (`None`: not a parameter of the module tree): the backbone prefix
/// (`owlv2.` / `owlvit.`) becomes `owl.`, CLIP's `pre_layernorm` svlm-model's `pre_layrnorm`; position-id buffers
/// and the 0-d `logit_scale` (read separately) are skipped. A key with the other generation's prefix is kept as is
/// and so reported as unexpected.
pub fn module_path(version: OwlVersion, key: &str) -> Option<String> {
    if key.ends_with("position_ids") || key == format!("{}.logit_scale", version.prefix()) {
        return None;
    }
    let key = match key.strip_prefix(&format!("{}.", version.prefix())) {
        Some(rest) => format!("owl.{rest}"),
        None => return Some(key.to_string()),
    };
    Some(key.replace(
        ".vision_model.pre_layernorm.",
        ".vision_model.pre_layrnorm.",
    ))
}

/// The checkpoint key of a module path (inverse of [`module_path`]).
pub fn checkpoint_name(version: OwlVersion, path: &str) -> String {
    let path = path.replace(
        ".vision_model.pre_layrnorm.",
        ".vision_model.pre_layernorm.",
    );
    match path.strip_prefix("owl.") {
        Some(rest) => format!("{}.{rest}", version.prefix()),
        None => path,
    }
}

/// Loads checkpoint tensors into `model`, failing with every missing, unexpected and wrong-shaped tensor listed.
pub fn apply_checkpoint(
    model: &mut OwlForObjectDetection,
    tensors: &BTreeMap<String, CheckpointTensor>,
    dtype: WeightDType,
    source: &str,
) -> Result<()> {
    let version = model.version;
    let scale_key = format!("{}.logit_scale", version.prefix());
    let scale = tensors.get(&scale_key).with_context(|| {
        format!("{source} does not match the OWL model its config describes: missing tensor {scale_key} []")
    })?;
    let value = scale
        .to_data(&scale_key, WeightDType::F32)?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{source}: reading {scale_key}: {e:?}"))?;
    match value.as_slice() {
        [v] => model.logit_scale = *v,
        _ => bail!(
            "{source}: {scale_key} has shape {:?}, expected a scalar",
            scale.shape
        ),
    }
    svlm_model::io::apply_named_checkpoint(
        model,
        tensors,
        dtype,
        source,
        "OWL detection model",
        |key| module_path(version, key),
        |path| checkpoint_name(version, path),
    )
}

/// One detected object. `box_xyxy` is `[x0, y0, x1, y1]` in pixels of the original photo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The text query that scored highest for this box.
    pub label: String,
    pub query_index: usize,
    /// `sigmoid` of the box's best query logit.
    pub score: f32,
    pub box_xyxy: [f32; 4],
}

/// One row of `post_process_object_detection`: a patch whose best query scores above the threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawDetection {
    /// The patch (box) index.
    pub index: usize,
    pub score: f32,
    pub label: usize,
    pub box_xyxy: [f32; 4],
}

/// transformers' `post_process_object_detection` for one image: per box, the best query (`argmax`, first on ties)
/// and its `sigmoid` score; boxes with `score > threshold` kept in patch order; (cx, cy, w, h) -> corners, scaled
/// to pixels: OWLv2 by `max(height, width)` on both axes (the model saw the padded square), OWL-ViT by width and
/// height. No clipping (transformers does none either).
/// `logits`: `[P, Q]` row-major; `boxes`: `[P, 4]`.
pub fn post_process_object_detection(
    logits: &[f32],
    boxes: &[f32],
    num_queries: usize,
    threshold: f32,
    version: OwlVersion,
    (height, width): (usize, usize),
) -> Vec<RawDetection> {
    let (sx, sy) = match version {
        OwlVersion::V2 => {
            let side = height.max(width) as f32;
            (side, side)
        }
        OwlVersion::V1 => (width as f32, height as f32),
    };
    let mut out = Vec::new();
    for (index, (row, b)) in logits
        .chunks_exact(num_queries)
        .zip(boxes.chunks_exact(4))
        .enumerate()
    {
        let mut label = 0;
        for (q, &v) in row.iter().enumerate() {
            if v > row[label] {
                label = q;
            }
        }
        let score = 1.0 / (1.0 + (-row[label]).exp());
        if score > threshold {
            let (cx, cy, w, h) = (b[0], b[1], b[2], b[3]);
            out.push(RawDetection {
                index,
                score,
                label,
                box_xyxy: [
                    (cx - 0.5 * w) * sx,
                    (cy - 0.5 * h) * sy,
                    (cx + 0.5 * w) * sx,
                    (cy + 0.5 * h) * sy,
                ],
            });
        }
    }
    out
}

fn values<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading {what}: {e:?}"))
}

/// An OWLv2 / OWL-ViT model with its image processor and tokenizer, ready to detect.
pub struct OwlDetector {
    pub model: OwlForObjectDetection,
    pub config: OwlConfig,
    pub processor: OwlImageProcessor,
    pub tokenizer: OwlTokenizer,
    pub device: Device,
    /// The folder it was loaded from.
    pub dir: PathBuf,
}

impl OwlDetector {
    /// Loads an HF folder: `config.json`, `model.safetensors` (or a sharded index), `preprocessor_config.json`,
    /// `tokenizer.json` (+ `tokenizer_config.json`). Weights are cast to the device's float precision.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = OwlConfig::from_dir(dir)?;
        let processor = OwlImageProcessor::from_dir(dir, config.version)?;
        let tokenizer = OwlTokenizer::from_dir(dir, config.text_config.max_position_embeddings)?;
        let mut model = OwlForObjectDetection::new(&config, device)
            .with_context(|| format!("building the model of {}", dir.display()))?;
        let tensors = read_checkpoint_dir(dir)?;
        apply_checkpoint(
            &mut model,
            &tensors,
            WeightDType::of_device(device),
            &dir.display().to_string(),
        )?;
        let side = config.vision_config.image_size;
        if processor.do_resize && processor.size != (side, side) {
            bail!(
                "{}: the image processor resizes to {:?} but the model takes {side}x{side}",
                dir.display(),
                processor.size
            );
        }
        Ok(Self {
            model,
            config,
            processor,
            tokenizer,
            device: device.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// Loads a local folder or an HF hub id (e.g. `google/owlv2-base-patch16-ensemble`, downloaded into the HF
    /// cache; `HF_HUB_OFFLINE=1` uses the cache only).
    pub fn from_pretrained(spec: &str, revision: Option<&str>, device: &Device) -> Result<Self> {
        let dir = svlm_model::hub::resolve_model(spec, revision)?;
        Self::load(&dir, device)
    }

    pub fn version(&self) -> OwlVersion {
        self.config.version
    }

    /// `[B, 3, S, S]` from preprocessed images.
    pub fn pixel_batch(&self, pixels: &[PixelValues]) -> Result<Tensor<4>> {
        let Some(first) = pixels.first() else {
            bail!("empty batch");
        };
        let (h, w) = (first.height, first.width);
        if pixels.iter().any(|p| (p.height, p.width) != (h, w)) {
            bail!("a batch needs images of one processed size");
        }
        let data: Vec<f32> = pixels.iter().flat_map(|p| p.data.iter().copied()).collect();
        Ok(Tensor::<4>::from_data(
            TensorData::new(data, [pixels.len(), 3, h, w]),
            &self.device,
        ))
    }

    /// The raw model outputs for photos and queries.
    pub fn forward(&self, images: &[RgbImage], queries: &TextQueries) -> Result<OwlOutput> {
        let mut pixels = Vec::with_capacity(images.len());
        for (i, image) in images.iter().enumerate() {
            pixels.push(
                self.processor
                    .preprocess(&Rgb8::from_image(image))
                    .with_context(|| format!("preprocessing image {i}"))?,
            );
        }
        self.model.forward(self.pixel_batch(&pixels)?, queries)
    }

    /// Objects matching `queries` in one photo: [`post_process_object_detection`] (`score > threshold`), boxes
    /// clipped to the photo, sorted by descending score. No NMS (as transformers' text-query detection).
    pub fn detect(
        &self,
        image: &RgbImage,
        queries: &[&str],
        threshold: f32,
    ) -> Result<Vec<Detection>> {
        let mut out = self.detect_batch(std::slice::from_ref(image), queries, threshold)?;
        out.pop().context("no detections returned")
    }

    /// [`Self::detect`] for several photos with the same queries, in one forward pass.
    pub fn detect_batch(
        &self,
        images: &[RgbImage],
        queries: &[&str],
        threshold: f32,
    ) -> Result<Vec<Vec<Detection>>> {
        let text = self.tokenizer.encode(queries)?;
        let out = self.forward(images, &text)?;
        let [b, p, q] = out.logits.dims();
        let logits = values(out.logits, "logits")?;
        let boxes = values(out.pred_boxes, "pred_boxes")?;
        let mut all = Vec::with_capacity(b);
        for (i, image) in images.iter().enumerate() {
            let (h, w) = (image.height() as usize, image.width() as usize);
            let raw = post_process_object_detection(
                &logits[i * p * q..(i + 1) * p * q],
                &boxes[i * p * 4..(i + 1) * p * 4],
                q,
                threshold,
                self.version(),
                (h, w),
            );
            let mut detections: Vec<Detection> = raw
                .into_iter()
                .map(|d| Detection {
                    label: queries[d.label].to_string(),
                    query_index: d.label,
                    score: d.score,
                    box_xyxy: clip_box(d.box_xyxy, w as f32, h as f32),
                })
                .collect();
            detections.sort_by(|a, b| b.score.total_cmp(&a.score));
            all.push(detections);
        }
        Ok(all)
    }
}

/// A box clipped to `[0, width] x [0, height]`.
pub fn clip_box(b: [f32; 4], width: f32, height: f32) -> [f32; 4] {
    [
        b[0].clamp(0.0, width),
        b[1].clamp(0.0, height),
        b[2].clamp(0.0, width),
        b[3].clamp(0.0, height),
    ]
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes (0 when either is empty).
pub fn box_iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Greedy per-query non-maximum suppression: highest score first, a box is dropped when its IoU with an already kept
/// box *of the same query* exceeds `iou_threshold`. transformers' text-query detection applies none (OWL predicts
/// one box per patch, so one object often gets several); [`OwlDetector::detect`] does not call this, callers that
/// want one box per object do. Returns the kept detections by descending score.
pub fn suppress_overlaps(mut detections: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(detections.len());
    for d in detections {
        let overlaps = kept.iter().any(|k| {
            k.query_index == d.query_index && box_iou(k.box_xyxy, d.box_xyxy) > iou_threshold
        });
        if !overlaps {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_is_per_query_and_keeps_the_best() {
        let det = |q: usize, score: f32, b: [f32; 4]| Detection {
            label: format!("q{q}"),
            query_index: q,
            score,
            box_xyxy: b,
        };
        assert!((box_iou([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(box_iou([0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]), 0.0);
        let kept = suppress_overlaps(
            vec![
                det(0, 0.5, [0.0, 0.0, 10.0, 10.0]),
                det(0, 0.9, [1.0, 1.0, 10.0, 10.0]),
                det(1, 0.4, [0.0, 0.0, 10.0, 10.0]),
                det(0, 0.3, [20.0, 20.0, 30.0, 30.0]),
            ],
            0.5,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.4, 0.3]);
    }

    #[test]
    fn checkpoint_names_round_trip() {
        let v = OwlVersion::V2;
        let key = "owlv2.vision_model.pre_layernorm.weight";
        let path = module_path(v, key).unwrap();
        assert_eq!(path, "owl.vision_model.pre_layrnorm.weight");
        assert_eq!(checkpoint_name(v, &path), key);
        assert_eq!(
            module_path(v, "box_head.dense0.weight").unwrap(),
            "box_head.dense0.weight"
        );
        assert_eq!(module_path(v, "owlv2.logit_scale"), None);
        assert_eq!(
            module_path(v, "owlv2.text_model.embeddings.position_ids"),
            None
        );
        // The other generation's keys stay unexpected.
        assert_eq!(
            module_path(v, "owlvit.text_model.final_layer_norm.weight").unwrap(),
            "owlvit.text_model.final_layer_norm.weight"
        );
    }

    #[test]
    fn post_processing_scales_v2_by_the_long_side_and_v1_per_axis() {
        // Two patches, two queries; patch 1 scores above 0.5 for query 1.
        let logits = [-3.0, -2.0, 0.5, 2.0];
        let boxes = [0.5, 0.5, 0.2, 0.2, 0.5, 0.25, 0.5, 0.5];
        let v2 = post_process_object_detection(&logits, &boxes, 2, 0.5, OwlVersion::V2, (50, 100));
        assert_eq!(v2.len(), 1);
        assert_eq!((v2[0].index, v2[0].label), (1, 1));
        assert!((v2[0].score - 0.880_797).abs() < 1e-5);
        assert_eq!(v2[0].box_xyxy, [25.0, 0.0, 75.0, 50.0]);
        let v1 = post_process_object_detection(&logits, &boxes, 2, 0.5, OwlVersion::V1, (50, 100));
        assert_eq!(v1[0].box_xyxy, [25.0, 0.0, 75.0, 25.0]);
        assert_eq!(
            clip_box([-3.0, 2.0, 120.0, 60.0], 100.0, 50.0),
            [0.0, 2.0, 100.0, 50.0]
        );
    }
}
