//! `DepthAnythingForDepthEstimation` (transformers 5) as a Burn module whose parameter paths are the
//! checkpoint names of the hub's Depth-Anything-V2 folders (`backbone.encoder.layer.0.attention.attention.query.weight`,
//! `neck.fusion_stage.layers.3.projection.weight`, ...): DINOv2 backbone, DPT reassemble + fusion neck, depth head.

use anyhow::Result;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::module::{conv_transpose2d, conv2d, interpolate};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, activation};
use svlm_model::nn::{Activation, LayerNorm, Linear, PatchConv, attention};

use crate::config::{DepthAnythingConfig, DepthKind, Dinov2Config, ReassembleResize};

const INIT_STD: f64 = 0.02;

/// A PyTorch `Conv2d` (weight `[out, in, k, k]`) with square stride and symmetric padding.
#[derive(Module, Debug)]
pub struct Conv2d {
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub stride: usize,
    #[module(skip)]
    pub padding: usize,
}

impl Conv2d {
    pub fn new(
        d_in: usize,
        d_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        device: &Device,
    ) -> Self {
        Self {
            weight: Initializer::Normal {
                mean: 0.0,
                std: INIT_STD,
            }
            .init([d_out, d_in, kernel, kernel], device),
            bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
            stride,
            padding,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let p = self.padding;
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([self.stride, self.stride], [p, p], [1, 1], 1),
        )
    }
}

/// A reassemble layer's resampling: `ConvTranspose2d` (weight `[in, out, k, k]`, kernel = stride) to upsample,
/// a strided 3x3 `Conv2d` to downsample. Both are stored as `resize.weight` / `resize.bias`.
#[derive(Module, Debug)]
pub struct Resize {
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub up: bool,
    #[module(skip)]
    pub stride: usize,
}

impl Resize {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = self.stride;
        if self.up {
            conv_transpose2d(
                x,
                self.weight.val(),
                Some(self.bias.val()),
                ConvTransposeOptions::new([s, s], [0, 0], [0, 0], [1, 1], 1),
            )
        } else {
            conv2d(
                x,
                self.weight.val(),
                Some(self.bias.val()),
                ConvOptions::new([s, s], [1, 1], [1, 1], 1),
            )
        }
    }
}

// ---------------------------------------------------------------- DINOv2 backbone

#[derive(Module, Debug)]
pub struct Dinov2Embeddings {
    pub cls_token: Param<Tensor<3>>,
    /// Only used for masked-image pretraining; kept so checkpoints load without unexpected tensors.
    pub mask_token: Option<Param<Tensor<2>>>,
    pub patch_embeddings: Dinov2PatchEmbeddings,
    pub position_embeddings: Param<Tensor<3>>,
}

#[derive(Module, Debug)]
pub struct Dinov2PatchEmbeddings {
    pub projection: PatchConv,
}

#[derive(Module, Debug)]
pub struct Dinov2SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
}

#[derive(Module, Debug)]
pub struct Dinov2SelfOutput {
    pub dense: Linear,
}

#[derive(Module, Debug)]
pub struct Dinov2Attention {
    pub attention: Dinov2SelfAttention,
    pub output: Dinov2SelfOutput,
    #[module(skip)]
    pub heads: usize,
}

impl Dinov2Attention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, e] = x.dims();
        let (h, d) = (self.heads, e / self.heads);
        let split = |t: Tensor<3>| t.reshape([b, s, h, d]).swap_dims(1, 2);
        let q = split(self.attention.query.forward(x.clone()));
        let k = split(self.attention.key.forward(x.clone()));
        let v = split(self.attention.value.forward(x));
        let out = attention(q, k, v, None, (d as f64).powf(-0.5));
        self.output
            .dense
            .forward(out.swap_dims(1, 2).reshape([b, s, e]))
    }
}

#[derive(Module, Debug)]
pub struct LayerScale {
    pub lambda1: Param<Tensor<1>>,
}

impl LayerScale {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        x * self.lambda1.val().unsqueeze::<3>()
    }
}

#[derive(Module, Debug)]
pub struct Dinov2Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub act: Activation,
}

#[derive(Module, Debug)]
pub struct Dinov2Layer {
    pub norm1: LayerNorm,
    pub attention: Dinov2Attention,
    pub layer_scale1: LayerScale,
    pub norm2: LayerNorm,
    pub mlp: Dinov2Mlp,
    pub layer_scale2: LayerScale,
}

impl Dinov2Layer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self
            .layer_scale1
            .forward(self.attention.forward(self.norm1.forward(x.clone())));
        let x = x + h;
        let m = self.mlp.fc2.forward(
            self.mlp
                .act
                .apply(self.mlp.fc1.forward(self.norm2.forward(x.clone()))),
        );
        x + self.layer_scale2.forward(m)
    }
}

#[derive(Module, Debug)]
pub struct Dinov2Encoder {
    pub layer: Vec<Dinov2Layer>,
}

/// `Dinov2Backbone`.
#[derive(Module, Debug)]
pub struct Dinov2Backbone {
    pub embeddings: Dinov2Embeddings,
    pub encoder: Dinov2Encoder,
    pub layernorm: LayerNorm,
    #[module(skip)]
    pub patch_size: usize,
    #[module(skip)]
    pub stages: Vec<usize>,
    #[module(skip)]
    pub apply_layernorm: bool,
}

impl Dinov2Backbone {
    /// A backbone with HF-style initial weights (load a checkpoint to use it).
    pub fn new(b: &Dinov2Config, device: &Device) -> Result<Self> {
        b.validate()?;
        let e = b.hidden_size;
        let act = Activation::from_hf(&b.hidden_act)?;
        let n_pos = (b.image_size / b.patch_size).pow(2) + 1;
        let layerscale = |d: usize| LayerScale {
            lambda1: Initializer::Constant {
                value: b.layerscale_value,
            }
            .init([d], device),
        };
        let layers = (0..b.num_hidden_layers)
            .map(|_| Dinov2Layer {
                norm1: LayerNorm::new(e, b.layer_norm_eps, device),
                attention: Dinov2Attention {
                    attention: Dinov2SelfAttention {
                        query: Linear::new(e, e, b.qkv_bias, INIT_STD, device),
                        key: Linear::new(e, e, b.qkv_bias, INIT_STD, device),
                        value: Linear::new(e, e, b.qkv_bias, INIT_STD, device),
                    },
                    output: Dinov2SelfOutput {
                        dense: Linear::new(e, e, true, INIT_STD, device),
                    },
                    heads: b.num_attention_heads,
                },
                layer_scale1: layerscale(e),
                norm2: LayerNorm::new(e, b.layer_norm_eps, device),
                mlp: Dinov2Mlp {
                    fc1: Linear::new(e, b.intermediate_size(), true, INIT_STD, device),
                    fc2: Linear::new(b.intermediate_size(), e, true, INIT_STD, device),
                    act,
                },
                layer_scale2: layerscale(e),
            })
            .collect();
        let normal = Initializer::Normal {
            mean: 0.0,
            std: INIT_STD,
        };
        Ok(Self {
            embeddings: Dinov2Embeddings {
                cls_token: normal.init([1, 1, e], device),
                mask_token: b
                    .use_mask_token
                    .then(|| Initializer::Zeros.init([1, e], device)),
                patch_embeddings: Dinov2PatchEmbeddings {
                    projection: PatchConv::new(
                        b.num_channels,
                        e,
                        b.patch_size,
                        true,
                        INIT_STD,
                        device,
                    ),
                },
                position_embeddings: normal.init([1, n_pos, e], device),
            },
            encoder: Dinov2Encoder { layer: layers },
            layernorm: LayerNorm::new(e, b.layer_norm_eps, device),
            patch_size: b.patch_size,
            stages: b.selected_stages()?,
            apply_layernorm: b.apply_layernorm,
        })
    }

    /// The position embeddings for an `nh x nw` patch grid: the stored `side x side` grid resampled by
    /// bicubic interpolation (A = -0.75, half-pixel centres) as `interpolate_pos_encoding`, class position
    /// kept. `[1, 1 + nh*nw, C]`.
    pub fn position_embeddings(&self, nh: usize, nw: usize) -> Tensor<3> {
        let pos = self.embeddings.position_embeddings.val();
        let [_, n, c] = pos.dims();
        let side = ((n - 1) as f64).sqrt() as usize;
        if side == nh && side == nw {
            return pos;
        }
        let class = pos.clone().slice([0..1, 0..1, 0..c]);
        let grid = pos
            .slice([0..1, 1..n, 0..c])
            .reshape([1, side, side, c])
            .permute([0, 3, 1, 2]);
        let grid = interpolate(
            grid,
            InterpolateOptions::new(InterpolateMode::Bicubic)
                .with_align_corners(false)
                .with_output_size([nh, nw]),
        );
        let grid = grid.permute([0, 2, 3, 1]).reshape([1, nh * nw, c]);
        Tensor::cat(vec![class, grid], 1)
    }

    /// `pixels: [B, 3, H, W]` -> the selected stages' hidden states (layer-normed when `apply_layernorm`),
    /// each `[B, 1 + (H/p)(W/p), C]` with the class token first (as `feature_maps` with
    /// `reshape_hidden_states = False`).
    pub fn forward(&self, pixels: Tensor<4>) -> Vec<Tensor<3>> {
        let last = self.stages.iter().copied().max().unwrap_or(0);
        let hidden = self.hidden_states_up_to(pixels, last);
        self.stages
            .iter()
            .map(|&s| {
                let h = hidden[s].clone();
                if self.apply_layernorm {
                    self.layernorm.forward(h)
                } else {
                    h
                }
            })
            .collect()
    }

    /// Every hidden state, as `Dinov2Model`'s `output_hidden_states`: the embeddings, then each layer's output
    /// (no final layer norm), `1 + layers` tensors `[B, 1 + (H/p)(W/p), C]`. `Dinov2Model`'s
    /// `last_hidden_state` is `self.layernorm.forward` of the last one.
    pub fn hidden_states(&self, pixels: Tensor<4>) -> Vec<Tensor<3>> {
        self.hidden_states_up_to(pixels, self.encoder.layer.len())
    }

    fn hidden_states_up_to(&self, pixels: Tensor<4>, last: usize) -> Vec<Tensor<3>> {
        let [b, _, h, w] = pixels.dims();
        let (nh, nw) = (h / self.patch_size, w / self.patch_size);
        let patches = self.embeddings.patch_embeddings.projection.forward(pixels);
        let [_, _, c] = patches.dims();
        let class = self.embeddings.cls_token.val().expand([b, 1, c]);
        let mut x = Tensor::cat(vec![class, patches], 1) + self.position_embeddings(nh, nw);
        let mut hidden = vec![x.clone()];
        for layer in self.encoder.layer.iter().take(last) {
            x = layer.forward(x);
            hidden.push(x.clone());
        }
        hidden
    }
}

// ---------------------------------------------------------------- DPT neck and head

#[derive(Module, Debug)]
pub struct ReassembleLayer {
    pub projection: Conv2d,
    pub resize: Option<Resize>,
}

#[derive(Module, Debug)]
pub struct ReassembleStage {
    pub layers: Vec<ReassembleLayer>,
}

#[derive(Module, Debug)]
pub struct PreActResidualLayer {
    pub convolution1: Conv2d,
    pub convolution2: Conv2d,
}

impl PreActResidualLayer {
    /// `x + conv2(relu(conv1(relu(x))))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.convolution1.forward(activation::relu(x.clone()));
        let h = self.convolution2.forward(activation::relu(h));
        h + x
    }
}

#[derive(Module, Debug)]
pub struct FeatureFusionLayer {
    pub projection: Conv2d,
    pub residual_layer1: PreActResidualLayer,
    pub residual_layer2: PreActResidualLayer,
}

fn bilinear(x: Tensor<4>, size: [usize; 2], align_corners: bool) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(align_corners)
            .with_output_size(size),
    )
}

impl FeatureFusionLayer {
    /// `size`: the next (finer) feature map's size, or `None` for the last layer (x2).
    fn forward(
        &self,
        x: Tensor<4>,
        residual: Option<Tensor<4>>,
        size: Option<[usize; 2]>,
    ) -> Tensor<4> {
        let mut x = x;
        if let Some(residual) = residual {
            let [_, _, h, w] = x.dims();
            let [_, _, rh, rw] = residual.dims();
            let residual = if (rh, rw) != (h, w) {
                bilinear(residual, [h, w], false)
            } else {
                residual
            };
            x = x + self.residual_layer1.forward(residual);
        }
        let x = self.residual_layer2.forward(x);
        let [_, _, h, w] = x.dims();
        let size = size.unwrap_or([2 * h, 2 * w]);
        self.projection.forward(bilinear(x, size, true))
    }
}

#[derive(Module, Debug)]
pub struct FeatureFusionStage {
    pub layers: Vec<FeatureFusionLayer>,
}

#[derive(Module, Debug)]
pub struct Neck {
    pub reassemble_stage: ReassembleStage,
    pub convs: Vec<Conv2d>,
    pub fusion_stage: FeatureFusionStage,
}

impl Neck {
    /// Backbone feature maps (`[B, 1 + nh*nw, C]`) -> fused maps, coarsest first (as `fusion_stage` returns them).
    pub fn forward(&self, features: Vec<Tensor<3>>, nh: usize, nw: usize) -> Vec<Tensor<4>> {
        let maps: Vec<Tensor<4>> = features
            .into_iter()
            .zip(&self.reassemble_stage.layers)
            .zip(&self.convs)
            .map(|((f, layer), conv)| {
                let [b, n, c] = f.dims();
                let x = f
                    .slice([0..b, 1..n, 0..c])
                    .reshape([b, nh, nw, c])
                    .permute([0, 3, 1, 2]);
                let x = layer.projection.forward(x);
                let x = match &layer.resize {
                    Some(r) => r.forward(x),
                    None => x,
                };
                conv.forward(x)
            })
            .collect();
        let reversed: Vec<Tensor<4>> = maps.into_iter().rev().collect();
        let mut fused: Vec<Tensor<4>> = Vec::with_capacity(reversed.len());
        for (i, (map, layer)) in reversed.iter().zip(&self.fusion_stage.layers).enumerate() {
            let size = reversed.get(i + 1).map(|next| {
                let [_, _, h, w] = next.dims();
                [h, w]
            });
            let out = match fused.last() {
                None => layer.forward(map.clone(), None, size),
                Some(prev) => layer.forward(prev.clone(), Some(map.clone()), size),
            };
            fused.push(out);
        }
        fused
    }
}

#[derive(Module, Debug)]
pub struct DepthHead {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    #[module(skip)]
    pub head_in: usize,
    #[module(skip)]
    pub patch_size: usize,
    #[module(skip)]
    pub metric: bool,
    #[module(skip)]
    pub max_depth: f64,
}

impl DepthHead {
    /// Fused maps -> depth `[B, nh * patch, nw * patch]`.
    pub fn forward(&self, fused: &[Tensor<4>], nh: usize, nw: usize) -> Tensor<3> {
        let x = self.conv1.forward(fused[self.head_in].clone());
        let x = bilinear(x, [nh * self.patch_size, nw * self.patch_size], true);
        let x = activation::relu(self.conv2.forward(x));
        let x = self.conv3.forward(x);
        let x = if self.metric {
            activation::sigmoid(x)
        } else {
            activation::relu(x)
        };
        let [b, _, h, w] = x.dims();
        x.mul_scalar(self.max_depth).reshape([b, h, w])
    }
}

/// What one forward pass gives.
pub struct DepthOutput {
    /// `[B, H, W]` at the processed (model input) size: metres for metric models.
    pub predicted_depth: Tensor<3>,
    /// The backbone's feature maps, `[B, 1 + nh*nw, C]` each.
    pub feature_maps: Vec<Tensor<3>>,
}

/// `DepthAnythingForDepthEstimation`.
#[derive(Module, Debug)]
pub struct DepthAnythingModel {
    pub backbone: Dinov2Backbone,
    pub neck: Neck,
    pub head: DepthHead,
}

impl DepthAnythingModel {
    /// A model with HF-style initial weights (load a checkpoint to use it).
    pub fn new(config: &DepthAnythingConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let backbone = Dinov2Backbone::new(&config.backbone_config, device)?;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: INIT_STD,
        };
        let fusion = config.fusion_hidden_size;
        let reassemble = config
            .neck_hidden_sizes
            .iter()
            .zip(config.resizes()?)
            .map(|(&channels, resize)| ReassembleLayer {
                projection: Conv2d::new(
                    config.reassemble_hidden_size,
                    channels,
                    1,
                    1,
                    0,
                    true,
                    device,
                ),
                resize: match resize {
                    ReassembleResize::Identity => None,
                    ReassembleResize::Up(f) => Some(Resize {
                        weight: normal.init([channels, channels, f, f], device),
                        bias: Initializer::Zeros.init([channels], device),
                        up: true,
                        stride: f,
                    }),
                    ReassembleResize::Down(s) => Some(Resize {
                        weight: normal.init([channels, channels, 3, 3], device),
                        bias: Initializer::Zeros.init([channels], device),
                        up: false,
                        stride: s,
                    }),
                },
            })
            .collect();
        let convs = config
            .neck_hidden_sizes
            .iter()
            .map(|&c| Conv2d::new(c, fusion, 3, 1, 1, false, device))
            .collect();
        let residual = || PreActResidualLayer {
            convolution1: Conv2d::new(fusion, fusion, 3, 1, 1, true, device),
            convolution2: Conv2d::new(fusion, fusion, 3, 1, 1, true, device),
        };
        let fusion_layers = config
            .neck_hidden_sizes
            .iter()
            .map(|_| FeatureFusionLayer {
                projection: Conv2d::new(fusion, fusion, 1, 1, 0, true, device),
                residual_layer1: residual(),
                residual_layer2: residual(),
            })
            .collect();
        let head = DepthHead {
            conv1: Conv2d::new(fusion, fusion / 2, 3, 1, 1, true, device),
            conv2: Conv2d::new(fusion / 2, config.head_hidden_size, 3, 1, 1, true, device),
            conv3: Conv2d::new(config.head_hidden_size, 1, 1, 1, 0, true, device),
            head_in: config.head_input()?,
            patch_size: config.patch_size,
            metric: config.kind() == DepthKind::Metric,
            max_depth: config.max_depth,
        };
        Ok(Self {
            backbone,
            neck: Neck {
                reassemble_stage: ReassembleStage { layers: reassemble },
                convs,
                fusion_stage: FeatureFusionStage {
                    layers: fusion_layers,
                },
            },
            head,
        })
    }

    /// `pixels: [B, 3, H, W]` (normalized, H and W multiples of the patch size) -> depth at `H x W`.
    pub fn forward(&self, pixels: Tensor<4>) -> DepthOutput {
        let [_, _, h, w] = pixels.dims();
        let p = self.head.patch_size;
        let (nh, nw) = (h / p, w / p);
        let feature_maps = self.backbone.forward(pixels);
        let fused = self.neck.forward(feature_maps.clone(), nh, nw);
        DepthOutput {
            predicted_depth: self.head.forward(&fused, nh, nw),
            feature_maps,
        }
    }
}
