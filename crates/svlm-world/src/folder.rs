//! Writing whole RGB-D folders in parallel (what `svlm world` does), reusable by other commands.

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::distance::closest_surface_distance;
use crate::error::FrameError;
use crate::io::{write_atomic, write_folder_intrinsics, write_frame};
use crate::render::render;
use crate::scene::{Scene, SceneConfig, generate_scene, scene_seed};
use crate::sequence::approach_target;

/// Stem of procedural scene `index` in a folder.
pub fn scene_stem(index: u64) -> String {
    format!("scene_{index:06}")
}

/// Stem of frame `index` of a sequence.
pub fn frame_stem(index: usize) -> String {
    format!("frame_{index:04}")
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FolderSummary {
    pub frames: usize,
    pub objects: usize,
    /// Pixels showing an object, over all frames.
    pub object_pixels: usize,
}

/// Generates, renders and writes scenes `indices` (scene `i` uses `scene_seed(base_seed, i)`) into `dir`, in
/// parallel; `on_frame` is called after each frame is written. The folder's `intrinsics.json` holds the first
/// scene's intrinsics; frames whose intrinsics differ get `<stem>.intrinsics.json`.
pub fn write_scene_folder(
    dir: &Path,
    base_seed: u64,
    indices: std::ops::Range<u64>,
    config: &SceneConfig,
    on_frame: impl Fn() + Sync,
) -> Result<FolderSummary, FrameError> {
    std::fs::create_dir_all(dir).map_err(|e| FrameError::io(dir, e))?;
    if indices.is_empty() {
        return Ok(FolderSummary::default());
    }
    let first = generate_scene(scene_seed(base_seed, indices.start), config);
    write_folder_intrinsics(dir, &first.camera.intrinsics)?;
    let per_frame: Vec<FolderSummary> = indices
        .into_par_iter()
        .map(|index| {
            let scene = generate_scene(scene_seed(base_seed, index), config);
            let rendered = render(&scene);
            write_frame(dir, &scene_stem(index), &rendered, &scene)?;
            on_frame();
            Ok(FolderSummary {
                frames: 1,
                objects: scene.objects.len(),
                object_pixels: rendered.instances.iter().filter(|&&id| id != 0).count(),
            })
        })
        .collect::<Result<_, FrameError>>()?;
    Ok(per_frame
        .into_iter()
        .fold(FolderSummary::default(), |a, b| FolderSummary {
            frames: a.frames + b.frames,
            objects: a.objects + b.objects,
            object_pixels: a.object_pixels + b.object_pixels,
        }))
}

/// `sequence.json` of an approach sequence folder: who approaches whom and the exact gaps per frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceInfo {
    pub kind: String,
    pub seed: u64,
    pub gripper_id: u16,
    pub gripper: String,
    pub target_id: u16,
    pub target: String,
    pub frames: Vec<String>,
    /// Exact closest-surface distance between gripper and target per frame, metres (strictly decreasing).
    pub gap_m: Vec<f64>,
    /// Exact centre-to-centre distance per frame, metres.
    pub center_distance_m: Vec<f64>,
}

pub const SEQUENCE_INFO: &str = "sequence.json";

/// Writes the frames of an approach sequence (one camera: one `intrinsics.json`) and `sequence.json`.
pub fn write_sequence_folder(
    dir: &Path,
    seed: u64,
    frames: &[Scene],
    on_frame: impl Fn() + Sync,
) -> Result<SequenceInfo, FrameError> {
    let first = frames
        .first()
        .ok_or_else(|| FrameError::invalid(dir, "an empty sequence"))?;
    let target_id = approach_target(frames)
        .ok_or_else(|| FrameError::invalid(dir, "sequence has no gripper"))?;
    std::fs::create_dir_all(dir).map_err(|e| FrameError::io(dir, e))?;
    write_folder_intrinsics(dir, &first.camera.intrinsics)?;
    frames.par_iter().enumerate().try_for_each(|(i, scene)| {
        write_frame(dir, &frame_stem(i), &render(scene), scene)?;
        on_frame();
        Ok::<(), FrameError>(())
    })?;
    let mut gap_m = Vec::with_capacity(frames.len());
    let mut center_distance_m = Vec::with_capacity(frames.len());
    let mut gripper_id = 0;
    let mut gripper_name = String::new();
    let mut target_name = String::new();
    for scene in frames {
        let gripper = scene.objects.iter().find(|o| o.is_gripper);
        let target = scene.object(target_id);
        let (Some(gripper), Some(target)) = (gripper, target) else {
            return Err(FrameError::invalid(
                dir,
                "a frame lacks the gripper or the target",
            ));
        };
        gap_m.push(closest_surface_distance(gripper, target));
        center_distance_m.push((gripper.center_point() - target.center_point()).norm());
        gripper_id = gripper.id;
        gripper_name.clone_from(&gripper.name);
        target_name.clone_from(&target.name);
    }
    let info = SequenceInfo {
        kind: "approach".into(),
        seed,
        gripper_id,
        gripper: gripper_name,
        target_id,
        target: target_name,
        frames: (0..frames.len()).map(frame_stem).collect(),
        gap_m,
        center_distance_m,
    };
    let path = dir.join(SEQUENCE_INFO);
    let text = serde_json::to_vec_pretty(&info).map_err(|source| FrameError::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, |w| std::io::Write::write_all(w, &text))?;
    Ok(info)
}
