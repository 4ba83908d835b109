//! `SamProcessor` of transformers 5 with the PIL backend (`SamImageProcessorPil`): the longest side resized to
//! `size.longest_edge` with Pillow (reproduced bit for bit by `svlm_processor::resize`), rescale, normalize, zero
//! padding at the bottom/right to `pad_size`; boxes scaled into the resized frame (`_normalize_coordinates`);
//! and `post_process_masks`: low-resolution mask logits upscaled bilinearly to the padded size, cropped to the
//! resized image, upscaled to the photo and thresholded.

use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::Deserialize;
use serde_json::Value;
use svlm_processor::image_ops::to_chw_normalized;
use svlm_processor::{Resample, Rgb8};

use crate::preprocess::{PixelValues, triple};

/// ImageNet's `IMAGENET_DEFAULT_MEAN` / `IMAGENET_DEFAULT_STD`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The settings of a SAM `preprocessor_config.json`; absent keys take `SamImageProcessorPil`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SamImageProcessor {
    pub do_resize: bool,
    pub longest_edge: usize,
    pub resample: Resample,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub do_pad: bool,
    /// `(height, width)` the resized image is padded to (the model input).
    pub pad_size: (usize, usize),
    /// Binarization threshold of `post_process_masks` (`mask_threshold`).
    pub mask_threshold: f32,
}

impl Default for SamImageProcessor {
    fn default() -> Self {
        Self {
            do_resize: true,
            longest_edge: 1024,
            resample: Resample::Bilinear,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: IMAGENET_MEAN,
            image_std: IMAGENET_STD,
            do_pad: true,
            pad_size: (1024, 1024),
            mask_threshold: 0.0,
        }
    }
}

#[derive(Deserialize)]
struct ProcessorJson {
    do_resize: Option<bool>,
    size: Option<Value>,
    resample: Option<i64>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<Value>,
    image_std: Option<Value>,
    do_pad: Option<bool>,
    pad_size: Option<Value>,
}

/// One image as the model sees it, with the sizes post-processing needs.
#[derive(Clone, Debug, PartialEq)]
pub struct SamInputs {
    /// `[3, pad_h, pad_w]`.
    pub pixels: PixelValues,
    /// The photo's `(height, width)`.
    pub original_size: (usize, usize),
    /// `(height, width)` after resizing, before padding.
    pub reshaped_size: (usize, usize),
}

impl SamImageProcessor {
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let j: ProcessorJson =
            serde_json::from_value(value.clone()).context("not a SAM image processor config")?;
        let d = Self::default();
        let longest_edge = match &j.size {
            None => d.longest_edge,
            Some(v) => match v.get("longest_edge").and_then(Value::as_u64) {
                Some(e) if e > 0 => e as usize,
                _ => bail!("`size` {v} must be {{\"longest_edge\": N}} with N > 0"),
            },
        };
        let pad_size = match &j.pad_size {
            None => d.pad_size,
            Some(v) => {
                let side = |key: &str| v.get(key).and_then(Value::as_u64).filter(|&s| s > 0);
                match (side("height"), side("width")) {
                    (Some(h), Some(w)) => (h as usize, w as usize),
                    _ => bail!("`pad_size` {v} must be {{\"height\": H, \"width\": W}}, both > 0"),
                }
            }
        };
        let resample = match j.resample {
            None => d.resample,
            Some(code) => Resample::from_pil_code(code)
                .with_context(|| format!("`resample` {code} is not a PIL filter code (0-5)"))?,
        };
        let image_mean = match &j.image_mean {
            None => d.image_mean,
            Some(v) => triple("image_mean", v)?,
        };
        let image_std = match &j.image_std {
            None => d.image_std,
            Some(v) => triple("image_std", v)?,
        };
        if image_std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            bail!("`image_std` {image_std:?} must be finite and non-zero");
        }
        let processor = Self {
            do_resize: j.do_resize.unwrap_or(d.do_resize),
            longest_edge,
            resample,
            do_rescale: j.do_rescale.unwrap_or(d.do_rescale),
            rescale_factor: j.rescale_factor.unwrap_or(d.rescale_factor),
            do_normalize: j.do_normalize.unwrap_or(d.do_normalize),
            image_mean,
            image_std,
            do_pad: j.do_pad.unwrap_or(d.do_pad),
            pad_size,
            mask_threshold: d.mask_threshold,
        };
        if processor.do_pad
            && processor.do_resize
            && (processor.longest_edge > pad_size.0 || processor.longest_edge > pad_size.1)
        {
            bail!(
                "longest_edge {} exceeds pad_size {}x{}: resized images would not fit",
                processor.longest_edge,
                pad_size.1,
                pad_size.0
            );
        }
        Ok(processor)
    }

    /// Reads `preprocessor_config.json` of a model folder.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("preprocessor_config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_json(&value).with_context(|| format!("in {}", path.display()))
    }

    /// `(height, width)` after resizing (`_get_preprocess_shape`: the longest side to `longest_edge`, the other
    /// scaled alike and rounded half up).
    pub fn resized_size(&self, height: usize, width: usize) -> (usize, usize) {
        if !self.do_resize {
            return (height, width);
        }
        let scale = self.longest_edge as f64 / height.max(width) as f64;
        let round = |v: usize| (v as f64 * scale + 0.5) as usize;
        (round(height), round(width))
    }

    pub fn preprocess(&self, image: &Rgb8) -> anyhow::Result<SamInputs> {
        if image.width == 0 || image.height == 0 {
            bail!("image is empty ({}x{})", image.width, image.height);
        }
        let (h, w) = self.resized_size(image.height, image.width);
        if h == 0 || w == 0 {
            bail!(
                "a {}x{} image resizes to {w}x{h}",
                image.width,
                image.height
            );
        }
        let resized;
        let source = if (h, w) != (image.height, image.width) {
            resized = svlm_processor::resize(image, w, h, self.resample)
                .map_err(|e| anyhow::anyhow!("resizing: {e}"))?;
            &resized
        } else {
            image
        };
        let data = to_chw_normalized(
            source,
            self.do_rescale,
            self.rescale_factor,
            self.do_normalize,
            self.image_mean,
            self.image_std,
        );
        let pixels = PixelValues {
            data,
            height: h,
            width: w,
        };
        let pixels = if self.do_pad {
            pad_bottom_right(&pixels, self.pad_size)?
        } else {
            pixels
        };
        Ok(SamInputs {
            pixels,
            original_size: (image.height, image.width),
            reshaped_size: (h, w),
        })
    }

    /// A box `[x0, y0, x1, y1]` in photo pixels -> the resized frame the prompt encoder expects.
    pub fn box_to_input(&self, xyxy: [f64; 4], original_size: (usize, usize)) -> [f64; 4] {
        let (oh, ow) = original_size;
        let (h, w) = self.resized_size(oh, ow);
        let (sx, sy) = (w as f64 / ow as f64, h as f64 / oh as f64);
        [xyxy[0] * sx, xyxy[1] * sy, xyxy[2] * sx, xyxy[3] * sy]
    }

    /// `post_process_masks(binarize=False)` for the masks of one image: `[n, k, h, w]` low-resolution logits ->
    /// `[n, k, H, W]` at the photo's size.
    pub fn upscale_masks(&self, masks: Tensor<4>, inputs: &SamInputs) -> Tensor<4> {
        let [n, k, _, _] = masks.dims();
        let padded = if self.do_pad {
            self.pad_size
        } else {
            inputs.reshaped_size
        };
        let bilinear = |x: Tensor<4>, size: (usize, usize)| {
            interpolate(
                x,
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([size.0, size.1]),
            )
        };
        let (rh, rw) = inputs.reshaped_size;
        let x = bilinear(masks, padded).slice([0..n, 0..k, 0..rh, 0..rw]);
        bilinear(x, inputs.original_size)
    }
}

/// Zeros after the image to `(height, width)`, as the PIL backend's `pad` (constant 0 after normalization).
fn pad_bottom_right(pixels: &PixelValues, size: (usize, usize)) -> anyhow::Result<PixelValues> {
    let (h, w) = size;
    if pixels.height > h || pixels.width > w {
        bail!(
            "a {}x{} image does not fit pad_size {w}x{h}",
            pixels.width,
            pixels.height
        );
    }
    let mut data = vec![0f32; 3 * h * w];
    for c in 0..3 {
        for y in 0..pixels.height {
            let src = (c * pixels.height + y) * pixels.width;
            let dst = (c * h + y) * w;
            data[dst..dst + pixels.width].copy_from_slice(&pixels.data[src..src + pixels.width]);
        }
    }
    Ok(PixelValues {
        data,
        height: h,
        width: w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_rounds_half_up_like_the_processor() {
        let p = SamImageProcessor::default();
        assert_eq!(p.resized_size(480, 640), (768, 1024));
        // 250 * 1024 / 371 = 690.02 -> 690; 64 * 80 / 96 = 53.33 -> 53.
        assert_eq!(p.resized_size(250, 371), (690, 1024));
        let small = SamImageProcessor {
            longest_edge: 80,
            ..SamImageProcessor::default()
        };
        assert_eq!(small.resized_size(64, 96), (53, 80));
        // 3 * 80 / 16 = 15 exactly; 5 * 80 / 32 = 12.5 -> 13 (half up, not to even).
        assert_eq!(small.resized_size(5, 32), (13, 80));
    }

    #[test]
    fn padding_goes_after_the_image() {
        let px = PixelValues {
            data: (0..3 * 2 * 2).map(|v| v as f32 + 1.0).collect(),
            height: 2,
            width: 2,
        };
        let out = pad_bottom_right(&px, (3, 3)).unwrap();
        assert_eq!(
            &out.data[0..9],
            &[1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert!(pad_bottom_right(&px, (1, 3)).is_err());
    }

    #[test]
    fn bad_configs_name_the_key() {
        let err =
            SamImageProcessor::from_json(&serde_json::json!({"size": {"height": 5}})).unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
        let err = SamImageProcessor::from_json(&serde_json::json!({
            "size": {"longest_edge": 2048}, "pad_size": {"height": 1024, "width": 1024}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("pad_size"), "{err}");
        assert_eq!(
            SamImageProcessor::from_json(&serde_json::json!({})).unwrap(),
            SamImageProcessor::default()
        );
    }
}
