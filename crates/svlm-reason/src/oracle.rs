//! An answerer that knows the exact truth of procedural scenes: it reads elementary questions (distance, gap,
//! width, height, largest dimension, distance from the camera), computes the value from the world's objects, and
//! answers in the synthesis templates' words (`svlm_synth::phrase::quantity`) with numbers written by
//! `svlm_answers::format_length`, so whatever consumes its answers goes through the same parser as with a model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use nalgebra::Point3;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use svlm_answers::{NumberStyle, format_length};
use svlm_eval::Answerer;
use svlm_synth::Truth;
use svlm_synth::qa::Quantity;
use svlm_world::{ObjectTruth, Scene, closest_surface_distance};

/// What the oracle answers when it cannot read a question (no parser reads a length from it).
pub const CANNOT_ANSWER: &str = "I cannot answer that from this image.";

/// Exact-truth answerer for procedural scenes, one scene per image path.
pub struct TruthOracle {
    scenes: HashMap<PathBuf, Scene>,
    /// How numbers are written (the default is plain metric with two significant digits).
    pub style: NumberStyle,
    rng: ChaCha8Rng,
    /// Questions answered so far.
    pub asked: usize,
}

impl TruthOracle {
    pub fn new(seed: u64) -> Self {
        TruthOracle {
            scenes: HashMap::new(),
            style: NumberStyle::plain_metric(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            asked: 0,
        }
    }

    /// Registers the scene shown by `image`.
    pub fn insert(&mut self, image: impl Into<PathBuf>, scene: Scene) {
        self.scenes.insert(image.into(), scene);
    }

    pub fn with_scene(mut self, image: impl Into<PathBuf>, scene: Scene) -> Self {
        self.insert(image, scene);
        self
    }

    /// The answer text for one question about `image`.
    pub fn answer(&mut self, image: &Path, question: &str) -> Result<String> {
        let scene = self.scenes.get(image).ok_or_else(|| {
            anyhow::anyhow!(
                "the truth oracle has no scene for image {}",
                image.display()
            )
        })?;
        self.asked += 1;
        let Ok((quantity, objects, meters)) = exact_answer(scene, question) else {
            return Ok(CANNOT_ANSWER.to_string());
        };
        let names: Vec<String> = objects
            .iter()
            .map(|&i| format!("the {}", scene.objects[i].name))
            .collect();
        let b = names.get(1).cloned().unwrap_or_default();
        // The synthesis template with a placeholder value, then the number in this oracle's style.
        const SLOT: &str = "@@value@@";
        let placeholder = Truth::Choice {
            value: SLOT.to_string(),
            options: vec![],
        };
        let (_, template, _) =
            svlm_synth::phrase::quantity(quantity, &names[0], &b, &placeholder, &mut self.rng);
        let (value, _) = format_length(meters, &self.style, &mut self.rng);
        let text = if template.starts_with(SLOT) {
            let mut chars = value.chars();
            let capitalized: String = match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect(),
                None => String::new(),
            };
            template.replacen(SLOT, &capitalized, 1)
        } else {
            template.replacen(SLOT, &value, 1)
        };
        Ok(text)
    }
}

impl Answerer for TruthOracle {
    fn answer_batch(&mut self, items: &[(PathBuf, String)]) -> Result<Vec<String>> {
        items.iter().map(|(p, q)| self.answer(p, q)).collect()
    }
}

/// Objects named in `question`, in order of mention (longest names first so "red can" is not read as "can").
fn mentioned(scene: &Scene, question: &str) -> Result<Vec<usize>, String> {
    let lower = question.to_lowercase();
    let mut order: Vec<usize> = (0..scene.objects.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(scene.objects[i].name.len()));
    let mut taken = vec![false; lower.len()];
    let mut found: Vec<(usize, usize)> = Vec::new();
    for i in order {
        let name = scene.objects[i].name.to_lowercase();
        let mut from = 0;
        while let Some(at) = lower[from..].find(&name).map(|p| p + from) {
            let end = at + name.len();
            let boundary_before = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
            let boundary_after =
                end == lower.len() || !lower.as_bytes()[end].is_ascii_alphanumeric();
            if boundary_before && boundary_after && !taken[at..end].iter().any(|t| *t) {
                if found
                    .iter()
                    .any(|(_, j)| scene.objects[*j].name == scene.objects[i].name)
                {
                    return Err(format!("several objects are named {name:?}"));
                }
                taken[at..end].iter_mut().for_each(|t| *t = true);
                found.push((at, i));
            }
            from = end;
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, i)| i).collect())
}

/// The quantity a question asks, the objects it names and the exact value in metres.
pub fn exact_answer(scene: &Scene, question: &str) -> Result<(Quantity, Vec<usize>, f64), String> {
    let objects = mentioned(scene, question)?;
    let q = question.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| q.contains(w));
    let o = |k: usize| &scene.objects[objects[k]];
    let (quantity, meters) = match objects.len() {
        1 if has(&["camera", "viewer", "photo"]) => (
            Quantity::CameraDistance,
            (o(0).center_point() - scene.camera.position()).norm(),
        ),
        1 if has(&["largest", "biggest", "longest"]) => (
            Quantity::MaxDimension,
            o(0).extents.iter().cloned().fold(0.0, f64::max),
        ),
        1 if has(&["wide", "width"]) => (Quantity::Width, canonical_width(scene, o(0))),
        1 if has(&["tall", "height", "high"]) => (Quantity::Height, o(0).top() - o(0).bottom()),
        2 if has(&["gap", "space", "clearance", "close"]) => {
            (Quantity::Gap, closest_surface_distance(o(0), o(1)))
        }
        2 if has(&["far", "distance", "apart"]) => (
            Quantity::Distance,
            (o(0).center_point() - o(1).center_point()).norm(),
        ),
        n => {
            return Err(format!(
                "cannot read the question ({n} known objects named)"
            ));
        }
    };
    Ok((quantity, objects, meters))
}

/// Left-right size as the viewer sees it: the extent of the object's box corners along the canonical X axis
/// (the camera's right projected onto the ground), as the synthesis scene graph defines width.
pub fn canonical_width(scene: &Scene, object: &ObjectTruth) -> f64 {
    let canonical = scene.canonical_from_world();
    let xs: Vec<f64> = object
        .obb_corners()
        .iter()
        .map(|p: &Point3<f64>| (canonical * p).x)
        .collect();
    let max = xs.iter().cloned().fold(f64::MIN, f64::max);
    let min = xs.iter().cloned().fold(f64::MAX, f64::min);
    max - min
}

/// The exact scene behind a procedural RGB-D frame (`svlm world` writes the camera pose and every object's truth
/// into `<stem>.objects.json`), for the oracle. Floor and light are not stored there and do not matter for
/// spatial answers. Frames from real cameras have no truth: a clear error.
pub fn scene_from_frame(frame: &svlm_world::Frame) -> Result<Scene> {
    let world_from_camera = frame.world_from_camera.ok_or_else(|| {
        anyhow::anyhow!(
            "frame {} has no camera pose (not a procedural frame)",
            frame.stem
        )
    })?;
    let objects = frame
        .objects
        .iter()
        .map(|o| {
            o.truth.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "frame {}: object {:?} has no exact truth",
                    frame.stem,
                    o.name
                )
            })
        })
        .collect::<Result<Vec<ObjectTruth>>>()?;
    Ok(Scene {
        seed: 0,
        camera: svlm_world::Camera {
            intrinsics: frame.intrinsics,
            world_from_camera,
        },
        objects,
        floor: svlm_world::Floor {
            colors: [[128; 3]; 2],
            tile: 1.0,
        },
        wall: None,
        light: svlm_world::Light {
            direction: [0.0, 0.0, 1.0],
            ambient: 0.5,
            diffuse: 0.5,
        },
    })
}

/// An oracle for every frame of a procedural RGB-D folder, keyed by the frames' image paths.
pub fn oracle_for_folder(dir: &Path, seed: u64) -> Result<TruthOracle> {
    let reader = svlm_world::FolderReader::open(dir)?;
    let mut oracle = TruthOracle::new(seed);
    for stem in reader.stems()? {
        let frame = reader.read(&stem)?;
        let image = crate::reward::frame_image(dir, &stem)
            .ok_or_else(|| anyhow::anyhow!("frame {stem} in {} has no RGB image", dir.display()))?;
        oracle.insert(image, scene_from_frame(&frame)?);
    }
    Ok(oracle)
}
