//! One entry point for the box-prompted segmenters: a model folder's `config.json` `model_type` picks SAM
//! (`sam`, [`Sam`]) or SAM 2 (`sam2`, [`Sam2`]); both give one [`BoxMask`] per box.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use image::RgbImage;

use crate::sam::{BoxMask, Sam};
use crate::sam2::Sam2;

/// A loaded SAM or SAM 2 model (boxed: the modules' records are kilobytes).
pub enum BoxSegmenter {
    Sam(Box<Sam>),
    Sam2(Box<Sam2>),
}

impl From<Sam> for BoxSegmenter {
    fn from(model: Sam) -> Self {
        Self::Sam(Box::new(model))
    }
}

impl From<Sam2> for BoxSegmenter {
    fn from(model: Sam2) -> Self {
        Self::Sam2(Box::new(model))
    }
}

impl BoxSegmenter {
    /// Loads an HF folder whose `config.json` says `model_type` `sam` or `sam2`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        match value.get("model_type").and_then(serde_json::Value::as_str) {
            Some("sam") => Ok(Sam::load(dir, device)?.into()),
            Some("sam2") => Ok(Sam2::load(dir, device)?.into()),
            other => bail!(
                "{}: model_type {other:?} is not a box-prompted segmenter (expected `sam` or `sam2`)",
                path.display()
            ),
        }
    }

    /// Loads a local folder or an HF hub id (`facebook/sam-vit-base`, a SAM 2 repository in the HF layout).
    pub fn from_pretrained(spec: &str, revision: Option<&str>, device: &Device) -> Result<Self> {
        let dir = svlm_model::hub::resolve_model(spec, revision)?;
        Self::load(&dir, device)
    }

    /// `SAM` or `SAM 2`.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Sam(_) => "SAM",
            Self::Sam2(_) => "SAM 2",
        }
    }

    /// The folder the model was loaded from.
    pub fn dir(&self) -> &Path {
        match self {
            Self::Sam(m) => &m.dir,
            Self::Sam2(m) => &m.dir,
        }
    }

    /// The logit threshold of the binary masks.
    pub fn mask_threshold(&self) -> f32 {
        match self {
            Self::Sam(m) => m.processor.mask_threshold,
            Self::Sam2(m) => m.processor.mask_threshold,
        }
    }

    /// One mask per box for several photos: `boxes[i]` are `[x0, y0, x1, y1]` in pixels of `images[i]`.
    pub fn segment_batch(
        &self,
        images: &[RgbImage],
        boxes: &[Vec<[f64; 4]>],
    ) -> Result<Vec<Vec<BoxMask>>> {
        match self {
            Self::Sam(m) => m.segment_batch(images, boxes),
            Self::Sam2(m) => m.segment_batch(images, boxes),
        }
    }

    /// One mask per box of one photo.
    pub fn segment(&self, image: &RgbImage, boxes: &[[f64; 4]]) -> Result<Vec<BoxMask>> {
        match self {
            Self::Sam(m) => m.segment(image, boxes),
            Self::Sam2(m) => m.segment(image, boxes),
        }
    }
}
