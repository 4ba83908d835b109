//! One file per subcommand: each defines `Args` (clap) and `run(Args)`.

pub mod ask;
pub mod bench;
pub mod bench_kernels;
pub mod bench_model;
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
