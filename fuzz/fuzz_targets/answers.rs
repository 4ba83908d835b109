//! The answer parsers (numbers with units, ranges, yes/no, choices, clock directions, angles).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let options = ["red cube".to_string(), "blue ball".to_string()];
    let _ = svlm_answers::parse_length(&text);
    let _ = svlm_answers::parse_yes_no(&text);
    let _ = svlm_answers::parse_choice(&text, &options);
    let _ = svlm_answers::parse_clock(&text);
    let _ = svlm_answers::parse_angle_degrees(&text);
});
