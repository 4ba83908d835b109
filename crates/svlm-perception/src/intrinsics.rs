//! Camera intrinsics for photos without calibration: given by the user (per image or per folder), from the
//! EXIF 35mm-equivalent focal length when the photo has one, else the field of view a depth model predicted
//! (Depth Pro), else a horizontal field-of-view prior. Every estimate records where it came from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::ImageDecoder;
use serde::{Deserialize, Serialize};
use svlm_geometry::Intrinsics;

/// The diagonal of a 36 x 24 mm frame: the 35mm-equivalent focal length keeps the diagonal field of view.
pub const FULL_FRAME_DIAGONAL_MM: f64 = 43.266_615_305_567_87;

/// Default horizontal field of view of the prior, in degrees (typical of phone main cameras and compacts).
pub const DEFAULT_FOV_PRIOR_DEG: f64 = 60.0;

/// A camera as the user states it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CameraSpec {
    /// Pinhole parameters in pixels, for images of `width x height` when given (other sizes of the same
    /// aspect ratio are scaled); `cx`, `cy` default to the image centre, `fy` to `fx`.
    Pixels {
        fx: f64,
        #[serde(default)]
        fy: Option<f64>,
        #[serde(default)]
        cx: Option<f64>,
        #[serde(default)]
        cy: Option<f64>,
        #[serde(default)]
        width: Option<u32>,
        #[serde(default)]
        height: Option<u32>,
    },
    /// A horizontal field of view in degrees, square pixels, centred principal point.
    Fov { hfov_deg: f64 },
}

impl CameraSpec {
    /// The intrinsics of a `width x height` image.
    pub fn intrinsics(&self, width: u32, height: u32) -> Result<Intrinsics> {
        let k = match *self {
            CameraSpec::Fov { hfov_deg } => {
                if !(hfov_deg > 0.0 && hfov_deg < 180.0) {
                    bail!("hfov_deg {hfov_deg} must be in (0, 180)");
                }
                Intrinsics::from_horizontal_fov(width, height, hfov_deg)
            }
            CameraSpec::Pixels {
                fx,
                fy,
                cx,
                cy,
                width: ref_w,
                height: ref_h,
            } => {
                let (ref_w, ref_h) = match (ref_w, ref_h) {
                    (Some(w), Some(h)) => (w, h),
                    (None, None) => (width, height),
                    _ => bail!(
                        "give both `width` and `height` of the image the intrinsics are for, or neither"
                    ),
                };
                if ref_w == 0 || ref_h == 0 {
                    bail!("intrinsics for an empty {ref_w}x{ref_h} image");
                }
                let at_ref = Intrinsics {
                    fx,
                    fy: fy.unwrap_or(fx),
                    cx: cx.unwrap_or((ref_w as f64 - 1.0) / 2.0),
                    cy: cy.unwrap_or((ref_h as f64 - 1.0) / 2.0),
                    width: ref_w,
                    height: ref_h,
                };
                if (ref_w, ref_h) == (width, height) {
                    at_ref
                } else {
                    let sx = width as f64 / ref_w as f64;
                    let sy = height as f64 / ref_h as f64;
                    if (sx / sy - 1.0).abs() > 0.01 {
                        bail!(
                            "intrinsics given for {ref_w}x{ref_h} do not fit a {width}x{height} image (different aspect ratio)"
                        );
                    }
                    let mut k = at_ref.scaled(sx);
                    k.width = width;
                    k.height = height;
                    k
                }
            }
        };
        k.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(k)
    }
}

/// Where an estimate came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IntrinsicsSource {
    /// Given for this image.
    UserImage,
    /// Given for the whole folder.
    UserFolder,
    /// EXIF `FocalLengthIn35mmFilm`.
    Exif35mm { focal_length_35mm: f64 },
    /// The horizontal field of view the depth model predicted from the image (Depth Pro's FoV head).
    PredictedFov { hfov_deg: f64 },
    /// The field-of-view prior.
    FovPrior { hfov_deg: f64 },
}

/// Intrinsics with their source, recorded per image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntrinsicsEstimate {
    pub intrinsics: Intrinsics,
    pub source: IntrinsicsSource,
}

/// How intrinsics are chosen: per-image user values, then the folder's, then EXIF (when `use_exif`), then the
/// depth model's predicted field of view (when it has one), then the field-of-view prior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntrinsicsOptions {
    /// Keyed by the image's file name (as listed in the folder).
    #[serde(default)]
    pub per_image: BTreeMap<String, CameraSpec>,
    #[serde(default)]
    pub folder: Option<CameraSpec>,
    #[serde(default = "default_true")]
    pub use_exif: bool,
    #[serde(default = "default_prior")]
    pub fov_prior_deg: f64,
}

fn default_true() -> bool {
    true
}
fn default_prior() -> f64 {
    DEFAULT_FOV_PRIOR_DEG
}

impl Default for IntrinsicsOptions {
    fn default() -> Self {
        Self {
            per_image: BTreeMap::new(),
            folder: None,
            use_exif: true,
            fov_prior_deg: DEFAULT_FOV_PRIOR_DEG,
        }
    }
}

impl IntrinsicsOptions {
    /// Reads options from a JSON file, e.g.
    /// `{"folder": {"hfov_deg": 70}, "per_image": {"a.jpg": {"fx": 500, "width": 640, "height": 480}}}`.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Intrinsics of image `name` (`width x height`), with `exif` its raw EXIF block if any and `predicted_hfov_deg`
/// the horizontal field of view a depth model predicted for it, if any.
pub fn estimate_intrinsics(
    name: &str,
    width: u32,
    height: u32,
    exif: Option<&[u8]>,
    predicted_hfov_deg: Option<f64>,
    options: &IntrinsicsOptions,
) -> Result<IntrinsicsEstimate> {
    if let Some(spec) = options.per_image.get(name) {
        return Ok(IntrinsicsEstimate {
            intrinsics: spec
                .intrinsics(width, height)
                .with_context(|| format!("intrinsics given for {name}"))?,
            source: IntrinsicsSource::UserImage,
        });
    }
    if let Some(spec) = &options.folder {
        return Ok(IntrinsicsEstimate {
            intrinsics: spec
                .intrinsics(width, height)
                .context("intrinsics given for the folder")?,
            source: IntrinsicsSource::UserFolder,
        });
    }
    if options.use_exif
        && let Some(f35) = exif.and_then(exif_focal_length_35mm)
    {
        return Ok(IntrinsicsEstimate {
            intrinsics: intrinsics_from_35mm(width, height, f35)?,
            source: IntrinsicsSource::Exif35mm {
                focal_length_35mm: f35,
            },
        });
    }
    if let Some(hfov_deg) = predicted_hfov_deg {
        return Ok(IntrinsicsEstimate {
            intrinsics: CameraSpec::Fov { hfov_deg }
                .intrinsics(width, height)
                .context("the predicted field of view")?,
            source: IntrinsicsSource::PredictedFov { hfov_deg },
        });
    }
    Ok(IntrinsicsEstimate {
        intrinsics: CameraSpec::Fov {
            hfov_deg: options.fov_prior_deg,
        }
        .intrinsics(width, height)
        .context("the field-of-view prior")?,
        source: IntrinsicsSource::FovPrior {
            hfov_deg: options.fov_prior_deg,
        },
    })
}

/// Square pixels, centred principal point, and the diagonal field of view of a `f35` mm lens on a full
/// frame: `fx = f35 * diagonal_px / 43.27`.
pub fn intrinsics_from_35mm(width: u32, height: u32, f35: f64) -> Result<Intrinsics> {
    if !(f35.is_finite() && f35 > 0.0) {
        bail!("35mm-equivalent focal length {f35} must be > 0");
    }
    let diagonal = (width as f64).hypot(height as f64);
    let fx = f35 * diagonal / FULL_FRAME_DIAGONAL_MM;
    let k = Intrinsics {
        fx,
        fy: fx,
        cx: (width as f64 - 1.0) / 2.0,
        cy: (height as f64 - 1.0) / 2.0,
        width,
        height,
    };
    k.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(k)
}

/// The raw EXIF block (TIFF structure) of an image file, if its format carries one (JPEG, PNG, WebP, TIFF).
pub fn read_exif(path: &Path) -> Result<Option<Vec<u8>>> {
    crate::photo::open_decoder(path)?
        .exif_metadata()
        .with_context(|| format!("reading the EXIF of {}", path.display()))
}

const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_FOCAL_35MM: u16 = 0xA405;

/// `FocalLengthIn35mmFilm` (tag 0xA405 in the Exif IFD) from a raw EXIF block; `None` when absent, zero
/// (unknown) or the block is malformed.
pub fn exif_focal_length_35mm(exif: &[u8]) -> Option<f64> {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let little = match tiff.get(0..4)? {
        [0x49, 0x49, 42, 0] => true,
        [0x4d, 0x4d, 0, 42] => false,
        _ => return None,
    };
    let u16_at = |off: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(off..off + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |off: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(off..off + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    // (type, count, value-field offset) of `tag` in the IFD at `ifd`.
    let find = |ifd: usize, tag: u16| -> Option<(u16, u32, usize)> {
        let n = u16_at(ifd)? as usize;
        (0..n).find_map(|i| {
            let entry = ifd + 2 + 12 * i;
            (u16_at(entry)? == tag).then_some(())?;
            Some((u16_at(entry + 2)?, u32_at(entry + 4)?, entry + 8))
        })
    };
    let ifd0 = u32_at(4)? as usize;
    let (_, _, pointer) = find(ifd0, TAG_EXIF_IFD)?;
    let exif_ifd = u32_at(pointer)? as usize;
    let (kind, count, value) = find(exif_ifd, TAG_FOCAL_35MM)?;
    if count < 1 {
        return None;
    }
    // SHORT per the standard; some writers use LONG.
    let f = match kind {
        3 => f64::from(u16_at(value)?),
        4 => f64::from(u32_at(value)?),
        _ => return None,
    };
    (f > 0.0).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal little- or big-endian EXIF block: IFD0 with an Exif IFD pointer, the Exif IFD with tag
    /// 0xA405 = `f35` (SHORT).
    fn exif_block(little: bool, f35: u16) -> Vec<u8> {
        let w16 = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let w32 = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend_from_slice(if little { b"II" } else { b"MM" });
        b.extend_from_slice(&w16(42));
        b.extend_from_slice(&w32(8));
        // IFD0 at 8: one entry (Exif pointer, LONG) -> Exif IFD at 26.
        b.extend_from_slice(&w16(1));
        b.extend_from_slice(&w16(TAG_EXIF_IFD));
        b.extend_from_slice(&w16(4));
        b.extend_from_slice(&w32(1));
        b.extend_from_slice(&w32(26));
        b.extend_from_slice(&w32(0));
        assert_eq!(b.len(), 26);
        // Exif IFD: two entries, the second is the focal length.
        b.extend_from_slice(&w16(2));
        b.extend_from_slice(&w16(0x9000));
        b.extend_from_slice(&w16(7));
        b.extend_from_slice(&w32(4));
        b.extend_from_slice(b"0232");
        b.extend_from_slice(&w16(TAG_FOCAL_35MM));
        b.extend_from_slice(&w16(3));
        b.extend_from_slice(&w32(1));
        b.extend_from_slice(&w16(f35));
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&w32(0));
        b
    }

    #[test]
    fn reads_the_35mm_focal_length_in_both_byte_orders() {
        assert_eq!(exif_focal_length_35mm(&exif_block(true, 26)), Some(26.0));
        assert_eq!(exif_focal_length_35mm(&exif_block(false, 28)), Some(28.0));
        let mut prefixed = b"Exif\0\0".to_vec();
        prefixed.extend(exif_block(true, 24));
        assert_eq!(exif_focal_length_35mm(&prefixed), Some(24.0));
    }

    #[test]
    fn zero_truncated_or_garbage_exif_gives_none() {
        assert_eq!(exif_focal_length_35mm(&exif_block(true, 0)), None);
        let block = exif_block(true, 26);
        assert_eq!(exif_focal_length_35mm(&block[..30]), None);
        assert_eq!(exif_focal_length_35mm(b"not exif at all"), None);
        assert_eq!(exif_focal_length_35mm(&[]), None);
    }

    #[test]
    fn full_frame_35mm_focal_maps_to_the_sensor_width() {
        // A 3:2 image's diagonal FOV equals a 36x24 frame's: fx = f * width / 36.
        let k = intrinsics_from_35mm(3600, 2400, 50.0).unwrap();
        assert!((k.fx - 5000.0).abs() < 1e-6, "{}", k.fx);
        assert_eq!(k.fx, k.fy);
        assert_eq!((k.cx, k.cy), (1799.5, 1199.5));
        assert!(intrinsics_from_35mm(10, 10, 0.0).is_err());
    }

    #[test]
    fn precedence_is_image_folder_exif_prior() {
        let exif = exif_block(true, 26);
        let mut options = IntrinsicsOptions::default();
        let e = estimate_intrinsics("a.jpg", 640, 480, Some(&exif), None, &options).unwrap();
        assert_eq!(
            e.source,
            IntrinsicsSource::Exif35mm {
                focal_length_35mm: 26.0
            }
        );
        let e = estimate_intrinsics("a.jpg", 640, 480, None, None, &options).unwrap();
        assert_eq!(e.source, IntrinsicsSource::FovPrior { hfov_deg: 60.0 });
        assert!((e.intrinsics.horizontal_fov_deg() - 60.0).abs() < 1e-9);
        options.use_exif = false;
        let e = estimate_intrinsics("a.jpg", 640, 480, Some(&exif), None, &options).unwrap();
        assert!(matches!(e.source, IntrinsicsSource::FovPrior { .. }));
        options.folder = Some(CameraSpec::Fov { hfov_deg: 90.0 });
        let e = estimate_intrinsics("a.jpg", 640, 480, Some(&exif), None, &options).unwrap();
        assert_eq!(e.source, IntrinsicsSource::UserFolder);
        assert!((e.intrinsics.fx - 320.0).abs() < 1e-9);
        options.per_image.insert(
            "a.jpg".into(),
            CameraSpec::Pixels {
                fx: 500.0,
                fy: None,
                cx: Some(300.0),
                cy: None,
                width: None,
                height: None,
            },
        );
        let e = estimate_intrinsics("a.jpg", 640, 480, Some(&exif), None, &options).unwrap();
        assert_eq!(e.source, IntrinsicsSource::UserImage);
        assert_eq!(
            (
                e.intrinsics.fx,
                e.intrinsics.fy,
                e.intrinsics.cx,
                e.intrinsics.cy
            ),
            (500.0, 500.0, 300.0, 239.5)
        );
        let e = estimate_intrinsics("b.jpg", 640, 480, None, None, &options).unwrap();
        assert_eq!(e.source, IntrinsicsSource::UserFolder);
    }

    #[test]
    fn a_predicted_field_of_view_comes_after_the_user_and_exif() {
        let exif = exif_block(true, 26);
        let mut options = IntrinsicsOptions::default();
        // No user values, no EXIF: the prediction, not the prior.
        let e = estimate_intrinsics("a.jpg", 640, 480, None, Some(90.0), &options).unwrap();
        assert_eq!(e.source, IntrinsicsSource::PredictedFov { hfov_deg: 90.0 });
        assert!((e.intrinsics.fx - 320.0).abs() < 1e-9);
        assert_eq!((e.intrinsics.cx, e.intrinsics.cy), (319.5, 239.5));
        // EXIF wins, unless it is switched off.
        let e = estimate_intrinsics("a.jpg", 640, 480, Some(&exif), Some(90.0), &options).unwrap();
        assert!(matches!(e.source, IntrinsicsSource::Exif35mm { .. }));
        options.use_exif = false;
        let e = estimate_intrinsics("a.jpg", 640, 480, Some(&exif), Some(90.0), &options).unwrap();
        assert!(matches!(e.source, IntrinsicsSource::PredictedFov { .. }));
        // User values win over everything.
        options.folder = Some(CameraSpec::Fov { hfov_deg: 60.0 });
        let e = estimate_intrinsics("a.jpg", 640, 480, None, Some(90.0), &options).unwrap();
        assert_eq!(e.source, IntrinsicsSource::UserFolder);
        options.per_image.insert(
            "a.jpg".into(),
            CameraSpec::Pixels {
                fx: 500.0,
                fy: None,
                cx: None,
                cy: None,
                width: None,
                height: None,
            },
        );
        let e = estimate_intrinsics("a.jpg", 640, 480, None, Some(90.0), &options).unwrap();
        assert_eq!(e.source, IntrinsicsSource::UserImage);
        assert_eq!(e.intrinsics.fx, 500.0);
        // An impossible prediction is an error, not a silent fallback.
        let options = IntrinsicsOptions::default();
        assert!(estimate_intrinsics("a.jpg", 640, 480, None, Some(180.0), &options).is_err());
        let json = serde_json::to_value(IntrinsicsSource::PredictedFov { hfov_deg: 42.0 }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "predicted_fov", "hfov_deg": 42.0})
        );
    }

    #[test]
    fn pixel_intrinsics_scale_to_the_image_size() {
        let spec = CameraSpec::Pixels {
            fx: 1000.0,
            fy: Some(1000.0),
            cx: Some(639.5),
            cy: Some(479.5),
            width: Some(1280),
            height: Some(960),
        };
        let k = spec.intrinsics(640, 480).unwrap();
        assert_eq!(
            (k.fx, k.cx, k.cy, k.width, k.height),
            (500.0, 319.5, 239.5, 640, 480)
        );
        assert!(spec.intrinsics(640, 640).is_err());
    }

    #[test]
    fn options_parse_from_json() {
        let json = r#"{"folder": {"hfov_deg": 70}, "per_image": {"a.jpg": {"fx": 500, "width": 640, "height": 480}}}"#;
        let o: IntrinsicsOptions = serde_json::from_str(json).unwrap();
        assert_eq!(o.folder, Some(CameraSpec::Fov { hfov_deg: 70.0 }));
        assert!(o.use_exif);
        assert_eq!(o.fov_prior_deg, DEFAULT_FOV_PRIOR_DEG);
        assert!(matches!(o.per_image["a.jpg"], CameraSpec::Pixels { fx, .. } if fx == 500.0));
        assert!(
            CameraSpec::Fov { hfov_deg: 180.0 }
                .intrinsics(10, 10)
                .is_err()
        );
    }

    #[test]
    fn png_without_exif_reads_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        image::RgbImage::new(4, 3).save(&path).unwrap();
        assert_eq!(read_exif(&path).unwrap(), None);
        assert!(read_exif(&dir.path().join("absent.png")).is_err());
    }
}
