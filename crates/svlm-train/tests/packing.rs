//! Sequence packing with svlm-model's real models: a packed batch gives the loss, the per-sample losses and every
//! gradient of the same samples padded one per row, and a sample's logits do not depend on the samples sharing its
//! row (tiny Idefics3 with one and two images per sample, and a text-only Llama).

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use svlm_model::{ModelConfig, Vlm};
use svlm_train::batch::{EncodedSample, HostBatch, IGNORE_INDEX};
use svlm_train::bench::{
    ASSISTANT, BOS, EOS, FAKE, GLOBAL, IMAGE_SEQ_LEN, IMAGE_SIZE, IMAGE_TOKEN, USER, model_config,
};
use svlm_train::model::{Supervised, TrainableModel, nll_at};

const TOL: f32 = 1e-5;

/// A sample of `images` images (random pixels), `user` prompt words and `answer` supervised words, tokenized as
/// `svlm_train::bench::WordEncoder` does.
fn sample(
    rng: &mut rand_chacha::ChaCha8Rng,
    vocab: u32,
    images: usize,
    user: usize,
    answer: usize,
) -> EncodedSample {
    let word = |rng: &mut rand_chacha::ChaCha8Rng| rng.random_range(8..vocab - 1);
    let mut ids = vec![BOS, USER];
    for _ in 0..images {
        ids.extend([FAKE, GLOBAL]);
        ids.extend(std::iter::repeat_n(IMAGE_TOKEN, IMAGE_SEQ_LEN));
        ids.push(FAKE);
    }
    ids.extend((0..user).map(|_| word(rng)));
    ids.extend([EOS, ASSISTANT]);
    let prompt = ids.len();
    ids.extend((0..answer).map(|_| word(rng)));
    ids.push(EOS);
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if i >= prompt {
                i64::from(t)
            } else {
                IGNORE_INDEX
            }
        })
        .collect();
    let tile = 3 * IMAGE_SIZE * IMAGE_SIZE;
    EncodedSample {
        source: images,
        origin: format!("test:{}", ids.len()),
        input_ids: ids,
        labels,
        pixel_values: (0..images * tile)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect(),
        tiles: images,
        tile_shape: [3, IMAGE_SIZE, IMAGE_SIZE],
        image_grid_thw: Vec::new(),
        truncated: 0,
    }
}

fn idefics3(device: &Device) -> Vlm {
    let config = ModelConfig::from_json(&model_config()).expect("model config");
    device.seed(11);
    Vlm::from_config(&config, device).expect("model")
}

fn llama(device: &Device) -> Vlm {
    let config = ModelConfig::Llama(svlm_model::LlamaConfig::tiny(64, 32, 2, 4, 2));
    device.seed(12);
    Vlm::from_config(&config, device).expect("model")
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32")
}

/// The trainer's loss of one micro-batch (sum over supervised tokens / `total`), its per-sample sums and the
/// gradient of every parameter by name.
fn loss_and_grads(
    model: &Vlm,
    batch: &HostBatch,
    total: usize,
    device: &Device,
) -> (f32, Vec<f32>, BTreeMap<String, Vec<f32>>) {
    let supervised = Supervised::of(batch);
    let logits = model
        .logits_at(batch, &supervised.positions, device)
        .expect("forward");
    let nll = nll_at(logits, &supervised.targets, device);
    let mut per_sample = vec![0.0f32; batch.samples()];
    for (&k, v) in supervised.samples.iter().zip(values(nll.clone())) {
        per_sample[k] += v;
    }
    let loss = nll.sum().div_scalar(total as f64);
    let grads = loss.clone().backward();
    let by_name = model
        .gradients_by_name(&grads)
        .into_iter()
        .map(|(k, v)| (k, v.convert::<f32>().try_into_vec::<f32>().expect("f32")))
        .collect();
    (values(loss)[0], per_sample, by_name)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= TOL * b.abs().max(1.0)
}

/// Packed rows `rows` (indices into `samples`) against the same samples padded one per row, in the order the
/// packed batch lists them.
fn assert_packed_equals_padded(
    model: &Vlm,
    samples: &[EncodedSample],
    rows: &[Vec<usize>],
    len: usize,
) {
    let device = Device::flex().autodiff();
    let packed_rows: Vec<Vec<&EncodedSample>> = rows
        .iter()
        .map(|r| r.iter().map(|&i| &samples[i]).collect())
        .collect();
    let packed = HostBatch::pack(&packed_rows, len, 0);
    let order: Vec<EncodedSample> = rows.iter().flatten().map(|&i| samples[i].clone()).collect();
    let padded = HostBatch::collate(&order, 0);
    assert!(packed.pad_fraction() < padded.pad_fraction());
    assert_eq!(packed.supervised, padded.supervised);
    let total = padded.supervised_tokens();
    let (loss_p, per_p, grads_p) = loss_and_grads(model, &packed, total, &device);
    let (loss_u, per_u, grads_u) = loss_and_grads(model, &padded, total, &device);
    assert!(
        close(loss_p, loss_u),
        "loss packed {loss_p} vs padded {loss_u}"
    );
    for (k, (p, u)) in per_p.iter().zip(&per_u).enumerate() {
        assert!(close(*p, *u), "sample {k}: loss sum {p} vs {u}");
    }
    assert_eq!(
        grads_p.keys().collect::<Vec<_>>(),
        grads_u.keys().collect::<Vec<_>>()
    );
    assert!(grads_u.len() > 10, "{} gradients", grads_u.len());
    for (name, u) in &grads_u {
        let p = &grads_p[name];
        let worst = p
            .iter()
            .zip(u)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0f32, f32::max);
        assert!(worst <= TOL, "{name}: gradient differs by {worst}");
        assert!(u.iter().any(|&v| v != 0.0), "{name}: zero gradient");
    }
}

#[test]
fn packed_idefics3_batch_has_the_loss_and_gradients_of_the_padded_one() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let samples = vec![
        sample(&mut rng, 512, 1, 5, 4),
        sample(&mut rng, 512, 2, 3, 6),
        sample(&mut rng, 512, 0, 7, 3),
        sample(&mut rng, 512, 1, 2, 5),
        sample(&mut rng, 512, 1, 9, 2),
    ];
    let device = Device::flex().autodiff();
    let model = idefics3(&device);
    // Two images of one sample follow another sample's image in row 0; a text-only sample sits between images.
    assert_packed_equals_padded(&model, &samples, &[vec![0, 1, 2], vec![3, 4]], 112);
}

#[test]
fn packed_llama_batch_has_the_loss_and_gradients_of_the_padded_one() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let samples: Vec<EncodedSample> = (0..6)
        .map(|i| sample(&mut rng, 64, 0, 2 + 3 * i, 1 + (5 * i) % 7))
        .collect();
    let device = Device::flex().autodiff();
    let model = llama(&device);
    assert_packed_equals_padded(&model, &samples, &[vec![0, 5, 1], vec![2, 3, 4]], 64);
}

/// Logits of `sample` when it shares a row with other samples equal its logits alone, and the row's padding stays
/// finite.
#[test]
fn a_samples_logits_do_not_depend_on_its_row_neighbours() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let before = sample(&mut rng, 512, 1, 4, 3);
    let target = sample(&mut rng, 512, 1, 6, 5);
    let after = sample(&mut rng, 512, 2, 2, 2);
    let device = Device::flex();
    let model = idefics3(&device);
    let vocab = 512;
    let alone = values(
        model
            .logits(
                &HostBatch::collate(std::slice::from_ref(&target), 0),
                &device,
            )
            .expect("forward"),
    );
    let packed = HostBatch::pack(&[vec![&before, &target, &after]], 128, 0);
    assert!(packed.real_tokens < 128, "the row ends in padding");
    let span = packed.spans[1];
    let shared = values(model.logits(&packed, &device).expect("forward"));
    assert!(
        shared.iter().all(|v| v.is_finite()),
        "padding rows stay finite"
    );
    let n = target.input_ids.len();
    let got = &shared[span.start * vocab..(span.start + n) * vocab];
    let worst = got
        .iter()
        .zip(&alone)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= TOL,
        "logits moved by {worst} with neighbours in the row"
    );
    // The same sample first in the row, behind different neighbours, too.
    let packed = HostBatch::pack(&[vec![&target, &before]], 128, 0);
    let shared = values(model.logits(&packed, &device).expect("forward"));
    let worst = shared[..n * vocab]
        .iter()
        .zip(&alone)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= TOL,
        "logits moved by {worst} as the first sample of a row"
    );
}

/// The loader's packed micro-batches over one epoch: every one `pack_rows x pack_len`, every training row in
/// exactly one of them (samples that did not fit wait for the next batch, none is lost or repeated), and the
/// padding small.
#[test]
fn packed_loader_batches_have_one_shape_and_cover_the_epoch_once() {
    use svlm_train::bench::{WordEncoder, write_data};
    use svlm_train::config::RunConfig;
    use svlm_train::data::DataSet;
    use svlm_train::loader::{Batching, Loader};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = write_data(
        &dir.path().join("data"),
        160,
        &svlm_train::bench::BenchShape::TINY,
    )
    .expect("data");
    let text = format!(
        "seed = 2\n[model]\nconfig = \"unused.json\"\nmax_seq_len = 512\n[train]\nbatch_size = 16\n\
         [data]\nstop = \"all_exhausted\"\n[[data.sources]]\nname = \"bench\"\npath = \"{}\"\nweight = 1.0\nholdout = 0\n",
        data.display()
    );
    let config = RunConfig::from_toml_str(&text, dir.path()).expect("config");
    assert!(config.train.packing, "packing is the default");
    let set = DataSet::open(&config.data.sources, 0.0).expect("data set");
    let mut loader = Loader::new(&config, &set, &WordEncoder::TINY).expect("loader");
    let Batching::Packed { rows, len } = loader.batching() else {
        panic!("not packed: {:?}", loader.batching());
    };
    assert_eq!(len, 512, "pack_len defaults to max_seq_len");
    assert!(rows >= 2, "{rows} rows for 16 samples of about 60 tokens");
    let mut seen = Vec::new();
    let (mut real, mut total, mut batches) = (0usize, 0usize, Vec::new());
    while let Some(b) = loader.next_batch().expect("batch") {
        assert_eq!((b.batch, b.seq_len), (rows, len));
        seen.extend(b.origins.iter().cloned());
        batches.push((b.real_tokens, b.batch * b.seq_len));
    }
    // The last batch takes what is left; all others are full but for the gaps no sample fitted.
    for &(r, t) in &batches[..batches.len() - 1] {
        real += r;
        total += t;
    }
    let pad = 1.0 - real as f64 / total as f64;
    assert!(pad <= 0.05, "pad fraction {pad}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted.len()), (160, 160), "each row once");
    let mean = seen.len() as f64 / batches.len() as f64;
    assert!(
        (mean - 16.0).abs() <= 3.0,
        "about batch_size samples per micro-batch, got {mean}"
    );
}
