//! The model flags shared by the commands that load a model (`--model`/`--processor`, `--vlm`); what they resolve
//! to and the answerer they open live in `svlm_eval::answerer`.

use std::path::PathBuf;

use svlm_eval::answerer::{ModelAnswerer, open_answerer, resolve_model_spec};

/// `--model` and `--processor` of the commands that load a model to evaluate or check.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelSpec {
    /// An HF model folder, a training run (newest checkpoint), a checkpoint-N folder, a .gguf file or a hub repo id.
    #[arg(long)]
    pub model: String,
    /// Tokenizer/processor folder (default: the model folder, its run folder, or the tokenizer its run's config
    /// names, the same search as `svlm export`).
    #[arg(long)]
    pub processor: Option<PathBuf>,
}

impl ModelSpec {
    /// The weights folder and the tokenizer/processor folder ([`resolve_model_spec`]).
    pub fn resolve(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        resolve_model_spec(&self.model, self.processor.as_deref())
    }
}

/// The trained-VLM flags of the commands that can also answer with the exact-truth oracle (`reason`, `reward`).
#[derive(clap::Args, Debug, Clone)]
pub struct VlmArgs {
    /// The VLM answering the elementary questions: a model folder, a training run (newest checkpoint), a
    /// checkpoint-N folder, a .gguf file or a cached hub id. Without it the exact-truth oracle answers (procedural
    /// frames written by `svlm world` only: answers in the synthesis templates' words, read back by the same parser).
    #[arg(long)]
    pub vlm: Option<String>,
    /// Tokenizer/processor folder for --vlm (default: found as for `svlm eval --processor`).
    #[arg(long)]
    pub processor: Option<PathBuf>,
    /// Device for --vlm: cpu | cuda[:i] | vulkan[:i] | tch.
    #[arg(long, default_value = "cpu", value_parser = crate::cmd::device)]
    pub device: String,
}

impl VlmArgs {
    /// The model answerer when --vlm is given.
    pub fn open(&self) -> anyhow::Result<Option<ModelAnswerer>> {
        self.vlm
            .as_deref()
            .map(|spec| open_answerer(spec, self.processor.as_deref(), &self.device))
            .transpose()
    }
}
