//! `svlm check-device --model DIR --device vulkan --dtype f32,bf16`: does a GPU backend compute this model as the
//! CPU does? One chat turn (with an image for a VLM) goes through the processor; the logits of every position on
//! the device, in each precision, are compared with the CPU's f32 logits, and a greedy generation on each is
//! compared token by token. The CPU itself is checked against transformers by the parity tests
//! (`crates/svlm-model/tests/parity.rs`), so agreement here carries that parity over to the device.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use svlm_model::burn::tensor::{Tensor, TensorData};
use svlm_model::generate::{argmax, generate};
use svlm_model::{
    ModelConfig, Vlm, VlmBatch, WeightDType, load_pretrained_as, resolve_device_with_dtype,
};
use svlm_processor::processor::Processor;
use svlm_processor::{ChatMessage, Rgb8};

use crate::model_args::ModelSpec;
use svlm_eval::answerer::{AnswerSettings, generation_images, generation_options};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub spec: ModelSpec,
    /// The device to check: cuda[:i] | vulkan[:i] | tch[:cuda[:i]] (cpu checks the CPU against itself).
    #[arg(long, value_parser = super::device)]
    pub device: String,
    /// Precisions to run on the device, comma-separated: f32, bf16, f16.
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16")]
    pub dtype: Vec<String>,
    /// Image for a VLM; without it a procedural 256x256 picture of coloured squares.
    #[arg(long)]
    pub image: Option<PathBuf>,
    #[arg(
        long,
        default_value = "Is the red square left of the blue square? How far apart are they?"
    )]
    pub prompt: String,
    #[arg(long, default_value_t = 24)]
    pub max_new_tokens: usize,
    /// Largest f32 logit difference allowed, relative to the largest |logit| on the CPU.
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f32,
    /// Timed forward passes per precision (after one warm-up pass).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Internal: run one pass (`DEVICE/DTYPE`) in this process and write it to --pass-out. Each pass runs in its
    /// own process because a Burn device's float precision is fixed at its first use.
    #[arg(long, hide = true, requires = "pass_out")]
    pub pass: Option<String>,
    #[arg(long, hide = true)]
    pub pass_out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    device: String,
    dtype: String,
    max_abs_logit_diff: f32,
    relative_diff: f32,
    argmax_agreement: f64,
    greedy_tokens_equal: usize,
    greedy_tokens: usize,
    forward_ms: f64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    prompt_tokens: usize,
    cpu_forward_ms: f64,
    cpu_greedy: String,
    rows: Vec<Row>,
    /// Passes that did not run, with the reason (e.g. a precision the backend does not support).
    failed_passes: Vec<String>,
}

/// Coloured squares on a gray floor: something for a VLM to look at without shipping a photo.
fn procedural_image() -> Rgb8 {
    let (w, h) = (256usize, 256usize);
    let mut data = vec![0u8; w * h * 3];
    let squares = [
        (40, 150, 60, [220u8, 40, 40]),
        (170, 120, 50, [40, 70, 220]),
        (100, 40, 30, [40, 180, 60]),
    ];
    for y in 0..h {
        for x in 0..w {
            let shade = (90 + (y * 60) / h) as u8;
            let mut px = [shade, shade, shade];
            for &(sx, sy, size, colour) in &squares {
                if (sx..sx + size).contains(&x) && (sy..sy + size).contains(&y) {
                    px = colour;
                }
            }
            data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&px);
        }
    }
    Rgb8 {
        width: w,
        height: h,
        data,
    }
}

#[derive(Serialize, serde::Deserialize)]
struct Pass {
    vocab: usize,
    forward_ms: f64,
    greedy: Vec<u32>,
    #[serde(skip)]
    logits: Vec<f32>,
}

impl Pass {
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let bytes: Vec<u8> = self.logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        svlm_train::checkpoint::write_atomic(&path.with_extension("logits"), &bytes)?;
        svlm_train::checkpoint::write_atomic(path, serde_json::to_string(self)?.as_bytes())?;
        Ok(())
    }

    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let mut pass: Pass = serde_json::from_str(&text)?;
        let bytes = std::fs::read(path.with_extension("logits"))?;
        pass.logits = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(pass)
    }
}

/// One pass in a child process of this binary (see `Args::pass`).
fn run_in_child(args: &Args, dir: &Path, device: &str, dtype: WeightDType) -> anyhow::Result<Pass> {
    let dtype_name = format!("{dtype:?}").to_lowercase();
    let out = dir.join(format!("{}-{dtype_name}.json", device.replace(':', "_")));
    let exe = std::env::current_exe().context("locating the svlm binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("check-device")
        .args(["--model", &args.spec.model])
        .args(["--device", device])
        .args(["--prompt", &args.prompt])
        .args(["--max-new-tokens", &args.max_new_tokens.to_string()])
        .args(["--repeats", &args.repeats.to_string()])
        .args(["--pass", &format!("{device}/{dtype_name}")])
        .arg("--pass-out")
        .arg(&out);
    if let Some(p) = &args.spec.processor {
        cmd.arg("--processor").arg(p);
    }
    if let Some(p) = &args.image {
        cmd.arg("--image").arg(p);
    }
    let output = cmd
        .stdout(std::process::Stdio::inherit())
        .output()
        .context("starting a check-device pass")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .find(|l| l.starts_with("Error:"))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no message");
        bail!(
            "the {device} {dtype_name} pass failed ({}): {}",
            output.status,
            reason.trim_start_matches("Error: ")
        );
    }
    Pass::read(&out).with_context(|| format!("reading the {device} {dtype_name} pass"))
}

fn run_on(
    args: &Args,
    weights: &std::path::Path,
    processor: &Processor,
    image: Option<&Rgb8>,
    device_name: &str,
    dtype: WeightDType,
) -> anyhow::Result<Pass> {
    let device = resolve_device_with_dtype(device_name, dtype)?;
    let loaded = load_pretrained_as(weights, &device, dtype)
        .with_context(|| format!("loading the model on {device_name} in {dtype:?}"))?;
    let images: Vec<Rgb8> = image.into_iter().cloned().collect();
    let message = ChatMessage::user_with_images(images.len(), args.prompt.clone());
    let input = processor.process_chat(&[message], &images, true)?;
    let seq = input.input_ids.len();
    let generation_images = generation_images(processor, std::slice::from_ref(&input), &device)?;
    let ids: Vec<i64> = input.input_ids.iter().map(|&t| i64::from(t)).collect();
    let batch = VlmBatch {
        input_ids: Tensor::from_data(TensorData::new(ids, [1, seq]), &device),
        attention_mask: Tensor::ones([1, seq], &device),
        labels: None,
        pixel_values: generation_images.pixel_values.clone(),
        pixel_attention_mask: generation_images.pixel_attention_mask.clone(),
        image_patches: generation_images.image_patches.clone(),
        packing: None,
    };
    let forward = |model: &Vlm| -> anyhow::Result<Vec<f32>> {
        let logits = model.forward_output(&batch, false)?.logits;
        logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the logits back: {e:?}"))
    };
    let logits = forward(&loaded.model)?;
    let start = Instant::now();
    for _ in 0..args.repeats {
        forward(&loaded.model)?;
    }
    let forward_ms = start.elapsed().as_secs_f64() * 1e3 / args.repeats.max(1) as f64;
    let settings = AnswerSettings {
        device: device_name.to_string(),
        dtype: format!("{dtype:?}").to_lowercase(),
        max_new_tokens: args.max_new_tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    let options = generation_options(weights, &loaded, processor, &settings)?;
    let greedy = generate(
        &loaded.model,
        std::slice::from_ref(&input.input_ids),
        generation_images,
        &options,
    )?
    .into_iter()
    .next()
    .unwrap_or_default();
    let vocab = logits.len() / seq;
    Ok(Pass {
        vocab,
        forward_ms,
        greedy,
        logits,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dtypes = args
        .dtype
        .iter()
        .map(|d| d.parse::<WeightDType>())
        .collect::<anyhow::Result<Vec<_>>>()?;
    if dtypes.is_empty() {
        bail!("--dtype: give at least one of f32, bf16, f16");
    }
    // Fail on a device that is not compiled in before the CPU pass.
    resolve_device_with_dtype(&args.device, WeightDType::F32)?;
    let (weights, processor_dir) = args.spec.resolve()?;
    let processor = Processor::from_dir(&processor_dir)
        .with_context(|| format!("reading the processor files of {}", processor_dir.display()))?;
    let config = ModelConfig::from_json(&svlm_model::io::read_config_json(&weights)?)?;
    let is_vlm = !matches!(config, ModelConfig::Llama(_));
    let image = match (&args.image, is_vlm) {
        (Some(path), true) => Some(
            svlm_processor::image_ops::load_image(path)
                .with_context(|| format!("reading image {}", path.display()))?,
        ),
        (Some(path), false) => bail!(
            "--image {}: {} is a text-only model",
            path.display(),
            args.spec.model
        ),
        (None, true) => Some(procedural_image()),
        (None, false) => None,
    };

    if let (Some(pass), Some(out)) = (&args.pass, &args.pass_out) {
        let (device, dtype) = pass.rsplit_once('/').context("--pass takes DEVICE/DTYPE")?;
        let pass = run_on(
            &args,
            &weights,
            &processor,
            image.as_ref(),
            device,
            dtype.parse()?,
        )?;
        return pass.write(out);
    }
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let cpu = run_in_child(&args, scratch.path(), "cpu", WeightDType::F32)?;
    let seq = cpu.logits.len() / cpu.vocab;
    let scale = cpu
        .logits
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    let cpu_text = processor.decode(&cpu.greedy, true)?;
    println!(
        "{}: {seq} prompt tokens; cpu f32 forward {:.1} ms, largest |logit| {scale:.3}; greedy: {cpu_text:?}",
        args.spec.model, cpu.forward_ms
    );
    println!(
        "{:<10} {:<5} {:>14} {:>10} {:>14} {:>14} {:>12}",
        "device", "dtype", "max |dlogit|", "relative", "argmax agree", "greedy equal", "forward ms"
    );
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut unavailable = Vec::new();
    for dtype in dtypes {
        let dtype_name = format!("{dtype:?}").to_lowercase();
        let pass = match run_in_child(&args, scratch.path(), &args.device, dtype) {
            Ok(pass) => pass,
            // A precision the backend lacks (bf16 on wgpu/Vulkan) is reported, and the others still run.
            Err(e) => {
                println!("{:<10} {dtype_name:<5} failed: {e:#}", args.device);
                let message = format!("{} {dtype_name}: {e:#}", args.device);
                if dtype == WeightDType::F32 {
                    failures.push(message.clone());
                }
                unavailable.push(message);
                continue;
            }
        };
        if pass.logits.len() != cpu.logits.len() {
            bail!(
                "{} {dtype:?}: {} logits, the CPU gave {}",
                args.device,
                pass.logits.len(),
                cpu.logits.len()
            );
        }
        let max_abs = cpu
            .logits
            .iter()
            .zip(&pass.logits)
            .map(|(a, b)| (a - b).abs())
            .fold(
                0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            );
        let agree = cpu
            .logits
            .chunks(cpu.vocab)
            .zip(pass.logits.chunks(pass.vocab))
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        let equal = cpu
            .greedy
            .iter()
            .zip(&pass.greedy)
            .take_while(|(a, b)| a == b)
            .count();
        let row = Row {
            device: args.device.clone(),
            dtype: dtype_name,
            max_abs_logit_diff: max_abs,
            relative_diff: max_abs / scale,
            argmax_agreement: agree as f64 / seq as f64,
            greedy_tokens_equal: equal,
            greedy_tokens: cpu.greedy.len(),
            forward_ms: pass.forward_ms,
        };
        println!(
            "{:<10} {:<5} {:>14.3e} {:>10.3e} {:>13.1}% {:>7}/{:<6} {:>12.1}",
            row.device,
            row.dtype,
            row.max_abs_logit_diff,
            row.relative_diff,
            100.0 * row.argmax_agreement,
            row.greedy_tokens_equal,
            row.greedy_tokens,
            row.forward_ms
        );
        if dtype != WeightDType::F32 {
            println!(
                "{:<10} {:<5} greedy: {:?}",
                "",
                row.dtype,
                processor.decode(&pass.greedy, true)?
            );
        }
        if dtype == WeightDType::F32
            && (row.relative_diff.is_nan() || row.relative_diff > args.tolerance)
        {
            failures.push(format!(
                "{} f32 logits differ from the CPU's by {:.3e} relative (tolerance {:.1e})",
                args.device, row.relative_diff, args.tolerance
            ));
        }
        rows.push(row);
    }
    if let Some(out) = &args.out {
        let report = Report {
            model: args.spec.model.clone(),
            prompt_tokens: seq,
            cpu_forward_ms: cpu.forward_ms,
            cpu_greedy: cpu_text,
            rows,
            failed_passes: unavailable,
        };
        let text = serde_json::to_string_pretty(&report)?;
        svlm_train::checkpoint::write_atomic(out, text.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}
