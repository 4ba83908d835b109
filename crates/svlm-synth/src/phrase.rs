//! Question and answer wording. Numbers, clock positions and angles are written by `svlm-answers`, the same
//! crate the evaluator parses them with, so every answer reads back to its truth.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::qa::{Quantity, Relation};
use crate::record::Truth;

/// Predicate phrases ("{a} is {p} {b}") and choice phrases ("which is {c}") per relation, in `Relation::ALL` order.
struct RelationText {
    predicates: &'static [&'static str],
    choices: &'static [&'static str],
}

fn relation_text(rel: Relation) -> &'static RelationText {
    use Relation::*;
    match rel {
        Left => &RelationText {
            predicates: &[
                "to the left of",
                "on the left side of",
                "left of",
                "further to the left than",
            ],
            choices: &[
                "further to the left",
                "more to the left",
                "closer to the left side",
            ],
        },
        Right => &RelationText {
            predicates: &[
                "to the right of",
                "on the right side of",
                "right of",
                "further to the right than",
            ],
            choices: &[
                "further to the right",
                "more to the right",
                "closer to the right side",
            ],
        },
        Above => &RelationText {
            predicates: &["above", "higher than", "higher up than", "located above"],
            choices: &["higher up", "higher", "positioned higher"],
        },
        Below => &RelationText {
            predicates: &["below", "lower than", "lower down than", "located below"],
            choices: &["lower down", "lower", "positioned lower"],
        },
        Front => &RelationText {
            predicates: &[
                "in front of",
                "located in front of",
                "positioned in front of",
                "nearer the front than",
            ],
            choices: &["more in front", "further forward", "nearer the front"],
        },
        Behind => &RelationText {
            predicates: &[
                "behind",
                "located behind",
                "positioned behind",
                "further back than",
            ],
            choices: &["further back", "more to the back", "further behind"],
        },
        Closer => &RelationText {
            predicates: &[
                "closer to the camera than",
                "nearer to the camera than",
                "closer to the viewer than",
            ],
            choices: &[
                "closer to the camera",
                "nearer to the camera",
                "closer to the viewer",
            ],
        },
        Farther => &RelationText {
            predicates: &[
                "farther from the camera than",
                "further from the camera than",
                "more distant from the viewer than",
            ],
            choices: &[
                "farther from the camera",
                "further away from the camera",
                "more distant from the viewer",
            ],
        },
        Taller => &RelationText {
            predicates: &[
                "taller than",
                "of greater height than",
                "standing taller than",
            ],
            choices: &["taller", "of greater height", "the taller one"],
        },
        Shorter => &RelationText {
            predicates: &["shorter than", "less tall than", "of lesser height than"],
            choices: &["shorter", "less tall", "the shorter one"],
        },
        Wider => &RelationText {
            predicates: &["wider than", "broader than", "wider from side to side than"],
            choices: &["wider", "broader", "the wider one"],
        },
        Thinner => &RelationText {
            predicates: &["thinner than", "narrower than", "less wide than"],
            choices: &["thinner", "narrower", "the thinner one"],
        },
        Bigger => &RelationText {
            predicates: &["bigger than", "larger than", "larger in size than"],
            choices: &["bigger", "larger", "the bigger one"],
        },
        Smaller => &RelationText {
            predicates: &["smaller than", "smaller in size than", "more compact than"],
            choices: &["smaller", "more compact", "the smaller one"],
        },
    }
}

const PREDICATE_QUESTIONS: &[&str] = &[
    "Is {a} {p} {b}?",
    "Would you say {a} is {p} {b}?",
    "Can you confirm whether {a} is {p} {b}?",
    "Is it true that {a} is {p} {b}?",
    "Looking at the scene, is {a} {p} {b}?",
    "Tell me if {a} is {p} {b}.",
];
const PREDICATE_YES: &[&str] = &[
    "Yes.",
    "Yes, {a} is {p} {b}.",
    "Yes, it is.",
    "Yes, {a} is indeed {p} {b}.",
];
const PREDICATE_NO: &[&str] = &[
    "No.",
    "No, {a} is not {p} {b}.",
    "No, {a} is {o} {b}.",
    "No, it is not.",
];

const CHOICE_QUESTIONS: &[&str] = &[
    "Which is {c}, {a} or {b}?",
    "Between {a} and {b}, which one is {c}?",
    "Of {a} and {b}, which is {c}?",
    "Which object is {c}: {a} or {b}?",
    "Tell me which is {c}, {a} or {b}.",
    "Which of these two is {c}: {a} or {b}?",
];
const CHOICE_ANSWERS: &[&str] = &[
    "{X}.",
    "{X} is {c}.",
    "It is {x}.",
    "{X} is the one that is {c}.",
];

struct QuantityText {
    questions: &'static [&'static str],
    answers: &'static [&'static str],
}

fn quantity_text(q: Quantity) -> &'static QuantityText {
    use Quantity::*;
    match q {
        Distance => &QuantityText {
            questions: &[
                "How far apart are {a} and {b}?",
                "What is the distance between {a} and {b}?",
                "How far is {a} from {b}?",
                "What is the distance between the centers of {a} and {b}?",
                "How much distance is there between {a} and {b}?",
                "Measure the distance from {a} to {b}.",
            ],
            answers: &[
                "{A} and {b} are {v} apart.",
                "The distance between them is {v}.",
                "{V}.",
                "They are {v} apart.",
            ],
        },
        Gap => &QuantityText {
            questions: &[
                "What is the gap between {a} and {b}?",
                "How much space is there between {a} and {b}?",
                "How close do {a} and {b} come to each other?",
                "What is the clearance between {a} and {b}?",
                "How wide is the gap separating {a} and {b}?",
            ],
            answers: &[
                "The gap is {v}.",
                "There is {v} of space between {a} and {b}.",
                "{V}.",
                "{A} and {b} are separated by a gap of {v}.",
            ],
        },
        HorizontalDistance => &QuantityText {
            questions: &[
                "What is the horizontal distance between {a} and {b}?",
                "Measured along the floor, how far apart are {a} and {b}?",
                "Ignoring height, how far is {a} from {b}?",
                "How far apart are {a} and {b} horizontally?",
                "What is the distance between {a} and {b} in the horizontal plane?",
            ],
            answers: &[
                "Horizontally, they are {v} apart.",
                "The horizontal distance is {v}.",
                "{V}.",
                "{A} is {v} from {b} horizontally.",
            ],
        },
        VerticalDistance => &QuantityText {
            questions: &[
                "What is the vertical distance between {a} and {b}?",
                "How far apart are {a} and {b} vertically?",
                "What is the height difference between the centers of {a} and {b}?",
                "Measured vertically, how far apart are {a} and {b}?",
                "How much do the centers of {a} and {b} differ in height?",
            ],
            answers: &[
                "Vertically, they are {v} apart.",
                "The vertical distance is {v}.",
                "{V}.",
            ],
        },
        Width => &QuantityText {
            questions: &[
                "How wide is {a}?",
                "What is the width of {a}?",
                "How wide does {a} measure from left to right?",
                "Tell me the width of {a}.",
                "What is {a}'s width?",
            ],
            answers: &[
                "{A} is {v} wide.",
                "Its width is {v}.",
                "{V}.",
                "The width of {a} is {v}.",
            ],
        },
        Height => &QuantityText {
            questions: &[
                "How tall is {a}?",
                "What is the height of {a}?",
                "How high is {a}, from bottom to top?",
                "Tell me the height of {a}.",
                "Measure how tall {a} is.",
            ],
            answers: &[
                "{A} is {v} tall.",
                "Its height is {v}.",
                "{V}.",
                "The height of {a} is {v}.",
            ],
        },
        DepthExtent => &QuantityText {
            questions: &[
                "How deep is {a}, front to back?",
                "What is the depth of {a} from front to back?",
                "How long is {a} measured away from the viewer?",
                "Tell me the front-to-back size of {a}.",
                "What is {a}'s extent from front to back?",
            ],
            answers: &["{A} is {v} deep.", "Front to back it measures {v}.", "{V}."],
        },
        CameraDistance => &QuantityText {
            questions: &[
                "How far is {a} from the camera?",
                "What is the distance from the camera to {a}?",
                "How far away from the viewer is {a}?",
                "How far is {a} from where the photo was taken?",
                "Tell me the distance between the camera and {a}.",
            ],
            answers: &["{A} is {v} from the camera.", "It is {v} away.", "{V}."],
        },
        LeftOffset => &QuantityText {
            questions: &[
                "How far to the left of {b} is {a}?",
                "By how much is {a} to the left of {b}?",
                "How much further left is {a} than {b}?",
                "Measured sideways, how far left of {b} is {a}?",
                "What is the leftward offset of {a} from {b}?",
            ],
            answers: &["{A} is {v} to the left of {b}.", "{V} to the left.", "{V}."],
        },
        RightOffset => &QuantityText {
            questions: &[
                "How far to the right of {b} is {a}?",
                "By how much is {a} to the right of {b}?",
                "How much further right is {a} than {b}?",
                "Measured sideways, how far right of {b} is {a}?",
                "What is the rightward offset of {a} from {b}?",
            ],
            answers: &[
                "{A} is {v} to the right of {b}.",
                "{V} to the right.",
                "{V}.",
            ],
        },
        AboveOffset => &QuantityText {
            questions: &[
                "How far above {b} is {a}?",
                "How much higher is {a} than {b}?",
                "By how much does {a} sit above {b}?",
                "What is the vertical offset of {a} above {b}?",
                "How high above {b} is {a}?",
            ],
            answers: &["{A} is {v} above {b}.", "{V} higher.", "{V}."],
        },
        BelowOffset => &QuantityText {
            questions: &[
                "How far below {b} is {a}?",
                "How much lower is {a} than {b}?",
                "By how much does {a} sit below {b}?",
                "What is the vertical offset of {a} below {b}?",
                "How far down from {b} is {a}?",
            ],
            answers: &["{A} is {v} below {b}.", "{V} lower.", "{V}."],
        },
        FrontOffset => &QuantityText {
            questions: &[
                "How far in front of {b} is {a}?",
                "By how much is {a} in front of {b}?",
                "How far forward of {b} is {a}?",
                "Measured front to back, how far in front of {b} is {a}?",
                "How much nearer the front is {a} than {b}?",
            ],
            answers: &["{A} is {v} in front of {b}.", "{V} in front.", "{V}."],
        },
        BehindOffset => &QuantityText {
            questions: &[
                "How far behind {b} is {a}?",
                "By how much is {a} behind {b}?",
                "How far back from {b} is {a}?",
                "Measured front to back, how far behind {b} is {a}?",
                "How much further back is {a} than {b}?",
            ],
            answers: &["{A} is {v} behind {b}.", "{V} behind.", "{V}."],
        },
        ClockDirection => &QuantityText {
            questions: &[
                "If you stand at {a} facing away from the camera, at what clock position is {b}?",
                "Standing at {a} and facing away from the viewer, what o'clock is {b}?",
                "Where is {b} relative to {a} as a clock direction, with 12 o'clock pointing away from the camera?",
                "At which clock position do you see {b} from {a}, with 12 pointing away from the camera?",
                "What is the direction from {a} to {b} in clock terms, where 12 is straight away from the viewer?",
            ],
            answers: &["{B} is at {v} from {a}.", "{V}.", "It is at {v}."],
        },
        CameraClock => &QuantityText {
            questions: &[
                "From the camera, at what clock position is {a}?",
                "Seen from the camera with 12 o'clock straight ahead, where is {a}?",
                "What o'clock is {a} from the viewer, with 12 straight ahead?",
                "In clock terms, which direction is {a} from the camera?",
                "If the camera faces 12 o'clock, at what hour is {a}?",
            ],
            answers: &["{A} is at {v}.", "{V}.", "It is at {v} from the camera."],
        },
        ElevationAngle => &QuantityText {
            questions: &[
                "Looking from {a} to {b}, what is the elevation angle?",
                "At what angle above the horizontal is {b} when seen from {a}?",
                "How many degrees up do you look from {a} to see {b}?",
                "What is the upward angle from {a} to {b}?",
                "From {a}, how steep is the line of sight up to {b}, in degrees?",
            ],
            answers: &["{V} above the horizontal.", "{V}.", "The elevation is {v}."],
        },
        CameraLookDown => &QuantityText {
            questions: &[
                "How many degrees below the horizontal does the camera look to see {a}?",
                "What is the angle of depression from the camera to {a}?",
                "At what downward angle is {a} seen from the camera?",
                "How far below the horizontal is {a} from the camera's viewpoint, in degrees?",
                "From the camera, how many degrees down is {a}?",
            ],
            answers: &[
                "{V} below the horizontal.",
                "The camera looks {v} down to see {a}.",
                "About {v} downward.",
                "It is {v} below eye level.",
            ],
        },
        HeightDifference => &QuantityText {
            questions: &[
                "How much taller is {a} than {b}?",
                "By how much does {a} exceed {b} in height?",
                "What is the height difference between {a} and {b}?",
                "How much shorter is {b} than {a}?",
                "How much more height does {a} have than {b}?",
            ],
            answers: &["{A} is {v} taller than {b}.", "{V} taller.", "{V}."],
        },
        WidthDifference => &QuantityText {
            questions: &[
                "How much wider is {a} than {b}?",
                "By how much does {a} exceed {b} in width?",
                "What is the width difference between {a} and {b}?",
                "How much narrower is {b} than {a}?",
                "How much more width does {a} have than {b}?",
            ],
            answers: &["{A} is {v} wider than {b}.", "{V} wider.", "{V}."],
        },
        TopHeight => &QuantityText {
            questions: &[
                "How high is the top of {a} above the floor?",
                "At what height is the top of {a}?",
                "How far above the ground does {a} reach?",
                "What is the height of the top of {a} from the floor?",
                "How high off the ground is the highest point of {a}?",
            ],
            answers: &[
                "The top of {a} is {v} above the floor.",
                "{V} above the ground.",
                "{V}.",
            ],
        },
        BottomHeight => &QuantityText {
            questions: &[
                "How high above the floor is {a} resting?",
                "How far off the ground is the bottom of {a}?",
                "At what height does {a} sit?",
                "How high is the surface {a} rests on?",
                "What is the height of the bottom of {a} above the floor?",
            ],
            answers: &[
                "{A} rests {v} above the floor.",
                "Its bottom is {v} off the ground.",
                "{V}.",
            ],
        },
        CameraHorizontalDistance => &QuantityText {
            questions: &[
                "Along the floor, how far is {a} from the camera?",
                "What is the horizontal distance from the camera to {a}?",
                "Ignoring height, how far away is {a} from the camera?",
                "How far is {a} from the spot right below the camera?",
                "Measured on the ground, how far is {a} from the viewer?",
            ],
            answers: &[
                "{A} is {v} from the camera horizontally.",
                "{V} along the floor.",
                "{V}.",
            ],
        },
        MaxDimension => &QuantityText {
            questions: &[
                "How big is {a} at its largest dimension?",
                "What is the largest dimension of {a}?",
                "How large is {a} along its biggest extent?",
                "What is the biggest size of {a} in any direction?",
                "How long is {a} along its longest side?",
            ],
            answers: &[
                "Its largest dimension is {v}.",
                "{A} measures {v} at its largest.",
                "{V}.",
            ],
        },
    }
}

/// Upper-cases the first character (sentences start with "The red cube ...").
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Fills `{a}`, `{b}`, `{v}`, `{p}`, `{o}`, `{c}`, `{x}`; the upper-case forms capitalize the value.
fn fill(template: &str, slots: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 48);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let close = after.find('}');
        let key = close.and_then(|c| if c == 1 { after.chars().next() } else { None });
        match key {
            Some(k) => {
                let lower = k.to_ascii_lowercase();
                let value = slots
                    .iter()
                    .find(|(s, _)| *s == lower)
                    .map(|(_, v)| *v)
                    .unwrap_or("");
                if k.is_ascii_uppercase() {
                    out.push_str(&capitalize(value));
                } else {
                    out.push_str(value);
                }
                rest = &after[2..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn pick<'a>(options: &[&'a str], rng: &mut impl Rng) -> &'a str {
    options.choose(rng).copied().unwrap_or("")
}

/// How many wordings questions are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phrasing {
    /// Every template and synonym, drawn at random (the default: robust to how people ask).
    #[default]
    Varied,
    /// One wording per question type, the first of each list ("Is the red cube to the left of the blue ball?").
    /// A model trained from scratch on a small budget then spends its samples on the image, not on the phrasing.
    Plain,
}

impl Phrasing {
    fn pick<'a>(self, options: &[&'a str], rng: &mut impl Rng) -> &'a str {
        match self {
            Phrasing::Varied => pick(options, rng),
            Phrasing::Plain => options.first().copied().unwrap_or(""),
        }
    }
}

/// (question, answer) for "is a REL b?".
pub fn predicate(
    rel: Relation,
    a: &str,
    b: &str,
    value: bool,
    phrasing: Phrasing,
    rng: &mut impl Rng,
) -> (String, String) {
    let p = phrasing.pick(relation_text(rel).predicates, rng);
    let o = relation_text(rel.opposite()).predicates[0];
    let question = fill(
        phrasing.pick(PREDICATE_QUESTIONS, rng),
        &[('a', a), ('b', b), ('p', p)],
    );
    let template = pick(if value { PREDICATE_YES } else { PREDICATE_NO }, rng);
    let answer = fill(template, &[('a', a), ('b', b), ('p', p), ('o', o)]);
    (capitalize(&question), answer)
}

/// The axis a reasoned answer lists two objects along, always written from the same end for a relation and its
/// opposite ("left" and "right" both list from left to right), and whether `rel` points to the first end of that
/// listing (true for left) or the last (false for right). One listing per axis means one way of reading the image
/// for both directions: listing from the asked end instead (right to left for "right of") left a small model
/// unable to read the order at all (`experiments/quickstart.md`).
fn axis(rel: Relation) -> (&'static str, bool) {
    use Relation::*;
    match rel {
        Left => ("From left to right", true),
        Right => ("From left to right", false),
        Above => ("From top to bottom", true),
        Below => ("From top to bottom", false),
        Front => ("From front to back", true),
        Behind => ("From front to back", false),
        Closer => ("From nearest to farthest", true),
        Farther => ("From nearest to farthest", false),
        Taller => ("From tallest to shortest", true),
        Shorter => ("From tallest to shortest", false),
        Wider => ("From widest to thinnest", true),
        Thinner => ("From widest to thinnest", false),
        Bigger => ("From biggest to smallest", true),
        Smaller => ("From biggest to smallest", false),
    }
}

/// `holds` (the object `rel` holds for) and `other` listed along `rel`'s axis, each tagged with the end it is at:
/// ("From left to right", "green: left, red: right") for `rel` = Right, `holds` = "red".
fn tagged_listing(rel: Relation, holds: &str, other: &str) -> (&'static str, String) {
    let (order, first) = axis(rel);
    let (at_rel, at_other) = (rel.word(), rel.opposite().word());
    let listing = if first {
        format!("{holds}: {at_rel}, {other}: {at_other}")
    } else {
        format!("{other}: {at_other}, {holds}: {at_rel}")
    };
    (order, listing)
}

/// A reasoned answer to "Is `subject` REL `other`?", the objects named by their keys ([`reasoned_keys`]): the two
/// listed along `rel`'s axis, each tagged with its end; the subject's tag again; the relation asked; the verdict,
/// yes exactly when the two words agree. "From left to right: green: left, red: right. So red: right. Asked: left.
/// No." for "Is the red box to the left of the green cube?". Reading the order from the image (position to name)
/// is the direction a small model from scratch learns soonest; the subject's tag is copied from the listing by
/// matching its key (an induction step); the verdict compares two words just written
/// (`experiments/quickstart.md`).
pub fn reasoned_predicate(rel: Relation, subject: &str, other: &str, value: bool) -> String {
    let (holds, not_holds) = if value {
        (subject, other)
    } else {
        (other, subject)
    };
    let (order, listing) = tagged_listing(rel, holds, not_holds);
    let tag = (if value { rel } else { rel.opposite() }).word();
    let asked = rel.word();
    let verdict = if value { "Yes." } else { "No." };
    format!("{order}: {listing}. So {subject}: {tag}. Asked: {asked}. {verdict}")
}

/// A reasoned answer to "Which is REL-er, A or B?": the two listed along `rel`'s axis by their keys
/// ([`reasoned_keys`]), each tagged with its end, then the winner by its full name: "From left to right: green:
/// left, red: right. So red box." for "more to the right".
pub fn reasoned_choice(rel: Relation, winner_key: &str, other_key: &str, winner: &str) -> String {
    let (order, listing) = tagged_listing(rel, winner_key, other_key);
    format!("{order}: {listing}. So {winner}.")
}

/// The short keys a reasoned answer lists two objects by: the first words of their names when both have more than
/// one word and those differ ("red box", "green cube" -> "red", "green"), else the whole names. A colour is all a
/// reader needs to tell two objects of different colours apart, and a small model reads it from the image far
/// sooner than the shape.
pub fn reasoned_keys<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    let first_word = |name: &'a str| {
        name.split_once(' ')
            .map(|(w, _)| w)
            .filter(|w| !w.is_empty())
    };
    match (first_word(a), first_word(b)) {
        (Some(ka), Some(kb)) if ka != kb => (ka, kb),
        _ => (a, b),
    }
}

/// The listing step of a reasoned answer ([`reasoned_predicate`], [`reasoned_choice`]), read back from any text
/// that starts like one: the axis ("From left to right") and the objects in the order listed. `None` when the text
/// does not start with "From <axis>: " or lists fewer than two objects. Evaluation uses it to score the listing
/// apart from the verdict.
pub fn reasoned_listing(answer: &str) -> Option<(&str, Vec<&str>)> {
    let answer = answer.trim_start();
    if !answer.starts_with("From ") {
        return None;
    }
    let (axis, rest) = answer.split_once(": ")?;
    let listing = rest.split_once('.').map_or(rest, |(l, _)| l);
    // Each item may carry its end ("green: left"); the object is what comes before the tag.
    let objects: Vec<&str> = listing
        .split(", ")
        .map(|item| item.split_once(": ").map_or(item, |(o, _)| o).trim())
        .collect();
    (objects.len() >= 2 && objects.iter().all(|o| !o.is_empty())).then_some((axis, objects))
}

/// (question, answer) for "which is REL-er, first or second?".
pub fn choice(
    rel: Relation,
    first: &str,
    second: &str,
    winner: &str,
    phrasing: Phrasing,
    rng: &mut impl Rng,
) -> (String, String) {
    let c = phrasing.pick(relation_text(rel).choices, rng);
    let question = fill(
        phrasing.pick(CHOICE_QUESTIONS, rng),
        &[('a', first), ('b', second), ('c', c)],
    );
    let answer = fill(pick(CHOICE_ANSWERS, rng), &[('x', winner), ('c', c)]);
    (capitalize(&question), answer)
}

/// (question, answer, unit shown) for a quantity, numbers in the default (human-like, mixed-unit) style.
pub fn quantity(
    q: Quantity,
    a: &str,
    b: &str,
    truth: &Truth,
    rng: &mut impl Rng,
) -> (String, String, Option<String>) {
    quantity_with_style(
        q,
        a,
        b,
        truth,
        &svlm_answers::NumberStyle::default(),
        Phrasing::Varied,
        rng,
    )
}

/// [`quantity`] with lengths written in `style`.
pub fn quantity_with_style(
    q: Quantity,
    a: &str,
    b: &str,
    truth: &Truth,
    style: &svlm_answers::NumberStyle,
    phrasing: Phrasing,
    rng: &mut impl Rng,
) -> (String, String, Option<String>) {
    let text = quantity_text(q);
    let (value, unit) = value_text(truth, style, rng);
    let question = fill(phrasing.pick(text.questions, rng), &[('a', a), ('b', b)]);
    let answer = fill(
        pick(text.answers, rng),
        &[('a', a), ('b', b), ('v', &value)],
    );
    (capitalize(&question), answer, unit)
}

/// The shortest answer a person gives, and the unit it shows: "Yes." / "No.", "The red cube.", "1.2 meters."
/// (unit "m"), "3 o'clock.". `None` for angles, whose direction ("below the horizontal") only the sentence
/// carries. A length is written anew (its unit drawn again), so the unit of the sentence it replaces does not
/// apply.
pub fn short_answer(
    truth: &Truth,
    style: &svlm_answers::NumberStyle,
    rng: &mut impl Rng,
) -> Option<(String, Option<String>)> {
    match truth {
        Truth::Bool { value } => Some(((if *value { "Yes." } else { "No." }).to_string(), None)),
        Truth::Choice { value, .. } => Some((format!("The {value}."), None)),
        Truth::Angle { .. } => None,
        other => {
            let (value, unit) = value_text(other, style, rng);
            Some((format!("{}.", capitalize(&value)), unit))
        }
    }
}

/// The answer's number text and the unit it shows.
fn value_text(
    truth: &Truth,
    style: &svlm_answers::NumberStyle,
    rng: &mut impl Rng,
) -> (String, Option<String>) {
    match truth {
        Truth::Length { meters } => {
            let (text, unit) = svlm_answers::format_length(*meters, style, rng);
            (text, Some(unit.to_string()))
        }
        Truth::Clock { hour } => (svlm_answers::format_clock(*hour), None),
        // Templates carry the direction ("below the horizontal"), so the number is the magnitude.
        Truth::Angle { degrees } => (
            svlm_answers::format_angle_degrees(degrees.abs()),
            Some("deg".to_string()),
        ),
        Truth::Bool { value } => ((if *value { "yes" } else { "no" }).to_string(), None),
        Truth::Choice { value, .. } => (value.clone(), None),
    }
}

/// Number of question and answer phrasings available for a quantity (for tests and docs).
pub fn quantity_phrasings(q: Quantity) -> (usize, usize) {
    let t = quantity_text(q);
    (t.questions.len(), t.answers.len())
}

/// Number of distinct question and answer phrasings for a relation's predicate and choice forms.
pub fn relation_phrasings(rel: Relation) -> ((usize, usize), (usize, usize)) {
    let t = relation_text(rel);
    (
        (
            t.predicates.len() * PREDICATE_QUESTIONS.len(),
            PREDICATE_YES.len().min(PREDICATE_NO.len()),
        ),
        (
            t.choices.len() * CHOICE_QUESTIONS.len(),
            CHOICE_ANSWERS.len(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoned_listing_reads_back_what_the_reasoned_answers_write() {
        let (a, b) = ("red", "gray");
        for rel in Relation::ALL {
            let (want_axis, _) = axis(rel);
            for value in [true, false] {
                let answer = reasoned_predicate(rel, a, b, value);
                let (read_axis, objects) = reasoned_listing(&answer).expect(&answer);
                assert_eq!(read_axis, want_axis, "{answer}");
                let mut sorted = objects.clone();
                sorted.sort();
                assert_eq!(sorted, vec![b, a], "{answer}");
            }
            let answer = reasoned_choice(rel, a, b, "red box");
            let (_, objects) = reasoned_listing(&answer).expect(&answer);
            assert_eq!(objects.len(), 2, "{answer}");
        }
        let (_, objects) =
            reasoned_listing("From left to right: the red box, the gray cube. So the red box.")
                .unwrap();
        assert_eq!(objects, ["the red box", "the gray cube"]);
        // Unfinished generations still give their listing; anything else gives none.
        assert_eq!(
            reasoned_listing("From front to back: a: front, b").map(|(_, o)| o),
            Some(vec!["a", "b"])
        );
        for text in [
            "Yes.",
            "From left to right: the red box.",
            "From left to right the red box, the gray cube.",
            "The red box, the gray cube.",
            "From left to right: , the gray cube.",
            "From left to right: : left, red: right.",
            "",
        ] {
            assert_eq!(reasoned_listing(text), None, "{text}");
        }
    }

    #[test]
    fn reasoned_answers_tag_the_ends_and_decide_by_two_words() {
        use Relation::*;
        // "Is the red box to the left of the green cube?" with the green cube on the left, and so on.
        for (rel, value, want) in [
            (
                Left,
                false,
                "From left to right: green: left, red: right. So red: right. Asked: left. No.",
            ),
            (
                Right,
                true,
                "From left to right: green: left, red: right. So red: right. Asked: right. Yes.",
            ),
            (
                Behind,
                true,
                "From front to back: green: front, red: behind. So red: behind. Asked: behind. Yes.",
            ),
            (
                Front,
                true,
                "From front to back: red: front, green: behind. So red: front. Asked: front. Yes.",
            ),
        ] {
            assert_eq!(reasoned_predicate(rel, "red", "green", value), want);
        }
        assert_eq!(
            reasoned_choice(Right, "red", "green", "red box"),
            "From left to right: green: left, red: right. So red box."
        );
        // The verdict and the choice read back as svlm-answers reads them.
        for rel in Relation::ALL {
            for value in [true, false] {
                let answer = reasoned_predicate(rel, "red", "green", value);
                assert_eq!(svlm_answers::parse_yes_no(&answer), Some(value), "{answer}");
            }
            let answer = reasoned_choice(rel, "green", "red", "green cube");
            let options = ["red box".to_string(), "green cube".to_string()];
            assert_eq!(
                svlm_answers::parse_choice(&answer, &options),
                Some(1),
                "{answer}"
            );
        }
    }

    #[test]
    fn reasoned_keys_are_colours_when_those_tell_the_objects_apart() {
        assert_eq!(reasoned_keys("red box", "green cube"), ("red", "green"));
        assert_eq!(
            reasoned_keys("red box", "red cube"),
            ("red box", "red cube")
        );
        assert_eq!(reasoned_keys("chair", "red box"), ("chair", "red box"));
        assert_eq!(reasoned_keys("chair", "table"), ("chair", "table"));
    }

    #[test]
    fn fill_replaces_and_capitalizes() {
        assert_eq!(
            fill(
                "{A} is {v} from {b}.",
                &[('a', "the cube"), ('b', "the ball"), ('v', "2 m")]
            ),
            "The cube is 2 m from the ball."
        );
        assert_eq!(fill("{V}.", &[('v', "about 3 feet")]), "About 3 feet.");
        assert_eq!(fill("odd {brace", &[]), "odd {brace");
    }

    #[test]
    fn every_type_has_enough_phrasings() {
        for q in Quantity::ALL {
            let (nq, na) = quantity_phrasings(q);
            assert!(nq >= 5 && na >= 3, "{q:?}: {nq} questions, {na} answers");
        }
        for rel in Relation::ALL {
            let ((pq, pa), (cq, ca)) = relation_phrasings(rel);
            assert!(pq >= 5 && pa >= 3 && cq >= 5 && ca >= 3, "{rel:?}");
        }
    }
}
