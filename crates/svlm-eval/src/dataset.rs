//! Evaluation items: one question about one image with its ground truth, whatever benchmark it came from.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use svlm_synth::record::Truth;

/// One question to ask the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    /// Unique within its set (record id + turn index for multi-turn sources).
    pub id: String,
    /// The image, as a path the answerer can open.
    pub image: PathBuf,
    pub question: String,
    /// Question type: svlm's snake_case types ("left_predicate", "distance"), SpatialRGPT categories
    /// ("behind_predicate", "width_data", "direction") or Q-Spatial question types.
    pub kind: String,
    pub truth: Truth,
    /// The benchmark's own answer text, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_answer: Option<String>,
    /// Region boxes `[x1, y1, x2, y2]` in pixels that "Region [i]" refers to (SpatialRGPT-Bench).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<[f64; 4]>,
    /// The input row it came from ("file:line", "file:row"), named when the item fails.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
}

impl EvalItem {
    /// "qualitative" (yes/no, which) or "quantitative" (lengths, clock directions, angles).
    pub fn family(&self) -> &'static str {
        family_of(&self.truth)
    }
}

pub fn family_of(truth: &Truth) -> &'static str {
    if truth.is_qualitative() {
        "qualitative"
    } else {
        "quantitative"
    }
}

/// An input row that was not turned into an item, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    /// "file:line" or "file:row".
    pub location: String,
    pub reason: String,
}

/// A named list of items, with the rows that were skipped while reading it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    pub name: String,
    pub items: Vec<EvalItem>,
    /// Rows with nothing to ask (general VQA records without spatial truth, unsupported categories).
    pub skipped: Vec<Skip>,
    /// Rows that should have been items but could not be read: malformed lines, missing images. An evaluation
    /// reports them as failed items.
    #[serde(default)]
    pub bad: Vec<Skip>,
}

impl EvalSet {
    pub fn new(name: impl Into<String>) -> Self {
        EvalSet {
            name: name.into(),
            items: Vec::new(),
            skipped: Vec::new(),
            bad: Vec::new(),
        }
    }

    pub(crate) fn bad(&mut self, location: String, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(%location, %reason, "bad evaluation row");
        self.bad.push(Skip { location, reason });
    }

    pub(crate) fn skip(&mut self, location: String, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(%location, %reason, "skipped evaluation row");
        self.skipped.push(Skip { location, reason });
    }

    /// The first `n` items (a quick look at a large benchmark).
    pub fn truncated(mut self, n: usize) -> Self {
        self.items.truncate(n);
        self
    }
}
