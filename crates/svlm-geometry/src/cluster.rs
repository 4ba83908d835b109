use nalgebra::Point3;

use crate::cloud::PointCloud;

/// open3d `cluster_dbscan`: label per point, `None` for noise; clusters numbered in order of discovery.
pub fn dbscan(points: &[Point3<f64>], eps: f64, min_points: usize) -> Vec<Option<usize>> {
    let _ = (points, eps, min_points);
    todo!("implemented in the next commit")
}

/// The points of the largest DBSCAN cluster (ties: the first found); empty when every point is noise.
pub fn largest_cluster(cloud: &PointCloud, eps: f64, min_points: usize) -> PointCloud {
    let _ = (cloud, eps, min_points);
    todo!("implemented in the next commit")
}
