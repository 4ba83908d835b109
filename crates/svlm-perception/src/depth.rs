//! Loading a Depth Anything (V2) folder and predicting depth maps for photos.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use svlm_geometry::DepthMap;
use svlm_model::WeightDType;
use svlm_model::io::{CheckpointTensor, read_checkpoint_dir};
use svlm_processor::Rgb8;

use crate::config::{DepthAnythingConfig, DepthKind};
use crate::model::DepthAnythingModel;
use crate::preprocess::{DptImageProcessor, PixelValues, resize_depth};

/// The module path of a checkpoint key. The hub's Depth-Anything-V2 folders use the original DINOv2 names
/// (`attention.attention.query`, `attention.output.dense`), which are this crate's paths; transformers 5's
/// in-memory names (`attention.q_proj`, `attention.o_proj`) are mapped onto them.
pub fn canonical_name(key: &str) -> String {
    let mut k = key.to_string();
    for (from, to) in [
        (".attention.q_proj.", ".attention.attention.query."),
        (".attention.k_proj.", ".attention.attention.key."),
        (".attention.v_proj.", ".attention.attention.value."),
        (".attention.o_proj.", ".attention.output.dense."),
    ] {
        k = k.replace(from, to);
    }
    k
}

/// The parameters a model expects: module path -> shape.
pub fn expected_shapes(model: &DepthAnythingModel) -> BTreeMap<String, Vec<usize>> {
    svlm_model::io::expected_shapes(model)
}

/// Loads checkpoint tensors into `model`, failing with every missing, unexpected and wrong-shaped tensor
/// listed unless names and shapes match exactly. `source` names the checkpoint in messages.
pub fn apply_checkpoint(
    model: &mut DepthAnythingModel,
    tensors: &BTreeMap<String, CheckpointTensor>,
    dtype: WeightDType,
    source: &str,
) -> Result<()> {
    svlm_model::io::apply_named_checkpoint(
        model,
        tensors,
        dtype,
        source,
        "Depth Anything model",
        |key| Some(canonical_name(key)),
        str::to_string,
    )
}

/// A Depth Anything model with its image processor, ready to predict.
pub struct DepthAnything {
    pub model: DepthAnythingModel,
    pub config: DepthAnythingConfig,
    pub processor: DptImageProcessor,
    pub device: Device,
    /// The folder it was loaded from.
    pub dir: PathBuf,
}

impl DepthAnything {
    /// Loads an HF folder: `config.json`, `model.safetensors` (or a sharded index) and
    /// `preprocessor_config.json`. Weights are cast to the device's float precision.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = DepthAnythingConfig::from_dir(dir)?;
        let processor = DptImageProcessor::from_dir(dir)?;
        let mut model = DepthAnythingModel::new(&config, device)
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

    /// Loads a local folder or an HF hub id (e.g. `depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf`,
    /// downloaded into the HF cache; `HF_HUB_OFFLINE=1` uses the cache only).
    pub fn from_pretrained(spec: &str, revision: Option<&str>, device: &Device) -> Result<Self> {
        let dir = svlm_model::hub::resolve_model(spec, revision)?;
        Self::load(&dir, device)
    }

    pub fn kind(&self) -> DepthKind {
        self.config.kind()
    }

    /// Preprocesses a batch of images of the same processed size into `[B, 3, H, W]`.
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

    /// Depth at the photo's size, whatever the model's kind: metres for metric models, relative inverse depth
    /// for relative ones.
    pub fn predict_raw(&self, image: &RgbImage) -> Result<DepthMap> {
        let mut out = self.predict_batch_raw(std::slice::from_ref(image))?;
        out.pop().context("no prediction")
    }

    /// Metric depth in metres at the photo's size. Relative models are refused (their output is not metric).
    pub fn predict(&self, image: &RgbImage) -> Result<DepthMap> {
        self.require_metric()?;
        self.predict_raw(image)
    }

    /// [`Self::predict`] for several photos; photos of the same processed size share a forward pass.
    pub fn predict_batch(&self, images: &[RgbImage]) -> Result<Vec<DepthMap>> {
        self.require_metric()?;
        self.predict_batch_raw(images)
    }

    fn require_metric(&self) -> Result<()> {
        if self.kind() != DepthKind::Metric {
            bail!(
                "{} is a relative-depth model (depth_estimation_type = relative): its output is not in metres; \
                 use a Metric checkpoint (e.g. depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf) or predict_raw",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// [`Self::predict_raw`] for several photos.
    pub fn predict_batch_raw(&self, images: &[RgbImage]) -> Result<Vec<DepthMap>> {
        let mut pixels = Vec::with_capacity(images.len());
        for (i, image) in images.iter().enumerate() {
            let rgb = Rgb8::from_image(image);
            pixels.push(
                self.processor
                    .preprocess(&rgb)
                    .with_context(|| format!("preprocessing image {i}"))?,
            );
        }
        let mut groups: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, p) in pixels.iter().enumerate() {
            groups.entry((p.height, p.width)).or_default().push(i);
        }
        let mut out: Vec<Option<DepthMap>> = vec![None; images.len()];
        for indices in groups.values() {
            let batch: Vec<PixelValues> = indices.iter().map(|&i| pixels[i].clone()).collect();
            let depth = self
                .model
                .forward(self.pixel_batch(&batch)?)
                .predicted_depth;
            let sizes: Vec<(usize, usize)> = indices
                .iter()
                .map(|&i| (images[i].height() as usize, images[i].width() as usize))
                .collect();
            for (&i, map) in indices.iter().zip(resize_depth(depth, &sizes)?) {
                let [h, w] = map.dims();
                let data: Vec<f32> = map
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec()
                    .map_err(|e| anyhow::anyhow!("reading the depth map: {e:?}"))?;
                out[i] = Some(
                    DepthMap::new(w as u32, h as u32, data)
                        .map_err(|e| anyhow::anyhow!("depth map of image {i}: {e}"))?,
                );
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, d)| d.with_context(|| format!("no prediction for image {i}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformers5_names_map_to_checkpoint_names() {
        assert_eq!(
            canonical_name("backbone.encoder.layer.3.attention.q_proj.weight"),
            "backbone.encoder.layer.3.attention.attention.query.weight"
        );
        assert_eq!(
            canonical_name("backbone.encoder.layer.0.attention.o_proj.bias"),
            "backbone.encoder.layer.0.attention.output.dense.bias"
        );
        assert_eq!(
            canonical_name("neck.fusion_stage.layers.0.projection.weight"),
            "neck.fusion_stage.layers.0.projection.weight"
        );
    }
}
