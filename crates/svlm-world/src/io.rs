//! The RGB-D folder format of `docs/ARCHITECTURE.md`:
//!
//! ```text
//! DIR/intrinsics.json          {"fx","fy","cx","cy","width","height"}; <stem>.intrinsics.json overrides
//! DIR/<stem>.png | .jpg        RGB
//! DIR/<stem>.depth.png         16-bit depth in millimetres (0 = invalid); or .depth.npy / .depth.tiff (f32 metres)
//! DIR/<stem>.instances.png     16-bit instance ids, 0 = background
//! DIR/<stem>.objects.json      {"objects":[{"id":1,"name":"red cube", ...optional exact truth}], "camera": ...}
//! DIR/annotations.json         COCO-style boxes / masks (used for frames without instances + objects files)
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ImageEncoder, RgbImage};
use nalgebra::{Isometry3, Matrix3, Matrix4, Rotation3, Translation3, UnitQuaternion, Vector3};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use svlm_geometry::{DepthMap, Intrinsics};

use crate::coco::CocoFile;
use crate::error::FrameError;
use crate::render::Rendered;
use crate::scene::{Floor, Light, ObjectTruth, Scene, Wall};

pub const FOLDER_INTRINSICS: &str = "intrinsics.json";
pub const COCO_ANNOTATIONS: &str = "annotations.json";
/// Largest depth a 16-bit millimetre PNG holds; farther pixels are written as 0 (invalid).
pub const MAX_PNG_DEPTH_M: f32 = 65.535;

/// One object of a frame: its id in the instance image, its name, and what else is known.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameObject {
    pub id: u16,
    pub name: String,
    /// `[x, y, w, h]` in pixels when the source gives a box (COCO).
    pub bbox: Option<[f64; 4]>,
    /// Exact truth when the frame comes from the procedural world.
    pub truth: Option<ObjectTruth>,
}

/// One RGB-D frame read back from a folder.
#[derive(Debug, Clone)]
pub struct Frame {
    pub stem: String,
    pub rgb: RgbImage,
    /// Z-depth in metres; invalid pixels (0, NaN, inf, negative) are kept as they are and counted.
    pub depth: DepthMap,
    pub intrinsics: Intrinsics,
    /// Row-major instance ids (0 = background) when the folder has masks.
    pub instances: Option<Vec<u16>>,
    pub objects: Vec<FrameObject>,
    /// Camera pose when known (procedural frames).
    pub world_from_camera: Option<Isometry3<f64>>,
    /// Pixels with invalid depth.
    pub invalid_depth: usize,
    /// Counted oddities worth logging (e.g. overlapping COCO masks).
    pub notes: Vec<String>,
}

/// Writes `path` atomically and durably (`svlm_io::write_atomic_with`).
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> std::io::Result<()>,
) -> Result<(), FrameError> {
    svlm_io::write_atomic_with(path, write).map_err(|e| FrameError::io(path, e))
}

fn png_error(e: image::ImageError) -> std::io::Error {
    std::io::Error::other(e)
}

fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    bytes: &[u8],
    color: image::ExtendedColorType,
) -> Result<(), FrameError> {
    write_atomic(path, |w| {
        PngEncoder::new_with_quality(w, CompressionType::Fast, FilterType::Adaptive)
            .write_image(bytes, width, height, color)
            .map_err(png_error)
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FrameError> {
    let text = serde_json::to_vec_pretty(value).map_err(|source| FrameError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, |w| w.write_all(&text))
}

/// Writes `DIR/intrinsics.json`.
pub fn write_folder_intrinsics(dir: &Path, intrinsics: &Intrinsics) -> Result<(), FrameError> {
    std::fs::create_dir_all(dir).map_err(|e| FrameError::io(dir, e))?;
    write_json(&dir.join(FOLDER_INTRINSICS), intrinsics)
}

fn read_intrinsics_file(path: &Path) -> Result<Intrinsics, FrameError> {
    let text = std::fs::read_to_string(path).map_err(|e| FrameError::io(path, e))?;
    parse_intrinsics(&text, path)
}

/// The text of an `intrinsics.json`, checked ([`Intrinsics::validate`]); errors name `origin`.
pub fn parse_intrinsics(text: &str, origin: &Path) -> Result<Intrinsics, FrameError> {
    let k: Intrinsics = serde_json::from_str(text).map_err(|source| FrameError::Json {
        path: origin.to_path_buf(),
        source,
    })?;
    k.validate()
        .map_err(|e| FrameError::invalid(origin, e.to_string()))?;
    Ok(k)
}

/// `DIR/intrinsics.json` if present.
pub fn read_folder_intrinsics(dir: &Path) -> Result<Option<Intrinsics>, FrameError> {
    let path = dir.join(FOLDER_INTRINSICS);
    if !path.exists() {
        return Ok(None);
    }
    read_intrinsics_file(&path).map(Some)
}

#[derive(Serialize, Deserialize)]
struct CameraJson {
    intrinsics: Intrinsics,
    /// Row-major 4x4 matrix mapping camera-frame points to the world.
    world_from_camera: [[f64; 4]; 4],
}

#[derive(Serialize)]
struct ObjectsJson<'a> {
    objects: &'a [ObjectTruth],
    camera: CameraJson,
    /// Row-major 4x4 matrix of the canonical (gravity) frame of `docs/ARCHITECTURE.md`.
    canonical_from_world: [[f64; 4]; 4],
    seed: u64,
    floor: Floor,
    wall: Option<Wall>,
    light: Light,
}

fn matrix_rows(iso: &Isometry3<f64>) -> [[f64; 4]; 4] {
    let m = iso.to_homogeneous();
    std::array::from_fn(|r| std::array::from_fn(|c| m[(r, c)]))
}

fn isometry_from_rows(rows: &[[f64; 4]; 4]) -> Result<Isometry3<f64>, String> {
    let m = Matrix4::from_fn(|r, c| rows[r][c]);
    if m.iter().any(|x| !x.is_finite()) {
        return Err("pose matrix has non-finite entries".into());
    }
    let r: Matrix3<f64> = m.fixed_view::<3, 3>(0, 0).into_owned();
    if (r.transpose() * r - Matrix3::identity()).abs().max() > 1e-6
        || (r.determinant() - 1.0).abs() > 1e-6
    {
        return Err("pose matrix is not a rigid transform".into());
    }
    let rotation = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(r));
    let translation = Translation3::from(Vector3::new(m[(0, 3)], m[(1, 3)], m[(2, 3)]));
    Ok(Isometry3::from_parts(translation, rotation))
}

fn depth_to_millimetres(depth: &DepthMap) -> Vec<u16> {
    depth
        .data
        .iter()
        .map(|&z| {
            if z.is_finite() && z > 0.0 && z <= MAX_PNG_DEPTH_M {
                (z * 1000.0).round() as u16
            } else {
                0
            }
        })
        .collect()
}

fn u16_bytes(values: &[u16]) -> Vec<u8> {
    // PNG stores 16-bit samples big-endian; image's encoder takes native-endian u16 bytes.
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Writes one frame: RGB PNG, 16-bit depth PNG (mm), 16-bit instance PNG, objects.json with the exact truth, and
/// `<stem>.intrinsics.json` unless `DIR/intrinsics.json` already holds the same intrinsics. Each file is atomic.
pub fn write_frame(
    dir: &Path,
    stem: &str,
    rendered: &Rendered,
    scene: &Scene,
) -> Result<(), FrameError> {
    std::fs::create_dir_all(dir).map_err(|e| FrameError::io(dir, e))?;
    let (w, h) = (rendered.width, rendered.height);
    let k = scene.camera.intrinsics;
    if (k.width, k.height) != (w, h) {
        return Err(FrameError::SizeMismatch {
            path: dir.join(format!("{stem}.png")),
            found_width: w,
            found_height: h,
            expected_width: k.width,
            expected_height: k.height,
            reason: "rendered image vs scene intrinsics".into(),
        });
    }
    write_png(
        &dir.join(format!("{stem}.png")),
        w,
        h,
        rendered.rgb.as_raw(),
        image::ExtendedColorType::Rgb8,
    )?;
    let depth_mm = depth_to_millimetres(&rendered.depth);
    write_png(
        &dir.join(format!("{stem}.depth.png")),
        w,
        h,
        &u16_bytes(&depth_mm),
        image::ExtendedColorType::L16,
    )?;
    write_png(
        &dir.join(format!("{stem}.instances.png")),
        w,
        h,
        &u16_bytes(&rendered.instances),
        image::ExtendedColorType::L16,
    )?;
    let objects = ObjectsJson {
        objects: &scene.objects,
        camera: CameraJson {
            intrinsics: k,
            world_from_camera: matrix_rows(&scene.camera.world_from_camera),
        },
        canonical_from_world: matrix_rows(&scene.canonical_from_world()),
        seed: scene.seed,
        floor: scene.floor,
        wall: scene.wall,
        light: scene.light,
    };
    write_json(&dir.join(format!("{stem}.objects.json")), &objects)?;
    let folder = read_folder_intrinsics(dir)?;
    if folder != Some(k) {
        write_json(&dir.join(format!("{stem}.intrinsics.json")), &k)?;
    }
    Ok(())
}

const RGB_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
const SIDECAR_SUFFIXES: [&str; 3] = [".depth", ".instances", ".objects"];

/// Stems of the frames in `dir` (files `<stem>.png|.jpg|.jpeg` that are not depth/instance sidecars), sorted.
pub fn list_frames(dir: &Path) -> Result<Vec<String>, FrameError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FrameError::io(dir, e))?;
    let mut stems = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FrameError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if stem.is_empty() || !RGB_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            continue;
        }
        if SIDECAR_SUFFIXES.iter().any(|s| stem.ends_with(s)) {
            continue;
        }
        stems.push(stem.to_string());
    }
    stems.sort();
    stems.dedup();
    Ok(stems)
}

/// Reads one frame; see [`FolderReader`] to read many without re-reading the folder files.
pub fn read_frame(dir: &Path, stem: &str) -> Result<Frame, FrameError> {
    FolderReader::open(dir)?.read(stem)
}

/// An RGB-D folder with its shared files (intrinsics, COCO annotations) read once.
#[derive(Debug, Clone)]
pub struct FolderReader {
    pub dir: PathBuf,
    pub intrinsics: Option<Intrinsics>,
    pub coco: Option<CocoFile>,
}

impl FolderReader {
    pub fn open(dir: &Path) -> Result<Self, FrameError> {
        if !dir.is_dir() {
            return Err(FrameError::Missing {
                path: dir.to_path_buf(),
                what: "RGB-D folder".into(),
            });
        }
        let intrinsics = read_folder_intrinsics(dir)?;
        let coco_path = dir.join(COCO_ANNOTATIONS);
        let coco = if coco_path.exists() {
            Some(CocoFile::read(&coco_path)?)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            intrinsics,
            coco,
        })
    }

    pub fn stems(&self) -> Result<Vec<String>, FrameError> {
        list_frames(&self.dir)
    }

    pub fn read(&self, stem: &str) -> Result<Frame, FrameError> {
        let dir = &self.dir;
        let rgb_path = RGB_EXTENSIONS
            .iter()
            .map(|ext| dir.join(format!("{stem}.{ext}")))
            .find(|p| p.exists())
            .ok_or_else(|| FrameError::Missing {
                path: dir.join(format!("{stem}.png")),
                what: "RGB image (.png/.jpg)".into(),
            })?;
        let rgb = decode_image(&rgb_path)?.to_rgb8();
        let (width, height) = rgb.dimensions();

        let stem_intrinsics = dir.join(format!("{stem}.intrinsics.json"));
        let intrinsics = if stem_intrinsics.exists() {
            read_intrinsics_file(&stem_intrinsics)?
        } else {
            self.intrinsics.ok_or_else(|| FrameError::Missing {
                path: dir.join(FOLDER_INTRINSICS),
                what: format!("camera intrinsics for frame {stem:?} (neither {stem}.intrinsics.json nor {FOLDER_INTRINSICS})"),
            })?
        };
        if (intrinsics.width, intrinsics.height) != (width, height) {
            return Err(FrameError::SizeMismatch {
                path: rgb_path,
                found_width: width,
                found_height: height,
                expected_width: intrinsics.width,
                expected_height: intrinsics.height,
                reason: "RGB image vs intrinsics".into(),
            });
        }

        let (depth_path, depth) = self.read_depth(stem)?;
        check_size(
            &depth_path,
            (depth.width, depth.height),
            (width, height),
            "depth vs RGB image",
        )?;
        let invalid_depth = depth
            .data
            .iter()
            .filter(|z| !(z.is_finite() && **z > 0.0))
            .count();
        if invalid_depth == depth.data.len() {
            return Err(FrameError::invalid(
                &depth_path,
                "no valid depth pixel (all 0, NaN, inf or negative)",
            ));
        }

        let instances_path = dir.join(format!("{stem}.instances.png"));
        let mut instances = if instances_path.exists() {
            Some(read_instances_file(&instances_path, (width, height))?)
        } else {
            None
        };

        let mut notes = Vec::new();
        let objects_path = dir.join(format!("{stem}.objects.json"));
        let (mut objects, world_from_camera) = if objects_path.exists() {
            read_objects(&objects_path)?
        } else {
            (Vec::new(), None)
        };
        if !objects_path.exists()
            && instances.is_none()
            && let Some(coco) = &self.coco
            && let Some(image) = coco.image_by_stem(stem)
        {
            check_size(
                &coco.path,
                (image.width, image.height),
                (width, height),
                &format!("COCO image {:?} vs RGB", image.file_name),
            )?;
            let (coco_objects, coco_instances, overlaps) = coco.objects_for(image)?;
            if overlaps > 0 {
                notes.push(format!(
                    "{overlaps} pixels claimed by two COCO masks kept their first object"
                ));
            }
            objects = coco_objects;
            instances = coco_instances;
        }
        Ok(Frame {
            stem: stem.to_string(),
            rgb,
            depth,
            intrinsics,
            instances,
            objects,
            world_from_camera,
            invalid_depth,
            notes,
        })
    }

    fn read_depth(&self, stem: &str) -> Result<(PathBuf, DepthMap), FrameError> {
        read_depth_file(&self.dir, stem)
    }
}

fn dim(path: &Path, n: usize) -> Result<u32, FrameError> {
    u32::try_from(n).map_err(|_| FrameError::invalid(path, format!("dimension {n} too large")))
}

fn check_size(
    path: &Path,
    found: (u32, u32),
    expected: (u32, u32),
    reason: &str,
) -> Result<(), FrameError> {
    if found != expected {
        return Err(FrameError::SizeMismatch {
            path: path.to_path_buf(),
            found_width: found.0,
            found_height: found.1,
            expected_width: expected.0,
            expected_height: expected.1,
            reason: reason.to_string(),
        });
    }
    Ok(())
}

fn decode_image(path: &Path) -> Result<DynamicImage, FrameError> {
    let reader = image::ImageReader::open(path).map_err(|e| FrameError::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| FrameError::io(path, e))?;
    reader.decode().map_err(|source| FrameError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Depth in metres from the bytes of a 16-bit grayscale PNG in millimetres (0 = invalid); errors name `origin`.
pub fn depth_from_png(bytes: &[u8], origin: &Path) -> Result<DepthMap, FrameError> {
    let image = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| FrameError::io(origin, e))?
        .decode()
        .map_err(|source| FrameError::Image {
            path: origin.to_path_buf(),
            source,
        })?;
    let (width, height) = (image.width(), image.height());
    let DynamicImage::ImageLuma16(buf) = image else {
        return Err(FrameError::invalid(
            origin,
            format!(
                "depth PNG must be 16-bit grayscale millimetres, found {:?}",
                image.color()
            ),
        ));
    };
    let data = buf
        .into_raw()
        .into_iter()
        .map(|mm| mm as f32 / 1000.0)
        .collect();
    Ok(DepthMap {
        width,
        height,
        data,
    })
}

/// Depth in metres from the bytes of a single-channel 32/64-bit float TIFF; errors name `origin`.
pub fn depth_from_tiff(bytes: &[u8], origin: &Path) -> Result<DepthMap, FrameError> {
    use tiff::decoder::{Decoder, DecodingResult};
    let path = origin;
    let tiff_err =
        |e: tiff::TiffError| FrameError::invalid(path, format!("cannot decode TIFF: {e}"));
    let mut decoder = Decoder::new(std::io::Cursor::new(bytes)).map_err(tiff_err)?;
    let (width, height) = decoder.dimensions().map_err(tiff_err)?;
    let color = decoder.colortype().map_err(tiff_err)?;
    if !matches!(color, tiff::ColorType::Gray(_)) {
        return Err(FrameError::invalid(
            path,
            format!("depth TIFF must be single-channel, found {color:?}"),
        ));
    }
    let data: Vec<f32> = match decoder.read_image().map_err(tiff_err)? {
        DecodingResult::F32(v) => v,
        DecodingResult::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        _ => {
            return Err(FrameError::invalid(
                path,
                "depth TIFF must hold 32/64-bit floats (metres)",
            ));
        }
    };
    if data.len() != width as usize * height as usize {
        return Err(FrameError::invalid(
            path,
            format!("TIFF holds {} samples for {width}x{height}", data.len()),
        ));
    }
    Ok(DepthMap {
        width,
        height,
        data,
    })
}

#[allow(clippy::type_complexity)]
/// An `objects.json` of the RGB-D folder format: the objects (ids, names, optional boxes and exact truth) and the
/// camera pose when given.
pub fn read_objects(path: &Path) -> Result<(Vec<FrameObject>, Option<Isometry3<f64>>), FrameError> {
    let text = std::fs::read_to_string(path).map_err(|e| FrameError::io(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|source| FrameError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let list = value
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| FrameError::invalid(path, "missing the \"objects\" list"))?;
    let mut objects = Vec::with_capacity(list.len());
    for (index, entry) in list.iter().enumerate() {
        let id = entry
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u16::try_from(id).ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                FrameError::invalid(
                    path,
                    format!("objects[{index}]: \"id\" must be an integer 1..=65535"),
                )
            })?;
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                FrameError::invalid(path, format!("objects[{index}]: missing \"name\""))
            })?
            .to_string();
        if objects.iter().any(|o: &FrameObject| o.id == id) {
            return Err(FrameError::invalid(
                path,
                format!("objects[{index}]: duplicate id {id}"),
            ));
        }
        // Exact truth is optional, but an entry that starts describing it must describe it fully.
        let truth = if entry.get("shape").is_some() || entry.get("extents").is_some() {
            Some(
                serde_json::from_value::<ObjectTruth>(entry.clone()).map_err(|e| {
                    FrameError::invalid(
                        path,
                        format!("objects[{index}] ({name}): incomplete truth: {e}"),
                    )
                })?,
            )
        } else {
            None
        };
        let bbox = match entry.get("bbox") {
            None | Some(Value::Null) => None,
            Some(b) => Some(serde_json::from_value::<[f64; 4]>(b.clone()).map_err(|e| {
                FrameError::invalid(
                    path,
                    format!("objects[{index}] ({name}): bbox must be [x, y, w, h]: {e}"),
                )
            })?),
        };
        objects.push(FrameObject {
            id,
            name,
            bbox,
            truth,
        });
    }
    let pose =
        match value.get("camera").and_then(|c| c.get("world_from_camera")) {
            None => None,
            Some(rows) => {
                let rows: [[f64; 4]; 4] = serde_json::from_value(rows.clone()).map_err(|e| {
                    FrameError::invalid(path, format!("camera.world_from_camera must be 4x4: {e}"))
                })?;
                Some(isometry_from_rows(&rows).map_err(|e| {
                    FrameError::invalid(path, format!("camera.world_from_camera: {e}"))
                })?)
            }
        };
    Ok((objects, pose))
}

/// An instance-id image (`<stem>.instances.png`: 8- or 16-bit grayscale, 0 = background) of `size` (width,
/// height), row-major.
pub fn read_instances_file(path: &Path, size: (u32, u32)) -> Result<Vec<u16>, FrameError> {
    let image = decode_image(path)?;
    check_size(
        path,
        (image.width(), image.height()),
        size,
        "instances vs RGB image",
    )?;
    match image {
        DynamicImage::ImageLuma16(buf) => Ok(buf.into_raw()),
        DynamicImage::ImageLuma8(buf) => Ok(buf.into_raw().into_iter().map(u16::from).collect()),
        other => Err(FrameError::invalid(
            path,
            format!(
                "instance image must be 8/16-bit grayscale, found {:?}",
                other.color()
            ),
        )),
    }
}

/// The depth file of frame `stem` in `dir` (`<stem>.depth.png` in millimetres, `.depth.npy` or `.depth.tiff` in
/// metres), with its path.
pub fn read_depth_file(dir: &Path, stem: &str) -> Result<(PathBuf, DepthMap), FrameError> {
    let png = dir.join(format!("{stem}.depth.png"));
    if png.exists() {
        let bytes = std::fs::read(&png).map_err(|e| FrameError::io(&png, e))?;
        let depth = depth_from_png(&bytes, &png)?;
        return Ok((png, depth));
    }
    let npy = dir.join(format!("{stem}.depth.npy"));
    if npy.exists() {
        let array = crate::npy::read_npy(&npy)?;
        if array.data.iter().any(|z| z.is_infinite() && *z < 0.0) {
            return Err(FrameError::invalid(&npy, "depth holds -inf"));
        }
        let (w, h) = (dim(&npy, array.width)?, dim(&npy, array.height)?);
        return Ok((
            npy,
            DepthMap {
                width: w,
                height: h,
                data: array.data,
            },
        ));
    }
    for ext in ["tiff", "tif"] {
        let tiff = dir.join(format!("{stem}.depth.{ext}"));
        if tiff.exists() {
            let bytes = std::fs::read(&tiff).map_err(|e| FrameError::io(&tiff, e))?;
            let depth = depth_from_tiff(&bytes, &tiff)?;
            return Ok((tiff, depth));
        }
    }
    Err(FrameError::Missing {
        path: png,
        what: format!("depth for frame {stem:?} (.depth.png, .depth.npy or .depth.tiff)"),
    })
}
