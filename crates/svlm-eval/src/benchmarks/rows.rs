//! Rows of a release file as JSON values, whatever the container: Parquet (Hugging Face `datasets` exports, images
//! as the `{bytes, path}` struct), JSON arrays, JSONL, and VLMEvalKit-style TSV (a header row, images as base64).
//!
//! Binary Parquet cells become `{"$bytes": "<base64>"}` so that readers see one shape for embedded images whether
//! they came from Parquet or from a JSON/TSV file with base64 strings ([`image_bytes`]).

use super::{Rows, read_json_rows};
use crate::dataset::Skip;
use anyhow::{Context, Result, bail};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::datatypes::{Int8Type, Int16Type, Int32Type, Int64Type};
use arrow::datatypes::{UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use base64::Engine;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};
use std::fs;
use std::path::Path;

const BYTES_KEY: &str = "$bytes";

/// Every row of `path` with its "file:line" / "file:row N" location, by extension: `.parquet`, `.tsv`, else JSON
/// array or JSONL; beside them the JSONL lines that are not JSON, with their location and why.
pub(crate) fn read_rows(path: &Path) -> Result<(Rows, Vec<Skip>)> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => Ok((read_parquet(path)?, Vec::new())),
        Some("tsv") => Ok((read_tsv(path)?, Vec::new())),
        _ => read_json_rows(path),
    }
}

/// A file the `parquet` crate panics on is an error naming it ([`svlm_io::catch_reader_panic`]).
fn read_parquet(path: &Path) -> Result<Vec<(String, Value)>> {
    svlm_io::catch_reader_panic(|| read_parquet_values(path))
        .map_err(|e| anyhow::anyhow!("{}: malformed Parquet file: {e}", path.display()))?
}

fn read_parquet_values(path: &Path) -> Result<Vec<(String, Value)>> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a Parquet file", path.display()))?
        .build()
        .with_context(|| format!("{}: reading the Parquet schema", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("{}: reading a record batch", path.display()))?;
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let mut row = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let value = cell(column, i)
                    .with_context(|| format!("{}: column {:?}", path.display(), field.name()))?;
                row.insert(field.name().clone(), value);
            }
            let n = rows.len();
            rows.push((format!("{}:row {n}", path.display()), Value::Object(row)));
        }
    }
    Ok(rows)
}

/// One Arrow cell as JSON (the types benchmark releases use; others are an error naming the type).
fn cell(array: &ArrayRef, i: usize) -> Result<Value> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => json!(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => json!(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_string()),
        DataType::Binary => bytes_value(array.as_binary::<i32>().value(i)),
        DataType::LargeBinary => bytes_value(array.as_binary::<i64>().value(i)),
        DataType::BinaryView => bytes_value(array.as_binary_view().value(i)),
        DataType::List(_) => list(&array.as_list::<i32>().value(i))?,
        DataType::LargeList(_) => list(&array.as_list::<i64>().value(i))?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut map = Map::new();
            for (field, column) in fields.iter().zip(s.columns()) {
                map.insert(field.name().clone(), cell(column, i)?);
            }
            Value::Object(map)
        }
        other => bail!("unsupported Parquet type {other}"),
    })
}

fn list(values: &ArrayRef) -> Result<Value> {
    (0..values.len())
        .map(|j| cell(values, j))
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

fn bytes_value(bytes: &[u8]) -> Value {
    let mut map = Map::new();
    map.insert(
        BYTES_KEY.to_string(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    );
    Value::Object(map)
}

/// A tab-separated file with a header row (VLMEvalKit's release format). Cells are strings; quoted cells may hold
/// tabs and newlines.
fn read_tsv(path: &Path) -> Result<Vec<(String, Value)>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: reading the header row", path.display()))?
        .clone();
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        // Line numbers count the header as line 1.
        let location = format!("{}:{}", path.display(), n + 2);
        let record = record.with_context(|| format!("{location}: not a TSV row"))?;
        let row: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
            .collect();
        rows.push((location, Value::Object(row)));
    }
    Ok(rows)
}

/// Embedded image bytes of a cell: a Parquet binary, the HF image struct `{bytes, path}` (bytes non-empty), or a
/// string holding base64 (optionally a `data:image/...;base64,` URI). `None` for a path string or a struct without
/// bytes.
pub(crate) fn image_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(b64)) = map.get(BYTES_KEY) {
                return decode_base64(b64);
            }
            map.get("bytes").and_then(image_bytes)
        }
        Value::String(s) if looks_like_base64_image(s) => decode_base64(s),
        _ => None,
    }
}

/// The path of an image cell: a plain string that is not base64 image data, or the struct's `path`.
pub(crate) fn image_path(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() && !looks_like_base64_image(s) => Some(s.clone()),
        Value::Object(map) => map
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let data = text
        .split_once(";base64,")
        .map_or(text, |(_, data)| data)
        .trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

/// Base64 of a JPEG (`/9j/`), PNG (`iVBOR`), GIF, WebP or BMP, or a data URI. Paths never start like that.
fn looks_like_base64_image(s: &str) -> bool {
    let s = s.trim_start();
    s.starts_with("data:image/")
        || ["/9j/", "iVBOR", "R0lGOD", "UklGR", "Qk"]
            .iter()
            .any(|magic| s.starts_with(magic) && s.len() > 64 && !s.contains(' '))
}

/// A text cell (numbers are written as JSON writes them).
pub(crate) fn text(row: &Value, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of strings: a JSON list, or a string holding a JSON/Python list literal.
pub(crate) fn string_list(row: &Value, key: &str) -> Option<Vec<String>> {
    let value = super::structured(row.get(key)?)?;
    value
        .as_array()?
        .iter()
        .map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_cells_in_every_shape() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(0u8..100);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        assert_eq!(image_bytes(&bytes_value(&png)), Some(png.clone()));
        assert_eq!(
            image_bytes(&json!({"bytes": bytes_value(&png), "path": "a.png"})),
            Some(png.clone())
        );
        assert_eq!(image_bytes(&json!(b64.clone())), Some(png.clone()));
        assert_eq!(
            image_bytes(&json!(format!("data:image/png;base64,{b64}"))),
            Some(png.clone())
        );
        assert_eq!(image_bytes(&json!("img/2D/count/ade20k_1.png")), None);
        assert_eq!(
            image_path(&json!("img/2D/count/ade20k_1.png")).as_deref(),
            Some("img/2D/count/ade20k_1.png")
        );
        assert_eq!(
            image_path(&json!({"bytes": null, "path": "x.jpg"})).as_deref(),
            Some("x.jpg")
        );
        assert_eq!(image_bytes(&json!({"bytes": null, "path": "x.jpg"})), None);
    }

    #[test]
    fn lists_from_json_or_python_strings() {
        let row = json!({"a": ["x", "y"], "b": "['left', 'right']", "c": 3});
        assert_eq!(string_list(&row, "a"), Some(vec!["x".into(), "y".into()]));
        assert_eq!(
            string_list(&row, "b"),
            Some(vec!["left".into(), "right".into()])
        );
        assert_eq!(string_list(&row, "c"), None);
        assert_eq!(text(&row, "c").as_deref(), Some("3"));
    }
}
