//! Tokens and spoken/written quantities shared by every parser in this crate.
//!
//! Text is lower-cased and typographic marks are folded to ASCII (’ ‘ ′ -> `'`, ″ “ ” -> `"`, en/em dashes and
//! the minus sign -> `-`). Numbers accept `.` or `,` as the decimal mark; a comma followed by exactly three digits
//! (and no further digit) is a thousands separator instead ("1,250" = 1250, "1,5" = 1.5, "1,25" = 1.25).

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(f64),
    /// Letters, with inner apostrophes kept ("isn't", "o'clock").
    Word(String),
    /// Any other non-space character.
    Sym(char),
}

impl Tok {
    pub(crate) fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Word(x) if x == w)
    }
    pub(crate) fn is_sym(&self, c: char) -> bool {
        matches!(self, Tok::Sym(x) if *x == c)
    }
}

fn fold_char(c: char) -> char {
    match c {
        '\u{2019}' | '\u{2018}' | '\u{2032}' | '`' | '\u{00b4}' => '\'',
        '\u{201c}' | '\u{201d}' | '\u{2033}' => '"',
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2212}' => '-',
        '\u{00ba}' => '\u{00b0}',
        _ => c,
    }
}

pub(crate) fn tokenize(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text
        .chars()
        .map(fold_char)
        .flat_map(char::to_lowercase)
        .collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.'
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                && !prev_is_digit(&chars, i))
        {
            let (value, next) = read_number(&chars, i);
            toks.push(Tok::Num(value));
            i = next;
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphabetic()
                    || (chars[i] == '\''
                        && chars.get(i + 1).is_some_and(|n| n.is_alphabetic())
                        && i > start))
            {
                i += 1;
            }
            toks.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            toks.push(Tok::Sym(c));
            i += 1;
        }
    }
    toks
}

/// Words that open the conclusion of a reasoned answer when they follow a sentence or clause mark:
/// "From left to right: the cup, the plate. So the plate.", "The cup is nearer, therefore no."
const CONCLUSION_MARKERS: [&str; 4] = ["so", "therefore", "thus", "hence"];

/// The tokens after the last conclusion marker (see [`CONCLUSION_MARKERS`]); `None` when there is none.
pub(crate) fn conclusion(toks: &[Tok]) -> Option<&[Tok]> {
    (1..toks.len())
        .rev()
        .find(|&i| {
            matches!(&toks[i], Tok::Word(w) if CONCLUSION_MARKERS.contains(&w.as_str()))
                && matches!(toks[i - 1], Tok::Sym('.' | ',' | ';' | ':' | '!' | '?'))
        })
        .map(|i| &toks[i + 1..])
}

fn prev_is_digit(chars: &[char], i: usize) -> bool {
    i > 0 && chars[i - 1].is_ascii_digit()
}

fn digit_run(chars: &[char], from: usize) -> usize {
    let mut j = from;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    j - from
}

/// Reads a number starting at `i` (a digit, or `.` before a digit); returns (value, index after it).
fn read_number(chars: &[char], mut i: usize) -> (f64, usize) {
    let mut text = String::new();
    loop {
        let n = digit_run(chars, i);
        text.extend(&chars[i..i + n]);
        i += n;
        // A thousands separator: ",ddd" not followed by another digit.
        if i < chars.len() && chars[i] == ',' && !text.is_empty() && digit_run(chars, i + 1) == 3 {
            i += 1;
            continue;
        }
        break;
    }
    if i < chars.len() && (chars[i] == '.' || chars[i] == ',') && digit_run(chars, i + 1) > 0 {
        text.push('.');
        let n = digit_run(chars, i + 1);
        text.extend(&chars[i + 1..i + 1 + n]);
        i += 1 + n;
    }
    if text.starts_with('.') {
        text.insert(0, '0');
    }
    // The text holds only ASCII digits and at most one '.', so it always parses.
    (text.parse::<f64>().unwrap_or(f64::NAN), i)
}

fn unit_word(w: &str) -> Option<f64> {
    let v = match w {
        "zero" => 0.0,
        "one" => 1.0,
        "two" => 2.0,
        "three" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "eleven" => 11.0,
        "twelve" => 12.0,
        "thirteen" => 13.0,
        "fourteen" => 14.0,
        "fifteen" => 15.0,
        "sixteen" => 16.0,
        "seventeen" => 17.0,
        "eighteen" => 18.0,
        "nineteen" => 19.0,
        _ => return None,
    };
    Some(v)
}

fn tens_word(w: &str) -> Option<f64> {
    let v = match w {
        "twenty" => 20.0,
        "thirty" => 30.0,
        "forty" => 40.0,
        "fifty" => 50.0,
        "sixty" => 60.0,
        "seventy" => 70.0,
        "eighty" => 80.0,
        "ninety" => 90.0,
        _ => return None,
    };
    Some(v)
}

const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// The English word for 0..=20, if `n` is in that range.
pub(crate) fn number_word(n: u32) -> Option<&'static str> {
    NUMBER_WORDS.get(n as usize).copied()
}

fn word_at(toks: &[Tok], i: usize) -> Option<&str> {
    match toks.get(i) {
        Some(Tok::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

fn is_article(toks: &[Tok], i: usize) -> bool {
    matches!(word_at(toks, i), Some("a" | "an"))
}

/// Below 100 in words: "seven", "twenty", "twenty five", "twenty-five".
fn words_below_hundred(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    let w = word_at(toks, i)?;
    if let Some(v) = unit_word(w) {
        return Some((v, i + 1));
    }
    let tens = tens_word(w)?;
    let mut j = i + 1;
    if toks.get(j).is_some_and(|t| t.is_sym('-'))
        && word_at(toks, j + 1).and_then(unit_word).is_some()
    {
        j += 1;
    }
    match word_at(toks, j).and_then(unit_word) {
        Some(u) if (1.0..10.0).contains(&u) => Some((tens + u, j + 1)),
        _ => Some((tens, i + 1)),
    }
}

/// A whole number in words, up to the hundreds: "twelve", "forty-five", "a hundred", "one hundred and twenty".
fn number_in_words(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    let (head, j) = if is_article(toks, i) && toks.get(i + 1).is_some_and(|t| t.is_word("hundred"))
    {
        (1.0, i + 1)
    } else {
        words_below_hundred(toks, i)?
    };
    if !toks.get(j).is_some_and(|t| t.is_word("hundred")) {
        return Some((head, j));
    }
    let mut k = j + 1;
    let and = toks.get(k).is_some_and(|t| t.is_word("and"));
    if and {
        k += 1;
    }
    match words_below_hundred(toks, k) {
        Some((rest, end)) => Some((head * 100.0 + rest, end)),
        None => Some((head * 100.0, j + 1)),
    }
}

/// Digits, with an optional fraction: "2", "1.5", "3/4", "1 1/2".
fn number_in_digits(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    let Some(Tok::Num(a)) = toks.get(i) else {
        return None;
    };
    let fraction_at = |k: usize| -> Option<f64> {
        match (toks.get(k), toks.get(k + 1), toks.get(k + 2)) {
            (Some(Tok::Num(n)), Some(Tok::Sym('/')), Some(Tok::Num(d))) if *d > 0.0 && n < d => {
                Some(n / d)
            }
            _ => None,
        }
    };
    if let Some(f) = fraction_at(i + 1).filter(|_| a.fract() == 0.0) {
        return Some((a + f, i + 4));
    }
    if let (Some(Tok::Sym('/')), Some(Tok::Num(d))) = (toks.get(i + 1), toks.get(i + 2))
        && *d > 0.0
    {
        return Some((a / d, i + 3));
    }
    Some((*a, i + 1))
}

/// "and a half" / "and one half" at `i`.
pub(crate) fn and_a_half(toks: &[Tok], i: usize) -> Option<usize> {
    if toks.get(i).is_some_and(|t| t.is_word("and"))
        && matches!(word_at(toks, i + 1), Some("a" | "one"))
        && toks.get(i + 2).is_some_and(|t| t.is_word("half"))
    {
        Some(i + 3)
    } else {
        None
    }
}

/// Skips an optional "of" and an optional article: the tail of "half (of) a", "a quarter (of) a".
fn of_article(toks: &[Tok], mut i: usize) -> usize {
    if toks.get(i).is_some_and(|t| t.is_word("of")) {
        i += 1;
    }
    if is_article(toks, i) {
        i += 1;
    }
    i
}

/// A quantity as people write or say it, at token `i`: digits ("2", "1.5", "1 1/2"), words ("twelve",
/// "twenty-five", "a hundred"), "half (of) a", "a half", "a quarter (of) a", "three quarters of a", "a couple (of)",
/// a bare article ("a", "an" = 1), each optionally followed by "and a half". Returns (value, index after it).
/// Whether a unit must follow is the caller's rule.
pub(crate) fn quantity(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    let (value, end) = quantity_head(toks, i)?;
    match and_a_half(toks, end) {
        Some(next) if value.fract() == 0.0 && value >= 1.0 => Some((value + 0.5, next)),
        _ => Some((value, end)),
    }
}

fn quantity_head(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    if let Some(found) = number_in_digits(toks, i) {
        return Some(found);
    }
    let w = word_at(toks, i)?;
    match w {
        "half" => return Some((0.5, of_article(toks, i + 1))),
        "quarter" => return Some((0.25, of_article(toks, i + 1))),
        "a" | "an" => {
            return match word_at(toks, i + 1) {
                Some("half") => Some((0.5, of_article(toks, i + 2))),
                Some("quarter") => Some((0.25, of_article(toks, i + 2))),
                Some("couple") => {
                    let j = if toks.get(i + 2).is_some_and(|t| t.is_word("of")) {
                        i + 3
                    } else {
                        i + 2
                    };
                    Some((2.0, j))
                }
                Some("hundred") => number_in_words(toks, i),
                _ => Some((1.0, i + 1)),
            };
        }
        _ => {}
    }
    let (value, j) = number_in_words(toks, i)?;
    // "three quarters of a", "one half of a"
    match word_at(toks, j) {
        Some("quarters" | "quarter") if (1.0..4.0).contains(&value) => {
            Some((value * 0.25, of_article(toks, j + 1)))
        }
        Some("halves" | "half") if value == 1.0 => Some((0.5, of_article(toks, j + 1))),
        _ => Some((value, j)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Option<f64> {
        quantity(&tokenize(text), 0).map(|(v, _)| v)
    }

    #[test]
    fn tokenizes_numbers_words_and_symbols() {
        assert_eq!(
            tokenize("About 1.2m, isn’t it?"),
            vec![
                Tok::Word("about".into()),
                Tok::Num(1.2),
                Tok::Word("m".into()),
                Tok::Sym(','),
                Tok::Word("isn't".into()),
                Tok::Word("it".into()),
                Tok::Sym('?'),
            ]
        );
        assert_eq!(
            tokenize("5'11\""),
            vec![Tok::Num(5.0), Tok::Sym('\''), Tok::Num(11.0), Tok::Sym('"')]
        );
        assert_eq!(
            tokenize("2–3"),
            vec![Tok::Num(2.0), Tok::Sym('-'), Tok::Num(3.0)]
        );
        assert_eq!(
            tokenize("at 3 o’clock"),
            vec![
                Tok::Word("at".into()),
                Tok::Num(3.0),
                Tok::Word("o'clock".into())
            ]
        );
        assert_eq!(
            tokenize("It is 2."),
            vec![
                Tok::Word("it".into()),
                Tok::Word("is".into()),
                Tok::Num(2.0),
                Tok::Sym('.')
            ]
        );
    }

    #[test]
    fn decimal_marks_and_thousands() {
        assert_eq!(tokenize("1,5"), vec![Tok::Num(1.5)]);
        assert_eq!(tokenize("1,25"), vec![Tok::Num(1.25)]);
        assert_eq!(tokenize("1,250"), vec![Tok::Num(1250.0)]);
        assert_eq!(tokenize("1,250.5"), vec![Tok::Num(1250.5)]);
        assert_eq!(tokenize("1,2345"), vec![Tok::Num(1.2345)]);
        assert_eq!(tokenize(".5"), vec![Tok::Num(0.5)]);
        assert_eq!(tokenize("0.75"), vec![Tok::Num(0.75)]);
    }

    #[test]
    fn quantities_in_digits_and_words() {
        assert_eq!(q("2"), Some(2.0));
        assert_eq!(q("1 1/2"), Some(1.5));
        assert_eq!(q("3/4"), Some(0.75));
        assert_eq!(q("twelve"), Some(12.0));
        assert_eq!(q("twenty-five"), Some(25.0));
        assert_eq!(q("twenty five"), Some(25.0));
        assert_eq!(q("forty"), Some(40.0));
        assert_eq!(q("a hundred"), Some(100.0));
        assert_eq!(q("one hundred and twenty"), Some(120.0));
        assert_eq!(q("half a"), Some(0.5));
        assert_eq!(q("half of a"), Some(0.5));
        assert_eq!(q("a half"), Some(0.5));
        assert_eq!(q("a quarter of a"), Some(0.25));
        assert_eq!(q("three quarters of a"), Some(0.75));
        assert_eq!(q("a couple of"), Some(2.0));
        assert_eq!(q("a"), Some(1.0));
        assert_eq!(q("two and a half"), Some(2.5));
        assert_eq!(q("1 and a half"), Some(1.5));
        assert_eq!(q("cube"), None);
        assert_eq!(number_word(7), Some("seven"));
        assert_eq!(number_word(21), None);
    }
}
