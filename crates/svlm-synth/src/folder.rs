//! Reading a synthesis output folder (`svlm synth --out OUT`) back as data: the files of its finished shards.
//!
//! `OUT/manifest.json` names the shard count of the latest run and the shards of that count that finished with the
//! run's config. Only those shards are read, so one folder written with `--shard 0/2`, `1/2` and then `0/3` gives
//! the records of `0/3` alone — never a record twice — and a shard being written (no manifest yet) is not read.
//! Shard files of another shard count or config are named in the log and left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::pipeline::RunManifest;
use crate::shard::ShardSpec;

/// Which of a shard's data files a reader takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardFormat {
    Jsonl,
    Parquet,
}

impl ShardFormat {
    fn extension(self) -> &'static str {
        match self {
            ShardFormat::Jsonl => "jsonl",
            ShardFormat::Parquet => "parquet",
        }
    }
}

/// The data files of a synthesis folder's finished shards, in shard order, and their format.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardFiles {
    pub format: ShardFormat,
    pub files: Vec<PathBuf>,
    /// Shards of the manifest's count that are not finished (a run still going, or never started).
    pub unfinished: usize,
}

/// Whether `dir` is a synthesis output folder (it has the run manifest).
pub fn is_synth_folder(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
}

/// The data files of the finished shards of the synthesis folder `dir`: JSONL when every finished shard has its
/// JSONL file (images in `dir/images/`), else Parquet when every one has its Parquet file (images embedded).
pub fn shard_files(dir: &Path) -> Result<ShardFiles> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let run: RunManifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a synthesis run manifest", manifest_path.display()))?;
    let mut stems = Vec::new();
    for shard in &run.shards_finished {
        let spec: ShardSpec = shard
            .parse()
            .with_context(|| format!("{}: shard {shard:?}", manifest_path.display()))?;
        stems.push(spec.stem());
    }
    if stems.is_empty() {
        bail!(
            "{}: no finished shard (of {})",
            manifest_path.display(),
            run.shard_count
        );
    }
    let listed: BTreeSet<&str> = run.totals.files.iter().map(String::as_str).collect();
    let pick = |format: ShardFormat| -> Option<Vec<PathBuf>> {
        stems
            .iter()
            .map(|stem| {
                let name = format!("{stem}.{}", format.extension());
                listed.contains(name.as_str()).then(|| dir.join(name))
            })
            .collect()
    };
    let (format, files) = match (pick(ShardFormat::Jsonl), pick(ShardFormat::Parquet)) {
        (Some(files), _) => (ShardFormat::Jsonl, files),
        (None, Some(files)) => (ShardFormat::Parquet, files),
        (None, None) => bail!(
            "{}: the finished shards do not all have the same format (JSONL or Parquet): {:?}",
            manifest_path.display(),
            run.totals.files
        ),
    };
    for file in &files {
        if !file.is_file() {
            bail!(
                "{}: the manifest lists {} as finished, but it is missing",
                dir.display(),
                file.display()
            );
        }
    }
    let left_out = other_shard_files(dir, &files)?;
    if !left_out.is_empty() {
        tracing::warn!(
            "{}: reading the {} finished shard(s) of {} that manifest.json lists; {} other shard file(s) left out \
             (another shard count or config): {}",
            dir.display(),
            files.len(),
            run.shard_count,
            left_out.len(),
            left_out.join(", ")
        );
    }
    Ok(ShardFiles {
        format,
        files,
        unfinished: run.shard_count.saturating_sub(stems.len()),
    })
}

/// Shard data files in `dir` of shards other than those of `read` (a shard's file in the other format is its own).
fn other_shard_files(dir: &Path, read: &[PathBuf]) -> Result<Vec<String>> {
    let read_stems: BTreeSet<_> = read.iter().filter_map(|p| p.file_stem()).collect();
    let mut other = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data = name.ends_with(".jsonl") || name.ends_with(".parquet");
        let read_shard = path.file_stem().is_some_and(|s| read_stems.contains(s));
        if name.starts_with("shard-") && data && !read_shard {
            other.push(name);
        }
    }
    other.sort();
    Ok(other)
}
