use nalgebra::{Point3, Rotation3, Vector3};

/// Axis-aligned box in the frame of the points it was made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aabb {
    pub min: Point3<f64>,
    pub max: Point3<f64>,
}

impl Aabb {
    /// `None` when `points` is empty.
    pub fn from_points(points: &[Point3<f64>]) -> Option<Self> {
        let first = points.first()?;
        let (mut min, mut max) = (*first, *first);
        for p in &points[1..] {
            min = min.inf(p);
            max = max.sup(p);
        }
        Some(Self { min, max })
    }

    /// Side lengths.
    pub fn extent(&self) -> Vector3<f64> {
        self.max - self.min
    }

    pub fn center(&self) -> Point3<f64> {
        nalgebra::center(&self.min, &self.max)
    }

    pub fn volume(&self) -> f64 {
        let e = self.extent();
        e.x * e.y * e.z
    }
}

/// Oriented box: `rotation`'s columns are the box axes, `half_extents` the half side lengths along them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obb {
    pub center: Point3<f64>,
    pub rotation: Rotation3<f64>,
    pub half_extents: Vector3<f64>,
}

impl Obb {
    /// Side lengths along the box axes.
    pub fn extent(&self) -> Vector3<f64> {
        self.half_extents * 2.0
    }

    pub fn volume(&self) -> f64 {
        let e = self.extent();
        e.x * e.y * e.z
    }

    /// open3d `get_oriented_bounding_box`: PCA axes of the convex hull's vertices, extents of the points along them.
    pub fn from_points_pca(points: &[Point3<f64>]) -> Option<Self> {
        let _ = points;
        todo!("implemented in the next commit")
    }

    /// Gravity-aligned box: the minimum-area rectangle of the points projected onto the plane perpendicular to
    /// `up`, and the extent along `up`. Axes: x = longer horizontal side, y = shorter, z = `up` (right-handed).
    pub fn from_points_upright(points: &[Point3<f64>], up: &Vector3<f64>) -> Option<Self> {
        let _ = (points, up);
        todo!("implemented in the next commit")
    }
}
