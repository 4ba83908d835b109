//! Data sources, streamed: an index of byte offsets (JSON / JSONL) or (row group, row) pairs (Parquet) is built by one
//! scan at start; rows are parsed and images read only when a sample is drawn. A source is one data file, or a
//! synthesis output folder (`svlm synth --out`): the finished shards its manifest lists, JSONL or Parquet
//! (`svlm_synth::folder`).
//!
//! The start-up scan also validates every row (structure, roles, image count vs `<image>` markers, image files on
//! disk). Bad rows are counted, named (`file:line` or `file#row`) in the log and left out of the index; a source
//! whose bad fraction passes `data.max_bad_fraction` fails the run. Image bytes that fail to decode later are counted
//! the same way when they are drawn.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{SourceConfig, SourceFormat};

#[derive(Debug, Error)]
pub enum DataError {
    #[error("cannot open data source `{source_name}` at {path}: {err}")]
    Open {
        source_name: String,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("data source `{source_name}` ({path}): {message}")]
    Format {
        source_name: String,
        path: PathBuf,
        message: String,
    },
    #[error(
        "data source `{source_name}`: {bad} of {total} rows are bad ({:.2}% > max_bad_fraction {:.2}%); first: {examples}",
        100.0 * *bad as f64 / (*total).max(1) as f64, 100.0 * max_fraction
    )]
    TooManyBad {
        source_name: String,
        bad: usize,
        total: usize,
        max_fraction: f64,
        examples: String,
    },
    #[error("data source `{source_name}` has no valid rows")]
    Empty { source_name: String },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: Vec<SamplePart>,
}

/// One part of a training message: text, or the sample's next image (`svlm_processor::ContentPart` is the form
/// chat templates take).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SamplePart {
    Text(String),
    /// The i-th image of the sample goes here.
    Image,
}

/// Where an image's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageRef {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

impl ImageRef {
    /// The encoded bytes (read from disk for paths).
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        match self {
            ImageRef::Path(p) => std::fs::read(p)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| format!("image {}: {e}", p.display())),
            ImageRef::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b)),
        }
    }

    /// Decode to RGB8 (alpha dropped; model encoders decode with their processor's own rules).
    pub fn load(&self) -> Result<image::RgbImage, String> {
        match self {
            ImageRef::Path(p) => image::open(p)
                .map(|i| i.to_rgb8())
                .map_err(|e| format!("image {}: {e}", p.display())),
            ImageRef::Bytes(b) => image::load_from_memory(b)
                .map(|i| i.to_rgb8())
                .map_err(|e| format!("embedded image: {e}")),
        }
    }
}

/// One training sample: a conversation with its images, in order of the `Image` parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index of the source in `data.sources`.
    pub source: usize,
    /// `file:line` / `file#row`, for messages about this sample.
    pub origin: String,
    pub messages: Vec<Message>,
    pub images: Vec<ImageRef>,
}

/// Where a row lives: its file (index into the source's files) and its place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowLocation {
    /// Byte range of a JSON value (a JSONL line or an element of a JSON array) and its 1-based line number.
    Bytes {
        file: u32,
        offset: u64,
        len: u32,
        line: u32,
    },
    /// Parquet row group and row inside it.
    Parquet { file: u32, group: u32, row: u32 },
}

/// A bad row seen while indexing or reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadRow {
    pub origin: String,
    pub reason: String,
}

/// An indexed source: offsets of its valid rows, opened lazily.
pub struct DataSource {
    pub config: SourceConfig,
    pub format: SourceFormat,
    image_root: PathBuf,
    /// The data files: the source's path, or a synthesis folder's finished shards.
    files: Vec<PathBuf>,
    rows: Vec<RowLocation>,
    /// Rows seen by the index scan (valid + bad).
    pub scanned: usize,
    /// Bad rows seen by the scan and by later reads, each once (a row that fails again in a later epoch is not
    /// counted twice).
    pub bad: Mutex<Vec<BadRow>>,
    /// Decoded Parquet (file, row group)s, most recent last (a small cache: draws are random across groups).
    parquet_cache: Mutex<Vec<CachedGroup>>,
}

/// A decoded row group and its (file, group) key.
type CachedGroup = ((u32, u32), std::sync::Arc<ParquetGroup>);

struct ParquetGroup {
    rows: Vec<Result<Sample, String>>,
}

const PARQUET_CACHE_GROUPS: usize = 4;

impl DataSource {
    /// Scan and index a source. `index` is the source's position in `data.sources`.
    pub fn open(config: &SourceConfig, index: usize) -> Result<Self, DataError> {
        let (files, format) = if config.path.is_dir() {
            synth_folder_files(config)?
        } else {
            let format = match config.format {
                SourceFormat::Auto => detect_format(config)?,
                f => f,
            };
            check_not_parquet(config, format)?;
            (vec![config.path.clone()], format)
        };
        let image_root = match &config.image_root {
            Some(r) => r.clone(),
            None if config.path.is_dir() => config.path.clone(),
            None => config
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let mut source = DataSource {
            config: config.clone(),
            format,
            image_root,
            files,
            rows: Vec::new(),
            scanned: 0,
            bad: Mutex::new(Vec::new()),
            parquet_cache: Mutex::new(Vec::new()),
        };
        for file in 0..source.files.len() as u32 {
            match format {
                SourceFormat::LlavaJson => source.index_json_array(file, index)?,
                SourceFormat::LlavaJsonl | SourceFormat::ChatJsonl | SourceFormat::SynthJsonl => {
                    source.index_jsonl(file, index)?
                }
                SourceFormat::Parquet => source.index_parquet(file, index)?,
                SourceFormat::Auto => unreachable!("format detected above"),
            }
        }
        if let Some(max) = config.max_samples {
            source.rows.truncate(max);
        }
        Ok(source)
    }

    /// Valid rows in the index.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Bad rows counted so far.
    pub fn bad_count(&self) -> usize {
        self.bad.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Fail when bad rows (found by the scan and by reads so far) pass the allowed fraction of the source's rows.
    pub fn check_bad_fraction(&self, max_fraction: f64) -> Result<(), DataError> {
        let bad = self.bad.lock().map(|b| b.clone()).unwrap_or_default();
        let total = self.scanned.max(1);
        if bad.len() as f64 / total as f64 > max_fraction {
            let examples = bad
                .iter()
                .take(5)
                .map(|b| format!("{}: {}", b.origin, b.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(DataError::TooManyBad {
                source_name: self.config.name.clone(),
                bad: bad.len(),
                total,
                max_fraction,
                examples,
            });
        }
        if self.rows.is_empty() {
            return Err(DataError::Empty {
                source_name: self.config.name.clone(),
            });
        }
        Ok(())
    }

    /// Counts a bad row (once: a row already listed is not added again) and logs it.
    pub fn record_bad(&self, origin: String, reason: String) {
        if let Ok(mut bad) = self.bad.lock() {
            if bad.iter().any(|b| b.origin == origin) {
                return;
            }
            tracing::warn!(source = %self.config.name, "skipping {origin}: {reason}");
            bad.push(BadRow { origin, reason });
        }
    }

    /// Read the `i`-th indexed row. A row that fails now (e.g. undecodable image bytes) is counted as bad and `None`
    /// is returned; the caller draws another.
    pub fn get(&self, i: usize, source_index: usize) -> Option<Sample> {
        let location = *self.rows.get(i)?;
        let result = match location {
            RowLocation::Bytes {
                file,
                offset,
                len,
                line,
            } => {
                let origin = format!("{}:{line}", self.file(file).display());
                self.read_bytes(file, offset, len)
                    .and_then(|bytes| self.parse_row(&bytes, origin.clone(), source_index))
                    .map_err(|e| (origin, e))
            }
            RowLocation::Parquet { file, group, row } => {
                let origin = format!("{}#group{group}/row{row}", self.file(file).display());
                self.parquet_row(file, group, row).map_err(|e| (origin, e))
            }
        };
        match result.and_then(|s| check_images_decode(&s).map(|()| s)) {
            Ok(s) => Some(s),
            Err((origin, reason)) => {
                self.record_bad(origin, reason);
                None
            }
        }
    }

    fn file(&self, file: u32) -> &Path {
        &self.files[file as usize]
    }

    fn read_bytes(&self, file: u32, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let mut file = File::open(self.file(file)).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok(buf)
    }

    fn parse_row(
        &self,
        bytes: &[u8],
        origin: String,
        source_index: usize,
    ) -> Result<Sample, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON: {e}"))?;
        let sample = match self.format {
            SourceFormat::ChatJsonl => parse_chat(&value, &self.image_root, origin, source_index)?,
            _ => parse_llava(&value, &self.image_root, origin, source_index)?,
        };
        Ok(sample)
    }

    fn validate(&self, sample: &Sample) -> Result<(), String> {
        validate_sample(sample)?;
        for image in &sample.images {
            if let ImageRef::Path(p) = image
                && !p.is_file()
            {
                return Err(format!("missing image {}", p.display()));
            }
        }
        Ok(())
    }

    fn index_jsonl(&mut self, file_index: u32, source_index: usize) -> Result<(), DataError> {
        let file =
            File::open(self.file(file_index)).map_err(|err| self.open_err(file_index, err))?;
        let mut reader = BufReader::new(file);
        let mut offset = 0u64;
        let mut line_no = 0u32;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|err| self.open_err(file_index, err))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let start = offset;
            offset += n as u64;
            let text = trim_ascii(&buf);
            if text.is_empty() {
                continue;
            }
            self.scanned += 1;
            let origin = format!("{}:{line_no}", self.file(file_index).display());
            match self
                .parse_row(text, origin.clone(), source_index)
                .and_then(|s| self.validate(&s))
            {
                Ok(()) => {
                    let lead = buf.iter().take_while(|b| b.is_ascii_whitespace()).count() as u64;
                    self.rows.push(RowLocation::Bytes {
                        file: file_index,
                        offset: start + lead,
                        len: text.len() as u32,
                        line: line_no,
                    });
                }
                Err(reason) => self.record_bad(origin, reason),
            }
        }
        Ok(())
    }

    /// Find the byte ranges of the top-level array's elements with a streaming scan (strings and escapes tracked),
    /// never holding the whole file.
    fn index_json_array(&mut self, file_index: u32, source_index: usize) -> Result<(), DataError> {
        let file =
            File::open(self.file(file_index)).map_err(|err| self.open_err(file_index, err))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut offset = 0u64;
        let mut line = 1u32;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut started = false;
        let mut element: Option<(u64, u32)> = None;
        let mut elements = Vec::new();
        let mut chunk = [0u8; 1 << 16];
        loop {
            let n = reader
                .read(&mut chunk)
                .map_err(|err| self.open_err(file_index, err))?;
            if n == 0 {
                break;
            }
            for &b in &chunk[..n] {
                let pos = offset;
                offset += 1;
                if b == b'\n' {
                    line += 1;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                    }
                    continue;
                }
                if !started {
                    if b == b'[' {
                        started = true;
                        depth = 1;
                    } else if !b.is_ascii_whitespace() {
                        return Err(self.format_err(
                            file_index,
                            "expected a JSON array (`[`) at the start".into(),
                        ));
                    }
                    continue;
                }
                match b {
                    b'"' => {
                        in_string = true;
                        if depth == 1 && element.is_none() {
                            element = Some((pos, line));
                        }
                    }
                    b'{' | b'[' => {
                        if depth == 1 && element.is_none() {
                            element = Some((pos, line));
                        }
                        depth += 1;
                    }
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 1
                            && let Some((start, l)) = element.take()
                        {
                            elements.push((start, (pos + 1 - start) as u32, l));
                        } else if depth == 0 {
                            if let Some((start, l)) = element.take() {
                                elements.push((start, (pos - start) as u32, l));
                            }
                            started = false;
                        }
                    }
                    b',' if depth == 1 => {
                        if let Some((start, l)) = element.take() {
                            elements.push((start, (pos - start) as u32, l));
                        }
                    }
                    c if depth == 1 && element.is_none() && !c.is_ascii_whitespace() => {
                        element = Some((pos, line))
                    }
                    _ => {}
                }
            }
        }
        if depth != 0 || in_string {
            return Err(self.format_err(
                file_index,
                "the JSON array is not closed (truncated file?)".into(),
            ));
        }
        for (start, len, l) in elements {
            self.scanned += 1;
            let origin = format!("{}:{l}", self.file(file_index).display());
            let parsed = self
                .read_bytes(file_index, start, len)
                .and_then(|bytes| self.parse_row(trim_ascii(&bytes), origin.clone(), source_index))
                .and_then(|s| self.validate(&s));
            match parsed {
                Ok(()) => self.rows.push(RowLocation::Bytes {
                    file: file_index,
                    offset: start,
                    len,
                    line: l,
                }),
                Err(reason) => self.record_bad(origin, reason),
            }
        }
        Ok(())
    }

    fn index_parquet(&mut self, file_index: u32, source_index: usize) -> Result<(), DataError> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let file =
            File::open(self.file(file_index)).map_err(|err| self.open_err(file_index, err))?;
        let reader = svlm_io::catch_reader_panic(|| SerializedFileReader::new(file))
            .map_err(|e| self.format_err(file_index, format!("malformed Parquet file: {e}")))?
            .map_err(|e| self.format_err(file_index, format!("not a Parquet file: {e}")))?;
        let groups = reader.metadata().num_row_groups();
        for group in 0..groups {
            // Read one group at a time to validate it; nothing but the row locations is kept.
            let decoded = self.decode_parquet_group(file_index, group as u32, source_index)?;
            for (row, result) in decoded.rows.iter().enumerate() {
                self.scanned += 1;
                let origin = format!("{}#group{group}/row{row}", self.file(file_index).display());
                match result
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|s| self.validate(s))
                {
                    Ok(()) => self.rows.push(RowLocation::Parquet {
                        file: file_index,
                        group: group as u32,
                        row: row as u32,
                    }),
                    Err(reason) => self.record_bad(origin, reason),
                }
            }
        }
        Ok(())
    }

    /// The rows of one row group. A group the `parquet` crate panics on is a format error naming the file
    /// ([`svlm_io::catch_reader_panic`]).
    fn decode_parquet_group(
        &self,
        file_index: u32,
        group: u32,
        source_index: usize,
    ) -> Result<ParquetGroup, DataError> {
        svlm_io::catch_reader_panic(|| {
            self.decode_parquet_group_rows(file_index, group, source_index)
        })
        .map_err(|e| {
            self.format_err(
                file_index,
                format!("row group {group}: malformed Parquet: {e}"),
            )
        })?
    }

    fn decode_parquet_group_rows(
        &self,
        file_index: u32,
        group: u32,
        source_index: usize,
    ) -> Result<ParquetGroup, DataError> {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let file =
            File::open(self.file(file_index)).map_err(|err| self.open_err(file_index, err))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| self.format_err(file_index, format!("not a Parquet file: {e}")))?;
        let reader = builder
            .with_row_groups(vec![group as usize])
            .build()
            .map_err(|e| self.format_err(file_index, format!("row group {group}: {e}")))?;
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch
                .map_err(|e| self.format_err(file_index, format!("row group {group}: {e}")))?;
            let schema = batch.schema();
            let text_column = ["messages", "conversations"]
                .iter()
                .find_map(|name| schema.index_of(name).ok().map(|i| (*name, i)))
                .ok_or_else(|| {
                    self.format_err(
                        file_index,
                        "Parquet needs a `messages` or `conversations` column".into(),
                    )
                })?;
            let images_column = schema
                .index_of("images")
                .ok()
                .or_else(|| schema.index_of("image").ok());
            for r in 0..batch.num_rows() {
                let origin = format!(
                    "{}#group{group}/row{}",
                    self.file(file_index).display(),
                    rows.len()
                );
                let conversation = arrow_to_json(batch.column(text_column.1).as_ref(), r);
                let images = match images_column {
                    Some(c) => parquet_images(batch.column(c).as_ref(), r, &self.image_root),
                    None => Ok(Vec::new()),
                };
                let sample = images.and_then(|images| {
                    let mut value = serde_json::Map::new();
                    value.insert(text_column.0.to_string(), conversation);
                    let value = serde_json::Value::Object(value);
                    let mut sample = if text_column.0 == "messages" {
                        parse_chat(&value, &self.image_root, origin.clone(), source_index)?
                    } else {
                        parse_conversations(&value, origin.clone(), source_index)?
                    };
                    sample.images = images;
                    Ok(sample)
                });
                rows.push(sample);
            }
        }
        Ok(ParquetGroup { rows })
    }

    fn parquet_row(&self, file: u32, group: u32, row: u32) -> Result<Sample, String> {
        let cached = {
            let cache = self
                .parquet_cache
                .lock()
                .map_err(|_| "parquet cache poisoned".to_string())?;
            cache
                .iter()
                .find(|(key, _)| *key == (file, group))
                .map(|(_, d)| d.clone())
        };
        let decoded = match cached {
            Some(d) => d,
            None => {
                let d = std::sync::Arc::new(
                    self.decode_parquet_group(file, group, 0)
                        .map_err(|e| e.to_string())?,
                );
                let mut cache = self
                    .parquet_cache
                    .lock()
                    .map_err(|_| "parquet cache poisoned".to_string())?;
                cache.push(((file, group), d.clone()));
                if cache.len() > PARQUET_CACHE_GROUPS {
                    cache.remove(0);
                }
                d
            }
        };
        decoded
            .rows
            .get(row as usize)
            .cloned()
            .ok_or_else(|| format!("row {row} is not in group {group}"))?
    }

    fn open_err(&self, file: u32, err: std::io::Error) -> DataError {
        DataError::Open {
            source_name: self.config.name.clone(),
            path: self.file(file).to_path_buf(),
            err,
        }
    }

    fn format_err(&self, file: u32, message: String) -> DataError {
        DataError::Format {
            source_name: self.config.name.clone(),
            path: self.file(file).to_path_buf(),
            message,
        }
    }
}

fn check_images_decode(sample: &Sample) -> Result<(), (String, String)> {
    // Decoding is the expensive part; the batcher decodes again. Only bytes that cannot even be sniffed fail here.
    for image in &sample.images {
        if let ImageRef::Bytes(b) = image
            && image::guess_format(b).is_err()
        {
            return Err((
                sample.origin.clone(),
                "embedded image bytes are not a known image format".into(),
            ));
        }
    }
    Ok(())
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The shard files of a synthesis output folder and their format; a `format` other than `auto` must match them.
fn synth_folder_files(config: &SourceConfig) -> Result<(Vec<PathBuf>, SourceFormat), DataError> {
    let err = |message: String| DataError::Format {
        source_name: config.name.clone(),
        path: config.path.clone(),
        message,
    };
    if !svlm_synth::folder::is_synth_folder(&config.path) {
        return Err(err(
            "a folder, but not a synthesis output folder (no manifest.json); set `path` to a data file".into(),
        ));
    }
    let shards =
        svlm_synth::folder::shard_files(&config.path).map_err(|e| err(format!("{e:#}")))?;
    let format = match shards.format {
        svlm_synth::folder::ShardFormat::Jsonl => SourceFormat::SynthJsonl,
        svlm_synth::folder::ShardFormat::Parquet => SourceFormat::Parquet,
    };
    if !matches!(config.format, SourceFormat::Auto) && config.format != format {
        return Err(err(format!(
            "format = \"{}\", but the folder's shards are {} (leave `format` out, or set it to \"{}\")",
            format_name(config.format),
            format_name(format),
            format_name(format)
        )));
    }
    if shards.unfinished > 0 {
        tracing::warn!(
            source = %config.name,
            "{}: {} shard(s) not finished; training on the {} finished",
            config.path.display(),
            shards.unfinished,
            shards.files.len()
        );
    }
    Ok((shards.files, format))
}

/// A Parquet file read with a JSON `format` would show every row as malformed JSON: name the format instead.
fn check_not_parquet(config: &SourceConfig, format: SourceFormat) -> Result<(), DataError> {
    if format == SourceFormat::Parquet {
        return Ok(());
    }
    let mut magic = [0u8; 4];
    let is_parquet = File::open(&config.path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PAR1";
    if is_parquet {
        return Err(DataError::Format {
            source_name: config.name.clone(),
            path: config.path.clone(),
            message: format!(
                "a Parquet file, but format = \"{}\" (leave `format` out, or set it to \"parquet\")",
                format_name(format)
            ),
        });
    }
    Ok(())
}

/// The name of a format as a config writes it.
fn format_name(format: SourceFormat) -> String {
    serde_json::to_value(format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{format:?}"))
}

fn detect_format(config: &SourceConfig) -> Result<SourceFormat, DataError> {
    let path = &config.path;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let err = |message: String| DataError::Format {
        source_name: config.name.clone(),
        path: path.clone(),
        message,
    };
    match ext.as_str() {
        "parquet" => return Ok(SourceFormat::Parquet),
        "json" => return Ok(SourceFormat::LlavaJson),
        "jsonl" => {}
        _ => {
            return Err(err(format!(
                "cannot tell the format from the extension `.{ext}`; set `format`"
            )));
        }
    }
    let file = File::open(path).map_err(|e| DataError::Open {
        source_name: config.name.clone(),
        path: path.clone(),
        err: e,
    })?;
    for line in BufReader::new(file).lines().take(50) {
        let line = line.map_err(|e| err(e.to_string()))?;
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if value.get("messages").is_some() {
            return Ok(SourceFormat::ChatJsonl);
        }
        if value.get("spatial").is_some() {
            return Ok(SourceFormat::SynthJsonl);
        }
        if value.get("conversations").is_some() {
            return Ok(SourceFormat::LlavaJsonl);
        }
    }
    Err(err(
        "no row with `messages` or `conversations` in the first 50 lines; set `format`".into(),
    ))
}

fn role_of(from: &str) -> Option<&'static str> {
    match from {
        "human" | "user" => Some("user"),
        "gpt" | "assistant" | "model" => Some("assistant"),
        "system" => Some("system"),
        _ => None,
    }
}

/// Split LLaVA text at `<image>` markers.
fn text_with_images(text: &str) -> Vec<SamplePart> {
    let mut parts = Vec::new();
    let mut pieces = text.split("<image>").peekable();
    while let Some(piece) = pieces.next() {
        let trimmed = piece.trim_matches('\n');
        if !trimmed.is_empty() {
            parts.push(SamplePart::Text(trimmed.to_string()));
        }
        if pieces.peek().is_some() {
            parts.push(SamplePart::Image);
        }
    }
    parts
}

fn parse_conversations(
    value: &serde_json::Value,
    origin: String,
    source: usize,
) -> Result<Sample, String> {
    let turns = value
        .get("conversations")
        .and_then(|c| c.as_array())
        .ok_or("no `conversations` array")?;
    let mut messages = Vec::new();
    for (i, turn) in turns.iter().enumerate() {
        let from = turn
            .get("from")
            .and_then(|f| f.as_str())
            .ok_or(format!("conversations[{i}] has no string `from`"))?;
        let role = role_of(from).ok_or(format!(
            "conversations[{i}].from `{from}` is not human/gpt/system"
        ))?;
        let text = turn
            .get("value")
            .and_then(|v| v.as_str())
            .ok_or(format!("conversations[{i}] has no string `value`"))?;
        messages.push(Message {
            role: role.to_string(),
            content: text_with_images(text),
        });
    }
    Ok(Sample {
        source,
        origin,
        messages,
        images: Vec::new(),
    })
}

fn parse_llava(
    value: &serde_json::Value,
    image_root: &Path,
    origin: String,
    source: usize,
) -> Result<Sample, String> {
    let mut sample = parse_conversations(value, origin, source)?;
    sample.images = match value.get("image") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => vec![ImageRef::Path(image_root.join(s))],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| ImageRef::Path(image_root.join(s)))
                    .ok_or("`image` list holds a non-string")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`image` must be a string or a list of strings".into()),
    };
    // LLaVA data with an image but no marker puts the image before the first human text.
    let markers: usize = sample
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .filter(|p| **p == SamplePart::Image)
        .count();
    if markers == 0
        && !sample.images.is_empty()
        && let Some(first) = sample.messages.iter_mut().find(|m| m.role == "user")
    {
        for _ in 0..sample.images.len() {
            first.content.insert(0, SamplePart::Image);
        }
    }
    Ok(sample)
}

fn parse_chat(
    value: &serde_json::Value,
    image_root: &Path,
    origin: String,
    source: usize,
) -> Result<Sample, String> {
    let list = value
        .get("messages")
        .and_then(|m| m.as_array())
        .ok_or("no `messages` array")?;
    let mut messages = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(|r| r.as_str())
            .ok_or(format!("messages[{i}] has no string `role`"))?;
        let role = role_of(role).ok_or(format!(
            "messages[{i}].role `{role}` is not user/assistant/system"
        ))?;
        let content = match m.get("content") {
            Some(serde_json::Value::String(s)) => text_with_images(s),
            Some(serde_json::Value::Array(parts)) => {
                let mut out = Vec::new();
                for (j, p) in parts.iter().enumerate() {
                    match p.get("type").and_then(|t| t.as_str()) {
                        Some("text") => {
                            let t = p
                                .get("text")
                                .and_then(|t| t.as_str())
                                .ok_or(format!("messages[{i}].content[{j}] has no `text`"))?;
                            out.push(SamplePart::Text(t.to_string()));
                        }
                        Some("image") | Some("image_url") => out.push(SamplePart::Image),
                        other => {
                            return Err(format!(
                                "messages[{i}].content[{j}].type {other:?} is not text/image"
                            ));
                        }
                    }
                }
                out
            }
            _ => {
                return Err(format!(
                    "messages[{i}].content must be a string or a list of parts"
                ));
            }
        };
        messages.push(Message {
            role: role.to_string(),
            content,
        });
    }
    let images = match value.get("images").or_else(|| value.get("image")) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => vec![ImageRef::Path(image_root.join(s))],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(ImageRef::Path(image_root.join(s))),
                serde_json::Value::Object(o) => o
                    .get("path")
                    .and_then(|p| p.as_str())
                    .map(|s| ImageRef::Path(image_root.join(s)))
                    .ok_or("an `images` entry has no `path`"),
                _ => Err("`images` entries must be strings or {path}"),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`images` must be a list".into()),
    };
    Ok(Sample {
        source,
        origin,
        messages,
        images,
    })
}

/// Structural checks shared by every format.
pub fn validate_sample(sample: &Sample) -> Result<(), String> {
    if !sample.messages.iter().any(|m| {
        m.role == "assistant"
            && m.content
                .iter()
                .any(|p| matches!(p, SamplePart::Text(t) if !t.trim().is_empty()))
    }) {
        return Err("no assistant turn with text (nothing to learn)".into());
    }
    let markers: usize = sample
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .filter(|p| **p == SamplePart::Image)
        .count();
    if markers != sample.images.len() {
        return Err(format!(
            "{markers} image markers but {} images",
            sample.images.len()
        ));
    }
    if sample
        .messages
        .iter()
        .any(|m| m.role == "assistant" && m.content.contains(&SamplePart::Image))
    {
        return Err("an assistant turn holds an image".into());
    }
    Ok(())
}

/// Arrow cell -> JSON (lists, structs, strings, numbers), for the conversation columns.
fn arrow_to_json(array: &dyn arrow::array::Array, row: usize) -> serde_json::Value {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    if array.is_null(row) {
        return serde_json::Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => {
            serde_json::Value::String(array.as_string::<i32>().value(row).to_string())
        }
        DataType::LargeUtf8 => {
            serde_json::Value::String(array.as_string::<i64>().value(row).to_string())
        }
        DataType::Utf8View => {
            serde_json::Value::String(array.as_string_view().value(row).to_string())
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            serde_json::Value::Array(
                (0..list.len())
                    .map(|i| arrow_to_json(list.as_ref(), i))
                    .collect(),
            )
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>().value(row);
            serde_json::Value::Array(
                (0..list.len())
                    .map(|i| arrow_to_json(list.as_ref(), i))
                    .collect(),
            )
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut map = serde_json::Map::new();
            for (i, f) in fields.iter().enumerate() {
                map.insert(f.name().clone(), arrow_to_json(s.column(i).as_ref(), row));
            }
            serde_json::Value::Object(map)
        }
        DataType::Boolean => serde_json::Value::Bool(array.as_boolean().value(row)),
        DataType::Int64 => serde_json::json!(
            array
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(row)
        ),
        DataType::Int32 => serde_json::json!(
            array
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(row)
        ),
        DataType::Float64 => serde_json::json!(
            array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(row)
        ),
        _ => serde_json::Value::Null,
    }
}

/// `images: [{bytes, path}]` (HF datasets `Image` feature in a list) or a single `image: {bytes, path}`.
fn parquet_images(
    array: &dyn arrow::array::Array,
    row: usize,
    image_root: &Path,
) -> Result<Vec<ImageRef>, String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    if array.is_null(row) {
        return Ok(Vec::new());
    }
    let one = |s: &arrow::array::StructArray, i: usize| -> Result<ImageRef, String> {
        let bytes_col = s.column_by_name("bytes");
        if let Some(b) = bytes_col
            && !b.is_null(i)
        {
            let bytes = match b.data_type() {
                DataType::Binary => b.as_binary::<i32>().value(i).to_vec(),
                DataType::LargeBinary => b.as_binary::<i64>().value(i).to_vec(),
                DataType::BinaryView => b.as_binary_view().value(i).to_vec(),
                other => return Err(format!("image `bytes` column has type {other}")),
            };
            return Ok(ImageRef::Bytes(bytes));
        }
        let path = s
            .column_by_name("path")
            .filter(|p| !p.is_null(i))
            .map(|p| arrow_to_json(p.as_ref(), i));
        match path {
            Some(serde_json::Value::String(p)) => Ok(ImageRef::Path(image_root.join(p))),
            _ => Err("image has neither bytes nor path".into()),
        }
    };
    match array.data_type() {
        DataType::Struct(_) => Ok(vec![one(array.as_struct(), row)?]),
        DataType::List(_) | DataType::LargeList(_) => {
            let list = if matches!(array.data_type(), DataType::List(_)) {
                array.as_list::<i32>().value(row)
            } else {
                array.as_list::<i64>().value(row)
            };
            let s = list
                .as_struct_opt()
                .ok_or("`images` must be a list of {bytes, path} structs")?;
            (0..s.len()).map(|i| one(s, i)).collect()
        }
        other => Err(format!(
            "`images` column has type {other}, expected list<struct<bytes, path>>"
        )),
    }
}

/// All sources of a run, indexed.
pub struct DataSet {
    pub sources: Vec<DataSource>,
}

impl DataSet {
    pub fn open(configs: &[SourceConfig], max_bad_fraction: f64) -> Result<Self, DataError> {
        let mut sources = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let source = DataSource::open(c, i)?;
            tracing::info!(
                source = %c.name,
                "indexed {} ({:?}): {} valid rows, {} bad of {} scanned",
                c.path.display(),
                source.format,
                source.len(),
                source.bad_count(),
                source.scanned
            );
            source.check_bad_fraction(max_bad_fraction)?;
            sources.push(source);
        }
        Ok(Self { sources })
    }

    /// Bad rows per source name (for the report).
    pub fn bad_rows(&self) -> HashMap<String, Vec<BadRow>> {
        self.sources
            .iter()
            .map(|s| {
                (
                    s.config.name.clone(),
                    s.bad.lock().map(|b| b.clone()).unwrap_or_default(),
                )
            })
            .collect()
    }
}
