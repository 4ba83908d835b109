//! RMSNorm, `weight * x / sqrt(mean(x^2) + eps)` over the last dimension: one pass forward (keeping each row's
//! `1 / rms`), one pass backward.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::kernel::{contiguous, dims, f32s, rows_per_task, tensor};
use super::route::{
    AdTensor, Route, from_ad, from_flex, into_ad, into_flex, route, route_one, with_strategy,
};

/// RMSNorm of `x` over its last dimension, scaled by `weight` (`[d]`).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let r = route(&[&x]);
    if r.is_none() || r != route_one(&weight) {
        return reference(x, weight, eps);
    }
    match r {
        Some(Route::Flex) => {
            let (y, _) = forward(
                &contiguous(into_flex(x)),
                &contiguous(into_flex(weight)),
                eps,
            );
            from_flex(y)
        }
        Some(Route::Autodiff(s)) => from_ad(
            with_strategy!(s, autodiff(into_ad(x), into_ad(weight), eps)),
            s,
        ),
        None => unreachable!(),
    }
}

/// The composition of Burn ops that [`rms_norm`] computes in one kernel.
pub fn reference<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let variance = x.clone().square().mean_dim(D - 1);
    let normed = x * variance.add_scalar(eps).sqrt().recip();
    normed * weight.unsqueeze::<D>()
}

/// `(y, 1/rms per row)`.
fn forward(x: &FlexTensor, w: &FlexTensor, eps: f64) -> (FlexTensor, FlexTensor) {
    let shape = dims(x);
    let (xs, ws) = (f32s(x), f32s(w));
    let d = ws.len();
    let rows = xs.len() / d.max(1);
    let mut y = vec![0.0f32; xs.len()];
    let mut inv = vec![0.0f32; rows];
    let task = rows_per_task(d);
    y.par_chunks_mut(d)
        .zip(inv.par_iter_mut())
        .zip(xs.par_chunks(d))
        .with_min_len(task)
        .for_each(|((yr, ir), xr)| {
            let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let r = 1.0 / (ms + eps as f32).sqrt();
            *ir = r;
            for ((yv, xv), wv) in yr.iter_mut().zip(xr).zip(ws) {
                *yv = xv * r * wv;
            }
        });
    (tensor(y, &shape), tensor(inv, &[rows]))
}

/// `(dx, dw)` for the output gradient `g`.
fn backward(
    x: &FlexTensor,
    w: &FlexTensor,
    inv: &FlexTensor,
    g: &FlexTensor,
) -> (FlexTensor, FlexTensor) {
    let shape = dims(x);
    let (xs, ws, is, gs) = (f32s(x), f32s(w), f32s(inv), f32s(g));
    let d = ws.len();
    let mut dx = vec![0.0f32; xs.len()];
    let task = rows_per_task(d);
    dx.par_chunks_mut(d)
        .zip(xs.par_chunks(d))
        .zip(gs.par_chunks(d))
        .zip(is.par_iter())
        .with_min_len(task)
        .for_each(|(((dr, xr), gr), &r)| {
            let dot: f32 = xr.iter().zip(gr).zip(ws).map(|((x, g), w)| x * g * w).sum();
            let c = r * r * r * dot / d as f32;
            for (((dv, xv), gv), wv) in dr.iter_mut().zip(xr).zip(gr).zip(ws) {
                *dv = r * gv * wv - xv * c;
            }
        });
    let dw = xs
        .par_chunks(d)
        .zip(gs.par_chunks(d))
        .zip(is.par_iter())
        .with_min_len(task)
        .fold(
            || vec![0.0f32; d],
            |mut acc, ((xr, gr), &r)| {
                for ((a, x), g) in acc.iter_mut().zip(xr).zip(gr) {
                    *a += g * x * r;
                }
                acc
            },
        )
        .reduce(
            || vec![0.0f32; d],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    (tensor(dx, &shape), tensor(dw, &[d]))
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    /// `x`, `weight`, `1/rms` per row.
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, w, inv) = ops.state;
        let (dx, dw) = backward(&x, &w, &inv, &g);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

fn autodiff<C: CheckpointStrategy>(x: AdTensor, w: AdTensor, eps: f64) -> AdTensor {
    let (xp, xn) = x.into_parts();
    let (wp, wn) = w.into_parts();
    let (xp, wp) = (contiguous(xp), contiguous(wp));
    match RmsNormBackward
        .prepare::<C>([xn, wn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, inv) = forward(&xp, &wp, eps);
            prep.finish((xp, wp, inv), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(&xp, &wp, eps).0),
    }
}
