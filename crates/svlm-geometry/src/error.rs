use thiserror::Error;

/// Errors from geometry inputs (sizes, intrinsics). Degenerate data (empty clouds) is not an error:
/// functions return empty results or `None` instead.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GeometryError {
    #[error("size mismatch: {what_a} is {a_width}x{a_height} but {what_b} is {b_width}x{b_height}")]
    SizeMismatch {
        what_a: &'static str,
        a_width: u32,
        a_height: u32,
        what_b: &'static str,
        b_width: u32,
        b_height: u32,
    },
    #[error("{what} has {actual} values but its size {width}x{height} needs {expected}")]
    DataLength {
        what: &'static str,
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },
    #[error("bad intrinsics: {0}")]
    BadIntrinsics(String),
}
