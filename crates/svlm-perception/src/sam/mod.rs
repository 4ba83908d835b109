//! Box-prompted segmentation: SAM (`SamModel`) from the HF layout — ViT image encoder with windowed and global
//! attention and relative position embeddings, neck, box-prompt encoder, two-way-transformer mask decoder and
//! IoU head — with `SamProcessor`'s image preprocessing (PIL backend) and `post_process_masks`. One mask per
//! box: the multimask candidate with the highest predicted IoU. Checked against transformers 5 on a tiny
//! random-weight model (`tests/segmenter_parity.rs`, fixtures by `scripts/make_segmenter_fixtures.py`).

pub mod config;
pub mod model;
pub mod preprocess;
pub mod segmenter;

pub use config::{SamConfig, SamMaskDecoderConfig, SamPromptEncoderConfig, SamVisionConfig};
pub use model::{MaskPrediction, SamModel};
pub use preprocess::{SamImageProcessor, SamInputs};
pub use segmenter::{BoxMask, Sam, apply_checkpoint};
