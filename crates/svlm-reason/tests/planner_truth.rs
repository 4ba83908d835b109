//! The rule-based planner with the exact-truth oracle on procedural scenes: its answers match the world's truth.

use std::path::{Path, PathBuf};

use svlm_reason::planner::FinalValue;
use svlm_reason::{PlannerOptions, Transcript, TruthOracle, answer_with_rules};
use svlm_world::{ObjectTruth, Scene, SceneConfig, generate_scene};

fn small_objects(scene: &Scene) -> Vec<usize> {
    (0..scene.objects.len())
        .filter(|&i| !scene.objects[i].shape.is_furniture() && !scene.objects[i].is_gripper)
        .collect()
}

/// A generated scene with at least `n` small objects.
fn scene_with(n: usize, from_seed: u64) -> Scene {
    let config = SceneConfig {
        objects: [n.max(3), 6],
        ..SceneConfig::default()
    };
    (from_seed..from_seed + 500)
        .map(|s| generate_scene(s, &config))
        .find(|s| small_objects(s).len() >= n)
        .expect("a scene with enough small objects")
}

/// Moves object `i` so its centre's floor projection is at (x, y) (world), keeping its height.
fn place(scene: &mut Scene, i: usize, x: f64, y: f64) {
    let o: &mut ObjectTruth = &mut scene.objects[i];
    o.center[0] = x;
    o.center[1] = y;
}

fn center_distance(scene: &Scene, a: usize, b: usize) -> f64 {
    (scene.objects[a].center_point() - scene.objects[b].center_point()).norm()
}

fn run(scene: &Scene, question: &str) -> FinalValue {
    let image = PathBuf::from(format!("scene-{}.png", scene.seed));
    let mut oracle = TruthOracle::new(1).with_scene(&image, scene.clone());
    let mut transcript = Transcript::new(question, &image, "rules");
    let outcome = answer_with_rules(
        question,
        &image,
        &mut oracle,
        &PlannerOptions::default(),
        &mut transcript,
    )
    .unwrap_or_else(|e| panic!("{question}: {e:#}"));
    assert_eq!(
        transcript.final_answer.as_deref(),
        Some(outcome.answer.as_str())
    );
    assert_eq!(transcript.vlm_questions(), outcome.plan.questions.len());
    outcome.value
}

fn triangle_question(scene: &Scene, ids: [usize; 3], shape: &str) -> String {
    let n = |i: usize| scene.objects[ids[i]].name.clone();
    format!(
        "Do the {}, the {} and the {} form roughly {shape} triangle?",
        n(0),
        n(1),
        n(2)
    )
}

#[test]
fn equilateral_triangle_on_constructed_scenes() {
    for seed in [1u64, 20, 300] {
        let mut scene = scene_with(3, seed);
        let ids: [usize; 3] = small_objects(&scene)[..3].try_into().unwrap();
        // Centres at the corners of an equilateral triangle with 0.9 m sides, on the floor around the origin.
        let r = 0.9 / 3f64.sqrt();
        for (k, &i) in ids.iter().enumerate() {
            let angle = k as f64 * 2.0 * std::f64::consts::PI / 3.0;
            place(&mut scene, i, r * angle.cos(), r * angle.sin());
            scene.objects[i].center[2] = 0.1;
        }
        let q = triangle_question(&scene, ids, "an equilateral");
        assert_eq!(
            run(&scene, &q),
            FinalValue::Bool { value: true },
            "seed {seed}"
        );
        // Stretch one corner: sides 0.9, ~1.5, ~1.5 -> isosceles but not equilateral.
        let (x, y) = (
            scene.objects[ids[0]].center[0],
            scene.objects[ids[0]].center[1],
        );
        place(&mut scene, ids[0], 2.2 * x, 2.2 * y);
        assert_eq!(
            run(&scene, &q),
            FinalValue::Bool { value: false },
            "seed {seed}"
        );
        let iso = triangle_question(&scene, ids, "an isosceles");
        assert_eq!(
            run(&scene, &iso),
            FinalValue::Bool { value: true },
            "seed {seed}"
        );
        // A 3-4-5 right triangle (0.6, 0.8, 1.0 m).
        place(&mut scene, ids[0], 0.0, 0.0);
        place(&mut scene, ids[1], 0.6, 0.0);
        place(&mut scene, ids[2], 0.0, 0.8);
        let right = triangle_question(&scene, ids, "a right");
        assert_eq!(
            run(&scene, &right),
            FinalValue::Bool { value: true },
            "seed {seed}"
        );
        assert_eq!(
            run(&scene, &q),
            FinalValue::Bool { value: false },
            "seed {seed}"
        );
    }
}

#[test]
fn triangle_answers_match_truth_on_generated_scenes() {
    let options = PlannerOptions::default();
    let mut checked = 0;
    for seed in 0..60u64 {
        let scene = scene_with(3, seed * 1000);
        let ids: [usize; 3] = small_objects(&scene)[..3].try_into().unwrap();
        let mut s = [
            center_distance(&scene, ids[0], ids[1]),
            center_distance(&scene, ids[1], ids[2]),
            center_distance(&scene, ids[0], ids[2]),
        ];
        s.sort_by(f64::total_cmp);
        let spread = (s[2] - s[0]) / s[2];
        // Two significant digits in the answers: stay clear of the tolerance edge.
        if (spread - options.side_tolerance).abs() < 0.08 {
            continue;
        }
        let truth = spread <= options.side_tolerance;
        let q = triangle_question(&scene, ids, "an equilateral");
        assert_eq!(
            run(&scene, &q),
            FinalValue::Bool { value: truth },
            "seed {seed}: sides {s:?}"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} scenes checked");
}

#[test]
fn nearest_farthest_ordering_and_fit_match_truth() {
    let mut checked = [0usize; 4];
    for seed in 0..40u64 {
        let scene = scene_with(4, seed * 777 + 5);
        let ids = small_objects(&scene);
        let (reference, candidates) = (ids[0], &ids[1..4]);
        let name = |i: usize| scene.objects[i].name.clone();
        let list = |c: &[usize]| {
            let names: Vec<String> = c.iter().map(|&i| format!("the {}", name(i))).collect();
            format!(
                "{} and {}",
                names[..names.len() - 1].join(", "),
                names[names.len() - 1]
            )
        };
        // Nearest / farthest to the reference object.
        let mut by_distance: Vec<(f64, usize)> = candidates
            .iter()
            .map(|&c| (center_distance(&scene, c, reference), c))
            .collect();
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        let clear = |a: f64, b: f64| (b - a).abs() > 0.12 * a.max(b);
        if clear(by_distance[0].0, by_distance[1].0) {
            let q = format!(
                "Which of {} is closest to the {}?",
                list(candidates),
                name(reference)
            );
            assert_eq!(
                run(&scene, &q),
                FinalValue::Choice {
                    value: name(by_distance[0].1)
                },
                "{q}"
            );
            checked[0] += 1;
        }
        if clear(by_distance[1].0, by_distance[2].0) {
            let q = format!(
                "Which of {} is farthest from the {}?",
                list(candidates),
                name(reference)
            );
            assert_eq!(
                run(&scene, &q),
                FinalValue::Choice {
                    value: name(by_distance[2].1)
                },
                "{q}"
            );
            checked[0] += 1;
        }
        // Closest to the camera.
        let camera = scene.camera.position();
        let mut by_camera: Vec<(f64, usize)> = candidates
            .iter()
            .map(|&c| ((scene.objects[c].center_point() - camera).norm(), c))
            .collect();
        by_camera.sort_by(|a, b| a.0.total_cmp(&b.0));
        if clear(by_camera[0].0, by_camera[1].0) {
            let q = format!(
                "Which is closest to the camera: {}?",
                list(candidates).replace(" and ", " or ")
            );
            assert_eq!(
                run(&scene, &q),
                FinalValue::Choice {
                    value: name(by_camera[0].1)
                },
                "{q}"
            );
            checked[1] += 1;
        }
        // Ordering by height, tallest first.
        let mut by_height: Vec<(f64, usize)> = candidates
            .iter()
            .map(|&c| (scene.objects[c].top() - scene.objects[c].bottom(), c))
            .collect();
        by_height.sort_by(|a, b| b.0.total_cmp(&a.0));
        if by_height.windows(2).all(|w| clear(w[0].0, w[1].0)) {
            let q = format!(
                "Order {} by height, from tallest to shortest.",
                list(candidates)
            );
            let want: Vec<String> = by_height.iter().map(|(_, i)| name(*i)).collect();
            assert_eq!(run(&scene, &q), FinalValue::Order { value: want }, "{q}");
            checked[2] += 1;
        }
        // Fit: does the reference fit between the first two candidates?
        let gap = svlm_world::closest_surface_distance(
            &scene.objects[candidates[0]],
            &scene.objects[candidates[1]],
        );
        let width = svlm_reason::oracle::canonical_width(&scene, &scene.objects[reference]);
        if clear(gap, width) {
            let q = format!(
                "Can the {} fit between the {} and the {}?",
                name(reference),
                name(candidates[0]),
                name(candidates[1])
            );
            assert_eq!(
                run(&scene, &q),
                FinalValue::Bool { value: width < gap },
                "{q}: gap {gap}, width {width}"
            );
            checked[3] += 1;
        }
    }
    assert!(
        checked.iter().all(|&c| c >= 5),
        "checked per kind: {checked:?}"
    );
}

#[test]
fn unknown_questions_and_objects_fail_clearly() {
    let scene = scene_with(3, 9);
    let image = Path::new("x.png");
    let mut oracle = TruthOracle::new(0).with_scene(image, scene.clone());
    let mut t = Transcript::new("q", image, "rules");
    let err = answer_with_rules(
        "What colour is the floor?",
        image,
        &mut oracle,
        &PlannerOptions::default(),
        &mut t,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot plan"), "{err}");
    let err = answer_with_rules(
        "Do the dragon, the unicorn and the phoenix form an equilateral triangle?",
        image,
        &mut oracle,
        &PlannerOptions::default(),
        &mut t,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("has no length"), "{err}");
}

/// Every elementary question the planner asks is one `svlm synth` writes for the same objects, so a model trained
/// on synthesized data has seen it: by default the plain wording (the one a plain-phrased data set such as the
/// quickstart's holds), and with varied phrasing one of the templates.
#[test]
fn planner_questions_are_wordings_the_synthesizer_writes() {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;
    use svlm_reason::planner::{Elementary, plan};
    use svlm_synth::graph::{VisibilityParams, from_world};
    use svlm_synth::phrase::Phrasing;
    use svlm_synth::qa::{QaConfig, generate};
    use svlm_synth::scene::SkipCounts;

    let scene = scene_with(3, 42);
    let visibility = VisibilityParams {
        min_visible_pixels: 1,
        skip_truncated: false,
        count_stride: 1,
    };
    let graph = from_world(&scene, &svlm_world::render(&scene), &visibility);
    let names: Vec<String> = graph.objects.iter().map(|o| o.name.clone()).collect();
    assert!(names.len() >= 3, "{names:?}");
    let (a, b, c) = (&names[0], &names[1], &names[2]);
    // The same objects in reverse order: the synthesizer asks unordered pairs ("How far apart are A and B?") in
    // its object order, the planner in the question's.
    let mut reversed = graph.clone();
    reversed.objects.reverse();
    reversed.gaps.reverse();
    let kinds = [
        "distance",
        "gap",
        "width",
        "height",
        "max_dimension",
        "camera_distance",
    ];
    let synthesized = |phrasing: Phrasing, seeds: std::ops::Range<u64>| -> BTreeSet<String> {
        let cfg = QaConfig {
            qa_per_image: 100_000,
            min_length: -1.0,
            kinds: Some(kinds.iter().map(|k| k.to_string()).collect()),
            phrasing,
            qualitative_share: 0.0,
            ..QaConfig::default()
        };
        let mut questions = BTreeSet::new();
        for seed in seeds {
            for g in [&graph, &reversed] {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for qa in generate(g, &cfg, &mut rng, &mut SkipCounts::new()) {
                    questions.insert(qa.question);
                }
            }
        }
        questions
    };
    let composites = [
        format!("Do the {a}, the {b} and the {c} form roughly an equilateral triangle?"),
        format!("Which is closest to the camera: the {a}, the {b} or the {c}?"),
        format!("Which of the {b} and the {c} is farthest from the {a}?"),
        format!("Order the {a}, the {b} and the {c} by height, from tallest to shortest."),
        format!("Sort the {a}, the {b} and the {c} by width"),
        format!("Rank the {a}, the {b} and the {c} by size"),
        format!("Can the {a} fit between the {b} and the {c}?"),
    ];
    let elementary: Vec<Elementary> = composites
        .iter()
        .flat_map(|q| plan(q).unwrap_or_else(|e| panic!("{e}")).questions)
        .collect();
    let covered: BTreeSet<&str> = elementary
        .iter()
        .map(|e| match e {
            Elementary::Distance { .. } => "distance",
            Elementary::Gap { .. } => "gap",
            Elementary::Width { .. } => "width",
            Elementary::Height { .. } => "height",
            Elementary::Size { .. } => "max_dimension",
            Elementary::CameraDistance { .. } => "camera_distance",
        })
        .collect();
    assert_eq!(covered.len(), kinds.len(), "{covered:?}");

    let plain = synthesized(Phrasing::Plain, 0..1);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for e in &elementary {
        let q = e.question(PlannerOptions::default().phrasing, &mut rng);
        assert!(plain.contains(&q), "{q:?} is not among {plain:#?}");
    }
    let varied = synthesized(Phrasing::Varied, 0..40);
    let mut asked = BTreeSet::new();
    for seed in 0..10 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for e in &elementary {
            let q = e.question(Phrasing::Varied, &mut rng);
            assert!(varied.contains(&q), "{q:?} is not a synthesized wording");
            asked.insert(q);
        }
    }
    // Varied phrasing does draw other wordings than the plain ones.
    assert!(!asked.is_subset(&plain), "{asked:#?}");
}
