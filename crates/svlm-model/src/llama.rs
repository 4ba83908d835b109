//! Llama-family decoder (`LlamaForCausalLM`; also Qwen2-style q/k/v bias and Qwen3-style q/k RMSNorm): GQA, RoPE
//! (default, linear, llama3), RMSNorm, SwiGLU, tied or untied embeddings, KV cache, and DeepStack injection of
//! visual features after the first layers (Qwen3-VL).

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::nn::{Activation, Embedding, Linear, RmsNorm, attention};

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}
fn default_init_range() -> f64 {
    0.02
}
fn default_model_type() -> String {
    "llama".into()
}

/// HF `LlamaConfig` (also the `text_config` of Idefics3 and LLaVA). Unknown keys are kept in
/// `extra` so a config read and written back loses nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// transformers 4.x: top-level `rope_theta`; 5.x puts it in `rope_parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<Value>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Token ids from a config value that may be an int, a list of ints, or null.
pub fn token_ids(value: &Option<Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64())
            .map(|v| v as u32)
            .collect(),
        _ => Vec::new(),
    }
}

impl LlamaConfig {
    /// A small config for tests and from-scratch runs.
    pub fn tiny(
        vocab_size: usize,
        hidden_size: usize,
        layers: usize,
        heads: usize,
        kv_heads: usize,
    ) -> Self {
        Self {
            model_type: "llama".into(),
            vocab_size,
            hidden_size,
            intermediate_size: hidden_size * 2,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv_heads),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: Some(10000.0),
            rope_scaling: None,
            rope_parameters: None,
            max_position_embeddings: 2048,
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            hidden_act: "silu".into(),
            initializer_range: 0.02,
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            extra: Default::default(),
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Qwen2 (and the Qwen2-VL decoders, `qwen2_vl_text`, `qwen2_5_vl_text`) put a bias on q/k/v only; Llama's
    /// `attention_bias` covers q/k/v/o.
    fn is_qwen2(&self) -> bool {
        self.model_type.starts_with("qwen2")
    }

    /// Qwen3 (and the Qwen3-VL decoder, `qwen3_vl_text`) normalize each head's queries and keys (RMSNorm over the
    /// head dimension, before the rotary positions).
    fn qk_norm(&self) -> bool {
        self.model_type.starts_with("qwen3")
    }

    fn qkv_bias(&self) -> bool {
        self.attention_bias || self.is_qwen2()
    }

    fn o_bias(&self) -> bool {
        self.attention_bias && !self.is_qwen2()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.num_attention_heads == 0 || self.kv_heads() == 0 {
            bail!("num_attention_heads and num_key_value_heads must be > 0");
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            bail!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.kv_heads()
            );
        }
        if !self.head_dim().is_multiple_of(2) {
            bail!("head_dim ({}) must be even for RoPE", self.head_dim());
        }
        Activation::from_hf(&self.hidden_act)?;
        self.rope().map(|_| ())
    }

    /// The RoPE setup from either spelling (`rope_theta` + `rope_scaling`, or `rope_parameters`).
    pub fn rope(&self) -> anyhow::Result<Rope> {
        let params = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let theta = self
            .rope_theta
            .or_else(|| {
                params
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
            })
            .unwrap_or(10000.0);
        let kind = params
            .and_then(|p| p.get("rope_type").or_else(|| p.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let num = |key: &str| -> anyhow::Result<f64> {
            params
                .and_then(|p| p.get(key))
                .and_then(Value::as_f64)
                .with_context(|| format!("rope scaling `{kind}` needs `{key}` in config"))
        };
        let scaling = match kind {
            // `mrope` (the Qwen2-VL decoders): default frequencies, split over 3D positions by the model.
            "default" | "mrope" => RopeScaling::None,
            "linear" => RopeScaling::Linear {
                factor: num("factor")?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            },
            other => bail!("unsupported rope type `{other}` (supported: default, linear, llama3)"),
        };
        Ok(Rope {
            theta,
            dim: self.head_dim(),
            scaling,
        })
    }
}

/// A config's RoPE table as svlm writes it: transformers 5's `rope_parameters` (theta and type), or 4.x's
/// `rope_scaling` (type under both spellings, factor); [`LlamaConfig::rope`] reads either back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RopeParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    pub rope_type: String,
    /// transformers 4.x's name for `rope_type`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub legacy_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
}

impl RopeParameters {
    /// Unscaled RoPE with base `theta` (`rope_parameters`).
    pub fn default_with_theta(theta: f64) -> Self {
        Self {
            rope_theta: Some(theta),
            rope_type: "default".into(),
            legacy_type: None,
            factor: None,
        }
    }

    /// Linear position scaling by `factor` (`rope_scaling`, both spellings of the type).
    pub fn linear(factor: f64) -> Self {
        Self {
            rope_theta: None,
            rope_type: "linear".into(),
            legacy_type: Some("linear".into()),
            factor: Some(factor),
        }
    }

    /// The JSON value stored in [`LlamaConfig::rope_parameters`] / [`LlamaConfig::rope_scaling`].
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub dim: usize,
    pub scaling: RopeScaling,
}

impl Rope {
    /// Inverse frequencies, computed in f32 as transformers does.
    pub fn inv_freq(&self) -> Vec<f32> {
        let half = self.dim / 2;
        let base = self.theta as f32;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / self.dim as f32))
            .collect();
        match self.scaling {
            RopeScaling::None => inv,
            RopeScaling::Linear { factor } => inv.iter().map(|f| f / factor as f32).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let (factor, low, high, old) = (
                    factor as f32,
                    low_freq_factor as f32,
                    high_freq_factor as f32,
                    original_max_position_embeddings as f32,
                );
                let low_freq_wavelen = old / low;
                let high_freq_wavelen = old / high;
                inv.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        let scaled = if wavelen > low_freq_wavelen {
                            f / factor
                        } else {
                            f
                        };
                        // HF: `~(w < high) & ~(w > low)`, the same for finite wavelengths.
                        let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                        if is_medium {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        } else {
                            scaled
                        }
                    })
                    .collect()
            }
        }
    }

    /// `cos, sin: [B, S, dim]` for integer positions `[B, S]`.
    pub fn cos_sin(&self, positions: Tensor<2, Int>) -> (Tensor<3>, Tensor<3>) {
        let device = positions.device();
        let [b, s] = positions.dims();
        let inv = self.inv_freq();
        let half = inv.len();
        let inv =
            Tensor::<1>::from_data(TensorData::new(inv, [half]), &device).reshape([1, 1, half]);
        let freqs = positions.float().reshape([b, s, 1]) * inv;
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2);
        (emb.clone().cos(), emb.sin())
    }
}

/// `x * cos + rotate_half(x) * sin` with `rotate_half(x) = cat(-x2, x1)`; `x: [B, H, S, D]`
/// (fused on the CPU backend: [`crate::fused::rope`]).
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<3>, sin: &Tensor<3>) -> Tensor<4> {
    crate::fused::rope(x, cos, sin)
}

#[derive(Module, Debug)]
pub struct LlamaAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// Qwen3: RMSNorm of each query / key head (`q_norm`, `k_norm`).
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    #[module(skip)]
    pub heads: usize,
    #[module(skip)]
    pub kv_heads: usize,
    #[module(skip)]
    pub head_dim: usize,
}

/// Keys and values of the past tokens of one layer: `[B, KV, T, D]`.
#[derive(Clone, Debug)]
pub struct LayerCache {
    pub key: Tensor<4>,
    pub value: Tensor<4>,
}

/// Per-layer KV cache for incremental decoding.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    pub layers: Vec<Option<LayerCache>>,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        Self {
            layers: vec![None; layers],
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map(|l| l.key.dims()[2])
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LlamaAttention {
    pub fn new(cfg: &LlamaConfig, device: &Device) -> Self {
        let (h, kv, d) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let std = cfg.initializer_range;
        Self {
            q_proj: Linear::new(cfg.hidden_size, h * d, cfg.qkv_bias(), std, device),
            k_proj: Linear::new(cfg.hidden_size, kv * d, cfg.qkv_bias(), std, device),
            v_proj: Linear::new(cfg.hidden_size, kv * d, cfg.qkv_bias(), std, device),
            o_proj: Linear::new(h * d, cfg.hidden_size, cfg.o_bias(), std, device),
            q_norm: cfg
                .qk_norm()
                .then(|| RmsNorm::new(d, cfg.rms_norm_eps, device)),
            k_norm: cfg
                .qk_norm()
                .then(|| RmsNorm::new(d, cfg.rms_norm_eps, device)),
            heads: h,
            kv_heads: kv,
            head_dim: d,
        }
    }

    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<3>,
        sin: &Tensor<3>,
        masked: Option<Tensor<4, Bool>>,
        cache: Option<&mut Option<LayerCache>>,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kv, d) = (self.heads, self.kv_heads, self.head_dim);
        let q = self
            .q_proj
            .forward(x.clone())
            .reshape([b, s, h, d])
            .swap_dims(1, 2);
        let k = self
            .k_proj
            .forward(x.clone())
            .reshape([b, s, kv, d])
            .swap_dims(1, 2);
        let v = self
            .v_proj
            .forward(x)
            .reshape([b, s, kv, d])
            .swap_dims(1, 2);
        let norm = |norm: &Option<RmsNorm>, x: Tensor<4>| match norm {
            Some(n) => n.forward(x),
            None => x,
        };
        let q = apply_rope(norm(&self.q_norm, q), cos, sin);
        let k = apply_rope(norm(&self.k_norm, k), cos, sin);
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some(past) => (
                        Tensor::cat(vec![past.key, k], 2),
                        Tensor::cat(vec![past.value, v], 2),
                    ),
                    None => (k, v),
                };
                *slot = Some(LayerCache {
                    key: k.clone(),
                    value: v.clone(),
                });
                (k, v)
            }
            None => (k, v),
        };
        let out = attention(q, k, v, masked, (d as f64).powf(-0.5));
        self.o_proj
            .forward(out.swap_dims(1, 2).reshape([b, s, h * d]))
    }
}

#[derive(Module, Debug)]
pub struct LlamaMlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
    #[module(skip)]
    pub act: Activation,
}

impl LlamaMlp {
    pub fn new(cfg: &LlamaConfig, device: &Device) -> anyhow::Result<Self> {
        let std = cfg.initializer_range;
        Ok(Self {
            gate_proj: Linear::new(
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg.mlp_bias,
                std,
                device,
            ),
            up_proj: Linear::new(
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg.mlp_bias,
                std,
                device,
            ),
            down_proj: Linear::new(
                cfg.intermediate_size,
                cfg.hidden_size,
                cfg.mlp_bias,
                std,
                device,
            ),
            act: Activation::from_hf(&cfg.hidden_act)?,
        })
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        let hidden = match self.act {
            Activation::Silu => crate::fused::swiglu(gate, up),
            act => act.apply(gate) * up,
        };
        self.down_proj.forward(hidden)
    }
}

#[derive(Module, Debug)]
pub struct LlamaDecoderLayer {
    pub self_attn: LlamaAttention,
    pub mlp: LlamaMlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

impl LlamaDecoderLayer {
    pub fn new(cfg: &LlamaConfig, device: &Device) -> anyhow::Result<Self> {
        Ok(Self {
            self_attn: LlamaAttention::new(cfg, device),
            mlp: LlamaMlp::new(cfg, device)?,
            input_layernorm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, device),
            post_attention_layernorm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, device),
        })
    }

    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<3>,
        sin: &Tensor<3>,
        masked: Option<Tensor<4, Bool>>,
        cache: Option<&mut Option<LayerCache>>,
    ) -> Tensor<3> {
        let attn = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            cos,
            sin,
            masked,
            cache,
        );
        let x = x + attn;
        let mlp = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        x + mlp
    }
}

/// The decoder stack without the LM head (`LlamaModel`; `model.*` in `LlamaForCausalLM`,
/// `model.text_model.*` in Idefics3).
#[derive(Module, Debug)]
pub struct LlamaModel {
    pub embed_tokens: Embedding,
    pub layers: Vec<LlamaDecoderLayer>,
    pub norm: RmsNorm,
    #[module(skip)]
    pub rope: Rope,
}

/// Visual features added to the decoder's hidden states at the image-token positions after each of the first
/// layers (Qwen3-VL's DeepStack): after layer `i < features.len()`, `features[i]` row `k` is added to the `k`-th
/// image token of the batch (row-major).
#[derive(Clone, Debug)]
pub struct Deepstack {
    /// `[B * S]`: 0 for a token that is no image token, `1 + k` for the `k`-th image token.
    pub slots: Tensor<1, Int>,
    /// One `[image tokens, hidden]` per injected layer.
    pub features: Vec<Tensor<2>>,
}

impl Deepstack {
    /// `x: [B, S, hidden]` after layer `layer`, with that layer's features added (unchanged past the last one).
    fn inject(&self, layer: usize, x: Tensor<3>) -> Tensor<3> {
        let Some(features) = self.features.get(layer) else {
            return x;
        };
        let [b, s, d] = x.dims();
        // Row 0 of the table is the zero row every other token reads.
        let table = Tensor::cat(
            vec![Tensor::zeros([1, d], &x.device()), features.clone()],
            0,
        );
        x + table.select(0, self.slots.clone()).reshape([b, s, d])
    }
}

/// Output of the decoder stack.
pub struct DecoderOutput {
    /// Final hidden states after the last norm, `[B, S, hidden]`.
    pub last_hidden_state: Tensor<3>,
    /// When requested: the embeddings and the output of every layer, the last one after the
    /// final norm (`num_hidden_layers + 1` tensors, as HF `output_hidden_states`).
    pub hidden_states: Vec<Tensor<3>>,
}

/// Attention mask `[B, 1, S, T]`, true where query `i` (absolute position `past + i`) must not
/// see key `j`: `j > past + i` (causal) or key `j` is padding (`attention_mask[b, j] == 0`).
pub fn causal_mask(
    batch: usize,
    seq: usize,
    past: usize,
    attention_mask: Option<&Tensor<2, Int>>,
    device: &Device,
) -> Tensor<4, Bool> {
    let total = past + seq;
    let keys = Tensor::<1, Int>::arange(0..total as i64, device)
        .reshape([1, 1, 1, total])
        .expand([batch, 1, seq, total]);
    let queries = Tensor::<1, Int>::arange(past as i64..total as i64, device)
        .reshape([1, 1, seq, 1])
        .expand([batch, 1, seq, total]);
    let causal = keys.greater(queries);
    match attention_mask {
        Some(mask) => {
            let pad = mask
                .clone()
                .equal_elem(0)
                .reshape([batch, 1, 1, total])
                .expand([batch, 1, seq, total]);
            causal.bool_or(pad)
        }
        None => causal,
    }
}

/// Attention mask `[B, 1, S, S]` of packed rows, true where query `i` must not see key `j`: `j > i` (causal), or
/// `j` belongs to another sample of the row (`segment_ids[b, j] != segment_ids[b, i]`), or `j` is padding (segment
/// 0). A padding query therefore sees nothing; [`crate::nn::attention`] keeps such fully masked rows finite, and
/// nothing reads them.
pub fn packed_causal_mask(segment_ids: &Tensor<2, Int>) -> Tensor<4, Bool> {
    let device = segment_ids.device();
    let [batch, seq] = segment_ids.dims();
    let keys = Tensor::<1, Int>::arange(0..seq as i64, &device)
        .reshape([1, 1, 1, seq])
        .expand([batch, 1, seq, seq]);
    let queries = Tensor::<1, Int>::arange(0..seq as i64, &device)
        .reshape([1, 1, seq, 1])
        .expand([batch, 1, seq, seq]);
    let causal = keys.greater(queries);
    let key_segment = segment_ids
        .clone()
        .reshape([batch, 1, 1, seq])
        .expand([batch, 1, seq, seq]);
    let query_segment = segment_ids
        .clone()
        .reshape([batch, 1, seq, 1])
        .expand([batch, 1, seq, seq]);
    let padding = key_segment.clone().equal_elem(0);
    causal
        .bool_or(key_segment.not_equal(query_segment))
        .bool_or(padding)
}

impl LlamaModel {
    pub fn new(cfg: &LlamaConfig, device: &Device) -> anyhow::Result<Self> {
        cfg.validate()?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| LlamaDecoderLayer::new(cfg, device))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: Embedding::new(
                cfg.vocab_size,
                cfg.hidden_size,
                cfg.initializer_range,
                device,
            ),
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, device),
            rope: cfg.rope()?,
        })
    }

    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embed_tokens.forward(ids)
    }

    /// Runs the decoder on embeddings `[B, S, hidden]`.
    /// `attention_mask: [B, past + S]` (1 = token, 0 = padding); `positions: [B, S]`.
    pub fn forward_embeds(
        &self,
        embeds: Tensor<3>,
        attention_mask: Option<&Tensor<2, Int>>,
        positions: Tensor<2, Int>,
        cache: Option<&mut KvCache>,
        output_hidden_states: bool,
    ) -> DecoderOutput {
        let device = embeds.device();
        let [b, s, _] = embeds.dims();
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let masked = causal_mask(b, s, past, attention_mask, &device);
        self.forward_embeds_masked(embeds, masked, positions, cache, output_hidden_states)
    }

    /// Runs the decoder on embeddings `[B, S, hidden]` with an explicit attention mask `[B, 1, S, past + S]`
    /// (true = not attended), e.g. [`packed_causal_mask`] with each sample's own `positions: [B, S]`.
    pub fn forward_embeds_masked(
        &self,
        embeds: Tensor<3>,
        masked: Tensor<4, Bool>,
        positions: Tensor<2, Int>,
        cache: Option<&mut KvCache>,
        output_hidden_states: bool,
    ) -> DecoderOutput {
        let (cos, sin) = self.rope.cos_sin(positions);
        self.forward_embeds_rotary(
            embeds,
            masked,
            (cos, sin),
            None,
            cache,
            output_hidden_states,
        )
    }

    /// Runs the decoder on embeddings `[B, S, hidden]` with an explicit attention mask and rotary tables
    /// `cos, sin: [B, S, head_dim]` computed by the caller (multimodal positions of the Qwen2-VL family), and
    /// `deepstack` features added after the first layers. Hidden states are recorded as transformers does: the
    /// embeddings, then each layer's output before any DeepStack addition, the last one after the final norm.
    pub fn forward_embeds_rotary(
        &self,
        embeds: Tensor<3>,
        masked: Tensor<4, Bool>,
        (cos, sin): (Tensor<3>, Tensor<3>),
        deepstack: Option<&Deepstack>,
        mut cache: Option<&mut KvCache>,
        output_hidden_states: bool,
    ) -> DecoderOutput {
        if let Some(c) = cache.as_mut()
            && c.layers.len() != self.layers.len()
        {
            **c = KvCache::new(self.layers.len());
        }
        let mut hidden_states = Vec::new();
        let mut x = embeds;
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            if output_hidden_states && i == 0 {
                hidden_states.push(x.clone());
            }
            let slot = cache.as_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(x, &cos, &sin, Some(masked.clone()), slot);
            if output_hidden_states && i < last {
                hidden_states.push(x.clone());
            }
            if let Some(deepstack) = deepstack {
                x = deepstack.inject(i, x);
            }
        }
        let x = self.norm.forward(x);
        if output_hidden_states {
            hidden_states.push(x.clone());
        }
        DecoderOutput {
            last_hidden_state: x,
            hidden_states,
        }
    }
}

/// Positions `0..S` for every row (what HF uses when no `position_ids` are given).
pub fn default_positions(batch: usize, seq: usize, past: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::<1, Int>::arange(past as i64..(past + seq) as i64, device)
        .reshape([1, seq])
        .expand([batch, seq])
}

/// `LlamaForCausalLM`: `model.*` + `lm_head.weight` (absent when tied).
#[derive(Module, Debug)]
pub struct LlamaForCausalLM {
    pub model: LlamaModel,
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub config: LlamaConfig,
}

impl LlamaForCausalLM {
    pub fn new(cfg: &LlamaConfig, device: &Device) -> anyhow::Result<Self> {
        Ok(Self {
            model: LlamaModel::new(cfg, device)?,
            lm_head: (!cfg.tie_word_embeddings).then(|| {
                Linear::new(
                    cfg.hidden_size,
                    cfg.vocab_size,
                    false,
                    cfg.initializer_range,
                    device,
                )
            }),
            config: cfg.clone(),
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

    /// Logits `[B, S, vocab]` (and hidden states when asked) for token ids.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<&Tensor<2, Int>>,
        output_hidden_states: bool,
    ) -> (Tensor<3>, Vec<Tensor<3>>) {
        let [b, s] = input_ids.dims();
        let positions = default_positions(b, s, 0, &input_ids.device());
        let out = self.model.forward_embeds(
            self.model.embed(input_ids),
            attention_mask,
            positions,
            None,
            output_hidden_states,
        );
        (self.logits(out.last_hidden_state), out.hidden_states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_rope_scaling_keeps_high_freqs_and_divides_low_freqs() {
        let rope = Rope {
            theta: 500000.0,
            dim: 64,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0,
            },
        };
        let plain = Rope {
            scaling: RopeScaling::None,
            ..rope.clone()
        };
        let (scaled, base) = (rope.inv_freq(), plain.inv_freq());
        assert_eq!(scaled[0], base[0]);
        let last = base.len() - 1;
        assert!((scaled[last] - base[last] / 8.0).abs() < 1e-12);
    }

    #[test]
    fn config_reads_rope_parameters_of_transformers_5() {
        let cfg: LlamaConfig = serde_json::from_str(
            r#"{"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
                "num_attention_heads":2,"rope_parameters":{"rope_type":"default","rope_theta":1000.0}}"#,
        )
        .unwrap();
        let rope = cfg.rope().unwrap();
        assert_eq!(rope.theta, 1000.0);
        assert_eq!(rope.scaling, RopeScaling::None);
        assert_eq!(rope.dim, 4);
    }

    #[test]
    fn packed_mask_is_causal_inside_each_sample_and_blind_across_and_to_padding() {
        let device = Device::flex();
        // One row: sample 1 (3 tokens), sample 2 (2 tokens), one padding token.
        let segments = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 1, 1, 2, 2, 0], [1, 6]),
            &device,
        );
        let masked: Vec<bool> = packed_causal_mask(&segments)
            .into_data()
            .convert::<bool>()
            .try_into_vec()
            .unwrap();
        let visible = |q: usize| -> Vec<usize> { (0..6).filter(|&k| !masked[q * 6 + k]).collect() };
        assert_eq!(visible(0), vec![0]);
        assert_eq!(visible(2), vec![0, 1, 2]);
        assert_eq!(visible(3), vec![3], "sample 2 starts afresh");
        assert_eq!(visible(4), vec![3, 4]);
        assert!(visible(5).is_empty(), "padding attends nowhere");
    }

    #[test]
    fn unknown_rope_type_is_an_error() {
        let mut cfg = LlamaConfig::tiny(10, 8, 1, 2, 1);
        cfg.rope_scaling = Some(serde_json::json!({"rope_type": "yarn", "factor": 2.0}));
        assert!(cfg.validate().unwrap_err().to_string().contains("yarn"));
    }
}
