//! Q-Spatial-Bench and SpatialRGPT-Bench under `svlm eval --benchmark`: their readers ([`super::read_qspatial`],
//! [`super::read_spatialrgpt`]) give svlm truths, scored by `score_answer`, summarised as their papers do.
//!
//! - Q-Spatial-Bench (Liao et al., EMNLP 2024; <https://github.com/andrewliao11/Q-Spatial-Bench-code>): success
//!   rate = share of answers within a factor of two of the truth (delta <= 2), per split and question type. The
//!   question is asked as released.
//! - SpatialRGPT-Bench (Cheng et al., NeurIPS 2024; <https://github.com/AnjieCheng/SpatialRGPT>): qualitative
//!   questions by accuracy, quantitative ones by success rate within +-25% of the truth (and the clock direction
//!   within +-1 hour), per category. The paper judges free-form answers with GPT-4; here svlm's answer parsers
//!   read them. The regions are drawn on the image ([`super::regions`]) and named in the prompt, since svlm's
//!   models take no region inputs.

use super::regions::{draw_regions, legend};
use super::standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, SummaryRow, Target,
    file_stem, mean_pair, rows_by,
};
use crate::dataset::{EvalSet, family_of};
use crate::score::{score_answer, within_25_percent};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use svlm_synth::record::Truth;

pub fn read_qspatial(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    let mut set = BenchSet::new(Benchmark::QSpatial);
    for file in files {
        let eval = super::read_qspatial(file, ctx.image_root.as_deref(), Some(&ctx.image_cache))?;
        push_items(&mut set, eval, |_| Ok(None));
    }
    set.check_unique_ids()?;
    Ok(set)
}

pub fn read_spatialrgpt(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    let mut set = BenchSet::new(Benchmark::SpatialRgpt);
    for file in files {
        let eval = super::read_spatialrgpt(file, ctx.image_root.as_deref())?;
        push_items(&mut set, eval, |item| {
            if item.regions.is_empty() {
                return Ok(None);
            }
            let out = ctx.image_cache.join(format!(
                "{}.png",
                file_stem(Benchmark::SpatialRgpt, &item.id)
            ));
            let drawn = draw_regions(&item.image, &item.regions, &out)?;
            Ok(Some((drawn, legend(item.regions.len()))))
        });
    }
    set.check_unique_ids()?;
    Ok(set)
}

/// Turns an [`EvalSet`] into benchmark items; `overlay` may replace the image and add a prompt sentence. An item
/// whose overlay fails (an unreadable image) is skipped and counted.
fn push_items(
    set: &mut BenchSet,
    eval: EvalSet,
    overlay: impl Fn(&crate::dataset::EvalItem) -> Result<Option<(PathBuf, String)>>,
) {
    for skip in eval.skipped {
        set.skipped.push(skip);
    }
    let prefix = eval.name;
    for item in eval.items {
        let (image, prompt) = match overlay(&item) {
            Ok(Some((drawn, note))) => (drawn, format!("{}\n{note}", item.question)),
            Ok(None) => (item.image.clone(), item.question.clone()),
            Err(e) => {
                set.skip(format!("{prefix}:{}", item.id), format!("{e:#}"));
                continue;
            }
        };
        let mut labels = BTreeMap::new();
        labels.insert("family".into(), family_of(&item.truth).to_string());
        labels.insert("split".into(), prefix.clone());
        set.items.push(BenchItem {
            id: format!("{prefix}:{}", item.id),
            category: item.kind,
            labels,
            images: vec![image],
            prompt,
            target: Target::Truth { truth: item.truth },
        });
    }
}

pub fn judge(benchmark: Benchmark, item: &BenchItem, answer: &str) -> Judged {
    let Target::Truth { truth } = &item.target else {
        return Judged::choice(None, false, false);
    };
    let score = score_answer(truth, answer);
    let correct = match (benchmark, truth) {
        (Benchmark::SpatialRgpt, Truth::Length { .. }) => {
            score.ratio.is_some_and(within_25_percent)
        }
        _ => score.correct,
    };
    let extracted = score.parsed.as_ref().map(|p| format!("{p:?}"));
    Judged::choice(extracted, correct, score.is_valid())
}

pub fn summarize(benchmark: Benchmark, pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let (_, overall, strict) = mean_pair(pairs.iter().map(|(_, j)| *j));
    let mut rows: Vec<SummaryRow> =
        rows_by("family", pairs, |i| i.label("family").map(str::to_string));
    rows.extend(rows_by("category", pairs, |i| Some(i.category.clone())));
    if benchmark == Benchmark::QSpatial {
        rows.extend(rows_by("split", pairs, |i| {
            i.label("split").map(str::to_string)
        }));
    }
    let (metric, notes) = match benchmark {
        Benchmark::QSpatial => (
            "success rate (delta <= 2)",
            "Success = the answer within a factor of two of the truth; question asked as released.",
        ),
        _ => (
            "share right (qualitative accuracy; quantitative within +-25%)",
            "Regions drawn on the image with coloured, numbered outlines and named in the prompt (no region \
             inputs); answers read by svlm's parsers instead of the paper's GPT-4 judge.",
        ),
    };
    BenchSummary {
        benchmark,
        metric: metric.into(),
        overall,
        strict_overall: strict,
        rows,
        notes: vec![notes.into()],
    }
}
