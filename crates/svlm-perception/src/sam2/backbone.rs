//! The SAM 2 image encoder (`Sam2VisionModel`) with the checkpoint's parameter paths under `vision_encoder.`:
//! the Hiera backbone (`backbone.patch_embed`, `backbone.pos_embed`, `backbone.pos_embed_window`,
//! `backbone.blocks.N`) — stages of windowed or global attention, the first block of a pooling stage max-pooling
//! its queries and projecting the residual to the wider stage — and the FPN neck (`neck.convs.N`: a lateral
//! convolution per stage, a 2x nearest top-down path into `fpn_top_down_levels`).

use anyhow::Result;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor, TensorData};
use svlm_model::nn::{Activation, LayerNorm, Linear, attention};

use crate::model::Conv2d;
use crate::sam::model::{SamFeedForward, window_partition, window_unpartition};
use crate::sam2::config::{HieraBlock, Sam2HieraConfig, Sam2VisionConfig};

pub(crate) const INIT_STD: f64 = 0.02;

/// 2D max pooling of a `[B, H, W, C]` map with kernel = stride = `s`, trailing rows and columns dropped
/// (`max_pool2d(ceil_mode=False)`).
fn max_pool(x: Tensor<4>, s: usize) -> Tensor<4> {
    let [b, h, w, c] = x.dims();
    let (ho, wo) = (h / s, w / s);
    let x = if (ho * s, wo * s) == (h, w) {
        x
    } else {
        x.slice([0..b, 0..ho * s, 0..wo * s, 0..c])
    };
    let x: Tensor<6> = x.reshape([b, ho, s, wo, s, c]);
    x.max_dim(2).max_dim(4).reshape([b, ho, wo, c])
}

/// `Sam2MultiScaleAttention`: attention over a (window of the) grid, the queries max-pooled when the block
/// opens a pooling stage, so the output has the pooled grid and the stage's width.
#[derive(Module, Debug)]
pub struct Sam2MultiScaleAttention {
    pub qkv: Linear,
    pub proj: Linear,
    #[module(skip)]
    pub heads: usize,
    #[module(skip)]
    pub query_stride: Option<usize>,
}

impl Sam2MultiScaleAttention {
    /// `x: [B, h, w, dim_in]` -> `[B, h', w', dim_out]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, _] = x.dims();
        let dim_out = self.proj.d_output();
        let heads = self.heads;
        let d = dim_out / heads;
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, h * w, 3, heads, d])
            .permute([2, 0, 1, 3, 4]);
        let part = |i: usize| {
            qkv.clone()
                .slice([i..i + 1, 0..b, 0..h * w, 0..heads, 0..d])
                .reshape([b, h * w, heads, d])
        };
        let (mut q, k, v) = (part(0), part(1), part(2));
        let (mut h, mut w) = (h, w);
        if let Some(s) = self.query_stride {
            let pooled = max_pool(q.reshape([b, h, w, dim_out]), s);
            [_, h, w, _] = pooled.dims();
            q = pooled.reshape([b, h * w, heads, d]);
        }
        let out = attention(
            q.swap_dims(1, 2),
            k.swap_dims(1, 2),
            v.swap_dims(1, 2),
            None,
            (d as f64).powf(-0.5),
        );
        self.proj
            .forward(out.swap_dims(1, 2).reshape([b, h, w, dim_out]))
    }
}

/// `Sam2MultiScaleBlock`: pre-norm (windowed or global) attention and MLP; the block opening a wider stage
/// projects (`proj`) and pools the normalized input for the residual.
#[derive(Module, Debug)]
pub struct Sam2MultiScaleBlock {
    pub layer_norm1: LayerNorm,
    pub attn: Sam2MultiScaleAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: SamFeedForward,
    pub proj: Option<Linear>,
    /// `None`: global attention.
    #[module(skip)]
    pub window: Option<usize>,
}

impl Sam2MultiScaleBlock {
    fn new(block: &HieraBlock, config: &Sam2HieraConfig, device: &Device) -> Result<Self> {
        let (dim, dim_out) = (block.dim_in, block.dim_out);
        let act = Activation::from_hf(&config.hidden_act)?;
        Ok(Self {
            layer_norm1: LayerNorm::new(dim, config.layer_norm_eps, device),
            attn: Sam2MultiScaleAttention {
                qkv: Linear::new(dim, 3 * dim_out, true, INIT_STD, device),
                proj: Linear::new(dim_out, dim_out, true, INIT_STD, device),
                heads: block.heads,
                query_stride: block.query_stride,
            },
            layer_norm2: LayerNorm::new(dim_out, config.layer_norm_eps, device),
            mlp: SamFeedForward::new(dim_out, config.mlp_dim(dim_out), dim_out, 2, act, device),
            proj: (dim != dim_out).then(|| Linear::new(dim, dim_out, true, INIT_STD, device)),
            window: block.window,
        })
    }

    /// `[B, h, w, dim_in]` -> `[B, h', w', dim_out]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, h, w, _] = x.dims();
        let stride = self.attn.query_stride;
        let normed = self.layer_norm1.forward(x.clone());
        let residual = match &self.proj {
            Some(proj) => {
                let projected = proj.forward(normed.clone());
                match stride {
                    Some(s) => max_pool(projected, s),
                    None => projected,
                }
            }
            None => x,
        };
        let attended = match self.window {
            Some(window) => {
                let (windows, _, _) = window_partition(normed, window);
                let attended = self.attn.forward(windows);
                // Pooling shrinks every window by the stride; the output grid is the residual's.
                let window = stride.map_or(window, |s| window / s);
                let [_, ho, wo, _] = residual.dims();
                let padded = (ho.div_ceil(window) * window, wo.div_ceil(window) * window);
                window_unpartition(attended, window, padded, (ho, wo))
            }
            None => self.attn.forward(normed),
        };
        debug_assert_eq!(attended.dims()[1..3], residual.dims()[1..3], "grid {h}x{w}");
        let x = residual + attended;
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

/// PyTorch's bicubic weights (`A = -0.75`, `align_corners=False`, edge indices clamped) as an `[out, in]` matrix.
pub(crate) fn bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = input as f64 / output as f64;
    let mut m = vec![0f32; output * input];
    for o in 0..output {
        let src = scale * (o as f64 + 0.5) - 0.5;
        let base = src.floor();
        let t = src - base;
        let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (tap, weight) in weights.into_iter().enumerate() {
            let i = (base as i64 - 1 + tap as i64).clamp(0, input as i64 - 1) as usize;
            m[o * input + i] += weight as f32;
        }
    }
    m
}

#[derive(Module, Debug)]
pub struct Sam2PatchEmbeddings {
    pub projection: Conv2d,
}

/// `Sam2HieraDetModel`.
#[derive(Module, Debug)]
pub struct Sam2HieraDetModel {
    pub patch_embed: Sam2PatchEmbeddings,
    /// `[1, C, bh, bw]`, interpolated (bicubic) to the patch grid.
    pub pos_embed: Param<Tensor<4>>,
    /// `[1, C, w0, w0]`, tiled over the patch grid.
    pub pos_embed_window: Param<Tensor<4>>,
    pub blocks: Vec<Sam2MultiScaleBlock>,
    /// Index of each stage's last block.
    #[module(skip)]
    pub stage_ends: Vec<usize>,
}

impl Sam2HieraDetModel {
    pub fn new(config: &Sam2HieraConfig, device: &Device) -> Result<Self> {
        let plan = config.blocks()?;
        let c = config.hidden_size;
        let [bh, bw] = config.window_positional_embedding_background_size;
        let w0 = config.window_size_per_stage[0];
        let blocks = plan
            .iter()
            .map(|b| Sam2MultiScaleBlock::new(b, config, device))
            .collect::<Result<_>>()?;
        let mut stage_ends = Vec::new();
        let mut end = 0;
        for &n in &config.blocks_per_stage {
            end += n;
            stage_ends.push(end - 1);
        }
        Ok(Self {
            patch_embed: Sam2PatchEmbeddings {
                projection: Conv2d::new(
                    config.num_channels,
                    c,
                    config.patch_kernel_size[0],
                    config.patch_stride[0],
                    config.patch_padding[0],
                    true,
                    device,
                ),
            },
            pos_embed: Initializer::Zeros.init([1, c, bh, bw], device),
            pos_embed_window: Initializer::Zeros.init([1, c, w0, w0], device),
            blocks,
            stage_ends,
        })
    }

    /// The position embedding of an `h x w` patch grid, `[1, h, w, C]` (`_get_pos_embed`): the background
    /// embedding resized bicubically plus the window embedding tiled (`h`, `w` multiples of its side).
    pub fn position_embedding(&self, h: usize, w: usize) -> Tensor<4> {
        let [_, c, bh, bw] = self.pos_embed.dims();
        let device = self.pos_embed.device();
        let rows = Tensor::<2>::from_data(TensorData::new(bicubic_matrix(bh, h), [h, bh]), &device);
        let cols = Tensor::<2>::from_data(TensorData::new(bicubic_matrix(bw, w), [w, bw]), &device);
        // [C, bh, bw] -> rows [C, h, bw] -> cols [C, h, w].
        let background = rows
            .unsqueeze::<3>()
            .expand([c, h, bh])
            .matmul(self.pos_embed.val().reshape([c, bh, bw]))
            .matmul(cols.transpose().unsqueeze::<3>().expand([c, bw, w]));
        let [_, _, wh, ww] = self.pos_embed_window.dims();
        let window: Tensor<5> = self.pos_embed_window.val().reshape([c, 1, wh, 1, ww]);
        let tiled = window
            .expand([c, h / wh, wh, w / ww, ww])
            .reshape([c, h, w]);
        (background + tiled).permute([1, 2, 0]).unsqueeze()
    }

    /// `pixels: [B, 3, S, S]` -> the output of each stage's last block, `[B, g, g, C_stage]` each.
    pub fn forward(&self, pixels: Tensor<4>) -> Vec<Tensor<4>> {
        let x = self
            .patch_embed
            .projection
            .forward(pixels)
            .permute([0, 2, 3, 1]);
        let [_, h, w, _] = x.dims();
        let mut x = x + self.position_embedding(h, w);
        let mut stages = Vec::with_capacity(self.stage_ends.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if self.stage_ends.contains(&i) {
                stages.push(x.clone());
            }
        }
        stages
    }
}

/// `Sam2VisionNeck`: `convs[k]` is the lateral convolution of stage `n - 1 - k`.
#[derive(Module, Debug)]
pub struct Sam2VisionNeck {
    pub convs: Vec<Conv2d>,
    #[module(skip)]
    pub top_down_levels: Vec<usize>,
    #[module(skip)]
    pub levels: usize,
}

/// `[B, C, h, w]` -> `[B, C, 2h, 2w]`, every value repeated 2 x 2 (`interpolate(scale_factor=2, "nearest")`).
fn upsample_nearest_2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let x: Tensor<6> = x.reshape([b, c, h, 1, w, 1]);
    x.expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w])
}

impl Sam2VisionNeck {
    /// The stages' outputs `[B, g, g, C_i]` -> the first `levels` FPN features `[B, fpn, g, g]`, high resolution
    /// first.
    pub fn forward(&self, stages: &[Tensor<4>]) -> Vec<Tensor<4>> {
        let n = stages.len() - 1;
        let mut features = vec![None; stages.len()];
        let mut prev: Option<Tensor<4>> = None;
        for i in (0..=n).rev() {
            let lateral = self.convs[n - i].forward(stages[i].clone().permute([0, 3, 1, 2]));
            let current = match prev {
                Some(p) if self.top_down_levels.contains(&i) && i != n => {
                    lateral + upsample_nearest_2x(p)
                }
                _ => lateral,
            };
            features[i] = Some(current.clone());
            prev = Some(current);
        }
        features.into_iter().take(self.levels).flatten().collect()
    }
}

/// `Sam2VisionModel`.
#[derive(Module, Debug)]
pub struct Sam2VisionEncoder {
    pub backbone: Sam2HieraDetModel,
    pub neck: Sam2VisionNeck,
}

impl Sam2VisionEncoder {
    pub fn new(v: &Sam2VisionConfig, device: &Device) -> Result<Self> {
        let fpn = v.fpn_hidden_size;
        Ok(Self {
            backbone: Sam2HieraDetModel::new(&v.backbone_config, device)?,
            neck: Sam2VisionNeck {
                convs: v
                    .backbone_channel_list
                    .iter()
                    .map(|&c| {
                        Conv2d::new(
                            c,
                            fpn,
                            v.fpn_kernel_size,
                            v.fpn_stride,
                            v.fpn_padding,
                            true,
                            device,
                        )
                    })
                    .collect(),
                top_down_levels: v.fpn_top_down_levels.clone(),
                levels: v.num_feature_levels,
            },
        })
    }

    /// `pixels: [B, 3, S, S]` -> the FPN features `[B, fpn, g, g]`, high resolution first.
    pub fn forward(&self, pixels: Tensor<4>) -> Vec<Tensor<4>> {
        self.neck.forward(&self.backbone.forward(pixels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    }

    #[test]
    fn bicubic_rows_sum_to_one_and_identity_at_equal_sizes() {
        for (i, o) in [(7, 256), (6, 32), (5, 3), (4, 4)] {
            let m = bicubic_matrix(i, o);
            for row in m.chunks_exact(i) {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-6, "{i} -> {o}: {sum}");
            }
        }
        let m = bicubic_matrix(4, 4);
        for (k, v) in m.iter().enumerate() {
            let expected = if k % 5 == 0 { 1.0 } else { 0.0 };
            assert!((v - expected).abs() < 1e-7);
        }
    }

    #[test]
    fn pooling_drops_the_odd_row_and_upsampling_repeats() {
        let device = Device::flex();
        let data: Vec<f32> = (0..3 * 3).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [1, 3, 3, 1]), &device);
        assert_eq!(values(max_pool(x, 2)), vec![4.0]);
        let x = Tensor::<4>::from_data(TensorData::new(vec![1f32, 2.0], [1, 1, 1, 2]), &device);
        assert_eq!(
            values(upsample_nearest_2x(x)),
            vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]
        );
    }
}
