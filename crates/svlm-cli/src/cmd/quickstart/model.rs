//! The quickstart's model folder: a byte-level BPE tokenizer trained on the generated text, SmolVLM's chat template,
//! an Idefics3 image processor without tiling, and a tiny Idefics3 `config.json` that the trainer initializes from
//! scratch. Together an HF folder layout (`svlm_processor::Processor::from_dir` and `svlm_model` read it).

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use svlm_processor::{BpeTrainingOptions, train_bpe_tokenizer};

/// SmolVLM-Instruct's chat template (the same text as its `chat_template.jinja`).
pub const SMOLVLM_CHAT_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/// Sizes of the tiny Idefics3 (SigLIP tower, pixel-shuffle connector, Llama decoder): the `[model]` table of
/// `configs/quickstart/*.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyModel {
    pub vocab_size: usize,
    pub vision_hidden: usize,
    pub vision_layers: usize,
    pub vision_heads: usize,
    pub vision_intermediate: usize,
    pub patch_size: usize,
    pub scale_factor: usize,
    pub text_hidden: usize,
    pub text_layers: usize,
    pub text_heads: usize,
    pub text_kv_heads: usize,
    pub text_intermediate: usize,
    pub max_positions: usize,
}

#[derive(Serialize, Deserialize)]
struct Done {
    model: TinyModel,
    image_size: u32,
    data: serde_json::Value,
}

/// Image tokens per image: patches per side squared, shrunk by the pixel shuffle.
pub fn image_seq_len(model: &TinyModel, image_size: u32) -> usize {
    let side = image_size as usize / model.patch_size;
    side * side / (model.scale_factor * model.scale_factor)
}

/// Writes tokenizer, processor and model config into `dir`; kept when `dir/plan.json` says the same sizes and data.
pub fn build(
    model: &TinyModel,
    image_size: u32,
    texts: impl FnOnce() -> anyhow::Result<Vec<String>>,
    data_identity: serde_json::Value,
    dir: &Path,
) -> anyhow::Result<()> {
    let plan_path = dir.join("plan.json");
    let done = Done {
        model: model.clone(),
        image_size,
        data: data_identity,
    };
    let plan_text = serde_json::to_string_pretty(&done)?;
    if std::fs::read_to_string(&plan_path).is_ok_and(|t| t == plan_text)
        && dir.join("config.json").is_file()
        && dir.join("tokenizer.json").is_file()
    {
        tracing::info!("model: {} already holds this plan, kept", dir.display());
        return Ok(());
    }
    anyhow::ensure!(
        (image_size as usize).is_multiple_of(model.patch_size)
            && (image_size as usize / model.patch_size).is_multiple_of(model.scale_factor),
        "image size {image_size} must be a multiple of patch_size {} x scale_factor {}",
        model.patch_size,
        model.scale_factor
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut specials: Vec<String> = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<end_of_utterance>",
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
    ]
    .map(String::from)
    .to_vec();
    // Idefics3's processor names tile positions even when it does not split; keep them in the vocabulary.
    for r in 1..=4 {
        for c in 1..=4 {
            specials.push(format!("<row_{r}_col_{c}>"));
        }
    }
    let mut options = BpeTrainingOptions::new(model.vocab_size, specials);
    options.bos_token = Some("<|im_start|>".into());
    options.eos_token = Some("<end_of_utterance>".into());
    options.pad_token = Some("<|im_end|>".into());
    options.unk_token = Some("<|endoftext|>".into());
    options.chat_template = Some(SMOLVLM_CHAT_TEMPLATE.into());
    let mut corpus = texts()?;
    corpus.extend(["User:", "Assistant:", "User: ", "Assistant: "].map(String::from));
    let tokenizer = train_bpe_tokenizer(corpus, &options).context("training the tokenizer")?;
    tokenizer
        .save(dir)
        .with_context(|| format!("saving the tokenizer to {}", dir.display()))?;
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .with_context(|| format!("{t} is not in the trained vocabulary"))
    };
    let (bos, eos, pad, image) = (
        id("<|im_start|>")?,
        id("<end_of_utterance>")?,
        id("<|im_end|>")?,
        id("<image>")?,
    );
    let vocab = tokenizer.vocab_size();

    let image_processor = json!({
        "do_convert_rgb": true,
        "do_image_splitting": false,
        "do_normalize": true,
        "do_pad": true,
        "do_rescale": true,
        "do_resize": true,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "Idefics3ImageProcessor",
        "max_image_size": {"longest_edge": image_size},
        "resample": 1,
        "rescale_factor": 1.0 / 255.0,
        "size": {"longest_edge": image_size},
    });
    let processor = json!({
        "image_processor": image_processor,
        "image_seq_len": image_seq_len(model, image_size),
        "processor_class": "Idefics3Processor",
    });
    let config = json!({
        "architectures": ["Idefics3ForConditionalGeneration"],
        "model_type": "idefics3",
        "dtype": "float32",
        "image_token_id": image,
        "scale_factor": model.scale_factor,
        "tie_word_embeddings": true,
        "use_cache": true,
        "text_config": {
            "model_type": "llama",
            "vocab_size": vocab,
            "hidden_size": model.text_hidden,
            "intermediate_size": model.text_intermediate,
            "num_hidden_layers": model.text_layers,
            "num_attention_heads": model.text_heads,
            "num_key_value_heads": model.text_kv_heads,
            "head_dim": model.text_hidden / model.text_heads,
            "hidden_act": "silu",
            "max_position_embeddings": model.max_positions,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
            "attention_bias": false,
            "mlp_bias": false,
            "tie_word_embeddings": true,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "initializer_range": 0.02,
        },
        "vision_config": {
            "model_type": "idefics3_vision",
            "hidden_size": model.vision_hidden,
            "intermediate_size": model.vision_intermediate,
            "num_hidden_layers": model.vision_layers,
            "num_attention_heads": model.vision_heads,
            "num_channels": 3,
            "image_size": image_size,
            "patch_size": model.patch_size,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
            "initializer_range": 0.02,
        },
    });
    let generation = json!({
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "use_cache": true,
    });
    for (name, value) in [
        ("processor_config.json", &processor),
        ("config.json", &config),
        ("generation_config.json", &generation),
    ] {
        svlm_report::write_atomic(
            &dir.join(name),
            serde_json::to_string_pretty(value)?.as_bytes(),
        )?;
    }
    svlm_report::write_atomic(
        &dir.join("chat_template.jinja"),
        SMOLVLM_CHAT_TEMPLATE.as_bytes(),
    )?;
    svlm_report::write_atomic(&plan_path, plan_text.as_bytes())?;
    Ok(())
}
