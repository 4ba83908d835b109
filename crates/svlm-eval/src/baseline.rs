//! The answer-prior baseline: what a model scores without looking at the image, from the training answers alone.
//! Per question type it answers the majority yes/no, the most frequent option, the one length that falls within
//! [0.5x, 2x] of the most training answers, the median angle or the most frequent clock hour of the training set. A VLM that does not beat it on a question type has learned the type's
//! prior, not to read the image.

use std::collections::BTreeMap;

use svlm_answers::{LengthUnit, format_clock, format_length_in};
use svlm_synth::record::Truth;

use crate::dataset::EvalSet;
use crate::evaluate::Prediction;
use crate::report::EvalReport;

#[derive(Debug, Default)]
struct TypePrior {
    yes: usize,
    no: usize,
    options: BTreeMap<String, usize>,
    lengths: Vec<f64>,
    hours: BTreeMap<u8, usize>,
    angles: Vec<f64>,
}

/// Priors per question type, fit on a training set.
#[derive(Debug, Default)]
pub struct PriorBaseline {
    types: BTreeMap<String, TypePrior>,
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

/// The constant length within [0.5x, 2x] of the most `lengths` (positive ones; `None` without any): the
/// geometric middle of the densest window [t, 4t] over the sorted values, the first such window on ties.
pub fn best_within_2x_constant(lengths: &[f64]) -> Option<f64> {
    let mut logs: Vec<f64> = lengths
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.ln())
        .collect();
    logs.sort_by(f64::total_cmp);
    let width = 4f64.ln();
    let (mut best, mut best_start, mut end) = (0, 0, 0);
    for start in 0..logs.len() {
        while end < logs.len() && logs[end] - logs[start] <= width {
            end += 1;
        }
        if end - start > best {
            (best, best_start) = (end - start, start);
        }
    }
    (best > 0).then(|| ((logs[best_start] + logs[best_start + best - 1]) / 2.0).exp())
}

fn most_frequent<K: Clone + Ord>(counts: &BTreeMap<K, usize>) -> Option<K> {
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(k, _)| k.clone())
}

impl PriorBaseline {
    pub fn fit(train: &EvalSet) -> PriorBaseline {
        let mut types: BTreeMap<String, TypePrior> = BTreeMap::new();
        for item in &train.items {
            let prior = types.entry(item.kind.clone()).or_default();
            match &item.truth {
                Truth::Bool { value: true } => prior.yes += 1,
                Truth::Bool { value: false } => prior.no += 1,
                Truth::Choice { value, .. } => {
                    *prior.options.entry(value.clone()).or_default() += 1
                }
                Truth::Length { meters } if meters.is_finite() => prior.lengths.push(*meters),
                Truth::Length { .. } => {}
                Truth::Clock { hour } => *prior.hours.entry(*hour).or_default() += 1,
                Truth::Angle { degrees } if degrees.is_finite() => prior.angles.push(*degrees),
                Truth::Angle { .. } => {}
            }
        }
        PriorBaseline { types }
    }

    /// The prior's answer to a question of `kind` whose truth has the shape of `truth` (choices answer among the
    /// question's own options: the option most often right in training, else the first one).
    pub fn answer(&mut self, kind: &str, truth: &Truth) -> String {
        let Some(prior) = self.types.get_mut(kind) else {
            return "I don't know.".into();
        };
        match truth {
            Truth::Bool { .. } => (if prior.yes >= prior.no { "Yes." } else { "No." }).into(),
            Truth::Choice { options, .. } => {
                let best = options
                    .iter()
                    .max_by_key(|o| prior.options.get(*o).copied().unwrap_or(0))
                    .or(options.first());
                best.map_or("I don't know.".into(), |o| format!("The {o}."))
            }
            Truth::Length { .. } => {
                best_within_2x_constant(&prior.lengths).map_or("I don't know.".into(), |m| {
                    let unit = if m < 1.0 {
                        LengthUnit::Centimeter
                    } else {
                        LengthUnit::Meter
                    };
                    format!("{}.", format_length_in(m, unit))
                })
            }
            Truth::Clock { .. } => most_frequent(&prior.hours)
                .map_or("I don't know.".into(), |h| format!("{}.", format_clock(h))),
            Truth::Angle { .. } => median(&mut prior.angles).map_or("I don't know.".into(), |d| {
                let direction = if d < 0.0 { "below" } else { "above" };
                format!("{:.0} degrees {direction} the horizontal.", d.abs())
            }),
        }
    }

    /// The constant length answered per question type with length answers ([`best_within_2x_constant`]), metres.
    pub fn length_constants(&self) -> BTreeMap<String, f64> {
        self.types
            .iter()
            .filter_map(|(kind, p)| best_within_2x_constant(&p.lengths).map(|c| (kind.clone(), c)))
            .collect()
    }

    /// Answers and scores every item of `test` (no model, no image).
    pub fn evaluate(&mut self, test: &EvalSet, name: &str) -> EvalReport {
        let predictions: Vec<Prediction> = test
            .items
            .iter()
            .map(|item| {
                let answer = self.answer(&item.kind, &item.truth);
                Prediction::new(item, answer)
            })
            .collect();
        EvalReport::from_predictions(&test.name, name, predictions, &test.skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::EvalItem;

    fn item(kind: &str, truth: Truth) -> EvalItem {
        EvalItem {
            id: format!("{kind}-{truth:?}"),
            image: "x.png".into(),
            question: "q".into(),
            kind: kind.into(),
            truth,
            reference_answer: None,
            regions: Vec::new(),
            location: String::new(),
        }
    }

    #[test]
    fn priors_answer_majority_median_and_most_frequent() {
        let mut train = EvalSet::new("train");
        for v in [true, true, false] {
            train
                .items
                .push(item("left_predicate", Truth::Bool { value: v }));
        }
        for m in [0.2, 0.5, 3.0] {
            train
                .items
                .push(item("distance", Truth::Length { meters: m }));
        }
        for h in [3, 3, 12] {
            train
                .items
                .push(item("clock_direction", Truth::Clock { hour: h }));
        }
        let mut prior = PriorBaseline::fit(&train);
        assert_eq!(
            prior.answer("left_predicate", &Truth::Bool { value: false }),
            "Yes."
        );
        assert_eq!(
            prior.answer("distance", &Truth::Length { meters: 9.0 }),
            "32 centimeters."
        );
        assert_eq!(
            prior.answer("clock_direction", &Truth::Clock { hour: 1 }),
            "3 o'clock."
        );
        assert_eq!(
            prior.answer("unseen", &Truth::Bool { value: true }),
            "I don't know."
        );

        let mut test = EvalSet::new("test");
        test.items
            .push(item("left_predicate", Truth::Bool { value: true }));
        test.items
            .push(item("left_predicate", Truth::Bool { value: false }));
        test.items
            .push(item("distance", Truth::Length { meters: 0.4 }));
        test.items
            .push(item("distance", Truth::Length { meters: 2.0 }));
        let report = prior.evaluate(&test, "prior");
        assert_eq!(report.overall.binary.hits, 1);
        assert_eq!(
            report.overall.within_2x.hits, 1,
            "0.32 m is within 2x of 0.4 m, not of 2.0 m"
        );
        assert_eq!(report.overall.valid, 4);
    }

    #[test]
    fn the_length_constant_maximizes_within_2x_not_the_median() {
        let lengths = [0.1, 0.1, 0.1, 1.0, 1.1, 5.0, 6.0, -1.0, f64::NAN];
        let c = best_within_2x_constant(&lengths).expect("a constant");
        assert!((c - 0.1).abs() < 1e-12, "{c}");
        let within = |c: f64| {
            lengths
                .iter()
                .filter(|t| **t >= c / 2.0 && **t <= 2.0 * c)
                .count()
        };
        assert_eq!(within(c), 3);
        assert_eq!(within(1.0), 2, "the median scores fewer");
        assert_eq!(best_within_2x_constant(&[]), None);
        assert_eq!(best_within_2x_constant(&[0.0, -2.0]), None);
        assert!((best_within_2x_constant(&[3.0]).unwrap_or(0.0) - 3.0).abs() < 1e-12);
        let c = best_within_2x_constant(&[1.0, 4.0, 20.0]).unwrap_or(0.0);
        assert!((c - 2.0).abs() < 1e-12, "{c}");
    }
}
