use serde::{Deserialize, Serialize};

/// The fixed named palette. Names are what questions use ("red cube"); `rgb` is the albedo the rasterizer
/// shades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Red,
    Green,
    Blue,
    Yellow,
    Orange,
    Purple,
    White,
    Black,
    Gray,
    Brown,
    Pink,
    Cyan,
}

impl Color {
    pub const ALL: [Color; 12] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Yellow,
        Color::Orange,
        Color::Purple,
        Color::White,
        Color::Black,
        Color::Gray,
        Color::Brown,
        Color::Pink,
        Color::Cyan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Yellow => "yellow",
            Color::Orange => "orange",
            Color::Purple => "purple",
            Color::White => "white",
            Color::Black => "black",
            Color::Gray => "gray",
            Color::Brown => "brown",
            Color::Pink => "pink",
            Color::Cyan => "cyan",
        }
    }

    /// Albedo in sRGB bytes. Black and white are kept off the extremes so shading stays visible.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [200, 30, 30],
            Color::Green => [40, 160, 50],
            Color::Blue => [35, 70, 200],
            Color::Yellow => [230, 210, 40],
            Color::Orange => [240, 130, 20],
            Color::Purple => [120, 50, 170],
            Color::White => [235, 235, 235],
            Color::Black => [35, 35, 35],
            Color::Gray => [128, 128, 128],
            Color::Brown => [130, 80, 40],
            Color::Pink => [240, 140, 180],
            Color::Cyan => [40, 200, 210],
        }
    }
}

impl std::fmt::Display for Color {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
