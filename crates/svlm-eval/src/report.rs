//! The evaluation report: JSON, markdown, predictions JSONL and PNG charts.

use crate::dataset::Skip;
use crate::evaluate::Prediction;
use crate::metrics::{ChoiceMisses, Metrics, Rate};
use crate::steps::ReasoningSteps;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use svlm_answers::ChoiceMiss;
use svlm_report::{BarChart, markdown_table, write_atomic};
use svlm_synth::record::Truth;

/// How many skipped rows and example predictions the report lists.
const LISTED_SKIPS: usize = 20;
const LISTED_EXAMPLES: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub dataset: String,
    pub model: String,
    /// Questions asked.
    pub items: usize,
    /// Rows of the input that were not turned into questions, and the first few of them.
    pub skipped: usize,
    pub skipped_examples: Vec<Skip>,
    /// Items that could not be scored, every one listed: rows that could not be read (malformed, image missing)
    /// and questions the model failed on.
    #[serde(default)]
    pub failed: Vec<Skip>,
    /// Wall time of the run (0 when built from stored predictions).
    #[serde(default)]
    pub seconds: f64,
    pub overall: Metrics,
    /// "qualitative" and "quantitative".
    pub by_family: BTreeMap<String, Metrics>,
    /// Per question type.
    pub by_type: BTreeMap<String, Metrics>,
    /// Reasoned answers step by step (listing, then verdict), over all of them and per question type; types without
    /// reasoned reference answers are left out.
    #[serde(default)]
    pub reasoning: ReasoningSteps,
    #[serde(default)]
    pub reasoning_by_type: BTreeMap<String, ReasoningSteps>,
    /// Not in report.json: written to predictions.jsonl.
    #[serde(skip)]
    pub predictions: Vec<Prediction>,
}

/// Where `EvalReport::write` put its files.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub predictions: PathBuf,
    pub charts: Vec<PathBuf>,
}

impl EvalReport {
    pub fn from_predictions(
        dataset: &str,
        model: &str,
        predictions: Vec<Prediction>,
        skipped: &[Skip],
    ) -> Self {
        let pairs = |filter: &dyn Fn(&Prediction) -> bool| {
            Metrics::from_scores(
                predictions
                    .iter()
                    .filter(|p| filter(p))
                    .map(|p| (&p.truth, &p.score)),
            )
        };
        let overall = pairs(&|_| true);
        let mut by_family = BTreeMap::new();
        let mut by_type = BTreeMap::new();
        for p in &predictions {
            by_family.entry(p.family.clone()).or_insert(());
            by_type.entry(p.kind.clone()).or_insert(());
        }
        let by_family = by_family
            .into_keys()
            .map(|f| (f.clone(), pairs(&|p| p.family == f)))
            .collect();
        let by_type: BTreeMap<String, Metrics> = by_type
            .into_keys()
            .map(|k| (k.clone(), pairs(&|p| p.kind == k)))
            .collect();
        let reasoning = ReasoningSteps::from_predictions(&predictions);
        let reasoning_by_type = by_type
            .keys()
            .map(|k| {
                let steps =
                    ReasoningSteps::from_predictions(predictions.iter().filter(|p| &p.kind == k));
                (k.clone(), steps)
            })
            .filter(|(_, steps)| steps.reasoned > 0)
            .collect();
        EvalReport {
            dataset: dataset.to_string(),
            model: model.to_string(),
            items: predictions.len(),
            skipped: skipped.len(),
            skipped_examples: skipped.iter().take(LISTED_SKIPS).cloned().collect(),
            failed: Vec::new(),
            seconds: 0.0,
            overall,
            by_family,
            by_type,
            reasoning,
            reasoning_by_type,
            predictions,
        }
    }

    /// The report as markdown: headline numbers, per-family and per-type tables, skipped rows, example answers.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("# Evaluation: {} on {}\n\n", self.model, self.dataset);
        md.push_str(&format!(
            "{} questions, {} input rows skipped{}.\n\n",
            self.items,
            self.skipped,
            if self.seconds > 0.0 {
                format!(", {:.1} s", self.seconds)
            } else {
                String::new()
            }
        ));
        md.push_str(
            "\"over all\" counts an unreadable answer (invalid format) as wrong; \"over valid\" leaves it out. \
             Binary = yes/no predicates and \"which\" choices; lengths are scored by the midpoint of a range; \
             accuracy uses each type's own rule (length within [0.5x, 2x], clock within +-1 hour, angle within \
             +-10 degrees).\n\n## Overall\n\n",
        );
        let m = &self.overall;
        let rows = vec![
            vec![
                "valid format".into(),
                pct(m.valid_format_rate),
                "".into(),
                m.count.to_string(),
            ],
            rate_row("accuracy", &m.accuracy),
            rate_row("binary (yes/no and which)", &m.binary),
            rate_row("yes/no predicates", &m.yes_no),
            rate_row("which choices", &m.which),
            misses_row(&m.which_misses, &m.which),
            rate_row("lengths within [0.5x, 2x]", &m.within_2x),
            rate_row("lengths within +-25%", &m.within_25_percent),
            vec![
                "mean relative accuracy (0.50..0.95)".into(),
                pct(m.mra_over_all),
                pct(m.mra_over_valid),
                m.within_2x.total.to_string(),
            ],
            vec![
                "abs. relative error (mean / median)".into(),
                "".into(),
                format!(
                    "{} / {}",
                    num(m.abs_rel_error_mean),
                    num(m.abs_rel_error_median)
                ),
                m.within_2x.valid.to_string(),
            ],
            rate_row("clock direction within +-1 h", &m.clock),
            rate_row("angle within +-10 deg", &m.angle),
        ];
        let rows: Vec<Vec<String>> = rows.into_iter().filter(|r| r[3] != "0").collect();
        md.push_str(&markdown_table(
            &["metric", "over all", "over valid", "n"],
            &rows,
        ));

        md.push_str("\n## By family\n\n");
        md.push_str(&group_table("family", &self.by_family));
        md.push_str("\n## By question type\n\n");
        md.push_str(&group_table("type", &self.by_type));
        if self.reasoning.reasoned > 0 {
            md.push_str(&reasoning_table(&self.reasoning, &self.reasoning_by_type));
        }

        if self.skipped > 0 {
            md.push_str(&format!(
                "\n## Skipped input rows ({}, first {} listed)\n\n",
                self.skipped,
                self.skipped_examples.len()
            ));
            md.push_str(&skips_table(&self.skipped_examples));
        }

        if !self.failed.is_empty() {
            md.push_str(&format!(
                "\n## Failed items ({}, not scored)\n\n",
                self.failed.len()
            ));
            md.push_str(&skips_table(&self.failed));
        }

        if !self.predictions.is_empty() {
            md.push_str(&format!(
                "\n## Example answers (up to {LISTED_EXAMPLES} per type)\n\n"
            ));
            let mut rows = Vec::new();
            for kind in self.by_type.keys() {
                for p in self
                    .predictions
                    .iter()
                    .filter(|p| &p.kind == kind)
                    .take(LISTED_EXAMPLES)
                {
                    rows.push(vec![
                        p.kind.clone(),
                        p.question.clone(),
                        p.answer_text.clone(),
                        truth_text(&p.truth),
                        if !p.score.is_valid() {
                            "invalid".into()
                        } else if p.score.correct {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                    ]);
                }
            }
            md.push_str(&markdown_table(
                &["type", "question", "answer", "truth", "correct"],
                &rows,
            ));
        }
        md
    }

    /// Writes `report.json`, `report.md`, `predictions.jsonl` and the charts (`accuracy_by_type.png`, and
    /// `lengths_by_type.png` when there are length questions) into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> Result<ReportFiles> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).context("serializing the report")?;
        write_atomic(&json, text.as_bytes())?;
        let markdown = dir.join("report.md");
        write_atomic(&markdown, self.to_markdown().as_bytes())?;
        let predictions = dir.join("predictions.jsonl");
        let mut lines = String::new();
        for p in &self.predictions {
            lines.push_str(&serde_json::to_string(p).context("serializing a prediction")?);
            lines.push('\n');
        }
        write_atomic(&predictions, lines.as_bytes())?;
        let charts = self.write_charts(dir)?;
        Ok(ReportFiles {
            json,
            markdown,
            predictions,
            charts,
        })
    }

    fn write_charts(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        if self.by_type.is_empty() {
            return Ok(written);
        }
        let kinds: Vec<String> = self.by_type.keys().cloned().collect();
        let value = |f: &dyn Fn(&Metrics) -> Option<f64>| -> Vec<f64> {
            self.by_type.values().map(|m| f(m).unwrap_or(0.0)).collect()
        };
        let mut accuracy = BarChart::new(
            format!(
                "{} on {}: accuracy by question type",
                self.model, self.dataset
            ),
            "share",
            kinds.clone(),
        )
        .with_group("accuracy (over all)", value(&|m| m.accuracy.over_all))
        .with_group("valid format", value(&|m| m.valid_format_rate));
        accuracy.y_max = Some(1.0);
        let path = dir.join("accuracy_by_type.png");
        accuracy.save_png(&path)?;
        written.push(path);

        let length_kinds: Vec<(&String, &Metrics)> = self
            .by_type
            .iter()
            .filter(|(_, m)| m.within_2x.total > 0)
            .collect();
        if !length_kinds.is_empty() {
            let names = length_kinds.iter().map(|(k, _)| (*k).clone()).collect();
            let col = |f: &dyn Fn(&Metrics) -> Option<f64>| {
                length_kinds
                    .iter()
                    .map(|(_, m)| f(m).unwrap_or(0.0))
                    .collect()
            };
            let mut lengths = BarChart::new(
                format!(
                    "{} on {}: lengths by question type",
                    self.model, self.dataset
                ),
                "share",
                names,
            )
            .with_group("within [0.5x, 2x]", col(&|m| m.within_2x.over_all))
            .with_group("within +-25%", col(&|m| m.within_25_percent.over_all))
            .with_group("mean relative accuracy", col(&|m| m.mra_over_all));
            lengths.y_max = Some(1.0);
            let path = dir.join("lengths_by_type.png");
            lengths.save_png(&path)?;
            written.push(path);
        }
        Ok(written)
    }

    /// Reads a `report.json` (predictions are not in it; see [`read_predictions`]).
    pub fn read_json(path: &Path) -> Result<EvalReport> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not an evaluation report", path.display()))
    }
}

/// Reads a `predictions.jsonl` written by [`EvalReport::write`].
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a prediction", path.display(), n + 1))
        })
        .collect()
}

/// The step-by-step table of reasoned answers (`steps.rs`).
fn reasoning_table(overall: &ReasoningSteps, by_type: &BTreeMap<String, ReasoningSteps>) -> String {
    let mut md = String::from(
        "\n## Reasoned answers, step by step\n\nA reasoned answer lists the objects along the relation's axis, then \
         decides. Listing right: the reference's objects in its order. Order right: of the answers that listed the \
         right objects, those in the right order (reading the scene). Then the share of correct final answers after \
         a right listing (deciding from it) and after a wrong one.\n\n",
    );
    let row = |name: &str, s: &ReasoningSteps| {
        let mut cells = vec![name.to_string(), s.reasoned.to_string()];
        cells.extend(s.rates().map(pct));
        cells
    };
    let mut rows: Vec<Vec<String>> = by_type.iter().map(|(k, s)| row(k, s)).collect();
    rows.push(row("all", overall));
    let mut headers = vec!["type", "n"];
    headers.extend(ReasoningSteps::RATE_COLUMNS);
    md.push_str(&markdown_table(&headers, &rows));
    md
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", 100.0 * x))
        .unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into())
}

fn rate_row(name: &str, r: &Rate) -> Vec<String> {
    vec![
        name.into(),
        pct(r.over_all),
        pct(r.over_valid),
        r.total.to_string(),
    ]
}

/// "Which" answers that chose no option, by why, as counts and as a share of the "which" questions.
fn misses_row(misses: &ChoiceMisses, which: &Rate) -> Vec<String> {
    let counts: Vec<String> = ChoiceMiss::ALL
        .iter()
        .map(|&miss| format!("{} {}", misses.get(miss), miss.describe()))
        .collect();
    vec![
        format!("which answers choosing no option: {}", counts.join(", ")),
        pct((which.total > 0).then(|| misses.total() as f64 / which.total as f64)),
        "".into(),
        misses.total().to_string(),
    ]
}

fn rate_cell(r: &Rate) -> String {
    if r.total == 0 {
        "–".into()
    } else {
        pct(r.over_all)
    }
}

fn group_table(label: &str, groups: &BTreeMap<String, Metrics>) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(name, m)| {
            vec![
                name.clone(),
                m.count.to_string(),
                pct(m.valid_format_rate),
                rate_cell(&m.accuracy),
                pct(m.accuracy.over_valid),
                rate_cell(&m.binary),
                rate_cell(&m.within_2x),
                rate_cell(&m.within_25_percent),
                pct(m.mra_over_all),
                num(m.abs_rel_error_median),
                rate_cell(&m.clock),
            ]
        })
        .collect();
    markdown_table(
        &[
            label,
            "n",
            "valid",
            "accuracy",
            "accuracy (valid)",
            "binary",
            "within 2x",
            "within 25%",
            "MRA",
            "median abs rel err",
            "clock +-1h",
        ],
        &rows,
    )
}

/// The truth as a short text for tables.
pub fn truth_text(truth: &Truth) -> String {
    match truth {
        Truth::Bool { value } => if *value { "yes" } else { "no" }.into(),
        Truth::Choice { value, .. } => value.clone(),
        Truth::Length { meters } => format!("{meters:.3} m"),
        Truth::Clock { hour } => format!("{hour} o'clock"),
        Truth::Angle { degrees } => format!("{degrees:.1} deg"),
    }
}

/// One published benchmark run: the benchmark's own summary, and what went into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub benchmark: crate::benchmarks::Benchmark,
    pub model: String,
    /// Questions answered (all of the set's).
    pub items: usize,
    /// Answers found in the kept predictions instead of asked again.
    #[serde(default)]
    pub resumed: usize,
    /// Release rows that were not turned into questions, and the first few of them.
    pub skipped: usize,
    pub skipped_examples: Vec<Skip>,
    #[serde(default)]
    pub seconds: f64,
    pub summary: crate::benchmarks::BenchSummary,
    /// Answers that nothing could be read from by the benchmark's rule (share of all).
    pub unreadable_rate: Option<f64>,
}

impl BenchReport {
    pub fn new(
        set: &crate::benchmarks::BenchSet,
        model: &str,
        summary: crate::benchmarks::BenchSummary,
        predictions: &[crate::benchmarks::BenchPrediction],
    ) -> Self {
        let unreadable = predictions
            .iter()
            .filter(|p| p.judged.extracted.as_deref().is_none_or(str::is_empty))
            .count();
        BenchReport {
            benchmark: set.benchmark,
            model: model.to_string(),
            items: predictions.len(),
            resumed: 0,
            skipped: set.skipped.len(),
            skipped_examples: set.skipped.iter().take(LISTED_SKIPS).cloned().collect(),
            seconds: 0.0,
            summary,
            unreadable_rate: (!predictions.is_empty())
                .then(|| unreadable as f64 / predictions.len() as f64),
        }
    }

    /// The report as markdown: the headline, the benchmark's tables (official and strict columns), notes, skips.
    pub fn to_markdown(&self) -> String {
        let s = &self.summary;
        let mut md = format!(
            "# {} on {}\n\n{} questions ({} answers kept from an earlier run), {} release rows skipped.\n\n",
            self.model,
            self.benchmark.title(),
            self.items,
            self.resumed,
            self.skipped
        );
        md.push_str(&format!(
            "**{}: {}** (strict: {})\n\n",
            s.metric,
            pct(s.overall),
            pct(s.strict_overall)
        ));
        md.push_str(
            "\"official\" is the benchmark's own matching rule; \"strict\" counts an answer only when it names \
             exactly the right option (VLMEvalKit's `can_infer`), so an answer naming several options or none \
             is wrong there even where the official rule reads a letter out of it.\n\n",
        );
        let rows: Vec<Vec<String>> = s
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.table.clone(),
                    r.name.clone(),
                    r.n.to_string(),
                    pct(r.value),
                    pct(r.strict),
                ]
            })
            .collect();
        md.push_str(&markdown_table(
            &["table", "name", "n", "official", "strict"],
            &rows,
        ));
        for note in &s.notes {
            md.push_str(&format!("\n{note}\n"));
        }
        if self.skipped > 0 {
            md.push_str(&format!(
                "\n## Skipped release rows ({}, first {} listed)\n\n",
                self.skipped,
                self.skipped_examples.len()
            ));
            md.push_str(&skips_table(&self.skipped_examples));
        }
        md
    }

    /// Writes `report.json` and `report.md` into `dir` (predictions are kept by the runner).
    pub fn write(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).context("serializing the report")?;
        write_atomic(&dir.join("report.json"), json.as_bytes())?;
        write_atomic(&dir.join("report.md"), self.to_markdown().as_bytes())?;
        Ok(())
    }
}

/// A number a paper printed for a benchmark, from `crates/svlm-eval/data/published.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedResult {
    /// `Benchmark::name` ("cvbench", "vsibench"...).
    pub benchmark: String,
    pub model: String,
    /// Percent, as printed.
    pub value: f64,
    /// The paper and table (or page) it is printed in.
    pub source: String,
}

/// The published reference numbers shipped with svlm.
pub fn published_results() -> Result<Vec<PublishedResult>> {
    parse_published(include_str!("../data/published.csv"))
}

/// Parses the published-results CSV (`benchmark,model,value,source`, a header row, `#` comment lines).
pub fn parse_published(text: &str) -> Result<Vec<PublishedResult>> {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let mut rows = Vec::new();
    for (n, row) in reader.deserialize().enumerate() {
        let row: PublishedResult =
            row.with_context(|| format!("published.csv: data row {}", n + 1))?;
        row.benchmark
            .parse::<crate::benchmarks::Benchmark>()
            .with_context(|| format!("published.csv: data row {}", n + 1))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Writes `leaderboard.md`, `leaderboard.json` and `leaderboard.png` into `dir`: each benchmark's headline number
/// for `reports`' model beside the published numbers for the same benchmark.
pub fn write_leaderboard(
    dir: &Path,
    reports: &[BenchReport],
    published: &[PublishedResult],
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut md = String::from(
        "# Spatial benchmarks\n\nOur numbers by each benchmark's own scoring (strict in brackets), beside numbers \
         published for reference models (percent; source in the last column). The chart leaves out the bar of a \
         benchmark with no published number.\n\n",
    );
    let mut rows = Vec::new();
    for r in reports {
        rows.push(vec![
            r.benchmark.title().to_string(),
            format!("**{}** (this run)", r.model),
            format!(
                "{} ({})",
                pct(r.summary.overall),
                pct(r.summary.strict_overall)
            ),
            r.summary.metric.clone(),
            format!("{} questions", r.items),
        ]);
        for p in published.iter().filter(|p| {
            p.benchmark.parse::<crate::benchmarks::Benchmark>().ok() == Some(r.benchmark)
        }) {
            rows.push(vec![
                String::new(),
                p.model.clone(),
                format!("{:.1}%", p.value),
                String::new(),
                p.source.clone(),
            ]);
        }
    }
    md.push_str(&markdown_table(
        &["benchmark", "model", "score", "metric", "n / source"],
        &rows,
    ));
    let md_path = dir.join("leaderboard.md");
    write_atomic(&md_path, md.as_bytes())?;
    let json_path = dir.join("leaderboard.json");
    let json = serde_json::to_string_pretty(reports).context("serializing the leaderboard")?;
    write_atomic(&json_path, json.as_bytes())?;
    let mut written = vec![md_path, json_path];
    if !reports.is_empty() {
        let names: Vec<String> = reports
            .iter()
            .map(|r| r.benchmark.title().to_string())
            .collect();
        let mut chart = BarChart::new(
            format!("{} on spatial benchmarks", reports[0].model),
            "score",
            names,
        )
        .with_group(
            "official scoring",
            reports
                .iter()
                .map(|r| r.summary.overall.unwrap_or(0.0))
                .collect(),
        )
        .with_group(
            "strict",
            reports
                .iter()
                .map(|r| r.summary.strict_overall.unwrap_or(0.0))
                .collect(),
        )
        .with_group(
            "best published reference model",
            reports
                .iter()
                .map(|r| best_published(published, r.benchmark).unwrap_or(f64::NAN))
                .collect(),
        );
        chart.y_max = Some(1.0);
        let png = dir.join("leaderboard.png");
        chart.save_png(&png)?;
        written.push(png);
    }
    Ok(written)
}

/// The highest published number for `benchmark`, as a 0..1 rate (`None` when the table has none).
fn best_published(
    published: &[PublishedResult],
    benchmark: crate::benchmarks::Benchmark,
) -> Option<f64> {
    published
        .iter()
        .filter(|p| p.benchmark.parse::<crate::benchmarks::Benchmark>().ok() == Some(benchmark))
        .map(|p| p.value / 100.0)
        .fold(None, |best, v| Some(best.map_or(v, |b: f64| b.max(v))))
}

/// Rows that were skipped or failed, as a "where | why" table.
fn skips_table(skips: &[Skip]) -> String {
    let rows: Vec<Vec<String>> = skips
        .iter()
        .map(|s| vec![s.location.clone(), s.reason.clone()])
        .collect();
    markdown_table(&["where", "why"], &rows)
}
