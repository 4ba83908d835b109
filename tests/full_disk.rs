//! A disk that fills up mid-run, and a read-only one, under real `svlm train`, `svlm synth --shard` and
//! `svlm export` processes. Each job writes to a small tmpfs; a ballast file leaves about half of what the next
//! write needs. The command must fail with an error that names the path it could not write, leave what was there
//! before (checkpoints, finished shards, an earlier export) whole, and leave no half-written file under a final
//! name; once the ballast is deleted, the same resume or rerun must give exactly the uninterrupted result. The same
//! folders are then remounted read-only: the commands fail naming the path and change nothing.
//!
//! Mounting needs root (CI runs as root); where `mount` is not permitted the tests say so and pass without
//! checking. Run alone with `cargo test -p svlm-cli --test full_disk`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs mounted at a folder, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a `bytes`-sized tmpfs at `dir`; `None` (with the reason on stderr) where mounting is not permitted.
    fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "svlm-test"])
            .arg(dir)
            .output();
        match output {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs at {} (tests need root): {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .expect("mount");
        assert!(status.success(), "remount {options} {}", self.dir.display());
    }

    /// Bytes free.
    fn available(&self) -> u64 {
        let output = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.dir)
            .output()
            .expect("df");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }

    /// Fills the disk with a ballast file until about `bytes` are free.
    fn leave_free(&self, bytes: u64) -> PathBuf {
        let ballast = self.dir.join("ballast");
        let size = self.available().saturating_sub(bytes);
        std::fs::write(&ballast, vec![0u8; size as usize]).expect("ballast");
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Files under `dir` (recursive, relative, sorted) with their bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under").to_path_buf();
                out.push((rel, std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// Names in `dir` that look like a writer's leftovers (temporary files and folders).
fn leftovers(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .chain(
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        )
        .filter(|name| name.contains(".tmp") || name.contains(".export-"))
        .collect()
}

/// Bytes a folder's files take on a tmpfs (whole 4 KiB pages).
fn pages(dir: &Path) -> u64 {
    tree(dir)
        .iter()
        .map(|(_, bytes)| (bytes.len() as u64).div_ceil(4096) * 4096)
        .sum()
}

fn assert_names(err: &str, path: &Path, why: &str) {
    assert!(
        err.contains(path.to_str().expect("utf-8")) && err.contains(why),
        "the error should name {} and say {why:?}:\n{err}",
        path.display()
    );
}

fn assert_same_losses(got: &[(u64, f64)], expected: &[(u64, f64)]) {
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    for ((s, a), (t, b)) in got.iter().zip(expected) {
        assert_eq!(s, t);
        assert!((a - b).abs() <= 1e-6, "step {s}: loss {a} vs {b}");
    }
}

#[test]
fn train_on_a_full_disk_keeps_its_checkpoints_and_resumes_once_space_is_freed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tiny_set(&tmp.path().join("data"), 3);
    let steps = 4;
    let config = tiny_config(tmp.path(), &data, steps, 1);
    let reference = tmp.path().join("reference");
    ok(svlm(&[
        "train",
        "--config",
        path(&config),
        "--out",
        path(&reference),
    ]));
    let expected = losses(&reference);
    let checkpoint_bytes = pages(&reference.join("checkpoint-4"));

    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 64 << 20) else {
        return;
    };
    let run = disk.dir.join("run");
    // Room for two checkpoints (keep_last = 2) and half of a third: the third checkpoint write fails.
    let ballast = disk.leave_free(checkpoint_bytes * 5 / 2 + (64 << 10));
    let err = failed(svlm(&[
        "train",
        "--config",
        path(&config),
        "--out",
        path(&run),
    ]));
    assert_names(&err, &run, "No space left on device");
    assert_eq!(checkpoints(&run), vec![1, 2], "{err}");
    assert!(leftovers(&run).is_empty(), "{:?}", leftovers(&run));
    let before = tree(&run);

    // Read-only: the resume fails naming the run and changes nothing.
    disk.remount("ro");
    let err = failed(svlm(&["train", "--resume", path(&run)]));
    assert_names(&err, &run, "Read-only file system");
    disk.remount("rw");
    assert!(
        tree(&run) == before,
        "a failed resume changed {}",
        run.display()
    );

    // Space freed: the resume ends where an uninterrupted run ends, step for step.
    std::fs::remove_file(ballast).expect("free space");
    ok(svlm(&["train", "--resume", path(&run)]));
    assert_same_losses(&losses(&run), &expected);
    assert_eq!(checkpoints(&run), vec![3, 4]);
}

#[test]
fn synth_on_a_full_disk_keeps_finished_shards_and_reruns_once_space_is_freed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenes = 6;
    let reference = tmp.path().join("reference");
    ok(command_of(&synth_args(&reference, scenes)));
    let expected = std::fs::read(reference.join("shard-00000-of-00001.jsonl")).expect("reference");

    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 16 << 20) else {
        return;
    };
    let out = disk.dir.join("set");
    let shard = |i: usize| {
        let mut args = synth_args(&out, scenes);
        args.extend(["--shard".to_string(), format!("{i}/2")]);
        args
    };
    let free = disk.available();
    ok(command_of(&shard(0)));
    let shard_bytes = free - disk.available();
    let finished = tree(&out);

    // Half of what a shard takes is free: shard 1 fails part way through.
    let ballast = disk.leave_free(shard_bytes / 2);
    let err = failed(command_of(&shard(1)));
    assert_names(&err, &out, "No space left on device");
    assert!(
        !out.join("shard-00001-of-00002.manifest.json").exists()
            && !out.join("shard-00001-of-00002.jsonl").exists(),
        "a failed shard left its files under their final names"
    );
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    let after: Vec<_> = tree(&out)
        .into_iter()
        .filter(|(p, _)| finished.iter().any(|(q, _)| q == p))
        .collect();
    assert!(after == finished, "shard 0 changed when shard 1 failed");

    // Read-only: the rerun fails naming the folder.
    disk.remount("ro");
    let err = failed(command_of(&shard(1)));
    assert_names(&err, &out, "Read-only file system");
    disk.remount("rw");

    // Space freed: the same command finishes the shard, and the shards equal the unsharded output.
    std::fs::remove_file(ballast).expect("free space");
    ok(command_of(&shard(1)));
    let mut joined = std::fs::read(out.join("shard-00000-of-00002.jsonl")).expect("shard 0");
    joined.extend(std::fs::read(out.join("shard-00001-of-00002.jsonl")).expect("shard 1"));
    assert!(
        joined == expected,
        "the shards differ from the unsharded output"
    );
}

#[test]
fn export_on_a_full_disk_keeps_the_earlier_export_and_reruns_once_space_is_freed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = tiny_model();
    let reference = tmp.path().join("reference");
    ok(svlm(&["export", path(&model), "--out", path(&reference)]));
    let expected = tree(&reference);

    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 16 << 20) else {
        return;
    };
    let out = disk.dir.join("export");
    let export = || svlm(&["export", path(&model), "--out", path(&out), "--overwrite"]);
    ok(export());
    assert!(tree(&out) == expected);

    // Half of an export's size is free: the new export fails and the earlier one stays as it was.
    let ballast = disk.leave_free(pages(&reference) / 2);
    let err = failed(export());
    assert_names(&err, &out, "No space left on device");
    assert!(
        tree(&out) == expected,
        "a failed export changed {}",
        out.display()
    );
    assert!(
        leftovers(&disk.dir).is_empty(),
        "{:?}",
        leftovers(&disk.dir)
    );

    disk.remount("ro");
    let err = failed(export());
    assert_names(&err, &disk.dir, "Read-only file system");
    disk.remount("rw");
    assert!(tree(&out) == expected);

    std::fs::remove_file(ballast).expect("free space");
    ok(export());
    assert!(tree(&out) == expected);
}

fn command_of(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    svlm(&args)
}
