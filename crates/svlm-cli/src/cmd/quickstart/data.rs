//! Quickstart data: procedural scenes rendered once, each giving a spatial record (synthesis templates, exact
//! truth) and a general VQA record (colours, shapes, counts, presence) about the same image. Train and held-out
//! scenes come from different seed streams, so no held-out image is ever trained on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use svlm_synth::general::{GeneralQaConfig, WORLD_NOUNS, general_qa, general_record};
use svlm_synth::graph::VisibilityParams;
use svlm_synth::pipeline::synthesize_item;
use svlm_synth::qa::QaConfig;
use svlm_synth::{Item, SpatialRecord, from_world};
use svlm_world::{
    SceneConfig, SequenceConfig, approach_sequence, generate_scene, render, scene_seed,
};

/// What the data stage draws (the `[data]` table of `configs/quickstart/*.toml`, with `--seed`); saved in
/// `data/plan.json` so an unchanged rerun skips the stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataPlan {
    #[serde(default)]
    pub seed: u64,
    pub train_scenes: usize,
    pub test_scenes: usize,
    pub image_size: u32,
    pub objects: [usize; 2],
    pub spatial_per_image: usize,
    pub general_per_image: usize,
    pub spatial_types: Vec<String>,
    /// Bare answers ("Yes.", "The red cube.", "1.2 meters."): the supervised tokens are the decision itself.
    pub short_answers: bool,
    /// Yes/no and "which" answers order the two objects along the relation before deciding
    /// (`svlm_synth::phrase::reasoned_predicate`).
    #[serde(default)]
    pub reasoned_answers: bool,
    /// One wording per question type (`svlm_synth::phrase::Phrasing::Plain`).
    #[serde(default)]
    pub phrasing: svlm_synth::phrase::Phrasing,
    /// Share of each scene's spatial questions that are qualitative (predicates and choices).
    #[serde(default = "half")]
    pub qualitative_share: f64,
    /// Question/answer pairs per training record: a scene's questions are split into records of this many, so a
    /// batch holds more different images for the same number of tokens.
    pub questions_per_record: usize,
    pub min_visible_pixels: usize,
    /// Training approach sequences: a gripper moving in a straight line towards an object on the floor,
    /// `approach_frames` frames each, every frame asking "What is the gap between the gripper and the X?"
    /// (closest-surface distance, exact). The reward demo asks the trained models the same about held-out
    /// sequences.
    #[serde(default)]
    pub approach_sequences: usize,
    #[serde(default)]
    pub approach_frames: usize,
    /// Held-out approach sequences whose frames join the held-out spatial questions (the "gap" type).
    #[serde(default)]
    pub test_approach_sequences: usize,
    /// Gap between gripper and target in the first frame of a sequence, and in the last, metres.
    pub approach_start_gap: [f64; 2],
    pub approach_end_gap: [f64; 2],
    /// Held-out sequences of the reward demo, and frames each.
    #[serde(default)]
    pub reward_sequences: usize,
    #[serde(default)]
    pub reward_frames: usize,
    /// Camera height above the floor and downward pitch, drawn per scene (metres, degrees).
    pub camera_height: [f64; 2],
    pub pitch_deg: [f64; 2],
    /// Objects stand between these horizontal distances from the camera (metres).
    pub min_distance: f64,
    pub max_distance: f64,
    /// Smallest projected size of an object (its bounding box's larger side), as a fraction of the image width.
    pub min_projected_size: f64,
    /// The colours of the objects (empty = the world's whole palette of 12).
    #[serde(default)]
    pub colors: Vec<svlm_world::Color>,
    /// No two objects of a scene share a colour, so the reasoned answers list them by colour
    /// (`svlm_synth::phrase::reasoned_keys`).
    #[serde(default)]
    pub distinct_colors: bool,
}

fn half() -> f64 {
    0.5
}

impl DataPlan {
    pub fn scene_config(&self) -> SceneConfig {
        SceneConfig {
            width: self.image_size,
            height: self.image_size,
            objects: self.objects,
            unique_names: true,
            unique_colors: self.distinct_colors,
            // Small objects on the floor only: every object is nameable by colour and noun, none hides behind
            // furniture. A low camera with a narrow range of heights and pitches ties an object's distance to
            // where it stands in the image, so distances and sizes can be read from a single view; objects
            // from a few centimetres to most of a metre stand from half a metre to several metres away.
            table_probability: 0.0,
            furniture_probability: 0.0,
            wall_probability: 0.5,
            hfov_deg: [55.0, 65.0],
            camera_height: self.camera_height,
            pitch_deg: self.pitch_deg,
            max_roll_deg: 0.0,
            min_distance: self.min_distance,
            max_distance: self.max_distance,
            min_projected_size: self.min_projected_size,
            colors: self.colors.clone(),
        }
    }

    pub fn qa_config(&self) -> QaConfig {
        QaConfig {
            qa_per_image: self.spatial_per_image,
            kinds: Some(self.spatial_types.clone()),
            number_style: svlm_answers::NumberStyle::plain_metric(),
            short_answers: self.short_answers,
            reasoned_answers: self.reasoned_answers,
            phrasing: self.phrasing,
            qualitative_share: self.qualitative_share,
            ..QaConfig::default()
        }
    }

    /// Seed of the held-out scene stream (disjoint from the training stream by construction of `scene_seed`).
    fn test_seed(&self) -> u64 {
        self.seed ^ 0x7E57_5CE7_E5EE_D000
    }

    /// Approach sequences in the quickstart's world: one or two objects on the floor plus the gripper.
    pub fn sequence_config(&self) -> SequenceConfig {
        SequenceConfig {
            scene: SceneConfig {
                objects: [1, 2],
                ..self.scene_config()
            },
            start_gap: self.approach_start_gap,
            end_gap: self.approach_end_gap,
            // Gripper and target as visible as any object a question is asked about.
            min_visible_pixels: self.min_visible_pixels,
            ..SequenceConfig::default()
        }
    }

    /// Seed of held-out approach sequence `index` of the reward demo.
    pub fn reward_seed(&self, index: usize) -> u64 {
        scene_seed(
            self.test_seed() ^ APPROACH_STREAM ^ REWARD_STREAM,
            index as u64,
        )
    }
}

/// Mixed into the seeds of approach sequences so they never share a stream with the scenes.
const APPROACH_STREAM: u64 = 0xA99_7C4E;
/// Mixed into the seeds of the reward demo's sequences, so they differ from the held-out approach frames.
const REWARD_STREAM: u64 = 0x004E_3A4D;

/// The records of approach sequence `index` of a seed stream (`split` "train" or "test"), one per frame
/// ([`svlm_synth::approach::approach_records`]: the gap question, the exact gap), images written to `images`.
fn approach_records(
    plan: &DataPlan,
    split: &str,
    stream_seed: u64,
    index: usize,
    images: &Path,
) -> anyhow::Result<Vec<SpatialRecord>> {
    let seed = scene_seed(stream_seed ^ APPROACH_STREAM, index as u64);
    let frames = approach_sequence(seed, plan.approach_frames, &plan.sequence_config())
        .with_context(|| format!("{split} approach sequence {index} (seed {seed})"))?;
    let framed = svlm_synth::approach::approach_records(
        &frames,
        &format!("{split}-approach-{index:05}"),
        &svlm_answers::NumberStyle::plain_metric(),
        seed,
        serde_json::json!({"source": "approach_sequence", "split": split, "sequence": index}),
    )
    .map_err(|e| anyhow::anyhow!("{split} approach sequence {index} (seed {seed}): {e}"))?;
    framed
        .into_iter()
        .map(|f| {
            let path = images.join(Path::new(&f.record.image).file_name().unwrap_or_default());
            svlm_report::write_atomic(&path, &f.png)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(f.record)
        })
        .collect()
}

/// Files the data stage writes under `OUT/data`.
#[derive(Debug, Clone)]
pub struct DataFiles {
    pub dir: PathBuf,
    pub spatial_train: PathBuf,
    pub general_train: PathBuf,
    pub spatial_test: PathBuf,
    pub general_test: PathBuf,
}

impl DataFiles {
    pub fn new(out: &Path) -> Self {
        let dir = out.join("data");
        Self {
            spatial_train: dir.join("spatial_train.jsonl"),
            general_train: dir.join("general_train.jsonl"),
            spatial_test: dir.join("spatial_test.jsonl"),
            general_test: dir.join("general_test.jsonl"),
            dir,
        }
    }
}

/// Counts of what the data stage wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    pub train_images: usize,
    pub test_images: usize,
    pub spatial_train_records: usize,
    pub spatial_train_qa: usize,
    pub general_train_records: usize,
    pub general_train_qa: usize,
    pub spatial_test_qa: usize,
    pub general_test_qa: usize,
    /// Frames of the training approach sequences (one gap question each, counted in the spatial QA).
    #[serde(default)]
    pub approach_frames: usize,
    /// Frames of the held-out approach sequences (counted in the held-out spatial QA).
    #[serde(default)]
    pub test_approach_frames: usize,
    /// Scenes without any spatial question (every pair ambiguous or too small), counted, not written.
    pub scenes_without_spatial_qa: usize,
    pub seconds: f64,
}

#[derive(Serialize, Deserialize)]
struct Done {
    plan: DataPlan,
    summary: DataSummary,
}

struct SceneRecords {
    spatial: Option<SpatialRecord>,
    general: Option<SpatialRecord>,
}

fn scene_records(
    plan: &DataPlan,
    split: &str,
    base_seed: u64,
    index: usize,
    images: &Path,
) -> anyhow::Result<SceneRecords> {
    let scene = generate_scene(scene_seed(base_seed, index as u64), &plan.scene_config());
    let rendered = render(&scene);
    let visibility = VisibilityParams {
        min_visible_pixels: plan.min_visible_pixels,
        ..VisibilityParams::default()
    };
    let graph = from_world(&scene, &rendered, &visibility);
    let id = format!("{split}-{index:06}");
    let item = Item {
        id: id.clone(),
        rgb: rendered.rgb.clone(),
        graph,
        provenance: serde_json::json!({"source": "world", "split": split, "index": index}),
    };
    let synthesized = synthesize_item(item, index, base_seed, &plan.qa_config());
    let image_path = images.join(format!("{id}.png"));
    svlm_report::write_atomic(&image_path, &synthesized.png)
        .with_context(|| format!("writing {}", image_path.display()))?;
    let nouns: BTreeSet<String> = WORLD_NOUNS.iter().map(|s| s.to_string()).collect();
    let general_config = GeneralQaConfig {
        per_image: plan.general_per_image,
        min_visible_pixels: plan.min_visible_pixels,
    };
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(scene_seed(base_seed ^ 0x6E4E, index as u64));
    let general = general_qa(&scene, &rendered, &nouns, &general_config, &mut rng);
    let image = synthesized.record.image.clone();
    Ok(SceneRecords {
        spatial: (!synthesized.record.spatial.is_empty()).then_some(synthesized.record),
        general: (!general.is_empty())
            .then(|| general_record(format!("{id}-general"), image, &general)),
    })
}

fn write_jsonl(path: &Path, records: &[&SpatialRecord]) -> anyhow::Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    svlm_report::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Renders the scenes and writes images and the four JSONL files; skipped when `data/plan.json` says the same
/// plan already finished.
pub fn build(plan: &DataPlan, files: &DataFiles, progress: bool) -> anyhow::Result<DataSummary> {
    let done_path = files.dir.join("plan.json");
    if let Ok(text) = std::fs::read_to_string(&done_path)
        && let Ok(done) = serde_json::from_str::<Done>(&text)
        && done.plan == *plan
        && [
            &files.spatial_train,
            &files.general_train,
            &files.spatial_test,
            &files.general_test,
        ]
        .iter()
        .all(|p| p.is_file())
    {
        tracing::info!(
            "data: {} already holds this plan, kept",
            files.dir.display()
        );
        return Ok(done.summary);
    }
    let started = std::time::Instant::now();
    let images = files.dir.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    let bar = super::progress_bar(
        (plan.train_scenes + plan.test_scenes) as u64,
        "rendering scenes",
        progress,
    );
    let make = |split: &str, seed: u64, n: usize| -> anyhow::Result<Vec<SceneRecords>> {
        (0..n)
            .into_par_iter()
            .map(|i| {
                let r = scene_records(plan, split, seed, i, &images);
                bar.inc(1);
                r
            })
            .collect()
    };
    let train = make("train", plan.seed, plan.train_scenes)?;
    let test = make("test", plan.test_seed(), plan.test_scenes)?;
    let approach = |split: &str, seed: u64, n: usize| -> anyhow::Result<Vec<SpatialRecord>> {
        Ok((0..n)
            .into_par_iter()
            .map(|i| approach_records(plan, split, seed, i, &images))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    };
    let train_approach = approach("train", plan.seed, plan.approach_sequences)?;
    let test_approach = approach("test", plan.test_seed(), plan.test_approach_sequences)?;
    bar.finish_and_clear();

    let qa = |records: &[&SpatialRecord]| records.iter().map(|r| r.spatial.len()).sum::<usize>();
    let split = |records: Vec<&SpatialRecord>| -> Vec<SpatialRecord> {
        records
            .into_iter()
            .flat_map(|r| r.split(plan.questions_per_record))
            .collect()
    };
    let mut spatial_train_split = split(spatial(&train));
    spatial_train_split.extend(train_approach.iter().cloned());
    let general_train_split = split(general(&train));
    let spatial_train: Vec<&SpatialRecord> = spatial_train_split.iter().collect();
    let general_train: Vec<&SpatialRecord> = general_train_split.iter().collect();
    let (mut spatial_test, general_test) = (spatial(&test), general(&test));
    spatial_test.extend(test_approach.iter());
    write_jsonl(&files.spatial_train, &spatial_train)?;
    write_jsonl(&files.general_train, &general_train)?;
    write_jsonl(&files.spatial_test, &spatial_test)?;
    write_jsonl(&files.general_test, &general_test)?;
    let summary = DataSummary {
        train_images: train
            .iter()
            .filter(|r| r.spatial.is_some() || r.general.is_some())
            .count(),
        test_images: test.len(),
        spatial_train_records: spatial_train.len(),
        spatial_train_qa: qa(&spatial_train),
        general_train_records: general_train.len(),
        general_train_qa: qa(&general_train),
        spatial_test_qa: qa(&spatial_test),
        general_test_qa: qa(&general_test),
        approach_frames: train_approach.len(),
        test_approach_frames: test_approach.len(),
        scenes_without_spatial_qa: train
            .iter()
            .chain(&test)
            .filter(|r| r.spatial.is_none())
            .count(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let done = Done {
        plan: plan.clone(),
        summary: summary.clone(),
    };
    svlm_report::write_atomic(&done_path, serde_json::to_string_pretty(&done)?.as_bytes())?;
    Ok(summary)
}

/// The first `n` held-out scenes (exactly as rendered into `data/images/test-<index>.png`), by index.
pub fn test_scenes(plan: &DataPlan, n: usize) -> Vec<(usize, svlm_world::Scene)> {
    let config = plan.scene_config();
    (0..n.min(plan.test_scenes))
        .map(|i| {
            (
                i,
                generate_scene(scene_seed(plan.test_seed(), i as u64), &config),
            )
        })
        .collect()
}

fn spatial(set: &[SceneRecords]) -> Vec<&SpatialRecord> {
    set.iter().filter_map(|r| r.spatial.as_ref()).collect()
}

fn general(set: &[SceneRecords]) -> Vec<&SpatialRecord> {
    set.iter().filter_map(|r| r.general.as_ref()).collect()
}

/// Every question and answer of the training files: the corpus the tokenizer learns from.
pub fn training_texts(files: &DataFiles) -> anyhow::Result<Vec<String>> {
    let mut texts = Vec::new();
    for path in [&files.spatial_train, &files.general_train] {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (line, row) in text.lines().enumerate() {
            let record: SpatialRecord = serde_json::from_str(row)
                .with_context(|| format!("{}:{}", path.display(), line + 1))?;
            for turn in record.conversations {
                texts.push(turn.value.replace("<image>", "").trim().to_string());
            }
        }
    }
    Ok(texts)
}
