//! `svlm train`: one co-training run from a config.

use std::path::PathBuf;

use anyhow::Context;
use svlm_train::checkpoint::{RunDirUse, claim_run_dir};
use svlm_train::config::RunConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Run config (TOML; see configs/).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Override a config key, typed by the schema: `--set optim.lr=2e-5 --set data.sources.spatial.weight=0.1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run directory (default: runs/<name>). A folder that holds another run is refused (see --resume,
    /// --overwrite).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint (its saved config.toml is used).
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Delete the run that --out holds (checkpoints, metrics, reports) before training a new one.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Device: cpu, cuda[:i], vulkan[:i] (overrides train.device); a comma-separated list (`cuda:0,cuda:1`)
    /// trains data-parallel across those devices.
    #[arg(long, value_parser = super::device_list)]
    pub device: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (mut config, run_dir, resume) = match (&args.resume, &args.config) {
        (Some(dir), _) => {
            let path = dir.join("config.toml");
            (
                RunConfig::load(&path, &args.set)
                    .with_context(|| format!("resuming {}", dir.display()))?,
                dir.clone(),
                true,
            )
        }
        (None, Some(path)) => {
            let config = RunConfig::load(path, &args.set)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
            (config, out, false)
        }
        (None, None) => anyhow::bail!("pass --config FILE or --resume RUN_DIR"),
    };
    if let Some(device) = &args.device {
        config.train.device = device.clone();
    }
    let usage = match (resume, args.overwrite) {
        (true, _) => RunDirUse::Resume,
        (false, true) => RunDirUse::Overwrite,
        (false, false) => RunDirUse::New,
    };
    claim_run_dir(&run_dir, usage).map_err(anyhow::Error::msg)?;
    let outcome = svlm_train::vlm::train_config(&config, &run_dir, resume)?;
    if outcome.losses.is_empty() {
        println!(
            "{} had finished all {} steps; nothing left to train",
            run_dir.display(),
            outcome.steps
        );
        return Ok(());
    }
    println!(
        "trained {} steps: final loss {}, {:.2} samples/s, {:.0} tokens/s, pad fraction {:.3}",
        outcome.steps,
        outcome
            .final_loss
            .map_or("-".to_string(), |l| format!("{l:.4}")),
        outcome.samples_per_s,
        outcome.tokens_per_s,
        outcome.pad_fraction
    );
    for s in &outcome.sources {
        println!(
            "  {:<16} configured {:.3}  samples {:>8} ({:.3})  supervised tokens {:>10} ({:.3})  val loss {}",
            s.name,
            s.configured_share,
            s.samples,
            s.sample_share,
            s.supervised_tokens,
            s.token_share,
            s.validation_loss
                .map_or("-".to_string(), |v| format!("{v:.4}"))
        );
    }
    println!(
        "run directory: {} (report.md, loss.png, metrics.jsonl, tb/)",
        run_dir.display()
    );
    Ok(())
}
