//! The per-image geometry stage of synthesis: one call from depth + instance ids to per-object canonical-frame
//! points and boxes, with the ground plane and frame.

use nalgebra::{Point3, Vector3};
use serde::{Deserialize, Serialize};

use crate::boxes::{Aabb, Obb};
use crate::camera::{DepthMap, Intrinsics, LiftStats, depth_to_instance_points, is_valid_depth};
use crate::cloud::{
    PointCloud, remove_statistical_outliers, voxel_downsample, voxel_downsample_traced_in,
};
use crate::cluster::{dbscan, largest_label};
use crate::error::GeometryError;
use crate::frame::{CanonicalFrame, canonical_frame};
use crate::plane::{GroundPlaneParams, find_ground_plane};

/// Settings of [`extract_objects`]. Defaults suit metric RGB-D at 0.5-10 m.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectParams {
    /// Lift every `stride`-th pixel of each object in both directions (1 = all).
    pub stride: usize,
    /// Object voxel size in metres (`<= 0`: no downsampling). Outlier removal and clustering run on the voxels;
    /// the object's points and boxes are the full-resolution points of the voxels that survive.
    pub voxel_size: f64,
    /// Largest number of voxels an object's filtering works on: a larger object gets proportionally larger
    /// voxels (0: no cap). Bounds the neighbour searches per object.
    pub max_filter_points: usize,
    /// Statistical outlier removal neighbours (0: off) and std ratio.
    pub sor_neighbors: usize,
    pub sor_std_ratio: f64,
    /// DBSCAN keeping the largest cluster (`eps <= 0`: off). The radius used is at least
    /// `dbscan_spacing_factor` times the object's point spacing (`max(voxel_size, stride * mean depth / fx)`), so
    /// far objects lifted at a stride stay one cluster.
    pub dbscan_eps: f64,
    pub dbscan_min_points: usize,
    pub dbscan_spacing_factor: f64,
    /// Objects left with fewer points are skipped.
    pub min_points: usize,
    /// Ground search on the background pixels (id 0) lifted at `ground_stride` and downsampled at
    /// `ground_voxel_size`. Object pixels never count: a large box top would pass as a floor. Without enough
    /// background (`min_ground_points` after downsampling) the fallback frame is used.
    pub ground_stride: usize,
    pub ground_voxel_size: f64,
    pub min_ground_points: usize,
    pub ground: GroundPlaneParams,
    /// Frame used when no ground plane is found.
    pub fallback_pitch_deg: f64,
    pub fallback_height_m: f64,
}

impl Default for ObjectParams {
    fn default() -> Self {
        Self {
            stride: 2,
            voxel_size: 0.02,
            max_filter_points: 300,
            sor_neighbors: 20,
            sor_std_ratio: 2.0,
            dbscan_eps: 0.05,
            dbscan_min_points: 10,
            dbscan_spacing_factor: 3.0,
            min_points: 10,
            ground_stride: 4,
            ground_voxel_size: 0.05,
            min_ground_points: 50,
            ground: GroundPlaneParams {
                iterations: 100,
                ..GroundPlaneParams::default()
            },
            fallback_pitch_deg: 15.0,
            fallback_height_m: 1.5,
        }
    }
}

/// One object after filtering, everything in the canonical frame (Z up, metres).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectGeometry {
    pub id: u16,
    /// Full-resolution points (at the stride) of the voxels kept by filtering, canonical frame.
    pub points: Vec<Point3<f64>>,
    /// The kept voxels' mean points, canonical frame: a sparse stand-in for fast pairwise queries
    /// (e.g. [`crate::closest_distance`]), within `voxel_size` of `points`.
    pub sparse_points: Vec<Point3<f64>>,
    /// Voxel size the object was filtered at (>= `ObjectParams::voxel_size` when capped).
    pub voxel_size: f64,
    pub centroid: Point3<f64>,
    pub aabb: Aabb,
    /// Upright box (third axis = canonical Z).
    pub obb: Obb,
    /// Pixels of the object considered at the stride, valid/invalid depth.
    pub lift: LiftStats,
}

/// Why an object was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkipReason {
    /// No pixel of the object had valid depth.
    NoValidDepth,
    /// Fewer than `min_points` points survived downsampling and filtering.
    TooFewPoints,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SceneGeometry {
    pub frame: CanonicalFrame,
    pub objects: Vec<ObjectGeometry>,
    pub skipped: Vec<(u16, SkipReason)>,
}

/// Depth + instance ids (0 = background) -> ground plane, canonical frame, and per object: lift at the stride,
/// voxel downsample, statistical outlier removal, largest DBSCAN cluster, canonical points, centroid, AABB and
/// upright OBB. Objects are ordered by id.
pub fn extract_objects(
    depth: &DepthMap,
    intrinsics: &Intrinsics,
    instance_ids: &[u16],
    params: &ObjectParams,
) -> Result<SceneGeometry, GeometryError> {
    extract_selected_objects(depth, intrinsics, instance_ids, params, |_| true)
}

/// [`extract_objects`] for the instance ids `wanted` accepts only: the others are neither filtered nor listed
/// (in `objects` or `skipped`); the wanted ones come out exactly as from [`extract_objects`].
pub fn extract_selected_objects(
    depth: &DepthMap,
    intrinsics: &Intrinsics,
    instance_ids: &[u16],
    params: &ObjectParams,
    wanted: impl Fn(u16) -> bool,
) -> Result<SceneGeometry, GeometryError> {
    let instances = depth_to_instance_points(depth, intrinsics, instance_ids, params.stride)?;
    let frame = estimate_frame(depth, intrinsics, instance_ids, params);
    let mut objects = Vec::with_capacity(instances.len());
    let mut skipped = Vec::new();
    for (id, (raw, lift)) in instances {
        if !wanted(id) {
            continue;
        }
        if raw.is_empty() {
            skipped.push((id, SkipReason::NoValidDepth));
            continue;
        }
        let (sparse, voxel_size, selection) = filter_voxels(&raw, intrinsics, params);
        let points: Vec<Point3<f64>> = raw
            .points
            .iter()
            .zip(&selection.trace)
            .filter(|(_, voxel)| selection.keep[**voxel as usize])
            .map(|(p, _)| frame.to_canonical(p))
            .collect();
        let sparse_points: Vec<Point3<f64>> = sparse
            .points
            .iter()
            .zip(&selection.keep)
            .filter(|(_, keep)| **keep)
            .map(|(p, _)| frame.to_canonical(p))
            .collect();
        if sparse_points.len() < params.min_points.max(1) {
            skipped.push((id, SkipReason::TooFewPoints));
            continue;
        }
        let (Some(centroid), Some(aabb), Some(obb)) = (
            crate::cloud::centroid(&points),
            Aabb::from_points(&points),
            Obb::from_points_upright(&points, &Vector3::z()),
        ) else {
            skipped.push((id, SkipReason::TooFewPoints));
            continue;
        };
        objects.push(ObjectGeometry {
            id,
            points,
            sparse_points,
            voxel_size,
            centroid,
            aabb,
            obb,
            lift,
        });
    }
    Ok(SceneGeometry {
        frame,
        objects,
        skipped,
    })
}

fn estimate_frame(
    depth: &DepthMap,
    intrinsics: &Intrinsics,
    instance_ids: &[u16],
    params: &ObjectParams,
) -> CanonicalFrame {
    let stride = params.ground_stride.max(1);
    let width = depth.width as usize;
    let (fx, fy, cx, cy) = (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy);
    let mut background = Vec::new();
    for v in (0..depth.height as usize).step_by(stride) {
        for u in (0..width).step_by(stride) {
            let i = v * width + u;
            let z = depth.data[i];
            if instance_ids[i] != 0 || !is_valid_depth(z) {
                continue;
            }
            let z = z as f64;
            background.push(Point3::new(
                (u as f64 - cx) * z / fx,
                (v as f64 - cy) * z / fy,
                z,
            ));
        }
    }
    let cloud = PointCloud::new(background);
    let cloud = if params.ground_voxel_size > 0.0 {
        voxel_downsample(&cloud, params.ground_voxel_size)
    } else {
        cloud
    };
    let ground = if cloud.len() >= params.min_ground_points.max(3) {
        find_ground_plane(&cloud, &params.ground)
    } else {
        None
    };
    canonical_frame(
        ground.as_ref(),
        params.fallback_pitch_deg,
        params.fallback_height_m,
    )
}

struct VoxelSelection {
    /// Voxel of each raw point.
    trace: Vec<u32>,
    /// Whether each voxel survived filtering.
    keep: Vec<bool>,
}

/// Voxel downsampling (capped at `max_filter_points` voxels), statistical outlier removal and the largest DBSCAN
/// cluster, decided on the voxels.
fn filter_voxels(
    raw: &PointCloud,
    intrinsics: &Intrinsics,
    params: &ObjectParams,
) -> (PointCloud, f64, VoxelSelection) {
    let mut voxel_size = params.voxel_size;
    let bounds = Aabb::from_points(&raw.points);
    let (mut sparse, mut trace) = voxel_downsample_traced_in(raw, voxel_size, bounds);
    if params.voxel_size > 0.0 && params.max_filter_points > 0 {
        // Surface points scale with 1/voxel^2; a few rounds absorb the voxel grid's granularity.
        for _ in 0..4 {
            if sparse.len() <= params.max_filter_points {
                break;
            }
            voxel_size *= (sparse.len() as f64 / params.max_filter_points as f64).sqrt() * 1.05;
            (sparse, trace) = voxel_downsample_traced_in(raw, voxel_size, bounds);
        }
    }
    let mut alive: Vec<usize> = (0..sparse.len()).collect();
    if params.sor_neighbors > 0 && sparse.len() > params.sor_neighbors {
        alive = remove_statistical_outliers(&sparse, params.sor_neighbors, params.sor_std_ratio).1;
    }
    if params.dbscan_eps > 0.0 && !alive.is_empty() {
        let candidates: Vec<Point3<f64>> = alive.iter().map(|&i| sparse.points[i]).collect();
        let mean_depth = candidates.iter().map(|p| p.z).sum::<f64>() / candidates.len() as f64;
        let spacing = voxel_size.max(params.stride.max(1) as f64 * mean_depth / intrinsics.fx);
        let eps = params
            .dbscan_eps
            .max(params.dbscan_spacing_factor * spacing);
        let labels = dbscan(&candidates, eps, params.dbscan_min_points);
        alive = match largest_label(&labels) {
            Some(best) => alive
                .iter()
                .zip(&labels)
                .filter(|(_, l)| **l == Some(best))
                .map(|(&i, _)| i)
                .collect(),
            None => Vec::new(),
        };
    }
    let mut keep = vec![false; sparse.len()];
    for i in alive {
        keep[i] = true;
    }
    (sparse, voxel_size, VoxelSelection { trace, keep })
}
