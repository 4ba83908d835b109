//! Stage timings of the geometry pipeline on a 640x480 ray-cast frame with 10 boxes on a floor, one thread.
//! Ignored by default (timings need a release build):
//!   cargo test --release -p svlm-geometry --test timing -- --ignored --nocapture

mod common;

use std::hint::black_box;
use std::time::Instant;

use svlm_geometry::{
    Aabb, Obb, ObjectParams, Vector3, closest_distance, depth_to_instance_points, depth_to_points,
    extract_objects, largest_cluster, remove_statistical_outliers, voxel_downsample,
};

/// Nanoseconds this thread has spent on a CPU (Linux schedstat): on a shared, loaded machine wall time mostly
/// measures waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Milliseconds per call: thread CPU time where the OS reports it, wall time otherwise.
fn time_per_call<T>(iterations: usize, mut f: impl FnMut() -> T) -> f64 {
    black_box(f());
    let (start, cpu_start) = (Instant::now(), thread_cpu_ns());
    for _ in 0..iterations {
        black_box(f());
    }
    let seconds = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 * 1e-9,
        _ => start.elapsed().as_secs_f64(),
    };
    seconds / iterations as f64 * 1e3
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn geometry_stage_timings_640x480() {
    let scene = common::boxes_scene(640, 480, 10);
    let params = ObjectParams::default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let n = 200;
        let full_lift = time_per_call(n, || depth_to_points(&scene.depth, &scene.intrinsics, None).unwrap());
        let instance_lift = time_per_call(n, || {
            depth_to_instance_points(&scene.depth, &scene.intrinsics, &scene.ids, params.stride).unwrap()
        });
        let objects = depth_to_instance_points(&scene.depth, &scene.intrinsics, &scene.ids, params.stride).unwrap();
        let raw_points: usize = objects.values().map(|(c, _)| c.len()).sum();
        let voxel = time_per_call(n, || {
            objects.values().map(|(c, _)| voxel_downsample(c, params.voxel_size).len()).sum::<usize>()
        });
        let down: Vec<_> = objects.values().map(|(c, _)| voxel_downsample(c, params.voxel_size)).collect();
        let down_points: usize = down.iter().map(|c| c.len()).sum();
        let sor = time_per_call(n, || {
            down.iter().map(|c| remove_statistical_outliers(c, params.sor_neighbors, params.sor_std_ratio).1.len()).sum::<usize>()
        });
        let kept: Vec<_> =
            down.iter().map(|c| remove_statistical_outliers(c, params.sor_neighbors, params.sor_std_ratio).0).collect();
        let dbscan = time_per_call(n, || kept.iter().map(|c| largest_cluster(c, 0.06, params.dbscan_min_points).len()).sum::<usize>());
        let boxes = time_per_call(n, || {
            kept.iter()
                .map(|c| {
                    let aabb = Aabb::from_points(&c.points).unwrap();
                    let obb = Obb::from_points_upright(&c.points, &Vector3::new(0.0, -1.0, 0.0)).unwrap();
                    aabb.volume() + obb.volume()
                })
                .sum::<f64>()
        });
        let pairs = time_per_call(n, || {
            let mut total = 0.0;
            for i in 0..kept.len() {
                for j in i + 1..kept.len() {
                    total += closest_distance(&kept[i].points, &kept[j].points);
                }
            }
            total
        });
        let total = time_per_call(n, || extract_objects(&scene.depth, &scene.intrinsics, &scene.ids, &params).unwrap());
        let geometry = extract_objects(&scene.depth, &scene.intrinsics, &scene.ids, &params).unwrap();
        let sparse_pairs = time_per_call(n, || {
            let mut total = 0.0;
            for (i, a) in geometry.objects.iter().enumerate() {
                for b in &geometry.objects[i + 1..] {
                    total += closest_distance(&a.sparse_points, &b.sparse_points);
                }
            }
            total
        });
        let sparse: usize = geometry.objects.iter().map(|o| o.sparse_points.len()).sum();
        let kept: usize = geometry.objects.iter().map(|o| o.points.len()).sum();
        eprintln!(
            "640x480, {} objects, stride {}, voxel {} m, one thread, ms of thread CPU time per image",
            objects.len(),
            params.stride,
            params.voxel_size
        );
        eprintln!("  full-frame lift (307k px)         {full_lift:.3} ms");
        eprintln!("  instance lift (stride {})          {instance_lift:.3} ms  -> {raw_points} object points", params.stride);
        eprintln!("  voxel downsample, all objects     {voxel:.3} ms  -> {down_points} points");
        eprintln!("  SOR (k {}), all objects           {sor:.3} ms", params.sor_neighbors);
        eprintln!("  DBSCAN largest cluster, all       {dbscan:.3} ms");
        eprintln!("  AABB + upright OBB, all           {boxes:.3} ms");
        eprintln!("  closest distance, all 45 pairs    {pairs:.3} ms");
        eprintln!(
            "  extract_objects (lift, ground + frame, per object voxel <= {} / SOR / DBSCAN on voxels, boxes on kept \
             full-res points): {total:.3} ms/image = {:.0} images/s/core; plane found: {}; {sparse} voxels, {kept} points kept",
            params.max_filter_points,
            1e3 / total,
            geometry.frame.plane_found
        );
        eprintln!("  closest distance, 45 pairs of sparse points  {sparse_pairs:.3} ms");
        for (name, variant) in [
            ("no SOR, no DBSCAN", ObjectParams { sor_neighbors: 0, dbscan_eps: 0.0, ..params }),
            ("SOR k 10, <= 150 voxels", ObjectParams { sor_neighbors: 10, max_filter_points: 150, ..params }),
            ("stride 4, SOR k 10, <= 150 voxels", ObjectParams { stride: 4, sor_neighbors: 10, max_filter_points: 150, ..params }),
        ] {
            let ms = time_per_call(n, || extract_objects(&scene.depth, &scene.intrinsics, &scene.ids, &variant).unwrap());
            eprintln!("  extract_objects, {name}: {ms:.3} ms/image = {:.0} images/s/core", 1e3 / ms);
        }
        assert_eq!(geometry.objects.len(), 10);
    });
}
