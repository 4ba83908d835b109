//! Fused CPU kernels with hand-written backward passes for the ops a transformer step spends its non-matmul time
//! in: attention with grouped KV heads and a boolean mask, RMSNorm, LayerNorm, SwiGLU, tanh-approximated GELU,
//! rotary embeddings and the next-token negative log-likelihood.
//!
//! Each function takes and returns ordinary tensors. On the Flex (CPU) backend in f32, with or without autodiff,
//! it runs one kernel forward and records one autodiff node whose backward is written out here (Burn's autodiff
//! would otherwise record every elementwise step, keep its inputs and allocate its outputs). Anywhere else — the
//! CubeCL GPU backends, LibTorch, other float types — and when [`set_enabled`]`(false)`, it runs `reference`, the
//! composition of Burn ops it replaces; the tests hold each kernel to its reference, values and gradients.

mod attention;
mod gelu;
mod kernel;
mod layer_norm;
mod loss;
mod norm;
mod ranged;
mod rope;
mod route;
mod swiglu;

pub use attention::{MASKED_SCORE, attention};
pub use gelu::gelu_tanh;
pub use layer_norm::layer_norm;
pub use loss::nll;
pub use norm::rms_norm;
pub use rope::rope;
pub(crate) use route::under_autodiff;
pub use route::{enabled, runs_fused, set_enabled};
pub use swiglu::swiglu;

/// The compositions of Burn ops the fused kernels replace (what other backends run).
pub mod reference {
    pub use super::attention::reference as attention;
    pub use super::gelu::reference as gelu_tanh;
    pub use super::layer_norm::reference as layer_norm;
    pub use super::loss::reference as nll;
    pub use super::norm::reference as rms_norm;
    pub use super::rope::reference as rope;
    pub use super::swiglu::reference as swiglu;
}
