//! GELU with the tanh approximation (`gelu_pytorch_tanh`, SigLIP's activation),
//! `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: one pass forward, one pass backward.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, activation};
use rayon::prelude::*;

use super::kernel::{MIN_TASK, contiguous, dims, exp, f32s, tensor, vectorized};
use super::route::{AdTensor, Route, from_ad, from_flex, into_ad, into_flex, route, with_strategy};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CUBIC: f32 = 0.044_715;

/// GELU, tanh approximation, elementwise.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match route(&[&x]) {
        Some(Route::Flex) => from_flex(forward(&contiguous(into_flex(x)))),
        Some(Route::Autodiff(s)) => from_ad(with_strategy!(s, autodiff(into_ad(x))), s),
        None => reference(x),
    }
}

/// The composition of Burn ops that [`gelu_tanh`] computes in one kernel.
pub fn reference<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activation::gelu_approximate(x)
}

/// `tanh(u)` through `e^(2u)`: exact to a few 1e-8 absolute, saturating to +-1 without overflow.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * u) + 1.0)
}

fn forward(x: &FlexTensor) -> FlexTensor {
    let xs = f32s(x);
    let mut y = vec![0.0f32; xs.len()];
    y.par_chunks_mut(MIN_TASK)
        .zip(xs.par_chunks(MIN_TASK))
        .for_each(|(yc, xc)| {
            vectorized(
                #[inline(always)]
                || {
                    for (y, &x) in yc.iter_mut().zip(xc) {
                        let t = tanh(SQRT_2_OVER_PI * (x + CUBIC * x * x * x));
                        *y = 0.5 * x * (1.0 + t);
                    }
                },
            )
        });
    tensor(y, &dims(x))
}

/// `dx` for the output gradient `g`.
fn backward(x: &FlexTensor, g: &FlexTensor) -> FlexTensor {
    let (xs, gs) = (f32s(x), f32s(g));
    let mut dx = vec![0.0f32; xs.len()];
    dx.par_chunks_mut(MIN_TASK)
        .zip(xs.par_chunks(MIN_TASK))
        .zip(gs.par_chunks(MIN_TASK))
        .for_each(|((dc, xc), gc)| {
            vectorized(
                #[inline(always)]
                || {
                    for ((d, &x), &g) in dc.iter_mut().zip(xc).zip(gc) {
                        let x2 = x * x;
                        let t = tanh(SQRT_2_OVER_PI * (x + CUBIC * x2 * x));
                        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x2);
                        *d = g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
                    }
                },
            )
        });
    tensor(dx, &dims(x))
}

#[derive(Debug)]
struct GeluTanhBackward;

impl Backward<Flex, 1> for GeluTanhBackward {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node {
            grads.register::<Flex>(node.id, backward(&ops.state, &g));
        }
    }
}

fn autodiff<C: CheckpointStrategy>(x: AdTensor) -> AdTensor {
    let (xp, xn) = x.into_parts();
    let xp = contiguous(xp);
    match GeluTanhBackward
        .prepare::<C>([xn])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = forward(&xp);
            prep.finish(xp, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(&xp)),
    }
}
