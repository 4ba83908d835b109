//! `svlm bench photos`: photos/s of each stage of the photo path (`svlm synth --images`) with the full-size
//! architectures and seeded random weights (`svlm_perception::full_size`).
//!
//! The photos are procedural scenes rendered by `svlm_world` into an RGB-D folder (photo, true depth, boxes,
//! instance masks, intrinsics). They go through `PhotoSource` and `run_shard` as in `svlm synth --images`, one
//! model batch per `--batch-size` chunk. Each model runs and is timed on every photo; since random weights give
//! meaningless depth, boxes and masks, each model's output is then replaced by the scene's true one (read before
//! the clock starts), so the segmenter prompts with the true boxes and the lifting, geometry and QA stages see a
//! real scene. The last stage is the rest of the wall time: photo decoding, intrinsics, lifting, scene graph,
//! questions and answers, and writing the records and PNGs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use image::RgbImage;
use serde::Serialize;
use svlm_perception::intrinsics::CameraSpec;
use svlm_perception::{
    BoxSegmenter, DepthEstimator, DepthModel, EstimatedDepth, FullSizeDepth, FullSizeDetector,
    FullSizeSegmenter, GivenDepth, IntrinsicsOptions, ModelDepth, NamedBox, ObjectDetector,
    ObjectMask, ObjectSegmenter, OwlBoxes, OwlDetector, PhotoSettings, PhotoSource, SamMasks,
    list_photos, load_photo,
};
use svlm_synth::qa::QaConfig;
use svlm_synth::{OutputFormat, ShardSpec, SynthOptions, run_shard};

/// What the detector is asked for on every photo (its output is replaced by the scene's boxes).
const QUERIES: [&str; 8] = [
    "a chair", "a table", "a mug", "a lamp", "a box", "a ball", "a cube", "a book",
];

#[derive(clap::Args)]
pub struct Args {
    /// Photos to time (procedural scenes rendered by svlm_world).
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    photos: usize,
    /// Photos per model batch (the `--chunk-size` of `svlm synth`).
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    batch_size: usize,
    /// Photo size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    size: String,
    /// Depth model architecture: depth-anything-v2-small (ViT-S/14, 518 px) or depth-pro (three DINOv2-L
    /// encoders on 1536 px, 35 overlapping 384-px patches per photo: far heavier than the others and not timed on a
    /// small CPU machine; ask for it explicitly, with few photos).
    #[arg(long, default_value = "depth-anything-v2-small")]
    depth: String,
    /// Detector architecture: owlvit-base32 (ViT-B/32, 768 px) or owlv2-base (ViT-B/16, 960 px: about 40 s per
    /// photo on 2 cores).
    #[arg(long, default_value = "owlvit-base32")]
    detector: String,
    /// Segmenter architecture: none (each object is the depth-consistent pixels of its box), sam-vit-base or
    /// sam2-hiera-tiny (1024 px image encoders).
    #[arg(long, default_value = "none")]
    segmenter: String,
    /// Questions per photo (as `svlm synth --qa-per-image`).
    #[arg(long, default_value_t = 32)]
    qa_per_image: usize,
    /// Seeds the scenes, the random weights and the question sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Load the tiny random-weight models of svlm-perception's test fixtures (same families) instead of the
    /// full-size architectures: checks the wiring in seconds; the timings mean nothing.
    #[arg(long)]
    tiny: bool,
    /// With --tiny: the fixtures folder (crates/svlm-perception/tests/fixtures of this source tree by default).
    #[arg(long, requires = "tiny")]
    fixtures: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

fn by_name<T: Copy>(
    flag: &str,
    name: &str,
    all: &[T],
    name_of: fn(T) -> &'static str,
) -> anyhow::Result<T> {
    all.iter()
        .copied()
        .find(|&t| name_of(t) == name)
        .with_context(|| {
            let names: Vec<&str> = all.iter().map(|&t| name_of(t)).collect();
            format!("{flag} {name:?}: one of {}", names.join(", "))
        })
}

/// Wall seconds spent in one model, over the run.
#[derive(Clone, Default)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
        out
    }

    fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 * 1e-9
    }
}

/// The scene's true outputs of each stage, by photo path.
struct Truth<T>(HashMap<PathBuf, T>);

impl<T: Clone> Truth<T> {
    fn of(&self, path: &Path) -> anyhow::Result<T> {
        self.0
            .get(path)
            .cloned()
            .with_context(|| format!("no rendered truth for {}", path.display()))
    }
}

/// Runs the depth model (timed), answers with the true depth.
struct TimedDepth {
    model: ModelDepth,
    truth: Truth<EstimatedDepth>,
    clock: Clock,
}

impl DepthEstimator for TimedDepth {
    fn describe(&self) -> serde_json::Value {
        self.model.describe()
    }

    fn depth(&self, path: &Path, image: &RgbImage) -> anyhow::Result<EstimatedDepth> {
        self.clock.time(|| self.model.depth(path, image))?;
        self.truth.of(path)
    }

    fn depth_batch(&self, photos: &[(&Path, &RgbImage)]) -> Vec<anyhow::Result<EstimatedDepth>> {
        let predicted = self.clock.time(|| self.model.depth_batch(photos));
        predicted
            .into_iter()
            .zip(photos)
            .map(|(p, (path, _))| p.and_then(|_| self.truth.of(path)))
            .collect()
    }
}

/// Runs the detector (timed), answers with the true boxes; counts the boxes the model gave.
struct TimedDetector {
    model: OwlBoxes,
    truth: Truth<Vec<NamedBox>>,
    clock: Clock,
    model_boxes: Arc<AtomicU64>,
}

impl TimedDetector {
    fn answer(
        &self,
        path: &Path,
        predicted: anyhow::Result<Vec<NamedBox>>,
    ) -> anyhow::Result<Vec<NamedBox>> {
        let boxes = predicted?;
        self.model_boxes
            .fetch_add(boxes.len() as u64, Ordering::Relaxed);
        self.truth.of(path)
    }
}

impl ObjectDetector for TimedDetector {
    fn describe(&self) -> serde_json::Value {
        self.model.describe()
    }

    fn detect(&self, path: &Path, image: &RgbImage) -> anyhow::Result<Vec<NamedBox>> {
        let predicted = self.clock.time(|| self.model.detect(path, image));
        self.answer(path, predicted)
    }

    fn detect_batch(&self, photos: &[(&Path, &RgbImage)]) -> Vec<anyhow::Result<Vec<NamedBox>>> {
        let predicted = self.clock.time(|| self.model.detect_batch(photos));
        predicted
            .into_iter()
            .zip(photos)
            .map(|(p, (path, _))| self.answer(path, p))
            .collect()
    }
}

/// Runs the segmenter on the (true) boxes (timed), answers with the true masks.
struct TimedSegmenter {
    model: SamMasks,
    truth: Truth<Vec<ObjectMask>>,
    clock: Clock,
}

impl ObjectSegmenter for TimedSegmenter {
    fn describe(&self) -> serde_json::Value {
        self.model.describe()
    }

    fn segment(
        &self,
        path: &Path,
        image: &RgbImage,
        boxes: &[NamedBox],
    ) -> anyhow::Result<Vec<ObjectMask>> {
        self.clock.time(|| self.model.segment(path, image, boxes))?;
        self.truth.of(path)
    }

    fn segment_batch(
        &self,
        photos: &[(&Path, &RgbImage, &[NamedBox])],
    ) -> Vec<anyhow::Result<Vec<ObjectMask>>> {
        let predicted = self.clock.time(|| self.model.segment_batch(photos));
        predicted
            .into_iter()
            .zip(photos)
            .map(|(p, (path, _, _))| p.and_then(|_| self.truth.of(path)))
            .collect()
    }
}

#[derive(Debug, Serialize)]
struct Stage {
    stage: String,
    seconds: f64,
    seconds_per_photo: f64,
    photos_per_s: f64,
}

impl Stage {
    fn new(stage: impl Into<String>, seconds: f64, photos: usize) -> Self {
        Self {
            stage: stage.into(),
            seconds,
            seconds_per_photo: seconds / photos as f64,
            photos_per_s: photos as f64 / seconds.max(1e-12),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    photos: usize,
    batch_size: usize,
    width: u32,
    height: u32,
    /// `full-size random weights` or `tiny fixtures`.
    weights: String,
    depth: String,
    detector: String,
    segmenter: Option<String>,
    queries: usize,
    cpu_threads: usize,
    build_seconds: f64,
    stages: Vec<Stage>,
    end_to_end: Stage,
    /// Boxes per photo the random-weight detector gave (replaced by the scene's boxes).
    model_boxes_per_photo: f64,
    true_boxes_per_photo: f64,
    images_with_qa: u64,
    qa: u64,
    bad_items: usize,
}

/// The models of the run: full size with random weights, or the tiny fixtures.
struct Models {
    depth: DepthModel,
    detector: OwlDetector,
    segmenter: Option<BoxSegmenter>,
}

fn build_models(
    args: &Args,
    depth: FullSizeDepth,
    detector: FullSizeDetector,
    segmenter: Option<FullSizeSegmenter>,
    device: &svlm_model::burn::tensor::Device,
) -> anyhow::Result<Models> {
    if args.tiny {
        let dir = args.fixtures.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../svlm-perception/tests/fixtures")
        });
        let depth_dir = dir.join(match depth {
            FullSizeDepth::DepthAnythingV2Small => "tiny-depth-anything",
            FullSizeDepth::DepthPro => "tiny-depth-pro",
        });
        let detector_dir = dir.join(match detector {
            FullSizeDetector::Owlv2Base => "owl/tiny-owlv2",
            FullSizeDetector::OwlvitBase32 => "owl/tiny-owlvit",
        });
        return Ok(Models {
            depth: DepthModel::load(&depth_dir, device)
                .with_context(|| format!("--tiny: loading {}", depth_dir.display()))?,
            detector: OwlDetector::load(&detector_dir, device)
                .with_context(|| format!("--tiny: loading {}", detector_dir.display()))?,
            segmenter: match segmenter {
                None => None,
                Some(s) => {
                    let seg_dir = dir.join(match s {
                        FullSizeSegmenter::SamVitBase => "sam/tiny-sam",
                        FullSizeSegmenter::Sam2HieraTiny => "sam2/tiny-sam2",
                    });
                    Some(
                        BoxSegmenter::load(&seg_dir, device)
                            .with_context(|| format!("--tiny: loading {}", seg_dir.display()))?,
                    )
                }
            },
        });
    }
    Ok(Models {
        depth: depth.random(args.seed, device)?,
        detector: detector.random(args.seed.wrapping_add(1), device)?,
        segmenter: segmenter
            .map(|s| s.random(args.seed.wrapping_add(2), device))
            .transpose()?,
    })
}

/// Each visible object of a rendered scene as a named box (the bounds of its pixels in `<stem>.instances.png`)
/// and its mask.
fn true_objects(path: &Path, size: (u32, u32)) -> anyhow::Result<(Vec<NamedBox>, Vec<ObjectMask>)> {
    let stem = path.with_extension("");
    let objects_file = stem.with_extension("objects.json");
    let (objects, _) = svlm_world::read_objects(&objects_file)?;
    let ids = svlm_world::read_instances_file(&stem.with_extension("instances.png"), size)?;
    let width = size.0 as usize;
    let mut boxes = Vec::new();
    let mut masks = Vec::new();
    for object in objects {
        let mut bounds: Option<[usize; 4]> = None;
        for (i, _) in ids.iter().enumerate().filter(|(_, id)| **id == object.id) {
            let (x, y) = (i % width, i / width);
            let b = bounds.get_or_insert([x, y, x, y]);
            *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
        let Some([x0, y0, x1, y1]) = bounds else {
            continue;
        };
        boxes.push(NamedBox {
            name: object.name,
            xyxy: [x0 as f64, y0 as f64, (x1 + 1) as f64, (y1 + 1) as f64],
            score: 1.0,
        });
        masks.push(ObjectMask {
            pixels: ids.iter().map(|&id| id == object.id).collect(),
            predicted_iou: None,
        });
    }
    anyhow::ensure!(
        !boxes.is_empty(),
        "{}: no object is visible",
        objects_file.display()
    );
    Ok((boxes, masks))
}

fn parse_size(text: &str) -> anyhow::Result<(u32, u32)> {
    let parsed = text
        .split_once('x')
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    match parsed {
        Some((w, h)) if w >= 32 && h >= 32 => Ok((w, h)),
        _ => bail!("--size {text:?} must look like WIDTHxHEIGHT, each at least 32"),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (width, height) = parse_size(&args.size)?;
    let depth_arch = by_name(
        "--depth",
        &args.depth,
        &FullSizeDepth::ALL,
        FullSizeDepth::name,
    )?;
    let detector_arch = by_name(
        "--detector",
        &args.detector,
        &FullSizeDetector::ALL,
        FullSizeDetector::name,
    )?;
    let segmenter_arch = match args.segmenter.as_str() {
        "none" => None,
        name => Some(by_name(
            "--segmenter",
            name,
            &FullSizeSegmenter::ALL,
            FullSizeSegmenter::name,
        )?),
    };

    let work = tempfile::Builder::new()
        .prefix("svlm-bench-photos-")
        .tempdir()
        .context("creating a temporary folder for the photos")?;
    let photo_dir = work.path().join("photos");
    let scene = svlm_world::SceneConfig {
        width,
        height,
        hfov_deg: [60.0, 60.0],
        ..svlm_world::SceneConfig::default()
    };
    scene.validate().context("scene options")?;
    svlm_world::write_scene_folder(&photo_dir, args.seed, 0..args.photos as u64, &scene, || {})
        .with_context(|| format!("rendering scenes into {}", photo_dir.display()))?;
    let k = svlm_world::read_folder_intrinsics(&photo_dir)?
        .with_context(|| format!("{}: no intrinsics.json", photo_dir.display()))?;
    let photos = list_photos(&photo_dir)?;
    anyhow::ensure!(
        photos.len() == args.photos,
        "{}: {} photos rendered, {} expected",
        photo_dir.display(),
        photos.len(),
        args.photos
    );

    // The scenes' truth, read before any clock starts.
    let given_depth = GivenDepth {
        dir: photo_dir.clone(),
    };
    let mut depth_truth = HashMap::new();
    let mut box_truth = HashMap::new();
    let mut mask_truth = HashMap::new();
    for path in &photos {
        let photo = load_photo(path)?;
        depth_truth.insert(path.clone(), given_depth.depth(path, &photo.image)?);
        let (boxes, masks) = true_objects(path, photo.image.dimensions())?;
        box_truth.insert(path.clone(), boxes);
        mask_truth.insert(path.clone(), masks);
    }
    let true_boxes: usize = box_truth.values().map(Vec::len).sum();

    let device = svlm_model::resolve_device("cpu")?;
    let started = Instant::now();
    let models = build_models(&args, depth_arch, detector_arch, segmenter_arch, &device)?;
    let build_seconds = started.elapsed().as_secs_f64();

    let (depth_clock, detector_clock, segmenter_clock) =
        (Clock::default(), Clock::default(), Clock::default());
    let model_boxes = Arc::new(AtomicU64::new(0));
    let source = PhotoSource::new(
        photos,
        Box::new(TimedDepth {
            model: ModelDepth::new(models.depth),
            truth: Truth(depth_truth),
            clock: depth_clock.clone(),
        }),
        Box::new(TimedDetector {
            model: OwlBoxes::new(
                models.detector,
                QUERIES.iter().map(|q| q.to_string()).collect(),
                0.1,
                0.3,
            ),
            truth: Truth(box_truth),
            clock: detector_clock.clone(),
            model_boxes: model_boxes.clone(),
        }),
        PhotoSettings {
            intrinsics: IntrinsicsOptions {
                folder: Some(CameraSpec::Pixels {
                    fx: k.fx,
                    fy: Some(k.fy),
                    cx: Some(k.cx),
                    cy: Some(k.cy),
                    width: Some(k.width),
                    height: Some(k.height),
                }),
                use_exif: false,
                ..IntrinsicsOptions::default()
            },
            ..PhotoSettings::default()
        },
    );
    let source = match models.segmenter {
        Some(model) => source.with_segmenter(Box::new(TimedSegmenter {
            model: SamMasks::new(model),
            truth: Truth(mask_truth),
            clock: segmenter_clock.clone(),
        })),
        None => source,
    };
    let opts = SynthOptions {
        out: work.path().join("out"),
        format: OutputFormat::Jsonl,
        shard: ShardSpec::default(),
        seed: args.seed,
        qa: QaConfig {
            qa_per_image: args.qa_per_image,
            ..QaConfig::default()
        },
        chunk_size: args.batch_size,
        progress: !args.quiet,
    };
    let started = Instant::now();
    let outcome = run_shard(&source, &opts)?;
    let total = started.elapsed().as_secs_f64();
    let manifest = outcome.manifest();

    let n = args.photos;
    let (depth_s, detector_s, segmenter_s) = (
        depth_clock.seconds(),
        detector_clock.seconds(),
        segmenter_clock.seconds(),
    );
    let mut stages = vec![
        Stage::new(format!("depth ({})", depth_arch.name()), depth_s, n),
        Stage::new(
            format!(
                "detection ({}, {} queries)",
                detector_arch.name(),
                QUERIES.len()
            ),
            detector_s,
            n,
        ),
    ];
    if let Some(s) = segmenter_arch {
        stages.push(Stage::new(
            format!("segmentation ({})", s.name()),
            segmenter_s,
            n,
        ));
    }
    stages.push(Stage::new(
        "lifting + geometry + QA + writing",
        (total - depth_s - detector_s - segmenter_s).max(0.0),
        n,
    ));
    let report = Report {
        photos: n,
        batch_size: args.batch_size,
        width,
        height,
        weights: if args.tiny {
            "tiny fixtures"
        } else {
            "full-size random weights"
        }
        .into(),
        depth: depth_arch.checkpoint().into(),
        detector: detector_arch.checkpoint().into(),
        segmenter: segmenter_arch.map(|s| s.checkpoint().into()),
        queries: QUERIES.len(),
        cpu_threads: std::thread::available_parallelism().map_or(1, usize::from),
        build_seconds,
        stages,
        end_to_end: Stage::new("end to end", total, n),
        model_boxes_per_photo: model_boxes.load(Ordering::Relaxed) as f64 / n as f64,
        true_boxes_per_photo: true_boxes as f64 / n as f64,
        images_with_qa: manifest.images,
        qa: manifest.qa,
        bad_items: manifest.bad_items.len(),
    };
    print_report(&report);
    if !manifest.bad_items.is_empty() {
        for b in manifest.bad_items.iter().take(5) {
            println!("bad item {} ({}): {}", b.item, b.reason, b.detail);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "photo path, {} photos of {}x{} in batches of {}, {} ({} CPU threads; models built in {:.1} s)",
        r.photos, r.width, r.height, r.batch_size, r.weights, r.cpu_threads, r.build_seconds
    );
    println!(
        "models: depth {}, detector {}, segmenter {}",
        r.depth,
        r.detector,
        r.segmenter
            .as_deref()
            .unwrap_or("none (box pixels within the depth band)")
    );
    println!(
        "the models' outputs are replaced by the rendered scene's true depth, boxes ({:.1} per photo; the model gave \
         {:.1}) and masks after each model has run, so the last stage sees real scenes",
        r.true_boxes_per_photo, r.model_boxes_per_photo
    );
    println!("| {:<46} | {:>9} | {:>9} |", "stage", "s/photo", "photos/s");
    println!("|{:-<48}|{:-<11}|{:-<11}|", "", "", "");
    for s in r.stages.iter().chain(std::iter::once(&r.end_to_end)) {
        println!(
            "| {:<46} | {:>9.3} | {:>9.3} |",
            s.stage, s.seconds_per_photo, s.photos_per_s
        );
    }
    println!(
        "{} photos with questions, {} QA, {} bad items",
        r.images_with_qa, r.qa, r.bad_items
    );
}
