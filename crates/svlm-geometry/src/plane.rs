use nalgebra::{Matrix3, Point3, SymmetricEigen, Unit, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::cloud::{PointCloud, centroid};
use crate::kdtree::PARALLEL_MIN_POINTS;
use crate::simd::vectorized;

/// Plane `normal . p + d = 0`, `normal` unit length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane {
    pub normal: Unit<Vector3<f64>>,
    pub d: f64,
}

impl Plane {
    /// Signed distance (positive on the side the normal points to).
    pub fn signed_distance(&self, p: &Point3<f64>) -> f64 {
        self.normal.dot(&p.coords) + self.d
    }

    /// The same plane with the normal flipped.
    pub fn flipped(&self) -> Plane {
        Plane {
            normal: -self.normal,
            d: -self.d,
        }
    }

    /// Angle between the two planes' normals in degrees, ignoring orientation (0..=90).
    pub fn angle_deg(&self, other: &Plane) -> f64 {
        self.normal
            .dot(&other.normal)
            .abs()
            .min(1.0)
            .acos()
            .to_degrees()
    }
}

/// Settings of [`find_ground_plane`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundPlaneParams {
    /// RANSAC inlier distance, metres.
    pub distance_threshold: f64,
    pub iterations: usize,
    /// Largest angle between the plane normal and the camera's up (-y) that still counts as ground.
    pub max_tilt_deg: f64,
    /// Smallest share of the cloud a ground plane must hold.
    pub min_inlier_fraction: f64,
    /// How many planes to peel off (largest first) looking for one that faces up.
    pub max_planes: usize,
    pub seed: u64,
}

impl Default for GroundPlaneParams {
    fn default() -> Self {
        Self {
            distance_threshold: 0.02,
            iterations: 200,
            max_tilt_deg: 45.0,
            min_inlier_fraction: 0.05,
            max_planes: 3,
            seed: 0,
        }
    }
}

/// open3d `segment_plane`: RANSAC over `ransac_n`-point samples (`ransac_n >= 3`), the best sample plane by
/// inlier count then inlier RMSE, inliers = points strictly closer than `distance_threshold` to it, and the
/// returned plane refit by least squares on those inliers. Iterations stop early as in open3d (probability
/// 0.99999999 of having seen an all-inlier sample). Deterministic for a given `seed`, with or without threads.
/// `None` when there are fewer than `ransac_n` points or no sample spans a plane.
pub fn segment_plane(
    points: &[Point3<f64>],
    distance_threshold: f64,
    ransac_n: usize,
    iterations: usize,
    seed: u64,
) -> Option<(Plane, Vec<usize>)> {
    segment_plane_with_probability(
        points,
        distance_threshold,
        ransac_n,
        iterations,
        0.999_999_99,
        seed,
    )
}

/// [`segment_plane`] with open3d's `probability` (early stop once
/// `log(1 - probability) / log(1 - fitness^ransac_n)` iterations have run).
pub fn segment_plane_with_probability(
    points: &[Point3<f64>],
    distance_threshold: f64,
    ransac_n: usize,
    iterations: usize,
    probability: f64,
    seed: u64,
) -> Option<(Plane, Vec<usize>)> {
    let n = points.len();
    let ransac_n = ransac_n.max(3);
    if n < ransac_n || iterations == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let samples: Vec<Vec<usize>> = (0..iterations)
        .map(|_| sample_distinct(&mut rng, n, ransac_n))
        .collect();
    // A sample with fewer inliers than the best so far cannot win whatever its error: only its (vectorized)
    // inlier count is taken, not the order-fixed error sum. `beat` is the best count when the batch started
    // (the best count only grows), so every sample that can win is scored in full, exactly as before.
    let evaluate = |sample: &Vec<usize>, beat: Option<usize>| -> Option<(Plane, usize, f64)> {
        let plane = if ransac_n == 3 {
            plane_through(&points[sample[0]], &points[sample[1]], &points[sample[2]])?
        } else {
            let chosen: Vec<Point3<f64>> = sample.iter().map(|&i| points[i]).collect();
            fit_plane_least_squares(&chosen)?
        };
        if let Some(beat) = beat {
            let count = count_inliers(points, &plane, distance_threshold);
            if count < beat {
                return Some((plane, count, f64::NAN));
            }
        }
        let (count, sse) = score_plane(points, &plane, distance_threshold);
        Some((plane, count, sse))
    };
    // Samples run in chunks; the early-stop test happens between chunks, so the result does not depend on
    // thread timing. One sample per chunk on small clouds reproduces open3d's sequential behaviour exactly.
    let chunk = if n >= PARALLEL_MIN_POINTS {
        rayon::current_num_threads().max(1) * 2
    } else {
        1
    };
    let mut best: Option<(Plane, usize, f64)> = None;
    let mut break_iteration = f64::INFINITY;
    let mut done = 0usize;
    for batch in samples.chunks(chunk) {
        if done as f64 > break_iteration {
            break;
        }
        let beat = best.as_ref().map(|(_, count, _)| *count);
        let results: Vec<Option<(Plane, usize, f64)>> = if chunk > 1 {
            batch.par_iter().map(|s| evaluate(s, beat)).collect()
        } else {
            batch.iter().map(|s| evaluate(s, beat)).collect()
        };
        for (plane, count, sse) in results.into_iter().flatten() {
            let rmse = if count > 0 {
                (sse / count as f64).sqrt()
            } else {
                0.0
            };
            let better = match &best {
                None => count > 0,
                Some((_, best_count, best_sse)) => {
                    let best_rmse = if *best_count > 0 {
                        (best_sse / *best_count as f64).sqrt()
                    } else {
                        0.0
                    };
                    count > *best_count || (count == *best_count && rmse < best_rmse)
                }
            };
            if better {
                best = Some((plane, count, sse));
                let fitness = count as f64 / n as f64;
                break_iteration = if fitness < 1.0 {
                    ((1.0 - probability).ln() / (1.0 - fitness.powi(ransac_n as i32)).ln())
                        .min(iterations as f64)
                } else {
                    0.0
                };
            }
        }
        done += batch.len();
    }
    let (sample_plane, _, _) = best?;
    let inliers: Vec<usize> = (0..n)
        .filter(|&i| sample_plane.signed_distance(&points[i]).abs() < distance_threshold)
        .collect();
    let inlier_points: Vec<Point3<f64>> = inliers.iter().map(|&i| points[i]).collect();
    let refined = fit_plane_least_squares(&inlier_points).unwrap_or(sample_plane);
    Some((refined, inliers))
}

fn sample_distinct(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<usize> {
    let mut chosen = Vec::with_capacity(k);
    while chosen.len() < k {
        let i = rng.random_range(0..n);
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
}

fn plane_through(a: &Point3<f64>, b: &Point3<f64>, c: &Point3<f64>) -> Option<Plane> {
    let normal = (b - a).cross(&(c - a));
    let length = normal.norm();
    if !(length > 0.0 && length.is_finite()) {
        return None;
    }
    let normal = Unit::new_unchecked(normal / length);
    Some(Plane {
        normal,
        d: -normal.dot(&a.coords),
    })
}

/// The inlier count of [`score_plane`] (the same distances), in a loop at the CPU's vector width.
fn count_inliers(points: &[Point3<f64>], plane: &Plane, threshold: f64) -> usize {
    let (nx, ny, nz, d) = (plane.normal.x, plane.normal.y, plane.normal.z, plane.d);
    vectorized(
        #[inline(always)]
        || {
            // A wrapping add (at most n): an overflow-checked one keeps the loop scalar in the dev profile.
            let mut count = 0usize;
            for p in points {
                let dist = (nx * p.x + ny * p.y + nz * p.z + d).abs();
                count = count.wrapping_add(usize::from(dist < threshold));
            }
            count
        },
    )
}

/// Inlier count and sum of squared inlier distances (strict `<`, as open3d).
fn score_plane(points: &[Point3<f64>], plane: &Plane, threshold: f64) -> (usize, f64) {
    let (nx, ny, nz, d) = (plane.normal.x, plane.normal.y, plane.normal.z, plane.d);
    let mut count = 0usize;
    let mut sse = 0.0;
    for p in points {
        let dist = (nx * p.x + ny * p.y + nz * p.z + d).abs();
        if dist < threshold {
            count += 1;
            sse += dist * dist;
        }
    }
    (count, sse)
}

/// Least-squares plane (smallest-eigenvalue direction of the covariance); `None` for < 3 points or a
/// degenerate (collinear) set.
pub fn fit_plane_least_squares(points: &[Point3<f64>]) -> Option<Plane> {
    if points.len() < 3 {
        return None;
    }
    let (mean, cov) = mean_and_covariance(points)?;
    let eigen = SymmetricEigen::new(cov);
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| eigen.eigenvalues[a].total_cmp(&eigen.eigenvalues[b]));
    // Collinear or coincident points: the two largest spreads are not both positive.
    if eigen.eigenvalues[order[1]]
        <= f64::EPSILON * eigen.eigenvalues[order[2]].abs().max(f64::MIN_POSITIVE)
    {
        return None;
    }
    let normal = Unit::try_new(eigen.eigenvectors.column(order[0]).into_owned(), 1e-12)?;
    Some(Plane {
        normal,
        d: -normal.dot(&mean.coords),
    })
}

/// Mean and (biased, 1/n) covariance, as open3d's `ComputeMeanAndCovariance`; `None` when empty or non-finite.
pub(crate) fn mean_and_covariance(points: &[Point3<f64>]) -> Option<(Point3<f64>, Matrix3<f64>)> {
    let mean = centroid(points)?;
    let mut cov = Matrix3::zeros();
    for p in points {
        let r = p - mean;
        cov += r * r.transpose();
    }
    cov /= points.len() as f64;
    cov.iter().all(|c| c.is_finite()).then_some((mean, cov))
}

/// The ground: the largest RANSAC plane whose normal lies within `max_tilt_deg` of the camera's up (-y) and
/// that lies below the camera, holding at least `min_inlier_fraction` of the cloud. Planes are peeled off
/// largest first (at most `max_planes`) until one qualifies. The returned normal points up (towards the
/// camera side), so `d > 0` is the camera height above the plane.
pub fn find_ground_plane(cloud: &PointCloud, params: &GroundPlaneParams) -> Option<Plane> {
    let total = cloud.points.len();
    let min_inliers = ((params.min_inlier_fraction * total as f64).ceil() as usize).max(3);
    let camera_up = Vector3::new(0.0, -1.0, 0.0);
    let cos_max_tilt = params.max_tilt_deg.to_radians().cos();
    let mut remaining: Vec<Point3<f64>> = cloud.points.clone();
    for round in 0..params.max_planes.max(1) {
        let seed = params.seed.wrapping_add(round as u64);
        let (plane, inliers) = segment_plane(
            &remaining,
            params.distance_threshold,
            3,
            params.iterations,
            seed,
        )?;
        if inliers.len() < min_inliers {
            return None;
        }
        let plane = if plane.normal.dot(&camera_up) < 0.0 {
            plane.flipped()
        } else {
            plane
        };
        if plane.normal.dot(&camera_up) >= cos_max_tilt && plane.d > 0.0 {
            return Some(plane);
        }
        let mut is_inlier = vec![false; remaining.len()];
        for &i in &inliers {
            is_inlier[i] = true;
        }
        let mut keep = is_inlier.iter().map(|&inlier| !inlier);
        remaining.retain(|_| keep.next().unwrap_or(true));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Points on `n . p + d = 0` (n normalised inside), with uniform noise of `noise` along n.
    fn plane_points(
        rng: &mut ChaCha8Rng,
        n: Vector3<f64>,
        d: f64,
        count: usize,
        noise: f64,
    ) -> Vec<Point3<f64>> {
        let n = n.normalize();
        let a = n.cross(&Vector3::new(0.3, 0.5, 0.7)).normalize();
        let b = n.cross(&a);
        (0..count)
            .map(|_| {
                let s: f64 = rng.random_range(-2.0..2.0);
                let t: f64 = rng.random_range(-2.0..2.0);
                let e: f64 = if noise > 0.0 {
                    rng.random_range(-noise..noise)
                } else {
                    0.0
                };
                Point3::from(-n * d + a * s + b * t + n * e)
            })
            .collect()
    }

    #[test]
    fn vectorized_inlier_count_is_the_scores_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        // Points snapped to a grid on and around z = 0.5: many distances exactly at the threshold 0.25.
        let points: Vec<Point3<f64>> = (0..1003)
            .map(|_| {
                Point3::from(Vector3::from_fn(|_, _| {
                    (rng.random_range(0.0..1.0f64) * 8.0).round() / 8.0
                }))
            })
            .collect();
        for normal in [
            Vector3::new(0.0, 0.0, 1.0),
            Vector3::new(0.3, -0.2, 0.9),
            Vector3::new(1.0, 1.0, 0.0),
        ] {
            let plane = Plane {
                normal: Unit::new_normalize(normal),
                d: -0.5,
            };
            for threshold in [0.0, 0.125, 0.25, 0.3, 2.0] {
                assert_eq!(
                    count_inliers(&points, &plane, threshold),
                    score_plane(&points, &plane, threshold).0
                );
            }
        }
    }

    #[test]
    fn ransac_recovers_a_planted_plane_with_noise_and_outliers() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let normal = Vector3::new(0.1, -1.0, 0.25).normalize();
        let mut points = plane_points(&mut rng, normal, 1.4, 3000, 0.01);
        points.extend(
            (0..1500).map(|_| Point3::from(Vector3::from_fn(|_, _| rng.random_range(-3.0..3.0)))),
        );
        let (plane, inliers) = segment_plane(&points, 0.02, 3, 200, 1).unwrap();
        let truth = Plane {
            normal: Unit::new_normalize(normal),
            d: 1.4,
        };
        assert!(
            plane.angle_deg(&truth) < 0.5,
            "angle {}",
            plane.angle_deg(&truth)
        );
        let aligned = if plane.normal.dot(&truth.normal) < 0.0 {
            plane.flipped()
        } else {
            plane
        };
        assert!((aligned.d - 1.4).abs() < 0.01, "d {}", aligned.d);
        assert!(
            inliers.len() >= 3000 && inliers.len() < 3150,
            "{} inliers",
            inliers.len()
        );
        // The inliers come from the best 3-point sample plane (as open3d), slightly off the truth at the far corners.
        assert!(inliers.iter().filter(|&&i| i < 3000).count() >= 2970);
        // Same seed, same answer.
        assert_eq!(segment_plane(&points, 0.02, 3, 200, 1).unwrap().1, inliers);
        assert!(segment_plane(&points[..2], 0.02, 3, 10, 1).is_none());
    }

    #[test]
    fn least_squares_plane_is_exact_on_planar_points_and_rejects_lines() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let points = plane_points(&mut rng, Vector3::new(1.0, 2.0, 3.0), -0.5, 50, 0.0);
        let plane = fit_plane_least_squares(&points).unwrap();
        assert!(points.iter().all(|p| plane.signed_distance(p).abs() < 1e-9));
        let line: Vec<Point3<f64>> = (0..10)
            .map(|i| Point3::new(i as f64, 2.0 * i as f64, 0.0))
            .collect();
        assert!(fit_plane_least_squares(&line).is_none());
    }

    #[test]
    fn ground_plane_is_the_floor_not_a_bigger_wall() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        // Camera frame: floor 1.5 m below (y = 1.5, normal -y up), a larger wall 3 m ahead (z = 3).
        let mut points = plane_points(&mut rng, Vector3::new(0.0, -1.0, 0.05), 1.5, 2000, 0.005);
        points.extend(plane_points(
            &mut rng,
            Vector3::new(0.0, 0.0, 1.0),
            -3.0,
            4000,
            0.005,
        ));
        let ground = find_ground_plane(
            &PointCloud::new(points.clone()),
            &GroundPlaneParams::default(),
        )
        .unwrap();
        assert!(ground.normal.y < -0.99, "{:?}", ground.normal);
        assert!((ground.d - 1.5).abs() < 0.02, "height {}", ground.d);
        // Only the wall: no ground.
        let wall = PointCloud::new(points[2000..].to_vec());
        assert!(find_ground_plane(&wall, &GroundPlaneParams::default()).is_none());
        // A ceiling (plane above the camera) is not ground either.
        let ceiling = PointCloud::new(plane_points(
            &mut rng,
            Vector3::new(0.0, 1.0, 0.0),
            1.0,
            1000,
            0.0,
        ));
        assert!(ceiling.points.iter().all(|p| (p.y + 1.0).abs() < 1e-9));
        assert!(find_ground_plane(&ceiling, &GroundPlaneParams::default()).is_none());
    }
}
