//! Float depth TIFFs in metres (`svlm_world::depth_from_tiff`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = svlm_world::depth_from_tiff(data, std::path::Path::new("frame.depth.tiff"));
});
