//! A standalone DINOv2 (`Dinov2Model` folder: `config.json` + `model.safetensors` with the hub's names,
//! `embeddings.*`, `encoder.layer.N.*`, `layernorm.*`): the same backbone module Depth Anything uses, loaded on
//! its own so a real checkpoint can be checked against transformers layer by layer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor};
use svlm_model::WeightDType;
use svlm_model::io::read_checkpoint_dir;

use crate::config::Dinov2Config;
use crate::depth::canonical_name;
use crate::model::Dinov2Backbone;

pub struct Dinov2 {
    pub backbone: Dinov2Backbone,
    pub config: Dinov2Config,
    /// The folder it was loaded from.
    pub dir: PathBuf,
}

impl Dinov2 {
    /// Loads an HF `Dinov2Model` folder; every tensor must match the config's model (names and shapes).
    /// Weights are cast to the device's float precision.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = Dinov2Config::from_dir(dir)?;
        let mut backbone = Dinov2Backbone::new(&config, device)
            .with_context(|| format!("building the DINOv2 of {}", dir.display()))?;
        let tensors = read_checkpoint_dir(dir)?;
        svlm_model::io::apply_named_checkpoint(
            &mut backbone,
            &tensors,
            WeightDType::of_device(device),
            &dir.display().to_string(),
            "DINOv2 model",
            |key| Some(canonical_name(key)),
            str::to_string,
        )?;
        Ok(Self {
            backbone,
            config,
            dir: dir.to_path_buf(),
        })
    }

    /// `Dinov2Model`'s `hidden_states` (embeddings + each layer, `1 + layers` tensors) for normalized
    /// `pixels: [B, 3, H, W]` (H and W multiples of the patch size).
    pub fn hidden_states(&self, pixels: Tensor<4>) -> Vec<Tensor<3>> {
        self.backbone.hidden_states(pixels)
    }

    /// `Dinov2Model`'s `last_hidden_state`: the last layer's output after the final layer norm.
    pub fn last_hidden_state(&self, hidden_states: &[Tensor<3>]) -> Option<Tensor<3>> {
        hidden_states
            .last()
            .map(|h| self.backbone.layernorm.forward(h.clone()))
    }
}
