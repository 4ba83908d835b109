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
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    scenes: usize,
    /// Base seed: scene i uses a seed mixed from (seed, i); questions use another stream of the same seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Read RGB-D frames from this folder (docs/ARCHITECTURE.md) instead of generating scenes.
    #[arg(long, conflicts_with = "images")]
    rgbd: Option<PathBuf>,
    /// Synthesize from the photos in this folder: metric depth (--depth-model, or --depth-dir files), intrinsics
    /// (--intrinsics, EXIF, Depth Pro's predicted field of view, else --fov), named boxes (--detector or --boxes-dir), each object's pixels (--segmenter
    /// or --masks-dir masks, else the depth-consistent pixels inside its box).
    #[arg(long)]
    images: Option<PathBuf>,
    /// With --images: metric depth model, an HF folder or hub id (downloaded once into the hub cache), chosen by
    /// its config's model_type: Depth Anything V2 metric (depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf)
    /// or Depth Pro (apple/DepthPro-hf), whose predicted field of view gives the intrinsics of photos without
    /// --intrinsics or an EXIF focal length (the depth is rescaled to intrinsics from those).
    #[arg(long, requires = "images", conflicts_with = "depth_dir")]
    depth_model: Option<String>,
    /// With --images: depth files instead of a model, `<stem>.depth.png` (mm) / `.depth.npy` / `.depth.tiff` (m).
    #[arg(long, requires = "images")]
    depth_dir: Option<PathBuf>,
    /// With --images: open-vocabulary detector (OWLv2 / OWL-ViT), an HF folder or hub id
    /// (google/owlv2-base-patch16-ensemble), asked for --vocab on every photo.
    #[arg(long, requires = "images", conflicts_with = "boxes_dir")]
    detector: Option<String>,
    /// With --detector: what to look for, comma-separated ("a mug,a chair,a laptop"); names drop the article.
    #[arg(long, value_delimiter = ',')]
    vocab: Vec<String>,
    /// With --images: named boxes per photo instead of a detector, `<stem>.objects.json` =
    /// {"objects": [{"id": 1, "name": "chair", "bbox": [x, y, w, h]}]} in pixels (the layout of an RGB-D folder's
    /// object files plus a `bbox` each; objects without one are left out).
    #[arg(long, requires = "images")]
    boxes_dir: Option<PathBuf>,
    /// With --images: box-prompted segmenter, an HF folder or hub id of SAM (facebook/sam-vit-base) or SAM 2 (a
    /// `Sam2Model` repository), told apart by its config's model_type: each object is its box's mask (the candidate
    /// with the highest predicted IoU). Without it (or --masks-dir), each object is the depth-consistent pixels of
    /// its box.
    #[arg(long, requires = "images", conflicts_with = "masks_dir")]
    segmenter: Option<String>,
    /// With --boxes-dir: object masks given per photo, `<stem>.instances.png` (8/16-bit ids, 0 = background) named
    /// by the `<stem>.objects.json` of the same folder (the RGB-D folder's layout).
    #[arg(long, requires = "boxes_dir")]
    masks_dir: Option<PathBuf>,
    /// With --images: intrinsics JSON, `{"folder": {"hfov_deg": 70}, "per_image": {"a.jpg": {"fx": 500}}}`.
    #[arg(long, requires = "images")]
    intrinsics: Option<PathBuf>,
    /// With --images: horizontal field of view (degrees) assumed when neither --intrinsics, EXIF nor the depth
    /// model (Depth Pro) gives one.
    #[arg(long, default_value_t = 60.0)]
    fov: f64,
    /// With --detector: boxes scoring below this are dropped.
    #[arg(long, default_value_t = 0.1)]
    min_score: f64,
    /// With --detector: boxes of one query overlapping more than this IoU keep only the best.
    #[arg(long, default_value_t = 0.3)]
    nms_iou: f32,
    /// Device for the perception models: cpu, cuda[:i], vulkan[:i].
    #[arg(long, value_parser = super::device, default_value = "cpu")]
    device: String,
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
    /// Yes/no and "which" answers list the two objects along the relation's axis, by colour where that tells them
    /// apart, before deciding ("From left to right: gray: left, red: right. So gray: left. Asked: right. No." for
    /// "Is the gray cube to the right of the red box?").
    #[arg(long)]
    reasoned_answers: bool,
    /// One wording per question type instead of every template and synonym at random.
    #[arg(long)]
    plain_phrasing: bool,
    /// Share of each image's questions that are qualitative (predicates and choices); the rest are quantities.
    #[arg(long, default_value_t = 0.5)]
    qualitative_share: f64,
    /// Objects with fewer visible pixels are not asked about.
    #[arg(long, default_value_t = 150)]
    min_visible_pixels: usize,
    /// Write this many approach sequences instead of scenes: a gripper approaching a target object, every frame
    /// asking "What is the gap between the gripper and the X?" with the exact closest-surface gap (the question
    /// `svlm reward --source vlm` asks). Writes OUT/approach.jsonl, OUT/images/ and each sequence's RGB-D folder
    /// OUT/sequences/seq_NNNN/ (with sequence.json: the task and the exact gaps), ready for `svlm reward`.
    /// Uses --seed, --image-size and --objects (the gripper comes on top); --plain-numbers as for scenes.
    #[arg(long, conflicts_with_all = ["rgbd", "images"], value_parser = at_least_one)]
    approach: Option<usize>,
    /// Frames per approach sequence (with --approach).
    #[arg(long, default_value_t = 12, requires = "approach")]
    approach_frames: usize,
    /// Images per parallel chunk (and per Parquet row group).
    #[arg(long, default_value_t = 64)]
    chunk_size: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("0 scenes: nothing to synthesize".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
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

/// The photo path of `--images`: a depth source and a box source, both required.
fn photo_source(
    args: &Args,
    dir: &std::path::Path,
    estimate: EstimateParams,
) -> anyhow::Result<svlm_perception::PhotoSource> {
    use svlm_perception::{
        BoxSegmenter, DepthEstimator, DepthModel, GivenBoxes, GivenDepth, GivenMasks,
        IntrinsicsOptions, ModelDepth, ObjectDetector, ObjectSegmenter, OwlBoxes, OwlDetector,
        PhotoSettings, PhotoSource, SamMasks, list_photos,
    };
    let photos = list_photos(dir)?;
    if photos.is_empty() {
        bail!("--images {}: no image files", dir.display());
    }
    let device = || {
        svlm_model::resolve_device(&args.device)
            .with_context(|| format!("--device {}", args.device))
    };
    let depth: Box<dyn DepthEstimator> = match (&args.depth_model, &args.depth_dir) {
        (Some(spec), _) => {
            let device = device()?;
            Box::new(ModelDepth::new(
                DepthModel::from_pretrained(spec, None, &device)
                    .with_context(|| format!("--depth-model {spec}"))?,
            ))
        }
        (None, Some(depth_dir)) => Box::new(GivenDepth {
            dir: depth_dir.clone(),
        }),
        (None, None) => bail!("--images needs --depth-model MODEL or --depth-dir DIR"),
    };
    let detector: Box<dyn ObjectDetector> = match (&args.detector, &args.boxes_dir) {
        (Some(spec), _) => {
            let vocab: Vec<String> = args
                .vocab
                .iter()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if vocab.is_empty() {
                bail!("--detector needs --vocab \"a mug,a chair,...\"");
            }
            let model = OwlDetector::from_pretrained(spec, None, &device()?)
                .with_context(|| format!("--detector {spec}"))?;
            Box::new(OwlBoxes::new(
                model,
                vocab,
                args.min_score as f32,
                args.nms_iou,
            ))
        }
        (None, Some(boxes)) => Box::new(GivenBoxes { dir: boxes.clone() }),
        (None, None) => bail!("--images needs --detector MODEL --vocab ... or --boxes-dir DIR"),
    };
    let segmenter: Option<Box<dyn ObjectSegmenter>> = match (&args.segmenter, &args.masks_dir) {
        (Some(spec), _) => Some(Box::new(SamMasks::new(
            BoxSegmenter::from_pretrained(spec, None, &device()?)
                .with_context(|| format!("--segmenter {spec}"))?,
        ))),
        (None, Some(dir)) => Some(Box::new(GivenMasks { dir: dir.clone() })),
        (None, None) => None,
    };
    let mut intrinsics = match &args.intrinsics {
        Some(path) => IntrinsicsOptions::from_json_file(path)?,
        None => IntrinsicsOptions::default(),
    };
    if args.intrinsics.is_none() {
        intrinsics.fov_prior_deg = args.fov;
    }
    let source = PhotoSource::new(
        photos,
        depth,
        detector,
        PhotoSettings {
            intrinsics,
            estimate,
            min_score: args.min_score,
            ..PhotoSettings::default()
        },
    );
    Ok(match segmenter {
        Some(segmenter) => source.with_segmenter(segmenter),
        None => source,
    })
}

/// `--approach N`: approach sequences as records and RGB-D folders.
fn run_approach(args: &Args, count: usize) -> anyhow::Result<()> {
    use rayon::prelude::*;
    let (width, height) = pair::<u32>(&args.image_size, 'x', "--image-size")?;
    let (lo, hi) = pair::<usize>(&args.objects, '-', "--objects")?;
    let config = svlm_world::SequenceConfig {
        scene: svlm_world::SceneConfig {
            width,
            height,
            objects: [lo, hi],
            ..svlm_world::SequenceConfig::default().scene
        },
        ..svlm_world::SequenceConfig::default()
    };
    config.validate()?;
    let style = if args.plain_numbers {
        svlm_answers::NumberStyle::plain_metric()
    } else {
        svlm_answers::NumberStyle::default()
    };
    let images = args.out.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    let bar = super::quickstart::progress_bar(count as u64, "approach sequences", !args.quiet);
    let started = std::time::Instant::now();
    let records: Vec<Vec<svlm_synth::SpatialRecord>> = (0..count)
        .into_par_iter()
        .map(|i| -> anyhow::Result<Vec<svlm_synth::SpatialRecord>> {
            let seed = svlm_world::scene_seed(args.seed, i as u64);
            let frames = svlm_world::approach_sequence(seed, args.approach_frames, &config)
                .with_context(|| format!("approach sequence {i} (seed {seed})"))?;
            let dir = args.out.join("sequences").join(format!("seq_{i:04}"));
            svlm_world::write_sequence_folder(&dir, seed, &frames, || {})
                .with_context(|| format!("writing {}", dir.display()))?;
            let framed = svlm_synth::approach::approach_records(
                &frames,
                &format!("approach-{i:04}"),
                &style,
                seed,
                serde_json::json!({"source": "approach_sequence", "sequence": i, "seed": seed}),
            )
            .map_err(|e| anyhow::anyhow!("approach sequence {i} (seed {seed}): {e}"))?;
            let mut out = Vec::with_capacity(framed.len());
            for f in framed {
                let path = args.out.join(&f.record.image);
                svlm_report::write_atomic(&path, &f.png)
                    .with_context(|| format!("writing {}", path.display()))?;
                out.push(f.record);
            }
            bar.inc(1);
            Ok(out)
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();
    let mut text = String::new();
    let mut frames = 0;
    for record in records.iter().flatten() {
        text.push_str(&serde_json::to_string(record)?);
        text.push('\n');
        frames += 1;
    }
    let path = args.out.join("approach.jsonl");
    svlm_report::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{count} approach sequences, {frames} frames ({:.1} s) -> {} and {}",
        started.elapsed().as_secs_f64(),
        path.display(),
        args.out.join("sequences").display()
    );
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(count) = args.approach {
        return run_approach(&args, count);
    }
    let visibility = VisibilityParams {
        min_visible_pixels: args.min_visible_pixels,
        ..VisibilityParams::default()
    };
    let estimate = EstimateParams {
        visibility: visibility.clone(),
        ..EstimateParams::default()
    };
    let source: Box<dyn ItemSource> = match (&args.rgbd, &args.images) {
        (_, Some(dir)) => Box::new(photo_source(&args, dir, estimate)?),
        (Some(dir), None) => {
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
        (None, None) => {
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
            reasoned_answers: args.reasoned_answers,
            phrasing: if args.plain_phrasing {
                svlm_synth::phrase::Phrasing::Plain
            } else {
                svlm_synth::phrase::Phrasing::Varied
            },
            qualitative_share: args.qualitative_share,
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
        .map_err(|e| anyhow::anyhow!("question settings: {e}"))?;
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
