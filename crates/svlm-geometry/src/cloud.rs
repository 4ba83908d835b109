use nalgebra::Point3;

/// Camera-frame (or any-frame) points with optional per-point RGB colours (same length when present).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointCloud {
    pub points: Vec<Point3<f64>>,
    pub colors: Option<Vec<[u8; 3]>>,
}

impl PointCloud {
    pub fn new(points: Vec<Point3<f64>>) -> Self {
        Self {
            points,
            colors: None,
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Mean of the points; `None` when empty.
    pub fn centroid(&self) -> Option<Point3<f64>> {
        centroid(&self.points)
    }

    /// The points (and colours) at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> PointCloud {
        PointCloud {
            points: indices.iter().map(|&i| self.points[i]).collect(),
            colors: self
                .colors
                .as_ref()
                .map(|c| indices.iter().map(|&i| c[i]).collect()),
        }
    }
}

pub(crate) fn centroid(points: &[Point3<f64>]) -> Option<Point3<f64>> {
    if points.is_empty() {
        return None;
    }
    let sum = points
        .iter()
        .fold(nalgebra::Vector3::zeros(), |acc, p| acc + p.coords);
    Some(Point3::from(sum / points.len() as f64))
}

/// open3d `voxel_down_sample`: one point per occupied voxel, the mean of its points (and colours).
pub fn voxel_downsample(cloud: &PointCloud, voxel_size: f64) -> PointCloud {
    let _ = (cloud, voxel_size);
    todo!("implemented in the next commit")
}

/// open3d `remove_statistical_outlier`: returns the kept cloud and the kept indices into `cloud`.
pub fn remove_statistical_outliers(
    cloud: &PointCloud,
    nb_neighbors: usize,
    std_ratio: f64,
) -> (PointCloud, Vec<usize>) {
    let _ = (cloud, nb_neighbors, std_ratio);
    todo!("implemented in the next commit")
}
