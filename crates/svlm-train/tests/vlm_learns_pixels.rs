//! The whole path from pixels to the answer trains: a tiny Idefics3 (svlm-model) learns, through the trainer, to
//! say where a coloured square is and which colour it has, from questions whose text is always the same — so
//! only the image can decide the answer. Held-out images (new positions) must be answered right.

use burn::tensor::Device;
use svlm_train::batch::{HostBatch, SampleEncoder};
use svlm_train::bench::{VOCAB, WordEncoder, model_config};
use svlm_train::config::{RunConfig, SourceConfig, SourceFormat};
use svlm_train::data::DataSource;
use svlm_train::model::TrainableModel;
use svlm_train::trainer::{TrainOptions, train};

const COLORS: [[u8; 3]; 2] = [[230, 40, 40], [40, 60, 230]];
/// Answer words: colour (w20 red, w21 blue), then side (w30 left, w31 right).
const COLOR_WORDS: [u32; 2] = [20, 21];
const SIDE_WORDS: [u32; 2] = [30, 31];

/// `n` rows; row i has a square of colour `i % 2` on side `(i / 2) % 2` at a position drawn from `seed`.
fn write_squares(dir: &std::path::Path, name: &str, n: usize, seed: u64) -> std::path::PathBuf {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    std::fs::create_dir_all(dir.join("images")).expect("mkdir");
    let mut lines = String::new();
    for i in 0..n {
        let (color, side) = (i % 2, (i / 2) % 2);
        let size = 16u32;
        let x0 = if side == 0 {
            rng.random_range(0..32 - size)
        } else {
            rng.random_range(32..64 - size)
        };
        let y0 = rng.random_range(0..64 - size);
        let img = image::RgbImage::from_fn(64, 64, |x, y| {
            if (x0..x0 + size).contains(&x) && (y0..y0 + size).contains(&y) {
                image::Rgb(COLORS[color])
            } else {
                image::Rgb([90, 90, 90])
            }
        });
        let image = format!("images/{name}-{i}.png");
        img.save(dir.join(&image)).expect("png");
        let row = serde_json::json!({
            "messages": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "w10 w11 w12"}]},
                {"role": "assistant", "content": format!("w{} w{}", COLOR_WORDS[color], SIDE_WORDS[side])}
            ],
            "images": [image]
        });
        lines.push_str(&format!("{row}\n"));
    }
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, lines).expect("jsonl");
    path
}

#[test]
fn idefics3_learns_colour_and_side_from_pixels_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("model")).expect("mkdir");
    std::fs::write(
        dir.path().join("model/config.json"),
        model_config().to_string(),
    )
    .expect("config");
    let train_path = write_squares(dir.path(), "train", 256, 1);
    let test_path = write_squares(dir.path(), "test", 32, 2);
    let text = format!(
        "seed = 3\n[model]\nconfig = \"model/config.json\"\nmax_seq_len = 64\n[train]\nstage = \"full\"\nsteps = 400\n\
         batch_size = 16\n[optim]\nlr = 3e-3\nbeta2 = 0.95\nwarmup_steps = 10\n[log]\nprogress = false\n\
         [[data.sources]]\nname = \"squares\"\npath = \"{}\"\nweight = 1.0\n",
        train_path.display()
    );
    let config = RunConfig::from_toml_str(&text, dir.path()).expect("config");
    let device = Device::flex().autodiff();
    let (model, _) = svlm_train::vlm::build_model(&config, &device).expect("model");
    let run_dir = dir.path().join("run");
    let outcome = train(
        &config,
        &run_dir,
        model,
        &WordEncoder::TINY,
        &device,
        &TrainOptions::default(),
    )
    .expect("train");
    let (_, checkpoint) = svlm_train::checkpoint::latest_checkpoint(&run_dir).expect("checkpoint");
    let inner = Device::flex();
    let trained = svlm_model::load_pretrained(&checkpoint, &inner).expect("reload");

    // Teacher-forced held-out answers: the logits at the two answer positions must pick the right words.
    let source = DataSource::open(
        &SourceConfig {
            name: "test".into(),
            path: test_path,
            format: SourceFormat::ChatJsonl,
            image_root: None,
            weight: 1.0,
            max_samples: None,
            epochs: None,
            holdout: 0,
        },
        0,
    )
    .expect("test source");
    let samples: Vec<_> = (0..source.len())
        .map(|i| {
            WordEncoder::TINY
                .encode(&source.get(i, 0).expect("row"), 64)
                .expect("encode")
        })
        .collect();
    let batch = HostBatch::collate(&samples, WordEncoder::TINY.pad_id());
    let logits: Vec<f32> = trained
        .model
        .logits(&batch, &inner)
        .expect("forward")
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32");
    let vocab = VOCAB as usize;
    let (mut colour_right, mut side_right) = (0, 0);
    for (b, sample) in samples.iter().enumerate() {
        // Labels are the targets of the next-token prediction at the position before them.
        let answers: Vec<usize> = (1..sample.labels.len())
            .filter(|&t| {
                sample.labels[t] >= 0 && (sample.labels[t] as u32) != svlm_train::bench::EOS
            })
            .collect();
        assert_eq!(answers.len(), 2, "two answer words per row");
        let argmax = |t: usize| {
            let row = &logits[(b * batch.seq_len + t - 1) * vocab..(b * batch.seq_len + t) * vocab];
            (0..vocab)
                .max_by(|&i, &j| row[i].total_cmp(&row[j]))
                .unwrap_or(0) as i64
        };
        colour_right += usize::from(argmax(answers[0]) == sample.labels[answers[0]]);
        side_right += usize::from(argmax(answers[1]) == sample.labels[answers[1]]);
    }
    let n = samples.len();
    eprintln!(
        "final loss {:?}; held-out colour {colour_right}/{n}, side {side_right}/{n}",
        outcome.final_loss
    );
    assert!(
        colour_right * 10 >= n * 9,
        "colour from pixels: {colour_right}/{n}"
    );
    assert!(
        side_right * 10 >= n * 9,
        "side from pixels: {side_right}/{n}"
    );
}
