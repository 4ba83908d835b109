//! The OWL image processors of transformers 5, PIL backend (the default when torchvision is absent, and the one
//! that follows the original skimage-based OWLv2 code):
//!
//! - OWLv2 (`Owlv2ImageProcessorPil`): rescale to [0, 1] in float32, pad to a square at the bottom/right with
//!   `pad_value` (0.0 in transformers 5; transformers 4 padded with 0.5 gray), resize like
//!   `skimage.transform.resize`: a Gaussian anti-aliasing blur when shrinking (`sigma = (factor - 1) / 2`, scipy's
//!   `gaussian_filter`, radius `int(4 sigma + 0.5)`, mirror boundary) then linear interpolation (`scipy.ndimage.zoom`,
//!   order 1, `grid_mode`, mirror boundary), clipped to the input's range; then CLIP mean/std normalization.
//!   The `resample` key is ignored, as transformers ignores it (it lands in the `anti_aliasing` argument).
//! - OWL-ViT (`OwlViTImageProcessorPil`): Pillow resize to `size` (bicubic by default, reproduced bit for bit by
//!   `svlm_processor::resize`), optional centre crop, rescale, normalize.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use svlm_processor::image_ops::{center_crop, to_chw_normalized};
use svlm_processor::{Resample, Rgb8};

use super::config::OwlVersion;
use crate::preprocess::{PixelValues, triple};

/// CLIP's `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`, digits as transformers writes them.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The settings of an OWL `preprocessor_config.json`; absent keys take the PIL processors' defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct OwlImageProcessor {
    pub version: OwlVersion,
    pub do_resize: bool,
    /// `(height, width)`.
    pub size: (usize, usize),
    /// OWL-ViT only (OWLv2 ignores it, as transformers does).
    pub resample: Resample,
    /// OWL-ViT only.
    pub do_center_crop: bool,
    pub crop_size: (usize, usize),
    pub do_rescale: bool,
    pub rescale_factor: f64,
    /// OWLv2 only.
    pub do_pad: bool,
    /// OWLv2 only: the value of padded pixels after rescaling.
    pub pad_value: f32,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

impl OwlImageProcessor {
    pub fn default_for(version: OwlVersion) -> Self {
        let side = match version {
            OwlVersion::V2 => 960,
            OwlVersion::V1 => 768,
        };
        Self {
            version,
            do_resize: true,
            size: (side, side),
            resample: match version {
                OwlVersion::V2 => Resample::Bilinear,
                OwlVersion::V1 => Resample::Bicubic,
            },
            do_center_crop: false,
            crop_size: (side, side),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_pad: version == OwlVersion::V2,
            pad_value: 0.0,
            do_normalize: true,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
        }
    }
}

#[derive(Deserialize)]
struct ProcessorJson {
    do_resize: Option<bool>,
    size: Option<Value>,
    resample: Option<i64>,
    do_center_crop: Option<bool>,
    crop_size: Option<Value>,
    do_rescale: Option<bool>,
    /// Early OWL-ViT configs on the hub say `rescale` for `do_rescale`.
    rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_pad: Option<bool>,
    do_normalize: Option<bool>,
    image_mean: Option<Value>,
    image_std: Option<Value>,
}

/// `{"height": H, "width": W}` or a bare number (a square), as `get_size_dict` reads OWL configs.
fn size_of(key: &str, v: &Value) -> anyhow::Result<(usize, usize)> {
    if let Some(side) = v.as_u64()
        && side > 0
    {
        return Ok((side as usize, side as usize));
    }
    let h = v.get("height").and_then(Value::as_u64);
    let w = v.get("width").and_then(Value::as_u64);
    match (h, w) {
        (Some(h), Some(w)) if h > 0 && w > 0 => Ok((h as usize, w as usize)),
        _ => bail!("`{key}` {v} must be {{\"height\": H, \"width\": W}} with positive values"),
    }
}

impl OwlImageProcessor {
    pub fn from_json(value: &Value, version: OwlVersion) -> anyhow::Result<Self> {
        let j: ProcessorJson =
            serde_json::from_value(value.clone()).context("not an OWL image processor config")?;
        let d = Self::default_for(version);
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
        Ok(Self {
            version,
            do_resize: j.do_resize.unwrap_or(d.do_resize),
            size: match &j.size {
                None => d.size,
                Some(v) => size_of("size", v)?,
            },
            resample,
            do_center_crop: j.do_center_crop.unwrap_or(d.do_center_crop),
            crop_size: match &j.crop_size {
                None | Some(Value::Null) => d.crop_size,
                Some(v) => size_of("crop_size", v)?,
            },
            do_rescale: j.do_rescale.or(j.rescale).unwrap_or(d.do_rescale),
            rescale_factor: j.rescale_factor.unwrap_or(d.rescale_factor),
            do_pad: j.do_pad.unwrap_or(d.do_pad),
            pad_value: d.pad_value,
            do_normalize: j.do_normalize.unwrap_or(d.do_normalize),
            image_mean,
            image_std,
        })
    }

    /// Reads `preprocessor_config.json` of a model folder.
    pub fn from_dir(dir: &Path, version: OwlVersion) -> anyhow::Result<Self> {
        let path = dir.join("preprocessor_config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_json(&value, version).with_context(|| format!("in {}", path.display()))
    }

    /// One image -> `pixel_values` `[3, H, W]`.
    pub fn preprocess(&self, image: &Rgb8) -> anyhow::Result<PixelValues> {
        if image.width == 0 || image.height == 0 {
            bail!("image is empty ({}x{})", image.width, image.height);
        }
        match self.version {
            OwlVersion::V2 => Ok(self.preprocess_v2(image)),
            OwlVersion::V1 => self.preprocess_v1(image),
        }
    }

    fn preprocess_v1(&self, image: &Rgb8) -> anyhow::Result<PixelValues> {
        let mut image = image.clone();
        if self.do_resize {
            let (h, w) = self.size;
            image = svlm_processor::resize(&image, w, h, self.resample)
                .map_err(|e| anyhow::anyhow!("resizing: {e}"))?;
        }
        if self.do_center_crop {
            let (h, w) = self.crop_size;
            image = center_crop(&image, h, w);
        }
        Ok(PixelValues {
            data: to_chw_normalized(
                &image,
                self.do_rescale,
                self.rescale_factor,
                self.do_normalize,
                self.image_mean,
                self.image_std,
            ),
            height: image.height,
            width: image.width,
        })
    }

    fn preprocess_v2(&self, image: &Rgb8) -> PixelValues {
        let (h, w) = (image.height, image.width);
        let mut planes = to_chw_normalized(
            image,
            self.do_rescale,
            self.rescale_factor,
            false,
            self.image_mean,
            self.image_std,
        );
        let (mut h, mut w) = (h, w);
        if self.do_pad && h != w {
            let side = h.max(w);
            let mut padded = vec![self.pad_value; 3 * side * side];
            for c in 0..3 {
                for y in 0..h {
                    let src = (c * h + y) * w;
                    let dst = (c * side + y) * side;
                    padded[dst..dst + w].copy_from_slice(&planes[src..src + w]);
                }
            }
            planes = padded;
            h = side;
            w = side;
        }
        if self.do_resize && (h, w) != self.size {
            let (out_h, out_w) = self.size;
            planes = skimage_resize(&planes, 3, h, w, out_h, out_w);
            h = out_h;
            w = out_w;
        }
        if self.do_normalize {
            let plane = h * w;
            for c in 0..3 {
                for v in &mut planes[c * plane..(c + 1) * plane] {
                    *v = (*v - self.image_mean[c]) / self.image_std[c];
                }
            }
        }
        PixelValues {
            data: planes,
            height: h,
            width: w,
        }
    }
}

/// scipy.ndimage's `mirror` boundary (`d c b | a b c d | c b a`), repeated for any distance.
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    if m < n as isize {
        m as usize
    } else {
        (period - m) as usize
    }
}

/// `scipy.ndimage.gaussian_filter1d` weights (truncate 4.0), in float64.
fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as isize;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    weights.into_iter().map(|v| v / sum).collect()
}

/// One-dimensional correlation of every line along an axis (`stride` apart, `n` long), mirror boundary; each
/// output rounded to float32 as scipy stores it in the float32 output array.
fn blur_lines(data: &mut [f32], starts: &[usize], stride: usize, n: usize, kernel: &[f64]) {
    let radius = (kernel.len() / 2) as isize;
    let mut line = vec![0f64; n];
    for &start in starts {
        for (i, v) in line.iter_mut().enumerate() {
            *v = f64::from(data[start + i * stride]);
        }
        for i in 0..n {
            let mut acc = 0f64;
            for (k, &wk) in kernel.iter().enumerate() {
                acc += wk * line[mirror(i as isize + k as isize - radius, n)];
            }
            data[start + i * stride] = acc as f32;
        }
    }
}

/// For each output index of an axis, the two input indices and the weight of the second (`scipy.ndimage.zoom`,
/// order 1, `grid_mode=True`: pixel centres aligned, `(k + 0.5) * in / out - 0.5`; mirror boundary).
fn linear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f64)> {
    let zoom = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|k| {
            let x = (k as f64 + 0.5) * zoom - 0.5;
            let x0 = x.floor();
            let t = x - x0;
            let i0 = x0 as isize;
            (mirror(i0, n_in), mirror(i0 + 1, n_in), t)
        })
        .collect()
}

/// `Owlv2ImageProcessor.resize` on channels-first float32 planes: anti-aliasing blur where shrinking, linear
/// interpolation, clipped to the input's range.
pub fn skimage_resize(
    planes: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let (lo, hi) = planes
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mut filtered = planes.to_vec();
    let sigma_y = ((h as f64 / out_h as f64) - 1.0).max(0.0) / 2.0;
    let sigma_x = ((w as f64 / out_w as f64) - 1.0).max(0.0) / 2.0;
    // scipy filters axis 0 (rows) first, then axis 1, skipping axes with sigma ~ 0.
    if sigma_y > 1e-15 {
        let kernel = gaussian_kernel(sigma_y);
        let starts: Vec<usize> = (0..channels)
            .flat_map(|c| (0..w).map(move |x| c * h * w + x))
            .collect();
        blur_lines(&mut filtered, &starts, w, h, &kernel);
    }
    if sigma_x > 1e-15 {
        let kernel = gaussian_kernel(sigma_x);
        let starts: Vec<usize> = (0..channels)
            .flat_map(|c| (0..h).map(move |y| c * h * w + y * w))
            .collect();
        blur_lines(&mut filtered, &starts, 1, w, &kernel);
    }
    let rows = linear_taps(h, out_h);
    let cols = linear_taps(w, out_w);
    let mut out = Vec::with_capacity(channels * out_h * out_w);
    for c in 0..channels {
        let plane = &filtered[c * h * w..(c + 1) * h * w];
        for &(y0, y1, ty) in &rows {
            for &(x0, x1, tx) in &cols {
                let at = |y: usize, x: usize| f64::from(plane[y * w + x]);
                let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
                let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
                let v = (top * (1.0 - ty) + bottom * ty) as f32;
                out.push(v.clamp(lo, hi));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_reflects_without_repeating_the_edge() {
        let n = 4;
        let got: Vec<usize> = (-3..8).map(|i| mirror(i, n)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(mirror(-5, 1), 0);
    }

    #[test]
    fn gaussian_kernel_matches_scipy_radius_and_sums_to_one() {
        // sigma 0.875 -> radius int(3.5 + 0.5) = 4.
        let k = gaussian_kernel(0.875);
        assert_eq!(k.len(), 9);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(k[4] > k[3] && (k[3] - k[5]).abs() < 1e-15);
    }

    #[test]
    fn constant_images_stay_constant_and_identity_size_is_a_copy() {
        let planes = vec![0.25f32; 3 * 5 * 7];
        let out = skimage_resize(&planes, 3, 5, 7, 3, 4);
        assert_eq!(out.len(), 3 * 3 * 4);
        assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-7));
        let ramp: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(skimage_resize(&ramp, 1, 3, 4, 3, 4), ramp);
    }

    #[test]
    fn v2_pads_bottom_right_to_a_square() {
        let p = OwlImageProcessor {
            do_resize: false,
            do_normalize: false,
            ..OwlImageProcessor::default_for(OwlVersion::V2)
        };
        let img = Rgb8::new(3, 2, vec![255; 18]).unwrap();
        let px = p.preprocess(&img).unwrap();
        assert_eq!((px.height, px.width), (3, 3));
        assert_eq!(
            &px.data[0..9],
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn configs_read_sizes_and_name_bad_keys() {
        let p = OwlImageProcessor::from_json(
            &serde_json::json!({"size": {"height": 960, "width": 960}, "rescale": false}),
            OwlVersion::V2,
        )
        .unwrap();
        assert_eq!(p.size, (960, 960));
        assert!(!p.do_rescale);
        let p = OwlImageProcessor::from_json(&serde_json::json!({"size": 768}), OwlVersion::V1)
            .unwrap();
        assert_eq!(p.size, (768, 768));
        let err = OwlImageProcessor::from_json(
            &serde_json::json!({"size": {"shortest_edge": 5}}),
            OwlVersion::V2,
        )
        .unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
    }
}
