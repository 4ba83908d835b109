//! `svlm ask --model <dir> --image photo.jpg "question"`: one chat turn through the processor
//! (chat template, image tokens, pixel values) and KV-cache generation.

use std::path::PathBuf;

use anyhow::{Context, bail};
use svlm_eval::answerer::{AnswerSettings, ModelAnswerer};

#[derive(clap::Args)]
pub struct Args {
    /// Model folder (HF layout: config.json, model.safetensors, tokenizer and processor files).
    #[arg(long)]
    pub model: PathBuf,
    /// Image(s) to ask about, in order.
    #[arg(long)]
    pub image: Vec<PathBuf>,
    /// The question.
    pub question: String,
    /// cpu | cuda[:i] | vulkan[:i] | tch
    #[arg(long, value_parser = super::device, default_value = "cpu")]
    pub device: String,
    /// f32 | bf16 | f16 (weights and activations).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.model.is_dir() {
        bail!(
            "--model {}: not a folder (give a local HF model folder with config.json and model.safetensors)",
            args.model.display()
        );
    }
    let images = args
        .image
        .iter()
        .map(|p| {
            svlm_processor::image_ops::load_image(p)
                .with_context(|| format!("reading image {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let settings = AnswerSettings {
        device: args.device.clone(),
        dtype: args.dtype.clone(),
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
    };
    let mut answerer = ModelAnswerer::open(&args.model, &args.model, &settings)?;
    let start = std::time::Instant::now();
    let answers = answerer.answer(&[(images, args.question.clone())])?;
    tracing::info!("answered in {:.2} s", start.elapsed().as_secs_f64());
    println!(
        "{}",
        answers.first().map(String::as_str).unwrap_or_default()
    );
    Ok(())
}
