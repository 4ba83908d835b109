use nalgebra::Point3;
use rayon::prelude::*;

use crate::cloud::PointCloud;
use crate::kdtree::{KdIndex, PARALLEL_MIN_POINTS, SCAN_MAX_POINTS};
use crate::simd::vectorized;

/// open3d `cluster_dbscan`: label per point, `None` for noise. A point is core when at least `min_points`
/// points (itself included) lie strictly within `eps`; clusters are numbered in order of their first core
/// point's index, and a border point joins the first cluster that reaches it.
pub fn dbscan(points: &[Point3<f64>], eps: f64, min_points: usize) -> Vec<Option<usize>> {
    let n = points.len();
    if n == 0 {
        return Vec::new();
    }
    if !eps.is_finite() || eps <= 0.0 {
        // No point has a neighbour other than itself.
        return (0..n).map(|i| (min_points <= 1).then_some(i)).collect();
    }
    if n <= SCAN_MAX_POINTS {
        return dbscan_small(points, eps, min_points);
    }
    match KdIndex::for_radius_search(points) {
        Some(index) => dbscan_with_index(points, &index, eps, min_points),
        None => Vec::new(),
    }
}

/// [`dbscan`] from neighbour lists found by radius searches on `index` (over `points`), `eps` finite and > 0.
fn dbscan_with_index(
    points: &[Point3<f64>],
    index: &KdIndex,
    eps: f64,
    min_points: usize,
) -> Vec<Option<usize>> {
    let n = points.len();
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
    expand_clusters(
        n,
        min_points,
        |i| neighbours(i).len(),
        |stack, i, labels| {
            stack.extend(
                neighbours(i)
                    .iter()
                    .copied()
                    .filter(|&q| labels[q as usize] < 0),
            )
        },
    )
}

/// [`dbscan`] on a small cloud (at most [`SCAN_MAX_POINTS`] points): the neighbour relation as a bit matrix,
/// each pair's distance computed once (the same expression as the radius scan's, whose value does not depend on
/// which point is the query), then the same expansion as the general path. Labels do not depend on the order in
/// which neighbours are visited, so they are the same.
fn dbscan_small(points: &[Point3<f64>], eps: f64, min_points: usize) -> Vec<Option<usize>> {
    let n = points.len();
    let words = n.div_ceil(64);
    let r2 = eps * eps;
    let column = |a: usize| -> Vec<f64> { points.iter().map(|p| p[a]).collect() };
    let (xs, ys, zs) = (column(0), column(1), column(2));
    // Row i: bit j set when j != i lies strictly within eps of i.
    let mut rows = vec![0u64; n * words];
    vectorized(
        #[inline(always)]
        || {
            let mut block = [0.0f64; 64];
            for i in 0..n {
                let q = [xs[i], ys[i], zs[i]];
                for w in (i + 1) / 64..words {
                    let (lo, hi) = (w * 64, ((w + 1) * 64).min(n));
                    let out = &mut block[..hi - lo];
                    for (((d, x), y), z) in out
                        .iter_mut()
                        .zip(&xs[lo..hi])
                        .zip(&ys[lo..hi])
                        .zip(&zs[lo..hi])
                    {
                        let (dx, dy, dz) = (x - q[0], y - q[1], z - q[2]);
                        *d = dx * dx + dy * dy + dz * dz;
                    }
                    let mut bits = 0u64;
                    for (b, &d) in out.iter().enumerate() {
                        bits |= u64::from(d < r2) << b;
                    }
                    // Only the pairs j > i (w starts at i's next point, so the shift is below 64): the others
                    // are set from the other point's row.
                    bits &= u64::MAX << (i + 1).saturating_sub(lo);
                    rows[i * words + w] |= bits;
                    let mut rest = bits;
                    while rest != 0 {
                        let j = lo + rest.trailing_zeros() as usize;
                        rows[j * words + i / 64] |= 1u64 << (i % 64);
                        rest &= rest.wrapping_sub(1);
                    }
                }
            }
        },
    );
    // Neighbour counts include the point itself (its distance 0 is within any positive eps).
    let count = |i: usize| {
        1 + rows[i * words..(i + 1) * words]
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
    };
    let push_neighbours = |stack: &mut Vec<u32>, i: usize, labels: &[i64]| {
        if labels[i] < 0 {
            stack.push(i as u32);
        }
        for (w, &word) in rows[i * words..(i + 1) * words].iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let j = w * 64 + rest.trailing_zeros() as usize;
                if labels[j] < 0 {
                    stack.push(j as u32);
                }
                rest &= rest.wrapping_sub(1);
            }
        }
    };
    expand_clusters(n, min_points, count, push_neighbours)
}

/// DBSCAN's expansion over a neighbour relation: `count(i)` neighbours of `i` (itself included), and
/// `push(stack, i, labels)` pushes `i`'s neighbours not yet in a cluster (label < 0). Clusters are numbered in
/// order of their first core point; a border point joins the first cluster that reaches it.
fn expand_clusters(
    n: usize,
    min_points: usize,
    count: impl Fn(usize) -> usize,
    push: impl Fn(&mut Vec<u32>, usize, &[i64]),
) -> Vec<Option<usize>> {
    const UNDEFINED: i64 = -2;
    const NOISE: i64 = -1;
    let mut labels = vec![UNDEFINED; n];
    let mut cluster = 0i64;
    let mut stack: Vec<u32> = Vec::new();
    for seed in 0..n {
        if labels[seed] != UNDEFINED {
            continue;
        }
        if count(seed) < min_points {
            labels[seed] = NOISE;
            continue;
        }
        labels[seed] = cluster;
        stack.clear();
        push(&mut stack, seed, &labels);
        while let Some(nb) = stack.pop() {
            let nb = nb as usize;
            if labels[nb] >= 0 {
                continue;
            }
            labels[nb] = cluster;
            if count(nb) >= min_points {
                push(&mut stack, nb, &labels);
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
    fn small_cloud_bit_matrix_path_labels_like_the_radius_search_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for (n, snap, eps, min_points) in [
            (1, 0.0f64, 0.1, 1),
            (2, 0.0, 0.1, 2),
            (63, 0.0, 0.15, 4),
            (64, 0.05, 0.05, 3),
            (65, 0.05, 0.1, 5),
            (200, 0.0, 0.08, 10),
            (300, 0.02, 0.06, 10),
            (512, 0.0, 0.05, 10),
            (512, 0.1, 0.1, 2),
        ] {
            let mut points: Vec<Point3<f64>> = (0..n)
                .map(|i| {
                    let center = Vector3::new((i % 3) as f64 * 0.6, 0.0, 0.0);
                    let c = center + Vector3::from_fn(|_, _| rng.random_range(-0.25..0.25));
                    // Snapped coordinates put many pairs at exactly eps (strictly within: not neighbours).
                    Point3::from(if snap > 0.0 {
                        c.map(|x| (x / snap).round() * snap)
                    } else {
                        c
                    })
                })
                .collect();
            if n > 10 {
                points[7] = points[2];
            }
            let tree = KdIndex::new(&points).unwrap();
            let expected = dbscan_with_index(&points, &tree, eps, min_points);
            assert_eq!(
                dbscan(&points, eps, min_points),
                expected,
                "n {n} snap {snap} eps {eps}"
            );
            assert_eq!(dbscan_small(&points, eps, min_points), expected);
        }
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
