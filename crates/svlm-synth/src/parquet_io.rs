//! Parquet with the JSONL record's columns plus the image bytes embedded the way Hugging Face `datasets` stores
//! images (`image: struct{bytes: binary, path: string}`).
//!
//! Columns: `id: string`, `image: struct{bytes, path}`, `conversations: list<struct{from, value}>`,
//! `spatial: list<struct{type, objects: list<string>, truth: struct{kind, value_bool, value_choice, options,
//! meters, hour, degrees}, unit_shown, source}>`, `provenance: string` (JSON, nullable). `truth` is flattened
//! because its JSON form reuses the key `value` with different types per kind.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, ListArray, StringArray, StructArray,
    UInt8Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::record::{SpatialQa, SpatialRecord, Truth, Turn};

fn turn_fields() -> Fields {
    Fields::from(vec![
        Field::new("from", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ])
}

fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, false)))
}

fn truth_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("value_bool", DataType::Boolean, true),
        Field::new("value_choice", DataType::Utf8, true),
        Field::new("options", string_list(), false),
        Field::new("meters", DataType::Float64, true),
        Field::new("hour", DataType::UInt8, true),
        Field::new("degrees", DataType::Float64, true),
    ])
}

fn qa_fields() -> Fields {
    Fields::from(vec![
        Field::new("type", DataType::Utf8, false),
        Field::new("objects", string_list(), false),
        Field::new("truth", DataType::Struct(truth_fields()), false),
        Field::new("unit_shown", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, false),
    ])
}

fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, false),
        Field::new("path", DataType::Utf8, false),
    ])
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("image", DataType::Struct(image_fields()), false),
        Field::new(
            "conversations",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(turn_fields()),
                false,
            ))),
            false,
        ),
        Field::new(
            "spatial",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(qa_fields()),
                false,
            ))),
            false,
        ),
        Field::new("provenance", DataType::Utf8, true),
    ]))
}

fn offsets(lengths: impl IntoIterator<Item = usize>) -> OffsetBuffer<i32> {
    OffsetBuffer::from_lengths(lengths)
}

fn list_of(
    item: DataType,
    lengths: impl IntoIterator<Item = usize>,
    values: ArrayRef,
) -> Result<ArrayRef> {
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new("item", item, false)),
        offsets(lengths),
        values,
        None,
    )?))
}

fn strings<'a>(v: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    // from_iter_values needs an exact size hint; flattened iterators do not give one.
    let v: Vec<&str> = v.into_iter().collect();
    Arc::new(StringArray::from_iter_values(v))
}

/// One record batch from records and their encoded image bytes.
pub fn to_batch(records: &[(SpatialRecord, Vec<u8>)]) -> Result<RecordBatch> {
    let ids = strings(records.iter().map(|(r, _)| r.id.as_str()));
    let image = StructArray::try_new(
        image_fields(),
        vec![
            Arc::new(BinaryArray::from_iter_values(
                records.iter().map(|(_, b)| b.as_slice()),
            )) as ArrayRef,
            strings(records.iter().map(|(r, _)| r.image.as_str())),
        ],
        None,
    )?;

    let turns: Vec<&Turn> = records
        .iter()
        .flat_map(|(r, _)| r.conversations.iter())
        .collect();
    let turn_struct = StructArray::try_new(
        turn_fields(),
        vec![
            strings(turns.iter().map(|t| t.from.as_str())),
            strings(turns.iter().map(|t| t.value.as_str())),
        ],
        None,
    )?;
    let conversations = list_of(
        DataType::Struct(turn_fields()),
        records.iter().map(|(r, _)| r.conversations.len()),
        Arc::new(turn_struct),
    )?;

    let qas: Vec<&SpatialQa> = records.iter().flat_map(|(r, _)| r.spatial.iter()).collect();
    let objects = list_of(
        DataType::Utf8,
        qas.iter().map(|q| q.objects.len()),
        strings(
            qas.iter()
                .flat_map(|q| q.objects.iter().map(String::as_str)),
        ),
    )?;
    let mut kind = Vec::with_capacity(qas.len());
    let mut value_bool = Vec::with_capacity(qas.len());
    let mut value_choice: Vec<Option<&str>> = Vec::with_capacity(qas.len());
    let mut option_lengths = Vec::with_capacity(qas.len());
    let mut option_values: Vec<&str> = Vec::new();
    let mut meters = Vec::with_capacity(qas.len());
    let mut hour = Vec::with_capacity(qas.len());
    let mut degrees = Vec::with_capacity(qas.len());
    for q in &qas {
        let (mut b, mut c, mut m, mut h, mut d) = (None, None, None, None, None);
        let mut n_options = 0;
        let k = match &q.truth {
            Truth::Bool { value } => {
                b = Some(*value);
                "bool"
            }
            Truth::Choice { value, options } => {
                c = Some(value.as_str());
                option_values.extend(options.iter().map(String::as_str));
                n_options = options.len();
                "choice"
            }
            Truth::Length { meters } => {
                m = Some(*meters);
                "length"
            }
            Truth::Clock { hour } => {
                h = Some(*hour);
                "clock"
            }
            Truth::Angle { degrees } => {
                d = Some(*degrees);
                "angle"
            }
        };
        kind.push(k);
        value_bool.push(b);
        value_choice.push(c);
        option_lengths.push(n_options);
        meters.push(m);
        hour.push(h);
        degrees.push(d);
    }
    let truth = StructArray::try_new(
        truth_fields(),
        vec![
            strings(kind),
            Arc::new(BooleanArray::from(value_bool)),
            Arc::new(StringArray::from(value_choice)),
            list_of(DataType::Utf8, option_lengths, strings(option_values))?,
            Arc::new(Float64Array::from(meters)),
            Arc::new(UInt8Array::from(hour)),
            Arc::new(Float64Array::from(degrees)),
        ],
        None,
    )?;
    let qa_struct = StructArray::try_new(
        qa_fields(),
        vec![
            strings(qas.iter().map(|q| q.kind.as_str())),
            objects,
            Arc::new(truth),
            Arc::new(StringArray::from(
                qas.iter()
                    .map(|q| q.unit_shown.as_deref())
                    .collect::<Vec<_>>(),
            )),
            strings(qas.iter().map(|q| q.source.as_str())),
        ],
        None,
    )?;
    let spatial = list_of(
        DataType::Struct(qa_fields()),
        records.iter().map(|(r, _)| r.spatial.len()),
        Arc::new(qa_struct),
    )?;
    let provenance: Vec<Option<String>> = records
        .iter()
        .map(|(r, _)| r.provenance.as_ref().map(|p| p.to_string()))
        .collect();

    Ok(RecordBatch::try_new(
        schema(),
        vec![
            ids,
            Arc::new(image),
            conversations,
            spatial,
            Arc::new(StringArray::from(provenance)),
        ],
    )?)
}

/// Streams record batches into one Parquet file (snappy, one row group per batch).
pub struct ParquetShardWriter {
    writer: ArrowWriter<File>,
}

impl ParquetShardWriter {
    pub fn new(file: File) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        Ok(ParquetShardWriter {
            writer: ArrowWriter::try_new(file, schema(), Some(props))?,
        })
    }

    pub fn write(&mut self, records: &[(SpatialRecord, Vec<u8>)]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.writer.write(&to_batch(records)?)?;
        self.writer.flush()?;
        Ok(())
    }

    pub fn finish(self) -> Result<File> {
        Ok(self.writer.into_inner()?)
    }
}

fn column<'a, T: 'static>(batch: &'a StructArray, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .ok_or_else(|| anyhow!("missing column {name:?}"))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| anyhow!("column {name:?} has an unexpected type"))
}

fn list_strings(list: &ListArray, row: usize) -> Result<Vec<String>> {
    let values = list.value(row);
    let s = values
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| anyhow!("list item is not a string"))?;
    Ok((0..s.len()).map(|i| s.value(i).to_string()).collect())
}

/// Reads a Parquet shard back into records and image bytes. A file the `parquet` crate panics on is an error
/// naming it ([`svlm_io::catch_reader_panic`]).
pub fn read_parquet(path: &Path) -> Result<Vec<(SpatialRecord, Vec<u8>)>> {
    svlm_io::catch_reader_panic(|| read_parquet_records(path))
        .map_err(|e| anyhow!("{}: malformed Parquet file: {e}", path.display()))?
}

fn read_parquet_records(path: &Path) -> Result<Vec<(SpatialRecord, Vec<u8>)>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("reading Parquet metadata of {}", path.display()))?
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch =
            StructArray::from(batch.with_context(|| format!("decoding {}", path.display()))?);
        let ids: &StringArray = column(&batch, "id")?;
        let image: &StructArray = column(&batch, "image")?;
        let bytes: &BinaryArray = column(image, "bytes")?;
        let paths: &StringArray = column(image, "path")?;
        let conversations: &ListArray = column(&batch, "conversations")?;
        let spatial: &ListArray = column(&batch, "spatial")?;
        let provenance: &StringArray = column(&batch, "provenance")?;
        for row in 0..batch.len() {
            let turns_array = conversations.value(row);
            let turns = turns_array
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| anyhow!("conversations"))?;
            let from: &StringArray = column(turns, "from")?;
            let value: &StringArray = column(turns, "value")?;
            let conversations = (0..turns.len())
                .map(|i| {
                    Ok(Turn {
                        from: from
                            .value(i)
                            .parse()
                            .map_err(|e| anyhow!("{}: row {row}: {e}", path.display()))?,
                        value: value.value(i).to_string(),
                    })
                })
                .collect::<Result<_>>()?;

            let qa_array = spatial.value(row);
            let qa = qa_array
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| anyhow!("spatial"))?;
            let kinds: &StringArray = column(qa, "type")?;
            let objects: &ListArray = column(qa, "objects")?;
            let truth: &StructArray = column(qa, "truth")?;
            let unit: &StringArray = column(qa, "unit_shown")?;
            let source: &StringArray = column(qa, "source")?;
            let t_kind: &StringArray = column(truth, "kind")?;
            let t_bool: &BooleanArray = column(truth, "value_bool")?;
            let t_choice: &StringArray = column(truth, "value_choice")?;
            let t_options: &ListArray = column(truth, "options")?;
            let t_meters: &Float64Array = column(truth, "meters")?;
            let t_hour: &UInt8Array = column(truth, "hour")?;
            let t_degrees: &Float64Array = column(truth, "degrees")?;
            let mut spatial_qas = Vec::with_capacity(qa.len());
            for i in 0..qa.len() {
                let truth = match t_kind.value(i) {
                    "bool" => Truth::Bool {
                        value: t_bool.value(i),
                    },
                    "choice" => Truth::Choice {
                        value: t_choice.value(i).to_string(),
                        options: list_strings(t_options, i)?,
                    },
                    "length" => Truth::Length {
                        meters: t_meters.value(i),
                    },
                    "clock" => Truth::Clock {
                        hour: t_hour.value(i),
                    },
                    "angle" => Truth::Angle {
                        degrees: t_degrees.value(i),
                    },
                    other => bail!(
                        "{}: row {row}: unknown truth kind {other:?}",
                        path.display()
                    ),
                };
                let at_row = |e: String| anyhow!("{}: row {row}: {e}", path.display());
                spatial_qas.push(SpatialQa {
                    kind: kinds.value(i).parse().map_err(at_row)?,
                    objects: list_strings(objects, i)?,
                    truth,
                    unit_shown: (!unit.is_null(i)).then(|| unit.value(i).to_string()),
                    source: source.value(i).parse().map_err(at_row)?,
                });
            }
            let provenance = if provenance.is_null(row) {
                None
            } else {
                Some(
                    serde_json::from_str(provenance.value(row)).with_context(|| {
                        format!("{}: row {row}: provenance is not JSON", path.display())
                    })?,
                )
            };
            out.push((
                SpatialRecord {
                    id: ids.value(row).to_string(),
                    image: paths.value(row).to_string(),
                    conversations,
                    spatial: spatial_qas,
                    provenance,
                },
                bytes.value(row).to_vec(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TruthSource;

    fn sample() -> Vec<(SpatialRecord, Vec<u8>)> {
        let turn = |f: &str, v: &str| Turn {
            from: f.parse().expect("role"),
            value: v.into(),
        };
        let qa = |kind: &str, truth: Truth, unit: Option<&str>| SpatialQa {
            kind: kind.parse().expect("question type"),
            objects: vec!["red cube".into(), "blue ball".into()],
            truth,
            unit_shown: unit.map(str::to_string),
            source: TruthSource::Exact,
        };
        vec![
            (
                SpatialRecord {
                    id: "a".into(),
                    image: "images/a.png".into(),
                    conversations: vec![
                        turn("human", "<image>\nIs it?"),
                        turn("gpt", "Yes."),
                        turn("human", "Which?"),
                        turn("gpt", "The red cube."),
                        turn("human", "How far?"),
                        turn("gpt", "2 m."),
                        turn("human", "Clock?"),
                        turn("gpt", "3 o'clock."),
                        turn("human", "Angle?"),
                        turn("gpt", "12 degrees."),
                    ],
                    spatial: vec![
                        qa("left_predicate", Truth::Bool { value: true }, None),
                        qa(
                            "left_choice",
                            Truth::Choice {
                                value: "red cube".into(),
                                options: vec!["red cube".into(), "blue ball".into()],
                            },
                            None,
                        ),
                        qa("distance", Truth::Length { meters: 2.0123 }, Some("m")),
                        qa("clock_direction", Truth::Clock { hour: 3 }, None),
                        qa(
                            "elevation_angle",
                            Truth::Angle { degrees: 12.5 },
                            Some("deg"),
                        ),
                    ],
                    provenance: Some(serde_json::json!({"source": "world", "seed": 1})),
                },
                vec![1, 2, 3],
            ),
            (
                SpatialRecord {
                    id: "b".into(),
                    image: "images/b.png".into(),
                    conversations: vec![],
                    spatial: vec![],
                    provenance: None,
                },
                vec![],
            ),
        ]
    }

    #[test]
    fn parquet_round_trips_records_and_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.parquet");
        let mut w = ParquetShardWriter::new(File::create(&path).expect("create")).expect("writer");
        let records = sample();
        w.write(&records[..1]).expect("write");
        w.write(&records[1..]).expect("write");
        w.finish().expect("finish");
        let back = read_parquet(&path).expect("read");
        assert_eq!(back, records);
    }
}
