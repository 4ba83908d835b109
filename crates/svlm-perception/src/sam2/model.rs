//! `Sam2Model` (transformers 5) for single images and box prompts, as a Burn module whose parameter paths are the
//! checkpoint names: the image encoder ([`super::backbone`]), `no_memory_embedding` (added to the
//! lowest-resolution features when there is no video memory), the box-prompt encoder with its own random-Fourier
//! matrix (`prompt_encoder.shared_embedding`; `shared_image_embedding` encodes the image grid), and the mask
//! decoder: two-way transformer over the object-score, IoU and mask tokens plus the prompt, upscaling with the
//! high-resolution features (`conv_s0`, `conv_s1`) added in, hypernetwork masks, IoU and object-score heads.
//!
//! Mask prompts (`prompt_encoder.mask_embed.*`) and the video-memory modules are not part of this module; the
//! loader leaves their tensors out.

use anyhow::Result;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use svlm_model::nn::{Activation, Embedding, LayerNorm};

use crate::model::Conv2d;
use crate::sam::model::{
    ConvTranspose2d, SamAttention, SamFeedForward, SamPositionalEmbedding, SamTwoWayAttentionBlock,
    SamTwoWayTransformer, channels_first_norm,
};
use crate::sam2::backbone::{INIT_STD, Sam2VisionEncoder};
use crate::sam2::config::{Sam2Config, Sam2MaskDecoderConfig};

// ---------------------------------------------------------------- prompt encoder

/// `Sam2PromptEncoder` for box prompts: `point_embed` rows 2 and 3 mark the corners, `not_a_point_embed` the
/// padding point transformers appends to every box.
#[derive(Module, Debug)]
pub struct Sam2PromptEncoder {
    pub shared_embedding: SamPositionalEmbedding,
    pub no_mask_embed: Embedding,
    pub point_embed: Embedding,
    pub not_a_point_embed: Embedding,
    #[module(skip)]
    pub input_image_size: usize,
    #[module(skip)]
    pub image_embedding_size: usize,
}

impl Sam2PromptEncoder {
    /// `boxes: [P, 4]` (x0, y0, x1, y1 in the model-input frame) -> sparse embeddings `[P, 3, C]`.
    pub fn embed_boxes(&self, boxes: Tensor<2>) -> Tensor<3> {
        let [p, _] = boxes.dims();
        let corners = boxes
            .add_scalar(0.5)
            .div_scalar(self.input_image_size as f64)
            .reshape([p * 2, 2]);
        let pe = self.shared_embedding.forward(corners);
        let [_, c] = pe.dims();
        let corner_types = self.point_embed.weight.val().slice([2..4, 0..c]);
        let corners = pe.reshape([p, 2, c]) + corner_types.unsqueeze::<3>();
        let pad = self
            .not_a_point_embed
            .weight
            .val()
            .unsqueeze::<3>()
            .expand([p, 1, c]);
        Tensor::cat(vec![corners, pad], 1)
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

/// `Sam2MaskDecoder`.
#[derive(Module, Debug)]
pub struct Sam2MaskDecoder {
    pub iou_token: Embedding,
    pub mask_tokens: Embedding,
    pub obj_score_token: Embedding,
    pub transformer: SamTwoWayTransformer,
    pub upscale_conv1: ConvTranspose2d,
    pub upscale_conv2: ConvTranspose2d,
    pub upscale_layer_norm: LayerNorm,
    pub output_hypernetworks_mlps: Vec<SamFeedForward>,
    pub iou_prediction_head: SamFeedForward,
    /// Project the two high-resolution FPN levels to the upscaling widths (`C / 8`, `C / 4`).
    pub conv_s0: Conv2d,
    pub conv_s1: Conv2d,
    pub pred_obj_score_head: SamFeedForward,
    /// Single-mask output: `(delta, threshold)` of the stability fallback to the best multimask candidate.
    #[module(skip)]
    pub stability: Option<(f64, f64)>,
}

/// What the mask decoder predicts for each prompt.
pub struct Sam2MaskPrediction {
    /// `[P, masks, 4g, 4g]` low-resolution mask logits.
    pub masks: Tensor<4>,
    /// `[P, masks]` predicted IoU of each mask (after the sigmoid).
    pub iou_scores: Tensor<2>,
    /// `[P, 1]`: whether an object is present (a logit).
    pub object_score_logits: Tensor<2>,
}

impl Sam2MaskDecoder {
    fn new(d: &Sam2MaskDecoderConfig, device: &Device) -> Self {
        let c = d.hidden_size;
        let tokens = d.num_multimask_outputs + 1;
        let attn = |rate| SamAttention::new(c, rate, d.num_attention_heads, device);
        // `nn.LayerNorm`'s default eps in the two-way transformer, as transformers builds it.
        let norm = || LayerNorm::new(c, 1e-5, device);
        let layers = (0..d.num_hidden_layers)
            .map(|i| SamTwoWayAttentionBlock {
                self_attn: attn(1),
                layer_norm1: norm(),
                cross_attn_token_to_image: attn(d.attention_downsample_rate),
                layer_norm2: norm(),
                mlp: SamFeedForward::new(
                    c,
                    d.mlp_dim,
                    c,
                    d.num_hidden_layers,
                    Activation::Relu,
                    device,
                ),
                layer_norm3: norm(),
                layer_norm4: norm(),
                cross_attn_image_to_token: attn(d.attention_downsample_rate),
                skip_first_layer_pe: i == 0,
            })
            .collect();
        let relu_mlp = |d_in, hidden, d_out, depth| {
            SamFeedForward::new(d_in, hidden, d_out, depth, Activation::Relu, device)
        };
        let mut iou_prediction_head = relu_mlp(c, d.iou_head_hidden_dim, tokens, d.iou_head_depth);
        iou_prediction_head.sigmoid_output = true;
        Self {
            iou_token: Embedding::new(1, c, INIT_STD, device),
            mask_tokens: Embedding::new(tokens, c, INIT_STD, device),
            obj_score_token: Embedding::new(1, c, INIT_STD, device),
            transformer: SamTwoWayTransformer {
                layers,
                final_attn_token_to_image: attn(d.attention_downsample_rate),
                layer_norm_final_attn: norm(),
            },
            upscale_conv1: ConvTranspose2d::new(c, c / 4, 2, device),
            upscale_conv2: ConvTranspose2d::new(c / 4, c / 8, 2, device),
            upscale_layer_norm: LayerNorm::new(c / 4, 1e-6, device),
            output_hypernetworks_mlps: (0..tokens).map(|_| relu_mlp(c, c, c / 8, 3)).collect(),
            iou_prediction_head,
            conv_s0: Conv2d::new(c, c / 8, 1, 1, 0, true, device),
            conv_s1: Conv2d::new(c, c / 4, 1, 1, 0, true, device),
            pred_obj_score_head: relu_mlp(c, c, 1, 3),
            stability: d.dynamic_multimask_via_stability.then_some((
                d.dynamic_multimask_stability_delta,
                d.dynamic_multimask_stability_thresh,
            )),
        }
    }

    /// One prediction per prompt `p`: `image: [P, C, g, g]` (the image features of `p`'s image plus the dense
    /// prompt embedding), `image_pe: [C, g, g]`, `sparse: [P, n, C]`, `high_res: ([P, C/8, 4g, 4g],
    /// [P, C/4, 2g, 2g])`. `multimask` keeps the candidates of tokens 1.., otherwise token 0's mask (or, where it
    /// is unstable and the config asks for it, the candidate with the highest predicted IoU).
    pub fn forward(
        &self,
        image: Tensor<4>,
        image_pe: Tensor<3>,
        sparse: Tensor<3>,
        high_res: (Tensor<4>, Tensor<4>),
        multimask: bool,
    ) -> Sam2MaskPrediction {
        let [p, c, g, _] = image.dims();
        let output_tokens = Tensor::cat(
            vec![
                self.obj_score_token.weight.val(),
                self.iou_token.weight.val(),
                self.mask_tokens.weight.val(),
            ],
            0,
        );
        let [n_out, _] = output_tokens.dims();
        let n_masks = n_out - 2;
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
        let token = |i: usize| {
            queries
                .clone()
                .slice([0..p, i..i + 1, 0..c])
                .reshape([p, c])
        };

        let (s0, s1) = high_res;
        let image = keys.swap_dims(1, 2).reshape([p, c, g, g]);
        let up = self.upscale_conv1.forward(image) + s1;
        let up = activation::gelu(channels_first_norm(&self.upscale_layer_norm, up));
        let up = activation::gelu(self.upscale_conv2.forward(up) + s0);
        let [_, c8, h4, w4] = up.dims();

        let hyper_in: Vec<Tensor<3>> = self
            .output_hypernetworks_mlps
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(token(2 + i)).reshape([p, 1, c8]))
            .collect();
        let masks = Tensor::cat(hyper_in, 1)
            .matmul(up.reshape([p, c8, h4 * w4]))
            .reshape([p, n_masks, h4, w4]);
        let iou = self.iou_prediction_head.forward(token(1));
        let object_score_logits = self.pred_obj_score_head.forward(token(0));
        let (masks, iou_scores) = if multimask {
            (
                masks.slice([0..p, 1..n_masks, 0..h4, 0..w4]),
                iou.slice([0..p, 1..n_masks]),
            )
        } else {
            self.single_mask(masks, iou)
        };
        Sam2MaskPrediction {
            masks,
            iou_scores,
            object_score_logits,
        }
    }

    /// Token 0's mask, replaced by the multimask candidate with the highest predicted IoU where its stability
    /// (the area above `delta` over the area above `-delta`) is below the threshold
    /// (`_dynamic_multimask_via_stability`).
    fn single_mask(&self, masks: Tensor<4>, iou: Tensor<2>) -> (Tensor<4>, Tensor<2>) {
        let [p, n, h, w] = masks.dims();
        let single = masks.clone().slice([0..p, 0..1, 0..h, 0..w]);
        let single_iou = iou.clone().slice([0..p, 0..1]);
        let Some((delta, threshold)) = self.stability else {
            return (single, single_iou);
        };
        let candidates_iou = iou.slice([0..p, 1..n]);
        let best = candidates_iou.clone().argmax(1); // [P, 1], the first maximum
        let index = best.clone().reshape([p, 1, 1, 1]).expand([p, 1, h, w]);
        let best_mask = masks.slice([0..p, 1..n, 0..h, 0..w]).gather(1, index);
        let best_iou = candidates_iou.gather(1, best);
        let flat = single.clone().reshape([p, h * w]);
        let inner = flat.clone().greater_elem(delta).float().sum_dim(1);
        let outer = flat.greater_elem(-delta).float().sum_dim(1);
        // An empty outer area counts as stable (score 1).
        let stability = inner
            .clone()
            .div(outer.clone())
            .mask_where(outer.equal_elem(0.0), inner.ones_like());
        let stable = stability.greater_equal_elem(threshold); // [P, 1]
        let mask = stable.clone().reshape([p, 1, 1, 1]).expand([p, 1, h, w]);
        (
            best_mask.mask_where(mask, single),
            best_iou.mask_where(stable, single_iou),
        )
    }
}

// ---------------------------------------------------------------- the model

/// The image side of [`Sam2Model`], computed once per image: what the mask decoder reads.
#[derive(Clone, Debug)]
pub struct Sam2ImageEmbeddings {
    /// `[B, C/8, 4g, 4g]`: `conv_s0` of the highest-resolution FPN level.
    pub high_res_s0: Tensor<4>,
    /// `[B, C/4, 2g, 2g]`: `conv_s1` of the second level.
    pub high_res_s1: Tensor<4>,
    /// `[B, C, g, g]`: the lowest-resolution level plus `no_memory_embedding`.
    pub image: Tensor<4>,
}

/// `Sam2Model` for single images.
#[derive(Module, Debug)]
pub struct Sam2Model {
    pub shared_image_embedding: SamPositionalEmbedding,
    pub vision_encoder: Sam2VisionEncoder,
    pub prompt_encoder: Sam2PromptEncoder,
    pub mask_decoder: Sam2MaskDecoder,
    /// `[1, 1, C]`.
    pub no_memory_embedding: Param<Tensor<3>>,
}

impl Sam2Model {
    /// A model with HF-style initial weights (load a checkpoint to use it).
    pub fn new(config: &Sam2Config, device: &Device) -> Result<Self> {
        config.validate()?;
        let p = &config.prompt_encoder_config;
        let c = p.hidden_size;
        let fourier = || SamPositionalEmbedding {
            positional_embedding: Initializer::Normal {
                mean: 0.0,
                std: 1.0,
            }
            .init([2, c / 2], device),
        };
        Ok(Self {
            shared_image_embedding: fourier(),
            vision_encoder: Sam2VisionEncoder::new(&config.vision_config, device)?,
            prompt_encoder: Sam2PromptEncoder {
                shared_embedding: fourier(),
                no_mask_embed: Embedding::new(1, c, INIT_STD, device),
                point_embed: Embedding::new(p.num_point_embeddings, c, INIT_STD, device),
                not_a_point_embed: Embedding::new(1, c, INIT_STD, device),
                input_image_size: p.image_size,
                image_embedding_size: p.image_embedding_size(),
            },
            mask_decoder: Sam2MaskDecoder::new(&config.mask_decoder_config, device),
            no_memory_embedding: Initializer::Zeros.init([1, 1, c], device),
        })
    }

    /// `pixels: [B, 3, S, S]` -> the mask decoder's image inputs (`get_image_embeddings`).
    pub fn image_embeddings(&self, pixels: Tensor<4>) -> Sam2ImageEmbeddings {
        self.embeddings_of_features(self.vision_encoder.forward(pixels))
    }

    /// The FPN features (high resolution first, three levels) -> the mask decoder's image inputs.
    pub fn embeddings_of_features(&self, fpn: Vec<Tensor<4>>) -> Sam2ImageEmbeddings {
        let mut levels = fpn.into_iter();
        let (Some(s0), Some(s1), Some(last)) = (levels.next(), levels.next(), levels.next()) else {
            unreachable!("the config validation requires three feature levels");
        };
        let [_, c, _, _] = last.dims();
        let memory = self.no_memory_embedding.val().reshape([1, c, 1, 1]);
        Sam2ImageEmbeddings {
            high_res_s0: self.mask_decoder.conv_s0.forward(s0),
            high_res_s1: self.mask_decoder.conv_s1.forward(s1),
            image: last + memory,
        }
    }

    /// Masks for box prompts. `boxes: [P, 4]` in the model-input frame, with `image_of[p]` the image (in
    /// `embeddings`) of box `p`.
    pub fn predict_masks(
        &self,
        embeddings: &Sam2ImageEmbeddings,
        boxes: Tensor<2>,
        image_of: &[usize],
        multimask: bool,
    ) -> Sam2MaskPrediction {
        let device = embeddings.image.device();
        let ids: Vec<i64> = image_of.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [image_of.len()]), &device);
        let [_, c, g, _] = embeddings.image.dims();
        let per_prompt = embeddings.image.clone().select(0, ids.clone())
            + self
                .prompt_encoder
                .dense_without_mask()
                .expand([image_of.len(), c, g, g]);
        let high_res = (
            embeddings.high_res_s0.clone().select(0, ids.clone()),
            embeddings.high_res_s1.clone().select(0, ids),
        );
        let sparse = self.prompt_encoder.embed_boxes(boxes);
        let image_pe = self.shared_image_embedding.image_wide(g);
        self.mask_decoder
            .forward(per_prompt, image_pe, sparse, high_res, multimask)
    }
}
