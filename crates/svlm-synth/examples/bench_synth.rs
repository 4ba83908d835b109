//! The `svlm bench synth` measurement without building the CLI (which needs Burn):
//! `cargo run --release -p svlm-synth --example bench_synth -- [images] [qa_per_image]`

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut cfg = svlm_synth::bench::BenchConfig::default();
    if let Some(n) = args.next() {
        cfg.images = n.parse()?;
    }
    if let Some(q) = args.next() {
        cfg.qa_per_image = q.parse()?;
    }
    let report = svlm_synth::bench::run(&cfg)?;
    for t in [
        &report.exact,
        &report.exact_graph_only,
        &report.qa_only,
        &report.estimated,
        &report.estimated_naive,
        &report.render,
        &report.png_encode,
    ] {
        println!(
            "{:<50} {:>9.1} images/s  {:>8.3} ms/image  {:>6.1} QA/image  {:>5.1} objects/image",
            t.name,
            t.images_per_s,
            1e3 / t.images_per_s,
            t.qa_per_image,
            t.objects_per_image
        );
    }
    println!(
        "estimated stage vs naive-geometry reference: {:.2}x",
        report.estimated_speedup()
    );
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
