//! General (non-spatial) VQA about procedural scenes: colours, shapes, counting and presence.
//!
//! The co-training recipe mixes spatial QA with general VQA so that spatial data does not erase general ability;
//! on procedural images this module is the general side. Questions are about what is *visible* (enough pixels in
//! the rendered instance mask), answers come from the world's exact truth and use the same record format
//! (`record::Truth`), so the evaluator scores both kinds the same way.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use svlm_world::{Color, Rendered, Scene, Shape};

use crate::record::{QuestionKind, Role, SpatialQa, SpatialRecord, Truth, TruthSource, Turn};

/// Question kinds written by this module (the record's `type`).
pub const GENERAL_KINDS: [&str; 4] = [
    "general_color",
    "general_shape",
    "general_count",
    "general_presence",
];

/// Every noun svlm-world gives its small objects (the vocabulary shape and count questions choose among).
pub const WORLD_NOUNS: [&str; 8] = [
    "cube", "box", "sphere", "ball", "cylinder", "can", "cup", "cone",
];

/// Largest count asked about; answers are the options "0".."MAX_COUNT".
pub const MAX_COUNT: usize = 9;

/// Settings for general VQA generation.
#[derive(Debug, Clone)]
pub struct GeneralQaConfig {
    /// Questions per image (at most; fewer when the scene offers fewer distinct questions).
    pub per_image: usize,
    /// Pixels an object needs in the instance mask to count as visible.
    pub min_visible_pixels: usize,
}

impl Default for GeneralQaConfig {
    fn default() -> Self {
        Self {
            per_image: 4,
            min_visible_pixels: 30,
        }
    }
}

/// The kinds of general question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeneralKind {
    Color,
    Shape,
    Count,
    Presence,
}

impl GeneralKind {
    pub const ALL: [GeneralKind; 4] = [
        GeneralKind::Color,
        GeneralKind::Shape,
        GeneralKind::Count,
        GeneralKind::Presence,
    ];

    /// The question type written in records (`general_color`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GeneralKind::Color => "general_color",
            GeneralKind::Shape => "general_shape",
            GeneralKind::Count => "general_count",
            GeneralKind::Presence => "general_presence",
        }
    }
}

/// One general question with its answer text and truth.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneralQa {
    pub kind: GeneralKind,
    pub question: String,
    pub answer: String,
    pub truth: Truth,
    pub objects: Vec<String>,
}

/// A visible small object as general questions see it: its colour and its noun ("cube", "can", ...).
#[derive(Debug, Clone)]
struct Visible {
    color: Color,
    noun: String,
    name: String,
}

fn visible_objects(scene: &Scene, rendered: &Rendered, min_pixels: usize) -> Vec<Visible> {
    let mut pixels: BTreeMap<u16, usize> = BTreeMap::new();
    for &id in &rendered.instances {
        if id != 0 {
            *pixels.entry(id).or_default() += 1;
        }
    }
    scene
        .objects
        .iter()
        .filter(|o| !o.is_gripper && !o.shape.is_furniture() && o.shape != Shape::Gripper)
        .filter(|o| pixels.get(&o.id).copied().unwrap_or(0) >= min_pixels)
        .filter_map(|o| {
            // Names are "<colour> <noun>" for small objects (svlm-world's naming).
            let noun = o.name.strip_prefix(o.color.name())?.trim().to_string();
            (!noun.is_empty()).then(|| Visible {
                color: o.color,
                noun,
                name: o.name.clone(),
            })
        })
        .collect()
}

fn plural(noun: &str) -> String {
    if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("ch") || noun.ends_with("sh") {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

fn pick<'a, R: Rng + ?Sized>(rng: &mut R, options: &[&'a str]) -> &'a str {
    options.choose(rng).copied().unwrap_or_default()
}

fn color_question<R: Rng + ?Sized>(v: &Visible, rng: &mut R) -> GeneralQa {
    let q = pick(
        rng,
        &[
            "What color is the {n}?",
            "What colour is the {n}?",
            "Which color does the {n} have?",
            "Tell me the color of the {n}.",
            "The {n} is what color?",
        ],
    )
    .replace("{n}", &v.noun);
    let a = pick(rng, &["{c}.", "It is {c}.", "The {n} is {c}."])
        .replace("{c}", v.color.name())
        .replace("{n}", &v.noun);
    let answer = capitalize(&a);
    GeneralQa {
        kind: GeneralKind::Color,
        question: q,
        answer,
        truth: Truth::Choice {
            value: v.color.name().to_string(),
            options: Color::ALL.iter().map(|c| c.name().to_string()).collect(),
        },
        objects: vec![v.name.clone()],
    }
}

fn shape_question<R: Rng + ?Sized>(
    v: &Visible,
    nouns: &BTreeSet<String>,
    rng: &mut R,
) -> GeneralQa {
    let q = pick(
        rng,
        &[
            "What is the {c} object?",
            "What kind of object is {c}?",
            "Name the {c} object.",
            "What shape is the {c} thing?",
            "Which object is {c}?",
        ],
    )
    .replace("{c}", v.color.name());
    let a = pick(rng, &["A {n}.", "It is a {n}.", "The {c} object is a {n}."])
        .replace("{n}", &v.noun)
        .replace("{c}", v.color.name());
    GeneralQa {
        kind: GeneralKind::Shape,
        question: q,
        answer: capitalize(&a),
        truth: Truth::Choice {
            value: v.noun.clone(),
            options: nouns.iter().cloned().collect(),
        },
        objects: vec![v.name.clone()],
    }
}

fn count_question<R: Rng + ?Sized>(noun: &str, count: usize, rng: &mut R) -> GeneralQa {
    let p = plural(noun);
    let q = pick(
        rng,
        &[
            "How many {p} are there?",
            "How many {p} can you see?",
            "Count the {p} in the image.",
            "What is the number of {p}?",
            "How many {p} are in the picture?",
        ],
    )
    .replace("{p}", &p);
    let a = match (count, rng.random_range(0..3)) {
        (_, 0) => format!("{count}."),
        (1, _) => format!("There is {count} {noun}."),
        (_, 1) => format!("There are {count} {p}."),
        _ => format!("I count {count}."),
    };
    GeneralQa {
        kind: GeneralKind::Count,
        question: q,
        answer: a,
        truth: Truth::Choice {
            value: count.to_string(),
            options: (0..=MAX_COUNT).map(|n| n.to_string()).collect(),
        },
        objects: vec![noun.to_string()],
    }
}

fn presence_question<R: Rng + ?Sized>(
    color: Color,
    noun: &str,
    present: bool,
    rng: &mut R,
) -> GeneralQa {
    let name = format!("{} {noun}", color.name());
    let q = pick(
        rng,
        &[
            "Is there a {x} in the image?",
            "Can you see a {x}?",
            "Does the scene contain a {x}?",
            "Is a {x} visible?",
            "Do you see any {x} here?",
        ],
    )
    .replace("{x}", &name);
    let a = if present {
        pick(
            rng,
            &["Yes.", "Yes, there is a {x}.", "Yes, I can see one."],
        )
    } else {
        pick(
            rng,
            &["No.", "No, there is no {x}.", "No, I don't see one."],
        )
    }
    .replace("{x}", &name);
    GeneralQa {
        kind: GeneralKind::Presence,
        question: q,
        answer: a,
        truth: Truth::Bool { value: present },
        objects: vec![name],
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// General questions about the visible small objects of a rendered scene. Colour questions are asked only about
/// nouns that appear once, shape questions only about colours that appear once, so every answer is unambiguous.
/// `nouns` is the vocabulary of object nouns the shape question chooses among (e.g. every noun the world uses).
pub fn general_qa<R: Rng + ?Sized>(
    scene: &Scene,
    rendered: &Rendered,
    nouns: &BTreeSet<String>,
    config: &GeneralQaConfig,
    rng: &mut R,
) -> Vec<GeneralQa> {
    let visible = visible_objects(scene, rendered, config.min_visible_pixels);
    let mut noun_count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut color_count: BTreeMap<Color, usize> = BTreeMap::new();
    for v in &visible {
        *noun_count.entry(v.noun.as_str()).or_default() += 1;
        *color_count.entry(v.color).or_default() += 1;
    }

    let mut candidates: Vec<GeneralQa> = Vec::new();
    for v in &visible {
        if noun_count.get(v.noun.as_str()) == Some(&1) {
            candidates.push(color_question(v, rng));
        }
        if color_count.get(&v.color) == Some(&1) && nouns.contains(&v.noun) {
            candidates.push(shape_question(v, nouns, rng));
        }
    }
    // Counting: nouns present (capped) and one absent noun, so "0" is a possible answer.
    for (noun, &count) in &noun_count {
        if count <= MAX_COUNT {
            candidates.push(count_question(noun, count, rng));
        }
    }
    let absent: Vec<&String> = nouns
        .iter()
        .filter(|n| !noun_count.contains_key(n.as_str()))
        .collect();
    if let Some(noun) = absent.choose(rng) {
        candidates.push(count_question(noun, 0, rng));
    }
    // Presence: one present object, one absent colour+noun combination.
    if let Some(v) = visible.choose(rng) {
        candidates.push(presence_question(v.color, &v.noun, true, rng));
    }
    let present: BTreeSet<(Color, &str)> =
        visible.iter().map(|v| (v.color, v.noun.as_str())).collect();
    for _ in 0..16 {
        let (Some(color), Some(noun)) = (
            Color::ALL.choose(rng),
            nouns.iter().collect::<Vec<_>>().choose(rng).copied(),
        ) else {
            break;
        };
        if !present.contains(&(*color, noun.as_str())) {
            candidates.push(presence_question(*color, noun, false, rng));
            break;
        }
    }

    candidates.shuffle(rng);
    // Keep kinds balanced: round-robin over kinds (in the order of their names) in the shuffled order.
    let mut by_kind: BTreeMap<&'static str, Vec<GeneralQa>> = BTreeMap::new();
    for c in candidates {
        by_kind.entry(c.kind.as_str()).or_default().push(c);
    }
    let mut out = Vec::new();
    while out.len() < config.per_image && by_kind.values().any(|v| !v.is_empty()) {
        for list in by_kind.values_mut() {
            if out.len() < config.per_image
                && let Some(qa) = list.pop()
            {
                out.push(qa);
            }
        }
    }
    out
}

/// A record (same format as spatial synthesis) holding general questions about one image.
pub fn general_record(id: String, image: String, qas: &[GeneralQa]) -> SpatialRecord {
    let mut conversations = Vec::with_capacity(qas.len() * 2);
    let mut spatial = Vec::with_capacity(qas.len());
    for (i, qa) in qas.iter().enumerate() {
        let question = if i == 0 {
            format!("<image>\n{}", qa.question)
        } else {
            qa.question.clone()
        };
        conversations.push(Turn {
            from: Role::Human,
            value: question,
        });
        conversations.push(Turn {
            from: Role::Gpt,
            value: qa.answer.clone(),
        });
        spatial.push(SpatialQa {
            kind: QuestionKind::General(qa.kind),
            objects: qa.objects.clone(),
            truth: qa.truth.clone(),
            unit_shown: None,
            source: TruthSource::Exact,
        });
    }
    SpatialRecord {
        id,
        image,
        conversations,
        spatial,
        provenance: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use svlm_answers::{parse_choice, parse_yes_no};
    use svlm_world::{SceneConfig, generate_scene, render};

    fn vocabulary() -> BTreeSet<String> {
        [
            "cube", "box", "sphere", "cylinder", "cone", "can", "cup", "ball",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn answers_read_back_as_their_truth_and_match_the_world() {
        let config = GeneralQaConfig {
            per_image: 8,
            ..Default::default()
        };
        let mut asked = BTreeMap::<&str, usize>::new();
        for seed in 0..40u64 {
            let scene = generate_scene(seed, &SceneConfig::default());
            let rendered = render(&scene);
            let mut nouns = vocabulary();
            let visible = visible_objects(&scene, &rendered, config.min_visible_pixels);
            nouns.extend(visible.iter().map(|v| v.noun.clone()));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for qa in general_qa(&scene, &rendered, &nouns, &config, &mut rng) {
                *asked.entry(qa.kind.as_str()).or_default() += 1;
                match &qa.truth {
                    Truth::Bool { value } => {
                        assert_eq!(parse_yes_no(&qa.answer), Some(*value), "{qa:?}");
                        let present = visible
                            .iter()
                            .any(|v| format!("{} {}", v.color.name(), v.noun) == qa.objects[0]);
                        assert_eq!(
                            present, *value,
                            "presence truth disagrees with the world: {qa:?}"
                        );
                    }
                    Truth::Choice { value, options } => {
                        let idx = parse_choice(&qa.answer, options)
                            .unwrap_or_else(|| panic!("unparsed {qa:?}"));
                        assert_eq!(&options[idx], value, "{qa:?}");
                        if qa.kind == GeneralKind::Count {
                            let n = visible.iter().filter(|v| v.noun == qa.objects[0]).count();
                            assert_eq!(
                                value,
                                &n.to_string(),
                                "count truth disagrees with the world: {qa:?}"
                            );
                        }
                    }
                    other => panic!("unexpected truth {other:?}"),
                }
            }
        }
        for kind in GENERAL_KINDS {
            assert!(
                asked.get(kind).copied().unwrap_or(0) >= 5,
                "too few {kind} questions: {asked:?}"
            );
        }
    }

    #[test]
    fn deterministic_and_record_pairs_align() {
        let scene = generate_scene(7, &SceneConfig::default());
        let rendered = render(&scene);
        let nouns = vocabulary();
        let config = GeneralQaConfig::default();
        let a = general_qa(
            &scene,
            &rendered,
            &nouns,
            &config,
            &mut ChaCha8Rng::seed_from_u64(1),
        );
        let b = general_qa(
            &scene,
            &rendered,
            &nouns,
            &config,
            &mut ChaCha8Rng::seed_from_u64(1),
        );
        assert_eq!(a, b);
        let record = general_record("g7".into(), "images/g7.png".into(), &a);
        assert_eq!(record.qa_pairs().len(), a.len());
        assert_eq!(record.spatial.len(), a.len());
        assert!(
            record
                .conversations
                .first()
                .is_some_and(|t| t.value.starts_with("<image>\n"))
        );
    }

    #[test]
    fn nothing_visible_gives_only_absence_questions() {
        let scene = generate_scene(3, &SceneConfig::default());
        let mut rendered = render(&scene);
        rendered.instances.iter_mut().for_each(|id| *id = 0);
        let qas = general_qa(
            &scene,
            &rendered,
            &vocabulary(),
            &GeneralQaConfig::default(),
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert!(!qas.is_empty());
        for qa in qas {
            match qa.truth {
                Truth::Bool { value } => assert!(!value),
                Truth::Choice { ref value, .. } => assert_eq!(value, "0"),
                _ => panic!("unexpected"),
            }
        }
    }
}
