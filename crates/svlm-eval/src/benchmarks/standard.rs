//! The published spatial benchmarks as one kind of evaluation set: items with their images, the benchmark's own
//! prompt and target, judged by the benchmark's own rule and summarised into the tables its paper prints.
//!
//! Each benchmark lives in its own module (reader, prompt, matching rule, summary); this file holds what they share.

use super::matching::{Inferred, can_infer, letter};
use crate::dataset::Skip;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use svlm_synth::record::Truth;

/// A published benchmark `svlm eval --benchmark` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Benchmark {
    CvBench,
    Blink,
    EmbSpatial,
    WhatsUp,
    ThreeDsrBench,
    VsiBench,
    QSpatial,
    SpatialRgpt,
}

impl Benchmark {
    pub const ALL: [Benchmark; 8] = [
        Benchmark::CvBench,
        Benchmark::Blink,
        Benchmark::EmbSpatial,
        Benchmark::WhatsUp,
        Benchmark::ThreeDsrBench,
        Benchmark::VsiBench,
        Benchmark::QSpatial,
        Benchmark::SpatialRgpt,
    ];

    /// The name on the command line, in reports and as the folder under `--data-root`.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::CvBench => "cvbench",
            Benchmark::Blink => "blink",
            Benchmark::EmbSpatial => "embspatial",
            Benchmark::WhatsUp => "whatsup",
            Benchmark::ThreeDsrBench => "3dsrbench",
            Benchmark::VsiBench => "vsibench",
            Benchmark::QSpatial => "qspatial",
            Benchmark::SpatialRgpt => "spatialrgpt",
        }
    }

    /// The name papers print.
    pub fn title(self) -> &'static str {
        match self {
            Benchmark::CvBench => "CV-Bench",
            Benchmark::Blink => "BLINK",
            Benchmark::EmbSpatial => "EmbSpatial-Bench",
            Benchmark::WhatsUp => "What'sUp",
            Benchmark::ThreeDsrBench => "3DSRBench",
            Benchmark::VsiBench => "VSI-Bench",
            Benchmark::QSpatial => "Q-Spatial-Bench",
            Benchmark::SpatialRgpt => "SpatialRGPT-Bench",
        }
    }
}

impl std::fmt::Display for Benchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Benchmark {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let key = s.to_ascii_lowercase().replace(['-', '_', '\'', ' '], "");
        Benchmark::ALL
            .into_iter()
            .find(|b| {
                b.name() == key
                    || b.title().to_ascii_lowercase().replace(['-', '\'', ' '], "") == key
            })
            .or(match key.as_str() {
                "threedsrbench" | "3dsr" => Some(Benchmark::ThreeDsrBench),
                "embspatialbench" => Some(Benchmark::EmbSpatial),
                "blink" => Some(Benchmark::Blink),
                _ => None,
            })
            .with_context(|| {
                let names: Vec<&str> = Benchmark::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "unknown benchmark {s:?} (expected one of {} or all)",
                    names.join(", ")
                )
            })
    }
}

/// What an answer is judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Multiple choice: the options in the order shown, and the index of the right one.
    Choice { options: Vec<String>, answer: usize },
    /// A number scored by its relative error (VSI-Bench's numeric questions).
    Number { value: f64 },
    /// svlm's truth, scored by `score_answer` (Q-Spatial-Bench, SpatialRGPT-Bench).
    Truth { truth: Truth },
}

impl Target {
    /// The right answer as text: "B", "3.2", or the truth.
    pub fn text(&self) -> String {
        match self {
            Target::Choice { answer, .. } => letter(*answer),
            Target::Number { value } => format!("{value}"),
            Target::Truth { truth } => crate::report::truth_text(truth),
        }
    }
}

/// One question of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchItem {
    /// Unique within the benchmark (the release's own id where it has one).
    pub id: String,
    /// The finest category the paper reports (CV-Bench task, BLINK subtask, VSI-Bench question type...).
    pub category: String,
    /// Further labels the summary groups by (CV-Bench `source`, 3DSRBench circular group, What'sUp subset...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The images, in prompt order (VSI-Bench: the sampled frames).
    pub images: Vec<PathBuf>,
    /// The full text prompt, the benchmark's answer-format instruction included.
    pub prompt: String,
    pub target: Target,
}

impl BenchItem {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A benchmark's items and the rows that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSet {
    pub benchmark: Benchmark,
    pub items: Vec<BenchItem>,
    pub skipped: Vec<Skip>,
}

impl BenchSet {
    pub fn new(benchmark: Benchmark) -> Self {
        BenchSet {
            benchmark,
            items: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// One item per row of `files` (JSON/JSONL/TSV/Parquet, see `rows::read_rows`), made by `item` from the row, its
    /// file and the folder its image paths are relative to; a row `item` refuses is a counted skip naming its
    /// location.
    pub(crate) fn from_rows(
        benchmark: Benchmark,
        files: &[PathBuf],
        ctx: &ReadContext,
        item: impl Fn(&serde_json::Value, &Path, &Path) -> std::result::Result<BenchItem, String>,
    ) -> Result<Self> {
        let mut set = BenchSet::new(benchmark);
        for file in files {
            let root = ctx.root_for(file);
            let (rows, malformed) = super::rows::read_rows(file)?;
            for bad in malformed {
                set.skip(bad.location, bad.reason);
            }
            for (location, r) in rows {
                match item(&r, file, &root) {
                    Ok(item) => set.items.push(item),
                    Err(reason) => set.skip(location, reason),
                }
            }
        }
        set.check_unique_ids()?;
        Ok(set)
    }

    pub(crate) fn skip(&mut self, location: impl Into<String>, reason: impl Into<String>) {
        let (location, reason) = (location.into(), reason.into());
        tracing::warn!(%location, %reason, benchmark = %self.benchmark, "skipped benchmark row");
        self.skipped.push(Skip { location, reason });
    }

    /// Fails on two items with one id: predictions are keyed by id.
    pub(crate) fn check_unique_ids(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for item in &self.items {
            if !seen.insert(item.id.as_str()) {
                bail!(
                    "{}: two questions have the id {:?}",
                    self.benchmark,
                    item.id
                );
            }
        }
        Ok(())
    }
}

/// How one answer was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// What the benchmark's rule read from the answer (a letter, a number), when it read anything.
    pub extracted: Option<String>,
    /// Right by the benchmark's own rule.
    pub correct: bool,
    /// Right and unambiguous: the answer names exactly the right option (VLMEvalKit's `can_infer`); equals
    /// `correct` for numeric answers and for benchmarks scored by that rule already.
    pub strict: bool,
    /// 1/0 for choices; the mean relative accuracy for numbers.
    pub score: f64,
    /// |answer - truth| / truth, for numeric answers that were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_error: Option<f64>,
}

impl Judged {
    pub fn choice(extracted: Option<String>, correct: bool, strict: bool) -> Judged {
        Judged {
            extracted,
            correct,
            strict: strict && correct,
            score: if correct { 1.0 } else { 0.0 },
            relative_error: None,
        }
    }
}

/// Whether `answer` names exactly the right option (the strict column).
pub(crate) fn names_only(answer: &str, options: &[String], right: usize) -> bool {
    can_infer(answer, options) == Inferred::Option(right)
}

/// One line of a summary table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Which table: "task", "source", "overall"...
    pub table: String,
    pub name: String,
    /// Questions (or circular groups) behind the value.
    pub n: usize,
    /// By the benchmark's own rule, 0..1.
    pub value: Option<f64>,
    /// The strict column, 0..1.
    pub strict: Option<f64>,
}

/// A benchmark's result: the headline number its paper prints and the tables behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSummary {
    pub benchmark: Benchmark,
    /// What the headline is ("overall accuracy", "mean of the question types"...).
    pub metric: String,
    pub overall: Option<f64>,
    pub strict_overall: Option<f64>,
    pub rows: Vec<SummaryRow>,
    /// How the numbers were made, for the report (prompt and scoring sources, departures).
    pub notes: Vec<String>,
}

/// Mean of `(score, strict)` pairs; `None` when empty.
pub(crate) fn mean_pair<'a>(
    judged: impl IntoIterator<Item = &'a Judged>,
) -> (usize, Option<f64>, Option<f64>) {
    let (mut n, mut sum, mut strict) = (0usize, 0.0, 0.0);
    for j in judged {
        n += 1;
        sum += j.score;
        strict += if j.strict { j.score } else { 0.0 };
    }
    if n == 0 {
        (0, None, None)
    } else {
        (n, Some(sum / n as f64), Some(strict / n as f64))
    }
}

/// Rows of per-group means, the groups in name order.
pub(crate) fn rows_by(
    table: &str,
    pairs: &[(&BenchItem, &Judged)],
    key: impl Fn(&BenchItem) -> Option<String>,
) -> Vec<SummaryRow> {
    let mut groups: BTreeMap<String, Vec<&Judged>> = BTreeMap::new();
    for (item, judged) in pairs {
        if let Some(k) = key(item) {
            groups.entry(k).or_default().push(judged);
        }
    }
    groups
        .into_iter()
        .map(|(name, js)| {
            let (n, value, strict) = mean_pair(js);
            SummaryRow {
                table: table.into(),
                name,
                n,
                value,
                strict,
            }
        })
        .collect()
}

/// The mean of some rows' values; `None` if any is missing (the paper's formula needs them all).
pub(crate) fn mean_of(values: &[Option<f64>]) -> Option<f64> {
    let all: Option<Vec<f64>> = values.iter().copied().collect();
    all.filter(|v| !v.is_empty())
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
}

/// The row named `name` of `table`.
pub(crate) fn row<'a>(rows: &'a [SummaryRow], table: &str, name: &str) -> Option<&'a SummaryRow> {
    rows.iter().find(|r| r.table == table && r.name == name)
}

/// Where embedded images are written and where relative paths point.
#[derive(Debug, Clone)]
pub struct ReadContext {
    /// Image paths in the release are relative to this folder (default: the data file's folder).
    pub image_root: Option<PathBuf>,
    /// Embedded images are written here, one file per image, once.
    pub image_cache: PathBuf,
    /// VSI-Bench: frames sampled per video.
    pub frames: usize,
}

impl ReadContext {
    pub(crate) fn root_for(&self, data_file: &Path) -> PathBuf {
        super::default_root(data_file, self.image_root.as_deref())
    }

    /// An image cell as a file: embedded bytes are written to the cache as `<stem>.<ext>`, a path is resolved
    /// against the root. `None` when the cell holds neither.
    pub(crate) fn image(
        &self,
        cell: &serde_json::Value,
        root: &Path,
        stem: &str,
    ) -> Result<Option<PathBuf>> {
        if let Some(bytes) = super::rows::image_bytes(cell) {
            let name = super::rows::image_path(cell);
            let path =
                super::qspatial::write_image(&self.image_cache, stem, name.as_deref(), &bytes)?;
            return Ok(Some(path));
        }
        Ok(super::rows::image_path(cell).map(|p| super::resolve(root, &p)))
    }
}

/// A file-name-safe form of an id.
pub(crate) fn file_stem(benchmark: Benchmark, id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}-{safe}", benchmark.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Benchmark::ALL {
            assert_eq!(b.name().parse::<Benchmark>().ok(), Some(b));
            assert_eq!(
                b.title().parse::<Benchmark>().ok(),
                Some(b),
                "{}",
                b.title()
            );
        }
        assert_eq!(
            "CV-Bench".parse::<Benchmark>().ok(),
            Some(Benchmark::CvBench)
        );
        assert_eq!(
            "3DSRBench".parse::<Benchmark>().ok(),
            Some(Benchmark::ThreeDsrBench)
        );
        assert!("mmbench".parse::<Benchmark>().is_err());
    }

    #[test]
    fn mean_of_needs_every_part() {
        assert_eq!(mean_of(&[Some(0.5), Some(1.0)]), Some(0.75));
        assert_eq!(mean_of(&[Some(0.5), None]), None);
        assert_eq!(mean_of(&[]), None);
    }
}
