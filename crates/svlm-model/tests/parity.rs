//! Parity with transformers on tiny random checkpoints written by `scripts/make_fixtures.py`
//! (logits, hidden states, image features, greedy tokens, loss and every gradient), export ->
//! reload round trips, and strict loading errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::Dtype;
use svlm_model::generate::{GenerationImages, GenerationOptions, generate};
use svlm_model::io::{
    CheckpointTensor, ExportOptions, canonical_name, export_hf, read_checkpoint_dir,
    read_safetensors_file,
};
use svlm_model::vlm::IGNORE_INDEX;
use svlm_model::{ImagePatches, Vlm, VlmBatch, WeightDType, load_pretrained, load_pretrained_as};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Reference {
    tensors: BTreeMap<String, CheckpointTensor>,
}

impl Reference {
    fn open(name: &str) -> Self {
        let tensors = read_safetensors_file(&fixture(name).join("reference.safetensors"))
            .expect("fixture reference");
        Self { tensors }
    }

    fn get(&self, name: &str) -> &CheckpointTensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("reference has no `{name}`"))
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn floats(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let t = self.get(name);
        let data = t.to_data(name, WeightDType::F32).unwrap();
        (data.try_into_vec::<f32>().unwrap(), t.shape.clone())
    }

    fn ints(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let t = self.get(name);
        assert_eq!(t.dtype, Dtype::I64, "{name} should be int64");
        let v = t
            .bytes()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (v, t.shape.clone())
    }

    fn float_tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let (v, shape) = self.floats(name);
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    fn int_tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D, Int> {
        let (v, shape) = self.ints(name);
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    /// The Qwen2-VL family's flattened patches with their grids (`None` for the other families).
    fn image_patches(&self, device: &Device) -> Option<ImagePatches> {
        self.has("image_grid_thw").then(|| {
            let (grid, _) = self.ints("image_grid_thw");
            ImagePatches {
                pixel_values: self.float_tensor("pixel_values", device),
                grid_thw: grid
                    .chunks(3)
                    .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
                    .collect(),
            }
        })
    }

    fn batch(&self, device: &Device) -> VlmBatch {
        let image_patches = self.image_patches(device);
        VlmBatch {
            input_ids: self.int_tensor("input_ids", device),
            attention_mask: self.int_tensor("attention_mask", device),
            labels: Some(self.int_tensor("labels", device)),
            pixel_values: (self.has("pixel_values") && image_patches.is_none())
                .then(|| self.float_tensor("pixel_values", device)),
            pixel_attention_mask: self
                .has("pixel_attention_mask")
                .then(|| self.int_tensor("pixel_attention_mask", device)),
            image_patches,
            packing: None,
        }
    }
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

/// Max |a - b| over the positions where `mask` is 1 (rows of `width` values per position).
fn max_diff_masked(a: &[f32], b: &[f32], mask: &[i64], width: usize) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (pos, &m) in mask.iter().enumerate() {
        if m == 0 {
            continue;
        }
        for i in pos * width..(pos + 1) * width {
            worst = worst.max((a[i] - b[i]).abs());
        }
    }
    worst
}

fn check_forward(name: &str) {
    let device = Device::flex();
    let model = load_pretrained(fixture(name), &device).unwrap().model;
    let reference = Reference::open(name);
    let batch = reference.batch(&device);
    let out = model.forward_output(&batch, true).unwrap();
    let (mask, _) = reference.ints("attention_mask");
    let (ref_logits, shape) = reference.floats("logits");
    let vocab = shape[2];
    let logits = values(out.logits);
    let diff = max_diff_masked(&logits, &ref_logits, &mask, vocab);
    println!("{name}: max |logits - transformers| = {diff:e}");
    assert!(diff <= 1e-4, "{name}: logits differ by {diff}");
    // A wrong model must be caught: the logits are far from zero.
    assert!(ref_logits.iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.5);

    let n_hidden = reference
        .tensors
        .keys()
        .filter(|k| k.starts_with("hidden_states."))
        .count();
    assert_eq!(
        out.hidden_states.len(),
        n_hidden,
        "{name}: number of hidden states"
    );
    let mut worst_hidden = 0f32;
    for (i, h) in out.hidden_states.into_iter().enumerate() {
        let (want, shape) = reference.floats(&format!("hidden_states.{i}"));
        let diff = max_diff_masked(&values(h), &want, &mask, shape[2]);
        assert!(diff <= 1e-4, "{name}: hidden state {i} differs by {diff}");
        worst_hidden = worst_hidden.max(diff);
    }
    println!("{name}: max |hidden states - transformers| = {worst_hidden:e} ({n_hidden} tensors)");
    if reference.has("image_features") {
        let (want, _) = reference.floats("image_features");
        let got = values(out.image_features.expect("image features"));
        assert_eq!(got.len(), want.len(), "{name}: image feature count");
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        println!("{name}: max |image features - transformers| = {diff:e}");
        assert!(diff <= 1e-4, "{name}: image features differ by {diff}");
    }
}

#[test]
fn llama_matches_transformers() {
    check_forward("llama");
}

#[test]
fn qwen2_with_qkv_bias_matches_transformers() {
    check_forward("qwen2");
    check_greedy("qwen2");
    check_gradients("qwen2");
    // The fixture does exercise the biases: q/k/v have one, o does not.
    let tensors = read_checkpoint_dir(&fixture("qwen2")).unwrap();
    assert!(tensors.contains_key("model.layers.0.self_attn.q_proj.bias"));
    assert!(!tensors.contains_key("model.layers.0.self_attn.o_proj.bias"));
}

#[test]
fn llava_with_a_siglip_tower_matches_transformers() {
    check_forward("llava_siglip");
    check_greedy("llava_siglip");
    check_gradients("llava_siglip");
}

#[test]
fn idefics3_matches_transformers() {
    check_forward("idefics3");
}

#[test]
fn llava_matches_transformers() {
    check_forward("llava");
}

fn check_greedy(name: &str) {
    let device = Device::flex();
    let loaded = load_pretrained(fixture(name), &device).unwrap();
    let reference = Reference::open(name);
    let ids_name = if reference.has("greedy_input_ids") {
        "greedy_input_ids"
    } else {
        "input_ids"
    };
    let (ids, shape) = reference.ints(ids_name);
    let prompt: Vec<u32> = ids[..shape[1]].iter().map(|&v| v as u32).collect();
    let images = if reference.has("pixel_values") {
        let pixels: Tensor<5> = reference.float_tensor("pixel_values", &device);
        let [b, n, c, h, w] = pixels.dims();
        // The greedy prompt uses the first image of the sample it was cut from.
        let sample = if name == "idefics3" { 1 } else { 0 };
        let pixel_values = Some(pixels.slice([sample..sample + 1, 0..1, 0..c, 0..h, 0..w]));
        let _ = (b, n);
        let pixel_attention_mask = reference.has("pixel_attention_mask").then(|| {
            let m: Tensor<4, Int> = reference.int_tensor("pixel_attention_mask", &device);
            m.slice([sample..sample + 1, 0..1, 0..h, 0..w])
        });
        GenerationImages {
            pixel_values,
            pixel_attention_mask,
            image_patches: None,
        }
    } else {
        GenerationImages::default()
    };
    let options = GenerationOptions {
        max_new_tokens: 10,
        ..Default::default()
    };
    let got = generate(&loaded.model, &[prompt], images, &options).unwrap();
    let (want, _) = reference.ints("greedy_tokens");
    let want: Vec<u32> = want.iter().map(|&v| v as u32).collect();
    assert_eq!(got[0], want, "{name}: greedy tokens");
}

#[test]
fn llama_greedy_tokens_match_transformers() {
    check_greedy("llama");
}

#[test]
fn idefics3_greedy_tokens_match_transformers() {
    check_greedy("idefics3");
}

#[test]
fn llava_greedy_tokens_match_transformers() {
    check_greedy("llava");
}

/// The unpadded prompts of the reference batch.
fn reference_prompts(reference: &Reference) -> Vec<Vec<u32>> {
    let (ids, shape) = reference.ints("input_ids");
    let (mask, _) = reference.ints("attention_mask");
    (0..shape[0])
        .map(|r| {
            (0..shape[1])
                .filter(|&c| mask[r * shape[1] + c] == 1)
                .map(|c| ids[r * shape[1] + c] as u32)
                .collect()
        })
        .collect()
}

/// Greedy tokens of the whole left-padded reference batch (with all its images) against transformers'.
fn check_batch_greedy(name: &str) {
    let device = Device::flex();
    let loaded = load_pretrained(fixture(name), &device).unwrap();
    let reference = Reference::open(name);
    let images = GenerationImages {
        image_patches: reference.image_patches(&device),
        ..Default::default()
    };
    let options = GenerationOptions {
        max_new_tokens: 10,
        ..Default::default()
    };
    let got = generate(
        &loaded.model,
        &reference_prompts(&reference),
        images,
        &options,
    )
    .unwrap();
    let (want, wshape) = reference.ints("batch_greedy_tokens");
    for (r, row) in got.iter().enumerate() {
        let want_row: Vec<u32> = want[r * wshape[1]..(r + 1) * wshape[1]]
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(row, &want_row, "{name}: greedy tokens of row {r}");
    }
}

/// The multimodal positions and position deltas against transformers' `get_rope_index`.
fn check_rope_index(name: &str) {
    let reference = Reference::open(name);
    let (ids, shape) = reference.ints("input_ids");
    let (mask, _) = reference.ints("attention_mask");
    let (grid, _) = reference.ints("image_grid_thw");
    let grids: Vec<[usize; 3]> = grid
        .chunks(3)
        .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
        .collect();
    let (positions, deltas) =
        svlm_model::qwen2_vl::rope_index(&ids, &mask, shape[0], 127, &grids, 2).unwrap();
    let (want, _) = reference.ints("position_ids");
    for (i, (&got, &want)) in positions.iter().zip(&want).enumerate() {
        if mask[i % (shape[0] * shape[1])] == 1 {
            assert_eq!(got, want, "{name}: position {i}");
        }
    }
    assert_eq!(
        deltas,
        reference.ints("rope_deltas").0,
        "{name}: rope deltas"
    );
}

#[test]
fn qwen2_5_vl_matches_transformers() {
    check_rope_index("qwen2_5_vl");
    check_forward("qwen2_5_vl");
    check_batch_greedy("qwen2_5_vl");
}

#[test]
fn qwen2_5_vl_loss_and_gradients_match_transformers() {
    check_gradients("qwen2_5_vl");
}

#[test]
fn qwen2_vl_matches_transformers() {
    check_rope_index("qwen2_vl");
    check_forward("qwen2_vl");
    check_batch_greedy("qwen2_vl");
    check_gradients("qwen2_vl");
}

/// Qwen3-VL's DeepStack features (the merged output of the chosen tower blocks) against transformers'.
fn check_deepstack(name: &str) {
    let device = Device::flex();
    let model = load_pretrained(fixture(name), &device).unwrap().model;
    let reference = Reference::open(name);
    let patches = reference.image_patches(&device).expect("image patches");
    let features = model.patch_features(&patches).unwrap();
    let n = reference
        .tensors
        .keys()
        .filter(|k| k.starts_with("deepstack_features."))
        .count();
    assert!(n > 0, "{name}: the reference has no DeepStack features");
    assert_eq!(
        features.deepstack.len(),
        n,
        "{name}: DeepStack feature count"
    );
    for (i, got) in features.deepstack.into_iter().enumerate() {
        let (want, shape) = reference.floats(&format!("deepstack_features.{i}"));
        assert_eq!(
            got.dims().to_vec(),
            shape,
            "{name}: DeepStack features {i} shape"
        );
        let got: Vec<f32> = got.into_data().convert::<f32>().try_into_vec().unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        println!("{name}: max |DeepStack features {i} - transformers| = {diff:e}");
        assert!(
            diff <= 1e-4,
            "{name}: DeepStack features {i} differ by {diff}"
        );
    }
}

#[test]
fn qwen3_vl_matches_transformers() {
    check_rope_index("qwen3_vl");
    check_deepstack("qwen3_vl");
    check_forward("qwen3_vl");
    check_batch_greedy("qwen3_vl");
}

#[test]
fn qwen3_vl_loss_and_gradients_match_transformers() {
    check_gradients("qwen3_vl");
}

#[test]
fn export_round_trip_is_bitwise_qwen3_vl() {
    check_round_trip("qwen3_vl", WeightDType::F32);
    // Saved under transformers 5's names, as `save_pretrained` writes Qwen3-VL.
    let device = Device::flex();
    let loaded = load_pretrained(fixture("qwen3_vl"), &device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exported");
    export_hf(&loaded.model, &out, &ExportOptions::default()).unwrap();
    let exported: Vec<String> = read_checkpoint_dir(&out).unwrap().into_keys().collect();
    let original: Vec<String> = read_checkpoint_dir(&fixture("qwen3_vl"))
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(exported, original, "qwen3_vl: exported tensor names");
}

#[test]
fn qwen3_vl_missing_wrong_shaped_and_unexpected_tensors_are_errors_naming_them() {
    let dir = tampered("qwen3_vl", |t| {
        t.remove("model.visual.deepstack_merger_list.1.norm.bias")
            .unwrap();
        let key = "model.language_model.layers.2.self_attn.q_norm.weight";
        let (dtype, _, bytes) = t.remove(key).unwrap();
        let half = bytes.len() / 2;
        t.insert(key.into(), (dtype, vec![half / 4], bytes[..half].to_vec()));
        t.insert(
            "model.visual.extra.weight".into(),
            (Dtype::F32, vec![1], vec![0; 4]),
        );
    });
    let err = load_pretrained(dir.path(), &Device::flex())
        .err()
        .expect("must fail")
        .to_string();
    for needle in [
        "missing",
        "model.visual.deepstack_merger_list.1.norm.bias",
        "wrong shapes",
        "model.language_model.layers.2.self_attn.q_norm.weight",
        "unexpected",
        "model.visual.extra.weight",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
}

#[test]
fn export_round_trip_is_bitwise_qwen2_5_vl() {
    check_round_trip("qwen2_5_vl", WeightDType::F32);
}

#[test]
fn qwen2_5_vl_missing_wrong_shaped_and_unexpected_tensors_are_errors_naming_them() {
    let dir = tampered("qwen2_5_vl", |t| {
        t.remove("visual.blocks.2.attn.qkv.bias").unwrap();
        let (dtype, _, bytes) = t.remove("visual.merger.mlp.2.bias").unwrap();
        let half = bytes.len() / 2;
        t.insert(
            "visual.merger.mlp.2.bias".into(),
            (dtype, vec![half / 4], bytes[..half].to_vec()),
        );
        t.insert(
            "visual.extra.weight".into(),
            (Dtype::F32, vec![1], vec![0; 4]),
        );
    });
    let err = load_pretrained(dir.path(), &Device::flex())
        .err()
        .expect("must fail")
        .to_string();
    for needle in [
        "missing",
        "visual.blocks.2.attn.qkv.bias",
        "wrong shapes",
        "visual.merger.mlp.2.bias",
        "visual.extra.weight",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
}

#[test]
fn llama_left_padded_batch_generation_matches_transformers() {
    let device = Device::flex();
    let loaded = load_pretrained(fixture("llama"), &device).unwrap();
    let reference = Reference::open("llama");
    let (ids, shape) = reference.ints("input_ids");
    let (mask, _) = reference.ints("attention_mask");
    let prompts: Vec<Vec<u32>> = (0..shape[0])
        .map(|r| {
            (0..shape[1])
                .filter(|&c| mask[r * shape[1] + c] == 1)
                .map(|c| ids[r * shape[1] + c] as u32)
                .collect()
        })
        .collect();
    let options = GenerationOptions {
        max_new_tokens: 10,
        ..Default::default()
    };
    let got = generate(
        &loaded.model,
        &prompts,
        GenerationImages::default(),
        &options,
    )
    .unwrap();
    let (want, wshape) = reference.ints("batch_greedy_tokens");
    for (r, row) in got.iter().enumerate() {
        let want_row: Vec<u32> = want[r * wshape[1]..(r + 1) * wshape[1]]
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(row, &want_row, "row {r}");
    }
}

fn check_gradients(name: &str) {
    let device = Device::flex().autodiff();
    let loaded = load_pretrained(fixture(name), &device).unwrap();
    let model = loaded.model;
    let reference = Reference::open(name);
    let loss = model.loss(&reference.batch(&device));
    let got_loss: f32 = loss
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()[0];
    let (want_loss, _) = reference.floats("loss");
    let rel = (got_loss - want_loss[0]).abs() / want_loss[0].abs();
    assert!(rel <= 1e-4, "{name}: loss {got_loss} vs {}", want_loss[0]);

    let grads = loss.backward();
    let got = model.gradients_by_name(&grads);
    let family = model.config().family();
    let mut checked = 0;
    let mut worst = (0f32, String::new());
    let mut failures = Vec::new();
    for key in reference.tensors.keys().filter(|k| k.starts_with("grad.")) {
        let hf_name = &key["grad.".len()..];
        let path = canonical_name(family, hf_name, false).unwrap_or_else(|| hf_name.to_string());
        let (want, _) = reference.floats(key);
        let scale = want.iter().map(|v| v.abs()).fold(0.0, f32::max);
        match got.get(&path) {
            Some(data) => {
                let g = data.clone().convert::<f32>().try_into_vec::<f32>().unwrap();
                assert_eq!(g.len(), want.len(), "{name}: gradient size of {hf_name}");
                let diff = g
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                // Relative to the tensor's largest gradient entry (entries near zero have no
                // meaningful relative error).
                let relative = diff / scale.max(1e-6);
                if relative > worst.0 {
                    worst = (relative, hf_name.to_string());
                }
                if diff > 1e-4 * scale.max(1e-6) {
                    failures.push(format!("{hf_name}: differs by {diff} (max |grad| {scale})"));
                }
            }
            None => assert!(
                scale == 0.0,
                "{name}: no gradient for {hf_name} but transformers has one"
            ),
        }
        checked += 1;
    }
    assert!(
        checked > 10,
        "{name}: only {checked} gradients in the reference"
    );
    println!(
        "{name}: loss {got_loss} (relative difference {rel:e}); {checked} gradients, the worst {} at {:e} of its largest entry",
        worst.1, worst.0
    );
    if predicts_from_padding(&reference) {
        // transformers' eager attention adds its mask, so a padding query, whose every key is masked, still passes
        // gradient to q and k (the scores vanish into the mask in the forward pass only); svlm's masked rows pass
        // none. Where a padding position predicts a kept label the gradients upstream of attention differ by that
        // alone (the loss agrees), so such references check the loss only.
        println!(
            "{name}: the reference predicts kept labels from padding positions; {} gradients differ by transformers' masked-row gradient",
            failures.len()
        );
        return;
    }
    assert!(
        failures.is_empty(),
        "{name}: {} gradients differ from transformers':\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Whether a kept label (not [`IGNORE_INDEX`]) follows a padding position, which then predicts it.
fn predicts_from_padding(reference: &Reference) -> bool {
    let (labels, shape) = reference.ints("labels");
    let (mask, _) = reference.ints("attention_mask");
    let seq = shape[1];
    (0..labels.len()).any(|i| i % seq > 0 && labels[i] != IGNORE_INDEX && mask[i - 1] == 0)
}

#[test]
fn llama_loss_and_gradients_match_transformers() {
    check_gradients("llama");
}

#[test]
fn idefics3_loss_and_gradients_match_transformers() {
    check_gradients("idefics3");
}

#[test]
fn llava_loss_and_gradients_match_transformers() {
    check_gradients("llava");
}

fn check_round_trip(name: &str, dtype: WeightDType) {
    let device = Device::flex();
    let src = fixture(name);
    let loaded = load_pretrained(&src, &device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exported");
    export_hf(
        &loaded.model,
        &out,
        &ExportOptions {
            dtype,
            side_files_from: Some(src.clone()),
            overwrite: false,
        },
    )
    .unwrap();
    assert!(out.join("config.json").is_file() && out.join("generation_config.json").is_file());
    // Same tensors, same names (modulo spelling), same bits.
    let original = read_checkpoint_dir(&src).unwrap();
    let exported = read_checkpoint_dir(&out).unwrap();
    let family = loaded.config.family();
    let canon = |m: &BTreeMap<String, CheckpointTensor>| -> BTreeMap<String, Vec<u8>> {
        m.iter()
            .filter_map(|(k, t)| {
                canonical_name(family, k, false).map(|p| {
                    let data = t.to_data(k, dtype).unwrap();
                    (p, data.into_bytes().to_vec())
                })
            })
            .collect()
    };
    let (a, b) = (canon(&original), canon(&exported));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{name}: tensor names"
    );
    for (k, bytes) in &a {
        assert!(bytes == &b[k], "{name}: {k} changed in the round trip");
    }
    // And the exported folder loads back to the same logits.
    let reloaded = load_pretrained_as(&out, &device, dtype).unwrap();
    let reference = Reference::open(name);
    let batch = reference.batch(&device);
    let l1 = values(loaded.model.forward(&batch));
    let l2 = values(reloaded.model.forward(&batch));
    if dtype == WeightDType::F32 {
        assert_eq!(l1, l2, "{name}: logits after round trip");
    }
    // Exporting twice into the same place without overwrite is refused, with overwrite it works.
    let opts = ExportOptions {
        dtype,
        side_files_from: None,
        overwrite: false,
    };
    assert!(export_hf(&reloaded.model, &out, &opts).is_err());
    export_hf(
        &reloaded.model,
        &out,
        &ExportOptions {
            overwrite: true,
            ..opts
        },
    )
    .unwrap();
}

#[test]
fn export_round_trip_is_bitwise_llama() {
    check_round_trip("llama", WeightDType::F32);
}

#[test]
fn export_round_trip_is_bitwise_idefics3() {
    check_round_trip("idefics3", WeightDType::F32);
}

#[test]
fn export_round_trip_is_bitwise_llava() {
    check_round_trip("llava", WeightDType::F32);
}

/// Copies a fixture with its safetensors rewritten by `edit`.
fn tampered(
    name: &str,
    edit: impl Fn(&mut BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>),
) -> tempfile::TempDir {
    let src = fixture(name);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let mut tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = read_checkpoint_dir(&src)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, (t.dtype, t.shape.clone(), t.bytes().to_vec())))
        .collect();
    edit(&mut tensors);
    struct V<'a>(&'a (Dtype, Vec<usize>, Vec<u8>));
    impl safetensors::View for V<'_> {
        fn dtype(&self) -> Dtype {
            self.0.0
        }
        fn shape(&self) -> &[usize] {
            &self.0.1
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.0.2)
        }
        fn data_len(&self) -> usize {
            self.0.2.len()
        }
    }
    let bytes =
        safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), V(v))), None).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), bytes).unwrap();
    tmp
}

fn fixture_logits(dir: &Path, name: &str) -> Vec<f32> {
    let device = Device::flex();
    let model = load_pretrained(dir, &device).unwrap().model;
    let batch = Reference::open(name).batch(&device);
    values(model.forward_output(&batch, false).unwrap().logits)
}

#[test]
fn llava_loads_the_hub_key_spelling_too() {
    // transformers 5 writes `vision_tower.*`; the llava-hf hub checkpoints have `vision_tower.vision_model.*`.
    let dir = tampered("llava", |t| {
        let tower: Vec<String> = t
            .keys()
            .filter(|k| k.starts_with("vision_tower."))
            .cloned()
            .collect();
        assert!(!tower.is_empty());
        for key in tower {
            let value = t.remove(&key).unwrap();
            let rest = key.strip_prefix("vision_tower.").unwrap();
            t.insert(format!("vision_tower.vision_model.{rest}"), value);
        }
    });
    assert_eq!(
        fixture_logits(dir.path(), "llava"),
        fixture_logits(&fixture("llava"), "llava")
    );
}

#[test]
fn sharded_checkpoint_loads_like_the_single_file() {
    let src = fixture("idefics3");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let tensors = read_checkpoint_dir(&src).unwrap();
    let names: Vec<String> = tensors.keys().cloned().collect();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let views: Vec<(String, safetensors::tensor::TensorView)> = part
            .iter()
            .map(|k| {
                let t = &tensors[k];
                let view =
                    safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), t.bytes())
                        .unwrap();
                (k.clone(), view)
            })
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        std::fs::write(tmp.path().join(file), bytes).unwrap();
        for k in part {
            weight_map.insert(k.clone(), serde_json::Value::String(file.into()));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    assert!(!tmp.path().join("model.safetensors").exists());
    assert_eq!(
        fixture_logits(tmp.path(), "idefics3"),
        fixture_logits(&src, "idefics3")
    );
    // A shard the index names but the folder lacks is an error naming it.
    std::fs::remove_file(tmp.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_pretrained(tmp.path(), &Device::flex())
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}

#[test]
fn missing_tensor_is_an_error_naming_it() {
    let dir = tampered("idefics3", |t| {
        t.remove("model.text_model.layers.1.mlp.up_proj.weight");
    });
    let err = load_pretrained(dir.path(), &Device::flex())
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("model.text_model.layers.1.mlp.up_proj.weight"),
        "{err}"
    );
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn wrong_shape_and_unexpected_tensors_are_errors_naming_them() {
    let dir = tampered("llava", |t| {
        let key = t
            .keys()
            .find(|k| k.contains("multi_modal_projector.linear_2.bias"))
            .unwrap()
            .clone();
        let (dtype, _, bytes) = t.remove(&key).unwrap();
        let half = bytes.len() / 2;
        t.insert(key, (dtype, vec![half / 4], bytes[..half].to_vec()));
        t.insert("extra.weight".into(), (Dtype::F32, vec![1], vec![0; 4]));
    });
    let err = load_pretrained(dir.path(), &Device::flex())
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("multi_modal_projector.linear_2.bias"), "{err}");
    assert!(err.contains("wrong shapes"), "{err}");
    assert!(err.contains("extra.weight"), "{err}");
}

#[test]
fn bf16_checkpoints_load_cast_to_f32() {
    // Export as bf16, load as f32: logits stay close to the f32 model's.
    let device = Device::flex();
    let loaded = load_pretrained(fixture("llama"), &device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bf16");
    export_hf(
        &loaded.model,
        &out,
        &ExportOptions {
            dtype: WeightDType::Bf16,
            ..Default::default()
        },
    )
    .unwrap();
    let tensors = read_checkpoint_dir(&out).unwrap();
    assert!(tensors.values().all(|t| t.dtype == Dtype::BF16));
    let reloaded = load_pretrained_as(&out, &device, WeightDType::F32).unwrap();
    let reference = Reference::open("llama");
    let batch = reference.batch(&device);
    let a = values(loaded.model.forward(&batch));
    let b = values(reloaded.model.forward(&batch));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        diff > 0.0 && diff < 0.5,
        "bf16 rounding should perturb logits slightly, got {diff}"
    );
}

#[test]
fn from_config_model_trains_a_step_on_cpu() {
    // The quickstart path: random init from a config, loss decreases after one SGD step.
    let device = Device::flex().autodiff();
    let cfg = svlm_model::ModelConfig::Llama(svlm_model::LlamaConfig::tiny(64, 32, 2, 4, 2));
    let model = Vlm::from_config(&cfg, &device).unwrap();
    let ids: Vec<i64> = (0..16).map(|i| (i * 7 % 60) as i64).collect();
    let batch = VlmBatch {
        input_ids: Tensor::from_data(TensorData::new(ids, [2, 8]), &device),
        attention_mask: Tensor::ones([2, 8], &device),
        labels: None,
        pixel_values: None,
        pixel_attention_mask: None,
        image_patches: None,
        packing: None,
    };
    let loss = model.loss(&batch);
    let before: f32 = loss
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()[0];
    assert!(
        (before - (64f32).ln()).abs() < 0.5,
        "initial loss {before} should be near ln(vocab)"
    );
    let grads = model.gradients_by_name(&loss.backward());
    assert!(grads.contains_key("model.layers.0.self_attn.q_proj.weight"));
    assert!(grads.contains_key("lm_head.weight"));
}
