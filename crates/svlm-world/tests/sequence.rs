use svlm_world::{SequenceConfig, approach_sequence, closest_surface_distance, render};

#[test]
fn gripper_gap_strictly_decreases_to_near_contact() {
    let config = SequenceConfig::default();
    for seed in 0..12 {
        let frames = approach_sequence(seed, 16, &config).unwrap();
        assert_eq!(frames.len(), 16);
        let camera = frames[0].camera;
        let gripper_id = frames[0].objects.last().unwrap().id;
        let mut target_id = None;
        let mut gaps = Vec::new();
        for frame in &frames {
            assert_eq!(frame.camera, camera, "fixed camera");
            let gripper = frame.objects.last().unwrap();
            assert!(gripper.is_gripper && gripper.name == "gripper" && gripper.id == gripper_id);
            assert_eq!(frame.objects.iter().filter(|o| o.is_gripper).count(), 1);
            // The target is the object the gripper is closest to at the end; find it on the last frame.
            let target = *target_id.get_or_insert_with(|| {
                let last = frames.last().unwrap();
                let g = last.objects.last().unwrap();
                last.objects[..last.objects.len() - 1]
                    .iter()
                    .min_by(|a, b| {
                        closest_surface_distance(g, a).total_cmp(&closest_surface_distance(g, b))
                    })
                    .unwrap()
                    .id
            });
            gaps.push(closest_surface_distance(
                gripper,
                frame.object(target).unwrap(),
            ));
            // Everything but the gripper stays put.
            assert_eq!(
                frame.objects[..frame.objects.len() - 1],
                frames[0].objects[..frames[0].objects.len() - 1]
            );
        }
        for pair in gaps.windows(2) {
            assert!(pair[1] < pair[0], "seed {seed}: gaps {gaps:?}");
        }
        assert!(
            (0.3 - 1e-6..=0.6 + 1e-6).contains(&gaps[0]),
            "seed {seed}: start gap {}",
            gaps[0]
        );
        let end = *gaps.last().unwrap();
        assert!(
            (0.005 - 1e-6..=0.02 + 1e-6).contains(&end),
            "seed {seed}: end gap {end}"
        );
    }
}

#[test]
fn sequences_are_deterministic_and_gripper_and_target_are_visible() {
    let config = SequenceConfig::default();
    let a = approach_sequence(3, 5, &config).unwrap();
    let b = approach_sequence(3, 5, &config).unwrap();
    assert_eq!(a, b);
    // Small images and few objects, where a far or hidden gripper shows only a few pixels: every frame must still
    // show both well enough to be measured from depth and masks (30 pixels, counted on a half-resolution render,
    // so the full-resolution count may fall a little short of it).
    let small = SequenceConfig {
        scene: svlm_world::SceneConfig {
            width: 160,
            height: 160,
            objects: [1, 2],
            ..SequenceConfig::default().scene
        },
        ..SequenceConfig::default()
    };
    for seed in 0..10 {
        let frames = approach_sequence(seed, 6, &small).unwrap();
        let target = svlm_world::approach_target(&frames).unwrap();
        for (f, frame) in frames.iter().enumerate() {
            let rendered = render(frame);
            let gripper = frame.objects.last().unwrap().id;
            for id in [gripper, target] {
                let pixels = rendered.instances.iter().filter(|&&i| i == id).count();
                assert!(
                    pixels >= 20,
                    "seed {seed} frame {f}: object {id} shows {pixels} pixels"
                );
            }
        }
    }
}

#[test]
fn bad_sequence_requests_are_errors() {
    let config = SequenceConfig::default();
    assert!(approach_sequence(1, 1, &config).is_err());
    let bad = SequenceConfig {
        end_gap: [0.5, 0.7],
        ..SequenceConfig::default()
    };
    assert!(
        approach_sequence(1, 5, &bad)
            .unwrap_err()
            .to_string()
            .contains("gap")
    );
}

#[test]
fn sequence_folder_records_target_and_decreasing_gaps() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let config = SequenceConfig {
        scene: svlm_world::SceneConfig {
            width: 128,
            height: 96,
            ..SequenceConfig::default().scene
        },
        ..SequenceConfig::default()
    };
    let frames = approach_sequence(4, 6, &config).unwrap();
    let written = AtomicUsize::new(0);
    let info = svlm_world::write_sequence_folder(dir.path(), 4, &frames, || {
        written.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(written.load(Ordering::Relaxed), 6);
    assert_eq!(svlm_world::list_frames(dir.path()).unwrap(), info.frames);
    assert!(info.gap_m.windows(2).all(|w| w[1] < w[0]));
    assert_eq!(info.gripper, "gripper");
    let text = std::fs::read_to_string(dir.path().join(svlm_world::SEQUENCE_INFO)).unwrap();
    let back: svlm_world::SequenceInfo = serde_json::from_str(&text).unwrap();
    assert_eq!(back, info);
    let frame = svlm_world::read_frame(dir.path(), &info.frames[5]).unwrap();
    assert!(frame.objects.iter().any(|o| o.name == info.target));
    assert!(
        !dir.path().join("frame_0000.intrinsics.json").exists(),
        "one camera, one intrinsics.json"
    );
}
