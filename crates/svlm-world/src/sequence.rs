//! Approach sequences: a gripper moves in a straight line towards a target object, fixed camera, the
//! closest-surface gap strictly decreasing from frame to frame and ending near contact.

use nalgebra::{Point3, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::distance::closest_surface_distance;
use crate::error::WorldError;
use crate::palette::Color;
use crate::scene::{
    ObjectTruth, Scene, SceneConfig, Support, fully_in_view, generate_scene, scene_seed,
};
use crate::shape::Shape;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceConfig {
    pub scene: SceneConfig,
    /// Closest-surface gap between gripper and target in the first frame, metres.
    pub start_gap: [f64; 2],
    /// Gap in the last frame (near contact), metres.
    pub end_gap: [f64; 2],
    /// `[w, d, h]` of the gripper; its fingers point along its local +x.
    pub gripper_extents: [f64; 3],
    /// Elevation of the approach direction above the horizontal, degrees.
    pub approach_elevation_deg: [f64; 2],
    /// Gripper and target each show at least this many pixels in every frame (not hidden, not too far), so that
    /// a measurement from depth and instance masks finds both (the reward annotation's geometry source skips
    /// objects under 30 pixels).
    pub min_visible_pixels: usize,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        Self {
            scene: SceneConfig {
                objects: [2, 6],
                ..SceneConfig::default()
            },
            start_gap: [0.3, 0.6],
            end_gap: [0.005, 0.02],
            gripper_extents: [0.14, 0.09, 0.06],
            approach_elevation_deg: [0.0, 40.0],
            min_visible_pixels: 30,
        }
    }
}

impl SequenceConfig {
    pub fn validate(&self) -> Result<(), WorldError> {
        self.scene.validate()?;
        let bad = |msg: String| Err(WorldError::Config(msg));
        if !(self.end_gap[0] > 0.0
            && self.end_gap[0] <= self.end_gap[1]
            && self.end_gap[1] < self.start_gap[0])
        {
            return bad(format!(
                "gaps must satisfy 0 < end_gap {:?} < start_gap {:?}",
                self.end_gap, self.start_gap
            ));
        }
        if !(self.start_gap[0] <= self.start_gap[1] && self.start_gap[1] <= 3.0) {
            return bad(format!(
                "start_gap {:?} must be ordered and at most 3 m",
                self.start_gap
            ));
        }
        if self
            .gripper_extents
            .iter()
            .any(|e| !(e.is_finite() && *e >= 0.01 && *e <= 0.5))
        {
            return bad(format!(
                "gripper_extents {:?} must lie within [0.01, 0.5] m",
                self.gripper_extents
            ));
        }
        let [lo, hi] = self.approach_elevation_deg;
        if !(0.0 <= lo && lo <= hi && hi <= 80.0) {
            return bad(format!(
                "approach_elevation_deg {:?} must be ordered within [0, 80]",
                self.approach_elevation_deg
            ));
        }
        Ok(())
    }
}

const ATTEMPTS: usize = 200;

/// `n_frames` scenes sharing one camera and layout, a gripper (the last object, `is_gripper`, named "gripper")
/// approaching a small target object; `closest_surface_distance(gripper, target)` strictly decreases.
pub fn approach_sequence(
    seed: u64,
    n_frames: usize,
    config: &SequenceConfig,
) -> Result<Vec<Scene>, WorldError> {
    config.validate()?;
    if n_frames < 2 {
        return Err(WorldError::Config(format!(
            "a sequence needs at least 2 frames, got {n_frames}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for attempt in 0..ATTEMPTS {
        let base = generate_scene(scene_seed(seed, attempt as u64), &config.scene);
        let targets: Vec<&ObjectTruth> = base
            .objects
            .iter()
            .filter(|o| !o.shape.is_furniture())
            .collect();
        if targets.is_empty() {
            continue;
        }
        // Prefer small objects (cans, cups, small cubes): the reward task's "the can".
        let small: Vec<&ObjectTruth> = targets
            .iter()
            .copied()
            .filter(|o| o.extents[2] <= 0.2)
            .collect();
        let pool = if small.is_empty() { &targets } else { &small };
        let target = pool[rng.random_range(0..pool.len())].clone();
        if let Some(frames) = try_sequence(&mut rng, &base, &target, n_frames, config) {
            return Ok(frames);
        }
    }
    Err(WorldError::Placement {
        what: "an approach sequence",
        attempts: ATTEMPTS,
        seed,
    })
}

fn gripper_at(id: u16, center: Point3<f64>, yaw: f64, extents: [f64; 3]) -> ObjectTruth {
    ObjectTruth {
        id,
        name: "gripper".to_string(),
        shape: Shape::Gripper,
        color: Color::Gray,
        center: center.coords.into(),
        yaw,
        extents,
        support: Support::Held,
        is_gripper: true,
    }
}

/// Offset along `dir` from the target centre at which the gap equals `gap` (bisection; the gap is 0 at the
/// centre and grows without bound far away).
fn offset_for_gap(
    target: &ObjectTruth,
    dir: &Vector3<f64>,
    yaw: f64,
    extents: [f64; 3],
    id: u16,
    gap: f64,
) -> Option<f64> {
    let centre = target.center_point();
    let gap_at =
        |s: f64| closest_surface_distance(&gripper_at(id, centre + dir * s, yaw, extents), target);
    let (mut lo, mut hi) = (0.0, 4.0);
    if gap_at(hi) < gap {
        return None;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if gap_at(mid) < gap {
            lo = mid
        } else {
            hi = mid
        }
    }
    Some(hi)
}

fn try_sequence<R: Rng + ?Sized>(
    rng: &mut R,
    base: &Scene,
    target: &ObjectTruth,
    n_frames: usize,
    config: &SequenceConfig,
) -> Option<Vec<Scene>> {
    let id = base.objects.len() as u16 + 1;
    let extents = config.gripper_extents;
    let heading = rng.random_range(0.0..std::f64::consts::TAU);
    let elevation = rng
        .random_range(config.approach_elevation_deg[0]..=config.approach_elevation_deg[1])
        .to_radians();
    // Unit vector from the target towards the gripper's start.
    let dir = Vector3::new(
        heading.cos() * elevation.cos(),
        heading.sin() * elevation.cos(),
        elevation.sin(),
    );
    // Fingers (+x) point back along the approach, horizontally.
    let yaw = (-dir.y).atan2(-dir.x);
    let start_gap = rng.random_range(config.start_gap[0]..=config.start_gap[1]);
    let end_gap = rng.random_range(config.end_gap[0]..=config.end_gap[1]);
    let s_start = offset_for_gap(target, &dir, yaw, extents, id, start_gap)?;
    let s_end = offset_for_gap(target, &dir, yaw, extents, id, end_gap)?;
    if s_end >= s_start {
        return None;
    }
    let centre = target.center_point();
    let mut frames = Vec::with_capacity(n_frames);
    let mut previous_gap = f64::INFINITY;
    for i in 0..n_frames {
        // Ease out: the gripper slows down as it nears the target.
        let t = i as f64 / (n_frames - 1) as f64;
        let eased = 1.0 - (1.0 - t) * (1.0 - t);
        let s = s_start + (s_end - s_start) * eased;
        let gripper = gripper_at(id, centre + dir * s, yaw, extents);
        let gap = closest_surface_distance(&gripper, target);
        if gap.is_nan()
            || gap >= previous_gap
            || gripper.bottom() < 0.01
            || !fully_in_view(&base.camera, &gripper)
        {
            return None;
        }
        let clear_of_others = base
            .objects
            .iter()
            .filter(|o| o.id != target.id)
            .all(|o| closest_surface_distance(&gripper, o) > 0.02);
        let clear_of_wall = base.wall.is_none_or(|w| {
            let n = Vector3::from(w.normal);
            gripper
                .obb_corners()
                .iter()
                .all(|c| n.dot(&(c.coords - Vector3::from(w.point))) > 0.02)
        });
        let cam = base.camera.position();
        let clear_of_camera = gripper.signed_distance(&cam) > 0.3;
        if !(clear_of_others && clear_of_wall && clear_of_camera) {
            return None;
        }
        previous_gap = gap;
        let mut scene = base.clone();
        scene.objects.push(gripper);
        if !shows_both(&scene, [id, target.id], config.min_visible_pixels) {
            return None;
        }
        frames.push(scene);
    }
    Some(frames)
}

/// Whether each of `ids` covers at least `min_pixels` pixels of the scene's image, counted on a render at half
/// the resolution (a quarter of the pixels, so a quarter of the threshold): occlusion by the target or another
/// object, and distance, both show in the count.
fn shows_both(scene: &Scene, ids: [u16; 2], min_pixels: usize) -> bool {
    if min_pixels == 0 {
        return true;
    }
    let mut half = scene.clone();
    half.camera.intrinsics = scene.camera.intrinsics.scaled(0.5);
    let instances = crate::render::render(&half).instances;
    ids.iter().all(|id| {
        let count = instances.iter().filter(|&&i| i == *id).count();
        4 * count >= min_pixels
    })
}

/// The id of the object a sequence's gripper approaches: the one closest to the gripper in its last frame
/// (every other object stays more than 2 cm away, the target ends within `end_gap`).
pub fn approach_target(frames: &[Scene]) -> Option<u16> {
    let last = frames.last()?;
    let gripper = last.objects.iter().find(|o| o.is_gripper)?;
    last.objects
        .iter()
        .filter(|o| !o.is_gripper)
        .map(|o| (closest_surface_distance(gripper, o), o.id))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}
