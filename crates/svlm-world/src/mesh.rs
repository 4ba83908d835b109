//! Triangle meshes of the primitives, in the primitive's own frame, closed, wound counter-clockwise seen from
//! outside (so `(b - a) x (c - a)` points outwards), with per-vertex shading normals.

use std::f64::consts::{PI, TAU};

use nalgebra::{Point3, Vector3};

use crate::shape::Primitive;

/// Largest distance between a curved surface and its facets, metres (bounds the depth error on round shapes).
const CHORD_TOLERANCE: f64 = 0.0008;

#[derive(Debug, Clone, Default)]
pub(crate) struct Mesh {
    pub positions: Vec<Point3<f64>>,
    pub normals: Vec<Vector3<f64>>,
    pub triangles: Vec<[u32; 3]>,
}

impl Mesh {
    fn vertex(&mut self, p: Point3<f64>, n: Vector3<f64>) -> u32 {
        self.positions.push(p);
        self.normals.push(n);
        (self.positions.len() - 1) as u32
    }
}

/// Segments around a circle of this radius so that the facet sag stays under [`CHORD_TOLERANCE`].
pub(crate) fn segments_for_radius(radius: f64) -> usize {
    let ratio = (1.0 - CHORD_TOLERANCE / radius.max(1e-6)).clamp(-1.0, 1.0);
    let n = (PI / ratio.acos()).ceil();
    (n as usize).clamp(12, 96)
}

pub(crate) fn tessellate(primitive: &Primitive) -> Mesh {
    match *primitive {
        Primitive::Box { half } => box_mesh(half),
        Primitive::Sphere { radius } => sphere_mesh(radius),
        Primitive::Cylinder {
            radius,
            half_height,
        } => cylinder_mesh(radius, half_height),
        Primitive::Cone { radius, height } => cone_mesh(radius, height),
    }
}

fn box_mesh([a, b, c]: [f64; 3]) -> Mesh {
    let mut mesh = Mesh::default();
    // Each face: outward normal and two in-plane axes (u, v) with u x v = normal.
    let faces: [(Vector3<f64>, Vector3<f64>, Vector3<f64>); 6] = [
        (Vector3::x(), Vector3::y(), Vector3::z()),
        (-Vector3::x(), Vector3::z(), Vector3::y()),
        (Vector3::y(), Vector3::z(), Vector3::x()),
        (-Vector3::y(), Vector3::x(), Vector3::z()),
        (Vector3::z(), Vector3::x(), Vector3::y()),
        (-Vector3::z(), Vector3::y(), Vector3::x()),
    ];
    let half = Vector3::new(a, b, c);
    for (n, u, v) in faces {
        let centre = n.component_mul(&half);
        let hu = u.component_mul(&half);
        let hv = v.component_mul(&half);
        let corners = [
            centre - hu - hv,
            centre + hu - hv,
            centre + hu + hv,
            centre - hu + hv,
        ];
        let ids: Vec<u32> = corners
            .iter()
            .map(|p| mesh.vertex(Point3::from(*p), n))
            .collect();
        mesh.triangles.push([ids[0], ids[1], ids[2]]);
        mesh.triangles.push([ids[0], ids[2], ids[3]]);
    }
    mesh
}

fn sphere_mesh(radius: f64) -> Mesh {
    let mut mesh = Mesh::default();
    let segments = segments_for_radius(radius);
    let stacks = (segments / 2).max(6);
    let top = mesh.vertex(Point3::new(0.0, 0.0, radius), Vector3::z());
    let mut rings = Vec::with_capacity(stacks - 1);
    for i in 1..stacks {
        let theta = PI * i as f64 / stacks as f64;
        let (st, ct) = theta.sin_cos();
        let ring: Vec<u32> = (0..segments)
            .map(|j| {
                let phi = TAU * j as f64 / segments as f64;
                let n = Vector3::new(st * phi.cos(), st * phi.sin(), ct);
                mesh.vertex(Point3::from(n * radius), n)
            })
            .collect();
        rings.push(ring);
    }
    let bottom = mesh.vertex(Point3::new(0.0, 0.0, -radius), -Vector3::z());
    for j in 0..segments {
        let k = (j + 1) % segments;
        mesh.triangles.push([top, rings[0][j], rings[0][k]]);
        for r in 0..rings.len() - 1 {
            let (upper, lower) = (&rings[r], &rings[r + 1]);
            mesh.triangles.push([upper[j], lower[j], lower[k]]);
            mesh.triangles.push([upper[j], lower[k], upper[k]]);
        }
        let last = &rings[rings.len() - 1];
        mesh.triangles.push([bottom, last[k], last[j]]);
    }
    mesh
}

fn cylinder_mesh(radius: f64, half_height: f64) -> Mesh {
    let mut mesh = Mesh::default();
    let segments = segments_for_radius(radius);
    let angle = |j: usize| TAU * j as f64 / segments as f64;
    let mut lower = Vec::with_capacity(segments);
    let mut upper = Vec::with_capacity(segments);
    for j in 0..segments {
        let (s, c) = angle(j).sin_cos();
        let n = Vector3::new(c, s, 0.0);
        lower.push(mesh.vertex(Point3::new(radius * c, radius * s, -half_height), n));
        upper.push(mesh.vertex(Point3::new(radius * c, radius * s, half_height), n));
    }
    for j in 0..segments {
        let k = (j + 1) % segments;
        mesh.triangles.push([lower[j], lower[k], upper[k]]);
        mesh.triangles.push([lower[j], upper[k], upper[j]]);
    }
    cap(&mut mesh, radius, half_height, segments, true);
    cap(&mut mesh, radius, -half_height, segments, false);
    mesh
}

/// A flat disc at height `z` facing up (`up`) or down.
fn cap(mesh: &mut Mesh, radius: f64, z: f64, segments: usize, up: bool) {
    let n = if up { Vector3::z() } else { -Vector3::z() };
    let centre = mesh.vertex(Point3::new(0.0, 0.0, z), n);
    let rim: Vec<u32> = (0..segments)
        .map(|j| {
            let (s, c) = (TAU * j as f64 / segments as f64).sin_cos();
            mesh.vertex(Point3::new(radius * c, radius * s, z), n)
        })
        .collect();
    for j in 0..segments {
        let k = (j + 1) % segments;
        if up {
            mesh.triangles.push([centre, rim[j], rim[k]]);
        } else {
            mesh.triangles.push([centre, rim[k], rim[j]]);
        }
    }
}

fn cone_mesh(radius: f64, height: f64) -> Mesh {
    let mut mesh = Mesh::default();
    let segments = segments_for_radius(radius);
    let slant = (radius * radius + height * height).sqrt();
    let normal_at = |phi: f64| {
        let (s, c) = phi.sin_cos();
        Vector3::new(c * height / slant, s * height / slant, radius / slant)
    };
    for j in 0..segments {
        let phi_j = TAU * j as f64 / segments as f64;
        let phi_k = TAU * (j + 1) as f64 / segments as f64;
        let (sj, cj) = phi_j.sin_cos();
        let (sk, ck) = phi_k.sin_cos();
        let a = mesh.vertex(
            Point3::new(radius * cj, radius * sj, -height / 2.0),
            normal_at(phi_j),
        );
        let b = mesh.vertex(
            Point3::new(radius * ck, radius * sk, -height / 2.0),
            normal_at(phi_k),
        );
        // One apex vertex per facet, with the facet's mid normal, so the tip shades smoothly.
        let apex = mesh.vertex(
            Point3::new(0.0, 0.0, height / 2.0),
            normal_at((phi_j + phi_k) / 2.0),
        );
        mesh.triangles.push([a, b, apex]);
    }
    cap(&mut mesh, radius, -height / 2.0, segments, false);
    mesh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_closed_outward(primitive: Primitive, expected_volume: f64, tolerance: f64) {
        let mesh = tessellate(&primitive);
        let mut volume = 0.0;
        for t in &mesh.triangles {
            let [a, b, c] = t.map(|i| mesh.positions[i as usize].coords);
            volume += a.dot(&b.cross(&c)) / 6.0;
            let normal = (b - a).cross(&(c - a));
            let centroid = (a + b + c) / 3.0;
            // Every primitive is convex and centred at the origin: facets face away from it.
            assert!(
                normal.dot(&centroid) > 0.0,
                "{primitive:?}: inward facet {t:?}"
            );
        }
        assert!(
            (volume - expected_volume).abs() <= tolerance * expected_volume,
            "{primitive:?}: volume {volume}"
        );
        for p in &mesh.positions {
            assert!(
                primitive.signed_distance(&p.coords).abs() < 1e-12,
                "{primitive:?}: vertex off the surface"
            );
        }
    }

    #[test]
    fn meshes_are_closed_outward_and_on_the_surface() {
        check_closed_outward(
            Primitive::Box {
                half: [0.1, 0.2, 0.3],
            },
            8.0 * 0.1 * 0.2 * 0.3,
            1e-12,
        );
        let r: f64 = 0.2;
        check_closed_outward(
            Primitive::Sphere { radius: r },
            4.0 / 3.0 * PI * r.powi(3),
            0.02,
        );
        check_closed_outward(
            Primitive::Cylinder {
                radius: r,
                half_height: 0.3,
            },
            PI * r * r * 0.6,
            0.01,
        );
        check_closed_outward(
            Primitive::Cone {
                radius: r,
                height: 0.5,
            },
            PI * r * r * 0.5 / 3.0,
            0.01,
        );
    }

    #[test]
    fn facet_sag_stays_under_tolerance() {
        for radius in [0.03, 0.1, 0.3, 0.6] {
            let n = segments_for_radius(radius) as f64;
            let sag = radius * (1.0 - (PI / n).cos());
            assert!(
                sag <= CHORD_TOLERANCE + 1e-12 || n == 96.0,
                "radius {radius}: sag {sag}"
            );
        }
    }
}
