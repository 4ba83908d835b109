//! Metrics over many scored answers: overall, per question type and per family.

use crate::score::{
    Score, ZERO_LENGTH_M, mean_relative_accuracy, within_25_percent, within_factor_two,
};
use serde::{Deserialize, Serialize};
use svlm_answers::ChoiceMiss;
use svlm_synth::record::Truth;

/// A success rate reported two ways: over every item it applies to (an invalid-format answer counts as a miss), and
/// over the items whose answer could be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub hits: usize,
    /// Items this rate applies to.
    pub total: usize,
    /// Of those, answers that could be read.
    pub valid: usize,
    /// hits / total; `None` when total is 0.
    pub over_all: Option<f64>,
    /// hits / valid; `None` when valid is 0.
    pub over_valid: Option<f64>,
}

impl Rate {
    fn add(&mut self, valid: bool, hit: bool) {
        self.total += 1;
        self.valid += usize::from(valid);
        self.hits += usize::from(hit && valid);
    }

    fn finish(&mut self) {
        self.over_all = ratio(self.hits, self.total);
        self.over_valid = ratio(self.hits, self.valid);
    }
}

/// "Which" answers that chose no option, by why (`svlm_answers::ChoiceMiss`). Each is also an invalid answer: wrong
/// in every "over all" rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceMisses {
    /// Nothing named, an object that is not an option, or a part several options share.
    pub no_option: usize,
    /// Two options named as the answer.
    pub several_options: usize,
    /// One name made of two options' words ("purple cone" for "purple cylinder or yellow cone").
    pub mixed_options: usize,
    /// "Neither", "both", "I can't tell".
    pub refusal: usize,
}

impl ChoiceMisses {
    fn add(&mut self, miss: ChoiceMiss) {
        *self.count_mut(miss) += 1;
    }

    fn count_mut(&mut self, miss: ChoiceMiss) -> &mut usize {
        match miss {
            ChoiceMiss::NoOption => &mut self.no_option,
            ChoiceMiss::SeveralOptions => &mut self.several_options,
            ChoiceMiss::MixedOptions => &mut self.mixed_options,
            ChoiceMiss::Refusal => &mut self.refusal,
        }
    }

    /// The count of one reason.
    pub fn get(&self, miss: ChoiceMiss) -> usize {
        match miss {
            ChoiceMiss::NoOption => self.no_option,
            ChoiceMiss::SeveralOptions => self.several_options,
            ChoiceMiss::MixedOptions => self.mixed_options,
            ChoiceMiss::Refusal => self.refusal,
        }
    }

    pub fn total(&self) -> usize {
        ChoiceMiss::ALL.iter().map(|&m| self.get(m)).sum()
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Everything measured over one group of answers. Rates that do not apply to any item of the group have
/// `total == 0` and `None` values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub count: usize,
    pub valid: usize,
    /// valid / count.
    pub valid_format_rate: Option<f64>,
    /// Every item by its own rule (`Score::correct`: same yes/no or choice, length within [0.5x, 2x], clock within
    /// +-1 hour, angle within +-10 degrees).
    pub accuracy: Rate,
    /// Yes/no predicates and "which" choices (the paper's binary-predicate accuracy).
    pub binary: Rate,
    /// Yes/no predicates alone.
    #[serde(default)]
    pub yes_no: Rate,
    /// "Which" choices alone.
    #[serde(default)]
    pub which: Rate,
    /// "Which" answers that chose no option, by why.
    #[serde(default)]
    pub which_misses: ChoiceMisses,
    /// Lengths with a non-zero truth: prediction in [0.5x, 2x] of the truth (SpatialVLM, Q-Spatial).
    pub within_2x: Rate,
    /// Lengths with a non-zero truth: prediction in [0.75x, 1.25x] of the truth (SpatialRGPT).
    pub within_25_percent: Rate,
    /// Mean relative accuracy over thresholds 0.50..0.95 (VSI-Bench), lengths with a non-zero truth; over all
    /// counts invalid answers as 0.
    pub mra_over_all: Option<f64>,
    pub mra_over_valid: Option<f64>,
    /// |pred - gt| / gt over readable lengths with a non-zero truth.
    pub abs_rel_error_mean: Option<f64>,
    pub abs_rel_error_median: Option<f64>,
    /// Clock directions within +-1 hour.
    pub clock: Rate,
    /// Angles within +-10 degrees, and the mean absolute error of readable angles.
    pub angle: Rate,
    pub angle_abs_error_mean_deg: Option<f64>,
}

impl Metrics {
    /// Aggregates (truth, score) pairs.
    pub fn from_scores<'a>(items: impl IntoIterator<Item = (&'a Truth, &'a Score)>) -> Metrics {
        let mut m = Metrics::default();
        let mut rel_errors = Vec::new();
        let mut mra_sum = 0.0;
        let mut angle_errors = Vec::new();
        for (truth, score) in items {
            let valid = score.is_valid();
            m.count += 1;
            m.valid += usize::from(valid);
            m.accuracy.add(valid, score.correct);
            match truth {
                Truth::Bool { .. } => {
                    m.binary.add(valid, score.correct);
                    m.yes_no.add(valid, score.correct);
                }
                Truth::Choice { .. } => {
                    m.binary.add(valid, score.correct);
                    m.which.add(valid, score.correct);
                    if let Some(miss) = score.choice_miss {
                        m.which_misses.add(miss);
                    }
                }
                Truth::Length { meters } if meters.abs() > ZERO_LENGTH_M => {
                    let ratio = score.ratio.unwrap_or(f64::NAN);
                    m.within_2x.add(valid, within_factor_two(ratio));
                    m.within_25_percent.add(valid, within_25_percent(ratio));
                    if let Some(err) = score.relative_error.filter(|_| valid) {
                        rel_errors.push(err);
                        mra_sum += mean_relative_accuracy(err);
                    }
                }
                Truth::Length { .. } => {}
                Truth::Clock { .. } => m.clock.add(valid, score.correct),
                Truth::Angle { .. } => {
                    m.angle.add(valid, score.correct);
                    if let Some(err) = score.absolute_error.filter(|_| valid) {
                        angle_errors.push(err);
                    }
                }
            }
        }
        m.valid_format_rate = ratio(m.valid, m.count);
        for rate in [
            &mut m.accuracy,
            &mut m.binary,
            &mut m.yes_no,
            &mut m.which,
            &mut m.within_2x,
            &mut m.within_25_percent,
            &mut m.clock,
            &mut m.angle,
        ] {
            rate.finish();
        }
        if m.within_2x.total > 0 {
            m.mra_over_all = Some(mra_sum / m.within_2x.total as f64);
        }
        if !rel_errors.is_empty() {
            m.mra_over_valid = Some(mra_sum / rel_errors.len() as f64);
            m.abs_rel_error_mean = Some(rel_errors.iter().sum::<f64>() / rel_errors.len() as f64);
            m.abs_rel_error_median = Some(median(&mut rel_errors));
        }
        if !angle_errors.is_empty() {
            m.angle_abs_error_mean_deg =
                Some(angle_errors.iter().sum::<f64>() / angle_errors.len() as f64);
        }
        m
    }
}

/// Median (mean of the two middle values for an even count). `values` must be non-empty; NaNs sort last.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::score_answer;

    fn run(cases: &[(Truth, &str)]) -> Metrics {
        let scored: Vec<(Truth, Score)> = cases
            .iter()
            .map(|(t, a)| (t.clone(), score_answer(t, a)))
            .collect();
        Metrics::from_scores(scored.iter().map(|(t, s)| (t, s)))
    }

    #[test]
    fn binary_accuracy_over_all_and_over_valid() {
        let yes = Truth::Bool { value: true };
        let m = run(&[
            (yes.clone(), "yes"),
            (yes.clone(), "no"),
            (yes.clone(), "maybe"),
            (yes, "Yes."),
        ]);
        assert_eq!((m.count, m.valid), (4, 3));
        assert_eq!(m.valid_format_rate, Some(0.75));
        assert_eq!((m.binary.hits, m.binary.total, m.binary.valid), (2, 4, 3));
        assert_eq!(m.binary.over_all, Some(0.5));
        assert_eq!(m.binary.over_valid, Some(2.0 / 3.0));
        assert_eq!(m.accuracy, m.binary);
        assert_eq!(m.yes_no, m.binary);
        assert_eq!(m.within_2x.total, 0);
        assert_eq!(m.within_2x.over_all, None);
        assert_eq!(m.mra_over_all, None);
    }

    #[test]
    fn yes_no_leaves_the_choices_out_of_binary() {
        let choice = Truth::Choice {
            value: "red box".into(),
            options: vec!["red box".into(), "gray cube".into()],
        };
        let m = run(&[
            (Truth::Bool { value: false }, "No."),
            (Truth::Bool { value: false }, "Yes."),
            (choice.clone(), "The red box."),
            (choice, "The red box, I think."),
        ]);
        assert_eq!((m.binary.hits, m.binary.total), (3, 4));
        assert_eq!((m.yes_no.hits, m.yes_no.total), (1, 2));
        assert_eq!(m.yes_no.over_all, Some(0.5));
        assert_eq!((m.which.hits, m.which.total), (2, 2));
        assert_eq!(m.which.over_all, Some(1.0));
    }

    #[test]
    fn which_answers_naming_no_single_option_are_wrong_and_counted() {
        let choice = Truth::Choice {
            value: "purple cylinder".into(),
            options: vec!["purple cylinder".into(), "yellow cone".into()],
        };
        let listing = "From left to right: yellow: left, purple: right.";
        let answers = [
            format!("{listing} So purple cylinder."),
            format!("{listing} So yellow cone."),
            format!("{listing} So purple cone."),
            format!("{listing} So purple cylinder, yellow cone."),
            format!("{listing} So red cube."),
            format!("{listing} So purple."),
            "Neither.".to_string(),
            listing.to_string(),
        ];
        let cases: Vec<(Truth, &str)> = answers
            .iter()
            .map(|a| (choice.clone(), a.as_str()))
            .collect();
        let m = run(&cases);
        assert_eq!((m.which.hits, m.which.valid, m.which.total), (1, 2, 8));
        assert_eq!(m.which.over_all, Some(1.0 / 8.0));
        assert_eq!(
            m.which_misses,
            ChoiceMisses {
                no_option: 3,
                several_options: 1,
                mixed_options: 1,
                refusal: 1,
            }
        );
        assert_eq!(m.which_misses.total(), m.which.total - m.which.valid);
    }

    #[test]
    fn length_metrics_by_hand() {
        let gt = Truth::Length { meters: 1.0 };
        // predictions 1.12 m (err 0.12), 0.83 m (0.17), 2.5 m (1.5), invalid
        let m = run(&[
            (gt.clone(), "1.12 m"),
            (gt.clone(), "83 cm"),
            (gt.clone(), "2.5 m"),
            (gt, "one"),
        ]);
        assert_eq!(
            (m.within_2x.hits, m.within_2x.total, m.within_2x.valid),
            (2, 4, 3)
        );
        assert_eq!(m.within_2x.over_all, Some(0.5));
        assert_eq!(
            (m.within_25_percent.hits, m.within_25_percent.total),
            (2, 4)
        );
        // MRA: err 0.12 -> 1-theta > 0.12 for theta 0.50..0.85 = 8 -> 0.8;
        // err 0.17 -> 1-theta > 0.17 for theta 0.50..0.80 = 7 -> 0.7; err 1.5 -> 0
        let mra_sum = 0.8 + 0.7 + 0.0;
        assert!((m.mra_over_all.unwrap_or(f64::NAN) - mra_sum / 4.0).abs() < 1e-9);
        assert!((m.mra_over_valid.unwrap_or(f64::NAN) - mra_sum / 3.0).abs() < 1e-9);
        assert!(
            (m.abs_rel_error_mean.unwrap_or(f64::NAN) - (0.12 + 0.17 + 1.5) / 3.0).abs() < 1e-9
        );
        assert!((m.abs_rel_error_median.unwrap_or(f64::NAN) - 0.17).abs() < 1e-9);
        assert_eq!(m.binary.total, 0);
        assert_eq!(m.accuracy.hits, 2);
    }

    #[test]
    fn clock_and_angle() {
        let m = run(&[
            (Truth::Clock { hour: 3 }, "4 o'clock"),
            (Truth::Clock { hour: 3 }, "6 o'clock"),
            (Truth::Clock { hour: 12 }, "11 o'clock"),
            (Truth::Angle { degrees: 10.0 }, "14 degrees"),
            (Truth::Angle { degrees: 10.0 }, "40 degrees"),
        ]);
        assert_eq!((m.clock.hits, m.clock.total), (2, 3));
        assert_eq!((m.angle.hits, m.angle.total), (1, 2));
        assert_eq!(m.angle_abs_error_mean_deg, Some(17.0));
        assert_eq!(m.accuracy.hits, 3);
    }

    #[test]
    fn empty_and_even_median() {
        let m = Metrics::from_scores(std::iter::empty());
        assert_eq!(m.count, 0);
        assert_eq!(m.valid_format_rate, None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
