//! Timing of scene generation + rendering at a given size, single core (rayon not used).
//!
//! `cargo run --release -p svlm-world --example world_bench -- [scenes=500] [size=256] [out_dir]`
//! With `out_dir`, also writes the first 8 frames there as an RGB-D folder to look at.
//! Prints rates by wall clock and by this process's CPU time (Linux `/proc/self/stat`): on a shared, loaded
//! machine the CPU-time rate is the per-core figure.

use std::path::PathBuf;
use std::time::Instant;

use svlm_world::{SceneConfig, generate_scene, render, scene_seed, write_frame};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenes: u64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(500);
    let size: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let out = args.get(2).map(PathBuf::from);
    let config = SceneConfig {
        width: size,
        height: size,
        ..SceneConfig::default()
    };

    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let generated: Vec<_> = (0..scenes)
        .map(|i| generate_scene(scene_seed(7, i), &config))
        .collect();
    let generate_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut pixels_on_objects = 0usize;
    let mut objects = 0usize;
    for scene in &generated {
        let rendered = render(scene);
        pixels_on_objects += rendered.instances.iter().filter(|&&id| id != 0).count();
        objects += scene.objects.len();
    }
    let render_s = start.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
    let start = Instant::now();
    for scene in &generated {
        let mut empty = scene.clone();
        empty.objects.clear();
        std::hint::black_box(render(&empty));
    }
    println!(
        "background only: {:.0} scenes/s",
        scenes as f64 / start.elapsed().as_secs_f64()
    );
    let n = scenes as f64;
    println!(
        "{scenes} scenes at {size}x{size}, {:.1} objects/scene, {:.1}% object pixels: generate {:.0} scenes/s, render {:.0} scenes/s, both {:.0} scenes/s (one core)",
        objects as f64 / n,
        100.0 * pixels_on_objects as f64 / (n * size as f64 * size as f64),
        n / generate_s,
        n / render_s,
        n / (generate_s + render_s)
    );
    if let Some(cpu) = cpu_s {
        println!(
            "by CPU time: generate + render {:.0} scenes/s per core ({cpu:.2} s CPU)",
            n / cpu
        );
    }
    if let Some(dir) = out {
        for (i, scene) in generated.iter().take(8).enumerate() {
            write_frame(&dir, &format!("scene_{i:03}"), &render(scene), scene)?;
        }
        println!("wrote 8 frames to {}", dir.display());
    }
    Ok(())
}

/// User + system CPU seconds of this process, from `/proc/self/stat` (fields 14 and 15, in clock ticks of
/// 1/100 s on Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
