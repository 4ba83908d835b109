//! COCO compressed RLE strings and their masks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(counts) = svlm_world::coco::decode_rle_string(&text) {
        let _ = svlm_world::coco::rle_to_mask(&counts, 7, 5);
    }
});
