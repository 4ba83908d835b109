//! The HF image processors, PIL backend: `Idefics3ImageProcessor` (SmolVLM), the resize/crop/normalize family
//! (`CLIPImageProcessor`, `SiglipImageProcessor`) and `Qwen2VLImageProcessor` (Qwen2-VL, Qwen2.5-VL: images of any
//! size as flattened patches).

use std::path::Path;

use serde_json::Value;

use crate::error::{ProcessorError, Result};
use crate::files::JsonFile;
use crate::image_ops::{center_crop, to_chw_normalized};
use crate::resample::{Resample, Rgb8, resize};

// transformers' digits, rounded to f32 as numpy does when it normalizes.
#[allow(clippy::excessive_precision)]
pub const OPENAI_CLIP_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
#[allow(clippy::excessive_precision)]
pub const OPENAI_CLIP_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];
pub const IMAGENET_STANDARD_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
pub const IMAGENET_STANDARD_STD: [f32; 3] = [0.5, 0.5, 0.5];

/// Idefics3's absolute cap on the resized image (`MAX_IMAGE_SIZE` in transformers).
const IDEFICS3_MAX_IMAGE_SIZE: usize = 4096;

/// The `size` entry of an image processor config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    /// Resize the longest edge to this, keeping the aspect ratio (Idefics3).
    LongestEdge(usize),
    /// Resize the shortest edge to this, keeping the aspect ratio (CLIP).
    ShortestEdge(usize),
    /// Resize to exactly this (SigLIP).
    Exact { height: usize, width: usize },
}

impl SizeSpec {
    fn parse(file: &JsonFile<'_>, key: &str, v: &Value) -> Result<Self> {
        if let Some(n) = v.as_u64() {
            return Ok(Self::Exact {
                height: n as usize,
                width: n as usize,
            });
        }
        let get = |k: &str| -> Result<Option<usize>> {
            match v.get(k).filter(|x| !x.is_null()) {
                None => Ok(None),
                Some(x) => x.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
                    file.invalid(key, format!("`{k}` must be a positive integer, got {x}"))
                }),
            }
        };
        let spec = match (
            get("height")?,
            get("width")?,
            get("shortest_edge")?,
            get("longest_edge")?,
        ) {
            (Some(height), Some(width), _, _) => Self::Exact { height, width },
            (_, _, Some(s), None) => Self::ShortestEdge(s),
            (_, _, None, Some(l)) => Self::LongestEdge(l),
            _ => {
                return Err(file.invalid(
                    key,
                    format!(
                        "expected {{height, width}}, {{shortest_edge}} or {{longest_edge}}, got {v}"
                    ),
                ));
            }
        };
        let ok = match spec {
            Self::Exact { height, width } => height > 0 && width > 0,
            Self::ShortestEdge(n) | Self::LongestEdge(n) => n > 0,
        };
        if !ok {
            return Err(file.invalid(key, "sizes must be positive"));
        }
        Ok(spec)
    }
}

/// Steps shared by all image processors.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonImageConfig {
    pub do_resize: bool,
    pub resample: Resample,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

impl CommonImageConfig {
    fn parse(
        file: &JsonFile<'_>,
        default_resample: Resample,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Self> {
        let resample = match file.get("resample") {
            None => default_resample,
            Some(v) => v
                .as_i64()
                .and_then(Resample::from_pil_code)
                .ok_or_else(|| {
                    file.invalid(
                        "resample",
                        format!("expected a PIL filter code 0..=5, got {v}"),
                    )
                })?,
        };
        let rescale_factor = file.f64_or("rescale_factor", 1.0 / 255.0)?;
        Ok(Self {
            do_resize: file.bool_or("do_resize", true)?,
            resample,
            do_rescale: file.bool_or("do_rescale", true)?,
            rescale_factor,
            do_normalize: file.bool_or("do_normalize", true)?,
            image_mean: file.triple_or("image_mean", mean)?,
            image_std: file.triple_or("image_std", std)?,
        })
    }

    fn normalize(&self, img: &Rgb8) -> Vec<f32> {
        to_chw_normalized(
            img,
            self.do_rescale,
            self.rescale_factor,
            self.do_normalize,
            self.image_mean,
            self.image_std,
        )
    }
}

/// Pixel values of one image or one sample, channels first.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelTiles {
    /// `num_tiles * 3 * height * width` values.
    pub values: Vec<f32>,
    pub num_tiles: usize,
    pub height: usize,
    pub width: usize,
}

impl PixelTiles {
    pub fn shape(&self) -> [usize; 4] {
        [self.num_tiles, 3, self.height, self.width]
    }
}

/// `Idefics3ImageProcessor` (PIL backend).
#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3ImageProcessor {
    pub common: CommonImageConfig,
    /// `size.longest_edge`: the whole image is first resized so its longest edge is this.
    pub longest_edge: usize,
    /// `max_image_size.longest_edge`: side of each square tile the vision encoder sees.
    pub max_image_size: usize,
    pub do_image_splitting: bool,
    pub do_pad: bool,
}

/// One image after Idefics3 preprocessing: `rows x cols` tiles (row-major) followed by the global image, or just
/// the (square) image when `rows == cols == 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3Image {
    pub tiles: PixelTiles,
    pub rows: usize,
    pub cols: usize,
}

impl Idefics3ImageProcessor {
    fn from_json(file: &JsonFile<'_>) -> Result<Self> {
        let common = CommonImageConfig::parse(
            file,
            Resample::Lanczos,
            IMAGENET_STANDARD_MEAN,
            IMAGENET_STANDARD_STD,
        )?;
        let size = SizeSpec::parse(file, "size", file.require("size")?)?;
        let SizeSpec::LongestEdge(longest_edge) = size else {
            return Err(file.invalid("size", "Idefics3 expects {\"longest_edge\": N}"));
        };
        let max = file.require("max_image_size")?;
        let max_image_size = match SizeSpec::parse(file, "max_image_size", max)? {
            SizeSpec::LongestEdge(n) => n,
            _ => return Err(file.invalid("max_image_size", "expected {\"longest_edge\": N}")),
        };
        Ok(Self {
            common,
            longest_edge,
            max_image_size,
            do_image_splitting: file.bool_or("do_image_splitting", true)?,
            do_pad: file.bool_or("do_pad", true)?,
        })
    }

    /// Output size of the first resize: longest edge to `longest_edge`, the other edge made even, capped at 4096.
    pub fn resize_output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let (h, w) = rescale_to_max_len(height, width, self.longest_edge);
        scale_below_upper_bound(h, w, IDEFICS3_MAX_IMAGE_SIZE)
    }

    /// Size of the image before it is cut into tiles: each edge a multiple of `max_image_size`.
    pub fn vision_encoder_size(&self, height: usize, width: usize) -> (usize, usize) {
        let m = self.max_image_size as f64;
        let aspect = width as f64 / height as f64;
        if width >= height {
            let w = (width as f64 / m).ceil() * m;
            let h = (w / aspect).trunc();
            ((h / m).ceil() as usize * self.max_image_size, w as usize)
        } else {
            let h = (height as f64 / m).ceil() * m;
            let w = (h * aspect).trunc();
            (h as usize, (w / m).ceil() as usize * self.max_image_size)
        }
    }

    /// Preprocesses one image into its tiles.
    pub fn preprocess(&self, img: &Rgb8) -> Result<Idefics3Image> {
        let mut img = img.clone();
        let filter = self.common.resample;
        if self.common.do_resize {
            let (h, w) = self.resize_output_size(img.height, img.width);
            img = resize(&img, w, h, filter)?;
        }
        let m = self.max_image_size;
        let mut frames = Vec::new();
        let (rows, cols);
        if self.do_image_splitting {
            let (h, w) = self.vision_encoder_size(img.height, img.width);
            img = resize(&img, w, h, filter)?;
            if img.height > m || img.width > m {
                rows = (img.height - m) / m + 1;
                cols = (img.width - m) / m + 1;
                for r in 0..rows {
                    for c in 0..cols {
                        frames.push(img.crop(c * m, r * m, m, m));
                    }
                }
                frames.push(resize(&img, m, m, filter)?);
            } else {
                rows = 0;
                cols = 0;
                frames.push(img);
            }
        } else {
            rows = 0;
            cols = 0;
            frames.push(resize(&img, m, m, filter)?);
        }
        let (height, width) = (frames[0].height, frames[0].width);
        if frames
            .iter()
            .any(|f| f.height != height || f.width != width)
        {
            return Err(ProcessorError::Invalid(format!(
                "Idefics3 tiles of unequal size ({}x{} vs others); the image is smaller than a tile in one edge",
                width, height
            )));
        }
        let mut values = Vec::with_capacity(frames.len() * 3 * height * width);
        for f in &frames {
            values.extend(self.common.normalize(f));
        }
        Ok(Idefics3Image {
            tiles: PixelTiles {
                values,
                num_tiles: frames.len(),
                height,
                width,
            },
            rows,
            cols,
        })
    }
}

fn rescale_to_max_len(height: usize, width: usize, max_len: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w);
    if width >= height {
        w = max_len;
        h = (w as f64 / aspect) as usize;
        if h % 2 != 0 {
            h += 1;
        }
    } else {
        h = max_len;
        w = (h as f64 * aspect) as usize;
        if w % 2 != 0 {
            w += 1;
        }
    }
    (h.max(1), w.max(1))
}

fn scale_below_upper_bound(height: usize, width: usize, max_len: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w) = (height, width);
    if width >= height && width > max_len {
        w = max_len;
        h = (w as f64 / aspect) as usize;
    } else if height > width && height > max_len {
        h = max_len;
        w = (h as f64 * aspect) as usize;
    }
    (h.max(1), w.max(1))
}

/// `CLIPImageProcessor` / `SiglipImageProcessor` (PIL backend): resize, optional center crop, rescale, normalize.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizeCropImageProcessor {
    pub common: CommonImageConfig,
    pub size: SizeSpec,
    /// `(height, width)` of the center crop, if `do_center_crop`.
    pub crop_size: Option<(usize, usize)>,
}

impl ResizeCropImageProcessor {
    fn from_json(file: &JsonFile<'_>, kind: ImageProcessorKind) -> Result<Self> {
        let (resample, mean, std) = match kind {
            ImageProcessorKind::Siglip => (
                Resample::Bicubic,
                IMAGENET_STANDARD_MEAN,
                IMAGENET_STANDARD_STD,
            ),
            _ => (Resample::Bicubic, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
        };
        let common = CommonImageConfig::parse(file, resample, mean, std)?;
        let size = SizeSpec::parse(file, "size", file.require("size")?)?;
        if matches!(size, SizeSpec::LongestEdge(_)) {
            return Err(file.invalid("size", "expected {height, width} or {shortest_edge}"));
        }
        let default_crop = matches!(kind, ImageProcessorKind::Clip);
        let crop_size = if file.bool_or("do_center_crop", default_crop)? {
            match SizeSpec::parse(file, "crop_size", file.require("crop_size")?)? {
                SizeSpec::Exact { height, width } => Some((height, width)),
                _ => return Err(file.invalid("crop_size", "expected {height, width}")),
            }
        } else {
            None
        };
        Ok(Self {
            common,
            size,
            crop_size,
        })
    }

    /// `(height, width)` after the resize step.
    pub fn resize_output_size(&self, height: usize, width: usize) -> (usize, usize) {
        match self.size {
            SizeSpec::Exact { height, width } => (height, width),
            SizeSpec::ShortestEdge(s) | SizeSpec::LongestEdge(s) => {
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                if width <= height {
                    (new_long, s)
                } else {
                    (s, new_long)
                }
            }
        }
    }

    pub fn preprocess(&self, img: &Rgb8) -> Result<PixelTiles> {
        let mut img = img.clone();
        if self.common.do_resize {
            let (h, w) = self.resize_output_size(img.height, img.width);
            img = resize(&img, w, h, self.common.resample)?;
        }
        if let Some((h, w)) = self.crop_size {
            img = center_crop(&img, h, w);
        }
        Ok(PixelTiles {
            values: self.common.normalize(&img),
            num_tiles: 1,
            height: img.height,
            width: img.width,
        })
    }
}

/// `Qwen2VLImageProcessor` (PIL backend): `smart_resize` to multiples of `patch_size * merge_size` with the pixel
/// count inside `[min_pixels, max_pixels]`, rescale, normalize, then the image cut into flattened patches.
#[derive(Debug, Clone, PartialEq)]
pub struct Qwen2VlImageProcessor {
    pub common: CommonImageConfig,
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
}

/// One image as flattened patches: `grid_thw[1] * grid_thw[2]` patches of [`Qwen2VlImageProcessor::patch_dim`]
/// values, merge block by merge block (row-major blocks, row-major patches inside a block), each patch
/// `[C, T, p, p]` with the still image repeated over the `T` frames.
#[derive(Debug, Clone, PartialEq)]
pub struct QwenPatches {
    pub values: Vec<f32>,
    pub grid_thw: [usize; 3],
}

impl Qwen2VlImageProcessor {
    fn from_json(file: &JsonFile<'_>) -> Result<Self> {
        let common =
            CommonImageConfig::parse(file, Resample::Bicubic, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)?;
        // transformers: `size = {shortest_edge: min_pixels, longest_edge: max_pixels}`; explicit
        // `min_pixels` / `max_pixels` keys override it.
        let size = file.get("size").filter(|v| !v.is_null());
        let size_entry = |key: &str| -> Result<Option<usize>> {
            match size.and_then(|v| v.get(key)).filter(|v| !v.is_null()) {
                None => Ok(None),
                Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
                    file.invalid(
                        "size",
                        format!("`{key}` must be a positive integer, got {v}"),
                    )
                }),
            }
        };
        let min_pixels = match file.get("min_pixels").filter(|v| !v.is_null()) {
            Some(_) => file.require_usize("min_pixels")?,
            None => size_entry("shortest_edge")?.unwrap_or(56 * 56),
        };
        let max_pixels = match file.get("max_pixels").filter(|v| !v.is_null()) {
            Some(_) => file.require_usize("max_pixels")?,
            None => size_entry("longest_edge")?.unwrap_or(28 * 28 * 1280),
        };
        let out = Self {
            common,
            min_pixels,
            max_pixels,
            patch_size: file.usize_or("patch_size", 14)?,
            temporal_patch_size: file.usize_or("temporal_patch_size", 2)?,
            merge_size: file.usize_or("merge_size", 2)?,
        };
        if out.patch_size == 0 || out.temporal_patch_size == 0 || out.merge_size == 0 {
            return Err(file.invalid(
                "patch_size",
                "patch_size, temporal_patch_size and merge_size must be positive",
            ));
        }
        if out.min_pixels == 0 || out.min_pixels > out.max_pixels {
            return Err(file.invalid(
                "min_pixels",
                format!(
                    "need 0 < min_pixels <= max_pixels, got {} and {}",
                    out.min_pixels, out.max_pixels
                ),
            ));
        }
        Ok(out)
    }

    /// Values per flattened patch: `3 * temporal_patch_size * patch_size^2`.
    pub fn patch_dim(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// transformers' `smart_resize`: `(height, width)` rounded to multiples of `patch_size * merge_size` (Python's
    /// round half to even), scaled down into `max_pixels` or up to `min_pixels` keeping the aspect ratio.
    pub fn smart_resize(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let factor = (self.patch_size * self.merge_size) as f64;
        let (h, w) = (height as f64, width as f64);
        if height == 0 || width == 0 || h.max(w) / h.min(w) > 200.0 {
            return Err(ProcessorError::Invalid(format!(
                "image of {width}x{height}: the aspect ratio must be below 200"
            )));
        }
        let mut h_bar = (h / factor).round_ties_even() * factor;
        let mut w_bar = (w / factor).round_ties_even() * factor;
        if h_bar * w_bar > self.max_pixels as f64 {
            let beta = ((h * w) / self.max_pixels as f64).sqrt();
            h_bar = factor.max((h / beta / factor).floor() * factor);
            w_bar = factor.max((w / beta / factor).floor() * factor);
        } else if h_bar * w_bar < self.min_pixels as f64 {
            let beta = (self.min_pixels as f64 / (h * w)).sqrt();
            h_bar = (h * beta / factor).ceil() * factor;
            w_bar = (w * beta / factor).ceil() * factor;
        }
        Ok((h_bar as usize, w_bar as usize))
    }

    pub fn preprocess(&self, img: &Rgb8) -> Result<QwenPatches> {
        let mut img = img.clone();
        if self.common.do_resize {
            let (h, w) = self.smart_resize(img.height, img.width)?;
            img = resize(&img, w, h, self.common.resample)?;
        }
        let (p, m, t) = (self.patch_size, self.merge_size, self.temporal_patch_size);
        if !img.height.is_multiple_of(p * m) || !img.width.is_multiple_of(p * m) {
            return Err(ProcessorError::Invalid(format!(
                "image of {}x{}: each side must be a multiple of patch_size * merge_size = {} (do_resize is off)",
                img.width,
                img.height,
                p * m
            )));
        }
        let chw = self.common.normalize(&img);
        let (height, width) = (img.height, img.width);
        let (gh, gw) = (height / p, width / p);
        let mut values = Vec::with_capacity(gh * gw * self.patch_dim());
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for ih in 0..m {
                    for iw in 0..m {
                        let (y0, x0) = ((bh * m + ih) * p, (bw * m + iw) * p);
                        for c in 0..3 {
                            for _ in 0..t {
                                for y in y0..y0 + p {
                                    let row = (c * height + y) * width;
                                    values.extend_from_slice(&chw[row + x0..row + x0 + p]);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(QwenPatches {
            values,
            grid_thw: [1, gh, gw],
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageProcessorKind {
    Idefics3,
    Clip,
    Siglip,
    Qwen2Vl,
}

/// An image processor read from `preprocessor_config.json` (or the `image_processor` entry of
/// `processor_config.json`, as transformers 5 writes it).
#[derive(Debug, Clone, PartialEq)]
pub enum ImageProcessor {
    Idefics3(Idefics3ImageProcessor),
    Qwen2Vl(Qwen2VlImageProcessor),
    ResizeCrop {
        kind: ImageProcessorKind,
        processor: ResizeCropImageProcessor,
    },
}

impl ImageProcessor {
    /// Parses the config object `value` that was read from `path`. `image_processor_type` picks the processor;
    /// `size` (and Idefics3's `max_image_size`, CLIP's `crop_size`) are required, other keys take the HF defaults.
    pub fn from_config(path: &Path, value: &Value) -> Result<Self> {
        let file = JsonFile::new(path, value);
        // Configs saved before image processors existed name a feature extractor instead.
        let (key, type_name) = match (
            file.get("image_processor_type"),
            file.get("feature_extractor_type"),
        ) {
            (Some(v), _) => ("image_processor_type", v),
            (None, Some(v)) => ("feature_extractor_type", v),
            (None, None) => {
                return Err(ProcessorError::MissingKey {
                    path: path.to_path_buf(),
                    key: "image_processor_type".into(),
                });
            }
        };
        let type_name = type_name
            .as_str()
            .ok_or_else(|| file.invalid(key, "expected a string"))?
            .replace("FeatureExtractor", "ImageProcessor");
        let base = type_name.trim_end_matches("Fast").trim_end_matches("Pil");
        let kind = match base {
            "Idefics3ImageProcessor" | "SmolVLMImageProcessor" => ImageProcessorKind::Idefics3,
            "CLIPImageProcessor" => ImageProcessorKind::Clip,
            "SiglipImageProcessor" => ImageProcessorKind::Siglip,
            "Qwen2VLImageProcessor" => ImageProcessorKind::Qwen2Vl,
            other => {
                return Err(file.invalid(
                    key,
                    format!(
                        "unsupported image processor {other:?} (supported: Idefics3, CLIP, Siglip, Qwen2VL)"
                    ),
                ));
            }
        };
        Ok(match kind {
            ImageProcessorKind::Idefics3 => {
                Self::Idefics3(Idefics3ImageProcessor::from_json(&file)?)
            }
            ImageProcessorKind::Qwen2Vl => Self::Qwen2Vl(Qwen2VlImageProcessor::from_json(&file)?),
            kind => Self::ResizeCrop {
                kind,
                processor: ResizeCropImageProcessor::from_json(&file, kind)?,
            },
        })
    }

    pub fn kind(&self) -> ImageProcessorKind {
        match self {
            Self::Idefics3(_) => ImageProcessorKind::Idefics3,
            Self::Qwen2Vl(_) => ImageProcessorKind::Qwen2Vl,
            Self::ResizeCrop { kind, .. } => *kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn idefics(longest: usize, max: usize) -> Idefics3ImageProcessor {
        let v = json!({"image_processor_type": "Idefics3ImageProcessor", "size": {"longest_edge": longest},
                       "max_image_size": {"longest_edge": max}});
        match ImageProcessor::from_config(Path::new("p.json"), &v).unwrap() {
            ImageProcessor::Idefics3(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn idefics3_sizes_follow_transformers_arithmetic() {
        let p = idefics(1536, 384);
        // 512x341 (w x h): longest to 1536, h = int(1536 / (512/341)) = 1023 -> 1024 (even).
        assert_eq!(p.resize_output_size(341, 512), (1024, 1536));
        // width 1536 -> 4 tiles wide; h = int(1536 / 1.5) = 1024 -> ceil(1024/384) = 3 tiles.
        assert_eq!(p.vision_encoder_size(1024, 1536), (1152, 1536));
        assert_eq!(p.vision_encoder_size(100, 60), (384, 384));
    }

    #[test]
    fn idefics3_splits_into_rows_cols_and_global() {
        let p = idefics(96, 32);
        let img = Rgb8::new(50, 30, vec![128; 50 * 30 * 3]).unwrap();
        let out = p.preprocess(&img).unwrap();
        // 50x30 -> 96x58 -> 96x64 (multiples of 32) -> 2 rows x 3 cols + global
        assert_eq!((out.rows, out.cols), (2, 3));
        assert_eq!(out.tiles.shape(), [7, 3, 32, 32]);
        let mut q = p.clone();
        q.do_image_splitting = false;
        let out = q.preprocess(&img).unwrap();
        assert_eq!((out.rows, out.cols, out.tiles.num_tiles), (0, 0, 1));
    }

    #[test]
    fn missing_required_key_names_file_and_key() {
        let v =
            json!({"image_processor_type": "Idefics3ImageProcessor", "size": {"longest_edge": 10}});
        let err =
            ImageProcessor::from_config(Path::new("/x/preprocessor_config.json"), &v).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("preprocessor_config.json") && msg.contains("max_image_size"),
            "{msg}"
        );
    }

    #[test]
    fn clip_shortest_edge_and_crop() {
        let v = json!({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 24},
                       "crop_size": {"height": 24, "width": 24}});
        let ImageProcessor::ResizeCrop { processor, .. } =
            ImageProcessor::from_config(Path::new("p.json"), &v).unwrap()
        else {
            panic!()
        };
        assert_eq!(processor.resize_output_size(30, 45), (24, 36));
        assert_eq!(processor.resize_output_size(45, 30), (36, 24));
        let img = Rgb8::new(45, 30, vec![7; 45 * 30 * 3]).unwrap();
        assert_eq!(processor.preprocess(&img).unwrap().shape(), [1, 3, 24, 24]);
        assert_eq!(processor.common.image_mean, OPENAI_CLIP_MEAN);
    }

    fn qwen(min_pixels: usize, max_pixels: usize) -> Qwen2VlImageProcessor {
        let v = json!({"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": min_pixels,
                       "max_pixels": max_pixels, "patch_size": 2, "merge_size": 2, "temporal_patch_size": 2});
        match ImageProcessor::from_config(Path::new("p.json"), &v).unwrap() {
            ImageProcessor::Qwen2Vl(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn qwen_smart_resize_keeps_multiples_of_the_factor_within_the_pixel_budget() {
        let p = qwen(16, 256);
        // 10 / 4 = 2.5 rounds half to even: 2 -> 8; 14 / 4 = 3.5 -> 4 -> 16.
        assert_eq!(p.smart_resize(10, 14).unwrap(), (8, 16));
        // 40 x 40 is 1600 > 256 pixels: scaled down to 16 x 16.
        assert_eq!(p.smart_resize(40, 40).unwrap(), (16, 16));
        // 2 x 2 rounds to 0 x 0, below min_pixels: scaled up to 4 x 4.
        assert_eq!(p.smart_resize(2, 2).unwrap(), (4, 4));
        assert!(p.smart_resize(1, 300).is_err(), "aspect ratio above 200");
    }

    #[test]
    fn qwen_patches_come_merge_block_by_merge_block() {
        let mut p = qwen(16, 256);
        p.common.do_resize = false;
        p.common.do_normalize = false;
        p.common.do_rescale = false;
        // 8 x 4 image (w x h) whose red channel counts pixels: 2 x 4 patches of 2 x 2, 1 x 2 merge blocks.
        let img = Rgb8::new(8, 4, (0..32u8).flat_map(|i| [i, 0, 0]).collect()).unwrap();
        let out = p.preprocess(&img).unwrap();
        assert_eq!(out.grid_thw, [1, 2, 4]);
        assert_eq!(out.values.len(), 8 * p.patch_dim());
        let red = |patch: usize| -> Vec<f32> {
            let v = &out.values[patch * 24..patch * 24 + 8];
            assert_eq!(v[..4], v[4..], "both frames hold the same image");
            v[..4].to_vec()
        };
        // Patch 0: the top-left 2 x 2 pixels; patch 1: right of it; patch 2: below it (same merge block).
        assert_eq!(red(0), vec![0.0, 1.0, 8.0, 9.0]);
        assert_eq!(red(1), vec![2.0, 3.0, 10.0, 11.0]);
        assert_eq!(red(2), vec![16.0, 17.0, 24.0, 25.0]);
        // Patch 4 starts the second merge block, to the right.
        assert_eq!(red(4), vec![4.0, 5.0, 12.0, 13.0]);
    }

    #[test]
    fn legacy_feature_extractor_type_is_accepted() {
        let v = json!({"feature_extractor_type": "CLIPFeatureExtractor", "size": 224, "crop_size": 224});
        let ip = ImageProcessor::from_config(Path::new("p.json"), &v).unwrap();
        assert_eq!(ip.kind(), ImageProcessorKind::Clip);
        let err =
            ImageProcessor::from_config(Path::new("p.json"), &json!({"size": 3})).unwrap_err();
        assert!(err.to_string().contains("image_processor_type"), "{err}");
    }

    #[test]
    fn unsupported_type_and_bad_resample_are_errors() {
        let v = json!({"image_processor_type": "FooImageProcessor", "size": 3});
        assert!(ImageProcessor::from_config(Path::new("p.json"), &v).is_err());
        let v = json!({"image_processor_type": "SiglipImageProcessor", "size": {"height": 4, "width": 4}, "resample": 9});
        let err = ImageProcessor::from_config(Path::new("p.json"), &v).unwrap_err();
        assert!(err.to_string().contains("resample"), "{err}");
    }
}
