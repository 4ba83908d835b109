//! What the binary tests share: running `svlm`, a tiny synthesis set and a tiny training config.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `svlm` binary: this build's, or `SVLM_TEST_BIN` (a copy, so that a long run is not disturbed by rebuilds).
pub fn svlm_command(args: &[&str]) -> Command {
    let binary = std::env::var_os("SVLM_TEST_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_svlm")), PathBuf::from);
    let mut command = Command::new(binary);
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env("HF_HUB_OFFLINE", "1");
    command
}

pub fn svlm(args: &[&str]) -> Output {
    svlm_command(args).output().expect("run svlm")
}

pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn ok(output: Output) -> Output {
    assert!(output.status.success(), "{}", text(&output));
    output
}

pub fn failed(output: Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tiny random-weight Idefics3 of svlm-model's fixtures (config, weights, tokenizer, processor).
pub fn tiny_model() -> PathBuf {
    repo().join("crates/svlm-model/tests/fixtures/idefics3")
}

/// Synthesis arguments of a small, fast set (the same flags give the same bytes).
pub fn synth_args(out: &Path, scenes: usize) -> Vec<String> {
    [
        "synth",
        "--out",
        path(out),
        "--scenes",
        &scenes.to_string(),
        "--qa-per-image",
        "4",
        "--image-size",
        "64x48",
        "--objects",
        "2-3",
        "--min-visible-pixels",
        "20",
        "--short-answers",
        "--plain-phrasing",
        "--chunk-size",
        "2",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Synthesizes `scenes` scenes into `out` and returns the shard file.
pub fn tiny_set(out: &Path, scenes: usize) -> PathBuf {
    let args = synth_args(out, scenes);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(svlm(&args));
    out.join("shard-00000-of-00001.jsonl")
}

/// A run config training the tiny Idefics3 from scratch on `data` for `steps` steps, a checkpoint every
/// `every` steps.
pub fn tiny_config(dir: &Path, data: &Path, steps: u64, every: u64) -> PathBuf {
    let base = repo().join("configs/base.toml");
    let text = format!(
        r#"extends = "{base}"
name = "tiny"

[model]
config = "{model}"
max_seq_len = 128

[train]
stage = "full"
steps = {steps}
batch_size = 2
device = "cpu"

[optim]
lr = 1e-3
warmup_steps = 1

[[data.sources]]
name = "spatial"
path = "{data}"
format = "synth_jsonl"
weight = 1.0

[log]
tensorboard = false
progress = false

[checkpoint]
every = {every}
keep_last = 2
"#,
        base = path(&base),
        model = path(&tiny_model().join("config.json")),
        data = path(data),
    );
    let config = dir.join("tiny.toml");
    std::fs::write(&config, text).expect("write config");
    config
}

/// (step, loss) of each line of a run's metrics.jsonl.
pub fn losses(run: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("metrics line");
            (
                v["step"].as_u64().expect("step"),
                v["loss"].as_f64().expect("loss"),
            )
        })
        .collect()
}

/// The checkpoint-N folders of a run, by step.
pub fn checkpoints(run: &Path) -> Vec<u64> {
    let mut steps: Vec<u64> = std::fs::read_dir(run)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse()
                .ok()
        })
        .collect();
    steps.sort();
    steps
}
