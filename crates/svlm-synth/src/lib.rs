//! Spatial VQA synthesis: scene graph, question templates, shard writers. No Burn.
//!
//! Flow: an [`source::ItemSource`] (procedural world, RGB-D folder; photos through `svlm_perception::PhotoSource`)
//! gives images with a [`scene::SceneGraph`] — exact ([`graph::from_world`]) or estimated from depth
//! ([`graph::from_depth`]) — the templates of [`qa`] turn it into question/answer pairs with their truth, and
//! [`pipeline::run_shard`] writes `record::SpatialRecord`s as JSONL and/or Parquet shards with a manifest.

pub mod approach;
pub mod bench;
pub mod crash_point;
pub mod folder;
pub mod general;
pub mod graph;
pub mod parquet_io;
pub mod phrase;
pub mod pipeline;
pub mod qa;
pub mod record;
pub mod scene;
pub mod shard;
pub mod source;

pub use graph::{
    DepthInput, EstimateParams, FrameProblem, VisibilityParams, from_depth, from_world,
};
pub use pipeline::{OutputFormat, ShardManifest, ShardOutcome, SynthOptions, run_shard};
pub use qa::{
    AnswerMismatch, GeneratedQa, QaConfig, QaConfigError, generate, question_types, verify_answer,
};
pub use record::{QuestionKind, Role, SpatialQa, SpatialRecord, Truth, Turn};
pub use scene::{SceneGraph, SceneObject, TruthSource};
pub use shard::ShardSpec;
pub use source::{BadItem, Item, ItemSource, RgbdSource, WorldSource};
