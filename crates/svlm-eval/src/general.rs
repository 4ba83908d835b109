//! General VQA (colours, shapes, counting, presence) next to the spatial questions: free-text reference answers,
//! scored with `svlm_answers::answers_match`. Used to check that spatial co-training keeps general abilities.

use crate::benchmarks::{read_records, resolve};
use crate::evaluate::{Answerer, EvalOptions};
use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use svlm_answers::answers_match;
use svlm_report::write_atomic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneralItem {
    pub id: String,
    pub image: PathBuf,
    pub question: String,
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneralPrediction {
    pub id: String,
    pub image: String,
    pub question: String,
    pub reference: String,
    pub answer_text: String,
    pub correct: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneralReport {
    pub dataset: String,
    pub model: String,
    pub count: usize,
    pub correct: usize,
    /// correct / count; `None` for an empty set.
    pub accuracy: Option<f64>,
    #[serde(skip)]
    pub predictions: Vec<GeneralPrediction>,
}

/// The question/answer pairs of synthesis records that have no `spatial` truth (general VQA records), from a JSONL
/// file or a folder of shards; records with spatial truth are left to [`crate::read_synth`]. Ids are
/// `<record id>#<turn index>`.
pub fn read_general_vqa(path: &Path, image_root: Option<&Path>) -> Result<Vec<GeneralItem>> {
    let mut items = Vec::new();
    for (_, root, record) in read_records(path, image_root, None)? {
        if !record.spatial.is_empty() {
            continue;
        }
        let image = resolve(&root, &record.image);
        for (turn, (question, reference)) in record.qa_pairs().into_iter().enumerate() {
            items.push(GeneralItem {
                id: format!("{}#{turn}", record.id),
                image: image.clone(),
                question,
                reference,
            });
        }
    }
    Ok(items)
}

/// Asks every general question in batches and scores the answers against the references.
pub fn evaluate_general(
    dataset: &str,
    items: &[GeneralItem],
    answerer: &mut dyn Answerer,
    options: &EvalOptions,
) -> Result<GeneralReport> {
    ensure!(options.batch_size > 0, "batch size must be at least 1");
    let mut predictions = Vec::with_capacity(items.len());
    for (b, chunk) in items.chunks(options.batch_size).enumerate() {
        let queries: Vec<(PathBuf, String)> = chunk
            .iter()
            .map(|i| {
                let q = match &options.prompt_suffix {
                    Some(suffix) => format!("{}{suffix}", i.question),
                    None => i.question.clone(),
                };
                (i.image.clone(), q)
            })
            .collect();
        let answers = answerer
            .answer_batch(&queries)
            .with_context(|| format!("answering general batch {b}"))?;
        ensure!(
            answers.len() == chunk.len(),
            "general batch {b}: the answerer returned {} answers for {} questions",
            answers.len(),
            chunk.len()
        );
        for (item, answer) in chunk.iter().zip(answers) {
            predictions.push(GeneralPrediction {
                id: item.id.clone(),
                image: item.image.display().to_string(),
                question: item.question.clone(),
                reference: item.reference.clone(),
                correct: answers_match(&item.reference, &answer),
                answer_text: answer,
            });
        }
    }
    let correct = predictions.iter().filter(|p| p.correct).count();
    Ok(GeneralReport {
        dataset: dataset.to_string(),
        model: options.model_name.clone(),
        count: predictions.len(),
        correct,
        accuracy: (!predictions.is_empty()).then(|| correct as f64 / predictions.len() as f64),
        predictions,
    })
}

impl GeneralReport {
    /// Writes `general_report.json` and `general_predictions.jsonl` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let json = dir.join("general_report.json");
        write_atomic(
            &json,
            serde_json::to_string_pretty(self)
                .context("serializing")?
                .as_bytes(),
        )?;
        let mut lines = String::new();
        for p in &self.predictions {
            lines.push_str(&serde_json::to_string(p).context("serializing a prediction")?);
            lines.push('\n');
        }
        let predictions = dir.join("general_predictions.jsonl");
        write_atomic(&predictions, lines.as_bytes())?;
        Ok((json, predictions))
    }
}
