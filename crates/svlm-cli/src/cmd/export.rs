//! `svlm export RUN_DIR[/checkpoint-N] --out DIR`: a training checkpoint (or any HF folder) as a
//! Hugging Face model folder that `transformers` loads with `from_pretrained`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use svlm_model::io::{ExportOptions, load_burnpack};
use svlm_model::{ModelConfig, Vlm, WeightDType, load_pretrained_as, resolve_device};

#[derive(clap::Args)]
pub struct Args {
    /// A run folder (its newest `checkpoint-N` is used), one `checkpoint-N` folder, or an HF model folder.
    pub source: PathBuf,
    /// Output folder (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// f32 | bf16 | f16 weights in model.safetensors.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Folder to copy tokenizer/processor files from (default: the source folder, the checkpoint
    /// or its run folder when they hold tokenizer.json).
    #[arg(long)]
    pub processor_from: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// The newest `checkpoint-N` in a run folder (the trainer's own lookup, so both agree on the layout).
fn latest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    svlm_train::checkpoint::latest_checkpoint(run_dir).map(|(_, path)| path)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dtype: WeightDType = args.dtype.parse()?;
    let device = resolve_device("cpu")?;
    let source = &args.source;
    let has_weights = |d: &Path| {
        d.join("model.safetensors").is_file()
            || d.join("model.safetensors.index.json").is_file()
            || d.join("model.bpk").is_file()
    };
    // A run folder stands for its newest checkpoint.
    let folder = if has_weights(source) {
        source.clone()
    } else {
        latest_checkpoint(source).with_context(|| {
            format!(
                "{}: no model.safetensors, model.bpk or checkpoint-N folder",
                source.display()
            )
        })?
    };
    let model = if folder.join("model.bpk").is_file() && !folder.join("model.safetensors").is_file()
    {
        let config = ModelConfig::from_file(&folder.join("config.json"))?;
        let mut model = Vlm::from_config(&config, &device)?;
        load_burnpack(&mut model, &folder.join("model.bpk"))?;
        model
    } else {
        load_pretrained_as(&folder, &device, WeightDType::F32)?.model
    };
    tracing::info!("loaded {}", folder.display());
    let side_dir = svlm_train::checkpoint::processor_dir_of(&folder);
    let side_files_from = args.processor_from.clone().or(side_dir);
    if let Some(dir) = &side_files_from
        && !dir.is_dir()
    {
        bail!("--processor-from {}: not a folder", dir.display());
    }
    if side_files_from.is_none() {
        tracing::warn!(
            "no tokenizer/processor folder known; pass --processor-from DIR to copy them"
        );
    }
    svlm_model::export_hf(
        &model,
        &args.out,
        &ExportOptions {
            dtype,
            side_files_from,
            overwrite: args.overwrite,
        },
    )?;
    println!("exported {} -> {}", source.display(), args.out.display());
    Ok(())
}
