//! Parity of SAM 2 (preprocessing, Hiera backbone, FPN neck, prompt encoder, mask decoder, multimask choice,
//! post-processing) with transformers 5 on the tiny random-weight model made by `scripts/make_sam2_fixtures.py`,
//! and the loader's errors.

mod common;
use common::{Reference, fixtures, photo, values};

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use svlm_perception::{BoxSegmenter, Sam2};
use svlm_processor::Rgb8;

/// The boxes of the fixture script, `[x0, y0, x1, y1]` in photo pixels.
const BOXES: [[f64; 4]; 4] = [
    [10.0, 5.0, 60.0, 50.0],
    [40.5, 10.25, 95.0, 63.0],
    [0.0, 0.0, 96.0, 64.0],
    [30.0, 20.0, 34.0, 26.0],
];

fn model_dir() -> PathBuf {
    fixtures().join("sam2/tiny-sam2")
}

fn reference() -> Reference {
    Reference::open(&fixtures().join("sam2/reference.safetensors"))
}

/// The largest absolute difference, and that relative to the largest reference magnitude.
fn diffs(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    let abs = actual
        .iter()
        .zip(expected)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale = expected.iter().map(|v| v.abs()).fold(0.0, f32::max);
    (abs, abs / scale.max(1.0))
}

/// Compares `actual` with the reference tensor `name`: shape, and every value within `tolerance` (absolute, or
/// relative to the largest reference magnitude where that exceeds 1).
fn check<const D: usize>(reference: &Reference, name: &str, actual: Tensor<D>, tolerance: f32) {
    let (expected, shape) = reference.floats(name);
    let dims = actual.dims().to_vec();
    let actual = values(actual);
    // A leading batch of one in the reference may be absent here.
    let dims_match = dims == shape || (shape.first() == Some(&1) && dims == shape[1..]);
    assert!(dims_match, "{name}: shape {dims:?}, reference {shape:?}");
    let (abs, rel) = diffs(&actual, &expected);
    eprintln!("{name}: max |diff| = {abs:e} (relative to the largest value {rel:e})");
    assert!(rel <= tolerance, "{name} differs by {abs} (relative {rel})");
}

fn load() -> Sam2 {
    Sam2::load(&model_dir(), &Device::flex()).unwrap()
}

#[test]
fn preprocessing_and_boxes_match_sam2_processor() {
    let sam = load();
    let reference = reference();
    let inputs = sam
        .processor
        .preprocess(&Rgb8::from_image(&photo()))
        .unwrap();
    let (expected, shape) = reference.floats("pixel_values");
    assert_eq!(vec![1, 3, inputs.pixels.height, inputs.pixels.width], shape);
    let size = reference.ints("original_size");
    assert_eq!(inputs.original_size, (size[0] as usize, size[1] as usize));
    let (diff, _) = diffs(&inputs.pixels.data, &expected);
    eprintln!("pixel_values max |diff| = {diff:e}");
    assert!(diff <= 1e-5, "pixel values differ by {diff}");

    let boxes: Vec<f32> = BOXES
        .iter()
        .flat_map(|b| sam.processor.box_to_input(*b, inputs.original_size))
        .map(|v| v as f32)
        .collect();
    let (diff, _) = diffs(&boxes, &reference.floats("input_boxes").0);
    assert!(diff <= 1e-5, "input boxes differ by {diff}");
}

#[test]
fn downscaling_resize_is_torchvisions_bit_for_bit() {
    let motorcycle = image::open(fixtures().join("middlebury/motorcycle.png"))
        .unwrap()
        .to_rgb8();
    let resized =
        svlm_perception::sam2::resize_bilinear_u8(&Rgb8::from_image(&motorcycle), 128, 128);
    let reference = reference();
    let expected = reference.bytes("motorcycle_resized");
    assert_eq!(reference.get("motorcycle_resized").shape, vec![128, 128, 3]);
    let differing = resized
        .data
        .iter()
        .zip(&expected)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} values differ",
        expected.len()
    );
}

#[test]
fn backbone_stages_and_fpn_features_match() {
    let sam = load();
    let reference = reference();
    let pixels = reference.tensor::<4>("pixel_values", &sam.device);
    let encoder = &sam.model.vision_encoder;
    let stages = encoder.backbone.forward(pixels);
    assert_eq!(stages.len(), 4);
    for (i, stage) in stages.iter().enumerate() {
        check(
            &reference,
            &format!("backbone_stage.{i}"),
            stage.clone(),
            1e-4,
        );
    }
    let fpn = encoder.neck.forward(&stages);
    assert_eq!(fpn.len(), 3);
    for (i, level) in fpn.iter().enumerate() {
        check(&reference, &format!("fpn.{i}"), level.clone(), 1e-4);
    }
    let embeddings = sam.model.embeddings_of_features(fpn);
    check(
        &reference,
        "image_embeddings.0",
        embeddings.high_res_s0,
        1e-4,
    );
    check(
        &reference,
        "image_embeddings.1",
        embeddings.high_res_s1,
        1e-4,
    );
    check(&reference, "image_embeddings.2", embeddings.image, 1e-4);
}

#[test]
fn prompt_encoder_matches() {
    let sam = load();
    let reference = reference();
    let boxes = reference
        .tensor::<3>("input_boxes", &sam.device)
        .reshape([4, 4]);
    let sparse = sam.model.prompt_encoder.embed_boxes(boxes);
    check(&reference, "sparse_embeddings", sparse, 1e-5);
    // The reference holds the dense embedding of one image.
    let dense = sam.model.prompt_encoder.dense_without_mask();
    let (expected, shape) = reference.floats("dense_embeddings");
    assert_eq!(dense.dims().to_vec(), shape);
    assert_eq!(values(dense), expected);
}

#[test]
fn mask_logits_iou_and_object_scores_match() {
    let sam = load();
    let reference = reference();
    let inputs = sam
        .processor
        .preprocess(&Rgb8::from_image(&photo()))
        .unwrap();
    let prediction = sam
        .predict(std::slice::from_ref(&inputs), &[BOXES.to_vec()], true)
        .unwrap();
    let noise = reference.floats("pred_masks_f64_max_diff").0[0];
    eprintln!("transformers float32 vs float64 on pred_masks: {noise:e} (logits std 3)");
    check(&reference, "pred_masks", prediction.masks, 1e-4);
    check(&reference, "iou_scores", prediction.iou_scores, 1e-5);
    check(
        &reference,
        "object_score_logits",
        prediction.object_score_logits,
        1e-5,
    );
}

#[test]
fn single_mask_output_matches() {
    let sam = load();
    let reference = reference();
    let inputs = sam
        .processor
        .preprocess(&Rgb8::from_image(&photo()))
        .unwrap();
    let prediction = sam
        .predict(std::slice::from_ref(&inputs), &[BOXES.to_vec()], false)
        .unwrap();
    check(&reference, "pred_masks_single", prediction.masks, 1e-4);
    check(&reference, "iou_scores_single", prediction.iou_scores, 1e-5);
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
    let (iou, _) = reference.floats("iou_scores");
    for (i, m) in masks.iter().enumerate() {
        assert!((m.predicted_iou - iou[i * 3 + chosen[i]]).abs() <= 1e-5);
    }

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
    let low = Tensor::<4>::from_data(TensorData::new(chosen, [4, 1, h, w]), &sam.device);
    let up = sam
        .processor
        .upscale_masks(low, (64, 96))
        .reshape([4, 64, 96]);
    check(&reference, "post_processed_logits", up, 1e-4);
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
fn the_segmenter_entry_point_picks_sam_or_sam2_by_model_type() {
    let device = Device::flex();
    let sam2 = BoxSegmenter::load(&model_dir(), &device).unwrap();
    assert_eq!(sam2.family(), "SAM 2");
    let direct = load().segment(&photo(), &BOXES).unwrap();
    assert_eq!(sam2.segment(&photo(), &BOXES).unwrap(), direct);
    let sam = BoxSegmenter::load(&fixtures().join("sam/tiny-sam"), &device).unwrap();
    assert_eq!(sam.family(), "SAM");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "owlv2"}"#).unwrap();
    let err = BoxSegmenter::load(dir.path(), &device)
        .err()
        .expect("an OWLv2 folder is no segmenter")
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("owlv2"),
        "{err}"
    );
}

#[test]
fn bad_boxes_configs_and_mismatched_checkpoints_are_clear_errors() {
    let sam = load();
    let err = sam
        .segment(&photo(), &[[10.0, 10.0, 5.0, 20.0]])
        .unwrap_err();
    assert!(err.to_string().contains("x0 <= x1"), "{err}");

    let files = ["config.json", "preprocessor_config.json"];
    let dir = common::edited_copy(&model_dir(), &files, |tensors| {
        tensors.remove("vision_encoder.backbone.blocks.3.attn.qkv.weight");
        let (shape, v) = tensors.remove("mask_decoder.conv_s1.bias").unwrap();
        tensors.insert(
            "mask_decoder.conv_s1.bias".into(),
            (vec![shape[0] + 1], [v, vec![0.0]].concat()),
        );
        tensors.insert("vision_encoder.neck.extra".into(), (vec![1], vec![0.0]));
    });
    let err = Sam2::load(dir.path(), &Device::flex())
        .err()
        .expect("a mismatched checkpoint must not load")
        .to_string();
    for part in [
        "vision_encoder.backbone.blocks.3.attn.qkv.weight",
        "mask_decoder.conv_s1.bias",
        "vision_encoder.neck.extra",
    ] {
        assert!(err.contains(part), "{part} not named in: {err}");
    }

    // One copy of the random-Fourier matrix serves both (the original model has one).
    let dir = common::edited_copy(&model_dir(), &files, |tensors| {
        let (shape, v) = tensors
            .remove("prompt_encoder.shared_embedding.positional_embedding")
            .unwrap();
        tensors.insert(
            "shared_image_embedding.positional_embedding".into(),
            (shape, v),
        );
    });
    let tied = Sam2::load(dir.path(), &Device::flex()).unwrap();
    assert_eq!(
        values(tied.model.shared_image_embedding.positional_embedding.val()),
        values(
            tied.model
                .prompt_encoder
                .shared_embedding
                .positional_embedding
                .val()
        )
    );

    // A config the implementation cannot run names the file and the key.
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(model_dir().join("config.json")).unwrap();
    let config = config.replace("\"sam2_hiera_det_model\"", "\"timm_wrapper\"");
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let err = format!(
        "{:#}",
        Sam2::load(dir.path(), &Device::flex())
            .err()
            .expect("another backbone must not load")
    );
    assert!(
        err.contains("config.json") && err.contains("backbone_config.model_type"),
        "{err}"
    );
}

/// CPU time of the architecture of `facebook/sam2.1-hiera-tiny` (transformers' defaults: Hiera-T at 1024 px, random
/// weights: the speed does not depend on them): the image encoder once per photo, the prompt encoder and mask
/// decoder for 5 boxes.
/// Run: `cargo test -p svlm-perception --release --test sam2_parity -- --ignored --nocapture hiera_tiny`
#[test]
#[ignore]
fn sam2_hiera_tiny_cpu_throughput() {
    use std::time::Instant;
    let config =
        svlm_perception::sam2::Sam2Config::from_json(&serde_json::json!({"model_type": "sam2"}))
            .unwrap();
    let device = Device::flex();
    let model = svlm_perception::sam2::Sam2Model::new(&config, &device).unwrap();
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
    let _ = values(embeddings.image.clone().slice([0..1, 0..1, 0..1, 0..1]));
    let encoder = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let prediction = model.predict_masks(&embeddings, boxes, &[0; 5], true);
    let _ = values(prediction.iou_scores);
    let decoder = start.elapsed().as_secs_f64();
    eprintln!(
        "SAM 2.1 Hiera-T architecture, 1024x1024: image encoder {encoder:.1} s, prompt encoder + mask decoder for \
         5 boxes {:.0} ms; {:.3} photos/s",
        decoder * 1e3,
        1.0 / (encoder + decoder)
    );
}
