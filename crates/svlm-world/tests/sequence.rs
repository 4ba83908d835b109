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
fn sequences_are_deterministic_and_the_gripper_is_visible() {
    let config = SequenceConfig::default();
    let a = approach_sequence(3, 5, &config).unwrap();
    let b = approach_sequence(3, 5, &config).unwrap();
    assert_eq!(a, b);
    for frame in &a {
        let rendered = render(frame);
        let id = frame.objects.last().unwrap().id;
        assert!(rendered.instances.iter().filter(|&&i| i == id).count() > 20);
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
