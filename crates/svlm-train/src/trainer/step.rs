//! One optimizer step: the forward and backward of each micro-batch (data parallel over the replica devices), the
//! loss and gradient checks, clipping and the AdamW update; and the validation forward.

use std::collections::BTreeMap;
use std::path::Path;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;

use super::TrainError;
use super::metrics::StepCounts;
use crate::batch::HostBatch;
use crate::config::RunConfig;
use crate::loader::Loader;
use crate::model::{self, Part, TrainableModel};
use crate::optim::{AdamW, lr_factor, part_lrs};

/// Loss sums over supervised tokens of a forward: (total, per sample).
fn forward_loss<M: TrainableModel>(
    model: &M,
    batch: &HostBatch,
    device: &Device,
) -> Result<(burn::tensor::Tensor<1>, Vec<f32>), TrainError> {
    let model_err = |e: anyhow::Error| {
        TrainError::Model(e.context(format!("batch of {}", batch.origins.join(", "))))
    };
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

/// One thread pool per data-parallel worker when every device of the run is the CPU, each with an equal share of
/// the cores (at least one thread): a worker's ops then run on its own threads instead of all workers queueing on
/// one pool. Small models gain most: an op on a few thousand elements costs less on one thread than it costs to
/// wake a second, so workers that each own a core run close to `workers` times one core's speed. Empty for
/// accelerators and single-device runs (ops use the global pool).
fn cpu_worker_pools(config: &RunConfig) -> Result<Vec<rayon::ThreadPool>, TrainError> {
    let devices = config.train.devices();
    let cpu = |d: &String| d.eq_ignore_ascii_case("cpu") || d.eq_ignore_ascii_case("flex");
    if devices.len() < 2 || !devices.iter().all(cpu) {
        return Ok(Vec::new());
    }
    let threads = (rayon::current_num_threads() / devices.len()).max(1);
    (0..devices.len())
        .map(|k| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(move |i| format!("svlm-cpu-worker-{k}-{i}"))
                .build()
                .map_err(|e| TrainError::Devices(format!("CPU worker {k}'s thread pool: {e}")))
        })
        .collect()
}

/// Gradients of one round of micro-batches: `round[0]` on `model` (on `device`, in this thread), `round[k]` on
/// `replicas[k - 1]` (on `replica_devices[k - 1]`, in a thread of its own); worker `k` runs on `pools[k]` when
/// there are pools. Each loss is divided by the step's supervised-token count, so the summed gradients are those
/// of the whole step's mean loss. Replica gradients are moved to `device`; results come back in round order.
fn micro_batch_grads<M: TrainableModel>(
    model: &M,
    replicas: &[M],
    replica_devices: &[Device],
    pools: &[rayon::ThreadPool],
    round: &[HostBatch],
    device: &Device,
    supervised: usize,
) -> Result<Vec<(GradientsParams, Vec<f32>)>, TrainError> {
    let one_plain =
        |m: &M, b: &HostBatch, d: &Device| -> Result<(GradientsParams, Vec<f32>), TrainError> {
            let (sum, per_sample) = forward_loss(m, b, d)?;
            let grads =
                GradientsParams::from_grads(sum.div_scalar(supervised as f64).backward(), m);
            Ok((grads, per_sample))
        };
    let one = |k: usize,
               m: &M,
               b: &HostBatch,
               d: &Device|
     -> Result<(GradientsParams, Vec<f32>), TrainError> {
        match pools.get(k) {
            Some(pool) => {
                let m = m.clone();
                pool.install(move || one_plain(&m, b, d))
            }
            None => one_plain(m, b, d),
        }
    };
    if round.len() == 1 {
        return Ok(vec![one(0, model, &round[0], device)?]);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = round[1..]
            .iter()
            .zip(replicas.iter().cloned().zip(replica_devices))
            .enumerate()
            .map(|(k, (b, (replica, d)))| {
                scope.spawn(move || {
                    one(k + 1, &replica, b, d).map(|(grads, per_sample)| {
                        (
                            grads.to_device(&device.clone().inner(), &replica),
                            per_sample,
                        )
                    })
                })
            })
            .collect();
        let mut out = vec![one(0, model, &round[0], device)?];
        for (k, w) in workers.into_iter().enumerate() {
            let result = w.join().map_err(|_| {
                TrainError::Model(anyhow::anyhow!(
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

/// What a finished step reports.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Mean loss over the step's supervised tokens.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// The learning rate each part was updated with.
    pub lrs: BTreeMap<Part, f64>,
    pub counts: StepCounts,
}

/// The train step of a run: what stays the same from step to step (devices, schedule, sources).
pub struct TrainStep<'a> {
    config: &'a RunConfig,
    names: &'a [String],
    device: &'a Device,
    replica_devices: &'a [Device],
    pools: Vec<rayon::ThreadPool>,
    lrs_base: BTreeMap<Part, f64>,
    total_steps: u64,
    checked_holes: bool,
}

impl<'a> TrainStep<'a> {
    /// `names`: the sources by index; `total_steps`: the steps the schedule spans.
    pub fn new(
        config: &'a RunConfig,
        names: &'a [String],
        device: &'a Device,
        replica_devices: &'a [Device],
        total_steps: u64,
    ) -> Result<Self, TrainError> {
        Ok(Self {
            config,
            names,
            device,
            replica_devices,
            pools: cpu_worker_pools(config)?,
            lrs_base: part_lrs(&config.optim),
            total_steps,
            checked_holes: false,
        })
    }

    /// Step `done + 1` on the micro-batches `micro` (together `supervised` supervised tokens, > 0): gradients of
    /// the mean loss, summed over the micro-batches in order (rounds of one micro-batch per device); a non-finite
    /// loss or gradient norm stops the run naming `last_checkpoint`, as do parameters without gradient after the
    /// first step; then clipping to `optim.max_grad_norm` and the AdamW update at the schedule's learning rates.
    pub fn run<M: TrainableModel>(
        &mut self,
        model: M,
        optim: &mut AdamW,
        micro: &[HostBatch],
        supervised: usize,
        done: u64,
        last_checkpoint: Option<&Path>,
    ) -> Result<(M, StepOutput), TrainError> {
        let devices = 1 + self.replica_devices.len();
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut counts = StepCounts {
            supervised_tokens: supervised,
            ..StepCounts::default()
        };
        let mut loss_sum = 0.0f64;
        let replicas: Vec<M> = self
            .replica_devices
            .iter()
            .map(|d| model.clone().fork(d))
            .collect();
        for round in micro.chunks(devices) {
            for (b, (grads, per_sample)) in round.iter().zip(micro_batch_grads(
                &model,
                &replicas,
                self.replica_devices,
                &self.pools,
                round,
                self.device,
                supervised,
            )?) {
                for (i, &l) in per_sample.iter().enumerate() {
                    let e = counts.source_sums.entry(b.sources[i]).or_default();
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
            counts
                .source_sums
                .keys()
                .map(|&s| self.names[s].clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let checkpoint = || last_checkpoint.map(Path::to_path_buf);
        if !loss.is_finite() {
            return Err(TrainError::NonFinite {
                step: done + 1,
                value: loss.to_string(),
                sources: in_step(),
                checkpoint: checkpoint(),
            });
        }
        if !self.checked_holes {
            let holes = model::gradient_holes(&model, &grads);
            if !holes.is_empty() {
                return Err(TrainError::GradientHoles(holes));
            }
            self.checked_holes = true;
        }
        let grad_norm = model::global_grad_norm(&model, &grads);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: done + 1,
                value: format!("finite ({loss:.4}) but the gradient norm is {grad_norm}"),
                sources: in_step(),
                checkpoint: checkpoint(),
            });
        }
        let max_norm = self.config.optim.max_grad_norm;
        let scale = if max_norm > 0.0 && grad_norm > max_norm {
            max_norm / (grad_norm + 1e-6)
        } else {
            1.0
        };
        let factor = lr_factor(&self.config.optim, done + 1, self.total_steps);
        let lrs: BTreeMap<Part, f64> = self
            .lrs_base
            .iter()
            .map(|(p, lr)| (*p, lr * factor))
            .collect();
        let model = optim.step(model, &grads, &lrs, scale);
        counts.samples = micro.iter().map(HostBatch::samples).sum();
        counts.real_tokens = micro.iter().map(|b| b.real_tokens).sum();
        counts.padded_tokens = micro.iter().map(|b| b.batch * b.seq_len).sum();
        Ok((
            model,
            StepOutput {
                loss,
                grad_norm,
                lrs,
                counts,
            },
        ))
    }
}
