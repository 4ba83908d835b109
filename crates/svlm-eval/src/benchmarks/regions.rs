//! Region prompts for models without region inputs: SpatialRGPT-Bench names regions ("Region [0]") by boxes the
//! question does not show, so each box is drawn on a copy of the image — an outline in its own colour and a tag
//! with its number in the top-left corner — and the prompt says which colour is which region.

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// Outline colours, one per region index (cycled), with their names for the prompt.
const COLOURS: [([u8; 3], &str); 6] = [
    ([230, 25, 75], "red"),
    ([0, 130, 200], "blue"),
    ([60, 180, 75], "green"),
    ([255, 225, 25], "yellow"),
    ([145, 30, 180], "purple"),
    ([245, 130, 48], "orange"),
];

/// 3x5 bitmaps of the digits, one row per entry, bit 2 = left column.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// The prompt sentence that tells the model which outline is which region.
pub fn legend(count: usize) -> String {
    let parts: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "Region [{i}] is outlined in {} and tagged {i}",
                COLOURS[i % COLOURS.len()].1
            )
        })
        .collect();
    format!("The regions are marked on the image: {}.", parts.join("; "))
}

/// Draws `boxes` (`[x1, y1, x2, y2]` pixels) on `image` and writes `out` (PNG) unless it exists already.
pub fn draw_regions(image: &Path, boxes: &[[f64; 4]], out: &Path) -> Result<PathBuf> {
    if out.is_file() {
        return Ok(out.to_path_buf());
    }
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let mut img = image::load_from_memory(&bytes)
        .with_context(|| format!("decoding {}", image.display()))?
        .to_rgb8();
    for (i, b) in boxes.iter().enumerate() {
        draw_one(&mut img, *b, i);
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .context("encoding the region image")?;
    svlm_report::write_atomic(out, &bytes)?;
    Ok(out.to_path_buf())
}

fn draw_one(img: &mut RgbImage, b: [f64; 4], index: usize) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    if w == 0 || h == 0 {
        return;
    }
    let colour = Rgb(COLOURS[index % COLOURS.len()].0);
    let clamp_x = |v: f64| (v.round() as i64).clamp(0, w - 1);
    let clamp_y = |v: f64| (v.round() as i64).clamp(0, h - 1);
    let (x1, y1, x2, y2) = (
        clamp_x(b[0].min(b[2])),
        clamp_y(b[1].min(b[3])),
        clamp_x(b[0].max(b[2])),
        clamp_y(b[1].max(b[3])),
    );
    let thick = (w.min(h) / 150).max(2);
    for t in 0..thick {
        for x in x1..=x2 {
            put(img, x, y1 + t, colour);
            put(img, x, y2 - t, colour);
        }
        for y in y1..=y2 {
            put(img, x1 + t, y, colour);
            put(img, x2 - t, y, colour);
        }
    }
    // The tag: a filled box in the region's colour with the number in white, 3x5 cells of `scale` pixels.
    let digits: Vec<usize> = index
        .to_string()
        .bytes()
        .map(|d| (d - b'0') as usize)
        .collect();
    let scale = (w.min(h) / 80).max(2);
    let (tag_w, tag_h) = ((digits.len() as i64 * 4 + 1) * scale, 7 * scale);
    for y in 0..tag_h {
        for x in 0..tag_w {
            put(img, x1 + x, y1 + y, colour);
        }
    }
    for (k, d) in digits.iter().enumerate() {
        for (row, bits) in DIGITS[*d].iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let x = x1 + (1 + k as i64 * 4 + col) * scale + dx;
                            let y = y1 + (1 + row as i64) * scale + dy;
                            put(img, x, y, Rgb([255, 255, 255]));
                        }
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_outlined_and_tagged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src.png");
        RgbImage::from_pixel(200, 160, Rgb([0, 0, 0]))
            .save(&src)
            .expect("save");
        let out = dir.path().join("out.png");
        draw_regions(
            &src,
            &[[20.0, 30.0, 120.0, 140.0], [150.0, 10.0, 190.0, 60.0]],
            &out,
        )
        .expect("draw");
        let img = image::open(&out).expect("open").to_rgb8();
        // outline pixels in each region's colour, the inside untouched, the tag's digit white
        assert_eq!(img.get_pixel(70, 139).0, COLOURS[0].0);
        assert_eq!(img.get_pixel(189, 35).0, COLOURS[1].0);
        assert_eq!(img.get_pixel(70, 100).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(20 + 2, 30 + 2).0, [255, 255, 255]);
        assert_eq!(
            legend(2),
            "The regions are marked on the image: Region [0] is outlined in red and tagged 0; Region [1] is \
             outlined in blue and tagged 1."
        );
    }
}
