//! The answer language shared by synthesis (which writes answers) and evaluation (which reads them): human-like
//! metric numbers and their parser, yes/no, "which" choices, clock directions and angles.
//!
//! One crate holds both directions so the round trip (`parse_length(format_length(x)) ~= x`) is tested in one place.
//! Every parser returns `None` when the text cannot be read; evaluation counts that as an invalid-format answer,
//! not as a wrong one.

mod angle;
mod choice;
mod clock;
mod length;
mod lexer;
mod text;
mod unit;
mod yes_no;

pub use angle::{format_angle_degrees, parse_angle_degrees};
pub use choice::{ChoiceMiss, parse_choice, read_choice};
pub use clock::{clock_distance, format_clock, normalize_hour, parse_clock};
pub use length::{NumberStyle, RANGE_STEP_SHARE, format_length, format_length_in, parse_length};
pub use text::answers_match;
pub use unit::{Length, LengthUnit, UnknownUnit};
pub use yes_no::parse_yes_no;
