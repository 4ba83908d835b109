//! Reasoned answers scored step by step. A reasoned yes/no or "which" answer ("From left to right: the red box, the
//! gray cube. ... No.") can go wrong reading the scene (the listing) or deciding from it (the verdict), and its
//! accuracy alone cannot tell which. These counts compare the model's listing with the reference answer's and split
//! the final answers by whether the listing was right.

use crate::evaluate::Prediction;
use serde::{Deserialize, Serialize};
use svlm_synth::phrase::reasoned_listing;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningSteps {
    /// Predictions whose reference answer is reasoned (starts with a listing along an axis).
    pub reasoned: usize,
    /// Of those, answers that list the reference's objects (any order, any axis).
    pub same_objects: usize,
    /// Answers whose listing is the reference's: same axis, same objects, same order.
    pub listing_right: usize,
    /// Correct final answers after a right listing.
    pub correct_after_right_listing: usize,
    /// Correct final answers after any other (a wrong, partial or missing listing).
    pub correct_after_wrong_listing: usize,
}

fn rate(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn normalized(objects: &[&str]) -> Vec<String> {
    objects.iter().map(|o| o.trim().to_lowercase()).collect()
}

impl ReasoningSteps {
    /// Column names for the rates of [`ReasoningSteps::rates`], in the same order: every step-by-step table uses them.
    pub const RATE_COLUMNS: [&'static str; 4] = [
        "listing right",
        "order right",
        "correct after a right listing",
        "correct after a wrong one",
    ];

    /// Listing, order, correct after a right listing, correct after a wrong one ([`Self::RATE_COLUMNS`]).
    pub fn rates(&self) -> [Option<f64>; 4] {
        [
            self.listing_rate(),
            self.order_rate(),
            self.correct_after_right_rate(),
            self.correct_after_wrong_rate(),
        ]
    }

    /// Counts over `predictions`; those without a reasoned reference answer are left out.
    pub fn from_predictions<'a>(predictions: impl IntoIterator<Item = &'a Prediction>) -> Self {
        let mut s = ReasoningSteps::default();
        for p in predictions {
            let Some((axis, objects)) = p.reference_answer.as_deref().and_then(reasoned_listing)
            else {
                continue;
            };
            s.reasoned += 1;
            let reference = normalized(&objects);
            let (same_objects, right) = match reasoned_listing(&p.answer_text) {
                Some((said_axis, said)) => {
                    let said = normalized(&said);
                    let (mut a, mut b) = (said.clone(), reference.clone());
                    a.sort();
                    b.sort();
                    (
                        a == b,
                        a == b && said == reference && said_axis.eq_ignore_ascii_case(axis),
                    )
                }
                None => (false, false),
            };
            s.same_objects += usize::from(same_objects);
            s.listing_right += usize::from(right);
            // An unreadable answer is never `correct` (`Score`).
            if right {
                s.correct_after_right_listing += usize::from(p.score.correct);
            } else {
                s.correct_after_wrong_listing += usize::from(p.score.correct);
            }
        }
        s
    }

    /// Listings exactly right, over all reasoned answers.
    pub fn listing_rate(&self) -> Option<f64> {
        rate(self.listing_right, self.reasoned)
    }

    /// Listings in the right order, over those that named the right objects: reading the order from the image.
    pub fn order_rate(&self) -> Option<f64> {
        rate(self.listing_right, self.same_objects)
    }

    /// Correct final answers after a right listing: deciding from what was read.
    pub fn correct_after_right_rate(&self) -> Option<f64> {
        rate(self.correct_after_right_listing, self.listing_right)
    }

    pub fn correct_after_wrong_rate(&self) -> Option<f64> {
        rate(
            self.correct_after_wrong_listing,
            self.reasoned - self.listing_right,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::EvalItem;
    use svlm_synth::record::Truth;

    fn predicted(reference: &str, truth: bool, answer: &str) -> Prediction {
        let item = EvalItem {
            id: "q".into(),
            image: "img.png".into(),
            question: "Is the red box to the left of the gray cube?".into(),
            kind: "left_predicate".into(),
            truth: Truth::Bool { value: truth },
            reference_answer: Some(reference.into()),
            regions: Vec::new(),
            location: String::new(),
        };
        Prediction::new(&item, answer)
    }

    #[test]
    fn splits_the_final_answers_by_the_listing() {
        let yes = "From left to right: the red box, the gray cube. First: the red box. Asked: the red box. Yes.";
        let predictions = [
            // right listing, right verdict
            predicted(yes, true, yes),
            // right listing, wrong verdict
            predicted(
                yes,
                true,
                "From left to right: the red box, the gray cube. First: the red box. Asked: the red box. No.",
            ),
            // objects right, order wrong, verdict right by luck
            predicted(
                yes,
                true,
                "From left to right: The gray cube, the red box. First: the gray cube. Yes.",
            ),
            // wrong objects
            predicted(
                yes,
                true,
                "From left to right: the red cube, the gray box. No.",
            ),
            // no listing at all
            predicted(yes, true, "Yes."),
            // a short reference answer: not reasoned, left out
            predicted("Yes.", true, yes),
        ];
        let s = ReasoningSteps::from_predictions(&predictions);
        assert_eq!(
            s,
            ReasoningSteps {
                reasoned: 5,
                same_objects: 3,
                listing_right: 2,
                correct_after_right_listing: 1,
                correct_after_wrong_listing: 2,
            }
        );
        assert_eq!(s.listing_rate(), Some(0.4));
        assert_eq!(s.order_rate(), Some(2.0 / 3.0));
        assert_eq!(s.correct_after_right_rate(), Some(0.5));
        assert_eq!(s.correct_after_wrong_rate(), Some(2.0 / 3.0));
        assert_eq!(ReasoningSteps::from_predictions(&[]).listing_rate(), None);
    }

    #[test]
    fn another_axis_is_a_wrong_listing() {
        let reference = "From left to right: the red box, the gray cube. So the red box.";
        let p = predicted(
            reference,
            true,
            "From front to back: the red box, the gray cube. So the red box.",
        );
        let s = ReasoningSteps::from_predictions([&p]);
        assert_eq!((s.same_objects, s.listing_right), (1, 0));
    }
}
