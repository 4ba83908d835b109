//! Q-Spatial-Bench and SpatialRGPT-Bench under `svlm eval --benchmark`: their readers ([`super::read_qspatial`],
//! [`super::read_spatialrgpt`]) give svlm truths, scored by `score_answer`, summarised as their papers do.
//!
//! - Q-Spatial-Bench (Liao et al., EMNLP 2024; <https://github.com/andrewliao11/Q-Spatial-Bench-code>): prompted
//!   as the code repository's zero-shot setting (`prompt_templates/system_prompt.txt`, which asks for the answer as
//!   `\scalar{..} \distance_unit{..}`, then `zero_shot_prompt.txt`: "Question: ..." and "Let's think step by
//!   step."; svlm's answerers take no system turn, so the system prompt leads the user turn). Read as the
//!   repository's `QSpatialEvaluator` (`examples/evaluate_success_rate.ipynb`): the numbers in the last
//!   `scalar{..}` box averaged, the unit from the last `distance_unit{..}` box (meters/m/metre(s), centimeters/cm,
//!   feet/foot/ft, inch(es)/in, mm; any other unit is taken as centimetres, as there), right when
//!   `max(pred / truth, truth / pred) < 2`. A reply without both boxes scores wrong. Success rate per split and
//!   question type.
//! - SpatialRGPT-Bench (Cheng et al., NeurIPS 2024; <https://github.com/AnjieCheng/SpatialRGPT>): the tables of its
//!   `scripts/srgpt/eval/evaluate_spatial_with_gpt4.py`: qualitative accuracy per relation pair (below/above,
//!   left/right, big/small, tall/short, wide/thin, behind/front) and pooled; quantitative success rate (within
//!   +-25% of the truth; the clock direction within +-1 hour) and mean absolute relative error per measure (direct,
//!   horizontal and vertical distance, width, height, direction) and pooled. The script judges free-form answers
//!   with GPT-4; here svlm's answer parsers read them. The regions are drawn on the image ([`super::regions`]) and
//!   named in the prompt, since svlm's models take no region inputs. The headline pools every question.

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

/// The Q-Spatial-Bench code repository's `prompt_templates/system_prompt.txt`.
pub const QSPATIAL_SYSTEM_PROMPT: &str = "You will be provided with a question and a 2D image. The question involves \
measuring the precise distance in 3D space through a 2D image. You will answer the question by providing a numeric \
answer consisting of a scalar and a distance unit in the format of \"\"\"\\scalar{scalar} \\distance_unit{distance unit}\"\"\" \
at the end of your response.";

/// The zero-shot prompt: the system prompt, then `prompt_templates/zero_shot_prompt.txt` filled in.
pub fn qspatial_prompt(question: &str) -> String {
    format!("{QSPATIAL_SYSTEM_PROMPT}\nQuestion: {question}\nLet's think step by step.")
}

pub fn read_qspatial(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    let mut set = BenchSet::new(Benchmark::QSpatial);
    for file in files {
        let eval = super::read_qspatial(file, ctx.image_root.as_deref(), Some(&ctx.image_cache))?;
        push_items(&mut set, eval, |item| {
            Ok(Some((item.image.clone(), qspatial_prompt(&item.question))))
        });
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
            let note = legend(item.regions.len());
            Ok(Some((drawn, format!("{}\n{note}", item.question))))
        });
    }
    set.check_unique_ids()?;
    Ok(set)
}

/// Turns an [`EvalSet`] into benchmark items; `prompted` may give the image and prompt to ask (default: the item's
/// image and question). An item it fails for (an unreadable image) is skipped and counted.
fn push_items(
    set: &mut BenchSet,
    eval: EvalSet,
    prompted: impl Fn(&crate::dataset::EvalItem) -> Result<Option<(PathBuf, String)>>,
) {
    for skip in eval.skipped {
        set.skipped.push(skip);
    }
    let prefix = eval.name;
    for item in eval.items {
        let (image, prompt) = match prompted(&item) {
            Ok(Some(asked)) => asked,
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
    if let (Benchmark::QSpatial, Truth::Length { meters }) = (benchmark, truth) {
        return judge_qspatial(*meters, answer);
    }
    let score = score_answer(truth, answer);
    let correct = match (benchmark, truth) {
        (Benchmark::SpatialRgpt, Truth::Length { .. }) => {
            score.ratio.is_some_and(within_25_percent)
        }
        _ => score.correct,
    };
    let extracted = score.parsed.as_ref().map(|p| format!("{p:?}"));
    let mut judged = Judged::choice(extracted, correct, score.is_valid());
    judged.relative_error = score.relative_error;
    judged
}

/// `QSpatialEvaluator.evaluate`: success when the boxed answer is within a factor of two of the truth (strictly).
fn judge_qspatial(truth_m: f64, answer: &str) -> Judged {
    let truth_cm = truth_m * 100.0;
    let Some(pred_cm) = qspatial_reply_cm(answer) else {
        return Judged::choice(None, false, false);
    };
    let correct = pred_cm > 0.0 && (pred_cm / truth_cm).max(truth_cm / pred_cm) < 2.0;
    let mut judged = Judged::choice(Some(format!("{pred_cm} cm")), correct, correct);
    judged.relative_error = Some((pred_cm - truth_cm).abs() / truth_cm);
    judged
}

/// The reply's `\scalar{..} \distance_unit{..}` answer in centimetres, read as the Q-Spatial-Bench evaluator reads it;
/// `None` without both boxes or without a number in the scalar box.
pub fn qspatial_reply_cm(answer: &str) -> Option<f64> {
    let scalar = boxes(answer, "scalar{").pop()?;
    let unit = boxes(answer, "distance_unit{").pop()?;
    let numbers = decimal_numbers(&scalar);
    if numbers.is_empty() {
        return None;
    }
    let value = numbers.iter().sum::<f64>() / numbers.len() as f64;
    Some(value * qspatial_cm_per_unit(&unit))
}

/// Python's `re.findall(r'<opening>([^}]*)}', text)`.
fn boxes(text: &str, opening: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(opening) {
        let inside = &rest[start + opening.len()..];
        let Some(end) = inside.find('}') else { break };
        found.push(inside[..end].to_string());
        rest = &inside[end + 1..];
    }
    found
}

/// Python's `re.findall(r'\d+\.?\d*', text)` as floats.
fn decimal_numbers(text: &str) -> Vec<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut numbers = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
        let number: String = chars[start..i].iter().collect();
        if let Ok(value) = number.parse() {
            numbers.push(value);
        }
    }
    numbers
}

/// `QSpatialEvaluator._get_multiplier`: centimetres per unit; an unknown unit counts as centimetres.
fn qspatial_cm_per_unit(unit: &str) -> f64 {
    match unit.to_lowercase().as_str() {
        "meters" | "meter" | "m" | "metre" | "metres" => 100.0,
        "centimeters" | "centimeter" | "cm" => 1.0,
        "feet" | "foot" | "ft" => 30.48,
        "inch" | "inches" | "in" => 2.54,
        "mm" => 0.1,
        _ => 1.0,
    }
}

pub fn summarize(benchmark: Benchmark, pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let (_, overall, strict) = mean_pair(pairs.iter().map(|(_, j)| *j));
    match benchmark {
        Benchmark::QSpatial => {
            let mut rows = rows_by("split", pairs, |i| i.label("split").map(str::to_string));
            rows.extend(rows_by("question type", pairs, |i| {
                Some(i.category.clone())
            }));
            let unread = pairs.iter().filter(|(_, j)| j.extracted.is_none()).count();
            BenchSummary {
                benchmark,
                metric: "success rate (within a factor of two)".into(),
                overall,
                strict_overall: strict,
                rows,
                notes: vec![
                    "Zero-shot prompt and answer reading of the Q-Spatial-Bench code repository; success = \
                     max(answer / truth, truth / answer) < 2."
                        .into(),
                    format!(
                        "{unread} of {} answers hold no \\scalar{{..}} \\distance_unit{{..}} answer: they score wrong.",
                        pairs.len()
                    ),
                ],
            }
        }
        _ => summarize_spatialrgpt(pairs, overall, strict),
    }
}

/// SpatialRGPT-Bench's qualitative relation pair of a category, as its evaluation script groups them.
fn relation_pair(category: &str) -> Option<&'static str> {
    let has = |words: [&str; 2]| words.iter().any(|w| category.contains(w));
    [
        (["short", "tall"], "tall/short"),
        (["left", "right"], "left/right"),
        (["below", "above"], "below/above"),
        (["behind", "front"], "behind/front"),
        (["big", "small"], "big/small"),
        (["wide", "thin"], "wide/thin"),
    ]
    .into_iter()
    .find(|(words, _)| has(*words))
    .map(|(_, pair)| pair)
}

/// SpatialRGPT-Bench's name for a quantitative category.
fn measure(category: &str) -> Option<&'static str> {
    Some(match category {
        "distance_data" => "direct_distance",
        "horizontal_distance_data" => "horizontal_distance",
        "vertical_distance_data" => "vertical_distance",
        "width_data" => "width",
        "height_data" => "height",
        "direction" => "direction",
        _ => return None,
    })
}

fn is_qualitative(item: &BenchItem) -> bool {
    item.category.ends_with("_predicate") || item.category.ends_with("_choice")
}

fn summarize_spatialrgpt(
    pairs: &[(&BenchItem, &Judged)],
    overall: Option<f64>,
    strict: Option<f64>,
) -> BenchSummary {
    let mut rows = rows_by("qualitative accuracy", pairs, |i| {
        is_qualitative(i).then(|| relation_pair(&i.category).unwrap_or("other").to_string())
    });
    rows.extend(rows_by("qualitative accuracy", pairs, |i| {
        is_qualitative(i).then(|| "all qualitative".to_string())
    }));
    rows.extend(rows_by("quantitative success rate", pairs, |i| {
        (!is_qualitative(i)).then(|| measure(&i.category).unwrap_or("other").to_string())
    }));
    rows.extend(rows_by("quantitative success rate", pairs, |i| {
        (!is_qualitative(i)).then(|| "all quantitative".to_string())
    }));
    // Mean |answer - truth| / truth over the lengths that were read (the script's abs_rel).
    let mut errors: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (item, judged) in pairs {
        if let (Some(name), Some(e)) = (measure(&item.category), judged.relative_error) {
            errors.entry(name).or_default().push(e);
        }
    }
    rows.extend(errors.into_iter().map(|(name, e)| {
        let mean = e.iter().sum::<f64>() / e.len() as f64;
        SummaryRow {
            table: "quantitative mean relative error (lower is better)".into(),
            name: name.to_string(),
            n: e.len(),
            value: Some(mean),
            strict: Some(mean),
        }
    }));
    BenchSummary {
        benchmark: Benchmark::SpatialRgpt,
        metric: "share right over all questions (qualitative accuracy; quantitative within +-25%)".into(),
        overall,
        strict_overall: strict,
        rows,
        notes: vec![
            "Regions drawn on the image with coloured, numbered outlines and named in the prompt (no region \
             inputs); answers read by svlm's parsers instead of the paper's GPT-4 judge. The paper prints the \
             qualitative and quantitative tables separately; the headline pools them."
                .into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qspatial_boxed_answers() {
        let cm = |a: &str| qspatial_reply_cm(a);
        assert_eq!(cm("\\scalar{1.5} \\distance_unit{meters}"), Some(150.0));
        // the last box of each kind counts; numbers in a box are averaged
        assert_eq!(
            cm("\\scalar{9} \\distance_unit{m} no: \\scalar{2 to 4} \\distance_unit{feet}"),
            Some(3.0 * 30.48)
        );
        // units the evaluator does not know count as centimetres
        assert_eq!(cm("\\scalar{3} \\distance_unit{yards}"), Some(3.0));
        assert_eq!(cm("\\scalar{3} \\distance_unit{Inches}"), Some(3.0 * 2.54));
        // missing boxes, an unclosed box, no number: unread
        assert_eq!(cm("about 2 meters"), None);
        assert_eq!(cm("\\scalar{2} meters"), None);
        assert_eq!(cm("\\distance_unit{m} \\scalar{2"), None);
        assert_eq!(cm("\\scalar{two} \\distance_unit{m}"), None);
        assert_eq!(decimal_numbers("1.5-2. and 3"), vec![1.5, 2.0, 3.0]);
    }

    #[test]
    fn qspatial_factor_two_is_strict() {
        // truth 1 m
        assert!(judge_qspatial(1.0, "\\scalar{1.99} \\distance_unit{m}").correct);
        assert!(!judge_qspatial(1.0, "\\scalar{2} \\distance_unit{m}").correct);
        assert!(!judge_qspatial(1.0, "\\scalar{50} \\distance_unit{cm}").correct);
        assert!(judge_qspatial(1.0, "\\scalar{51} \\distance_unit{cm}").correct);
        assert!(!judge_qspatial(1.0, "\\scalar{0} \\distance_unit{m}").correct);
        assert!(!judge_qspatial(1.0, "1 m").correct);
    }

    #[test]
    fn spatialrgpt_groups() {
        assert_eq!(relation_pair("tall_predicate"), Some("tall/short"));
        assert_eq!(relation_pair("left_choice"), Some("left/right"));
        assert_eq!(relation_pair("below_predicate"), Some("below/above"));
        assert_eq!(relation_pair("front_predicate"), Some("behind/front"));
        assert_eq!(relation_pair("small_choice"), Some("big/small"));
        assert_eq!(relation_pair("thin_predicate"), Some("wide/thin"));
        assert_eq!(measure("distance_data"), Some("direct_distance"));
        assert_eq!(measure("direction"), Some("direction"));
        assert_eq!(measure("depth_data"), None);
    }
}
