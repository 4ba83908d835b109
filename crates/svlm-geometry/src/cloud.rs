use std::collections::HashMap;

use nalgebra::{Point3, Vector3};
use rayon::prelude::*;

use crate::boxes::Aabb;
use crate::kdtree::{KdIndex, PARALLEL_MIN_POINTS, SCAN_MAX_POINTS};
use crate::simd::vectorized;

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

/// Dense numbers for packed voxel keys (three 21-bit cell indices, so never `u64::MAX`) in order of first
/// appearance: an open-addressing table (linear probing, at most half full) sized once for the number of points,
/// cheaper than a general hash map's entry API for the few thousand keys of a cloud.
struct KeyTable {
    keys: Vec<u64>,
    slots: Vec<u32>,
    shift: u32,
    len: u32,
}

impl KeyTable {
    const EMPTY: u64 = u64::MAX;

    /// A table for up to `max_keys` distinct keys.
    fn new(max_keys: usize) -> Self {
        let size = (2 * max_keys).next_power_of_two().max(16);
        KeyTable {
            keys: vec![Self::EMPTY; size],
            slots: vec![0; size],
            shift: 64 - size.trailing_zeros(),
            len: 0,
        }
    }

    /// The number of `key`: the existing one, or the next number for a new key.
    #[inline(always)]
    fn slot(&mut self, key: u64) -> u32 {
        let mask = self.keys.len() - 1;
        let mut i =
            ((key ^ (key >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> self.shift) as usize;
        loop {
            let k = self.keys[i];
            if k == key {
                return self.slots[i];
            }
            if k == Self::EMPTY {
                self.keys[i] = key;
                self.slots[i] = self.len;
                self.len += 1;
                return self.slots[i];
            }
            i = (i + 1) & mask;
        }
    }
}

/// open3d `voxel_down_sample`: one point per occupied voxel, the mean of its points (and colours). Voxels are
/// anchored at `min_bound - voxel_size / 2` as in open3d; output order is the order voxels are first hit.
/// A non-positive or non-finite `voxel_size` returns the cloud unchanged.
pub fn voxel_downsample(cloud: &PointCloud, voxel_size: f64) -> PointCloud {
    voxel_downsample_traced(cloud, voxel_size).0
}

/// [`voxel_downsample`] plus, for every input point, the index of the output point (voxel) it went into, so
/// filtering decided on the voxels can be carried back to the full-resolution points.
pub fn voxel_downsample_traced(cloud: &PointCloud, voxel_size: f64) -> (PointCloud, Vec<u32>) {
    voxel_downsample_traced_in(cloud, voxel_size, Aabb::from_points(&cloud.points))
}

/// [`voxel_downsample_traced`] with the cloud's bounds (`Aabb::from_points` of its points) already known: a
/// caller trying several voxel sizes on one cloud computes them once.
pub(crate) fn voxel_downsample_traced_in(
    cloud: &PointCloud,
    voxel_size: f64,
    bounds: Option<Aabb>,
) -> (PointCloud, Vec<u32>) {
    let Some(bounds) = bounds else {
        let empty = PointCloud {
            points: Vec::new(),
            colors: cloud.colors.as_ref().map(|_| Vec::new()),
        };
        return (empty, Vec::new());
    };
    if !voxel_size.is_finite() || voxel_size <= 0.0 {
        return (cloud.clone(), (0..cloud.points.len() as u32).collect());
    }
    let origin = bounds.min - Vector3::repeat(voxel_size * 0.5);
    // Division (not a reciprocal multiply) keeps cell boundaries bit-identical to open3d.
    let cells = (bounds.extent() / voxel_size).map(|e| e.floor() + 2.0);
    // Keys pack three 21-bit cell indices; larger grids (kilometres at millimetre voxels) use a wider map.
    const MAX_CELLS: f64 = (1u64 << 21) as f64;
    let (sums, slots) = if cells.x >= MAX_CELLS || cells.y >= MAX_CELLS || cells.z >= MAX_CELLS {
        let mut slot_of_key: HashMap<[i64; 3], u32> = HashMap::new();
        accumulate(&cloud.points, |p| {
            let r = (p - origin) / voxel_size;
            let key = [r.x.floor() as i64, r.y.floor() as i64, r.z.floor() as i64];
            let next = slot_of_key.len() as u32;
            *slot_of_key.entry(key).or_insert(next)
        })
    } else {
        // Keys first, in a loop at the CPU's vector width (the divisions dominate), then the table.
        let mut keys = vec![0u64; cloud.points.len()];
        vectorized(
            #[inline(always)]
            || {
                // Stores into a sized buffer (a push per point would keep the loop scalar).
                for (key, p) in keys.iter_mut().zip(&cloud.points) {
                    let (rx, ry, rz) = (
                        (p.x - origin.x) / voxel_size,
                        (p.y - origin.y) / voxel_size,
                        (p.z - origin.z) / voxel_size,
                    );
                    *key = (cell_index(rx) << 42) | (cell_index(ry) << 21) | cell_index(rz);
                }
            },
        );
        let mut table = KeyTable::new(cloud.points.len());
        // Lifted points arrive in raster order, so a point often falls in the previous point's voxel.
        let mut last: Option<(u64, u32)> = None;
        let mut keys = keys.into_iter();
        accumulate(&cloud.points, |_| {
            let key = keys.next().unwrap_or(u64::MAX);
            if let Some((last_key, slot)) = last
                && last_key == key
            {
                return slot;
            }
            let slot = table.slot(key);
            last = Some((key, slot));
            slot
        })
    };
    (finish_voxels(cloud, &sums, &slots), slots)
}

/// `r as u64` for `r < 2^52` (cell coordinates here are below 2^21), in operations that vectorize: the saturating
/// float-to-integer cast keeps a loop scalar. Truncation of `max(r, 0)` is exact; adding 2^52 to that whole
/// number puts it in the mantissa's low bits exactly.
#[inline(always)]
fn cell_index(r: f64) -> u64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    (r.max(0.0).trunc() + TWO_52).to_bits() & ((1u64 << 52) - 1)
}

/// Per-voxel sums and counts, and each point's voxel; `slot_of` numbers voxels densely in order of first hit.
fn accumulate(
    points: &[Point3<f64>],
    mut slot_of: impl FnMut(&Point3<f64>) -> u32,
) -> (Vec<(Vector3<f64>, u32)>, Vec<u32>) {
    let mut sums: Vec<(Vector3<f64>, u32)> = Vec::new();
    let mut slots = Vec::with_capacity(points.len());
    for p in points {
        let slot = slot_of(p);
        if slot as usize == sums.len() {
            sums.push((Vector3::zeros(), 0));
        }
        let entry = &mut sums[slot as usize];
        entry.0 += p.coords;
        entry.1 += 1;
        slots.push(slot);
    }
    (sums, slots)
}

fn finish_voxels(cloud: &PointCloud, sums: &[(Vector3<f64>, u32)], slots: &[u32]) -> PointCloud {
    let points = sums
        .iter()
        .map(|(sum, n)| Point3::from(sum / *n as f64))
        .collect();
    let colors = cloud.colors.as_ref().map(|colors| {
        let mut color_sums = vec![[0u32; 3]; sums.len()];
        for (&slot, c) in slots.iter().zip(colors) {
            let s = &mut color_sums[slot as usize];
            for k in 0..3 {
                s[k] += c[k] as u32;
            }
        }
        color_sums
            .iter()
            .zip(sums)
            .map(|(s, (_, n))| {
                let n = *n as f64;
                [0, 1, 2].map(|k| (s[k] as f64 / n).round().clamp(0.0, 255.0) as u8)
            })
            .collect()
    });
    PointCloud { points, colors }
}

/// Per point, `mean_distance` with a scratch buffer: in parallel on large clouds.
fn mean_distances(
    points: &[Point3<f64>],
    k: usize,
    mean_distance: impl Fn(&mut Vec<(f64, u32)>, &Point3<f64>) -> f64 + Send + Sync,
) -> Vec<f64> {
    if points.len() >= PARALLEL_MIN_POINTS {
        points
            .par_iter()
            .map_init(Vec::new, mean_distance)
            .collect()
    } else {
        let mut scratch = Vec::with_capacity(k + 1);
        points
            .iter()
            .map(|p| mean_distance(&mut scratch, p))
            .collect()
    }
}

/// open3d `remove_statistical_outlier`: a point is kept when the mean distance to its `nb_neighbors` nearest
/// points (itself included) is below `mean + std_ratio * std` of those means over the cloud (sample std).
/// As in open3d, points whose mean distance is exactly 0 (duplicates) are dropped. Returns the kept cloud and
/// the kept indices into `cloud`. `nb_neighbors == 0` or a non-positive `std_ratio` keep everything.
pub fn remove_statistical_outliers(
    cloud: &PointCloud,
    nb_neighbors: usize,
    std_ratio: f64,
) -> (PointCloud, Vec<usize>) {
    let n = cloud.points.len();
    if nb_neighbors == 0 || std_ratio <= 0.0 || std_ratio.is_nan() {
        return (cloud.clone(), (0..n).collect());
    }
    let means: Vec<f64> = if n <= SCAN_MAX_POINTS {
        let Some(index) = KdIndex::for_radius_search(&cloud.points) else {
            return (cloud.clone(), Vec::new());
        };
        // The same distances as the tree's, in the same (ascending) order: the same sums.
        let (mut threshold, mut d2, mut nearest) = (f64::INFINITY, Vec::new(), Vec::new());
        vectorized(
            #[inline(always)]
            || {
                // Plain loops: iterator adapters would be out-of-line functions built for the baseline.
                let mut means = Vec::with_capacity(n);
                for p in &cloud.points {
                    index.scan_nearest_k_distances(
                        p,
                        nb_neighbors,
                        &mut threshold,
                        &mut d2,
                        &mut nearest,
                    );
                    let mut sum = 0.0;
                    for &d in &nearest {
                        sum += f64::from_bits(d).sqrt();
                    }
                    means.push(sum / nearest.len() as f64);
                }
                means
            },
        )
    } else if let Some(index) = KdIndex::new(&cloud.points) {
        let mean_distance = |scratch: &mut Vec<(f64, u32)>, p: &Point3<f64>| {
            index.nearest_k(p, nb_neighbors, scratch);
            scratch.iter().map(|(d2, _)| d2.sqrt()).sum::<f64>() / scratch.len() as f64
        };
        mean_distances(&cloud.points, nb_neighbors, mean_distance)
    } else {
        return (cloud.clone(), Vec::new());
    };
    // open3d counts every point in the denominator but sums only positive means.
    let cloud_mean = means.iter().filter(|&&m| m > 0.0).sum::<f64>() / n as f64;
    let sq_sum: f64 = means
        .iter()
        .filter(|&&m| m > 0.0)
        .map(|m| (m - cloud_mean) * (m - cloud_mean))
        .sum();
    let std_dev = if n > 1 {
        (sq_sum / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let threshold = cloud_mean + std_ratio * std_dev;
    let kept: Vec<usize> = (0..n)
        .filter(|&i| means[i] > 0.0 && means[i] < threshold)
        .collect();
    (cloud.select(&kept), kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn voxel_downsample_averages_points_and_colours_per_voxel() {
        // Bounds min = (0,0,0), so voxels of 1.0 are anchored at -0.5: [-0.5, 0.5), [0.5, 1.5), ...
        let cloud = PointCloud {
            points: vec![
                Point3::new(0.0, 0.0, 0.0),
                Point3::new(0.4, 0.2, 0.0),
                Point3::new(0.6, 0.0, 0.0),
                Point3::new(2.0, 2.0, 2.0),
            ],
            colors: Some(vec![[0, 0, 0], [255, 100, 10], [1, 2, 3], [9, 9, 9]]),
        };
        let down = voxel_downsample(&cloud, 1.0);
        assert_eq!(
            down.points,
            vec![
                Point3::new(0.2, 0.1, 0.0),
                Point3::new(0.6, 0.0, 0.0),
                Point3::new(2.0, 2.0, 2.0)
            ]
        );
        assert_eq!(down.colors, Some(vec![[128, 50, 5], [1, 2, 3], [9, 9, 9]]));
        assert!(voxel_downsample(&PointCloud::default(), 0.1).is_empty());
    }

    fn brute_force_voxel_count(points: &[Point3<f64>], voxel: f64) -> usize {
        let min = Aabb::from_points(points).unwrap().min - Vector3::repeat(voxel / 2.0);
        let cells: std::collections::BTreeSet<[i64; 3]> = points
            .iter()
            .map(|p| ((p - min) / voxel).map(|c| c.floor() as i64).into())
            .collect();
        cells.len()
    }

    #[test]
    fn voxel_downsample_counts_occupied_voxels_on_both_key_paths() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let small: Vec<Point3<f64>> = (0..20_000)
            .map(|_| Point3::from(Vector3::from_fn(|_, _| rng.random_range(-1.0..1.0))))
            .collect();
        // Kilometre spread at millimetre voxels: more than 2^21 cells per axis, the wide-key path.
        let wide: Vec<Point3<f64>> = (0..5_000)
            .map(|_| Point3::from(Vector3::from_fn(|_, _| rng.random_range(-5000.0..5000.0))))
            .collect();
        for (points, voxel) in [
            (&small, 0.1),
            (&small, 0.37),
            (&wide, 0.001),
            (&wide, 2000.0),
        ] {
            let down = voxel_downsample(&PointCloud::new(points.clone()), voxel);
            assert_eq!(
                down.len(),
                brute_force_voxel_count(points, voxel),
                "voxel {voxel}"
            );
        }
    }

    #[test]
    fn cell_index_is_the_saturating_cast() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut values = vec![
            -5.0,
            -1.0,
            -0.5,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            0.5,
            1.0 - f64::EPSILON / 2.0,
            1.0,
            2.5,
            3.5,
            (1u64 << 21) as f64 - 0.5,
            (1u64 << 51) as f64 + 0.5,
            (1u64 << 52) as f64 - 1.0,
        ];
        for _ in 0..100_000 {
            let whole = rng.random_range(0..(1u64 << 21)) as f64;
            values.push(whole);
            values.push(whole + rng.random_range(0.0..1.0));
            values.push(f64::from_bits(whole.to_bits().wrapping_sub(1)));
        }
        for r in values {
            assert_eq!(cell_index(r), r as u64, "{r}");
        }
    }

    #[test]
    fn voxel_trace_points_each_input_to_its_voxel_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let points: Vec<Point3<f64>> = (0..3000)
            .map(|_| Point3::from(Vector3::from_fn(|_, _| rng.random_range(0.0..0.5))))
            .collect();
        let cloud = PointCloud::new(points.clone());
        let (down, trace) = voxel_downsample_traced(&cloud, 0.07);
        assert_eq!(trace.len(), points.len());
        assert_eq!(down, voxel_downsample(&cloud, 0.07));
        for (v, mean) in down.points.iter().enumerate() {
            let members: Vec<Point3<f64>> = points
                .iter()
                .zip(&trace)
                .filter(|(_, t)| **t as usize == v)
                .map(|(p, _)| *p)
                .collect();
            assert!(!members.is_empty());
            assert!((centroid(&members).unwrap() - mean).norm() < 1e-12);
        }
    }

    #[test]
    fn statistical_outliers_are_removed() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut points: Vec<Point3<f64>> = (0..2000)
            .map(|_| {
                Point3::new(
                    rng.random_range(0.0..1.0),
                    rng.random_range(0.0..1.0),
                    rng.random_range(0.0..0.05),
                )
            })
            .collect();
        let outliers = [
            Point3::new(3.0, 3.0, 3.0),
            Point3::new(-2.0, 0.5, 1.0),
            Point3::new(0.5, 0.5, 2.0),
        ];
        points.extend_from_slice(&outliers);
        let cloud = PointCloud::new(points);
        let (kept, indices) = remove_statistical_outliers(&cloud, 20, 2.0);
        assert_eq!(kept.len(), indices.len());
        for i in 2000..2003 {
            assert!(!indices.contains(&i), "outlier {i} kept");
        }
        assert!(indices.len() > 1900, "kept only {}", indices.len());
        assert!(indices.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn statistical_outliers_drop_exact_duplicates_like_open3d() {
        let mut points: Vec<Point3<f64>> = (0..50)
            .map(|i| Point3::new(i as f64 * 0.01, 0.0, 0.0))
            .collect();
        points.push(Point3::new(0.2, 0.0, 0.0));
        points.push(Point3::new(0.2, 0.0, 0.0));
        let (_, indices) = remove_statistical_outliers(&PointCloud::new(points), 2, 2.0);
        // Point 20 and the two copies of it have a zero mean distance to their 2 nearest (themselves).
        assert!(!indices.contains(&20) && !indices.contains(&50) && !indices.contains(&51));
        assert!(indices.contains(&19) && indices.contains(&21));
    }
}
