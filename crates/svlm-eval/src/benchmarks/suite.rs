//! Running a published benchmark: finding its release files, asking the model, keeping every answer in
//! `predictions.jsonl` as it goes (a rerun answers only what is missing), judging by the benchmark's own rule.

use super::standard::{BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext};
use super::{blink, cvbench, embspatial, threedsr, truth_sets, vsibench, whatsup};
use crate::report::BenchReport;
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Anything that answers a prompt about some images (a VLM, a remote API, a test double).
pub trait ImagesAnswerer {
    /// One answer per (images, prompt), in order.
    fn answer_images(&mut self, batch: &[(Vec<PathBuf>, String)]) -> Result<Vec<String>>;
}

/// A closure as an [`ImagesAnswerer`].
pub struct FnImagesAnswerer<F>(pub F);

impl<F> ImagesAnswerer for FnImagesAnswerer<F>
where
    F: FnMut(&[(Vec<PathBuf>, String)]) -> Result<Vec<String>>,
{
    fn answer_images(&mut self, batch: &[(Vec<PathBuf>, String)]) -> Result<Vec<String>> {
        (self.0)(batch)
    }
}

/// The release files of `benchmark` at `data`: the file itself, or the files in the folder (two levels deep)
/// that the benchmark is released as. Parquet is preferred where a release has both Parquet and JSONL of the
/// same rows.
pub fn discover(benchmark: Benchmark, data: &Path) -> Result<Vec<PathBuf>> {
    if vsibench::is_video(data) {
        let frames = data.with_extension("");
        bail!(
            "{}: a video; svlm reads video as frames. Extract them next to the video with `{}`, then give --data \
             the {} question file (test.jsonl or the Parquet) or its folder, which holds <dataset>/<scene_name>/ \
             frame folders",
            data.display(),
            vsibench::extract_command(data, &frames),
            Benchmark::VsiBench.title()
        );
    }
    if data.is_file() {
        return Ok(vec![data.to_path_buf()]);
    }
    ensure!(data.is_dir(), "{}: no such file or folder", data.display());
    let mut files = Vec::new();
    collect(data, 2, &mut files)?;
    files.sort();
    let ext = |p: &PathBuf| {
        p.extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_string()
    };
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let has_parquet = files.iter().any(|p| ext(p) == "parquet");
    let chosen: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| match benchmark {
            Benchmark::WhatsUp => whatsup::FILES.iter().any(|(f, _)| *f == name(p)),
            Benchmark::ThreeDsrBench => ext(p) == "tsv",
            Benchmark::EmbSpatial => name(p).starts_with("embspatial_bench") && ext(p) == "json",
            Benchmark::Blink => {
                let parent = p
                    .parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                parent.is_some_and(|d| blink::SUBTASKS.contains(&d.as_str()))
                    && (!name(p).starts_with("test") || ext(p) != "parquet")
                    && matches!(ext(p).as_str(), "parquet" | "json" | "jsonl")
            }
            _ if has_parquet => ext(p) == "parquet",
            _ => matches!(ext(p).as_str(), "json" | "jsonl"),
        })
        .collect();
    ensure!(
        !chosen.is_empty(),
        "{}: no {} release files found (see the README's benchmark table for the layout)",
        data.display(),
        benchmark.title()
    );
    Ok(chosen)
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.is_dir() && depth > 0 {
            collect(&path, depth - 1, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads a benchmark from a release file or folder.
pub fn load(benchmark: Benchmark, data: &Path, ctx: &ReadContext) -> Result<BenchSet> {
    let files = discover(benchmark, data)?;
    let set = match benchmark {
        Benchmark::CvBench => cvbench::read(&files, ctx),
        Benchmark::Blink => blink::read(&files, ctx),
        Benchmark::EmbSpatial => embspatial::read(&files, ctx),
        Benchmark::WhatsUp => whatsup::read(&files, ctx),
        Benchmark::ThreeDsrBench => threedsr::read(&files, ctx),
        Benchmark::VsiBench => vsibench::read(&files, ctx),
        Benchmark::QSpatial => truth_sets::read_qspatial(&files, ctx),
        Benchmark::SpatialRgpt => truth_sets::read_spatialrgpt(&files, ctx),
    }
    .with_context(|| format!("reading {} from {}", benchmark.title(), data.display()))?;
    if set.items.is_empty() {
        bail!(
            "{}: no {} questions could be read ({} rows skipped{})",
            data.display(),
            benchmark.title(),
            set.skipped.len(),
            set.skipped
                .first()
                .map(|s| format!(", first: {}: {}", s.location, s.reason))
                .unwrap_or_default()
        );
    }
    Ok(set)
}

/// Judges one answer by the benchmark's own rule.
pub fn judge(benchmark: Benchmark, item: &BenchItem, answer: &str) -> Judged {
    match benchmark {
        Benchmark::CvBench => cvbench::judge(item, answer),
        Benchmark::Blink => blink::judge(item, answer),
        Benchmark::EmbSpatial => embspatial::judge(item, answer),
        Benchmark::WhatsUp => whatsup::judge(item, answer),
        Benchmark::ThreeDsrBench => threedsr::judge(item, answer),
        Benchmark::VsiBench => vsibench::judge(item, answer),
        Benchmark::QSpatial | Benchmark::SpatialRgpt => truth_sets::judge(benchmark, item, answer),
    }
}

/// The benchmark's tables from judged items.
pub fn summarize(benchmark: Benchmark, pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    match benchmark {
        Benchmark::CvBench => cvbench::summarize(pairs),
        Benchmark::Blink => blink::summarize(pairs),
        Benchmark::EmbSpatial => embspatial::summarize(pairs),
        Benchmark::WhatsUp => whatsup::summarize(pairs),
        Benchmark::ThreeDsrBench => threedsr::summarize(pairs),
        Benchmark::VsiBench => vsibench::summarize(pairs),
        Benchmark::QSpatial | Benchmark::SpatialRgpt => truth_sets::summarize(benchmark, pairs),
    }
}

/// One answered question as kept in `predictions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchPrediction {
    pub id: String,
    pub model: String,
    pub category: String,
    pub images: Vec<String>,
    pub prompt: String,
    pub answer: String,
    /// The right answer: a letter, a number or svlm's truth.
    pub target: String,
    #[serde(flatten)]
    pub judged: Judged,
}

impl BenchPrediction {
    pub fn new(benchmark: Benchmark, item: &BenchItem, model: &str, answer: String) -> Self {
        BenchPrediction {
            id: item.id.clone(),
            model: model.to_string(),
            category: item.category.clone(),
            images: item
                .images
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            prompt: item.prompt.clone(),
            judged: judge(benchmark, item, &answer),
            target: item.target.text(),
            answer,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The model's name in predictions and reports; a folder's predictions by another model are refused.
    pub model: String,
    pub batch_size: usize,
}

/// The file predictions are kept in.
pub fn predictions_path(out_dir: &Path) -> PathBuf {
    out_dir.join("predictions.jsonl")
}

/// Asks `answerer` every question of `set` not yet in `out_dir/predictions.jsonl`, appending each batch's
/// answers as they come (an interrupted run loses at most a batch), then judges all answers afresh, rewrites the
/// predictions in the set's order and writes the report. `progress(done, total)` is called after each batch.
pub fn run_benchmark(
    set: &BenchSet,
    answerer: &mut dyn ImagesAnswerer,
    out_dir: &Path,
    options: &RunOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BenchReport> {
    ensure!(options.batch_size > 0, "batch size must be at least 1");
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let started = Instant::now();
    let path = predictions_path(out_dir);
    let mut answers = read_kept_answers(&path, set, &options.model)?;
    let resumed = answers.len();
    write_predictions(&path, set, &answers, &options.model)?;
    let todo: Vec<&BenchItem> = set
        .items
        .iter()
        .filter(|i| !answers.contains_key(&i.id))
        .collect();
    progress(answers.len(), set.items.len());
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    for chunk in todo.chunks(options.batch_size) {
        let batch: Vec<(Vec<PathBuf>, String)> = chunk
            .iter()
            .map(|i| (i.images.clone(), i.prompt.clone()))
            .collect();
        let got = answerer.answer_images(&batch).with_context(|| {
            format!("answering {} questions (from {})", chunk.len(), chunk[0].id)
        })?;
        ensure!(
            got.len() == chunk.len(),
            "the answerer returned {} answers for {} questions",
            got.len(),
            chunk.len()
        );
        let mut lines = String::new();
        for (item, answer) in chunk.iter().zip(got) {
            let p = BenchPrediction::new(set.benchmark, item, &options.model, answer.clone());
            lines.push_str(&serde_json::to_string(&p)?);
            lines.push('\n');
            answers.insert(item.id.clone(), answer);
        }
        file.write_all(lines.as_bytes())
            .and_then(|_| file.flush())
            .with_context(|| format!("appending to {}", path.display()))?;
        progress(answers.len(), set.items.len());
    }
    drop(file);
    let predictions = write_predictions(&path, set, &answers, &options.model)?;
    let judged: Vec<(&BenchItem, &Judged)> = set
        .items
        .iter()
        .zip(&predictions)
        .map(|(item, p)| (item, &p.judged))
        .collect();
    let summary = summarize(set.benchmark, &judged);
    let mut report = BenchReport::new(set, &options.model, summary, &predictions);
    report.resumed = resumed;
    report.seconds = started.elapsed().as_secs_f64();
    report.write(out_dir)?;
    Ok(report)
}

/// The answers already in `path` for questions of `set`: unreadable lines (a write cut off by an interruption)
/// and answers to questions no longer in the set are dropped with a warning, duplicates keep the first. Answers
/// by another model are an error.
fn read_kept_answers(path: &Path, set: &BenchSet, model: &str) -> Result<HashMap<String, String>> {
    let mut answers = HashMap::new();
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(answers);
    };
    let ids: HashSet<&str> = set.items.iter().map(|i| i.id.as_str()).collect();
    let (mut unreadable, mut foreign) = (0usize, 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(p) = serde_json::from_str::<BenchPrediction>(line) else {
            unreadable += 1;
            continue;
        };
        if p.model != model {
            bail!(
                "{} holds answers by model {:?}, not {model:?}: give another --out folder",
                path.display(),
                p.model
            );
        }
        if !ids.contains(p.id.as_str()) {
            foreign += 1;
            continue;
        }
        answers.entry(p.id).or_insert(p.answer);
    }
    if unreadable + foreign > 0 {
        tracing::warn!(
            path = %path.display(),
            unreadable,
            not_in_set = foreign,
            "dropped kept predictions"
        );
    }
    Ok(answers)
}

/// Rewrites `path` atomically with the answers known so far, in the set's order, judged afresh.
fn write_predictions(
    path: &Path,
    set: &BenchSet,
    answers: &HashMap<String, String>,
    model: &str,
) -> Result<Vec<BenchPrediction>> {
    let predictions: Vec<BenchPrediction> = set
        .items
        .iter()
        .filter_map(|item| {
            answers
                .get(&item.id)
                .map(|a| BenchPrediction::new(set.benchmark, item, model, a.clone()))
        })
        .collect();
    let mut text = String::new();
    for p in &predictions {
        text.push_str(&serde_json::to_string(p)?);
        text.push('\n');
    }
    svlm_report::write_atomic(path, text.as_bytes())?;
    Ok(predictions)
}
