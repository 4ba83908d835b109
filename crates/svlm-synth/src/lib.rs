//! Spatial VQA synthesis: scene graph, question templates, shard writers. No Burn.

pub mod record;

pub use record::{SpatialQa, SpatialRecord, Truth, Turn};
