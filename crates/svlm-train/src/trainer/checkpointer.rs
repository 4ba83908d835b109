//! When and how the trainer writes and reads checkpoints: every `checkpoint.every` steps and at the end, each one
//! the weights, the optimizer, the data position and the counters ([`TrainerState`]); on resume the newest one
//! restores them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::{TrainError, io_err};
use crate::checkpoint::{self, CONFIG_FILE, OPTIMIZER_FILE, STATE_FILE, TrainerState};
use crate::config::RunConfig;
use crate::loader::Loader;
use crate::model::TrainableModel;
use crate::optim::AdamW;

/// The counters a checkpoint keeps beside the tensors and the data position.
#[derive(Debug, Clone, Default)]
pub struct RunCounters {
    /// Optimizer steps completed.
    pub step: u64,
    pub samples_seen: u64,
    pub tokens_seen: u64,
    /// Last validation losses per source.
    pub last_validation: BTreeMap<String, f64>,
}

/// Writes a run's checkpoints and remembers the newest one.
pub struct Checkpointer<'a> {
    run_dir: &'a Path,
    config: &'a RunConfig,
    /// The newest complete checkpoint of the run (named when a later step fails).
    pub last: Option<PathBuf>,
}

impl<'a> Checkpointer<'a> {
    pub fn new(run_dir: &'a Path, config: &'a RunConfig) -> Self {
        Self {
            run_dir,
            config,
            last: None,
        }
    }

    /// Restores model weights, optimizer and data position from the newest checkpoint of the run; returns the
    /// model and the counters.
    pub fn resume<M: TrainableModel>(
        &mut self,
        model: M,
        optim: &mut AdamW,
        loader: &mut Loader<'_>,
        device: &Device,
    ) -> Result<(M, RunCounters), TrainError> {
        let (_, dir) = checkpoint::latest_checkpoint(self.run_dir).ok_or_else(|| {
            TrainError::Resume(anyhow::anyhow!(
                "no complete checkpoint in {}",
                self.run_dir.display()
            ))
        })?;
        let state_path = dir.join(STATE_FILE);
        let state: TrainerState = std::fs::read_to_string(&state_path)
            .map_err(|e| io_err(&state_path, e))
            .and_then(|t| serde_json::from_str(&t).map_err(|e| io_err(&state_path, e)))?;
        let model = model.load_weights(&dir).map_err(TrainError::Resume)?;
        optim
            .load(&dir.join(OPTIMIZER_FILE), &device.clone().inner())
            .map_err(TrainError::Resume)?;
        loader.restore(state.loader).map_err(TrainError::Resume)?;
        self.last = Some(dir);
        let counters = RunCounters {
            step: state.step,
            samples_seen: state.samples_seen,
            tokens_seen: state.tokens_seen,
            last_validation: state.last_validation,
        };
        Ok((model, counters))
    }

    /// Whether step `step` ends with a periodic checkpoint (`checkpoint.every`).
    pub fn is_due(&self, step: u64) -> bool {
        let every = self.config.checkpoint.every;
        every > 0 && step.is_multiple_of(every)
    }

    /// Whether the newest checkpoint is the one of step `step`.
    pub fn holds_step(&self, step: u64) -> bool {
        self.last
            .as_ref()
            .is_some_and(|p| p.ends_with(format!("checkpoint-{step}")))
    }

    /// Writes `checkpoint-<step>` (kept: the newest `checkpoint.keep_last`).
    pub fn save<M: TrainableModel>(
        &mut self,
        model: &M,
        optim: &AdamW,
        loader: &Loader<'_>,
        total_steps: u64,
        counters: &RunCounters,
    ) -> Result<(), TrainError> {
        let state = TrainerState {
            step: counters.step,
            total_steps,
            loader: loader.state(),
            samples_seen: counters.samples_seen,
            tokens_seen: counters.tokens_seen,
            totals: loader.totals.clone(),
            last_validation: counters.last_validation.clone(),
        };
        let config = self.config;
        let dir = checkpoint::save_checkpoint(
            self.run_dir,
            counters.step,
            config.checkpoint.keep_last,
            |dir| {
                model.save_weights(dir)?;
                optim.save(&dir.join(OPTIMIZER_FILE))?;
                let json = serde_json::to_string_pretty(&state)?;
                checkpoint::write_atomic(&dir.join(STATE_FILE), json.as_bytes())?;
                let toml = config.to_toml()?;
                checkpoint::write_atomic(&dir.join(CONFIG_FILE), toml.as_bytes())?;
                Ok(())
            },
        )
        .map_err(TrainError::Checkpoint)?;
        self.last = Some(dir);
        Ok(())
    }
}
