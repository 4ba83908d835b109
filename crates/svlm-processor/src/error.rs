use std::path::PathBuf;

/// Errors of the processor. File-related variants name the file (and the key, for configs).
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: missing required key `{key}`")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: key `{key}` is invalid: {message}")]
    InvalidKey {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("cannot decode image {path}: {message}")]
    Image { path: PathBuf, message: String },
    #[error("chat template: {0}")]
    Template(String),
    #[error("tokenization failed: {0}")]
    Encode(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = ProcessorError> = std::result::Result<T, E>;
