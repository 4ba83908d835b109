//! The synthesis output record: one JSON object per line (LLaVA `conversations` + a `spatial` block with truth).
//!
//! `spatial[i]` describes the i-th human/gpt pair of `conversations`. This module is the single definition of the
//! format: the trainer and the evaluator read it through these types.

use serde::{Deserialize, Serialize};

/// One image with its question/answer turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpatialRecord {
    pub id: String,
    /// Image path relative to the shard's folder (or the source's `image_root`).
    pub image: String,
    pub conversations: Vec<Turn>,
    /// Ground truth per human/gpt pair, in order.
    #[serde(default)]
    pub spatial: Vec<SpatialQa>,
    /// Where the 3D came from and how it was processed (procedural world, RGB-D folder, photo + models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
}

/// A LLaVA conversation turn: `from` is "human" or "gpt"; the first human value starts with "<image>\n".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub from: String,
    pub value: String,
}

/// Truth for one question/answer pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpatialQa {
    /// Question type, snake_case (e.g. "left_predicate", "left_choice", "distance", "clock_direction").
    #[serde(rename = "type")]
    pub kind: String,
    /// Object names as they appear in the question.
    pub objects: Vec<String>,
    pub truth: Truth,
    /// Unit the answer text shows ("m", "cm", "ft", "in"...), for quantitative answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_shown: Option<String>,
    /// "exact" (procedural truth) or "estimated" (lifted from depth).
    pub source: String,
}

/// The ground-truth value of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Truth {
    /// A yes/no predicate.
    Bool { value: bool },
    /// "Which of A and B ...": the right option among `options`.
    Choice { value: String, options: Vec<String> },
    /// A length in metres.
    Length { meters: f64 },
    /// A direction as a clock position, 1..=12 (12 = straight ahead).
    Clock { hour: u8 },
    /// An angle in degrees (e.g. elevation).
    Angle { degrees: f64 },
}

impl Truth {
    /// Qualitative answers are predicates and choices; the rest are quantitative.
    pub fn is_qualitative(&self) -> bool {
        matches!(self, Truth::Bool { .. } | Truth::Choice { .. })
    }
}

impl SpatialRecord {
    /// The (question, answer) text pairs, with the `<image>` marker removed from the question.
    pub fn qa_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut pending: Option<String> = None;
        for turn in &self.conversations {
            match turn.from.as_str() {
                "human" | "user" => {
                    let q = turn.value.replace("<image>\n", "").replace("<image>", "");
                    pending = Some(q.trim().to_string());
                }
                "gpt" | "assistant" => {
                    if let Some(q) = pending.take() {
                        pairs.push((q, turn.value.clone()));
                    }
                }
                _ => {}
            }
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pairs_turns() {
        let line = r#"{"id":"s1","image":"images/s1.png","conversations":[
            {"from":"human","value":"<image>\nIs the red cube left of the blue ball?"},{"from":"gpt","value":"Yes."},
            {"from":"human","value":"How far apart are they?"},{"from":"gpt","value":"About 1.2 m."}],
            "spatial":[{"type":"left_predicate","objects":["red cube","blue ball"],"truth":{"kind":"bool","value":true},"source":"exact"},
                       {"type":"distance","objects":["red cube","blue ball"],"truth":{"kind":"length","meters":1.23},"unit_shown":"m","source":"exact"}]}"#;
        let r: SpatialRecord = serde_json::from_str(line).expect("parse");
        assert_eq!(r.qa_pairs().len(), 2);
        assert_eq!(r.qa_pairs()[0].0, "Is the red cube left of the blue ball?");
        assert!(r.spatial[0].truth.is_qualitative());
        assert_eq!(r.spatial[1].truth, Truth::Length { meters: 1.23 });
        let back: SpatialRecord =
            serde_json::from_str(&serde_json::to_string(&r).expect("ser")).expect("reparse");
        assert_eq!(back, r);
    }
}
