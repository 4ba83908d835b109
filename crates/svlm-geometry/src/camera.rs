use std::collections::BTreeMap;

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::cloud::PointCloud;
use crate::error::GeometryError;

/// Pinhole intrinsics in pixels. Pixel `(u, v)` is the 0-based column/row index; its centre lifts with
/// `x = (u - cx) z / fx`, `y = (v - cy) z / fy` (open3d's `create_from_depth_image` convention).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intrinsics {
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
    pub width: u32,
    pub height: u32,
}

impl Intrinsics {
    /// Square pixels, principal point at the image centre. The image spans `u` in `[-0.5, width - 0.5]`
    /// (pixel centres at integer indices), so `cx = (width - 1) / 2` and `tan(hfov / 2) = (width / 2) / fx`.
    pub fn from_horizontal_fov(width: u32, height: u32, hfov_deg: f64) -> Self {
        let fx = (width as f64 / 2.0) / (hfov_deg.to_radians() / 2.0).tan();
        Self {
            fx,
            fy: fx,
            cx: (width as f64 - 1.0) / 2.0,
            cy: (height as f64 - 1.0) / 2.0,
            width,
            height,
        }
    }

    /// Continuous pixel coordinates `(u, v)` of a camera-frame point; `None` behind the camera (z <= 0) or
    /// for non-finite input. The result may lie outside the image.
    pub fn project(&self, p: &Point3<f64>) -> Option<(f64, f64)> {
        if p.z <= 0.0 || !p.x.is_finite() || !p.y.is_finite() || !p.z.is_finite() {
            return None;
        }
        Some((self.fx * p.x / p.z + self.cx, self.fy * p.y / p.z + self.cy))
    }

    /// Camera-frame point at pixel `(u, v)` with z-depth `z`.
    pub fn unproject(&self, u: f64, v: f64, z: f64) -> Point3<f64> {
        Point3::new((u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z)
    }

    /// Whether `(u, v)` (continuous) lies inside the image area `[-0.5, size - 0.5)`.
    pub fn contains(&self, u: f64, v: f64) -> bool {
        u >= -0.5 && v >= -0.5 && u < self.width as f64 - 0.5 && v < self.height as f64 - 0.5
    }

    /// Horizontal field of view in degrees.
    pub fn horizontal_fov_deg(&self) -> f64 {
        2.0 * ((self.width as f64 / 2.0) / self.fx).atan().to_degrees()
    }

    /// Intrinsics of the image resized by `scale` (e.g. 0.5 for half size), pixel-centre convention kept.
    pub fn scaled(&self, scale: f64) -> Self {
        Self {
            fx: self.fx * scale,
            fy: self.fy * scale,
            cx: (self.cx + 0.5) * scale - 0.5,
            cy: (self.cy + 0.5) * scale - 0.5,
            width: (self.width as f64 * scale).round() as u32,
            height: (self.height as f64 * scale).round() as u32,
        }
    }

    pub fn validate(&self) -> Result<(), GeometryError> {
        let bad = |msg: String| Err(GeometryError::BadIntrinsics(msg));
        if self.width == 0 || self.height == 0 {
            return bad(format!(
                "image size {}x{} is empty",
                self.width, self.height
            ));
        }
        for (name, value) in [("fx", self.fx), ("fy", self.fy)] {
            if !value.is_finite() || value <= 0.0 {
                return bad(format!("{name} = {value} must be finite and > 0"));
            }
        }
        for (name, value) in [("cx", self.cx), ("cy", self.cy)] {
            if !value.is_finite() {
                return bad(format!("{name} = {value} must be finite"));
            }
        }
        Ok(())
    }
}

/// Z-depth in metres, row-major (`data[v * width + u]`). Values `<= 0`, NaN and inf are invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthMap {
    pub width: u32,
    pub height: u32,
    pub data: Vec<f32>,
}

impl DepthMap {
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self, GeometryError> {
        check_len("depth map", width, height, data.len())?;
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Depth in metres at `(u, v)` if that pixel is inside the map and valid.
    pub fn get(&self, u: u32, v: u32) -> Option<f32> {
        if u >= self.width || v >= self.height {
            return None;
        }
        let z = *self
            .data
            .get(v as usize * self.width as usize + u as usize)?;
        is_valid_depth(z).then_some(z)
    }
}

/// Per-pixel selection, row-major like [`DepthMap`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<bool>,
}

impl Mask {
    pub fn new(width: u32, height: u32, data: Vec<bool>) -> Result<Self, GeometryError> {
        check_len("mask", width, height, data.len())?;
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// The pixels of one instance in an instance-id image (0 usually means background).
    pub fn from_instance_ids(
        width: u32,
        height: u32,
        ids: &[u16],
        id: u16,
    ) -> Result<Self, GeometryError> {
        check_len("instance image", width, height, ids.len())?;
        Ok(Self {
            width,
            height,
            data: ids.iter().map(|&i| i == id).collect(),
        })
    }

    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&m| m).count()
    }
}

/// How many considered pixels (all, or those in the mask) lifted to points and how many had invalid depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiftStats {
    pub valid: usize,
    pub invalid: usize,
}

/// `(du * z / fx, dv * z / fy, z)` in exactly open3d's operation order, so lifted points are bit-identical to
/// `create_from_depth_image` and voxel assignments agree at cell boundaries.
#[inline(always)]
fn lift(du: f64, dv: f64, z: f64, fx: f64, fy: f64) -> Point3<f64> {
    Point3::new(du * z / fx, dv * z / fy, z)
}

#[inline]
pub(crate) fn is_valid_depth(z: f32) -> bool {
    z.is_finite() && z > 0.0
}

fn check_len(
    what: &'static str,
    width: u32,
    height: u32,
    actual: usize,
) -> Result<(), GeometryError> {
    let expected = width as usize * height as usize;
    if actual != expected {
        return Err(GeometryError::DataLength {
            what,
            width,
            height,
            expected,
            actual,
        });
    }
    Ok(())
}

fn check_sizes(
    what_a: &'static str,
    (a_width, a_height): (u32, u32),
    what_b: &'static str,
    (b_width, b_height): (u32, u32),
) -> Result<(), GeometryError> {
    if (a_width, a_height) != (b_width, b_height) {
        return Err(GeometryError::SizeMismatch {
            what_a,
            a_width,
            a_height,
            what_b,
            b_width,
            b_height,
        });
    }
    Ok(())
}

fn check_depth(depth: &DepthMap, intrinsics: &Intrinsics) -> Result<(), GeometryError> {
    intrinsics.validate()?;
    check_len("depth map", depth.width, depth.height, depth.data.len())?;
    check_sizes(
        "depth map",
        (depth.width, depth.height),
        "intrinsics",
        (intrinsics.width, intrinsics.height),
    )
}

/// Lifts every valid depth pixel (inside `mask` when given) to a camera-frame point, in row-major order.
pub fn depth_to_points(
    depth: &DepthMap,
    intrinsics: &Intrinsics,
    mask: Option<&Mask>,
) -> Result<(PointCloud, LiftStats), GeometryError> {
    check_depth(depth, intrinsics)?;
    if let Some(mask) = mask {
        check_len("mask", mask.width, mask.height, mask.data.len())?;
        check_sizes(
            "depth map",
            (depth.width, depth.height),
            "mask",
            (mask.width, mask.height),
        )?;
    }
    let width = depth.width as usize;
    let (fx, fy, cx, cy) = (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy);
    let mut points = Vec::with_capacity(match mask {
        Some(_) => 0,
        None => depth.data.len(),
    });
    let mut stats = LiftStats::default();
    for (v, row) in depth.data.chunks_exact(width).enumerate() {
        let dv = v as f64 - cy;
        let mask_row = mask.map(|m| &m.data[v * width..(v + 1) * width]);
        for (u, &z) in row.iter().enumerate() {
            if let Some(mask_row) = mask_row
                && !mask_row[u]
            {
                continue;
            }
            if is_valid_depth(z) {
                points.push(lift(u as f64 - cx, dv, z as f64, fx, fy));
                stats.valid += 1;
            } else {
                stats.invalid += 1;
            }
        }
    }
    Ok((
        PointCloud {
            points,
            colors: None,
        },
        stats,
    ))
}

/// Lifts all instances of an instance-id image in one pass (id 0 is background and skipped), taking every
/// `stride`-th pixel in both directions (`stride = 1`: all pixels). Returns one cloud per id, ordered by id.
pub fn depth_to_instance_points(
    depth: &DepthMap,
    intrinsics: &Intrinsics,
    instance_ids: &[u16],
    stride: usize,
) -> Result<BTreeMap<u16, (PointCloud, LiftStats)>, GeometryError> {
    check_depth(depth, intrinsics)?;
    check_len(
        "instance image",
        depth.width,
        depth.height,
        instance_ids.len(),
    )?;
    let stride = stride.max(1);
    let width = depth.width as usize;
    let (fx, fy, cx, cy) = (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy);
    // Dense per-id slots: ids are u16, scenes hold few objects, so a lookup table beats a map in the pixel loop.
    let mut slot_of_id = vec![u32::MAX; 1 << 16];
    let mut slots: Vec<(u16, PointCloud, LiftStats)> = Vec::new();
    for v in (0..depth.height as usize).step_by(stride) {
        let dv = v as f64 - cy;
        let row = &depth.data[v * width..(v + 1) * width];
        let ids = &instance_ids[v * width..(v + 1) * width];
        for u in (0..width).step_by(stride) {
            let id = ids[u];
            if id == 0 {
                continue;
            }
            let mut slot = slot_of_id[id as usize];
            if slot == u32::MAX {
                slot = slots.len() as u32;
                slot_of_id[id as usize] = slot;
                slots.push((id, PointCloud::default(), LiftStats::default()));
            }
            let entry = &mut slots[slot as usize];
            let z = row[u];
            if is_valid_depth(z) {
                entry
                    .1
                    .points
                    .push(lift(u as f64 - cx, dv, z as f64, fx, fy));
                entry.2.valid += 1;
            } else {
                entry.2.invalid += 1;
            }
        }
    }
    Ok(slots
        .into_iter()
        .map(|(id, cloud, stats)| (id, (cloud, stats)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intrinsics() -> Intrinsics {
        Intrinsics {
            fx: 500.0,
            fy: 480.0,
            cx: 319.5,
            cy: 240.2,
            width: 640,
            height: 480,
        }
    }

    #[test]
    fn project_unproject_round_trip() {
        let k = intrinsics();
        for &(u, v, z) in &[
            (0.0, 0.0, 0.5),
            (639.0, 479.0, 7.25),
            (100.3, 377.9, 2.0),
            (-20.0, 500.0, 1.0),
        ] {
            let p = k.unproject(u, v, z);
            assert_eq!(p.z, z);
            let (pu, pv) = k.project(&p).unwrap();
            assert!(
                (pu - u).abs() < 1e-9 && (pv - v).abs() < 1e-9,
                "({u}, {v}) -> ({pu}, {pv})"
            );
        }
        assert_eq!(k.project(&Point3::new(1.0, 1.0, 0.0)), None);
        assert_eq!(k.project(&Point3::new(1.0, 1.0, -2.0)), None);
        assert_eq!(k.project(&Point3::new(f64::NAN, 1.0, 2.0)), None);
    }

    #[test]
    fn horizontal_fov_round_trips_and_centres_the_principal_point() {
        let k = Intrinsics::from_horizontal_fov(640, 480, 60.0);
        assert!((k.horizontal_fov_deg() - 60.0).abs() < 1e-9);
        assert_eq!((k.cx, k.cy), (319.5, 239.5));
        // The left edge of the image (u = -0.5) sits at half the field of view.
        let p = k.unproject(-0.5, k.cy, 1.0);
        assert!((p.x.atan2(p.z).to_degrees() + 30.0).abs() < 1e-9);
        k.validate().unwrap();
        let half = k.scaled(0.5);
        assert_eq!((half.width, half.height), (320, 240));
        assert!((half.horizontal_fov_deg() - 60.0).abs() < 1e-9);
        assert_eq!((half.cx, half.cy), (159.5, 119.5));
    }

    #[test]
    fn lift_skips_and_counts_invalid_depth() {
        let k = Intrinsics {
            fx: 2.0,
            fy: 2.0,
            cx: 1.0,
            cy: 0.5,
            width: 3,
            height: 2,
        };
        let depth =
            DepthMap::new(3, 2, vec![1.0, f32::NAN, 0.0, f32::INFINITY, -1.0, 2.0]).unwrap();
        let (cloud, stats) = depth_to_points(&depth, &k, None).unwrap();
        assert_eq!(
            stats,
            LiftStats {
                valid: 2,
                invalid: 4
            }
        );
        assert_eq!(
            cloud.points,
            vec![Point3::new(-0.5, -0.25, 1.0), Point3::new(1.0, 0.5, 2.0)]
        );
        assert_eq!(depth.get(1, 0), None);
        assert_eq!(depth.get(2, 1), Some(2.0));
    }

    #[test]
    fn size_mismatch_errors_name_both_sizes() {
        let k = intrinsics();
        let depth = DepthMap::new(320, 240, vec![1.0; 320 * 240]).unwrap();
        let message = depth_to_points(&depth, &k, None).unwrap_err().to_string();
        assert!(
            message.contains("320x240") && message.contains("640x480"),
            "{message}"
        );

        let k = Intrinsics {
            width: 320,
            height: 240,
            ..k
        };
        let mask = Mask::new(32, 24, vec![true; 32 * 24]).unwrap();
        let message = depth_to_points(&depth, &k, Some(&mask))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("320x240") && message.contains("32x24") && message.contains("mask"),
            "{message}"
        );

        let message = DepthMap::new(4, 4, vec![1.0; 15]).unwrap_err().to_string();
        assert!(
            message.contains("4x4") && message.contains("15") && message.contains("16"),
            "{message}"
        );
        let ids = vec![0u16; 10];
        let message = depth_to_instance_points(&depth, &k, &ids, 1)
            .unwrap_err()
            .to_string();
        assert!(message.contains("instance image"), "{message}");
    }

    #[test]
    fn bad_intrinsics_are_rejected() {
        let depth = DepthMap::new(640, 480, vec![1.0; 640 * 480]).unwrap();
        for bad in [
            Intrinsics {
                fx: 0.0,
                ..intrinsics()
            },
            Intrinsics {
                fy: f64::NAN,
                ..intrinsics()
            },
            Intrinsics {
                cx: f64::INFINITY,
                ..intrinsics()
            },
        ] {
            let error = depth_to_points(&depth, &bad, None).unwrap_err();
            assert!(matches!(error, GeometryError::BadIntrinsics(_)), "{error}");
        }
    }

    #[test]
    fn empty_mask_gives_no_points() {
        let k = intrinsics();
        let depth = DepthMap::new(640, 480, vec![2.0; 640 * 480]).unwrap();
        let mask = Mask::new(640, 480, vec![false; 640 * 480]).unwrap();
        let (cloud, stats) = depth_to_points(&depth, &k, Some(&mask)).unwrap();
        assert!(cloud.is_empty());
        assert_eq!(stats, LiftStats::default());
    }

    #[test]
    fn instance_lift_matches_mask_lift() {
        let k = Intrinsics {
            fx: 50.0,
            fy: 50.0,
            cx: 15.5,
            cy: 11.5,
            width: 32,
            height: 24,
        };
        let depth: Vec<f32> = (0..32 * 24)
            .map(|i| {
                if i % 7 == 0 {
                    0.0
                } else {
                    1.0 + (i % 13) as f32 * 0.1
                }
            })
            .collect();
        let ids: Vec<u16> = (0..32 * 24)
            .map(|i| ((i / 32) / 8 * 2 + (i % 32) / 16) as u16)
            .collect();
        let depth = DepthMap::new(32, 24, depth).unwrap();
        let by_instance = depth_to_instance_points(&depth, &k, &ids, 1).unwrap();
        assert_eq!(
            by_instance.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        for (&id, (cloud, stats)) in &by_instance {
            let mask = Mask::from_instance_ids(32, 24, &ids, id).unwrap();
            let (expected, expected_stats) = depth_to_points(&depth, &k, Some(&mask)).unwrap();
            assert_eq!(cloud.points, expected.points);
            assert_eq!(*stats, expected_stats);
            assert_eq!(stats.valid + stats.invalid, mask.count());
        }
        let strided = depth_to_instance_points(&depth, &k, &ids, 2).unwrap();
        let total: usize = strided.values().map(|(_, s)| s.valid + s.invalid).sum();
        // Background (id 0) is rows 0..8 x columns 0..16: 4 x 8 of the 12 x 16 sampled pixels.
        assert_eq!(total, 12 * 16 - 4 * 8);
    }
}
