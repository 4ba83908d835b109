//! Asking a model every question of a set and scoring the answers.

use crate::dataset::{EvalItem, EvalSet, Skip, family_of};
use crate::report::EvalReport;
use crate::score::{Score, score_answer};
use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
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
    /// Append each batch's predictions to this JSONL file as they are made, and reuse the predictions it already
    /// holds (same id, image and question) instead of asking again: a killed evaluation resumes where it stopped.
    #[serde(default)]
    pub resume_log: Option<PathBuf>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            batch_size: 8,
            prompt_suffix: None,
            model_name: "model".into(),
            resume_log: None,
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

/// The file an evaluation in `dir` appends its predictions to, kept across runs only while they are made the same
/// way: `dir/eval_settings.json` records `settings` (model, data, generation), and when it says otherwise the
/// predictions there are deleted before the new settings are written.
pub fn resume_log(dir: &Path, settings: &serde_json::Value) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join("predictions.jsonl");
    let settings_path = dir.join("eval_settings.json");
    let same = std::fs::read(&settings_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|old| &old == settings);
    if !same {
        if log.exists() {
            tracing::info!(
                "{}: predictions made with other settings; starting over",
                log.display()
            );
            std::fs::remove_file(&log).with_context(|| format!("removing {}", log.display()))?;
        }
        svlm_report::write_atomic(
            &settings_path,
            serde_json::to_string_pretty(settings)?.as_bytes(),
        )
        .with_context(|| format!("writing {}", settings_path.display()))?;
    }
    Ok(log)
}

/// The predictions of `log` that answer an item of `set` (same id, image and question), by id, first one kept. A
/// torn last line (a killed writer) or any other unreadable line is dropped; the log is rewritten with what is kept,
/// so appending continues after a whole line.
fn reuse_predictions(log: &Path, set: &EvalSet) -> Result<HashMap<String, Prediction>> {
    let Ok(text) = std::fs::read(log) else {
        return Ok(HashMap::new());
    };
    let items: HashMap<&str, &EvalItem> = set.items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut kept = HashMap::new();
    let mut lines = String::new();
    for line in text.split(|&b| b == b'\n') {
        let Ok(p) = serde_json::from_slice::<Prediction>(line) else {
            continue;
        };
        let matches = items.get(p.id.as_str()).is_some_and(|item| {
            item.question == p.question && item.image.display().to_string() == p.image
        });
        if matches && !kept.contains_key(&p.id) {
            lines.push_str(&serde_json::to_string(&p)?);
            lines.push('\n');
            kept.insert(p.id.clone(), p);
        }
    }
    svlm_report::write_atomic(log, lines.as_bytes())
        .with_context(|| format!("rewriting {}", log.display()))?;
    Ok(kept)
}

/// Answers of one batch, one result per item. When the batch fails as a whole (an unreadable image, say), each
/// item is asked alone so that one bad item costs only itself.
fn answer_items(
    answerer: &mut dyn Answerer,
    queries: &[(PathBuf, String)],
) -> Result<Vec<Result<String, String>>> {
    let checked = |answers: Vec<String>, n: usize| -> Result<Vec<String>> {
        ensure!(
            answers.len() == n,
            "the answerer returned {} answers for {n} questions",
            answers.len()
        );
        Ok(answers)
    };
    match answerer.answer_batch(queries) {
        Ok(answers) => Ok(checked(answers, queries.len())?
            .into_iter()
            .map(Ok)
            .collect()),
        Err(e) if queries.len() == 1 => Ok(vec![Err(format!("{e:#}"))]),
        Err(_) => queries
            .iter()
            .map(|q| match answerer.answer_batch(std::slice::from_ref(q)) {
                Ok(answers) => Ok(Ok(checked(answers, 1)?.remove(0))),
                Err(e) => Ok(Err(format!("{e:#}"))),
            })
            .collect(),
    }
}

/// Asks `answerer` every item of `set` in batches and scores the answers. An item the answerer fails on (alone) is
/// listed in the report's `failed` with the set's bad rows, and the rest is scored; a whole batch failing before any
/// answer or twice in a row stops the run (a broken answerer), as does a batch answered with the wrong number of
/// answers. With `resume_log`, predictions are appended as they are made and the ones
/// already there are reused.
pub fn evaluate(
    set: &EvalSet,
    answerer: &mut dyn Answerer,
    options: &EvalOptions,
) -> Result<EvalReport> {
    evaluate_with_progress(set, answerer, options, &mut |_, _| {})
}

/// [`evaluate`], calling `progress(answered, total)` after every batch (a progress bar's hook).
pub fn evaluate_with_progress(
    set: &EvalSet,
    answerer: &mut dyn Answerer,
    options: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport> {
    ensure!(options.batch_size > 0, "batch size must be at least 1");
    let started = Instant::now();
    let mut done = match &options.resume_log {
        Some(log) => reuse_predictions(log, set)?,
        None => HashMap::new(),
    };
    if !done.is_empty() {
        tracing::info!(
            reused = done.len(),
            "predictions reused from an earlier run"
        );
    }
    let mut log = match &options.resume_log {
        Some(path) => Some((
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
            path,
        )),
        None => None,
    };
    let todo: Vec<&EvalItem> = set
        .items
        .iter()
        .filter(|i| !done.contains_key(&i.id))
        .collect();
    let mut failed = set.bad.clone();
    let mut whole_batches_failed = 0;
    for (b, chunk) in todo.chunks(options.batch_size).enumerate() {
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
        let answers = answer_items(answerer, &queries).with_context(|| format!("batch {b}"))?;
        if let Some(Err(first)) = answers.iter().find(|a| a.is_err())
            && answers.iter().all(Result::is_err)
        {
            // A whole batch failing before anything was answered, or twice in a row, is the answerer's fault
            // (no model, out of memory), not the items'.
            whole_batches_failed += 1;
            if done.is_empty() || whole_batches_failed >= 2 {
                anyhow::bail!(
                    "answering batch {b} (items {}..{} of the ones left): {first}",
                    b * options.batch_size,
                    b * options.batch_size + chunk.len()
                );
            }
        } else {
            whole_batches_failed = 0;
        }
        let mut lines = String::new();
        for (item, answer) in chunk.iter().zip(answers) {
            match answer {
                Ok(text) => {
                    let p = Prediction::new(item, text);
                    lines.push_str(&serde_json::to_string(&p)?);
                    lines.push('\n');
                    done.insert(p.id.clone(), p);
                }
                Err(reason) => failed.push(Skip {
                    location: if item.location.is_empty() {
                        item.id.clone()
                    } else {
                        item.location.clone()
                    },
                    reason: format!("{} ({}): {reason}", item.id, item.image.display()),
                }),
            }
        }
        if let Some((file, path)) = log.as_mut() {
            file.write_all(lines.as_bytes())
                .and_then(|()| file.sync_data())
                .with_context(|| format!("appending to {}", path.display()))?;
        }
        progress(done.len(), set.items.len());
    }
    let predictions: Vec<Prediction> = set
        .items
        .iter()
        .filter_map(|i| done.remove(&i.id))
        .collect();
    let mut report =
        EvalReport::from_predictions(&set.name, &options.model_name, predictions, &set.skipped);
    report.failed = failed;
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
            location: "test.jsonl:1".into(),
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
