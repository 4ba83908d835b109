//! The parsers that read outside data, fed the fixtures and seeded mutations of them (bit flips, cuts, splices,
//! huge integers, stray JSON tokens) in an ordinary `cargo test`: no input may panic, and headers that claim
//! absurd sizes are errors. The `cargo fuzz` targets in `fuzz/` run the same functions for longer (nightly); this
//! is their smoke run for CI.
//!
//! `SVLM_MUTATIONS=N` sets the mutations per seed (default 150). Run alone with
//! `cargo test -p svlm-cli --test hostile_parsers`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn mutations() -> usize {
    std::env::var("SVLM_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150)
}

const HUGE: [u64; 6] = [
    0,
    1 << 60,
    u64::MAX,
    i64::MAX as u64,
    u32::MAX as u64,
    1 << 31,
];
const TOKENS: [&str; 10] = [
    "-1",
    "1e308",
    "NaN",
    "{",
    "[",
    "\"",
    "99999999999999999999",
    "null",
    "}",
    "\u{feff}",
];

/// Mutates `seed` one to four times, touching only its first `window` bytes (headers of large files).
fn mutate(rng: &mut ChaCha8Rng, seed: &[u8], window: usize) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let span = b.len().min(window).max(1);
        let at = rng.random_range(0..span).min(b.len());
        match rng.random_range(0..7) {
            0 if at < b.len() => b[at] ^= 1 << rng.random_range(0..8),
            1 => b.insert(at, rng.random()),
            2 if at < b.len() => {
                let end = (at + rng.random_range(1..16)).min(b.len());
                b.drain(at..end);
            }
            3 => b.truncate(at),
            4 => {
                let value = HUGE[rng.random_range(0..HUGE.len())].to_le_bytes();
                for (i, byte) in value.iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + i) {
                        *slot = *byte;
                    }
                }
            }
            5 if at < b.len() => {
                let end = (at + rng.random_range(1..32)).min(b.len());
                let chunk = b[at..end].to_vec();
                let to = rng.random_range(0..=b.len());
                b.splice(to..to, chunk);
            }
            _ => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                b.splice(at..at, token.iter().copied());
            }
        }
    }
    b
}

/// Runs `parse` on every seed and `mutations()` mutations of each; a panic fails with the input that caused it.
fn replay(name: &str, seeds: &[Vec<u8>], window: usize, mut parse: impl FnMut(&[u8])) -> usize {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let mut rng = ChaCha8Rng::seed_from_u64(name.bytes().map(u64::from).sum());
    let mut runs = 0;
    for seed in seeds {
        let mut inputs = vec![seed.clone()];
        inputs.extend((0..mutations()).map(|_| mutate(&mut rng, seed, window)));
        for input in inputs {
            if catch_unwind(AssertUnwindSafe(|| parse(&input))).is_err() {
                let shown: String = String::from_utf8_lossy(&input).chars().take(400).collect();
                panic!(
                    "{name}: a parser panicked on this input ({} bytes): {shown:?}",
                    input.len()
                );
            }
            runs += 1;
        }
    }
    runs
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(path: &str) -> Vec<u8> {
    read(&common::repo().join(path))
}

/// A scratch file the file-based parsers read.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().expect("tempdir"))
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).expect("write scratch");
        path
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn npy_depth_files() {
    let seed = svlm_world::npy::encode_npy_f32(2, 3, &[1.0, 2.0, f32::NAN, 0.0, -1.0, 4.5]);
    let runs = replay("npy", &[seed], 256, |b| {
        let _ = svlm_world::npy::parse_npy(b);
    });
    assert!(runs > 100);
    // A header that claims 2^40 x 2^40 floats is an error, not an allocation.
    let huge = text(&svlm_world::npy::encode_npy_f32(1, 1, &[1.0]))
        .replace("(1, 1)", "(1099511627776, 1099511627776)");
    assert!(svlm_world::npy::parse_npy(huge.as_bytes()).is_err());
}

#[test]
fn coco_rle_and_annotations() {
    let counts = svlm_world::coco::mask_to_rle(&[false, true, true, false, true, false], 2, 3);
    let rle = svlm_world::coco::encode_rle_string(&counts);
    replay("coco_rle", &[rle.into_bytes(), b"0".to_vec()], 64, |b| {
        if let Ok(counts) = svlm_world::coco::decode_rle_string(&text(b)) {
            let _ = svlm_world::coco::rle_to_mask(&counts, 3, 4);
        }
    });
    let huge = svlm_world::coco::encode_rle_string(&[u32::MAX, u32::MAX]);
    if let Ok(counts) = svlm_world::coco::decode_rle_string(&huge) {
        assert!(svlm_world::coco::rle_to_mask(&counts, 2, 2).is_err());
    }
    let file = br#"{"images":[{"id":1,"file_name":"a.png","width":4,"height":3}],
        "categories":[{"id":7,"name":"mug"}],
        "annotations":[{"id":1,"image_id":1,"category_id":7,"bbox":[0,0,2,2],
          "segmentation":{"counts":[0,2,10],"size":[3,4]}},
          {"id":2,"image_id":1,"category_id":7,"bbox":[1,1,2,1],
          "segmentation":[[0,0,2,0,2,2]]}]}"#;
    replay("coco_json", &[file.to_vec()], 1 << 12, |b| {
        let path = Path::new("annotations.json");
        if let Ok(coco) = svlm_world::coco::CocoFile::parse(path, &text(b)) {
            let _ = coco.image_by_stem("a");
        }
    });
}

#[test]
fn answers() {
    let seeds: Vec<Vec<u8>> = [
        "About 1.2 meters.",
        "3-4 feet",
        "Yes, the red cube is to the left.",
        "The red cube.",
        "At 3 o'clock.",
        "45 degrees",
        "1'2\" or 35.5 cm",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let options = vec!["red cube".to_string(), "blue ball".to_string()];
    replay("answers", &seeds, 64, |b| {
        let t = text(b);
        let _ = svlm_answers::parse_length(&t);
        let _ = svlm_answers::parse_yes_no(&t);
        let _ = svlm_answers::parse_choice(&t, &options);
        let _ = svlm_answers::parse_clock(&t);
        let _ = svlm_answers::parse_angle_degrees(&t);
    });
}

#[test]
fn run_configs() {
    let dir = common::repo().join("configs");
    let seeds = vec![
        read(&dir.join("base.toml")),
        read(&dir.join("tiny_cpu.toml")),
    ];
    replay("run_config", &seeds, 1 << 12, |b| {
        let _ = svlm_train::RunConfig::from_toml_str(&text(b), &dir);
    });
}

#[test]
fn chat_templates() {
    let seeds = vec![
        fixture("crates/svlm-processor/tests/fixtures/smolvlm/chat_template.jinja"),
        fixture("crates/svlm-processor/tests/fixtures/llava/chat_template.jinja"),
    ];
    let messages = vec![
        svlm_processor::chat::ChatMessage::user_with_images(1, "How far?"),
        svlm_processor::chat::ChatMessage::text("assistant", "1 m."),
    ];
    let special = svlm_processor::SpecialTokens::default();
    replay("chat_template", &seeds, 1 << 12, |b| {
        if let Ok(template) = svlm_processor::chat::ChatTemplate::new(&text(b)) {
            let _ = template.render(&messages, true, &special);
        }
    });
}

#[test]
fn openai_compatible_replies() {
    let reply = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"1.2 m",
        "tool_calls":[{"id":"c1","type":"function","function":{"name":"ask_vlm","arguments":"{\"question\":\"q\"}"}}]},
        "finish_reason":"stop"}]}"#;
    replay("openai_reply", &[reply.to_vec()], 1 << 12, |b| {
        let _ = svlm_reason::llm::parse_reply("http://localhost/v1", &text(b));
    });
}

#[test]
fn synthesis_records() {
    let scratch = Scratch::new();
    let seeds = vec![fixture("crates/svlm-eval/tests/fixtures/synth_small.jsonl")];
    replay("synth_jsonl", &seeds, 1 << 14, |b| {
        let path = scratch.write("set.jsonl", b);
        let _ = svlm_eval::read_synth(&path, None);
    });
}

#[test]
fn gguf_files() {
    let scratch = Scratch::new();
    let seeds = vec![fixture("crates/svlm-model/tests/fixtures/gguf_quants.gguf")];
    replay("gguf", &seeds, 1 << 12, |b| {
        let path = scratch.write("m.gguf", b);
        if let Ok(file) = svlm_model::gguf::GgufFile::open(&path) {
            let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
            for name in names {
                let _ = file.dequantize(&name);
            }
        }
    });
}

#[test]
fn safetensors_headers() {
    let scratch = Scratch::new();
    let seeds = vec![fixture(
        "crates/svlm-model/tests/fixtures/idefics3/reference.safetensors",
    )];
    let header = u64::from_le_bytes(seeds[0][..8].try_into().expect("8 bytes")) as usize;
    replay("safetensors", &seeds, 8 + header, |b| {
        let path = scratch.write("model.safetensors", b);
        let _ = svlm_model::io::read_safetensors_file(&path);
    });
    // A header that claims 2^60 bytes is an error naming the file.
    let mut huge = seeds[0].clone();
    huge[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let path = scratch.write("huge.safetensors", &huge);
    let Err(err) = svlm_model::io::read_safetensors_file(&path) else {
        panic!("a 2^60-byte header was accepted");
    };
    assert!(format!("{err:#}").contains("huge.safetensors"), "{err:#}");
}

#[test]
fn intrinsics_files() {
    let scratch = Scratch::new();
    let seeds = vec![
        br#"{"folder": {"hfov_deg": 70}, "per_image": {"a.jpg": {"fx": 500, "fy": 500, "cx": 2, "cy": 1}}}"#
            .to_vec(),
    ];
    replay("intrinsics", &seeds, 1 << 10, |b| {
        let path = scratch.write("intrinsics.json", b);
        let _ = svlm_perception::IntrinsicsOptions::from_json_file(&path);
    });
}

/// The seeds `scripts/make_fuzz_seeds.py` wrote for a fuzz target.
fn fuzz_seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = common::repo().join("fuzz/seeds").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths.iter().map(|p| read(p)).collect()
}

#[test]
fn depth_png_and_tiff() {
    let png_seeds = fuzz_seeds("depth_png");
    let seed = svlm_world::depth_from_png(&png_seeds[0], Path::new("seed.depth.png"))
        .expect("the PNG seed decodes");
    assert_eq!((seed.width, seed.height), (3, 2));
    replay("depth_png", &png_seeds, 1 << 10, |b| {
        let _ = svlm_world::depth_from_png(b, Path::new("frame.depth.png"));
    });
    let tiff_seeds = fuzz_seeds("depth_tiff");
    let seed = svlm_world::depth_from_tiff(&tiff_seeds[0], Path::new("seed.depth.tiff"))
        .expect("the TIFF seed decodes");
    assert_eq!((seed.width, seed.height), (3, 2));
    replay("depth_tiff", &tiff_seeds, 1 << 10, |b| {
        let _ = svlm_world::depth_from_tiff(b, Path::new("frame.depth.tiff"));
    });
    // A float image where 16-bit millimetres belong is an error that names the file.
    let err = svlm_world::depth_from_png(&tiff_seeds[0], Path::new("dir/x.depth.png"))
        .expect_err("not 16-bit");
    assert!(err.to_string().contains("dir/x.depth.png"), "{err}");
}

#[test]
fn folder_intrinsics() {
    let seeds = fuzz_seeds("intrinsics");
    assert!(svlm_world::parse_intrinsics(&text(&seeds[0]), Path::new("intrinsics.json")).is_ok());
    replay("folder_intrinsics", &seeds, 1 << 10, |b| {
        let _ = svlm_world::parse_intrinsics(&text(b), Path::new("intrinsics.json"));
    });
}

#[test]
fn sharded_safetensors_index() {
    let scratch = Scratch::new();
    let shard = fixture("crates/svlm-model/tests/fixtures/idefics3/model.safetensors");
    scratch.write("model-00001-of-00001.safetensors", &shard);
    let index = br#"{"metadata": {"total_size": 435000},
        "weight_map": {"model.text_model.norm.weight": "model-00001-of-00001.safetensors",
                       "lm_head.weight": "model-00001-of-00001.safetensors"}}"#;
    replay("safetensors_index", &[index.to_vec()], 1 << 10, |b| {
        scratch.write("model.safetensors.index.json", b);
        let _ = svlm_model::io::read_checkpoint_dir(scratch.0.path());
    });
    // A shard name that leaves the folder is refused, naming the index.
    let escape = br#"{"weight_map": {"x": "../../model.safetensors"}}"#;
    scratch.write("model.safetensors.index.json", escape);
    let Err(err) = svlm_model::io::read_checkpoint_dir(scratch.0.path()) else {
        panic!("a shard name that leaves the folder was accepted");
    };
    assert!(
        format!("{err:#}").contains("model.safetensors.index.json"),
        "{err:#}"
    );
}

#[test]
fn parquet_records() {
    let scratch = Scratch::new();
    let records: Vec<(svlm_synth::record::SpatialRecord, Vec<u8>)> = text(&fixture(
        "crates/svlm-eval/tests/fixtures/synth_small.jsonl",
    ))
    .lines()
    .map(|l| {
        (
            serde_json::from_str(l).expect("record"),
            vec![0x89, b'P', 1, 2],
        )
    })
    .collect();
    let seed_path = scratch.0.path().join("seed.parquet");
    let file = std::fs::File::create(&seed_path).expect("create");
    let mut writer = svlm_synth::parquet_io::ParquetShardWriter::new(file).expect("writer");
    writer.write(&records).expect("write");
    writer.finish().expect("finish");
    let seed = read(&seed_path);
    assert_eq!(
        svlm_synth::parquet_io::read_parquet(&seed_path).expect("seed reads"),
        records
    );
    replay("parquet", std::slice::from_ref(&seed), seed.len(), |b| {
        let path = scratch.write("shard.parquet", b);
        let _ = svlm_synth::parquet_io::read_parquet(&path);
    });
}

/// Inputs on which a fuzz target crashed or hung (`fuzz/regressions/<target>/`, also replayed by
/// `scripts/fuzz.sh`): each is now an error at once, naming the file where the parser reads one.
#[test]
fn fuzz_regressions() {
    let inputs = |target: &str| -> Vec<(String, Vec<u8>)> {
        let dir = common::repo().join("fuzz/regressions").join(target);
        let mut found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    read(&e.path()),
                )
            })
            .collect();
        found.sort();
        assert!(!found.is_empty(), "{}: no inputs", dir.display());
        found
    };
    for (name, bytes) in inputs("npy") {
        let started = std::time::Instant::now();
        let result = catch_unwind(|| svlm_world::npy::parse_npy(&bytes));
        assert!(matches!(result, Ok(Err(_))), "npy/{name}: not an error");
        assert!(started.elapsed().as_secs_f64() < 1.0, "npy/{name}: slow");
    }
    let scratch = Scratch::new();
    for (name, bytes) in inputs("parquet_records") {
        let path = scratch.write("shard.parquet", &bytes);
        let result = catch_unwind(AssertUnwindSafe(|| {
            svlm_synth::parquet_io::read_parquet(&path)
        }));
        let err = match result {
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(_)) => panic!("parquet_records/{name}: read as a shard"),
            Err(_) => panic!("parquet_records/{name}: the reader's panic escaped"),
        };
        assert!(
            err.contains("shard.parquet"),
            "parquet_records/{name}: {err}"
        );
    }
}
