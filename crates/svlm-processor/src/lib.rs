//! HF-identical processors for the VLM families of svlm, without Burn: tokenizer (`tokenizer.json` through the
//! `tokenizers` crate), chat templates (minijinja configured as transformers' Jinja2), image-token expansion
//! (`Idefics3Processor`, `LlavaProcessor`) and image preprocessing (`Idefics3ImageProcessor`,
//! `CLIPImageProcessor`, `SiglipImageProcessor`, PIL backend: Pillow's resampling reproduced bit for bit).
//!
//! Outputs are plain data (`Vec<u32>` ids, `Vec<f32>` pixels + shape) for the model and the trainer.

pub mod chat;
pub mod error;
mod files;
pub mod image_ops;
pub mod image_processor;
pub mod processor;
pub mod resample;
pub mod tokenizer;

pub use chat::{ChatMessage, ChatTemplate, ContentPart};
pub use error::{ProcessorError, Result};
pub use image_ops::{decode_image, load_image};
pub use image_processor::{
    Idefics3Image, Idefics3ImageProcessor, ImageProcessor, ImageProcessorKind, PixelTiles,
    ResizeCropImageProcessor, SizeSpec,
};
pub use processor::{
    Batch, PixelLayout, ProcessedInputs, Processor, PromptStyle, collate, idefics3_image_prompt,
};
pub use resample::{Resample, Rgb8, resize};
pub use tokenizer::{
    BpeTrainingOptions, PaddingSide, SpecialTokens, Tokenizer, train_bpe_tokenizer,
};
