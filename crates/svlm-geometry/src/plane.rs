use nalgebra::{Point3, Unit, Vector3};

use crate::cloud::PointCloud;

/// Plane `normal . p + d = 0`, `normal` unit length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane {
    pub normal: Unit<Vector3<f64>>,
    pub d: f64,
}

impl Plane {
    /// Signed distance (positive on the side the normal points to).
    pub fn signed_distance(&self, p: &Point3<f64>) -> f64 {
        self.normal.dot(&p.coords) + self.d
    }

    /// The same plane with the normal flipped.
    pub fn flipped(&self) -> Plane {
        Plane {
            normal: -self.normal,
            d: -self.d,
        }
    }

    /// Angle between the two planes' normals in degrees, ignoring orientation (0..=90).
    pub fn angle_deg(&self, other: &Plane) -> f64 {
        self.normal
            .dot(&other.normal)
            .abs()
            .min(1.0)
            .acos()
            .to_degrees()
    }
}

/// Settings of [`find_ground_plane`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundPlaneParams {
    /// RANSAC inlier distance, metres.
    pub distance_threshold: f64,
    pub iterations: usize,
    /// Largest angle between the plane normal and the camera's up (-y) that still counts as ground.
    pub max_tilt_deg: f64,
    /// Smallest share of the cloud a ground plane must hold.
    pub min_inlier_fraction: f64,
    /// How many planes to peel off (largest first) looking for one that faces up.
    pub max_planes: usize,
    pub seed: u64,
}

impl Default for GroundPlaneParams {
    fn default() -> Self {
        Self {
            distance_threshold: 0.02,
            iterations: 200,
            max_tilt_deg: 45.0,
            min_inlier_fraction: 0.05,
            max_planes: 3,
            seed: 0,
        }
    }
}

/// open3d `segment_plane`: RANSAC over `ransac_n`-point samples, best by inlier count then RMSE, then a
/// least-squares refit on the inliers. `None` when there are fewer than `ransac_n` points.
pub fn segment_plane(
    points: &[Point3<f64>],
    distance_threshold: f64,
    ransac_n: usize,
    iterations: usize,
    seed: u64,
) -> Option<(Plane, Vec<usize>)> {
    let _ = (points, distance_threshold, ransac_n, iterations, seed);
    todo!("implemented in the next commit")
}

/// Least-squares plane (smallest-eigenvalue direction of the covariance); `None` for < 3 points or a
/// degenerate (collinear) set.
pub fn fit_plane_least_squares(points: &[Point3<f64>]) -> Option<Plane> {
    let _ = points;
    todo!("implemented in the next commit")
}

/// The ground: the largest RANSAC plane whose normal lies within `max_tilt_deg` of the camera's up (-y), with
/// the normal oriented towards the camera (so `d > 0` is the camera height).
pub fn find_ground_plane(cloud: &PointCloud, params: &GroundPlaneParams) -> Option<Plane> {
    let _ = (cloud, params);
    todo!("implemented in the next commit")
}
