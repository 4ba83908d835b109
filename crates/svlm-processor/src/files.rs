//! Reading and atomically writing the JSON files of an HF processor folder.

use std::path::Path;

use serde_json::Value;

use crate::error::{ProcessorError, Result};

pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ProcessorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn read_json(path: &Path) -> Result<Value> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|source| ProcessorError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `path` if it exists; `Ok(None)` when it does not.
pub fn read_json_if_exists(path: &Path) -> Result<Option<Value>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Writes `path` atomically and durably (`svlm_io::write_atomic`).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    svlm_io::write_atomic(path, contents).map_err(|source| ProcessorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn write_json_atomic(path: &Path, value: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| ProcessorError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// A typed view of one JSON object read from `path`, so every error names the file and the key.
pub struct JsonFile<'a> {
    pub path: &'a Path,
    pub value: &'a Value,
}

impl<'a> JsonFile<'a> {
    pub fn new(path: &'a Path, value: &'a Value) -> Self {
        Self { path, value }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    pub fn require(&self, key: &str) -> Result<&'a Value> {
        self.get(key).ok_or_else(|| ProcessorError::MissingKey {
            path: self.path.to_path_buf(),
            key: key.to_string(),
        })
    }

    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ProcessorError {
        ProcessorError::InvalidKey {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.invalid(key, format!("expected a boolean, got {v}"))),
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.invalid(key, format!("expected a number, got {v}"))),
        }
    }

    pub fn usize_value(&self, key: &str, v: &Value) -> Result<usize> {
        v.as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| self.invalid(key, format!("expected a non-negative integer, got {v}")))
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => self.usize_value(key, v),
        }
    }

    pub fn require_usize(&self, key: &str) -> Result<usize> {
        let v = self.require(key)?;
        self.usize_value(key, v)
    }

    pub fn str_or(&self, key: &str, default: &str) -> Result<String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| self.invalid(key, format!("expected a string, got {v}"))),
        }
    }

    /// A per-channel float list (`image_mean`, `image_std`); a single number means the same for all channels.
    pub fn triple_or(&self, key: &str, default: [f32; 3]) -> Result<[f32; 3]> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => self.triple_value(key, v),
        }
    }

    fn triple_value(&self, key: &str, v: &Value) -> Result<[f32; 3]> {
        if let Some(x) = v.as_f64() {
            return Ok([x as f32; 3]);
        }
        let items = v
            .as_array()
            .ok_or_else(|| self.invalid(key, format!("expected 3 numbers, got {v}")))?;
        if items.len() != 3 {
            return Err(self.invalid(key, format!("expected 3 numbers, got {}", items.len())));
        }
        let mut out = [0f32; 3];
        for (o, item) in out.iter_mut().zip(items) {
            *o = item
                .as_f64()
                .ok_or_else(|| self.invalid(key, format!("expected a number, got {item}")))?
                as f32;
        }
        Ok(out)
    }
}
