//! Checkpoints: written into a temporary directory beside the final one and renamed into place, so a crash never
//! leaves a half-written `checkpoint-N`; the last K are kept.

use anyhow::Context;
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

/// Where a checkpoint's tokenizer/processor files are: the checkpoint folder itself or its run folder when either
/// holds `tokenizer.json`, else the folder the run's saved config names (`model.tokenizer`, the pretrained folder,
/// or the from-scratch `model.config` file's folder).
pub fn processor_dir_of(checkpoint: &Path) -> Option<PathBuf> {
    let run_dir = checkpoint.parent();
    if let Some(dir) = [Some(checkpoint), run_dir]
        .into_iter()
        .flatten()
        .find(|d| d.join("tokenizer.json").is_file())
    {
        return Some(dir.to_path_buf());
    }
    let config = [Some(checkpoint), run_dir]
        .into_iter()
        .flatten()
        .map(|d| d.join("config.toml"))
        .find(|p| p.is_file())?;
    let config = crate::config::RunConfig::load(&config, &[]).ok()?;
    let model = &config.model;
    model
        .tokenizer
        .clone()
        .or_else(|| model.pretrained.as_ref().map(PathBuf::from))
        .or_else(|| {
            model
                .config
                .as_ref()
                .and_then(|c| c.parent().map(Path::to_path_buf))
        })
        .filter(|d| d.join("tokenizer.json").is_file())
}

/// Build a checkpoint in `<run>/.tmp-checkpoint-N-<pid>` with `fill`, then rename it to `<run>/checkpoint-N` and
/// delete all but the newest `keep_last`.
pub fn save_checkpoint(
    run_dir: &Path,
    step: u64,
    keep_last: usize,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let tmp = run_dir.join(format!(".tmp-checkpoint-{step}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    svlm_synth::crash_point::pause_point("checkpoint");
    let final_dir = checkpoint_dir(run_dir, step);
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).with_context(|| final_dir.display().to_string())?;
    }
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("rename {} -> {}", tmp.display(), final_dir.display()))?;
    let all = list_checkpoints(run_dir);
    if all.len() > keep_last {
        for (step, old) in &all[..all.len() - keep_last] {
            if let Err(e) = remove_checkpoint(run_dir, *step, old) {
                tracing::warn!("could not delete old checkpoint {}: {e}", old.display());
            }
        }
    }
    Ok(final_dir)
}

/// Deletes a checkpoint by renaming it out of the `checkpoint-N` namespace first: a process killed while deleting
/// leaves a `.tmp-` folder (removed on resume), never a `checkpoint-N` with some of its files gone.
fn remove_checkpoint(run_dir: &Path, step: u64, dir: &Path) -> std::io::Result<()> {
    let doomed = run_dir.join(format!(
        ".tmp-delete-checkpoint-{step}-{}",
        std::process::id()
    ));
    std::fs::rename(dir, &doomed)?;
    std::fs::remove_dir_all(&doomed)
}

/// Names in a folder that show it holds a training run: what the trainer writes first (`config.toml`), its
/// metrics, reports and TensorBoard folder, and checkpoints, complete or not. Other files (a `train.log` a
/// launcher redirects output to, notes) do not count.
pub fn run_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| {
            matches!(
                name.as_str(),
                CONFIG_FILE | "metrics.jsonl" | "report.json" | "report.md" | "tb"
            ) || name.starts_with("checkpoint-")
                || name.starts_with(".tmp-checkpoint-")
        })
        .collect();
    names.sort();
    names
}

/// How a run may use its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunDirUse {
    /// A new run: the folder must not hold another run.
    New,
    /// A new run replacing whatever the folder holds.
    Overwrite,
    /// Continue the run the folder holds from its newest complete checkpoint.
    Resume,
}

/// Makes `dir` ready for a run, so that a folder only ever holds one run:
/// - `New` refuses a folder that holds a run ([`run_files`]) and names what is there;
/// - `Overwrite` renames the folder aside in one step and deletes it, then creates it empty: a process killed on
///   the way leaves the old run whole or gone, never a mix of two runs;
/// - `Resume` needs a complete checkpoint and removes what killed writers left (`.tmp-*` files and folders).
pub fn claim_run_dir(dir: &Path, usage: RunDirUse) -> Result<(), RunDirError> {
    let io = |action: String| move |source| RunDirError::Io { action, source };
    let shown = dir.display();
    match usage {
        RunDirUse::New => {
            let found = run_files(dir);
            if !found.is_empty() {
                return Err(RunDirError::HoldsRun {
                    dir: dir.to_path_buf(),
                    found,
                });
            }
        }
        RunDirUse::Overwrite => {
            if dir.exists() {
                let name = dir.file_name().ok_or_else(|| RunDirError::Unnamed {
                    dir: dir.to_path_buf(),
                })?;
                let aside = dir.with_file_name(format!(
                    ".{}.overwritten-{}",
                    name.to_string_lossy(),
                    std::process::id()
                ));
                std::fs::rename(dir, &aside)
                    .map_err(io(format!("moving {shown} aside to {}", aside.display())))?;
                std::fs::remove_dir_all(&aside)
                    .map_err(io(format!("deleting {}", aside.display())))?;
            }
        }
        RunDirUse::Resume => {
            if latest_checkpoint(dir).is_none() {
                return Err(RunDirError::NothingToResume {
                    dir: dir.to_path_buf(),
                });
            }
            for entry in std::fs::read_dir(dir)
                .map_err(io(shown.to_string()))?
                .flatten()
            {
                if entry.file_name().to_string_lossy().starts_with(".tmp") {
                    let path = entry.path();
                    let removed = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    removed.map_err(io(format!("removing {}", path.display())))?;
                }
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(io(shown.to_string()))
}

/// Why a folder cannot take a run ([`claim_run_dir`]).
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error(
        "{shown} holds another run ({names}): continue it with --resume {shown}, or start over with --overwrite \
         (deletes it), or pick another --out",
        shown = .dir.display(),
        names = .found.join(", ")
    )]
    HoldsRun { dir: PathBuf, found: Vec<String> },
    #[error("{}: cannot overwrite a folder without a name", dir.display())]
    Unnamed { dir: PathBuf },
    #[error(
        "{shown} has no complete checkpoint to resume (killed before its first one?): start over with --config \
         FILE --out {shown} --overwrite",
        shown = .dir.display()
    )]
    NothingToResume { dir: PathBuf },
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_renamed_into_place_and_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        for step in [10u64, 20, 30] {
            save_checkpoint(dir.path(), step, 2, |d| {
                Ok(std::fs::write(d.join(STATE_FILE), "{}")?)
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
            save_checkpoint(dir.path(), 40, 2, |_| anyhow::bail!("disk full")).expect_err("fails");
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(latest_checkpoint(dir.path()).map(|(s, _)| s), Some(30));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    fn touch(path: &Path) {
        std::fs::write(path, "x").expect("write");
    }

    #[test]
    fn a_new_run_refuses_a_folder_that_holds_a_run_and_names_what_is_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        claim_run_dir(&run, RunDirUse::New).expect("a missing folder is created");
        touch(&run.join("train.log"));
        claim_run_dir(&run, RunDirUse::New).expect("a launcher's log is not a run");
        touch(&run.join(CONFIG_FILE));
        std::fs::create_dir_all(run.join("checkpoint-4")).expect("mkdir");
        let err = claim_run_dir(&run, RunDirUse::New)
            .expect_err("holds a run")
            .to_string();
        assert!(
            err.contains("config.toml, checkpoint-4") || err.contains("checkpoint-4, config.toml"),
            "{err}"
        );
        assert!(
            err.contains("--resume") && err.contains("--overwrite"),
            "{err}"
        );
        assert!(run.join(CONFIG_FILE).is_file(), "refusing deletes nothing");
    }

    #[test]
    fn overwrite_leaves_an_empty_folder_and_nothing_beside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("checkpoint-4")).expect("mkdir");
        touch(&run.join("checkpoint-4").join(STATE_FILE));
        touch(&run.join("metrics.jsonl"));
        claim_run_dir(&run, RunDirUse::Overwrite).expect("overwrite");
        assert_eq!(std::fs::read_dir(&run).expect("read").count(), 0);
        let beside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(beside, vec![std::ffi::OsString::from("run")]);
    }

    #[test]
    fn resume_needs_a_complete_checkpoint_and_clears_what_killed_writers_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join(".tmp-checkpoint-8-123")).expect("mkdir");
        touch(&run.join(".tmp-checkpoint-8-123").join(STATE_FILE));
        let err = claim_run_dir(&run, RunDirUse::Resume)
            .expect_err("no checkpoint")
            .to_string();
        assert!(err.contains("no complete checkpoint"), "{err}");
        std::fs::create_dir_all(run.join("checkpoint-4")).expect("mkdir");
        touch(&run.join("checkpoint-4").join(STATE_FILE));
        touch(&run.join(".tmpAbC123"));
        claim_run_dir(&run, RunDirUse::Resume).expect("resume");
        let left: Vec<_> = std::fs::read_dir(&run)
            .expect("read")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("checkpoint-4")]);
    }

    #[test]
    fn pruned_checkpoints_leave_no_partial_checkpoint_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        for step in [1u64, 2, 3] {
            save_checkpoint(dir.path(), step, 1, |d| {
                std::fs::write(d.join(STATE_FILE), "{}")?;
                Ok(std::fs::write(d.join(MODEL_FILE), "m")?)
            })
            .expect("save");
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["checkpoint-3".to_string()]);
    }
}
