//! Asking a model every question of a set and scoring the answers.

use crate::dataset::{EvalItem, EvalSet, family_of};
use crate::report::EvalReport;
use crate::score::{Score, score_answer};
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use svlm_synth::record::Truth;

/// Anything that answers questions about images: a VLM through `svlm-model`, a remote API, a baseline.
pub trait Answerer {
    /// One answer per (image path, question), in order.
    fn answer_batch(&mut self, items: &[(PathBuf, String)]) -> Result<Vec<String>>;
}

/// A closure as an answerer: `FnAnswerer(|batch| Ok(vec!["yes".into(); batch.len()]))`.
pub struct FnAnswerer<F>(pub F);

impl<F> Answerer for FnAnswerer<F>
where
    F: FnMut(&[(PathBuf, String)]) -> Result<Vec<String>>,
{
    fn answer_batch(&mut self, items: &[(PathBuf, String)]) -> Result<Vec<String>> {
        (self.0)(items)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Questions per `answer_batch` call.
    pub batch_size: usize,
    /// Appended to every question (e.g. " Answer with a number and a unit."); `None` asks the question as is.
    pub prompt_suffix: Option<String>,
    /// Name of the model in the report.
    pub model_name: String,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 8,
            prompt_suffix: None,
            model_name: "model".into(),
        }
    }
}

/// One answered question with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub image: String,
    pub kind: String,
    /// "qualitative" or "quantitative".
    pub family: String,
    pub question: String,
    pub answer_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_answer: Option<String>,
    pub truth: Truth,
    pub score: Score,
}

impl Prediction {
    /// Scores `answer_text` against the item's truth.
    pub fn new(item: &EvalItem, answer_text: impl Into<String>) -> Prediction {
        let answer_text = answer_text.into();
        Prediction {
            id: item.id.clone(),
            image: item.image.display().to_string(),
            kind: item.kind.clone(),
            family: family_of(&item.truth).to_string(),
            question: item.question.clone(),
            score: score_answer(&item.truth, &answer_text),
            answer_text,
            reference_answer: item.reference_answer.clone(),
            truth: item.truth.clone(),
        }
    }

    /// The same answer scored again against its truth (by the scorer of this build).
    pub fn rescored(self) -> Prediction {
        Prediction {
            score: score_answer(&self.truth, &self.answer_text),
            ..self
        }
    }
}

/// Scores the answers of a `predictions.jsonl` (written by `svlm eval` or the quickstart) again, without asking
/// anything: a report of the same answers under the current scorer. `model` names the model in the report.
pub fn rescore_predictions(path: &Path, model: &str) -> Result<EvalReport> {
    let predictions: Vec<Prediction> = crate::report::read_predictions(path)?
        .into_iter()
        .map(Prediction::rescored)
        .collect();
    ensure!(
        !predictions.is_empty(),
        "{}: no predictions",
        path.display()
    );
    Ok(EvalReport::from_predictions(
        &path.display().to_string(),
        model,
        predictions,
        &[],
    ))
}

/// Asks `answerer` every item of `set` in batches and scores the answers. An answerer error stops the run (with
/// how far it got); a batch answered with the wrong number of answers is an error.
pub fn evaluate(
    set: &EvalSet,
    answerer: &mut dyn Answerer,
    options: &EvalOptions,
) -> Result<EvalReport> {
    ensure!(options.batch_size > 0, "batch size must be at least 1");
    let started = Instant::now();
    let mut predictions = Vec::with_capacity(set.items.len());
    for (b, chunk) in set.items.chunks(options.batch_size).enumerate() {
        let queries: Vec<(PathBuf, String)> = chunk
            .iter()
            .map(|item| {
                let question = match &options.prompt_suffix {
                    Some(suffix) => format!("{}{suffix}", item.question),
                    None => item.question.clone(),
                };
                (item.image.clone(), question)
            })
            .collect();
        let answers = answerer.answer_batch(&queries).map_err(|e| {
            e.context(format!(
                "answering batch {b} (items {}..{})",
                predictions.len(),
                predictions.len() + chunk.len()
            ))
        })?;
        ensure!(
            answers.len() == chunk.len(),
            "batch {b}: the answerer returned {} answers for {} questions",
            answers.len(),
            chunk.len()
        );
        predictions.extend(
            chunk
                .iter()
                .zip(answers)
                .map(|(item, answer)| Prediction::new(item, answer)),
        );
        if (b + 1) % 10 == 0 {
            tracing::info!(
                done = predictions.len(),
                total = set.items.len(),
                "evaluating"
            );
        }
    }
    let mut report =
        EvalReport::from_predictions(&set.name, &options.model_name, predictions, &set.skipped);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescoring_reads_every_answer_again() {
        let item = EvalItem {
            id: "q".into(),
            image: "img.png".into(),
            question: "Which is further to the left, the purple cylinder or the yellow cone?"
                .into(),
            kind: "left_choice".into(),
            truth: Truth::Choice {
                value: "purple cylinder".into(),
                options: vec!["purple cylinder".into(), "yellow cone".into()],
            },
            reference_answer: None,
            regions: Vec::new(),
        };
        let listing = "From left to right: purple: left, yellow: right.";
        let right = Prediction::new(&item, format!("{listing} So purple cylinder."));
        // A prediction stored by a scorer that took a colour alone for the option.
        let mut lenient = Prediction::new(&item, format!("{listing} So purple cone."));
        lenient.score = right.score.clone();
        assert!(lenient.score.correct);

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("predictions.jsonl");
        let lines: Vec<String> = [&right, &lenient]
            .iter()
            .map(|p| serde_json::to_string(p).expect("json"))
            .collect();
        std::fs::write(&path, lines.join("\n")).expect("write");
        let report = rescore_predictions(&path, "m").expect("rescore");
        assert_eq!(report.items, 2);
        assert_eq!(
            (report.overall.which.hits, report.overall.which.total),
            (1, 2)
        );
        assert_eq!(report.overall.which_misses.mixed_options, 1);
        assert_eq!(report.predictions[0], right);
        assert!(!report.predictions[1].score.correct);
        assert_eq!(report.dataset, path.display().to_string());

        std::fs::write(&path, "").expect("write");
        assert!(rescore_predictions(&path, "m").is_err());
    }
}
