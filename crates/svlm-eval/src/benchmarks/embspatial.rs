//! EmbSpatial-Bench (Du et al., ACL 2024): egocentric spatial relations (close, far, above, under, left, right)
//! in MP3D and AI2-THOR scenes, 4 options.
//!
//! Release: `embspatial_bench.json` (<https://github.com/mengfeidu/EmbSpatial-Bench>, mirrored on Hugging Face as
//! `Phineas476/EmbSpatial-Bench`): a JSON array of {`question_id`, `image` (base64 JPEG), `question`,
//! `answer_options` (list), `answer` (0-based index), `relation`, `data_source`, `objects`}.
//!
//! The benchmark's repository ships no evaluation script; its numbers are reproduced in VLMEvalKit-based
//! toolkits (EASI, `oscarqjh/EASI` `docs/Benchmark_Verification.md`), so the prompt and the matching are
//! VLMEvalKit's ([`super::matching`]). Overall = accuracy over all questions; the table is per relation.

pub use super::matching::judge_exact as judge;
use super::matching::vlmevalkit_prompt;
use super::rows::{string_list, text};
use super::standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, Target, file_stem,
    mean_pair, rows_by,
};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn read(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    BenchSet::from_rows(Benchmark::EmbSpatial, files, ctx, |r, _, root| {
        item(r, root, ctx)
    })
}

fn item(
    r: &serde_json::Value,
    root: &Path,
    ctx: &ReadContext,
) -> std::result::Result<BenchItem, String> {
    let id = text(r, "question_id").ok_or("no question_id")?;
    let question = text(r, "question").ok_or("no question")?;
    let options = string_list(r, "answer_options").ok_or("no answer_options list")?;
    let answer = r
        .get("answer")
        .and_then(|a| {
            a.as_u64()
                .or_else(|| a.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .ok_or("answer is not an option index")? as usize;
    if answer >= options.len() {
        return Err(format!("answer {answer} but {} options", options.len()));
    }
    let relation = text(r, "relation").ok_or("no relation")?;
    let cell = r.get("image").ok_or("no image")?;
    let image = ctx
        .image(cell, root, &file_stem(Benchmark::EmbSpatial, &id))
        .map_err(|e| format!("{e:#}"))?
        .ok_or("image holds neither base64 data nor a path")?;
    let mut labels = BTreeMap::new();
    if let Some(source) = text(r, "data_source") {
        labels.insert("data_source".into(), source);
    }
    Ok(BenchItem {
        id,
        category: relation,
        labels,
        images: vec![image],
        prompt: vlmevalkit_prompt(None, &question, &options),
        target: Target::Choice { options, answer },
    })
}

pub fn summarize(pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let rows = rows_by("relation", pairs, |i| Some(i.category.clone()));
    let (_, overall, strict) = mean_pair(pairs.iter().map(|(_, j)| *j));
    BenchSummary {
        benchmark: Benchmark::EmbSpatial,
        metric: "accuracy".into(),
        overall,
        strict_overall: strict,
        rows,
        notes: vec!["VLMEvalKit prompt and exact matching (no LLM judge).".into()],
    }
}
