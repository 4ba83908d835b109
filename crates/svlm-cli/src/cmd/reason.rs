//! `svlm reason`: chain-of-thought spatial reasoning — a composite question is broken into elementary questions
//! for a spatial VLM (by the rule-based planner, or by an LLM over an OpenAI-compatible endpoint), the answers are
//! parsed into numbers and composed into the final answer; the transcript is saved as JSON. An LLM answer that
//! rests on no measurement is printed as `[ungrounded] ...` and marked `"grounded": false` in the transcript.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use svlm_reason::oracle::{TruthOracle, scene_from_frame};
use svlm_reason::planner::PlanError;
use svlm_reason::{
    LlmConfig, OpenAiClient, OrchestratorOptions, PlannerOptions, Transcript, answer_with_llm,
    answer_with_rules,
};
use svlm_world::{SceneConfig, generate_scene, read_frame, render, write_frame};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Planner {
    /// The rule-based planner; questions it cannot plan go to the LLM when --llm/--model is given.
    Auto,
    /// Only the rule-based planner (offline, deterministic).
    Rules,
    /// Only the LLM orchestrator.
    Llm,
}

#[derive(clap::Args)]
pub struct Args {
    /// The composite question, e.g. "Do the red cube, the blue sphere and the green cone form roughly an
    /// equilateral triangle?".
    question: String,
    /// The image. With --vlm any photo; without it a frame of a procedural RGB-D folder (DIR/<stem>.png with
    /// <stem>.objects.json), answered by the exact-truth oracle.
    #[arg(long, conflicts_with = "scene")]
    image: Option<PathBuf>,
    #[command(flatten)]
    vlm: crate::model_args::VlmArgs,
    /// Generate and render procedural scene SEED (written into --out) and reason about it with the oracle.
    #[arg(long)]
    scene: Option<u64>,
    #[arg(long, value_enum, default_value_t = Planner::Auto)]
    planner: Planner,
    /// OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1); default: SVLM_LLM_BASE_URL, OPENAI_BASE_URL,
    /// then api.openai.com. The key comes from OPENAI_API_KEY.
    #[arg(long)]
    llm: Option<String>,
    /// LLM model name for the endpoint.
    #[arg(long)]
    model: Option<String>,
    /// Use the plain-text ASK:/FINAL: protocol instead of function calling (for models without tools).
    #[arg(long)]
    plain_text: bool,
    /// LLM turns before giving up.
    #[arg(long, default_value_t = 12)]
    max_steps: usize,
    /// Per-request LLM timeout, seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Output folder (transcript.json; the rendered scene for --scene).
    #[arg(long, default_value = "reason_out")]
    out: PathBuf,
}

fn oracle_for_image(image: &Path) -> anyhow::Result<TruthOracle> {
    let dir = image
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = image
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("bad image path {}", image.display()))?;
    let frame = read_frame(dir, stem).with_context(|| {
        format!(
            "{} is not a frame of an RGB-D folder: without --vlm MODEL only procedural frames (exact-truth oracle) can be answered",
            image.display()
        )
    })?;
    let scene = scene_from_frame(&frame)?;
    Ok(TruthOracle::new(0).with_scene(image, scene))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let (image, oracle) = match (&args.image, args.scene) {
        (Some(image), _) if args.vlm.vlm.is_some() => (image.clone(), None),
        (Some(image), _) => (image.clone(), Some(oracle_for_image(image)?)),
        (None, Some(seed)) => {
            let scene = generate_scene(seed, &SceneConfig::default());
            let stem = format!("scene_{seed}");
            write_frame(&args.out, &stem, &render(&scene), &scene)
                .with_context(|| format!("writing the scene into {}", args.out.display()))?;
            let names: Vec<&str> = scene.objects.iter().map(|o| o.name.as_str()).collect();
            println!("scene {seed}: {}", names.join(", "));
            let image = args.out.join(format!("{stem}.png"));
            (
                image.clone(),
                Some(TruthOracle::new(seed).with_scene(image, scene)),
            )
        }
        (None, None) => anyhow::bail!("give --image IMG or --scene SEED"),
    };
    let mut vlm: Box<dyn svlm_eval::Answerer> = match (args.vlm.open()?, oracle) {
        (Some(model), _) => Box::new(model),
        (None, Some(oracle)) => Box::new(oracle),
        (None, None) => anyhow::bail!("no VLM: give --vlm MODEL or a procedural frame"),
    };
    let vlm_name = args
        .vlm
        .vlm
        .clone()
        .unwrap_or_else(|| "truth-oracle".into());
    tracing::info!(vlm = %vlm_name, "elementary questions go to");
    let llm_configured = args.llm.is_some() || args.model.is_some();
    let use_llm = match args.planner {
        Planner::Llm => true,
        Planner::Rules => false,
        Planner::Auto => match svlm_reason::plan(&args.question) {
            Ok(_) => false,
            Err(PlanError::CannotPlan(_)) if llm_configured => true,
            Err(e) => return Err(e.into()),
        },
    };
    let transcript_path = args.out.join("transcript.json");
    let (mut transcript, result) = if use_llm {
        let model = args
            .model
            .clone()
            .context("the LLM planner needs --model NAME")?;
        let config = LlmConfig {
            timeout: Duration::from_secs(args.timeout_s),
            ..LlmConfig::from_env(args.llm.as_deref(), &model)
        };
        tracing::info!(endpoint = %config.endpoint(), %model, "asking the LLM");
        let mut client = OpenAiClient::new(config);
        let mut transcript = Transcript::new(&args.question, &image, &format!("llm:{model}"));
        let options = OrchestratorOptions {
            max_steps: args.max_steps,
            use_tools: !args.plain_text,
        };
        let result = answer_with_llm(
            &args.question,
            &image,
            &mut client,
            vlm.as_mut(),
            &options,
            &mut transcript,
        )
        .map(|a| a.answer);
        (transcript, result)
    } else {
        let mut transcript = Transcript::new(&args.question, &image, "rules");
        let result = answer_with_rules(
            &args.question,
            &image,
            vlm.as_mut(),
            &PlannerOptions::default(),
            &mut transcript,
        )
        .map(|o| o.answer);
        (transcript, result)
    };
    if let Err(e) = &result {
        transcript.error = Some(format!("{e:#}"));
    }
    transcript.save(&transcript_path)?;
    for step in &transcript.steps {
        if let svlm_reason::Step::Vlm {
            question,
            answer,
            parsed,
        } = step
        {
            println!("  VLM: {question} -> {answer} [{}]", parsed.describe());
        }
    }
    let answer = result
        .with_context(|| format!("no answer (transcript in {})", transcript_path.display()))?;
    if transcript.grounded == Some(false) {
        // The LLM answered without a single readable measurement, even after a reminder: a guess, shown as one.
        println!("[ungrounded] {answer}");
        eprintln!(
            "warning: the answer rests on no measurement from the vision model ({} questions asked, none readable)",
            transcript.vlm_questions()
        );
    } else {
        println!("{answer}");
    }
    println!("transcript: {}", transcript_path.display());
    Ok(())
}
