//! VSI-Bench (Yang et al., "Thinking in Space", CVPR 2025): questions about indoor videos (ARKitScenes, ScanNet,
//! ScanNet++), multiple choice and numeric.
//!
//! Release: <https://huggingface.co/datasets/nyu-visionx/VSI-Bench> — rows {`id`, `dataset`, `scene_name`,
//! `question_type`, `question`, `options` (list of "A. ..." or null), `ground_truth` (letter or number)} as
//! Parquet or JSON/JSONL; videos as `<dataset>/<scene_name>.mp4`. svlm reads frames, not video: there is no
//! well-kept pure-Rust H.264 decoder, and a C codec is a system dependency svlm does not take. Extract each video's
//! frames to a folder `<dataset>/<scene_name>/` beside it (any `.png`/`.jpg` names that sort in time order, see
//! [`extract_command`]); `frames` of them are taken evenly spaced (`numpy.linspace(0, n - 1, frames)` truncated, the
//! sampling of lmms-eval's video models). A question whose frames are missing is a counted skip whose reason gives
//! the command, and a video given as `--data` is refused with it.
//!
//! Prompt and scoring: the official lmms-eval task (`vision-x-nyu/thinking-in-space`
//! `lmms_eval/tasks/vsibench/utils.py`): "These are frames of a video." + question (+ "Options:" and the options,
//! "Answer with the option's letter from the given choices directly." for multiple choice; "Please answer the
//! question using a single word or phrase." for numbers). The answer's first space-separated word with trailing
//! "." removed must equal the letter (case-insensitive); for numbers it is read as a float and scored by the mean
//! relative accuracy over thresholds 0.50, 0.55, ..., 0.95 (right at threshold t when |pred - gt| / gt <= 1 - t);
//! an unreadable number scores 0. Per question type the mean; the three `object_rel_direction_*` difficulties are
//! averaged into one `object_rel_direction` entry, and the overall is the mean of the entries. The current script
//! needs all three difficulties present; an earlier version counted a missing one as 0, which svlm does too.

use super::rows::{string_list, text};
use super::standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, SummaryRow, Target,
    names_only, rows_by,
};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const PRE_PROMPT: &str = "These are frames of a video.";
pub const MC_POST_PROMPT: &str = "Answer with the option's letter from the given choices directly.";
pub const NA_POST_PROMPT: &str = "Please answer the question using a single word or phrase.";

pub const MC_TYPES: [&str; 6] = [
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
];
pub const NA_TYPES: [&str; 4] = [
    "object_abs_distance",
    "object_counting",
    "object_size_estimation",
    "room_size_estimation",
];
const DIRECTION: [&str; 3] = [
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
];

pub fn read(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    BenchSet::from_rows(Benchmark::VsiBench, files, ctx, |r, _, root| {
        item(r, root, ctx.frames)
    })
}

fn item(
    r: &serde_json::Value,
    root: &Path,
    frames: usize,
) -> std::result::Result<BenchItem, String> {
    let id = text(r, "id").ok_or("no id")?;
    let question_type = text(r, "question_type").ok_or("no question_type")?;
    let question = text(r, "question").ok_or("no question")?;
    let truth = text(r, "ground_truth").ok_or("no ground_truth")?;
    let dataset = text(r, "dataset").ok_or("no dataset")?;
    let scene = text(r, "scene_name").ok_or("no scene_name")?;
    let folder = root.join(&dataset).join(&scene);
    let images = sample_frames(&folder, frames).map_err(|e| {
        match VIDEO_EXTENSIONS
            .iter()
            .map(|ext| root.join(&dataset).join(format!("{scene}.{ext}")))
            .find(|video| video.is_file())
        {
            Some(video) => format!(
                "{e}; the video {} is there but svlm reads frames, not video: extract them with `{}`",
                video.display(),
                extract_command(&video, &folder)
            ),
            None => e,
        }
    })?;
    let (prompt, target) = if MC_TYPES.contains(&question_type.as_str()) {
        let options = string_list(r, "options").ok_or("multiple choice without an options list")?;
        let answer = super::cvbench::letter_index(&truth, options.len()).ok_or_else(|| {
            format!(
                "ground_truth {truth:?} is not a letter of the {} options",
                options.len()
            )
        })?;
        let listed = format!("Options:\n{}", options.join("\n"));
        let prompt = [
            PRE_PROMPT,
            question.as_str(),
            listed.as_str(),
            MC_POST_PROMPT,
        ]
        .join("\n");
        (prompt, Target::Choice { options, answer })
    } else if NA_TYPES.contains(&question_type.as_str()) {
        let value: f64 = truth
            .trim()
            .parse()
            .map_err(|_| format!("ground_truth {truth:?} is not a number"))?;
        if !(value.is_finite() && value != 0.0) {
            return Err(format!(
                "ground_truth {value}: the relative error is undefined"
            ));
        }
        (
            format!("{PRE_PROMPT}\n{question}\n{NA_POST_PROMPT}"),
            Target::Number { value },
        )
    } else {
        return Err(format!("unknown question_type {question_type:?}"));
    };
    let mut labels = BTreeMap::new();
    labels.insert("dataset".into(), dataset);
    labels.insert("scene_name".into(), scene);
    Ok(BenchItem {
        id,
        category: question_type,
        labels,
        images,
        prompt,
        target,
    })
}

/// Video containers VSI-Bench's videos may come in.
pub const VIDEO_EXTENSIONS: [&str; 5] = ["mp4", "mov", "mkv", "avi", "webm"];

/// Whether `path` names a video file (by extension).
pub fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The shell command that extracts every frame of `video` into `folder` as `00001.jpg`, `00002.jpg`, ...
pub fn extract_command(video: &Path, folder: &Path) -> String {
    format!(
        "mkdir -p '{folder}' && ffmpeg -i '{video}' -q:v 2 '{folder}/%05d.jpg'",
        folder = folder.display(),
        video = video.display()
    )
}

/// `frames` evenly spaced image files of `folder` (sorted by name).
pub fn sample_frames(folder: &Path, frames: usize) -> std::result::Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(folder).map_err(|e| {
        format!(
            "frames folder {}: {e} (extract the video's frames there)",
            folder.display()
        )
    })?;
    let mut all: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    all.sort();
    if all.is_empty() {
        return Err(format!("no .png/.jpg frames in {}", folder.display()));
    }
    Ok(linspace_indices(all.len(), frames.max(1))
        .into_iter()
        .map(|i| all[i].clone())
        .collect())
}

/// `numpy.linspace(0, n - 1, k).astype(int)`.
pub fn linspace_indices(n: usize, k: usize) -> Vec<usize> {
    if k == 1 {
        return vec![0];
    }
    let stop = (n - 1) as f64;
    let step = stop / (k - 1) as f64;
    (0..k)
        .map(|i| {
            if i == k - 1 {
                n - 1
            } else {
                (i as f64 * step) as usize
            }
        })
        .collect()
}

/// The official `fuzzy_matching`: first space-separated word, trailing "." removed, trimmed.
pub fn fuzzy(answer: &str) -> String {
    answer
        .split(' ')
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .trim()
        .to_string()
}

/// Python's `float()` on a fuzzy-matched answer (digits with `_` separators allowed, "inf"/"nan" read as such).
fn python_float(s: &str) -> Option<f64> {
    let cleaned = if s.contains('_') {
        let chars: Vec<char> = s.chars().collect();
        let ok = chars.iter().enumerate().all(|(i, c)| {
            *c != '_'
                || (i > 0
                    && i + 1 < chars.len()
                    && chars[i - 1].is_ascii_digit()
                    && chars[i + 1].is_ascii_digit())
        });
        if !ok {
            return None;
        }
        s.replace('_', "")
    } else {
        s.to_string()
    };
    cleaned.parse().ok()
}

/// The official `mean_relative_accuracy(pred, target, .5, .95, .05)`.
pub fn mean_relative_accuracy(pred: f64, target: f64) -> f64 {
    let thresholds = linspace(0.5, 0.95, 10);
    let err = (pred - target).abs() / target;
    thresholds.iter().filter(|t| err <= 1.0 - **t).count() as f64 / thresholds.len() as f64
}

/// `numpy.linspace(start, stop, num)`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    (0..num)
        .map(|i| {
            if i == num - 1 {
                stop
            } else {
                start + i as f64 * step
            }
        })
        .collect()
}

pub fn judge(item: &BenchItem, answer: &str) -> Judged {
    let got = fuzzy(answer);
    match &item.target {
        Target::Choice {
            options,
            answer: right,
        } => {
            let correct = got.to_lowercase() == super::matching::letter(*right).to_lowercase();
            Judged::choice(Some(got), correct, names_only(answer, options, *right))
        }
        Target::Number { value } => {
            let pred = python_float(&got);
            let score = pred.map_or(0.0, |p| mean_relative_accuracy(p, *value));
            Judged {
                extracted: Some(got),
                correct: score > 0.0,
                strict: true,
                score,
                relative_error: pred.map(|p| (p - value).abs() / value),
            }
        }
        Target::Truth { .. } => Judged::choice(None, false, false),
    }
}

pub fn summarize(pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let by_type = rows_by("question type", pairs, |i| Some(i.category.clone()));
    let get = |name: &str, strict: bool| {
        by_type
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| if strict { r.strict } else { r.value })
            .unwrap_or(0.0)
    };
    let direction = |strict: bool| DIRECTION.iter().map(|d| get(d, strict)).sum::<f64>() / 3.0;
    let mut entries: Vec<SummaryRow> = by_type
        .iter()
        .filter(|r| !DIRECTION.contains(&r.name.as_str()))
        .cloned()
        .collect();
    let direction_n = by_type
        .iter()
        .filter(|r| DIRECTION.contains(&r.name.as_str()))
        .map(|r| r.n)
        .sum();
    entries.push(SummaryRow {
        table: "question type".into(),
        name: "object_rel_direction".into(),
        n: direction_n,
        value: Some(direction(false)),
        strict: Some(direction(true)),
    });
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mean = |strict: bool| {
        let v: Vec<f64> = entries
            .iter()
            .map(|r| if strict { r.strict } else { r.value }.unwrap_or(0.0))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (overall, strict_overall) = (mean(false), mean(true));
    let mut rows = entries;
    rows.extend(
        by_type
            .into_iter()
            .filter(|r| DIRECTION.contains(&r.name.as_str()))
            .map(|mut r| {
                r.table = "relative direction by difficulty".into();
                r
            }),
    );
    BenchSummary {
        benchmark: Benchmark::VsiBench,
        metric: "mean over question types (accuracy for multiple choice, MRA for numbers)".into(),
        overall: Some(overall),
        strict_overall: Some(strict_overall),
        rows,
        notes: vec![
            "Prompt, fuzzy matching and MRA of the official lmms-eval task; frames sampled from extracted frame \
             folders."
                .into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_reading_of_answers() {
        assert_eq!(fuzzy("B. The chair"), "B");
        assert_eq!(fuzzy("3.5 meters"), "3.5");
        assert_eq!(fuzzy("12."), "12");
        assert_eq!(python_float("1_000"), Some(1000.0));
        assert_eq!(python_float("_1"), None);
        assert_eq!(python_float("3.5m"), None);
        // MRA: exact -> 1; 7.5% off passes thresholds 0.50..0.90 (9 of 10); 27.5% off 0.50..0.70 (5); 60% none.
        assert_eq!(mean_relative_accuracy(2.0, 2.0), 1.0);
        assert!((mean_relative_accuracy(2.15, 2.0) - 0.9).abs() < 1e-12);
        assert!((mean_relative_accuracy(1.45, 2.0) - 0.5).abs() < 1e-12);
        assert_eq!(mean_relative_accuracy(3.2, 2.0), 0.0);
        // Exactly 10% off sits on the 0.90 threshold; numpy's linspace arithmetic lets it pass (checked: 0.9).
        assert!((mean_relative_accuracy(2.2, 2.0) - 0.9).abs() < 1e-12);
        assert_eq!(linspace_indices(10, 4), vec![0, 3, 6, 9]);
        assert_eq!(linspace_indices(3, 5), vec![0, 0, 1, 1, 2]);
    }
}
