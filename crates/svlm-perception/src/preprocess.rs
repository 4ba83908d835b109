//! `DPTImageProcessor` as the Depth-Anything-V2 checkpoints configure it (PIL backend of transformers 5,
//! `DPTImageProcessorPil`): resize keeping the aspect ratio to a multiple of `ensure_multiple_of` with Pillow's
//! resampling (reproduced bit for bit by `svlm_processor::resize`), rescale, normalize, optional centre pad;
//! and `post_process_depth_estimation`'s bicubic resize of the depth back to the photo.

use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::Deserialize;
use serde_json::Value;
use svlm_processor::image_ops::to_chw_normalized;
use svlm_processor::{Resample, Rgb8};

/// The settings of `preprocessor_config.json`; absent keys take `DPTImageProcessorPil`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct DptImageProcessor {
    pub do_resize: bool,
    /// Target `(height, width)` before aspect-ratio keeping and rounding.
    pub size: (usize, usize),
    pub resample: Resample,
    pub keep_aspect_ratio: bool,
    pub ensure_multiple_of: usize,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub do_pad: bool,
    pub size_divisor: Option<usize>,
}

impl Default for DptImageProcessor {
    fn default() -> Self {
        Self {
            do_resize: true,
            size: (384, 384),
            resample: Resample::Bicubic,
            keep_aspect_ratio: false,
            ensure_multiple_of: 1,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_pad: false,
            size_divisor: None,
        }
    }
}

#[derive(Deserialize)]
struct SizeJson {
    height: Option<usize>,
    width: Option<usize>,
}

#[derive(Deserialize)]
struct ProcessorJson {
    do_resize: Option<bool>,
    size: Option<Value>,
    resample: Option<i64>,
    keep_aspect_ratio: Option<bool>,
    ensure_multiple_of: Option<usize>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<Value>,
    image_std: Option<Value>,
    do_pad: Option<bool>,
    size_divisor: Option<usize>,
}

/// `image_mean` / `image_std`: one number for every channel or a list of three.
pub(crate) fn triple(key: &str, v: &Value) -> anyhow::Result<[f32; 3]> {
    if let Some(x) = v.as_f64() {
        return Ok([x as f32; 3]);
    }
    let list: Vec<f64> = serde_json::from_value(v.clone())
        .with_context(|| format!("`{key}` must be a number or a list of 3 numbers"))?;
    match list.as_slice() {
        [a, b, c] => Ok([*a as f32, *b as f32, *c as f32]),
        _ => bail!("`{key}` has {} values, expected 3", list.len()),
    }
}

/// Python's `round`: halves to even.
fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

impl DptImageProcessor {
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let j: ProcessorJson =
            serde_json::from_value(value.clone()).context("not a DPT image processor config")?;
        let d = Self::default();
        let size = match j.size {
            None => d.size,
            Some(v) => {
                let s: SizeJson = serde_json::from_value(v.clone()).with_context(|| {
                    format!("`size` {v} must be {{\"height\": H, \"width\": W}}")
                })?;
                match (s.height, s.width) {
                    (Some(h), Some(w)) if h > 0 && w > 0 => (h, w),
                    _ => bail!("`size` {v} needs positive `height` and `width`"),
                }
            }
        };
        let resample = match j.resample {
            None => d.resample,
            Some(code) => Resample::from_pil_code(code)
                .with_context(|| format!("`resample` {code} is not a PIL filter code (0-5)"))?,
        };
        let ensure_multiple_of = j.ensure_multiple_of.unwrap_or(d.ensure_multiple_of);
        if ensure_multiple_of == 0 {
            bail!("`ensure_multiple_of` must be >= 1");
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
        if j.size_divisor == Some(0) {
            bail!("`size_divisor` must be >= 1");
        }
        Ok(Self {
            do_resize: j.do_resize.unwrap_or(d.do_resize),
            size,
            resample,
            keep_aspect_ratio: j.keep_aspect_ratio.unwrap_or(d.keep_aspect_ratio),
            ensure_multiple_of,
            do_rescale: j.do_rescale.unwrap_or(d.do_rescale),
            rescale_factor: j.rescale_factor.unwrap_or(d.rescale_factor),
            do_normalize: j.do_normalize.unwrap_or(d.do_normalize),
            image_mean,
            image_std,
            do_pad: j.do_pad.unwrap_or(d.do_pad),
            size_divisor: j.size_divisor,
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

    /// The resized `(height, width)` of a `height x width` image (`get_resize_output_image_size`).
    pub fn resize_output_size(&self, height: usize, width: usize) -> (usize, usize) {
        if !self.do_resize {
            return (height, width);
        }
        let (out_h, out_w) = self.size;
        let mut scale_h = out_h as f64 / height as f64;
        let mut scale_w = out_w as f64 / width as f64;
        if self.keep_aspect_ratio {
            // Scale as little as possible.
            if (1.0 - scale_w).abs() < (1.0 - scale_h).abs() {
                scale_h = scale_w;
            } else {
                scale_w = scale_h;
            }
        }
        let m = self.ensure_multiple_of as f64;
        let constrain = |v: f64| (round_half_even(v / m) * m) as usize;
        (
            constrain(scale_h * height as f64),
            constrain(scale_w * width as f64),
        )
    }

    /// One image -> `pixel_values` `[3, H, W]` (channels first) with its `(H, W)`.
    pub fn preprocess(&self, image: &Rgb8) -> anyhow::Result<PixelValues> {
        if image.width == 0 || image.height == 0 {
            bail!("image is empty ({}x{})", image.width, image.height);
        }
        let (h, w) = self.resize_output_size(image.height, image.width);
        if h == 0 || w == 0 {
            bail!(
                "a {}x{} image resizes to {w}x{h}: too small for ensure_multiple_of {}",
                image.width,
                image.height,
                self.ensure_multiple_of
            );
        }
        let resized;
        let image = if (h, w) != (image.height, image.width) {
            resized = svlm_processor::resize(image, w, h, self.resample)
                .map_err(|e| anyhow::anyhow!("resizing: {e}"))?;
            &resized
        } else {
            image
        };
        let data = to_chw_normalized(
            image,
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
        Ok(match (self.do_pad, self.size_divisor) {
            (true, Some(divisor)) => pixels.center_pad(divisor),
            _ => pixels,
        })
    }
}

/// One preprocessed image, channels first (`[3, height, width]`, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct PixelValues {
    pub data: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

impl PixelValues {
    /// Zero padding to multiples of `divisor`, split evenly (the extra pixel after), as `pad_image`.
    pub fn center_pad(&self, divisor: usize) -> Self {
        let split = |size: usize| {
            let padded = size.div_ceil(divisor) * divisor;
            let before = (padded - size) / 2;
            (padded, before)
        };
        let (h, top) = split(self.height);
        let (w, left) = split(self.width);
        if (h, w) == (self.height, self.width) {
            return self.clone();
        }
        let mut data = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for y in 0..self.height {
                let src = (c * self.height + y) * self.width;
                let dst = (c * h + y + top) * w + left;
                data[dst..dst + self.width].copy_from_slice(&self.data[src..src + self.width]);
            }
        }
        Self {
            data,
            height: h,
            width: w,
        }
    }
}

/// `post_process_depth_estimation`: depth `[B, H, W]` -> each map resized to `(height, width)` by bicubic
/// interpolation (A = -0.75, half-pixel centres, no antialiasing), as `torch.nn.functional.interpolate`.
pub fn resize_depth(depth: Tensor<3>, sizes: &[(usize, usize)]) -> anyhow::Result<Vec<Tensor<2>>> {
    let [b, h, w] = depth.dims();
    if sizes.len() != b {
        bail!("{} target sizes for a batch of {b} depth maps", sizes.len());
    }
    sizes
        .iter()
        .enumerate()
        .map(|(i, &(th, tw))| {
            if th == 0 || tw == 0 {
                bail!("target size {tw}x{th} is empty");
            }
            let map = depth.clone().slice([i..i + 1, 0..h, 0..w]);
            if (th, tw) == (h, w) {
                return Ok(map.reshape([h, w]));
            }
            let out = interpolate(
                map.reshape([1, 1, h, w]),
                InterpolateOptions::new(InterpolateMode::Bicubic)
                    .with_align_corners(false)
                    .with_output_size([th, tw]),
            );
            Ok(out.reshape([th, tw]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn da_v2() -> DptImageProcessor {
        DptImageProcessor::from_json(&serde_json::json!({
            "do_normalize": true, "do_pad": false, "do_rescale": true, "do_resize": true,
            "ensure_multiple_of": 14, "image_mean": [0.485, 0.456, 0.406],
            "image_processor_type": "DPTImageProcessor", "image_std": [0.229, 0.224, 0.225],
            "keep_aspect_ratio": true, "resample": 3, "rescale_factor": 0.00392156862745098,
            "size": {"height": 518, "width": 518}, "size_divisor": null
        }))
        .unwrap()
    }

    #[test]
    fn keeps_aspect_ratio_and_rounds_to_multiples() {
        let p = da_v2();
        // 480x640: scale_h = 518/480 is closer to 1 than 518/640 -> fit height; 690.67/14 = 49.3 -> 686.
        assert_eq!(p.resize_output_size(480, 640), (518, 686));
        assert_eq!(p.resize_output_size(518, 518), (518, 518));
        // Portrait: fit width.
        assert_eq!(p.resize_output_size(1000, 500), (1036, 518));
    }

    #[test]
    fn rounding_is_half_to_even_like_python() {
        let mut p = DptImageProcessor {
            ensure_multiple_of: 2,
            size: (13, 10),
            ..Default::default()
        };
        // 13 / 2 = 6.5 -> 6 (Python), not 7; 10 stays.
        assert_eq!(p.resize_output_size(13, 10), (12, 10));
        p.size = (15, 10);
        assert_eq!(p.resize_output_size(15, 10), (16, 10));
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
    }

    #[test]
    fn defaults_are_dpt_pil_defaults() {
        let p = DptImageProcessor::from_json(&serde_json::json!({})).unwrap();
        assert_eq!(p, DptImageProcessor::default());
        assert_eq!(p.size, (384, 384));
        assert_eq!(p.image_mean, [0.5; 3]);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let err = DptImageProcessor::from_json(&serde_json::json!({"size": {"shortest_edge": 5}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("size"), "{err}");
        let err = DptImageProcessor::from_json(&serde_json::json!({"image_mean": [0.5, 0.5]}))
            .unwrap_err();
        assert!(format!("{err:#}").contains("image_mean"), "{err:#}");
        assert!(DptImageProcessor::from_json(&serde_json::json!({"resample": 9})).is_err());
    }

    #[test]
    fn too_small_images_are_an_error() {
        let p = DptImageProcessor {
            // 6 / 14 rounds to 0 patches.
            size: (6, 6),
            ensure_multiple_of: 14,
            ..Default::default()
        };
        let img = Rgb8::new(4, 4, vec![0; 48]).unwrap();
        assert!(p.preprocess(&img).is_err());
    }

    #[test]
    fn center_pad_puts_the_extra_pixel_after() {
        let px = PixelValues {
            data: (0..3 * 2 * 3).map(|v| v as f32 + 1.0).collect(),
            height: 2,
            width: 3,
        };
        let out = px.center_pad(4);
        assert_eq!((out.height, out.width), (4, 4));
        // top = 1, left = 0; channel 0 rows 1..3 hold 1 2 3 / 4 5 6.
        assert_eq!(&out.data[0..4], &[0.0; 4]);
        assert_eq!(&out.data[4..8], &[1.0, 2.0, 3.0, 0.0]);
        assert_eq!(&out.data[8..12], &[4.0, 5.0, 6.0, 0.0]);
        assert_eq!(&out.data[12..16], &[0.0; 4]);
    }
}
