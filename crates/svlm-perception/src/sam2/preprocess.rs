//! `Sam2Processor` of transformers 5 for images and boxes: `Sam2ImageProcessor` (torchvision backend) resizes to
//! the fixed `size` with torch's antialiased bilinear kernel for uint8 images (Pillow's filter, int16 weights:
//! reproduced bit for bit by [`resize_bilinear_u8`]), rescales and normalizes; boxes are scaled by
//! `size / photo size` per axis; `post_process_masks` upscales the low-resolution logits bilinearly to the photo
//! in one step (no padding to crop) and thresholds them.

use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::Deserialize;
use serde_json::Value;
use svlm_processor::Rgb8;
use svlm_processor::image_ops::to_chw_normalized;

use crate::preprocess::{PixelValues, triple};
use crate::sam::preprocess::{IMAGENET_MEAN, IMAGENET_STD};

/// PIL's `BILINEAR` code, the only `resample` the torchvision kernel here reproduces.
const PIL_BILINEAR: i64 = 2;

/// The settings of a SAM 2 `preprocessor_config.json`; absent keys take `Sam2ImageProcessor`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Sam2ImageProcessor {
    pub do_resize: bool,
    /// `(height, width)` of the model input.
    pub size: (usize, usize),
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// Binarization threshold of `post_process_masks` (`mask_threshold`).
    pub mask_threshold: f32,
}

impl Default for Sam2ImageProcessor {
    fn default() -> Self {
        Self {
            do_resize: true,
            size: (1024, 1024),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: IMAGENET_MEAN,
            image_std: IMAGENET_STD,
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
    do_center_crop: Option<bool>,
}

/// One image as the model sees it, with the photo's size for post-processing.
#[derive(Clone, Debug, PartialEq)]
pub struct Sam2Inputs {
    /// `[3, size.0, size.1]`.
    pub pixels: PixelValues,
    /// The photo's `(height, width)`.
    pub original_size: (usize, usize),
}

impl Sam2ImageProcessor {
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let j: ProcessorJson =
            serde_json::from_value(value.clone()).context("not a SAM 2 image processor config")?;
        let d = Self::default();
        let size = match &j.size {
            None => d.size,
            Some(v) => {
                let side = |key: &str| v.get(key).and_then(Value::as_u64).filter(|&s| s > 0);
                match (side("height"), side("width")) {
                    (Some(h), Some(w)) => (h as usize, w as usize),
                    _ => bail!("`size` {v} must be {{\"height\": H, \"width\": W}}, both > 0"),
                }
            }
        };
        if let Some(code) = j.resample.filter(|&c| c != PIL_BILINEAR) {
            bail!("`resample` {code} is not supported (only 2, bilinear)");
        }
        if j.do_pad == Some(true) || j.do_center_crop == Some(true) {
            bail!(
                "`do_pad` / `do_center_crop` are not supported: SAM 2 resizes to the fixed `size`"
            );
        }
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
        Ok(Self {
            do_resize: j.do_resize.unwrap_or(d.do_resize),
            size,
            do_rescale: j.do_rescale.unwrap_or(d.do_rescale),
            rescale_factor: j.rescale_factor.unwrap_or(d.rescale_factor),
            do_normalize: j.do_normalize.unwrap_or(d.do_normalize),
            image_mean,
            image_std,
            mask_threshold: d.mask_threshold,
        })
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

    pub fn preprocess(&self, image: &Rgb8) -> anyhow::Result<Sam2Inputs> {
        if image.width == 0 || image.height == 0 {
            bail!("image is empty ({}x{})", image.width, image.height);
        }
        let (h, w) = if self.do_resize {
            self.size
        } else {
            (image.height, image.width)
        };
        let resized;
        let source = if (h, w) != (image.height, image.width) {
            resized = resize_bilinear_u8(image, w, h);
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
        Ok(Sam2Inputs {
            pixels: PixelValues {
                data,
                height: h,
                width: w,
            },
            original_size: (image.height, image.width),
        })
    }

    /// A box `[x0, y0, x1, y1]` in photo pixels -> the model-input frame (`Sam2Processor._normalize_coordinates`,
    /// which scales both axes to `size["height"]`: the input is square).
    pub fn box_to_input(&self, xyxy: [f64; 4], original_size: (usize, usize)) -> [f64; 4] {
        let (oh, ow) = original_size;
        let target = self.size.0 as f64;
        let (sx, sy) = (target / ow as f64, target / oh as f64);
        [xyxy[0] * sx, xyxy[1] * sy, xyxy[2] * sx, xyxy[3] * sy]
    }

    /// `post_process_masks(binarize=False)` for the masks of one image: `[n, k, h, w]` low-resolution logits ->
    /// `[n, k, H, W]` at the photo's size.
    pub fn upscale_masks(&self, masks: Tensor<4>, original_size: (usize, usize)) -> Tensor<4> {
        interpolate(
            masks,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size([original_size.0, original_size.1]),
        )
    }
}

/// One axis of torch's antialiased bilinear resampling of uint8 images (`_compute_indices_int16_weights_aa`):
/// for each output index, the first input index and the int16 weights, and the weights' fixed-point precision.
fn int16_weights(input: usize, output: usize) -> (Vec<(usize, Vec<i32>)>, u32) {
    let scale = input as f64 / output as f64;
    let (support, inv) = if scale >= 1.0 {
        (scale, 1.0 / scale)
    } else {
        (1.0, 1.0)
    };
    let rows: Vec<(usize, Vec<f64>)> = (0..output)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            // C++ casts to int64: truncation towards zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let mut w: Vec<f64> = (xmin..xmax)
                .map(|j| {
                    let x = ((j as f64 - center + 0.5) * inv).abs();
                    if x < 1.0 { 1.0 - x } else { 0.0 }
                })
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect();
    let w_max = rows
        .iter()
        .flat_map(|(_, w)| w.iter().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    // The largest precision below 22 bits whose doubled largest weight still fits in an int16.
    let mut precision = 0u32;
    while precision < 22 && ((0.5 + w_max * f64::from(1u32 << (precision + 1))) as i64) < (1 << 15)
    {
        precision += 1;
    }
    let unit = f64::from(1u32 << precision);
    let rows = rows
        .into_iter()
        .map(|(xmin, w)| (xmin, w.iter().map(|v| (0.5 + v * unit) as i32).collect()))
        .collect();
    (rows, precision)
}

/// Resamples one axis of an RGB image (the width where `horizontal`, else the height) to
/// `out_width x out_height`, the other axis unchanged: `(1 << (precision - 1) + sum(pixel * weight)) >> precision`,
/// clamped to 0..=255.
fn resample_axis(src: &Rgb8, out_width: usize, out_height: usize, horizontal: bool) -> Rgb8 {
    let (input, output) = if horizontal {
        (src.width, out_width)
    } else {
        (src.height, out_height)
    };
    let (rows, precision) = int16_weights(input, output);
    let mut data = vec![0u8; out_width * out_height * 3];
    let round = 1i32 << (precision.max(1) - 1);
    for y in 0..out_height {
        for x in 0..out_width {
            let (i, other) = if horizontal { (x, y) } else { (y, x) };
            let (start, weights) = &rows[i];
            let mut acc = [round; 3];
            for (t, &k) in weights.iter().enumerate() {
                let (sx, sy) = if horizontal {
                    (start + t, other)
                } else {
                    (other, start + t)
                };
                let p = (sy * src.width + sx) * 3;
                for (a, &v) in acc.iter_mut().zip(&src.data[p..p + 3]) {
                    *a += i32::from(v) * k;
                }
            }
            let o = (y * out_width + x) * 3;
            for (d, a) in data[o..o + 3].iter_mut().zip(acc) {
                *d = (a >> precision).clamp(0, 255) as u8;
            }
        }
    }
    Rgb8 {
        data,
        width: out_width,
        height: out_height,
    }
}

/// torch's `interpolate(mode="bilinear", antialias=True)` of a uint8 image, as torchvision's `resize` runs it:
/// horizontal pass (if the width changes) into uint8, then vertical.
pub fn resize_bilinear_u8(image: &Rgb8, width: usize, height: usize) -> Rgb8 {
    let horizontal = if width != image.width {
        resample_axis(image, width, image.height, true)
    } else {
        image.clone()
    };
    if height != image.height {
        resample_axis(&horizontal, width, height, false)
    } else {
        horizontal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_the_fixed_point_unit() {
        for (i, o) in [(96, 128), (371, 128), (250, 1024), (64, 64), (5, 2)] {
            let (rows, precision) = int16_weights(i, o);
            assert!(precision > 0 && precision <= 22);
            for (start, w) in &rows {
                assert!(start + w.len() <= i);
                let sum: i32 = w.iter().sum();
                let unit = 1i32 << precision;
                assert!(
                    (sum - unit).abs() <= w.len() as i32,
                    "{i}->{o}: {sum} vs {unit}"
                );
                assert!(w.iter().all(|&k| k < 1 << 15));
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let image = Rgb8 {
            data: [10u8, 128, 250].repeat(7 * 5),
            width: 7,
            height: 5,
        };
        for (w, h) in [(3, 2), (16, 9), (7, 11)] {
            let out = resize_bilinear_u8(&image, w, h);
            assert_eq!((out.width, out.height), (w, h));
            assert!(out.data.chunks_exact(3).all(|p| p == [10, 128, 250]));
        }
    }

    #[test]
    fn configs_name_what_is_not_supported() {
        let err = Sam2ImageProcessor::from_json(&serde_json::json!({"resample": 3})).unwrap_err();
        assert!(err.to_string().contains("resample"), "{err}");
        let err =
            Sam2ImageProcessor::from_json(&serde_json::json!({"size": {"longest_edge": 1024}}))
                .unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
        let err = Sam2ImageProcessor::from_json(&serde_json::json!({"do_pad": true})).unwrap_err();
        assert!(err.to_string().contains("do_pad"), "{err}");
        assert_eq!(
            Sam2ImageProcessor::from_json(&serde_json::json!({})).unwrap(),
            Sam2ImageProcessor::default()
        );
    }
}
