//! The synthesis output record: one JSON object per line (LLaVA `conversations` + a `spatial` block with truth).
//!
//! `spatial[i]` describes the i-th human/gpt pair of `conversations`. This module is the single definition of the
//! format: the trainer and the evaluator read it through these types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::general::GeneralKind;
use crate::qa::{Quantity, Relation};
pub use crate::scene::TruthSource;

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

/// A LLaVA conversation turn; the first human value starts with "<image>\n".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub from: Role,
    pub value: String,
}

/// Who speaks a turn. Written as LLaVA's "human" / "gpt"; the chat names "user" / "assistant" are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "human", alias = "user")]
    Human,
    #[serde(rename = "gpt", alias = "assistant")]
    Gpt,
    #[serde(rename = "system")]
    System,
}

impl Role {
    /// The name written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Human => "human",
            Role::Gpt => "gpt",
            Role::System => "system",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" | "user" => Ok(Role::Human),
            "gpt" | "assistant" => Ok(Role::Gpt),
            "system" => Ok(Role::System),
            other => Err(format!(
                "turn role {other:?} must be human, gpt or system (user, assistant)"
            )),
        }
    }
}

/// Truth for one question/answer pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpatialQa {
    /// Question type, written snake_case ("left_predicate", "left_choice", "distance", "clock_direction").
    #[serde(rename = "type")]
    pub kind: QuestionKind,
    /// Object names as they appear in the question.
    pub objects: Vec<String>,
    pub truth: Truth,
    /// Unit the answer text shows ("m", "cm", "ft", "in"...), for quantitative answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_shown: Option<String>,
    /// "exact" (procedural truth) or "estimated" (lifted from depth).
    pub source: TruthSource,
}

/// The type of a question: a yes/no predicate or a two-way choice about a relation, a measured quantity, or a
/// general (non-spatial) question. Its name in the record is [`QuestionKind::as_str`]; every type the synthesis
/// can write is in [`QuestionKind::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuestionKind {
    /// "Is A left of B?" (`left_predicate`).
    Predicate(Relation),
    /// "Which is more to the left, A or B?" (`left_choice`).
    Choice(Relation),
    /// "How far apart are A and B?" (`distance`).
    Quantity(Quantity),
    /// Colour, shape, count and presence questions (`general_color`).
    General(GeneralKind),
}

impl QuestionKind {
    /// The snake_case name written in records, manifests and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Predicate(rel) => rel.predicate_kind(),
            QuestionKind::Choice(rel) => rel.choice_kind(),
            QuestionKind::Quantity(q) => q.kind(),
            QuestionKind::General(g) => g.as_str(),
        }
    }

    /// Every type: predicates, choices, quantities, general questions.
    pub fn all() -> impl Iterator<Item = QuestionKind> {
        let relations = Relation::ALL.into_iter();
        relations
            .clone()
            .map(QuestionKind::Predicate)
            .chain(relations.map(QuestionKind::Choice))
            .chain(Quantity::ALL.into_iter().map(QuestionKind::Quantity))
            .chain(GeneralKind::ALL.into_iter().map(QuestionKind::General))
    }

    /// The relation a predicate or choice asks about.
    pub fn relation(self) -> Option<Relation> {
        match self {
            QuestionKind::Predicate(rel) | QuestionKind::Choice(rel) => Some(rel),
            _ => None,
        }
    }
}

impl fmt::Display for QuestionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QuestionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QuestionKind::all()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown question type {s:?}"))
    }
}

impl PartialEq<str> for QuestionKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for QuestionKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for QuestionKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for QuestionKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
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
            match turn.from {
                Role::Human => {
                    let q = turn.value.replace("<image>\n", "").replace("<image>", "");
                    pending = Some(q.trim().to_string());
                }
                Role::Gpt => {
                    if let Some(q) = pending.take() {
                        pairs.push((q, turn.value.clone()));
                    }
                }
                Role::System => {}
            }
        }
        pairs
    }

    /// Splits the record into records of at most `k` question/answer pairs about the same image (ids
    /// `<id>-<part>`); each part's first question carries the `<image>` marker. A record of at most `k` pairs is
    /// returned whole. Smaller records put more different images in a batch for the same number of tokens.
    pub fn split(&self, k: usize) -> Vec<SpatialRecord> {
        let k = k.max(1);
        let pairs: Vec<(&[Turn], &SpatialQa)> =
            self.conversations.chunks(2).zip(&self.spatial).collect();
        if pairs.len() <= k {
            return vec![self.clone()];
        }
        pairs
            .chunks(k)
            .enumerate()
            .map(|(part, chunk)| {
                let mut conversations = Vec::with_capacity(2 * chunk.len());
                for (i, (turns, _)) in chunk.iter().enumerate() {
                    for turn in turns.iter() {
                        let mut turn = turn.clone();
                        let question = turn.value.strip_prefix("<image>\n").unwrap_or(&turn.value);
                        if turn.from == Role::Human {
                            turn.value = if i == 0 {
                                format!("<image>\n{question}")
                            } else {
                                question.to_string()
                            };
                        }
                        conversations.push(turn);
                    }
                }
                SpatialRecord {
                    id: format!("{}-{part}", self.id),
                    image: self.image.clone(),
                    conversations,
                    spatial: chunk.iter().map(|(_, qa)| (*qa).clone()).collect(),
                    provenance: self.provenance.clone(),
                }
            })
            .collect()
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

    fn record(n: usize) -> SpatialRecord {
        let mut conversations = Vec::new();
        let mut spatial = Vec::new();
        for i in 0..n {
            let q = format!("question {i}?");
            conversations.push(Turn {
                from: Role::Human,
                value: if i == 0 { format!("<image>\n{q}") } else { q },
            });
            conversations.push(Turn {
                from: Role::Gpt,
                value: format!("answer {i}."),
            });
            spatial.push(SpatialQa {
                kind: QuestionKind::Predicate(crate::qa::Relation::Left),
                objects: vec!["a".into(), "b".into()],
                truth: Truth::Bool { value: i % 2 == 0 },
                unit_shown: None,
                source: TruthSource::Exact,
            });
        }
        SpatialRecord {
            id: "r".into(),
            image: "images/r.png".into(),
            conversations,
            spatial,
            provenance: None,
        }
    }

    #[test]
    fn split_keeps_pairs_truths_and_one_image_marker_per_record() {
        let parts = record(5).split(2);
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts.iter().map(|p| p.spatial.len()).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        for (k, part) in parts.iter().enumerate() {
            assert_eq!(part.id, format!("r-{k}"));
            assert_eq!(part.conversations.len(), 2 * part.spatial.len());
            let markers = part
                .conversations
                .iter()
                .filter(|t| t.value.contains("<image>"))
                .count();
            assert_eq!(markers, 1);
            assert!(part.conversations[0].value.starts_with("<image>\n"));
        }
        assert_eq!(parts[1].conversations[0].value, "<image>\nquestion 2?");
        assert_eq!(parts[1].conversations[1].value, "answer 2.");
        assert_eq!(parts[2].spatial[0].truth, Truth::Bool { value: true });
        assert_eq!(record(2).split(4), vec![record(2)]);
    }
}
