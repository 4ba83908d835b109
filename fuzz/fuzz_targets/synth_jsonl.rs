//! Synthesis records in JSONL as `svlm eval` reads them (`svlm_eval::read_synth`), from a scratch file.
#![no_main]
use std::sync::OnceLock;

static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = SCRATCH.get_or_init(|| tempfile::tempdir().expect("scratch folder"));
    let path = dir.path().join("set.jsonl");
    if std::fs::write(&path, data).is_ok() {
        let _ = svlm_eval::read_synth(&path, None);
    }
});
