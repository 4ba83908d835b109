//! Q-Spatial-Bench (Liao et al., EMNLP 2024): quantitative questions with a value and a unit.

use super::{default_root, read_json_rows, resolve};
use crate::dataset::{EvalItem, EvalSet};
use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use svlm_answers::LengthUnit;
use svlm_synth::record::Truth;

/// One benchmark row, whatever file it came from.
struct Row {
    question: Option<String>,
    answer_value: Option<f64>,
    answer_unit: Option<String>,
    question_type: Option<String>,
    image_path: Option<String>,
    image_bytes: Option<Vec<u8>>,
    image_name: Option<String>,
}

/// Reads Q-Spatial-Bench from its Hugging Face parquet (`data/QSpatial_plus-*.parquet`,
/// `data/QSpatial_scannet-*.parquet`) or the same rows as JSON/JSONL. Truth = `answer_value` in `answer_unit`
/// (meter(s)/m, centimeter(s)/cm, mm, foot/feet/ft, inch(es)/in, yard(s)). Kind = `question_type` (or "qspatial").
/// Ids are `<file stem>:<row>`.
///
/// Images: bytes embedded in the parquet `image` column are written to `image_cache/<file stem>-<row>.<ext>` (an
/// error when `image_cache` is not given); otherwise `image_path` (or `image.path`) is taken relative to
/// `image_root` (default: the file's folder). Rows with an unknown unit, a non-positive value or no question are
/// skipped and counted (the benchmark's own evaluator silently treats unknown units as centimetres); JSONL lines
/// that are not JSON are listed as bad rows and the rest is read.
pub fn read_qspatial(
    path: &Path,
    image_root: Option<&Path>,
    image_cache: Option<&Path>,
) -> Result<EvalSet> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "qspatial".into());
    let mut set = EvalSet::new(stem.clone());
    let rows: Vec<(String, Row)> = if path.extension().is_some_and(|e| e == "parquet") {
        read_parquet_rows(path)?
    } else {
        let (rows, malformed) = read_json_rows(path)?;
        for bad in malformed {
            set.bad(bad.location, bad.reason);
        }
        rows.into_iter()
            .map(|(loc, v)| (loc, row_from_json(&v)))
            .collect()
    };
    let root = default_root(path, image_root);
    for (index, (location, row)) in rows.into_iter().enumerate() {
        let Some(question) = row.question.filter(|q| !q.trim().is_empty()) else {
            set.skip(location, "no question");
            continue;
        };
        let Some(value) = row.answer_value.filter(|v| v.is_finite() && *v > 0.0) else {
            set.skip(
                location,
                "answer_value missing, not a number or not positive",
            );
            continue;
        };
        let unit_text = row.answer_unit.unwrap_or_default();
        let Some(unit) = LengthUnit::from_word(unit_text.trim()) else {
            set.skip(location, format!("unknown answer_unit {unit_text:?}"));
            continue;
        };
        let id = format!("{stem}:{index}");
        let image = match (&row.image_bytes, &row.image_path, &row.image_name) {
            (Some(bytes), _, name) if !bytes.is_empty() => {
                let Some(cache) = image_cache else {
                    bail!(
                        "{location}: the image is embedded in the parquet; give a folder to write images to"
                    );
                };
                write_image(cache, &format!("{stem}-{index}"), name.as_deref(), bytes)
                    .with_context(|| format!("{location}: writing the embedded image"))?
            }
            (_, Some(p), _) | (_, None, Some(p)) if !p.is_empty() => resolve(&root, p),
            _ => {
                set.skip(location, "no image (neither embedded bytes nor image_path)");
                continue;
            }
        };
        set.items.push(EvalItem {
            id,
            image,
            question: question.trim().to_string(),
            kind: row
                .question_type
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "qspatial".into()),
            truth: Truth::Length {
                meters: value * unit.to_meters(),
            },
            reference_answer: Some(format!("{value} {unit_text}")),
            regions: Vec::new(),
            location: location.clone(),
        });
    }
    Ok(set)
}

fn row_from_json(v: &Value) -> Row {
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let answer_value = match v.get("answer_value") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let image_name = match v.get("image") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("path").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    Row {
        question: text("question"),
        answer_value,
        answer_unit: text("answer_unit"),
        question_type: text("question_type"),
        image_path: text("image_path"),
        image_bytes: None,
        image_name,
    }
}

/// A file the `parquet` crate panics on is an error naming it ([`svlm_io::catch_reader_panic`]).
fn read_parquet_rows(path: &Path) -> Result<Vec<(String, Row)>> {
    svlm_io::catch_reader_panic(|| read_parquet_table(path))
        .map_err(|e| anyhow::anyhow!("{}: malformed Parquet file: {e}", path.display()))?
}

fn read_parquet_table(path: &Path) -> Result<Vec<(String, Row)>> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a parquet file", path.display()))?
        .with_batch_size(256)
        .build()
        .with_context(|| format!("{}: reading parquet", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch =
            batch.with_context(|| format!("{}: reading a parquet batch", path.display()))?;
        let offset = rows.len();
        let column = |name: &str| -> Result<Option<Vec<Option<String>>>> {
            batch
                .column_by_name(name)
                .map(|c| strings(c.as_ref()))
                .transpose()
                .with_context(|| format!("{}: column {name:?}", path.display()))
        };
        let question =
            column("question")?.context(format!("{}: no \"question\" column", path.display()))?;
        let unit = column("answer_unit")?
            .context(format!("{}: no \"answer_unit\" column", path.display()))?;
        let question_type = column("question_type")?;
        let image_path = column("image_path")?;
        let values = match batch.column_by_name("answer_value") {
            Some(c) => floats(c.as_ref())
                .with_context(|| format!("{}: column \"answer_value\"", path.display()))?,
            None => bail!("{}: no \"answer_value\" column", path.display()),
        };
        let (image_bytes, image_name) = image_column(&batch)
            .with_context(|| format!("{}: column \"image\"", path.display()))?;
        for i in 0..batch.num_rows() {
            let row = Row {
                question: question[i].clone(),
                answer_value: values[i],
                answer_unit: unit[i].clone(),
                question_type: question_type.as_ref().and_then(|c| c[i].clone()),
                image_path: image_path.as_ref().and_then(|c| c[i].clone()),
                image_bytes: image_bytes.as_ref().and_then(|c| c[i].clone()),
                image_name: image_name.as_ref().and_then(|c| c[i].clone()),
            };
            rows.push((format!("{}:row {}", path.display(), offset + i), row));
        }
    }
    Ok(rows)
}

fn strings(array: &dyn Array) -> Result<Vec<Option<String>>> {
    let utf8 = cast(array, &DataType::Utf8)?;
    let s = utf8.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect())
}

fn floats(array: &dyn Array) -> Result<Vec<Option<f64>>> {
    let f = cast(array, &DataType::Float64)?;
    let f = f.as_primitive::<arrow::datatypes::Float64Type>();
    Ok((0..f.len())
        .map(|i| (!f.is_null(i)).then(|| f.value(i)))
        .collect())
}

type ImageColumns = (Option<Vec<Option<Vec<u8>>>>, Option<Vec<Option<String>>>);

/// The Hugging Face `Image` feature: a struct {bytes: binary, path: string}.
fn image_column(batch: &RecordBatch) -> Result<ImageColumns> {
    let Some(column) = batch.column_by_name("image") else {
        return Ok((None, None));
    };
    let Some(image) = column.as_struct_opt() else {
        // A plain string column holds a path.
        return Ok((None, Some(strings(column.as_ref())?)));
    };
    let bytes = match struct_field(image, "bytes") {
        Some(b) => {
            let b = cast(b.as_ref(), &DataType::Binary)?;
            let b = b.as_binary::<i32>();
            Some(
                (0..b.len())
                    .map(|i| (!b.is_null(i) && !image.is_null(i)).then(|| b.value(i).to_vec()))
                    .collect(),
            )
        }
        None => None,
    };
    let names = struct_field(image, "path")
        .map(|p| strings(p.as_ref()))
        .transpose()?;
    Ok((bytes, names))
}

fn struct_field(array: &StructArray, name: &str) -> Option<arrow::array::ArrayRef> {
    array.column_by_name(name).cloned()
}

/// Writes image bytes atomically as `dir/<stem>.<ext>`, the extension from `name` or the bytes' magic number.
pub(crate) fn write_image(
    dir: &Path,
    stem: &str,
    name: Option<&str>,
    bytes: &[u8],
) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ext = name
        .and_then(|n| Path::new(n).extension())
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_else(|| {
            if bytes.starts_with(b"\x89PNG") {
                "png".into()
            } else if bytes.starts_with(&[0xff, 0xd8]) {
                "jpg".into()
            } else {
                "img".into()
            }
        });
    let target = dir.join(format!("{stem}.{ext}"));
    if fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(target);
    }
    svlm_io::write_atomic(&target, bytes)?;
    Ok(target)
}
