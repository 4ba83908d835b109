//! The estimated-truth geometry stage alone (`from_depth`) over rendered scenes, for profiling and for checking
//! that a change keeps its output bit-identical:
//!   cargo run -p svlm-synth --example geom_stage -- digest [scenes] [seed]   per-scene digests of the output
//!   cargo run -p svlm-synth --example geom_stage -- time [scenes] [reps]     ms/image (thread CPU time)
//! `time` also prints the stage's time over the time rendering the scenes took in the same process (a steadier
//! figure on a shared machine) and the time of the QA on the estimated graphs (templates, verification and the
//! JSON of the spatial part only). `digest` hashes the `Debug` text (shortest round-trip floats, so every bit
//! counts) of `extract_objects`'s `SceneGeometry` and of `from_depth`'s graph, at the default and the naive
//! settings, over scenes of 640x480 (6-11 objects) and 320x240 (1-12 objects).

use std::time::Instant;

use rand::SeedableRng;

use svlm_synth::bench::thread_cpu_seconds;
use svlm_synth::graph::{DepthInput, EstimateParams, from_depth};
use svlm_world::{Rendered, Scene, SceneConfig, generate_scene, render, scene_seed};

fn scenes(
    n: usize,
    seed: u64,
    width: u32,
    height: u32,
    objects: [usize; 2],
) -> Vec<(Scene, Rendered)> {
    let config = SceneConfig {
        width,
        height,
        objects,
        unique_names: true,
        ..SceneConfig::default()
    };
    (0..n)
        .map(|i| {
            let s = generate_scene(scene_seed(seed, i as u64), &config);
            let r = render(&s);
            (s, r)
        })
        .collect()
}

/// FNV-1a, 64 bit.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn graph_text(s: &Scene, r: &Rendered, params: &EstimateParams) -> String {
    let names: Vec<(u16, String)> = s.objects.iter().map(|o| (o.id, o.name.clone())).collect();
    let input = DepthInput {
        depth: &r.depth,
        intrinsics: &s.camera.intrinsics,
        instances: &r.instances,
        names: &names,
    };
    let geometry = svlm_geometry::extract_objects(
        &r.depth,
        &s.camera.intrinsics,
        &r.instances,
        &params.geometry,
    );
    format!("{geometry:?}\n{:?}", from_depth(&input, params))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("time", String::as_str);
    let n: usize = args.get(1).map_or(Ok(100), |a| a.parse())?;
    match mode {
        "digest" => {
            let seed: u64 = args.get(2).map_or(Ok(0), |a| a.parse())?;
            let mut all = 0u64;
            for (label, width, height, objects) in [
                ("640x480", 640, 480, [6, 11]),
                ("320x240", 320, 240, [1, 12]),
            ] {
                for (i, (s, r)) in scenes(n, seed, width, height, objects).iter().enumerate() {
                    for (pname, params) in [
                        ("default", EstimateParams::default()),
                        ("naive", EstimateParams::naive()),
                    ] {
                        let h = fnv(&graph_text(s, r, &params));
                        all = all.rotate_left(7) ^ h;
                        println!("{label} scene {i} {pname} {h:016x}");
                    }
                }
            }
            println!("all {all:016x}");
        }
        _ => {
            let reps: usize = args.get(2).map_or(Ok(5), |a| a.parse())?;
            let render_cpu = thread_cpu_seconds();
            let data = scenes(n, 0, 640, 480, [9, 11]);
            // Rendering is fixed work: the stage's time over it is a less noisy comparison on a shared machine.
            let render_ms = match (render_cpu, thread_cpu_seconds()) {
                (Some(a), Some(b)) => (b - a) / n as f64 * 1e3,
                _ => f64::NAN,
            };
            let params = EstimateParams::default();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
            pool.install(|| {
                let (start, cpu) = (Instant::now(), thread_cpu_seconds());
                let mut objects = 0;
                for _ in 0..reps {
                    for (s, r) in &data {
                        let names: Vec<(u16, String)> =
                            s.objects.iter().map(|o| (o.id, o.name.clone())).collect();
                        let input = DepthInput {
                            depth: &r.depth,
                            intrinsics: &s.camera.intrinsics,
                            instances: &r.instances,
                            names: &names,
                        };
                        objects += from_depth(&input, &params).map_or(0, |g| g.objects.len());
                    }
                }
                let seconds = match (cpu, thread_cpu_seconds()) {
                    (Some(a), Some(b)) => b - a,
                    _ => start.elapsed().as_secs_f64(),
                };
                let images = (n * reps) as f64;
                let graphs: Vec<_> = data
                    .iter()
                    .filter_map(|(s, r)| {
                        let names: Vec<(u16, String)> =
                            s.objects.iter().map(|o| (o.id, o.name.clone())).collect();
                        let input = DepthInput {
                            depth: &r.depth,
                            intrinsics: &s.camera.intrinsics,
                            instances: &r.instances,
                            names: &names,
                        };
                        from_depth(&input, &params).ok()
                    })
                    .collect();
                let qa_cpu = thread_cpu_seconds();
                let qa = svlm_synth::QaConfig {
                    qa_per_image: 128,
                    ..Default::default()
                };
                for _ in 0..reps {
                    for (i, g) in graphs.iter().enumerate() {
                        let mut skips = Default::default();
                        let qas = svlm_synth::qa::generate(
                            g,
                            &qa,
                            &mut rand_chacha::ChaCha8Rng::seed_from_u64(i as u64),
                            &mut skips,
                        );
                        let ok: Vec<_> = qas
                            .into_iter()
                            .filter(|q| svlm_synth::qa::verify_answer(q).is_ok())
                            .map(|q| q.spatial)
                            .collect();
                        std::hint::black_box(serde_json::to_string(&ok).unwrap());
                    }
                }
                if let (Some(a), Some(b)) = (qa_cpu, thread_cpu_seconds()) {
                    println!(
                        "QA on the estimated graphs: {:.3} ms/image",
                        (b - a) / (graphs.len() * reps) as f64 * 1e3
                    );
                }
                println!(
                    "from_depth: {:.3} ms/image ({:.1} images/s/core), {:.2} objects/image, {:.3} x render",
                    seconds / images * 1e3,
                    images / seconds,
                    objects as f64 / images,
                    seconds / images * 1e3 / render_ms
                );
            });
        }
    }
    Ok(())
}
