//! End to end without a model: readers -> answerers (truth-derived, garbage) -> metrics -> report files.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use svlm_answers::{NumberStyle, format_angle_degrees, format_clock, format_length};
use svlm_eval::{
    Answerer, BenchmarkFormat, EvalOptions, EvalReport, EvalSet, FnAnswerer, LoadOptions, Parsed,
    detect_format, evaluate, load_benchmark, read_predictions, read_qspatial, read_spatialrgpt,
    read_synth,
};
use svlm_synth::record::Truth;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Answers every question with text written from its truth the way synthesis writes answers.
struct TruthAnswerer {
    truths: std::collections::HashMap<String, Truth>,
    rng: ChaCha8Rng,
}

impl TruthAnswerer {
    fn new(set: &EvalSet) -> Self {
        let truths = set
            .items
            .iter()
            .map(|i| (i.question.clone(), i.truth.clone()))
            .collect();
        TruthAnswerer {
            truths,
            rng: ChaCha8Rng::seed_from_u64(5),
        }
    }
}

impl Answerer for TruthAnswerer {
    fn answer_batch(&mut self, items: &[(PathBuf, String)]) -> anyhow::Result<Vec<String>> {
        items
            .iter()
            .map(|(_, question)| {
                let truth = self
                    .truths
                    .get(question)
                    .ok_or_else(|| anyhow::anyhow!("unknown question {question}"))?;
                Ok(match truth {
                    Truth::Bool { value: true } => "Yes, it is.".to_string(),
                    Truth::Bool { value: false } => "No, it is not.".to_string(),
                    Truth::Choice { value, .. } => format!("The {value}."),
                    Truth::Length { meters } => {
                        let style = NumberStyle {
                            range_prob: 0.3,
                            words_prob: 0.3,
                            ..NumberStyle::default()
                        };
                        format!("It is {}.", format_length(*meters, &style, &mut self.rng).0)
                    }
                    Truth::Clock { hour } => format!("At {}.", format_clock(*hour)),
                    Truth::Angle { degrees } => {
                        format!("About {}.", format_angle_degrees(*degrees))
                    }
                })
            })
            .collect()
    }
}

fn all_sets() -> Vec<EvalSet> {
    vec![
        read_synth(&fixture("synth_small.jsonl"), None).expect("synth fixture"),
        read_spatialrgpt(&fixture("spatialrgpt_small.jsonl"), None).expect("spatialrgpt fixture"),
        read_qspatial(&fixture("qspatial_small.jsonl"), None, None).expect("qspatial fixture"),
    ]
}

#[test]
fn synth_reader_pairs_turns_with_truth_and_counts_skips() {
    let set = read_synth(&fixture("synth_small.jsonl"), None).expect("read");
    let ids: Vec<&str> = set.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "scene0#0", "scene0#1", "scene0#2", "scene0#3", "scene0#4", "scene3#0", "scene3#1"
        ]
    );
    assert_eq!(set.skipped.len(), 2, "{:?}", set.skipped);
    assert!(set.skipped[0].location.ends_with("synth_small.jsonl:2"));
    assert!(
        set.skipped[1]
            .reason
            .contains("2 question/answer pairs but 1 spatial truths")
    );
    let first = &set.items[0];
    assert_eq!(
        first.question,
        "Is the red cube to the left of the blue ball?"
    );
    assert_eq!(first.image, fixture("images/scene0.png"));
    assert_eq!(first.kind, "left_predicate");
    assert_eq!(set.items[2].truth, Truth::Length { meters: 1.23 });
    // The synthesised reference answers themselves score perfectly.
    for item in &set.items {
        let p = svlm_eval::Prediction::new(item, item.reference_answer.clone().unwrap_or_default());
        assert!(
            p.score.correct,
            "{} {:?} -> {:?}",
            item.id, item.reference_answer, p.score
        );
    }
    let root = Path::new("/data/elsewhere");
    let moved = read_synth(&fixture("synth_small.jsonl"), Some(root)).expect("read");
    assert_eq!(moved.items[0].image, root.join("images/scene0.png"));
}

#[test]
fn synth_reader_reports_the_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"id\":\"x\",\"image\":\"a.png\",\"conversations\":[]}\n{not json\n",
    )
    .expect("write");
    let set = read_synth(&path, None).expect("the other lines are read");
    assert!(
        set.bad[0].location.ends_with("bad.jsonl:2"),
        "{:?}",
        set.bad
    );
    // a folder of shards is read in name order
    std::fs::write(dir.path().join("bad.jsonl"), "").expect("write");
    std::fs::copy(
        fixture("synth_small.jsonl"),
        dir.path().join("shard-00001.jsonl"),
    )
    .expect("copy");
    std::fs::copy(
        fixture("synth_small.jsonl"),
        dir.path().join("shard-00000.jsonl"),
    )
    .expect("copy");
    let set = read_synth(dir.path(), None).expect("folder");
    assert_eq!(set.items.len(), 14);
    assert_eq!(set.items[0].image, dir.path().join("images/scene0.png"));
}

#[test]
fn spatialrgpt_reader_reads_both_field_styles() {
    let set = read_spatialrgpt(
        &fixture("spatialrgpt_small.jsonl"),
        Some(Path::new("/omni")),
    )
    .expect("read");
    assert_eq!(set.items.len(), 4);
    assert_eq!(set.skipped.len(), 1);
    assert!(
        set.skipped[0].reason.contains("width_data"),
        "{:?}",
        set.skipped
    );
    let behind = &set.items[0];
    assert_eq!(
        (behind.id.as_str(), behind.kind.as_str()),
        ("a1b2#0", "behind_predicate")
    );
    assert_eq!(behind.question, "Is Region [0] behind Region [1]?");
    assert_eq!(behind.truth, Truth::Bool { value: false });
    assert_eq!(
        behind.image,
        Path::new("/omni/omni3d/SUNRGBD/kv2/img_0001.jpg")
    );
    assert_eq!(
        behind.regions,
        vec![[10.0, 20.0, 110.0, 220.0], [300.5, 40.0, 420.0, 300.0]]
    );
    let left = &set.items[1];
    assert_eq!(
        left.image,
        Path::new("/omni/omni3d/Hypersim/ai_001/img_0002.jpg")
    );
    assert_eq!(
        left.truth,
        Truth::Choice {
            value: "Region [1]".into(),
            options: vec!["Region [0]".into(), "Region [1]".into()]
        }
    );
    assert_eq!(left.regions.len(), 2);
    assert!(
        matches!(set.items[2].truth, Truth::Length { meters } if (meters - 6.91 * 0.3048).abs() < 1e-9)
    );
    assert_eq!(set.items[3].truth, Truth::Clock { hour: 2 });

    // The JSON array of the SpatialRGPT repository reads the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(fixture("spatialrgpt_small.jsonl"))
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect();
    let array = dir.path().join("SpatialRGPT-Bench_v1.json");
    std::fs::write(&array, serde_json::to_string(&rows).expect("ser")).expect("write");
    assert_eq!(
        detect_format(&array).ok(),
        Some(BenchmarkFormat::SpatialRgpt)
    );
    let again = read_spatialrgpt(&array, Some(Path::new("/omni"))).expect("array");
    // The same items; only the row locations differ ("file:N" against "file:[i]").
    let unlocated = |items: &[svlm_eval::EvalItem]| -> Vec<svlm_eval::EvalItem> {
        items
            .iter()
            .map(|i| svlm_eval::EvalItem {
                location: String::new(),
                ..i.clone()
            })
            .collect()
    };
    assert_eq!(unlocated(&again.items), unlocated(&set.items));
}

#[test]
fn qspatial_reader_converts_units() {
    let set = read_qspatial(&fixture("qspatial_small.jsonl"), None, None).expect("read");
    assert_eq!(set.items.len(), 4);
    assert_eq!(set.skipped.len(), 1);
    assert!(set.skipped[0].reason.contains("furlongs"));
    let meters: Vec<f64> = set
        .items
        .iter()
        .map(|i| match i.truth {
            Truth::Length { meters } => meters,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let expected = [0.96, 1.5, 13.0 * 0.0254, 4.0 * 0.3048];
    for (got, want) in meters.iter().zip(expected) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
    assert_eq!(set.items[0].kind, "distance");
    assert_eq!(set.items[0].id, "qspatial_small:0");
    assert_eq!(set.items[0].image, fixture("images/plus_041.jpg"));
}

/// The published Q-Spatial parquet: strings, a float32 value and the Hugging Face image struct {bytes, path}.
#[test]
fn qspatial_reader_reads_the_published_parquet_with_embedded_images() {
    use arrow::array::{
        ArrayRef, BinaryArray, Float32Array, RecordBatch, StringArray, StructArray,
    };
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    let png: &[u8] = b"\x89PNG\r\n\x1a\nfake-image-bytes";
    let image = StructArray::from(vec![
        (
            Arc::new(Field::new("bytes", DataType::Binary, true)),
            Arc::new(BinaryArray::from(vec![
                Some(png),
                Some(b"\xff\xd8jpeg".as_slice()),
                None,
            ])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("path", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![Some("a.png"), None, None])) as ArrayRef,
        ),
    ]);
    let batch = RecordBatch::try_from_iter(vec![
        (
            "question",
            Arc::new(StringArray::from(vec![
                "How far?",
                "How tall?",
                "How wide?",
            ])) as ArrayRef,
        ),
        (
            "answer_value",
            Arc::new(Float32Array::from(vec![96.0, 1.5, 2.0])) as ArrayRef,
        ),
        (
            "answer_unit",
            Arc::new(StringArray::from(vec!["centimeters", "meter", "feet"])) as ArrayRef,
        ),
        (
            "question_type",
            Arc::new(StringArray::from(vec!["distance", "height", "width"])) as ArrayRef,
        ),
        (
            "image_path",
            Arc::new(StringArray::from(vec![
                Some("x/a.png"),
                Some("x/b.jpg"),
                Some("scannet/c.jpg"),
            ])) as ArrayRef,
        ),
        ("image", Arc::new(image) as ArrayRef),
    ])
    .expect("batch");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("QSpatial_plus-00000-of-00001.parquet");
    let file = std::fs::File::create(&path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");

    assert_eq!(detect_format(&path).ok(), Some(BenchmarkFormat::QSpatial));
    let err = read_qspatial(&path, None, None).expect_err("needs an image folder");
    assert!(format!("{err:#}").contains("embedded"), "{err:#}");

    let cache = dir.path().join("images");
    let options = LoadOptions {
        image_cache: Some(cache.clone()),
        image_root: Some("/scannet-root".into()),
        ..Default::default()
    };
    let set = load_benchmark(&path, &options).expect("read");
    assert_eq!(set.items.len(), 3);
    let stem = "QSpatial_plus-00000-of-00001";
    assert_eq!(set.items[0].image, cache.join(format!("{stem}-0.png")));
    assert_eq!(std::fs::read(&set.items[0].image).expect("image"), png);
    assert_eq!(set.items[1].image, cache.join(format!("{stem}-1.jpg")));
    assert_eq!(set.items[2].image, Path::new("/scannet-root/scannet/c.jpg"));
    assert!(matches!(set.items[1].truth, Truth::Length { meters } if (meters - 1.5).abs() < 1e-6));
    assert!(
        matches!(set.items[2].truth, Truth::Length { meters } if (meters - 0.6096).abs() < 1e-6)
    );
    // Rerunning reuses the written images.
    assert_eq!(
        load_benchmark(&path, &options).expect("again").items,
        set.items
    );
}

#[test]
fn truth_derived_answers_score_perfectly() {
    for set in all_sets() {
        let mut answerer = TruthAnswerer::new(&set);
        let options = EvalOptions {
            batch_size: 3,
            ..Default::default()
        };
        let report = evaluate(&set, &mut answerer, &options).expect("evaluate");
        let m = &report.overall;
        assert_eq!(m.count, set.items.len());
        assert_eq!(m.valid_format_rate, Some(1.0), "{}", set.name);
        assert_eq!(
            m.accuracy.over_all,
            Some(1.0),
            "{}: {:#?}",
            set.name,
            report.predictions
        );
        if m.binary.total > 0 {
            assert_eq!(m.binary.over_all, Some(1.0));
        }
        if m.within_2x.total > 0 {
            assert_eq!(m.within_2x.over_all, Some(1.0));
            // ranges are at most 20% off at the midpoint, single numbers 5%
            assert_eq!(m.within_25_percent.over_all, Some(1.0));
            assert!(m.abs_rel_error_median.is_some_and(|e| e <= 0.2));
        }
        assert_eq!(report.items, set.items.len());
        assert_eq!(report.skipped, set.skipped.len());
    }
}

#[test]
fn garbage_answers_are_invalid_not_wrong() {
    for set in all_sets() {
        let mut answerer = FnAnswerer(|batch: &[(PathBuf, String)]| {
            Ok(vec!["purple monkey dishwasher".to_string(); batch.len()])
        });
        let report = evaluate(&set, &mut answerer, &EvalOptions::default()).expect("evaluate");
        let m = &report.overall;
        assert_eq!(m.valid, 0, "{}", set.name);
        assert_eq!(m.valid_format_rate, Some(0.0));
        assert_eq!(m.accuracy.over_all, Some(0.0));
        assert_eq!(m.accuracy.over_valid, None);
        assert!(report.predictions.iter().all(|p| p.score.parsed.is_none()));
    }
}

#[test]
fn a_fixed_answer_gives_hand_computed_numbers() {
    // "Yes, about 1 m at 12 o'clock, 10 degrees": readable for every type.
    let set = read_synth(&fixture("synth_small.jsonl"), None).expect("read");
    let mut answerer = FnAnswerer(|batch: &[(PathBuf, String)]| {
        Ok(batch
            .iter()
            .map(|(_, q)| {
                if q.starts_with("Which") {
                    "The blue ball.".into()
                } else {
                    "Yes, about 1 m at 12 o'clock, 10 degrees".into()
                }
            })
            .collect())
    });
    let report = evaluate(&set, &mut answerer, &EvalOptions::default()).expect("evaluate");
    let by = |k: &str| report.by_type.get(k).unwrap_or_else(|| panic!("type {k}"));
    // left_predicate (truth yes) right; behind_predicate (truth no) wrong; left_choice wrong
    assert_eq!(report.overall.binary.hits, 1);
    assert_eq!(report.overall.binary.total, 3);
    // distance 1.23 m -> 1 m: ratio 0.813, within 2x, not within 25%; height 0.45 m -> 1 m: ratio 2.22, not within 2x
    assert_eq!(by("distance").within_2x.hits, 1);
    assert_eq!(
        by("distance").within_25_percent.hits,
        1,
        "0.813 is inside [0.75, 1.25]"
    );
    assert_eq!(by("height").within_2x.hits, 0);
    let family = report.by_family.get("quantitative").expect("family");
    assert_eq!(family.within_2x.total, 2);
    assert!(
        (family.abs_rel_error_median.unwrap_or(0.0) - (0.23 / 1.23 + 0.55 / 0.45) / 2.0).abs()
            < 1e-9
    );
    // clock 3 vs 12: 3 hours off; elevation 12.5 vs 10: within 10 degrees
    assert_eq!(by("clock_direction").clock.hits, 0);
    assert_eq!(by("elevation_angle").angle.hits, 1);
    assert_eq!(
        report.by_family.get("qualitative").map(|m| m.count),
        Some(3)
    );
    let choice = report
        .predictions
        .iter()
        .find(|p| p.kind == "left_choice")
        .expect("choice");
    assert_eq!(
        choice.score.parsed,
        Some(Parsed::Choice {
            index: 1,
            value: "blue ball".into()
        })
    );
}

#[test]
fn wrong_answer_count_is_an_error() {
    let set = read_synth(&fixture("synth_small.jsonl"), None).expect("read");
    let mut answerer = FnAnswerer(|_: &[(PathBuf, String)]| Ok(vec!["yes".to_string()]));
    let err = evaluate(
        &set,
        &mut answerer,
        &EvalOptions {
            batch_size: 4,
            ..Default::default()
        },
    )
    .expect_err("count");
    assert!(
        format!("{err:#}").contains("returned 1 answers for 4 questions"),
        "{err:#}"
    );
    let mut failing = FnAnswerer(|_: &[(PathBuf, String)]| anyhow::bail!("out of memory"));
    let err = evaluate(&set, &mut failing, &EvalOptions::default()).expect_err("fails");
    assert!(format!("{err:#}").contains("out of memory"));
}

#[test]
fn report_files_are_written_and_read_back() {
    let set = read_synth(&fixture("synth_small.jsonl"), None).expect("read");
    let mut answerer = TruthAnswerer::new(&set);
    let options = EvalOptions {
        model_name: "oracle".into(),
        prompt_suffix: None,
        batch_size: 2,
        resume_log: None,
    };
    let report = evaluate(&set, &mut answerer, &options).expect("evaluate");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = report.write(&dir.path().join("eval")).expect("write");
    let back = EvalReport::read_json(&files.json).expect("json");
    assert_eq!(back.overall, report.overall);
    assert_eq!(back.by_type, report.by_type);
    assert_eq!(back.model, "oracle");
    assert!(back.predictions.is_empty());
    let predictions = read_predictions(&files.predictions).expect("predictions");
    assert_eq!(predictions, report.predictions);
    let md = std::fs::read_to_string(&files.markdown).expect("md");
    assert!(md.contains("| left_predicate |"), "{md}");
    assert!(md.contains("Skipped input rows (2"), "{md}");
    assert_eq!(files.charts.len(), 2);
    for chart in &files.charts {
        let bytes = std::fs::read(chart).expect("png");
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{}",
            chart.display()
        );
    }
    // no temp files left behind
    let names: Vec<String> = std::fs::read_dir(dir.path().join("eval"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
}

#[test]
fn general_vqa_records_are_scored_by_text_match() {
    let items = svlm_eval::read_general_vqa(&fixture("synth_small.jsonl"), None).expect("read");
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].id.as_str(), items[0].reference.as_str()),
        ("scene1#0", "Green.")
    );
    assert_eq!(items[0].question, "What color is the cone?");
    let mut right =
        FnAnswerer(|b: &[(PathBuf, String)]| Ok(vec!["The cone is green.".to_string(); b.len()]));
    let report = svlm_eval::evaluate_general("small", &items, &mut right, &EvalOptions::default())
        .expect("eval");
    assert_eq!(
        (report.count, report.correct, report.accuracy),
        (1, 1, Some(1.0))
    );
    let mut wrong = FnAnswerer(|b: &[(PathBuf, String)]| Ok(vec!["red".to_string(); b.len()]));
    let report = svlm_eval::evaluate_general("small", &items, &mut wrong, &EvalOptions::default())
        .expect("eval");
    assert_eq!(report.accuracy, Some(0.0));
    let dir = tempfile::tempdir().expect("tempdir");
    let (json, predictions) = report.write(dir.path()).expect("write");
    let back: svlm_eval::GeneralReport =
        serde_json::from_str(&std::fs::read_to_string(json).expect("json")).expect("parse");
    assert_eq!(back.correct, 0);
    assert_eq!(
        std::fs::read_to_string(predictions)
            .expect("jsonl")
            .lines()
            .count(),
        1
    );
}
