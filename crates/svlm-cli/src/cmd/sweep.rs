//! `svlm sweep`: a grid of training runs and their summary.

use std::path::PathBuf;

use svlm_train::checkpoint::RunDirUse;
use svlm_train::sweep::{SweepConfig, claim_sweep_dir, run_sweep};

#[derive(clap::Args)]
pub struct Args {
    /// Sweep file (TOML: `base`, optional `set`, `[grid]`; see configs/sweeps/).
    pub sweep: PathBuf,
    /// Output folder: one run directory per grid point + summary.{md,csv,json,png} (default: runs/sweeps/<file stem>).
    /// A folder that holds another sweep is refused (see --resume, --overwrite).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the sweep in the output folder: finished points keep their results, interrupted ones resume from
    /// their newest checkpoint, the rest start.
    #[arg(long)]
    pub resume: bool,
    /// Delete the sweep that the output folder holds (every point's run and the summary) before starting.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
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
    let usage = match (args.resume, args.overwrite) {
        (true, _) => RunDirUse::Resume,
        (false, true) => RunDirUse::Overwrite,
        (false, false) => RunDirUse::New,
    };
    claim_sweep_dir(&out, usage)?;
    let results = run_sweep(&sweep, &out, args.resume, args.device.as_deref())?;
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
