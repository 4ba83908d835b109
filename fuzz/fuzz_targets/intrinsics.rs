//! An RGB-D folder's `intrinsics.json` (`svlm_world::parse_intrinsics`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = svlm_world::parse_intrinsics(text, std::path::Path::new("intrinsics.json"));
    }
});
