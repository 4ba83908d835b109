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

/// Builders of [`gemm`]'s operands.
pub(crate) struct Gemm;

/// A row-major `[m, n]` destination.
pub(crate) struct GemmDst<'a> {
    data: &'a mut [f32],
    m: usize,
    n: usize,
}

/// An `[m, n]` view of a slice: element `(i, j)` at `data[i * rs + j * cs]` (a transpose swaps the strides).
#[derive(Clone, Copy)]
pub(crate) struct GemmSrc<'a> {
    data: &'a [f32],
    m: usize,
    n: usize,
    rs: usize,
    cs: usize,
}

impl Gemm {
    pub(crate) fn rows(data: &mut [f32], m: usize, n: usize) -> GemmDst<'_> {
        GemmDst { data, m, n }
    }

    pub(crate) fn view(data: &[f32], m: usize, n: usize, rs: usize, cs: usize) -> GemmSrc<'_> {
        GemmSrc { data, m, n, rs, cs }
    }
}

impl GemmSrc<'_> {
    /// Whether every element of the view lies inside its slice.
    fn fits(&self) -> bool {
        self.m == 0
            || self.n == 0
            || (self.m - 1) * self.rs + (self.n - 1) * self.cs < self.data.len()
    }
}

/// `dst = a b`, or `dst += a b` when `accumulate`, single-threaded (callers run one product per task).
///
/// # Panics
/// If the shapes do not chain or a view reaches outside its slice.
pub(crate) fn gemm(dst: GemmDst<'_>, a: GemmSrc<'_>, b: GemmSrc<'_>, accumulate: bool) {
    let (m, n, k) = (dst.m, dst.n, a.n);
    assert!(
        a.m == m && b.m == k && b.n == n && dst.data.len() >= m * n && a.fits() && b.fits(),
        "gemm operands do not fit: dst [{m}, {n}], a [{}, {}], b [{}, {}]",
        a.m,
        a.n,
        b.m,
        b.n
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.data[..m * n].iter_mut().for_each(|x| *x = 0.0);
        }
        return;
    }
    // SAFETY: the assertion above keeps every element the product reads or writes inside its slice, and `dst`
    // is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Runs `f` compiled for the widest vector instructions of this CPU, picked at run time (AVX-512 or AVX2 + FMA on
/// x86-64; the baseline elsewhere): plain loops over slices inside `f`, with the helpers they call inlined, are
/// auto-vectorized at that width. The crate itself is built for the x86-64 baseline (SSE2), so without this the
/// kernels' loops run 4 lanes wide at most.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Lanes of the partial sums in [`sum`] and [`max`]: one AVX-512 register (two AVX2 ones).
const LANES: usize = 16;

/// Sum of `xs` over [`LANES`] partial sums (a sequential float sum cannot be vectorized: its order is fixed); the
/// same order every time, so results are deterministic.
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Dot product of two slices of one length, in the order of [`sum`].
#[inline(always)]
pub(crate) fn dot(xs: &[f32], ys: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let xc = xs.chunks_exact(LANES);
    let yc = ys.chunks_exact(LANES);
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in xc.zip(yc) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element of `xs` (`-inf` when empty), over [`LANES`] partial maxima.
#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// `e^x` in f32 within 2 ulp of the correctly rounded value, branch-free so that loops over slices vectorize
/// (libm's `expf` is a scalar call, and takes a slow path for results that underflow, such as masked attention
/// scores). `x < -87.34` gives 0 and `x > 88.72` gives infinity, as `expf` does up to denormals; NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer in f32 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.336_55, 88.722_83);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    // e^r on |r| <= ln(2)/2 by its Taylor series to degree 7 (truncation below 6e-9 relative).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // The integer k read from the bits of `shifted` (in [2^23, 2^24), where one unit is one ulp) rather than by a
    // float-to-int cast, whose saturation and NaN rules keep the loop from vectorizing. 2^k is split into two
    // factors so that k = 128 (results near f32::MAX) does not overflow the exponent field.
    let k = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let half = k >> 1;
    // Wrapping arithmetic (k is in [-126, 128] for every finite input): an overflow check would be a branch, and
    // the dev profile keeps overflow checks on.
    let scale_a = f32::from_bits((half.wrapping_add(127) as u32) << 23);
    let scale_b = f32::from_bits((k.wrapping_sub(half).wrapping_add(127) as u32) << 23);
    let y = p * scale_a * scale_b;
    let y = if x < -87.336_55 { 0.0 } else { y };
    if x > 88.722_83 { f32::INFINITY } else { y }
}

#[cfg(test)]
mod tests {
    use super::{Gemm, dot, exp, gemm, max, sum, vectorized};

    #[test]
    fn gemm_matches_the_naive_product_with_transposed_views_and_accumulation() {
        let (m, n, k) = (3, 5, 4);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        // b stored transposed: b[i][j] = bt[j * k + i]
        let bt: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let mut c = vec![1.0f32; m * n];
        gemm(
            Gemm::rows(&mut c, m, n),
            Gemm::view(&a, m, k, k, 1),
            Gemm::view(&bt, k, n, 1, k),
            true,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|l| a[i * k + l] * bt[j * k + l]).sum::<f32>();
                assert_eq!(c[i * n + j], want, "({i}, {j})");
            }
        }
    }

    #[test]
    #[should_panic(expected = "do not fit")]
    fn gemm_refuses_a_view_outside_its_slice() {
        let a = vec![0.0f32; 5];
        let mut c = vec![0.0f32; 4];
        gemm(
            Gemm::rows(&mut c, 2, 2),
            Gemm::view(&a, 2, 3, 3, 1),
            Gemm::view(&a, 3, 2, 2, 1),
            false,
        );
    }

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_correctly_rounded_value() {
        let mut worst = (0u32, 0.0f32);
        let mut x = -87.3f32;
        while x < 88.7 {
            let want = (x as f64).exp() as f32;
            let got = exp(x);
            let u = ulps(got, want);
            if u > worst.0 {
                worst = (u, x);
            }
            x += 0.000_731;
        }
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn lane_reductions_match_sequential_ones_at_every_tail_length() {
        for n in [0usize, 1, 7, 15, 16, 17, 31, 33, 100, 640] {
            let xs: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let ys: Vec<f32> = (0..n)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) / 3.0)
                .collect();
            let want_sum: f64 = xs.iter().map(|&x| f64::from(x)).sum();
            let want_dot: f64 = xs
                .iter()
                .zip(&ys)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            let want_max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let (s, d, m) = vectorized(
                #[inline(always)]
                || (sum(&xs), dot(&xs, &ys), max(&xs)),
            );
            assert!(
                (f64::from(s) - want_sum).abs() <= 1e-4 * (1.0 + want_sum.abs()),
                "sum of {n}"
            );
            assert!(
                (f64::from(d) - want_dot).abs() <= 1e-4 * (1.0 + want_dot.abs()),
                "dot of {n}"
            );
            assert_eq!(m, want_max, "max of {n}");
        }
        // The largest element wherever it sits, also in the tail.
        let mut xs = vec![0.0f32; 35];
        for at in [0, 15, 16, 31, 32, 34] {
            xs.iter_mut().for_each(|x| *x = -1.0);
            xs[at] = 2.5;
            assert_eq!(max(&xs), 2.5, "max at {at}");
        }
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1.0e30), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        let near_max = exp(88.7);
        assert!(near_max.is_finite() && ulps(near_max, (88.7f32 as f64).exp() as f32) <= 2);
    }
}
