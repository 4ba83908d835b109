use std::f64::consts::PI;

use nalgebra::{Point3, Vector3};
use svlm_world::{
    Camera, Color, Floor, Intrinsics, Light, ObjectTruth, Scene, SceneConfig, Shape, Support, Wall,
    generate_scene, render, scene_seed,
};

fn light() -> Light {
    Light {
        direction: [0.3, -0.5, 0.81],
        ambient: 0.4,
        diffuse: 0.6,
    }
}

fn floor() -> Floor {
    Floor {
        colors: [[200, 200, 200], [150, 150, 150]],
        tile: 0.5,
    }
}

fn sphere(radius: f64, center: [f64; 3]) -> ObjectTruth {
    ObjectTruth {
        id: 1,
        name: "red ball".into(),
        shape: Shape::Sphere,
        color: Color::Red,
        center,
        yaw: 0.0,
        extents: [2.0 * radius; 3],
        support: Support::Floor,
        is_gripper: false,
    }
}

fn camera(width: u32, height: u32, hfov: f64, height_m: f64, yaw: f64, pitch_deg: f64) -> Camera {
    Camera::looking(
        Intrinsics::from_horizontal_fov(width, height, hfov),
        Point3::new(0.0, 0.0, height_m),
        yaw,
        pitch_deg.to_radians(),
        0.0,
    )
}

/// World direction of the camera ray through pixel (u, v), scaled so that its camera-frame z is 1.
fn ray(camera: &Camera, u: f64, v: f64) -> Vector3<f64> {
    let k = &camera.intrinsics;
    camera.world_from_camera.rotation * Vector3::new((u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0)
}

#[test]
fn lifted_object_pixels_lie_on_the_exact_surface() {
    let config = SceneConfig::default();
    let mut worst: f64 = 0.0;
    let mut pixels = 0usize;
    let mut visible = 0usize;
    let mut objects = 0usize;
    for index in 0..30 {
        let scene = generate_scene(scene_seed(21, index), &config);
        let rendered = render(&scene);
        let k = &scene.camera.intrinsics;
        assert_eq!(rendered.depth.data.len(), (k.width * k.height) as usize);
        for v in 0..k.height {
            for u in 0..k.width {
                let i = (v * k.width + u) as usize;
                let id = rendered.instances[i];
                if id == 0 {
                    continue;
                }
                let z = rendered.depth.data[i] as f64;
                let world = scene.camera.world_from_camera * k.unproject(u as f64, v as f64, z);
                let object = scene.object(id).unwrap();
                let d = object.signed_distance(&world).abs();
                assert!(
                    d < 0.01,
                    "scene {index}: pixel ({u}, {v}) of {} is {d} m off its surface",
                    object.name
                );
                worst = worst.max(d);
                pixels += 1;
            }
        }
        objects += scene.objects.len();
        visible += scene
            .objects
            .iter()
            .filter(|o| rendered.instances.contains(&o.id))
            .count();
    }
    eprintln!(
        "{pixels} object pixels, worst distance to the exact surface {:.2} mm",
        worst * 1e3
    );
    assert!(pixels > 10_000);
    // Facets sag by at most 0.8 mm; depth is f32.
    assert!(worst < 0.002, "worst {worst}");
    assert!(
        visible as f64 >= 0.9 * objects as f64,
        "{visible} of {objects} objects visible"
    );
}

#[test]
fn sphere_pixel_count_matches_its_analytic_projection() {
    for (radius, center, pitch, hfov) in [
        (0.3, [0.0, 3.0, 0.3], 20.0, 60.0),
        (0.15, [0.6, 2.0, 0.15], 30.0, 70.0),
        (0.5, [-0.8, 4.0, 0.5], 12.0, 55.0),
    ] {
        let camera = camera(320, 240, hfov, 1.5, PI / 2.0, pitch);
        let object = sphere(radius, center);
        let scene = Scene {
            seed: 0,
            camera,
            objects: vec![object.clone()],
            floor: floor(),
            wall: None,
            light: light(),
        };
        let rendered = render(&scene);
        let rendered_count = rendered.instances.iter().filter(|&&id| id == 1).count() as f64;

        // Silhouette of a sphere: an ellipse of area pi sin^2(a) cos(a) / (cos^2(t) - sin^2(a))^(3/2) on the
        // z = 1 plane, a = angular radius, t = angle between the sphere's direction and the optical axis.
        let c = scene
            .camera
            .world_from_camera
            .inverse_transform_point(&Point3::from(center));
        let dist = c.coords.norm();
        let sin_a = radius / dist;
        let cos_a = (1.0 - sin_a * sin_a).sqrt();
        let cos_t = c.z / dist;
        let k = &scene.camera.intrinsics;
        let analytic =
            PI * sin_a * sin_a * cos_a / (cos_t * cos_t - sin_a * sin_a).powf(1.5) * k.fx * k.fy;

        // The exact per-pixel answer: rays through pixel centres that hit the sphere.
        let mut exact = 0.0;
        let origin = scene.camera.position();
        for v in 0..k.height {
            for u in 0..k.width {
                let d = ray(&scene.camera, u as f64, v as f64).normalize();
                let oc = origin - Point3::from(center);
                let b = oc.dot(&d);
                if b * b - (oc.norm_squared() - radius * radius) >= 0.0 && b < 0.0 {
                    exact += 1.0;
                }
            }
        }
        eprintln!(
            "radius {radius}: rendered {rendered_count}, exact rays {exact}, analytic area {analytic:.1}"
        );
        assert!(
            (rendered_count - analytic).abs() / analytic < 0.03,
            "rendered {rendered_count} vs {analytic}"
        );
        assert!(
            (rendered_count - exact).abs() / exact < 0.02,
            "rendered {rendered_count} vs exact {exact}"
        );
    }
}

#[test]
fn floor_and_wall_depth_equal_the_ray_plane_intersection() {
    let camera = camera(200, 150, 65.0, 1.4, 0.7, 15.0);
    let forward = camera.world_from_camera.rotation * Vector3::z();
    let heading = Vector3::new(forward.x, forward.y, 0.0).normalize();
    let wall_point = camera.position().coords + heading * 6.0;
    let wall = Wall {
        point: [wall_point.x, wall_point.y, 0.0],
        normal: (-heading).into(),
        color: [220, 220, 210],
    };
    for wall in [None, Some(wall)] {
        let scene = Scene {
            seed: 0,
            camera,
            objects: vec![],
            floor: floor(),
            wall,
            light: light(),
        };
        let rendered = render(&scene);
        let k = &scene.camera.intrinsics;
        let origin = scene.camera.position();
        let mut floor_pixels = 0;
        let mut wall_pixels = 0;
        let mut sky_pixels = 0;
        for v in 0..k.height {
            for u in 0..k.width {
                let d = ray(&scene.camera, u as f64, v as f64);
                let mut expected = f64::INFINITY;
                let mut on_wall = false;
                if d.z < 0.0 {
                    expected = -origin.z / d.z;
                }
                if let Some(w) = &wall {
                    let n = Vector3::from(w.normal);
                    let t = n.dot(&(Vector3::from(w.point) - origin.coords)) / n.dot(&d);
                    if t > 0.0 && t < expected && origin.z + d.z * t >= 0.0 {
                        expected = t;
                        on_wall = true;
                    }
                }
                let depth = rendered.depth.data[(v * k.width + u) as usize] as f64;
                if expected.is_finite() {
                    assert!(
                        (depth - expected).abs() < 1e-3,
                        "({u}, {v}): depth {depth} vs {expected}"
                    );
                    if on_wall {
                        wall_pixels += 1
                    } else {
                        floor_pixels += 1
                    }
                } else {
                    assert_eq!(depth, 0.0, "sky is invalid depth");
                    sky_pixels += 1;
                }
            }
        }
        assert!(floor_pixels > 1000);
        if wall.is_some() {
            assert!(wall_pixels > 1000 && sky_pixels == 0);
        } else {
            assert!(sky_pixels > 100, "the horizon is in view");
        }
        assert!(rendered.instances.iter().all(|&id| id == 0));
    }
}

#[test]
fn rendering_is_deterministic_and_shaded() {
    let scene = generate_scene(5, &SceneConfig::default());
    let a = render(&scene);
    let b = render(&scene);
    assert_eq!(a.rgb, b.rgb);
    assert_eq!(a.depth, b.depth);
    assert_eq!(a.instances, b.instances);
    // Shading: a single object's pixels take many different colours (not a flat fill).
    let id = scene.objects[0].id;
    let mut colours: Vec<[u8; 3]> = a
        .instances
        .iter()
        .zip(a.rgb.pixels())
        .filter(|(i, _)| **i == id)
        .map(|(_, p)| p.0)
        .collect();
    colours.sort();
    colours.dedup();
    assert!(colours.len() > 3, "{} colours", colours.len());
}
