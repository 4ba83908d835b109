//! Named points inside multi-step writes (a shard between its data and its manifest, a checkpoint between its
//! files and its rename) where a crash test can stop a real process and kill it: with `SVLM_PAUSE_AT=<name>` in the
//! environment, the process announces `paused at <name>` on stderr and sleeps at that point. Without the variable
//! a point costs one environment lookup per write.

/// The environment variable that names the point to pause at.
pub const PAUSE_ENV: &str = "SVLM_PAUSE_AT";

/// Pauses for `SVLM_PAUSE_SECONDS` (default 60) when `SVLM_PAUSE_AT` is `name`.
pub fn pause_point(name: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|v| v == name) {
        let seconds = std::env::var("SVLM_PAUSE_SECONDS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(60);
        eprintln!("paused at {name}");
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }
}
