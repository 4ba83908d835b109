//! Hugging Face folders: `config.json` + `model.safetensors` (or a sharded
//! `model.safetensors.index.json`) in, the same layout out. Module paths are HF names (one
//! table for both directions; LLaVA's alternative spellings are mapped in [`canonical_name`]).
//! Any missing, unexpected or wrong-shaped tensor is an error that lists them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::{DType, Device, TensorData, bf16, f16};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::device::WeightDType;
use crate::vlm::{Family, ModelConfig, Vlm};

/// A model read from a folder, with where it came from.
pub struct LoadedModel {
    pub model: Vlm,
    pub config: ModelConfig,
    pub dir: PathBuf,
}

/// One tensor of a checkpoint, read lazily from a memory-mapped file.
#[derive(Clone)]
pub struct CheckpointTensor {
    pub file: PathBuf,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    map: Arc<memmap2::Mmap>,
    start: usize,
    end: usize,
}

impl CheckpointTensor {
    pub fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }

    /// The values converted to `target` (bit-exact when the file already holds `target`).
    pub fn to_data(&self, name: &str, target: WeightDType) -> anyhow::Result<TensorData> {
        let bytes = self.bytes();
        let shape = self.shape.clone();
        let halves = |b: &[u8]| -> Vec<u16> {
            b.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        let as_f32: Vec<f32> = match (self.dtype, target) {
            (Dtype::BF16, WeightDType::Bf16) => {
                let v: Vec<bf16> = halves(bytes).into_iter().map(bf16::from_bits).collect();
                return Ok(TensorData::new(v, shape));
            }
            (Dtype::F16, WeightDType::F16) => {
                let v: Vec<f16> = halves(bytes).into_iter().map(f16::from_bits).collect();
                return Ok(TensorData::new(v, shape));
            }
            (Dtype::F32, _) => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            (Dtype::BF16, _) => halves(bytes)
                .into_iter()
                .map(|h| bf16::from_bits(h).to_f32())
                .collect(),
            (Dtype::F16, _) => halves(bytes)
                .into_iter()
                .map(|h| f16::from_bits(h).to_f32())
                .collect(),
            (Dtype::F64, _) => bytes
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            (other, _) => bail!(
                "tensor `{name}` in {} has dtype {other:?}; only F32/BF16/F16/F64 weights are supported",
                self.file.display()
            ),
        };
        Ok(match target {
            WeightDType::F32 => TensorData::new(as_f32, shape),
            WeightDType::Bf16 => TensorData::new(
                as_f32.into_iter().map(bf16::from_f32).collect::<Vec<_>>(),
                shape,
            ),
            WeightDType::F16 => TensorData::new(
                as_f32.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
                shape,
            ),
        })
    }
}

/// Reads the tensor index of one `.safetensors` file (data stays on disk, memory-mapped).
pub fn read_safetensors_file(path: &Path) -> anyhow::Result<BTreeMap<String, CheckpointTensor>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the file is opened read-only and only read; a concurrent writer would be a user error
    // that safetensors' header validation below turns into an error rather than UB in our code.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("mapping {}", path.display()))?;
    let (header_len, metadata) = SafeTensors::read_metadata(&map)
        .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    let base = 8 + header_len;
    let map = Arc::new(map);
    let mut out = BTreeMap::new();
    for (name, info) in metadata.tensors() {
        let (start, end) = info.data_offsets;
        if base + end > map.len() {
            bail!(
                "{}: tensor `{name}` points past the end of the file",
                path.display()
            );
        }
        out.insert(
            name,
            CheckpointTensor {
                file: path.to_path_buf(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                map: map.clone(),
                start: base + start,
                end: base + end,
            },
        );
    }
    Ok(out)
}

/// All tensors of a folder: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
pub fn read_checkpoint_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, CheckpointTensor>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return read_safetensors_file(&single);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let shards = crate::hub::index_shards(&index)?;
        let mut all = BTreeMap::new();
        for shard in &shards {
            let tensors = read_safetensors_file(&dir.join(shard))?;
            for (name, t) in tensors {
                if all.insert(name.clone(), t).is_some() {
                    bail!(
                        "tensor `{name}` appears in more than one shard of {}",
                        dir.display()
                    );
                }
            }
        }
        return Ok(all);
    }
    bail!(
        "{}: no model.safetensors or model.safetensors.index.json found",
        dir.display()
    )
}

/// Maps a checkpoint key to this crate's module path, or `None` for buffers HF never loads
/// (rotary `inv_freq`, `position_ids`) and parts the model does not have (SigLIP's pooling head
/// in a LLaVA tower, a tied `lm_head`).
pub fn canonical_name(family: Family, key: &str, tied_head: bool) -> Option<String> {
    if key.ends_with("rotary_emb.inv_freq") || key.ends_with("embeddings.position_ids") {
        return None;
    }
    let name = match family {
        Family::Llava => {
            let mut k = key.to_string();
            for (from, to) in [
                ("model.language_model.", "language_model.model."),
                ("model.vision_tower.", "vision_tower."),
                ("model.multi_modal_projector.", "multi_modal_projector."),
            ] {
                if let Some(rest) = k.strip_prefix(from) {
                    k = format!("{to}{rest}");
                }
            }
            if k == "lm_head.weight" {
                k = "language_model.lm_head.weight".into();
            }
            if let Some(rest) = k.strip_prefix("vision_tower.")
                && !rest.starts_with("vision_model.")
            {
                k = format!("vision_tower.vision_model.{rest}");
            }
            if k.starts_with("vision_tower.vision_model.head.") {
                return None;
            }
            if tied_head && k == "language_model.lm_head.weight" {
                return None;
            }
            k
        }
        Family::Qwen2Vl => {
            let k = crate::qwen2_vl::canonical_name(key);
            if tied_head && k == "lm_head.weight" {
                return None;
            }
            k
        }
        Family::Idefics3 | Family::Llama => {
            if tied_head && key == "lm_head.weight" {
                return None;
            }
            key.to_string()
        }
    };
    Some(name)
}

/// The key transformers 5.23 `save_pretrained` writes for a module path of a model of `config` (inverse of
/// [`canonical_name`]): LLaVA's tower without the `vision_model.` level, Qwen2-VL's merger MLP as `mlp.0`/`mlp.2`,
/// Qwen3-VL under `model.visual.` / `model.language_model.`, all else as is.
pub fn export_name(config: &ModelConfig, path: &str) -> String {
    let family = config.family();
    if let ModelConfig::Qwen2Vl(c) = config {
        return crate::qwen2_vl::export_name(c.version(), path);
    }
    if family == Family::Llava
        && let Some(rest) = path.strip_prefix("vision_tower.vision_model.")
    {
        return format!("vision_tower.{rest}");
    }
    path.to_string()
}

fn has_tied_head(model: &Vlm) -> bool {
    match model {
        Vlm::Idefics3(m) => m.lm_head.is_none(),
        Vlm::Llava(m) => m.language_model.lm_head.is_none(),
        Vlm::Qwen2Vl(m) => m.lm_head.is_none(),
        Vlm::Llama(m) => m.lm_head.is_none(),
    }
}

/// The parameters a module expects: module path -> shape.
pub fn expected_shapes<M: ModuleSnapshot>(model: &M) -> BTreeMap<String, Vec<usize>> {
    model
        .collect(None, None, true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.to_vec()))
        .collect()
}

/// Loads checkpoint tensors into `model`, failing (with every problem listed) unless the
/// names and shapes match exactly. `source` names the checkpoint in messages.
pub fn apply_checkpoint(
    model: &mut Vlm,
    tensors: &BTreeMap<String, CheckpointTensor>,
    dtype: WeightDType,
    source: &str,
) -> anyhow::Result<()> {
    let config = model.config();
    let family = config.family();
    let tied = has_tied_head(model);
    apply_named_checkpoint(
        model,
        tensors,
        dtype,
        source,
        &format!("{family} model"),
        |key| canonical_name(family, key, tied),
        |path| export_name(&config, path),
    )
}

/// Loads checkpoint tensors into any module whose parameters a checkpoint names: `module_path` maps a
/// checkpoint key to a module path (`None`: not a parameter, skipped), `checkpoint_name` a module path back to
/// the key it should have had (for the list of missing tensors). Fails, listing every missing, unexpected and
/// wrong-shaped tensor, unless names and shapes match exactly; `what` names the model in that message.
pub fn apply_named_checkpoint<M: ModuleSnapshot>(
    model: &mut M,
    tensors: &BTreeMap<String, CheckpointTensor>,
    dtype: WeightDType,
    source: &str,
    what: &str,
    module_path: impl Fn(&str) -> Option<String>,
    checkpoint_name: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    let expected = expected_shapes(model);
    let mut by_path: BTreeMap<String, (&str, &CheckpointTensor)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut wrong_shape = Vec::new();
    let mut wrong_paths = BTreeSet::new();
    for (key, t) in tensors {
        let Some(path) = module_path(key) else {
            continue;
        };
        match expected.get(&path) {
            None => unexpected.push(format!("{key} {:?}", t.shape)),
            Some(shape) if *shape != t.shape => {
                wrong_shape.push(format!(
                    "{key}: checkpoint {:?}, model {:?}",
                    t.shape, shape
                ));
                wrong_paths.insert(path);
            }
            Some(_) => {
                if let Some((other, _)) = by_path.insert(path.clone(), (key, t)) {
                    bail!("{source}: `{other}` and `{key}` both map to parameter `{path}`");
                }
            }
        }
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|(p, _)| !by_path.contains_key(*p) && !wrong_paths.contains(*p))
        .map(|(p, s)| format!("{} {s:?}", checkpoint_name(p)))
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty()) {
        let mut msg = format!("{source} does not match the {what} its config describes:");
        for (title, list) in [
            (
                "missing tensors (expected by the model, absent from the checkpoint)",
                &missing,
            ),
            (
                "unexpected tensors (in the checkpoint, not in the model)",
                &unexpected,
            ),
            ("wrong shapes", &wrong_shape),
        ] {
            if !list.is_empty() {
                msg.push_str(&format!("\n  {title}: {}", list.len()));
                for item in list.iter().take(50) {
                    msg.push_str(&format!("\n    {item}"));
                }
                if list.len() > 50 {
                    msg.push_str(&format!("\n    ... and {} more", list.len() - 50));
                }
            }
        }
        bail!(msg);
    }
    let mut packs = Vec::with_capacity(by_path.len());
    for (path, (key, t)) in &by_path {
        let data = t.to_data(key, dtype)?;
        packs.push(burn::store::bridge::from_data(data, path.clone(), None));
    }
    let result = model.apply(packs, None, None, true);
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        bail!(
            "{source}: applying weights failed: errors {errors:?}, missing {missing:?}, unused {:?}",
            result.unused
        );
    }
    Ok(())
}

/// Reads `config.json` of a folder as raw JSON.
pub fn read_config_json(dir: &Path) -> anyhow::Result<Value> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Loads an HF folder with weights in the device's default float precision.
pub fn load_pretrained(dir: impl AsRef<Path>, device: &Device) -> anyhow::Result<LoadedModel> {
    load_pretrained_as(dir, device, WeightDType::of_device(device))
}

/// Loads an HF folder, casting weights to `dtype`.
pub fn load_pretrained_as(
    dir: impl AsRef<Path>,
    device: &Device,
    dtype: WeightDType,
) -> anyhow::Result<LoadedModel> {
    let dir = dir.as_ref();
    let value = read_config_json(dir)?;
    let config = ModelConfig::from_json(&value)
        .with_context(|| format!("in {}", dir.join("config.json").display()))?;
    let mut model = Vlm::from_config(&config, device)?;
    let tensors = read_checkpoint_dir(dir)?;
    apply_checkpoint(&mut model, &tensors, dtype, &dir.display().to_string())?;
    Ok(LoadedModel {
        model,
        config,
        dir: dir.to_path_buf(),
    })
}

/// Loads weights from one safetensors file into an existing model (checkpoint resume).
pub fn load_safetensors(model: &mut Vlm, path: &Path) -> anyhow::Result<()> {
    let tensors = read_safetensors_file(path)?;
    let dtype = model
        .collect(None, None, true)
        .first()
        .map(|t| match t.dtype {
            DType::BF16 => WeightDType::Bf16,
            DType::F16 => WeightDType::F16,
            _ => WeightDType::F32,
        })
        .unwrap_or_default();
    apply_checkpoint(model, &tensors, dtype, &path.display().to_string())
}

struct OwnedView {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &OwnedView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The model's parameters as safetensors bytes with HF names, in `dtype`.
pub fn safetensors_bytes(model: &Vlm, dtype: WeightDType) -> anyhow::Result<Vec<u8>> {
    let config = model.config();
    let mut views = BTreeMap::new();
    for t in model.collect(None, None, true) {
        let name = export_name(&config, &t.name);
        let shape = t.shape.to_vec();
        let data = burn::store::bridge::into_data(t)
            .map_err(|e| anyhow::anyhow!("reading parameter `{name}`: {e:?}"))?;
        let (st_dtype, bytes) = match dtype {
            WeightDType::F32 => (Dtype::F32, data.convert::<f32>().into_bytes().to_vec()),
            WeightDType::Bf16 => (Dtype::BF16, data.convert::<bf16>().into_bytes().to_vec()),
            WeightDType::F16 => (Dtype::F16, data.convert::<f16>().into_bytes().to_vec()),
        };
        views.insert(
            name,
            OwnedView {
                dtype: st_dtype,
                shape,
                data: bytes,
            },
        );
    }
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views.iter().map(|(k, v)| (k.as_str(), v)), Some(metadata))
        .context("serializing safetensors")
}

pub use svlm_io::write_atomic;

/// Saves the parameters alone (HF names) — the checkpoint format of training runs.
pub fn save_safetensors(model: &Vlm, path: &Path, dtype: WeightDType) -> anyhow::Result<()> {
    Ok(write_atomic(path, &safetensors_bytes(model, dtype)?)?)
}

/// Tokenizer and processor files copied along on export when the source folder has them.
pub const SIDE_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
    "processor_config.json",
    "preprocessor_config.json",
];

/// Options of [`export_hf`].
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    pub dtype: WeightDType,
    /// Folder to copy tokenizer/processor files (and `generation_config.json`) from.
    pub side_files_from: Option<PathBuf>,
    /// Replace `out_dir` if it exists (the old one is removed only after the new one is in place).
    pub overwrite: bool,
}

/// Writes an HF folder (`config.json`, `model.safetensors`, `generation_config.json`, tokenizer
/// and processor files) that `from_pretrained` loads. Built in a temp folder beside `out_dir`
/// and renamed into place, so a crash never leaves a half-written model.
pub fn export_hf(model: &Vlm, out_dir: &Path, options: &ExportOptions) -> anyhow::Result<()> {
    let parent = out_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    if out_dir.exists() && !options.overwrite {
        bail!(
            "{} already exists (`ExportOptions::overwrite`, `svlm export --overwrite`, replaces it)",
            out_dir.display()
        );
    }
    let tmp = svlm_io::temp_dir_in(parent, ".export-")?;
    // Each file is flushed to disk before the folder is renamed into place; an error (a full or read-only disk)
    // names the file and the export, and dropping `tmp` removes what was written.
    let write = |name: &str, bytes: &[u8]| {
        svlm_io::write_atomic(&tmp.path().join(name), bytes)
            .with_context(|| format!("exporting to {}", out_dir.display()))
    };
    let config = model.config();
    let mut config_json = config.to_json()?;
    let torch_dtype = match options.dtype {
        WeightDType::F32 => "float32",
        WeightDType::Bf16 => "bfloat16",
        WeightDType::F16 => "float16",
    };
    if let Some(obj) = config_json.as_object_mut() {
        obj.insert("dtype".into(), Value::from(torch_dtype));
    }
    write(
        "config.json",
        serde_json::to_string_pretty(&config_json)?.as_bytes(),
    )?;
    write(
        "model.safetensors",
        &safetensors_bytes(model, options.dtype)?,
    )?;
    let mut wrote_generation_config = false;
    if let Some(src) = &options.side_files_from {
        for name in SIDE_FILES
            .iter()
            .chain(std::iter::once(&"generation_config.json"))
        {
            let from = src.join(name);
            if from.is_file() {
                let bytes =
                    std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
                write(name, &bytes)?;
                wrote_generation_config |= *name == "generation_config.json";
            }
        }
    }
    if !wrote_generation_config {
        let text = config.text_config();
        let mut generation = serde_json::Map::new();
        for (key, value) in [
            ("bos_token_id", &text.bos_token_id),
            ("eos_token_id", &text.eos_token_id),
            ("pad_token_id", &text.pad_token_id),
        ] {
            if let Some(v) = value {
                generation.insert(key.into(), v.clone());
            }
        }
        write(
            "generation_config.json",
            serde_json::to_string_pretty(&Value::Object(generation))?.as_bytes(),
        )?;
    }
    let staged = tmp.keep();
    if out_dir.exists() {
        let old = parent.join(format!(
            ".export-old-{}",
            out_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("model")
        ));
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        std::fs::rename(out_dir, &old)
            .with_context(|| format!("moving aside {}", out_dir.display()))?;
        std::fs::rename(&staged, out_dir)
            .with_context(|| format!("renaming into {}", out_dir.display()))?;
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    } else {
        std::fs::rename(&staged, out_dir)
            .with_context(|| format!("renaming into {}", out_dir.display()))?;
    }
    svlm_io::sync_dir(parent)?;
    Ok(())
}

/// Parameter count per part, for logs.
pub fn num_params(model: &Vlm) -> usize {
    model.num_params()
}

/// Loads a Burn module file (`model.bpk`, burnpack, as the trainer's checkpoints hold) into a
/// model built from the same config; anything missing, unused or mis-shaped is an error.
pub fn load_burnpack(model: &mut Vlm, path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!("{} does not exist", path.display());
    }
    let mut store = burn::store::BurnpackStore::from_file(path)
        .allow_partial(true)
        .validate(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        bail!(
            "{} does not match the model built from its config: missing {missing:?}, unexpected {:?}, errors {errors:?}",
            path.display(),
            result.unused
        );
    }
    Ok(())
}
