//! The quickstart's model folder: a byte-level BPE tokenizer trained on the generated text, SmolVLM's chat template,
//! an Idefics3 image processor without tiling, and a tiny Idefics3 `config.json` that the trainer initializes from
//! scratch. Together an HF folder layout (`svlm_processor::Processor::from_dir` and `svlm_model` read it).

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use svlm_model::idefics3::Idefics3Config;
use svlm_model::llama::{LlamaConfig, RopeParameters};
use svlm_model::vision::VisionConfig;
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

    let image_processor = ImageProcessorConfig {
        do_convert_rgb: true,
        do_image_splitting: false,
        do_normalize: true,
        do_pad: true,
        do_rescale: true,
        do_resize: true,
        image_mean: [0.5; 3],
        image_std: [0.5; 3],
        image_processor_type: "Idefics3ImageProcessor",
        max_image_size: LongestEdge {
            longest_edge: image_size,
        },
        resample: 1,
        rescale_factor: 1.0 / 255.0,
        size: LongestEdge {
            longest_edge: image_size,
        },
    };
    let processor = ProcessorConfig {
        image_processor,
        image_seq_len: image_seq_len(model, image_size),
        processor_class: "Idefics3Processor",
    };
    let config = idefics3_config(model, image_size, vocab, [bos, eos, pad, image]);
    let generation = GenerationConfig {
        bos_token_id: bos,
        eos_token_id: eos,
        pad_token_id: pad,
        use_cache: true,
    };
    let files: [(&str, serde_json::Value); 3] = [
        ("processor_config.json", serde_json::to_value(&processor)?),
        ("config.json", serde_json::to_value(&config)?),
        ("generation_config.json", serde_json::to_value(&generation)?),
    ];
    // Through `serde_json::Value`, whose keys are sorted: the files list their keys in order, as transformers
    // writes them (`sort_keys=True`).
    for (name, value) in files {
        svlm_report::write_atomic(
            &dir.join(name),
            serde_json::to_string_pretty(&value)?.as_bytes(),
        )?;
    }
    svlm_report::write_atomic(
        &dir.join("chat_template.jinja"),
        SMOLVLM_CHAT_TEMPLATE.as_bytes(),
    )?;
    svlm_report::write_atomic(&plan_path, plan_text.as_bytes())?;
    Ok(())
}

/// The HF `Idefics3Config` of the tiny model (`config.json`): a SigLIP-style tower, the pixel-shuffle connector and
/// a Llama decoder with tied embeddings; `tokens` are the trained tokenizer's `[bos, eos, pad, <image>]` ids.
fn idefics3_config(
    model: &TinyModel,
    image_size: u32,
    vocab: usize,
    tokens: [u32; 4],
) -> Idefics3Config {
    let [bos, eos, pad, image] = tokens;
    let text_config = LlamaConfig {
        model_type: "llama".into(),
        vocab_size: vocab,
        hidden_size: model.text_hidden,
        intermediate_size: model.text_intermediate,
        num_hidden_layers: model.text_layers,
        num_attention_heads: model.text_heads,
        num_key_value_heads: Some(model.text_kv_heads),
        head_dim: Some(model.text_hidden / model.text_heads),
        rms_norm_eps: 1e-5,
        rope_theta: None,
        rope_scaling: None,
        rope_parameters: Some(RopeParameters::default_with_theta(10000.0).to_value()),
        max_position_embeddings: model.max_positions,
        tie_word_embeddings: true,
        attention_bias: false,
        mlp_bias: false,
        hidden_act: "silu".into(),
        initializer_range: 0.02,
        bos_token_id: Some(bos.into()),
        eos_token_id: Some(eos.into()),
        pad_token_id: Some(pad.into()),
        extra: Default::default(),
    };
    let vision_config = VisionConfig::idefics3(
        model.vision_hidden,
        model.vision_intermediate,
        model.vision_layers,
        model.vision_heads,
        image_size as usize,
        model.patch_size,
    );
    // The keys transformers writes that the model does not read: the class, the family, the weights' dtype.
    let mut extra = serde_json::Map::new();
    extra.insert(
        "architectures".into(),
        vec!["Idefics3ForConditionalGeneration"].into(),
    );
    extra.insert("model_type".into(), "idefics3".into());
    extra.insert("dtype".into(), "float32".into());
    extra.insert("use_cache".into(), true.into());
    Idefics3Config {
        image_token_id: image,
        scale_factor: model.scale_factor,
        text_config,
        vision_config,
        tie_word_embeddings: true,
        extra,
    }
}

/// `size` / `max_image_size` of an Idefics3 image processor.
#[derive(Serialize)]
struct LongestEdge {
    longest_edge: u32,
}

/// The `image_processor` of `processor_config.json`: Idefics3's processor resizing to one square tile, no tiling.
#[derive(Serialize)]
struct ImageProcessorConfig {
    do_convert_rgb: bool,
    do_image_splitting: bool,
    do_normalize: bool,
    do_pad: bool,
    do_rescale: bool,
    do_resize: bool,
    image_mean: [f64; 3],
    image_std: [f64; 3],
    image_processor_type: &'static str,
    max_image_size: LongestEdge,
    /// PIL's resampling filter number (1 = LANCZOS, Idefics3's default).
    resample: u32,
    rescale_factor: f64,
    size: LongestEdge,
}

/// `processor_config.json`.
#[derive(Serialize)]
struct ProcessorConfig {
    image_processor: ImageProcessorConfig,
    image_seq_len: usize,
    processor_class: &'static str,
}

/// `generation_config.json`.
#[derive(Serialize)]
struct GenerationConfig {
    bos_token_id: u32,
    eos_token_id: u32,
    pad_token_id: u32,
    use_cache: bool,
}
