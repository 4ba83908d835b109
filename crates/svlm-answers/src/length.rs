//! Lengths in human-like text: formatting (synthesis writes answers) and parsing (evaluation reads them).

use crate::lexer::{Tok, and_a_half, number_word, quantity, tokenize};
use crate::unit::{Length, LengthUnit};
use rand::Rng;

/// How `format_length` phrases a number. Each `*_prob` is the chance of that choice per call.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberStyle {
    /// Metric (mm/cm/m/km) rather than imperial (in/ft/yd).
    pub metric_prob: f64,
    /// A range ("2-3 feet") instead of one number.
    pub range_prob: f64,
    /// A hedge before the number ("about", "roughly", "around", "approximately").
    pub hedge_prob: f64,
    /// The unit symbol ("45 cm") instead of its name ("45 centimeters").
    pub symbol_prob: f64,
    /// Words ("half a meter", "two feet", "a meter and a half") when the value is close to such a phrase.
    pub words_prob: f64,
    /// The neighbouring unit ("120 cm" instead of "1.2 m", "14 inches" instead of "1.2 feet") where both are natural.
    pub alternate_unit_prob: f64,
    /// Significant digits a single number is rounded to (people say "1.2 m", not "1.234 m").
    pub significant_digits: u32,
}

impl Default for NumberStyle {
    /// Mostly metric, sometimes imperial, occasional ranges and words, two significant digits.
    fn default() -> Self {
        NumberStyle {
            metric_prob: 0.75,
            range_prob: 0.08,
            hedge_prob: 0.35,
            symbol_prob: 0.35,
            words_prob: 0.15,
            alternate_unit_prob: 0.1,
            significant_digits: 2,
        }
    }
}

impl NumberStyle {
    /// Always metric, one plain number with the unit's name, no hedges, words or ranges ("1.2 meters").
    pub fn plain_metric() -> Self {
        NumberStyle {
            metric_prob: 1.0,
            range_prob: 0.0,
            hedge_prob: 0.0,
            symbol_prob: 0.0,
            words_prob: 0.0,
            alternate_unit_prob: 0.0,
            significant_digits: 2,
        }
    }

    /// The largest relative error a single (non-range) number written in this style can have:
    /// half a unit in the last significant digit, relative to the smallest value with that many digits.
    pub fn max_single_relative_error(&self) -> f64 {
        0.5 * 10f64.powi(1 - self.significant_digits.max(1) as i32)
    }
}

/// Ranges are `[k*step, (k+1)*step]` with `step` the largest of 1, 2, 5 x 10^n not above this share of the value,
/// so a range always contains the value and its midpoint is within `RANGE_STEP_SHARE / 2` of it (relative).
pub const RANGE_STEP_SHARE: f64 = 0.4;

const HEDGES: [&str; 4] = ["about", "around", "roughly", "approximately"];

/// Formats `meters` the way a person would say it, picking a unit that suits the magnitude (cm under 1 m, m above,
/// km from 1 km; inches under 2 ft, feet up to 100 ft, then yards) and rounding to `style.significant_digits`.
/// Returns the text and the unit it shows. Negative values are written as their magnitude; non-finite ones as 0.
///
/// What `parse_length` reads back: a single number within `style.max_single_relative_error()` of `meters`; a range
/// that contains `meters` (see [`RANGE_STEP_SHARE`]).
pub fn format_length<R: Rng>(
    meters: f64,
    style: &NumberStyle,
    rng: &mut R,
) -> (String, LengthUnit) {
    let meters = if meters.is_finite() {
        meters.abs()
    } else {
        0.0
    };
    let metric = rng.random_bool(style.metric_prob.clamp(0.0, 1.0));
    let mut unit = natural_unit(meters, metric);
    if rng.random_bool(style.alternate_unit_prob.clamp(0.0, 1.0))
        && let Some(alt) = alternate_unit(meters, unit)
    {
        unit = alt;
    }
    let symbol = rng.random_bool(style.symbol_prob.clamp(0.0, 1.0));
    let hedge = rng.random_bool(style.hedge_prob.clamp(0.0, 1.0));
    let hedge_word = HEDGES[rng.random_range(0..HEDGES.len())];
    let with_hedge = |body: String| {
        if hedge {
            format!("{hedge_word} {body}")
        } else {
            body
        }
    };

    if rng.random_bool(style.range_prob.clamp(0.0, 1.0)) && meters > 0.0 {
        let value = meters / unit.to_meters();
        let step = nice_floor(value * RANGE_STEP_SHARE);
        let decimals = decimals_for(step);
        let low = (value / step).floor() * step;
        let (a, b) = (
            format_number(low, decimals),
            format_number(low + step, decimals),
        );
        let name = unit_text(unit, true, symbol);
        let body = match rng.random_range(0..3) {
            0 => format!("{a}-{b} {name}"),
            1 => format!("{a} to {b} {name}"),
            _ => format!("between {a} and {b} {name}"),
        };
        return (with_hedge(body), unit);
    }

    if rng.random_bool(style.words_prob.clamp(0.0, 1.0)) {
        let base = if metric {
            LengthUnit::Meter
        } else {
            LengthUnit::Foot
        };
        if let Some(words) = length_in_words(meters, base, style.max_single_relative_error(), rng) {
            return (with_hedge(words), base);
        }
    }

    let (number, value) = round_significant(meters / unit.to_meters(), style.significant_digits);
    (
        with_hedge(format!(
            "{number} {}",
            unit_text(unit, value != 1.0, symbol)
        )),
        unit,
    )
}

/// `meters` in the given unit, two significant digits, the unit's name: `format_length_in(0.4572, Inch)` is
/// "18 inches". Deterministic.
pub fn format_length_in(meters: f64, unit: LengthUnit) -> String {
    let meters = if meters.is_finite() {
        meters.abs()
    } else {
        0.0
    };
    let (number, value) = round_significant(meters / unit.to_meters(), 2);
    format!("{number} {}", unit.name(value != 1.0))
}

fn unit_text(unit: LengthUnit, plural: bool, symbol: bool) -> &'static str {
    if symbol {
        unit.symbol()
    } else {
        unit.name(plural)
    }
}

fn natural_unit(meters: f64, metric: bool) -> LengthUnit {
    if metric {
        if meters < 0.01 {
            LengthUnit::Millimeter
        } else if meters < 1.0 {
            LengthUnit::Centimeter
        } else if meters < 1000.0 {
            LengthUnit::Meter
        } else {
            LengthUnit::Kilometer
        }
    } else {
        let feet = meters / LengthUnit::Foot.to_meters();
        if feet < 2.0 {
            LengthUnit::Inch
        } else if feet < 100.0 {
            LengthUnit::Foot
        } else {
            LengthUnit::Yard
        }
    }
}

/// The neighbouring unit people also use at this magnitude: cm <-> m between 0.3 and 2.5 m, in <-> ft between 1 and
/// 5 ft.
fn alternate_unit(meters: f64, unit: LengthUnit) -> Option<LengthUnit> {
    let feet = meters / LengthUnit::Foot.to_meters();
    match unit {
        LengthUnit::Centimeter if meters >= 0.3 => Some(LengthUnit::Meter),
        LengthUnit::Meter if meters <= 2.5 => Some(LengthUnit::Centimeter),
        LengthUnit::Inch if feet >= 1.0 => Some(LengthUnit::Foot),
        LengthUnit::Foot if feet <= 5.0 => Some(LengthUnit::Inch),
        _ => None,
    }
}

/// Rounds to `digits` significant digits; returns the text (no trailing zeros) and the rounded value.
fn round_significant(value: f64, digits: u32) -> (String, f64) {
    if value == 0.0 || !value.is_finite() {
        return ("0".to_string(), 0.0);
    }
    let digits = digits.max(1) as i32;
    let exponent = value.abs().log10().floor() as i32 - (digits - 1);
    let scale = 10f64.powi(exponent);
    let rounded = (value / scale).round() * scale;
    let decimals = (-exponent).max(0) as usize;
    let text = format_number(rounded, decimals);
    let value = text.parse::<f64>().unwrap_or(rounded);
    (text, value)
}

/// Decimal places needed to show multiples of `step` (0.2 -> 1, 5 -> 0, 0.05 -> 2).
fn decimals_for(step: f64) -> usize {
    (-(step.log10().floor() as i32)).max(0) as usize
}

/// `value` with at most `decimals` decimals, trailing zeros (and a trailing point) removed.
fn format_number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The largest 1, 2 or 5 x 10^n that is <= x (x > 0).
fn nice_floor(x: f64) -> f64 {
    let magnitude = 10f64.powi(x.log10().floor() as i32);
    let mantissa = x / magnitude;
    let nice = if mantissa >= 5.0 {
        5.0
    } else if mantissa >= 2.0 {
        2.0
    } else {
        1.0
    };
    nice * magnitude
}

/// "half a meter", "a foot", "two meters", "a meter and a half", "three and a half feet" when `meters` is within
/// `tolerance` (relative) of a multiple of half the base unit between 0.5 and 10.
fn length_in_words<R: Rng>(
    meters: f64,
    base: LengthUnit,
    tolerance: f64,
    rng: &mut R,
) -> Option<String> {
    let value = meters / base.to_meters();
    let halves = (value * 2.0).round();
    let candidate = halves / 2.0;
    if !(0.5..=10.0).contains(&candidate) || (candidate - value).abs() > tolerance * value {
        return None;
    }
    let whole = candidate.floor() as u32;
    let half = candidate.fract() > 0.0;
    let (one, many) = (base.name(false), base.name(true));
    let text = match (whole, half) {
        (0, _) => format!("half a {one}"),
        (1, false) => {
            if rng.random_bool(0.5) {
                format!("a {one}")
            } else {
                format!("one {one}")
            }
        }
        (1, true) => {
            if rng.random_bool(0.5) {
                format!("a {one} and a half")
            } else {
                format!("one and a half {many}")
            }
        }
        (n, false) => format!("{} {many}", number_word(n)?),
        (n, true) => format!("{} and a half {many}", number_word(n)?),
    };
    Some(text)
}

/// Reads the first length in `text`: a number (digits or words) followed by a unit, or a range or compound of them.
///
/// Forms: "1.2 m", "1,2 metres", "45cm", "18 inches", "18\"", "3.5 ft", "5'11\"", "5 feet 11 inches", "1 m 20 cm",
/// "half a meter", "a meter and a half", "one and a half meters", "a foot", "a couple of feet", "twenty-five cm",
/// "3/4 of an inch" (written "3/4 inch"), "2-meter"; ranges "2-3 feet", "2 to 3 m", "2 m to 3 m", "2 or 3 feet",
/// "between 2 and 3 meters" (-> midpoint, with `low_m`/`high_m`). Hedges and other words around it are ignored.
/// A number without a unit is not a length: "2" alone is `None` (an invalid-format answer, not a guess).
/// "in" followed by an article or "front" ("2 in the box") is read as the preposition, not inches.
///
/// Q-Spatial-Bench's answer format, `\scalar{1.5} \distance_unit{meter}`, is read from its last `\scalar{}` and
/// last `\distance_unit{}` (as that benchmark's own evaluator does) before anything else.
pub fn parse_length(text: &str) -> Option<Length> {
    if let (Some(scalar), Some(unit)) = (
        last_braced(text, "scalar{"),
        last_braced(text, "distance_unit{"),
    ) && let Some(length) = parse_length_plain(&format!("{scalar} {unit}"))
    {
        return Some(length);
    }
    parse_length_plain(text)
}

/// The contents of the last `key...}` in `text`.
fn last_braced<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let start = text.rfind(key)? + key.len();
    let len = text[start..].find('}')?;
    Some(&text[start..start + len])
}

fn parse_length_plain(text: &str) -> Option<Length> {
    let toks = tokenize(text);
    (0..toks.len()).find_map(|i| length_at(&toks, i))
}

fn is_article_at(toks: &[Tok], i: usize) -> bool {
    matches!(toks.get(i), Some(Tok::Word(w)) if w == "a" || w == "an")
}

/// A unit at `i`, with an optional hyphen before it ("2-meter"). Returns the unit and the index after it.
fn unit_at(toks: &[Tok], i: usize) -> Option<(LengthUnit, usize)> {
    let i = if toks.get(i).is_some_and(|t| t.is_sym('-'))
        && matches!(toks.get(i + 1), Some(Tok::Word(_)))
    {
        i + 1
    } else {
        i
    };
    let unit = match toks.get(i)? {
        Tok::Word(w) => {
            if w == "in" && is_preposition_in(toks, i) {
                return None;
            }
            LengthUnit::from_word(w)?
        }
        Tok::Sym('\'') => LengthUnit::Foot,
        Tok::Sym('"') => LengthUnit::Inch,
        _ => return None,
    };
    Some((unit, i + 1))
}

fn is_preposition_in(toks: &[Tok], i: usize) -> bool {
    matches!(
        toks.get(i + 1),
        Some(Tok::Word(w)) if matches!(
            w.as_str(),
            "the" | "a" | "an" | "front" | "this" | "that" | "its" | "their" | "his" | "her" | "my" | "our" | "your"
                | "which" | "total" | "between" | "size" | "height" | "width" | "length" | "depth" | "diameter"
        )
    )
}

/// "-", "to", "or": the words between the two ends of a range.
fn range_connector(toks: &[Tok], i: usize) -> bool {
    match toks.get(i) {
        Some(Tok::Sym('-')) => true,
        Some(Tok::Word(w)) => w == "to" || w == "or",
        _ => false,
    }
}

fn length_at(toks: &[Tok], i: usize) -> Option<Length> {
    if toks.get(i).is_some_and(|t| t.is_word("between")) {
        return between_at(toks, i + 1);
    }
    let (q1, j) = quantity(toks, i)?;
    let Some((u1, k)) = unit_at(toks, j) else {
        // "2-3 feet", "2 to 3 m": the unit comes after the second number.
        if is_article_at(toks, i) || !range_connector(toks, j) {
            return None;
        }
        let (q2, m) = quantity(toks, j + 1)?;
        if is_article_at(toks, j + 1) {
            return None;
        }
        let (u, _) = unit_at(toks, m)?;
        return Some(Length::range(q1 * u.to_meters(), q2 * u.to_meters(), u));
    };
    let mut meters = q1 * u1.to_meters();
    // "a meter and a half"
    if and_a_half(toks, k).is_some() && q1.fract() == 0.0 {
        meters += 0.5 * u1.to_meters();
        return Some(Length::single(meters, u1));
    }
    // "2 m to 3 m", "50 cm - 1 m"
    if range_connector(toks, k)
        && let Some((q2, m)) = quantity(toks, k + 1)
        && let Some((u2, _)) = unit_at(toks, m)
    {
        return Some(Length::range(meters, q2 * u2.to_meters(), u2));
    }
    // Compounds: "5'11\"", "5 feet 11 inches", "1 m and 20 cm" — a smaller unit of the same system follows.
    let k2 = if toks.get(k).is_some_and(|t| t.is_word("and")) {
        k + 1
    } else {
        k
    };
    if let Some(Tok::Num(_)) = toks.get(k2)
        && let Some((q2, m)) = quantity(toks, k2)
    {
        match unit_at(toks, m) {
            Some((u2, _))
                if u2.is_metric() == u1.is_metric() && u2.to_meters() < u1.to_meters() =>
            {
                return Some(Length::single(meters + q2 * u2.to_meters(), u1));
            }
            // 5'11 (inches implied after a foot mark)
            None if toks.get(j).is_some_and(|t| t.is_sym('\''))
                && k2 == k
                && q2.fract() == 0.0
                && q2 < 12.0 =>
            {
                return Some(Length::single(
                    meters + q2 * LengthUnit::Inch.to_meters(),
                    u1,
                ));
            }
            _ => {}
        }
    }
    Some(Length::single(meters, u1))
}

/// After "between": Q1 [U1] "and" Q2 U2.
fn between_at(toks: &[Tok], i: usize) -> Option<Length> {
    let (q1, j) = quantity(toks, i)?;
    let (u1, j) = match unit_at(toks, j) {
        Some((u, next)) => (Some(u), next),
        None => (None, j),
    };
    if !toks.get(j).is_some_and(|t| t.is_word("and")) {
        return None;
    }
    let (q2, m) = quantity(toks, j + 1)?;
    let (u2, _) = unit_at(toks, m)?;
    let u1 = u1.unwrap_or(u2);
    Some(Length::range(q1 * u1.to_meters(), q2 * u2.to_meters(), u2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn meters(text: &str) -> Option<f64> {
        parse_length(text).map(|l| l.meters)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn parses_numbers_with_units() {
        assert!(close(meters("1.2 m"), 1.2));
        assert!(close(meters("About 1.2 meters."), 1.2));
        assert!(close(meters("1,5 metres"), 1.5));
        assert!(close(meters("45cm"), 0.45));
        assert!(close(meters("about 45 cm"), 0.45));
        assert!(close(meters("7 mm"), 0.007));
        assert!(close(meters("2 km"), 2000.0));
        assert!(close(meters("18 inches"), 18.0 * 0.0254));
        assert!(close(meters("18\""), 18.0 * 0.0254));
        assert!(close(meters("1 inch"), 0.0254));
        assert!(close(meters("3.5 feet"), 3.5 * 0.3048));
        assert!(close(meters("3.5 ft."), 3.5 * 0.3048));
        assert!(close(meters("4'"), 4.0 * 0.3048));
        assert!(close(meters("2 yards"), 2.0 * 0.9144));
        assert!(close(meters("3 yd"), 3.0 * 0.9144));
        assert!(close(meters("a 2-meter gap"), 2.0));
        assert!(close(meters("1,250 m"), 1250.0));
        assert!(close(meters("3/4 inch"), 0.75 * 0.0254));
        assert!(close(meters("1 1/2 feet"), 1.5 * 0.3048));
        assert_eq!(
            parse_length("1.2 m").map(|l| l.unit),
            Some(LengthUnit::Meter)
        );
        assert_eq!(
            parse_length("3.5 feet").map(|l| l.unit),
            Some(LengthUnit::Foot)
        );
    }

    #[test]
    fn parses_words() {
        assert!(close(meters("half a meter"), 0.5));
        assert!(close(meters("about half of a metre"), 0.5));
        assert!(close(meters("a meter and a half"), 1.5));
        assert!(close(meters("one and a half meters"), 1.5));
        assert!(close(meters("two and a half feet"), 2.5 * 0.3048));
        assert!(close(meters("a foot"), 0.3048));
        assert!(close(meters("an inch"), 0.0254));
        assert!(close(meters("one meter"), 1.0));
        assert!(close(meters("twenty meters"), 20.0));
        assert!(close(meters("twenty-five centimeters"), 0.25));
        assert!(close(meters("a couple of feet"), 2.0 * 0.3048));
        assert!(close(meters("a quarter of a meter"), 0.25));
        assert!(close(meters("three quarters of a meter"), 0.75));
        assert!(close(meters("a hundred meters"), 100.0));
        assert!(close(meters("It is about a meter away."), 1.0));
    }

    #[test]
    fn parses_ranges_to_midpoints() {
        let r = parse_length("roughly 2-3 feet").expect("range");
        assert!((r.low_m - 2.0 * 0.3048).abs() < 1e-12);
        assert!((r.high_m - 3.0 * 0.3048).abs() < 1e-12);
        assert!((r.meters - 2.5 * 0.3048).abs() < 1e-12);
        assert_eq!(r.unit, LengthUnit::Foot);
        assert!(close(meters("2 to 3 m"), 2.5));
        assert!(close(meters("2 or 3 meters"), 2.5));
        assert!(close(meters("between 2 and 3 meters"), 2.5));
        assert!(close(meters("between 50 cm and 1 m"), 0.75));
        assert!(close(meters("2 m to 3 m"), 2.5));
        assert!(close(meters("50 cm - 1 m"), 0.75));
        assert!(close(meters("1.2–1.4 m"), 1.3));
        assert!(close(meters("3-2 m"), 2.5));
        assert!(parse_length("2 to 3 m").is_some_and(|l| l.is_range()));
    }

    #[test]
    fn parses_compounds() {
        assert!(close(meters("5'11\""), 5.0 * 0.3048 + 11.0 * 0.0254));
        assert!(close(meters("5’11”"), 5.0 * 0.3048 + 11.0 * 0.0254));
        assert!(close(meters("5'11"), 5.0 * 0.3048 + 11.0 * 0.0254));
        assert!(close(
            meters("5 feet 11 inches"),
            5.0 * 0.3048 + 11.0 * 0.0254
        ));
        assert!(close(meters("1 m and 20 cm"), 1.2));
        assert_eq!(
            parse_length("5'11\"").map(|l| l.unit),
            Some(LengthUnit::Foot)
        );
        // a larger unit after a smaller one is not a compound: the first length wins
        assert!(close(meters("20 cm 1 m"), 0.2));
        // different systems are not added
        assert!(close(meters("1 m 20 in"), 1.0));
    }

    #[test]
    fn first_length_wins_and_bare_numbers_are_invalid() {
        assert!(close(
            meters("The cup is 2 meters from the chair, which is 3 feet wide."),
            2.0
        ));
        assert!(close(meters("There are 2 chairs, 1.5 m apart."), 1.5));
        assert!(close(meters("1.2 m (4 feet)"), 1.2));
        assert!(close(meters("1 m to the left"), 1.0));
        assert_eq!(parse_length("2"), None);
        assert_eq!(parse_length("about 2.5"), None);
        assert_eq!(parse_length("2 in the box"), None);
        assert_eq!(parse_length("It is in front of the table."), None);
        assert_eq!(
            parse_length("a meter"),
            Some(Length::single(1.0, LengthUnit::Meter))
        );
        assert_eq!(parse_length("I'm not sure."), None);
        assert_eq!(parse_length(""), None);
        assert_eq!(parse_length("far away"), None);
        assert_eq!(parse_length("a few feet"), None);
    }

    #[test]
    fn reads_the_qspatial_answer_format() {
        let answer = "First \\scalar{3} \\distance_unit{feet}... so the answer is \\scalar{1} \\distance_unit{meter}";
        assert!(close(meters(answer), 1.0));
        assert!(close(meters("\\scalar{1-2} \\distance_unit{m}"), 1.5));
        assert!(close(
            meters("\\scalar{45} \\distance_unit{centimeters}"),
            0.45
        ));
        // a broken box falls back to the plain reading
        assert!(close(
            meters("\\scalar{x} \\distance_unit{m}, about 2 m"),
            2.0
        ));
        assert_eq!(parse_length("\\scalar{2}"), None);
    }

    #[test]
    fn formats_in_a_given_unit() {
        assert_eq!(format_length_in(0.4572, LengthUnit::Inch), "18 inches");
        assert_eq!(format_length_in(1.234, LengthUnit::Meter), "1.2 meters");
        assert_eq!(format_length_in(1.0, LengthUnit::Meter), "1 meter");
        assert_eq!(format_length_in(0.3048, LengthUnit::Foot), "1 foot");
        assert_eq!(format_length_in(1.0668, LengthUnit::Foot), "3.5 feet");
        assert_eq!(
            format_length_in(0.456, LengthUnit::Centimeter),
            "46 centimeters"
        );
        assert_eq!(format_length_in(12.3, LengthUnit::Meter), "12 meters");
        assert_eq!(format_length_in(123.0, LengthUnit::Meter), "120 meters");
        assert_eq!(format_length_in(0.0, LengthUnit::Meter), "0 meters");
        assert_eq!(format_length_in(f64::NAN, LengthUnit::Meter), "0 meters");
    }

    #[test]
    fn plain_metric_picks_unit_by_magnitude() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let style = NumberStyle::plain_metric();
        assert_eq!(
            format_length(1.234, &style, &mut rng),
            ("1.2 meters".to_string(), LengthUnit::Meter)
        );
        assert_eq!(
            format_length(0.456, &style, &mut rng),
            ("46 centimeters".to_string(), LengthUnit::Centimeter)
        );
        assert_eq!(
            format_length(0.004, &style, &mut rng),
            ("4 millimeters".to_string(), LengthUnit::Millimeter)
        );
        assert_eq!(
            format_length(2500.0, &style, &mut rng),
            ("2.5 kilometers".to_string(), LengthUnit::Kilometer)
        );
        let imperial = NumberStyle {
            metric_prob: 0.0,
            ..NumberStyle::plain_metric()
        };
        assert_eq!(
            format_length(0.4572, &imperial, &mut rng),
            ("18 inches".to_string(), LengthUnit::Inch)
        );
        assert_eq!(
            format_length(1.0668, &imperial, &mut rng),
            ("3.5 feet".to_string(), LengthUnit::Foot)
        );
        assert_eq!(
            format_length(40.0, &imperial, &mut rng),
            ("44 yards".to_string(), LengthUnit::Yard)
        );
    }

    #[test]
    fn ranges_and_words_when_forced() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let ranges = NumberStyle {
            range_prob: 1.0,
            metric_prob: 0.0,
            ..NumberStyle::plain_metric()
        };
        // 2.5 ft: step = nice_floor(1.0) = 1 ft -> 2-3 feet in one of three phrasings
        let (text, unit) = format_length(2.5 * 0.3048, &ranges, &mut rng);
        assert_eq!(unit, LengthUnit::Foot);
        assert!(
            ["2-3 feet", "2 to 3 feet", "between 2 and 3 feet"].contains(&text.as_str()),
            "{text}"
        );
        let words = NumberStyle {
            words_prob: 1.0,
            ..NumberStyle::plain_metric()
        };
        let (text, unit) = format_length(0.51, &words, &mut rng);
        assert_eq!((text.as_str(), unit), ("half a meter", LengthUnit::Meter));
        let (text, _) = format_length(3.02, &words, &mut rng);
        assert_eq!(text, "three meters");
        let (text, _) = format_length(1.5, &words, &mut rng);
        assert!(
            text == "a meter and a half" || text == "one and a half meters",
            "{text}"
        );
        // 0.7 m is not near a half-metre step: falls back to digits
        let (text, _) = format_length(0.7, &words, &mut rng);
        assert_eq!(text, "70 centimeters");
    }

    #[test]
    fn nice_steps_and_rounding() {
        assert_eq!(nice_floor(1.0), 1.0);
        assert_eq!(nice_floor(0.49), 0.2);
        assert_eq!(nice_floor(18.0), 10.0);
        assert_eq!(nice_floor(4.0), 2.0);
        assert_eq!(nice_floor(7.0), 5.0);
        assert_eq!(round_significant(1.05, 2).0.len(), 3);
        assert_eq!(round_significant(99.6, 2), ("100".to_string(), 100.0));
        assert_eq!(
            round_significant(0.000123, 2),
            ("0.00012".to_string(), 0.00012)
        );
        assert_eq!(NumberStyle::default().max_single_relative_error(), 0.05);
    }

    /// The property the synthesis/evaluation pair relies on: whatever `format_length` writes, `parse_length` reads
    /// back to the value it was given, within the rounding the formatter applied.
    #[test]
    fn format_then_parse_round_trips() {
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let styles = [
            NumberStyle::default(),
            NumberStyle {
                range_prob: 0.5,
                words_prob: 0.5,
                metric_prob: 0.5,
                ..NumberStyle::default()
            },
            NumberStyle {
                significant_digits: 3,
                ..NumberStyle::default()
            },
            NumberStyle {
                alternate_unit_prob: 1.0,
                symbol_prob: 0.5,
                ..NumberStyle::default()
            },
        ];
        let mut ranges = 0;
        for style in &styles {
            let tolerance = style.max_single_relative_error();
            for _ in 0..5000 {
                // log-uniform over 2 mm .. 2 km
                let x = 10f64.powf(rng.random_range(-2.7..3.3));
                let (text, unit) = format_length(x, style, &mut rng);
                let parsed = parse_length(&text)
                    .unwrap_or_else(|| panic!("{text:?} (from {x}) did not parse"));
                assert_eq!(parsed.unit, unit, "{text:?}");
                if parsed.is_range() {
                    ranges += 1;
                    let eps = 1e-9 * x;
                    assert!(
                        parsed.low_m - eps <= x && x <= parsed.high_m + eps,
                        "{text:?} does not contain {x}"
                    );
                    assert!(
                        (parsed.meters - x).abs() <= RANGE_STEP_SHARE / 2.0 * x + eps,
                        "{text:?} vs {x}"
                    );
                } else {
                    let rel = (parsed.meters - x).abs() / x;
                    assert!(
                        rel <= tolerance + 1e-9,
                        "{text:?} read as {} vs {x}: {rel}",
                        parsed.meters
                    );
                }
            }
        }
        assert!(ranges > 500, "ranges were exercised: {ranges}");
    }
}
