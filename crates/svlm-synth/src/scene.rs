//! The scene graph every template reads: named objects with boxes, centres and points, all in the canonical
//! (gravity) frame of `docs/ARCHITECTURE.md` — Z up from the ground plane, X to the viewer's right, Y away from
//! the viewer, the camera centre at `camera`.
//!
//! "Centre" is the centre of the object's bounding box: the world's exact box centre for exact objects, the
//! centre of the canonical axis-aligned box of the cleaned points for estimated ones.

use std::collections::BTreeMap;

use nalgebra::{Point3, Vector3};
use serde::{Deserialize, Serialize};

/// Where an answer's 3D came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthSource {
    /// The procedural world's exact geometry.
    Exact,
    /// Lifted from a depth map and masks (point clouds, RANSAC ground plane).
    Estimated,
}

impl TruthSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            TruthSource::Exact => "exact",
            TruthSource::Estimated => "estimated",
        }
    }
}

impl std::str::FromStr for TruthSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(TruthSource::Exact),
            "estimated" => Ok(TruthSource::Estimated),
            other => Err(format!(
                "truth source {other:?} must be `exact` or `estimated`"
            )),
        }
    }
}

/// Axis-aligned box in the canonical frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Box3 {
    pub min: Point3<f64>,
    pub max: Point3<f64>,
}

impl Box3 {
    pub fn from_points(points: &[Point3<f64>]) -> Option<Box3> {
        let first = points.first()?;
        let mut b = Box3 {
            min: *first,
            max: *first,
        };
        for p in points {
            b.min = b.min.inf(p);
            b.max = b.max.sup(p);
        }
        Some(b)
    }

    pub fn center(&self) -> Point3<f64> {
        nalgebra::center(&self.min, &self.max)
    }

    pub fn extents(&self) -> Vector3<f64> {
        self.max - self.min
    }
}

/// An upright oriented box: rotated about Z only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UprightBox {
    pub center: Point3<f64>,
    /// Rotation about Z, radians.
    pub yaw: f64,
    /// Full extents along the box's own x, y and Z.
    pub extents: Vector3<f64>,
}

/// One object of the scene graph.
#[derive(Debug, Clone)]
pub struct SceneObject {
    /// The name used in questions ("red cube", or "left red cube" after disambiguation).
    pub name: String,
    /// The name the source gave ("red cube").
    pub base_name: String,
    /// Instance id in the source's mask.
    pub instance_id: u32,
    /// Downsampled points in the canonical frame (may be empty for exact objects built without depth).
    pub points: Vec<Point3<f64>>,
    /// Bounding-box centre used for every position question.
    pub center: Point3<f64>,
    pub aabb: Box3,
    pub obb: UprightBox,
    /// Height of the surface the object rests on (0 = the ground plane).
    pub support_height: f64,
    pub visible_pixels: usize,
    pub source: TruthSource,
}

impl SceneObject {
    pub fn center(&self) -> Point3<f64> {
        self.center
    }
    /// Left-right size as seen by the viewer (canonical X extent).
    pub fn width(&self) -> f64 {
        self.aabb.max.x - self.aabb.min.x
    }
    /// Front-back size (canonical Y extent).
    pub fn depth(&self) -> f64 {
        self.aabb.max.y - self.aabb.min.y
    }
    pub fn height(&self) -> f64 {
        self.aabb.max.z - self.aabb.min.z
    }
    pub fn top(&self) -> f64 {
        self.aabb.max.z
    }
    pub fn bottom(&self) -> f64 {
        self.aabb.min.z
    }
    /// Volume of the upright box, for "bigger/smaller".
    pub fn volume(&self) -> f64 {
        self.obb.extents.x * self.obb.extents.y * self.obb.extents.z
    }
}

/// Counts of skipped things by reason (objects, candidate questions, frames).
pub type SkipCounts = BTreeMap<String, u64>;

pub fn count_skip(skips: &mut SkipCounts, reason: &str) {
    *skips.entry(reason.to_string()).or_insert(0) += 1;
}

/// Objects in the canonical frame plus pairwise closest-surface gaps.
#[derive(Debug, Clone)]
pub struct SceneGraph {
    pub objects: Vec<SceneObject>,
    /// Camera centre in the canonical frame.
    pub camera: Point3<f64>,
    /// Whether the ground plane was found (always true for the procedural world).
    pub plane_found: bool,
    pub source: TruthSource,
    /// Row-major `n x n` closest-surface distances, metres (0 on the diagonal).
    pub gaps: Vec<f64>,
    /// Objects left out of the graph and why.
    pub skips: SkipCounts,
}

impl SceneGraph {
    pub fn gap(&self, a: usize, b: usize) -> f64 {
        self.gaps[a * self.objects.len() + b]
    }

    /// Gives objects that share a name a spatial qualifier when it is unique ("left red cube" / "right red
    /// cube", or "front"/"back"); drops the whole group, counted as `ambiguous_name`, when no qualifier separates
    /// them. Two objects separate when their centres differ by more than half their mean size along that axis.
    pub fn disambiguate_names(&mut self) {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, o) in self.objects.iter().enumerate() {
            groups.entry(o.base_name.clone()).or_default().push(i);
        }
        let mut drop = vec![false; self.objects.len()];
        for (base, members) in groups {
            if members.len() == 1 {
                continue;
            }
            if members.len() == 2 {
                let (a, b) = (&self.objects[members[0]], &self.objects[members[1]]);
                let dx = b.center().x - a.center().x;
                let dy = b.center().y - a.center().y;
                let mx = 0.5 * 0.5 * (a.width() + b.width());
                let my = 0.5 * 0.5 * (a.depth() + b.depth());
                let names = if dx.abs() > mx {
                    Some(if dx > 0.0 {
                        ("left", "right")
                    } else {
                        ("right", "left")
                    })
                } else if dy.abs() > my {
                    Some(if dy > 0.0 {
                        ("front", "back")
                    } else {
                        ("back", "front")
                    })
                } else {
                    None
                };
                if let Some((qa, qb)) = names {
                    self.objects[members[0]].name = format!("{qa} {base}");
                    self.objects[members[1]].name = format!("{qb} {base}");
                    continue;
                }
            }
            for &m in &members {
                drop[m] = true;
            }
        }
        if drop.iter().any(|&d| d) {
            let n = self.objects.len();
            let keep: Vec<usize> = (0..n).filter(|&i| !drop[i]).collect();
            for _ in 0..(n - keep.len()) {
                count_skip(&mut self.skips, "ambiguous_name");
            }
            let mut gaps = Vec::with_capacity(keep.len() * keep.len());
            for &i in &keep {
                for &j in &keep {
                    gaps.push(self.gaps[i * n + j]);
                }
            }
            let mut objects = Vec::with_capacity(keep.len());
            for (i, o) in std::mem::take(&mut self.objects).into_iter().enumerate() {
                if !drop[i] {
                    objects.push(o);
                }
            }
            self.objects = objects;
            self.gaps = gaps;
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// An axis-aligned box object (yaw 0) with centre `c` and extents `e`.
    pub fn boxed(name: &str, c: [f64; 3], e: [f64; 3]) -> SceneObject {
        let center = Point3::new(c[0], c[1], c[2]);
        let half = Vector3::new(e[0], e[1], e[2]) / 2.0;
        SceneObject {
            name: name.to_string(),
            base_name: name.to_string(),
            instance_id: 0,
            points: Vec::new(),
            center,
            aabb: Box3 {
                min: center - half,
                max: center + half,
            },
            obb: UprightBox {
                center,
                yaw: 0.0,
                extents: Vector3::new(e[0], e[1], e[2]),
            },
            support_height: (c[2] - e[2] / 2.0).max(0.0),
            visible_pixels: 1000,
            source: TruthSource::Exact,
        }
    }

    /// A graph with box-to-box gaps computed exactly for axis-aligned boxes.
    pub fn graph(objects: Vec<SceneObject>, camera: [f64; 3]) -> SceneGraph {
        let n = objects.len();
        let mut gaps = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let (a, b) = (&objects[i].aabb, &objects[j].aabb);
                    let d = Vector3::new(
                        (a.min.x - b.max.x).max(b.min.x - a.max.x).max(0.0),
                        (a.min.y - b.max.y).max(b.min.y - a.max.y).max(0.0),
                        (a.min.z - b.max.z).max(b.min.z - a.max.z).max(0.0),
                    );
                    gaps[i * n + j] = d.norm();
                }
            }
        }
        SceneGraph {
            objects,
            camera: Point3::new(camera[0], camera[1], camera[2]),
            plane_found: true,
            source: TruthSource::Exact,
            gaps,
            skips: SkipCounts::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;

    #[test]
    fn same_names_get_left_right_or_are_dropped() {
        let mut g = graph(
            vec![
                boxed("red cube", [1.0, 3.0, 0.1], [0.2, 0.2, 0.2]),
                boxed("red cube", [-1.0, 3.0, 0.1], [0.2, 0.2, 0.2]),
                boxed("blue ball", [0.0, 2.0, 0.1], [0.2, 0.2, 0.2]),
                boxed("green cone", [0.0, 4.0, 0.1], [0.2, 0.2, 0.2]),
                boxed("green cone", [0.05, 4.02, 0.1], [0.2, 0.2, 0.2]),
            ],
            [0.0, 0.0, 1.5],
        );
        g.disambiguate_names();
        let names: Vec<&str> = g.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["right red cube", "left red cube", "blue ball"]);
        assert_eq!(g.skips.get("ambiguous_name"), Some(&2));
        assert_eq!(g.gaps.len(), 9);
        assert!((g.gap(0, 2) - g.gap(2, 0)).abs() < 1e-12 && g.gap(0, 2) > 0.5);
    }
}
