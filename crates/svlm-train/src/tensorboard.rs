//! A lean TensorBoard scalar writer: TFRecord framing (length, masked CRC32C of the length, payload, masked CRC32C of
//! the payload) around hand-encoded `Event` protobufs. Only the fields TensorBoard needs for scalars are written:
//! `Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5 }`,
//! `Summary { value = 1 (repeated) }`, `Summary.Value { tag = 1 (string), simple_value = 2 (float) }`.
//!
//! The reader here re-parses files (checking both CRCs of every record) for tests and for `svlm sweep` summaries.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn encode_event(wall_time: f64, step: i64, body: EventBody<'_>) -> Vec<u8> {
    let mut event = Vec::new();
    event.push(1 << 3 | 1); // wall_time, fixed64
    event.extend_from_slice(&wall_time.to_le_bytes());
    event.push(2 << 3); // step, varint
    put_varint(&mut event, step as u64);
    match body {
        EventBody::FileVersion(v) => put_bytes_field(&mut event, 3, v.as_bytes()),
        EventBody::Scalars(values) => {
            let mut summary = Vec::new();
            for (tag, value) in values {
                let mut v = Vec::new();
                put_bytes_field(&mut v, 1, tag.as_bytes());
                v.push(2 << 3 | 5); // simple_value, fixed32
                v.extend_from_slice(&value.to_le_bytes());
                put_bytes_field(&mut summary, 1, &v);
            }
            put_bytes_field(&mut event, 5, &summary);
        }
    }
    event
}

enum EventBody<'a> {
    FileVersion(&'a str),
    Scalars(&'a [(String, f32)]),
}

/// Appends scalar events to `events.out.tfevents.<time>.<host>.<pid>` in a log directory.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{}.{}",
            now.as_secs(),
            host,
            std::process::id()
        ));
        let out = BufWriter::new(File::create(&path)?);
        let mut writer = Self { path, out };
        writer.write_record(&encode_event(
            now.as_secs_f64(),
            0,
            EventBody::FileVersion("brain.Event:2"),
        ))?;
        writer.out.flush()?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked_crc(data).to_le_bytes())
    }

    /// One event holding several scalars at one step.
    pub fn scalars(&mut self, step: u64, values: &[(String, f32)]) -> std::io::Result<()> {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.write_record(&encode_event(wall, step as i64, EventBody::Scalars(values)))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A scalar read back from an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarEvent {
    pub step: i64,
    pub wall_time: f64,
    pub tag: String,
    pub value: f32,
}

/// Parsed event file: the file version string and the scalars.
#[derive(Debug, Default)]
pub struct EventFile {
    pub file_version: Option<String>,
    pub scalars: Vec<ScalarEvent>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.data.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("truncated field")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// (field, wire type, payload for length-delimited / fixed fields, varint value).
    fn field(&mut self) -> Result<(u32, u8, &'a [u8], u64), String> {
        let key = self.varint()?;
        let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
        match wire {
            0 => Ok((field, wire, &[], self.varint()?)),
            1 => Ok((field, wire, self.take(8)?, 0)),
            2 => {
                let n = self.varint()? as usize;
                Ok((field, wire, self.take(n)?, 0))
            }
            5 => Ok((field, wire, self.take(4)?, 0)),
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

/// Why an event file could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("record {record}: {problem}")]
    Record { record: usize, problem: String },
}

/// Read an event file, checking both CRCs of every record.
pub fn read_event_file(path: &Path) -> Result<EventFile, EventFileError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| EventFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let mut out = EventFile::default();
    let mut pos = 0usize;
    let mut record = 0usize;
    while pos < bytes.len() {
        let bad = |problem: &str| EventFileError::Record {
            record,
            problem: problem.to_string(),
        };
        let header = bytes
            .get(pos..pos + 12)
            .ok_or_else(|| bad("truncated header"))?;
        let len_bytes = &header[..8];
        let stored = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if masked_crc(len_bytes) != stored {
            return Err(bad("length CRC mismatch"));
        }
        let mut len_arr = [0u8; 8];
        len_arr.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(len_arr) as usize;
        let data = bytes
            .get(pos + 12..pos + 12 + len)
            .ok_or_else(|| bad("truncated payload"))?;
        let crc = bytes
            .get(pos + 12 + len..pos + 16 + len)
            .ok_or_else(|| bad("truncated payload CRC"))?;
        if masked_crc(data) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(bad("payload CRC mismatch"));
        }
        parse_event(data, &mut out)
            .map_err(|problem| EventFileError::Record { record, problem })?;
        pos += 16 + len;
        record += 1;
    }
    Ok(out)
}

fn parse_event(data: &[u8], out: &mut EventFile) -> Result<(), String> {
    let mut c = Cursor { data, pos: 0 };
    let (mut wall_time, mut step) = (0.0, 0i64);
    let mut values = Vec::new();
    while !c.done() {
        let (field, _, payload, varint) = c.field()?;
        match field {
            1 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(payload);
                wall_time = f64::from_le_bytes(b);
            }
            2 => step = varint as i64,
            3 => out.file_version = Some(String::from_utf8_lossy(payload).into_owned()),
            5 => {
                let mut s = Cursor {
                    data: payload,
                    pos: 0,
                };
                while !s.done() {
                    let (f, _, value_bytes, _) = s.field()?;
                    if f != 1 {
                        continue;
                    }
                    let mut v = Cursor {
                        data: value_bytes,
                        pos: 0,
                    };
                    let (mut tag, mut value) = (String::new(), None);
                    while !v.done() {
                        let (vf, _, p, _) = v.field()?;
                        match vf {
                            1 => tag = String::from_utf8_lossy(p).into_owned(),
                            2 => value = Some(f32::from_le_bytes([p[0], p[1], p[2], p[3]])),
                            _ => {}
                        }
                    }
                    if let Some(value) = value {
                        values.push((tag, value));
                    }
                }
            }
            _ => {}
        }
    }
    for (tag, value) in values {
        out.scalars.push(ScalarEvent {
            step,
            wall_time,
            tag,
            value,
        });
    }
    Ok(())
}

/// Every event file under a log dir, in name order.
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events.out.tfevents."))
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    // Verified by hand once (2026-11-25) with TensorBoard 2.21.0 reading this writer's output:
    //   from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    //   ea = EventAccumulator(dir); ea.Reload(); ea.Tags()["scalars"] -> ['loss', 'lr/language'];
    //   [(e.step, e.value) for e in ea.Scalars("loss")] -> [(1, 2.5), (2, 1.25)]
    // This test keeps the format honest without Python: CRCs, tags, steps and values must read back.
    #[test]
    fn written_scalars_read_back_with_valid_crcs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = EventWriter::create(dir.path()).expect("create");
        w.scalars(1, &[("loss".into(), 2.5), ("lr/language".into(), 1e-4)])
            .expect("write");
        w.scalars(2, &[("loss".into(), 1.25)]).expect("write");
        w.flush().expect("flush");
        let path = w.path().to_path_buf();
        let parsed = read_event_file(&path).expect("parse");
        assert_eq!(parsed.file_version.as_deref(), Some("brain.Event:2"));
        let got: Vec<(i64, &str, f32)> = parsed
            .scalars
            .iter()
            .map(|s| (s.step, s.tag.as_str(), s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "loss", 2.5),
                (1, "lr/language", 1e-4),
                (2, "loss", 1.25)
            ]
        );
        assert_eq!(event_files(dir.path()), vec![path.clone()]);

        // A flipped payload byte must fail the CRC check.
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 6;
        bytes[last] ^= 0x40;
        std::fs::write(&path, bytes).expect("write");
        assert!(
            read_event_file(&path)
                .expect_err("corrupt")
                .to_string()
                .contains("CRC")
        );
    }

    #[test]
    fn masked_crc_matches_the_tfrecord_reference_value() {
        // crc32c("") = 0 -> mask = 0xa282ead8; crc32c of 8 zero bytes from the TFRecord spec examples.
        assert_eq!(masked_crc(b""), 0xa282_ead8);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }
}
