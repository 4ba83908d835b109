//! Procedural 3D scenes with exact truth, for spatial VQA synthesis and reward tests.
//!
//! - [`generate_scene`]: named objects (cubes, boxes, spheres, cylinders, cones, tables, chairs, shelves,
//!   cabinets) resting on a floor or a table, a random camera aimed at them. Deterministic per seed.
//! - [`render`]: a software rasterizer giving anti-aliased RGB, exact z-depth (metres, OpenCV camera frame)
//!   and instance ids per pixel.
//! - [`closest_surface_distance`] and [`ObjectTruth`]'s helpers: exact boxes, signed distance, surface samples.
//! - [`approach_sequence`]: a gripper approaching a target with strictly decreasing gap.
//! - [`write_frame`] / [`read_frame`] / [`list_frames`]: the RGB-D folder format of `docs/ARCHITECTURE.md`,
//!   also reading NPY / float TIFF depth and COCO annotations ([`coco`]).
//!
//! Conventions follow `docs/ARCHITECTURE.md`: world Z up with the floor at Z = 0, camera frame x right,
//! y down, z forward; pixel `(u, v)` (integer index) lifts with `x = (u - cx) z / fx`.

pub mod coco;
mod distance;
mod error;
mod folder;
mod io;
mod mesh;
pub mod npy;
mod palette;
mod render;
mod scene;
mod sequence;
mod shape;

pub use distance::{closest_surface_distance, convex_distance};
pub use error::{FrameError, WorldError};
pub use folder::{
    FolderSummary, SEQUENCE_INFO, SequenceInfo, frame_stem, scene_stem, write_scene_folder,
    write_sequence_folder,
};
pub use io::{
    COCO_ANNOTATIONS, FOLDER_INTRINSICS, FolderReader, Frame, FrameObject, MAX_PNG_DEPTH_M,
    depth_from_png, depth_from_tiff, list_frames, parse_intrinsics, read_depth_file,
    read_folder_intrinsics, read_frame, read_instances_file, read_objects, write_folder_intrinsics,
    write_frame,
};
pub use palette::Color;
pub use render::{Rendered, render};
pub use scene::{
    Camera, Floor, Light, ObjectTruth, Scene, SceneConfig, Support, Wall, generate_scene,
    scene_seed,
};
pub use sequence::{SequenceConfig, approach_sequence, approach_target};
pub use shape::{Part, Primitive, Shape};

pub use svlm_geometry::{DepthMap, Intrinsics};
