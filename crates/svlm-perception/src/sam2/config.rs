//! `config.json` of an HF `Sam2Model` folder (`model_type` `sam2`), with transformers 5's defaults (those of
//! `facebook/sam2.1-hiera-tiny`) for absent keys. Keys this implementation does not read (the memory and video
//! settings, generic `PreTrainedConfig` keys) are ignored; values it cannot run (non-square kernels, a layout
//! transformers itself cannot run, other backbones) are refused with the key named.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Deserializer, Serialize};

/// An `int | [int, int]` config value as `(height, width)`.
fn pair<'de, D: Deserializer<'de>>(d: D) -> Result<[usize; 2], D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrPair {
        Int(usize),
        Pair([usize; 2]),
    }
    Ok(match IntOrPair::deserialize(d)? {
        IntOrPair::Int(v) => [v, v],
        IntOrPair::Pair(p) => p,
    })
}

/// `Sam2HieraDetConfig`: the multi-scale Hiera image encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sam2HieraConfig {
    pub model_type: String,
    /// Channels after the patch embedding (the first stage's width).
    pub hidden_size: usize,
    pub num_channels: usize,
    #[serde(deserialize_with = "pair")]
    pub image_size: [usize; 2],
    #[serde(deserialize_with = "pair")]
    pub patch_kernel_size: [usize; 2],
    #[serde(deserialize_with = "pair")]
    pub patch_stride: [usize; 2],
    #[serde(deserialize_with = "pair")]
    pub patch_padding: [usize; 2],
    /// Max-pooling of the queries in the first block of stages `1..=num_query_pool_stages`.
    #[serde(deserialize_with = "pair")]
    pub query_stride: [usize; 2],
    /// Size of the background position embedding, interpolated (bicubic) to the patch grid.
    #[serde(deserialize_with = "pair")]
    pub window_positional_embedding_background_size: [usize; 2],
    pub num_query_pool_stages: usize,
    pub blocks_per_stage: Vec<usize>,
    pub embed_dim_per_stage: Vec<usize>,
    pub num_attention_heads_per_stage: Vec<usize>,
    /// Attention window of each stage; a stage's first block uses the previous stage's window.
    pub window_size_per_stage: Vec<usize>,
    /// Blocks (numbered over all stages) that attend over the whole grid.
    pub global_attention_blocks: Vec<usize>,
    pub mlp_ratio: f64,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for Sam2HieraConfig {
    fn default() -> Self {
        Self {
            model_type: "sam2_hiera_det_model".into(),
            hidden_size: 96,
            num_channels: 3,
            image_size: [1024, 1024],
            patch_kernel_size: [7, 7],
            patch_stride: [4, 4],
            patch_padding: [3, 3],
            query_stride: [2, 2],
            window_positional_embedding_background_size: [7, 7],
            num_query_pool_stages: 3,
            blocks_per_stage: vec![1, 2, 7, 2],
            embed_dim_per_stage: vec![96, 192, 384, 768],
            num_attention_heads_per_stage: vec![1, 2, 4, 8],
            window_size_per_stage: vec![8, 4, 14, 7],
            global_attention_blocks: vec![5, 7, 9],
            mlp_ratio: 4.0,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-6,
        }
    }
}

/// What one Hiera block does, derived from the stage lists (`Sam2MultiScaleBlock.__init__`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HieraBlock {
    pub stage: usize,
    pub dim_in: usize,
    pub dim_out: usize,
    pub heads: usize,
    /// `None`: global attention.
    pub window: Option<usize>,
    /// Query pooling stride (the first block of a pooling stage).
    pub query_stride: Option<usize>,
    /// Side of the (square) grid the block reads.
    pub grid_in: usize,
    pub grid_out: usize,
}

impl Sam2HieraConfig {
    pub fn stages(&self) -> usize {
        self.blocks_per_stage.len()
    }

    /// Side of the patch grid: the patch convolution's output.
    pub fn patch_grid(&self) -> usize {
        let [k, s, p] = [
            self.patch_kernel_size[0],
            self.patch_stride[0],
            self.patch_padding[0],
        ];
        (self.image_size[0] + 2 * p).saturating_sub(k) / s.max(1) + 1
    }

    /// Every block in order, with its widths, window, pooling and grid; errors name the key at fault.
    pub fn blocks(&self) -> anyhow::Result<Vec<HieraBlock>> {
        let n = self.stages();
        ensure!(n > 0, "`blocks_per_stage` is empty");
        for (key, len) in [
            ("embed_dim_per_stage", self.embed_dim_per_stage.len()),
            (
                "num_attention_heads_per_stage",
                self.num_attention_heads_per_stage.len(),
            ),
            ("window_size_per_stage", self.window_size_per_stage.len()),
        ] {
            ensure!(
                len == n,
                "`{key}` has {len} entries, `blocks_per_stage` {n}"
            );
        }
        ensure!(
            self.num_query_pool_stages < n,
            "`num_query_pool_stages` {} must be below the number of stages {n}",
            self.num_query_pool_stages
        );
        let stride = self.query_stride[0];
        let mut blocks = Vec::new();
        let mut grid = self.patch_grid();
        for stage in 0..n {
            for in_stage in 0..self.blocks_per_stage[stage] {
                let index = blocks.len();
                let first_of_later = stage > 0 && in_stage == 0;
                let from = if first_of_later { stage - 1 } else { stage };
                let window = self.window_size_per_stage[from];
                let window = (!self.global_attention_blocks.contains(&index) && window > 0)
                    .then_some(window);
                let query_stride =
                    (first_of_later && stage <= self.num_query_pool_stages).then_some(stride);
                let (dim_in, dim_out) = (
                    self.embed_dim_per_stage[from],
                    self.embed_dim_per_stage[stage],
                );
                let heads = self.num_attention_heads_per_stage[stage];
                ensure!(
                    heads > 0 && dim_out.is_multiple_of(heads),
                    "stage {stage}: embed_dim {dim_out} is not a positive multiple of {heads} heads"
                );
                let grid_out = match query_stride {
                    Some(s) => grid / s,
                    None => grid,
                };
                if let Some(s) = query_stride {
                    ensure!(
                        dim_in != dim_out,
                        "block {index} pools its queries but keeps the width {dim_in}: transformers adds the \
                         unpooled input to the pooled output (`embed_dim_per_stage` must change at pooling stages)"
                    );
                    let Some(w) = window else {
                        bail!(
                            "block {index} pools its queries with global attention, which transformers cannot run \
                             (`global_attention_blocks` must not hold the first block of a pooling stage)"
                        );
                    };
                    let pooled = w / s;
                    ensure!(
                        w.is_multiple_of(s)
                            && grid.div_ceil(w) * w / s == grid_out.div_ceil(pooled) * pooled,
                        "block {index}: window {w} on a grid of {grid} pooled by {s} does not give whole windows \
                         (transformers cannot run it)"
                    );
                }
                blocks.push(HieraBlock {
                    stage,
                    dim_in,
                    dim_out,
                    heads,
                    window,
                    query_stride,
                    grid_in: grid,
                    grid_out,
                });
                grid = grid_out;
            }
        }
        Ok(blocks)
    }

    /// Side of the grid at the end of each stage.
    pub fn stage_grids(&self) -> anyhow::Result<Vec<usize>> {
        let blocks = self.blocks()?;
        Ok((0..self.stages())
            .map(|s| {
                blocks
                    .iter()
                    .rfind(|b| b.stage == s)
                    .map_or(0, |b| b.grid_out)
            })
            .collect())
    }

    pub fn mlp_dim(&self, dim: usize) -> usize {
        (dim as f64 * self.mlp_ratio) as usize
    }
}

/// `Sam2VisionConfig`: the backbone and its FPN neck.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sam2VisionConfig {
    pub model_type: String,
    pub backbone_config: Sam2HieraConfig,
    /// Input channels of the neck's convolutions: the stage widths, last stage first.
    pub backbone_channel_list: Vec<usize>,
    /// `(height, width)` of the feature levels the mask decoder takes, high resolution first.
    pub backbone_feature_sizes: Vec<[usize; 2]>,
    pub fpn_hidden_size: usize,
    pub fpn_kernel_size: usize,
    pub fpn_stride: usize,
    pub fpn_padding: usize,
    /// Stages whose lateral features get the (2x nearest-upsampled) features of the stage below.
    pub fpn_top_down_levels: Vec<usize>,
    pub num_feature_levels: usize,
}

impl Default for Sam2VisionConfig {
    fn default() -> Self {
        Self {
            model_type: "sam2_vision_model".into(),
            backbone_config: Sam2HieraConfig::default(),
            backbone_channel_list: vec![768, 384, 192, 96],
            backbone_feature_sizes: vec![[256, 256], [128, 128], [64, 64]],
            fpn_hidden_size: 256,
            fpn_kernel_size: 1,
            fpn_stride: 1,
            fpn_padding: 0,
            fpn_top_down_levels: vec![2, 3],
            num_feature_levels: 3,
        }
    }
}

/// `Sam2PromptEncoderConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sam2PromptEncoderConfig {
    pub hidden_size: usize,
    /// The model input size prompts are normalized by.
    pub image_size: usize,
    pub patch_size: usize,
    pub mask_input_channels: usize,
    pub num_point_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for Sam2PromptEncoderConfig {
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

impl Sam2PromptEncoderConfig {
    /// Side of the image embedding grid.
    pub fn image_embedding_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }
}

/// `Sam2MaskDecoderConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sam2MaskDecoderConfig {
    pub hidden_size: usize,
    /// Width of the two-way transformer's MLPs, whose depth is `num_hidden_layers` (as transformers builds them).
    pub mlp_dim: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub attention_downsample_rate: usize,
    pub num_multimask_outputs: usize,
    pub iou_head_depth: usize,
    pub iou_head_hidden_dim: usize,
    /// Single-mask output: fall back to the best multimask candidate when the single mask is unstable.
    pub dynamic_multimask_via_stability: bool,
    pub dynamic_multimask_stability_delta: f64,
    pub dynamic_multimask_stability_thresh: f64,
}

impl Default for Sam2MaskDecoderConfig {
    fn default() -> Self {
        Self {
            hidden_size: 256,
            mlp_dim: 2048,
            num_hidden_layers: 2,
            num_attention_heads: 8,
            attention_downsample_rate: 2,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            dynamic_multimask_via_stability: true,
            dynamic_multimask_stability_delta: 0.05,
            dynamic_multimask_stability_thresh: 0.98,
        }
    }
}

/// `Sam2Config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sam2Config {
    pub model_type: String,
    pub vision_config: Sam2VisionConfig,
    pub prompt_encoder_config: Sam2PromptEncoderConfig,
    pub mask_decoder_config: Sam2MaskDecoderConfig,
}

impl Default for Sam2Config {
    fn default() -> Self {
        Self {
            model_type: "sam2".into(),
            vision_config: Sam2VisionConfig::default(),
            prompt_encoder_config: Sam2PromptEncoderConfig::default(),
            mask_decoder_config: Sam2MaskDecoderConfig::default(),
        }
    }
}

impl Sam2Config {
    pub fn from_json(value: &serde_json::Value) -> anyhow::Result<Self> {
        let config: Self =
            serde_json::from_value(value.clone()).context("not a SAM 2 config.json")?;
        if config.model_type != "sam2" {
            bail!(
                "model_type is `{}`, expected `sam2` (a `Sam2Model` folder)",
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

    /// Side of the (square) model input.
    pub fn image_size(&self) -> usize {
        self.vision_config.backbone_config.image_size[0]
    }

    /// The backbone's grid at each of the feature levels the mask decoder takes, high resolution first.
    pub fn feature_grids(&self) -> anyhow::Result<Vec<usize>> {
        let grids = self.vision_config.backbone_config.stage_grids()?;
        Ok(grids[..self.vision_config.num_feature_levels.min(grids.len())].to_vec())
    }

    /// What the modules rely on; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let v = &self.vision_config;
        let b = &v.backbone_config;
        let p = &self.prompt_encoder_config;
        let d = &self.mask_decoder_config;
        if v.model_type != "sam2_vision_model" {
            bail!(
                "vision_config.model_type `{}` is not supported (only `sam2_vision_model`)",
                v.model_type
            );
        }
        if b.model_type != "sam2_hiera_det_model" {
            bail!(
                "vision_config.backbone_config.model_type `{}` is not supported (only the Hiera backbone, \
                 `sam2_hiera_det_model`)",
                b.model_type
            );
        }
        for (key, [h, w]) in [
            ("image_size", b.image_size),
            ("patch_kernel_size", b.patch_kernel_size),
            ("patch_stride", b.patch_stride),
            ("patch_padding", b.patch_padding),
            ("query_stride", b.query_stride),
        ] {
            if h != w {
                bail!("backbone_config.{key} [{h}, {w}] is not supported (only square values)");
            }
        }
        let positive = [
            ("backbone_config.hidden_size", b.hidden_size),
            ("backbone_config.image_size", b.image_size[0]),
            ("backbone_config.patch_kernel_size", b.patch_kernel_size[0]),
            ("backbone_config.patch_stride", b.patch_stride[0]),
            ("backbone_config.query_stride", b.query_stride[0]),
            (
                "backbone_config.window_positional_embedding_background_size",
                b.window_positional_embedding_background_size[0]
                    * b.window_positional_embedding_background_size[1],
            ),
            ("fpn_hidden_size", v.fpn_hidden_size),
            ("fpn_kernel_size", v.fpn_kernel_size),
            ("fpn_stride", v.fpn_stride),
            ("prompt_encoder_config.patch_size", p.patch_size),
            (
                "mask_decoder_config.num_attention_heads",
                d.num_attention_heads,
            ),
            (
                "mask_decoder_config.attention_downsample_rate",
                d.attention_downsample_rate,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("`{key}` must be positive");
            }
        }
        if b.embed_dim_per_stage.first() != Some(&b.hidden_size) {
            bail!(
                "backbone_config.hidden_size {} differs from the first stage's embed_dim {:?}",
                b.hidden_size,
                b.embed_dim_per_stage.first()
            );
        }
        b.blocks().context("in vision_config.backbone_config")?;
        let grids = b.stage_grids()?;
        let n = b.stages();
        let w0 = b.window_size_per_stage[0];
        let patch_grid = b.patch_grid();
        if w0 == 0 || !patch_grid.is_multiple_of(w0) {
            bail!(
                "the patch grid {patch_grid} is not a multiple of window_size_per_stage[0] {w0} (the window \
                 position embedding is tiled over it)"
            );
        }
        let reversed: Vec<usize> = b.embed_dim_per_stage.iter().rev().copied().collect();
        if v.backbone_channel_list != reversed {
            bail!(
                "vision_config.backbone_channel_list {:?} must be the stage widths, last first ({reversed:?})",
                v.backbone_channel_list
            );
        }
        if v.num_feature_levels != 3 || n < 3 {
            bail!(
                "num_feature_levels {} with {n} stages is not supported: the mask decoder takes exactly three levels",
                v.num_feature_levels
            );
        }
        if let Some(&level) = v.fpn_top_down_levels.iter().find(|&&l| l >= n) {
            bail!("fpn_top_down_levels holds {level}, past the {n} stages");
        }
        // Every FPN level after a lateral convolution, and the top-down path doubling the grid below it.
        let fpn_grid =
            |g: usize| (g + 2 * v.fpn_padding).saturating_sub(v.fpn_kernel_size) / v.fpn_stride + 1;
        for i in 0..n - 1 {
            if v.fpn_top_down_levels.contains(&i)
                && fpn_grid(grids[i]) != 2 * fpn_grid(grids[i + 1])
            {
                bail!(
                    "fpn_top_down_levels holds {i}, but stage {i}'s grid {} is not twice stage {}'s {}",
                    grids[i],
                    i + 1,
                    grids[i + 1]
                );
            }
        }
        let levels: Vec<usize> = grids[..3].iter().map(|&g| fpn_grid(g)).collect();
        let sizes: Vec<[usize; 2]> = levels.iter().map(|&g| [g, g]).collect();
        if v.backbone_feature_sizes != sizes {
            bail!(
                "vision_config.backbone_feature_sizes {:?} differ from the feature grids {sizes:?} of a {} px input",
                v.backbone_feature_sizes,
                b.image_size[0]
            );
        }
        let c = v.fpn_hidden_size;
        if p.hidden_size != c || d.hidden_size != c {
            bail!(
                "the FPN's fpn_hidden_size ({c}), the prompt encoder's hidden_size ({}) and the mask decoder's \
                 hidden_size ({}) must agree",
                p.hidden_size,
                d.hidden_size
            );
        }
        if !c.is_multiple_of(8) || c < 16 {
            bail!(
                "the mask decoder's hidden_size {c} must be a multiple of 8 (upscaling divides it by 4, then 2)"
            );
        }
        if p.image_size != b.image_size[0] || p.image_embedding_size() != levels[2] {
            bail!(
                "the prompt encoder's image_size {} / patch_size {} must be the backbone's image_size {} and its \
                 lowest-resolution feature grid {}",
                p.image_size,
                p.patch_size,
                b.image_size[0],
                levels[2]
            );
        }
        if levels[1] != 2 * levels[2] || levels[0] != 4 * levels[2] {
            bail!(
                "the feature grids {levels:?} must double from level to level: the mask decoder upscales twice by 2"
            );
        }
        if p.num_point_embeddings < 4 {
            bail!(
                "num_point_embeddings {} < 4: box corners use embeddings 2 and 3",
                p.num_point_embeddings
            );
        }
        for (what, internal) in [
            ("self-attention", d.hidden_size),
            (
                "cross-attention",
                d.hidden_size / d.attention_downsample_rate,
            ),
        ] {
            if internal == 0 || !internal.is_multiple_of(d.num_attention_heads) {
                bail!(
                    "the mask decoder's {what} width {internal} is not a positive multiple of num_attention_heads {}",
                    d.num_attention_heads
                );
            }
        }
        if d.iou_head_depth < 2 || d.num_hidden_layers < 1 {
            bail!("mask_decoder_config: iou_head_depth must be >= 2 and num_hidden_layers >= 1");
        }
        if d.num_multimask_outputs == 0 {
            bail!("mask_decoder_config.num_multimask_outputs must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_take_the_hiera_tiny_defaults() {
        let c = Sam2Config::from_json(&serde_json::json!({"model_type": "sam2"})).unwrap();
        let b = &c.vision_config.backbone_config;
        assert_eq!(b.patch_grid(), 256);
        assert_eq!(b.stage_grids().unwrap(), vec![256, 128, 64, 32]);
        let blocks = b.blocks().unwrap();
        assert_eq!(blocks.len(), 12);
        // Block 1 opens stage 1: stage 0's window, pooled queries, 96 -> 192 channels.
        assert_eq!(
            blocks[1],
            HieraBlock {
                stage: 1,
                dim_in: 96,
                dim_out: 192,
                heads: 2,
                window: Some(8),
                query_stride: Some(2),
                grid_in: 256,
                grid_out: 128,
            }
        );
        assert_eq!(blocks[5].window, None);
        assert_eq!(blocks[10].window, Some(14));
        assert_eq!(c.feature_grids().unwrap(), vec![256, 128, 64]);
    }

    #[test]
    fn the_larger_hiera_layouts_validate() {
        // sam2.1-hiera-small, -base-plus and -large: the stage-3 windows pool from 14 (padded 64 -> 70) or 16.
        for (hidden, blocks, globals, windows) in [
            (96, [1, 2, 11, 2], [7, 10, 13], [8, 4, 14, 7]),
            (112, [2, 3, 16, 3], [12, 16, 20], [8, 4, 14, 7]),
            (144, [2, 6, 36, 4], [23, 33, 43], [8, 4, 16, 8]),
        ] {
            let dims: Vec<usize> = (0..4).map(|i| hidden << i).collect();
            let json = serde_json::json!({
                "model_type": "sam2",
                "vision_config": {
                    "backbone_config": {"hidden_size": hidden, "blocks_per_stage": blocks,
                        "embed_dim_per_stage": dims, "num_attention_heads_per_stage": [2, 4, 8, 16],
                        "global_attention_blocks": globals, "window_size_per_stage": windows},
                    "backbone_channel_list": dims.iter().rev().collect::<Vec<_>>()
                }
            });
            let c = Sam2Config::from_json(&json).unwrap();
            assert_eq!(c.feature_grids().unwrap(), vec![256, 128, 64]);
        }
    }

    #[test]
    fn int_or_pair_values_and_unsupported_ones() {
        let c = Sam2Config::from_json(&serde_json::json!({
            "model_type": "sam2",
            "vision_config": {"backbone_config": {"patch_stride": 4, "image_size": [1024, 1024]}}
        }))
        .unwrap();
        assert_eq!(c.vision_config.backbone_config.patch_stride, [4, 4]);
        let refused = |value: serde_json::Value, part: &str| {
            let err = Sam2Config::from_json(&value).unwrap_err();
            assert!(format!("{err:#}").contains(part), "{part}: {err:#}");
        };
        refused(serde_json::json!({"model_type": "sam"}), "sam2");
        refused(
            serde_json::json!({"model_type": "sam2", "vision_config": {"backbone_config": {"patch_stride": [4, 2]}}}),
            "patch_stride",
        );
        refused(
            serde_json::json!({"model_type": "sam2", "vision_config": {"backbone_config": {"model_type": "timm"}}}),
            "backbone_config.model_type",
        );
        refused(
            serde_json::json!({"model_type": "sam2", "vision_config": {"num_feature_levels": 2}}),
            "num_feature_levels",
        );
        refused(
            serde_json::json!({"model_type": "sam2", "vision_config": {"backbone_config": {"global_attention_blocks": [3]}}}),
            "global attention",
        );
        refused(
            serde_json::json!({"model_type": "sam2", "prompt_encoder_config": {"hidden_size": 128}}),
            "must agree",
        );
        refused(
            serde_json::json!({"model_type": "sam2", "vision_config": {"backbone_feature_sizes": [[128, 128], [64, 64], [32, 32]]}}),
            "backbone_feature_sizes",
        );
    }
}
