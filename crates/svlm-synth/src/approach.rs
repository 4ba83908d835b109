//! Approach sequences as spatial VQA: every frame of a gripper approaching a target
//! ([`svlm_world::approach_sequence`]) asks the gap between them, in the synthesis wording of
//! [`Quantity::Gap`], answered with the exact closest-surface distance. The same question is what reward
//! annotation asks a VLM per frame (`svlm_reason::reward`), so a model trained on these records is asked what it
//! learned, and its answers are comparable with the gap exact depth measures.

use rand::SeedableRng;
use svlm_world::{Scene, approach_target, closest_surface_distance, render};

use crate::phrase::{Phrasing, quantity_with_style, short_answer};
use crate::qa::Quantity;
use crate::record::{QuestionKind, Role, SpatialQa, SpatialRecord, Truth, Turn};
use crate::scene::TruthSource;

/// The question asked of every frame: "What is the gap between the gripper and the red can?" (the plain
/// wording of [`Quantity::Gap`]).
pub fn gap_question(gripper: &str, target: &str) -> String {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let truth = Truth::Length { meters: 0.1 };
    let (question, _, _) = quantity_with_style(
        Quantity::Gap,
        &format!("the {gripper}"),
        &format!("the {target}"),
        &truth,
        &svlm_answers::NumberStyle::plain_metric(),
        Phrasing::Plain,
        &mut rng,
    );
    question
}

/// One frame of an approach sequence as a record, with its rendered image (PNG bytes) to write at
/// `record.image`.
#[derive(Debug, Clone)]
pub struct ApproachFrame {
    pub record: SpatialRecord,
    pub png: Vec<u8>,
}

/// One record per frame of `frames`: ids `<id_prefix>-<frame>`, images `images/<id>.png`, the gap question
/// with a bare answer in `style` ("12 centimeters."), the exact gap as truth, `provenance` extended by the frame
/// index. Errors when the sequence has no gripper or a frame lacks it or the target.
pub fn approach_records(
    frames: &[Scene],
    id_prefix: &str,
    style: &svlm_answers::NumberStyle,
    seed: u64,
    provenance: serde_json::Value,
) -> Result<Vec<ApproachFrame>, String> {
    let target_id = approach_target(frames).ok_or("an approach sequence without a gripper")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(frames.len());
    for (f, scene) in frames.iter().enumerate() {
        let gripper = scene.objects.iter().find(|o| o.is_gripper);
        let (Some(gripper), Some(target)) = (gripper, scene.object(target_id)) else {
            return Err(format!("frame {f}: gripper or target missing"));
        };
        let meters = closest_surface_distance(gripper, target);
        let truth = Truth::Length { meters };
        let (answer, unit_shown) =
            short_answer(&truth, style, &mut rng).ok_or("a length always has a short answer")?;
        let id = format!("{id_prefix}-{f:02}");
        let question = gap_question(&gripper.name, &target.name);
        let mut provenance = provenance.clone();
        if let Some(map) = provenance.as_object_mut() {
            map.insert("frame".into(), f.into());
        }
        out.push(ApproachFrame {
            png: crate::pipeline::encode_png(&render(scene).rgb),
            record: SpatialRecord {
                image: format!("images/{id}.png"),
                id,
                conversations: vec![
                    Turn {
                        from: Role::Human,
                        value: format!("<image>\n{question}"),
                    },
                    Turn {
                        from: Role::Gpt,
                        value: answer,
                    },
                ],
                spatial: vec![SpatialQa {
                    kind: QuestionKind::Quantity(Quantity::Gap),
                    objects: vec![gripper.name.clone(), target.name.clone()],
                    truth,
                    unit_shown,
                    source: TruthSource::Exact,
                }],
                provenance: Some(provenance),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use svlm_world::{SequenceConfig, approach_sequence};

    #[test]
    fn every_frame_asks_the_gap_and_answers_the_exact_falling_gap() {
        let config = SequenceConfig {
            scene: svlm_world::SceneConfig {
                width: 96,
                height: 96,
                objects: [1, 2],
                ..SequenceConfig::default().scene
            },
            ..SequenceConfig::default()
        };
        let frames = approach_sequence(5, 4, &config).expect("a sequence");
        let style = svlm_answers::NumberStyle::plain_metric();
        let records = approach_records(
            &frames,
            "seq-7",
            &style,
            1,
            serde_json::json!({"source": "approach_sequence", "sequence": 7}),
        )
        .expect("records");
        assert_eq!(records.len(), 4);
        let mut previous = f64::INFINITY;
        for (f, r) in records.iter().enumerate() {
            let r_ = &r.record;
            assert_eq!(r_.id, format!("seq-7-{f:02}"));
            assert_eq!(r_.image, format!("images/seq-7-{f:02}.png"));
            assert!(r.png.starts_with(b"\x89PNG"));
            let qa = &r_.spatial[0];
            assert_eq!(qa.kind, QuestionKind::Quantity(Quantity::Gap));
            assert_eq!(qa.objects[0], "gripper");
            let Truth::Length { meters } = qa.truth else {
                panic!("{:?}", qa.truth)
            };
            assert!(meters < previous, "the gap falls");
            previous = meters;
            let question = &r_.conversations[0].value;
            assert_eq!(
                question,
                &format!("<image>\n{}", gap_question("gripper", &qa.objects[1]))
            );
            assert!(question.starts_with("<image>\nWhat is the gap between the gripper and the "));
            // The answer reads back to the exact gap, in the unit it says it shows.
            let parsed = svlm_answers::parse_length(&r_.conversations[1].value).expect("a length");
            assert!((parsed.meters - meters).abs() <= 0.1 * meters + 0.005);
            assert_eq!(r_.provenance.as_ref().unwrap()["frame"], f);
            assert_eq!(r_.provenance.as_ref().unwrap()["sequence"], 7);
        }
        let hidden = vec![frames[0].clone(); 2]
            .into_iter()
            .map(|mut s| {
                s.objects.retain(|o| !o.is_gripper);
                s
            })
            .collect::<Vec<_>>();
        assert!(approach_records(&hidden, "x", &style, 0, serde_json::json!({})).is_err());
    }
}
