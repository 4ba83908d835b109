//! AdamW with parameter groups (per part learning rates; no weight decay on 1-D parameters: norms and biases),
//! global-norm clipping and the learning-rate schedule.
//!
//! The update is PyTorch's `torch.optim.AdamW` (bias-corrected moments, `eps` added after the square root, decoupled
//! decay `p *= 1 - lr * wd`). The state is keyed by parameter *path*, not Burn's `ParamId`, so a checkpoint restores
//! into a freshly built model in another process: that is what makes `--resume` exact.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use burn::module::{ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::{OptimConfig, Schedule};
use crate::model::{Part, TrainableModel};

/// Learning-rate multiplier at a step (1-based optimizer step): linear warmup, then cosine / linear decay to
/// `min_lr_ratio`, or constant.
pub fn lr_factor(config: &OptimConfig, step: u64, total_steps: u64) -> f64 {
    let warmup = config.warmup_steps;
    if warmup > 0 && step <= warmup {
        return step as f64 / warmup as f64;
    }
    let decay_steps = total_steps.saturating_sub(warmup).max(1);
    let progress = ((step.saturating_sub(warmup)) as f64 / decay_steps as f64).clamp(0.0, 1.0);
    let floor = config.min_lr_ratio;
    match config.schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => floor + (1.0 - floor) * (1.0 - progress),
        Schedule::Cosine => {
            floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// Base learning rate of each part.
pub fn part_lrs(config: &OptimConfig) -> BTreeMap<Part, f64> {
    BTreeMap::from([
        (Part::Vision, config.lr_vision.unwrap_or(config.lr)),
        (Part::Connector, config.lr_connector.unwrap_or(config.lr)),
        (Part::Language, config.lr_language.unwrap_or(config.lr)),
    ])
}

struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
}

pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    state: BTreeMap<String, Moments>,
    /// Optimizer steps taken (bias correction uses it).
    pub steps: u64,
}

impl AdamW {
    pub fn new(config: &OptimConfig) -> Self {
        Self {
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
            state: BTreeMap::new(),
            steps: 0,
        }
    }

    /// One update of every parameter that has a gradient. `lrs` are the current learning rates per part;
    /// `grad_scale` multiplies every gradient first (global-norm clipping).
    pub fn step<M: TrainableModel>(
        &mut self,
        model: M,
        grads: &GradientsParams,
        lrs: &BTreeMap<Part, f64>,
        grad_scale: f64,
    ) -> M {
        self.steps += 1;
        let reference = model.clone();
        let mut mapper = AdamWMapper {
            path: Vec::new(),
            optim: self,
            model: &reference,
            grads,
            lrs,
            grad_scale,
        };
        model.map(&mut mapper)
    }

    /// Save the moments as safetensors (`m.<path>`, `v.<path>`) with the step count in the metadata.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut buffers: Vec<(String, Vec<u8>, usize)> = Vec::new();
        for (name, moments) in &self.state {
            for (prefix, t) in [("m", &moments.m), ("v", &moments.v)] {
                let values = t
                    .to_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
                buffers.push((format!("{prefix}.{name}"), bytes, values.len()));
            }
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = buffers
            .iter()
            .map(|(n, b, len)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*len], b)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<_, _>>()?;
        let metadata =
            std::collections::HashMap::from([("steps".to_string(), self.steps.to_string())]);
        let bytes = safetensors::serialize(views, Some(metadata))?;
        crate::checkpoint::write_atomic(path, &bytes).with_context(|| path.display().to_string())
    }

    pub fn load(&mut self, path: &Path, device: &Device) -> anyhow::Result<()> {
        let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .with_context(|| path.display().to_string())?;
        let steps = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{}: no `steps` in the metadata", path.display()))?;
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .with_context(|| path.display().to_string())?;
        let mut state: BTreeMap<String, (Option<Tensor<1>>, Option<Tensor<1>>)> = BTreeMap::new();
        for (name, view) in tensors.tensors() {
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let len = values.len();
            let t = Tensor::<1>::from_data(TensorData::new(values, [len]), device);
            let (kind, param) = name
                .split_once('.')
                .ok_or_else(|| anyhow::anyhow!("{}: bad tensor name {name}", path.display()))?;
            let entry = state.entry(param.to_string()).or_default();
            match kind {
                "m" => entry.0 = Some(t),
                "v" => entry.1 = Some(t),
                _ => {
                    return Err(anyhow::anyhow!(
                        "{}: bad tensor name {name}",
                        path.display()
                    ));
                }
            }
        }
        self.state = state
            .into_iter()
            .map(|(k, (m, v))| match (m, v) {
                (Some(m), Some(v)) => Ok((k, Moments { m, v })),
                _ => Err(anyhow::anyhow!("{}: `{k}` lacks m or v", path.display())),
            })
            .collect::<Result<_, _>>()?;
        self.steps = steps;
        Ok(())
    }
}

struct AdamWMapper<'a, M: TrainableModel> {
    path: Vec<String>,
    optim: &'a mut AdamW,
    model: &'a M,
    grads: &'a GradientsParams,
    lrs: &'a BTreeMap<Part, f64>,
    grad_scale: f64,
}

impl<M: TrainableModel> ModuleMapper for AdamWMapper<'_, M> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.get::<D>(param.id) else {
            return param;
        };
        let path = self.path.join(".");
        let lr = self
            .lrs
            .get(&self.model.part_of(&path))
            .copied()
            .unwrap_or(0.0);
        let o = &mut *self.optim;
        let (b1, b2, t) = (o.beta1, o.beta2, o.steps as i32);
        // Norms and biases (1-D) are never decayed.
        let decay = if D >= 2 { o.weight_decay } else { 0.0 };
        param.map(|tensor| {
            let require_grad = tensor.is_require_grad();
            let shape = tensor.shape();
            let n = shape.num_elements();
            let p = tensor.inner();
            let g = grad.inner().reshape([n]);
            let g = if self.grad_scale != 1.0 {
                g.mul_scalar(self.grad_scale)
            } else {
                g
            };
            let (m, v) = match o.state.remove(&path) {
                Some(Moments { m, v }) => (
                    m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                    v.mul_scalar(b2) + g.square().mul_scalar(1.0 - b2),
                ),
                None => (
                    g.clone().mul_scalar(1.0 - b1),
                    g.square().mul_scalar(1.0 - b2),
                ),
            };
            let bias1 = 1.0 - b1.powi(t);
            let bias2 = 1.0 - b2.powi(t);
            let denom = v.clone().div_scalar(bias2).sqrt().add_scalar(o.eps);
            let update = m.clone().div_scalar(bias1).div(denom).mul_scalar(lr);
            let flat = p.reshape([n]);
            let flat = if decay > 0.0 {
                flat.mul_scalar(1.0 - lr * decay)
            } else {
                flat
            };
            let updated: Tensor<D> = (flat - update).reshape(shape);
            o.state.insert(path.clone(), Moments { m, v });
            let lifted = Tensor::from_inner(updated);
            if require_grad {
                lifted.require_grad()
            } else {
                lifted
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_warm_up_then_decay_to_the_floor() {
        let mut c = OptimConfig {
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            ..OptimConfig::default()
        };
        assert!((lr_factor(&c, 5, 110) - 0.5).abs() < 1e-12);
        assert!((lr_factor(&c, 10, 110) - 1.0).abs() < 1e-12);
        assert!(
            (lr_factor(&c, 60, 110) - 0.55).abs() < 1e-12,
            "cosine midpoint"
        );
        assert!((lr_factor(&c, 110, 110) - 0.1).abs() < 1e-12);
        c.schedule = Schedule::Linear;
        assert!((lr_factor(&c, 60, 110) - 0.55).abs() < 1e-12);
        assert!((lr_factor(&c, 85, 110) - 0.325).abs() < 1e-12);
        c.schedule = Schedule::Constant;
        assert_eq!(lr_factor(&c, 85, 110), 1.0);
    }
}
