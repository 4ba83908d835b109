//! The quickstart end to end at CI size (`svlm quickstart --preset ci`, seconds): every stage writes its outputs,
//! the report parses, and a rerun reuses the finished stages and reproduces the same numbers.
//!
//! Run alone with `cargo test -p svlm-cli --test quickstart`.

use std::path::Path;

mod common;
use common::svlm;

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a PNG chart",
        path.display()
    );
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn ci_quickstart_writes_every_stage_and_a_parsable_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("qs");
    let out_arg = out.to_str().expect("utf-8 path");
    // The same arguments for the first run and the rerun, so that the rerun reuses what the first one finished.
    let args = [
        "quickstart",
        "--preset",
        "ci",
        "--out",
        out_arg,
        "--ratios",
        "0,0.5",
        "--quiet",
    ];
    let run = svlm(&args);
    assert!(
        run.status.success(),
        "quickstart failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    // Data: four JSONL files with rows, images they point at.
    let data = out.join("data");
    for name in [
        "spatial_train.jsonl",
        "general_train.jsonl",
        "spatial_test.jsonl",
        "general_test.jsonl",
    ] {
        assert!(lines(&data.join(name)) > 0, "{name} is empty");
    }
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(data.join("spatial_test.jsonl"))
            .expect("read")
            .lines()
            .next()
            .expect("a row"),
    )
    .expect("a synth record");
    let image = first["image"].as_str().expect("image path");
    assert!(data.join(image).is_file(), "{image} missing");
    assert!(first["spatial"].as_array().is_some_and(|a| !a.is_empty()));

    // Model folder: tokenizer trained here, processor and from-scratch config.
    let model = out.join("model");
    for name in [
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "config.json",
        "generation_config.json",
    ] {
        assert!(model.join(name).is_file(), "model/{name} missing");
    }
    let config = read_json(&model.join("config.json"));
    let tokenizer = read_json(&model.join("tokenizer.json"));
    let vocab = tokenizer["model"]["vocab"]
        .as_object()
        .expect("BPE vocab")
        .len()
        + tokenizer["added_tokens"].as_array().map_or(0, |a| a.len());
    assert!(
        config["text_config"]["vocab_size"].as_u64().expect("vocab") as usize >= vocab - 32,
        "the model's vocabulary does not cover the trained tokenizer"
    );

    // One training run and one evaluation per ratio.
    for label in ["ratio_0.00", "ratio_0.50"] {
        let run_dir = out.join("runs").join(label);
        assert!(
            run_dir
                .join("checkpoint-3")
                .join("model.safetensors")
                .is_file(),
            "{label}: no final checkpoint"
        );
        assert_eq!(
            lines(&run_dir.join("metrics.jsonl")),
            3,
            "{label}: one metrics line per step"
        );
        assert!(run_dir.join("config.toml").is_file());
        for family in ["spatial", "general"] {
            let dir = out.join("eval").join(label).join(family);
            let report = read_json(&dir.join("report.json"));
            assert!(
                report["items"].as_u64().expect("items") > 0,
                "{label}/{family}: no questions"
            );
            assert_eq!(
                lines(&dir.join("predictions.jsonl")) as u64,
                report["items"].as_u64().expect("items")
            );
        }
    }

    // The report: JSON with one result per ratio, markdown with its sections, two charts.
    let report = read_json(&out.join("report.json"));
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ratio"].as_f64(), Some(0.0));
    assert_eq!(results[1]["ratio"].as_f64(), Some(0.5));
    for r in results {
        let binary = &r["spatial"]["overall"]["binary"];
        assert!(binary["total"].as_u64().expect("binary total") > 0);
        // Binary = yes/no predicates + "which" choices, each also reported alone.
        let total = |key: &str| r["spatial"]["overall"][key]["total"].as_u64().expect(key);
        assert_eq!(total("yes_no") + total("which"), total("binary"));
        // Every yes/no and "which" reference answer is reasoned, so each is scored step by step too.
        assert_eq!(
            r["spatial"]["reasoning"]["reasoned"].as_u64(),
            binary["total"].as_u64()
        );
        assert!(
            r["general"]["overall"]["count"]
                .as_u64()
                .expect("general count")
                > 0
        );
        assert_eq!(r["steps"].as_u64(), Some(3));
    }
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for section in [
        "## Results on held-out scenes",
        "## Accuracy per question type",
        "## Reasoned answers, step by step",
        "## Example answers",
        "metrics_vs_ratio.png",
    ] {
        assert!(markdown.contains(section), "report.md lacks {section:?}");
    }
    assert_png(&out.join("metrics_vs_ratio.png"));
    assert_png(&out.join("loss_curves.png"));

    // Quantitative answers per type: the prior's constant per length type, a scatter plot per length type held
    // out (the held-out types are those the prior was scored on; report.json keeps their scores per type).
    let held_out_kinds: Vec<&String> = report["prior"]["spatial"]["by_type"]
        .as_object()
        .expect("prior scores per type")
        .keys()
        .collect();
    let length_kinds: std::collections::BTreeSet<String> = report["prior_constants"]
        .as_object()
        .expect("prior constants per length type")
        .keys()
        .filter(|k| held_out_kinds.contains(k))
        .cloned()
        .collect();
    assert!(
        length_kinds.contains("gap"),
        "the held-out approach frames ask the gap: {length_kinds:?}"
    );
    for kind in &length_kinds {
        assert!(
            report["prior_constants"][kind.as_str()]
                .as_f64()
                .is_some_and(|c| c > 0.0),
            "no prior constant for {kind}"
        );
        assert_png(&out.join(format!("scatter_{kind}.png")));
        assert!(
            markdown.contains(&format!("(scatter_{kind}.png)")),
            "report.md does not show scatter_{kind}.png"
        );
    }
    assert!(markdown.contains("## Quantitative answers per type"));
    assert!(markdown.contains("median relative error"));

    // Reward demo: approach frames in the training data and among the held-out questions, held-out sequences
    // annotated from exact depth (strictly falling) and by each model, with their reward.json and plots.
    let approach_rows = |name: &str| {
        std::fs::read_to_string(data.join(name))
            .expect("read")
            .lines()
            .filter(|l| l.contains("\"approach_sequence\""))
            .count()
    };
    assert_eq!(
        approach_rows("spatial_train.jsonl"),
        2 * 3,
        "2 training sequences of 3 frames"
    );
    assert_eq!(
        approach_rows("spatial_test.jsonl"),
        2 * 3,
        "2 held-out sequences of 3 frames"
    );
    let sequences = report["reward"]["sequences"]
        .as_array()
        .expect("reward sequences");
    assert_eq!(sequences.len(), 2);
    for (i, seq) in sequences.iter().enumerate() {
        assert!(seq["task"].as_str().is_some_and(|t| t.contains("gripper")));
        assert_eq!(seq["geometry"]["strictly_decreasing"], true);
        assert!(
            seq["geometry"]["spearman_rho"]
                .as_f64()
                .is_some_and(|r| r < -0.99)
        );
        assert_eq!(seq["models"].as_array().map(Vec::len), Some(2));
        assert_eq!(seq["true_gap_m"].as_array().map(Vec::len), Some(4));
        for source in ["geometry", "ratio_0.00", "ratio_0.50"] {
            let dir = out.join("reward").join(format!("seq_{i}")).join(source);
            assert!(
                dir.join("reward.json").is_file(),
                "reward/seq_{i}/{source}/reward.json missing"
            );
            assert_png(&dir.join("reward.png"));
        }
    }
    for plot in ["geometry", "ratio_0.00", "ratio_0.50"] {
        assert_png(&out.join("reward").join(format!("{plot}.png")));
        assert!(markdown.contains(&format!("(reward/{plot}.png)")));
    }
    assert!(markdown.contains("## Reward annotation on held-out approach sequences"));
    assert!(markdown.contains("**mean**") && markdown.contains("**worst**"));

    // Multi-step reasoning: composite questions about held-out scenes, every sub-answer beside the exact one.
    let reasoning = report["reasoning"].as_array().expect("reasoning examples");
    assert!(!reasoning.is_empty());
    for example in reasoning {
        let subs = example["sub_answers"].as_array().expect("sub-answers");
        assert_eq!(subs.len(), 2, "two objects, one sub-question each");
        for sub in subs {
            let truth = sub["truth"].as_str().expect("truth");
            assert!(
                truth.contains("meter") || truth.contains("centimeter"),
                "{truth}"
            );
        }
        assert!(
            example["exact_answer"]
                .as_str()
                .is_some_and(|a| !a.is_empty())
        );
        assert_eq!(example["ratio"].as_f64(), Some(0.5));
    }
    assert!(markdown.contains("## Multi-step reasoning on held-out scenes"));

    // A rerun keeps data, model and finished runs, and evaluates the same checkpoints to the same numbers.
    let again = svlm(&args);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let rerun = read_json(&out.join("report.json"));
    for (a, b) in results
        .iter()
        .zip(rerun["results"].as_array().expect("results"))
    {
        assert_eq!(a["spatial"]["overall"], b["spatial"]["overall"]);
        assert_eq!(a["general"]["overall"], b["general"]["overall"]);
        assert_eq!(a["final_loss"], b["final_loss"]);
    }
}

#[test]
fn bad_ratios_are_rejected_before_any_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("qs");
    let run = svlm(&[
        "quickstart",
        "--preset",
        "ci",
        "--out",
        out.to_str().expect("utf-8"),
        "--ratios",
        "0,1.5",
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("1.5"), "{stderr}");
    assert!(
        !out.join("data").exists(),
        "work started despite the bad flag"
    );

    // A device the binary was not built for (CI builds the CPU backend only) fails before any work.
    let run = svlm(&[
        "quickstart",
        "--preset",
        "ci",
        "--out",
        out.to_str().expect("utf-8"),
        "--device",
        "cuda",
    ]);
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("cuda"), "{stderr}");
        assert!(
            !out.join("data").exists(),
            "work started despite the unusable device"
        );
    }
}
