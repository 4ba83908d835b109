//! Depth Pro (`DepthProForDepthEstimation`, HF layout) as a metric depth model that also estimates the camera:
//! its FoV head predicts the horizontal field of view, which gives the focal length in pixels and with it the
//! scale of the depth (`post_process_depth_estimation`). Checked against transformers 5 on a tiny random-weight
//! model (`tests/depth_pro_parity.rs`, fixtures by `scripts/make_depth_pro_fixtures.py`).

pub mod config;
pub mod model;
pub mod preprocess;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor};
use image::RgbImage;
use svlm_geometry::DepthMap;
use svlm_model::WeightDType;
use svlm_model::io::{CheckpointTensor, read_checkpoint_dir};
use svlm_processor::Rgb8;

pub use config::DepthProConfig;
pub use model::{DepthProForDepthEstimation, DepthProOutput, checkpoint_name, module_path};
pub use preprocess::{DepthProImageProcessor, TorchInterpolation};

/// Loads checkpoint tensors into `model`, failing with every missing, unexpected and wrong-shaped tensor listed.
/// Without the FoV head, `fov_model.*` tensors are skipped, as transformers ignores them.
pub fn apply_checkpoint(
    model: &mut DepthProForDepthEstimation,
    tensors: &BTreeMap<String, CheckpointTensor>,
    dtype: WeightDType,
    source: &str,
) -> Result<()> {
    let use_fov = model.fov_model.is_some();
    svlm_model::io::apply_named_checkpoint(
        model,
        tensors,
        dtype,
        source,
        "Depth Pro model",
        |key| (use_fov || !key.starts_with("fov_model.")).then(|| module_path(key)),
        checkpoint_name,
    )
}

/// Metric depth of one photo with the camera Depth Pro estimated for it.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthProPrediction {
    /// Metres, at the photo's size.
    pub depth: DepthMap,
    /// The predicted horizontal field of view in degrees (models with the FoV head).
    pub field_of_view_deg: Option<f64>,
    /// The focal length in pixels of the photo that the field of view gives and the depth was scaled with.
    /// Without the FoV head there is none and the depth is transformers' unscaled `1 / inverse depth`.
    pub focal_length_px: Option<f64>,
}

impl DepthProPrediction {
    /// The focal length in pixels the depth corresponds to (it scales with it): the predicted one, or without the
    /// FoV head the photo's width (transformers' unscaled `1 / inverse depth` is the depth for `f = width`).
    pub fn depth_focal_px(&self, width: u32) -> Option<f64> {
        Some(self.focal_length_px.unwrap_or(f64::from(width)))
    }
}

/// A Depth Pro model with its image processor, ready to predict.
pub struct DepthPro {
    pub model: DepthProForDepthEstimation,
    pub config: DepthProConfig,
    pub processor: DepthProImageProcessor,
    pub device: Device,
    /// The folder it was loaded from.
    pub dir: PathBuf,
}

impl DepthPro {
    /// Loads an HF folder: `config.json`, `model.safetensors` (or a sharded index) and
    /// `preprocessor_config.json`. Weights are cast to the device's float precision.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = DepthProConfig::from_dir(dir)?;
        let processor = DepthProImageProcessor::from_dir(dir)?;
        let mut model = DepthProForDepthEstimation::new(&config, device)
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

    /// Loads a local folder or an HF hub id (e.g. `apple/DepthPro-hf`, downloaded into the HF cache;
    /// `HF_HUB_OFFLINE=1` uses the cache only).
    pub fn from_pretrained(spec: &str, revision: Option<&str>, device: &Device) -> Result<Self> {
        let dir = svlm_model::hub::resolve_model(spec, revision)?;
        Self::load(&dir, device)
    }

    /// `pixel_values` `[1, 3, H, W]` of a photo.
    pub fn preprocess(&self, image: &RgbImage) -> Result<Tensor<4>> {
        self.processor
            .preprocess(&Rgb8::from_image(image), &self.device)
    }

    /// Metric depth at the photo's size, with the field of view and focal length.
    pub fn predict(&self, image: &RgbImage) -> Result<DepthProPrediction> {
        let mut out = self.predict_batch(std::slice::from_ref(image))?;
        out.pop().context("no prediction")
    }

    /// [`Self::predict`] for several photos; photos of the same processed size (all, when the processor resizes)
    /// share a forward pass.
    pub fn predict_batch(&self, images: &[RgbImage]) -> Result<Vec<DepthProPrediction>> {
        let mut groups: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, image) in images.iter().enumerate() {
            let size = self
                .processor
                .output_size(image.height() as usize, image.width() as usize);
            groups.entry(size).or_default().push(i);
        }
        let mut out: Vec<Option<DepthProPrediction>> = vec![None; images.len()];
        for indices in groups.values() {
            let mut pixels = Vec::with_capacity(indices.len());
            for &i in indices {
                pixels.push(
                    self.preprocess(&images[i])
                        .with_context(|| format!("preprocessing image {i}"))?,
                );
            }
            let output = self.model.forward(Tensor::cat(pixels, 0))?;
            let fovs = match output.field_of_view {
                Some(fov) => Some(floats(fov.into_data(), "the field of view")?),
                None => None,
            };
            let [_, h, w] = output.predicted_depth.dims();
            for (k, &i) in indices.iter().enumerate() {
                let inverse = output
                    .predicted_depth
                    .clone()
                    .slice([k..k + 1, 0..h, 0..w])
                    .reshape([h, w]);
                let fov = fovs.as_ref().and_then(|f| f.get(k).copied());
                let size = (images[i].height() as usize, images[i].width() as usize);
                out[i] = Some(
                    self.prediction(inverse, fov, size)
                        .with_context(|| format!("post-processing image {i}"))?,
                );
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, d)| d.with_context(|| format!("no prediction for image {i}")))
            .collect()
    }

    fn prediction(
        &self,
        inverse_depth: Tensor<2>,
        fov: Option<f32>,
        (height, width): (usize, usize),
    ) -> Result<DepthProPrediction> {
        let (depth, focal) = self
            .processor
            .post_process(inverse_depth, fov, (height, width))?;
        let data = floats(depth.into_data(), "the depth map")?;
        let depth = DepthMap::new(width as u32, height as u32, data)
            .map_err(|e| anyhow::anyhow!("depth map: {e}"))?;
        Ok(DepthProPrediction {
            depth,
            field_of_view_deg: fov.map(f64::from),
            focal_length_px: focal,
        })
    }
}

fn floats(data: burn::tensor::TensorData, what: &str) -> Result<Vec<f32>> {
    let v: Vec<f32> = data
        .convert::<f32>()
        .try_into_vec()
        .map_err(|e| anyhow::anyhow!("reading {what}: {e:?}"))?;
    if v.iter().any(|x| !x.is_finite()) {
        bail!("{what} has non-finite values");
    }
    Ok(v)
}
