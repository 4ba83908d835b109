//! Parity with open3d 0.20 on real data: the Middlebury 2014 Motorcycle depth (scikit-image's copy), fixture made
//! by `scripts/make_geometry_fixtures.py` (depth as 0.1 mm uint16 plus open3d's results as JSON).
//! Tolerances follow the project's acceptance criteria: ground-plane normal within 1 degree, voxel counts within
//! 1%, DBSCAN cluster counts equal, box extents within 1%.

use std::path::PathBuf;

use serde::Deserialize;
use svlm_geometry::{
    Aabb, DepthMap, GroundPlaneParams, Intrinsics, Obb, Plane, Point3, PointCloud, Unit, Vector3,
    canonical_frame, cluster_count, dbscan, depth_to_points, find_ground_plane, largest_cluster,
    remove_statistical_outliers, segment_plane, voxel_downsample,
};

#[derive(Deserialize)]
struct Fixture {
    open3d_version: String,
    depth_file: String,
    width: u32,
    height: u32,
    depth_unit_m: f32,
    intrinsics: Intrinsics,
    lift: Lift,
    voxel_down_sample: Vec<VoxelCount>,
    statistical_outlier: Sor,
    segment_plane: SegmentPlane,
    dbscan: Vec<Dbscan>,
    boxes: BoxSets,
}

#[derive(Deserialize)]
struct Lift {
    points: usize,
}

#[derive(Deserialize)]
struct VoxelCount {
    voxel_size: f64,
    points: usize,
}

#[derive(Deserialize)]
struct Sor {
    voxel_size: f64,
    nb_neighbors: usize,
    std_ratio: f64,
    kept: usize,
}

#[derive(Deserialize)]
struct SegmentPlane {
    voxel_size: f64,
    distance_threshold: f64,
    ransac_n: usize,
    num_iterations: usize,
    plane: [f64; 4],
    inliers: usize,
}

#[derive(Deserialize)]
struct Dbscan {
    voxel_size: f64,
    eps: f64,
    min_points: usize,
    clusters: usize,
    noise: usize,
    largest: usize,
}

#[derive(Deserialize)]
struct BoxSets {
    whole_cloud: Boxes,
    largest_cluster: ClusterBoxes,
}

#[derive(Deserialize)]
struct Boxes {
    points: usize,
    aabb_min: [f64; 3],
    aabb_max: [f64; 3],
    obb_extent: [f64; 3],
    hull_vertices: usize,
}

#[derive(Deserialize)]
struct ClusterBoxes {
    voxel_size: f64,
    eps: f64,
    min_points: usize,
    #[serde(flatten)]
    boxes: Boxes,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn load() -> (Fixture, PointCloud) {
    let json_path = fixture_dir().join("motorcycle_open3d.json");
    let text = std::fs::read_to_string(&json_path)
        .unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
    let fixture: Fixture =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
    let depth_path = fixture_dir().join(&fixture.depth_file);
    let bytes =
        std::fs::read(&depth_path).unwrap_or_else(|e| panic!("{}: {e}", depth_path.display()));
    assert_eq!(
        bytes.len(),
        2 * (fixture.width * fixture.height) as usize,
        "{}",
        depth_path.display()
    );
    // The same f32 operation as the script, so the lifted points are bit-identical to open3d's.
    let depth: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as f32 * fixture.depth_unit_m)
        .collect();
    let depth = DepthMap::new(fixture.width, fixture.height, depth).unwrap();
    let (cloud, stats) = depth_to_points(&depth, &fixture.intrinsics, None).unwrap();
    assert_eq!(
        stats.valid + stats.invalid,
        (fixture.width * fixture.height) as usize
    );
    (fixture, cloud)
}

fn within_percent(actual: f64, expected: f64, percent: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * percent / 100.0
}

fn assert_extents(what: &str, actual: Vector3<f64>, expected: [f64; 3]) {
    for k in 0..3 {
        assert!(
            within_percent(actual[k], expected[k], 1.0),
            "{what}: extent {k} is {} but open3d has {} (all: {actual:?} vs {expected:?})",
            actual[k],
            expected[k]
        );
    }
}

#[test]
fn lift_and_voxel_counts_match_open3d() {
    let (fixture, cloud) = load();
    eprintln!("open3d {}", fixture.open3d_version);
    assert_eq!(cloud.len(), fixture.lift.points);
    for expected in &fixture.voxel_down_sample {
        let got = voxel_downsample(&cloud, expected.voxel_size).len();
        eprintln!(
            "voxel {}: {got} vs open3d {}",
            expected.voxel_size, expected.points
        );
        assert!(
            within_percent(got as f64, expected.points as f64, 1.0),
            "voxel {}: {got} points, open3d {}",
            expected.voxel_size,
            expected.points
        );
    }
}

#[test]
fn statistical_outlier_removal_matches_open3d() {
    let (fixture, cloud) = load();
    let sor = &fixture.statistical_outlier;
    let down = voxel_downsample(&cloud, sor.voxel_size);
    let (kept, indices) = remove_statistical_outliers(&down, sor.nb_neighbors, sor.std_ratio);
    eprintln!("SOR kept {} vs open3d {}", kept.len(), sor.kept);
    assert_eq!(kept.len(), indices.len());
    assert!(
        within_percent(kept.len() as f64, sor.kept as f64, 1.0),
        "kept {} vs open3d {}",
        kept.len(),
        sor.kept
    );
}

#[test]
fn dbscan_cluster_counts_equal_open3d() {
    let (fixture, cloud) = load();
    for expected in &fixture.dbscan {
        let down = voxel_downsample(&cloud, expected.voxel_size);
        let labels = dbscan(&down.points, expected.eps, expected.min_points);
        let noise = labels.iter().filter(|l| l.is_none()).count();
        let largest = largest_cluster(&down, expected.eps, expected.min_points).len();
        eprintln!(
            "DBSCAN eps {} min {}: {} clusters / {noise} noise / largest {largest} vs open3d {} / {} / {}",
            expected.eps,
            expected.min_points,
            cluster_count(&labels),
            expected.clusters,
            expected.noise,
            expected.largest
        );
        assert_eq!(
            cluster_count(&labels),
            expected.clusters,
            "eps {}",
            expected.eps
        );
        // Noise is order-independent (a point is noise iff no core point reaches it).
        assert_eq!(noise, expected.noise, "eps {}", expected.eps);
        assert!(within_percent(largest as f64, expected.largest as f64, 1.0));
    }
}

#[test]
fn plane_normal_matches_open3d_and_is_the_ground() {
    let (fixture, cloud) = load();
    let sp = &fixture.segment_plane;
    let down = voxel_downsample(&cloud, sp.voxel_size);
    let [a, b, c, d] = sp.plane;
    let reference = Plane {
        normal: Unit::new_normalize(Vector3::new(a, b, c)),
        d,
    };
    // RANSAC samples differ from open3d's generator; every seed must land on the same (refined) plane.
    for seed in 0..5 {
        let (plane, inliers) = segment_plane(
            &down.points,
            sp.distance_threshold,
            sp.ransac_n,
            sp.num_iterations,
            seed,
        )
        .unwrap();
        let angle = plane.angle_deg(&reference);
        eprintln!(
            "seed {seed}: {angle:.3} deg from open3d, {} inliers vs {}",
            inliers.len(),
            sp.inliers
        );
        assert!(
            angle < 1.0,
            "seed {seed}: plane {plane:?} is {angle} deg from open3d's {reference:?}"
        );
        assert!(
            within_percent(inliers.len() as f64, sp.inliers as f64, 5.0),
            "{} inliers",
            inliers.len()
        );
    }
    // The same plane is what the ground search picks (open3d's plane is the floor), and it fixes the frame.
    let ground = find_ground_plane(
        &down,
        &GroundPlaneParams {
            distance_threshold: sp.distance_threshold,
            ..Default::default()
        },
    )
    .expect("the motorcycle scene has a floor");
    assert!(
        ground.angle_deg(&reference) < 1.0,
        "ground {ground:?} vs {reference:?}"
    );
    let frame = canonical_frame(Some(&ground), 0.0, 1.0);
    assert!(frame.plane_found);
    assert!(
        (frame.camera_height - d.abs()).abs() < 0.02,
        "height {} vs {}",
        frame.camera_height,
        d.abs()
    );
    // Points on the plane land at Z = 0 in the canonical frame.
    let on_plane = Point3::from(-reference.normal.into_inner() * reference.d);
    assert!(frame.to_canonical(&on_plane).z.abs() < 0.02);
}

#[test]
fn boxes_match_open3d() {
    let (fixture, cloud) = load();
    let whole = &fixture.boxes.whole_cloud;
    assert_eq!(cloud.len(), whole.points);
    let aabb = Aabb::from_points(&cloud.points).unwrap();
    let expected_aabb = Vector3::from(whole.aabb_max) - Vector3::from(whole.aabb_min);
    assert_extents("whole cloud AABB", aabb.extent(), expected_aabb.into());
    let obb = Obb::from_points_pca(&cloud.points).unwrap();
    eprintln!(
        "whole cloud OBB {:?} vs open3d {:?} (qhull {} vertices)",
        obb.extent(),
        whole.obb_extent,
        whole.hull_vertices
    );
    assert_extents("whole cloud OBB", obb.extent(), whole.obb_extent);

    let cluster = &fixture.boxes.largest_cluster;
    let down = voxel_downsample(&cloud, cluster.voxel_size);
    let largest = largest_cluster(&down, cluster.eps, cluster.min_points);
    assert!(within_percent(
        largest.len() as f64,
        cluster.boxes.points as f64,
        1.0
    ));
    let aabb = Aabb::from_points(&largest.points).unwrap();
    let expected_aabb =
        Vector3::from(cluster.boxes.aabb_max) - Vector3::from(cluster.boxes.aabb_min);
    assert_extents("largest cluster AABB", aabb.extent(), expected_aabb.into());
    let obb = Obb::from_points_pca(&largest.points).unwrap();
    eprintln!(
        "largest cluster OBB {:?} vs open3d {:?}",
        obb.extent(),
        cluster.boxes.obb_extent
    );
    assert_extents(
        "largest cluster OBB",
        obb.extent(),
        cluster.boxes.obb_extent,
    );
}
