//! The deterministic rule-based planner: recognizes common composite spatial questions, asks the VLM the
//! elementary questions they need (in the synthesis templates' words, by default the plain wording every synthesized
//! data set holds), parses the answers with `svlm-answers`
//! and composes the final answer. The offline default, and what tests use.

use std::path::Path;

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use svlm_eval::Answerer;
use svlm_synth::Truth;
use svlm_synth::phrase::Phrasing;
use svlm_synth::qa::Quantity;

use crate::names::{clean_name, split_list};
use crate::transcript::{Step, Transcript};

/// An elementary question the VLM answers directly with a length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Elementary {
    /// Centre-to-centre distance.
    Distance {
        a: String,
        b: String,
    },
    /// Closest-surface gap.
    Gap {
        a: String,
        b: String,
    },
    Width {
        a: String,
    },
    Height {
        a: String,
    },
    /// Largest dimension.
    Size {
        a: String,
    },
    /// Distance from the camera.
    CameraDistance {
        a: String,
    },
}

impl Elementary {
    fn quantity(&self) -> (Quantity, &str, &str) {
        match self {
            Elementary::Distance { a, b } => (Quantity::Distance, a, b),
            Elementary::Gap { a, b } => (Quantity::Gap, a, b),
            Elementary::Width { a } => (Quantity::Width, a, ""),
            Elementary::Height { a } => (Quantity::Height, a, ""),
            Elementary::Size { a } => (Quantity::MaxDimension, a, ""),
            Elementary::CameraDistance { a } => (Quantity::CameraDistance, a, ""),
        }
    }

    /// The question text as `svlm synth` writes it with `phrasing`: with `Phrasing::Plain` the one wording a model
    /// trained on plain-phrased data (the quickstart's) has seen, with `Varied` one of the templates picked by `rng`.
    pub fn question(&self, phrasing: Phrasing, rng: &mut ChaCha8Rng) -> String {
        let (q, a, b) = self.quantity();
        let the = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("the {s}")
            }
        };
        let truth = Truth::Length { meters: 0.0 };
        let style = svlm_answers::NumberStyle::plain_metric();
        svlm_synth::phrase::quantity_with_style(q, &the(a), &the(b), &truth, &style, phrasing, rng)
            .0
    }
}

/// What a composite question asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Goal {
    /// Do the three objects form a triangle of this shape?
    Triangle {
        objects: [String; 3],
        shape: TriangleShape,
    },
    /// Which candidate is nearest (or farthest) to the reference (`None`: the camera)?
    Extreme {
        candidates: Vec<String>,
        reference: Option<String>,
        farthest: bool,
    },
    /// The objects sorted by a key.
    Order {
        objects: Vec<String>,
        key: OrderKey,
        descending: bool,
    },
    /// Does `object` fit through the gap between `left` and `right`?
    FitBetween {
        object: String,
        left: String,
        right: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriangleShape {
    Equilateral,
    Isosceles,
    Right,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum OrderKey {
    Height,
    Width,
    Size,
    CameraDistance,
    DistanceTo { reference: String },
}

/// A composite question turned into elementary ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub goal: Goal,
    pub questions: Vec<Elementary>,
}

/// Tolerances of the composed answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlannerOptions {
    /// Sides are "equal" when they differ by at most this share of the longest side.
    pub side_tolerance: f64,
    /// A triangle is right when `|a^2 + b^2 - c^2| <= right_tolerance * c^2` (c the longest side).
    pub right_tolerance: f64,
    /// How the elementary questions are worded: `Plain` (the default) asks every question in the first wording of
    /// its synthesis template, the one every synthesized data set holds (plain-phrased sets hold only that one);
    /// `Varied` draws among all of them.
    #[serde(default = "plain")]
    pub phrasing: Phrasing,
    /// Seed of the phrasing choice (`Varied`).
    pub seed: u64,
}

fn plain() -> Phrasing {
    Phrasing::Plain
}

impl Default for PlannerOptions {
    fn default() -> Self {
        PlannerOptions {
            side_tolerance: 0.15,
            right_tolerance: 0.1,
            phrasing: Phrasing::Plain,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "cannot plan {0:?}: the rule-based planner knows triangle shape, nearest/farthest of N, ordering by distance/height/width/size and \"can X fit between Y and Z\" questions (use an LLM for others)"
    )]
    CannotPlan(String),
}

/// The composed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FinalValue {
    Bool { value: bool },
    Choice { value: String },
    Order { value: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// A sentence starting with "Yes"/"No" for yes/no goals, naming the winner or the order otherwise.
    pub answer: String,
    pub value: FinalValue,
    pub plan: Plan,
    /// Each elementary question's value in metres, in plan order.
    pub values_m: Vec<f64>,
}

fn after<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| text.strip_prefix(p))
}

fn list(text: &str) -> Vec<String> {
    split_list(&text.replace(" or ", ", "))
}

/// Turns a composite question into a plan, or says it cannot.
pub fn plan(question: &str) -> Result<Plan, PlanError> {
    let q = question
        .trim()
        .trim_end_matches(['?', '.', '!'])
        .to_lowercase();
    let cannot = || PlanError::CannotPlan(question.to_string());
    let goal = if q.contains("triangle") {
        let shape = if q.contains("equilateral") {
            TriangleShape::Equilateral
        } else if q.contains("isosceles") {
            TriangleShape::Isosceles
        } else if q.contains("right") {
            TriangleShape::Right
        } else {
            return Err(cannot());
        };
        let body = after(&q, &["do ", "does ", "would ", "are "]).ok_or_else(cannot)?;
        let end = body
            .find(" form")
            .or_else(|| body.find(" make"))
            .ok_or_else(cannot)?;
        let objects = list(&body[..end]);
        let objects: [String; 3] = objects.try_into().map_err(|_| cannot())?;
        Goal::Triangle { objects, shape }
    } else if let Some(rest) = after(&q, &["can ", "could ", "would ", "will ", "does ", "do "])
        .filter(|r| r.contains(" fit ") && r.contains(" between "))
    {
        let (object, places) = rest.split_once(" fit ").ok_or_else(cannot)?;
        let places = places.split_once("between ").ok_or_else(cannot)?.1;
        let (left, right) = places.split_once(" and ").ok_or_else(cannot)?;
        Goal::FitBetween {
            object: clean_name(object),
            left: clean_name(left),
            right: clean_name(right),
        }
    } else if let Some(rest) = after(&q, &["order ", "sort ", "rank ", "arrange "]) {
        let (objects, key) = rest.split_once(" by ").ok_or_else(cannot)?;
        let objects = list(objects);
        if objects.len() < 2 {
            return Err(cannot());
        }
        let (key_text, direction) = match key.split_once(" from ") {
            Some((k, d)) if !k.starts_with("distance") && !k.starts_with("their distance") => {
                (k, d)
            }
            _ => match key
                .rsplit_once(", from ")
                .or_else(|| key.rsplit_once(" from nearest"))
            {
                Some((k, d)) => (k, d),
                None => (key, ""),
            },
        };
        let descending = [
            "farthest", "furthest", "tallest", "highest", "widest", "largest", "biggest",
        ]
        .iter()
        .any(|w| direction.trim_start().starts_with(w))
            || key.contains("descending");
        let key_text = key_text.trim_start_matches("their ").trim();
        let key = if key_text.starts_with("height") {
            OrderKey::Height
        } else if key_text.starts_with("width") {
            OrderKey::Width
        } else if key_text.starts_with("size") {
            OrderKey::Size
        } else if key_text.contains("camera") || key_text.contains("viewer") {
            OrderKey::CameraDistance
        } else if let Some(r) = key_text
            .strip_prefix("distance from ")
            .or_else(|| key_text.strip_prefix("distance to "))
        {
            OrderKey::DistanceTo {
                reference: clean_name(r.split(" from ").next().unwrap_or(r)),
            }
        } else {
            return Err(cannot());
        };
        Goal::Order {
            objects,
            key,
            descending,
        }
    } else if let Some(rest) = after(
        &q,
        &[
            "which of ",
            "which one of ",
            "which is ",
            "which object is ",
        ],
    ) {
        let words = [
            "closest", "nearest", "closer", "nearer", "farthest", "furthest", "farther", "further",
        ];
        let at = words
            .iter()
            .filter_map(|w| rest.find(w).map(|p| (p, *w)))
            .min()
            .ok_or_else(cannot)?;
        let farthest = at.1.starts_with("fa") || at.1.starts_with("fu");
        let (before, after_word) = rest.split_at(at.0);
        let after_word = after_word[at.1.len()..].trim_start();
        let after_word = after(after_word, &["to ", "from "]).unwrap_or(after_word);
        // "which of A, B and C is closest to X" or "which is closest to X: A, B or C".
        let (reference, candidates) = match after_word.split_once(':') {
            Some((r, c)) => (r, list(c)),
            None => match after_word.split_once(", ") {
                Some((r, c)) if before.trim().is_empty() => (r, list(c)),
                _ => (
                    after_word,
                    list(
                        before
                            .trim_end()
                            .trim_end_matches(" is")
                            .trim_end_matches(" are"),
                    ),
                ),
            },
        };
        let reference = clean_name(reference);
        if candidates.len() < 2 || reference.is_empty() {
            return Err(cannot());
        }
        let reference = (!matches!(reference.as_str(), "camera" | "viewer" | "me" | "you"))
            .then_some(reference);
        Goal::Extreme {
            candidates,
            reference,
            farthest,
        }
    } else {
        return Err(cannot());
    };
    let questions = match &goal {
        Goal::Triangle {
            objects: [a, b, c], ..
        } => vec![
            Elementary::Distance {
                a: a.clone(),
                b: b.clone(),
            },
            Elementary::Distance {
                a: b.clone(),
                b: c.clone(),
            },
            Elementary::Distance {
                a: a.clone(),
                b: c.clone(),
            },
        ],
        Goal::Extreme {
            candidates,
            reference,
            ..
        } => candidates
            .iter()
            .map(|c| match reference {
                Some(r) => Elementary::Distance {
                    a: c.clone(),
                    b: r.clone(),
                },
                None => Elementary::CameraDistance { a: c.clone() },
            })
            .collect(),
        Goal::Order { objects, key, .. } => objects
            .iter()
            .map(|o| {
                let a = o.clone();
                match key {
                    OrderKey::Height => Elementary::Height { a },
                    OrderKey::Width => Elementary::Width { a },
                    OrderKey::Size => Elementary::Size { a },
                    OrderKey::CameraDistance => Elementary::CameraDistance { a },
                    OrderKey::DistanceTo { reference } => Elementary::Distance {
                        a,
                        b: reference.clone(),
                    },
                }
            })
            .collect(),
        Goal::FitBetween {
            object,
            left,
            right,
        } => vec![
            Elementary::Gap {
                a: left.clone(),
                b: right.clone(),
            },
            Elementary::Width { a: object.clone() },
        ],
    };
    Ok(Plan { goal, questions })
}

fn fmt_m(m: f64) -> String {
    if m < 1.0 {
        format!("{:.0} cm", m * 100.0)
    } else {
        format!("{m:.2} m")
    }
}

/// The final answer from the elementary values (metres, in plan order).
pub fn compose(
    plan: &Plan,
    values: &[f64],
    options: &PlannerOptions,
) -> Result<(String, FinalValue)> {
    anyhow::ensure!(
        values.len() == plan.questions.len(),
        "{} values for {} questions",
        values.len(),
        plan.questions.len()
    );
    Ok(match &plan.goal {
        Goal::Triangle { objects, shape } => {
            let mut s = [values[0], values[1], values[2]];
            s.sort_by(f64::total_cmp);
            let [s1, s2, s3] = s;
            anyhow::ensure!(s3 > 0.0, "all three distances are zero");
            let tol = options.side_tolerance;
            let (value, why) = match shape {
                TriangleShape::Equilateral => (
                    (s3 - s1) <= tol * s3,
                    format!(
                        "the longest and shortest sides differ by {:.0}%",
                        100.0 * (s3 - s1) / s3
                    ),
                ),
                TriangleShape::Isosceles => {
                    let closest = (s2 - s1).min(s3 - s2);
                    (
                        closest <= tol * s3,
                        format!(
                            "the two closest sides differ by {:.0}%",
                            100.0 * closest / s3
                        ),
                    )
                }
                TriangleShape::Right => {
                    let off = (s1 * s1 + s2 * s2 - s3 * s3).abs() / (s3 * s3);
                    (
                        off <= options.right_tolerance,
                        format!("a^2 + b^2 differs from c^2 by {:.0}%", 100.0 * off),
                    )
                }
            };
            let shape_name = match shape {
                TriangleShape::Equilateral => "an equilateral",
                TriangleShape::Isosceles => "an isosceles",
                TriangleShape::Right => "a right",
            };
            let answer = format!(
                "{}: the {}, the {} and the {} {} roughly {shape_name} triangle (sides {}, {} and {}; {why}).",
                if value { "Yes" } else { "No" },
                objects[0],
                objects[1],
                objects[2],
                if value { "form" } else { "do not form" },
                fmt_m(values[0]),
                fmt_m(values[1]),
                fmt_m(values[2]),
            );
            (answer, FinalValue::Bool { value })
        }
        Goal::Extreme {
            candidates,
            reference,
            farthest,
        } => {
            let pick = (0..values.len())
                .reduce(|best, i| {
                    let better = if *farthest {
                        values[i] > values[best]
                    } else {
                        values[i] < values[best]
                    };
                    if better { i } else { best }
                })
                .context("no candidates")?;
            let reference = reference.as_deref().unwrap_or("camera");
            let answer = format!(
                "The {} is {} the {reference} ({}; {}).",
                candidates[pick],
                if *farthest {
                    "farthest from"
                } else {
                    "closest to"
                },
                fmt_m(values[pick]),
                candidates
                    .iter()
                    .zip(values)
                    .map(|(c, v)| format!("{c}: {}", fmt_m(*v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (
                answer,
                FinalValue::Choice {
                    value: candidates[pick].clone(),
                },
            )
        }
        Goal::Order {
            objects,
            key,
            descending,
        } => {
            let mut order: Vec<usize> = (0..objects.len()).collect();
            order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
            if *descending {
                order.reverse();
            }
            let sorted: Vec<String> = order.iter().map(|&i| objects[i].clone()).collect();
            let key_name = match key {
                OrderKey::Height => "height".to_string(),
                OrderKey::Width => "width".to_string(),
                OrderKey::Size => "size".to_string(),
                OrderKey::CameraDistance => "distance from the camera".to_string(),
                OrderKey::DistanceTo { reference } => format!("distance from the {reference}"),
            };
            let answer = format!(
                "By {key_name} ({}): {}.",
                if *descending {
                    "largest first"
                } else {
                    "smallest first"
                },
                order
                    .iter()
                    .map(|&i| format!("the {} ({})", objects[i], fmt_m(values[i])))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (answer, FinalValue::Order { value: sorted })
        }
        Goal::FitBetween {
            object,
            left,
            right,
        } => {
            let (gap, width) = (values[0], values[1]);
            let value = width < gap;
            let answer = format!(
                "{}: the {object} is about {} wide and the gap between the {left} and the {right} is about {}.",
                if value { "Yes" } else { "No" },
                fmt_m(width),
                fmt_m(gap)
            );
            (answer, FinalValue::Bool { value })
        }
    })
}

/// Plans `question`, asks the VLM every elementary question about `image` in one batch, parses the answers and
/// composes the final answer. Every step is appended to `transcript`.
pub fn answer_with_rules(
    question: &str,
    image: &Path,
    vlm: &mut dyn Answerer,
    options: &PlannerOptions,
    transcript: &mut Transcript,
) -> Result<Outcome> {
    let plan = plan(question)?;
    transcript.push(Step::plan(
        serde_json::to_value(&plan).context("serializing the plan")?,
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let questions: Vec<String> = plan
        .questions
        .iter()
        .map(|e| e.question(options.phrasing, &mut rng))
        .collect();
    let items: Vec<_> = questions
        .iter()
        .map(|q| (image.to_path_buf(), q.clone()))
        .collect();
    let answers = vlm.answer_batch(&items).context("the VLM failed")?;
    anyhow::ensure!(
        answers.len() == items.len(),
        "the VLM gave {} answers for {} questions",
        answers.len(),
        items.len()
    );
    // Every answer goes into the transcript before an unreadable one stops the composition.
    let parsed: Vec<_> = questions
        .iter()
        .zip(&answers)
        .map(|(q, a)| {
            let parsed = crate::transcript::parse_answer(a);
            transcript.push(Step::vlm(q, a, parsed.clone()));
            parsed.meters
        })
        .collect();
    let mut values = Vec::with_capacity(answers.len());
    for ((q, a), meters) in questions.iter().zip(&answers).zip(parsed) {
        let meters =
            meters.with_context(|| format!("the VLM's answer to {q:?} has no length: {a:?}"))?;
        values.push(meters);
    }
    let (answer, value) = compose(&plan, &values, options)?;
    // Composed from the VLM's lengths alone.
    transcript.finish(&answer, true);
    Ok(Outcome {
        answer,
        value,
        plan,
        values_m: values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_triangles() {
        let p = plan("Do the blue can, the red can and the green sponge form roughly an equilateral triangle?").unwrap();
        assert_eq!(
            p.goal,
            Goal::Triangle {
                objects: ["blue can".into(), "red can".into(), "green sponge".into()],
                shape: TriangleShape::Equilateral
            }
        );
        assert_eq!(p.questions.len(), 3);
        assert!(matches!(
            plan("Do A, B and C form a right triangle?").unwrap().goal,
            Goal::Triangle {
                shape: TriangleShape::Right,
                ..
            }
        ));
        assert!(plan("Do A and B form a triangle?").is_err());
    }

    #[test]
    fn plans_extremes_order_and_fit() {
        let p = plan("Which of the red cube, the blue ball and the cup is closest to the table?")
            .unwrap();
        assert_eq!(
            p.goal,
            Goal::Extreme {
                candidates: vec!["red cube".into(), "blue ball".into(), "cup".into()],
                reference: Some("table".into()),
                farthest: false
            }
        );
        let p = plan("Which is farthest from the camera: the red cube, the blue ball or the cup?")
            .unwrap();
        assert!(
            matches!(
                p.goal,
                Goal::Extreme {
                    reference: None,
                    farthest: true,
                    ..
                }
            ),
            "{p:?}"
        );
        assert_eq!(
            p.questions[1],
            Elementary::CameraDistance {
                a: "blue ball".into()
            }
        );
        let p =
            plan("Order the red cube, the cup and the lamp by height, from tallest to shortest.")
                .unwrap();
        assert_eq!(
            p.goal,
            Goal::Order {
                objects: vec!["red cube".into(), "cup".into(), "lamp".into()],
                key: OrderKey::Height,
                descending: true
            }
        );
        let p = plan("Sort A, B and C by distance from the camera").unwrap();
        assert!(
            matches!(
                p.goal,
                Goal::Order {
                    key: OrderKey::CameraDistance,
                    descending: false,
                    ..
                }
            ),
            "{p:?}"
        );
        let p = plan("Sort A, B and C by distance from the lamp").unwrap();
        assert!(
            matches!(&p.goal, Goal::Order { key: OrderKey::DistanceTo { reference }, .. } if reference == "lamp"),
            "{p:?}"
        );
        let p = plan("Can the chair fit between the table and the shelf?").unwrap();
        assert_eq!(
            p.questions,
            vec![
                Elementary::Gap {
                    a: "table".into(),
                    b: "shelf".into()
                },
                Elementary::Width { a: "chair".into() }
            ]
        );
        assert!(matches!(
            plan("What color is the sky?"),
            Err(PlanError::CannotPlan(_))
        ));
    }

    #[test]
    fn composes_triangles() {
        let p = plan("Do A, B and C form an equilateral triangle?").unwrap();
        let o = PlannerOptions::default();
        assert_eq!(
            compose(&p, &[1.0, 1.05, 0.95], &o).unwrap().1,
            FinalValue::Bool { value: true }
        );
        assert_eq!(
            compose(&p, &[1.0, 2.0, 1.5], &o).unwrap().1,
            FinalValue::Bool { value: false }
        );
        let r = plan("Do A, B and C form a right triangle?").unwrap();
        assert_eq!(
            compose(&r, &[3.0, 4.0, 5.0], &o).unwrap().1,
            FinalValue::Bool { value: true }
        );
        assert_eq!(
            compose(&r, &[3.0, 3.0, 5.0], &o).unwrap().1,
            FinalValue::Bool { value: false }
        );
        let i = plan("Do A, B and C form an isosceles triangle?").unwrap();
        assert_eq!(
            compose(&i, &[2.0, 2.0, 3.0], &o).unwrap().1,
            FinalValue::Bool { value: true }
        );
        assert_eq!(
            compose(&i, &[1.0, 2.0, 2.9], &o).unwrap().1,
            FinalValue::Bool { value: false }
        );
        let (text, _) = compose(&p, &[1.0, 1.0, 1.0], &o).unwrap();
        assert_eq!(svlm_answers::parse_yes_no(&text), Some(true), "{text}");
    }
}
