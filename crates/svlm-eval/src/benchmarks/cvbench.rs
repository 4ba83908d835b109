//! CV-Bench (Tong et al., "Cambrian-1", NeurIPS 2024): 2D relation and counting (ADE20K, COCO), 3D depth order and
//! relative distance (Omni3D).
//!
//! Release: <https://huggingface.co/datasets/nyu-visionx/CV-Bench> — `test_2d.parquet` / `test_3d.parquet`
//! (images embedded) or `test_2d.jsonl` / `test_3d.jsonl` with `img/` (the `filename` field). Fields (dataset card):
//! `idx`, `type` (2D/3D), `task` (Count, Relation, Depth, Distance), `image`, `question`, `choices`, `answer`
//! ("(A)"), `prompt` (question and choices pre-formatted), `filename`, `source` (ADE20K, COCO, Omni3D), ...
//!
//! Prompt: `prompt` + "\n" + "Answer with the option's letter from the given choices directly." (the
//! `--question_extension` of Cambrian's evaluation, `cambrian-mllm/cambrian` `eval/eval/omni/omni_eval.py`).
//!
//! Scoring: Cambrian's `extract_mcq_answer` (`eval/eval/omni/omni_test.py`): lower-case, keep what follows the last
//! "answer is" / "answer is:" / "answer:", strip, drop trailing `.:,`, a leading "(" and a trailing ")", keep the
//! first character if longer; right if that is the answer's letter or the right choice's text. The overall number
//! is the dataset card's formula: `((acc_ADE20K + acc_COCO) / 2 + acc_Omni3D) / 2`.

use super::rows::{string_list, text};
use super::standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, SummaryRow, Target,
    file_stem, mean_of, names_only, row, rows_by,
};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const INSTRUCTION: &str = "Answer with the option's letter from the given choices directly.";

pub fn read(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    BenchSet::from_rows(Benchmark::CvBench, files, ctx, |r, _, root| {
        item(r, root, ctx)
    })
}

fn item(
    r: &serde_json::Value,
    root: &std::path::Path,
    ctx: &ReadContext,
) -> std::result::Result<BenchItem, String> {
    let idx = text(r, "idx").ok_or("no idx")?;
    let task = text(r, "task").ok_or("no task")?;
    let prompt = text(r, "prompt").ok_or("no prompt")?;
    let options = string_list(r, "choices").ok_or("no choices list")?;
    let answer = text(r, "answer").ok_or("no answer")?;
    let answer = letter_index(&answer, options.len()).ok_or_else(|| {
        format!(
            "answer {answer:?} is not one of the {} choices' letters",
            options.len()
        )
    })?;
    let source = text(r, "source").ok_or("no source")?;
    let stem = file_stem(Benchmark::CvBench, &idx);
    let cell = r
        .get("image")
        .filter(|v| !v.is_null())
        .or_else(|| r.get("filename"))
        .ok_or("neither image nor filename")?;
    let image = ctx
        .image(cell, root, &stem)
        .map_err(|e| format!("{e:#}"))?
        .ok_or("no image (neither embedded bytes nor a path)")?;
    let mut labels = BTreeMap::new();
    labels.insert("source".to_string(), source);
    if let Some(t) = text(r, "type") {
        labels.insert("type".to_string(), t);
    }
    Ok(BenchItem {
        id: idx,
        category: task,
        labels,
        images: vec![image],
        prompt: format!("{prompt}\n{INSTRUCTION}"),
        target: Target::Choice { options, answer },
    })
}

/// "(B)" -> 1 (also "B").
pub(crate) fn letter_index(answer: &str, n_options: usize) -> Option<usize> {
    let t = answer
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    let mut chars = t.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() || !c.is_ascii_uppercase() {
        return None;
    }
    let i = (c as u8 - b'A') as usize;
    (i < n_options).then_some(i)
}

/// Cambrian's `extract_mcq_answer`.
pub fn extract(answer: &str) -> String {
    let mut t = answer.to_lowercase().trim().to_string();
    for keyword in ["answer is", "answer is:", "answer:"] {
        if let Some(last) = t.rsplit(keyword).next().filter(|_| t.contains(keyword)) {
            t = last.to_string();
        }
    }
    let t = t
        .trim()
        .trim_end_matches(['.', ':', ','])
        .trim_start_matches('(')
        .trim_end_matches(')');
    match t.chars().nth(1) {
        Some(_) => t.chars().take(1).collect(),
        None => t.to_string(),
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
    let got = extract(answer);
    let letter = super::matching::letter(*right).to_lowercase();
    let correct = got == letter || got == options[*right];
    Judged::choice(Some(got), correct, names_only(answer, options, *right))
}

pub fn summarize(pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let mut rows = rows_by("task", pairs, |i| Some(i.category.clone()));
    rows.extend(rows_by("source", pairs, |i| {
        i.label("source").map(str::to_string)
    }));
    let source = |name: &str| row(&rows, "source", name).cloned();
    let (ade, coco, omni) = (source("ADE20K"), source("COCO"), source("Omni3D"));
    let value = |r: &Option<SummaryRow>, strict: bool| {
        r.as_ref()
            .and_then(|r| if strict { r.strict } else { r.value })
    };
    let n = |r: &Option<SummaryRow>| r.as_ref().map_or(0, |r| r.n);
    let two_d = |s| mean_of(&[value(&ade, s), value(&coco, s)]);
    let three_d = |s| value(&omni, s);
    let overall = |s| mean_of(&[two_d(s), three_d(s)]);
    let summary_rows = [
        SummaryRow {
            table: "type".into(),
            name: "2D".into(),
            n: n(&ade) + n(&coco),
            value: two_d(false),
            strict: two_d(true),
        },
        SummaryRow {
            table: "type".into(),
            name: "3D".into(),
            n: n(&omni),
            value: three_d(false),
            strict: three_d(true),
        },
    ];
    let (overall_value, overall_strict) = (overall(false), overall(true));
    rows.extend(summary_rows);
    BenchSummary {
        benchmark: Benchmark::CvBench,
        metric: "((ADE20K + COCO) / 2 + Omni3D) / 2".into(),
        overall: overall_value,
        strict_overall: overall_strict,
        rows,
        notes: vec![
            "Prompt and scoring of Cambrian-1's evaluation (cambrian-mllm/cambrian eval/eval/omni); overall as the \
             dataset card's formula. n/a where a source is missing."
                .into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cambrian_extraction() {
        assert_eq!(extract("(B)"), "b");
        assert_eq!(extract("B."), "b");
        assert_eq!(extract("The answer is (C)."), "c");
        assert_eq!(extract("Answer: a"), "a");
        assert_eq!(extract("  3 "), "3");
        // The official rule keeps the first character: a refusal and a non-option read as some letter.
        assert_eq!(extract("I cannot tell"), "i");
        assert_eq!(extract(""), "");
        assert_eq!(letter_index("(B)", 2), Some(1));
        assert_eq!(letter_index("(C)", 2), None);
        assert_eq!(letter_index("BC", 4), None);
    }
}
