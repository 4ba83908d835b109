//! The family-agnostic model the trainer, evaluator and CLI use: [`Vlm`] over Idefics3, LLaVA, Qwen2-VL /
//! Qwen2.5-VL / Qwen3-VL and a text-only Llama, with one batch type, logits, loss and parameter parts.

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;

use crate::idefics3::{Idefics3, Idefics3Config};
use crate::llama::{
    DecoderOutput, Deepstack, LlamaConfig, LlamaForCausalLM, LlamaModel, token_ids,
};
use crate::llava::{Llava, LlavaConfig};
use crate::qwen2_vl::{ImagePatches, Qwen2Vl, Qwen2VlConfig};

/// Label value ignored by the loss (as PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// A supported model family. [`REGISTRY`] is the one place that says which HF `model_type`s and
/// `architectures` each family reads; the family's module (`idefics3.rs`, `llava.rs`, `llama.rs`) holds its config
/// and model, and [`ModelConfig`] / [`Vlm`] hold one variant per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Idefics3,
    Llava,
    /// Qwen2-VL, Qwen2.5-VL and Qwen3-VL (`qwen2_vl.rs`; the config's `model_type` picks the variant).
    Qwen2Vl,
    Llama,
}

/// What a family registers: its name, the HF `model_type`s and the `architectures` it reads.
pub struct FamilyEntry {
    pub family: Family,
    pub name: &'static str,
    pub model_types: &'static [&'static str],
    pub architectures: &'static [&'static str],
}

/// The supported families: adding one adds its entry here.
pub static REGISTRY: [FamilyEntry; 4] = [
    FamilyEntry {
        family: Family::Idefics3,
        name: "idefics3",
        model_types: &["idefics3", "smolvlm"],
        architectures: &[
            "Idefics3ForConditionalGeneration",
            "SmolVLMForConditionalGeneration",
        ],
    },
    FamilyEntry {
        family: Family::Llava,
        name: "llava",
        model_types: &["llava"],
        architectures: &["LlavaForConditionalGeneration"],
    },
    FamilyEntry {
        family: Family::Qwen2Vl,
        name: "qwen2_vl",
        model_types: &["qwen2_vl", "qwen2_5_vl", "qwen3_vl"],
        architectures: &[
            "Qwen2VLForConditionalGeneration",
            "Qwen2_5_VLForConditionalGeneration",
            "Qwen3VLForConditionalGeneration",
        ],
    },
    FamilyEntry {
        family: Family::Llama,
        name: "llama",
        model_types: &["llama", "qwen2", "mistral"],
        architectures: &["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"],
    },
];

impl Family {
    fn entry(self) -> &'static FamilyEntry {
        // Every family has an entry: REGISTRY lists each variant once.
        let i = REGISTRY.iter().position(|e| e.family == self).unwrap_or(0);
        &REGISTRY[i]
    }

    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// The family of an HF config's `model_type`, else of its first `architectures` entry.
    pub fn detect(model_type: &str, architecture: &str) -> Option<Family> {
        let by = |pick: fn(&FamilyEntry) -> &'static [&'static str], name: &str| {
            REGISTRY
                .iter()
                .find(|e| pick(e).contains(&name))
                .map(|e| e.family)
        };
        by(|e| e.model_types, model_type).or_else(|| by(|e| e.architectures, architecture))
    }

    /// "idefics3/smolvlm, llava, qwen2_vl/qwen2_5_vl/qwen3_vl, llama/qwen2/mistral", for messages.
    pub fn supported() -> String {
        REGISTRY
            .iter()
            .map(|e| e.model_types.join("/"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A model config of any supported family, read from HF `config.json`.
#[derive(Clone, Debug)]
pub enum ModelConfig {
    Idefics3(Idefics3Config),
    Llava(LlavaConfig),
    Qwen2Vl(Qwen2VlConfig),
    Llama(LlamaConfig),
}

impl ModelConfig {
    /// Dispatches on `model_type` (falling back to `architectures`).
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let arch = value
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(family) = Family::detect(model_type, arch) else {
            bail!(
                "unsupported model: model_type `{model_type}`, architectures `{arch}` (supported: {})",
                Family::supported()
            )
        };
        let parsed = match family {
            Family::Idefics3 => Self::Idefics3(
                serde_json::from_value(value.clone()).context("reading Idefics3 config")?,
            ),
            Family::Llava => {
                Self::Llava(serde_json::from_value(value.clone()).context("reading LLaVA config")?)
            }
            Family::Qwen2Vl => {
                Self::Qwen2Vl(Qwen2VlConfig::from_json(value).context("reading Qwen2-VL config")?)
            }
            Family::Llama => {
                Self::Llama(serde_json::from_value(value.clone()).context("reading Llama config")?)
            }
        };
        Ok(parsed)
    }

    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_json(&value).with_context(|| format!("in {}", path.display()))
    }

    /// HF `config.json` content (with `model_type` and `architectures`).
    pub fn to_json(&self) -> anyhow::Result<Value> {
        let (mut value, model_type, arch) = match self {
            Self::Idefics3(c) => (
                serde_json::to_value(c)?,
                "idefics3",
                "Idefics3ForConditionalGeneration",
            ),
            Self::Llava(c) => (
                serde_json::to_value(c)?,
                "llava",
                "LlavaForConditionalGeneration",
            ),
            Self::Qwen2Vl(c) => (
                serde_json::to_value(c)?,
                c.model_type.as_str(),
                c.architecture(),
            ),
            Self::Llama(c) => (
                serde_json::to_value(c)?,
                c.model_type.as_str(),
                llama_arch(&c.model_type),
            ),
        };
        if let Some(obj) = value.as_object_mut() {
            obj.insert("model_type".into(), Value::from(model_type));
            obj.insert("architectures".into(), Value::from(vec![arch]));
        }
        Ok(value)
    }

    pub fn text_config(&self) -> &LlamaConfig {
        match self {
            Self::Idefics3(c) => &c.text_config,
            Self::Llava(c) => &c.text_config,
            Self::Qwen2Vl(c) => &c.text_config,
            Self::Llama(c) => c,
        }
    }

    /// The token id the prompt uses for each image feature row (`None` for text-only).
    pub fn image_token_id(&self) -> Option<u32> {
        match self {
            Self::Idefics3(c) => Some(c.image_token_id),
            Self::Llava(c) => Some(c.image_token_index),
            Self::Qwen2Vl(c) => Some(c.image_token_id),
            Self::Llama(_) => None,
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Self::Idefics3(_) => Family::Idefics3,
            Self::Llava(_) => Family::Llava,
            Self::Qwen2Vl(_) => Family::Qwen2Vl,
            Self::Llama(_) => Family::Llama,
        }
    }

    pub fn eos_token_ids(&self) -> Vec<u32> {
        let text = token_ids(&self.text_config().eos_token_id);
        if !text.is_empty() {
            return text;
        }
        match self {
            Self::Idefics3(c) => token_ids(&c.extra.get("eos_token_id").cloned()),
            Self::Llava(c) => token_ids(&c.extra.get("eos_token_id").cloned()),
            Self::Qwen2Vl(c) => token_ids(&c.extra.get("eos_token_id").cloned()),
            Self::Llama(_) => Vec::new(),
        }
    }
}

fn llama_arch(model_type: &str) -> &'static str {
    match model_type {
        "qwen2" => "Qwen2ForCausalLM",
        "mistral" => "MistralForCausalLM",
        _ => "LlamaForCausalLM",
    }
}

/// One training/eval batch. `pixel_values: [B, N, 3, H, W]` (N images/tiles per row, padded
/// with all-zero images); `pixel_attention_mask: [B, N, H, W]` (1 = real pixel, Idefics3 only);
/// `image_patches`: the images of the Qwen2-VL family instead (flattened patches of any size).
/// `labels`: `-100` where no loss is taken; the shift by one happens inside [`Vlm::loss`].
#[derive(Clone, Debug)]
pub struct VlmBatch {
    pub input_ids: Tensor<2, Int>,
    pub attention_mask: Tensor<2, Int>,
    pub labels: Option<Tensor<2, Int>>,
    pub pixel_values: Option<Tensor<5>>,
    pub pixel_attention_mask: Option<Tensor<4, Int>>,
    pub image_patches: Option<ImagePatches>,
    /// Several samples per row (sequence packing); `None`: one sequence per row.
    pub packing: Option<Packing>,
}

/// Where the samples of packed rows are. Image tokens are filled with image features in row-major token order,
/// so a row's tiles must come in the order of its samples (and of each sample's images).
#[derive(Clone, Debug)]
pub struct Packing {
    /// `[B, S]`: 1-based sample index inside the row, 0 on padding. Attention stays inside a sample (causal) and
    /// padding attends nowhere ([`crate::llama::packed_causal_mask`]).
    pub segment_ids: Tensor<2, Int>,
    /// `[B, S]`: each token's position inside its own sample (RoPE restarts at 0 for every sample).
    pub position_ids: Tensor<2, Int>,
}

/// Which part of the model a parameter belongs to (for freezing and per-part learning rates; the names are the
/// ones run configs and metrics use).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Vision,
    Connector,
    Language,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Vision, Part::Connector, Part::Language];

    pub fn name(self) -> &'static str {
        match self {
            Part::Vision => "vision",
            Part::Connector => "connector",
            Part::Language => "language",
        }
    }
}

/// Classifies an HF-style parameter path (`model.vision_model.…`, `multi_modal_projector.…`,
/// `language_model.…`, `lm_head.weight`; Qwen2-VL's `visual.merger.…` (and Qwen3-VL's DeepStack mergers,
/// `visual.deepstack_merger_list.…`) is the connector and the rest of `visual.…` the vision tower; a leading Burn
/// enum variant such as `Idefics3.`, of any family, is ignored).
pub fn part_of(param_path: &str) -> Part {
    // Burn names a parameter of an enum module after the variant (`Idefics3.model...`); HF names are lowercase.
    let path = match param_path.split_once('.') {
        Some((variant, rest)) if variant.starts_with(char::is_uppercase) => rest,
        _ => param_path,
    };
    let path = path.strip_prefix("model.").unwrap_or(path);
    if path.starts_with("visual.merger.") || path.starts_with("visual.deepstack_merger_list.") {
        Part::Connector
    } else if path.starts_with("vision_model.")
        || path.starts_with("vision_tower.")
        || path.starts_with("visual.")
    {
        Part::Vision
    } else if path.starts_with("connector.") || path.starts_with("multi_modal_projector.") {
        Part::Connector
    } else {
        Part::Language
    }
}

/// Rotary tables of multimodal positions (the Qwen2-VL family), from [`Vlm::multimodal_rotary`].
pub struct MultimodalRotary {
    /// `[B, S, head_dim]`.
    pub cos: Tensor<3>,
    pub sin: Tensor<3>,
    /// Each row's next position (its length plus its position delta), where generation continues.
    pub next_positions: Vec<i64>,
}

/// Image features of a batch: `[n_images, tokens_per_image, text_hidden]` (the Qwen2-VL family: `[1, image tokens
/// of all images, text_hidden]`), and Qwen3-VL's DeepStack features (`[image tokens, text_hidden]` per injected
/// decoder layer; empty for the other families).
pub struct ImageFeatures {
    pub merged: Tensor<3>,
    pub deepstack: Vec<Tensor<2>>,
}

/// Logits and, when asked, the decoder hidden states and the image features.
pub struct VlmOutput {
    pub logits: Tensor<3>,
    pub hidden_states: Vec<Tensor<3>>,
    pub image_features: Option<Tensor<3>>,
}

/// A vision-language (or text-only) model of any supported family.
// The variants are large module trees held once per process; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Vlm {
    Idefics3(Idefics3),
    Llava(Llava),
    Qwen2Vl(Qwen2Vl),
    Llama(LlamaForCausalLM),
}

impl Vlm {
    /// Redraws the vision tower's position embeddings from N(0, std^2) (a from-scratch init choice; a loaded
    /// checkpoint keeps its own). Transformers initializes them with std = `initializer_range` (0.02), next to
    /// patch features of order 1: trained from scratch, a tiny Idefics3 then learns what is in the image but never
    /// where (measured in transformers and here: the side of a square stays at chance after 1,200 steps with 0.02,
    /// and is learned in 400 with 1.0, PyTorch's own `nn.Embedding` default). Returns false for text-only models
    /// and for Qwen2-VL / Qwen2.5-VL, whose tower has rotary positions and no position embedding (Qwen3-VL's has
    /// both).
    pub fn reinit_vision_positions(&mut self, std: f64) -> bool {
        let embedding = match self {
            Vlm::Idefics3(m) => &mut m.model.vision_model.embeddings.position_embedding,
            Vlm::Llava(m) => &mut m.vision_tower.vision_model.embeddings.position_embedding,
            Vlm::Qwen2Vl(m) => match &mut m.visual.pos_embed {
                Some(table) => table,
                None => return false,
            },
            Vlm::Llama(_) => return false,
        };
        let weight = embedding.weight.val();
        let device = weight.device();
        let [n, d] = weight.dims();
        embedding.weight =
            burn::module::Initializer::Normal { mean: 0.0, std }.init([n, d], &device);
        true
    }

    /// Random init (HF's scheme: normal(0, initializer_range), norms at one) — from-scratch runs.
    pub fn from_config(config: &ModelConfig, device: &Device) -> anyhow::Result<Self> {
        Ok(match config {
            ModelConfig::Idefics3(c) => Self::Idefics3(Idefics3::new(c, device)?),
            ModelConfig::Llava(c) => Self::Llava(Llava::new(c, device)?),
            ModelConfig::Qwen2Vl(c) => Self::Qwen2Vl(Qwen2Vl::new(c, device)?),
            ModelConfig::Llama(c) => Self::Llama(LlamaForCausalLM::new(c, device)?),
        })
    }

    pub fn config(&self) -> ModelConfig {
        match self {
            Self::Idefics3(m) => ModelConfig::Idefics3(m.config.clone()),
            Self::Llava(m) => ModelConfig::Llava(m.config.clone()),
            Self::Qwen2Vl(m) => ModelConfig::Qwen2Vl(m.config.clone()),
            Self::Llama(m) => ModelConfig::Llama(m.config.clone()),
        }
    }

    pub fn text_model(&self) -> &LlamaModel {
        match self {
            Self::Idefics3(m) => &m.model.text_model,
            Self::Llava(m) => &m.language_model.model,
            Self::Qwen2Vl(m) => &m.model,
            Self::Llama(m) => &m.model,
        }
    }

    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Idefics3(m) => m.logits(hidden),
            Self::Llava(m) => m.language_model.logits(hidden),
            Self::Qwen2Vl(m) => m.logits(hidden),
            Self::Llama(m) => m.logits(hidden),
        }
    }

    pub fn image_token_id(&self) -> Option<u32> {
        match self {
            Self::Idefics3(m) => Some(m.config.image_token_id),
            Self::Llava(m) => Some(m.config.image_token_index),
            Self::Qwen2Vl(m) => Some(m.config.image_token_id),
            Self::Llama(_) => None,
        }
    }

    /// Image features of a batch's images, `[n_real_images, tokens_per_image, text_hidden]`.
    pub fn image_features(
        &self,
        pixel_values: Tensor<5>,
        pixel_attention_mask: Option<Tensor<4, Int>>,
    ) -> anyhow::Result<Option<Tensor<3>>> {
        let [b, n, c, h, w] = pixel_values.dims();
        let pixels = pixel_values.reshape([b * n, c, h, w]);
        Ok(match self {
            Self::Idefics3(m) => m.image_features(
                pixels,
                pixel_attention_mask.map(|t| t.reshape([b * n, h, w])),
            ),
            Self::Llava(m) => Some(m.image_features(drop_padding_images(pixels))?),
            Self::Qwen2Vl(_) => bail!(
                "the Qwen2-VL family takes flattened patches with their grids (`image_patches`), not `[B, N, C, H, W]` pixel values"
            ),
            Self::Llama(_) => None,
        })
    }

    /// Image features `[1, image tokens of all images, text_hidden]` of flattened patches (the Qwen2-VL family),
    /// with Qwen3-VL's DeepStack features.
    pub fn patch_features(&self, patches: &ImagePatches) -> anyhow::Result<ImageFeatures> {
        match self {
            Self::Qwen2Vl(m) => {
                let out = m.image_features(patches)?;
                Ok(ImageFeatures {
                    merged: out.merged.unsqueeze_dim(0),
                    deepstack: out.deepstack,
                })
            }
            other => bail!(
                "{} takes `[B, N, C, H, W]` pixel values, not flattened patches",
                other.config().family()
            ),
        }
    }

    /// Features of whichever images a batch holds.
    pub(crate) fn batch_image_features(
        &self,
        pixel_values: Option<&Tensor<5>>,
        pixel_attention_mask: Option<&Tensor<4, Int>>,
        image_patches: Option<&ImagePatches>,
    ) -> anyhow::Result<Option<ImageFeatures>> {
        match (pixel_values, image_patches) {
            (Some(_), Some(_)) => {
                bail!("a batch holds either pixel values or image patches, not both")
            }
            (Some(pixels), None) => Ok(self
                .image_features(pixels.clone(), pixel_attention_mask.cloned())?
                .map(|merged| ImageFeatures {
                    merged,
                    deepstack: Vec::new(),
                })),
            (None, Some(patches)) => self.patch_features(patches).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Multimodal rotary tables `cos, sin: [B, S, head_dim]` for the Qwen2-VL family (`None` for the others), and
    /// each row's next position. `segments`: the attention mask, or the segment ids of packed rows (positions
    /// restart with every sample); `grids`: the images, in the order of their tokens.
    pub fn multimodal_rotary(
        &self,
        input_ids: &Tensor<2, Int>,
        segments: &Tensor<2, Int>,
        grids: Option<&[[usize; 3]]>,
    ) -> anyhow::Result<Option<MultimodalRotary>> {
        let Self::Qwen2Vl(m) = self else {
            return Ok(None);
        };
        let [b, s] = input_ids.dims();
        let device = input_ids.device();
        let host = |t: &Tensor<2, Int>| -> anyhow::Result<Vec<i64>> {
            t.clone()
                .into_data()
                .convert::<i64>()
                .try_into_vec()
                .map_err(|e| anyhow::anyhow!("{e:?}"))
        };
        let (ids, mask) = (host(input_ids)?, host(segments)?);
        let (positions, deltas) = crate::qwen2_vl::rope_index(
            &ids,
            &mask,
            b,
            i64::from(m.config.image_token_id),
            grids.unwrap_or(&[]),
            m.config.vision_config.spatial_merge_size,
        )?;
        let (cos, sin) = m.mrope(&positions, b, s, &device);
        // One sequence per row here (generation): its next position is its length plus its delta.
        let next = (0..b)
            .map(|r| {
                mask[r * s..(r + 1) * s].iter().filter(|&&v| v != 0).count() as i64 + deltas[r]
            })
            .collect();
        Ok(Some(MultimodalRotary {
            cos,
            sin,
            next_positions: next,
        }))
    }

    /// Every token's image slot (row-major): 0 for a token that is no image token, `1 + k` for the `k`-th image
    /// token, checked against the `n` images x `t` tokens the images give.
    fn image_slots(
        input_ids: &Tensor<2, Int>,
        image_token: u32,
        [n, t]: [usize; 2],
    ) -> anyhow::Result<Vec<i64>> {
        let ids: Vec<i64> = input_ids
            .clone()
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut next = 0;
        let slots: Vec<i64> = ids
            .iter()
            .map(|&v| {
                if v == i64::from(image_token) {
                    next += 1;
                    next
                } else {
                    0
                }
            })
            .collect();
        if next as usize != n * t {
            bail!(
                "the prompt has {next} image tokens (id {image_token}) but the images give {} features ({n} images x {t}); check the processor's image token expansion",
                n * t
            );
        }
        Ok(slots)
    }

    /// Token embeddings with image features written into the image-token positions, in order, and Qwen3-VL's
    /// DeepStack features placed at the same positions for the decoder.
    pub fn embed(
        &self,
        input_ids: Tensor<2, Int>,
        image_features: Option<&ImageFeatures>,
    ) -> anyhow::Result<(Tensor<3>, Option<Deepstack>)> {
        let embeds = self.text_model().embed(input_ids.clone());
        let (Some(ImageFeatures { merged, deepstack }), Some(image_token)) =
            (image_features, self.image_token_id())
        else {
            return Ok((embeds, None));
        };
        let features = merged;
        let device = embeds.device();
        let [b, s, d] = embeds.dims();
        let [n, t, _] = features.dims();
        let slots = Self::image_slots(&input_ids, image_token, [n, t])?;
        let index: Vec<i64> = slots
            .iter()
            .enumerate()
            .map(|(i, &slot)| {
                if slot > 0 {
                    (b * s) as i64 + slot - 1
                } else {
                    i as i64
                }
            })
            .collect();
        let deepstack = (!deepstack.is_empty()).then(|| Deepstack {
            slots: Tensor::<1, Int>::from_data(TensorData::new(slots, [b * s]), &device),
            features: deepstack.clone(),
        });
        let table = Tensor::cat(
            vec![
                embeds.reshape([b * s, d]),
                features.clone().reshape([n * t, d]),
            ],
            0,
        );
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [b * s]), &device);
        Ok((table.select(0, index).reshape([b, s, d]), deepstack))
    }

    /// Full forward: logits `[B, S, vocab]`, plus hidden states when asked.
    pub fn forward_output(
        &self,
        batch: &VlmBatch,
        output_hidden_states: bool,
    ) -> anyhow::Result<VlmOutput> {
        let (last_hidden_state, hidden_states, image_features) =
            self.decode(batch, output_hidden_states)?;
        Ok(VlmOutput {
            logits: self.lm_logits(last_hidden_state),
            hidden_states,
            image_features,
        })
    }

    /// The decoder's last hidden state `[B, S, hidden]` (after the final norm, before the output head), so a
    /// caller can run the head on the positions it needs only ([`Vlm::lm_logits`]).
    pub fn last_hidden_state(&self, batch: &VlmBatch) -> anyhow::Result<Tensor<3>> {
        Ok(self.decode(batch, false)?.0)
    }

    /// (last hidden state, every layer's hidden states when asked, image features).
    #[allow(clippy::type_complexity)]
    fn decode(
        &self,
        batch: &VlmBatch,
        output_hidden_states: bool,
    ) -> anyhow::Result<(Tensor<3>, Vec<Tensor<3>>, Option<Tensor<3>>)> {
        let image_features = self.batch_image_features(
            batch.pixel_values.as_ref(),
            batch.pixel_attention_mask.as_ref(),
            batch.image_patches.as_ref(),
        )?;
        let (embeds, deepstack) = self.embed(batch.input_ids.clone(), image_features.as_ref())?;
        let [b, s, _] = embeds.dims();
        let device = embeds.device();
        // The Qwen2-VL family with images: 3D positions; without images transformers counts 0..S as for the others.
        let segments = batch
            .packing
            .as_ref()
            .map_or(&batch.attention_mask, |p| &p.segment_ids);
        let rotary = match &batch.image_patches {
            Some(patches) => {
                self.multimodal_rotary(&batch.input_ids, segments, Some(&patches.grid_thw))?
            }
            None => None,
        };
        let DecoderOutput {
            last_hidden_state,
            hidden_states,
        } = match (&batch.packing, rotary) {
            (packing, Some(MultimodalRotary { cos, sin, .. })) => {
                let masked = match packing {
                    Some(p) => crate::llama::packed_causal_mask(&p.segment_ids),
                    None => {
                        crate::llama::causal_mask(b, s, 0, Some(&batch.attention_mask), &device)
                    }
                };
                self.text_model().forward_embeds_rotary(
                    embeds,
                    masked,
                    (cos, sin),
                    deepstack.as_ref(),
                    None,
                    output_hidden_states,
                )
            }
            (Some(packing), None) => self.text_model().forward_embeds_masked(
                embeds,
                crate::llama::packed_causal_mask(&packing.segment_ids),
                packing.position_ids.clone(),
                None,
                output_hidden_states,
            ),
            (None, None) => {
                let positions = crate::llama::default_positions(b, s, 0, &embeds.device());
                self.text_model().forward_embeds(
                    embeds,
                    Some(&batch.attention_mask),
                    positions,
                    None,
                    output_hidden_states,
                )
            }
        };
        Ok((
            last_hidden_state,
            hidden_states,
            image_features.map(|f| f.merged),
        ))
    }

    /// Logits `[B, S, vocab]`. Panics only on a batch that contradicts the model (image token
    /// count vs images); use [`Vlm::try_forward`] to get that as an error.
    pub fn forward(&self, batch: &VlmBatch) -> Tensor<3> {
        match self.try_forward(batch) {
            Ok(logits) => logits,
            Err(e) => panic!("Vlm::forward: {e:#}"),
        }
    }

    pub fn try_forward(&self, batch: &VlmBatch) -> anyhow::Result<Tensor<3>> {
        Ok(self.forward_output(batch, false)?.logits)
    }

    /// Mean next-token cross-entropy over positions whose (shifted) label is not `-100`, as HF's
    /// `ForCausalLMLoss`. Without labels, `input_ids` with padding (mask 0) ignored are used.
    pub fn loss(&self, batch: &VlmBatch) -> Tensor<1> {
        match self.try_loss(batch) {
            Ok(loss) => loss,
            Err(e) => panic!("Vlm::loss: {e:#}"),
        }
    }

    pub fn try_loss(&self, batch: &VlmBatch) -> anyhow::Result<Tensor<1>> {
        let logits = self.try_forward(batch)?;
        let labels = match &batch.labels {
            Some(l) => l.clone(),
            None => batch
                .input_ids
                .clone()
                .mask_fill(batch.attention_mask.clone().equal_elem(0), IGNORE_INDEX),
        };
        Ok(causal_lm_loss(logits, labels))
    }
}

/// HF `ForCausalLMLoss`: logits at `t` predict `labels[t + 1]`; mean over non-ignored targets
/// (0 when there are none).
pub fn causal_lm_loss(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<1> {
    let [_, s, _] = logits.dims();
    let device = logits.device();
    if s < 2 {
        return Tensor::zeros([1], &device);
    }
    let labels: Vec<i64> = labels.into_data().iter::<i64>().collect();
    let count = labels
        .chunks(s)
        .flat_map(|row| &row[1..])
        .filter(|&&t| t != IGNORE_INDEX)
        .count()
        .max(1);
    next_token_nll(logits, &labels)
        .sum()
        .div_scalar(count as f64)
}

/// Next-token negative log-likelihood `[batch, seq_len - 1]` of logits `[batch, seq_len, vocab]` against the
/// unshifted labels (row-major `batch * seq_len`): position `t` predicts `labels[t + 1]`, 0 where that is
/// [`IGNORE_INDEX`]. The one loss path, through the one loss kernel ([`crate::fused::nll`]): [`causal_lm_loss`]
/// and the trainer's loss both take it.
pub fn next_token_nll(logits: Tensor<3>, labels: &[i64]) -> Tensor<2> {
    let [b, t, v] = logits.dims();
    let steps = t.saturating_sub(1);
    let targets: Vec<i64> = (0..b)
        .flat_map(|row| (1..t).map(move |pos| labels[row * t + pos]))
        .collect();
    let logits = logits.slice([0..b, 0..steps, 0..v]).reshape([b * steps, v]);
    crate::fused::nll(logits, &targets).reshape([b, steps])
}

/// LLaVA: drop all-zero (padding) images so `[B, N]` batches with fewer images per sample work.
/// Indices of the images `[n, C, H, W]` with any non-zero value: an all-zero image is padding, as transformers
/// decides it.
pub(crate) fn real_image_indices(pixels: &Tensor<4>) -> Vec<i64> {
    let [n, c, h, w] = pixels.dims();
    let maxima: Vec<f32> = pixels
        .clone()
        .abs()
        .reshape([n, c * h * w])
        .max_dim(1)
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap_or_default();
    (0..n)
        .filter(|&i| maxima.get(i).is_some_and(|&v| v > 0.0))
        .map(|i| i as i64)
        .collect()
}

fn drop_padding_images(pixels: Tensor<4>) -> Tensor<4> {
    let n = pixels.dims()[0];
    let device = pixels.device();
    let real = real_image_indices(&pixels);
    if real.len() == n || real.is_empty() {
        return pixels;
    }
    let k = real.len();
    pixels.select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(real, [k]), &device),
    )
}

/// Visits float parameters with their HF path (enum variants skipped).
struct NamedGrads<'a> {
    grads: &'a burn::tensor::Gradients,
    path: Vec<String>,
    out: std::collections::BTreeMap<String, TensorData>,
}

impl burn::module::ModuleVisitor for NamedGrads<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if let Some(grad) = param.val().grad(self.grads) {
            self.out.insert(self.path.join("."), grad.into_data());
        }
    }
}

impl Vlm {
    /// Gradient of every parameter that received one, keyed by its HF path (as in
    /// [`crate::io::expected_shapes`]). For checks and per-part gradient norms.
    pub fn gradients_by_name(
        &self,
        grads: &burn::tensor::Gradients,
    ) -> std::collections::BTreeMap<String, TensorData> {
        let mut visitor = NamedGrads {
            grads,
            path: Vec::new(),
            out: Default::default(),
        };
        self.visit(&mut visitor);
        visitor.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_hf_prefixes() {
        assert_eq!(
            part_of("model.vision_model.encoder.layers.0.mlp.fc1.weight"),
            Part::Vision
        );
        assert_eq!(
            part_of("vision_tower.vision_model.embeddings.class_embedding"),
            Part::Vision
        );
        assert_eq!(
            part_of("model.connector.modality_projection.proj.weight"),
            Part::Connector
        );
        assert_eq!(
            part_of("multi_modal_projector.linear_1.bias"),
            Part::Connector
        );
        assert_eq!(
            part_of("model.text_model.layers.0.self_attn.q_proj.weight"),
            Part::Language
        );
        assert_eq!(part_of("language_model.lm_head.weight"), Part::Language);
        assert_eq!(
            part_of("Idefics3.model.vision_model.post_layernorm.weight"),
            Part::Vision
        );
        assert_eq!(part_of("lm_head.weight"), Part::Language);
        // Qwen2-VL: the merger is the connector, the rest of `visual.` the tower.
        assert_eq!(part_of("visual.blocks.0.attn.qkv.weight"), Part::Vision);
        assert_eq!(part_of("visual.patch_embed.proj.weight"), Part::Vision);
        assert_eq!(
            part_of("Qwen2Vl.visual.merger.mlp.linear_1.weight"),
            Part::Connector
        );
        assert_eq!(part_of("visual.merger.ln_q.weight"), Part::Connector);
        // Qwen3-VL: the DeepStack mergers are connector too, its learned positions the tower.
        assert_eq!(
            part_of("model.visual.deepstack_merger_list.0.norm.weight"),
            Part::Connector
        );
        assert_eq!(part_of("model.visual.pos_embed.weight"), Part::Vision);
        assert_eq!(
            part_of("model.layers.0.self_attn.q_proj.bias"),
            Part::Language
        );
    }

    #[test]
    fn loss_is_shifted_mean_cross_entropy_over_kept_labels() {
        let device = Device::flex();
        // One sequence of 3 positions, vocab 2. Position 0 predicts label[1] = 1,
        // position 1 would predict label[2] = -100 (ignored).
        let logits = Tensor::<3>::from_data(
            TensorData::new(vec![0.0f32, 1.0, 2.0, 0.0, 5.0, 5.0], [1, 3, 2]),
            &device,
        );
        let labels = Tensor::<2, Int>::from_data(
            TensorData::new(vec![7i64, 1, IGNORE_INDEX], [1, 3]),
            &device,
        );
        let loss: f32 = causal_lm_loss(logits, labels)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()[0];
        let want = -(1f32.exp() / (1.0 + 1f32.exp())).ln();
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn config_dispatch_names_unsupported_models() {
        let err = ModelConfig::from_json(&serde_json::json!({"model_type": "bert"})).unwrap_err();
        assert!(err.to_string().contains("bert"));
    }
}
