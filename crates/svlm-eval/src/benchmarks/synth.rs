//! svlm's own synthesis records (`svlm_synth::record::SpatialRecord`): a JSONL file, a synthesis output folder
//! (`svlm synth --out`: its finished shards, JSONL or Parquet, as `manifest.json` lists them) or a folder of JSONL
//! files.

use super::{default_root, read_json_rows, resolve};
use crate::dataset::{EvalItem, EvalSet, Skip};
use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use svlm_synth::folder::{ShardFormat, is_synth_folder, shard_files};
use svlm_synth::parquet_io::read_parquet;
use svlm_synth::record::SpatialRecord;

/// Reads synthesis records as an evaluation set ([`read_synth_cached`] without an image cache: Parquet shards,
/// which embed their images, need one).
pub fn read_synth(path: &Path, image_root: Option<&Path>) -> Result<EvalSet> {
    read_synth_cached(path, image_root, None)
}

/// Reads a synthesis JSONL file, a synthesis output folder, or every `*.jsonl` file of another folder (sorted by
/// name). Each human/gpt pair with a `spatial` truth becomes one item, id `<record id>#<turn index>`; the record's
/// `image` is relative to `image_root` (default: the file's folder). Images embedded in Parquet shards are written
/// once under `image_cache`. A line that is not a record is a bad row (`EvalSet::bad`, with its file:line); a record whose turn pairs
/// and truths do not line up is skipped (counted in `EvalSet::skipped`), as is a record without truth (general VQA).
pub fn read_synth_cached(
    path: &Path,
    image_root: Option<&Path>,
    image_cache: Option<&Path>,
) -> Result<EvalSet> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "synth".into());
    let mut set = EvalSet::new(name);
    let (records, bad) = read_records_lenient(path, image_root, image_cache)?;
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
                kind: qa.kind.to_string(),
                truth: qa.truth,
                reference_answer: Some(answer),
                regions: Vec::new(),
                location: location.clone(),
            });
        }
    }
    Ok(set)
}

/// A record with its "file:line" (Parquet: "file#row") and the folder its image is relative to.
type Located = (String, PathBuf, SpatialRecord);

/// Every record of a synthesis JSONL file or folder, with its "file:line" (Parquet: "file#row") and the folder its
/// image is relative to. A line that is not a record is an error naming it.
pub(crate) fn read_records(
    path: &Path,
    image_root: Option<&Path>,
    image_cache: Option<&Path>,
) -> Result<Vec<Located>> {
    let (records, bad) = read_records_lenient(path, image_root, image_cache)?;
    match bad.into_iter().next() {
        Some(skip) => bail!("{}: {}", skip.location, skip.reason),
        None => Ok(records),
    }
}

/// [`read_records`], with the lines that are not records beside the records instead of an error.
fn read_records_lenient(
    path: &Path,
    image_root: Option<&Path>,
    image_cache: Option<&Path>,
) -> Result<(Vec<Located>, Vec<Skip>)> {
    if path.is_dir() && is_synth_folder(path) {
        let shards = shard_files(path)?;
        if shards.unfinished > 0 {
            tracing::warn!(
                "{}: {} shard(s) not finished; reading the {} finished",
                path.display(),
                shards.unfinished,
                shards.files.len()
            );
        }
        return match shards.format {
            ShardFormat::Jsonl => read_jsonl_files(&shards.files, image_root),
            ShardFormat::Parquet => {
                let Some(cache) = image_cache else {
                    bail!(
                        "{}: Parquet shards embed their images; an image cache folder is needed to write them to",
                        path.display()
                    )
                };
                Ok((read_parquet_files(&shards.files, cache)?, Vec::new()))
            }
        };
    }
    if path.extension().is_some_and(|e| e == "parquet") {
        let Some(cache) = image_cache else {
            bail!(
                "{}: a Parquet shard embeds its images; an image cache folder is needed to write them to",
                path.display()
            )
        };
        return Ok((
            read_parquet_files(&[path.to_path_buf()], cache)?,
            Vec::new(),
        ));
    }
    let files = if path.is_dir() {
        jsonl_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        bail!("{}: no .jsonl files", path.display());
    }
    read_jsonl_files(&files, image_root)
}

fn read_jsonl_files(
    files: &[PathBuf],
    image_root: Option<&Path>,
) -> Result<(Vec<Located>, Vec<Skip>)> {
    let (mut records, mut bad) = (Vec::new(), Vec::new());
    for file in files {
        let root = default_root(file, image_root);
        let (rows, bad_rows) = read_json_rows(file)?;
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

/// Records of Parquet shards; each embedded image is written to `cache/<record image path>` (kept when a file of
/// the same size is there already).
fn read_parquet_files(files: &[PathBuf], cache: &Path) -> Result<Vec<Located>> {
    let mut records = Vec::new();
    for file in files {
        for (row, (record, bytes)) in read_parquet(file)?.into_iter().enumerate() {
            let location = format!("{}#{row}", file.display());
            let relative = Path::new(&record.image);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                bail!(
                    "{location}: image path {:?} leaves the image cache",
                    record.image
                );
            }
            let target = cache.join(relative);
            if !fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64) {
                svlm_io::write_atomic(&target, &bytes)
                    .with_context(|| format!("{location}: writing its image"))?;
            }
            records.push((location, cache.to_path_buf(), record));
        }
    }
    Ok(records)
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
