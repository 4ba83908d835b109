//! Scaled dot-product attention with grouped KV heads and a boolean mask, forward and backward.
//!
//! Query head `h` reads KV head `h / (H / KV)`, so the `G = H / KV` query heads of one KV head are consecutive:
//! `q: [B, H, S, D]` is, without a copy, `[B, KV, G * S, D]`, and every product below is one batched matmul per
//! KV head with `G * S` rows — K and V are never repeated per query head, and the gradients of K and V come out
//! summed over their query heads by the matmul itself. The softmax rows (scale, mask, normalization) are one
//! pass each way; the probabilities are kept for the backward pass. When every row's unmasked keys are one
//! contiguous run and the runs cover at most half of the score matrix (packed rows of several samples), the
//! blocked kernel of `ranged.rs` computes only the scores inside the runs. When the probabilities would take
//! [`RECOMPUTE_MIN_BYTES`] or more (a vision encoder's long rows of patches), the blocked kernel runs over every
//! key and keeps only each row's softmax statistics; the backward pass recomputes the probabilities block by
//! block, so neither pass holds the whole score matrix.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::flex::ops::matmul::matmul;
use burn::tensor::{Bool, Shape, Tensor, activation};
use rayon::prelude::*;

use super::kernel::{
    bools, contiguous, dims, dot, exp, f32s, max, rows_per_task, sum, tensor, vectorized,
};
use super::ranged::{self, KeyRun};
use super::route::{
    AdTensor, Route, bool_into_flex, from_ad, from_flex, into_ad, into_flex, route, with_strategy,
};

/// Probabilities at least this large (bytes, per call) are recomputed in the backward pass instead of kept.
const RECOMPUTE_MIN_BYTES: usize = 32 << 20;

/// Score given to masked positions: finite (so fully masked rows stay NaN-free) and representable in bf16.
pub const MASKED_SCORE: f32 = -1.0e30;

/// The blocked kernel runs when its blocks cover at most this fraction of the dense score matrix; above it, one
/// batched product over all scores is faster than many small ones.
const RANGED_MAX_DENSITY: f64 = 0.5;

/// `softmax(q k^T * scale, masked -> MASKED_SCORE) v` with `q: [B, H, S, D]`, `k, v: [B, KV, T, D]` (`H` a
/// multiple of `KV`), `masked: [B or 1, 1, S, T]` (true = not attended). A fully masked row attends uniformly.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    masked: Option<Tensor<4, Bool>>,
    scale: f64,
) -> Tensor<4> {
    let [b, h, s, _] = q.dims();
    let [_, kv, t, _] = k.dims();
    let mask_fits = masked.as_ref().is_none_or(|m| {
        let [mb, mh, ms, mt] = m.dims();
        (mb == b || mb == 1) && mh == 1 && ms == s && mt == t
    });
    let r = route(&[&q, &k, &v]);
    if r.is_none() || !mask_fits || kv == 0 || h % kv != 0 {
        return reference(q, k, v, masked, scale);
    }
    let mask = match masked {
        Some(m) => match bool_into_flex(m.clone()) {
            Some(p) => Some(contiguous(p)),
            None => return reference(q, k, v, Some(m), scale),
        },
        None => None,
    };
    let scale = scale as f32;
    match r {
        Some(Route::Flex) => {
            let (q, k, v) = (into_flex(q), into_flex(k), into_flex(v));
            let (k, v) = (contiguous(k), contiguous(v));
            let qg = grouped(q, kv);
            let method = Method::choose(&qg, mask.as_ref(), [s, t]);
            from_flex(forward(&qg, &k, &v, mask.as_ref(), &method, scale, [h, s]).0)
        }
        Some(Route::Autodiff(st)) => from_ad(
            with_strategy!(
                st,
                autodiff(into_ad(q), into_ad(k), into_ad(v), mask, scale, kv)
            ),
            st,
        ),
        None => unreachable!(),
    }
}

/// The composition of Burn ops that [`attention`] computes: K and V repeated per query head, scores, mask, softmax.
pub fn reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    masked: Option<Tensor<4, Bool>>,
    scale: f64,
) -> Tensor<4> {
    let heads = q.dims()[1];
    let k = repeat_kv(k, heads);
    let v = repeat_kv(v, heads);
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    let scores = match masked {
        Some(mask) => {
            let dims = scores.dims();
            scores.mask_fill(mask.expand(dims), MASKED_SCORE)
        }
        None => scores,
    };
    activation::softmax(scores, 3).matmul(v)
}

/// Repeat each KV head so there are `heads`: `[B, KV, T, D] -> [B, heads, T, D]` (HF `repeat_kv`).
fn repeat_kv(x: Tensor<4>, heads: usize) -> Tensor<4> {
    let [b, kv, t, d] = x.dims();
    if kv == heads {
        return x;
    }
    x.unsqueeze_dim::<5>(2)
        .expand([b, kv, heads / kv, t, d])
        .reshape([b, heads, t, d])
}

/// `[B, H, S, D]` as `[B, KV, G * S, D]` (contiguous).
fn grouped(q: FlexTensor, kv: usize) -> FlexTensor {
    let [b, h, s, d]: [usize; 4] = dims(&q).try_into().expect("4D query");
    contiguous(q).reshape(Shape::from(vec![b, kv, (h / kv) * s, d]))
}

/// Offset of the mask row of softmax row `row` of `[B, KV, G * S, T]`, for a mask `[B or 1, 1, S, T]`.
fn mask_row(row: usize, rows_per_batch: usize, s: usize, t: usize, mask_batches: usize) -> usize {
    let bi = if mask_batches == 1 {
        0
    } else {
        row / rows_per_batch
    };
    (bi * s + row % s) * t
}

/// How one call computes its scores: all of them, or only those inside each row's run of keys.
#[derive(Clone, Debug)]
enum Method {
    Dense,
    /// The blocked kernel over each row's key run; `keep` = whether the blocks keep their probabilities.
    Ranged {
        runs: Vec<KeyRun>,
        shape: ranged::Shape,
        keep: bool,
    },
}

impl Method {
    /// `t`: the number of keys; `s`: query rows per head.
    fn choose(qg: &FlexTensor, mask: Option<&FlexTensor>, [s, t]: [usize; 2]) -> Self {
        let [b, kv, rows, d]: [usize; 4] = dims(qg).try_into().expect("4D query");
        let dense_bytes = b * kv * rows * t * std::mem::size_of::<f32>();
        let (runs, mask_batches, block) = match mask {
            None => (ranged::full_runs(s, t), 1, ranged::UNMASKED_BLOCK),
            Some(mask) => match ranged::key_runs(bools(mask), t) {
                Some(runs) => (runs, dims(mask)[0], ranged::BLOCK),
                None => return Self::Dense,
            },
        };
        let shape = ranged::Shape {
            kv,
            rows,
            s,
            t,
            d,
            mask_batches,
            block,
        };
        let density = shape.density(&runs, b * kv);
        let kept_bytes = (density * dense_bytes as f64) as usize;
        if kept_bytes >= RECOMPUTE_MIN_BYTES {
            Self::Ranged {
                runs,
                shape,
                keep: false,
            }
        } else if density <= RANGED_MAX_DENSITY {
            Self::Ranged {
                runs,
                shape,
                keep: true,
            }
        } else {
            Self::Dense
        }
    }
}

/// What the backward pass needs of the forward's softmax: the dense probabilities, or each block's.
#[derive(Clone, Debug)]
enum Probabilities {
    Dense(FlexTensor),
    Ranged(Vec<KeyRun>, ranged::Shape, Vec<Vec<ranged::Block>>),
}

/// `(out [B, H, S, D], probabilities)` from the grouped query `qg: [B, KV, G * S, D]` and contiguous `k`, `v`.
fn forward(
    qg: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    mask: Option<&FlexTensor>,
    method: &Method,
    scale: f32,
    [h, s]: [usize; 2],
) -> (FlexTensor, Probabilities) {
    let b = dims(qg)[0];
    let d = dims(v)[3];
    match method {
        Method::Dense => {
            let mut p = matmul(qg.clone(), k.transpose(2, 3));
            softmax_rows(&mut p, mask, scale, s);
            let out = matmul(p.clone(), v.clone());
            (
                out.reshape(Shape::from(vec![b, h, s, d])),
                Probabilities::Dense(p),
            )
        }
        Method::Ranged { runs, shape, keep } => {
            let (out, blocks) =
                ranged::forward(f32s(qg), f32s(k), f32s(v), runs, *shape, scale, *keep);
            (
                tensor(out, &[b, h, s, d]),
                Probabilities::Ranged(runs.clone(), *shape, blocks),
            )
        }
    }
}

/// In place on `scores: [B, KV, G * S, T]`: scale, mask, softmax over `T`.
fn softmax_rows(scores: &mut FlexTensor, mask: Option<&FlexTensor>, scale: f32, s: usize) {
    let [_, kv, gs, t]: [usize; 4] = dims(scores).try_into().expect("4D scores");
    let mask = mask.map(|m| (bools(m), dims(m)[0]));
    let data = scores.storage_mut::<f32>();
    data.par_chunks_mut(t)
        .enumerate()
        .with_min_len(rows_per_task(t))
        .for_each(|(row, xs)| {
            let m = mask.map(|(m, mb)| {
                let off = mask_row(row, kv * gs, s, t, mb);
                &m[off..off + t]
            });
            vectorized(
                #[inline(always)]
                || {
                    match m {
                        Some(m) => {
                            for (x, &masked) in xs.iter_mut().zip(m) {
                                *x = if masked != 0 {
                                    MASKED_SCORE
                                } else {
                                    *x * scale
                                };
                            }
                        }
                        None => xs.iter_mut().for_each(|x| *x *= scale),
                    }
                    let top = max(xs);
                    // Masked scores give exactly 0 here (unless the whole row is masked: then every score is the max).
                    for x in xs.iter_mut() {
                        *x = exp(*x - top);
                    }
                    let inv = 1.0 / sum(xs);
                    xs.iter_mut().for_each(|x| *x *= inv);
                },
            )
        });
}

/// In place on `dp: [B, KV, G * S, T]` (the gradient of the probabilities `p`): the gradient of the scores before
/// scaling, `scale * p * (dp - sum(p * dp))`, zero where masked.
fn softmax_backward_rows(
    dp: &mut FlexTensor,
    p: &FlexTensor,
    mask: Option<&FlexTensor>,
    scale: f32,
    s: usize,
) {
    let [_, kv, gs, t]: [usize; 4] = dims(dp).try_into().expect("4D scores");
    let mask = mask.map(|m| (bools(m), dims(m)[0]));
    let ps = f32s(p);
    let data = dp.storage_mut::<f32>();
    data.par_chunks_mut(t)
        .zip(ps.par_chunks(t))
        .enumerate()
        .with_min_len(rows_per_task(t))
        .for_each(|(row, (ds, pr))| {
            vectorized(
                #[inline(always)]
                || {
                    let dp = dot(ds, pr);
                    for (d, p) in ds.iter_mut().zip(pr) {
                        *d = scale * p * (*d - dp);
                    }
                    if let Some((m, mb)) = mask {
                        let off = mask_row(row, kv * gs, s, t, mb);
                        for (d, &m) in ds.iter_mut().zip(&m[off..off + t]) {
                            *d = if m != 0 { 0.0 } else { *d };
                        }
                    }
                },
            )
        });
}

/// What the backward pass keeps of a forward.
#[derive(Clone, Debug)]
struct Saved {
    qg: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    p: Probabilities,
    mask: Option<FlexTensor>,
    scale: f32,
    h: usize,
    s: usize,
}

/// `(dq [B, H, S, D], dk, dv)` for the output gradient `g: [B, H, S, D]`.
fn backward(saved: Saved, g: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let qdims = dims(&saved.qg);
    let d = qdims[3];
    let b = qdims[0];
    let gg = contiguous(g).reshape(Shape::from(qdims));
    match saved.p {
        Probabilities::Dense(p) => {
            let dv = matmul(p.transpose(2, 3), gg.clone());
            let mut dp = matmul(gg, saved.v.transpose(2, 3));
            softmax_backward_rows(&mut dp, &p, saved.mask.as_ref(), saved.scale, saved.s);
            let dq = matmul(dp.clone(), saved.k.clone())
                .reshape(Shape::from(vec![b, saved.h, saved.s, d]));
            let dk = matmul(dp.transpose(2, 3), saved.qg);
            (dq, dk, dv)
        }
        Probabilities::Ranged(runs, shape, blocks) => {
            let (dq, dk, dv) = ranged::backward(
                f32s(&saved.qg),
                f32s(&saved.k),
                f32s(&saved.v),
                f32s(&gg),
                &runs,
                &blocks,
                shape,
                saved.scale,
            );
            let kdims = dims(&saved.k);
            (
                tensor(dq, &[b, saved.h, saved.s, d]),
                tensor(dk, &kdims),
                tensor(dv, &kdims),
            )
        }
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let (dq, dk, dv) = backward(ops.state, g);
        for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

fn autodiff<C: CheckpointStrategy>(
    q: AdTensor,
    k: AdTensor,
    v: AdTensor,
    mask: Option<FlexTensor>,
    scale: f32,
    kv: usize,
) -> AdTensor {
    let [_, h, s, _]: [usize; 4] = dims(q.primitive()).try_into().expect("4D query");
    let (qp, qn) = q.into_parts();
    let (kp, kn) = k.into_parts();
    let (vp, vn) = v.into_parts();
    let qg = grouped(qp, kv);
    let (kp, vp) = (contiguous(kp), contiguous(vp));
    let t = dims(&kp)[2];
    let method = Method::choose(&qg, mask.as_ref(), [s, t]);
    let (out, p) = forward(&qg, &kp, &vp, mask.as_ref(), &method, scale, [h, s]);
    match AttentionBackward
        .prepare::<C>([qn, kn, vn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                qg,
                k: kp,
                v: vp,
                p,
                mask,
                scale,
                h,
                s,
            };
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 20_001) as f32 / 10_000.0 - 1.0
            })
            .collect()
    }

    /// `(out, dq, dk, dv)` of one method on `[b, h, s, d]` queries against `[b, kv, t, d]` keys.
    fn run(
        method: &Method,
        inputs: &[FlexTensor; 4],
        mask: Option<&FlexTensor>,
        [h, s]: [usize; 2],
    ) -> [Vec<f32>; 4] {
        let [qg, k, v, g] = inputs;
        let (out, p) = forward(qg, k, v, mask, method, 0.3, [h, s]);
        let saved = Saved {
            qg: qg.clone(),
            k: k.clone(),
            v: v.clone(),
            p,
            mask: mask.cloned(),
            scale: 0.3,
            h,
            s,
        };
        let (dq, dk, dv) = backward(saved, g.clone());
        [&out, &dq, &dk, &dv].map(|t| f32s(&contiguous((*t).clone())).to_vec())
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// The recomputing kernel gives the bits of the kernel that keeps its probabilities, and both match the dense
    /// product, with and without a causal mask and with grouped KV heads.
    #[test]
    fn recomputed_probabilities_give_the_kept_results_bit_for_bit() {
        let (b, h, kv, s, d) = (2, 4, 2, 77, 8);
        let t = s;
        let rows = (h / kv) * s;
        let qg = tensor(values(b * h * s * d, 1), &[b, kv, rows, d]);
        let k = tensor(values(b * kv * t * d, 2), &[b, kv, t, d]);
        let v = tensor(values(b * kv * t * d, 3), &[b, kv, t, d]);
        let g = tensor(values(b * h * s * d, 4), &[b, h, s, d]);
        let causal: Vec<bool> = (0..s * t).map(|i| i % t > i / t).collect();
        let causal = FlexTensor::from_data(burn::tensor::TensorData::new(
            causal,
            Shape::from(vec![1, 1, s, t]),
        ));
        for mask in [None, Some(&causal)] {
            let (runs, block) = match mask {
                None => (ranged::full_runs(s, t), ranged::UNMASKED_BLOCK),
                Some(m) => (
                    ranged::key_runs(bools(m), t).expect("causal rows are runs"),
                    ranged::BLOCK,
                ),
            };
            let shape = ranged::Shape {
                kv,
                rows,
                s,
                t,
                d,
                mask_batches: 1,
                block,
            };
            let ranged = |keep| Method::Ranged {
                runs: runs.clone(),
                shape,
                keep,
            };
            let inputs = [qg.clone(), k.clone(), v.clone(), g.clone()];
            let kept = run(&ranged(true), &inputs, mask, [h, s]);
            let recomputed = run(&ranged(false), &inputs, mask, [h, s]);
            let dense = run(&Method::Dense, &inputs, mask, [h, s]);
            for (i, name) in ["out", "dq", "dk", "dv"].iter().enumerate() {
                assert_eq!(kept[i], recomputed[i], "{name}, mask {}", mask.is_some());
                let diff = max_diff(&recomputed[i], &dense[i]);
                assert!(diff < 1e-5, "{name} against dense: {diff}");
            }
        }
    }

    #[test]
    fn large_probabilities_are_recomputed_and_small_ones_kept() {
        let method = |b: usize, s: usize| {
            let qg = tensor(vec![0.0; b * s * 4], &[b, 1, s, 4]);
            Method::choose(&qg, None, [s, s])
        };
        // 1 x 1024 x 1024 floats = 4 MiB: kept, dense.
        assert!(matches!(method(1, 1024), Method::Dense));
        // 8 x 1024 x 1024 floats = 32 MiB: recomputed.
        assert!(matches!(
            method(8, 1024),
            Method::Ranged { keep: false, .. }
        ));
    }
}
