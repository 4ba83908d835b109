//! `svlm`: one binary for spatial VQA synthesis, co-training, evaluation, reasoning and reward annotation.

mod cmd;
mod model_args;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "svlm",
    version,
    about = "Teach vision-language models metric spatial reasoning (after SpatialVLM)."
)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant's arguments costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Render procedural scenes: RGB, metric depth, instance masks and exact object truth.
    World(cmd::world::Args),
    /// Synthesize spatial VQA (JSONL / Parquet shards) from procedural scenes, RGB-D folders or photos.
    Synth(cmd::synth::Args),
    /// Train (co-train) a VLM from a run config.
    Train(cmd::train::Args),
    /// Run a grid of training runs and summarize them.
    Sweep(cmd::sweep::Args),
    /// Export a run or checkpoint as a Hugging Face model folder.
    Export(cmd::export::Args),
    /// Evaluate a model on a spatial VQA set.
    Eval(cmd::eval::Args),
    /// Ask a model a question about an image.
    Ask(cmd::ask::Args),
    /// Answer a multi-step spatial question with an LLM orchestrating the VLM.
    Reason(cmd::reason::Args),
    /// Annotate dense rewards from estimated distances over a frame sequence.
    Reward(cmd::reward::Args),
    /// The whole pipeline in miniature on the CPU: world -> synth -> co-train at several ratios -> eval -> report.
    Quickstart(cmd::quickstart::Args),
    /// Check that a GPU backend computes a model as the CPU does (logits, greedy tokens, bf16/f16 drift).
    CheckDevice(cmd::check_device::Args),
    /// Benchmarks that print ratios against a reference.
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same in its v2 and v3); the Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Burn's CPU backend frees and reallocates the same tensor buffers every op and every step. Returning freed
    // memory to the OS after mimalloc's default 10 ms makes each step fault it in again; never returning it keeps
    // blocks of sizes no later allocation reuses. Freed memory is kept for 2 s: at SmolVLM-256M's size 7.3 GB peak
    // at 1.2x PyTorch's speed, against 9.3 GB (1.56x) keeping everything and 7.2 GB (0.97x) at 10 ms. The
    // quickstart's models peak at a few hundred MB, so it keeps everything (its training ran ~6% faster so)
    // (experiments/bench_train.md). MIMALLOC_PURGE_DELAY (milliseconds, -1: never) overrides this.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        let delay_ms = match cli.command {
            Command::Quickstart(_) => -1,
            _ => 2000,
        };
        // SAFETY: sets one integer option of the allocator; no memory is touched.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay_ms) };
    }
    let default_level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    match cli.command {
        Command::World(a) => cmd::world::run(a),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Sweep(a) => cmd::sweep::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Ask(a) => cmd::ask::run(a),
        Command::Reason(a) => cmd::reason::run(a),
        Command::Reward(a) => cmd::reward::run(a),
        Command::Quickstart(a) => cmd::quickstart::run(a),
        Command::CheckDevice(a) => cmd::check_device::run(a),
        Command::Bench(b) => cmd::bench::run(b),
    }
}
