//! Readers of outside files that panic on some malformed inputs, contained.
//!
//! The `parquet` crate panics on some malformed footers and page headers (a bool field whose wire type is not a
//! bool reaches an `unwrap()` in its thrift decoder). A file from a stranger is normal input for svlm, so such a
//! panic must end as an error naming the file, or as a counted bad row, not as the end of a training run.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs a contained reader: its panics are turned into errors, not printed.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `read`; a panic inside it becomes `Err(message)` instead of unwinding further. The panic message is not
/// printed (other threads' panics still are, by the hook that was installed before). `read` must leave no shared
/// state half-updated when it panics: give it only what it reads.
pub fn catch_reader_panic<R>(read: impl FnOnce() -> R) -> Result<R, String> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CONTAINED.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(read));
    CONTAINED.with(|c| c.set(was));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        format!("the reader panicked: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_flag_is_restored() {
        assert_eq!(catch_reader_panic(|| 7), Ok(7));
        let err = catch_reader_panic(|| "not a number".parse::<u32>().unwrap()).unwrap_err();
        assert!(err.contains("InvalidDigit"), "{err}");
        let nested = catch_reader_panic(|| catch_reader_panic(|| panic!("inner")).unwrap_err());
        assert_eq!(nested.as_deref(), Ok("the reader panicked: inner"));
        assert!(!CONTAINED.with(Cell::get));
    }
}
