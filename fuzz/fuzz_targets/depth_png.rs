//! 16-bit depth PNGs in millimetres (`svlm_world::depth_from_png`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = svlm_world::depth_from_png(data, std::path::Path::new("frame.depth.png"));
});
