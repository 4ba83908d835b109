//! The published benchmarks on small hand-made files in their release formats
//! (`tests/fixtures/benchmarks/`, written by `make_fixtures.py` there): reading, the benchmarks' own scoring on
//! hand-computed answers (malformed, ambiguous and refused ones included), the real releases' Parquet/TSV layouts,
//! and resuming an interrupted run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema};
use parquet::arrow::ArrowWriter;
use svlm_eval::benchmarks::SummaryRow;
use svlm_eval::{
    BenchReport, BenchSet, Benchmark, FnImagesAnswerer, ReadContext, RunOptions, load_bench,
    run_benchmark,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/benchmarks")
}

fn ctx(dir: &Path) -> ReadContext {
    ReadContext {
        image_root: None,
        image_cache: dir.join("images"),
        frames: 3,
    }
}

fn load(benchmark: Benchmark, dir: &Path) -> BenchSet {
    load_bench(benchmark, &fixtures().join(benchmark.name()), &ctx(dir))
        .unwrap_or_else(|e| panic!("{benchmark}: {e:#}"))
}

/// Runs `set` with answers given per question id, in a fresh folder.
fn run_with(set: &BenchSet, answers: &[(&str, &str)], dir: &Path) -> BenchReport {
    // Keyed by images and prompt: two What'sUp items can share a prompt and differ in the image.
    let by_prompt: HashMap<(Vec<PathBuf>, String), String> = answers
        .iter()
        .map(|(id, a)| {
            let item = set
                .items
                .iter()
                .find(|i| i.id == *id)
                .unwrap_or_else(|| panic!("no item {id}"));
            ((item.images.clone(), item.prompt.clone()), a.to_string())
        })
        .collect();
    assert_eq!(by_prompt.len(), set.items.len(), "one answer per question");
    let mut answerer = FnImagesAnswerer(|batch: &[(Vec<PathBuf>, String)]| {
        Ok::<_, anyhow::Error>(
            batch
                .iter()
                .map(|(images, prompt)| {
                    assert!(images.iter().all(|p| p.is_file()), "{images:?}");
                    by_prompt[&(images.clone(), prompt.clone())].clone()
                })
                .collect(),
        )
    });
    let options = RunOptions {
        model: "hand".into(),
        batch_size: 2,
    };
    run_benchmark(
        set,
        &mut answerer,
        &dir.join("out"),
        &options,
        &mut |_, _| {},
    )
    .expect("run")
}

fn value(report: &BenchReport, table: &str, name: &str) -> (Option<f64>, Option<f64>) {
    let row: &SummaryRow = report
        .summary
        .rows
        .iter()
        .find(|r| r.table == table && r.name == name)
        .unwrap_or_else(|| panic!("no row {table}/{name} in {:#?}", report.summary.rows));
    (row.value, row.strict)
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn cvbench_official_formula_and_lenient_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::CvBench, dir.path());
    assert_eq!(set.items.len(), 4);
    assert_eq!(set.skipped.len(), 1, "{:?}", set.skipped);
    assert!(set.skipped[0].reason.contains("(E)"));
    assert!(
        set.items[0]
            .prompt
            .ends_with("(D) 3\nAnswer with the option's letter from the given choices directly.")
    );
    let report = run_with(
        &set,
        &[
            ("0", "2"),                // the right choice's text
            ("1", "(A) or (B)"),       // both options: Cambrian's rule reads "a"
            ("3", "I cannot tell."),   // refusal
            ("4", "The answer is A."), // right, but VLMEvalKit takes a long answer's "A" for the article
        ],
        dir.path(),
    );
    // ADE20K 1/1, COCO 1/1, Omni3D 1/2 -> ((1 + 1) / 2 + 0.5) / 2
    assert!(close(report.summary.overall, 0.75), "{:?}", report.summary);
    assert!(close(value(&report, "type", "2D").0, 1.0));
    assert!(close(value(&report, "type", "3D").0, 0.5));
    // strict: only "2" names one option -> ((1 + 0) / 2 + 0) / 2
    assert!(close(report.summary.strict_overall, 0.25));
    assert!(close(value(&report, "task", "Count").0, 1.0));
}

#[test]
fn blink_reads_answers_as_its_own_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::Blink, dir.path());
    assert_eq!(set.items.len(), 3);
    // BLINK asks the released prompt as it is, with no answer-format instruction added
    assert!(
        set.items[0]
            .prompt
            .ends_with("Select from the following choices.\n(A) A is closer\n(B) B is closer"),
        "{}",
        set.items[0].prompt
    );
    let report = run_with(
        &set,
        &[
            // an option token in a sentence: BLINK's script takes it
            ("val_Relative_Depth_1", "Point (B) is closer to the camera."),
            // "B." is neither a bare letter nor an "(X)" token: BLINK would ask GPT-3.5, scored wrong here
            ("val_Spatial_Relation_1", "A."),
            ("val_Spatial_Relation_2", "(B)"),
        ],
        dir.path(),
    );
    assert!(close(value(&report, "subtask", "Relative_Depth").0, 1.0));
    assert!(close(value(&report, "subtask", "Spatial_Relation").0, 0.5));
    assert!(close(report.summary.overall, 0.75));
    assert!(
        report
            .summary
            .notes
            .iter()
            .any(|n| n.starts_with("1 of 3 answers")),
        "{:?}",
        report.summary.notes
    );
}

#[test]
fn embspatial_refusal_scores_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::EmbSpatial, dir.path());
    assert_eq!(set.items.len(), 2);
    // the base64 image was written out once
    assert!(set.items[0].images[0].is_file());
    let report = run_with(
        &set,
        &[
            ("mp3d_0", "C. lamp"),
            ("ai2thor_1", "Cannot determine the answer from the image."),
        ],
        dir.path(),
    );
    assert!(close(report.summary.overall, 0.5));
    assert!(close(value(&report, "relation", "far").0, 1.0));
    assert!(close(value(&report, "relation", "left").0, 0.0));
}

#[test]
fn whatsup_pairs_sets_and_parts_of_two_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::WhatsUp, dir.path());
    assert_eq!(set.items.len(), 5);
    // files in name order (coco_qa_one_obj.json first); rotated so the right caption is not always "A"
    let letters: Vec<String> = set.items.iter().map(|i| i.target.text()).collect();
    assert_eq!(letters, ["A", "A", "B", "C", "D"]);
    let report = run_with(
        &set,
        &[
            ("Controlled_Images_A:0", "A"),
            ("Controlled_Images_A:1", "B"),
            ("Controlled_Images_A:2", "C"),
            ("Controlled_Images_A:3", "D or A"), // two options
            ("COCO_QA_one_obj:0", "B"),
        ],
        dir.path(),
    );
    assert!(close(
        value(&report, "subset", "Controlled_Images_A").0,
        0.75
    ));
    assert!(close(value(&report, "subset", "COCO_QA_one_obj").0, 0.0));
    let pairs = "Controlled_Images_A pairs and sets";
    assert!(close(value(&report, pairs, "pair accuracy").0, 0.5));
    assert!(close(value(&report, pairs, "set accuracy").0, 0.0));
    assert!(close(report.summary.overall, 0.375));
    // the paper's Table 1 averages a dataset's two subsets; with Controlled B absent there is no What'sUp number
    let macros = "dataset (macro-average of its subsets)";
    assert_eq!(value(&report, macros, "What'sUp (Controlled A, B)").0, None);
}

#[test]
fn threedsrbench_circular_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::ThreeDsrBench, dir.path());
    assert_eq!(set.items.len(), 5);
    assert!(
        set.items[0]
            .prompt
            .contains("A. baseball glove\nB. red hat\n")
    );
    assert!(
        !set.items[0].prompt.contains("C."),
        "empty options are left out"
    );
    let report = run_with(
        &set,
        &[
            ("0", "B"),
            ("1", "A"),
            ("2", "A"),
            ("3", "towards"), // the option's text
            ("4", "B"),       // wrong: the whole group is wrong
        ],
        dir.path(),
    );
    assert!(close(report.summary.overall, 0.5), "{:?}", report.summary);
    assert!(close(
        value(&report, "per question", "vanilla accuracy").0,
        0.8
    ));
    assert!(close(
        value(
            &report,
            "circular with flip",
            "question, flipped twin and all rotations right"
        )
        .0,
        0.5
    ));
    assert!(close(value(&report, "type (circular)", "height").0, 1.0));
    assert!(close(
        value(&report, "type (circular)", "orientation").0,
        0.0
    ));
}

#[test]
fn vsibench_mra_and_merged_directions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::VsiBench, dir.path());
    assert_eq!(set.items.len(), 4);
    assert_eq!(set.skipped.len(), 1);
    assert!(
        set.skipped[0].reason.contains("scene0000_00"),
        "{:?}",
        set.skipped
    );
    // 3 of the 5 frames, evenly spaced
    let names: Vec<String> = set.items[0]
        .images
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["00000.png", "00002.png", "00004.png"]);
    assert!(
        set.items[0]
            .prompt
            .starts_with("These are frames of a video.\n")
    );
    let report = run_with(
        &set,
        &[
            ("1", "4"),
            ("2", "B. sofa"),
            ("3", "left"), // the text, not the letter: wrong
            ("4", "18"),   // 12.2% off: thresholds 0.50..0.85 -> 0.8
        ],
        dir.path(),
    );
    assert!(close(
        value(&report, "question type", "room_size_estimation").0,
        0.8
    ));
    assert!(close(
        value(&report, "question type", "object_rel_direction").0,
        0.0
    ));
    // (counting 1 + rel_distance 1 + room size 0.8 + rel_direction 0) / 4
    assert!(close(report.summary.overall, 0.7), "{:?}", report.summary);
}

#[test]
fn qspatial_prompt_and_boxed_answers_as_its_code_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::QSpatial, dir.path());
    assert_eq!(set.items.len(), 2);
    // the zero-shot prompt: system prompt asking for \scalar{..} \distance_unit{..}, then the template
    let prompt = &set.items[0].prompt;
    assert!(
        prompt.starts_with("You will be provided with a question and a 2D image."),
        "{prompt}"
    );
    assert!(
        prompt.ends_with("Question: How tall is the lamp on the left?\nLet's think step by step."),
        "{prompt}"
    );
    let ids: Vec<String> = set.items.iter().map(|i| i.id.clone()).collect();
    let report = run_with(
        &set,
        &[
            // exactly twice the 1.5 m truth: the evaluator's `< 2` makes it wrong
            (&ids[0], "It is tall. \\scalar{3} \\distance_unit{meters}"),
            // a range is averaged: 1.25 m for a 120 cm truth
            (&ids[1], "Roughly \\scalar{1-1.5} \\distance_unit{m}"),
        ],
        dir.path(),
    );
    assert!(close(report.summary.overall, 0.5), "{:?}", report.summary);
    assert!(close(value(&report, "question type", "height").0, 0.0));
    assert!(close(value(&report, "question type", "width").0, 1.0));

    // free-form answers without the boxes score wrong, however close, and are counted
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run_with(
        &set,
        &[(&ids[0], "about 1.5 meters"), (&ids[1], "I don't know")],
        dir.path(),
    );
    assert!(close(report.summary.overall, 0.0));
    assert!(
        report
            .summary
            .notes
            .iter()
            .any(|n| n.starts_with("2 of 2 answers hold no")),
        "{:?}",
        report.summary.notes
    );
}

#[test]
fn spatialrgpt_regions_and_its_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::SpatialRgpt, dir.path());
    assert_eq!(set.items.len(), 2);
    // regions drawn on a copy, and named in the prompt
    assert!(set.items[0].images[0].starts_with(dir.path().join("images")));
    assert!(
        set.items[0]
            .prompt
            .contains("Region [1] is outlined in blue")
    );
    let ids: Vec<String> = set.items.iter().map(|i| i.id.clone()).collect();
    // 3 m for a 2 m truth is within 2x but not within +-25%: wrong for SpatialRGPT-Bench
    let report = run_with(
        &set,
        &[(&ids[0], "No, it is not."), (&ids[1], "3 meters")],
        dir.path(),
    );
    assert!(close(report.summary.overall, 0.5));
    // the evaluation script's tables: qualitative by relation pair, quantitative by measure, each pooled
    let qual = "qualitative accuracy";
    let quan = "quantitative success rate";
    assert!(close(value(&report, qual, "behind/front").0, 1.0));
    assert!(close(value(&report, qual, "all qualitative").0, 1.0));
    assert!(close(value(&report, quan, "height").0, 0.0));
    assert!(close(value(&report, quan, "all quantitative").0, 0.0));
    let error = "quantitative mean relative error (lower is better)";
    assert!(close(value(&report, error, "height").0, 0.5));
}

#[test]
fn vsibench_video_without_frames_says_how_to_extract_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("vsibench");
    std::fs::create_dir_all(data.join("scannet")).expect("mkdir");
    std::fs::copy(
        fixtures().join("vsibench/test.jsonl"),
        data.join("test.jsonl"),
    )
    .expect("copy");
    let frames = fixtures().join("vsibench/arkitscenes/41069025");
    std::fs::create_dir_all(data.join("arkitscenes/41069025")).expect("mkdir");
    for entry in std::fs::read_dir(&frames).expect("frames") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        std::fs::copy(&path, data.join("arkitscenes/41069025").join(name)).expect("copy");
    }
    // scene0000_00 comes as a video only
    let video = data.join("scannet/scene0000_00.mp4");
    std::fs::write(&video, b"\x00\x00\x00\x18ftypmp42").expect("video");
    let set = load_bench(Benchmark::VsiBench, &data, &ctx(dir.path())).expect("vsi");
    assert_eq!(set.items.len(), 4);
    assert_eq!(set.skipped.len(), 1);
    let reason = &set.skipped[0].reason;
    assert!(reason.contains("scene0000_00.mp4"), "{reason}");
    assert!(
        reason.contains("ffmpeg -i") && reason.contains("scannet/scene0000_00/%05d.jpg"),
        "{reason}"
    );
    // a video given as the data is refused with the same advice
    let err = load_bench(Benchmark::VsiBench, &video, &ctx(dir.path())).expect_err("a video");
    let err = format!("{err:#}");
    assert!(
        err.contains("a video") && err.contains("ffmpeg -i"),
        "{err}"
    );
}

#[test]
fn an_interrupted_run_resumes_without_asking_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = load(Benchmark::ThreeDsrBench, dir.path());
    let out = dir.path().join("run");
    let options = RunOptions {
        model: "m".into(),
        batch_size: 2,
    };
    let mut calls = 0;
    let mut failing = FnImagesAnswerer(|batch: &[(Vec<PathBuf>, String)]| {
        calls += 1;
        anyhow::ensure!(calls < 2, "interrupted");
        Ok(vec!["A".to_string(); batch.len()])
    });
    assert!(run_benchmark(&set, &mut failing, &out, &options, &mut |_, _| {}).is_err());
    let kept = std::fs::read_to_string(out.join("predictions.jsonl")).expect("kept");
    assert_eq!(kept.lines().count(), 2);
    // a line cut off by the interruption is dropped, not fatal
    std::fs::write(
        out.join("predictions.jsonl"),
        format!("{kept}{{\"id\":\"3\",\"mod"),
    )
    .expect("write");

    let mut asked = Vec::new();
    let mut progress = Vec::new();
    let report = {
        let mut rest = FnImagesAnswerer(|batch: &[(Vec<PathBuf>, String)]| {
            asked.extend(batch.iter().map(|(_, p)| p.clone()));
            Ok::<_, anyhow::Error>(vec!["A".to_string(); batch.len()])
        });
        run_benchmark(&set, &mut rest, &out, &options, &mut |done, total| {
            progress.push((done, total))
        })
        .expect("resume")
    };
    assert_eq!(asked.len(), 3, "only the unanswered questions are asked");
    // the progress starts at the kept answers and moves per batch
    assert_eq!(progress, [(2, 5), (4, 5), (5, 5)]);
    assert_eq!(report.resumed, 2);
    let lines = std::fs::read_to_string(out.join("predictions.jsonl")).expect("predictions");
    let ids: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["id"].to_string())
        .collect();
    assert_eq!(ids, ["\"0\"", "\"1\"", "\"2\"", "\"3\"", "\"4\""]);
    // another model's answers are not mixed in
    let other = RunOptions {
        model: "other".into(),
        batch_size: 2,
    };
    let mut never = FnImagesAnswerer(|_: &[(Vec<PathBuf>, String)]| anyhow::bail!("not asked"));
    let err =
        run_benchmark(&set, &mut never, &out, &other, &mut |_, _| {}).expect_err("other model");
    assert!(format!("{err:#}").contains("another --out"), "{err:#}");
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn string_lists(values: &[&[&str]]) -> ArrayRef {
    let mut builder = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    for list in values {
        for v in *list {
            builder.values().append_value(v);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

/// The Hugging Face `Image` feature: struct {bytes: binary, path: string}.
fn hf_images(bytes: &[Option<&[u8]>], paths: &[Option<&str>]) -> ArrayRef {
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    Arc::new(StructArray::new(
        fields,
        vec![
            Arc::new(BinaryArray::from(bytes.to_vec())) as ArrayRef,
            strings(paths),
        ],
        None,
    ))
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).expect("create"), schema, None)
            .expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}

fn png_bytes() -> Vec<u8> {
    std::fs::read(fixtures().join("cvbench/img/2D/count/ade20k_10.png")).expect("png")
}

/// Column names and types as in the releases' Parquet files (dataset cards / viewer schemas), values made up.
#[test]
fn release_parquet_layouts_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let png = png_bytes();
    // CV-Bench test_2d.parquet
    let cv = dir.path().join("cvbench/test_2d.parquet");
    write_parquet(
        &cv,
        vec![
            ("idx", Arc::new(Int64Array::from(vec![0])) as ArrayRef),
            ("type", strings(&[Some("2D")])),
            ("task", strings(&[Some("Count")])),
            ("image", hf_images(&[Some(&png)], &[None])),
            (
                "question",
                strings(&[Some("How many chairs are in the image?")]),
            ),
            ("choices", string_lists(&[&["0", "1", "2", "3"]])),
            ("answer", strings(&[Some("(C)")])),
            (
                "prompt",
                strings(&[Some(
                    "How many chairs are in the image? Select from the following choices.\n(A) 0 (B) 1 (C) 2 (D) 3",
                )]),
            ),
            ("filename", strings(&[Some("img/2D/count/ade20k_10.png")])),
            ("source", strings(&[Some("ADE20K")])),
            ("source_dataset", strings(&[Some("ADE20K Validation Set")])),
            (
                "source_filename",
                strings(&[Some("/ADE20K/images/validation/x.jpg")]),
            ),
            ("target_class", strings(&[None])),
            (
                "target_size",
                Arc::new(Int64Array::from(vec![None::<i64>])) as ArrayRef,
            ),
            (
                "bbox",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    None::<Vec<Option<i32>>>,
                ])) as ArrayRef,
            ),
        ],
    );
    let set = load_bench(
        Benchmark::CvBench,
        &dir.path().join("cvbench"),
        &ctx(dir.path()),
    )
    .expect("cv");
    assert_eq!(set.items.len(), 1);
    assert_eq!(std::fs::read(&set.items[0].images[0]).expect("image"), png);

    // BLINK Relative_Depth/val-00000-of-00001.parquet
    let blink = dir
        .path()
        .join("blink/Relative_Depth/val-00000-of-00001.parquet");
    write_parquet(
        &blink,
        vec![
            ("idx", strings(&[Some("val_Relative_Depth_1")])),
            (
                "question",
                strings(&[Some("Which point is closer to the camera?")]),
            ),
            ("sub_task", strings(&[Some("Relative_Depth")])),
            ("image_1", hf_images(&[Some(&png)], &[Some("x.jpg")])),
            ("image_2", hf_images(&[None], &[None])),
            ("image_3", hf_images(&[None], &[None])),
            ("image_4", hf_images(&[None], &[None])),
            ("choices", string_lists(&[&["A is closer", "B is closer"]])),
            ("answer", strings(&[Some("(A)")])),
            (
                "prompt",
                strings(&[Some(
                    "Which point is closer to the camera?\nSelect from the following choices.\n(A) A is closer\n(B) B is closer",
                )]),
            ),
            ("explanation", strings(&[Some("")])),
        ],
    );
    let set = load_bench(
        Benchmark::Blink,
        &dir.path().join("blink"),
        &ctx(dir.path()),
    )
    .expect("blink");
    assert_eq!(set.items.len(), 1);
    assert_eq!(
        set.items[0].images.len(),
        1,
        "null image_k columns are left out"
    );

    // VSI-Bench test-00000-of-00001.parquet (frames from a folder)
    let vsi = dir.path().join("vsibench/test-00000-of-00001.parquet");
    write_parquet(
        &vsi,
        vec![
            ("id", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
            ("dataset", strings(&[Some("arkitscenes")])),
            ("scene_name", strings(&[Some("41069025")])),
            ("question_type", strings(&[Some("object_counting")])),
            (
                "question",
                strings(&[Some("How many chair(s) are in this room?")]),
            ),
            ("ground_truth", strings(&[Some("4")])),
            (
                "options",
                Arc::new(ListArray::new_null(
                    Arc::new(Field::new("item", DataType::Utf8, true)),
                    1,
                )) as ArrayRef,
            ),
        ],
    );
    let vsi_ctx = ReadContext {
        image_root: Some(fixtures().join("vsibench")),
        ..ctx(dir.path())
    };
    let set = load_bench(Benchmark::VsiBench, &dir.path().join("vsibench"), &vsi_ctx).expect("vsi");
    assert_eq!(set.items.len(), 1);
    assert_eq!(set.items[0].images.len(), 3);
}

#[test]
fn published_table_parses() {
    let rows = svlm_eval::published_results().expect("published.csv");
    assert!(rows.iter().all(|r| !r.source.trim().is_empty()));
    let bad = svlm_eval::parse_published("benchmark,model,value,source\nmmbench,x,1.0,paper\n");
    assert!(bad.is_err(), "an unknown benchmark is refused");
    let ok = svlm_eval::parse_published(
        "# c\nbenchmark,model,value,source\nvsibench,m,45.4,\"Paper, Table 1\"\n",
    )
    .expect("parse");
    assert_eq!(ok[0].value, 45.4);
}
