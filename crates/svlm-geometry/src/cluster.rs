use nalgebra::Point3;
use rayon::prelude::*;

use crate::cloud::PointCloud;
use crate::kdtree::{KdIndex, PARALLEL_MIN_POINTS};

/// open3d `cluster_dbscan`: label per point, `None` for noise. A point is core when at least `min_points`
/// points (itself included) lie strictly within `eps`; clusters are numbered in order of their first core
/// point's index, and a border point joins the first cluster that reaches it.
pub fn dbscan(points: &[Point3<f64>], eps: f64, min_points: usize) -> Vec<Option<usize>> {
    let n = points.len();
    let Some(index) = KdIndex::for_radius_search(points) else {
        return Vec::new();
    };
    if !eps.is_finite() || eps <= 0.0 {
        // No point has a neighbour other than itself.
        return (0..n).map(|i| (min_points <= 1).then_some(i)).collect();
    }
    // Neighbour lists in one flat buffer (CSR): `flat[offsets[i]..offsets[i + 1]]` are the neighbours of i.
    let (offsets, flat) = if n >= PARALLEL_MIN_POINTS {
        let lists: Vec<Vec<u32>> = points
            .par_iter()
            .map(|p| {
                let mut list = Vec::new();
                index.within(p, eps, &mut list);
                list
            })
            .collect();
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        for list in &lists {
            offsets.push(offsets[offsets.len() - 1] + list.len());
        }
        (offsets, lists.concat())
    } else {
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        let mut flat = Vec::with_capacity(n * 8);
        for p in points {
            index.within(p, eps, &mut flat);
            offsets.push(flat.len());
        }
        (offsets, flat)
    };
    let neighbours = |i: usize| &flat[offsets[i]..offsets[i + 1]];
    const UNDEFINED: i64 = -2;
    const NOISE: i64 = -1;
    let mut labels = vec![UNDEFINED; n];
    let mut cluster = 0i64;
    let mut stack: Vec<u32> = Vec::new();
    for seed in 0..n {
        if labels[seed] != UNDEFINED {
            continue;
        }
        if neighbours(seed).len() < min_points {
            labels[seed] = NOISE;
            continue;
        }
        labels[seed] = cluster;
        stack.clear();
        stack.extend_from_slice(neighbours(seed));
        while let Some(nb) = stack.pop() {
            let nb = nb as usize;
            if labels[nb] >= 0 {
                continue;
            }
            labels[nb] = cluster;
            let around = neighbours(nb);
            if around.len() >= min_points {
                stack.extend(around.iter().copied().filter(|&q| labels[q as usize] < 0));
            }
        }
        cluster += 1;
    }
    labels
        .into_iter()
        .map(|l| (l >= 0).then_some(l as usize))
        .collect()
}

/// The points of the largest DBSCAN cluster (ties: the lower label); empty when every point is noise.
pub fn largest_cluster(cloud: &PointCloud, eps: f64, min_points: usize) -> PointCloud {
    let labels = dbscan(&cloud.points, eps, min_points);
    let Some(best) = largest_label(&labels) else {
        return cloud.select(&[]);
    };
    let indices: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == Some(best))
        .map(|(i, _)| i)
        .collect();
    cloud.select(&indices)
}

/// The label held by the most points (ties: the lower label); `None` when all are noise.
pub fn largest_label(labels: &[Option<usize>]) -> Option<usize> {
    let count = labels.iter().flatten().max().map(|m| m + 1)?;
    let mut sizes = vec![0usize; count];
    for l in labels.iter().flatten() {
        sizes[*l] += 1;
    }
    // max_by_key returns the last maximum; iterate in reverse so ties go to the lower label.
    (0..count).rev().max_by_key(|&l| sizes[l])
}

/// Number of clusters in a DBSCAN labelling.
pub fn cluster_count(labels: &[Option<usize>]) -> usize {
    labels.iter().flatten().max().map_or(0, |m| m + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn blob(rng: &mut ChaCha8Rng, center: Vector3<f64>, radius: f64, n: usize) -> Vec<Point3<f64>> {
        (0..n)
            .map(|_| {
                Point3::from(center + Vector3::from_fn(|_, _| rng.random_range(-radius..radius)))
            })
            .collect()
    }

    #[test]
    fn planted_clusters_are_found_and_noise_is_labelled() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut points = blob(&mut rng, Vector3::new(0.0, 0.0, 0.0), 0.1, 300);
        points.extend(blob(&mut rng, Vector3::new(1.0, 0.0, 0.0), 0.1, 200));
        points.extend(blob(&mut rng, Vector3::new(0.0, 1.0, 1.0), 0.1, 500));
        let noise = [Point3::new(5.0, 5.0, 5.0), Point3::new(-3.0, 0.0, 0.0)];
        points.extend_from_slice(&noise);
        let labels = dbscan(&points, 0.05, 5);
        assert_eq!(cluster_count(&labels), 3);
        assert_eq!(labels[1000], None);
        assert_eq!(labels[1001], None);
        // Each blob is one label, numbered in order of discovery.
        for (range, label) in [(0..300, 0), (300..500, 1), (500..1000, 2)] {
            let in_blob = labels[range.clone()]
                .iter()
                .filter(|l| **l == Some(label))
                .count();
            assert!(
                in_blob as f64 >= 0.97 * range.len() as f64,
                "blob {label}: {in_blob}"
            );
        }
        let largest = largest_cluster(&PointCloud::new(points.clone()), 0.05, 5);
        assert!(largest.len() >= 485 && largest.len() <= 500);
        assert!(largest.points.iter().all(|p| p.z > 0.5));
    }

    #[test]
    fn border_points_join_and_min_points_counts_the_point_itself() {
        // A chain with spacing 1: with eps 1.5 every inner point has 3 neighbours (itself included).
        let points: Vec<Point3<f64>> = (0..5).map(|i| Point3::new(i as f64, 0.0, 0.0)).collect();
        assert_eq!(dbscan(&points, 1.5, 3), vec![Some(0); 5]);
        // Ends have 2 neighbours: border points of the cluster, still labelled.
        assert_eq!(dbscan(&points, 1.5, 4), vec![None; 5]);
        // eps is strict: at exactly 1.0 no other point is a neighbour.
        assert_eq!(dbscan(&points, 1.0, 2), vec![None; 5]);
        assert!(dbscan(&[], 1.0, 2).is_empty());
        assert!(largest_cluster(&PointCloud::new(points), 1.0, 2).is_empty());
    }
}
