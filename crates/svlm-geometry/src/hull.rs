//! Convex hulls: 3D quickhull (for open3d's PCA box, which takes PCA over hull vertices) and 2D monotone chain
//! (for the upright box's minimum-area rectangle).

use std::collections::HashMap;

use nalgebra::{Point2, Point3, Vector3};

struct Face {
    vertices: [usize; 3],
    normal: Vector3<f64>,
    offset: f64,
    outside: Vec<usize>,
    alive: bool,
}

impl Face {
    fn distance(&self, p: &Point3<f64>) -> f64 {
        self.normal.dot(&p.coords) - self.offset
    }
}

fn make_face(points: &[Point3<f64>], vertices: [usize; 3]) -> Face {
    let [a, b, c] = vertices.map(|i| points[i]);
    let normal = (b - a).cross(&(c - a));
    let length = normal.norm();
    let normal = if length > 0.0 {
        normal / length
    } else {
        Vector3::zeros()
    };
    Face {
        vertices,
        normal,
        offset: normal.dot(&a.coords),
        outside: Vec::new(),
        alive: true,
    }
}

/// Indices of the vertices of the 3D convex hull of `points` (sorted, each once). Points within a small
/// scale-relative tolerance of a hull face are not vertices (as qhull's coplanar points). `None` when the points
/// do not span 3D (fewer than 4, or all coplanar) or are not finite.
pub(crate) fn convex_hull_vertices(points: &[Point3<f64>]) -> Option<Vec<usize>> {
    if points.len() < 4
        || points
            .iter()
            .any(|p| !p.coords.iter().all(|c| c.is_finite()))
    {
        return None;
    }
    let scale = points
        .iter()
        .flat_map(|p| p.coords.iter().map(|c| c.abs()))
        .fold(0.0, f64::max)
        .max(1e-300);
    let eps = scale * 1e-11;

    // Initial tetrahedron: the farthest pair among the axis extremes, the point farthest from their line, the
    // point farthest from that triangle's plane.
    let mut extremes = Vec::with_capacity(6);
    for axis in 0..3 {
        let by_axis = |a: &&Point3<f64>, b: &&Point3<f64>| a[axis].total_cmp(&b[axis]);
        let (min_i, _) = points
            .iter()
            .enumerate()
            .min_by(|a, b| by_axis(&a.1, &b.1))?;
        let (max_i, _) = points
            .iter()
            .enumerate()
            .max_by(|a, b| by_axis(&a.1, &b.1))?;
        extremes.push(min_i);
        extremes.push(max_i);
    }
    let mut best = (0.0, 0, 0);
    for &i in &extremes {
        for &j in &extremes {
            let d = (points[i] - points[j]).norm_squared();
            if d > best.0 {
                best = (d, i, j);
            }
        }
    }
    let (line_len_sq, i0, i1) = best;
    if line_len_sq <= eps * eps {
        return None;
    }
    let dir = (points[i1] - points[i0]).normalize();
    let (i2, line_dist) = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let r = p - points[i0];
            (i, (r - dir * r.dot(&dir)).norm())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    if line_dist <= eps {
        return None;
    }
    let base = make_face(points, [i0, i1, i2]);
    let (i3, plane_dist) = points
        .iter()
        .enumerate()
        .map(|(i, p)| (i, base.distance(p)))
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
    if plane_dist.abs() <= eps {
        return None;
    }
    // Orient the four faces outwards (away from the tetrahedron's interior).
    let tetra = if plane_dist > 0.0 {
        [i0, i2, i1, i3]
    } else {
        [i0, i1, i2, i3]
    };
    let [a, b, c, d] = tetra;
    let mut faces = vec![
        make_face(points, [a, b, c]),
        make_face(points, [a, d, b]),
        make_face(points, [b, d, c]),
        make_face(points, [c, d, a]),
    ];
    let mut edge_owner: HashMap<(usize, usize), usize> = HashMap::new();
    for (f, face) in faces.iter().enumerate() {
        let [x, y, z] = face.vertices;
        for edge in [(x, y), (y, z), (z, x)] {
            edge_owner.insert(edge, f);
        }
    }
    for (i, p) in points.iter().enumerate() {
        if tetra.contains(&i) {
            continue;
        }
        if let Some(face) = faces.iter_mut().find(|f| f.distance(p) > eps) {
            face.outside.push(i);
        }
    }

    let mut pending: Vec<usize> = (0..faces.len()).collect();
    let mut visible: Vec<usize> = Vec::new();
    let mut horizon: Vec<(usize, usize)> = Vec::new();
    let mut orphans: Vec<usize> = Vec::new();
    while let Some(start) = pending.pop() {
        if !faces[start].alive || faces[start].outside.is_empty() {
            continue;
        }
        let eye = *faces[start].outside.iter().max_by(|&&a, &&b| {
            faces[start]
                .distance(&points[a])
                .total_cmp(&faces[start].distance(&points[b]))
        })?;
        let eye_point = points[eye];
        // Faces the eye sees, found by walking across edges from `start`; the horizon is their boundary.
        visible.clear();
        horizon.clear();
        let mut stack = vec![start];
        faces[start].alive = false;
        while let Some(f) = stack.pop() {
            visible.push(f);
            let [x, y, z] = faces[f].vertices;
            for (p, q) in [(x, y), (y, z), (z, x)] {
                let Some(&g) = edge_owner.get(&(q, p)) else {
                    continue;
                };
                if !faces[g].alive {
                    continue;
                }
                if faces[g].distance(&eye_point) > eps {
                    faces[g].alive = false;
                    stack.push(g);
                } else {
                    horizon.push((p, q));
                }
            }
        }
        orphans.clear();
        for &f in &visible {
            let [x, y, z] = faces[f].vertices;
            for edge in [(x, y), (y, z), (z, x)] {
                if edge_owner.get(&edge) == Some(&f) {
                    edge_owner.remove(&edge);
                }
            }
            orphans.append(&mut faces[f].outside);
        }
        let first_new = faces.len();
        for &(p, q) in &horizon {
            let f = faces.len();
            faces.push(make_face(points, [p, q, eye]));
            for edge in [(p, q), (q, eye), (eye, p)] {
                edge_owner.insert(edge, f);
            }
        }
        for &i in &orphans {
            if i == eye {
                continue;
            }
            let p = &points[i];
            if let Some(face) = faces[first_new..].iter_mut().find(|f| f.distance(p) > eps) {
                face.outside.push(i);
            }
        }
        pending.extend(first_new..faces.len());
    }
    // Triangulating flat patches leaves points that lie in a flat face or on a straight edge as triangle
    // corners. qhull merges such facets; here a vertex is kept only where at least three distinct planes meet.
    let mut incident: HashMap<usize, Vec<usize>> = HashMap::new();
    for (f, face) in faces.iter().enumerate().filter(|(_, f)| f.alive) {
        for v in face.vertices {
            incident.entry(v).or_default().push(f);
        }
    }
    let same_plane = |a: &Face, b: &Face| {
        a.normal.dot(&b.normal) > 0.0
            && b.vertices
                .iter()
                .all(|&v| a.distance(&points[v]).abs() <= eps)
    };
    let mut vertices: Vec<usize> = incident
        .into_iter()
        .filter(|(_, around)| {
            let mut planes: Vec<&Face> = Vec::with_capacity(3);
            for &f in around {
                if !planes.iter().any(|p| same_plane(p, &faces[f])) {
                    planes.push(&faces[f]);
                    if planes.len() >= 3 {
                        return true;
                    }
                }
            }
            false
        })
        .map(|(v, _)| v)
        .collect();
    vertices.sort_unstable();
    Some(vertices)
}

/// The points that may be hull vertices (Akl-Toussaint): the extreme points along x, y, x + y and x - y span an
/// octagon inside the hull, and a point clearly inside it (by a margin far above rounding error) cannot be a vertex.
/// Dropping them before the O(n log n) sort leaves the hull unchanged; object clouds of thousands of points keep
/// a few dozen. Small inputs come back whole.
fn outside_extreme_octagon(points: &[Point2<f64>]) -> Vec<Point2<f64>> {
    if points.len() < 64 {
        return points.to_vec();
    }
    // Counter-clockwise: east, north-east, north, north-west, west, south-west, south, south-east. (Written out:
    // an array of key functions was called through pointers for every point.)
    #[inline(always)]
    fn keys(p: &Point2<f64>) -> [f64; 8] {
        [
            p.x,
            p.x + p.y,
            p.y,
            p.y - p.x,
            -p.x,
            -p.x - p.y,
            -p.y,
            p.x - p.y,
        ]
    }
    let mut extreme = [points[0]; 8];
    let mut best = keys(&points[0]);
    for p in &points[1..] {
        let key = keys(p);
        for e in 0..8 {
            if key[e] > best[e] {
                best[e] = key[e];
                extreme[e] = *p;
            }
        }
    }
    let mut corners: Vec<Point2<f64>> = Vec::with_capacity(8);
    for e in extreme {
        if corners.last() != Some(&e) && corners.first() != Some(&e) {
            corners.push(e);
        }
    }
    if corners.len() < 3 {
        return points.to_vec();
    }
    let span = (extreme[0].x - extreme[4].x).max(extreme[2].y - extreme[6].y);
    let margin = 1e-9 * span * span;
    if !(margin > 0.0 && margin.is_finite()) {
        return points.to_vec();
    }
    let edges: Vec<(Point2<f64>, Point2<f64>)> = (0..corners.len())
        .map(|i| (corners[i], corners[(i + 1) % corners.len()]))
        .collect();
    points
        .iter()
        .filter(|p| {
            !edges
                .iter()
                .all(|(a, b)| (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x) > margin)
        })
        .copied()
        .collect()
}

/// 2D convex hull (Andrew's monotone chain), counter-clockwise, collinear points dropped. Fewer than 3 distinct
/// points come back as they are (1 or 2 points).
pub(crate) fn convex_hull_2d(points: &[Point2<f64>]) -> Vec<Point2<f64>> {
    monotone_chain(outside_extreme_octagon(points))
}

fn monotone_chain(mut sorted: Vec<Point2<f64>>) -> Vec<Point2<f64>> {
    // Unstable is the same order: points that compare equal have the same bits (and are deduplicated next).
    sorted.sort_unstable_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    sorted.dedup();
    if sorted.len() < 3 {
        return sorted;
    }
    let cross = |o: &Point2<f64>, a: &Point2<f64>, b: &Point2<f64>| {
        (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
    };
    let mut hull: Vec<Point2<f64>> = Vec::with_capacity(2 * sorted.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &Point2<f64>>> = if pass == 0 {
            Box::new(sorted.iter())
        } else {
            Box::new(sorted.iter().rev())
        };
        for p in iter {
            while hull.len() >= start + 2
                && cross(&hull[hull.len() - 2], &hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(*p);
        }
        hull.pop();
    }
    hull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cube_hull_has_its_eight_corners_only() {
        let mut points = Vec::new();
        for &x in &[0.0, 1.0] {
            for &y in &[0.0, 1.0] {
                for &z in &[0.0, 1.0] {
                    points.push(Point3::new(x, y, z));
                }
            }
        }
        // Interior and on-face points must not become vertices.
        points.push(Point3::new(0.5, 0.5, 0.5));
        points.push(Point3::new(0.5, 0.5, 1.0));
        points.push(Point3::new(0.0, 0.3, 0.7));
        let hull = convex_hull_vertices(&points).unwrap();
        assert_eq!(hull, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn random_hull_contains_every_point() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let points: Vec<Point3<f64>> = (0..2000)
            .map(|_| {
                Point3::new(
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-2.0..2.0),
                    rng.random_range(0.0..0.5),
                )
            })
            .collect();
        let hull = convex_hull_vertices(&points).unwrap();
        assert!(
            hull.len() > 20 && hull.len() < 400,
            "{} hull vertices",
            hull.len()
        );
        // The hull holds every point: in any direction the farthest point is a hull vertex.
        for _ in 0..200 {
            let dir = Vector3::new(
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            );
            let best_all = points
                .iter()
                .map(|p| p.coords.dot(&dir))
                .fold(f64::MIN, f64::max);
            let best_hull = hull
                .iter()
                .map(|&i| points[i].coords.dot(&dir))
                .fold(f64::MIN, f64::max);
            assert!((best_all - best_hull).abs() < 1e-12);
        }
    }

    #[test]
    fn flat_points_have_no_3d_hull() {
        let points: Vec<Point3<f64>> = (0..10)
            .map(|i| Point3::new(i as f64, (i * i) as f64, 0.0))
            .collect();
        assert!(convex_hull_vertices(&points).is_none());
    }

    #[test]
    fn octagon_filter_leaves_the_2d_hull_unchanged() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        for round in 0..40 {
            let n = [70, 500, 3000][round % 3];
            let (sx, sy) = (rng.random_range(0.01..3.0), rng.random_range(0.01..3.0));
            let snap = round % 2 == 0;
            let points: Vec<Point2<f64>> = (0..n)
                .map(|_| {
                    let (mut x, mut y) = (rng.random_range(-sx..sx), rng.random_range(-sy..sy));
                    if round % 4 == 1 {
                        // A disc: many hull vertices.
                        let (r, t) = (
                            rng.random_range(0.0f64..1.0).sqrt(),
                            rng.random_range(0.0..6.3f64),
                        );
                        (x, y) = (sx * r * t.cos(), sy * r * t.sin());
                    }
                    if snap {
                        // Grid coordinates: duplicates and collinear boundary points.
                        (x, y) = ((x * 20.0).round() / 20.0, (y * 20.0).round() / 20.0);
                    }
                    Point2::new(x + 5.0, y - 2.0)
                })
                .collect();
            let kept = outside_extreme_octagon(&points);
            assert!(n < 500 || kept.len() < n / 2, "kept {} of {n}", kept.len());
            assert_eq!(
                convex_hull_2d(&points),
                monotone_chain(points.clone()),
                "round {round}"
            );
        }
    }

    #[test]
    fn square_2d_hull_drops_inner_and_collinear_points() {
        let pts = [
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 1.0),
            (0.5, 0.5),
            (0.5, 0.0),
        ]
        .map(|(x, y)| Point2::new(x, y));
        let hull = convex_hull_2d(&pts);
        assert_eq!(hull.len(), 4);
    }
}
