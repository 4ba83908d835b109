//! The quickstart report: `report.md` (tables, targets, examples), `report.json` (everything, machine-readable),
//! `metrics_vs_ratio.png` and `loss_curves.png`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use svlm_eval::truth_text;
use svlm_report::{LinePlot, Series, markdown_table, write_atomic};
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
    /// The reward demo on a held-out approach sequence (absent when the plan has no approach sequences).
    #[serde(default)]
    pub reward: Option<RewardDemo>,
    pub total_seconds: f64,
}

/// A held-out approach sequence annotated from exact depth and by each trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewardDemo {
    pub task: String,
    /// The exact centre-to-centre distance per frame (what the models were trained to answer).
    pub true_center_distance_m: Vec<f64>,
    pub geometry: svlm_reason::reward::RewardReport,
    pub models: Vec<(f64, svlm_reason::reward::RewardReport)>,
}

fn rho_text(r: &svlm_reason::reward::RewardReport) -> String {
    r.spearman_rho.map_or_else(
        || "undefined (fewer than two readable, non-constant distances)".to_string(),
        |v| format!("{v:+.3}"),
    )
}

/// The reward section of report.md: Spearman rho per source and the per-frame distances.
fn reward_section(demo: &RewardDemo) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(
        md,
        "\n## Reward annotation on a held-out approach sequence\n"
    )?;
    writeln!(
        md,
        "A gripper approaches an object in {} frames of a sequence never trained on; task: \"{}\". Each source \
         estimates the distance per frame; Spearman rho between frame index and distance is -1 for a distance that \
         falls at every frame. The models were trained on approach frames answering the centre distance; exact depth \
         gives the closest-surface gap.\n",
        demo.true_center_distance_m.len(),
        demo.task
    )?;
    let mut rows = vec![vec![
        "exact depth (geometry)".to_string(),
        rho_text(&demo.geometry),
        format!("{}/{}", demo.geometry.n_valid, demo.geometry.n_frames),
        demo.geometry.strictly_decreasing.to_string(),
    ]];
    for (ratio, r) in &demo.models {
        rows.push(vec![
            format!("model, spatial ratio {ratio}"),
            rho_text(r),
            format!("{}/{}", r.n_valid, r.n_frames),
            r.strictly_decreasing.to_string(),
        ]);
    }
    md.push_str(&markdown_table(
        &[
            "source",
            "Spearman rho",
            "frames with a distance",
            "strictly decreasing",
        ],
        &rows,
    ));
    let mut headers = vec![
        "frame".to_string(),
        "true centre distance".to_string(),
        "exact-depth gap".to_string(),
    ];
    headers.extend(
        demo.models
            .iter()
            .map(|(ratio, _)| format!("ratio {ratio} answer")),
    );
    let rows: Vec<Vec<String>> = demo
        .true_center_distance_m
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut row = vec![i.to_string(), format!("{d:.3} m")];
            row.push(
                demo.geometry
                    .frames
                    .iter()
                    .find(|f| f.index == i)
                    .map_or("-".into(), |f| format!("{:.3} m", f.distance_m)),
            );
            for (_, r) in &demo.models {
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
                row.push(answer);
            }
            row
        })
        .collect();
    writeln!(md)?;
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    md.push_str(&markdown_table(&refs, &rows));
    writeln!(
        md,
        "\nFiles: `reward/frames/` (the RGB-D sequence), `reward/geometry/` and `reward/ratio_*/` (reward.json, \
         reward.png)."
    )?;
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
        let within = w.spatial.overall.within_2x.over_all.unwrap_or(0.0);
        lines.push(format!(
            "- binary predicate (yes/no) accuracy >= 85% with spatial data (ratio {}): {} — {} (\"which\" \
             choices alone: {}; yes/no and \"which\" together: {})",
            w.ratio,
            pct(Some(yes_no)),
            mark(yes_no >= 0.85),
            pct(w.spatial.overall.which.over_all),
            pct(w.spatial.overall.binary.over_all)
        ));
        lines.push(format!(
            "- within [0.5x, 2x] >= 60% with spatial data (ratio {}): {} — {}",
            w.ratio,
            pct(Some(within)),
            mark(within >= 0.60)
        ));
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
    md.push_str(&reasoning_section(summary));
    writeln!(md, "\n## Example answers\n")?;
    md.push_str(&examples(summary, 1));
    if let Some(demo) = &summary.reward {
        md.push_str(&reward_section(demo)?);
    }
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
