//! `DepthProImageProcessor` (transformers 5, torchvision backend): rescale and normalize the 8-bit image first,
//! then resize the float image to a fixed size with `torch.nn.functional.interpolate` (no antialiasing); and
//! `post_process_depth_estimation`: inverse depth scaled by `width / focal` (focal from the predicted field of
//! view), resized to the photo with the same interpolation, inverted and clamped to metres.

use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;
use serde_json::Value;
use svlm_processor::Rgb8;

use crate::preprocess::triple;

/// The interpolation of the resize and of the post-processing (`resample` as a PIL code, mapped to torch's modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorchInterpolation {
    /// PIL code 2 (the processor's default): `bilinear`, half-pixel centres.
    Bilinear,
    /// PIL code 3: `bicubic` (A = -0.75), half-pixel centres, no clamping of the float image.
    Bicubic,
}

impl TorchInterpolation {
    pub fn from_pil_code(code: i64) -> anyhow::Result<Self> {
        match code {
            2 => Ok(Self::Bilinear),
            3 => Ok(Self::Bicubic),
            _ => bail!("`resample` {code} is not supported (2 = bilinear, 3 = bicubic)"),
        }
    }

    /// Resizes `[B, C, H, W]` to `size` as `F.interpolate(mode, align_corners=False)`; the same size is the identity.
    pub fn resize(self, x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        if [h, w] == size {
            return x;
        }
        let mode = match self {
            Self::Bilinear => InterpolateMode::Bilinear,
            Self::Bicubic => InterpolateMode::Bicubic,
        };
        interpolate(
            x,
            InterpolateOptions::new(mode)
                .with_align_corners(false)
                .with_output_size(size),
        )
    }
}

/// The settings of `preprocessor_config.json`; absent keys take `DepthProImageProcessor`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthProImageProcessor {
    pub do_resize: bool,
    /// `(height, width)` of the model input.
    pub size: (usize, usize),
    pub resample: TorchInterpolation,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

impl Default for DepthProImageProcessor {
    fn default() -> Self {
        Self {
            do_resize: true,
            size: (1536, 1536),
            resample: TorchInterpolation::Bilinear,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
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
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<Value>,
    image_std: Option<Value>,
}

impl DepthProImageProcessor {
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let j: ProcessorJson = serde_json::from_value(value.clone())
            .context("not a DepthPro image processor config")?;
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
            Some(code) => TorchInterpolation::from_pil_code(code)?,
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
        let rescale_factor = j.rescale_factor.unwrap_or(d.rescale_factor);
        if !(rescale_factor.is_finite() && rescale_factor > 0.0) {
            bail!("`rescale_factor` {rescale_factor} must be finite and > 0");
        }
        Ok(Self {
            do_resize: j.do_resize.unwrap_or(d.do_resize),
            size,
            resample,
            do_rescale: j.do_rescale.unwrap_or(d.do_rescale),
            rescale_factor,
            do_normalize: j.do_normalize.unwrap_or(d.do_normalize),
            image_mean,
            image_std,
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

    /// The model input `(height, width)` of a `height x width` image.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        if self.do_resize {
            self.size
        } else {
            (height, width)
        }
    }

    /// The 8-bit channels as float32, normalized as the torchvision backend does: with both steps on, rescale
    /// and normalize are one `(x - mean / factor) / (std / factor)`.
    fn normalized(&self, image: &Rgb8) -> Vec<f32> {
        let (mut mean, mut std) = ([0f32; 3], [1f32; 3]);
        if self.do_normalize {
            mean = self.image_mean;
            std = self.image_std;
            if self.do_rescale {
                let inv = (1.0 / self.rescale_factor) as f32;
                mean = mean.map(|m| m * inv);
                std = std.map(|s| s * inv);
            }
        }
        let plane = image.width * image.height;
        let mut out = vec![0f32; 3 * plane];
        for (i, px) in image.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let x = f32::from(px[c]);
                out[c * plane + i] = if self.do_normalize {
                    (x - mean[c]) / std[c]
                } else if self.do_rescale {
                    x * self.rescale_factor as f32
                } else {
                    x
                };
            }
        }
        out
    }

    /// One image -> `pixel_values` `[1, 3, H, W]` on `device`.
    pub fn preprocess(&self, image: &Rgb8, device: &Device) -> anyhow::Result<Tensor<4>> {
        if image.width == 0 || image.height == 0 {
            bail!("image is empty ({}x{})", image.width, image.height);
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(self.normalized(image), [1, 3, image.height, image.width]),
            device,
        );
        let (h, w) = self.output_size(image.height, image.width);
        Ok(self.resample.resize(x, [h, w]))
    }

    /// `post_process_depth_estimation` for one image: `inverse_depth` `[H, W]` (the model output) and its field of
    /// view in degrees, if predicted -> depth in metres at `(height, width)` and the focal length in pixels used.
    /// With a field of view `f = 0.5 width / tan(fov / 2)` and the inverse depth is scaled by `width / f`; without
    /// one it is left as is. Inverse depth is clamped to `[1e-4, 1e4]` before inverting.
    pub fn post_process(
        &self,
        inverse_depth: Tensor<2>,
        fov_deg: Option<f32>,
        (height, width): (usize, usize),
    ) -> anyhow::Result<(Tensor<2>, Option<f64>)> {
        if height == 0 || width == 0 {
            bail!("target size {width}x{height} is empty");
        }
        let [h, w] = inverse_depth.dims();
        let mut x = inverse_depth.reshape([1, 1, h, w]);
        let mut focal = None;
        if let Some(fov) = fov_deg {
            let f = 0.5 * width as f32 / (0.5 * fov.to_radians()).tan();
            if !(f.is_finite() && f > 0.0) {
                bail!("the predicted field of view {fov} degrees gives no focal length");
            }
            x = x.mul_scalar(width as f32).div_scalar(f);
            focal = Some(f64::from(f));
        }
        let x = self.resample.resize(x, [height, width]);
        let depth = x.clamp(1e-4, 1e4).recip().reshape([height, width]);
        Ok((depth, focal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_depth_pro_processor_defaults() {
        let p = DepthProImageProcessor::from_json(&serde_json::json!({})).unwrap();
        assert_eq!(p, DepthProImageProcessor::default());
        assert_eq!(p.size, (1536, 1536));
        assert_eq!(p.resample, TorchInterpolation::Bilinear);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let err =
            DepthProImageProcessor::from_json(&serde_json::json!({"size": {"shortest_edge": 5}}))
                .unwrap_err();
        assert!(format!("{err:#}").contains("size"), "{err:#}");
        let err =
            DepthProImageProcessor::from_json(&serde_json::json!({"resample": 0})).unwrap_err();
        assert!(format!("{err:#}").contains("resample"), "{err:#}");
        let err =
            DepthProImageProcessor::from_json(&serde_json::json!({"image_std": [0.5, 0.0, 0.5]}))
                .unwrap_err();
        assert!(format!("{err:#}").contains("image_std"), "{err:#}");
    }

    #[test]
    fn normalization_is_fused_over_255() {
        let p = DepthProImageProcessor::default();
        let img = Rgb8::new(2, 1, vec![0, 255, 51, 128, 0, 0]).unwrap();
        let v = p.normalized(&img);
        // (x - 127.5) / 127.5, channel planes of 2 pixels.
        assert_eq!(v, vec![-1.0, 0.5 / 127.5, 1.0, -1.0, -0.6, -1.0]);
    }

    #[test]
    fn focal_length_follows_the_field_of_view() {
        let device = Device::flex();
        let p = DepthProImageProcessor::default();
        let inverse = Tensor::<2>::from_data(TensorData::new(vec![0.5f32; 4], [2, 2]), &device);
        // 90 degrees over 100 px: f = 50, inverse depth 0.5 * 100 / 50 = 1 -> 1 m.
        let (depth, focal) = p
            .post_process(inverse.clone(), Some(90.0), (2, 100))
            .unwrap();
        assert!((focal.unwrap() - 50.0).abs() < 1e-4);
        let v: Vec<f32> = depth.into_data().convert::<f32>().try_into_vec().unwrap();
        assert!(v.iter().all(|&d| (d - 1.0).abs() < 1e-5), "{v:?}");
        let (depth, focal) = p.post_process(inverse, None, (2, 2)).unwrap();
        assert_eq!(focal, None);
        let v: Vec<f32> = depth.into_data().convert::<f32>().try_into_vec().unwrap();
        assert_eq!(v, vec![2.0; 4]);
    }
}
