//! Box-prompted segmentation with SAM 2 (`Sam2Model`) from the HF layout, single images: the Hiera image encoder
//! (multi-scale stages with query pooling, windowed and global attention, the windowed position embedding), the
//! FPN neck, `no_memory_embedding`, the box-prompt encoder and the mask decoder with its high-resolution skip
//! features and object-score head; `Sam2Processor`'s preprocessing (torchvision backend) and `post_process_masks`.
//! One mask per box: the multimask candidate with the highest predicted IoU. Checked against transformers 5 on a
//! tiny random-weight model (`tests/sam2_parity.rs`, fixtures by `scripts/make_sam2_fixtures.py`).

pub mod backbone;
pub mod config;
pub mod model;
pub mod preprocess;
pub mod segmenter;

pub use config::{
    HieraBlock, Sam2Config, Sam2HieraConfig, Sam2MaskDecoderConfig, Sam2PromptEncoderConfig,
    Sam2VisionConfig,
};
pub use model::{Sam2ImageEmbeddings, Sam2MaskPrediction, Sam2Model};
pub use preprocess::{Sam2ImageProcessor, Sam2Inputs, resize_bilinear_u8};
pub use segmenter::{Sam2, apply_checkpoint};
