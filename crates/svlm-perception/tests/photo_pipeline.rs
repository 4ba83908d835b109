//! The photo path (`PhotoSource`: photo file -> depth -> intrinsics -> named boxes -> scene graph) against the RGB-D
//! path (`RgbdSource` on a folder) on a real image: Middlebury 2014 Motorcycle from scikit-image, with the true depth
//! (from the ground-truth disparity and calibration) substituted for a depth model's. Fixture:
//! `scripts/make_middlebury_photo_fixture.py`. Object pixels come from the boxes' depth, from masks given as an
//! instance PNG, or from a (tiny random-weight) SAM or SAM 2 segmenter; each goes through the same graph builder.

use std::path::{Path, PathBuf};

use svlm_perception::intrinsics::CameraSpec;
use svlm_perception::{
    BoxSegmenter, GivenBoxes, GivenDepth, GivenMasks, IntrinsicsOptions, PhotoSettings,
    PhotoSource, Sam, SamMasks,
};
use svlm_synth::pipeline::synthesize_item;
use svlm_synth::qa::QaConfig;
use svlm_synth::{EstimateParams, ItemSource, RgbdSource};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/middlebury")
}

fn folder_camera(dir: &Path) -> CameraSpec {
    let k: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("intrinsics.json")).expect("intrinsics.json"),
    )
    .expect("json");
    let f = |key: &str| k[key].as_f64().expect("number");
    CameraSpec::Pixels {
        fx: f("fx"),
        fy: Some(f("fy")),
        cx: Some(f("cx")),
        cy: Some(f("cy")),
        width: Some(f("width") as u32),
        height: Some(f("height") as u32),
    }
}

fn photo_source(dir: &Path, photos: Vec<PathBuf>) -> PhotoSource {
    PhotoSource::new(
        photos,
        Box::new(GivenDepth {
            dir: dir.to_path_buf(),
        }),
        Box::new(GivenBoxes {
            dir: dir.to_path_buf(),
        }),
        PhotoSettings {
            intrinsics: IntrinsicsOptions {
                folder: Some(folder_camera(dir)),
                use_exif: false,
                ..IntrinsicsOptions::default()
            },
            estimate: EstimateParams::default(),
            box_depth_band: 0.15,
            min_score: 0.0,
        },
    )
}

#[test]
fn photo_path_with_true_depth_gives_the_rgbd_paths_qa_on_middlebury() {
    let dir = fixture();
    let rgbd = RgbdSource::open(&dir, EstimateParams::default()).expect("RGB-D folder");
    assert_eq!(rgbd.stems, vec!["motorcycle"]);
    let from_folder = rgbd.item(0).expect("RGB-D item");

    let photos = svlm_perception::list_photos(&dir).expect("list");
    assert_eq!(
        photos,
        vec![dir.join("motorcycle.png")],
        "depth PNG is not a photo"
    );
    let source = photo_source(&dir, photos);
    let from_photo = source.item(0).expect("photo item");

    assert_eq!(from_photo.rgb, from_folder.rgb);
    let (a, b) = (&from_folder.graph, &from_photo.graph);
    assert_eq!(a.plane_found, b.plane_found);
    assert!(
        a.objects.len() >= 4,
        "the five named boxes should mostly survive: {:?}",
        a.skips
    );
    assert_eq!(
        a.objects.iter().map(|o| &o.name).collect::<Vec<_>>(),
        b.objects.iter().map(|o| &o.name).collect::<Vec<_>>()
    );
    // Debug prints every f64 exactly (shortest round trip): equal text, equal graphs.
    assert_eq!(
        format!("{a:?}"),
        format!("{b:?}"),
        "the scene graphs differ"
    );
    // Metric sanity on real geometry: both wheels stand on the floor about 2-5 m from the camera.
    for wheel in ["front wheel", "rear wheel"] {
        let o = b
            .objects
            .iter()
            .find(|o| o.name == wheel)
            .unwrap_or_else(|| panic!("{wheel} missing"));
        let distance = (o.center - b.camera).norm();
        assert!((1.5..6.0).contains(&distance), "{wheel} at {distance} m");
    }

    let qa = QaConfig::default();
    let x = synthesize_item(from_folder, 0, 7, &qa).record;
    let y = synthesize_item(from_photo, 0, 7, &qa).record;
    assert!(x.spatial.len() >= 10, "{} questions", x.spatial.len());
    assert_eq!(x.conversations, y.conversations);
    assert_eq!(x.spatial, y.spatial);

    let provenance = &y.provenance.expect("provenance");
    assert_eq!(provenance["source"], "photo");
    assert_eq!(provenance["detections"].as_array().map(Vec::len), Some(5));
    assert_eq!(provenance["intrinsics"]["source"]["kind"], "user_folder");
}

#[test]
fn bad_photos_are_named_skips_with_reasons() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let fixture = fixture();
    for name in [
        "motorcycle.png",
        "motorcycle.objects.json",
        "intrinsics.json",
    ] {
        std::fs::copy(fixture.join(name), dir.join(name)).expect("copy");
    }
    // A corrupt photo, a photo whose depth is all invalid, one without boxes.
    std::fs::write(dir.join("corrupt.png"), b"not a png").expect("write");
    std::fs::copy(fixture.join("motorcycle.png"), dir.join("zero.png")).expect("copy");
    std::fs::copy(
        fixture.join("motorcycle.objects.json"),
        dir.join("zero.objects.json"),
    )
    .expect("copy");
    let image = image::open(fixture.join("motorcycle.png")).expect("png");
    let zeros =
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::new(image.width(), image.height());
    zeros.save(dir.join("zero.depth.png")).expect("save");
    std::fs::copy(fixture.join("motorcycle.png"), dir.join("empty.png")).expect("copy");
    std::fs::copy(
        fixture.join("motorcycle.depth.png"),
        dir.join("empty.depth.png"),
    )
    .expect("copy");
    std::fs::write(dir.join("empty.objects.json"), br#"{"objects": []}"#).expect("write");
    std::fs::copy(
        fixture.join("motorcycle.depth.png"),
        dir.join("motorcycle.depth.png"),
    )
    .expect("copy");

    let photos = svlm_perception::list_photos(dir).expect("list");
    let source = photo_source(dir, photos.clone());
    let mut reasons = Vec::new();
    for (i, path) in photos.iter().enumerate() {
        match source.item(i) {
            Ok(item) => reasons.push((stem(path), "ok".to_string(), item.id)),
            Err(bad) => {
                assert!(
                    bad.item.contains(&stem(path)),
                    "{} does not name the file",
                    bad.item
                );
                reasons.push((stem(path), bad.reason, bad.detail))
            }
        }
    }
    let got: Vec<(&str, &str)> = reasons
        .iter()
        .map(|(s, r, _)| (s.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("corrupt", "unreadable"),
            ("empty", "nothing_detected"),
            ("motorcycle", "ok"),
            ("zero", "no_valid_depth"),
        ],
        "{reasons:?}"
    );
}

/// The models' batched path (`prepare`: one depth forward per processed size, one detector and one segmenter
/// forward per chunk) gives the items of one photo at a time, with the tiny random-weight Depth Anything V2, OWLv2
/// and SAM fixtures.
#[test]
fn a_prepared_chunk_gives_the_items_of_one_photo_at_a_time() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let photos = vec![
        fixtures.join("chelsea_small.png"),
        fixtures.join("middlebury/motorcycle.png"),
        fixtures.join("owl/photo.png"),
    ];
    for with_segmenter in [false, true] {
        prepared_matches_single(&fixtures, &photos, with_segmenter);
    }
}

fn prepared_matches_single(fixtures: &Path, photos: &[PathBuf], with_segmenter: bool) {
    use burn::tensor::Device;
    use svlm_perception::{DepthAnything, ModelDepth, OwlBoxes, OwlDetector};
    let source = || {
        let device = Device::flex();
        let source = PhotoSource::new(
            photos.to_vec(),
            Box::new(ModelDepth::new(
                DepthAnything::load(&fixtures.join("tiny-depth-anything"), &device)
                    .expect("depth fixture"),
            )),
            Box::new(OwlBoxes::new(
                OwlDetector::load(&fixtures.join("owl/tiny-owlv2"), &device).expect("owl fixture"),
                vec!["a cat".into(), "a motorcycle".into()],
                0.0,
                0.3,
            )),
            PhotoSettings::default(),
        );
        if with_segmenter {
            source.with_segmenter(Box::new(SamMasks::new(
                Sam::load(&fixtures.join("sam/tiny-sam"), &device).expect("SAM fixture"),
            )))
        } else {
            source
        }
    };
    let (batched, single) = (source(), source());
    batched.prepare(&[0, 1, 2]);
    let mut compared = 0;
    for i in 0..photos.len() {
        let (a, b) = (batched.item(i), single.item(i));
        match (&a, &b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.rgb, b.rgb);
                let (ga, gb) = (&a.graph, &b.graph);
                assert_eq!(
                    ga.objects.iter().map(|o| &o.name).collect::<Vec<_>>(),
                    gb.objects.iter().map(|o| &o.name).collect::<Vec<_>>(),
                    "photo {i}"
                );
                for (x, y) in ga.objects.iter().zip(&gb.objects) {
                    assert!(
                        (x.center - y.center).norm() < 1e-3,
                        "photo {i}, {}: {} vs {}",
                        x.name,
                        x.center,
                        y.center
                    );
                }
                assert_eq!(
                    a.provenance["detections"].as_array().map(Vec::len),
                    b.provenance["detections"].as_array().map(Vec::len)
                );
                compared += 1;
            }
            (Err(a), Err(b)) => assert_eq!(a.reason, b.reason, "photo {i}"),
            _ => panic!("photo {i}: batched {a:?} vs single {b:?}"),
        }
    }
    assert!(compared >= 1, "no photo gave a scene graph to compare");
}

/// A copy of the Middlebury folder in a temporary folder, with `instances` written as `motorcycle.instances.png`.
fn folder_with_instances(instances: &[u16]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = fixture();
    for name in [
        "motorcycle.png",
        "motorcycle.depth.png",
        "motorcycle.objects.json",
        "intrinsics.json",
    ] {
        std::fs::copy(dir.join(name), tmp.path().join(name)).expect("copy");
    }
    let (w, h) = image::open(dir.join("motorcycle.png"))
        .expect("png")
        .to_rgb8()
        .dimensions();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, instances.to_vec())
        .expect("size")
        .save(tmp.path().join("motorcycle.instances.png"))
        .expect("save");
    tmp
}

/// The RGB-D folder's item and the photo path's item of `dir` give equal scene graphs and equal QA.
/// `with_objects`: at least one object must survive (random-weight masks may all touch the border: truncated).
fn assert_same_qa_as_the_folder(
    dir: &Path,
    source: &PhotoSource,
    with_objects: bool,
) -> svlm_synth::Item {
    let from_folder = RgbdSource::open(dir, EstimateParams::default())
        .expect("RGB-D folder")
        .item(0)
        .expect("RGB-D item");
    let from_photo = source.item(0).expect("photo item");
    let (a, b) = (&from_folder.graph, &from_photo.graph);
    assert!(
        !with_objects || !a.objects.is_empty(),
        "no object survives: {:?}",
        a.skips
    );
    assert_eq!(a.skips, b.skips);
    assert_eq!(
        format!("{a:?}"),
        format!("{b:?}"),
        "the scene graphs differ"
    );
    let qa = QaConfig::default();
    let x = synthesize_item(from_folder, 0, 7, &qa).record;
    let y = synthesize_item(from_photo.clone(), 0, 7, &qa).record;
    assert!(!with_objects || !x.spatial.is_empty());
    assert_eq!(x.conversations, y.conversations);
    assert_eq!(x.spatial, y.spatial);
    from_photo
}

/// Object masks given as an instance PNG (ellipses inscribed in the boxes: Middlebury has no instance
/// annotation, and any masks other than the depth-in-box ones show that the masks are what the graph uses).
#[test]
fn masks_given_as_instance_pngs_give_the_rgbd_paths_qa() {
    let dir = fixture();
    let image = image::open(dir.join("motorcycle.png"))
        .expect("png")
        .to_rgb8();
    let (w, h) = image.dimensions();
    let boxes = GivenBoxes { dir: dir.clone() };
    let named =
        svlm_perception::ObjectDetector::detect(&boxes, &dir.join("motorcycle.png"), &image)
            .expect("boxes");
    let mut ids = vec![0u16; (w * h) as usize];
    for (k, b) in named.iter().enumerate() {
        let [x0, y0, x1, y1] = b.xyxy;
        let (cx, cy, rx, ry) = (
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0,
            (x1 - x0) / 2.0,
            (y1 - y0) / 2.0,
        );
        for v in 0..h as usize {
            for u in 0..w as usize {
                let (dx, dy) = ((u as f64 + 0.5 - cx) / rx, (v as f64 + 0.5 - cy) / ry);
                if dx * dx + dy * dy <= 1.0 && ids[v * w as usize + u] == 0 {
                    ids[v * w as usize + u] = k as u16 + 1;
                }
            }
        }
    }
    let tmp = folder_with_instances(&ids);
    let source = photo_source(tmp.path(), vec![tmp.path().join("motorcycle.png")]).with_segmenter(
        Box::new(GivenMasks {
            dir: tmp.path().to_path_buf(),
        }),
    );
    let (frame, _) = source
        .frame(&tmp.path().join("motorcycle.png"))
        .expect("frame");
    assert_eq!(frame.instances.as_deref(), Some(&ids[..]));
    let item = assert_same_qa_as_the_folder(tmp.path(), &source, true);
    assert_eq!(
        item.provenance["segmenter"]["given_masks"],
        tmp.path().display().to_string()
    );

    // The masks are what the graph is built from: the depth-in-box objects differ.
    let by_depth = photo_source(&dir, vec![dir.join("motorcycle.png")])
        .item(0)
        .expect("item");
    assert_ne!(format!("{:?}", by_depth.graph), format!("{:?}", item.graph));
}

/// Masks from a (tiny random-weight) SAM or SAM 2 for the given boxes become the frame's instance image (first mask
/// wins a pixel) and give the QA of the RGB-D folder holding that instance image.
fn segmenter_masks_go_through_the_same_graph_builder(model: &str, family: &str) {
    use burn::tensor::Device;
    let dir = fixture();
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(model);
    let device = Device::flex();
    let load = || BoxSegmenter::load(&model_dir, &device).expect("segmenter fixture");
    let photo = dir.join("motorcycle.png");
    let source =
        photo_source(&dir, vec![photo.clone()]).with_segmenter(Box::new(SamMasks::new(load())));
    let (frame, provenance) = source.frame(&photo).expect("frame");
    let instances = frame.instances.expect("instances from the masks");

    let image = image::open(&photo).expect("png").to_rgb8();
    let boxes: Vec<[f64; 4]> = frame
        .objects
        .iter()
        .map(|o| {
            let [x, y, w, h] = o.bbox.expect("bbox");
            [x, y, x + w, y + h]
        })
        .collect();
    let masks = load().segment(&image, &boxes).expect("masks");
    let mut expected = vec![0u16; instances.len()];
    for (k, m) in masks.iter().enumerate() {
        for (slot, &inside) in expected.iter_mut().zip(&m.mask) {
            if inside && *slot == 0 {
                *slot = k as u16 + 1;
            }
        }
    }
    assert_eq!(instances, expected);
    assert_eq!(provenance["masks"].as_array().map(Vec::len), Some(5));
    assert!(provenance["masks"][0]["predicted_iou"].is_number());
    let described = provenance["segmenter"]["segmenter"]
        .as_str()
        .unwrap_or_default();
    assert!(described.starts_with(&format!("{family} ")), "{provenance}");

    let tmp = folder_with_instances(&instances);
    assert_same_qa_as_the_folder(tmp.path(), &source, false);
}

#[test]
fn masks_from_sam_go_through_the_same_graph_builder() {
    segmenter_masks_go_through_the_same_graph_builder("sam/tiny-sam", "SAM");
}

#[test]
fn masks_from_sam2_go_through_the_same_graph_builder() {
    segmenter_masks_go_through_the_same_graph_builder("sam2/tiny-sam2", "SAM 2");
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
