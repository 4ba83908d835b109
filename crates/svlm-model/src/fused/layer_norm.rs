//! LayerNorm over the last dimension with biased variance (`torch.nn.LayerNorm`),
//! `(x - mean) / sqrt(var + eps) * weight + bias`: one pass forward (keeping each row's mean and `1 / std`), one
//! pass backward.

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

/// LayerNorm of `x` over its last dimension, scaled by `weight` and shifted by `bias` (both `[d]`).
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    let r = route(&[&x]);
    if r.is_none() || r != route_one(&weight) || r != route_one(&bias) {
        return reference(x, weight, bias, eps);
    }
    match r {
        Some(Route::Flex) => {
            let stats = Stats::of(&contiguous(into_flex(x)), eps);
            let (w, b) = (contiguous(into_flex(weight)), contiguous(into_flex(bias)));
            from_flex(stats.apply(&w, &b))
        }
        Some(Route::Autodiff(s)) => from_ad(
            with_strategy!(s, autodiff(into_ad(x), into_ad(weight), into_ad(bias), eps)),
            s,
        ),
        None => unreachable!(),
    }
}

/// The composition of Burn ops that [`layer_norm`] computes in one kernel.
pub fn reference<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    let mean = x.clone().mean_dim(D - 1);
    let centered = x - mean;
    let variance = centered.clone().square().mean_dim(D - 1);
    let normed = centered * variance.add_scalar(eps).sqrt().recip();
    normed * weight.unsqueeze::<D>() + bias.unsqueeze::<D>()
}

/// The input and its per-row mean and `1 / sqrt(var + eps)`: what the output and the backward pass need.
#[derive(Clone, Debug)]
struct Stats {
    x: FlexTensor,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Stats {
    fn of(x: &FlexTensor, eps: f64) -> Self {
        let shape = dims(x);
        let d = shape.last().copied().unwrap_or(1).max(1);
        let xs = f32s(x);
        let rows = xs.len() / d;
        let mut mean = vec![0.0f32; rows];
        let mut inv_std = vec![0.0f32; rows];
        mean.par_iter_mut()
            .zip(inv_std.par_iter_mut())
            .zip(xs.par_chunks(d))
            .with_min_len(rows_per_task(d))
            .for_each(|((m, r), xr)| {
                let mu = xr.iter().sum::<f32>() / d as f32;
                let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
                *m = mu;
                *r = 1.0 / (var + eps as f32).sqrt();
            });
        Self {
            x: x.clone(),
            mean,
            inv_std,
        }
    }

    fn d(&self) -> usize {
        dims(&self.x).last().copied().unwrap_or(1).max(1)
    }

    /// `(x - mean) * inv_std * w + b`.
    fn apply(&self, w: &FlexTensor, b: &FlexTensor) -> FlexTensor {
        let d = self.d();
        let (xs, ws, bs) = (f32s(&self.x), f32s(w), f32s(b));
        let mut y = vec![0.0f32; xs.len()];
        y.par_chunks_mut(d)
            .zip(xs.par_chunks(d))
            .zip(self.mean.par_iter().zip(&self.inv_std))
            .with_min_len(rows_per_task(d))
            .for_each(|((yr, xr), (&mu, &r))| {
                for (((y, &x), &w), &b) in yr.iter_mut().zip(xr).zip(ws).zip(bs) {
                    *y = (x - mu) * r * w + b;
                }
            });
        tensor(y, &dims(&self.x))
    }

    /// `(dx, dw, db)` for the output gradient `g`.
    fn backward(&self, w: &FlexTensor, g: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
        let d = self.d();
        let (xs, ws, gs) = (f32s(&self.x), f32s(w), f32s(g));
        let mut dx = vec![0.0f32; xs.len()];
        let task = rows_per_task(d);
        dx.par_chunks_mut(d)
            .zip(xs.par_chunks(d))
            .zip(gs.par_chunks(d))
            .zip(self.mean.par_iter().zip(&self.inv_std))
            .with_min_len(task)
            .for_each(|(((dr, xr), gr), (&mu, &r))| {
                // With xhat = (x - mean) * r and h = g * w: dx = r * (h - mean(h) - xhat * mean(h * xhat)).
                let (mut sum_h, mut sum_hx) = (0.0f32, 0.0f32);
                for ((&x, &g), &w) in xr.iter().zip(gr).zip(ws) {
                    let h = g * w;
                    sum_h += h;
                    sum_hx += h * (x - mu) * r;
                }
                let (mean_h, mean_hx) = (sum_h / d as f32, sum_hx / d as f32);
                for (((dv, &x), &g), &w) in dr.iter_mut().zip(xr).zip(gr).zip(ws) {
                    let xhat = (x - mu) * r;
                    *dv = r * (g * w - mean_h - xhat * mean_hx);
                }
            });
        let (dw, db) = xs
            .par_chunks(d)
            .zip(gs.par_chunks(d))
            .zip(self.mean.par_iter().zip(&self.inv_std))
            .with_min_len(task)
            .fold(
                || (vec![0.0f32; d], vec![0.0f32; d]),
                |(mut dw, mut db), ((xr, gr), (&mu, &r))| {
                    for (((a, c), &x), &g) in dw.iter_mut().zip(db.iter_mut()).zip(xr).zip(gr) {
                        *a += g * (x - mu) * r;
                        *c += g;
                    }
                    (dw, db)
                },
            )
            .reduce(
                || (vec![0.0f32; d], vec![0.0f32; d]),
                |(mut a, mut b), (c, e)| {
                    a.iter_mut().zip(&c).for_each(|(x, y)| *x += y);
                    b.iter_mut().zip(&e).for_each(|(x, y)| *x += y);
                    (a, b)
                },
            );
        (
            tensor(dx, &dims(&self.x)),
            tensor(dw, &[d]),
            tensor(db, &[d]),
        )
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    /// The input's statistics and the weight.
    type State = (Stats, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (stats, w) = ops.state;
        let (dx, dw, db) = stats.backward(&w, &g);
        for (node, grad) in [(node_x, dx), (node_w, dw), (node_b, db)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

fn autodiff<C: CheckpointStrategy>(x: AdTensor, w: AdTensor, b: AdTensor, eps: f64) -> AdTensor {
    let (xp, xn) = x.into_parts();
    let (wp, wn) = w.into_parts();
    let (bp, bn) = b.into_parts();
    let (xp, wp, bp) = (contiguous(xp), contiguous(wp), contiguous(bp));
    let stats = Stats::of(&xp, eps);
    let y = stats.apply(&wp, &bp);
    match LayerNormBackward
        .prepare::<C>([xn, wn, bn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((stats, wp), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}
