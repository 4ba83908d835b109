//! Depth `.npy` files (`svlm_world::npy::parse_npy`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = svlm_world::npy::parse_npy(data);
});
