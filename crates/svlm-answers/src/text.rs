//! Free-text answers of general VQA ("What colour is the cone?" -> "green"), matched VQA-style.

use crate::lexer::{Tok, tokenize};
use crate::yes_no::parse_yes_no;

const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// Lower-case words and numbers, articles dropped, number words 0..=20 written as digits.
fn normalized(text: &str) -> Vec<String> {
    tokenize(text)
        .into_iter()
        .filter_map(|t| match t {
            Tok::Word(w) if ARTICLES.contains(&w.as_str()) => None,
            Tok::Word(w) => Some(word_number(&w).map(|n| n.to_string()).unwrap_or(w)),
            Tok::Num(n) => Some(format_num(n)),
            Tok::Sym(_) => None,
        })
        .collect()
}

fn word_number(w: &str) -> Option<u32> {
    (0..=20).find(|&n| crate::lexer::number_word(n) == Some(w))
}

fn format_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn first_number(words: &[String]) -> Option<&String> {
    words.iter().find(|w| w.parse::<f64>().is_ok())
}

/// Whether `answer` gives the `reference` answer of a general VQA question. After normalising both (lower case,
/// punctuation and articles dropped, "two" -> "2"):
/// - a yes/no reference matches an answer of the same polarity (`parse_yes_no`);
/// - a numeric reference (a count) matches when the answer's first number is that number;
/// - otherwise the reference's words must appear, in order and adjacent, in the answer ("green" matches
///   "The cone is green."; "red cube" matches "It is a red cube").
///
/// Lenient by design, like VQA accuracy: "green and red" matches the reference "green". An empty reference matches
/// nothing.
pub fn answers_match(reference: &str, answer: &str) -> bool {
    let reference_words = normalized(reference);
    if reference_words.is_empty() {
        return false;
    }
    if let Some(expected) = parse_yes_no(reference) {
        return parse_yes_no(answer) == Some(expected);
    }
    let answer_words = normalized(answer);
    if reference_words.len() == 1 && reference_words[0].parse::<f64>().is_ok() {
        return first_number(&answer_words) == Some(&reference_words[0]);
    }
    answer_words
        .windows(reference_words.len())
        .any(|w| w == reference_words.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_colours_and_shapes() {
        assert!(answers_match("green", "Green."));
        assert!(answers_match("green", "The cone is green."));
        assert!(answers_match("Red cube", "it is a red cube"));
        assert!(!answers_match("red cube", "a red sphere"));
        assert!(!answers_match("green", "greenish"));
        assert!(!answers_match("", "anything"));
        assert!(!answers_match("green", ""));
    }

    #[test]
    fn yes_no_by_polarity() {
        assert!(answers_match("Yes", "Yes, there is a cube."));
        assert!(answers_match("no", "There is not."));
        assert!(!answers_match("yes", "No."));
        assert!(!answers_match("yes", "maybe"));
    }

    #[test]
    fn counts_by_first_number() {
        assert!(answers_match("2", "There are two cubes."));
        assert!(answers_match("two", "2"));
        assert!(answers_match("3", "3 objects"));
        assert!(!answers_match("2", "There are 3 cubes and 2 spheres."));
        assert!(!answers_match("2", "several"));
    }
}
