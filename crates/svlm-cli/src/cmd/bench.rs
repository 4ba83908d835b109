use clap::Subcommand;

#[derive(Subcommand)]
pub enum Bench {
    /// Geometry + QA synthesis throughput (images/s per core).
    Synth(super::bench_synth::Args),
    /// Model forward+backward time against PyTorch on the same config.
    Model(super::bench_model::Args),
    /// Each fused CPU kernel against the Burn ops it replaces (forward+backward, ratio).
    Kernels(super::bench_kernels::Args),
    /// Training-loop throughput (samples/s, tokens/s, pad fraction, peak memory).
    Train(super::bench_train::Args),
    /// Photos/s of each stage of the photo path (depth, detection, segmentation, lifting + geometry + QA) with the
    /// full-size architectures and random weights.
    Photos(super::bench_photos::Args),
}

pub fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Synth(a) => super::bench_synth::run(a),
        Bench::Model(a) => super::bench_model::run(a),
        Bench::Train(a) => super::bench_train::run(a),
        Bench::Kernels(a) => super::bench_kernels::run(a),
        Bench::Photos(a) => super::bench_photos::run(a),
    }
}
