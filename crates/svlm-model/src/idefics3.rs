//! Idefics3 / SmolVLM (`Idefics3ForConditionalGeneration`): SigLIP tower -> pixel shuffle +
//! linear projection -> image features in the `<image>` token positions -> Llama decoder.

use anyhow::bail;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llama::{LlamaConfig, LlamaModel};
use crate::nn::Linear;
use crate::vision::{VisionConfig, VisionKind, VisionTransformer};

fn default_image_token_id() -> u32 {
    128257
}
fn default_scale_factor() -> usize {
    2
}

/// HF `Idefics3Config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Idefics3Config {
    #[serde(default = "default_image_token_id")]
    pub image_token_id: u32,
    #[serde(default = "default_scale_factor")]
    pub scale_factor: usize,
    pub text_config: LlamaConfig,
    pub vision_config: VisionConfig,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Idefics3Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        self.text_config.validate()?;
        self.vision_config.validate()?;
        let side = self.vision_config.patches_per_side();
        if self.scale_factor == 0 || !side.is_multiple_of(self.scale_factor) {
            bail!(
                "idefics3: scale_factor {} must divide the {side} patches per side",
                self.scale_factor
            );
        }
        Ok(())
    }

    /// Image tokens per image (tile): `(patches / scale^2)`.
    pub fn image_seq_len(&self) -> usize {
        let side = self.vision_config.patches_per_side();
        side * side / (self.scale_factor * self.scale_factor)
    }

    fn tied(&self) -> bool {
        self.tie_word_embeddings || self.text_config.tie_word_embeddings
    }
}

#[derive(Module, Debug)]
pub struct ModalityProjection {
    pub proj: Linear,
}

#[derive(Module, Debug)]
pub struct Idefics3Connector {
    pub modality_projection: ModalityProjection,
    #[module(skip)]
    pub scale_factor: usize,
}

/// Idefics3 pixel shuffle: `[n, seq, e] -> [n, seq / s^2, e * s^2]`, folding each `s x s`
/// block of patches into the channel dimension in HF's order.
pub fn pixel_shuffle(x: Tensor<3>, scale: usize) -> Tensor<3> {
    let [n, seq, e] = x.dims();
    let side = (seq as f64).sqrt() as usize;
    x.reshape([n, side, side / scale, e * scale])
        .swap_dims(1, 2)
        .reshape([n, side / scale, side / scale, e * scale * scale])
        .swap_dims(1, 2)
        .reshape([n, seq / (scale * scale), e * scale * scale])
}

impl Idefics3Connector {
    pub fn forward(&self, image_hidden: Tensor<3>) -> Tensor<3> {
        self.modality_projection
            .proj
            .forward(pixel_shuffle(image_hidden, self.scale_factor))
    }
}

#[derive(Module, Debug)]
pub struct Idefics3Model {
    pub vision_model: VisionTransformer,
    pub connector: Idefics3Connector,
    pub text_model: LlamaModel,
}

#[derive(Module, Debug)]
pub struct Idefics3 {
    pub model: Idefics3Model,
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub config: Idefics3Config,
}

impl Idefics3 {
    pub fn new(config: &Idefics3Config, device: &Device) -> anyhow::Result<Self> {
        config.validate()?;
        let text = &config.text_config;
        let vision = &config.vision_config;
        let s2 = config.scale_factor * config.scale_factor;
        Ok(Self {
            model: Idefics3Model {
                vision_model: VisionTransformer::new(vision, VisionKind::Idefics3, device)?,
                connector: Idefics3Connector {
                    modality_projection: ModalityProjection {
                        proj: Linear::new(
                            vision.hidden_size * s2,
                            text.hidden_size,
                            false,
                            text.initializer_range,
                            device,
                        ),
                    },
                    scale_factor: config.scale_factor,
                },
                text_model: LlamaModel::new(text, device)?,
            },
            lm_head: (!config.tied()).then(|| {
                Linear::new(
                    text.hidden_size,
                    text.vocab_size,
                    false,
                    text.initializer_range,
                    device,
                )
            }),
            config: config.clone(),
        })
    }

    /// Features of real images `[n_real, image_seq_len, text_hidden]` for `pixels: [n, C, H, W]`
    /// (all tiles of all samples) and an optional per-pixel mask `[n, H, W]` (1 = real pixel).
    /// All-zero images are padding and dropped as HF does; `None` when no image is real.
    pub fn image_features(
        &self,
        pixels: Tensor<4>,
        pixel_mask: Option<Tensor<3, Int>>,
    ) -> Option<Tensor<3>> {
        let device = pixels.device();
        let [n, _, h, w] = pixels.dims();
        let real = crate::vlm::real_image_indices(&pixels);
        if real.is_empty() {
            return None;
        }
        let (pixels, pixel_mask) = if real.len() == n {
            (pixels, pixel_mask)
        } else {
            let idx = Tensor::<1, Int>::from_data(
                burn::tensor::TensorData::new(real.clone(), [real.len()]),
                &device,
            );
            (
                pixels.select(0, idx.clone()),
                pixel_mask.map(|m| m.select(0, idx)),
            )
        };
        let p = self.model.vision_model.patch_size;
        let (nh, nw) = (h / p, w / p);
        let patch_masks: Option<Vec<Vec<bool>>> = pixel_mask.map(|m| {
            let [k, _, _] = m.dims();
            let sums: Vec<i64> = m
                .slice([0..k, 0..nh * p, 0..nw * p])
                .reshape([k, nh, p, nw, p])
                .sum_dim(4)
                .sum_dim(2)
                .reshape([k, nh * nw])
                .into_data()
                .convert::<i64>()
                .try_into_vec()
                .unwrap_or_default();
            sums.chunks(nh * nw)
                .map(|c| c.iter().map(|&v| v > 0).collect())
                .collect()
        });
        let out = self
            .model
            .vision_model
            .forward(pixels, patch_masks.as_deref(), false);
        Some(self.model.connector.forward(out.last_hidden_state))
    }

    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => crate::nn::linear(
                hidden,
                self.model.text_model.embed_tokens.weight.val().transpose(),
                None,
            ),
        }
    }
}
