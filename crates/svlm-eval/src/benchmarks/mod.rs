//! Readers for evaluation sets (all local files; nothing is downloaded).
//!
//! - svlm's own synthesis records ([`read_synth_cached`]): records with a `spatial` truth block
//!   (`svlm_synth::record`), a JSONL or Parquet shard, a synthesis output folder (its finished shards) or a folder
//!   of `*.jsonl` files.
//! - Q-Spatial-Bench ([`read_qspatial`]), from <https://huggingface.co/datasets/andrewliao11/Q-Spatial-Bench>:
//!   `data/QSpatial_plus-00000-of-00001.parquet` (images embedded) and `data/QSpatial_scannet-00000-of-00001.parquet`
//!   (images from ScanNet, see the benchmark's code repository). Rows: `question`, `answer_value`, `answer_unit`,
//!   `question_type`, `image_path`, `image` ({bytes, path}). The same rows as JSON/JSONL are read too.
//! - SpatialRGPT-Bench ([`read_spatialrgpt`]), from <https://huggingface.co/datasets/a8cheng/SpatialRGPT-Bench>
//!   (`val_SpatialRGPT-Bench.jsonl`, images from Omni3D) or the JSON array `SpatialRGPT-Bench_v1.json` of the
//!   SpatialRGPT repository. Rows: `id`, `image_info` {`file_path`, `width`, `height`}, `text_q`, `conversations`,
//!   `bbox`, `rle`, `qa_info` {`type`, `category`}.
//!
//! The published spatial benchmarks that `svlm eval --benchmark` runs with their own prompts and scoring
//! ([`Benchmark`], [`load_bench`], [`run_benchmark`]): CV-Bench ([`cvbench`]), BLINK's spatial subtasks
//! ([`blink`]), EmbSpatial-Bench ([`embspatial`]), What'sUp ([`whatsup`]), 3DSRBench ([`threedsr`]), VSI-Bench
//! ([`vsibench`]), and the two above ([`truth_sets`]). Each module's doc comment names the release format and the
//! evaluation script its rules follow. To add one: a module with `read`, `judge` and `summarize`, a
//! [`Benchmark`] variant, and its arms in `suite.rs`.

pub mod blink;
pub mod cvbench;
pub mod embspatial;
pub mod matching;
mod qspatial;
pub mod regions;
pub(crate) mod rows;
mod spatialrgpt;
pub mod standard;
pub mod suite;
mod synth;
pub mod threedsr;
pub mod truth_sets;
pub mod vsibench;
pub mod whatsup;

pub use qspatial::read_qspatial;
pub use spatialrgpt::read_spatialrgpt;
pub use standard::{
    BenchItem, BenchSet, BenchSummary, Benchmark, Judged, ReadContext, SummaryRow, Target,
};
pub use suite::{
    BenchPrediction, FnImagesAnswerer, ImagesAnswerer, RunOptions, discover, judge,
    load as load_bench, predictions_path, run_benchmark, summarize,
};
pub(crate) use synth::read_records;
pub use synth::{read_synth, read_synth_cached};

use crate::dataset::{EvalSet, Skip};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Which reader a file needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchmarkFormat {
    Synth,
    QSpatial,
    SpatialRgpt,
}

impl std::str::FromStr for BenchmarkFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "synth" | "svlm" => Ok(BenchmarkFormat::Synth),
            "qspatial" | "qspatialbench" => Ok(BenchmarkFormat::QSpatial),
            "spatialrgpt" | "spatialrgptbench" | "srgpt" => Ok(BenchmarkFormat::SpatialRgpt),
            other => bail!(
                "unknown benchmark format {other:?} (expected synth, qspatial or spatialrgpt)"
            ),
        }
    }
}

/// Where to find images and where to put embedded ones.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The format; detected from the file when `None`.
    pub format: Option<BenchmarkFormat>,
    /// Folder image paths are relative to (default: the data file's folder).
    pub image_root: Option<PathBuf>,
    /// Folder to write images embedded in Parquet rows to (required for Q-Spatial-Bench's QSpatial_plus parquet).
    pub image_cache: Option<PathBuf>,
    /// Keep only the first n items.
    pub limit: Option<usize>,
}

/// Reads an evaluation set in any supported format.
pub fn load_benchmark(path: &Path, options: &LoadOptions) -> Result<EvalSet> {
    let format = match options.format {
        Some(f) => f,
        None => detect_format(path)?,
    };
    let set = match format {
        BenchmarkFormat::Synth => read_synth_cached(
            path,
            options.image_root.as_deref(),
            options.image_cache.as_deref(),
        )?,
        BenchmarkFormat::QSpatial => read_qspatial(
            path,
            options.image_root.as_deref(),
            options.image_cache.as_deref(),
        )?,
        BenchmarkFormat::SpatialRgpt => read_spatialrgpt(path, options.image_root.as_deref())?,
    };
    Ok(match options.limit {
        Some(n) => set.truncated(n),
        None => set,
    })
}

/// A folder -> svlm synthesis shards; Parquet -> svlm synthesis when it has a `spatial` column, else Q-Spatial;
/// JSON/JSONL -> by the keys of the first row (`spatial`/`conversations` -> synth, `qa_info` -> SpatialRGPT,
/// `answer_value` -> Q-Spatial).
pub fn detect_format(path: &Path) -> Result<BenchmarkFormat> {
    if path.is_dir() {
        return Ok(BenchmarkFormat::Synth);
    }
    if path.extension().is_some_and(|e| e == "parquet") {
        let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let builder = svlm_io::catch_reader_panic(|| {
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        })
        .map_err(|e| anyhow::anyhow!("{}: malformed Parquet file: {e}", path.display()))?
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
        return Ok(if builder.schema().field_with_name("spatial").is_ok() {
            BenchmarkFormat::Synth
        } else {
            BenchmarkFormat::QSpatial
        });
    }
    // The first readable row decides; unreadable ones are the reader's to report.
    let (rows, _) = read_json_rows(path)?;
    let Some((location, first)) = rows.first() else {
        bail!("{}: no rows", path.display())
    };
    if first.get("qa_info").is_some() {
        Ok(BenchmarkFormat::SpatialRgpt)
    } else if first.get("answer_value").is_some() {
        Ok(BenchmarkFormat::QSpatial)
    } else if first.get("spatial").is_some() || first.get("conversations").is_some() {
        Ok(BenchmarkFormat::Synth)
    } else {
        bail!(
            "{location}: cannot tell the benchmark format (no qa_info, answer_value, spatial or conversations key)"
        )
    }
}

/// JSON rows, each with its "file:line" (or "file:[index]").
pub(crate) type Rows = Vec<(String, Value)>;

/// Rows of a JSON array file or a JSONL file (blank lines ignored), each with its "file:line" (or "file:[index]").
/// A JSONL line that is not JSON (or not UTF-8) is returned with its "file:line" beside the rows instead of ending
/// the read: one torn or mangled line costs that line only. A JSON array that does not parse is an error.
pub(crate) fn read_json_rows(path: &Path) -> Result<(Rows, Vec<Skip>)> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let starts_with_bracket = {
        let buf = reader
            .fill_buf()
            .with_context(|| format!("reading {}", path.display()))?;
        buf.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
    };
    if starts_with_bracket {
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let rows: Vec<Value> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array", path.display()))?;
        let rows = rows
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{}:[{i}]", path.display()), v))
            .collect();
        return Ok((rows, Vec::new()));
    }
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("{}:{n}: reading", path.display()))?;
        if read == 0 {
            break;
        }
        let location = format!("{}:{n}", path.display());
        let parsed = std::str::from_utf8(&line)
            .map_err(|e| format!("not UTF-8 text: {e}"))
            .and_then(|text| {
                if text.trim().is_empty() {
                    Ok(None)
                } else {
                    serde_json::from_str::<Value>(text)
                        .map(Some)
                        .map_err(|e| format!("not a JSON object: {e}"))
                }
            });
        match parsed {
            Ok(Some(value)) => rows.push((location, value)),
            Ok(None) => {}
            Err(reason) => bad.push(Skip { location, reason }),
        }
    }
    Ok((rows, bad))
}

/// A field that some exports store as a string holding JSON or a Python literal (Hugging Face `datasets` dumps of
/// SpatialRGPT-Bench write `qa_info`, `image_info`, `bbox` and `conversations` that way). Other values pass through.
pub(crate) fn structured(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) => {
            let t = s.trim();
            if !(t.starts_with('{') || t.starts_with('[')) {
                return Some(value.clone());
            }
            serde_json::from_str(t)
                .ok()
                .or_else(|| serde_json::from_str(&python_literal_to_json(t)).ok())
        }
        other => Some(other.clone()),
    }
}

/// Rewrites a Python literal (dict/list of str, numbers, True/False/None) as JSON: single-quoted strings become
/// double-quoted, the three constants lower-case/null. Not a general Python parser; a result that is not JSON fails
/// to parse at the caller.
fn python_literal_to_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            let quote = c;
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != quote {
                match chars[i] {
                    '\\' if i + 1 < chars.len() => {
                        let next = chars[i + 1];
                        if next == '\'' {
                            out.push('\'');
                        } else {
                            out.push('\\');
                            out.push(next);
                        }
                        i += 2;
                        continue;
                    }
                    '"' => out.push_str("\\\""),
                    other => out.push(other),
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push_str(match word.as_str() {
                "True" => "true",
                "False" => "false",
                "None" => "null",
                _ => &word,
            });
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `root/rel` unless `rel` is absolute.
pub(crate) fn resolve(root: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// The folder image paths are relative to: the option, or the data file's folder (the folder itself for a folder).
pub(crate) fn default_root(path: &Path, image_root: Option<&Path>) -> PathBuf {
    match image_root {
        Some(root) => root.to_path_buf(),
        None if path.is_dir() => path.to_path_buf(),
        None => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_literals_become_json() {
        let v = structured(&json!(
            "{'type': 'qualitative', 'category': 'left_predicate', 'ok': True, 'x': None}"
        ));
        assert_eq!(
            v,
            Some(
                json!({"type": "qualitative", "category": "left_predicate", "ok": true, "x": null})
            )
        );
        let v = structured(&json!("[[1.0, 2.5, 3, 4]]"));
        assert_eq!(v, Some(json!([[1.0, 2.5, 3, 4]])));
        let v = structured(&json!(
            "[{'from': 'human', 'value': \"Is it the cup's handle?\"}]"
        ));
        assert_eq!(
            v,
            Some(json!([{"from": "human", "value": "Is it the cup's handle?"}]))
        );
        let v = structured(&json!("{'value': 'it\\'s \"quoted\"'}"));
        assert_eq!(v, Some(json!({"value": "it's \"quoted\""})));
        assert_eq!(structured(&json!("plain text")), Some(json!("plain text")));
        assert_eq!(structured(&json!(3)), Some(json!(3)));
        assert_eq!(structured(&json!("{broken")), None);
    }

    #[test]
    fn format_names() {
        assert_eq!(
            "Q-Spatial".parse::<BenchmarkFormat>().ok(),
            Some(BenchmarkFormat::QSpatial)
        );
        assert_eq!(
            "spatialrgpt".parse::<BenchmarkFormat>().ok(),
            Some(BenchmarkFormat::SpatialRgpt)
        );
        assert_eq!(
            "synth".parse::<BenchmarkFormat>().ok(),
            Some(BenchmarkFormat::Synth)
        );
        assert!("vqav2".parse::<BenchmarkFormat>().is_err());
    }
}
