//! BLINK (Fu et al., ECCV 2024), the two spatial subtasks: `Relative_Depth` and `Spatial_Relation`.
//!
//! Release: <https://huggingface.co/datasets/BLINK-Benchmark/BLINK>, one config per subtask
//! (`Relative_Depth/val-00000-of-00001.parquet`, `Spatial_Relation/val-...`; the test split's answers are hidden).
//! Fields: `idx`, `question`, `sub_task`, `image_1`..`image_4` (HF images, unused ones null), `choices`, `answer`
//! ("(A)"), `prompt` (question and "(A) ..." choices pre-formatted), `explanation`. The same rows as JSON/JSONL
//! with image paths are read too.
//!
//! Prompt and scoring are BLINK's own (`zeyofu/BLINK_Benchmark` `eval/test_benchmark.py`): the model is asked the
//! released `prompt` unchanged, and `analyze_answer` reads the reply: a bare letter "B" or "(B)" is that option; else
//! the "(A)".."(E)" tokens of the reply (split at whitespace) that are options decide when exactly one of them is in
//! the reply or in its last paragraph (the last paragraph wins). Any other reply goes to GPT-3.5 in BLINK's script
//! (`eval/multiple_choice.py`); that matcher cannot run offline, so such a reply scores wrong here and the summary
//! counts them. A reply is right when its option is the row's `answer`. The paper's overall is the mean over
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
        prompt,
        target: Target::Choice { options, answer },
    })
}

/// BLINK's `analyze_answer` without its GPT-3.5 fallback: the option ("(A)".."(E)") a reply names, or `None` where
/// BLINK's script would ask GPT-3.5 to match the reply.
pub fn analyze_answer(answer: &str, n_options: usize) -> Option<String> {
    const LETTERS: [&str; 5] = ["A", "B", "C", "D", "E"];
    if LETTERS.contains(&answer) {
        return Some(format!("({answer})"));
    }
    let choices: Vec<String> = LETTERS
        .iter()
        .take(n_options)
        .map(|l| format!("({l})"))
        .collect();
    if LETTERS.iter().any(|l| answer == format!("({l})")) {
        return Some(answer.to_string());
    }
    let named = |text: &str| -> Vec<String> {
        let tokens: std::collections::HashSet<&str> = text.split_whitespace().collect();
        choices
            .iter()
            .filter(|c| tokens.contains(c.as_str()))
            .cloned()
            .collect()
    };
    let anywhere = named(answer);
    let last_paragraph = named(answer.rsplit("\n\n").next().unwrap_or_default());
    match (anywhere.as_slice(), last_paragraph.as_slice()) {
        (_, [only]) if !anywhere.is_empty() => Some(only.clone()),
        ([only], _) => Some(only.clone()),
        _ => None,
    }
}

pub fn judge(item: &BenchItem, answer: &str) -> Judged {
    let Target::Choice {
        options,
        answer: right,
    } = &item.target
    else {
        return Judged::choice(None, false, false);
    };
    let got = analyze_answer(answer, options.len());
    let correct = got.as_deref() == Some(format!("({})", super::matching::letter(*right)).as_str());
    Judged::choice(got, correct, names_only(answer, options, *right))
}

pub fn summarize(pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let rows = rows_by("subtask", pairs, |i| Some(i.category.clone()));
    let unmatched = pairs.iter().filter(|(_, j)| j.extracted.is_none()).count();
    let values: Vec<Option<f64>> = rows.iter().map(|r| r.value).collect();
    let stricts: Vec<Option<f64>> = rows.iter().map(|r| r.strict).collect();
    BenchSummary {
        benchmark: Benchmark::Blink,
        metric: "mean over the spatial subtasks".into(),
        overall: mean_of(&values),
        strict_overall: mean_of(&stricts),
        rows,
        notes: vec![
            "BLINK's own prompt and answer reading (eval/test_benchmark.py analyze_answer).".into(),
            format!(
                "{unmatched} of {} answers name no single option; BLINK's script would hand them to GPT-3.5 to \
                 match, which cannot run offline: they score wrong.",
                pairs.len()
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blink_analyze_answer() {
        assert_eq!(analyze_answer("B", 2).as_deref(), Some("(B)"));
        assert_eq!(analyze_answer("(A)", 2).as_deref(), Some("(A)"));
        // a bare letter is taken as given, even one that is not an option (it then scores wrong)
        assert_eq!(analyze_answer("E", 2).as_deref(), Some("(E)"));
        assert_eq!(
            analyze_answer("Point (B) is closer to the camera.", 2).as_deref(),
            Some("(B)")
        );
        // both options in the reply, one in its last paragraph: the last paragraph decides
        assert_eq!(
            analyze_answer("(A) is lit, (B) is dark.\n\nSo (B)", 2).as_deref(),
            Some("(B)")
        );
        // both options and no deciding paragraph, letters without parentheses, option text, a refusal, nothing:
        // BLINK would ask GPT-3.5
        assert_eq!(analyze_answer("(A) or (B)", 2), None);
        assert_eq!(analyze_answer("B.", 2), None);
        assert_eq!(analyze_answer("The answer is B", 2), None);
        assert_eq!(analyze_answer("B is closer", 2), None);
        assert_eq!(analyze_answer("I cannot tell.", 2), None);
        assert_eq!(analyze_answer("", 2), None);
        // "(C)" is not an option of a two-choice question
        assert_eq!(analyze_answer("Maybe (C)", 2), None);
    }
}
