//! "Which of A and B ...?" answers.

use crate::lexer::{Tok, conclusion, tokenize};

const ARTICLES: [&str; 3] = ["the", "a", "an"];
const FILLER: [&str; 12] = [
    "the", "a", "an", "of", "one", "object", "thing", "is", "it", "that", "this", "which",
];

fn words_of(toks: &[Tok]) -> Vec<String> {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Word(w) => Some(w.clone()),
            Tok::Num(n) => Some(n.to_string()),
            Tok::Sym(_) => None,
        })
        .collect()
}

fn words(text: &str) -> Vec<String> {
    words_of(&tokenize(text))
}

fn option_words(option: &str) -> Vec<String> {
    let mut w = words(option);
    while w
        .first()
        .is_some_and(|first| ARTICLES.contains(&first.as_str()))
    {
        w.remove(0);
    }
    w
}

/// Which of `options` the answer names. Matching is on whole words, case-insensitive, with a leading article of an
/// option ignored ("the chair" matches "chair"). The rule, in order:
/// 1. Find every mention of every option; where options overlap at one position the longest wins ("red cube" over
///    "cube"), and a mention inside an earlier, longer one does not count.
/// 2. If "neither" or "both" comes before the first mention, the answer picks none: `None`.
/// 3. The option mentioned first wins (in "The red cube is taller than the blue ball." the subject comes first),
///    unless that mention follows "not" ("Not the red cube, the blue ball.") and another option is mentioned too.
/// 4. With no whole mention, words that belong to exactly one option decide, earliest first: "The cube." names
///    "red cube" among {"red cube", "blue ball"}; "The red one." names nothing among {"red cube", "red ball"}.
///
/// A reasoned answer's conclusion decides: when a clause opens with "so", "therefore", "thus" or "hence", the text
/// after the last such word is read first ("From left to right: the red cube, the blue ball. So the blue ball." ->
/// "blue ball"), and the whole answer only when that part names no option.
///
/// `None` when nothing decides (an invalid-format answer).
pub fn parse_choice(text: &str, options: &[String]) -> Option<usize> {
    let opts: Vec<Vec<String>> = options.iter().map(|o| option_words(o)).collect();
    let toks = tokenize(text);
    conclusion(&toks)
        .and_then(|part| choose(&words_of(part), &opts))
        .or_else(|| choose(&words_of(&toks), &opts))
}

fn choose(answer: &[String], opts: &[Vec<String>]) -> Option<usize> {
    let mut mentions: Vec<(usize, usize)> = Vec::new(); // (position, option)
    let mut p = 0;
    while p < answer.len() {
        let best = opts
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.is_empty() && answer[p..].starts_with(o))
            .max_by_key(|(_, o)| o.len());
        match best {
            Some((idx, o)) => {
                mentions.push((p, idx));
                p += o.len();
            }
            None => p += 1,
        }
    }

    if let Some(&(first_pos, first_idx)) = mentions.first() {
        if answer[..first_pos]
            .iter()
            .any(|w| w == "neither" || w == "both")
        {
            return None;
        }
        let negated = first_pos > 0
            && (answer[first_pos - 1] == "not"
                || (first_pos > 1
                    && answer[first_pos - 2] == "not"
                    && ARTICLES.contains(&answer[first_pos - 1].as_str())));
        if negated && let Some(&(_, other)) = mentions.iter().find(|(_, idx)| *idx != first_idx) {
            return Some(other);
        }
        return Some(first_idx);
    }

    // No whole mention: words that only one option has.
    if answer.iter().any(|w| w == "neither" || w == "both") {
        return None;
    }
    for word in answer {
        if FILLER.contains(&word.as_str()) {
            continue;
        }
        let owners: Vec<usize> = opts
            .iter()
            .enumerate()
            .filter(|(_, o)| o.contains(word))
            .map(|(i, _)| i)
            .collect();
        if owners.len() == 1 {
            return Some(owners[0]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_reasoned_answer_is_read_at_its_conclusion() {
        let o = opts(&["red cube", "blue ball"]);
        assert_eq!(
            parse_choice(
                "From left to right: the red cube, the blue ball. So the blue ball.",
                &o
            ),
            Some(1)
        );
        // The short form names the objects without "the".
        assert_eq!(
            parse_choice("From left to right: blue ball, red cube. So blue ball.", &o),
            Some(1)
        );
        assert_eq!(
            parse_choice(
                "The red cube looks bigger, but it is farther; therefore the blue ball.",
                &o
            ),
            Some(1)
        );
        // A conclusion naming nothing leaves the whole answer to decide.
        assert_eq!(parse_choice("The red cube, so to speak.", &o), Some(0));
        // Without a marker the first mention still wins.
        assert_eq!(
            parse_choice("The red cube, then the blue ball.", &o),
            Some(0)
        );
    }

    #[test]
    fn picks_the_named_option() {
        let o = opts(&["red cube", "blue ball"]);
        assert_eq!(parse_choice("The red cube.", &o), Some(0));
        assert_eq!(parse_choice("blue ball", &o), Some(1));
        assert_eq!(parse_choice("The Blue Ball is taller.", &o), Some(1));
        assert_eq!(
            parse_choice("The red cube is taller than the blue ball.", &o),
            Some(0)
        );
        assert_eq!(
            parse_choice("The blue ball is taller than the red cube.", &o),
            Some(1)
        );
        assert_eq!(
            parse_choice("Not the red cube, the blue ball.", &o),
            Some(1)
        );
        assert_eq!(
            parse_choice("It's not the blue ball but the red cube", &o),
            Some(0)
        );
    }

    #[test]
    fn longest_match_wins() {
        let o = opts(&["cube", "red cube"]);
        assert_eq!(parse_choice("The red cube is closer.", &o), Some(1));
        assert_eq!(parse_choice("The cube is closer.", &o), Some(0));
        let o = opts(&["the chair", "the small chair"]);
        assert_eq!(parse_choice("The small chair", &o), Some(1));
        assert_eq!(parse_choice("the chair", &o), Some(0));
    }

    #[test]
    fn distinctive_words_decide_without_a_whole_mention() {
        let o = opts(&["red cube", "blue ball"]);
        assert_eq!(parse_choice("The cube.", &o), Some(0));
        assert_eq!(parse_choice("The ball is higher.", &o), Some(1));
        let o = opts(&["red cube", "blue cube"]);
        assert_eq!(parse_choice("The blue one.", &o), Some(1));
        assert_eq!(parse_choice("The cube.", &o), None);
    }

    #[test]
    fn undecided_answers_are_invalid() {
        let o = opts(&["red cube", "blue ball"]);
        assert_eq!(
            parse_choice("Neither the red cube nor the blue ball.", &o),
            None
        );
        assert_eq!(parse_choice("Both are the same.", &o), None);
        assert_eq!(parse_choice("The green cone.", &o), None);
        assert_eq!(parse_choice("", &o), None);
        assert_eq!(parse_choice("yes", &o), None);
        assert_eq!(parse_choice("the red cube", &[]), None);
    }
}
