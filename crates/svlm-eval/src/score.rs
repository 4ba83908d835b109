//! Scoring one answer against its ground truth.

use serde::{Deserialize, Serialize};
use svlm_answers::{
    ChoiceMiss, clock_distance, parse_angle_degrees, parse_clock, parse_length, parse_yes_no,
    read_choice,
};
use svlm_synth::record::Truth;

/// A clock-direction answer is correct within this many hours of the truth, around the dial (SpatialRGPT).
pub const CLOCK_TOLERANCE_HOURS: u8 = 1;
/// An angle answer is correct within this many degrees of the truth.
pub const ANGLE_TOLERANCE_DEG: f64 = 10.0;
/// Truth lengths at or below this are "zero" (touching objects): ratio metrics are undefined for them, and an answer
/// is correct when it is within `ZERO_LENGTH_TOLERANCE_M` of zero.
pub const ZERO_LENGTH_M: f64 = 1e-6;
pub const ZERO_LENGTH_TOLERANCE_M: f64 = 0.01;
/// Thresholds of the mean relative accuracy (VSI-Bench): 0.50, 0.55, ..., 0.95.
pub const MRA_THRESHOLDS: [f64; 10] = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95];

/// What the answer text was read as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Parsed {
    Bool {
        value: bool,
    },
    Choice {
        index: usize,
        value: String,
    },
    /// `meters` is the midpoint when the answer gave a range.
    Length {
        meters: f64,
        low_m: f64,
        high_m: f64,
    },
    Clock {
        hour: u8,
    },
    Angle {
        degrees: f64,
    },
}

/// The outcome of one answer. `parsed == None` is an invalid-format answer: it is never `correct`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub parsed: Option<Parsed>,
    /// Bool/Choice: the same answer; Length: within [0.5x, 2x] of the truth; Clock: within +-1 hour;
    /// Angle: within +-10 degrees.
    pub correct: bool,
    /// Lengths with a non-zero truth: |pred - gt| / gt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_error: Option<f64>,
    /// Lengths with a non-zero truth: pred / gt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Clock: hours off around the dial (0..=6); Angle: |pred - gt| in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absolute_error: Option<f64>,
    /// Choices: why the answer chose no option (`svlm_answers::read_choice`); such an answer is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_miss: Option<ChoiceMiss>,
}

impl Score {
    pub fn is_valid(&self) -> bool {
        self.parsed.is_some()
    }

    fn invalid() -> Score {
        Score {
            parsed: None,
            correct: false,
            relative_error: None,
            ratio: None,
            absolute_error: None,
            choice_miss: None,
        }
    }

    fn exact(parsed: Parsed, correct: bool) -> Score {
        Score {
            parsed: Some(parsed),
            correct,
            relative_error: None,
            ratio: None,
            absolute_error: None,
            choice_miss: None,
        }
    }
}

/// [0.5x, 2x] of the truth, both ends included (SpatialVLM, Q-Spatial).
pub fn within_factor_two(ratio: f64) -> bool {
    (0.5..=2.0).contains(&ratio)
}

/// [0.75x, 1.25x] of the truth, both ends included (SpatialRGPT's success rate).
pub fn within_25_percent(ratio: f64) -> bool {
    (0.75..=1.25).contains(&ratio)
}

/// Mean relative accuracy of one answer: the share of thresholds theta in 0.50..=0.95 (step 0.05) for which
/// |pred - gt| / gt < 1 - theta (VSI-Bench).
pub fn mean_relative_accuracy(relative_error: f64) -> f64 {
    // 1 - theta as whole percent / 100, so 1 - 0.70 is exactly the f64 nearest 0.30 (not 0.30000000000000004).
    let hits = MRA_THRESHOLDS
        .iter()
        .filter(|&&theta| relative_error < (100.0 - (theta * 100.0).round()) / 100.0)
        .count();
    hits as f64 / MRA_THRESHOLDS.len() as f64
}

/// Reads `answer` the way `truth` asks (yes/no, choice, length, clock, angle) and compares. A choice is read at
/// its conclusion and must name exactly one option (`svlm_answers::read_choice`): an answer naming a non-option,
/// both options, a mix of two options' words or none is invalid, and `choice_miss` says which.
/// Lengths compare magnitudes (a signed truth such as a vertical offset is compared by its absolute value, since
/// answers state distances).
pub fn score_answer(truth: &Truth, answer: &str) -> Score {
    match truth {
        Truth::Bool { value } => match parse_yes_no(answer) {
            Some(said) => Score::exact(Parsed::Bool { value: said }, said == *value),
            None => Score::invalid(),
        },
        Truth::Choice { value, options } => match read_choice(answer, options) {
            Ok(index) => {
                let chosen = options[index].clone();
                let correct = chosen.trim().eq_ignore_ascii_case(value.trim());
                Score::exact(
                    Parsed::Choice {
                        index,
                        value: chosen,
                    },
                    correct,
                )
            }
            Err(miss) => Score {
                choice_miss: Some(miss),
                ..Score::invalid()
            },
        },
        Truth::Length { meters } => match parse_length(answer) {
            Some(length) => {
                let gt = meters.abs();
                let pred = length.meters;
                let parsed = Parsed::Length {
                    meters: pred,
                    low_m: length.low_m,
                    high_m: length.high_m,
                };
                if gt <= ZERO_LENGTH_M {
                    return Score::exact(parsed, pred <= ZERO_LENGTH_TOLERANCE_M);
                }
                let ratio = pred / gt;
                Score {
                    parsed: Some(parsed),
                    correct: within_factor_two(ratio),
                    relative_error: Some((pred - gt).abs() / gt),
                    ratio: Some(ratio),
                    absolute_error: None,
                    choice_miss: None,
                }
            }
            None => Score::invalid(),
        },
        Truth::Clock { hour } => match parse_clock(answer) {
            Some(said) => {
                let off = clock_distance(said, *hour);
                Score {
                    absolute_error: Some(f64::from(off)),
                    ..Score::exact(Parsed::Clock { hour: said }, off <= CLOCK_TOLERANCE_HOURS)
                }
            }
            None => Score::invalid(),
        },
        Truth::Angle { degrees } => match parse_angle_degrees(answer) {
            Some(said) => {
                let off = (said - degrees).abs();
                Score {
                    absolute_error: Some(off),
                    ..Score::exact(Parsed::Angle { degrees: said }, off <= ANGLE_TOLERANCE_DEG)
                }
            }
            None => Score::invalid(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(value: &str) -> Truth {
        Truth::Choice {
            value: value.into(),
            options: vec!["red cube".into(), "blue ball".into()],
        }
    }

    #[test]
    fn bool_and_choice() {
        let yes = Truth::Bool { value: true };
        assert!(score_answer(&yes, "Yes, it is.").correct);
        let no = score_answer(&yes, "No.");
        assert!(no.is_valid() && !no.correct);
        let unsure = score_answer(&yes, "I can't tell");
        assert!(!unsure.is_valid() && !unsure.correct);
        assert!(score_answer(&choice("blue ball"), "The blue ball is taller.").correct);
        let wrong = score_answer(&choice("blue ball"), "The red cube.");
        assert_eq!(
            wrong.parsed,
            Some(Parsed::Choice {
                index: 0,
                value: "red cube".into()
            })
        );
        assert!(!wrong.correct);
        assert!(!score_answer(&choice("blue ball"), "green cone").is_valid());
    }

    #[test]
    fn lengths_by_ratio() {
        let truth = Truth::Length { meters: 2.0 };
        let s = score_answer(&truth, "about 1 m");
        assert_eq!(s.ratio, Some(0.5));
        assert_eq!(s.relative_error, Some(0.5));
        assert!(s.correct, "0.5x is inside [0.5x, 2x]");
        assert!(score_answer(&truth, "4 meters").correct);
        assert!(!score_answer(&truth, "4.1 meters").correct);
        assert!(!score_answer(&truth, "99 cm").correct);
        // a range is scored by its midpoint: (1+3)/2 = 2
        assert_eq!(score_answer(&truth, "1-3 m").relative_error, Some(0.0));
        let invalid = score_answer(&truth, "2");
        assert!(!invalid.is_valid() && !invalid.correct && invalid.relative_error.is_none());
        // a signed truth compares magnitudes
        assert!(score_answer(&Truth::Length { meters: -0.5 }, "50 cm").correct);
        // zero truth: correct within 1 cm, no ratio
        let zero = score_answer(&Truth::Length { meters: 0.0 }, "0 cm");
        assert!(zero.correct && zero.ratio.is_none());
        assert!(!score_answer(&Truth::Length { meters: 0.0 }, "5 cm").correct);
    }

    #[test]
    fn clock_within_an_hour_around_the_dial() {
        let truth = Truth::Clock { hour: 12 };
        assert!(score_answer(&truth, "at 1 o'clock").correct);
        assert!(score_answer(&truth, "11 o'clock").correct);
        let two = score_answer(&truth, "2 o'clock");
        assert!(!two.correct);
        assert_eq!(two.absolute_error, Some(2.0));
        assert!(!score_answer(&truth, "straight ahead").is_valid());
    }

    #[test]
    fn angles() {
        let truth = Truth::Angle { degrees: 20.0 };
        assert!(score_answer(&truth, "about 28 degrees").correct);
        assert!(!score_answer(&truth, "31 degrees").correct);
        assert_eq!(score_answer(&truth, "15 degrees").absolute_error, Some(5.0));
        assert!(!score_answer(&truth, "20").is_valid());
    }

    #[test]
    fn mean_relative_accuracy_by_hand() {
        // error 0.0: below every 1 - theta (0.5 .. 0.05) -> 10/10
        assert_eq!(mean_relative_accuracy(0.0), 1.0);
        // error 0.12: below 0.5, 0.45, ..., 0.15 (theta 0.50..0.85 = 8 thresholds), not below 0.10, 0.05
        assert!((mean_relative_accuracy(0.12) - 0.8).abs() < 1e-12);
        // error 0.5: not strictly below 0.5 -> 0
        assert_eq!(mean_relative_accuracy(0.5), 0.0);
        // error 0.3: below 0.5, 0.45, 0.4, 0.35, not below 0.30 -> 4/10
        assert!((mean_relative_accuracy(0.3) - 0.4).abs() < 1e-12);
        assert!((mean_relative_accuracy(0.1) - 0.8).abs() < 1e-12);
        assert!((mean_relative_accuracy(0.049) - 1.0).abs() < 1e-12);
        assert!((mean_relative_accuracy(0.05) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn ratio_windows_include_their_ends() {
        assert!(within_factor_two(0.5) && within_factor_two(2.0) && !within_factor_two(2.0001));
        assert!(within_25_percent(0.75) && within_25_percent(1.25) && !within_25_percent(0.7499));
    }
}
