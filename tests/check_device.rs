//! `svlm check-device` end to end through the binary on the CPU: the tiny Idefics3 parity fixture on the CPU in f32
//! must match the CPU reference pass exactly, a bf16 pass must drift a little but not much, and a precision the
//! device rejects is reported without stopping the others. On a GPU the same command checks the GPU backend
//! (`scripts/gpu_check.sh`, `experiments/gpu.md`).
//!
//! Run alone with `cargo test --workspace --test check_device`.

use std::path::Path;
use std::process::Command;

#[test]
fn cpu_passes_agree_and_bf16_drifts_within_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = tmp.path().join("check.json");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../svlm-model/tests/fixtures/idefics3");
    let out = Command::new(env!("CARGO_BIN_EXE_svlm"))
        .args(["check-device", "--device", "cpu", "--dtype", "f32,bf16"])
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&report)
        .args(["--max-new-tokens", "8", "--repeats", "1"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run svlm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{json}");
    let f32_row = &rows[0];
    assert_eq!(f32_row["dtype"], "f32");
    assert_eq!(f32_row["max_abs_logit_diff"].as_f64(), Some(0.0), "{json}");
    assert_eq!(f32_row["argmax_agreement"].as_f64(), Some(1.0));
    assert_eq!(f32_row["greedy_tokens_equal"], f32_row["greedy_tokens"]);
    assert_eq!(f32_row["greedy_tokens"].as_u64(), Some(8));
    let bf16 = &rows[1];
    assert_eq!(bf16["dtype"], "bf16");
    let drift = bf16["relative_diff"].as_f64().expect("relative diff");
    assert!(drift > 0.0 && drift < 0.1, "bf16 relative drift {drift}");
    assert!(json["prompt_tokens"].as_u64().expect("prompt tokens") > 100);
    assert!(json["failed_passes"].as_array().expect("failed").is_empty());
}

#[test]
fn an_unknown_device_is_an_error_before_any_work() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../svlm-model/tests/fixtures/idefics3");
    let out = Command::new(env!("CARGO_BIN_EXE_svlm"))
        .args(["check-device", "--device", "tpu:0"])
        .arg("--model")
        .arg(&model)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run svlm");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown device `tpu:0`"), "{stderr}");
}
