//! Length units and parsed lengths.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A unit a person uses to say a length. Serialized as its symbol ("mm", "cm", "m", "km", "in", "ft", "yd"),
/// the same strings `SpatialQa.unit_shown` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LengthUnit {
    #[serde(rename = "mm")]
    Millimeter,
    #[serde(rename = "cm")]
    Centimeter,
    #[serde(rename = "m")]
    Meter,
    #[serde(rename = "km")]
    Kilometer,
    #[serde(rename = "in")]
    Inch,
    #[serde(rename = "ft")]
    Foot,
    #[serde(rename = "yd")]
    Yard,
}

impl LengthUnit {
    pub const ALL: [LengthUnit; 7] = [
        LengthUnit::Millimeter,
        LengthUnit::Centimeter,
        LengthUnit::Meter,
        LengthUnit::Kilometer,
        LengthUnit::Inch,
        LengthUnit::Foot,
        LengthUnit::Yard,
    ];

    /// Metres in one of this unit (international inch/foot/yard).
    pub fn to_meters(self) -> f64 {
        match self {
            LengthUnit::Millimeter => 0.001,
            LengthUnit::Centimeter => 0.01,
            LengthUnit::Meter => 1.0,
            LengthUnit::Kilometer => 1000.0,
            LengthUnit::Inch => 0.0254,
            LengthUnit::Foot => 0.3048,
            LengthUnit::Yard => 0.9144,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            LengthUnit::Millimeter => "mm",
            LengthUnit::Centimeter => "cm",
            LengthUnit::Meter => "m",
            LengthUnit::Kilometer => "km",
            LengthUnit::Inch => "in",
            LengthUnit::Foot => "ft",
            LengthUnit::Yard => "yd",
        }
    }

    /// The spelled-out name, singular or plural ("meter"/"meters", "foot"/"feet").
    pub fn name(self, plural: bool) -> &'static str {
        match (self, plural) {
            (LengthUnit::Millimeter, false) => "millimeter",
            (LengthUnit::Millimeter, true) => "millimeters",
            (LengthUnit::Centimeter, false) => "centimeter",
            (LengthUnit::Centimeter, true) => "centimeters",
            (LengthUnit::Meter, false) => "meter",
            (LengthUnit::Meter, true) => "meters",
            (LengthUnit::Kilometer, false) => "kilometer",
            (LengthUnit::Kilometer, true) => "kilometers",
            (LengthUnit::Inch, false) => "inch",
            (LengthUnit::Inch, true) => "inches",
            (LengthUnit::Foot, false) => "foot",
            (LengthUnit::Foot, true) => "feet",
            (LengthUnit::Yard, false) => "yard",
            (LengthUnit::Yard, true) => "yards",
        }
    }

    pub fn is_metric(self) -> bool {
        matches!(
            self,
            LengthUnit::Millimeter
                | LengthUnit::Centimeter
                | LengthUnit::Meter
                | LengthUnit::Kilometer
        )
    }

    /// The unit a word or symbol names: symbols, singular/plural names, British spellings, `'` (foot) and `"` (inch).
    /// Case-insensitive. `None` for anything else.
    pub fn from_word(word: &str) -> Option<LengthUnit> {
        let unit = match word.to_ascii_lowercase().as_str() {
            "mm" | "millimeter" | "millimeters" | "millimetre" | "millimetres" => {
                LengthUnit::Millimeter
            }
            "cm" | "cms" | "centimeter" | "centimeters" | "centimetre" | "centimetres" => {
                LengthUnit::Centimeter
            }
            "m" | "meter" | "meters" | "metre" | "metres" => LengthUnit::Meter,
            "km" | "kms" | "kilometer" | "kilometers" | "kilometre" | "kilometres" => {
                LengthUnit::Kilometer
            }
            "in" | "inch" | "inches" | "\"" => LengthUnit::Inch,
            "ft" | "foot" | "feet" | "'" => LengthUnit::Foot,
            "yd" | "yds" | "yard" | "yards" => LengthUnit::Yard,
            _ => return None,
        };
        Some(unit)
    }
}

impl fmt::Display for LengthUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown length unit {0:?} (expected one of mm, cm, m, km, in, ft, yd or their names)")]
pub struct UnknownUnit(pub String);

impl FromStr for LengthUnit {
    type Err = UnknownUnit;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LengthUnit::from_word(s.trim()).ok_or_else(|| UnknownUnit(s.to_string()))
    }
}

/// A length read from text. `meters` is the value (the midpoint for a range); `low_m == high_m == meters` unless
/// the text gave a range. `unit` is the unit the text used (for a range or compound, the last one written).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Length {
    pub meters: f64,
    pub low_m: f64,
    pub high_m: f64,
    pub unit: LengthUnit,
}

impl Length {
    pub fn single(meters: f64, unit: LengthUnit) -> Length {
        Length {
            meters,
            low_m: meters,
            high_m: meters,
            unit,
        }
    }

    /// A range; the ends are sorted, `meters` is the midpoint.
    pub fn range(a_m: f64, b_m: f64, unit: LengthUnit) -> Length {
        let (low_m, high_m) = if a_m <= b_m { (a_m, b_m) } else { (b_m, a_m) };
        Length {
            meters: 0.5 * (low_m + high_m),
            low_m,
            high_m,
            unit,
        }
    }

    pub fn is_range(&self) -> bool {
        self.high_m > self.low_m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_factors_and_symbols() {
        assert_eq!(LengthUnit::Foot.to_meters(), 0.3048);
        assert!((LengthUnit::Yard.to_meters() - 3.0 * 0.3048).abs() < 1e-12);
        assert!((LengthUnit::Inch.to_meters() * 12.0 - 0.3048).abs() < 1e-12);
        for unit in LengthUnit::ALL {
            assert_eq!(LengthUnit::from_word(unit.symbol()), Some(unit));
            assert_eq!(LengthUnit::from_word(unit.name(false)), Some(unit));
            assert_eq!(LengthUnit::from_word(unit.name(true)), Some(unit));
            assert_eq!(unit.symbol().parse::<LengthUnit>(), Ok(unit));
        }
        assert_eq!(LengthUnit::from_word("Metres"), Some(LengthUnit::Meter));
        assert!("parsec".parse::<LengthUnit>().is_err());
    }

    #[test]
    fn unit_serializes_as_symbol() {
        assert_eq!(
            serde_json::to_string(&LengthUnit::Foot).ok().as_deref(),
            Some("\"ft\"")
        );
        let back: Result<LengthUnit, _> = serde_json::from_str("\"cm\"");
        assert_eq!(back.ok(), Some(LengthUnit::Centimeter));
    }

    #[test]
    fn range_sorts_and_takes_midpoint() {
        let r = Length::range(3.0, 2.0, LengthUnit::Meter);
        assert_eq!((r.low_m, r.high_m, r.meters), (2.0, 3.0, 2.5));
        assert!(r.is_range());
        assert!(!Length::single(1.0, LengthUnit::Meter).is_range());
    }
}
