use std::path::PathBuf;

/// Errors from bad configurations or requests (not from files).
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("could not build {what} after {attempts} attempts (seed {seed})")]
    Placement {
        what: &'static str,
        attempts: usize,
        seed: u64,
    },
}

/// Errors from reading or writing an RGB-D folder; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: missing ({what})")]
    Missing { path: PathBuf, what: String },
    #[error("{path}: cannot decode image: {source}")]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{path}: size {found_width}x{found_height} does not match {expected_width}x{expected_height} ({reason})"
    )]
    SizeMismatch {
        path: PathBuf,
        found_width: u32,
        found_height: u32,
        expected_width: u32,
        expected_height: u32,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl FrameError {
    pub fn path(&self) -> &std::path::Path {
        match self {
            FrameError::Io { path, .. }
            | FrameError::Missing { path, .. }
            | FrameError::Image { path, .. }
            | FrameError::Json { path, .. }
            | FrameError::SizeMismatch { path, .. }
            | FrameError::Invalid { path, .. } => path,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        FrameError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FrameError::Io {
            path: path.into(),
            source,
        }
    }
}
