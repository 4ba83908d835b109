//! Next-token negative log-likelihood per row of logits, `logsumexp(x) - x[target]`: one pass forward (keeping
//! each row's logsumexp instead of a `[rows, vocab]` log-softmax), one pass backward, `softmax(x) - onehot`.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::kernel::{contiguous, dims, exp, f32s, max, rows_per_task, tensor, vectorized};
use super::route::{AdTensor, Route, from_ad, from_flex, into_ad, into_flex, route, with_strategy};

/// Negative log-likelihood `[n]` of `targets` (one per row) under `logits: [n, vocab]`; 0 where a target is
/// outside `0..vocab` (such as [`crate::IGNORE_INDEX`]: the position carries no loss).
///
/// # Panics
/// If `targets.len()` differs from the number of rows.
pub fn nll(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    let [n, vocab] = logits.dims();
    assert_eq!(targets.len(), n, "nll: one target per row of logits");
    let foreign = targets
        .iter()
        .filter(|&&t| t != crate::IGNORE_INDEX && !(0..vocab as i64).contains(&t))
        .count();
    if foreign > 0 {
        tracing::warn!(
            "{foreign} of {n} targets outside the vocabulary (0..{vocab}): no loss at those positions"
        );
    }
    match route(&[&logits]) {
        Some(Route::Flex) => from_flex(forward(&contiguous(into_flex(logits)), targets).0),
        Some(Route::Autodiff(s)) => {
            let targets: Arc<[i64]> = targets.into();
            from_ad(with_strategy!(s, autodiff(into_ad(logits), targets)), s)
        }
        None => reference(logits, targets),
    }
}

/// The composition of Burn ops that [`nll`] computes in one kernel: log-softmax, gather, mask.
pub fn reference(logits: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    let [n, vocab] = logits.dims();
    let device = logits.device();
    let valid = |t: i64| (0..vocab as i64).contains(&t);
    let safe: Vec<i64> = targets
        .iter()
        .map(|&t| if valid(t) { t } else { 0 })
        .collect();
    let keep: Vec<f32> = targets
        .iter()
        .map(|&t| if valid(t) { 1.0 } else { 0.0 })
        .collect();
    let safe = Tensor::<2, Int>::from_data(TensorData::new(safe, [n, 1]), &device);
    let keep = Tensor::<1>::from_data(TensorData::new(keep, [n]), &device);
    log_softmax(logits, 1).gather(1, safe).reshape([n]).neg() * keep
}

/// `(nll [n], logsumexp per row [n])`.
fn forward(logits: &FlexTensor, targets: &[i64]) -> (FlexTensor, Vec<f32>) {
    let vocab = dims(logits)[1];
    let xs = f32s(logits);
    let n = targets.len();
    let mut out = vec![0.0f32; n];
    let mut lse = vec![0.0f32; n];
    out.par_iter_mut()
        .zip(lse.par_iter_mut())
        .zip(xs.par_chunks(vocab.max(1)))
        .zip(targets.par_iter())
        .with_min_len(rows_per_task(vocab))
        .for_each(|(((o, l), xr), &t)| {
            if !(0..vocab as i64).contains(&t) {
                return;
            }
            let (top, total) = vectorized(
                #[inline(always)]
                || {
                    let top = max(xr);
                    let mut acc = [0.0f32; 16];
                    let chunks = xr.chunks_exact(16);
                    let tail: f32 = chunks.remainder().iter().map(|&x| exp(x - top)).sum();
                    for c in chunks {
                        for (a, &x) in acc.iter_mut().zip(c) {
                            *a += exp(x - top);
                        }
                    }
                    (top, acc.iter().sum::<f32>() + tail)
                },
            );
            *l = top + total.ln();
            *o = *l - xr[t as usize];
        });
    (tensor(out, &[n]), lse)
}

/// The logits' gradient for the output gradient `g: [n]`.
fn backward(logits: &FlexTensor, targets: &[i64], lse: &[f32], g: &FlexTensor) -> FlexTensor {
    let shape = dims(logits);
    let vocab = shape[1];
    let (xs, gs) = (f32s(logits), f32s(g));
    let mut dx = vec![0.0f32; xs.len()];
    dx.par_chunks_mut(vocab.max(1))
        .zip(xs.par_chunks(vocab.max(1)))
        .zip(targets.par_iter().zip(lse).zip(gs))
        .with_min_len(rows_per_task(vocab))
        .for_each(|((dr, xr), ((&t, &l), &g))| {
            if !(0..vocab as i64).contains(&t) {
                return;
            }
            vectorized(
                #[inline(always)]
                || {
                    for (d, x) in dr.iter_mut().zip(xr) {
                        *d = g * exp(x - l);
                    }
                },
            );
            dr[t as usize] -= g;
        });
    tensor(dx, &shape)
}

#[derive(Debug)]
struct NllBackward;

impl Backward<Flex, 1> for NllBackward {
    /// Logits, targets, logsumexp per row.
    type State = (FlexTensor, Arc<[i64]>, Arc<[f32]>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (logits, targets, lse) = ops.state;
        if let Some(node) = node {
            grads.register::<Flex>(node.id, backward(&logits, &targets, &lse, &g));
        }
    }
}

fn autodiff<C: CheckpointStrategy>(logits: AdTensor, targets: Arc<[i64]>) -> AdTensor {
    let (lp, ln) = logits.into_parts();
    let lp = contiguous(lp);
    let (out, lse) = forward(&lp, &targets);
    match NllBackward.prepare::<C>([ln]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((lp, targets, lse.into()), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}
