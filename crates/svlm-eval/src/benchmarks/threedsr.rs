//! 3DSRBench (Ma et al., 2024): 3D spatial reasoning on COCO images — height, location, orientation,
//! multi-object — scored with circular evaluation.
//!
//! Release: `3dsrbench_v1_vlmevalkit_circular.tsv` (<https://huggingface.co/datasets/ccvl/3DSRBench>, the file
//! VLMEvalKit downloads for `3DSRBench`): a TSV with `index`, `qid`, `question`, `A`..`D` (unused options empty),
//! `answer` (letter), `category` (e.g. `location_above`), `image` (base64). Each question appears with its options
//! rotated; the rotations share `qid` up to a `-<n>` suffix (`ABCD1234`, `ABCD1234-1`, ...; flipped questions
//! are `...-flip`, `...-flip-1`, their own group).
//!
//! Prompt and matching: VLMEvalKit's ([`super::matching`]). Circular evaluation (VLMEvalKit's for circular
//! datasets): a group counts as right only if every rotation is answered right; overall, per main type (height,
//! location, orientation, multi_object) and per category are means over groups. The per-question ("vanilla")
//! accuracy is reported beside it, and so is the paper's FlipEval on top of CircularEval (a question, its flipped
//! twin and all their rotations right); the headline is CircularEval alone, flipped questions their own groups.

pub use super::matching::judge_exact as judge;
use super::matching::vlmevalkit_prompt;
use super::rows::text;
use super::standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, SummaryRow, Target,
    file_stem, mean_pair,
};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The paper's main types and their categories.
pub const TYPES: [(&str, &[&str]); 4] = [
    ("height", &["height_higher"]),
    (
        "location",
        &[
            "location_above",
            "location_closer_to_camera",
            "location_next_to",
        ],
    ),
    (
        "orientation",
        &[
            "orientation_in_front_of",
            "orientation_on_the_left",
            "orientation_viewpoint",
        ],
    ),
    (
        "multi_object",
        &[
            "multi_object_closer_to",
            "multi_object_facing",
            "multi_object_viewpoint_towards_object",
            "multi_object_parallel",
            "multi_object_same_direction",
        ],
    ),
];

pub fn read(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    BenchSet::from_rows(Benchmark::ThreeDsrBench, files, ctx, |r, _, root| {
        item(r, root, ctx)
    })
}

fn item(
    r: &serde_json::Value,
    root: &Path,
    ctx: &ReadContext,
) -> std::result::Result<BenchItem, String> {
    let index = text(r, "index").ok_or("no index")?;
    let question = text(r, "question").ok_or("no question")?;
    let category = text(r, "category").ok_or("no category")?;
    let mut options = Vec::new();
    for key in ["A", "B", "C", "D"] {
        match text(r, key).map(|s| s.trim().to_string()) {
            Some(o) if !o.is_empty() && o.to_lowercase() != "nan" => options.push(o),
            _ => break,
        }
    }
    if options.len() < 2 {
        return Err("fewer than two options in A..D".into());
    }
    let answer = text(r, "answer").ok_or("no answer")?;
    let answer = super::cvbench::letter_index(&answer, options.len()).ok_or_else(|| {
        format!(
            "answer {answer:?} is not a letter of the {} options",
            options.len()
        )
    })?;
    let qid = text(r, "qid").unwrap_or_else(|| index.clone());
    let cell = r
        .get("image")
        .or_else(|| r.get("image_path"))
        .ok_or("no image")?;
    let image = ctx
        .image(cell, root, &file_stem(Benchmark::ThreeDsrBench, &index))
        .map_err(|e| format!("{e:#}"))?
        .ok_or("image holds neither base64 data nor a path")?;
    let mut labels = BTreeMap::new();
    labels.insert("circular_group".into(), circular_group(&qid).to_string());
    labels.insert("qid".into(), qid);
    labels.insert("type".into(), main_type(&category).to_string());
    Ok(BenchItem {
        id: index,
        category,
        labels,
        images: vec![image],
        prompt: vlmevalkit_prompt(text(r, "hint").as_deref(), &question, &options),
        target: Target::Choice { options, answer },
    })
}

/// "ABCD1234-2" -> "ABCD1234", "ABCD1234-flip-1" -> "ABCD1234-flip"; other ids are their own group.
pub fn circular_group(qid: &str) -> &str {
    match qid.rsplit_once('-') {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => base,
        _ => qid,
    }
}

/// The question a qid belongs to with its flipped twin: "ABCD1234-flip-2" and "ABCD1234-1" -> "ABCD1234".
pub fn flip_group(qid: &str) -> &str {
    let group = circular_group(qid);
    group.strip_suffix("-flip").unwrap_or(group)
}

pub fn main_type(category: &str) -> &'static str {
    TYPES
        .iter()
        .find(|(_, cats)| cats.contains(&category))
        .map_or("other", |(t, _)| t)
}

pub fn summarize(pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    // group -> (category, all right, all strictly right)
    let mut groups: BTreeMap<&str, (&str, bool, bool)> = BTreeMap::new();
    for (item, j) in pairs {
        let key = item.label("circular_group").unwrap_or(item.id.as_str());
        let g = groups
            .entry(key)
            .or_insert((item.category.as_str(), true, true));
        g.1 &= j.correct;
        g.2 &= j.strict;
    }
    let table = |name: &str, filter: &dyn Fn(&str) -> bool, table: &str| {
        let hits: Vec<(bool, bool)> = groups
            .values()
            .filter(|(c, _, _)| filter(c))
            .map(|(_, a, s)| (*a, *s))
            .collect();
        let n = hits.len();
        let rate = |f: &dyn Fn(&(bool, bool)) -> bool| {
            (n > 0).then(|| hits.iter().filter(|h| f(h)).count() as f64 / n as f64)
        };
        SummaryRow {
            table: table.into(),
            name: name.into(),
            n,
            value: rate(&|h| h.0),
            strict: rate(&|h| h.1),
        }
    };
    let overall = table("all", &|_| true, "circular");
    let mut rows = Vec::new();
    for (t, _) in TYPES {
        let r = table(t, &|c| main_type(c) == t, "type (circular)");
        if r.n > 0 {
            rows.push(r);
        }
    }
    let mut categories: Vec<&str> = groups.values().map(|(c, _, _)| *c).collect();
    categories.sort();
    categories.dedup();
    for c in categories {
        rows.push(table(c, &|x| x == c, "category (circular)"));
    }
    // FlipEval with CircularEval: a question, its flipped twin and all their rotations must all be right.
    let mut flip_groups: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for (item, j) in pairs {
        let key = flip_group(item.label("qid").unwrap_or(item.id.as_str()));
        let g = flip_groups.entry(key).or_insert((true, true));
        g.0 &= j.correct;
        g.1 &= j.strict;
    }
    let n_flip = flip_groups.len();
    let rate = |f: &dyn Fn(&(bool, bool)) -> bool| {
        (n_flip > 0).then(|| flip_groups.values().filter(|g| f(g)).count() as f64 / n_flip as f64)
    };
    rows.push(SummaryRow {
        table: "circular with flip".into(),
        name: "question, flipped twin and all rotations right".into(),
        n: n_flip,
        value: rate(&|g| g.0),
        strict: rate(&|g| g.1),
    });
    let (n, vanilla, vanilla_strict) = mean_pair(pairs.iter().map(|(_, j)| *j));
    rows.push(SummaryRow {
        table: "per question".into(),
        name: "vanilla accuracy".into(),
        n,
        value: vanilla,
        strict: vanilla_strict,
    });
    BenchSummary {
        benchmark: Benchmark::ThreeDsrBench,
        metric: format!("circular accuracy over {} groups", overall.n),
        overall: overall.value,
        strict_overall: overall.strict,
        rows,
        notes: vec![
            "VLMEvalKit prompt and exact matching; a circular group is right only if all its rotations are."
                .into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circular_groups() {
        assert_eq!(circular_group("VIN6MS3J"), "VIN6MS3J");
        assert_eq!(circular_group("VIN6MS3J-1"), "VIN6MS3J");
        assert_eq!(circular_group("VIN6MS3J-flip"), "VIN6MS3J-flip");
        assert_eq!(circular_group("VIN6MS3J-flip-3"), "VIN6MS3J-flip");
        assert_eq!(flip_group("VIN6MS3J-flip-3"), "VIN6MS3J");
        assert_eq!(flip_group("VIN6MS3J-2"), "VIN6MS3J");
        assert_eq!(flip_group("VIN6MS3J"), "VIN6MS3J");
        assert_eq!(main_type("orientation_viewpoint"), "orientation");
        assert_eq!(main_type("weather"), "other");
    }
}
