//! `svlm bench synth`: images/s per core of the geometry + question/answer stage.

use svlm_synth::bench::{BenchConfig, StageTiming};

#[derive(clap::Args)]
pub struct Args {
    /// Scenes to time (each stage runs over all of them).
    #[arg(long, default_value_t = 100)]
    images: usize,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 480)]
    height: u32,
    /// Objects per scene, MIN-MAX.
    #[arg(long, default_value = "9-11")]
    objects: String,
    /// Questions asked per image.
    #[arg(long, default_value_t = 128)]
    qa_per_image: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn row(t: &StageTiming) {
    println!(
        "| {:<50} | {:>9.1} | {:>9.3} | {:>7.1} | {:>7.1} |",
        t.name,
        t.images_per_s,
        1e3 / t.images_per_s,
        t.qa_per_image,
        t.objects_per_image
    );
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (lo, hi) = args
        .objects
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--objects {:?} must look like MIN-MAX", args.objects))?;
    let cfg = BenchConfig {
        images: args.images,
        width: args.width,
        height: args.height,
        objects: [lo, hi],
        qa_per_image: args.qa_per_image,
        seed: args.seed,
    };
    let report = svlm_synth::bench::run(&cfg)?;
    println!(
        "synth stage throughput, one core (thread CPU time), {}x{}, {} scenes",
        report.width, report.height, cfg.images
    );
    println!(
        "| {:<50} | {:>9} | {:>9} | {:>7} | {:>7} |",
        "stage", "img/s/core", "ms/image", "QA/img", "obj/img"
    );
    println!(
        "|{:-<52}|{:-<11}|{:-<11}|{:-<9}|{:-<9}|",
        "", "", "", "", ""
    );
    for t in [
        &report.exact,
        &report.exact_graph_only,
        &report.qa_only,
        &report.estimated,
        &report.estimated_naive,
        &report.render,
        &report.png_encode,
    ] {
        row(t);
    }
    println!(
        "estimated stage vs naive-geometry reference: {:.2}x; exact stage: {:.0} images/s/core (goal >= 1000)",
        report.estimated_speedup(),
        report.exact.images_per_s
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
