//! Rotary position embedding, `x * cos + rotate_half(x) * sin` with `rotate_half(x) = cat(-x2, x1)`, in one pass
//! each way. `cos` and `sin` are constants (they come from integer positions): no gradient flows to them.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::kernel::{contiguous, dims, f32s, rows_per_task, tensor};
use super::route::{AdTensor, Route, from_ad, from_flex, into_ad, into_flex, route, with_strategy};

/// RoPE of `x: [B, H, S, D]` with `cos, sin: [B, S, D]` (`D` even).
pub fn rope(x: Tensor<4>, cos: &Tensor<3>, sin: &Tensor<3>) -> Tensor<4> {
    let [b, _, s, d] = x.dims();
    let r = route(&[&x]);
    if r.is_none()
        || d % 2 != 0
        || cos.dims() != [b, s, d]
        || sin.dims() != [b, s, d]
        || route(&[cos, sin]) != r
    {
        return reference(x, cos, sin);
    }
    match r {
        Some(Route::Flex) => {
            let (c, sn) = (
                contiguous(into_flex(cos.clone())),
                contiguous(into_flex(sin.clone())),
            );
            from_flex(apply(&contiguous(into_flex(x)), &c, &sn, false))
        }
        Some(Route::Autodiff(st)) => {
            let (c, sn) = (
                contiguous(into_ad(cos.clone()).into_primitive()),
                contiguous(into_ad(sin.clone()).into_primitive()),
            );
            from_ad(with_strategy!(st, autodiff(into_ad(x), c, sn)), st)
        }
        None => unreachable!(),
    }
}

/// The composition of Burn ops that [`rope`] computes in one kernel.
pub fn reference(x: Tensor<4>, cos: &Tensor<3>, sin: &Tensor<3>) -> Tensor<4> {
    let [b, h, s, d] = x.dims();
    let half = d / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..s, half..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let cos = cos.clone().unsqueeze_dim::<4>(1);
    let sin = sin.clone().unsqueeze_dim::<4>(1);
    x * cos + rotated * sin
}

/// Forward (`transpose = false`) or its adjoint, the gradient of `x` given the output's (`transpose = true`).
fn apply(x: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor, transpose: bool) -> FlexTensor {
    let shape = dims(x);
    let (h, s, d) = (shape[1], shape[2], shape[3]);
    let half = d / 2;
    let (xs, cs, ss) = (f32s(x), f32s(cos), f32s(sin));
    let mut y = vec![0.0f32; xs.len()];
    y.par_chunks_mut(d)
        .zip(xs.par_chunks(d))
        .enumerate()
        .with_min_len(rows_per_task(d))
        .for_each(|(row, (yr, xr))| {
            let (bi, si) = (row / (h * s), row % s);
            let off = (bi * s + si) * d;
            let (c, sn) = (&cs[off..off + d], &ss[off..off + d]);
            for i in 0..half {
                let (x1, x2) = (xr[i], xr[i + half]);
                if transpose {
                    yr[i] = x1 * c[i] + x2 * sn[i + half];
                    yr[i + half] = x2 * c[i + half] - x1 * sn[i];
                } else {
                    yr[i] = x1 * c[i] - x2 * sn[i];
                    yr[i + half] = x2 * c[i + half] + x1 * sn[i + half];
                }
            }
        });
    tensor(y, &shape)
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    /// `cos`, `sin`.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (cos, sin) = ops.state;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, apply(&g, &cos, &sin, true));
        }
    }
}

fn autodiff<C: CheckpointStrategy>(x: AdTensor, cos: FlexTensor, sin: FlexTensor) -> AdTensor {
    let (xp, xn) = x.into_parts();
    let xp = contiguous(xp);
    let y = apply(&xp, &cos, &sin, false);
    match RopeBackward.prepare::<C>([xn]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((cos, sin), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}
