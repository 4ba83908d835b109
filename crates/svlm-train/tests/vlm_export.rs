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

#[test]
fn checkpoint_reloads_and_exports_with_identical_logits() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("model")).expect("mkdir");
    std::fs::write(
        dir.path().join("model/config.json"),
        model_config().to_string(),
    )
    .expect("config");
    let data = write_data(&dir.path().join("data"), 12).expect("data");
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
        &WordEncoder,
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

    let source = DataSource::open(
        &svlm_train::config::SourceConfig {
            name: "bench".into(),
            path: data.clone(),
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
    let samples: Vec<_> = (0..3)
        .map(|i| {
            WordEncoder
                .encode(&source.get(i, 0).expect("row"), 256)
                .expect("encode")
        })
        .collect();
    let batch = HostBatch::collate(&samples, WordEncoder.pad_id());
    let a = logits(&reloaded.model, &batch, &inner);
    let b = logits(&exported.model, &batch, &inner);
    assert_eq!(
        a.len(),
        batch.batch * batch.seq_len * svlm_train::bench::VOCAB as usize
    );
    assert_eq!(a, b, "export -> reload must give identical logits");
}
