use nalgebra::{Point3, Vector3};

use crate::boxes::Aabb;
use crate::simd::vectorized;

/// Points per leaf: small enough to prune well, large enough to keep the tree shallow.
const LEAF_SIZE: usize = 16;

/// Static 3D kd-tree over a point slice; results are indices into that slice.
///
/// A balanced implicit tree: the node over `[lo, hi)` splits at `mid = (lo + hi) / 2` on the axis of largest
/// spread at the median value (left half `<=`, right half `>=`). Every internal node has a distinct `mid`, so
/// split axes and values live in arrays indexed by it (the value is stored because building the right child
/// reorders the slot at `mid`). Per-object clouds are small (hundreds of points),
/// where building this costs microseconds, far less than a general-purpose tree with its own allocations.
///
/// [`Self::for_radius_search`] gives clouds of at most [`SCAN_MAX_POINTS`] points no tree: their searches scan
/// coordinate columns, computing every squared distance exactly as the tree's leaves do, so both give the same
/// neighbours and distances.
pub(crate) struct KdIndex {
    coords: Vec<[f64; 3]>,
    ids: Vec<u32>,
    split_axis: Vec<u8>,
    split_value: Vec<f64>,
    min: [f64; 3],
    max: [f64; 3],
    /// x, y and z of every point in input order, for a cloud searched by a scan (empty for a tree).
    columns: [Vec<f64>; 3],
}

/// Up to this many points a linear scan beats the tree for radius and nearest-distance searches: the distance
/// loop vectorizes and a branch-free compaction keeps the hits, where the tree pays a branchy descent per query.
/// Synthesis filters objects on at most 300 voxels, so their outlier removal, DBSCAN and the gaps between objects
/// take this path. (k-nearest searches scan too, but through [`KdIndex::scan_nearest_k_distances`], which keeps
/// only the distances under a threshold and sorts those: keeping the k best of every point one by one, as
/// [`KdIndex::nearest_k`] does on a scan index, costs more than the tree's pruning.)
pub(crate) const SCAN_MAX_POINTS: usize = 512;

/// Points per block of a scan: distances are computed a block at a time into a small stack buffer.
const SCAN_BLOCK: usize = 64;

impl KdIndex {
    /// An index for radius and nearest-distance searches: a scan up to [`SCAN_MAX_POINTS`] points, a tree above.
    /// (k-nearest searches on a scan index are fast only through [`Self::scan_nearest_k_distances`].) `None` for
    /// an empty slice.
    pub(crate) fn for_radius_search(points: &[Point3<f64>]) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        if points.len() <= SCAN_MAX_POINTS {
            return Some(Self::scan_only(points));
        }
        Self::new(points)
    }

    /// A tree over `points`; `None` for an empty slice.
    pub(crate) fn new(points: &[Point3<f64>]) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let mut order: Vec<u32> = (0..points.len() as u32).collect();
        let mut split_axis = vec![0u8; points.len()];
        let mut split_value = vec![0.0; points.len()];
        build(points, &mut order, 0, &mut split_axis, &mut split_value);
        let mut min = [f64::INFINITY; 3];
        let mut max = [f64::NEG_INFINITY; 3];
        for p in points {
            for a in 0..3 {
                min[a] = min[a].min(p[a]);
                max[a] = max[a].max(p[a]);
            }
        }
        let coords = order.iter().map(|&i| {
            let p = &points[i as usize];
            [p.x, p.y, p.z]
        });
        Some(Self {
            coords: coords.collect(),
            ids: order,
            split_axis,
            split_value,
            min,
            max,
            columns: Default::default(),
        })
    }

    fn scan_only(points: &[Point3<f64>]) -> Self {
        let column = |a: usize| points.iter().map(|p| p[a]).collect();
        Self {
            coords: Vec::new(),
            ids: Vec::new(),
            split_axis: Vec::new(),
            split_value: Vec::new(),
            min: [0.0; 3],
            max: [0.0; 3],
            columns: [column(0), column(1), column(2)],
        }
    }

    fn is_scan(&self) -> bool {
        !self.columns[0].is_empty()
    }

    /// Calls `visit(first_index, distances)` for consecutive blocks of squared distances from `q` (input order),
    /// each the same expression as [`sq_distance`] with the point first, so the values are bit-identical to the
    /// tree's.
    fn scan_distances(&self, q: &[f64; 3], mut visit: impl FnMut(usize, &[f64])) {
        let [xs, ys, zs] = &self.columns;
        let mut block = [0.0; SCAN_BLOCK];
        for start in (0..xs.len()).step_by(SCAN_BLOCK) {
            let end = (start + SCAN_BLOCK).min(xs.len());
            let out = &mut block[..end - start];
            for (((d, x), y), z) in out
                .iter_mut()
                .zip(&xs[start..end])
                .zip(&ys[start..end])
                .zip(&zs[start..end])
            {
                let (dx, dy, dz) = (x - q[0], y - q[1], z - q[2]);
                *d = dx * dx + dy * dy + dz * dz;
            }
            visit(start, out);
        }
    }

    /// The `k` nearest points as `(squared distance, index)`, closest first, into `out` (cleared first); the query
    /// point itself is included when it is in the tree. Fewer than `k` when the tree is smaller.
    pub(crate) fn nearest_k(&self, p: &Point3<f64>, k: usize, out: &mut Vec<(f64, u32)>) {
        out.clear();
        if k == 0 {
            return;
        }
        let q = [p.x, p.y, p.z];
        if self.is_scan() {
            self.scan_distances(&q, |start, distances| {
                for (i, &d) in distances.iter().enumerate() {
                    insert_nearest(out, k, d, (start + i) as u32);
                }
            });
            return;
        }
        let (mut off, rd) = self.box_offsets(&q);
        self.knn(0, self.coords.len(), &q, k, out, &mut off, rd);
    }

    /// The `k` smallest squared distances from `p` to the points of a scan index (itself included), ascending,
    /// as bits (`f64::to_bits`, which orders non-negative values as numbers) into `out`: the same values as the
    /// distances [`Self::nearest_k`] gives, tie or no tie. Fewer than `k` when the cloud is smaller.
    ///
    /// All distances are computed into `d2` (a vectorized loop); only those at most a threshold are then kept and
    /// sorted. `threshold` carries a guess across calls (queries in a row have similar k-th distances; start with
    /// infinity): it is raised until at least `k` distances are within it, which makes the `k` smallest overall
    /// the `k` smallest kept, and is left at 1.25 times this query's k-th distance.
    #[inline(always)]
    pub(crate) fn scan_nearest_k_distances(
        &self,
        p: &Point3<f64>,
        k: usize,
        threshold: &mut f64,
        d2: &mut Vec<f64>,
        out: &mut Vec<u64>,
    ) {
        debug_assert!(self.is_scan());
        let [xs, ys, zs] = &self.columns;
        let n = xs.len();
        let k = k.min(n);
        out.clear();
        if k == 0 {
            return;
        }
        let q = [p.x, p.y, p.z];
        d2.resize(n, 0.0);
        for (((d, x), y), z) in d2.iter_mut().zip(xs).zip(ys).zip(zs) {
            let (dx, dy, dz) = (x - q[0], y - q[1], z - q[2]);
            *d = dx * dx + dy * dy + dz * dz;
        }
        // A guess of 0 (a k-th distance of 0: duplicates) or NaN could never be raised: start from infinity.
        let mut t = if *threshold > 0.0 {
            *threshold
        } else {
            f64::INFINITY
        };
        loop {
            // Wrapping adds (at most n, no overflow): an overflow-checked add is a branch that keeps the loop scalar
            // in the dev profile.
            let mut within = 0u64;
            for &d in d2.iter() {
                within = within.wrapping_add(u64::from(d <= t));
            }
            if within as usize >= k {
                break;
            }
            t *= 4.0;
        }
        // Branch-free compaction of the distances within the threshold.
        // Branch-free compaction of the distances within the threshold, eight at a time: a mask of the chunk's
        // hits, then one store per hit.
        out.resize(n, 0);
        let buf = &mut out[..];
        let mut kept = 0usize;
        let chunks = d2.chunks_exact(8);
        let rest = chunks.remainder();
        for (c, chunk) in chunks.enumerate() {
            let mut hits = 0u32;
            for (b, &d) in chunk.iter().enumerate() {
                hits |= u32::from(d <= t) << b;
            }
            while hits != 0 {
                let b = hits.trailing_zeros() as usize;
                buf[kept] = d2[c * 8 + b].to_bits();
                kept = kept.wrapping_add(1);
                hits &= hits.wrapping_sub(1);
            }
        }
        let base = n - rest.len();
        for (b, &d) in rest.iter().enumerate() {
            buf[kept] = d2[base + b].to_bits();
            kept = kept.wrapping_add(usize::from(d <= t));
        }
        out.truncate(kept);
        if kept > 2 * k {
            out.select_nth_unstable(k - 1);
            out.truncate(k);
        }
        out.sort_unstable();
        out.truncate(k);
        let kth = f64::from_bits(out[k - 1]);
        *threshold = kth * 1.25;
    }

    /// Indices of the points strictly closer than `radius` (nanoflann's radius-search semantics), appended to
    /// `out`.
    pub(crate) fn within(&self, p: &Point3<f64>, radius: f64, out: &mut Vec<u32>) {
        let q = [p.x, p.y, p.z];
        let r2 = radius * radius;
        if self.is_scan() {
            self.scan_distances(&q, |start, distances| {
                // Branch-free compaction: write every index, advance past the ones inside.
                let mut inside = [0u32; SCAN_BLOCK];
                let mut count = 0;
                for (i, &d) in distances.iter().enumerate() {
                    inside[count] = (start + i) as u32;
                    count += usize::from(d < r2);
                }
                out.extend_from_slice(&inside[..count]);
            });
            return;
        }
        let (mut off, rd) = self.box_offsets(&q);
        if rd < r2 {
            self.radius(0, self.coords.len(), &q, r2, out, &mut off, rd);
        }
    }

    /// Squared distance to the nearest point, or `bound` when no point is closer than `sqrt(bound)` (pass
    /// infinity for a plain nearest-neighbour query; a finite bound prunes the search).
    #[inline(always)]
    pub(crate) fn nearest_sq_distance_below(&self, p: &Point3<f64>, bound: f64) -> f64 {
        let q = [p.x, p.y, p.z];
        if self.is_scan() {
            // Eight running minima (a minimum does not depend on the order it is taken in, and squared
            // distances are never NaN or -0), so the loop vectorizes.
            const LANES: usize = 8;
            let [xs, ys, zs] = &self.columns;
            let mut lanes = [bound; LANES];
            let whole = xs.len() / LANES * LANES;
            for start in (0..whole).step_by(LANES) {
                let (x, y, z) = (
                    &xs[start..start + LANES],
                    &ys[start..start + LANES],
                    &zs[start..start + LANES],
                );
                for l in 0..LANES {
                    let (dx, dy, dz) = (x[l] - q[0], y[l] - q[1], z[l] - q[2]);
                    lanes[l] = lanes[l].min(dx * dx + dy * dy + dz * dz);
                }
            }
            for i in whole..xs.len() {
                let (dx, dy, dz) = (xs[i] - q[0], ys[i] - q[1], zs[i] - q[2]);
                lanes[0] = lanes[0].min(dx * dx + dy * dy + dz * dz);
            }
            return lanes.iter().fold(bound, |best, &d| best.min(d));
        }
        let (mut off, rd) = self.box_offsets(&q);
        let mut best = bound;
        if rd < best {
            self.nearest(0, self.coords.len(), &q, &mut best, &mut off, rd);
        }
        best
    }

    /// Per-axis offsets of `q` outside the tree's bounding box and their squared length: the starting cell
    /// bound for the incremental-distance searches (exact per axis, since each later split replaces its axis's
    /// offset by the distance to the split plane).
    fn box_offsets(&self, q: &[f64; 3]) -> ([f64; 3], f64) {
        let mut off = [0.0; 3];
        for a in 0..3 {
            off[a] = (self.min[a] - q[a]).max(q[a] - self.max[a]).max(0.0);
        }
        (off, off[0] * off[0] + off[1] * off[1] + off[2] * off[2])
    }

    // The searches carry `off` (per axis, the query's offset to the current cell along the last split on that
    // axis) and `rd` = |off|^2, a lower bound on the distance to anything in the cell (Arya & Mount's incremental
    // distance): a far child is visited only when its bound can still beat the current worst.

    #[allow(clippy::too_many_arguments)]
    fn knn(
        &self,
        lo: usize,
        hi: usize,
        q: &[f64; 3],
        k: usize,
        out: &mut Vec<(f64, u32)>,
        off: &mut [f64; 3],
        rd: f64,
    ) {
        if hi - lo <= LEAF_SIZE {
            for i in lo..hi {
                insert_nearest(out, k, sq_distance(&self.coords[i], q), self.ids[i]);
            }
            return;
        }
        let mid = (lo + hi) / 2;
        let axis = self.split_axis[mid] as usize;
        let diff = q[axis] - self.split_value[mid];
        let (near, far) = if diff < 0.0 {
            ((lo, mid), (mid, hi))
        } else {
            ((mid, hi), (lo, mid))
        };
        self.knn(near.0, near.1, q, k, out, off, rd);
        let old = off[axis];
        let rd_far = rd - old * old + diff * diff;
        if out.len() < k || rd_far < out[k - 1].0 {
            off[axis] = diff;
            self.knn(far.0, far.1, q, k, out, off, rd_far);
            off[axis] = old;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn radius(
        &self,
        lo: usize,
        hi: usize,
        q: &[f64; 3],
        r2: f64,
        out: &mut Vec<u32>,
        off: &mut [f64; 3],
        rd: f64,
    ) {
        if hi - lo <= LEAF_SIZE {
            for i in lo..hi {
                if sq_distance(&self.coords[i], q) < r2 {
                    out.push(self.ids[i]);
                }
            }
            return;
        }
        let mid = (lo + hi) / 2;
        let axis = self.split_axis[mid] as usize;
        let diff = q[axis] - self.split_value[mid];
        let (near, far) = if diff < 0.0 {
            ((lo, mid), (mid, hi))
        } else {
            ((mid, hi), (lo, mid))
        };
        self.radius(near.0, near.1, q, r2, out, off, rd);
        let old = off[axis];
        let rd_far = rd - old * old + diff * diff;
        if rd_far < r2 {
            off[axis] = diff;
            self.radius(far.0, far.1, q, r2, out, off, rd_far);
            off[axis] = old;
        }
    }

    fn nearest(
        &self,
        lo: usize,
        hi: usize,
        q: &[f64; 3],
        best: &mut f64,
        off: &mut [f64; 3],
        rd: f64,
    ) {
        if hi - lo <= LEAF_SIZE {
            for i in lo..hi {
                *best = best.min(sq_distance(&self.coords[i], q));
            }
            return;
        }
        let mid = (lo + hi) / 2;
        let axis = self.split_axis[mid] as usize;
        let diff = q[axis] - self.split_value[mid];
        let (near, far) = if diff < 0.0 {
            ((lo, mid), (mid, hi))
        } else {
            ((mid, hi), (lo, mid))
        };
        self.nearest(near.0, near.1, q, best, off, rd);
        let old = off[axis];
        let rd_far = rd - old * old + diff * diff;
        if rd_far < *best {
            off[axis] = diff;
            self.nearest(far.0, far.1, q, best, off, rd_far);
            off[axis] = old;
        }
    }
}

/// Keeps `out` the `k` smallest `(distance, id)` seen so far, sorted, ties in order of arrival.
#[inline(always)]
fn insert_nearest(out: &mut Vec<(f64, u32)>, k: usize, d: f64, id: u32) {
    if out.len() == k {
        if d >= out[k - 1].0 {
            return;
        }
        out.pop();
    }
    // Sorted insert from the back: new candidates are usually farther than most kept ones.
    let mut at = out.len();
    while at > 0 && out[at - 1].0 > d {
        at -= 1;
    }
    out.insert(at, (d, id));
}

#[inline(always)]
fn sq_distance(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let (dx, dy, dz) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    dx * dx + dy * dy + dz * dz
}

/// Orders `order` (indices into `points`, positions `offset..offset + order.len()` of the tree) into the
/// implicit tree layout, recording each internal node's split axis.
fn build(
    points: &[Point3<f64>],
    order: &mut [u32],
    offset: usize,
    split_axis: &mut [u8],
    split_value: &mut [f64],
) {
    let n = order.len();
    if n <= LEAF_SIZE {
        return;
    }
    let mut min = [f64::INFINITY; 3];
    let mut max = [f64::NEG_INFINITY; 3];
    for &i in order.iter() {
        let p = &points[i as usize];
        for a in 0..3 {
            min[a] = min[a].min(p[a]);
            max[a] = max[a].max(p[a]);
        }
    }
    let axis = (0..3)
        .max_by(|&a, &b| (max[a] - min[a]).total_cmp(&(max[b] - min[b])))
        .unwrap_or(0);
    let mid = n / 2;
    order.select_nth_unstable_by(mid, |&a, &b| {
        points[a as usize][axis].total_cmp(&points[b as usize][axis])
    });
    split_axis[offset + mid] = axis as u8;
    split_value[offset + mid] = points[order[mid] as usize][axis];
    let (left, right) = order.split_at_mut(mid);
    build(points, left, offset, split_axis, split_value);
    build(points, right, offset + mid, split_axis, split_value);
}

/// Smallest Euclidean distance between any point of `a` and any point of `b` (kd-tree over the larger set);
/// `f64::INFINITY` when either is empty.
pub fn closest_distance(a: &[Point3<f64>], b: &[Point3<f64>]) -> f64 {
    let (tree_points, queries) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let (Some(index), Some(bounds)) = (
        KdIndex::for_radius_search(tree_points),
        Aabb::from_points(tree_points),
    ) else {
        return f64::INFINITY;
    };
    // Queries nearest the tree's box first; once a query's distance to the box reaches the best distance so
    // far, no later query can do better. Separated objects then need only a handful of tree searches.
    let mut order: Vec<(f64, u32)> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let gap = (bounds.min - q)
                .sup(&(q - bounds.max))
                .sup(&Vector3::zeros());
            (gap.norm_squared(), i as u32)
        })
        .collect();
    order.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    let mut best = f64::INFINITY;
    vectorized(
        #[inline(always)]
        || {
            for (gap, i) in order {
                if gap >= best {
                    break;
                }
                best = index.nearest_sq_distance_below(&queries[i as usize], best);
            }
        },
    );
    best.sqrt()
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
    fn knn_and_radius_match_brute_force() {
        // A tree above SCAN_MAX_POINTS, a scan below.
        for n in [700, 300] {
            knn_and_radius_match_brute_force_on(n);
        }
    }

    fn knn_and_radius_match_brute_force_on(n: usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        // Clustered and duplicated coordinates stress ties at the splits.
        let points: Vec<Point3<f64>> = (0..n)
            .map(|i| {
                let snap = |x: f64| {
                    if i % 3 == 0 {
                        (x * 10.0).round() / 10.0
                    } else {
                        x
                    }
                };
                Point3::new(
                    snap(rng.random_range(0.0..1.0)),
                    snap(rng.random_range(0.0..0.3)),
                    rng.random_range(0.0..2.0),
                )
            })
            .collect();
        let index = KdIndex::for_radius_search(&points).unwrap();
        assert_eq!(index.is_scan(), n <= SCAN_MAX_POINTS);
        assert!(!KdIndex::new(&points).unwrap().is_scan());
        let mut found = Vec::new();
        let mut within = Vec::new();
        for q in points
            .iter()
            .step_by(7)
            .chain([Point3::new(5.0, 5.0, 5.0)].iter())
        {
            let mut brute: Vec<f64> = points.iter().map(|p| (p - q).norm_squared()).collect();
            brute.sort_by(f64::total_cmp);
            index.nearest_k(q, 15, &mut found);
            let got: Vec<f64> = found.iter().map(|(d, _)| *d).collect();
            assert_eq!(got, brute[..15].to_vec());
            assert!(
                found
                    .iter()
                    .all(|(d, i)| (points[*i as usize] - q).norm_squared() == *d)
            );
            within.clear();
            index.within(q, 0.2, &mut within);
            let mut expected: Vec<u32> = (0..n as u32)
                .filter(|&i| (points[i as usize] - q).norm_squared() < 0.04)
                .collect();
            within.sort_unstable();
            expected.sort_unstable();
            assert_eq!(within, expected);
            assert_eq!(index.nearest_sq_distance_below(q, f64::INFINITY), brute[0]);
            assert_eq!(
                index.nearest_sq_distance_below(q, brute[0] / 2.0),
                brute[0] / 2.0
            );
        }
        index.nearest_k(&points[0], 5000, &mut found);
        assert_eq!(found.len(), n);
    }

    #[test]
    fn scan_k_nearest_distances_equal_the_trees() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut found, mut d2, mut bits) = (Vec::new(), Vec::new(), Vec::new());
        // Tiny clouds (fewer points than k), grid-snapped clouds full of equal distances, duplicates, a sheet.
        for (n, snap, k) in [
            (1, 0.0f64, 20),
            (7, 0.0, 20),
            (20, 0.0, 20),
            (21, 0.1, 20),
            (300, 0.0, 20),
            (300, 0.05, 20),
            (512, 0.02, 20),
            (200, 0.25, 5),
            (100, 0.0f64, 1),
        ] {
            let mut points: Vec<Point3<f64>> = (0..n)
                .map(|_| {
                    let mut c = Vector3::new(
                        rng.random_range(0.0..1.0),
                        rng.random_range(0.0..0.5),
                        rng.random_range(0.0..0.02),
                    );
                    if snap > 0.0 {
                        c = c.map(|x| (x / snap).round() * snap);
                    }
                    Point3::from(c)
                })
                .collect();
            if n > 10 {
                points[3] = points[5];
            }
            let tree = KdIndex::new(&points).unwrap();
            let scan = KdIndex::for_radius_search(&points).unwrap();
            assert!(scan.is_scan());
            let mut threshold = f64::INFINITY;
            // Queries in order (the threshold guess carried along), then far away ones that force it up.
            let far = [Point3::new(3.0, -2.0, 1.0), Point3::new(0.5, 0.25, 0.01)];
            for q in points.iter().chain(&far) {
                tree.nearest_k(q, k, &mut found);
                scan.scan_nearest_k_distances(q, k, &mut threshold, &mut d2, &mut bits);
                let expected: Vec<f64> = found.iter().map(|(d, _)| *d).collect();
                let got: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
                assert_eq!(got, expected, "n {n} snap {snap} k {k} query {q}");
                assert_eq!(got.len(), k.min(n));
            }
        }
    }

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
