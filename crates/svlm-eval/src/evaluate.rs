//! Asking a model every question of a set and scoring the answers.

use crate::dataset::{EvalItem, EvalSet, family_of};
use crate::report::EvalReport;
use crate::score::{Score, score_answer};
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
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
