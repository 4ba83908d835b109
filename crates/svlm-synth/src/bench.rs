//! Throughput of the geometry + question/answer stage, per core (one rayon thread), on pre-rendered scenes.
//!
//! Stage = scene graph (exact or estimated) + templates + answer verification + the JSON record. Rendering and
//! PNG encoding are timed separately: they are not part of the stage.

use std::time::Instant;

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use svlm_world::{Rendered, Scene, SceneConfig, generate_scene, render, scene_seed};

use crate::graph::{DepthInput, EstimateParams, VisibilityParams, from_depth, from_world};
use crate::pipeline::encode_png;
use crate::qa::{QaConfig, generate, verify_answer};
use crate::record::{Role, SpatialRecord, Turn};
use crate::scene::{SceneGraph, SkipCounts};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub images: usize,
    pub width: u32,
    pub height: u32,
    pub objects: [usize; 2],
    pub qa_per_image: usize,
    pub seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            images: 100,
            width: 640,
            height: 480,
            objects: [9, 11],
            qa_per_image: 128,
            seed: 0,
        }
    }
}

/// CPU time of the calling thread in seconds (Linux `/proc/thread-self/schedstat`, nanoseconds on the CPU),
/// or `None` elsewhere. On a shared machine wall time counts other processes' turns; CPU time does not.
pub fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

/// One timed stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageTiming {
    pub name: String,
    pub images: usize,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// CPU seconds of the (single) thread that ran the stage; equals wall time on an idle machine.
    pub cpu_seconds: f64,
    /// Images per CPU second (per core); wall-clock based when CPU time is unavailable.
    pub images_per_s: f64,
    pub qa_per_image: f64,
    pub objects_per_image: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub width: u32,
    pub height: u32,
    pub threads: usize,
    /// Not part of the stage.
    pub render: StageTiming,
    pub png_encode: StageTiming,
    pub exact: StageTiming,
    /// Parts of the exact stage: the graph alone, and templates + verification + JSON alone.
    pub exact_graph_only: StageTiming,
    pub qa_only: StageTiming,
    pub estimated: StageTiming,
    /// Reference: the estimated stage with every pixel lifted and every background pixel in the RANSAC.
    pub estimated_naive: StageTiming,
}

impl BenchReport {
    /// How many times faster the shipped estimated stage is than the naive reference.
    pub fn estimated_speedup(&self) -> f64 {
        self.estimated.images_per_s / self.estimated_naive.images_per_s
    }
}

fn record_of(id: &str, graph: &SceneGraph, qa: &QaConfig, seed: u64) -> (String, usize) {
    let mut skips = SkipCounts::new();
    let qas = generate(graph, qa, &mut ChaCha8Rng::seed_from_u64(seed), &mut skips);
    let mut conversations = Vec::with_capacity(2 * qas.len());
    let mut spatial = Vec::with_capacity(qas.len());
    for q in qas {
        if verify_answer(&q).is_err() {
            continue;
        }
        conversations.push(Turn {
            from: Role::Human,
            value: q.question,
        });
        conversations.push(Turn {
            from: Role::Gpt,
            value: q.answer,
        });
        spatial.push(q.spatial);
    }
    let n = spatial.len();
    let record = SpatialRecord {
        id: id.to_string(),
        image: format!("images/{id}.png"),
        conversations,
        spatial,
        provenance: None,
    };
    (serde_json::to_string(&record).unwrap_or_default(), n)
}

fn time_stage<T>(
    name: &str,
    items: &[T],
    mut f: impl FnMut(usize, &T) -> (usize, usize),
) -> StageTiming {
    let start = Instant::now();
    let cpu_start = thread_cpu_seconds();
    let (mut qa, mut objects) = (0usize, 0usize);
    for (i, item) in items.iter().enumerate() {
        let (q, o) = f(i, item);
        qa += q;
        objects += o;
    }
    let wall_seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = match (cpu_start, thread_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => wall_seconds,
    };
    let n = items.len().max(1) as f64;
    StageTiming {
        name: name.to_string(),
        images: items.len(),
        wall_seconds,
        cpu_seconds,
        images_per_s: items.len() as f64 / cpu_seconds.max(1e-12),
        qa_per_image: qa as f64 / n,
        objects_per_image: objects as f64 / n,
    }
}

/// Runs the benchmark on one thread (a one-thread rayon pool, so library code cannot use more cores).
pub fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    pool.install(|| run_on_current_thread(cfg))
}

fn run_on_current_thread(cfg: &BenchConfig) -> Result<BenchReport> {
    let config = SceneConfig {
        width: cfg.width,
        height: cfg.height,
        objects: cfg.objects,
        unique_names: true,
        ..SceneConfig::default()
    };
    config.validate()?;
    let scenes: Vec<Scene> = (0..cfg.images)
        .map(|i| generate_scene(scene_seed(cfg.seed, i as u64), &config))
        .collect();
    let mut rendered: Vec<Rendered> = Vec::with_capacity(scenes.len());
    let render_timing = time_stage("render (not in the stage)", &scenes, |_, s| {
        rendered.push(render(s));
        (0, s.objects.len())
    });
    let pairs: Vec<(&Scene, &Rendered)> = scenes.iter().zip(rendered.iter()).collect();
    let png = time_stage("PNG encode (not in the stage)", &pairs, |_, (_, r)| {
        std::hint::black_box(encode_png(&r.rgb));
        (0, 0)
    });
    let qa = QaConfig {
        qa_per_image: cfg.qa_per_image,
        ..QaConfig::default()
    };
    let visibility = VisibilityParams::default();
    let exact = time_stage("exact graph + QA", &pairs, |i, (s, r)| {
        let g = from_world(s, r, &visibility);
        let (json, n) = record_of(&format!("b{i}"), &g, &qa, i as u64);
        std::hint::black_box(json);
        (n, g.objects.len())
    });
    let graph_only = time_stage("  of which: exact graph", &pairs, |_, (s, r)| {
        let g = from_world(s, r, &visibility);
        let n = g.objects.len();
        std::hint::black_box(g);
        (0, n)
    });
    let graphs: Vec<SceneGraph> = pairs
        .iter()
        .map(|(s, r)| from_world(s, r, &visibility))
        .collect();
    let qa_only = time_stage("  of which: templates + verify + JSON", &graphs, |i, g| {
        let (json, n) = record_of(&format!("b{i}"), g, &qa, i as u64);
        std::hint::black_box(json);
        (n, g.objects.len())
    });
    let estimated_with = |name: &str, params: &EstimateParams| {
        time_stage(name, &pairs, |i, (s, r)| {
            let names: Vec<(u16, String)> =
                s.objects.iter().map(|o| (o.id, o.name.clone())).collect();
            let input = DepthInput {
                depth: &r.depth,
                intrinsics: &s.camera.intrinsics,
                instances: &r.instances,
                names: &names,
            };
            match from_depth(&input, params) {
                Ok(g) => {
                    let (json, n) = record_of(&format!("b{i}"), &g, &qa, i as u64);
                    std::hint::black_box(json);
                    (n, g.objects.len())
                }
                Err(_) => (0, 0),
            }
        })
    };
    let estimated = estimated_with("estimated graph + QA", &EstimateParams::default());
    let estimated_naive = estimated_with(
        "estimated graph + QA, naive geometry (reference)",
        &EstimateParams::naive(),
    );
    Ok(BenchReport {
        width: cfg.width,
        height: cfg.height,
        threads: 1,
        render: render_timing,
        png_encode: png,
        exact,
        exact_graph_only: graph_only,
        qa_only,
        estimated,
        estimated_naive,
    })
}
