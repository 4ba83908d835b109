//! Text generation with a KV cache: greedy, temperature and top-p sampling, stop tokens, a batch
//! of prompts left-padded as HF does (positions from the cumulative attention mask). Image
//! features are computed once, before the prompt pass. The Qwen2-VL family's prompt pass takes multimodal
//! positions (and Qwen3-VL's DeepStack features, which only image tokens receive); each row's next position (its
//! position delta) then carries through the decoding steps.

use anyhow::{Context, bail};
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};

use crate::llama::KvCache;
use crate::vlm::Vlm;

#[derive(Clone, Debug)]
pub struct GenerationOptions {
    pub max_new_tokens: usize,
    /// 0 = greedy (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 = no truncation. Ignored when greedy.
    pub top_p: f32,
    /// A sequence ends after emitting one of these (the stop token is not returned).
    pub stop_tokens: Vec<u32>,
    /// Used for left padding and for finished rows.
    pub pad_token: u32,
    pub seed: u64,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            stop_tokens: Vec::new(),
            pad_token: 0,
            seed: 0,
        }
    }
}

/// Images of a generation batch, as in [`crate::vlm::VlmBatch`].
#[derive(Clone, Debug, Default)]
pub struct GenerationImages {
    pub pixel_values: Option<Tensor<5>>,
    pub pixel_attention_mask: Option<Tensor<4, Int>>,
    /// The Qwen2-VL family's images (instead of `pixel_values`).
    pub image_patches: Option<crate::qwen2_vl::ImagePatches>,
}

impl GenerationImages {
    /// From host data as the processor gives it: `pixel_values` `[B, N, C, H, W]` and an
    /// optional pixel mask `[B, N, H, W]` (1 = real pixel).
    pub fn from_host(
        pixel_values: Vec<f32>,
        shape: [usize; 5],
        pixel_attention_mask: Option<&[u8]>,
        device: &burn::tensor::Device,
    ) -> anyhow::Result<Self> {
        let [b, n, c, h, w] = shape;
        if pixel_values.len() != b * n * c * h * w {
            bail!(
                "pixel values: {} values for shape {shape:?}",
                pixel_values.len()
            );
        }
        let mask = match pixel_attention_mask {
            Some(m) if m.len() != b * n * h * w => bail!(
                "pixel attention mask: {} values for [{b}, {n}, {h}, {w}]",
                m.len()
            ),
            Some(m) => {
                let v: Vec<i64> = m.iter().map(|&x| x as i64).collect();
                Some(Tensor::<4, Int>::from_data(
                    TensorData::new(v, [b, n, h, w]),
                    device,
                ))
            }
            None => None,
        };
        Ok(Self {
            pixel_values: Some(Tensor::<5>::from_data(
                TensorData::new(pixel_values, shape),
                device,
            )),
            pixel_attention_mask: mask,
            image_patches: None,
        })
    }
}

/// Generated tokens per prompt (without the prompt, without the stop token).
pub fn generate(
    model: &Vlm,
    prompts: &[Vec<u32>],
    images: GenerationImages,
    options: &GenerationOptions,
) -> anyhow::Result<Vec<Vec<u32>>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if prompts.iter().any(|p| p.is_empty()) {
        bail!("generate: every prompt needs at least one token");
    }
    if !(options.top_p > 0.0 && options.top_p <= 1.0) {
        bail!("generate: top_p must be in (0, 1], got {}", options.top_p);
    }
    let text = model.text_model();
    let device = text.embed_tokens.weight.device();
    let batch = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(batch * longest);
    let mut mask = Vec::with_capacity(batch * longest);
    let mut positions = Vec::with_capacity(batch * longest);
    let mut next_position = Vec::with_capacity(batch);
    for prompt in prompts {
        let pad = longest - prompt.len();
        ids.extend(std::iter::repeat_n(options.pad_token as i64, pad));
        ids.extend(prompt.iter().map(|&t| t as i64));
        mask.extend(std::iter::repeat_n(0i64, pad));
        mask.extend(std::iter::repeat_n(1i64, prompt.len()));
        // HF: position_ids = cumsum(mask) - 1, padding positions set to 1.
        positions.extend(std::iter::repeat_n(1i64, pad));
        positions.extend(0..prompt.len() as i64);
        next_position.push(prompt.len() as i64);
    }
    let input_ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, longest]), &device);
    let mut attention_mask =
        Tensor::<2, Int>::from_data(TensorData::new(mask, [batch, longest]), &device);
    let positions =
        Tensor::<2, Int>::from_data(TensorData::new(positions, [batch, longest]), &device);

    let features = model.batch_image_features(
        images.pixel_values.as_ref(),
        images.pixel_attention_mask.as_ref(),
        images.image_patches.as_ref(),
    )?;
    let rotary = match &images.image_patches {
        Some(patches) => {
            model.multimodal_rotary(&input_ids, &attention_mask, Some(&patches.grid_thw))?
        }
        None => None,
    };
    let (embeds, deepstack) = model.embed(input_ids, features.as_ref())?;
    let mut cache = KvCache::new(text.layers.len());
    let out = match rotary {
        Some(crate::vlm::MultimodalRotary {
            cos,
            sin,
            next_positions,
        }) => {
            next_position = next_positions;
            let masked =
                crate::llama::causal_mask(batch, longest, 0, Some(&attention_mask), &device);
            text.forward_embeds_rotary(
                embeds,
                masked,
                (cos, sin),
                deepstack.as_ref(),
                Some(&mut cache),
                false,
            )
        }
        None => text.forward_embeds(
            embeds,
            Some(&attention_mask),
            positions,
            Some(&mut cache),
            false,
        ),
    };
    let [_, s, d] = out.last_hidden_state.dims();
    let mut last = out.last_hidden_state.slice([0..batch, s - 1..s, 0..d]);

    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let mut generated: Vec<Vec<u32>> = vec![Vec::new(); batch];
    let mut finished = vec![false; batch];
    for step in 0..options.max_new_tokens {
        let logits = model.lm_logits(last);
        let vocab = logits.dims()[2];
        let values: Vec<f32> = logits
            .reshape([batch, vocab])
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
        let mut next = Vec::with_capacity(batch);
        for (b, row) in values.chunks(vocab).enumerate() {
            if finished[b] {
                next.push(options.pad_token);
                continue;
            }
            let token = if options.temperature <= 0.0 {
                argmax(row)
            } else {
                sample(row, options.temperature, options.top_p, &mut rng)
            };
            if options.stop_tokens.contains(&token) {
                finished[b] = true;
            } else {
                generated[b].push(token);
            }
            next.push(token);
        }
        if finished.iter().all(|&f| f) || step + 1 == options.max_new_tokens {
            break;
        }
        let step_ids = Tensor::<2, Int>::from_data(
            TensorData::new(
                next.iter().map(|&t| t as i64).collect::<Vec<_>>(),
                [batch, 1],
            ),
            &device,
        );
        let step_positions = Tensor::<2, Int>::from_data(
            TensorData::new(next_position.clone(), [batch, 1]),
            &device,
        );
        for p in next_position.iter_mut() {
            *p += 1;
        }
        attention_mask = Tensor::cat(
            vec![attention_mask, Tensor::<2, Int>::ones([batch, 1], &device)],
            1,
        );
        let embeds = text.embed(step_ids);
        let out = text.forward_embeds(
            embeds,
            Some(&attention_mask),
            step_positions,
            Some(&mut cache),
            false,
        );
        last = out.last_hidden_state;
    }
    Ok(generated)
}

/// Index of the first maximum (as `torch.argmax`).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Temperature + nucleus sampling over one row of logits.
pub fn sample(row: &[f32], temperature: f32, top_p: f32, rng: &mut impl Rng) -> u32 {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = row
        .iter()
        .enumerate()
        .map(|(i, &v)| (i, (((v - max) / temperature) as f64).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept = 0;
    let mut mass = 0.0;
    for p in &probs {
        kept += 1;
        mass += p.1;
        if mass >= top_p as f64 {
            break;
        }
    }
    let probs = &probs[..kept.max(1)];
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * mass;
    for p in probs {
        if u < p.1 {
            return p.0 as u32;
        }
        u -= p.1;
    }
    probs.last().map(|p| p.0 as u32).unwrap_or(0)
}

/// Stop tokens of a model folder: `generation_config.json`'s `eos_token_id`, else the config's.
pub fn stop_tokens_of(
    dir: &std::path::Path,
    config: &crate::vlm::ModelConfig,
) -> anyhow::Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let ids = crate::llama::token_ids(&value.get("eos_token_id").cloned());
        if !ids.is_empty() {
            return Ok(ids);
        }
    }
    Ok(config.eos_token_ids())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // Token 2 holds almost all mass: with top_p 0.5 nothing else may be drawn.
        let row = [0.0, 0.0, 10.0, 0.0];
        for _ in 0..100 {
            assert_eq!(sample(&row, 1.0, 0.5, &mut rng), 2);
        }
    }
}
