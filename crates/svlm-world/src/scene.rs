use nalgebra::{
    Isometry3, Matrix3, Point3, Rotation3, Translation3, UnitQuaternion, Vector2, Vector3,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use svlm_geometry::{Aabb, Intrinsics, Obb};

use crate::error::WorldError;
use crate::palette::Color;
use crate::shape::{Part, Shape};

/// What an object rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Support {
    /// Bottom at Z = 0.
    Floor,
    /// Bottom at the top of the object with this id.
    Object(u16),
    /// Held in the air (the gripper).
    Held,
}

/// The exact truth of one object. The object's local frame has its origin at the centre of its bounding box,
/// x along the width, y along the depth, z up; `yaw` rotates it about world Z (counter-clockwise seen from
/// above, radians, from world X to local x).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectTruth {
    /// Also the instance id in rendered masks (>= 1).
    pub id: u16,
    pub name: String,
    pub shape: Shape,
    pub color: Color,
    /// Centre of the bounding box, world frame, metres.
    pub center: [f64; 3],
    pub yaw: f64,
    /// `[w, d, h]`: size along local x, local y and up, metres.
    pub extents: [f64; 3],
    pub support: Support,
    pub is_gripper: bool,
}

impl ObjectTruth {
    pub fn center_point(&self) -> Point3<f64> {
        Point3::from(self.center)
    }

    /// World from the object's local frame (translation to the centre, rotation by yaw about Z).
    pub fn world_from_local(&self) -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::from(Vector3::from(self.center)),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), self.yaw),
        )
    }

    pub fn parts(&self) -> Vec<Part> {
        self.shape.parts(self.extents)
    }

    pub fn bottom(&self) -> f64 {
        self.center[2] - self.extents[2] / 2.0
    }

    pub fn top(&self) -> f64 {
        self.center[2] + self.extents[2] / 2.0
    }

    /// The exact world axis-aligned box of the solid (not of the yawed bounding box: round parts stay tight).
    pub fn world_aabb(&self) -> Aabb {
        let pose = self.world_from_local();
        let mut min = Point3::from(Vector3::repeat(f64::INFINITY));
        let mut max = Point3::from(Vector3::repeat(f64::NEG_INFINITY));
        for part in self.parts() {
            let centre = pose * Point3::from(part.offset);
            let half = part.primitive.half_extents();
            let reach = if part.primitive.is_round() {
                half
            } else {
                let rot = pose.rotation.to_rotation_matrix();
                let abs = rot.matrix().abs();
                abs * half
            };
            for axis in 0..3 {
                min[axis] = min[axis].min(centre[axis] - reach[axis]);
                max[axis] = max[axis].max(centre[axis] + reach[axis]);
            }
        }
        Aabb { min, max }
    }

    /// The exact upright oriented box: the yawed bounding box of extents `[w, d, h]`.
    pub fn obb(&self) -> Obb {
        Obb {
            center: self.center_point(),
            rotation: Rotation3::from_axis_angle(&Vector3::z_axis(), self.yaw),
            half_extents: Vector3::from(self.extents) / 2.0,
        }
    }

    /// Corners of [`ObjectTruth::obb`]: bottom four (counter-clockwise from local (-w/2, -d/2)) then top four.
    pub fn obb_corners(&self) -> [Point3<f64>; 8] {
        let pose = self.world_from_local();
        let [w, d, h] = self.extents.map(|e| e / 2.0);
        let local = [(-w, -d), (w, -d), (w, d), (-w, d)];
        std::array::from_fn(|i| {
            let (x, y) = local[i % 4];
            let z = if i < 4 { -h } else { h };
            pose * Point3::new(x, y, z)
        })
    }

    /// Exact signed distance from a world point to the solid (negative inside; exact outside, and exact inside
    /// single-part shapes).
    pub fn signed_distance(&self, p: &Point3<f64>) -> f64 {
        let local = self.world_from_local().inverse_transform_point(p);
        self.parts()
            .iter()
            .map(|part| part.signed_distance_local(&local))
            .fold(f64::INFINITY, f64::min)
    }

    /// `n` points drawn uniformly by area on the solid's outer surface (points of one part's surface buried
    /// in another part are redrawn), world frame.
    pub fn sample_surface<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<Point3<f64>> {
        let parts = self.parts();
        let areas: Vec<f64> = parts.iter().map(|p| p.primitive.surface_area()).collect();
        let total: f64 = areas.iter().sum();
        let pose = self.world_from_local();
        let mut out = Vec::with_capacity(n);
        let mut attempts = 0usize;
        while out.len() < n && attempts < 100 * n.max(1) {
            attempts += 1;
            let mut pick = rng.random::<f64>() * total;
            let mut index = parts.len() - 1;
            for (i, area) in areas.iter().enumerate() {
                if pick < *area {
                    index = i;
                    break;
                }
                pick -= area;
            }
            let local =
                Point3::from(parts[index].offset + parts[index].primitive.sample_surface(rng));
            let buried = parts
                .iter()
                .enumerate()
                .any(|(j, other)| j != index && other.signed_distance_local(&local) < -1e-9);
            if !buried {
                out.push(pose * local);
            }
        }
        out
    }

    /// Yawed footprint rectangle on the floor plane: centre, unit axes, half sizes.
    pub(crate) fn footprint(&self) -> Footprint {
        let (s, c) = self.yaw.sin_cos();
        Footprint {
            center: Vector2::new(self.center[0], self.center[1]),
            axes: [Vector2::new(c, s), Vector2::new(-s, c)],
            half: [self.extents[0] / 2.0, self.extents[1] / 2.0],
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Footprint {
    pub center: Vector2<f64>,
    pub axes: [Vector2<f64>; 2],
    pub half: [f64; 2],
}

impl Footprint {
    fn corners(&self) -> [Vector2<f64>; 4] {
        let [a, b] = self.axes;
        let [ha, hb] = self.half;
        [
            self.center - a * ha - b * hb,
            self.center + a * ha - b * hb,
            self.center + a * ha + b * hb,
            self.center - a * ha + b * hb,
        ]
    }

    /// Separating-axis test on the rectangles grown by `margin`.
    pub fn overlaps(&self, other: &Footprint, margin: f64) -> bool {
        for axis in self.axes.iter().chain(other.axes.iter()) {
            let project = |f: &Footprint| {
                let c = f.center.dot(axis);
                let r =
                    f.half[0] * f.axes[0].dot(axis).abs() + f.half[1] * f.axes[1].dot(axis).abs();
                (c - r, c + r)
            };
            let (a0, a1) = project(self);
            let (b0, b1) = project(other);
            if a1 + margin <= b0 || b1 + margin <= a0 {
                return false;
            }
        }
        true
    }

    /// Whether this rectangle lies inside `outer` shrunk by `margin`.
    pub fn inside(&self, outer: &Footprint, margin: f64) -> bool {
        self.corners().iter().all(|corner| {
            let rel = corner - outer.center;
            (0..2).all(|k| rel.dot(&outer.axes[k]).abs() <= outer.half[k] - margin)
        })
    }
}

/// A pinhole camera placed in the world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub intrinsics: Intrinsics,
    /// Maps OpenCV camera-frame points (x right, y down, z forward) to the world.
    pub world_from_camera: Isometry3<f64>,
}

impl Camera {
    pub fn position(&self) -> Point3<f64> {
        Point3::from(self.world_from_camera.translation.vector)
    }

    /// Continuous pixel coordinates of a world point (`None` behind the camera).
    pub fn project_world(&self, p: &Point3<f64>) -> Option<(f64, f64)> {
        self.intrinsics
            .project(&self.world_from_camera.inverse_transform_point(p))
    }

    /// Camera looking along horizontal heading `yaw` (radians from world X), tilted down by `pitch`, rolled by
    /// `roll` about its optical axis (radians).
    pub fn looking(
        intrinsics: Intrinsics,
        position: Point3<f64>,
        yaw: f64,
        pitch: f64,
        roll: f64,
    ) -> Self {
        let heading = Vector3::new(yaw.cos(), yaw.sin(), 0.0);
        let forward = heading * pitch.cos() - Vector3::z() * pitch.sin();
        let right0 = Vector3::new(yaw.sin(), -yaw.cos(), 0.0);
        let down0 = forward.cross(&right0);
        let (s, c) = roll.sin_cos();
        let right = right0 * c + down0 * s;
        let down = down0 * c - right0 * s;
        let rotation =
            Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[right, down, forward]));
        Self {
            intrinsics,
            world_from_camera: Isometry3::from_parts(
                Translation3::from(position.coords),
                UnitQuaternion::from_rotation_matrix(&rotation),
            ),
        }
    }
}

/// The floor: a checkerboard of two colours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    pub colors: [[u8; 3]; 2],
    /// Tile side in metres.
    pub tile: f64,
}

/// A vertical wall plane `{p : normal . (p - point) = 0}` facing the camera, from the floor up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Wall {
    pub point: [f64; 3],
    /// Horizontal unit normal pointing towards the camera.
    pub normal: [f64; 3],
    pub color: [u8; 3],
}

/// One directional light plus ambient.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Light {
    /// Unit vector from the scene towards the light.
    pub direction: [f64; 3],
    pub ambient: f64,
    pub diffuse: f64,
}

/// A procedural scene with its exact truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub seed: u64,
    pub camera: Camera,
    /// Object `i` has id `i + 1`.
    pub objects: Vec<ObjectTruth>,
    pub floor: Floor,
    pub wall: Option<Wall>,
    pub light: Light,
}

impl Scene {
    /// The canonical (gravity) frame of `docs/ARCHITECTURE.md`: origin on the floor below the camera, X = camera
    /// right projected on the floor, Z up, Y = Z x X (away from the camera).
    pub fn canonical_from_world(&self) -> Isometry3<f64> {
        let pose = &self.camera.world_from_camera;
        let right = pose.rotation * Vector3::x();
        let mut x = Vector3::new(right.x, right.y, 0.0);
        if x.norm() < 1e-9 {
            // Camera rolled by 90 degrees: fall back to the horizontal part of the viewing direction.
            let forward = pose.rotation * Vector3::z();
            x = Vector3::new(forward.y, -forward.x, 0.0);
        }
        let x = x.normalize();
        let z = Vector3::z();
        let y = z.cross(&x);
        let rotation = Rotation3::from_matrix_unchecked(Matrix3::from_rows(&[
            x.transpose(),
            y.transpose(),
            z.transpose(),
        ]));
        let origin = Vector3::new(pose.translation.vector.x, pose.translation.vector.y, 0.0);
        let rotation = UnitQuaternion::from_rotation_matrix(&rotation);
        Isometry3::from_parts(Translation3::from(-(rotation * origin)), rotation)
    }

    pub fn object(&self, id: u16) -> Option<&ObjectTruth> {
        self.objects.iter().find(|o| o.id == id)
    }

    pub fn object_by_name(&self, name: &str) -> Option<&ObjectTruth> {
        self.objects.iter().find(|o| o.name == name)
    }

    /// Height of the top surface an object with this support rests on.
    pub fn support_height(&self, support: Support) -> Option<f64> {
        match support {
            Support::Floor => Some(0.0),
            Support::Object(id) => self.object(id).map(|o| o.top()),
            Support::Held => None,
        }
    }
}

/// What [`generate_scene`] draws from. Ranges are inclusive `[min, max]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SceneConfig {
    pub width: u32,
    pub height: u32,
    /// Number of objects, furniture included (fewer when the floor in view is too crowded).
    pub objects: [usize; 2],
    /// Forbid two objects with the same name; otherwise duplicates occur naturally.
    pub unique_names: bool,
    /// Forbid two small objects of the same colour (furniture is exempt), so that a colour names an object.
    pub unique_colors: bool,
    /// Chance of a table (objects then also rest on its top).
    pub table_probability: f64,
    /// Chance of each of chair, shelf, cabinet.
    pub furniture_probability: f64,
    pub wall_probability: f64,
    pub hfov_deg: [f64; 2],
    pub camera_height: [f64; 2],
    /// Downward pitch of the optical axis.
    pub pitch_deg: [f64; 2],
    /// Roll is drawn from `[-max_roll_deg, max_roll_deg]`.
    pub max_roll_deg: f64,
    /// Objects on the floor are placed at least this far (horizontally) from the camera.
    pub min_distance: f64,
    /// Objects are placed at most this far (horizontally) from the camera.
    pub max_distance: f64,
    /// Smallest projected size of an object's bounding box (its larger side), as a fraction of the image width,
    /// so that every object is big enough to be asked about.
    pub min_projected_size: f64,
    /// Colours the small objects are drawn from; empty = the whole palette ([`Color::ALL`]).
    pub colors: Vec<Color>,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            width: 256,
            height: 256,
            objects: [3, 8],
            unique_names: true,
            unique_colors: false,
            table_probability: 0.5,
            furniture_probability: 0.25,
            wall_probability: 0.5,
            hfov_deg: [50.0, 75.0],
            camera_height: [1.0, 1.8],
            pitch_deg: [10.0, 35.0],
            max_roll_deg: 0.0,
            min_distance: 0.6,
            max_distance: 5.0,
            min_projected_size: 0.04,
            colors: Vec::new(),
        }
    }
}

impl SceneConfig {
    pub fn validate(&self) -> Result<(), WorldError> {
        let bad = |msg: String| Err(WorldError::Config(msg));
        if self.width < 8 || self.height < 8 || self.width > 8192 || self.height > 8192 {
            return bad(format!(
                "image size {}x{} must be within 8..=8192",
                self.width, self.height
            ));
        }
        if self.objects[0] == 0 || self.objects[0] > self.objects[1] || self.objects[1] > 60 {
            return bad(format!(
                "objects range {:?} must satisfy 1 <= min <= max <= 60",
                self.objects
            ));
        }
        let ordered = |name: &str, r: [f64; 2], lo: f64, hi: f64| -> Result<(), WorldError> {
            if !(r[0].is_finite() && r[1].is_finite() && lo <= r[0] && r[0] <= r[1] && r[1] <= hi) {
                return Err(WorldError::Config(format!(
                    "{name} range {r:?} must be ordered within [{lo}, {hi}]"
                )));
            }
            Ok(())
        };
        ordered("hfov_deg", self.hfov_deg, 10.0, 120.0)?;
        ordered("camera_height", self.camera_height, 0.3, 5.0)?;
        ordered("pitch_deg", self.pitch_deg, 0.0, 80.0)?;
        for (name, p) in [
            ("table_probability", self.table_probability),
            ("furniture_probability", self.furniture_probability),
            ("wall_probability", self.wall_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} = {p} must be within [0, 1]"));
            }
        }
        if !(0.0..=30.0).contains(&self.max_roll_deg) {
            return bad(format!(
                "max_roll_deg = {} must be within [0, 30]",
                self.max_roll_deg
            ));
        }
        if !(0.0..=0.5).contains(&self.min_projected_size) {
            return bad(format!(
                "min_projected_size = {} must be within [0, 0.5]",
                self.min_projected_size
            ));
        }
        let mut colors = self.colors.clone();
        colors.sort();
        colors.dedup();
        if colors.len() != self.colors.len() {
            return bad(format!("colors {:?} lists a colour twice", self.colors));
        }
        if !(self.min_distance.is_finite()
            && self.min_distance >= 0.1
            && self.min_distance < self.max_distance)
        {
            return bad(format!(
                "min_distance = {} must be >= 0.1 m and below max_distance {}",
                self.min_distance, self.max_distance
            ));
        }
        if !(self.max_distance.is_finite() && self.max_distance >= 1.5) {
            return bad(format!(
                "max_distance = {} must be >= 1.5 m",
                self.max_distance
            ));
        }
        Ok(())
    }
}

/// Seed of scene `index` in a run with base seed `base` (SplitMix64 of both, so neighbouring indices give
/// unrelated scenes).
pub fn scene_seed(base: u64, index: u64) -> u64 {
    let mut z = base
        ^ index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Horizontal clearance around the camera that tall objects (reaching within 0.3 m of its height) keep.
const NEAR_CLEARANCE: f64 = 0.6;
const FOOTPRINT_MARGIN: f64 = 0.03;
const IMAGE_MARGIN_PX: f64 = 2.0;

/// A random scene, the same for the same `seed` and `config`. Invalid configs are clamped into their valid
/// ranges (use [`SceneConfig::validate`] to reject them instead).
pub fn generate_scene(seed: u64, config: &SceneConfig) -> Scene {
    let config = sanitized(config);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A camera whose view cannot hold the minimum is redrawn; after a few tries the scene keeps what fits.
    let mut best: Option<Scene> = None;
    for _ in 0..8 {
        let camera = sample_camera(&mut rng, &config);
        let target = rng.random_range(config.objects[0]..=config.objects[1]);
        let objects = place_objects(&mut rng, &config, &camera, target);
        let enough = objects.len() >= config.objects[0];
        let scene = finish_scene(&mut rng, &config, seed, camera, objects);
        if enough {
            return scene;
        }
        if best
            .as_ref()
            .is_none_or(|b| b.objects.len() < scene.objects.len())
        {
            best = Some(scene);
        }
    }
    best.unwrap_or_else(|| {
        let camera = sample_camera(&mut rng, &config);
        finish_scene(&mut rng, &config, seed, camera, Vec::new())
    })
}

fn sanitized(config: &SceneConfig) -> SceneConfig {
    let mut c = config.clone();
    let order = |r: [f64; 2], lo: f64, hi: f64| {
        let a = if r[0].is_finite() {
            r[0].clamp(lo, hi)
        } else {
            lo
        };
        let b = if r[1].is_finite() {
            r[1].clamp(lo, hi)
        } else {
            hi
        };
        [a.min(b), a.max(b)]
    };
    c.width = c.width.clamp(8, 8192);
    c.height = c.height.clamp(8, 8192);
    c.objects[1] = c.objects[1].clamp(1, 60);
    c.objects[0] = c.objects[0].clamp(1, c.objects[1]);
    c.hfov_deg = order(c.hfov_deg, 10.0, 120.0);
    c.camera_height = order(c.camera_height, 0.3, 5.0);
    c.pitch_deg = order(c.pitch_deg, 0.0, 80.0);
    c.table_probability = c.table_probability.clamp(0.0, 1.0);
    c.furniture_probability = c.furniture_probability.clamp(0.0, 1.0);
    c.wall_probability = c.wall_probability.clamp(0.0, 1.0);
    c.max_roll_deg = if c.max_roll_deg.is_finite() {
        c.max_roll_deg.clamp(0.0, 30.0)
    } else {
        0.0
    };
    c.max_distance = if c.max_distance.is_finite() {
        c.max_distance.max(1.5)
    } else {
        6.0
    };
    c.min_distance = if c.min_distance.is_finite() {
        c.min_distance.clamp(0.1, c.max_distance - 0.1)
    } else {
        NEAR_CLEARANCE
    };
    c
}

fn uniform<R: Rng + ?Sized>(rng: &mut R, range: [f64; 2]) -> f64 {
    if range[1] > range[0] {
        rng.random_range(range[0]..=range[1])
    } else {
        range[0]
    }
}

pub(crate) fn sample_camera<R: Rng + ?Sized>(rng: &mut R, config: &SceneConfig) -> Camera {
    let hfov = uniform(rng, config.hfov_deg);
    let intrinsics = Intrinsics::from_horizontal_fov(config.width, config.height, hfov);
    let height = uniform(rng, config.camera_height);
    let pitch = uniform(rng, config.pitch_deg).to_radians();
    let roll = uniform(rng, [-config.max_roll_deg, config.max_roll_deg]).to_radians();
    let yaw = rng.random_range(0.0..std::f64::consts::TAU);
    let position = Point3::new(
        rng.random_range(-1.0..1.0),
        rng.random_range(-1.0..1.0),
        height,
    );
    Camera::looking(intrinsics, position, yaw, pitch, roll)
}

/// Whether every corner of the object's bounding box projects inside the image (with a margin).
pub(crate) fn fully_in_view(camera: &Camera, object: &ObjectTruth) -> bool {
    let k = &camera.intrinsics;
    object.obb_corners().iter().all(|corner| {
        let p = camera.world_from_camera.inverse_transform_point(corner);
        if p.z < 0.1 {
            return false;
        }
        let (u, v) = (k.fx * p.x / p.z + k.cx, k.fy * p.y / p.z + k.cy);
        u >= IMAGE_MARGIN_PX - 0.5
            && v >= IMAGE_MARGIN_PX - 0.5
            && u <= k.width as f64 - 0.5 - IMAGE_MARGIN_PX
            && v <= k.height as f64 - 0.5 - IMAGE_MARGIN_PX
    })
}

/// Larger side of the object's projected bounding box, as a fraction of the image width.
pub(crate) fn projected_size(camera: &Camera, object: &ObjectTruth) -> f64 {
    let (mut u0, mut v0, mut u1, mut v1) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for corner in object.obb_corners() {
        let Some((u, v)) = camera.project_world(&corner) else {
            return 0.0;
        };
        (u0, v0, u1, v1) = (u0.min(u), v0.min(v), u1.max(u), v1.max(v));
    }
    (u1 - u0).max(v1 - v0) / camera.intrinsics.width as f64
}

/// A floor point seen at a random pixel below the horizon (biased towards the lower half of the image so that
/// objects are near enough to read), between `min_distance` and `max_distance` of the camera.
fn sample_floor_point<R: Rng + ?Sized>(
    rng: &mut R,
    camera: &Camera,
    min_distance: f64,
    max_distance: f64,
) -> Option<Vector2<f64>> {
    let k = &camera.intrinsics;
    let u = rng.random_range(0.0..k.width as f64) - 0.5;
    let t: f64 = rng.random();
    let v = (k.height as f64 - 0.5) - t.powf(1.3) * k.height as f64;
    let dir_cam = Vector3::new((u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0);
    let dir = camera.world_from_camera.rotation * dir_cam;
    let origin = camera.position();
    if dir.z >= -1e-6 {
        return None;
    }
    let s = -origin.z / dir.z;
    let hit = origin + dir * s;
    let horizontal = Vector2::new(hit.x - origin.x, hit.y - origin.y).norm();
    (horizontal <= max_distance && horizontal >= min_distance).then_some(Vector2::new(hit.x, hit.y))
}

struct Candidate {
    shape: Shape,
    color: Color,
    noun: &'static str,
    extents: [f64; 3],
}

const FURNITURE_COLORS: [(Color, f64); 4] = [
    (Color::Brown, 0.55),
    (Color::White, 0.2),
    (Color::Gray, 0.15),
    (Color::Black, 0.1),
];

fn pick_weighted<R: Rng + ?Sized, T: Copy>(rng: &mut R, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn furniture_candidate<R: Rng + ?Sized>(rng: &mut R, shape: Shape) -> Candidate {
    let color = pick_weighted(rng, &FURNITURE_COLORS);
    let mut r = |lo: f64, hi: f64| rng.random_range(lo..=hi);
    let extents = match shape {
        Shape::Table => [r(0.8, 1.2), r(0.5, 0.9), r(0.6, 0.8)],
        Shape::Chair => [r(0.4, 0.5), r(0.4, 0.5), r(0.8, 1.0)],
        Shape::Shelf => [r(0.6, 1.2), r(0.3, 0.45), r(0.7, 1.2)],
        _ => [r(0.4, 1.0), r(0.4, 0.6), r(0.5, 1.0)],
    };
    Candidate {
        shape,
        color,
        noun: shape.name(),
        extents,
    }
}

fn small_object_candidate<R: Rng + ?Sized>(rng: &mut R, colors: &[Color]) -> Candidate {
    let shapes = [
        Shape::Cube,
        Shape::Box,
        Shape::Sphere,
        Shape::Cylinder,
        Shape::Cone,
    ];
    let shape = shapes[rng.random_range(0..shapes.len())];
    let palette = if colors.is_empty() {
        &Color::ALL[..]
    } else {
        colors
    };
    let color = palette[rng.random_range(0..palette.len())];
    let mut r = |lo: f64, hi: f64| rng.random_range(lo..=hi);
    let (extents, noun) = match shape {
        Shape::Cube => {
            let side = if r(0.0, 1.0) < 0.5 {
                r(0.05, 0.15)
            } else {
                r(0.2, 0.45)
            };
            ([side; 3], "cube")
        }
        Shape::Box => ([r(0.2, 0.6), r(0.2, 0.6), r(0.15, 0.5)], "box"),
        Shape::Sphere => {
            let diameter = r(0.06, 0.35);
            (
                [diameter; 3],
                if r(0.0, 1.0) < 0.5 { "ball" } else { "sphere" },
            )
        }
        Shape::Cylinder => {
            if r(0.0, 1.0) < 0.5 {
                let diameter = r(0.05, 0.1);
                (
                    [diameter, diameter, r(0.08, 0.15)],
                    if r(0.0, 1.0) < 0.6 { "can" } else { "cup" },
                )
            } else {
                let diameter = r(0.15, 0.45);
                ([diameter, diameter, r(0.2, 0.8)], "cylinder")
            }
        }
        _ => {
            let diameter = r(0.1, 0.4);
            ([diameter, diameter, r(0.15, 0.6)], "cone")
        }
    };
    Candidate {
        shape,
        color,
        noun,
        extents,
    }
}

pub(crate) fn object_name(shape: Shape, color: Color, noun: &str) -> String {
    if shape.is_furniture() && color == Color::Brown {
        format!("wooden {noun}")
    } else {
        format!("{color} {noun}")
    }
}

fn place_objects<R: Rng + ?Sized>(
    rng: &mut R,
    config: &SceneConfig,
    camera: &Camera,
    target: usize,
) -> Vec<ObjectTruth> {
    let mut objects: Vec<ObjectTruth> = Vec::new();
    let mut wanted: Vec<Shape> = Vec::new();
    if rng.random::<f64>() < config.table_probability {
        wanted.push(Shape::Table);
    }
    for shape in [Shape::Chair, Shape::Shelf, Shape::Cabinet] {
        if rng.random::<f64>() < config.furniture_probability {
            wanted.push(shape);
        }
    }
    // Furniture never takes more than half of the objects asked for.
    wanted.truncate(target / 2);
    for shape in wanted {
        for _ in 0..40 {
            let candidate = furniture_candidate(rng, shape);
            if let Some(object) = try_place(rng, config, camera, &objects, candidate, false) {
                objects.push(object);
                break;
            }
        }
    }
    let mut failures = 0;
    while objects.len() < target && failures < 150 {
        let candidate = small_object_candidate(rng, &config.colors);
        let on_top = objects.iter().any(|o| o.shape.is_support()) && rng.random::<f64>() < 0.45;
        match try_place(rng, config, camera, &objects, candidate, on_top) {
            Some(object) => objects.push(object),
            None => failures += 1,
        }
    }
    objects
}

fn try_place<R: Rng + ?Sized>(
    rng: &mut R,
    config: &SceneConfig,
    camera: &Camera,
    placed: &[ObjectTruth],
    candidate: Candidate,
    on_support: bool,
) -> Option<ObjectTruth> {
    let name = object_name(candidate.shape, candidate.color, candidate.noun);
    if config.unique_names && placed.iter().any(|o| o.name == name) {
        return None;
    }
    if config.unique_colors
        && !candidate.shape.is_furniture()
        && placed
            .iter()
            .any(|o| !o.shape.is_furniture() && o.color == candidate.color)
    {
        return None;
    }
    let yaw = rng.random_range(-std::f64::consts::PI..std::f64::consts::PI);
    let id = placed.len() as u16 + 1;
    let [w, d, h] = candidate.extents;
    let (center_xy, support, base) = if on_support {
        if w.max(d).max(h) > 0.4 {
            return None;
        }
        let supports: Vec<&ObjectTruth> = placed.iter().filter(|o| o.shape.is_support()).collect();
        let host = supports[rng.random_range(0..supports.len())];
        let fp = host.footprint();
        let s = rng.random_range(-1.0..=1.0) * fp.half[0];
        let t = rng.random_range(-1.0..=1.0) * fp.half[1];
        (
            fp.center + fp.axes[0] * s + fp.axes[1] * t,
            Support::Object(host.id),
            host.top(),
        )
    } else {
        (
            sample_floor_point(rng, camera, config.min_distance, config.max_distance)?,
            Support::Floor,
            0.0,
        )
    };
    let object = ObjectTruth {
        id,
        name,
        shape: candidate.shape,
        color: candidate.color,
        center: [center_xy.x, center_xy.y, base + h / 2.0],
        yaw,
        extents: [w, d, h],
        support,
        is_gripper: false,
    };
    if !fits(camera, placed, &object) || projected_size(camera, &object) < config.min_projected_size
    {
        return None;
    }
    Some(object)
}

/// Non-intersection and visibility rules shared by scene generation and sequences: the object is fully in
/// view, clear of the camera, inside its support's top, and its footprint is clear of every object that shares
/// its support level (floor objects also stay clear of tables, so nothing stands under a table).
pub(crate) fn fits(camera: &Camera, placed: &[ObjectTruth], object: &ObjectTruth) -> bool {
    if !fully_in_view(camera, object) {
        return false;
    }
    let cam = camera.position();
    let fp = object.footprint();
    let to_camera = Vector2::new(cam.x, cam.y) - fp.center;
    if to_camera.norm() < NEAR_CLEARANCE + fp.half[0].hypot(fp.half[1])
        && object.top() > cam.z - 0.3
    {
        return false;
    }
    for other in placed {
        let other_fp = other.footprint();
        let conflict = match (object.support, other.support) {
            (Support::Object(a), Support::Object(b)) => {
                a == b && fp.overlaps(&other_fp, FOOTPRINT_MARGIN)
            }
            (Support::Object(a), _) if a == other.id => !fp.inside(&other_fp, 0.01),
            (Support::Object(_), _) => false,
            (_, Support::Object(_)) => false,
            _ => fp.overlaps(&other_fp, FOOTPRINT_MARGIN),
        };
        if conflict {
            return false;
        }
    }
    true
}

fn finish_scene<R: Rng + ?Sized>(
    rng: &mut R,
    config: &SceneConfig,
    seed: u64,
    camera: Camera,
    objects: Vec<ObjectTruth>,
) -> Scene {
    const FLOORS: [[[u8; 3]; 2]; 5] = [
        [[196, 170, 130], [178, 150, 110]],
        [[150, 150, 150], [120, 120, 120]],
        [[210, 200, 185], [185, 175, 160]],
        [[140, 110, 80], [120, 92, 66]],
        [[170, 180, 175], [145, 155, 150]],
    ];
    const WALLS: [[u8; 3]; 5] = [
        [225, 220, 210],
        [200, 210, 220],
        [215, 225, 205],
        [235, 230, 225],
        [190, 190, 195],
    ];
    let floor = Floor {
        colors: FLOORS[rng.random_range(0..FLOORS.len())],
        tile: rng.random_range(0.3..=0.6),
    };
    let wall = if rng.random::<f64>() < config.wall_probability {
        let forward = camera.world_from_camera.rotation * Vector3::z();
        let heading = Vector3::new(forward.x, forward.y, 0.0).normalize();
        let cam = camera.position();
        let farthest = objects
            .iter()
            .flat_map(|o| o.obb_corners())
            .map(|c| (c.coords - cam.coords).dot(&heading))
            .fold(2.0, f64::max);
        let distance = farthest + rng.random_range(0.3..=1.5);
        let point = cam.coords + heading * distance;
        Some(Wall {
            point: [point.x, point.y, 0.0],
            normal: [-heading.x, -heading.y, 0.0],
            color: WALLS[rng.random_range(0..WALLS.len())],
        })
    } else {
        None
    };
    let elevation = rng.random_range(40.0_f64..=70.0).to_radians();
    // Light from the camera's side (as in most photos), so faces and walls seen by the camera are lit.
    let forward = camera.world_from_camera.rotation * Vector3::z();
    let towards_camera = (-forward.y).atan2(-forward.x);
    let azimuth = towards_camera + rng.random_range(-1.0..=1.0);
    let light = Light {
        direction: [
            elevation.cos() * azimuth.cos(),
            elevation.cos() * azimuth.sin(),
            elevation.sin(),
        ],
        ambient: rng.random_range(0.35..=0.45),
        diffuse: 0.65,
    };
    Scene {
        seed,
        camera,
        objects,
        floor,
        wall,
        light,
    }
}
