//! Vision transformers: CLIP (`CLIPVisionModel`), SigLIP (`SiglipVisionModel`) and the SigLIP
//! variant inside Idefics3 (position ids bucketized per image for padded tiles).

use anyhow::bail;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::nn::{Activation, Embedding, LayerNorm, Linear, PatchConv, attention};

fn default_channels() -> usize {
    3
}
fn default_ln_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "gelu_pytorch_tanh".into()
}
fn default_init_range() -> f64 {
    0.02
}

/// The `vision_config` of Idefics3/LLaVA (`CLIPVisionConfig`, `SiglipVisionConfig`,
/// `Idefics3VisionConfig`). Unknown keys are kept in `extra`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VisionConfig {
    #[serde(default)]
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Which family of tower, deciding class token, pre-norm, patch bias and output norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisionKind {
    /// CLIP: class embedding, `pre_layrnorm`, patch conv without bias; `post_layernorm` only
    /// for the pooled output (unused by LLaVA).
    Clip,
    /// SigLIP: no class token, patch conv with bias, `post_layernorm` on the sequence.
    Siglip,
    /// Idefics3's SigLIP: as SigLIP, plus bucketized position ids for partially padded images.
    Idefics3,
}

impl VisionKind {
    pub fn from_model_type(model_type: &str) -> anyhow::Result<Self> {
        Ok(match model_type {
            "clip_vision_model" | "clip" => Self::Clip,
            "siglip_vision_model" | "siglip" => Self::Siglip,
            "idefics3_vision" | "idefics3_vision_model" | "idefics3" => Self::Idefics3,
            other => bail!(
                "unsupported vision tower model_type `{other}` (supported: clip_vision_model, siglip_vision_model, idefics3_vision)"
            ),
        })
    }
}

impl VisionConfig {
    /// Idefics3's SigLIP tower of these sizes, with HF's defaults for the rest (3 channels, LayerNorm eps 1e-6,
    /// tanh-GELU, init range 0.02): what the quickstart's and `svlm bench train`'s from-scratch models use.
    pub fn idefics3(
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        image_size: usize,
        patch_size: usize,
    ) -> Self {
        Self {
            model_type: "idefics3_vision".into(),
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_channels: 3,
            image_size,
            patch_size,
            layer_norm_eps: 1e-6,
            hidden_act: "gelu_pytorch_tanh".into(),
            initializer_range: 0.02,
            extra: Default::default(),
        }
    }

    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.patch_size == 0 || self.image_size < self.patch_size {
            bail!(
                "vision config: image_size {} and patch_size {} do not make patches",
                self.image_size,
                self.patch_size
            );
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            bail!(
                "vision config: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        Activation::from_hf(&self.hidden_act).map(|_| ())
    }
}

#[derive(Module, Debug)]
pub struct VisionEmbeddings {
    pub class_embedding: Option<Param<Tensor<1>>>,
    pub patch_embedding: PatchConv,
    pub position_embedding: Embedding,
}

#[derive(Module, Debug)]
pub struct VisionAttention {
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub q_proj: Linear,
    pub out_proj: Linear,
    #[module(skip)]
    pub heads: usize,
}

impl VisionAttention {
    fn forward(&self, x: Tensor<3>, masked: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let [b, s, e] = x.dims();
        let (h, d) = (self.heads, e / self.heads);
        let split = |t: Tensor<3>| t.reshape([b, s, h, d]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()));
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        let out = attention(q, k, v, masked, (d as f64).powf(-0.5));
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([b, s, e]))
    }
}

#[derive(Module, Debug)]
pub struct VisionMlp {
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub act: Activation,
}

#[derive(Module, Debug)]
pub struct VisionEncoderLayer {
    pub self_attn: VisionAttention,
    pub layer_norm1: LayerNorm,
    pub mlp: VisionMlp,
    pub layer_norm2: LayerNorm,
}

impl VisionEncoderLayer {
    fn forward(&self, x: Tensor<3>, masked: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x), masked);
        let h = self.mlp.fc2.forward(
            self.mlp
                .act
                .apply(self.mlp.fc1.forward(self.layer_norm2.forward(x.clone()))),
        );
        x + h
    }
}

#[derive(Module, Debug)]
pub struct VisionEncoder {
    pub layers: Vec<VisionEncoderLayer>,
}

/// The transformer (`vision_model.*` in CLIP/SigLIP, `model.vision_model.*` in Idefics3).
#[derive(Module, Debug)]
pub struct VisionTransformer {
    pub embeddings: VisionEmbeddings,
    pub pre_layrnorm: Option<LayerNorm>,
    pub encoder: VisionEncoder,
    pub post_layernorm: Option<LayerNorm>,
    #[module(skip)]
    pub kind: VisionKind,
    #[module(skip)]
    pub patch_size: usize,
    #[module(skip)]
    pub patches_per_side: usize,
}

/// Output of a vision tower.
pub struct VisionOutput {
    /// CLIP: the last layer's output; SigLIP/Idefics3: after `post_layernorm`. `[n, seq, hidden]`.
    pub last_hidden_state: Tensor<3>,
    /// When asked: the (pre-normed for CLIP) embeddings and every layer's output, as HF's
    /// `hidden_states` (`num_hidden_layers + 1` tensors).
    pub hidden_states: Vec<Tensor<3>>,
}

impl VisionTransformer {
    pub fn new(cfg: &VisionConfig, kind: VisionKind, device: &Device) -> anyhow::Result<Self> {
        cfg.validate()?;
        let (e, std) = (cfg.hidden_size, cfg.initializer_range);
        let n_patches = cfg.patches_per_side() * cfg.patches_per_side();
        let clip = kind == VisionKind::Clip;
        let act = Activation::from_hf(&cfg.hidden_act)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| VisionEncoderLayer {
                self_attn: VisionAttention {
                    k_proj: Linear::new(e, e, true, std, device),
                    v_proj: Linear::new(e, e, true, std, device),
                    q_proj: Linear::new(e, e, true, std, device),
                    out_proj: Linear::new(e, e, true, std, device),
                    heads: cfg.num_attention_heads,
                },
                layer_norm1: LayerNorm::new(e, cfg.layer_norm_eps, device),
                mlp: VisionMlp {
                    fc1: Linear::new(e, cfg.intermediate_size, true, std, device),
                    fc2: Linear::new(cfg.intermediate_size, e, true, std, device),
                    act,
                },
                layer_norm2: LayerNorm::new(e, cfg.layer_norm_eps, device),
            })
            .collect();
        Ok(Self {
            embeddings: VisionEmbeddings {
                class_embedding: clip
                    .then(|| Initializer::Normal { mean: 0.0, std }.init([e], device)),
                patch_embedding: PatchConv::new(
                    cfg.num_channels,
                    e,
                    cfg.patch_size,
                    !clip,
                    std,
                    device,
                ),
                position_embedding: Embedding::new(n_patches + usize::from(clip), e, std, device),
            },
            pre_layrnorm: clip.then(|| LayerNorm::new(e, cfg.layer_norm_eps, device)),
            encoder: VisionEncoder { layers },
            post_layernorm: Some(LayerNorm::new(e, cfg.layer_norm_eps, device)),
            kind,
            patch_size: cfg.patch_size,
            patches_per_side: cfg.patches_per_side(),
        })
    }

    /// `pixels: [n, C, H, W]`. `patch_mask`: per image, per patch (row-major), whether the patch
    /// holds real pixels (Idefics3's padded tiles); `None` = all real.
    pub fn forward(
        &self,
        pixels: Tensor<4>,
        patch_mask: Option<&[Vec<bool>]>,
        output_hidden_states: bool,
    ) -> VisionOutput {
        let device = pixels.device();
        let [n, _, h, w] = pixels.dims();
        let (nh, nw) = (h / self.patch_size, w / self.patch_size);
        let mut x = self.embeddings.patch_embedding.forward(pixels);
        let [_, seq, e] = x.dims();
        let masked = match self.kind {
            VisionKind::Clip => {
                let class = self
                    .embeddings
                    .class_embedding
                    .as_ref()
                    .map(|c| c.val())
                    .unwrap_or_else(|| Tensor::zeros([e], &device));
                let class = class.reshape([1, 1, e]).expand([n, 1, e]);
                x = Tensor::cat(vec![class, x], 1);
                let positions =
                    Tensor::<1, Int>::arange(0..(seq + 1) as i64, &device).reshape([1, seq + 1]);
                x = x + self.embeddings.position_embedding.forward(positions);
                None
            }
            VisionKind::Siglip => {
                let positions = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
                x = x + self.embeddings.position_embedding.forward(positions);
                None
            }
            VisionKind::Idefics3 => {
                let full: Vec<Vec<bool>>;
                let masks = match patch_mask {
                    Some(m) => m,
                    None => {
                        full = vec![vec![true; nh * nw]; n];
                        &full
                    }
                };
                let ids = idefics3_position_ids(masks, nh, nw, self.patches_per_side);
                let positions =
                    Tensor::<2, Int>::from_data(TensorData::new(ids, [n, nh * nw]), &device);
                x = x + self.embeddings.position_embedding.forward(positions);
                if masks.iter().all(|m| m.iter().all(|&v| v)) {
                    None
                } else {
                    let pad: Vec<bool> = masks.iter().flat_map(|m| m.iter().map(|&v| !v)).collect();
                    let pad =
                        Tensor::<2, Bool>::from_data(TensorData::new(pad, [n, nh * nw]), &device);
                    Some(pad.reshape([n, 1, 1, nh * nw]))
                }
            }
        };
        if let Some(norm) = &self.pre_layrnorm {
            x = norm.forward(x);
        }
        let mut hidden_states = Vec::new();
        for layer in &self.encoder.layers {
            if output_hidden_states {
                hidden_states.push(x.clone());
            }
            x = layer.forward(x, masked.clone());
        }
        if output_hidden_states {
            hidden_states.push(x.clone());
        }
        let last_hidden_state = match (&self.post_layernorm, self.kind) {
            (Some(norm), VisionKind::Siglip | VisionKind::Idefics3) => norm.forward(x),
            _ => x,
        };
        VisionOutput {
            last_hidden_state,
            hidden_states,
        }
    }
}

/// Elements of `torch.arange(start, end, step)` for float32: `ceil((end - start) / step)` values
/// `start + i * step`, computed in double and rounded to f32 as ATen's CPU kernel does.
fn torch_arange_f32(start: f64, end: f64, step: f64) -> Vec<f32> {
    let len = ((end - start) / step).ceil().max(0.0) as usize;
    (0..len).map(|i| (start + i as f64 * step) as f32).collect()
}

/// Idefics3's position ids (transformers 5): a real patch at row `r`, column `c` of an image
/// whose real block is `h x w` patches gets `bucket(r / h) * side + bucket(c / w)` on the full
/// `side x side` grid (fractions in f32, clamped below 1, bucketized against `k / side`);
/// padded patches keep id 0.
pub fn idefics3_position_ids(masks: &[Vec<bool>], nh: usize, nw: usize, side: usize) -> Vec<i64> {
    let step = 1.0 / side as f64;
    let boundaries = torch_arange_f32(step, 1.0, step);
    let bucket = |v: f32| boundaries.iter().filter(|&&b| b <= v).count() as i64;
    let below_one = (1.0f64 - 1e-6) as f32;
    let mut out = Vec::with_capacity(masks.len() * nh * nw);
    for mask in masks {
        let real = |i: usize| mask.get(i).copied().unwrap_or(false);
        let rows = (0..nh).filter(|&r| real(r * nw)).count();
        let cols = (0..nw).filter(|&c| real(c)).count();
        // HF divides by an integer tensor: a float32 reciprocal.
        let step_h = 1.0f32 / rows as f32;
        let step_w = 1.0f32 / cols as f32;
        for r in 0..nh {
            for c in 0..nw {
                if real(r * nw + c) {
                    let fh = (r as f32 * step_h).min(below_one);
                    let fw = (c as f32 * step_w).min(below_one);
                    out.push(bucket(fh) * side as i64 + bucket(fw));
                } else {
                    out.push(0);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_tile_positions_are_the_identity() {
        let masks = vec![vec![true; 16]];
        let ids = idefics3_position_ids(&masks, 4, 4, 4);
        assert_eq!(ids, (0..16).collect::<Vec<i64>>());
    }

    #[test]
    fn half_tile_positions_spread_over_the_grid() {
        // Real block 2 rows x 4 cols of a 4x4 grid: rows map to buckets 0 and 2.
        let mut mask = vec![false; 16];
        for r in 0..2 {
            for c in 0..4 {
                mask[r * 4 + c] = true;
            }
        }
        let ids = idefics3_position_ids(&[mask], 4, 4, 4);
        assert_eq!(&ids[0..8], &[0, 1, 2, 3, 8, 9, 10, 11]);
        assert!(ids[8..].iter().all(|&v| v == 0));
    }
}
