//! BLINK (Fu et al., ECCV 2024), the two spatial subtasks: `Relative_Depth` and `Spatial_Relation`.
//!
//! Release: <https://huggingface.co/datasets/BLINK-Benchmark/BLINK>, one config per subtask
//! (`Relative_Depth/val-00000-of-00001.parquet`, `Spatial_Relation/val-...`; the test split's answers are hidden).
//! Fields: `idx`, `question`, `sub_task`, `image_1`..`image_4` (HF images, unused ones null), `choices`, `answer`
//! ("(A)"), `prompt` (question and "(A) ..." choices pre-formatted), `explanation`. The same rows as JSON/JSONL
//! with image paths are read too.
//!
//! Prompt and scoring follow Cambrian-1's BLINK evaluation (`cambrian-mllm/cambrian` `eval/eval/blink/
//! blink_eval.py`, `blink_test.py`): `prompt` + "\nPlease answer directly with only the letter of the correct
//! option and nothing else."; the answer up to its first full stop, lower-cased, its first space-separated word
//! with "(" / ")" stripped, must equal the answer's letter. BLINK's own script (`zeyofu/BLINK_Benchmark`
//! `eval/multiple_choice.py`) maps free-form answers to options with GPT-3.5, which cannot run offline; models
//! that answer with a letter, as instructed, score the same under both. The paper's overall is the mean over
//! subtasks; here over the two spatial ones.

use super::cvbench::letter_index;
use super::rows::{string_list, text};
use super::standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, Target, file_stem, mean_of,
    names_only, rows_by,
};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SUBTASKS: [&str; 2] = ["Relative_Depth", "Spatial_Relation"];
pub const INSTRUCTION: &str =
    "Please answer directly with only the letter of the correct option and nothing else.";

pub fn read(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    BenchSet::from_rows(Benchmark::Blink, files, ctx, |r, file, root| {
        item(r, file, root, ctx)
    })
}

fn item(
    r: &serde_json::Value,
    file: &Path,
    root: &Path,
    ctx: &ReadContext,
) -> std::result::Result<BenchItem, String> {
    // The subtask: the row's `sub_task`, else the config folder the file sits in.
    let sub_task = text(r, "sub_task")
        .or_else(|| {
            file.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .ok_or("no sub_task")?;
    if !SUBTASKS.contains(&sub_task.as_str()) {
        return Err(format!(
            "subtask {sub_task:?} is not one of BLINK's spatial subtasks"
        ));
    }
    let idx = text(r, "idx").ok_or("no idx")?;
    let prompt = text(r, "prompt").ok_or("no prompt")?;
    let options = string_list(r, "choices").ok_or("no choices list")?;
    let answer = text(r, "answer").ok_or("no answer")?;
    let answer = letter_index(&answer, options.len()).ok_or_else(|| {
        format!(
            "answer {answer:?} is not one of the {} choices' letters",
            options.len()
        )
    })?;
    let mut images = Vec::new();
    for k in 1..=4 {
        let Some(cell) = r.get(format!("image_{k}")).filter(|v| !v.is_null()) else {
            continue;
        };
        let stem = file_stem(Benchmark::Blink, &format!("{idx}-{k}"));
        // Unused image slots are null, or an image struct with neither bytes nor a path.
        let Some(image) = ctx.image(cell, root, &stem).map_err(|e| format!("{e:#}"))? else {
            continue;
        };
        images.push(image);
    }
    if images.is_empty() {
        return Err("no image_1".into());
    }
    Ok(BenchItem {
        id: idx,
        category: sub_task,
        labels: BTreeMap::new(),
        images,
        prompt: format!("{prompt}\n{INSTRUCTION}"),
        target: Target::Choice { options, answer },
    })
}

/// Cambrian's BLINK reading: before the first ".", lower-cased, trimmed, first word, parentheses stripped.
pub fn extract(answer: &str) -> String {
    let before_stop = answer.split('.').next().unwrap_or_default().to_lowercase();
    let first_word = before_stop.trim().split(' ').next().unwrap_or_default();
    first_word
        .trim_start_matches('(')
        .trim_end_matches(')')
        .to_string()
}

pub fn judge(item: &BenchItem, answer: &str) -> Judged {
    let Target::Choice {
        options,
        answer: right,
    } = &item.target
    else {
        return Judged::choice(None, false, false);
    };
    let got = extract(answer);
    let correct = got == super::matching::letter(*right).to_lowercase();
    Judged::choice(Some(got), correct, names_only(answer, options, *right))
}

pub fn summarize(pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let rows = rows_by("subtask", pairs, |i| Some(i.category.clone()));
    let values: Vec<Option<f64>> = rows.iter().map(|r| r.value).collect();
    let stricts: Vec<Option<f64>> = rows.iter().map(|r| r.strict).collect();
    BenchSummary {
        benchmark: Benchmark::Blink,
        metric: "mean over the spatial subtasks".into(),
        overall: mean_of(&values),
        strict_overall: mean_of(&stricts),
        rows,
        notes: vec![
            "Prompt and letter matching of Cambrian-1's BLINK evaluation; BLINK's GPT-3.5 option matcher is not \
             used (offline)."
                .into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cambrian_blink_extraction() {
        assert_eq!(extract("(A)"), "a");
        assert_eq!(extract("B. Point B is closer."), "b");
        assert_eq!(extract("A and B"), "a");
        assert_eq!(extract("Sorry."), "sorry");
        assert_eq!(extract(""), "");
    }
}
