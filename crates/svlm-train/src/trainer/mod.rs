//! The training loop, composed as burn-train's learner is: a train step ([`step::TrainStep`]: forward, backward,
//! checks, update), an event processor with sinks ([`events::EventProcessor`]: `metrics.jsonl`, TensorBoard,
//! progress bar) fed the metrics of [`metrics::StepMetrics`], and a checkpointer ([`checkpointer::Checkpointer`]:
//! periodic and final checkpoints, resume). [`train`] plans the run, drives the three and writes the report.

pub mod checkpointer;
pub mod events;
pub mod metrics;
pub mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::{HostBatch, SampleEncoder};
use crate::checkpoint::{self, CONFIG_FILE};
use crate::config::{ConfigError, RunConfig, StopRule};
use crate::data::{DataError, DataSet};
use crate::loader::Loader;
use crate::model::{self, TrainableModel};
use crate::optim::AdamW;

use checkpointer::{Checkpointer, RunCounters};
use events::EventProcessor;
pub use metrics::{MetricsError, StepMetrics, memory_mb, read_metrics};
use step::TrainStep;
pub use step::validation_losses;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(
        "loss is {value} at step {step} (sources in the step: {sources}); stopping. The last good checkpoint is {}",
        checkpoint.as_ref().map_or("none (no checkpoint was written yet)".to_string(), |p| p.display().to_string())
    )]
    NonFinite {
        step: u64,
        value: String,
        sources: String,
        checkpoint: Option<PathBuf>,
    },
    #[error("gradient holes: {} trainable parameter(s) received no gradient after the first backward: {}", .0.len(), .0.join(", "))]
    GradientHoles(Vec<String>),
    #[error("checkpoint: {0:#}")]
    Checkpoint(anyhow::Error),
    #[error("resume: {0:#}")]
    Resume(anyhow::Error),
    #[error("model: {0:#}")]
    Model(anyhow::Error),
    #[error("no usable batch: the data ran out before the first step")]
    NoData,
    #[error("devices: {0}")]
    Devices(String),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the newest checkpoint in the run directory.
    pub resume: bool,
    /// Stop right after this step as if the process had been killed (no final checkpoint or report). Tests use it.
    pub halt_after: Option<u64>,
    /// More autodiff devices for data parallelism (the model and optimizer live on `train`'s `device`). Every step
    /// each device runs `grad_accum` micro-batches on its own copy of the weights, in its own thread; the gradients
    /// come back to the first device and are summed in device order, so a step equals the single-device step with
    /// `grad_accum * devices` micro-batches.
    pub replicas: Vec<Device>,
}

/// Realized mixture of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub name: String,
    pub configured_share: f64,
    pub samples: u64,
    pub supervised_tokens: u64,
    pub sample_share: f64,
    pub token_share: f64,
    pub epochs_started: u32,
    pub bad_rows: usize,
    pub validation_loss: Option<f64>,
}

/// What a run did (also written as `report.json` / `report.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub steps: u64,
    /// (step, training loss) for the steps this process ran.
    pub losses: Vec<(u64, f64)>,
    pub final_loss: Option<f64>,
    pub sources: Vec<SourceReport>,
    pub samples_per_s: f64,
    pub tokens_per_s: f64,
    pub supervised_tokens_per_s: f64,
    pub pad_fraction: f64,
    pub peak_rss_mb: f64,
    pub last_checkpoint: Option<PathBuf>,
    pub halted: bool,
}

/// Train `model` as `config` says, in `run_dir`. The model must live on an autodiff device (`device`). On resume the
/// model's weights, the optimizer, the data position and the counters come from the newest checkpoint; pass a model
/// built the same way as for the original run.
pub fn train<M: TrainableModel>(
    config: &RunConfig,
    run_dir: &Path,
    model: M,
    encoder: &dyn SampleEncoder,
    device: &Device,
    options: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    std::fs::create_dir_all(run_dir).map_err(|e| io_err(run_dir, e))?;
    let config_path = run_dir.join(CONFIG_FILE);
    let resolved = config.to_toml()?;
    checkpoint::write_atomic(&config_path, resolved.as_bytes())
        .map_err(|e| io_err(&config_path, e))?;

    let data = DataSet::open(&config.data.sources, config.data.max_bad_fraction)?;
    let names: Vec<String> = config.data.sources.iter().map(|s| s.name.clone()).collect();
    let packing = config.train.packing && model.supports_packing();
    if config.train.packing && !packing {
        tracing::warn!(
            "train.packing: this model does not support packed rows; padding batches instead"
        );
    }
    let mut loader = Loader::with_packing(config, &data, encoder, packing)?;
    let mut optim = AdamW::new(&config.optim);
    let mut checkpointer = Checkpointer::new(run_dir, config);
    let (mut model, mut counters) = start(
        config,
        run_dir,
        model,
        options,
        &mut checkpointer,
        &mut optim,
        &mut loader,
        device,
    )?;
    let start_step = counters.step;
    let plan = plan_steps(config, &loader, options)?;
    let mut events = EventProcessor::for_run(config, run_dir, plan.total_steps, start_step)?;
    let mut train_step =
        TrainStep::new(config, &names, device, &options.replicas, plan.total_steps)?;

    let eval_batch = config.eval.batch_size.unwrap_or(config.train.batch_size);
    let mut losses = Vec::new();
    let mut run = ThisRun::default();
    let run_start = Instant::now();
    let mut halted = false;

    while counters.step < plan.max_steps {
        let started = Instant::now();
        let mut micro = Vec::with_capacity(plan.micro_per_step);
        for _ in 0..plan.micro_per_step {
            match loader.next_batch()? {
                Some(b) => micro.push(b),
                None => break,
            }
        }
        if micro.is_empty() {
            break;
        }
        let supervised: usize = micro.iter().map(HostBatch::supervised_tokens).sum();
        if supervised == 0 {
            tracing::warn!(
                "step {}: no supervised tokens in the batch (all truncated?); skipped",
                counters.step + 1
            );
            continue;
        }
        let (updated, out) = train_step.run(
            model,
            &mut optim,
            &micro,
            supervised,
            counters.step,
            checkpointer.last.as_deref(),
        )?;
        model = updated;
        counters.step += 1;
        let step = counters.step;

        let step_time = started.elapsed().as_secs_f64();
        run.add(&out.counts);
        counters.samples_seen += out.counts.samples as u64;
        counters.tokens_seen += out.counts.real_tokens as u64;
        losses.push((step, out.loss));

        let mut validation = BTreeMap::new();
        if config.eval.every > 0 && step.is_multiple_of(config.eval.every) {
            validation = validation_losses(&model, &loader, &names, eval_batch, device)?;
            counters.last_validation = validation.clone();
        }
        let metrics = StepMetrics::of_step(
            step,
            out.loss,
            out.grad_norm,
            &out.counts,
            &names,
            out.lrs
                .iter()
                .map(|(p, lr)| (p.name().to_string(), *lr))
                .collect(),
            step_time,
            validation,
        );
        events.record(&metrics)?;

        if checkpointer.is_due(step) {
            checkpointer.save(&model, &optim, &loader, plan.total_steps, &counters)?;
        }
        if options.halt_after == Some(step) {
            halted = true;
            break;
        }
    }
    events.finish();
    if losses.is_empty() && start_step == 0 {
        return Err(TrainError::NoData);
    }

    if !halted {
        counters.last_validation = validation_losses(&model, &loader, &names, eval_batch, device)?;
        if !checkpointer.holds_step(counters.step) {
            checkpointer.save(&model, &optim, &loader, plan.total_steps, &counters)?;
        }
    }

    let elapsed = run_start.elapsed().as_secs_f64().max(1e-9);
    let (_, peak) = memory_mb();
    let sources = source_reports(&loader, &data, &names, &counters.last_validation);
    let outcome = TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        steps: counters.step,
        final_loss: losses.last().map(|l| l.1),
        losses,
        sources,
        samples_per_s: run.samples as f64 / elapsed,
        tokens_per_s: run.real_tokens as f64 / elapsed,
        supervised_tokens_per_s: run.supervised_tokens as f64 / elapsed,
        pad_fraction: 1.0 - run.real_tokens as f64 / run.padded_tokens.max(1) as f64,
        peak_rss_mb: peak,
        last_checkpoint: checkpointer.last,
        halted,
    };
    if !halted {
        crate::report::write_run_report(run_dir, &outcome, &data)
            .map_err(|e| io_err(run_dir, e))?;
    }
    Ok(outcome)
}

/// Token and sample totals of the steps this process ran (throughput in the outcome).
#[derive(Debug, Default)]
struct ThisRun {
    samples: u64,
    real_tokens: u64,
    supervised_tokens: u64,
    padded_tokens: u64,
}

impl ThisRun {
    fn add(&mut self, counts: &metrics::StepCounts) {
        self.samples += counts.samples as u64;
        self.real_tokens += counts.real_tokens as u64;
        self.supervised_tokens += counts.supervised_tokens as u64;
        self.padded_tokens += counts.padded_tokens as u64;
    }
}

/// The model and counters a run starts from: the newest checkpoint's on resume (with `metrics.jsonl` cut back to
/// its step), else the given model from step 0 (an old `metrics.jsonl` removed); then the stage's freezing.
#[allow(clippy::too_many_arguments)]
fn start<M: TrainableModel>(
    config: &RunConfig,
    run_dir: &Path,
    model: M,
    options: &TrainOptions,
    checkpointer: &mut Checkpointer<'_>,
    optim: &mut AdamW,
    loader: &mut Loader<'_>,
    device: &Device,
) -> Result<(M, RunCounters), TrainError> {
    let metrics_path = run_dir.join(metrics::METRICS_FILE);
    let (model, counters) = if options.resume {
        let (model, counters) = checkpointer.resume(model, optim, loader, device)?;
        metrics::truncate_metrics(&metrics_path, counters.step)
            .map_err(|e| io_err(&metrics_path, e))?;
        if let Some(dir) = &checkpointer.last {
            tracing::info!("resuming from {} (step {})", dir.display(), counters.step);
        }
        (model, counters)
    } else {
        if metrics_path.exists() {
            std::fs::remove_file(&metrics_path).map_err(|e| io_err(&metrics_path, e))?;
        }
        (model, RunCounters::default())
    };
    let model = model::apply_freeze(model, config.trainable_parts());
    for (part, (trainable, total)) in model::param_counts(&model) {
        tracing::info!(
            "{:<9} {:>12} parameters, {:>12} trainable",
            part.name(),
            total,
            trainable
        );
    }
    Ok((model, counters))
}

/// How many micro-batches make a step and how many steps the run plans and may take.
struct StepPlan {
    micro_per_step: usize,
    /// The steps the learning-rate schedule spans.
    total_steps: u64,
    /// Where the loop stops at the latest.
    max_steps: u64,
}

fn plan_steps(
    config: &RunConfig,
    loader: &Loader<'_>,
    options: &TrainOptions,
) -> Result<StepPlan, TrainError> {
    let devices = 1 + options.replicas.len();
    if devices != config.train.devices().len() {
        return Err(TrainError::Devices(format!(
            "train.device `{}` names {} device(s) but the trainer was given {devices}",
            config.train.device,
            config.train.devices().len()
        )));
    }
    let micro_per_step = config.train.grad_accum * devices;
    let per_micro = loader.samples_per_batch();
    let per_step = ((per_micro * micro_per_step as f64).round() as u64).max(1);
    if devices > 1 {
        tracing::info!(
            "data parallel over {devices} devices: about {} samples per step ({per_micro:.1} per micro-batch, {} micro-batches per device)",
            per_step,
            config.train.grad_accum
        );
    }
    let total_steps = match (config.data.stop, config.train.steps) {
        (StopRule::Steps, Some(s)) => s,
        (_, cap) => {
            let planned = loader
                .planned_samples()
                .map_or(u64::MAX, |n| n.div_ceil(per_step).max(1));
            cap.map_or(planned, |c| c.min(planned))
        }
    };
    // The schedule spans the planned steps; the loop itself ends when the data does (exhaustion rules) or at
    // `train.steps`, so a plan that is off by a few batches never cuts data.
    let max_steps = match config.data.stop {
        StopRule::Steps => total_steps,
        _ => config.train.steps.unwrap_or(u64::MAX),
    };
    Ok(StepPlan {
        micro_per_step,
        total_steps,
        max_steps,
    })
}

/// The realized mixture per source (also logged).
fn source_reports(
    loader: &Loader<'_>,
    data: &DataSet,
    names: &[String],
    last_validation: &BTreeMap<String, f64>,
) -> Vec<SourceReport> {
    let mixture = loader.mixture();
    let (sample_shares, token_shares) = mixture.realized_fractions();
    let sources: Vec<SourceReport> = names
        .iter()
        .enumerate()
        .map(|(i, name)| SourceReport {
            name: name.clone(),
            configured_share: mixture.shares()[i],
            samples: mixture.state().sources[i].samples,
            supervised_tokens: mixture.state().sources[i].tokens,
            sample_share: sample_shares[i],
            token_share: token_shares[i],
            epochs_started: mixture.state().sources[i].epoch + 1,
            bad_rows: data.sources[i].bad_count(),
            validation_loss: last_validation.get(name).copied(),
        })
        .collect();
    for s in &sources {
        tracing::info!(
            "realized mixture: {:<16} configured {:.3} | samples {} ({:.3}) | supervised tokens {} ({:.3}) | bad rows {}",
            s.name,
            s.configured_share,
            s.samples,
            s.sample_share,
            s.supervised_tokens,
            s.token_share,
            s.bad_rows
        );
    }
    sources
}
