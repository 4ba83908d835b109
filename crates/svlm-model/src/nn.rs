//! Building blocks whose parameters are stored exactly as PyTorch/Hugging Face store them
//! (`Linear.weight` is `[out, in]`, norms hold `weight`/`bias`), so module paths are HF names and
//! safetensors load/export needs no per-layer adapter or transpose.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::activation;
use burn::tensor::{Device, Int, Tensor};

/// `y = x W^T + b` with `W: [out, in]` (PyTorch layout).
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// Normal(0, std) weights and zero bias, as HF `_init_weights` does.
    pub fn new(d_input: usize, d_output: usize, bias: bool, std: f64, device: &Device) -> Self {
        let weight = Initializer::Normal { mean: 0.0, std }.init([d_output, d_input], device);
        let bias = bias.then(|| Initializer::Zeros.init([d_output], device));
        Self { weight, bias }
    }

    pub fn d_output(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        linear(
            input,
            self.weight.val().transpose(),
            self.bias.as_ref().map(|b| b.val()),
        )
    }
}

/// `y = x W + b` for `x: [..., in]`, `W: [in, out]`. In training (a forward under autodiff) the leading
/// dimensions are folded into the rows of one `[rows, in] x [in, out]` product, as PyTorch's `F.linear` does: the
/// weight is packed once per call and its gradient is one product, where a product batched over the leading
/// dimensions repacks the weight for every batch element. Inference keeps the batched product, whose result for
/// one batch element does not depend on the others (the matmul's blocking follows the row count), so an image
/// gives the same answer alone or in a batch.
pub fn linear<const D: usize>(
    input: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    if D <= 2 || !crate::fused::under_autodiff(&input) {
        return burn::tensor::module::linear(input, weight, bias);
    }
    let dims = input.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let out = burn::tensor::module::linear(input.reshape([rows, dims[D - 1]]), weight, bias);
    let mut out_dims = dims;
    out_dims[D - 1] = out.dims()[1];
    out.reshape(out_dims)
}

/// Lookup table `[n, d]`.
#[derive(Module, Debug)]
pub struct Embedding {
    pub weight: Param<Tensor<2>>,
}

impl Embedding {
    pub fn new(n: usize, d: usize, std: f64, device: &Device) -> Self {
        Self {
            weight: Initializer::Normal { mean: 0.0, std }.init([n, d], device),
        }
    }

    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        burn::tensor::module::embedding(self.weight.val(), ids)
    }
}

/// Llama RMSNorm: `weight * x / sqrt(mean(x^2) + eps)`.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Initializer::Ones.init([d], device),
            eps,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        crate::fused::rms_norm(x, self.weight.val(), self.eps)
    }
}

/// LayerNorm over the last dimension with biased variance, as `torch.nn.LayerNorm`.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Initializer::Ones.init([d], device),
            bias: Initializer::Zeros.init([d], device),
            eps,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        crate::fused::layer_norm(x, self.weight.val(), self.bias.val(), self.eps)
    }
}

/// A `Conv2d` with kernel = stride = patch size and no padding (ViT patchify), weight
/// `[out, in, p, p]` as PyTorch. Computed as an unfold + matmul, which is exact and cheap.
#[derive(Module, Debug)]
pub struct PatchConv {
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl PatchConv {
    pub fn new(
        channels: usize,
        d: usize,
        patch: usize,
        bias: bool,
        std: f64,
        device: &Device,
    ) -> Self {
        Self {
            weight: Initializer::Normal { mean: 0.0, std }
                .init([d, channels, patch, patch], device),
            bias: bias.then(|| Initializer::Zeros.init([d], device)),
        }
    }

    /// `[B, C, H, W]` -> `[B, (H/p)*(W/p), d]` in row-major patch order (as `conv(..).flatten(2).transpose(1, 2)`).
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [d, c, p, _] = self.weight.dims();
        let [b, _, h, w] = pixels.dims();
        let (nh, nw) = (h / p, w / p);
        let pixels = if nh * p != h || nw * p != w {
            pixels.slice([0..b, 0..c, 0..nh * p, 0..nw * p])
        } else {
            pixels
        };
        let patches = pixels
            .reshape([b, c, nh, p, nw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, nh * nw, c * p * p]);
        let weight = self.weight.val().reshape([d, c * p * p]);
        linear(
            patches,
            weight.transpose(),
            self.bias.as_ref().map(|b| b.val()),
        )
    }
}

/// Activation functions named as in HF configs (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    Gelu,
    GeluTanh,
    QuickGelu,
    Relu,
}

impl Activation {
    pub fn from_hf(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "silu" | "swish" => Self::Silu,
            "gelu" => Self::Gelu,
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Self::GeluTanh,
            "quick_gelu" => Self::QuickGelu,
            "relu" => Self::Relu,
            other => anyhow::bail!(
                "unsupported activation `{other}` (supported: silu, gelu, gelu_pytorch_tanh, quick_gelu, relu)"
            ),
        })
    }

    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Silu => activation::silu(x),
            Self::Gelu => activation::gelu(x),
            Self::GeluTanh => crate::fused::gelu_tanh(x),
            Self::QuickGelu => x.clone() * activation::sigmoid(x.mul_scalar(1.702)),
            Self::Relu => activation::relu(x),
        }
    }
}

/// Scaled dot-product attention with softmax over the keys.
/// `q: [B, H, S, D]`, `k, v: [B, KV, T, D]` with `H` a multiple of `KV` (query head `h` reads KV head
/// `h / (H / KV)`, as HF `repeat_kv`), `masked: [B, 1, S, T]` (true = not attended).
/// Masked scores are set to [`MASKED_SCORE`], a large negative finite value (representable in bf16), so a fully
/// masked row gives a uniform distribution instead of NaN. Fused on the CPU backend ([`crate::fused::attention`]).
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    masked: Option<burn::tensor::Tensor<4, burn::tensor::Bool>>,
    scale: f64,
) -> Tensor<4> {
    crate::fused::attention(q, k, v, masked, scale)
}

pub use crate::fused::MASKED_SCORE;
