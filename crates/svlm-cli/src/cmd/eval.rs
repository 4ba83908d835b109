//! `svlm eval --model <dir|repo|run> --data <set> --out DIR`: batched generation over a spatial VQA set, scored per
//! question type, with a JSON + markdown report, PNG charts and the predictions. With `--rescore`, `--data` is a
//! predictions.jsonl whose answers are scored again (`svlm eval --model NAME --rescore --data FILE --out DIR`).

use std::path::PathBuf;

use anyhow::Context;
use svlm_eval::{EvalOptions, LoadOptions, evaluate, load_benchmark, resume_log};

use crate::answerer::{AnswerSettings, ModelAnswerer, ModelSpec};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub spec: ModelSpec,
    /// The evaluation set: svlm synth JSONL/Parquet, Q-Spatial-Bench or SpatialRGPT-Bench files (format detected).
    #[arg(long)]
    pub data: PathBuf,
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
    let report = if args.rescore {
        svlm_eval::rescore_predictions(&args.data, &args.spec.model)?
    } else {
        generate_and_score(&args)?
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

fn generate_and_score(args: &Args) -> anyhow::Result<svlm_eval::EvalReport> {
    let set = load_benchmark(
        &args.data,
        &LoadOptions {
            image_root: args.image_root.clone(),
            // Parquet sets (Q-Spatial-Bench) embed their images; they are written here once.
            image_cache: Some(args.out.join("images")),
            limit: args.limit,
            ..LoadOptions::default()
        },
    )
    .with_context(|| format!("loading --data {}", args.data.display()))?;
    let (weights, processor) = args.spec.resolve()?;
    let settings = AnswerSettings {
        device: args.device.clone(),
        dtype: args.dtype.clone(),
        max_new_tokens: args.max_new_tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    let mut answerer = ModelAnswerer::open(&weights, &processor, &settings)?;
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
    evaluate(&set, &mut answerer, &options)
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
