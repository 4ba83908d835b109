//! Metric 3D geometry for spatial VQA synthesis: depth -> points, voxel grid, statistical outlier removal,
//! DBSCAN, RANSAC planes, the gravity-aligned canonical frame, axis-aligned and oriented boxes.
//!
//! Conventions (see `docs/ARCHITECTURE.md`): camera frame is OpenCV (x right, y down, z forward, metres);
//! depth maps hold z-depth in metres, `<= 0`/NaN/inf invalid; the canonical frame has Z up on the ground plane.
//! Point clouds are expected to hold finite coordinates (lifting never produces others).
//!
//! The point-cloud operations follow open3d 0.20's semantics and are checked against open3d in
//! `tests/open3d_parity.rs` on the Middlebury motorcycle depth: lifted points are bit-identical, voxel counts,
//! statistical-outlier kept count, DBSCAN cluster and noise counts are equal, the PCA box (PCA over the convex
//! hull's vertices, as open3d) matches to 1e-12, and RANSAC planes agree within 0.1 degree.
//!
//! For synthesis, [`extract_objects`] runs the whole per-image stage: instance lift at a pixel stride, ground
//! plane on the background and the canonical frame, then per object voxel grid (capped), outlier removal and the
//! largest cluster decided on the voxels, and centroid / AABB / upright OBB of the surviving full-resolution
//! points in the canonical frame. Neighbour searches use a small implicit kd-tree built per cloud
//! (microseconds for per-object clouds); on clouds of at most 512 points (every object's voxels in synthesis) the
//! outlier removal's k-nearest distances, DBSCAN's neighbour relation and nearest-distance searches scan
//! coordinate columns instead, with the same results. The hot loops run at the CPU's vector width (runtime
//! dispatch, same bits at every width); loops go parallel (rayon) only above 20,000 points, since synthesis
//! already runs one image per core.

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
mod simd;

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
pub use pipeline::{
    ObjectGeometry, ObjectParams, SceneGeometry, SkipReason, extract_objects,
    extract_selected_objects,
};
pub use plane::{
    GroundPlaneParams, Plane, find_ground_plane, fit_plane_least_squares, segment_plane,
};

pub use nalgebra::{Isometry3, Matrix3, Point3, Rotation3, Unit, Vector3};
