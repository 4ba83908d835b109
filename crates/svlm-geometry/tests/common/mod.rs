//! A ray-cast test scene: boxes resting on a floor (world Z up, floor Z = 0) seen by a pitched camera.

// Shared by several test binaries; each uses a part of it.
#![allow(dead_code)]

use svlm_geometry::{DepthMap, Intrinsics, Matrix3, Point3, Vector3};

pub struct SceneBox {
    pub center_xy: [f64; 2],
    pub size: Vector3<f64>,
    pub yaw_deg: f64,
}

pub struct Scene {
    pub depth: DepthMap,
    pub ids: Vec<u16>,
    pub intrinsics: Intrinsics,
    pub boxes: Vec<SceneBox>,
    pub camera_height: f64,
}

/// Camera axes (x right, y down, z forward) in world coordinates, looking along +Y pitched down.
pub fn camera_axes(pitch_deg: f64) -> Matrix3<f64> {
    let t = pitch_deg.to_radians();
    let x = Vector3::new(1.0, 0.0, 0.0);
    let z = Vector3::new(0.0, t.cos(), -t.sin());
    Matrix3::from_columns(&[x, z.cross(&x), z])
}

/// `count` boxes on a 4 x 4 grid in front of the camera with varied sizes and yaws.
pub fn boxes_scene(width: u32, height: u32, count: usize) -> Scene {
    let camera_height = 1.6;
    let axes = camera_axes(30.0);
    let intrinsics = Intrinsics::from_horizontal_fov(width, height, 70.0);
    let boxes: Vec<SceneBox> = (0..count)
        .map(|i| {
            let (col, row) = ((i % 4) as f64, (i / 4) as f64);
            SceneBox {
                center_xy: [-1.2 + 0.8 * col, 1.8 + 0.9 * row],
                size: Vector3::new(
                    0.3 + 0.05 * (i % 3) as f64,
                    0.2 + 0.04 * (i % 4) as f64,
                    0.15 + 0.1 * (i % 5) as f64,
                ),
                yaw_deg: 17.0 * i as f64,
            }
        })
        .collect();
    let camera = Point3::new(0.0, 0.0, camera_height);
    let mut depth = vec![0.0f32; (width * height) as usize];
    let mut ids = vec![0u16; (width * height) as usize];
    for v in 0..height {
        for u in 0..width {
            // Ray with unit z in the camera frame: the hit parameter is the z-depth.
            let ray = axes * intrinsics.unproject(u as f64, v as f64, 1.0).coords;
            let mut best = if ray.z < -1e-6 {
                (camera_height / -ray.z, 0u16)
            } else {
                (f64::INFINITY, 0)
            };
            for (k, b) in boxes.iter().enumerate() {
                let yaw = b.yaw_deg.to_radians();
                let (s, c) = yaw.sin_cos();
                // World -> box local (rotate by -yaw about Z, origin at the box centre).
                let to_local =
                    |w: Vector3<f64>| Vector3::new(c * w.x + s * w.y, -s * w.x + c * w.y, w.z);
                let origin = to_local(
                    camera.coords - Vector3::new(b.center_xy[0], b.center_xy[1], b.size.z / 2.0),
                );
                let dir = to_local(ray);
                let (mut t_near, mut t_far) = (f64::NEG_INFINITY, f64::INFINITY);
                for a in 0..3 {
                    let half = b.size[a] / 2.0;
                    if dir[a].abs() < 1e-12 {
                        if origin[a].abs() > half {
                            t_near = f64::INFINITY;
                        }
                        continue;
                    }
                    let t1 = (-half - origin[a]) / dir[a];
                    let t2 = (half - origin[a]) / dir[a];
                    t_near = t_near.max(t1.min(t2));
                    t_far = t_far.min(t1.max(t2));
                }
                if t_near <= t_far && t_near > 0.0 && t_near < best.0 {
                    best = (t_near, k as u16 + 1);
                }
            }
            let i = (v * width + u) as usize;
            if best.0.is_finite() && best.0 < 20.0 {
                depth[i] = best.0 as f32;
                ids[i] = best.1;
            }
        }
    }
    Scene {
        depth: DepthMap {
            width,
            height,
            data: depth,
        },
        ids,
        intrinsics,
        boxes,
        camera_height,
    }
}
