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
