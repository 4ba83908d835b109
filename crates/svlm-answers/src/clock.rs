//! Directions as clock positions ("at 3 o'clock": 12 is straight ahead).

use crate::lexer::{Tok, quantity, tokenize};

/// "3 o'clock". Hours outside 1..=12 wrap around the dial (0 and 24 are 12, 13 is 1).
pub fn format_clock(hour: u8) -> String {
    format!("{} o'clock", normalize_hour(hour))
}

/// 1..=12 for any hour (0 -> 12, 13 -> 1).
pub fn normalize_hour(hour: u8) -> u8 {
    let h = hour % 12;
    if h == 0 { 12 } else { h }
}

/// Reads the first clock position: a whole number 1..=12 (digits or words) followed by "o'clock" (also "o’clock",
/// "oclock", "o clock"): "3 o'clock", "at 10 o’clock", "twelve o'clock", "the 2 o'clock direction".
/// `None` without "o'clock", or for hours outside 1..=12 or fractions.
pub fn parse_clock(text: &str) -> Option<u8> {
    let toks = tokenize(text);
    (0..toks.len()).find_map(|i| {
        let (value, j) = quantity(&toks, i)?;
        if !matches!(toks.get(i), Some(Tok::Num(_)) | Some(Tok::Word(_))) || !oclock_at(&toks, j) {
            return None;
        }
        (value.fract() == 0.0 && (1.0..=12.0).contains(&value)).then_some(value as u8)
    })
}

fn oclock_at(toks: &[Tok], i: usize) -> bool {
    match toks.get(i) {
        Some(Tok::Word(w)) if w == "o'clock" || w == "oclock" => true,
        Some(Tok::Word(w)) if w == "o" => {
            let k = if toks.get(i + 1).is_some_and(|t| t.is_sym('\'')) {
                i + 2
            } else {
                i + 1
            };
            toks.get(k).is_some_and(|t| t.is_word("clock"))
        }
        _ => false,
    }
}

/// Circular distance between two clock positions in hours (0..=6): 12 and 1 are 1 apart.
pub fn clock_distance(a: u8, b: u8) -> u8 {
    let d = (i16::from(normalize_hour(a)) - i16::from(normalize_hour(b))).rem_euclid(12) as u8;
    d.min(12 - d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_clock_positions() {
        assert_eq!(format_clock(3), "3 o'clock");
        assert_eq!(format_clock(0), "12 o'clock");
        assert_eq!(format_clock(13), "1 o'clock");
        for h in 1..=12 {
            assert_eq!(parse_clock(&format_clock(h)), Some(h));
        }
        assert_eq!(parse_clock("at 10 o’clock"), Some(10));
        assert_eq!(parse_clock("It is at twelve o'clock."), Some(12));
        assert_eq!(parse_clock("the 2 oclock direction"), Some(2));
        assert_eq!(parse_clock("around 4 o clock"), Some(4));
        assert_eq!(parse_clock("The cup is 2 m away at 9 o'clock"), Some(9));
    }

    #[test]
    fn rejects_non_clock_answers() {
        assert_eq!(parse_clock("3"), None);
        assert_eq!(parse_clock("at 3"), None);
        assert_eq!(parse_clock("13 o'clock"), None);
        assert_eq!(parse_clock("0 o'clock"), None);
        assert_eq!(parse_clock("2.5 o'clock"), None);
        assert_eq!(parse_clock("straight ahead"), None);
        assert_eq!(parse_clock(""), None);
    }

    #[test]
    fn circular_distance() {
        assert_eq!(clock_distance(12, 1), 1);
        assert_eq!(clock_distance(1, 12), 1);
        assert_eq!(clock_distance(3, 9), 6);
        assert_eq!(clock_distance(11, 2), 3);
        assert_eq!(clock_distance(5, 5), 0);
    }
}
