use nalgebra::{Matrix3, Point2, Point3, Rotation3, SymmetricEigen, Unit, Vector2, Vector3};

use crate::hull::{convex_hull_2d, convex_hull_vertices};
use crate::plane::mean_and_covariance;

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

    /// open3d `get_oriented_bounding_box` (PCA): axes = eigenvectors of the covariance of the convex hull's
    /// vertices, largest spread first (third axis = first x second), box = extents of the points along them.
    /// Flat or collinear sets (no 3D hull) use the covariance of all points. `None` when empty.
    pub fn from_points_pca(points: &[Point3<f64>]) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let hull: Vec<Point3<f64>> = match convex_hull_vertices(points) {
            Some(indices) => indices.iter().map(|&i| points[i]).collect(),
            None => points.to_vec(),
        };
        let (mean, cov) = mean_and_covariance(&hull)?;
        let eigen = SymmetricEigen::new(cov);
        let mut order = [0usize, 1, 2];
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let axis0 = eigen.eigenvectors.column(order[0]).normalize();
        let axis1 = eigen.eigenvectors.column(order[1]).normalize();
        let axis2 = axis0.cross(&axis1);
        let rotation =
            Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[axis0, axis1, axis2]));
        let local: Vec<Point3<f64>> = hull
            .iter()
            .map(|p| Point3::from(rotation.inverse() * (p - mean)))
            .collect();
        let local_box = Aabb::from_points(&local)?;
        Some(Self {
            center: mean + rotation * local_box.center().coords,
            rotation,
            half_extents: local_box.extent() / 2.0,
        })
    }

    /// Gravity-aligned box: the minimum-area rectangle of the points projected onto the plane perpendicular to
    /// `up`, and the extent along `up`. Axes (rotation columns): x = the rectangle's longer side, y = its shorter
    /// side, z = `up`, right-handed; x is chosen in the half-turn `[0, 180)` degrees measured from
    /// [`horizontal_basis`]`(up).0` towards `.1`. `None` when empty or `up` is zero/non-finite.
    pub fn from_points_upright(points: &[Point3<f64>], up: &Vector3<f64>) -> Option<Self> {
        if points.is_empty() {
            return None;
        }
        let up = Unit::try_new(*up, 1e-12)?;
        if !up.iter().all(|c| c.is_finite()) {
            return None;
        }
        let (e1, e2) = horizontal_basis(&up);
        let mut low = f64::INFINITY;
        let mut high = f64::NEG_INFINITY;
        let flat: Vec<Point2<f64>> = points
            .iter()
            .map(|p| {
                let h = p.coords.dot(&up);
                low = low.min(h);
                high = high.max(h);
                Point2::new(p.coords.dot(&e1), p.coords.dot(&e2))
            })
            .collect();
        let hull = convex_hull_2d(&flat);
        let (dir, min_a, max_a, min_b, max_b) = min_area_rectangle(&hull);
        // dir is the rectangle's first side; make it the longer one.
        let (mut long_dir, long_half, short_half, center_2d) = {
            let (len_a, len_b) = (max_a - min_a, max_b - min_b);
            let perp = Vector2::new(-dir.y, dir.x);
            let center = dir * ((min_a + max_a) / 2.0) + perp * ((min_b + max_b) / 2.0);
            if len_a >= len_b {
                (dir, len_a / 2.0, len_b / 2.0, center)
            } else {
                (perp, len_b / 2.0, len_a / 2.0, center)
            }
        };
        if long_dir.y < 0.0 || (long_dir.y == 0.0 && long_dir.x < 0.0) {
            long_dir = -long_dir;
        }
        let x_axis = e1 * long_dir.x + e2 * long_dir.y;
        let y_axis = up.cross(&x_axis);
        let rotation = Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[
            x_axis,
            y_axis,
            up.into_inner(),
        ]));
        let center = e1 * center_2d.x + e2 * center_2d.y + up.into_inner() * ((low + high) / 2.0);
        Some(Self {
            center: Point3::from(center),
            rotation,
            half_extents: Vector3::new(long_half, short_half, (high - low) / 2.0),
        })
    }

    /// Angle in degrees, in `[0, 180)`, of the box's x axis around `up`, measured from
    /// [`horizontal_basis`]`(up).0` towards `.1` (for Z up: from +X towards +Y).
    pub fn yaw_deg(&self, up: &Vector3<f64>) -> f64 {
        let Some(up) = Unit::try_new(*up, 1e-12) else {
            return 0.0;
        };
        let (e1, e2) = horizontal_basis(&up);
        let x = self.rotation.matrix().column(0).into_owned();
        let yaw = x.dot(&e2).atan2(x.dot(&e1)).to_degrees();
        yaw.rem_euclid(180.0)
    }

    /// The eight corners.
    pub fn corners(&self) -> [Point3<f64>; 8] {
        let mut corners = [Point3::origin(); 8];
        for (i, corner) in corners.iter_mut().enumerate() {
            let sign = Vector3::new(
                if i & 1 == 0 { -1.0 } else { 1.0 },
                if i & 2 == 0 { -1.0 } else { 1.0 },
                if i & 4 == 0 { -1.0 } else { 1.0 },
            );
            *corner = self.center + self.rotation * self.half_extents.component_mul(&sign);
        }
        corners
    }
}

/// Two unit vectors spanning the plane perpendicular to `up`, with `(e1, e2, up)` right-handed. For `up` = +Z
/// this is (+X, +Y); otherwise e1 is the projection of +X (or +Y when `up` is nearly parallel to X).
pub fn horizontal_basis(up: &Unit<Vector3<f64>>) -> (Vector3<f64>, Vector3<f64>) {
    let reference = if up.x.abs() < 0.9 {
        Vector3::x()
    } else {
        Vector3::y()
    };
    let e1 = (reference - up.into_inner() * up.dot(&reference)).normalize();
    let e2 = up.cross(&e1);
    (e1, e2)
}

/// Minimum-area enclosing rectangle of a convex polygon, trying each edge direction (a rectangle of minimum area
/// has a side on a hull edge). Returns the side direction and the point extents along it and its
/// perpendicular.
fn min_area_rectangle(hull: &[Point2<f64>]) -> (Vector2<f64>, f64, f64, f64, f64) {
    let extents = |dir: Vector2<f64>| {
        let perp = Vector2::new(-dir.y, dir.x);
        let (mut min_a, mut max_a, mut min_b, mut max_b) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for p in hull {
            let (a, b) = (p.coords.dot(&dir), p.coords.dot(&perp));
            min_a = min_a.min(a);
            max_a = max_a.max(a);
            min_b = min_b.min(b);
            max_b = max_b.max(b);
        }
        (dir, min_a, max_a, min_b, max_b)
    };
    let mut best = extents(Vector2::x());
    let mut best_area = (best.2 - best.1) * (best.4 - best.3);
    for i in 0..hull.len() {
        let edge = hull[(i + 1) % hull.len()] - hull[i];
        let length = edge.norm();
        if length <= 0.0 {
            continue;
        }
        let candidate = extents(edge / length);
        let area = (candidate.2 - candidate.1) * (candidate.4 - candidate.3);
        if area < best_area {
            best = candidate;
            best_area = area;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Points on the surface of a box with the given full extents, yawed about Z, then tilted/offset.
    fn box_surface(
        rng: &mut ChaCha8Rng,
        extents: Vector3<f64>,
        rotation: &Rotation3<f64>,
        center: Vector3<f64>,
    ) -> Vec<Point3<f64>> {
        (0..4000)
            .map(|i| {
                let mut local = Vector3::from_fn(|r, _| rng.random_range(-0.5..0.5) * extents[r]);
                let axis = i % 3;
                local[axis] = if i % 2 == 0 { 0.5 } else { -0.5 } * extents[axis];
                Point3::from(center + rotation * local)
            })
            .collect()
    }

    #[test]
    fn upright_box_recovers_extents_and_yaw() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for yaw in [0.0f64, 30.0, 95.0, 172.0] {
            let rotation = Rotation3::from_axis_angle(&Vector3::z_axis(), yaw.to_radians());
            let center = Vector3::new(2.0, -1.0, 0.4);
            let points = box_surface(&mut rng, Vector3::new(1.2, 0.5, 0.8), &rotation, center);
            let obb = Obb::from_points_upright(&points, &Vector3::z()).unwrap();
            assert!(
                (obb.extent() - Vector3::new(1.2, 0.5, 0.8)).norm() < 0.01,
                "yaw {yaw}: {}",
                obb.extent()
            );
            let error = (obb.yaw_deg(&Vector3::z()) - yaw).rem_euclid(180.0);
            assert!(
                error.min(180.0 - error) < 0.5,
                "yaw {yaw}: got {}",
                obb.yaw_deg(&Vector3::z())
            );
            assert!((obb.center - Point3::from(center)).norm() < 0.01);
            assert!((obb.rotation.matrix().determinant() - 1.0).abs() < 1e-9);
            assert_eq!(obb.rotation * Vector3::z(), Vector3::z());
        }
    }

    #[test]
    fn upright_box_along_a_tilted_up_keeps_up_as_its_third_axis() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let up = Vector3::new(0.0, -0.8, -0.6); // a camera-frame up
        let (e1, e2) = horizontal_basis(&Unit::new_normalize(up));
        let rotation = Rotation3::from_matrix(&Matrix3::from_columns(&[e1, e2, up.normalize()]))
            * Rotation3::from_axis_angle(&Vector3::z_axis(), 0.7);
        let points = box_surface(
            &mut rng,
            Vector3::new(0.3, 0.9, 0.4),
            &rotation,
            Vector3::new(0.1, 0.2, 3.0),
        );
        let obb = Obb::from_points_upright(&points, &up).unwrap();
        assert!(
            (obb.extent() - Vector3::new(0.9, 0.3, 0.4)).norm() < 0.01,
            "{}",
            obb.extent()
        );
        assert!((obb.rotation.matrix().column(2) - up.normalize()).norm() < 1e-12);
    }

    #[test]
    fn pca_box_of_an_elongated_rotated_box() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let rotation = Rotation3::from_euler_angles(0.3, -0.5, 1.1);
        let points = box_surface(
            &mut rng,
            Vector3::new(2.0, 1.0, 0.3),
            &rotation,
            Vector3::new(0.0, 1.0, 5.0),
        );
        // With the corners present the hull is exactly the 8 corners, whose covariance is diagonal in the box
        // axes: PCA recovers the box exactly.
        let mut points = points;
        for i in 0..8 {
            let sign = Vector3::new(
                if i & 1 == 0 { -0.5 } else { 0.5 },
                if i & 2 == 0 { -0.5 } else { 0.5 },
                if i & 4 == 0 { -0.5 } else { 0.5 },
            );
            points.push(Point3::from(
                Vector3::new(0.0, 1.0, 5.0)
                    + rotation * Vector3::new(2.0, 1.0, 0.3).component_mul(&sign),
            ));
        }
        let obb = Obb::from_points_pca(&points).unwrap();
        assert!(
            (obb.extent() - Vector3::new(2.0, 1.0, 0.3)).amax() < 1e-9,
            "{}",
            obb.extent()
        );
        assert!((obb.center - Point3::new(0.0, 1.0, 5.0)).norm() < 1e-9);
        for p in &points {
            let local = obb.rotation.inverse() * (p - obb.center);
            assert!(
                local
                    .iter()
                    .zip(obb.half_extents.iter())
                    .all(|(l, h)| l.abs() <= h + 1e-9)
            );
        }
        let long_axis = obb.rotation.matrix().column(0).into_owned();
        assert!(long_axis.dot(&(rotation * Vector3::x())).abs() > 1.0 - 1e-9);
        assert!(
            obb.corners()
                .iter()
                .all(|c| (c - obb.center).norm() <= obb.half_extents.norm() + 1e-9)
        );
    }

    #[test]
    fn degenerate_inputs() {
        assert!(Aabb::from_points(&[]).is_none());
        assert!(Obb::from_points_pca(&[]).is_none());
        assert!(Obb::from_points_upright(&[], &Vector3::z()).is_none());
        let single = [Point3::new(1.0, 2.0, 3.0)];
        let obb = Obb::from_points_upright(&single, &Vector3::z()).unwrap();
        assert_eq!(obb.half_extents, Vector3::zeros());
        assert!(Obb::from_points_upright(&single, &Vector3::zeros()).is_none());
        // A flat square: no 3D hull, PCA over all points still gives its sides.
        let flat: Vec<Point3<f64>> = (0..100)
            .map(|i| Point3::new((i % 10) as f64, (i / 10) as f64 * 0.5, 0.0))
            .collect();
        let obb = Obb::from_points_pca(&flat).unwrap();
        assert!(
            (obb.extent() - Vector3::new(9.0, 4.5, 0.0)).norm() < 1e-9,
            "{}",
            obb.extent()
        );
        let aabb = Aabb::from_points(&flat).unwrap();
        assert_eq!(aabb.extent(), Vector3::new(9.0, 4.5, 0.0));
        assert_eq!(aabb.center(), Point3::new(4.5, 2.25, 0.0));
    }
}
