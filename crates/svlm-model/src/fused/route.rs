//! Which kernel a tensor can take: its primitive on the Flex (CPU) backend, with or without autodiff, or none
//! (another backend or a dtype other than f32), in which case the caller runs the composition of Burn ops.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind, Flex,
    GradientCheckpointingStrategy,
};
use burn::tensor::{Bool, DType, Tensor};

/// An autodiff float tensor on Flex (its primitive does not depend on the checkpointing strategy).
pub(crate) type AdTensor = FloatTensor<Autodiff<Flex>>;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the fused kernels on or off for the whole process (on by default). Off, every op in [`crate::fused`]
/// runs its composition of Burn ops: what benchmarks compare against, and what other backends always run.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the fused kernels are on (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Where a float tensor's kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Flex without gradient tracking.
    Flex,
    /// Flex under autodiff with this checkpointing strategy.
    Autodiff(GradientCheckpointingStrategy),
}

// With a GPU backend compiled in, other dispatch variants exist; without, the catch-all arms are unreachable.
#[allow(unreachable_patterns)]
fn classify(d: &DispatchTensor) -> Option<Route> {
    match (&d.kind, d.autodiff) {
        (DispatchTensorKind::Flex(BackendTensor::Float(_)), DispatchAutodiffContext::Disabled) => {
            Some(Route::Flex)
        }
        (DispatchTensorKind::Autodiff(inner), DispatchAutodiffContext::Enabled(s)) => {
            match &**inner {
                DispatchTensorKind::Flex(BackendTensor::Autodiff(_)) => Some(Route::Autodiff(s)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether a tensor lives under autodiff (on any backend): a training forward, where gradients will flow back.
pub(crate) fn under_autodiff<const D: usize>(t: &Tensor<D>) -> bool {
    !matches!(
        t.clone().into_dispatch().autodiff,
        DispatchAutodiffContext::Disabled
    )
}

/// The route all of `tensors` share, if the fused kernels are on, they are f32 and all on one Flex route.
pub(crate) fn route<const D: usize>(tensors: &[&Tensor<D>]) -> Option<Route> {
    if !enabled() {
        return None;
    }
    let mut shared = None;
    for t in tensors {
        if t.dtype() != DType::F32 {
            return None;
        }
        let r = classify(&(*t).clone().into_dispatch())?;
        if shared.is_some_and(|s| s != r) {
            return None;
        }
        shared = Some(r);
    }
    shared
}

/// Whether an op on `t` (and tensors like it) runs a fused kernel here rather than the composition of Burn ops.
pub fn runs_fused<const D: usize>(t: &Tensor<D>) -> bool {
    route(&[t]).is_some()
}

/// The route of a tensor of another rank, to compare with [`route`]'s.
pub(crate) fn route_one<const D: usize>(t: &Tensor<D>) -> Option<Route> {
    route(&[t])
}

/// The Flex primitive of a tensor routed to [`Route::Flex`].
#[allow(unreachable_patterns)]
pub(crate) fn into_flex<const D: usize>(t: Tensor<D>) -> FlexTensor {
    match t.into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(p)) => p,
        _ => unreachable!("tensor was routed to Flex"),
    }
}

/// The autodiff primitive of a tensor routed to [`Route::Autodiff`].
#[allow(unreachable_patterns)]
pub(crate) fn into_ad<const D: usize>(t: Tensor<D>) -> AdTensor {
    match t.into_dispatch().kind {
        DispatchTensorKind::Autodiff(inner) => match *inner {
            DispatchTensorKind::Flex(BackendTensor::Autodiff(p)) => p,
            _ => unreachable!("tensor was routed to autodiff Flex"),
        },
        _ => unreachable!("tensor was routed to autodiff Flex"),
    }
}

pub(crate) fn from_flex<const D: usize>(p: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(p)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

pub(crate) fn from_ad<const D: usize>(p: AdTensor, s: GradientCheckpointingStrategy) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(
            BackendTensor::Autodiff(p),
        ))),
        autodiff: DispatchAutodiffContext::Enabled(s),
    })
}

/// The Flex primitive of a boolean tensor (bools are plain Flex tensors under autodiff too), or `None` elsewhere.
#[allow(unreachable_patterns)]
pub(crate) fn bool_into_flex<const D: usize>(t: Tensor<D, Bool>) -> Option<FlexTensor> {
    match t.into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Bool(p)) => Some(p),
        _ => None,
    }
}

/// Calls `f::<C>(args)` with the checkpointing strategy type `C` that a [`GradientCheckpointingStrategy`] names.
macro_rules! with_strategy {
    ($s:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $s {
            burn::backend::GradientCheckpointingStrategy::Disabled => $f::<
                burn::backend::autodiff::checkpoint::strategy::NoCheckpointing,
            >($($arg),*),
            burn::backend::GradientCheckpointingStrategy::Balanced => $f::<
                burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing,
            >($($arg),*),
        }
    };
}
pub(crate) use with_strategy;
