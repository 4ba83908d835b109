use std::fs;
use std::path::Path;

use svlm_world::npy::write_npy_f32;
use svlm_world::{
    FolderReader, FrameError, SceneConfig, generate_scene, list_frames, read_frame, render,
    write_folder_intrinsics, write_frame,
};

fn small_config() -> SceneConfig {
    SceneConfig {
        width: 96,
        height: 72,
        ..SceneConfig::default()
    }
}

fn write_scene(dir: &Path, stem: &str, seed: u64) -> (svlm_world::Scene, svlm_world::Rendered) {
    let scene = generate_scene(seed, &small_config());
    let rendered = render(&scene);
    write_frame(dir, stem, &rendered, &scene).unwrap();
    (scene, rendered)
}

#[test]
fn frames_round_trip_with_exact_ids_and_millimetre_depth() {
    let dir = tempfile::tempdir().unwrap();
    let (scene, rendered) = write_scene(dir.path(), "scene_000", 3);
    let (scene2, _) = write_scene(dir.path(), "scene_001", 4);
    assert_eq!(
        list_frames(dir.path()).unwrap(),
        vec!["scene_000", "scene_001"]
    );

    let frame = read_frame(dir.path(), "scene_000").unwrap();
    assert_eq!(frame.intrinsics, scene.camera.intrinsics);
    assert_eq!(frame.rgb, rendered.rgb);
    assert_eq!(frame.instances.as_ref().unwrap(), &rendered.instances);
    for (read, written) in frame.depth.data.iter().zip(&rendered.depth.data) {
        if *written > 0.0 && *written <= svlm_world::MAX_PNG_DEPTH_M {
            assert!(
                (read - written).abs() <= 0.0005 + 1e-6,
                "{read} vs {written}"
            );
        } else {
            assert_eq!(*read, 0.0);
        }
    }
    assert_eq!(
        frame.invalid_depth,
        frame.depth.data.iter().filter(|z| **z <= 0.0).count()
    );
    assert_eq!(frame.objects.len(), scene.objects.len());
    for (read, truth) in frame.objects.iter().zip(&scene.objects) {
        assert_eq!(read.id, truth.id);
        assert_eq!(read.name, truth.name);
        assert_eq!(
            read.truth.as_ref().unwrap(),
            truth,
            "exact truth survives JSON"
        );
    }
    let pose = frame.world_from_camera.unwrap();
    assert!(
        (pose.to_homogeneous() - scene.camera.world_from_camera.to_homogeneous())
            .abs()
            .max()
            < 1e-12
    );

    // Per-frame intrinsics override the folder's.
    let second = read_frame(dir.path(), "scene_001").unwrap();
    assert_eq!(second.intrinsics, scene2.camera.intrinsics);
}

#[test]
fn folder_intrinsics_are_used_when_equal_and_no_override_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let scene = generate_scene(8, &small_config());
    write_folder_intrinsics(dir.path(), &scene.camera.intrinsics).unwrap();
    write_frame(dir.path(), "a", &render(&scene), &scene).unwrap();
    assert!(!dir.path().join("a.intrinsics.json").exists());
    assert_eq!(
        read_frame(dir.path(), "a").unwrap().intrinsics,
        scene.camera.intrinsics
    );
}

fn expect_error_naming(err: FrameError, file: &str) {
    let text = err.to_string();
    assert!(text.contains(file), "error {text:?} does not name {file}");
}

#[test]
fn missing_intrinsics_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_scene(dir.path(), "f", 1);
    fs::remove_file(dir.path().join("f.intrinsics.json")).unwrap();
    let err = read_frame(dir.path(), "f").unwrap_err();
    assert!(matches!(err, FrameError::Missing { .. }));
    expect_error_naming(err, "intrinsics.json");
}

#[test]
fn size_mismatch_names_the_offending_file() {
    let dir = tempfile::tempdir().unwrap();
    write_scene(dir.path(), "f", 1);
    write_scene(dir.path(), "g", 2);
    // The depth of a frame replaced by a smaller one.
    let small =
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(10, 10, image::Luma([1000]));
    small.save(dir.path().join("f.depth.png")).unwrap();
    let err = read_frame(dir.path(), "f").unwrap_err();
    assert!(matches!(err, FrameError::SizeMismatch { .. }), "{err}");
    expect_error_naming(err, "f.depth.png");
    // Instances of the wrong size.
    let small_ids =
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(5, 7, image::Luma([1]));
    small_ids.save(dir.path().join("g.instances.png")).unwrap();
    expect_error_naming(read_frame(dir.path(), "g").unwrap_err(), "g.instances.png");
}

#[test]
fn corrupt_png_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_scene(dir.path(), "f", 1);
    let path = dir.path().join("f.png");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = read_frame(dir.path(), "f").unwrap_err();
    assert!(matches!(err, FrameError::Image { .. }), "{err}");
    expect_error_naming(err, "f.png");
    // An 8-bit depth PNG is refused (depth must be 16-bit millimetres).
    write_scene(dir.path(), "h", 2);
    let k = read_frame(dir.path(), "h").unwrap().intrinsics;
    image::GrayImage::new(k.width, k.height)
        .save(dir.path().join("h.depth.png"))
        .unwrap();
    expect_error_naming(read_frame(dir.path(), "h").unwrap_err(), "h.depth.png");
}

/// Replaces a frame's depth PNG by an `.npy` with the given values.
fn with_npy_depth(dir: &Path, stem: &str, values: impl Fn(usize, f32) -> f32) -> Vec<f32> {
    let frame = read_frame(dir, stem).unwrap();
    let _ = fs::remove_file(dir.join(format!("{stem}.depth.png")));
    let data: Vec<f32> = frame
        .depth
        .data
        .iter()
        .enumerate()
        .map(|(i, z)| values(i, *z))
        .collect();
    write_npy_f32(
        &dir.join(format!("{stem}.depth.npy")),
        frame.depth.height as usize,
        frame.depth.width as usize,
        &data,
    )
    .unwrap();
    data
}

#[test]
fn npy_depth_is_read_with_nan_counted_and_all_invalid_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_scene(dir.path(), "f", 1);
    let data = with_npy_depth(dir.path(), "f", |i, z| {
        if i % 7 == 0 { f32::NAN } else { z + 0.0001 }
    });
    let frame = read_frame(dir.path(), "f").unwrap();
    assert_eq!(frame.depth.data.len(), data.len());
    for (a, b) in frame.depth.data.iter().zip(&data) {
        assert!(a == b || (a.is_nan() && b.is_nan()));
    }
    let expected_invalid = data
        .iter()
        .filter(|z| !(z.is_finite() && **z > 0.0))
        .count();
    assert_eq!(frame.invalid_depth, expected_invalid);
    assert!(expected_invalid >= data.len() / 7);

    // All-NaN depth carries nothing: an error naming the file.
    with_npy_depth(dir.path(), "f", |_, _| f32::NAN);
    let err = read_frame(dir.path(), "f").unwrap_err();
    expect_error_naming(err, "f.depth.npy");
    // A truncated npy.
    let path = dir.path().join("f.depth.npy");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    expect_error_naming(read_frame(dir.path(), "f").unwrap_err(), "f.depth.npy");
}

#[test]
fn float_tiff_depth_is_read() {
    let dir = tempfile::tempdir().unwrap();
    write_scene(dir.path(), "f", 1);
    let frame = read_frame(dir.path(), "f").unwrap();
    fs::remove_file(dir.path().join("f.depth.png")).unwrap();
    let data: Vec<f32> = frame.depth.data.iter().map(|z| z * 1.5).collect();
    let file = fs::File::create(dir.path().join("f.depth.tiff")).unwrap();
    let mut encoder = tiff::encoder::TiffEncoder::new(file).unwrap();
    encoder
        .write_image::<tiff::encoder::colortype::Gray32Float>(
            frame.depth.width,
            frame.depth.height,
            &data,
        )
        .unwrap();
    let read = read_frame(dir.path(), "f").unwrap();
    assert_eq!(read.depth.data, data);
    // A colour TIFF is refused with the file named.
    let file = fs::File::create(dir.path().join("f.depth.tiff")).unwrap();
    let rgb = vec![0u8; (frame.depth.width * frame.depth.height * 3) as usize];
    tiff::encoder::TiffEncoder::new(file)
        .unwrap()
        .write_image::<tiff::encoder::colortype::RGB8>(frame.depth.width, frame.depth.height, &rgb)
        .unwrap();
    expect_error_naming(read_frame(dir.path(), "f").unwrap_err(), "f.depth.tiff");
}

#[test]
fn missing_depth_and_bad_objects_json_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_scene(dir.path(), "f", 1);
    fs::remove_file(dir.path().join("f.depth.png")).unwrap();
    expect_error_naming(read_frame(dir.path(), "f").unwrap_err(), "f.depth.png");
    write_scene(dir.path(), "g", 1);
    fs::write(
        dir.path().join("g.objects.json"),
        r#"{"objects": [{"id": 1}]}"#,
    )
    .unwrap();
    expect_error_naming(read_frame(dir.path(), "g").unwrap_err(), "g.objects.json");
    fs::write(dir.path().join("g.objects.json"), "{not json").unwrap();
    expect_error_naming(read_frame(dir.path(), "g").unwrap_err(), "g.objects.json");
    // A minimal objects.json (names only) is fine.
    fs::write(
        dir.path().join("g.objects.json"),
        r#"{"objects": [{"id": 1, "name": "mug"}]}"#,
    )
    .unwrap();
    let frame = read_frame(dir.path(), "g").unwrap();
    assert_eq!(frame.objects[0].name, "mug");
    assert!(frame.objects[0].truth.is_none());
    fs::write(
        dir.path().join("intrinsics.json"),
        r#"{"fx": -1, "fy": 1, "cx": 0, "cy": 0, "width": 2, "height": 2}"#,
    )
    .unwrap();
    expect_error_naming(
        FolderReader::open(dir.path()).unwrap_err(),
        "intrinsics.json",
    );
}

#[test]
fn coco_annotations_supply_objects_and_masks() {
    let dir = tempfile::tempdir().unwrap();
    write_scene(dir.path(), "f", 1);
    fs::remove_file(dir.path().join("f.instances.png")).unwrap();
    fs::remove_file(dir.path().join("f.objects.json")).unwrap();
    let frame = read_frame(dir.path(), "f").unwrap();
    let (w, h) = (frame.intrinsics.width, frame.intrinsics.height);
    // One mask as compressed RLE covering column 0 fully, one box-only annotation.
    let counts = svlm_world::coco::encode_rle_string(&[0, h, w * h - h]);
    let text = serde_json::json!({
        "images": [{"id": 1, "file_name": "f.png", "width": w, "height": h}],
        "categories": [{"id": 3, "name": "mug"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "segmentation": {"counts": counts, "size": [h, w]}},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [5.0, 5.0, 10.0, 8.0]}
        ]
    });
    fs::write(dir.path().join("annotations.json"), text.to_string()).unwrap();
    let frame = read_frame(dir.path(), "f").unwrap();
    assert_eq!(frame.objects.len(), 2);
    assert_eq!(frame.objects[1].bbox, Some([5.0, 5.0, 10.0, 8.0]));
    let ids = frame.instances.unwrap();
    for v in 0..h as usize {
        for u in 0..w as usize {
            assert_eq!(ids[v * w as usize + u], u16::from(u == 0));
        }
    }
    // A COCO image of another size is refused naming annotations.json.
    let text = text
        .to_string()
        .replace(&format!("\"width\":{w}"), "\"width\":3");
    fs::write(dir.path().join("annotations.json"), text).unwrap();
    expect_error_naming(read_frame(dir.path(), "f").unwrap_err(), "annotations.json");
}

#[test]
fn scene_folder_is_written_in_parallel_and_reads_back() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let count = AtomicUsize::new(0);
    let summary = svlm_world::write_scene_folder(dir.path(), 5, 0..6, &small_config(), || {
        count.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!((summary.frames, count.load(Ordering::Relaxed)), (6, 6));
    let stems = list_frames(dir.path()).unwrap();
    assert_eq!(
        stems,
        (0..6).map(svlm_world::scene_stem).collect::<Vec<_>>()
    );
    let reader = FolderReader::open(dir.path()).unwrap();
    let objects: usize = stems
        .iter()
        .map(|s| reader.read(s).unwrap().objects.len())
        .sum();
    assert_eq!(objects, summary.objects);
    // The same seeds give the same files.
    let again = tempfile::tempdir().unwrap();
    svlm_world::write_scene_folder(again.path(), 5, 0..6, &small_config(), || {}).unwrap();
    for stem in &stems {
        for suffix in [".png", ".depth.png", ".instances.png", ".objects.json"] {
            let a = fs::read(dir.path().join(format!("{stem}{suffix}"))).unwrap();
            let b = fs::read(again.path().join(format!("{stem}{suffix}"))).unwrap();
            assert_eq!(a, b, "{stem}{suffix}");
        }
    }
}
