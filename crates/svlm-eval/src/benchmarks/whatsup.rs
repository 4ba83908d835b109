//! What'sUp (Kamath et al., EMNLP 2023): which caption names the spatial relation in the image.
//!
//! Release: <https://github.com/amitakamath/whatsup_vlms> (`dataset_zoo/aro_datasets.py` reads these files):
//! - `controlled_images_dataset.json` (Controlled Images A, folder `controlled_images/`) and
//!   `controlled_clevr_dataset.json` (B, `controlled_clevr/`): arrays of {`image_path`
//!   ("data/controlled_images/<obj>_<prep>_<obj>.jpeg"), `caption_options` (4 captions, the first is right)};
//! - `coco_qa_one_obj.json`, `coco_qa_two_obj.json` (COCO val2017, `val2017/<id:012>.jpg`) and
//!   `vg_qa_one_obj.json`, `vg_qa_two_obj.json` (`vg_images/<id>.jpg`): arrays of `[image_id, right caption,
//!   wrong caption]`.
//!
//! What'sUp scores contrastive models by image-caption similarity; for a generative model svlm asks the captions
//! as a multiple choice in VLMEvalKit's prompt, question "Which caption describes the image?", with the
//! captions rotated by the item's position so that the right one is not always "A", and matches the answer with
//! VLMEvalKit's rule ([`super::matching`]). The tables are the repository's: accuracy per subset and per
//! preposition, and for the controlled subsets pair accuracy (both of left/right, both of on/under or
//! in-front/behind right for an object pair, over half the images) and set accuracy (all four right, over a
//! quarter).

pub use super::matching::judge_exact as judge;
use super::matching::vlmevalkit_prompt;
use super::rows::read_rows;
use super::standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, SummaryRow, Target, mean_of,
    rows_by,
};
use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const QUESTION: &str = "Which caption describes the image?";

/// The release's annotation files and the subset each one is.
pub const FILES: [(&str, &str); 6] = [
    ("controlled_images_dataset.json", "Controlled_Images_A"),
    ("controlled_clevr_dataset.json", "Controlled_Images_B"),
    ("coco_qa_one_obj.json", "COCO_QA_one_obj"),
    ("coco_qa_two_obj.json", "COCO_QA_two_obj"),
    ("vg_qa_one_obj.json", "VG_QA_one_obj"),
    ("vg_qa_two_obj.json", "VG_QA_two_obj"),
];

pub fn read(files: &[PathBuf], ctx: &ReadContext) -> Result<BenchSet> {
    let mut set = BenchSet::new(Benchmark::WhatsUp);
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((_, subset)) = FILES.iter().find(|(f, _)| *f == name) else {
            set.skip(
                file.display().to_string(),
                "not one of What'sUp's annotation files",
            );
            continue;
        };
        let root = ctx.root_for(file);
        let (rows, malformed) = read_rows(file)?;
        for bad in malformed {
            set.skip(bad.location, bad.reason);
        }
        for (index, (location, r)) in rows.into_iter().enumerate() {
            match item(&r, subset, index, &root) {
                Ok(item) => set.items.push(item),
                Err(reason) => set.skip(location, reason),
            }
        }
    }
    set.check_unique_ids()?;
    Ok(set)
}

fn item(
    r: &Value,
    subset: &str,
    index: usize,
    root: &Path,
) -> std::result::Result<BenchItem, String> {
    let mut labels = BTreeMap::new();
    labels.insert("subset".to_string(), subset.to_string());
    let (image, captions, preposition) = if subset.starts_with("Controlled") {
        let path = r
            .get("image_path")
            .and_then(Value::as_str)
            .ok_or("no image_path")?;
        let captions: Vec<String> = r
            .get("caption_options")
            .and_then(Value::as_array)
            .ok_or("no caption_options")?
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("a caption is not text")?;
        let (first, prep, last) =
            controlled_parts(path).ok_or("image_path is not <obj>_<prep>_<obj>.<ext>")?;
        labels.insert("pair".into(), format!("{first}|{last}"));
        labels.insert("slot".into(), prep.clone());
        (controlled_image(root, path), captions, prep)
    } else {
        let a = r
            .as_array()
            .ok_or("not an [image_id, caption, caption] row")?;
        let [id, right, wrong] = a.as_slice() else {
            return Err("not an [image_id, caption, caption] row".into());
        };
        let id = match id {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return Err("image_id is not a number".into()),
        };
        let (right, wrong) = (
            right.as_str().ok_or("caption")?,
            wrong.as_str().ok_or("caption")?,
        );
        let image = if subset.starts_with("COCO") {
            root.join("val2017").join(format!("{:0>12}.jpg", id))
        } else {
            root.join("vg_images").join(format!("{id}.jpg"))
        };
        (
            image,
            vec![right.to_string(), wrong.to_string()],
            qa_preposition(subset, right),
        )
    };
    if captions.len() < 2 {
        return Err("fewer than two captions".into());
    }
    // Rotate so that the right caption (first in the release) is at position `index % n`.
    let n = captions.len();
    let answer = index % n;
    let mut options = captions.clone();
    options.rotate_right(answer);
    Ok(BenchItem {
        id: format!("{subset}:{index}"),
        category: format!("{subset}/{preposition}"),
        labels,
        images: vec![image],
        prompt: vlmevalkit_prompt(None, QUESTION, &options),
        target: Target::Choice { options, answer },
    })
}

/// "data/controlled_images/beer-bottle_left_of_armchair.jpeg" -> ("beer-bottle", "left", "armchair"); the slot is
/// the second `_` part as the repository's `evaluate_scores` takes it (left, right, on, under, in-front, behind).
fn controlled_parts(path: &str) -> Option<(String, String, String)> {
    let name = path.rsplit('/').next()?;
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let parts: Vec<&str> = stem.split('_').collect();
    if parts.len() < 3 {
        return None;
    }
    Some((
        parts[0].into(),
        parts[1].into(),
        parts[parts.len() - 1].into(),
    ))
}

/// The release's paths start with "data/" (relative to the repository); tried as given, then without it.
fn controlled_image(root: &Path, path: &str) -> PathBuf {
    let direct = super::resolve(root, path);
    match path.strip_prefix("data/") {
        Some(rest) if !direct.exists() => root.join(rest),
        _ => direct,
    }
}

/// The preposition of a COCO/VG QA caption as the repository reads it (`COCO_QA` / `VG_QA` `all_prepositions`): the
/// last word for one object; for two, the first phrase the caption contains, else "below" (COCO) or "top" (VG).
fn qa_preposition(subset: &str, right: &str) -> String {
    if subset.ends_with("one_obj") {
        return right
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
    }
    let (needles, otherwise): (&[(&str, &str)], &str) = if subset.starts_with("COCO") {
        (
            &[
                ("left of", "left"),
                ("right of", "right"),
                ("above", "above"),
            ],
            "below",
        )
    } else {
        (
            &[
                ("left of", "left"),
                ("right of", "right"),
                ("front of", "front"),
                ("behind", "behind"),
            ],
            "top",
        )
    };
    needles
        .iter()
        .find(|(needle, _)| right.contains(needle))
        .map_or(otherwise, |(_, name)| name)
        .to_string()
}

pub fn summarize(pairs: &[(&BenchItem, &Judged)]) -> BenchSummary {
    let mut rows = rows_by("subset", pairs, |i| i.label("subset").map(str::to_string));
    let subset_values: Vec<Option<f64>> = rows.iter().map(|r| r.value).collect();
    let subset_stricts: Vec<Option<f64>> = rows.iter().map(|r| r.strict).collect();
    let mut macro_rows = Vec::new();
    // The paper's Table 1: macro-averages of each dataset's subsets.
    for (name, parts) in [
        (
            "What'sUp (Controlled A, B)",
            ["Controlled_Images_A", "Controlled_Images_B"],
        ),
        (
            "COCO-spatial (one, two objects)",
            ["COCO_QA_one_obj", "COCO_QA_two_obj"],
        ),
        (
            "GQA-spatial (one, two objects)",
            ["VG_QA_one_obj", "VG_QA_two_obj"],
        ),
    ] {
        let subset = |p: &str| rows.iter().find(|r| r.name == p).cloned();
        let (a, b) = (subset(parts[0]), subset(parts[1]));
        if a.is_none() && b.is_none() {
            continue;
        }
        let get = |r: &Option<SummaryRow>, strict: bool| {
            r.as_ref()
                .and_then(|r| if strict { r.strict } else { r.value })
        };
        macro_rows.push(SummaryRow {
            table: "dataset (macro-average of its subsets)".into(),
            name: name.into(),
            n: a.as_ref().map_or(0, |r| r.n) + b.as_ref().map_or(0, |r| r.n),
            value: mean_of(&[get(&a, false), get(&b, false)]),
            strict: mean_of(&[get(&a, true), get(&b, true)]),
        });
    }
    rows.append(&mut macro_rows);
    rows.extend(rows_by("preposition", pairs, |i| Some(i.category.clone())));
    for subset in ["Controlled_Images_A", "Controlled_Images_B"] {
        rows.extend(pair_and_set(subset, pairs));
    }
    BenchSummary {
        benchmark: Benchmark::WhatsUp,
        metric: "mean of the subsets' accuracies".into(),
        overall: mean_of(&subset_values),
        strict_overall: mean_of(&subset_stricts),
        rows,
        notes: vec![
            "Captions asked as a multiple choice (VLMEvalKit prompt and matching), rotated per item; What'sUp's \
             own protocol ranks captions by image-text similarity."
                .into(),
        ],
    }
}

/// The repository's pair and set accuracy of a controlled subset (nothing when the subset is absent).
fn pair_and_set(subset: &str, pairs: &[(&BenchItem, &Judged)]) -> Vec<SummaryRow> {
    let items: Vec<&(&BenchItem, &Judged)> = pairs
        .iter()
        .filter(|(i, _)| i.label("subset") == Some(subset))
        .collect();
    if items.is_empty() {
        return Vec::new();
    }
    let vertical = if subset.ends_with('A') {
        ["on", "under"]
    } else {
        ["in-front", "behind"]
    };
    let rates = |strict: bool| {
        let mut by_pair: BTreeMap<&str, BTreeMap<&str, bool>> = BTreeMap::new();
        for (item, j) in &items {
            let (Some(pair), Some(slot)) = (item.label("pair"), item.label("slot")) else {
                continue;
            };
            by_pair
                .entry(pair)
                .or_default()
                .insert(slot, if strict { j.strict } else { j.correct });
        }
        let right = |slots: &BTreeMap<&str, bool>, s: &str| slots.get(s).copied().unwrap_or(false);
        let mut pair_correct = 0usize;
        let mut set_correct = 0usize;
        for slots in by_pair.values() {
            pair_correct += usize::from(right(slots, "left") && right(slots, "right"));
            pair_correct += usize::from(right(slots, vertical[0]) && right(slots, vertical[1]));
            set_correct += usize::from(slots.values().filter(|v| **v).count() == 4);
        }
        let n = items.len() as f64;
        (
            pair_correct as f64 / (n / 2.0),
            set_correct as f64 / (n / 4.0),
        )
    };
    let (pair, set) = rates(false);
    let (pair_s, set_s) = rates(true);
    let row = |name: &str, n: usize, v: f64, s: f64| SummaryRow {
        table: format!("{subset} pairs and sets"),
        name: name.into(),
        n,
        value: Some(v),
        strict: Some(s),
    };
    vec![
        row("pair accuracy", items.len() / 2, pair, pair_s),
        row("set accuracy", items.len() / 4, set, set_s),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controlled_file_names() {
        assert_eq!(
            controlled_parts("data/controlled_images/beer-bottle_left_of_armchair.jpeg"),
            Some(("beer-bottle".into(), "left".into(), "armchair".into()))
        );
        assert_eq!(
            controlled_parts("data/controlled_clevr/cube_in-front_of_sphere.png"),
            Some(("cube".into(), "in-front".into(), "sphere".into()))
        );
        assert_eq!(controlled_parts("x.png"), None);
        assert_eq!(
            qa_preposition("COCO_QA_one_obj", "A dog on the left"),
            "left"
        );
        assert_eq!(
            qa_preposition("COCO_QA_two_obj", "A dog to the right of a cat"),
            "right"
        );
        // each file's own phrases: VG's two-object captions are not read for "above" (else "top"), COCO's not
        // for "behind" (else "below")
        assert_eq!(qa_preposition("VG_QA_two_obj", "A lamp above a bed"), "top");
        assert_eq!(
            qa_preposition("VG_QA_two_obj", "A cat behind a dog"),
            "behind"
        );
        assert_eq!(
            qa_preposition("COCO_QA_two_obj", "A cat behind a dog"),
            "below"
        );
        assert_eq!(
            qa_preposition("COCO_QA_two_obj", "A cup above a plate"),
            "above"
        );
    }
}
