//! Run configs: TOML with `extends = "base.toml"` (relative to the extending file), `--set a.b=value` overrides typed
//! by the schema, unknown keys and bad values rejected with the key named.
//!
//! Relative paths inside a config file (data sources, image roots, model config/tokenizer, a local pretrained
//! folder) are resolved against the directory of the file that sets them (so a base config's paths stay right when
//! another config extends it); paths given with `--set` are relative to the working directory. The resolved config
//! saved in the run directory holds absolute paths, so a resumed run finds its data from any working directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("config {path}: `extends` must be a string path, found {found}")]
    ExtendsType { path: PathBuf, found: String },
    #[error("config {path}: `extends` cycle through {again}")]
    ExtendsCycle { path: PathBuf, again: PathBuf },
    #[error("override `{0}` must look like key.path=value")]
    OverrideSyntax(String),
    #[error("override `{key}`: {message}")]
    OverridePath { key: String, message: String },
    #[error("config {origin}: {message}")]
    Schema { origin: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// What a run trains and on what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// A short name for the run (used in sweep tables).
    #[serde(default = "default_name")]
    pub name: String,
    /// Master seed: data order, model init and every other random choice derive from it.
    #[serde(default)]
    pub seed: u64,
    pub model: ModelSettings,
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub freeze: FreezeConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub eval: EvalConfig,
}

fn default_name() -> String {
    "run".to_string()
}

/// Where the model comes from: a pretrained HF checkpoint (hub id or local folder) or a from-scratch init from an
/// HF `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Hub repo id (`HuggingFaceTB/SmolVLM-256M-Instruct`) or local HF folder.
    #[serde(default)]
    pub pretrained: Option<String>,
    /// HF `config.json` for a from-scratch (randomly initialized) model.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Folder with `tokenizer.json` (and processor configs); defaults to the pretrained folder / the config's folder.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Longest token sequence kept per sample; longer samples are truncated (their truncated tokens are logged).
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// From-scratch models only: std of the vision tower's position embeddings at init (transformers uses 0.02,
    /// with which a small VLM trained from scratch does not learn where things are; see
    /// `svlm_model::Vlm::reinit_vision_positions`). 0 keeps the transformers init.
    #[serde(default = "default_vision_position_std")]
    pub vision_position_std: f64,
}

fn default_vision_position_std() -> f64 {
    1.0
}

fn default_max_seq_len() -> usize {
    2048
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioBy {
    /// Weights are fractions of drawn samples.
    Samples,
    /// Weights are fractions of supervised (assistant) tokens, as the paper's "~5% of tokens".
    Tokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopRule {
    /// Stop after `train.steps` optimizer steps; sources restart their epochs as needed.
    Steps,
    /// Stop when the first source with weight > 0 has finished its epochs.
    FirstExhausted,
    /// Keep going until every source with weight > 0 has finished its epochs (finished ones drop out).
    AllExhausted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Decide from the extension and the first record.
    Auto,
    /// LLaVA JSON array (`[{"id","image","conversations":[{"from","value"}]}]`).
    LlavaJson,
    /// LLaVA records, one per line.
    LlavaJsonl,
    /// `{"messages":[{"role","content"}], "images":[...]}` per line (VQASynth / OpenAI style).
    ChatJsonl,
    /// Parquet with `messages` or `conversations` and embedded `images: [{bytes, path}]` (HF datasets layout).
    Parquet,
    /// svlm's own synth output (`svlm_synth::record::SpatialRecord` per line).
    SynthJsonl,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    /// A data file, or a synthesis output folder (`svlm synth --out`: its finished shards, JSONL or Parquet).
    pub path: PathBuf,
    #[serde(default = "default_format")]
    pub format: SourceFormat,
    /// Folder image paths are relative to; defaults to the data file's folder (a synthesis folder itself).
    #[serde(default)]
    pub image_root: Option<PathBuf>,
    /// Mixture weight (normalized over the sources); 0 keeps the source for validation only.
    pub weight: f64,
    /// Use only the first N valid rows.
    #[serde(default)]
    pub max_samples: Option<usize>,
    /// Epochs before the source counts as exhausted (default: unlimited with `stop = "steps"`, else 1).
    #[serde(default)]
    pub epochs: Option<u32>,
    /// Rows held out (seeded choice) for the validation loss of this source.
    #[serde(default)]
    pub holdout: usize,
}

fn default_format() -> SourceFormat {
    SourceFormat::Auto
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub sources: Vec<SourceConfig>,
    #[serde(default = "default_ratio_by")]
    pub ratio_by: RatioBy,
    #[serde(default = "default_stop")]
    pub stop: StopRule,
    /// The run fails when a source's skipped (malformed / missing image) fraction passes this.
    #[serde(default = "default_max_bad_fraction")]
    pub max_bad_fraction: f64,
    /// Group samples of similar length inside a window of this many batches (0 = off) to cut padding.
    #[serde(default)]
    pub length_group_batches: usize,
    /// Rows per source encoded at start to estimate tokens per sample (for `ratio_by = "tokens"`).
    #[serde(default = "default_token_probe")]
    pub token_probe_rows: usize,
}

fn default_ratio_by() -> RatioBy {
    RatioBy::Samples
}
fn default_stop() -> StopRule {
    StopRule::Steps
}
fn default_max_bad_fraction() -> f64 {
    0.01
}
fn default_token_probe() -> usize {
    256
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Train the connector only (vision and language frozen): LLaVA's stage 1.
    Align,
    /// Connector + language model; vision tower frozen (the SpatialVLM default).
    Finetune,
    /// Everything trainable, including the image encoder.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    /// bf16 weights and activations on GPU devices (Burn has no autocast; see `train.rs`). Ignored on CPU.
    Bf16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default = "default_stage")]
    pub stage: Stage,
    /// Optimizer steps (required with `data.stop = "steps"`; a cap otherwise).
    #[serde(default)]
    pub steps: Option<u64>,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "default_one")]
    pub grad_accum: usize,
    /// `cpu`, `cuda`, `cuda:1`, `vulkan`; resolved by `svlm_model::resolve_device`. A comma-separated list
    /// (`cuda:0,cuda:1`) trains data-parallel: each device takes its own micro-batches of every step, and their
    /// gradients are summed on the first device, which holds the optimizer (see [`TrainConfig::devices`]).
    /// `cpu,cpu` splits the cores into that many workers, each on a thread pool of its own: small models train
    /// fastest with one worker per core (and `batch_size` divided by the workers, for the same step).
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default = "default_precision")]
    pub precision: Precision,
    /// Sequence packing: several samples share a row of `pack_len` tokens, each attending only to itself, with
    /// positions restarting at every sample. Every micro-batch has the same shape (`pack_rows x pack_len`), so
    /// padding stays small and GPU kernels compile once. `false` pads each micro-batch of `batch_size` samples to its
    /// longest sample instead.
    #[serde(default = "default_true")]
    pub packing: bool,
    /// Tokens per packed row (default `model.max_seq_len`, so any sample fits a row). Samples longer than a row
    /// are truncated to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_len: Option<usize>,
    /// Packed rows per micro-batch. Default: enough rows for `batch_size` samples of the mean probed length
    /// (`ceil(batch_size * mean_tokens / pack_len)`), so `batch_size` keeps meaning about that many samples per
    /// micro-batch; the exact count varies from batch to batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_rows: Option<usize>,
}

impl TrainConfig {
    /// Tokens per packed row.
    pub fn pack_len(&self, max_seq_len: usize) -> usize {
        self.pack_len.unwrap_or(max_seq_len)
    }
}

fn default_stage() -> Stage {
    Stage::Finetune
}
fn default_batch() -> usize {
    8
}
fn default_one() -> usize {
    1
}
fn default_device() -> String {
    "cpu".to_string()
}
fn default_precision() -> Precision {
    Precision::F32
}

impl TrainConfig {
    /// The devices of the run, in order; the first holds the model and the optimizer. One optimizer step takes
    /// `batch_size * grad_accum * devices().len()` samples.
    pub fn devices(&self) -> Vec<String> {
        self.device
            .split(',')
            .map(|d| d.trim().to_string())
            .collect()
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            stage: default_stage(),
            steps: None,
            batch_size: default_batch(),
            grad_accum: 1,
            device: default_device(),
            precision: default_precision(),
            packing: true,
            pack_len: None,
            pack_rows: None,
        }
    }
}

/// Explicit freezing; each flag set here overrides what `train.stage` implies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    #[serde(default)]
    pub vision: Option<bool>,
    #[serde(default)]
    pub connector: Option<bool>,
    #[serde(default)]
    pub language: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Cosine,
    Linear,
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    /// Per-part learning rates; default to `lr`.
    #[serde(default)]
    pub lr_vision: Option<f64>,
    #[serde(default)]
    pub lr_connector: Option<f64>,
    #[serde(default)]
    pub lr_language: Option<f64>,
    /// Decoupled weight decay, never applied to norms and biases (1-D parameters).
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub warmup_steps: u64,
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// The schedule decays to `lr * min_lr_ratio`.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Global-norm gradient clipping (0 = off).
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_schedule() -> Schedule {
    Schedule::Cosine
}
fn default_clip() -> f64 {
    1.0
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            lr_vision: None,
            lr_connector: None,
            lr_language: None,
            weight_decay: 0.0,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            warmup_steps: 0,
            schedule: default_schedule(),
            min_lr_ratio: 0.0,
            max_grad_norm: default_clip(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Write scalars every N optimizer steps.
    #[serde(default = "default_one_u64")]
    pub every: u64,
    #[serde(default = "default_true")]
    pub tensorboard: bool,
    #[serde(default = "default_true")]
    pub progress: bool,
}

fn default_one_u64() -> u64 {
    1
}
fn default_true() -> bool {
    true
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            every: 1,
            tensorboard: true,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Save every N optimizer steps (0 = only at the end).
    #[serde(default)]
    pub every: u64,
    /// Keep the last K checkpoints (older ones are deleted after a new one is complete).
    #[serde(default = "default_keep")]
    pub keep_last: usize,
}

fn default_keep() -> usize {
    2
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: 0,
            keep_last: default_keep(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Validation loss per source every N optimizer steps (0 = only at the end).
    #[serde(default)]
    pub every: u64,
    /// Batch size of validation forwards (defaults to `train.batch_size`).
    #[serde(default)]
    pub batch_size: Option<usize>,
}

impl RunConfig {
    /// Load a config file, follow its `extends` chain, apply `key.path=value` overrides, check schema and values.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut seen = HashSet::new();
        let mut table = load_table(path, &mut seen)?;
        for item in overrides {
            apply_override(&mut table, item)?;
        }
        Self::from_table(table, &path.display().to_string(), Path::new("."))
    }

    /// Parse a config from TOML text (no `extends`), resolving relative paths against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        Self::from_table(table, "<string>", base_dir)
    }

    /// Apply overrides to an already resolved config (sweeps do this per grid point).
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = self.to_toml()?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: PathBuf::from("<resolved>"),
            message: e.to_string(),
        })?;
        for item in overrides {
            apply_override(&mut table, item)?;
        }
        Self::from_table(table, "<resolved + overrides>", Path::new("."))
    }

    fn from_table(
        mut table: toml::Table,
        origin: &str,
        base_dir: &Path,
    ) -> Result<Self, ConfigError> {
        table.remove("extends");
        let text = toml::to_string(&table).map_err(|e| ConfigError::Schema {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut config: RunConfig = toml::from_str(&text).map_err(|e| ConfigError::Schema {
            origin: origin.to_string(),
            message: describe_toml_error(&e, &text),
        })?;
        config.absolutize(base_dir);
        config.validate()?;
        Ok(config)
    }

    /// The resolved config as TOML (saved as `config.toml` in the run directory).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Schema {
            origin: "<resolved>".to_string(),
            message: e.to_string(),
        })
    }

    fn absolutize(&mut self, base_dir: &Path) {
        let base = if base_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base_dir
        };
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for source in &mut self.data.sources {
            fix(&mut source.path);
            if let Some(root) = source.image_root.as_mut() {
                fix(root);
            }
        }
        if let Some(p) = self.model.config.as_mut() {
            fix(p);
        }
        if let Some(p) = self.model.tokenizer.as_mut() {
            fix(p);
        }
        if let Some(p) = self.model.pretrained.as_mut() {
            // A local folder spelled relative to the config; hub ids (owner/name) stay as they are.
            let candidate = base.join(&*p);
            if Path::new(p.as_str()).is_relative() && candidate.is_dir() {
                *p = candidate.display().to_string();
            }
        }
    }

    /// Check values the schema cannot express; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                message,
            })
        };
        match (&self.model.pretrained, &self.model.config) {
            (None, None) => {
                return bad(
                    "model",
                    "set `model.pretrained` (hub id or folder) or `model.config` (HF config.json)"
                        .into(),
                );
            }
            (Some(_), Some(_)) => {
                return bad(
                    "model",
                    "set only one of `model.pretrained` and `model.config`".into(),
                );
            }
            _ => {}
        }
        if self.model.max_seq_len < 2 {
            return bad(
                "model.max_seq_len",
                format!("must be >= 2, got {}", self.model.max_seq_len),
            );
        }
        if self.data.sources.is_empty() {
            return bad("data.sources", "at least one source is needed".into());
        }
        let mut names = HashSet::new();
        for (i, s) in self.data.sources.iter().enumerate() {
            let key = format!("data.sources[{i}] ({})", s.name);
            if s.name.is_empty() || !names.insert(s.name.clone()) {
                return bad(
                    &format!("data.sources[{i}].name"),
                    format!("names must be unique and non-empty, got `{}`", s.name),
                );
            }
            if !(s.weight.is_finite() && s.weight >= 0.0) {
                return bad(
                    &format!("{key}.weight"),
                    format!("must be a finite number >= 0, got {}", s.weight),
                );
            }
            if s.max_samples == Some(0) {
                return bad(
                    &format!("{key}.max_samples"),
                    "must be >= 1 when set".into(),
                );
            }
            if s.epochs == Some(0) {
                return bad(&format!("{key}.epochs"), "must be >= 1 when set".into());
            }
        }
        if self.data.sources.iter().all(|s| s.weight == 0.0) {
            return bad(
                "data.sources.weight",
                "at least one source needs a weight > 0".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.data.max_bad_fraction) {
            return bad(
                "data.max_bad_fraction",
                format!("must be in [0, 1], got {}", self.data.max_bad_fraction),
            );
        }
        if self.data.stop == StopRule::Steps && self.train.steps.is_none() {
            return bad("train.steps", "required when data.stop = \"steps\"".into());
        }
        if self.train.steps == Some(0) {
            return bad("train.steps", "must be >= 1".into());
        }
        if self.train.batch_size == 0 {
            return bad("train.batch_size", "must be >= 1".into());
        }
        if self.train.grad_accum == 0 {
            return bad("train.grad_accum", "must be >= 1".into());
        }
        if let Some(len) = self.train.pack_len
            && len < 2
        {
            return bad("train.pack_len", format!("must be >= 2, got {len}"));
        }
        if self.train.pack_rows == Some(0) {
            return bad("train.pack_rows", "must be >= 1 when set".into());
        }
        let devices = self.train.devices();
        if devices.iter().any(String::is_empty) {
            return bad(
                "train.device",
                format!("empty device name in `{}`", self.train.device),
            );
        }
        let mut seen = HashSet::new();
        for d in &devices {
            // Two replicas on one accelerator only halve its batch; on the CPU it is how tests check the
            // data-parallel path.
            let cpu = d.eq_ignore_ascii_case("cpu") || d.eq_ignore_ascii_case("flex");
            if !cpu && !seen.insert(d.to_ascii_lowercase()) {
                return bad(
                    "train.device",
                    format!("device `{d}` is listed twice in `{}`", self.train.device),
                );
            }
        }
        let o = &self.optim;
        for (key, v) in [
            ("optim.lr", Some(o.lr)),
            ("optim.lr_vision", o.lr_vision),
            ("optim.lr_connector", o.lr_connector),
            ("optim.lr_language", o.lr_language),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return bad(key, format!("must be a finite number >= 0, got {v}"));
            }
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return bad(
                "optim.weight_decay",
                format!("must be >= 0, got {}", o.weight_decay),
            );
        }
        for (key, v) in [("optim.beta1", o.beta1), ("optim.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(key, format!("must be in [0, 1), got {v}"));
            }
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return bad("optim.eps", format!("must be > 0, got {}", o.eps));
        }
        if !(0.0..=1.0).contains(&o.min_lr_ratio) {
            return bad(
                "optim.min_lr_ratio",
                format!("must be in [0, 1], got {}", o.min_lr_ratio),
            );
        }
        if !(o.max_grad_norm.is_finite() && o.max_grad_norm >= 0.0) {
            return bad(
                "optim.max_grad_norm",
                format!("must be >= 0 (0 = off), got {}", o.max_grad_norm),
            );
        }
        if self.log.every == 0 {
            return bad("log.every", "must be >= 1".into());
        }
        if self.checkpoint.keep_last == 0 {
            return bad("checkpoint.keep_last", "must be >= 1".into());
        }
        if self.eval.batch_size == Some(0) {
            return bad("eval.batch_size", "must be >= 1".into());
        }
        Ok(())
    }

    /// Which parts train, after `train.stage` and the explicit `freeze.*` flags.
    pub fn trainable_parts(&self) -> TrainableParts {
        let (vision, connector, language) = match self.train.stage {
            Stage::Align => (false, true, false),
            Stage::Finetune => (false, true, true),
            Stage::Full => (true, true, true),
        };
        TrainableParts {
            vision: self.freeze.vision.map_or(vision, |f| !f),
            connector: self.freeze.connector.map_or(connector, |f| !f),
            language: self.freeze.language.map_or(language, |f| !f),
        }
    }

    /// Epochs after which a source counts as exhausted (`None` = never).
    pub fn source_epochs(&self, source: &SourceConfig) -> Option<u32> {
        match (source.epochs, self.data.stop) {
            (Some(e), _) => Some(e),
            (None, StopRule::Steps) => None,
            (None, _) => Some(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainableParts {
    pub vision: bool,
    pub connector: bool,
    pub language: bool,
}

impl TrainableParts {
    /// Whether `part` trains.
    pub fn includes(self, part: crate::model::Part) -> bool {
        match part {
            crate::model::Part::Vision => self.vision,
            crate::model::Part::Connector => self.connector,
            crate::model::Part::Language => self.language,
        }
    }
}

fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    // The span points into the merged document; show the offending line so the key is visible even for type errors.
    let mut message = e.message().to_string();
    if let Some(span) = e.span() {
        let start = text[..span.start.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let end = text[span.start.min(text.len())..]
            .find('\n')
            .map_or(text.len(), |i| span.start + i);
        let line = text[start..end].trim();
        // The nearest table header above the line gives the section.
        let header = text[..start]
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('['))
            .map(str::trim);
        match header {
            Some(h) => message = format!("{message} (at `{line}` in {h})"),
            None => message = format!("{message} (at `{line}`)"),
        }
    }
    message
}

fn load_table(path: &Path, seen: &mut HashSet<PathBuf>) -> Result<toml::Table, ConfigError> {
    let canonical = std::fs::canonicalize(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !seen.insert(canonical.clone()) {
        return Err(ConfigError::ExtendsCycle {
            path: path.to_path_buf(),
            again: canonical,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Toml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    absolutize_table(&mut table, path.parent().unwrap_or(Path::new(".")));
    let Some(extends) = table.remove("extends") else {
        return Ok(table);
    };
    let toml::Value::String(parent) = extends else {
        return Err(ConfigError::ExtendsType {
            path: path.to_path_buf(),
            found: extends.type_str().to_string(),
        });
    };
    let parent_path = path.parent().unwrap_or(Path::new(".")).join(parent);
    let mut base = load_table(&parent_path, seen)?;
    merge(&mut base, table);
    Ok(base)
}

/// Make the path-valued keys of one file's table absolute against that file's directory.
fn absolutize_table(table: &mut toml::Table, dir: &Path) {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let fix = |v: &mut toml::Value, only_if_dir: bool| {
        if let toml::Value::String(s) = v
            && Path::new(s.as_str()).is_relative()
        {
            let candidate = dir.join(s.as_str());
            if !only_if_dir || candidate.is_dir() {
                *s = candidate.display().to_string();
            }
        }
    };
    if let Some(toml::Value::Table(model)) = table.get_mut("model") {
        for key in ["config", "tokenizer"] {
            if let Some(v) = model.get_mut(key) {
                fix(v, false);
            }
        }
        // A hub id (owner/name) stays as it is; only an existing local folder is made absolute.
        if let Some(v) = model.get_mut("pretrained") {
            fix(v, true);
        }
    }
    if let Some(toml::Value::Table(data)) = table.get_mut("data")
        && let Some(toml::Value::Array(sources)) = data.get_mut("sources")
    {
        for source in sources {
            if let toml::Value::Table(s) = source {
                for key in ["path", "image_root"] {
                    if let Some(v) = s.get_mut(key) {
                        fix(v, false);
                    }
                }
            }
        }
    }
}

/// Deep-merge tables; arrays (e.g. `data.sources`) are replaced whole.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `a.b.c=value`: the value is read as a TOML literal (number, bool, string, array) and falls back to a bare
/// string; the schema then types it. An array segment is an index or the `name` of an element
/// (`data.sources.spatial.weight=0.5`).
pub fn apply_override(table: &mut toml::Table, item: &str) -> Result<(), ConfigError> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| ConfigError::OverrideSyntax(item.to_string()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(ConfigError::OverrideSyntax(item.to_string()));
    }
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let segments: Vec<&str> = key.split('.').collect();
    let mut root = toml::Value::Table(std::mem::take(table));
    let result =
        set_path(&mut root, &segments, 0, value).map_err(|message| ConfigError::OverridePath {
            key: key.to_string(),
            message,
        });
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

fn set_path(
    node: &mut toml::Value,
    segments: &[&str],
    depth: usize,
    value: toml::Value,
) -> Result<(), String> {
    let seg = segments[depth];
    let last = depth + 1 == segments.len();
    match node {
        toml::Value::Table(t) => {
            if last {
                t.insert(seg.to_string(), value);
                return Ok(());
            }
            let child = t
                .entry(seg.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            set_path(child, segments, depth + 1, value)
        }
        toml::Value::Array(items) => {
            let index = match seg.parse::<usize>() {
                Ok(i) => i,
                Err(_) => items
                    .iter()
                    .position(|v| v.get("name").and_then(|n| n.as_str()) == Some(seg))
                    .ok_or_else(|| {
                        format!(
                            "no element named `{seg}` in `{}`",
                            segments[..depth].join(".")
                        )
                    })?,
            };
            let len = items.len();
            let item = items.get_mut(index).ok_or_else(|| {
                format!(
                    "index {index} is out of range (`{}` has {len} elements)",
                    segments[..depth].join(".")
                )
            })?;
            if last {
                *item = value;
                return Ok(());
            }
            set_path(item, segments, depth + 1, value)
        }
        other => Err(format!(
            "`{}` is a {}, not a table",
            segments[..depth].join("."),
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    const BASE: &str = r#"
        seed = 3
        [model]
        config = "tiny/config.json"
        [train]
        steps = 10
        batch_size = 4
        [optim]
        lr = 1e-3
        [[data.sources]]
        name = "general"
        path = "general.jsonl"
        weight = 0.9
        [[data.sources]]
        name = "spatial"
        path = "spatial.jsonl"
        weight = 0.1
    "#;

    #[test]
    fn extends_merges_and_overrides_are_typed() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "base.toml", BASE);
        let child = write(
            dir.path(),
            "child.toml",
            "extends = \"base.toml\"\nname = \"child\"\n[optim]\nwarmup_steps = 5\n",
        );
        let c = RunConfig::load(
            &child,
            &[
                "optim.lr=2e-5".into(),
                "data.sources.spatial.weight=0.5".into(),
                "train.device=cuda:1".into(),
            ],
        )
        .expect("load");
        assert_eq!(c.name, "child");
        assert_eq!(c.seed, 3);
        assert_eq!(c.optim.lr, 2e-5);
        assert_eq!(c.optim.warmup_steps, 5);
        assert_eq!(c.data.sources[1].weight, 0.5);
        assert_eq!(c.train.device, "cuda:1");
        assert!(
            c.data.sources[0].path.is_absolute()
                && c.data.sources[0].path.ends_with("general.jsonl")
        );
        // The resolved config round-trips.
        let again =
            RunConfig::from_toml_str(&c.to_toml().expect("toml"), Path::new("/")).expect("reparse");
        assert_eq!(again, c);
        assert_eq!(
            c.trainable_parts(),
            TrainableParts {
                vision: false,
                connector: true,
                language: true
            }
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = write(dir.path(), "base.toml", BASE);
        let err = RunConfig::load(&base, &["optim.lrr=1".into()])
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("lrr"), "{err}");
        let err = RunConfig::load(&base, &["train.steps=many".into()])
            .expect_err("bad type")
            .to_string();
        assert!(err.contains("steps"), "{err}");
        let err = RunConfig::load(&base, &["optim.beta2=1.5".into()])
            .expect_err("bad value")
            .to_string();
        assert!(err.contains("optim.beta2"), "{err}");
        let err = RunConfig::load(&base, &["data.sources.ocr.weight=1".into()])
            .expect_err("no such source")
            .to_string();
        assert!(err.contains("ocr"), "{err}");
        let err = RunConfig::load(&base, &["train.stage=warmup".into()])
            .expect_err("bad enum")
            .to_string();
        assert!(err.contains("warmup") && err.contains("stage"), "{err}");
        let err = RunConfig::load(&base, &["data.sources.0.weight=-1".into()])
            .expect_err("negative")
            .to_string();
        assert!(err.contains("weight"), "{err}");
    }

    #[test]
    fn extends_cycles_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(dir.path(), "a.toml", "extends = \"b.toml\"\n");
        write(dir.path(), "b.toml", "extends = \"a.toml\"\n");
        assert!(matches!(
            RunConfig::load(&a, &[]),
            Err(ConfigError::ExtendsCycle { .. })
        ));
    }

    #[test]
    fn stages_and_explicit_freeze_flags() {
        let mut c = RunConfig::from_toml_str(BASE, Path::new("/data")).expect("parse");
        c.train.stage = Stage::Align;
        assert_eq!(
            c.trainable_parts(),
            TrainableParts {
                vision: false,
                connector: true,
                language: false
            }
        );
        c.train.stage = Stage::Full;
        c.freeze.language = Some(true);
        assert_eq!(
            c.trainable_parts(),
            TrainableParts {
                vision: true,
                connector: true,
                language: false
            }
        );
    }

    #[test]
    fn device_lists_for_data_parallel() {
        let mut c = RunConfig::from_toml_str(BASE, Path::new("/data")).expect("parse");
        c.train.device = "cuda:0, cuda:1".into();
        assert_eq!(c.train.devices(), vec!["cuda:0", "cuda:1"]);
        c.validate().expect("two GPUs");
        c.train.device = "cpu,cpu".into();
        c.validate()
            .expect("two CPU replicas (how tests run the data-parallel path)");
        c.train.device = "cuda:1,cuda:1".into();
        let err = c.validate().expect_err("same GPU twice").to_string();
        assert!(
            err.contains("train.device") && err.contains("twice"),
            "{err}"
        );
        c.train.device = "cuda:0,".into();
        let err = c.validate().expect_err("empty entry").to_string();
        assert!(err.contains("empty device name"), "{err}");
    }

    #[test]
    fn shipped_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for entry in std::fs::read_dir(&root).expect("configs dir").flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "toml")
                && p.file_name().is_some_and(|n| n != "base.toml")
            {
                RunConfig::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
        }
        for entry in std::fs::read_dir(root.join("sweeps"))
            .expect("sweeps dir")
            .flatten()
        {
            let sweep = crate::sweep::SweepConfig::load(&entry.path()).expect("sweep parses");
            for point in sweep.points() {
                sweep
                    .point_config(&point)
                    .unwrap_or_else(|e| panic!("{}: {e}", point.label));
            }
        }
    }
}
