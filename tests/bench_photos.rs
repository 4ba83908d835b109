//! `svlm bench photos` through the binary with the tiny random-weight fixtures of svlm-perception (`--tiny`): the
//! table has a row per stage and the end-to-end row, the JSON parses, the stage times add up to the end-to-end
//! time, and the photos (true depth, boxes and masks substituted for the models') give questions.
//!
//! Run alone with `cargo test -p svlm-cli --test bench_photos`.

use std::path::Path;

mod common;
use common::{svlm, text};

fn fixtures() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../svlm-perception/tests/fixtures")
        .display()
        .to_string()
}

#[test]
fn tiny_bench_reports_every_stage() {
    let fixtures = fixtures();
    let run = svlm(&[
        "bench",
        "photos",
        "--tiny",
        "--fixtures",
        &fixtures,
        "--photos",
        "3",
        "--batch-size",
        "2",
        "--size",
        "160x120",
        "--segmenter",
        "sam2-hiera-tiny",
        "--quiet",
        "--json",
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    for row in [
        "| depth (depth-anything-v2-small)",
        "| detection (owlvit-base32, 8 queries)",
        "| segmentation (sam2-hiera-tiny)",
        "| lifting + geometry + QA + writing",
        "| end to end",
    ] {
        assert!(stdout.contains(row), "no row {row:?}:\n{stdout}");
    }
    let json_start = stdout.find("\n{").expect("a JSON report after the table");
    let report: serde_json::Value =
        serde_json::from_str(&stdout[json_start..]).expect("JSON report");
    assert_eq!(report["photos"], 3);
    assert_eq!(report["weights"], "tiny fixtures");
    let stages = report["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 4);
    let total = report["end_to_end"]["seconds"].as_f64().expect("seconds");
    let sum: f64 = stages
        .iter()
        .map(|s| s["seconds"].as_f64().expect("seconds"))
        .sum();
    assert!(
        total > 0.0 && (sum - total).abs() < 1e-6 * total.max(1.0),
        "{sum} vs {total}"
    );
    for s in stages.iter().take(3) {
        assert!(
            s["seconds"].as_f64().expect("seconds") > 0.0,
            "a model stage took no time: {s}"
        );
    }
    assert!(report["true_boxes_per_photo"].as_f64().expect("boxes") >= 1.0);
    assert_eq!(report["bad_items"], 0, "{stdout}");
    assert_eq!(report["images_with_qa"], 3, "{stdout}");
    assert!(report["qa"].as_u64().expect("qa") > 0);
}

#[test]
fn unknown_architectures_are_named() {
    let run = svlm(&["bench", "photos", "--tiny", "--depth", "midas"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("--depth \"midas\"")
            && stderr.contains("depth-anything-v2-small, depth-pro"),
        "{stderr}"
    );
}
