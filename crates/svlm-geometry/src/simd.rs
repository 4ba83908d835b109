//! Runtime dispatch of hot loops to the CPU's vector width.

/// Runs `f` compiled for the widest vector instructions of this CPU, picked at run time (AVX-512 or AVX2 on
/// x86-64; the baseline elsewhere). The crate is built for the x86-64 baseline (SSE2, two f64 lanes): plain loops
/// over slices inside `f`, and the `#[inline(always)]` helpers they call, are auto-vectorized at the wider width.
/// Results are the same bits at every width: the loops keep their operation order (no float reassociation, and
/// Rust never fuses a multiply and an add).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}
