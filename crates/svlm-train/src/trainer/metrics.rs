//! What a training step reports: [`StepMetrics`] (one line of `metrics.jsonl`), declared once with the TensorBoard
//! tag each metric is logged under, and the one reader of `metrics.jsonl`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A metric value as TensorBoard scalars: a number is one scalar under its tag, a map one per key (`tag/key`).
trait Scalars {
    fn push_scalars(&self, tag: &str, out: &mut Vec<(String, f32)>);
}

impl Scalars for f64 {
    fn push_scalars(&self, tag: &str, out: &mut Vec<(String, f32)>) {
        out.push((tag.to_string(), *self as f32));
    }
}

impl Scalars for BTreeMap<String, f64> {
    fn push_scalars(&self, tag: &str, out: &mut Vec<(String, f32)>) {
        out.extend(self.iter().map(|(k, v)| (format!("{tag}/{k}"), *v as f32)));
    }
}

/// Declares [`StepMetrics`]: each field in `metrics.jsonl` order, and after `=>` the TensorBoard tag of the ones
/// logged there (in the order they are logged, by `tb_order`).
macro_rules! step_metrics {
    ($( $(#[$meta:meta])* $field:ident : $ty:ty $(=> $tag:literal @ $order:literal)? ,)*) => {
        /// One line of `metrics.jsonl`. A new metric is one line in this list (its TensorBoard tag after `=>`),
        /// and its value where the trainer builds the line ([`StepMetrics::of_step`]).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct StepMetrics {
            $( $(#[$meta])* pub $field: $ty, )*
        }

        impl StepMetrics {
            /// The TensorBoard scalars of this step: every tagged metric, maps one scalar per key.
            pub fn scalars(&self) -> Vec<(String, f32)> {
                let mut tagged: Vec<(u32, &str, &dyn Scalars)> =
                    vec![$( $( ($order, $tag, &self.$field as &dyn Scalars), )? )*];
                tagged.sort_by_key(|(order, _, _)| *order);
                let mut out = Vec::new();
                for (_, tag, value) in tagged {
                    value.push_scalars(tag, &mut out);
                }
                out
            }
        }
    };
}

step_metrics! {
    step: u64,
    /// Mean loss over the step's supervised tokens.
    loss: f64 => "loss" @ 0,
    /// Mean loss per source over its supervised tokens in the step.
    loss_per_source: BTreeMap<String, f64> => "loss" @ 7,
    /// Learning rate per part.
    lr: BTreeMap<String, f64> => "lr" @ 8,
    /// Global gradient norm before clipping.
    grad_norm: f64 => "grad_norm" @ 1,
    samples: usize,
    tokens: usize,
    supervised_tokens: usize,
    pad_fraction: f64 => "data/pad_fraction" @ 4,
    step_time_s: f64 => "time/step_s" @ 5,
    samples_per_s: f64 => "throughput/samples_per_s" @ 3,
    tokens_per_s: f64 => "throughput/tokens_per_s" @ 2,
    rss_mb: f64 => "memory/rss_mb" @ 6,
    /// Validation loss per source, on the steps that validate.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    validation: BTreeMap<String, f64> => "val_loss" @ 9,
}

/// What one optimizer step did, as the trainer counts it.
#[derive(Debug, Clone, Default)]
pub struct StepCounts {
    /// Supervised-token loss sum and count per source index.
    pub source_sums: BTreeMap<usize, (f64, usize)>,
    pub samples: usize,
    /// Tokens that are not padding.
    pub real_tokens: usize,
    /// `rows x seq_len` over the step's micro-batches.
    pub padded_tokens: usize,
    pub supervised_tokens: usize,
}

impl StepMetrics {
    /// The line of step `step` (counted from 1): `names` are the sources by index, `lrs` the learning rate per
    /// part, `step_time_s` the wall time from the first batch read to the update.
    #[allow(clippy::too_many_arguments)]
    pub fn of_step(
        step: u64,
        loss: f64,
        grad_norm: f64,
        counts: &StepCounts,
        names: &[String],
        lrs: BTreeMap<String, f64>,
        step_time_s: f64,
        validation: BTreeMap<String, f64>,
    ) -> Self {
        let (rss, _) = memory_mb();
        let (samples, real, padded) = (counts.samples, counts.real_tokens, counts.padded_tokens);
        StepMetrics {
            step,
            loss,
            loss_per_source: counts
                .source_sums
                .iter()
                .filter(|(_, (_, n))| *n > 0)
                .map(|(&s, (sum, n))| (names[s].clone(), sum / *n as f64))
                .collect(),
            lr: lrs,
            grad_norm,
            samples,
            tokens: real,
            supervised_tokens: counts.supervised_tokens,
            pad_fraction: 1.0 - real as f64 / padded.max(1) as f64,
            step_time_s,
            samples_per_s: samples as f64 / step_time_s.max(1e-9),
            tokens_per_s: real as f64 / step_time_s.max(1e-9),
            rss_mb: rss,
            validation,
        }
    }
}

/// Resident and peak resident memory of this process in MiB, from /proc/self/status (0 where unavailable).
pub fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The file of a run's per-step metrics.
pub const METRICS_FILE: &str = "metrics.jsonl";

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {source}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// Read `metrics.jsonl` of a run, one entry per logged step (a malformed line is an error naming it).
pub fn read_metrics(run_dir: &Path) -> Result<Vec<StepMetrics>, MetricsError> {
    let path = run_dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| MetricsError::Read {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| MetricsError::Line {
                path: path.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Keeps the lines of steps up to `last_step` (a resumed run rewrites the steps after its checkpoint).
pub(super) fn truncate_metrics(path: &Path, last_step: u64) -> std::io::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= last_step))
        .map(|l| format!("{l}\n"))
        .collect();
    svlm_io::write_atomic(path, kept.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_follow_the_tensorboard_order_and_expand_maps() {
        let metrics = StepMetrics {
            step: 3,
            loss: 1.5,
            loss_per_source: [("a".to_string(), 2.0)].into(),
            lr: [("language".to_string(), 1e-3)].into(),
            grad_norm: 0.5,
            samples: 4,
            tokens: 40,
            supervised_tokens: 10,
            pad_fraction: 0.25,
            step_time_s: 2.0,
            samples_per_s: 2.0,
            tokens_per_s: 20.0,
            rss_mb: 100.0,
            validation: [("a".to_string(), 3.0)].into(),
        };
        let tags: Vec<String> = metrics.scalars().into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            tags,
            [
                "loss",
                "grad_norm",
                "throughput/tokens_per_s",
                "throughput/samples_per_s",
                "data/pad_fraction",
                "time/step_s",
                "memory/rss_mb",
                "loss/a",
                "lr/language",
                "val_loss/a",
            ]
        );
        assert_eq!(metrics.scalars()[7].1, 2.0);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METRICS_FILE), "{\"step\": 1}\n\nnot json\n").unwrap();
        let err = read_metrics(dir.path()).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl:1"), "{err}");
    }
}
