//! svlm's own synthesis records (`svlm_synth::record::SpatialRecord`), one JSON object per line.

use super::{default_root, read_json_rows_lenient, resolve};
use crate::dataset::{EvalItem, EvalSet, Skip};
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use svlm_synth::record::SpatialRecord;

/// Reads a synthesis JSONL file, or every `*.jsonl` file of a folder (sorted by name). Each human/gpt pair with a
/// `spatial` truth becomes one item, id `<record id>#<turn index>`; the record's `image` is relative to
/// `image_root` (default: the file's folder). A line that is not a record is a bad row (`EvalSet::bad`, with its
/// file:line); a record whose turn pairs and truths do not line up is skipped (counted in
/// `EvalSet::skipped`), as is a record without truth (general VQA).
pub fn read_synth(path: &Path, image_root: Option<&Path>) -> Result<EvalSet> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "synth".into());
    let mut set = EvalSet::new(name);
    let (records, bad) = read_records_lenient(path, image_root)?;
    for skip in bad {
        set.bad(skip.location, skip.reason);
    }
    for (location, root, record) in records {
        let pairs = record.qa_pairs();
        if record.spatial.is_empty() {
            set.skip(location, "no spatial truth (general VQA record)");
            continue;
        }
        if pairs.len() != record.spatial.len() {
            set.skip(
                location,
                format!(
                    "{} question/answer pairs but {} spatial truths",
                    pairs.len(),
                    record.spatial.len()
                ),
            );
            continue;
        }
        let image = resolve(&root, &record.image);
        for (turn, ((question, answer), qa)) in pairs.into_iter().zip(record.spatial).enumerate() {
            set.items.push(EvalItem {
                id: format!("{}#{turn}", record.id),
                image: image.clone(),
                question,
                kind: qa.kind,
                truth: qa.truth,
                reference_answer: Some(answer),
                regions: Vec::new(),
                location: location.clone(),
            });
        }
    }
    Ok(set)
}

/// A record with its "file:line" and the folder its image is relative to.
type Located = (String, PathBuf, SpatialRecord);

/// Every record of a synthesis JSONL file or folder, with its "file:line" and the folder its image is relative to.
/// A line that is not a record is an error naming it.
pub(crate) fn read_records(path: &Path, image_root: Option<&Path>) -> Result<Vec<Located>> {
    let (records, bad) = read_records_lenient(path, image_root)?;
    match bad.into_iter().next() {
        Some(skip) => bail!("{}: {}", skip.location, skip.reason),
        None => Ok(records),
    }
}

/// [`read_records`], with the lines that are not records beside the records instead of an error.
fn read_records_lenient(
    path: &Path,
    image_root: Option<&Path>,
) -> Result<(Vec<Located>, Vec<Skip>)> {
    let files = if path.is_dir() {
        jsonl_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        bail!("{}: no .jsonl files", path.display());
    }
    let (mut records, mut bad) = (Vec::new(), Vec::new());
    for file in files {
        let root = default_root(&file, image_root);
        let (rows, bad_rows) = read_json_rows_lenient(&file)?;
        bad.extend(bad_rows);
        for (location, value) in rows {
            match serde_json::from_value::<SpatialRecord>(value) {
                Ok(record) => records.push((location, root.clone(), record)),
                Err(e) => bad.push(Skip {
                    location,
                    reason: format!("not an svlm synthesis record: {e}"),
                }),
            }
        }
    }
    Ok((records, bad))
}

fn jsonl_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.is_file() && path.extension().is_some_and(|e| e == "jsonl") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
