//! `Owlv2ForObjectDetection` / `OwlViTForObjectDetection` in Burn: a CLIP image tower (svlm-model's
//! [`VisionTransformer`]) and text tower, and the detection heads (class, box, OWLv2's objectness). Module paths are
//! the HF names with the backbone (`owlv2.` / `owlvit.`) under `owl.` and CLIP's `pre_layrnorm` spelled as
//! svlm-model spells it; [`crate::owl::detector::module_path`] maps one onto the other.

use anyhow::{Result, bail};
use burn::module::Module;
use burn::tensor::activation;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use svlm_model::nn::{Activation, Embedding, LayerNorm, Linear, attention};
use svlm_model::vision::{
    VisionAttention, VisionEncoder, VisionEncoderLayer, VisionKind, VisionMlp, VisionTransformer,
};

use super::config::{OwlConfig, OwlTextConfig, OwlVersion};

/// Tokenized text queries, shared by every image of a batch: `input_ids` and `attention_mask` row-major
/// `[num_queries, seq_len]`, as the HF processor returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextQueries {
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub num_queries: usize,
    pub seq_len: usize,
}

impl TextQueries {
    pub fn new(input_ids: Vec<i64>, attention_mask: Vec<i64>, num_queries: usize) -> Result<Self> {
        if num_queries == 0 || input_ids.is_empty() || !input_ids.len().is_multiple_of(num_queries)
        {
            bail!(
                "{} token ids do not make {num_queries} queries of equal length",
                input_ids.len()
            );
        }
        if attention_mask.len() != input_ids.len() {
            bail!(
                "attention_mask has {} values for {} token ids",
                attention_mask.len(),
                input_ids.len()
            );
        }
        Ok(Self {
            seq_len: input_ids.len() / num_queries,
            input_ids,
            attention_mask,
            num_queries,
        })
    }

    fn row(&self, q: usize) -> &[i64] {
        &self.input_ids[q * self.seq_len..(q + 1) * self.seq_len]
    }

    /// Where each query is pooled: the first position of its largest id (`input_ids.argmax(-1)`; CLIP's
    /// end-of-text token has the largest id of the vocabulary).
    pub fn pooling_positions(&self) -> Vec<usize> {
        (0..self.num_queries)
            .map(|q| {
                let row = self.row(q);
                let mut best = 0;
                for (i, &id) in row.iter().enumerate() {
                    if id > row[best] {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }

    /// Which queries are real: a padded query starts with id 0 (`input_ids[..., 0] > 0`).
    pub fn query_mask(&self) -> Vec<bool> {
        (0..self.num_queries).map(|q| self.row(q)[0] > 0).collect()
    }
}

#[derive(Module, Debug)]
pub struct OwlTextEmbeddings {
    pub token_embedding: Embedding,
    pub position_embedding: Embedding,
}

/// CLIP's text transformer (`text_model.*`): causal self-attention, `final_layer_norm`, pooled at the
/// end-of-text token.
#[derive(Module, Debug)]
pub struct OwlTextTransformer {
    pub embeddings: OwlTextEmbeddings,
    pub encoder: VisionEncoder,
    pub final_layer_norm: LayerNorm,
}

fn encoder_layers(cfg: &OwlTextConfig, device: &Device) -> Result<Vec<VisionEncoderLayer>> {
    let (hidden, std) = (cfg.hidden_size, cfg.initializer_range);
    let act = Activation::from_hf(&cfg.hidden_act)?;
    Ok((0..cfg.num_hidden_layers)
        .map(|_| VisionEncoderLayer {
            self_attn: VisionAttention {
                k_proj: Linear::new(hidden, hidden, true, std, device),
                v_proj: Linear::new(hidden, hidden, true, std, device),
                q_proj: Linear::new(hidden, hidden, true, std, device),
                out_proj: Linear::new(hidden, hidden, true, std, device),
                heads: cfg.num_attention_heads,
            },
            layer_norm1: LayerNorm::new(hidden, cfg.layer_norm_eps, device),
            mlp: VisionMlp {
                fc1: Linear::new(hidden, cfg.intermediate_size, true, std, device),
                fc2: Linear::new(cfg.intermediate_size, hidden, true, std, device),
                act,
            },
            layer_norm2: LayerNorm::new(hidden, cfg.layer_norm_eps, device),
        })
        .collect())
}

/// One pre-norm CLIP encoder layer with an attention mask (`[B, 1, S, S]`, true = not attended).
fn clip_layer(layer: &VisionEncoderLayer, x: Tensor<3>, masked: Tensor<4, Bool>) -> Tensor<3> {
    let [b, s, e] = x.dims();
    let attn = &layer.self_attn;
    let (h, d) = (attn.heads, e / attn.heads);
    let split = |t: Tensor<3>| t.reshape([b, s, h, d]).swap_dims(1, 2);
    let normed = layer.layer_norm1.forward(x.clone());
    let q = split(attn.q_proj.forward(normed.clone()));
    let k = split(attn.k_proj.forward(normed.clone()));
    let v = split(attn.v_proj.forward(normed));
    let out = attention(q, k, v, Some(masked), (d as f64).powf(-0.5));
    let x = x + attn
        .out_proj
        .forward(out.swap_dims(1, 2).reshape([b, s, e]));
    let m = layer.mlp.fc2.forward(
        layer
            .mlp
            .act
            .apply(layer.mlp.fc1.forward(layer.layer_norm2.forward(x.clone()))),
    );
    x + m
}

impl OwlTextTransformer {
    pub fn new(cfg: &OwlTextConfig, device: &Device) -> Result<Self> {
        let std = cfg.initializer_range;
        Ok(Self {
            embeddings: OwlTextEmbeddings {
                token_embedding: Embedding::new(cfg.vocab_size, cfg.hidden_size, std, device),
                position_embedding: Embedding::new(
                    cfg.max_position_embeddings,
                    cfg.hidden_size,
                    std,
                    device,
                ),
            },
            encoder: VisionEncoder {
                layers: encoder_layers(cfg, device)?,
            },
            final_layer_norm: LayerNorm::new(cfg.hidden_size, cfg.layer_norm_eps, device),
        })
    }

    /// The pooled (end-of-text) outputs, `[num_queries, hidden]`.
    pub fn forward(&self, queries: &TextQueries, device: &Device) -> Result<Tensor<2>> {
        let (n, s) = (queries.num_queries, queries.seq_len);
        let [vocab, _] = self.embeddings.token_embedding.weight.dims();
        let [positions, _] = self.embeddings.position_embedding.weight.dims();
        if s > positions {
            bail!("queries of {s} tokens are longer than the text model's {positions} positions");
        }
        if let Some(bad) = queries
            .input_ids
            .iter()
            .find(|&&id| id < 0 || id as usize >= vocab)
        {
            bail!("token id {bad} is outside the text model's vocabulary of {vocab}");
        }
        let ids =
            Tensor::<2, Int>::from_data(TensorData::new(queries.input_ids.clone(), [n, s]), device);
        let position_ids = Tensor::<1, Int>::arange(0..s as i64, device).reshape([1, s]);
        let mut x = self.embeddings.token_embedding.forward(ids)
            + self.embeddings.position_embedding.forward(position_ids);
        // Causal, and padding keys masked as `create_causal_mask` does with the attention mask.
        let mut masked = Vec::with_capacity(n * s * s);
        for q in 0..n {
            let keep = &queries.attention_mask[q * s..(q + 1) * s];
            for i in 0..s {
                for (j, &k) in keep.iter().enumerate() {
                    masked.push(j > i || k == 0);
                }
            }
        }
        let masked = Tensor::<4, Bool>::from_data(TensorData::new(masked, [n, 1, s, s]), device);
        for layer in &self.encoder.layers {
            x = clip_layer(layer, x, masked.clone());
        }
        let x = self.final_layer_norm.forward(x);
        let [_, _, e] = x.dims();
        let rows: Vec<i64> = queries
            .pooling_positions()
            .into_iter()
            .enumerate()
            .map(|(q, p)| (q * s + p) as i64)
            .collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), device);
        Ok(x.reshape([n * s, e]).select(0, rows))
    }
}

/// `OwlViTModel` / `Owlv2Model`: the CLIP towers and projections.
#[derive(Module, Debug)]
pub struct OwlClip {
    pub text_model: OwlTextTransformer,
    pub vision_model: VisionTransformer,
    pub visual_projection: Linear,
    pub text_projection: Linear,
}

/// `box_head` (4 outputs) and OWLv2's `objectness_head` (1 output): dense, GELU, dense, GELU, dense.
#[derive(Module, Debug)]
pub struct OwlBoxHead {
    pub dense0: Linear,
    pub dense1: Linear,
    pub dense2: Linear,
}

impl OwlBoxHead {
    fn new(width: usize, out: usize, std: f64, device: &Device) -> Self {
        Self {
            dense0: Linear::new(width, width, true, std, device),
            dense1: Linear::new(width, width, true, std, device),
            dense2: Linear::new(width, out, true, std, device),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = activation::gelu(self.dense0.forward(x));
        let x = activation::gelu(self.dense1.forward(x));
        self.dense2.forward(x)
    }
}

#[derive(Module, Debug)]
pub struct OwlClassHead {
    pub dense0: Linear,
    pub logit_shift: Linear,
    pub logit_scale: Linear,
}

/// What one forward pass gives (names and shapes as `Owlv2ObjectDetectionOutput`; `P` = patches, `Q` = queries).
pub struct OwlOutput {
    /// `[B, P, Q]`; padded queries hold `f32::MIN`.
    pub logits: Tensor<3>,
    /// `[B, P, 4]`: (cx, cy, w, h) relative to the model input (the padded square for OWLv2).
    pub pred_boxes: Tensor<3>,
    /// `[B, P]`; `None` for OWL-ViT v1.
    pub objectness_logits: Option<Tensor<2>>,
    /// The patch feature map, `[B, grid, grid, vision hidden]`.
    pub image_embeds: Tensor<4>,
    /// Normalized projected query embeddings, `[B, Q, projection]`.
    pub text_embeds: Tensor<3>,
    /// Normalized per-patch class embeddings, `[B, P, projection]`.
    pub class_embeds: Tensor<3>,
    /// The CLIP image embedding (pooled, projected, normalized), `[B, projection]`.
    pub image_level_embeds: Tensor<2>,
}

/// `Owlv2ForObjectDetection` / `OwlViTForObjectDetection`.
#[derive(Module, Debug)]
pub struct OwlForObjectDetection {
    pub owl: OwlClip,
    pub class_head: OwlClassHead,
    pub box_head: OwlBoxHead,
    pub objectness_head: Option<OwlBoxHead>,
    pub layer_norm: LayerNorm,
    #[module(skip)]
    pub version: OwlVersion,
    #[module(skip)]
    pub grid: usize,
    /// `owl*.logit_scale` (a 0-d tensor in checkpoints), kept for the CLIP image-text logits; detection ignores it.
    #[module(skip)]
    pub logit_scale: f32,
}

/// Unit-norm rows, `x / (||x|| + eps)`.
fn normalize<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let norm = x.clone().square().sum_dim(D - 1).sqrt();
    x / norm.add_scalar(eps)
}

/// `compute_box_bias`: the inverse sigmoid of each patch's corner (centre bias) and of the patch size (size bias),
/// `[grid * grid, 4]` row-major, in float32 as torch computes it.
pub fn box_bias(grid_h: usize, grid_w: usize) -> Vec<f32> {
    let logit = |v: f32| (v + 1e-4f32).ln() - (-v + 1e-4f32).ln_1p();
    let size_x = logit(1.0f32 / grid_w as f32);
    let size_y = logit(1.0f32 / grid_h as f32);
    let mut out = Vec::with_capacity(grid_h * grid_w * 4);
    for row in 0..grid_h {
        for col in 0..grid_w {
            let x = ((col + 1) as f32 / grid_w as f32).clamp(0.0, 1.0);
            let y = ((row + 1) as f32 / grid_h as f32).clamp(0.0, 1.0);
            out.extend_from_slice(&[logit(x), logit(y), size_x, size_y]);
        }
    }
    out
}

impl OwlForObjectDetection {
    /// A model with HF-style initial weights (load a checkpoint to use it).
    pub fn new(config: &OwlConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let v = &config.vision_config;
        let t = &config.text_config;
        let std = v.initializer_range;
        let vision_model = VisionTransformer::new(&v.to_vision_config(), VisionKind::Clip, device)?;
        Ok(Self {
            owl: OwlClip {
                text_model: OwlTextTransformer::new(t, device)?,
                vision_model,
                visual_projection: Linear::new(
                    v.hidden_size,
                    config.projection_dim,
                    false,
                    std,
                    device,
                ),
                text_projection: Linear::new(
                    t.hidden_size,
                    config.projection_dim,
                    false,
                    std,
                    device,
                ),
            },
            class_head: OwlClassHead {
                dense0: Linear::new(v.hidden_size, t.hidden_size, true, std, device),
                logit_shift: Linear::new(v.hidden_size, 1, true, std, device),
                logit_scale: Linear::new(v.hidden_size, 1, true, std, device),
            },
            box_head: OwlBoxHead::new(v.hidden_size, 4, std, device),
            objectness_head: (config.version == OwlVersion::V2)
                .then(|| OwlBoxHead::new(v.hidden_size, 1, std, device)),
            layer_norm: LayerNorm::new(v.hidden_size, v.layer_norm_eps, device),
            version: config.version,
            grid: v.grid(),
            logit_scale: config.logit_scale_init_value as f32,
        })
    }

    /// Normalized projected text embeddings of the queries, `[Q, projection]` (`Owl*Model.text_embeds`).
    pub fn text_embeds(&self, queries: &TextQueries, device: &Device) -> Result<Tensor<2>> {
        let pooled = self.owl.text_model.forward(queries, device)?;
        Ok(normalize(self.owl.text_projection.forward(pooled), 0.0))
    }

    /// `pixels: [B, 3, S, S]` (preprocessed, `S` the config's `image_size`) and queries shared by every image.
    pub fn forward(&self, pixels: Tensor<4>, queries: &TextQueries) -> Result<OwlOutput> {
        let device = pixels.device();
        let [b, _, h, w] = pixels.dims();
        let patch = self.owl.vision_model.patch_size;
        if h != w || h / patch != self.grid || h % patch != 0 {
            bail!(
                "pixel values are {h}x{w}; the model takes {s}x{s} (preprocess with its image processor)",
                s = self.grid * patch
            );
        }
        let text_embeds = self.text_embeds(queries, &device)?;
        let image_embeds = self.image_embeds(pixels);
        let [_, n_patches, width] = image_embeds.features.dims();
        let q = queries.num_queries;
        let [_, d] = text_embeds.dims();
        let text_embeds = text_embeds.unsqueeze_dim::<3>(0).expand([b, q, d]);
        let (logits, class_embeds) =
            self.class_logits(image_embeds.features.clone(), text_embeds.clone(), queries);
        let objectness_logits = self.objectness_head.as_ref().map(|head| {
            head.forward(image_embeds.features.clone())
                .reshape([b, n_patches])
        });
        let pred_boxes = self.pred_boxes(image_embeds.features.clone());
        Ok(OwlOutput {
            logits,
            pred_boxes,
            objectness_logits,
            image_embeds: image_embeds
                .features
                .reshape([b, self.grid, self.grid, width]),
            text_embeds,
            class_embeds,
            image_level_embeds: image_embeds.image_level,
        })
    }

    fn image_embeds(&self, pixels: Tensor<4>) -> ImageEmbeds {
        let vision = &self.owl.vision_model;
        let hidden = vision.forward(pixels, None, false).last_hidden_state;
        let [b, s, c] = hidden.dims();
        let post = vision
            .post_layernorm
            .as_ref()
            .map(|norm| norm.forward(hidden.clone()))
            .unwrap_or(hidden);
        let class_token = post.clone().slice([0..b, 0..1, 0..c]);
        let image_level = normalize(
            self.owl
                .visual_projection
                .forward(class_token.clone().reshape([b, c])),
            0.0,
        );
        let patches = post.slice([0..b, 1..s, 0..c]);
        let features = self
            .layer_norm
            .forward(patches * class_token.expand([b, s - 1, c]));
        ImageEmbeds {
            features,
            image_level,
        }
    }

    fn class_logits(
        &self,
        features: Tensor<3>,
        text_embeds: Tensor<3>,
        queries: &TextQueries,
    ) -> (Tensor<3>, Tensor<3>) {
        let device = features.device();
        let [b, p, _] = features.dims();
        let q = queries.num_queries;
        let class_embeds = normalize(self.class_head.dense0.forward(features.clone()), 1e-6);
        let query = normalize(text_embeds, 1e-6);
        let logits = class_embeds.clone().matmul(query.swap_dims(1, 2));
        let shift = self.class_head.logit_shift.forward(features.clone());
        let scale =
            activation::elu(self.class_head.logit_scale.forward(features), 1.0).add_scalar(1.0);
        let logits = (logits + shift) * scale;
        let padded: Vec<bool> = queries.query_mask().into_iter().map(|real| !real).collect();
        let logits = if padded.iter().any(|&p| p) {
            let mask = Tensor::<3, Bool>::from_data(TensorData::new(padded, [1, 1, q]), &device)
                .expand([b, p, q]);
            logits.mask_fill(mask, f32::MIN)
        } else {
            logits
        };
        (logits, class_embeds)
    }

    fn pred_boxes(&self, features: Tensor<3>) -> Tensor<3> {
        let device = features.device();
        let [b, p, _] = features.dims();
        let bias = Tensor::<2>::from_data(
            TensorData::new(box_bias(self.grid, self.grid), [p, 4]),
            &device,
        );
        activation::sigmoid(
            self.box_head.forward(features) + bias.unsqueeze_dim::<3>(0).expand([b, p, 4]),
        )
    }
}

struct ImageEmbeds {
    /// `[B, P, C]` patch features after the class-token product and `layer_norm`.
    features: Tensor<3>,
    image_level: Tensor<2>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_takes_the_first_largest_id_and_padded_queries_are_masked() {
        let q = TextQueries::new(
            vec![5, 7, 9, 0, 0, 0, 9, 0, 0],
            vec![1, 1, 1, 0, 0, 0, 1, 0, 0],
            3,
        )
        .unwrap();
        assert_eq!(q.pooling_positions(), vec![2, 0, 0]);
        assert_eq!(q.query_mask(), vec![true, false, true]);
        assert!(TextQueries::new(vec![1, 2, 3], vec![1, 1, 1], 2).is_err());
    }

    #[test]
    fn box_bias_is_the_inverse_sigmoid_of_corners_and_patch_size() {
        let bias = box_bias(2, 2);
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        // Patch (row 0, col 1): corner (1.0, 0.5), size 0.5.
        let p = &bias[4..8];
        assert!((sigmoid(p[0]) - 1.0).abs() < 1e-3);
        assert!((sigmoid(p[1]) - 0.5).abs() < 1e-5);
        assert!((sigmoid(p[2]) - 0.5).abs() < 1e-5);
    }
}
