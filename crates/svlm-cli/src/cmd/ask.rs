//! `svlm ask --model <dir> --image photo.jpg "question"`: one chat turn through the processor
//! (chat template, image tokens, pixel values) and KV-cache generation.

use std::path::PathBuf;

use anyhow::{Context, bail};
use svlm_model::generate::{GenerationImages, GenerationOptions, generate, stop_tokens_of};
use svlm_model::{WeightDType, load_pretrained_as, resolve_device_with_dtype};
use svlm_processor::{ChatMessage, processor::Processor};

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
    #[arg(long, default_value = "cpu")]
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
    let dtype: WeightDType = args.dtype.parse()?;
    let device = resolve_device_with_dtype(&args.device, dtype)?;
    let processor = Processor::from_dir(&args.model)
        .with_context(|| format!("reading the processor files of {}", args.model.display()))?;
    let images = args
        .image
        .iter()
        .map(|p| {
            svlm_processor::image_ops::load_image(p)
                .with_context(|| format!("reading image {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let message = ChatMessage::user_with_images(images.len(), args.question.clone());
    let inputs = processor.process_chat(&[message], &images, true)?;

    let loaded = load_pretrained_as(&args.model, &device, dtype)?;
    let gen_images = if images.is_empty() {
        GenerationImages::default()
    } else {
        let [tiles, c, h, w] = inputs.pixel_shape;
        GenerationImages::from_host(
            inputs.pixel_values.clone(),
            [1, tiles, c, h, w],
            inputs.pixel_attention_mask.as_deref(),
            &device,
        )?
    };
    let mut stop_tokens = stop_tokens_of(&args.model, &loaded.config)?;
    if let Some(eou) = processor.tokenizer.token_to_id("<end_of_utterance>") {
        stop_tokens.push(eou);
    }
    let options = GenerationOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        stop_tokens,
        pad_token: processor.tokenizer.pad_token_id().unwrap_or(0),
        seed: args.seed,
    };
    let start = std::time::Instant::now();
    let tokens = generate(
        &loaded.model,
        std::slice::from_ref(&inputs.input_ids),
        gen_images,
        &options,
    )?;
    let answer = processor.tokenizer.decode(&tokens[0], true)?;
    tracing::info!(
        "{} prompt tokens, {} new tokens in {:.2} s",
        inputs.input_ids.len(),
        tokens[0].len(),
        start.elapsed().as_secs_f64()
    );
    println!("{}", answer.trim());
    Ok(())
}
