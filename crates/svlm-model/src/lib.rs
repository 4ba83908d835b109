//! svlm-model

pub mod gguf;
pub mod hub;
