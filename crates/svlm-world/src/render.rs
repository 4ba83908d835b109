//! Software rasterizer: z-buffered triangles with perspective-correct depth, analytic floor and wall.
//!
//! Sampling grid: sample `(i, j)` sits at image coordinates `u = (i - 1) / 2`, `v = (j - 1) / 2`, so every
//! pixel index `(u, v)` has a sample exactly at the coordinates `docs/ARCHITECTURE.md` lifts with
//! (`x = (u - cx) z / fx`). Depth and instance ids are read at those samples only (exact per pixel); the colour
//! of a pixel is a [1 2 1] x [1 2 1] tent filter over its 3 x 3 neighbourhood of half-pixel samples, which
//! anti-aliases edges and is centred on the pixel.

use image::RgbImage;
use nalgebra::{Isometry3, Point3, Vector3};
use svlm_geometry::DepthMap;

use crate::mesh::tessellate;
use crate::scene::Scene;

/// One rendered view.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub rgb: RgbImage,
    /// Z-depth in metres (OpenCV camera frame); 0 where the ray hits nothing (sky).
    pub depth: DepthMap,
    /// Row-major instance ids: 0 = floor, wall or sky; otherwise the object's id.
    pub instances: Vec<u16>,
    pub width: u32,
    pub height: u32,
}

const NEAR: f64 = 0.01;
const SKY: [f32; 3] = [185.0, 210.0, 235.0];

struct Target {
    width: usize,
    height: usize,
    depth: Vec<f32>,
    ids: Vec<u16>,
    color: Vec<[f32; 3]>,
}

/// A camera-frame vertex ready to rasterize.
#[derive(Clone, Copy)]
struct Vertex {
    p: Point3<f64>,
    color: [f32; 3],
}

pub fn render(scene: &Scene) -> Rendered {
    let k = scene.camera.intrinsics;
    let (width, height) = (k.width as usize, k.height as usize);
    let (sw, sh) = (2 * width + 1, 2 * height + 1);
    let mut target = Target {
        width: sw,
        height: sh,
        depth: vec![f32::INFINITY; sw * sh],
        ids: vec![0; sw * sh],
        color: vec![SKY; sw * sh],
    };
    draw_background(scene, &mut target);
    let camera_from_world = scene.camera.world_from_camera.inverse();
    let light = Vector3::from(scene.light.direction);
    for object in &scene.objects {
        let albedo = object.color.rgb().map(|c| c as f32);
        let pose = object.world_from_local();
        for part in object.parts() {
            let mesh = tessellate(&part.primitive);
            let part_pose: Isometry3<f64> = pose * nalgebra::Translation3::from(part.offset);
            let to_camera = camera_from_world * part_pose;
            let vertices: Vec<Vertex> = mesh
                .positions
                .iter()
                .zip(&mesh.normals)
                .map(|(p, n)| {
                    let n_world = part_pose.rotation * n;
                    let shade = (scene.light.ambient
                        + scene.light.diffuse * n_world.dot(&light).max(0.0))
                        as f32;
                    Vertex {
                        p: to_camera * p,
                        color: albedo.map(|c| (c * shade).min(255.0)),
                    }
                })
                .collect();
            for tri in &mesh.triangles {
                let [a, b, c] = tri.map(|i| vertices[i as usize]);
                // Back faces of closed meshes are hidden by front faces: skip them.
                let normal = (b.p - a.p).cross(&(c.p - a.p));
                if normal.dot(&a.p.coords) >= 0.0 {
                    continue;
                }
                draw_clipped(&mut target, &k, [a, b, c], object.id);
            }
        }
    }
    resolve(target, scene, width, height)
}

/// The analytic background (checkerboard floor, optional wall, sky) at every sample. Computed in f32 for speed:
/// these depths only serve the z-test; exact f64 depths of background pixels are set in [`resolve`].
fn draw_background(scene: &Scene, target: &mut Target) {
    let bg = Background::new(scene);
    let k = scene.camera.intrinsics;
    let xs: Vec<f32> = (0..target.width)
        .map(|i| (((i as f64 - 1.0) / 2.0 - k.cx) / k.fx) as f32)
        .collect();
    let c = bg.column.map(|x| x as f32);
    let [ox, oy, oz] = bg.origin.map(|x| x as f32);
    let inv_tile = bg.inv_tile as f32;
    let (wall_on, [nx, ny], wall_offset) = match bg.wall {
        Some((n, offset, _)) => (true, [n[0] as f32, n[1] as f32], offset as f32),
        None => (false, [0.0, 0.0], 0.0),
    };
    let wall_color = bg.wall.map_or(SKY, |w| w.2);
    for j in 0..target.height {
        let y = ((j as f64 - 1.0) / 2.0 - k.cy) / k.fy;
        // World direction of the camera ray (x, y, 1): its parameter along the ray is the z-depth.
        let base = [0, 1, 2].map(|a| (bg.axis[a] + bg.row_axis[a] * y) as f32);
        let row = j * target.width;
        let depth_row = &mut target.depth[row..row + target.width];
        let color_row = &mut target.color[row..row + target.width];
        for ((x, depth), color) in xs
            .iter()
            .zip(depth_row.iter_mut())
            .zip(color_row.iter_mut())
        {
            let dx = base[0] + c[0] * x;
            let dy = base[1] + c[1] * x;
            let dz = base[2] + c[2] * x;
            let on_floor = dz < 0.0;
            let t_floor = if on_floor { -oz / dz } else { f32::INFINITY };
            let hx = (ox + dx * t_floor) * inv_tile;
            let hy = (oy + dy * t_floor) * inv_tile;
            let parity = fast_floor(hx).wrapping_add(fast_floor(hy)) & 1;
            let denom = nx * dx + ny * dy;
            let t_wall = wall_offset / denom;
            let on_wall = wall_on
                && denom < 0.0
                && t_wall > 0.0
                && t_wall < t_floor
                && oz + dz * t_wall >= 0.0;
            *depth = if on_wall { t_wall } else { t_floor };
            *color = if on_wall {
                wall_color
            } else if on_floor {
                bg.floor_colors[parity as usize]
            } else {
                SKY
            };
        }
    }
}

/// What the background of a scene looks like, in world terms.
struct Background {
    origin: [f64; 3],
    column: [f64; 3],
    row_axis: [f64; 3],
    axis: [f64; 3],
    inv_tile: f64,
    floor_colors: [[f32; 3]; 2],
    /// Normal (x, y), offset `n . (p0 - origin)`, shaded colour.
    wall: Option<([f64; 2], f64, [f32; 3])>,
}

impl Background {
    fn new(scene: &Scene) -> Self {
        let rotation = scene.camera.world_from_camera.rotation.to_rotation_matrix();
        let r = rotation.matrix();
        let origin = scene.camera.position();
        let light = Vector3::from(scene.light.direction);
        let floor_shade = (scene.light.ambient + scene.light.diffuse * light.z.max(0.0)) as f32;
        let floor_colors = scene
            .floor
            .colors
            .map(|c| c.map(|x| (x as f32 * floor_shade).min(255.0)));
        let wall = scene.wall.map(|w| {
            let n = Vector3::new(w.normal[0], w.normal[1], 0.0).normalize();
            let shade = (scene.light.ambient + scene.light.diffuse * n.dot(&light).max(0.0)) as f32;
            let offset = n.dot(&(Vector3::from(w.point) - origin.coords));
            (
                [n.x, n.y],
                offset,
                w.color.map(|x| (x as f32 * shade).min(255.0)),
            )
        });
        Self {
            origin: origin.coords.into(),
            column: [r[(0, 0)], r[(1, 0)], r[(2, 0)]],
            row_axis: [r[(0, 1)], r[(1, 1)], r[(2, 1)]],
            axis: [r[(0, 2)], r[(1, 2)], r[(2, 2)]],
            inv_tile: 1.0 / scene.floor.tile,
            floor_colors,
            wall,
        }
    }

    /// Exact z-depth of the floor or wall at image coordinates `(u, v)`; infinite for sky.
    fn depth(&self, k: &svlm_geometry::Intrinsics, u: f64, v: f64) -> f64 {
        let (x, y) = ((u - k.cx) / k.fx, (v - k.cy) / k.fy);
        let d: [f64; 3] =
            std::array::from_fn(|a| self.axis[a] + self.row_axis[a] * y + self.column[a] * x);
        let mut best = if d[2] < 0.0 {
            -self.origin[2] / d[2]
        } else {
            f64::INFINITY
        };
        if let Some(([nx, ny], offset, _)) = self.wall {
            let denom = nx * d[0] + ny * d[1];
            if denom < 0.0 {
                let t = offset / denom;
                if t > 0.0 && t < best && self.origin[2] + d[2] * t >= 0.0 {
                    best = t;
                }
            }
        }
        best
    }
}

/// `floor` without a libm call (the baseline x86-64 target has no rounding instruction); saturates far away,
/// where the checkerboard is sub-pixel anyway.
#[inline]
fn fast_floor(x: f32) -> i32 {
    let i = x as i32;
    i.wrapping_sub(((i as f32) > x) as i32)
}

/// Clips a camera-frame triangle against the near plane, then rasterizes the one or two pieces.
fn draw_clipped(target: &mut Target, k: &svlm_geometry::Intrinsics, tri: [Vertex; 3], id: u16) {
    if tri.iter().all(|v| v.p.z >= NEAR) {
        raster(target, k, tri, id);
        return;
    }
    if tri.iter().all(|v| v.p.z < NEAR) {
        return;
    }
    let mut poly: Vec<Vertex> = Vec::with_capacity(4);
    for idx in 0..3 {
        let a = tri[idx];
        let b = tri[(idx + 1) % 3];
        let a_in = a.p.z >= NEAR;
        let b_in = b.p.z >= NEAR;
        if a_in {
            poly.push(a);
        }
        if a_in != b_in {
            let t = (NEAR - a.p.z) / (b.p.z - a.p.z);
            let p = a.p + (b.p - a.p) * t;
            let color = std::array::from_fn(|c| a.color[c] + (b.color[c] - a.color[c]) * t as f32);
            poly.push(Vertex { p, color });
        }
    }
    for idx in 1..poly.len().saturating_sub(1) {
        raster(target, k, [poly[0], poly[idx], poly[idx + 1]], id);
    }
}

fn raster(target: &mut Target, k: &svlm_geometry::Intrinsics, tri: [Vertex; 3], id: u16) {
    // Sample-grid coordinates: i = 2u + 1.
    let screen = tri.map(|v| {
        let inv_z = 1.0 / v.p.z;
        (
            2.0 * (k.fx * v.p.x * inv_z + k.cx) + 1.0,
            2.0 * (k.fy * v.p.y * inv_z + k.cy) + 1.0,
            inv_z,
        )
    });
    let [(x0, y0, w0), (x1, y1, w1), (x2, y2, w2)] = screen;
    let area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
    if area.abs() < 1e-12 {
        return;
    }
    let inv_area = 1.0 / area;
    let min_x = x0.min(x1).min(x2).ceil().max(0.0);
    let max_x = x0.max(x1).max(x2).floor().min(target.width as f64 - 1.0);
    let min_y = y0.min(y1).min(y2).ceil().max(0.0);
    let max_y = y0.max(y1).max(y2).floor().min(target.height as f64 - 1.0);
    if min_x > max_x || min_y > max_y {
        return;
    }
    let colors_over_z = [tri[0].color, tri[1].color, tri[2].color];
    let weights = [w0, w1, w2];
    // Barycentrics are affine in screen space: b_k(x, y) = a_k x + b_k y + c_k.
    let edge = |xa: f64, ya: f64, xb: f64, yb: f64| {
        // Signed area of (a, b, p) / area: coefficient of the vertex opposite edge ab.
        let a = (ya - yb) * inv_area;
        let b = (xb - xa) * inv_area;
        let c = (xa * yb - xb * ya) * inv_area;
        (a, b, c)
    };
    let e0 = edge(x1, y1, x2, y2);
    let e1 = edge(x2, y2, x0, y0);
    let e2 = edge(x0, y0, x1, y1);
    // Shared edges are covered from both sides (no cracks); the depth test settles the double hits.
    const INSIDE: f64 = -1e-9;
    for y in (min_y as usize)..=(max_y as usize) {
        let fy = y as f64;
        let row = y * target.width;
        for x in (min_x as usize)..=(max_x as usize) {
            let fx = x as f64;
            let b0 = e0.0 * fx + e0.1 * fy + e0.2;
            let b1 = e1.0 * fx + e1.1 * fy + e1.2;
            let b2 = e2.0 * fx + e2.1 * fy + e2.2;
            if b0 < INSIDE || b1 < INSIDE || b2 < INSIDE {
                continue;
            }
            let inv_z = b0 * weights[0] + b1 * weights[1] + b2 * weights[2];
            if inv_z <= 0.0 {
                continue;
            }
            let z = 1.0 / inv_z;
            let index = row + x;
            if (z as f32) < target.depth[index] {
                target.depth[index] = z as f32;
                target.ids[index] = id;
                // Perspective-correct colour: interpolate colour / z, then multiply by z.
                let (p0, p1, p2) = (
                    b0 * weights[0] * z,
                    b1 * weights[1] * z,
                    b2 * weights[2] * z,
                );
                target.color[index] = std::array::from_fn(|c| {
                    (colors_over_z[0][c] as f64 * p0
                        + colors_over_z[1][c] as f64 * p1
                        + colors_over_z[2][c] as f64 * p2) as f32
                });
            }
        }
    }
}

fn resolve(target: Target, scene: &Scene, width: usize, height: usize) -> Rendered {
    let background = Background::new(scene);
    let k = scene.camera.intrinsics;
    let sw = target.width;
    let mut depth = Vec::with_capacity(width * height);
    let mut instances = Vec::with_capacity(width * height);
    let mut rgb = RgbImage::new(width as u32, height as u32);
    const TENT: [f32; 3] = [0.25, 0.5, 0.25];
    for v in 0..height {
        let j = 2 * v + 1;
        for u in 0..width {
            let i = 2 * u + 1;
            let centre = j * sw + i;
            let id = target.ids[centre];
            let z = if id == 0 {
                background.depth(&k, u as f64, v as f64) as f32
            } else {
                target.depth[centre]
            };
            depth.push(if z.is_finite() { z } else { 0.0 });
            instances.push(id);
            let mut acc = [0.0f32; 3];
            for (dj, wj) in TENT.iter().enumerate() {
                let row = (j + dj - 1) * sw;
                for (di, wi) in TENT.iter().enumerate() {
                    let c = target.color[row + i + di - 1];
                    let w = wj * wi;
                    acc[0] += c[0] * w;
                    acc[1] += c[1] * w;
                    acc[2] += c[2] * w;
                }
            }
            rgb.put_pixel(u as u32, v as u32, image::Rgb(acc.map(|c| (c + 0.5) as u8)));
        }
    }
    Rendered {
        rgb,
        depth: DepthMap {
            width: width as u32,
            height: height as u32,
            data: depth,
        },
        instances,
        width: width as u32,
        height: height as u32,
    }
}
