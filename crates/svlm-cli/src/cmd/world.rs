//! `svlm world`: render procedural scenes (or approach sequences) into an RGB-D folder (docs/ARCHITECTURE.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use svlm_world::{
    SceneConfig, SequenceConfig, approach_sequence, scene_seed, write_scene_folder,
    write_sequence_folder,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SequenceKind {
    /// A gripper approaching a target object, fixed camera, strictly decreasing gap.
    Approach,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (created if missing; frames with the same names are overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Number of scenes [default: 100]; with --sequence, number of sequences [default: 1].
    #[arg(long)]
    scenes: Option<u64>,
    /// Base seed: scene i uses a seed mixed from (seed, i), so any subset can be regenerated alone.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image width and height in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Objects per scene, "MIN-MAX" or "N" (furniture included).
    #[arg(long, default_value = "3-8")]
    objects: String,
    /// Fix the horizontal field of view (degrees) so every frame shares one intrinsics.json; random 50-75 if unset.
    #[arg(long)]
    hfov: Option<f64>,
    /// Allow two objects with the same name in a scene (e.g. two "red cube"s).
    #[arg(long)]
    allow_duplicate_names: bool,
    /// Write sequences instead of independent scenes. One sequence goes straight into --out, several into
    /// --out/seq_NNNN; each folder has one intrinsics.json and a sequence.json with the exact gaps.
    #[arg(long, value_enum)]
    sequence: Option<SequenceKind>,
    /// Frames per sequence.
    #[arg(long, default_value_t = 16)]
    frames: usize,
}

fn parse_range(text: &str) -> anyhow::Result<[usize; 2]> {
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .with_context(|| format!("--objects: {s:?} is not a count"))
    };
    match text.split_once('-') {
        Some((lo, hi)) => Ok([parse(lo)?, parse(hi)?]),
        None => {
            let n = parse(text)?;
            Ok([n, n])
        }
    }
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut scene = SceneConfig {
        width: args.size,
        height: args.size,
        objects: parse_range(&args.objects)?,
        unique_names: !args.allow_duplicate_names,
        ..SceneConfig::default()
    };
    if let Some(hfov) = args.hfov {
        scene.hfov_deg = [hfov, hfov];
    }
    let start = Instant::now();
    let count = args
        .scenes
        .unwrap_or(if args.sequence.is_some() { 1 } else { 100 });
    match args.sequence {
        None => {
            scene.validate().context("invalid scene options")?;
            let bar = progress(count, "scenes");
            let summary = write_scene_folder(&args.out, args.seed, 0..count, &scene, || bar.inc(1))
                .with_context(|| format!("writing scenes to {}", args.out.display()))?;
            bar.finish_and_clear();
            let seconds = start.elapsed().as_secs_f64();
            let pixels = summary.frames as f64 * args.size as f64 * args.size as f64;
            println!(
                "wrote {} scenes ({} objects, {:.1} per scene, {:.1}% object pixels) at {}x{} to {} in {:.1} s ({:.0} scenes/s)",
                summary.frames,
                summary.objects,
                summary.objects as f64 / summary.frames.max(1) as f64,
                100.0 * summary.object_pixels as f64 / pixels.max(1.0),
                args.size,
                args.size,
                args.out.display(),
                seconds,
                summary.frames as f64 / seconds.max(1e-9)
            );
        }
        Some(SequenceKind::Approach) => {
            let config = SequenceConfig {
                scene,
                ..Default::default()
            };
            config.validate().context("invalid sequence options")?;
            anyhow::ensure!(
                args.frames >= 2,
                "--frames must be at least 2, got {}",
                args.frames
            );
            let bar = progress(count * args.frames as u64, "frames");
            let mut last_line = String::new();
            for index in 0..count {
                let seed = scene_seed(args.seed, index);
                let frames = approach_sequence(seed, args.frames, &config)
                    .with_context(|| format!("building approach sequence {index} (seed {seed})"))?;
                let dir = if count == 1 {
                    args.out.clone()
                } else {
                    args.out.join(format!("seq_{index:04}"))
                };
                let info = write_sequence_folder(&dir, seed, &frames, || bar.inc(1))
                    .with_context(|| format!("writing sequence to {}", dir.display()))?;
                last_line = format!(
                    "{}: {} -> {}, gap {:.3} m -> {:.3} m",
                    dir.display(),
                    info.gripper,
                    info.target,
                    info.gap_m.first().copied().unwrap_or(f64::NAN),
                    info.gap_m.last().copied().unwrap_or(f64::NAN)
                );
                if count > 1 {
                    bar.println(&last_line);
                }
            }
            bar.finish_and_clear();
            println!(
                "wrote {} approach sequence(s) of {} frames at {}x{} in {:.1} s{}",
                count,
                args.frames,
                args.size,
                args.size,
                start.elapsed().as_secs_f64(),
                if count == 1 {
                    format!(" ({last_line})")
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ranges_parse() {
        assert_eq!(parse_range("3-8").unwrap(), [3, 8]);
        assert_eq!(parse_range("5").unwrap(), [5, 5]);
        assert!(parse_range("a-3").is_err());
    }
}
