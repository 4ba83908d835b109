//! Synthesis shards in Parquet (`svlm_synth::parquet_io::read_parquet`), read from a scratch file.
#![no_main]
use std::sync::OnceLock;

static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = SCRATCH.get_or_init(|| tempfile::tempdir().expect("scratch folder"));
    let path = dir.path().join("shard.parquet");
    if std::fs::write(&path, data).is_ok() {
        let _ = svlm_synth::parquet_io::read_parquet(&path);
    }
});
