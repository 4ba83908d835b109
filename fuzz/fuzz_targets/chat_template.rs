//! Chat templates from model folders (`svlm_processor::chat::ChatTemplate`): compiled, then rendered for a turn with
//! an image and an answer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    if let Ok(template) = svlm_processor::chat::ChatTemplate::new(&source) {
        let messages = [
            svlm_processor::chat::ChatMessage::user_with_images(1, "How far?"),
            svlm_processor::chat::ChatMessage::text("assistant", "1 m."),
        ];
        let _ = template.render(&messages, true, &svlm_processor::SpecialTokens::default());
    }
});
