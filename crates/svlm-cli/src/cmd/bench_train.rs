//! `svlm bench train`: training-loop throughput (samples/s, real tokens/s, pad fraction, peak memory) of the svlm
//! trainer against a PyTorch loop (`scripts/bench_train_torch.py`, transformers' `Idefics3ForConditionalGeneration`
//! with its default attention) over the same Idefics3 shape, the same data files and the same encoding rule, on the
//! same machine. The shapes, data and encoding rule are in `svlm_train::bench`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use svlm_train::bench::{BenchResult, BenchShape, WordEncoder, write_data};
use svlm_train::config::RunConfig;
use svlm_train::trainer::{TrainOptions, read_metrics};

/// The PyTorch reference loop, carried in the binary so the bench runs from any folder.
const TORCH_SCRIPT: &str = include_str!("../../../../scripts/bench_train_torch.py");

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (work files, results JSON).
    #[arg(long, default_value = "out/bench_train")]
    pub out: PathBuf,
    /// Model and data size: `tiny` (SigLIP 2 x 64 + Llama 2 x 128, 64-px images, ~60-token samples) or
    /// `smolvlm-256m` (SmolVLM-256M-Instruct's dimensions with random weights, 512-px images, ~200-token samples;
    /// use `--batch-size 2 --steps 3 --warmup 1`: a step takes tens of seconds on 2 cores).
    #[arg(long, default_value = "tiny")]
    pub shape: String,
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Timed optimizer steps (after the warm-up steps).
    #[arg(long, default_value_t = 20)]
    pub steps: u64,
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Pack svlm's samples into rows of 512 tokens (the trainer's default). Off by default here: the PyTorch loop
    /// pads each batch to its longest sample, so both sides then process the same batches.
    #[arg(long)]
    pub packing: bool,
    /// Split each step's batch over this many CPU workers (`train.device = "cpu,cpu,..."`, each worker on its
    /// share of the cores with `--batch-size / N` samples); the step is the same `--batch-size` samples. Small
    /// models train fastest with one worker per core; large ones with 1 (every core inside each op).
    #[arg(long, default_value_t = 1)]
    pub cpu_workers: usize,
    /// Python with torch + transformers for the reference loop; `none` skips it.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let shape = BenchShape::by_name(&args.shape).with_context(|| {
        format!(
            "unknown --shape `{}` (one of: {}, {})",
            args.shape,
            BenchShape::TINY.name,
            BenchShape::SMOLVLM_256M.name
        )
    })?;
    anyhow::ensure!(
        args.cpu_workers >= 1 && args.batch_size.is_multiple_of(args.cpu_workers),
        "--batch-size {} must be a multiple of --cpu-workers {}",
        args.batch_size,
        args.cpu_workers
    );
    let work = std::path::absolute(args.out.join("work"))?;
    std::fs::create_dir_all(work.join("model"))?;
    std::fs::write(
        work.join("model/config.json"),
        serde_json::to_string_pretty(&shape.model_config())?,
    )?;
    let data = write_data(&work.join("data"), args.samples, &shape)?;
    let total = args.warmup + args.steps;
    let text = format!(
        r#"name = "bench_train"
seed = 0
[model]
config = "{model}"
max_seq_len = {max_seq_len}
[train]
stage = "full"
steps = {total}
batch_size = {batch}
device = "{devices}"
packing = {packing}
[optim]
lr = 1e-4
schedule = "constant"
max_grad_norm = 1.0
[log]
progress = false
[[data.sources]]
name = "bench"
path = "{data}"
weight = 1.0
"#,
        model = work.join("model/config.json").display(),
        max_seq_len = shape.max_positions.min(1024),
        batch = args.batch_size / args.cpu_workers,
        devices = vec!["cpu"; args.cpu_workers].join(","),
        packing = args.packing,
        data = data.display(),
    );
    let config = RunConfig::from_toml_str(&text, &work)?;
    let device = svlm_model::resolve_device("cpu")?.autodiff();
    let replicas = vec![device.clone(); args.cpu_workers - 1];
    let (model, _) = svlm_train::vlm::build_model(&config, &device)?;
    let run_dir = args.out.join("svlm_run");
    svlm_train::train(
        &config,
        &run_dir,
        model,
        &WordEncoder(shape),
        &device,
        &TrainOptions {
            replicas,
            ..TrainOptions::default()
        },
    )?;
    let metrics = read_metrics(&run_dir)?;
    let timed: Vec<_> = metrics.iter().filter(|m| m.step > args.warmup).collect();
    anyhow::ensure!(!timed.is_empty(), "no timed steps (the data ran out?)");
    let time: f64 = timed.iter().map(|m| m.step_time_s).sum();
    let samples: usize = timed.iter().map(|m| m.samples).sum();
    let tokens: usize = timed.iter().map(|m| m.tokens).sum();
    let padded: f64 = timed
        .iter()
        .map(|m| m.tokens as f64 / (1.0 - m.pad_fraction).max(1e-9))
        .sum();
    let (_, peak) = svlm_train::trainer::memory_mb();
    let ours = BenchResult {
        samples_per_s: samples as f64 / time,
        tokens_per_s: tokens as f64 / time,
        pad_fraction: 1.0 - tokens as f64 / padded,
        peak_rss_mb: peak,
        final_loss: metrics.last().map_or(f64::NAN, |m| m.loss),
    };
    println!("svlm (Burn flex CPU): {ours:?}");
    std::fs::write(
        args.out.join("svlm.json"),
        serde_json::to_string_pretty(&ours)?,
    )?;

    if args.python == "none" {
        return Ok(());
    }
    let torch_json = std::path::absolute(args.out.join("torch.json"))?;
    let script = work.join("bench_train_torch.py");
    std::fs::write(&script, TORCH_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let status = Command::new(&args.python)
        .arg(&script)
        .args(["--work", &work.display().to_string()])
        .args(["--batch-size", &args.batch_size.to_string()])
        .args([
            "--steps",
            &args.steps.to_string(),
            "--warmup",
            &args.warmup.to_string(),
        ])
        .args(["--json", &torch_json.display().to_string()])
        .status()
        .with_context(|| format!("running {} {}", args.python, script.display()))?;
    anyhow::ensure!(status.success(), "the PyTorch reference failed ({status})");
    let theirs: BenchResult = serde_json::from_str(&std::fs::read_to_string(&torch_json)?)?;
    println!("PyTorch (CPU):        {theirs:?}");
    println!("\n| metric | svlm (Burn) | PyTorch | svlm / PyTorch |\n|---|---|---|---|");
    for (name, a, b) in [
        ("samples/s", ours.samples_per_s, theirs.samples_per_s),
        ("real tokens/s", ours.tokens_per_s, theirs.tokens_per_s),
        ("pad fraction", ours.pad_fraction, theirs.pad_fraction),
        ("peak RSS (MiB)", ours.peak_rss_mb, theirs.peak_rss_mb),
    ] {
        println!("| {name} | {a:.3} | {b:.3} | {:.2} |", a / b);
    }
    Ok(())
}
