//! `config.json` of an HF `SamModel` folder (`model_type` `sam`), with transformers 5's defaults (those of
//! `facebook/sam-vit-huge`) for absent keys.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// `SamVisionConfig`: the ViT image encoder and its neck.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamVisionConfig {
    pub hidden_size: usize,
    /// Channels of the neck's output (the image embedding).
    pub output_channels: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub qkv_bias: bool,
    pub mlp_ratio: f64,
    /// `hidden_size * mlp_ratio` when absent.
    pub mlp_dim: Option<usize>,
    pub use_abs_pos: bool,
    pub use_rel_pos: bool,
    /// Side of the attention windows; layers in `global_attn_indexes` attend over the whole patch grid.
    pub window_size: usize,
    pub global_attn_indexes: Vec<usize>,
    /// Half the width of the random-Fourier positional embedding shared by the prompt encoder and decoder.
    pub num_pos_feats: usize,
}

impl Default for SamVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            output_channels: 256,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 1024,
            patch_size: 16,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-6,
            qkv_bias: true,
            mlp_ratio: 4.0,
            mlp_dim: None,
            use_abs_pos: true,
            use_rel_pos: true,
            window_size: 14,
            global_attn_indexes: vec![2, 5, 8, 11],
            num_pos_feats: 128,
        }
    }
}

impl SamVisionConfig {
    pub fn mlp_dim(&self) -> usize {
        self.mlp_dim
            .unwrap_or((self.hidden_size as f64 * self.mlp_ratio) as usize)
    }

    /// Patches per side of the (square, padded) model input.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// The attention window of layer `i`: `None` for global attention.
    pub fn window_of(&self, layer: usize) -> Option<usize> {
        (!self.global_attn_indexes.contains(&layer) && self.window_size > 0)
            .then_some(self.window_size)
    }
}

/// `SamPromptEncoderConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamPromptEncoderConfig {
    pub hidden_size: usize,
    /// The model input size prompts are normalized by.
    pub image_size: usize,
    pub patch_size: usize,
    pub mask_input_channels: usize,
    pub num_point_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for SamPromptEncoderConfig {
    fn default() -> Self {
        Self {
            hidden_size: 256,
            image_size: 1024,
            patch_size: 16,
            mask_input_channels: 16,
            num_point_embeddings: 4,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-6,
        }
    }
}

impl SamPromptEncoderConfig {
    /// Side of the image embedding grid.
    pub fn image_embedding_size(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// `SamMaskDecoderConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamMaskDecoderConfig {
    pub hidden_size: usize,
    pub hidden_act: String,
    pub mlp_dim: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub attention_downsample_rate: usize,
    pub num_multimask_outputs: usize,
    pub iou_head_depth: usize,
    pub iou_head_hidden_dim: usize,
    pub layer_norm_eps: f64,
}

impl Default for SamMaskDecoderConfig {
    fn default() -> Self {
        Self {
            hidden_size: 256,
            hidden_act: "relu".into(),
            mlp_dim: 2048,
            num_hidden_layers: 2,
            num_attention_heads: 8,
            attention_downsample_rate: 2,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            layer_norm_eps: 1e-6,
        }
    }
}

/// `SamConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamConfig {
    pub model_type: String,
    pub vision_config: SamVisionConfig,
    pub prompt_encoder_config: SamPromptEncoderConfig,
    pub mask_decoder_config: SamMaskDecoderConfig,
}

impl SamConfig {
    pub fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        let config: Self =
            serde_json::from_value(value.clone()).context("not a SAM config.json")?;
        if config.model_type != "sam" {
            bail!(
                "model_type is `{}`, expected `sam` (a `SamModel` folder)",
                config.model_type
            );
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_json(&value).with_context(|| format!("in {}", path.display()))
    }

    /// The sizes the modules rely on: divisibility of heads and patches, and the prompt encoder, mask decoder
    /// and neck agreeing on the embedding width and grid.
    pub fn validate(&self) -> anyhow::Result<()> {
        let v = &self.vision_config;
        let p = &self.prompt_encoder_config;
        let d = &self.mask_decoder_config;
        let positive = [
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.num_attention_heads", v.num_attention_heads),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.image_size", v.image_size),
            ("prompt_encoder_config.patch_size", p.patch_size),
            (
                "mask_decoder_config.num_attention_heads",
                d.num_attention_heads,
            ),
            (
                "mask_decoder_config.attention_downsample_rate",
                d.attention_downsample_rate,
            ),
            ("mask_decoder_config.iou_head_depth", d.iou_head_depth),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("`{key}` must be positive");
            }
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            bail!(
                "vision hidden_size {} is not a multiple of num_attention_heads {}",
                v.hidden_size,
                v.num_attention_heads
            );
        }
        if !v.image_size.is_multiple_of(v.patch_size) {
            bail!(
                "vision image_size {} is not a multiple of patch_size {}",
                v.image_size,
                v.patch_size
            );
        }
        if p.hidden_size != v.output_channels
            || d.hidden_size != v.output_channels
            || 2 * v.num_pos_feats != v.output_channels
        {
            bail!(
                "the neck's output_channels ({}), 2 x num_pos_feats ({}), the prompt encoder's hidden_size ({}) and \
                 the mask decoder's hidden_size ({}) must agree",
                v.output_channels,
                2 * v.num_pos_feats,
                p.hidden_size,
                d.hidden_size
            );
        }
        if p.image_embedding_size() != v.grid() {
            bail!(
                "the prompt encoder's grid ({} / {}) differs from the image encoder's ({} / {})",
                p.image_size,
                p.patch_size,
                v.image_size,
                v.patch_size
            );
        }
        for (what, internal) in [
            ("self-attention", d.hidden_size),
            (
                "cross-attention",
                d.hidden_size / d.attention_downsample_rate,
            ),
        ] {
            if internal == 0 || internal % d.num_attention_heads != 0 {
                bail!(
                    "the mask decoder's {what} width {internal} is not a positive multiple of num_attention_heads {}",
                    d.num_attention_heads
                );
            }
        }
        if !d.hidden_size.is_multiple_of(8) {
            bail!(
                "the mask decoder's hidden_size {} must be a multiple of 8 (the upscaling divides it by 4, then 2)",
                d.hidden_size
            );
        }
        if p.num_point_embeddings < 4 {
            bail!(
                "num_point_embeddings {} < 4: box corners use embeddings 2 and 3",
                p.num_point_embeddings
            );
        }
        if d.iou_head_depth < 2 {
            bail!("iou_head_depth must be >= 2 (an input and an output layer)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_take_the_vit_huge_defaults() {
        let c = SamConfig::from_json(&serde_json::json!({"model_type": "sam"})).unwrap();
        assert_eq!(c.vision_config.grid(), 64);
        assert_eq!(c.vision_config.mlp_dim(), 3072);
        assert_eq!(c.vision_config.window_of(2), None);
        assert_eq!(c.vision_config.window_of(3), Some(14));
        assert_eq!(c.prompt_encoder_config.image_embedding_size(), 64);
    }

    #[test]
    fn mismatched_widths_and_other_models_are_refused() {
        let err = SamConfig::from_json(&serde_json::json!({"model_type": "sam2"})).unwrap_err();
        assert!(err.to_string().contains("sam2"), "{err}");
        let err = SamConfig::from_json(&serde_json::json!({
            "model_type": "sam", "prompt_encoder_config": {"hidden_size": 128}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("must agree"), "{err}");
        let err = SamConfig::from_json(&serde_json::json!({
            "model_type": "sam", "vision_config": {"patch_size": 0}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("patch_size"), "{err}");
    }
}
