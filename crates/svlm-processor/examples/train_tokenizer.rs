//! Trains a small byte-level BPE tokenizer on generated spatial sentences and saves it as an HF tokenizer folder
//! (`tokenizer.json`, `tokenizer_config.json` with SmolVLM's chat template, `special_tokens_map.json`).
//!
//! `cargo run -p svlm-processor --example train_tokenizer -- OUT_DIR`

use svlm_processor::{BpeTrainingOptions, train_bpe_tokenizer};

const SMOLVLM_CHAT_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: train_tokenizer OUT_DIR"))?;
    let objects = ["red cube", "blue sphere", "chair", "table", "lamp", "sofa"];
    let texts = (0..2000).map(|i| {
        let a = objects[i % objects.len()];
        let b = objects[(i / objects.len()) % objects.len()];
        format!(
            "How far is the {a} from the {b}? The {a} is about {}.{} metres away.",
            i % 7,
            i % 10
        )
    });
    let mut specials: Vec<String> = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<end_of_utterance>",
    ]
    .map(String::from)
    .to_vec();
    specials.extend(["<fake_token_around_image>", "<image>", "<global-img>"].map(String::from));
    for r in 1..=6 {
        for c in 1..=6 {
            specials.push(format!("<row_{r}_col_{c}>"));
        }
    }
    let mut options = BpeTrainingOptions::new(512, specials);
    options.bos_token = Some("<|im_start|>".into());
    options.eos_token = Some("<end_of_utterance>".into());
    options.pad_token = Some("<|im_end|>".into());
    options.unk_token = Some("<|endoftext|>".into());
    options.chat_template = Some(SMOLVLM_CHAT_TEMPLATE.into());
    let tokenizer = train_bpe_tokenizer(texts, &options)?;
    tokenizer.save(&out)?;
    println!("saved {} tokens to {out}", tokenizer.vocab_size());
    Ok(())
}
