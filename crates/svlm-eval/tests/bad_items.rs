//! Bad items in an evaluation: malformed rows and items the answerer fails on are listed with their file:line, the
//! rest is scored, and a rerun with the same predictions log asks only what is not answered yet.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use svlm_eval::{EvalOptions, FnAnswerer, evaluate, read_predictions, read_synth};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// synth_small.jsonl (4 records on lines 1-4; 7 spatial questions, 2 of them about scene3) with a line that is not JSON (5) and one that is
/// JSON but not a record (6).
fn hostile_set(dir: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(fixture("synth_small.jsonl")).expect("fixture");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("{\"id\": \"torn\", \"image\": \"images/sce\n");
    text.push_str("{\"unrelated\": true}\n");
    let path = dir.join("set.jsonl");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn malformed_rows_are_listed_by_line_and_the_rest_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = hostile_set(dir.path());
    let set = read_synth(&path, None).expect("read");
    assert_eq!(set.items.len(), 7);
    let bad: Vec<&str> = set.bad.iter().map(|s| s.location.as_str()).collect();
    let shown = path.display().to_string();
    assert_eq!(bad, vec![format!("{shown}:5"), format!("{shown}:6")]);
    assert!(
        set.bad[0].reason.contains("not a JSON object"),
        "{:?}",
        set.bad
    );
    assert!(
        set.bad[1].reason.contains("not an svlm synthesis record"),
        "{:?}",
        set.bad
    );
}

#[test]
fn failed_items_are_listed_the_rest_scored_and_a_rerun_asks_only_what_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = read_synth(&hostile_set(dir.path()), None).expect("read");
    let log = dir.path().join("out/predictions.jsonl");
    std::fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
    let options = EvalOptions {
        batch_size: 3,
        resume_log: Some(log.clone()),
        ..EvalOptions::default()
    };
    let asked = Cell::new(0usize);
    // scene3's image "cannot be opened": any batch holding it fails, as a model answerer does.
    let answer = |batch: &[(PathBuf, String)]| -> anyhow::Result<Vec<String>> {
        if let Some((image, _)) = batch.iter().find(|(i, _)| i.ends_with("scene3.png")) {
            anyhow::bail!("{}: No such file or directory", image.display());
        }
        asked.set(asked.get() + batch.len());
        Ok(vec!["Yes.".to_string(); batch.len()])
    };
    let report = evaluate(&set, &mut FnAnswerer(answer), &options).expect("evaluate");
    assert_eq!(report.items, 5, "all but scene3's 2 questions scored");
    assert_eq!(report.failed.len(), 4, "2 bad rows + scene3's 2 questions");
    let scene3: Vec<_> = report
        .failed
        .iter()
        .filter(|f| f.reason.contains("scene3"))
        .collect();
    assert_eq!(scene3.len(), 2);
    assert!(
        scene3.iter().all(|f| f.location.ends_with("set.jsonl:4")),
        "{scene3:?}"
    );
    assert!(report.to_markdown().contains("Failed items (4"));
    assert_eq!(
        read_predictions(&log).expect("log").len(),
        5,
        "scored items are in the log"
    );
    assert_eq!(asked.get(), 5);

    // A writer killed mid-line leaves a torn line; the rerun drops it and asks only scene3 again.
    let mut text = std::fs::read_to_string(&log).expect("log");
    text.push_str("{\"id\":\"scene3#0\",\"ima");
    std::fs::write(&log, text).expect("tear");
    asked.set(0);
    let answer = |batch: &[(PathBuf, String)]| -> anyhow::Result<Vec<String>> {
        asked.set(asked.get() + batch.len());
        Ok(vec!["Yes.".to_string(); batch.len()])
    };
    let again = evaluate(&set, &mut FnAnswerer(answer), &options).expect("rerun");
    assert_eq!(asked.get(), 2, "only scene3's questions are asked again");
    assert_eq!(again.items, 7);
    assert_eq!(again.failed.len(), 2, "the malformed rows stay listed");
    let logged = read_predictions(&log).expect("log");
    let mut ids: Vec<&str> = logged.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (7, 7), "each item once: {ids:?}");
    let scored: Vec<&str> = again.predictions.iter().map(|p| p.id.as_str()).collect();
    let in_order: Vec<&str> = set.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(scored, in_order, "the report keeps the set's order");
}

#[test]
fn an_answerer_that_answers_nothing_stops_the_run() {
    let set = read_synth(&fixture("synth_small.jsonl"), None).expect("read");
    let mut failing = FnAnswerer(|_: &[(PathBuf, String)]| anyhow::bail!("out of memory"));
    let err = evaluate(&set, &mut failing, &EvalOptions::default()).expect_err("fails");
    assert!(format!("{err:#}").contains("out of memory"), "{err:#}");
}

/// `name` from the fixtures with a torn line inserted after its second line and a line of bytes that are not UTF-8
/// at the end.
fn with_malformed_lines(dir: &Path, name: &str) -> (PathBuf, usize) {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    let lines: Vec<&str> = text.lines().collect();
    let mut bytes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if i == 1 {
            bytes.extend_from_slice(b"{\"question\": \"How far is\n");
        }
    }
    bytes.extend_from_slice(b"\xff\xfe{}\n");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    (path, lines.len())
}

/// A fixture file and the reader of its format.
type Reader = (&'static str, fn(&Path) -> svlm_eval::EvalSet);

#[test]
fn qspatial_and_spatialrgpt_list_malformed_lines_and_read_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let readers: [Reader; 2] = [
        ("qspatial_small.jsonl", |p| {
            svlm_eval::read_qspatial(p, None, None).expect("read Q-Spatial")
        }),
        ("spatialrgpt_small.jsonl", |p| {
            svlm_eval::read_spatialrgpt(p, None).expect("read SpatialRGPT")
        }),
    ];
    for (name, read) in readers {
        let clean = read(&fixture(name));
        let (path, lines) = with_malformed_lines(dir.path(), name);
        let set = read(&path);
        let shown = path.display().to_string();
        let bad: Vec<&str> = set.bad.iter().map(|s| s.location.as_str()).collect();
        assert_eq!(
            bad,
            vec![format!("{shown}:3"), format!("{shown}:{}", lines + 2)],
            "{name}"
        );
        assert!(
            set.bad[0].reason.contains("not a JSON object"),
            "{name}: {:?}",
            set.bad
        );
        assert!(
            set.bad[1].reason.contains("not UTF-8"),
            "{name}: {:?}",
            set.bad
        );
        // Every good line is still read: the same questions and truths as the clean file.
        let questions = |s: &svlm_eval::EvalSet| -> Vec<(String, String)> {
            s.items
                .iter()
                .map(|i| (i.question.clone(), format!("{:?}", i.truth)))
                .collect()
        };
        assert!(!clean.items.is_empty(), "{name}");
        assert_eq!(questions(&set), questions(&clean), "{name}");
        assert_eq!(set.skipped.len(), clean.skipped.len(), "{name}");
    }
}
