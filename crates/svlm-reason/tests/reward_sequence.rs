//! Reward from depth on a procedural approach sequence written as an RGB-D folder.

use svlm_reason::{RewardOptions, RewardSource, annotate, write_report};
use svlm_world::{
    SequenceConfig, approach_sequence, approach_target, frame_stem, render, write_frame,
};

#[test]
fn geometry_reward_is_strictly_monotonic_on_an_approach() {
    // Sequences where the gripper or the target is (nearly) hidden in some frame cannot be measured there;
    // they are chosen out by the renderer's own masks, not by the code under test.
    let mut checked = 0;
    for seed in 0..12u64 {
        if check_sequence(seed) {
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} fully visible sequences");
}

fn check_sequence(seed: u64) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SequenceConfig::default();
    (config.scene.width, config.scene.height) = (512, 384);
    // Near contact the depth estimate saturates (measured from visible surfaces only: ~1-3 cm when the touching
    // faces are hidden), so these sequences stop 4-6 cm short of contact.
    config.end_gap = [0.04, 0.06];
    let frames = approach_sequence(seed, 8, &config).unwrap();
    let target_id = approach_target(&frames).unwrap();
    for (i, scene) in frames.iter().enumerate() {
        let rendered = render(scene);
        let gripper_id = scene.objects.iter().find(|o| o.is_gripper).unwrap().id;
        let pixels = |id: u16| rendered.instances.iter().filter(|&&p| p == id).count();
        if pixels(gripper_id) < 150 || pixels(target_id) < 150 {
            return false;
        }
        write_frame(dir.path(), &frame_stem(i), &rendered, scene).unwrap();
    }
    let target = frames[0].object(target_id).unwrap().name.clone();
    let task = format!("distance between the gripper and the {target}");
    let report = annotate(dir.path(), &task, &RewardOptions::default(), None).unwrap();
    assert_eq!(report.n_frames, 8);
    assert_eq!(report.n_failed, 0, "seed {seed}: {:?}", report.failed);
    assert_eq!(
        report.spearman_rho,
        Some(-1.0),
        "seed {seed}: {:?}",
        report.frames
    );
    assert!(report.strictly_decreasing);
    let first = report.frames.first().unwrap();
    let last = report.frames.last().unwrap();
    assert_eq!(first.progress, 0.0);
    assert!(last.progress > 0.7, "{last:?}");
    assert!(last.reward > first.reward);
    // Estimated gaps follow the exact ones; only visible surfaces are measured, so the closest points can be
    // hidden ones (a few centimetres).
    for (f, scene) in report.frames.iter().zip(&frames) {
        let gripper = scene.objects.iter().find(|o| o.is_gripper).unwrap();
        let exact = svlm_world::closest_surface_distance(gripper, scene.object(target_id).unwrap());
        assert!(
            (f.distance_m - exact).abs() < 0.05 + 0.1 * exact,
            "seed {seed} frame {}: {} vs exact {exact}",
            f.frame,
            f.distance_m
        );
    }

    let out = tempfile::tempdir().unwrap();
    let files = write_report(&report, out.path()).unwrap();
    let back: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
    assert_eq!(back["spearman_rho"], -1.0);
    assert_eq!(back["frames"].as_array().unwrap().len(), 8);
    assert_eq!(back["frames"][0]["source"], "geometry");
    assert!(back["frames"][3]["distance_m"].as_f64().unwrap() > 0.0);
    let png = image::open(&files.plot).unwrap();
    assert!(png.width() > 100);
    true
}

#[test]
fn missing_object_frames_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let frames = approach_sequence(3, 3, &SequenceConfig::default()).unwrap();
    for (i, scene) in frames.iter().enumerate() {
        write_frame(dir.path(), &frame_stem(i), &render(scene), scene).unwrap();
    }
    let report = annotate(
        dir.path(),
        "distance between the gripper and the purple unicorn",
        &RewardOptions::default(),
        None,
    )
    .unwrap();
    assert_eq!(report.n_valid, 0);
    assert_eq!(report.n_failed, 3);
    assert!(
        report.failed[0].reason.contains("purple unicorn"),
        "{}",
        report.failed[0].reason
    );
    assert_eq!(report.spearman_rho, None);

    let vlm_without_answerer = annotate(
        dir.path(),
        "distance between the gripper and the can",
        &RewardOptions {
            source: RewardSource::Vlm,
            ..RewardOptions::default()
        },
        None,
    );
    assert!(vlm_without_answerer.is_err());
}

#[test]
fn vlm_source_reads_answers_through_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    let frames = approach_sequence(11, 6, &SequenceConfig::default()).unwrap();
    let target_id = approach_target(&frames).unwrap();
    for (i, scene) in frames.iter().enumerate() {
        write_frame(dir.path(), &frame_stem(i), &render(scene), scene).unwrap();
    }
    let target = frames[0].object(target_id).unwrap().name.clone();
    let mut oracle = svlm_reason::oracle::oracle_for_folder(dir.path(), 0).unwrap();
    let options = RewardOptions {
        source: RewardSource::Vlm,
        batch_size: 4,
        ..RewardOptions::default()
    };
    let task = format!("distance between the gripper and the {target}");
    let report = annotate(dir.path(), &task, &options, Some(&mut oracle)).unwrap();
    assert_eq!(report.n_valid, 6, "{:?}", report.failed);
    assert_eq!(oracle.asked, 6);
    // "What is the gap between A and B?" is the closest-surface distance, written with two significant digits.
    for (f, scene) in report.frames.iter().zip(&frames) {
        let gripper = scene.objects.iter().find(|o| o.is_gripper).unwrap();
        let exact = svlm_world::closest_surface_distance(gripper, scene.object(target_id).unwrap());
        assert!(
            (f.distance_m - exact).abs() <= 0.05 * exact + 0.0005,
            "{}: {} vs {exact}",
            f.frame,
            f.distance_m
        );
        assert!(f.answer.is_some());
        assert_eq!(f.source, RewardSource::Vlm);
    }
    assert!(
        report.spearman_rho.unwrap() < -0.9,
        "{:?}",
        report.spearman_rho
    );
}
