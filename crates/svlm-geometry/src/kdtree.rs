use nalgebra::Point3;

/// Smallest Euclidean distance between any point of `a` and any point of `b` (kd-tree);
/// `f64::INFINITY` when either is empty.
pub fn closest_distance(a: &[Point3<f64>], b: &[Point3<f64>]) -> f64 {
    let _ = (a, b);
    todo!("implemented in the next commit")
}
