//! `svlm sweep`: a grid of training runs and their summary.

use std::path::PathBuf;

use svlm_train::sweep::{SweepConfig, run_sweep};

#[derive(clap::Args)]
pub struct Args {
    /// Sweep file (TOML: `base`, optional `set`, `[grid]`; see configs/sweeps/).
    pub sweep: PathBuf,
    /// Output folder: one run directory per grid point + summary.{md,csv,json,png} (default: runs/sweeps/<file stem>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device for every run (overrides train.device).
    #[arg(long, value_parser = super::device_list)]
    pub device: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let sweep = SweepConfig::load(&args.sweep)?;
    let stem = args
        .sweep
        .file_stem()
        .map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs/sweeps").join(stem));
    let results = run_sweep(&sweep, &out, |config, run_dir| {
        let mut config = config.clone();
        if let Some(d) = &args.device {
            config.train.device = d.clone();
        }
        super::train::train_config(&config, run_dir, false)
    })?;
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    println!(
        "{} runs ({} failed); summary: {}",
        results.len(),
        failed,
        out.join("summary.md").display()
    );
    if failed == results.len() {
        anyhow::bail!(
            "every sweep point failed; see {}",
            out.join("summary.md").display()
        );
    }
    Ok(())
}
