//! Atomic file writes: the one way svlm writes a file; and [`contain`], readers of outside files whose panics
//! become errors.
//!
//! A reader never sees a half-written file, and a written file survives a crash: the bytes go to a temporary file in
//! the target's folder, which is flushed to disk (`fsync`) and renamed over the target; then the folder itself is
//! flushed so the rename is durable. Missing parent folders are created. The file gets the permissions an ordinary
//! `File::create` would give (`0o666` minus the user's umask), not the temporary file's private `0o600`, so a data
//! set written on a shared machine is readable by whoever the umask allows.
//!
//! Errors name the target path.

pub mod contain;

pub use contain::catch_reader_panic;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically and durably (see the crate docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], with the contents produced by `write` into a buffered writer.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    {
        let mut writer = BufWriter::new(file.as_file_mut());
        write(&mut writer).map_err(|e| named(path, "writing", e))?;
        writer.flush().map_err(|e| named(path, "writing", e))?;
    }
    file.commit()
}

/// A file being written in place of `path`: invisible under its final name until [`AtomicFile::commit`].
/// Dropped without a commit, the temporary file is removed and `path` is untouched.
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file next to `path` (parents created).
    pub fn create(path: &Path) -> io::Result<Self> {
        let dir = parent_dir(path);
        std::fs::create_dir_all(dir).map_err(|e| named(dir, "creating folder", e))?;
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Passed to open(2), so the umask applies as for File::create.
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder
            .tempfile_in(dir)
            .map_err(|e| named(path, "creating a temporary file for", e))?;
        Ok(Self {
            temp,
            path: path.to_path_buf(),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn as_file(&self) -> &File {
        self.temp.as_file()
    }

    pub fn as_file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// A second handle on the temporary file (for writers that take a `File` by value).
    pub fn reopen(&self) -> io::Result<File> {
        self.temp
            .reopen()
            .map_err(|e| named(&self.path, "reopening the temporary file for", e))
    }

    /// Flushes the file to disk, renames it over the final path and flushes the folder.
    pub fn commit(self) -> io::Result<()> {
        let path = self.path;
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| named(&path, "syncing", e))?;
        self.temp
            .persist(&path)
            .map_err(|e| named(&path, "renaming into", e.error))?;
        sync_dir(parent_dir(&path))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// A temporary folder in `parent` (created if missing) whose name starts with `prefix`, for building a folder that
/// is then renamed into place whole. It gets the umask's permissions (`0o777` minus the umask), not tempfile's
/// private `0o700`, so the renamed folder is readable like any other. Removed on drop unless kept.
pub fn temp_dir_in(parent: &Path, prefix: &str) -> io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent).map_err(|e| named(parent, "creating folder", e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o777));
    }
    builder
        .tempdir_in(parent)
        .map_err(|e| named(parent, "creating a temporary folder in", e))
}

/// Flushes a folder's entries (a rename inside it) to disk. A no-op where folders cannot be opened (Windows).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| named(dir, "syncing folder", e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn named(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets the process umask and returns the previous one (`mode_t` is `u32` on Linux).
    #[cfg(target_os = "linux")]
    fn set_umask(mask: u32) -> u32 {
        unsafe extern "C" {
            fn umask(mask: u32) -> u32;
        }
        // SAFETY: umask(2) only swaps the process's file-creation mask.
        unsafe { umask(mask) }
    }

    #[test]
    fn writes_replaces_creates_parents_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a/b/x.txt");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.txt")]);

        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::PermissionsExt;
            // The other tests of this binary do not look at modes, so changing the mask for a moment is safe.
            let old = set_umask(0o022);
            let q = dir.path().join("shared.txt");
            let written = write_atomic(&q, b"x");
            set_umask(old);
            written.expect("write");
            let mode = std::fs::metadata(&q).expect("stat").permissions().mode() & 0o777;
            assert_eq!(
                mode, 0o644,
                "mode {mode:o}: the umask, not a private temp-file mode"
            );

            let old = set_umask(0o022);
            let staged = temp_dir_in(dir.path(), ".stage-");
            set_umask(old);
            let staged = staged.expect("temp dir");
            let mode = std::fs::metadata(staged.path())
                .expect("stat")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o755, "folder mode {mode:o}");
        }
    }

    #[test]
    fn a_dropped_file_leaves_the_target_untouched_and_errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.txt");
        write_atomic(&p, b"kept").expect("write");
        {
            let mut f = AtomicFile::create(&p).expect("create");
            f.write_all(b"lost").expect("write");
        }
        assert_eq!(std::fs::read(&p).expect("read"), b"kept");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);

        // A file where a folder should be.
        let bad = p.join("under_a_file.txt");
        let err = write_atomic(&bad, b"x").expect_err("parent is a file");
        assert!(err.to_string().contains("x.txt"), "{err}");
    }

    #[test]
    fn streamed_contents_arrive_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("lines.jsonl");
        write_atomic_with(&p, |w| {
            for i in 0..1000 {
                writeln!(w, "{i}")?;
            }
            Ok(())
        })
        .expect("write");
        let text = std::fs::read_to_string(&p).expect("read");
        assert_eq!(text.lines().count(), 1000);
        assert!(text.ends_with("999\n"));
    }
}
