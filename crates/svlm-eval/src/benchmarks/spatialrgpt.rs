//! SpatialRGPT-Bench (Cheng et al., NeurIPS 2024).

use super::{default_root, read_json_rows, resolve, structured};
use crate::dataset::{EvalItem, EvalSet};
use anyhow::Result;
use serde_json::Value;
use std::path::Path;
use svlm_answers::{parse_choice, parse_clock, parse_length, parse_yes_no};
use svlm_synth::record::Truth;

/// Reads SpatialRGPT-Bench (a JSON array or JSONL; fields may be JSON or Python-literal strings, as in the Hugging
/// Face export). Each human/gpt pair of `conversations` is one item, kind = `qa_info.category`. The question is
/// `text_q` (regions named "Region [i]") for the first pair, and the conversation turn with each `<mask>` replaced
/// by "Region [i]" for later ones. Image: `image_info.file_path` under `image_root` (default: the file's folder).
///
/// The benchmark stores its truth as answer text, so the truth is read from it with the same parsers used on model
/// answers: `*_predicate` -> yes/no, `*_choice` -> which of "Region [0]", "Region [1]", ... (one per box),
/// `direction` -> clock hour, other quantitative categories (`distance_data`, `width_data`, ...) -> a length.
/// Rows whose reference answer cannot be read are skipped and counted; JSONL lines that are not JSON are listed as
/// bad rows and the rest is read.
pub fn read_spatialrgpt(path: &Path, image_root: Option<&Path>) -> Result<EvalSet> {
    let root = default_root(path, image_root);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spatialrgpt".into());
    let mut set = EvalSet::new(name);
    let (rows, malformed) = read_json_rows(path)?;
    for bad in malformed {
        set.bad(bad.location, bad.reason);
    }
    for (index, (location, row)) in rows.into_iter().enumerate() {
        match read_row(&row, index, &root) {
            Ok(items) => set.items.extend(items.into_iter().map(|item| EvalItem {
                location: location.clone(),
                ..item
            })),
            Err(reason) => set.skip(location, reason),
        }
    }
    Ok(set)
}

fn field(row: &Value, key: &str) -> Option<Value> {
    row.get(key).and_then(structured)
}

fn read_row(row: &Value, index: usize, root: &Path) -> Result<Vec<EvalItem>, String> {
    let id = match row.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => format!("row{index}"),
    };
    let qa_info = field(row, "qa_info").ok_or("missing or unreadable qa_info")?;
    let category = qa_info
        .get("category")
        .and_then(Value::as_str)
        .ok_or("qa_info has no category")?
        .to_string();
    let image_info = field(row, "image_info").ok_or("missing or unreadable image_info")?;
    let file_path = image_info
        .get("file_path")
        .and_then(Value::as_str)
        .ok_or("image_info has no file_path")?;
    let regions: Vec<[f64; 4]> = match field(row, "bbox") {
        Some(Value::Array(boxes)) => boxes.iter().filter_map(box_of).collect(),
        _ => Vec::new(),
    };
    let conversations = field(row, "conversations").ok_or("missing or unreadable conversations")?;
    let turns = conversations
        .as_array()
        .ok_or("conversations is not a list")?;
    let text_q = row.get("text_q").and_then(Value::as_str);

    let mut items = Vec::new();
    let mut pending: Option<String> = None;
    let mut pair = 0;
    for turn in turns {
        let from = turn.get("from").and_then(Value::as_str).unwrap_or_default();
        let value = turn
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match from {
            "human" | "user" => pending = Some(value.to_string()),
            "gpt" | "assistant" => {
                let Some(raw_question) = pending.take() else {
                    continue;
                };
                let question = match (pair, text_q) {
                    (0, Some(q)) => q.trim().to_string(),
                    _ => name_regions(&raw_question),
                };
                let region_count = regions.len().max(count_regions(&question)).max(2);
                let truth = truth_from_answer(&category, value, region_count).ok_or_else(|| {
                    format!("cannot read the reference answer {value:?} as {category}")
                })?;
                items.push(EvalItem {
                    id: format!("{id}#{pair}"),
                    image: resolve(root, file_path),
                    question,
                    kind: category.clone(),
                    truth,
                    reference_answer: Some(value.to_string()),
                    regions: regions.clone(),
                    location: String::new(),
                });
                pair += 1;
            }
            _ => {}
        }
    }
    if items.is_empty() {
        return Err("no question/answer pair in conversations".into());
    }
    Ok(items)
}

fn box_of(v: &Value) -> Option<[f64; 4]> {
    let a = v.as_array()?;
    if a.len() != 4 {
        return None;
    }
    Some([
        a[0].as_f64()?,
        a[1].as_f64()?,
        a[2].as_f64()?,
        a[3].as_f64()?,
    ])
}

/// "<image>\nIs <mask> behind <mask>?" -> "Is Region [0] behind Region [1]?"
fn name_regions(question: &str) -> String {
    let text = question.replace("<image>\n", "").replace("<image>", "");
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut k = 0;
    while let Some(pos) = rest.find("<mask>") {
        out.push_str(&rest[..pos]);
        out.push_str(&format!("Region [{k}]"));
        k += 1;
        rest = &rest[pos + "<mask>".len()..];
    }
    out.push_str(rest);
    out.replace(" <depth>", "").trim().to_string()
}

fn count_regions(question: &str) -> usize {
    (0..16)
        .take_while(|k| question.contains(&format!("Region [{k}]")))
        .count()
}

/// The truth a SpatialRGPT category asks for, read from the benchmark's answer text.
pub(crate) fn truth_from_answer(
    category: &str,
    answer: &str,
    region_count: usize,
) -> Option<Truth> {
    if category.ends_with("_predicate") {
        parse_yes_no(answer).map(|value| Truth::Bool { value })
    } else if category.ends_with("_choice") {
        let options: Vec<String> = (0..region_count).map(|k| format!("Region [{k}]")).collect();
        let index = parse_choice(answer, &options)?;
        Some(Truth::Choice {
            value: options[index].clone(),
            options,
        })
    } else if category == "direction" {
        parse_clock(answer).map(|hour| Truth::Clock { hour })
    } else {
        parse_length(answer).map(|l| Truth::Length { meters: l.meters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_masks_as_regions() {
        assert_eq!(
            name_regions("<image>\nIs <mask> behind <mask>?"),
            "Is Region [0] behind Region [1]?"
        );
        assert_eq!(
            name_regions("How wide is <mask> <depth>?"),
            "How wide is Region [0]?"
        );
        assert_eq!(count_regions("Is Region [0] behind Region [1]?"), 2);
    }

    #[test]
    fn truth_by_category() {
        assert_eq!(
            truth_from_answer("behind_predicate", "No.", 2),
            Some(Truth::Bool { value: false })
        );
        assert_eq!(
            truth_from_answer("left_choice", "Region [1] is more to the left.", 2),
            Some(Truth::Choice {
                value: "Region [1]".into(),
                options: vec!["Region [0]".into(), "Region [1]".into()]
            })
        );
        assert_eq!(
            truth_from_answer(
                "direction",
                "Region [0] will find Region [1] around the 2 o'clock direction.",
                2
            ),
            Some(Truth::Clock { hour: 2 })
        );
        let height = truth_from_answer("height_data", "6.91 feet", 1);
        assert!(
            matches!(height, Some(Truth::Length { meters }) if (meters - 6.91 * 0.3048).abs() < 1e-9)
        );
        assert_eq!(truth_from_answer("width_data", "quite wide", 1), None);
    }
}
