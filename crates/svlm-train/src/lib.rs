//! svlm-train: co-training a VLM on a mixture of spatial and general VQA.
//!
//! `svlm train --config configs/x.toml` reads a [`config::RunConfig`], indexes the data sources
//! ([`data`]), mixes them at the configured ratios ([`mixture`]), encodes and pads batches ([`batch`], [`loader`]),
//! and runs the loop in [`trainer::train`], composed of a train step ([`trainer::step`], AdamW from [`optim`]), an
//! event processor whose sinks write `metrics.jsonl`, TensorBoard events ([`tensorboard`]) and the progress bar
//! ([`trainer::events`], the metrics in [`trainer::metrics`]), and a checkpointer ([`trainer::checkpointer`], atomic
//! checkpoints in [`checkpoint`]). `svlm sweep` runs grids of configs ([`sweep`]).
//!
//! # Run directory layout
//!
//! ```text
//! RUN_DIR/
//!   config.toml                 the resolved config (extends + --set applied, paths absolute)
//!   metrics.jsonl               one JSON object per optimizer step (trainer::StepMetrics)
//!   tb/events.out.tfevents.*    TensorBoard scalars (loss, loss/<source>, lr/<part>, grad_norm, throughput, memory)
//!   report.json, report.md      realized mixture, throughput, validation losses (at the end of a run)
//!   loss.png                    loss curves
//!   bad_rows.jsonl              every skipped row: {"source", "origin": "file:line", "reason"}
//!   checkpoint-<step>/          the newest `checkpoint.keep_last` ones, each complete (renamed into place)
//!     config.json               svlm-model VLMs: the HF config          } together an HF folder without tokenizer:
//!     model.safetensors         svlm-model VLMs: f32 weights, HF names  } `svlm_model::load_pretrained(ckpt)` loads it
//!     model.bpk                 other `TrainableModel`s (tests): Burn burnpack record
//!     optimizer.safetensors     AdamW moments keyed by parameter path (`m.<path>`, `v.<path>`), steps in metadata
//!     trainer_state.json        step, mixture state (cursors, epochs, counts), pending batches, RNG, counters
//!     config.toml               the resolved run config
//! ```
//!
//! `svlm export RUN_DIR[/checkpoint-N]` finds the newest checkpoint with [`checkpoint::latest_checkpoint`], loads it
//! with `svlm_model::load_pretrained(checkpoint_dir)` and writes `export_hf` with the tokenizer/processor files from
//! the run config's `model.tokenizer` (or `model.pretrained` folder / the `model.config` file's folder), which
//! `vlm::build_model` also returns.
//!
//! # GPU and several GPUs
//!
//! The loop is device-agnostic: `--device cuda` / `vulkan` (compiled in with the `cuda` / `vulkan` features of the
//! CLI) runs the same code; `train.precision = "bf16"` configures the device's float dtype to bf16 (Burn 0.22 has no
//! autocast: weights and moments are bf16 too, so use it for fine-tuning, not from-scratch training).
//!
//! Data parallelism: `train.device = "cuda:0,cuda:1"` (or `--device cuda:0,cuda:1`). The first device holds the
//! model and the optimizer; every step each other device gets a fork of the current weights
//! (`Module::fork`), runs its own `grad_accum` micro-batches in a thread of its own, and sends its
//! `GradientsParams` back (`to_device`); they are summed in device order with the first device's, then one AdamW
//! step runs. A step therefore takes `batch_size * grad_accum * devices` samples and equals the one-device step that
//! accumulates as many micro-batches (tested on two CPU replicas in `tests/train_loop.rs`). The weights travel
//! to every device each step: simple and exact, and cheap next to the forward/backward of a VLM; NCCL all-reduce
//! (Burn's `DistributedDataParallel`) would keep replicas resident instead.

pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod loader;
pub mod mixture;
pub mod model;
pub mod optim;
pub mod report;
pub mod sweep;
pub mod tensorboard;
pub mod trainer;
pub mod vlm;

pub use batch::{EncodedSample, HostBatch, SampleEncoder};
pub use config::RunConfig;
pub use model::{Part, TrainableModel};
pub use trainer::{TrainError, TrainOptions, TrainOutcome, train};
