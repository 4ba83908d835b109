//! `config.json` of an HF `Owlv2ForObjectDetection` (`model_type` `owlv2`) or `OwlViTForObjectDetection`
//! (`owlvit`) folder, with transformers 5's defaults for absent keys.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use svlm_model::nn::Activation;
use svlm_model::vision::VisionConfig;

/// Which OWL generation: decides the checkpoint prefix, the objectness head and the image processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OwlVersion {
    /// OWL-ViT (`owlvit`): no objectness head; images resized (not padded) to the model size.
    V1,
    /// OWLv2 (`owlv2`): objectness head; images padded to a square, then resized.
    V2,
}

impl OwlVersion {
    /// The name of the CLIP backbone in checkpoint keys (`owlv2.vision_model...`).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::V1 => "owlvit",
            Self::V2 => "owlv2",
        }
    }
}

fn d_vocab() -> usize {
    49408
}
fn d_text_hidden() -> usize {
    512
}
fn d_text_intermediate() -> usize {
    2048
}
fn d_text_layers() -> usize {
    12
}
fn d_text_heads() -> usize {
    8
}
fn d_text_positions() -> usize {
    16
}
fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}
fn d_vision_hidden() -> usize {
    768
}
fn d_vision_intermediate() -> usize {
    3072
}
fn d_vision_layers() -> usize {
    12
}
fn d_vision_heads() -> usize {
    12
}
fn d_channels() -> usize {
    3
}
fn d_image_size() -> usize {
    768
}
fn d_projection() -> usize {
    512
}
fn d_logit_scale() -> f64 {
    2.6592
}
fn d_initializer_range() -> f64 {
    0.02
}

/// `Owlv2TextConfig` / `OwlViTTextConfig` (a CLIP text transformer).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OwlTextConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_text_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_text_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "d_text_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_text_heads")]
    pub num_attention_heads: usize,
    /// The query length the processor pads to (16 in every OWL checkpoint).
    #[serde(default = "d_text_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_initializer_range")]
    pub initializer_range: f64,
}

impl Default for OwlTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: d_vocab(),
            hidden_size: d_text_hidden(),
            intermediate_size: d_text_intermediate(),
            num_hidden_layers: d_text_layers(),
            num_attention_heads: d_text_heads(),
            max_position_embeddings: d_text_positions(),
            hidden_act: d_act(),
            layer_norm_eps: d_eps(),
            initializer_range: d_initializer_range(),
        }
    }
}

/// `Owlv2VisionConfig` / `OwlViTVisionConfig` (a CLIP vision transformer). `patch_size` defaults to 16 for OWLv2
/// and 32 for OWL-ViT ([`OwlConfig::from_json`] fills it in).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OwlVisionConfig {
    #[serde(default = "d_vision_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_vision_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "d_vision_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_vision_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    #[serde(default = "d_image_size")]
    pub image_size: usize,
    #[serde(default)]
    pub patch_size: Option<usize>,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_initializer_range")]
    pub initializer_range: f64,
}

impl Default for OwlVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: d_vision_hidden(),
            intermediate_size: d_vision_intermediate(),
            num_hidden_layers: d_vision_layers(),
            num_attention_heads: d_vision_heads(),
            num_channels: d_channels(),
            image_size: d_image_size(),
            patch_size: None,
            hidden_act: d_act(),
            layer_norm_eps: d_eps(),
            initializer_range: d_initializer_range(),
        }
    }
}

impl OwlVisionConfig {
    pub fn patch(&self) -> usize {
        self.patch_size.unwrap_or(16)
    }

    /// Patches per side of the (square) model input.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch()
    }

    /// The same tower as svlm-model's CLIP vision transformer describes it.
    pub fn to_vision_config(&self) -> VisionConfig {
        VisionConfig {
            model_type: "clip_vision_model".into(),
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_channels: self.num_channels,
            image_size: self.image_size,
            patch_size: self.patch(),
            layer_norm_eps: self.layer_norm_eps,
            hidden_act: self.hidden_act.clone(),
            initializer_range: self.initializer_range,
            extra: serde_json::Map::new(),
        }
    }
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    model_type: String,
    #[serde(default)]
    text_config: Option<OwlTextConfig>,
    #[serde(default)]
    vision_config: Option<OwlVisionConfig>,
    #[serde(default = "d_projection")]
    projection_dim: usize,
    #[serde(default = "d_logit_scale")]
    logit_scale_init_value: f64,
}

/// `Owlv2Config` / `OwlViTConfig`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OwlConfig {
    pub version: OwlVersion,
    pub text_config: OwlTextConfig,
    pub vision_config: OwlVisionConfig,
    pub projection_dim: usize,
    pub logit_scale_init_value: f64,
}

impl OwlConfig {
    pub fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        let j: ConfigJson = serde_json::from_value(value.clone())
            .context("not an OWLv2 / OWL-ViT config (model_type owlv2 or owlvit)")?;
        let version = match j.model_type.as_str() {
            "owlv2" => OwlVersion::V2,
            "owlvit" => OwlVersion::V1,
            other => bail!("model_type `{other}` is neither owlv2 nor owlvit"),
        };
        let mut vision_config = j.vision_config.unwrap_or_default();
        if vision_config.patch_size.is_none() {
            vision_config.patch_size = Some(match version {
                OwlVersion::V2 => 16,
                OwlVersion::V1 => 32,
            });
        }
        let config = Self {
            version,
            text_config: j.text_config.unwrap_or_default(),
            vision_config,
            projection_dim: j.projection_dim,
            logit_scale_init_value: j.logit_scale_init_value,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let value = svlm_model::io::read_config_json(dir)?;
        Self::from_json(&value).with_context(|| format!("in {}", dir.join("config.json").display()))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let t = &self.text_config;
        let v = &self.vision_config;
        for (what, hidden, heads) in [
            ("text_config", t.hidden_size, t.num_attention_heads),
            ("vision_config", v.hidden_size, v.num_attention_heads),
        ] {
            if heads == 0 || !hidden.is_multiple_of(heads) {
                bail!(
                    "{what}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
                );
            }
        }
        Activation::from_hf(&t.hidden_act).context("text_config.hidden_act")?;
        Activation::from_hf(&v.hidden_act).context("vision_config.hidden_act")?;
        if v.patch() == 0 || v.image_size < v.patch() {
            bail!(
                "vision_config: image_size {} and patch_size {} make no patches",
                v.image_size,
                v.patch()
            );
        }
        if t.max_position_embeddings == 0 || t.vocab_size == 0 {
            bail!("text_config: vocab_size and max_position_embeddings must be > 0");
        }
        // The class head maps image tokens to text_config.hidden_size and compares them with the projected text
        // embeddings: transformers silently needs the two to agree.
        if self.projection_dim != t.hidden_size {
            bail!(
                "projection_dim {} differs from text_config.hidden_size {}: the class head compares vectors of both sizes",
                self.projection_dim,
                t.hidden_size
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_transformers() {
        let c = OwlConfig::from_json(&serde_json::json!({"model_type": "owlv2"})).unwrap();
        assert_eq!(c.version, OwlVersion::V2);
        assert_eq!(c.vision_config.patch(), 16);
        assert_eq!(c.vision_config.image_size, 768);
        assert_eq!(c.text_config.vocab_size, 49408);
        assert_eq!(c.text_config.max_position_embeddings, 16);
        assert_eq!(c.text_config.hidden_act, "quick_gelu");
        let v1 = OwlConfig::from_json(&serde_json::json!({"model_type": "owlvit"})).unwrap();
        assert_eq!(v1.version, OwlVersion::V1);
        assert_eq!(v1.vision_config.patch(), 32);
    }

    #[test]
    fn hub_owlv2_base_config_reads_as_vit_b16_at_960() {
        // google/owlv2-base-patch16-ensemble's config.json (transformers 4.x writes only non-defaults).
        let c = OwlConfig::from_json(&serde_json::json!({
            "architectures": ["Owlv2ForObjectDetection"], "initializer_factor": 1.0,
            "logit_scale_init_value": 2.6592, "model_type": "owlv2", "projection_dim": 512,
            "text_config": {"model_type": "owlv2_text_model"}, "torch_dtype": "float32",
            "transformers_version": "4.38.2",
            "vision_config": {"image_size": 960, "model_type": "owlv2_vision_model"}
        }))
        .unwrap();
        let v = &c.vision_config;
        assert_eq!(
            (v.hidden_size, v.num_hidden_layers, v.patch(), v.grid()),
            (768, 12, 16, 60)
        );
        assert_eq!((c.text_config.hidden_size, c.projection_dim), (512, 512));
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let err = OwlConfig::from_json(&serde_json::json!({"model_type": "clip"})).unwrap_err();
        assert!(err.to_string().contains("clip"), "{err}");
        let err = OwlConfig::from_json(&serde_json::json!({
            "model_type": "owlv2", "projection_dim": 64, "text_config": {"hidden_size": 32, "num_attention_heads": 2}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("projection_dim"), "{err}");
        let err = OwlConfig::from_json(&serde_json::json!({
            "model_type": "owlv2", "vision_config": {"hidden_act": "swishy"}
        }))
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("vision_config.hidden_act"),
            "{err:#}"
        );
    }
}
