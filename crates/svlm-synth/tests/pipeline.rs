//! Shard writing end to end: determinism, partitioning, rerun skipping, Parquet = JSONL, bad RGB-D frames.

use std::path::Path;

use svlm_synth::graph::{EstimateParams, VisibilityParams};
use svlm_synth::parquet_io::read_parquet;
use svlm_synth::pipeline::{OutputFormat, ShardOutcome, SynthOptions, run_shard};
use svlm_synth::qa::QaConfig;
use svlm_synth::source::{ItemSource, RgbdSource, WorldSource};
use svlm_synth::{ShardSpec, SpatialRecord, TruthSource};
use svlm_world::{SceneConfig, generate_scene, render, scene_seed, write_frame};

fn world(scenes: usize, truth: TruthSource) -> WorldSource {
    WorldSource {
        scenes,
        seed: 5,
        config: SceneConfig {
            width: 160,
            height: 120,
            ..SceneConfig::default()
        },
        truth,
        estimate: EstimateParams::default(),
        visibility: VisibilityParams {
            min_visible_pixels: 60,
            skip_truncated: true,
            count_stride: 1,
        },
    }
}

fn options(out: &Path, shard: ShardSpec, format: OutputFormat) -> SynthOptions {
    SynthOptions {
        out: out.to_path_buf(),
        format,
        shard,
        seed: 9,
        qa: QaConfig {
            qa_per_image: 24,
            ..QaConfig::default()
        },
        chunk_size: 4,
        progress: false,
    }
}

fn read_jsonl(path: &Path) -> Vec<SpatialRecord> {
    std::fs::read_to_string(path)
        .expect("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect()
}

#[test]
fn same_seed_gives_identical_bytes_and_parquet_matches_jsonl() {
    let source = world(6, TruthSource::Exact);
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    for dir in [a.path(), b.path()] {
        let outcome = run_shard(
            &source,
            &options(dir, ShardSpec::default(), OutputFormat::Both),
        )
        .expect("run");
        assert!(matches!(outcome, ShardOutcome::Written(_)));
    }
    for name in [
        "shard-00000-of-00001.jsonl",
        "shard-00000-of-00001.parquet",
        "shard-00000-of-00001.manifest.json",
    ] {
        let (x, y) = (
            std::fs::read(a.path().join(name)).expect(name),
            std::fs::read(b.path().join(name)).expect(name),
        );
        assert!(!x.is_empty());
        assert!(x == y, "{name} differs between two runs with the same seed");
    }
    let records = read_jsonl(&a.path().join("shard-00000-of-00001.jsonl"));
    assert!(records.len() >= 5, "{} records", records.len());
    let parquet = read_parquet(&a.path().join("shard-00000-of-00001.parquet")).expect("parquet");
    assert_eq!(parquet.len(), records.len());
    let lines: Vec<String> = std::fs::read_to_string(a.path().join("shard-00000-of-00001.jsonl"))
        .expect("jsonl")
        .lines()
        .map(str::to_string)
        .collect();
    for (((pr, bytes), jr), line) in parquet.iter().zip(&records).zip(&lines) {
        // Parquet keeps every f64 bit; serde_json's default float parser may be one ulp off, so compare the
        // Parquet record with the JSONL line as written.
        assert_eq!(&serde_json::to_string(pr).expect("json"), line);
        let on_disk = std::fs::read(a.path().join(&jr.image)).expect("image file");
        assert_eq!(bytes, &on_disk);
        let img = image::load_from_memory(bytes).expect("png");
        assert_eq!((img.width(), img.height()), (160, 120));
        assert_eq!(jr.conversations.len(), 2 * jr.spatial.len());
        assert!(jr.conversations[0].value.starts_with("<image>\n"));
    }
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.path().join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    let qa: u64 = records.iter().map(|r| r.spatial.len() as u64).sum();
    assert_eq!(run["totals"]["qa"].as_u64(), Some(qa));
    assert_eq!(run["totals"]["images"].as_u64(), Some(records.len() as u64));
    let split = run["totals"]["qualitative"].as_u64().unwrap_or(0) as f64 / qa as f64;
    assert!((0.4..=0.6).contains(&split), "qualitative share {split}");
}

#[test]
fn shards_partition_the_scenes_and_reruns_skip_finished_shards() {
    let source = world(7, TruthSource::Exact);
    let whole = tempfile::tempdir().expect("tmp");
    run_shard(
        &source,
        &options(whole.path(), ShardSpec::default(), OutputFormat::Jsonl),
    )
    .expect("whole");
    let all = read_jsonl(&whole.path().join("shard-00000-of-00001.jsonl"));

    let parts = tempfile::tempdir().expect("tmp");
    let mut joined = Vec::new();
    for i in 0..3 {
        let opts = options(
            parts.path(),
            ShardSpec::new(i, 3).expect("spec"),
            OutputFormat::Jsonl,
        );
        run_shard(&source, &opts).expect("shard");
        joined.extend(read_jsonl(
            &parts.path().join(format!("shard-{i:05}-of-00003.jsonl")),
        ));
    }
    // Contiguous ranges: the shards concatenated are the unsharded output, record for record.
    assert_eq!(joined, all);

    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(parts.path().join("manifest.json")).expect("run"),
    )
    .expect("json");
    assert_eq!(run["shards_finished"].as_array().map(Vec::len), Some(3));
    assert_eq!(run["totals"]["images"].as_u64(), Some(all.len() as u64));

    // Rerun shard 1: skipped, files untouched.
    let opts = options(
        parts.path(),
        ShardSpec::new(1, 3).expect("spec"),
        OutputFormat::Jsonl,
    );
    let jsonl = parts.path().join("shard-00001-of-00003.jsonl");
    std::fs::write(&jsonl, b"sentinel").expect("overwrite");
    assert!(matches!(
        run_shard(&source, &opts).expect("rerun"),
        ShardOutcome::Skipped(_)
    ));
    assert_eq!(std::fs::read(&jsonl).expect("read"), b"sentinel");

    // Another config into the same folder is refused rather than mixed.
    let mut other = opts.clone();
    other.qa.qa_per_image = 3;
    let err = run_shard(&source, &other).expect_err("config mismatch");
    assert!(format!("{err:#}").contains("another config"), "{err:#}");
}

#[test]
fn estimated_truth_is_marked_estimated() {
    let source = world(3, TruthSource::Estimated);
    let dir = tempfile::tempdir().expect("tmp");
    let outcome = run_shard(
        &source,
        &options(dir.path(), ShardSpec::default(), OutputFormat::Jsonl),
    )
    .expect("run");
    let m = outcome.manifest();
    assert!(m.qa > 0);
    assert_eq!(
        m.qa_per_source.keys().collect::<Vec<_>>(),
        vec!["estimated"]
    );
}

/// Writes frames with `svlm-world`'s writer, then breaks some of them.
#[test]
fn bad_rgbd_frames_are_counted_and_listed() {
    let dir = tempfile::tempdir().expect("tmp");
    let frames = dir.path().join("frames");
    let config = SceneConfig {
        width: 160,
        height: 120,
        ..SceneConfig::default()
    };
    for i in 0..5u64 {
        let scene = generate_scene(scene_seed(3, i), &config);
        write_frame(&frames, &format!("f{i}"), &render(&scene), &scene).expect("write frame");
    }
    let blank = |w: u32, h: u32| image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::new(w, h);
    // f1: depth all zero (invalid)
    blank(160, 120)
        .save(frames.join("f1.depth.png"))
        .expect("save");
    // f2: no instance pixels
    blank(160, 120)
        .save(frames.join("f2.instances.png"))
        .expect("save");
    // f3: depth of another size
    blank(80, 60)
        .save(frames.join("f3.depth.png"))
        .expect("save");
    // f4: no intrinsics at all
    let _ = std::fs::remove_file(frames.join("f4.intrinsics.json"));
    let has_folder_intrinsics = frames.join("intrinsics.json").exists();

    let source = RgbdSource::open(&frames, EstimateParams::default()).expect("open");
    assert_eq!(source.len(), 5);
    let reason = |i: usize| source.item(i).err().map(|b| b.reason);
    assert_eq!(reason(0), None);
    assert_eq!(reason(1).as_deref(), Some("no_valid_depth"));
    assert_eq!(reason(2).as_deref(), Some("empty_masks"));
    assert_eq!(reason(3).as_deref(), Some("size_mismatch"));
    if !has_folder_intrinsics {
        assert_eq!(reason(4).as_deref(), Some("missing_intrinsics"));
    }

    let out = dir.path().join("out");
    let outcome = run_shard(
        &source,
        &options(&out, ShardSpec::default(), OutputFormat::Jsonl),
    )
    .expect("run");
    let m = outcome.manifest();
    let bad: Vec<&str> = m.bad_items.iter().map(|b| b.item.as_str()).collect();
    assert!(
        bad.contains(&"f1") && bad.contains(&"f2") && bad.contains(&"f3"),
        "{bad:?}"
    );
    assert_eq!(m.skips.get("item_no_valid_depth"), Some(&1));
    assert_eq!(m.skips.get("item_empty_masks"), Some(&1));
    assert!(m.images >= 1);
    let records = read_jsonl(&out.join("shard-00000-of-00001.jsonl"));
    assert!(
        records
            .iter()
            .all(|r| r.spatial.iter().all(|q| q.source == TruthSource::Estimated))
    );
}
