//! Sweeps: a grid over config keys, one run directory per point, then a summary table (markdown + CSV).
//!
//! ```toml
//! base = "../tiny_cpu.toml"            # run config, relative to the sweep file
//! set = ["train.steps=200"]            # overrides applied to every point (optional)
//! [grid]
//! "data.sources.spatial.weight" = [0.0, 0.05, 0.25, 0.5]
//! ```
//! Several grid keys give their Cartesian product, in key order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{RunDirUse, claim_run_dir, latest_checkpoint, run_files, write_atomic};
use crate::config::{ConfigError, RunConfig};
use crate::report::markdown_table;
use crate::trainer::TrainOutcome;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    pub base: PathBuf,
    #[serde(default)]
    pub set: Vec<String>,
    pub grid: BTreeMap<String, Vec<toml::Value>>,
}

/// One grid point: its overrides and a directory-safe label.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    pub overrides: Vec<String>,
    pub values: Vec<(String, String)>,
    pub label: String,
}

impl SweepConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut sweep: SweepConfig = toml::from_str(&text).map_err(|e| ConfigError::Schema {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        if sweep.base.is_relative() {
            sweep.base = path.parent().unwrap_or(Path::new(".")).join(&sweep.base);
        }
        if sweep.grid.is_empty() || sweep.grid.values().any(Vec::is_empty) {
            return Err(ConfigError::Invalid {
                key: "grid".into(),
                message: "every grid key needs at least one value".into(),
            });
        }
        Ok(sweep)
    }

    pub fn points(&self) -> Vec<SweepPoint> {
        let mut points = vec![SweepPoint {
            overrides: Vec::new(),
            values: Vec::new(),
            label: String::new(),
        }];
        for (key, values) in &self.grid {
            let mut next = Vec::new();
            for p in &points {
                for v in values {
                    let text = match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let mut q = p.clone();
                    q.overrides.push(format!("{key}={}", v));
                    q.values.push((key.clone(), text.clone()));
                    let short = key
                        .rsplit('.')
                        .take(2)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join(".");
                    let part: String = format!("{short}={text}")
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || "=.-_".contains(c) {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    q.label = if q.label.is_empty() {
                        part
                    } else {
                        format!("{}__{part}", q.label)
                    };
                    next.push(q);
                }
            }
            points = next;
        }
        points
    }

    /// Resolved config of a point.
    pub fn point_config(&self, point: &SweepPoint) -> Result<RunConfig, ConfigError> {
        let mut overrides = self.set.clone();
        overrides.extend(point.overrides.iter().cloned());
        RunConfig::load(&self.base, &overrides)
    }
}

/// Names in a folder that show it holds a sweep: its summary files and the point folders that hold a run.
pub fn sweep_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let summary = name.starts_with("summary.")
                && matches!(name.rsplit('.').next(), Some("md" | "csv" | "json" | "png"));
            let run = e.path().is_dir() && !run_files(&e.path()).is_empty();
            (summary || run).then(|| if run { format!("{name}/") } else { name })
        })
        .collect();
    names.sort();
    names
}

/// Makes `dir` ready for a sweep, so that a sweep folder only ever holds one sweep (the choices of
/// [`claim_run_dir`]): `New` refuses a folder that holds a sweep ([`sweep_files`]), `Overwrite` replaces it whole,
/// `Resume` needs one to continue.
pub fn claim_sweep_dir(dir: &Path, usage: RunDirUse) -> anyhow::Result<()> {
    let shown = dir.display();
    let found = sweep_files(dir);
    match usage {
        RunDirUse::New if !found.is_empty() => Err(anyhow::anyhow!(
            "{shown} holds another sweep ({}): continue it with --resume, or start over with --overwrite (deletes \
             it), or pick another --out",
            found.join(", ")
        )),
        RunDirUse::Resume if found.is_empty() => Err(anyhow::anyhow!(
            "{shown} holds no sweep to resume: start it without --resume"
        )),
        RunDirUse::New | RunDirUse::Resume => {
            std::fs::create_dir_all(dir).with_context(|| shown.to_string())
        }
        RunDirUse::Overwrite => Ok(claim_run_dir(dir, RunDirUse::Overwrite)?),
    }
}

/// Where a point of a resumed sweep starts.
enum PointStart {
    /// Its run finished: its report is the outcome.
    Finished(Box<TrainOutcome>),
    /// Continue its run from the newest checkpoint.
    Resume,
    /// Train it from the start.
    Fresh,
}

/// Decides how a point's run continues. A run trained with another config than the point's now (the sweep file
/// was edited) is an error: resuming it would mix two configs in one row of the summary.
fn point_start(run_dir: &Path, config: &RunConfig, resume: bool) -> anyhow::Result<PointStart> {
    if !resume || run_files(run_dir).is_empty() {
        claim_run_dir(run_dir, RunDirUse::Overwrite)?;
        return Ok(PointStart::Fresh);
    }
    let saved_path = run_dir.join(crate::checkpoint::CONFIG_FILE);
    if let Ok(mut saved) = RunConfig::load(&saved_path, &[]) {
        saved.train.device = config.train.device.clone();
        let (saved, wanted) = (saved.to_toml(), config.to_toml());
        if saved.is_ok() && saved.ok() != wanted.ok() {
            anyhow::bail!(
                "{} was trained with another config than the sweep gives this point now; start the sweep over \
                 with --overwrite",
                run_dir.display()
            );
        }
    }
    let Some((step, _)) = latest_checkpoint(run_dir) else {
        claim_run_dir(run_dir, RunDirUse::Overwrite)?;
        return Ok(PointStart::Fresh);
    };
    let report = std::fs::read_to_string(run_dir.join("report.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<TrainOutcome>(&text).ok());
    match report {
        Some(outcome) if !outcome.halted && outcome.steps == step => {
            Ok(PointStart::Finished(Box::new(outcome)))
        }
        _ => {
            claim_run_dir(run_dir, RunDirUse::Resume)?;
            Ok(PointStart::Resume)
        }
    }
}

/// Train every point ([`crate::vlm::train_config`]) and write `summary.md`, `summary.csv`, `summary.json`. A failing
/// point is recorded in the summary and the sweep goes on. With `resume`, finished points keep their outcome,
/// interrupted ones continue from their newest checkpoint and the others start; claim `out_dir` first
/// ([`claim_sweep_dir`]). `device` overrides every point's `train.device`.
pub fn run_sweep(
    sweep: &SweepConfig,
    out_dir: &Path,
    resume: bool,
    device: Option<&str>,
) -> anyhow::Result<Vec<(SweepPoint, Result<TrainOutcome, String>)>> {
    std::fs::create_dir_all(out_dir)?;
    let mut results = Vec::new();
    for point in sweep.points() {
        let run_dir = out_dir.join(&point.label);
        tracing::info!("sweep point {} -> {}", point.label, run_dir.display());
        let outcome = sweep
            .point_config(&point)
            .map_err(anyhow::Error::from)
            .and_then(|mut config| {
                config.name = point.label.clone();
                if let Some(device) = device {
                    config.train.device = device.to_string();
                }
                match point_start(&run_dir, &config, resume)? {
                    PointStart::Finished(outcome) => {
                        tracing::info!("sweep point {} had finished", point.label);
                        Ok(*outcome)
                    }
                    PointStart::Resume => crate::vlm::train_config(&config, &run_dir, true),
                    PointStart::Fresh => crate::vlm::train_config(&config, &run_dir, false),
                }
            })
            .map_err(|e| format!("{e:#}"));
        if let Err(e) = &outcome {
            tracing::error!("sweep point {} failed: {e}", point.label);
        }
        results.push((point, outcome));
    }
    write_summary(sweep, out_dir, &results)?;
    Ok(results)
}

fn write_summary(
    sweep: &SweepConfig,
    out_dir: &Path,
    results: &[(SweepPoint, Result<TrainOutcome, String>)],
) -> anyhow::Result<()> {
    let keys: Vec<String> = sweep.grid.keys().cloned().collect();
    let mut sources: Vec<String> = Vec::new();
    for (_, r) in results {
        if let Ok(o) = r {
            for s in &o.sources {
                if !sources.contains(&s.name) {
                    sources.push(s.name.clone());
                }
            }
        }
    }
    let mut header: Vec<String> = keys.clone();
    header.extend(["status", "steps", "final_loss", "samples_per_s"].map(String::from));
    for s in &sources {
        header.push(format!("val_loss/{s}"));
        header.push(format!("token_share/{s}"));
    }
    let mut rows = Vec::new();
    for (point, r) in results {
        let mut row: Vec<String> = point.values.iter().map(|(_, v)| v.clone()).collect();
        match r {
            Ok(o) => {
                row.push("ok".into());
                row.push(o.steps.to_string());
                row.push(o.final_loss.map_or(String::new(), |l| format!("{l:.5}")));
                row.push(format!("{:.3}", o.samples_per_s));
                for s in &sources {
                    let rep = o.sources.iter().find(|x| &x.name == s);
                    row.push(
                        rep.and_then(|x| x.validation_loss)
                            .map_or(String::new(), |v| format!("{v:.5}")),
                    );
                    row.push(rep.map_or(String::new(), |x| format!("{:.4}", x.token_share)));
                }
            }
            Err(e) => {
                row.push(format!("failed: {}", e.replace(['|', ',', '\n'], " ")));
                row.resize(header.len(), String::new());
            }
        }
        rows.push(row);
    }
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let md = format!(
        "# Sweep summary\n\nbase: {}\n\n{}",
        sweep.base.display(),
        markdown_table(&header_refs, &rows)
    );
    write_atomic(&out_dir.join("summary.md"), md.as_bytes())?;
    let mut csv = header.join(",") + "\n";
    for r in &rows {
        csv.push_str(&r.join(","));
        csv.push('\n');
    }
    write_atomic(&out_dir.join("summary.csv"), csv.as_bytes())?;
    let json: Vec<serde_json::Value> = results
        .iter()
        .map(|(p, r)| {
            serde_json::json!({
                "label": p.label,
                "values": p.values.iter().cloned().collect::<BTreeMap<_, _>>(),
                "outcome": r.as_ref().ok(),
                "error": r.as_ref().err(),
            })
        })
        .collect();
    write_atomic(
        &out_dir.join("summary.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    write_sweep_plot(&keys, &sources, results, &out_dir.join("summary.png"))?;
    Ok(())
}

/// Validation loss per source against the first grid key (when its values are numbers).
fn write_sweep_plot(
    keys: &[String],
    sources: &[String],
    results: &[(SweepPoint, Result<TrainOutcome, String>)],
    path: &Path,
) -> anyhow::Result<()> {
    use svlm_report::{LinePlot, Series};
    let Some(key) = keys.first() else {
        return Ok(());
    };
    let mut plot = LinePlot::new("Sweep", key.clone(), "validation loss");
    plot.markers = true;
    let mut any = false;
    for s in sources {
        let points: Vec<(f64, f64)> = results
            .iter()
            .filter_map(|(p, r)| {
                let x = p.values.first()?.1.parse::<f64>().ok()?;
                let y = r
                    .as_ref()
                    .ok()?
                    .sources
                    .iter()
                    .find(|x| &x.name == s)?
                    .validation_loss?;
                Some((x, y))
            })
            .collect();
        if !points.is_empty() {
            any = true;
            plot = plot.with_series(Series::new(s.clone(), points));
        }
    }
    if any { plot.save_png(path) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_points_are_the_cartesian_product_with_readable_labels() {
        let sweep: SweepConfig = toml::from_str(
            r#"base = "x.toml"
               [grid]
               "data.sources.spatial.weight" = [0.0, 0.5]
               "optim.lr" = [1e-3, 1e-4]"#,
        )
        .expect("parse");
        let points = sweep.points();
        assert_eq!(points.len(), 4);
        assert_eq!(
            points[0].overrides,
            vec!["data.sources.spatial.weight=0.0", "optim.lr=0.001"]
        );
        assert_eq!(points[0].label, "spatial.weight=0.0__optim.lr=0.001");
        assert_eq!(
            points[3].values[1],
            ("optim.lr".to_string(), "0.0001".to_string())
        );
    }
}
