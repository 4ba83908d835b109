//! One entry point for the metric depth models: an HF folder (or hub id) is loaded as Depth Anything or Depth Pro
//! according to its `config.json`'s `model_type`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use image::RgbImage;
use svlm_geometry::DepthMap;

use crate::depth::DepthAnything;
use crate::depth_pro::DepthPro;
use crate::intrinsics::IntrinsicsOptions;
use crate::photo::PhotoDepth;

/// A depth map with, from models that estimate the camera (Depth Pro), the horizontal field of view they
/// predicted and the focal length in pixels the depth corresponds to (the depth scales with it).
#[derive(Clone, Debug, PartialEq)]
pub struct EstimatedDepth {
    /// Metres, at the photo's size.
    pub depth: DepthMap,
    pub predicted_hfov_deg: Option<f64>,
    pub depth_focal_px: Option<f64>,
}

impl From<DepthMap> for EstimatedDepth {
    fn from(depth: DepthMap) -> Self {
        Self {
            depth,
            predicted_hfov_deg: None,
            depth_focal_px: None,
        }
    }
}

/// A metric depth model of either family (boxed: the two differ much in size).
pub enum DepthModel {
    DepthAnything(Box<DepthAnything>),
    DepthPro(Box<DepthPro>),
}

impl From<DepthAnything> for DepthModel {
    fn from(model: DepthAnything) -> Self {
        Self::DepthAnything(Box::new(model))
    }
}

impl From<DepthPro> for DepthModel {
    fn from(model: DepthPro) -> Self {
        Self::DepthPro(Box::new(model))
    }
}

/// `model_type` of a folder's `config.json`.
pub fn model_type(dir: &Path) -> Result<String> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match value.get("model_type").and_then(|v| v.as_str()) {
        Some(t) => Ok(t.to_string()),
        None => bail!("{} has no `model_type`", path.display()),
    }
}

impl DepthModel {
    /// Loads an HF folder: `model_type` `depth_anything` or `depth_pro`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        match model_type(dir)?.as_str() {
            "depth_anything" => Ok(DepthAnything::load(dir, device)?.into()),
            "depth_pro" => Ok(DepthPro::load(dir, device)?.into()),
            other => bail!(
                "{}: model_type `{other}` is not a depth model (depth_anything or depth_pro)",
                dir.join("config.json").display()
            ),
        }
    }

    /// Loads a local folder or an HF hub id (downloaded into the HF cache; `HF_HUB_OFFLINE=1` uses the cache only).
    pub fn from_pretrained(spec: &str, revision: Option<&str>, device: &Device) -> Result<Self> {
        let dir = svlm_model::hub::resolve_model(spec, revision)?;
        Self::load(&dir, device)
    }

    /// The folder it was loaded from.
    pub fn dir(&self) -> &Path {
        match self {
            Self::DepthAnything(m) => &m.dir,
            Self::DepthPro(m) => &m.dir,
        }
    }

    /// What produced the depth, recorded per image.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Self::DepthAnything(m) => serde_json::json!({
                "model": m.dir.display().to_string(),
                "depth_estimation_type": m.config.depth_estimation_type,
                "max_depth": m.config.max_depth,
            }),
            Self::DepthPro(m) => serde_json::json!({
                "model": m.dir.display().to_string(),
                "model_type": "depth_pro",
                "depth_estimation_type": "metric",
                "use_fov_model": m.config.use_fov_model,
            }),
        }
    }

    /// Metric depth of several photos (one forward pass per processed size); Depth Pro adds its camera estimate.
    /// Relative Depth Anything models are refused.
    pub fn predict_batch(&self, images: &[RgbImage]) -> Result<Vec<EstimatedDepth>> {
        match self {
            Self::DepthAnything(m) => Ok(m
                .predict_batch(images)?
                .into_iter()
                .map(EstimatedDepth::from)
                .collect()),
            Self::DepthPro(m) => Ok(m
                .predict_batch(images)?
                .into_iter()
                .map(|p| EstimatedDepth {
                    depth_focal_px: p.depth_focal_px(p.depth.width),
                    predicted_hfov_deg: p.field_of_view_deg,
                    depth: p.depth,
                })
                .collect()),
        }
    }

    /// [`Self::predict_batch`] for one photo.
    pub fn predict(&self, image: &RgbImage) -> Result<EstimatedDepth> {
        let mut out = self.predict_batch(std::slice::from_ref(image))?;
        out.pop().context("no prediction")
    }

    /// A photo file to metric depth, intrinsics and record (see each model's `lift_photo`).
    pub fn lift_photo(&self, path: &Path, options: &IntrinsicsOptions) -> Result<PhotoDepth> {
        match self {
            Self::DepthAnything(m) => m.lift_photo(path, options),
            Self::DepthPro(m) => m.lift_photo(path, options),
        }
    }
}
