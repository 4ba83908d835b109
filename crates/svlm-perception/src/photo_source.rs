//! Photos as a synthesis source (`svlm synth --images DIR`): photo -> metric depth -> intrinsics -> named boxes ->
//! each object's pixels (a segmenter's mask per box, or else the depth-consistent pixels inside the box) -> the
//! scene graph the RGB-D path builds (`svlm_synth::source::graph_from_frame`), so a photo with the true depth
//! substituted for the model's gives exactly the QA of the same RGB-D frame (`tests/photo_pipeline.rs`).
//!
//! Depth, boxes and masks come through three small traits, so the models (Depth Anything V2 or Depth Pro, an
//! open-vocabulary detector, SAM) and given data (a depth file, COCO-style boxes, instance PNGs) are
//! interchangeable and every record says which produced it. A depth model that predicts the field of view
//! (Depth Pro) supplies the intrinsics of photos without user values or an EXIF focal length.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use serde_json::json;
use svlm_synth::graph::EstimateParams;
use svlm_synth::source::graph_from_frame;
use svlm_synth::{BadItem, Item, ItemSource};
use svlm_world::{Frame, FrameObject};

use crate::depth_model::{DepthModel, EstimatedDepth};
use crate::intrinsics::IntrinsicsOptions;
use crate::owl::{OwlDetector, suppress_overlaps};
use crate::photo::{Photo, load_photo, match_depth_to_intrinsics, photo_intrinsics};
use crate::segmenter::BoxSegmenter;

/// Metric z-depth for a photo, at the photo's size (with the model's camera estimate, if it makes one).
pub trait DepthEstimator: Send + Sync {
    /// What produced the depth (model folder and settings), recorded per image.
    fn describe(&self) -> serde_json::Value;
    fn depth(&self, path: &Path, image: &RgbImage) -> Result<EstimatedDepth>;
    /// Depth for several photos; models override it with one batched forward pass.
    fn depth_batch(&self, photos: &[(&Path, &RgbImage)]) -> Vec<Result<EstimatedDepth>> {
        photos.iter().map(|(p, i)| self.depth(p, i)).collect()
    }
}

/// A named box in pixel coordinates of the (EXIF-oriented) photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedBox {
    pub name: String,
    /// `[x0, y0, x1, y1]` in pixels.
    pub xyxy: [f64; 4],
    /// Detector confidence (1 for given boxes).
    pub score: f64,
}

/// Named boxes for a photo.
pub trait ObjectDetector: Send + Sync {
    fn describe(&self) -> serde_json::Value;
    fn detect(&self, path: &Path, image: &RgbImage) -> Result<Vec<NamedBox>>;
    /// Boxes for several photos; models override it with one batched forward pass.
    fn detect_batch(&self, photos: &[(&Path, &RgbImage)]) -> Vec<Result<Vec<NamedBox>>> {
        photos.iter().map(|(p, i)| self.detect(p, i)).collect()
    }
}

/// The pixels of one object at the photo's size.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectMask {
    /// Row-major `height x width`, true inside the object.
    pub pixels: Vec<bool>,
    /// The segmenter's own estimate of the mask's quality (SAM's predicted IoU), when it has one.
    pub predicted_iou: Option<f32>,
}

/// Masks for a photo's boxes: one per box, in the boxes' order.
pub trait ObjectSegmenter: Send + Sync {
    fn describe(&self) -> serde_json::Value;
    fn segment(&self, path: &Path, image: &RgbImage, boxes: &[NamedBox])
    -> Result<Vec<ObjectMask>>;
    /// Masks for several photos; models override it with one batched forward pass.
    fn segment_batch(
        &self,
        photos: &[(&Path, &RgbImage, &[NamedBox])],
    ) -> Vec<Result<Vec<ObjectMask>>> {
        photos
            .iter()
            .map(|(p, i, b)| self.segment(p, i, b))
            .collect()
    }
}

/// A metric depth model (Depth Anything V2 metric, or Depth Pro with its field of view) on each photo. Burn
/// modules are not shared between threads, so calls take turns; each prediction uses every core through the
/// backend.
pub struct ModelDepth {
    model: Mutex<DepthModel>,
    description: serde_json::Value,
}

impl ModelDepth {
    pub fn new(model: impl Into<DepthModel>) -> Self {
        let model = model.into();
        Self {
            description: model.describe(),
            model: Mutex::new(model),
        }
    }
}

impl DepthEstimator for ModelDepth {
    fn describe(&self) -> serde_json::Value {
        self.description.clone()
    }

    fn depth(&self, path: &Path, image: &RgbImage) -> Result<EstimatedDepth> {
        let model = lock(&self.model, "depth model")?;
        model
            .predict(image)
            .with_context(|| format!("depth of {}", path.display()))
    }

    fn depth_batch(&self, photos: &[(&Path, &RgbImage)]) -> Vec<Result<EstimatedDepth>> {
        let batched = lock(&self.model, "depth model").and_then(|model| {
            let images: Vec<RgbImage> = photos.iter().map(|(_, i)| (*i).clone()).collect();
            model.predict_batch(&images)
        });
        match batched {
            Ok(maps) if maps.len() == photos.len() => maps.into_iter().map(Ok).collect(),
            // One bad photo must not fail the chunk: fall back to one photo at a time, each with its own error.
            _ => photos.iter().map(|(p, i)| self.depth(p, i)).collect(),
        }
    }
}

/// Depth given beside each photo: `<stem>.depth.npy` (f32 metres), `.depth.tiff` (f32 metres) or `.depth.png`
/// (16-bit millimetres) in `dir` — the RGB-D folder's depth files. For photos with measured depth, and for checking
/// the photo path against the RGB-D path with the true depth.
pub struct GivenDepth {
    pub dir: PathBuf,
}

impl DepthEstimator for GivenDepth {
    fn describe(&self) -> serde_json::Value {
        json!({"given_depth": self.dir.display().to_string()})
    }

    fn depth(&self, path: &Path, image: &RgbImage) -> Result<EstimatedDepth> {
        let stem = stem_of(path);
        let (_, depth) = svlm_world::read_depth_file(&self.dir, &stem)
            .with_context(|| format!("given depth for {}", path.display()))?;
        anyhow::ensure!(
            (depth.width, depth.height) == image.dimensions(),
            "given depth for {} is {}x{}, the photo {}x{}",
            path.display(),
            depth.width,
            depth.height,
            image.width(),
            image.height()
        );
        Ok(depth.into())
    }
}

/// Boxes given per image: `<stem>.objects.json` in `dir`, the RGB-D folder's object files
/// (`{"objects": [{"id": 1, "name": "chair", "bbox": [x, y, w, h]}]}`, read by `svlm_world::read_objects`); objects
/// without a box are left out.
pub struct GivenBoxes {
    pub dir: PathBuf,
}

impl ObjectDetector for GivenBoxes {
    fn describe(&self) -> serde_json::Value {
        json!({"given_boxes": self.dir.display().to_string()})
    }

    fn detect(&self, path: &Path, _image: &RgbImage) -> Result<Vec<NamedBox>> {
        let file = self.dir.join(format!("{}.objects.json", stem_of(path)));
        let (objects, _) = svlm_world::read_objects(&file)?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let [x, y, w, h] = o.bbox?;
                Some(NamedBox {
                    name: o.name,
                    xyxy: [x, y, x + w, y + h],
                    score: 1.0,
                })
            })
            .collect())
    }
}

/// An open-vocabulary detector (OWLv2 / OWL-ViT) asked for a fixed vocabulary on every photo; overlapping boxes
/// of one query are suppressed (IoU above `nms_iou`). The object's name is the query without a leading article
/// ("a mug" -> "mug"); duplicates ("mug", "mug") are told apart by the scene graph as for any source.
pub struct OwlBoxes {
    detector: Mutex<OwlDetector>,
    pub vocabulary: Vec<String>,
    pub threshold: f32,
    pub nms_iou: f32,
    model: String,
}

impl OwlBoxes {
    pub fn new(
        detector: OwlDetector,
        vocabulary: Vec<String>,
        threshold: f32,
        nms_iou: f32,
    ) -> Self {
        let model = format!("{:?} {}", detector.version(), detector.dir.display());
        Self {
            detector: Mutex::new(detector),
            vocabulary,
            threshold,
            nms_iou,
            model,
        }
    }
}

/// "a red mug" -> "red mug"; "an apple" -> "apple"; "the chair" -> "chair".
pub fn object_name(query: &str) -> String {
    let q = query.trim();
    for article in ["a photo of a ", "a photo of an ", "a ", "an ", "the "] {
        if q.len() > article.len() && q[..article.len()].eq_ignore_ascii_case(article) {
            return q[article.len()..].trim().to_string();
        }
    }
    q.to_string()
}

impl ObjectDetector for OwlBoxes {
    fn describe(&self) -> serde_json::Value {
        json!({
            "detector": self.model,
            "vocabulary": self.vocabulary,
            "threshold": self.threshold,
            "nms_iou": self.nms_iou,
        })
    }

    fn detect(&self, path: &Path, image: &RgbImage) -> Result<Vec<NamedBox>> {
        let queries: Vec<&str> = self.vocabulary.iter().map(String::as_str).collect();
        let detections = {
            let detector = lock(&self.detector, "detector")?;
            detector
                .detect(image, &queries, self.threshold)
                .with_context(|| format!("detecting in {}", path.display()))?
        };
        Ok(self.named(detections))
    }

    fn detect_batch(&self, photos: &[(&Path, &RgbImage)]) -> Vec<Result<Vec<NamedBox>>> {
        let queries: Vec<&str> = self.vocabulary.iter().map(String::as_str).collect();
        let batched = lock(&self.detector, "detector").and_then(|detector| {
            let images: Vec<RgbImage> = photos.iter().map(|(_, i)| (*i).clone()).collect();
            detector.detect_batch(&images, &queries, self.threshold)
        });
        match batched {
            Ok(all) if all.len() == photos.len() => {
                all.into_iter().map(|d| Ok(self.named(d))).collect()
            }
            _ => photos.iter().map(|(p, i)| self.detect(p, i)).collect(),
        }
    }
}

impl OwlBoxes {
    fn named(&self, detections: Vec<crate::owl::Detection>) -> Vec<NamedBox> {
        suppress_overlaps(detections, self.nms_iou)
            .into_iter()
            .map(|d| NamedBox {
                name: object_name(&d.label),
                xyxy: d.box_xyxy.map(f64::from),
                score: f64::from(d.score),
            })
            .collect()
    }
}

/// SAM or SAM 2 prompted with each box: the multimask candidate with the highest predicted IoU.
pub struct SamMasks {
    model: Mutex<BoxSegmenter>,
    description: serde_json::Value,
}

impl SamMasks {
    pub fn new(model: impl Into<BoxSegmenter>) -> Self {
        let model = model.into();
        let description = json!({
            "segmenter": format!("{} {}", model.family(), model.dir().display()),
            "mask_threshold": model.mask_threshold(),
        });
        Self {
            model: Mutex::new(model),
            description,
        }
    }
}

fn object_masks(masks: Vec<crate::sam::BoxMask>) -> Vec<ObjectMask> {
    masks
        .into_iter()
        .map(|m| ObjectMask {
            pixels: m.mask,
            predicted_iou: Some(m.predicted_iou),
        })
        .collect()
}

impl ObjectSegmenter for SamMasks {
    fn describe(&self) -> serde_json::Value {
        self.description.clone()
    }

    fn segment(
        &self,
        path: &Path,
        image: &RgbImage,
        boxes: &[NamedBox],
    ) -> Result<Vec<ObjectMask>> {
        let xyxy: Vec<[f64; 4]> = boxes.iter().map(|b| b.xyxy).collect();
        let model = lock(&self.model, "segmenter")?;
        let masks = model
            .segment(image, &xyxy)
            .with_context(|| format!("segmenting {}", path.display()))?;
        Ok(object_masks(masks))
    }

    fn segment_batch(
        &self,
        photos: &[(&Path, &RgbImage, &[NamedBox])],
    ) -> Vec<Result<Vec<ObjectMask>>> {
        let batched = lock(&self.model, "segmenter").and_then(|model| {
            let images: Vec<RgbImage> = photos.iter().map(|(_, i, _)| (*i).clone()).collect();
            let boxes: Vec<Vec<[f64; 4]>> = photos
                .iter()
                .map(|(_, _, b)| b.iter().map(|b| b.xyxy).collect())
                .collect();
            model.segment_batch(&images, &boxes)
        });
        match batched {
            Ok(all) if all.len() == photos.len() => {
                all.into_iter().map(|m| Ok(object_masks(m))).collect()
            }
            _ => photos
                .iter()
                .map(|(p, i, b)| self.segment(p, i, b))
                .collect(),
        }
    }
}

/// Masks given per image: `<stem>.instances.png` (8/16-bit instance ids, 0 = background) with the
/// `<stem>.objects.json` that names each id, in `dir` — the RGB-D folder's files. A box takes the pixels of the
/// object with its name and box, so these masks go with the given boxes of the same folder.
pub struct GivenMasks {
    pub dir: PathBuf,
}

impl ObjectSegmenter for GivenMasks {
    fn describe(&self) -> serde_json::Value {
        json!({"given_masks": self.dir.display().to_string()})
    }

    fn segment(
        &self,
        path: &Path,
        image: &RgbImage,
        boxes: &[NamedBox],
    ) -> Result<Vec<ObjectMask>> {
        let stem = stem_of(path);
        let objects_file = self.dir.join(format!("{stem}.objects.json"));
        let (objects, _) = svlm_world::read_objects(&objects_file)?;
        let instances_file = self.dir.join(format!("{stem}.instances.png"));
        let ids = svlm_world::read_instances_file(&instances_file, image.dimensions())?;
        boxes
            .iter()
            .map(|b| {
                let object = objects.iter().find(|o| {
                    o.name == b.name
                        && o.bbox.is_some_and(|[x, y, w, h]| [x, y, x + w, y + h] == b.xyxy)
                });
                let Some(object) = object else {
                    anyhow::bail!(
                        "box {:?} {:?} of {} is not an object of {}: given masks go with the given boxes",
                        b.name,
                        b.xyxy,
                        path.display(),
                        objects_file.display()
                    );
                };
                Ok(ObjectMask {
                    pixels: ids.iter().map(|&id| id == object.id).collect(),
                    predicted_iou: None,
                })
            })
            .collect()
    }
}

/// A model shared by the pipeline's threads; a panic during an earlier photo poisons it for the rest.
fn lock<'a, T>(model: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>> {
    model
        .lock()
        .map_err(|_| anyhow::anyhow!("the {what} panicked on an earlier image"))
}

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Image files of a folder (png, jpg, jpeg, tif, tiff, webp, bmp; depth, instance and mask images excluded),
/// sorted by name.
pub fn list_photos(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let is_image = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"]
            .iter()
            .any(|e| name.ends_with(e));
        let is_aux = [".depth.", ".instances.", ".mask."]
            .iter()
            .any(|m| name.contains(m));
        if path.is_file() && is_image && !is_aux {
            photos.push(path);
        }
    }
    photos.sort();
    Ok(photos)
}

/// Settings of the photo path besides the two models.
#[derive(Debug, Clone)]
pub struct PhotoSettings {
    pub intrinsics: IntrinsicsOptions,
    pub estimate: EstimateParams,
    /// Pixels of a box whose depth lies within this fraction of the box's median depth form the object's mask.
    pub box_depth_band: f64,
    /// Boxes scoring below this are dropped.
    pub min_score: f64,
}

impl Default for PhotoSettings {
    fn default() -> Self {
        Self {
            intrinsics: IntrinsicsOptions::default(),
            estimate: EstimateParams::default(),
            box_depth_band: 0.15,
            min_score: 0.0,
        }
    }
}

/// Photos of a folder as a synthesis source. A chunk's photos go through the depth model, the detector and the
/// segmenter as one batch each ([`ItemSource::prepare`]); `item` alone runs them one photo at a time, with the
/// same result.
pub struct PhotoSource {
    pub photos: Vec<PathBuf>,
    pub depth: Box<dyn DepthEstimator>,
    pub detector: Box<dyn ObjectDetector>,
    /// Object masks for the boxes; without one, each object is the depth-consistent pixels of its box.
    pub segmenter: Option<Box<dyn ObjectSegmenter>>,
    pub settings: PhotoSettings,
    prepared: Mutex<HashMap<usize, FrameResult>>,
}

type FrameResult = Result<(Frame, serde_json::Value), BadItem>;

impl PhotoSource {
    pub fn new(
        photos: Vec<PathBuf>,
        depth: Box<dyn DepthEstimator>,
        detector: Box<dyn ObjectDetector>,
        settings: PhotoSettings,
    ) -> Self {
        Self {
            photos,
            depth,
            detector,
            segmenter: None,
            settings,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Objects take the segmenter's mask of their box instead of the box's depth-consistent pixels.
    pub fn with_segmenter(mut self, segmenter: Box<dyn ObjectSegmenter>) -> Self {
        self.segmenter = Some(segmenter);
        self
    }

    /// The frame the RGB-D path would read for this photo: oriented RGB, depth, intrinsics, named boxes and, with
    /// a segmenter, the instance image of their masks (without one the graph builder takes the depth-consistent
    /// pixels of each box).
    pub fn frame(&self, path: &Path) -> FrameResult {
        let photo = load_photo(path).map_err(|e| bad_item(path, "unreadable", format!("{e:#}")))?;
        let depth = self.depth.depth(path, &photo.image);
        let boxes = self
            .detector
            .detect(path, &photo.image)
            .map(|b| self.kept_boxes(b));
        let masks = match (&self.segmenter, &boxes) {
            (Some(segmenter), Ok(b)) if !b.is_empty() => {
                Some(segmenter.segment(path, &photo.image, b))
            }
            _ => None,
        };
        self.assemble(path, photo, depth, boxes, masks)
    }

    /// The boxes scoring at least `min_score`.
    fn kept_boxes(&self, boxes: Vec<NamedBox>) -> Vec<NamedBox> {
        boxes
            .into_iter()
            .filter(|b| b.score >= self.settings.min_score)
            .collect()
    }

    /// Checks the depth, estimates the intrinsics, takes the boxes and masks and builds the frame.
    fn assemble(
        &self,
        path: &Path,
        photo: Photo,
        depth: Result<EstimatedDepth>,
        boxes: Result<Vec<NamedBox>>,
        masks: Option<Result<Vec<ObjectMask>>>,
    ) -> FrameResult {
        let bad = |reason: &str, detail: String| bad_item(path, reason, detail);
        let estimated = depth.map_err(|e| bad("depth_failed", format!("{e:#}")))?;
        let mut depth = estimated.depth;
        let invalid_depth = depth
            .data
            .iter()
            .filter(|d| !(d.is_finite() && **d > 0.0))
            .count();
        if invalid_depth == depth.data.len() {
            return Err(bad(
                "no_valid_depth",
                format!("{}: no pixel has a valid depth", path.display()),
            ));
        }
        let intrinsics = photo_intrinsics(
            path,
            &photo,
            depth.width,
            depth.height,
            estimated.predicted_hfov_deg,
            &self.settings.intrinsics,
        )
        .map_err(|e| bad("intrinsics", format!("{e:#}")))?;
        let depth_rescaled_by =
            match_depth_to_intrinsics(&mut depth, estimated.depth_focal_px, &intrinsics);
        let boxes = boxes.map_err(|e| bad("detector_failed", format!("{e:#}")))?;
        if boxes.is_empty() {
            return Err(bad(
                "nothing_detected",
                format!(
                    "{}: no box above score {}",
                    path.display(),
                    self.settings.min_score
                ),
            ));
        }
        let masks = masks
            .transpose()
            .map_err(|e| bad("segmenter_failed", format!("{e:#}")))?;
        let instances = match &masks {
            Some(masks) => Some(
                instance_image(masks, boxes.len(), depth.width, depth.height)
                    .map_err(|e| bad("segmenter_failed", format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        let objects: Vec<FrameObject> = boxes
            .iter()
            .enumerate()
            .map(|(k, b)| FrameObject {
                id: k as u16 + 1,
                name: b.name.clone(),
                bbox: Some([
                    b.xyxy[0],
                    b.xyxy[1],
                    b.xyxy[2] - b.xyxy[0],
                    b.xyxy[3] - b.xyxy[1],
                ]),
                truth: None,
            })
            .collect();
        let mut provenance = json!({
            "source": "photo",
            "file": path.display().to_string(),
            "truth": "estimated",
            "depth": self.depth.describe(),
            "detector": self.detector.describe(),
            "intrinsics": {
                "fx": intrinsics.intrinsics.fx, "fy": intrinsics.intrinsics.fy,
                "cx": intrinsics.intrinsics.cx, "cy": intrinsics.intrinsics.cy,
                "source": intrinsics.source,
            },
            "exif_orientation": photo.orientation,
            "detections": boxes,
            "invalid_depth_pixels": invalid_depth,
        });
        if let Some(hfov) = estimated.predicted_hfov_deg {
            provenance["predicted_hfov_deg"] = json!(hfov);
        }
        if let Some(focal) = estimated.depth_focal_px {
            provenance["depth_focal_px"] = json!(focal);
        }
        if let Some(factor) = depth_rescaled_by {
            provenance["depth_rescaled_by"] = json!(factor);
        }
        let mut notes = Vec::new();
        if let (Some(segmenter), Some(masks), Some((_, overlaps))) =
            (&self.segmenter, &masks, &instances)
        {
            provenance["segmenter"] = segmenter.describe();
            provenance["masks"] = json!(
                masks
                    .iter()
                    .map(|m| json!({
                        "pixels": m.pixels.iter().filter(|&&p| p).count(),
                        "predicted_iou": m.predicted_iou,
                    }))
                    .collect::<Vec<_>>()
            );
            if *overlaps > 0 {
                notes.push(format!(
                    "{overlaps} pixels claimed by two masks kept their first object"
                ));
            }
        }
        Ok((
            Frame {
                stem: stem_of(path),
                rgb: photo.image,
                depth,
                intrinsics: intrinsics.intrinsics,
                instances: instances.map(|(ids, _)| ids),
                objects,
                world_from_camera: None,
                invalid_depth,
                notes,
            },
            provenance,
        ))
    }
}

/// Masks (one per box, object `k + 1` for box `k`) -> an instance-id image and the number of pixels two masks
/// claimed (they stay with the first, as for COCO masks).
fn instance_image(
    masks: &[ObjectMask],
    boxes: usize,
    width: u32,
    height: u32,
) -> std::result::Result<(Vec<u16>, usize), String> {
    let n = width as usize * height as usize;
    if masks.len() != boxes {
        return Err(format!("{} masks for {boxes} boxes", masks.len()));
    }
    let mut ids = vec![0u16; n];
    let mut overlaps = 0;
    for (k, mask) in masks.iter().enumerate() {
        if mask.pixels.len() != n {
            return Err(format!(
                "mask {k} has {} pixels, the photo {width}x{height}",
                mask.pixels.len()
            ));
        }
        let id = u16::try_from(k + 1).map_err(|_| "more than 65535 masks".to_string())?;
        for (slot, &inside) in ids.iter_mut().zip(&mask.pixels) {
            if inside {
                if *slot == 0 {
                    *slot = id;
                } else {
                    overlaps += 1;
                }
            }
        }
    }
    Ok((ids, overlaps))
}

fn bad_item(path: &Path, reason: &str, detail: String) -> BadItem {
    BadItem {
        item: path.display().to_string(),
        reason: reason.to_string(),
        detail,
    }
}

impl ItemSource for PhotoSource {
    fn len(&self) -> usize {
        self.photos.len()
    }

    fn describe(&self) -> serde_json::Value {
        json!({
            "source": "photos",
            "photos": self.photos.len(),
            "truth": "estimated",
            "depth": self.depth.describe(),
            "detector": self.detector.describe(),
            "segmenter": self.segmenter.as_ref().map(|s| s.describe()),
            "box_depth_band": self.settings.box_depth_band,
            "min_score": self.settings.min_score,
        })
    }

    fn prepare(&self, indices: &[usize]) {
        let mut loaded = Vec::new();
        let mut done: Vec<(usize, FrameResult)> = Vec::new();
        for &i in indices {
            let Some(path) = self.photos.get(i) else {
                continue;
            };
            match load_photo(path) {
                Ok(photo) => loaded.push((i, path.as_path(), photo)),
                Err(e) => done.push((i, Err(bad_item(path, "unreadable", format!("{e:#}"))))),
            }
        }
        let views: Vec<(&Path, &RgbImage)> =
            loaded.iter().map(|(_, p, ph)| (*p, &ph.image)).collect();
        let depths = self.depth.depth_batch(&views);
        let boxes: Vec<Result<Vec<NamedBox>>> = self
            .detector
            .detect_batch(&views)
            .into_iter()
            .map(|b| b.map(|b| self.kept_boxes(b)))
            .collect();
        let mut masks: Vec<Option<Result<Vec<ObjectMask>>>> =
            std::iter::repeat_with(|| None).take(views.len()).collect();
        if let Some(segmenter) = &self.segmenter {
            let wanted: Vec<usize> = (0..views.len())
                .filter(|&k| boxes[k].as_ref().is_ok_and(|b| !b.is_empty()))
                .collect();
            let inputs: Vec<(&Path, &RgbImage, &[NamedBox])> = wanted
                .iter()
                .map(|&k| {
                    let b = boxes[k].as_deref().unwrap_or_default();
                    (views[k].0, views[k].1, b)
                })
                .collect();
            for (&k, m) in wanted.iter().zip(segmenter.segment_batch(&inputs)) {
                masks[k] = Some(m);
            }
        }
        for ((((i, path, photo), depth), boxes), masks) in
            loaded.into_iter().zip(depths).zip(boxes).zip(masks)
        {
            done.push((i, self.assemble(path, photo, depth, boxes, masks)));
        }
        if let Ok(mut prepared) = self.prepared.lock() {
            prepared.extend(done);
        }
    }

    fn item(&self, index: usize) -> Result<Item, BadItem> {
        let path = self.photos.get(index).cloned().unwrap_or_default();
        let prepared = self.prepared.lock().ok().and_then(|mut p| p.remove(&index));
        let (frame, mut provenance) = match prepared {
            Some(result) => result?,
            None => self.frame(&path)?,
        };
        let graph = graph_from_frame(
            &frame,
            &self.settings.estimate,
            self.settings.box_depth_band,
        )
        .map_err(|e| BadItem {
            item: path.display().to_string(),
            reason: e.reason().to_string(),
            detail: format!("{}: {e}", path.display()),
        })?;
        if let Some(p) = provenance.as_object_mut() {
            p.insert("plane_found".into(), json!(graph.plane_found));
        }
        Ok(Item {
            id: format!("photo-{}", frame.stem),
            rgb: frame.rgb,
            graph,
            provenance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_drop_the_article_only() {
        assert_eq!(object_name("a mug"), "mug");
        assert_eq!(object_name("An apple"), "apple");
        assert_eq!(object_name("a photo of a red chair"), "red chair");
        assert_eq!(object_name("the table"), "table");
        assert_eq!(object_name("anvil"), "anvil");
        assert_eq!(object_name(" a "), "a");
    }
}
