//! Yes/no answers.

use crate::lexer::{Tok, conclusion, tokenize};

fn polarity(word: &str) -> Option<bool> {
    match word {
        "yes" | "yeah" | "yep" | "yup" | "indeed" | "correct" | "true" | "affirmative"
        | "certainly" | "definitely" | "absolutely" => Some(true),
        "no" | "nope" | "nah" | "not" | "incorrect" | "false" | "negative" | "never" | "isn't"
        | "aren't" | "doesn't" | "don't" | "wasn't" | "weren't" | "cannot" | "can't"
        | "neither" => Some(false),
        _ => None,
    }
}

fn words(toks: &[Tok]) -> Vec<String> {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Word(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

const UNSURE: [&[&str]; 9] = [
    &["not", "sure"],
    &["don't", "know"],
    &["do", "not", "know"],
    &["can't", "tell"],
    &["cannot", "tell"],
    &["cannot", "determine"],
    &["unsure"],
    &["uncertain"],
    &["maybe"],
];

/// Reads a yes/no answer: the first decisive word decides ("Yes, it is." -> true; "No." -> false;
/// "Indeed, the cup is left of the plate." -> true; "The cup is not left of the plate." -> false).
/// Affirmative words: yes, yeah, yep, yup, indeed, correct, true, affirmative, certainly, definitely, absolutely.
/// Negative words: no, nope, nah, not, incorrect, false, negative, never, isn't, aren't, doesn't, don't, wasn't,
/// weren't, cannot, can't, neither. ("right" is not decisive: it is also a direction.)
///
/// `None` (invalid format) when no decisive word appears, when uncertainty comes first ("I'm not sure", "maybe",
/// "I can't tell"), or when the first decisive word is joined to its opposite ("yes and no", "yes or no", "yes/no").
///
/// A reasoned answer's conclusion decides: when a clause opens with "so", "therefore", "thus" or "hence", the text
/// after the last such word is read first ("The cup is not on the left... so yes." -> true), and the whole answer
/// only when that part decides nothing.
pub fn parse_yes_no(text: &str) -> Option<bool> {
    let toks = tokenize(text);
    conclusion(&toks).and_then(decide).or_else(|| decide(&toks))
}

fn decide(toks: &[Tok]) -> Option<bool> {
    let words = words(toks);
    for i in 0..words.len() {
        if UNSURE
            .iter()
            .any(|phrase| starts_with_phrase(&words[i..], phrase))
        {
            return None;
        }
        if let Some(value) = polarity(&words[i]) {
            let joined_to_opposite = words.get(i + 1).is_some_and(|w| w == "and" || w == "or")
                && words.get(i + 2).and_then(|w| polarity(w)) == Some(!value);
            if joined_to_opposite || slash_pair(toks) {
                return None;
            }
            return Some(value);
        }
    }
    None
}

fn starts_with_phrase(words: &[String], phrase: &[&str]) -> bool {
    words.len() >= phrase.len() && words.iter().zip(phrase).all(|(w, p)| w == p)
}

/// "yes/no" anywhere before other words decides nothing.
fn slash_pair(toks: &[Tok]) -> bool {
    toks.windows(3).any(|w| match (&w[0], &w[1], &w[2]) {
        (Tok::Word(a), Tok::Sym('/'), Tok::Word(b)) => {
            matches!((polarity(a), polarity(b)), (Some(x), Some(y)) if x != y)
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yes_and_no() {
        assert_eq!(parse_yes_no("Yes, it is."), Some(true));
        assert_eq!(parse_yes_no("yes"), Some(true));
        assert_eq!(parse_yes_no("YES"), Some(true));
        assert_eq!(parse_yes_no("No."), Some(false));
        assert_eq!(
            parse_yes_no("no, the cup is to the right of the plate"),
            Some(false)
        );
        assert_eq!(
            parse_yes_no("Indeed, the cup is left of the plate."),
            Some(true)
        );
        assert_eq!(parse_yes_no("The cup is indeed to the left."), Some(true));
        assert_eq!(parse_yes_no("That's correct."), Some(true));
        assert_eq!(
            parse_yes_no("The cup is not left of the plate."),
            Some(false)
        );
        assert_eq!(parse_yes_no("It isn’t."), Some(false));
        assert_eq!(parse_yes_no("Nope"), Some(false));
        assert_eq!(parse_yes_no("Yes, it is not far."), Some(true));
        assert_eq!(parse_yes_no("No, it is not."), Some(false));
    }

    #[test]
    fn undecided_answers_are_invalid() {
        assert_eq!(parse_yes_no("yes and no"), None);
        assert_eq!(parse_yes_no("Yes or no?"), None);
        assert_eq!(parse_yes_no("yes/no"), None);
        assert_eq!(parse_yes_no("I'm not sure."), None);
        assert_eq!(parse_yes_no("Maybe, yes."), None);
        assert_eq!(parse_yes_no("I can't tell."), None);
        assert_eq!(parse_yes_no("The cup is to the right."), None);
        assert_eq!(parse_yes_no("1.2 meters"), None);
        assert_eq!(parse_yes_no(""), None);
        // "no" inside another word is not decisive
        assert_eq!(parse_yes_no("Nothing to see"), None);
    }

    #[test]
    fn a_reasoned_answer_is_read_at_its_conclusion() {
        assert_eq!(
            parse_yes_no("The cup is not on the left of the plate at first sight, so yes."),
            Some(true)
        );
        assert_eq!(
            parse_yes_no("Yes, the cup looks closer. Therefore, no: it is behind."),
            Some(false)
        );
        // The last marker wins; "so" inside a clause is not a marker.
        assert_eq!(
            parse_yes_no("It is not so far. So, yes. Thus no."),
            Some(false)
        );
        assert_eq!(parse_yes_no("It is not so far."), Some(false));
        // A conclusion that decides nothing leaves the whole answer to decide.
        assert_eq!(parse_yes_no("Yes, so it seems."), Some(true));
        assert_eq!(parse_yes_no("I'm not sure, so maybe."), None);
        // The reasoned format of svlm-synth: no decisive word before the verdict.
        assert_eq!(
            parse_yes_no(
                "From left to right: the gray cube, the red box. Last: the red box. Asked: the gray cube. No."
            ),
            Some(false)
        );
        assert_eq!(
            parse_yes_no(
                "From left to right: red box, gray cube. First: red box. Asked: red box. Yes."
            ),
            Some(true)
        );
        // Its tags and the relation asked ("left", "right") decide nothing; the verdict after them does.
        assert_eq!(
            parse_yes_no(
                "From left to right: gray: left, red: right. So gray: left. Asked: right. No."
            ),
            Some(false)
        );
    }
}
