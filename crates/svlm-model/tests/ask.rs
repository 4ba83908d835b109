//! One chat turn end to end, as `svlm ask` runs it: svlm-processor (chat template, image
//! splitting or patches, image tokens) -> image features -> KV-cache greedy generation with stop tokens,
//! against `Idefics3Processor` / `Qwen2_5_VLProcessor` / `Qwen3VLProcessor` + `generate` in transformers
//! (`scripts/make_fixtures.py`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use svlm_model::generate::{GenerationImages, GenerationOptions, generate, stop_tokens_of};
use svlm_model::{ImagePatches, load_pretrained};
use svlm_processor::ChatMessage;
use svlm_processor::processor::{ProcessedInputs, Processor};

/// A fixture model's folder, its transformers reference (`ask_reference.json`) and the processor's inputs for the
/// reference's question about `photo.png`.
struct Turn {
    dir: PathBuf,
    reference: serde_json::Value,
    processor: Processor,
    inputs: ProcessedInputs,
}

impl Turn {
    fn of(fixture: &str) -> Self {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dir = fixtures.join(fixture);
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("ask_reference.json")).unwrap())
                .unwrap();
        let processor = Processor::from_dir(&dir).unwrap();
        let image = svlm_processor::image_ops::load_image(fixtures.join("photo.png")).unwrap();
        let question = reference["question"].as_str().unwrap();
        let inputs = processor
            .process_chat(
                &[ChatMessage::user_with_images(1, question)],
                &[image],
                true,
            )
            .unwrap();
        Self {
            dir,
            reference,
            processor,
            inputs,
        }
    }
}

/// Token ids stored under `key` in a reference.
fn reference_ids(reference: &serde_json::Value, key: &str) -> Vec<u32> {
    reference[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn idefics3_chat_turn_matches_transformers() {
    let Turn {
        dir,
        reference,
        processor,
        inputs,
    } = Turn::of("idefics3");
    let ids = |key: &str| reference_ids(&reference, key);
    assert!(inputs.prompt.contains("<global-img>"));
    assert_eq!(inputs.input_ids, ids("input_ids"), "prompt ids");

    let device = Device::flex();
    let loaded = load_pretrained(&dir, &device).unwrap();
    let [tiles, c, h, w] = inputs.pixel_shape;
    let images = GenerationImages::from_host(
        inputs.pixel_values.clone(),
        [1, tiles, c, h, w],
        inputs.pixel_attention_mask.as_deref(),
        &device,
    )
    .unwrap();
    let mut stop_tokens = stop_tokens_of(&dir, &loaded.config).unwrap();
    stop_tokens.extend(processor.tokenizer.token_to_id("<end_of_utterance>"));
    let options = GenerationOptions {
        max_new_tokens: 12,
        stop_tokens,
        ..Default::default()
    };
    let tokens = generate(
        &loaded.model,
        std::slice::from_ref(&inputs.input_ids),
        images,
        &options,
    )
    .unwrap();
    assert_eq!(tokens[0], ids("tokens"), "generated tokens");
}

#[test]
fn qwen2_5_vl_chat_turn_matches_transformers() {
    check_qwen_turn("qwen2_5_vl");
}

#[test]
fn qwen3_vl_chat_turn_matches_transformers() {
    check_qwen_turn("qwen3_vl");
}

/// A chat turn about the photo (one 1 x 4 x 10 patch grid, 10 image tokens) of a Qwen-VL fixture.
fn check_qwen_turn(fixture: &str) {
    let Turn {
        dir,
        reference,
        processor,
        inputs,
    } = Turn::of(fixture);
    let ids = |key: &str| reference_ids(&reference, key);
    assert_eq!(inputs.prompt.matches("<|image_pad|>").count(), 10);
    assert_eq!(inputs.input_ids, ids("input_ids"), "prompt ids");
    assert_eq!(inputs.image_grid_thw, vec![[1, 4, 10]]);

    let device = Device::flex();
    let loaded = load_pretrained(&dir, &device).unwrap();
    let [patches, dim, _, _] = inputs.pixel_shape;
    let images = GenerationImages {
        image_patches: Some(ImagePatches {
            pixel_values: burn::tensor::Tensor::from_data(
                burn::tensor::TensorData::new(inputs.pixel_values.clone(), [patches, dim]),
                &device,
            ),
            grid_thw: inputs.image_grid_thw.clone(),
        }),
        ..Default::default()
    };
    let options = GenerationOptions {
        max_new_tokens: 12,
        stop_tokens: processor
            .tokenizer
            .token_to_id("<|im_end|>")
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let tokens = generate(
        &loaded.model,
        std::slice::from_ref(&inputs.input_ids),
        images,
        &options,
    )
    .unwrap();
    assert_eq!(tokens[0], ids("tokens"), "generated tokens");
    assert_eq!(
        processor.decode(&tokens[0], true).unwrap(),
        reference["answer"].as_str().unwrap()
    );
}
