//! Metric 3D geometry for spatial VQA synthesis: depth -> points, voxel grid, statistical outlier removal,
//! DBSCAN, RANSAC planes, the gravity-aligned canonical frame, axis-aligned and oriented boxes.
//!
//! Conventions (see `docs/ARCHITECTURE.md`): camera frame is OpenCV (x right, y down, z forward, metres);
//! depth maps hold z-depth in metres, `<= 0`/NaN/inf invalid; the canonical frame has Z up on the ground plane.
//! The point-cloud operations follow open3d's semantics and are checked against open3d in
//! `tests/open3d_parity.rs`.

mod boxes;
mod camera;
mod cloud;
mod cluster;
mod error;
mod frame;
mod hull;
mod kdtree;
mod pipeline;
mod plane;

pub use boxes::{Aabb, Obb, horizontal_basis};
pub use camera::{
    DepthMap, Intrinsics, LiftStats, Mask, depth_to_instance_points, depth_to_points,
};
pub use cloud::{
    PointCloud, remove_statistical_outliers, voxel_downsample, voxel_downsample_traced,
};
pub use cluster::{cluster_count, dbscan, largest_cluster, largest_label};
pub use error::GeometryError;
pub use frame::{CanonicalFrame, canonical_frame, up_for_pitch};
pub use kdtree::closest_distance;
pub use pipeline::{ObjectGeometry, ObjectParams, SceneGeometry, SkipReason, extract_objects};
pub use plane::{
    GroundPlaneParams, Plane, find_ground_plane, fit_plane_least_squares, segment_plane,
};

pub use nalgebra::{Isometry3, Matrix3, Point3, Rotation3, Unit, Vector3};
