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
