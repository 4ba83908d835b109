//! Where images and their 3D come from. The pipeline only sees [`ItemSource`]: the procedural world and RGB-D
//! folders implement it here; photos lifted by perception models (metric depth + open-vocabulary boxes) implement
//! it in `svlm_perception::PhotoSource`, which hands each photo's frame to [`graph_from_frame`].

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde_json::json;
use svlm_world::{FolderReader, Frame, SceneConfig, generate_scene, render, scene_seed};

use crate::graph::{
    DepthInput, EstimateParams, FrameProblem, VisibilityParams, from_depth, from_world,
    instances_from_boxes,
};
use crate::scene::{SceneGraph, TruthSource};

/// One image with its scene graph, ready for the templates.
#[derive(Debug, Clone)]
pub struct Item {
    /// Record id, unique within a run (also the image file stem).
    pub id: String,
    pub rgb: RgbImage,
    pub graph: SceneGraph,
    pub provenance: serde_json::Value,
}

/// An item that could not be used, with a short reason (counted in the manifest) and the details.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BadItem {
    pub item: String,
    pub reason: String,
    pub detail: String,
}

/// A finite, indexable collection of items; `item(i)` must be deterministic and thread-safe.
pub trait ItemSource: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// What identifies the output of this source (goes into the manifest; reruns must match it).
    fn describe(&self) -> serde_json::Value;
    fn item(&self, index: usize) -> Result<Item, BadItem>;
    /// Called with each chunk's indices before its items are read: sources that run models batch the chunk
    /// here (one forward pass per chunk on a GPU) and serve `item` from what they computed. The items must be the
    /// ones `item` alone would give.
    fn prepare(&self, _indices: &[usize]) {}
}

/// Procedural scenes `0..scenes` of base seed `seed`.
pub struct WorldSource {
    pub scenes: usize,
    pub seed: u64,
    pub config: SceneConfig,
    pub truth: TruthSource,
    pub estimate: EstimateParams,
    pub visibility: VisibilityParams,
}

impl ItemSource for WorldSource {
    fn len(&self) -> usize {
        self.scenes
    }

    fn describe(&self) -> serde_json::Value {
        json!({
            "source": "world",
            "scenes": self.scenes,
            "seed": self.seed,
            "scene_config": self.config,
            "truth": self.truth.as_str(),
            "estimate": describe_estimate(&self.estimate),
            "visibility": {
                "min_visible_pixels": self.visibility.min_visible_pixels,
                "skip_truncated": self.visibility.skip_truncated,
                "count_stride": self.visibility.count_stride,
            },
        })
    }

    fn item(&self, index: usize) -> Result<Item, BadItem> {
        let seed = scene_seed(self.seed, index as u64);
        let scene = generate_scene(seed, &self.config);
        let rendered = render(&scene);
        let id = format!("world-{}-{index:08}", self.seed);
        let graph = match self.truth {
            TruthSource::Exact => from_world(&scene, &rendered, &self.visibility),
            TruthSource::Estimated => {
                let names: Vec<(u16, String)> = scene
                    .objects
                    .iter()
                    .map(|o| (o.id, o.name.clone()))
                    .collect();
                let input = DepthInput {
                    depth: &rendered.depth,
                    intrinsics: &scene.camera.intrinsics,
                    instances: &rendered.instances,
                    names: &names,
                };
                let params = EstimateParams {
                    visibility: self.visibility.clone(),
                    ..self.estimate.clone()
                };
                from_depth(&input, &params).map_err(|e| BadItem {
                    item: id.clone(),
                    reason: e.reason().to_string(),
                    detail: e.to_string(),
                })?
            }
        };
        let provenance = json!({
            "source": "world",
            "seed": self.seed,
            "index": index,
            "scene_seed": seed,
            "truth": self.truth.as_str(),
            "plane_found": graph.plane_found,
        });
        Ok(Item {
            id,
            rgb: rendered.rgb,
            graph,
            provenance,
        })
    }
}

pub(crate) fn describe_estimate(p: &EstimateParams) -> serde_json::Value {
    let g = &p.geometry;
    json!({
        "stride": g.stride,
        "voxel_size": g.voxel_size,
        "max_filter_points": g.max_filter_points,
        "sor_neighbors": g.sor_neighbors,
        "sor_std_ratio": g.sor_std_ratio,
        "dbscan_eps": g.dbscan_eps,
        "dbscan_min_points": g.dbscan_min_points,
        "dbscan_spacing_factor": g.dbscan_spacing_factor,
        "min_points": g.min_points,
        "ground_stride": g.ground_stride,
        "ground_voxel_size": g.ground_voxel_size,
        "ground_distance_threshold": g.ground.distance_threshold,
        "ground_iterations": g.ground.iterations,
        "fallback_pitch_deg": g.fallback_pitch_deg,
        "fallback_height_m": g.fallback_height_m,
        "max_occluded_boundary": p.max_occluded_boundary,
        "floor_snap": p.floor_snap,
    })
}

/// Frames of an RGB-D folder (sorted stems), always estimated from depth.
pub struct RgbdSource {
    pub reader: FolderReader,
    pub stems: Vec<String>,
    pub estimate: EstimateParams,
    /// Relative depth band around a box's median depth that counts as the object (boxes-only annotations).
    pub box_depth_band: f64,
}

impl RgbdSource {
    pub fn open(dir: &Path, estimate: EstimateParams) -> anyhow::Result<Self> {
        let reader = FolderReader::open(dir)?;
        let stems = reader.stems()?;
        if stems.is_empty() {
            anyhow::bail!(
                "{}: no RGB-D frames (expected <stem>.png or .jpg with <stem>.depth.png, .depth.npy or .depth.tiff)",
                dir.display()
            );
        }
        Ok(RgbdSource {
            reader,
            stems,
            estimate,
            box_depth_band: 0.15,
        })
    }

    pub fn dir(&self) -> PathBuf {
        self.reader.dir.clone()
    }
}

impl ItemSource for RgbdSource {
    fn len(&self) -> usize {
        self.stems.len()
    }

    fn describe(&self) -> serde_json::Value {
        json!({
            "source": "rgbd",
            "dir": self.reader.dir.display().to_string(),
            "frames": self.stems.len(),
            "truth": "estimated",
            "estimate": describe_estimate(&self.estimate),
            "box_depth_band": self.box_depth_band,
        })
    }

    fn item(&self, index: usize) -> Result<Item, BadItem> {
        let stem = self.stems.get(index).cloned().unwrap_or_default();
        let bad = |reason: &str, detail: String| BadItem {
            item: stem.clone(),
            reason: reason.to_string(),
            detail,
        };
        let frame = self.reader.read(&stem).map_err(|e| {
            let reason = match &e {
                svlm_world::FrameError::SizeMismatch { .. } => "size_mismatch",
                svlm_world::FrameError::Missing { what, .. } if what.contains("intrinsics") => {
                    "missing_intrinsics"
                }
                svlm_world::FrameError::Missing { .. } => "missing_file",
                svlm_world::FrameError::Invalid { reason, .. }
                    if reason.contains("no valid depth") =>
                {
                    "no_valid_depth"
                }
                svlm_world::FrameError::Invalid { path, .. }
                    if path.to_string_lossy().contains(".depth.") =>
                {
                    "bad_depth"
                }
                _ => "unreadable",
            };
            bad(reason, e.to_string())
        })?;
        let graph = graph_from_frame(&frame, &self.estimate, self.box_depth_band)
            .map_err(|e| bad(e.reason(), format!("{stem}: {e}")))?;
        let provenance = json!({
            "source": "rgbd",
            "frame": stem,
            "truth": "estimated",
            "plane_found": graph.plane_found,
            "invalid_depth_pixels": frame.invalid_depth,
        });
        Ok(Item {
            id: format!("rgbd-{stem}"),
            rgb: frame.rgb,
            graph,
            provenance,
        })
    }
}

/// The estimated scene graph of a frame: its instance masks, or masks made from its boxes.
pub fn graph_from_frame(
    frame: &Frame,
    params: &EstimateParams,
    box_depth_band: f64,
) -> Result<SceneGraph, FrameProblem> {
    let names: Vec<(u16, String)> = frame
        .objects
        .iter()
        .map(|o| (o.id, o.name.clone()))
        .collect();
    let from_boxes;
    let instances: &[u16] = match &frame.instances {
        Some(ids) => ids,
        None => {
            let boxes: Vec<(u16, [u32; 4])> = frame
                .objects
                .iter()
                .filter_map(|o| {
                    let [x, y, w, h] = o.bbox?;
                    let px = |v: f64| v.max(0.0).round() as u32;
                    Some((o.id, [px(x), px(y), px(x + w), px(y + h)]))
                })
                .collect();
            from_boxes = instances_from_boxes(&frame.depth, &boxes, box_depth_band);
            &from_boxes
        }
    };
    from_depth(
        &DepthInput {
            depth: &frame.depth,
            intrinsics: &frame.intrinsics,
            instances,
            names: &names,
        },
        params,
    )
}
