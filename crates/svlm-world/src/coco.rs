//! COCO-style `annotations.json`: images, categories, and per-object boxes with optional masks given as
//! uncompressed RLE (`{"counts": [..], "size": [h, w]}`), compressed RLE (`{"counts": "string", ...}`, the
//! pycocotools encoding) or polygons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::FrameError;
use crate::io::FrameObject;

/// A mask's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// Run lengths over the column-major pixels, starting with a run of zeros.
    Rle {
        height: u32,
        width: u32,
        counts: Vec<u32>,
    },
    /// Polygons as flat `[x0, y0, x1, y1, ...]` lists in pixel units (COCO: pixel `(u, v)` spans `[u, u+1)`).
    Polygons(Vec<Vec<f64>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CocoImage {
    pub id: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CocoAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: Option<[f64; 4]>,
    pub segmentation: Option<Segmentation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CocoFile {
    pub path: PathBuf,
    pub images: Vec<CocoImage>,
    pub annotations: Vec<CocoAnnotation>,
    pub categories: BTreeMap<u64, String>,
}

#[derive(Deserialize)]
struct RawFile {
    images: Vec<RawImage>,
    #[serde(default)]
    annotations: Vec<RawAnnotation>,
    #[serde(default)]
    categories: Vec<RawCategory>,
}

#[derive(Deserialize)]
struct RawImage {
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct RawAnnotation {
    #[serde(default)]
    id: u64,
    image_id: u64,
    category_id: u64,
    #[serde(default)]
    bbox: Option<[f64; 4]>,
    #[serde(default)]
    segmentation: Option<Value>,
}

#[derive(Deserialize)]
struct RawCategory {
    id: u64,
    name: String,
}

impl CocoFile {
    pub fn read(path: &Path) -> Result<Self, FrameError> {
        let text = std::fs::read_to_string(path).map_err(|e| FrameError::io(path, e))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, FrameError> {
        let raw: RawFile = serde_json::from_str(text).map_err(|source| FrameError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let categories: BTreeMap<u64, String> =
            raw.categories.into_iter().map(|c| (c.id, c.name)).collect();
        let mut annotations = Vec::with_capacity(raw.annotations.len());
        for (index, a) in raw.annotations.into_iter().enumerate() {
            if !categories.contains_key(&a.category_id) {
                return Err(FrameError::invalid(
                    path,
                    format!(
                        "annotation #{index} (id {}) has unknown category_id {}",
                        a.id, a.category_id
                    ),
                ));
            }
            let segmentation = match &a.segmentation {
                None | Some(Value::Null) => None,
                Some(value) => Some(parse_segmentation(value).map_err(|e| {
                    FrameError::invalid(path, format!("annotation #{index} (id {}): {e}", a.id))
                })?),
            };
            if a.bbox.is_none() && segmentation.is_none() {
                return Err(FrameError::invalid(
                    path,
                    format!(
                        "annotation #{index} (id {}) has neither bbox nor segmentation",
                        a.id
                    ),
                ));
            }
            annotations.push(CocoAnnotation {
                id: a.id,
                image_id: a.image_id,
                category_id: a.category_id,
                bbox: a.bbox,
                segmentation,
            });
        }
        let images = raw
            .images
            .into_iter()
            .map(|i| CocoImage {
                id: i.id,
                file_name: i.file_name,
                width: i.width,
                height: i.height,
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            images,
            annotations,
            categories,
        })
    }

    /// The image whose file name (without directories and extension) is `stem`.
    pub fn image_by_stem(&self, stem: &str) -> Option<&CocoImage> {
        self.images
            .iter()
            .find(|image| file_stem(&image.file_name) == stem)
    }

    /// Objects of one image (ids 1.. in annotation order, names from categories) and, when any annotation has
    /// a mask, the instance-id image (a pixel claimed by two masks stays with the first; such pixels counted).
    #[allow(clippy::type_complexity)]
    pub fn objects_for(
        &self,
        image: &CocoImage,
    ) -> Result<(Vec<FrameObject>, Option<Vec<u16>>, usize), FrameError> {
        let (w, h) = (image.width, image.height);
        let mut objects = Vec::new();
        let mut instances: Option<Vec<u16>> = None;
        let mut overlaps = 0usize;
        for a in self.annotations.iter().filter(|a| a.image_id == image.id) {
            let id = u16::try_from(objects.len() + 1).map_err(|_| {
                FrameError::invalid(
                    &self.path,
                    format!("image {} has more than 65535 annotations", image.file_name),
                )
            })?;
            let name = self
                .categories
                .get(&a.category_id)
                .cloned()
                .unwrap_or_default();
            if let Some(seg) = &a.segmentation {
                let mask = segmentation_to_mask(seg, h, w).map_err(|e| {
                    FrameError::invalid(&self.path, format!("annotation id {}: {e}", a.id))
                })?;
                let ids = instances.get_or_insert_with(|| vec![0u16; w as usize * h as usize]);
                for (slot, &m) in ids.iter_mut().zip(&mask) {
                    if m {
                        if *slot == 0 {
                            *slot = id;
                        } else {
                            overlaps += 1;
                        }
                    }
                }
            }
            objects.push(FrameObject {
                id,
                name,
                bbox: a.bbox,
                truth: None,
            });
        }
        Ok((objects, instances, overlaps))
    }
}

pub(crate) fn file_stem(file_name: &str) -> &str {
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

fn parse_segmentation(value: &Value) -> Result<Segmentation, String> {
    match value {
        Value::Array(polys) => {
            let mut out = Vec::with_capacity(polys.len());
            for poly in polys {
                let coords = poly
                    .as_array()
                    .ok_or("polygon is not a list")?
                    .iter()
                    .map(|v| v.as_f64().ok_or("polygon coordinate is not a number"))
                    .collect::<Result<Vec<f64>, _>>()?;
                if coords.len() < 6 || coords.len() % 2 != 0 {
                    return Err(format!(
                        "polygon has {} coordinates (need an even count >= 6)",
                        coords.len()
                    ));
                }
                out.push(coords);
            }
            Ok(Segmentation::Polygons(out))
        }
        Value::Object(map) => {
            let size = map
                .get("size")
                .and_then(Value::as_array)
                .ok_or("RLE has no size [h, w]")?;
            let dims: Vec<u32> = size
                .iter()
                .filter_map(|v| v.as_u64())
                .filter_map(|v| u32::try_from(v).ok())
                .collect();
            let [height, width] = dims[..] else {
                return Err("RLE size is not [h, w]".into());
            };
            let counts = match map.get("counts") {
                Some(Value::String(s)) => decode_rle_string(s)?,
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|v| {
                        v.as_u64()
                            .and_then(|x| u32::try_from(x).ok())
                            .ok_or("RLE count is not a u32")
                    })
                    .collect::<Result<Vec<u32>, _>>()?,
                _ => return Err("RLE has no counts".into()),
            };
            Ok(Segmentation::Rle {
                height,
                width,
                counts,
            })
        }
        _ => Err("segmentation is neither polygons nor RLE".into()),
    }
}

/// pycocotools' compressed counts: 5-bit groups offset by 48, bit 0x20 = more groups follow, the last group's
/// bit 0x10 = sign; counts after the second are stored as differences to the count two places back.
pub fn decode_rle_string(s: &str) -> Result<Vec<u32>, String> {
    let bytes = s.as_bytes();
    let mut counts: Vec<u32> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let mut x: i64 = 0;
        let mut k = 0;
        loop {
            let c = bytes[p]
                .checked_sub(48)
                .filter(|c| *c < 64)
                .ok_or_else(|| {
                    format!(
                        "byte {:?} at {p} is outside the RLE alphabet",
                        bytes[p] as char
                    )
                })? as i64;
            if k >= 12 {
                return Err("run length does not fit in 60 bits".into());
            }
            x |= (c & 0x1f) << (5 * k);
            let more = c & 0x20 != 0;
            p += 1;
            k += 1;
            if !more {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k);
                }
                break;
            }
            if p >= bytes.len() {
                return Err("RLE string ends inside a number".into());
            }
        }
        if counts.len() > 2 {
            x += counts[counts.len() - 2] as i64;
        }
        let count =
            u32::try_from(x).map_err(|_| format!("run length {x} is negative or too large"))?;
        counts.push(count);
    }
    Ok(counts)
}

/// Inverse of [`decode_rle_string`].
pub fn encode_rle_string(counts: &[u32]) -> String {
    let mut out = String::new();
    for (i, &count) in counts.iter().enumerate() {
        let mut x = count as i64;
        if i > 2 {
            x -= counts[i - 2] as i64;
        }
        loop {
            let mut c = x & 0x1f;
            x >>= 5;
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            out.push((c as u8 + 48) as char);
            if !more {
                break;
            }
        }
    }
    out
}

/// Column-major run lengths of a row-major mask (what COCO stores).
pub fn mask_to_rle(mask: &[bool], height: u32, width: u32) -> Vec<u32> {
    let (h, w) = (height as usize, width as usize);
    let mut counts = Vec::new();
    let mut current = false;
    let mut run = 0u32;
    for u in 0..w {
        for v in 0..h {
            let m = mask[v * w + u];
            if m != current {
                counts.push(run);
                run = 0;
                current = m;
            }
            run += 1;
        }
    }
    counts.push(run);
    counts
}

/// Row-major mask of size `height x width` from column-major run lengths.
pub fn rle_to_mask(counts: &[u32], height: u32, width: u32) -> Result<Vec<bool>, String> {
    let (h, w) = (height as usize, width as usize);
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    if total != (h * w) as u64 {
        return Err(format!(
            "RLE counts sum to {total}, size {height}x{width} needs {}",
            h * w
        ));
    }
    let mut mask = vec![false; h * w];
    let mut index = 0usize;
    for (i, &count) in counts.iter().enumerate() {
        let value = i % 2 == 1;
        for k in index..index + count as usize {
            if value {
                // Column-major index k -> (row k % h, column k / h).
                mask[(k % h) * w + k / h] = true;
            }
        }
        index += count as usize;
    }
    Ok(mask)
}

/// Even-odd fill of polygons, a pixel being inside when its centre `(u + 0.5, v + 0.5)` is.
pub fn polygons_to_mask(polygons: &[Vec<f64>], height: u32, width: u32) -> Vec<bool> {
    let (h, w) = (height as usize, width as usize);
    let mut mask = vec![false; h * w];
    for poly in polygons {
        let points: Vec<(f64, f64)> = poly.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        let n = points.len();
        if n < 3 {
            continue;
        }
        for v in 0..h {
            let y = v as f64 + 0.5;
            let mut crossings: Vec<f64> = Vec::new();
            for i in 0..n {
                let (x0, y0) = points[i];
                let (x1, y1) = points[(i + 1) % n];
                if (y0 <= y) != (y1 <= y) {
                    crossings.push(x0 + (y - y0) * (x1 - x0) / (y1 - y0));
                }
            }
            crossings.sort_by(f64::total_cmp);
            for pair in crossings.chunks_exact(2) {
                // Pixels whose centres lie in [pair[0], pair[1]).
                let start = (pair[0] - 0.5).ceil().max(0.0) as usize;
                let end = ((pair[1] - 0.5).ceil().max(0.0) as usize).min(w);
                for u in start..end {
                    mask[v * w + u] ^= true;
                }
            }
        }
    }
    mask
}

/// A segmentation as a row-major mask of the image's size.
pub fn segmentation_to_mask(
    seg: &Segmentation,
    height: u32,
    width: u32,
) -> Result<Vec<bool>, String> {
    match seg {
        Segmentation::Rle {
            height: rh,
            width: rw,
            counts,
        } => {
            if (*rh, *rw) != (height, width) {
                return Err(format!(
                    "RLE size {rh}x{rw} does not match the image's {height}x{width}"
                ));
            }
            rle_to_mask(counts, height, width)
        }
        Segmentation::Polygons(polys) => Ok(polygons_to_mask(polys, height, width)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_rle_round_trip_including_large_and_decreasing_runs() {
        let counts = vec![0, 5, 3, 1000, 2, 70_000, 1, 0, 31, 32, 15, 16];
        let s = encode_rle_string(&counts);
        assert_eq!(decode_rle_string(&s).unwrap(), counts);
    }

    #[test]
    fn compressed_rle_matches_published_vectors() {
        // Pairs used by other COCO-compatible implementations' tests (pycocotools' encoding).
        let vectors: [(&[u32], &str); 7] = [
            (&[0, 6, 1, 3], "061M"),
            (&[0, 6, 1], "061"),
            (&[0, 6, 1, 1], "061K"),
            (&[0, 6, 1, 5], "061O"),
            (&[0, 6, 1, 6], "0610"),
            (&[0, 1, 1, 2, 1, 3, 1, 4, 1], "011101010"),
            (&[0, 1024], "0PP1"),
        ];
        for (counts, text) in vectors {
            assert_eq!(encode_rle_string(counts), text);
            assert_eq!(decode_rle_string(text).unwrap(), counts);
        }
    }

    #[test]
    fn compressed_rle_known_string() {
        // Hand-encoded: counts [3, 2, 4]: '3' = 48 + 3, '2' = 48 + 2, '4' = 48 + 4 (no deltas before the 4th).
        assert_eq!(decode_rle_string("324").unwrap(), vec![3, 2, 4]);
        // 4th count stored as a delta to the 2nd: [1, 2, 1, 5] -> deltas 5 - 2 = 3.
        assert_eq!(decode_rle_string("1213").unwrap(), vec![1, 2, 1, 5]);
        // A value >= 16 needs two groups: 40 = 0b01000_01000 -> groups 8 | 0x20, 1.
        assert_eq!(
            decode_rle_string(&format!(
                "{}{}",
                (48 + 8 + 32) as u8 as char,
                (48 + 1) as u8 as char
            ))
            .unwrap(),
            vec![40]
        );
        assert!(decode_rle_string("1 2").is_err());
    }

    #[test]
    fn rle_mask_round_trip_column_major() {
        let (h, w) = (3u32, 4u32);
        // Row-major mask with a vertical bar in column 1 and one pixel at (row 2, col 3).
        let mut mask = vec![false; 12];
        for v in 0..3 {
            mask[v * 4 + 1] = true;
        }
        mask[2 * 4 + 3] = true;
        let counts = mask_to_rle(&mask, h, w);
        assert_eq!(counts, vec![3, 3, 5, 1]);
        assert_eq!(rle_to_mask(&counts, h, w).unwrap(), mask);
        assert!(rle_to_mask(&[3, 3], h, w).is_err());
    }

    #[test]
    fn polygon_fill_matches_a_rectangle() {
        // Rectangle covering pixels u in 1..=3, v in 2..=3 (edges on pixel boundaries).
        let mask = polygons_to_mask(&[vec![1.0, 2.0, 4.0, 2.0, 4.0, 4.0, 1.0, 4.0]], 6, 6);
        let expected: Vec<bool> = (0..36)
            .map(|i| (1..=3).contains(&(i % 6)) && (2..=3).contains(&(i / 6)))
            .collect();
        assert_eq!(mask, expected);
    }

    #[test]
    fn parses_all_segmentation_forms() {
        let text = r#"{
            "images": [{"id": 7, "file_name": "dir/frame_01.jpg", "width": 4, "height": 3}],
            "categories": [{"id": 1, "name": "mug"}, {"id": 2, "name": "book"}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 0, 1, 3], "segmentation": {"counts": [3, 3, 6], "size": [3, 4]}},
                {"id": 2, "image_id": 7, "category_id": 2, "segmentation": {"counts": "723", "size": [3, 4]}},
                {"id": 3, "image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 1]}
            ]}"#;
        let file = CocoFile::parse(Path::new("annotations.json"), text).unwrap();
        let image = file.image_by_stem("frame_01").unwrap();
        let (objects, instances, overlaps) = file.objects_for(image).unwrap();
        assert_eq!(objects.len(), 3);
        assert_eq!(objects[1].name, "book");
        let ids = instances.unwrap();
        // Column 1 -> object 1; compressed "723": 7 zeros, 2 ones, 3 zeros -> column-major 7, 8 = (1,2), (2,2).
        assert_eq!(ids, vec![0, 1, 0, 0, 0, 1, 2, 0, 0, 1, 2, 0]);
        assert_eq!(overlaps, 0);
    }

    #[test]
    fn bad_annotations_name_the_file() {
        let text = r#"{"images": [], "categories": [], "annotations": [{"id": 1, "image_id": 1, "category_id": 9}]}"#;
        let err = CocoFile::parse(Path::new("x/annotations.json"), text).unwrap_err();
        assert!(err.to_string().contains("x/annotations.json"), "{err}");
    }
}
