//! svlm-model's Idefics3 through the trainer: a checkpoint is an HF folder that svlm-model reloads (and exports)
//! with identical logits, and a frozen vision tower stays bitwise fixed in the real model too.

use burn::tensor::Device;
use svlm_train::batch::{HostBatch, SampleEncoder};
use svlm_train::bench::{WordEncoder, model_config, write_data};
use svlm_train::checkpoint::latest_checkpoint;
use svlm_train::config::RunConfig;
use svlm_train::data::DataSource;
use svlm_train::model::{TrainableModel, snapshot};
use svlm_train::trainer::{TrainOptions, train};

fn logits(model: &svlm_model::Vlm, batch: &HostBatch, device: &Device) -> Vec<f32> {
    model
        .logits(batch, device)
        .expect("forward")
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32")
}

/// The first `n` rows of a bench data file, encoded and padded into one batch.
fn first_rows(data: &std::path::Path, n: usize) -> HostBatch {
    let source = DataSource::open(
        &svlm_train::config::SourceConfig {
            name: "bench".into(),
            path: data.to_path_buf(),
            format: svlm_train::config::SourceFormat::ChatJsonl,
            image_root: None,
            weight: 1.0,
            max_samples: None,
            epochs: None,
            holdout: 0,
        },
        0,
    )
    .expect("source");
    let samples: Vec<_> = (0..n)
        .map(|i| {
            WordEncoder::TINY
                .encode(&source.get(i, 0).expect("row"), 256)
                .expect("encode")
        })
        .collect();
    HostBatch::collate(&samples, WordEncoder::TINY.pad_id())
}

#[test]
fn checkpoint_reloads_and_exports_with_identical_logits() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("model")).expect("mkdir");
    std::fs::write(
        dir.path().join("model/config.json"),
        model_config().to_string(),
    )
    .expect("config");
    let data = write_data(
        &dir.path().join("data"),
        12,
        &svlm_train::bench::BenchShape::TINY,
    )
    .expect("data");
    let text = format!(
        "seed = 1\n[model]\nconfig = \"model/config.json\"\nmax_seq_len = 256\n[train]\nstage = \"finetune\"\nsteps = 2\nbatch_size = 4\n\
         [optim]\nlr = 1e-3\n[log]\nprogress = false\n[[data.sources]]\nname = \"bench\"\npath = \"{}\"\nweight = 1.0\n",
        data.display()
    );
    let config = RunConfig::from_toml_str(&text, dir.path()).expect("config");
    let device = Device::flex().autodiff();
    let (model, _) = svlm_train::vlm::build_model(&config, &device).expect("model");
    let before = snapshot(&model);
    let run_dir = dir.path().join("run");
    train(
        &config,
        &run_dir,
        model,
        &WordEncoder::TINY,
        &device,
        &TrainOptions::default(),
    )
    .expect("train");

    let (_, ckpt) = latest_checkpoint(&run_dir).expect("checkpoint");
    let inner = Device::flex();
    let reloaded =
        svlm_model::load_pretrained(&ckpt, &inner).expect("svlm-model loads the checkpoint folder");
    // The trained weights: stage finetune keeps the vision tower bitwise, moves the rest.
    let after = snapshot(&reloaded.model);
    let mut moved = 0;
    for (path, values) in &before {
        let now = after
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing after reload"));
        if path.contains("vision_model") {
            assert_eq!(now, values, "frozen {path} changed");
        } else if now != values {
            moved += 1;
        }
    }
    assert!(moved > 0, "nothing trained");

    // Export the reloaded model as an HF folder and load that again: same logits on a real batch.
    let export_dir = dir.path().join("export");
    svlm_model::export_hf(
        &reloaded.model,
        &export_dir,
        &svlm_model::ExportOptions {
            dtype: svlm_model::WeightDType::F32,
            side_files_from: None,
            overwrite: true,
        },
    )
    .expect("export");
    let exported = svlm_model::load_pretrained(&export_dir, &inner).expect("reload export");

    let batch = first_rows(&data, 3);
    let a = logits(&reloaded.model, &batch, &inner);
    let b = logits(&exported.model, &batch, &inner);
    assert_eq!(
        a.len(),
        batch.batch * batch.seq_len * svlm_train::bench::VOCAB as usize
    );
    assert_eq!(a, b, "export -> reload must give identical logits");
}

/// The trainer's loss runs the output head on the supervised positions only: the logits there, the per-token loss
/// and its sum equal the full forward's.
#[test]
fn logits_at_supervised_positions_match_the_full_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config: svlm_model::ModelConfig =
        svlm_model::ModelConfig::from_json(&model_config()).expect("model config");
    let inner = Device::flex();
    let model = svlm_model::Vlm::from_config(&config, &inner).expect("model");
    let data = write_data(
        &dir.path().join("data"),
        6,
        &svlm_train::bench::BenchShape::TINY,
    )
    .expect("data");
    let batch = first_rows(&data, 4);
    let supervised = svlm_train::model::Supervised::of(&batch);
    assert!(!supervised.positions.is_empty());
    assert!(supervised.positions.len() < batch.batch * batch.seq_len / 2);

    let full = logits(&model, &batch, &inner);
    let vocab = svlm_train::bench::VOCAB as usize;
    let at = model
        .logits_at(&batch, &supervised.positions, &inner)
        .expect("logits at");
    assert_eq!(at.dims(), [supervised.positions.len(), vocab]);
    let at: Vec<f32> = at.into_data().convert::<f32>().try_into_vec().expect("f32");
    for (k, &p) in supervised.positions.iter().enumerate() {
        let row = &full[p as usize * vocab..(p as usize + 1) * vocab];
        let got = &at[k * vocab..(k + 1) * vocab];
        let diff = row
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "position {p}: max difference {diff}");
    }

    let masked = svlm_train::model::token_nll(
        model.logits(&batch, &inner).expect("forward"),
        &batch,
        &inner,
    )
    .sum()
    .into_scalar::<f32>();
    let picked = svlm_train::model::nll_at(
        model
            .logits_at(&batch, &supervised.positions, &inner)
            .expect("logits at"),
        &supervised.targets,
        &inner,
    );
    let per_token: Vec<f32> = picked
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("f32");
    assert_eq!(per_token.len(), supervised.positions.len());
    assert!(per_token.iter().all(|v| v.is_finite() && *v > 0.0));
    let sum = picked.sum().into_scalar::<f32>();
    assert!(
        (sum - masked).abs() < 1e-3 * masked.abs(),
        "{sum} vs {masked}"
    );
}
