//! `extract_objects` on a ray-cast scene with known boxes: the frame, box sizes and yaws come back.

mod common;

use svlm_geometry::{ObjectParams, Vector3, extract_objects};

#[test]
fn boxes_on_a_floor_come_back_with_their_sizes() {
    let scene = common::boxes_scene(320, 240, 8);
    let geometry = extract_objects(
        &scene.depth,
        &scene.intrinsics,
        &scene.ids,
        &ObjectParams::default(),
    )
    .unwrap();
    assert!(geometry.frame.plane_found);
    assert!(
        (geometry.frame.camera_height - scene.camera_height).abs() < 0.01,
        "{}",
        geometry.frame.camera_height
    );
    assert!(geometry.skipped.is_empty(), "{:?}", geometry.skipped);
    assert_eq!(geometry.objects.len(), scene.boxes.len());
    for object in &geometry.objects {
        let truth = &scene.boxes[object.id as usize - 1];
        // Boxes come from the full-resolution points of the kept voxels: visible surfaces sampled every 2nd pixel.
        let top = object.aabb.max.z;
        assert!(
            (top - truth.size.z).abs() < 0.005,
            "object {}: top {top} vs {}",
            object.id,
            truth.size.z
        );
        let mut expected = [truth.size.x, truth.size.y];
        expected.sort_by(|a, b| b.total_cmp(a));
        let extent = object.obb.extent();
        assert!(
            (extent.x - expected[0]).abs() < 0.015 && (extent.y - expected[1]).abs() < 0.015,
            "object {}: {extent:?} vs {expected:?}",
            object.id
        );
        let yaw = object.obb.yaw_deg(&Vector3::z());
        // The OBB's x is the longer horizontal side.
        let long_side_yaw = if truth.size.x >= truth.size.y {
            truth.yaw_deg
        } else {
            truth.yaw_deg + 90.0
        };
        let expected_yaw = long_side_yaw.rem_euclid(180.0);
        let error = (yaw - expected_yaw).rem_euclid(180.0);
        assert!(
            error.min(180.0 - error) < 4.0,
            "object {}: yaw {yaw} vs {expected_yaw}",
            object.id
        );
        let c = object.centroid;
        let horizontal =
            ((c.x - truth.center_xy[0]).powi(2) + (c.y - truth.center_xy[1]).powi(2)).sqrt();
        assert!(
            horizontal < 0.15,
            "object {}: centroid {c} vs {:?}",
            object.id,
            truth.center_xy
        );
    }
}

#[test]
fn objects_without_depth_are_skipped_and_no_floor_means_fallback_frame() {
    let mut scene = common::boxes_scene(160, 120, 4);
    // Object 2 loses all its depth; the background (floor) loses its depth too.
    for (z, id) in scene.depth.data.iter_mut().zip(&scene.ids) {
        if *id == 2 {
            *z = f32::NAN;
        } else if *id == 0 {
            *z = 0.0;
        }
    }
    let params = ObjectParams {
        fallback_pitch_deg: 30.0,
        fallback_height_m: 1.6,
        ..ObjectParams::default()
    };
    let geometry = extract_objects(&scene.depth, &scene.intrinsics, &scene.ids, &params).unwrap();
    assert!(!geometry.frame.plane_found);
    assert_eq!(geometry.frame.camera_height, 1.6);
    assert!(
        geometry
            .skipped
            .contains(&(2, svlm_geometry::SkipReason::NoValidDepth)),
        "{:?}",
        geometry.skipped
    );
    assert!(geometry.objects.iter().all(|o| o.id != 2));
    // The scene camera really is pitched 30 degrees at 1.6 m, so the fallback frame still puts tops right.
    for object in &geometry.objects {
        let truth = &scene.boxes[object.id as usize - 1];
        assert!(
            (object.aabb.max.z - truth.size.z).abs() < 0.01,
            "object {}: {}",
            object.id,
            object.aabb.max.z
        );
    }
    // Mismatched instance image: a clear error, no panic.
    let error =
        extract_objects(&scene.depth, &scene.intrinsics, &scene.ids[1..], &params).unwrap_err();
    assert!(error.to_string().contains("instance image"), "{error}");
}
