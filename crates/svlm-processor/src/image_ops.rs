//! Image decoding and the numeric steps the HF image processors share (PIL-backend semantics).

use std::path::Path;

use crate::error::{ProcessorError, Result};
use crate::resample::Rgb8;

/// Decodes an image file and converts it to RGB as transformers' `convert_to_rgb` does (alpha composited over
/// white). PNG decoding is exact; JPEG decoders may differ from Pillow's libjpeg by one level in some pixels.
pub fn load_image(path: impl AsRef<Path>) -> Result<Rgb8> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ProcessorError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(&bytes).map_err(|e| ProcessorError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Decodes encoded image bytes (PNG, JPEG, TIFF) to RGB; the error is the decoder's.
pub fn decode_image(bytes: &[u8]) -> std::result::Result<Rgb8, image::ImageError> {
    let img = image::load_from_memory(bytes)?;
    Ok(dynamic_to_rgb(&img))
}

/// `convert_to_rgb`: RGB images pass unchanged; others go through RGBA and are composited over opaque white.
pub fn dynamic_to_rgb(img: &image::DynamicImage) -> Rgb8 {
    use image::DynamicImage as D;
    match img {
        D::ImageRgb8(rgb) => Rgb8::from_image(rgb),
        other => {
            let rgba = other.to_rgba8();
            let (w, h) = (rgba.width() as usize, rgba.height() as usize);
            let mut data = Vec::with_capacity(w * h * 3);
            for p in rgba.pixels() {
                let [r, g, b, a] = p.0;
                data.extend_from_slice(&composite_over_white([r, g, b], a));
            }
            Rgb8 {
                width: w,
                height: h,
                data,
            }
        }
    }
}

/// Pillow's `alpha_composite` of `src` over an opaque white background, in its fixed-point arithmetic.
fn composite_over_white(src: [u8; 3], alpha: u8) -> [u8; 3] {
    const PRECISION_BITS: u32 = 7;
    if alpha == 0 {
        return [255, 255, 255];
    }
    let a = u32::from(alpha);
    let blend = 255 * (255 - a);
    let outa255 = a * 255 + blend;
    let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let shift_div255 = |x: u32| ((x >> 8) + x) >> 8;
    src.map(|c| {
        let tmp = u32::from(c) * coef1 + 255 * coef2;
        (shift_div255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
    })
}

/// `image_transforms.center_crop` on an 8-bit image: a crop larger than the image pads with zeros.
pub fn center_crop(img: &Rgb8, crop_h: usize, crop_w: usize) -> Rgb8 {
    let (h, w) = (img.height as i64, img.width as i64);
    let (ch, cw) = (crop_h as i64, crop_w as i64);
    let mut top = (h - ch).div_euclid(2);
    let mut left = (w - cw).div_euclid(2);
    if top >= 0 && top + ch <= h && left >= 0 && left + cw <= w {
        return img.crop(left as usize, top as usize, crop_w, crop_h);
    }
    let new_h = ch.max(h);
    let new_w = cw.max(w);
    let top_pad = (new_h - h + 1) / 2;
    let left_pad = (new_w - w + 1) / 2;
    let mut padded = vec![0u8; (new_h * new_w * 3) as usize];
    for y in 0..h {
        let src = &img.data[(y * w * 3) as usize..((y + 1) * w * 3) as usize];
        let dst_start = (((y + top_pad) * new_w + left_pad) * 3) as usize;
        padded[dst_start..dst_start + src.len()].copy_from_slice(src);
    }
    top += top_pad;
    left += left_pad;
    let (bottom, right) = (top + ch, left + cw);
    let (y0, y1) = (top.max(0), bottom.min(new_h));
    let (x0, x1) = (left.max(0), right.min(new_w));
    let padded = Rgb8 {
        width: new_w as usize,
        height: new_h as usize,
        data: padded,
    };
    padded.crop(
        x0 as usize,
        y0 as usize,
        (x1 - x0) as usize,
        (y1 - y0) as usize,
    )
}

/// Rescale and normalize to channels-first f32 as the PIL backend does: `f32(u8 * scale as f64)`, then
/// `(x - mean) / std` in f32. Returns `3 * H * W` values.
pub fn to_chw_normalized(
    img: &Rgb8,
    do_rescale: bool,
    rescale_factor: f64,
    do_normalize: bool,
    mean: [f32; 3],
    std: [f32; 3],
) -> Vec<f32> {
    let plane = img.width * img.height;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let mut x = if do_rescale {
                (f64::from(px[c]) * rescale_factor) as f32
            } else {
                f32::from(px[c])
            };
            if do_normalize {
                x = (x - mean[c]) / std[c];
            }
            out[c * plane + i] = x;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(w: usize, h: usize) -> Rgb8 {
        let data = (0..w * h).flat_map(|i| [i as u8, 0, 0]).collect();
        Rgb8::new(w, h, data).unwrap()
    }

    #[test]
    fn center_crop_inside_uses_floor_offsets() {
        let img = numbered(5, 4);
        let out = center_crop(&img, 3, 2);
        // top = (4 - 3) // 2 = 0, left = (5 - 2) // 2 = 1
        assert_eq!((out.width, out.height), (2, 3));
        assert_eq!(
            out.data.chunks(3).map(|p| p[0]).collect::<Vec<_>>(),
            vec![1, 2, 6, 7, 11, 12]
        );
    }

    #[test]
    fn center_crop_larger_than_image_pads_with_zeros() {
        let img = Rgb8::new(2, 1, vec![9, 9, 9, 7, 7, 7]).unwrap();
        let out = center_crop(&img, 3, 4);
        assert_eq!((out.width, out.height), (4, 3));
        let reds: Vec<u8> = out.data.chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, vec![0, 0, 0, 0, 0, 9, 7, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn composite_matches_pillow_on_extremes() {
        assert_eq!(composite_over_white([10, 20, 30], 255), [10, 20, 30]);
        assert_eq!(composite_over_white([10, 20, 30], 0), [255, 255, 255]);
        let half = composite_over_white([0, 0, 0], 128);
        assert!(half[0] == 127 || half[0] == 128, "{half:?}");
    }

    #[test]
    fn normalization_is_channels_first() {
        let img = Rgb8::new(2, 1, vec![0, 255, 51, 255, 0, 102]).unwrap();
        let v = to_chw_normalized(&img, true, 1.0 / 255.0, true, [0.5; 3], [0.5; 3]);
        assert_eq!(v.len(), 6);
        approx::assert_abs_diff_eq!(v[0], -1.0);
        approx::assert_abs_diff_eq!(v[1], 1.0);
        approx::assert_abs_diff_eq!(v[2], 1.0);
        approx::assert_abs_diff_eq!(v[3], -1.0);
        approx::assert_abs_diff_eq!(v[4], -0.6, epsilon = 1e-6);
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        assert!(decode_image(b"\x89PNG\r\n\x1a\nnot really").is_err());
    }
}
