//! The training loop.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::{HostBatch, SampleEncoder};
use crate::checkpoint::{self, CONFIG_FILE, OPTIMIZER_FILE, STATE_FILE, TrainerState};
use crate::config::{ConfigError, RunConfig, StopRule};
use crate::data::{DataError, DataSet};
use crate::loader::Loader;
use crate::model::{self, Part, TrainableModel};
use crate::optim::{AdamW, lr_factor, part_lrs};
use crate::tensorboard::EventWriter;

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
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("resume: {0}")]
    Resume(String),
    #[error("model: {0}")]
    Model(String),
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

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    pub loss: f64,
    pub loss_per_source: BTreeMap<String, f64>,
    pub lr: BTreeMap<String, f64>,
    pub grad_norm: f64,
    pub samples: usize,
    pub tokens: usize,
    pub supervised_tokens: usize,
    pub pad_fraction: f64,
    pub step_time_s: f64,
    pub samples_per_s: f64,
    pub tokens_per_s: f64,
    pub rss_mb: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub validation: BTreeMap<String, f64>,
}

/// Resident and peak resident memory of this process in MiB, from /proc/self/status (0 where unavailable).
pub fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Read `metrics.jsonl` of a run.
pub fn read_metrics(run_dir: &Path) -> Result<Vec<StepMetrics>, String> {
    let path = run_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn truncate_metrics(path: &Path, last_step: u64) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= last_step))
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_atomic(path, kept.as_bytes()).map_err(|e| io_err(path, e))
}

/// Loss sums over supervised tokens of a forward: (total, per sample).
fn forward_loss<M: TrainableModel>(
    model: &M,
    batch: &HostBatch,
    device: &Device,
) -> Result<(burn::tensor::Tensor<1>, Vec<f32>), TrainError> {
    let model_err =
        |e: String| TrainError::Model(format!("batch of {}: {e}", batch.origins.join(", ")));
    let supervised = model::Supervised::of(batch);
    if supervised.positions.is_empty() {
        // Nothing carries loss: a zero that still reaches every parameter the forward touches.
        let logits = model.logits(batch, device).map_err(model_err)?;
        let nll = model::token_nll(logits, batch, device);
        return Ok((nll.sum(), vec![0.0; batch.samples()]));
    }
    // Logits only where a label is: the output head and its softmax skip the prompt and image positions.
    let logits = model
        .logits_at(batch, &supervised.positions, device)
        .map_err(model_err)?;
    let nll = model::nll_at(logits, &supervised.targets, device);
    let per_token = nll
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let mut per_sample = vec![0.0f32; batch.samples()];
    for (&sample, value) in supervised.samples.iter().zip(per_token) {
        per_sample[sample] += value;
    }
    Ok((nll.sum(), per_sample))
}

/// Gradients of one round of micro-batches: `round[0]` on `model` (on `device`, in this thread), `round[k]` on
/// `replicas[k - 1]` (on `replica_devices[k - 1]`, in a thread of its own). Each loss is divided by the step's
/// supervised-token count, so the summed gradients are those of the whole step's mean loss. Replica gradients are
/// moved to `device`; results come back in round order.
fn micro_batch_grads<M: TrainableModel>(
    model: &M,
    replicas: &[M],
    replica_devices: &[Device],
    round: &[HostBatch],
    device: &Device,
    supervised: usize,
) -> Result<Vec<(GradientsParams, Vec<f32>)>, TrainError> {
    let one =
        |m: &M, b: &HostBatch, d: &Device| -> Result<(GradientsParams, Vec<f32>), TrainError> {
            let (sum, per_sample) = forward_loss(m, b, d)?;
            let grads =
                GradientsParams::from_grads(sum.div_scalar(supervised as f64).backward(), m);
            Ok((grads, per_sample))
        };
    if round.len() == 1 {
        return Ok(vec![one(model, &round[0], device)?]);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = round[1..]
            .iter()
            .zip(replicas.iter().cloned().zip(replica_devices))
            .map(|(b, (replica, d))| {
                scope.spawn(move || {
                    one(&replica, b, d).map(|(grads, per_sample)| {
                        (
                            grads.to_device(&device.clone().inner(), &replica),
                            per_sample,
                        )
                    })
                })
            })
            .collect();
        let mut out = vec![one(model, &round[0], device)?];
        for (k, w) in workers.into_iter().enumerate() {
            let result = w.join().map_err(|_| {
                TrainError::Model(format!(
                    "the data-parallel worker on device {} panicked",
                    k + 1
                ))
            })?;
            out.push(result?);
        }
        Ok(out)
    })
}

/// Validation loss per source (mean over supervised tokens).
pub fn validation_losses<M: TrainableModel>(
    model: &M,
    loader: &Loader<'_>,
    names: &[String],
    batch_size: usize,
    device: &Device,
) -> Result<BTreeMap<String, f64>, TrainError> {
    let eval_model = model.valid();
    let eval_device = device.clone().inner();
    let mut out = BTreeMap::new();
    for (s, name) in names.iter().enumerate() {
        let batches = loader.validation_batches(s, batch_size);
        let (mut sum, mut tokens) = (0.0f64, 0usize);
        for b in &batches {
            let (_, per_sample) = forward_loss(&eval_model, b, &eval_device)?;
            sum += per_sample.iter().map(|&v| f64::from(v)).sum::<f64>();
            tokens += b.supervised_tokens();
        }
        if tokens > 0 {
            out.insert(name.clone(), sum / tokens as f64);
        }
    }
    Ok(out)
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
    let mut model = model;
    let mut start_step = 0u64;
    let mut samples_seen = 0u64;
    let mut tokens_seen = 0u64;
    let mut last_validation = BTreeMap::new();
    let mut last_checkpoint = None;

    let metrics_path = run_dir.join("metrics.jsonl");
    if options.resume {
        let (step, dir) = checkpoint::latest_checkpoint(run_dir).ok_or_else(|| {
            TrainError::Resume(format!("no complete checkpoint in {}", run_dir.display()))
        })?;
        let state_path = dir.join(STATE_FILE);
        let state: TrainerState = std::fs::read_to_string(&state_path)
            .map_err(|e| io_err(&state_path, e))
            .and_then(|t| serde_json::from_str(&t).map_err(|e| io_err(&state_path, e)))?;
        model = model.load_weights(&dir).map_err(TrainError::Resume)?;
        optim
            .load(&dir.join(OPTIMIZER_FILE), &device.clone().inner())
            .map_err(TrainError::Resume)?;
        loader.restore(state.loader).map_err(TrainError::Resume)?;
        start_step = state.step;
        samples_seen = state.samples_seen;
        tokens_seen = state.tokens_seen;
        last_validation = state.last_validation;
        last_checkpoint = Some(dir.clone());
        truncate_metrics(&metrics_path, step)?;
        tracing::info!("resuming from {} (step {step})", dir.display());
    } else if metrics_path.exists() {
        std::fs::remove_file(&metrics_path).map_err(|e| io_err(&metrics_path, e))?;
    }

    let parts = config.trainable_parts();
    model = model::apply_freeze(model, parts);
    for (part, (trainable, total)) in model::param_counts(&model) {
        tracing::info!(
            "{:<9} {:>12} parameters, {:>12} trainable",
            part.name(),
            total,
            trainable
        );
    }

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
    let lrs_base = part_lrs(&config.optim);

    let mut events = if config.log.tensorboard {
        let tb = run_dir.join("tb");
        Some(EventWriter::create(&tb).map_err(|e| io_err(&tb, e))?)
    } else {
        None
    };
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| io_err(&metrics_path, e))?;
    let progress = if config.log.progress {
        let bar = indicatif::ProgressBar::new(total_steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}<{eta_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(start_step);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let eval_batch = config.eval.batch_size.unwrap_or(config.train.batch_size);
    let mut losses = Vec::new();
    let mut step = start_step;
    let mut checked_holes = false;
    let (mut run_samples, mut run_tokens, mut run_supervised, mut run_padded) =
        (0u64, 0u64, 0u64, 0u64);
    let run_start = Instant::now();
    let mut halted = false;

    while step < max_steps {
        let started = Instant::now();
        let mut micro = Vec::with_capacity(micro_per_step);
        for _ in 0..micro_per_step {
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
                step + 1
            );
            continue;
        }
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut source_sums: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
        let mut loss_sum = 0.0f64;
        let replicas: Vec<M> = options
            .replicas
            .iter()
            .map(|d| model.clone().fork(d))
            .collect();
        for round in micro.chunks(devices) {
            for (b, (grads, per_sample)) in round.iter().zip(micro_batch_grads(
                &model,
                &replicas,
                &options.replicas,
                round,
                device,
                supervised,
            )?) {
                for (i, &l) in per_sample.iter().enumerate() {
                    let e = source_sums.entry(b.sources[i]).or_default();
                    e.0 += f64::from(l);
                    e.1 += b.supervised[i];
                    loss_sum += f64::from(l);
                }
                accumulator.accumulate(&model, grads);
            }
        }
        let grads = accumulator.grads();
        let loss = loss_sum / supervised as f64;
        let in_step = || {
            source_sums
                .keys()
                .map(|&s| names[s].clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !loss.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                value: loss.to_string(),
                sources: in_step(),
                checkpoint: last_checkpoint,
            });
        }
        if !checked_holes {
            let holes = model::gradient_holes(&model, &grads);
            if !holes.is_empty() {
                return Err(TrainError::GradientHoles(holes));
            }
            checked_holes = true;
        }
        let grad_norm = model::global_grad_norm(&model, &grads);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                value: format!("finite ({loss:.4}) but the gradient norm is {grad_norm}"),
                sources: in_step(),
                checkpoint: last_checkpoint,
            });
        }
        let max_norm = config.optim.max_grad_norm;
        let scale = if max_norm > 0.0 && grad_norm > max_norm {
            max_norm / (grad_norm + 1e-6)
        } else {
            1.0
        };
        let factor = lr_factor(&config.optim, step + 1, total_steps);
        let lrs: BTreeMap<Part, f64> = lrs_base.iter().map(|(p, lr)| (*p, lr * factor)).collect();
        model = optim.step(model, &grads, &lrs, scale);
        step += 1;

        let step_time = started.elapsed().as_secs_f64();
        let samples: usize = micro.iter().map(HostBatch::samples).sum();
        let real: usize = micro.iter().map(|b| b.real_tokens).sum();
        let padded: usize = micro.iter().map(|b| b.batch * b.seq_len).sum();
        run_samples += samples as u64;
        run_tokens += real as u64;
        run_supervised += supervised as u64;
        run_padded += padded as u64;
        samples_seen += samples as u64;
        tokens_seen += real as u64;
        losses.push((step, loss));

        let mut validation = BTreeMap::new();
        if config.eval.every > 0 && step.is_multiple_of(config.eval.every) {
            validation = validation_losses(&model, &loader, &names, eval_batch, device)?;
            last_validation = validation.clone();
        }
        let (rss, _) = memory_mb();
        let m = StepMetrics {
            step,
            loss,
            loss_per_source: source_sums
                .iter()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(&s, (sum, n))| (names[s].clone(), sum / *n as f64))
                .collect(),
            lr: lrs
                .iter()
                .map(|(p, lr)| (p.name().to_string(), *lr))
                .collect(),
            grad_norm,
            samples,
            tokens: real,
            supervised_tokens: supervised,
            pad_fraction: 1.0 - real as f64 / padded.max(1) as f64,
            step_time_s: step_time,
            samples_per_s: samples as f64 / step_time.max(1e-9),
            tokens_per_s: real as f64 / step_time.max(1e-9),
            rss_mb: rss,
            validation: validation.clone(),
        };
        let line = serde_json::to_string(&m).map_err(|e| io_err(&metrics_path, e))?;
        writeln!(metrics_file, "{line}").map_err(|e| io_err(&metrics_path, e))?;
        if let Some(w) = events.as_mut()
            && (step.is_multiple_of(config.log.every) || !validation.is_empty())
        {
            let mut scalars: Vec<(String, f32)> = vec![
                ("loss".into(), m.loss as f32),
                ("grad_norm".into(), m.grad_norm as f32),
                ("throughput/tokens_per_s".into(), m.tokens_per_s as f32),
                ("throughput/samples_per_s".into(), m.samples_per_s as f32),
                ("data/pad_fraction".into(), m.pad_fraction as f32),
                ("time/step_s".into(), m.step_time_s as f32),
                ("memory/rss_mb".into(), m.rss_mb as f32),
            ];
            scalars.extend(
                m.loss_per_source
                    .iter()
                    .map(|(k, v)| (format!("loss/{k}"), *v as f32)),
            );
            scalars.extend(m.lr.iter().map(|(k, v)| (format!("lr/{k}"), *v as f32)));
            scalars.extend(
                validation
                    .iter()
                    .map(|(k, v)| (format!("val_loss/{k}"), *v as f32)),
            );
            w.scalars(step, &scalars).map_err(|e| io_err(run_dir, e))?;
            w.flush().map_err(|e| io_err(run_dir, e))?;
        }
        progress.set_position(step);
        progress.set_message(format!("loss {loss:.4} | {:.0} tok/s", m.tokens_per_s));

        let periodic = config.checkpoint.every > 0 && step.is_multiple_of(config.checkpoint.every);
        if periodic {
            last_checkpoint = Some(save(
                run_dir,
                config,
                &model,
                &optim,
                &loader,
                step,
                total_steps,
                samples_seen,
                tokens_seen,
                &last_validation,
            )?);
        }
        if options.halt_after == Some(step) {
            halted = true;
            break;
        }
    }
    progress.finish_and_clear();
    if losses.is_empty() && start_step == 0 {
        return Err(TrainError::NoData);
    }

    if !halted {
        last_validation = validation_losses(&model, &loader, &names, eval_batch, device)?;
        let saved_now = last_checkpoint
            .as_ref()
            .is_some_and(|p| p.ends_with(format!("checkpoint-{step}")));
        if !saved_now {
            last_checkpoint = Some(save(
                run_dir,
                config,
                &model,
                &optim,
                &loader,
                step,
                total_steps,
                samples_seen,
                tokens_seen,
                &last_validation,
            )?);
        }
    }

    let elapsed = run_start.elapsed().as_secs_f64().max(1e-9);
    let (_, peak) = memory_mb();
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
    let outcome = TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        steps: step,
        final_loss: losses.last().map(|l| l.1),
        losses,
        sources,
        samples_per_s: run_samples as f64 / elapsed,
        tokens_per_s: run_tokens as f64 / elapsed,
        supervised_tokens_per_s: run_supervised as f64 / elapsed,
        pad_fraction: 1.0 - run_tokens as f64 / run_padded.max(1) as f64,
        peak_rss_mb: peak,
        last_checkpoint,
        halted,
    };
    if !halted {
        crate::report::write_run_report(run_dir, &outcome, &data)
            .map_err(|e| io_err(run_dir, e))?;
    }
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
fn save<M: TrainableModel>(
    run_dir: &Path,
    config: &RunConfig,
    model: &M,
    optim: &AdamW,
    loader: &Loader<'_>,
    step: u64,
    total_steps: u64,
    samples_seen: u64,
    tokens_seen: u64,
    last_validation: &BTreeMap<String, f64>,
) -> Result<PathBuf, TrainError> {
    let state = TrainerState {
        step,
        total_steps,
        loader: loader.state(),
        samples_seen,
        tokens_seen,
        totals: loader.totals.clone(),
        last_validation: last_validation.clone(),
    };
    checkpoint::save_checkpoint(run_dir, step, config.checkpoint.keep_last, |dir| {
        model.save_weights(dir)?;
        optim.save(&dir.join(OPTIMIZER_FILE))?;
        let json = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
        checkpoint::write_atomic(&dir.join(STATE_FILE), json.as_bytes())
            .map_err(|e| e.to_string())?;
        let toml = config.to_toml().map_err(|e| e.to_string())?;
        checkpoint::write_atomic(&dir.join(CONFIG_FILE), toml.as_bytes()).map_err(|e| e.to_string())
    })
    .map_err(TrainError::Checkpoint)
}
