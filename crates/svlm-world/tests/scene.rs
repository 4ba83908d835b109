use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use svlm_world::{
    Color, ObjectTruth, SceneConfig, Shape, Support, closest_surface_distance, generate_scene,
    scene_seed,
};

#[test]
fn scenes_are_deterministic_per_seed_and_differ_between_seeds() {
    let config = SceneConfig::default();
    for seed in 0..20 {
        assert_eq!(
            generate_scene(seed, &config),
            generate_scene(seed, &config),
            "seed {seed}"
        );
    }
    assert_ne!(
        generate_scene(1, &config).objects,
        generate_scene(2, &config).objects
    );
    assert_ne!(scene_seed(5, 0), scene_seed(5, 1));
    assert_eq!(scene_seed(5, 3), scene_seed(5, 3));
}

#[test]
fn objects_rest_on_their_support_do_not_intersect_and_are_in_view() {
    let config = SceneConfig::default();
    let mut on_tables = 0;
    let mut total = 0;
    for index in 0..150 {
        let scene = generate_scene(scene_seed(11, index), &config);
        assert!(
            scene.objects.len() >= config.objects[0],
            "seed index {index}: {} objects",
            scene.objects.len()
        );
        assert!(scene.objects.len() <= config.objects[1]);
        for (i, object) in scene.objects.iter().enumerate() {
            total += 1;
            assert_eq!(object.id as usize, i + 1);
            let support_height = scene
                .support_height(object.support)
                .expect("procedural objects have a support");
            assert!(
                (object.bottom() - support_height).abs() < 1e-9,
                "{} floats",
                object.name
            );
            if let Support::Object(host) = object.support {
                on_tables += 1;
                let host = scene.object(host).unwrap();
                assert!(host.shape.is_support());
                assert!(
                    closest_surface_distance(object, host) < 1e-6,
                    "{} does not touch {}",
                    object.name,
                    host.name
                );
            }
            for corner in object.obb_corners() {
                let (u, v) = scene
                    .camera
                    .project_world(&corner)
                    .expect("in front of the camera");
                let k = &scene.camera.intrinsics;
                assert!(
                    u > -0.5 && v > -0.5 && u < k.width as f64 - 0.5 && v < k.height as f64 - 0.5
                );
            }
        }
        for (i, a) in scene.objects.iter().enumerate() {
            for b in &scene.objects[i + 1..] {
                let resting =
                    a.support == Support::Object(b.id) || b.support == Support::Object(a.id);
                if !resting {
                    let gap = closest_surface_distance(a, b);
                    assert!(
                        gap > 0.005,
                        "seed index {index}: {} and {} are {gap} m apart",
                        a.name,
                        b.name
                    );
                }
            }
        }
        let mut names: Vec<&str> = scene.objects.iter().map(|o| o.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), scene.objects.len(), "unique names asked for");
    }
    assert!(
        on_tables > 20,
        "only {on_tables} of {total} objects rest on tables"
    );
}

#[test]
fn small_objects_take_their_colours_from_the_configured_palette() {
    let palette = vec![Color::Red, Color::Blue, Color::Cyan];
    let config = SceneConfig {
        objects: [6, 6],
        table_probability: 0.0,
        furniture_probability: 0.0,
        colors: palette.clone(),
        ..SceneConfig::default()
    };
    config.validate().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        for object in generate_scene(scene_seed(7, i), &config).objects {
            assert!(palette.contains(&object.color), "{}", object.name);
            seen.insert(object.color);
        }
    }
    assert_eq!(seen.len(), palette.len(), "every listed colour is used");
    // An empty list is the whole palette, drawn exactly as before the option existed.
    let full = SceneConfig::default();
    assert!(full.colors.is_empty());
    let colors: std::collections::BTreeSet<Color> = (0..60)
        .flat_map(|i| generate_scene(scene_seed(7, i), &full).objects)
        .map(|o| o.color)
        .collect();
    assert!(colors.len() > 8);
    let twice = SceneConfig {
        colors: vec![Color::Red, Color::Red],
        ..SceneConfig::default()
    };
    assert!(twice.validate().unwrap_err().to_string().contains("twice"));
}

#[test]
fn unique_colors_give_every_small_object_its_own_colour() {
    let palette = vec![Color::Red, Color::Green, Color::Blue];
    let shared = |unique_colors: bool| {
        let config = SceneConfig {
            unique_colors,
            objects: [3, 3],
            colors: palette.clone(),
            table_probability: 0.0,
            furniture_probability: 0.0,
            ..SceneConfig::default()
        };
        (0..40)
            .filter(|&i| {
                let scene = generate_scene(scene_seed(5, i), &config);
                let mut colors: Vec<Color> = scene.objects.iter().map(|o| o.color).collect();
                let n = colors.len();
                colors.sort();
                colors.dedup();
                colors.len() < n
            })
            .count()
    };
    // Three objects from three colours share one in most scenes unless forbidden.
    assert!(shared(false) > 10);
    assert_eq!(shared(true), 0);
}

#[test]
fn duplicate_names_occur_when_allowed() {
    let config = SceneConfig {
        unique_names: false,
        objects: [12, 12],
        ..SceneConfig::default()
    };
    let duplicates = (0..40)
        .filter(|&i| {
            let scene = generate_scene(scene_seed(3, i), &config);
            let mut names: Vec<&str> = scene.objects.iter().map(|o| o.name.as_str()).collect();
            names.sort();
            let n = names.len();
            names.dedup();
            names.len() < n
        })
        .count();
    assert!(duplicates > 0);
}

#[test]
fn camera_respects_config_ranges() {
    let config = SceneConfig {
        max_roll_deg: 5.0,
        ..SceneConfig::default()
    };
    for index in 0..50 {
        let scene = generate_scene(scene_seed(2, index), &config);
        let cam = scene.camera.position();
        assert!((1.0..=1.8).contains(&cam.z));
        let forward = scene.camera.world_from_camera.rotation * Vector3::z();
        let pitch = (-forward.z).asin().to_degrees();
        assert!(
            (10.0 - 1e-9..=35.0 + 1e-9).contains(&pitch),
            "pitch {pitch}"
        );
        let hfov = scene.camera.intrinsics.horizontal_fov_deg();
        assert!((50.0 - 1e-9..=75.0 + 1e-9).contains(&hfov), "hfov {hfov}");
        let right = scene.camera.world_from_camera.rotation * Vector3::x();
        assert!(right.z.abs().asin().to_degrees() <= 5.0 + 1e-9);
    }
}

#[test]
fn canonical_frame_follows_the_architecture_convention() {
    let config = SceneConfig {
        max_roll_deg: 10.0,
        ..SceneConfig::default()
    };
    for index in 0..20 {
        let scene = generate_scene(scene_seed(9, index), &config);
        let canonical = scene.canonical_from_world();
        let cam = scene.camera.position();
        let cam_c = canonical * cam;
        assert!(cam_c.x.abs() < 1e-9 && cam_c.y.abs() < 1e-9 && (cam_c.z - cam.z).abs() < 1e-9);
        // Z stays up; X follows the camera's right; Y points away from the camera (along its view).
        assert!((canonical * Vector3::z() - Vector3::z()).norm() < 1e-9);
        let right_c = canonical * (scene.camera.world_from_camera.rotation * Vector3::x());
        assert!(right_c.y.abs() < 1e-9 && right_c.x > 0.0);
        let forward_c = canonical * (scene.camera.world_from_camera.rotation * Vector3::z());
        assert!(forward_c.y > 0.0);
        // A floor point stays on the floor.
        let p = canonical * Point3::new(1.0, 2.0, 0.0);
        assert!(p.z.abs() < 1e-9);
    }
}

fn object(shape: Shape, extents: [f64; 3], center: [f64; 3], yaw: f64) -> ObjectTruth {
    ObjectTruth {
        id: 1,
        name: format!("{shape}"),
        shape,
        color: Color::Red,
        center,
        yaw,
        extents,
        support: Support::Floor,
        is_gripper: false,
    }
}

fn all_shapes() -> Vec<ObjectTruth> {
    vec![
        object(Shape::Cube, [0.2, 0.2, 0.2], [0.0, 0.0, 0.1], 0.3),
        object(Shape::Box, [0.5, 0.3, 0.2], [0.0, 0.0, 0.1], -0.7),
        object(Shape::Sphere, [0.3, 0.3, 0.3], [0.0, 0.0, 0.15], 0.0),
        object(Shape::Cylinder, [0.1, 0.1, 0.15], [0.0, 0.0, 0.075], 1.0),
        object(Shape::Cone, [0.3, 0.3, 0.5], [0.0, 0.0, 0.25], 0.2),
        object(Shape::Table, [1.0, 0.6, 0.75], [0.0, 0.0, 0.375], 0.5),
        object(Shape::Chair, [0.45, 0.45, 0.9], [0.0, 0.0, 0.45], -1.2),
        object(Shape::Shelf, [0.9, 0.35, 1.1], [0.0, 0.0, 0.55], 2.0),
        object(Shape::Cabinet, [0.6, 0.5, 0.8], [0.0, 0.0, 0.4], 0.0),
        object(Shape::Gripper, [0.14, 0.09, 0.06], [0.0, 0.0, 0.5], 0.9),
    ]
}

#[test]
fn truth_helpers_are_consistent_with_surface_samples() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for o in all_shapes() {
        let samples = o.sample_surface(4000, &mut rng);
        assert_eq!(samples.len(), 4000, "{}", o.name);
        let aabb = o.world_aabb();
        let mut seen_min = Point3::from(Vector3::repeat(f64::INFINITY));
        let mut seen_max = Point3::from(Vector3::repeat(f64::NEG_INFINITY));
        for p in &samples {
            assert!(
                o.signed_distance(p).abs() < 1e-9,
                "{}: sample off the surface",
                o.name
            );
            for k in 0..3 {
                assert!(
                    p[k] >= aabb.min[k] - 1e-9 && p[k] <= aabb.max[k] + 1e-9,
                    "{}: sample outside AABB",
                    o.name
                );
                seen_min[k] = seen_min[k].min(p[k]);
                seen_max[k] = seen_max[k].max(p[k]);
            }
        }
        // The exact AABB is tight: dense samples reach within a few cm of every face.
        for k in 0..3 {
            assert!(
                seen_min[k] - aabb.min[k] < 0.03 && aabb.max[k] - seen_max[k] < 0.03,
                "{}: loose AABB",
                o.name
            );
        }
        assert!(
            (o.bottom() - aabb.min.z).abs() < 1e-12,
            "{}: bottom",
            o.name
        );
        assert!((o.top() - aabb.max.z).abs() < 1e-12, "{}: top", o.name);
        let local_max = o
            .obb_corners()
            .iter()
            .map(|c| o.world_from_local().inverse_transform_point(c))
            .fold(Vector3::zeros(), |m: Vector3<f64>, c| {
                m.zip_map(&c.coords, |a, b| a.max(b.abs()))
            });
        assert!((local_max - Vector3::from(o.extents) / 2.0).norm() < 1e-12);
        assert!(
            o.signed_distance(&Point3::from(o.center)) <= 0.0
                || o.shape.is_furniture()
                || o.shape == Shape::Gripper
        );
    }
}

#[test]
fn closest_surface_distance_matches_dense_sampling() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let shapes = all_shapes();
    let mut checked = 0;
    for (i, a) in shapes.iter().enumerate() {
        for (j, b) in shapes.iter().enumerate() {
            if i > j {
                continue;
            }
            for trial in 0..3 {
                let mut b = b.clone();
                let angle = 0.9 * trial as f64 + j as f64;
                let offset = 0.8 + 0.3 * trial as f64;
                b.center = [
                    offset * angle.cos(),
                    offset * angle.sin(),
                    b.center[2] + 0.1 * trial as f64,
                ];
                b.yaw += 0.4 * trial as f64;
                let exact = closest_surface_distance(a, &b);
                assert!((exact - closest_surface_distance(&b, a)).abs() < 1e-7);
                // Sampling gives an upper bound that approaches the exact value from above.
                let samples = a.sample_surface(40_000, &mut rng);
                let sampled = samples
                    .iter()
                    .map(|p| b.signed_distance(p))
                    .fold(f64::INFINITY, f64::min)
                    .max(0.0);
                assert!(
                    exact <= sampled + 1e-7,
                    "{} / {}: exact {exact} above sampled {sampled}",
                    a.name,
                    b.name
                );
                assert!(
                    sampled - exact < 0.01,
                    "{} / {}: exact {exact} vs sampled {sampled}",
                    a.name,
                    b.name
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100);
}

#[test]
fn closest_surface_distance_of_simple_cases_is_exact() {
    let a = object(Shape::Cube, [0.2, 0.2, 0.2], [0.0, 0.0, 0.1], 0.0);
    let mut b = object(Shape::Sphere, [0.2, 0.2, 0.2], [0.5, 0.0, 0.1], 0.0);
    assert!((closest_surface_distance(&a, &b) - 0.3).abs() < 1e-9);
    // Sphere diagonal from the cube's top corner.
    b.center = [0.1 + 0.3, 0.1 + 0.3, 0.2 + 0.3];
    let expected = (3.0f64 * 0.09).sqrt() - 0.1;
    assert!((closest_surface_distance(&a, &b) - expected).abs() < 1e-9);
    // Overlapping and touching solids are at distance 0.
    b.center = [0.15, 0.0, 0.1];
    assert_eq!(closest_surface_distance(&a, &b), 0.0);
    let c = object(Shape::Cube, [0.2, 0.2, 0.2], [0.0, 0.0, 0.3], 0.0);
    assert!(closest_surface_distance(&a, &c) < 1e-9);
    // Cylinder side to cone apex: apex at z = 0.5 above a cylinder top at z = 0.3.
    let cyl = object(Shape::Cylinder, [0.2, 0.2, 0.3], [0.0, 0.0, 0.15], 0.0);
    let cone = object(Shape::Cone, [0.2, 0.2, 0.3], [0.0, 0.0, 0.65], 0.0);
    // The cone is upright (apex up), so its base (z = 0.5) faces the cylinder's top (z = 0.3).
    assert!((closest_surface_distance(&cyl, &cone) - 0.2).abs() < 1e-9);
    let pose = Isometry3::from_parts(Translation3::new(0.0, 0.0, 0.0), UnitQuaternion::identity());
    let spheres = svlm_world::convex_distance(
        &svlm_world::Primitive::Sphere { radius: 1.0 },
        &pose,
        &svlm_world::Primitive::Sphere { radius: 1.0 },
        &Isometry3::translation(3.0, 0.0, 0.0),
    );
    assert!((spheres - 1.0).abs() < 1e-9);
}

#[test]
fn invariants_hold_over_many_seeds_with_roll_and_duplicates() {
    let config = SceneConfig {
        max_roll_deg: 10.0,
        unique_names: false,
        ..SceneConfig::default()
    };
    for index in 0..1500 {
        let scene = generate_scene(scene_seed(99, index), &config);
        assert!(!scene.objects.is_empty());
        for (i, a) in scene.objects.iter().enumerate() {
            let support = scene.support_height(a.support).unwrap();
            assert!((a.bottom() - support).abs() < 1e-9);
            for b in &scene.objects[i + 1..] {
                let resting =
                    a.support == Support::Object(b.id) || b.support == Support::Object(a.id);
                if !resting {
                    assert!(
                        closest_surface_distance(a, b) > 0.005,
                        "index {index}: {} / {}",
                        a.name,
                        b.name
                    );
                }
            }
        }
    }
}
