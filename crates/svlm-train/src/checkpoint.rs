//! Checkpoints: written into a temporary directory beside the final one and renamed into place, so a crash never
//! leaves a half-written `checkpoint-N`; the last K are kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::batch::SourceTotals;
use crate::loader::LoaderState;

/// File names inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.bpk";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";
pub const CONFIG_FILE: &str = "config.toml";

/// Everything but tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Steps the schedule was planned for.
    pub total_steps: u64,
    pub loader: LoaderState,
    /// Tokens/samples seen so far (for throughput accounting after resume).
    pub samples_seen: u64,
    pub tokens_seen: u64,
    pub totals: Vec<SourceTotals>,
    /// Last validation losses per source.
    pub last_validation: std::collections::BTreeMap<String, f64>,
}

pub use svlm_io::write_atomic;

pub fn checkpoint_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(format!("checkpoint-{step}"))
}

/// Complete checkpoints of a run, by step.
pub fn list_checkpoints(run_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let step = name.strip_prefix("checkpoint-")?.parse::<u64>().ok()?;
            let path = e.path();
            path.join(STATE_FILE).is_file().then_some((step, path))
        })
        .collect();
    out.sort();
    out
}

pub fn latest_checkpoint(run_dir: &Path) -> Option<(u64, PathBuf)> {
    list_checkpoints(run_dir).pop()
}

/// Build a checkpoint in `<run>/.tmp-checkpoint-N-<pid>` with `fill`, then rename it to `<run>/checkpoint-N` and
/// delete all but the newest `keep_last`.
pub fn save_checkpoint(
    run_dir: &Path,
    step: u64,
    keep_last: usize,
    fill: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let tmp = run_dir.join(format!(".tmp-checkpoint-{step}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let final_dir = checkpoint_dir(run_dir, step);
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| format!("{}: {e}", final_dir.display()))?;
    }
    std::fs::rename(&tmp, &final_dir)
        .map_err(|e| format!("rename {} -> {}: {e}", tmp.display(), final_dir.display()))?;
    let all = list_checkpoints(run_dir);
    if all.len() > keep_last {
        for (_, old) in &all[..all.len() - keep_last] {
            if let Err(e) = std::fs::remove_dir_all(old) {
                tracing::warn!("could not delete old checkpoint {}: {e}", old.display());
            }
        }
    }
    Ok(final_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_renamed_into_place_and_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        for step in [10u64, 20, 30] {
            save_checkpoint(dir.path(), step, 2, |d| {
                std::fs::write(d.join(STATE_FILE), "{}").map_err(|e| e.to_string())
            })
            .expect("save");
        }
        let steps: Vec<u64> = list_checkpoints(dir.path())
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(steps, vec![20, 30]);
        // A failing fill leaves no trace and no checkpoint-40.
        let err =
            save_checkpoint(dir.path(), 40, 2, |_| Err("disk full".into())).expect_err("fails");
        assert_eq!(err, "disk full");
        assert_eq!(latest_checkpoint(dir.path()).map(|(s, _)| s), Some(30));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
