//! Parity of SAM (preprocessing, image encoder, prompt encoder, mask decoder, multimask choice, post-processing)
//! with transformers 5 on the tiny random-weight model made by `scripts/make_segmenter_fixtures.py`, and the
//! loader's errors.

mod common;
use common::{Reference, fixtures, photo, values};

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use svlm_perception::Sam;
use svlm_processor::Rgb8;

/// The boxes of the fixture script, `[x0, y0, x1, y1]` in photo pixels.
const BOXES: [[f64; 4]; 4] = [
    [10.0, 5.0, 60.0, 50.0],
    [40.5, 10.25, 95.0, 63.0],
    [0.0, 0.0, 96.0, 64.0],
    [30.0, 20.0, 34.0, 26.0],
];

fn model_dir() -> PathBuf {
    fixtures().join("sam/tiny-sam")
}

fn reference() -> Reference {
    Reference::open(&fixtures().join("sam/reference.safetensors"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn load() -> Sam {
    Sam::load(&model_dir(), &Device::flex()).unwrap()
}

#[test]
fn preprocessing_and_boxes_match_sam_processor() {
    let sam = load();
    let reference = reference();
    let inputs = sam
        .processor
        .preprocess(&Rgb8::from_image(&photo()))
        .unwrap();
    let (expected, shape) = reference.floats("pixel_values");
    assert_eq!(vec![1, 3, inputs.pixels.height, inputs.pixels.width], shape);
    let size = |name: &str| {
        let v = reference.ints(name);
        (v[0] as usize, v[1] as usize)
    };
    assert_eq!(inputs.original_size, size("original_size"));
    assert_eq!(inputs.reshaped_size, size("reshaped_input_size"));
    let diff = max_abs_diff(&inputs.pixels.data, &expected);
    eprintln!("pixel_values max |diff| = {diff:e}");
    assert!(diff <= 1e-5, "pixel values differ by {diff}");

    let boxes: Vec<f32> = BOXES
        .iter()
        .flat_map(|b| sam.processor.box_to_input(*b, inputs.original_size))
        .map(|v| v as f32)
        .collect();
    let diff = max_abs_diff(&boxes, &reference.floats("input_boxes").0);
    assert!(diff <= 1e-5, "input boxes differ by {diff}");
}

#[test]
fn image_encoder_matches_layer_by_layer() {
    let sam = load();
    let reference = reference();
    let device = sam.device.clone();
    let pixels = reference.tensor::<4>("pixel_values", &device);
    let hidden = sam.model.vision_encoder.hidden_states(pixels.clone());
    assert_eq!(hidden.len(), 1 + sam.config.vision_config.num_hidden_layers);
    for (i, h) in hidden.into_iter().enumerate() {
        let (expected, shape) = reference.floats(&format!("vision_hidden_states.{i}"));
        assert_eq!(h.dims().to_vec(), shape, "hidden state {i}");
        let diff = max_abs_diff(&values(h), &expected);
        eprintln!("vision_hidden_states.{i} max |diff| = {diff:e}");
        assert!(diff <= 1e-4, "hidden state {i} differs by {diff}");
    }
    let embeddings = sam.model.image_embeddings(pixels);
    let (expected, shape) = reference.floats("image_embeddings");
    assert_eq!(embeddings.dims().to_vec(), shape);
    let diff = max_abs_diff(&values(embeddings), &expected);
    eprintln!("image_embeddings max |diff| = {diff:e}");
    assert!(diff <= 1e-4, "image embeddings differ by {diff}");
}

#[test]
fn prompt_encoder_matches() {
    let sam = load();
    let reference = reference();
    let device = sam.device.clone();
    let boxes = reference
        .tensor::<3>("input_boxes", &device)
        .reshape([4, 4]);
    let sparse = sam
        .model
        .prompt_encoder
        .embed_boxes(&sam.model.shared_image_embedding, boxes);
    let (expected, _) = reference.floats("sparse_embeddings");
    let diff = max_abs_diff(&values(sparse), &expected);
    eprintln!("sparse_embeddings max |diff| = {diff:e}");
    assert!(diff <= 1e-5, "sparse embeddings differ by {diff}");
    // The reference holds the dense embedding of one image.
    let dense = sam.model.prompt_encoder.dense_without_mask();
    let (expected, shape) = reference.floats("dense_embeddings");
    assert_eq!(dense.dims().to_vec(), shape);
    assert_eq!(values(dense), expected);
}

#[test]
fn mask_logits_and_iou_scores_match() {
    let sam = load();
    let reference = reference();
    let inputs = sam
        .processor
        .preprocess(&Rgb8::from_image(&photo()))
        .unwrap();
    let prediction = sam
        .predict(std::slice::from_ref(&inputs), &[BOXES.to_vec()])
        .unwrap();
    let (expected, shape) = reference.floats("pred_masks");
    assert_eq!(
        [&[1usize][..], &prediction.masks.dims()[..]].concat(),
        shape
    );
    let masks = values(prediction.masks);
    let diff = max_abs_diff(&masks, &expected);
    let noise = max_abs_diff(&expected, &reference.floats("pred_masks_f64").0);
    eprintln!(
        "pred_masks max |diff| = {diff:e} (transformers float32 vs float64: {noise:e}, logits std 3)"
    );
    assert!(diff <= 1e-4, "mask logits differ by {diff}");
    let (expected, _) = reference.floats("iou_scores");
    let diff = max_abs_diff(&values(prediction.iou_scores), &expected);
    eprintln!("iou_scores max |diff| = {diff:e}");
    assert!(diff <= 1e-5, "IoU scores differ by {diff}");
}

#[test]
fn final_masks_match_post_processing_and_the_multimask_choice() {
    let sam = load();
    let reference = reference();
    let masks = sam.segment(&photo(), &BOXES).unwrap();
    let best = reference.ints("best_mask_index");
    let chosen: Vec<usize> = masks.iter().map(|m| m.candidate).collect();
    assert_eq!(chosen, best.iter().map(|&b| b as usize).collect::<Vec<_>>());
    let distinct: std::collections::BTreeSet<usize> = chosen.iter().copied().collect();
    assert!(
        distinct.len() > 1,
        "the fixture should choose different candidates"
    );

    let (_, shape) = reference.floats("post_processed_logits");
    let (h, w) = (shape[1], shape[2]);
    let all = reference.bytes("post_processed_masks"); // [4, 3, h, w]
    for (i, m) in masks.iter().enumerate() {
        assert_eq!((m.height, m.width), (h, w));
        let start = (i * 3 + chosen[i]) * h * w;
        let expected: Vec<bool> = all[start..start + h * w].iter().map(|&b| b != 0).collect();
        let differing = m.mask.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "box {i}: {differing} mask pixels differ");
        let area = m.area();
        assert!(
            0 < area && area < h * w,
            "box {i}: a trivial mask ({area} pixels)"
        );
    }
}

#[test]
fn upscaled_logits_match_post_process_masks() {
    let sam = load();
    let reference = reference();
    let device = sam.device.clone();
    let inputs = sam
        .processor
        .preprocess(&Rgb8::from_image(&photo()))
        .unwrap();
    // The reference model's low-resolution masks, each box's chosen candidate.
    let (low, shape) = reference.floats("pred_masks");
    let best = reference.ints("best_mask_index");
    let (h, w) = (shape[3], shape[4]);
    let chosen: Vec<f32> = best
        .iter()
        .enumerate()
        .flat_map(|(i, &b)| {
            let start = (i * 3 + b as usize) * h * w;
            low[start..start + h * w].to_vec()
        })
        .collect();
    let low = Tensor::<4>::from_data(TensorData::new(chosen, [4, 1, h, w]), &device);
    let up = sam.processor.upscale_masks(low, &inputs);
    let (expected, shape) = reference.floats("post_processed_logits");
    assert_eq!(up.dims().to_vec(), vec![shape[0], 1, shape[1], shape[2]]);
    let diff = max_abs_diff(&values(up), &expected);
    eprintln!("post_processed_logits max |diff| = {diff:e}");
    assert!(diff <= 1e-4, "upscaled logits differ by {diff}");
}

#[test]
fn a_batch_of_photos_gives_each_photos_masks() {
    let sam = load();
    let cat = photo();
    let motorcycle = image::open(fixtures().join("middlebury/motorcycle.png"))
        .unwrap()
        .to_rgb8();
    let moto_boxes = vec![[256.0, 141.0, 340.0, 226.0], [22.0, 55.0, 82.0, 115.0]];
    let batched = sam
        .segment_batch(
            &[cat.clone(), motorcycle.clone(), cat.clone()],
            &[BOXES.to_vec(), moto_boxes.clone(), Vec::new()],
        )
        .unwrap();
    assert_eq!(batched.len(), 3);
    assert!(batched[2].is_empty());
    let single_cat = sam.segment(&cat, &BOXES).unwrap();
    let single_moto = sam.segment(&motorcycle, &moto_boxes).unwrap();
    for (a, b) in batched[0].iter().zip(&single_cat) {
        assert_eq!(a.candidate, b.candidate);
        assert_eq!(a.mask, b.mask);
    }
    for (a, b) in batched[1].iter().zip(&single_moto) {
        assert_eq!((a.width, a.height), (371, 250));
        assert_eq!(a.mask, b.mask);
    }
}

#[test]
fn bad_boxes_and_mismatched_checkpoints_are_clear_errors() {
    let sam = load();
    let err = sam
        .segment(&photo(), &[[10.0, 10.0, 5.0, 20.0]])
        .unwrap_err();
    assert!(err.to_string().contains("x0 <= x1"), "{err}");
    let err = sam
        .segment(&photo(), &[[f64::NAN, 0.0, 5.0, 20.0]])
        .unwrap_err();
    assert!(err.to_string().contains("not [x0"), "{err}");

    let files = ["config.json", "preprocessor_config.json"];
    let dir = common::edited_copy(&model_dir(), &files, |tensors| {
        tensors.remove("vision_encoder.layers.0.attn.rel_pos_h");
        let (shape, v) = tensors.remove("mask_decoder.iou_token.weight").unwrap();
        tensors.insert(
            "mask_decoder.iou_token.weight".into(),
            (vec![shape[1], shape[0]], v),
        );
        tensors.insert("vision_encoder.extra".into(), (vec![1], vec![0.0]));
    });
    let err = Sam::load(dir.path(), &Device::flex())
        .err()
        .expect("a mismatched checkpoint must not load")
        .to_string();
    for part in [
        "vision_encoder.layers.0.attn.rel_pos_h",
        "mask_decoder.iou_token.weight",
        "vision_encoder.extra",
    ] {
        assert!(err.contains(part), "{part} not named in: {err}");
    }
}

/// CPU time of the architecture of `facebook/sam-vit-base` (ViT-B/16 at 1024 px, random weights: the speed does
/// not depend on them): the image encoder once per photo, the prompt encoder and mask decoder for 5 boxes.
/// Run: `cargo test -p svlm-perception --release --test segmenter_parity -- --ignored --nocapture sam_vit_base`
#[test]
#[ignore]
fn sam_vit_base_cpu_throughput() {
    use std::time::Instant;
    let config = svlm_perception::sam::SamConfig::from_json(&serde_json::json!({
        "model_type": "sam",
        "vision_config": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                          "global_attn_indexes": [2, 5, 8, 11]}
    }))
    .unwrap();
    let device = Device::flex();
    let model = svlm_perception::sam::SamModel::new(&config, &device).unwrap();
    let pixels = Tensor::<4>::zeros([1, 3, 1024, 1024], &device);
    let boxes = Tensor::<2>::from_data(
        TensorData::new(
            (0..5)
                .flat_map(|i| {
                    let o = 100.0 * i as f32;
                    [o, o, o + 300.0, o + 200.0]
                })
                .collect::<Vec<f32>>(),
            [5, 4],
        ),
        &device,
    );
    let start = Instant::now();
    let embeddings = model.image_embeddings(pixels);
    let _ = values(embeddings.clone().slice([0..1, 0..1, 0..1, 0..1]));
    let encoder = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let prediction = model.predict_masks(embeddings, boxes, &[0; 5], true);
    let _ = values(prediction.iou_scores);
    let decoder = start.elapsed().as_secs_f64();
    eprintln!(
        "SAM ViT-B architecture, 1024x1024: image encoder {encoder:.1} s, prompt encoder + mask decoder for 5 boxes \
         {:.0} ms; {:.3} photos/s",
        decoder * 1e3,
        1.0 / (encoder + decoder)
    );
}
