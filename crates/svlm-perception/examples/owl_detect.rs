//! Open-vocabulary detection in photos with an OWLv2 / OWL-ViT folder or hub id; prints one JSON line per photo.
//!
//! ```text
//! cargo run --release -p svlm-perception --features cuda --example owl_detect -- \
//!     google/owlv2-base-patch16-ensemble "a mug,a spoon,a plate" 0.2 photo1.jpg photo2.png --device cuda
//! ```
//! (`--features vulkan` with `--device vulkan` where CUDA does not build; `--device cpu` works everywhere but
//! a 960x960 OWLv2-B/16 forward pass takes seconds on a CPU. `HF_HUB_OFFLINE=1` to use the HF cache only.)
//! Queries are comma-separated; the threshold applies to `sigmoid(logit)` as in transformers'
//! `post_process_object_detection`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use svlm_perception::OwlDetector;

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut device_name = "cpu".to_string();
    if let Some(i) = args.iter().position(|a| a == "--device") {
        if i + 1 >= args.len() {
            bail!("--device needs a value (cpu, cuda, vulkan)");
        }
        device_name = args.remove(i + 1);
        args.remove(i);
    }
    if args.len() < 4 {
        bail!(
            "usage: owl_detect MODEL \"query 1,query 2\" THRESHOLD IMAGE... [--device cpu|cuda|vulkan]"
        );
    }
    let device = svlm_model::resolve_device(&device_name)?;
    let start = Instant::now();
    let detector = OwlDetector::from_pretrained(&args[0], None, &device)?;
    eprintln!(
        "loaded {} ({:?}) in {:.1} s",
        args[0],
        detector.version(),
        start.elapsed().as_secs_f64()
    );
    let queries: Vec<&str> = args[1]
        .split(',')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .collect();
    let threshold: f32 = args[2]
        .parse()
        .with_context(|| format!("threshold `{}` is not a number", args[2]))?;
    for path in args[3..].iter().map(Path::new) {
        let image = image::open(path)
            .with_context(|| format!("reading {}", path.display()))?
            .to_rgb8();
        let start = Instant::now();
        let detections = detector.detect(&image, &queries, threshold)?;
        let line = serde_json::json!({
            "image": path.display().to_string(),
            "ms": start.elapsed().as_secs_f64() * 1e3,
            "detections": detections,
        });
        println!("{line}");
    }
    Ok(())
}
