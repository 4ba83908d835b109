//! Exact distances between convex parts (GJK on support mappings) and between objects (unions of parts).

use nalgebra::{DMatrix, DVector, Isometry3, Vector3};

use crate::scene::ObjectTruth;
use crate::shape::Primitive;

/// Absolute tolerance of the distances, metres.
const TOLERANCE: f64 = 1e-9;
const MAX_ITERATIONS: usize = 200;

fn world_support(primitive: &Primitive, pose: &Isometry3<f64>, dir: &Vector3<f64>) -> Vector3<f64> {
    let local_dir = pose.rotation.inverse_transform_vector(dir);
    pose.rotation * primitive.support(&local_dir) + pose.translation.vector
}

/// Euclidean distance between two convex primitives placed at `pose_a` and `pose_b` (0 when they touch or
/// overlap), by GJK with an exhaustive sub-simplex search (robust for the few-vertex simplices GJK keeps).
pub fn convex_distance(
    a: &Primitive,
    pose_a: &Isometry3<f64>,
    b: &Primitive,
    pose_b: &Isometry3<f64>,
) -> f64 {
    let minkowski = |d: &Vector3<f64>| world_support(a, pose_a, &-d) - world_support(b, pose_b, d);
    let mut v = pose_a.translation.vector - pose_b.translation.vector;
    if v.norm_squared() < 1e-24 {
        v = Vector3::x();
    }
    // Start from a real point of the difference set.
    v = minkowski(&v);
    let mut simplex: Vec<Vector3<f64>> = Vec::with_capacity(4);
    for _ in 0..MAX_ITERATIONS {
        let v_norm = v.norm();
        if v_norm < TOLERANCE {
            return 0.0;
        }
        let w = minkowski(&v);
        // |v| is an upper bound on the distance and v.w / |v| a lower bound; stop when they meet.
        let lower = v.dot(&w) / v_norm;
        if v_norm - lower <= TOLERANCE || simplex.iter().any(|s| (s - w).norm_squared() < 1e-24) {
            return v_norm.max(0.0);
        }
        simplex.push(w);
        match closest_on_simplex(&simplex) {
            Some((point, kept)) => {
                simplex = kept;
                v = point;
            }
            None => return 0.0,
        }
        if simplex.len() == 4 {
            // The origin lies inside the tetrahedron.
            return 0.0;
        }
    }
    v.norm()
}

/// Closest point to the origin on the convex hull of `simplex` and the smallest sub-simplex holding it.
fn closest_on_simplex(simplex: &[Vector3<f64>]) -> Option<(Vector3<f64>, Vec<Vector3<f64>>)> {
    let n = simplex.len();
    let mut best: Option<(f64, Vector3<f64>, Vec<Vector3<f64>>)> = None;
    for subset in 1u32..(1 << n) {
        let points: Vec<Vector3<f64>> = (0..n)
            .filter(|i| subset & (1 << i) != 0)
            .map(|i| simplex[i])
            .collect();
        let Some(weights) = affine_closest_weights(&points) else {
            continue;
        };
        if weights.iter().any(|&w| w <= 0.0) {
            continue;
        }
        let point: Vector3<f64> = points.iter().zip(&weights).map(|(p, w)| p * *w).sum();
        let d = point.norm_squared();
        if best.as_ref().is_none_or(|(bd, _, _)| d < *bd) {
            best = Some((d, point, points));
        }
    }
    best.map(|(_, p, s)| (p, s))
}

/// Barycentric weights of the origin's projection onto the affine hull of `points` (None when degenerate).
fn affine_closest_weights(points: &[Vector3<f64>]) -> Option<Vec<f64>> {
    let n = points.len();
    if n == 1 {
        return Some(vec![1.0]);
    }
    // Minimise |p0 + sum_i l_i e_i|^2 with e_i = p_i - p0: (E^T E) l = -E^T p0.
    let k = n - 1;
    let edges: Vec<Vector3<f64>> = points[1..].iter().map(|p| p - points[0]).collect();
    let gram = DMatrix::<f64>::from_fn(k, k, |i, j| edges[i].dot(&edges[j]));
    let rhs = DVector::<f64>::from_fn(k, |i, _| -edges[i].dot(&points[0]));
    // Near-degenerate simplices (collinear / coplanar) are skipped; their faces are searched as subsets.
    let volume_scale: f64 = edges.iter().map(|e| e.norm_squared()).product();
    let det = gram.determinant();
    if det.is_nan() || det <= 1e-12 * volume_scale {
        return None;
    }
    let lambda = gram.lu().solve(&rhs)?;
    let mut weights = Vec::with_capacity(n);
    weights.push(1.0 - lambda.iter().sum::<f64>());
    weights.extend(lambda.iter().copied());
    Some(weights)
}

/// Closest-surface distance between two objects (0 when they touch or overlap), exact up to 1e-9 m: the
/// minimum of the convex distances between their parts.
pub fn closest_surface_distance(a: &ObjectTruth, b: &ObjectTruth) -> f64 {
    let pose_a = a.world_from_local();
    let pose_b = b.world_from_local();
    let mut best = f64::INFINITY;
    for part_a in a.parts() {
        let pa = pose_a * nalgebra::Translation3::from(part_a.offset);
        for part_b in b.parts() {
            let pb = pose_b * nalgebra::Translation3::from(part_b.offset);
            best = best.min(convex_distance(
                &part_a.primitive,
                &pa,
                &part_b.primitive,
                &pb,
            ));
        }
    }
    best
}
