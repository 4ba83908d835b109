//! Through the binary: a run folder holds one run; commands that would do nothing fail with a message; `svlm eval`
//! lists bad items, writes what it scored, exits non-zero and resumes.
//!
//! Run alone with `cargo test -p svlm-cli --test run_folders`.

mod common;

use common::*;

#[test]
fn train_refuses_a_folder_that_holds_another_run_unless_resuming_or_overwriting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tiny_set(&tmp.path().join("data"), 3);
    let run = tmp.path().join("run");
    let first = tiny_config(tmp.path(), &data, 3, 3);
    ok(svlm(&[
        "train",
        "--config",
        path(&first),
        "--out",
        path(&run),
    ]));
    assert_eq!(checkpoints(&run), vec![3]);

    // A second run into the same folder is refused, and nothing there is touched.
    let second = tmp.path().join("second.toml");
    std::fs::write(
        &second,
        std::fs::read_to_string(&first)
            .expect("config")
            .replace("steps = 3", "steps = 4")
            .replace("every = 3", "every = 2"),
    )
    .expect("write");
    let err = failed(svlm(&[
        "train",
        "--config",
        path(&second),
        "--out",
        path(&run),
    ]));
    assert!(
        err.contains("holds another run") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(checkpoints(&run), vec![3]);
    assert_eq!(losses(&run).len(), 3);

    // Resuming the finished run trains nothing and says so.
    let resumed = ok(svlm(&["train", "--resume", path(&run)]));
    assert!(
        String::from_utf8_lossy(&resumed.stdout).contains("nothing left to train"),
        "{}",
        text(&resumed)
    );

    // --overwrite replaces the run whole: only the new run's checkpoints and metrics are left.
    ok(svlm(&[
        "train",
        "--config",
        path(&second),
        "--out",
        path(&run),
        "--overwrite",
    ]));
    assert_eq!(checkpoints(&run), vec![2, 4]);
    let steps: Vec<u64> = losses(&run).iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    let config = std::fs::read_to_string(run.join("config.toml")).expect("config");
    assert!(config.contains("steps = 4"), "{config}");

    // --resume on a folder without a complete checkpoint names the way out.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join(".tmp-checkpoint-2-1")).expect("mkdir");
    std::fs::write(
        empty.join("config.toml"),
        std::fs::read(&second).expect("c"),
    )
    .expect("w");
    let err = failed(svlm(&["train", "--resume", path(&empty)]));
    assert!(err.contains("no complete checkpoint"), "{err}");
}

#[test]
fn commands_that_would_do_nothing_fail_with_a_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("frames");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = tmp.path().join("out");
    let err = failed(svlm(&[
        "synth",
        "--rgbd",
        path(&empty),
        "--out",
        path(&out),
        "--quiet",
    ]));
    assert!(
        err.contains("no RGB-D frames") && err.contains(path(&empty)),
        "{err}"
    );
    assert!(!out.join("manifest.json").exists(), "nothing written");

    let err = failed(svlm(&["synth", "--scenes", "0", "--out", path(&out)]));
    assert!(err.contains("nothing to synthesize"), "{err}");

    for args in [
        vec![
            "synth",
            "--scenes",
            "1",
            "--out",
            path(&out),
            "--device",
            "tpu",
        ],
        vec!["train", "--resume", path(&out), "--device", "cpu,gpu"],
        vec![
            "eval", "--model", "m", "--data", "d", "--out", "o", "--device", "cuda:x",
        ],
        vec![
            "ask", "--model", "m", "--image", "i.png", "q", "--device", "tpu",
        ],
    ] {
        let err = failed(svlm(&args));
        assert!(err.contains("--device"), "{args:?}: {err}");
        assert!(
            err.contains("unknown device") || err.contains("not a device index"),
            "{args:?}: {err}"
        );
    }
    assert!(!out.exists(), "no command above wrote anything");
}

#[test]
fn eval_lists_bad_items_writes_what_it_scored_fails_and_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tiny_set(&tmp.path().join("data"), 5);
    let mut text = std::fs::read_to_string(&data).expect("set");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert!(
        records.len() >= 3,
        "scenes with questions: {}",
        records.len()
    );
    let missing = records[1]["image"].as_str().expect("image").to_string();
    std::fs::remove_file(data.parent().expect("dir").join(&missing)).expect("remove image");
    text.push_str("{\"id\": \"torn\", \"conver\n");
    std::fs::write(&data, text).expect("write");

    let out = tmp.path().join("eval");
    let model = tiny_model();
    let args = [
        "eval",
        "--model",
        path(&model),
        "--data",
        path(&data),
        "--out",
        path(&out),
        "--max-new-tokens",
        "2",
        "--batch-size",
        "4",
    ];
    let err = failed(svlm(&args));
    let shown = path(&data).to_string();
    let torn = records.len() + 1;
    assert!(
        err.contains(&format!("{shown}:{torn}")),
        "the torn line: {err}"
    );
    assert!(
        err.contains(&format!("{shown}:2")) && err.contains(&missing),
        "{err}"
    );
    assert!(err.contains("could not be scored"), "{err}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("json");
    let questions = |r: &serde_json::Value| r["spatial"].as_array().map_or(0, Vec::len);
    let scored: usize = records.iter().map(questions).sum::<usize>() - questions(&records[1]);
    assert_eq!(report["items"].as_u64(), Some(scored as u64));
    assert_eq!(
        report["failed"].as_array().map(Vec::len),
        Some(1 + questions(&records[1]))
    );
    let predictions = std::fs::read_to_string(out.join("predictions.jsonl")).expect("preds");
    assert_eq!(predictions.lines().count(), scored);

    // The rerun reuses every prediction (same bytes) and fails the same way.
    failed(svlm(&args));
    let again = std::fs::read_to_string(out.join("predictions.jsonl")).expect("preds");
    assert_eq!(again, predictions);
}

/// (point folder, metrics.jsonl bytes) of each point of a sweep, by name.
fn sweep_metrics(out: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut points: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .expect("sweep folder")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path().join("metrics.jsonl")).unwrap_or_default(),
            )
        })
        .collect();
    points.sort();
    points
}

#[test]
fn sweep_refuses_a_folder_that_holds_another_sweep_and_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tiny_set(&tmp.path().join("data"), 3);
    let base = tiny_config(tmp.path(), &data, 2, 1);
    let sweep = tmp.path().join("sweep.toml");
    let write_sweep = |steps: u64| {
        std::fs::write(
            &sweep,
            format!(
                "base = \"{}\"\nset = [\"train.steps={steps}\"]\n[grid]\n\"optim.lr\" = [1e-3, 2e-3]\n",
                path(&base)
            ),
        )
        .expect("write sweep")
    };
    write_sweep(2);
    let out = tmp.path().join("sweep_out");
    ok(svlm(&["sweep", path(&sweep), "--out", path(&out)]));
    let first = sweep_metrics(&out);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.iter().all(|(_, m)| !m.is_empty()));
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");

    // A second sweep into the folder is refused and changes nothing.
    let err = failed(svlm(&["sweep", path(&sweep), "--out", path(&out)]));
    assert!(
        err.contains("holds another sweep")
            && err.contains("--resume")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(sweep_metrics(&out), first);

    // --resume on a finished sweep trains nothing and writes the same summary.
    ok(svlm(&[
        "sweep",
        path(&sweep),
        "--out",
        path(&out),
        "--resume",
    ]));
    assert_eq!(sweep_metrics(&out), first);
    assert_eq!(
        std::fs::read_to_string(out.join("summary.md")).expect("summary"),
        summary
    );

    // A point stopped after its first checkpoint continues from it to the same losses.
    let (name, _) = &first[1];
    let point = out.join(name);
    std::fs::remove_dir_all(point.join("checkpoint-2")).expect("remove");
    std::fs::remove_file(point.join("report.json")).expect("remove");
    ok(svlm(&[
        "sweep",
        path(&sweep),
        "--out",
        path(&out),
        "--resume",
    ]));
    let resumed = sweep_metrics(&out);
    assert_eq!(resumed[0], first[0], "the finished point was not touched");
    let losses_of = |bytes: &[u8]| -> Vec<(u64, f64)> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("metrics line");
                (
                    v["step"].as_u64().expect("step"),
                    v["loss"].as_f64().expect("loss"),
                )
            })
            .collect()
    };
    let (got, expected) = (losses_of(&resumed[1].1), losses_of(&first[1].1));
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((s, a), (t, b)) in got.iter().zip(&expected) {
        assert_eq!(s, t);
        assert!((a - b).abs() <= 1e-6, "step {s}: {a} resumed vs {b}");
    }

    // Resuming after the sweep file changed is refused point by point: a row must come from one config.
    write_sweep(3);
    let err = failed(svlm(&[
        "sweep",
        path(&sweep),
        "--out",
        path(&out),
        "--resume",
    ]));
    assert!(err.contains("every sweep point failed"), "{err}");
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(summary.contains("another config"), "{summary}");

    // --overwrite starts the sweep over.
    ok(svlm(&[
        "sweep",
        path(&sweep),
        "--out",
        path(&out),
        "--overwrite",
    ]));
    let steps: Vec<usize> = sweep_metrics(&out)
        .iter()
        .map(|(_, m)| losses_of(m).len())
        .collect();
    assert_eq!(steps, vec![3, 3]);
}
