//! Building the scene graph: exactly from the procedural world, or estimated from depth + instance masks.

use nalgebra::{Point3, UnitQuaternion, Vector3};
use svlm_geometry::{
    DepthMap, Intrinsics, ObjectParams, SkipReason, closest_distance, extract_selected_objects,
};
use svlm_world::{ObjectTruth, Rendered, Scene, closest_surface_distance};

use crate::scene::{
    Box3, SceneGraph, SceneObject, SkipCounts, TruthSource, UprightBox, count_skip,
};

/// Pixel count and whether the instance touches the image border, per instance id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceStats {
    pub pixels: usize,
    pub touches_border: bool,
}

/// Stats indexed by id (index 0 = background) from one pass over an instance-id image. With `stride > 1` only
/// every `stride`-th pixel of every `stride`-th row is counted and the counts are scaled by `stride^2` (an
/// estimate, for visibility thresholds); the border flags always look at every border pixel.
pub fn instance_stats(
    instances: &[u16],
    width: usize,
    height: usize,
    stride: usize,
) -> Vec<InstanceStats> {
    if width == 0 || instances.len() != width * height {
        return Vec::new();
    }
    let stride = stride.max(1);
    let max_id = instances.iter().copied().max().unwrap_or(0) as usize;
    let mut counts = vec![0usize; max_id + 1];
    for row in instances.chunks_exact(width).step_by(stride) {
        for &id in row.iter().step_by(stride) {
            counts[id as usize] += 1;
        }
    }
    let scale = stride * stride;
    let mut stats: Vec<InstanceStats> = counts
        .into_iter()
        .map(|c| InstanceStats {
            pixels: c * scale,
            touches_border: false,
        })
        .collect();
    let last = (height - 1) * width;
    let border = instances[..width]
        .iter()
        .chain(&instances[last..])
        .chain(instances.iter().step_by(width))
        .chain(instances[width - 1..].iter().step_by(width));
    for &id in border {
        stats[id as usize].touches_border = true;
    }
    stats
}

/// Per instance id: boundary pixels (4-neighbour of another id) and those whose neighbour is another object
/// in front of it (closer by more than `min_step` metres): the object continues behind it.
pub fn occlusion_stats(instances: &[u16], depth: &DepthMap, min_step: f32) -> Vec<(usize, usize)> {
    let (w, h) = (depth.width as usize, depth.height as usize);
    let mut stats: Vec<(usize, usize)> = Vec::new();
    if instances.len() != w * h || depth.data.len() != w * h {
        return stats;
    }
    let mut mark = |id: u16, occluded: bool| {
        let id = id as usize;
        if id >= stats.len() {
            stats.resize(id + 1, (0, 0));
        }
        stats[id].0 += 1;
        stats[id].1 += usize::from(occluded);
    };
    // Each side of an edge between two ids is a boundary pixel of its own instance.
    let mut edge = |(id, zi): (u16, f32), (other, zj): (u16, f32)| {
        if id != 0 {
            mark(id, other != 0 && zj + min_step < zi);
        }
        if other != 0 {
            mark(other, id != 0 && zi + min_step < zj);
        }
    };
    // Right and lower neighbours, row by row: edges are rare, so the scans mostly compare equal ids. Blocks of
    // pixels without any change are skipped after one branch-free (vectorized) comparison.
    for v in 0..h {
        let row = v * w..(v + 1) * w;
        let (ids, z) = (&instances[row.clone()], &depth.data[row]);
        let pairs = w.saturating_sub(1);
        for start in (0..pairs).step_by(EDGE_BLOCK) {
            let end = (start + EDGE_BLOCK).min(pairs);
            if !any_differ(&ids[start..end], &ids[start + 1..end + 1]) {
                continue;
            }
            for u in start..end {
                if ids[u] != ids[u + 1] {
                    edge((ids[u], z[u]), (ids[u + 1], z[u + 1]));
                }
            }
        }
        if v + 1 < h {
            let below = (v + 1) * w..(v + 2) * w;
            let (ids_below, z_below) = (&instances[below.clone()], &depth.data[below]);
            for start in (0..w).step_by(EDGE_BLOCK) {
                let end = (start + EDGE_BLOCK).min(w);
                if !any_differ(&ids[start..end], &ids_below[start..end]) {
                    continue;
                }
                for u in start..end {
                    if ids[u] != ids_below[u] {
                        edge((ids[u], z[u]), (ids_below[u], z_below[u]));
                    }
                }
            }
        }
    }
    stats
}

/// Pixels per block of [`occlusion_stats`]'s scans.
const EDGE_BLOCK: usize = 64;

/// Whether `a` and `b` (same length) differ anywhere: an OR of XORs, which vectorizes (no early exit).
#[inline]
fn any_differ(a: &[u16], b: &[u16]) -> bool {
    a.iter().zip(b).fold(0u16, |acc, (x, y)| acc | (x ^ y)) != 0
}

/// Which objects are visible enough to ask about.
#[derive(Debug, Clone, PartialEq)]
pub struct VisibilityParams {
    /// Objects with fewer visible pixels are skipped (`too_few_pixels`).
    pub min_visible_pixels: usize,
    /// Skip objects cut by the image border (`truncated`): their visible extent is not their size.
    pub skip_truncated: bool,
    /// Visible pixels are counted on every `count_stride`-th pixel and row (scaled back): a 4x cheaper pass
    /// over the instance image for a threshold that does not need the exact count.
    pub count_stride: usize,
}

impl Default for VisibilityParams {
    fn default() -> Self {
        VisibilityParams {
            min_visible_pixels: 150,
            skip_truncated: true,
            count_stride: 2,
        }
    }
}

fn visible(
    stats: &[InstanceStats],
    id: u16,
    params: &VisibilityParams,
    skips: &mut SkipCounts,
) -> Option<usize> {
    let s = stats.get(id as usize).copied().unwrap_or_default();
    if s.pixels == 0 {
        count_skip(skips, "not_visible");
        return None;
    }
    if s.pixels < params.min_visible_pixels {
        count_skip(skips, "too_few_pixels");
        return None;
    }
    if params.skip_truncated && s.touches_border {
        count_skip(skips, "truncated");
        return None;
    }
    Some(s.pixels)
}

/// Rotation angle about +Z of an isometry whose rotation is about Z only.
fn yaw_of(rotation: &UnitQuaternion<f64>) -> f64 {
    let x = rotation * Vector3::x();
    x.y.atan2(x.x)
}

/// The exact scene graph of a procedural scene: boxes, centres and closest-surface gaps from the world's exact
/// geometry in the canonical frame, for the objects the rendered instance mask shows well enough.
/// Exact objects carry no points (nothing reads them; the gaps are exact).
pub fn from_world(scene: &Scene, rendered: &Rendered, params: &VisibilityParams) -> SceneGraph {
    let canonical_from_world = scene.canonical_from_world();
    let theta = yaw_of(&canonical_from_world.rotation);
    let stats = instance_stats(
        &rendered.instances,
        rendered.width as usize,
        rendered.height as usize,
        params.count_stride,
    );
    let mut skips = SkipCounts::new();
    let mut kept: Vec<&ObjectTruth> = Vec::new();
    let mut objects = Vec::new();
    for truth in &scene.objects {
        let Some(pixels) = visible(&stats, truth.id, params, &mut skips) else {
            continue;
        };
        let mut canonical = truth.clone();
        canonical.center = (canonical_from_world * truth.center_point()).coords.into();
        canonical.yaw = truth.yaw + theta;
        let aabb = canonical.world_aabb();
        let support = scene
            .support_height(truth.support)
            .unwrap_or(truth.bottom());
        objects.push(SceneObject {
            name: truth.name.clone(),
            base_name: truth.name.clone(),
            instance_id: truth.id as u32,
            points: Vec::new(),
            center: Point3::from(canonical.center),
            aabb: Box3 {
                min: aabb.min,
                max: aabb.max,
            },
            obb: UprightBox {
                center: Point3::from(canonical.center),
                yaw: canonical.yaw,
                extents: Vector3::from(truth.extents),
            },
            support_height: support,
            visible_pixels: pixels,
            source: TruthSource::Exact,
        });
        kept.push(truth);
    }
    let n = kept.len();
    let mut gaps = vec![0.0; n * n];
    for i in 0..n {
        for j in (i + 1)..n {
            let d = closest_surface_distance(kept[i], kept[j]).max(0.0);
            gaps[i * n + j] = d;
            gaps[j * n + i] = d;
        }
    }
    let mut graph = SceneGraph {
        objects,
        camera: canonical_from_world * scene.camera.position(),
        plane_found: true,
        source: TruthSource::Exact,
        gaps,
        skips,
    };
    graph.disambiguate_names();
    graph
}

/// Settings of the estimated path (depth -> points -> cleanup -> boxes).
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateParams {
    /// Lifting, voxel grid, outlier removal, DBSCAN and ground plane (`svlm_geometry::extract_objects`).
    pub geometry: ObjectParams,
    /// Objects with more than this share of their outline hidden behind other objects are skipped
    /// (`occluded`): their visible points do not give their size or centre.
    pub max_occluded_boundary: f64,
    /// An object whose lowest point is within this of the ground rests on it (its bottom snaps to 0): the
    /// last few millimetres above the floor are mixed pixels or hidden by the floor's own depth edge.
    pub floor_snap: f64,
    /// Gravity prior: an object whose lowest visible point is less than this share of its visible height above
    /// the floor or the top of an object under it rests there (the underside of a ball or the legs' feet
    /// hidden behind the object itself are not evidence of floating).
    pub support_snap_fraction: f64,
    pub visibility: VisibilityParams,
}

impl Default for EstimateParams {
    fn default() -> Self {
        EstimateParams {
            geometry: ObjectParams::default(),
            max_occluded_boundary: 0.1,
            floor_snap: 0.03,
            support_snap_fraction: 0.5,
            visibility: VisibilityParams::default(),
        }
    }
}

impl EstimateParams {
    /// The same pipeline without the shortcuts: every pixel lifted, no cap on the points each object's
    /// filtering works on, every background pixel in the ground-plane RANSAC. The benchmark's reference.
    pub fn naive() -> Self {
        let geometry = ObjectParams {
            stride: 1,
            max_filter_points: 0,
            ground_stride: 1,
            ground_voxel_size: 0.0,
            ..ObjectParams::default()
        };
        EstimateParams {
            geometry,
            ..EstimateParams::default()
        }
    }
}

/// What the estimated path needs from one RGB-D frame.
#[derive(Debug, Clone, Copy)]
pub struct DepthInput<'a> {
    pub depth: &'a DepthMap,
    pub intrinsics: &'a Intrinsics,
    /// Row-major instance ids, 0 = background.
    pub instances: &'a [u16],
    /// Name per instance id; ids without a name are ignored.
    pub names: &'a [(u16, String)],
}

/// Why a frame produced no scene graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameProblem {
    #[error("{0}")]
    Geometry(#[from] svlm_geometry::GeometryError),
    #[error("instance image has {actual} pixels, depth map {expected}")]
    InstanceSize { expected: usize, actual: usize },
    #[error("no valid depth (all pixels NaN, inf or <= 0)")]
    NoValidDepth,
    #[error("no instance pixels (empty masks)")]
    EmptyMasks,
}

impl FrameProblem {
    /// Short snake_case reason for manifests.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameProblem::Geometry(svlm_geometry::GeometryError::BadIntrinsics(_)) => {
                "bad_intrinsics"
            }
            FrameProblem::Geometry(_) | FrameProblem::InstanceSize { .. } => "size_mismatch",
            FrameProblem::NoValidDepth => "no_valid_depth",
            FrameProblem::EmptyMasks => "empty_masks",
        }
    }
}

/// The estimated scene graph: `svlm_geometry::extract_objects` (per-instance points at a stride -> voxel grid ->
/// statistical outlier removal -> largest DBSCAN cluster; RANSAC ground plane over background points -> canonical
/// frame, or the fallback pitch and height with `plane_found = false`) -> boxes; gaps are closest distances
/// between the objects' kept voxels.
pub fn from_depth(input: &DepthInput, params: &EstimateParams) -> Result<SceneGraph, FrameProblem> {
    let (w, h) = (input.depth.width as usize, input.depth.height as usize);
    if input.instances.len() != w * h {
        return Err(FrameProblem::InstanceSize {
            expected: w * h,
            actual: input.instances.len(),
        });
    }
    input.intrinsics.validate()?;
    let k = input.intrinsics;
    if (k.width, k.height) != (input.depth.width, input.depth.height) {
        return Err(FrameProblem::Geometry(
            svlm_geometry::GeometryError::SizeMismatch {
                what_a: "depth map",
                a_width: input.depth.width,
                a_height: input.depth.height,
                what_b: "intrinsics",
                b_width: k.width,
                b_height: k.height,
            },
        ));
    }
    if !input.depth.data.iter().any(|z| z.is_finite() && *z > 0.0) {
        return Err(FrameProblem::NoValidDepth);
    }
    let stats = instance_stats(input.instances, w, h, params.visibility.count_stride);
    if stats.iter().skip(1).all(|s| s.pixels == 0) {
        return Err(FrameProblem::EmptyMasks);
    }
    let occlusion = occlusion_stats(input.instances, input.depth, 0.02);
    // Visibility and occlusion decide first, so that only the objects asked about get their geometry.
    let mut skips = SkipCounts::new();
    let mut asked: Vec<(u16, &String, usize)> = Vec::new();
    for (id, name) in input.names {
        let Some(pixels) = visible(&stats, *id, &params.visibility, &mut skips) else {
            continue;
        };
        let (boundary, occluded) = occlusion.get(*id as usize).copied().unwrap_or((0, 0));
        if occluded as f64 > params.max_occluded_boundary * boundary as f64 {
            count_skip(&mut skips, "occluded");
            continue;
        }
        asked.push((*id, name, pixels));
    }
    let geometry = extract_selected_objects(
        input.depth,
        input.intrinsics,
        input.instances,
        &params.geometry,
        |id| asked.iter().any(|(a, _, _)| *a == id),
    )?;

    let mut objects = Vec::new();
    let mut sparse: Vec<&[Point3<f64>]> = Vec::new();
    for &(id, name, pixels) in &asked {
        let Some(o) = geometry.objects.iter().find(|o| o.id == id) else {
            let reason = match geometry.skipped.iter().find(|(sid, _)| *sid == id) {
                Some((_, SkipReason::NoValidDepth)) => "no_valid_depth",
                _ => "too_few_points",
            };
            count_skip(&mut skips, reason);
            continue;
        };
        let x = o.obb.rotation * Vector3::x();
        objects.push(SceneObject {
            name: name.clone(),
            base_name: name.clone(),
            instance_id: id as u32,
            points: o.points.clone(),
            center: o.aabb.center(),
            aabb: Box3 {
                min: o.aabb.min,
                max: o.aabb.max,
            },
            obb: UprightBox {
                center: o.obb.center,
                yaw: x.y.atan2(x.x),
                extents: o.obb.half_extents * 2.0,
            },
            support_height: o.aabb.min.z,
            visible_pixels: pixels,
            source: TruthSource::Estimated,
        });
        sparse.push(&o.sparse_points);
    }
    rest_on_supports(&mut objects, params);
    let n = objects.len();
    let mut gaps = vec![0.0; n * n];
    for i in 0..n {
        for j in (i + 1)..n {
            let d = closest_distance(sparse[i], sparse[j]);
            gaps[i * n + j] = d;
            gaps[j * n + i] = d;
        }
    }
    let mut graph = SceneGraph {
        objects,
        camera: geometry.frame.camera_position(),
        plane_found: geometry.frame.plane_found,
        source: TruthSource::Estimated,
        gaps,
        skips,
    };
    if !graph.plane_found {
        count_skip(&mut graph.skips, "no_ground_plane_fallback_frame");
    }
    graph.disambiguate_names();
    Ok(graph)
}

/// Lowers each object's bottom onto what it rests on: the floor (Z = 0) or the top of another object whose
/// footprint holds its centre, whichever is highest below it within `max(floor_snap, support_snap_fraction x
/// visible height)`. Updates the box, centre, upright box height and support height.
fn rest_on_supports(objects: &mut [SceneObject], params: &EstimateParams) {
    let tops: Vec<(f64, Box3)> = objects.iter().map(|o| (o.aabb.max.z, o.aabb)).collect();
    for (i, o) in objects.iter_mut().enumerate() {
        let bottom = o.aabb.min.z;
        let reach = params
            .floor_snap
            .max(params.support_snap_fraction * (o.aabb.max.z - bottom));
        let c = o.aabb.center();
        let mut support: Option<f64> = (bottom.abs() <= reach).then_some(0.0);
        for (j, (top, b)) in tops.iter().enumerate() {
            let holds = j != i
                && (b.min.x - 0.02..=b.max.x + 0.02).contains(&c.x)
                && (b.min.y - 0.02..=b.max.y + 0.02).contains(&c.y);
            if holds && *top <= bottom + params.floor_snap && bottom - top <= reach {
                support = Some(support.map_or(*top, |s: f64| s.max(*top)));
            }
        }
        if let Some(s) = support {
            o.aabb.min.z = s;
            o.support_height = s;
        }
        o.center = o.aabb.center();
        o.obb.extents.z = o.aabb.max.z - o.aabb.min.z;
        o.obb.center.z = o.center.z;
    }
}

/// Instance ids from labelled boxes when a source has no masks: inside each box `[x0, y0, x1, y1]` (pixels,
/// exclusive end), the pixels whose depth lies within `band` (relative) of the box's median depth. Later boxes
/// do not overwrite earlier ones.
pub fn instances_from_boxes(depth: &DepthMap, boxes: &[(u16, [u32; 4])], band: f64) -> Vec<u16> {
    let w = depth.width as usize;
    let mut ids = vec![0u16; w * depth.height as usize];
    for (id, b) in boxes {
        let (x0, y0) = (
            b[0].min(depth.width) as usize,
            b[1].min(depth.height) as usize,
        );
        let (x1, y1) = (
            b[2].min(depth.width) as usize,
            b[3].min(depth.height) as usize,
        );
        if x0 >= x1 || y0 >= y1 {
            continue;
        }
        let mut zs: Vec<f32> = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for v in y0..y1 {
            zs.extend(
                depth.data[v * w + x0..v * w + x1]
                    .iter()
                    .copied()
                    .filter(|z| z.is_finite() && *z > 0.0),
            );
        }
        if zs.is_empty() {
            continue;
        }
        let mid = zs.len() / 2;
        let median = *zs.select_nth_unstable_by(mid, f32::total_cmp).1 as f64;
        let (lo, hi) = (median * (1.0 - band), median * (1.0 + band));
        for v in y0..y1 {
            for u in x0..x1 {
                let z = depth.data[v * w + u] as f64;
                if ids[v * w + u] == 0 && z >= lo && z <= hi {
                    ids[v * w + u] = *id;
                }
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_stats_counts_and_flags_border() {
        #[rustfmt::skip]
        let ids = [
            0, 0, 0, 0,
            0, 1, 1, 0,
            0, 1, 2, 2,
        ];
        let s = instance_stats(&ids, 4, 3, 1);
        assert_eq!(
            s[1],
            InstanceStats {
                pixels: 3,
                touches_border: true
            }
        );
        assert_eq!(
            s[2],
            InstanceStats {
                pixels: 2,
                touches_border: true
            }
        );
        let inner = [0, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            instance_stats(&inner, 3, 3, 1)[1],
            InstanceStats {
                pixels: 1,
                touches_border: false
            }
        );
    }

    #[test]
    fn occlusion_counts_boundaries_behind_closer_objects() {
        // object 1 at 3 m, object 2 at 2 m overlapping its right side
        #[rustfmt::skip]
        let ids = [
            0, 0, 0, 0, 0,
            0, 1, 1, 2, 0,
            0, 1, 1, 2, 0,
            0, 0, 0, 0, 0,
        ];
        let z: Vec<f32> = ids.iter().map(|&i| [4.0, 3.0, 2.0][i as usize]).collect();
        let depth = DepthMap::new(5, 4, z).expect("depth");
        let s = occlusion_stats(&ids, &depth, 0.02);
        // object 1: boundary crossings 8 (2 top, 2 bottom, 2 left, 2 right), of which the 2 to object 2 occlude it
        assert_eq!(s[1], (8, 2));
        assert_eq!(s[2], (6, 0));
    }

    #[test]
    fn strided_counts_scale_and_border_stays_exact() {
        #[rustfmt::skip]
        let ids = [
            0, 0, 0, 0,
            0, 1, 1, 0,
            0, 1, 2, 2,
        ];
        // rows 0 and 2, columns 0 and 2: only one pixel of id 2 is seen, counted as 4
        let s = instance_stats(&ids, 4, 3, 2);
        assert_eq!(s[1].pixels, 0);
        assert_eq!(s[2].pixels, 4);
        assert!(s[1].touches_border && s[2].touches_border);
    }

    #[test]
    fn bad_depth_inputs_are_clear_errors() {
        let k = Intrinsics {
            fx: 50.0,
            fy: 50.0,
            cx: 8.0,
            cy: 6.0,
            width: 16,
            height: 12,
        };
        let mut ids = vec![0u16; 16 * 12];
        for v in 4..8 {
            for u in 4..8 {
                ids[v * 16 + u] = 1;
            }
        }
        let names = vec![(1u16, "red cube".to_string())];
        let run = |depth: &DepthMap, k: &Intrinsics, ids: &[u16]| {
            from_depth(
                &DepthInput {
                    depth,
                    intrinsics: k,
                    instances: ids,
                    names: &names,
                },
                &EstimateParams::default(),
            )
        };
        let nan = DepthMap::new(16, 12, vec![f32::NAN; 16 * 12]).expect("depth");
        assert_eq!(run(&nan, &k, &ids).err(), Some(FrameProblem::NoValidDepth));
        let zero = DepthMap::new(16, 12, vec![0.0; 16 * 12]).expect("depth");
        assert_eq!(
            run(&zero, &k, &ids).err().map(|e| e.reason()),
            Some("no_valid_depth")
        );
        let good = DepthMap::new(16, 12, vec![2.0; 16 * 12]).expect("depth");
        assert_eq!(
            run(&good, &k, &vec![0u16; 16 * 12]).err(),
            Some(FrameProblem::EmptyMasks)
        );
        assert!(matches!(
            run(&good, &k, &ids[..100]).err(),
            Some(FrameProblem::InstanceSize { .. })
        ));
        let small = DepthMap::new(8, 6, vec![2.0; 48]).expect("depth");
        assert_eq!(
            run(&small, &k, &ids[..48]).err().map(|e| e.reason()),
            Some("size_mismatch")
        );
        let bad_k = Intrinsics { fx: 0.0, ..k };
        assert_eq!(
            run(&good, &bad_k, &ids).err().map(|e| e.reason()),
            Some("bad_intrinsics")
        );
        // A valid frame with one small object: no error, the object is skipped as too small and counted.
        let g = run(&good, &k, &ids).expect("valid frame");
        assert!(g.objects.is_empty());
        assert_eq!(g.skips.get("too_few_pixels"), Some(&1));
    }

    #[test]
    fn boxes_become_depth_consistent_masks() {
        // a 2 m object in front of a 4 m background, inside one box
        let mut data = vec![4.0f32; 6 * 4];
        for v in 1..3 {
            for u in 1..4 {
                data[v * 6 + u] = 2.0;
            }
        }
        data[6 + 1] = f32::NAN;
        let depth = DepthMap::new(6, 4, data).expect("depth");
        let ids = instances_from_boxes(&depth, &[(5, [1, 1, 5, 3])], 0.2);
        let marked: Vec<usize> = (0..24).filter(|&i| ids[i] == 5).collect();
        assert_eq!(marked, vec![8, 9, 13, 14, 15]);
    }
}
