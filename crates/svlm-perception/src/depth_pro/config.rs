//! `config.json` of an HF `DepthProForDepthEstimation` folder (`DepthProConfig`, `model_type` `depth_pro`): three
//! DINOv2 encoders (patch, image, FoV) given as sub-configs, with transformers 5's defaults for absent keys.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::config::Dinov2Config;

fn d_fusion() -> usize {
    256
}
fn d_patch() -> usize {
    384
}
fn d_hooks() -> Vec<usize> {
    vec![11, 5]
}
fn d_intermediate_dims() -> Vec<usize> {
    vec![256, 256]
}
fn d_ratios() -> Vec<f64> {
    vec![0.25, 0.5, 1.0]
}
fn d_overlaps() -> Vec<f64> {
    vec![0.0, 0.5, 0.25]
}
fn d_scaled_dims() -> Vec<usize> {
    vec![1024, 1024, 512]
}
fn d_merge_padding() -> usize {
    3
}
fn d_fov_layers() -> usize {
    2
}

/// `DepthProConfig`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DepthProConfig {
    #[serde(default)]
    pub model_type: String,
    #[serde(default = "d_fusion")]
    pub fusion_hidden_size: usize,
    /// Side of the square patches the encoders see (every encoder's `image_size`).
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// Layers of the patch encoder whose hidden states become the two finest feature maps.
    #[serde(default = "d_hooks")]
    pub intermediate_hook_ids: Vec<usize>,
    #[serde(default = "d_intermediate_dims")]
    pub intermediate_feature_dims: Vec<usize>,
    /// Scales of the input the patch encoder sees, low to high resolution.
    #[serde(default = "d_ratios")]
    pub scaled_images_ratios: Vec<f64>,
    #[serde(default = "d_overlaps")]
    pub scaled_images_overlap_ratios: Vec<f64>,
    #[serde(default = "d_scaled_dims")]
    pub scaled_images_feature_dims: Vec<usize>,
    /// Tokens of overlap removed at each inner patch edge when merging, at scale 1 (more at lower scales).
    #[serde(default = "d_merge_padding")]
    pub merge_padding_value: usize,
    #[serde(default)]
    pub use_batch_norm_in_fusion_residual: bool,
    /// Absent or null: `!use_batch_norm_in_fusion_residual`.
    #[serde(default)]
    pub use_bias_in_fusion_residual: Option<bool>,
    #[serde(default)]
    pub use_fov_model: bool,
    #[serde(default = "d_fov_layers")]
    pub num_fov_head_layers: usize,
    /// Absent: transformers' default DINOv2 (`Dinov2Config()` at `image_size = patch_size`).
    #[serde(default)]
    pub image_model_config: Option<Dinov2Config>,
    #[serde(default)]
    pub patch_model_config: Option<Dinov2Config>,
    #[serde(default)]
    pub fov_model_config: Option<Dinov2Config>,
}

impl DepthProConfig {
    pub fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        let mut config: Self = serde_json::from_value(value.clone())
            .context("not a DepthProConfig (model_type depth_pro)")?;
        // As `DepthProConfig.__post_init__`: every encoder sees `patch_size` x `patch_size` images.
        for sub in [
            &mut config.image_model_config,
            &mut config.patch_model_config,
            &mut config.fov_model_config,
        ] {
            let mut c = match sub.take() {
                Some(c) => c,
                None => serde_json::from_value(serde_json::json!({"model_type": "dinov2"}))
                    .context("the default DINOv2 config")?,
            };
            c.image_size = config.patch_size;
            *sub = Some(c);
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

    /// The encoder configs (filled in by [`Self::from_json`]).
    pub fn image_model(&self) -> anyhow::Result<&Dinov2Config> {
        self.image_model_config
            .as_ref()
            .context("image_model_config is not set")
    }
    pub fn patch_model(&self) -> anyhow::Result<&Dinov2Config> {
        self.patch_model_config
            .as_ref()
            .context("patch_model_config is not set")
    }
    pub fn fov_model(&self) -> anyhow::Result<&Dinov2Config> {
        self.fov_model_config
            .as_ref()
            .context("fov_model_config is not set")
    }

    /// Tokens per side of the image encoder's grid: the side of the coarsest feature map.
    pub fn out_size(&self) -> anyhow::Result<usize> {
        let m = self.image_model()?;
        Ok(m.image_size / m.patch_size)
    }

    pub fn use_bias_in_fusion_residual(&self) -> bool {
        self.use_bias_in_fusion_residual
            .unwrap_or(!self.use_batch_norm_in_fusion_residual)
    }

    /// Input channels of the FoV head's convolutions, then of its final one: `ceil(fusion / 2^(i + 1))`.
    pub fn fov_head_channels(&self) -> Vec<usize> {
        (0..=self.num_fov_head_layers + 1)
            .map(|i| self.fusion_hidden_size.div_ceil(1 << (i + 1)))
            .collect()
    }

    /// Kernel of the FoV head's final convolution: what remains of the `out_size` grid after the strided
    /// layers, so the head gives one number.
    pub fn fov_final_kernel(&self) -> anyhow::Result<usize> {
        let out = self.out_size()?;
        Ok(((out as f64 - 1.0) / (1u64 << self.num_fov_head_layers) as f64 + 1.0) as usize)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.model_type.is_empty() && self.model_type != "depth_pro" {
            bail!("model_type `{}` is not depth_pro", self.model_type);
        }
        for (name, sub) in [
            ("image_model_config", &self.image_model_config),
            ("patch_model_config", &self.patch_model_config),
            ("fov_model_config", &self.fov_model_config),
        ] {
            let Some(sub) = sub else {
                bail!("{name} is not set");
            };
            sub.validate().with_context(|| name.to_string())?;
            if sub.image_size != self.patch_size || !self.patch_size.is_multiple_of(sub.patch_size)
            {
                bail!(
                    "{name}: image_size {} and patch_size {} must make a whole grid of the model's patch_size {}",
                    sub.image_size,
                    sub.patch_size,
                    self.patch_size
                );
            }
        }
        let n = self.scaled_images_ratios.len();
        if n == 0
            || self.scaled_images_overlap_ratios.len() != n
            || self.scaled_images_feature_dims.len() != n
        {
            bail!(
                "scaled_images_ratios ({n}), scaled_images_overlap_ratios ({}) and scaled_images_feature_dims ({}) \
                 must have one entry per scale",
                self.scaled_images_overlap_ratios.len(),
                self.scaled_images_feature_dims.len()
            );
        }
        if self
            .scaled_images_ratios
            .iter()
            .any(|&r| !(r.is_finite() && r > 0.0))
            || self.scaled_images_ratios.windows(2).any(|w| w[0] > w[1])
        {
            bail!(
                "scaled_images_ratios {:?} must be positive and sorted from low to high",
                self.scaled_images_ratios
            );
        }
        if self
            .scaled_images_overlap_ratios
            .iter()
            .any(|&o| !(0.0..1.0).contains(&o))
        {
            bail!(
                "scaled_images_overlap_ratios {:?} must be in [0, 1)",
                self.scaled_images_overlap_ratios
            );
        }
        if self.intermediate_hook_ids.len() != self.intermediate_feature_dims.len() {
            bail!(
                "intermediate_hook_ids ({}) and intermediate_feature_dims ({}) must have the same length",
                self.intermediate_hook_ids.len(),
                self.intermediate_feature_dims.len()
            );
        }
        if n + self.intermediate_hook_ids.len() < 2 {
            bail!("the fusion stage needs at least two feature maps (scales + intermediate hooks)");
        }
        let layers = self.patch_model()?.num_hidden_layers;
        if let Some(&h) = self.intermediate_hook_ids.iter().find(|&&h| h >= layers) {
            bail!(
                "intermediate_hook_ids: layer {h} is not one of the patch encoder's {layers} layers"
            );
        }
        if self.use_batch_norm_in_fusion_residual {
            bail!("use_batch_norm_in_fusion_residual = true is not supported");
        }
        if self.fusion_hidden_size < 2 {
            bail!(
                "fusion_hidden_size {} is too small",
                self.fusion_hidden_size
            );
        }
        if self.use_fov_model {
            self.validate_fov_head()?;
        }
        Ok(())
    }

    fn validate_fov_head(&self) -> anyhow::Result<()> {
        let f = self.fusion_hidden_size;
        if f >> self.num_fov_head_layers == 0 || !f.is_multiple_of(2) {
            bail!(
                "fusion_hidden_size {f} must be even and at least 2^num_fov_head_layers ({})",
                1u64 << self.num_fov_head_layers
            );
        }
        // Each strided 3x3 convolution (padding 1) maps a side s to (s - 1) / 2 + 1.
        let out = self.out_size()?;
        let side = (0..self.num_fov_head_layers).fold(out, |s, _| (s - 1) / 2 + 1);
        let kernel = self.fov_final_kernel()?;
        if kernel != side {
            bail!(
                "the FoV head's final {kernel}x{kernel} convolution does not reduce its {side}x{side} input to one value \
                 (image encoder grid {out}, num_fov_head_layers {})",
                self.num_fov_head_layers
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> serde_json::Value {
        let dinov2 = |hidden: usize, layers: usize, patch: usize| {
            serde_json::json!({
                "model_type": "dinov2", "hidden_size": hidden, "num_hidden_layers": layers,
                "num_attention_heads": 2, "patch_size": patch, "image_size": 999
            })
        };
        serde_json::json!({
            "model_type": "depth_pro",
            "patch_size": 16,
            "fusion_hidden_size": 8,
            "intermediate_hook_ids": [2, 1],
            "intermediate_feature_dims": [12, 8],
            "scaled_images_feature_dims": [16, 12, 8],
            "use_fov_model": true,
            "patch_model_config": dinov2(16, 3, 4),
            "image_model_config": dinov2(24, 2, 4),
            "fov_model_config": dinov2(16, 2, 8)
        })
    }

    #[test]
    fn encoders_take_the_patch_size_and_defaults_follow_transformers() {
        let c = DepthProConfig::from_json(&tiny()).unwrap();
        for sub in [c.image_model(), c.patch_model(), c.fov_model()] {
            assert_eq!(sub.unwrap().image_size, 16);
        }
        assert_eq!(c.scaled_images_ratios, vec![0.25, 0.5, 1.0]);
        assert_eq!(c.scaled_images_overlap_ratios, vec![0.0, 0.5, 0.25]);
        assert_eq!(c.merge_padding_value, 3);
        assert!(c.use_bias_in_fusion_residual());
        assert_eq!(c.out_size().unwrap(), 4);
        assert_eq!(c.fov_head_channels(), vec![4, 2, 1, 1]);
        assert_eq!(c.fov_final_kernel().unwrap(), 1);
    }

    #[test]
    fn the_real_model_shapes() {
        // apple/DepthPro-hf: ViT-L/16 encoders at 384, fusion 256.
        let dinov2 = serde_json::json!({
            "model_type": "dinov2", "hidden_size": 1024, "num_hidden_layers": 24,
            "num_attention_heads": 16, "patch_size": 16, "image_size": 384
        });
        let c = DepthProConfig::from_json(&serde_json::json!({
            "model_type": "depth_pro", "use_fov_model": true,
            "patch_model_config": dinov2, "image_model_config": dinov2, "fov_model_config": dinov2
        }))
        .unwrap();
        assert_eq!(c.out_size().unwrap(), 24);
        assert_eq!(c.fov_head_channels(), vec![128, 64, 32, 16]);
        assert_eq!(c.fov_final_kernel().unwrap(), 6);
    }

    #[test]
    fn inconsistent_configs_name_the_key() {
        let mut v = tiny();
        v["intermediate_hook_ids"] = serde_json::json!([5, 1]);
        let err = format!("{:#}", DepthProConfig::from_json(&v).unwrap_err());
        assert!(err.contains("intermediate_hook_ids"), "{err}");
        let mut v = tiny();
        v["scaled_images_ratios"] = serde_json::json!([1.0, 0.5, 0.25]);
        let err = format!("{:#}", DepthProConfig::from_json(&v).unwrap_err());
        assert!(err.contains("sorted"), "{err}");
        let mut v = tiny();
        v["scaled_images_feature_dims"] = serde_json::json!([16, 12]);
        let err = format!("{:#}", DepthProConfig::from_json(&v).unwrap_err());
        assert!(err.contains("scaled_images_feature_dims"), "{err}");
        let mut v = tiny();
        v["model_type"] = serde_json::json!("depth_anything");
        assert!(DepthProConfig::from_json(&v).is_err());
        let mut v = tiny();
        v["fov_model_config"]["patch_size"] = serde_json::json!(5);
        let err = format!("{:#}", DepthProConfig::from_json(&v).unwrap_err());
        assert!(err.contains("fov_model_config"), "{err}");
    }
}
