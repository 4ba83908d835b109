//! Every command of the README's "Tour" table, run through the binary at tiny sizes in the order a researcher would
//! (quickstart -> world -> synth -> train -> sweep -> export -> eval -> ask -> reason -> reward -> check-device ->
//! bench), each with the flags its row documents. The commands are read from the README itself: a row whose
//! command this test does not run fails it, so the Tour and the binary cannot drift apart.
//!
//! Not run here: `svlm synth --images` (needs a depth model and a detector; `crates/svlm-perception/tests` covers
//! the photo path with tiny models and given depth) and `svlm reason --llm URL` (needs a server; the loopback
//! tests of `crates/svlm-reason/tests/llm_loopback.rs` cover it).
//!
//! Run alone with `cargo test -p svlm-cli --test readme_tour`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

/// The subcommands the README's Tour table documents (`svlm bench synth | model | ...` counts each bench).
fn tour_commands() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let tour = readme
        .split("\n## Tour\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Tour section");
    let mut commands = BTreeSet::new();
    for row in tour.lines().filter(|l| l.starts_with("| `svlm ")) {
        let first_cell = row.split(" | ").next().unwrap_or_default();
        for code in first_cell.split('`').skip(1).step_by(2) {
            let words: Vec<&str> = code.split_whitespace().collect();
            match words.as_slice() {
                ["svlm", "bench", rest @ ..] => {
                    for kind in rest
                        .iter()
                        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
                    {
                        commands.insert(format!("bench {kind}"));
                    }
                }
                ["svlm", sub, ..] => {
                    commands.insert(sub.to_string());
                }
                _ => {}
            }
        }
    }
    commands
}

struct Tour {
    ran: BTreeSet<String>,
}

impl Tour {
    /// Runs `svlm args...`, which must succeed, and records the subcommand.
    fn run(&mut self, args: &[&str]) -> String {
        let name = match args {
            ["bench", kind, ..] => format!("bench {kind}"),
            [sub, ..] => sub.to_string(),
            [] => unreachable!("a command"),
        };
        self.ran.insert(name);
        let output = ok(svlm(args));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_tour_command_runs_as_documented() {
    let documented = tour_commands();
    assert!(documented.len() >= 12, "the Tour table: {documented:?}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| tmp.path().join(name);
    let mut tour = Tour {
        ran: BTreeSet::new(),
    };

    // svlm quickstart [--ratios 0,0.75] [--out DIR] [--jobs N] [--preset default|ci]
    let qs = at("qs");
    tour.run(&[
        "quickstart",
        "--preset",
        "ci",
        "--ratios",
        "0",
        "--out",
        path(&qs),
        "--jobs",
        "1",
        "--quiet",
    ]);
    assert!(qs.join("report.md").is_file());
    let run_config = qs.join("configs/ratio_0.00.toml");
    let test_set = qs.join("data/spatial_test.jsonl");

    // svlm world --out DIR --scenes N [--sequence approach --frames F]
    let world = at("world");
    tour.run(&[
        "world",
        "--out",
        path(&world),
        "--scenes",
        "2",
        "--size",
        "128",
        "--objects",
        "3-5",
    ]);
    let sequence = at("sequence");
    tour.run(&[
        "world",
        "--out",
        path(&sequence),
        "--sequence",
        "approach",
        "--frames",
        "3",
        // Large enough for the gripper's depth pixels in every frame (at 64 px it covers too few to measure).
        "--size",
        "256",
    ]);
    let frame = world.join("scene_000000.png");
    assert!(frame.is_file());

    // svlm synth --out DIR [--scenes N | --rgbd DIR] [--format jsonl|parquet|both] [--shard i/n] [--truth ...]
    let tiny = [
        "--qa-per-image",
        "4",
        "--image-size",
        "64x48",
        "--objects",
        "2-3",
        "--min-visible-pixels",
        "20",
        "--quiet",
    ];
    let synth = at("synth");
    for shard in ["0/2", "1/2"] {
        let mut args = vec![
            "synth",
            "--out",
            path(&synth),
            "--scenes",
            "4",
            "--format",
            "both",
            "--shard",
            shard,
            "--truth",
            "exact",
        ];
        args.extend(tiny);
        tour.run(&args);
    }
    assert!(synth.join("manifest.json").is_file());
    let rgbd = at("synth_rgbd");
    let mut args = vec![
        "synth",
        "--out",
        path(&rgbd),
        "--rgbd",
        path(&world),
        "--format",
        "jsonl",
        "--truth",
        "estimated",
    ];
    args.extend(tiny);
    tour.run(&args);

    // svlm train --config configs/X.toml [--set k=v] [--out RUN] [--resume RUN]
    let run = at("run");
    tour.run(&[
        "train",
        "--config",
        path(&run_config),
        "--set",
        "train.steps=1",
        "--out",
        path(&run),
    ]);
    tour.run(&["train", "--resume", path(&run), "--set", "train.steps=2"]);
    assert!(run.join("checkpoint-2").is_dir());

    // svlm sweep FILE: a grid over the spatial weight of the same config, one step each.
    let sweep_file = at("spatial_ratio.toml");
    std::fs::write(
        &sweep_file,
        format!(
            "base = {:?}\nset = [\"train.steps=1\"]\n\n[grid]\n\"data.sources.spatial.weight\" = [0.0, 0.5]\n",
            path(&run_config)
        ),
    )
    .expect("write sweep");
    let sweep = at("sweep");
    tour.run(&["sweep", path(&sweep_file), "--out", path(&sweep)]);
    assert!(sweep.join("summary.md").is_file());

    // svlm export RUN[/checkpoint-N] --out DIR
    let export = at("export");
    tour.run(&["export", path(&run), "--out", path(&export)]);
    tour.run(&[
        "export",
        path(&run.join("checkpoint-2")),
        "--out",
        path(&at("export_checkpoint")),
    ]);
    assert!(export.join("config.json").is_file() && export.join("tokenizer.json").is_file());

    // svlm eval --model DIR|RUN --data SET --out DIR, and --rescore --data predictions.jsonl
    let eval = at("eval");
    for (model, out) in [(&run, &eval), (&export, &at("eval_export"))] {
        tour.run(&[
            "eval",
            "--model",
            path(model),
            "--data",
            path(&test_set),
            "--out",
            path(out),
            "--limit",
            "4",
            "--max-new-tokens",
            "4",
        ]);
    }
    tour.run(&[
        "eval",
        "--model",
        path(&run),
        "--rescore",
        "--data",
        path(&eval.join("predictions.jsonl")),
        "--out",
        path(&at("rescored")),
    ]);
    // The synth folder, as written, is an evaluation set too.
    tour.run(&[
        "eval",
        "--model",
        path(&run),
        "--data",
        path(&synth),
        "--out",
        path(&at("eval_synth")),
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
    ]);

    // svlm eval --benchmark NAME|all --data PATH|--data-root DIR --model M --out DIR
    let benchmarks = repo().join("crates/svlm-eval/tests/fixtures/benchmarks");
    tour.run(&[
        "eval",
        "--benchmark",
        "cvbench",
        "--data",
        path(&benchmarks.join("cvbench")),
        "--model",
        path(&export),
        "--out",
        path(&at("bench_one")),
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
    ]);
    tour.run(&[
        "eval",
        "--benchmark",
        "all",
        "--data-root",
        path(&benchmarks),
        "--model",
        path(&export),
        "--out",
        path(&at("bench_all")),
        "--limit",
        "1",
        "--max-new-tokens",
        "4",
    ]);
    assert!(at("bench_all").join("leaderboard.md").is_file());

    // svlm ask --model DIR --image photo.jpg "How far is the chair from the table?"
    tour.run(&[
        "ask",
        "--model",
        path(&export),
        "--image",
        path(&frame),
        "How far is the chair from the table?",
        "--max-new-tokens",
        "4",
    ]);

    // svlm reason "QUESTION" --image IMG [--vlm MODEL]: the exact-truth oracle, then the trained model.
    let objects = read_json(&world.join("scene_000000.objects.json"));
    let names: Vec<&str> = objects["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(names.len() >= 2, "{objects}");
    let question = format!(
        "Order the {} and the {} by height, from tallest to shortest.",
        names[0], names[1]
    );
    let answer = tour.run(&[
        "reason",
        &question,
        "--image",
        path(&frame),
        "--out",
        path(&at("reason_oracle")),
    ]);
    assert!(!answer.trim().is_empty());
    // A two-step tiny model may give sub-answers the planner cannot read: then the command fails naming the
    // transcript it kept, which is the documented behaviour; anything else must succeed.
    let with_vlm = svlm(&[
        "reason",
        &question,
        "--image",
        path(&frame),
        "--vlm",
        path(&run),
        "--out",
        path(&at("reason_vlm")),
    ]);
    let stderr = String::from_utf8_lossy(&with_vlm.stderr);
    assert!(
        with_vlm.status.success() || stderr.contains("no answer (transcript in"),
        "svlm reason --vlm: {stderr}"
    );

    // svlm reward --frames DIR --task "distance between the gripper and the red can" [--source geometry|vlm]
    let target = read_json(&sequence.join("sequence.json"))["target"]
        .as_str()
        .expect("target")
        .to_string();
    let task = format!("distance between the gripper and the {target}");
    tour.run(&[
        "reward",
        "--frames",
        path(&sequence),
        "--task",
        &task,
        "--source",
        "geometry",
        "--out",
        path(&at("reward_geometry")),
    ]);
    // The two-step tiny model answers no length: the documented error (fewer than two measured frames), listing
    // each frame's answer; a model that measures must succeed.
    let reward_vlm = at("reward_vlm");
    let from_vlm = svlm(&[
        "reward",
        "--frames",
        path(&sequence),
        "--task",
        &task,
        "--source",
        "vlm",
        "--vlm",
        path(&run),
        "--out",
        path(&reward_vlm),
    ]);
    let stderr = String::from_utf8_lossy(&from_vlm.stderr);
    assert!(
        from_vlm.status.success() || stderr.contains("a reward needs at least two; frame_0000:"),
        "svlm reward --source vlm: {stderr}"
    );

    // svlm check-device --model DIR --device ... [--dtype f32,bf16,f16] (the CPU here).
    tour.run(&[
        "check-device",
        "--model",
        path(&export),
        "--device",
        "cpu",
        "--dtype",
        "f32",
        "--max-new-tokens",
        "2",
        "--repeats",
        "1",
    ]);

    // svlm bench synth | model | train | kernels | photos, each at a tiny size, without the PyTorch reference.
    tour.run(&[
        "bench",
        "synth",
        "--images",
        "2",
        "--width",
        "64",
        "--height",
        "48",
        "--objects",
        "2-3",
        "--qa-per-image",
        "4",
        "--json",
    ]);
    tour.run(&[
        "bench",
        "model",
        "--hidden",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--kv-heads",
        "1",
        "--intermediate",
        "64",
        "--vocab",
        "64",
        "--seq",
        "16",
        "--batch",
        "1",
        "--warmup",
        "0",
        "--iters",
        "1",
        "--no-torch",
    ]);
    tour.run(&[
        "bench",
        "train",
        "--out",
        path(&at("bench_train")),
        "--samples",
        "8",
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--python",
        "none",
    ]);
    tour.run(&[
        "bench",
        "kernels",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--kv-heads",
        "1",
        "--intermediate",
        "64",
        "--vocab",
        "64",
        "--seq",
        "8",
        "--batch",
        "1",
        "--warmup",
        "0",
        "--iters",
        "1",
    ]);
    let perception_fixtures = repo().join("crates/svlm-perception/tests/fixtures");
    tour.run(&[
        "bench",
        "photos",
        "--tiny",
        "--fixtures",
        path(&perception_fixtures),
        "--photos",
        "2",
        "--batch-size",
        "2",
        "--size",
        "96x64",
        "--quiet",
    ]);

    let missing: Vec<&String> = documented.difference(&tour.ran).collect();
    assert!(
        missing.is_empty(),
        "Tour commands this test does not run: {missing:?}"
    );
}
