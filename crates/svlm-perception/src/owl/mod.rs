//! Open-vocabulary object detection: OWLv2 (`Owlv2ForObjectDetection`) and OWL-ViT v1 (`OwlViTForObjectDetection`)
//! from the HF layout, with their image processors (PIL backend), the CLIP tokenizer from `tokenizer.json` and
//! transformers' `post_process_object_detection`. Checked against transformers 5 on tiny random-weight models
//! (`tests/owl_parity.rs`, fixtures by `scripts/make_owl_fixtures.py`).

pub mod config;
pub mod detector;
pub mod model;
pub mod preprocess;
pub mod tokenize;

pub use config::{OwlConfig, OwlTextConfig, OwlVersion, OwlVisionConfig};
pub use detector::{
    Detection, OwlDetector, RawDetection, apply_checkpoint, box_iou, clip_box,
    post_process_object_detection, suppress_overlaps,
};
pub use model::{OwlForObjectDetection, OwlOutput, TextQueries, box_bias};
pub use preprocess::OwlImageProcessor;
pub use tokenize::OwlTokenizer;
