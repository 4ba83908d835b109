//! `svlm eval --benchmark all` end to end through the binary: every benchmark's small release-format fixture
//! (`crates/svlm-eval/tests/fixtures/benchmarks/`) answered by the tiny Idefics3 test model, reports and the
//! leaderboard written, and a rerun that keeps every answer instead of asking again.
//!
//! Run alone with `cargo test -p svlm-cli --test eval_benchmarks`.

use std::path::Path;

mod common;
use common::svlm;

#[test]
fn all_benchmarks_run_report_and_resume() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = root.join("crates/svlm-eval/tests/fixtures/benchmarks");
    let model = root.join("crates/svlm-model/tests/fixtures/idefics3");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("eval");
    let args = [
        "eval",
        "--benchmark",
        "all",
        "--data-root",
        data.to_str().expect("utf-8"),
        "--model",
        model.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--max-new-tokens",
        "4",
        "--frames",
        "2",
        "--batch-size",
        "3",
    ];
    let run = svlm(&args);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected = [
        ("cvbench", 4),
        ("blink", 3),
        ("embspatial", 2),
        ("whatsup", 5),
        ("3dsrbench", 5),
        ("vsibench", 4),
        ("qspatial", 2),
        ("spatialrgpt", 2),
    ];
    for (name, n) in expected {
        let dir = out.join(name);
        let predictions = std::fs::read_to_string(dir.join("predictions.jsonl"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(predictions.lines().count(), n, "{name}");
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("report.json")).expect("report.json"),
        )
        .expect("json");
        assert_eq!(report["items"].as_u64(), Some(n as u64), "{name}");
        assert!(dir.join("report.md").is_file());
    }
    let leaderboard = std::fs::read_to_string(out.join("leaderboard.md")).expect("leaderboard");
    for title in ["CV-Bench", "BLINK", "3DSRBench", "VSI-Bench", "What'sUp"] {
        assert!(leaderboard.contains(title), "{leaderboard}");
    }
    let png = std::fs::read(out.join("leaderboard.png")).expect("png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);

    // A rerun answers nothing again and keeps one prediction per question.
    let before = std::fs::read_to_string(out.join("cvbench/predictions.jsonl")).expect("read");
    let rerun = svlm(&args);
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    assert!(rerun.status.success(), "{stdout}");
    assert!(
        stdout.contains("4 questions (4 kept from an earlier run)"),
        "{stdout}"
    );
    let after = std::fs::read_to_string(out.join("cvbench/predictions.jsonl")).expect("read");
    assert_eq!(before, after);

    // An interruption: some benchmarks keep only part of their answers, the last write torn off mid-line, and one
    // benchmark was never reached. The rerun asks only what is missing and ends with one prediction per question.
    let answered = |name: &str| std::fs::read_to_string(out.join(name).join("predictions.jsonl"));
    for (name, keep) in [("cvbench", 2), ("3dsrbench", 3), ("whatsup", 1)] {
        let full = answered(name).expect("predictions");
        let mut cut: String = full.lines().take(keep).map(|l| format!("{l}\n")).collect();
        let torn = full.lines().nth(keep).expect("a line to tear");
        let mut half = torn.len() / 2;
        while !torn.is_char_boundary(half) {
            half -= 1;
        }
        cut.push_str(&torn[..half]);
        std::fs::write(out.join(name).join("predictions.jsonl"), cut).expect("write");
    }
    std::fs::remove_dir_all(out.join("vsibench")).expect("remove");
    let resumed = svlm(&args);
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    for (title, n, kept) in [
        ("CV-Bench", 4, 2),
        ("3DSRBench", 5, 3),
        ("What'sUp", 5, 1),
        ("VSI-Bench", 4, 0),
        ("BLINK", 3, 3),
    ] {
        let line = format!("{n} questions ({kept} kept from an earlier run)");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{title}:")) && l.contains(&line)),
            "{title}: {line}\n{stdout}"
        );
    }
    for (name, n) in expected {
        let text = answered(name).expect("predictions");
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                let row: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
                row["id"].to_string()
            })
            .collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!((ids.len(), unique.len()), (n, n), "{name}: {ids:?}");
    }
    // the resumed reports score every question, kept ones included
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("cvbench/report.json")).expect("report.json"),
    )
    .expect("json");
    assert_eq!(report["items"].as_u64(), Some(4));
}
