#!/usr/bin/env python3
"""Make the open3d parity fixture for crates/svlm-geometry/tests/open3d_parity.rs.

Input: scikit-image's copy of the Middlebury 2014 "Motorcycle" pair (quarter size, 741x500): the left image's
ground-truth disparity `skimage/data/motorcycle_disp.npz` (one array, `arr_0`; inf = unknown; the npz carries no
calibration, so it comes from the Middlebury calib.txt scaled to quarter size: f = 994.978 px, baseline
0.193001 m, doffs = 31.086 px, cx = 311.193, cy = 254.877).

Metric z-depth = f * B / (disp + doffs). Every second pixel in both directions is kept (371x250, intrinsics
fx = fy = f / 2, cx / 2, cy / 2: pixel u' of the subsampled image is pixel 2u' of the original, so
x = (2u' - cx) z / f = (u' - cx/2) z / (f/2)). Depth is stored quantised to 0.1 mm as raw little-endian
uint16 (0 = invalid), and open3d runs on exactly the dequantised float32 depth `q * float32(1e-4)` that the Rust
test rebuilds, so both start from bit-identical points.

Outputs (written atomically):
  crates/svlm-geometry/tests/fixtures/motorcycle_depth_u16.bin
  crates/svlm-geometry/tests/fixtures/motorcycle_open3d.json

Needs: numpy, scikit-image, open3d-cpu (0.20; `apt-get install -y libusb-1.0-0` first). Run from the repo root:
  python3 scripts/make_geometry_fixtures.py
"""

import json
import os
import tempfile

import numpy as np
import open3d as o3d
import skimage

FOCAL = 994.978
BASELINE_M = 0.193001
DOFFS = 31.086
CX, CY = 311.193, 254.877
SUBSAMPLE = 2
DEPTH_UNIT_M = 1e-4

VOXEL_SIZES = [0.01, 0.02, 0.05]
WORK_VOXEL = 0.02  # SOR, plane and DBSCAN run on the cloud downsampled at this size
SOR = dict(nb_neighbors=20, std_ratio=2.0)
PLANE = dict(distance_threshold=0.01, ransac_n=3, num_iterations=1000)
DBSCAN = [dict(eps=0.1, min_points=10), dict(eps=0.05, min_points=10), dict(eps=0.04, min_points=10)]
BOX_CLUSTER = dict(eps=0.05, min_points=10)  # boxes of the largest cluster of this clustering

OUT_DIR = os.path.join("crates", "svlm-geometry", "tests", "fixtures")


def write_atomic(path, data: bytes):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def boxes(points: np.ndarray) -> dict:
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    aabb = pcd.get_axis_aligned_bounding_box()
    obb = pcd.get_oriented_bounding_box()  # PCA over the convex hull's vertices
    hull, _ = pcd.compute_convex_hull()
    return {
        "points": int(len(points)),
        "aabb_min": list(map(float, aabb.min_bound)),
        "aabb_max": list(map(float, aabb.max_bound)),
        "obb_center": list(map(float, obb.center)),
        "obb_extent": list(map(float, obb.extent)),
        "obb_rotation_columns": [list(map(float, obb.R[:, i])) for i in range(3)],
        "hull_vertices": int(len(hull.vertices)),
    }


def main():
    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    npz = np.load(os.path.join(data_dir, "motorcycle_disp.npz"))
    if list(npz.keys()) != ["arr_0"]:
        raise SystemExit(f"unexpected keys in motorcycle_disp.npz: {list(npz.keys())}")
    disp = npz["arr_0"].astype(np.float64)
    valid = np.isfinite(disp) & (disp > 0)
    depth = np.zeros_like(disp)
    depth[valid] = FOCAL * BASELINE_M / (disp[valid] + DOFFS)
    depth = depth[::SUBSAMPLE, ::SUBSAMPLE]
    quantised = np.round(depth / DEPTH_UNIT_M)
    if quantised.max() > np.iinfo(np.uint16).max:
        raise SystemExit(f"depth {depth.max()} m does not fit uint16 at {DEPTH_UNIT_M} m units")
    quantised = quantised.astype("<u2")
    z = quantised.astype(np.float32) * np.float32(DEPTH_UNIT_M)
    height, width = z.shape
    fx = FOCAL / SUBSAMPLE
    cx, cy = CX / SUBSAMPLE, CY / SUBSAMPLE
    intrinsic = o3d.camera.PinholeCameraIntrinsic(width, height, fx, fx, cx, cy)
    cloud = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(np.ascontiguousarray(z)), intrinsic, depth_scale=1.0, depth_trunc=1000.0
    )
    points = np.asarray(cloud.points)

    result = {
        "source": "scikit-image data/motorcycle_disp.npz (Middlebury 2014 Motorcycle, quarter size), "
        "every 2nd pixel; made by scripts/make_geometry_fixtures.py",
        "open3d_version": o3d.__version__,
        "depth_file": "motorcycle_depth_u16.bin",
        "depth_format": "raw little-endian uint16, row-major, metres = value as f32 * 1e-4 (f32 multiply), 0 = invalid",
        "width": width,
        "height": height,
        "depth_unit_m": DEPTH_UNIT_M,
        "intrinsics": {"fx": fx, "fy": fx, "cx": cx, "cy": cy, "width": width, "height": height},
        "stereo": {"focal_px_full": FOCAL, "baseline_m": BASELINE_M, "doffs_px": DOFFS},
        "lift": {"points": int(len(points)), "depth_min": float(z[z > 0].min()), "depth_max": float(z.max())},
        "voxel_down_sample": [
            {"voxel_size": v, "points": int(len(cloud.voxel_down_sample(v).points))} for v in VOXEL_SIZES
        ],
    }

    down = cloud.voxel_down_sample(WORK_VOXEL)
    _, kept = down.remove_statistical_outlier(**SOR)
    result["statistical_outlier"] = {"voxel_size": WORK_VOXEL, **SOR, "kept": int(len(kept))}

    o3d.utility.random.seed(0)
    model, inliers = down.segment_plane(**PLANE)
    normal = np.asarray(model[:3])
    # Orient towards the camera's up (-y) for the record; the test ignores the sign.
    if normal[1] > 0:
        model = -np.asarray(model)
    inlier_points = np.asarray(down.points)[inliers]
    v_rows = inlier_points[:, 1] * fx / inlier_points[:, 2] + cy
    result["segment_plane"] = {
        "voxel_size": WORK_VOXEL,
        **PLANE,
        "seed": 0,
        "plane": list(map(float, model)),
        "inliers": int(len(inliers)),
        "inlier_image_rows_mean": float(v_rows.mean()),
        "tilt_from_camera_up_deg": float(np.degrees(np.arccos(min(1.0, -model[1])))),
        "note": "the largest plane is the floor under the motorcycle: normal ~15 deg from the camera's -y, "
        "camera ~1.08 m above it, inliers in the lower image rows",
    }

    result["dbscan"] = []
    for params in DBSCAN:
        labels = np.asarray(down.cluster_dbscan(**params))
        sizes = np.bincount(labels[labels >= 0])
        result["dbscan"].append(
            {
                "voxel_size": WORK_VOXEL,
                **params,
                "clusters": int(labels.max() + 1),
                "noise": int((labels < 0).sum()),
                "largest": int(sizes.max()),
            }
        )

    labels = np.asarray(down.cluster_dbscan(**BOX_CLUSTER))
    largest = np.argmax(np.bincount(labels[labels >= 0]))
    cluster_points = np.asarray(down.points)[labels == largest]
    result["boxes"] = {
        "whole_cloud": boxes(points),
        "largest_cluster": {"voxel_size": WORK_VOXEL, **BOX_CLUSTER, **boxes(cluster_points)},
    }

    write_atomic(os.path.join(OUT_DIR, "motorcycle_depth_u16.bin"), quantised.tobytes())
    write_atomic(
        os.path.join(OUT_DIR, "motorcycle_open3d.json"),
        (json.dumps(result, indent=2) + "\n").encode(),
    )
    print(json.dumps({k: result[k] for k in ("lift", "voxel_down_sample", "statistical_outlier")}, indent=1))
    print("plane", result["segment_plane"]["plane"], result["segment_plane"]["inliers"])
    print("dbscan", [(d["eps"], d["clusters"]) for d in result["dbscan"]])


if __name__ == "__main__":
    main()
