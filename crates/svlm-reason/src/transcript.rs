//! The record of one reasoning run: every plan, LLM turn, VLM question/answer (raw and parsed) and the final
//! answer, saved as JSON atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A VLM answer read with `svlm-answers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParsedAnswer {
    /// Length in metres (`parse_length`; the midpoint of a range).
    pub meters: Option<f64>,
    /// Yes/no (`parse_yes_no`).
    pub yes_no: Option<bool>,
}

impl ParsedAnswer {
    /// The value as the LLM sees it: "1.2 m", "yes", or "unreadable".
    pub fn describe(&self) -> String {
        match (self.meters, self.yes_no) {
            (Some(m), _) => format!("{m:.3} m"),
            (None, Some(true)) => "yes".into(),
            (None, Some(false)) => "no".into(),
            (None, None) => "unreadable (no number or yes/no found)".into(),
        }
    }
}

pub fn parse_answer(text: &str) -> ParsedAnswer {
    ParsedAnswer {
        meters: svlm_answers::parse_length(text)
            .map(|l| l.meters)
            .filter(|m| m.is_finite()),
        yes_no: svlm_answers::parse_yes_no(text),
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// The rule-based planner's plan.
    Plan {
        plan: serde_json::Value,
    },
    /// What the LLM said (its text, and the tool questions it asked in this turn).
    Llm {
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        asked: Vec<String>,
    },
    /// One elementary question to the VLM.
    Vlm {
        question: String,
        answer: String,
        parsed: ParsedAnswer,
    },
    Final {
        answer: String,
    },
    /// Something that went wrong and was reported back (e.g. an empty tool question).
    Note {
        message: String,
    },
}

impl Step {
    pub fn plan(plan: serde_json::Value) -> Step {
        Step::Plan { plan }
    }
    pub fn vlm(question: &str, answer: &str, parsed: ParsedAnswer) -> Step {
        Step::Vlm {
            question: question.to_string(),
            answer: answer.to_string(),
            parsed,
        }
    }
    pub fn final_answer(answer: &str) -> Step {
        Step::Final {
            answer: answer.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub question: String,
    pub image: PathBuf,
    /// "rules" or "llm:<model>".
    pub planner: String,
    pub steps: Vec<Step>,
    pub final_answer: Option<String>,
    /// Whether the final answer rests on at least one readable VLM measurement ([`Transcript::measurements`]).
    /// `false` marks an answer an LLM gave without one, even after a reminder; `None` before a final answer.
    #[serde(default)]
    pub grounded: Option<bool>,
    /// Why the run stopped without an answer.
    pub error: Option<String>,
}

impl Transcript {
    pub fn new(question: &str, image: &Path, planner: &str) -> Self {
        Transcript {
            question: question.to_string(),
            image: image.to_path_buf(),
            planner: planner.to_string(),
            steps: Vec::new(),
            final_answer: None,
            grounded: None,
            error: None,
        }
    }

    pub fn push(&mut self, step: Step) {
        if let Step::Final { answer } = &step {
            self.final_answer = Some(answer.clone());
        }
        self.steps.push(step);
    }

    /// Number of VLM questions asked.
    pub fn vlm_questions(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Vlm { .. }))
            .count()
    }

    /// Number of VLM answers that could be read as a value (a length or a yes/no): what an answer can rest on.
    pub fn measurements(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| {
                matches!(s, Step::Vlm { parsed, .. } if parsed.meters.is_some() || parsed.yes_no.is_some())
            })
            .count()
    }

    /// Records the final answer and whether it is grounded in the VLM's measurements.
    pub fn finish(&mut self, answer: &str, grounded: bool) {
        self.push(Step::final_answer(answer));
        self.grounded = Some(grounded);
    }

    /// Writes the transcript as pretty JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("serializing the transcript")?;
        svlm_report::write_atomic(path, &bytes)
            .with_context(|| format!("writing transcript {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let p = parse_answer("They are about 45 cm apart.");
        assert!((p.meters.unwrap() - 0.45).abs() < 1e-9);
        assert_eq!(parse_answer("No, it is not.").yes_no, Some(false));
        assert_eq!(
            parse_answer("purple").describe(),
            "unreadable (no number or yes/no found)"
        );

        let dir = tempfile::tempdir().unwrap();
        let mut t = Transcript::new("q", Path::new("img.png"), "rules");
        t.push(Step::vlm(
            "How far?",
            "I can't tell.",
            parse_answer("I can't tell."),
        ));
        assert_eq!((t.vlm_questions(), t.measurements()), (1, 0));
        t.push(Step::vlm("How far?", "2 m", parse_answer("2 m")));
        assert_eq!(t.measurements(), 1);
        assert_eq!(t.grounded, None);
        t.finish("Yes.", true);
        let path = dir.path().join("t.json");
        t.save(&path).unwrap();
        let back: Transcript = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.final_answer.as_deref(), Some("Yes."));
        assert_eq!(back.grounded, Some(true));
        assert_eq!(back.vlm_questions(), 2);
    }
}
