//! Qwen2-VL, Qwen2.5-VL and Qwen3-VL (`Qwen2VLForConditionalGeneration`, `Qwen2_5_VLForConditionalGeneration`,
//! `Qwen3VLForConditionalGeneration`): a vision tower over flattened `[C, T, p, p]` patches of images of any size
//! (2D rotary positions; in 2.5 window attention with full attention in `fullatt_block_indexes`, RMSNorm and a
//! gated MLP; in 2 LayerNorm and a plain MLP; in 3 LayerNorm, a plain MLP and a learned position table resampled
//! bilinearly to each image's grid), a merger folding each 2 x 2 block of patches into one image token, and a
//! Qwen2 (Qwen3 in 3: q/k RMSNorm, no biases) decoder with multimodal rotary positions (temporal, height, width
//! position ids per token, spread over the rotary frequencies by `mrope_section`: in consecutive blocks in 2 and
//! 2.5, interleaved in 3). Qwen3-VL also merges the output of chosen tower blocks (`deepstack_visual_indexes`)
//! with merger copies of their own and adds them to the image tokens' hidden states after the first decoder
//! layers (DeepStack, [`crate::llama::Deepstack`]).
//!
//! Module paths are the names `save_pretrained` writes for Qwen2-VL and Qwen2.5-VL (`visual.*`, `model.*`,
//! `lm_head.weight`); the merger's `mlp.0` / `mlp.2` are `mlp.linear_1` / `mlp.linear_2` here. Qwen3-VL is saved
//! with transformers 5's names (`model.visual.*`, `model.language_model.*`) ([`canonical_name`], [`export_name`]).

use anyhow::{Context, bail};
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llama::{LlamaConfig, LlamaModel, Rope, RopeScaling};
use crate::nn::{Activation, Embedding, LayerNorm, Linear, RmsNorm, attention};

fn default_image_token_id() -> u32 {
    151655
}
fn default_video_token_id() -> u32 {
    151656
}
fn default_vision_start_token_id() -> u32 {
    151652
}
fn default_vision_end_token_id() -> u32 {
    151653
}
fn default_model_type() -> String {
    "qwen2_5_vl".into()
}

/// The three model variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QwenVersion {
    /// Qwen2-VL: LayerNorm, `fc1`/`fc2` MLP, full attention in every block.
    V2,
    /// Qwen2.5-VL: RMSNorm, gated MLP, window attention outside `fullatt_block_indexes`.
    V2_5,
    /// Qwen3-VL: LayerNorm, `linear_fc1`/`linear_fc2` MLP, full attention, learned positions, patch embedding
    /// bias, DeepStack mergers; a Qwen3 decoder with interleaved multimodal rotary positions.
    V3,
}

/// HF `Qwen2VLVisionConfig` / `Qwen2_5_VLVisionConfig` / `Qwen3VLVisionConfig` (the keys any spells; unknown keys
/// kept in `extra`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QwenVisionConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_type: String,
    pub depth: usize,
    /// Qwen2.5-VL: the tower width. Qwen2-VL: the merger's output width (the decoder's).
    pub hidden_size: usize,
    /// Qwen2-VL: the tower width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_dim: Option<usize>,
    /// Qwen2.5-VL, Qwen3-VL: the merger's output width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_hidden_size: Option<usize>,
    /// Qwen2.5-VL: the gated MLP's width; Qwen3-VL: the MLP's width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate_size: Option<usize>,
    /// Qwen2-VL: the MLP's width over the tower width (an integer in transformers' config, which refuses `4.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp_ratio: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "default_channels")]
    pub in_channels: usize,
    pub patch_size: usize,
    #[serde(default = "default_merge")]
    pub spatial_merge_size: usize,
    #[serde(default = "default_temporal")]
    pub temporal_patch_size: usize,
    /// Qwen2.5-VL: attention window side in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_size: Option<usize>,
    /// Qwen2.5-VL: blocks with full attention (the others attend inside their window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullatt_block_indexes: Option<Vec<usize>>,
    /// Qwen3-VL: rows of the learned position table (a square grid, resampled to each image's patch grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_position_embeddings: Option<usize>,
    /// Qwen3-VL: the blocks whose output is merged (each by its own merger) into the first decoder layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deepstack_visual_indexes: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

fn default_channels() -> usize {
    3
}
fn default_merge() -> usize {
    2
}
fn default_temporal() -> usize {
    2
}
fn default_init_range() -> f64 {
    0.02
}

impl QwenVisionConfig {
    /// The tower's width.
    pub fn width(&self, version: QwenVersion) -> usize {
        match version {
            QwenVersion::V2 => self.embed_dim.unwrap_or(1280),
            QwenVersion::V2_5 | QwenVersion::V3 => self.hidden_size,
        }
    }

    /// The width of the merged image features (the decoder's).
    pub fn out_width(&self, version: QwenVersion) -> usize {
        match version {
            QwenVersion::V2 => self.hidden_size,
            QwenVersion::V2_5 | QwenVersion::V3 => self.out_hidden_size.unwrap_or(3584),
        }
    }

    fn mlp_width(&self, version: QwenVersion) -> usize {
        match version {
            QwenVersion::V2 => self.width(version) * self.mlp_ratio.unwrap_or(4),
            QwenVersion::V2_5 => self.intermediate_size.unwrap_or(3420),
            QwenVersion::V3 => self.intermediate_size.unwrap_or(4304),
        }
    }

    /// Qwen3-VL: the side of the learned position grid.
    fn position_side(&self) -> usize {
        let n = self.num_position_embeddings.unwrap_or(2304);
        (n as f64).sqrt().round() as usize
    }

    /// Qwen3-VL: the DeepStack blocks (none in 2 and 2.5).
    fn deepstack_indexes(&self, version: QwenVersion) -> Vec<usize> {
        match version {
            QwenVersion::V3 => self
                .deepstack_visual_indexes
                .clone()
                .unwrap_or_else(|| vec![8, 16, 24]),
            QwenVersion::V2 | QwenVersion::V2_5 => Vec::new(),
        }
    }

    fn activation(&self, version: QwenVersion) -> anyhow::Result<Activation> {
        let default = match version {
            QwenVersion::V2 => "quick_gelu",
            QwenVersion::V2_5 => "silu",
            QwenVersion::V3 => "gelu_pytorch_tanh",
        };
        Activation::from_hf(self.hidden_act.as_deref().unwrap_or(default))
    }

    fn rope_theta(&self) -> f64 {
        self.extra
            .get("rope_parameters")
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0)
    }

    /// Values per flattened patch: `C * T * p * p`.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    fn validate(&self, version: QwenVersion) -> anyhow::Result<()> {
        let width = self.width(version);
        if self.num_heads == 0 || !width.is_multiple_of(self.num_heads) {
            bail!(
                "vision_config: width {width} is not a multiple of num_heads {}",
                self.num_heads
            );
        }
        if !(width / self.num_heads).is_multiple_of(4) {
            bail!(
                "vision_config: head dim {} must be a multiple of 4 (2D rotary positions)",
                width / self.num_heads
            );
        }
        if self.patch_size == 0 || self.spatial_merge_size == 0 || self.temporal_patch_size == 0 {
            bail!(
                "vision_config: patch_size, spatial_merge_size and temporal_patch_size must be > 0"
            );
        }
        if version == QwenVersion::V3 {
            let n = self.num_position_embeddings.unwrap_or(2304);
            let side = self.position_side();
            if n == 0 || side * side != n {
                bail!(
                    "vision_config: num_position_embeddings {n} is not the square of a grid side"
                );
            }
            if let Some(&i) = self
                .deepstack_indexes(version)
                .iter()
                .find(|&&i| i >= self.depth)
            {
                bail!(
                    "vision_config: deepstack_visual_indexes names block {i} of a tower of depth {}",
                    self.depth
                );
            }
        }
        if version == QwenVersion::V2_5 {
            let window = self.window_size.unwrap_or(112);
            if window / self.spatial_merge_size / self.patch_size == 0 {
                bail!(
                    "vision_config: window_size {window} is smaller than one merged patch ({} px)",
                    self.spatial_merge_size * self.patch_size
                );
            }
        }
        self.activation(version).map(|_| ())
    }
}

/// HF `Qwen2VLConfig` / `Qwen2_5_VLConfig` / `Qwen3VLConfig`. Reads both the nested layout transformers 5 writes
/// (`text_config`) and the flat one of the Qwen2-VL / Qwen2.5-VL hub checkpoints (decoder keys at the top level);
/// writes the nested one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Qwen2VlConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default = "default_image_token_id")]
    pub image_token_id: u32,
    #[serde(default = "default_video_token_id")]
    pub video_token_id: u32,
    #[serde(default = "default_vision_start_token_id")]
    pub vision_start_token_id: u32,
    #[serde(default = "default_vision_end_token_id")]
    pub vision_end_token_id: u32,
    pub text_config: LlamaConfig,
    pub vision_config: QwenVisionConfig,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Keys of a flat (hub) config that belong to the whole model, not to its decoder.
const TOP_LEVEL_KEYS: &[&str] = &[
    "architectures",
    "model_type",
    "image_token_id",
    "video_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
    "vision_token_id",
    "vision_config",
    "tie_word_embeddings",
    "transformers_version",
    "torch_dtype",
    "dtype",
];

impl Qwen2VlConfig {
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let mut value = value.clone();
        // A nested decoder config without its own type gets the model's (`qwen3_vl_text`, which gives it Qwen3's
        // q/k norms; `qwen2_5_vl_text`, Qwen2's q/k/v biases).
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("qwen2_5_vl")
            .to_string();
        if let Some(text) = value.get_mut("text_config").and_then(Value::as_object_mut)
            && !text.contains_key("model_type")
        {
            text.insert(
                "model_type".into(),
                Value::from(format!("{model_type}_text")),
            );
        }
        if let Some(obj) = value.as_object_mut()
            && !obj.contains_key("text_config")
        {
            let mut text: serde_json::Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| !TOP_LEVEL_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // The decoder's own type (`qwen2_5_vl_text`), which gives it Qwen2's q/k/v biases.
            text.insert(
                "model_type".into(),
                Value::from(format!("{model_type}_text")),
            );
            obj.retain(|k, _| TOP_LEVEL_KEYS.contains(&k.as_str()));
            obj.insert("text_config".into(), Value::Object(text));
        }
        let config: Self = serde_json::from_value(value)?;
        config.validate()?;
        Ok(config)
    }

    pub fn version(&self) -> QwenVersion {
        match self.model_type.as_str() {
            "qwen2_vl" => QwenVersion::V2,
            "qwen3_vl" => QwenVersion::V3,
            _ => QwenVersion::V2_5,
        }
    }

    pub fn architecture(&self) -> &'static str {
        match self.version() {
            QwenVersion::V2 => "Qwen2VLForConditionalGeneration",
            QwenVersion::V2_5 => "Qwen2_5_VLForConditionalGeneration",
            QwenVersion::V3 => "Qwen3VLForConditionalGeneration",
        }
    }

    /// The position axis (0 temporal, 1 height, 2 width) each rotary frequency of the decoder turns with. Qwen2-VL
    /// and 2.5: `mrope_section` consecutive blocks, block `i` on axis `i % 3`. Qwen3-VL interleaves them as its
    /// text rotary embedding does: frequency `j` is on height when `j % 3 == 1` and `j < 3 * section[1]`, on width
    /// when `j % 3 == 2` and `j < 3 * section[2]`, else on time.
    pub fn mrope_axes(&self) -> anyhow::Result<Vec<usize>> {
        let section = self.mrope_section()?;
        let half: usize = section.iter().sum();
        Ok(match self.version() {
            QwenVersion::V2 | QwenVersion::V2_5 => section
                .iter()
                .enumerate()
                .flat_map(|(i, &len)| std::iter::repeat_n(i % 3, len))
                .collect(),
            QwenVersion::V3 => {
                if section.len() != 3 {
                    bail!("text config: Qwen3-VL's mrope_section {section:?} must have 3 parts");
                }
                (0..half)
                    .map(|j| match j % 3 {
                        1 if j < 3 * section[1] => 1,
                        2 if j < 3 * section[2] => 2,
                        _ => 0,
                    })
                    .collect()
            }
        })
    }

    /// How the decoder's rotary half-dimensions split over (temporal, height, width) positions.
    pub fn mrope_section(&self) -> anyhow::Result<Vec<usize>> {
        let text = &self.text_config;
        let section = [&text.rope_parameters, &text.rope_scaling]
            .into_iter()
            .flatten()
            .find_map(|p| p.get("mrope_section"))
            .context("text config: no `mrope_section` in `rope_parameters` / `rope_scaling`")?;
        let section: Vec<usize> = serde_json::from_value(section.clone())
            .context("text config: `mrope_section` must be a list of integers")?;
        let half = text.head_dim() / 2;
        if section.iter().sum::<usize>() != half {
            bail!("text config: mrope_section {section:?} must sum to head_dim / 2 = {half}");
        }
        Ok(section)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.text_config.validate()?;
        self.vision_config.validate(self.version())?;
        self.mrope_axes()?;
        let out = self.vision_config.out_width(self.version());
        if out != self.text_config.hidden_size {
            bail!(
                "vision_config: merged features are {out} wide but the decoder's hidden_size is {}",
                self.text_config.hidden_size
            );
        }
        Ok(())
    }

    fn tied(&self) -> bool {
        self.tie_word_embeddings || self.text_config.tie_word_embeddings
    }

    /// Image tokens of an image with patch grid `(t, h, w)`.
    pub fn image_tokens(&self, grid: [usize; 3]) -> usize {
        let m = self.vision_config.spatial_merge_size;
        grid[0] * grid[1] * grid[2] / (m * m)
    }
}

/// The images of a batch as this family takes them: every image's flattened patches
/// `[sum of t * h * w, C * T * p * p]`, in the order their image tokens come in the batch (row by row), and each
/// image's patch grid `(t, h, w)`.
#[derive(Clone, Debug)]
pub struct ImagePatches {
    pub pixel_values: Tensor<2>,
    pub grid_thw: Vec<[usize; 3]>,
}

/// `Conv3d` with kernel = stride = `(T, p, p)` (a bias in Qwen3-VL only), computed as a linear map of the
/// flattened patches (weight `[width, C, T, p, p]` as PyTorch stores it).
#[derive(Module, Debug)]
pub struct PatchProjection {
    pub weight: Param<Tensor<5>>,
    pub bias: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: PatchProjection,
}

impl PatchEmbed {
    fn forward(&self, patches: Tensor<2>) -> Tensor<2> {
        let [d, c, t, p, q] = self.proj.weight.dims();
        let weight = self.proj.weight.val().reshape([d, c * t * p * q]);
        let bias = self.proj.bias.as_ref().map(|b| b.val());
        crate::nn::linear(patches, weight.transpose(), bias)
    }
}

/// A tower norm: RMSNorm (2.5) or LayerNorm (2, 3); the variant is not part of the parameter path.
#[derive(Module, Debug)]
pub enum VisionNorm {
    Rms(RmsNorm),
    Layer(LayerNorm),
}

impl VisionNorm {
    fn new(version: QwenVersion, d: usize, device: &Device) -> Self {
        match version {
            QwenVersion::V2 | QwenVersion::V3 => Self::Layer(LayerNorm::new(d, 1e-6, device)),
            QwenVersion::V2_5 => Self::Rms(RmsNorm::new(d, 1e-6, device)),
        }
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Rms(n) => n.forward(x),
            Self::Layer(n) => n.forward(x),
        }
    }
}

#[derive(Module, Debug)]
pub struct GatedMlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
    #[module(skip)]
    pub act: Activation,
}

#[derive(Module, Debug)]
pub struct PlainMlp {
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub act: Activation,
}

/// Qwen3-VL's plain MLP, under the names `linear_fc1` / `linear_fc2`.
#[derive(Module, Debug)]
pub struct FcMlp {
    pub linear_fc1: Linear,
    pub linear_fc2: Linear,
    #[module(skip)]
    pub act: Activation,
}

/// A tower MLP: gated (2.5, `gate_proj`/`up_proj`/`down_proj` with biases) or plain (2, `fc1`/`fc2`; 3,
/// `linear_fc1`/`linear_fc2`).
#[derive(Module, Debug)]
pub enum VisionMlp {
    Gated(GatedMlp),
    Plain(PlainMlp),
    Fc(FcMlp),
}

impl VisionMlp {
    fn new(
        version: QwenVersion,
        width: usize,
        hidden: usize,
        act: Activation,
        std: f64,
        device: &Device,
    ) -> Self {
        let linear = |i, o| Linear::new(i, o, true, std, device);
        match version {
            QwenVersion::V2_5 => Self::Gated(GatedMlp {
                gate_proj: linear(width, hidden),
                up_proj: linear(width, hidden),
                down_proj: linear(hidden, width),
                act,
            }),
            QwenVersion::V2 => Self::Plain(PlainMlp {
                fc1: linear(width, hidden),
                fc2: linear(hidden, width),
                act,
            }),
            QwenVersion::V3 => Self::Fc(FcMlp {
                linear_fc1: linear(width, hidden),
                linear_fc2: linear(hidden, width),
                act,
            }),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Gated(m) => m
                .down_proj
                .forward(m.act.apply(m.gate_proj.forward(x.clone())) * m.up_proj.forward(x)),
            Self::Plain(m) => m.fc2.forward(m.act.apply(m.fc1.forward(x))),
            Self::Fc(m) => m.linear_fc2.forward(m.act.apply(m.linear_fc1.forward(x))),
        }
    }
}

#[derive(Module, Debug)]
pub struct VisionAttention {
    pub qkv: Linear,
    pub proj: Linear,
    #[module(skip)]
    pub heads: usize,
}

impl VisionAttention {
    /// Attention inside each `segments` range of the sequence `x: [N, width]` (rotary `cos, sin: [1, N, head]`).
    fn forward(
        &self,
        x: Tensor<2>,
        cos: &Tensor<3>,
        sin: &Tensor<3>,
        segments: &[(usize, usize)],
    ) -> Tensor<2> {
        let [n, width] = x.dims();
        let (h, d) = (self.heads, width / self.heads);
        let qkv = self.qkv.forward(x).reshape([n, 3, h, d]);
        let part = |i: usize| {
            qkv.clone()
                .slice([0..n, i..i + 1, 0..h, 0..d])
                .reshape([n, h, d])
                .swap_dims(0, 1)
                .unsqueeze_dim::<4>(0)
        };
        let q = crate::fused::rope(part(0), cos, sin);
        let k = crate::fused::rope(part(1), cos, sin);
        let v = part(2);
        let scale = (d as f64).powf(-0.5);
        let outputs: Vec<Tensor<4>> = segments
            .iter()
            .map(|&(a, b)| {
                let range = |t: &Tensor<4>| t.clone().slice([0..1, 0..h, a..b, 0..d]);
                attention(range(&q), range(&k), range(&v), None, scale)
            })
            .collect();
        let out = Tensor::cat(outputs, 2);
        self.proj
            .forward(out.reshape([h, n, d]).swap_dims(0, 1).reshape([n, width]))
    }
}

#[derive(Module, Debug)]
pub struct VisionBlock {
    pub norm1: VisionNorm,
    pub norm2: VisionNorm,
    pub attn: VisionAttention,
    pub mlp: VisionMlp,
}

#[derive(Module, Debug)]
pub struct MergerMlp {
    /// `mlp.0` in the checkpoint.
    pub linear_1: Linear,
    /// `mlp.2` in the checkpoint (`mlp.1` is the GELU).
    pub linear_2: Linear,
}

/// Qwen2-VL / Qwen2.5-VL's merger: `ln_q`, then `mlp.0`, GELU, `mlp.2` on each 2 x 2 block of patches.
#[derive(Module, Debug)]
pub struct Qwen2Merger {
    pub ln_q: VisionNorm,
    pub mlp: MergerMlp,
}

/// Qwen3-VL's merger: a LayerNorm `norm` over each patch (the final merger) or over each folded block of patches
/// (`postshuffle`, the DeepStack mergers), then `linear_fc1`, GELU, `linear_fc2`.
#[derive(Module, Debug)]
pub struct Qwen3Merger {
    pub norm: LayerNorm,
    pub linear_fc1: Linear,
    pub linear_fc2: Linear,
    #[module(skip)]
    pub postshuffle: bool,
}

impl Qwen3Merger {
    fn new(
        width: usize,
        unit: usize,
        out: usize,
        postshuffle: bool,
        std: f64,
        device: &Device,
    ) -> Self {
        let merged = width * unit;
        Self {
            norm: LayerNorm::new(if postshuffle { merged } else { width }, 1e-6, device),
            linear_fc1: Linear::new(merged, merged, true, std, device),
            linear_fc2: Linear::new(merged, out, true, std, device),
            postshuffle,
        }
    }

    /// `x: [N, width]` in tower order -> `[N / unit, out]`.
    fn forward(&self, x: Tensor<2>, unit: usize) -> Tensor<2> {
        let [n, width] = x.dims();
        let folded = if self.postshuffle {
            self.norm.forward(x.reshape([n / unit, width * unit]))
        } else {
            self.norm.forward(x).reshape([n / unit, width * unit])
        };
        merger_mlp(folded, &self.linear_fc1, &self.linear_fc2)
    }
}

/// The merger's MLP on folded blocks: linear, exact GELU, linear.
fn merger_mlp(folded: Tensor<2>, fc1: &Linear, fc2: &Linear) -> Tensor<2> {
    fc2.forward(burn::tensor::activation::gelu(fc1.forward(folded)))
}

/// The merger of either layout; the variant is not part of the parameter path.
#[derive(Module, Debug)]
pub enum PatchMerger {
    Qwen2(Qwen2Merger),
    Qwen3(Qwen3Merger),
}

impl PatchMerger {
    /// `x: [N, width]` in tower order -> merged image tokens `[N / unit, out]`.
    fn forward(&self, x: Tensor<2>, unit: usize) -> Tensor<2> {
        match self {
            Self::Qwen2(m) => {
                let [n, width] = x.dims();
                let folded = m.ln_q.forward(x).reshape([n / unit, width * unit]);
                merger_mlp(folded, &m.mlp.linear_1, &m.mlp.linear_2)
            }
            Self::Qwen3(m) => m.forward(x, unit),
        }
    }
}

/// The vision tower with its merger (`visual.*`).
#[derive(Module, Debug)]
pub struct QwenVisionTower {
    pub patch_embed: PatchEmbed,
    /// Qwen3-VL: the learned `side x side` position table.
    pub pos_embed: Option<Embedding>,
    pub blocks: Vec<VisionBlock>,
    pub merger: PatchMerger,
    /// Qwen3-VL: one merger per DeepStack block (empty otherwise).
    pub deepstack_merger_list: Vec<Qwen3Merger>,
    /// The blocks whose outputs `deepstack_merger_list` merges, in order.
    #[module(skip)]
    pub deepstack_visual_indexes: Vec<usize>,
    /// Side of the `pos_embed` grid.
    #[module(skip)]
    pub position_side: usize,
    #[module(skip)]
    pub version: QwenVersion,
    #[module(skip)]
    pub merge: usize,
    #[module(skip)]
    pub heads: usize,
    /// Window side in merged patches (2.5).
    #[module(skip)]
    pub window: usize,
    #[module(skip)]
    pub full_attention_blocks: Vec<usize>,
    #[module(skip)]
    pub rope: Rope,
}

/// Index tables of one batch of images, computed on the host from the grids.
struct TowerLayout {
    /// `(h, w)` rotary position of every patch, in the tower's (window) order.
    positions: Vec<[i64; 2]>,
    /// Patch order inside the tower: `order[i]` is the input patch at tower position `i`.
    order: Vec<i64>,
    /// Merged-token order back to the input order: `restore[j]` is the tower unit of merged token `j`.
    restore: Vec<i64>,
    /// Ranges of full attention (each image frame) and of window attention, in tower order.
    full: Vec<(usize, usize)>,
    windows: Vec<(usize, usize)>,
}

impl QwenVisionTower {
    pub fn new(config: &Qwen2VlConfig, device: &Device) -> anyhow::Result<Self> {
        let version = config.version();
        let v = &config.vision_config;
        v.validate(version)?;
        let width = v.width(version);
        let std = v.initializer_range;
        let act = v.activation(version)?;
        let mlp_width = v.mlp_width(version);
        let blocks = (0..v.depth)
            .map(|_| VisionBlock {
                norm1: VisionNorm::new(version, width, device),
                norm2: VisionNorm::new(version, width, device),
                attn: VisionAttention {
                    qkv: Linear::new(width, 3 * width, true, std, device),
                    proj: Linear::new(width, width, true, std, device),
                    heads: v.num_heads,
                },
                mlp: VisionMlp::new(version, width, mlp_width, act, std, device),
            })
            .collect();
        let unit = v.spatial_merge_size * v.spatial_merge_size;
        let merged = width * unit;
        let out = v.out_width(version);
        let full_attention_blocks = match version {
            QwenVersion::V2 | QwenVersion::V3 => (0..v.depth).collect(),
            QwenVersion::V2_5 => v
                .fullatt_block_indexes
                .clone()
                .unwrap_or_else(|| vec![7, 15, 23, 31]),
        };
        let deepstack_visual_indexes = v.deepstack_indexes(version);
        let v3 = version == QwenVersion::V3;
        let merger = if v3 {
            PatchMerger::Qwen3(Qwen3Merger::new(width, unit, out, false, std, device))
        } else {
            PatchMerger::Qwen2(Qwen2Merger {
                ln_q: VisionNorm::new(version, width, device),
                mlp: MergerMlp {
                    linear_1: Linear::new(merged, merged, true, std, device),
                    linear_2: Linear::new(merged, out, true, std, device),
                },
            })
        };
        Ok(Self {
            patch_embed: PatchEmbed {
                proj: PatchProjection {
                    weight: Initializer::Normal { mean: 0.0, std }.init(
                        [
                            width,
                            v.in_channels,
                            v.temporal_patch_size,
                            v.patch_size,
                            v.patch_size,
                        ],
                        device,
                    ),
                    bias: v3.then(|| Initializer::Zeros.init([width], device)),
                },
            },
            pos_embed: v3.then(|| {
                let side = v.position_side();
                Embedding::new(side * side, width, std, device)
            }),
            blocks,
            merger,
            deepstack_merger_list: deepstack_visual_indexes
                .iter()
                .map(|_| Qwen3Merger::new(width, unit, out, true, std, device))
                .collect(),
            deepstack_visual_indexes,
            position_side: v.position_side(),
            version,
            merge: v.spatial_merge_size,
            heads: v.num_heads,
            window: v.window_size.unwrap_or(112) / v.spatial_merge_size / v.patch_size,
            full_attention_blocks,
            rope: Rope {
                theta: v.rope_theta(),
                dim: width / v.num_heads / 2,
                scaling: RopeScaling::None,
            },
        })
    }

    fn layout(&self, grids: &[[usize; 3]]) -> TowerLayout {
        let m = self.merge;
        let unit = m * m;
        let mut positions_in = Vec::new();
        let mut unit_order: Vec<usize> = Vec::new();
        let mut full = Vec::new();
        let mut windows = Vec::new();
        let mut patch_offset = 0;
        let mut unit_offset = 0;
        for &[t, h, w] in grids {
            // Patches come merge block by merge block (row-major blocks, row-major inside a block).
            for _ in 0..t {
                for bh in 0..h / m {
                    for bw in 0..w / m {
                        for ih in 0..m {
                            for iw in 0..m {
                                positions_in.push([(bh * m + ih) as i64, (bw * m + iw) as i64]);
                            }
                        }
                    }
                }
            }
            for _ in 0..t {
                full.push((patch_offset, patch_offset + h * w));
                patch_offset += h * w;
            }
            let (lh, lw) = (h / m, w / m);
            match self.version {
                QwenVersion::V2 | QwenVersion::V3 => {
                    unit_order.extend(unit_offset..unit_offset + t * lh * lw);
                }
                QwenVersion::V2_5 => {
                    let ws = self.window;
                    for ti in 0..t {
                        for wy in 0..lh.div_ceil(ws) {
                            for wx in 0..lw.div_ceil(ws) {
                                let start = unit_order.len();
                                for y in wy * ws..((wy + 1) * ws).min(lh) {
                                    for x in wx * ws..((wx + 1) * ws).min(lw) {
                                        unit_order.push(unit_offset + (ti * lh + y) * lw + x);
                                    }
                                }
                                windows.push((start * unit, unit_order.len() * unit));
                            }
                        }
                    }
                }
            }
            unit_offset += t * lh * lw;
        }
        if self.version != QwenVersion::V2_5 {
            windows = full.clone();
        }
        let order: Vec<i64> = unit_order
            .iter()
            .flat_map(|&u| (0..unit).map(move |i| (u * unit + i) as i64))
            .collect();
        let positions = order.iter().map(|&i| positions_in[i as usize]).collect();
        let mut restore = vec![0i64; unit_order.len()];
        for (tower_unit, &input_unit) in unit_order.iter().enumerate() {
            restore[input_unit] = tower_unit as i64;
        }
        TowerLayout {
            positions,
            order,
            restore,
            full,
            windows,
        }
    }

    /// Rotary `cos, sin: [1, N, head]` for `(h, w)` positions: the first half of the rotated dimensions turns with
    /// the row, the second with the column, as transformers' axial vision rotary embedding.
    fn rotary(&self, positions: &[[i64; 2]], device: &Device) -> (Tensor<3>, Tensor<3>) {
        let inv = self.rope.inv_freq();
        let q = inv.len();
        let n = positions.len();
        let pos: Vec<f32> = positions
            .iter()
            .flat_map(|&[h, w]| [h as f32, w as f32])
            .collect();
        let pos = Tensor::<1>::from_data(TensorData::new(pos, [n * 2]), device).reshape([n, 2, 1]);
        let inv = Tensor::<1>::from_data(TensorData::new(inv, [q]), device).reshape([1, 1, q]);
        let freqs = (pos * inv).reshape([n, 2 * q]);
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 1).unsqueeze_dim::<3>(0);
        (emb.clone().cos(), emb.sin())
    }

    /// Qwen3-VL: each patch's learned position `[N, width]` (input order), the `pos_embed` grid resampled to the
    /// image's patch grid as `F.interpolate(mode="bilinear", align_corners=True)` does, per frame.
    fn position_embeddings(
        &self,
        table: &Embedding,
        grids: &[[usize; 3]],
        device: &Device,
    ) -> Tensor<2> {
        let (indices, weights) = bilinear_position_taps(grids, self.position_side, self.merge);
        let n = indices.len() / 4;
        let [_, width] = table.weight.dims();
        let index = Tensor::<1, Int>::from_data(TensorData::new(indices, [4 * n]), device);
        let weights =
            Tensor::<1>::from_data(TensorData::new(weights, [4 * n]), device).reshape([n, 4, 1]);
        (table.weight.val().select(0, index).reshape([n, 4, width]) * weights)
            .sum_dim(1)
            .reshape([n, width])
    }

    /// Merged image features `[sum of t * h * w / merge^2, out_width]` of `patches`, in the input order, and the
    /// DeepStack blocks' merged features of the same shape (Qwen3-VL; none otherwise).
    pub fn forward(&self, patches: &ImagePatches) -> anyhow::Result<TowerOutput> {
        let device = patches.pixel_values.device();
        let [n, dim] = patches.pixel_values.dims();
        let [_, c, t, p, _] = self.patch_embed.proj.weight.dims();
        if dim != c * t * p * p {
            bail!(
                "pixel values have {dim} values per patch, the tower takes {} (C {c} x T {t} x {p} x {p})",
                c * t * p * p
            );
        }
        let m = self.merge;
        let mut expected = 0;
        for (i, &[gt, gh, gw]) in patches.grid_thw.iter().enumerate() {
            if gt == 0 || gh == 0 || gw == 0 || !gh.is_multiple_of(m) || !gw.is_multiple_of(m) {
                bail!(
                    "image {i}: grid (t {gt}, h {gh}, w {gw}) must be positive with h and w multiples of the merge size {m}"
                );
            }
            expected += gt * gh * gw;
        }
        if expected != n {
            bail!(
                "pixel values hold {n} patches but image_grid_thw {:?} describes {expected}",
                patches.grid_thw
            );
        }
        let layout = self.layout(&patches.grid_thw);
        let index = |v: &[i64]| {
            Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device)
        };
        let mut x = self.patch_embed.forward(patches.pixel_values.clone());
        if let Some(table) = &self.pos_embed {
            x = x + self.position_embeddings(table, &patches.grid_thw, &device);
        }
        let mut x = x.select(0, index(&layout.order));
        let (cos, sin) = self.rotary(&layout.positions, &device);
        let unit = m * m;
        let mut deepstack = Vec::with_capacity(self.deepstack_merger_list.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let segments = if self.full_attention_blocks.contains(&i) {
                &layout.full
            } else {
                &layout.windows
            };
            let attn = block
                .attn
                .forward(block.norm1.forward(x.clone()), &cos, &sin, segments);
            x = x + attn;
            let mlp = block.mlp.forward(block.norm2.forward(x.clone()));
            x = x + mlp;
            let merger = self
                .deepstack_visual_indexes
                .iter()
                .position(|&b| b == i)
                .and_then(|k| self.deepstack_merger_list.get(k));
            if let Some(merger) = merger {
                deepstack.push(
                    merger
                        .forward(x.clone(), unit)
                        .select(0, index(&layout.restore)),
                );
            }
        }
        let merged = self
            .merger
            .forward(x, unit)
            .select(0, index(&layout.restore));
        Ok(TowerOutput { merged, deepstack })
    }
}

/// What the tower gives for a batch of images: `[image tokens, out_width]` each, in input order.
pub struct TowerOutput {
    pub merged: Tensor<2>,
    /// Qwen3-VL: one per DeepStack block, in block order (the order the decoder layers take them).
    pub deepstack: Vec<Tensor<2>>,
}

/// Gather indices into a `side x side` table (row-major) and weights, 4 per patch (rows `r0, r0 + 1` times
/// columns `c0, c0 + 1`), that resample the table to each image's `h x w` patch grid bilinearly with aligned
/// corners, for every patch in the processor's order (merge block by merge block, each frame alike). In f32 with
/// the operations of transformers' `get_vision_interpolation_indices_and_weights`, so the weights agree exactly.
pub fn bilinear_position_taps(
    grids: &[[usize; 3]],
    side: usize,
    merge: usize,
) -> (Vec<i64>, Vec<f32>) {
    let axis = |i: usize, size: usize| -> [(i64, f32); 2] {
        let src = (i as f32 * (side - 1) as f32) / (size.saturating_sub(1).max(1) as f32);
        let floor = src.floor();
        let last = side as i64 - 1;
        [0.0f32, 1.0].map(|offset| {
            let tap = (floor as i64 + offset as i64).clamp(0, last);
            let weight = (1.0 - (src - floor - offset).abs()).max(0.0);
            (tap, weight)
        })
    };
    let mut indices = Vec::new();
    let mut weights = Vec::new();
    for &[t, h, w] in grids {
        for _ in 0..t {
            for bh in 0..h / merge {
                for bw in 0..w / merge {
                    for ih in 0..merge {
                        for iw in 0..merge {
                            let rows = axis(bh * merge + ih, h);
                            let cols = axis(bw * merge + iw, w);
                            for (r, wr) in rows {
                                for (c, wc) in cols {
                                    indices.push(r * side as i64 + c);
                                    weights.push(wr * wc);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (indices, weights)
}

/// `Qwen2VLForConditionalGeneration` / `Qwen2_5_VLForConditionalGeneration`.
#[derive(Module, Debug)]
pub struct Qwen2Vl {
    pub visual: QwenVisionTower,
    pub model: LlamaModel,
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub config: Qwen2VlConfig,
    /// The position axis of each rotary frequency ([`Qwen2VlConfig::mrope_axes`]).
    #[module(skip)]
    pub mrope_axes: Vec<usize>,
}

impl Qwen2Vl {
    pub fn new(config: &Qwen2VlConfig, device: &Device) -> anyhow::Result<Self> {
        config.validate()?;
        let text = &config.text_config;
        Ok(Self {
            visual: QwenVisionTower::new(config, device)?,
            model: LlamaModel::new(text, device)?,
            lm_head: (!config.tied()).then(|| {
                Linear::new(
                    text.hidden_size,
                    text.vocab_size,
                    false,
                    text.initializer_range,
                    device,
                )
            }),
            config: config.clone(),
            mrope_axes: config.mrope_axes()?,
        })
    }

    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => crate::nn::linear(
                hidden,
                self.model.embed_tokens.weight.val().transpose(),
                None,
            ),
        }
    }

    /// Image features `[1, image tokens of all images, hidden]`, and the DeepStack features (Qwen3-VL).
    pub fn image_features(&self, patches: &ImagePatches) -> anyhow::Result<TowerOutput> {
        self.visual.forward(patches)
    }

    /// Rotary `cos, sin: [B, S, head_dim]` for multimodal positions `[3, B, S]` (temporal, height, width): rotary
    /// frequency `j` turns with the position on axis `mrope_axes[j]`.
    pub fn mrope(
        &self,
        positions: &[i64],
        batch: usize,
        seq: usize,
        device: &Device,
    ) -> (Tensor<3>, Tensor<3>) {
        let inv = self.model.rope.inv_freq();
        let half = inv.len();
        let pos: Vec<f32> = positions.iter().map(|&p| p as f32).collect();
        let pos = Tensor::<1>::from_data(TensorData::new(pos, [3 * batch * seq]), device)
            .reshape([3, batch, seq, 1]);
        // Each axis's positions times the frequencies that turn with it (0 elsewhere): the sum over the axes is
        // every frequency times its own axis's position, exactly (adding zeros rounds nothing).
        let masked: Vec<f32> = (0..3)
            .flat_map(|axis| {
                inv.iter()
                    .zip(&self.mrope_axes)
                    .map(move |(&f, &a)| if a == axis { f } else { 0.0 })
            })
            .collect();
        let inv = Tensor::<1>::from_data(TensorData::new(masked, [3 * half]), device)
            .reshape([3, 1, 1, half]);
        let freqs = (pos * inv).sum_dim(0).reshape([batch, seq, half]);
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2);
        (emb.clone().cos(), emb.sin())
    }
}

/// Multimodal positions `[3, B, S]` (temporal, height, width; flattened) and each row's position delta (the
/// next position minus the row's token count, kept through generation), as transformers' `get_rope_index`: text
/// tokens count up on all three axes; an image's tokens (a run of `image_token`s, one grid per image in batch
/// order) sit at `start + (t, y, x)` of its merged grid, and the text after it starts at
/// `start + max(h, w) / merge`. `segments` (`[B, S]`) says which tokens form one sequence: 0 is padding (position
/// 0), and positions restart at 0 wherever the value changes — the attention mask for one sample per row, the
/// segment ids of packed rows (the delta is then the last sample's).
pub fn rope_index(
    input_ids: &[i64],
    segments: &[i64],
    batch: usize,
    image_token: i64,
    grids: &[[usize; 3]],
    merge: usize,
) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
    let seq = input_ids.len() / batch.max(1);
    let mut positions = vec![0i64; 3 * batch * seq];
    let mut deltas = Vec::with_capacity(batch);
    let mut next_grid = 0;
    for b in 0..batch {
        let row = &input_ids[b * seq..(b + 1) * seq];
        let kept: Vec<usize> = (0..seq).filter(|&i| segments[b * seq + i] != 0).collect();
        let mut current = 0i64;
        let mut max = -1i64;
        let mut sequence_start = 0;
        let mut k = 0;
        let mut set = |i: usize, t: i64, h: i64, w: i64, max: &mut i64| {
            positions[b * seq + i] = t;
            positions[batch * seq + b * seq + i] = h;
            positions[2 * batch * seq + b * seq + i] = w;
            *max = (*max).max(t).max(h).max(w);
        };
        while k < kept.len() {
            if k > 0 && segments[b * seq + kept[k]] != segments[b * seq + kept[k - 1]] {
                current = 0;
                max = -1;
                sequence_start = k;
            }
            if row[kept[k]] != image_token {
                set(kept[k], current, current, current, &mut max);
                current += 1;
                k += 1;
                continue;
            }
            let Some(&[t, h, w]) = grids.get(next_grid) else {
                bail!(
                    "row {b}: more images in the prompt than the {} grids in image_grid_thw",
                    grids.len()
                );
            };
            next_grid += 1;
            let (lh, lw) = (h / merge, w / merge);
            let tokens = t * lh * lw;
            if k + tokens > kept.len() || kept[k..k + tokens].iter().any(|&i| row[i] != image_token)
            {
                bail!(
                    "row {b}: image {} (grid {t} x {h} x {w}) needs {tokens} consecutive image tokens; check the processor's image token expansion",
                    next_grid - 1
                );
            }
            for ti in 0..t {
                for y in 0..lh {
                    for x in 0..lw {
                        set(
                            kept[k],
                            current + ti as i64,
                            current + y as i64,
                            current + x as i64,
                            &mut max,
                        );
                        k += 1;
                    }
                }
            }
            current += lh.max(lw) as i64;
        }
        deltas.push(max + 1 - (kept.len() - sequence_start) as i64);
    }
    if next_grid != grids.len() {
        bail!(
            "image_grid_thw has {} images but the prompts hold image tokens for {next_grid}",
            grids.len()
        );
    }
    Ok((positions, deltas))
}

/// The checkpoint key -> module path map of this family (see [`crate::io::canonical_name`]): transformers 5's
/// in-memory names (`model.visual.*`, `model.language_model.*`) and the saved ones (`visual.*`, `model.*`) both
/// load; the merger's `mlp.0`/`mlp.2` are `mlp.linear_1`/`mlp.linear_2`.
pub fn canonical_name(key: &str) -> String {
    let key = if let Some(rest) = key.strip_prefix("model.visual.") {
        format!("visual.{rest}")
    } else if let Some(rest) = key.strip_prefix("model.language_model.") {
        format!("model.{rest}")
    } else {
        key.to_string()
    };
    key.replace("visual.merger.mlp.0.", "visual.merger.mlp.linear_1.")
        .replace("visual.merger.mlp.2.", "visual.merger.mlp.linear_2.")
}

/// The key `save_pretrained` writes for a module path (inverse of [`canonical_name`]): transformers 5.23 saves
/// Qwen2-VL and Qwen2.5-VL under their legacy names (`visual.*`, `model.*`, the merger's `mlp.0`/`mlp.2`) and
/// Qwen3-VL under its own (`model.visual.*`, `model.language_model.*`).
pub fn export_name(version: QwenVersion, path: &str) -> String {
    match version {
        QwenVersion::V2 | QwenVersion::V2_5 => path
            .replace("visual.merger.mlp.linear_1.", "visual.merger.mlp.0.")
            .replace("visual.merger.mlp.linear_2.", "visual.merger.mlp.2."),
        QwenVersion::V3 => {
            if let Some(rest) = path.strip_prefix("visual.") {
                format!("model.visual.{rest}")
            } else if let Some(rest) = path.strip_prefix("model.") {
                format!("model.language_model.{rest}")
            } else {
                path.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn qwen2_vl_vision_config_round_trips_mlp_ratio_as_an_integer() {
        // transformers' Qwen2VLVisionConfig types `mlp_ratio` as an int and refuses an exported `2.0`.
        let text = r#"{"depth": 1, "hidden_size": 32, "embed_dim": 16, "mlp_ratio": 2, "num_heads": 2,
                       "patch_size": 4}"#;
        let config: QwenVisionConfig = serde_json::from_str(text).expect("config");
        assert_eq!(config.mlp_width(QwenVersion::V2), 32);
        let written = serde_json::to_value(&config).expect("json");
        assert_eq!(written["mlp_ratio"], serde_json::json!(2));
        assert!(written["mlp_ratio"].is_u64());
    }

    use super::*;

    #[test]
    fn text_then_image_positions_follow_the_merged_grid() {
        // Two text tokens, a 1 x 4 x 6 patch grid (2 x 3 merged tokens), one text token; one padding token first.
        let ids = [0i64, 5, 6, 9, 9, 9, 9, 9, 9, 7];
        let mask = [0i64, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        let (pos, delta) = rope_index(&ids, &mask, 1, 9, &[[1, 4, 6]], 2).unwrap();
        assert_eq!(&pos[0..10], &[0, 0, 1, 2, 2, 2, 2, 2, 2, 5]);
        assert_eq!(&pos[10..20], &[0, 0, 1, 2, 2, 2, 3, 3, 3, 5]);
        assert_eq!(&pos[20..30], &[0, 0, 1, 2, 3, 4, 2, 3, 4, 5]);
        // Next position 6, after 9 real tokens.
        assert_eq!(delta, vec![-3]);
    }

    #[test]
    fn positions_restart_with_every_packed_sample() {
        // Sample 1: text, a 1 x 2 x 2 grid (one token), text; sample 2: two text tokens; then padding.
        let ids = [5i64, 9, 6, 7, 8, 0];
        let segments = [1i64, 1, 1, 2, 2, 0];
        let (pos, delta) = rope_index(&ids, &segments, 1, 9, &[[1, 2, 2]], 2).unwrap();
        assert_eq!(&pos[0..6], &[0, 1, 2, 0, 1, 0]);
        assert_eq!(delta, vec![0]);
    }

    #[test]
    fn image_token_count_must_match_the_grid() {
        let ids = [9i64, 9, 9];
        let err = rope_index(&ids, &[1, 1, 1], 1, 9, &[[1, 4, 4]], 2).unwrap_err();
        assert!(
            err.to_string().contains("4 consecutive image tokens"),
            "{err}"
        );
        let err = rope_index(&[5i64, 6], &[1, 1], 1, 9, &[[1, 2, 2]], 2).unwrap_err();
        assert!(err.to_string().contains("image_grid_thw has 1"), "{err}");
    }

    #[test]
    fn hub_configs_with_flat_decoder_keys_read_like_nested_ones() {
        // The layout of the Qwen2.5-VL hub checkpoints (transformers 4.x): decoder keys at the top level,
        // `rope_scaling` of type `mrope`.
        let flat = serde_json::json!({
            "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
            "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 1000000.0,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "image_token_id": 60,
            "vision_config": {"depth": 1, "hidden_size": 16, "intermediate_size": 24, "num_heads": 2,
                              "patch_size": 2, "out_hidden_size": 32, "fullatt_block_indexes": [0]}
        });
        let config = Qwen2VlConfig::from_json(&flat).unwrap();
        assert_eq!(config.version(), QwenVersion::V2_5);
        assert_eq!(config.text_config.hidden_size, 32);
        assert_eq!(config.text_config.model_type, "qwen2_5_vl_text");
        assert_eq!(config.text_config.rope().unwrap().theta, 1000000.0);
        assert_eq!(config.mrope_section().unwrap(), vec![2, 3, 3]);
        assert_eq!(config.image_token_id, 60);
        // Written back nested, it reads the same.
        let again = Qwen2VlConfig::from_json(&serde_json::to_value(&config).unwrap()).unwrap();
        assert_eq!(again.text_config.hidden_size, 32);
        assert_eq!(again.mrope_section().unwrap(), vec![2, 3, 3]);
        // A section that does not cover the rotary half-dimensions is an error naming it.
        let mut bad = flat.clone();
        bad["rope_scaling"]["mrope_section"] = serde_json::json!([2, 2, 2]);
        let err = Qwen2VlConfig::from_json(&bad).unwrap_err().to_string();
        assert!(err.contains("mrope_section"), "{err}");
    }

    fn config(model_type: &str) -> Qwen2VlConfig {
        Qwen2VlConfig::from_json(&serde_json::json!({
            "model_type": model_type,
            "text_config": {"vocab_size": 64, "hidden_size": 64, "intermediate_size": 48, "num_hidden_layers": 1,
                            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                "mrope_section": [2, 3, 3]}},
            "vision_config": {"depth": 2, "hidden_size": 16, "intermediate_size": 24, "num_heads": 2,
                              "patch_size": 2, "out_hidden_size": 64, "num_position_embeddings": 16,
                              "deepstack_visual_indexes": [1]}
        }))
        .unwrap()
    }

    #[test]
    fn rotary_frequencies_go_to_axes_in_blocks_or_interleaved() {
        // Qwen2.5-VL: [2, 3, 3] consecutive blocks of time, height, width.
        assert_eq!(
            config("qwen2_5_vl").mrope_axes().unwrap(),
            vec![0, 0, 1, 1, 1, 2, 2, 2]
        );
        // Qwen3-VL: height on 1, 4, 7 (< 9), width on 2, 5 (< 9; 8 is not 2 mod 3), time on the rest.
        let v3 = config("qwen3_vl");
        assert_eq!(v3.version(), QwenVersion::V3);
        assert_eq!(v3.mrope_axes().unwrap(), vec![0, 1, 2, 0, 1, 2, 0, 1]);
        // The nested decoder config without a type gets the model's, so Qwen3's q/k norms.
        assert_eq!(v3.text_config.model_type, "qwen3_vl_text");
    }

    #[test]
    fn a_position_grid_of_the_image_size_is_read_as_is() {
        // A 4 x 4 grid on a 4 x 4 table: each patch reads its own row with weight 1, in merge-block order.
        let (indices, weights) = bilinear_position_taps(&[[1, 4, 4]], 4, 2);
        let own: Vec<i64> = indices.chunks(4).map(|taps| taps[0]).collect();
        assert_eq!(&own[..8], &[0, 1, 4, 5, 2, 3, 6, 7]);
        for w in weights.chunks(4) {
            assert_eq!(w[0], 1.0, "{w:?}");
            assert_eq!(w[1..].iter().sum::<f32>(), 0.0, "{w:?}");
        }
        // A 2-patch-wide image on a 5-wide table: its columns are the table's first and last.
        let (indices, weights) = bilinear_position_taps(&[[1, 2, 2]], 5, 2);
        assert_eq!(indices[4], 4, "patch (0, 1) reads column 4 of row 0");
        assert_eq!(weights[4], 1.0);
        // And a missing table row count is refused when not a square.
        let mut bad = config("qwen3_vl");
        bad.vision_config.num_position_embeddings = Some(15);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("num_position_embeddings")
        );
        bad.vision_config.num_position_embeddings = Some(16);
        bad.vision_config.deepstack_visual_indexes = Some(vec![2]);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("deepstack_visual_indexes")
        );
    }

    #[test]
    fn qwen3_vl_exports_transformers_5_names() {
        for (path, key) in [
            (
                "visual.blocks.0.mlp.linear_fc1.weight",
                "model.visual.blocks.0.mlp.linear_fc1.weight",
            ),
            (
                "model.layers.0.self_attn.q_norm.weight",
                "model.language_model.layers.0.self_attn.q_norm.weight",
            ),
            ("lm_head.weight", "lm_head.weight"),
        ] {
            assert_eq!(export_name(QwenVersion::V3, path), key);
            assert_eq!(canonical_name(key), path);
        }
    }

    #[test]
    fn merger_keys_map_both_ways() {
        for key in [
            "visual.merger.mlp.0.weight",
            "visual.blocks.0.attn.qkv.bias",
            "model.layers.1.self_attn.q_proj.bias",
        ] {
            assert_eq!(export_name(QwenVersion::V2_5, &canonical_name(key)), key);
        }
        assert_eq!(
            canonical_name("model.visual.merger.mlp.2.bias"),
            "visual.merger.mlp.linear_2.bias"
        );
        assert_eq!(
            canonical_name("model.language_model.norm.weight"),
            "model.norm.weight"
        );
    }
}
