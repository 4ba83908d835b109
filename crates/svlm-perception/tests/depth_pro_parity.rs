//! Parity of Depth Pro (preprocessing, encoder, neck, fusion, depth, field of view, post-processing) with
//! transformers 5 on the tiny random-weight model made by `scripts/make_depth_pro_fixtures.py`, and the loader's
//! errors. Tolerances are relative to the largest magnitude of each reference tensor.

mod common;
use common::{Reference, photo, values};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use svlm_perception::DepthPro;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-depth-pro")
}

fn reference() -> Reference {
    Reference::open(&model_dir().join("reference.safetensors"))
}

/// `t[..., ::3, ::3]`, as the fixture stores the large maps.
fn every_third(t: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = t.dims();
    let rows: Vec<Tensor<4>> = (0..h)
        .step_by(3)
        .map(|y| t.clone().slice([0..b, 0..c, y..y + 1, 0..w]))
        .collect();
    let t = Tensor::cat(rows, 2);
    let cols: Vec<Tensor<4>> = (0..w)
        .step_by(3)
        .map(|x| t.clone().slice([0..b, 0..c, 0..h.div_ceil(3), x..x + 1]))
        .collect();
    Tensor::cat(cols, 3)
}

/// Max |a - b| and the largest |b|.
fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    (d, b.iter().map(|v| v.abs()).fold(0.0, f32::max))
}

/// Compares `ours` with reference `name` (same shape), within `rel` of the reference's largest magnitude.
fn check<const D: usize>(reference: &Reference, name: &str, ours: Tensor<D>, rel: f32) {
    let (expected, shape) = reference.floats(name);
    assert_eq!(ours.dims().to_vec(), shape, "{name}: shape");
    let (d, scale) = diff(&values(ours), &expected);
    eprintln!(
        "{name} {shape:?}: max |diff| = {d:.2e} (largest |value| {scale:.3}, relative {:.2e})",
        d / scale
    );
    assert!(
        scale > 0.0,
        "{name} is all zeros: the comparison means nothing"
    );
    assert!(d <= rel * scale, "{name} differs by {d} (scale {scale})");
}

fn load() -> DepthPro {
    DepthPro::load(&model_dir(), &Device::flex()).unwrap()
}

#[test]
fn preprocessing_matches_depth_pro_image_processor() {
    let model = load();
    let reference = reference();
    let pixels = model.preprocess(&photo()).unwrap();
    // 96 x 64 -> 64 x 64: bilinear downscale of the normalized image, no antialiasing.
    check(&reference, "pixel_values", pixels, 1e-5);
}

#[test]
fn features_depth_and_field_of_view_match_transformers() {
    let model = load();
    let device = Device::flex();
    let reference = reference();
    let start = Instant::now();
    let out = model
        .model
        .forward(reference.tensor("pixel_values", &device))
        .unwrap();
    eprintln!("forward (64 x 64 input): {:?}", start.elapsed());
    assert_eq!(out.encoder_features.len(), 6);
    for (i, f) in out.encoder_features.into_iter().enumerate() {
        check(&reference, &format!("encoder_features.{i}"), f, 1e-4);
    }
    for (name, maps) in [("neck_features", out.neck_features), ("fused", out.fused)] {
        assert_eq!(maps.len(), 5);
        for (i, f) in maps.into_iter().enumerate() {
            let f = if f.dims()[3] > 32 { every_third(f) } else { f };
            check(&reference, &format!("{name}.{i}"), f, 1e-4);
        }
    }
    let depth = out.predicted_depth;
    let [b, h, w] = depth.dims();
    check(&reference, "predicted_depth", depth.clone(), 1e-4);
    let sub = every_third(depth.reshape([b, 1, h, w]));
    let [_, _, sh, sw] = sub.dims();
    check(
        &reference,
        "predicted_depth_f64",
        sub.reshape([b, sh, sw]),
        1e-4,
    );
    let fov = out.field_of_view.expect("the fixture has the FoV head");
    check(&reference, "field_of_view", fov.clone(), 1e-5);
    check(&reference, "field_of_view_f64", fov, 1e-5);
}

#[test]
fn predict_matches_post_processed_depth_and_focal_length() {
    let model = load();
    let reference = reference();
    let image = photo();
    let start = Instant::now();
    let prediction = model.predict(&image).unwrap();
    eprintln!(
        "predict ({}x{}): {:?}",
        image.width(),
        image.height(),
        start.elapsed()
    );
    let depth = &prediction.depth;
    assert_eq!((depth.width, depth.height), (image.width(), image.height()));
    let (expected, shape) = reference.floats("post_processed_depth");
    assert_eq!(shape, vec![image.height() as usize, image.width() as usize]);
    let (d, scale) = diff(&depth.data, &expected);
    eprintln!(
        "post_processed_depth {shape:?}: max |diff| = {d:.2e} m (largest {scale:.3} m, relative {:.2e})",
        d / scale
    );
    assert!(d <= 1e-4 * scale, "post-processed depth differs by {d} m");

    let (focal, _) = reference.floats("focal_length");
    let ours = prediction.focal_length_px.unwrap();
    eprintln!(
        "focal_length: {ours} px, transformers {} px, |diff| = {:.2e}",
        focal[0],
        (ours - f64::from(focal[0])).abs()
    );
    assert!((ours - f64::from(focal[0])).abs() <= 1e-4 * f64::from(focal[0]));
    let (fov, _) = reference.floats("field_of_view");
    let fov_deg = prediction.field_of_view_deg.unwrap();
    assert!((fov_deg - f64::from(fov[0])).abs() <= 1e-4);
    // The focal length is the pinhole one of that horizontal field of view at the photo's width.
    let k = svlm_geometry::Intrinsics::from_horizontal_fov(image.width(), image.height(), fov_deg);
    assert!((k.fx - ours).abs() <= 1e-4 * ours, "{} vs {ours}", k.fx);

    // A batch with a second, differently sized photo: one forward pass, each at its own size.
    let small = image::imageops::resize(&image, 50, 40, image::imageops::FilterType::Triangle);
    let batch = model
        .predict_batch(&[image.clone(), small.clone()])
        .unwrap();
    assert_eq!(batch.len(), 2);
    assert!(diff(&batch[0].depth.data, &depth.data).0 <= 1e-5);
    assert_eq!((batch[1].depth.width, batch[1].depth.height), (50, 40));
    let alone = model.predict(&small).unwrap();
    assert!(diff(&batch[1].depth.data, &alone.depth.data).0 <= 1e-5);
    assert!((batch[1].focal_length_px.unwrap() - alone.focal_length_px.unwrap()).abs() < 1e-3);
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
    match DepthPro::load(dir, &Device::flex()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn unchanged_copy_loads() {
    let dir = edited_copy(|_| {});
    DepthPro::load(dir.path(), &Device::flex()).unwrap();
}

#[test]
fn missing_tensors_are_named_with_their_checkpoint_names() {
    for key in [
        "head.layers.4.weight",
        "fusion_stage.final.residual_layer1.convolution2.bias",
        "depth_pro.neck.feature_upsample.intermediate.1.layers.3.weight",
        "fov_model.head.layers.2.bias",
        "depth_pro.encoder.patch_encoder.model.encoder.layer.2.mlp.fc1.weight",
    ] {
        let dir = edited_copy(|t| {
            t.remove(key).unwrap();
        });
        let err = load_error(dir.path());
        assert!(err.contains("missing tensors"), "{err}");
        assert!(err.contains(key), "{key}: {err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}

#[test]
fn unexpected_and_wrong_shaped_tensors_are_named() {
    let dir = edited_copy(|t| {
        t.insert("head.layers.3.weight".into(), (vec![2], vec![0.0, 1.0]));
    });
    let err = load_error(dir.path());
    assert!(err.contains("unexpected tensors"), "{err}");
    assert!(err.contains("head.layers.3.weight"), "{err}");

    let key = "depth_pro.neck.feature_upsample.scaled_images.1.layers.0.weight";
    let dir = edited_copy(|t| {
        let (shape, _) = t.get_mut(key).unwrap();
        shape.swap(0, 1);
    });
    let err = load_error(dir.path());
    assert!(err.contains("wrong shapes"), "{err}");
    assert!(err.contains(key), "{err}");
}

#[test]
fn without_the_fov_head_its_tensors_are_ignored_and_depth_is_unscaled() {
    let dir = edited_copy(|_| {});
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["use_fov_model"] = false.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let model = DepthPro::load(dir.path(), &Device::flex()).unwrap();
    assert!(model.model.fov_model.is_none());
    let plain = model.predict(&photo()).unwrap();
    assert_eq!(plain.field_of_view_deg, None);
    assert_eq!(plain.focal_length_px, None);
    // The same inverse depth, not scaled by width / focal: the FoV model's depth times focal / width.
    let with_fov = load().predict(&photo()).unwrap();
    let f = with_fov.focal_length_px.unwrap();
    let ratio = f / f64::from(photo().width());
    for (a, b) in plain.depth.data.iter().zip(&with_fov.depth.data) {
        assert!((f64::from(*b) - f64::from(*a) * ratio).abs() <= 1e-4 * f64::from(*b));
    }
}

#[test]
fn bad_config_errors_name_the_file() {
    let dir = edited_copy(|_| {});
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["intermediate_hook_ids"] = serde_json::json!([7, 1]);
    std::fs::write(&path, config.to_string()).unwrap();
    let err = load_error(dir.path());
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("intermediate_hook_ids"), "{err}");

    std::fs::write(&path, "{ not json").unwrap();
    let err = load_error(dir.path());
    assert!(err.contains(&path.display().to_string()), "{err}");
}
