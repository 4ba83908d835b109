use std::num::NonZeroUsize;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use nalgebra::Point3;

/// Static 3D kd-tree over a point slice; items are indices into that slice.
pub(crate) struct KdIndex {
    tree: ImmutableKdTree<f64, 3>,
}

impl KdIndex {
    /// `None` for an empty slice.
    pub(crate) fn new(points: &[Point3<f64>]) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let coords: Vec<[f64; 3]> = points.iter().map(|p| [p.x, p.y, p.z]).collect();
        let tree = ImmutableKdTree::new_from_slice(&coords).ok()?;
        Some(Self { tree })
    }

    /// Squared distances to the `k` nearest points (the query point itself included when it is in the tree).
    pub(crate) fn nearest_k_sq_distances(&self, p: &Point3<f64>, k: NonZeroUsize) -> Vec<f64> {
        self.tree
            .query(&[p.x, p.y, p.z])
            .nearest_n::<SquaredEuclidean<f64>>(k)
            .execute()
            .into_iter()
            .map(|r| r.distance)
            .collect()
    }

    /// Indices of the points strictly closer than `radius` (nanoflann's radius search semantics).
    pub(crate) fn within(&self, p: &Point3<f64>, radius: f64) -> Vec<u32> {
        self.tree
            .query(&[p.x, p.y, p.z])
            .within::<SquaredEuclidean<f64>>(radius * radius)
            .unsorted()
            .exclusive_boundaries()
            .execute()
            .into_iter()
            .map(|r| r.item)
            .collect()
    }

    /// Squared distance to the nearest point.
    pub(crate) fn nearest_sq_distance(&self, p: &Point3<f64>) -> f64 {
        self.tree
            .query(&[p.x, p.y, p.z])
            .nearest_one::<SquaredEuclidean<f64>>()
            .execute()
            .distance
    }
}

/// Smallest Euclidean distance between any point of `a` and any point of `b` (kd-tree over the larger set);
/// `f64::INFINITY` when either is empty.
pub fn closest_distance(a: &[Point3<f64>], b: &[Point3<f64>]) -> f64 {
    let (tree_points, queries) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let Some(index) = KdIndex::new(tree_points) else {
        return f64::INFINITY;
    };
    if queries.is_empty() {
        return f64::INFINITY;
    }
    let best_sq = if queries.len() >= PARALLEL_MIN_POINTS {
        use rayon::prelude::*;
        queries
            .par_iter()
            .map(|q| index.nearest_sq_distance(q))
            .reduce(|| f64::INFINITY, f64::min)
    } else {
        queries
            .iter()
            .map(|q| index.nearest_sq_distance(q))
            .fold(f64::INFINITY, f64::min)
    };
    best_sq.sqrt()
}

/// Below this many points, per-point loops stay on the calling thread: synthesis already runs one image per
/// core, and rayon's fork/join costs more than it saves on per-object clouds.
pub(crate) const PARALLEL_MIN_POINTS: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn closest_distance_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut cloud = |n: usize, offset: f64| -> Vec<Point3<f64>> {
            (0..n)
                .map(|_| {
                    Point3::new(
                        rng.random_range(0.0..1.0) + offset,
                        rng.random_range(0.0..1.0),
                        rng.random_range(0.0..1.0),
                    )
                })
                .collect()
        };
        let a = cloud(500, 0.0);
        let b = cloud(300, 1.3);
        let brute = a
            .iter()
            .flat_map(|p| b.iter().map(move |q| (p - q).norm()))
            .fold(f64::INFINITY, f64::min);
        assert!((closest_distance(&a, &b) - brute).abs() < 1e-12);
        assert!((closest_distance(&b, &a) - brute).abs() < 1e-12);
        assert!(brute > 0.2);
        assert_eq!(closest_distance(&a, &[]), f64::INFINITY);
        assert_eq!(closest_distance(&a, &a[..1]), 0.0);
    }
}
