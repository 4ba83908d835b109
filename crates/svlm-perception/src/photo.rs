//! A photo file to metric depth + intrinsics, with a record of how they were made.

use std::path::Path;

use anyhow::{Context, Result};
use image::{DynamicImage, ImageDecoder, RgbImage};
use serde::{Deserialize, Serialize};
use svlm_geometry::DepthMap;

use crate::depth::DepthAnything;
use crate::intrinsics::{IntrinsicsEstimate, IntrinsicsOptions, estimate_intrinsics};

/// A decoded photo, turned upright by its EXIF orientation, with its raw EXIF block.
pub struct Photo {
    pub image: RgbImage,
    pub exif: Option<Vec<u8>>,
    /// The EXIF orientation code that was applied (1 = none).
    pub orientation: u8,
}

/// The image decoder of a file, its format guessed from the content.
pub(crate) fn open_decoder(path: &Path) -> Result<impl image::ImageDecoder> {
    image::ImageReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?
        .into_decoder()
        .with_context(|| format!("decoding {}", path.display()))
}

/// Reads a photo (JPEG, PNG, TIFF, WebP per the `image` features), applying its EXIF orientation as
/// viewers do, so that pixels, depth and intrinsics describe the upright picture.
pub fn load_photo(path: &Path) -> Result<Photo> {
    let mut decoder = open_decoder(path)?;
    let exif = decoder
        .exif_metadata()
        .with_context(|| format!("reading the EXIF of {}", path.display()))?;
    let orientation = decoder
        .orientation()
        .with_context(|| format!("reading the orientation of {}", path.display()))?;
    let mut image = DynamicImage::from_decoder(decoder)
        .with_context(|| format!("decoding {}", path.display()))?;
    image.apply_orientation(orientation);
    Ok(Photo {
        image: image.to_rgb8(),
        exif,
        orientation: orientation.to_exif(),
    })
}

/// How a depth map was produced, kept with each photo's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthRecord {
    /// The model folder (a hub id resolves to its cache snapshot).
    pub model: String,
    pub depth_estimation_type: String,
    pub max_depth: f64,
    /// The model's input `(height, width)` after resizing (before any `do_pad` padding).
    pub processed_size: (usize, usize),
    /// The photo's upright `(width, height)`, which the depth map has.
    pub image_size: (u32, u32),
    pub exif_orientation: u8,
}

/// Metric depth and intrinsics of one photo.
pub struct PhotoDepth {
    pub image: RgbImage,
    pub depth: DepthMap,
    pub intrinsics: IntrinsicsEstimate,
    pub record: DepthRecord,
}

/// The intrinsics of a `width x height` photo file: user values keyed by its file name, its EXIF, or the prior,
/// as `options` say.
pub fn photo_intrinsics(
    path: &Path,
    photo: &Photo,
    width: u32,
    height: u32,
    options: &IntrinsicsOptions,
) -> Result<IntrinsicsEstimate> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    estimate_intrinsics(&name, width, height, photo.exif.as_deref(), options)
}

impl DepthAnything {
    /// Reads `path`, predicts metric depth at its size and estimates its intrinsics (user values keyed by
    /// the file name, EXIF, or the prior, per `options`).
    pub fn lift_photo(&self, path: &Path, options: &IntrinsicsOptions) -> Result<PhotoDepth> {
        let photo = load_photo(path)?;
        let depth = self
            .predict(&photo.image)
            .with_context(|| format!("depth of {}", path.display()))?;
        let intrinsics = photo_intrinsics(path, &photo, depth.width, depth.height, options)
            .with_context(|| format!("intrinsics of {}", path.display()))?;
        let processed_size = self
            .processor
            .resize_output_size(photo.image.height() as usize, photo.image.width() as usize);
        let record = DepthRecord {
            model: self.dir.display().to_string(),
            depth_estimation_type: self.config.depth_estimation_type.clone(),
            max_depth: self.config.max_depth,
            processed_size,
            image_size: (depth.width, depth.height),
            exif_orientation: photo.orientation,
        };
        Ok(PhotoDepth {
            image: photo.image,
            depth,
            intrinsics,
            record,
        })
    }
}
