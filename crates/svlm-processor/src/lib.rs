//! HF-identical processors for the VLM families of svlm, without Burn: tokenizer (`tokenizer.json` through the
//! `tokenizers` crate), chat templates (minijinja configured as transformers' Jinja2), image-token expansion
//! (`Idefics3Processor`, `LlavaProcessor`) and image preprocessing (`Idefics3ImageProcessor`,
//! `CLIPImageProcessor`, `SiglipImageProcessor`, PIL backend: Pillow's resampling reproduced bit for bit).
//!
//! Outputs are plain data (`Vec<u32>` ids, `Vec<f32>` pixels + shape) for the model and the trainer.
//!
//! Which HF image backend is matched: transformers 5 has a PIL backend (`*ImageProcessorPil`) and a torchvision
//! backend; `AutoProcessor` picks torchvision when it is installed and falls back to PIL otherwise. This crate
//! reproduces the PIL backend exactly (the parity fixtures agree to the bit). The torchvision backend uses its own
//! antialiased kernels and replaces Idefics3's LANCZOS with BICUBIC, so its pixels differ slightly from PIL's (and
//! from this crate's); the original SmolVLM / LLaVA preprocessing was PIL's. PNG decoding is exact; JPEG decoders may differ from libjpeg by one level in some pixels.
//!
//! Entry points: [`Processor::from_dir`] (an HF model folder), [`Processor::process_chat`] /
//! [`Processor::process`] -> [`ProcessedInputs`], [`Processor::collate`] -> [`Batch`];
//! [`Tokenizer`] alone; [`train_bpe_tokenizer`] + [`Tokenizer::save`] for tiny models trained from scratch.

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
