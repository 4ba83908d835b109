//! svlm-model: Burn VLMs with Hugging Face parity — Idefics3/SmolVLM, LLaVA, Qwen2-VL/Qwen2.5-VL and Llama decoders;
//! HF safetensors load and export (module paths are HF names), KV-cache generation, device
//! selection, and the training API ([`Vlm`], [`VlmBatch`], [`part_of`]).

/// Burn as this crate uses it, so dependents need not pin it separately.
pub use burn;

pub mod device;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod idefics3;
pub mod io;
pub mod llama;
pub mod llava;
pub mod nn;
pub mod qwen2_vl;
pub mod vision;
pub mod vlm;

pub use device::{WeightDType, check_device_name, resolve_device, resolve_device_with_dtype};
pub use generate::{GenerationImages, GenerationOptions, generate};
pub use io::{
    ExportOptions, LoadedModel, export_hf, load_pretrained, load_pretrained_as, load_safetensors,
    save_safetensors,
};
pub use llama::{LlamaConfig, LlamaForCausalLM};
pub use qwen2_vl::ImagePatches;
pub use vlm::{
    Family, IGNORE_INDEX, ModelConfig, Packing, Part, Vlm, VlmBatch, VlmOutput, causal_lm_loss,
    next_token_nll, part_of,
};
