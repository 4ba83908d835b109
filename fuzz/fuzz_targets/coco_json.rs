//! COCO `annotations.json` files.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(coco) = svlm_world::coco::CocoFile::parse(std::path::Path::new("annotations.json"), &text) {
        let _ = coco.image_by_stem("a");
    }
});
