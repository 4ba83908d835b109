//! Parity of Depth Anything (preprocessing, backbone, depth, post-processing) with transformers 5 on the tiny
//! random-weight metric model made by `scripts/make_perception_fixtures.py`, and the loader's errors.

mod common;
use common::{Reference, fixtures, photo, values};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use svlm_perception::{DepthAnything, DepthKind, Dinov2};
use svlm_processor::Rgb8;

fn model_dir() -> PathBuf {
    fixtures().join("tiny-depth-anything")
}

fn reference() -> Reference {
    Reference::open(&fixtures().join("reference.safetensors"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn load() -> DepthAnything {
    DepthAnything::load(&model_dir(), &Device::flex()).unwrap()
}

#[test]
fn preprocessing_matches_dpt_image_processor() {
    let model = load();
    let reference = reference();
    let (expected, shape) = reference.floats("pixel_values");
    let pixels = model
        .processor
        .preprocess(&Rgb8::from_image(&photo()))
        .unwrap();
    assert_eq!(vec![1, 3, pixels.height, pixels.width], shape);
    let diff = max_abs_diff(&pixels.data, &expected);
    eprintln!("pixel_values max |diff| = {diff:e}");
    assert!(diff <= 1e-5, "pixel values differ by {diff}");
}

#[test]
fn downscaling_preprocessing_matches_and_rounds_half_to_even() {
    let model = load();
    let reference = reference();
    let (expected, shape) = reference.floats("pixel_values_down");
    let processor = svlm_perception::DptImageProcessor {
        size: (42, 42),
        ..model.processor.clone()
    };
    let pixels = processor.preprocess(&Rgb8::from_image(&photo())).unwrap();
    // 96x64 -> 63x42 -> 4.5 patches wide -> 4 (Python's round), not 5.
    assert_eq!(vec![1, 3, pixels.height, pixels.width], shape);
    assert_eq!((pixels.height, pixels.width), (42, 56));
    let diff = max_abs_diff(&pixels.data, &expected);
    eprintln!("pixel_values_down max |diff| = {diff:e}");
    assert!(diff <= 1e-5, "pixel values differ by {diff}");
}

/// The fixture's backbone written as a standalone `Dinov2Model` folder (the hub's names without `backbone.`).
fn standalone_dinov2(
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<f32>)>),
) -> tempfile::TempDir {
    let dir = common::edited_copy(&model_dir(), &[], |tensors| {
        tensors.retain(|k, _| k.starts_with("backbone."));
        *tensors = std::mem::take(tensors)
            .into_iter()
            .map(|(k, v)| (k["backbone.".len()..].to_string(), v))
            .collect();
        edit(tensors);
    });
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("config.json")).unwrap())
            .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        config["backbone_config"].to_string(),
    )
    .unwrap();
    dir
}

#[test]
fn standalone_dinov2_gives_the_backbone_feature_maps() {
    let device = Device::flex();
    let dir = standalone_dinov2(|_| {});
    let dinov2 = Dinov2::load(dir.path(), &device).unwrap();
    let reference = reference();
    let hidden = dinov2.hidden_states(reference.tensor("pixel_values", &device));
    assert_eq!(hidden.len(), dinov2.config.num_hidden_layers + 1);
    let stages = dinov2.config.selected_stages().unwrap();
    for (i, &stage) in stages.iter().enumerate() {
        let fm = dinov2.backbone.layernorm.forward(hidden[stage].clone());
        let (expected, _) = reference.floats(&format!("feature_maps.{i}"));
        let diff = max_abs_diff(&values(fm), &expected);
        assert!(diff <= 1e-4, "stage {stage} differs by {diff}");
    }
    let last = dinov2.last_hidden_state(&hidden).unwrap();
    let (expected, _) = reference.floats(&format!("feature_maps.{}", stages.len() - 1));
    assert!(max_abs_diff(&values(last), &expected) <= 1e-4);

    let broken = standalone_dinov2(|t| {
        t.remove("encoder.layer.0.mlp.fc1.weight");
    });
    let err = Dinov2::load(broken.path(), &device).err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("encoder.layer.0.mlp.fc1.weight"), "{msg}");
}

#[test]
fn backbone_and_depth_match_transformers() {
    let model = load();
    assert_eq!(model.kind(), DepthKind::Metric);
    let device = Device::flex();
    let reference = reference();
    let pixels: Tensor<4> = reference.tensor("pixel_values", &device);
    let out = model.model.forward(pixels);
    assert_eq!(out.feature_maps.len(), 4);
    for (i, fm) in out.feature_maps.into_iter().enumerate() {
        let (expected, shape) = reference.floats(&format!("feature_maps.{i}"));
        assert_eq!(fm.dims().to_vec(), shape);
        let diff = max_abs_diff(&values(fm), &expected);
        eprintln!("feature_maps.{i} max |diff| = {diff:e}");
        assert!(diff <= 1e-4, "feature map {i} differs by {diff}");
    }
    let (expected, shape) = reference.floats("predicted_depth");
    assert_eq!(out.predicted_depth.dims().to_vec(), shape);
    let depth = values(out.predicted_depth);
    let diff = max_abs_diff(&depth, &expected);
    eprintln!("predicted_depth (70x112, interpolated positions) max |diff| = {diff:e} m");
    assert!(diff <= 1e-4, "depth differs by {diff}");
    // Both float32 results against transformers in float64: the two are equally close to it.
    let (exact, _) = reference.floats("predicted_depth_f64");
    let ours = max_abs_diff(&depth, &exact);
    let theirs = max_abs_diff(&expected, &exact);
    eprintln!("vs float64 transformers: svlm {ours:e} m, transformers float32 {theirs:e} m");
    assert!(
        ours <= 1e-4,
        "depth differs from the float64 reference by {ours}"
    );

    // The config's own 4x4 patch grid: position embeddings used as stored.
    let square: Tensor<4> = reference.tensor("pixel_values_square", &device);
    let depth = model.model.forward(square).predicted_depth;
    let (expected, _) = reference.floats("predicted_depth_square");
    let diff = max_abs_diff(&values(depth), &expected);
    eprintln!("predicted_depth_square max |diff| = {diff:e} m");
    assert!(diff <= 1e-4, "square-input depth differs by {diff}");
}

#[test]
fn predict_matches_post_processed_depth() {
    let model = load();
    let reference = reference();
    let image = photo();
    let start = Instant::now();
    let depth = model.predict(&image).unwrap();
    eprintln!(
        "predict ({}x{}): {:?}",
        image.width(),
        image.height(),
        start.elapsed()
    );
    assert_eq!((depth.width, depth.height), (image.width(), image.height()));
    let (expected, shape) = reference.floats("post_processed_depth");
    assert_eq!(shape, vec![image.height() as usize, image.width() as usize]);
    let diff = max_abs_diff(&depth.data, &expected);
    eprintln!("post_processed_depth max |diff| = {diff:e} m");
    // Depth in metres after two interpolations: 2e-4 m is f32 rounding (the summation order of the attention's
    // softmax and of the products differ from PyTorch's), not a modelling difference.
    assert!(diff <= 2e-4, "post-processed depth differs by {diff}");

    // A batch with a second, differently sized photo: each gets its own size and the same values.
    let small = image::imageops::resize(&image, 50, 40, image::imageops::FilterType::Triangle);
    let batch = model
        .predict_batch(&[image.clone(), small.clone(), image])
        .unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(batch[0], depth);
    assert_eq!(batch[2], depth);
    assert_eq!((batch[1].width, batch[1].height), (50, 40));
    let alone = model.predict(&small).unwrap();
    assert!(max_abs_diff(&batch[1].data, &alone.data) <= 1e-5);
}

/// Copies the fixture folder with `edit` applied to its tensors (name -> (shape, f32 values)).
fn edited_copy(
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<f32>)>),
) -> tempfile::TempDir {
    common::edited_copy(
        &model_dir(),
        &["config.json", "preprocessor_config.json"],
        edit,
    )
}

fn load_error(dir: &Path) -> String {
    match DepthAnything::load(dir, &Device::flex()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn unchanged_copy_loads() {
    let dir = edited_copy(|_| {});
    DepthAnything::load(dir.path(), &Device::flex()).unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let key = "neck.fusion_stage.layers.2.residual_layer1.convolution2.bias";
    let dir = edited_copy(|t| {
        t.remove(key).unwrap();
    });
    let err = load_error(dir.path());
    assert!(err.contains("missing tensors"), "{err}");
    assert!(err.contains(key), "{err}");
}

#[test]
fn wrong_shape_is_named() {
    let key = "backbone.encoder.layer.1.attention.attention.key.weight";
    let dir = edited_copy(|t| {
        let (shape, v) = t.get_mut(key).unwrap();
        *shape = vec![shape[0] / 2, shape[1] * 2];
        let _ = v;
    });
    let err = load_error(dir.path());
    assert!(err.contains("wrong shapes"), "{err}");
    assert!(err.contains(key), "{err}");
    assert!(!err.contains("missing tensors"), "{err}");
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = edited_copy(|t| {
        t.insert("head.conv4.weight".into(), (vec![2], vec![0.0, 1.0]));
    });
    let err = load_error(dir.path());
    assert!(err.contains("unexpected tensors"), "{err}");
    assert!(err.contains("head.conv4.weight"), "{err}");
}

#[test]
fn transformers5_key_names_load_to_the_same_model() {
    let dir = edited_copy(|t| {
        let renamed: BTreeMap<String, (Vec<usize>, Vec<f32>)> = std::mem::take(t)
            .into_iter()
            .map(|(k, v)| {
                let k = k
                    .replace(".attention.attention.query.", ".attention.q_proj.")
                    .replace(".attention.output.dense.", ".attention.o_proj.");
                (k, v)
            })
            .collect();
        *t = renamed;
    });
    let renamed = DepthAnything::load(dir.path(), &Device::flex()).unwrap();
    let original = load();
    let image = photo();
    assert_eq!(
        renamed.predict(&image).unwrap(),
        original.predict(&image).unwrap()
    );
}

#[test]
fn relative_models_are_refused_by_predict() {
    let dir = edited_copy(|_| {});
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["depth_estimation_type"] = "relative".into();
    config["max_depth"] = 1.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let model = DepthAnything::load(dir.path(), &Device::flex()).unwrap();
    let err = model.predict(&photo()).unwrap_err().to_string();
    assert!(err.contains("relative"), "{err}");
    let raw = model.predict_raw(&photo()).unwrap();
    assert!(raw.data.iter().all(|v| v.is_finite()));
    // ReLU head: non-negative at the processed size (the bicubic resize may overshoot below 0, as in HF).
    let reference = reference();
    let depth = model
        .model
        .forward(reference.tensor("pixel_values", &Device::flex()))
        .predicted_depth;
    let depth = values(depth);
    assert!(depth.iter().all(|&v| v >= 0.0));
    assert!(depth.iter().any(|&v| v > 0.0));
}

/// Seconds per forward pass of `model` on a `[1, 3, 518, 518]` input (after one warm-up pass).
fn seconds_per_forward(model: &svlm_perception::DepthAnythingModel, runs: usize) -> f64 {
    let pixels: Tensor<4> = Tensor::zeros([1, 3, 518, 518], &Device::flex());
    let _ = values(model.forward(pixels.clone()).predicted_depth);
    let start = Instant::now();
    for _ in 0..runs {
        let _ = values(model.forward(pixels.clone()).predicted_depth);
    }
    start.elapsed().as_secs_f64() / runs as f64
}

/// CPU throughput at 518x518 for the tiny fixture and for the architecture of
/// `depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf` (ViT-S/14, random weights: the speed does not
/// depend on them; real weights are needed for real depth).
/// Run: `cargo test -p svlm-perception --test parity -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput_518() {
    let tiny = load();
    let per = seconds_per_forward(&tiny.model, 5);
    eprintln!(
        "tiny fixture, 518x518: {:.1} ms/image, {:.2} images/s",
        per * 1e3,
        1.0 / per
    );
    let config = svlm_perception::DepthAnythingConfig::from_json(
        &svlm_perception::FullSizeDepth::DepthAnythingV2Small.config_json(),
    )
    .unwrap();
    let small = svlm_perception::DepthAnythingModel::new(&config, &Device::flex()).unwrap();
    let per = seconds_per_forward(&small, 2);
    eprintln!(
        "Depth-Anything-V2-Small architecture, 518x518: {:.0} ms/image, {:.2} images/s",
        per * 1e3,
        1.0 / per
    );
}
