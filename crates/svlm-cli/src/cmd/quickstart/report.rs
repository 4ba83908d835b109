//! The quickstart report: `report.md` (tables, targets, examples), `report.json` (everything, machine-readable),
//! `metrics_vs_ratio.png` and `loss_curves.png`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use svlm_eval::truth_text;
use svlm_reason::reward::RewardReport;
use svlm_report::{LinePlot, ScatterPlot, Series, markdown_table, write_atomic};
use svlm_train::trainer::StepMetrics;

use super::data::DataSummary;
use super::{Plan, RatioResult, ratio_label};

/// Everything the report is made from (written as report.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub plan: Plan,
    pub data: DataSummary,
    pub model_seconds: f64,
    pub results: Vec<RatioResult>,
    /// The answer-prior baseline (majority / median answer per question type of the training set, no image).
    pub prior: Prior,
    /// The constant length the prior answers per quantitative type, metres.
    #[serde(default)]
    pub prior_constants: BTreeMap<String, f64>,
    /// The reward demo on held-out approach sequences (absent when the plan has none).
    #[serde(default)]
    pub reward: Option<RewardDemo>,
    /// Multi-step answers about held-out scenes.
    #[serde(default)]
    pub reasoning: Vec<ReasonExample>,
    pub total_seconds: f64,
}

/// One held-out approach sequence annotated from exact depth and by each trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewardSequence {
    pub seed: u64,
    pub task: String,
    pub target: String,
    /// The exact closest-surface gap per frame (what the models were trained to answer).
    pub true_gap_m: Vec<f64>,
    pub geometry: RewardReport,
    pub models: Vec<(f64, RewardReport)>,
}

/// The reward demo: held-out approach sequences, each annotated by every source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewardDemo {
    pub sequences: Vec<RewardSequence>,
}

/// Spearman rho of one source over the sequences: mean and worst (highest) over the sequences where it is
/// defined, and how many those are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RhoSummary {
    pub source: String,
    pub mean: Option<f64>,
    pub worst: Option<f64>,
    pub defined: usize,
    pub sequences: usize,
}

impl RhoSummary {
    fn of(source: String, rhos: &[Option<f64>]) -> RhoSummary {
        let defined: Vec<f64> = rhos.iter().flatten().copied().collect();
        RhoSummary {
            source,
            mean: (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64),
            worst: defined.iter().copied().reduce(f64::max),
            defined: defined.len(),
            sequences: rhos.len(),
        }
    }
}

impl RewardDemo {
    /// Ratios of the models, in the order they were annotated.
    fn ratios(&self) -> Vec<f64> {
        self.sequences
            .first()
            .map(|s| s.models.iter().map(|(r, _)| *r).collect())
            .unwrap_or_default()
    }

    /// Exact depth first, then one summary per model.
    pub fn summaries(&self) -> Vec<RhoSummary> {
        let mut out = vec![RhoSummary::of(
            "exact depth".into(),
            &self
                .sequences
                .iter()
                .map(|s| s.geometry.spearman_rho)
                .collect::<Vec<_>>(),
        )];
        for (k, ratio) in self.ratios().into_iter().enumerate() {
            out.push(RhoSummary::of(
                format!("ratio {ratio} model"),
                &self
                    .sequences
                    .iter()
                    .map(|s| s.models.get(k).and_then(|(_, r)| r.spearman_rho))
                    .collect::<Vec<_>>(),
            ));
        }
        out
    }
}

/// `geometry.png` and `ratio_<r>.png` under `dir`: per source, the distance it gives per frame of every sequence,
/// beside the exact gap (log scale: gaps fall from tens of centimetres to a few millimetres).
pub fn reward_plots(demo: &RewardDemo, dir: &Path) -> anyhow::Result<()> {
    let exact = |plot: LinePlot| {
        demo.sequences
            .iter()
            .enumerate()
            .fold(plot, |plot, (i, s)| {
                plot.with_series(
                    Series::new(
                        format!("seq {i} exact gap"),
                        s.true_gap_m
                            .iter()
                            .enumerate()
                            .map(|(f, d)| (f as f64, *d))
                            .collect(),
                    )
                    .colored(i)
                    .thin(),
                )
            })
    };
    let measured = |r: &RewardReport| -> Vec<(f64, f64)> {
        r.frames
            .iter()
            .map(|f| (f.index as f64, f.distance_m))
            .collect()
    };
    let mut sources: Vec<(String, String, Vec<&RewardReport>)> = vec![(
        "geometry".into(),
        "exact depth".into(),
        demo.sequences.iter().map(|s| &s.geometry).collect(),
    )];
    for (k, ratio) in demo.ratios().into_iter().enumerate() {
        sources.push((
            ratio_label(ratio),
            format!("the spatial ratio {ratio} model"),
            demo.sequences
                .iter()
                .filter_map(|s| s.models.get(k).map(|(_, r)| r))
                .collect(),
        ));
    }
    for (file, name, reports) in sources {
        let mut plot = exact(LinePlot::new(
            format!("Gripper-target gap per frame, from {name}"),
            "frame",
            "gap (m), log scale",
        ));
        plot.log_y = true;
        plot.markers = true;
        for (i, r) in reports.iter().enumerate() {
            plot =
                plot.with_series(Series::new(format!("seq {i}: {name}"), measured(r)).colored(i));
        }
        plot.save_png(&dir.join(format!("{file}.png")))?;
    }
    Ok(())
}

fn rho_cell(rho: Option<f64>) -> String {
    rho.map_or_else(|| "undefined".to_string(), |v| format!("{v:+.3}"))
}

/// The reward section of report.md: Spearman rho per sequence and source, mean and worst, the plots, and the
/// per-frame answers of the first sequence.
fn reward_section(demo: &RewardDemo) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(
        md,
        "\n## Reward annotation on held-out approach sequences\n"
    )?;
    writeln!(
        md,
        "A gripper approaches an object in {} sequences never trained on (different targets and start gaps). Each \
         source gives the gripper-target gap per frame: exact depth through the synthesis pipeline's geometry, the \
         models by answering \"What is the gap between the gripper and the X?\" (the training wording) for every \
         frame, as `svlm reward --source vlm` does. Spearman rho between frame index and gap is -1 for a gap that \
         falls at every frame; undefined when fewer than two frames have a length or all lengths are equal.\n",
        demo.sequences.len()
    )?;
    let ratios = demo.ratios();
    let mut headers = vec![
        "sequence".to_string(),
        "target".into(),
        "exact gap, first -> last frame".into(),
        "exact depth rho".into(),
    ];
    headers.extend(ratios.iter().map(|r| format!("ratio {r} model rho")));
    let mut rows: Vec<Vec<String>> = demo
        .sequences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = vec![
                i.to_string(),
                s.target.clone(),
                format!(
                    "{:.3} m -> {:.3} m ({} frames)",
                    s.true_gap_m.first().copied().unwrap_or(f64::NAN),
                    s.true_gap_m.last().copied().unwrap_or(f64::NAN),
                    s.true_gap_m.len()
                ),
                rho_cell(s.geometry.spearman_rho),
            ];
            for (_, r) in &s.models {
                row.push(format!(
                    "{} ({}/{} read)",
                    rho_cell(r.spearman_rho),
                    r.n_valid,
                    r.n_frames
                ));
            }
            row
        })
        .collect();
    for (label, pick) in [
        (
            "mean",
            (|s: &RhoSummary| s.mean) as fn(&RhoSummary) -> Option<f64>,
        ),
        ("worst", |s: &RhoSummary| s.worst),
    ] {
        let summaries = demo.summaries();
        let mut row = vec![format!("**{label}**"), String::new(), String::new()];
        for s in &summaries {
            row.push(format!(
                "{} (defined in {}/{})",
                rho_cell(pick(s)),
                s.defined,
                s.sequences
            ));
        }
        rows.push(row);
    }
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    md.push_str(&markdown_table(&refs, &rows));
    writeln!(md)?;
    writeln!(md, "![reward from exact depth](reward/geometry.png)\n")?;
    for r in &ratios {
        writeln!(
            md,
            "![reward from the ratio {r} model](reward/{}.png)\n",
            ratio_label(*r)
        )?;
    }
    if let Some(first) = demo.sequences.first() {
        writeln!(md, "Sequence 0 frame by frame (\"{}\"):\n", first.task)?;
        let mut headers = vec![
            "frame".to_string(),
            "exact gap".into(),
            "exact-depth gap".into(),
        ];
        headers.extend(ratios.iter().map(|r| format!("ratio {r} answer")));
        let rows: Vec<Vec<String>> = first
            .true_gap_m
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut row = vec![i.to_string(), format!("{d:.3} m")];
                row.push(
                    first
                        .geometry
                        .frames
                        .iter()
                        .find(|f| f.index == i)
                        .map_or("-".into(), |f| format!("{:.3} m", f.distance_m)),
                );
                for (_, r) in &first.models {
                    let answer = r
                        .frames
                        .iter()
                        .find(|f| f.index == i)
                        .and_then(|f| f.answer.clone())
                        .or_else(|| {
                            r.failed
                                .iter()
                                .find(|f| f.index == i)
                                .map(|f| format!("({})", f.reason))
                        })
                        .unwrap_or_else(|| "-".into());
                    row.push(answer.replace('|', "/"));
                }
                row
            })
            .collect();
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        md.push_str(&markdown_table(&refs, &rows));
    }
    writeln!(
        md,
        "\nFiles: `reward/seq_<i>/frames/` (the RGB-D sequence with sequence.json), `reward/seq_<i>/geometry/` and \
         `reward/seq_<i>/ratio_*/` (reward.json, reward.png)."
    )?;
    Ok(md)
}

/// One sub-question of a multi-step answer: the model's answer beside the exact one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubAnswer {
    pub question: String,
    pub answer: String,
    pub truth: String,
}

/// A composite question about a held-out scene, answered through the rule-based planner by a trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReasonExample {
    pub image: String,
    pub question: String,
    pub ratio: f64,
    pub sub_answers: Vec<SubAnswer>,
    pub answer: String,
    pub exact_answer: String,
}

fn reason_section(examples: &[ReasonExample]) -> String {
    let Some(first) = examples.first() else {
        return String::new();
    };
    let mut md = format!(
        "\n## Multi-step reasoning on held-out scenes\n\n`svlm reason --vlm` with the spatial ratio {} model: the \
         rule-based planner breaks each question into sub-questions in the training wordings, the model answers \
         each, and the final answer is composed from its lengths. Beside each sub-answer, the exact truth; the last \
         column is the answer composed from the exact lengths. Transcripts: `reason/`.\n\n",
        first.ratio
    );
    let rows: Vec<Vec<String>> = examples
        .iter()
        .map(|e| {
            let image = Path::new(&e.image)
                .file_name()
                .map_or(e.image.clone(), |f| f.to_string_lossy().into_owned());
            let subs = e
                .sub_answers
                .iter()
                .map(|s| format!("{} **{}** (exact: {})", s.question, s.answer, s.truth))
                .collect::<Vec<_>>()
                .join("<br>");
            vec![
                format!("[{image}]({})", e.image),
                e.question.clone(),
                subs,
                e.answer.clone(),
                e.exact_answer.clone(),
            ]
            .into_iter()
            .map(|c| c.replace('|', "/"))
            .collect()
        })
        .collect();
    md.push_str(&markdown_table(
        &[
            "image",
            "question",
            "sub-questions: model answer (exact)",
            "model's final answer",
            "from exact lengths",
        ],
        &rows,
    ));
    md
}

/// One quantitative question type's numbers for one source.
struct QuantRow {
    within_2x: Option<f64>,
    within_25: Option<f64>,
    median_rel_error: Option<f64>,
}

impl QuantRow {
    fn of(m: &svlm_eval::Metrics) -> QuantRow {
        QuantRow {
            within_2x: m.within_2x.over_all,
            within_25: m.within_25_percent.over_all,
            median_rel_error: m.abs_rel_error_median,
        }
    }
}

/// Question types with length answers among the held-out questions, with their true values.
fn quantitative_truths(summary: &Summary) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in &summary.prior.spatial.predictions {
        if let svlm_synth::Truth::Length { meters } = p.truth
            && meters > 0.0
        {
            out.entry(p.kind.clone()).or_default().push(meters);
        }
    }
    out
}

/// The model within 2x of a spatially trained run against the prior, overall and per quantitative type: the
/// issue's target is +30 points overall and for at least three types on their own.
fn quantitative_gains(summary: &Summary, r: &RatioResult) -> (Option<f64>, Vec<(String, f64)>) {
    let gain = |m: Option<&svlm_eval::Metrics>, p: Option<&svlm_eval::Metrics>| {
        Some(m?.within_2x.over_all? - p?.within_2x.over_all?)
    };
    let overall = gain(
        Some(&r.spatial.overall),
        Some(&summary.prior.spatial.overall),
    );
    let per_type = quantitative_truths(summary)
        .keys()
        .filter_map(|k| {
            gain(
                r.spatial.by_type.get(k),
                summary.prior.spatial.by_type.get(k),
            )
            .map(|g| (k.clone(), g))
        })
        .collect();
    (overall, per_type)
}

/// The per-type quantitative section with one scatter plot per type (`scatter_<type>.png` in `out`).
fn quantitative_section(summary: &Summary, out: &Path) -> anyhow::Result<String> {
    let truths = quantitative_truths(summary);
    if truths.is_empty() {
        return Ok(String::new());
    }
    let mut md = String::from(
        "\n## Quantitative answers per type\n\nHeld-out length questions per type: the spread of the true values, \
         then per source the share within [0.5x, 2x] of the truth, within +-25%, and the median relative error \
         |pred - true| / true (over readable answers; unreadable ones count as misses in the shares). The answer \
         prior answers one constant per type, the length within [0.5x, 2x] of the most training answers: a model \
         that does not beat it has not read the length from the image.\n\n",
    );
    let mut rows = Vec::new();
    let fmt_m = |m: f64| {
        if m < 1.0 {
            format!("{:.0} cm", 100.0 * m)
        } else {
            format!("{m:.2} m")
        }
    };
    let err = |v: Option<f64>| v.map_or("-".to_string(), |e| format!("{:.0}%", 100.0 * e));
    for (kind, values) in &truths {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
        let spread = format!("{} - {} ({:.0}x)", fmt_m(lo), fmt_m(hi), hi / lo);
        let mut push = |source: String, q: QuantRow| {
            rows.push(vec![
                kind.clone(),
                values.len().to_string(),
                spread.clone(),
                source,
                pct(q.within_2x),
                pct(q.within_25),
                err(q.median_rel_error),
            ]);
        };
        if let Some(m) = summary.prior.spatial.by_type.get(kind) {
            let constant = summary
                .prior_constants
                .get(kind)
                .map_or(String::new(), |c| format!(" ({})", fmt_m(*c)));
            push(format!("answer prior{constant}"), QuantRow::of(m));
        }
        for r in &summary.results {
            if let Some(m) = r.spatial.by_type.get(kind) {
                push(format!("ratio {} model", r.ratio), QuantRow::of(m));
            }
        }
    }
    let all = |m: &svlm_eval::Metrics| QuantRow::of(m);
    let n: usize = truths.values().map(Vec::len).sum();
    let mut push_all = |source: String, q: QuantRow| {
        rows.push(vec![
            "**all lengths**".into(),
            n.to_string(),
            String::new(),
            source,
            pct(q.within_2x),
            pct(q.within_25),
            err(q.median_rel_error),
        ]);
    };
    push_all("answer prior".into(), all(&summary.prior.spatial.overall));
    for r in &summary.results {
        push_all(format!("ratio {} model", r.ratio), all(&r.spatial.overall));
    }
    md.push_str(&markdown_table(
        &[
            "question type",
            "held-out n",
            "true values (max/min)",
            "source",
            "within [0.5x, 2x]",
            "within +-25%",
            "median relative error",
        ],
        &rows,
    ));
    writeln!(md)?;
    for kind in truths.keys() {
        let mut plot = ScatterPlot::new(
            format!("{kind}: answered against true length"),
            "true length (m)",
            "answered length (m)",
        );
        if let Some(c) = summary.prior_constants.get(kind) {
            plot = plot.with_series(Series::new(
                "answer prior",
                truths[kind].iter().map(|t| (*t, *c)).collect(),
            ));
        }
        for r in &summary.results {
            let points: Vec<(f64, f64)> = r
                .spatial
                .predictions
                .iter()
                .filter(|p| &p.kind == kind)
                .filter_map(|p| match (p.truth.clone(), p.score.ratio) {
                    (svlm_synth::Truth::Length { meters }, Some(ratio)) if p.score.is_valid() => {
                        Some((meters, ratio * meters))
                    }
                    _ => None,
                })
                .collect();
            plot = plot.with_series(Series::new(
                format!("ratio {} model ({} readable)", r.ratio, points.len()),
                points,
            ));
        }
        let file = format!("scatter_{kind}.png");
        plot.save_png(&out.join(&file))?;
        writeln!(md, "![{kind}: answered against true]({file})")?;
    }
    Ok(md)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prior {
    pub spatial: svlm_eval::EvalReport,
    pub general: svlm_eval::EvalReport,
}

/// The `metrics.jsonl` of a run, one entry per logged step (malformed lines are an error naming the line).
pub fn read_run_metrics(run_dir: &Path) -> anyhow::Result<Vec<StepMetrics>> {
    Ok(svlm_train::trainer::read_metrics(run_dir)?)
}

pub fn mean_samples_per_s(metrics: &[StepMetrics]) -> f64 {
    let samples: usize = metrics.iter().map(|m| m.samples).sum();
    let seconds: f64 = metrics.iter().map(|m| m.step_time_s).sum();
    if seconds > 0.0 {
        samples as f64 / seconds
    } else {
        0.0
    }
}

fn pct(r: Option<f64>) -> String {
    r.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v))
}

fn metrics_plot(summary: &Summary, path: &Path) -> anyhow::Result<()> {
    let series = |name: &str, f: &dyn Fn(&RatioResult) -> Option<f64>| {
        Series::new(
            name,
            summary
                .results
                .iter()
                .filter_map(|r| f(r).map(|v| (r.ratio, 100.0 * v)))
                .collect(),
        )
    };
    let mut plot = LinePlot::new(
        "Held-out accuracy against the spatial share of training",
        "spatial ratio (share of training samples)",
        "% of held-out questions",
    )
    .with_series(series("spatial yes/no and which", &|r| {
        r.spatial.overall.binary.over_all
    }))
    .with_series(series("spatial yes/no", &|r| {
        r.spatial.overall.yes_no.over_all
    }))
    .with_series(series("spatial which", &|r| {
        r.spatial.overall.which.over_all
    }))
    .with_series(series("spatial within [0.5x, 2x]", &|r| {
        r.spatial.overall.within_2x.over_all
    }))
    .with_series(series("general VQA", &|r| {
        r.general.overall.accuracy.over_all
    }))
    .with_series(series("spatial valid format", &|r| {
        r.spatial.overall.valid_format_rate
    }));
    plot.markers = true;
    plot.save_png(path)
}

fn loss_plot(summary: &Summary, path: &Path) -> anyhow::Result<()> {
    let mut plot = LinePlot::new("Training loss", "step", "loss (assistant tokens)");
    plot.log_y = true;
    for r in &summary.results {
        let metrics = read_run_metrics(&r.run_dir)?;
        plot = plot.with_series(Series::new(
            format!("spatial ratio {}", r.ratio),
            metrics.iter().map(|m| (m.step as f64, m.loss)).collect(),
        ));
    }
    plot.save_png(path)
}

/// One line per target of the issue, with the measured values (never asserted: reported).
fn targets(summary: &Summary) -> Vec<String> {
    let mut lines = Vec::new();
    let without = summary.results.iter().find(|r| r.ratio == 0.0);
    let with = summary
        .results
        .iter()
        .filter(|r| r.ratio > 0.0)
        .max_by(|a, b| {
            a.spatial
                .overall
                .yes_no
                .over_all
                .unwrap_or(0.0)
                .total_cmp(&b.spatial.overall.yes_no.over_all.unwrap_or(0.0))
        });
    let mark = |ok: bool| if ok { "met" } else { "missed" };
    if let Some(w) = with {
        let yes_no = w.spatial.overall.yes_no.over_all.unwrap_or(0.0);
        let within = w.spatial.overall.within_2x.over_all;
        lines.push(format!(
            "- binary predicate (yes/no) accuracy >= 85% with spatial data (ratio {}): {} — {} (\"which\" \
             choices alone: {}; yes/no and \"which\" together: {})",
            w.ratio,
            pct(Some(yes_no)),
            mark(yes_no >= 0.85),
            pct(w.spatial.overall.which.over_all),
            pct(w.spatial.overall.binary.over_all)
        ));
        let (overall, per_type) = quantitative_gains(summary, w);
        let above = per_type.iter().filter(|(_, g)| *g >= 0.30).count();
        lines.push(format!(
            "- lengths within [0.5x, 2x] at least 30 points above the answer prior, overall and for at least three \
             types (ratio {}): {} against the prior's {} ({}); types 30 points above: {}/{} ({}) — {}",
            w.ratio,
            pct(within),
            pct(summary.prior.spatial.overall.within_2x.over_all),
            overall.map_or("-".into(), |g| format!("{:+.1} points", 100.0 * g)),
            above,
            per_type.len(),
            per_type
                .iter()
                .map(|(k, g)| format!("{k} {:+.1}", 100.0 * g))
                .collect::<Vec<_>>()
                .join(", "),
            mark(overall.is_some_and(|g| g >= 0.30) && above >= 3)
        ));
        if let Some(demo) = &summary.reward {
            let summaries = demo.summaries();
            if let Some(s) = summaries
                .iter()
                .find(|s| s.source == format!("ratio {} model", w.ratio))
            {
                lines.push(format!(
                    "- reward: mean Spearman rho <= -0.8 over the held-out sequences (ratio {}): mean {}, worst {}, \
                     defined in {}/{} — {}",
                    w.ratio,
                    rho_cell(s.mean),
                    rho_cell(s.worst),
                    s.defined,
                    s.sequences,
                    mark(s.mean.is_some_and(|m| m <= -0.8) && s.defined == s.sequences)
                ));
            }
        }
        if let Some(z) = without {
            let gz = z.general.overall.accuracy.over_all.unwrap_or(0.0);
            let gw = w.general.overall.accuracy.over_all.unwrap_or(0.0);
            lines.push(format!(
                "- without spatial data (ratio 0): yes/no {} (chance is 50%), \"which\" {}, within 2x {}",
                pct(z.spatial.overall.yes_no.over_all),
                pct(z.spatial.overall.which.over_all),
                pct(z.spatial.overall.within_2x.over_all)
            ));
            lines.push(format!(
                "- general VQA kept: {} at ratio 0, {} at ratio {} ({:+.1} points)",
                pct(Some(gz)),
                pct(Some(gw)),
                w.ratio,
                100.0 * (gw - gz)
            ));
        }
    }
    lines
}

fn per_type_table(summary: &Summary) -> String {
    let kinds: BTreeSet<&String> = summary
        .results
        .iter()
        .flat_map(|r| r.spatial.by_type.keys().chain(r.general.by_type.keys()))
        .collect();
    let mut headers = vec!["question type".to_string()];
    headers.extend(summary.results.iter().map(|r| format!("ratio {}", r.ratio)));
    headers.push("answer prior".into());
    let rows: Vec<Vec<String>> = kinds
        .into_iter()
        .map(|kind| {
            let mut row = vec![kind.clone()];
            for r in &summary.results {
                let m = r
                    .spatial
                    .by_type
                    .get(kind)
                    .or_else(|| r.general.by_type.get(kind));
                row.push(m.map_or("-".into(), |m| {
                    format!("{} (n={})", pct(m.accuracy.over_all), m.count)
                }));
            }
            let prior = &summary.prior;
            let m = prior
                .spatial
                .by_type
                .get(kind)
                .or_else(|| prior.general.by_type.get(kind));
            row.push(m.map_or("-".into(), |m| pct(m.accuracy.over_all)));
            row
        })
        .collect();
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    markdown_table(&refs, &rows)
}

/// Where the reasoned yes/no and "which" answers of each run go wrong: reading the scene (the listing) or deciding
/// from it (svlm_eval::steps). Empty when no run gave reasoned answers.
fn reasoning_section(summary: &Summary) -> String {
    let rows: Vec<Vec<String>> = summary
        .results
        .iter()
        .filter(|r| r.spatial.reasoning.reasoned > 0)
        .map(|r| {
            let s = &r.spatial.reasoning;
            let mut cells = vec![format!("{}", r.ratio), s.reasoned.to_string()];
            cells.extend(s.rates().map(pct));
            cells
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Reasoned answers, step by step\n\nEach yes/no and \"which\" answer first lists the two objects along \
         the relation's axis, by colour (\"From left to right: red: left, gray: right.\"), then decides. Listing right: \
         the reference's objects in its order. Order right: of the answers naming the right objects, those in the \
         right order (reading the scene). Then the correct final answers after a right listing (deciding from it) \
         and after a wrong one. Per question type: `eval/ratio_*/spatial/report.md`.\n\n",
    );
    let mut headers = vec!["spatial ratio", "reasoned answers"];
    headers.extend(svlm_eval::ReasoningSteps::RATE_COLUMNS);
    md.push_str(&markdown_table(&headers, &rows));
    md
}

/// The first held-out questions of each family, with the truth and every run's answer.
fn examples(summary: &Summary, per_kind: usize) -> String {
    let Some(first) = summary.results.first() else {
        return String::new();
    };
    let mut answers: Vec<BTreeMap<&str, &str>> = Vec::new();
    for r in &summary.results {
        answers.push(
            r.spatial
                .predictions
                .iter()
                .chain(&r.general.predictions)
                .map(|p| (p.id.as_str(), p.answer_text.as_str()))
                .collect(),
        );
    }
    let mut taken: BTreeMap<&str, usize> = BTreeMap::new();
    let mut headers = vec!["image".to_string(), "question".into(), "truth".into()];
    headers.extend(summary.results.iter().map(|r| format!("ratio {}", r.ratio)));
    let mut rows = Vec::new();
    for p in first
        .spatial
        .predictions
        .iter()
        .chain(&first.general.predictions)
    {
        let n = taken.entry(p.kind.as_str()).or_default();
        if *n >= per_kind {
            continue;
        }
        *n += 1;
        let image = Path::new(&p.image)
            .file_name()
            .map_or(p.image.clone(), |f| f.to_string_lossy().into_owned());
        let mut row = vec![
            format!("[{image}](data/images/{image})"),
            p.question.replace('|', "/"),
            truth_text(&p.truth),
        ];
        for a in &answers {
            row.push(a.get(p.id.as_str()).unwrap_or(&"-").replace('|', "/"));
        }
        rows.push(row);
    }
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    markdown_table(&refs, &rows)
}

/// Writes report.json, the two charts and report.md into `out`; returns the markdown path.
pub fn write(out: &Path, summary: &Summary) -> anyhow::Result<PathBuf> {
    write_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(summary)?.as_bytes(),
    )?;
    metrics_plot(summary, &out.join("metrics_vs_ratio.png"))?;
    loss_plot(summary, &out.join("loss_curves.png"))?;

    let plan = &summary.plan;
    let d = &summary.data;
    let mut md = String::new();
    writeln!(md, "# svlm quickstart report\n")?;
    writeln!(
        md,
        "A tiny Idefics3 (SigLIP tower {}x{}, Llama decoder {}x{}, tokenizer of {} tokens trained on the generated \
         text) trained from scratch on the CPU, once per spatial ratio, each run {} steps of {} samples with the \
         same seed. Training data: {} procedural scenes ({}x{} px) giving {} spatial QA and {} general QA; \
         evaluation on {} held-out scenes never trained on ({} spatial and {} general questions), one question per \
         prompt, greedy decoding. Preset `{}`; {:.1} minutes in all.\n",
        plan.model.vision_layers,
        plan.model.vision_hidden,
        plan.model.text_layers,
        plan.model.text_hidden,
        plan.model.vocab_size,
        plan.steps,
        plan.batch_size,
        d.train_images,
        plan.data.image_size,
        plan.data.image_size,
        d.spatial_train_qa,
        d.general_train_qa,
        d.test_images,
        d.spatial_test_qa,
        d.general_test_qa,
        serde_json::to_value(plan.preset)?.as_str().unwrap_or("?"),
        summary.total_seconds / 60.0
    )?;
    writeln!(md, "## Results on held-out scenes\n")?;
    let rows: Vec<Vec<String>> = summary
        .results
        .iter()
        .map(|r| {
            vec![
                format!("{}", r.ratio),
                pct(r.spatial.overall.yes_no.over_all),
                pct(r.spatial.overall.which.over_all),
                pct(r.spatial.overall.binary.over_all),
                pct(r.spatial.overall.within_2x.over_all),
                pct(r.spatial.overall.valid_format_rate),
                pct(r.general.overall.accuracy.over_all),
                r.final_loss.map_or("-".into(), |l| format!("{l:.3}")),
                format!("{:.0} s", r.train_seconds),
                format!("{:.1}", r.samples_per_s),
            ]
        })
        .chain(std::iter::once(vec![
            "answer prior (no model, no image)".to_string(),
            pct(summary.prior.spatial.overall.yes_no.over_all),
            pct(summary.prior.spatial.overall.which.over_all),
            pct(summary.prior.spatial.overall.binary.over_all),
            pct(summary.prior.spatial.overall.within_2x.over_all),
            pct(summary.prior.spatial.overall.valid_format_rate),
            pct(summary.prior.general.overall.accuracy.over_all),
            "-".into(),
            "-".into(),
            "-".into(),
        ]))
        .collect();
    md.push_str(&markdown_table(
        &[
            "spatial ratio",
            "yes/no accuracy",
            "which accuracy",
            "yes/no and which",
            "within [0.5x, 2x]",
            "valid format",
            "general VQA accuracy",
            "final train loss",
            "train time",
            "samples/s",
        ],
        &rows,
    ));
    writeln!(
        md,
        "\nTargets (measured here, not asserted; recipes are compared on other scenes, see \
         experiments/quickstart.md):\n"
    )?;
    for line in targets(summary) {
        writeln!(md, "{line}")?;
    }
    writeln!(
        md,
        "\n![metrics against ratio](metrics_vs_ratio.png)\n\n![loss curves](loss_curves.png)\n"
    )?;
    writeln!(md, "## Accuracy per question type\n")?;
    writeln!(
        md,
        "Accuracy over all questions of the type (an unreadable answer counts as wrong): yes/no and choices exact, \
         lengths within [0.5x, 2x].\n"
    )?;
    md.push_str(&per_type_table(summary));
    md.push_str(&quantitative_section(summary, out)?);
    md.push_str(&reasoning_section(summary));
    writeln!(md, "\n## Example answers\n")?;
    md.push_str(&examples(summary, 1));
    if let Some(demo) = &summary.reward {
        md.push_str(&reward_section(demo)?);
    }
    md.push_str(&reason_section(&summary.reasoning));
    writeln!(md, "\n## Files\n")?;
    for r in &summary.results {
        let label = ratio_label(r.ratio);
        writeln!(
            md,
            "- ratio {}: run `runs/{label}/` (metrics.jsonl, tb/, loss.png, checkpoints), evaluation \
             `eval/{label}/spatial/` and `eval/{label}/general/` (report.md, predictions.jsonl)",
            r.ratio
        )?;
    }
    writeln!(
        md,
        "- data `data/` (JSONL + images), model folder `model/` (tokenizer, processor, config.json), configs \
         `configs/`\n- export a run as an HF folder: `svlm export {}/runs/<run> --out DIR`",
        out.display()
    )?;
    let path = out.join("report.md");
    write_atomic(&path, md.as_bytes())?;
    Ok(path)
}
