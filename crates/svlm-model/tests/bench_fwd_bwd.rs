//! Forward+backward timing of the `svlm bench model` config without the CLI (ignored: slow and
//! machine-dependent). Run: `cargo test -p svlm-model --release --test bench_fwd_bwd -- --ignored --nocapture`

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use svlm_model::{LlamaConfig, ModelConfig, Vlm, VlmBatch};

#[test]
#[ignore]
fn llama_hidden256_layers4_seq256_batch4_forward_backward() {
    let (vocab, batch, seq) = (2048, 4, 256);
    let mut cfg = LlamaConfig::tiny(vocab, 256, 4, 4, 2);
    cfg.intermediate_size = 688;
    let device = Device::flex().autodiff();
    let model = Vlm::from_config(&ModelConfig::Llama(cfg), &device).unwrap();
    let ids: Vec<i64> = (0..batch * seq)
        .map(|i| ((i * 7919) % vocab) as i64)
        .collect();
    let input_ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
    let data = VlmBatch {
        input_ids: input_ids.clone(),
        attention_mask: Tensor::ones([batch, seq], &device),
        labels: Some(input_ids),
        pixel_values: None,
        pixel_attention_mask: None,
        image_patches: None,
        packing: None,
    };
    let mut times = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let loss = model.loss(&data);
        let _grads = loss.backward();
        if i >= 1 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "burn flex forward+backward median {:.1} ms ({times:?})",
        times[times.len() / 2]
    );
}
