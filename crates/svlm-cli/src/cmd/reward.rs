//! `svlm reward`: dense reward annotation over an RGB-D frame folder — per-frame distance between two objects,
//! reward curves, Spearman monotonicity, `reward.json` for RL code and `reward.png`. Fewer than two measured frames
//! is an error (non-zero exit), after `reward.json` is written with each frame's failure.

use std::path::PathBuf;

use anyhow::Context;
use svlm_reason::reward::{RewardOptions, RewardSource, annotate, write_report};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Closest-surface distance between the objects' point clouds (needs depth, instance masks, object names).
    Geometry,
    /// A VLM's answer to "What is the gap between the A and the B?" per frame (the synthesis wording).
    Vlm,
}

#[derive(clap::Args)]
pub struct Args {
    /// RGB-D frame folder (docs/ARCHITECTURE.md); frames in sorted stem order.
    #[arg(long)]
    frames: PathBuf,
    /// The two objects, e.g. "distance between the gripper and the red can".
    #[arg(long)]
    task: String,
    #[arg(long, value_enum, default_value_t = Source::Geometry)]
    source: Source,
    #[command(flatten)]
    vlm: crate::model_args::VlmArgs,
    /// Output folder for reward.json and reward.png (default: the frames folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Questions per VLM batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = RewardOptions {
        source: match args.source {
            Source::Geometry => RewardSource::Geometry,
            Source::Vlm => RewardSource::Vlm,
        },
        batch_size: args.batch_size,
        ..RewardOptions::default()
    };
    let model = match args.source {
        Source::Vlm => args.vlm.open()?,
        Source::Geometry => None,
    };
    let mut answerer: Option<Box<dyn svlm_eval::Answerer>> = match (args.source, model) {
        (Source::Vlm, Some(model)) => Some(Box::new(model)),
        (Source::Vlm, None) => Some(Box::new(
            svlm_reason::oracle::oracle_for_folder(&args.frames, 0).context(
                "without --vlm MODEL the exact-truth oracle answers, which needs procedural frames",
            )?,
        )),
        (Source::Geometry, _) => None,
    };
    let vlm: Option<&mut dyn svlm_eval::Answerer> = match answerer.as_mut() {
        Some(a) => Some(a.as_mut()),
        None => None,
    };
    let report = annotate(&args.frames, &args.task, &options, vlm)?;
    let out = args.out.unwrap_or_else(|| args.frames.clone());
    let files = write_report(&report, &out)?;
    for failed in &report.failed {
        tracing::warn!(frame = %failed.frame, reason = %failed.reason, "no distance");
    }
    println!(
        "{}: {} [{}], {} of {} frames measured ({} failed)",
        report.task,
        report.objects.join(" <-> "),
        options.source.as_str(),
        report.n_valid,
        report.n_frames,
        report.n_failed
    );
    if let (Some(d0), Some(d1)) = (report.initial_distance_m, report.final_distance_m) {
        println!("distance {d0:.3} m -> {d1:.3} m");
    }
    match report.spearman_rho {
        Some(rho) => println!(
            "Spearman rho (frame index vs distance) = {rho:.4}{}",
            if report.strictly_decreasing {
                " (strictly decreasing)"
            } else {
                ""
            }
        ),
        None => {
            println!("Spearman rho undefined (fewer than two measured frames or constant distance)")
        }
    }
    println!(
        "wrote {} and {}",
        files.json.display(),
        files.plot.display()
    );
    report.ensure_measured()
}
