//! `svlm synth --images` end to end through the binary, with the tiny random-weight Depth Anything V2, Depth Pro and
//! OWLv2 of svlm-perception's parity fixtures: every photo is either synthesized (records that name the models) or listed
//! as a bad item with its reason. The numbers mean nothing (random weights); the wiring is what is tested.
//!
//! Run alone with `cargo test -p svlm-cli --test synth_images`.

use std::path::{Path, PathBuf};

mod common;
use common::svlm;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../svlm-perception/tests/fixtures")
}

#[test]
fn photos_go_through_depth_detection_and_synthesis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).expect("mkdir");
    std::fs::copy(fixtures().join("chelsea_small.png"), photos.join("cat.png")).expect("copy");
    std::fs::copy(
        fixtures().join("middlebury/motorcycle.png"),
        photos.join("motorcycle.png"),
    )
    .expect("copy");
    std::fs::write(photos.join("broken.jpg"), b"not a jpeg").expect("write");
    let out = tmp.path().join("out");
    let depth = fixtures().join("tiny-depth-anything");
    let detector = fixtures().join("owl/tiny-owlv2");
    let run = svlm(&[
        "synth",
        "--images",
        photos.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--depth-model",
        depth.to_str().expect("utf8"),
        "--detector",
        detector.to_str().expect("utf8"),
        "--vocab",
        "a cat,a motorcycle,a chair",
        "--min-score",
        "0",
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest.json"),
    )
    .expect("json");
    let images = manifest["totals"]["images"].as_u64().expect("images");
    let text = std::fs::read_to_string(out.join("shard-00000-of-00001.manifest.json"))
        .expect("shard manifest");
    let shard: serde_json::Value = serde_json::from_str(&text).expect("json");
    let bad = shard["bad_items"].as_array().expect("bad_items");
    // With random weights the detected objects mostly fail the visibility checks; a photo that yields no question
    // is counted, not lost.
    let without_questions = shard["skips"]["image_without_questions"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        (images + without_questions) as usize + bad.len(),
        3,
        "every photo is written, counted or listed: {text}"
    );
    assert_eq!(bad.len(), 1, "only the corrupt file is bad: {text}");
    let broken = bad
        .iter()
        .find(|b| {
            b["item"]
                .as_str()
                .is_some_and(|i| i.ends_with("broken.jpg"))
        })
        .expect("the corrupt photo is listed");
    assert_eq!(broken["reason"], "unreadable");
    assert_eq!(shard["config"]["input"]["source"], "photos");
    assert!(
        shard["config"]["input"]["detector"]["vocabulary"]
            .as_array()
            .is_some_and(|v| v.len() == 3)
    );
    let records = std::fs::read_to_string(out.join("shard-00000-of-00001.jsonl")).expect("shard");
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("record");
        assert_eq!(r["provenance"]["source"], "photo");
        assert!(r["provenance"]["depth"]["model"].is_string());
        assert!(r["provenance"]["detector"]["detector"].is_string());
    }
}

#[test]
fn depth_pro_is_picked_by_its_config_and_gives_the_intrinsics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).expect("mkdir");
    std::fs::copy(fixtures().join("chelsea_small.png"), photos.join("cat.png")).expect("copy");
    std::fs::write(
        photos.join("cat.objects.json"),
        r#"{"objects": [{"id": 1, "name": "cat", "bbox": [10, 8, 50, 40]},
                        {"id": 2, "name": "sofa", "bbox": [62, 30, 30, 30]}]}"#,
    )
    .expect("write");
    let out = tmp.path().join("out");
    let depth = fixtures().join("tiny-depth-pro");
    let run = svlm(&[
        "synth",
        "--images",
        photos.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--depth-model",
        depth.to_str().expect("utf8"),
        "--boxes-dir",
        photos.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.join("shard-00000-of-00001.manifest.json"))
        .expect("shard manifest");
    let shard: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        shard["config"]["input"]["depth"]["model_type"], "depth_pro",
        "{text}"
    );
    assert_eq!(
        shard["bad_items"].as_array().map(Vec::len),
        Some(0),
        "{text}"
    );
    let records = std::fs::read_to_string(out.join("shard-00000-of-00001.jsonl")).expect("shard");
    assert!(
        !records.trim().is_empty(),
        "the photo gives questions: {text}"
    );
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("record");
        let p = &r["provenance"];
        assert_eq!(p["intrinsics"]["source"]["kind"], "predicted_fov", "{p}");
        assert_eq!(
            p["intrinsics"]["source"]["hfov_deg"],
            p["predicted_hfov_deg"]
        );
        assert!(
            p["depth_focal_px"]
                .as_f64()
                .is_some_and(|f| (f - p["intrinsics"]["fx"].as_f64().unwrap_or(0.0)).abs() < 1e-3),
            "{p}"
        );
    }
}

#[test]
fn images_need_a_depth_source_and_a_box_source() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixtures().join("chelsea_small.png"),
        tmp.path().join("cat.png"),
    )
    .expect("copy");
    let dir = tmp.path().to_str().expect("utf8");
    let out = tmp.path().join("out");
    // Only one of the two sources given: the error names the missing one.
    for (given, missing) in [
        ("--boxes-dir", "--depth-model"),
        ("--depth-dir", "--detector"),
    ] {
        let run = svlm(&[
            "synth",
            "--images",
            dir,
            "--out",
            out.to_str().expect("utf8"),
            given,
            dir,
        ]);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(missing), "{stderr}");
    }
}

/// `--segmenter` takes a SAM or a SAM 2 folder alike (its `model_type` decides) and names it in the shard config.
#[test]
fn the_segmenter_flag_loads_sam_and_sam2_folders() {
    for (model, family) in [("sam/tiny-sam", "SAM "), ("sam2/tiny-sam2", "SAM 2 ")] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let photos = tmp.path().join("photos");
        std::fs::create_dir_all(&photos).expect("mkdir");
        std::fs::copy(
            fixtures().join("middlebury/motorcycle.png"),
            photos.join("motorcycle.png"),
        )
        .expect("copy");
        let out = tmp.path().join("out");
        let path = |p: PathBuf| p.to_str().expect("utf8").to_string();
        let run = svlm(&[
            "synth",
            "--images",
            &path(photos),
            "--out",
            &path(out.clone()),
            "--depth-model",
            &path(fixtures().join("tiny-depth-anything")),
            "--detector",
            &path(fixtures().join("owl/tiny-owlv2")),
            "--vocab",
            "a motorcycle,a chair",
            "--min-score",
            "0",
            "--segmenter",
            &path(fixtures().join(model)),
            "--quiet",
        ]);
        assert!(
            run.status.success(),
            "{model}: {}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(out.join("shard-00000-of-00001.manifest.json"))
            .expect("shard manifest");
        let shard: serde_json::Value = serde_json::from_str(&text).expect("json");
        let named = shard["config"]["input"]["segmenter"]["segmenter"]
            .as_str()
            .unwrap_or_default();
        assert!(named.starts_with(family), "{model}: {text}");
        assert!(
            shard["bad_items"].as_array().is_some_and(Vec::is_empty),
            "{model}: {text}"
        );
    }
}
