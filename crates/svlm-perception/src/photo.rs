//! A photo file to metric depth + intrinsics, with a record of how they were made.

use std::path::Path;

use anyhow::{Context, Result};
use image::{DynamicImage, ImageDecoder, RgbImage};
use serde::{Deserialize, Serialize};
use svlm_geometry::DepthMap;

use crate::depth::DepthAnything;
use crate::depth_pro::DepthPro;
use crate::intrinsics::{
    IntrinsicsEstimate, IntrinsicsOptions, IntrinsicsSource, estimate_intrinsics,
};

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
    /// The depth range of Depth Anything's metric head (Depth Pro has none).
    pub max_depth: Option<f64>,
    /// The model's input `(height, width)` after resizing (before any `do_pad` padding).
    pub processed_size: (usize, usize),
    /// The photo's upright `(width, height)`, which the depth map has.
    pub image_size: (u32, u32),
    pub exif_orientation: u8,
    /// The horizontal field of view the model predicted (Depth Pro).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_hfov_deg: Option<f64>,
    /// The focal length in pixels the model's depth was scaled with (Depth Pro: from its field of view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth_focal_px: Option<f64>,
    /// The factor the depth was multiplied by to match intrinsics from elsewhere (user values, EXIF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth_rescaled_by: Option<f64>,
}

/// Metric depth and intrinsics of one photo.
pub struct PhotoDepth {
    pub image: RgbImage,
    pub depth: DepthMap,
    pub intrinsics: IntrinsicsEstimate,
    pub record: DepthRecord,
}

/// The intrinsics of a `width x height` photo file: user values keyed by its file name, its EXIF, the field of
/// view a depth model predicted for it, or the prior, as `options` say.
pub fn photo_intrinsics(
    path: &Path,
    photo: &Photo,
    width: u32,
    height: u32,
    predicted_hfov_deg: Option<f64>,
    options: &IntrinsicsOptions,
) -> Result<IntrinsicsEstimate> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    estimate_intrinsics(
        &name,
        width,
        height,
        photo.exif.as_deref(),
        predicted_hfov_deg,
        options,
    )
}

/// Depth Pro's metric depth is `focal / (width * inverse depth)`: proportional to the focal length it was scaled
/// with. When the intrinsics come from elsewhere (user values, EXIF, the prior), the depth is rescaled to their
/// `fx` so that depth and intrinsics describe one camera, as Depth Pro does when given a focal length. Returns the
/// factor applied; `None` (nothing done) when the depth does not depend on a focal length or already has it.
pub fn match_depth_to_intrinsics(
    depth: &mut DepthMap,
    depth_focal_px: Option<f64>,
    intrinsics: &IntrinsicsEstimate,
) -> Option<f64> {
    let focal = depth_focal_px?;
    if matches!(intrinsics.source, IntrinsicsSource::PredictedFov { .. })
        || !(focal.is_finite() && focal > 0.0)
    {
        return None;
    }
    let factor = intrinsics.intrinsics.fx / focal;
    for d in &mut depth.data {
        *d = (f64::from(*d) * factor) as f32;
    }
    Some(factor)
}

impl DepthAnything {
    /// Reads `path`, predicts metric depth at its size and estimates its intrinsics (user values keyed by
    /// the file name, EXIF, or the prior, per `options`).
    pub fn lift_photo(&self, path: &Path, options: &IntrinsicsOptions) -> Result<PhotoDepth> {
        let photo = load_photo(path)?;
        let depth = self
            .predict(&photo.image)
            .with_context(|| format!("depth of {}", path.display()))?;
        let intrinsics = photo_intrinsics(path, &photo, depth.width, depth.height, None, options)
            .with_context(|| format!("intrinsics of {}", path.display()))?;
        let processed_size = self
            .processor
            .resize_output_size(photo.image.height() as usize, photo.image.width() as usize);
        let record = DepthRecord {
            model: self.dir.display().to_string(),
            depth_estimation_type: self.config.depth_estimation_type.clone(),
            max_depth: Some(self.config.max_depth),
            processed_size,
            image_size: (depth.width, depth.height),
            exif_orientation: photo.orientation,
            predicted_hfov_deg: None,
            depth_focal_px: None,
            depth_rescaled_by: None,
        };
        Ok(PhotoDepth {
            image: photo.image,
            depth,
            intrinsics,
            record,
        })
    }
}

impl DepthPro {
    /// Reads `path`, predicts metric depth and the field of view at its upright size, and takes the intrinsics
    /// from user values or EXIF when there are some (the depth then rescaled to their focal length, see
    /// [`match_depth_to_intrinsics`]), else from the predicted field of view.
    pub fn lift_photo(&self, path: &Path, options: &IntrinsicsOptions) -> Result<PhotoDepth> {
        let photo = load_photo(path)?;
        let prediction = self
            .predict(&photo.image)
            .with_context(|| format!("depth of {}", path.display()))?;
        let depth_focal_px = prediction.depth_focal_px(prediction.depth.width);
        let mut depth = prediction.depth;
        let intrinsics = photo_intrinsics(
            path,
            &photo,
            depth.width,
            depth.height,
            prediction.field_of_view_deg,
            options,
        )
        .with_context(|| format!("intrinsics of {}", path.display()))?;
        let depth_rescaled_by = match_depth_to_intrinsics(&mut depth, depth_focal_px, &intrinsics);
        let (h, w) = (photo.image.height() as usize, photo.image.width() as usize);
        let record = DepthRecord {
            model: self.dir.display().to_string(),
            depth_estimation_type: "metric".into(),
            max_depth: None,
            processed_size: self.processor.output_size(h, w),
            image_size: (depth.width, depth.height),
            exif_orientation: photo.orientation,
            predicted_hfov_deg: prediction.field_of_view_deg,
            depth_focal_px,
            depth_rescaled_by,
        };
        Ok(PhotoDepth {
            image: photo.image,
            depth,
            intrinsics,
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intrinsics::CameraSpec;

    #[test]
    fn depth_follows_the_focal_length_of_the_intrinsics() {
        let fov = |hfov_deg: f64, source: IntrinsicsSource| IntrinsicsEstimate {
            intrinsics: CameraSpec::Fov { hfov_deg }.intrinsics(100, 50).unwrap(),
            source,
        };
        let mut depth = DepthMap::new(2, 1, vec![1.0, 2.0]).unwrap();
        // Intrinsics from the prediction the depth was made with: unchanged.
        let predicted = fov(90.0, IntrinsicsSource::PredictedFov { hfov_deg: 90.0 });
        assert_eq!(
            match_depth_to_intrinsics(&mut depth, Some(50.0), &predicted),
            None
        );
        assert_eq!(depth.data, vec![1.0, 2.0]);
        // A depth that does not scale with the focal length (Depth Anything): unchanged.
        assert_eq!(
            match_depth_to_intrinsics(&mut depth, None, &fov(60.0, IntrinsicsSource::UserFolder)),
            None
        );
        // User intrinsics with fx = 100 for a depth made with f = 50: twice as far.
        let user = fov(2.0 * 26.565_051_177_077_99, IntrinsicsSource::UserImage);
        let factor = match_depth_to_intrinsics(&mut depth, Some(50.0), &user).unwrap();
        assert!((factor - 2.0).abs() < 1e-9, "{factor}");
        assert!((depth.data[0] - 2.0).abs() < 1e-6 && (depth.data[1] - 4.0).abs() < 1e-6);
    }
}
