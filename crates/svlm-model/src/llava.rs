//! LLaVA (`LlavaForConditionalGeneration`): CLIP or SigLIP tower, hidden state(s) of
//! `vision_feature_layer`, optional CLS removal, 2-layer projector, Llama decoder.

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llama::{LlamaConfig, LlamaForCausalLM};
use crate::nn::{Activation, Linear};
use crate::vision::{VisionConfig, VisionKind, VisionTransformer};

fn default_image_token() -> u32 {
    32000
}
fn default_projector_act() -> String {
    "gelu".into()
}
fn default_strategy() -> String {
    "default".into()
}
fn default_feature_layer() -> Value {
    Value::from(-2)
}
fn default_true() -> bool {
    true
}

/// HF `LlavaConfig`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LlavaConfig {
    #[serde(default = "default_image_token", alias = "image_token_id")]
    pub image_token_index: u32,
    #[serde(default = "default_projector_act")]
    pub projector_hidden_act: String,
    #[serde(default = "default_strategy")]
    pub vision_feature_select_strategy: String,
    /// An int or a list of ints (negative counts from the end of `hidden_states`).
    #[serde(default = "default_feature_layer")]
    pub vision_feature_layer: Value,
    #[serde(default = "default_true")]
    pub multimodal_projector_bias: bool,
    pub text_config: LlamaConfig,
    pub vision_config: VisionConfig,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl LlavaConfig {
    pub fn feature_layers(&self) -> anyhow::Result<Vec<i64>> {
        match &self.vision_feature_layer {
            Value::Number(n) => Ok(vec![
                n.as_i64()
                    .context("vision_feature_layer must be an integer")?,
            ]),
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_i64()
                        .context("vision_feature_layer entries must be integers")
                })
                .collect(),
            other => bail!("vision_feature_layer must be an int or a list of ints, got {other}"),
        }
    }

    pub fn vision_kind(&self) -> anyhow::Result<VisionKind> {
        let kind = if self.vision_config.model_type.is_empty() {
            "clip_vision_model"
        } else {
            &self.vision_config.model_type
        };
        VisionKind::from_model_type(kind)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.text_config.validate()?;
        self.vision_config.validate()?;
        Activation::from_hf(&self.projector_hidden_act)?;
        if !matches!(
            self.vision_feature_select_strategy.as_str(),
            "default" | "full"
        ) {
            bail!(
                "vision_feature_select_strategy must be `default` or `full`, got `{}`",
                self.vision_feature_select_strategy
            );
        }
        let n = self.vision_config.num_hidden_layers as i64 + 1;
        for layer in self.feature_layers()? {
            if layer >= n || layer < -n {
                bail!("vision_feature_layer {layer} is out of range for {n} hidden states");
            }
        }
        if self.vision_kind()? == VisionKind::Idefics3 {
            bail!("LLaVA takes a CLIP or SigLIP tower");
        }
        Ok(())
    }

    fn tied(&self) -> bool {
        self.tie_word_embeddings || self.text_config.tie_word_embeddings
    }

    /// Image tokens per image.
    pub fn image_seq_len(&self) -> usize {
        let side = self.vision_config.patches_per_side();
        let cls = self
            .vision_kind()
            .map(|k| k == VisionKind::Clip)
            .unwrap_or(false);
        side * side + usize::from(cls)
            - usize::from(self.vision_feature_select_strategy == "default")
    }
}

/// `CLIPVisionModel` / `SiglipVisionModel` wrapper: parameters live under `vision_model.*`.
#[derive(Module, Debug)]
pub struct VisionTower {
    pub vision_model: VisionTransformer,
}

#[derive(Module, Debug)]
pub struct MultiModalProjector {
    pub linear_1: Linear,
    pub linear_2: Linear,
    #[module(skip)]
    pub act: Activation,
}

#[derive(Module, Debug)]
pub struct Llava {
    pub vision_tower: VisionTower,
    pub multi_modal_projector: MultiModalProjector,
    pub language_model: LlamaForCausalLM,
    #[module(skip)]
    pub config: LlavaConfig,
}

impl Llava {
    pub fn new(config: &LlavaConfig, device: &Device) -> anyhow::Result<Self> {
        config.validate()?;
        let mut text = config.text_config.clone();
        text.tie_word_embeddings = config.tied();
        let layers = config.feature_layers()?.len();
        let vision_dim = config.vision_config.hidden_size * layers;
        let std = text.initializer_range;
        let bias = config.multimodal_projector_bias;
        Ok(Self {
            vision_tower: VisionTower {
                vision_model: VisionTransformer::new(
                    &config.vision_config,
                    config.vision_kind()?,
                    device,
                )?,
            },
            multi_modal_projector: MultiModalProjector {
                linear_1: Linear::new(vision_dim, text.hidden_size, bias, std, device),
                linear_2: Linear::new(text.hidden_size, text.hidden_size, bias, std, device),
                act: Activation::from_hf(&config.projector_hidden_act)?,
            },
            language_model: LlamaForCausalLM::new(&text, device)?,
            config: config.clone(),
        })
    }

    /// Projected features `[n, image_seq_len, text_hidden]` of `pixels: [n, C, H, W]`.
    pub fn image_features(&self, pixels: Tensor<4>) -> anyhow::Result<Tensor<3>> {
        let out = self.vision_tower.vision_model.forward(pixels, None, true);
        let n_states = out.hidden_states.len() as i64;
        let mut selected = Vec::new();
        for layer in self.config.feature_layers()? {
            let index = if layer < 0 { n_states + layer } else { layer };
            let state = out
                .hidden_states
                .get(index as usize)
                .with_context(|| format!("vision_feature_layer {layer} out of range"))?;
            selected.push(state.clone());
        }
        let mut features = Tensor::cat(selected, 2);
        // HF drops the first position for `default` whatever the tower (the CLS token for CLIP).
        if self.config.vision_feature_select_strategy == "default" {
            let [n, s, e] = features.dims();
            features = features.slice([0..n, 1..s, 0..e]);
        }
        let p = &self.multi_modal_projector;
        Ok(p.linear_2
            .forward(p.act.apply(p.linear_1.forward(features))))
    }
}
