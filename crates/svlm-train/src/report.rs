//! The end-of-run report: `report.json`, `report.md` (realized mixture, throughput, validation), `bad_rows.jsonl`.

use std::path::Path;

use crate::checkpoint::write_atomic;
use crate::data::DataSet;
use crate::trainer::TrainOutcome;

pub use svlm_report::markdown_table;

/// `loss.png`: training loss, loss per source and validation loss per source against the step, from
/// `metrics.jsonl` (so a resumed run's curve includes the steps before the resume).
pub fn write_loss_plot(run_dir: &Path) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use svlm_report::{LinePlot, Series};
    let metrics = crate::trainer::read_metrics(run_dir)?;
    let mut plot = LinePlot::new("Training loss", "step", "loss (nats / supervised token)");
    plot = plot.with_series(Series::new(
        "train",
        metrics.iter().map(|m| (m.step as f64, m.loss)).collect(),
    ));
    let mut per_source: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut validation: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for m in &metrics {
        for (k, v) in &m.loss_per_source {
            per_source
                .entry(k.clone())
                .or_default()
                .push((m.step as f64, *v));
        }
        for (k, v) in &m.validation {
            validation
                .entry(k.clone())
                .or_default()
                .push((m.step as f64, *v));
        }
    }
    if per_source.len() > 1 {
        for (k, points) in per_source {
            plot = plot.with_series(Series::new(format!("train/{k}"), points));
        }
    }
    for (k, points) in validation {
        plot = plot.with_series(Series::new(format!("val/{k}"), points));
    }
    plot.save_png(&run_dir.join("loss.png"))
}

pub fn write_run_report(
    run_dir: &Path,
    outcome: &TrainOutcome,
    data: &DataSet,
) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(outcome).map_err(std::io::Error::other)?;
    write_atomic(&run_dir.join("report.json"), json.as_bytes())?;

    let mut bad_lines = String::new();
    for (source, rows) in data.bad_rows() {
        for row in rows {
            let line =
                serde_json::json!({"source": source, "origin": row.origin, "reason": row.reason});
            bad_lines.push_str(&format!("{line}\n"));
        }
    }
    write_atomic(&run_dir.join("bad_rows.jsonl"), bad_lines.as_bytes())?;

    let rows: Vec<Vec<String>> = outcome
        .sources
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                format!("{:.3}", s.configured_share),
                s.samples.to_string(),
                format!("{:.3}", s.sample_share),
                s.supervised_tokens.to_string(),
                format!("{:.3}", s.token_share),
                s.epochs_started.to_string(),
                s.bad_rows.to_string(),
                s.validation_loss.map_or("-".into(), |v| format!("{v:.4}")),
            ]
        })
        .collect();
    let table = markdown_table(
        &[
            "source",
            "configured share",
            "samples",
            "sample share",
            "supervised tokens",
            "token share",
            "epochs",
            "bad rows",
            "val loss",
        ],
        &rows,
    );
    let md = format!(
        "# Run report: {}\n\n- steps: {}\n- final training loss: {}\n- samples/s: {:.2}, tokens/s: {:.1}, supervised tokens/s: {:.1}\n- pad fraction: {:.3}\n- peak RSS: {:.0} MiB\n- last checkpoint: {}\n\n## Realized mixture\n\n{table}",
        run_dir.display(),
        outcome.steps,
        outcome.final_loss.map_or("-".into(), |l| format!("{l:.4}")),
        outcome.samples_per_s,
        outcome.tokens_per_s,
        outcome.supervised_tokens_per_s,
        outcome.pad_fraction,
        outcome.peak_rss_mb,
        outcome
            .last_checkpoint
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string()),
    );
    write_atomic(&run_dir.join("report.md"), md.as_bytes())?;
    if let Err(e) = write_loss_plot(run_dir) {
        tracing::warn!("loss plot: {e:#}");
    }
    Ok(())
}
