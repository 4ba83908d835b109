use nalgebra::{
    Isometry3, Matrix3, Point3, Rotation3, Translation3, Unit, UnitQuaternion, Vector3,
};

use crate::plane::Plane;

/// The gravity-aligned frame every spatial answer uses (ARCHITECTURE.md): Z up (ground normal), X the camera's
/// right projected onto the ground, Y = Z x X (horizontal, away from the camera), origin on the ground below
/// the camera centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanonicalFrame {
    /// Maps camera-frame points to canonical points.
    pub from_camera: Isometry3<f64>,
    /// `false` when the frame comes from the assumed pitch and height instead of a detected ground plane.
    pub plane_found: bool,
    /// Camera centre height above the ground, metres.
    pub camera_height: f64,
}

impl CanonicalFrame {
    pub fn to_canonical(&self, p: &Point3<f64>) -> Point3<f64> {
        self.from_camera.transform_point(p)
    }

    /// Canonical-frame position of the camera centre: `(0, 0, camera_height)`.
    pub fn camera_position(&self) -> Point3<f64> {
        self.from_camera.transform_point(&Point3::origin())
    }

    /// The camera's up direction (canonical +Z) expressed in the camera frame.
    pub fn up_in_camera(&self) -> Vector3<f64> {
        self.from_camera
            .rotation
            .inverse_transform_vector(&Vector3::z())
    }
}

/// Up direction in the camera frame for a camera pitched down by `pitch_deg` (positive looks down) with no roll.
pub fn up_for_pitch(pitch_deg: f64) -> Unit<Vector3<f64>> {
    let pitch = pitch_deg.to_radians();
    Unit::new_normalize(Vector3::new(0.0, -pitch.cos(), -pitch.sin()))
}

/// Canonical frame from the ground plane (camera frame), or — when `ground` is `None` or unusable — from a
/// camera pitched down by `fallback_pitch_deg` at `fallback_height_m` above the ground (`plane_found = false`).
/// The plane normal may point either way; it is oriented towards the camera.
pub fn canonical_frame(
    ground: Option<&Plane>,
    fallback_pitch_deg: f64,
    fallback_height_m: f64,
) -> CanonicalFrame {
    if let Some(plane) = ground
        && plane.normal.iter().all(|c| c.is_finite())
        && plane.d.is_finite()
        && plane.d != 0.0
    {
        let plane = if plane.d < 0.0 {
            plane.flipped()
        } else {
            *plane
        };
        return frame_from_up(plane.normal, plane.d, true);
    }
    frame_from_up(up_for_pitch(fallback_pitch_deg), fallback_height_m, false)
}

fn frame_from_up(up: Unit<Vector3<f64>>, height: f64, plane_found: bool) -> CanonicalFrame {
    // X: the camera's right projected onto the ground; if the camera is rolled so far that its right is
    // (almost) vertical, use its forward axis rotated to the right instead.
    let right = Vector3::x();
    let mut x = right - up.into_inner() * up.dot(&right);
    if x.norm() < 1e-6 {
        let forward = Vector3::z();
        let f = forward - up.into_inner() * up.dot(&forward);
        x = f.cross(&up);
    }
    let x = x.normalize();
    let z = up.into_inner();
    let y = z.cross(&x);
    // Rows are the canonical axes in camera coordinates: p_can = R (p_cam - origin).
    let r = Matrix3::from_rows(&[x.transpose(), y.transpose(), z.transpose()]);
    let rotation = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(r));
    let origin = -z * height; // the foot of the camera centre on the plane
    let translation = -(rotation * origin);
    CanonicalFrame {
        from_camera: Isometry3::from_parts(Translation3::from(translation), rotation),
        plane_found,
        camera_height: height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{DepthMap, Intrinsics, depth_to_points};
    use crate::plane::{GroundPlaneParams, find_ground_plane};

    /// A camera at `height` above a floor, looking along world +Y pitched down by `pitch_deg`, world Z up.
    /// Returns the camera's axes in world coordinates as columns (x right, y down, z forward).
    fn camera_axes(pitch_deg: f64) -> Matrix3<f64> {
        let t = pitch_deg.to_radians();
        let x = Vector3::new(1.0, 0.0, 0.0);
        let z = Vector3::new(0.0, t.cos(), -t.sin());
        let y = z.cross(&x);
        Matrix3::from_columns(&[x, y, z])
    }

    #[test]
    fn tilted_camera_floor_maps_to_z_zero_with_z_up() {
        let (height, pitch) = (1.6, 25.0);
        let axes = camera_axes(pitch);
        let k = Intrinsics::from_horizontal_fov(160, 120, 70.0);
        // Ray-cast the floor for every pixel: depth is the ray parameter t of (u, v, 1) directions.
        let mut depth = Vec::with_capacity(160 * 120);
        for v in 0..120 {
            for u in 0..160 {
                let ray = axes * k.unproject(u as f64, v as f64, 1.0).coords;
                depth.push(if ray.z < -1e-3 {
                    (height / -ray.z) as f32
                } else {
                    0.0
                });
            }
        }
        let depth = DepthMap::new(160, 120, depth).unwrap();
        let (cloud, stats) = depth_to_points(&depth, &k, None).unwrap();
        assert!(stats.valid > 10_000);
        let ground = find_ground_plane(&cloud, &GroundPlaneParams::default()).unwrap();
        let frame = canonical_frame(Some(&ground), 0.0, 1.0);
        assert!(frame.plane_found);
        assert!(
            (frame.camera_height - height).abs() < 1e-3,
            "{}",
            frame.camera_height
        );
        for p in cloud.points.iter().step_by(97) {
            assert!(frame.to_canonical(p).z.abs() < 1e-3);
        }
        let camera = frame.camera_position();
        assert!(
            (camera - Point3::new(0.0, 0.0, height)).norm() < 1e-3,
            "{camera}"
        );
        // A point 0.5 m above the floor, 3 m ahead and 1 m right of the camera (world), seen from the camera.
        let world = Vector3::new(1.0, 3.0, 0.5 - height);
        let in_camera = Point3::from(axes.transpose() * world);
        let canonical = frame.to_canonical(&in_camera);
        assert!(
            (canonical - Point3::new(1.0, 3.0, 0.5)).norm() < 2e-3,
            "{canonical}"
        );
        assert!((frame.up_in_camera() - up_for_pitch(pitch).into_inner()).norm() < 1e-3);
    }

    #[test]
    fn fallback_is_flagged_and_uses_the_assumed_pitch_and_height() {
        let frame = canonical_frame(None, 30.0, 1.2);
        assert!(!frame.plane_found);
        assert_eq!(frame.camera_height, 1.2);
        let axes = camera_axes(30.0);
        let world = Vector3::new(-0.5, 2.0, 0.3 - 1.2);
        let canonical = frame.to_canonical(&Point3::from(axes.transpose() * world));
        assert!(
            (canonical - Point3::new(-0.5, 2.0, 0.3)).norm() < 1e-9,
            "{canonical}"
        );
        // A plane through the camera centre cannot be the ground.
        let degenerate = Plane {
            normal: Unit::new_normalize(Vector3::new(0.0, -1.0, 0.0)),
            d: 0.0,
        };
        assert!(!canonical_frame(Some(&degenerate), 10.0, 1.0).plane_found);
    }

    #[test]
    fn downward_normal_is_flipped_to_point_up() {
        // Level camera 2 m above the floor, plane given with its normal pointing down (+y).
        let plane = Plane {
            normal: Unit::new_normalize(Vector3::new(0.0, 1.0, 0.0)),
            d: -2.0,
        };
        let frame = canonical_frame(Some(&plane), 0.0, 1.0);
        assert!(frame.plane_found);
        assert!((frame.camera_height - 2.0).abs() < 1e-12);
        let p = frame.to_canonical(&Point3::new(1.0, 2.0, 5.0));
        assert!((p - Point3::new(1.0, 5.0, 0.0)).norm() < 1e-12, "{p}");
    }
}
