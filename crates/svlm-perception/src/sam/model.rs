//! `SamModel` (transformers 5) as a Burn module whose parameter paths are the checkpoint names
//! (`vision_encoder.layers.0.attn.rel_pos_h`, `mask_decoder.transformer.layers.1.cross_attn_image_to_token.q_proj.weight`,
//! ...): the ViT image encoder (windowed and global attention with decomposed relative position embeddings, an
//! absolute position embedding, the conv neck), the box-prompt encoder (random-Fourier positional embedding of
//! the two corners) and the two-way-transformer mask decoder with its IoU head.
//!
//! Mask prompts (`prompt_encoder.mask_embed.*`) are not part of this module: the photo path prompts with boxes
//! only, and the loader leaves those tensors out.

use std::f64::consts::PI;

use anyhow::Result;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use svlm_model::nn::{Activation, Embedding, LayerNorm, Linear, PatchConv, attention};

use crate::model::Conv2d;
use crate::sam::config::{SamConfig, SamMaskDecoderConfig, SamVisionConfig};

const INIT_STD: f64 = 0.02;

/// LayerNorm over the channels of a `[B, C, H, W]` map (`SamLayerNorm` with `data_format="channels_first"`).
pub(crate) fn channels_first_norm(norm: &LayerNorm, x: Tensor<4>) -> Tensor<4> {
    norm.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
}

// ---------------------------------------------------------------- image encoder

/// `SamVisionAttention`: multi-head attention over a (window of the) patch grid, with decomposed relative
/// position embeddings added to the scores.
#[derive(Module, Debug)]
pub struct SamVisionAttention {
    pub qkv: Linear,
    pub proj: Linear,
    pub rel_pos_h: Option<Param<Tensor<2>>>,
    pub rel_pos_w: Option<Param<Tensor<2>>>,
    #[module(skip)]
    pub heads: usize,
}

/// `rel_pos` `[2 s - 1, C]` gathered at every (query row, key row) offset: `[s, s, C]` with
/// `out[q][k] = rel_pos[q - k + s - 1]` (`get_rel_pos` for equal query and key sizes).
fn relative_table(rel_pos: Tensor<2>, size: usize) -> Tensor<3> {
    let [_, c] = rel_pos.dims();
    let indices: Vec<i64> = (0..size)
        .flat_map(|q| (0..size).map(move |k| (q + size - 1 - k) as i64))
        .collect();
    let indices =
        Tensor::<1, Int>::from_data(TensorData::new(indices, [size * size]), &rel_pos.device());
    rel_pos.select(0, indices).reshape([size, size, c])
}

impl SamVisionAttention {
    /// `x: [B, h, w, C]` -> `[B, h, w, C]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let heads = self.heads;
        let d = c / heads;
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, h * w, 3, heads, d])
            .permute([2, 0, 3, 1, 4])
            .reshape([3, b * heads, h * w, d]);
        let part = |i: usize| {
            qkv.clone()
                .slice([i..i + 1, 0..b * heads, 0..h * w, 0..d])
                .reshape([b * heads, h * w, d])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scale = (d as f64).powf(-0.5);
        let mut scores = q.clone().mul_scalar(scale).matmul(k.swap_dims(1, 2));
        if let (Some(rel_h), Some(rel_w)) = (&self.rel_pos_h, &self.rel_pos_w) {
            scores = scores + decomposed_rel_pos(q, rel_h.val(), rel_w.val(), h, w);
        }
        let probs = activation::softmax(scores, 2);
        let out = probs.matmul(v);
        let out = out
            .reshape([b, heads, h, w, d])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, c]);
        self.proj.forward(out)
    }
}

/// `get_decomposed_rel_pos` for `q: [N, h*w, C]`: `[N, h*w, h*w]` with
/// `out[(qh, qw), (kh, kw)] = q . R_h[qh - kh] + q . R_w[qw - kw]`.
fn decomposed_rel_pos(
    q: Tensor<3>,
    rel_pos_h: Tensor<2>,
    rel_pos_w: Tensor<2>,
    h: usize,
    w: usize,
) -> Tensor<3> {
    let [n, _, c] = q.dims();
    let table_h = relative_table(rel_pos_h, h); // [h, h, C]
    let table_w = relative_table(rel_pos_w, w); // [w, w, C]
    let q = q.reshape([n, h, w, c]);
    // rel_h[n, qh, qw, kh] = sum_c q[n, qh, qw, c] * table_h[qh, kh, c]: a matmul batched over qh.
    let rel_h = q
        .clone()
        .permute([1, 0, 2, 3])
        .reshape([h, n * w, c])
        .matmul(table_h.swap_dims(1, 2))
        .reshape([h, n, w, h])
        .permute([1, 0, 2, 3]);
    // rel_w[n, qh, qw, kw]: batched over qw.
    let rel_w = q
        .permute([2, 0, 1, 3])
        .reshape([w, n * h, c])
        .matmul(table_w.swap_dims(1, 2))
        .reshape([w, n, h, w])
        .permute([1, 2, 0, 3]);
    let full = [n, h, w, h, w];
    let rel_h = rel_h.unsqueeze_dim::<5>(4).expand(full);
    let rel_w = rel_w.unsqueeze_dim::<5>(3).expand(full);
    (rel_h + rel_w).reshape([n, h * w, h * w])
}

#[derive(Module, Debug)]
pub struct SamMlpBlock {
    pub lin1: Linear,
    pub lin2: Linear,
    #[module(skip)]
    pub act: Activation,
}

impl SamMlpBlock {
    fn new(d: usize, hidden: usize, act: Activation, device: &Device) -> Self {
        Self {
            lin1: Linear::new(d, hidden, true, INIT_STD, device),
            lin2: Linear::new(hidden, d, true, INIT_STD, device),
            act,
        }
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.lin2.forward(self.act.apply(self.lin1.forward(x)))
    }
}

/// `SamVisionLayer`: pre-norm attention (in windows, or global) and MLP.
#[derive(Module, Debug)]
pub struct SamVisionLayer {
    pub layer_norm1: LayerNorm,
    pub attn: SamVisionAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: SamMlpBlock,
    /// `None` for global attention.
    #[module(skip)]
    pub window: Option<usize>,
}

/// `[B, H, W, C]` zero-padded at the bottom/right to multiples of `window` and cut into windows:
/// `[B * nh * nw, window, window, C]` (`window_partition`).
pub(crate) fn window_partition(x: Tensor<4>, window: usize) -> (Tensor<4>, usize, usize) {
    let [b, h, w, c] = x.dims();
    let (hp, wp) = (h.div_ceil(window) * window, w.div_ceil(window) * window);
    let x = if (hp, wp) != (h, w) {
        let device = x.device();
        let x = Tensor::cat(vec![x, Tensor::zeros([b, hp - h, w, c], &device)], 1);
        Tensor::cat(vec![x, Tensor::zeros([b, hp, wp - w, c], &device)], 2)
    } else {
        x
    };
    let (nh, nw) = (hp / window, wp / window);
    let windows: Tensor<6> = x.reshape([b, nh, window, nw, window, c]);
    let windows = windows
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b * nh * nw, window, window, c]);
    (windows, hp, wp)
}

/// The inverse of [`window_partition`], padding removed: `[B, h, w, C]`.
pub(crate) fn window_unpartition(
    windows: Tensor<4>,
    window: usize,
    padded: (usize, usize),
    size: (usize, usize),
) -> Tensor<4> {
    let [n, _, _, c] = windows.dims();
    let (hp, wp) = padded;
    let (nh, nw) = (hp / window, wp / window);
    let b = n / (nh * nw);
    let x: Tensor<6> = windows.reshape([b, nh, nw, window, window, c]);
    let x = x.permute([0, 1, 3, 2, 4, 5]).reshape([b, hp, wp, c]);
    if (hp, wp) == size {
        x
    } else {
        x.slice([0..b, 0..size.0, 0..size.1, 0..c])
    }
}

impl SamVisionLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, h, w, _] = x.dims();
        let normed = self.layer_norm1.forward(x.clone());
        let attended = match self.window {
            Some(window) => {
                let (windows, hp, wp) = window_partition(normed, window);
                window_unpartition(self.attn.forward(windows), window, (hp, wp), (h, w))
            }
            None => self.attn.forward(normed),
        };
        let x = x + attended;
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct SamPatchEmbeddings {
    pub projection: PatchConv,
}

#[derive(Module, Debug)]
pub struct SamVisionNeck {
    pub conv1: Conv2d,
    pub layer_norm1: LayerNorm,
    pub conv2: Conv2d,
    pub layer_norm2: LayerNorm,
}

impl SamVisionNeck {
    /// `[B, h, w, C]` -> `[B, output_channels, h, w]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv1.forward(x.permute([0, 3, 1, 2]));
        let x = channels_first_norm(&self.layer_norm1, x);
        let x = self.conv2.forward(x);
        channels_first_norm(&self.layer_norm2, x)
    }
}

/// `SamVisionEncoder`.
#[derive(Module, Debug)]
pub struct SamVisionEncoder {
    pub patch_embed: SamPatchEmbeddings,
    pub pos_embed: Option<Param<Tensor<4>>>,
    pub layers: Vec<SamVisionLayer>,
    pub neck: SamVisionNeck,
    #[module(skip)]
    pub patch_size: usize,
}

impl SamVisionEncoder {
    pub fn new(v: &SamVisionConfig, device: &Device) -> Result<Self> {
        let e = v.hidden_size;
        let heads = v.num_attention_heads;
        let head_dim = e / heads;
        let grid = v.grid();
        let act = Activation::from_hf(&v.hidden_act)?;
        let zeros2 = |rows: usize| Initializer::Zeros.init([rows, head_dim], device);
        let layers = (0..v.num_hidden_layers)
            .map(|i| {
                let window = v.window_of(i);
                let side = window.unwrap_or(grid);
                SamVisionLayer {
                    layer_norm1: LayerNorm::new(e, v.layer_norm_eps, device),
                    attn: SamVisionAttention {
                        qkv: Linear::new(e, 3 * e, v.qkv_bias, INIT_STD, device),
                        proj: Linear::new(e, e, true, INIT_STD, device),
                        rel_pos_h: v.use_rel_pos.then(|| zeros2(2 * side - 1)),
                        rel_pos_w: v.use_rel_pos.then(|| zeros2(2 * side - 1)),
                        heads,
                    },
                    layer_norm2: LayerNorm::new(e, v.layer_norm_eps, device),
                    mlp: SamMlpBlock::new(e, v.mlp_dim(), act, device),
                    window,
                }
            })
            .collect();
        let out = v.output_channels;
        Ok(Self {
            patch_embed: SamPatchEmbeddings {
                projection: PatchConv::new(v.num_channels, e, v.patch_size, true, INIT_STD, device),
            },
            pos_embed: v
                .use_abs_pos
                .then(|| Initializer::Zeros.init([1, grid, grid, e], device)),
            layers,
            neck: SamVisionNeck {
                conv1: Conv2d::new(e, out, 1, 1, 0, false, device),
                // `SamLayerNorm`'s own default eps, not the config's.
                layer_norm1: LayerNorm::new(out, 1e-6, device),
                conv2: Conv2d::new(out, out, 3, 1, 1, false, device),
                layer_norm2: LayerNorm::new(out, 1e-6, device),
            },
            patch_size: v.patch_size,
        })
    }

    /// `pixels: [B, 3, S, S]` -> the hidden states after the embeddings and after each layer, `[B, g, g, C]`
    /// each (`output_hidden_states`).
    pub fn hidden_states(&self, pixels: Tensor<4>) -> Vec<Tensor<4>> {
        let [b, _, h, w] = pixels.dims();
        let (gh, gw) = (h / self.patch_size, w / self.patch_size);
        let patches = self.patch_embed.projection.forward(pixels);
        let [_, _, c] = patches.dims();
        let mut x = patches.reshape([b, gh, gw, c]);
        if let Some(pos) = &self.pos_embed {
            x = x + pos.val();
        }
        let mut hidden = vec![x.clone()];
        for layer in &self.layers {
            x = layer.forward(x);
            hidden.push(x.clone());
        }
        hidden
    }

    /// `pixels: [B, 3, S, S]` -> the image embeddings `[B, output_channels, g, g]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<4> {
        let last = self
            .hidden_states(pixels)
            .pop()
            .expect("hidden_states holds the embeddings at least");
        self.neck.forward(last)
    }
}

// ---------------------------------------------------------------- prompt encoder

/// `SamPositionalEmbedding`: `[sin, cos](2 pi (2 p - 1) G)` for points `p` in `[0, 1]^2`, `G: [2, F]`.
#[derive(Module, Debug)]
pub struct SamPositionalEmbedding {
    pub positional_embedding: Param<Tensor<2>>,
}

impl SamPositionalEmbedding {
    /// `coords: [N, 2]` (x, y in `[0, 1]`) -> `[N, 2F]`.
    pub fn forward(&self, coords: Tensor<2>) -> Tensor<2> {
        let projected = coords
            .mul_scalar(2.0)
            .sub_scalar(1.0)
            .matmul(self.positional_embedding.val())
            .mul_scalar(2.0 * PI);
        Tensor::cat(vec![projected.clone().sin(), projected.cos()], 1)
    }

    /// The embedding of every cell centre of a `size x size` grid, `[2F, size, size]`
    /// (`get_image_wide_positional_embeddings`).
    pub fn image_wide(&self, size: usize) -> Tensor<3> {
        let coords: Vec<f32> = (0..size)
            .flat_map(|i| {
                (0..size).flat_map(move |j| {
                    [
                        ((j as f32 + 1.0) - 0.5) / size as f32,
                        ((i as f32 + 1.0) - 0.5) / size as f32,
                    ]
                })
            })
            .collect();
        let device = self.positional_embedding.device();
        let coords = Tensor::<2>::from_data(TensorData::new(coords, [size * size, 2]), &device);
        let pe = self.forward(coords);
        let [_, f] = pe.dims();
        pe.reshape([size, size, f]).permute([2, 0, 1])
    }
}

/// `SamPromptEncoder` for box prompts. `point_embed.0/1` (negative / positive points) and `not_a_point_embed`
/// are loaded with the checkpoint; boxes use `point_embed.2/3` for their corners.
#[derive(Module, Debug)]
pub struct SamPromptEncoder {
    pub no_mask_embed: Embedding,
    pub point_embed: Vec<Embedding>,
    pub not_a_point_embed: Embedding,
    #[module(skip)]
    pub input_image_size: usize,
    #[module(skip)]
    pub image_embedding_size: usize,
}

impl SamPromptEncoder {
    /// `boxes: [P, 4]` (x0, y0, x1, y1 in the resized-image frame) -> sparse embeddings `[P, 2, C]`.
    pub fn embed_boxes(&self, shared: &SamPositionalEmbedding, boxes: Tensor<2>) -> Tensor<3> {
        let [p, _] = boxes.dims();
        let corners = boxes
            .add_scalar(0.5)
            .div_scalar(self.input_image_size as f64)
            .reshape([p * 2, 2]);
        let pe = shared.forward(corners);
        let [_, c] = pe.dims();
        let pe = pe.reshape([p, 2, c]);
        let corner_types = Tensor::cat(
            vec![
                self.point_embed[2].weight.val(),
                self.point_embed[3].weight.val(),
            ],
            0,
        );
        pe + corner_types.unsqueeze::<3>()
    }

    /// The dense embedding without a mask prompt: `no_mask_embed` at every cell, `[1, C, g, g]`.
    pub fn dense_without_mask(&self) -> Tensor<4> {
        let [_, c] = self.no_mask_embed.weight.dims();
        let g = self.image_embedding_size;
        self.no_mask_embed
            .weight
            .val()
            .reshape([1, c, 1, 1])
            .expand([1, c, g, g])
    }
}

// ---------------------------------------------------------------- mask decoder

/// The mask decoder's two-way transformer (`SamAttention`, `SamTwoWayAttentionBlock`, `SamTwoWayTransformer`)
/// serves SAM and SAM 2, whose checkpoints name two of its parameters differently: the attention output is
/// `out_proj` in SAM and `o_proj` in SAM 2, the MLP's layers `lin1`/`lin2` in SAM and `proj_in`/`proj_out` in SAM 2.
/// The modules use `out_proj` and `proj_in`/`proj_out`; this renames the `from -> to` pairs of a name inside the
/// transformer (other names pass unchanged).
pub(crate) fn rename_in_two_way_transformer(name: &str, pairs: &[(&str, &str)]) -> String {
    const TRANSFORMER: &str = "mask_decoder.transformer.";
    let Some(rest) = name.strip_prefix(TRANSFORMER) else {
        return name.to_string();
    };
    let rest = pairs
        .iter()
        .fold(rest.to_string(), |rest, (from, to)| rest.replace(from, to));
    format!("{TRANSFORMER}{rest}")
}

/// `SamAttention`: attention whose projections may downsample the width (`internal = hidden / rate`).
#[derive(Module, Debug)]
pub struct SamAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    #[module(skip)]
    pub heads: usize,
}

impl SamAttention {
    pub(crate) fn new(hidden: usize, rate: usize, heads: usize, device: &Device) -> Self {
        let internal = hidden / rate;
        Self {
            q_proj: Linear::new(hidden, internal, true, INIT_STD, device),
            k_proj: Linear::new(hidden, internal, true, INIT_STD, device),
            v_proj: Linear::new(hidden, internal, true, INIT_STD, device),
            out_proj: Linear::new(internal, hidden, true, INIT_STD, device),
            heads,
        }
    }

    /// `query: [P, N, C]`, `key`, `value: [P, M, C]` -> `[P, N, C]`.
    fn forward(&self, query: Tensor<3>, key: Tensor<3>, value: Tensor<3>) -> Tensor<3> {
        let q = self.q_proj.forward(query);
        let k = self.k_proj.forward(key);
        let v = self.v_proj.forward(value);
        let [p, n, internal] = q.dims();
        let [_, m, _] = k.dims();
        let d = internal / self.heads;
        let split = |t: Tensor<3>, len: usize| t.reshape([p, len, self.heads, d]).swap_dims(1, 2);
        let out = attention(
            split(q, n),
            split(k, m),
            split(v, m),
            None,
            (d as f64).powf(-0.5),
        );
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([p, n, internal]))
    }
}

/// `SamTwoWayAttentionBlock`: token self-attention, tokens -> image, MLP, image -> tokens.
#[derive(Module, Debug)]
pub struct SamTwoWayAttentionBlock {
    pub self_attn: SamAttention,
    pub layer_norm1: LayerNorm,
    pub cross_attn_token_to_image: SamAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: SamFeedForward,
    pub layer_norm3: LayerNorm,
    pub layer_norm4: LayerNorm,
    pub cross_attn_image_to_token: SamAttention,
    #[module(skip)]
    pub skip_first_layer_pe: bool,
}

impl SamTwoWayAttentionBlock {
    fn forward(
        &self,
        queries: Tensor<3>,
        keys: Tensor<3>,
        query_pe: Tensor<3>,
        key_pe: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn
                .forward(queries.clone(), queries.clone(), queries)
        } else {
            let q = queries.clone() + query_pe.clone();
            queries.clone() + self.self_attn.forward(q.clone(), q, queries)
        };
        let queries = self.layer_norm1.forward(queries);

        let q = queries.clone() + query_pe.clone();
        let k = keys.clone() + key_pe.clone();
        let queries = queries + self.cross_attn_token_to_image.forward(q, k, keys.clone());
        let queries = self.layer_norm2.forward(queries);

        let queries = queries.clone() + self.mlp.forward(queries);
        let queries = self.layer_norm3.forward(queries);

        let q = queries.clone() + query_pe;
        let k = keys.clone() + key_pe;
        let keys = keys
            + self
                .cross_attn_image_to_token
                .forward(k, q, queries.clone());
        (queries, self.layer_norm4.forward(keys))
    }
}

#[derive(Module, Debug)]
pub struct SamTwoWayTransformer {
    pub layers: Vec<SamTwoWayAttentionBlock>,
    pub final_attn_token_to_image: SamAttention,
    pub layer_norm_final_attn: LayerNorm,
}

impl SamTwoWayTransformer {
    /// `tokens: [P, N, C]` (they are also the queries' positional embedding), `image, image_pe: [P, g*g, C]`.
    pub(crate) fn forward(
        &self,
        tokens: Tensor<3>,
        image: Tensor<3>,
        image_pe: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let (mut queries, mut keys) = (tokens.clone(), image);
        for layer in &self.layers {
            (queries, keys) = layer.forward(queries, keys, tokens.clone(), image_pe.clone());
        }
        let q = queries.clone() + tokens;
        let k = keys.clone() + image_pe;
        let queries = queries + self.final_attn_token_to_image.forward(q, k, keys.clone());
        (self.layer_norm_final_attn.forward(queries), keys)
    }
}

/// `SamFeedForward` / `Sam2FeedForward`: `proj_in`, `num_layers - 2` hidden `layers`, `proj_out`, the activation after all but the
/// last; a sigmoid on the output where `sigmoid_output`.
#[derive(Module, Debug)]
pub struct SamFeedForward {
    pub proj_in: Linear,
    pub layers: Vec<Linear>,
    pub proj_out: Linear,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub sigmoid_output: bool,
}

impl SamFeedForward {
    pub fn new(
        d_in: usize,
        hidden: usize,
        d_out: usize,
        num_layers: usize,
        act: Activation,
        device: &Device,
    ) -> Self {
        Self {
            proj_in: Linear::new(d_in, hidden, true, INIT_STD, device),
            layers: (0..num_layers.saturating_sub(2))
                .map(|_| Linear::new(hidden, hidden, true, INIT_STD, device))
                .collect(),
            proj_out: Linear::new(hidden, d_out, true, INIT_STD, device),
            act,
            sigmoid_output: false,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut x = self.act.apply(self.proj_in.forward(x));
        for layer in &self.layers {
            x = self.act.apply(layer.forward(x));
        }
        let x = self.proj_out.forward(x);
        if self.sigmoid_output {
            burn::tensor::activation::sigmoid(x)
        } else {
            x
        }
    }
}

/// A PyTorch `ConvTranspose2d` with kernel = stride (weight `[in, out, k, k]`).
#[derive(Module, Debug)]
pub struct ConvTranspose2d {
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
}

impl ConvTranspose2d {
    pub(crate) fn new(d_in: usize, d_out: usize, k: usize, device: &Device) -> Self {
        Self {
            weight: Initializer::Normal {
                mean: 0.0,
                std: INIT_STD,
            }
            .init([d_in, d_out, k, k], device),
            bias: Initializer::Zeros.init([d_out], device),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let k = self.weight.dims()[2];
        conv_transpose2d(
            x,
            self.weight.val(),
            Some(self.bias.val()),
            ConvTransposeOptions::new([k, k], [0, 0], [0, 0], [1, 1], 1),
        )
    }
}

/// `SamMaskDecoder`.
#[derive(Module, Debug)]
pub struct SamMaskDecoder {
    pub iou_token: Embedding,
    pub mask_tokens: Embedding,
    pub transformer: SamTwoWayTransformer,
    pub upscale_conv1: ConvTranspose2d,
    pub upscale_conv2: ConvTranspose2d,
    pub upscale_layer_norm: LayerNorm,
    pub output_hypernetworks_mlps: Vec<SamFeedForward>,
    pub iou_prediction_head: SamFeedForward,
}

/// What the mask decoder predicts for each prompt.
pub struct MaskPrediction {
    /// `[P, masks, 4g, 4g]` low-resolution mask logits.
    pub masks: Tensor<4>,
    /// `[P, masks]` predicted IoU of each mask.
    pub iou_scores: Tensor<2>,
}

impl SamMaskDecoder {
    fn new(d: &SamMaskDecoderConfig, device: &Device) -> Result<Self> {
        let c = d.hidden_size;
        let act = Activation::from_hf(&d.hidden_act)?;
        let tokens = d.num_multimask_outputs + 1;
        let layers = (0..d.num_hidden_layers)
            .map(|i| SamTwoWayAttentionBlock {
                self_attn: SamAttention::new(c, 1, d.num_attention_heads, device),
                layer_norm1: LayerNorm::new(c, d.layer_norm_eps, device),
                cross_attn_token_to_image: SamAttention::new(
                    c,
                    d.attention_downsample_rate,
                    d.num_attention_heads,
                    device,
                ),
                layer_norm2: LayerNorm::new(c, d.layer_norm_eps, device),
                mlp: SamFeedForward::new(c, d.mlp_dim, c, 2, act, device),
                layer_norm3: LayerNorm::new(c, d.layer_norm_eps, device),
                layer_norm4: LayerNorm::new(c, d.layer_norm_eps, device),
                cross_attn_image_to_token: SamAttention::new(
                    c,
                    d.attention_downsample_rate,
                    d.num_attention_heads,
                    device,
                ),
                skip_first_layer_pe: i == 0,
            })
            .collect();
        Ok(Self {
            iou_token: Embedding::new(1, c, INIT_STD, device),
            mask_tokens: Embedding::new(tokens, c, INIT_STD, device),
            transformer: SamTwoWayTransformer {
                layers,
                final_attn_token_to_image: SamAttention::new(
                    c,
                    d.attention_downsample_rate,
                    d.num_attention_heads,
                    device,
                ),
                // `nn.LayerNorm`'s default eps, not the config's.
                layer_norm_final_attn: LayerNorm::new(c, 1e-5, device),
            },
            upscale_conv1: ConvTranspose2d::new(c, c / 4, 2, device),
            upscale_conv2: ConvTranspose2d::new(c / 4, c / 8, 2, device),
            upscale_layer_norm: LayerNorm::new(c / 4, 1e-6, device),
            output_hypernetworks_mlps: (0..tokens)
                .map(|_| SamFeedForward::new(c, c, c / 8, 3, Activation::Relu, device))
                .collect(),
            iou_prediction_head: SamFeedForward::new(
                c,
                d.iou_head_hidden_dim,
                tokens,
                d.iou_head_depth,
                Activation::Relu,
                device,
            ),
        })
    }

    /// One prediction per prompt `p`: `image: [P, C, g, g]` (the image embedding of `p`'s image plus the dense
    /// prompt embedding), `image_pe: [C, g, g]`, `sparse: [P, n, C]`. `multimask` keeps the masks of tokens
    /// 1.. (three candidates), otherwise the single mask of token 0.
    pub fn forward(
        &self,
        image: Tensor<4>,
        image_pe: Tensor<3>,
        sparse: Tensor<3>,
        multimask: bool,
    ) -> MaskPrediction {
        let [p, c, g, _] = image.dims();
        let output_tokens = Tensor::cat(
            vec![self.iou_token.weight.val(), self.mask_tokens.weight.val()],
            0,
        );
        let [n_out, _] = output_tokens.dims();
        let n_masks = n_out - 1;
        let tokens = Tensor::cat(
            vec![output_tokens.unsqueeze::<3>().expand([p, n_out, c]), sparse],
            1,
        );
        let image = image.reshape([p, c, g * g]).swap_dims(1, 2);
        let image_pe = image_pe
            .reshape([1, c, g * g])
            .swap_dims(1, 2)
            .expand([p, g * g, c]);
        let (queries, keys) = self.transformer.forward(tokens, image, image_pe);
        let iou_token_out = queries.clone().slice([0..p, 0..1, 0..c]).reshape([p, c]);

        let image = keys.swap_dims(1, 2).reshape([p, c, g, g]);
        let up = self.upscale_conv1.forward(image);
        let up = activation::gelu(channels_first_norm(&self.upscale_layer_norm, up));
        let up = activation::gelu(self.upscale_conv2.forward(up));
        let [_, c8, h4, w4] = up.dims();

        let hyper_in: Vec<Tensor<3>> = self
            .output_hypernetworks_mlps
            .iter()
            .enumerate()
            .map(|(i, mlp)| {
                let token = queries
                    .clone()
                    .slice([0..p, 1 + i..2 + i, 0..c])
                    .reshape([p, c]);
                mlp.forward(token).reshape([p, 1, c8])
            })
            .collect();
        let hyper_in = Tensor::cat(hyper_in, 1);
        let masks = hyper_in
            .matmul(up.reshape([p, c8, h4 * w4]))
            .reshape([p, n_masks, h4, w4]);
        let iou = self.iou_prediction_head.forward(iou_token_out);
        let range = if multimask { 1..n_masks } else { 0..1 };
        MaskPrediction {
            masks: masks.slice([0..p, range.clone(), 0..h4, 0..w4]),
            iou_scores: iou.slice([0..p, range]),
        }
    }
}

// ---------------------------------------------------------------- the model

/// `SamModel`.
#[derive(Module, Debug)]
pub struct SamModel {
    pub shared_image_embedding: SamPositionalEmbedding,
    pub vision_encoder: SamVisionEncoder,
    pub prompt_encoder: SamPromptEncoder,
    pub mask_decoder: SamMaskDecoder,
}

impl SamModel {
    /// A model with HF-style initial weights (load a checkpoint to use it).
    pub fn new(config: &SamConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let v = &config.vision_config;
        let p = &config.prompt_encoder_config;
        let c = p.hidden_size;
        Ok(Self {
            shared_image_embedding: SamPositionalEmbedding {
                positional_embedding: Initializer::Normal {
                    mean: 0.0,
                    std: (v.hidden_size / 2) as f64,
                }
                .init([2, v.num_pos_feats], device),
            },
            vision_encoder: SamVisionEncoder::new(v, device)?,
            prompt_encoder: SamPromptEncoder {
                no_mask_embed: Embedding::new(1, c, INIT_STD, device),
                point_embed: (0..p.num_point_embeddings)
                    .map(|_| Embedding::new(1, c, INIT_STD, device))
                    .collect(),
                not_a_point_embed: Embedding::new(1, c, INIT_STD, device),
                input_image_size: p.image_size,
                image_embedding_size: p.image_embedding_size(),
            },
            mask_decoder: SamMaskDecoder::new(&config.mask_decoder_config, device)?,
        })
    }

    /// `pixels: [B, 3, S, S]` -> image embeddings `[B, C, g, g]` (`get_image_embeddings`).
    pub fn image_embeddings(&self, pixels: Tensor<4>) -> Tensor<4> {
        self.vision_encoder.forward(pixels)
    }

    /// Masks for box prompts. `image_embeddings: [B, C, g, g]`; `boxes: [P, 4]` in the resized-image frame,
    /// with `image_of[p]` the image of box `p`.
    pub fn predict_masks(
        &self,
        image_embeddings: Tensor<4>,
        boxes: Tensor<2>,
        image_of: &[usize],
        multimask: bool,
    ) -> MaskPrediction {
        let device = image_embeddings.device();
        let ids: Vec<i64> = image_of.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [image_of.len()]), &device);
        let [_, c, g, _] = image_embeddings.dims();
        let per_prompt = image_embeddings.select(0, ids)
            + self
                .prompt_encoder
                .dense_without_mask()
                .expand([image_of.len(), c, g, g]);
        let sparse = self
            .prompt_encoder
            .embed_boxes(&self.shared_image_embedding, boxes);
        let image_pe = self.shared_image_embedding.image_wide(g);
        self.mask_decoder
            .forward(per_prompt, image_pe, sparse, multimask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    }

    #[test]
    fn windows_round_trip_with_padding() {
        let device = Device::flex();
        let data: Vec<f32> = (0..2 * 5 * 7 * 3).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [2, 5, 7, 3]), &device);
        let (windows, hp, wp) = window_partition(x, 3);
        assert_eq!((hp, wp), (6, 9));
        assert_eq!(windows.dims(), [2 * 2 * 3, 3, 3, 3]);
        // Window (0, 1) of image 0 starts at column 3; the last row of window (1, 0) is padding.
        let w = values(windows.clone());
        assert_eq!(w[27..30], data[9..12]);
        assert!(w[81 + 18..81 + 27].iter().all(|&v| v == 0.0));
        let back = window_unpartition(windows, 3, (hp, wp), (5, 7));
        assert_eq!(values(back), data);
    }

    #[test]
    fn relative_table_indexes_by_offset() {
        let device = Device::flex();
        // rel_pos rows hold their own index: out[q][k] = q - k + s - 1.
        let rel = Tensor::<2>::from_data(
            TensorData::new(vec![0f32, 1.0, 2.0, 3.0, 4.0], [5, 1]),
            &device,
        );
        let table = values(relative_table(rel, 3));
        assert_eq!(table, vec![2.0, 1.0, 0.0, 3.0, 2.0, 1.0, 4.0, 3.0, 2.0]);
    }
}
