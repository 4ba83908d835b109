//! SwiGLU's gate, `silu(gate) * up`: one pass forward, one pass backward for both inputs.

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

/// `silu(gate) * up` for two tensors of one shape.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    if gate.dims() != up.dims() {
        return reference(gate, up);
    }
    match route(&[&gate, &up]) {
        Some(Route::Flex) => from_flex(forward(
            &contiguous(into_flex(gate)),
            &contiguous(into_flex(up)),
        )),
        Some(Route::Autodiff(s)) => {
            from_ad(with_strategy!(s, autodiff(into_ad(gate), into_ad(up))), s)
        }
        None => reference(gate, up),
    }
}

/// The composition of Burn ops that [`swiglu`] computes in one kernel.
pub fn reference<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    activation::silu(gate) * up
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

fn forward(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
    let (a, b) = (f32s(gate), f32s(up));
    let mut y = vec![0.0f32; a.len()];
    y.par_chunks_mut(MIN_TASK)
        .zip(a.par_chunks(MIN_TASK))
        .zip(b.par_chunks(MIN_TASK))
        .for_each(|((yc, ac), bc)| {
            vectorized(
                #[inline(always)]
                || {
                    for ((y, &a), &b) in yc.iter_mut().zip(ac).zip(bc) {
                        *y = a * sigmoid(a) * b;
                    }
                },
            )
        });
    tensor(y, &dims(gate))
}

/// `(d gate, d up)` for the output gradient `g`.
fn backward(gate: &FlexTensor, up: &FlexTensor, g: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let (a, b, g) = (f32s(gate), f32s(up), f32s(g));
    let mut da = vec![0.0f32; a.len()];
    let mut db = vec![0.0f32; a.len()];
    da.par_chunks_mut(MIN_TASK)
        .zip(db.par_chunks_mut(MIN_TASK))
        .zip(a.par_chunks(MIN_TASK))
        .zip(b.par_chunks(MIN_TASK))
        .zip(g.par_chunks(MIN_TASK))
        .for_each(|((((dac, dbc), ac), bc), gc)| {
            vectorized(
                #[inline(always)]
                || {
                    for ((((da, db), &a), &b), &g) in
                        dac.iter_mut().zip(dbc).zip(ac).zip(bc).zip(gc)
                    {
                        let s = sigmoid(a);
                        *db = g * a * s;
                        *da = g * b * s * (1.0 + a * (1.0 - s));
                    }
                },
            )
        });
    let shape = dims(gate);
    (tensor(da, &shape), tensor(db, &shape))
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    /// `gate`, `up`.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_gate, node_up] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (gate, up) = ops.state;
        let (dgate, dup) = backward(&gate, &up, &g);
        if let Some(node) = node_gate {
            grads.register::<Flex>(node.id, dgate);
        }
        if let Some(node) = node_up {
            grads.register::<Flex>(node.id, dup);
        }
    }
}

fn autodiff<C: CheckpointStrategy>(gate: AdTensor, up: AdTensor) -> AdTensor {
    let (gp, gn) = gate.into_parts();
    let (up, un) = up.into_parts();
    let (gp, up) = (contiguous(gp), contiguous(up));
    match SwigluBackward
        .prepare::<C>([gn, un])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = forward(&gp, &up);
            prep.finish((gp, up), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(&gp, &up)),
    }
}
