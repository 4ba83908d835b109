//! Dense reward annotation over a frame sequence: per-frame distance between two named objects (from depth +
//! instance masks through the synthesis pipeline, or from a VLM's answers), reward curves, monotonicity, JSON
//! and a PNG plot.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use svlm_eval::Answerer;
use svlm_report::{LinePlot, Series, write_atomic};
use svlm_synth::EstimateParams;
use svlm_world::{FolderReader, Frame};

use crate::names::{match_name, parse_task};
use crate::spearman::spearman_rho;

/// Where the per-frame distances come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardSource {
    /// Closest-surface distance between the two objects' point clouds (depth + instance masks + object names).
    Geometry,
    /// A VLM's answer to "How far is A from B?", parsed with `svlm_answers::parse_length`.
    Vlm,
}

impl RewardSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RewardSource::Geometry => "geometry",
            RewardSource::Vlm => "vlm",
        }
    }
}

impl std::str::FromStr for RewardSource {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "geometry" => Ok(RewardSource::Geometry),
            "vlm" => Ok(RewardSource::Vlm),
            other => anyhow::bail!("unknown reward source {other:?} (expected geometry or vlm)"),
        }
    }
}

/// One frame with a distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardFrame {
    /// Frame stem.
    pub frame: String,
    /// Position in the sequence (sorted stems), counting failed frames too.
    pub index: usize,
    pub distance_m: f64,
    /// `-distance_m`.
    pub reward: f64,
    /// `1 - distance_m / d0`, `d0` the first valid frame's distance (0 at the start, 1 at contact).
    pub progress: f64,
    pub source: RewardSource,
    /// The VLM's raw answer (VLM source only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// A frame without a distance, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedFrame {
    pub frame: String,
    pub index: usize,
    pub reason: String,
}

/// What RL code reads (`reward.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardReport {
    pub task: String,
    pub objects: [String; 2],
    pub source: RewardSource,
    pub frames_dir: PathBuf,
    pub n_frames: usize,
    pub n_valid: usize,
    pub n_failed: usize,
    pub frames: Vec<RewardFrame>,
    pub failed: Vec<FailedFrame>,
    /// Spearman rho between frame index and distance over the valid frames: -1 when the distance falls at every
    /// step (an approach), +1 when it rises at every step; `None` with fewer than two valid frames or a constant
    /// distance.
    pub spearman_rho: Option<f64>,
    /// The distance falls strictly from every valid frame to the next.
    pub strictly_decreasing: bool,
    pub initial_distance_m: Option<f64>,
    pub final_distance_m: Option<f64>,
}

impl RewardReport {
    /// Fails, naming the folder and the first failures, when fewer than two frames have a distance: no curve and
    /// no monotonicity can be read from one point. `annotate` itself returns such reports (their failures are
    /// worth writing out); a command that promises a reward calls this.
    pub fn ensure_measured(&self) -> Result<()> {
        if self.n_valid >= 2 {
            return Ok(());
        }
        let failures: Vec<String> = self
            .failed
            .iter()
            .take(3)
            .map(|f| format!("{}: {}", f.frame, f.reason))
            .collect();
        anyhow::bail!(
            "only {} of {} frames in {} measured ({} source): a reward needs at least two{}",
            self.n_valid,
            self.n_frames,
            self.frames_dir.display(),
            self.source.as_str(),
            if failures.is_empty() {
                String::new()
            } else {
                format!("; {}", failures.join("; "))
            }
        )
    }
}

/// Options of [`annotate`].
#[derive(Debug, Clone)]
pub struct RewardOptions {
    pub source: RewardSource,
    /// Geometry pipeline settings (geometry source). The default lifts every pixel and keeps heavily occluded
    /// objects: an approaching gripper hides part of its target, which must not drop the frame.
    pub estimate: EstimateParams,
    /// Questions per VLM batch.
    pub batch_size: usize,
}

impl Default for RewardOptions {
    fn default() -> Self {
        RewardOptions {
            source: RewardSource::Geometry,
            estimate: {
                let mut estimate = EstimateParams {
                    max_occluded_boundary: 1.0,
                    ..EstimateParams::default()
                };
                estimate.geometry.stride = 1;
                // A truncated or small object still has a closest surface; only its size would be wrong.
                estimate.visibility.skip_truncated = false;
                estimate.visibility.min_visible_pixels = 30;
                estimate
            },
            batch_size: 8,
        }
    }
}

/// The question asked of a VLM for one frame: the gap between the two objects in the synthesis wording
/// ("What is the gap between the gripper and the red can?"), the closest-surface distance that the geometry
/// source measures and that approach-sequence training records answer (`svlm_synth::approach`).
pub use svlm_synth::approach::gap_question;

/// Annotates every frame of an RGB-D folder (`docs/ARCHITECTURE.md`) for `task` ("distance between the gripper
/// and the red can"). `vlm` is required for the VLM source. Frames that fail are listed with their reason.
pub fn annotate(
    frames_dir: &Path,
    task: &str,
    options: &RewardOptions,
    vlm: Option<&mut dyn Answerer>,
) -> Result<RewardReport> {
    let objects = parse_task(task)?;
    let reader = FolderReader::open(frames_dir)
        .with_context(|| format!("opening frame folder {}", frames_dir.display()))?;
    let stems = reader
        .stems()
        .with_context(|| format!("listing frames in {}", frames_dir.display()))?;
    anyhow::ensure!(!stems.is_empty(), "no frames in {}", frames_dir.display());
    let mut measured: Vec<(usize, String, f64, Option<String>)> = Vec::new();
    let mut failed = Vec::new();
    match options.source {
        RewardSource::Geometry => {
            for (index, stem) in stems.iter().enumerate() {
                let outcome = reader
                    .read(stem)
                    .map_err(|e| format!("unreadable frame: {e}"))
                    .and_then(|frame| geometry_distance(&frame, &objects, &options.estimate));
                match outcome {
                    Ok(d) => measured.push((index, stem.clone(), d, None)),
                    Err(reason) => {
                        tracing::warn!(frame = %stem, %reason, "frame skipped");
                        failed.push(FailedFrame {
                            frame: stem.clone(),
                            index,
                            reason,
                        })
                    }
                }
            }
        }
        RewardSource::Vlm => {
            let vlm = vlm.context("the vlm reward source needs a VLM answerer")?;
            anyhow::ensure!(options.batch_size > 0, "batch size must be at least 1");
            let question = gap_question(&objects[0], &objects[1]);
            let mut items = Vec::new();
            for (index, stem) in stems.iter().enumerate() {
                match frame_image(frames_dir, stem) {
                    Some(path) => items.push((index, stem.clone(), path)),
                    None => failed.push(FailedFrame {
                        frame: stem.clone(),
                        index,
                        reason: "no RGB image".into(),
                    }),
                }
            }
            for chunk in items.chunks(options.batch_size) {
                let batch: Vec<(PathBuf, String)> = chunk
                    .iter()
                    .map(|(_, _, p)| (p.clone(), question.clone()))
                    .collect();
                let answers = vlm
                    .answer_batch(&batch)
                    .with_context(|| format!("VLM failed on frames {}..", chunk[0].1))?;
                anyhow::ensure!(
                    answers.len() == batch.len(),
                    "VLM gave {} answers for {} questions",
                    answers.len(),
                    batch.len()
                );
                for ((index, stem, _), answer) in chunk.iter().zip(answers) {
                    match svlm_answers::parse_length(&answer) {
                        Some(length) if length.meters.is_finite() => {
                            measured.push((*index, stem.clone(), length.meters, Some(answer)))
                        }
                        _ => failed.push(FailedFrame {
                            frame: stem.clone(),
                            index: *index,
                            reason: format!("answer has no length: {answer:?}"),
                        }),
                    }
                }
            }
            failed.sort_by_key(|f| f.index);
        }
    }
    Ok(build_report(
        task,
        objects,
        options.source,
        frames_dir,
        stems.len(),
        measured,
        failed,
    ))
}

fn build_report(
    task: &str,
    objects: [String; 2],
    source: RewardSource,
    frames_dir: &Path,
    n_frames: usize,
    measured: Vec<(usize, String, f64, Option<String>)>,
    failed: Vec<FailedFrame>,
) -> RewardReport {
    let d0 = measured.first().map(|m| m.2);
    let frames: Vec<RewardFrame> = measured
        .into_iter()
        .map(|(index, frame, d, answer)| RewardFrame {
            frame,
            index,
            distance_m: d,
            reward: -d,
            progress: match d0 {
                Some(d0) if d0 > 0.0 => 1.0 - d / d0,
                _ => 0.0,
            },
            source,
            answer,
        })
        .collect();
    let x: Vec<f64> = frames.iter().map(|f| f.index as f64).collect();
    let y: Vec<f64> = frames.iter().map(|f| f.distance_m).collect();
    RewardReport {
        task: task.to_string(),
        objects,
        source,
        frames_dir: frames_dir.to_path_buf(),
        n_frames,
        n_valid: frames.len(),
        n_failed: failed.len(),
        spearman_rho: spearman_rho(&x, &y),
        strictly_decreasing: frames.len() >= 2 && y.windows(2).all(|w| w[1] < w[0]),
        initial_distance_m: y.first().copied(),
        final_distance_m: y.last().copied(),
        frames,
        failed,
    }
}

/// Closest-surface distance between the two named objects of one frame, through the synthesis pipeline's
/// estimated scene graph (depth -> points -> outlier removal -> largest cluster), between the objects' kept
/// full-resolution points.
pub fn geometry_distance(
    frame: &Frame,
    objects: &[String; 2],
    estimate: &EstimateParams,
) -> std::result::Result<f64, String> {
    if frame.instances.is_none() && frame.objects.iter().all(|o| o.bbox.is_none()) {
        return Err("no instance mask and no boxes".into());
    }
    let frame_names: Vec<&str> = frame.objects.iter().map(|o| o.name.as_str()).collect();
    for name in objects {
        match_name(name, &frame_names).map_err(|e| format!("in the frame's objects: {e}"))?;
    }
    let graph = svlm_synth::source::graph_from_frame(frame, estimate, 0.1)
        .map_err(|e| format!("{} ({e})", e.reason()))?;
    let find = |name: &str| -> std::result::Result<usize, String> {
        let names: Vec<&str> = graph.objects.iter().map(|o| o.name.as_str()).collect();
        if let Ok(i) = match_name(name, &names) {
            return Ok(i);
        }
        let base: Vec<&str> = graph.objects.iter().map(|o| o.base_name.as_str()).collect();
        match_name(name, &base).map_err(|e| {
            let skips: Vec<String> = graph
                .skips
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!(
                "not measured from depth: {e} (objects skipped: {})",
                skips.join(", ")
            )
        })
    };
    let (a, b) = (find(&objects[0])?, find(&objects[1])?);
    // The graph's own gaps use the voxel-thinned points (centimetre steps); near contact the reward needs the
    // full-resolution points the objects kept.
    let d = svlm_geometry::closest_distance(&graph.objects[a].points, &graph.objects[b].points);
    if !d.is_finite() {
        return Err("distance is not finite".into());
    }
    Ok(d)
}

/// `DIR/<stem>.png|.jpg|.jpeg`.
pub fn frame_image(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["png", "jpg", "jpeg"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// Files written by [`write_report`].
#[derive(Debug, Clone)]
pub struct RewardFiles {
    pub json: PathBuf,
    pub plot: PathBuf,
}

/// Writes `reward.json` and `reward.png` (distance and reward per frame) into `out_dir`, atomically.
pub fn write_report(report: &RewardReport, out_dir: &Path) -> Result<RewardFiles> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output directory {}", out_dir.display()))?;
    let json = out_dir.join("reward.json");
    let bytes = serde_json::to_vec_pretty(report).context("serializing the reward report")?;
    write_atomic(&json, &bytes)?;
    let plot = out_dir.join("reward.png");
    let rho = report
        .spearman_rho
        .map_or("n/a".to_string(), |r| format!("{r:.3}"));
    let mut chart = LinePlot::new(
        format!(
            "{} ({}, Spearman rho {rho})",
            report.task,
            report.source.as_str()
        ),
        "frame",
        "metres / reward",
    )
    .with_series(Series::new(
        "distance (m)",
        report
            .frames
            .iter()
            .map(|f| (f.index as f64, f.distance_m))
            .collect(),
    ))
    .with_series(Series::new(
        "reward (-distance)",
        report
            .frames
            .iter()
            .map(|f| (f.index as f64, f.reward))
            .collect(),
    ))
    .with_series(Series::new(
        "progress",
        report
            .frames
            .iter()
            .map(|f| (f.index as f64, f.progress))
            .collect(),
    ));
    chart.markers = true;
    chart
        .save_png(&plot)
        .with_context(|| format!("writing {}", plot.display()))?;
    Ok(RewardFiles { json, plot })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: usize, d: f64) -> (usize, String, f64, Option<String>) {
        (i, format!("f{i}"), d, None)
    }

    #[test]
    fn report_curves_and_rho() {
        let r = build_report(
            "distance between a and b",
            ["a".into(), "b".into()],
            RewardSource::Geometry,
            Path::new("x"),
            4,
            vec![m(0, 0.4), m(1, 0.3), m(3, 0.1)],
            vec![FailedFrame {
                frame: "f2".into(),
                index: 2,
                reason: "x".into(),
            }],
        );
        assert_eq!(r.n_valid, 3);
        assert_eq!(r.n_failed, 1);
        assert_eq!(r.spearman_rho, Some(-1.0));
        assert!(r.strictly_decreasing);
        assert_eq!(r.frames[1].reward, -0.3);
        assert!((r.frames[2].progress - 0.75).abs() < 1e-12);
        assert_eq!(r.frames[0].progress, 0.0);

        let flat = build_report(
            "t",
            ["a".into(), "b".into()],
            RewardSource::Vlm,
            Path::new("x"),
            3,
            vec![m(0, 0.4), m(1, 0.4), m(2, 0.2)],
            vec![],
        );
        assert!(!flat.strictly_decreasing);
        let rho = flat.spearman_rho.unwrap();
        assert!(rho < -0.8 && rho > -1.0, "{rho}");
    }

    #[test]
    fn fewer_than_two_measured_frames_is_an_error() {
        let failed = |i: usize| FailedFrame {
            frame: format!("f{i}"),
            index: i,
            reason: "answer has no length: \"I don't know\"".into(),
        };
        let report = |measured: Vec<(usize, String, f64, Option<String>)>,
                      failures: Vec<FailedFrame>| {
            build_report(
                "t",
                ["gripper".into(), "can".into()],
                RewardSource::Vlm,
                Path::new("frames"),
                measured.len() + failures.len(),
                measured,
                failures,
            )
        };
        let none = report(vec![], (0..6).map(failed).collect());
        let err = none.ensure_measured().unwrap_err().to_string();
        assert!(
            err.contains("only 0 of 6 frames in frames measured (vlm source)")
                && err.contains("f0: answer has no length"),
            "{err}"
        );
        let one = report(vec![m(2, 0.4)], vec![failed(0), failed(1)]);
        assert!(one.ensure_measured().is_err());
        assert!(
            report(vec![m(0, 0.4), m(1, 0.3)], vec![])
                .ensure_measured()
                .is_ok()
        );
    }
}
