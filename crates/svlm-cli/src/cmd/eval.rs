//! `svlm eval --model <dir|repo|run> --data <set> --out DIR`: batched generation over a spatial VQA set, scored per
//! question type, with a JSON + markdown report, PNG charts and the predictions. With `--rescore`, `--data` is a
//! predictions.jsonl whose answers are scored again (`svlm eval --model NAME --rescore --data FILE --out DIR`).
//!
//! `svlm eval --benchmark NAME --data PATH --model M --out DIR` (or `--benchmark all --data-root DIR`) runs the
//! published spatial benchmarks with their own prompts and scoring (`svlm_eval::benchmarks`): one folder per
//! benchmark with `predictions.jsonl` (kept as answers come; a rerun asks only what is missing), `report.md` and
//! `report.json`, and `leaderboard.{md,json,png}` beside the published reference numbers.

use std::path::PathBuf;

use anyhow::{Context, bail};
use svlm_eval::answerer::{AnswerSettings, ModelAnswerer};
use svlm_eval::{
    Benchmark, EvalOptions, LoadOptions, ReadContext, RunOptions, evaluate_with_progress,
    load_bench, load_benchmark, resume_log, run_benchmark, write_leaderboard,
};

use crate::model_args::ModelSpec;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub spec: ModelSpec,
    /// The evaluation set: svlm synth JSONL/Parquet, Q-Spatial-Bench or SpatialRGPT-Bench files (format detected);
    /// with --benchmark, the benchmark's release file or folder.
    #[arg(long, required_unless_present = "data_root")]
    pub data: Option<PathBuf>,
    /// A published benchmark to run with its own prompt and scoring: cvbench, blink, embspatial, whatsup,
    /// 3dsrbench, vsibench, qspatial, spatialrgpt, or all (needs --data-root).
    #[arg(long)]
    pub benchmark: Option<String>,
    /// Folder with one subfolder per benchmark, named as --benchmark names them (cvbench/, blink/, ...).
    #[arg(long, requires = "benchmark")]
    pub data_root: Option<PathBuf>,
    /// VSI-Bench: frames sampled evenly from each video's frame folder.
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Folder the images of --data are relative to (default: the data file's folder).
    #[arg(long)]
    pub image_root: Option<PathBuf>,
    /// Report folder: report.json, report.md, predictions.jsonl, PNG charts. Predictions are appended as they are
    /// made: a rerun with the same model, data and settings asks only what is not answered yet.
    #[arg(long)]
    pub out: PathBuf,
    /// Evaluate at most this many questions.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// cpu | cuda[:i] | vulkan[:i] | tch
    #[arg(long, value_parser = super::device, default_value = "cpu")]
    pub device: String,
    /// f32 | bf16 | f16
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: usize,
    /// Read --data as a predictions.jsonl (of `svlm eval` or the quickstart) and score its answers again with
    /// this build's scorer; nothing is generated and --model only names the model in the report.
    #[arg(long)]
    pub rescore: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.benchmark.is_some() {
        return run_benchmarks(&args);
    }
    let data = args
        .data
        .clone()
        .context("--data is required (or --benchmark with --data-root)")?;
    let report = if args.rescore {
        svlm_eval::rescore_predictions(&data, &args.spec.model)?
    } else {
        generate_and_score(&args, &data)?
    };
    report
        .write(&args.out)
        .with_context(|| format!("writing the report to {}", args.out.display()))?;
    print_summary(&report, &args);
    if !report.failed.is_empty() {
        for f in &report.failed {
            eprintln!("  failed: {}: {}", f.location, f.reason);
        }
        anyhow::bail!(
            "{} item(s) could not be scored (listed above and in {}); the other {} were scored",
            report.failed.len(),
            args.out.join("report.md").display(),
            report.items
        );
    }
    Ok(())
}

fn generate_and_score(
    args: &Args,
    data: &std::path::Path,
) -> anyhow::Result<svlm_eval::EvalReport> {
    let set = load_benchmark(
        data,
        &LoadOptions {
            image_root: args.image_root.clone(),
            // Parquet sets (Q-Spatial-Bench) embed their images; they are written here once.
            image_cache: Some(args.out.join("images")),
            limit: args.limit,
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("loading --data {}", data.display()))?;
    let (weights, processor) = args.spec.resolve()?;
    let mut answerer = greedy_answerer(args, &weights, &processor)?;
    let settings = serde_json::json!({
        "weights": weights,
        "processor": processor,
        "data": args.data,
        "image_root": args.image_root,
        "dtype": args.dtype,
        "max_new_tokens": args.max_new_tokens,
    });
    let options = EvalOptions {
        batch_size: args.batch_size,
        model_name: args.spec.model.clone(),
        resume_log: Some(resume_log(&args.out, &settings)?),
        ..EvalOptions::default()
    };
    let bar = progress_bar(set.items.len(), "questions");
    let report = evaluate_with_progress(&set, &mut answerer, &options, &mut |done, _| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    report
}

/// The bar shown while a model answers `len` questions of `what`.
fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn print_summary(report: &svlm_eval::EvalReport, args: &Args) {
    let pct = |r: Option<f64>| r.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
    println!(
        "{} questions: yes/no accuracy {}, which {}, yes/no and which {}, within [0.5x, 2x] {}, valid format {}",
        report.items,
        pct(report.overall.yes_no.over_all),
        pct(report.overall.which.over_all),
        pct(report.overall.binary.over_all),
        pct(report.overall.within_2x.over_all),
        pct(report.overall.valid_format_rate)
    );
    println!("report: {}", args.out.join("report.md").display());
}

/// The benchmarks `--benchmark` names, each with its release file or folder.
fn benchmark_inputs(args: &Args) -> anyhow::Result<Vec<(Benchmark, PathBuf)>> {
    let name = args.benchmark.as_deref().unwrap_or_default();
    if name.eq_ignore_ascii_case("all") {
        let root = args
            .data_root
            .as_ref()
            .context("--benchmark all needs --data-root DIR (one subfolder per benchmark)")?;
        let found: Vec<(Benchmark, PathBuf)> = Benchmark::ALL
            .into_iter()
            .map(|b| (b, root.join(b.name())))
            .filter(|(_, dir)| dir.exists())
            .collect();
        if found.is_empty() {
            bail!(
                "{}: no benchmark folders (expected some of {})",
                root.display(),
                Benchmark::ALL.map(|b| b.name()).join(", ")
            );
        }
        for b in Benchmark::ALL {
            if !found.iter().any(|(f, _)| *f == b) {
                println!(
                    "{}: no {}/ in {}, skipped",
                    b.title(),
                    b.name(),
                    root.display()
                );
            }
        }
        return Ok(found);
    }
    let benchmark: Benchmark = name.parse()?;
    let data = match (&args.data, &args.data_root) {
        (Some(data), _) => data.clone(),
        (None, Some(root)) => root.join(benchmark.name()),
        (None, None) => bail!("--benchmark {name} needs --data PATH or --data-root DIR"),
    };
    Ok(vec![(benchmark, data)])
}

/// The model behind `--model` with greedy decoding, as every evaluation answers.
fn greedy_answerer(
    args: &Args,
    weights: &std::path::Path,
    processor: &std::path::Path,
) -> anyhow::Result<ModelAnswerer> {
    let settings = AnswerSettings {
        device: args.device.clone(),
        dtype: args.dtype.clone(),
        max_new_tokens: args.max_new_tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    ModelAnswerer::open(weights, processor, &settings)
}

/// `--benchmark`: each benchmark read, answered (resuming kept predictions) and reported, then the leaderboard.
fn run_benchmarks(args: &Args) -> anyhow::Result<()> {
    let inputs = benchmark_inputs(args)?;
    let (weights, processor) = args.spec.resolve()?;
    let mut answerer = greedy_answerer(args, &weights, &processor)?;
    let options = RunOptions {
        model: args.spec.model.clone(),
        batch_size: args.batch_size,
    };
    let mut reports = Vec::new();
    for (benchmark, data) in inputs {
        let ctx = ReadContext {
            image_root: args.image_root.clone(),
            image_cache: args.out.join("images").join(benchmark.name()),
            frames: args.frames,
        };
        let mut set = load_bench(benchmark, &data, &ctx)?;
        if let Some(n) = args.limit {
            set.items.truncate(n);
        }
        let bar = progress_bar(set.items.len(), benchmark.title());
        let out = args.out.join(benchmark.name());
        let report = run_benchmark(&set, &mut answerer, &out, &options, &mut |done, _| {
            bar.set_position(done as u64)
        })
        .with_context(|| format!("running {}", benchmark.title()))?;
        bar.finish_and_clear();
        let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
        println!(
            "{}: {} {} (strict {}), {} questions ({} kept from an earlier run), {} rows skipped: {}",
            benchmark.title(),
            report.summary.metric,
            pct(report.summary.overall),
            pct(report.summary.strict_overall),
            report.items,
            report.resumed,
            report.skipped,
            out.join("report.md").display()
        );
        reports.push(report);
    }
    let published = svlm_eval::published_results()?;
    let files = write_leaderboard(&args.out, &reports, &published)?;
    if let Some(md) = files.first() {
        println!("leaderboard: {}", md.display());
    }
    Ok(())
}
