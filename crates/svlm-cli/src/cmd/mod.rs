//! One file per subcommand: each defines `Args` (clap) and `run(Args)`.

pub mod ask;
pub mod bench;
pub mod bench_kernels;
pub mod bench_model;
pub mod bench_photos;
pub mod bench_synth;
pub mod bench_train;
pub mod check_device;
pub mod eval;
pub mod export;
pub mod quickstart;
pub mod reason;
pub mod reward;
pub mod sweep;
pub mod synth;
pub mod train;
pub mod world;

/// `--device` values, checked while the command line is parsed (before any work, also where the device is used
/// late or not at all).
pub fn device(name: &str) -> Result<String, String> {
    svlm_model::check_device_name(name)
        .map(|()| name.to_string())
        .map_err(|e| e.to_string())
}

/// A `--device` that may list several devices, comma-separated (`cuda:0,cuda:1`).
pub fn device_list(names: &str) -> Result<String, String> {
    for name in names.split(',') {
        device(name)?;
    }
    Ok(names.to_string())
}
