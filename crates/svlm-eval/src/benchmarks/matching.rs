//! Reading an option out of a free-form answer the way VLMEvalKit does without an LLM judge
//! (`vlmeval/utils/matching_util.py`: `can_infer_option`, `can_infer_text`, `can_infer`; the exact-matching path
//! of `vlmeval/dataset/utils/multiple_choice.py::extract_answer_from_item`, where anything not inferred is the
//! failure option "Z" and scores wrong). EmbSpatial-Bench, 3DSRBench and What'sUp are scored with it, and every
//! multiple-choice benchmark reports it as the strict column: the answer must name exactly one option.

use super::standard::{BenchItem, Judged, Target};

/// What an answer was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inferred {
    /// The option at this index (0 = "A").
    Option(usize),
    /// A refusal phrase, or a lone "Z" (VLMEvalKit's failure option).
    Refused,
    /// Nothing, or more than one option.
    Unreadable,
}

/// VLMEvalKit's list of refusals (matched case-sensitively, as there).
const REFUSALS: [&str; 4] = [
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
];

/// The letter of option `index`: "A", "B", ...
pub fn letter(index: usize) -> String {
    char::from(b'A' + (index as u8 % 26)).to_string()
}

/// `can_infer`: the option letter if exactly one letter stands alone in the answer (punctuation `.()[],:;!*#{}`
/// counts as space; a lone "A" in an answer of more than three words is taken for the article), else the option
/// whose text is the only one contained in the lower-cased answer.
pub fn can_infer(answer: &str, options: &[String]) -> Inferred {
    match can_infer_option(answer, options.len()) {
        Inferred::Unreadable => can_infer_text(answer, options),
        found => found,
    }
}

fn can_infer_option(answer: &str, n_options: usize) -> Inferred {
    if answer.contains("Failed to obtain answer via API") {
        return Inferred::Unreadable;
    }
    if REFUSALS.iter().any(|r| answer.contains(r)) {
        return Inferred::Refused;
    }
    let spaced: String = answer
        .chars()
        .map(|c| if ".()[],:;!*#{}".contains(c) { ' ' } else { c })
        .collect();
    let splits: Vec<&str> = spaced.split_whitespace().collect();
    let letters: Vec<String> = (0..n_options).map(letter).collect();
    let named: Vec<usize> = (0..n_options)
        .filter(|&i| splits.contains(&letters[i].as_str()))
        .collect();
    match named.as_slice() {
        [only] => {
            if splits.contains(&"A") && splits.len() > 3 {
                Inferred::Unreadable
            } else {
                Inferred::Option(*only)
            }
        }
        [] if splits.contains(&"Z") => Inferred::Refused,
        _ => Inferred::Unreadable,
    }
}

fn can_infer_text(answer: &str, options: &[String]) -> Inferred {
    let answer = answer.to_lowercase();
    let found: Vec<usize> = options
        .iter()
        .enumerate()
        .filter(|(_, o)| answer.contains(&o.to_lowercase()))
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [only] => Inferred::Option(*only),
        _ => Inferred::Unreadable,
    }
}

/// VLMEvalKit's multiple-choice prompt (`ImageMCQDataset.build_prompt`): an optional hint, the question, the
/// options as "A. text" lines, and the instruction to pick one.
pub fn vlmevalkit_prompt(hint: Option<&str>, question: &str, options: &[String]) -> String {
    let mut prompt = String::new();
    if let Some(hint) = hint.filter(|h| !h.trim().is_empty()) {
        prompt.push_str(&format!("Hint: {hint}\n"));
    }
    prompt.push_str(&format!("Question: {question}\n"));
    if !options.is_empty() {
        prompt.push_str("Options:\n");
        for (i, option) in options.iter().enumerate() {
            prompt.push_str(&format!("{}. {option}\n", letter(i)));
        }
        prompt.push_str("Please select the correct answer from the options above. \n");
    }
    prompt
}

/// VLMEvalKit exact matching: right only if `can_infer` finds exactly the right option.
pub fn judge_exact(item: &BenchItem, answer: &str) -> Judged {
    let Target::Choice {
        options,
        answer: right,
    } = &item.target
    else {
        return Judged::choice(None, false, false);
    };
    let inferred = can_infer(answer, options);
    let extracted = match &inferred {
        Inferred::Option(i) => Some(letter(*i)),
        Inferred::Refused => Some("Z".into()),
        Inferred::Unreadable => None,
    };
    let correct = inferred == Inferred::Option(*right);
    Judged::choice(extracted, correct, correct)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn letters_and_texts_as_vlmevalkit_reads_them() {
        let o = opts(&["left", "right", "above", "below"]);
        assert_eq!(can_infer("B", &o), Inferred::Option(1));
        assert_eq!(can_infer("(C)", &o), Inferred::Option(2));
        assert_eq!(can_infer("The answer is D.", &o), Inferred::Option(3));
        // the option text alone
        assert_eq!(can_infer("It is to the right.", &o), Inferred::Option(1));
        // two letters: ambiguous
        assert_eq!(can_infer("B or C", &o), Inferred::Unreadable);
        // parts of two options' texts
        assert_eq!(can_infer("left and right", &o), Inferred::Unreadable);
        // "A" in a long answer is the article, and no option text is in it
        assert_eq!(
            can_infer("A chair is there somewhere", &o),
            Inferred::Unreadable
        );
        // a letter that is not an option
        assert_eq!(can_infer("E", &o), Inferred::Unreadable);
        // refusals
        assert_eq!(
            can_infer("Cannot determine the answer from this view.", &o),
            Inferred::Refused
        );
        assert_eq!(can_infer("Z", &o), Inferred::Refused);
        assert_eq!(can_infer("", &o), Inferred::Unreadable);
        // lower-case letters are not letters to VLMEvalKit
        assert_eq!(can_infer("b", &o), Inferred::Unreadable);
    }

    #[test]
    fn prompt_layout() {
        assert_eq!(
            vlmevalkit_prompt(None, "Which is closer?", &opts(&["the cup", "the lamp"])),
            "Question: Which is closer?\nOptions:\nA. the cup\nB. the lamp\n\
             Please select the correct answer from the options above. \n"
        );
    }
}
