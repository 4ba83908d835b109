use nalgebra::{Point3, Vector2, Vector3};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What an object is. Composite shapes (furniture, the gripper) are unions of axis-aligned convex parts in the
/// object's local frame (x along width, y along depth, z up, origin at the bounding-box centre).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Cube,
    Box,
    Sphere,
    Cylinder,
    Cone,
    Table,
    Chair,
    Shelf,
    Cabinet,
    Gripper,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Cube => "cube",
            Shape::Box => "box",
            Shape::Sphere => "sphere",
            Shape::Cylinder => "cylinder",
            Shape::Cone => "cone",
            Shape::Table => "table",
            Shape::Chair => "chair",
            Shape::Shelf => "shelf",
            Shape::Cabinet => "cabinet",
            Shape::Gripper => "gripper",
        }
    }

    pub fn is_furniture(self) -> bool {
        matches!(
            self,
            Shape::Table | Shape::Chair | Shape::Shelf | Shape::Cabinet
        )
    }

    /// Whether other objects may rest on its top (a flat top at full height).
    pub fn is_support(self) -> bool {
        matches!(self, Shape::Table | Shape::Cabinet)
    }

    /// The convex parts of a shape with the given extents `[w, d, h]`, in the local frame.
    pub fn parts(self, extents: [f64; 3]) -> Vec<Part> {
        let [w, d, h] = extents;
        let box_part = |half: [f64; 3], offset: [f64; 3]| Part {
            primitive: Primitive::Box { half },
            offset: Vector3::from(offset),
        };
        match self {
            Shape::Cube | Shape::Box | Shape::Cabinet => {
                vec![box_part([w / 2.0, d / 2.0, h / 2.0], [0.0; 3])]
            }
            Shape::Sphere => vec![Part {
                primitive: Primitive::Sphere { radius: h / 2.0 },
                offset: Vector3::zeros(),
            }],
            Shape::Cylinder => vec![Part {
                primitive: Primitive::Cylinder {
                    radius: w / 2.0,
                    half_height: h / 2.0,
                },
                offset: Vector3::zeros(),
            }],
            Shape::Cone => vec![Part {
                primitive: Primitive::Cone {
                    radius: w / 2.0,
                    height: h,
                },
                offset: Vector3::zeros(),
            }],
            Shape::Table => {
                let top = table_top_thickness(h);
                let leg = table_leg_side(w, d);
                let leg_height = h - top;
                let mut parts = vec![box_part(
                    [w / 2.0, d / 2.0, top / 2.0],
                    [0.0, 0.0, h / 2.0 - top / 2.0],
                )];
                for (sx, sy) in [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
                    parts.push(box_part(
                        [leg / 2.0, leg / 2.0, leg_height / 2.0],
                        [
                            sx * (w / 2.0 - leg / 2.0),
                            sy * (d / 2.0 - leg / 2.0),
                            -h / 2.0 + leg_height / 2.0,
                        ],
                    ));
                }
                parts
            }
            Shape::Chair => {
                let seat_top = 0.5 * h;
                let seat = 0.04_f64.min(0.1 * h);
                let back = 0.04_f64.min(0.15 * d);
                let leg = table_leg_side(w, d).min(0.04);
                let leg_height = seat_top - seat;
                let mut parts = vec![
                    // Seat in front of the backrest, backrest at +y from the floor to the full height.
                    box_part(
                        [w / 2.0, (d - back) / 2.0, seat / 2.0],
                        [0.0, -back / 2.0, -h / 2.0 + seat_top - seat / 2.0],
                    ),
                    box_part(
                        [w / 2.0, back / 2.0, h / 2.0],
                        [0.0, d / 2.0 - back / 2.0, 0.0],
                    ),
                ];
                for sx in [-1.0, 1.0] {
                    parts.push(box_part(
                        [leg / 2.0, leg / 2.0, leg_height / 2.0],
                        [
                            sx * (w / 2.0 - leg / 2.0),
                            -d / 2.0 + leg / 2.0,
                            -h / 2.0 + leg_height / 2.0,
                        ],
                    ));
                }
                parts
            }
            Shape::Shelf => {
                let t = 0.02_f64.min(0.1 * w.min(d));
                let inner_w = w - 2.0 * t;
                let mut parts = vec![
                    box_part(
                        [t / 2.0, d / 2.0, h / 2.0],
                        [-(w / 2.0 - t / 2.0), 0.0, 0.0],
                    ),
                    box_part([t / 2.0, d / 2.0, h / 2.0], [w / 2.0 - t / 2.0, 0.0, 0.0]),
                    box_part(
                        [inner_w / 2.0, d / 2.0, t / 2.0],
                        [0.0, 0.0, h / 2.0 - t / 2.0],
                    ),
                    box_part(
                        [inner_w / 2.0, d / 2.0, t / 2.0],
                        [0.0, 0.0, -h / 2.0 + t / 2.0],
                    ),
                    box_part(
                        [inner_w / 2.0, t / 2.0, (h - 2.0 * t) / 2.0],
                        [0.0, d / 2.0 - t / 2.0, 0.0],
                    ),
                ];
                // Open front at -y; intermediate boards every ~0.35 m.
                let boards = ((h / 0.35).floor() as usize).saturating_sub(1);
                for i in 1..=boards {
                    let z = -h / 2.0 + h * i as f64 / (boards + 1) as f64;
                    parts.push(box_part(
                        [inner_w / 2.0, (d - t) / 2.0, t / 2.0],
                        [0.0, -t / 2.0, z],
                    ));
                }
                parts
            }
            Shape::Gripper => {
                // Palm at -x, two fingers pointing along +x (towards what it approaches).
                let palm = 0.4 * w;
                let finger_w = 0.22 * d;
                let finger_h = 0.6 * h;
                let finger_len = w - palm;
                let mut parts = vec![box_part(
                    [palm / 2.0, d / 2.0, h / 2.0],
                    [-w / 2.0 + palm / 2.0, 0.0, 0.0],
                )];
                for sy in [-1.0, 1.0] {
                    parts.push(box_part(
                        [finger_len / 2.0, finger_w / 2.0, finger_h / 2.0],
                        [
                            w / 2.0 - finger_len / 2.0,
                            sy * (d / 2.0 - finger_w / 2.0),
                            0.0,
                        ],
                    ));
                }
                parts
            }
        }
    }
}

pub(crate) fn table_top_thickness(h: f64) -> f64 {
    0.04_f64.min(0.1 * h)
}

fn table_leg_side(w: f64, d: f64) -> f64 {
    0.05_f64.min(0.1 * w.min(d))
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A convex solid, upright, centred at its own origin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Primitive {
    Box {
        half: [f64; 3],
    },
    Sphere {
        radius: f64,
    },
    /// Axis along z, from `-half_height` to `+half_height`.
    Cylinder {
        radius: f64,
        half_height: f64,
    },
    /// Base disc at `z = -height / 2`, apex at `z = +height / 2`.
    Cone {
        radius: f64,
        height: f64,
    },
}

/// A primitive placed at `offset` in the object's local frame (no rotation relative to the object).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub primitive: Primitive,
    pub offset: Vector3<f64>,
}

impl Primitive {
    /// Exact signed distance from a point in the primitive's frame (negative inside).
    pub fn signed_distance(&self, p: &Vector3<f64>) -> f64 {
        match *self {
            Primitive::Box { half } => {
                let q = Vector3::new(
                    p.x.abs() - half[0],
                    p.y.abs() - half[1],
                    p.z.abs() - half[2],
                );
                let outside = Vector3::new(q.x.max(0.0), q.y.max(0.0), q.z.max(0.0)).norm();
                outside + q.x.max(q.y).max(q.z).min(0.0)
            }
            Primitive::Sphere { radius } => p.norm() - radius,
            Primitive::Cylinder {
                radius,
                half_height,
            } => {
                let q = Vector2::new(p.xy().norm() - radius, p.z.abs() - half_height);
                Vector2::new(q.x.max(0.0), q.y.max(0.0)).norm() + q.x.max(q.y).min(0.0)
            }
            Primitive::Cone { radius, height } => {
                // The solid of revolution of the triangle (0,-h/2) (r,-h/2) (0,h/2) in (radial, z); the axis edge
                // is interior, so only the base and slant edges bound it.
                let q = Vector2::new(p.xy().norm(), p.z);
                let base_a = Vector2::new(0.0, -height / 2.0);
                let rim = Vector2::new(radius, -height / 2.0);
                let apex = Vector2::new(0.0, height / 2.0);
                let d_base = segment_distance(&q, &base_a, &rim);
                let d_slant = segment_distance(&q, &rim, &apex);
                let below_apex_line = (q.x / radius + (q.y + height / 2.0) / height) <= 1.0;
                let inside = q.y >= -height / 2.0 && below_apex_line;
                if inside {
                    -d_base.min(d_slant)
                } else {
                    d_base.min(d_slant)
                }
            }
        }
    }

    /// The point of the solid farthest along `dir` (GJK support mapping), in the primitive's frame.
    pub fn support(&self, dir: &Vector3<f64>) -> Vector3<f64> {
        let sign = |x: f64| if x >= 0.0 { 1.0 } else { -1.0 };
        match *self {
            Primitive::Box { half } => Vector3::new(
                sign(dir.x) * half[0],
                sign(dir.y) * half[1],
                sign(dir.z) * half[2],
            ),
            Primitive::Sphere { radius } => {
                let n = dir.norm();
                if n > 0.0 {
                    dir * (radius / n)
                } else {
                    Vector3::new(0.0, 0.0, radius)
                }
            }
            Primitive::Cylinder {
                radius,
                half_height,
            } => {
                let rim = radial(dir, radius);
                Vector3::new(rim.x, rim.y, sign(dir.z) * half_height)
            }
            Primitive::Cone { radius, height } => {
                let apex = Vector3::new(0.0, 0.0, height / 2.0);
                let rim_xy = radial(dir, radius);
                let rim = Vector3::new(rim_xy.x, rim_xy.y, -height / 2.0);
                if apex.dot(dir) >= rim.dot(dir) {
                    apex
                } else {
                    rim
                }
            }
        }
    }

    /// Half sizes of the axis-aligned box around the primitive (rotation about z keeps round shapes' boxes).
    pub fn half_extents(&self) -> Vector3<f64> {
        match *self {
            Primitive::Box { half } => Vector3::from(half),
            Primitive::Sphere { radius } => Vector3::repeat(radius),
            Primitive::Cylinder {
                radius,
                half_height,
            } => Vector3::new(radius, radius, half_height),
            Primitive::Cone { radius, height } => Vector3::new(radius, radius, height / 2.0),
        }
    }

    pub fn is_round(&self) -> bool {
        !matches!(self, Primitive::Box { .. })
    }

    pub fn surface_area(&self) -> f64 {
        use std::f64::consts::PI;
        match *self {
            Primitive::Box { half: [a, b, c] } => 8.0 * (a * b + b * c + a * c),
            Primitive::Sphere { radius } => 4.0 * PI * radius * radius,
            Primitive::Cylinder {
                radius,
                half_height,
            } => 2.0 * PI * radius * 2.0 * half_height + 2.0 * PI * radius * radius,
            Primitive::Cone { radius, height } => {
                PI * radius * (radius * radius + height * height).sqrt() + PI * radius * radius
            }
        }
    }

    /// A point drawn uniformly (by area) on the primitive's surface.
    pub fn sample_surface<R: Rng + ?Sized>(&self, rng: &mut R) -> Vector3<f64> {
        use std::f64::consts::TAU;
        let mut u = || rng.random::<f64>();
        match *self {
            Primitive::Box { half: [a, b, c] } => {
                let areas = [b * c, b * c, a * c, a * c, a * b, a * b];
                let total: f64 = areas.iter().sum();
                let mut pick = u() * total;
                let mut face = 5;
                for (i, area) in areas.iter().enumerate() {
                    if pick < *area {
                        face = i;
                        break;
                    }
                    pick -= area;
                }
                let (s, t) = (2.0 * u() - 1.0, 2.0 * u() - 1.0);
                match face {
                    0 => Vector3::new(-a, s * b, t * c),
                    1 => Vector3::new(a, s * b, t * c),
                    2 => Vector3::new(s * a, -b, t * c),
                    3 => Vector3::new(s * a, b, t * c),
                    4 => Vector3::new(s * a, t * b, -c),
                    _ => Vector3::new(s * a, t * b, c),
                }
            }
            Primitive::Sphere { radius } => {
                let z = 2.0 * u() - 1.0;
                let phi = TAU * u();
                let r = (1.0 - z * z).max(0.0).sqrt();
                Vector3::new(r * phi.cos(), r * phi.sin(), z) * radius
            }
            Primitive::Cylinder {
                radius,
                half_height,
            } => {
                let side = 2.0 * radius * 2.0 * half_height;
                let caps = 2.0 * radius * radius;
                let phi = TAU * u();
                if u() * (side + caps) < side {
                    Vector3::new(
                        radius * phi.cos(),
                        radius * phi.sin(),
                        (2.0 * u() - 1.0) * half_height,
                    )
                } else {
                    let r = radius * u().sqrt();
                    let z = if u() < 0.5 { -half_height } else { half_height };
                    Vector3::new(r * phi.cos(), r * phi.sin(), z)
                }
            }
            Primitive::Cone { radius, height } => {
                let lateral = radius * (radius * radius + height * height).sqrt();
                let base = radius * radius;
                let phi = TAU * u();
                if u() * (lateral + base) < lateral {
                    // Lateral area grows linearly with distance from the apex: fraction = sqrt(uniform).
                    let t = u().sqrt();
                    Vector3::new(
                        t * radius * phi.cos(),
                        t * radius * phi.sin(),
                        height / 2.0 - t * height,
                    )
                } else {
                    let r = radius * u().sqrt();
                    Vector3::new(r * phi.cos(), r * phi.sin(), -height / 2.0)
                }
            }
        }
    }
}

fn radial(dir: &Vector3<f64>, radius: f64) -> Vector2<f64> {
    let n = dir.xy().norm();
    if n > 1e-300 {
        dir.xy() * (radius / n)
    } else {
        Vector2::new(radius, 0.0)
    }
}

fn segment_distance(p: &Vector2<f64>, a: &Vector2<f64>, b: &Vector2<f64>) -> f64 {
    let ab = b - a;
    let t = ((p - a).dot(&ab) / ab.norm_squared()).clamp(0.0, 1.0);
    (p - (a + ab * t)).norm()
}

impl Part {
    pub fn signed_distance_local(&self, p: &Point3<f64>) -> f64 {
        self.primitive.signed_distance(&(p.coords - self.offset))
    }
}
