//! The stages connect as they are written: `svlm synth --shard i/n` folders, JSONL and Parquet, are a training
//! source and an evaluation set without any conversion, and a folder whose shard count changed is never read
//! twice. Trains two steps of the tiny Idefics3 fixture (svlm-model's parity fixture), so it takes seconds.
//!
//! Run alone with `cargo test -p svlm-cli --test synth_to_train_eval`.

use std::path::{Path, PathBuf};

mod common;
use common::{ok, path, svlm};

fn synth(out: &Path, shard: &str, format: &str) {
    ok(svlm(&[
        "synth",
        "--out",
        path(out),
        "--scenes",
        "6",
        "--shard",
        shard,
        "--format",
        format,
        "--qa-per-image",
        "2",
        "--image-size",
        "64x48",
        "--objects",
        "2-3",
        "--min-visible-pixels",
        "20",
        "--quiet",
    ]));
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// QA of the shards `manifest.json` lists as finished.
fn manifest_qa(dir: &Path) -> u64 {
    read_json(&dir.join("manifest.json"))["totals"]["qa"]
        .as_u64()
        .expect("totals.qa")
}

/// `svlm eval` of `model` on `data`; the number of questions asked.
fn eval_items(model: &Path, data: &Path, out: &Path) -> u64 {
    ok(svlm(&[
        "eval",
        "--model",
        path(model),
        "--data",
        path(data),
        "--out",
        path(out),
        "--max-new-tokens",
        "4",
    ]));
    read_json(&out.join("report.json"))["items"]
        .as_u64()
        .expect("items")
}

fn fixture_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../svlm-model/tests/fixtures/idefics3")
}

fn run_config(dir: &Path, sources: &[(&str, &Path, Option<&str>)]) -> PathBuf {
    let mut text = format!(
        "seed = 1\n[model]\npretrained = {:?}\nmax_seq_len = 1024\n[train]\nstage = \"finetune\"\nsteps = 2\n\
         batch_size = 2\n[optim]\nlr = 1e-3\n[log]\nprogress = false\ntensorboard = false\n",
        path(&std::fs::canonicalize(fixture_model()).expect("fixture"))
    );
    for (name, data, format) in sources {
        text.push_str(&format!(
            "[[data.sources]]\nname = \"{name}\"\npath = {:?}\nweight = 1.0\n",
            path(data)
        ));
        if let Some(format) = format {
            text.push_str(&format!("format = \"{format}\"\n"));
        }
    }
    let config = dir.join("run.toml");
    std::fs::write(&config, text).expect("write config");
    config
}

#[test]
fn synth_shards_are_a_train_source_and_an_eval_set_as_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let jsonl = tmp.path().join("jsonl");
    let parquet = tmp.path().join("parquet");
    for shard in ["0/2", "1/2"] {
        synth(&jsonl, shard, "jsonl");
        synth(&parquet, shard, "parquet");
    }
    let all_qa = manifest_qa(&jsonl);
    assert!(all_qa > 0);
    assert_eq!(manifest_qa(&parquet), all_qa, "same scenes, same questions");

    // Both folders train as they are, with the format found from the shards.
    let config = run_config(
        tmp.path(),
        &[("jsonl", &jsonl, None), ("parquet", &parquet, None)],
    );
    let run = tmp.path().join("run");
    ok(svlm(&[
        "train",
        "--config",
        path(&config),
        "--out",
        path(&run),
    ]));

    // The run folder evaluates without --processor (its config names the tokenizer's folder), on either folder.
    assert_eq!(
        eval_items(&run, &parquet, &tmp.path().join("eval_parquet")),
        all_qa
    );
    assert_eq!(
        eval_items(&run, &jsonl, &tmp.path().join("eval_jsonl")),
        all_qa
    );

    // Resharding into the same folder: only the manifest's shards count, never a record twice.
    synth(&jsonl, "0/3", "jsonl");
    let resharded = manifest_qa(&jsonl);
    assert!(resharded < all_qa, "{resharded} of {all_qa}");
    assert_eq!(
        eval_items(&run, &jsonl, &tmp.path().join("eval_resharded")),
        resharded
    );

    // A format that does not match the data is named, not reported as thousands of malformed rows.
    let wrong = run_config(tmp.path(), &[("parquet", &parquet, Some("synth_jsonl"))]);
    let failed = svlm(&[
        "train",
        "--config",
        path(&wrong),
        "--out",
        path(&tmp.path().join("bad")),
    ]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains("format = \"synth_jsonl\"") && stderr.contains("parquet"),
        "{stderr}"
    );
    let shard_file = parquet.join("shard-00000-of-00002.parquet");
    let wrong = run_config(tmp.path(), &[("parquet", &shard_file, Some("synth_jsonl"))]);
    let failed = svlm(&[
        "train",
        "--config",
        path(&wrong),
        "--out",
        path(&tmp.path().join("bad2")),
    ]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("a Parquet file"), "{stderr}");
}

/// `svlm synth` output trains the tiny random Qwen2.5-VL (svlm-model's parity fixture, with its processor) through
/// `svlm train` in packed rows, images of varying size included: the frozen vision tower comes out bit for bit as
/// it went in, the merger and the language model move; the run answers through `svlm ask` and exports to a folder
/// that loads with the same weights.
#[test]
fn qwen2_5_vl_trains_on_synth_output_with_its_vision_tower_frozen() {
    trains_with_its_vision_tower_frozen(
        "qwen2_5_vl",
        "visual.",
        &["visual.merger."],
        &[
            "visual.merger.mlp.0.weight",
            "model.layers.1.mlp.down_proj.weight",
            "lm_head.weight",
        ],
    );
}

/// The same for the tiny random Qwen3-VL: its DeepStack mergers are connector, so they train with the merger.
#[test]
fn qwen3_vl_trains_on_synth_output_with_its_vision_tower_frozen() {
    trains_with_its_vision_tower_frozen(
        "qwen3_vl",
        "model.visual.",
        &[
            "model.visual.merger.",
            "model.visual.deepstack_merger_list.",
        ],
        &[
            "model.visual.merger.linear_fc1.weight",
            "model.visual.deepstack_merger_list.1.linear_fc2.weight",
            "model.language_model.layers.1.mlp.down_proj.weight",
            "lm_head.weight",
        ],
    );
}

/// Trains svlm-model's parity fixture `fixture` two steps with its vision tower (checkpoint names starting with
/// `tower`, except the `connector` ones) frozen, and checks the tower is unchanged, the `trained` tensors moved, and
/// the export answers through `svlm ask` with the same weights.
fn trains_with_its_vision_tower_frozen(
    fixture: &str,
    tower: &str,
    connector: &[&str],
    trained: &[&str],
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    synth(&data, "0/1", "jsonl");
    let model = std::fs::canonicalize(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../svlm-model/tests/fixtures")
            .join(fixture),
    )
    .expect("fixture");
    let config = tmp.path().join("qwen.toml");
    std::fs::write(
        &config,
        format!(
            "seed = 1\n[model]\npretrained = {:?}\nmax_seq_len = 512\n[train]\nstage = \"finetune\"\nsteps = 2\n\
             batch_size = 2\n[freeze]\nvision = true\n[optim]\nlr = 1e-2\nlr_connector = 1e-2\n[log]\n\
             progress = false\ntensorboard = false\n[[data.sources]]\nname = \"spatial\"\npath = {:?}\nweight = 1.0\n",
            path(&model),
            path(&data)
        ),
    )
    .expect("write config");
    let run = tmp.path().join("run");
    ok(svlm(&[
        "train",
        "--config",
        path(&config),
        "--out",
        path(&run),
    ]));

    let before = svlm_model::io::read_checkpoint_dir(&model).expect("fixture weights");
    let checkpoint = run.join("checkpoint-2");
    let after = svlm_model::io::read_checkpoint_dir(&checkpoint).expect("checkpoint weights");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let (mut vision, mut moved) = (0, Vec::new());
    for (name, tensor) in &before {
        let unchanged = tensor.bytes() == after[name].bytes();
        if name.starts_with(tower) && !connector.iter().any(|c| name.starts_with(c)) {
            assert!(unchanged, "{fixture}: frozen {name} changed");
            vision += 1;
        } else if !unchanged {
            moved.push(name.as_str());
        }
    }
    assert!(vision > 30, "{fixture}: only {vision} vision tensors");
    for part in trained {
        assert!(moved.contains(part), "{fixture}: {part} did not train");
    }

    // An export that holds the trained weights.
    let exported = tmp.path().join("exported");
    ok(svlm(&["export", path(&run), "--out", path(&exported)]));
    // KV-cache generation from the export (an HF folder with the processor files `svlm ask` reads).
    let photo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../svlm-model/tests/fixtures/photo.png");
    let asked = ok(svlm(&[
        "ask",
        "--model",
        path(&exported),
        "--image",
        path(&photo),
        "--max-new-tokens",
        "4",
        "how far is the red cube from the blue chair ?",
    ]));
    assert!(!asked.stdout.is_empty());
    let reloaded = svlm_model::io::read_checkpoint_dir(&exported).expect("exported weights");
    for (name, tensor) in &after {
        assert!(
            tensor.bytes() == reloaded[name].bytes(),
            "{name} differs in the export"
        );
    }
    assert!(exported.join("preprocessor_config.json").is_file());
}
