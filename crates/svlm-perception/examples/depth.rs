//! Metric depth for photos with a Depth Anything V2 or Depth Pro folder or hub id, written as 16-bit PNGs in
//! millimetres.
//!
//! ```text
//! cargo run --release -p svlm-perception --example depth -- \
//!     depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf OUT_DIR photo1.jpg photo2.png [--device cuda]
//! ```
//! (`--features cuda` or `vulkan` for a GPU; `HF_HUB_OFFLINE=1` to use the HF cache only.) Prints per photo the
//! depth range, the intrinsics estimate with its source, and the time per photo.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use svlm_perception::{DepthModel, IntrinsicsOptions};

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
    if args.len() < 3 {
        bail!("usage: depth MODEL OUT_DIR IMAGE... [--device cpu|cuda|vulkan]");
    }
    let device = svlm_model::resolve_device(&device_name)?;
    let model = DepthModel::from_pretrained(&args[0], None, &device)?;
    let out_dir = PathBuf::from(&args[1]);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let options = IntrinsicsOptions::default();
    for path in args[2..].iter().map(Path::new) {
        let start = Instant::now();
        let lifted = model.lift_photo(path, &options)?;
        let elapsed = start.elapsed();
        let depth = &lifted.depth;
        let (lo, hi) = depth
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        println!(
            "{}: {}x{}, depth {lo:.2}..{hi:.2} m, fx {:.1} ({:?}), {:.0} ms; {}",
            path.display(),
            depth.width,
            depth.height,
            lifted.intrinsics.intrinsics.fx,
            lifted.intrinsics.source,
            elapsed.as_secs_f64() * 1e3,
            serde_json::to_string(&lifted.record)?
        );
        let mm: Vec<u16> = depth
            .data
            .iter()
            .map(|&v| (v * 1000.0).round().clamp(0.0, 65535.0) as u16)
            .collect();
        let png = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(
            depth.width,
            depth.height,
            mm,
        )
        .context("depth map size")?;
        let stem = path.file_stem().and_then(|n| n.to_str()).unwrap_or("image");
        let out = out_dir.join(format!("{stem}_depth_mm.png"));
        let mut bytes = Vec::new();
        image::DynamicImage::ImageLuma16(png)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .context("encoding the depth PNG")?;
        svlm_model::io::write_atomic(&out, &bytes)?;
    }
    Ok(())
}
