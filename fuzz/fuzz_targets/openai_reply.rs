//! Replies of an OpenAI-compatible chat server (`svlm_reason::llm::parse_reply`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = svlm_reason::llm::parse_reply("http://localhost/v1", &text);
});
