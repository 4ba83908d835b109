//! `config.json` of an HF `DepthAnythingForDepthEstimation` folder (`DepthAnythingConfig` with a DINOv2
//! `backbone_config`), with transformers 5's defaults for absent keys.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_mlp_ratio() -> f64 {
    4.0
}
fn d_act() -> String {
    "gelu".into()
}
fn d_ln_eps() -> f64 {
    1e-6
}
fn d_image_size() -> usize {
    224
}
fn d_patch() -> usize {
    14
}
fn d_channels() -> usize {
    3
}
fn d_true() -> bool {
    true
}
fn d_layerscale() -> f64 {
    1.0
}

/// `Dinov2Config` as the backbone of Depth Anything.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dinov2Config {
    #[serde(default)]
    pub model_type: String,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_mlp_ratio")]
    pub mlp_ratio: f64,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_image_size")]
    pub image_size: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    #[serde(default = "d_true")]
    pub qkv_bias: bool,
    #[serde(default = "d_layerscale")]
    pub layerscale_value: f64,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
    #[serde(default = "d_true")]
    pub use_mask_token: bool,
    #[serde(default = "d_true")]
    pub apply_layernorm: bool,
    #[serde(default = "d_true")]
    pub reshape_hidden_states: bool,
    #[serde(default)]
    pub out_indices: Option<Vec<i64>>,
    #[serde(default)]
    pub out_features: Option<Vec<String>>,
}

impl Dinov2Config {
    /// The `config.json` of an HF `Dinov2Model` folder (model_type dinov2), validated.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let config: Self = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as a Dinov2Config", path.display()))?;
        config
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    /// What the backbone module supports: DINOv2 with a plain MLP (not the giant's SwiGLU).
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.model_type.is_empty() && self.model_type != "dinov2" {
            bail!(
                "model_type `{}` is not supported (only dinov2)",
                self.model_type
            );
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if self.patch_size == 0 || self.image_size < self.patch_size {
            bail!(
                "image_size {} and patch_size {} make no patches",
                self.image_size,
                self.patch_size
            );
        }
        if self.use_swiglu_ffn {
            bail!("use_swiglu_ffn = true (DINOv2 giant) is not supported");
        }
        svlm_model::nn::Activation::from_hf(&self.hidden_act).context("hidden_act")?;
        self.selected_stages()?;
        Ok(())
    }

    pub fn intermediate_size(&self) -> usize {
        // transformers: int(hidden_size * mlp_ratio)
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    /// Indices into the `num_hidden_layers + 1` hidden states (0 = the embeddings, `stem`) that become
    /// feature maps: `out_indices` (negative counts from the end), else `out_features` (`stageN`), else
    /// the last stage, as `BackboneConfigMixin` resolves them.
    pub fn selected_stages(&self) -> anyhow::Result<Vec<usize>> {
        let n = self.num_hidden_layers + 1;
        if let Some(indices) = &self.out_indices {
            return indices
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + n as i64 } else { i };
                    if j < 0 || j >= n as i64 {
                        bail!(
                            "backbone_config.out_indices: {i} is outside the {n} stages (stem + {} layers)",
                            self.num_hidden_layers
                        );
                    }
                    Ok(j as usize)
                })
                .collect();
        }
        if let Some(features) = &self.out_features {
            return features
                .iter()
                .map(|f| {
                    let index = if f == "stem" {
                        Some(0)
                    } else {
                        f.strip_prefix("stage").and_then(|s| s.parse::<usize>().ok())
                    };
                    match index {
                        Some(j) if j < n => Ok(j),
                        _ => bail!(
                            "backbone_config.out_features: `{f}` is not one of stem, stage1..stage{}",
                            self.num_hidden_layers
                        ),
                    }
                })
                .collect();
        }
        Ok(vec![self.num_hidden_layers])
    }
}

fn d_backbone() -> Dinov2Config {
    Dinov2Config {
        model_type: "dinov2".into(),
        hidden_size: 384,
        num_hidden_layers: d_layers(),
        num_attention_heads: 6,
        mlp_ratio: d_mlp_ratio(),
        hidden_act: d_act(),
        layer_norm_eps: d_ln_eps(),
        image_size: 518,
        patch_size: d_patch(),
        num_channels: d_channels(),
        qkv_bias: true,
        layerscale_value: d_layerscale(),
        use_swiglu_ffn: false,
        use_mask_token: true,
        apply_layernorm: true,
        reshape_hidden_states: false,
        out_indices: Some(vec![9, 10, 11, 12]),
        out_features: None,
    }
}

fn d_reassemble_hidden() -> usize {
    384
}
fn d_factors() -> Vec<f64> {
    vec![4.0, 2.0, 1.0, 0.5]
}
fn d_neck_sizes() -> Vec<usize> {
    vec![48, 96, 192, 384]
}
fn d_fusion() -> usize {
    64
}
fn d_head_in() -> i64 {
    -1
}
fn d_head_hidden() -> usize {
    32
}
fn d_depth_type() -> String {
    "relative".into()
}
fn d_max_depth() -> f64 {
    1.0
}

/// What the head outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DepthKind {
    /// ReLU output: affine-invariant inverse depth (disparity), not metres.
    Relative,
    /// `sigmoid * max_depth`: depth in metres.
    Metric,
}

/// `DepthAnythingConfig`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DepthAnythingConfig {
    #[serde(default)]
    pub model_type: String,
    /// Absent: transformers' default (a ViT-S/14 DINOv2 at 518, stages 9-12, token sequences).
    #[serde(default = "d_backbone")]
    pub backbone_config: Dinov2Config,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_reassemble_hidden")]
    pub reassemble_hidden_size: usize,
    #[serde(default = "d_factors")]
    pub reassemble_factors: Vec<f64>,
    #[serde(default = "d_neck_sizes")]
    pub neck_hidden_sizes: Vec<usize>,
    #[serde(default = "d_fusion")]
    pub fusion_hidden_size: usize,
    #[serde(default = "d_head_in")]
    pub head_in_index: i64,
    #[serde(default = "d_head_hidden")]
    pub head_hidden_size: usize,
    #[serde(default = "d_depth_type")]
    pub depth_estimation_type: String,
    #[serde(default = "d_max_depth")]
    pub max_depth: f64,
}

/// How a reassemble layer changes the patch grid's resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReassembleResize {
    /// `ConvTranspose2d(kernel = stride = factor)`.
    Up(usize),
    Identity,
    /// `Conv2d(kernel 3, stride = int(1 / factor), padding 1)`.
    Down(usize),
}

impl ReassembleResize {
    pub fn from_factor(factor: f64) -> anyhow::Result<Self> {
        if !factor.is_finite() || factor <= 0.0 {
            bail!("reassemble factor {factor} must be finite and > 0");
        }
        Ok(if factor > 1.0 {
            if factor.fract() != 0.0 {
                bail!(
                    "reassemble factor {factor} > 1 must be an integer (it is a ConvTranspose2d kernel size)"
                );
            }
            Self::Up(factor as usize)
        } else if factor == 1.0 {
            Self::Identity
        } else {
            // Python's int(1 / factor) truncates.
            Self::Down((1.0 / factor) as usize)
        })
    }
}

impl DepthAnythingConfig {
    pub fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        let config: Self = serde_json::from_value(value.clone())
            .context("not a DepthAnythingConfig (model_type depth_anything)")?;
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

    pub fn kind(&self) -> DepthKind {
        if self.depth_estimation_type == "metric" {
            DepthKind::Metric
        } else {
            DepthKind::Relative
        }
    }

    pub fn resizes(&self) -> anyhow::Result<Vec<ReassembleResize>> {
        self.reassemble_factors
            .iter()
            .map(|&f| ReassembleResize::from_factor(f))
            .collect()
    }

    /// The fused feature map the head reads (`head_in_index`, negative from the end).
    pub fn head_input(&self) -> anyhow::Result<usize> {
        let n = self.neck_hidden_sizes.len() as i64;
        let i = if self.head_in_index < 0 {
            self.head_in_index + n
        } else {
            self.head_in_index
        };
        if i < 0 || i >= n {
            bail!(
                "head_in_index {} is outside the {n} fused feature maps",
                self.head_in_index
            );
        }
        Ok(i as usize)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let b = &self.backbone_config;
        if !self.model_type.is_empty() && self.model_type != "depth_anything" {
            bail!("model_type `{}` is not depth_anything", self.model_type);
        }
        b.validate()
            .map_err(|e| anyhow::anyhow!("backbone_config: {e:#}"))?;
        if b.reshape_hidden_states {
            bail!(
                "backbone_config.reshape_hidden_states = true: Depth Anything's neck expects token sequences (false)"
            );
        }
        let stages = b.selected_stages()?;
        let n = self.neck_hidden_sizes.len();
        if n == 0 || stages.len() != n || self.reassemble_factors.len() != n {
            bail!(
                "the backbone gives {} feature maps, neck_hidden_sizes has {n}, reassemble_factors has {}: they must agree",
                stages.len(),
                self.reassemble_factors.len()
            );
        }
        if self.reassemble_hidden_size != b.hidden_size {
            bail!(
                "reassemble_hidden_size {} differs from backbone_config.hidden_size {}",
                self.reassemble_hidden_size,
                b.hidden_size
            );
        }
        self.resizes()?;
        self.head_input()?;
        if self.fusion_hidden_size < 2 {
            bail!(
                "fusion_hidden_size {} is too small",
                self.fusion_hidden_size
            );
        }
        if self.patch_size != b.patch_size {
            bail!(
                "patch_size {} differs from backbone_config.patch_size {}",
                self.patch_size,
                b.patch_size
            );
        }
        match self.depth_estimation_type.as_str() {
            "relative" | "metric" => {}
            other => bail!("depth_estimation_type `{other}` (expected relative or metric)"),
        }
        if !self.max_depth.is_finite() || self.max_depth <= 0.0 {
            bail!("max_depth {} must be finite and > 0", self.max_depth);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> serde_json::Value {
        serde_json::json!({
            "model_type": "depth_anything",
            "backbone_config": {
                "model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4,
                "num_attention_heads": 2, "image_size": 56, "out_indices": [1, 2, 3, 4],
                "reshape_hidden_states": false
            },
            "reassemble_hidden_size": 32,
            "neck_hidden_sizes": [8, 16, 16, 32],
            "fusion_hidden_size": 16,
            "depth_estimation_type": "metric",
            "max_depth": 20
        })
    }

    #[test]
    fn defaults_follow_transformers() {
        let c = DepthAnythingConfig::from_json(&small()).unwrap();
        assert_eq!(c.reassemble_factors, vec![4.0, 2.0, 1.0, 0.5]);
        assert_eq!(c.head_hidden_size, 32);
        assert_eq!(c.backbone_config.patch_size, 14);
        assert_eq!(c.backbone_config.intermediate_size(), 128);
        assert!(c.backbone_config.apply_layernorm);
        assert_eq!(c.kind(), DepthKind::Metric);
        assert_eq!(c.head_input().unwrap(), 3);
    }

    #[test]
    fn absent_backbone_config_is_transformers_default() {
        let c =
            DepthAnythingConfig::from_json(&serde_json::json!({"model_type": "depth_anything"}))
                .unwrap();
        let b = &c.backbone_config;
        assert_eq!(
            (b.hidden_size, b.num_attention_heads, b.image_size),
            (384, 6, 518)
        );
        assert_eq!(b.selected_stages().unwrap(), vec![9, 10, 11, 12]);
        assert_eq!(c.kind(), DepthKind::Relative);
        assert_eq!(c.max_depth, 1.0);
    }

    #[test]
    fn stages_from_indices_or_features() {
        let mut c = DepthAnythingConfig::from_json(&small())
            .unwrap()
            .backbone_config;
        assert_eq!(c.selected_stages().unwrap(), vec![1, 2, 3, 4]);
        c.out_indices = Some(vec![-1, 0]);
        assert_eq!(c.selected_stages().unwrap(), vec![4, 0]);
        c.out_indices = None;
        c.out_features = Some(vec!["stem".into(), "stage3".into()]);
        assert_eq!(c.selected_stages().unwrap(), vec![0, 3]);
        c.out_features = Some(vec!["stage9".into()]);
        assert!(c.selected_stages().is_err());
    }

    #[test]
    fn factors_map_to_resize_layers() {
        assert_eq!(
            ReassembleResize::from_factor(4.0).unwrap(),
            ReassembleResize::Up(4)
        );
        assert_eq!(
            ReassembleResize::from_factor(1.0).unwrap(),
            ReassembleResize::Identity
        );
        assert_eq!(
            ReassembleResize::from_factor(0.5).unwrap(),
            ReassembleResize::Down(2)
        );
        assert!(ReassembleResize::from_factor(1.5).is_err());
        assert!(ReassembleResize::from_factor(0.0).is_err());
    }

    #[test]
    fn inconsistent_neck_is_rejected() {
        let mut v = small();
        v["neck_hidden_sizes"] = serde_json::json!([8, 16, 32]);
        let err = DepthAnythingConfig::from_json(&v).unwrap_err().to_string();
        assert!(err.contains("neck_hidden_sizes"), "{err}");
        let mut v = small();
        v["depth_estimation_type"] = serde_json::json!("absolute");
        assert!(DepthAnythingConfig::from_json(&v).is_err());
    }
}
