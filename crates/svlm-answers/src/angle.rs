//! Angles in degrees ("about 20 degrees", "-15°", "0.5 radians").

use crate::lexer::{Tok, quantity, tokenize};

fn angle_unit(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    match toks.get(i)? {
        Tok::Sym('°') => Some((1.0, i + 1)),
        Tok::Word(w) => match w.as_str() {
            "degree" | "degrees" | "deg" | "degs" => Some((1.0, i + 1)),
            "radian" | "radians" | "rad" | "rads" => Some((180.0 / std::f64::consts::PI, i + 1)),
            _ => None,
        },
        _ => None,
    }
}

fn negative_before(toks: &[Tok], i: usize) -> bool {
    if i == 0 {
        return false;
    }
    match &toks[i - 1] {
        // a hyphen after a number is a range, not a sign
        Tok::Sym('-') => !(i >= 2 && matches!(toks[i - 2], Tok::Num(_))),
        Tok::Word(w) => w == "minus" || w == "negative",
        _ => false,
    }
}

fn downward_after(toks: &[Tok], i: usize) -> bool {
    toks[i.min(toks.len())..].iter().take(3).any(|t| {
        matches!(t, Tok::Word(w) if matches!(w.as_str(), "below" | "down" | "downward" | "downwards" | "beneath" | "under" | "lower"))
    })
}

/// Reads the first angle: a number with "degree(s)", "deg" or "°" (or "radian(s)"/"rad", converted), or a range of
/// them ("10-20 degrees" -> 15). Negative with a leading "-", "minus" or "negative", or when "below", "down",
/// "downward(s)", "beneath", "under" or "lower" follows within three words ("15 degrees below the horizon" -> -15).
/// A number without an angle unit is `None`.
pub fn parse_angle_degrees(text: &str) -> Option<f64> {
    let toks = tokenize(text);
    (0..toks.len()).find_map(|i| {
        if !matches!(toks.get(i), Some(Tok::Num(_)) | Some(Tok::Word(_))) {
            return None;
        }
        let (q1, j) = quantity(&toks, i)?;
        if matches!(toks.get(i), Some(Tok::Word(w)) if w == "a" || w == "an") {
            return None;
        }
        let sign = if negative_before(&toks, i) { -1.0 } else { 1.0 };
        let (value, end) = if let Some((factor, end)) = angle_unit(&toks, j) {
            (sign * q1 * factor, end)
        } else {
            let connector = toks
                .get(j)
                .is_some_and(|t| t.is_sym('-') || t.is_word("to") || t.is_word("or"));
            if !connector {
                return None;
            }
            let (q2, m) = quantity(&toks, j + 1)?;
            let (factor, end) = angle_unit(&toks, m)?;
            (sign * 0.5 * (q1 + q2) * factor, end)
        };
        Some(if value > 0.0 && downward_after(&toks, end) {
            -value
        } else {
            value
        })
    })
}

/// "20 degrees" (whole degrees; "1 degree"). Deterministic; for synthesis answers.
pub fn format_angle_degrees(degrees: f64) -> String {
    let d = if degrees.is_finite() {
        degrees.round()
    } else {
        0.0
    };
    let d = if d == 0.0 { 0.0 } else { d };
    if d.abs() == 1.0 {
        format!("{d} degree")
    } else {
        format!("{d} degrees")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn reads_angles() {
        assert!(close(parse_angle_degrees("about 20 degrees"), 20.0));
        assert!(close(parse_angle_degrees("30°"), 30.0));
        assert!(close(parse_angle_degrees("45 deg"), 45.0));
        assert!(close(parse_angle_degrees("forty-five degrees"), 45.0));
        assert!(close(parse_angle_degrees("-15°"), -15.0));
        assert!(close(parse_angle_degrees("minus 10 degrees"), -10.0));
        assert!(close(
            parse_angle_degrees("15 degrees below the horizon"),
            -15.0
        ));
        assert!(close(
            parse_angle_degrees("15 degrees above eye level"),
            15.0
        ));
        assert!(close(parse_angle_degrees("10-20 degrees"), 15.0));
        assert!(close(
            parse_angle_degrees("0.5 radians"),
            0.5 * 180.0 / std::f64::consts::PI
        ));
        assert!(close(parse_angle_degrees("1 degree"), 1.0));
    }

    #[test]
    fn rejects_non_angles() {
        assert_eq!(parse_angle_degrees("20"), None);
        assert_eq!(parse_angle_degrees("20 meters"), None);
        assert_eq!(parse_angle_degrees("a degree"), None);
        assert_eq!(parse_angle_degrees("steep"), None);
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_angle_degrees(19.6), "20 degrees");
        assert_eq!(format_angle_degrees(-1.2), "-1 degree");
        assert_eq!(format_angle_degrees(-0.2), "0 degrees");
        for d in [-80.0, -15.0, 0.0, 1.0, 33.0, 90.0] {
            assert!(close(parse_angle_degrees(&format_angle_degrees(d)), d));
        }
    }
}
