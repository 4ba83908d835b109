//! Pillow's `Image.resize` for 8-bit RGB images, reproduced bit for bit.
//!
//! The HF "slow" image processors resize `uint8` PIL images. Pillow resamples separably (horizontal pass, then
//! vertical), widens the filter support by the downscale factor (antialiasing), normalizes the weights per output
//! pixel, converts them to 22-bit fixed point and rounds back to `u8` after each pass. The `image` crate's filters
//! differ in all of these, so the exact algorithm is implemented here.

use crate::error::ProcessorError;

/// Pillow's resampling filters (`PIL.Image.Resampling`), numbered as HF configs store them in `resample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    Nearest,
    Lanczos,
    Bilinear,
    Bicubic,
    Box,
    Hamming,
}

impl Resample {
    /// The integer code used by PIL and by `resample` in `preprocessor_config.json`.
    pub fn from_pil_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Nearest),
            1 => Some(Self::Lanczos),
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            4 => Some(Self::Box),
            5 => Some(Self::Hamming),
            _ => None,
        }
    }

    pub fn pil_code(self) -> i64 {
        match self {
            Self::Nearest => 0,
            Self::Lanczos => 1,
            Self::Bilinear => 2,
            Self::Bicubic => 3,
            Self::Box => 4,
            Self::Hamming => 5,
        }
    }

    fn support(self) -> f64 {
        match self {
            Self::Nearest | Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Nearest | Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Self::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let px = x * std::f64::consts::PI;
                    px.sin() / px * (0.54 + 0.46 * px.cos())
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let px = x * std::f64::consts::PI;
    px.sin() / px
}

/// An 8-bit RGB image, row-major, interleaved (`HWC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb8 {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self, ProcessorError> {
        if data.len() != width * height * 3 {
            return Err(ProcessorError::Invalid(format!(
                "RGB buffer has {} bytes, expected {width}x{height}x3 = {}",
                data.len(),
                width * height * 3
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    pub fn from_image(img: &image::RgbImage) -> Self {
        Self {
            width: img.width() as usize,
            height: img.height() as usize,
            data: img.as_raw().clone(),
        }
    }

    /// Pixels `[x0, x0 + w) x [y0, y0 + h)`; the caller keeps the box inside the image.
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Self {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y0 + h {
            let start = (y * self.width + x0) * 3;
            data.extend_from_slice(&self.data[start..start + w * 3]);
        }
        Self {
            width: w,
            height: h,
            data,
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

struct Coefficients {
    /// `(first source index, number of taps)` per output index.
    bounds: Vec<(usize, usize)>,
    /// `ksize` fixed-point weights per output index.
    weights: Vec<i32>,
    ksize: usize,
}

fn precompute_coefficients(in_size: usize, out_size: usize, filter: Resample) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut taps = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let inv_scale = 1.0 / filter_scale;
        // C's `(int)` truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin).min(ksize);
        let mut total = 0.0;
        for (x, tap) in taps.iter_mut().enumerate().take(count) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * inv_scale);
            *tap = w;
            total += w;
        }
        for (x, &tap) in taps.iter().enumerate().take(count) {
            let w = if total != 0.0 { tap / total } else { tap };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, count));
    }
    Coefficients {
        bounds,
        weights,
        ksize,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes like `PIL.Image.resize((width, height), resample)` on an RGB image (no `box`, no `reducing_gap`).
pub fn resize(
    src: &Rgb8,
    width: usize,
    height: usize,
    filter: Resample,
) -> Result<Rgb8, ProcessorError> {
    if width == 0 || height == 0 || src.width == 0 || src.height == 0 {
        return Err(ProcessorError::Invalid(format!(
            "cannot resize a {}x{} image to {width}x{height}",
            src.width, src.height
        )));
    }
    if filter == Resample::Nearest {
        return Ok(resize_nearest(src, width, height));
    }
    let need_horizontal = width != src.width;
    let need_vertical = height != src.height;
    if !need_horizontal && !need_vertical {
        return Ok(src.clone());
    }
    let vert = precompute_coefficients(src.height, height, filter);
    let horizontal_out;
    let (rows_src, row_offset) = if need_horizontal {
        // Only the source rows the vertical pass reads are resampled horizontally, as Pillow does.
        let first = vert.bounds.first().map_or(0, |b| b.0);
        let last = vert.bounds.last().map_or(src.height, |b| b.0 + b.1);
        let (first, last) = if need_vertical {
            (first, last)
        } else {
            (0, src.height)
        };
        horizontal_out = resample_horizontal(src, first, last, width, filter);
        (&horizontal_out, first)
    } else {
        (src, 0)
    };
    if !need_vertical {
        return Ok(rows_src.clone());
    }
    Ok(resample_vertical(rows_src, row_offset, &vert, height))
}

fn resample_horizontal(
    src: &Rgb8,
    first_row: usize,
    last_row: usize,
    out_w: usize,
    filter: Resample,
) -> Rgb8 {
    let coeffs = precompute_coefficients(src.width, out_w, filter);
    let rows = last_row - first_row;
    let mut data = vec![0u8; out_w * rows * 3];
    for y in 0..rows {
        let src_row =
            &src.data[(first_row + y) * src.width * 3..(first_row + y + 1) * src.width * 3];
        let out_row = &mut data[y * out_w * 3..(y + 1) * out_w * 3];
        for xx in 0..out_w {
            let (xmin, count) = coeffs.bounds[xx];
            let k = &coeffs.weights[xx * coeffs.ksize..xx * coeffs.ksize + count];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (i, &w) in k.iter().enumerate() {
                let p = &src_row[(xmin + i) * 3..(xmin + i) * 3 + 3];
                acc[0] += i32::from(p[0]) * w;
                acc[1] += i32::from(p[1]) * w;
                acc[2] += i32::from(p[2]) * w;
            }
            out_row[xx * 3] = clip8(acc[0]);
            out_row[xx * 3 + 1] = clip8(acc[1]);
            out_row[xx * 3 + 2] = clip8(acc[2]);
        }
    }
    Rgb8 {
        width: out_w,
        height: rows,
        data,
    }
}

fn resample_vertical(src: &Rgb8, row_offset: usize, coeffs: &Coefficients, out_h: usize) -> Rgb8 {
    let w = src.width;
    let mut data = vec![0u8; w * out_h * 3];
    let mut acc = vec![0i32; w * 3];
    for yy in 0..out_h {
        let (ymin, count) = coeffs.bounds[yy];
        let ymin = ymin - row_offset;
        let k = &coeffs.weights[yy * coeffs.ksize..yy * coeffs.ksize + count];
        acc.fill(1i32 << (PRECISION_BITS - 1));
        for (i, &weight) in k.iter().enumerate() {
            let row = &src.data[(ymin + i) * w * 3..(ymin + i + 1) * w * 3];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * weight;
            }
        }
        for (o, &a) in data[yy * w * 3..(yy + 1) * w * 3].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    Rgb8 {
        width: w,
        height: out_h,
        data,
    }
}

/// Pillow's NEAREST resize: an affine transform sampling at `(x + 0.5) * scale`.
fn resize_nearest(src: &Rgb8, width: usize, height: usize) -> Rgb8 {
    let sx = src.width as f64 / width as f64;
    let sy = src.height as f64 / height as f64;
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let yin = (((y as f64 + 0.5) * sy) as usize).min(src.height - 1);
        for x in 0..width {
            let xin = (((x as f64 + 0.5) * sx) as usize).min(src.width - 1);
            let p = (yin * src.width + xin) * 3;
            data.extend_from_slice(&src.data[p..p + 3]);
        }
    }
    Rgb8 {
        width,
        height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> Rgb8 {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                data.push((x * 255 / w.max(1)) as u8);
                data.push((y * 255 / h.max(1)) as u8);
                data.push(((x * 7 + y * 13) % 256) as u8);
            }
        }
        Rgb8::new(w, h, data).unwrap()
    }

    #[test]
    fn same_size_is_identity() {
        let img = gradient(17, 9);
        for f in [Resample::Bicubic, Resample::Lanczos, Resample::Bilinear] {
            assert_eq!(resize(&img, 17, 9, f).unwrap(), img);
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Rgb8::new(13, 7, [200u8, 10, 99].repeat(13 * 7)).unwrap();
        for f in [
            Resample::Bicubic,
            Resample::Lanczos,
            Resample::Bilinear,
            Resample::Box,
            Resample::Hamming,
        ] {
            for (w, h) in [(5, 3), (29, 31), (13, 2)] {
                let out = resize(&img, w, h, f).unwrap();
                assert_eq!((out.width, out.height), (w, h));
                assert!(
                    out.data.chunks(3).all(|p| p == [200, 10, 99]),
                    "{f:?} {w}x{h}"
                );
            }
        }
    }

    #[test]
    fn downscale_by_two_with_box_averages_pairs() {
        let img = Rgb8::new(
            4,
            1,
            vec![0, 0, 0, 10, 10, 10, 100, 100, 100, 201, 201, 201],
        )
        .unwrap();
        let out = resize(&img, 2, 1, Resample::Box).unwrap();
        // (0 + 10) / 2 = 5, (100 + 201) / 2 = 150.5 rounds half up.
        assert_eq!(out.data, vec![5, 5, 5, 151, 151, 151]);
    }

    #[test]
    fn bicubic_weights_sum_to_one_in_fixed_point() {
        let c = precompute_coefficients(100, 37, Resample::Bicubic);
        for (i, &(_, n)) in c.bounds.iter().enumerate() {
            let s: i32 = c.weights[i * c.ksize..i * c.ksize + n].iter().sum();
            assert!(
                (s - (1 << PRECISION_BITS)).abs() <= n as i32,
                "row {i}: {s}"
            );
        }
    }

    #[test]
    fn zero_size_is_an_error() {
        let img = gradient(4, 4);
        assert!(resize(&img, 0, 3, Resample::Bicubic).is_err());
    }
}
