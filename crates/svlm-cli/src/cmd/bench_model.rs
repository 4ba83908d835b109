//! `svlm bench model`: forward+backward time of a small Llama on the CPU (flex) backend, against
//! PyTorch on the same config and machine (`scripts/bench_model_torch.py`), printed as a ratio.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use svlm_model::burn::module::Module;
use svlm_model::burn::tensor::{Device, Int, Tensor, TensorData};
use svlm_model::{LlamaConfig, ModelConfig, Vlm, VlmBatch, WeightDType, resolve_device_with_dtype};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    #[arg(long, default_value_t = 688)]
    pub intermediate: usize,
    #[arg(long, default_value_t = 2048)]
    pub vocab: usize,
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Python interpreter with torch + transformers; skipped (Burn numbers only) if it fails.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The PyTorch side of the benchmark.
    #[arg(long, default_value = "scripts/bench_model_torch.py")]
    pub torch_script: PathBuf,
    /// Skip the PyTorch run.
    #[arg(long)]
    pub no_torch: bool,
    /// cpu | cuda[:i] | vulkan[:i] | tch: where Burn runs. PyTorch runs on its CPU for `cpu` and on
    /// `cuda` for any GPU device (the same card).
    #[arg(long, value_parser = super::device, default_value = "cpu")]
    pub device: String,
    /// f32 | bf16 | f16, on both sides.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn batch(args: &Args, device: &Device) -> VlmBatch {
    // Deterministic pseudo-random ids (a small LCG; the values do not matter for timing).
    let mut state = 12345u64;
    let ids: Vec<i64> = (0..args.batch * args.seq)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % args.vocab as u64) as i64
        })
        .collect();
    let input_ids =
        Tensor::<2, Int>::from_data(TensorData::new(ids, [args.batch, args.seq]), device);
    VlmBatch {
        input_ids: input_ids.clone(),
        attention_mask: Tensor::ones([args.batch, args.seq], device),
        labels: Some(input_ids),
        pixel_values: None,
        pixel_attention_mask: None,
        image_patches: None,
        packing: None,
    }
}

/// Median seconds of a forward+backward step and of a forward, and the parameter count.
fn time_burn(
    args: &Args,
    cfg: &ModelConfig,
    base_device: &Device,
) -> anyhow::Result<(f64, f64, usize)> {
    let device = base_device.clone().autodiff();
    let model = Vlm::from_config(cfg, &device)?;
    let train_batch = batch(args, &device);
    let step = || -> anyhow::Result<f64> {
        let t = Instant::now();
        let loss = model.try_loss(&train_batch)?;
        let grads = loss.backward();
        drop(grads);
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        Ok(t.elapsed().as_secs_f64())
    };
    for _ in 0..args.warmup {
        step()?;
    }
    let fb = median(
        (0..args.iters)
            .map(|_| step())
            .collect::<anyhow::Result<Vec<_>>>()?,
    );

    let infer_model = Vlm::from_config(cfg, base_device)?;
    let infer_batch = batch(args, base_device);
    let forward = || -> anyhow::Result<f64> {
        let t = Instant::now();
        let logits = infer_model.try_forward(&infer_batch)?;
        let _ = logits.into_data();
        Ok(t.elapsed().as_secs_f64())
    };
    forward()?;
    let fwd = median(
        (0..args.iters)
            .map(|_| forward())
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    Ok((fb, fwd, model.num_params()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.iters == 0 {
        bail!("--iters must be >= 1");
    }
    let mut cfg = LlamaConfig::tiny(
        args.vocab,
        args.hidden,
        args.layers,
        args.heads,
        args.kv_heads,
    );
    cfg.intermediate_size = args.intermediate;
    cfg.max_position_embeddings = args.seq.max(2048);
    let cfg = ModelConfig::Llama(cfg);

    let dtype: WeightDType = args.dtype.parse()?;
    let base_device = resolve_device_with_dtype(&args.device, dtype)?;
    let (fb, fwd, params) = time_burn(&args, &cfg, &base_device)?;
    // On the CPU the same model once more with the fused kernels off: what they gain, same machine, same process.
    let unfused = if svlm_model::fused::runs_fused(&Tensor::<1>::zeros([1], &base_device)) {
        svlm_model::fused::set_enabled(false);
        let times = time_burn(&args, &cfg, &base_device);
        svlm_model::fused::set_enabled(true);
        Some(times?)
    } else {
        None
    };

    println!(
        "config: hidden {} layers {} heads {}/{} intermediate {} vocab {} | batch {} x seq {} | {params} params",
        args.hidden,
        args.layers,
        args.heads,
        args.kv_heads,
        args.intermediate,
        args.vocab,
        args.batch,
        args.seq
    );
    println!(
        "burn 0.22.1 on {} ({}): forward+backward {:.1} ms, forward {:.1} ms (median of {})",
        args.device,
        args.dtype,
        fb * 1e3,
        fwd * 1e3,
        args.iters
    );
    if let Some((ufb, ufwd, _)) = unfused {
        println!(
            "burn without the fused kernels: forward+backward {:.1} ms, forward {:.1} ms | fused / unfused: forward+backward {:.2}x, forward {:.2}x",
            ufb * 1e3,
            ufwd * 1e3,
            fb / ufb,
            fwd / ufwd
        );
    }

    if args.no_torch {
        return Ok(());
    }
    let out = std::process::Command::new(&args.python)
        .arg(&args.torch_script)
        .args(["--hidden", &args.hidden.to_string()])
        .args(["--layers", &args.layers.to_string()])
        .args(["--heads", &args.heads.to_string()])
        .args(["--kv-heads", &args.kv_heads.to_string()])
        .args(["--intermediate", &args.intermediate.to_string()])
        .args(["--vocab", &args.vocab.to_string()])
        .args(["--seq", &args.seq.to_string()])
        .args(["--batch", &args.batch.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--iters", &args.iters.to_string()])
        .args([
            "--device",
            if args.device == "cpu" { "cpu" } else { "cuda" },
        ])
        .args(["--dtype", &args.dtype])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "pytorch: skipped ({} failed: {})",
                args.torch_script.display(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return Ok(());
        }
        Err(e) => {
            println!("pytorch: skipped (cannot run {}: {e})", args.python);
            return Ok(());
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .context("the torch script printed nothing")?;
    let json: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("parsing torch output `{line}`"))?;
    let torch_fb = json["forward_backward_ms_median"]
        .as_f64()
        .context("torch output lacks forward_backward_ms_median")?
        / 1e3;
    let torch_fwd = json["forward_ms_median"]
        .as_f64()
        .context("torch output lacks forward_ms_median")?
        / 1e3;
    println!(
        "{} ({} threads, attn {}): forward+backward {:.1} ms, forward {:.1} ms",
        json["framework"].as_str().unwrap_or("torch"),
        json["threads"],
        json["attn"].as_str().unwrap_or("?"),
        torch_fb * 1e3,
        torch_fwd * 1e3
    );
    println!(
        "ratio burn / torch: forward+backward {:.2}x, forward {:.2}x (> 1 = burn slower)",
        fb / torch_fb,
        fwd / torch_fwd
    );
    Ok(())
}
