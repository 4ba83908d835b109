//! `svlm synth --approach` end to end through the binary: approach sequences as training records (the gap
//! question, the exact gap) and as RGB-D folders that `svlm reward` annotates, with a strictly falling gap.
//!
//! Run alone with `cargo test -p svlm-cli --test approach_reward`.

mod common;
use common::svlm;

#[test]
fn approach_sequences_become_gap_records_and_reward_folders() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("approach");
    let out_arg = out.to_str().expect("utf-8 path");
    let run = svlm(&[
        "synth",
        "--approach",
        "2",
        "--approach-frames",
        "4",
        "--image-size",
        "160x160",
        "--objects",
        "1-2",
        "--plain-numbers",
        "--seed",
        "3",
        "--out",
        out_arg,
        "--quiet",
    ]);
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.join("approach.jsonl")).expect("approach.jsonl");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    assert_eq!(records.len(), 2 * 4, "one record per frame");
    for r in &records {
        assert!(out.join(r["image"].as_str().expect("image")).is_file());
        let question = r["conversations"][0]["value"].as_str().expect("question");
        assert!(
            question.starts_with("<image>\nWhat is the gap between the gripper and the "),
            "{question}"
        );
        assert_eq!(r["spatial"][0]["type"], "gap");
        assert!(
            r["spatial"][0]["truth"]["meters"]
                .as_f64()
                .is_some_and(|m| m > 0.0)
        );
    }
    for seq in ["seq_0000", "seq_0001"] {
        let dir = out.join("sequences").join(seq);
        let info: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("sequence.json")).expect("sequence.json"),
        )
        .expect("json");
        let target = info["target"].as_str().expect("target");
        // The records of this sequence answer the gaps sequence.json lists.
        let gaps: Vec<f64> = info["gap_m"]
            .as_array()
            .expect("gaps")
            .iter()
            .map(|g| g.as_f64().expect("gap"))
            .collect();
        let index = if seq.ends_with('0') { 0 } else { 1 };
        for (f, gap) in gaps.iter().enumerate() {
            let truth = records[4 * index + f]["spatial"][0]["truth"]["meters"]
                .as_f64()
                .expect("truth");
            assert!(
                (truth - gap).abs() < 1e-9,
                "{seq} frame {f}: {truth} vs {gap}"
            );
        }
        let reward_out = tmp.path().join(format!("reward_{seq}"));
        let task = format!("distance between the gripper and the {target}");
        let reward = svlm(&[
            "reward",
            "--frames",
            dir.to_str().expect("utf-8"),
            "--task",
            &task,
            "--out",
            reward_out.to_str().expect("utf-8"),
        ]);
        assert!(
            reward.status.success(),
            "{}",
            String::from_utf8_lossy(&reward.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(reward_out.join("reward.json")).expect("reward.json"),
        )
        .expect("json");
        assert!(
            report["spearman_rho"].as_f64().is_some_and(|r| r < -0.99),
            "{seq}: {}",
            report["spearman_rho"]
        );
    }

    // Zero sequences is refused before any work.
    let none = svlm(&["synth", "--approach", "0", "--out", out_arg]);
    assert!(!none.status.success());
}
