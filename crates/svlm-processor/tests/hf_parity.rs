//! Parity with transformers 5.23 (PIL image backend) on the fixtures written by
//! `scripts/make_processor_fixtures.py`: token ids, decoded text, chat templates, image-token expansion, pixel
//! values (|diff| <= 1e-5), shapes, tile grids, batch padding.

use std::path::{Path, PathBuf};

use serde_json::Value;
use svlm_processor::{
    ChatMessage, ContentPart, ImageProcessor, PaddingSide, Processor, ProcessorError, Rgb8,
    Tokenizer, load_image,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn image(name: &str) -> Rgb8 {
    load_image(fixtures().join("images").join(name)).unwrap()
}

/// A `.npy` array: little-endian f32 or u8, C order.
struct Npy {
    shape: Vec<usize>,
    f32: Vec<f32>,
    u8: Vec<u8>,
}

fn read_npy(rel: &str) -> Npy {
    let bytes = std::fs::read(fixtures().join("reference").join(rel)).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{rel}");
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &bytes[start + header_len..];
    let mut out = Npy {
        shape,
        f32: vec![],
        u8: vec![],
    };
    if header.contains("'<f4'") {
        out.f32 = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
    } else if header.contains("'|u1'") {
        out.u8 = data.to_vec();
    } else {
        panic!("unsupported dtype in {rel}: {header}");
    }
    out
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let d = (a - e).abs();
        if d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= 1e-5,
        "{what}: max |diff| {} at {} (rust {}, hf {})",
        worst.0,
        worst.1,
        actual[worst.1],
        expected[worst.1]
    );
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    serde_json::from_value(v.clone()).unwrap()
}

fn processor(name: &str) -> Processor {
    Processor::from_dir(fixtures().join(name)).unwrap()
}

#[test]
fn tokenizer_ids_and_decoding_match_python() {
    let r = reference();
    for family in ["smolvlm", "llava"] {
        let p = processor(family);
        assert_eq!(
            p.tokenizer.vocab_size() as u64,
            r["vocab_size"][family].as_u64().unwrap()
        );
        for case in r["tokenizers"][family].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let got = p.tokenizer.encode(text, true).unwrap();
            assert_eq!(got, ids(&case["ids"]), "{family} {text:?}");
            assert_eq!(
                p.tokenizer.encode(text, false).unwrap(),
                ids(&case["ids_no_special"]),
                "{family} {text:?} without special tokens"
            );
            assert_eq!(
                p.tokenizer.decode(&got, false).unwrap(),
                case["decoded"].as_str().unwrap()
            );
            assert_eq!(
                p.tokenizer.decode(&got, true).unwrap(),
                case["decoded_skip_special"].as_str().unwrap()
            );
        }
        for (token, id) in r["special_ids"][family].as_object().unwrap() {
            assert_eq!(
                p.tokenizer.token_to_id(token),
                Some(id.as_u64().unwrap() as u32),
                "{token}"
            );
        }
    }
    let llava = processor("llava");
    assert_eq!(
        llava.tokenizer.bos_token_id(),
        llava.tokenizer.token_to_id("<s>")
    );
    assert_eq!(
        llava.tokenizer.pad_token_id(),
        llava.tokenizer.token_to_id("<pad>")
    );
}

#[test]
fn chats_with_images_match_python_for_both_families() {
    let r = reference();
    for family in ["smolvlm", "llava"] {
        let p = processor(family);
        for case in r["chats"][family].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let msgs = messages(&case["messages"]);
            let gen_prompt = case["add_generation_prompt"].as_bool().unwrap();
            let prompt = p.apply_chat_template(&msgs, gen_prompt).unwrap();
            assert_eq!(
                prompt,
                case["prompt"].as_str().unwrap(),
                "{name}: rendered prompt"
            );
            let imgs: Vec<Rgb8> = case["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| image(n.as_str().unwrap()))
                .collect();
            let out = p.process_chat(&msgs, &imgs, gen_prompt).unwrap();
            assert_eq!(
                out.prompt,
                case["expanded_prompt"].as_str().unwrap(),
                "{name}: expanded prompt"
            );
            assert_eq!(out.input_ids, ids(&case["input_ids"]), "{name}: input ids");
            assert_eq!(out.attention_mask, vec![1; out.input_ids.len()]);
            if let Some(shape) = case.get("pixel_shape") {
                // HF: Idefics3 [1, tiles, 3, H, W]; LLaVA [images, 3, H, W].
                let shape = usizes(shape);
                assert_eq!(
                    &shape[shape.len() - 4..],
                    &out.pixel_shape[..],
                    "{name}: pixel shape"
                );
            } else {
                assert_eq!(out.num_tiles(), 0, "{name}");
            }
            if let Some(rel) = case.get("pixel_values") {
                let expected = read_npy(rel.as_str().unwrap());
                assert_close(&out.pixel_values, &expected.f32, name);
            }
            if let Some(rel) = case.get("pixel_attention_mask") {
                let expected = read_npy(rel.as_str().unwrap());
                assert_eq!(
                    out.pixel_attention_mask.as_deref(),
                    Some(&expected.u8[..]),
                    "{name}: mask"
                );
            }
        }
    }
}

#[test]
fn image_processors_match_python_pixels_shapes_and_tiles() {
    let r = reference();
    let mut compared = 0;
    for (name, cases) in r["image_processors"].as_object().unwrap() {
        let path = fixtures()
            .join("image_processors")
            .join(name)
            .join("preprocessor_config.json");
        let config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let ip = ImageProcessor::from_config(&path, &config).unwrap();
        for case in cases.as_array().unwrap() {
            let img = image(case["image"].as_str().unwrap());
            let expected = read_npy(case["pixel_values"].as_str().unwrap());
            let what = format!("{name} {}", case["image"]);
            let shape = usizes(&case["shape"]);
            assert_eq!(expected.shape, shape);
            match &ip {
                ImageProcessor::Idefics3(p) => {
                    let out = p.preprocess(&img).unwrap();
                    assert_eq!(
                        &shape[1..],
                        &out.tiles.shape()[..],
                        "{what}: shape / tile count"
                    );
                    assert_eq!(vec![out.rows], usizes(&case["rows"]), "{what}: rows");
                    assert_eq!(vec![out.cols], usizes(&case["cols"]), "{what}: cols");
                    assert_close(&out.tiles.values, &expected.f32, &what);
                }
                ImageProcessor::ResizeCrop { processor, .. } => {
                    let out = processor.preprocess(&img).unwrap();
                    assert_eq!(&shape[..], &out.shape()[..], "{what}: shape");
                    assert_close(&out.values, &expected.f32, &what);
                }
                ImageProcessor::Qwen2Vl(_) => panic!("{what}: Qwen2-VL has its own cases"),
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 16);
}

#[test]
fn batches_pad_like_python() {
    let r = reference();
    for case in r["batches"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let family = if name.starts_with("smol") {
            "smolvlm"
        } else {
            "llava"
        };
        let mut p = processor(family);
        let side = match case["padding_side"].as_str().unwrap() {
            "left" => PaddingSide::Left,
            _ => PaddingSide::Right,
        };
        p.tokenizer.set_padding_side(side);
        let prompts = case["prompts"].as_array().unwrap();
        let image_lists = case["images"].as_array().unwrap();
        let samples: Vec<_> = prompts
            .iter()
            .zip(image_lists)
            .map(|(text, names)| {
                let imgs: Vec<Rgb8> = names
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| image(n.as_str().unwrap()))
                    .collect();
                p.process(text.as_str().unwrap(), &imgs).unwrap()
            })
            .collect();
        let batch = p.collate(&samples).unwrap();
        let expected_ids: Vec<u32> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(ids)
            .collect();
        let expected_mask: Vec<u32> = case["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(ids)
            .collect();
        assert_eq!(batch.input_ids, expected_ids, "{name}: ids");
        assert_eq!(
            batch.attention_mask, expected_mask,
            "{name}: attention mask"
        );
        assert_eq!(
            batch.pixel_shape,
            usizes(&case["pixel_shape"]),
            "{name}: pixel shape"
        );
        if let Some(rel) = case.get("pixel_values") {
            assert_close(
                &batch.pixel_values,
                &read_npy(rel.as_str().unwrap()).f32,
                name,
            );
        }
        if let Some(rel) = case.get("pixel_attention_mask") {
            let expected = read_npy(rel.as_str().unwrap());
            assert_eq!(
                batch.pixel_attention_mask.as_deref(),
                Some(&expected.u8[..]),
                "{name}: mask"
            );
            // The shorter sample's missing tile is padding.
            assert!(expected.u8.contains(&0));
        }
    }
}

#[test]
fn image_count_mismatch_is_an_error() {
    let p = processor("smolvlm");
    let err = p
        .process("<image> and <image>", &[image("gray.png")])
        .unwrap_err();
    assert!(err.to_string().contains("2 image token"), "{err}");
    let msgs = vec![ChatMessage::new("user", vec![ContentPart::Image])];
    assert!(p.process_chat(&msgs, &[], true).is_err());
}

// ---- bad inputs --------------------------------------------------------------------------------------------

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
}

#[test]
fn corrupt_image_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.png");
    let mut bytes = std::fs::read(fixtures().join("images/astronaut.png")).unwrap();
    bytes.truncate(200);
    std::fs::write(&path, &bytes).unwrap();
    let err = load_image(&path).unwrap_err();
    assert!(matches!(err, ProcessorError::Image { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.png"), "{err}");
    let missing = load_image(dir.path().join("nope.jpg")).unwrap_err();
    assert!(missing.to_string().contains("nope.jpg"), "{missing}");
}

#[test]
fn missing_tokenizer_json_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("llava"), dir.path());
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = Processor::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn missing_config_key_is_an_error_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("smolvlm"), dir.path());
    let path = dir.path().join("processor_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["image_processor"]
        .as_object_mut()
        .unwrap()
        .remove("max_image_size");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    let err = Processor::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("processor_config.json") && err.contains("max_image_size"),
        "{err}"
    );

    config["image_processor"]["max_image_size"] = serde_json::json!({"longest_edge": 32});
    config.as_object_mut().unwrap().remove("image_seq_len");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    let err = Processor::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("processor_config.json") && err.contains("image_seq_len"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("llava"), dir.path());
    let path = dir.path().join("processor_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("patch_size");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    let err = Processor::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("processor_config.json") && err.contains("patch_size"),
        "{err}"
    );

    std::fs::write(&path, "{ not json").unwrap();
    let err = Processor::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("processor_config.json"), "{err}");
}

#[test]
fn real_size_configs_match_python_on_sampled_pixels() {
    let r = reference();
    let cases = r["real_size_image_processors"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["config"].as_str().unwrap();
        let path = fixtures()
            .join("image_processors")
            .join(name)
            .join("preprocessor_config.json");
        let config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let img = image(case["image"].as_str().unwrap());
        let what = format!("{name} {}", case["image"]);
        let shape = usizes(&case["shape"]);
        let values = match ImageProcessor::from_config(&path, &config).unwrap() {
            ImageProcessor::Idefics3(p) => {
                let out = p.preprocess(&img).unwrap();
                assert_eq!(
                    &shape[1..],
                    &out.tiles.shape()[..],
                    "{what}: shape / tile count"
                );
                assert_eq!(vec![out.rows], usizes(&case["rows"]), "{what}: rows");
                assert_eq!(vec![out.cols], usizes(&case["cols"]), "{what}: cols");
                out.tiles.values
            }
            ImageProcessor::ResizeCrop { processor, .. } => {
                let out = processor.preprocess(&img).unwrap();
                assert_eq!(&shape[..], &out.shape()[..], "{what}: shape");
                out.values
            }
            ImageProcessor::Qwen2Vl(_) => panic!("{what}: Qwen2-VL has its own cases"),
        };
        let sample: Vec<f32> = usizes(&case["sample_indices"])
            .iter()
            .map(|&i| values[i])
            .collect();
        let expected: Vec<f32> = case["sample_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_close(&sample, &expected, &what);
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let abs_sum: f64 = values.iter().map(|&v| f64::from(v).abs()).sum();
        let (ref_sum, ref_abs) = (
            case["sum"].as_f64().unwrap(),
            case["abs_sum"].as_f64().unwrap(),
        );
        assert!(
            (sum - ref_sum).abs() <= 1e-6 * ref_abs.max(1.0),
            "{what}: sum {sum} vs {ref_sum}"
        );
        assert!(
            (abs_sum - ref_abs).abs() <= 1e-6 * ref_abs.max(1.0),
            "{what}: |sum| {abs_sum} vs {ref_abs}"
        );
    }
}

#[test]
fn tokenizer_trained_and_saved_by_rust_loads_identically_in_transformers() {
    let r = reference();
    let case = &r["rust_trained_tokenizer"];
    let dir = fixtures().join("rust_trained_tokenizer");
    let tok = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(
        tok.vocab_size() as u64,
        case["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(
        tok.pad_token_id().map(u64::from),
        case["pad_token_id"].as_u64()
    );
    assert_eq!(
        tok.eos_token_id().map(u64::from),
        case["eos_token_id"].as_u64()
    );
    assert_eq!(
        tok.bos_token_id().map(u64::from),
        case["bos_token_id"].as_u64()
    );
    let template = svlm_processor::ChatTemplate::new(tok.chat_template().unwrap()).unwrap();
    let prompt = template
        .render(&messages(&case["messages"]), false, tok.special_tokens())
        .unwrap();
    assert_eq!(prompt, case["prompt"].as_str().unwrap());
    assert_eq!(
        tok.encode(&prompt, false).unwrap(),
        ids(&case["prompt_ids"])
    );
    for s in case["strings"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, true).unwrap(), ids(&s["ids"]), "{text:?}");
    }
}

#[test]
fn hub_layout_with_preprocessor_config_and_chat_template_json_loads_the_same() {
    // The SmolVLM / llava-hf repos on the hub keep the image processor in preprocessor_config.json and the template
    // in chat_template.json; transformers 5 writes processor_config.json["image_processor"] and chat_template.jinja.
    let r = reference();
    for family in ["smolvlm", "llava"] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixtures().join(family), dir.path());
        let path = dir.path().join("processor_config.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let image_config = config
            .as_object_mut()
            .unwrap()
            .remove("image_processor")
            .unwrap();
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        std::fs::write(
            dir.path().join("preprocessor_config.json"),
            serde_json::to_string(&image_config).unwrap(),
        )
        .unwrap();
        let jinja = dir.path().join("chat_template.jinja");
        let template = std::fs::read_to_string(&jinja).unwrap();
        std::fs::remove_file(&jinja).unwrap();
        std::fs::write(
            dir.path().join("chat_template.json"),
            serde_json::to_string(&serde_json::json!({ "chat_template": template })).unwrap(),
        )
        .unwrap();
        let p = Processor::from_dir(dir.path()).unwrap();
        let case = &r["chats"][family][0];
        let imgs: Vec<Rgb8> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| image(n.as_str().unwrap()))
            .collect();
        let out = p
            .process_chat(
                &messages(&case["messages"]),
                &imgs,
                case["add_generation_prompt"].as_bool().unwrap(),
            )
            .unwrap();
        assert_eq!(out.input_ids, ids(&case["input_ids"]), "{family}");

        // Without any processor_config.json the family follows the image processor, but the Idefics3 sequence
        // length is required.
        std::fs::remove_file(&path).unwrap();
        let loaded = Processor::from_dir(dir.path());
        match family {
            "smolvlm" => assert!(loaded.unwrap_err().to_string().contains("image_seq_len")),
            _ => assert!(
                loaded
                    .unwrap_err()
                    .to_string()
                    .contains("vision_feature_select_strategy")
            ),
        }
    }
}

#[test]
fn idefics3_decode_collapses_image_tags() {
    let p = processor("smolvlm");
    let r = reference();
    let case = &r["chats"]["smolvlm"][0];
    let text = p.decode(&ids(&case["input_ids"]), false).unwrap();
    assert!(
        !text.contains("<global-img>") && !text.contains("<row_"),
        "{text}"
    );
    assert!(
        text.contains("<fake_token_around_image><image><image>"),
        "{text}"
    );
}

#[test]
fn llava_token_count_follows_patch_grid_and_strategy() {
    let mut p = processor("llava");
    // llava-1.5: 336 / 14 = 24 -> 576 patches, CLS counted by num_additional_image_tokens = 1.
    assert_eq!(p.image_token_count_llava(336, 336), Some(576));
    assert_eq!(p.image_token_count_llava(224, 224), Some(256));
    if let svlm_processor::PromptStyle::Llava {
        vision_feature_select_strategy,
        ..
    } = &mut p.style
    {
        *vision_feature_select_strategy = "full".into();
    }
    assert_eq!(p.image_token_count_llava(336, 336), Some(577));
    let out = p
        .process("USER: <image>\nhi", &[image("gray.png")])
        .unwrap();
    let image_id = p.tokenizer.token_to_id("<image>").unwrap();
    assert_eq!(
        out.input_ids.iter().filter(|&&t| t == image_id).count(),
        257
    );
    assert_eq!(processor("smolvlm").image_token_count_llava(336, 336), None);
}

/// The reference of a Qwen-VL processor folder (`qwen2_vl`: Qwen2.5-VL's, `qwen3_vl`: Qwen3-VL's).
fn qwen_reference(folder: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(folder).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn grids(v: &Value) -> Vec<[usize; 3]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let g = usizes(g);
            [g[0], g[1], g[2]]
        })
        .collect()
}

#[test]
fn qwen2_vl_chats_with_images_of_different_sizes_match_python() {
    check_qwen_chats("qwen2_vl");
}

#[test]
fn qwen3_vl_chats_with_images_of_different_sizes_match_python() {
    check_qwen_chats("qwen3_vl");
}

fn check_qwen_chats(folder: &str) {
    let r = qwen_reference(folder);
    let p = processor(folder);
    assert_eq!(
        p.tokenizer.token_to_id("<|image_pad|>"),
        Some(r["image_token_id"].as_u64().unwrap() as u32)
    );
    let mut compared = 0;
    for case in r["chats"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let msgs = messages(&case["messages"]);
        let imgs: Vec<Rgb8> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| image(n.as_str().unwrap()))
            .collect();
        let gen_prompt = case["add_generation_prompt"].as_bool().unwrap();
        let prompt = p.apply_chat_template(&msgs, gen_prompt).unwrap();
        assert_eq!(prompt, case["prompt"].as_str().unwrap(), "{name}: prompt");
        let out = p.process_chat(&msgs, &imgs, gen_prompt).unwrap();
        assert_eq!(out.input_ids, ids(&case["input_ids"]), "{name}: input ids");
        if imgs.is_empty() {
            assert_eq!(out.num_tiles(), 0, "{name}");
            continue;
        }
        assert_eq!(
            out.image_grid_thw,
            grids(&case["image_grid_thw"]),
            "{name}: grids"
        );
        let shape = usizes(&case["pixel_shape"]);
        assert_eq!(
            out.pixel_shape,
            [shape[0], shape[1], 1, 1],
            "{name}: patches"
        );
        let rel = format!("../{folder}/{}", case["pixel_values"].as_str().unwrap());
        let expected = read_npy(&rel);
        assert_eq!(expected.shape, shape, "{name}");
        assert_close(&out.pixel_values, &expected.f32, name);
        compared += 1;
    }
    assert_eq!(compared, 3);
}

#[test]
fn qwen2_vl_batch_pads_left_and_concatenates_patches_like_python() {
    check_qwen_batch("qwen2_vl");
}

#[test]
fn qwen3_vl_batch_pads_left_and_concatenates_patches_like_python() {
    check_qwen_batch("qwen3_vl");
}

fn check_qwen_batch(folder: &str) {
    let r = qwen_reference(folder);
    let p = processor(folder);
    let case = &r["batch"];
    let names: Vec<&str> = case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let prompts = case["prompts"].as_array().unwrap();
    // The first prompt holds two images, the second one.
    let per_prompt = [&names[..2], &names[2..]];
    let samples: Vec<_> = prompts
        .iter()
        .zip(per_prompt)
        .map(|(text, imgs)| {
            let imgs: Vec<Rgb8> = imgs.iter().map(|n| image(n)).collect();
            p.process(text.as_str().unwrap(), &imgs).unwrap()
        })
        .collect();
    let batch = p.collate(&samples).unwrap();
    let rows: Vec<u32> = case["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(ids)
        .collect();
    assert_eq!(batch.input_ids, rows);
    let mask: Vec<u32> = case["attention_mask"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(ids)
        .collect();
    assert_eq!(batch.attention_mask, mask);
    assert_eq!(batch.image_grid_thw, grids(&case["image_grid_thw"]));
    assert_eq!(batch.pixel_shape, usizes(&case["pixel_shape"]));
}

#[test]
fn qwen2_vl_smart_resize_matches_python() {
    check_qwen_smart_resize("qwen2_vl", (14, 3136, 12544));
}

#[test]
fn qwen3_vl_smart_resize_matches_python() {
    // Qwen3-VL's hub folders name the fast image processor and `Qwen3VLProcessor`: both read as the Qwen2-VL ones.
    check_qwen_smart_resize("qwen3_vl", (16, 4096, 16384));
}

fn check_qwen_smart_resize(folder: &str, (patch, min_pixels, max_pixels): (usize, usize, usize)) {
    let r = qwen_reference(folder);
    let ImageProcessor::Qwen2Vl(ip) = processor(folder).image_processor else {
        panic!("{folder} must read as a Qwen2-VL image processor")
    };
    assert_eq!(
        (ip.patch_size, ip.min_pixels, ip.max_pixels),
        (patch, min_pixels, max_pixels)
    );
    for row in r["smart_resize"].as_array().unwrap() {
        let v = usizes(row);
        assert_eq!(
            ip.smart_resize(v[0], v[1]).unwrap(),
            (v[2], v[3]),
            "{} x {}",
            v[0],
            v[1]
        );
    }
}
