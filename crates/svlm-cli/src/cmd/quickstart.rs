//! `svlm quickstart`: the paper's claim in miniature on a laptop CPU. Procedural scenes -> spatial QA + general
//! VQA about the same images -> a tokenizer trained on that text and a tiny Idefics3 -> one training run per
//! spatial ratio (same steps, same seed) -> evaluation on held-out scenes -> `report.md` with charts.
//!
//! Everything lands under `--out`:
//!
//! ```text
//! OUT/
//!   data/        images/, spatial_{train,test}.jsonl, general_{train,test}.jsonl, plan.json
//!   model/       tokenizer + processor files, config.json (the from-scratch model), plan.json
//!   configs/     base.toml + tiny_cpu.toml (the repository's configs, as embedded in this binary)
//!   runs/ratio_<r>/   a full training run each (metrics.jsonl, tb/, loss.png, checkpoint-N/)
//!   eval/ratio_<r>/   spatial/ and general/ reports (report.md, predictions.jsonl, charts)
//!   reward/      seq_<i>/ per held-out approach sequence: frames/ (RGB-D), geometry/ and ratio_<r>/ (reward.json,
//!                reward.png); geometry.png and ratio_<r>.png (every sequence per source)
//!   reason/      transcripts of the reasoning demo (multi-step questions about held-out scenes)
//!   report.md, report.json, metrics_vs_ratio.png, loss_curves.png, scatter_<type>.png (predicted against
//!   true lengths per quantitative type)
//! ```
//!
//! A rerun reuses finished stages (data and model when their plan is unchanged, finished training runs) and
//! resumes an interrupted training run from its newest checkpoint.

mod data;
mod model;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use svlm_eval::answerer::{AnswerSettings, ModelAnswerer};
use svlm_eval::{EvalOptions, EvalReport, LoadOptions, evaluate, load_benchmark};
use svlm_train::config::RunConfig;

use data::{DataFiles, DataPlan};
use model::TinyModel;

const BASE_TOML: &str = include_str!("../../../../configs/base.toml");
const TINY_TOML: &str = include_str!("../../../../configs/tiny_cpu.toml");

/// The recipes of the presets: what data is drawn, the model's sizes, the training and evaluation budget.
const DEFAULT_RECIPE: &str = include_str!("../../../../configs/quickstart/default.toml");
const CI_RECIPE: &str = include_str!("../../../../configs/quickstart/ci.toml");

/// A quickstart recipe (`configs/quickstart/*.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipe {
    data: DataPlan,
    model: TinyModel,
    train: TrainRecipe,
    eval: EvalRecipe,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainRecipe {
    steps: u64,
    batch_size: usize,
    lr: f64,
    warmup_steps: u64,
    /// Rows per source held out for the validation loss.
    holdout: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalRecipe {
    batch_size: usize,
    max_new_tokens: usize,
}

impl Preset {
    fn recipe(self) -> anyhow::Result<Recipe> {
        let (name, text) = match self {
            Preset::Default => ("default", DEFAULT_RECIPE),
            Preset::Ci => ("ci", CI_RECIPE),
        };
        toml::from_str(text).with_context(|| format!("configs/quickstart/{name}.toml"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The README run: about 12.5 minutes on 2 cores.
    Default,
    /// Seconds: every stage on a handful of scenes (the integration test). Its numbers mean nothing.
    Ci,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (data, model, runs, eval, report).
    #[arg(long, default_value = "out/quickstart")]
    pub out: PathBuf,
    /// Spatial share of the training mixture, one run each (comma-separated; the general share is 1 - r). At 0.75
    /// the budget's model lists the objects in order far more often than at 0.5, and general VQA is kept
    /// (experiments/quickstart.md).
    #[arg(long, value_delimiter = ',', default_value = "0,0.75")]
    pub ratios: Vec<f64>,
    #[arg(long, value_enum, default_value = "default")]
    pub preset: Preset,
    /// Override the preset's optimizer steps per run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override the preset's number of training scenes.
    #[arg(long)]
    pub train_scenes: Option<usize>,
    /// Override the preset's number of held-out scenes.
    #[arg(long)]
    pub test_scenes: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device for training and evaluation: cpu, cuda[:i], vulkan[:i] (GPU backends need the CLI's `cuda` /
    /// `vulkan` feature). On a GPU, raise --steps: the default budget is sized for 2 CPU cores.
    #[arg(long, value_parser = super::device, default_value = "cpu")]
    pub device: String,
    /// Training runs at a time (default 1). On the CPU the cores are divided among the concurrent runs, and each run
    /// trains data-parallel over its share.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Everything the quickstart does, resolved from the preset and the flags (saved in report.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub preset: Preset,
    pub data: DataPlan,
    pub model: TinyModel,
    pub ratios: Vec<f64>,
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: u64,
    /// Rows per source held out for the validation loss.
    #[serde(default)]
    pub holdout: usize,
    pub eval_batch_size: usize,
    pub max_new_tokens: usize,
    pub device: String,
}

impl Plan {
    fn from_args(args: &Args) -> anyhow::Result<Plan> {
        let recipe = args.preset.recipe()?;
        let mut plan = Plan {
            preset: args.preset,
            data: DataPlan {
                seed: args.seed,
                ..recipe.data
            },
            model: recipe.model,
            ratios: args.ratios.clone(),
            steps: recipe.train.steps,
            batch_size: recipe.train.batch_size,
            lr: recipe.train.lr,
            warmup_steps: recipe.train.warmup_steps,
            holdout: recipe.train.holdout,
            eval_batch_size: recipe.eval.batch_size,
            max_new_tokens: recipe.eval.max_new_tokens,
            device: args.device.clone(),
        };
        if let Some(s) = args.steps {
            plan.steps = s;
        }
        if let Some(n) = args.train_scenes {
            plan.data.train_scenes = n;
        }
        if let Some(n) = args.test_scenes {
            plan.data.test_scenes = n;
        }
        if plan.ratios.is_empty() {
            bail!("--ratios: give at least one spatial ratio");
        }
        for &r in &plan.ratios {
            if !(0.0..=1.0).contains(&r) {
                bail!("--ratios: {r} is not within [0, 1]");
            }
        }
        if plan.data.train_scenes == 0 || plan.data.test_scenes == 0 || plan.steps == 0 {
            bail!("--train-scenes, --test-scenes and --steps must be at least 1");
        }
        Ok(plan)
    }
}

/// `ratio_0.50`: the folder name of a run.
pub fn ratio_label(r: f64) -> String {
    format!("ratio_{r:.2}")
}

pub(crate) fn progress_bar(len: u64, message: &str, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>18} [{bar:40}] {pos}/{len} ({elapsed} < {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// How many data-parallel CPU workers a training run gets when `threads` cores are its own: the most that divide
/// the batch evenly (each worker trains on `batch_size / workers` samples of every step on one core, which for a
/// model this small is faster than every core inside each op). 1 on a GPU.
fn cpu_workers(plan: &Plan, threads: usize) -> usize {
    if plan.device != "cpu" {
        return 1;
    }
    (1..=threads.max(1))
        .rev()
        .find(|w| plan.batch_size.is_multiple_of(*w))
        .unwrap_or(1)
}

/// The run config of one ratio: the repository's `configs/tiny_cpu.toml` (embedded), with this quickstart's
/// paths, sizes and the spatial weight; on the CPU the step's batch is split over `workers` data-parallel workers
/// (`train.device = "cpu,cpu,..."`, the same samples per step).
fn run_config(
    out: &Path,
    plan: &Plan,
    ratio: f64,
    files: &DataFiles,
    workers: usize,
) -> anyhow::Result<RunConfig> {
    let workers = workers.max(1);
    let device = if workers > 1 {
        vec![plan.device.as_str(); workers].join(",")
    } else {
        plan.device.clone()
    };
    let configs = out.join("configs");
    std::fs::create_dir_all(&configs)?;
    svlm_report::write_atomic(&configs.join("base.toml"), BASE_TOML.as_bytes())?;
    svlm_report::write_atomic(&configs.join("tiny_cpu.toml"), TINY_TOML.as_bytes())?;
    let path = |p: &Path| p.display().to_string();
    let overrides = vec![
        format!("name=\"{}\"", ratio_label(ratio)),
        format!("seed={}", plan.data.seed),
        format!(
            "model.config={}",
            path(&out.join("model").join("config.json"))
        ),
        format!("data.sources.general.path={}", path(&files.general_train)),
        format!("data.sources.spatial.path={}", path(&files.spatial_train)),
        format!("data.sources.general.weight={}", 1.0 - ratio),
        format!("data.sources.spatial.weight={ratio}"),
        format!("train.steps={}", plan.steps),
        format!("train.device=\"{device}\""),
        format!("train.batch_size={}", plan.batch_size / workers),
        format!("optim.lr={}", plan.lr),
        format!("optim.warmup_steps={}", plan.warmup_steps),
        format!("checkpoint.every={}", plan.steps.div_ceil(2)),
        format!("eval.every={}", plan.steps.div_ceil(4)),
        // The runs are child processes; the quickstart draws their progress from metrics.jsonl.
        "log.progress=false".to_string(),
        format!("data.sources.general.holdout={}", plan.holdout),
        format!("data.sources.spatial.holdout={}", plan.holdout),
    ];
    RunConfig::load(&configs.join("tiny_cpu.toml"), &overrides)
        .with_context(|| format!("the run config of ratio {ratio}"))
}

/// Results of one ratio, as the report shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RatioResult {
    pub ratio: f64,
    pub run_dir: PathBuf,
    pub steps: u64,
    pub final_loss: Option<f64>,
    pub samples_per_s: f64,
    pub train_seconds: f64,
    pub spatial: EvalReport,
    pub general: EvalReport,
    pub eval_seconds: f64,
}

/// A training run of one ratio as a child process (`svlm train`), its output in `RUN_DIR/train.log`.
struct RunningTrain {
    ratio: f64,
    run_dir: PathBuf,
    child: std::process::Child,
    started: Instant,
}

/// Starts `svlm train` for one ratio, or returns `None` when the run finished earlier. The resolved config is
/// written to `OUT/configs/<label>.toml` (rerun it by hand with `svlm train --config`). `threads` is the size of
/// the run's CPU thread pool: the machine's cores divided among the concurrent runs, since pools that together
/// ask for more threads than there are cores spend their time waiting on each other; on the CPU the run splits
/// them among its data-parallel workers.
fn start_training(
    out: &Path,
    plan: &Plan,
    ratio: f64,
    files: &DataFiles,
    threads: usize,
) -> anyhow::Result<Option<RunningTrain>> {
    let config = run_config(out, plan, ratio, files, cpu_workers(plan, threads))?;
    let label = ratio_label(ratio);
    let run_dir = out.join("runs").join(&label);
    let latest = svlm_train::checkpoint::latest_checkpoint(&run_dir);
    if run_dir.join("report.json").is_file()
        && latest.as_ref().is_some_and(|(step, _)| *step == plan.steps)
    {
        tracing::info!("{}: finished earlier, kept", run_dir.display());
        return Ok(None);
    }
    let config_path = out.join("configs").join(format!("{label}.toml"));
    svlm_report::write_atomic(&config_path, config.to_toml()?.as_bytes())?;
    if latest.is_none() {
        // Killed before its first checkpoint: nothing to resume, so the run starts over in an emptied folder.
        svlm_train::checkpoint::claim_run_dir(
            &run_dir,
            svlm_train::checkpoint::RunDirUse::Overwrite,
        )
        .map_err(anyhow::Error::msg)?;
    }
    std::fs::create_dir_all(&run_dir)?;
    let log_path = run_dir.join("train.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let exe = std::env::current_exe().context("locating the svlm binary")?;
    let mut command = std::process::Command::new(exe);
    command.arg("train");
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        command.env("RAYON_NUM_THREADS", threads.max(1).to_string());
    }
    if latest.is_some() {
        tracing::info!("{}: resuming from its newest checkpoint", run_dir.display());
        command.arg("--resume").arg(&run_dir);
    } else {
        command
            .arg("--config")
            .arg(&config_path)
            .arg("--out")
            .arg(&run_dir);
    }
    let child = command
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting the training run {label}"))?;
    Ok(Some(RunningTrain {
        ratio,
        run_dir,
        child,
        started: Instant::now(),
    }))
}

/// Steps logged so far in a run's metrics.jsonl.
fn steps_logged(run_dir: &Path) -> u64 {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() as u64)
        .unwrap_or(0)
}

/// Trains every ratio, `jobs` runs at a time, each on its share of the cores. Returns the training seconds of each
/// ratio.
fn train_all(
    out: &Path,
    plan: &Plan,
    files: &DataFiles,
    jobs: usize,
    progress: bool,
) -> anyhow::Result<Vec<f64>> {
    let bars = indicatif::MultiProgress::new();
    if !progress {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut seconds = vec![0.0; plan.ratios.len()];
    let mut pending: Vec<usize> = (0..plan.ratios.len()).rev().collect();
    let mut running: Vec<(usize, RunningTrain, indicatif::ProgressBar)> = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs.max(1).min(plan.ratios.len().max(1))).max(1);
    loop {
        while running.len() < jobs.max(1)
            && let Some(i) = pending.pop()
        {
            let ratio = plan.ratios[i];
            if let Some(run) = start_training(out, plan, ratio, files, threads)? {
                let bar = bars.add(progress_bar(
                    plan.steps,
                    &format!("ratio {ratio}"),
                    progress,
                ));
                running.push((i, run, bar));
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        let mut k = 0;
        while k < running.len() {
            let (i, run, bar) = &mut running[k];
            bar.set_position(steps_logged(&run.run_dir).min(plan.steps));
            match run.child.try_wait()? {
                None => k += 1,
                Some(status) => {
                    bar.finish_and_clear();
                    if !status.success() {
                        let log = run.run_dir.join("train.log");
                        let ratio = run.ratio;
                        let text = std::fs::read_to_string(&log).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(15).collect();
                        for (_, other, _) in running.iter_mut() {
                            // Best effort: the error below is what matters.
                            let _ = other.child.kill();
                        }
                        bail!(
                            "training run of ratio {ratio} failed ({status}); the end of {}:\n{}",
                            log.display(),
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        );
                    }
                    seconds[*i] = run.started.elapsed().as_secs_f64();
                    println!(
                        "      ratio {} trained in {:.0} s ({})",
                        run.ratio,
                        seconds[*i],
                        run.run_dir.display()
                    );
                    running.swap_remove(k);
                }
            }
        }
    }
    Ok(seconds)
}

fn evaluate_run(
    out: &Path,
    plan: &Plan,
    ratio: f64,
    run_dir: &Path,
    files: &DataFiles,
) -> anyhow::Result<(EvalReport, EvalReport)> {
    let (_, checkpoint) = svlm_train::checkpoint::latest_checkpoint(run_dir)
        .with_context(|| format!("no checkpoint in {}", run_dir.display()))?;
    let mut answerer =
        ModelAnswerer::open(&checkpoint, &out.join("model"), &answer_settings(plan))?;
    let options = EvalOptions {
        batch_size: plan.eval_batch_size,
        model_name: ratio_label(ratio),
        ..EvalOptions::default()
    };
    let dir = out.join("eval").join(ratio_label(ratio));
    let mut reports = Vec::new();
    for (name, path) in [
        ("spatial", &files.spatial_test),
        ("general", &files.general_test),
    ] {
        let set = load_benchmark(path, &LoadOptions::default())
            .with_context(|| format!("loading {}", path.display()))?;
        let report = evaluate(&set, &mut answerer, &options)
            .with_context(|| format!("evaluating {} on {name}", run_dir.display()))?;
        report
            .write(&dir.join(name))
            .with_context(|| format!("writing {}", dir.join(name).display()))?;
        reports.push(report);
    }
    let general = reports.pop().context("general report")?;
    let spatial = reports.pop().context("spatial report")?;
    Ok((spatial, general))
}

/// The reward demo's frames are rendered at least this large so that the gripper has enough depth pixels for the
/// geometry source; the models see them through their processor (resized to the training size).
const REWARD_MIN_SIZE: u32 = 256;

/// The reward demo: held-out approach sequences in the quickstart's world (different targets and start gaps),
/// each annotated from exact depth (geometry) and by every trained model through the same code as `svlm reward`;
/// `reward/seq_<i>/{frames,geometry,ratio_<r>}/` each, and one plot per source over all sequences.
fn reward_demo(
    out: &Path,
    plan: &Plan,
    runs: &[(f64, PathBuf)],
) -> anyhow::Result<Option<report::RewardDemo>> {
    use svlm_reason::reward::{RewardOptions, RewardSource, annotate, write_report};
    if plan.data.reward_sequences == 0 {
        return Ok(None);
    }
    let dir = out.join("reward");
    let mut config = plan.data.sequence_config();
    config.scene.width = config.scene.width.max(REWARD_MIN_SIZE);
    config.scene.height = config.scene.height.max(REWARD_MIN_SIZE);
    // Every frame shows gripper and target well enough for the geometry source to measure them.
    config.min_visible_pixels = RewardOptions::default()
        .estimate
        .visibility
        .min_visible_pixels;
    let mut sequences = Vec::new();
    for i in 0..plan.data.reward_sequences {
        let seed = plan.data.reward_seed(i);
        let seq_dir = dir.join(format!("seq_{i}"));
        let frames_dir = seq_dir.join("frames");
        let frames = svlm_world::approach_sequence(seed, plan.data.reward_frames, &config)
            .with_context(|| format!("held-out approach sequence {i} (seed {seed})"))?;
        let info = svlm_world::write_sequence_folder(&frames_dir, seed, &frames, || {})
            .with_context(|| format!("writing {}", frames_dir.display()))?;
        let task = format!(
            "distance between the {} and the {}",
            info.gripper, info.target
        );
        let geometry = annotate(
            &frames_dir,
            &task,
            &RewardOptions {
                source: RewardSource::Geometry,
                ..RewardOptions::default()
            },
            None,
        )
        .with_context(|| format!("reward from exact depth, sequence {i}"))?;
        write_report(&geometry, &seq_dir.join("geometry"))?;
        sequences.push(report::RewardSequence {
            seed,
            task,
            target: info.target.clone(),
            true_gap_m: info.gap_m.clone(),
            geometry,
            models: Vec::new(),
        });
    }
    for (ratio, run_dir) in runs {
        let (_, checkpoint) = svlm_train::checkpoint::latest_checkpoint(run_dir)
            .with_context(|| format!("no checkpoint in {}", run_dir.display()))?;
        let mut answerer =
            ModelAnswerer::open(&checkpoint, &out.join("model"), &answer_settings(plan))?;
        let options = RewardOptions {
            source: RewardSource::Vlm,
            batch_size: plan.eval_batch_size,
            ..RewardOptions::default()
        };
        for (i, sequence) in sequences.iter_mut().enumerate() {
            let seq_dir = dir.join(format!("seq_{i}"));
            let annotated = annotate(
                &seq_dir.join("frames"),
                &sequence.task,
                &options,
                Some(&mut answerer),
            )
            .with_context(|| format!("reward from {}, sequence {i}", run_dir.display()))?;
            write_report(&annotated, &seq_dir.join(ratio_label(*ratio)))?;
            sequence.models.push((*ratio, annotated));
        }
    }
    let demo = report::RewardDemo { sequences };
    report::reward_plots(&demo, &dir)?;
    Ok(Some(demo))
}

/// Held-out scenes the reasoning demo asks about.
const REASON_SCENES: usize = 3;

/// The reasoning demo: composite questions about held-out scenes, planned by the rule-based planner (whose
/// sub-questions use the training wordings), each sub-question answered by the model and by the exact truth.
fn reason_demo(
    out: &Path,
    plan: &Plan,
    ratio: f64,
    run_dir: &Path,
) -> anyhow::Result<Vec<report::ReasonExample>> {
    use svlm_reason::oracle::TruthOracle;
    use svlm_reason::{PlannerOptions, Step, Transcript, answer_with_rules};
    let (_, checkpoint) = svlm_train::checkpoint::latest_checkpoint(run_dir)
        .with_context(|| format!("no checkpoint in {}", run_dir.display()))?;
    let mut model = ModelAnswerer::open(&checkpoint, &out.join("model"), &answer_settings(plan))?;
    let dir = out.join("reason");
    let mut examples = Vec::new();
    for (index, scene) in data::test_scenes(&plan.data, REASON_SCENES) {
        let names: Vec<&str> = scene.objects.iter().map(|o| o.name.as_str()).collect();
        let [a, b, ..] = names.as_slice() else {
            continue;
        };
        let image = out
            .join("data")
            .join("images")
            .join(format!("test-{index:06}.png"));
        let questions = [
            format!("Which of the {a} and the {b} is closest to the camera?"),
            format!("Order the {a} and the {b} by height, from tallest"),
        ];
        for (k, question) in questions.iter().enumerate() {
            let mut oracle = TruthOracle::new(0).with_scene(&image, scene.clone());
            let mut exact = Transcript::new(question, &image, "rules");
            let exact_answer = answer_with_rules(
                question,
                &image,
                &mut oracle,
                &PlannerOptions::default(),
                &mut exact,
            )
            .map(|o| o.answer)
            .with_context(|| format!("exact truth for {question:?}"))?;
            let mut transcript = Transcript::new(question, &image, "rules");
            let answer = answer_with_rules(
                question,
                &image,
                &mut model,
                &PlannerOptions::default(),
                &mut transcript,
            );
            if let Err(e) = &answer {
                transcript.error = Some(format!("{e:#}"));
            }
            transcript.save(&dir.join(format!("test-{index:06}-{k}.json")))?;
            let vlm_steps = |t: &Transcript| -> Vec<(String, String)> {
                t.steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::Vlm {
                            question, answer, ..
                        } => Some((question.clone(), answer.clone())),
                        _ => None,
                    })
                    .collect()
            };
            let truths = vlm_steps(&exact);
            let sub = vlm_steps(&transcript)
                .into_iter()
                .zip(truths)
                .map(|((q, a), (_, t))| report::SubAnswer {
                    question: q,
                    answer: a,
                    truth: t,
                })
                .collect();
            examples.push(report::ReasonExample {
                image: format!("data/images/test-{index:06}.png"),
                question: question.clone(),
                ratio,
                sub_answers: sub,
                answer: answer.map_or_else(|e| format!("(no answer: {e:#})"), |o| o.answer),
                exact_answer,
            });
        }
    }
    Ok(examples)
}

fn answer_settings(plan: &Plan) -> AnswerSettings {
    AnswerSettings {
        device: plan.device.clone(),
        dtype: "f32".into(),
        max_new_tokens: plan.max_new_tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::from_args(&args)?;
    // A device this binary cannot drive is an error before any work.
    svlm_model::resolve_device(&plan.device)
        .with_context(|| format!("--device {}", plan.device))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let progress = !args.quiet;
    // Stages as they run: data, model, training, evaluation, and the reward demo when the plan has one.
    let stages = if plan.data.reward_sequences > 0 { 5 } else { 4 };
    let stage = |n: usize, what: String| println!("[{n}/{stages}] {what}");

    stage(
        1,
        format!(
            "data: {} training + {} held-out scenes",
            plan.data.train_scenes, plan.data.test_scenes
        ),
    );
    let files = DataFiles::new(&out);
    let data_summary = data::build(&plan.data, &files, progress)?;
    println!(
        "      {} spatial QA and {} general QA about {} images for training; {} spatial + {} general held out ({:.1} s)",
        data_summary.spatial_train_qa,
        data_summary.general_train_qa,
        data_summary.train_images,
        data_summary.spatial_test_qa,
        data_summary.general_test_qa,
        data_summary.seconds
    );

    stage(
        2,
        "model: tokenizer trained on the generated text, tiny Idefics3 config".into(),
    );
    let model_started = Instant::now();
    model::build(
        &plan.model,
        plan.data.image_size,
        || data::training_texts(&files),
        serde_json::to_value(&plan.data)?,
        &out.join("model"),
    )?;
    let model_seconds = model_started.elapsed().as_secs_f64();

    // One run at a time: on the CPU each run trains data-parallel over every core, which keeps all cores busy
    // to the end (concurrent runs leave cores idle once the shortest one finishes).
    let jobs = args.jobs.unwrap_or(1);
    stage(
        3,
        format!(
            "training {} run(s) from scratch ({} at a time): spatial ratios {:?}, {} steps of {} each",
            plan.ratios.len(),
            jobs,
            plan.ratios,
            plan.steps,
            plan.batch_size
        ),
    );
    let train_seconds = train_all(&out, &plan, &files, jobs, progress)?;

    stage(4, "evaluating on held-out scenes".into());
    let mut results = Vec::new();
    for (&ratio, train_seconds) in plan.ratios.iter().zip(train_seconds) {
        let run_dir = out.join("runs").join(ratio_label(ratio));
        let t = Instant::now();
        let (spatial, general) = evaluate_run(&out, &plan, ratio, &run_dir, &files)?;
        let eval_seconds = t.elapsed().as_secs_f64();
        let metrics = report::read_run_metrics(&run_dir)?;
        let pct = |r: Option<f64>| r.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
        println!(
            "      ratio {ratio}: spatial yes/no {}, which {}, within 2x {}, general {} ({eval_seconds:.0} s)",
            pct(spatial.overall.yes_no.over_all),
            pct(spatial.overall.which.over_all),
            pct(spatial.overall.within_2x.over_all),
            pct(general.overall.accuracy.over_all),
        );
        results.push(RatioResult {
            ratio,
            run_dir,
            steps: metrics.last().map_or(0, |m| m.step),
            final_loss: metrics.last().map(|m| m.loss),
            samples_per_s: report::mean_samples_per_s(&metrics),
            train_seconds,
            spatial,
            general,
            eval_seconds,
        });
    }
    // What the training answers alone score on the held-out questions (no model, no image).
    let load = |path: &Path| {
        load_benchmark(path, &LoadOptions::default())
            .with_context(|| format!("loading {}", path.display()))
    };
    let mut spatial_prior = svlm_eval::PriorBaseline::fit(&load(&files.spatial_train)?);
    let prior_constants = spatial_prior.length_constants();
    let mut general_prior = svlm_eval::PriorBaseline::fit(&load(&files.general_train)?);
    let prior = report::Prior {
        spatial: spatial_prior.evaluate(&load(&files.spatial_test)?, "answer prior"),
        general: general_prior.evaluate(&load(&files.general_test)?, "answer prior"),
    };
    let runs: Vec<(f64, PathBuf)> = results
        .iter()
        .map(|r| (r.ratio, r.run_dir.clone()))
        .collect();
    if stages == 5 {
        stage(
            5,
            format!(
                "reward demo: {} held-out approach sequences, from exact depth and from each model",
                plan.data.reward_sequences
            ),
        );
    }
    let reward = reward_demo(&out, &plan, &runs)?;
    if let Some(demo) = &reward {
        let rho = |r: Option<f64>| r.map_or("undefined".to_string(), |v| format!("{v:+.3}"));
        let summaries = demo.summaries();
        println!(
            "      reward demo ({} sequences of {} frames): mean Spearman rho {}",
            demo.sequences.len(),
            plan.data.reward_frames,
            summaries
                .iter()
                .map(|s| format!("{} {}", s.source, rho(s.mean)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // The reasoning demo with the spatially trained model that reads lengths best.
    let best = results.iter().filter(|r| r.ratio > 0.0).max_by(|a, b| {
        let w = |r: &RatioResult| r.spatial.overall.within_2x.over_all.unwrap_or(0.0);
        w(a).total_cmp(&w(b))
    });
    let reasoning = match best {
        Some(r) => reason_demo(&out, &plan, r.ratio, &r.run_dir)?,
        None => Vec::new(),
    };
    let total_seconds = started.elapsed().as_secs_f64();
    let summary = report::Summary {
        plan: plan.clone(),
        data: data_summary,
        model_seconds,
        results,
        prior,
        prior_constants,
        reward,
        reasoning,
        total_seconds,
    };
    let written = report::write(&out, &summary)?;
    println!(
        "report: {} ({:.1} min in all)",
        written.display(),
        total_seconds / 60.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_recipes_read_and_unknown_keys_are_refused() {
        let default = Preset::Default.recipe().expect("default.toml");
        assert_eq!(default.data.train_scenes, 6000);
        assert_eq!(default.train.steps, 2600);
        assert_eq!(default.data.colors.len(), 6);
        let ci = Preset::Ci.recipe().expect("ci.toml");
        assert!(ci.data.train_scenes < default.data.train_scenes);
        assert!(ci.data.colors.is_empty(), "the whole palette");
        for text in [
            DEFAULT_RECIPE.replace("[eval]", "[eval]\nbatch = 3"),
            DEFAULT_RECIPE.replace("[data]", "[data]\nscenes = 3"),
            DEFAULT_RECIPE.replace("[model]", "[model]\nheads = 3"),
        ] {
            assert!(toml::from_str::<Recipe>(&text).is_err(), "accepted {text}");
        }
    }
}
