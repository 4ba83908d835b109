//! Contiguous f32 views of Flex tensors and new tensors from vectors: what every kernel here reads and writes.

use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};

/// `t` with a contiguous layout (a copy only if it is a strided view).
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of a contiguous f32 tensor, in row-major order.
pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("fused kernels take contiguous f32 tensors")
}

/// The bytes (0 = false) of a contiguous boolean tensor, in row-major order.
pub(crate) fn bools(t: &FlexTensor) -> &[u8] {
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .expect("fused kernels take contiguous masks");
    &t.storage::<u8>()[start..end]
}

pub(crate) fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

/// A new contiguous f32 tensor of `shape` holding `values`.
pub(crate) fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(shape.to_vec())))
}

/// Rows of at least this many elements per rayon task, so small tensors stay on one thread.
pub(crate) const MIN_TASK: usize = 16 * 1024;

/// Rows per rayon task for rows of `width` elements.
pub(crate) fn rows_per_task(width: usize) -> usize {
    MIN_TASK.div_ceil(width.max(1))
}
