//! The architectures of the published checkpoints the photo path uses, built with seeded random weights: for
//! timing (`svlm bench photos`) where the real weights are not at hand. Speed does not depend on the weights; the
//! outputs are meaningless. Each model's config is the checkpoint's `config.json` (its non-default keys) and its
//! image processor is the checkpoint's `preprocessor_config.json`, so preprocessing, input size and every layer
//! are those of the real model. A model built here records `random-weights:<name>` as its folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use serde_json::{Value, json};

use crate::config::DepthAnythingConfig;
use crate::depth::DepthAnything;
use crate::depth_model::DepthModel;
use crate::depth_pro::{
    DepthPro, DepthProConfig, DepthProForDepthEstimation, DepthProImageProcessor,
};
use crate::model::DepthAnythingModel;
use crate::owl::{OwlConfig, OwlDetector, OwlForObjectDetection, OwlImageProcessor, OwlTokenizer};
use crate::preprocess::DptImageProcessor;
use crate::sam::{Sam, SamConfig, SamImageProcessor, SamModel};
use crate::sam2::{Sam2, Sam2Config, Sam2ImageProcessor, Sam2Model};
use crate::segmenter::BoxSegmenter;

/// A metric depth architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullSizeDepth {
    /// `depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf`: ViT-S/14 + DPT head, 518 px short side.
    DepthAnythingV2Small,
    /// `apple/DepthPro-hf`: three DINOv2-L/16 encoders on 1536x1536 (35 patches of 384 px) + field-of-view head.
    DepthPro,
}

/// An open-vocabulary detector architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullSizeDetector {
    /// `google/owlv2-base-patch16-ensemble`: ViT-B/16 at 960x960 (3600 patches).
    Owlv2Base,
    /// `google/owlvit-base-patch32`: ViT-B/32 at 768x768 (576 patches).
    OwlvitBase32,
}

/// A box-prompted segmenter architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullSizeSegmenter {
    /// `facebook/sam-vit-base`: ViT-B/16 at 1024x1024.
    SamVitBase,
    /// `facebook/sam2.1-hiera-tiny`: Hiera-T at 1024x1024.
    Sam2HieraTiny,
}

impl FullSizeDepth {
    pub const ALL: [Self; 2] = [Self::DepthAnythingV2Small, Self::DepthPro];

    /// The name `svlm bench photos --depth` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::DepthAnythingV2Small => "depth-anything-v2-small",
            Self::DepthPro => "depth-pro",
        }
    }

    /// The checkpoint whose architecture this is.
    pub fn checkpoint(self) -> &'static str {
        match self {
            Self::DepthAnythingV2Small => "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
            Self::DepthPro => "apple/DepthPro-hf",
        }
    }

    pub fn config_json(self) -> Value {
        match self {
            Self::DepthAnythingV2Small => json!({
                "model_type": "depth_anything",
                "backbone_config": {
                    "model_type": "dinov2", "hidden_size": 384, "num_hidden_layers": 12,
                    "num_attention_heads": 6, "image_size": 518, "patch_size": 14,
                    "out_indices": [3, 6, 9, 12], "reshape_hidden_states": false
                },
                "reassemble_hidden_size": 384,
                "reassemble_factors": [4, 2, 1, 0.5],
                "neck_hidden_sizes": [48, 96, 192, 384],
                "fusion_hidden_size": 64,
                "head_hidden_size": 32,
                "depth_estimation_type": "metric",
                "max_depth": 20
            }),
            Self::DepthPro => {
                let dinov2_large = json!({
                    "model_type": "dinov2", "hidden_size": 1024, "num_hidden_layers": 24,
                    "num_attention_heads": 16, "patch_size": 16, "image_size": 384
                });
                json!({
                    "model_type": "depth_pro",
                    "fusion_hidden_size": 256,
                    "patch_size": 384,
                    "intermediate_hook_ids": [11, 5],
                    "intermediate_feature_dims": [256, 256],
                    "scaled_images_ratios": [0.25, 0.5, 1],
                    "scaled_images_overlap_ratios": [0.0, 0.5, 0.25],
                    "scaled_images_feature_dims": [1024, 1024, 512],
                    "merge_padding_value": 3,
                    "use_batch_norm_in_fusion_residual": false,
                    "use_bias_in_fusion_residual": true,
                    "use_fov_model": true,
                    "num_fov_head_layers": 2,
                    "image_model_config": dinov2_large,
                    "patch_model_config": dinov2_large,
                    "fov_model_config": dinov2_large
                })
            }
        }
    }

    pub fn preprocessor_json(self) -> Value {
        match self {
            Self::DepthAnythingV2Small => json!({
                "do_resize": true, "size": {"height": 518, "width": 518}, "resample": 3,
                "keep_aspect_ratio": true, "ensure_multiple_of": 14, "do_rescale": true,
                "rescale_factor": 1.0 / 255.0, "do_normalize": true,
                "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_pad": false
            }),
            Self::DepthPro => json!({
                "do_resize": true, "size": {"height": 1536, "width": 1536}, "resample": 2,
                "do_rescale": true, "rescale_factor": 1.0 / 255.0, "do_normalize": true,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]
            }),
        }
    }

    /// The model with random weights drawn after `device.seed(seed)`.
    pub fn random(self, seed: u64, device: &Device) -> Result<DepthModel> {
        let what = || format!("building {} with random weights", self.checkpoint());
        let dir = random_dir(self.name());
        device.seed(seed);
        Ok(match self {
            Self::DepthAnythingV2Small => {
                let config =
                    DepthAnythingConfig::from_json(&self.config_json()).with_context(what)?;
                let processor =
                    DptImageProcessor::from_json(&self.preprocessor_json()).with_context(what)?;
                let model = DepthAnythingModel::new(&config, device).with_context(what)?;
                DepthAnything {
                    model,
                    config,
                    processor,
                    device: device.clone(),
                    dir,
                }
                .into()
            }
            Self::DepthPro => {
                let config = DepthProConfig::from_json(&self.config_json()).with_context(what)?;
                let processor = DepthProImageProcessor::from_json(&self.preprocessor_json())
                    .with_context(what)?;
                let model = DepthProForDepthEstimation::new(&config, device).with_context(what)?;
                DepthPro {
                    model,
                    config,
                    processor,
                    device: device.clone(),
                    dir,
                }
                .into()
            }
        })
    }
}

impl FullSizeDetector {
    pub const ALL: [Self; 2] = [Self::Owlv2Base, Self::OwlvitBase32];

    /// The name `svlm bench photos --detector` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Owlv2Base => "owlv2-base",
            Self::OwlvitBase32 => "owlvit-base32",
        }
    }

    pub fn checkpoint(self) -> &'static str {
        match self {
            Self::Owlv2Base => "google/owlv2-base-patch16-ensemble",
            Self::OwlvitBase32 => "google/owlvit-base-patch32",
        }
    }

    pub fn config_json(self) -> Value {
        match self {
            Self::Owlv2Base => json!({
                "model_type": "owlv2", "projection_dim": 512,
                "text_config": {"model_type": "owlv2_text_model"},
                "vision_config": {"image_size": 960, "patch_size": 16, "model_type": "owlv2_vision_model"}
            }),
            Self::OwlvitBase32 => json!({
                "model_type": "owlvit", "projection_dim": 512,
                "text_config": {"model_type": "owlvit_text_model"},
                "vision_config": {"image_size": 768, "patch_size": 32, "model_type": "owlvit_vision_model"}
            }),
        }
    }

    /// The model with random weights drawn after `device.seed(seed)`. Its tokenizer is CLIP's byte-level one
    /// without the merges ([`clip_bytes_tokenizer_json`]): every query is padded to the 16 positions of the text
    /// model, so the text encoder does the work of the real vocabulary.
    pub fn random(self, seed: u64, device: &Device) -> Result<OwlDetector> {
        let what = || format!("building {} with random weights", self.checkpoint());
        let config = OwlConfig::from_json(&self.config_json()).with_context(what)?;
        let processor = OwlImageProcessor::default_for(config.version);
        let tokenizer = OwlTokenizer::from_json_str(
            &clip_bytes_tokenizer_json()?.to_string(),
            config.text_config.max_position_embeddings,
            "!",
        )
        .with_context(what)?;
        device.seed(seed);
        let model = OwlForObjectDetection::new(&config, device).with_context(what)?;
        Ok(OwlDetector {
            model,
            config,
            processor,
            tokenizer,
            device: device.clone(),
            dir: random_dir(self.name()),
        })
    }
}

impl FullSizeSegmenter {
    pub const ALL: [Self; 2] = [Self::SamVitBase, Self::Sam2HieraTiny];

    /// The name `svlm bench photos --segmenter` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::SamVitBase => "sam-vit-base",
            Self::Sam2HieraTiny => "sam2-hiera-tiny",
        }
    }

    pub fn checkpoint(self) -> &'static str {
        match self {
            Self::SamVitBase => "facebook/sam-vit-base",
            Self::Sam2HieraTiny => "facebook/sam2.1-hiera-tiny",
        }
    }

    /// Transformers' defaults of `SamConfig` are ViT-H's prompt/decoder with ViT-B's absent keys; the vision keys
    /// here are sam-vit-base's. `Sam2Config()` is Hiera-T.
    pub fn config_json(self) -> Value {
        match self {
            Self::SamVitBase => json!({
                "model_type": "sam",
                "vision_config": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                                  "global_attn_indexes": [2, 5, 8, 11]}
            }),
            Self::Sam2HieraTiny => json!({"model_type": "sam2"}),
        }
    }

    /// The model with random weights drawn after `device.seed(seed)`; the image processors are the checkpoints'
    /// (1024 px).
    pub fn random(self, seed: u64, device: &Device) -> Result<BoxSegmenter> {
        let what = || format!("building {} with random weights", self.checkpoint());
        let dir = random_dir(self.name());
        device.seed(seed);
        Ok(match self {
            Self::SamVitBase => {
                let config = SamConfig::from_json(&self.config_json()).with_context(what)?;
                let model = SamModel::new(&config, device).with_context(what)?;
                Sam {
                    model,
                    config,
                    processor: SamImageProcessor::default(),
                    device: device.clone(),
                    dir,
                }
                .into()
            }
            Self::Sam2HieraTiny => {
                let config = Sam2Config::from_json(&self.config_json()).with_context(what)?;
                let model = Sam2Model::new(&config, device).with_context(what)?;
                Sam2 {
                    model,
                    config,
                    processor: Sam2ImageProcessor::default(),
                    device: device.clone(),
                    dir,
                }
                .into()
            }
        })
    }
}

fn random_dir(name: &str) -> PathBuf {
    PathBuf::from(format!("random-weights:{name}"))
}

/// GPT-2's byte -> printable-character table (`bytes_to_unicode`), in the order CLIP numbers its first 256 tokens.
fn byte_chars() -> Vec<char> {
    let mut bytes: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = bytes.clone();
    let mut extra = 0;
    for b in 0..256 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    chars.into_iter().filter_map(char::from_u32).collect()
}

/// CLIP's tokenizer without its BPE merges: the 256 byte tokens (ids 0..256), the same with `</w>` (256..512) and
/// `<|startoftext|>` / `<|endoftext|>` at their real ids 49406 / 49407; `!` (id 0) pads, as in the OWL checkpoints.
/// A word becomes one token per character instead of one or a few.
pub fn clip_bytes_tokenizer_json() -> Result<Value> {
    let chars = byte_chars();
    let mut vocab = serde_json::Map::new();
    for (i, c) in chars.iter().enumerate() {
        vocab.insert(c.to_string(), json!(i));
        vocab.insert(format!("{c}</w>"), json!(i + chars.len()));
    }
    vocab.insert("<|startoftext|>".into(), json!(49406));
    vocab.insert("<|endoftext|>".into(), json!(49407));
    crate::owl::tokenize::clip_tokenizer_json(
        &Value::Object(vocab),
        "",
        &crate::owl::tokenize::ClipSpecialTokens {
            bos: "<|startoftext|>".into(),
            eos: "<|endoftext|>".into(),
            pad: "!".into(),
            unk: "<|endoftext|>".into(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_tokenizer_numbers_bytes_as_clip() {
        let chars = byte_chars();
        assert_eq!(chars.len(), 256);
        assert_eq!(chars[0], '!');
        // Space is byte 32, the 189th byte CLIP numbers (after the 188 printable ones), shown as U+0120.
        assert_eq!(chars[188 + 32], '\u{120}');
        let text = clip_bytes_tokenizer_json()
            .expect("tokenizer json")
            .to_string();
        let tokenizer = OwlTokenizer::from_json_str(&text, 16, "!").expect("tokenizer");
        assert_eq!(tokenizer.pad_id, 0);
        let a = u32::try_from(chars.iter().position(|&c| c == 'a').expect("a")).expect("id");
        assert_eq!(
            tokenizer.tokens("A cat").expect("tokens"),
            vec![
                49406,
                a + 256,
                a + 2, // c
                a,
                u32::try_from(chars.iter().position(|&c| c == 't').expect("t")).expect("id") + 256,
                49407
            ]
        );
        let queries = tokenizer.encode(&["a chair", "a mug"]).expect("encode");
        assert_eq!((queries.num_queries, queries.seq_len), (2, 16));
    }

    #[test]
    fn the_configs_parse() {
        for d in FullSizeDepth::ALL {
            match d {
                FullSizeDepth::DepthAnythingV2Small => {
                    let c = DepthAnythingConfig::from_json(&d.config_json()).expect("config");
                    assert_eq!(c.backbone_config.hidden_size, 384);
                }
                FullSizeDepth::DepthPro => {
                    let c = DepthProConfig::from_json(&d.config_json()).expect("config");
                    assert!(c.use_fov_model);
                    assert_eq!(c.patch_model_config.map(|p| p.hidden_size), Some(1024));
                }
            }
        }
        for d in FullSizeDetector::ALL {
            let c = OwlConfig::from_json(&d.config_json()).expect("config");
            assert_eq!(c.vision_config.hidden_size, 768);
            assert_eq!(c.text_config.max_position_embeddings, 16);
        }
        let sam = SamConfig::from_json(&FullSizeSegmenter::SamVitBase.config_json()).expect("sam");
        assert_eq!(sam.vision_config.image_size, 1024);
        let sam2 =
            Sam2Config::from_json(&FullSizeSegmenter::Sam2HieraTiny.config_json()).expect("sam2");
        assert_eq!(sam2.vision_config.backbone_config.image_size, [1024, 1024]);
    }
}
