//! `svlm synth`: spatial VQA shards from procedural scenes or RGB-D folders.

use std::path::PathBuf;

use anyhow::{Context, bail};
use svlm_synth::graph::{EstimateParams, VisibilityParams};
use svlm_synth::pipeline::{
    OutputFormat, ShardOutcome, SynthOptions, run_shard, write_run_manifest,
};
use svlm_synth::qa::QaConfig;
use svlm_synth::source::{ItemSource, RgbdSource, WorldSource};
use svlm_synth::{ShardSpec, TruthSource};

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (shards, images/, manifest.json).
    #[arg(long)]
    out: PathBuf,
    /// Number of procedural scenes (ignored with --rgbd).
    #[arg(long, default_value_t = 100)]
    scenes: usize,
    /// Base seed: scene i uses a seed mixed from (seed, i); questions use another stream of the same seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Read RGB-D frames from this folder (docs/ARCHITECTURE.md) instead of generating scenes.
    #[arg(long)]
    rgbd: Option<PathBuf>,
    /// jsonl, parquet or both.
    #[arg(long, default_value = "jsonl")]
    format: OutputFormat,
    /// Shard i of n (0-based): a contiguous range of scene/frame indices, for Slurm arrays or indexed jobs.
    #[arg(long, default_value = "0/1")]
    shard: ShardSpec,
    /// Questions per image (half qualitative, half quantitative when the scene allows).
    #[arg(long, default_value_t = 32)]
    qa_per_image: usize,
    /// exact (the procedural world's geometry) or estimated (lifted from depth); RGB-D input is always estimated.
    #[arg(long, default_value = "exact")]
    truth: TruthSource,
    /// Procedural image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "512x384")]
    image_size: String,
    /// Objects per procedural scene, MIN-MAX.
    #[arg(long, default_value = "3-8")]
    objects: String,
    /// Only these question types, comma-separated (e.g. left_predicate,distance; default: all 52).
    #[arg(long, value_delimiter = ',')]
    types: Option<Vec<String>>,
    /// Lengths always as one plain metric number ("1.2 meters") instead of the mixed human-like style.
    #[arg(long)]
    plain_numbers: bool,
    /// Bare answers ("Yes.", "The red cube.", "1.2 meters.") instead of sentences.
    #[arg(long)]
    short_answers: bool,
    /// Objects with fewer visible pixels are not asked about.
    #[arg(long, default_value_t = 150)]
    min_visible_pixels: usize,
    /// Images per parallel chunk (and per Parquet row group).
    #[arg(long, default_value_t = 64)]
    chunk_size: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn pair<T: std::str::FromStr>(text: &str, sep: char, what: &str) -> anyhow::Result<(T, T)> {
    let parse = |s: &str| s.trim().parse::<T>().ok();
    match text.split_once(sep) {
        Some((a, b)) => match (parse(a), parse(b)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => bail!("{what} {text:?} must look like A{sep}B"),
        },
        None => bail!("{what} {text:?} must look like A{sep}B"),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let visibility = VisibilityParams {
        min_visible_pixels: args.min_visible_pixels,
        ..VisibilityParams::default()
    };
    let estimate = EstimateParams {
        visibility: visibility.clone(),
        ..EstimateParams::default()
    };
    let source: Box<dyn ItemSource> = match &args.rgbd {
        Some(dir) => {
            if args.truth == TruthSource::Exact {
                tracing::info!(
                    "--rgbd frames are lifted from depth: answers are marked `estimated`"
                );
            }
            Box::new(
                RgbdSource::open(dir, estimate)
                    .with_context(|| format!("opening RGB-D folder {}", dir.display()))?,
            )
        }
        None => {
            let (width, height) = pair::<u32>(&args.image_size, 'x', "--image-size")?;
            let (lo, hi) = pair::<usize>(&args.objects, '-', "--objects")?;
            let config = svlm_world::SceneConfig {
                width,
                height,
                objects: [lo, hi],
                ..Default::default()
            };
            config.validate()?;
            Box::new(WorldSource {
                scenes: args.scenes,
                seed: args.seed,
                config,
                truth: args.truth,
                estimate,
                visibility,
            })
        }
    };
    let opts = SynthOptions {
        out: args.out.clone(),
        format: args.format,
        shard: args.shard,
        seed: args.seed,
        qa: QaConfig {
            qa_per_image: args.qa_per_image,
            kinds: args.types.clone(),
            short_answers: args.short_answers,
            number_style: if args.plain_numbers {
                svlm_answers::NumberStyle::plain_metric()
            } else {
                svlm_answers::NumberStyle::default()
            },
            ..QaConfig::default()
        },
        chunk_size: args.chunk_size,
        progress: !args.quiet,
    };
    opts.qa
        .validate()
        .map_err(|e| anyhow::anyhow!("--types: {e}"))?;
    let started = std::time::Instant::now();
    let outcome = run_shard(source.as_ref(), &opts)?;
    let m = outcome.manifest();
    let verb = match outcome {
        ShardOutcome::Written(_) => "wrote",
        ShardOutcome::Skipped(_) => "already finished, skipped",
    };
    println!(
        "shard {} {verb}: items {}..{}, {} images, {} QA ({} qualitative / {} quantitative) in {:.1} s -> {}",
        m.shard,
        m.items[0],
        m.items[1],
        m.images,
        m.qa,
        m.qualitative,
        m.quantitative,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    if !m.bad_items.is_empty() {
        println!("{} bad items:", m.bad_items.len());
        for b in m.bad_items.iter().take(20) {
            println!("  {} ({}): {}", b.item, b.reason, b.detail);
        }
    }
    let run = write_run_manifest(&args.out, &m.config, opts.shard.count)?;
    println!(
        "run: {}/{} shards finished, {} images, {} QA; skips: {}",
        run.shards_finished.len(),
        run.shard_count,
        run.totals.images,
        run.totals.qa,
        serde_json::to_string(&run.totals.skips)?
    );
    Ok(())
}
