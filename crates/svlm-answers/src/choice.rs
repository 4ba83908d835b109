//! "Which of A and B ...?" answers.

use serde::{Deserialize, Serialize};

use crate::lexer::{Tok, conclusion, tokenize};

const ARTICLES: [&str; 3] = ["the", "a", "an"];
/// Words a partial name may follow ("the cube" for "red cube"); after any other word the name may belong to
/// another object ("purple cone").
const DETERMINERS: [&str; 7] = ["the", "a", "an", "this", "that", "is", "it's"];
/// Words around a lone option letter ("Answer: B", "Option (a)").
const LETTER_FILLER: [&str; 7] = ["option", "answer", "choice", "is", "the", "it", "it's"];
/// Words and phrases that decline to choose.
const REFUSALS: [&[&str]; 17] = [
    &["neither"],
    &["both"],
    &["either"],
    &["same"],
    &["equal"],
    &["unsure"],
    &["uncertain"],
    &["unclear"],
    &["impossible"],
    &["not", "sure"],
    &["don't", "know"],
    &["do", "not", "know"],
    &["can't", "tell"],
    &["cannot", "tell"],
    &["can't", "say"],
    &["cannot", "say"],
    &["cannot", "determine"],
];

/// Why a "which" answer names no option. Each is a wrong answer; evaluation counts them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceMiss {
    /// Names no option: nothing at all, an object that is not an option ("the green cone"), or only a part that
    /// several options share ("the red one" for "red cube or red ball").
    NoOption,
    /// Names more than one option as its answer ("the red cube or the blue ball").
    SeveralOptions,
    /// Mixes words of different options into one name ("the purple cone" for "the purple cylinder or the yellow
    /// cone").
    MixedOptions,
    /// Declines to choose ("neither", "both", "I can't tell").
    Refusal,
}

impl ChoiceMiss {
    pub const ALL: [ChoiceMiss; 4] = [
        ChoiceMiss::NoOption,
        ChoiceMiss::SeveralOptions,
        ChoiceMiss::MixedOptions,
        ChoiceMiss::Refusal,
    ];

    /// Short words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            ChoiceMiss::NoOption => "names no option",
            ChoiceMiss::SeveralOptions => "names several options",
            ChoiceMiss::MixedOptions => "mixes two options' words",
            ChoiceMiss::Refusal => "declines to choose",
        }
    }
}

impl std::fmt::Display for ChoiceMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// A word of the answer, and whether it opens a clause (first word, or after `.`, `,`, `;`, `:`, `!`, `?`).
struct Word {
    text: String,
    opens_clause: bool,
}

fn words_of(toks: &[Tok]) -> Vec<Word> {
    let mut out = Vec::new();
    let mut opens = true;
    for t in toks {
        let text = match t {
            Tok::Word(w) => w.clone(),
            Tok::Num(n) => n.to_string(),
            Tok::Sym(c) => {
                if matches!(c, '.' | ',' | ';' | ':' | '!' | '?') {
                    opens = true;
                }
                continue;
            }
        };
        out.push(Word {
            text,
            opens_clause: opens,
        });
        opens = false;
    }
    out
}

fn option_words(option: &str) -> Vec<String> {
    let mut w: Vec<String> = words_of(&tokenize(option))
        .into_iter()
        .map(|w| w.text)
        .collect();
    while w
        .first()
        .is_some_and(|first| ARTICLES.contains(&first.as_str()))
    {
        w.remove(0);
    }
    w
}

/// Which of `options` the answer chooses ([`read_choice`]); `None` when it chooses none.
pub fn parse_choice(text: &str, options: &[String]) -> Option<usize> {
    read_choice(text, options).ok()
}

/// Which of `options` the answer chooses, or why it chooses none. Matching is on whole words, case-insensitive,
/// with an option's leading article ignored ("the chair" matches "chair").
///
/// The conclusion decides: when a clause opens with "so", "therefore", "thus" or "hence", only the text after the
/// last such word is read ("From left to right: red: left, blue: right. So blue ball." -> "blue ball"); an answer
/// without one is read whole. Within it:
/// 1. A name is a run of consecutive words of the options. It names an option when it is that option's words
///    ("red cube"), or, after a determiner or at the start of a clause, the end of exactly one option's words
///    ("the cube" among "red cube" and "blue ball") or its start followed by "one" ("the blue one"). A name of
///    words from different options ("purple cone" for "purple cylinder" and "yellow cone") is
///    [`ChoiceMiss::MixedOptions`].
/// 2. A name after "not" or "than" (an article between allowed) is not a choice: "Not the red cube, the blue
///    ball." chooses the blue ball, "The red cube is taller than the blue ball." the red cube.
/// 3. The answer chooses option `k` when its names choose `k` and nothing else: two options named is
///    [`ChoiceMiss::SeveralOptions`]; `k` named next to another option's words is
///    [`ChoiceMiss::MixedOptions`].
/// 4. "Neither", "both", "either", "the same", "I can't tell" and the like before the first choice (or anywhere
///    when nothing is chosen) are a [`ChoiceMiss::Refusal`].
/// 5. With no name at all, a lone letter chooses by position ("B", "(b)", "Answer: B").
///
/// Everything else, a conclusion naming no option included, is [`ChoiceMiss::NoOption`].
pub fn read_choice(text: &str, options: &[String]) -> Result<usize, ChoiceMiss> {
    let opts: Vec<Vec<String>> = options.iter().map(|o| option_words(o)).collect();
    let toks = tokenize(text);
    let part = conclusion(&toks).unwrap_or(&toks);
    decide(&words_of(part), &opts)
}

/// What one run of option words names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Name {
    Option(usize),
    /// Words of different options.
    Mixed,
    /// Part of an option, not enough to name one.
    Partial,
}

fn decide(words: &[Word], opts: &[Vec<String>]) -> Result<usize, ChoiceMiss> {
    let owners = |w: &str| -> Vec<usize> {
        (0..opts.len())
            .filter(|&i| opts[i].iter().any(|o| o == w))
            .collect()
    };
    let is_option_word =
        |w: &Word| !ARTICLES.contains(&w.text.as_str()) && !owners(&w.text).is_empty();

    // (start, end, what it names, chosen: not after "not"/"than")
    let mut names: Vec<(usize, usize, Name, bool)> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if !is_option_word(&words[i]) {
            i += 1;
            continue;
        }
        // A name ends at a clause mark: "red cube, blue ball" is two.
        let start = i;
        i += 1;
        while i < words.len() && is_option_word(&words[i]) && !words[i].opens_clause {
            i += 1;
        }
        let run: Vec<&str> = words[start..i].iter().map(|w| w.text.as_str()).collect();
        let chosen = !excluded(words, start);
        // Whole names one after another ("purple cylinder yellow cone") are several names.
        if let Some(pieces) = whole_names(&run, opts).filter(|p| p.len() > 1) {
            let mut at = start;
            for (k, len) in pieces {
                names.push((at, at + len, Name::Option(k), chosen));
                at += len;
            }
            continue;
        }
        let determined = words[start].opens_clause
            || (start > 0 && DETERMINERS.contains(&words[start - 1].text.as_str()));
        let next = words.get(i).map(|w| w.text.as_str());
        let name = name_of(&run, next, determined, opts, &owners);
        names.push((start, i, name, chosen));
    }

    let first_choice = names
        .iter()
        .find(|n| n.3 && matches!(n.2, Name::Option(_)))
        .map_or(words.len(), |n| n.0);
    if refusal_before(words, first_choice) {
        return Err(ChoiceMiss::Refusal);
    }
    let chosen: Vec<&(usize, usize, Name, bool)> = names.iter().filter(|n| n.3).collect();
    if chosen.iter().any(|n| n.2 == Name::Mixed) {
        return Err(ChoiceMiss::MixedOptions);
    }
    let mut picks: Vec<usize> = chosen
        .iter()
        .filter_map(|n| match n.2 {
            Name::Option(k) => Some(k),
            _ => None,
        })
        .collect();
    picks.sort_unstable();
    picks.dedup();
    match picks.as_slice() {
        [k] => {
            // Another option's words next to the choice ("the red cube, purple").
            let foreign = chosen.iter().any(|n| {
                n.2 == Name::Partial && words[n.0..n.1].iter().any(|w| !opts[*k].contains(&w.text))
            });
            if foreign {
                Err(ChoiceMiss::MixedOptions)
            } else {
                Ok(*k)
            }
        }
        [] => lone_letter(words, opts.len()).ok_or(ChoiceMiss::NoOption),
        _ => Err(ChoiceMiss::SeveralOptions),
    }
}

fn name_of(
    run: &[&str],
    next: Option<&str>,
    determined: bool,
    opts: &[Vec<String>],
    owners: &dyn Fn(&str) -> Vec<usize>,
) -> Name {
    if let Some(k) = opts.iter().position(|o| o.iter().eq(run.iter())) {
        return Name::Option(k);
    }
    let unique = |matches: &dyn Fn(&[String]) -> bool| -> Option<usize> {
        let found: Vec<usize> = (0..opts.len())
            .filter(|&k| matches(opts[k].as_slice()))
            .collect();
        (found.len() == 1).then(|| found[0])
    };
    if determined {
        let longer = |o: &[String]| o.len() > run.len();
        let ends = unique(&|o| longer(o) && o[o.len() - run.len()..].iter().eq(run.iter()));
        if let Some(k) = ends {
            return Name::Option(k);
        }
        if next == Some("one")
            && let Some(k) = unique(&|o| longer(o) && o[..run.len()].iter().eq(run.iter()))
        {
            return Name::Option(k);
        }
    }
    // Two words no option shares: the run mixes options.
    let sets: Vec<Vec<usize>> = run.iter().map(|w| owners(w)).collect();
    let disjoint = sets.iter().enumerate().any(|(a, sa)| {
        sets[a + 1..]
            .iter()
            .any(|sb| !sa.iter().any(|k| sb.contains(k)))
    });
    if disjoint { Name::Mixed } else { Name::Partial }
}

/// The run cut into whole option names, longest first at each word, as (option, length); `None` when some part is
/// not a whole name.
fn whole_names(run: &[&str], opts: &[Vec<String>]) -> Option<Vec<(usize, usize)>> {
    let mut pieces = Vec::new();
    let mut p = 0;
    while p < run.len() {
        let (k, len) = opts
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.is_empty() && o.len() <= run.len() - p)
            .filter(|(_, o)| o.iter().eq(run[p..p + o.len()].iter()))
            .map(|(k, o)| (k, o.len()))
            .max_by_key(|&(_, len)| len)?;
        pieces.push((k, len));
        p += len;
    }
    Some(pieces)
}

/// A name right after "not", "than" or "instead of" (an article between allowed) is not the answer's choice.
fn excluded(words: &[Word], start: usize) -> bool {
    let mut j = start;
    while j > 0 && ARTICLES.contains(&words[j - 1].text.as_str()) {
        j -= 1;
    }
    if j == 0 {
        return false;
    }
    match words[j - 1].text.as_str() {
        "not" | "than" => true,
        "of" => j > 1 && words[j - 2].text == "instead",
        _ => false,
    }
}

fn refusal_before(words: &[Word], end: usize) -> bool {
    (0..end).any(|i| {
        REFUSALS.iter().any(|phrase| {
            phrase.len() <= words.len() - i
                && phrase.iter().zip(&words[i..]).all(|(p, w)| w.text == *p)
        })
    })
}

/// "B", "(b)", "Answer: B": the one word left after the letter's filler is a single letter of an option.
fn lone_letter(words: &[Word], n_options: usize) -> Option<usize> {
    let rest: Vec<&str> = words
        .iter()
        .map(|w| w.text.as_str())
        .filter(|w| !LETTER_FILLER.contains(w))
        .collect();
    let [word] = rest.as_slice() else {
        return None;
    };
    let mut chars = word.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    let index = c.is_ascii_lowercase().then(|| (c as u8 - b'a') as usize)?;
    (index < n_options).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChoiceMiss::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn check(options: &[&str], cases: &[(&str, Result<usize, ChoiceMiss>)]) {
        let o = opts(options);
        for (answer, want) in cases {
            assert_eq!(
                read_choice(answer, &o),
                *want,
                "{answer:?} among {options:?}"
            );
            assert_eq!(parse_choice(answer, &o), want.ok(), "{answer:?}");
        }
    }

    #[test]
    fn a_reasoned_answer_is_read_at_its_conclusion() {
        check(
            &["red cube", "blue ball"],
            &[
                (
                    "From left to right: the red cube, the blue ball. So the blue ball.",
                    Ok(1),
                ),
                // The short form names the objects without "the".
                (
                    "From left to right: blue ball, red cube. So blue ball.",
                    Ok(1),
                ),
                (
                    "The red cube looks bigger, but it is farther; therefore the blue ball.",
                    Ok(1),
                ),
                // A conclusion naming nothing chooses nothing: the listing before it does not count.
                ("The red cube, so to speak.", Err(NoOption)),
                (
                    "From left to right: red cube, blue ball. So.",
                    Err(NoOption),
                ),
                // Without a marker the whole answer is read: naming both is no choice.
                ("The red cube, then the blue ball.", Err(SeveralOptions)),
            ],
        );
    }

    /// The quickstart's reasoned answers: colour keys tagged with their ends, then the winner by its full name.
    #[test]
    fn the_quickstart_reasoned_choices() {
        let options = ["purple cylinder", "yellow cone"];
        check(
            &options,
            &[
                (
                    "From left to right: yellow: left, purple: right. So purple cylinder.",
                    Ok(0),
                ),
                (
                    "From left to right: yellow: left, purple: right. So yellow cone.",
                    Ok(1),
                ),
                // A colour of one option with the shape of the other: an object that is not an option.
                (
                    "From left to right: yellow: left, purple: right. So purple cone.",
                    Err(MixedOptions),
                ),
                (
                    "From left to right: yellow: left, purple: right. So yellow cylinder.",
                    Err(MixedOptions),
                ),
                // A colour key alone, or the listing without its conclusion, names no object.
                (
                    "From left to right: yellow: left, purple: right. So purple.",
                    Err(NoOption),
                ),
                (
                    "From left to right: yellow: left, purple: right.",
                    Err(NoOption),
                ),
                // The yes/no format given to a "which" question.
                (
                    "From left to right: yellow: left, purple: right. So purple: right. Asked: left. No.",
                    Err(NoOption),
                ),
                // An object of the scene that is not an option.
                (
                    "From left to right: yellow: left, purple: right. So red cube.",
                    Err(NoOption),
                ),
                // Both options in the conclusion.
                (
                    "From left to right: yellow: left, purple: right. So purple cylinder, yellow cone.",
                    Err(SeveralOptions),
                ),
                // A truncated generation.
                ("From left to right: yellow: left, pur", Err(NoOption)),
            ],
        );
        // Options of one colour are listed by their whole names.
        check(
            &["red box", "red cube"],
            &[
                (
                    "From left to right: red cube: left, red box: right. So red box.",
                    Ok(0),
                ),
                (
                    "From left to right: red cube: left, red box: right. So red.",
                    Err(NoOption),
                ),
                (
                    "From left to right: red cube: left, red box: right.",
                    Err(SeveralOptions),
                ),
            ],
        );
    }

    #[test]
    fn sentences_that_choose() {
        check(
            &["red cube", "blue ball"],
            &[
                ("The red cube.", Ok(0)),
                ("blue ball", Ok(1)),
                ("The Blue Ball is taller.", Ok(1)),
                ("It is the blue ball.", Ok(1)),
                (
                    "The blue ball is the one that is further to the right.",
                    Ok(1),
                ),
                ("The red cube is taller than the blue ball.", Ok(0)),
                ("The blue ball is taller than the red cube.", Ok(1)),
                ("Not the red cube, the blue ball.", Ok(1)),
                ("It's not the blue ball but the red cube", Ok(0)),
                ("The blue ball rather than the red cube.", Ok(1)),
                ("Instead of the red cube, the blue ball.", Ok(1)),
                // A long answer that reasons in words before its conclusion.
                (
                    "Looking at the image, the red cube sits on the left edge while the blue ball is near the \
                     centre, so the blue ball is further to the right.",
                    Ok(1),
                ),
                ("Both are close, but the red cube is closer.", Err(Refusal)),
                ("The red cube is closer, though both are close.", Ok(0)),
            ],
        );
    }

    #[test]
    fn longest_match_wins() {
        check(
            &["cube", "red cube"],
            &[
                ("The red cube is closer.", Ok(1)),
                ("The cube is closer.", Ok(0)),
            ],
        );
        check(
            &["the chair", "the small chair"],
            &[("The small chair", Ok(1)), ("the chair", Ok(0))],
        );
    }

    #[test]
    fn part_of_a_name_chooses_only_when_it_fits_one_option() {
        check(
            &["red cube", "blue ball"],
            &[
                ("The cube.", Ok(0)),
                ("The ball is higher.", Ok(1)),
                ("From left to right: red cube, blue ball. So cube.", Ok(0)),
                // A shape after another colour is another object.
                ("The green cube.", Err(NoOption)),
                ("So purple ball.", Err(NoOption)),
                ("The red one.", Ok(0)),
                // A colour alone is not a name.
                ("The red.", Err(NoOption)),
            ],
        );
        check(
            &["red cube", "blue cube"],
            &[
                ("The blue one.", Ok(1)),
                ("The cube.", Err(NoOption)),
                ("The red blue cube.", Err(MixedOptions)),
            ],
        );
        check(
            &["red cube", "red ball"],
            &[
                ("The red one.", Err(NoOption)),
                ("The red cube, red.", Ok(0)),
            ],
        );
    }

    #[test]
    fn mixed_names_are_wrong() {
        check(
            &["purple cylinder", "yellow cone"],
            &[
                ("So purple cone.", Err(MixedOptions)),
                ("The yellow cylinder.", Err(MixedOptions)),
                ("The purple yellow cone.", Err(MixedOptions)),
                ("The purple cylinder yellow cone.", Err(SeveralOptions)),
                ("The yellow cone, purple.", Err(MixedOptions)),
            ],
        );
    }

    #[test]
    fn several_options_are_wrong() {
        check(
            &["red cube", "blue ball"],
            &[
                ("The red cube or the blue ball.", Err(SeveralOptions)),
                ("The red cube and the blue ball.", Err(SeveralOptions)),
                ("red cube, blue ball", Err(SeveralOptions)),
                // The question repeated before the answer.
                (
                    "Which is closer, the red cube or the blue ball? The red cube.",
                    Err(SeveralOptions),
                ),
            ],
        );
    }

    #[test]
    fn refusals_are_wrong() {
        check(
            &["red cube", "blue ball"],
            &[
                ("Neither the red cube nor the blue ball.", Err(Refusal)),
                ("Both are the same.", Err(Refusal)),
                ("They are the same distance away.", Err(Refusal)),
                ("I can't tell.", Err(Refusal)),
                ("I'm not sure, the red cube maybe.", Err(Refusal)),
                ("Either one.", Err(Refusal)),
            ],
        );
    }

    #[test]
    fn letters_choose_by_position() {
        check(
            &["red cube", "blue ball"],
            &[
                ("B", Ok(1)),
                ("(a)", Ok(0)),
                ("Answer: B.", Ok(1)),
                ("Option A", Ok(0)),
                ("C", Err(NoOption)),
                ("A or B", Err(NoOption)),
                ("A ball.", Ok(1)),
            ],
        );
    }

    #[test]
    fn nothing_named_is_no_option() {
        check(
            &["red cube", "blue ball"],
            &[
                ("The green cone.", Err(NoOption)),
                ("", Err(NoOption)),
                ("yes", Err(NoOption)),
                ("1.2 meters", Err(NoOption)),
            ],
        );
        check(&[], &[("the red cube", Err(NoOption))]);
    }

    #[test]
    fn counts_colours_and_shapes_of_general_questions() {
        let counts: Vec<String> = (0..=9).map(|n| n.to_string()).collect();
        let counts: Vec<&str> = counts.iter().map(String::as_str).collect();
        check(
            &counts,
            &[
                ("There are 3 cubes.", Ok(3)),
                ("I count 2.", Ok(2)),
                ("0.", Ok(0)),
                ("There are 3 cubes and 2 balls.", Err(SeveralOptions)),
                ("Several.", Err(NoOption)),
            ],
        );
        check(
            &["red", "green", "blue"],
            &[
                ("The cube is red.", Ok(0)),
                ("It is green.", Ok(1)),
                ("Red and green.", Err(SeveralOptions)),
            ],
        );
        check(
            &["ball", "cone", "cube"],
            &[
                ("The red object is a cube.", Ok(2)),
                ("A cone.", Ok(1)),
                ("It is a pyramid.", Err(NoOption)),
            ],
        );
        // SpatialRGPT's regions.
        check(
            &["Region [0]", "Region [1]"],
            &[
                ("Region [1] is taller.", Ok(1)),
                ("Region [0] is taller than Region [1].", Ok(0)),
                ("Region [2].", Err(NoOption)),
            ],
        );
    }
}
