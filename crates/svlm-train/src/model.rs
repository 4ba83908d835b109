//! What the trainer needs from a model, and the parameter-level tools built on Burn's module visitors: freezing by
//! part, trainable counts, gradient-hole checks, global gradient norm, bitwise snapshots.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::batch::{HostBatch, IGNORE_INDEX};
use crate::config::TrainableParts;

/// The three parts of a VLM that stages freeze and per-part learning rates address (`svlm_model::Part`).
pub use svlm_model::Part;

/// A model the trainer can train. Implemented for svlm-model's VLMs in `crate::vlm`.
pub trait TrainableModel: Module + Clone + 'static {
    /// Next-token logits `[batch, seq_len, vocab]` for a batch (images included), on `device`. An error
    /// means the batch contradicts the model (e.g. image tokens vs images) and stops the run.
    fn logits(&self, batch: &HostBatch, device: &Device) -> anyhow::Result<Tensor<3>>;
    /// Logits `[n, vocab]` at the flat positions `row * seq_len + pos` only (those whose next token carries loss).
    /// The default computes every position and selects; a model whose output head is large next to its body
    /// overrides it to run the head on these positions alone.
    fn logits_at(
        &self,
        batch: &HostBatch,
        positions: &[i64],
        device: &Device,
    ) -> anyhow::Result<Tensor<2>> {
        Ok(rows_at(self.logits(batch, device)?, positions, device))
    }
    /// Whether [`TrainableModel::logits`] honours packed batches ([`HostBatch::packed`]): attention confined to
    /// each `segment_ids` segment (causal inside it), RoPE positions from `position_ids`, each sample's image tiles
    /// with its own tokens. The trainer pads instead of packing for a model that does not.
    fn supports_packing(&self) -> bool {
        false
    }
    /// Which part a parameter belongs to, from its module path (`vision_model.encoder.layers.0.mlp.fc1.weight`).
    fn part_of(&self, path: &str) -> Part;
    /// Write the weights (and whatever rebuilds the model) into a checkpoint directory. The default is Burn's
    /// burnpack record `model.bpk`; svlm-model's VLMs write an HF folder (`config.json` + `model.safetensors`).
    fn save_weights(&self, dir: &Path) -> anyhow::Result<()> {
        self.clone()
            .save_file(dir.join(crate::checkpoint::MODEL_FILE))
            .map_err(|e| anyhow::anyhow!("saving model: {e:?}"))
    }
    /// Load weights written by [`TrainableModel::save_weights`] into this (freshly built) model.
    fn load_weights(self, dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(crate::checkpoint::MODEL_FILE);
        self.try_load_file(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))
    }
}

/// Rows `[n, d]` of a `[batch, seq_len, d]` tensor at the flat positions `row * seq_len + pos`.
pub fn rows_at(t: Tensor<3>, positions: &[i64], device: &Device) -> Tensor<2> {
    let [b, s, d] = t.dims();
    let index = Tensor::<1, Int>::from_data(
        TensorData::new(positions.to_vec(), [positions.len()]),
        device,
    );
    t.reshape([b * s, d]).select(0, index)
}

/// The positions of a batch whose next token carries loss: flat indices `row * seq_len + pos` (logits at `pos`
/// predict label `pos + 1`), their target ids, and the index of the sample they belong to. Only positions inside
/// one sample count, so a packed row never predicts one sample's first token from the previous sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supervised {
    pub positions: Vec<i64>,
    pub targets: Vec<i64>,
    pub samples: Vec<usize>,
}

impl Supervised {
    pub fn of(batch: &HostBatch) -> Supervised {
        let t = batch.seq_len;
        let mut out = Supervised::default();
        for (k, span) in batch.spans.iter().enumerate() {
            let row = span.row * t;
            for pos in span.start + 1..span.start + span.len {
                let label = batch.labels[row + pos];
                if label != IGNORE_INDEX {
                    out.positions.push((row + pos - 1) as i64);
                    out.targets.push(label);
                    out.samples.push(k);
                }
            }
        }
        out
    }
}

/// Next-token negative log-likelihood `[n]` of logits `[n, vocab]` against `targets` (the logits carry their
/// device; `svlm_model::fused::nll` is the one loss kernel).
pub fn nll_at(logits: Tensor<2>, targets: &[i64], _device: &Device) -> Tensor<1> {
    svlm_model::fused::nll(logits, targets)
}

/// Masked next-token negative log-likelihood, `[batch, seq_len - 1]`, zero where the label is [`IGNORE_INDEX`]
/// (`svlm_model::next_token_nll`, the loss path `causal_lm_loss` takes too).
pub fn token_nll(logits: Tensor<3>, batch: &HostBatch, _device: &Device) -> Tensor<2> {
    svlm_model::next_token_nll(logits, &batch.labels)
}

/// Module path of every float parameter, in visit order.
struct PathVisitor<F: FnMut(&str, ParamInfo)> {
    path: Vec<String>,
    f: F,
}

/// What a visitor learns about one parameter.
#[derive(Debug, Clone, Copy)]
pub struct ParamInfo {
    pub id: burn::module::ParamId,
    pub numel: usize,
    pub rank: usize,
    pub require_grad: bool,
}

impl<F: FnMut(&str, ParamInfo)> ModuleVisitor for PathVisitor<F> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let info = ParamInfo {
            id: param.id,
            numel: tensor.shape().num_elements(),
            rank: D,
            require_grad: tensor.is_require_grad(),
        };
        (self.f)(&self.path.join("."), info);
    }
}

/// Visit every float parameter with its path.
pub fn for_each_param<M: Module>(model: &M, f: impl FnMut(&str, ParamInfo)) {
    let mut v = PathVisitor {
        path: Vec::new(),
        f,
    };
    model.visit(&mut v);
}

struct FreezeMapper<'a, M: TrainableModel> {
    path: Vec<String>,
    model: &'a M,
    parts: TrainableParts,
}

impl<M: TrainableModel> ModuleMapper for FreezeMapper<'_, M> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let part = self.model.part_of(&self.path.join("."));
        param.set_require_grad(self.parts.includes(part))
    }
}

/// Apply a stage: parameters of frozen parts stop requiring gradients.
pub fn apply_freeze<M: TrainableModel>(model: M, parts: TrainableParts) -> M {
    let reference = model.clone();
    let mut mapper = FreezeMapper {
        path: Vec::new(),
        model: &reference,
        parts,
    };
    model.map(&mut mapper)
}

/// Parameter counts per part: (trainable, total).
pub fn param_counts<M: TrainableModel>(model: &M) -> BTreeMap<Part, (usize, usize)> {
    let mut counts: BTreeMap<Part, (usize, usize)> =
        Part::ALL.iter().map(|p| (*p, (0, 0))).collect();
    for_each_param(model, |path, info| {
        let entry = counts.entry(model.part_of(path)).or_default();
        entry.1 += info.numel;
        if info.require_grad {
            entry.0 += info.numel;
        }
    });
    counts
}

/// Trainable parameters that received no gradient (paths), e.g. a tower wired out of the graph.
pub fn gradient_holes<M: Module>(model: &M, grads: &GradientsParams) -> Vec<String> {
    let mut holes = Vec::new();
    let mut v = HoleVisitor {
        path: Vec::new(),
        grads,
        holes: &mut holes,
    };
    model.visit(&mut v);
    holes
}

struct HoleVisitor<'a> {
    path: Vec<String>,
    grads: &'a GradientsParams,
    holes: &'a mut Vec<String>,
}

impl ModuleVisitor for HoleVisitor<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() && self.grads.get::<D>(param.id).is_none() {
            self.holes.push(self.path.join("."));
        }
    }
}

/// Global L2 norm of all gradients, computed on the device with one read-back.
pub fn global_grad_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    let mut v = NormVisitor { grads, sum: None };
    model.visit(&mut v);
    v.sum
        .map_or(0.0, |s| f64::from(s.into_scalar::<f32>()).sqrt())
}

struct NormVisitor<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for NormVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(s) => s + sq,
                None => sq,
            });
        }
    }
}

/// Every parameter's values as f32, by path (for bitwise comparisons in tests and checks).
pub fn snapshot<M: Module>(model: &M) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    let mut v = SnapshotVisitor {
        path: Vec::new(),
        out: &mut out,
    };
    model.visit(&mut v);
    out
}

struct SnapshotVisitor<'a> {
    path: Vec<String>,
    out: &'a mut BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for SnapshotVisitor<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        self.out.insert(self.path.join("."), values);
    }
}
